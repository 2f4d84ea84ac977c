"""Everything printed for people: diagnostics, summaries, tables. Only cli.py imports it."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import click

from .errors import Diagnostic
if TYPE_CHECKING:  # the plan's modules (networkx) are not loaded for `validate`
    from .project.decide import Review

# the task kinds a provider charges for, each with its estimate in the tables and --json
PRICED = frozenset({"generate", "voice"})


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


def _lock(plan) -> str:
    """The lock's file name: storyboard.lock, or a profile's storyboard.NAME.lock."""
    return plan.resolved.storyboard.paths.lock.name


def plan_json(plan, statuses: dict | None = None, reasons: dict | None = None,
              changes: dict | None = None, orphans: list | None = None,
              profiles: list | None = None) -> dict:
    """The machine-readable plan (`plan --json`). A `changed` task has `changes` (what differs
    from its last result: commands/why.py) and `reason` (them in words); storyboard.lock's shots
    and outputs the storyboard no longer has are listed as `orphaned`."""
    from .project.decide import NOTHING_TO_PAY, Review

    statuses, reasons, changes = statuses or {}, reasons or {}, changes or {}
    review = Review(plan, statuses)

    def why(t) -> dict:
        words = [reasons[t.id]] if t.id in reasons and \
            statuses.get(t.id) not in NOTHING_TO_PAY else []
        found = changes.get(t.id, [])
        words += [c.text for c in found]
        return ({"reason": "; ".join(words)} if words else {}) | \
            ({"changes": [c.as_json() for c in found]} if found else {})

    return {
        "tasks": [
            {"id": t.id, "kind": t.kind, "shot": t.shot, "depends_on": list(t.depends_on),
             "provider": t.provider, "model": t.model,
             **({"endpoint": route(t.job)} if t.kind == "generate" else {}),
             "cache_key": t.cache_key,
             "estimated_cost_usd": _num(t.cost_usd), "status": statuses.get(t.id, "new"),
             **why(t)}
            for t in (plan.tasks[i] for i in plan.order)
        ] + [{"id": o["id"], "kind": o["kind"], "shot": o["shot"], "depends_on": [],
              "provider": o["provider"], "model": None, "cache_key": o["cache_key"],
              "estimated_cost_usd": 0, "status": "orphaned"} for o in orphans or ()],
        "total_estimated_cost_usd": _num(plan.total_cost_usd),
        "to_pay_usd": _num(review.to_pay_usd),
        "unknown_cost_tasks": list(plan.unknown_costs),
        "critical_path": plan.critical_path(),
        "profile": plan.resolved.storyboard.profile,
        **({"profiles": [p.as_json() for p in profiles]} if profiles else {}),
    }


@dataclass(frozen=True, slots=True)
class ProfileCost:
    """One profile's plan in a line: what the whole storyboard costs under it, what its
    next run pays (`plan`'s comparison of the storyboard's profiles)."""

    name: str | None  # None: the storyboard's plain defaults
    total_usd: Decimal = Decimal(0)
    to_pay_usd: Decimal | None = None  # the planned profile's only
    unknown: int = 0  # generations at an unknown price
    errors: int = 0  # the profile does not compile: this many errors (`plan --profile NAME`)

    def as_json(self) -> dict:
        if self.errors:
            return {"profile": self.name, "errors": self.errors}
        return {"profile": self.name, "total_estimated_cost_usd": _num(self.total_usd),
                "to_pay_usd": None if self.to_pay_usd is None else _num(self.to_pay_usd),
                "unknown_cost_tasks": self.unknown}


def profiles_line(costs: list[ProfileCost], current: str | None) -> str:
    """`profiles: (defaults) $4.200 · draft $1.260 (to pay $0.840) · *final $4.200`."""
    parts = []
    for cost in costs:
        name = cost.name or "(defaults)"
        mark = "*" if cost.name == current else ""
        if cost.errors:
            parts.append(f"{mark}{name}: {cost.errors} error(s), see `plan --profile {name}`")
            continue
        pay = f" (to pay {format_usd(cost.to_pay_usd)})" if cost.to_pay_usd else ""
        unknown = f" (+{cost.unknown} unknown)" if cost.unknown else ""
        parts.append(f"{mark}{name} {format_usd(cost.total_usd)}{unknown}{pay}")
    return "profiles: " + " · ".join(parts)


def route(job) -> str:
    """Where a generation's request goes: the endpoint or model id (and tier) it pays."""
    from .providers import PROVIDERS

    return PROVIDERS[job.provider].route(job.model, job.request)


