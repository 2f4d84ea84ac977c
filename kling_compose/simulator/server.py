"""The simulator: one ThreadingHTTPServer on 127.0.0.1 speaking every provider's protocol.

URL layout under `base_url` (`http://127.0.0.1:<port>`):

    /runware/v1                     Runware's single POST endpoint      (url("runware"))
    /fal/...                        fal's queue (queue.fal.run)         (url("fal"))
    /fal-rest/storage/...           fal's REST host: storage tokens     (url("fal-rest"))
    /fal-cdn/files/upload           fal's CDN (v3.fal.media; multipart: the token's base_url)
    /fal-api/v1/models/requests/... fal's platform API: recent requests by endpoint
    /kling-v3-task/api/v1/jobs/...  the seed 002 task API               (url("kling-v3-task"))
    /kie/api/v1/jobs/..., chat/...  kie.ai's Market API (api.kie.ai)    (url("kie"))
    /kie-upload/api/file-...        kie.ai's File Upload API            (url("kie-upload"))
    /kling/v1/videos/..., general/  the official Kling API (api-singapore) (url("kling"))
    /files/<name>                   generated clips and uploaded files
    /_sim/stats                     the simulator's own counts (JSON; not a provider's route)

Each real host has its own prefix, and a route answers only under its own host's prefix: a
client that sends a request to the wrong host gets a 404, as it would from the real service.

Every request is recorded (auth values masked) before faults apply, so a test sees each attempt.
"""

from __future__ import annotations

import functools
import shlex
import signal
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import parse_qsl, urlsplit

from . import SERVE_SHORT_SIDE
from .fal import Fal
from .faults import Faults
from .kie import Kie
from .kling import Kling
from .kling import key_env as kling_key_env
from .kling_v3_task import KlingV3Task
from .runware import Runware
from .store import Backend, Generation
from .wire import (RESET, Answer, Partial, RecordedRequest, Request, Response, json_response,
                   mask_headers)

if TYPE_CHECKING:
    from .transport import SimulatorTransport

# Environment variables a client reads (product brief, section 4; settings of the CLI).
URL_ENV = {
    "runware": "KLING_COMPOSE_RUNWARE_URL",
    "fal": "KLING_COMPOSE_FAL_URL",
    "fal-rest": "KLING_COMPOSE_FAL_REST_URL",
    "fal-cdn": "KLING_COMPOSE_FAL_CDN_URL",
    "fal-api": "KLING_COMPOSE_FAL_API_URL",
    "kling-v3-task": "KLING_COMPOSE_KLING_V3_TASK_URL",
    "kie": "KLING_COMPOSE_KIE_URL",
    "kie-upload": "KLING_COMPOSE_KIE_UPLOAD_URL",
    "kling": "KLING_COMPOSE_KLING_URL",
}
KEY_ENV = {"runware": "RUNWARE_API_KEY", "fal": "FAL_KEY", "kling-v3-task": "KLING_V3_TASK_API_KEY",
           "kie": "KIE_API_KEY"}
# URL prefix -> (provider, host); a route serves only under the prefix of its own host
_PREFIXES = {
    "/runware": ("runware", "api"),
    "/fal-rest": ("fal", "rest"),
    "/fal-cdn": ("fal", "cdn"),
    "/fal-api": ("fal", "platform"),
    "/fal": ("fal", "queue"),
    "/kling-v3-task": ("kling-v3-task", "api"),
    "/kie-upload": ("kie", "upload"),
    "/kie": ("kie", "api"),
    "/kling": ("kling", "api"),
}
_PATHS = {"runware": "/runware/v1", "fal": "/fal", "fal-rest": "/fal-rest",
          "fal-cdn": "/fal-cdn", "fal-api": "/fal-api", "kling-v3-task": "/kling-v3-task",
          "kie": "/kie", "kie-upload": "/kie-upload", "kling": "/kling"}
# where an in-process simulator (start(listen=False)) says it is: no socket, a host no DNS
# resolves (".invalid", RFC 2606), so a request that misses the in-process transport fails
IN_PROCESS_URL = "http://simulator.invalid"
SERVER_NAME = "kling-compose-simulator"  # the Server header's first word


