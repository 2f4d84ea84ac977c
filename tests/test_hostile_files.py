"""Hostile paths and special files (issue 22): a storyboard, a --vars file or a saved plan that
is a named pipe, a link to /dev/zero, a loop of links or a path of 5,000 characters; outputs
aimed at the storyboard or at a device node; `pick` through a YAML anchor, a CR-only file and
a symlinked storyboard; `init` into /proc or /dev/null; `--max-cost nan`. Each ends within
seconds in one located message (exit 1; usage errors exit 2), never a traceback or a hang, and
the files aimed at are proved untouched (their bytes and their stat)."""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

SECONDS = 30
MEMORY_BYTES = 2 * 1024**3
STORYBOARD = """\
version: 1
name: hostile
defaults:
  provider: preview
scenes:
  - id: main
    shots:
      - id: s1
        prompt: a quiet harbour at dusk
        takes: 3
"""


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


def kc(cwd: Path, *args) -> subprocess.CompletedProcess:
    """`kling-compose ARGS` in cwd, in a subprocess bounded in time and memory."""
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "kling_compose", *map(str, args)], cwd=cwd,
                            capture_output=True, text=True, timeout=SECONDS,
                            preexec_fn=_limit, stdin=subprocess.DEVNULL)
    assert time.monotonic() - started < SECONDS
    assert "Traceback" not in result.stderr, result.stderr
    return result


def project(tmp_path: Path, text: str = STORYBOARD) -> Path:
    root = tmp_path / "film"
    (root / "assets").mkdir(parents=True, exist_ok=True)
    (root / "storyboard.yaml").write_bytes(text.encode("utf-8"))
    return root


def fingerprint(path: Path) -> tuple:
    """What must not change about a file a command was aimed at: its kind, its device number,
    its inode and its bytes (for a regular file)."""
    info = os.lstat(path)
    data = path.read_bytes() if stat.S_ISREG(info.st_mode) else None
    target = os.readlink(path) if stat.S_ISLNK(info.st_mode) else None
    return (stat.S_IFMT(info.st_mode), info.st_rdev, info.st_ino, info.st_mtime_ns, data,
            target)


def failed(result, code: int = 1) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    return result.stderr


def _special(root: Path, name: str, kind: str) -> Path:
    path = root / name
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "self-link":
        path.symlink_to(name)
    elif kind == "link-loop":
        path.symlink_to(name + ".b")
        (root / (name + ".b")).symlink_to(name)
    elif kind == "folder":
        path.mkdir()
    return path


# -- the storyboard, --vars files and saved plans are read only when they are regular files ---

SPECIAL = {"fifo": "is a named pipe, not a regular file",
           "dev-zero": "is a device, not a regular file",
           "self-link": "leads through a loop of symbolic links",
           "link-loop": "leads through a loop of symbolic links"}


@pytest.mark.parametrize("kind", sorted(SPECIAL))
@pytest.mark.parametrize("command", [["validate"], ["render"], ["plan"], ["run"],
                                     ["pick", "s1", "2"], ["status"]])
def test_a_special_file_as_the_storyboard_ends_in_seconds(tmp_path, kind, command):
    root = project(tmp_path)
    _special(root, "board.yaml", kind)
    err = failed(kc(root, *command, "board.yaml"))
    assert err.startswith("board.yaml: error: "), err
    assert SPECIAL[kind] in err, err


@pytest.mark.parametrize("command", [["validate"], ["plan"], ["run"], ["status"], ["export"],
                                     ["pick", "s1", "2"], ["render"], ["graph"], ["config"]])
def test_a_storyboard_path_of_5000_characters_is_a_message(tmp_path, command):
    root = project(tmp_path)
    for long in ("x" * 5000, "./" + "x/" * 2500 + "storyboard.yaml"):
        err = failed(kc(root, *command, long))
        assert "error: cannot read the storyboard: the path is too long for the file " \
               "system" in err, err
        assert len(err) < 1000, err  # the path is shown cut, not 5,000 characters twice


def test_doctor_names_a_storyboard_path_of_5000_characters_as_a_problem(tmp_path):
    root = project(tmp_path)
    for long in ("x" * 5000, "./" + "x/" * 2500 + "storyboard.yaml"):
        result = kc(root, "doctor", long)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert "the path is too long" in result.stdout or \
            "File name too long" in result.stdout, result.stdout


