"""engine/retry.py: Retry-After, full-jitter backoff, with_retries and its waits policy."""

import asyncio
import email.utils

import httpx
import pytest

from kling_compose.engine import retry
from kling_compose.engine.retry import WAITS, Waits, backoff_s, retry_after_s, with_retries
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


# -- the waits: production defaults, and shortened for tests ---------------------------------

def _waits_of(policy=None, *, errors=None, **options) -> list[float]:
    """The waits of with_retries over `errors` (raised in turn, then success)."""
    errors = list(errors or [TransientError("busy"), TransientError("busy", retry_after_s=7.0)])
    sleeps: list[float] = []

    async def call():
        if errors:
            raise errors.pop(0)
        return "ok"

    async def sleep(s):
        sleeps.append(s)

    assert run(with_retries(call, sleep=sleep, rng=lambda: 1.0, waits=policy, **options)) == "ok"
    return sleeps


def test_the_production_waits_are_unchanged():
    assert WAITS == Waits(base_s=1.0, cap_s=30.0, scale=1.0)
    errors = [TransientError("busy")] * 4
    assert _waits_of(errors=errors) == [1.0, 2.0, 4.0, 8.0]
    assert _waits_of(errors=[TransientError("busy", retry_after_s=90)]) == [30.0]  # capped


def test_a_scale_shortens_every_wait_backoff_and_retry_after_alike():
    assert _waits_of(Waits(scale=0.01)) == pytest.approx([0.01, 0.07])
    assert _waits_of(Waits(scale=0)) == [0.0, 0.0]


def test_the_module_waits_are_read_at_each_call(monkeypatch):
    monkeypatch.setattr(retry, "WAITS", Waits(base_s=0.5, scale=2.0))
    assert _waits_of() == [1.0, 14.0]  # 0.5 x 2, then Retry-After 7 x 2
    assert _waits_of(Waits()) == [1.0, 7.0]  # an explicit policy wins over the module's


def test_base_and_cap_override_the_policy_but_keep_its_scale():
    assert _waits_of(Waits(scale=0.5), base_s=4.0, cap_s=6.0) == [2.0, 3.0]


def test_negative_waits_are_refused():
    for bad in ({"base_s": -1}, {"cap_s": -1}, {"scale": -0.1}):
        with pytest.raises(ValueError):
            Waits(**bad)


def test_quick_retries_shortens_the_engines_waits(quick_retries):
    assert retry.WAITS is quick_retries and quick_retries.scale < 0.1
    assert _waits_of() == pytest.approx([quick_retries.scale, 7.0 * quick_retries.scale])


# -- with_retries, attempt by attempt ----------------------------------------------------------

def test_each_retry_is_announced_with_its_attempt_error_and_wait_before_it_is_waited():
    events: list = []
    errors = [httpx.ReadError("reset"), TransientError("busy", retry_after_s=4.0)]

    async def call():
        events.append("call")
        if errors:
            raise errors.pop(0)
        return "ok"

    async def sleep(s):
        events.append(("sleep", s))

    def on_retry(attempt, exc, delay):
        events.append(("retry", attempt, type(exc).__name__, delay))

    assert run(with_retries(call, sleep=sleep, rng=lambda: 0.25, on_retry=on_retry)) == "ok"
    assert events == ["call", ("retry", 1, "ReadError", 0.25), ("sleep", 0.25),
                      "call", ("retry", 2, "TransientError", 4.0), ("sleep", 4.0), "call"]


@pytest.mark.parametrize("error", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"),
                                   httpx.RemoteProtocolError("cut"),
                                   TransientError("HTTP 503")])
def test_transport_errors_and_transient_faults_are_retried(error):
    calls = []

    async def call():
        calls.append(1)
        if len(calls) == 1:
            raise error
        return "ok"

    async def sleep(s):
        pass

    assert run(with_retries(call, sleep=sleep)) == "ok" and len(calls) == 2


@pytest.mark.parametrize("error", [ProviderError("refused"), ValueError("a bug"),
                                   httpx.HTTPStatusError("404", request=None, response=None)])
def test_anything_else_is_raised_at_once_without_a_wait(error):
    calls, sleeps = [], []

    async def call():
        calls.append(1)
        raise error

    async def sleep(s):
        sleeps.append(s)

    with pytest.raises(type(error)):
        run(with_retries(call, sleep=sleep))
    assert len(calls) == 1 and sleeps == []


def test_one_attempt_never_waits_and_the_last_error_is_the_one_raised():
    sleeps = []

    async def sleep(s):
        sleeps.append(s)

    async def busy():
        raise TransientError("busy")

    with pytest.raises(TransientError):
        run(with_retries(busy, attempts=1, sleep=sleep))
    assert sleeps == []
    errors = iter([TransientError("first"), TransientError("second"), TransientError("third")])

    async def changing():
        raise next(errors)

    with pytest.raises(TransientError, match="third"):
        run(with_retries(changing, attempts=3, sleep=sleep))
    assert len(sleeps) == 2  # between the attempts, none after the last


def test_the_jittered_wait_is_uniform_below_the_doubling_bound():
    assert [retry.retry_delay_s(n, TransientError("x"), rng=lambda: 0.5) for n in range(7)] == \
        [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]  # half of 1, 2, 4 ... capped at 30
    waits = [retry.retry_delay_s(3, TransientError("x")) for _ in range(200)]
    assert all(0 <= w <= 8.0 for w in waits) and len(set(waits)) > 100  # random, bounded


def test_a_retry_after_of_zero_retries_at_once_and_a_long_one_is_capped():
    assert retry.retry_delay_s(4, TransientError("x", retry_after_s=0.0)) == 0.0
    assert retry.retry_delay_s(0, TransientError("x", retry_after_s=3600)) == 30.0
    assert retry.retry_delay_s(0, TransientError("x", retry_after_s=3600),
                               Waits(cap_s=120)) == 120.0


def test_the_transient_statuses_are_timeouts_rate_limits_and_server_errors():
    assert retry.TRANSIENT_STATUS == {408, 429, 500, 502, 503, 504}
