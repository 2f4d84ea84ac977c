"""providers/fal.py, issue 25: the Kling family on fal. Each tier compiles to its documented
endpoint with its own body fields and price; the bodies keep to fal-js's types; what a tier
lacks is refused (or dropped with a warning) where the storyboard wrote it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kling_compose.providers.fal import MODELS, endpoint_id

from .factory import diagnostics, element, line, make_shot
from .test_fal_types import TYPES, check_body, check_doc_rules, sent

IMG = "https://example.com/a.png"
IMG2 = "https://example.com/b.png"
VID = "https://example.com/v.mp4"
FAL = "fal-ai/kling-video"


def shot(model, **fields):
    return make_shot(provider="fal", model=model, **fields)


def hero():
    return element("hero", frontal_image="assets/hero.png", images=[IMG2])


def dancer():
    return element("dancer", videos=[VID])


def mara():  # speaks in a voice made of her sample
    return element("mara", frontal_image=IMG, voice="https://example.com/mara.wav")


# -- each tier: its endpoints and body ------------------------------------------------------

ROUTES = {
    # alias: (text-to-video endpoint, image-to-video endpoint, the start image's field)
    "kling-3-4k": (
        f"{FAL}/v3/4k/text-to-video", f"{FAL}/v3/4k/image-to-video", "start_image_url"),
    "kling-o3-std": (
        f"{FAL}/o3/standard/text-to-video", f"{FAL}/o3/standard/image-to-video", "image_url"),
    "kling-o3-pro": (f"{FAL}/o3/pro/text-to-video", f"{FAL}/o3/pro/image-to-video", "image_url"),
    "kling-o3-4k": (f"{FAL}/o3/4k/text-to-video", f"{FAL}/o3/4k/image-to-video", "image_url"),
    "kling-3-turbo-std": (f"{FAL}/v3/turbo/standard/text-to-video",
                          f"{FAL}/v3/turbo/standard/image-to-video", "image_url"),
    "kling-3-turbo-pro": (f"{FAL}/v3/turbo/pro/text-to-video",
                          f"{FAL}/v3/turbo/pro/image-to-video", "image_url"),
}  # fmt: skip


@pytest.mark.parametrize("alias", sorted(ROUTES))
def test_each_tier_goes_to_its_text_and_image_to_video_endpoints(compile_one, alias):
    t2v, i2v, start = ROUTES[alias]
    job = compile_one(shot(alias, aspect="9:16", duration=7))
    assert endpoint_id(job.model, job.request) == t2v
    assert job.request["aspect_ratio"] == "9:16" and job.request["duration"] == "7"
    job = compile_one(shot(alias, first_frame="from:opening", aspect="9:16"))
    assert endpoint_id(job.model, job.request) == i2v
    assert job.request[start] == "kc-input:frame:opening:last"
    assert "aspect_ratio" not in job.request  # the start image sets it


def test_the_4k_tier_sends_v3_pro_s_body():
    """3.0 4K is the type Std and Pro alias in fal-js: the same body at its own endpoint."""
    from kling_compose.compiler import compile_shots
    from dataclasses import replace

    from .factory import make_resolved

    fields = dict(prompt_text="@hero runs", elements=[hero()], first_frame=IMG, last_frame=IMG2,
                  negative_prompt="blur", cfg_scale=0.4, audio=False, duration=9)
    pro, k4 = compile_shots(make_resolved(shot("kling-3-pro", **fields),
                                          replace(shot("kling-3-4k", **fields), id="s2")))
    assert k4.request == pro.request
    assert endpoint_id(k4.model, k4.request) == f"{FAL}/v3/4k/image-to-video"


def test_o3_image_to_video_names_the_start_image_image_url_and_always_says_audio(compile_one):
    job = compile_one(shot("kling-o3-std", first_frame=IMG, last_frame=IMG2, duration=6))
    assert job.request == {"prompt": "A quiet harbour at dawn", "duration": "6",
                           "generate_audio": False, "shot_type": "customize",
                           "image_url": IMG, "end_image_url": IMG2}
    # O3 defaults to silence (fal's O3 pages: generate_audio "default: false"), unlike v3
    assert compile_one(shot("kling-o3-std")).request["generate_audio"] is False
    assert compile_one(shot("kling-o3-std", audio=True)).request["generate_audio"] is True


def test_o3_elements_and_reference_images_go_to_reference_to_video(compile_one):
    """reference-to-video takes elements without a frame, reference images as image_urls
    (@Image1...), and a first frame as start_image_url."""
    job = compile_one(shot("kling-o3-pro", prompt_text="@hero dances like @dancer",
                           elements=[hero(), dancer()], reference_images=[IMG, "from:opening"],
                           aspect="1:1", audio=True))
    assert endpoint_id(job.model, job.request) == f"{FAL}/o3/pro/reference-to-video"
    # with a video element (the dancer's) the sound can only be off (Kling's omni rule): a
    # warning, sent silent, priced at the video-input estimate with its note (the review)
    assert [w.message for w in job.warnings] == [
        "audio is not sent with a video element on fal model 'kling-o3-pro'"]
    assert job.cost_usd == Decimal("0.336") * 5  # fal's default 5 s
    assert "video element" in (job.cost_note or "")
    assert job.request == {
        "prompt": "@Element1 dances like @Element2", "generate_audio": False,
        "shot_type": "customize", "aspect_ratio": "1:1",
        "image_urls": [IMG, "kc-input:frame:opening:last"],
        "elements": [{"frontal_image_url": "kc-input:file:assets/hero.png",
                      "reference_image_urls": [IMG2]}, {"video_url": VID}]}
    job = compile_one(shot("kling-o3-4k", prompt_text="@hero waits", elements=[hero()],
                           first_frame=IMG, last_frame=IMG2))
    assert endpoint_id(job.model, job.request) == f"{FAL}/o3/4k/reference-to-video"
    assert (job.request["start_image_url"], job.request["end_image_url"]) == (IMG, IMG2)
    assert "image_url" not in job.request and "aspect_ratio" not in job.request


def test_turbo_sends_no_audio_switch_and_no_shot_type(compile_one):
    job = compile_one(shot("kling-3-turbo-pro", multi_prompt=[("A step", 4), ("A turn", 5)],
                           first_frame=IMG, audio=True))
    assert job.request == {"duration": "9", "image_url": IMG, "multi_prompt": [
        {"prompt": "A step", "duration": "4"}, {"prompt": "A turn", "duration": "5"}]}


# -- prices: a 5 s shot with and without audio -------------------------------------------------

PRICES = {  # alias: (5 s with audio, 5 s without), USD
    "kling-3-std": ("0.630", "0.420"),  # fal v3 standard page: 0.126 / 0.084
    "kling-3-pro": ("0.840", "0.560"),  # fal v3 pro page: 0.168 / 0.112
    "kling-3-4k": ("2.10", "2.10"),  # fal v3 4k pages: 0.42 "regardless of whether audio is on"
    "kling-o3-std": ("0.560", "0.420"),  # fal O3 standard page: 0.112 / 0.084
    "kling-o3-pro": ("1.40", "1.120"),  # no fal price: the higher secondary, 0.28 / 0.224
    "kling-o3-4k": ("2.10", "2.10"),  # fal O3 4k pages: 0.42 either way
    "kling-3-turbo-std": ("0.560", "0.560"),  # fal Turbo Standard page: 0.112, sound always
    "kling-3-turbo-pro": ("0.70", "0.70"),  # fal Turbo Pro pages: 0.14, sound always
    "kling-4": ("1.175", "1.175"),  # 1080p (fal's default): 0.235, sound always
}


@pytest.mark.parametrize("alias", sorted(PRICES))
def test_the_price_of_a_5_s_shot_with_and_without_audio(compile_one, alias):
    with_audio, without = PRICES[alias]
    assert compile_one(shot(alias, duration=5, audio=True)).cost_usd == Decimal(with_audio)
    assert compile_one(shot(alias, duration=5, audio=False)).cost_usd == Decimal(without)


def test_every_fal_tier_is_priced():
    assert set(PRICES) == set(MODELS)


def test_o3_pro_says_its_price_is_not_fal_s():
    job = make_shot(provider="fal", model="kling-o3-pro")
    from kling_compose.compiler import compile_shots

    from .factory import make_resolved

    note = compile_shots(make_resolved(job))[0].cost_note
    assert note is not None and "fal publishes no Kling O3 Pro price" in note
    assert "0.224" in note and "0.28" in note
    for alias in set(MODELS) - {"kling-o3-pro"}:
        assert compile_shots(make_resolved(shot(alias)))[0].cost_note is None, alias


# -- what a tier lacks ----------------------------------------------------------------------


def test_o3_drops_negative_prompt_and_cfg_scale_with_a_warning(compile_one):
    job = compile_one(shot("kling-o3-std", negative_prompt="blur", cfg_scale=0.5))
    assert "negative_prompt" not in job.request and "cfg_scale" not in job.request
    assert [str(w) for w in job.warnings] == [
        "storyboard.yaml:12:5: warning: negative_prompt is not sent: fal model 'kling-o3-std' "
        "has no such setting\n  hint: it is ignored for this shot; remove it or choose a model "
        "that has it",
        "storyboard.yaml:25:5: warning: cfg_scale is not sent: fal model 'kling-o3-std' has no "
        "such setting\n  hint: it is ignored for this shot; remove it or choose a model that "
        "has it"]


def test_o3_refuses_a_video_input():
    assert diagnostics(shot("kling-o3-std", video=VID)) == [
        "storyboard.yaml:20:5: error: fal model 'kling-o3-std' does not support video\n  hint: "
        "remove video from this shot or choose another model (fal's Kling O3 pages, fal.ai/"
        "docs/model-api-reference/video-generation-api/kling-video-o3-standard-reference-to-"
        "video)"]


def test_o3_refuses_an_end_frame_alone():
    assert diagnostics(shot("kling-o3-pro", last_frame=IMG)) == [
        "storyboard.yaml:18:5: error: last_frame needs a first_frame on fal\n  hint: add a "
        "first_frame: Kling O3 makes no clip from an end frame alone (Kling API: \"Currently "
        "does not support only the end frame\")"]


def test_o3_counts_elements_and_reference_images_together():
    two = [hero(), element("lamp", frontal_image=IMG)]
    assert diagnostics(shot("kling-o3-std", prompt_text="@hero @lamp", elements=two,
                            reference_images=[IMG] * 6)) == [
        "storyboard.yaml:19:5: error: 2 element(s) and 6 reference image(s); fal model "
        "'kling-o3-std' takes at most 7 together\n  hint: fal's O3 reference-to-video: "
        "\"Maximum 4 total (elements + reference images) when using video\", 7 otherwise (its "
        "4K page; Kling's omni-video): drop some"]
    assert diagnostics(shot("kling-o3-4k", prompt_text="@dancer", elements=[dancer()],
                            reference_images=[IMG] * 4)) == [
        "storyboard.yaml:19:5: error: 1 element(s) and 4 reference image(s); fal model "
        "'kling-o3-4k' takes at most 4 together with a video element\n  hint: fal's O3 "
        "reference-to-video: \"Maximum 4 total (elements + reference images) when using "
        "video\", 7 otherwise (its 4K page; Kling's omni-video): drop some"]
    assert diagnostics(shot("kling-o3-4k", prompt_text="@dancer", elements=[dancer()],
                            reference_images=[IMG] * 3)) == []


def test_o3_takes_no_end_frame_beside_reference_images():
    assert diagnostics(shot("kling-o3-std", first_frame=IMG, last_frame=IMG2,
                            reference_images=[IMG])) == [
        "storyboard.yaml:18:5: error: an end frame cannot be combined with reference images on "
        "fal model 'kling-o3-std'\n  hint: remove the last_frame or the reference_images "
        "(Kling API, omni-video: \"Setting an end frame is not supported when there are more "
        "than 2 images\")"]


@pytest.mark.parametrize("alias", ["kling-3-std", "kling-3-pro", "kling-3-4k",
                                   "kling-3-turbo-std", "kling-3-turbo-pro"])
def test_reference_images_need_o3(alias):
    found = diagnostics(shot(alias, reference_images=[IMG]))
    assert len(found) == 1 and found[0].startswith(
        f"storyboard.yaml:19:5: error: fal model '{alias}' does not support reference_images")


def test_turbo_refuses_an_end_frame_and_elements():
    assert diagnostics(shot("kling-3-turbo-std", first_frame=IMG, last_frame=IMG2)) == [
        "storyboard.yaml:18:5: error: 2 frame images given; fal model 'kling-3-turbo-std' takes "
        "1-1\n  hint: remove the last_frame",
        "storyboard.yaml:18:5: error: fal model 'kling-3-turbo-std' does not support last_frame"
        "\n  hint: remove last_frame from this shot or choose another model (fal's Kling Video "
        "V3 Turbo Standard page, fal.ai/models/fal-ai/kling-video/v3/turbo/standard/image-to-"
        "video/llms.txt)"]
    assert diagnostics(shot("kling-3-turbo-pro", prompt_text="@hero", elements=[hero()],
                            first_frame=IMG)) == [
        "storyboard.yaml:22:5: error: fal model 'kling-3-turbo-pro' does not support elements\n"
        "  hint: remove elements from this shot or choose another model (fal's Kling Video V3 "
        "Turbo Pro page, fal.ai/models/fal-ai/kling-video/v3/turbo/pro/text-to-video/llms.txt)"]


def test_turbo_drops_negative_prompt_and_cfg_scale_and_warns_that_sound_comes_anyway(
        compile_one):
    job = compile_one(shot("kling-3-turbo-std", audio=False, negative_prompt="blur",
                           cfg_scale=0.5))
    assert job.request == {"prompt": "A quiet harbour at dawn"}
    assert [str(w) for w in job.warnings] == [
        "storyboard.yaml:12:5: warning: negative_prompt is not sent: fal model "
        "'kling-3-turbo-std' has no such setting\n  hint: it is ignored for this shot; remove "
        "it or choose a model that has it",
        "storyboard.yaml:25:5: warning: cfg_scale is not sent: fal model 'kling-3-turbo-std' "
        "has no such setting\n  hint: it is ignored for this shot; remove it or choose a model "
        "that has it",
        "storyboard.yaml:16:5: warning: audio: false is not honoured: fal model "
        "'kling-3-turbo-std' always makes sound\n  hint: fal's Turbo endpoints have no "
        "generate_audio and their clips come \"with native audio\" (priced so): mute it when "
        "editing, or choose a model with an audio switch"]
    assert compile_one(shot("kling-3-turbo-std", audio=True)).warnings == ()


@pytest.mark.parametrize("alias, why", [
    ("kling-3-4k", "fal's 4K price covers audio without voice control only"),
    ("kling-o3-std", "fal prices O3 with audio on or off only, and Kling gives its omni model "
                     "no voice control"),
])  # fmt: skip
def test_a_voice_is_not_bound_where_fal_prices_no_voice_control(compile_one, alias, why):
    """fal bills voice control at its own price where it publishes one (3.0 Std and Pro);
    elsewhere a voice would cost an unknown amount: its lines are sent in the prompt alone."""
    talk = shot(alias, prompt_text="@mara pours tea", elements=[mara()], first_frame=IMG,
                dialogue=[line("mara", "You came back.")], audio=True, duration=5)
    job = compile_one(talk)
    assert job.request["elements"] == [{"frontal_image_url": IMG, "reference_image_urls": [IMG]}]
    assert job.request["prompt"] == '@Element1 pours tea\n[@Element1]: "You came back."'
    assert job.cost_usd == MODELS[alias].prices["audio"] * 5
    assert [str(w) for w in job.warnings] == [
        f"storyboard.yaml:3:3: warning: fal model '{alias}' cannot bind the voice of element "
        f"'mara' ({why}): its lines go into the prompt alone, spoken in a voice the model "
        "picks\n  hint: use a provider that binds voices (fal, kling; runware and kie take a "
        "`voice:` sample file), or keep it: the words and tone are still sent"]
    pro = compile_one(shot("kling-3-pro", prompt_text="@mara pours tea", elements=[mara()],
                           first_frame=IMG, dialogue=[line("mara", "You came back.")]))
    assert pro.request["elements"][0]["voice_id"] == "kc-input:voice:mara"  # bound on v3 Pro


# -- the bodies against fal-js's types -------------------------------------------------------

TYPED = {
    "4k t2v": shot("kling-3-4k", aspect="1:1", negative_prompt="blur", cfg_scale=0.2,
                   duration=15),
    "4k i2v elements": shot("kling-3-4k", prompt_text="@hero and @dancer", first_frame=IMG,
                            last_frame="from:opening", elements=[hero(), dancer()], audio=True),
    "4k i2v multi_prompt": shot("kling-3-4k", multi_prompt=[("Walks in", 3), ("Walks out", 3)],
                                first_frame=IMG, audio=False),
    **{f"o3 {tier} t2v": shot(f"kling-o3-{tier}", aspect="9:16", duration=3, audio=True)
       for tier in ("std", "pro", "4k")},
    **{f"o3 {tier} t2v multi_prompt": shot(f"kling-o3-{tier}",
                                           multi_prompt=[("A wave", 5), ("A gull", 10)])
       for tier in ("std", "pro", "4k")},
    **{f"o3 {tier} i2v": shot(f"kling-o3-{tier}", first_frame="assets/s.png",
                           last_frame="from:opening", duration=15)
       for tier in ("std", "pro", "4k")},
    **{f"o3 {tier} i2v multi_prompt": shot(f"kling-o3-{tier}", first_frame=IMG,
                                        multi_prompt=[("A wave", 4), ("A gull", 4)], audio=True)
       for tier in ("std", "pro", "4k")},
    **{f"o3 {tier} r2v": shot(f"kling-o3-{tier}", prompt_text="@hero by @dancer, like @@Image1",
                           elements=[hero(), dancer()], reference_images=[IMG, IMG2],
                           aspect="16:9", audio=True)
       for tier in ("std", "pro", "4k")},
    **{f"o3 {tier} r2v frames": shot(f"kling-o3-{tier}", prompt_text="@hero", elements=[hero()],
                                  first_frame=IMG, last_frame=IMG2)
       for tier in ("std", "pro", "4k")},
    **{f"o3 {tier} r2v multi_prompt": shot(f"kling-o3-{tier}", elements=[hero()],
                                           multi_prompt=[("@hero walks", 5),
                                                         ("@hero waves", 6)])
       for tier in ("std", "pro", "4k")},
    "o3 r2v references only": shot("kling-o3-std", reference_images=[IMG] * 7),
    "o3 r2v voice not bound": shot("kling-o3-pro", prompt_text="@mara", elements=[mara()],
                                   dialogue=[line("mara", "Hello.")], audio=True),
    **{f"turbo {tier} t2v": shot(f"kling-3-turbo-{tier}", aspect="1:1", duration=12,
                                 audio=True)
       for tier in ("std", "pro")},
    **{f"turbo {tier} t2v multi_prompt": shot(f"kling-3-turbo-{tier}",
                                              multi_prompt=[("A wave", 5)] * 3)
       for tier in ("std", "pro")},
    **{f"turbo {tier} i2v": shot(f"kling-3-turbo-{tier}", first_frame="from:opening", duration=3)
       for tier in ("std", "pro")},
    **{f"turbo {tier} i2v multi_prompt": shot(f"kling-3-turbo-{tier}", first_frame=IMG,
                                              multi_prompt=[("A wave", 3), ("A gull", 3)])
       for tier in ("std", "pro")},
    "turbo spoken only": shot("kling-3-turbo-std", prompt_text=None,
                              dialogue=[line("narrator", "It rained.")]),
}  # fmt: skip


@pytest.mark.parametrize("case", TYPED.values(), ids=list(TYPED))
def test_the_family_s_bodies_keep_to_fal_s_types(compile_one, case):
    job = compile_one(case)
    body = sent(job)
    endpoint = endpoint_id(job.model, job.request)
    problems = check_body(endpoint, body) + check_doc_rules(body)
    assert problems == [], "\n".join(problems)


def test_the_cases_reach_every_route_of_every_tier_and_each_field_fal_declares(compile_one):
    seen: dict[str, set] = {}
    for case in TYPED.values():
        job = compile_one(case)
        seen.setdefault(endpoint_id(job.model, job.request), set()).update(sent(job))
    family = {e for e in TYPES["endpoints"] if "/o3/" in e or "/turbo/" in e or "/4k/" in e}
    assert set(seen) == family
    for endpoint, fields in seen.items():
        declared = set(TYPES["types"][TYPES["endpoints"][endpoint]["type"]]["fields"])
        if endpoint.endswith("/image-to-video") and "/v3/4k/" in endpoint:
            declared -= {"aspect_ratio"}
        assert fields <= declared
    # every field of each O3 and Turbo type is sent by some case
    for route in ("o3/pro/text-to-video", "o3/pro/image-to-video", "o3/pro/reference-to-video",
                  "v3/turbo/pro/text-to-video", "v3/turbo/pro/image-to-video"):
        endpoint = f"{FAL}/{route}"
        assert seen[endpoint] == set(TYPES["types"][TYPES["endpoints"][endpoint]["type"]]
                                     ["fields"]), endpoint


# -- resolutions: a tier is one ----------------------------------------------------------------


def test_each_tier_renders_one_resolution_and_refuses_another():
    assert {a: s.resolutions for a, s in MODELS.items()} == {
        "kling-3-std": ("720p",), "kling-3-pro": ("1080p",), "kling-3-4k": ("4k",),
        "kling-o3-std": ("720p",), "kling-o3-pro": ("1080p",), "kling-o3-4k": ("4k",),
        "kling-3-turbo-std": ("720p",), "kling-3-turbo-pro": ("1080p",),
        "kling-4": ("1080p", "720p")}
    assert diagnostics(shot("kling-3-4k", resolution="4k")) == []
    [error] = diagnostics(shot("kling-3-turbo-std", resolution="1080p"))
    assert "fal model 'kling-3-turbo-std' renders 720p, not 1080p" in error



# -- Kling 4.0 (issue 25): keyframes, 3-30 s, 720p or 1080p -------------------------------------

V4_I2V = f"{FAL}/v4/image-to-video"
V4_T2V = f"{FAL}/v4/text-to-video"


def _v4_pages():
    import json
    from pathlib import Path

    return json.loads((Path(__file__).parent / "fal_types" / "kling_v4_pages.json").read_text())


PAGES = _v4_pages()


def check_v4(endpoint: str, body: dict) -> list[str]:
    """Problems of a body against fal's 4.0 page for `endpoint` (fal_types/kling_v4_pages.json,
    transcribed from fal's llms.txt: fal-js has no 4.0 types yet)."""
    page = PAGES["endpoints"][endpoint]
    where = page["page"]
    problems = [f"{key}: missing; required by {where}" for key in page["required"]
                if key not in body]
    for key, value in body.items():
        field = page["properties"].get(key)
        if field is None:
            problems.append(f"{key}: sent, but {where} declares no {key!r} "
                            f"(it declares {sorted(page['properties'])})")
            continue
        kind = field["type"]
        ok = {"string": isinstance(value, str), "array": isinstance(value, list),
              "integer": isinstance(value, int) and not isinstance(value, bool)}[kind]
        if not ok:
            problems.append(f"{key}: {value!r} is not an {kind} ({where})")
            continue
        if "enum" in field and value not in field["enum"]:
            problems.append(f"{key}: {value!r} is not one of {field['enum']}"
                            + (" (the stored enum is cut)" if field.get("enum_truncated")
                               else "") + f" ({where})")
        if "minimum" in field and not field["minimum"] <= value <= field["maximum"]:
            problems.append(f"{key}: {value} is outside {field['minimum']}-{field['maximum']}")
        if "maxItems" in field and len(value) > field["maxItems"]:
            problems.append(f"{key}: {len(value)} items, at most {field['maxItems']} ({where})")
        if kind == "array" and field["items"]["type"] == "string" and \
                not all(isinstance(v, str) for v in value):
            problems.append(f"{key}: every item is a string URL ({where})")
    if ("prompt" in body) == ("multi_prompt" in body):
        problems.append(f"prompt xor multi_prompt: \"{page['properties']['prompt']['doc']}\"")
    return problems


