"""Polling: when to ask a provider again, and one poll group per provider.

Tasks of one provider join its group; a batch-polling provider (Runware) is asked about every
due task in one request, others one request per task. The schedule starts from what this
project measured for the provider and model (`expected_time`), else from the documented prior,
and polls densely around the expected end (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

from ..plan import Task, prior_s
from ..project.state import State
from ..providers import PROVIDERS
from ..providers.base import Handle, Status
from ..settings import Settings
from .failures import UNRESOLVED, RemoteError

if TYPE_CHECKING:
    from .remote import Remote


@dataclass
class _Member:
    task: Task
    handle: Handle
    takes: int
    future: asyncio.Future
    delays: Iterator[float]
    due: float
    deadline: float
    interval: float  # the last delay drawn from `delays`
    waiting_since: float  # when it joined (after the submission's answer)
    processing_at: float  # the last poll that found it still processing
    timed: bool = True  # False for another run's generation: joined late, says nothing
    grace_until: float = 0.0  # an `unconfirmed` answer is polled on until then


class PollGroup:
    """Polls every waiting task of one provider: in one request where the provider takes
    several (Runware), else one request per task; each task on its own schedule, and a
    request sent for one task also carries the others that are nearly due."""

    def __init__(self, remote: Remote, provider: str, key, base: str) -> None:
        self.remote, self.name, self.key, self.base = remote, provider, key, base
        self.provider = PROVIDERS[provider]
        self.members: dict[int, _Member] = {}
        self.wake = asyncio.Event()
        self.loop_task: asyncio.Task | None = None

    async def wait(self, task, handle: Handle, takes: int, expected: Expected | None,
                   timed: bool = True) -> Status:
        clock, settings = self.remote.clock, self.remote.settings
        delays = poll_delays(settings, expected, self.provider.batch_poll)
        now, first = clock.now(), next(delays)
        member = _Member(task, handle, takes, asyncio.get_running_loop().create_future(),
                         delays, now + first, now + settings.poll_timeout_s, first, now, now,
                         timed, now + self._grace_left(task))
        self.members[id(member)] = member
        self.wake.set()
        if self.loop_task is None or self.loop_task.done():
            self.loop_task = asyncio.create_task(self._loop())
        try:
            return await member.future
        finally:
            self.members.pop(id(member), None)

    def _grace_left(self, task) -> float:
        """What is left of the provider's grace for an unconfirmed task, counted from its
        submission (a later run, or a finished task fetched again, does not start it anew)."""
        grace = self.provider.unconfirmed_grace_s
        record = self.remote.state.get(task.cache_key) if grace else None
        if record is None or record.submitted_at is None:
            return grace
        return max(0.0, grace - (time.time() - record.submitted_at))

    async def _loop(self) -> None:
        clock = self.remote.clock
        try:
            while active := [m for m in self.members.values() if not m.future.done()]:
                self.wake.clear()
                due = min(m.due for m in active)
                delay = due - clock.now()
                if delay > 0:
                    sleeper = asyncio.ensure_future(clock.sleep(delay))
                    waker = asyncio.ensure_future(self.wake.wait())
                    await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
                    for pending in (sleeper, waker):
                        pending.cancel()
                    if clock.now() < due - 1e-6:
                        continue  # a new member arrived: its due time may be earlier
                await self._poll_due(active, clock.now())
                await asyncio.sleep(0)  # let the members whose answer came go on
        except Exception as exc:  # forwarded, not handled: no waiter is left hanging, and
            for m in self.members.values():  # a bug reaches each of them as itself
                if not m.future.done():
                    m.future.set_exception(exc)

    async def _poll_due(self, members: list[_Member], now: float) -> None:
        due = [m for m in members if m.due <= now + 1e-6]
        if not due:
            return
        if self.provider.batch_poll:
            # nearly due members ride along: one request instead of another one soon
            soon = [m for m in members if m not in due and m.due - now <= _slack(m)]
            batch = due + soon
            await self._settle(batch, self._poll_batch(batch))
        else:
            await asyncio.gather(*(self._settle([m], self._poll_one(m)) for m in due))

    async def _poll_batch(self, batch: list[_Member]) -> dict[str, Status]:
        remote = self.remote
        handles = [m.handle for m in batch]
        takes = {m.handle.task_id: m.takes for m in batch}

        async def poll():
            response = await remote.send(self.provider.batch_poll_request(handles, self.base,
                                                                         self.key))
            return self.provider.read_statuses(response, handles, takes)

        return await remote.call(poll, None)

    async def _poll_one(self, member: _Member) -> dict[str, Status]:
        status = await self.remote.poll_once(member.task, self.provider, member.handle,
                                             self.key, self.base, member.takes)
        return {member.handle.task_id: status}

    async def _settle(self, batch: list[_Member], polling) -> None:
        try:
            statuses = await polling
        except RemoteError as exc:
            for m in batch:
                if not m.future.done():
                    m.future.set_exception(type(exc)(str(exc)))  # its kind kept
            return
        now = self.remote.clock.now()
        for m in batch:
            status = statuses.get(m.handle.task_id, Status("processing"))
            if m.future.done():
                continue
            if status.state == "unconfirmed" and now < m.grace_until:
                status = Status("processing", detail=f"not yet shown by {self.name}")
            if status.state in ("done", "failed") or status.state in UNRESOLVED:
                if status.state == "done" and m.timed:  # it ended between the last two polls:
                    seconds = (m.processing_at + now) / 2 - m.waiting_since
                    self.remote.state.record_timing(self.name, m.task.model, seconds,
                                                    _clip_s(m.task))
                m.future.set_result(status)
            elif now >= m.deadline:
                m.future.set_exception(RemoteError(
                    f"still processing after {self.remote.settings.poll_timeout_s:.0f} s; run "
                    "again to keep waiting (it will not be submitted again)"))
            else:
                m.processing_at = now
                m.interval = next(m.delays)
                m.due = now + m.interval
                self.remote.tell(m.task, status.detail or "processing")


# Without a measured time (a new project, a fresh clone, a new model) nothing is known of how
# long a generation takes: the prior is an assumption, and waiting for half of it before the
# first poll made a 3 s generation wait 48 s and a 30 s one 60 s (issue 21). A cold generation
# is now polled from poll_first_s with the wait doubling (COLD_FACTOR) until half the prior: a
# provider far faster than the prior is seen at most about its own generation time late, for
# about log2(prior / 2) = 6 more requests per clip; from half the prior on, densely as before
# until the prior ends, then growing x1.5 up to COLD_CAP of the prior. Where one request polls
# every task (Runware), a poll costs nothing per clip: from poll_first_s, x1.5, up to poll_max_s.
COLD_FACTOR = 2.0
COLD_CAP = 0.25  # of the prior, the longest wait between two polls once the prior has passed
HISTORY_FIRST_POLL = 0.9  # of the measured median: polls cluster around the expected end
DENSE_STEP = 0.05  # of the expected time, between DENSE_MIN_S and poll_max_s
# A done clip is seen on average half a step late: 2.5 % of any generation, down to a
# generation of 5 s (a 1 s floor cost 8-10 % of the 6 s generations of bench/run.py); the
# requests per clip stay the same at every scale (about two dense polls per generation).
DENSE_MIN_S = 0.25


@dataclass(frozen=True, slots=True)
class Expected:
    """How long a generation should take, and whether this project measured it (history) or
    it is GENERATION_PRIOR_S's assumption (prior)."""

    seconds: float
    measured: bool


