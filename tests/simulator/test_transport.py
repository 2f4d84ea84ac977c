"""simulator/transport.py: the simulator reached in-process, through an httpx transport with no
socket, answers as its socket server does: the same submit / poll / download exchange on every
simulated provider gives the same statuses, headers and bodies (generated ids, the base URL and
the Date header aside), and a fault ends a request as it does on a real connection.

Both simulators run on a virtual clock the flow advances, so both see the same states."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import jwt
import pytest

from kling_compose.simulator import Faults, Simulator
from kling_compose.simulator.server import IN_PROCESS_URL
from kling_compose.simulator.transport import SimulatorTransport

from .kit import RUNWARE_AUTH, duration_s, frames, make_image, new_uuid

PROMPT = "A violinist plays on a dock at dawn"
DOT = make_image((8, 8))  # a small PNG: dripped whole in a fraction of a second
BEARER = {"Authorization": "Bearer sim-key"}


class Clock:
    """The simulators' clock: it moves only when a flow says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def simulator(listen: bool) -> Iterator[tuple[Simulator, httpx.Client, Clock]]:
    """A simulator accepting any key on a virtual clock, and a client that reaches it: over
    127.0.0.1 (listen=True), or through its in-process transport (listen=False)."""
    clock = Clock()
    sim = Simulator(faults=Faults(task_seconds=5.0), clock=clock).start(listen=listen)
    transport = None if listen else sim.transport()
    try:
        with httpx.Client(transport=transport, timeout=10) as client:
            yield sim, client, clock
    finally:
        sim.stop()


