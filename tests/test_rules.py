"""providers/rules.py: one test per documented limit, each pinning the located message and hint."""

from __future__ import annotations

import pytest

from kling_compose.providers import rules
from kling_compose.providers.base import ModelSpec
from providers.factory import diagnostics, element, make_shot

IMG = "https://example.com/a.png"
VID = "https://example.com/v.mp4"


def el(name: str, **kw):
    kw.setdefault("frontal_image", IMG)
    return element(name, **kw)


# --- duration: 3-15 s (seeds 000, 003, 004; seed 001 enum "3".."15"; seed 002) ----------


@pytest.mark.parametrize("duration", [2, 16])
def test_duration_range(duration):
    assert diagnostics(make_shot(duration=duration)) == [
        f"storyboard.yaml:13:5: error: duration {duration} s is out of range: runware model "
        "'kling-3-pro' makes 3-15 s\n  hint: set a duration from 3 to 15 seconds"
    ]


def test_duration_from_multi_prompt_total_is_checked():
    shot = make_shot(model="kling-o3-pro", multi_prompt=[("first part", 10), ("second", 6)])
    assert diagnostics(shot) == [
        "storyboard.yaml:11:5: error: duration 16 s is out of range: runware model "
        "'kling-o3-pro' makes 3-15 s\n  hint: set a duration from 3 to 15 seconds"
    ]


# --- prompt and negative prompt: 2-2500 characters, measured as sent ---------------------


def test_prompt_too_short():
    assert diagnostics(make_shot(prompt_text="x")) == [
        "storyboard.yaml:10:5: error: prompt is 1 character long as sent; runware model "
        "'kling-3-pro' takes 2-2500 characters\n  hint: write at least 2 characters"
    ]


def test_prompt_length_is_measured_as_sent():
    # 2490 characters as written; `@v` becomes `<<<element_1>>>` (15 characters) on Runware
    shot = make_shot(prompt_text="x" * 2487 + " @v", elements=[el("v")], first_frame=IMG)
    assert diagnostics(shot) == [
        "storyboard.yaml:10:5: error: prompt is 2503 characters long as sent; runware model "
        "'kling-3-pro' takes 2-2500 characters\n  hint: shorten it"
    ]
    assert diagnostics(shot, "kling-v3-task") == []  # `@v` stays `@v` there


def test_negative_prompt_length():
    assert diagnostics(make_shot(negative_prompt="x" * 2501)) == [
        "storyboard.yaml:12:5: error: negative_prompt is 2501 characters long as sent; "
        "runware model 'kling-3-pro' takes 2-2500 characters\n  hint: shorten it"
    ]


def test_multi_prompt_segment_length():
    shot = make_shot(model="kling-o3-pro", multi_prompt=[("x", 3), ("fine", 2)])
    assert diagnostics(shot) == [
        "storyboard.yaml:11:5: error: multi_prompt segment 1 is 1 character long as sent; "
        "runware model 'kling-o3-pro' takes 2-2500 characters\n  hint: write at least 2 characters"
    ]


# --- sizes and aspects --------------------------------------------------------------------


def test_size_not_in_the_o3_table():
    assert diagnostics(make_shot(model="kling-o3-pro", size=(1280, 720))) == [
        "storyboard.yaml:14:5: error: size 1280x720 is not available on runware model "
        "'kling-o3-pro'\n  hint: use one of 1920x1080, 1440x1440, 1080x1920"
    ]


def test_aspect_not_available():
    assert diagnostics(make_shot(model="kling-o3-pro", aspect="4:3")) == [
        "storyboard.yaml:15:5: error: aspect 4:3 is not available on runware model "
        "'kling-o3-pro'\n  hint: use one of 16:9, 1:1, 9:16"
    ]


def test_size_whose_aspect_is_not_available():
    assert diagnostics(make_shot(provider="fal", size=(1024, 768))) == [
        "storyboard.yaml:14:5: error: size 1024x768 (4:3) is not available on fal model "
        "'kling-3-pro'\n  hint: use an aspect of 16:9, 9:16, 1:1"
    ]


def test_size_is_not_checked_when_a_first_frame_sets_the_frame():
    assert diagnostics(make_shot(model="kling-o3-pro", size=(1280, 720), first_frame=IMG)) == []


# --- frame images: 1-2 ---------------------------------------------------------------------


def test_frame_image_count():
    spec = ModelSpec(alias="one-frame", model_id="m", source="test", frame_images=(1, 1))
    shot = make_shot(first_frame=IMG, last_frame=IMG)
    assert [str(d) for d in rules.check_frame_count(shot, spec, "runware")] == [
        "storyboard.yaml:18:5: error: 2 frame images given; runware model 'one-frame' takes "
        "1-1\n  hint: remove the last_frame"
    ]


