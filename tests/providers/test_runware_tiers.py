"""Issue 25: Runware's other Kling 3.0 tiers (providers/runware.py, docs/kling-family.md R1-R7):
3.0 Standard, 3.0 4K, O3 Standard, 3.0 Turbo at 720p and 1080p. Each compiles to its documented
model id, size or resolution and price; what a tier lacks is refused or warned, located."""

from __future__ import annotations

import typing
from decimal import Decimal

import pytest
import runware.types.task_map as sdk

from kling_compose.providers import PROVIDERS
from kling_compose.providers.runware import MODELS

from .factory import diagnostics, element, make_shot

IMG = "https://example.com/a.png"
VID = "https://example.com/v.mp4"
RUNWARE = PROVIDERS["runware"]
TURBO = "klingai:kling-video@3.0-turbo"


def at(line: int) -> str:
    return f"storyboard.yaml:{line}:5"


# --- the data: ids, sizes, durations, prices ------------------------------------------------


@pytest.mark.parametrize(("alias", "model_id", "sizes", "prices"), [
    # R2: 720p table; "$0.084/s without audio & $0.126/s with audio"
    ("kling-3-std", "klingai:kling-video@3-standard",
     ((1280, 720), (960, 960), (720, 1280)), {"silent": "0.084", "audio": "0.126"}),
    # R4: 4K table, 1:1 is 2880x2880; "1s: $0.42", with or without audio
    ("kling-3-4k", "klingai:kling-video@3-4k",
     ((3840, 2160), (2880, 2880), (2160, 3840)), {"silent": "0.42", "audio": "0.42"}),
    # R5: 720p table (960x960); 0.084 no input, 0.112 audio, 0.126 video input
    ("kling-o3-std", "klingai:kling-video@o3-standard",
     ((1280, 720), (960, 960), (720, 1280)),
     {"silent": "0.084", "audio": "0.112", "video_input": "0.126"}),
    # R7: one id, the tier is the resolution; always with sound: $0.112/s and $0.14/s
    ("kling-3-turbo-std", TURBO, ((1280, 720), (960, 960), (720, 1280)), {"audio": "0.112"}),
    ("kling-3-turbo-pro", TURBO, ((1920, 1080), (1440, 1440), (1080, 1920)), {"audio": "0.14"}),
])  # fmt: skip
def test_each_tier_has_its_documented_id_sizes_and_prices(alias, model_id, sizes, prices):
    spec = MODELS[alias]
    assert (spec.model_id, spec.sizes) == (model_id, sizes)
    assert {k: str(v) for k, v in spec.prices.items()} == prices
    assert spec.durations_s == (3, 15)  # no source gives a narrower range (module comment)
    assert spec.takes == (1, 4)  # the smallest numberResults maximum of a Kling 3.0 page
    assert "runware.ai/docs/models/" in spec.source


def test_o3_4k_is_not_offered_without_a_page_that_prices_it():
    """runware-sdk types `klingai:kling-video@o3-4k`, but no Runware page gives its price or
    sizes: a storyboard that asks for it is told which models exist."""
    assert "kling-o3-4k" not in MODELS
    assert sdk.KlingaiVideo30Omni4kParams  # the type exists, so this is a decision
    [message] = diagnostics(make_shot(model="kling-o3-4k"))
    assert message.startswith(f"{at(24)}: error: runware has no kling-o3-4k: it is offered "
                              "by fal")  # issue 25: the tier's providers are named


# --- request bodies and costs ----------------------------------------------------------------


