"""providers/kling_v3_task.py: the `kling/v3` task API of seed 002."""

from __future__ import annotations

import pytest

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


def test_multi_shot_takes_no_last_frame():
    shot = task_shot(multi_prompt=[("a beat", 3), ("more", 2)], first_frame=IMG, last_frame=IMG)
    assert diagnostics(shot) == [
        "storyboard.yaml:18:5: error: a multi-shot generation needs exactly one image: a "
        "first_frame and no last_frame\n  hint: the kling/v3 task API: when multi_shots is true, img_urls "
        "must contain exactly 1 image"
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
