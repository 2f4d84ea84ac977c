"""The providers' official Python clients against the simulator: fal-client and runware-sdk.

The simulator was written from our reading of each protocol, so its own tests cannot catch a
misreading. Here the clients the providers publish talk to it: a test fails when a client
rejects an answer of the simulator, or when the simulator refuses what a client sends. Then the
project's own requests (built by `kling_compose.providers`) are compared with the clients'
requests for the same job, as the simulator recorded them.

- fal-client 1.0.3 builds every URL from module constants, read at call time:
  `QUEUE_URL_FORMAT + endpoint` (submit; status/result/cancel come from the submit answer, or
  from `{QUEUE_URL_FORMAT}{owner}/{alias}/requests/{id}` in `from_request_id`), `REST_URL`
  (`CDNTokenManager`: `/storage/auth/token?storage_type=fal-cdn-v3`; the fallback
  `/storage/upload/initiate?storage_type=gcs`) and `CDN_URL` (`_upload_v3`: `/files/upload`).
  `CDNTokenManager` reads `REST_URL` when it is built, so the constants are patched before a
  client is made. An unpatched constant would send the request to the real host, which fails.
- runware-sdk 1.8.0 takes `transport="rest"` and `http_base_url`; it POSTs one task per request
  with `Authorization: Bearer`, polls `getResponse` 1 s after the ACK, then 0.5 s, x1.5...
  (`client.py` `_poll_rest`). `taskType` is passed explicitly so that the SDK does not fetch its
  model registry from schemas.runware.ai.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import types
import typing
from decimal import Decimal
from pathlib import Path

import fal_client
import fal_client.client
import httpx
import pytest
import runware.types.task_map as runware_types
from runware import Runware, RunwareError
from runware.types.sdk import RunOptions

from kling_compose.pipeline import compile_storyboard, load_resolved
from kling_compose.plan import substitute
from kling_compose.providers import PROVIDERS
from kling_compose.settings import Secret
from kling_compose.simulator import Faults, Simulator
from kling_compose.simulator.runware import MODELS as SIMULATED_RUNWARE_MODELS

from .kit import I2V, KEYS, O3, PRO, T2V, data_uri

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PROMPT = "a violinist plays on a dock at dawn"


class ManualClock:
    """The simulator's clock, moved by the test: generation states change exactly when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def timed_sim(clock):
    """A simulator whose generations take 10 s of the manual clock."""
    with Simulator(keys=KEYS, faults=Faults(task_seconds=10.0), clock=clock) as simulator:
        yield simulator


@pytest.fixture
def start_png(tmp_path, png) -> Path:
    path = tmp_path / "start.png"
    path.write_bytes(png)
    return path


@pytest.fixture
def point_fal_client(monkeypatch):
    """point_fal_client(sim): a fal-client SyncClient whose queue, REST and CDN hosts are the
    simulator's (its pooled connections are closed after the test)."""
    made: list[fal_client.SyncClient] = []

    def point(sim) -> fal_client.SyncClient:
        monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", sim.url("fal") + "/")
        monkeypatch.setattr(fal_client.client, "REST_URL", sim.url("fal-rest"))
        monkeypatch.setattr(fal_client.client, "CDN_URL", sim.url("fal-cdn"))
        made.append(fal_client.SyncClient(key=KEYS["fal"]))
        return made[-1]

    yield point
    for client in made:
        if "_client" in client.__dict__:  # a cached_property, built on first use
            client.__dict__["_client"].close()


@pytest.fixture
def fal(point_fal_client, sim) -> fal_client.SyncClient:
    return point_fal_client(sim)


def runware_sdk(sim, **config) -> Runware:
    """runware-sdk on its REST transport at the simulator; a run that never ends fails in 15 s
    (the SDK's default poll budget is 20 minutes)."""
    return Runware(
        api_key=config.pop("api_key", KEYS["runware"]),
        transport="rest",
        http_base_url=sim.url("runware"),
        timeout=15_000,
        poll_timeout=15_000,
        **config,
    )


def envelope(record) -> dict:
    """What two clients must agree on for the same call: method, host prefix and path (ids
    as {id}), query, auth scheme (the simulator masks the secret) and content type."""
    return {
        "method": record.method,
        "path": _UUID.sub("{id}", record.path),
        "query": dict(record.query),
        "auth": record.headers.get("authorization", "").split(" ")[0],
        "content_type": record.headers.get("content-type", "").split(";")[0],
    }


