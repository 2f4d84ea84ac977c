"""Everything printed for people: diagnostics, summaries, tables. Only cli.py imports it."""

from __future__ import annotations

from decimal import Decimal
from typing import Iterable

import click

from .errors import Diagnostic


def print_diagnostics(diagnostics: Iterable[Diagnostic]) -> None:
    """`path:line:col: error: message` then an indented `hint:` line, to stderr."""
    for diagnostic in diagnostics:
        click.echo(str(diagnostic), err=True)


def format_usd(amount: Decimal | None) -> str:
    return "unknown" if amount is None else f"${amount:.3f}"


def validation_summary(resolved, jobs) -> str:
    """One line saying what was checked and what a run would cost."""
    sb = resolved.storyboard
    costs = [job.cost_usd for job in jobs]
    known = sum((c for c in costs if c is not None), Decimal(0))
    unknown = sum(1 for c in costs if c is None)
    cost = format_usd(known) + (f" + {unknown} shot(s) of unknown price" if unknown else "")
    return (f"{sb.display_path}: ok: {len(sb.scenes)} scene(s), {len(resolved.shots)} shot(s), "
            f"{len(sb.elements)} element(s), {len(resolved.outputs)} output(s); "
            f"estimated cost {cost}")
