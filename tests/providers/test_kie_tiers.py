"""Issue 25: kie's Kling 3.0 Turbo (providers/kie.py; docs/kling-family.md K3-K5): two models
with their own input shapes, `resolution` 720p | 1080p, priced per resolution with sound; no
sound switch, negative prompt, multi-shot, elements or end frame."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kling_compose.providers import PROVIDERS

from .factory import diagnostics, element, loc, make_shot

IMG = "https://example.com/a.png"
KIE = PROVIDERS["kie"]
T2V, I2V = "kling/v3-turbo-text-to-video", "kling/v3-turbo-image-to-video"


def turbo(model: str = "kling-3-turbo-std", **fields):
    return make_shot(provider="kie", model=model, **fields)


def at(field: str) -> str:
    return str(loc(field))


def test_the_3_0_tiers_stay_and_turbo_is_added():
    assert {a: (s.model_id, dict(s.prices)) for a, s in KIE.models.items()
            if "turbo" in a} == {
        "kling-3-turbo-std": ("kling/v3-turbo", {"audio": Decimal("0.09")}),  # K3 720P
        "kling-3-turbo-pro": ("kling/v3-turbo", {"audio": Decimal("0.1125")}),  # K3 1080P
    }
    assert {a: s.model_id for a, s in KIE.models.items() if "turbo" not in a} == {
        "kling-3-std": "kling-3.0/video", "kling-3-pro": "kling-3.0/video",
        "kling-3-4k": "kling-3.0/video"}
    for alias in ("kling-3-turbo-std", "kling-3-turbo-pro"):
        spec = KIE.models[alias]
        assert (spec.durations_s, spec.prompt_chars, spec.aspects) == (
            (3, 15), (2, 2500), ("16:9", "9:16", "1:1"))  # K4/K5
    assert not {"kling-o3-std", "kling-o3-pro", "kling-3-turbo"} & set(KIE.models)


@pytest.mark.parametrize(("model", "resolution", "silent", "audio"), [
    ("kling-3-turbo-std", "720p", "0.45", "0.45"),  # 5 s x $0.09, sound or not
    ("kling-3-turbo-pro", "1080p", "0.5625", "0.5625"),  # 5 s x $0.1125
])  # fmt: skip
def test_text_to_video_sends_k4s_four_fields_and_costs_the_resolutions_price(
        compile_one, model, resolution, silent, audio):
    job = compile_one(turbo(model, duration=5, aspect="9:16"))
    assert job.request == {
        "model": T2V,
        "input": {"prompt": "A quiet harbour at dawn", "duration": "5", "aspect_ratio": "9:16",
                  "resolution": resolution},
    }
    assert list(job.request["input"]) == ["prompt", "duration", "aspect_ratio", "resolution"]
    assert (job.cost_usd, job.cost_note, job.warnings) == (Decimal(silent), None, ())
    loud = compile_one(turbo(model, duration=5, aspect="9:16", audio=True))
    assert loud.request == job.request  # no `sound` field to send
    assert (loud.cost_usd, loud.warnings) == (Decimal(audio), ())
    assert KIE.route(job.model, job.request) == f"{T2V} resolution {resolution}"


def test_text_to_video_sends_the_default_aspect(compile_one):
    """K4: aspect_ratio is required (default 16:9)."""
    assert compile_one(turbo()).request["input"]["aspect_ratio"] == "16:9"
    assert compile_one(turbo(size=(1280, 720))).request["input"]["aspect_ratio"] == "16:9"


@pytest.mark.parametrize(("model", "resolution", "cost"), [
    ("kling-3-turbo-std", "720p", "1.35"),  # 15 s x $0.09
    ("kling-3-turbo-pro", "1080p", "1.6875"),  # 15 s x $0.1125
])  # fmt: skip
def test_image_to_video_sends_k5s_four_fields(compile_one, model, resolution, cost):
    job = compile_one(turbo(model, duration=15, first_frame=IMG, aspect="16:9"))
    assert job.request == {
        "model": I2V,
        "input": {"prompt": "A quiet harbour at dawn", "image_urls": [IMG], "duration": "15",
                  "resolution": resolution},
    }  # no aspect_ratio: K5 has none, the image sets the frame
    assert list(job.request["input"]) == ["prompt", "image_urls", "duration", "resolution"]
    assert job.cost_usd == Decimal(cost)
    assert KIE.route(job.model, job.request) == f"{I2V} resolution {resolution}"


def test_a_local_first_frame_is_an_uploaded_input(compile_one):
    job = compile_one(turbo(first_frame="assets/start.png"))
    assert job.request["input"]["image_urls"] == ["kc-input:file:assets/start.png"]
    assert [(r.key, r.media) for r in job.inputs] == [("file:assets/start.png", "image")]


def test_the_cost_follows_the_resolution_sent(compile_one):
    job = compile_one(turbo(duration=4, provider_options={"input": {"resolution": "1080p"}}))
    assert job.cost_usd == Decimal("0.4500")  # 4 s x $0.1125
    unknown = compile_one(turbo(provider_options={"input": {"resolution": "4K"}}))
    assert unknown.cost_usd is None
    assert unknown.cost_note == "kie publishes no price for this request's mode or duration"


def test_audio_false_is_a_located_warning_and_costs_the_same(compile_one):
    job = compile_one(turbo(duration=5, audio=False))
    assert job.cost_usd == Decimal("0.45")
    assert [str(w) for w in job.warnings] == [
        f"{at('audio')}: warning: audio: false is not honoured: kie model 'kling-3-turbo-std' "
        "has no sound switch and its clips have sound\n  hint: mute the clip in the edit, or "
        "choose kling-3-std (silent at $0.07/s); kie's Turbo pages have no `sound` field, and "
        "Kling 3.0 Turbo makes video \"with native audio\" (fal's and Runware's Turbo pages)"
    ]


def test_a_negative_prompt_is_dropped_with_a_located_warning(compile_one):
    job = compile_one(turbo(first_frame=IMG, negative_prompt="blurry"))
    assert "negative_prompt" not in job.request["input"]
    assert [str(w) for w in job.warnings] == [
        f"{at('negative_prompt')}: warning: negative_prompt is not sent: kie model "
        "'kling-3-turbo-std' has no such setting\n  hint: it is ignored for this shot; remove it "
        "or choose a model that has it"
    ]


@pytest.mark.parametrize(("field", "value"), [
    ("multi_prompt", [("first part", 3), ("second", 2)]),
    ("last_frame", "https://example.com/end.png"),
    ("reference_images", [IMG]),
    ("takes", 2),
])  # fmt: skip
def test_what_turbo_lacks_is_refused_where_it_is_written(field, value):
    extra = {"first_frame": IMG} if field == "last_frame" else {}
    found = "\n".join(diagnostics(turbo("kling-3-turbo-pro", **{field: value}, **extra)))
    assert (f"{at(field)}: error: kie model 'kling-3-turbo-pro' does not support {field}\n"
            f"  hint: remove {field} from this shot or choose another model (kie.ai's Kling V3 "
            "Turbo pages, models kling/v3-turbo-text-to-video and "
            "kling/v3-turbo-image-to-video)") in found


def test_elements_are_refused_and_only_once():
    hero = element("hero", frontal_image=IMG, images=["https://example.com/b.png"])
    found = diagnostics(turbo(prompt_text="@hero waves", elements=[hero], first_frame=IMG))
    assert found == [f"{at('elements')}: error: kie model 'kling-3-turbo-std' does not support "
                     "elements\n  hint: remove elements from this shot or choose another model "
                     "(kie.ai's Kling V3 Turbo pages, models kling/v3-turbo-text-to-video and "
                     "kling/v3-turbo-image-to-video)"]


def test_durations_are_3_to_15_seconds():
    assert diagnostics(turbo(duration=15)) == []
    assert diagnostics(turbo(duration=2)) == [
        f"{at('duration')}: error: duration 2 s is out of range: kie model 'kling-3-turbo-std' "
        "makes 3-15 s\n  hint: set a duration from 3 to 15 seconds"]


def test_a_size_of_the_other_resolution_is_a_warning():
    assert diagnostics(turbo(size=(1280, 720))) == []
    assert diagnostics(turbo("kling-3-turbo-pro", size=(1080, 1920))) == []
    assert diagnostics(turbo(size=(1920, 1080))) == [
        f"{at('size')}: warning: size 1920x1080 is sent as aspect_ratio 16:9: kie model "
        "'kling-3-turbo-std' makes 720p video\n  hint: use model kling-3-turbo-pro (kie's Turbo "
        "text-to-video page: `resolution` 720p or 1080p)"]


def test_jpeg_and_png_start_images_only():
    [message] = diagnostics(turbo(first_frame="https://example.com/a.webp"))
    assert message.startswith(f"{at('first_frame')}: error: first_frame: kie takes JPG or PNG "
                              "images, not .webp")


def test_a_start_image_over_10_mb_is_refused(tmp_path):
    """K5: image_urls "最大文件大小：10.0MB" (at most 10 MB)."""
    from dataclasses import replace

    from kling_compose.model import FrameSource

    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + b"0" * (10 * 1024 * 1024 + 1))
    shot = turbo(first_frame="assets/big.png")
    shot = replace(shot, first_frame=FrameSource("path", "assets/big.png", path=big))
    [message] = diagnostics(shot)
    assert message.startswith(f"{at('first_frame')}: error: first_frame: assets/big.png is "
                              "10.0 MB; kie's Turbo image-to-video takes images of at most 10 MB")


def test_the_3_0_tiers_are_unchanged(compile_one):
    job = compile_one(make_shot(provider="kie", model="kling-3-std", duration=5, audio=True))
    assert job.request["model"] == "kling-3.0/video"
    assert job.request["input"]["mode"] == "std"
    assert job.cost_usd == Decimal("0.50")  # 5 s x $0.10
    assert KIE.route(job.model, job.request) == "kling-3.0/video mode std"
