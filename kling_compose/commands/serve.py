"""`kling-compose report --serve` (and `watch --serve`): the review page over HTTP, live.

Serves the folder the report lives in (renders/, or renders/<profile>/...) on 127.0.0.1 only,
with a small script injected into the served page, never into the file on disk: it asks
`/__kling-compose__/state` once a second and reloads the page when the report was written
again with other content (the version is the digest of the page's bytes). The state
also carries what `watch` has to say (the storyboard's errors, a render under way), shown in a
banner. Clips are served with byte ranges, so a player can seek.

Only what is under the served folder is served (links followed are checked), directories are
never listed, and a request naming another host than 127.0.0.1 or localhost is refused (a
page elsewhere could otherwise reach the server through DNS rebinding).
"""

from __future__ import annotations

import errno
import functools
import hashlib
import html
import json
import mimetypes
import os
import re
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, urlsplit

from ..errors import UserError

HOST = "127.0.0.1"
DEFAULT_PORT = 8765
STATE_PATH = "/__kling-compose__/state"  # the live state the page polls
POLL_MS = 1000
IDLE_TIMEOUT_S = 60  # a connection that sends nothing for this long is closed
_CHUNK = 1 << 16
_TYPES = {".vtt": "text/vtt; charset=utf-8", ".srt": "text/plain; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".mp4": "video/mp4", ".jpg": "image/jpeg",
          ".otio": "application/json", ".edl": "text/plain; charset=utf-8"}

# the live part of the served page: no framework, no request but to this server
_SCRIPT = """<script id="kling-compose-live">
(() => {
  const seen = %(version)s;
  let banner = null;
  const show = (lines, busy) => {
    if (!lines.length && !busy) { if (banner) { banner.remove(); banner = null; } return; }
    if (!banner) {
      banner = document.createElement("div");
      banner.id = "kling-compose-live-banner";
      banner.style.cssText = "position:fixed;left:0;right:0;bottom:0;z-index:1000;" +
        "margin:0;padding:.6em 1em;font:13px/1.4 ui-monospace,monospace;white-space:pre-wrap;" +
        "max-height:40vh;overflow:auto;color:#fff;background:rgba(20,20,20,.92)";
      document.body.appendChild(banner);
    }
    banner.style.borderTop = lines.length ? "3px solid #d33" : "3px solid #888";
    banner.textContent = [busy ? busy : null, ...lines].filter(Boolean).join("\\n");
  };
  const poll = async () => {
    try {
      const answer = await fetch(%(state)s, {cache: "no-store"});
      const state = await answer.json();
      if (state.version !== seen) { location.reload(); return; }
      show(state.problems || [], state.busy || "");
    } catch (e) { /* the server stopped or restarts: ask again */ }
    setTimeout(poll, %(poll)d);
  };
  setTimeout(poll, %(poll)d);
})();
</script>
"""