def plan_requests(plan) -> list[dict]:
    """Every request body the plan sends, in order (`plan --requests`): each generate task's,
    and each element a provider creates before the generations that name it (kling), with
    `shot` null and `element` its name."""
    entries = []
    for task in (plan.tasks[i] for i in plan.order):
        if task.kind == "generate":
            entries.append({"task": task.id, "shot": task.shot, "provider": task.provider,
                            "endpoint": route(task.job), "request": task.job.request})
        elif task.kind in ("element", "voice"):
            entries.append({"task": task.id, "shot": None, task.kind: task.element_params.name,
                            "provider": task.provider, "request": task.element_params.request})
    return entries


def _console(stderr: bool = False, **options):
    """A rich console that prints user text as it is: no markup (a storyboard named
    `harbour [/draft]` is not a closing tag), no emoji codes (`frame:one:last` is not
    `frame1️⃣last`), no highlighting. Styles come only from Text objects built here."""
    from rich.console import Console

    return Console(stderr=stderr, markup=False, emoji=False, highlight=False, **options)


def _styled(text: str, style: str):
    from rich.text import Text

    return Text(text, style=style)


def _wide_console():
    """A console for tables; when output is not a terminal, wide enough for ids not to wrap."""
    console = _console()
    return console if console.is_terminal else _console(width=160)


class RunProgress:
    """Live progress on stderr (rich), redrawn four times a second with the time computed at
    each redraw: done/total, cost so far, and each running task's elapsed time and the state
    its provider last reported (queued with its position, processing...). Silent when stderr
    is not a terminal or with --json."""

    def __init__(self, plan, quiet: bool = False, console=None, verbose: bool = False) -> None:
        self.plan = plan
        self.console = console or _console(stderr=True)
        self.live = None
        self.verbose = verbose
        self.quiet = quiet or not self.console.is_terminal
        self.running: dict[str, list] = {}  # task id -> [started (monotonic), state]
        self.done = 0
        self.cost = Decimal(0)

    def __enter__(self):
        if not self.quiet:
            from rich.live import Live

            self.live = Live(console=self.console, refresh_per_second=4, transient=True,
                             get_renderable=self._render)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def started(self, task) -> None:
        import time

        self.running[task.id] = [time.monotonic(), "uploading" if task.kind == "upload" else
                                 "starting"]

    def progress(self, task, state: str) -> None:
        """What the provider says about a running task (submitted, queued, processing...)."""
        if task.id in self.running:
            self.running[task.id][1] = state

    def finished(self, outcome) -> None:
        self.running.pop(outcome.task.id, None)
        self.done += 1
        self.cost += outcome.cost_usd
        if self.verbose:
            self.console.print(f"{self.done}/{len(self.plan.order)} {outcome.status:<8} "
                               f"{outcome.task.id}"
                               + (f" {outcome.elapsed_s:.1f} s" if outcome.elapsed_s else "")
                               + (f" {format_usd(outcome.cost_usd)}" if outcome.cost_usd else "")
                               + (f": {outcome.error}" if outcome.error else ""))
        elif outcome.status == "failed" and not self.quiet:
            from rich.text import Text

            self.console.print(Text.assemble(("failed", "red"), f" {outcome.task.id}: "
                                             f"{outcome.error}"))

    def _render(self):
        import time

        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 2))
        table.add_row(Text.assemble((f"{self.done}/{len(self.plan.order)}", "bold"), " tasks"),
                      Text(f"cost so far {format_usd(self.cost)}"))
        now = time.monotonic()
        for task_id, (started, state) in list(self.running.items()):
            table.add_row(Text.assemble("  ", (f"{state:<10}", "cyan"), " ", task_id),
                          Text(f"{now - started:6.1f} s"))
        return table


LARGE_PLAN = 300  # tasks: from here on `plan` prints a summary and the tasks that will run


