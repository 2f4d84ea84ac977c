"""Issue 25: the simulated Runware and kie APIs know the new Kling 3.0 tiers from their pages
(Runware: 3.0 Standard, 3.0 4K, O3 Standard, 3.0 Turbo; kie: 3.0 Turbo), check their sizes,
resolutions and durations and bill their documented prices."""

from __future__ import annotations

import time
import typing
from decimal import Decimal

import pytest
import runware.types.task_map as sdk

from kling_compose.simulator.runware import MODELS as SIMULATED_RUNWARE_MODELS

from .kit import OUTSIDE_JPG, poll_runware, runware, video_task

STD = "klingai:kling-video@3-standard"
UHD = "klingai:kling-video@3-4k"
O3_STD = "klingai:kling-video@o3-standard"
TURBO = "klingai:kling-video@3.0-turbo"
FIRST = {"frameImages": [{"image": OUTSIDE_JPG, "frame": "first"}]}


def accepted(client, sim, task) -> Decimal:
    """Submit `task`, wait for it; the cost getResponse reports (USD, as a Decimal)."""
    task = {**task, "includeCost": True}
    answer = runware(client, sim, [task])
    assert answer.status_code == 200, answer.json()
    [item] = poll_runware(client, sim, task["taskUUID"])["data"]
    assert item["status"] == "success", item
    return Decimal(str(item["cost"]))


def refused(client, sim, task) -> set[tuple[str, str]]:
    """Submit `task`; the (code, parameter) of each error of its HTTP 400 answer."""
    answer = runware(client, sim, [task])
    assert answer.status_code == 400, answer.json()
    assert sim.generations("runware") == []
    return {(e["code"], e["parameter"]) for e in answer.json()["errors"]}


# --- Runware: accepted and billed ------------------------------------------------------------


@pytest.mark.parametrize(("model", "size", "sound", "cost"), [
    (STD, (1280, 720), False, "0.42"),  # 5 s x $0.084
    (STD, (960, 960), True, "0.63"),  # 5 s x $0.126
    (UHD, (3840, 2160), False, "2.1"),  # 5 s x $0.42
    (UHD, (2880, 2880), True, "2.1"),  # the same with audio
    (O3_STD, (720, 1280), False, "0.42"),  # 5 s x $0.084
    (O3_STD, (1280, 720), True, "0.56"),  # 5 s x $0.112
])  # fmt: skip
def test_each_tier_takes_its_sizes_and_bills_its_price(sim, client, model, size, sound, cost):
    fields = {"providerSettings": {"klingai": {"sound": True}}} if sound else {}
    task = video_task(model, width=size[0], height=size[1], duration=5, **fields)
    assert accepted(client, sim, task) == Decimal(cost)
    assert sim.generations("runware")[0].plan.audio is sound


def test_o3_standard_bills_a_reference_video_at_its_video_input_price(sim, client):
    task = video_task(O3_STD, width=1280, height=720, duration=5,
                      inputs={"referenceVideos": ["https://x.test/r.mp4"]})
    assert accepted(client, sim, task) == Decimal("0.63")  # 5 s x $0.126


@pytest.mark.parametrize(("fields", "cost"), [
    ({"width": 1280, "height": 720}, "0.56"),  # 5 s x $0.112 (720p)
    ({"width": 960, "height": 960}, "0.56"),
    ({"width": 1080, "height": 1920}, "0.7"),  # 5 s x $0.14 (1080p)
    ({"width": None, "height": None, "resolution": "720p", "inputs": FIRST}, "0.56"),
    ({"width": None, "height": None, "resolution": "1080p", "inputs": FIRST}, "0.7"),
    # a frame without `resolution`: the default is not documented, the dearer one is billed
    ({"width": None, "height": None, "inputs": FIRST}, "0.7"),
    ({"width": None, "height": None, "resolution": "720p", "inputs": FIRST,
      "negativePrompt": "blurry"}, "0.56"),
])  # fmt: skip
def test_turbo_is_billed_by_resolution_and_always_has_sound(sim, client, fields, cost):
    assert accepted(client, sim, video_task(TURBO, duration=5, **fields)) == Decimal(cost)
    assert sim.generations("runware")[0].plan.audio is True


