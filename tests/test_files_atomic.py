"""files.replace_atomically / atomic_path: the one atomic write every module uses. One
permission policy (the user's umask), and no temp file left behind on any failure."""

import errno
import os
import stat

import pytest

from kling_compose.files import atomic_path, current_umask, replace_atomically, user_mode


@pytest.fixture
def umask():
    """Set the process's umask for one test; put the old one back after."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _only(folder, *names) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077, 0o002])
def test_the_mode_follows_the_umask(tmp_path, umask, mask):
    umask(mask)
    assert current_umask() == mask and user_mode() == 0o666 & ~mask
    old = tmp_path / "old.json"
    old.write_text("{}")
    old.chmod(0o600)  # an earlier version's mkstemp mode is not kept either
    replace_atomically(old, "text")
    replace_atomically(tmp_path / "new.bin", b"bytes")
    replace_atomically(tmp_path / "made.mp4", produce=lambda temp: temp.write_bytes(b"x"))
    moved = tmp_path / "tmp.png"
    moved.write_bytes(b"png")
    moved.chmod(0o600)  # mkstemp's
    replace_atomically(tmp_path / "moved.png", move_from=moved)
    with atomic_path(tmp_path / "ctx.jpg") as temp:
        temp.write_bytes(b"jpg")
    for name in ("old.json", "new.bin", "made.mp4", "moved.png", "ctx.jpg"):
        assert _mode(tmp_path / name) == 0o666 & ~mask, name
    assert (tmp_path / "old.json").read_text() == "text"
    assert (tmp_path / "moved.png").read_bytes() == b"png"
    _only(tmp_path, "old.json", "new.bin", "made.mp4", "moved.png", "ctx.jpg")


def test_an_explicit_mode_is_given(tmp_path):
    replace_atomically(tmp_path / "a", b"x", mode=0o640)
    assert _mode(tmp_path / "a") == 0o640


def test_the_temp_file_sits_beside_the_target_with_its_suffix(tmp_path):
    seen = []
    replace_atomically(tmp_path / "film.mp4", produce=lambda t: (seen.append(t),
                                                                  t.write_bytes(b"m")))
    (temp,) = seen
    assert temp.parent == tmp_path and temp.suffix == ".mp4" and temp.name.startswith(".tmp-")
    replace_atomically(tmp_path / "storyboard.lock", "{}", prefix=".storyboard.lock.")
    _only(tmp_path, "film.mp4", "storyboard.lock")


def test_a_producer_that_writes_nothing_leaves_the_target(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(FileNotFoundError) as caught:
        replace_atomically(target, produce=lambda temp: None)
    assert caught.value.filename == str(target)  # never the temp file's name
    assert target.read_text() == "old"
    _only(tmp_path, "a.txt")


class Boom(Exception):
    pass


def _half_then(exc):
    def produce(temp):
        temp.write_bytes(b"half")
        raise exc
    return produce


@pytest.mark.parametrize("exc", [Boom("a bug in the producer"),
                                 OSError(errno.ENOSPC, "No space left on device"),
                                 KeyboardInterrupt()])
def test_a_failure_mid_write_leaves_the_old_target_and_no_temp_file(tmp_path, exc):
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"previous")
    with pytest.raises(type(exc)):
        replace_atomically(target, produce=_half_then(exc))
    with pytest.raises(type(exc)):
        with atomic_path(target) as temp:
            temp.write_bytes(b"half")
            raise exc
    assert target.read_bytes() == b"previous"
    _only(tmp_path, "clip.mp4")


def test_a_full_disk_while_writing_data_leaves_the_old_target_and_no_temp_file(tmp_path,
                                                                              monkeypatch):
    target = tmp_path / "storyboard.lock"
    target.write_text("previous")
    real_fsync = os.fsync

    def full(fd):  # the write was buffered; the disk refuses it when it is flushed
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as caught:
        replace_atomically(target, "new " * 1000)
    assert caught.value.errno == errno.ENOSPC
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert target.read_text() == "previous"
    _only(tmp_path, "storyboard.lock")


def test_a_failed_rename_names_the_target_and_leaves_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "a.json"
    target.write_text("previous")

    def refused(source, destination):
        raise OSError(errno.EROFS, "Read-only file system", str(source), None, str(destination))

    monkeypatch.setattr(os, "replace", refused)
    with pytest.raises(OSError) as caught:
        replace_atomically(target, b"new")
    assert caught.value.errno == errno.EROFS and caught.value.filename == str(target)
    monkeypatch.undo()
    assert target.read_text() == "previous"
    _only(tmp_path, "a.json")


def test_a_keyboard_interrupt_at_the_rename_leaves_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "film.mp4"

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        replace_atomically(target, b"film")
    monkeypatch.undo()
    assert not target.exists()
    _only(tmp_path)


def test_a_file_moved_in_is_removed_when_it_cannot_be(tmp_path, monkeypatch):
    (tmp_path / "tmp").mkdir()
    temp = tmp_path / "tmp" / "x.mp4"
    temp.write_bytes(b"clip")

    def check(path):
        raise Boom("refused")

    with pytest.raises(Boom):
        replace_atomically(tmp_path / "clip.mp4", move_from=temp, check=check)
    _only(tmp_path / "tmp")
    assert not (tmp_path / "clip.mp4").exists()


def test_a_check_refuses_before_the_rename(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")

    def check(temp):
        assert temp.read_bytes() == b"new"  # written and complete when it is asked
        raise Boom("changed meanwhile")

    with pytest.raises(Boom):
        replace_atomically(target, b"new", check=check)
    assert target.read_text() == "old"
    _only(tmp_path, "a.txt")


def test_exactly_one_source(tmp_path):
    with pytest.raises(TypeError):
        replace_atomically(tmp_path / "a", b"x", produce=lambda t: None)
    with pytest.raises(TypeError):
        replace_atomically(tmp_path / "a")


def test_the_file_and_its_folder_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def fsync(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    replace_atomically(tmp_path / "a", b"x")
    assert synced == [False, True]  # the file before the rename, the folder after
