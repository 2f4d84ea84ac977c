import asyncio
import email.utils

import httpx
import pytest

from kling_compose.engine.retry import backoff_s, retry_after_s, with_retries
from kling_compose.providers.base import ProviderError, TransientError


def test_retry_after_in_seconds_and_as_an_http_date():
    assert retry_after_s(httpx.Response(429, headers={"retry-after": "12"})) == 12.0
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert retry_after_s(httpx.Response(429, headers={"retry-after": date}), now=1_000_000) == 30
    assert retry_after_s(httpx.Response(429)) is None
    assert retry_after_s(httpx.Response(429, headers={"retry-after": "soon"})) is None


def test_backoff_is_full_jitter_capped():
    assert backoff_s(0, 1.0, 30.0, rng=lambda: 1.0) == 1.0
    assert backoff_s(3, 1.0, 30.0, rng=lambda: 1.0) == 8.0
    assert backoff_s(10, 1.0, 30.0, rng=lambda: 1.0) == 30.0
    assert backoff_s(10, 1.0, 30.0, rng=lambda: 0.0) == 0.0


def run(coro):
    return asyncio.run(coro)


def test_transient_faults_are_retried_until_success():
    calls, sleeps = [], []

    async def call():
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("busy", retry_after_s=2.5 if len(calls) == 1 else None)
        return "ok"

    async def sleep(s):
        sleeps.append(s)

    assert run(with_retries(call, attempts=5, sleep=sleep, rng=lambda: 0.5)) == "ok"
    assert sleeps == [2.5, 1.0]  # Retry-After first, then jittered backoff (0.5 * 2**1)


def test_retries_give_up_and_final_errors_are_not_retried():
    calls = []

    async def busy():
        calls.append(1)
        raise httpx.ConnectError("reset")

    async def refused():
        calls.append(1)
        raise ProviderError("invalid")

    async def sleep(s):
        pass

    with pytest.raises(httpx.ConnectError):
        run(with_retries(busy, attempts=3, sleep=sleep))
    assert len(calls) == 3
    with pytest.raises(ProviderError):
        run(with_retries(refused, attempts=3, sleep=sleep))
    assert len(calls) == 4