def test_a_4_0_shot_with_a_first_frame_2_keyframes_and_a_last_frame_of_20_s(compile_one):
    """Issue 25: it compiles on fal with the keyframes in order, at 1080p by default."""
    job = compile_one(shot("kling-4", first_frame="assets/start.png",
                           keyframes=["from:opening", "https://example.com/k2.png"],
                           last_frame=IMG2, duration=20))
    assert endpoint_id(job.model, job.request) == V4_I2V
    assert job.request == {
        "prompt": "A quiet harbour at dawn", "start_image_url": "kc-input:file:assets/start.png",
        "middle_image_urls": ["kc-input:frame:opening:last", "https://example.com/k2.png"],
        "end_image_url": IMG2, "duration": 20, "resolution": "1080p"}
    assert [ref.key for ref in job.inputs] == ["file:assets/start.png", "frame:opening:last"]
    assert job.cost_usd == Decimal("4.700")  # 20 s x $0.235 (1080p)
    assert check_v4(V4_I2V, sent(job)) == []


def test_a_4_0_shot_of_31_s_is_refused_where_its_duration_is():
    assert diagnostics(shot("kling-4", first_frame=IMG, keyframes=[IMG, IMG2],
                            last_frame=IMG2, duration=31)) == [
        "storyboard.yaml:13:5: error: duration 31 s is out of range: fal model 'kling-4' makes "
        "3-30 s\n  hint: set a duration from 3 to 30 seconds"]