@pytest.mark.parametrize(("alias", "aspect", "size", "silent", "audio"), [
    ("kling-3-std", "16:9", (1280, 720), "0.420", "0.630"),  # 5 s x 0.084 / 0.126
    ("kling-3-std", "1:1", (960, 960), "0.420", "0.630"),
    ("kling-3-4k", "9:16", (2160, 3840), "2.10", "2.10"),  # 5 s x 0.42 either way
    ("kling-3-4k", "1:1", (2880, 2880), "2.10", "2.10"),
    ("kling-o3-std", "9:16", (720, 1280), "0.420", "0.560"),  # 5 s x 0.084 / 0.112
])  # fmt: skip
def test_a_text_to_video_shot_sends_the_tiers_size_and_costs_its_price(
        compile_one, alias, aspect, size, silent, audio):
    quiet = compile_one(make_shot(model=alias, duration=5, aspect=aspect))
    assert quiet.request == {
        "taskType": "videoInference", "model": MODELS[alias].model_id,
        "positivePrompt": "A quiet harbour at dawn", "width": size[0], "height": size[1],
        "duration": 5,
    }
    assert quiet.cost_usd == Decimal(silent)
    loud = compile_one(make_shot(model=alias, duration=5, aspect=aspect, audio=True))
    assert loud.request["providerSettings"] == {"klingai": {"sound": True}}
    assert loud.cost_usd == Decimal(audio)
    assert RUNWARE.route(loud.model, loud.request) == MODELS[alias].model_id


def test_without_an_aspect_a_tier_makes_its_16_9_size(compile_one):
    for alias, size in (("kling-3-std", (1280, 720)), ("kling-3-4k", (3840, 2160)),
                        ("kling-o3-std", (1280, 720)), ("kling-3-turbo-pro", (1920, 1080))):
        request = compile_one(make_shot(model=alias)).request
        assert (request["width"], request["height"]) == size, alias


def test_o3_standard_bills_a_reference_video_at_its_video_input_price(compile_one):
    job = compile_one(make_shot(model="kling-o3-std", duration=5, reference_videos=[VID]))
    assert job.request["inputs"] == {"referenceVideos": [VID]}
    assert job.cost_usd == Decimal("0.630")  # 5 s x 0.126


@pytest.mark.parametrize("alias", ["kling-o3-std", "kling-3-std"])
def test_sound_is_not_sent_with_reference_videos_and_says_so(compile_one, alias):
    """R5 (as O3 Pro): "When inputs.video or inputs.referenceVideos is provided,
    providerSettings cannot be used"; R2: "When inputs.referenceVideos is provided,
    providerSettings cannot be used"."""
    shot = make_shot(model=alias, reference_videos=[VID], audio=True)
    assert "providerSettings" not in compile_one(shot).request
    [warning] = diagnostics(shot)
    page = {"kling-o3-std": "When inputs.video or inputs.referenceVideos is provided, "
                            "providerSettings cannot be used (Runware's Kling VIDEO O3 Standard "
                            "page)",
            "kling-3-std": "When inputs.referenceVideos is provided, providerSettings cannot be "
                           "used (Runware's Kling VIDEO 3.0 Standard page)"}[alias]
    assert warning == (f"{at(16)}: warning: audio is not sent: a shot with a video input cannot "
                       f"carry providerSettings\n  hint: {page}; set audio: false to silence "
                       "this warning")


def test_3_4k_sends_sound_with_reference_videos(compile_one):
    """The 4K page has no rule against providerSettings with referenceVideos (as 3.0 Pro)."""
    job = compile_one(make_shot(model="kling-3-4k", reference_videos=[VID], audio=True))
    assert job.request["providerSettings"] == {"klingai": {"sound": True}}


# --- Turbo: one id, the tier is its resolution ----------------------------------------------


@pytest.mark.parametrize(("alias", "aspect", "size", "cost", "resolution"), [
    ("kling-3-turbo-std", "16:9", (1280, 720), "0.560", "720p"),  # 5 s x 0.112
    ("kling-3-turbo-std", "1:1", (960, 960), "0.560", "720p"),
    ("kling-3-turbo-pro", "9:16", (1080, 1920), "0.70", "1080p"),  # 5 s x 0.14
])  # fmt: skip
def test_turbo_text_to_video_picks_its_tier_by_size_and_always_costs_the_audio_price(
        compile_one, alias, aspect, size, cost, resolution):
    for audio in (None, True):
        fields = {} if audio is None else {"audio": audio}
        job = compile_one(make_shot(model=alias, duration=5, aspect=aspect, **fields))
        assert job.request == {
            "taskType": "videoInference", "model": TURBO,
            "positivePrompt": "A quiet harbour at dawn", "width": size[0], "height": size[1],
            "duration": 5,
        }  # no providerSettings: runware-sdk's Turbo type has none
        assert (job.cost_usd, job.cost_note) == (Decimal(cost), None)
        assert job.warnings == ()
        assert RUNWARE.route(job.model, job.request) == f"{TURBO} resolution {resolution}"