def typed_keys(typed_dict) -> set[str]:
    """The field names a runware-sdk TypedDict declares (generated from Runware's schemas)."""
    return set(typing.get_type_hints(typed_dict))


def fetch(url: str) -> bytes:
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 200, (url, answer.status_code)
    return answer.content


# fal-client ------------------------------------------------------------------------------------


def test_fal_client_uploads_with_a_rest_token_to_the_cdn(fal, sim, start_png, png):
    url = fal.upload_file(start_png, fallback_repository=[])  # no silent fallback
    again = fal.upload(png, "image/png", file_name="again.png", fallback_repository=[])

    assert url.startswith(sim.base_url + "/files/") and url.endswith(".png")
    assert fetch(url) == png and fetch(again) == png
    token, first, second = (envelope(r) for r in sim.requests("fal", "upload"))
    # one token: CDNTokenManager parsed expires_at as a future, timezone-aware datetime
    assert token == {"method": "POST", "path": "/fal-rest/storage/auth/token",
                     "query": {"storage_type": "fal-cdn-v3"}, "auth": "Key",
                     "content_type": "application/json"}
    assert first == second == {"method": "POST", "path": "/fal-cdn/files/upload", "query": {},
                               "auth": "Bearer", "content_type": "image/png"}
    names = [r.headers.get("x-fal-file-name") for r in sim.requests("fal", "upload")[1:]]
    assert names == ["start.png", "again.png"]


def test_fal_client_falls_back_to_the_storage_upload(fal, sim, png):
    url = fal.upload(png, "image/png", file_name="start.png", repository="fal",
                     fallback_repository=[])

    assert fetch(url) == png
    initiate, put = sim.requests("fal", "upload")
    assert envelope(initiate) == {"method": "POST", "path": "/fal-rest/storage/upload/initiate",
                                  "query": {"storage_type": "gcs"}, "auth": "Key",
                                  "content_type": "application/json"}
    assert initiate.body == {"file_name": "start.png", "content_type": "image/png"}
    assert put.method == "PUT" and put.path.startswith("/fal-cdn/storage/put/")


def test_fal_client_follows_a_text_to_video_job_through_its_states(point_fal_client, timed_sim,
                                                                   clock):
    sim = timed_sim
    fal = point_fal_client(sim)
    arguments = {"prompt": PROMPT, "duration": "3", "aspect_ratio": "16:9",
                 "generate_audio": False}

    handle = fal.submit(T2V, arguments)
    queued = handle.status()
    clock.now = 5.0
    running = handle.status(with_logs=True)
    clock.now = 11.0
    done = handle.status(with_logs=True)
    result = handle.get()
    by_id = fal.status(T2V, handle.request_id)  # the URL fal-client builds itself

    assert queued == fal_client.Queued(position=0)
    assert running == fal_client.InProgress(logs=[])
    assert isinstance(done, fal_client.Completed) and done.logs == [] and done.error is None
    assert done.metrics["inference_time"] == 10.0
    assert isinstance(by_id, fal_client.Completed)
    video = result["video"]
    assert video["content_type"] == "video/mp4" and video["url"].startswith(sim.base_url)
    mp4 = fetch(video["url"])
    assert mp4[4:8] == b"ftyp" and len(mp4) == video["file_size"]
    [generation] = sim.generations("fal")
    assert generation.id == handle.request_id and generation.request["input"] == arguments
    submit = sim.requests("fal", "submit")[0]
    assert envelope(submit) == {"method": "POST", "path": "/fal/" + T2V, "query": {},
                                "auth": "Key", "content_type": "application/json"}
    assert submit.body == arguments
    polls = [(envelope(r)["path"], r.query.get("logs")) for r in sim.requests("fal", "poll")]
    status, response = ("/fal/fal-ai/kling-video/requests/{id}/status",
                        "/fal/fal-ai/kling-video/requests/{id}")
    assert polls == [(status, "false"), (status, "true"), (status, "true"), (status, "false"),
                     (response, None), (status, "false")]


