"""`kling-compose run` against the provider simulator: a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from _e2e import PREVIEW, chain_storyboard, cli

from kling_compose.simulator import Faults, Simulator
from support.locks import read_lock

KEYS = {"runware": "rw-key-e2e", "fal": "fal-key-e2e", "kling-v3-task": "task-key-e2e"}


@pytest.fixture
def sim():
    with Simulator(KEYS, Faults(task_seconds=0.05)) as simulator:
        yield simulator


def env_for(sim) -> dict:
    env = dict(sim.env())
    env.update({"RUNWARE_API_KEY": KEYS["runware"], "FAL_KEY": KEYS["fal"],
                "KLING_V3_TASK_API_KEY": KEYS["kling-v3-task"]})
    return env


def fast(root, provider: str, sim, *extra):
    """run --json with fast polling (the first poll after 1 s is the SDK cadence; tests need less)."""
    env = env_for(sim) | {"KLING_COMPOSE_POLL_SECONDS": "0.05"}
    result = cli("run", root, "--json", "--provider", provider, *PREVIEW, *extra, env=env)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("provider", ["runware", "fal"])
def test_a_chained_storyboard_runs_at_the_provider_and_reruns_for_free(project, sim, provider):
    root = project(chain_storyboard(2))
    summary = fast(root, provider, sim)
    assert summary["failed"] == 0 and summary["generated"] == 2, summary
    assert len(sim.generations(provider)) == 2
    assert (root / "renders" / "chain.mp4").is_file()
    again = fast(root, provider, sim)
    assert again["generated"] == 0 and len(sim.generations(provider)) == 2
    lock = read_lock(root / "storyboard.lock")
    assert lock["shots"]["s1"]["result_url"][0].startswith(sim.base_url)


def test_faults_are_retried_and_a_provider_failure_skips_the_chain(project, sim):
    root = project(chain_storyboard(2, {1: "a dragon eats the moon"}))
    sim.faults.rate_limit(1, retry_after=0)
    sim.faults.fail_generation("dragon", "content policy")
    summary = fast(root, "runware", sim)
    status = {t["id"]: t["status"] for t in summary["tasks"]}
    assert status["generate:s1"] == "failed" and status["generate:s2"] == "skipped"
    assert "content policy" in json.dumps(summary)


def test_a_run_killed_while_polling_resumes_without_paying_twice(project, sim):
    sim.faults.task_seconds = 3.0
    root = project(chain_storyboard(1))
    env = env_for(sim) | {"KLING_COMPOSE_POLL_SECONDS": "0.05"}
    command = [sys.executable, "-m", "kling_compose", "run", str(root), "--provider", "runware"]
    proc = subprocess.Popen(command, env=os.environ | env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not sim.requests("runware", "poll"):
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert len(sim.generations("runware")) == 1
    summary = fast(root, "runware", sim)
    assert summary["failed"] == 0 and summary["generated"] == 1
    assert len(sim.generations("runware")) == 1  # polled, not submitted again
    assert str(sim.billed("runware")) == "0.336"
