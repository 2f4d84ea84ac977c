"""Generation at a hosted provider: upload, submit, poll, download, exactly once.

The provider module builds each httpx.Request and reads each answer; this module sends them,
with retries for transient faults, and keeps the ledger's promises:

- the id a submission carries is committed *before* it is sent, and the provider's own id the
  moment its answer arrives, so a run that dies at any point resumes by polling the right id;
- a submission whose answer was lost is never sent again blindly: the provider is asked first
  (Runware: `getResponse` for the same taskUUID) and it is re-sent only when the answer proves
  the task does not exist; where a provider cannot be asked, the user is;
- no credential header follows a redirect to another origin;
- every request has an overall deadline (a server that drips a byte at a time cannot hold a
  run forever), and a downloaded clip is verified (it decodes, its duration is the one asked
  for) before it is adopted;
- with `--max-cost`, no submission starts once spent + in flight + its estimate would pass it.

Polling goes through one `PollGroup` per provider: Runware takes many `getResponse` tasks in one
request, so all of a run's Runware tasks are polled together; the cadence starts near the time
this project's earlier generations of the same model took (`expected_time`), or, in a project
that has none yet, early and growing geometrically (`poll_delays`).
"""

from __future__ import annotations

import asyncio
import mimetypes
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Awaitable, Callable, NamedTuple

import httpx

from ..plan import Task, prior_s  # noqa: F401 (re-exported)
from ..project.state import Record, State
from ..project.store import Store
from ..providers import PROVIDERS
from ..providers.base import (
    Handle,
    LostAnswer,
    ProviderError,
    RemoteProvider,
    Status,
    TransientError,
    sent_digest,
)
from ..settings import PROVIDER_ENDPOINTS, Settings
from .budget import Budget, Clock, usable_cost
from .failures import (
    UNRESOLVED,
    BudgetExceeded,
    KeyRefused,
    RemoteError,
    ResultGone,
    _Gone,
    _KeyRefused,
)
from .polling import Expected, PollGroup, _clip_s, expected_duration, expected_time, poll_delays
from .retry import with_retries

INLINE_PREFIX = "inline:"
MAX_REDIRECTS = 5
# headers that carry a credential: never sent to an origin other than the one they were for
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "proxy-authorization", "cookie",
                                "x-goog-api-key", "api-key"})
# transport errors raised before a byte of the request left: sending again cannot pay twice
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
            httpx.UnsupportedProtocol)







class _Ambiguous(Exception):
    """A submission may have reached the provider: not retried (it could pay twice)."""


class Endpoint(NamedTuple):
    provider: RemoteProvider
    key: Any  # the provider's Secret (or pair of them)
    base: str


