"""The simulator's own request and response values, and the route table type.

Provider modules take a `Request` and return a `Response`; `Simulator.dispatch` answers a
request with an `Answer`: a `Response`, a `Partial` download or `RESET`. Two front ends turn an
answer into HTTP: `server.py` on a socket, `transport.py` in-process (an httpx transport).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Header names whose values are secrets; recorded requests keep only the scheme word.
SECRET_HEADERS = frozenset({"authorization", "x-api-key"})


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request as the simulator received it; `path` is relative to the provider."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    host: str = "api"  # which of the provider's hosts received it (fal: queue, rest, cdn...)

    def json(self) -> Any:
        """The body parsed as JSON; raises ValueError when it is not JSON."""
        return json.loads(self.body.decode("utf-8"))

    def header(self, name: str) -> str:
        """The header's value, '' when absent."""
        return self.headers.get(name.lower(), "")


@dataclass(frozen=True, slots=True)
class Response:
    """What the server sends back: a status, headers and a body (bytes or JSON-able data)."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def payload(self) -> bytes:
        """The body as bytes: JSON-encoded unless it already is bytes."""
        if isinstance(self.body, bytes):
            return self.body
        if self.body is None:
            return b""
        return json.dumps(self.body).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Partial:
    """A download answered in part (kind "truncate": the first `amount` of `data`, then the
    connection is reset) or a byte at a time (kind "drip": one every `amount` seconds, then
    the connection is reset); no Content-Length, so the client cannot tell when it ends."""

    data: bytes
    kind: str
    amount: float
    content_type: str


class Reset:
    """The answer that is none: the connection is closed (reset) without a response."""

    def __repr__(self) -> str:
        return "RESET"


RESET = Reset()
Answer = Response | Partial | Reset  # what Simulator.dispatch returns


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response."""
    return Response(status, body, dict(headers or {}))


Handler = Callable[..., Response]


@dataclass(frozen=True, slots=True)
class Route:
    """METHOD plus a path pattern whose named groups become handler keyword arguments.

    `kind` is the request kind faults are scoped by (submit, poll, download, upload), or a
    function of the request when the body decides it (Runware's one endpoint). `host` names
    which of the provider's real hosts serves the route (fal: queue, rest, cdn): the simulator
    serves each host under its own URL prefix, so a request sent to the wrong host is a 404
    here as it would be there.
    """

    method: str
    pattern: str
    handler: Handler
    kind: str | Callable[[Request], str]
    host: str = "api"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters when this route takes `method path`, else None."""
        if method != self.method and not (self.method == "GET" and method == "HEAD"):
            return None
        found = re.fullmatch(self.pattern, path)
        return None if found is None else found.groupdict()

    def kind_of(self, request: Request) -> str:
        """The fault-scoping kind of `request`."""
        return self.kind if isinstance(self.kind, str) else self.kind(request)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request kept for tests: the auth value masked, the JSON body parsed when it is JSON."""

    provider: str
    kind: str
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Any
    time_s: float


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """`headers` with secret values replaced by '***' (an auth scheme word is kept)."""
    masked = {}
    for name, value in headers.items():
        if name.lower() in SECRET_HEADERS:
            scheme, _, rest = value.partition(" ")
            value = f"{scheme} ***" if rest else "***"
        masked[name] = value
    return masked