def print_plan(plan, statuses: dict | None = None, reasons: dict | None = None,
               changes: dict | None = None, orphans: list | None = None,
               full: bool = False) -> None:
    """A table of tasks in topological order, totals and the critical path, then why each
    changed generation and film will be made again. At 80 columns the columns that matter
    (task, status, cost) stay readable; shot, model and inputs go. A plan of LARGE_PLAN tasks
    or more prints as a summary and the tasks that will run, in plain aligned text (rich lays
    a table out cell by cell: 20 s for 40,000 rows), unless `full`."""
    from rich.table import Table

    from .project.decide import NOTHING_TO_PAY, Review

    statuses, changes = statuses or {}, changes or {}
    if len(plan.order) >= LARGE_PLAN and not full:
        return print_plan_summary(plan, statuses, reasons or {}, changes, orphans or [])
    console = _wide_console()
    narrow = console.width < 120
    table = Table(title=f"plan: {plan.resolved.storyboard.name}", show_lines=False)
    table.add_column("task", overflow="fold", ratio=3)
    if not narrow:
        table.add_column("shot", overflow="fold")
    table.add_column("status", no_wrap=True, min_width=10)
    table.add_column("provider", no_wrap=True)
    if not narrow:
        table.add_column("model", overflow="fold")
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("est. cost", justify="right", no_wrap=True, min_width=9)
    if not narrow:
        table.add_column("inputs", overflow="fold", ratio=2)
    review = Review(plan, statuses)
    for task in (plan.tasks[i] for i in plan.order):
        status = review.status(task.id)
        cells = [task.id, *([task.shot or ""] if not narrow else []), status,
                 task.provider or "", *([task.model or ""] if not narrow else []),
                 f"{task.duration_s} s" if task.duration_s else "",
                 format_usd(task.cost_usd) if task.kind in PRICED else "",
                 *([", ".join(task.depends_on)] if not narrow else [])]
        table.add_row(*cells)
    for orphan in orphans or ():
        table.add_row(orphan["id"], *([orphan["shot"] or ""] if not narrow else []), "orphaned",
                      orphan["provider"] or "", *([""] if not narrow else []), "", "",
                      *([""] if not narrow else []))
    console.print(table)
    unknown = plan.unknown_costs
    console.print(f"total estimate: {format_usd(plan.total_cost_usd)}"
                  + (f" (+ unknown price for {', '.join(unknown)})" if unknown else "")
                  + f"; to pay on the next run: {format_usd(review.to_pay_usd)}"
                  + _unknown_to_pay(review))
    console.print("critical path: " + " -> ".join(plan.critical_path()))
    for task_id, why in (reasons or {}).items():
        if statuses.get(task_id) not in NOTHING_TO_PAY:
            console.print(f"{task_id}: {_lock(plan)} names its result, but {why}: it will "
                          "be generated (and paid for) again")
    explained = [(t, c) for t, c in changes.items() if plan.tasks[t].kind in ("generate",
                                                                                "assemble")]
    if explained:
        console.print("changed since the last result (`plan --diff` shows the requests):")
        for task_id, found in explained:
            console.print(f"  {task_id}: " + "; ".join(c.text for c in found))
    if orphans:
        console.print(f"orphaned: {len(orphans)} result(s) in {_lock(plan)} the storyboard "
                      "no longer has (dropped from the lock by the next run; `kling-compose gc` "
                      "frees their clips)")


def _unknown_to_pay(review: Review) -> str:
    """What the next run pays at an unknown price: "$0.000" alone would say it pays nothing."""
    paid = review.unknown_to_pay
    return f" + {len(paid)} task(s) at an unknown price" if paid else ""


