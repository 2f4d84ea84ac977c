"""providers/kling_v3_task.py: the `kling/v3` task API of seed 002."""

from __future__ import annotations

import httpx
import pytest

from kling_compose.providers import PROVIDERS
from kling_compose.providers.base import Handle, LostAnswer, ProviderError, TransientError
from kling_compose.settings import Secret

from .factory import diagnostics, element, make_shot

IMG = "https://example.com/a.png"


def task_shot(**fields):
    return make_shot(provider="kling-v3-task", **fields)


def test_elements_keep_their_names(compile_one):
    dog = element("element_dog", description="dog", frontal_image=IMG)
    job = compile_one(task_shot(prompt_text="@element_dog runs", elements=[dog], first_frame=IMG))
    assert job.request == {
        "model": "kling/v3",
        "input": {
            "prompt": "@element_dog runs",
            "multi_shots": False,
            "mode": "pro",
            "img_urls": [IMG],
            "element_list": [{"name": "element_dog", "description": "dog",
                              "element_input_urls": [IMG]}],  # fmt: skip
        },
    }
    assert job.cost_usd is None
    assert job.cost_note == (
        "the kling/v3 task API bills in credits and publishes no USD price"
    )


def test_intelligence_mode_through_provider_options(compile_one):
    options = {"input": {"multi_shots": True, "shot_type": "intelligence"}}
    job = compile_one(task_shot(first_frame=IMG, provider_options=options))
    assert job.request["input"]["multi_shots"] is True
    assert job.request["input"]["shot_type"] == "intelligence"


# --- seed 002's rules -------------------------------------------------------------------------


def test_multi_shot_needs_exactly_one_image():
    shot = task_shot(multi_prompt=[("a beat", 3), ("more", 2)])
    assert diagnostics(shot) == [
        "storyboard.yaml:11:5: error: a multi-shot generation needs exactly one image: a "
        "first_frame and no last_frame\n  hint: the kling/v3 task API: when multi_shots is true, img_urls "
        "must contain exactly 1 image"
    ]


MULTI_LAST = (
    "storyboard.yaml:18:5: error: last_frame cannot be combined with multi_prompt: Kling 3.0 "
    "makes a multi-shot clip from a first frame only\n  hint: remove the last_frame (keep the "
    "first_frame), or write the shot as one prompt to end on that frame (Kling 3.0: the end "
    "frame \"cannot be used together with multi_prompt\")"
)


def test_multi_shot_takes_no_last_frame_said_once():
    # rules.check_multi_prompt_frames says it for every provider; this one adds nothing
    shot = task_shot(multi_prompt=[("a beat", 3), ("more", 2)], first_frame=IMG, last_frame=IMG)
    assert diagnostics(shot) == [MULTI_LAST]


def test_multi_shot_with_only_a_last_frame_misses_its_first_frame_too():
    shot = task_shot(multi_prompt=[("a beat", 3), ("more", 2)], last_frame=IMG)
    assert diagnostics(shot) == [
        "storyboard.yaml:11:5: error: a multi-shot generation needs exactly one image: a "
        "first_frame and no last_frame\n  hint: the kling/v3 task API: when multi_shots is "
        "true, img_urls must contain exactly 1 image",
        MULTI_LAST,
    ]


def test_intelligence_multi_shot_takes_no_last_frame():
    options = {"input": {"multi_shots": True, "shot_type": "intelligence"}}
    shot = task_shot(first_frame=IMG, last_frame=IMG, provider_options=options)
    assert diagnostics(shot) == [
        "storyboard.yaml:18:5: error: a multi-shot generation needs exactly one image: a "
        "first_frame and no last_frame\n  hint: the kling/v3 task API: when multi_shots is "
        "true, img_urls must contain exactly 1 image"
    ]


def test_customize_needs_multi_prompt():
    shot = task_shot(first_frame=IMG, provider_options={"input": {"multi_shots": True}})
    assert diagnostics(shot) == [
        "storyboard.yaml:30:5: error: shot_type customize needs a multi_prompt\n  hint: the "
        "kling/v3 task API: when multi_shots=true and shot_type=customize, multi_prompt is required"
    ]


