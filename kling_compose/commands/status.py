"""`kling-compose status`: the state of every task of the current plan, read-only."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ..project.decide import read_statuses
from ..project.runs import run_in_progress
from ..project.state import Record, State, state_path


@dataclass(frozen=True, slots=True)
class TaskStatus:
    task_id: str
    kind: str
    shot: str | None
    # done | restorable (storyboard.lock names it, its clip is in the store: the next run
    # rebuilds it without paying) | failed | running (a live run works on it) | interrupted
    # (a run ended while it ran: the next run finishes it, polling what was submitted) |
    # unneeded (an upload or element only restorable or done shots use) | pending
    status: str
    cost_usd: Decimal | None
    error: str | None = None
    # a chained shot's continuity for the take it uses (media/continuity.py), else None
    continuity: dict | None = None


@dataclass(frozen=True, slots=True)
class StatusReport:
    name: str
    tasks: tuple[TaskStatus, ...]
    spent_usd: Decimal  # everything the ledger records as paid, this plan or not

    def count(self, status: str) -> int:
        return sum(1 for t in self.tasks if t.status == status)


def project_status(plan) -> StatusReport:
    """Per task of the plan: done (a reusable result exists), failed, running or pending."""
    path = state_path(plan.resolved.storyboard.root)
    statuses = read_statuses(plan)
    records: dict[str, Record] = {}
    spent = Decimal(0)
    state = State(path, readonly=True) if path.is_file() else State.salvaged_only(path)
    if state is not None:
        try:
            records = {plan.tasks[t].id: r for t in plan.order
                       if (r := state.get(plan.tasks[t].cache_key)) is not None}
            spent = sum((r.cost_usd for r in state.all() if r.cost_usd), Decimal(0))
        finally:
            state.close()
    live = run_in_progress(plan.resolved.storyboard.root)
    tasks = []
    for task_id in plan.order:
        task, record = plan.tasks[task_id], records.get(task_id)
        if statuses.get(task_id) == "cached":
            status = "done"
        elif record is not None and record.status in ("failed", "running", "submitted"):
            status = "failed" if record.status == "failed" else \
                "running" if live else "interrupted"
        elif statuses.get(task_id) in ("restorable", "unneeded"):
            status = statuses[task_id]
        else:
            status = "pending"
        chain = None
        if status == "done" and task.kind == "generate" and record and record.result:
            from ..media.continuity import for_pick

            chain = for_pick(record.result.get("continuity"), task.job.shot.pick)
        tasks.append(TaskStatus(task_id, task.kind, task.shot, status,
                                record.cost_usd if record else None,
                                record.error if record and status == "failed" else None, chain))
    return StatusReport(plan.resolved.storyboard.name, tuple(tasks), spent)