def test_a_storyboard_that_is_a_folder_linked_to_itself_is_a_message(tmp_path):
    root = project(tmp_path)
    (root / "loop").symlink_to("loop")
    err = failed(kc(root, "validate", "loop"))
    assert err.startswith("loop: error: cannot read the storyboard: it leads through a loop")


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "self-link", "folder"])
def test_a_special_file_as_vars_ends_in_seconds(tmp_path, kind):
    root = project(tmp_path)
    _special(root, "vars.yaml", kind)
    err = failed(kc(root, "validate", "--vars", "vars.yaml"))
    assert err.startswith("vars.yaml: error: "), err
    assert "--vars file" in err


def test_vars_from_dev_zero_ends_in_seconds(tmp_path):
    root = project(tmp_path)
    err = failed(kc(root, "validate", "--vars", "/dev/zero"))
    assert err.startswith("/dev/zero: error: --vars file is a device, not a regular file")


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "self-link"])
def test_a_special_file_as_a_saved_plan_ends_in_seconds(tmp_path, kind):
    root = project(tmp_path)
    _special(root, "plan.json", kind)
    err = failed(kc(root, "run", "--plan", "plan.json"))
    assert err.startswith("plan.json: error: "), err
    assert "the saved plan" in err
    assert not (root / "renders").exists()


def test_run_plan_dev_zero_ends_in_seconds(tmp_path):
    root = project(tmp_path)
    err = failed(kc(root, "run", "--plan", "/dev/zero"))
    assert err.startswith("/dev/zero: error: the saved plan is a device, not a regular file")


def test_a_storyboard_too_large_is_refused_before_it_is_read(tmp_path):
    from kling_compose.errors import UserError
    from kling_compose.files import MAX_TEXT_BYTES
    from kling_compose.pipeline import read_storyboard

    path = project(tmp_path) / "storyboard.yaml"
    with path.open("r+b") as f:
        f.truncate(MAX_TEXT_BYTES + 1)  # sparse: nothing is written to disk
    with pytest.raises(UserError, match="more than the 16,777,216 allowed"):
        read_storyboard(path, "storyboard.yaml")


# -- options -----------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["nan", "-nan", "NaN", "snan", "inf", "-inf", "Infinity",
                                   "-1", "1e999", "abc", "", "1" * 100])
def test_max_cost_that_is_not_an_amount_is_a_usage_error(tmp_path, value):
    root = project(tmp_path)
    err = failed(kc(root, "run", f"--max-cost={value}"), code=2)
    assert "Invalid value for '--max-cost'" in err and "is not an amount of dollars" in err
    assert not (root / ".kling-compose").exists()


def test_max_cost_takes_plain_amounts():
    from decimal import Decimal

    from kling_compose.cli import _Usd

    for text, amount in (("5", "5"), ("2.50", "2.50"), ("$1.2", "1.2"), ("0", "0")):
        assert _Usd().convert(text, None, None) == Decimal(amount)


# -- plan --out writes only over a saved plan, never over a project file or a device ---------

def test_plan_out_in_a_missing_folder_is_located(tmp_path):
    root = project(tmp_path)
    missing = tmp_path / "missing"
    err = failed(kc(root, "plan", "--out", missing / "x.json"))
    assert err.startswith(f"{missing}/x.json: error: cannot write the saved plan: the folder "
                          f"'{missing}' does not exist"), err
    assert not missing.exists()
    err = failed(kc(root, "plan", "--out", "/missing-kc-folder/x.json"))
    assert err.startswith("/missing-kc-folder/x.json: error: "), err
    assert not os.path.exists("/missing-kc-folder")


@pytest.mark.parametrize("name, role", [
    ("storyboard.yaml", "this is the storyboard"),
    ("link.json", "this is the storyboard"),  # a link to it
    ("assets/start.png", "this is an input of the storyboard (assets/start.png)"),
    ("vars.yaml", "this is an input of this command"),
    (".kling-compose/plan.json", "inside the project's state folder"),
    ("notes.txt", "this file exists and is not a saved plan"),
])
def test_plan_out_never_writes_over_a_project_file(tmp_path, name, role):
    from PIL import Image

    root = project(tmp_path, STORYBOARD.replace(
        "takes: 3\n", "takes: 3\n        first_frame: assets/start.png\n"))
    Image.new("RGB", (320, 180)).save(root / "assets" / "start.png")
    (root / "link.json").symlink_to("storyboard.yaml")
    (root / "vars.yaml").write_text("look: dusk\n")
    (root / ".kling-compose").mkdir()
    (root / ".kling-compose" / "plan.json").write_text("{}")
    (root / "notes.txt").write_text("my notes\n")
    before = {p: fingerprint(p) for p in root.rglob("*")}
    err = failed(kc(root, "plan", "--vars", "vars.yaml", "--out", name))
    assert err.startswith(f"{name}: error: "), err
    assert role in err, err
    assert "nothing was written" in err or "it is not written over" in err
    assert {p: fingerprint(p) for p in root.rglob("*")} == before


