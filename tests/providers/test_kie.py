"""providers/kie.py: kie.ai's Kling 3.0 (`kling-3.0/video`), compile and run-time halves."""

from __future__ import annotations

import asyncio
import json
import re
from decimal import Decimal

import httpx
import pytest

from kling_compose.providers import PROVIDERS
from kling_compose.providers.base import (
    Handle,
    LostAnswer,
    ProviderError,
    TransientError,
)
from kling_compose.providers.kie import KieProvider
from kling_compose.settings import Secret

from .factory import diagnostics, element, loc, make_shot

IMG = "https://example.com/a.png"
IMG2 = "https://example.com/b.jpg"
KIE = PROVIDERS["kie"]
KEY = Secret("kie-secret-key")


def kie_shot(**fields):
    return make_shot(provider="kie", **fields)


def at(field: str) -> str:
    """`storyboard.yaml:L:5`: where the factory writes `field`."""
    return str(loc(field))


# --- request bodies -------------------------------------------------------------------------


def test_text_only_sends_every_applicable_field(compile_one):
    job = compile_one(kie_shot())
    assert job.request == {
        "model": "kling-3.0/video",
        "input": {
            "prompt": "A quiet harbour at dawn",
            "sound": False,
            "duration": "5",
            "aspect_ratio": "16:9",
            "mode": "pro",
            "multi_shots": False,
        },
    }
    assert list(job.request["input"]) == ["prompt", "sound", "duration", "aspect_ratio", "mode",
                                          "multi_shots"]  # fmt: skip
    assert job.inputs == ()
    assert (job.cost_usd, job.cost_note) == (Decimal("0.45"), None)  # pro, silent: 5 s x $0.09
    assert job.warnings == ()


@pytest.mark.parametrize(("model", "mode"), [("kling-3-std", "std"), ("kling-3-pro", "pro"),
                                             ("kling-3-4k", "4K")])  # fmt: skip
def test_each_alias_is_a_mode(compile_one, model, mode):
    job = compile_one(kie_shot(model=model, duration=10, aspect="9:16", audio=True))
    assert job.request["model"] == "kling-3.0/video"
    assert job.request["input"] == {
        "prompt": "A quiet harbour at dawn",
        "sound": True,
        "duration": "10",
        "aspect_ratio": "9:16",
        "mode": mode,
        "multi_shots": False,
    }
    assert job.cost_usd == {"std": Decimal("1.00"), "pro": Decimal("1.35"),
                            "4K": Decimal("3.35")}[mode]  # 10 s with audio # fmt: skip


def test_a_size_is_sent_as_its_aspect(compile_one):
    job = compile_one(kie_shot(size=(1080, 1080)))
    assert job.request["input"]["aspect_ratio"] == "1:1"
    assert job.warnings == ()


def test_first_and_last_frame_urls(compile_one):
    job = compile_one(kie_shot(first_frame=IMG, last_frame=IMG2, duration=8, aspect="9:16"))
    assert job.request == {
        "model": "kling-3.0/video",
        "input": {
            "prompt": "A quiet harbour at dawn",
            "image_urls": [IMG, IMG2],
            "sound": False,
            "duration": "8",
            "aspect_ratio": "9:16",
            "mode": "pro",
            "multi_shots": False,
        },
    }  # aspect_ratio with image_urls too: required in the schema, sent by every example


@pytest.mark.parametrize(("size", "sent"), [((180, 320), "9:16"), ((300, 290), "1:1"),
                                             ((640, 360), "16:9"), ((500, 300), "16:9")])
def test_aspect_ratio_with_a_local_first_frame_is_the_nearest_to_the_image(compile_one, tmp_path,
                                                                           size, sent):
    """Issue 21, item 9: kie's schema requires aspect_ratio and every example sends it with
    image_urls; with no aspect of the shot's own, the first frame's nearest is sent."""
    from PIL import Image

    image = tmp_path / "frame.png"
    Image.new("RGB", size).save(image)
    job = compile_one(kie_shot(first_frame=str(image)))
    assert job.request["input"]["aspect_ratio"] == sent


@pytest.mark.parametrize("kind", ["not an image", "a folder", "a bomb", "missing"])
def test_a_first_frame_pillow_cannot_read_sends_the_default_aspect(compile_one, tmp_path,
                                                                    monkeypatch, kind):
    """The exceptions Pillow raises are caught by name (issue 23: it was `except Exception`),
    and none of them is a traceback: the file check elsewhere says what is wrong."""
    from PIL import Image

    image = tmp_path / "frame.png"
    if kind == "not an image":
        image.write_bytes(b"\x89PNG but not really")
    elif kind == "a folder":
        image.mkdir()
    elif kind == "a bomb":  # more pixels than Pillow opens safely (twice its limit)
        Image.new("RGB", (40, 40)).save(image)
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    job = compile_one(kie_shot(first_frame=str(image)))
    assert job.request["input"]["aspect_ratio"] == "16:9"