@dataclass
class Remote:
    client: httpx.AsyncClient
    settings: Settings
    state: State
    store: Store
    clock: Clock = field(default_factory=Clock)
    budget: Budget = field(default_factory=Budget)
    verify: Callable[[Path, float | None], Any] | None = None  # checks a downloaded clip
    groups: dict[str, PollGroup] = field(default_factory=dict)
    # tells people where a task stands: (task, "submitted" | "queued (position 2)" | ...)
    notify: Callable[[object, str], None] | None = None
    # told each acknowledged submission (task, handle): the shared store's claims record it
    on_submitted: Callable[[Task, Handle], Awaitable[None]] | None = None
    warnings: list[str] = field(default_factory=list)  # for the run's summary (RunResult)

    def tell(self, task, state: str) -> None:
        if self.notify is not None and task is not None:
            self.notify(task, state)

    async def announce(self, task, handle: Handle) -> None:
        if self.on_submitted is not None:
            await self.on_submitted(task, handle)

    # -- sending -------------------------------------------------------------------------------

    async def send(self, request: httpx.Request, *, stream: bool = False,
                   deadline_s: float | None = None) -> httpx.Response:
        """Send, following redirects by hand: a credential header never reaches another origin
        (httpx strips only Authorization, and keeps it on an https -> http downgrade)."""
        deadline_s = deadline_s or self.settings.request_timeout_s
        self.check_origin(request)
        try:
            async with asyncio.timeout(deadline_s):
                for _ in range(MAX_REDIRECTS + 1):
                    response = await self.client.send(request, stream=stream)
                    if not response.is_redirect:
                        if not stream:
                            await response.aread()
                        return response
                    if stream:
                        await response.aclose()
                    request = _redirected(request, response)
        except TimeoutError:
            raise httpx.ReadTimeout(f"no complete answer within {deadline_s:g} s",
                                    request=request) from None
        raise TransientError(f"more than {MAX_REDIRECTS} redirects from {request.url.host}")

    def check_origin(self, request: httpx.Request) -> None:
        """A request carrying a credential goes only to a configured provider host (scheme,
        host, port of a base URL in the settings): a URL read from a lock, a ledger or a
        teammate's store record (fal's status_url) can never choose where a key is sent."""
        if not any(name in CREDENTIAL_HEADERS for name in
                   (k.lower() for k in request.headers.keys())):
            return
        origin = _origin(request.url)
        allowed = {_origin(httpx.URL(base)) for base in self.settings.urls.values() if base}
        if origin not in allowed:
            raise _KeyRefused(
                f"refused to send a provider key to {origin[0]}://{origin[1]}:{origin[2]}, "
                "which is not one of the configured provider hosts: the address came from "
                "a saved record (the ledger, storyboard.lock or the shared store), not from "
                "the provider's settings; nothing was sent")

    # -- upload ------------------------------------------------------------------------------

    async def upload(self, task, source: Path) -> tuple[list, str]:
        """Store the input; hand on an inline reference where the provider takes the bytes
        in the request, else upload it through the provider's upload API."""
        provider = PROVIDERS[task.provider]
        media = task.upload_params.media
        temp = self.store.temp_path(source.suffix or ".bin")
        temp.write_bytes(source.read_bytes())
        suffix = temp.suffix
        digest = self.store.adopt(temp)
        if media in provider.inline_media:
            return [(digest, suffix)], f"{INLINE_PREFIX}{digest}{suffix}"
        key = self.settings.key(task.provider)
        mime = mimetypes.types_map.get(suffix.lower(), "application/octet-stream")

        async def attempt():
            data = self.store.path(digest, suffix).read_bytes()
            return await provider.upload(self.send, data, mime, f"{digest[:16]}{suffix}",
                                         self.settings.url, key)

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

    def endpoint(self, name: str | None) -> Endpoint:
        """The provider, its key and its API's base URL, as the settings name them."""
        if name is None:
            raise TypeError("a task without a provider sent to a provider")  # a bug
        return Endpoint(PROVIDERS[name], self.settings.key(name),
                        self.settings.url(PROVIDER_ENDPOINTS[name][0]))

    async def _submitted(self, task: Task, request: dict, previous: Record | None,
                         takes: int, timed: bool = True) -> tuple[Handle, Status]:
        """Submit (or resume) the task and wait until the provider says how it ended; a
        failure to find out counts its estimate as spent (it may still run, and be billed)."""
        provider, key, base = self.endpoint(task.provider)
        handle = await self.submit(task, provider, request, key, base, previous)
        try:
            return handle, await self.wait(task, provider, handle, key, base, takes, timed)
        except RemoteError:
            self.budget.settle(task.id, None)
            raise

    async def generate(self, task, request: dict, previous: Record | None):
        """Submit (or resume) one generation, wait for it, download its takes."""
        # a finished generation whose clips were lost here (the plan said `missing`): fetched
        # again while the provider has it, else made anew in this run, as the plan said
        refetch = previous is not None and previous.status == "done"
        handle, status = await self._submitted(task, request, previous, task.job.shot.takes)
        if refetch and status.state in ("unknown", "unconfirmed"):
            return await self._anew(task, request, handle, "no longer has it")
        if status.state in UNRESOLVED:  # it may exist and be paid for: kept, the user decides
            self.budget.settle(task.id, None)
            raise RemoteError(_unresolved(task, handle, status))
        if status.state != "done":
            self.budget.release(task.id)
            self.state.rejected(task.cache_key, status.message or "generation failed")
            raise RemoteError(_failure(task, status))
        try:
            artifacts, result, cost = await self.collect(task, handle, status)
        except ResultGone:
            if not refetch:
                raise
            return await self._anew(task, request, handle, "no longer serves its clip")
        self.budget.settle(task.id, cost)
        return artifacts, None, result, cost

    async def _anew(self, task, request: dict, handle: Handle, why: str):
        """The clips of a finished, paid generation are gone here and at the provider: the
        shot is generated anew (paid again, as `plan` said of a `missing` shot)."""
        self.budget.release(task.id)  # the old one was settled when it finished
        self.state.rejected(task.cache_key, f"{task.provider} {why}: made anew")
        self.tell(task, f"{task.provider} {why} (task {handle.task_id}): generating anew")
        self.warnings.append(
            f"shot '{_shot(task)}': its clips were missing here and "
            f"{task.provider} {why} (task {handle.task_id}), so it was generated anew")
        return await self.generate(task, request, None)

    async def create_element(self, task, request: dict, previous: Record | None):
        """Create an element at the provider (Kling's element library) exactly once, as a
        generation is submitted and polled: (its id, what it cost)."""
        return await self._create(task, request, previous, "element")

    async def create_voice(self, task, request: dict, previous: Record | None):
        """Make a voice of a sample at the provider (fal's create-voice, Kling's custom
        voices) exactly once, submitted and polled as a generation: (its id, what it cost:
        the provider's report, else the published price)."""
        voice_id, cost = await self._create(task, request, previous, "voice")
        return voice_id, cost if cost is not None else task.cost_usd

    async def _create(self, task, request: dict, previous: Record | None, what: str):
        handle, status = await self._submitted(task, request, previous, 1, timed=False)
        if status.state in UNRESOLVED:
            self.budget.settle(task.id, None)
            raise RemoteError(_unresolved(task, handle, status))
        if status.state != "done" or not status.results:
            self.budget.release(task.id)
            self.state.rejected(task.cache_key, status.message or f"{what} creation failed")
            raise RemoteError(f"{task.provider} did not create {what} "
                              f"'{task.element_params.name}': "
                              f"{status.message or status.state}")
        made = status.results[0]  # an element's or a voice's result is its id
        self.budget.settle(task.id, made.cost_usd if made.cost_usd is not None
                           else task.cost_usd if what == "voice" else None)
        return made.url, made.cost_usd

    async def follow(self, task, task_id: str, extra: dict) -> Status:
        """Wait for a generation another run submitted (its claim's recorded task): polled
        with this run's key, never submitted, never counted against this run's budget."""
        provider, key, base = self.endpoint(task.provider)
        status = await self.wait(task, provider, Handle(task_id, extra), key, base,
                                 task.job.shot.takes, timed=False)
        if status.state in UNRESOLVED:  # not this run's to decide: the store is watched
            raise RemoteError(_unresolved(task, Handle(task_id, extra), status))
        return status

    async def collect(self, task, handle: Handle, status: Status):
        """Download a finished generation's takes: (artifacts, result, cost)."""
        suffix = "." + (task.job.shot.output_format or "mp4")
        expected = expected_duration(task)
        self.tell(task, "downloading")
        gone = _gone_hint(task, handle)
        kept = _fetched(handle, status, self.store)
        artifacts = kept if kept is not None else \
            [(await self.download(r.url, suffix, expected, gone), suffix) for r in status.results]
        costs = [r.cost_usd for r in status.results]
        notes = [r.cost_note for r in status.results if r.cost_note]
        usable = [c for c in costs if usable_cost(c)]
        cost = sum(usable, Decimal(0)) if costs and len(usable) == len(costs) else \
            task.job.cost_usd
        result = {"task_id": handle.task_id, "urls": [r.url for r in status.results],
                  "seeds": [r.seed for r in status.results]}
        if task.job.cost_usd is not None:
            result["estimate_usd"] = str(task.job.cost_usd)
        if notes:
            estimate = (f"the estimate ${task.job.cost_usd:.3f}" if task.job.cost_usd is not None
                        else "no cost")
            result["cost_warning"] = f"{notes[0]}: {estimate} is counted instead"
            shot = _shot(task)
            self.warnings.append(f"shot '{shot}': {result['cost_warning']}")
        return artifacts, result, cost

    async def submit(self, task, provider, request, key, base, previous: Record | None) -> Handle:
        if previous is not None and previous.phase == "submitted" and previous.provider_task_id:
            self.budget.reserve(task.id, task.cost_usd, force=True)  # in flight already
            handle = Handle(previous.provider_task_id, previous.handle or {})  # resume: poll it
            await self.announce(task, handle)
            return handle
        client_id = provider.client_task_id
        task_id = str(uuid.uuid4())
        if previous is not None and previous.phase == "submitting" and previous.provider_task_id:
            # the answer to an earlier submission was lost: was it accepted?
            found = await self.find_lost(task, provider, previous, key, base)
            if found is not None:
                self.budget.reserve(task.id, task.cost_usd, force=True)
                self.state.submitted(task.cache_key, found.task_id, dict(found.extra))
                await self.announce(task, found)
                return found
            task_id = previous.provider_task_id  # proven unknown (Runware): the same id again
        self.budget.reserve(task.id, task.cost_usd)
        self.state.submitting(task.cache_key, task_id, sent=sent_digest(request))
        may_have_arrived = False

        async def send():
            nonlocal may_have_arrived
            if may_have_arrived:  # never the same taskUUID again before asking for it
                if await self.accepted(task, provider, task_id, key, base):
                    return Handle(task_id)
            request_ = provider.submit_request(task.job, request, task_id, base, key)
            try:
                response = await self.send(request_)
            except NOT_SENT:
                raise  # it never left: retried, and never paid for
            except (httpx.TransportError, TransientError) as exc:
                if client_id:  # asked for by the same id before it is sent again
                    may_have_arrived = True
                    raise
                raise _Ambiguous(f"the answer of {task.provider} to the submission was lost "
                                 f"({_describe(exc)})") from None
            may_have_arrived = client_id
            try:
                return provider.read_submit(response, task_id)
            except LostAnswer as exc:
                raise _Ambiguous(str(exc)) from None
            except ProviderError:
                may_have_arrived = False  # refused: nothing runs, nothing is paid
                raise

        try:
            handle = await self.call(send, task, reject=True)
        except _Ambiguous as exc:
            self.budget.settle(task.id, None)  # it may be running: count it as spent
            if provider.lost_answer != "ask":  # the next run can look it up
                raise RemoteError(f"{exc}; `run` again to find out whether it was accepted") \
                    from None
            raise RemoteError(f"{exc}. " + _lost_message(task, task_id, (
                f"{task.provider} offers no way to look it up by our id"), earlier=False)) \
                from None
        except RemoteError:
            if may_have_arrived:  # retries ran out with the task's fate unknown: it stays
                self.budget.settle(task.id, None)  # 'submitting' and the next run asks first
                raise
            self.budget.release(task.id)
            raise
        self.state.submitted(task.cache_key, handle.task_id, dict(handle.extra))
        self.tell(task, "submitted")
        await self.announce(task, handle)
        return handle

    async def accepted(self, task, provider, task_id: str, key, base) -> bool:
        """Whether a provider that takes our id (Runware's taskUUID) knows the task: asked
        with `getResponse` before the same id is ever sent again. A lookup that cannot be
        answered is _Ambiguous: the submission is not repeated on a guess."""
        try:
            status = await self.poll_once(task, provider, Handle(task_id), key, base, 1)
        except RemoteError as exc:
            raise _Ambiguous(f"the answer of {task.provider} to the submission was lost, and "
                             f"asking for task {task_id} failed too ({exc})") from None
        return status.state != "unknown"

    async def find_lost(self, task, provider, previous: Record, key, base) -> Handle | None:
        """After a lost answer: the task's handle if the provider has it, None only when the
        provider proves it does not and takes our id again (Runware); otherwise a RemoteError
        asks the user (sending again could pay twice)."""
        task_id = previous.provider_task_id
        if task_id is None:  # committed before sending: a ledger edited by hand
            raise RemoteError(_lost_message(task, "(none recorded)", "the ledger holds no id "
                                            "for it to look it up by"))
        if provider.lost_answer == "resend":  # Runware: getResponse for the taskUUID
            if await self.accepted(task, provider, task_id, key, base):
                return Handle(task_id)
            return None
        if provider.lost_answer == "lookup":  # Kling: by the id we sent along, each form
            request = task.job.request if task.job is not None else task.element_params.request
            unanswered = None
            for lookup in provider.lookup_requests(task.job, request, task_id, base, key):
                async def ask(lookup=lookup):
                    return provider.read_lookup(await self.send(lookup), task_id)

                try:
                    found = await self.call(ask, None)
                except RemoteError as exc:
                    unanswered = exc  # this form did not answer: the next one may
                    continue
                if found is not None:
                    return found
                unanswered = None  # one form answered: not found
            if unanswered is not None:
                raise RemoteError(f"an earlier submission of shot '{_shot(task)}' to "
                                  f"{task.provider} may have been accepted, but its answer was "
                                  f"lost, and looking it up failed ({unanswered}); nothing is "
                                  "sent again: `run` again to ask again")
            raise RemoteError(_lost_message(task, task_id, (
                f"{task.provider} did not find it under our id {task_id} (external_task_id) by "
                "either documented query; it may still appear")))
        if provider.lost_answer == "request_list":  # fal: its request list, by the body sent
            sent = (previous.handle or {}).get("sent_sha256")

            async def attempt():
                return await provider.find_submission(self.send, task.job, self.settings.url,
                                                      key, previous.submitted_at, sent=sent)

            found = await self.call(attempt, None)
            if found is not None:
                return found
            raise RemoteError(_lost_message(task, task_id, (
                f"{task.provider}'s request list shows no request with exactly this input; it "
                "lists requests by their end time and may hold no input when payload storage is "
                "off, so wait until the request list of your fal dashboard shows it finished")))
        raise RemoteError(_lost_message(task, task_id, (
            f"{task.provider} offers no way to look it up by our id")))

    async def wait(self, task, provider, handle, key, base, takes, timed: bool = True) -> Status:
        """Until done or failed (or the run's patience ends), through the provider's group."""
        group = self.groups.get(task.provider)
        if group is None:
            group = self.groups[task.provider] = PollGroup(self, task.provider, key, base)
        expected = expected_time(self.state, task.provider, task.model, _clip_s(task)) \
            if timed else None
        return await group.wait(task, handle, takes, expected, timed)

    async def poll_once(self, task, provider, handle, key, base, takes) -> Status:
        async def poll():
            response = await self.send(provider.poll_request(handle, base, key))
            return provider.read_status(response, handle, takes)

        status = await self.call(poll, task)
        if status.state == "ready":  # done; the result is fetched separately (fal)
            async def fetch():
                response = await self.send(provider.result_request(handle, base, key))
                return provider.read_result(response, handle, takes)

            status = await self.call(fetch, task)
        return status

    async def download(self, url: str, suffix: str, expected_s: float | None = None,
                       gone: str | None = None) -> str:
        """Stream a result into the store, verified; returns its sha256. `gone` explains a
        result URL that answers 403/404/410 (a provider that keeps results for a while). At
        most `download_cap(expected_s)` bytes are taken; a partial file never stays behind."""
        limit = download_cap(expected_s)

        async def fetch():
            temp = self.store.temp_path(suffix)
            try:
                try:
                    response = await self.send(httpx.Request("GET", url), stream=True,
                                               deadline_s=self.settings.download_timeout_s)
                    try:
                        async with asyncio.timeout(self.settings.download_timeout_s):
                            await _receive(response, url, temp, gone, limit)
                    finally:
                        await response.aclose()
                except TimeoutError:
                    raise TransientError(f"download of {url} took longer than "
                                         f"{self.settings.download_timeout_s:g} s") from None
                if self.verify is not None:
                    from ..media.ffmpeg import MediaError

                    try:
                        await asyncio.to_thread(self.verify, temp, expected_s)
                    except MediaError as exc:
                        raise TransientError(f"download of {url} is not a whole clip: {exc}") \
                            from None
                return self.store.adopt(temp)
            finally:  # adopted (moved into the store) or failed: nothing left in tmp/
                temp.unlink(missing_ok=True)

        return await self.call(fetch, None)

    async def call(self, attempt, task, reject: bool = False):
        """`attempt()` with retries; provider refusals and exhausted retries become RemoteError.

        reject=True (a refused submission): the next run submits anew. Otherwise (a refused
        poll or download) the task stays submitted and the next run polls it again: the
        generation exists and may be paid for already."""
        try:
            return await with_retries(attempt, attempts=self.settings.retries,
                                      sleep=self.clock.sleep)
        except ProviderError as exc:
            if reject and task is not None:
                self.state.rejected(task.cache_key, str(exc))
            raise getattr(exc, "remote_error", RemoteError)(str(exc)) from None
        except httpx.TransportError as exc:
            raise RemoteError(_unreachable(exc, self.settings)) from None
        except TransientError as exc:
            raise RemoteError(f"gave up after {self.settings.retries} attempts: "
                              f"{_describe(exc)}; finished work is kept: `run` again later "
                              "to go on") from None