@contextmanager
def no_sockets(monkeypatch) -> Iterator[None]:
    """Every attempt to connect a socket fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a socket was connected")

    with monkeypatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        patch.setattr(socket, "create_connection", refuse)
        yield


# -- one flow per provider: submit, poll before and after it is done, download ------------------

Exchange = dict[str, Any]


def record(answer: httpx.Response) -> Exchange:
    """What a client sees of an answer: status, headers in order, body (JSON parsed; bytes as
    their length and digest). Date's value and Content-Length's are left out: the latter is
    checked here against the body (a URL of the other simulator has another length)."""
    length = answer.headers.get("content-length")
    if answer.request.method == "HEAD":
        assert answer.content == b""  # the GET's headers, Content-Length too, and no body
    elif length is not None:
        assert int(length) == len(answer.content)
    headers = [(k, f"<{k}>" if k in ("date", "content-length") else v)
               for k, v in answer.headers.multi_items()]
    if answer.headers.get("content-type", "").startswith("application/json"):
        body: Any = answer.json()
    elif answer.content:  # a clip: each render differs in its bytes, not in what it shows
        (first, *_) = frames(answer.content)
        body = {"clip_s": round(duration_s(answer.content), 2), "frame": first.size}
    else:
        body = None
    return {"status": answer.status_code, "reason": answer.reason_phrase, "headers": headers,
            "body": body}


def download(client: httpx.Client, url: str) -> list[Exchange]:
    return [record(client.head(url)), record(client.get(url))]


def runware(sim: Simulator, client: httpx.Client, clock: Clock) -> list[Exchange]:
    task_uuid = new_uuid()
    task = {"taskType": "videoInference", "taskUUID": task_uuid,
            "model": "klingai:kling-video@3-pro", "positivePrompt": PROMPT, "width": 1920,
            "height": 1080, "duration": 3, "deliveryMethod": "async", "includeCost": True}
    url, poll = sim.url("runware"), [{"taskType": "getResponse", "taskUUID": task_uuid}]
    seen = [record(client.post(url, json=[task], headers=BEARER)),
            record(client.post(url, json=poll, headers=BEARER))]
    clock.now += 10
    seen.append(record(done := client.post(url, json=poll, headers=BEARER)))
    return seen + download(client, done.json()["data"][0]["videoURL"])


def fal(sim: Simulator, client: httpx.Client, clock: Clock) -> list[Exchange]:
    auth = {"Authorization": "Key fal-id:fal-secret"}
    submitted = client.post(f"{sim.url('fal')}/fal-ai/kling-video/v3/pro/text-to-video",
                            json={"prompt": PROMPT, "duration": "5"}, headers=auth)
    urls = submitted.json()
    seen = [record(submitted), record(client.get(urls["status_url"], headers=auth))]
    clock.now += 10
    seen.append(record(client.get(urls["status_url"], headers=auth)))
    seen.append(record(result := client.get(urls["response_url"], headers=auth)))
    return seen + download(client, result.json()["video"]["url"])


def _jobs(sim: Simulator, client: httpx.Client, clock: Clock, provider: str, headers: dict,
          body: dict) -> list[Exchange]:
    """createTask / recordInfo, the task API's and kie's shared shape."""
    base = f"{sim.url(provider)}/api/v1/jobs"
    created = client.post(f"{base}/createTask", json=body, headers=headers)
    info = {"taskId": created.json()["data"]["taskId"]}
    seen = [record(created), record(client.get(f"{base}/recordInfo", params=info,
                                               headers=headers))]
    clock.now += 10
    seen.append(record(done := client.get(f"{base}/recordInfo", params=info, headers=headers)))
    (url,) = json.loads(done.json()["data"]["resultJson"])["resultUrls"]
    return seen + download(client, url)


def kling_v3_task(sim: Simulator, client: httpx.Client, clock: Clock) -> list[Exchange]:
    body = {"model": "kling/v3", "input": {"prompt": PROMPT, "multi_shots": False,
                                           "duration": "3", "aspect_ratio": "16:9",
                                           "mode": "pro", "audio": False}}
    return _jobs(sim, client, clock, "kling-v3-task", {"x-api-key": "sim-key"}, body)


def kie(sim: Simulator, client: httpx.Client, clock: Clock) -> list[Exchange]:
    body = {"model": "kling-3.0/video", "input": {"prompt": PROMPT, "sound": False,
                                                  "duration": "3", "aspect_ratio": "16:9",
                                                  "mode": "pro", "multi_shots": False}}
    return _jobs(sim, client, clock, "kie", BEARER, body)


def kling(sim: Simulator, client: httpx.Client, clock: Clock) -> list[Exchange]:
    now = int(time.time())
    token = jwt.encode({"iss": "ak-any", "exp": now + 1800, "nbf": now - 5},
                       "sk-any-0123456789abcdef0123456789", algorithm="HS256",
                       headers={"typ": "JWT"})
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{sim.url('kling')}/v1/videos/text2video"
    body = {"model_name": "kling-v3", "prompt": PROMPT, "mode": "std", "duration": "3",
            "aspect_ratio": "16:9", "sound": "off", "external_task_id": "shot-1"}
    created = client.post(url, json=body, headers=auth)
    task_url = f"{url}/{created.json()['data']['task_id']}"
    seen = [record(created), record(client.get(task_url, headers=auth))]
    clock.now += 10
    seen.append(record(done := client.get(task_url, headers=auth)))
    (video,) = done.json()["data"]["task_result"]["videos"]
    return seen + download(client, video["url"])


FLOWS: dict[str, Callable[[Simulator, httpx.Client, Clock], list[Exchange]]] = {
    "runware": runware, "fal": fal, "kling-v3-task": kling_v3_task, "kie": kie, "kling": kling}


# -- comparing two runs -------------------------------------------------------------------------

_ID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                 r"[0-9a-fA-F]{12}|[0-9a-fA-F]{8}\b|[A-Za-z0-9_-]{20,}")
_DIGITS = re.compile(r"\d{10,}")
# fields random in every answer, or measured on the real clock: the same name, any value
_VARIES = frozenset({"seed",  # Runware: a random seed when none was asked for
                     "costTime"})  # kie, kling-v3-task: real milliseconds from create to done


def normalised(transcript: Any, base_url: str) -> Any:
    """The transcript with what differs between two simulators by design replaced: the base
    URL by "{base}", every generated id by "<id N>" (N: the order of first appearance, so the
    same id stays the same placeholder), clock readings (10 digits or more) by "<time>", the
    values of _VARIES by "<varies>"."""
    ids: dict[str, str] = {}

    def text(value: str) -> str:
        value = value.replace(base_url, "{base}")
        value = _ID.sub(lambda m: ids.setdefault(m.group(), f"<id {len(ids)}>"), value)
        return _DIGITS.sub("<time>", value)

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {text(k): "<varies>" if k in _VARIES else walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        if isinstance(value, str):
            return text(value)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 10**9:
            return "<time>"
        return value

    return walk(transcript)


@pytest.mark.parametrize("provider", FLOWS)
def test_in_process_answers_are_the_socket_servers(provider, monkeypatch):
    with simulator(listen=True) as (sim, client, clock):
        served = FLOWS[provider](sim, client, clock)
        base = sim.base_url
        served_records = [(r.provider, r.kind, r.method) for r in sim.requests()]
    with no_sockets(monkeypatch), simulator(listen=False) as (sim, client, clock):
        in_process = FLOWS[provider](sim, client, clock)
        assert sim.base_url == IN_PROCESS_URL
        in_process_records = [(r.provider, r.kind, r.method) for r in sim.requests()]
    assert normalised(in_process, IN_PROCESS_URL) == normalised(served, base)
    assert in_process_records == served_records  # recorded alike, kinds and all
    assert [e["status"] for e in served][:2] in ([200, 200], [200, 202])  # submitted, pending
    assert served[-1]["status"] == 200 and served[-1]["body"]["clip_s"] > 2  # a clip came


# -- faults end a request as a connection would ------------------------------------------------

def outcome(call: Callable[[], httpx.Response]) -> tuple:
    """(status, reason, headers, body) of an answer (a clip's bytes: whether there are
    some), or the exception's class and message."""
    try:
        answer = call()
        json_body = answer.headers["content-type"] == "application/json"
        headers = [(k, v) for k, v in answer.headers.multi_items()
                   if k not in ("date", "content-length")]
        return (answer.status_code, answer.reason_phrase, headers,
                answer.json() if json_body else bool(answer.content))
    except httpx.HTTPError as exc:
        return type(exc), str(exc)