def test_aspect_ratio_with_frames_is_the_shots_or_the_default(compile_one):
    url_only = compile_one(kie_shot(first_frame=IMG)).request["input"]
    assert url_only["aspect_ratio"] == "16:9"  # a URL's size is unknown: the default frame
    sized = compile_one(kie_shot(first_frame=IMG, size=(1080, 1920))).request["input"]
    assert sized["aspect_ratio"] == "9:16"
    chained = compile_one(kie_shot(first_frame="from:s0", aspect="1:1")).request["input"]
    assert chained["aspect_ratio"] == "1:1"
    odd = compile_one(kie_shot(first_frame=IMG, aspect="4:3")).request["input"]
    assert odd["aspect_ratio"] == "16:9"  # not kie's: never sent (refused after others paid)


def test_prices_follow_the_mode_sound_and_duration_as_sent(compile_one):
    """Issue 21, item 7: kie's pricing page (2026-06-30), USD per second."""
    multi = compile_one(kie_shot(multi_prompt=[("one", 3), ("two", 4)], model="kling-3-std"))
    assert multi.cost_usd == Decimal("0.70")  # multi-shot sends sound: 7 s x $0.10
    options = {"input": {"mode": "std", "sound": True, "duration": "3"}}
    changed = compile_one(kie_shot(provider_options=options))  # a pro shot sent as std
    assert changed.cost_usd == Decimal("0.30")
    unknown = compile_one(kie_shot(provider_options={"input": {"mode": "8K"}}))
    assert unknown.cost_usd is None
    assert unknown.cost_note == "kie publishes no price for this request's mode or duration"
    assert {a: dict(m.prices) for a, m in KIE.models.items()} == {
        "kling-3-std": {"silent": Decimal("0.07"), "audio": Decimal("0.10")},
        "kling-3-pro": {"silent": Decimal("0.09"), "audio": Decimal("0.135")},
        "kling-3-4k": {"silent": Decimal("0.335"), "audio": Decimal("0.335")},
        # issue 25: Turbo, one price per resolution, with sound (tests/providers/test_kie_tiers.py)
        "kling-3-turbo-std": {"audio": Decimal("0.09")},
        "kling-3-turbo-pro": {"audio": Decimal("0.1125")},
    }


def test_a_local_file_and_a_chained_frame_are_uploaded_inputs(compile_one):
    job = compile_one(kie_shot(first_frame="assets/a.png", last_frame="from:s0"))
    assert job.request["input"]["image_urls"] == ["kc-input:file:assets/a.png",
                                                  "kc-input:frame:s0:last"]  # fmt: skip
    assert [(i.key, i.media) for i in job.inputs] == [("file:assets/a.png", "image"),
                                                      ("frame:s0:last", "image")]  # fmt: skip


def test_multi_shot(compile_one):
    shot = kie_shot(multi_prompt=[("a lantern @boat drifts", 3), ("fireworks", 2)],
                    first_frame=IMG,
                    elements=[element("boat", description="a red boat", frontal_image=IMG,
                                      images=[IMG2])])  # fmt: skip
    job = compile_one(shot)
    assert job.request == {
        "model": "kling-3.0/video",
        "input": {
            "image_urls": [IMG],
            "sound": True,
            "duration": "5",
            "aspect_ratio": "16:9",
            "mode": "pro",
            "multi_shots": True,
            "multi_prompt": [
                {"prompt": "a lantern @boat drifts", "duration": 3},
                {"prompt": "fireworks", "duration": 2},
            ],
            "kling_elements": [
                {"name": "boat", "description": "a red boat", "element_input_urls": [IMG, IMG2]}
            ],
        },
    }  # no prompt (it takes effect only when multi_shots is false), as the docs' example
    assert job.warnings == ()


def test_multi_shot_without_an_image_sends_an_aspect(compile_one):
    job = compile_one(kie_shot(multi_prompt=[("one", 3), ("two", 4)], duration=7, aspect="1:1"))
    assert job.request["input"] == {
        "sound": True,
        "duration": "7",
        "aspect_ratio": "1:1",
        "mode": "pro",
        "multi_shots": True,
        "multi_prompt": [{"prompt": "one", "duration": 3}, {"prompt": "two", "duration": 4}],
    }


