"""Hostile state, lock and folders (issue 22): a ledger whose bytes were flipped inside rows, a
lock nested 100,000 deep, links inside .kling-compose, a read-only project, a paid clip whose
object and result URL are both gone. Each ends within seconds with one message (exit 1),
never a traceback, and nothing is written outside the project."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _e2e import PREVIEW, chain_storyboard, cli, run_json
from test_money_runs import KEYS, environment, sim  # noqa: F401

from kling_compose.simulator import Faults, Simulator
from support.locks import read_lock, rehearsal_lock


def run(root, *args):
    return cli("run", root, *PREVIEW, *args)


def made(project, shots: int = 2) -> Path:
    root = project(chain_storyboard(shots))
    assert run(root).exit_code == 0
    return root


def command_args(command: str, root: Path) -> tuple:
    return (command, root, *PREVIEW) if command == "run" else (command, root)


def flip(db: Path, pattern: bytes, to: bytes, nth: int = 0) -> None:
    """Overwrite one byte SQLite's quick_check does not look at: inside a row's text, or a
    column's name in the schema."""
    for extra in ("-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    data = bytearray(db.read_bytes())
    found = [m.start() for m in re.finditer(re.escape(pattern), data)]
    assert len(found) > nth, pattern
    data[found[nth] + 1:found[nth] + 1 + len(to)] = to
    db.write_bytes(bytes(data))


FLIPS = {
    "json-in-a-row": (b'[["', b"x"),  # artifacts: JSONDecodeError
    "not-utf8-in-a-row": (b'[["', b"\xff"),
    "schema-not-utf8": (b"artifacts TEXT", b"\xff"),  # UnicodeDecodeError on a column name
    "schema-renamed": (b"phase TEXT", b"x"),  # would be added anew, the phases lost
    # SQLite's own message quotes the byte that is not UTF-8 (found by 60 random flips)
    "schema-does-not-parse": (b" kind TEXT NOT NULL", b"\x9f"),
}


@pytest.mark.parametrize("damage", sorted(FLIPS))
@pytest.mark.parametrize("command", ["status", "plan", "run", "doctor"])
def test_flipped_bytes_inside_rows_are_a_damaged_ledger(project, damage, command):
    root = made(project)
    film = (root / "renders" / "chain.mp4").read_bytes()
    db = root / ".kling-compose" / "state.db"
    flip(db, *FLIPS[damage])
    before = db.read_bytes()
    started = time.monotonic()
    result = cli(*command_args(command, root))
    assert time.monotonic() - started < 30
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "state.db is damaged" in result.output, result.output
    if command != "doctor":
        assert "state.db.damaged" in result.output  # the way back
    assert db.read_bytes() == before  # nothing added to it (no column made anew)
    db.rename(db.with_name("state.db.damaged"))
    summary = run_json(root)  # rebuilt from the lock and the objects, paying nothing
    assert summary["restored"] == 2 and summary["generated"] == 0 and summary["failed"] == 0
    assert (root / "renders" / "chain.mp4").read_bytes() == film


@pytest.mark.parametrize("whole", [True, False], ids=["in-flight-row-whole",
                                                      "in-flight-row-damaged"])
def test_a_damaged_ledger_names_the_generations_it_holds_in_flight(project, whole):
    root = made(project)
    db_path = root / ".kling-compose" / "state.db"
    db = sqlite3.connect(db_path)
    db.execute("UPDATE tasks SET status='running', phase='submitted', provider='runware', "
               "provider_task_id='3f2a9c1e-in-flight' WHERE task_id='generate:s2'")
    broken = "generate:s1" if whole else "generate:s2"
    db.execute("UPDATE tasks SET result='{not json' WHERE task_id=?", (broken,))
    db.commit()
    db.close()
    result = cli("status", root)
    assert result.exit_code == 1 and "state.db is damaged" in result.output, result.output
    text = " ".join(result.output.split())
    if whole:
        assert "generate:s2 at runware, task 3f2a9c1e-in-flight: the next run takes them " \
            "over from state.db.damaged and polls them, paying nothing again" in text, text
    else:
        assert "generate:s2 at runware, task 3f2a9c1e-in-flight, whose record is damaged: " \
            "keep state.db.damaged" in text and "kling-compose adopt" in text, text


def test_a_damaged_ledger_whose_statuses_do_not_read_says_it_cannot_tell(project):
    root = made(project)
    db = sqlite3.connect(root / ".kling-compose" / "state.db")
    db.execute("UPDATE tasks SET status = CAST(x'64ff6e65' AS TEXT) "  # 'd\xffne'
               "WHERE task_id = 'generate:s2'")
    db.commit()
    db.close()
    result = cli("plan", root)
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "state.db is damaged" in text, text
    assert "cannot tell whether it records generations submitted and not finished" in text


@pytest.mark.parametrize("command", ["status", "plan", "run", "doctor", "gc"])
def test_a_lock_nested_100000_deep_is_refused_at_once(project, command):
    root = made(project)
    lock = root / "storyboard.lock"
    lock.write_text('{"shots": ' + "[" * 100_000 + "]" * 100_000 + "}")
    started = time.monotonic()
    result = cli(*command_args(command, root))
    assert time.monotonic() - started < 30
    assert "Traceback" not in result.output and "RecursionError" not in result.output
    # every command that reads the lock refuses it, named: read as no lock, a clone would plan
    # every paid shot as new (issue 26)
    assert result.exit_code == 1, result.output
    assert "storyboard.lock nests deeper than 200 levels" in result.output


@pytest.mark.parametrize("link", ["state.db", "run.lock", "objects/ab", "tmp", "state.db-wal"])
def test_links_inside_kling_compose_are_refused_and_nothing_is_written_through(
        project, tmp_path, link):
    root = made(project, 1)
    folder = root / ".kling-compose"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "target"  # dangling: what follows it would create it
    place = folder / link
    if place.is_dir():
        shutil.rmtree(place)
    else:
        place.unlink(missing_ok=True)
    place.parent.mkdir(parents=True, exist_ok=True)
    if link == "objects/ab":  # a two-letter folder of the store, where clips are written
        target.mkdir()
        for digest in {p.name[:2] for p in (folder / "objects").glob("*/*")}:
            shutil.rmtree(folder / "objects" / digest)
            (folder / "objects" / digest).symlink_to(target, target_is_directory=True)
    else:
        place.symlink_to(target)
    for args in (("run", root, *PREVIEW, "--force", "s1"), ("gc", root)):
        result = cli(*args)
        assert result.exit_code == 1, result.output
        assert "is a symbolic link" in result.output or \
            "leads outside the project" in result.output, result.output
        assert "Traceback" not in result.output
    assert not target.exists() or list(target.iterdir()) == []
    assert sorted(p.name for p in elsewhere.iterdir()) == (["target"] if link == "objects/ab"
                                                           else [])


def test_a_ledger_linked_elsewhere_is_not_read_as_no_ledger(project, tmp_path):
    root = made(project, 1)
    db = root / ".kling-compose" / "state.db"
    db.unlink()
    db.symlink_to(tmp_path / "nowhere.db")
    for command in ("status", "plan"):
        result = cli(command, root)
        assert result.exit_code == 1 and "state.db is a symbolic link" in result.output
    assert not (tmp_path / "nowhere.db").exists()


# -- a read-only project: a read-only bind mount (root ignores permission bits), else chmod --

def _mount_works() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c",
                            "mount --bind /tmp /tmp && mount -o remount,bind,ro /tmp"],
                           capture_output=True)
    return probe.returncode == 0


