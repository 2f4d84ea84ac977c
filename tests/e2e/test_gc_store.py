"""`kling-compose gc --store`: the shared store keeps every clip a lock names, in the working
tree or on any git ref, and everything younger than the age; it loses the clips (and the
claim, task and result records) of a generation no lock names, a folder store and a real S3
server alike. Real git, the simulator's paid runs, `--dry-run` first. A conflicted lock on any
ref refuses, removing nothing."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from _e2e import PREVIEW, cli
from test_lock_merge import git

from kling_compose.commands.gc import find_store_garbage, parse_age
from kling_compose.project.lockfile import GITATTRIBUTES
from kling_compose.settings import KEY_VARIABLES
from kling_compose.share.artifacts import FolderStore, Stored

pytest_plugins = ["_s3"]  # the fixtures s3_server and s3

DAY = 86400
STORYBOARD = """\
version: 1
name: harbour
store: {store}
defaults: {{ provider: fal, model: kling-3-std, duration: 3, aspect: "16:9" }}
scenes:
  - id: a
    shots:
      - {{ id: one, prompt: A harbour at dawn }}
      - {{ id: two, prompt: Boats leave the harbour }}
"""


def run(root: Path, env: dict) -> dict:
    result = cli("run", root, "--json", *PREVIEW, env=env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["failed"] == 0, summary
    return summary


@dataclass
class Studio:
    root: Path
    kind: str  # "folder" or "s3"
    url: str
    store: object  # the s3 fixture, or the store's folder
    main: set[str]  # what main's run put in the store
    alice: set[str]  # what alice's branch added (named only by her lock)
    carol: set[str]  # what carol's deleted branch added (named by no lock)

    def names(self) -> set[str]:
        if self.kind == "folder":
            return {p.name for p in self.store.iterdir() if not p.name.startswith(".")}
        prefix = "films/harbour/"
        pages = self.store.client().get_paginator("list_objects_v2").paginate(
            Bucket=self.store.bucket, Prefix=prefix)
        return {o["Key"][len(prefix):] for page in pages for o in page.get("Contents", ())}

    def age(self, days: float, names=None) -> None:
        """Backdate objects of a folder store (S3 cannot be)."""
        then = time.time() - days * DAY
        for name in self.names() if names is None else names:
            os.utime(self.store / name, (then, then))

    def put(self, data: bytes) -> str:
        """An object pushed behind the project's back: a clip no lock names."""
        name = hashlib.sha256(data).hexdigest() + ".mp4"
        if self.kind == "folder":
            (self.store / name).write_bytes(data)
        else:
            self.store.client().put_object(Bucket=self.store.bucket,
                                           Key=f"films/harbour/{name}", Body=data)
        return name

    def gc(self, *args: str, code: int = 0):
        result = cli("gc", self.root, "--store", *args)
        assert result.exit_code == code, result.output
        return result


@pytest.fixture(params=["folder", "s3"])
def studio(request, project, sim, sim_env, tmp_path) -> Studio:
    """main ran both shots and the film; alice's branch changed shot two and ran it; carol's
    branch changed shot one, ran it, and was deleted without a merge. The clone is on main."""
    if request.param == "folder":
        store = tmp_path / "drive" / "harbour"
        url = str(store)
    else:
        store = request.getfixturevalue("s3")
        url = f"s3://{store.bucket}/films/harbour"
    root = project(STORYBOARD.format(store=url))
    (root / ".gitignore").write_text(".kling-compose/\nrenders/\n")
    (root / ".gitattributes").write_text(GITATTRIBUTES)
    git(root, "init", "-q", "-b", "main")
    studio = Studio(root, request.param, url, store, set(), set(), set())
    assert run(root, sim_env)["generated"] == 2
    git(root, "add", "-A")
    git(root, "commit", "-qm", "main: both shots")
    studio.main = studio.names()
    for branch, old, new in (("alice", "Boats leave the harbour", "Gulls over the harbour"),
                             ("carol", "A harbour at dawn", "A harbour at night")):
        before = studio.names()
        git(root, "checkout", "-q", "-b", branch, "main")
        board = root / "storyboard.yaml"
        board.write_text(board.read_text().replace(old, new))
        assert run(root, sim_env)["generated"] == 1
        git(root, "commit", "-qam", f"{branch}: {new}")
        setattr(studio, branch, studio.names() - before)
    git(root, "checkout", "-q", "main")
    git(root, "branch", "-q", "-D", "carol")
    return studio


def _removed(output: str, verb: str) -> set[str]:
    return {line.split()[2 if verb == "would" else 1] for line in output.splitlines()
            if line.startswith(f"{verb} remove " if verb == "would" else f"{verb} ")}