# --- Runware: refused ------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "fields", "error"), [
    (STD, {"width": 1920, "height": 1080}, ("unsupportedDimensions", "width")),
    (STD, {"width": 720, "height": 720}, ("unsupportedDimensions", "width")),
    (UHD, {"width": 2160, "height": 2160}, ("unsupportedDimensions", "width")),
    (O3_STD, {"width": 1440, "height": 1440}, ("unsupportedDimensions", "width")),
    (UHD, {"duration": 16}, ("invalidDuration", "duration")),
    (TURBO, {"duration": 2}, ("invalidDuration", "duration")),
    (TURBO, {"width": 3840, "height": 2160}, ("unsupportedDimensions", "width")),
    (STD, {"numberResults": 5}, ("invalidNumberResults", "numberResults")),
    # 3.0 Standard: "When inputs.referenceVideos is provided, providerSettings cannot be used"
    (STD, {"inputs": {"referenceVideos": ["https://x.test/r.mp4"]},
           "providerSettings": {"klingai": {"sound": True}}},
     ("invalidProviderSettings", "providerSettings")),
    # O3 Standard: resolution '720p' only, with inputs.video only
    (O3_STD, {"resolution": "1080p", "width": None, "height": None, "duration": None,
              "inputs": {"video": "https://x.test/v.mp4"}}, ("invalidResolution", "resolution")),
    (O3_STD, {"resolution": "720p"}, ("invalidResolution", "resolution")),
    (O3_STD, {"negativePrompt": "blurry"}, ("unknownParameter", "negativePrompt")),
    # Turbo: no providerSettings at all
    (TURBO, {"providerSettings": {"klingai": {"sound": True}}},
     ("unknownParameter", "providerSettings")),
    # Turbo: `resolution` with frameImages only, never with width/height
    (TURBO, {"resolution": "720p"}, ("invalidResolution", "resolution")),
    (TURBO, {"width": None, "height": None, "resolution": "4k", "inputs": FIRST},
     ("invalidResolution", "resolution")),
    (TURBO, {"negativePrompt": "blurry"}, ("invalidNegativePrompt", "negativePrompt")),
    (TURBO, {"positivePrompt": None}, ("invalidPositivePrompt", "positivePrompt")),
    (TURBO, {"width": None, "height": None, "inputs": {"frameImages": [
        {"image": OUTSIDE_JPG, "frame": "last"}]}},
     ("invalidFrame", "inputs.frameImages[0].frame")),
    (TURBO, {"inputs": {"referenceImages": [OUTSIDE_JPG]}},
     ("unknownParameter", "inputs.referenceImages")),
])  # fmt: skip
def test_each_tier_refuses_what_its_page_forbids(sim, client, model, fields, error):
    assert error in refused(client, sim, video_task(model, **fields))


@pytest.mark.parametrize(("model", "params"), [
    (STD, sdk.KlingaiVideo30StandardParams),
    (UHD, sdk.KlingaiVideo304kParams),
    (O3_STD, sdk.KlingaiVideo30OmniStandardParams),
    (TURBO, sdk.KlingaiVideo30TurboParams),
])  # fmt: skip
def test_runware_sdk_and_simulator_know_the_same_parameters(model, params):
    typed = set(typing.get_type_hints(params))
    simulated = set(SIMULATED_RUNWARE_MODELS[model].keys)
    assert typed - simulated == set(), "parameters the SDK can send and the simulator refuses"
    assert simulated - typed == {"seed"}  # as for 3.0 Pro and O3 Pro (test_official_clients)
    resolutions = typing.get_type_hints(params).get("resolution")
    allowed = set(typing.get_args(resolutions)) if resolutions else set()  # a Literal
    assert set(SIMULATED_RUNWARE_MODELS[model].resolutions) == allowed


# --- kie: Kling 3.0 Turbo ----------------------------------------------------------------------

T2V, I2V = "kling/v3-turbo-text-to-video", "kling/v3-turbo-image-to-video"
U = "https://example.com/a.png"  # an outside URL: accepted, not fetched
TEXT = {"prompt": "A violinist on a dock", "duration": "5", "aspect_ratio": "16:9",
        "resolution": "720p"}
