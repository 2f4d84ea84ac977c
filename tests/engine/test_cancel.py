"""A Ctrl-C lands wherever the main thread happens to be: asyncio.run's SIGINT handler cancels
the run between any two bytecodes, also while a task is in the synchronous part between its
last await and publishing its outcome. CI caught that once as an InvalidStateError traceback
(a cancelled downstream task had cancelled the upstream task's future under it)."""

from __future__ import annotations

import asyncio

import pytest
from support.projects import chain_storyboard, make_project

from kling_compose import RunOptions, build_plan, load_storyboard, run_plan


class CancelWhileFinishing:
    """Cancels the run's main task from inside a task's last synchronous step (as the SIGINT
    handler may), after the first task finishes."""

    def __init__(self) -> None:
        self.done: list[str] = []

    def started(self, task) -> None:
        pass

    def finished(self, outcome) -> None:
        self.done.append(outcome.task.id)
        if len(self.done) == 1:
            main = next(t for t in asyncio.all_tasks() if t.get_coro().__name__ == "run")
            main.cancel()


def test_a_cancel_between_a_tasks_last_await_and_its_outcome_is_a_clean_cancel(tmp_path):
    root = make_project(tmp_path, chain_storyboard(3))
    plan = build_plan(load_storyboard(root / "storyboard.yaml"), "preview", 90)
    reporter = CancelWhileFinishing()
    with pytest.raises(asyncio.CancelledError):
        run_plan(plan, RunOptions(), reporter)
    # the interrupted run left nothing half-done: the next one finishes from where it stopped
    again = run_plan(build_plan(load_storyboard(root / "storyboard.yaml"), "preview", 90),
                     RunOptions())
    statuses = {o.task.id: o.status for o in again.outcomes}
    assert statuses[reporter.done[0]] == "cached"
    assert set(statuses.values()) <= {"cached", "done"}