def test_elements_keep_their_names_and_send_voices(compile_one):
    dog = element("element_dog", frontal_image=IMG, images=["assets/side.png"],
                  voices=["https://example.com/bark.mp3"])  # fmt: skip
    cat = element("cat", description="a cat", frontal_image=IMG2, images=[IMG, IMG2, IMG])
    job = compile_one(kie_shot(prompt_text="@element_dog meets @cat", elements=[dog, cat],
                               first_frame=IMG))  # fmt: skip
    assert job.request["input"] == {
        "prompt": "@element_dog meets @cat",
        "image_urls": [IMG],
        "sound": False,
        "duration": "5",
        "aspect_ratio": "16:9",
        "mode": "pro",
        "multi_shots": False,
        "kling_elements": [
            {
                "name": "element_dog",
                "description": "element_dog",  # required by both specs: the name stands in
                "element_input_urls": [IMG, "kc-input:file:assets/side.png"],
                "element_input_audio_urls": ["https://example.com/bark.mp3"],
            },
            {"name": "cat", "description": "a cat", "element_input_urls": [IMG2, IMG, IMG2, IMG]},
        ],
    }


def test_provider_options_are_merged_last(compile_one):
    options = {"input": {"sound": False, "mode": "std"}, "callBackUrl": "https://e.com/hook"}
    job = compile_one(kie_shot(multi_prompt=[("a beat", 3), ("more", 2)], audio=False,
                               provider_options=options))  # fmt: skip
    assert job.request["input"]["sound"] is False and job.request["input"]["mode"] == "std"
    assert job.request["callBackUrl"] == "https://e.com/hook"


# --- limits: every one a located error --------------------------------------------------------


def test_duration_out_of_range():
    assert diagnostics(kie_shot(duration=16)) == [
        f"{at('duration')}: error: duration 16 s is out of range: kie model 'kling-3-pro' makes "
        "3-15 s\n  hint: set a duration from 3 to 15 seconds"
    ]


def test_aspect_out_of_range():
    assert diagnostics(kie_shot(aspect="4:3")) == [
        f"{at('aspect')}: error: aspect 4:3 is not available on kie model 'kling-3-pro'\n"
        "  hint: use one of 16:9, 9:16, 1:1"
    ]


def test_takes_and_unsupported_fields():
    assert diagnostics(kie_shot(takes=2, reference_images=[IMG])) == [
        f"{at('reference_images')}: error: kie model 'kling-3-pro' does not support "
        "reference_images\n  hint: remove reference_images from this shot or choose another "
        "model (kie.ai's Kling 3.0 page, docs.kie.ai/market/kling/kling-3-0)",
        f"{at('takes')}: error: kie model 'kling-3-pro' does not support takes\n"
        "  hint: remove takes from this shot or choose another model "
        "(kie.ai's Kling 3.0 page, docs.kie.ai/market/kling/kling-3-0)",
    ]
    assert diagnostics(kie_shot(negative_prompt="blur")) == [
        f"{at('negative_prompt')}: warning: negative_prompt is not sent: kie model 'kling-3-pro' "
        "has no such setting\n  hint: it is ignored for this shot; remove it or choose a model "
        "that has it",
    ]


def test_a_last_frame_needs_a_first_frame():
    assert diagnostics(kie_shot(last_frame=IMG)) == [
        f"{at('last_frame')}: error: a last_frame needs a first_frame on kie: a single image in "
        "image_urls is the first frame\n  hint: add a first_frame, or make this image the "
        "first_frame"
    ]


def test_multi_shot_takes_no_last_frame():
    """rules.check_multi_prompt_frames says it, for kie as for every provider: once."""
    shot = kie_shot(multi_prompt=[("a beat", 3), ("more", 2)], first_frame=IMG, last_frame=IMG2)
    assert diagnostics(shot) == [
        f"{at('last_frame')}: error: last_frame cannot be combined with multi_prompt: Kling 3.0 "
        "makes a multi-shot clip from a first frame only\n  hint: remove the last_frame (keep "
        "the first_frame), or write the shot as one prompt to end on that frame (Kling 3.0: "
        "the end frame \"cannot be used together with multi_prompt\")"
    ]


def test_multi_shot_audio_false_is_a_warning():
    shot = kie_shot(multi_prompt=[("a beat", 3), ("more", 2)], audio=False)
    assert diagnostics(shot) == [
        f"{at('audio')}: warning: audio: false is not sent: multi-shot generations on kie have "
        "sound\n  hint: docs.kie.ai Kling 3.0: sound defaults to true in multi-shot mode (older "
        "spec: must be true); provider_options: {input: {sound: false}} sends it anyway"
    ]


