"""A team through an S3-compatible bucket (issue 11), end to end on a real object store
(SeaweedFS, tests/e2e/_s3.py): a run on the simulator pushes its paid clips, a fresh clone pulls
the film without a key, two clones running at once pay for each shot once (the claims), bytes
changed in the bucket are refused and never used."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from _e2e import chain_storyboard, cli, clone_project
from test_money_runs import environment, run, sim  # noqa: F401

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
