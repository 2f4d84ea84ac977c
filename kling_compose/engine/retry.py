"""Retries of transient HTTP faults with exponential backoff, full jitter and Retry-After.

httpx retries only failed connections; status-code retries are ours. The clock, `sleep` and the
random source are parameters, so tests run instantly and deterministically.
"""

from __future__ import annotations

import asyncio
import random
from typing import Awaitable, Callable

import httpx

from ..providers.base import TransientError, retry_after_s  # noqa: F401 (re-exported)

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def backoff_s(attempt: int, base_s: float = 1.0, cap_s: float = 30.0,
              rng: Callable[[], float] = random.random) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng() * min(cap_s, base_s * 2 ** attempt)


async def with_retries(
    call: Callable[[], Awaitable],
    *,
    attempts: int = 5,
    base_s: float = 1.0,
    cap_s: float = 30.0,
    sleep: Callable[[float], Awaitable] = asyncio.sleep,
    rng: Callable[[], float] = random.random,
    on_retry: Callable[[int, Exception, float], None] | None = None,
):
    """`await call()`, again after a TransientError or transport error, `attempts` times in all."""
    for attempt in range(attempts):
        try:
            return await call()
        except (TransientError, httpx.TransportError) as exc:
            if attempt == attempts - 1:
                raise
            hinted = getattr(exc, "retry_after_s", None)
            delay = min(cap_s, hinted) if hinted is not None else backoff_s(attempt, base_s, cap_s, rng)
            if on_retry is not None:
                on_retry(attempt + 1, exc, delay)
            await sleep(delay)
    raise AssertionError("unreachable")