def test_at_most_five_shots():
    shot = kie_shot(multi_prompt=[("shot", 1)] * 6)
    assert diagnostics(shot) == [
        f"{at('multi_prompt')}: error: multi_prompt has 6 segments; kie model 'kling-3-pro' "
        "takes at most 5\n  hint: merge segments or split the shot"
    ]


def test_shots_last_1_to_12_seconds():
    shot = kie_shot(multi_prompt=[("long", 13), ("short", 2)])
    assert diagnostics(shot) == [
        f"{at('multi_prompt')}: error: multi_prompt segment 1 lasts 13 s; kie model "
        "'kling-3-pro' takes segments of 1-12 s\n  hint: give the segment a duration from 1 to "
        "12 s"
    ]


def test_a_shot_prompt_counts_each_element_as_37_characters():
    boat = element("b", description="boat", frontal_image=IMG, images=[IMG2])
    text = "x" * 463 + "@b"  # 465 characters as written, 463 + 37 = 500 as kie counts
    shot = kie_shot(multi_prompt=[(text, 3), ("y" * 10, 2)], first_frame=IMG, elements=[boat])
    assert diagnostics(shot) == []
    shot = kie_shot(multi_prompt=[("z" + text, 3), ("yy", 2)], first_frame=IMG, elements=[boat])
    assert diagnostics(shot) == [
        f"{at('multi_prompt')}: error: multi_prompt segment 1 is 501 characters long as kie "
        "counts it (each @element counts 37); kie takes at most 500\n  hint: shorten the "
        "segment (docs.kie.ai Kling 3.0: multi_prompt prompt maxLength 500)"
    ]


def test_elements_need_a_first_frame():
    dog = element("dog", description="dog", frontal_image=IMG, images=[IMG2])
    assert diagnostics(kie_shot(prompt_text="@dog runs", elements=[dog])) == [
        f"{at('elements')}: error: elements (@dog) need a first_frame on kie\n  hint: "
        "docs.kie.ai Kling 3.0: image_urls is required when elements are referenced in the "
        "prompt; add a first_frame"
    ]


def test_an_element_needs_two_to_four_images():
    lone = element("lone", frontal_image=IMG)
    assert diagnostics(kie_shot(prompt_text="@lone", elements=[lone], first_frame=IMG)) == [
        "storyboard.yaml:3:3: error: element 'lone' has 1 image; kie needs 2-4\n  hint: give "
        "the element a frontal_image and 1-3 images (docs.kie.ai Kling 3.0: element_input_urls, "
        "2-4 URLs required)"
    ]
    many = element("many", frontal_image=IMG, images=[IMG2] * 4)
    assert diagnostics(kie_shot(prompt_text="@many", elements=[many], first_frame=IMG)) == [
        "storyboard.yaml:3:3: error: element 'many' has 4 extra images; kie model 'kling-3-pro' "
        "takes at most 3 besides the frontal image\n  hint: keep the 3 most telling angles"
    ]


def test_element_images_need_a_frontal_image():
    e = element("e", images=[IMG, IMG2])
    assert diagnostics(kie_shot(prompt_text="@e", elements=[e], first_frame=IMG)) == [
        "storyboard.yaml:3:3: error: element 'e' has images but no frontal_image; kie needs "
        "one\n  hint: add frontal_image: the main reference image of the element"
    ]


def test_video_elements_are_refused():
    e = element("clip", videos=["https://example.com/v.mp4"])
    assert diagnostics(kie_shot(prompt_text="@clip", elements=[e], first_frame=IMG)) == [
        "storyboard.yaml:3:3: error: element 'clip' has videos; kie elements are images here\n"
        "  hint: kie's two spec versions name video elements differently "
        "(element_input_video_urls / element_input_urls with start_time, end_time); use 2-4 "
        "images, or send the element through provider_options"
    ]


def test_at_most_one_voice_per_element():
    e = element("v", frontal_image=IMG, images=[IMG2], voices=["https://e.com/a.mp3"] * 2)
    assert diagnostics(kie_shot(prompt_text="@v", elements=[e], first_frame=IMG)) == [
        "storyboard.yaml:3:3: error: element 'v' has 2 voices; kie takes at most 1\n  hint: keep "
        "one voice (docs.kie.ai Kling 3.0: up to 1 audio URL per element)"
    ]


def test_at_most_three_elements():
    es = [element(f"e{i}", frontal_image=IMG, images=[IMG2]) for i in range(4)]
    shot = kie_shot(prompt_text="@e0 @e1 @e2 @e3", elements=es, first_frame=IMG)
    assert diagnostics(shot) == [
        f"{at('elements')}: error: shot uses 4 elements (@e0, @e1, @e2, @e3); kie model "
        "'kling-3-pro' takes at most 3\n  hint: split the shot or drop an element"
    ]