MOUNT = _mount_works()
pytestmark_readonly = pytest.mark.skipif(
    os.geteuid() == 0 and not MOUNT, reason="root ignores permissions and cannot mount")


def read_only(root: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """kling-compose ARGS with the project folder read-only (a separate process)."""
    command = [sys.executable, "-m", "kling_compose", *args]
    env = os.environ | {"COLUMNS": "200"}
    if MOUNT:
        command = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" "$0" && '
                   'mount -o remount,bind,ro "$0" && exec "$@"', str(root), *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env=env)
    modes = {p: p.stat().st_mode for p in [root, *root.rglob("*")] if not p.is_symlink()}
    for path in modes:
        path.chmod(modes[path] & ~0o222)
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env=env)
    finally:
        for path, mode in modes.items():
            path.chmod(mode)


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None
            for p in sorted(root.rglob("*"))}


@pytestmark_readonly
@pytest.mark.parametrize("command", [("status",), ("plan",), ("gc", "--dry-run"),
                                     ("doctor",)])
def test_read_only_commands_work_in_a_read_only_project(project, command):
    root = made(project)
    before = snapshot(root)
    result = read_only(root, *command, str(root))
    out = result.stdout + result.stderr
    assert "Traceback" not in out and "could not write" not in out, out
    assert result.returncode == 0, out
    if command == ("status",):
        assert "done 4" in out and "pending 0" in out, out
    assert snapshot(root) == before


