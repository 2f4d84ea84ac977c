"""A broken machine (issue 9, first part): a damaged lock file or ledger is named before the
run starts, with the way back; files are written with the user's umask; temp files a killed
run left are removed by the next one."""

from __future__ import annotations

import os
import stat

import pytest
from _e2e import PREVIEW, chain_storyboard, cli, run_json


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
    db = root / ".kling-compose" / "state.db"
    for extra in ("state.db-wal", "state.db-shm"):
        (root / ".kling-compose" / extra).unlink(missing_ok=True)
    data = db.read_bytes()
    db.write_bytes(os.urandom(4096) if damage == "garbage" else data[: len(data) // 2])
    args = (command, root, *PREVIEW) if command == "run" else (command, root)
    result = cli(*args)
    assert result.exit_code == 1, result.output
    assert "state.db is damaged" in result.output and "state.db.broken" in result.output
    assert "Traceback" not in result.output
    db.rename(db.with_name("state.db.broken"))
    assert run(root).exit_code == 0


def test_films_clips_and_the_lock_are_written_with_the_users_umask(project):
    root = project(chain_storyboard(2))
    old = os.umask(0o022)
    try:
        assert run(root).exit_code == 0
    finally:
        os.umask(old)
    for path in [root / "storyboard.lock", root / "renders" / "chain.mp4",
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
