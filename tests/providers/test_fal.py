"""providers/fal.py: Kling V3 Pro inputs, endpoints, fal-only limits and costs."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kling_compose.providers.fal import MODELS, endpoint_id

from .factory import diagnostics, element, make_shot

IMG = "https://example.com/a.png"
VID = "https://example.com/v.mp4"


def fal_shot(**fields):
    return make_shot(provider="fal", **fields)


def test_text_to_video(compile_one):
    job = compile_one(fal_shot(duration=8, size=(1080, 1920)))
    assert job.request == {
        "prompt": "A quiet harbour at dawn", "duration": "8", "shot_type": "customize",
        "aspect_ratio": "9:16",
    }  # fmt: skip
    assert endpoint_id(job.model, job.request) == "fal-ai/kling-video/v3/pro/text-to-video"


def test_image_to_video_with_elements(compile_one):
    hero = element("hero", frontal_image=IMG, images=["https://example.com/b.png"])
    dancer = element("dancer", videos=[VID])
    shot = fal_shot(prompt_text="@hero meets @dancer", elements=[hero, dancer], audio=False,
                    first_frame="assets/start.png", last_frame="from:opening")  # fmt: skip
    job = compile_one(shot)
    assert job.request == {
        "prompt": "@Element1 meets @Element2",
        "generate_audio": False,
        "shot_type": "customize",
        "start_image_url": "kc-input:file:assets/start.png",
        "end_image_url": "kc-input:frame:opening:last",
        "elements": [
            {"frontal_image_url": IMG, "reference_image_urls": ["https://example.com/b.png"]},
            {"video_url": VID},
        ],
    }
    assert endpoint_id(job.model, job.request) == "fal-ai/kling-video/v3/pro/image-to-video"


def test_multi_prompt_durations_are_strings(compile_one):
    shot = fal_shot(multi_prompt=[("The drummer starts", 3), ("The crowd claps", 4)])
    assert compile_one(shot).request == {
        "duration": "7",
        "multi_prompt": [
            {"prompt": "The drummer starts", "duration": "3"},
            {"prompt": "The crowd claps", "duration": "4"},
        ],
        "shot_type": "customize",
    }


@pytest.mark.parametrize("fields, cost", [
    ({"duration": 5, "audio": True}, "0.84"),
    ({"duration": 5, "audio": False}, "0.56"),
    ({}, "0.84"),  # fal defaults: 5 s, generate_audio true
])  # fmt: skip
def test_costs(compile_one, fields, cost):
    assert compile_one(fal_shot(**fields)).cost_usd == Decimal(cost)


def test_model_ids():
    assert {a: s.model_id for a, s in MODELS.items()} == {
        "kling-3-pro": "fal-ai/kling-video/v3/pro",
        "kling-3-std": "fal-ai/kling-video/v3/standard",
        "kling-3-4k": "fal-ai/kling-video/v3/4k",
        "kling-o3-std": "fal-ai/kling-video/o3/standard",
        "kling-o3-pro": "fal-ai/kling-video/o3/pro",
        "kling-o3-4k": "fal-ai/kling-video/o3/4k",
        "kling-3-turbo-std": "fal-ai/kling-video/v3/turbo/standard",
        "kling-3-turbo-pro": "fal-ai/kling-video/v3/turbo/pro",
        "kling-4": "fal-ai/kling-video/v4",
    }


def test_the_standard_tier_is_pro_at_720p_prices():
    """fal's v3 standard page: $0.084/s silent, $0.126/s with audio, $0.154/s with voice
    control; its inputs are Pro's (one generated type in fal-js)."""
    from dataclasses import replace as changed

    std, pro = MODELS["kling-3-std"], MODELS["kling-3-pro"]
    assert {k: str(v) for k, v in std.prices.items()} == \
        {"silent": "0.084", "audio": "0.126", "voice": "0.154"}
    assert changed(std, alias=pro.alias, model_id=pro.model_id, source=pro.source,
                   resolutions=pro.resolutions, prices=pro.prices) == pro
    assert (std.resolutions, pro.resolutions) == (("720p",), ("1080p",))


# --- fal-only limits ------------------------------------------------------------------------


def test_last_frame_needs_a_first_frame():
    assert diagnostics(fal_shot(last_frame=IMG)) == [
        "storyboard.yaml:18:5: error: last_frame needs a first_frame on fal\n  hint: fal takes "
        "end_image_url only on image-to-video, whose start_image_url is required"
    ]


def test_elements_need_a_first_frame():
    assert diagnostics(fal_shot(prompt_text="@a", elements=[element("a", frontal_image=IMG)])) == [
        "storyboard.yaml:22:5: error: elements needs a first_frame on fal\n  hint: fal takes "
        "elements only on image-to-video, whose start_image_url is required"
    ]


def test_multi_prompt_segments_last_3_to_15_s_on_fal():
    shot = fal_shot(multi_prompt=[("The drummer starts", 3), ("The crowd claps", 2)])
    assert diagnostics(shot) == [
        "storyboard.yaml:11:5: error: multi_prompt segment 2 lasts 2 s; fal model "
        "'kling-3-pro' takes segments of 3-15 s\n  hint: give the segment a duration from 3 "
        "to 15 s"]


