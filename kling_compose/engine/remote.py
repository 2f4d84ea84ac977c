"""Generation at a hosted provider: upload, submit, poll, download, exactly once.

The provider module builds each httpx.Request and reads each answer; this module sends them,
with retries for transient faults, and keeps the ledger's promise: the task id is committed
before the submission is sent, so a run that dies at any point resumes by polling (or, when
the answer to the submission was lost, by sending the *same* id again, which Runware answers
with `conflictTaskUUID` instead of a second charge).
"""

from __future__ import annotations

import asyncio
import mimetypes
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Awaitable, Callable

import httpx

from ..providers import PROVIDERS
from ..providers.base import Handle, ProviderError, Status, TransientError
from ..settings import Settings
from .retry import with_retries
from .state import Record, State
from .store import Store

INLINE_PREFIX = "inline:"


class RemoteError(Exception):
    """A task failed at a provider (recorded on the task, never a traceback)."""


@dataclass
class Remote:
    client: httpx.AsyncClient
    settings: Settings
    state: State
    store: Store
    sleep: Callable[[float], Awaitable] = asyncio.sleep

    # -- upload ------------------------------------------------------------------------------

    async def upload(self, task, source: Path) -> tuple[list, str]:
        """Store the input; hand on an inline reference where the provider takes the bytes
        in the request, else upload it (not built yet for any provider)."""
        provider = PROVIDERS[task.provider]
        media = task.params.get("media", "image")
        temp = self.store.temp_path(source.suffix or ".bin")
        temp.write_bytes(source.read_bytes())
        suffix = temp.suffix
        digest = self.store.adopt(temp)
        if media in provider.inline_media:
            return [(digest, suffix)], f"{INLINE_PREFIX}{digest}{suffix}"
        if not hasattr(provider, "upload"):
            raise RemoteError(f"{task.provider} takes {media} inputs as URLs only: put the file "
                              "online and give its URL in the storyboard")
        key, base = self.settings.key(task.provider), self.settings.urls[task.provider]
        mime = mimetypes.types_map.get(suffix.lower(), "application/octet-stream")

        async def send(request: httpx.Request) -> httpx.Response:
            return await self.client.send(request)

        async def attempt():
            data = self.store.path(digest, suffix).read_bytes()
            return await provider.upload(send, data, mime, f"{digest[:16]}{suffix}", base, key)

        return [(digest, suffix)], await self.call(attempt, None)

    def reference(self, task, handed_on: str) -> str:
        """What the request carries for an upload's result (a data URI for inline media)."""
        if not handed_on.startswith(INLINE_PREFIX):
            return handed_on
        name = handed_on[len(INLINE_PREFIX):]
        digest, suffix = name[:64], name[64:]
        mime = mimetypes.types_map.get(suffix.lower(), "application/octet-stream")
        return PROVIDERS[task.provider].inline(self.store.path(digest, suffix).read_bytes(), mime)

    # -- generate ----------------------------------------------------------------------------

    async def generate(self, task, request: dict, previous: Record | None):
        """Submit (or resume) one generation, wait for it, download its takes."""
        provider = PROVIDERS[task.provider]
        key = self.settings.key(task.provider)
        base = self.settings.urls[task.provider]
        takes = task.job.shot.takes
        handle = await self.submit(task, provider, request, key, base, previous)
        status = await self.wait(task, provider, handle, key, base, takes)
        if status.state == "failed":
            self.state.rejected(task.cache_key, status.message or "generation failed")
            raise RemoteError(f"{task.provider} reports the generation failed: {status.message}")
        suffix = "." + (task.job.shot.output_format or "mp4")
        artifacts = [(await self.download(r.url, suffix), suffix) for r in status.results]
        costs = [r.cost_usd for r in status.results]
        cost = sum(costs, Decimal(0)) if all(c is not None for c in costs) else task.job.cost_usd
        result = {"task_id": handle.task_id, "urls": [r.url for r in status.results],
                  "seeds": [r.seed for r in status.results]}
        return artifacts, None, result, cost

    async def submit(self, task, provider, request, key, base, previous: Record | None) -> Handle:
        if previous is not None and previous.phase == "submitted" and previous.provider_task_id:
            return Handle(previous.provider_task_id, previous.handle or {})  # resume: poll it
        if previous is not None and previous.phase == "submitting" and previous.provider_task_id:
            if not provider.idempotent_submit:
                raise RemoteError(
                    f"an earlier submission to {task.provider} may have been accepted, but its "
                    "answer was lost; check your account's recent requests, then `run --force "
                    f"{task.shot}` to submit it again")
            task_id = previous.provider_task_id  # the answer was lost: send the same id again
        else:
            task_id = str(uuid.uuid4())
        self.state.submitting(task.cache_key, task_id)

        async def send():
            request_ = provider.submit_request(task.job, request, task_id, base, key)
            try:
                response = await self.client.send(request_)
            except (httpx.ReadError, httpx.ReadTimeout, httpx.WriteError,
                    httpx.RemoteProtocolError) as exc:
                if provider.idempotent_submit:
                    raise
                # it may have arrived: sending again could pay twice
                raise RemoteError(f"the answer of {task.provider} to the submission was lost "
                                  f"({type(exc).__name__}); `run` again tells what to do") from None
            return provider.read_submit(response, task_id)

        handle = await self.call(send, task, reject=True)
        self.state.submitted(task.cache_key, dict(handle.extra))
        return handle

    async def wait(self, task, provider, handle, key, base, takes) -> Status:
        """Poll with growing intervals until done or failed (or the run's patience ends)."""
        delay, waited = self.settings.poll_first_s, 0.0
        while True:
            await self.sleep(delay)
            waited += delay

            async def poll():
                response = await self.client.send(provider.poll_request(handle, base, key))
                return provider.read_status(response, handle, takes)

            status = await self.call(poll, task)
            if status.state == "ready":  # done; the result is fetched separately (fal)
                async def fetch():
                    response = await self.client.send(provider.result_request(handle, base, key))
                    return provider.read_result(response, handle, takes)

                status = await self.call(fetch, task)
            if status.state in ("done", "failed"):
                return status
            if waited >= self.settings.poll_timeout_s:
                raise RemoteError(f"still processing after {waited:.0f} s; run again to keep "
                                  "waiting (it will not be submitted again)")
            delay = min(self.settings.poll_max_s, delay * self.settings.poll_factor)

    async def download(self, url: str, suffix: str) -> str:
        """Stream a result into the store; returns its sha256."""
        async def fetch():
            temp = self.store.temp_path(suffix)
            async with self.client.stream("GET", url) as response:
                if response.status_code >= 500 or response.status_code == 429:
                    raise TransientError(f"download answered HTTP {response.status_code}")
                if response.status_code >= 400:
                    raise ProviderError(f"download of {url} answered HTTP {response.status_code}")
                expected = response.headers.get("content-length")
                with open(temp, "wb") as f:
                    async for chunk in response.aiter_bytes(1 << 20):
                        f.write(chunk)
            if expected is not None and temp.stat().st_size != int(expected):
                raise TransientError(f"download of {url} was cut short")
            return self.store.adopt(temp)

        return await self.call(fetch, None)

    async def call(self, attempt, task, reject: bool = False):
        """`attempt()` with retries; provider refusals and exhausted retries become RemoteError.

        reject=True (a refused submission): the next run submits anew. Otherwise (a refused
        poll or download) the task stays submitted and the next run polls it again: the
        generation exists and may be paid for already."""
        try:
            return await with_retries(attempt, attempts=self.settings.retries, sleep=self.sleep)
        except ProviderError as exc:
            if reject and task is not None:
                self.state.rejected(task.cache_key, str(exc))
            raise RemoteError(str(exc)) from None
        except (TransientError, httpx.TransportError) as exc:
            raise RemoteError(f"gave up after {self.settings.retries} attempts: "
                              f"{_describe(exc)}") from None


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TransportError):
        try:
            return f"{type(exc).__name__} talking to {exc.request.url.host}"
        except RuntimeError:  # no request attached
            return type(exc).__name__
    return str(exc)
