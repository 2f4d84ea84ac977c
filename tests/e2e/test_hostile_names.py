"""User text printed through rich is printed as it is (issue 10): markup-like brackets, emoji
codes, unicode and very long ids in names, ids and paths, through every command. Before, a task
id `frame:one:last` printed as `frame1️⃣last`, a name `harbour [/draft]` crashed `plan` and
`status` with a MarkupError, and an output path with `[/v2]` crashed `run` after the film
was written."""

from __future__ import annotations

import io
import json

import pytest
from _e2e import PREVIEW, cli

from kling_compose import build_plan, load_storyboard

NAME = "harbour [/draft] :fire: [bold]cut[/bold] — ночь 🌙"
LONG = "s" + "x" * 150
FILM = "renders/cut [/v2] :one: [red].mp4"
STORYBOARD = f"""version: 1
name: "{NAME}"
defaults:
  duration: 3
scenes:
  - id: one
    shots:
      - id: one
        prompt: "a lantern [/i] :boat: drifts"
      - id: fire
        prompt: the harbour burns
        first_frame: {{ from: one }}
      - id: {LONG}
        prompt: a very long id
        first_frame: {{ from: fire }}
outputs:
  - path: "{FILM}"
"""
LITERALS = ["frame:one:last", "frame:fire:last", f"generate:{LONG}", FILM]


@pytest.fixture
def root(project):
    return project(STORYBOARD)


def _plain(text: str) -> str:
    """Table cells may fold a long id over lines (the JSON outputs hold it whole): compare the
    first 100 characters, without the table's layout."""
    for junk in ("│", "┃", "\n", " "):
        text = text.replace(junk, "")
    return text


def test_every_command_prints_hostile_names_as_they_are(root):
    for args in (("validate",), ("plan",), ("graph",), ("render",), ("config",),
                 ("gc", "--dry-run"), ("doctor",)):
        result = cli(*args, root)
        assert result.exit_code == 0, (args, result.output)
        assert "Traceback" not in result.output
    assert NAME in cli("config", root).stdout
    plan = cli("plan", root).stdout
    assert NAME in plan and "1️⃣" not in plan and "🔥" not in plan
    for literal in LITERALS:
        assert _plain(literal)[:100] in _plain(plan), literal
    run = cli("run", root, *PREVIEW)
    assert run.exit_code == 0, run.output
    assert _plain(FILM) in _plain(run.stdout) and "1️⃣" not in run.stdout
    assert (root / FILM).is_file()
    status = cli("status", root)
    assert status.exit_code == 0 and NAME in status.stdout
    for literal in LITERALS:
        assert _plain(literal)[:100] in _plain(status.stdout), literal
    for command in ("plan", "status", "run"):
        data = json.loads(cli(command, root, "--json", *(PREVIEW if command == "run" else ()))
                          .stdout)
        assert {t["id"] for t in data["tasks"]} >= {"frame:one:last", f"assemble:{FILM}",
                                                    f"generate:{LONG}"}


def test_the_plan_keeps_status_and_cost_readable_at_80_columns(root, monkeypatch):
    from rich.console import Console

    from kling_compose import console

    out = io.StringIO()
    monkeypatch.setattr(console, "_wide_console", lambda: Console(
        file=out, width=80, force_terminal=False, markup=False, emoji=False, highlight=False))
    plan = build_plan(load_storyboard(root / "storyboard.yaml"), "runware")
    console.print_plan(plan, {})
    lines = out.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines)
    generate = next(line for line in lines if "generate:one" in line)
    assert " new " in generate and "$0.336" in generate  # not `ne…` and `$0.…`
    assert NAME in out.getvalue()


def test_progress_prints_task_ids_as_they_are(root):
    from rich.console import Console

    from kling_compose.console import RunProgress

    out = io.StringIO()
    term = Console(file=out, width=100, force_terminal=True, markup=False, emoji=False)
    plan = build_plan(load_storyboard(root / "storyboard.yaml"), "preview")
    progress = RunProgress(plan, console=term)
    progress.started(plan.tasks["frame:one:last"])
    term.print(progress._render())
    assert "frame:one:last" in out.getvalue() and "1️⃣" not in out.getvalue()
