"""A large plan prints as a summary and the tasks that will run, in plain text (issue 13);
`plan --full` keeps the whole table."""

from __future__ import annotations

import pytest
from _e2e import PREVIEW, chain_storyboard, cli, run_json

from kling_compose import console


@pytest.fixture
def small_threshold(monkeypatch):
    monkeypatch.setattr(console, "LARGE_PLAN", 5)


def test_a_large_plan_is_a_summary_of_what_will_run(project, small_threshold):
    root = project(chain_storyboard(4))
    out = cli("plan", root, *PREVIEW).stdout
    assert out.startswith("plan: chain: 8 tasks (a summary; `plan --full` prints every task")
    assert "  generate      4 new\n" in out and "  extract_frame 3 new\n" in out
    assert "will run (8):\n  generate:s1 " in out
    assert "┃" not in out  # no table
    run_json(root)
    text = (root / "storyboard.yaml").read_text().replace("shot number 3", "shot number three")
    (root / "storyboard.yaml").write_text(text)
    out = cli("plan", root, *PREVIEW).stdout
    assert "  generate      2 cached, 2 changed\n" in out
    will_run = out.split("will run (")[1]
    assert will_run.startswith("4):")  # s3, its last frame, s4 and the film
    assert "generate:s1" not in will_run and "generate:s2 " not in will_run
    assert "generate:s3" in will_run and "prompt: shot number 3 -> shot number three" in will_run
    full = cli("plan", root, "--full", *PREVIEW).stdout
    assert "┃ task" in full and "generate:s1" in full


def test_a_large_plan_with_nothing_to_run_says_so(project, small_threshold):
    root = project(chain_storyboard(3))
    run_json(root)
    out = cli("plan", root, *PREVIEW).stdout
    assert "nothing to run: every task is cached" in out and "to pay on the next run: $0" in out