def test_fal_clients_run_an_image_to_video_job_from_an_uploaded_image(fal, sim, start_png):
    url = fal.upload_file(start_png, fallback_repository=[])
    updates: list = []
    result = fal.subscribe(I2V, {"prompt": PROMPT, "duration": "3", "start_image_url": url},
                           with_logs=True, interval=0.01, on_queue_update=updates.append,
                           client_timeout=15)

    async def with_the_async_client():
        client = fal_client.AsyncClient(key=KEYS["fal"])
        uploaded = await client.upload_file(start_png, fallback_repository=[])
        handle = await client.submit(I2V, {"prompt": PROMPT, "duration": "3",
                                           "start_image_url": uploaded})
        return uploaded, await asyncio.wait_for(handle.get(interval=0.01), 15)

    async_url, async_result = asyncio.run(with_the_async_client())

    assert isinstance(updates[-1], fal_client.Completed) and updates[-1].error is None
    assert all(isinstance(u, (fal_client.Queued, fal_client.InProgress)) for u in updates[:-1])
    for answer in (result, async_result):
        assert fetch(answer["video"]["url"])[4:8] == b"ftyp"
    starts = [g.request["input"]["start_image_url"] for g in sim.generations("fal")]
    assert starts == [url, async_url]
    assert [envelope(r)["path"] for r in sim.requests("fal", "submit")] == ["/fal/" + I2V] * 2


def test_fal_client_sees_failures_and_refusals(fal, sim):
    sim.faults.fail_generation("dragon", "content policy")
    handle = fal.submit(T2V, {"prompt": "a dragon eats the moon", "duration": "3"})
    events = list(itertools.islice(handle.iter_events(interval=0.01), 1000))  # at most ~10 s
    with pytest.raises(fal_client.FalClientHTTPError) as failed:
        handle.get()
    with pytest.raises(fal_client.FalClientHTTPError) as refused:
        fal.submit(T2V, {"prompt": PROMPT, "duration": 3})  # an int: fal wants "3"
    with pytest.raises(fal_client.FalClientHTTPError) as unauthorized:
        fal_client.SyncClient(key="wrong").submit(T2V, {"prompt": PROMPT})
    with pytest.raises(fal_client.FalClientHTTPError) as too_late:
        handle.cancel()

    last = events[-1]
    assert isinstance(last, fal_client.Completed)
    assert (last.error, last.error_type) == ("content policy", "content_policy_violation")
    assert failed.value.status_code == 422
    assert failed.value.message[0]["type"] == "content_policy_violation"
    assert refused.value.status_code == 422
    assert refused.value.message[0]["loc"] == ["body", "duration"]
    assert unauthorized.value.status_code == 401 and "Key" in unauthorized.value.message
    assert too_late.value.status_code == 400 and "ALREADY_COMPLETED" in too_late.value.message
    assert len(sim.generations("fal")) == 1


def test_fal_client_cancels_a_running_job(point_fal_client, timed_sim, clock):
    fal = point_fal_client(timed_sim)
    handle = fal.submit(T2V, {"prompt": PROMPT, "duration": "3"})
    handle.cancel()  # raises on anything but a 2xx answer
    clock.now = 11.0
    done = handle.status()
    assert isinstance(done, fal_client.Completed) and done.error_type == "request_cancelled"


# runware-sdk -----------------------------------------------------------------------------------


def test_runware_sdk_uploads_media_and_runs_a_video_inference(timed_sim, clock, png):
    sim = timed_sim
    progress: list = []

    def on_progress(item):
        progress.append(item)
        clock.now = 11.0  # the first poll saw `processing`: let the generation finish

    async def scenario():
        async with runware_sdk(sim) as rw:
            uploaded = await rw.media_storage({"operation": "upload",
                                               "media": data_uri(png)})
            legacy = await rw.image_upload({"image": base64.b64encode(png).decode()})
            results = await rw.run(
                {"taskType": "videoInference", "model": PRO, "positivePrompt": PROMPT,
                 "duration": 3, "numberResults": 2, "includeCost": True,
                 "deliveryMethod": "async",
                 "inputs": {"frameImages": [{"image": uploaded[0]["mediaUUID"],
                                             "frame": "first"}]}},
                RunOptions(on_progress=on_progress))
            return uploaded, legacy, results

    [uploaded], [legacy], results = asyncio.run(scenario())

    assert set(uploaded) == typed_keys(runware_types.MediaStorageResultUpload)
    assert uploaded["operation"] == "upload" and fetch(uploaded["mediaURL"]) == png
    assert set(legacy) == typed_keys(runware_types.ImageUploadResult)
    assert progress and all(p["status"] == "processing" for p in progress)
    assert all(isinstance(p["progress"], int) for p in progress)  # GetResponseResult: int
    declared = typed_keys(runware_types.VideoInferenceResult) | typed_keys(
        runware_types.GetResponseResult)
    assert len(results) == 2 and len({r["videoUUID"] for r in results}) == 2
    for item in results:
        assert set(item) <= declared, set(item) - declared
        assert item["status"] == "success" and item["NSFWContent"] is False
        assert item["cost"] == pytest.approx(0.336)  # 0.112 USD/s x 3 s, per result
        assert isinstance(item["seed"], int)
        assert fetch(item["videoURL"])[4:8] == b"ftyp"
    assert sim.billed("runware") == Decimal("0.672")
    submit = sim.requests("runware", "submit")[0]
    assert envelope(submit) == {"method": "POST", "path": "/runware/v1", "query": {},
                                "auth": "Bearer", "content_type": "application/json"}
    [task] = submit.body
    assert task["deliveryMethod"] == "async" and task["taskUUID"] == results[0]["taskUUID"]
    polls = [r.body for r in sim.requests("runware", "poll")]
    assert len(polls) == 2  # processing, then both results
    assert all(p == [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}] for p in polls)