# --- elements: at most 3, at most 3 extra images, videos alone ---------------------------


def test_at_most_three_elements():
    shot = make_shot(
        prompt_text="@a @b @c @d", elements=[el(n) for n in "abcd"], first_frame=IMG
    )
    assert diagnostics(shot) == [
        "storyboard.yaml:22:5: error: shot uses 4 elements (@a, @b, @c, @d); runware model "
        "'kling-3-pro' takes at most 3\n  hint: split the shot or drop an element"
    ]


def test_at_most_three_extra_images_per_element():
    shot = make_shot(prompt_text="@a", elements=[el("a", images=[IMG] * 4)], first_frame=IMG)
    assert diagnostics(shot) == [
        "storyboard.yaml:3:3: error: element 'a' has 4 extra images; runware model "
        "'kling-3-pro' takes at most 3 besides the frontal image\n"
        "  hint: keep the 3 most telling angles"
    ]


@pytest.mark.parametrize("extra", [{"frontal_image": IMG}, {"voices": ["https://e.com/v.mp3"]}])
def test_element_videos_stand_alone(extra):
    e = element("a", videos=[VID], **extra)
    shot = make_shot(prompt_text="@a", elements=[e], first_frame=IMG)
    assert diagnostics(shot) == [
        "storyboard.yaml:3:3: error: element 'a' combines videos with images or voices\n"
        "  hint: an element is either a video, or images (optionally with voices)"
    ]


# --- multi_prompt: at most 6 segments of >= 1 s adding up to the duration -----------------


def test_at_most_six_segments():
    shot = make_shot(model="kling-o3-pro", multi_prompt=[("a beat", 1)] * 7)
    assert diagnostics(shot) == [
        "storyboard.yaml:11:5: error: multi_prompt has 7 segments; runware model "
        "'kling-o3-pro' takes at most 6\n  hint: merge segments or split the shot"
    ]


def test_segments_last_at_least_one_second():
    shot = make_shot(model="kling-o3-pro", multi_prompt=[("a beat", 0), ("the rest", 5)])
    assert diagnostics(shot) == [
        "storyboard.yaml:11:5: error: multi_prompt segment 1 lasts 0 s; runware model "
        "'kling-o3-pro' takes segments of 1-15 s\n  hint: give the segment a duration from 1 "
        "to 15 s"
    ]


def test_segments_add_up_to_the_duration():
    shot = make_shot(model="kling-o3-pro", multi_prompt=[("a beat", 3), ("more", 3)], duration=5)
    assert diagnostics(shot) == [
        "storyboard.yaml:11:5: error: multi_prompt segments add up to 6 s but the shot's "
        "duration is 5 s\n  hint: make the segment durations add up to the duration, or "
        "leave duration out"
    ]


# --- takes (numberResults), quality (outputQuality), cfg_scale ----------------------------


def test_takes_range_runware_3_pro():
    assert diagnostics(make_shot(takes=21)) == [
        "storyboard.yaml:26:5: error: takes 21 is out of range: runware model 'kling-3-pro' "
        "makes 1-20 results per request\n  hint: use 1 to 20, or make more takes in several shots"
    ]


def test_takes_range_runware_o3_pro_is_the_stricter_seed_003():
    assert diagnostics(make_shot(model="kling-o3-pro", takes=5)) == [
        "storyboard.yaml:26:5: error: takes 5 is out of range: runware model 'kling-o3-pro' "
        "makes 1-4 results per request\n  hint: use 1 to 4, or make more takes in several shots"
    ]


@pytest.mark.parametrize("quality", [19, 100])
def test_quality_range(quality):
    assert diagnostics(make_shot(quality=quality)) == [
        f"storyboard.yaml:29:5: error: quality {quality} is out of range: runware model "
        "'kling-3-pro' takes 20-99\n  hint: use a value from 20 to 99"
    ]


def test_cfg_scale_range_fal():
    assert diagnostics(make_shot(provider="fal", cfg_scale=1.5)) == [
        "storyboard.yaml:25:5: error: cfg_scale 1.5 is out of range: fal model 'kling-3-pro' "
        "takes 0-1\n  hint: use a value from 0 to 1"
    ]


# --- fields a model does not have ---------------------------------------------------------


def test_unsupported_field_is_an_error():
    assert diagnostics(make_shot(multi_prompt=[("a beat", 3), ("more", 2)])) == [
        "storyboard.yaml:11:5: error: runware model 'kling-3-pro' does not support "
        "multi_prompt\n  hint: remove multi_prompt from this shot or choose another model "
        "(Runware's KlingAI Video 3.0 Pro page, runware.ai/docs/models/klingai-video-3-0-pro)"
    ]


