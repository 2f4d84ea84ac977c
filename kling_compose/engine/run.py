"""Execute a Plan: every task starts as soon as its inputs exist.

Each task is one asyncio task that waits for the tasks it needs; a failed task's descendants
are skipped while independent branches go on (dbt's GraphQueue, with futures instead of a
queue). A task whose cache key has a finished result made from the same input contents is not
run again (`state.is_reusable`). Task kinds dispatch through HANDLERS; media work (ffmpeg,
PyAV) runs in threads, so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import time
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol

import httpx

from ..collector import running
from ..errors import UserError
from ..media.ffmpeg import MediaError
from ..plan import LOCAL_PROVIDERS, Plan, Task, substitute
from ..settings import Settings
from .lockfile import read_lockfile, write_lockfile
from ..providers.base import Handle
from .remote import Budget, BudgetExceeded, Clock, KeyRefused, Remote, RemoteError
from .slots import Rank, Slots, heir, rank_tasks
from .decide import NOTHING_TO_PAY, Verdict, decide, unneeded_inputs
from .reuse import in_flight, input_digests
from .state import Record, State, state_path
from .status import record_run
from .store import Store, file_sha256


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What `kling-compose run` was asked to do."""

    concurrency: int = 4
    max_cost_usd: Decimal | None = None
    force: frozenset[str] = frozenset()  # shot ids to generate again
    only: frozenset[str] = frozenset()  # shot ids to run, with what they need


@dataclass(frozen=True, slots=True)
class Outcome:
    task: Task
    # done | cached | restored (from storyboard.lock) | unneeded (an upload or element only
    # restored or cached shots use: not made, see _Runner.unneeded) | failed | skipped
    status: str
    record: Record | None = None
    cost_usd: Decimal = Decimal(0)
    error: str | None = None
    elapsed_s: float = 0.0


# what a shared store raises when it fails (S3 errors are translated to StoreError at its
# boundary; a folder store raises OSError): anything else is a bug, never "the store failed"
def _store_failures() -> tuple[type[BaseException], ...]:
    from .s3store import StoreError

    return (StoreError, OSError)


STORE_FAILURES = _store_failures()


@dataclass(frozen=True, slots=True)
class RunResult:
    outcomes: tuple[Outcome, ...]
    films: tuple[Path, ...] = ()
    warnings: tuple[str, ...] = ()  # e.g. a push to the shared store that failed

    def count(self, status: str, kind: str | None = None) -> int:
        return sum(1 for o in self.outcomes if o.status == status and kind in (None, o.task.kind))

    @property
    def cost_usd(self) -> Decimal:
        return sum((o.cost_usd for o in self.outcomes), Decimal(0))

    @property
    def ok(self) -> bool:
        return not any(o.status in ("failed", "skipped") for o in self.outcomes)


class Reporter(Protocol):
    def started(self, task: Task) -> None: ...
    def finished(self, outcome: Outcome) -> None: ...
    # optional: def progress(self, task: Task, state: str) -> None, where a remote task stands


class _Quiet:
    def started(self, task: Task) -> None:
        pass

    def finished(self, outcome: Outcome) -> None:
        pass


def run_plan(plan: Plan, options: RunOptions = RunOptions(), reporter: Reporter | None = None,
             settings: Settings | None = None, transport: httpx.AsyncBaseTransport | None = None,
             sleep: Callable[[float], Awaitable] | None = None) -> RunResult:
    """Run the plan to completion (the one asyncio.run of the package).

    transport and sleep are for tests (httpx.MockTransport, an instant sleep: time is then
    virtual, advanced by what the run sleeps)."""
    root = plan.resolved.storyboard.root
    settings = settings or Settings()
    shared = _pull_shared(plan, settings)  # the team's paid clips first: then nothing to pay
    statuses = check_request(plan, options, settings)
    with project_lock(root):
        state = State(state_path(root))
        try:
            record_run(plan)
            runner = _Runner(plan, options, state, Store(root / ".kling-compose"),
                             reporter or _Quiet(), settings, transport, sleep)
            runner.shared = shared
            runner.unneeded = unneeded_inputs(plan, statuses, selected_tasks(plan, options),
                                              options.force)
            with running():  # a long run churns cyclic objects (tasks, futures, tracebacks)
                result = asyncio.run(runner.run())
            if state.salvaged:  # the ledger was moved aside as damaged: what it gave back
                result = replace(result, warnings=(state.salvaged, *result.warnings))
            runner.export_shots(result)
            write_lockfile(plan, state)
            if shared is not None:
                problem = _push_shared(shared, root, _generations(plan, state))
                if problem:
                    result = replace(result, warnings=(*result.warnings, problem))
            return result
        except (OSError, sqlite3.OperationalError) as exc:
            raise UserError.single(_unwritable(exc, root), hint="free disk space or fix the "
                                   "folder's permissions, then run again: finished work is "
                                   "kept and the run resumes") from None
        finally:
            state.close()


