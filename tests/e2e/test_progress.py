"""Live progress (issue 10): the elapsed time of a running task advances between redraws (it
stayed at 0.0 s: the table was built once per event), and the provider's own word for where a
task stands (submitted, queued with its position, processing, downloading) reaches it."""

from __future__ import annotations

import io
import re
import time

from _e2e import chain_storyboard
from test_money_runs import KEYS, sim  # noqa: F401

from kling_compose import RunOptions, build_plan, load_storyboard, run_plan
from kling_compose.settings import ENDPOINTS, Secret, Settings


def test_the_elapsed_time_of_a_running_task_advances_while_nothing_else_happens(project):
    from rich.console import Console

    from kling_compose.console import RunProgress

    root = project(chain_storyboard(1))
    plan = build_plan(load_storyboard(root / "storyboard.yaml"), "fal")
    out = io.StringIO()
    term = Console(file=out, width=100, force_terminal=True, markup=False, emoji=False)
    with RunProgress(plan, console=term) as progress:
        progress.started(plan.tasks["generate:s1"])
        time.sleep(0.8)
        progress.progress(plan.tasks["generate:s1"], "queued (position 2)")
        time.sleep(0.6)
    seen = [float(s) for s in re.findall(r"generate:s1\s+([0-9]+\.[0-9]) s", out.getvalue())]
    assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] - seen[0] >= 0.9, seen
    assert "queued (position 2)" in out.getvalue()
    assert "0/" in out.getvalue() and "cost so far $0.000" in out.getvalue()


class Recorder:
    def __init__(self) -> None:
        self.states: list[tuple[str, str]] = []

    def started(self, task) -> None:
        pass

    def finished(self, outcome) -> None:
        pass

    def progress(self, task, state: str) -> None:
        self.states.append((task.id, state))


def test_the_providers_word_for_a_tasks_state_reaches_the_reporter(project, sim):
    sim.faults.task_seconds = 0.4
    root = project(chain_storyboard(1))
    plan = build_plan(load_storyboard(root / "storyboard.yaml"), "fal")
    settings = Settings(keys={"fal": Secret(KEYS["fal"])},
                        urls=dict(ENDPOINTS) | dict(_urls(sim)), poll_interval_s=0.05)
    recorder = Recorder()
    result = run_plan(plan, RunOptions(), recorder, settings)
    assert result.ok
    states = [s for t, s in recorder.states if t == "generate:s1"]
    assert states[0] == "submitted" and states[-1] == "downloading"
    assert any(s.startswith("queued") or s == "processing" for s in states[1:-1]), states


def _urls(sim):
    env = sim.env()
    for name in ENDPOINTS:
        variable = f"KLING_COMPOSE_{name.upper().replace('-', '_')}_URL"
        if variable in env:
            yield name, env[variable]
