"""`kling-compose adopt SHOT TASK_ID`: a generation the provider made, taken as the shot's result.

When a submission's fate is unknown (its answer was lost and the provider offers no lookup by
our id, or it says it does not know the task) a run never sends it again by itself: the user
looks in the provider's dashboard. A task found there is adopted here: it is polled with the
project's key, its clip downloaded and verified (it decodes, it lasts what the shot asks for),
and recorded in the ledger as the shot's submitted generation with the downloaded takes, so
the next `run` collects it without sending anything and without downloading it again. Where
the provider's answer says what the task was made from (kie's `param`), a task that does not
match the shot's request is refused. Nothing is ever submitted here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

import httpx

from ..engine.remote import UNRESOLVED, Budget, Clock, Remote, RemoteError
from ..errors import UserError
from ..http import async_client
from ..paths import ProjectPaths
from ..project.state import State, state_path
from ..project.store import Store
from ..providers import PROVIDERS
from ..providers.base import PLACEHOLDER_PREFIX, Handle
from ..settings import PROVIDER_ENDPOINTS, Settings


@dataclass(frozen=True, slots=True)
class Adopted:
    shot: str
    task_id: str
    state: str  # "done" (downloaded and verified) | "processing" (the next run waits for it)
    takes: int = 0
    replaced: str | None = None  # the provider task the ledger was waiting for before


def adopt(plan, shot: str, task_id: str, settings: Settings,
          transport: httpx.AsyncBaseTransport | None = None,
          sleep: Callable[[float], Awaitable] | None = None) -> Adopted:
    """Adopt provider task `task_id` as the generation of `shot` in `plan`; UserError when it
    cannot be (unknown shot, a free provider, a failed, unknown or different task)."""
    from ..engine.run import project_lock

    task = _generation(plan, shot)
    task_id = task_id.strip()
    if not task_id or len(task_id) > 200 or not task_id.isprintable():
        raise UserError.single(f"adopt: '{task_id[:40]}' is not a task id",
                               hint="copy the id from the provider's dashboard")
    root = plan.resolved.storyboard.root
    with project_lock(root):
        state = State(state_path(root))
        try:
            return asyncio.run(_adopt(task, task_id, settings, state,
                                      Store(ProjectPaths(root).state), transport, sleep))
        finally:
            state.close()


def _generation(plan, shot: str):
    from ..providers import LOCAL_PROVIDERS

    found = [t for t in plan.tasks.values() if t.kind == "generate" and t.shot == shot]
    if not found:
        from ..errors import did_you_mean

        shots = sorted({t.shot for t in plan.tasks.values() if t.kind == "generate"})
        raise UserError.single(f"adopt: no shot '{shot}' in the storyboard",
                               hint=did_you_mean(shot, shots) or "give a shot id the plan lists")
    task = found[0]
    if task.provider in LOCAL_PROVIDERS:
        raise UserError.single(
            f"adopt: shot '{shot}' is made by the {task.provider} provider, which has no tasks "
            "to adopt", hint="pass the provider the task ran on, e.g. --provider kie")
    return task


async def _adopt(task, task_id: str, settings: Settings, state: State, store: Store,
                 transport, sleep) -> Adopted:
    from ..media.ffmpeg import verify_clip

    provider = PROVIDERS[task.provider]
    record = state.get(task.cache_key)
    if record is not None and record.status == "done":
        raise UserError.single(
            f"adopt: shot '{task.shot}' already has a result for what it asks now (task "
            f"{record.provider_task_id or '-'}); nothing to adopt",
            hint="`kling-compose plan` shows it cached")
    key = settings.key(task.provider)
    base = settings.url(PROVIDER_ENDPOINTS[task.provider][0])
    handle = _handle(provider, task, task_id, settings)
    async with async_client(timeout_s=settings.request_timeout_s, transport=transport) as client:
        remote = Remote(client, settings, state, store, Clock(sleep), Budget(), verify_clip)
        try:
            status = await remote.poll_once(task, provider, handle, key, base,
                                            task.job.shot.takes)
        except RemoteError as exc:
            raise UserError.single(f"adopt: asking {task.provider} for task {task_id} failed: "
                                   f"{exc}", hint="check the id and the key") from None
        _judge(task, task_id, status)
        fetched: list[list[str]] = []
        if status.state == "done":
            try:
                artifacts, _, _ = await remote.collect(task, handle, status)
            except RemoteError as exc:
                raise UserError.single(
                    f"adopt: task {task_id}'s clip could not be taken: {exc}",
                    hint="nothing was recorded; `adopt` again once it can be fetched") from None
            fetched = [list(a) for a in artifacts]
    replaced = None
    if record is not None and record.phase in ("submitting", "submitted") and \
            record.provider_task_id != task_id:
        replaced = record.provider_task_id
    state.start(task.cache_key, task.id, task.kind, shot=task.shot, provider=task.provider,
                model=task.model, made_from=task.made_from)
    extra: dict[str, Any] = {**handle.extra, "adopted": True}
    if fetched:
        extra["fetched"] = fetched
    state.submitted(task.cache_key, handle.task_id, extra)
    return Adopted(task.shot, task_id, "done" if fetched else "processing", len(fetched),
                   replaced)


def _handle(provider, task, task_id: str, settings: Settings) -> Handle:
    """What polls the task: the provider rebuilds what its poll needs from the id alone
    (fal: the queue URLs of the endpoint; kling: the endpoint of the request)."""
    return provider.adopt_handle(task.job, task.job.request, task_id, settings.url)


def _judge(task, task_id: str, status) -> None:
    """A task that can be adopted is done or still processing, and matches the shot."""
    where = f"{task.provider} task {task_id}"
    if status.state == "failed":
        raise UserError.single(f"adopt: {where} failed at the provider: {status.message}",
                               hint="nothing to adopt; `run` generates the shot anew")
    if status.state in UNRESOLVED:
        what = {"unknown": "does not know it", "unconfirmed": "does not show it (yet)",
                "invalid": f"answered it malformed ({status.message})"}[status.state]
        raise UserError.single(f"adopt: {task.provider} {what}: {task_id}",
                               hint="check the id in the provider's dashboard (and that the "
                               "key is the account's that made it)")
    given = getattr(status, "request", None)
    if given is not None:
        mismatch = _difference(task.job.request, given)
        if mismatch is not None:
            raise UserError.single(
                f"adopt: {where} was not made from shot '{task.shot}''s request: {mismatch}",
                hint="adopt the task made for this shot (its prompt and settings), or `run` "
                "to generate it")


def _difference(ours: Any, given: Any, path: str = "") -> str | None:
    """The first field where the provider's record of a request differs from the shot's
    (an input placeholder matches any value; fields only the provider adds are ignored)."""
    if isinstance(ours, str) and ours.startswith(PLACEHOLDER_PREFIX):
        return None
    if isinstance(ours, Mapping):
        if not isinstance(given, Mapping):
            return f"{path or 'the request'} is not an object there"
        for name, value in ours.items():
            here = f"{path}.{name}" if path else str(name)
            if name not in given:
                return f"{here} is missing there"
            found = _difference(value, given[name], here)
            if found is not None:
                return found
        return None
    if isinstance(ours, (list, tuple)):
        if not isinstance(given, (list, tuple)) or len(given) != len(ours):
            return f"{path} differs"
        for index, (a, b) in enumerate(zip(ours, given)):
            found = _difference(a, b, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    if ours != given and str(ours) != str(given):
        return f"{path} is {given!r:.60} there, {ours!r:.60} here"
    return None
