"""kie runs against the simulator that must never pay twice (issue 21): kie answers
`recordInfo is null` (HTTP 200, code 422) for a task it has just made, a lost createTask answer
is never sent again, and kie's USD prices reach `plan` and `--max-cost`."""

from __future__ import annotations

import json
import time

import pytest
from _e2e import PREVIEW, cli

from kling_compose.simulator import Faults, Simulator
from support.locks import read_lock

KEY = "kie-key-e2e"
THREE_SHOTS = """version: 1
name: three
defaults:
  duration: 3
  aspect: '16:9'
scenes:
  - id: main
    shots:
      - id: s1
        prompt: a lantern drifts across the harbour
        first_frame: assets/start.png
      - id: s2
        prompt: fireworks over the water
      - id: s3
        prompt: the boats come home at dawn
"""

THREE_TEXT_SHOTS = THREE_SHOTS.replace("        first_frame: assets/start.png\n", "")


@pytest.fixture
def sim():
    with Simulator({"kie": KEY}, Faults(task_seconds=0.6)) as simulator:
        yield simulator


def run(root, sim, *args):
    env = dict(sim.env()) | {"KIE_API_KEY": KEY, "KLING_COMPOSE_POLL_SECONDS": "0.05"}
    result = cli("run", root, "--json", "--provider", "kie", *PREVIEW, *args, env=env)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def created(sim) -> int:
    """createTask calls kie accepted: what kie bills."""
    return len(sim.generations("kie"))


def test_a_record_not_shown_yet_is_waited_for_not_paid_again(project, sim):
    """Issue 21, item 1: right after createTask kie answers `{code: 422, msg: "recordInfo is
    null"}`; read as "task unknown" the shot was recorded rejected and the next run paid
    again (6 tasks for 3 shots). 3 shots bill 3 tasks, and a second run bills nothing."""
    sim.kie.null_window_s = 0.3  # every task's first polls meet "recordInfo is null"
    root = project(THREE_TEXT_SHOTS)
    first = run(root, sim)
    assert created(sim) == 3, first
    wall = time.time() - time.monotonic()  # the simulator's clock is monotonic, records wall
    started = {g.id: g.started_s + wall for g in sim.generations("kie")}
    nulls = [r for r in sim.requests("kie", "poll") if r.time_s - started[r.query["taskId"]] < 0.3]
    assert nulls, "no poll met the null window: the test proves nothing"
    assert first["failed"] == 0 and first["generated"] == 3, first
    lock = read_lock(root / "storyboard.lock")
    assert {lock["shots"][s]["task_id"] for s in ("s1", "s2", "s3")} == \
        {g.id for g in sim.generations("kie")}
    second = run(root, sim)
    assert created(sim) == 3, second
    assert second["failed"] == 0 and second["generated"] == 0, second
    assert len(sim.requests("kie", "submit")) == 3
    # the simulator bills kie's published prices from its own table: the estimate agrees
    estimated = sum(float(lock["shots"][s]["cost_usd"]) for s in ("s1", "s2", "s3"))
    assert float(sim.billed("kie")) == pytest.approx(estimated) and estimated > 0


def test_a_lost_create_task_answer_is_never_sent_again(project, sim):
    """Issue 21, item 14: kie assigns the task id and has no lookup: a createTask whose answer
    is lost may have been billed; no run sends it again by itself."""
    root = project(THREE_SHOTS)
    sim.faults.reset(1, provider="kie", kind="submit", after_processing=True)
    first = run(root, sim, "--only", "s2")
    assert first["failed"] == 1 and created(sim) == 1, first
    second = run(root, sim, "--only", "s2")
    assert second["failed"] == 1 and created(sim) == 1, second  # asked, not paid twice
    assert len(sim.requests("kie", "submit")) == 1


def test_kie_prices_reach_plan_and_max_cost(project, sim):
    """Issue 21, item 7: kie publishes USD prices (kling-3-pro, silent: $0.09 a second), so
    `--max-cost` no longer refuses every kie run and the estimate is counted."""
    root = project(THREE_SHOTS)
    env = dict(sim.env()) | {"KIE_API_KEY": KEY}
    refused = cli("run", root, "--provider", "kie", "--max-cost", "0.5", *PREVIEW, env=env)
    assert refused.exit_code == 1
    assert "would cost an estimated $0.810, more than the $0.500 allowed" in refused.stderr
    assert created(sim) == 0
    summary = run(root, sim, "--max-cost", "1")
    assert summary["failed"] == 0 and summary["generated"] == 3, summary
    assert created(sim) == 3
