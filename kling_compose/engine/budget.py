"""--max-cost during a run, and the clock a run waits on (virtual in tests)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Awaitable, Callable, TypeGuard

from .failures import BudgetExceeded


def usable_cost(amount: object) -> TypeGuard[Decimal]:
    """A cost that can be added up: a finite, non-negative Decimal."""
    return isinstance(amount, Decimal) and amount.is_finite() and amount >= 0


class Clock:
    """Monotonic time and sleep; tests pass an instant `sleep` and get virtual time."""

    def __init__(self, sleep: Callable[[float], Awaitable] | None = None) -> None:
        self._sleep = sleep
        self._virtual = 0.0

    def now(self) -> float:
        return self._virtual if self._sleep is not None else time.monotonic()

    async def sleep(self, seconds: float) -> None:
        if self._sleep is None:
            await asyncio.sleep(seconds)
            return
        self._virtual += max(0.0, seconds)
        await self._sleep(seconds)
        await asyncio.sleep(0)


@dataclass
class Budget:
    """--max-cost during the run: spent (reported costs, else estimates) plus what is in
    flight plus the next submission's estimate must stay within the limit."""

    limit: Decimal | None = None
    spent: Decimal = Decimal(0)
    in_flight: dict[str, Decimal] = field(default_factory=dict)
    name: str = "--max-cost"  # the cap as messages name it (RunOptions.max_cost_name)

    def reserve(self, task_id: str, estimate: Decimal | None, *, force: bool = False) -> None:
        """Count a submission in flight; BudgetExceeded (nothing counted) if it would pass."""
        amount = estimate or Decimal(0)
        committed = self.spent + sum(self.in_flight.values(), Decimal(0))
        if not force and self.limit is not None and committed + amount > self.limit:
            raise BudgetExceeded(
                f"not submitted: {self.name} ${self.limit:.3f} would be passed (spent "
                f"${self.spent:.3f}, in flight ${committed - self.spent:.3f}, this shot "
                f"${amount:.3f}); run again with a higher --max-cost to go on")
        self.in_flight[task_id] = amount

    def settle(self, task_id: str, actual: Decimal | None) -> None:
        """The generation ended: what it cost (None, or not a finite non-negative amount: its
        estimate) moves to spent."""
        estimate = self.in_flight.pop(task_id, Decimal(0))
        self.spent += actual if usable_cost(actual) else estimate

    def release(self, task_id: str) -> None:
        """A submission refused or failed before it cost anything."""
        self.in_flight.pop(task_id, None)