@pytest.mark.parametrize(("value", "kind"), [("data:image/png;base64,AAAA", "a data URI"),
                                             ("5e3433ef-b14e-4c65-8d25-54ecf737c589",
                                              "a provider asset UUID")])  # fmt: skip
def test_data_uris_and_uuids_are_refused(value, kind):
    assert diagnostics(kie_shot(first_frame=value)) == [
        f"{at('first_frame')}: error: first_frame: kie does not accept {kind} for image "
        "inputs\n  hint: use an http(s) URL or a local file (uploaded at run time)"
    ]


def test_jpg_and_png_only():
    assert diagnostics(kie_shot(first_frame="assets/a.webp")) == [
        f"{at('first_frame')}: error: first_frame: kie takes JPG or PNG images, not .webp\n"
        "  hint: convert the image to PNG or JPEG (docs.kie.ai Kling 3.0: JPG, JPEG, PNG)"
    ]
    e = element("e", frontal_image="https://example.com/face.gif?v=2", images=[IMG2])
    assert diagnostics(kie_shot(prompt_text="@e", elements=[e], first_frame=IMG)) == [
        "storyboard.yaml:3:3: error: frontal_image: kie takes JPG or PNG images, not .gif\n"
        "  hint: convert the image to PNG or JPEG (docs.kie.ai Kling 3.0: JPG, JPEG, PNG)"
    ]
    assert diagnostics(kie_shot(first_frame="https://example.com/render?id=7")) == []


def test_element_images_of_more_than_10_mb_are_refused(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (10 * 1024 * 1024 + 1))
    e = element("e", frontal_image=str(big), images=[IMG2])
    assert diagnostics(kie_shot(prompt_text="@e", elements=[e], first_frame=IMG)) == [
        f"storyboard.yaml:3:3: error: frontal_image: {big} is 10.0 MB; kie takes element images "
        "of at most 10 MB\n  hint: save it smaller (a JPEG of a few MB is plenty)"
    ]


def test_a_size_the_mode_does_not_make_is_a_warning():
    assert diagnostics(kie_shot(size=(1280, 720))) == [
        f"{at('size')}: warning: size 1280x720 is sent as aspect_ratio 16:9: kie model "
        "'kling-3-pro' (mode pro) makes 1920x1080\n  hint: use model kling-3-std, or write "
        "aspect: instead of size:"
    ]
    assert diagnostics(kie_shot(size=(1920, 1080))) == []


def test_the_registry_knows_kie():
    assert isinstance(KIE, KieProvider) and KIE.name == "kie"
    assert set(KIE.models) == {"kling-3-std", "kling-3-pro", "kling-3-4k", "kling-3-turbo-std",
                               "kling-3-turbo-pro"}
    assert KIE.inline_media == frozenset()
    assert (KIE.client_task_id, KIE.batch_poll, KIE.upload_ttl_s) == (False, False, 72000)


# --- run time: createTask -----------------------------------------------------------------------


