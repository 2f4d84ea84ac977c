"""compiler.py: one Job per shot, every diagnostic at once, run-time inputs as InputRefs."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from decimal import Decimal

import pytest

from kling_compose.compiler import compile_shots, deep_merge
from kling_compose.errors import Location, UserError
from providers.factory import element, make_resolved, make_shot

IMG = "https://example.com/a.png"


def test_one_job_per_shot_in_order():
    shots = [make_shot(id="a", duration=4), make_shot(id="b", provider="fal"),
             make_shot(id="c", provider="preview", model="preview")]  # fmt: skip
    jobs = compile_shots(make_resolved(*shots))
    assert [(j.shot.id, j.provider, j.model.alias) for j in jobs] == [
        ("a", "runware", "kling-3-pro"), ("b", "fal", "kling-3-pro"), ("c", "preview", "preview")
    ]
    assert [j.cost_usd for j in jobs] == [Decimal("0.448"), Decimal("0.840"), Decimal(0)]


def test_every_error_of_every_shot_is_raised_once_sorted_by_location():
    at = {"duration": Location("sb.yaml", 40, 3)}
    late = replace(make_shot(id="late", duration=2), locations=at)
    at = {"quality": Location("sb.yaml", 12, 3), "takes": Location("sb.yaml", 11, 3)}
    early = replace(make_shot(id="early", quality=5, takes=30), locations=at)
    with pytest.raises(UserError) as info:
        compile_shots(make_resolved(late, early))
    assert [str(d.location) for d in info.value.diagnostics] == [
        "sb.yaml:11:3", "sb.yaml:12:3", "sb.yaml:40:3"
    ]


def test_an_error_shared_by_several_shots_is_reported_once():
    shots = [make_shot(id=i, provider="kling-v3-task", model="kling-o3-pro") for i in "ab"]
    with pytest.raises(UserError) as info:
        compile_shots(make_resolved(*shots))
    assert len(info.value.diagnostics) == 1


def test_warnings_stay_on_the_job():
    [job] = compile_shots(make_resolved(make_shot(model="kling-o3-pro", negative_prompt="blurry")))
    assert [w.severity for w in job.warnings] == ["warning"]
    assert "negativePrompt" not in job.request


def test_unknown_provider_lists_what_exists():
    with pytest.raises(UserError) as info:
        compile_shots(make_resolved(make_shot(provider="runwre")))
    assert str(info.value) == (
        "storyboard.yaml:23:5: error: unknown provider 'runwre'\n"
        "  hint: did you mean 'runware'? (providers: fal, kie, kling, kling-v3-task, preview, runware)"
    )


def test_unknown_model_lists_the_providers_models():
    with pytest.raises(UserError) as info:
        compile_shots(make_resolved(make_shot(provider="kling", model="kling-3-prox")))
    [diag] = info.value.diagnostics
    assert str(info.value).startswith(
        "storyboard.yaml:24:5: error: unknown model 'kling-3-prox' for provider kling\n"
        "  hint: did you mean ")
    assert "kling-o3-std" in (diag.hint or "")


def test_a_tier_the_provider_lacks_names_the_providers_that_have_it():
    """issue 25: kling-3-4k is kie's (and others'), not the official API's: the error is at
    the shot's model and says where the tier is offered; the preview is never named."""
    with pytest.raises(UserError) as info:
        compile_shots(make_resolved(make_shot(provider="kling", model="kling-3-4k")))
    [diag] = info.value.diagnostics
    assert str(diag.location) == "storyboard.yaml:24:5"
    assert diag.message.startswith("kling has no kling-3-4k: it is offered by ")
    hosts = diag.message.split("offered by ")[1].split(", ")
    assert "kie" in hosts and "preview" not in hosts and "kling" not in hosts
    assert "--provider kie" in (diag.hint or "") or f"--provider {hosts[0]}" in (diag.hint or "")


def test_unknown_override_is_reported_once_without_location():
    with pytest.raises(UserError) as info:
        compile_shots(make_resolved(make_shot(id="a"), make_shot(id="b")), "falx")
    assert str(info.value) == (
        "error: unknown provider 'falx'\n"
        "  hint: did you mean 'fal'? (providers: fal, kie, kling, kling-v3-task, preview, runware)"
    )


def test_override_replaces_the_provider():
    [job] = compile_shots(make_resolved(make_shot()), "fal")
    assert (job.provider, job.shot.provider) == ("fal", "fal")