@pytest.mark.parametrize(("alias", "resolution", "cost"),
                         [("kling-3-turbo-std", "720p", "1.120"),
                          ("kling-3-turbo-pro", "1080p", "1.40")])  # fmt: skip
def test_turbo_image_to_video_sends_its_resolution_and_the_negative_prompt(
        compile_one, alias, resolution, cost):
    """R7: `resolution` only with inputs.frameImages, never with width/height; negativePrompt
    only with frameImages."""
    job = compile_one(make_shot(model=alias, duration=10, first_frame=IMG, negative_prompt="blur",
                                aspect="16:9"))
    assert job.request == {
        "taskType": "videoInference", "model": TURBO, "positivePrompt": "A quiet harbour at dawn",
        "negativePrompt": "blur", "resolution": resolution, "duration": 10,
        "inputs": {"frameImages": [{"image": IMG, "frame": "first"}]},
    }
    assert job.cost_usd == Decimal(cost)
    assert RUNWARE.route(job.model, job.request) == f"{TURBO} resolution {resolution}"


def test_turbo_is_billed_at_the_resolution_actually_sent(compile_one):
    """provider_options may send the other tier's size: the estimate follows the body."""
    options = {"width": 1920, "height": 1080}
    job = compile_one(make_shot(model="kling-3-turbo-std", duration=5, provider_options=options))
    assert job.cost_usd == Decimal("0.70")
    assert RUNWARE.route(job.model, job.request) == f"{TURBO} resolution 1080p"


def test_turbo_audio_false_is_a_located_warning_and_still_costs_the_audio_price(compile_one):
    shot = make_shot(model="kling-3-turbo-std", duration=5, audio=False)
    job = compile_one(shot)
    assert job.cost_usd == Decimal("0.560")
    assert "providerSettings" not in job.request
    assert [str(w) for w in job.warnings] == [
        f"{at(16)}: warning: audio: false is not honoured: runware model 'kling-3-turbo-std' "
        "has no sound switch and its clips have sound\n  hint: mute the clip in the edit, or "
        "choose kling-3-std (silent at $0.084/s); Runware's Kling VIDEO 3.0 Turbo page, "
        "runware.ai/docs/models/klingai-video-3-0-turbo: \"with native audio\""
    ]


def test_turbo_text_to_video_drops_the_negative_prompt_with_a_located_warning(compile_one):
    shot = make_shot(model="kling-3-turbo-pro", negative_prompt="blurry")
    assert "negativePrompt" not in compile_one(shot).request
    assert diagnostics(shot) == [
        f"{at(12)}: warning: negative_prompt is not sent: runware model 'kling-3-turbo-pro' "
        "takes one only with a first_frame\n  hint: When negativePrompt is provided, "
        "inputs.frameImages is required (Runware's Kling VIDEO 3.0 Turbo page, "
        "runware.ai/docs/models/klingai-video-3-0-turbo); add a first_frame or remove "
        "negative_prompt"
    ]


@pytest.mark.parametrize(("field", "value", "line"), [
    ("multi_prompt", [("first part", 3), ("second", 2)], 11),  # no providerSettings
    ("last_frame", "https://example.com/end.png", 18),  # a first frame only
    ("reference_images", [IMG], 19),
    ("reference_videos", [VID], 21),
])  # fmt: skip
def test_turbo_refuses_what_it_lacks_where_it_is_written(field, value, line):
    extra = {"first_frame": IMG} if field == "last_frame" else {}
    found = diagnostics(make_shot(model="kling-3-turbo-std", **{field: value}, **extra))
    assert (f"{at(line)}: error: runware model 'kling-3-turbo-std' does not support {field}\n"
            "  hint: remove " + field) in "\n".join(found)
    assert "runware.ai/docs/models/klingai-video-3-0-turbo" in "\n".join(found)


