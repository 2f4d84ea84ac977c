"""providers/preview.py: the local animatic's compile-time spec."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kling_compose.providers import PROVIDERS
from kling_compose.providers.preview import MODELS

from .factory import diagnostics, element, make_shot


def test_accepts_every_alias_of_the_other_providers():
    others = {a for name, p in PROVIDERS.items() if name != "preview" for a in p.models}
    assert set(MODELS) == others | {"preview"}


def test_payload(compile_one):
    hero = element("hero", frontal_image="assets/hero.png")
    shot = make_shot(provider="preview", model="kling-o3-pro", prompt_text="@hero waves @@ us",
                     elements=[hero], first_frame="assets/start.png", duration=7,
                     audio=True)  # fmt: skip
    job = compile_one(shot)
    assert job.request == {
        "duration": 7,
        "width": 1920,
        "height": 1080,
        "first_image": "kc-input:file:assets/start.png",
        "last_image": None,
        "title": "s1",
        "prompt": "@hero waves @ us",
        "audio": True,
        "video": None,
    }
    assert job.cost_usd == Decimal(0)
    assert [r.key for r in job.inputs] == ["file:assets/start.png"]


@pytest.mark.parametrize("fields, size", [
    ({"size": (1234, 567)}, (1234, 567)),  # no size limits
    ({"aspect": "9:16"}, (1080, 1920)),
    ({"aspect": "1:1"}, (1080, 1080)),
    ({"aspect": "21:9"}, (2520, 1080)),
    ({}, (1920, 1080)),
])  # fmt: skip
def test_size(compile_one, fields, size):
    request = compile_one(make_shot(provider="preview", model="preview", **fields)).request
    assert (request["width"], request["height"]) == size


def test_multi_prompt_caption_and_duration(compile_one):
    shot = make_shot(provider="preview", multi_prompt=[("Drums", 3), ("Claps", 3)])
    request = compile_one(shot).request
    assert (request["prompt"], request["duration"], request["audio"]) == ("Drums\nClaps", 6, False)


def test_override_rehearses_any_storyboard_for_free(compile_one):
    shot = make_shot(model="kling-o3-pro", video="from:opening", audio=True)
    job = compile_one(shot, "preview")
    assert (job.provider, job.cost_usd, job.request["duration"]) == ("preview", Decimal(0), 5)
    assert job.request["video"] == "kc-input:clip:opening"


def test_keeps_kling_timing_limits():
    assert diagnostics(make_shot(provider="preview", model="preview", duration=20)) == [
        "storyboard.yaml:13:5: error: duration 20 s is out of range: preview model 'preview' "
        "makes 3-15 s\n  hint: set a duration from 3 to 15 seconds"
    ]


@pytest.mark.parametrize("model, aspect, size", [
    ("kling-3-std", None, (1280, 720)),  # a draft tier rehearses at its own 720p
    ("kling-3-std", "9:16", (720, 1280)),
    ("kling-3-pro", None, (1920, 1080)),
    ("kling-3-4k", None, (1920, 1080)),  # 4K rehearses at 1080p (a 4K animatic shows nothing more)
])
def test_a_tier_rehearses_at_its_own_resolution(compile_one, model, aspect, size):
    fields = {"aspect": aspect} if aspect else {}
    job = compile_one(make_shot(provider="preview", model=model, **fields))
    assert (job.request["width"], job.request["height"]) == size


def test_the_preview_clip_is_never_larger_than_the_tier(tmp_path):
    """--preview-resolution 1080 renders a 720p draft at 720, a 1080p shot at 1080."""
    from kling_compose.compiler import compile_shots
    from kling_compose.plan import build_plan

    from .factory import make_resolved

    shots = [make_shot(id="draft", provider="preview", model="kling-3-std"),
             make_shot(id="final", provider="preview", model="kling-3-pro")]
    resolved = make_resolved(*shots)
    plan = build_plan(resolved, compile_shots(resolved), 1080)
    assert plan.tasks["generate:draft"].params.short_side == 720
    assert plan.tasks["generate:final"].params.short_side == 1080
    plan = build_plan(resolved, compile_shots(resolved), 360)
    assert plan.tasks["generate:draft"].params.short_side == 360


def test_keyframes_are_inputs_of_the_rehearsal():
    """Chains through Kling 4.0's middle keyframes reach the preview like any frame."""
    preview = PROVIDERS["preview"]
    shot = make_shot(provider="preview", first_frame="from:a",
                     keyframes=["from:b", "assets/mid.png"])
    ref = lambda source, media: f"<{source.value}:{media}>"
    request = preview.payload(shot, MODELS["kling-3-pro"], ref)
    assert request["keyframes"] == ["<b:image>", "<assets/mid.png:image>"]
    assert "keyframes" not in preview.payload(make_shot(provider="preview"),
                                              MODELS["kling-3-pro"], ref)
