"""A plan for people who decide about money: a pull request's reviewers and the person at the
terminal about to pay (issue 26).

- `base_lock`: the lock as a git ref has it (`plan --base origin/main`), read with `git show`;
- `compare_with_base`: per generation, whether the base already paid for this very request
  (its lock holds an entry of the shot with the task's cache key), this branch did, or nobody
  yet; and what the branch adds to what the base paid;
- `plan_markdown`: `plan --format markdown`, a summary ready to post as a PR comment;
- `spending`: what a paid `run` is about to pay, by provider and tier, for the question it
  asks at a terminal before the first submission.

Nothing here writes: the git commands only read, and the gate's checks are the run's own
(`engine.check_request`), asked before the question so that a refused run never asks.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..errors import Location, UserError
from ..project.decide import NOTHING_TO_PAY, Review
from ..project.lockfile import Lock, read_lockfile

Route = Callable[[Any], str]  # a generation's endpoint or model id (console.route)

PRICED = frozenset({"generate", "voice"})  # the task kinds a provider charges for
GIT_TIMEOUT_S = 60
PROMPT_CHARS = 80  # a prompt longer than this is cut in a table cell
MAX_ROWS = 100  # shots listed in a markdown plan: a PR comment holds 65,536 characters


# -- the lock of a git ref ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BaseLock:
    """The lock file as `ref` has it: `found` False when the ref has no such file (nothing
    was paid on the base: every generation is the branch's)."""

    ref: str
    path: str  # the lock's path in the repository, e.g. films/harbour/storyboard.lock
    lock: Lock
    found: bool


def base_lock(plan, ref: str) -> BaseLock:
    """The plan's lock (`storyboard.lock`, or the profile's) as git ref `ref` has it, read with
    `git show REF:<path>` in the project's folder. A folder outside a git repository, git
    missing, or a ref git does not know is a UserError with a hint."""
    storyboard = plan.resolved.storyboard
    lock = storyboard.paths.lock
    where = Location(os.path.join(os.path.dirname(storyboard.display_path), lock.name))
    if not ref or ref.startswith("-") or any(c in ref for c in "\0\n"):
        raise UserError.single(f"--base: '{ref}' is not a git ref", where,
                               hint="give a branch, tag or commit, e.g. --base origin/main")
    folder = lock.parent
    done = _git(folder, "rev-parse", "--show-prefix")
    if done.returncode != 0:
        said = _said(done)
        why = "" if "not a git repository" in said else f" ({said})"
        raise UserError.single(
            f"--base: {_shown(folder)} is not in a git repository{why}", where,
            hint="--base compares with the lock a git ref holds: run it in a clone of the "
                 "project, or leave --base out")
    prefix = done.stdout.removesuffix("\n")  # a folder may begin or end with a space
    known = _git(folder, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if known.returncode != 0:
        hint = "`git branch -a` lists the refs this clone knows"
        if "/" in ref:
            remote, _, branch = ref.partition("/")
            hint = (f"fetch it first (`git fetch {remote} {branch}`; in GitHub Actions check "
                    f"out with `fetch-depth: 0`); {hint}")
        raise UserError.single(f"--base: git does not know the ref '{ref}'", where, hint=hint)
    path = prefix + lock.name
    shown = _git(folder, "show", f"{ref}:{path}")
    if shown.returncode != 0:  # the base has no lock there: it paid for nothing here
        return BaseLock(ref, path, Lock(), False)
    return BaseLock(ref, path, _parse_lock(shown.stdout, lock.name), True)


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """`git ARGS` in `folder`, its output as text; a missing git is the user's to install."""
    try:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True,
                              encoding="utf-8", errors="replace", timeout=GIT_TIMEOUT_S,
                              env=os.environ | {"GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"})
    except FileNotFoundError:
        raise UserError.single("--base needs git, which is not installed (or not on PATH)",
                               hint="install git, or leave --base out") from None
    except subprocess.TimeoutExpired:
        raise UserError.single(f"--base: `git {args[0]}` took more than {GIT_TIMEOUT_S} s",
                               hint="check the repository (`git status`), or leave --base "
                                    "out") from None


def _said(done: subprocess.CompletedProcess) -> str:
    """git's first line of complaint, without its `fatal: `."""
    lines = [line for line in (done.stderr or "").splitlines() if line.strip()]
    return lines[0].removeprefix("fatal: ").strip() if lines else f"exit {done.returncode}"


def _shown(folder: Path) -> str:
    try:
        relative = os.path.relpath(folder)
    except ValueError:
        return str(folder)
    return str(folder) if relative.startswith("..") else ("this folder" if relative == "."
                                                           else relative)


def _parse_lock(text: str, name: str) -> Lock:
    """A lock's text (either format) as a Lock."""
    from ..project.lockfile import parse_lock

    return parse_lock(text, name)


def paid_entry(lock: Lock, shot: str | None, cache_key: str) -> dict | None:
    """The lock's entry of `shot` made for exactly `cache_key`: that request was paid for."""
    entry = lock.shot(shot, cache_key)  # after a merge, several results per shot: this one's
    return entry if isinstance(entry, dict) and entry.get("cache_key") == cache_key else None


# -- this branch against the base -------------------------------------------------------------

ON_BASE, ON_BRANCH, UNPAID = "paid on base", "paid on this branch", "not paid yet"


@dataclass(frozen=True)
class BaseDelta:
    """Per priced generation, who paid for its very request (ON_BASE, ON_BRANCH, UNPAID), and
    the money: what the branch adds over the base (generations the base did not pay for), and
    of it what nobody paid yet."""

    base: BaseLock
    marks: Mapping[str, str]
    costs: Mapping[str, Decimal | None]

    def _sum(self, *marks: str) -> Decimal:
        return sum((c for t, c in self.costs.items() if self.marks[t] in marks and c),
                   Decimal(0))

    def _unknown(self, *marks: str) -> list[str]:
        return [t for t, c in self.costs.items() if self.marks[t] in marks and c is None]

    @property
    def adds_usd(self) -> Decimal:
        return self._sum(ON_BRANCH, UNPAID)

    @property
    def unpaid_usd(self) -> Decimal:
        return self._sum(UNPAID)

    @property
    def adds_unknown(self) -> list[str]:
        return self._unknown(ON_BRANCH, UNPAID)

    def tasks(self, *marks: str) -> list[str]:
        return [t for t, m in self.marks.items() if m in marks]

    def as_json(self) -> dict:
        return {"ref": self.base.ref, "lock": self.base.path, "lock_found": self.base.found,
                "adds_usd": float(self.adds_usd), "not_paid_yet_usd": float(self.unpaid_usd),
                "unknown_cost_tasks": self.adds_unknown,
                "paid_on_base": self.tasks(ON_BASE), "paid_on_branch": self.tasks(ON_BRANCH),
                "not_paid_yet": self.tasks(UNPAID)}


def compare_with_base(plan, base: BaseLock) -> BaseDelta:
    """Each generation of the plan against the base's lock and this branch's own lock."""
    storyboard = plan.resolved.storyboard
    here = read_lockfile(storyboard.root, storyboard.profile, storyboard.path.stem)
    marks: dict[str, str] = {}
    costs: dict[str, Decimal | None] = {}
    for task in (plan.tasks[t] for t in plan.order):
        if task.kind != "generate":
            continue
        if paid_entry(base.lock, task.shot, task.cache_key) is not None:
            marks[task.id] = ON_BASE
        elif paid_entry(here, task.shot, task.cache_key) is not None:
            marks[task.id] = ON_BRANCH
        else:
            marks[task.id] = UNPAID
        costs[task.id] = task.cost_usd
    return BaseDelta(base, marks, costs)


def base_line(delta: BaseDelta) -> str:
    """The comparison in one line (`plan`'s table)."""
    base = delta.base
    where = f"against {base.ref}" + ("" if base.found else f" (which has no {base.path})")
    unknown = f" + {len(delta.adds_unknown)} at an unknown price" if delta.adds_unknown else ""
    adds = delta.tasks(ON_BRANCH, UNPAID)
    return (f"{where}: this branch adds {_usd(delta.adds_usd)}{unknown} "
            f"({len(adds)} generation(s) the base did not pay for; {_usd(delta.unpaid_usd)} "
            f"of it not paid yet); {len(delta.tasks(ON_BASE))} paid on base")


# -- plan --format markdown ----------------------------------------------------------------------

MARKER = "<!-- kling-compose plan -->"  # a comment bot finds its own comment again by it


def plan_markdown(plan, statuses: Mapping[str, str], reasons: Mapping[str, str],
                  changes: Mapping[str, Sequence[Any]], orphans: Sequence[Mapping[str, Any]],
                  route: Route, profiles: Sequence[Any] | None = None,
                  delta: BaseDelta | None = None) -> str:
    """The plan as GitHub-flavoured markdown for a pull request: what the next run makes and
    why, what it pays, the storyboard's whole estimate, each profile's, and with `delta` what
    the branch adds over its base."""
    storyboard = plan.resolved.storyboard
    review = Review(plan, statuses)
    to_run = review.to_run
    running = {t.id for t in to_run}
    lock = storyboard.paths.lock.name
    title = storyboard.name + (f" (profile {storyboard.profile})" if storyboard.profile else "")
    lines = [MARKER, f"### kling-compose plan: {md(title)}", ""]

    priced = [t for t in to_run if t.kind in PRICED]
    generations = [t for t in (plan.tasks[i] for i in plan.order) if t.kind == "generate"]
    unknown = review.unknown_to_pay
    pay = f"**{_usd(review.to_pay_usd)}**" + (
        f" + {len(unknown)} task(s) at an unknown price" if unknown else "")
    if priced:
        lines.append(f"- **Next run:** {len(review.to_pay)} of {len(generations)} shot(s) to "
                     f"generate, {pay} to pay")
    elif to_run:
        lines.append(f"- **Next run:** nothing to pay ({len(to_run)} free task(s): frames, "
                     "uploads, films)")
    else:
        lines.append(f"- **Next run:** nothing to do: every shot is cached or restorable "
                     f"from {md(lock)}")
    whole = _usd(plan.total_cost_usd) + (
        f" + {len(plan.unknown_costs)} shot(s) at an unknown price" if plan.unknown_costs
        else "")
    lines.append(f"- **Whole storyboard:** {whole} ({len(generations)} shot(s))")
    if delta is not None:
        lines.append("- " + _base_summary(delta))
    lines.append("")

    listed = [t for t in (plan.tasks[i] for i in plan.order) if t.kind in PRICED and (
        t.id in running or (delta is not None and delta.marks.get(t.id, ON_BASE) != ON_BASE))]
    rows = listed[:MAX_ROWS]  # a GitHub comment holds at most 65,536 characters
    if rows:
        head = ["shot", "next run", "why", "provider", "model", "endpoint", "est. cost"]
        if delta is not None:
            head.append(f"vs {delta.base.ref}")
        lines += [_row(head), _row(["---"] * 6 + ["--:"] + (["---"] if delta else []))]
        for task in rows:
            status = str(statuses.get(task.id, "new")) if task.id in running else \
                f"{statuses.get(task.id, 'new')} ($0)"
            cells = [task.shot or task.id, status,
                     _why(task, statuses, reasons, changes) if task.id in running else "",
                     task.provider or "", task.model or "",
                     _code(route(task.job)) if task.job is not None else "",
                     _usd(task.cost_usd)]
            if delta is not None:
                cells.append(delta.marks.get(task.id, ""))
            lines.append(_row([md(c) if i != 5 else c for i, c in enumerate(cells)]))
        if len(listed) > len(rows):
            lines += ["", f"... and {len(listed) - len(rows)} more (`kling-compose plan` lists "
                      "every task)"]
        lines.append("")
        prompts = [(t, _prompt(t)) for t in rows if t.job is not None and _prompt(t)]
        if prompts:
            lines += ["<details><summary>Prompts</summary>", "", _row(["shot", "prompt"]),
                      _row(["---", "---"])]
            lines += [_row([md(t.shot or t.id), md(_cut(p))]) for t, p in prompts]
            lines += ["", "</details>", ""]
    shown = {t.id for t in listed}
    quiet = [t for t in generations if t.id not in running and t.id not in shown]
    if quiet:
        names = ", ".join(md(t.shot or t.id) for t in quiet[:20])
        more = f" and {len(quiet) - 20} more" if len(quiet) > 20 else ""
        lines += [f"Unchanged ({len(quiet)}, nothing to pay): {names}{more}", ""]
    films = [t for t in to_run if t.kind == "assemble"]
    if films:
        lines += ["Films made again (local, free): " + ", ".join(
            md(t.assemble_params.path) for t in films), ""]
    if orphans:
        lines += [f"Orphaned: {len(orphans)} result(s) in {md(lock)} the storyboard no longer "
                  "has (" + ", ".join(md(o["id"]) for o in orphans[:10])
                  + (f" and {len(orphans) - 10} more" if len(orphans) > 10 else "") + ")", ""]
    if profiles:
        lines += [_row(["profile", "whole storyboard", "next run pays"]),
                  _row(["---", "--:", "--:"])]
        for cost in profiles:
            name = cost.name or "(defaults)"
            name = f"**{md(name)}** (this plan)" if cost.name == storyboard.profile \
                else md(name)
            if cost.errors:
                lines.append(_row([name, f"{cost.errors} error(s)", ""]))
                continue
            extra = f" + {cost.unknown} unknown" if cost.unknown else ""
            pays = "" if cost.to_pay_usd is None else _usd(cost.to_pay_usd)  # this plan's only
            lines.append(_row([name, _usd(cost.total_usd) + extra, pays]))
        lines.append("")
    lines.append("<sub>`kling-compose plan` pays nothing; `kling-compose run` makes what is "
                 "listed, `plan --diff` shows the changed requests.</sub>")
    return "\n".join(lines) + "\n"


def _base_summary(delta: BaseDelta) -> str:
    base = delta.base
    ref = _code(base.ref)
    if not base.found:
        head = f"**Against {ref}:** its tree has no `{md(base.path)}` (nothing paid there)"
    else:
        head = f"**Against {ref}:** {len(delta.tasks(ON_BASE))} shot(s) paid on base"
    unknown = f" + {len(delta.adds_unknown)} at an unknown price" if delta.adds_unknown else ""
    adds = delta.tasks(ON_BRANCH, UNPAID)
    return (f"{head}; this branch adds **{_usd(delta.adds_usd)}**{unknown} "
            f"({len(adds)} generation(s) the base did not pay for; "
            f"{_usd(delta.unpaid_usd)} of it not paid yet)")


def _why(task, statuses, reasons, changes) -> str:
    words = [c.text for c in changes.get(task.id, ())]
    if task.id in reasons and statuses.get(task.id) not in NOTHING_TO_PAY:
        words.insert(0, reasons[task.id])
    if words:
        return "; ".join(words)
    return {"new": "never made", "missing": "its clip is gone from the store",
            "changed": "made before from other inputs"}.get(str(statuses.get(task.id, "new")),
                                                             "")


def _prompt(task) -> str:
    shot = task.job.shot
    if shot.prompt is not None:
        return shot.prompt.text
    if shot.multi_prompt:
        return " / ".join(s.prompt.text for s in shot.multi_prompt)
    return ""


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= PROMPT_CHARS else text[:PROMPT_CHARS - 1] + "…"


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


MARKDOWN_PUNCTUATION = frozenset("\\`*_[]<|~&")


def md(text: Any) -> str:
    """Text for a markdown table cell or line, shown as written: every character markdown
    reads as markup inside a line escaped (a `|` splits no cell, `<b>` is no tag, `*a*` no
    emphasis, `[a](b)` no link, `&amp;` no entity), lines
    joined (a newline would end the table row), and `@name` kept from mentioning a GitHub
    user (a zero-width space after `@`, as Dependabot writes it)."""
    text = " ".join(str(text).split())
    escaped = "".join("\\" + c if c in MARKDOWN_PUNCTUATION else c for c in text)
    return escaped.replace("@", "@&#8203;")


def _code(text: str) -> str:
    """An endpoint as code: its `|` still escaped (a table splits cells inside code spans)."""
    text = " ".join(str(text).split()).replace("`", "'").replace("|", "\\|")
    return f"`{text}`" if text else ""


def _usd(amount: Decimal | None) -> str:
    return "unknown" if amount is None else f"${amount:.3f}"


# -- the gate before spending ---------------------------------------------------------------------

@dataclass(frozen=True)
class Spending:
    """What a run is about to pay: its hosted generations grouped by provider and tier (the
    endpoint or model id the request goes to), with their estimate."""

    groups: list[tuple[str, str, list[Any]]] = field(default_factory=list)
    total_usd: Decimal = Decimal(0)
    unknown: list[str] = field(default_factory=list)
    free: int = 0  # generations of a local provider in the same run

    def lines(self) -> list[str]:
        count = sum(len(tasks) for _, _, tasks in self.groups)
        unknown = f" + {len(self.unknown)} at an unknown price" if self.unknown else ""
        made = sum(t.kind == "generate" for _, _, tasks in self.groups for t in tasks)
        more = f" and {count - made} voice or element task(s)" if count > made else ""
        lines = [f"this run pays for {made} generation(s){more}, an estimated "
                 f"{_usd(self.total_usd)}{unknown}:"]
        wide = max(len(p) for p, _, _ in self.groups), max(len(r) for _, r, _ in self.groups)
        for provider, tier, tasks in self.groups:
            known = [t.cost_usd for t in tasks if t.cost_usd is not None]
            cost = _usd(sum(known, Decimal(0))) if len(known) == len(tasks) else "unknown"
            names = [t.shot or t.id for t in tasks]
            shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6
                                            else "")
            what = "shot(s)" if all(t.kind == "generate" for t in tasks) else "task(s)"
            lines.append(f"  {provider:<{wide[0]}}  {tier:<{wide[1]}}  {len(tasks):>3} "
                         f"{what}  {cost:>8}  {shown}")
        if self.free:
            lines.append(f"  (and {self.free} free generation(s) on a local provider)")
        return lines


def spending(plan, statuses: Mapping[str, str], force: Iterable[str], only: Iterable[str],
             route: Route) -> Spending | None:
    """What the run would pay at hosted providers (None: nothing, so nothing to ask): every
    generation it makes at a provider that is not local, at a price above $0 or unknown."""
    from ..providers import LOCAL_PROVIDERS
    from ..selection import select

    review = Review(plan, statuses, frozenset(force), tuple(select(plan, only)))
    # generations, and what else a provider bills (a fal voice, a Kling element: unknown)
    paid = [t for t in review.to_run if t.provider and t.provider not in LOCAL_PROVIDERS
            and (t.cost_usd is None or t.cost_usd > 0)]
    if not paid:
        return None
    groups: dict[tuple[str, str], list[Any]] = {}
    for task in paid:
        tier = route(task.job) if task.kind == "generate" else task.kind
        groups.setdefault((task.provider or "", tier), []).append(task)
    return Spending([(p, r, tasks) for (p, r), tasks in groups.items()],
                    sum((t.cost_usd for t in paid if t.cost_usd), Decimal(0)),
                    [t.id for t in paid if t.cost_usd is None],
                    sum(1 for t in review.to_pay if t.provider in LOCAL_PROVIDERS))
