"""Real S3-compatible servers for the tests, as fixtures for a test module that names this file
in `pytest_plugins`:

- `s3_server`: SeaweedFS (tests/e2e/_seaweed.py), a production object store, one per test run
  (per xdist worker); a test may `kill()` it and `start()` it again on the same data and ports;
- `s3`: a fresh bucket on it, with an environment holding nothing of the machine's AWS
  settings: only the server's endpoint and throwaway credentials (SeaweedFS accepts any key);
- `moto_server` and `moto_s3`: the same on moto's server, kept for what only moto does:
  `seed` (thousands of objects at once), `conflict` (409 ConditionalRequestConflict, which
  S3 answers while another conditional write of the key is in progress) and
  `checking_credentials` (moto refuses unknown keys and wrong secrets; SeaweedFS has no
  credentials configured).

A failed test that used SeaweedFS shows its log's path and tail (a "SeaweedFS" section).

Run as a script, this file serves moto on a free port, prints the port, then runs commands read
from stdin, one JSON list a line, answering "ok" to each, until stdin closes:

    ["seed", BUCKET, PREFIX, COUNT]   COUNT one-byte objects, written straight into moto's
                                      backend (over HTTP moto spends ~20 ms on each request)
    ["conflict", PATH, COUNT]         answer the next COUNT conditional writes to PATH (/bucket/
                                      key) 409 ConditionalRequestConflict, as S3 does while
                                      another conditional write of that key is in progress

In a process of its own the server shares no memory, lock or GIL with the code under test.
Conditional writes are serialised here: moto (5.2) checks If-None-Match and then writes without
a lock, so two simultaneous puts of one key both succeed about once in 300 tries, where S3
itself (and SeaweedFS) lets exactly one through. Everything else is moto's own behaviour.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Iterator

import pytest
from _seaweed import Seaweed

REGION = "us-east-1"


class MotoServer:
    """moto's server in a subprocess: its endpoint, seeding, conflicts, credential checking."""

    def __init__(self, log: IO[str]) -> None:
        self.process = subprocess.Popen([sys.executable, __file__], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=log, text=True)
        port = self.process.stdout.readline().strip()
        if not port.isdigit():
            self.stop()
            raise RuntimeError(f"moto did not start; see {log.name}")
        self.endpoint = f"http://127.0.0.1:{port}"

    def command(self, *args) -> None:
        self.process.stdin.write(json.dumps(args) + "\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "ok"

    def seed(self, bucket: str, prefix: str, count: int) -> list[str]:
        """Put `count` one-byte objects under `prefix`; returns their names."""
        self.command("seed", bucket, prefix, count)
        return [_seed_name(n) for n in range(count)]

    def conflict(self, bucket: str, key: str, count: int) -> None:
        """The next `count` conditional writes of the key are answered 409."""
        self.command("conflict", f"/{bucket}/{key}", count)

    @contextmanager
    def checking_credentials(self) -> Iterator[None]:
        """moto checks every signature against its IAM users while inside (off by default)."""
        import httpx

        url = f"{self.endpoint}/moto-api/reset-auth"
        previous = httpx.post(url, content=b"0").json()["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]
        try:
            yield
        finally:
            httpx.post(url, content=previous.encode())

    def stop(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass(frozen=True)
class S3:
    """A fresh bucket on the server; the environment names the server and these keys."""

    server: Seaweed | MotoServer
    bucket: str
    access_key_id: str
    secret_access_key: str

    def client(self):
        """A boto3 client of its own, for checks behind the store's back."""
        import boto3

        return boto3.session.Session().client("s3")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[Seaweed]:
    """SeaweedFS, one per test run (per xdist worker)."""
    server = Seaweed(tmp_path_factory.mktemp("seaweed"))
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch, tmp_path) -> Iterator[S3]:
    """A new bucket on SeaweedFS, and an environment with only the server's endpoint and test
    keys: no profile, config file or instance metadata of the machine running the tests. A
    test that killed the server and left it down finds it started again after it."""
    if not s3_server.alive():
        s3_server.start()
    yield _bucket(s3_server, monkeypatch, tmp_path)
    if not s3_server.alive():
        s3_server.start()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory) -> Iterator[MotoServer]:
    """moto's server, for seeding, 409 conflicts and credential checks (see the top)."""
    log_path = tmp_path_factory.mktemp("moto") / "server.log"
    with log_path.open("w") as log:
        server = MotoServer(log)
        yield server
        server.stop()


@pytest.fixture
def moto_s3(moto_server, monkeypatch, tmp_path) -> S3:
    """`s3`, on moto's server."""
    return _bucket(moto_server, monkeypatch, tmp_path)


def _bucket(server: Seaweed | MotoServer, monkeypatch, tmp_path) -> S3:
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    keys = S3(server, f"films-{uuid.uuid4().hex[:12]}", "AKIATESTKEY",
              f"test-secret-{uuid.uuid4().hex}")
    for name, value in {"AWS_ENDPOINT_URL": server.endpoint,
                        "AWS_DEFAULT_REGION": REGION,
                        "AWS_ACCESS_KEY_ID": keys.access_key_id,
                        "AWS_SECRET_ACCESS_KEY": keys.secret_access_key,
                        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
                        "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(name, value)
    keys.client().create_bucket(Bucket=keys.bucket)
    return keys


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that used SeaweedFS names its log, and shows its last lines."""
    outcome = yield
    report = outcome.get_result()
    server = getattr(item, "funcargs", {}).get("s3_server")
    if report.failed and isinstance(server, Seaweed):
        report.sections.append(("SeaweedFS", f"log: {server.log_path}\n{server.log_tail()}"))


def _seed_name(n: int) -> str:
    return f"{n:064x}.mp4"


CONFLICT = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ConditionalRequestConflict"
            b"</Code><Message>A conflicting conditional operation is currently in progress "
            b"against this resource. Please try again.</Message></Error>")


def _conditional_writes(app, conflicts: dict[str, int]):
    """The WSGI app, with requests carrying If-None-Match handled one at a time, each first
    answered 409 ConditionalRequestConflict while `conflicts` (path -> count) says so."""
    from threading import Lock

    lock = Lock()

    def handle(environ, start_response):
        if "HTTP_IF_NONE_MATCH" not in environ:
            return app(environ, start_response)
        with lock:
            if conflicts.get(environ["PATH_INFO"], 0) > 0:
                conflicts[environ["PATH_INFO"]] -= 1
                environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                start_response("409 Conflict", [("Content-Type", "application/xml")])
                return [CONFLICT]
            return list(app(environ, start_response))

    return handle


def _seed(bucket: str, prefix: str, count: int) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for n in range(count):
        backend.put_object(bucket, prefix + _seed_name(n), b"x")


def serve() -> None:
    """Serve moto on 127.0.0.1 (as moto.server.ThreadedMotoServer does), run stdin's commands."""
    from threading import Thread

    from moto.moto_server.werkzeug_app import (DomainDispatcherApplication, MotoRequestHandler,
                                               create_backend_app)
    from werkzeug.serving import make_server

    conflicts: dict[str, int] = {}
    app = _conditional_writes(DomainDispatcherApplication(create_backend_app), conflicts)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    commands = {"seed": _seed, "conflict": conflicts.__setitem__}
    for line in sys.stdin:
        name, *args = json.loads(line)
        commands[name](*args)
        print("ok", flush=True)
    server.shutdown()


if __name__ == "__main__":
    serve()