_WAITING = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kling-compose report</title></head>
<body style="font-family:system-ui,sans-serif;margin:2em">
<p>No report yet: <code>%(page)s</code> appears here as soon as it is written.</p>
</body></html>
"""


@dataclass
class LiveState:
    """What the page's script reads besides the report's identity (set by `watch`)."""

    problems: tuple[str, ...] = ()  # the storyboard's errors, as printed
    busy: str = ""  # e.g. "rendering s2, s3 ..."
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def set(self, problems: tuple[str, ...] | None = None, busy: str | None = None) -> None:
        with self.lock:
            if problems is not None:
                self.problems = tuple(problems)
            if busy is not None:
                self.busy = busy

    def read(self) -> tuple[tuple[str, ...], str]:
        with self.lock:
            return self.problems, self.busy


def content_version(data: bytes) -> str:
    """The page's version: its bytes' digest. `report` rewrites the page byte for byte the
    same when nothing changed: an open page is not reloaded for that."""
    return hashlib.sha256(data).hexdigest()[:20]


class ReportServer(ThreadingHTTPServer):
    """The served folder, the page in it, and the live state; bound on 127.0.0.1 only."""

    daemon_threads = True  # a slow client never keeps the command from exiting
    allow_reuse_address = True  # a port just freed (TIME_WAIT) is taken; one in use is not

    def __init__(self, folder: Path, page: Path, port: int = DEFAULT_PORT) -> None:
        self.folder = Path(os.path.abspath(folder))
        self.page = Path(os.path.abspath(page))
        self.live = LiveState()
        self._known: tuple[tuple[int, int, int], str] | None = None  # (stat, version)
        self._known_lock = threading.Lock()
        try:
            super().__init__((HOST, port), functools.partial(_Handler,
                                                             directory=str(self.folder)))
        except OSError as exc:
            raise _bind_error(exc, port) from None
        self.thread: threading.Thread | None = None

    def handle_error(self, request, client_address) -> None:
        """A request that failed is closed without a word: socketserver's default prints a
        traceback on the terminal of `watch --serve`, between its own lines."""

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # not http.server's: no getfqdn() lookup
        self.server_name, self.server_port = HOST, int(self.server_address[1])

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def page_url(self) -> str:
        return f"http://{HOST}:{self.port}/{quote(self._page_name())}"

    def page_version(self) -> str:
        """The report's version now ("none" while there is none); read again only when its
        file changed (inode, time, size), so a page polling each second costs a stat."""
        try:
            info = os.stat(self.page)
            key = (info.st_ino, info.st_mtime_ns, info.st_size)
            with self._known_lock:
                if self._known is not None and self._known[0] == key:
                    return self._known[1]
            version = content_version(self.page.read_bytes())
        except OSError:
            return "none"
        with self._known_lock:
            self._known = (key, version)
        return version

    def _page_name(self) -> str:
        return self.page.relative_to(self.folder).as_posix()

    def start(self) -> ReportServer:
        """Serve in a thread of its own (`watch --serve`)."""
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="kling-compose report server", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.thread is not None:
            self.shutdown()
            self.thread.join(timeout=5)
        self.server_close()


def _bind_error(exc: OSError, port: int) -> UserError:
    if exc.errno == errno.EADDRINUSE:
        return UserError.single(f"port {port} on {HOST} is in use",
                                hint="give another with --port P (--port 0 takes a free one), "
                                     "or stop what listens there")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return UserError.single(f"cannot listen on {HOST}:{port}: {exc.strerror}",
                                hint="give a port from 1024 with --port P (--port 0 takes a "
                                     "free one)")
    return UserError.single(f"cannot listen on {HOST}:{port}: {exc.strerror or exc}")


class _Handler(SimpleHTTPRequestHandler):
    server: ReportServer
    protocol_version = "HTTP/1.1"  # keep-alive: a video's range requests reuse a connection
    # a connection idle this long is closed (each holds a thread): a browser opens another
    timeout = IDLE_TIMEOUT_S

    # -- requests --------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._answer(head_only=False)

    def do_HEAD(self) -> None:
        self._answer(head_only=True)

    def _answer(self, head_only: bool) -> None:
        if not self._own_host():
            self._plain(HTTPStatus.FORBIDDEN, "this server answers to 127.0.0.1 and localhost "
                        "only", head_only)
            return
        path = urlsplit(self.path).path
        if path == "/":
            self.send_response(HTTPStatus.FOUND)
            self.send_header("Location", "/" + quote(self.server._page_name()))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path == STATE_PATH:
            problems, busy = self.server.live.read()
            self._send(HTTPStatus.OK, "application/json", json.dumps(
                {"version": self.server.page_version(), "problems": list(problems),
                 "busy": busy}).encode(), head_only)
            return
        target = Path(self.translate_path(self.path))  # http.server's: no `..`, no query
        if target == self.server.page:
            self._send_page(head_only)
            return
        if "\x00" in str(target):  # `%00`: no file has it (realpath would raise)
            self._plain(HTTPStatus.NOT_FOUND, "not found", head_only)
            return
        real = os.path.realpath(target)
        inside = os.path.realpath(self.server.folder)
        if os.path.commonpath([real, inside]) != inside or not os.path.isfile(real):
            self._plain(HTTPStatus.NOT_FOUND, "not found", head_only)
            return
        self._send_file(Path(real), head_only)

    def _own_host(self) -> bool:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        return host in ("", HOST, "localhost")

    # -- answers ---------------------------------------------------------------------------

    def _send_page(self, head_only: bool) -> None:
        """The report as on disk, with the live script before </body>; the version is read
        from the very file sent, so a page is never newer than the version it waits past."""
        page = self.server.page
        try:
            data = page.read_bytes()
            text, version = data.decode("utf-8", errors="replace"), content_version(data)
        except OSError:
            text = _WAITING % {"page": html.escape(str(page.name))}
            version = "none"
        script = _SCRIPT % {"version": json.dumps(version), "state": json.dumps(STATE_PATH),
                            "poll": POLL_MS}
        at = text.rfind("</body>")
        text = text[:at] + script + text[at:] if at >= 0 else text + script
        self._send(HTTPStatus.OK, _TYPES[".html"], text.encode("utf-8"), head_only)

    def _send_file(self, path: Path, head_only: bool) -> None:
        """A file, whole or the one byte range asked (a player seeking in a clip)."""
        try:
            file = open(path, "rb")  # noqa: SIM115 (closed by the `with` below)
        except OSError:
            self._plain(HTTPStatus.NOT_FOUND, "not found", head_only)
            return
        with file:
            size = os.fstat(file.fileno()).st_size
            try:
                span = _range(self.headers.get("Range"), size)
            except _Unsatisfiable:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, end = span or (0, size - 1)
            self.send_response(HTTPStatus.PARTIAL_CONTENT if span else HTTPStatus.OK)
            self.send_header("Content-Type", _TYPES.get(path.suffix.lower()) or
                             mimetypes.guess_type(path.name)[0] or "application/octet-stream")
            self.send_header("Content-Length", str(max(0, end - start + 1)))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Cache-Control", "no-cache")
            if span:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if head_only or end < start:
                return
            file.seek(start)
            left = end - start + 1
            try:
                while left > 0:
                    chunk = file.read(min(_CHUNK, left))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the player moved on

    def _send(self, status: HTTPStatus, kind: str, body: bytes, head_only: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head_only:
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    def _plain(self, status: HTTPStatus, text: str, head_only: bool) -> None:
        self._send(status, "text/plain; charset=utf-8", (text + "\n").encode(), head_only)

    def list_directory(self, path):  # never called (no folder is served), but never lists
        self.send_error(HTTPStatus.NOT_FOUND)

    def log_message(self, format: str, *args) -> None:
        pass  # no access log on the watch's terminal


class _Unsatisfiable(Exception):
    """A byte range that starts past the file's end."""


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range a Range header asks for: (start, end), None for the whole file
    (no header, or one this server does not do: several ranges); _Unsatisfiable past its
    end."""
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if match is None or not (match[1] or match[2]):
        return None
    if match[1]:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    else:  # the last N bytes
        start, end = max(0, size - int(match[2])), size - 1
    if start >= size or start > end:
        raise _Unsatisfiable
    return start, end


def serve_report(folder: Path, page: Path, port: int) -> ReportServer:
    """A server for `page` in `folder`, bound (a port in use is a UserError), not started."""
    return ReportServer(folder, page, port)


def serve_until_interrupted(server: ReportServer, out: Callable[[str], None]) -> None:
    """`report --serve`: serve in this thread until Ctrl-C, then say so in one line."""
    from ..collector import running

    out(f"serving {server.page_url} (the page reloads when the report is written again; "
        "Ctrl-C stops)")
    try:
        with running():  # a long-running phase of a paused command (collector.py)
            server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        out("stopped serving")
    finally:
        server.server_close()
