"""A team through an S3-compatible bucket (issue 11), end to end: a run on the simulator
pushes its paid clips to a real S3 server (moto), a fresh clone pulls the film without a key,
and bytes changed in the bucket are refused."""

from __future__ import annotations

import shutil

from _e2e import chain_storyboard, cli
from test_money_runs import run, sim  # noqa: F401

pytest_plugins = ["_s3"]  # the fixtures s3_server and s3


def test_a_run_pushes_to_the_bucket_and_a_clone_pulls_the_film(project, sim, s3, tmp_path):
    url = f"s3://{s3.bucket}/films/harbour"
    root = project(chain_storyboard(2).replace("name: chain\n", f"name: chain\nstore: {url}\n"))
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
    # bytes changed in the bucket are never used
    victim = sorted(names)[0]
    s3.client().put_object(Bucket=s3.bucket, Key=victim, Body=b"something else")
    other = tmp_path / "carol"
    shutil.copytree(clone, other, ignore=shutil.ignore_patterns(".kling-compose", "renders"))
    refused = cli("pull", other)
    assert refused.exit_code == 1 and "does not hash to its name" in refused.stderr
