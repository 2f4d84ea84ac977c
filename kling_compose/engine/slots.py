"""Which task runs next when several want one of a provider's slots.

asyncio.Semaphore serves its waiters in arrival order, so a chain's next shot, ready a moment
after its predecessor finished, queued behind every independent shot that had asked before it,
and the chain (the critical path) waited a whole generation at each link: a 20-shot run at
concurrency 4 took 58 s where about 42 s was possible. `Slots` serves waiters by rank instead,
the task with the longest remaining path to the film first (list scheduling's critical-path
rule), ties in plan order. And a task that finishes may keep its slot for the task that
continues its chain at the same provider (`heir`: the next upload or generation, a frame
extraction away) when that task outranks every waiter, so a chain never waits for a slot that
a shot which can wait has just taken.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Collection
from typing import Any

from ..plan import Plan

Rank = tuple[float, int]  # (-remaining path seconds, position in the plan): smallest first


def remaining_path_s(plan: Plan) -> dict[str, float]:
    """Per task, the longest sum of `Task.weight_s` from it (included) to an end of the plan."""
    remaining: dict[str, float] = {}
    for task_id in reversed(plan.order):  # plan.order is topological
        below = max((remaining[s] for s in plan.graph.successors(task_id)), default=0.0)
        remaining[task_id] = plan.tasks[task_id].weight_s + below
    return remaining


def rank_tasks(plan: Plan) -> dict[str, Rank]:
    """Per task, its place in a queue for slots: the longest remaining path first, then the
    plan's order."""
    remaining = remaining_path_s(plan)
    return {task_id: (-remaining[task_id], index) for index, task_id in enumerate(plan.order)}


def heir(plan: Plan, task_id: str, rank: dict[str, Rank], runs: Collection[str],
         ready: Callable[[str], bool]) -> str | None:
    """The task that continues `task_id`'s chain at the same provider: of its nearest
    descendants at that provider, reached through frame extractions only, those this run
    runs and whose other inputs are `ready`, the best ranked. None if there is none."""
    provider = plan.tasks[task_id].provider
    between, frontier, found = {task_id}, [task_id], []
    while frontier:
        for below in plan.graph.successors(frontier.pop()):
            task = plan.tasks[below]
            if task.provider == provider:
                found.append(below)
            elif task.kind == "extract_frame" and below not in between:
                between.add(below)
                frontier.append(below)
    able = [t for t in found if t in runs
            and all(d in between or ready(d) for d in plan.tasks[t].depends_on)]
    return min(able, key=rank.__getitem__, default=None)


class Slots:
    """At most `size` holders at once, like asyncio.Semaphore, except that waiters are served
    by rank, smallest first, and that a holder may keep its slot for a named task (`release`
    with an heir) which then acquires it at once. Free slots are handed out one turn of the
    event loop after they are asked for, so that tasks ready at the same moment (the first
    ones of a run, or the shots a finished one unblocks) are served by rank, not by who ran
    first. A waiter cancelled (Ctrl-C) never keeps a slot, and a task that will not run gives
    up a slot kept for it (`forfeit`)."""

    def __init__(self, size: int) -> None:
        self.free = size
        self._waiting: list[tuple[Any, int, asyncio.Future]] = []
        self._kept: set[str] = set()  # task ids a finished holder kept its slot for
        self._arrivals = itertools.count()
        self._handing_out = False

    async def acquire(self, task_id: str, rank: Any) -> None:
        """Wait for a slot (or take the one kept for `task_id`)."""
        if task_id in self._kept:
            self._kept.discard(task_id)
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (rank, next(self._arrivals), future))
        self._hand_out_soon()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # handed the slot as it was
                self.release()  # cancelled: pass it on
            else:
                future.cancel()  # never handed one later
            raise

    def release(self, heir: str | None = None, rank: Any = None) -> None:
        """Give the slot up: kept for `heir` if it outranks every waiter, else to the best
        ranked waiter."""
        best = self._best_waiting()
        if heir is not None and (best is None or rank < best):
            self._kept.add(heir)
            return
        self.free += 1
        self._hand_out_soon()

    def forfeit(self, task_id: str) -> None:
        """`task_id` will not acquire (skipped, cancelled): release a slot kept for it."""
        if task_id in self._kept:
            self._kept.discard(task_id)
            self.release()

    def _hand_out_soon(self) -> None:
        if not self._handing_out and self.free > 0 and self._waiting:
            self._handing_out = True
            asyncio.get_running_loop().call_soon(self._hand_out)

    def _hand_out(self) -> None:
        self._handing_out = False
        while self.free > 0 and self._best_waiting() is not None:
            *_, future = heapq.heappop(self._waiting)
            future.set_result(None)
            self.free -= 1

    def _best_waiting(self) -> Any:
        while self._waiting and self._waiting[0][2].done():  # cancelled waiters
            heapq.heappop(self._waiting)
        return self._waiting[0][0] if self._waiting else None
