"""What a run is asked (RunOptions) and what it says (Outcome, RunResult, Reporter)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..project.state import Record

if TYPE_CHECKING:
    from ..plan import Task


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What `kling-compose run` was asked to do."""

    concurrency: int = 4
    max_cost_usd: Decimal | None = None
    # where the cap was set, as messages name it: the option, or the project file's key
    max_cost_name: str = "--max-cost"
    force: frozenset[str] = frozenset()  # shot ids to generate again
    only: frozenset[str] = frozenset()  # shot ids to run, with what they need
    # the team's shared artifact store, if one is set: pulled before, pushed after; False
    # (`watch`'s rehearsals) leaves it alone
    shared: bool = True


class Ending(enum.StrEnum):
    """How a task ended in this run (equal to its plain string: `--json` prints that)."""

    DONE = "done"  # made now
    CACHED = "cached"  # a reusable result was there
    RESTORED = "restored"  # rebuilt from storyboard.lock, or a teammate's published result
    UNNEEDED = "unneeded"  # an upload or element only restored or cached shots use: not made
    FAILED = "failed"
    SKIPPED = "skipped"  # what it needs failed, or --max-cost stopped it


MADE = (Ending.DONE, Ending.CACHED, Ending.RESTORED)  # a result this run can use
ENDED_BADLY = (Ending.FAILED, Ending.SKIPPED)  # what needs it is skipped


@dataclass(frozen=True, slots=True)
class Outcome:
    task: Task
    status: Ending
    record: Record | None = None
    cost_usd: Decimal = Decimal(0)
    error: str | None = None
    elapsed_s: float = 0.0


@dataclass(frozen=True, slots=True)
class RunResult:
    outcomes: tuple[Outcome, ...]
    films: tuple[Path, ...] = ()
    warnings: tuple[str, ...] = ()  # e.g. a push to the shared store that failed

    def count(self, status: str, kind: str | None = None) -> int:
        return sum(1 for o in self.outcomes if o.status == status and kind in (None, o.task.kind))

    @property
    def cost_usd(self) -> Decimal:
        return sum((o.cost_usd for o in self.outcomes), Decimal(0))

    @property
    def ok(self) -> bool:
        return not any(o.status in ENDED_BADLY for o in self.outcomes)


class Reporter(Protocol):
    def started(self, task: Task) -> None: ...
    def finished(self, outcome: Outcome) -> None: ...
    # optional: def progress(self, task: Task, state: str) -> None, where a remote task stands


class Quiet:
    def started(self, task: Task) -> None:
        pass

    def finished(self, outcome: Outcome) -> None:
        pass
