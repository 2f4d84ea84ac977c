"""The team claim protocol: a shot is paid for once by the whole team.

Before a hosted generation is paid for, the project's shared artifact store is asked: a result
another clone published for this very task is pulled and used; else the shot is claimed there
(create-only); else another clone holds the claim, and its recorded provider task is followed
(or its result waited for), never paid again. A store that fails stops claiming for the rest of
the run (claims.py holds the records; this module, the flow).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Callable, Sequence

from ..errors import UserError
from ..paths import ProjectPaths
from ..plan import Plan, Task
from ..project.reuse import in_flight, input_digests
from ..project.state import Record, State
from ..project.store import Store
from ..providers import LOCAL_PROVIDERS
from ..providers.base import Handle
from ..settings import Settings
from ..share import claims
from ..share.artifacts import STORE_FAILURES, ArtifactStore
from .outcomes import Ending, Outcome
from .remote import KeyRefused, Remote, RemoteError


@dataclass
class Team:
    """One run's side of the protocol: the claims it holds, and whether the store failed."""

    shared: ArtifactStore
    state: State
    store: Store
    settings: Settings
    records: dict[str, Record]  # the run's results so far (shared with the runner)
    progress: Callable[[Task, str], None]
    remote: Callable[[], Remote]  # the run's client, once it exists
    held: dict[str, dict] = field(default_factory=dict)  # task id -> the claim held there
    store_failed: str | None = None  # the shared store failed mid-run: no more claims

    async def claim_or_wait(self, task: Task, record: Record | None) -> Outcome | None:
        """Before paying: another run's published result for this very task (pulled, verified)
        restores it; else claim it in the shared store (None: this run pays, or resumes its
        own submission, and publishes); else another clone holds the claim: follow its
        generation (its recorded provider task) or wait for its result, never paying twice.

        A store that fails (unreachable, refusing) stops claiming for the rest of the run: a
        submission of this clone's own still in flight is resumed, and nothing new is
        submitted without a claim (a teammate could pay for it too)."""
        if self.store_failed is None:
            try:
                return await self._in_store(task, record)
            except STORE_FAILURES as exc:  # unreachable or refusing (translated at its boundary)
                self.store_failed = str(exc) or type(exc).__name__
        if in_flight(record):
            self.held[task.id] = {}  # resume it; the next run publishes
            return None
        return Outcome(task, Ending.FAILED, error=(
            f"the shared store {self.shared.url} failed during this run ({self.store_failed}); "
            f"shot '{task.shot}' is not submitted without a claim there (a teammate's run "
            "could pay for it too). Finished work is kept and published by the next run: "
            "`run` again once the store answers"))

    async def _published(self, task: Task) -> dict | None:
        """The result another run published for the task; a record that does not parse is
        named once in the run's warnings and ignored."""

        try:
            return await asyncio.to_thread(claims.published, self.shared, self.store, task)
        except claims.BadRecord as exc:
            if str(exc) not in self.remote().warnings:
                self.remote().warnings.append(str(exc))
            return None

    async def _in_store(self, task: Task, record: Record | None) -> Outcome | None:

        if in_flight(record):  # this clone submitted it: resume, and publish when done
            won, held = await asyncio.to_thread(claims.claim, self.shared, self.store, task)
            self.held[task.id] = held if won else {}  # {}: publish, never announce/release
            return None
        inputs = input_digests(task, self.records)
        data = await self._published(task)
        if data is not None and data.get("inputs", {}) == inputs:
            return self._adopt_published(task, data, inputs)
        won, holder = await asyncio.to_thread(claims.claim, self.shared, self.store, task)
        if won:
            self.held[task.id] = holder
            return None
        return await self._wait_for(task, holder, inputs)

    async def _wait_for(self, task: Task, holder: dict, inputs: dict) -> Outcome:
        """Another clone holds the claim: adopt its published result; as soon as it has
        recorded its provider task, follow that generation here (this takes over a claim
        whose owner died, by resuming its task, never by submitting again)."""

        self.progress(task, "waiting for another run")
        clock = self.remote().clock
        deadline = clock.now() + self.settings.poll_timeout_s
        interval = self.settings.poll_interval_s or 2.0
        unfollowable = False
        while clock.now() < deadline:
            await clock.sleep(interval)
            try:
                data = await self._published(task)
                recorded = None if unfollowable or (
                    data is not None and data.get("inputs", {}) == inputs) else \
                    await asyncio.to_thread(claims.recorded_task, self.shared, task, holder)
            except STORE_FAILURES as exc:  # the store failed while another holds the claim
                self.store_failed = str(exc) or type(exc).__name__
                return Outcome(task, Ending.FAILED, error=(
                    f"the shared store {self.shared.url} failed while waiting for shot "
                    f"'{task.shot}', which another run ({holder.get('owner', 'unknown')}) "
                    f"claimed ({self.store_failed}); nothing was paid here: `run` again once "
                    "the store answers"))
            if data is not None and data.get("inputs", {}) == inputs:
                return self._adopt_published(task, data, inputs)
            if unfollowable:
                continue
            if recorded is not None:
                outcome = await self._follow(task, holder, recorded, inputs)
                if outcome is not None:
                    return outcome
                unfollowable = True  # not pollable from here: watch the store instead
        message = (f"another run ({holder.get('owner', 'unknown')}) claimed shot '{task.shot}' "
                   f"in {self.shared.url} and has not published its result; run again later "
                   "(nothing was paid here). If that run died before its provider acknowledged "
                   f"the submission, remove {task.cache_key[:12]}...'s claim file from the store "
                   f"only once you know nothing is running at {task.provider} for it")
        return Outcome(task, Ending.FAILED, error=message)

    async def _follow(self, task: Task, holder: dict, recorded: dict,
                      inputs: dict) -> Outcome | None:
        """Poll the holder's recorded generation with this run's key, download and verify its
        takes, record them (the holder paid: $0 here) and publish them for the others. None
        when it cannot be polled from here (another account's task): the caller watches the
        store instead."""

        self.progress(task, "following another run's generation")
        handle = Handle(recorded["provider_task_id"], recorded.get("handle") or {})
        try:
            status = await self.remote().follow(task, handle.task_id, dict(handle.extra))
            if status.state == "done":
                artifacts, result, cost = await self.remote().collect(task, handle, status)
        except KeyRefused as exc:  # a planted record: never followed, named
            return Outcome(task, Ending.FAILED, error=(
                f"the task record for shot '{task.shot}' in {self.shared.url} (claimed by "
                f"{holder.get('owner', 'unknown')}) points outside {task.provider}'s hosts: "
                f"{exc}. It is not followed and nothing was paid here; if nobody you know "
                f"wrote it, remove claim-{task.cache_key}.json and its task record from "
                "the store"))
        except (RemoteError, UserError):
            return None
        if status.state != "done":  # it failed at the provider: nothing left in flight
            await asyncio.to_thread(claims.release, self.shared, task, holder)
            why = status.message or status.state
            return Outcome(task, Ending.FAILED, error=(
                f"the generation of shot '{task.shot}' another run "
                f"({holder.get('owner', 'unknown')}) submitted failed at {task.provider}: "
                f"{why}; run again to generate it anew"))
        record = Record(
            cache_key=task.cache_key, task_id=task.id, kind="generate", status="done",
            shot=task.shot, provider=task.provider, model=task.model,
            provider_task_id=handle.task_id, artifacts=tuple(tuple(a) for a in artifacts),
            inputs=inputs, result={**result, "followed": holder.get("owner", "unknown")},
            cost_usd=cost, finished_at=time.time(), made_from=dict(task.made_from))
        self.state.restore(record)
        self.records[task.id] = record
        await self.publish(task, record)
        return Outcome(task, Ending.RESTORED, record)

    def _adopt_published(self, task: Task, data: dict, inputs: dict) -> Outcome:
        cost = data.get("cost_usd")
        record = Record(
            cache_key=task.cache_key, task_id=task.id, kind="generate", status="done",
            shot=task.shot, provider=task.provider, model=task.model,
            provider_task_id=data.get("provider_task_id"),
            artifacts=tuple(tuple(a) for a in data["artifacts"]), inputs=inputs,
            result={**(data.get("result") or {}), "restored_from": self.shared.url},
            cost_usd=Decimal(cost) if isinstance(cost, str) else None, finished_at=time.time(),
            made_from=dict(task.made_from))
        self.state.restore(record)
        self.records[task.id] = record
        return Outcome(task, Ending.RESTORED, record)

    async def announce(self, task: Task, handle: Handle) -> None:
        """The provider acknowledged a claimed submission: record its task in the store, so a
        waiting run can follow it (and take the claim over if this run dies)."""

        held = self.held.get(task.id)
        if held is None:
            return
        try:
            await asyncio.to_thread(claims.announce, self.shared, task, held, handle.task_id,
                                    dict(handle.extra))
        except STORE_FAILURES:  # kept here; pushed and published after the run
            pass

    async def release(self, task: Task) -> None:
        """A claimed generation ended with nothing billable in flight (refused, failed, never
        sent): give up the claim, so a later run may claim it anew. One that may still run at
        the provider (submitting, submitted) keeps it: its task is followed or resumed."""

        held = self.held.pop(task.id, None)
        record = self.state.get(task.cache_key)
        if held is None or (record is not None and record.phase in ("submitting", "submitted")):
            return
        try:
            await asyncio.to_thread(claims.release, self.shared, task, held)
        except STORE_FAILURES:  # the claim expires; a later run takes it over
            pass

    async def publish(self, task: Task, record: Record) -> None:
        """Push a finished generation's takes and result at once, for runs waiting on it. A
        failure is not this run's: the clips are kept here and pushed after the run."""

        try:
            await asyncio.to_thread(claims.publish, self.shared, self.store, task.cache_key, record)
        except STORE_FAILURES:  # kept here; pushed and published after the run
            pass