# The largest download taken for a result: a clip of S seconds is expected to be at most
# S x DOWNLOAD_BYTES_PER_S (20 MB/s = 160 Mbit/s, eight times a 4K clip's 20 Mbit/s), and never
# more than DOWNLOAD_MAX_BYTES; a result URL that streams on past it (a broken or hostile
# server: 9.7 GB in one run before this bound) is refused, not retried.
DOWNLOAD_BYTES_PER_S = 20 * 1024 * 1024
DOWNLOAD_MIN_BYTES = 256 * 1024 * 1024  # a clip whose length the source decides (an edit)
DOWNLOAD_MAX_BYTES = 2 * 1024 * 1024 * 1024


def download_cap(expected_s: float | None) -> int:
    """Bytes a download may take: S x DOWNLOAD_BYTES_PER_S, at least DOWNLOAD_MIN_BYTES, at
    most DOWNLOAD_MAX_BYTES."""
    if expected_s is None or expected_s <= 0:
        return DOWNLOAD_MIN_BYTES
    return int(min(DOWNLOAD_MAX_BYTES, max(DOWNLOAD_MIN_BYTES, expected_s * DOWNLOAD_BYTES_PER_S)))


async def _receive(response: httpx.Response, url: str, temp: Path,
                   gone: str | None = None, limit: int = DOWNLOAD_MAX_BYTES) -> None:
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise TransientError(f"download answered HTTP {response.status_code}")
    if response.status_code in (403, 404, 410):
        raise _Gone(f"download of {url} answered HTTP {response.status_code}"
                    + (f": {gone}" if gone else ""))
    if response.status_code >= 400:
        raise ProviderError(f"download of {url} answered HTTP {response.status_code}")
    expected = response.headers.get("content-length")
    too_big = ProviderError(f"the result at {url} is larger than {limit >> 20} MiB, more than "
                            "any clip it should hold: not downloaded (the generation is kept; "
                            "`run` again asks the provider for it again)")
    if expected is not None and expected.isdigit() and int(expected) > limit:
        raise too_big
    received = 0
    with open(temp, "wb") as f:
        try:
            async for chunk in response.aiter_bytes(1 << 20):
                received += len(chunk)
                if received > limit:
                    raise too_big
                f.write(chunk)
        except httpx.TransportError as exc:  # the server stopped sending: not unreachable
            of = f" of {expected}" if expected and expected.isdigit() else ""
            got = max(received, response.num_bytes_downloaded)
            raise TransientError(f"the download of {url} was cut after {got}{of} bytes "
                                 f"({type(exc).__name__})") from None
    if expected is not None and expected.isdigit() and received != int(expected):
        raise TransientError(f"the download of {url} was cut after {received} of {expected} "
                             "bytes")


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port made explicit."""
    port = url.port or {"https": 443, "http": 80}.get(url.scheme)
    return url.scheme, url.host, port


def _redirected(request: httpx.Request, response: httpx.Response) -> httpx.Request:
    """The request a redirect asks for; credentials only to the same origin (scheme, host,
    port), and never after a downgrade to plain http."""
    url = request.url.join(response.headers.get("location", ""))
    method, content = request.method, request.content
    if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
        method, content = ("HEAD" if method == "HEAD" else "GET"), b""
    drop = {"host", "content-length", "transfer-encoding"}
    if method != request.method:
        drop |= {"content-type"}
    if (url.scheme, url.host, url.port) != (request.url.scheme, request.url.host,
                                            request.url.port):
        drop |= CREDENTIAL_HEADERS
    headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in drop]
    # extensions travel on (httpx keeps them too): a refusal after a redirect still names the
    # shot's file:line (kling's `where`)
    return httpx.Request(method, url, headers=headers, content=content or None,
                         extensions=dict(request.extensions))


def _failure(task, status: Status) -> str:
    return f"{task.provider} reports the generation failed: {status.message}"


def _unresolved(task, handle: Handle, status: Status) -> str:
    """Why a submitted generation is neither done nor failed, and what the user can do: it
    stays submitted (the next run asks again); it is never sent again by itself."""
    provider = PROVIDERS[task.provider]
    shot = _shot(task)
    if status.state == "unconfirmed":
        grace = provider.unconfirmed_grace_s
        why = (f"{task.provider} accepted task {handle.task_id} but has not shown it for "
               f"{grace:.0f} s ({status.message or 'no record yet'})")
    elif status.state == "invalid":
        why = (f"{task.provider} answered task {handle.task_id} with a malformed result "
               f"({status.message}); the generation may be finished and paid for")
    else:
        why = (f"{task.provider} says it does not know task {handle.task_id}"
               + (f" ({status.message})" if status.message and status.message != handle.task_id
                  else ""))
    if task.kind != "generate":  # a voice or an element: no clip to adopt, its id to force
        return (f"{why}: it is kept, never submitted again by itself; `run` again later asks "
                f"again; if your {task.provider} dashboard shows no such task, `run --force "
                f"{task.id}` makes the {task.kind} anew (that pays again)")
    return (f"{why}: it is kept, never submitted again by itself; `run` again later asks "
            f"again; if your {task.provider} dashboard shows the clip, `kling-compose adopt "
            f"{shot} {handle.task_id}` takes it; if it shows no such task, `run --force {shot}` "
            "submits it anew (that pays again)")


def _shot(task) -> str:
    """The shot a task is for (an element task has none: its id)."""
    return getattr(task, "shot", None) or task.id


def _fetched(handle: Handle, status: Status, store: Store) -> list | None:
    """The takes `kling-compose adopt` already downloaded and verified for this task (still in
    the store, one per result): not fetched again, which also outlives an expired result URL."""
    fetched = handle.extra.get("fetched")
    if not isinstance(fetched, list) or len(fetched) != len(status.results):
        return None
    takes = [(str(d), str(s)) for d, s in fetched]
    return takes if all(store.path(d, s).is_file() for d, s in takes) else None


def _gone_hint(task, handle: Handle) -> str | None:
    """What a dead result URL means at a provider that keeps results for a limited time."""
    ttl = PROVIDERS[task.provider].result_ttl_s
    if not ttl:
        return None
    shot = _shot(task)
    return (f"{task.provider} keeps a finished result for about {ttl / 3600:g} h, and task "
            f"{handle.task_id}'s is gone; the clip cannot be fetched any more. The shot stays "
            f"submitted (nothing is paid again by itself): `run --force {shot}` generates it "
            "anew, which pays again")


def _lost_message(task, task_id: str, why: str, earlier: bool = True) -> str:
    shot = _shot(task)
    which = "an earlier submission" if earlier else "the submission"
    if task.kind != "generate":  # a voice or an element: no clip to adopt, its id to force
        return (f"{which} of {task.kind} '{task.id}' to {task.provider} may have been "
                f"accepted, but its answer was lost, and {why}. Nothing is sent again by "
                "itself: `run` again later looks for it again; if your "
                f"{task.provider} dashboard shows no such request, `run --force {task.id}` "
                "makes it anew (if it was accepted after all, that pays twice)")
    return (f"{which} of shot '{shot}' to {task.provider} may have been accepted, "
            f"but its answer was lost, and {why}. Nothing is sent again by itself: if your "
            f"{task.provider} dashboard shows the task, `kling-compose adopt {shot} TASK_ID` "
            f"takes its clip; if it shows none, `run --force {shot}` submits it anew (if it "
            "was accepted after all, that pays twice)")


def _unreachable(exc: httpx.TransportError, settings: Settings) -> str:
    """A host that could not be reached: which URL, the setting that names that host (when
    it is one of ours, not a result URL) and that the run resumes."""
    from ..settings import url_variable

    try:
        url = exc.request.url
    except RuntimeError:
        return f"gave up after {settings.retries} attempts: {type(exc).__name__}"
    where = f"{url.scheme}://{url.netloc.decode()}"
    endpoint = next((name for name, base in settings.urls.items()
                     if base and str(url).startswith(base.rstrip("/"))), None)
    setting = (f"; if that host is wrong, set {url_variable(endpoint)}" if endpoint else "")
    return (f"cannot reach {where} ({type(exc).__name__}, {settings.retries} attempts): check "
            f"the network{setting}; finished work is kept, and `run` again resumes (what was "
            "submitted is polled, not paid again)")


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TransportError):
        try:
            return f"{type(exc).__name__} talking to {exc.request.url.host}"
        except RuntimeError:  # no request attached
            return type(exc).__name__
    return str(exc)


# the names the engine and its tests import from here, wherever they now live
__all__ = ["UNRESOLVED", "Budget", "BudgetExceeded", "Clock", "Endpoint", "Expected",
           "KeyRefused", "PollGroup", "Remote", "RemoteError", "ResultGone", "download_cap",
           "expected_duration", "expected_time", "poll_delays", "prior_s", "usable_cost"]
