"""A team through an S3-compatible bucket (issue 11), end to end on a real object store
(SeaweedFS, tests/e2e/_s3.py): a run on the simulator pushes its paid clips, a fresh clone pulls
the film without a key, two clones running at once pay for each shot once (the claims), bytes
changed in the bucket are refused and never used, and the server SIGKILLed mid-push or
mid-pull leaves one message, no object under a name its bytes do not hash to, and a transfer
that completes once the server is back."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from collections.abc import Callable

import pytest
from _e2e import chain_storyboard, cli, clone_project
from test_money_runs import environment, run, sim  # noqa: F401

from kling_compose.project.store import Store
from support.locks import read_lock

pytest_plugins = ["_s3"]  # the fixture s3: a bucket on SeaweedFS (s3.server)
MiB = 1 << 20


def with_store(storyboard: str, url: str) -> str:
    return storyboard.replace("name: chain\n", f"name: chain\nstore: {url}\n")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def bucket_clips(s3, tmp_path: Path) -> dict[str, str]:
    """{name: sha256 of its bytes} of every clip in the bucket, read back from the server."""
    client, found = s3.client(), {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket):
        for item in page.get("Contents", ()):
            if item["Key"].endswith(".mp4"):
                body = tmp_path / "read-back"
                client.download_file(s3.bucket, item["Key"], str(body))
                found[item["Key"].rsplit("/", 1)[-1]] = sha256(body)
    return found


def assert_every_clip_hashes_to_its_name(clips: dict[str, str]) -> None:
    wrong = {name: digest for name, digest in clips.items()
             if digest != name.removesuffix(".mp4")}
    assert not wrong, f"objects whose bytes do not hash to their name: {wrong}"


def assert_objects_hash_to_their_names(root: Path) -> None:
    """Every object of the local store under a final name holds the bytes its name says."""
    objects = root / ".kling-compose" / "objects"
    for path in objects.glob("*/*"):
        assert sha256(path) == path.name.split(".")[0], path


def test_a_run_pushes_to_the_bucket_and_a_clone_pulls_the_film(project, sim, s3, tmp_path):
    url = f"s3://{s3.bucket}/films/harbour"
    root = project(with_store(chain_storyboard(2), url))
    assert run(root, "fal", sim)["generated"] == 2
    names = {o["Key"] for o in s3.client().list_objects_v2(Bucket=s3.bucket)["Contents"]
             if o["Key"].endswith(".mp4")}
    assert len(names) == 3 and all(n.startswith("films/harbour/") for n in names)  # 2 + film
    clone = tmp_path / "bob"
    clone.mkdir()
    for name in ("storyboard.yaml", "storyboard.lock"):
        shutil.copy(root / name, clone / name)
    shutil.copytree(root / "assets", clone / "assets")
    pulled = cli("pull", clone, env={"FAL_KEY": None})
    assert pulled.exit_code == 0, pulled.output
    assert (clone / "renders" / "chain.mp4").read_bytes() == \
        (root / "renders" / "chain.mp4").read_bytes()
    assert s3.secret_access_key not in pulled.output


def test_an_object_corrupted_in_the_bucket_is_refused_and_never_used(project, sim, s3,
                                                                       tmp_path):
    """A clip overwritten behind the store's back with other bytes: `pull` names it and exits
    1, nothing of it enters the clone's store, and the clone's run takes the clip from the
    provider's result URL (verified), not from the bucket, paying nothing."""
    url = f"s3://{s3.bucket}/films/harbour"
    root = project(with_store(chain_storyboard(2), url))
    assert run(root, "fal", sim)["generated"] == 2
    victim = read_lock(root / "storyboard.lock")["shots"]["s1"]["sha256"][0] + ".mp4"
    s3.client().put_object(Bucket=s3.bucket, Key=f"films/harbour/{victim}",
                           Body=b"something else")
    clone = clone_project(root, tmp_path / "carol")
    refused = cli("pull", clone)
    assert refused.exit_code == 1
    assert f"warning: {victim} in {url} does not hash to its name: not used" in refused.stderr
    assert not list((clone / ".kling-compose" / "objects").glob(f"*/{victim}"))
    assert_objects_hash_to_their_names(clone)
    summary = run(clone, "fal", sim)
    assert summary["failed"] == 0 and summary["generated"] == 0, summary
    assert len(sim.generations("fal")) == 2  # nothing paid again
    for clip in ("renders/shots/s1.mp4", "renders/chain.mp4"):
        assert (clone / clip).read_bytes() == (root / clip).read_bytes()
    assert_objects_hash_to_their_names(clone)


def test_two_clones_running_at_once_pay_for_each_shot_once(project, sim, s3, tmp_path):
    """Two machines run one storyboard at the same time against the bucket: each shot is
    claimed there (a create-only PUT) by one run, which pays; the other follows or waits for
    its published result (tests/e2e/test_shared_store.py does this on a folder)."""
    sim.faults.task_seconds = 1.0
    alice = project(with_store(chain_storyboard(3), f"s3://{s3.bucket}/films/harbour"))
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
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=s3.bucket)["Contents"]]
    assert len([k for k in keys if "/claim-" in k]) == 3
    assert len([k for k in keys if "/result-" in k]) == 3