def pull_shared(plan: Plan, settings: Settings) -> ArtifactStore | None:
    """Pull every clip storyboard.lock names from the project's shared store (if it has one)
    that the local store lacks; the plan then finds them restorable and pays nothing."""
    from ..share.artifacts import lock_objects, project_store, pull, store_failure

    remote = project_store(plan.resolved.storyboard, settings)
    if remote is None:
        return None
    root = plan.resolved.storyboard.root
    store = Store(ProjectPaths(root).state)
    try:
        board = plan.resolved.storyboard
        pull(remote, store, lock_objects(root, store, (board.profile,), board.path.stem))
    except STORE_FAILURES as exc:  # translated at the store's boundary
        raise store_failure(remote, exc) from None
    return remote


def push_shared(remote: ArtifactStore, root: Path, generations: Sequence[Record] = (),
                profile: str | None = None, stem: str = "storyboard") -> str | None:
    """Push every clip the lock names that the shared store lacks (create-only, idempotent),
    and publish each finished generation's result the store lacks (a run killed between
    finishing a claimed shot and publishing it left others waiting). A failure loses nothing
    (the clips are in the local store; the next run or `kling-compose push` sends them): it is
    a warning, not a failed run."""
    from ..share.artifacts import lock_objects, push
    from ..share.claims import publish_missing

    store = Store(ProjectPaths(root).state)
    try:
        push(remote, store, lock_objects(root, store, (profile,), stem))
        publish_missing(remote, store, generations)
    except STORE_FAILURES as exc:
        return (f"could not push to the artifact store {remote.url}: {exc}; the clips are "
                "kept here: `kling-compose push` sends them later")
    return None


def generations(plan: Plan, state: State) -> list[Record]:
    """The finished generations at hosted providers this plan names (local ones are free)."""
    records = (state.get(t.cache_key) for t in plan.tasks.values()
               if t.kind == "generate" and t.provider not in LOCAL_PROVIDERS)
    return [r for r in records if r is not None and r.status == "done"]
