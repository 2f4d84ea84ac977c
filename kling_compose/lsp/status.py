"""What the next run would do with each shot, as `kling-compose plan` says it, for a hover.

The plan is built as `plan` builds it (the project file's provider and preview resolution)
and its statuses are read by the one decision (project/decide.read_statuses): the ledger
opened read-only, storyboard.lock, the store's objects. One thing differs: `plan` asks each
result URL the lock names (a HEAD request) before it calls a shot `restorable`; the language
server never touches the network, so those URLs are answered here, without a request, as if
they were still there, and the hover says they were not checked. A project with no state
folder and no lock has nothing to read: every shot is new, and no plan is built.

Built once per Analysis, on the first hover that needs it (a plan of 10,000 shots takes
seconds; a storyboard's diagnostics never wait for it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import UserError

if TYPE_CHECKING:
    from ..plan import Plan
    from .analysis import Analysis
    from .features import Status


@dataclass
class StatusView:
    verdicts: dict[str, str] = field(default_factory=dict)  # task id -> verdict
    reasons: dict[str, str] = field(default_factory=dict)
    plan: Plan | None = None
    provider: str | None = None  # the project file's provider, when it names one
    unchecked: int = 0  # result URLs answered without asking
    problem: str | None = None  # why no plan could be built
    fresh: bool = False  # no state folder and no lock: all new

    def of(self, shot_id: str) -> Status:
        from .features import Status, format_usd

        if self.problem is not None:
            return Status(f"unknown ({self.problem})")
        task_id = f"generate:{shot_id}"
        cost_line = None
        if self.provider is not None and self.plan is not None:
            task = self.plan.tasks.get(task_id)
            if task is not None:
                cost_line = f"Estimated cost on {self.provider} (kling-compose.yaml): " \
                            f"{format_usd(task.cost_usd)}"
        if self.fresh:
            return Status("new (no run yet: no .kling-compose/ and no lock)", cost_line)
        verdict = self.verdicts.get(task_id, "new")
        text = str(verdict)
        if task_id in self.reasons:
            text += f" ({self.reasons[task_id]})"
        if verdict == "restorable" and self.unchecked:
            text += " (from the lock's result URLs, not checked from the editor: " \
                    "`kling-compose plan` checks them)"
        return Status(text, cost_line)


def statuses(found: Analysis) -> StatusView | None:
    """The statuses of `found`'s plan (None when the storyboard did not resolve)."""
    if found.resolved is None:
        return None
    cached = found.__dict__.get("_statuses")
    if cached is None:
        cached = found.__dict__["_statuses"] = _read(found)
    return cached


def _read(found: Analysis) -> StatusView:
    import httpx

    from ..collector import paused
    from ..pipeline import build_storyboard_plan
    from ..project.decide import read_statuses

    assert found.resolved is not None
    defaults = found.defaults
    provider = defaults.provider if defaults is not None else None
    board = found.resolved.storyboard
    paths = board.paths
    view = StatusView(provider=provider)
    if provider is None and not paths.state.exists() and not paths.lock.exists():
        view.fresh = True
        return view
    asked: list[str] = []

    def unasked(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(200 if request.method == "HEAD" else 206)

    try:
        with paused():
            plan = build_storyboard_plan(found.resolved, provider,
                                         defaults.preview_resolution if defaults else None)
            view.plan = plan
            if not paths.state.exists() and not paths.lock.exists():
                view.fresh = True
                return view
            verdicts = read_statuses(plan, view.reasons,
                                     transport=httpx.MockTransport(unasked))
    except UserError as exc:
        view.problem = exc.diagnostics[0].message
        return view
    view.verdicts = {task: str(verdict) for task, verdict in verdicts.items()}
    view.unchecked = len(asked)
    return view