def test_unsupported_tuning_field_is_a_warning():
    assert diagnostics(make_shot(model="kling-o3-pro", negative_prompt="blurry")) == [
        "storyboard.yaml:12:5: warning: negative_prompt is not sent: runware model "
        "'kling-o3-pro' has no such setting\n  hint: it is ignored for this shot; remove it "
        "or choose a model that has it"
    ]


def test_takes_on_a_provider_without_results_count():
    assert diagnostics(make_shot(provider="fal", takes=2)) == [
        "storyboard.yaml:26:5: error: fal model 'kling-3-pro' does not support takes\n"
        "  hint: remove takes from this shot or choose another model (fal's Kling Video V3 Pro page, "
        "fal.ai/docs/model-api-reference/video-generation-api/kling-video-v3-pro)"
    ]


# --- exclusions (the O3 compatibility rules, seeds 003/004) -------------------------------


@pytest.mark.parametrize(
    "fields, line, name, rule",
    [
        ({"first_frame": IMG}, 17, "first_frame",
         "Provide exactly one of: inputs.frameImages or inputs.video or width/height (Runware's 3.0 Omni Pro page)"),
        ({"last_frame": IMG}, 18, "last_frame",
         "Provide exactly one of: inputs.frameImages or inputs.video or width/height (Runware's 3.0 Omni Pro page)"),
        ({"reference_videos": [VID]}, 21, "reference_videos",
         "Inside inputs, video cannot be used with referenceVideos (Runware's 3.0 Omni Pro page)"),
        ({"prompt_text": "@a", "elements": [el("a")]}, 22, "elements",
         "When inputs.video is provided, inputs.elements cannot be used (Runware's O3 Pro and 3.0 Omni Pro pages)"),
        ({"multi_prompt": [("a beat", 3), ("more", 2)]}, 11, "multi_prompt",
         "When inputs.video or inputs.referenceVideos is provided, providerSettings cannot be "
         "used (Runware's O3 Pro and 3.0 Omni Pro pages); multi_prompt travels in providerSettings.klingai.multiPrompt"),
    ],
)  # fmt: skip
def test_video_exclusions(fields, line, name, rule):
    shot = make_shot(model="kling-o3-pro", video=VID, **fields)
    assert diagnostics(shot) == [
        f"storyboard.yaml:{line}:5: error: video cannot be combined with {name} on runware "
        f"model 'kling-o3-pro'\n  hint: {rule}"
    ]


def test_reference_videos_exclude_multi_prompt():
    shot = make_shot(
        model="kling-o3-pro", reference_videos=[VID], multi_prompt=[("a beat", 3), ("more", 2)]
    )
    assert diagnostics(shot) == [
        "storyboard.yaml:11:5: error: reference_videos cannot be combined with multi_prompt on "
        "runware model 'kling-o3-pro'\n  hint: When inputs.video or inputs.referenceVideos is "
        "provided, providerSettings cannot be used (Runware's O3 Pro and 3.0 Omni Pro pages); multi_prompt travels in "
        "providerSettings.klingai.multiPrompt"
    ]


# --- a local first frame whose aspect differs from the asked one --------------------------


def test_first_frame_aspect_mismatch_warns(tmp_path):
    from PIL import Image

    Image.new("RGB", (400, 300)).save(tmp_path / "frame.png")
    shot = make_shot(first_frame=str(tmp_path / "frame.png"), size=(1920, 1080))
    assert diagnostics(shot) == [
        "storyboard.yaml:17:5: warning: first_frame is 400x300 (4:3) but the shot asks for "
        "1920x1080; the provider follows the image\n  hint: crop the image to 1920x1080, or "
        "drop size/aspect for this shot"
    ]


def test_first_frame_with_the_asked_aspect_is_fine(tmp_path):
    from PIL import Image

    Image.new("RGB", (320, 180)).save(tmp_path / "frame.png")
    assert diagnostics(make_shot(first_frame=str(tmp_path / "frame.png"), aspect="16:9")) == []


def test_unreadable_first_frame(tmp_path):
    (tmp_path / "frame.png").write_text("not an image")
    [message] = diagnostics(make_shot(first_frame=str(tmp_path / "frame.png"), aspect="16:9"))
    assert message.startswith(
        f"storyboard.yaml:17:5: error: first_frame {tmp_path}/frame.png is not a readable image: "
    )
    assert message.endswith("\n  hint: use a PNG, JPEG or WebP file")


# --- helpers --------------------------------------------------------------------------------


def test_effective_duration():
    assert rules.effective_duration(make_shot()) is None
    assert rules.effective_duration(make_shot(duration=7)) == 7
    shot = make_shot(model="kling-o3-pro", multi_prompt=[("a", 3), ("b", 4)])
    assert rules.effective_duration(shot) == 7


