"""Paid results come back from storyboard.lock and the store (issue 9: a ledger moved aside;
issue 11: a clone), and a re-upload never makes a paid shot look changed. Against the
simulator, which counts what was billed."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from _e2e import PREVIEW, chain_storyboard, cli, clone_project, run_json
from test_money_runs import (KEY_VARIABLES, environment, interrupt_at, lock_of, run,  # noqa: F401
                             sim)

from support.locks import read_lock, rehearsal_lock


def plan_statuses(root, provider, sim) -> dict:
    result = cli("plan", root, "--json", "--provider", provider, env=environment(sim))
    assert result.exit_code == 0, result.output
    return {t["id"]: t["status"] for t in json.loads(result.stdout)["tasks"]}


def move_ledger_aside(root) -> None:
    folder = root / ".kling-compose"
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        if (folder / name).exists():
            (folder / name).rename(folder / f"{name}.damaged")


@pytest.mark.parametrize("provider", ["runware", "fal", "kie"])
def test_a_ledger_moved_aside_is_rebuilt_from_the_lock_without_paying(project, sim, provider):
    root = project(chain_storyboard(3))
    first = run(root, provider, sim)
    assert first["generated"] == 3 and first["failed"] == 0
    film = (root / "renders" / "chain.mp4").read_bytes()
    billed = len(sim.generations(provider))
    move_ledger_aside(root)
    statuses = plan_statuses(root, provider, sim)
    assert [statuses[f"generate:s{i}"] for i in (1, 2, 3)] == ["restorable"] * 3
    again = run(root, provider, sim)
    assert again["restored"] == 3 and again["generated"] == 0 and again["failed"] == 0, again
    assert len(sim.generations(provider)) == billed  # not a cent more
    assert (root / "renders" / "chain.mp4").read_bytes() == film
    assert run(root, provider, sim)["cached"] == 3


@pytest.mark.parametrize("provider", ["fal", "kie"])
def test_plan_and_run_agree_on_an_expired_upload(project, sim, provider):
    """An upload older than the provider keeps files is not `cached` (its URL may be gone):
    the plan and the run make one decision (project/decide.py). Nothing sends it while every
    shot is cached, so both leave it unneeded and upload nothing; once a shot that sends it is
    made again, both say it is uploaded again, and the shots made from it stay paid."""
    root = project(chain_storyboard(2))
    assert run(root, provider, sim)["generated"] == 2
    uploads = len(sim.requests(provider, "upload"))
    db = sqlite3.connect(root / ".kling-compose" / "state.db")
    db.execute("UPDATE tasks SET finished_at = finished_at - 1e8 WHERE kind = 'upload'")
    db.commit()
    db.close()
    statuses = plan_statuses(root, provider, sim)
    expired = sorted(t for t in statuses if t.startswith("upload:"))
    assert expired and {statuses[t] for t in expired} == {"unneeded"}, statuses
    assert statuses["generate:s1"] == statuses["generate:s2"] == "cached"
    again = run(root, provider, sim)
    assert again["generated"] == 0 and again["cached"] == 2, again
    assert len(sim.requests(provider, "upload")) == uploads  # nothing sends it: not made
    assert len(sim.generations(provider)) == 2
    # s1 made again (--force): the upload it sends is uploaded again (a new URL)
    forced = run(root, provider, sim, "--force", "s1")
    assert forced["generated"] >= 1 and forced["failed"] == 0, forced
    assert len(sim.requests(provider, "upload")) > uploads


@pytest.mark.parametrize("provider", ["fal", "kie"])
def test_an_expired_upload_a_shot_sends_is_expired_in_the_plan_and_uploaded_again(
        project, sim, provider):
    root = project(chain_storyboard(2))
    assert run(root, provider, sim)["generated"] == 2
    db = sqlite3.connect(root / ".kling-compose" / "state.db")
    db.execute("UPDATE tasks SET finished_at = finished_at - 1e8 WHERE kind = 'upload'")
    db.execute("DELETE FROM tasks WHERE task_id = 'generate:s2'")  # s2 to make again
    db.commit()
    db.close()
    (root / "storyboard.lock").unlink()  # no lock to restore s2 from
    uploads = len(sim.requests(provider, "upload"))
    statuses = plan_statuses(root, provider, sim)
    assert statuses["generate:s1"] == "cached" and statuses["generate:s2"] == "new", statuses
    sent = [t for t in statuses if t.startswith("upload:") and "frame" in t]
    assert sent and {statuses[t] for t in sent} == {"expired"}, statuses
    again = run(root, provider, sim)
    assert again["generated"] == 1 and again["cached"] == 1, again
    assert len(sim.requests(provider, "upload")) > uploads
    assert len(sim.generations(provider)) == 3


def test_a_ledger_written_before_content_identities_stays_reusable(project, sim):
    """Ledgers of earlier versions recorded an upload's URL and a frame's sha256 as the
    inputs of what was made from them: those rows are still reused."""
    root = project(chain_storyboard(2))
    assert run(root, "fal", sim)["generated"] == 2
    db = sqlite3.connect(root / ".kling-compose" / "state.db")
    rows = {r[0]: r for r in db.execute(
        "SELECT task_id, cache_key, kind, reference, artifacts FROM tasks")}
    legacy = {task_id: (row[3] if row[2] == "upload" else
                        json.loads(row[4])[0][0] if row[2] == "extract_frame" else None)
              for task_id, row in rows.items()}
    for task_id, (_, key, kind, _, _) in rows.items():
        (inputs,) = db.execute("SELECT inputs FROM tasks WHERE cache_key = ?", (key,)).fetchone()
        old = {dep: legacy[dep] or value for dep, value in json.loads(inputs).items()}
        db.execute("UPDATE tasks SET inputs = ? WHERE cache_key = ?", (json.dumps(old), key))
    db.commit()
    db.close()
    again = run(root, "fal", sim)
    assert again["cached"] == 2 and again["generated"] == 0, again
    assert len(sim.generations("fal")) == 2


def test_a_lock_entry_made_from_other_inputs_is_not_restored(project):
    root = project(chain_storyboard(2))
    assert run_json(root)["generated"] == 2
    move_ledger_aside(root)
    lock = read_lock(rehearsal_lock(root))  # a preview run's records (issue 26)
    lock["shots"]["s2"]["inputs"] = {"frame:s1:last": "~" + "0" * 64}
    rehearsal_lock(root).write_text(json.dumps(lock))
    result = cli("plan", root, "--json", *PREVIEW)
    statuses = {t["id"]: t["status"] for t in json.loads(result.stdout)["tasks"]}
    assert statuses["generate:s1"] == "restorable" and statuses["generate:s2"] == "new"
    summary = run_json(root, *PREVIEW)
    assert summary["restored"] == 1 and summary["generated"] == 1


def test_a_forced_generation_in_flight_is_resumed_not_replaced_by_the_lock(project, sim):
    root = project(chain_storyboard(1))
    assert run(root, "fal", sim)["generated"] == 1
    first = lock_of(root)["shots"]["s1"]["task_id"]
    sim.faults.task_seconds = 2.5
    polls = len(sim.requests("fal", "poll"))
    command_env = environment(sim)  # the forced run is killed while it polls
    proc = subprocess.Popen([sys.executable, "-m", "kling_compose", "run", str(root),
                             "--provider", "fal", "--force", "s1"],
                            env=os.environ | command_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(sim.requests("fal", "poll")) == polls:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert len(sim.generations("fal")) == 2
    # the next run (without --force) polls the paid forced generation; the lock's older clip
    # for the same key does not replace it
    summary = run(root, "fal", sim)
    assert summary["generated"] == 1 and summary["failed"] == 0, summary
    assert len(sim.generations("fal")) == 2
    assert lock_of(root)["shots"]["s1"]["task_id"] not in (None, first)


@pytest.mark.parametrize("provider", ["fal", "kie", "runware"])
def test_a_fresh_clone_restores_every_paid_clip_from_the_lock_paying_nothing(
        project, sim, tmp_path, provider):
    root = project(chain_storyboard(3))
    assert run(root, provider, sim)["generated"] == 3
    film = (root / "renders" / "chain.mp4").read_bytes()
    billed = len(sim.generations(provider))
    clone = clone_project(root, tmp_path / "teammate")
    statuses = plan_statuses(clone, provider, sim)
    assert [statuses[f"generate:s{i}"] for i in (1, 2, 3)] == ["restorable"] * 3
    summary = run(clone, provider, sim)
    assert summary["restored"] == 3 and summary["generated"] == 0, summary
    assert len(sim.generations(provider)) == billed
    assert (clone / "renders" / "chain.mp4").read_bytes() == film  # byte-identical


def keyless(sim) -> dict:
    """The simulator's hosts, and no provider key at all (a teammate without an account)."""
    return environment(sim) | {v: "" for v in KEY_VARIABLES.values()}


