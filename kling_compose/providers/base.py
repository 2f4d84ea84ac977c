"""What every provider module declares, and the Job the compiler makes of each shot.

A provider module is pure: a `MODELS` mapping of capability data, one `SPEC` (a frozen
`ProviderSpec`: name, key variables, hosts, models, `Capabilities`) and one class deriving from
`Declared` that builds request bodies, estimates costs and reads answers: the two Protocols
below, `Provider` (compile time) and `RemoteProvider` (run time). It never sends anything by
itself; the engine owns the HTTP client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Awaitable,
    Callable,
    Literal,
    Mapping,
    Protocol,
    Sequence,
    TypeAlias,
    get_args,
    runtime_checkable,
)

from ..errors import Diagnostic
from ..model import EMPTY, Element, FrameSource, Prompt, ResolvedShot

if TYPE_CHECKING:
    import httpx

PLACEHOLDER_PREFIX = "kc-input:"


@dataclass(frozen=True, slots=True)
class InputRef:
    """An input of a request that is known only at run time (a local file or a chained frame).

    The request holds `placeholder` where the provider-ready reference (URL, UUID, data URI,
    or a local path for the preview provider) goes; the engine substitutes it before sending.

    key is stable across runs: "file:<path relative to the project>", "frame:<shot>:<first|last>"
    or "clip:<shot>".
    """

    key: str
    source: FrameSource
    media: str  # "image" | "video" | "audio"

    @property
    def placeholder(self) -> str:
        return PLACEHOLDER_PREFIX + self.key

    @property
    def file(self) -> Path:
        """The local file of a "file:" input (its source's absolute path, set by validate)."""
        path = self.source.path
        if path is None:
            raise TypeError(f"input {self.key} has no local file")
        return path


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """The documented capabilities and prices of one model at one provider (data, not ifs).

    Each provider module comments every value with the seed page it came from.
    """

    alias: str  # the storyboard name, e.g. "kling-3-pro"
    model_id: str  # the provider's id, e.g. "klingai:kling-video@3-pro"
    source: str  # the seed page or document the limits come from
    durations_s: tuple[int, int] = (3, 15)
    prompt_chars: tuple[int, int] = (2, 2500)
    sizes: tuple[tuple[int, int], ...] | None = None  # allowed width x height; None: any
    aspects: tuple[str, ...] | None = None  # allowed aspect ratios; None: any
    frame_images: tuple[int, int] = (1, 2)
    max_elements: int = 3
    max_element_images: int = 3  # extra angles besides the frontal image
    takes: tuple[int, int] = (1, 20)
    quality: tuple[int, int] | None = (20, 99)
    cfg_scale: tuple[float, float] | None = None  # None: the model has no cfg_scale
    multi_prompt_segments: int = 6
    segment_s: tuple[int, int] = (1, 15)  # each multi_prompt segment's duration
    # storyboard fields the model accepts; a shot that sets another one is a located error
    supports: frozenset[str] = frozenset()
    # pairs of storyboard fields that must not be combined, with the rule's text
    excludes: tuple[tuple[str, str, str], ...] = ()
    # the output resolutions the model offers ("720p", "1080p", "4k"), the first its default: a
    # tier has one (kling-3-std renders 720p), Kling 4.0 two; () unknown (a shot's `resolution`
    # is then refused). The preview renders a tier's rehearsal no larger (providers/preview.py)
    resolutions: tuple[str, ...] = ()
    max_keyframes: int = 0  # middle keyframes between the first and last frame (Kling 4.0)
    # USD per second of output, keyed "silent" | "audio" | "video_input"; a missing key is unknown
    prices: Mapping[str, Decimal] = field(default_factory=lambda: EMPTY)


@dataclass(frozen=True, slots=True)
class Job:
    """One shot compiled for one provider: the exact request body and what it will cost."""

    shot: ResolvedShot
    provider: str
    model: ModelSpec
    request: Mapping[str, Any]  # exact JSON body, placeholders for run-time inputs, no taskUUID
    inputs: tuple[InputRef, ...] = ()
    cost_usd: Decimal | None = None  # None: the price is unknown (the plan says so)
    cost_note: str | None = None  # why the cost is unknown or approximate
    warnings: tuple[Diagnostic, ...] = field(default=())


# -- what a provider is: one frozen spec per provider ------------------------------------------

# How a submission whose answer was lost is recovered:
#   "resend": the client picks the task id (Runware's taskUUID): asked for, and sent again
#       with the same id only when the provider proves it does not know it;
#   "lookup": looked up by the id sent along (Kling's external_task_id), `lookup_requests`;
#   "request_list": found in the provider's list of recent requests by the body sent
#       (fal), `find_submission`;
#   "ask": no way to look it up: the user is asked (and pointed at `kling-compose adopt`).
LostAnswerRecovery = Literal["resend", "lookup", "request_list", "ask"]
LOST_ANSWER_RECOVERY: frozenset[str] = frozenset(get_args(LostAnswerRecovery))


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider can do and how it behaves at run time, with the defaults of a hosted
    provider that has none of it. The engine, `plan` and `doctor` read these (through the
    provider's read-only properties of the same names, for now), never probe with
    getattr/hasattr (a missing attribute was a traceback on a lost answer, issue 23)."""

    # runs in-process (the preview): reads local files itself, needs no key, host or upload
    local: bool = False
    # takes local files and chained frames or clips (uploaded, inlined, or read in-process);
    # False: URLs only (kling-v3-task), so `init` writes it a storyboard of prompts alone and
    # no assets, and its `check` refuses a local file or a chain (`rules.check_source_kinds`)
    local_inputs: bool = True
    # media kinds the API takes inline in the request (data URI / base64): never uploaded
    inline_media: frozenset[str] = frozenset()
    lost_answer: LostAnswerRecovery = "ask"
    batch_poll: bool = False  # one poll request carries many tasks (`read_statuses`)
    # a finished task is `ready` and its result fetched by a request of its own
    # (`result_request`, `read_result`: fal's response URL)
    result_fetch: bool = False
    creates_elements: bool = False  # elements are made before the generation that names them
    # a voice is made of a sample once (`voice_request`, the `voice` task kind) and named by
    # its id in the generations whose dialogue it speaks (fal's create-voice, Kling's
    # custom voices); False: a sample travels as it is, or not at all (providers/dialogue.py)
    creates_voices: bool = False
    # how many voices one generation binds at most (fal, kling: 2); 0: none can be bound,
    # and the lines go into the prompt alone
    voices_per_task: int = 0
    upload_ttl_s: float | None = None  # how long an upload's URL lives; None: not limited
    result_ttl_s: float | None = None  # how long a finished result's URL lives (messages)
    unconfirmed_grace_s: float = 0.0  # an `unconfirmed` task is polled this long, then asked
    signs_tokens: bool = False  # doctor compares this computer's clock with the provider's

    def __post_init__(self) -> None:
        if self.lost_answer not in LOST_ANSWER_RECOVERY:
            raise ValueError(f"lost_answer {self.lost_answer!r} is not one of "
                             f"{sorted(LOST_ANSWER_RECOVERY)}")
        if self.voices_per_task < 0 or (self.creates_voices and not self.voices_per_task):
            raise ValueError(f"voices_per_task {self.voices_per_task!r}: a provider that "
                             "creates voices binds at least one per task")
        for name in ("upload_ttl_s", "result_ttl_s", "unconfirmed_grace_s"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, not {value!r}")


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """Everything a provider declares about itself: its name, its credentials and hosts, its
    models and its capabilities. `settings.py` (key variables, endpoints, names), `--help`,
    `doctor`, `plan` and the engine read it; each provider module declares one `SPEC`."""

    name: str  # the name a storyboard and --provider use
    # the environment variables holding its key (every one required: Kling signs its tokens
    # with an access key and a secret key); the first names the key in messages
    key_variables: tuple[str, ...] = ()
    # (endpoint name, default base URL) of each host it talks to, its API first; None: there is
    # no public default (the user names the host, KLING_COMPOSE_<ENDPOINT>_URL). Each real host
    # has its own entry, so that a request sent to the wrong host fails in the simulator too
    endpoints: tuple[tuple[str, str | None], ...] = ()
    capabilities: Capabilities = Capabilities()
    # the endpoint of a free authenticated call that tests the key (`key_check_request`,
    # `read_key_check`); None: no such call is documented
    key_check_endpoint: str | None = None
    models: Mapping[str, ModelSpec] = field(default_factory=lambda: EMPTY)

    def __post_init__(self) -> None:
        names = [name for name, _ in self.endpoints]
        if self.capabilities.local and (self.key_variables or self.endpoints):
            raise ValueError(f"{self.name}: a local provider has no key and no host")
        if not self.capabilities.local and not (self.key_variables and self.endpoints):
            raise ValueError(f"{self.name}: a hosted provider names its key variables and hosts")
        if self.key_check_endpoint is not None and self.key_check_endpoint not in names:
            raise ValueError(f"{self.name}: key_check_endpoint {self.key_check_endpoint!r} is "
                             f"not one of its endpoints {names}")


# What the run-time methods take: `key` is the provider's credential as `Settings.key` gives
# it (a `settings.Secret`; a `settings.KeyPair` for a provider with several key variables);
# `send` sends one request through the engine's client (redirects, deadlines, retries are the
# engine's); `url(endpoint)` is the base URL of one of the provider's endpoints.
Credential: TypeAlias = Any
Send: TypeAlias = Callable[["httpx.Request"], Awaitable["httpx.Response"]]
UrlOf: TypeAlias = Callable[[str], str]
Ref: TypeAlias = Callable[[FrameSource, str], str]


@runtime_checkable
class Provider(Protocol):
    """The compile-time half of a provider: what `compiler.py` and `plan.py` call."""

    @property
    def spec(self) -> ProviderSpec: ...

    @property
    def name(self) -> str: ...

    @property
    def models(self) -> Mapping[str, ModelSpec]: ...

    @property
    def inline_media(self) -> frozenset[str]:
        """Media kinds the API accepts inline as data URI / base64."""

    @property
    def creates_elements(self) -> bool: ...

    @property
    def creates_voices(self) -> bool: ...

    @property
    def voices_per_task(self) -> int: ...

    def check(self, shot: ResolvedShot, spec: ModelSpec) -> list[Diagnostic]:
        """Rules specific to this provider beyond providers/rules.py's generic ModelSpec checks."""

    def prompt_text(self, shot: ResolvedShot, prompt: Prompt) -> str:
        """The prompt as sent, element references in the provider's syntax (limits measure it)."""

    def payload(self, shot: ResolvedShot, spec: ModelSpec, ref: Ref) -> dict[str, Any]:
        """The request body; `ref(source, media)` gives the string to send for an input."""

    def cost(self, shot: ResolvedShot, spec: ModelSpec, payload: Mapping[str, Any]) -> Decimal | None:
        """Estimated USD cost of the request, or None when the price is unknown."""

    def cost_note(self, shot: ResolvedShot, spec: ModelSpec, payload: Mapping[str, Any]) -> str | None:
        """Why the cost is unknown or approximate, for the plan."""

    def route(self, spec: ModelSpec, request: Mapping[str, Any]) -> str:
        """Where a request goes, in the provider's own words: the endpoint or the model id
        (and tier) it is billed as; shown beside the body by `plan --requests` and `--json`."""

    def element_request(self, element: Element, ref: Ref) -> dict[str, Any]:
        """creates_elements: the body that creates `element` (plan.py makes it a task)."""

    def voice_request(self, element: Element, ref: Ref) -> dict[str, Any]:
        """creates_voices: the body that makes a voice of `element.voice`, its sample (plan.py
        makes it a task of kind `voice`, once per sample content)."""

    def voice_cost(self, request: Mapping[str, Any]) -> Decimal | None:
        """creates_voices: what making one voice costs; None when no price is published."""


@runtime_checkable
class RemoteProvider(Protocol):
    """The run-time half of a provider: what the engine (`engine/remote.py`, `commands/adopt.py`)
    and `doctor` call on it. A provider builds each `httpx.Request` and reads each answer; it
    never sends one, except through the `send` it is handed (an upload's two steps, fal's
    request list). Which methods a provider must implement follows from its spec: every hosted
    one submits and polls; the others as its capabilities say (`Declared` has the defaults,
    tests/providers/test_registry.py checks each capability is backed by its methods)."""

    @property
    def spec(self) -> ProviderSpec: ...

    # read-only views of `spec`, read by the engine, doctor and settings under these names
    # today (to become `spec.capabilities.<name>`)
    @property
    def name(self) -> str: ...

    @property
    def key_variables(self) -> tuple[str, ...]: ...

    @property
    def endpoints(self) -> tuple[tuple[str, str | None], ...]: ...

    @property
    def key_check_endpoint(self) -> str | None: ...

    @property
    def local(self) -> bool: ...

    @property
    def local_inputs(self) -> bool: ...

    @property
    def inline_media(self) -> frozenset[str]: ...

    @property
    def lost_answer(self) -> LostAnswerRecovery: ...

    @property
    def client_task_id(self) -> bool: ...

    @property
    def batch_poll(self) -> bool: ...

    @property
    def result_fetch(self) -> bool: ...

    @property
    def creates_elements(self) -> bool: ...

    @property
    def creates_voices(self) -> bool: ...

    @property
    def upload_ttl_s(self) -> float | None: ...

    @property
    def result_ttl_s(self) -> float | None: ...

    @property
    def unconfirmed_grace_s(self) -> float: ...

    @property
    def signs_tokens(self) -> bool: ...

    # -- inputs --------------------------------------------------------------------------------

    def inline(self, data: bytes, mime: str) -> str:
        """A local file of an `inline_media` kind as the request carries it."""

    async def upload(self, send: Send, data: bytes, mime: str, name: str, url: UrlOf,
                     key: Credential) -> str:
        """Upload a local file through the provider's upload API: what the request sends."""

    # -- submission ------------------------------------------------------------------------------

    def submit_request(self, job: Job | None, request: Mapping[str, Any], task_id: str,
                       base_url: str, key: Credential) -> httpx.Request:
        """The request that submits `request` (our `task_id` travels along where it can)."""

    def read_submit(self, response: httpx.Response, task_id: str) -> Handle:
        """The handle of an accepted submission; LostAnswer when the answer leaves open
        whether it was accepted, ProviderError for a refusal, TransientError to retry."""

    # -- polling ---------------------------------------------------------------------------------

    def poll_request(self, handle: Handle, base_url: str, key: Credential) -> httpx.Request:
        """The request that asks for one task."""

    def read_status(self, response: httpx.Response, handle: Handle, takes: int) -> Status: ...

    def batch_poll_request(self, handles: Sequence[Handle], base_url: str,
                           key: Credential) -> httpx.Request:
        """batch_poll: one request that asks for every task of `handles`."""

    def read_statuses(self, response: httpx.Response, handles: Sequence[Handle],
                      takes: Mapping[str, int]) -> Mapping[str, Status]:
        """batch_poll: each task's status, by task id."""

    def result_request(self, handle: Handle, base_url: str, key: Credential) -> httpx.Request:
        """result_fetch: the request that fetches a `ready` task's result."""

    def read_result(self, response: httpx.Response, handle: Handle, takes: int) -> Status: ...

    # -- a lost answer, a task known by its id -------------------------------------------------

    def lookup_requests(self, job: Job | None, request: Mapping[str, Any], task_id: str,
                        base_url: str, key: Credential) -> list[httpx.Request]:
        """lost_answer "lookup": the requests that look a task up by our id, in order."""

    def read_lookup(self, response: httpx.Response, task_id: str) -> Handle | None:
        """lost_answer "lookup": the task sent under `task_id`, None when not found."""

    async def find_submission(self, send: Send, job: Job | None, url: UrlOf, key: Credential,
                              since: float | None = None,
                              sent: str | None = None) -> Handle | None:
        """lost_answer "request_list": the request sent with this body, if listed."""

    def adopt_handle(self, job: Job | None, request: Mapping[str, Any], task_id: str,
                     url: UrlOf) -> Handle:
        """What polls a task known by its id alone (`kling-compose adopt`)."""

    # -- doctor ----------------------------------------------------------------------------------

    def key_check_request(self, base_url: str, key: Credential) -> httpx.Request:
        """key_check_endpoint: a free authenticated call that tests the key."""

    def read_key_check(self, response: httpx.Response) -> Account:
        """key_check_endpoint: what the call said; ProviderError for a refused key."""


@runtime_checkable
class RegisteredProvider(Provider, RemoteProvider, Protocol):
    """Both halves: what `providers.PROVIDERS` holds."""


# -- the base of every provider class: the spec's views and the capabilities' defaults ---------


def shot_job(job: Job | None, provider: str) -> Job:
    """The job of a generation. The engine hands a task's job on as it is, which an element
    task has none of; only a provider that `creates_elements` or `creates_voices` is sent
    those."""
    if job is None:
        raise TypeError(f"{provider} makes generations only, and was sent a task without a shot")
    return job



def _lacks(provider: Declared, what: str) -> NotImplementedError:
    return NotImplementedError(f"{provider.name} has no {what} (see its spec)")


class Declared(RemoteProvider):
    """The base of every provider class: its `spec` (a class attribute, the module's `SPEC`)
    and, as read-only properties, the names the engine, `plan`, `doctor` and `settings` read
    today (`provider.lost_answer` is `provider.spec.capabilities.lost_answer`), plus a default
    for each method of `RemoteProvider` and `Provider.element_request`: a provider overrides
    what its spec says it has, and a default raises NotImplementedError naming what is
    missing (never reached when the spec is honest: the registry test checks it), so nothing
    anywhere needs hasattr or getattr."""

    spec: ProviderSpec

    # -- the spec, read through the names in use --------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def models(self) -> Mapping[str, ModelSpec]:
        return self.spec.models

    @property
    def key_variables(self) -> tuple[str, ...]:
        return self.spec.key_variables

    @property
    def endpoints(self) -> tuple[tuple[str, str | None], ...]:
        return self.spec.endpoints

    @property
    def key_check_endpoint(self) -> str | None:
        return self.spec.key_check_endpoint

    @property
    def local(self) -> bool:
        return self.spec.capabilities.local

    @property
    def local_inputs(self) -> bool:
        return self.spec.capabilities.local_inputs

    @property
    def inline_media(self) -> frozenset[str]:
        return self.spec.capabilities.inline_media

    @property
    def lost_answer(self) -> LostAnswerRecovery:
        return self.spec.capabilities.lost_answer

    @property
    def batch_poll(self) -> bool:
        return self.spec.capabilities.batch_poll

    @property
    def result_fetch(self) -> bool:
        return self.spec.capabilities.result_fetch

    @property
    def creates_elements(self) -> bool:
        return self.spec.capabilities.creates_elements

    @property
    def creates_voices(self) -> bool:
        return self.spec.capabilities.creates_voices

    @property
    def voices_per_task(self) -> int:
        return self.spec.capabilities.voices_per_task

    @property
    def upload_ttl_s(self) -> float | None:
        return self.spec.capabilities.upload_ttl_s

    @property
    def result_ttl_s(self) -> float | None:
        return self.spec.capabilities.result_ttl_s

    @property
    def unconfirmed_grace_s(self) -> float:
        return self.spec.capabilities.unconfirmed_grace_s

    @property
    def signs_tokens(self) -> bool:
        return self.spec.capabilities.signs_tokens

    @property
    def client_task_id(self) -> bool:
        """The client picks the task id (sent again only after proof it is unknown)."""
        return self.lost_answer == "resend"

    def route(self, spec: ModelSpec, request: Mapping[str, Any]) -> str:
        """The model id, where the request names its model (Runware's AIR id)."""
        return spec.model_id

    # -- the defaults of a provider without the capability -------------------------------------

    def inline(self, data: bytes, mime: str) -> str:
        raise _lacks(self, "inline media")

    async def upload(self, send: Send, data: bytes, mime: str, name: str, url: UrlOf,
                     key: Credential) -> str:
        raise _lacks(self, "upload API")

    def submit_request(self, job: Job | None, request: Mapping[str, Any], task_id: str,
                       base_url: str, key: Credential) -> httpx.Request:
        raise _lacks(self, "remote tasks")

    def read_submit(self, response: httpx.Response, task_id: str) -> Handle:
        raise _lacks(self, "remote tasks")

    def poll_request(self, handle: Handle, base_url: str, key: Credential) -> httpx.Request:
        raise _lacks(self, "remote tasks")

    def read_status(self, response: httpx.Response, handle: Handle, takes: int) -> Status:
        raise _lacks(self, "remote tasks")

    def batch_poll_request(self, handles: Sequence[Handle], base_url: str,
                           key: Credential) -> httpx.Request:
        raise _lacks(self, "batch polling")

    def read_statuses(self, response: httpx.Response, handles: Sequence[Handle],
                      takes: Mapping[str, int]) -> Mapping[str, Status]:
        raise _lacks(self, "batch polling")

    def result_request(self, handle: Handle, base_url: str, key: Credential) -> httpx.Request:
        raise _lacks(self, "separate result fetch")

    def read_result(self, response: httpx.Response, handle: Handle, takes: int) -> Status:
        raise _lacks(self, "separate result fetch")

    def lookup_requests(self, job: Job | None, request: Mapping[str, Any], task_id: str,
                        base_url: str, key: Credential) -> list[httpx.Request]:
        raise _lacks(self, "lookup by our id")

    def read_lookup(self, response: httpx.Response, task_id: str) -> Handle | None:
        raise _lacks(self, "lookup by our id")

    async def find_submission(self, send: Send, job: Job | None, url: UrlOf, key: Credential,
                              since: float | None = None,
                              sent: str | None = None) -> Handle | None:
        raise _lacks(self, "request list")

    def adopt_handle(self, job: Job | None, request: Mapping[str, Any], task_id: str,
                     url: UrlOf) -> Handle:
        """A task polled by its id alone (a provider whose poll needs more overrides it)."""
        return Handle(task_id)

    def key_check_request(self, base_url: str, key: Credential) -> httpx.Request:
        raise _lacks(self, "free call to check a key")

    def read_key_check(self, response: httpx.Response) -> Account:
        raise _lacks(self, "free call to check a key")

    def element_request(self, element: Element, ref: Ref) -> dict[str, Any]:
        raise _lacks(self, "element library")

    def voice_request(self, element: Element, ref: Ref) -> dict[str, Any]:
        raise _lacks(self, "voice creation API")

    def voice_cost(self, request: Mapping[str, Any]) -> Decimal | None:
        return None


class ProviderError(Exception):
    """The provider refused a request or reported a generation failed (final; the message is
    the provider's, for the user). Paying again is the user's decision, not a retry's."""


class LostAnswer(Exception):
    """A submission may have reached the provider, but its answer says nothing usable (a 5xx
    from the provider's own server): sending it again could pay twice."""


class TransientError(Exception):
    """A fault worth trying again (rate limit, server error, dropped connection)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def retry_after_s(response, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), if any."""
    import email.utils
    import time

    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True, slots=True)
class Handle:
    """What finds a submitted generation again, also after a crash (stored in the ledger)."""

    task_id: str
    extra: Mapping[str, Any] = field(default_factory=lambda: EMPTY)


@dataclass(frozen=True, slots=True)
class Result:
    """One finished take."""

    url: str
    seed: int | None = None
    cost_usd: Decimal | None = None
    # set when the provider reported a cost that is not a finite non-negative number: the
    # engine counts the estimate instead and warns with this text
    cost_note: str | None = None


@dataclass(frozen=True, slots=True)
class Status:
    # processing | ready (fetch the result) | done | failed (the provider says the generation
    # failed) | unknown (the provider says it does not know the task) | unconfirmed (the provider
    # does not show the task *yet*, as kie's `recordInfo is null` right after createTask: it is
    # polled as processing for the provider's `unconfirmed_grace_s`, then the user is asked) |
    # invalid (the answer about the task is malformed, `message` says which field: the task
    # stays submitted, it may be paid for, and is never sent again by itself)
    state: str
    results: tuple[Result, ...] = ()
    message: str | None = None
    detail: str | None = None  # for people, while processing: "queued (position 3)"...
    # the request body the provider says the task was made from, where its answer carries it
    # (kie's `param`): `kling-compose adopt` refuses a task that does not match the shot
    request: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Account:
    """What a provider's free authenticated call said about the key (`kling-compose doctor`).

    A provider that has such a call names `key_check_endpoint` in its spec (the settings
    endpoint it goes to) and implements `key_check_request(base_url, key) -> httpx.Request`
    and `read_key_check(response) -> Account`, which raises ProviderError when the key is
    refused. A provider without one (no free call is documented) names none and keeps
    `Declared`'s defaults, which raise NotImplementedError.
    """

    balance: Decimal | None = None  # None: the call says nothing about money left
    unit: str = ""  # "credits"; "" when the documentation names no unit


TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def read_cost(value: Any, provider: str) -> tuple[Decimal | None, str | None]:
    """A cost the provider reported: (the amount, None) when it is a finite non-negative number;
    (None, why) when it is present but unusable (NaN, Infinity, negative, "12abc", a bool), so
    the engine counts the estimate instead and says so; (None, None) when there is none."""
    if value is None:
        return None, None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None, f"{provider} reported a cost that is not a number ({value!r:.40})"
    try:
        amount = Decimal(str(value).strip())
    except ArithmeticError:
        return None, f"{provider} reported a cost that is not a number ({value!r:.40})"
    if not amount.is_finite() or amount < 0:
        return None, f"{provider} reported a cost of {value!r:.40}"
    return amount, None


def sent_digest(request) -> str:
    """sha256 of a request body in a canonical JSON form (sorted keys, whole floats as ints),
    so the body a provider lists back (fal's `json_input`) can be matched with what was sent."""
    def canonical(value):
        if isinstance(value, dict):
            return {str(k): canonical(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [canonical(v) for v in value]
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    import hashlib
    import json

    text = json.dumps(canonical(request), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def image_size(path: Path) -> tuple[int, int] | None:
    """A local image's width and height, from its header only; None when Pillow cannot read
    it: a missing or unreadable file, a folder (OSError), no image it knows
    (UnidentifiedImageError), a path it refuses (ValueError: a NUL byte), more pixels than
    it opens safely (DecompressionBombError), a damaged header (SyntaxError, as resolve.py's
    image check). Those files are reported where the file is checked (resolve.py, providers/rules.py)."""
    from PIL import Image, UnidentifiedImageError  # lazy: validate must start fast

    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError,
            Image.DecompressionBombError):
        return None
    return width, height


def answer_url(value: Any) -> str | None:
    """A result URL from an answer, or None when it is not an http(s) URL string."""
    if isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) < 8192:
        return value
    return None


def json_answer(response, provider: str):
    """The JSON of an answer; a transient status without JSON is a TransientError."""
    try:
        return response.json()
    except ValueError:
        if response.status_code in TRANSIENT_STATUS:
            raise TransientError(f"{provider} answered HTTP {response.status_code}",
                                 retry_after_s(response)) from None
        raise ProviderError(f"{provider} answered HTTP {response.status_code} without JSON") \
            from None


def raise_for_status(response, provider: str, detail: str | None = None) -> None:
    """TransientError for rate limits and server faults, ProviderError for other 4xx."""
    status = response.status_code
    if status in TRANSIENT_STATUS:
        raise TransientError(f"{provider} answered HTTP {status}" + (f": {detail}" if detail else ""),
                             retry_after_s(response))
    if status >= 400:
        raise ProviderError(f"{provider} refused the request (HTTP {status})"
                            + (f": {detail}" if detail else ""))
