"""Fault injection: what goes wrong, for which provider and which kind of request.

A `Faults` value belongs to one simulator; tests arm it before (or while) a client talks to the
server. Transport faults are counted down one request at a time:

- `rate_limit(n, retry_after=...)`: the next n matching requests get HTTP 429, with a
  Retry-After header in seconds or as an HTTP-date when asked;
- `error(n, status=500)`: the next n matching requests get a 5xx (or any other status, such as
  the task API's 455 maintenance or 402 insufficient credits) in the provider's error envelope;
- `reset(n)`: the next n matching requests lose their connection: the socket is closed with no
  response. With `after_processing=True` the request is handled first (a submit is queued and
  billed) and only the answer is lost, the case exactly-once spending is about;
- `truncate(n, fraction)`: the next n matching downloads send only the first `fraction` of the
  file, without a Content-Length, then close (a connection cut mid-file);
- `drip(n, interval)`: the next n matching downloads send one byte every `interval` seconds
  until the client gives up (a server that never finishes).

Generation faults change what the provider reports later:

- `task_seconds`: how long each generation takes before polls report it done;
- `fail_generation(substring, message)`: a generation whose prompt contains `substring` ends
  failed with `message` in the provider's failure shape.

Every rule may be scoped by `provider` ("runware", "fal", "kling-v3-task", "kie", "kling") and by
`kind` ("submit", "poll", "download", "upload", "account": the free account queries `doctor`
sends; "element": the official Kling API's element creation and query); None matches all. For
"kling", `error(status=...)` takes a Kling body code too (1302, 5001...: see simulator/kling.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

KINDS = ("submit", "poll", "download", "upload", "account", "element")
PROVIDERS = ("runware", "fal", "kling-v3-task", "kie", "kling")
DEFAULT_TASK_SECONDS = 0.2


@dataclass(slots=True)
class TransportFault:
    """One armed transport fault; `remaining` counts down as requests match it."""

    kind: str  # "status" | "reset" | "truncate" | "drip"
    remaining: int
    status: int = 0
    retry_after: str | None = None
    http_status: int | None = None  # task API: send the body code with another HTTP status
    after_processing: bool = False
    provider: str | None = None
    request_kind: str | None = None
    amount: float = 0.0  # truncate: the fraction sent; drip: seconds between bytes

    def matches(self, provider: str, request_kind: str) -> bool:
        """True when this fault applies to a `request_kind` request to `provider`."""
        return (self.provider in (None, provider)) and (self.request_kind in (None, request_kind))


@dataclass(frozen=True, slots=True)
class GenerationFailure:
    """A generation whose prompt contains `substring` fails with `message` (and `code`)."""

    substring: str
    message: str
    code: str | None = None
    provider: str | None = None


class Faults:
    """The fault plan of one simulator; thread-safe (the server answers in threads)."""

    def __init__(self, task_seconds: float = DEFAULT_TASK_SECONDS) -> None:
        self.task_seconds = task_seconds
        self._transport: list[TransportFault] = []
        self._failures: list[GenerationFailure] = []
        self._drifts: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()

    def rate_limit(
        self,
        count: int = 1,
        *,
        retry_after: float | datetime | str | None = None,
        provider: str | None = None,
        kind: str | None = None,
        http_status: int | None = None,
    ) -> Faults:
        """The next `count` matching requests get 429 (Retry-After: seconds or an HTTP-date)."""
        return self._arm(
            TransportFault(
                "status",
                count,
                429,
                retry_after_value(retry_after),
                http_status,
                provider=_provider(provider),
                request_kind=_kind(kind),
            )
        )

    def error(
        self,
        count: int = 1,
        *,
        status: int = 500,
        provider: str | None = None,
        kind: str | None = None,
        http_status: int | None = None,
    ) -> Faults:
        """The next `count` matching requests get `status` in the provider's error envelope."""
        return self._arm(
            TransportFault(
                "status",
                count,
                status,
                None,
                http_status,
                provider=_provider(provider),
                request_kind=_kind(kind),
            )
        )

    def reset(
        self,
        count: int = 1,
        *,
        provider: str | None = None,
        kind: str | None = None,
        after_processing: bool = False,
    ) -> Faults:
        """The next `count` matching requests get their connection closed with no answer."""
        return self._arm(
            TransportFault(
                "reset",
                count,
                after_processing=after_processing,
                provider=_provider(provider),
                request_kind=_kind(kind),
            )
        )

    def truncate(self, count: int = 1, fraction: float = 0.4, *,
                 provider: str | None = None) -> Faults:
        """The next `count` downloads end after `fraction` of the bytes, with no length."""
        return self._arm(TransportFault("truncate", count, provider=_provider(provider),
                                        request_kind="download", amount=fraction))

    def drip(self, count: int = 1, interval: float = 0.5, *,
             provider: str | None = None) -> Faults:
        """The next `count` downloads send a byte every `interval` s and never finish."""
        return self._arm(TransportFault("drip", count, provider=_provider(provider),
                                        request_kind="download", amount=interval))

    def fail_generation(
        self,
        substring: str,
        message: str = "simulated generation failure",
        *,
        code: str | None = None,
        provider: str | None = None,
    ) -> Faults:
        """Generations whose prompt contains `substring` end failed with `message`."""
        with self._lock:
            self._failures.append(GenerationFailure(substring, message, code, _provider(provider)))
        return self

    def drift(self, substring: str, *, provider: str | None = None) -> Faults:
        """Generations whose prompt contains `substring` ignore their frame images, as a model
        that drifts from its seed does: the clip is a title card (a broken chain)."""
        with self._lock:
            self._drifts.append((substring, _provider(provider)))
        return self

    def drifts(self, provider: str, prompt: str) -> bool:
        with self._lock:
            return any(p in (None, provider) and s in prompt for s, p in self._drifts)

    def clear(self) -> None:
        """Disarm every fault (task_seconds stays)."""
        with self._lock:
            self._transport.clear()
            self._failures.clear()
            self._drifts.clear()

    def take(self, provider: str, request_kind: str) -> TransportFault | None:
        """The first armed fault matching this request, counted down; None when none applies."""
        with self._lock:
            for fault in self._transport:
                if fault.remaining > 0 and fault.matches(provider, request_kind):
                    fault.remaining -= 1
                    return fault
        return None

    def failure_for(self, provider: str, prompt: str) -> GenerationFailure | None:
        """The failure planned for a generation of `provider` with this prompt text, if any."""
        with self._lock:
            for failure in self._failures:
                if failure.provider in (None, provider) and failure.substring in prompt:
                    return failure
        return None

    def _arm(self, fault: TransportFault) -> Faults:
        if fault.remaining < 0:
            raise ValueError(f"fault count must be >= 0, got {fault.remaining}")
        with self._lock:
            self._transport.append(fault)
        return self

    @classmethod
    def parse(cls, specs: list[str], task_seconds: float = DEFAULT_TASK_SECONDS) -> Faults:
        """Faults from command-line specs, one fault each (see `parse_spec`)."""
        faults = cls(task_seconds)
        for spec in specs:
            parse_spec(faults, spec)
        return faults


