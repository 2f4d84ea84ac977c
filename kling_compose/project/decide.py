"""The one decision of what a task needs: reused, restored, left unneeded, or made (and why).

`decide` is asked by `plan` (through `read_statuses`), `status`, `export`, the report, and by
`run` for each task as it comes: the two can no longer disagree (an expired upload was
`cached` in the plan and uploaded again by the run, issue 23). It reads the ledger record, the
lock's entry, the upstream results and the store; it writes nothing (a run's `repair=True`
only removes a damaged object from the store, so that it is made again rather than used).
"""

from __future__ import annotations

import enum
import sqlite3
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Iterable, Mapping

from ..paths import ProjectPaths
from .lockfile import Lock, read_lockfile
from .restore import Fetch, lock_record, may_restore, unavailable
from .reuse import DERIVED, expired, in_flight, is_reusable, planned
from .state import Record, State, _cannot_write, damaged, refuse_links, state_path, unwritable
from .store import Store

if TYPE_CHECKING:
    import httpx

    from ..plan import Plan, Task


class Verdict(enum.StrEnum):
    """What the next run does with a task (a plan's status column)."""

    CACHED = "cached"  # a reusable result is in the store: nothing to do
    RESTORABLE = "restorable"  # storyboard.lock names its result: rebuilt, not paid again
    UNNEEDED = "unneeded"  # an upload or element no generation of the run sends
    CHANGED = "changed"  # made before from something else: made again
    MISSING = "missing"  # its result is gone from (or damaged in) the store: made again
    EXPIRED = "expired"  # an upload older than the provider keeps files: uploaded again
    NEW = "new"  # never made: made


NOTHING_TO_PAY = (Verdict.CACHED, Verdict.RESTORABLE)  # a generation the run does not pay
# made at a provider, only for the generations using them
REMOTE_INPUTS = ("upload", "element", "voice")


@dataclass(frozen=True, slots=True)
class Decision:
    status: Verdict
    # what the task hands on without being made: the reused or restored record, or the
    # planned record of free derived work whose inputs are known (its identity is known)
    record: Record | None = None
    fetches: tuple[Fetch, ...] = ()  # restorable: takes fetched from their result URLs first
    otherwise: Verdict = Verdict.NEW  # restorable: what it is if the restore fails after all
    why: str | None = None  # why storyboard.lock cannot restore it

    def failed_restore(self, why: str | None) -> Decision:
        """The decision once a take the lock names could not be fetched."""
        return Decision(self.otherwise, None, why=why)


def decide(task: Task, record: Record | None, upstream: Mapping[str, Record], *,
           store: Store, lock: Lock, ledger: State | None = None,
           forced: bool = False, repair: bool = False, now: float | None = None) -> Decision:
    """For one task: its ledger record (if any), the results its dependencies hand on (a
    dependency that will be made anew is absent), storyboard.lock's content, the store.

    forced: the user asked for a new generation (`run --force`). repair: a damaged object is
    removed from the store as it is found (a run; a plan only reads). ledger: when given, a
    task made before from other inputs is told `changed` rather than `new`."""
    known = all(d in upstream for d in task.depends_on)
    present = store.verify if repair else store.intact
    made = Verdict.NEW
    if not forced and known and record is not None and is_reusable(task, record, upstream):
        if not all(present(d, s) for d, s in record.artifacts):
            made = Verdict.MISSING
        elif expired(task, record, now):
            made = Verdict.EXPIRED
        else:
            return Decision(Verdict.CACHED, record)
    elif _made_before(task, lock, ledger):
        made = Verdict.CHANGED
    why = None
    if not forced and known and task.kind == "generate" and may_restore(record):
        entry = lock.shot(task.shot, task.cache_key)  # after a merge: the one asked for
        restored, why, fetches = lock_record(task, entry, upstream, store, repair=repair)
        if restored is not None:
            return Decision(Verdict.RESTORABLE, restored, tuple(fetches), otherwise=made)
    derived = planned(task, upstream) if known and task.kind in DERIVED else None
    return Decision(made, derived, why=why)


def _made_before(task: Task, lock: Lock, ledger: State | None) -> bool:
    """The ledger, or storyboard.lock (a clone), names an earlier result of this task."""
    if ledger is not None and ledger.latest_for(task.id) is not None:
        return True
    entry = lock.shot(task.shot, task.cache_key) if task.kind == "generate" else \
        lock.output(task.assemble_params.path, task.cache_key) if task.kind == "assemble" \
        else None
    return isinstance(entry, dict) and entry.get("cache_key") not in (None, task.cache_key)