def test_the_branches_left_what_the_tests_expect(studio):
    """carol's run left a take, a film and its claim, task and result records."""
    kinds = sorted(n.split("-")[0] if n.endswith(".json") else "clip" for n in studio.carol)
    assert kinds == ["claim", "clip", "clip", "result", "task"], studio.carol
    assert len([n for n in studio.alice if n.endswith(".mp4")]) == 2  # her take and film


def test_dry_run_lists_what_would_go_and_removes_nothing(studio):
    if studio.kind == "folder":
        studio.age(60)
        args: tuple[str, ...] = ()  # the default age, 30 days
    else:
        args = ("--older-than", "0")  # S3 cannot be backdated
    before = studio.names()
    dry = studio.gc("--dry-run", *args)
    assert _removed(dry.stdout, "would") == studio.carol
    assert studio.names() == before
    sizes = {line.split()[2]: int(line.split("(")[1].split()[0])
             for line in dry.stdout.splitlines() if line.startswith("would remove ")}
    total = sum(sizes.values())
    assert f"5 object(s) in {studio.url}, would free {total / 1e6:.1f} MB" in dry.stdout
    assert "kept 5 named by a lock" in dry.stdout  # main's 3 clips, alice's 2
    assert "9 team record(s)" in dry.stdout  # the claim, task and result of 3 generations
    if studio.kind == "folder":
        assert all(sizes[n] == (studio.store / n).stat().st_size for n in sizes)
        assert "60d old" in dry.stdout
    young = studio.gc("--dry-run")  # S3: everything was written seconds ago
    if studio.kind == "s3":
        assert "0 object(s)" in young.stdout and "1 younger than 30d" in young.stdout  # film
        assert "13 team record(s)" in young.stdout  # carol's, with her take, kept as young


def test_gc_removes_exactly_the_unnamed_old_objects_and_a_keyless_clone_still_pulls(
        studio, sim_env, tmp_path):
    if studio.kind == "folder":
        studio.age(60)
        fresh = studio.put(b"a clip pushed an hour ago, its lock not pushed yet")
        studio.age(1 / 24, [fresh])
        args: tuple[str, ...] = ()
    else:
        fresh = None
        args = ("--older-than", "0")
    before = studio.names()
    done = studio.gc(*args)
    assert _removed(done.stdout, "removed") == studio.carol
    assert studio.names() == before - studio.carol
    assert studio.alice <= studio.names()  # named only by alice's branch: kept
    if fresh is not None:
        assert fresh in studio.names() and "1 younger than 30d" in done.stdout
        studio.gc("--older-than", "2h")
        assert fresh in studio.names()
        studio.gc("--older-than", "30m")
        assert fresh not in studio.names()
    again = studio.gc(*args)
    assert "0 object(s)" in again.stdout
    keyless = {**sim_env, **{v: "" for v in KEY_VARIABLES.values()}}
    for branch in ("main", "alice"):
        clone = tmp_path / f"clone-{branch}"
        git(tmp_path, "clone", "-q", "-b", branch, str(studio.root), str(clone))
        pulled = cli("pull", clone, env=keyless)
        assert pulled.exit_code == 0, pulled.output
        assert (clone / "renders" / "harbour.mp4").is_file() and "0 already here" in \
            pulled.stdout
        planned = json.loads(cli("plan", clone, "--json", *PREVIEW, env=keyless).stdout)
        assert planned["to_pay_usd"] == 0, planned


@pytest.mark.parametrize("studio", ["folder"], indirect=True)
def test_a_conflicted_lock_on_any_ref_or_in_the_tree_refuses(studio):
    root = studio.root
    studio.age(60)
    before = studio.names()
    git(root, "checkout", "-q", "-b", "broken", "main")
    lock = root / "storyboard.lock"
    lines = lock.read_text().splitlines()
    lock.write_text("\n".join([lines[0], "<<<<<<< HEAD", *lines[1:2], "=======",
                               *lines[2:3], ">>>>>>> other", *lines[3:]]) + "\n")
    git(root, "commit", "-qam", "a merge gone wrong")
    git(root, "checkout", "-q", "main")
    refused = studio.gc(code=1)
    assert "broken:storyboard.lock has git conflict markers (line 2)" in refused.output
    assert "nothing was removed" in refused.output and "Traceback" not in refused.output
    assert studio.names() == before
    chosen = studio.gc("--ref", "main", "--ref", "alice")  # the broken branch left out
    assert _removed(chosen.stdout, "removed") == studio.carol
    lock.write_text("<<<<<<< HEAD\n" + lock.read_text())  # and in the working tree
    tree = studio.gc("--dry-run", code=1)
    assert "storyboard.lock has git conflict markers (line 1)" in tree.output
    assert "kling-compose lock resolve" in tree.output


