"""Outputs aimed at what a run made (issue 22): after a real preview run, `plan --out` and
`export -o` never write over storyboard.lock, a film, a shot clip, the storyboard or a device
node, and an export whose target is a folder names that path, not a temp file. Each file aimed
at is proved untouched (kind, device number, inode, bytes)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from _e2e import PREVIEW, chain_storyboard, cli, make_project


def fingerprint(path: Path) -> tuple:
    info = os.lstat(path)
    data = path.read_bytes() if stat.S_ISREG(info.st_mode) else None
    return stat.S_IFMT(info.st_mode), info.st_rdev, info.st_ino, info.st_mtime_ns, data


def everything(root: Path) -> dict:
    """Every file of the project but the state folder (SQLite touches its own files on any
    read) and the folders' times."""
    return {p: fingerprint(p) for p in sorted(root.rglob("*"))
            if ".kling-compose" not in p.relative_to(root).parts and not p.is_dir()}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("hostile-files") / "film",
                        chain_storyboard(2) + "outputs:\n  - path: renders/cut.mp4\n")
    result = cli("run", root, "-q", *PREVIEW)
    assert result.exit_code == 0, result.output
    # a preview run writes no storyboard.lock (issue 26): the paid lock a teammate committed
    lock = root / ".kling-compose" / "rehearsal.storyboard.lock"
    (root / "storyboard.lock").write_bytes(lock.read_bytes().replace(b'"provider":"preview"',
                                                                      b'"provider":"runware"'))
    assert (root / "storyboard.lock").is_file() and (root / "renders" / "cut.mp4").is_file()
    return root


@pytest.mark.parametrize("command", [["plan", *PREVIEW, "--out"], ["export", "-o"]])
@pytest.mark.parametrize("name, role", [
    ("storyboard.yaml", "this is the storyboard"),
    ("storyboard.lock", "this is storyboard.lock"),
    ("renders/cut.mp4", "this is a film of the storyboard (renders/cut.mp4)"),
    ("renders/shots/s1.mp4", "this is inside renders/shots/"),
    ("renders/shots/new.json", "this is inside renders/shots/"),
    ("assets/start.png", "this is an input of the storyboard (assets/start.png)"),
    (".kling-compose/state.db", "this is inside the project's state folder"),
])
def test_an_output_never_replaces_what_the_project_reads_or_made(made, command, name, role):
    before, aimed = everything(made), (made / name)
    kind_and_inode = fingerprint(aimed)[:3] if aimed.exists() else None
    result = cli(command[0], made, *command[1:], aimed)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"{aimed}: error: {role}"), result.stderr
    assert "nothing was written" in result.stderr
    assert everything(made) == before
    assert (fingerprint(aimed)[:3] if aimed.exists() else None) == kind_and_inode


def _device_stand_in(folder: Path) -> Path:
    path = folder / "full"
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 7))  # /dev/full's numbers, as root
    except OSError:
        os.mkfifo(path)  # not root: a named pipe, the other node an atomic write replaced
    return path


@pytest.mark.parametrize("command", [["plan", *PREVIEW, "--out"], ["export", "-o"]])
def test_an_output_over_a_device_node_leaves_it_a_device_node(made, tmp_path, command):
    device = _device_stand_in(tmp_path)
    before = fingerprint(device)
    result = cli(command[0], made, *command[1:], device)
    assert result.exit_code == 1, result.output
    kind = "a device" if stat.S_ISCHR(before[0]) else "a named pipe"
    assert result.stderr.startswith(f"{device}: error: this is {kind}: "), result.stderr
    assert fingerprint(device) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]  # no temp file beside it


def test_export_over_a_file_that_is_not_a_timeline_is_refused(made, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my edit notes\n")
    before = fingerprint(notes)
    result = cli("export", made, "-o", notes)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{notes}: error: this file exists and is not a "
                                    "timeline: it is not written over"), result.stderr
    assert fingerprint(notes) == before
    again = tmp_path / "cut.otio"
    assert cli("export", made, "-o", again).exit_code == 0
    assert cli("export", made, "-o", again).exit_code == 0  # a timeline: replaced


def test_an_export_target_that_is_a_folder_is_named_not_a_temp_file(made):
    folder = made / "renders" / "cut.otio"
    folder.mkdir()
    try:
        result = cli("export", made)
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith("renders/cut.otio: error: this is a folder: the "
                                        "timeline is written only over a regular file"), \
            result.stderr
        assert ".tmp" not in result.stderr and list(folder.iterdir()) == []
        assert not list((made / "renders").glob(".cut.otio.*"))
    finally:
        folder.rmdir()


def test_export_o_into_a_folder_that_cannot_be_made_is_located(made):
    result = cli("export", made, "-o", "/proc/kc-export/cut.otio")
    assert result.exit_code == 1
    assert result.stderr.startswith("/proc/kc-export/cut.otio: error: cannot create the "
                                    "folder for the timeline: "), result.stderr