def clone_with_other_bytes_for_s1(project, sim, tmp_path):
    """A fal chain of 2 paid for, and a clone whose lock names other bytes for s1 than its
    result URL serves: s1 is restorable in the plan, and only the run's download finds it
    cannot be restored. (the clone, the generations billed so far)"""
    root = project(chain_storyboard(2))
    assert run(root, "fal", sim)["generated"] == 2
    clone = clone_project(root, tmp_path / "teammate")
    lock = read_lock(clone / "storyboard.lock")
    lock["shots"]["s1"]["sha256"] = ["f" * 64]
    (clone / "storyboard.lock").write_text(json.dumps(lock))
    return clone, len(sim.generations("fal"))


@pytest.mark.parametrize("provider", ["runware", "fal", "kie"])
def test_a_keyless_clone_restores_the_paid_clips_making_no_upload(project, sim, tmp_path,
                                                                  provider):
    """Uploads (a local file, chained frames) feed only restored shots: they are not made,
    so a clone without the provider's key gets every paid clip and the film."""
    root = project(chain_storyboard(3))
    assert run(root, provider, sim)["generated"] == 3
    billed, uploads = len(sim.generations(provider)), len(sim.requests(None, "upload"))
    clone = clone_project(root, tmp_path / "teammate")
    planned = plan_statuses(clone, provider, sim)
    uploads_planned = [t for t in planned if t.startswith("upload:")]
    assert all(planned[t] == "unneeded" for t in uploads_planned), planned
    result = cli("run", clone, "--json", "--provider", provider, *PREVIEW, env=keyless(sim))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["restored"] == 3 and summary["generated"] == 0, summary
    status = {t["id"]: t["status"] for t in summary["tasks"]}
    made_remotely = [t for t in status if t.startswith("upload:")]
    assert all(status[t] == "unneeded" for t in made_remotely), status
    assert len(sim.generations(provider)) == billed
    assert len(sim.requests(None, "upload")) == uploads
    assert (clone / "renders" / "chain.mp4").read_bytes() == \
        (root / "renders" / "chain.mp4").read_bytes()
    again = cli("run", clone, "--json", "--provider", provider, *PREVIEW, env=keyless(sim))
    assert again.exit_code == 0 and json.loads(again.stdout)["cached"] == 3
    shown = json.loads(cli("status", clone, "--json", "--provider", provider, *PREVIEW,
                           env=keyless(sim)).stdout)
    assert shown["pending"] == 0 and shown["done"] == len(shown["tasks"]) - len(made_remotely)


