"""The simulated kie.ai Kling 3.0 API and File Upload API, driven over HTTP with httpx."""

from __future__ import annotations

import asyncio
import io
import json
import time

import httpx
import pytest
from PIL import Image

from kling_compose.providers import PROVIDERS
from kling_compose.settings import Secret
from kling_compose.simulator import Simulator

from .kit import duration_s, frames, matches

KEY = "kie-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
MODEL = "kling-3.0/video"
U = "https://example.com/a.png"  # an outside URL: accepted, not fetched
SINGLE = {
    "prompt": "A violinist on a dock",
    "sound": False,
    "duration": "3",
    "aspect_ratio": "16:9",
    "mode": "pro",
    "multi_shots": False,
}
MULTI = {
    "multi_shots": True,
    "image_urls": [U],
    "duration": "5",
    "aspect_ratio": "16:9",
    "mode": "pro",
    "multi_prompt": [{"prompt": "one", "duration": 2}, {"prompt": "two", "duration": 3}],
}


@pytest.fixture
def sim(faults):
    """A simulator accepting only KEY for kie."""
    with Simulator(keys={"kie": KEY}, faults=faults) as simulator:
        yield simulator


def create(client, sim, input_, headers=AUTH, **top):
    body = {"model": MODEL, "input": input_, **top}
    return client.post(sim.url("kie") + "/api/v1/jobs/createTask", json=body, headers=headers)


def info(client, sim, task_id, headers=AUTH):
    return client.get(sim.url("kie") + "/api/v1/jobs/recordInfo", params={"taskId": task_id},
                      headers=headers)  # fmt: skip


def wait(client, sim, task_id, timeout_s=10.0):
    """Every recordInfo `data` until success or fail (the last one); the "recordInfo is null"
    answers of the first moments are left out."""
    seen, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = info(client, sim, task_id).json()
        if body["code"] == 422 and not seen:
            time.sleep(0.01)
            continue
        data = body["data"]
        seen.append(data)
        if data["state"] in ("success", "fail"):
            return seen
        time.sleep(0.01)
    raise AssertionError("task not finished in time")


def upload(client, sim, data, name="frame.png", mime="image/png", fields=None, headers=AUTH):
    form = {"uploadPath": "kling-compose", "fileName": name} if fields is None else fields
    return client.post(sim.url("kie-upload") + "/api/file-stream-upload",
                       files={"file": (name, data, mime)}, data=form, headers=headers)  # fmt: skip


def uploaded_url(client, sim, data, name="frame.png", mime="image/png"):
    answer = upload(client, sim, data, name, mime)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["downloadUrl"]