def test_9_middle_keyframes_are_refused_at_the_ninth():
    from kling_compose.errors import Location
    from kling_compose.model import FrameSource

    frames = [FrameSource("url", f"https://example.com/k{n}.png",
                          location=Location("storyboard.yaml", 40 + n, 9)) for n in range(9)]
    [error] = diagnostics(shot("kling-4", first_frame=IMG, keyframes=frames, duration=20))
    assert error.startswith(
        "storyboard.yaml:48:9: error: 9 keyframes given; fal model 'kling-4' takes at most 8 "
        "between the first and last frame\n  hint: remove 1, or split the shot in two chained "
        "shots (fal's Kling 4.0 schema pages")
    assert diagnostics(shot("kling-4", first_frame=IMG, keyframes=frames[:8], duration=20)) == []


def test_keyframes_and_an_end_frame_need_a_first_frame_on_4_0():
    assert diagnostics(shot("kling-4", keyframes=[IMG])) == [
        "storyboard.yaml:33:5: error: keyframes need a first_frame on fal model 'kling-4'\n  "
        "hint: add a first_frame (a path, URL or `{from: previous, frame: last}`): the keyframes "
        "are spaced evenly from it to the end of the clip"]
    assert diagnostics(shot("kling-4", last_frame=IMG)) == [
        "storyboard.yaml:18:5: error: last_frame needs a first_frame on fal\n  hint: fal takes "
        "end_image_url only on 4.0's image-to-video, whose start_image_url is required"]