IMAGE = {"prompt": "A violinist on a dock", "image_urls": [U], "duration": "5",
         "resolution": "1080p"}


def create(client, sim, model, input_):
    body = {"model": model, "input": input_}
    return client.post(sim.url("kie") + "/api/v1/jobs/createTask", json=body,
                       headers={"Authorization": "Bearer any"}).json()


def record(client, sim, task_id) -> dict:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body = client.get(sim.url("kie") + "/api/v1/jobs/recordInfo", params={"taskId": task_id},
                          headers={"Authorization": "Bearer any"}).json()
        if body["code"] == 200 and body["data"]["state"] in ("success", "fail"):
            return body["data"]
        time.sleep(0.01)
    raise AssertionError("task not finished in time")


@pytest.mark.parametrize(("model", "input_", "cost", "size"), [
    (T2V, TEXT, "0.45", (1280, 720)),  # 5 s x $0.09 (720p)
    (T2V, {**TEXT, "resolution": "1080p", "aspect_ratio": "9:16", "duration": "15"},
     "1.6875", (1080, 1920)),  # 15 s x $0.1125 (1080p)
    (I2V, IMAGE, "0.5625", (None, None)),  # 5 s x $0.1125; the image sets the frame
    (I2V, {**IMAGE, "resolution": "720p", "duration": "3"}, "0.27", (None, None)),
])  # fmt: skip
def test_kie_turbo_is_accepted_billed_by_resolution_and_has_sound(
        sim, client, model, input_, cost, size):
    answer = create(client, sim, model, input_)
    assert answer["code"] == 200, answer
    assert answer["data"]["taskId"].startswith("task_kling_")
    data = record(client, sim, answer["data"]["taskId"])
    assert (data["state"], data["model"]) == ("success", model)
    [generation] = sim.generations("kie")
    assert generation.cost_usd == Decimal(cost)
    assert (generation.plan.width, generation.plan.height, generation.plan.audio) == (*size, True)


@pytest.mark.parametrize(("model", "input_", "message"), [
    (T2V, {k: v for k, v in TEXT.items() if k != "resolution"}, "resolution is required"),
    (T2V, {k: v for k, v in TEXT.items() if k != "aspect_ratio"}, "aspect_ratio is required"),
    (I2V, {k: v for k, v in IMAGE.items() if k != "image_urls"}, "image_urls is required"),
    (T2V, {**TEXT, "sound": False}, "unknown input field(s) ['sound']"),
    (T2V, {**TEXT, "mode": "std"}, "unknown input field(s) ['mode']"),
    (T2V, {**TEXT, "negative_prompt": "blur"}, "unknown input field(s) ['negative_prompt']"),
    (T2V, {**TEXT, "image_urls": [U]}, "unknown input field(s) ['image_urls']"),
    (I2V, {**IMAGE, "aspect_ratio": "16:9"}, "unknown input field(s) ['aspect_ratio']"),
    (T2V, {**TEXT, "resolution": "4K"}, "resolution must be one of ['720p', '1080p']"),
    (T2V, {**TEXT, "resolution": ["720p"]}, "resolution must be one of ['720p', '1080p']"),
    (T2V, {**TEXT, "duration": 5}, "duration must be a string from '3' to '15'"),
    (T2V, {**TEXT, "duration": "16"}, "duration must be a string from '3' to '15'"),
    (T2V, {**TEXT, "aspect_ratio": "4:3"}, "aspect_ratio must be one of"),
    (T2V, {**TEXT, "prompt": "x" * 2501}, "prompt is 2501 characters; the maximum is 2500"),
    (I2V, {**IMAGE, "image_urls": [U, U]}, "image_urls takes the start image: a list of 1 URL"),
    (I2V, {**IMAGE, "image_urls": ["not a url"]}, "image_urls[0] must be an http(s) URL"),
    ("kling/v3-turbo", TEXT, "model must be 'kling-3.0/video'"),
])  # fmt: skip
def test_kie_turbo_refuses_what_its_pages_do_not_take(sim, client, model, input_, message):
    answer = create(client, sim, model, input_)
    assert answer["code"] == 422 and message in answer["msg"], answer
    assert sim.generations("kie") == []