def image_bytes(fmt: str, size=(320, 180)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(out, fmt)
    return out.getvalue()


# --- auth and hosts ---------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Key {KEY}"}, {"x-api-key": KEY},
])  # fmt: skip
def test_only_the_bearer_key_is_accepted(sim, client, headers):
    answer = create(client, sim, SINGLE, headers=headers)
    assert answer.status_code == 200  # createTask: the body code says it
    assert answer.json()["code"] == 401 and answer.json()["data"] is None
    answer = info(client, sim, "task_x", headers=headers)
    assert answer.status_code == 401 and answer.json()["code"] == 401
    answer = upload(client, sim, b"x", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["success"] is False and answer.json()["code"] == 401
    assert sim.generations() == [] and sim.kie.uploads == []


def test_each_host_serves_only_its_own_routes(sim, client, png):
    wrong = client.post(sim.url("kie-upload") + "/api/v1/jobs/createTask",
                        json={"model": MODEL, "input": SINGLE}, headers=AUTH)  # fmt: skip
    assert wrong.status_code == 404
    wrong = client.post(sim.url("kie") + "/api/file-stream-upload",
                        files={"file": ("a.png", png, "image/png")},
                        data={"uploadPath": "p"}, headers=AUTH)  # fmt: skip
    assert wrong.status_code == 404
    assert sim.generations() == [] and sim.kie.uploads == []


def test_the_environment_points_a_client_here(sim):
    env = sim.env()
    assert env["KLING_COMPOSE_KIE_URL"] == sim.base_url + "/kie"
    assert env["KLING_COMPOSE_KIE_UPLOAD_URL"] == sim.base_url + "/kie-upload"
    assert env["KIE_API_KEY"] == KEY


# --- tasks --------------------------------------------------------------------------------------


def test_create_then_poll_walks_the_states_to_success(sim, client, faults):
    faults.task_seconds = 1.0  # 150 ms waiting, 150 ms queuing
    sim.kie.null_window_s = 0.0  # the null record is tested apart: here every state is seen
    answer = create(client, sim, SINGLE)
    assert answer.status_code == 200
    body = answer.json()
    assert (body["code"], body["msg"]) == (200, "success")
    task_id = body["data"]["taskId"]
    assert task_id.startswith("task_kling-3.0_")
    seen = wait(client, sim, task_id)
    states = [d["state"] for d in seen]
    distinct = [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]
    assert distinct == ["waiting", "queuing", "generating", "success"]
    final = seen[-1]
    assert final["taskId"] == task_id and final["model"] == MODEL
    assert json.loads(final["param"]) == {"model": MODEL, "input": SINGLE}
    assert (final["failCode"], final["failMsg"]) == ("", "")
    assert seen[0]["resultJson"] == "" and seen[0]["completeTime"] is None
    assert final["completeTime"] >= final["createTime"] and final["costTime"] >= 0
    (url,) = json.loads(final["resultJson"])["resultUrls"]
    clip = client.get(url).content
    assert frames(clip)[0].size == (320, 180)
    assert duration_s(clip) == pytest.approx(3, abs=0.1)
    assert info(client, sim, task_id).json()["msg"] == "success"


def test_first_and_last_frames_come_from_uploads(sim, client, png, png_last):
    first = uploaded_url(client, sim, png, "first.png")
    last = uploaded_url(client, sim, png_last, "last.png")
    fields = dict(SINGLE)
    fields["image_urls"] = [first, last]
    task_id = create(client, sim, fields).json()["data"]["taskId"]
    final = wait(client, sim, task_id)[-1]
    clip = frames(client.get(json.loads(final["resultJson"])["resultUrls"][0]).content)
    assert matches(clip[0], png) and matches(clip[-1], png_last)


def test_multi_shot_has_sound_by_default_and_follows_the_first_frame(sim, client, png):
    fields = MULTI | {"image_urls": [uploaded_url(client, sim, png)], "mode": "4K"}
    assert create(client, sim, fields).json()["code"] == 200
    (generation,) = sim.generations("kie")
    assert generation.plan.audio is True  # "When multi_shots is true, this field defaults to true"
    assert (generation.plan.width, generation.plan.height) == (3840, 2160)
    assert generation.plan.caption == "one\ntwo"
    final = wait(client, sim, generation.id)[-1]
    clip = frames(client.get(json.loads(final["resultJson"])["resultUrls"][0]).content)
    assert matches(clip[0], png)


@pytest.mark.parametrize(("mode", "aspect", "size"), [("std", "9:16", (720, 1280)),
                                                      ("pro", "1:1", (1080, 1080)),
                                                      ("4K", "16:9", (3840, 2160))])  # fmt: skip
def test_mode_and_aspect_set_the_resolution(sim, client, mode, aspect, size):
    create(client, sim, SINGLE | {"mode": mode, "aspect_ratio": aspect})
    (generation,) = sim.generations("kie")
    assert (generation.plan.width, generation.plan.height) == size


def test_a_failed_generation_is_state_fail(sim, client, faults):
    faults.fail_generation("forbidden", "content flagged")
    task_id = create(client, sim, SINGLE | {"prompt": "something forbidden"}).json()["data"][
        "taskId"
    ]
    final = wait(client, sim, task_id)[-1]
    assert (final["state"], final["failCode"], final["failMsg"]) == ("fail", "501",
                                                                     "content flagged")
    assert final["resultJson"] == ""


def test_right_after_create_task_the_record_is_null_for_a_while(sim, client, faults):
    """Issue 21, item 1: kie answers HTTP 200 `{code: 422, msg: "recordInfo is null", data:
    null}` for a task it has just made (its get-task-detail OpenAPI's 422 example); the
    simulator takes that stricter reading, then shows the task as usual."""
    faults.task_seconds = 0.3
    sim.kie.null_window_s = 0.15
    task_id = create(client, sim, SINGLE).json()["data"]["taskId"]
    answer = info(client, sim, task_id)
    assert answer.status_code == 200
    assert answer.json() == {"code": 422, "msg": "recordInfo is null", "data": None}
    time.sleep(0.2)
    answer = info(client, sim, task_id)
    assert answer.status_code == 200 and answer.json()["code"] == 200
    assert answer.json()["data"]["taskId"] == task_id
    assert len(sim.generations("kie")) == 1  # made and billed from the start


def test_the_default_null_window_is_a_tenth_of_the_task_at_most_1_s(sim, client, faults):
    faults.task_seconds = 30.0
    task_id = create(client, sim, SINGLE).json()["data"]["taskId"]
    (generation,) = sim.generations("kie")
    assert sim.kie.null_window(generation) == 1.0
    assert info(client, sim, task_id).json()["code"] == 422
    faults.task_seconds = 0.5
    create(client, sim, SINGLE)
    assert sim.kie.null_window(sim.generations("kie")[1]) == pytest.approx(0.05)


def test_the_provider_reads_the_null_record_as_unconfirmed(sim, client):
    kie, key = PROVIDERS["kie"], Secret(KEY)
    sim.kie.null_window_s = 5.0
    body = {"model": MODEL, "input": SINGLE}
    handle = kie.read_submit(client.send(kie.submit_request(None, body, "ours", sim.url("kie"),
                                                            key)), "ours")  # fmt: skip
    status = kie.read_status(client.send(kie.poll_request(handle, sim.url("kie"), key)),
                             handle, 1)  # fmt: skip
    assert status.state == "unconfirmed" and handle.task_id in status.message


def test_an_unknown_task_is_recordinfo_is_null_or_not_found(sim, client):
    answer = info(client, sim, "task_nope")
    assert answer.status_code == 422
    assert answer.json() == {"code": 422, "msg": "recordInfo is null", "data": None}
    sim.kie.unknown_task_code = 404
    answer = info(client, sim, "task_nope")
    assert answer.status_code == 404
    assert answer.json() == {"code": 404, "msg": "Task not found", "data": None}
    answer = client.get(sim.url("kie") + "/api/v1/jobs/recordInfo", headers=AUTH)
    assert answer.status_code == 400
    assert answer.json()["msg"] == "taskId parameter is required"


def test_transport_faults_answer_kie_codes(sim, client):
    sim.faults.rate_limit(1, retry_after=3, kind="submit")
    answer = create(client, sim, SINGLE)
    assert answer.status_code == 429 and answer.headers["retry-after"] == "3"
    assert answer.json()["code"] == 429
    sim.faults.error(1, status=455, kind="submit", http_status=200)
    answer = create(client, sim, SINGLE)
    assert answer.status_code == 200 and answer.json()["code"] == 455
    assert answer.json()["msg"].startswith("Service Unavailable")
    sim.faults.error(1, status=500, kind="upload")
    assert upload(client, sim, b"x").status_code == 500
    assert sim.generations() == []
    assert create(client, sim, SINGLE).json()["code"] == 200


# --- the docs' own examples are accepted --------------------------------------------------------

ELEMENT_URLS = [
    "https://tempfileb.aiquickdraw.com/kieai/market/1770361808044_4RfUUJrI.jpeg",
    "https://tempfileb.aiquickdraw.com/kieai/market/1770361848336_ABQqRHBi.png",
]
DOCS_SINGLE = {
    "prompt": "In a bright rehearsal room, sunlight streams through the window@element_dog",
    "image_urls": ["https://static.aiquickdraw.com/tools/example/1764851002741_i0lEiI8I.png"],
    "sound": True,
    "duration": "5",
    "aspect_ratio": "16:9",
    "mode": "pro",
    "multi_shots": False,
    "kling_elements": [
        {"name": "element_dog", "description": "dog", "element_input_urls": ELEMENT_URLS}
    ],
}
DOCS_MULTI = {  # shots of 3 + 3 s in a "5" s video: the spec does not make them add up
    "multi_shots": True,
    "image_urls": ["https://static.aiquickdraw.com/tools/example/1764851002741_i0lEiI8I.png"],
    "duration": "5",
    "aspect_ratio": "16:9",
    "mode": "pro",
    "multi_prompt": [
        {"prompt": "a happy dog in running@element_cat", "duration": 3},
        {"prompt": "a happy dog play with a cat@element_dog", "duration": 3},
    ],
    "kling_elements": [
        {"name": "element_cat", "description": "cat", "element_input_urls": ELEMENT_URLS},
        {"name": "element_dog", "description": "dog", "element_input_urls": ELEMENT_URLS},
    ],
}


@pytest.mark.parametrize("fields", [DOCS_SINGLE, DOCS_MULTI], ids=["single", "multi"])
def test_the_docs_examples_are_accepted(sim, client, fields):
    answer = create(client, sim, fields, callBackUrl="https://your-domain.com/api/callback")
    assert answer.json()["code"] == 200, answer.json()


def test_video_elements_of_both_spec_versions_are_accepted(sim, client):
    older = {"name": "cat", "description": "cat",
             "element_input_video_urls": ["https://your-cdn.com/element_video.mp4"]}  # fmt: skip
    newer = {"name": "dog", "description": "dog",
             "element_input_urls": ["https://your-cdn.com/element_image.mp4"],
             "element_input_audio_urls": ["https://your-cdn.com/wjeoiajfosijfoi.mp3"],
             "start_time": 0, "end_time": 8000}  # fmt: skip
    fields = DOCS_SINGLE | {"prompt": "@cat and @dog", "kling_elements": [older, newer]}
    assert create(client, sim, fields).json()["code"] == 200


# --- every validation rule ----------------------------------------------------------------------

E2 = {"name": "dog", "description": "dog", "element_input_urls": [U, U]}
VALIDATION = [
    # (id, whole body or input, fragment of msg)
    ("model-page-example", {"model": "kling-3.0", "input": SINGLE},
     "model must be 'kling-3.0/video'"),
    ("no-input", {"model": MODEL}, "input is required and must be an object"),
    ("unknown-top", {"model": MODEL, "input": SINGLE, "callback_url": "https://e.com"},
     "unknown field(s) ['callback_url']"),
    ("callback", {"model": MODEL, "input": SINGLE, "callBackUrl": "ftp://x"},
     "callBackUrl must be an http(s) URL"),
    ("unknown-input", SINGLE | {"img_urls": [U]}, "unknown input field(s) ['img_urls']"),
    ("multi-shots-missing", SINGLE | {"multi_shots": None}, "multi_shots is required"),
    ("multi-shots-type", SINGLE | {"multi_shots": "false"}, "multi_shots is required"),
    ("duration-missing", SINGLE | {"duration": None}, "duration is required"),
    ("duration-integer", SINGLE | {"duration": 5}, "a string from '3' to '15', got 5"),
    ("duration-16", SINGLE | {"duration": "16"}, "a string from '3' to '15', got '16'"),
    ("duration-2", SINGLE | {"duration": "2"}, "a string from '3' to '15', got '2'"),
    ("mode-missing", SINGLE | {"mode": None}, "mode is required"),
    ("mode", SINGLE | {"mode": "master"}, "mode is required: one of ['std', 'pro', '4K']"),
    ("mode-case", SINGLE | {"mode": "4k"}, "mode is required: one of"),
    ("sound-type", SINGLE | {"sound": "yes"}, "sound must be a boolean"),
    ("aspect", SINGLE | {"aspect_ratio": "4:3"}, "aspect_ratio must be one of"),
    ("aspect-missing", SINGLE | {"aspect_ratio": None}, "aspect_ratio is required"),
    ("aspect-missing-with-images", {k: v for k, v in SINGLE.items() if k != "aspect_ratio"}
     | {"image_urls": [U]}, "aspect_ratio is required"),
    ("prompt-missing", SINGLE | {"prompt": None}, "prompt is required when multi_shots is false"),
    ("prompt-empty", SINGLE | {"prompt": ""}, "prompt is required when multi_shots is false"),
    ("prompt-type", SINGLE | {"prompt": ["a"]}, "prompt must be a string"),
    ("images-type", SINGLE | {"image_urls": U}, "image_urls must be a list of URLs"),
    ("images-three", SINGLE | {"image_urls": [U, U, U]}, "takes 1 (first frame) or 2"),
    ("images-none", SINGLE | {"image_urls": []}, "takes 1 (first frame) or 2"),
    ("images-multi-two", MULTI | {"image_urls": [U, U]},
     "When multi_shots is true, image_urls takes only the first frame"),
    ("images-data-uri", SINGLE | {"image_urls": ["data:image/png;base64,AAAA"]},
     "image_urls[0] must be an http(s) URL"),
    ("multi-prompt-missing", MULTI | {"multi_prompt": None},
     "multi_prompt is required when multi_shots is true"),
    ("multi-prompt-empty", MULTI | {"multi_prompt": []},
     "multi_prompt is required when multi_shots is true"),
    ("multi-prompt-type", MULTI | {"multi_prompt": "one"}, "multi_prompt must be a list"),
    ("six-shots", MULTI | {"multi_prompt": [{"prompt": "p", "duration": 1}] * 6},
     "multi_prompt supports up to 5 shots, got 6"),
    ("shot-13", MULTI | {"multi_prompt": [{"prompt": "p", "duration": 13}]},
     "multi_prompt[0].duration must be an integer from 1 to 12, got 13"),
    ("shot-0", MULTI | {"multi_prompt": [{"prompt": "p", "duration": 0}]},
     "multi_prompt[0].duration must be an integer from 1 to 12, got 0"),
    ("shot-string", MULTI | {"multi_prompt": [{"prompt": "p", "duration": "3"}]},
     "got '3'"),
    ("shot-bool", MULTI | {"multi_prompt": [{"prompt": "p", "duration": True}]}, "got True"),
    ("shot-prompt", MULTI | {"multi_prompt": [{"duration": 3}]},
     "multi_prompt[0].prompt is required"),
    ("shot-extra", MULTI | {"multi_prompt": [{"prompt": "p", "duration": 3, "camera": "pan"}]},
     "multi_prompt[0]: unknown field(s) ['camera']"),
    ("shot-501", MULTI | {"multi_prompt": [{"prompt": "x" * 501, "duration": 3}]},
     "multi_prompt[0].prompt is 501 characters"),
    ("shot-element-37", MULTI | {"multi_prompt": [{"prompt": "x" * 464 + "@dog", "duration": 3}],
                                 "kling_elements": [E2]},
     "multi_prompt[0].prompt is 501 characters (each @element counts 37)"),
    ("elements-type", SINGLE | {"kling_elements": E2}, "kling_elements must be a list"),
    ("elements-four", DOCS_SINGLE | {"kling_elements": [E2 | {"name": f"e{i}"} for i in range(4)]},
     "kling_elements takes at most 3 elements, got 4"),
    ("element-name", DOCS_SINGLE | {"kling_elements": [{k: v for k, v in E2.items()
                                                        if k != "name"}]},
     "kling_elements[0].name is required"),
    ("element-duplicate", DOCS_SINGLE | {"kling_elements": [E2, E2]},
     "kling_elements[1]: duplicate element name 'dog'"),
    ("element-description", DOCS_SINGLE | {"kling_elements": [{k: v for k, v in E2.items()
                                                               if k != "description"}]},
     "kling_elements[0].description is required"),
    ("element-one-image", DOCS_SINGLE | {"kling_elements": [E2 | {"element_input_urls": [U]}]},
     "kling_elements[0].element_input_urls: 2-4 image URLs required, got 1"),
    ("element-five-images", DOCS_SINGLE | {"kling_elements": [E2 | {"element_input_urls":
                                                                    [U] * 5}]},
     "2-4 image URLs required, got 5"),
    ("element-no-media", DOCS_SINGLE | {"kling_elements": [{"name": "a", "description": "a"}]},
     "kling_elements[0].element_input_urls is required"),
    ("element-extra", DOCS_SINGLE | {"kling_elements": [E2 | {"frontal_image_url": U}]},
     "kling_elements[0]: unknown field(s) ['frontal_image_url']"),
    ("element-data-uri", DOCS_SINGLE | {"kling_elements": [E2 | {"element_input_urls":
                                                                 [U, "data:image/png;base64,AA"]}]},
     "kling_elements[0].element_input_urls[1] must be an http(s) URL"),
    ("element-two-voices", DOCS_SINGLE | {"kling_elements": [E2 | {"element_input_audio_urls":
                                                                   [U, U]}]},
     "element_input_audio_urls takes up to 1 audio URL"),
    ("element-two-videos", DOCS_SINGLE | {"kling_elements": [
        {"name": "v", "description": "v", "element_input_video_urls": [U, U]}]},
     "element_input_video_urls takes 1 video URL"),
    ("element-video-and-images", DOCS_SINGLE | {"kling_elements": [
        E2 | {"element_input_video_urls": ["https://e.com/v.mp4"]}]},
     "an element is images or a video, not both"),
    ("element-video-span", DOCS_SINGLE | {"kling_elements": [
        {"name": "v", "description": "v", "element_input_urls": ["https://e.com/v.mp4"],
         "start_time": 0, "end_time": 9000}]},
     "end_time - start_time must be 3000-8000 ms"),
    ("element-image-times", DOCS_SINGLE | {"kling_elements": [E2 | {"end_time": 5000}]},
     "start_time and end_time apply to a video element only"),
    ("elements-need-image-urls", SINGLE | {"prompt": "a @dog runs", "kling_elements": [E2]},
     "image_urls is required when elements are referenced in the prompt (@dog)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "fragment"), [c[1:] for c in VALIDATION], ids=[c[0] for c in VALIDATION]
)
def test_each_rule_answers_code_422(sim, client, body, fragment):
    if "model" not in body:
        body = {"model": MODEL, "input": {k: v for k, v in body.items() if v is not None}}
    answer = client.post(sim.url("kie") + "/api/v1/jobs/createTask", json=body, headers=AUTH)
    assert answer.status_code == 200  # createTask: the body code says it
    assert answer.json()["code"] == 422 and answer.json()["data"] is None
    assert answer.json()["msg"].startswith("Validation Error")
    assert fragment in answer.json()["msg"]
    assert sim.generations() == []


def test_elements_need_not_be_referenced_to_be_sent(sim, client):
    fields = SINGLE | {"kling_elements": [E2]}  # no @dog in the prompt: no image_urls needed
    assert create(client, sim, fields).json()["code"] == 200


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "BMP"])
def test_images_are_jpg_or_png_only(sim, client, fmt):
    suffix = fmt.lower()
    url = uploaded_url(client, sim, image_bytes(fmt), f"frame.{suffix}", f"image/{suffix}")
    fields = dict(SINGLE) | {"image_urls": [url]}
    answer = create(client, sim, fields).json()
    assert answer["code"] == 422
    assert f"image_urls[0]: only JPG, JPEG, PNG images are supported, got {fmt}" in answer["msg"]
    jpeg = uploaded_url(client, sim, image_bytes("JPEG"), "frame.jpg", "image/jpeg")
    assert create(client, sim, fields | {"image_urls": [jpeg]}).json()["code"] == 200