@pytestmark_readonly
def test_a_ledger_with_a_wal_a_killed_run_left_is_read_in_a_read_only_project(project):
    root = made(project)
    db = sqlite3.connect(root / ".kling-compose" / "state.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("UPDATE tasks SET status='failed', error='left in the wal' "
               "WHERE task_id='generate:s2'")
    wal = root / ".kling-compose" / "state.db-wal"
    assert wal.stat().st_size > 0
    # the writer dies without a checkpoint: copy the files as a killed run leaves them
    kept = {p.name: p.read_bytes() for p in wal.parent.glob("state.db*")}
    db.close()
    for name, data in kept.items():
        (wal.parent / name).write_bytes(data)
    (wal.parent / "state.db-shm").unlink(missing_ok=True)
    result = read_only(root, "status", str(root))
    out = result.stdout + result.stderr
    assert result.returncode == 0 and "left in the wal" in out, out


@pytestmark_readonly
@pytest.mark.parametrize("fresh", [False, True], ids=["made", "fresh"])
@pytest.mark.parametrize("command", [("run", *PREVIEW), ("gc",)])
def test_writing_commands_say_what_cannot_be_written_in_a_read_only_project(
        project, command, fresh):
    root = project(chain_storyboard(2)) if fresh else made(project)
    if fresh:
        (root / "storyboard.lock").unlink(missing_ok=True)
    if command == ("gc",) and not fresh:  # something for gc to remove
        (root / ".kling-compose" / "objects" / "00").mkdir()
        (root / ".kling-compose" / "objects" / "00" / ("0" * 64 + ".mp4")).write_bytes(b"x")
    before = snapshot(root)
    result = read_only(root, *command[:1], str(root), *command[1:])
    out = result.stdout + result.stderr
    assert "Traceback" not in out, out
    if command == ("gc",) and fresh:
        assert result.returncode == 0, out  # nothing to remove: nothing to write
    else:
        assert result.returncode == 1, out
        assert re.search(r"could not (write|remove) \.kling-compose/\S+: "
                         r"(Read-only file system|Permission denied|\.kling-compose is "
                         r"read-only)", out), out
    assert snapshot(root) == before


# -- a paid clip whose object and result URL are both gone --

ONE = """version: 1
name: one
defaults:
  duration: 3
  aspect: '16:9'
scenes:
  - id: main
    shots:
      - id: s1
        prompt: a lantern drifts across the harbour
"""


