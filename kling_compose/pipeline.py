"""The stages in order; the table of contents of the package.

    source --render--> Rendered --parse--> Document --validate--> Storyboard
           --resolve--> Resolved --compile--> Jobs --plan--> Plan --execute--> RunState
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from .model import Resolved


def load_resolved(path: Path, variables: Mapping[str, object] | None = None,
                  display: str | None = None) -> Resolved:
    """Render, parse, validate and resolve the storyboard at `path`."""
    from .parse import parse_document
    from .render import read_source, render_source
    from .resolve import resolve_storyboard
    from .validate import validate_document

    source = read_source(path.absolute(), display or str(path))
    rendered = render_source(source, variables)
    return resolve_storyboard(validate_document(parse_document(rendered)))


def compile_storyboard(resolved: Resolved, provider: str | None = None):
    """One Job per shot: exact request payloads, limits checked, costs estimated."""
    from .compiler import compile_shots

    return compile_shots(resolved, provider)


def render_text(path: Path, variables: Mapping[str, object] | None = None,
                display: str | None = None) -> str:
    """The storyboard after Jinja rendering (what `kling-compose render` prints)."""
    from .render import read_source, render_source

    return render_source(read_source(path.absolute(), display or str(path)), variables).text


def build_storyboard_plan(resolved: Resolved, provider: str | None = None):
    """Compile and plan: the task DAG with keys and costs."""
    from .plan import build_plan

    return build_plan(resolved, compile_storyboard(resolved, provider))


def plan_statuses(plan) -> dict[str, str]:
    """Per task: "cached" (a verified result exists), "changed" (the shot was made before with
    other inputs) or "new", read from the project's state without changing it."""
    from .engine.state import read_statuses

    return read_statuses(plan)