def test_a_broken_image_url_of_the_simulator_is_refused(sim, client):
    url = uploaded_url(client, sim, b"not an image", "frame.png")
    fields = dict(SINGLE) | {"image_urls": [url]}
    answer = create(client, sim, fields).json()
    assert answer["code"] == 422 and "image_urls[0] is not a readable image" in answer["msg"]


def test_element_images_over_10_mb_are_refused(sim, client):
    big = image_bytes("PNG") + b"\0" * (10 * 1024 * 1024)  # trailing bytes: still a PNG
    url = uploaded_url(client, sim, big, "big.png")
    fields = DOCS_SINGLE | {"kling_elements": [E2 | {"element_input_urls": [url, U]}]}
    answer = create(client, sim, fields).json()
    assert answer["code"] == 422
    assert "kling_elements[0].element_input_urls[0]: maximum file size is 10MB" in answer["msg"]


# --- uploads ------------------------------------------------------------------------------------


def test_upload_stores_the_bytes_and_answers_the_download_url(sim, client, png):
    answer = upload(client, sim, png, "regatta.png")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["success"], body["code"], body["msg"]) == (True, 200,
                                                            "File uploaded successfully")
    data = body["data"]
    assert data["fileName"] == "regatta.png"
    assert data["filePath"] == "kling-compose/regatta.png"
    assert data["fileSize"] == len(png) and data["mimeType"] == "image/png"
    assert data["uploadedAt"].endswith("+00:00")
    download = client.get(data["downloadUrl"])
    assert download.content == png and download.headers["content-type"] == "image/png"
    (recorded,) = sim.requests("kie", "upload")
    assert recorded.headers["authorization"] == "Bearer ***"
    assert recorded.path == "/kie-upload/api/file-stream-upload"


