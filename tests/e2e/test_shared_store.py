"""A shared artifact store in a folder (issue 11): a run pushes its paid clips, a teammate's
clone pulls them (no key) or restores them in `run` paying nothing, bytes that do not hash to
their name are refused, and concurrent pushes of one object store it once."""

from __future__ import annotations

import json
import shutil
import threading

import pytest
from _e2e import chain_storyboard, cli, clone_project
from test_money_runs import environment, run, sim  # noqa: F401

from kling_compose.share.artifacts import FolderStore
from support.locks import read_lock


@pytest.fixture
def team(project, sim, tmp_path):
    shared = tmp_path / "shared-drive" / "kling"
    root = project(chain_storyboard(3).replace("name: chain\n",
                                               f"name: chain\nstore: {shared}\n"))
    first = run(root, "fal", sim)
    assert first["generated"] == 3
    return root, shared


def test_a_run_pushes_its_paid_clips_and_a_clone_pulls_them_without_a_key(team, tmp_path):
    root, shared = team
    lock = read_lock(root / "storyboard.lock")
    names = {p.name for p in shared.iterdir()}
    assert {d + ".mp4" for s in lock["shots"].values() for d in s["sha256"]} <= names
    assert lock["outputs"]["renders/chain.mp4"]["sha256"][0] + ".mp4" in names
    clone = clone_project(root, tmp_path / "bob")
    pulled = cli("pull", clone, env={"FAL_KEY": None})
    assert pulled.exit_code == 0, pulled.output
    assert "pulled 4 object(s)" in pulled.stdout
    assert (clone / "renders" / "chain.mp4").read_bytes() == \
        (root / "renders" / "chain.mp4").read_bytes()
    assert (clone / "renders" / "shots" / "s2.mp4").is_file()
    again = cli("pull", clone)
    assert "pulled 0 object(s)" in again.stdout and "4 already here" in again.stdout


def test_a_clone_whose_result_urls_expired_restores_from_the_store(team, sim, tmp_path):
    root, _ = team
    billed = len(sim.generations("fal"))
    clone = clone_project(root, tmp_path / "carol")
    lock = read_lock(clone / "storyboard.lock")
    for entry in lock["shots"].values():
        entry["result_url"] = ["http://127.0.0.1:9/expired.mp4"]
    (clone / "storyboard.lock").write_text(json.dumps(lock))
    summary = run(clone, "fal", sim)
    assert summary["restored"] == 3 and summary["generated"] == 0, summary
    assert len(sim.generations("fal")) == billed


def test_bytes_that_do_not_hash_to_their_name_are_refused(team, tmp_path):
    root, shared = team
    victim = next(p for p in shared.iterdir() if p.suffix == ".mp4")
    victim.write_bytes(b"not the clip it names")
    clone = clone_project(root, tmp_path / "dave")
    pulled = cli("pull", clone)
    assert pulled.exit_code == 1
    assert f"{victim.name} in" in pulled.stderr and "does not hash to its name" in pulled.stderr
    objects = clone / ".kling-compose" / "objects"
    assert not list(objects.glob(f"*/{victim.name}"))