def test_inputs_are_collected_once_per_key():
    hero = element("hero", frontal_image="assets/hero.png")
    shot = make_shot(prompt_text="@hero", elements=[hero], first_frame="assets/hero.png",
                     last_frame="from:opening", reference_images=["from:opening"])  # fmt: skip
    [job] = compile_shots(make_resolved(shot))
    assert [(r.key, r.media, r.placeholder) for r in job.inputs] == [
        ("file:assets/hero.png", "image", "kc-input:file:assets/hero.png"),
        ("frame:opening:last", "image", "kc-input:frame:opening:last"),
    ]


def test_first_frame_chain_of_the_first_frame():
    shot = make_shot(first_frame="from:opening")
    shot = replace(shot, first_frame=replace(shot.first_frame, frame="first"))
    [job] = compile_shots(make_resolved(shot))
    assert job.inputs[0].key == "frame:opening:first"


def test_deep_merge_keeps_order_and_merges_nested_mappings():
    base = {"a": 1, "s": {"x": 1, "y": 2}, "b": [1]}
    assert deep_merge(base, {"s": {"y": 3, "z": 4}, "b": [2], "c": 5}) == {
        "a": 1, "s": {"x": 1, "y": 3, "z": 4}, "b": [2], "c": 5
    }
    assert list(deep_merge(base, {"c": 1, "a": 2})) == ["a", "s", "b", "c"]
    assert base == {"a": 1, "s": {"x": 1, "y": 2}, "b": [1]}  # the input is not changed


def test_compiler_imports_no_heavy_library():
    heavy = ("httpx", "networkx", "rich", "PIL", "av")
    code = f"import sys, kling_compose.compiler; print([m for m in {heavy} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_validate_imports_no_heavy_library(tmp_path):
    """`validate` as a user runs it, error printing included (console.py once pulled the plan
    and networkx in through the decision's module)."""
    (tmp_path / "storyboard.yaml").write_text(
        "version: 1\nname: t\nscenes:\n  - id: a\n    shots:\n      - { id: s, prompt: x }\n"
        "outputs:\n  - { path: renders/t.mp4, subtitles: [srt] }\n")
    heavy = ("httpx", "networkx", "rich", "PIL", "av")
    code = ("import sys\nfrom kling_compose.cli import main\ntry:\n    main(['validate', "
            f"{str(tmp_path / 'storyboard.yaml')!r}])\nexcept SystemExit:\n    pass\n"
            f"print([m for m in {heavy} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


STORYBOARD = """\
version: 1
name: regatta
defaults:
  provider: runware
  model: kling-3-pro
  size: 1920x1080
elements:
  violinist:
    description: A young violinist
    frontal_image: assets/violinist.png
    tags: [Character]
scenes:
  - id: dawn
    defaults: { duration: 8 }
    shots:
      - id: opening
        prompt: "Wide shot; @violinist waits at the dock"
        first_frame: assets/regatta.png
      - id: first-notes
        prompt: "@violinist lifts the bow"
        duration: 5
        first_frame: { from: opening }
"""


def test_through_the_real_front_end(tmp_path):
    from PIL import Image

    from kling_compose.pipeline import load_resolved

    (tmp_path / "assets").mkdir()
    Image.new("RGB", (400, 300)).save(tmp_path / "assets" / "regatta.png")
    Image.new("RGB", (300, 300)).save(tmp_path / "assets" / "violinist.png")
    (tmp_path / "storyboard.yaml").write_text(STORYBOARD)
    opening, notes = compile_shots(load_resolved(tmp_path / "storyboard.yaml"))
    assert opening.request == {
        "taskType": "videoInference",
        "model": "klingai:kling-video@3-pro",
        "positivePrompt": "Wide shot; <<<element_1>>> waits at the dock",
        "duration": 8,
        "inputs": {
            "frameImages": [{"image": "kc-input:file:assets/regatta.png", "frame": "first"}],
            "elements": [{"id": "violinist", "description": "A young violinist",
                          "frontalImage": "kc-input:file:assets/violinist.png",
                          "tags": ["Character"]}],  # fmt: skip
        },
    }
    assert [w.message for w in opening.warnings] == [
        "first_frame is 400x300 (4:3) but the shot asks for 1920x1080; the provider follows "
        "the image"
    ]
    assert [r.key for r in notes.inputs] == ["frame:opening:last", "file:assets/violinist.png"]
    assert (opening.cost_usd, notes.cost_usd) == (Decimal("0.896"), Decimal("0.560"))