def test_objects_and_result_url_gone_plan_and_run_agree_the_shot_is_paid_again(project):
    root = project(ONE)
    with Simulator(KEYS, Faults(task_seconds=0.05)) as first:
        summary = json.loads(cli("run", root, "--json", "--provider", "runware", *PREVIEW,
                                 env=environment(first)).stdout)
        assert summary["generated"] == 1
    shutil.rmtree(root / ".kling-compose" / "objects")  # and the first server is gone
    with Simulator(KEYS, Faults(task_seconds=0.05)) as second:  # forgot every task
        env = environment(second)
        plan = json.loads(cli("plan", root, "--json", "--provider", "runware",
                              env=env).stdout)
        task = next(t for t in plan["tasks"] if t["id"] == "generate:s1")
        assert task["status"] not in ("cached", "restorable"), task
        assert "result URL" in (task.get("reason") or ""), task
        result = cli("run", root, "--json", "--provider", "runware", *PREVIEW, env=env)
        summary = json.loads(result.stdout)
        assert result.exit_code == 0, result.output
        assert summary["generated"] == 1 and summary["failed"] == 0, summary
        assert "does not know task" not in result.output
        assert len(second.generations("runware")) == 1  # paid once, as the plan said
        again = json.loads(cli("run", root, "--json", "--provider", "runware", *PREVIEW,
                               env=env).stdout)
        assert again["cached"] == 1 and len(second.generations("runware")) == 1


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "folder"])
@pytest.mark.parametrize("command", ["status", "run"])
def test_a_lock_that_is_not_a_regular_file_ends_at_once(project, kind, command):
    root = made(project, 1)
    lock = root / "storyboard.lock"  # a preview project has none (issue 26): one is put there
    lock.unlink(missing_ok=True)
    if kind == "dev-zero":
        lock.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(lock)
    else:
        lock.mkdir()
    started = time.monotonic()
    result = cli(*command_args(command, root))
    assert time.monotonic() - started < 30 and "Traceback" not in result.output
    assert result.exit_code == 1, result.output  # status too (issue 26)
    assert "not a regular file" in result.output or \
        "storyboard.lock cannot be read" in result.output, result.output


# -- the way back keeps what only the damaged ledger knew --


def damage_row(root: Path, task_id: str) -> None:
    db = sqlite3.connect(root / ".kling-compose" / "state.db")
    db.execute("UPDATE tasks SET result='{not json' WHERE task_id=?", (task_id,))
    db.commit()
    db.close()


def move_aside(root: Path) -> None:
    """What the damaged message's hint says: the ledger alone (its -wal stays behind)."""
    db = root / ".kling-compose" / "state.db"
    db.rename(db.with_name("state.db.damaged"))


def test_a_finished_generation_the_lock_does_not_name_is_taken_over(project):
    root = made(project, 2)
    lock = read_lock(rehearsal_lock(root))
    del lock["shots"]["s2"]  # a run killed after s2 was made, before it wrote the lock
    rehearsal_lock(root).write_text(json.dumps(lock))
    damage_row(root, "generate:s1")
    assert "state.db is damaged" in cli("plan", root).output
    move_aside(root)
    planned = json.loads(cli("plan", root, "--json", *PREVIEW).stdout)["tasks"]
    statuses = {t["id"]: t["status"] for t in planned}
    assert statuses["generate:s1"] == "restorable" and statuses["generate:s2"] == "cached"
    result = cli("run", root, "--json", *PREVIEW)
    summary = json.loads(result.stdout)
    assert summary["generated"] == 0 and summary["restored"] == 1, summary
    status = {t["id"]: t["status"] for t in summary["tasks"]}
    assert status["generate:s2"] == "cached", status
    assert "warning: a new ledger took over from .kling-compose/state.db.damaged: 1 " \
        "finished generation(s) the lock does not name" in result.stderr, result.stderr
    assert run_json(root)["cached"] == 2


def test_a_generation_in_flight_in_a_damaged_ledger_is_polled_not_paid_again(project, sim):
    from test_money_runs import run as sim_run

    root = project(chain_storyboard(2))
    first = sim_run(root, "runware", sim)
    assert first["generated"] == 2
    billed = len(sim.generations("runware"))
    # s2 as a run killed while polling leaves it: submitted, not finished, not in the lock,
    # no clip in the store; then bytes flip in s1's row
    db = sqlite3.connect(root / ".kling-compose" / "state.db")
    digest = db.execute("SELECT artifacts FROM tasks WHERE task_id='generate:s2'").fetchone()[0]
    db.execute("UPDATE tasks SET status='running', artifacts=NULL, finished_at=NULL "
               "WHERE task_id='generate:s2'")
    db.commit()
    db.close()
    for sha, suffix in json.loads(digest):
        (root / ".kling-compose" / "objects" / sha[:2] / f"{sha}{suffix}").unlink()
    lock = read_lock(root / "storyboard.lock")  # runware: paid, in the committed lock
    del lock["shots"]["s2"]
    (root / "storyboard.lock").write_text(json.dumps(lock))
    damage_row(root, "generate:s1")
    result = cli("status", root, env=environment(sim))
    text = " ".join(result.output.split())
    assert result.exit_code == 1 and "generate:s2 at runware, task" in text, text
    move_aside(root)
    result = cli("run", root, "--json", "--provider", "runware", *PREVIEW,
                 env=environment(sim))
    summary = json.loads(result.stdout)
    status = {t["id"]: t["status"] for t in summary["tasks"]}
    assert status["generate:s1"] == "restored" and status["generate:s2"] == "done", summary
    assert len(sim.generations("runware")) == billed  # polled and collected, not paid again
    assert "took over from .kling-compose/state.db.damaged: 1 generation(s) submitted and " \
        "not finished (polled, not paid again)" in result.stderr, result.stderr
    assert sim_run(root, "runware", sim)["cached"] == 2