def test_the_same_file_name_overwrites(sim, client, png, png_last):
    first = upload(client, sim, png, "same.png").json()["data"]["downloadUrl"]
    second = upload(client, sim, png_last, "same.png").json()["data"]["downloadUrl"]
    assert first == second and client.get(second).content == png_last
    other = upload(client, sim, png, "other.png").json()["data"]["downloadUrl"]
    assert other != first


def test_without_a_file_name_the_part_name_is_used(sim, client, png):
    answer = upload(client, sim, png, "part.png", fields={"uploadPath": "images/user-uploads"})
    data = answer.json()["data"]
    assert (data["fileName"], data["filePath"]) == ("part.png", "images/user-uploads/part.png")


@pytest.mark.parametrize(("fields", "fragment"), [
    ({}, "uploadPath is required"),
    ({"uploadPath": "/kling-compose"}, "no leading or trailing slashes"),
    ({"uploadPath": "kling-compose/"}, "no leading or trailing slashes"),
    ({"uploadPath": "p", "folder": "x"}, "unknown form field(s) ['folder']"),
])  # fmt: skip
def test_upload_form_rules(sim, client, png, fields, fragment):
    answer = upload(client, sim, png, fields=fields)
    assert answer.status_code == 400
    assert answer.json()["success"] is False and fragment in answer.json()["msg"]