@pytest.mark.parametrize("alias", sorted(set(MODELS) - {"kling-4"}))
def test_only_4_0_takes_keyframes(alias):
    [error] = diagnostics(shot(alias, first_frame=IMG, keyframes=[IMG2]))
    assert error.startswith(f"storyboard.yaml:33:5: error: fal model '{alias}' does not support "
                            "keyframes")


def test_4_0_text_to_video_at_720p_and_its_price(compile_one):
    job = compile_one(shot("kling-4", resolution="720p", aspect="9:16", duration=30))
    assert endpoint_id(job.model, job.request) == V4_T2V
    assert job.request == {"prompt": "A quiet harbour at dawn", "duration": 30,
                           "resolution": "720p", "aspect_ratio": "9:16"}
    assert job.cost_usd == Decimal("4.710")  # 30 s x $0.157
    assert check_v4(V4_T2V, sent(job)) == []
    default = compile_one(shot("kling-4"))
    assert default.request == {"prompt": "A quiet harbour at dawn", "duration": 5,
                               "resolution": "1080p"}
    assert default.cost_usd == Decimal("1.175")


def test_4_0_refuses_4k_multi_prompt_elements_and_21_9():
    [error] = diagnostics(shot("kling-4", resolution="4k"))
    assert "fal model 'kling-4' renders 1080p or 720p, not 4k" in error
    [error] = diagnostics(shot("kling-4", multi_prompt=[("Walks in", 3), ("Walks out", 4)]))
    assert error.startswith("storyboard.yaml:11:5: error: fal model 'kling-4' does not support "
                            "multi_prompt")  # KlingV4Shot's fields are not documented
    [error] = diagnostics(shot("kling-4", prompt_text="@hero", elements=[hero()],
                               first_frame=IMG))
    assert error.startswith("storyboard.yaml:22:5: error: fal model 'kling-4' does not support "
                            "elements")
    [error] = diagnostics(shot("kling-4", aspect="21:9"))
    assert "aspect 21:9 is not available on fal model 'kling-4'" in error