def test_a_restore_that_fails_makes_the_unneeded_upload_before_generating(project, sim,
                                                                          tmp_path):
    """s1's upload is unneeded while s1 is restorable, but the bytes its result URL serves are
    not the lock's (only a download can tell): s1 is generated again during the run, and its
    upload is made first, once."""
    clone, billed = clone_with_other_bytes_for_s1(project, sim, tmp_path)
    assert plan_statuses(clone, "fal", sim)["generate:s1"] == "restorable"
    uploads = len(sim.requests("fal", "upload"))
    summary = run(clone, "fal", sim)
    status = {t["id"]: t["status"] for t in summary["tasks"]}
    upload = "upload:fal:assets/start.png"
    assert status["generate:s1"] == "done" and status[upload] == "done", status
    assert summary["failed"] == 0 and len(sim.generations("fal")) == billed + 1
    sent = [r for r in sim.requests("fal", "upload")[uploads:] if "token" not in r.path]
    assert len(sent) == 2  # start.png (made late, for s1) and s1's last frame (s2 is new)
    assert sim.generations("fal")[billed].request["input"]["start_image_url"].startswith("http")
    assert (clone / "renders" / "chain.mp4").is_file()


def test_an_expired_result_url_is_named_by_the_plan_and_counted(project, sim, tmp_path):
    root = project(chain_storyboard(3))
    assert run(root, "fal", sim)["generated"] == 3
    clone = clone_project(root, tmp_path / "teammate")
    lock = read_lock(clone / "storyboard.lock")
    url = lock["shots"]["s2"]["result_url"][0]
    lock["shots"]["s2"]["result_url"] = [url.rsplit("/", 1)[0] + "/expired-long-ago.mp4"]
    (clone / "storyboard.lock").write_text(json.dumps(lock))
    result = cli("plan", clone, "--json", "--provider", "fal", env=environment(sim))
    tasks = {t["id"]: t for t in json.loads(result.stdout)["tasks"]}
    assert tasks["generate:s1"]["status"] == "restorable"
    assert tasks["generate:s2"]["status"] == "new"
    assert tasks["generate:s2"]["reason"].startswith("result URL expired (HTTP 404)")
    assert tasks["generate:s3"]["status"] == "new"  # made from s2, which will be new
    table = cli("plan", clone, "--provider", "fal", env=environment(sim)).stdout
    assert "generate:s2: storyboard.lock names its result, but result URL expired" in table
    billed = len(sim.generations("fal"))
    summary = run(clone, "fal", sim)
    status = {t["id"]: t["status"] for t in summary["tasks"]}
    assert status["generate:s1"] == "restored" and status["generate:s2"] == "done", summary
    # the simulator makes the same bytes again, so s3, made from those, is restored after
    # all; a real provider's new take would make it new, as the plan said
    assert summary["generated"] + summary["restored"] == 3
    assert len(sim.generations("fal")) == billed + summary["generated"]


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_clone_interrupted_while_restoring_resumes_and_still_pays_nothing(
        project, sim, tmp_path, how):
    root = project(chain_storyboard(2))
    assert run(root, "fal", sim)["generated"] == 2
    billed = len(sim.generations("fal"))
    clone = clone_project(root, tmp_path / "teammate")
    sim.faults.drip(1, 0.2, provider="fal")  # the first restoring download hangs: stop it there
    interrupt_at(clone, "fal", sim, "download", how, after_s=0.3)
    summary = run(clone, "fal", sim)
    # a take restored before the signal landed is cached now: either way, nothing is paid
    assert summary["restored"] + summary["cached"] == 2 and summary["generated"] == 0, summary
    assert len(sim.generations("fal")) == billed
    assert (clone / "renders" / "chain.mp4").read_bytes() == \
        (root / "renders" / "chain.mp4").read_bytes()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_interrupted_while_making_an_unneeded_upload_resumes_paying_once(project, sim,
                                                                         tmp_path, how):
    """As above, stopped while the late upload is being made: the next run makes it again
    (or finds it made) and generates s1 once."""
    clone, billed = clone_with_other_bytes_for_s1(project, sim, tmp_path)
    interrupt_at(clone, "fal", sim, "upload", how)
    assert len(sim.generations("fal")) <= billed + 1
    summary = run(clone, "fal", sim)
    assert summary["failed"] == 0, summary
    assert len(sim.generations("fal")) == billed + 1  # s1, once, whichever await was hit
    assert (clone / "renders" / "chain.mp4").is_file()