class Simulator:
    """A local HTTP server speaking Runware, fal, kie, the kling/v3 task API and the official
    Kling API, with faults.

    `keys` maps a provider to the one API key it accepts; a provider left out (or keys=None)
    accepts any non-empty key. Use it as a context manager, or call start() and stop().
    start(listen=False) opens no socket: the simulator is then reached only through
    `transport()`, an httpx transport that hands each request to `dispatch` in-process.
    """

    def __init__(
        self,
        keys: Mapping[str, str] | None = None,
        faults: Faults | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        short_side: int = 180,
        fps: int = 24,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keys = dict(keys or {})
        self.faults = faults if faults is not None else Faults()
        self._host, self._port = host, port
        self._tmp = tempfile.TemporaryDirectory(prefix="kling-compose-sim-")
        self.backend = Backend(
            Path(self._tmp.name), self.faults, clock=clock, short_side=short_side, fps=fps
        )
        self.runware = Runware(self.backend, self.keys.get("runware"))
        self.fal = Fal(self.backend, self.keys.get("fal"))
        self.kling_v3_task = KlingV3Task(self.backend, self.keys.get("kling-v3-task"))
        self.kie = Kie(self.backend, self.keys.get("kie"))
        self.kling = Kling(self.backend, self.keys.get("kling"))  # key: "ACCESS_KEY:SECRET_KEY"
        self._apps = {"runware": self.runware, "fal": self.fal, "kling-v3-task": self.kling_v3_task,
                      "kie": self.kie, "kling": self.kling}
        self._records: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._in_process = False  # started with listen=False

    # lifecycle ---------------------------------------------------------------------------

    def start(self, *, listen: bool = True) -> Simulator:
        """Bind and serve in a daemon thread; returns self. With listen=False nothing is
        bound: the simulator answers at IN_PROCESS_URL through `transport()` alone."""
        if self._server is not None or self._in_process:
            return self
        if not listen:
            self._in_process = True
            self.backend.base_url = IN_PROCESS_URL
            return self
        server = _Server((self._host, self._port), _Handler)
        server.daemon_threads = True
        server.simulator = self  # type: ignore[attr-defined]
        self._server = server
        host, port = server.server_address[:2]
        self.backend.base_url = f"http://{host}:{port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="kling-compose-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and delete the served files."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:  # keep-alive connections would outlive the server
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._in_process = False
        self.backend.close()
        self._tmp.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # what clients and tests use ----------------------------------------------------------

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>` once started (IN_PROCESS_URL when started in-process)."""
        if not self.backend.base_url:
            raise RuntimeError("the simulator is not started")
        return self.backend.base_url

    def url(self, provider: str) -> str:
        """The base URL a client of `provider` should use instead of the real one."""
        if provider not in _PATHS:
            raise KeyError(f"unknown provider {provider!r}; expected one of {sorted(_PATHS)}")
        return self.base_url + _PATHS[provider]

    def env(self) -> dict[str, str]:
        """The KLING_COMPOSE_<PROVIDER>_URL variables (and API keys) pointing a client here."""
        env = {URL_ENV[p]: self.url(p) for p in URL_ENV}
        env |= {KEY_ENV[p]: self.keys.get(p, "simulator") for p in KEY_ENV}
        env |= kling_key_env(self.keys.get("kling"))  # KLING_ACCESS_KEY, KLING_SECRET_KEY
        return env

    def transport(self) -> SimulatorTransport:
        """An httpx transport (sync and async) answering requests to `base_url` in-process,
        without a socket: `httpx.AsyncClient(transport=sim.transport())`, or the engine's
        `run_plan(..., transport=sim.transport())`. Works whether or not the simulator listens."""
        from .transport import SimulatorTransport

        return SimulatorTransport(self)

    def requests(
        self, provider: str | None = None, kind: str | None = None
    ) -> list[RecordedRequest]:
        """Recorded requests, oldest first; provider "files": downloads of unknown files."""
        with self._lock:
            return [
                r
                for r in self._records
                if provider in (None, r.provider) and kind in (None, r.kind)
            ]

    def generations(self, provider: str | None = None) -> list[Generation]:
        """Generations started (each is one submit that was accepted), in order."""
        return self.backend.generations(provider)

    def billed(self, provider: str) -> Decimal:
        """USD billed for `provider`'s finished, successful generations (None-priced ones add 0)."""
        return self.backend.billed(provider)

    def stats(self) -> dict[str, Any]:
        """What the simulator was asked and billed: per provider, requests by kind,
        generations started and USD billed (providers with no request left out; "files":
        downloads of files no provider made), and the clips it rendered."""
        with self._lock:
            records = list(self._records)
        providers: dict[str, Any] = {}
        for record in records:
            requests = providers.setdefault(record.provider, {"requests": {}})["requests"]
            requests[record.kind] = requests.get(record.kind, 0) + 1
        for name, entry in providers.items():
            entry["requests"] = dict(sorted(entry["requests"].items()))
            entry["total"] = sum(entry["requests"].values())
            if name in self._apps:
                entry["generations"] = len(self.generations(name))
                entry["billed_usd"] = str(self.billed(name))
        return {"providers": dict(sorted(providers.items())), "requests": len(records),
                "renders": self.backend.renders, "render_s": round(self.backend.render_s, 3)}

    # dispatch ----------------------------------------------------------------------------

    def track(self, connection: socket.socket, open_: bool) -> None:
        """Remember (or forget) a client connection, so that stop() can close it."""
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def dispatch(self, method: str, target: str, headers: Mapping[str, str],
                 body: bytes) -> Answer:
        """The answer to one request: a Response, a Partial download, or RESET (drop the
        connection). `target` is the request target as sent (path and query), `headers` have
        lower-case names. Both front ends call this: the socket server and the in-process
        transport (transport.py), so they answer alike."""
        parts = urlsplit(target)
        if parts.path == "/_sim/stats":  # the simulator's own page: never recorded
            return json_response(200, self.stats())
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        provider, host, app, path = self._owner(parts.path)
        request = Request(method, path, query, headers, body, host or "api")
        if provider == "files":
            return self._serve_file(request)
        if app is None:
            return json_response(404, {"detail": f"no simulated provider at {parts.path}"})
        for route in app.routes:
            params = route.match(method, path) if route.host == host else None
            if params is not None:
                break
        else:
            return json_response(404, {"detail": f"no route {method} {parts.path}"})
        kind = route.kind_of(request)
        self._record(provider, kind, request, parts.path)
        fault = self.faults.take(provider, kind)
        if fault is not None and not fault.after_processing:
            return RESET if fault.kind == "reset" else app.fault_response(fault)
        refused = app.authorize(request)
        if refused is not None:
            return refused
        response = route.handler(request, **params)
        return RESET if fault is not None else response

    def _owner(self, path: str) -> tuple[str | None, str | None, Any, str]:
        if path.startswith("/files/"):
            return "files", None, None, path[len("/files/") :]
        for prefix, (provider, host) in _PREFIXES.items():
            if path == prefix or path.startswith(prefix + "/"):
                return provider, host, self._apps[provider], path[len(prefix) :] or "/"
        return None, None, None, path

    def _serve_file(self, request: Request) -> Answer:
        stored = self.backend.file(request.path)
        provider = stored.provider if stored is not None else "files"
        self._record(provider, "download", request, "/files/" + request.path)
        fault = self.faults.take(provider, "download") if stored is not None else None
        if fault is not None and (fault.kind == "reset"):
            return RESET
        if fault is not None and fault.kind in ("truncate", "drip"):
            return Partial(stored.path.read_bytes(), fault.kind, fault.amount,
                            stored.content_type)
        if fault is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return json_response(
                fault.http_status or fault.status,
                {"detail": f"simulated HTTP {fault.status}"},
                headers,
            )
        if stored is None or request.method not in ("GET", "HEAD"):
            return json_response(404, {"detail": "Not Found"})
        return Response(200, stored.path.read_bytes(), content_type=stored.content_type)

    def _record(self, provider: str, kind: str, request: Request, full_path: str) -> None:
        try:
            body = request.json() if request.body else None
        except (ValueError, UnicodeDecodeError):
            body = None
        record = RecordedRequest(
            provider,
            kind,
            request.method,
            full_path,
            dict(request.query),
            mask_headers(request.headers),
            body,
            time.time(),
        )
        with self._lock:
            self._records.append(record)


class _Server(ThreadingHTTPServer):
    """A listen backlog for bursts: the default (5) drops part of 20 simultaneous connects,
    which the kernel retries a second later, skewing every timing measured against it."""

    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    """Reads one request, asks the Simulator, writes the answer (or resets the connection)."""

    protocol_version = "HTTP/1.1"
    server_version = SERVER_NAME

    def setup(self) -> None:
        super().setup()
        self.server.simulator.track(self.connection, True)  # type: ignore[attr-defined]

    def finish(self) -> None:
        self.server.simulator.track(self.connection, False)  # type: ignore[attr-defined]
        super().finish()

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    def _handle(self) -> None:
        body = self._body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        simulator = self.server.simulator  # type: ignore[attr-defined]
        result = simulator.dispatch(self.command, self.path, headers, body)
        if result is RESET:
            self._reset()
            return
        if isinstance(result, Partial):
            self._send_partial(result)
            return
        self._send(result)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, response: Response) -> None:
        payload = response.payload()
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _send_partial(self, partial: Partial) -> None:
        """A body without Content-Length, ended by closing the connection: cut short, or
        dripped a byte at a time until the client hangs up."""
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", partial.content_type)
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            if partial.kind == "truncate":
                self.wfile.write(partial.data[: int(len(partial.data) * partial.amount)])
            else:
                for index in range(len(partial.data)):
                    self.wfile.write(partial.data[index : index + 1])
                    self.wfile.flush()
                    time.sleep(partial.amount)
        except OSError:
            pass  # the client gave up
        self._reset()

    def _reset(self) -> None:
        # SO_LINGER 0: closing sends RST, so the client sees a reset, not a clean EOF.
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.connection.close()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `Simulator.requests()` instead of a log."""


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    keys: Mapping[str, str] | None = None,
    faults: Faults | None = None,
    *,
    echo: Callable[[str], Any] = functools.partial(print, flush=True),
    stop: threading.Event | None = None,
    short_side: int = SERVE_SHORT_SIDE,
) -> None:
    """Run a simulator until Ctrl-C, SIGTERM (or `stop` is set), after printing the `export`
    lines to paste into a shell (plain `NAME=value` lines would set shell variables that
    kling-compose, a child process, never sees); on the way out, print what it was asked and
    billed (`Simulator.stats`). Clips render with a `short_side` of 360 px: a frame taken from
    one passes every provider's input minimum (Kling: 300 px a side)."""
    stop = stop or threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        # SIGINT too: a shell starts a background job with SIGINT ignored, and Python then
        # leaves it ignored, so `kill -INT` (or Ctrl-C after `fg`) would not stop it
        for number in (signal.SIGTERM, signal.SIGINT):
            previous[number] = signal.signal(number, lambda *_: stop.set())
    try:
        with Simulator(keys, faults, host=host, port=port, short_side=short_side) as sim:
            echo(f"kling-compose provider simulator at {sim.base_url}")
            for provider in _PATHS:
                echo(f"  {provider:<14} {sim.url(provider)}")
            echo(f"  {'counts':<14} {sim.base_url}/_sim/stats")
            echo("Point kling-compose at it: paste these lines into the shell that runs it")
            for name, value in sim.env().items():
                echo(f"export {name}={shlex.quote(value)}")
            while not stop.wait(0.2):  # set by SIGINT, SIGTERM or the caller
                pass
            echo("simulator stopped")
            for line in stats_lines(sim.stats()):
                echo(line)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def stats_lines(stats: Mapping[str, Any]) -> list[str]:
    """`Simulator.stats()` as lines for a person: one per provider, then the renders."""
    lines = [f"requests: {stats['requests']}"]
    for name, entry in stats["providers"].items():
        kinds = ", ".join(f"{kind} {count}" for kind, count in entry["requests"].items())
        line = f"  {name:<14} {entry['total']:>6} ({kinds})"
        if "generations" in entry:
            line += f"; generations {entry['generations']}, billed ${entry['billed_usd']}"
        lines.append(line)
    lines.append(f"clips rendered: {stats['renders']} ({stats['render_s']:.1f} s)")
    return lines
