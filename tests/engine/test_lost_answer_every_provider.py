"""A lost submit answer on every hosted provider (issue 23): the task was made and billed, its
answer never arrived. Whatever the provider's way back (`Capabilities.lost_answer`: Runware asks
for its own taskUUID, fal searches its request list, Kling looks up our external_task_id, kie
and kling-v3-task cannot look it up), the run ends in a safe resume paid exactly once or in a
message naming how to go on (`kling-compose adopt`, `run --force`), never a traceback; and no
later run pays for it again.

The providers come from the registry, so a new hosted provider is covered as soon as it is
registered (and fails here until the simulator speaks it). The real CLI runs in-process through
tests/conftest.py's `run_cli` (an exception escaping a command fails the test) against its
`sim` (the environment pointing at it: `sim_environ`), whose `reset(after_processing=True)`
handles the submission, then closes the connection without answering.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kling_compose.providers import PROVIDERS

HOSTED = [name for name, provider in PROVIDERS.items()
          if not provider.spec.capabilities.local]

ONE_SHOT = """version: 1
name: lost
defaults:
  duration: 3
  aspect: '16:9'
scenes:
  - id: main
    shots:
      - id: s1
        prompt: a lantern drifts across the harbour
"""

# what a run that stops says: how the user goes on (the task may be paid for)
ASKS = ("kling-compose adopt s1", "run --force s1")
LATER = "`run` again"  # the next run looks it up by itself


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "film"
    root.mkdir()
    (root / "storyboard.yaml").write_text(ONE_SHOT, encoding="utf-8")
    return root


def run(run_cli, root: Path, provider: str, *args: str) -> dict:
    """`kling-compose run --json` once: its summary; never a traceback."""
    code, out, err = run_cli(["run", root, "--json", "--provider", provider, *args])
    assert code in (0, 1), (code, out, err)
    assert "Traceback" not in out + err, out + err
    return json.loads(out)


def shot_task(summary: dict) -> dict:
    return next(t for t in summary["tasks"] if t["id"] == "generate:s1")


def paid(sim, provider: str) -> tuple[int, int]:
    """(generations the simulator made, submissions it received): what was paid for."""
    return len(sim.generations(provider)), len(sim.requests(provider, "submit"))


def test_every_hosted_provider_is_covered():
    assert set(HOSTED) == {"runware", "fal", "kie", "kling", "kling-v3-task"}


@pytest.mark.parametrize("provider", HOSTED)
def test_a_lost_submit_answer_resumes_paid_once_or_says_how_to_go_on(run_cli, sim, sim_environ,
                                                                     project, provider):
    sim.faults.reset(1, provider=provider, kind="submit", after_processing=True)
    outcomes = []
    for _ in range(3):  # the run that lost it, and at most two that look it up
        task = shot_task(run(run_cli, project, provider))
        assert sim.faults.take(provider, "submit") is None  # the answer was lost indeed
        assert paid(sim, provider) == (1, 1), (provider, task)  # made once, never sent again
        if task["status"] == "done":
            outcomes.append("resumed")
            break
        assert task["status"] == "failed", task
        error = task["error"]
        assert "lost" in error or "may have been accepted" in error, error
        if all(step in error for step in ASKS):
            outcomes.append("asks")
            break
        assert LATER in error, f"{provider}: the message names no way on: {error}"
        outcomes.append("later")
    assert outcomes[-1] in ("resumed", "asks"), (provider, outcomes)
    expected = {"resend": ["resumed"], "lookup": ["later", "resumed"],
                "request_list": ["later", "resumed"], "ask": ["asks"]}
    assert outcomes == expected[PROVIDERS[provider].spec.capabilities.lost_answer], outcomes
    billed = sim.billed(provider)

    if outcomes[-1] == "asks":
        # asked again, never sent again by itself
        again = shot_task(run(run_cli, project, provider))
        assert again["status"] == "failed" and all(s in again["error"] for s in ASKS), again
        assert paid(sim, provider) == (1, 1)
        # the way the message names: the task the dashboard shows, adopted by its id
        task_id = sim.generations(provider)[0].id.split("#")[0]
        code, out, err = run_cli(["adopt", "s1", task_id, project, "--provider", provider])
        assert code == 0 and "Traceback" not in out + err, out + err
        summary = run(run_cli, project, provider)
        assert summary["failed"] == 0, summary
        assert paid(sim, provider) == (1, 1)
        billed = sim.billed(provider)

    # a later run pays nothing: the clip is reused
    summary = run(run_cli, project, provider)
    assert summary["failed"] == 0 and summary["generated"] == 0, summary
    assert shot_task(summary)["status"] == "cached"
    assert paid(sim, provider) == (1, 1)
    assert sim.billed(provider) == billed  # the simulator billed the one generation only