def faulted(listen: bool, arm: Callable[[Faults], None], task_uuid: str) -> tuple:
    """A Runware clip made, the fault armed, then one submission and one download."""
    with simulator(listen) as (sim, client, clock):
        runware(sim, client, clock)
        url = next(r.path for r in sim.requests("runware", "download"))
        arm(sim.faults)
        task = [{"taskType": "videoInference", "taskUUID": task_uuid,
                 "model": "klingai:kling-video@3-pro", "positivePrompt": PROMPT,
                 "width": 1920, "height": 1080, "duration": 3}]
        return (outcome(lambda: client.post(sim.url("runware"), json=task, headers=BEARER)),
                outcome(lambda: client.get(sim.base_url + url)),
                len(sim.generations("runware")))


@pytest.mark.parametrize("arm", [
    lambda f: f.reset(1, kind="submit"),
    lambda f: f.reset(1, kind="submit", after_processing=True),
    lambda f: f.reset(1, kind="download"),
    lambda f: f.truncate(1, 0.4),
    lambda f: f.rate_limit(1, retry_after=3, kind="submit").error(1, status=503, kind="download"),
    lambda f: f.error(1, status=455, kind="submit"),  # a status no standard names
], ids=["reset", "reset-after-processing", "reset-download", "truncate", "429-503", "455"])
def test_faults_end_requests_as_on_a_connection(arm):
    task_uuid = new_uuid()
    served, in_process = faulted(True, arm, task_uuid), faulted(False, arm, task_uuid)
    assert in_process == served
    assert served[2] >= 1  # the clip of the flow, and the submission a late reset lost