def _pull_shared(plan: Plan, settings: Settings):
    """Pull every clip storyboard.lock names from the project's shared store (if it has one)
    that the local store lacks; the plan then finds them restorable and pays nothing."""
    from .artifacts import lock_objects, project_store, pull, store_failure

    remote = project_store(plan.resolved.storyboard, settings)
    if remote is None:
        return None
    root = plan.resolved.storyboard.root
    store = Store(root / ".kling-compose")
    try:
        pull(remote, store, lock_objects(root, store))
    except Exception as exc:  # the store's client library has its own exceptions
        if isinstance(exc, UserError):
            raise
        raise store_failure(remote, exc) from None
    return remote


def _push_shared(remote, root: Path, generations: list[Record] = ()) -> str | None:
    """Push every clip the lock names that the shared store lacks (create-only, idempotent),
    and publish each finished generation's result the store lacks (a run killed between
    finishing a claimed shot and publishing it left others waiting). A failure loses nothing
    (the clips are in the local store; the next run or `kling-compose push` sends them): it is
    a warning, not a failed run."""
    from .artifacts import lock_objects, push
    from .claims import publish_missing

    store = Store(root / ".kling-compose")
    try:
        push(remote, store, lock_objects(root, store))
        publish_missing(remote, store, generations)
    except Exception as exc:
        return (f"could not push to the artifact store {remote.url}: {exc}; the clips are "
                "kept here: `kling-compose push` sends them later")
    return None


def _generations(plan: Plan, state: State) -> list[Record]:
    """The finished generations at hosted providers this plan names (local ones are free)."""
    records = (state.get(t.cache_key) for t in plan.tasks.values()
               if t.kind == "generate" and t.provider not in LOCAL_PROVIDERS)
    return [r for r in records if r is not None and r.status == "done"]


def _unwritable(exc: Exception, root: Path) -> str:
    """A full disk, a read-only folder, a file where a folder should be: what could not be
    written."""
    if isinstance(exc, OSError):
        where = exc.filename2 or exc.filename or ""  # a rename's target, not its temp file
        try:
            where = str(Path(where).relative_to(root)) if where else ""
        except ValueError:
            pass
        what = f"could not write {where}: {exc.strerror or exc}" if where else \
            f"could not write: {exc.strerror or exc}"
    else:
        what = f"could not write .kling-compose/state.db: {exc}"
    return what


class project_lock:
    """One run per project at a time: a second concurrent run would race on the same files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / ".kling-compose" / "run.lock"
        self.file: int | None = None

    def __enter__(self):
        from .store import refuse_links

        refuse_links(self.path.parent, self.root)  # run.lock, state.db, objects/ab/, tmp/
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        except OSError as exc:
            # a read-only project: no run can be writing it either. Held read-only (flock
            # needs no write access), or not at all when a run never made run.lock; what
            # needs to write says what it cannot write (gc --dry-run only reads)
            if not _read_only(exc):
                raise UserError.single(_unwritable(exc, self.root), hint="free disk space or "
                                       "fix the folder's permissions, then run again") from None
            try:
                self.file = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                return self
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.file)
            raise UserError.single("another `kling-compose run` is working on this project",
                                   hint="wait for it to finish (or stop it) and run again") from None
        return self

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            os.close(self.file)


def _read_only(exc: OSError) -> bool:
    import errno

    return exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)


def check_request(plan: Plan, options: RunOptions, settings: Settings) -> dict[str, str]:
    """Refuse bad --force/--only names, a missing API key, and an estimate of what would be
    paid above --max-cost, before anything (even the state file) is touched. Returns the
    plan's statuses (state.read_statuses)."""
    from .lockfile import check_lockfile

    check_lockfile(plan.resolved.storyboard.root)
    check_write_paths(plan)
    selected = selected_tasks(plan, options)
    for shot in options.force:
        if f"generate:{shot}" not in plan.tasks:
            raise UserError.single(f"--force: no shot '{shot}' in the storyboard")
    from .decide import read_statuses

    statuses = read_statuses(plan)
    to_pay = [plan.tasks[t] for t in selected
              if plan.tasks[t].kind == "generate" and (
                  statuses.get(t) not in NOTHING_TO_PAY or plan.tasks[t].shot in options.force)]
    for provider in sorted({t.provider for t in to_pay} - LOCAL_PROVIDERS):
        settings.check_provider(provider)  # its key and every host it needs
    limit = options.max_cost_usd
    if limit is None:
        return statuses
    unknown = [t.id for t in to_pay if t.cost_usd is None]
    total = sum((t.cost_usd for t in to_pay if t.cost_usd is not None), Decimal(0))
    if unknown:
        raise UserError.single(f"--max-cost: the price of {', '.join(unknown)} is unknown",
                               hint="run without --max-cost once you accept that")
    if total > limit:
        raise UserError.single(
            f"--max-cost: this run would cost an estimated ${total:.3f}, more than the "
            f"${limit:.3f} allowed", hint="raise --max-cost, or run fewer shots with --only")
    return statuses