def test_turbo_refuses_elements():
    hero = element("hero", frontal_image=IMG)
    found = diagnostics(make_shot(model="kling-3-turbo-pro", prompt_text="@hero waves",
                                  elements=[hero], first_frame=IMG))
    assert any("runware model 'kling-3-turbo-pro' does not support elements" in f for f in found)


@pytest.mark.parametrize(("alias", "size"), [("kling-3-turbo-std", (1920, 1080)),
                                             ("kling-3-turbo-pro", (1280, 720)),
                                             ("kling-3-std", (1440, 1440)),
                                             ("kling-3-4k", (2160, 2160))])  # fmt: skip
def test_a_size_of_another_tier_is_refused(alias, size):
    [message] = diagnostics(make_shot(model=alias, size=size))
    assert message.startswith(f"{at(14)}: error: size {size[0]}x{size[1]} is not available on "
                              f"runware model '{alias}'")


@pytest.mark.parametrize("alias", ["kling-3-std", "kling-3-4k", "kling-o3-std",
                                   "kling-3-turbo-std", "kling-3-turbo-pro"])
def test_new_tiers_make_3_to_15_seconds_and_at_most_4_results(alias):
    assert diagnostics(make_shot(model=alias, duration=16)) == [
        f"{at(13)}: error: duration 16 s is out of range: runware model '{alias}' makes 3-15 s"
        "\n  hint: set a duration from 3 to 15 seconds"]
    assert diagnostics(make_shot(model=alias, duration=3, takes=4, pick=1)) == []
    [message] = diagnostics(make_shot(model=alias, takes=5))
    assert f"takes 5 is out of range: runware model '{alias}' makes 1-4" in message


@pytest.mark.parametrize("alias", ["kling-3-std", "kling-3-4k"])
def test_3_0_elements_need_a_frame_image(alias):
    """R2, R4: "When inputs.elements is provided, inputs.frameImages is required"."""
    hero = element("hero", frontal_image=IMG)
    found = diagnostics(make_shot(model=alias, prompt_text="@hero waves", elements=[hero]))
    assert any(f"elements needs a first_frame or last_frame on runware model '{alias}'" in f
               for f in found), found


def test_o3_standard_keeps_o3_pros_video_rules():
    assert MODELS["kling-o3-std"].excludes == MODELS["kling-o3-pro"].excludes
    found = diagnostics(make_shot(model="kling-o3-std", video=VID, first_frame=IMG))
    assert any("video cannot be combined with first_frame on runware model 'kling-o3-std'" in f
               for f in found), found
    assert any("negative_prompt is not sent: runware model 'kling-o3-std'" in f
               for f in diagnostics(make_shot(model="kling-o3-std", negative_prompt="blur")))


# --- the bodies against runware-sdk 1.8.0's generated types -----------------------------------

TYPES = {
    "kling-3-std": sdk.KlingaiVideo30StandardParams,
    "kling-3-4k": sdk.KlingaiVideo304kParams,
    "kling-o3-std": sdk.KlingaiVideo30OmniStandardParams,
    "kling-3-turbo-std": sdk.KlingaiVideo30TurboParams,
    "kling-3-turbo-pro": sdk.KlingaiVideo30TurboParams,
}


@pytest.mark.parametrize("alias", sorted(TYPES))
def test_every_field_sent_is_one_the_sdk_types_for_that_model(compile_one, alias):
    declared = typing.get_type_hints(TYPES[alias])
    assert typing.get_args(declared["model"]) == (MODELS[alias].model_id,)
    spec = MODELS[alias]
    shots = [make_shot(model=alias, duration=5, audio=True, negative_prompt="blur", takes=2,
                       pick=1, quality=90, output_format="mp4"),
             make_shot(model=alias, first_frame=IMG, negative_prompt="blur")]
    for shot in shots:
        request = compile_one(shot).request
        assert set(request) <= set(declared) - {"taskUUID"}, set(request) - set(declared)
        if "resolution" in request:
            assert request["resolution"] in typing.get_args(declared["resolution"])
    assert ("providerSettings" in declared) == (alias not in ("kling-3-turbo-std",
                                                              "kling-3-turbo-pro"))
    assert ("negative_prompt" in spec.supports) == ("negativePrompt" in declared)