def test_upload_needs_a_multipart_file(sim, client, png):
    url = sim.url("kie-upload") + "/api/file-stream-upload"
    answer = client.post(url, content=png, headers=AUTH | {"Content-Type": "image/png"})
    assert answer.status_code == 400 and "multipart/form-data" in answer.json()["msg"]
    # a `file` field that is not a file part (no filename)
    answer = client.post(url, data={"uploadPath": "p", "file": "not a file"},
                         files={"fileName": (None, b"a.png")}, headers=AUTH)  # fmt: skip
    assert answer.status_code == 400 and "file is required" in answer.json()["msg"]
    answer = client.post(url, data={"uploadPath": "p"}, files={"fileName": (None, b"a.png")},
                         headers=AUTH)  # fmt: skip
    assert answer.status_code == 400 and "file is required" in answer.json()["msg"]
    bad = b"--xyz\r\nContent-Disposition: form-data\r\n\r\nx\r\n--xyz--\r\n"
    answer = client.post(url, content=bad,
                         headers=AUTH | {"Content-Type": "multipart/form-data; boundary=xyz"})
    assert answer.status_code == 400 and "malformed multipart body" in answer.json()["msg"]


# --- the provider module's own requests against the simulator -----------------------------------


def test_the_provider_uploads_submits_polls_and_downloads(sim, client, png, png_last):
    """KieProvider's request builders and readers, end to end over HTTP (no engine)."""
    kie, key = PROVIDERS["kie"], Secret(KEY)

    async def session():
        async with httpx.AsyncClient(timeout=10) as http:
            async def send(request):
                return await http.send(request)

            urls = {"kie": sim.url("kie"), "kie-upload": sim.url("kie-upload")}
            first = await kie.upload(send, png, "image/png", "first.png", urls.get, key)
            side = await kie.upload(send, png_last, "image/png", "side.png", urls.get, key)
            return first, side

    first, side = asyncio.run(session())
    request = {"model": MODEL, "input": {
        "image_urls": [first], "sound": True, "duration": "5", "aspect_ratio": "16:9",
        "mode": "std",
        "multi_shots": True,
        "multi_prompt": [{"prompt": "@boat drifts", "duration": 2},
                         {"prompt": "fireworks", "duration": 3}],
        "kling_elements": [{"name": "boat", "description": "boat",
                            "element_input_urls": [first, side]}]}}  # fmt: skip
    handle = kie.read_submit(client.send(kie.submit_request(None, request, "ours",
                                                            sim.url("kie"), key)), "ours")
    deadline = time.monotonic() + 10
    while True:
        response = client.send(kie.poll_request(handle, sim.url("kie"), key))
        status = kie.read_status(response, handle, 1)
        if status.state not in ("processing", "unconfirmed") or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert status.state == "done"
    clip = client.get(status.results[0].url).content
    assert matches(frames(clip)[0], png)
    assert duration_s(clip) == pytest.approx(5, abs=0.1)
    unknown = kie.read_status(client.send(kie.poll_request(type(handle)("task_gone"),
                                                           sim.url("kie"), key)), handle, 1)
    assert unknown.state == "unconfirmed"  # "recordInfo is null": maybe not shown yet
    for record in sim.requests("kie"):
        assert KEY not in json.dumps(record.headers)


def test_the_provider_reads_a_simulated_refusal(sim, client):
    from kling_compose.providers.base import ProviderError

    kie = PROVIDERS["kie"]
    bad = {"model": MODEL, "input": SINGLE | {"duration": "16"}}
    response = client.send(kie.submit_request(None, bad, "ours", sim.url("kie"), Secret(KEY)))
    with pytest.raises(ProviderError, match="code 422: Validation Error - .*: duration is requi"):
        kie.read_submit(response, "ours")
    response = client.send(kie.submit_request(None, bad, "ours", sim.url("kie"), Secret("nope")))
    with pytest.raises(ProviderError, match=r"code 401: .*\(check KIE_API_KEY\)"):
        kie.read_submit(response, "ours")


def test_faults_reach_the_provider_as_transient(sim, client):
    from kling_compose.providers.base import TransientError

    kie = PROVIDERS["kie"]
    sim.faults.rate_limit(1, retry_after=2, kind="submit")
    body = {"model": MODEL, "input": SINGLE}
    response = client.send(kie.submit_request(None, body, "ours", sim.url("kie"), Secret(KEY)))
    with pytest.raises(TransientError) as raised:
        kie.read_submit(response, "ours")
    assert raised.value.retry_after_s == 2.0