def check_write_paths(plan: Plan) -> None:
    """Every place a run writes stays inside the project, symbolic links followed: a
    `renders` or `.kling-compose/objects` that links elsewhere is refused before anything is
    written (outputs: are checked by validate, the default output and shot copies here)."""
    root = plan.resolved.storyboard.root
    real_root = root.resolve()
    places = [root / "renders" / "shots", root / ".kling-compose" / "objects",
              root / ".kling-compose" / "tmp", root / "storyboard.lock"]
    places += [root / t.params["path"] for t in plan.tasks.values() if t.kind == "assemble"]
    for place in places:
        relative = place.relative_to(root)
        for depth in range(1, len(relative.parts) + 1):
            path = root.joinpath(*relative.parts[:depth])
            if not (path.exists() or path.is_symlink()):
                break
            if not path.resolve().is_relative_to(real_root):
                raise UserError.single(
                    f"{path.relative_to(root)} leads outside the project (to "
                    f"{path.resolve()}): kling-compose writes only inside the project",
                    hint=f"remove the link ({path.relative_to(root)}) or make it point inside "
                         "the project folder")


def selected_tasks(plan: Plan, options: RunOptions) -> list[str]:
    """Task ids to run: everything, or what the --only selectors name (dbt's graph operators):
    `SHOT` or `+SHOT` is the shot and what it needs (it cannot run without it); `SHOT+` adds
    everything made from it (the shots chained from it, the films it is in); a scene id
    selects each of its shots, with the same operators."""
    if not options.only:
        return list(plan.order)
    import networkx as nx

    wanted: set[str] = set()
    for selector in options.only:
        for task_id in _selected_shots(plan, selector):
            wanted |= {task_id, *nx.ancestors(plan.graph, task_id)}
            if selector.endswith("+"):
                for below in nx.descendants(plan.graph, task_id):
                    wanted |= {below, *nx.ancestors(plan.graph, below)}
    return [t for t in plan.order if t in wanted]


def _selected_shots(plan: Plan, selector: str) -> list[str]:
    """The generate task ids a selector names (its `+` operators stripped)."""
    from ..errors import did_you_mean

    name = selector.removeprefix("+").removesuffix("+")
    if f"generate:{name}" in plan.tasks:
        return [f"generate:{name}"]
    scenes = {s.id: s for s in plan.resolved.storyboard.scenes}
    if name in scenes:
        return [f"generate:{shot.id}" for shot in scenes[name].shots
                if f"generate:{shot.id}" in plan.tasks]
    names = [t.partition(":")[2] for t in plan.tasks if t.startswith("generate:")]
    raise UserError.single(
        f"--only: no shot or scene '{name}' in the storyboard",
        hint=did_you_mean(name, [*names, *scenes]) or "write SHOT, +SHOT (with what it needs), "
        "SHOT+ (and what is made from it), or a scene id")