@pytest.mark.parametrize("studio", ["folder"], indirect=True)
def test_bad_options_are_usage_errors_and_an_unknown_ref_is_named(studio):
    bad = cli("gc", studio.root, "--store", "--older-than", "7")
    assert bad.exit_code == 2 and "'7' is not an age" in bad.output
    alone = cli("gc", studio.root, "--older-than", "7d")
    assert alone.exit_code == 2 and "--ref and --older-than go with --store" in alone.output
    unknown = studio.gc("--ref", "origin/nowhere", code=1)
    assert "git does not know the ref 'origin/nowhere'" in unknown.output
    assert "Traceback" not in unknown.output


def test_a_project_outside_git_counts_its_own_locks_with_a_note(project, sim, sim_env,
                                                                tmp_path):
    drive = tmp_path / "drive"
    root = project(STORYBOARD.format(store=drive))
    run(root, sim_env)
    stray = hashlib.sha256(b"stray").hexdigest() + ".mp4"
    (drive / stray).write_bytes(b"stray")
    then = time.time() - 40 * DAY
    for path in drive.iterdir():
        os.utime(path, (then, then))
    env = {"GIT_CEILING_DIRECTORIES": str(tmp_path)}  # tmp_path may sit inside a repository
    done = cli("gc", root, "--store", env=env)
    assert done.exit_code == 0, done.output
    assert "not in a git repository: only the locks in this folder keep objects" in done.stderr
    assert _removed(done.stdout, "removed") == {stray}
    assert cli("gc", root, "--store", "--ref", "main", env=env).exit_code == 1


def test_a_store_that_fails_is_one_message(project, s3):
    root = project(STORYBOARD.format(store="s3://no-such-films/harbour"))
    result = cli("gc", root, "--store", "--dry-run")
    assert result.exit_code == 1
    assert "artifact store s3://no-such-films/harbour: bucket 'no-such-films': no such " \
           "bucket" in result.output and "Traceback" not in result.output
    none = project(STORYBOARD.replace("store: {store}\n", "").format())
    result = cli("gc", none, "--store")
    assert result.exit_code == 1 and "this project names no artifact store" in result.output


def _lock(*digests: str) -> str:
    lines = ['{"kling-compose-lock":2,"storyboard":"harbour"}']
    lines += [json.dumps({"shot": f"s{n}", "cache_key": f"k{n}", "sha256": [d]})
              for n, d in enumerate(digests)]
    return "\n".join(lines) + "\n"


def test_a_project_in_a_subfolder_reads_its_folder_on_every_ref(tmp_path, monkeypatch):
    """films/harbour/ in a larger repository, gc run from a folder inside it (git paths are
    the repository's, whatever the working directory); a `yarn.lock` beside the storyboard is
    none of gc's business, conflict markers and all."""
    repo, drive = tmp_path / "repo", tmp_path / "drive"
    folder = repo / "films" / "harbour"
    folder.mkdir(parents=True)
    drive.mkdir()
    (folder / "storyboard.yaml").write_text(STORYBOARD.format(store=drive))
    clips = {}
    for name in ("tree", "feature", "other-film", "nobody"):
        clips[name] = hashlib.sha256(name.encode()).hexdigest()
        (drive / f"{clips[name]}.mp4").write_bytes(name.encode())
    (repo / "films" / "lighthouse").mkdir()
    (repo / "films" / "lighthouse" / "storyboard.lock").write_text(_lock(clips["other-film"]))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "two films")
    git(repo, "checkout", "-q", "-b", "feature")
    (folder / "storyboard.fast.lock").write_text(_lock(clips["feature"]))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a profile's run")
    git(repo, "checkout", "-q", "main")
    (folder / "storyboard.lock").write_text(_lock(clips["tree"]))  # not committed
    (folder / "yarn.lock").write_text("<<<<<<< HEAD\nnot ours\n")
    then = time.time() - 40 * DAY
    for path in drive.iterdir():
        os.utime(path, (then, then))
    monkeypatch.chdir(repo / "films")
    done = cli("gc", "harbour", "--store")
    assert done.exit_code == 0, done.output
    # the lighthouse's lock is another folder's: its clip is this prefix's garbage (one prefix
    # per project, docs/studio.md)
    assert _removed(done.stdout, "removed") == {f"{clips[n]}.mp4"
                                                 for n in ("other-film", "nobody")}
    assert "kept 2 named by a lock" in done.stdout
    git(repo, "checkout", "-q", "feature")
    (folder / "storyboard.fast.lock").write_text("<<<<<<< HEAD\n" + _lock(clips["feature"]))
    git(repo, "commit", "-qam", "conflicted")
    git(repo, "checkout", "-q", "main")
    refused = cli("gc", "harbour", "--store", "--dry-run")
    assert refused.exit_code == 1
    assert "feature:films/harbour/storyboard.fast.lock has git conflict markers (line 1)" in \
        refused.output


