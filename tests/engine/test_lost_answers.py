"""A lost submit answer on the task-queue providers, through the real CLI and the simulator:
the run stops with a message that asks the user (the task may be billed), never a traceback,
and nothing is sent again by itself (issue 21, item 14)."""

from __future__ import annotations

import json
from pathlib import Path

from support.projects import cli

STORYBOARD = """\
version: 1
name: lost
defaults:
  provider: kling-v3-task
  model: kling-3-pro
  duration: 3
scenes:
  - id: main
    shots:
      - id: dock
        prompt: A violinist on a dock at dusk
"""


def run(root: Path, env: dict[str, str]) -> dict:
    result = cli("run", root, "--json", env=env)
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output
    return json.loads(result.stdout)


def task(summary: dict, task_id: str) -> dict:
    return next(t for t in summary["tasks"] if t["id"] == task_id)


def test_a_lost_kling_v3_task_submit_answer_stops_and_asks_the_user(tmp_path, sim, sim_env):
    """`reset:1,kind=submit,after_processing=1`: the task is made (and billed), the answer
    lost. kling-v3-task assigns its own taskId and offers no lookup by ours, so neither this
    run nor the next may send it again: both stop and say what to do."""
    sim.faults.reset(1, after_processing=True, provider="kling-v3-task", kind="submit")
    root = tmp_path / "film"
    root.mkdir()
    (root / "storyboard.yaml").write_text(STORYBOARD, encoding="utf-8")
    first = task(run(root, sim_env), "generate:dock")
    assert first["status"] == "failed"
    assert "answer" in first["error"] and "lost" in first["error"]
    assert len(sim.generations("kling-v3-task")) == 1
    second = task(run(root, sim_env), "generate:dock")
    assert second["status"] == "failed"
    assert "may have been accepted" in second["error"]
    assert "dashboard" in second["error"] and "--force dock" in second["error"]
    assert len(sim.generations("kling-v3-task")) == 1  # never sent again by itself
    assert len(sim.requests("kling-v3-task", "submit")) == 1


def test_a_kling_v3_task_server_error_to_a_submission_is_not_sent_again(tmp_path, sim, sim_env):
    """Seed 002's code 500 ("Server Error") to createTask leaves open whether the task was
    made: retrying it could pay twice, so the run stops there (it was retried before)."""
    sim.faults.error(1, status=500, provider="kling-v3-task", kind="submit")
    root = tmp_path / "film"
    root.mkdir()
    (root / "storyboard.yaml").write_text(STORYBOARD, encoding="utf-8")
    first = task(run(root, sim_env), "generate:dock")
    assert first["status"] == "failed", first
    assert "code 500" in first["error"] and "kling-compose adopt dock" in first["error"]
    assert len(sim.requests("kling-v3-task", "submit")) == 1
    second = task(run(root, sim_env), "generate:dock")
    assert second["status"] == "failed" and "may have been accepted" in second["error"]
    assert len(sim.requests("kling-v3-task", "submit")) == 1
