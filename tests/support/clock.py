"""Virtual time shared by the engine and the simulator: the engine's `sleep` moves it, the
simulator reads it, so a run against the in-process simulator never waits."""

from __future__ import annotations

import asyncio


class VirtualClock:
    """A clock that moves only when told: `clock()` reads it, `await clock.sleep(s)` (the
    engine's sleep: run_plan's `sleep=`) and `clock.advance(s)` move it forward. `sleeps`
    lists every sleep asked for, in order."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"time does not go back ({seconds} s)")
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)  # others run, as they would while a real sleep lasts