def test_runware_sdk_raises_the_simulators_errors(sim):
    sim.faults.fail_generation("dragon", "content policy")
    task = {"taskType": "videoInference", "model": PRO, "positivePrompt": PROMPT,
            "width": 1920, "height": 1080, "deliveryMethod": "async"}

    async def scenario():
        caught = {}
        async with runware_sdk(sim) as rw:
            for name, call in (
                ("duration", rw.run({**task, "duration": 2})),
                ("failed", rw.run({**task, "positivePrompt": "a dragon eats the moon",
                                   "duration": 3})),
                ("unknown", rw.get_response({"taskUUID": "0b7c4fe1-5b1f-4c43-9f57-3e0d0f3e1c2a"})),
            ):
                with pytest.raises(RunwareError) as error:
                    await call
                caught[name] = error.value
        async with runware_sdk(sim, api_key="wrong") as rw:
            with pytest.raises(RunwareError) as error:
                await rw.media_storage({"operation": "upload", "media": "aGVsbG8="})
            caught["auth"] = error.value
        return caught

    caught = asyncio.run(scenario())

    # runware-sdk keeps a category, not the raw code: derive_code("invalidDuration") is
    # "validation", "providerContentPolicyViolation" "safety", "taskNotFound" "notFound",
    # "invalidApiKey" "auth"
    duration = caught["duration"]
    assert (duration.code, duration.parameter, duration.status_code) == (
        "validation", "duration", 400)
    assert duration.task_uuid == sim.requests("runware", "submit")[0].body[0]["taskUUID"]
    assert duration.documentation.endswith("klingai-video-3-0-pro#request-duration")
    failed = caught["failed"]
    assert (failed.code, failed.message) == ("safety", "content policy")
    assert failed.task_uuid == sim.generations("runware")[0].id
    assert (caught["unknown"].code, caught["unknown"].status_code) == ("notFound", 404)
    assert (caught["auth"].code, caught["auth"].status_code) == ("auth", 401)
    assert len(sim.generations("runware")) == 1  # the refused task started nothing


@pytest.mark.parametrize(("model", "params"), [
    (PRO, runware_types.KlingaiVideo30ProParams),
    (O3, runware_types.KlingaiVideo30OmniProParams),
])
def test_runware_sdk_and_simulator_know_the_same_parameters(model, params):
    sdk = typed_keys(params)
    simulated = set(SIMULATED_RUNWARE_MODELS[model].keys)
    assert runware_types.models[model].task_type == "videoInference"
    assert sdk - simulated == set(), "parameters the SDK can send and the simulator refuses"
    # seeds 003/004 describe `seed` ("If none was provided, shows the randomly generated
    # seed"); the SDK's schema-generated params do not list it: the one known difference
    assert simulated - sdk == {"seed"}


# the project's requests next to the official clients' -----------------------------------------


@pytest.fixture
def storyboard(tmp_path, png) -> Path:
    root = tmp_path / "film"
    (root / "assets").mkdir(parents=True)
    (root / "assets" / "start.png").write_bytes(png)
    (root / "storyboard.yaml").write_text(
        "version: 1\nname: probe\ndefaults:\n  duration: 3\n  aspect: '16:9'\n"
        "scenes:\n  - id: main\n    shots:\n      - id: s1\n"
        f"        prompt: {PROMPT}\n        first_frame: assets/start.png\n",
        encoding="utf-8",
    )
    return root