def test_aspect_of():
    assert [rules.aspect_of(s) for s in [(1920, 1080), (1440, 1440), (1080, 1920)]] == [
        "16:9", "1:1", "9:16"
    ]


# --- multi_prompt with a last_frame: refused on every provider (issue 21, item 4) ----------

MULTI_LAST = (
    "storyboard.yaml:18:5: error: last_frame cannot be combined with multi_prompt: Kling 3.0 "
    "makes a multi-shot clip from a first frame only\n  hint: remove the last_frame (keep the "
    "first_frame), or write the shot as one prompt to end on that frame (Kling 3.0: the end "
    "frame \"cannot be used together with multi_prompt\")"
)


@pytest.mark.parametrize("provider, model", [
    ("fal", "kling-3-pro"), ("runware", "kling-o3-pro"), ("kling", "kling-3-pro"),
    ("kling", "kling-3-std"), ("kling-v3-task", "kling-3-pro"), ("preview", "kling-3-pro"),
    ("preview", "preview"), ("kie", "kling-3-pro"),
])  # fmt: skip
def test_a_multi_prompt_shot_takes_no_last_frame_on_any_provider(provider, model):
    """Sent, the end frame was refused mid-run or silently ignored in a paid clip; the free
    preview refuses it too, so a rehearsal fails where a paid run would. One message."""
    shot = make_shot(provider=provider, model=model, first_frame=IMG,
                     last_frame="https://example.com/end.png",
                     multi_prompt=[("the keeper climbs", 3), ("the lamp turns on", 3)])
    assert diagnostics(shot) == [MULTI_LAST]


def test_a_single_shot_keeps_its_last_frame_and_a_model_without_one_says_so_once():
    assert diagnostics(make_shot(provider="fal", first_frame=IMG, last_frame=IMG)) == []
    # Runware 3.0 Pro has no multi_prompt: that is the one error, not this rule
    shot = make_shot(first_frame=IMG, last_frame=IMG, multi_prompt=[("one", 3), ("two", 3)])
    assert [d.split("\n")[0] for d in diagnostics(shot)] == [
        "storyboard.yaml:11:5: error: runware model 'kling-3-pro' does not support multi_prompt"]


# --- keyframes and resolution (issue 25: Kling 4.0, tiers) --------------------------------

_V4 = ModelSpec(alias="kling-4", model_id="v4", source="a 4.0 page", durations_s=(3, 30),
                max_keyframes=8, resolutions=("1080p", "720p"),
                supports=frozenset({"first_frame", "last_frame", "keyframes", "duration"}))


def _check(shot, spec=_V4):
    return [str(d) for d in rules.check_shot(shot, spec, "fal", lambda p: p.text)]


def test_eight_keyframes_pass_and_the_ninth_is_refused_at_itself():
    frames = [f"https://example.com/k{i}.png" for i in range(9)]
    assert _check(make_shot(first_frame=IMG, keyframes=frames[:8], duration=20)) == []
    [error] = _check(make_shot(first_frame=IMG, keyframes=frames, duration=20))
    assert error.startswith("storyboard.yaml:")
    assert "9 keyframes given; fal model 'kling-4' takes at most 8" in error


def test_keyframes_need_a_first_frame():
    [error] = _check(make_shot(keyframes=[IMG]))
    assert "keyframes need a first_frame on fal model 'kling-4'" in error
    assert "spaced evenly" in error


def test_a_model_without_keyframes_refuses_them():
    [error] = _check(make_shot(first_frame=IMG, keyframes=[IMG]),
                     ModelSpec(alias="kling-3-pro", model_id="p", source="seed",
                               supports=frozenset({"first_frame"})))
    assert "does not support keyframes" in error


def test_duration_thirty_is_kling_4s_limit():
    assert _check(make_shot(duration=30)) == []
    [error] = _check(make_shot(duration=31))
    assert "duration 31 s is out of range: fal model 'kling-4' makes 3-30 s" in error


@pytest.mark.parametrize("resolution, expected", [
    ("720p", None), ("1080p", None),
    ("4k", "fal model 'kling-4' renders 1080p or 720p, not 4k"),
])
def test_resolution_is_one_the_model_offers(resolution, expected):
    found = _check(make_shot(resolution=resolution))
    assert (found == []) if expected is None else (expected in found[0])


def test_a_fixed_tier_refuses_another_resolution_and_names_the_tiers():
    std = ModelSpec(alias="kling-3-std", model_id="s", source="std page", resolutions=("720p",))
    assert _check(make_shot(resolution="720p"), std) == []
    [error] = _check(make_shot(resolution="1080p"), std)
    assert "renders 720p, not 1080p" in error and "kling-3-pro 1080p" in error
    [error] = _check(make_shot(resolution="720p"),
                     ModelSpec(alias="x", model_id="x", source="x page"))
    assert "has no resolution setting" in error
