"""The simulator in-process: an httpx transport that hands each request to `Simulator.dispatch`
without a socket, as httpx's MockTransport hands it to a function.

    sim = Simulator(faults=Faults(task_seconds=0.05)).start(listen=False)
    async with httpx.AsyncClient(transport=sim.transport()) as client:
        await client.post(sim.url("runware"), json=[...], headers=...)

The answers are the socket server's (server.py), byte for byte, headers included (Server, Date,
Content-Type, Content-Length, then the route's own); what a socket would do to the client is
raised as httpx raises it from a real connection, as measured against the socket server:

- a reset (`faults.reset`, before or after processing): httpx.ReadError, "[Errno 104]
  Connection reset by peer";
- a truncated download (`faults.truncate`): the status and headers (no Content-Length), the
  first part of the body, then httpx.ReadError;
- a dripping download (`faults.drip`): one byte every `interval` seconds of real time, then
  httpx.ReadError; httpx.ReadTimeout instead when the interval is longer than the request's
  read timeout (a socket's timeout counts from the last byte received);
- a request to a host other than the simulator's: httpx.ConnectError (no connection made).

The async transport runs `dispatch` in a worker thread, as the socket server answers in a
thread of its own: a clip rendered on a poll does not stall the client's event loop.
"""

from __future__ import annotations

import asyncio
import email.utils
import http
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING

import httpx

from .wire import Partial, Reset, Response

if TYPE_CHECKING:
    from .server import Simulator

_RESET_MESSAGE = "[Errno 104] Connection reset by peer"


class SimulatorTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Answers requests to the simulator's base URL in-process (sync and async clients)."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._check_host(request)
        answer = self.simulator.dispatch(*_parts(request, request.read()))
        return _response(request, answer)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._check_host(request)
        body = await request.aread()
        answer = await asyncio.to_thread(self.simulator.dispatch, *_parts(request, body))
        return _response(request, answer)

    def _check_host(self, request: httpx.Request) -> None:
        """A request for another host never reaches the simulator: it would leave the machine
        (or fail to) through a real transport, and must not be answered here."""
        ours = httpx.URL(self.simulator.base_url)
        url = request.url
        if (url.scheme, url.host, url.port) != (ours.scheme, ours.host, ours.port):
            raise httpx.ConnectError(
                f"{url.scheme}://{url.netloc.decode('ascii')} is not the simulator "
                f"({self.simulator.base_url}): the in-process transport reaches no other host",
                request=request)


def _parts(request: httpx.Request, body: bytes) -> tuple[str, str, dict[str, str], bytes]:
    """What `dispatch` takes, as the socket server reads it: the method, the request target
    as sent on the wire (path and query), lower-case header names (a repeated name: the last
    value) and the body."""
    headers = {name.lower(): value for name, value in request.headers.multi_items()}
    return request.method, request.url.raw_path.decode("ascii"), headers, body


def _response(request: httpx.Request, answer: Response | Partial | Reset) -> httpx.Response:
    if isinstance(answer, Reset):
        raise httpx.ReadError(_RESET_MESSAGE, request=request)
    if isinstance(answer, Partial):
        headers = [*_server_headers(), ("Content-Type", answer.content_type),
                   ("Connection", "close")]
        return _answer(request, 200, headers, _PartialStream(request, answer))
    payload = answer.payload()
    headers = [*_server_headers(), ("Content-Type", answer.content_type),
               ("Content-Length", str(len(payload))), *answer.headers.items()]
    body = b"" if request.method == "HEAD" else payload
    return _answer(request, answer.status, headers, httpx.ByteStream(body))


def _answer(request: httpx.Request, status: int, headers: list[tuple[str, str]],
            stream: httpx.SyncByteStream | httpx.AsyncByteStream) -> httpx.Response:
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:  # a status no standard names (the task API's 455): none, as http.server
        phrase = ""
    return httpx.Response(status, headers=headers, stream=stream, request=request,
                          extensions={"http_version": b"HTTP/1.1",
                                      "reason_phrase": phrase.encode("ascii")})


def _server_headers() -> list[tuple[str, str]]:
    """The headers BaseHTTPRequestHandler.send_response writes first: Server, then Date."""
    from .server import SERVER_NAME

    return [("Server", f"{SERVER_NAME} {BaseHTTPRequestHandler.sys_version}"),
            ("Date", email.utils.formatdate(usegmt=True))]


class _PartialStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A download cut short or dripped, ended by a reset (server.py `_send_partial`)."""

    def __init__(self, request: httpx.Request, partial: Partial) -> None:
        self.request = request
        self.partial = partial
        timeout = request.extensions.get("timeout") or {}
        self.read_timeout: float | None = timeout.get("read")

    def _plan(self) -> Iterator[bytes | float]:
        """The chunks to hand over, and the waits (seconds) between them."""
        data = self.partial.data
        if self.partial.kind == "truncate":
            yield data[: int(len(data) * self.partial.amount)]
            return
        for index in range(len(data)):
            yield data[index : index + 1]
            yield self.partial.amount  # the server sleeps after each byte, the last one too

    def _stalled(self, seconds: float) -> float | None:
        """How long the client waits before it times out, if `seconds` of silence is longer
        than its read timeout; None when the wait is shorter."""
        if self.read_timeout is not None and seconds > self.read_timeout:
            return self.read_timeout
        return None

    def __iter__(self) -> Iterator[bytes]:
        for step in self._plan():
            if isinstance(step, bytes):
                yield step
                continue
            stalled = self._stalled(step)
            time.sleep(step if stalled is None else stalled)
            if stalled is not None:
                raise httpx.ReadTimeout("timed out", request=self.request)
        raise httpx.ReadError(_RESET_MESSAGE, request=self.request)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for step in self._plan():
            if isinstance(step, bytes):
                yield step
                continue
            stalled = self._stalled(step)
            await asyncio.sleep(step if stalled is None else stalled)
            if stalled is not None:
                raise httpx.ReadTimeout("timed out", request=self.request)
        raise httpx.ReadError(_RESET_MESSAGE, request=self.request)
