"""Issue 26, a lock that merges: two branches of a project that ran different shots merge with
`git merge` and no conflict, and a fresh clone of the merge pays nothing; when both changed
the same shot, the merged lock keeps both results and the storyboard picks one. A lock git
left with conflict markers is named by every command that reads it, and `lock resolve` keeps
both sides. Real git, against the simulator."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from _e2e import PREVIEW, cli
from kling_compose.project.lockfile import GITATTRIBUTES
from kling_compose.settings import KEY_VARIABLES
from support.locks import read_lock

STORYBOARD = """\
version: 1
name: merges
defaults: { provider: fal, model: kling-3-std, duration: 3, aspect: "16:9" }
scenes:
  - id: a
    shots:
      - { id: one, prompt: A harbour at dawn }
      - { id: two, prompt: Boats leave the harbour }
"""


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, check=check, capture_output=True,
                          text=True, env=env)


def run(root: Path, env: dict, *extra: str) -> dict:
    result = cli("run", root, "--json", *PREVIEW, *extra, env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def repo(project):
    root = project(STORYBOARD)
    (root / ".gitignore").write_text(".kling-compose/\nrenders/\n")
    (root / ".gitattributes").write_text(GITATTRIBUTES)  # what `init` writes
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "storyboard")
    return root


def branch_run(root: Path, branch: str, env: dict, *only: str) -> None:
    git(root, "checkout", "-q", "-b", branch, "main")
    summary = run(root, env, *(f"--only={s}" for s in only))
    assert summary["failed"] == 0 and summary["generated"] == len(only), summary
    git(root, "add", "-A")
    git(root, "commit", "-qm", f"ran {' '.join(only)}")


def test_two_branches_that_ran_different_shots_merge_and_a_clone_pays_nothing(
        repo, sim, sim_env, tmp_path):
    branch_run(repo, "alice", sim_env, "one")
    git(repo, "checkout", "-q", "main")
    # bob's clone of main has none of alice's state: a separate ledger
    bob = tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(repo), str(bob))
    branch_run(bob, "bob", sim_env, "two")
    git(repo, "fetch", "-q", str(bob), "bob:bob")
    git(repo, "checkout", "-q", "alice")
    merged = git(repo, "merge", "--no-edit", "bob", check=False)
    assert merged.returncode == 0, merged.stdout + merged.stderr  # no conflict
    lock = read_lock(repo / "storyboard.lock")
    assert set(lock["shots"]) == {"one", "two"}
    billed = len(sim.generations("fal"))
    clone = tmp_path / "carol"
    git(tmp_path, "clone", "-q", "-b", "alice", str(repo), str(clone))
    keyless = {**sim_env, **{v: "" for v in KEY_VARIABLES.values()}}
    planned = json.loads(cli("plan", clone, "--json", *PREVIEW, env=keyless).stdout)
    statuses = {t["id"]: t["status"] for t in planned["tasks"]}
    assert statuses["generate:one"] == "restorable" and statuses["generate:two"] == "restorable"
    assert planned["to_pay_usd"] == 0
    summary = run(clone, keyless)
    assert summary["generated"] == 0 and summary["restored"] == 2, summary
    assert len(sim.generations("fal")) == billed


def test_the_same_shot_changed_on_both_sides_keeps_both_and_the_storyboard_picks(
        repo, sim, sim_env, tmp_path):
    for branch, prompt in (("alice", "A harbour at noon"), ("bob", "A harbour at dusk")):
        git(repo, "checkout", "-q", "-b", branch, "main")
        (repo / "storyboard.yaml").write_text(STORYBOARD.replace("A harbour at dawn", prompt))
        assert run(repo, sim_env, "--only=one")["generated"] == 1
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", prompt)
    git(repo, "checkout", "-q", "alice")
    merged = git(repo, "merge", "--no-edit", "bob", check=False)
    # the storyboard's prompt line conflicts (the filmmaker decides); the lock never does
    assert "CONFLICT (content): Merge conflict in storyboard.yaml" in merged.stdout
    assert "conflict in storyboard.lock" not in merged.stdout.lower()
    text = (repo / "storyboard.lock").read_text()
    assert "<<<<<<<" not in text and text.count('{"shot":"one"') == 2  # both were paid
    (repo / "storyboard.yaml").write_text(STORYBOARD.replace("A harbour at dawn",
                                                             "A harbour at dusk"))  # bob's
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "merge: bob's dusk")
    billed = len(sim.generations("fal"))
    clone = tmp_path / "carol"
    git(tmp_path, "clone", "-q", "-b", "alice", str(repo), str(clone))
    planned = json.loads(cli("plan", clone, "--json", *PREVIEW, env=sim_env).stdout)
    statuses = {t["id"]: t["status"] for t in planned["tasks"]}
    assert statuses["generate:one"] == "restorable"  # bob's result, picked by the storyboard
    summary = run(clone, sim_env, "--only=one")
    assert summary["generated"] == 0 and summary["restored"] == 1, summary
    assert len(sim.generations("fal")) == billed


def test_a_conflicted_lock_is_named_by_every_command_and_resolved_keeping_both(
        repo, sim, sim_env, tmp_path):
    (repo / ".gitattributes").unlink()  # a project from before `lock setup`
    git(repo, "commit", "-qam", "no attributes")
    branch_run(repo, "alice", sim_env, "one")
    git(repo, "checkout", "-q", "main")
    branch_run(repo, "bob", sim_env, "two")
    git(repo, "checkout", "-q", "alice")
    merged = git(repo, "merge", "--no-edit", "bob", check=False)
    assert merged.returncode != 0 and "storyboard.lock" in merged.stdout
    for command in ("plan", "status", "report", "run", "export", "push", "pull", "gc"):
        result = cli(command, repo, env=sim_env)
        assert result.exit_code == 1, (command, result.output)
        assert "storyboard.lock has git conflict markers (line" in result.output, command
        assert "kling-compose lock resolve" in result.output, command
    resolved = cli("lock", "resolve", repo)
    assert resolved.exit_code == 0 and "both sides kept" in resolved.output, resolved.output
    assert set(read_lock(repo / "storyboard.lock")["shots"]) == {"one", "two"}
    planned = json.loads(cli("plan", repo, "--json", *PREVIEW, env=sim_env).stdout)
    assert planned["to_pay_usd"] == 0
    assert cli("lock", "setup", repo).exit_code == 0
    assert "storyboard.lock merge=union" in (repo / ".gitattributes").read_text()


def test_two_storyboards_in_one_folder_keep_two_locks(repo, sim, sim_env):
    """A second file is the natural way to make a cut: alt.yaml has its own alt.lock, never
    writes storyboard.lock, and gc run for it keeps the other storyboard's paid clips."""
    assert run(repo, sim_env)["generated"] == 2
    main_lock = (repo / "storyboard.lock").read_bytes()
    (repo / "alt.yaml").write_text(STORYBOARD.replace("name: merges", "name: alt").replace(
        "Boats leave the harbour", "Gulls over the harbour"))
    alt = run(repo / "alt.yaml", sim_env)
    assert alt["generated"] == 1 and alt["cached"] == 1, alt  # shot one: the same request
    assert (repo / "storyboard.lock").read_bytes() == main_lock
    assert set(read_lock(repo / "alt.lock")["shots"]) == {"one", "two"}
    assert cli("gc", repo / "alt.yaml", env=sim_env).exit_code == 0
    assert run(repo, sim_env)["generated"] == 0  # storyboard.yaml's clips are all still here
    setup = cli("lock", "setup", repo / "alt.yaml")
    assert setup.exit_code == 0 and "alt.lock merge=union" in (repo / ".gitattributes").read_text()