def compiled_job(root: Path, provider: str):
    [job] = compile_storyboard(load_resolved(root / "storyboard.yaml"), provider)
    [ref] = job.inputs
    return job, ref


def test_the_projects_fal_requests_match_fal_clients(fal, sim, storyboard, png):
    job, ref = compiled_job(storyboard, "fal")
    provider, key = PROVIDERS["fal"], Secret(KEYS["fal"])

    async def project():
        async with httpx.AsyncClient(timeout=10) as client:
            url = await provider.upload(client.send, png, "image/png", "start.png", sim.url, key)
            request = substitute(job.request, {ref.placeholder: url})
            sent = provider.submit_request(job, request, "", sim.url("fal"), key)
            handle = provider.read_submit(await client.send(sent), "")
            for _ in range(500):
                answer = await client.send(provider.poll_request(handle, sim.url("fal"), key))
                if provider.read_status(answer, handle, 1).state != "processing":
                    break
                await asyncio.sleep(0.01)
            answer = await client.send(provider.result_request(handle, sim.url("fal"), key))
            return request, provider.read_result(answer, handle, 1)

    request, status = asyncio.run(project())
    ours = sim.requests("fal")
    official_url = fal.upload(png, "image/png", file_name="start.png", fallback_repository=[])
    result = fal.subscribe(I2V, {**request, "start_image_url": official_url}, interval=0.01,
                           client_timeout=15)
    theirs = sim.requests("fal")[len(ours):]

    assert status.state == "done" and fetch(result["video"]["url"])[4:8] == b"ftyp"

    def calls(records, kind):
        return [envelope(r) for r in records if r.kind == kind]

    # token from the REST host, bytes to the CDN, each call shaped like fal-client's
    assert calls(ours, "upload") == calls(theirs, "upload")
    assert [r.body for r in ours if r.kind == "upload"][0] == {}  # CDNTokenManager posts {}
    ours_upload = [r for r in ours if r.kind == "upload"][1]
    assert ours_upload.headers.get("x-fal-file-name") == "start.png"
    assert calls(ours, "submit") == calls(theirs, "submit")  # image-to-video, Key auth, JSON
    [our_submit] = [r.body for r in ours if r.kind == "submit"]
    [their_submit] = [r.body for r in theirs if r.kind == "submit"]
    assert our_submit["start_image_url"].startswith(sim.base_url + "/files/")
    assert set(our_submit) == set(their_submit)
    # status and result at fal-client's URLs (it adds ?logs=false; fal's default is no logs)
    strip = [{**c, "query": {}} for c in calls(theirs, "poll")]
    assert set(map(str, calls(ours, "poll"))) == set(map(str, strip))


def test_the_projects_runware_requests_match_runware_sdks(sim, storyboard, png):
    job, ref = compiled_job(storyboard, "runware")
    provider, key = PROVIDERS["runware"], Secret(KEYS["runware"])
    task_uuid = "5d0a4c1e-8f5a-4d8e-9a57-2b1f6a3c9e10"

    async def project():
        async with httpx.AsyncClient(timeout=10) as client:
            media = await provider.upload(client.send, png, "image/png", "start.png", sim.url,
                                          key)
            request = substitute(job.request, {ref.placeholder: media})
            sent = provider.submit_request(job, request, task_uuid, sim.url("runware"), key)
            handle = provider.read_submit(await client.send(sent), task_uuid)
            await client.send(provider.batch_poll_request([handle], sim.url("runware"),
                                                             key))
            return request

    async def official(request):
        async with runware_sdk(sim) as rw:
            [uploaded] = await rw.media_storage({"operation": "upload", "media": data_uri(png)})
            frames = [{**f, "image": uploaded["mediaUUID"]}
                      for f in request["inputs"]["frameImages"]]
            return await rw.run({**request, "inputs": {**request["inputs"],
                                                       "frameImages": frames},
                                 "includeCost": True})

    request = asyncio.run(project())
    ours = sim.requests("runware")
    results = asyncio.run(official(request))
    theirs = sim.requests("runware")[len(ours):]

    assert results[0]["status"] == "success" and results[0]["cost"] == pytest.approx(0.336)
    assert sim.generations("runware")[0].id == task_uuid
    for kind in ("upload", "submit", "poll"):
        mine = [r for r in ours if r.kind == kind]
        sdk = [r for r in theirs if r.kind == kind]
        assert mine and sdk, kind
        assert {str(envelope(r)) for r in mine} == {str(envelope(r)) for r in sdk}, kind
        # one task per array here; the same task fields as the SDK's (values differ)
        assert [sorted(t) for t in mine[0].body] == [sorted(t) for t in sdk[0].body], kind
    submitted = [r for r in ours if r.kind == "submit"][0].body[0]
    declared = typed_keys(runware_types.KlingaiVideo30ProParams)
    assert set(submitted) <= declared, set(submitted) - declared
    assert submitted["deliveryMethod"] == "async" and submitted["includeCost"] is True