def test_plan_out_storyboard_leaves_it_untouched_byte_for_byte(tmp_path):
    root = project(tmp_path)
    board = root / "storyboard.yaml"
    before = fingerprint(board)
    err = failed(kc(root, "plan", "--out", "storyboard.yaml"))
    assert err == ("storyboard.yaml: error: this is the storyboard: the saved plan is never "
                   "written over it; nothing was written\n"
                   "  hint: save the plan under a new name, e.g. plan.json\n")
    assert fingerprint(board) == before
    assert sorted(p.name for p in root.iterdir()) == ["assets", "storyboard.yaml"]


def _device_stand_in(folder: Path) -> Path:
    """A character device node like /dev/full (made with mknod as root); a named pipe where
    device nodes cannot be made (not root, or a container without CAP_MKNOD)."""
    path = folder / "full"
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 7))
    except (PermissionError, OSError):
        os.mkfifo(path)
    return path


@pytest.mark.parametrize("command", [["plan", "--out"], ["export", "-o"]])
def test_an_output_over_a_device_node_leaves_the_node_in_place(tmp_path, command):
    root = project(tmp_path)
    device = _device_stand_in(tmp_path)
    before = fingerprint(device)
    err = failed(kc(root, *command, device))
    assert fingerprint(device) == before
    if command[0] == "plan":  # export first says the film is not assembled
        kind = "a device" if stat.S_ISCHR(os.lstat(device).st_mode) else "a named pipe"
        assert err.startswith(f"{device}: error: this is {kind}: the saved plan is written "
                              "only over a regular file"), err
    assert not list(tmp_path.glob(".full.*"))  # no temp file left beside it


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/full"),
                    reason="the real /dev/full, as root (as in CI)")
def test_plan_out_dev_full_as_root_leaves_the_device_node(tmp_path):
    before = os.lstat("/dev/full")
    assert stat.S_ISCHR(before.st_mode)
    root = project(tmp_path)
    try:
        err = failed(kc(root, "plan", "--out", "/dev/full"))
        assert err.startswith("/dev/full: error: this is a device: the saved plan is written "
                              "only over a regular file"), err
    finally:
        after = os.lstat("/dev/full")
        if not stat.S_ISCHR(after.st_mode):  # put the machine's device back before failing
            os.unlink("/dev/full")
            os.mknod("/dev/full", stat.S_IFCHR | stat.S_IMODE(before.st_mode), before.st_rdev)
    assert (stat.S_IFMT(after.st_mode), after.st_rdev, after.st_ino) == \
        (stat.S_IFMT(before.st_mode), before.st_rdev, before.st_ino)


def test_plan_out_replaces_its_own_saved_plan_and_keeps_a_link_a_link(tmp_path):
    root = project(tmp_path)
    assert kc(root, "plan", "--out", "plan.json").returncode == 0
    assert kc(root, "plan", "--out", "plan.json").returncode == 0  # its own kind: replaced
    (root / "saved").mkdir()
    (root / "plan.json").rename(root / "saved" / "plan.json")
    (root / "latest.json").symlink_to("saved/plan.json")
    assert kc(root, "plan", "--out", "latest.json").returncode == 0
    assert (root / "latest.json").is_symlink()
    assert '"format": "kling-compose plan"' in (root / "saved" / "plan.json").read_text()
    assert not list(root.glob(".*.tmp")) and not list(root.glob(".plan.json.*"))


def test_plan_out_a_folder_is_a_usage_error(tmp_path):
    root = project(tmp_path)
    (root / "plans").mkdir()
    err = failed(kc(root, "plan", "--out", "plans"), code=2)
    assert "'plans' is a directory" in err and ".tmp" not in err


# -- init --------------------------------------------------------------------------------------

def test_init_in_proc_is_a_message(tmp_path):
    err = failed(kc(tmp_path, "init", "/proc/kc-project"))
    assert err.startswith("/proc/kc-project: error: cannot create the project here: "), err


def test_init_dev_null_is_a_usage_error_and_leaves_the_device(tmp_path):
    before = fingerprint(Path("/dev/null"))
    err = failed(kc(tmp_path, "init", "/dev/null"), code=2)
    assert "'/dev/null' is a device, not a folder" in err
    assert fingerprint(Path("/dev/null"))[:3] == before[:3]