@dataclass
class _Runner:
    plan: Plan
    options: RunOptions
    state: State
    store: Store
    reporter: Reporter
    settings: Settings
    transport: httpx.AsyncBaseTransport | None
    sleep: Callable[[float], Awaitable] | None
    remote: Remote | None = None
    previous: dict[str, Record | None] = field(default_factory=dict)
    records: dict[str, Record] = field(default_factory=dict)
    futures: dict[str, asyncio.Future] = field(default_factory=dict)
    # two tasks with one cache key (two shots asking for the very same clip) are one piece of
    # work: the second waits for the first and reuses its result, never paying twice
    key_locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    lock: dict[str, Any] = field(default_factory=dict)  # storyboard.lock, at the start
    shared: Any = None  # the project's shared artifact store, if it names one (claims.py)
    claims: dict[str, dict] = field(default_factory=dict)  # task id -> the claim held there
    store_failed: str | None = None  # the shared store failed mid-run: no more claims
    ranks: dict[str, Rank] = field(default_factory=dict)  # task id -> its place for slots
    unneeded: set[str] = field(default_factory=set)  # unneeded_inputs: made only on demand
    made_late: dict[str, Outcome] = field(default_factory=dict)  # unneeded, then made after all

    async def run(self) -> RunResult:
        self.lock = read_lockfile(self.plan.resolved.storyboard.root)
        self.store.clean_temp()
        _remove_stale_temp_files(self.plan)
        # local rendering is CPU-bound: at most one task per core; each remote provider gets
        # its own --concurrency slots (their queues and rate limits are separate)
        cores = max(1, min(self.options.concurrency, os.cpu_count() or 1))
        limits = {p: Slots(cores) for p in LOCAL_PROVIDERS}
        for task_id in self.plan.order:
            provider = self.plan.tasks[task_id].provider
            limits.setdefault(provider, Slots(self.options.concurrency))
        limits[None] = Slots(cores)  # extract_frame, assemble: local media work
        # contended slots go to the longest remaining path first (engine/slots.py)
        self.ranks = rank_tasks(self.plan)
        selected = selected_tasks(self.plan, self.options)
        loop = asyncio.get_running_loop()
        self.futures = {t: loop.create_future() for t in selected}
        # redirects are followed by Remote.send, which keeps credentials on their own origin
        async with httpx.AsyncClient(transport=self.transport, follow_redirects=False,
                                     timeout=self.settings.request_timeout_s) as client:
            from ..media.ffmpeg import verify_clip

            self.remote = Remote(client, self.settings, self.state, self.store,
                                 Clock(self.sleep), Budget(self.options.max_cost_usd),
                                 verify_clip, notify=getattr(self.reporter, "progress", None))
            if self.shared is not None:
                self.remote.on_submitted = self._announce
            jobs = [asyncio.create_task(self.task(self.plan.tasks[t], limits)) for t in selected]
            outcomes = [self.made_late.get(o.task.id, o) for o in await asyncio.gather(*jobs)]
        films = tuple(Path(o.task.params["path"]) for o in outcomes
                      if o.task.kind == "assemble" and o.status in ("done", "cached"))
        return RunResult(tuple(outcomes), films, tuple(self.remote.warnings))

    async def task(self, task: Task, limits: dict[str | None, Slots]) -> Outcome:
        slots = limits[task.provider]
        try:
            # shielded: cancelling this task (Ctrl-C) must not cancel the upstream task's
            # future, which that task may still be about to resolve
            upstream = [await asyncio.shield(self.futures[d]) for d in task.depends_on]
            if any(o.status in ("failed", "skipped") for o in upstream):
                blocked = next(o.task.id for o in upstream if o.status in ("failed", "skipped"))
                outcome = Outcome(task, "skipped", error=f"needs {blocked}")
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
            if outcome.status in ("done", "cached", "restored", "unneeded"):
                kept_for = heir(self.plan, task.id, self.ranks, self.futures,
                                lambda d: d in self.futures and self.futures[d].done())
            twin = self.key_locks.get(self.plan.tasks[kept_for].cache_key) if kept_for else None
            if twin is not None and twin.locked():  # it would wait for its twin, slot held
                kept_for = None
        finally:
            slots.release(kept_for, self.ranks.get(kept_for))
        return outcome

    async def execute(self, task: Task) -> Outcome:
        outcome = await self._execute(task)
        if task.kind == "generate" and outcome.status in ("done", "cached", "restored"):
            problem = missing_pick(task, outcome.record)
            if problem is not None:  # the clip is kept; what needs the take cannot run
                return replace(outcome, status="failed", error=problem)
        return outcome

    async def _execute(self, task: Task) -> Outcome:
        record = self.state.get(task.cache_key)
        forced = task.kind == "generate" and task.shot in self.options.force
        decision = decide(task, record, self.records, store=self.store, lock=self.lock,
                          forced=forced, repair=True)
        if decision.status is Verdict.CACHED and decision.record is not None:
            record = decision.record
            if task.kind == "generate":
                record = await self._rescored(task, record)
            self.state.used(task.cache_key)  # the task's latest result again (why.py)
            self.records[task.id] = record
            if task.kind == "assemble":
                self.export(task, record)
            return Outcome(task, "cached", record)
        if decision.status is Verdict.RESTORABLE and decision.record is not None:
            restored: Record | None = decision.record
            if decision.fetches and not await self._fetch(task, decision.fetches):
                restored = None  # expired or different bytes: never trusted; made anew
            if restored is not None:
                restored = replace(restored, made_from=dict(task.made_from))
                self.state.restore(restored)
                self.records[task.id] = restored
                return Outcome(task, "restored", restored)
        if task.id in self.unneeded and not in_flight(record) and decision.record is not None:
            # its identity is known from its inputs, which is all a restore or a cache hit
            # downstream compares; the provider's copy is made only if a generation sends it
            self.records[task.id] = decision.record
            return Outcome(task, "unneeded", decision.record)
        if (self.shared is not None and not forced and task.kind == "generate"
                and task.provider not in LOCAL_PROVIDERS):
            outcome = await self._claim_or_wait(task, record)
            if outcome is not None:
                return outcome
        return await self._perform(task, record)

    async def _perform(self, task: Task, record: Record | None, report: bool = True) -> Outcome:
        """Make the task's result now (generate, extract, upload, create, assemble), record
        it, and say how it went. report=False: the progress display already counted the task
        (as unneeded), and its outcome shows in the summary only."""
        self.previous[task.id] = record
        if report:
            self.reporter.started(task)
        started = time.monotonic()
        self.state.start(task.cache_key, task.id, task.kind, shot=task.shot,
                         provider=task.provider, model=task.model, made_from=task.made_from)
        try:
            artifacts, reference, result, cost = await HANDLERS[task.kind](self, task)
        except BudgetExceeded as exc:
            self.state.fail(task.cache_key, str(exc))
            await self._release(task)
            return Outcome(task, "skipped", error=str(exc), elapsed_s=time.monotonic() - started)
        except (MediaError, RemoteError) as exc:
            self.state.fail(task.cache_key, str(exc))
            await self._release(task)
            return Outcome(task, "failed", error=str(exc), elapsed_s=time.monotonic() - started)
        except OSError as exc:  # a full disk, a read-only folder: this task, not the whole run
            message = _unwritable(exc, self.plan.resolved.storyboard.root) + \
                "; fix it and run again (the run resumes)"
            self.state.fail(task.cache_key, message)
            await self._release(task)
            return Outcome(task, "failed", error=message, elapsed_s=time.monotonic() - started)
        self.state.finish(task.cache_key, artifacts=artifacts, reference=reference,
                          inputs=input_digests(task, self.records), result=result, cost_usd=cost)
        if task.kind == "generate":  # after the result is safe: scoring takes a while
            scored = await self._with_continuity(task, artifacts, result)
            if scored is not result:
                self.state.set_result(task.cache_key, scored)
        record = self.records[task.id] = self.state.get(task.cache_key)
        if task.kind == "assemble":
            self.export(task, record)
        if task.id in self.claims:
            await self._publish(task, record)
        return Outcome(task, "done", record, cost or Decimal(0),
                       elapsed_s=time.monotonic() - started)

    async def inputs_made(self, task: Task) -> None:
        """Make the uploads and elements this task sends that were left unneeded (a generation
        whose restore failed after all, an element whose images were not uploaded): once each,
        before its request is built; a failure fails this task."""
        for dep in task.params.get("inputs", {}).values():
            if self.records[dep].status != "planned":
                continue
            async with self.key_locks.setdefault("made:" + dep, asyncio.Lock()):
                if self.records[dep].status != "planned":
                    continue  # another task made it meanwhile
                needed = self.plan.tasks[dep]
                outcome = await self._perform(needed, self.state.get(needed.cache_key),
                                              report=False)
                if outcome.status != "done":
                    raise RemoteError(f"{dep}: {outcome.error}")
                self.made_late[dep] = outcome

    async def _rescored(self, task: Task, record: Record) -> Record:
        """A finished shot whose continuity was never scored (a run stopped between its finish
        and its score, or a lock written before scores existed) is scored now, once."""
        if "continuity" in (record.result or {}):
            return record
        scored = await self._with_continuity(task, record.artifacts, record.result)
        if scored is record.result:
            return record  # not chained, or nothing to score against
        self.state.set_result(task.cache_key, scored)
        return self.state.get(task.cache_key)

    async def _with_continuity(self, task: Task, artifacts, result: dict | None) -> dict | None:
        """A chained shot's result with its continuity: how closely each take's first frame
        (last, for a `last_frame` chain) matches the frame it was seeded from
        (media/continuity.py). A frame that cannot be scored leaves the result as it is."""
        from ..media.continuity import THRESHOLD, score_takes

        shot = task.job.shot
        end, source = next(((e, s) for e, s in (("first", shot.first_frame),
                                                 ("last", shot.last_frame))
                            if s is not None and s.is_chain), (None, None))
        seed = self.records.get(f"frame:{source.value}:{source.frame}") if source else None
        if seed is None or not seed.artifacts or not artifacts:
            return result
        clips = [self.store.path(d, s) for d, s in artifacts]
        try:
            scores = await asyncio.to_thread(score_takes, self.store.path(*seed.artifacts[0]),
                                             clips, end)
        except (MediaError, OSError, ValueError):
            return result
        return {**(result or {}), "continuity": {
            "from": source.value, "seed": source.frame, "frame": end, "scores": scores,
            "threshold": THRESHOLD}}

    async def _claim_or_wait(self, task: Task, record: Record | None) -> Outcome | None:
        """Before paying: another run's published result for this very task (pulled, verified)
        restores it; else claim it in the shared store (None: this run pays, or resumes its
        own submission, and publishes); else another clone holds the claim: follow its
        generation (its recorded provider task) or wait for its result, never paying twice.

        A store that fails (unreachable, refusing) stops claiming for the rest of the run: a
        submission of this clone's own still in flight is resumed, and nothing new is
        submitted without a claim (a teammate could pay for it too)."""
        if self.store_failed is None:
            try:
                return await self._claim_or_wait_in_store(task, record)
            except STORE_FAILURES as exc:  # unreachable or refusing (translated at its boundary)
                self.store_failed = str(exc) or type(exc).__name__
        if in_flight(record):
            self.claims[task.id] = {}  # resume it; the next run publishes
            return None
        return Outcome(task, "failed", error=(
            f"the shared store {self.shared.url} failed during this run ({self.store_failed}); "
            f"shot '{task.shot}' is not submitted without a claim there (a teammate's run "
            "could pay for it too). Finished work is kept and published by the next run: "
            "`run` again once the store answers"))

    async def _published(self, task: Task) -> dict | None:
        """The result another run published for the task; a record that does not parse is
        named once in the run's warnings and ignored."""
        from .claims import BadRecord, published

        try:
            return await asyncio.to_thread(published, self.shared, self.store, task)
        except BadRecord as exc:
            if str(exc) not in self.remote.warnings:
                self.remote.warnings.append(str(exc))
            return None

    async def _claim_or_wait_in_store(self, task: Task, record: Record | None) -> Outcome | None:
        from .claims import claim

        if in_flight(record):  # this clone submitted it: resume, and publish when done
            won, held = await asyncio.to_thread(claim, self.shared, self.store, task)
            self.claims[task.id] = held if won else {}  # {}: publish, never announce/release
            return None
        inputs = input_digests(task, self.records)
        data = await self._published(task)
        if data is not None and data.get("inputs", {}) == inputs:
            return self._adopt_published(task, data, inputs)
        won, holder = await asyncio.to_thread(claim, self.shared, self.store, task)
        if won:
            self.claims[task.id] = holder
            return None
        return await self._wait_for(task, holder, inputs)

    async def _wait_for(self, task: Task, holder: dict, inputs: dict) -> Outcome:
        """Another clone holds the claim: adopt its published result; as soon as it has
        recorded its provider task, follow that generation here (this takes over a claim
        whose owner died, by resuming its task, never by submitting again)."""
        from .claims import recorded_task

        self.reporter_progress(task, "waiting for another run")
        clock = self.remote.clock
        deadline = clock.now() + self.settings.poll_timeout_s
        interval = self.settings.poll_interval_s or 2.0
        unfollowable = False
        while clock.now() < deadline:
            await clock.sleep(interval)
            try:
                data = await self._published(task)
                recorded = None if unfollowable or (
                    data is not None and data.get("inputs", {}) == inputs) else \
                    await asyncio.to_thread(recorded_task, self.shared, task, holder)
            except STORE_FAILURES as exc:  # the store failed while another holds the claim
                self.store_failed = str(exc) or type(exc).__name__
                return Outcome(task, "failed", error=(
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
        return Outcome(task, "failed", error=message)

    async def _follow(self, task: Task, holder: dict, recorded: dict,
                      inputs: dict) -> Outcome | None:
        """Poll the holder's recorded generation with this run's key, download and verify its
        takes, record them (the holder paid: $0 here) and publish them for the others. None
        when it cannot be polled from here (another account's task): the caller watches the
        store instead."""
        from .claims import release

        self.reporter_progress(task, "following another run's generation")
        handle = Handle(recorded["provider_task_id"], recorded.get("handle") or {})
        try:
            status = await self.remote.follow(task, handle.task_id, dict(handle.extra))
            if status.state == "done":
                artifacts, result, cost = await self.remote.collect(task, handle, status)
        except KeyRefused as exc:  # a planted record: never followed, named
            return Outcome(task, "failed", error=(
                f"the task record for shot '{task.shot}' in {self.shared.url} (claimed by "
                f"{holder.get('owner', 'unknown')}) points outside {task.provider}'s hosts: "
                f"{exc}. It is not followed and nothing was paid here; if nobody you know "
                f"wrote it, remove claim-{task.cache_key}.json and its task record from "
                "the store"))
        except (RemoteError, UserError):
            return None
        if status.state != "done":  # it failed at the provider: nothing left in flight
            await asyncio.to_thread(release, self.shared, task, holder)
            why = status.message or status.state
            return Outcome(task, "failed", error=(
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
        await self._publish(task, record)
        return Outcome(task, "restored", record)

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
        return Outcome(task, "restored", record)

    async def _announce(self, task: Task, handle: Handle) -> None:
        """The provider acknowledged a claimed submission: record its task in the store, so a
        waiting run can follow it (and take the claim over if this run dies)."""
        from .claims import announce

        held = self.claims.get(task.id)
        if held is None:
            return
        try:
            await asyncio.to_thread(announce, self.shared, task, held, handle.task_id,
                                    dict(handle.extra))
        except Exception:  # the store's client library has its own exceptions
            pass

    async def _release(self, task: Task) -> None:
        """A claimed generation ended with nothing billable in flight (refused, failed, never
        sent): give up the claim, so a later run may claim it anew. One that may still run at
        the provider (submitting, submitted) keeps it: its task is followed or resumed."""
        from .claims import release

        held = self.claims.pop(task.id, None)
        record = self.state.get(task.cache_key)
        if held is None or (record is not None and record.phase in ("submitting", "submitted")):
            return
        try:
            await asyncio.to_thread(release, self.shared, task, held)
        except Exception:
            pass

    async def _publish(self, task: Task, record: Record) -> None:
        """Push a finished generation's takes and result at once, for runs waiting on it. A
        failure is not this run's: the clips are kept here and pushed after the run."""
        from .claims import publish

        try:
            await asyncio.to_thread(publish, self.shared, self.store, task.cache_key, record)
        except Exception:  # the store's client library has its own exceptions
            pass

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
            if outcome.task.kind != "generate" or \
                    outcome.status not in ("done", "cached", "restored"):
                continue
            digest, suffix = outcome.record.artifacts[outcome.task.job.shot.pick - 1]
            target = root / "renders" / "shots" / f"{outcome.task.shot}{suffix}"
            self._export_if_changed(digest, suffix, target)

    def _export_if_changed(self, digest: str, suffix: str, target: Path) -> None:
        source = self.store.path(digest, suffix)
        same = (target.is_file() and target.stat().st_size == source.stat().st_size
                and file_sha256(target) == digest)
        if not same:
            self.store.export(digest, suffix, target)

    def _present(self, record: Record) -> bool:
        """Every artifact is in the store with its bytes intact (a damaged one is removed)."""
        return all(self.store.verify(digest, suffix) for digest, suffix in record.artifacts)

    def artifact(self, dep: str, pick: int = 1) -> Path:
        record = self.records[dep]
        index = pick - 1 if record.kind == "generate" else 0
        if not 0 <= index < len(record.artifacts):  # execute() fails such a shot first
            raise MediaError(f"{dep} has {len(record.artifacts)} take(s) recorded, not take "
                             f"{pick}")
        digest, suffix = record.artifacts[index]
        return self.store.path(digest, suffix)

    def export(self, task: Task, record: Record) -> None:
        """Put the film where the storyboard asked for it."""
        digest, suffix = record.artifacts[0]
        self._export_if_changed(digest, suffix, self.plan.resolved.storyboard.root / task.params["path"])

    # -- handlers: each returns (artifacts, reference, result, cost) -------------------------

    async def generate(self, task: Task):
        if task.provider in LOCAL_PROVIDERS:
            return await self.generate_preview(task)
        await self.inputs_made(task)
        refs = {p: self.remote.reference(task, self.records[dep].reference)
                for p, dep in task.params.get("inputs", {}).items()}
        request = substitute(task.job.request, refs)
        forced = task.shot in self.options.force  # a new generation, whatever came before
        previous = None if forced else self.previous.get(task.id)
        return await self.remote.generate(task, request, previous)

    async def generate_preview(self, task: Task):
        from ..media.animatic import AnimaticSpec, preview_size, render_animatic

        refs = {p: path for p, path in task.params.get("files", {}).items()}
        picks = task.params.get("picks", {})
        refs.update({p: str(self.artifact(dep, picks.get(dep, 1)))
                     for p, dep in task.params.get("inputs", {}).items()})
        request = substitute(task.job.request, refs)
        notes = []
        for key in ("first_image", "last_image"):
            value = request.get(key)
            if value and value not in refs.values():
                # a URL or asset UUID: the preview renders offline and cannot fetch it
                local = self.store.temp_path(".img") if value[:5].lower() == "data:" else None
                if local is not None:
                    local.write_bytes(_data_uri_bytes(value))
                else:
                    notes.append(f"{key} {value[:60]} not fetched (offline preview)")
                request[key] = str(local) if local else None
            if request.get(key):
                await asyncio.to_thread(_check_image, Path(request[key]))
        width, height = preview_size(request["width"], request["height"],
                                     task.params["short_side"])
        artifacts = []
        takes = request.get("takes", 1)
        for take in range(takes):
            spec = AnimaticSpec(
                duration_s=request["duration"], width=width, height=height,
                first_image=_path(request.get("first_image")),
                last_image=_path(request.get("last_image")), title=request["title"],
                caption=request["prompt"], audio=request["audio"], tone_hz=_tone(task, take),
                band=True, take=take + 1, takes=takes)
            out = self.store.temp_path(".mp4")
            await asyncio.to_thread(render_animatic, spec, out)
            artifacts.append((self.store.adopt(out), ".mp4"))
        result = {"preview": {"width": width, "height": height}, **({"notes": notes} if notes else {})}
        return artifacts, None, result, Decimal(0)

    async def extract_frame(self, task: Task):
        from ..media.frames import extract_frame

        (dep,) = task.depends_on
        out = self.store.temp_path(".png")
        clip = self.artifact(dep, task.params.get("picks", {}).get(dep, 1))
        await asyncio.to_thread(extract_frame, clip, task.params["frame"], out)
        return [(self.store.adopt(out), ".png")], None, None, Decimal(0)

    async def assemble(self, task: Task):
        from ..media.assemble import assemble

        picks = task.params.get("picks", {})
        clips = [self.artifact(f"generate:{s}", picks.get(f"generate:{s}", 1))
                 for s in task.params["sequence"]]
        out = self.store.temp_path(Path(task.params["path"]).suffix or ".mp4")
        info = await asyncio.to_thread(assemble, clips, out, crossfade_s=task.params["crossfade_s"],
                                       workdir=self.store.tmp)
        result = {"duration_s": round(info.video_duration_s, 3)}
        return [(self.store.adopt(out), out.suffix)], None, result, Decimal(0)

    async def upload(self, task: Task):
        if "file" in task.params:
            source = Path(task.params["file"])
        else:
            (dep,) = task.depends_on
            source = self.artifact(dep, task.params.get("picks", {}).get(dep, 1))
        artifacts, reference = await self.remote.upload(task, source)
        return artifacts, reference, None, Decimal(0)

    async def element(self, task: Task):
        """Create an element at its provider; its id is handed on to the generations."""
        await self.inputs_made(task)
        refs = {p: self.remote.reference(task, self.records[dep].reference)
                for p, dep in task.params.get("inputs", {}).items()}
        request = substitute(task.params["request"], refs)
        element_id, cost = await self.remote.create_element(task, request,
                                                            self.previous.get(task.id))
        return [], element_id, {"element_id": element_id}, cost


HANDLERS: dict[str, Callable[[_Runner, Task], Awaitable[Any]]] = {
    "generate": _Runner.generate,
    "extract_frame": _Runner.extract_frame,
    "assemble": _Runner.assemble,
    "upload": _Runner.upload,
    "element": _Runner.element,
}


def missing_pick(task: Task, record: Record | None) -> str | None:
    """A shot whose result has fewer takes than its `pick` (a provider that returned fewer
    clips than asked, a result recorded before its `takes` counted): the located error, with
    the way on; None when the picked take exists."""
    shot = task.job.shot
    have = len(record.artifacts) if record is not None else 0
    if 1 <= shot.pick <= have:
        return None
    where = shot.where("pick")
    last = max(have, 1)
    choose = "use take 1" if last == 1 else f"pick a take between 1 and {last}"
    return (f"{str(where) + ': error: ' if where else ''}pick is {shot.pick} but the result of "
            f"shot '{shot.id}' has {have} take(s)\n  hint: {choose} (`kling-compose pick "
            f"{shot.id} {last}`), or make its {shot.takes} takes again with `kling-compose run "
            f"--force {shot.id}`")


def _remove_stale_temp_files(plan: Plan) -> None:
    """Temp files a killed run left just before a final rename (renders/.tmp-*, the shot
    copies', .storyboard.lock.*): only this project's, and only while it holds the run lock."""
    root = plan.resolved.storyboard.root
    folders = {root, root / "renders", root / "renders" / "shots"}
    folders |= {(root / task.params["path"]).parent for task in plan.tasks.values()
                if task.kind == "assemble"}
    for folder in folders:
        if not folder.is_dir():
            continue
        for stale in [*folder.glob(".tmp-*"), *folder.glob(".storyboard.lock.*")]:
            if stale.is_file() and not stale.is_symlink():
                stale.unlink(missing_ok=True)


def _check_image(path: Path) -> None:
    """A clear error for an image ffmpeg would fail on with an obscure one."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise MediaError(f"cannot read image '{path}': {exc}") from None


def _data_uri_bytes(value: str) -> bytes:
    import base64
    import urllib.parse

    head, _, payload = value.partition(",")
    if head.endswith(";base64"):
        return base64.b64decode(payload)
    return urllib.parse.unquote_to_bytes(payload)


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _tone(task: Task, take: int) -> float:
    """A distinct soft tone per shot (and take), so cuts are audible in the animatic."""
    notes = (220.0, 246.94, 277.18, 293.66, 329.63, 369.99, 415.30)
    return notes[(task.job.shot.index + take) % len(notes)]