def answer(status: int = 200, body=None, headers=None, content: bytes | None = None):
    if content is not None:
        return httpx.Response(status, content=content, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


def test_submit_request():
    body = {"model": "kling-3.0/video", "input": {"prompt": "p", "multi_shots": False}}
    request = KIE.submit_request(None, body, "our-id", "https://api.kie.ai", KEY)
    assert (request.method, str(request.url)) == ("POST",
                                                  "https://api.kie.ai/api/v1/jobs/createTask")
    assert request.headers["authorization"] == "Bearer kie-secret-key"
    assert json.loads(request.content) == body  # no callBackUrl, no id of ours


def test_read_submit_takes_the_servers_task_id():
    ok = {"code": 200, "msg": "success", "data": {"taskId": "task_kling-3.0_1765187774173"}}
    assert KIE.read_submit(answer(200, ok), "ours") == Handle("task_kling-3.0_1765187774173")


@pytest.mark.parametrize(("code", "text"), [
    (401, "kie refused the task: code 401: You do not have access permissions (check "
          "KIE_API_KEY)"),
    (402, "kie refused the task: code 402: Insufficient Credits (insufficient credits: add "
          "credits to the kie.ai account)"),
    (422, "kie refused the task: code 422: Validation Error: duration"),
    (433, "kie refused the task: code 433: Sub-key (the sub-key's usage limit is exceeded: "
          "raise it or use another key)"),
    (501, "kie refused the task: code 501: Generation Failed"),
    (505, "kie refused the task: code 505: Feature Disabled (the feature is disabled at "
          "kie.ai)"),
])  # fmt: skip
@pytest.mark.parametrize("http", [200, "same"])
def test_refusals_are_final_with_the_message(code, text, http):
    msg = text.split(f"code {code}: ")[1].split(" (")[0]
    response = answer(code if http == "same" else 200, {"code": code, "msg": msg, "data": None})
    with pytest.raises(ProviderError) as raised:
        KIE.read_submit(response, "ours")
    assert str(raised.value) == text


@pytest.mark.parametrize("code", [429, 455])
def test_rate_limits_and_maintenance_are_transient(code):
    response = answer(200, {"code": code, "msg": "busy", "data": None}, {"Retry-After": "7"})
    with pytest.raises(TransientError) as raised:
        KIE.read_submit(response, "ours")
    assert raised.value.retry_after_s == 7.0
    assert str(raised.value) == f"kie answered code {code}: busy"


def test_a_server_error_on_submit_may_have_made_the_task():
    with pytest.raises(LostAnswer, match="code 500"):
        KIE.read_submit(answer(200, {"code": 500, "msg": "Server Error"}), "ours")
    with pytest.raises(LostAnswer, match="HTTP 502"):
        KIE.read_submit(answer(502, content=b"<html>bad gateway</html>"), "ours")
    with pytest.raises(TransientError):  # a gateway's 503: it never arrived
        KIE.read_submit(answer(503, content=b"<html>unavailable</html>"), "ours")


def test_a_success_without_a_task_id_is_an_error():
    with pytest.raises(ProviderError, match="no data.taskId"):
        KIE.read_submit(answer(200, {"code": 200, "msg": "success", "data": {}}), "ours")
    with pytest.raises(ProviderError, match="HTTP 404"):
        KIE.read_submit(answer(404, {"detail": "Not Found"}), "ours")


# --- run time: recordInfo -----------------------------------------------------------------------


def info(state: str, **data):
    return answer(200, {"code": 200, "msg": "success",
                        "data": {"taskId": "t1", "state": state, **data}})  # fmt: skip


def test_poll_request():
    request = KIE.poll_request(Handle("task_1"), "https://api.kie.ai", KEY)
    assert request.method == "GET"
    assert str(request.url) == "https://api.kie.ai/api/v1/jobs/recordInfo?taskId=task_1"
    assert request.headers["authorization"] == "Bearer kie-secret-key"


@pytest.mark.parametrize("state", ["waiting", "queuing", "generating"])
def test_unfinished_states_are_processing(state):
    assert KIE.read_status(info(state), Handle("t1"), 1).state == "processing"


def test_success_reads_the_result_urls_from_the_json_string():
    result = json.dumps({"resultUrls": ["https://tempfile.aiquickdraw.com/v.mp4"]})
    status = KIE.read_status(info("success", resultJson=result), Handle("t1"), 1)
    assert status.state == "done"
    assert [r.url for r in status.results] == ["https://tempfile.aiquickdraw.com/v.mp4"]
    assert status.results[0].cost_usd is None  # recordInfo reports no cost: the estimate counts
    assert KIE.read_status(info("success", resultJson={"resultUrls": [
        "https://a.test/v.mp4"]}), Handle("t1"), 1).state == "done"  # an object is read too


def test_fail_carries_code_and_message():
    status = KIE.read_status(info("fail", failCode="501", failMsg="content flagged"),
                             Handle("t1"), 1)  # fmt: skip
    assert (status.state, status.message) == ("failed", "501: content flagged")
    bare = KIE.read_status(info("fail", failCode="", failMsg="boom"), Handle("t1"), 1)
    assert bare.message == "boom"


@pytest.mark.parametrize("http", [404, 200])
def test_a_task_kie_does_not_know_is_unknown(http):
    status = KIE.read_status(answer(http, {"code": 404, "msg": "Task not found"}),
                             Handle("task_9"), 1)  # fmt: skip
    assert (status.state, status.message) == ("unknown", "task_9")


@pytest.mark.parametrize("http", [200, 422])
def test_recordinfo_is_null_is_unconfirmed_not_unknown(http):
    """Issue 21, item 1: kie answers `{code: 422, msg: "recordInfo is null"}` right after
    createTask (K3 lists it apart from 404 "Task not found"); read as "unknown", the task was
    recorded rejected and the next run paid for it again."""
    body = {"code": 422, "msg": "recordInfo is null", "data": None}
    status = KIE.read_status(answer(http, body), Handle("task_9"), 1)
    assert status.state == "unconfirmed"
    assert status.message == "kie does not show task task_9 yet (code 422: recordInfo is null)"


def test_the_grace_for_an_unconfirmed_task_and_the_result_lifetime():
    assert KIE.unconfirmed_grace_s == 300  # a few minutes, never a re-submission
    assert KIE.result_ttl_s == 24 * 3600  # get-task-detail: result URLs expire after ~24 h


def test_poll_faults():
    with pytest.raises(TransientError):
        KIE.read_status(answer(500, {"code": 500, "msg": "Server Error"}), Handle("t"), 1)
    with pytest.raises(TransientError):
        KIE.read_status(answer(429, {"code": 429, "msg": "Rate limit exceeded"}), Handle("t"), 1)
    with pytest.raises(ProviderError, match=r"code 401: Unauthorized \(check KIE_API_KEY\)"):
        KIE.read_status(answer(401, {"code": 401, "msg": "Unauthorized"}), Handle("t"), 1)
    with pytest.raises(ProviderError, match="HTTP 404"):  # no kie body: a wrong base URL
        KIE.read_status(answer(404, {"detail": "no route"}), Handle("t"), 1)


# --- malformed answers and lost answers, through httpx.MockTransport ----------------------------


def through(handler, request: httpx.Request) -> httpx.Response:
    """Send `request` to a scripted kie (`handler`) as the engine would, over httpx."""
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        return client.send(request)


def polled(data=None, *, raw: bytes | None = None, code=200):
    """The status read from recordInfo answering `data` (or the bytes `raw`)."""
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/jobs/recordInfo"
        if raw is not None:
            return httpx.Response(200, content=raw, headers={"content-type": "application/json"})
        return httpx.Response(200, json={"code": code, "msg": "success", "data": data})

    handle = Handle("t1")
    return KIE.read_status(through(handler, KIE.poll_request(handle, "https://kie.test", KEY)),
                           handle, 1)  # fmt: skip


GOOD = json.dumps({"resultUrls": ["https://tempfile.aiquickdraw.com/v.mp4"]})


@pytest.mark.parametrize(("data", "field"), [
    ({"taskId": "t1", "state": "success"}, "data.resultJson: not a JSON object"),
    ({"taskId": "t1", "state": "success", "resultJson": ""}, "data.resultJson: empty"),
    ({"taskId": "t1", "state": "success", "resultJson": "{resultUrls: ["},
     "data.resultJson: not JSON"),
    ({"taskId": "t1", "state": "success", "resultJson": "[1, 2]"},
     "data.resultJson: not a JSON object"),
    ({"taskId": "t1", "state": "success", "resultJson": "{}"},
     "data.resultJson.resultUrls: missing"),
    ({"taskId": "t1", "state": "success", "resultJson": '{"resultUrls": "https://a.test/v.mp4"}'},
     "data.resultJson.resultUrls: missing"),
    ({"taskId": "t1", "state": "success", "resultJson": '{"resultUrls": []}'},
     "data.resultJson.resultUrls: missing or empty"),
    ({"taskId": "t1", "state": "success", "resultJson": '{"resultUrls": [42]}'},
     "data.resultJson.resultUrls[0]: not an http(s) URL"),
    ({"taskId": "t1", "state": "success", "resultJson": '{"resultUrls": [null]}'},
     "data.resultJson.resultUrls[0]: not an http(s) URL"),
    ({"taskId": "t1", "state": "success",
      "resultJson": '{"resultUrls": ["https://a.test/v.mp4", "file:///etc/passwd"]}'},
     "data.resultJson.resultUrls[1]: not an http(s) URL"),
    ({"taskId": "t1", "state": "success", "resultJson": '{"resultUrls": ["/v.mp4"]}'},
     "data.resultJson.resultUrls[0]: not an http(s) URL"),
    ({"taskId": "t1"}, "data.state"),
    ({"taskId": "t1", "state": 3}, "data.state"),
    ({"taskId": "other", "state": "success", "resultJson": GOOD}, "data.taskId"),
    (None, "data: not an object"),
    ([], "data: not an object"),
    ("success", "data: not an object"),
])  # fmt: skip
def test_a_malformed_record_is_invalid_naming_the_field(data, field):
    """Issue 21, item 12: a paid task whose answer is malformed is `invalid` (kept, the user
    decides), never a traceback, never polled until the timeout, never a rejection."""
    status = polled(data)
    assert status.state == "invalid"
    assert status.message.startswith(field)
    assert status.results == ()


@pytest.mark.parametrize("raw", [b"[]", b'"success"', b"null", b"42"])
def test_an_answer_that_is_not_an_object_is_invalid(raw):
    status = polled(raw=raw)
    assert (status.state, status.message) == ("invalid",
                                              "the task query's answer is not a JSON object")


def test_an_undocumented_state_waits_and_says_which():
    status = polled({"taskId": "t1", "state": "pending"})
    assert (status.state, status.detail) == ("processing", "state pending")


class LosingKie:
    """createTask makes the task and is then answered by `reply` (its own answer is lost)."""

    def __init__(self, reply):
        self.reply = reply
        self.made: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/jobs/createTask"
        self.made.append(json.loads(request.content))  # kie made (and bills) the task ...
        return self.reply  # ... and the answer says nothing of it


@pytest.mark.parametrize(("reply", "shown"), [
    (httpx.Response(200, json={"code": 500, "msg": "Server Error", "data": None}), "code 500"),
    (httpx.Response(500, json={"code": 500, "msg": "Server Error", "data": None}), "code 500"),
    (httpx.Response(500, content=b"Internal Server Error"), "HTTP 500"),
    (httpx.Response(502, content=b"<html>Bad Gateway</html>"), "HTTP 502"),
    (httpx.Response(504, content=b"<html>Gateway Time-out</html>"), "HTTP 504"),
    (httpx.Response(502, json={"error": "upstream"}), "HTTP 502"),
])  # fmt: skip
def test_a_lost_create_task_answer_is_a_lost_answer(reply, shown):
    """Issue 21, item 14: a createTask answered by a server error may have made the task
    (kie assigns the id, there is no lookup): LostAnswer, so the engine never sends it again."""
    kie = LosingKie(reply)
    request = KIE.submit_request(None, {"model": "kling-3.0/video", "input": {}}, "ours",
                                 "https://kie.test", KEY)  # fmt: skip
    with pytest.raises(LostAnswer, match=f"kie answered {shown} to the submission"):
        KIE.read_submit(through(kie, request), "ours")
    assert len(kie.made) == 1


# --- run time: upload ---------------------------------------------------------------------------


def run_upload(reply: httpx.Response):
    sent = []

    async def send(request: httpx.Request) -> httpx.Response:
        request.read()
        sent.append(request)
        return reply

    def url(endpoint: str) -> str:
        return {"kie": "https://api.kie.ai", "kie-upload": "https://kieai.redpandaai.co"}[endpoint]

    link = asyncio.run(KIE.upload(send, b"\x89PNG-bytes", "image/png", "0123abcd.png", url, KEY))
    return link, sent


UPLOADED = {"success": True, "code": 200, "msg": "File uploaded successfully",
            "data": {"fileName": "0123abcd.png", "filePath": "kling-compose/0123abcd.png",
                     "downloadUrl": "https://tempfile.redpandaai.co/kling-compose/0123abcd.png",
                     "fileSize": 10, "mimeType": "image/png",
                     "uploadedAt": "2026-01-01T00:00:00.000Z"}}  # fmt: skip


def test_upload_posts_multipart_to_the_upload_host():
    link, sent = run_upload(answer(200, UPLOADED))
    assert link == "https://tempfile.redpandaai.co/kling-compose/0123abcd.png"
    (request,) = sent
    assert (request.method, str(request.url)) == (
        "POST", "https://kieai.redpandaai.co/api/file-stream-upload")
    assert request.headers["authorization"] == "Bearer kie-secret-key"
    content_type = request.headers["content-type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    body = request.content
    assert b'name="uploadPath"\r\n\r\nkling-compose\r\n' in body
    assert b'name="fileName"\r\n\r\n0123abcd.png\r\n' in body
    assert re.search(rb'name="file"; filename="0123abcd.png"\r\nContent-Type: image/png\r\n\r\n'
                     rb"\x89PNG-bytes\r\n", body)  # fmt: skip


def test_upload_refusals_and_faults():
    with pytest.raises(ProviderError, match=r"code 401: Unauthorized \(check KIE_API_KEY\)"):
        run_upload(answer(401, {"success": False, "code": 401, "msg": "Unauthorized"}))
    with pytest.raises(TransientError):
        run_upload(answer(500, {"success": False, "code": 500, "msg": "busy"}))
    with pytest.raises(TransientError):
        run_upload(answer(503, content=b"unavailable"))
    with pytest.raises(ProviderError, match="refused the upload: quota"):
        run_upload(answer(200, {"success": False, "code": 200, "msg": "quota"}))
    with pytest.raises(ProviderError, match="no data.downloadUrl"):
        run_upload(answer(200, {"success": True, "code": 200, "msg": "ok", "data": {}}))


def test_the_key_shows_only_in_the_header():
    request = KIE.poll_request(Handle("t"), "https://api.kie.ai", KEY)
    assert "kie-secret-key" not in repr(request) and "kie-secret-key" not in str(request.url)
    assert repr(KEY) == "Secret('***')"