def test_a_lock_written_for_another_storyboard_is_refused_and_a_rename_is_recorded(
        repo, sim, sim_env):
    """Files swapped (another storyboard's file now named storyboard.yaml): a run would drop
    every paid entry of the lock's own storyboard, so every command refuses it. A storyboard
    renamed on purpose gets its lock with `lock rename`, every result kept."""
    assert run(repo, sim_env)["generated"] == 2
    lock = (repo / "storyboard.lock").read_bytes()
    board = repo / "storyboard.yaml"
    board.write_text(board.read_text().replace("name: merges", "name: harbour-cut"))
    for command in ("plan", "status", "run", "push"):
        result = cli(command, repo, env=sim_env)
        assert result.exit_code == 1, (command, result.output)
        assert "storyboard.lock was written for storyboard 'merges', not 'harbour-cut'" \
            in result.output, (command, result.output)
        assert "kling-compose lock rename" in result.output
    assert (repo / "storyboard.lock").read_bytes() == lock
    renamed = cli("lock", "rename", repo)
    assert renamed.exit_code == 0 and "'merges' -> 'harbour-cut'" in renamed.output
    after = (repo / "storyboard.lock").read_text().splitlines()
    assert after[1:] == lock.decode().splitlines()[1:]  # every entry as written
    assert read_lock(repo / "storyboard.lock")["storyboard"] == "harbour-cut"
    assert run(repo, sim_env)["generated"] == 0
    assert len(sim.generations("fal")) == 2


def test_a_format_1_lock_with_rehearsals_is_migrated_on_the_first_paid_run(repo, sim, sim_env):
    """Before issue 26 a preview rehearsal wrote its shots, and the film made from them, into
    storyboard.lock: a teammate's clone then planned those as paid. The first run with the new
    format moves every one of them (films included) to the rehearsal records."""
    from support.locks import rehearsal_lock

    assert run(repo, {}, "--provider", "preview")["generated"] == 2
    old = read_lock(rehearsal_lock(repo))
    assert old["outputs"] and {e["provider"] for e in old["shots"].values()} == {"preview"}
    (repo / "storyboard.lock").write_text(json.dumps({**old, "version": 1}))
    rehearsal_lock(repo).unlink()
    paid = run(repo, sim_env, "--only", "one")
    assert paid["generated"] == 1, paid
    lock = (repo / "storyboard.lock").read_text()
    assert lock.startswith('{"kling-compose-lock":2')
    assert set(read_lock(repo / "storyboard.lock")["shots"]) == {"one"}
    assert '"provider":"preview"' not in lock and '"output"' not in lock
    # a rehearsal now keeps its records apart again, and the paid lock stays as it is
    before = (repo / "storyboard.lock").read_bytes()
    assert run(repo, {}, "--provider", "preview")["failed"] == 0
    assert (repo / "storyboard.lock").read_bytes() == before
    assert set(read_lock(rehearsal_lock(repo))["outputs"]) == set(old["outputs"])
