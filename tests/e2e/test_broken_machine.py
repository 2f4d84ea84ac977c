"""A broken machine (issue 9, first part): a damaged lock file or ledger is named before the
run starts, with the way back; files are written with the user's umask; temp files a killed
run left are removed by the next one."""

from __future__ import annotations

import json
import os
import stat

import pytest
from _e2e import PREVIEW, chain_storyboard, cli, run_json
from support.locks import rehearsal_lock


def run(root):
    return cli("run", root, *PREVIEW)


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe{not utf-8", "storyboard.lock is not UTF-8 text"),
    (b'{"shots": [1, 2]}', "storyboard.lock does not have the shape"),
    (b'{"shots": {"s1": "x"}}', "storyboard.lock does not have the shape"),
    (b"{ half a file", "storyboard.lock is not valid JSON"),
])
def test_a_damaged_lock_file_is_refused_before_the_run_starts(project, content, message):
    root = project(chain_storyboard(1))
    (root / "storyboard.lock").write_bytes(content)
    result = run(root)
    assert result.exit_code == 1 and message in result.output, result.output
    assert "git checkout storyboard.lock" in result.output
    assert not (root / ".kling-compose" / "state.db").exists()  # nothing was started
    (root / "storyboard.lock").unlink()
    assert run(root).exit_code == 0


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
@pytest.mark.parametrize("command", ["run", "status", "plan"])
def test_a_damaged_ledger_is_named_with_the_way_back(project, damage, command):
    root = project(chain_storyboard(2))
    assert run(root).exit_code == 0
    film = (root / "renders" / "chain.mp4").read_bytes()
    db = root / ".kling-compose" / "state.db"
    for extra in ("state.db-wal", "state.db-shm"):
        (root / ".kling-compose" / extra).unlink(missing_ok=True)
    data = db.read_bytes()
    db.write_bytes(os.urandom(4096) if damage == "garbage" else data[: len(data) // 2])
    args = (command, root, *PREVIEW) if command == "run" else (command, root)
    result = cli(*args)
    assert result.exit_code == 1, result.output
    assert "state.db is damaged" in result.output and "state.db.damaged" in result.output
    assert "Traceback" not in result.output
    db.rename(db.with_name("state.db.damaged"))
    # the way back: storyboard.lock and the store hold every paid result
    planned = json.loads(cli("plan", root, "--json", *PREVIEW).output)["tasks"]
    assert {t["id"]: t["status"] for t in planned if t["kind"] == "generate"} == \
        {"generate:s1": "restorable", "generate:s2": "restorable"}
    summary = run_json(root)
    assert summary["restored"] == 2 and summary["generated"] == 0 and summary["failed"] == 0
    assert (root / "renders" / "chain.mp4").read_bytes() == film
    assert run_json(root)["cached"] == 2  # the ledger is whole again


def test_films_clips_and_the_lock_are_written_with_the_users_umask(project):
    root = project(chain_storyboard(2))
    old = os.umask(0o022)
    try:
        assert run(root).exit_code == 0
    finally:
        os.umask(old)
    for path in [rehearsal_lock(root), root / "renders" / "chain.mp4",
                 *(root / "renders" / "shots").iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_temp_files_left_by_a_killed_run_are_removed_by_the_next(project):
    root = project(chain_storyboard(1))
    assert run(root).exit_code == 0
    stale = [root / "renders" / ".tmp-abc.mp4", root / "renders" / "shots" / ".tmp-x.mp4",
             root / ".storyboard.lock.k2j3"]
    for path in stale:
        path.write_bytes(b"half")
    summary = run_json(root)
    assert summary["failed"] == 0
    assert not any(p.exists() for p in stale)


def test_a_task_is_running_only_while_a_live_run_holds_the_project(project):
    import fcntl
    import json
    import sqlite3

    root = project(chain_storyboard(1))
    assert run(root).exit_code == 0
    db = sqlite3.connect(root / ".kling-compose" / "state.db")
    db.execute("UPDATE tasks SET status='running' WHERE task_id='generate:s1'")  # a SIGKILL
    db.commit()
    db.close()
    report = json.loads(cli("status", root, "--json").stdout)
    assert report["running"] == 0 and report["interrupted"] == 1
    with open(root / ".kling-compose" / "run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a run in another process
        report = json.loads(cli("status", root, "--json").stdout)
    assert report["running"] == 1 and report["interrupted"] == 0


@pytest.mark.parametrize("link", ["renders", "renders/shots", ".kling-compose",
                                  ".kling-compose/objects"])
def test_nothing_is_written_through_a_link_out_of_the_project(project, tmp_path, link):
    root = project(chain_storyboard(1))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / link).parent.mkdir(parents=True, exist_ok=True)
    (root / link).symlink_to(elsewhere, target_is_directory=True)
    result = run(root)
    assert result.exit_code == 1 and "leads outside the project" in result.output, result.output
    assert list(elsewhere.iterdir()) == []
    (root / link).unlink()
    assert run(root).exit_code == 0


def test_an_unwritable_renders_folder_is_a_message_and_the_run_resumes(project):
    root = project(chain_storyboard(2))
    (root / "renders").write_text("a file where the folder should be")
    result = run(root)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "could not write renders" in result.output and "the run resumes" in result.output
    (root / "renders").unlink()
    summary = run_json(root)
    assert summary["failed"] == 0 and summary["generated"] == 0  # the clips were kept
    assert (root / "renders" / "chain.mp4").is_file()


def _processes_mentioning(text: str) -> list[int]:
    from pathlib import Path

    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and "ffmpeg" in cmdline:
            found.append(int(proc.name))
    return found


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc (Linux)")
def test_ffmpeg_dies_with_a_killed_run(project):
    import signal
    import subprocess
    import sys
    import time

    storyboard = chain_storyboard(1).replace("  duration: 3\n", "  duration: 15\n")
    root = project(storyboard)
    command = [sys.executable, "-m", "kling_compose", "run", str(root),
               "--preview-resolution", "2160"]  # an animatic ffmpeg needs many seconds for
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _processes_mentioning(str(root)):
        time.sleep(0.05)
    assert _processes_mentioning(str(root)), "ffmpeg never started"
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and _processes_mentioning(str(root)):
        time.sleep(0.05)
    left = _processes_mentioning(str(root))
    for pid in left:  # do not leave them running whatever the outcome
        os.kill(pid, signal.SIGKILL)
    assert left == []


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc (Linux)")
def test_ffmpeg_started_the_way_the_run_starts_it_dies_with_a_killed_parent(tmp_path):
    """The test above can pass without the parent-death signal (a killed run's ffmpeg may die
    of SIGPIPE on its stderr); here ffmpeg writes nothing, so only the signal can end it."""
    import signal
    import subprocess
    import sys
    import time

    marker = str(tmp_path / "marker.nut")
    parent = (
        "import subprocess, time\n"
        "from kling_compose.media.ffmpeg import _dies_with_parent, ffmpeg_exe\n"
        f"subprocess.Popen([*_dies_with_parent(), ffmpeg_exe(), '-loglevel', 'quiet', '-re',"
        f" '-f', 'lavfi', '-i', 'nullsrc=s=32x32:d=120', '-y', {marker!r}],"
        " stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "time.sleep(120)\n")
    script = tmp_path / "parent.py"  # not on the command line: only ffmpeg's names the marker
    script.write_text(parent)
    proc = subprocess.Popen([sys.executable, str(script)])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not _processes_mentioning(marker):
        time.sleep(0.05)
    assert _processes_mentioning(marker), "ffmpeg never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and _processes_mentioning(marker):
        time.sleep(0.05)
    left = _processes_mentioning(marker)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == []
