"""The simulated kling/v3 task API (seed 002): auth, Key and Validation Rules, task states."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .kit import TASK_AUTH, frames, matches, task_create, task_info, task_wait

SINGLE = {
    "prompt": "A violinist on a dock",
    "multi_shots": False,
    "duration": "3",
    "aspect_ratio": "16:9",
    "mode": "pro",
    "audio": False,
}


def test_a_missing_or_wrong_key_is_code_401(sim, client):
    url = sim.url("kling-v3-task") + "/api/v1/jobs/createTask"
    for headers in ({}, {"x-api-key": "wrong"}, {"Authorization": "Bearer task-test-key"}):
        answer = client.post(url, json={"model": "kling/v3", "input": SINGLE}, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["code"] == 401
        assert answer.json()["msg"].startswith("Unauthorized")


def test_create_then_poll_walks_the_states_to_success(sim, client, faults):
    faults.task_seconds = 1.0  # 150 ms waiting, 150 ms queuing
    answer = task_create(client, sim, SINGLE, callback_url=None)
    assert answer.status_code == 200
    assert answer.json()["code"] == 200 and answer.json()["msg"] == "success"
    task_id = answer.json()["data"]["taskId"]
    seen = task_wait(client, sim, task_id)
    states = [d["state"] for d in seen]
    order = ["waiting", "queuing", "generating", "success"]
    distinct = [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]
    assert distinct == order
    final = seen[-1]
    assert final["taskId"] == task_id and final["model"] == "kling/v3"
    assert json.loads(final["param"]) == {
        "model": "kling/v3",
        "callback_url": None,
        "input": SINGLE,
    }
    urls = json.loads(final["resultJson"])["resultUrls"]
    assert len(urls) == 1
    assert final["completeTime"] >= final["createTime"]
    assert seen[0]["completeTime"] is None and seen[0]["resultJson"] == ""
    clip = client.get(urls[0]).content
    assert frames(clip)[0].size == (320, 180)


def test_record_info_envelope_uses_message(sim, client):
    task_id = task_create(client, sim, SINGLE).json()["data"]["taskId"]
    body = task_info(client, sim, task_id).json()
    assert body["code"] == 200 and body["message"] == "success"


def test_a_first_frame_url_is_the_clips_first_frame(sim, client, png):
    upload = client.post(
        f"{sim.url('fal-rest')}/storage/upload/initiate",
        json={"file_name": "f.png"},
        headers={"Authorization": "Key fal-id:fal-secret"},
    ).json()
    client.put(upload["upload_url"], content=png)
    multi = {
        "multi_shots": True,
        "shot_type": "customize",
        "duration": "4",
        "img_urls": [upload["file_url"]],
        "multi_prompt": [{"prompt": "one", "duration": 2}, {"prompt": "two", "duration": 2}],
    }
    task_id = task_create(client, sim, multi).json()["data"]["taskId"]
    final = task_wait(client, sim, task_id)[-1]
    url = json.loads(final["resultJson"])["resultUrls"][0]
    assert matches(frames(client.get(url).content)[0], png)
    assert sim.generations("kling-v3-task")[0].plan.audio is True  # forced on in multi-shot mode


def test_an_unknown_task_is_code_404(sim, client):
    answer = task_info(client, sim, "nope")
    assert answer.status_code == 404 and answer.json()["code"] == 404


def test_a_failed_generation_is_state_fail_with_code_501(sim, client, faults):
    faults.fail_generation("forbidden", "content flagged")
    task_id = task_create(client, sim, SINGLE | {"prompt": "something forbidden"}).json()["data"][
        "taskId"
    ]
    final = task_wait(client, sim, task_id)[-1]
    assert (final["state"], final["failCode"], final["failMsg"]) == (
        "fail",
        "501",
        "content flagged",
    )
    assert final["resultJson"] == ""


def test_the_callback_gets_the_finished_data_once(sim, client):
    received = []
    done = threading.Event()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            done.set()

        def log_message(self, *args):
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{hook.server_address[1]}/done"
        task_id = task_create(client, sim, SINGLE, callback_url=url).json()["data"]["taskId"]
        task_wait(client, sim, task_id)
        task_info(client, sim, task_id)
        assert done.wait(5)
    finally:
        hook.shutdown()
        hook.server_close()
    assert len(received) == 1
    assert received[0]["taskId"] == task_id and received[0]["state"] == "success"
    assert sim.kling_v3_task.callbacks[0][2] == 200


U = "https://example.com/a.png"
VALIDATION = [
    # (id, body-or-input, fragment of msg)
    ("model", {"model": "kling-3.0/video", "input": SINGLE}, "model must be 'kling/v3'"),
    ("no-input", {"model": "kling/v3"}, "input is required"),
    (
        "multi-shots-missing",
        {k: v for k, v in SINGLE.items() if k != "multi_shots"},
        "multi_shots is required",
    ),
    (
        "single-needs-prompt",
        SINGLE | {"prompt": None},
        "When multi_shots is false, prompt is required",
    ),
    ("single-three-images", SINGLE | {"img_urls": [U, U, U]}, "1 start frame or 2 frames"),
    (
        "multi-needs-one-image",
        {"multi_shots": True, "shot_type": "intelligence", "prompt": "p", "duration": "5"},
        "img_urls must contain exactly 1 image",
    ),
    (
        "multi-two-images",
        {
            "multi_shots": True,
            "shot_type": "intelligence",
            "prompt": "p",
            "duration": "5",
            "img_urls": [U, U],
        },
        "img_urls must contain exactly 1 image",
    ),
    (
        "customize-needs-multi-prompt",
        {"multi_shots": True, "shot_type": "customize", "duration": "5", "img_urls": [U]},
        "shot_type=customize, multi_prompt is required",
    ),
    (
        "customize-sum",
        {
            "multi_shots": True,
            "shot_type": "customize",
            "duration": "5",
            "img_urls": [U],
            "multi_prompt": [{"prompt": "a", "duration": 2}, {"prompt": "b", "duration": 2}],
        },
        "must exactly equal duration",
    ),
    (
        "customize-seven",
        {
            "multi_shots": True,
            "shot_type": "customize",
            "duration": "7",
            "img_urls": [U],
            "multi_prompt": [{"prompt": "a", "duration": 1}] * 7,
        },
        "1 to 6 shots",
    ),
    (
        "customize-zero-second",
        {
            "multi_shots": True,
            "shot_type": "customize",
            "duration": "5",
            "img_urls": [U],
            "multi_prompt": [{"prompt": "a", "duration": 0}, {"prompt": "b", "duration": 5}],
        },
        "multi_prompt[0].duration must be 1 to 15",
    ),
    (
        "intelligence-needs-prompt",
        {"multi_shots": True, "shot_type": "intelligence", "duration": "5", "img_urls": [U]},
        "shot_type=intelligence, prompt is required",
    ),
    (
        "intelligence-no-multi-prompt",
        {
            "multi_shots": True,
            "shot_type": "intelligence",
            "prompt": "p",
            "duration": "5",
            "img_urls": [U],
            "multi_prompt": [{"prompt": "a", "duration": 5}],
        },
        "multi_prompt should not be provided",
    ),
    (
        "shot-type",
        {
            "multi_shots": True,
            "shot_type": "intelligent",
            "prompt": "p",
            "duration": "5",
            "img_urls": [U],
        },
        "shot_type must be one of",
    ),
    ("duration", SINGLE | {"duration": "16"}, "duration must be 3 to 15"),
    ("aspect", SINGLE | {"aspect_ratio": "4:3"}, "aspect_ratio must be one of"),
    ("mode", SINGLE | {"mode": "max"}, "mode must be one of"),
    ("audio-type", SINGLE | {"audio": "on"}, "audio must be a boolean"),
    (
        "elements-four",
        SINGLE | {"element_list": [{"name": f"e{i}", "element_input_urls": [U]} for i in range(4)]},
        "up to 3 elements",
    ),
    (
        "element-five-images",
        SINGLE | {"element_list": [{"name": "dog", "element_input_urls": [U] * 5}]},
        "1 to 4 reference images",
    ),
    (
        "element-no-images",
        SINGLE | {"element_list": [{"name": "dog", "element_input_urls": []}]},
        "1 to 4 reference images",
    ),
    ("element-no-name", SINGLE | {"element_list": [{"element_input_urls": [U]}]}, "needs a name"),
    (
        "image-data-uri",
        SINGLE | {"img_urls": ["data:image/png;base64,AAAA"]},
        "must be an http(s) URL",
    ),
    ("unknown-field", SINGLE | {"sound": True}, "unknown input field(s) ['sound']"),
    ("callback", {"model": "kling/v3", "callback_url": "ftp://x", "input": SINGLE}, "callback_url"),
]


@pytest.mark.parametrize(
    ("body", "fragment"), [c[1:] for c in VALIDATION], ids=[c[0] for c in VALIDATION]
)
def test_each_rule_answers_code_422(sim, client, body, fragment):
    if "model" not in body:
        body = {"model": "kling/v3", "input": {k: v for k, v in body.items() if v is not None}}
    answer = client.post(
        sim.url("kling-v3-task") + "/api/v1/jobs/createTask", json=body, headers=TASK_AUTH
    )
    assert answer.status_code == 422
    assert answer.json()["code"] == 422 and answer.json()["data"] is None
    assert answer.json()["msg"].startswith("Validation Error")
    assert fragment in answer.json()["msg"]
    assert sim.generations() == []


def test_an_intelligence_multi_shot_with_one_image_is_accepted(sim, client):
    body = {
        "multi_shots": True,
        "shot_type": "intelligence",
        "prompt": "three cuts",
        "duration": "5",
        "img_urls": ["https://example.com/a.png"],
    }
    assert task_create(client, sim, body).json()["code"] == 200