def test_a_damaged_ledger_is_taken_over_once(project):
    root = made(project, 2)
    lock = read_lock(rehearsal_lock(root))
    del lock["shots"]["s2"]
    rehearsal_lock(root).write_text(json.dumps(lock))
    damage_row(root, "generate:s1")
    move_aside(root)
    result = cli("run", root, *PREVIEW)
    assert result.exit_code == 0 and "took over" in result.stderr, result.output
    folder = root / ".kling-compose"
    assert not (folder / "state.db.damaged").exists()
    kept = [p for p in folder.glob("state.db.damaged.taken-over-*")
            if not p.name.endswith(("-wal", "-shm"))]
    assert len(kept) == 1 and kept[0].name in result.stderr
    (folder / "state.db").unlink()  # a ledger deleted later: nothing old is taken over again
    result = cli("run", root, *PREVIEW)
    assert result.exit_code == 0 and "took over" not in result.stderr, result.output


def test_a_ledger_cut_between_its_two_tables_reads_as_one_with_no_timings(tmp_path):
    """A full disk stopped the schema after `tasks` (tests/e2e/test_full_disk.py): the read-only
    view behind plan, status and run's pre-check must read it, not call it damaged."""
    import sqlite3

    from kling_compose.project.state import SCHEMA, State

    folder = tmp_path / ".kling-compose"
    folder.mkdir()
    db = sqlite3.connect(folder / "state.db")
    db.executescript(SCHEMA[:SCHEMA.index("CREATE TABLE IF NOT EXISTS timings")])
    db.close()
    state = State(folder / "state.db", readonly=True)
    try:
        assert state.all() == [] and state.timings("fal", "kling-3-pro") == []
    finally:
        state.close()
    State(folder / "state.db").close()  # and a run completes the schema


def test_the_language_server_reads_a_ledger_a_run_is_writing_and_leaves_no_file(tmp_path,
                                                                              monkeypatch):
    """leave_no_trace (`kling-compose lsp`): a ledger read while a run holds it open, its
    last records still in the -wal, is read with them through a private copy; no file is
    made beside it (SQLite's plain read makes -wal and -shm)."""
    from kling_compose.project import state as ledger
    from kling_compose.project.state import State

    folder = tmp_path / ".kling-compose"
    folder.mkdir()
    writer = State(folder / "state.db")  # a run: WAL, open
    writer.start("k1", "generate:a", "generate")
    writer.finish("k1", artifacts=())
    names = sorted(p.name for p in folder.iterdir())
    assert "state.db-wal" in names
    sizes = {p.name: p.stat().st_size for p in folder.iterdir()}
    monkeypatch.setattr(ledger, "_LEAVE_NO_TRACE", True)
    reader = State(folder / "state.db", readonly=True)
    try:
        assert reader.get("k1") is not None
    finally:
        reader.close()
    assert {p.name: p.stat().st_size for p in folder.iterdir()} == sizes
    writer.close()
    assert sorted(p.name for p in folder.iterdir()) == ["state.db"]
    monkeypatch.setattr(ledger, "_LEAVE_NO_TRACE", True)
    reader = State(folder / "state.db", readonly=True)  # no run: read as an immutable file
    try:
        assert reader.get("k1") is not None
    finally:
        reader.close()
    assert sorted(p.name for p in folder.iterdir()) == ["state.db"]