def print_plan_summary(plan, statuses: dict, reasons: dict, changes: dict,
                       orphans: list) -> None:
    """A large plan: counts by kind and status, the money, then one plain line per task that
    will run (not cached or restorable) with its reason; written in one go."""
    from collections import Counter

    from .project.decide import Review

    lines = [f"plan: {plan.resolved.storyboard.name}: {len(plan.order)} tasks "
             f"(a summary; `plan --full` prints every task, `plan --json` all details)"]
    by_kind = Counter((plan.tasks[t].kind, statuses.get(t, "new")) for t in plan.order)
    for kind in ("generate", "extract_frame", "upload", "element", "voice", "assemble"):
        counts = {st: n for (k, st), n in sorted(by_kind.items()) if k == kind}
        if counts:
            lines.append(f"  {kind:<14}" + ", ".join(f"{n} {st}" for st, n in counts.items()))
    if orphans:
        lines.append(f"  orphaned      {len(orphans)} result(s) in {_lock(plan)} the "
                     "storyboard no longer has")
    review = Review(plan, statuses)
    to_run = review.to_run
    unknown = plan.unknown_costs
    lines.append(f"total estimate: {format_usd(plan.total_cost_usd)}"
                 + (f" (+ unknown price for {len(unknown)} task(s))" if unknown else "")
                 + f"; to pay on the next run: {format_usd(review.to_pay_usd)}"
                 + _unknown_to_pay(review))
    path = plan.critical_path()
    lines.append(f"critical path: {len(path)} tasks, {path[0]} ... {path[-1]}" if len(path) > 6
                 else "critical path: " + " -> ".join(path))
    if to_run:
        width = min(60, max(len(t.id) for t in to_run))
        lines.append(f"will run ({len(to_run)}):")
        for task in to_run:
            status = statuses.get(task.id, "new")
            cost = format_usd(task.cost_usd) if task.kind in PRICED else ""
            why = "; ".join(c.text for c in changes.get(task.id, ())) or reasons.get(task.id, "")
            line = f"  {task.id:<{width}}  {status:<8} {task.provider or '':<13} {cost:>8}"
            lines.append((line + (f"  {why}" if why else "")).rstrip())
    else:
        lines.append("nothing to run: every task is cached")
    _write_lines(lines)


def _write_lines(lines: list[str]) -> None:
    """Plain text to stdout in one write (user text as it is, no markup)."""
    import sys

    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


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


def continuity_of(task, record) -> dict | None:
    """A chained generation's continuity for the take it uses now (media/continuity.py)."""
    if task.kind != "generate" or record is None or not record.result:
        return None
    from .media.continuity import for_pick

    return for_pick(record.result.get("continuity"), task.job.shot.pick)


def broken_chains(outcomes) -> list[str]:
    """Shots whose picked take does not start on the frame it was seeded from."""
    return [o.task.shot for o in outcomes
            if (c := continuity_of(o.task, o.record)) and c["broken"]]


def _chain_note(c: dict) -> str:
    return (f"broken chain? its {c['frame']} frame scores {c['score']:.2f} against "
            f"{c['from']}'s {'last' if c['frame'] == 'first' else 'first'} frame "
            f"(under {c['threshold']:g})")


def run_json(result) -> str:
    import json

    data = {
        "tasks": [{"id": o.task.id, "kind": o.task.kind, "shot": o.task.shot,
                   "status": o.status, "cost_usd": float(o.cost_usd),
                   **({"estimated_cost_usd": _num(o.task.cost_usd)}
                      if o.task.kind in PRICED else {}),
                   **({"error": o.error} if o.error else {}),
                   **({"continuity": c} if (c := continuity_of(o.task, o.record)) else {})}
                  for o in result.outcomes],
        "broken_chains": broken_chains(result.outcomes),
        "generated": result.count("done", "generate"),
        "cached": result.count("cached", "generate"),
        "restored": result.count("restored", "generate"),
        "nothing_to_do": bool(result.outcomes) and all(o.status == "cached"
                                                       for o in result.outcomes),
        "failed": result.count("failed"),
        "skipped": result.count("skipped"),
        "cost_usd": float(result.cost_usd),
        "films": [str(p) for p in result.films],
        "outputs": [_film_facts(o) for o in result.outcomes
                    if o.task.kind == "assemble" and o.record is not None],
    }
    return json.dumps(data, indent=2)


def _film_facts(outcome) -> dict:
    """What a film's run measured: its length, size, loudness and subtitle files."""
    result = outcome.record.result or {}
    path = outcome.task.assemble_params.path
    sidecars = [str(Path(path).with_suffix(suffix)) for _, suffix in outcome.record.artifacts[1:]
                if suffix in (".srt", ".vtt")]
    return {"path": path, "status": outcome.status,
            **{k: result[k] for k in ("duration_s", "size", "loudness_lufs", "true_peak_db",
                                      "silent", "normalised", "cues") if k in result},
            **({"subtitles": sidecars} if sidecars else {})}