def test_concurrent_pushes_of_one_object_store_it_once(tmp_path):
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"x" * 1_000_000)
    store = FolderStore(tmp_path / "shared", "shared")
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def push() -> None:
        barrier.wait()
        results.append(store.put(source, "abc.mp4"))

    threads = [threading.Thread(target=push) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    assert (tmp_path / "shared" / "abc.mp4").read_bytes() == source.read_bytes()
    assert store.listing() == {"abc.mp4"}  # no temp file left behind


def test_a_project_without_a_store_says_how_to_name_one(project):
    root = project(chain_storyboard(1))
    result = cli("push", root)
    assert result.exit_code == 1 and "store: s3://bucket/prefix" in result.output


def test_doctor_checks_the_shared_store(project, tmp_path):
    shared = tmp_path / "drive"
    shared.mkdir()
    (shared / "a.mp4").write_bytes(b"x")
    root = project(chain_storyboard(1).replace("name: chain\n", f"name: chain\nstore: {shared}\n"))
    result = cli("doctor", root)
    assert result.exit_code == 0 and f"artifact store {shared} readable (1 object(s))" in \
        result.output
    bad = project(chain_storyboard(1).replace("name: chain\n", "name: chain\nstore: ftp://x\n"))
    for command in ("doctor", "validate"):  # refused where the storyboard is read, located
        result = cli(command, bad)
        assert result.exit_code == 1 and "storyboard.yaml:3:8" in result.output
        assert "store 'ftp://x' is neither a folder nor s3://bucket/prefix" in result.output


def test_two_runs_on_two_clones_with_one_store_pay_for_each_shot_once(project, sim, tmp_path):
    """Two machines run the same storyboard at the same time: each shot is claimed in the
    store by one run, which pays; the other waits for its published result."""
    import os
    import subprocess
    import sys

    shared = tmp_path / "drive"
    sim.faults.task_seconds = 1.0
    story = chain_storyboard(3).replace("name: chain\n", f"name: chain\nstore: {shared}\n")
    alice = project(story)
    bob = tmp_path / "bob"
    shutil.copytree(alice, bob)
    env = os.environ | environment(sim)
    runs = [subprocess.Popen([sys.executable, "-m", "kling_compose", "run", str(root),
                              "--provider", "fal", "--json"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for root in (alice, bob)]
    outputs = [proc.communicate(timeout=180) for proc in runs]
    for proc, (out, err) in zip(runs, outputs):
        assert proc.returncode == 0, err
    summaries = [json.loads(out) for out, _ in outputs]
    assert len(sim.generations("fal")) == 3  # each shot paid once, across both machines
    assert sum(s["generated"] for s in summaries) == 3
    assert sum(s["restored"] for s in summaries) == 3
    assert (alice / "renders" / "chain.mp4").read_bytes() == \
        (bob / "renders" / "chain.mp4").read_bytes()


def test_a_claim_held_by_a_run_that_never_publishes_is_named_not_paid_over(project, sim,
                                                                             tmp_path):
    shared = tmp_path / "drive"
    root = project(chain_storyboard(1).replace("name: chain\n", f"name: chain\nstore: {shared}\n"))
    plan = json.loads(cli("plan", root, "--json", "--provider", "fal",
                          env=environment(sim)).stdout)
    key = next(t["cache_key"] for t in plan["tasks"] if t["id"] == "generate:s1")
    shared.mkdir()
    (shared / f"claim-{key}.json").write_text(json.dumps({"owner": "render-box:4242"}))
    summary = run(root, "fal", sim, KLING_COMPOSE_POLL_TIMEOUT_SECONDS="1")
    assert summary["failed"] == 1 and len(sim.generations("fal")) == 0, summary
    error = next(t["error"] for t in summary["tasks"] if t["id"] == "generate:s1")
    assert "another run (render-box:4242) claimed shot 's1'" in error
    assert "nothing was paid here" in error


def test_a_claim_left_by_this_clones_killed_run_is_its_own(project, sim, tmp_path):
    """A run killed after claiming a shot and before submitting it left its claim: the next
    run of the same clone takes it as its own (its ledger says nothing was sent) instead of
    waiting on itself; another clone would wait."""
    shared = tmp_path / "drive"
    root = project(chain_storyboard(1).replace("name: chain\n", f"name: chain\nstore: {shared}\n"))
    plan = json.loads(cli("plan", root, "--json", "--provider", "fal",
                          env=environment(sim)).stdout)
    key = next(t["cache_key"] for t in plan["tasks"] if t["id"] == "generate:s1")
    folder = root / ".kling-compose"
    folder.mkdir(exist_ok=True)
    (folder / "project-id").write_text("clone-a")
    shared.mkdir()
    (shared / f"claim-{key}.json").write_text(json.dumps({"owner": "gone:1",
                                                          "project": "clone-a"}))
    summary = run(root, "fal", sim, KLING_COMPOSE_POLL_TIMEOUT_SECONDS="5")
    assert summary["generated"] == 1 and summary["failed"] == 0, summary
    assert len(sim.generations("fal")) == 1
    assert (shared / f"result-{key}.json").is_file()  # published for the others


def _shot_key(root, sim, shot: str = "s1") -> str:
    plan = json.loads(cli("plan", root, "--json", "--provider", "fal",
                          env=environment(sim)).stdout)
    return next(t["cache_key"] for t in plan["tasks"] if t["id"] == f"generate:{shot}")


def test_a_claim_whose_owner_died_is_taken_over_by_following_its_recorded_task(
        project, sim, tmp_path):
    """Alice's run claims s1, submits it, records the provider's task in the store, and is
    killed while the generation runs. Bob's run finds the claim and the recorded task, polls
    that generation with its own key, downloads, publishes: nothing is submitted again.
    Alice's next run resumes its own submission (polls, pays nothing more)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    shared = tmp_path / "drive"
    sim.faults.task_seconds = 3.0
    story = chain_storyboard(1).replace("name: chain\n", f"name: chain\nstore: {shared}\n")
    alice = project(story)
    bob = tmp_path / "bob"
    shutil.copytree(alice, bob)
    key = _shot_key(alice, sim)
    proc = subprocess.Popen([sys.executable, "-m", "kling_compose", "run", str(alice),
                             "--provider", "fal"], env=os.environ | environment(sim),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(shared.glob(f"task-{key}-*.json")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    recorded = json.loads(next(shared.glob(f"task-{key}-*.json")).read_text())
    assert recorded["provider"] == "fal" and recorded["provider_task_id"]
    assert len(sim.generations("fal")) == 1 and not (shared / f"result-{key}.json").exists()

    summary = run(bob, "fal", sim)
    assert summary["restored"] == 1 and summary["generated"] == 0, summary
    assert len(sim.generations("fal")) == 1  # followed, never submitted again
    assert (shared / f"result-{key}.json").is_file()  # published for the others
    again = run(alice, "fal", sim)
    assert again["failed"] == 0 and len(sim.generations("fal")) == 1, again
    assert (alice / "renders" / "chain.mp4").read_bytes() == \
        (bob / "renders" / "chain.mp4").read_bytes()


def test_a_recorded_task_this_run_cannot_poll_is_waited_for_in_the_store(project, sim, tmp_path):
    """Bob's key belongs to another account (the provider refuses his polls of Alice's task):
    he watches the store for the result instead, and says so when his patience ends."""
    shared = tmp_path / "drive"
    root = project(chain_storyboard(1).replace("name: chain\n", f"name: chain\nstore: {shared}\n"))
    key = _shot_key(root, sim)
    shared.mkdir()
    (shared / f"claim-{key}.json").write_text(json.dumps({"owner": "render-box:4242",
                                                          "nonce": "n1"}))
    (shared / f"task-{key}-n1.json").write_text(json.dumps({
        "provider": "fal", "provider_task_id": "not-a-task-here", "handle": {}}))
    summary = run(root, "fal", sim, KLING_COMPOSE_POLL_TIMEOUT_SECONDS="2")
    assert summary["failed"] == 1 and len(sim.generations("fal")) == 0, summary
    error = next(t["error"] for t in summary["tasks"] if t["id"] == "generate:s1")
    assert "another run (render-box:4242) claimed shot 's1'" in error


def test_a_claimed_generation_that_failed_releases_its_claim(project, sim, tmp_path):
    """A refused generation leaves nothing billable in flight: its claim is released, and a
    teammate's later run may claim it and pay for it (once)."""
    shared = tmp_path / "drive"
    root = project(chain_storyboard(1).replace("name: chain\n", f"name: chain\nstore: {shared}\n"))
    key = _shot_key(root, sim)
    sim.faults.fail_generation("", "content policy")
    summary = run(root, "fal", sim)
    assert summary["failed"] == 1, summary
    assert not (shared / f"claim-{key}.json").exists()
    assert not list(shared.glob(f"task-{key}-*"))
    sim.faults.clear()
    bob = clone_project(root, tmp_path / "bob")
    assert run(bob, "fal", sim)["generated"] == 1


def test_a_result_a_killed_holder_never_published_is_published_by_its_next_run(
        project, sim, tmp_path):
    """Killed between finishing a claimed shot and publishing it, a run leaves waiting the
    teammates who cannot follow its task (Bob's key is another account's); its next run finds
    the shot cached and publishes the result then, and they adopt it."""
    shared = tmp_path / "drive"
    text_only = chain_storyboard(1).replace("        first_frame: assets/start.png\n", "")
    root = project(text_only.replace("name: chain\n", f"name: chain\nstore: {shared}\n"))
    key = _shot_key(root, sim)
    assert run(root, "fal", sim)["generated"] == 1
    (shared / f"result-{key}.json").unlink()  # as if killed just before publishing
    bob = clone_project(root, tmp_path / "bob")
    (bob / "storyboard.lock").unlink()  # no lock to restore from: only the claim's result
    other_account = {"FAL_KEY": "another-account", "KLING_COMPOSE_POLL_TIMEOUT_SECONDS": "1"}
    waited = run(bob, "fal", sim, **other_account)
    assert waited["failed"] == 1 and len(sim.generations("fal")) == 1, waited
    error = next(t["error"] for t in waited["tasks"] if t["id"] == "generate:s1")
    assert "has not published its result" in error
    assert run(root, "fal", sim)["cached"] >= 1
    assert (shared / f"result-{key}.json").is_file()
    adopted = run(bob, "fal", sim, **other_account)
    assert adopted["restored"] == 1 and len(sim.generations("fal")) == 1, adopted