def dripped(listen: bool) -> tuple:
    """A download dripping a byte every 0.3 s to a client that waits 0.1 s between bytes."""
    with simulator(listen) as (sim, client, clock):
        runware(sim, client, clock)
        url = sim.base_url + next(r.path for r in sim.requests("runware", "download"))
        sim.faults.drip(1, 0.3)
        started = time.monotonic()
        try:
            client.get(url, timeout=httpx.Timeout(5, read=0.1))
        except httpx.HTTPError as exc:
            assert 0.1 <= time.monotonic() - started < 1
            return type(exc), str(exc)
        raise AssertionError("a dripping download ended")


def dripped_whole(listen: bool) -> tuple:
    """A small upload's download dripped a byte every 2 ms: what arrives, and how it ends."""
    with simulator(listen) as (sim, client, _):
        uploaded = client.post(sim.url("kie-upload") + "/api/file-stream-upload",
                               files={"file": ("dot.png", DOT, "image/png")},
                               data={"uploadPath": "kling-compose"}, headers=BEARER)
        url = uploaded.json()["data"]["downloadUrl"]
        sim.faults.drip(1, 0.002, provider="kie")
        got = b""
        with client.stream("GET", url) as answer:
            try:
                for chunk in answer.iter_raw():
                    got += chunk
            except httpx.HTTPError as exc:
                return got, type(exc), str(exc), answer.headers.get("content-length")
        raise AssertionError("a dripping download ended without a reset")


def test_a_dripping_download_times_out_between_bytes_or_ends_in_a_reset():
    assert dripped(False) == dripped(True) == (httpx.ReadTimeout, "timed out")
    in_process = dripped_whole(False)
    assert in_process == dripped_whole(True)
    assert in_process == (DOT, httpx.ReadError, "[Errno 104] Connection reset by peer", None)


def test_another_host_is_not_reached_in_process():
    with simulator(listen=False) as (sim, client, _):
        with pytest.raises(httpx.ConnectError, match="not the simulator"):
            client.get("https://api.runware.ai/v1")
        with pytest.raises(httpx.ConnectError):
            client.get("http://simulator.invalid:8080/runware/v1")
        assert sim.requests() == []


def test_the_async_transport_answers_alike():
    asyncio.run(_async_flow())


async def _async_flow():
    sim = Simulator(faults=Faults(task_seconds=0.05)).start(listen=False)
    try:
        async with httpx.AsyncClient(transport=sim.transport()) as client:
            task_uuid = new_uuid()
            task = [{"taskType": "videoInference", "taskUUID": task_uuid,
                     "model": "klingai:kling-video@3-pro", "positivePrompt": PROMPT,
                     "width": 1920, "height": 1080, "duration": 3}]
            assert (await client.post(sim.url("runware"), json=task,
                                      headers=BEARER)).status_code == 200
            await asyncio.sleep(0.1)
            poll = [{"taskType": "getResponse", "taskUUID": task_uuid}]
            done = (await client.post(sim.url("runware"), json=poll, headers=BEARER)).json()
            clip = await client.get(done["data"][0]["videoURL"])
            assert clip.status_code == 200 and clip.headers["content-type"] == "video/mp4"
            assert int(clip.headers["content-length"]) == len(clip.content) > 1000
            sim.faults.reset(1, kind="poll")
            with pytest.raises(httpx.ReadError):
                await client.post(sim.url("runware"), json=poll, headers=BEARER)
    finally:
        sim.stop()


def test_a_transport_reaches_a_listening_simulator_too(sim, client):
    poll = [{"taskType": "getResponse", "taskUUID": new_uuid()}]
    with httpx.Client(transport=SimulatorTransport(sim)) as in_process:
        url = sim.url("runware")
        here = in_process.post(url, json=poll, headers=RUNWARE_AUTH)
        there = client.post(url, json=poll, headers=RUNWARE_AUTH)
    assert (here.status_code, here.json()) == (there.status_code, there.json())
    assert len(sim.requests("runware", "poll")) == 2