# every field of the project's Runware requests against the official clients' types ----------

# runware-sdk 1.8.0's generated Params types (task_map.py) stop at `providerSettings` and
# `inputs` (`dict[str, object]`). Below them, the types of Runware's sdk-python
# (github.com/Runware/sdk-python, runware/types.py at 0005d0f977fb067c191cb0ae02a6e9e7d29cfec1),
# transcribed: IKlingAIProviderSettings (`sound: Optional[bool]`, `multiPrompt:
# Optional[List[IKlingMultiPrompt]]` of {prompt: str, duration: float}, `keepOriginalSound`,
# `characterOrientation`), IVideoInputs, IInputFrame (`frame: Literal["first", "last"] | int`)
# and IElements (`voice: Optional[List[str]]`).
KLINGAI_SETTINGS = {"sound": bool, "keepOriginalSound": bool, "characterOrientation": str,
                    "multiPrompt": list[dict[str, object]]}
MULTI_PROMPT = {"prompt": str, "duration": float}
VIDEO_INPUTS = {"frameImages": list[dict[str, object]], "referenceImages": list[str],
                "referenceVideos": list[str], "video": str, "elements": list[dict[str, object]]}
INPUT_FRAME = {"image": str, "frame": typing.Literal["first", "last"] | int}
ELEMENT = {"id": str, "description": str, "frontalImage": str, "images": list[str],
           "videos": list[str], "voice": list[str], "tags": list[str]}
# Issue 21 item 10: seed 000 (Runware's 3.0 Pro page) names the key `voices`, sdk-python
# `voice`; the project keeps the seed's. The one known difference, checked as such.
KNOWN_DIFFERENCES = {"inputs.elements[].voices"}

SDK_PARAMS = {PRO: runware_types.KlingaiVideo30ProParams,
              O3: runware_types.KlingaiVideo30OmniProParams}
AUDIO = "https://assets.runware.ai/assets/inputs/voice.mp3"
SOURCE = "https://assets.runware.ai/assets/inputs/64792608.mp4"
FRAME_URL = "https://assets.runware.ai/assets/inputs/5e3433ef-b14e-4c65-8d25-54ecf737c589.jpg"

EVERY_RUNWARE_FIELD = f"""\
version: 1
name: every-field
elements:
  hero:
    description: A violinist in a copper coat
    frontal_image: {FRAME_URL}
    images: [{FRAME_URL}]
    voices: [{AUDIO}]
    tags: [Character]
scenes:
  - id: main
    shots:
      - id: talk
        model: kling-3-pro
        prompt: The harbour at dawn, a voice says hello
        negative_prompt: blur, text
        audio: true
        size: 1080x1920
        duration: 4
        takes: 2
        output_format: webm
        quality: 90
      - id: hero
        model: kling-3-pro
        prompt: "@hero plays to the boats"
        audio: true
        first_frame: {FRAME_URL}
        last_frame: {FRAME_URL}
        reference_images: [{FRAME_URL}]
      - id: shots
        model: kling-o3-pro
        audio: true
        aspect: '1:1'
        multi_prompt:
          - {{ prompt: The lanterns rise, duration: 3 }}
          - {{ prompt: The crowd claps along, duration: 3 }}
      - id: edit
        model: kling-o3-pro
        prompt: make it night
        video: {SOURCE}
        duration: 6
      - id: refs
        model: kling-o3-pro
        prompt: the same dance on a rooftop
        reference_videos: [{SOURCE}]
        reference_images: [{FRAME_URL}]
        duration: 5
"""


