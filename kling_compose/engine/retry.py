"""Retries of transient HTTP faults with exponential backoff, full jitter and Retry-After.

httpx retries only failed connections; status-code retries are ours. The clock, `sleep` and the
random source are parameters, so tests run instantly and deterministically. How long the waits
are is the module's `WAITS` (a `Waits`), read at each call: a test that runs the real clock
through the CLI shortens every wait by replacing it (tests/conftest.py: `quick_retries`);
production never changes it.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Awaitable, Callable

import httpx

from ..providers.base import TransientError, retry_after_s  # noqa: F401 (re-exported)

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Waits:
    """How long a retry waits: full-jitter backoff from `base_s`, doubling up to `cap_s`, or
    the server's Retry-After (capped too); every wait, Retry-After's included, is multiplied by
    `scale` (1 in production: the waits as computed)."""

    base_s: float = 1.0
    cap_s: float = 30.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not (self.base_s >= 0 and self.cap_s >= 0 and self.scale >= 0):
            raise ValueError(f"retry waits must not be negative: {self}")


WAITS = Waits()  # what with_retries uses unless told otherwise; tests may replace it


def backoff_s(attempt: int, base_s: float = 1.0, cap_s: float = 30.0,
              rng: Callable[[], float] = random.random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng() * min(cap_s, base_s * 2 ** attempt)


def retry_delay_s(attempt: int, exc: BaseException, waits: Waits | None = None,
                  rng: Callable[[], float] = random.random) -> float:
    """The wait before retrying after `exc` failed attempt `attempt` (0 the first): its
    Retry-After hint when it carries one, else full-jitter backoff; both capped, then scaled."""
    waits = waits if waits is not None else WAITS
    hinted = getattr(exc, "retry_after_s", None)
    delay = min(waits.cap_s, hinted) if hinted is not None else \
        backoff_s(attempt, waits.base_s, waits.cap_s, rng)
    return delay * waits.scale


async def with_retries(
    call: Callable[[], Awaitable],
    *,
    attempts: int = 5,
    base_s: float | None = None,
    cap_s: float | None = None,
    sleep: Callable[[float], Awaitable] = asyncio.sleep,
    rng: Callable[[], float] = random.random,
    on_retry: Callable[[int, Exception, float], None] | None = None,
    waits: Waits | None = None,
):
    """`await call()`, again after a TransientError or transport error, `attempts` times in all.

    The waits are `waits`, else the module's WAITS as it is when called; `base_s` and `cap_s`
    override theirs. `on_retry(attempt, exc, delay)` hears of each retry before its wait."""
    policy = waits if waits is not None else WAITS
    if base_s is not None or cap_s is not None:
        policy = Waits(policy.base_s if base_s is None else base_s,
                       policy.cap_s if cap_s is None else cap_s, policy.scale)
    for attempt in range(attempts):
        try:
            return await call()
        except (TransientError, httpx.TransportError) as exc:
            if attempt == attempts - 1:
                raise
            delay = retry_delay_s(attempt, exc, policy, rng)
            if on_retry is not None:
                on_retry(attempt + 1, exc, delay)
            await sleep(delay)
    raise AssertionError("unreachable")