def test_intelligence_needs_a_prompt_and_no_multi_prompt():
    options = {"input": {"shot_type": "intelligence"}}
    shot = task_shot(multi_prompt=[("a beat", 3), ("more", 2)], first_frame=IMG,
                     provider_options=options)  # fmt: skip
    assert diagnostics(shot) == [
        "storyboard.yaml:11:5: error: shot_type intelligence needs a prompt and no "
        "multi_prompt\n  hint: the kling/v3 task API: when shot_type=intelligence, prompt is required and "
        "multi_prompt should not be provided"
    ]


def test_multi_shot_forces_audio_on():
    shot = task_shot(multi_prompt=[("a beat", 3), ("more", 2)], first_frame=IMG, audio=False)
    assert diagnostics(shot) == [
        "storyboard.yaml:16:5: warning: audio: false is overridden: multi-shot generations "
        "always have audio\n  hint: the kling/v3 task API: audio is forced to true in multi-shot mode"
    ]


def test_elements_take_images_only():
    e = element("a", videos=["https://example.com/v.mp4"])
    assert diagnostics(task_shot(prompt_text="@a", elements=[e])) == [
        "storyboard.yaml:3:3: error: element 'a' has no image; kling-v3-task needs 1-4\n"
        "  hint: add a frontal_image",
        "storyboard.yaml:3:3: error: element 'a' has videos or voices; kling-v3-task elements "
        "take images\n  hint: the kling/v3 task API: element_list elements accept 1 to 4 reference images",
        "storyboard.yaml:3:3: error: videos: kling-v3-task does not accept a URL for video "
        "inputs\n  hint: kling-v3-task takes no video inputs: remove it",
    ]


def test_at_most_four_images_per_element():
    e = element("a", frontal_image=IMG, images=[IMG] * 4)
    assert diagnostics(task_shot(prompt_text="@a", elements=[e])) == [
        "storyboard.yaml:3:3: error: element 'a' has 4 extra images; kling-v3-task model "
        "'kling-3-pro' takes at most 3 besides the frontal image\n"
        "  hint: keep the 3 most telling angles"
    ]


def test_urls_only():
    assert diagnostics(task_shot(first_frame="data:image/png;base64,AAAA")) == [
        "storyboard.yaml:17:5: error: first_frame: kling-v3-task does not accept a data URI "
        "for image inputs\n  hint: use an http(s) URL"
    ]


@pytest.mark.parametrize("source, kind", [("assets/start.png", "a local file"),
                                          ("from:opening", "a chained frame or clip")])
def test_a_local_file_or_a_chain_is_refused_by_validate_not_by_run(source, kind):
    # seed 002 documents no upload: a chain would pass validate and fail in `run` after the
    # earlier shots were paid for
    (diag,) = diagnostics(task_shot(first_frame=source))
    assert diag.startswith(f"storyboard.yaml:17:5: error: first_frame: kling-v3-task does not "
                           f"accept {kind} for image inputs\n  hint: kling-v3-task has no way "
                           "to receive image bytes")


# --- run time: createTask and recordInfo -------------------------------------------------------

TASK = PROVIDERS["kling-v3-task"]
BASE = "https://task.test"
KEY = Secret("task-key")


def _send(handler, request: httpx.Request) -> httpx.Response:
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        return client.send(request)


def _submitted(status: int, body=None, text: str | None = None) -> httpx.Response:
    request = TASK.submit_request(None, {"model": "kling/v3", "input": {}}, "our-id", BASE, KEY)
    answer = (lambda r: httpx.Response(status, text=text)) if text is not None else \
        (lambda r: httpx.Response(status, json=body))
    return _send(answer, request)


def test_a_task_queue_provider_declares_how_a_lost_answer_is_handled():
    # the engine reads these: without client_task_id a lost answer was an AttributeError
    assert TASK.client_task_id is False and TASK.batch_poll is False
    assert not hasattr(TASK, "idempotent_submit")