def unneeded_inputs(plan: Plan, statuses: Mapping[str, str], selected: Iterable[str],
                    force: Iterable[str] = (), flying: Iterable[str] = ()) -> set[str]:
    """Uploads and elements not usable as they are that no generation of this run will send:
    every selected generation they feed (directly, or through an element) is cached or
    restorable and not forced. Making them would need the provider's key and pays nothing
    back, so a teammate's keyless clone restoring the paid clips skips them; a generation that
    turns out to need one after all (its restore failed) makes it first (run.py). `flying`:
    tasks submitted and not finished, which are resumed, never left."""
    chosen, forced, resumed = set(selected), set(force), set(flying)
    needed: dict[str, bool] = {}
    for task_id in reversed(plan.order):  # a task's dependents before the task
        task = plan.tasks[task_id]
        if task.kind not in REMOTE_INPUTS:
            continue
        users = [plan.tasks[d] for d in plan.graph.successors(task_id) if d in chosen]
        needed[task_id] = task_id in resumed or any(
            needed.get(u.id, True) if u.kind in REMOTE_INPUTS else
            u.kind != "generate" or statuses.get(u.id) not in NOTHING_TO_PAY or u.shot in forced
            for u in users)
    return {t for t, need in needed.items() if not need and statuses.get(t) != Verdict.CACHED}


@dataclass(frozen=True)
class Review:
    """What the next run does and pays, computed once from the plan's statuses: `plan`'s
    printers, its JSON and a saved plan, `run`'s --max-cost check and key check read it (it
    was computed in seven places, which had drifted: the table and the summary of one plan
    added different tasks)."""

    plan: Plan
    statuses: Mapping[str, str] = field(default_factory=dict)
    force: frozenset[str] = frozenset()  # shots generated again whatever their status
    selected: tuple[str, ...] | None = None  # the tasks the run takes (--only); None: all

    def status(self, task_id: str) -> str:
        return self.statuses.get(task_id, Verdict.NEW)

    @cached_property
    def to_run(self) -> tuple[Task, ...]:
        """The tasks the run makes: neither cached, restorable nor unneeded, or forced."""
        order = self.plan.order if self.selected is None else self.selected
        tasks = (self.plan.tasks[t] for t in order)
        return tuple(t for t in tasks if self.status(t.id) not in (*NOTHING_TO_PAY,
                                                                   Verdict.UNNEEDED)
                     or (t.kind == "generate" and t.shot in self.force))

    @cached_property
    def to_pay(self) -> tuple[Task, ...]:
        """The generations the run pays for."""
        return tuple(t for t in self.to_run if t.kind == "generate")

    @property
    def to_pay_usd(self) -> Decimal:
        """What the run pays at known prices (generations, and elements where priced)."""
        return sum((t.cost_usd for t in self.to_run if t.cost_usd), Decimal(0))

    @property
    def unknown_to_pay(self) -> tuple[str, ...]:
        """The tasks the run makes at an unknown price ("$0.000" alone would say free)."""
        return tuple(t.id for t in self.to_run if t.cost_usd is None)


def read_statuses(plan: Plan, reasons: dict[str, str] | None = None, *,
                  transport: httpx.BaseTransport | None = None) -> dict[str, Verdict]:
    """Per task id, what the next run does with it (`Verdict`), from the project's ledger and
    storyboard.lock, read-only (neither: all new).

    restorable: the ledger has no reusable result, but storyboard.lock names one for this very
    task whose clips are in the store (or answer at their result URLs): the run rebuilds its
    record and pays nothing. missing: a finished result whose clip is gone from (or damaged
    in) the store: it will be made again, and paid for again if it is a generation. `reasons`,
    if given, receives why a generation the lock names cannot be restored."""
    root = plan.resolved.storyboard.root
    path = state_path(root)
    refuse_links(path)  # a dangling link would read as no ledger: every shot new, to pay
    lock = read_lockfile(root, plan.resolved.storyboard.profile, plan.resolved.storyboard.path.stem)
    # no ledger, one moved aside as damaged: what the run will take over from it
    state = State(path, readonly=True) if path.is_file() else State.salvaged_only(path)
    store = Store(ProjectPaths(root).state)
    try:
        statuses: dict[str, Verdict] = {}
        records: dict[str, Record] = {}  # the finished (or, for free work, planned) results
        flying: list[str] = []
        dead_hosts: dict[str, str] = {}  # result hosts that did not answer, asked once
        for task_id in plan.order:
            task = plan.tasks[task_id]
            record = state.get(task.cache_key) if state else None
            decision = decide(task, record, records, store=store, lock=lock, ledger=state)
            if decision.fetches:
                gone = unavailable(list(decision.fetches), dead=dead_hosts, transport=transport)
                decision = decision.failed_restore(gone) if gone else decision
            statuses[task_id] = decision.status
            if decision.record is not None:
                records[task_id] = decision.record
            if decision.why and reasons is not None:
                reasons[task_id] = decision.why
            if in_flight(record):
                flying.append(task_id)
        for task_id in unneeded_inputs(plan, statuses, plan.order, flying=flying):
            statuses[task_id] = Verdict.UNNEEDED
        return statuses
    except sqlite3.DatabaseError as exc:
        raise (unwritable if _cannot_write(exc) else damaged)(path, exc) from None
    finally:
        if state:
            state.close()


__all__ = ["Decision", "NOTHING_TO_PAY", "REMOTE_INPUTS", "Review", "Verdict", "decide",
           "read_statuses", "unneeded_inputs"]
