"""Issue 22, the shared store: a record planted in the store must never send a teammate's
provider key elsewhere, nor make the teammate pay."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from _e2e import chain_storyboard
from test_money_runs import run, sim  # noqa: F401
from test_shared_store import _shot_key

pytest_plugins = ["_s3"]  # the fixture s3 (SeaweedFS)


@pytest.fixture
def attacker():
    """A server that records every request it gets (and the headers it was sent)."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            body = json.dumps({"status": "COMPLETED"}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET  # noqa: N815

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_a_planted_task_record_never_sends_the_key_elsewhere(project, sim, tmp_path, attacker):
    url, seen = attacker
    shared = tmp_path / "drive"
    root = project(chain_storyboard(1).replace("name: chain\n", f"name: chain\nstore: {shared}\n"))
    key = _shot_key(root, sim)
    shared.mkdir()
    (shared / f"claim-{key}.json").write_text(json.dumps({"owner": "mallory:1", "nonce": "n1"}))
    (shared / f"task-{key}-n1.json").write_text(json.dumps({
        "provider": "fal", "provider_task_id": "req-1",
        "handle": {"status_url": f"{url}/steal/status", "response_url": f"{url}/steal"}}))
    summary = run(root, "fal", sim, KLING_COMPOSE_POLL_TIMEOUT_SECONDS="3")
    assert seen == []  # not one request, so no key, reached the planted host
    assert summary["failed"] == 1 and sim.generations("fal") == []  # the victim paid nothing
    error = next(t["error"] for t in summary["tasks"] if t["id"] == "generate:s1")
    assert "points outside fal's hosts" in error and "mallory:1" in error
    assert f"claim-{key}.json" in error


def test_a_result_record_that_does_not_parse_is_named_and_ignored(project, sim, tmp_path):
    """`{"artifacts": [["x"]]}` in result-<key>.json crashed every clone needing the shot."""
    shared = tmp_path / "drive"
    root = project(chain_storyboard(1).replace("name: chain\n", f"name: chain\nstore: {shared}\n"))
    key = _shot_key(root, sim)
    shared.mkdir()
    (shared / f"result-{key}.json").write_text(json.dumps({"artifacts": [["x"]]}))
    summary = run(root, "fal", sim)
    assert summary["failed"] == 0 and len(sim.generations("fal")) == 1, summary


def test_a_store_killed_mid_run_stops_claiming_with_a_message_and_pays_once(project, sim, s3):
    """Issue 22: the S3 server killed mid-run raised StoreError from the claim path and ended
    the run with a traceback. Now the shot in flight finishes, the next one is not submitted
    without a claim (one message), and a run with the store back (SeaweedFS SIGKILLed, then
    started again on its data: the first run's claim of s1 is still there) pays for the next
    one only, and publishes both results."""
    import time

    root = project(chain_storyboard(2).replace("name: chain\n",
                                               f"name: chain\nstore: s3://{s3.bucket}/f\n"))
    sim.faults.task_seconds = 1.5

    def kill_at_first_submit():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not sim.requests("fal", "submit"):
            time.sleep(0.01)
        s3.server.kill()

    killer = threading.Thread(target=kill_at_first_submit, daemon=True)
    killer.start()
    first = run(root, "fal", sim)
    killer.join(timeout=60)
    assert not s3.server.alive()
    assert len(sim.generations("fal")) == 1  # the shot in flight, once
    errors = [t["error"] for t in first["tasks"] if t.get("error")]
    assert first["failed"] >= 1 and any("failed during this run" in e and "is not submitted "
                                        "without a claim" in e for e in errors), first
    s3.server.start()  # the store answers again, with what it held
    second = run(root, "fal", sim)
    assert second["failed"] == 0, second
    assert len(sim.generations("fal")) == 2  # s1 never paid again, s2 once
    listed = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix="f/")["Contents"]
    assert len([o for o in listed if o["Key"].startswith("f/result-")]) == 2