@pytest.mark.parametrize("status, body, text", [
    (500, {"code": 500, "msg": "Server Error"}, None),
    (200, {"code": 500, "msg": "Server Error"}, None),
    (500, None, "<html>internal error</html>"),
    (502, None, "<html>bad gateway</html>"),
    (504, None, ""),
])
def test_a_server_error_to_a_submission_is_a_lost_answer_not_a_retry(status, body, text):
    with pytest.raises(LostAnswer):
        TASK.read_submit(_submitted(status, body, text), "our-id")


@pytest.mark.parametrize("status, body, error", [
    (429, {"code": 429, "msg": "Rate Limited"}, TransientError),
    (503, {"code": 455, "msg": "maintenance"}, TransientError),
    (401, {"code": 401, "msg": "Unauthorized"}, ProviderError),
    (422, {"code": 422, "msg": "Validation Error"}, ProviderError),
])
def test_refusals_before_a_task_is_made(status, body, error):
    with pytest.raises(error):
        TASK.read_submit(_submitted(status, body), "our-id")


@pytest.mark.parametrize("data", [{}, None, {"taskId": ""}, {"taskId": True}, "task-7"])
def test_an_accepted_submission_without_a_task_id_is_a_lost_answer(data):
    # code 200: the task was made; recorded refused, the next run would pay for it again
    with pytest.raises(LostAnswer):
        TASK.read_submit(_submitted(200, {"code": 200, "msg": "success", "data": data}), "our-id")


def test_an_accepted_submission_gives_the_task_id():
    answer = _submitted(200, {"code": 200, "msg": "success", "data": {"taskId": "task-7"}})
    assert TASK.read_submit(answer, "our-id") == Handle("task-7")


def _status(data, takes: int = 1):
    handle = Handle("task-7")
    request = TASK.poll_request(handle, BASE, KEY)
    assert str(request.url) == f"{BASE}/api/v1/jobs/recordInfo?taskId=task-7"
    answer = _send(lambda r: httpx.Response(200, json={"code": 200, "message": "success",
                                                       "data": data}), request)
    return TASK.read_status(answer, handle, takes)


def test_statuses():
    assert _status({"state": "waiting"}).detail == "queued"
    assert _status({"state": "generating"}).state == "processing"
    done = _status({"state": "success", "resultJson": '{"resultUrls": ["https://r.test/a.mp4"]}'})
    assert done.state == "done" and [r.url for r in done.results] == ["https://r.test/a.mp4"]
    failed = _status({"state": "fail", "failCode": "501", "failMsg": "blocked"})
    assert failed.state == "failed" and failed.message == "501: blocked"


@pytest.mark.parametrize("data, field", [
    ({"state": "success"}, "resultJson is empty"),
    ({"state": "success", "resultJson": ""}, "resultJson is empty"),
    ({"state": "success", "resultJson": "{not json"}, "resultJson is not JSON"),
    ({"state": "success", "resultJson": "{}"}, "resultUrls"),
    ({"state": "success", "resultJson": '{"resultUrls": []}'}, "resultUrls"),
    ({"state": "success", "resultJson": '{"resultUrls": "https://r.test/a.mp4"}'}, "resultUrls"),
    ({"state": "success", "resultJson": '{"resultUrls": [42]}'}, "resultUrls[0]"),
    ({"state": "success", "resultJson": '{"resultUrls": ["file:///etc/passwd"]}'},
     "resultUrls[0]"),
    ({"state": "success", "resultJson": "[1, 2]"}, "resultUrls"),
    ({"state": None}, "data.state"),
    ({"state": 7}, "data.state"),
    (None, "data"),
    (["success"], "data"),
])
def test_a_malformed_success_answer_is_invalid_never_failed(data, field):
    """Recorded failed, the task would be rejected and the next run would pay again for a
    generation that may have been paid for: `invalid` keeps it, naming the field."""
    status = _status(data)
    assert status.state == "invalid", status
    assert field in status.message