def test_4_0_has_sound_always(compile_one):
    job = compile_one(shot("kling-4", audio=False, negative_prompt="blur"))
    assert "generate_audio" not in job.request and "negative_prompt" not in job.request
    assert [str(w).split("\n")[0] for w in job.warnings] == [
        "storyboard.yaml:12:5: warning: negative_prompt is not sent: fal model 'kling-4' has no "
        "such setting",
        "storyboard.yaml:16:5: warning: audio: false is not honoured: fal model 'kling-4' always "
        "makes sound"]


V4_CASES = {
    "t2v": shot("kling-4"),
    "t2v 720p 3 s 1:1": shot("kling-4", resolution="720p", duration=3, aspect="1:1"),
    "t2v spoken only": shot("kling-4", prompt_text=None,
                            dialogue=[line("narrator", "The tide turns.")]),
    "i2v first frame": shot("kling-4", first_frame="from:opening", duration=10),
    "i2v eight keyframes": shot("kling-4", first_frame=IMG, keyframes=[IMG2] * 8,
                                last_frame=IMG, duration=30, resolution="720p"),
    "i2v end frame, size": shot("kling-4", first_frame=IMG, last_frame=IMG2,
                                size=(1080, 1920)),
}


@pytest.mark.parametrize("case", V4_CASES.values(), ids=list(V4_CASES))
def test_4_0_bodies_keep_to_fal_s_4_0_pages(compile_one, case):
    job = compile_one(case)
    endpoint = endpoint_id(job.model, job.request)
    problems = check_v4(endpoint, sent(job))
    if "aspect_ratio" in job.request and job.request["aspect_ratio"] == "1:1":
        # 1:1 is past where the stored enum is cut (every other Kling tier on fal has it)
        assert problems == ["aspect_ratio: '1:1' is not one of ['auto', '16:9', '9:16'] (the "
                            f"stored enum is cut) ({PAGES['endpoints'][endpoint]['page']})"]
    else:
        assert problems == [], "\n".join(problems)