# -- the server SIGKILLed mid-transfer ------------------------------------------------------

LARGE = 96 * MiB  # a take long enough to transfer that a kill lands in it (~0.2-1 s here)
KILL_AFTER = 8 * MiB  # bytes of it moved when the server is killed


@pytest.fixture
def large_take(project, sim, s3):
    """A film run on the simulator (runware, s1 in two takes), pushed to the bucket, whose take
    2 is then made a 96 MiB object: in the local store and, by its sha256, in the lock (the
    simulator's clips are a few KB, over in a millisecond). Returns the project, the store's
    URL and the large object's name, which the bucket lacks."""
    url = f"s3://{s3.bucket}/films/harbour"
    root = project(with_store(chain_storyboard(1, extra="  takes: 2"), url))
    assert run(root, "runware", sim)["generated"] == 1
    store = Store(root / ".kling-compose")
    temp = store.temp_path(".mp4")
    temp.write_bytes(os.urandom(LARGE))
    digest = store.adopt(temp)
    lock = read_lock(root / "storyboard.lock")
    lock["shots"]["s1"]["sha256"][1] = digest
    (root / "storyboard.lock").write_text(json.dumps(lock))
    return root, url, digest + ".mp4"


class Killer(threading.Thread):
    """SIGKILLs the server as soon as `moved()` (bytes of the transfer seen so far) reaches
    KILL_AFTER; `moved_at_kill` is what it saw (None: the transfer never got there)."""

    def __init__(self, server, moved: Callable[[], int]) -> None:
        super().__init__(daemon=True)
        self.server, self.moved, self.moved_at_kill = server, moved, None
        self.start()

    def run(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            moved = self.moved()
            if moved >= KILL_AFTER:
                self.server.kill()
                self.moved_at_kill = moved
                return
            time.sleep(0.001)


def one_message(result, url: str) -> str:
    """The failed command's output: one error naming the store, no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and url in errors[0], result.stderr
    return errors[0]


def test_the_server_killed_mid_push(large_take, s3, tmp_path):
    """`push` with the server SIGKILLed while the large take streams up: one message, exit 1;
    the bucket (read back after a restart on the same data) holds no object whose bytes do not
    hash to its name, and not the half-sent take; a second `push` sends it whole."""
    root, url, large = large_take
    pushed_by_the_run = set(bucket_clips(s3, tmp_path))
    before = s3.server.data_bytes(s3.bucket)
    killer = Killer(s3.server, lambda: s3.server.data_bytes(s3.bucket) - before)
    pushed = cli("push", root)
    killer.join(timeout=120)
    assert killer.moved_at_kill is not None and not s3.server.alive()
    message = one_message(pushed, url)
    assert f"bucket '{s3.bucket}'" in message
    s3.server.start()
    clips = bucket_clips(s3, tmp_path)
    assert_every_clip_hashes_to_its_name(clips)
    assert set(clips) == pushed_by_the_run  # and not the large take
    again = cli("push", root)
    assert again.exit_code == 0, again.output
    assert f"pushed 1 object(s) to {url}" in again.stdout
    clips = bucket_clips(s3, tmp_path)
    assert_every_clip_hashes_to_its_name(clips)
    assert large in clips


def test_the_server_killed_mid_pull(large_take, sim, s3, tmp_path):
    """A clone's `pull` with the server SIGKILLed while the large take streams down: one
    message, exit 1; nothing under a final name in the clone's store or renders/ whose bytes
    are not what the name says; after a restart `pull` completes, the film is the film, and
    the clone's run restores every shot without paying."""
    root, url, large = large_take
    assert cli("push", root).exit_code == 0  # the large take goes up whole
    clone = clone_project(root, tmp_path / "bob")
    temp = clone / ".kling-compose" / "tmp"

    def moved() -> int:
        sizes = [0]
        for path in temp.glob("*"):
            try:
                sizes.append(path.stat().st_size)
            except OSError:  # adopted or removed meanwhile
                pass
        return max(sizes)

    killer = Killer(s3.server, moved)
    pulled = cli("pull", clone, env={"RUNWARE_API_KEY": None})
    killer.join(timeout=120)
    assert killer.moved_at_kill is not None and not s3.server.alive()
    one_message(pulled, url)
    assert not list((clone / ".kling-compose" / "objects").glob(f"*/{large}"))
    assert_objects_hash_to_their_names(clone)
    for path in (clone / "renders").rglob("*") if (clone / "renders").exists() else ():
        if path.is_file():  # written only from verified objects, whole
            assert path.read_bytes() == (root / path.relative_to(clone)).read_bytes()
    s3.server.start()
    again = cli("pull", clone, env={"RUNWARE_API_KEY": None})
    assert again.exit_code == 0, again.output
    assert (clone / "renders" / "chain.mp4").read_bytes() == \
        (root / "renders" / "chain.mp4").read_bytes()
    assert list((clone / ".kling-compose" / "objects").glob(f"*/{large}"))
    assert_objects_hash_to_their_names(clone)
    billed = len(sim.generations("runware"))
    summary = run(clone, "runware", sim)
    assert summary["failed"] == 0 and summary["generated"] == 0, summary
    assert len(sim.generations("runware")) == billed
