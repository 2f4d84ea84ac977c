"""Everything printed for people: diagnostics, summaries, tables. Only cli.py imports it."""

from __future__ import annotations

from decimal import Decimal
from typing import Iterable

import click

from .engine.state import NOTHING_TO_PAY
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


def _num(amount: Decimal | None):
    return None if amount is None else float(amount)


def json_lines(data: dict, list_key: str) -> str:
    """JSON with one item of `list_key` per line: readable, and fast at 10,000 tasks
    (json.dumps with indent uses the pure-Python encoder)."""
    import json

    items = data[list_key]
    head = json.dumps({list_key: None}, ensure_ascii=False)[:-5]
    body = ",\n".join("  " + json.dumps(item, ensure_ascii=False) for item in items)
    rest = json.dumps({k: v for k, v in data.items() if k != list_key}, ensure_ascii=False)
    tail = (",\n " + rest[1:-1] if len(rest) > 2 else "") + "\n}"
    return head + ("[\n" + body + "\n]" if items else "[]") + tail


def plan_json(plan, statuses: dict | None = None) -> dict:
    """The machine-readable plan (`plan --json`)."""
    statuses = statuses or {}
    return {
        "tasks": [
            {"id": t.id, "kind": t.kind, "shot": t.shot, "depends_on": list(t.depends_on),
             "provider": t.provider, "model": t.model, "cache_key": t.cache_key,
             "estimated_cost_usd": _num(t.cost_usd), "status": statuses.get(t.id, "new")}
            for t in (plan.tasks[i] for i in plan.order)
        ],
        "total_estimated_cost_usd": _num(plan.total_cost_usd),
        "unknown_cost_tasks": list(plan.unknown_costs),
        "critical_path": plan.critical_path(),
    }


def plan_requests(plan) -> list[dict]:
    """Every generate task's exact request body (`plan --requests`)."""
    return [{"task": t.id, "shot": t.shot, "provider": t.provider, "request": t.job.request}
            for t in (plan.tasks[i] for i in plan.order) if t.kind == "generate"]