def test_the_4_0_checker_finds_misreadings():
    assert any("duration: '5' is not an integer" in p
               for p in check_v4(V4_T2V, {"prompt": "x", "duration": "5"}))
    assert any("31 is outside 3-30" in p for p in check_v4(V4_T2V, {"prompt": "x",
                                                                     "duration": 31}))
    assert any("9 items, at most 8" in p for p in check_v4(
        V4_I2V, {"prompt": "x", "start_image_url": IMG, "middle_image_urls": [IMG] * 9}))
    assert any("start_image_url: missing" in p for p in check_v4(V4_I2V, {"prompt": "x"}))
    assert any("declares no 'generate_audio'" in p for p in check_v4(
        V4_T2V, {"prompt": "x", "generate_audio": True}))
    assert any("'4k' is not one of" in p for p in check_v4(V4_T2V, {"prompt": "x",
                                                                    "resolution": "4k"}))
    assert any("declares no 'middle_image_urls'" in p for p in check_v4(
        V4_T2V, {"prompt": "x", "middle_image_urls": [IMG]}))


def test_the_4_0_limits_are_the_pages():
    spec = MODELS["kling-4"]
    t2v, i2v = (PAGES["endpoints"][e]["properties"] for e in (V4_T2V, V4_I2V))
    assert spec.durations_s == (t2v["duration"]["minimum"], t2v["duration"]["maximum"])
    assert spec.resolutions[0] == t2v["resolution"]["default"]
    assert set(spec.resolutions) == set(t2v["resolution"]["enum"])
    assert spec.max_keyframes == i2v["middle_image_urls"]["maxItems"] == 8
    assert "(max 8)" in i2v["middle_image_urls"]["doc"]
    assert "API access is coming soon" in PAGES["source"]["branded_pages"]
    assert spec.prices == {"720p": Decimal("0.157"), "1080p": Decimal("0.235")}