def expected_time(state: State, provider: str, model: str | None,
                  clip_s: float | None) -> Expected:
    """The median of this project's last generations of the model with the same clip
    duration; else of all of them, each scaled to `clip_s` by the prior's shape (a 10 s clip
    takes longer than a 5 s one); else the prior."""
    samples = state.timings(provider, model)
    same = [seconds for seconds, clip in samples if clip == clip_s]
    if not same:
        target = prior_s(provider, model, clip_s)
        same = [seconds if clip is None else seconds * target / prior_s(provider, model, clip)
                for seconds, clip in samples]
    if not same:
        return Expected(prior_s(provider, model, clip_s), measured=False)
    return Expected(sorted(same)[len(same) // 2], measured=True)


def poll_delays(settings: Settings, expected: Expected | None,
                batch: bool = False) -> Iterator[float]:
    """Seconds between polls: a fixed cadence if set; else, knowing how long this model took
    here, nothing until 90 % of it, then densely (5 % of it, 0.25-5 s), then growing; with only
    the prior (a cold project), doubling from poll_first_s until half the prior, then densely
    until the prior, then growing (`batch`: from poll_first_s, x1.5, up to poll_max_s); else
    (another run's generation, joined late) from 1 s, growing x1.5 up to poll_max_s."""
    if settings.poll_interval_s is not None:
        while True:
            yield settings.poll_interval_s
    cap = settings.poll_max_s
    delay = settings.poll_first_s
    if expected is not None and expected.seconds > 0:
        seconds = expected.seconds
        dense = min(settings.poll_max_s, max(DENSE_MIN_S, DENSE_STEP * seconds))
        if expected.measured:
            yield max(settings.poll_first_s, HISTORY_FIRST_POLL * seconds)
            for _ in range(max(1, int(0.5 * seconds / dense))):
                yield dense
        elif not batch:  # batched: polls cost nothing per clip, the growth below from 1 s
            yield from _cold_ramp(settings.poll_first_s, 0.5 * seconds, dense)
            for _ in range(max(1, round(0.5 * seconds / dense))):
                yield dense
            cap, delay = max(cap, COLD_CAP * seconds), dense * settings.poll_factor
    while True:
        yield delay
        delay = min(cap, delay * settings.poll_factor)


def _cold_ramp(first: float, until: float, dense: float) -> Iterator[float]:
    """Waits doubling from `first` whose sum reaches `until` exactly (a last remainder shorter
    than `dense` joins the wait before it)."""
    elapsed, delay = 0.0, first
    while elapsed + delay < until:
        step = delay if until - (elapsed + delay) >= dense else until - elapsed
        yield step
        elapsed += step
        delay *= COLD_FACTOR
    if until - elapsed > 1e-9:
        yield until - elapsed


def _clip_s(task: Task) -> float | None:
    """The seconds of the clip a generation task makes (None: the source decides)."""
    return expected_duration(task) if task.job is not None else None


def _slack(member: _Member) -> float:
    """How early a member may be polled along with a due one: half its interval (at least
    1 s), so that tasks submitted a moment apart fall into the same requests and stay there."""
    return max(1.0, 0.5 * member.interval)


def expected_duration(task: Task) -> float | None:
    """Seconds the clip must last (None when the source decides: a video edit)."""
    from ..providers import rules

    shot = task.generation.shot
    if shot.video is not None:
        return None
    duration = rules.effective_duration(shot)
    return float(duration if duration is not None else 5)