def _wide_console():
    """A rich console; when output is not a terminal, wide enough for task ids not to wrap."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)


def print_plan(plan, statuses: dict | None = None) -> None:
    """A table of tasks in topological order, totals and the critical path."""
    from rich.table import Table

    statuses = statuses or {}
    table = Table(title=f"plan: {plan.resolved.storyboard.name}", show_lines=False)
    table.add_column("task", no_wrap=True)
    table.add_column("shot")
    table.add_column("status")
    table.add_column("provider")
    table.add_column("model")
    table.add_column("duration", justify="right")
    table.add_column("est. cost", justify="right")
    table.add_column("inputs", overflow="fold")
    to_pay = Decimal(0)
    for task in (plan.tasks[i] for i in plan.order):
        status = statuses.get(task.id, "new")
        if status not in NOTHING_TO_PAY and task.cost_usd:
            to_pay += task.cost_usd
        table.add_row(
            task.id, task.shot or "", status, task.provider or "", task.model or "",
            f"{task.duration_s} s" if task.duration_s else "",
            format_usd(task.cost_usd) if task.kind == "generate" else "",
            ", ".join(task.depends_on),
        )
    console = _wide_console()
    console.print(table)
    unknown = plan.unknown_costs
    console.print(f"total estimate: {format_usd(plan.total_cost_usd)}"
                  + (f" (+ unknown price for {', '.join(unknown)})" if unknown else "")
                  + f"; to pay on the next run: {format_usd(to_pay)}")
    console.print("critical path: " + " -> ".join(plan.critical_path()))


def graph_text(plan, fmt: str) -> str:
    """The task DAG as Mermaid or Graphviz dot."""
    ids = {task_id: f"t{i}" for i, task_id in enumerate(plan.order)}
    if fmt == "mermaid":
        lines = ["flowchart LR"]
        lines += [f'  {ids[t]}["{t}"]' for t in plan.order]
        lines += [f"  {ids[u]} --> {ids[v]}" for u, v in plan.graph.edges]
    else:
        lines = ["digraph plan {", "  rankdir=LR;", "  node [shape=box];"]
        lines += [f'  {ids[t]} [label="{t}"];' for t in plan.order]
        lines += [f"  {ids[u]} -> {ids[v]};" for u, v in plan.graph.edges]
        lines.append("}")
    return "\n".join(lines) + "\n"


class RunProgress:
    """Live per-task progress on stderr (rich); silent when not a terminal or with --json."""

    def __init__(self, plan, quiet: bool = False) -> None:
        from rich.console import Console

        self.plan = plan
        self.console = Console(stderr=True)
        self.live = None
        self.quiet = quiet or not self.console.is_terminal
        self.running: dict[str, float] = {}
        self.done = 0
        self.cost = Decimal(0)

    def __enter__(self):
        if not self.quiet:
            from rich.live import Live

            self.live = Live(self._render(), console=self.console, refresh_per_second=4,
                             transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def started(self, task) -> None:
        import time

        self.running[task.id] = time.monotonic()
        self._refresh()

    def finished(self, outcome) -> None:
        self.running.pop(outcome.task.id, None)
        self.done += 1
        self.cost += outcome.cost_usd
        if outcome.status == "failed" and not self.quiet:
            self.console.print(f"[red]failed[/red] {outcome.task.id}: {outcome.error}")
        self._refresh()

    def _refresh(self) -> None:
        if self.live is not None:
            self.live.update(self._render())

    def _render(self):
        import time

        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        table.add_row(f"[bold]{self.done}/{len(self.plan.order)}[/bold] tasks",
                      f"cost so far {format_usd(self.cost)}")
        now = time.monotonic()
        for task_id, started in self.running.items():
            table.add_row(f"  [cyan]running[/cyan] {task_id}", f"{now - started:5.1f} s")
        return table


def run_json(result) -> str:
    import json

    data = {
        "tasks": [{"id": o.task.id, "kind": o.task.kind, "shot": o.task.shot,
                   "status": o.status, "cost_usd": float(o.cost_usd),
                   **({"estimated_cost_usd": _num(o.task.cost_usd)}
                      if o.task.kind == "generate" else {}),
                   **({"error": o.error} if o.error else {})} for o in result.outcomes],
        "generated": result.count("done", "generate"),
        "cached": result.count("cached", "generate"),
        "restored": result.count("restored", "generate"),
        "failed": result.count("failed"),
        "skipped": result.count("skipped"),
        "cost_usd": float(result.cost_usd),
        "films": [str(p) for p in result.films],
    }
    return json.dumps(data, indent=2)


def print_run_summary(result, plan) -> None:
    from rich.table import Table

    console = _wide_console()
    table = Table(title="run summary")
    for column in ("task", "status", "estimate", "cost", "time", "note"):
        table.add_column(column)
    colors = {"done": "green", "cached": "dim", "restored": "cyan", "failed": "red",
              "skipped": "yellow"}
    for o in result.outcomes:
        generate = o.task.kind == "generate"
        table.add_row(o.task.id, f"[{colors[o.status]}]{o.status}[/]",
                      format_usd(o.task.cost_usd) if generate else "",
                      _paid(o) if generate else "",
                      f"{o.elapsed_s:.1f} s" if o.status == "done" else "", o.error or "")
    console.print(table)
    restored = result.count("restored", "generate")
    console.print(f"generated {result.count('done', 'generate')}, cached "
                  f"{result.count('cached', 'generate')}, "
                  + (f"restored from storyboard.lock {restored}, " if restored else "")
                  + f"failed {result.count('failed')}, "
                  f"skipped {result.count('skipped')}; cost {format_usd(result.cost_usd)}")
    root = plan.resolved.storyboard.root
    for film in result.films:
        console.print(f"film: {root / film}")


def _paid(outcome) -> str:
    """What a generate task cost this run; unknown when it ran at an unknown price."""
    unknown = outcome.status == "done" and outcome.record is not None and \
        outcome.record.cost_usd is None
    return "unknown" if unknown else format_usd(outcome.cost_usd)


def status_json(report) -> str:
    import json

    return json.dumps({
        "name": report.name,
        "tasks": [{"id": t.task_id, "kind": t.kind, "shot": t.shot, "status": t.status,
                   "cost_usd": _num(t.cost_usd), **({"error": t.error} if t.error else {})}
                  for t in report.tasks],
        "done": report.count("done"), "failed": report.count("failed"),
        "pending": report.count("pending"), "running": report.count("running"),
        "interrupted": report.count("interrupted"),
        "spent_usd": float(report.spent_usd),
    }, indent=2)


def print_status(report) -> None:
    from rich.table import Table

    console = _wide_console()
    table = Table(title=f"status: {report.name}")
    for column in ("task", "status", "cost", "error"):
        table.add_column(column)
    for t in report.tasks:
        table.add_row(t.task_id, t.status, format_usd(t.cost_usd) if t.kind == "generate" else "",
                      t.error or "")
    console.print(table)
    console.print(f"done {report.count('done')}, failed {report.count('failed')}, running "
                  f"{report.count('running')}, interrupted {report.count('interrupted')}, "
                  f"pending {report.count('pending')}; spent "
                  f"{format_usd(report.spent_usd)}")
