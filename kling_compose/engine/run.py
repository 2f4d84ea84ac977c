"""Execute a Plan: every task starts as soon as its inputs exist.

Each task is one asyncio task that waits for the tasks it needs; a failed task's descendants
are skipped while independent branches go on (dbt's GraphQueue, with futures instead of a
queue). What each task needs is decided once (`decide.py`, as `plan` decides it); what is made
is made by its kind's handler (`tasks.py`); a hosted generation is claimed for the team first
(`team.py`). Media work (ffmpeg, PyAV) runs in threads, so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Awaitable, Callable

import httpx

from ..collector import running
from ..errors import UserError
from ..http import async_client
from ..media.ffmpeg import MediaError
from ..paths import ProjectPaths
from ..plan import Plan, Task
from ..project.decide import Verdict, decide, unneeded_inputs
from ..project.lockfile import Lock, read_lockfile, write_lockfile
from ..project.reuse import in_flight
from ..project.runs import record_run
from ..project.state import Record, State, state_path
from ..project.store import Store, file_sha256
from ..providers import LOCAL_PROVIDERS
from ..selection import select
from ..settings import Settings
from ..share.artifacts import STORE_FAILURES, ArtifactStore
from .outcomes import ENDED_BADLY, MADE, Ending, Outcome, Quiet, Reporter, RunOptions, RunResult
from .preflight import (
    check_request,
    check_write_paths,
    project_lock,
    remove_stale_temp_files,
    write_failure,
)
from .remote import Budget, Clock, Remote, RemoteError
from .slots import Rank, Slots, heir, rank_tasks
from .tasks import HANDLERS, Generate, TaskHandler, missing_pick
from .team import Team, generations, pull_shared, push_shared

# the names the package's users import from here (cli.py, kling_compose/__init__.py)
__all__ = ["Outcome", "Reporter", "RunOptions", "RunResult", "STORE_FAILURES", "check_request",
           "check_write_paths", "project_lock", "run_plan"]


def run_plan(plan: Plan, options: RunOptions = RunOptions(), reporter: Reporter | None = None,
             settings: Settings | None = None, transport: httpx.AsyncBaseTransport | None = None,
             sleep: Callable[[float], Awaitable] | None = None) -> RunResult:
    """Run the plan to completion (the one asyncio.run of the package).

    transport and sleep are for tests (httpx.MockTransport, an instant sleep: time is then
    virtual, advanced by what the run sleeps)."""
    root = plan.resolved.storyboard.root
    settings = settings or Settings()
    # the team's paid clips first: then nothing to pay
    shared = pull_shared(plan, settings) if options.shared else None
    statuses = check_request(plan, options, settings)
    with project_lock(root):
        state = State(state_path(root))
        try:
            record_run(plan)
            runner = Runner(plan, options, state, Store(ProjectPaths(root).state),
                            reporter or Quiet(), settings, transport, sleep, shared)
            runner.unneeded = unneeded_inputs(plan, statuses, select(plan, options.only),
                                              options.force)
            with running():  # a long run churns cyclic objects (tasks, futures, tracebacks)
                result = asyncio.run(runner.run())
            if state.salvaged:  # the ledger was moved aside as damaged: what it gave back
                result = replace(result, warnings=(state.salvaged, *result.warnings))
            runner.export_shots(result)
            lock_warnings = write_lockfile(plan, state)
            if lock_warnings:
                result = replace(result, warnings=(*result.warnings, *lock_warnings))
            if shared is not None:
                problem = push_shared(shared, root, generations(plan, state),
                                      plan.resolved.storyboard.profile,
                                      plan.resolved.storyboard.path.stem)
                if problem:
                    result = replace(result, warnings=(*result.warnings, problem))
            return result
        except (OSError, sqlite3.OperationalError) as exc:
            raise UserError.single(write_failure(exc, root), hint="free disk space or fix the "
                                   "folder's permissions, then run again: finished work is "
                                   "kept and the run resumes") from None
        finally:
            state.close()


SIDECARS = frozenset({".srt", ".vtt"})  # an assemble's artifacts after the film


@dataclass
class Runner:
    plan: Plan
    options: RunOptions
    state: State
    store: Store
    reporter: Reporter
    settings: Settings
    transport: httpx.AsyncBaseTransport | None
    sleep: Callable[[float], Awaitable[Any]] | None
    shared: ArtifactStore | None = None  # the project's shared artifact store (team.py)
    remote: Remote = field(init=False)  # the run's client, made in run()
    team: Team | None = None  # the claim protocol, with a shared store
    handlers: dict[str, TaskHandler] = field(default_factory=dict)
    previous: dict[str, Record | None] = field(default_factory=dict)
    records: dict[str, Record] = field(default_factory=dict)
    futures: dict[str, asyncio.Future[Outcome]] = field(default_factory=dict)
    # two tasks with one cache key (two shots asking for the very same clip) are one piece of
    # work: the second waits for the first and reuses its result, never paying twice
    key_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    lock: Lock = field(default_factory=Lock)  # storyboard.lock, at the start
    ranks: dict[str, Rank] = field(default_factory=dict)  # task id -> its place for slots
    unneeded: set[str] = field(default_factory=set)  # unneeded_inputs: made only on demand
    made_late: dict[str, Outcome] = field(default_factory=dict)  # unneeded, then made after all

    def __post_init__(self) -> None:
        self.handlers = {kind: handler(self) for kind, handler in HANDLERS.items()}
        if self.shared is not None:
            self.team = Team(self.shared, self.state, self.store, self.settings, self.records,
                             self.reporter_progress, lambda: self.remote)

    async def run(self) -> RunResult:
        board = self.plan.resolved.storyboard
        self.lock = read_lockfile(board.root, board.profile, board.path.stem)
        self.store.clean_temp()
        remove_stale_temp_files(self.plan)
        # local rendering is CPU-bound: at most one task per core; each remote provider gets
        # its own --concurrency slots (their queues and rate limits are separate)
        cores = max(1, min(self.options.concurrency, os.cpu_count() or 1))
        limits: dict[str | None, Slots] = {p: Slots(cores) for p in LOCAL_PROVIDERS}
        for task_id in self.plan.order:
            provider = self.plan.tasks[task_id].provider
            limits.setdefault(provider, Slots(self.options.concurrency))
        limits[None] = Slots(cores)  # extract_frame, assemble: local media work
        # contended slots go to the longest remaining path first (engine/slots.py)
        self.ranks = rank_tasks(self.plan)
        selected = select(self.plan, self.options.only)
        loop = asyncio.get_running_loop()
        self.futures = {t: loop.create_future() for t in selected}
        # redirects are followed by Remote.send, which keeps credentials on their own origin
        async with async_client(timeout_s=self.settings.request_timeout_s,
                                transport=self.transport) as client:
            from ..media.ffmpeg import verify_clip

            self.remote = Remote(client, self.settings, self.state, self.store,
                                 Clock(self.sleep), Budget(self.options.max_cost_usd,
                                        name=self.options.max_cost_name),
                                 verify_clip, notify=getattr(self.reporter, "progress", None))
            if self.team is not None:
                self.remote.on_submitted = self.team.announce
            jobs = [asyncio.create_task(self.task(self.plan.tasks[t], limits)) for t in selected]
            outcomes = [self.made_late.get(o.task.id, o) for o in await asyncio.gather(*jobs)]
        films = tuple(Path(o.task.assemble_params.path) for o in outcomes
                      if o.task.kind == "assemble" and o.status in (Ending.DONE, Ending.CACHED))
        return RunResult(tuple(outcomes), films, tuple(self.remote.warnings))

    async def task(self, task: Task, limits: dict[str | None, Slots]) -> Outcome:
        slots = limits[task.provider]
        try:
            # shielded: cancelling this task (Ctrl-C) must not cancel the upstream task's
            # future, which that task may still be about to resolve
            upstream = [await asyncio.shield(self.futures[d]) for d in task.depends_on]
            if any(o.status in ENDED_BADLY for o in upstream):
                blocked = next(o.task.id for o in upstream if o.status in ENDED_BADLY)
                outcome = Outcome(task, Ending.SKIPPED, error=f"needs {blocked}")
                slots.forfeit(task.id)
            else:
                async with self.key_locks.setdefault(task.cache_key, asyncio.Lock()):
                    outcome = await self._holding(slots, task)
        except asyncio.CancelledError:
            slots.forfeit(task.id)  # a slot its upstream task kept for it
            raise
        self.reporter.finished(outcome)
        if not self.futures[task.id].done():
            self.futures[task.id].set_result(outcome)
        return outcome

    async def _holding(self, slots: Slots, task: Task) -> Outcome:
        """Execute the task in one of its provider's slots; when it succeeds, the slot is
        kept for the task continuing its chain there (engine/slots.heir), if that one
        outranks every waiter."""
        await slots.acquire(task.id, self.ranks[task.id])
        kept_for = None
        try:
            outcome = await self.execute(task)
            if outcome.status in (*MADE, Ending.UNNEEDED):
                kept_for = heir(self.plan, task.id, self.ranks, self.futures,
                                lambda d: d in self.futures and self.futures[d].done())
            twin = self.key_locks.get(self.plan.tasks[kept_for].cache_key) if kept_for else None
            if twin is not None and twin.locked():  # it would wait for its twin, slot held
                kept_for = None
        finally:
            slots.release(kept_for, self.ranks.get(kept_for) if kept_for else None)
        return outcome

    async def execute(self, task: Task) -> Outcome:
        outcome = await self._execute(task)
        if task.kind == "generate" and outcome.status in MADE:
            problem = missing_pick(task, outcome.record)
            if problem is not None:  # the clip is kept; what needs the take cannot run
                return replace(outcome, status=Ending.FAILED, error=problem)
        return outcome

    async def _execute(self, task: Task) -> Outcome:
        record = self.state.get(task.cache_key)
        forced = (task.kind == "generate" and task.shot in self.options.force) or \
            task.id in self.options.force  # a voice or an element, by its task id
        decision = decide(task, record, self.records, store=self.store, lock=self.lock,
                          forced=forced, repair=True)
        if decision.status is Verdict.CACHED and decision.record is not None:
            record = decision.record
            if task.kind == "generate":
                record = await self.generator.rescored(task, record)
            self.state.used(task.cache_key)  # the task's latest result again (why.py)
            self.records[task.id] = record
            if task.kind == "assemble":
                self.export(task, record)
            return Outcome(task, Ending.CACHED, record)
        if decision.status is Verdict.RESTORABLE and decision.record is not None:
            restored: Record | None = decision.record
            if decision.fetches and not await self._fetch(task, decision.fetches):
                restored = None  # expired or different bytes: never trusted; made anew
            if restored is not None:
                restored = replace(restored, made_from=dict(task.made_from))
                self.state.restore(restored)
                self.records[task.id] = restored
                return Outcome(task, Ending.RESTORED, restored)
        if task.id in self.unneeded and not in_flight(record) and decision.record is not None:
            # its identity is known from its inputs, which is all a restore or a cache hit
            # downstream compares; the provider's copy is made only if a generation sends it
            self.records[task.id] = decision.record
            return Outcome(task, Ending.UNNEEDED, decision.record)
        if (self.team is not None and not forced and task.kind == "generate"
                and task.provider not in LOCAL_PROVIDERS):
            outcome = await self.team.claim_or_wait(task, record)
            if outcome is not None:
                return outcome
        return await self.perform(task, record)

    async def perform(self, task: Task, record: Record | None, report: bool = True) -> Outcome:
        """Make the task's result now (its kind's handler, tasks.py)."""
        return await self.handlers[task.kind].perform(task, record, report)

    async def inputs_made(self, task: Task) -> None:
        """Make the uploads and elements this task sends that were left unneeded (a generation
        whose restore failed after all, an element whose images were not uploaded): once each,
        before its request is built; a failure fails this task."""
        for dep in task.inputs.values():
            if self.records[dep].status != "planned":
                continue
            async with self.key_locks.setdefault("made:" + dep, asyncio.Lock()):
                if self.records[dep].status != "planned":
                    continue  # another task made it meanwhile
                needed = self.plan.tasks[dep]
                outcome = await self.perform(needed, self.state.get(needed.cache_key),
                                             report=False)
                if outcome.status != "done":
                    raise RemoteError(f"{dep}: {outcome.error}")
                self.made_late[dep] = outcome

    @property
    def generator(self) -> Generate:
        return self.handlers["generate"]  # type: ignore[return-value]

    async def _fetch(self, task: Task, fetches) -> bool:
        """Download the lock's takes from their result URLs; True when every one arrived with
        the lock's sha256 (a clone restoring paid clips). Bytes that differ are never used."""
        for fetch in fetches:
            self.reporter_progress(task, "restoring")
            try:
                digest = await self.remote.download(fetch.url, fetch.suffix)
            except RemoteError:
                return False
            if digest != fetch.digest:
                return False
        return True

    def reporter_progress(self, task: Task, state: str) -> None:
        progress = getattr(self.reporter, "progress", None)
        if progress is not None:
            progress(task, state)

    def export_shots(self, result: RunResult) -> None:
        """Each shot's picked clip as renders/shots/<shot>.<ext>, for people to look at."""
        root = self.plan.resolved.storyboard.root
        for outcome in result.outcomes:
            if outcome.task.kind != "generate" or outcome.record is None or \
                    outcome.status not in MADE:
                continue
            digest, suffix = outcome.record.artifacts[outcome.task.generation.shot.pick - 1]
            target = self.plan.resolved.storyboard.paths.shot_clip(outcome.task.shot or "",
                                                                   suffix)
            self._export_if_changed(digest, suffix, target)

    def _export_if_changed(self, digest: str, suffix: str, target: Path) -> None:
        source = self.store.path(digest, suffix)
        same = (target.is_file() and target.stat().st_size == source.stat().st_size
                and file_sha256(target) == digest)
        if not same:
            self.store.export(digest, suffix, target)

    def artifact(self, dep: str, pick: int = 1) -> Path:
        record = self.records[dep]
        index = pick - 1 if record.kind == "generate" else 0
        if not 0 <= index < len(record.artifacts):  # execute() fails such a shot first
            raise MediaError(f"{dep} has {len(record.artifacts)} take(s) recorded, not take "
                             f"{pick}")
        digest, suffix = record.artifacts[index]
        return self.store.path(digest, suffix)

    def export(self, task: Task, record: Record) -> None:
        """Put the film where the storyboard asked for it, its subtitle files beside it
        (renders/film.srt, renders/film.vtt)."""
        film = self.plan.resolved.storyboard.root / task.assemble_params.path
        (digest, suffix), *rest = record.artifacts
        self._export_if_changed(digest, suffix, film)
        for digest, suffix in rest:  # the cues' .json stays in the store
            if suffix in SIDECARS:
                self._export_if_changed(digest, suffix, film.with_suffix(suffix))