# -- fal's image limits on 4.0 and Turbo, before anything is paid (the independent review) ---


def _image(tmp_path, name, size):
    from PIL import Image

    path = tmp_path / name
    Image.new("RGB", size, (20, 60, 90)).save(path)
    return str(path)


@pytest.mark.parametrize("model", ["kling-4", "kling-3-turbo-std"])
def test_a_frame_fal_would_refuse_is_an_error_at_the_frame(tmp_path, model):
    good = _image(tmp_path, "good.png", (640, 360))
    wide = _image(tmp_path, "wide.png", (1200, 300))  # 4:1, outside 2:5-5:2
    small = _image(tmp_path, "small.png", (200, 200))
    assert diagnostics(shot(model, first_frame=good)) == []
    for bad, words in ((wide, "is 1200x300"), (small, "is 200x200")):
        [error] = diagnostics(shot(model, first_frame=bad))
        assert f"first_frame {bad} {words}: fal takes images of at least 300 px" in error


def test_a_keyframe_that_is_a_clip_or_too_wide_is_refused(tmp_path):
    good = _image(tmp_path, "good.png", (640, 360))
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    wide = _image(tmp_path, "wide.png", (1200, 300))
    errors = diagnostics(shot("kling-4", first_frame=good, keyframes=[good, str(clip), wide]))
    assert any(f"keyframes {clip} is not an image fal can read" in e for e in errors), errors
    assert any(f"keyframes {wide} is 1200x300" in e for e in errors), errors


def test_turbo_takes_only_png_and_jpeg(tmp_path):
    from PIL import Image

    webp = tmp_path / "start.webp"
    Image.new("RGB", (640, 360)).save(webp)
    [error] = diagnostics(shot("kling-3-turbo-pro", first_frame=str(webp)))
    assert "fal takes .jpeg, .jpg, .png images here" in error


def test_a_4_0_size_of_720_lines_picks_720p_and_its_price(compile_one):
    """The review: size 1280x720 on kling-4 was sent as fal's default 1080p, at $0.235/s."""
    job = compile_one(shot("kling-4", size=(1280, 720), duration=5))
    assert job.request["resolution"] == "720p" and job.cost_usd == Decimal("0.157") * 5
    job = compile_one(shot("kling-4", size=(1920, 1080), duration=5))
    assert job.request["resolution"] == "1080p" and job.cost_usd == Decimal("0.235") * 5
    job = compile_one(shot("kling-4", size=(1280, 720), resolution="1080p", duration=5))
    assert job.request["resolution"] == "1080p"  # an explicit resolution wins