def test_an_element_with_only_a_frontal_image_sends_it_as_its_reference(compile_one):
    e = element("a", frontal_image=IMG)
    job = compile_one(fal_shot(prompt_text="@a", elements=[e], first_frame=IMG))
    assert job.request["elements"] == [
        {"frontal_image_url": IMG, "reference_image_urls": [IMG]}]


def test_element_voices_are_not_supported():
    e = element("a", frontal_image=IMG, voices=["https://example.com/v.mp3"])
    assert diagnostics(fal_shot(prompt_text="@a", elements=[e], first_frame=IMG)) == [
        "storyboard.yaml:3:3: error: element 'a' has voices; fal elements take images or one "
        "video\n  hint: remove voices from the element, or use runware",
        "storyboard.yaml:3:3: error: voices: fal does not accept a URL for audio inputs\n"
        "  hint: fal takes no audio inputs: remove it",
    ]


def test_at_most_one_video_element():
    a, b = element("a", videos=[VID]), element("b", videos=[VID])
    assert diagnostics(fal_shot(prompt_text="@a @b", elements=[a, b], first_frame=IMG)) == [
        "storyboard.yaml:22:5: error: 2 video elements (a, b); fal takes at most one per "
        "request\n  hint: use image elements for the others"
    ]


def test_an_element_has_one_video():
    e = element("a", videos=[VID, VID])
    assert diagnostics(fal_shot(prompt_text="@a", elements=[e], first_frame=IMG)) == [
        "storyboard.yaml:3:3: error: element 'a' has 2 videos; fal takes one video_url\n"
        "  hint: keep one video"
    ]


def test_no_provider_asset_uuids():
    assert diagnostics(fal_shot(first_frame="aac49721-1964-481a-ae78-8a4e29b91402")) == [
        "storyboard.yaml:17:5: error: first_frame: fal does not accept a provider asset UUID "
        "for image inputs\n  hint: use an http(s) URL or a local file (uploaded at run time)"
    ]


def test_reference_images_are_not_supported():
    assert diagnostics(fal_shot(reference_images=[IMG])) == [
        "storyboard.yaml:19:5: error: fal model 'kling-3-pro' does not support reference_images"
        "\n  hint: remove reference_images from this shot or choose another model (fal's Kling Video V3 Pro page, "
        "fal.ai/docs/model-api-reference/video-generation-api/kling-video-v3-pro)"
    ]


def test_quality_is_dropped_with_a_warning(compile_one):
    job = compile_one(fal_shot(quality=90))
    assert "quality" not in str(job.request)
    assert [str(w) for w in job.warnings] == [
        "storyboard.yaml:29:5: warning: quality is not sent: fal model 'kling-3-pro' has no "
        "such setting\n  hint: it is ignored for this shot; remove it or choose a model that has it"
    ]


# -- issue 21 item 5: a lost submission is matched by what was sent ------------------------


def _request_list(items):
    import httpx

    async def send(request):
        assert request.url.path == "/v1/models/requests/by-endpoint"
        return httpx.Response(200, json={"items": items}, request=request)

    return send


def _lookup(job, items, sent):
    import asyncio

    from kling_compose.providers import PROVIDERS
    from kling_compose.settings import Secret

    urls = {"fal": "https://queue.fal.test", "fal-api": "https://api.fal.test"}
    return asyncio.run(PROVIDERS["fal"].find_submission(
        _request_list(items), job, urls.__getitem__, Secret("k"), None, sent=sent))


def test_a_lost_submission_with_uploaded_inputs_is_found_by_the_body_sent(compile_one):
    from kling_compose.plan import substitute
    from kling_compose.providers.base import sent_digest

    job = compile_one(fal_shot(first_frame="assets/start.png"))
    assert "kc-input:" in str(job.request)  # the job still holds the placeholder
    sent = substitute(job.request, {"kc-input:file:assets/start.png":
                                    "https://v3.fal.media/files/a/start.png"})
    listed = dict(reversed(list(sent.items())))  # fal lists it back in its own key order
    items = [{"request_id": "other", "json_input": dict(job.request)},  # the placeholder body
             {"request_id": "req-1", "json_input": listed}]
    found = _lookup(job, items, sent_digest(sent))
    assert found is not None and found.task_id == "req-1"
    assert found.extra["status_url"].endswith("/requests/req-1/status")


def test_a_request_list_without_payloads_matches_nothing(compile_one):
    from kling_compose.providers.base import sent_digest

    job = compile_one(fal_shot())
    items = [{"request_id": "req-1"}, {"request_id": "req-2", "json_input": None}, "junk",
             {"request_id": 7, "json_input": dict(job.request)}]
    assert _lookup(job, items, sent_digest(job.request)) is None


def test_the_digest_of_a_body_does_not_depend_on_key_order_or_whole_floats():
    from kling_compose.providers.base import sent_digest

    assert sent_digest({"a": 5.0, "b": [1, {"c": "x"}]}) == sent_digest({"b": [1, {"c": "x"}],
                                                                          "a": 5})
    assert sent_digest({"a": 5.5}) != sent_digest({"a": 5})