def conforms(value, tp) -> bool:
    """True when a JSON value fits a type hint of the SDK's generated types."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is object or tp is typing.Any:
        return True
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin is dict:
        return isinstance(value, dict) and all(
            conforms(k, args[0]) and conforms(v, args[1]) for k, v in value.items())
    if origin is list:
        return isinstance(value, list) and all(conforms(v, args[0]) for v in value)
    return isinstance(value, tp)


def mismatches(obj: dict, declared: dict, where: str) -> set[str]:
    """Fields of `obj` that `declared` does not have, or whose value does not fit its type."""
    return {f"{where}{key}" for key, value in obj.items()
            if key not in declared or not conforms(value, declared[key])}


def sent_tasks(root: Path) -> list[dict]:
    """Every Runware task the project compiles for the storyboard, as submit_request sends it."""
    provider, key = PROVIDERS["runware"], Secret(KEYS["runware"])
    jobs = compile_storyboard(load_resolved(root / "storyboard.yaml"), "runware")
    tasks = []
    for n, job in enumerate(jobs):
        assert not job.inputs, "inputs here are URLs, sent as written"
        task_uuid = f"5d0a4c1e-8f5a-4d8e-9a57-2b1f6a3c9e{n:02d}"
        sent = provider.submit_request(job, job.request, task_uuid, "http://x.test/v1", key)
        [task] = json.loads(sent.content)
        tasks.append(task)
    return tasks


def test_every_field_of_the_projects_runware_requests_is_in_the_official_types(tmp_path):
    (tmp_path / "storyboard.yaml").write_text(EVERY_RUNWARE_FIELD, encoding="utf-8")
    tasks = sent_tasks(tmp_path)
    wrong: set[str] = set()
    for task in tasks:
        params = SDK_PARAMS[task["model"]]
        assert runware_types.models[task["model"]].task_type == "videoInference"
        wrong |= mismatches(task, typing.get_type_hints(params), "")
        settings = task.get("providerSettings", {})
        wrong |= {f"providerSettings.{k}" for k in settings if k != "klingai"}
        klingai = settings.get("klingai", {})
        wrong |= mismatches(klingai, KLINGAI_SETTINGS, "providerSettings.klingai.")
        for segment in klingai.get("multiPrompt", ()):
            wrong |= mismatches(segment, MULTI_PROMPT, "providerSettings.klingai.multiPrompt[].")
        inputs = task.get("inputs", {})
        wrong |= mismatches(inputs, VIDEO_INPUTS, "inputs.")
        for frame in inputs.get("frameImages", ()):
            wrong |= mismatches(frame, INPUT_FRAME, "inputs.frameImages[].")
        for element in inputs.get("elements", ()):
            wrong |= mismatches(element, ELEMENT, "inputs.elements[].")
    assert wrong == KNOWN_DIFFERENCES
    # what the storyboard asked for was sent: 3.0 Pro audio is providerSettings.klingai.sound
    talk, hero, shots, edit, refs = tasks
    assert talk["providerSettings"] == {"klingai": {"sound": True}} == hero["providerSettings"]
    assert (talk["width"], talk["height"]) == (1080, 1920)
    assert shots["providerSettings"]["klingai"]["sound"] is True
    assert "providerSettings" not in edit and "providerSettings" not in refs  # O3 video rule
    assert hero["inputs"]["elements"][0]["voices"] == [AUDIO]


def test_the_simulator_accepts_every_compiled_runware_request(sim, tmp_path):
    (tmp_path / "storyboard.yaml").write_text(EVERY_RUNWARE_FIELD, encoding="utf-8")
    tasks = sent_tasks(tmp_path)
    with httpx.Client(timeout=10) as client:
        for task in tasks:
            answer = client.post(sim.url("runware"), json=[task],
                                 headers={"Authorization": f"Bearer {KEYS['runware']}"})
            assert answer.status_code == 200, (task["model"], answer.json())
    costs = [g.cost_usd for g in sim.generations("runware")]
    # 3.0 Pro with sound at 0.168/s (4 s, 5 s default); O3 sound 0.14 x 6; edit and reference
    # videos at 0.168/s (the external source counts 5 s)
    assert costs == [Decimal("0.672"), Decimal("0.840"), Decimal("0.840"), Decimal("0.840"),
                     Decimal("0.840")]