# -- what is kept of the team's records, on a store alone -------------------------------------

def _digest(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def _store(tmp_path: Path, files: dict[str, str | bytes], days: dict[str, float]) -> FolderStore:
    folder = tmp_path / "store"
    folder.mkdir()
    for name, body in files.items():
        (folder / name).write_bytes(body.encode() if isinstance(body, str) else body)
        then = time.time() - days.get(name, 60) * DAY
        os.utime(folder / name, (then, then))
    return FolderStore(folder, str(folder))


def _result(*digests: str) -> str:
    return json.dumps({"artifacts": [[d, ".mp4"] for d in digests], "inputs": {}})


def _going(store, named=frozenset(), age=30 * DAY) -> set[str]:
    return {name for name, _ in find_store_garbage(store, frozenset(named), age).remove}


def test_a_claim_without_a_result_is_kept_however_old(tmp_path):
    """A generation in flight, or whose holder died: nobody can prove nothing runs."""
    key = _digest(1)
    store = _store(tmp_path, {f"claim-{key}.json": "{}", f"task-{key}-ab12.json": "{}",
                              f"claim-{_digest(2)}.json": "{}"}, {})
    assert _going(store, age=0) == set()


def test_a_stale_generation_goes_whole_and_a_kept_one_keeps_its_takes(tmp_path):
    old_key, young_key, named_key = _digest(1), _digest(2), _digest(3)
    take, young_take, named_take = _digest(11), _digest(12), _digest(13)
    files = {f"claim-{old_key}.json": "{}", f"task-{old_key}-ab.json": "{}",
             f"result-{old_key}.json": _result(take), f"{take}.mp4": b"x",
             f"claim-{young_key}.json": "{}", f"result-{young_key}.json": _result(young_take),
             f"{young_take}.mp4": b"y",  # old bytes, a result published yesterday
             f"result-{named_key}.json": _result(named_take), f"{named_take}.mp4": b"z",
             "README.txt": "the studio's own note", f"{_digest(20)}.mp4": b"w"}
    store = _store(tmp_path, files, {f"result-{young_key}.json": 1})
    garbage = find_store_garbage(store, frozenset({named_take}), 30 * DAY)
    order = [name for name, _ in garbage.remove]
    assert order == [f"claim-{old_key}.json", f"task-{old_key}-ab.json",
                     f"result-{old_key}.json", f"{take}.mp4", f"{_digest(20)}.mp4"]
    assert garbage.named == 1 and garbage.other == 1
    assert garbage.records == 4  # young claim and result, its take; the named result


def test_a_take_two_results_name_goes_only_with_both(tmp_path):
    one, two, take = _digest(1), _digest(2), _digest(11)
    files = {f"result-{one}.json": _result(take), f"result-{two}.json": _result(take),
             f"{take}.mp4": b"x"}
    store = _store(tmp_path, files, {f"result-{two}.json": 1})
    assert _going(store) == set()
    assert _going(store, age=0) == set(files)


def test_a_result_that_does_not_parse_is_kept_with_every_digest_it_holds(tmp_path):
    key, take = _digest(1), _digest(11)
    store = _store(tmp_path, {f"result-{key}.json": f"not json {take}", f"{take}.mp4": b"x"},
                   {})
    assert _going(store, age=0) == set()


class _Undated:
    url = "s3://undated/p"

    def inventory(self):
        return {f"{_digest(1)}.mp4": Stored(1, None)}


def test_an_object_of_unknown_age_is_kept():
    assert find_store_garbage(_Undated(), frozenset(), 0).remove == ()


@pytest.mark.parametrize("text, seconds", [("0", 0), ("30d", 30 * DAY), ("12h", 12 * 3600),
                                           ("90m", 5400), ("2w", 14 * DAY),
                                           ("1d12h", 36 * 3600), ("45s", 45)])
def test_ages(text, seconds):
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["7", "", "-1d", "1.5d", "d", "30 days", "1y"])
def test_what_is_not_an_age(text):
    with pytest.raises(ValueError, match="is not an age"):
        parse_age(text)