def _film_line(root, film, outcomes) -> str:
    """`film: PATH`, with what was measured of it (length, loudness, true peak)."""
    facts = next((_film_facts(o) for o in outcomes if o.task.kind == "assemble" and
                  o.record is not None and o.task.assemble_params.path == str(film)), {})
    notes = []
    if "loudness_lufs" in facts:
        notes.append(f"{facts['loudness_lufs']:g} LUFS")
    if "true_peak_db" in facts:
        notes.append(f"true peak {facts['true_peak_db']:g} dBTP")
    if facts.get("silent"):
        notes.append("silent")
    notes += facts.get("subtitles", [])
    return f"film: {root / film}" + (f" ({', '.join(notes)})" if notes else "")


def print_run_summary(result, plan) -> None:
    from rich.table import Table

    console = _wide_console()
    root = plan.resolved.storyboard.root
    broken = broken_chains(result.outcomes)
    if result.outcomes and all(o.status == "cached" for o in result.outcomes):
        console.print(f"nothing to do: all {len(result.outcomes)} task(s) are up to date, "
                      "nothing was paid for")
        for film in result.films:
            console.print(_film_line(root, film, result.outcomes))
        if broken:
            console.print(f"broken chain: {', '.join(broken)} (see `kling-compose status`)")
        return
    table = Table(title="run summary")
    for column in ("task", "status", "estimate", "cost", "time", "note"):
        wrap = column in ("task", "note")  # ids and messages fold; the figures never do
        table.add_column(column, overflow="fold" if wrap else "ellipsis", no_wrap=not wrap)
    colors = {"done": "green", "cached": "dim", "restored": "cyan", "unneeded": "dim",
              "failed": "red", "skipped": "yellow"}
    for o in result.outcomes:
        generate = o.task.kind in PRICED
        chain = continuity_of(o.task, o.record)
        note = o.error or (_chain_note(chain) if chain and chain["broken"] else "")
        table.add_row(o.task.id, _styled(o.status, colors[o.status]),
                      format_usd(o.task.cost_usd) if generate else "",
                      _paid(o) if generate else "",
                      f"{o.elapsed_s:.1f} s" if o.status == "done" else "", note)
    console.print(table)
    restored = result.count("restored", "generate")
    console.print(f"generated {result.count('done', 'generate')}, cached "
                  f"{result.count('cached', 'generate')}, "
                  + (f"restored from {_lock(plan)} {restored}, " if restored else "")
                  + f"failed {result.count('failed')}, "
                  f"skipped {result.count('skipped')}; cost {format_usd(result.cost_usd)}")
    for film in result.films:
        console.print(_film_line(root, film, result.outcomes))
    if broken:
        console.print(f"broken chain: {', '.join(broken)}: the take does not start on the "
                      "frame it was seeded from; watch it, then pick another take or "
                      "`run --force` it")


def print_run_brief(result, plan) -> None:
    """--quiet: each failed task (to stderr) and each film made; nothing else."""
    for o in result.outcomes:
        if o.status == "failed":
            click.echo(f"failed {o.task.id}: {o.error}", err=True)
    root = plan.resolved.storyboard.root
    for film in result.films:
        click.echo(str(root / film))


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
                   "cost_usd": _num(t.cost_usd), **({"error": t.error} if t.error else {}),
                   **({"continuity": t.continuity} if t.continuity else {})}
                  for t in report.tasks],
        "broken_chains": [t.shot for t in report.tasks
                          if t.continuity and t.continuity["broken"]],
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
        wrap = column in ("task", "error")
        table.add_column(column, overflow="fold" if wrap else "ellipsis", no_wrap=not wrap)
    for t in report.tasks:
        broken = t.continuity and t.continuity["broken"]
        table.add_row(t.task_id, t.status, format_usd(t.cost_usd) if t.kind in PRICED else "",
                      t.error or (_chain_note(t.continuity) if broken else ""))
    console.print(table)
    console.print(f"done {report.count('done')}, failed {report.count('failed')}, running "
                  f"{report.count('running')}, interrupted {report.count('interrupted')}, "
                  f"pending {report.count('pending')}"
                  + (f", unneeded {report.count('unneeded')}" if report.count('unneeded') else "")
                  + "; spent "
                  f"{format_usd(report.spent_usd)}")