def parse_spec(faults: Faults, spec: str) -> None:
    """Arm one fault from text: `WHAT[:COUNT][,key=value...]`.

    WHAT is `429`, a status code (`500`, `503`, `455`...), `reset`, `fail=SUBSTRING`, or
    `drift=SUBSTRING` (the generation ignores its frame images: a broken chain).
    Keys: provider, kind, retry_after (seconds), http_status, after_processing (1), message.
    Examples: `429:2,provider=runware,retry_after=1`, `reset:1,kind=submit`,
    `fail=explode,message=policy`.
    """
    head, *pairs = [p.strip() for p in spec.split(",")]
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"fault option {pair!r} is not key=value (in {spec!r})")
        options[key] = value
    known = {"provider", "kind", "retry_after", "http_status", "after_processing", "message"}
    unknown = set(options) - known
    if unknown:
        raise ValueError(f"unknown fault option(s) {sorted(unknown)} in {spec!r}")
    scope = {"provider": options.get("provider"), "kind": options.get("kind")}
    if head.startswith("drift="):
        faults.drift(head[6:], provider=scope["provider"])
        return
    if head.startswith("fail="):
        message = options.get("message", "simulated generation failure")
        faults.fail_generation(head[5:], message, provider=scope["provider"])
        return
    what, _, count_text = head.partition(":")
    count = int(count_text or 1)
    http_status = int(options["http_status"]) if "http_status" in options else None
    if what == "reset":
        after = options.get("after_processing", "0") not in ("0", "", "false")
        faults.reset(count, after_processing=after, **scope)
    elif what == "429":
        retry = float(options["retry_after"]) if "retry_after" in options else None
        faults.rate_limit(count, retry_after=retry, http_status=http_status, **scope)
    elif what.isdigit():
        faults.error(count, status=int(what), http_status=http_status, **scope)
    else:
        raise ValueError(f"unknown fault {what!r} in {spec!r}: use 429, a status, reset or fail=")


def retry_after_value(value: float | datetime | str | None) -> str | None:
    """A Retry-After header value: whole seconds, an HTTP-date for a datetime, or as given."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return format_datetime(value, usegmt=True)
    seconds = float(value)
    return str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"


def _provider(provider: str | None) -> str | None:
    if provider is not None and provider not in PROVIDERS:
        raise ValueError(f"unknown provider {provider!r}; expected one of {PROVIDERS}")
    return provider


def _kind(kind: str | None) -> str | None:
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown request kind {kind!r}; expected one of {KINDS}")
    return kind