def test_init_never_writes_through_a_link(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = tmp_path / "film"
    folder.mkdir()
    (folder / "storyboard.yaml").symlink_to(outside / "storyboard.yaml")
    err = failed(kc(tmp_path, "init", "film"))
    assert "already exists" in err and not (outside / "storyboard.yaml").exists()
    (folder / "storyboard.yaml").unlink()
    (folder / ".gitignore").symlink_to(outside / "gitignore")
    assert kc(tmp_path, "init", "film").returncode == 0
    assert list(outside.iterdir()) == [] and (folder / ".gitignore").is_symlink()
    assert (folder / "storyboard.yaml").is_file()


def test_init_a_path_too_long_is_a_message(tmp_path):
    err = failed(kc(tmp_path, "init", "x" * 5000))
    assert "the path is too long for the file system" in err and len(err) < 1000


# -- pick --------------------------------------------------------------------------------------

ANCHORED = """\
version: 1
name: anchored
defaults:
  provider: preview
scenes:
  - id: m
    shots:
      - &base {id: s1, prompt: a quiet harbour at dusk, takes: 3}
      - {<<: *base, id: s2}
"""


def test_pick_through_an_anchor_shared_with_another_shot_is_refused(tmp_path):
    root = project(tmp_path, ANCHORED)
    before = fingerprint(root / "storyboard.yaml")
    err = failed(kc(root, "pick", "s1", "2"))
    assert err.startswith("storyboard.yaml:8:16: error: cannot set the pick here: shot(s) "
                          "'s2' share this mapping"), err
    assert fingerprint(root / "storyboard.yaml") == before
    # s2's own mapping can take a pick of its own: only s2 changes
    assert kc(root, "pick", "s2", "2").returncode == 0
    from kling_compose.pipeline import load_resolved

    shots = {s.id: s.pick for s in load_resolved(root / "storyboard.yaml").shots}
    assert shots == {"s1": 1, "s2": 2}


def test_pick_of_a_shot_whose_pick_comes_from_an_anchor_is_refused(tmp_path):
    text = ANCHORED.replace("takes: 3}", "takes: 3, pick: 1}")
    root = project(tmp_path, text)
    before = fingerprint(root / "storyboard.yaml")
    err = failed(kc(root, "pick", "s2", "3"))
    assert err.startswith("storyboard.yaml:8:73: error: cannot set the pick here: shot(s) "
                          "'s1' share this mapping"), err
    assert fingerprint(root / "storyboard.yaml") == before


@pytest.mark.parametrize("newline, where", [("\r", "1:11"), ("\u2028", "1:11"),
                                            ("\x85", "1:11")])
def test_pick_in_a_file_with_other_line_ends_is_refused_located(tmp_path, newline, where):
    text = STORYBOARD.replace("\n", newline) if newline == "\r" else \
        STORYBOARD.replace("version: 1\n", f"version: 1{newline}\n")
    root = project(tmp_path, text)
    before = fingerprint(root / "storyboard.yaml")
    result = kc(root, "pick", "s1", "2")
    err = failed(result)
    assert err.startswith(f"storyboard.yaml:{where}: error: cannot set the pick in this file")
    assert fingerprint(root / "storyboard.yaml") == before


def test_pick_in_a_symlinked_storyboard_edits_the_file_and_keeps_the_link(tmp_path):
    root = project(tmp_path)
    real = root / "boards" / "real.yaml"
    real.parent.mkdir()
    (root / "storyboard.yaml").rename(real)
    (root / "storyboard.yaml").symlink_to("boards/real.yaml")
    result = kc(root, "pick", "s1", "2")
    assert result.returncode == 0, result.stderr
    assert os.readlink(root / "storyboard.yaml") == "boards/real.yaml"
    assert "        pick: 2\n" in real.read_text()
    assert not list(root.glob(".storyboard.yaml.*")) and not list(real.parent.glob(".*"))


def test_pick_in_a_storyboard_that_links_to_itself_is_a_message(tmp_path):
    root = tmp_path / "film"
    root.mkdir()
    (root / "storyboard.yaml").symlink_to("storyboard.yaml")
    err = failed(kc(root, "pick", "s1", "2"))
    assert err.startswith("storyboard.yaml: error: cannot read the storyboard: it leads "
                          "through a loop")


# -- images whose EXIF is damaged ----------------------------------------------------------------

def _broken_exif_jpeg() -> bytes:
    """A JPEG whose EXIF ImageDescription points past the end of its block: Pillow warns
    when it reads the EXIF (on open, for the DPI)."""
    import io
    import struct

    from PIL import Image

    exif = Image.Exif()
    exif[270] = "x" * 50
    out = io.BytesIO()
    Image.new("RGB", (320, 180), (10, 20, 30)).save(out, "JPEG", exif=exif.tobytes())
    data = bytearray(out.getvalue())
    start = data.find(b"Exif\0\0") + 6
    order = "<" if data[start:start + 2] == b"II" else ">"
    ifd = struct.unpack(order + "I", data[start + 4:start + 8])[0]
    for k in range(struct.unpack(order + "H", data[start + ifd:start + ifd + 2])[0]):
        entry = start + ifd + 2 + 12 * k
        tag, kind, count, _ = struct.unpack(order + "HHLL", data[entry:entry + 12])
        if tag == 270:
            data[entry:entry + 12] = struct.pack(order + "HHLL", tag, kind, count, 60000)
    return bytes(data)


def test_pillows_exif_warnings_do_not_reach_stderr(tmp_path):
    import warnings

    from PIL import Image

    data = _broken_exif_jpeg()
    with warnings.catch_warnings(record=True) as caught:  # the oracle: Pillow does warn
        warnings.simplefilter("always")
        with Image.open(__import__("io").BytesIO(data)) as image:
            image.load()
    assert caught, "the image no longer makes Pillow warn: the test proves nothing"
    root = project(tmp_path, STORYBOARD.replace("takes: 3\n", "takes: 3\n        aspect: '16:9'\n"
                                                "        first_frame: assets/exif.jpg\n")
                   + "elements:\n  boat:\n    description: a boat\n"
                     "    frontal_image: assets/exif.jpg\n")
    (root / "assets" / "exif.jpg").write_bytes(data)
    result = kc(root, "validate")
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr and "EXIF" not in result.stderr, result.stderr
    assert "Truncated" not in result.stderr, result.stderr
    # a run opens the images again (frames, continuity, the provider's checks): no raw warning
    ran = kc(root, "run", "-q", "--provider", "preview", "--preview-resolution", "72")
    assert "Warning" not in ran.stderr and "EXIF" not in ran.stderr, ran.stderr


# -- a folder where run writes a film or a shot's clip ------------------------------------------

def test_a_folder_where_the_film_goes_is_refused_at_the_output_before_paying(tmp_path):
    root = project(tmp_path, STORYBOARD + "outputs:\n  - path: renders/cut.mp4\n")
    (root / "renders" / "cut.mp4").mkdir(parents=True)
    for command in ("validate", "plan", "run"):
        err = failed(kc(root, command))
        assert err == ("storyboard.yaml:12:5: error: output path 'renders/cut.mp4' is a "
                       "folder: run writes the film there\n"
                       "  hint: remove it, or give the film another path\n"), err
        assert ".tmp" not in err
    assert list((root / "renders" / "cut.mp4").iterdir()) == []


def test_a_folder_or_pipe_where_a_shots_clip_goes_is_refused_at_the_shot(tmp_path):
    root = project(tmp_path)
    shots = root / "renders" / "shots"
    shots.mkdir(parents=True)
    (shots / "s1.mp4").mkdir()
    err = failed(kc(root, "run"))
    assert err.startswith("storyboard.yaml:8:13: error: renders/shots/s1.mp4 is a folder: run "
                          "copies the clip of shot 's1' there"), err
    (shots / "s1.mp4").rmdir()
    os.mkfifo(shots / "s1.mp4")
    err = failed(kc(root, "validate"))
    assert "renders/shots/s1.mp4 is a named pipe" in err


@pytest.mark.parametrize("args, what", [
    (["validate", "--vars"], "cannot read --vars file: the path is too long"),
    (["run", "--plan"], "cannot read the saved plan: the path is too long"),
    (["plan", "--out"], "cannot write the saved plan: the path is too long"),
    (["export", "-o"], ""),  # export first says the film is not assembled
])
def test_an_option_path_of_5000_characters_is_a_message(tmp_path, args, what):
    root = project(tmp_path)
    err = failed(kc(root, *args, "y" * 5000))
    assert what in err and len(err) < 1000, err
    assert sorted(p.name for p in root.iterdir()) in (["assets", "storyboard.yaml"],
                                                      [".kling-compose", "assets",
                                                       "storyboard.yaml"])
