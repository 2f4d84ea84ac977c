"""The requests compiled for fal, checked against fal's own published types (issue 21, "Keep
the simulator from agreeing with a misreading").

fal's official JS client (npm `@fal-ai/client`) ships generated endpoint types. Their input
types for the endpoints this project compiles to were transcribed mechanically by
fal_types/extract_fal_types.py (the command is in each fixture's "generated_by"):

- fal_types/kling_v3.json: fal-ai/fal-js@381105e138b85502b528fb8f6c16d909e30e462a
  libs/client/src/types/endpoints.ts (@fal-ai/client 1.10.1): EndpointTypeMap ->
  KlingVideoV3ProTextToVideoInput = KlingVideoV34kTextToVideoInput,
  KlingVideoV3ProImageToVideoInput = KlingVideoV34kImageToVideoInput,
  KlingV3MultiPromptElement, KlingV3ComboElementInput (standard aliases the same types);
  fal-ai/kling-video/create-voice -> KlingVideoCreateVoiceInput = CreateVoiceInput; and the
  rest of the Kling 3.0 family the project compiles to (issue 25): v3/4k (the base type),
  o3/{standard,pro,4k}/{text-to-video,image-to-video,reference-to-video} -> O3ProTextToVideo-
  Input, O3ProImageToVideoInput, O3ProReferenceVideoI2VInput, and v3/turbo/{standard,pro}/
  {text-to-video,image-to-video} -> KlingVideoV3TurboPro{TextToVideo,ImageToVideo}Input.
- fal_types/eve_kling_v3_standard_i2v_openapi.json: fal's queue OpenAPI for
  fal-ai/kling-video/v3/standard/image-to-video as saved in
  edenartlab/eve@276bd4effa26c56eb74d738e1f6492c212d593b3 eve/tools/kling_v3/openapi.json:
  the limits the TypeScript cannot carry (maxLength, minimum, maximum). It describes the
  standard endpoint; fal-js gives pro and standard one input type, so its limits are read as
  the pro endpoint's too.

Each compiled body (placeholders substituted with URLs, as the engine sends it) must declare
only fields fal's type for its endpoint declares, with values of the declared type (string
literal unions as enums, numbers, booleans, nested element and multi_prompt shapes), carry
every field fal marks required, and keep to the rules fal's JSDoc states in prose.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kling_compose.plan import substitute
from kling_compose.providers.base import PLACEHOLDER_PREFIX
from kling_compose.providers.fal import (
    DEFAULT_AUDIO,
    DEFAULT_DURATION_S,
    KEY_CHECK_ENDPOINT_ID,
    MODELS,
    endpoint_id,
)

from .factory import diagnostics, element, line, make_shot, segment

HERE = Path(__file__).parent / "fal_types"
TYPES = json.loads((HERE / "kling_v3.json").read_text())
OPENAPI = json.loads((HERE / "eve_kling_v3_standard_i2v_openapi.json").read_text())
OPENAPI_INPUT = OPENAPI["endpoints"]["fal-ai/kling-video/v3/standard/image-to-video"]
TS = f"{TYPES['source']['repo']}@{TYPES['source']['commit'][:8]}:{TYPES['source']['path']}"
OA = f"{OPENAPI['source']['repo']}@{OPENAPI['source']['commit'][:8]}:{OPENAPI['source']['path']}"

IMG = "https://example.com/a.png"
IMG2 = "https://example.com/b.png"
VID = "https://example.com/v.mp4"
PNG_DATA = "data:image/png;base64,iVBORw0KGgo="
T2V = "fal-ai/kling-video/v3/pro/text-to-video"
I2V = "fal-ai/kling-video/v3/pro/image-to-video"


def fal_shot(**fields):
    return make_shot(provider="fal", **fields)


# -- the checker: a value against a schema of the fixture -----------------------------------


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
            dict: "object", type(None): "null"}.get(type(value), type(value).__name__)


def _matches(value: Any, schema: dict, path: str) -> list[str]:
    """Problems of `value` against one schema node ([] when it conforms)."""
    if "any_of" in schema:
        tries = [_matches(value, s, path) for s in schema["any_of"]]
        return [] if any(not t for t in tries) else min(tries, key=len)
    if "ref" in schema:
        return check_object(value, schema["ref"], path)
    kind = schema["type"]
    ok = {"string": isinstance(value, str), "boolean": isinstance(value, bool),
          "number": isinstance(value, (int, float)) and not isinstance(value, bool),
          "array": isinstance(value, list), "null": value is None,
          "object": isinstance(value, dict),
          "file": False}.get(kind, False)  # a JSON body carries no Blob/File; unknown: never
    if not ok:
        return [f"{path}: {value!r} is a {_type_name(value)}, fal's type is {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: {value!r} is not one of fal's literals {schema['enum']}"]
    if kind == "array":
        return [p for n, v in enumerate(value)
                for p in _matches(v, schema["items"], f"{path}[{n}]")]
    if kind == "object" and "fields" in schema:
        return _check_fields(value, schema["fields"], "(inline object)", path)
    return []


def _check_fields(value: dict, fields: dict, name: str, path: str) -> list[str]:
    problems = []
    for key, item in value.items():
        field = fields.get(key)
        where = f"{path}.{key}" if path else key
        if field is None:
            problems.append(f"{where}: {item!r} is sent, but fal's {name} declares no "
                            f"{key!r} (it declares {sorted(fields)}; {TS})")
            continue
        for p in _matches(item, field["schema"], where):
            problems.append(f"{p} (`{key}{'?' if field['optional'] else ''}: {field['ts']}`, "
                            f"{name}, {TS} line {field['line']})")
    for key, field in fields.items():
        if not field["optional"] and key not in value:
            problems.append(f"{path + '.' if path else ''}{key}: missing; fal's {name} requires "
                            f"it (`{key}: {field['ts']}`, {TS} line {field['line']})")
    return problems


def check_object(value: Any, type_name: str, path: str = "") -> list[str]:
    """Problems of `value` against fal's object type `type_name`."""
    if not isinstance(value, dict):
        return [f"{path}: {value!r} is a {_type_name(value)}, fal's {type_name} is an object"]
    return _check_fields(value, TYPES["types"][type_name]["fields"], type_name, path)


def check_body(endpoint: str, body: dict) -> list[str]:
    """Problems of a request body against the input type of `endpoint` in fal's types."""
    assert endpoint in TYPES["endpoints"], f"{endpoint} is not in the fixture ({TS})"
    return check_object(body, TYPES["endpoints"][endpoint]["type"])


def _doc(type_name: str, field: str) -> str:
    return TYPES["types"][type_name]["fields"][field].get("doc", "")


# The rules fal's types state only in their JSDoc, each with the sentence it rests on; the
# sentence must still be in the fixture, so a changed wording sends the reader back to fal.
ELEMENT = "KlingV3ComboElementInput"
DOC_RULES = {
    "prompt xor multi_prompt": ("KlingVideoV34kImageToVideoInput", "prompt",
                                "Either prompt or multi_prompt must be provided, but not both."),
    "one video element": (ELEMENT, "video_url",
                          "A request can only have one element with a video."),
    "1-3 reference images": (ELEMENT, "reference_image_urls",
                             "1-3 images supported. At least one image is required."),
    "image set or video": ("KlingVideoV34kImageToVideoInput", "elements",
                           "Each example can either be an image set (frontal + reference "
                           "images) or a video."),
}


def check_doc_rules(body: dict) -> list[str]:
    problems = []

    def cite(rule):
        type_name, field, sentence = DOC_RULES[rule]
        line = TYPES["types"][type_name]["fields"][field]["line"]
        return f'fal: "{sentence}" ({type_name}.{field}, {TS} line {line})'

    if ("prompt" in body) == ("multi_prompt" in body):
        both = "prompt" in body
        problems.append(f"sends {'both' if both else 'neither'} prompt {'and' if both else 'nor'}"
                        f" multi_prompt; {cite('prompt xor multi_prompt')}")
    items = body.get("elements", [])
    if sum("video_url" in e for e in items) > 1:
        problems.append(f"{sum('video_url' in e for e in items)} elements with a video; "
                        + cite("one video element"))
    for n, item in enumerate(items):
        refs = item.get("reference_image_urls")
        if refs is not None and not 1 <= len(refs) <= 3:
            problems.append(f"elements[{n}].reference_image_urls has {len(refs)} images; "
                            + cite("1-3 reference images"))
        image_set = "frontal_image_url" in item and bool(refs)
        video = "video_url" in item
        # voice_id binds a voice to the element whichever it is (its JSDoc names no kind)
        if image_set == video or (video and len(set(item) - {"voice_id"}) > 1):
            problems.append(f"elements[{n}] is {item!r}: neither an image set (frontal_image_url"
                            " + reference_image_urls) nor a video alone; "
                            + cite("image set or video"))
    return problems


def check_openapi_limits(body: dict) -> list[str]:
    """The limits of fal's queue OpenAPI (eve's copy) the TypeScript types cannot carry."""

    def limits(value, schema, path):
        problems = []
        if "enum" in schema and value not in schema["enum"]:
            problems.append(f"{path}: {value!r} is not in the OpenAPI enum {schema['enum']}")
        if "maxLength" in schema and isinstance(value, str) and len(value) > schema["maxLength"]:
            problems.append(f"{path}: {len(value)} characters, OpenAPI maxLength "
                            f"{schema['maxLength']}")
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{path}: {value!r} < OpenAPI minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{path}: {value!r} > OpenAPI maximum {schema['maximum']}")
        if "items" in schema:
            for n, item in enumerate(value):
                problems += limits(item, schema["items"], f"{path}[{n}]")
        if "properties" in schema:
            for key, item in value.items():
                if key in schema["properties"]:
                    problems += limits(item, schema["properties"][key], f"{path}.{key}")
        return problems

    return [f"{p} ({OA})" for p in limits(body, OPENAPI_INPUT, "body")]


# -- the bodies as sent ---------------------------------------------------------------------


def sent(job) -> dict:
    """The body the engine sends: placeholders replaced with CDN URLs, through JSON."""
    refs = {ref.placeholder: f"https://v3.fal.media/files/kc/{n}-{ref.media}"
            for n, ref in enumerate(job.inputs)}
    # a voice made by the run: its create-voice answer's voice_id (fal's example id)
    refs |= {f"{PLACEHOLDER_PREFIX}voice:{e.name}": "829877809978941442"
             for e in job.shot.elements}
    body = json.loads(json.dumps(substitute(job.request, refs)))
    assert PLACEHOLDER_PREFIX not in json.dumps(body), body
    return body


def hero():
    return element("hero", frontal_image="assets/hero.png",
                   images=["assets/hero-left.png", IMG, "from:opening"])


def prop():
    return element("lamp", frontal_image=PNG_DATA)  # frontal only: sent as its reference


def dancer():
    return element("dancer", videos=["assets/dance.mp4"])


def mara():  # speaks in a voice made of her sample (create-voice, at run time)
    return element("mara", frontal_image=IMG, voice="https://example.com/mara.wav")


def theo():  # speaks in a voice his fal account has
    return element("theo", frontal_image=IMG2, voice_id="829877809978941442")


TALK = [line("mara", "You came back.", "quietly"), line("theo", "I never left."),
        line("narrator", "She did not believe him.")]


CASES = {
    # text-to-video: every field it takes
    "t2v minimal": (fal_shot(), T2V),
    "t2v aspect 16:9": (fal_shot(aspect="16:9"), T2V),
    "t2v aspect 9:16": (fal_shot(aspect="9:16"), T2V),
    "t2v aspect 1:1": (fal_shot(aspect="1:1"), T2V),
    "t2v size 1920x1080": (fal_shot(size=(1920, 1080)), T2V),
    "t2v size 1080x1920": (fal_shot(size=(1080, 1920)), T2V),
    "t2v size 1440x1440": (fal_shot(size=(1440, 1440)), T2V),
    **{f"t2v duration {d}": (fal_shot(duration=d), T2V) for d in range(3, 16)},
    "t2v audio on": (fal_shot(audio=True, duration=5), T2V),
    "t2v audio off": (fal_shot(audio=False), T2V),
    "t2v negative prompt, cfg 0.5": (fal_shot(negative_prompt="blur, text", cfg_scale=0.5), T2V),
    "t2v cfg 0": (fal_shot(cfg_scale=0.0), T2V),
    "t2v cfg 1 (an int in YAML)": (fal_shot(cfg_scale=1), T2V),
    "t2v longest prompt": (fal_shot(prompt_text="a" * 2500, negative_prompt="n" * 2500), T2V),
    "t2v multi_prompt": (fal_shot(multi_prompt=[("The drummer starts", 3), ("Claps", 4),
                                                ("The crowd sings", 8)], audio=True,
                                  aspect="9:16", negative_prompt="blur"), T2V),
    "t2v multi_prompt 5 x 3 s": (fal_shot(multi_prompt=[("A step", 3)] * 5), T2V),
    # image-to-video: frames, elements, multi_prompt
    "i2v start URL": (fal_shot(first_frame=IMG, duration=10), I2V),
    "i2v start data URI, aspect dropped": (fal_shot(first_frame=PNG_DATA, aspect="9:16"), I2V),
    "i2v start file, end chain": (fal_shot(first_frame="assets/start.png",
                                           last_frame="from:opening", audio=False,
                                           cfg_scale=0.3, negative_prompt="blur"), I2V),
    "i2v start chain, end URL": (fal_shot(first_frame="from:opening", last_frame=IMG2), I2V),
    "i2v image elements": (fal_shot(prompt_text="@hero lifts @lamp", elements=[hero(), prop()],
                                    first_frame=IMG, duration=15), I2V),
    "i2v image and video elements": (fal_shot(prompt_text="@hero dances like @dancer",
                                              elements=[hero(), dancer()],
                                              first_frame="assets/start.png",
                                              last_frame=IMG2), I2V),
    "i2v three elements, explicit list": (fal_shot(prompt_text="@hero waits",
                                                   elements=[hero(), prop(), dancer()],
                                                   first_frame=IMG), I2V),
    "i2v multi_prompt with elements": (fal_shot(multi_prompt=[("@hero walks in", 5),
                                                              ("@dancer spins", 6)],
                                                elements=[hero(), dancer()],
                                                first_frame="from:opening", audio=False), I2V),
    "i2v video element URL": (fal_shot(prompt_text="@d", first_frame=IMG,
                                       elements=[element("d", videos=[VID])]), I2V),
    # dialogue: two voices bound to their elements, a narrator, a voiced video element
    "i2v dialogue, two voices": (fal_shot(prompt_text="@mara pours tea for @theo",
                                          elements=[mara(), theo()], first_frame=IMG,
                                          dialogue=TALK, audio=True), I2V),
    "i2v multi_prompt dialogue": (fal_shot(multi_prompt=[
        segment("@mara at the door", 5, line("mara", "Then stay.")),
        segment("@theo sits", 5, line("theo", "I will.", "softly"))],
        elements=[mara(), theo()], first_frame=IMG), I2V),
    "i2v voiced video element": (fal_shot(prompt_text="@d sings", first_frame=IMG, elements=[
        element("d", videos=[VID], voice_id="829877809978941443")],
        dialogue=[line("d", "La la la.")]), I2V),
    "t2v narrator only": (fal_shot(dialogue=[line("narrator", "It rained all week.")]), T2V),
}


@pytest.mark.parametrize("shot, endpoint", CASES.values(), ids=list(CASES))
def test_compiled_request_matches_fals_types(compile_one, shot, endpoint):
    job = compile_one(shot)
    assert endpoint_id(job.model, job.request) == endpoint
    body = sent(job)
    problems = check_body(endpoint, body) + check_doc_rules(body)
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("shot, endpoint", CASES.values(), ids=list(CASES))
def test_compiled_request_keeps_to_fals_openapi_limits(compile_one, shot, endpoint):
    problems = check_openapi_limits(sent(compile_one(shot)))
    assert problems == [], "\n".join(problems)


def test_the_cases_send_every_field_fal_declares_that_the_project_sends(compile_one):
    """The cases above exercise every field fal.py writes, each element field included (a
    speaking element's voice_id)."""
    seen: dict[str, set] = {T2V: set(), I2V: set(), "element": set(), "segment": set()}
    for shot, endpoint in CASES.values():
        body = sent(compile_one(shot))
        seen[endpoint] |= set(body)
        for item in body.get("elements", []):
            seen["element"] |= set(item)
        for item in body.get("multi_prompt", []):
            seen["segment"] |= set(item)
        if "shot_type" in body:
            assert body["shot_type"] == "customize"
    declared = {e: set(TYPES["types"][TYPES["endpoints"][e]["type"]]["fields"])
                for e in (T2V, I2V)}
    assert seen[T2V] == declared[T2V]
    assert seen[I2V] == declared[I2V] - {"aspect_ratio"}  # not declared for image-to-video
    assert seen["element"] == set(TYPES["types"][ELEMENT]["fields"])
    assert seen["segment"] == set(TYPES["types"]["KlingV3MultiPromptElement"]["fields"])


def test_provider_options_that_fal_declares_pass_through_typed(compile_one):
    """provider_options is merged into the body as written: a field fal declares stays typed.
    (eve's older OpenAPI copy lists only shot_type "customize"; fal-js adds "intelligent".)"""
    job = compile_one(fal_shot(provider_options={"shot_type": "intelligent"}, first_frame=IMG))
    body = sent(job)
    assert body["shot_type"] == "intelligent"
    assert check_body(endpoint_id(job.model, job.request), body) == []


# -- elements fal cannot take as they are written ----------------------------------------


@pytest.mark.parametrize("written", [
    {"id": "my-character-id"},  # a provider-side element id (schema: "Provider element id")
    {"description": "A lighthouse keeper"},  # no media at all
], ids=["provider id only", "description only"])  # fmt: skip
def test_every_element_sent_to_fal_is_an_image_set_or_a_video(compile_one, written):
    """fal's KlingV3ComboElementInput has no id field and its JSDoc asks for an image set or
    a video, at least one reference image. An element the compiler accepts for fal must
    therefore be sent as one, or be refused; an empty `{}` is neither."""
    shot = fal_shot(prompt_text="@keeper rows out", first_frame=IMG,
                    elements=[element("keeper", **written)])
    refused = diagnostics(shot)
    if any(": error: " in d for d in refused):
        return  # refused at compile time: nothing is sent
    body = sent(compile_one(shot))
    problems = check_body(I2V, body) + check_doc_rules(body)
    if problems:
        fields = sorted(TYPES["types"][ELEMENT]["fields"])
        pytest.fail(f"DISAGREEMENT with fal's types: element {written} compiles for fal "
                    f"unrefused to elements={body['elements']!r}; fal's {ELEMENT} declares "
                    f"only {fields} (no id, line {TYPES['types'][ELEMENT]['line']}):\n"
                    + "\n".join(problems), pytrace=False)


# -- the limits the compiler admits, against fal's types ------------------------------------


def _enum(type_name: str, field: str) -> list[str]:
    return TYPES["types"][type_name]["fields"][field]["schema"]["enum"]


# the input types of each family's routes in fal-js (Standard, Pro and 4K share them)
FAMILY_TYPES = {
    "v3": {"text-to-video": "KlingVideoV34kTextToVideoInput",
           "image-to-video": "KlingVideoV34kImageToVideoInput"},
    "o3": {"text-to-video": "O3ProTextToVideoInput", "image-to-video": "O3ProImageToVideoInput",
           "reference-to-video": "O3ProReferenceVideoI2VInput"},
    "turbo": {"text-to-video": "KlingVideoV3TurboProTextToVideoInput",
              "image-to-video": "KlingVideoV3TurboProImageToVideoInput"},
}  # fmt: skip


# fal-js at 381105e (2026-08-02) predates Kling 4.0: its bodies are checked against fal's 4.0
# pages instead (tests/providers/test_fal_family.py, fal_types/kling_v4_pages.json)
TYPED_ALIASES = sorted(a for a, s in MODELS.items() if not s.model_id.endswith("/v4"))


@pytest.mark.parametrize("alias", TYPED_ALIASES)
def test_model_limits_are_within_fals_types(alias):
    from kling_compose.providers.fal import family_of

    spec = MODELS[alias]
    types = FAMILY_TYPES[family_of(spec)]
    t2v = types["text-to-video"]
    low, high = spec.durations_s
    for type_name in types.values():
        assert [str(d) for d in range(low, high + 1)] == _enum(type_name, "duration")
        assert TYPES["types"][type_name]["fields"]["duration"]["default"] == \
            str(DEFAULT_DURATION_S)
    assert set(spec.aspects) <= set(_enum(t2v, "aspect_ratio"))
    segment = [str(d) for d in range(spec.segment_s[0], spec.segment_s[1] + 1)]
    assert set(segment) <= set(_enum("KlingV3MultiPromptElement", "duration"))
    props = OPENAPI_INPUT["properties"]
    assert set(segment) <= set(props["multi_prompt"]["items"]["properties"]["duration"]["enum"])
    assert spec.prompt_chars[1] <= props["prompt"]["maxLength"]
    declared = set().union(*(TYPES["types"][t]["fields"] for t in types.values()))
    if spec.cfg_scale is not None:
        assert "cfg_scale" in declared
        assert props["cfg_scale"]["minimum"] <= spec.cfg_scale[0] <= spec.cfg_scale[1] \
            <= props["cfg_scale"]["maximum"]
    # a storyboard field the model takes needs the body field fal declares for it
    needs = {"negative_prompt": "negative_prompt", "cfg_scale": "cfg_scale",
             "elements": "elements", "last_frame": "end_image_url",
             "reference_images": "image_urls", "multi_prompt": "multi_prompt"}
    for name, body_field in needs.items():
        assert (name in spec.supports) == (body_field in declared), (alias, name)
    if "elements" in spec.supports:
        assert "1-3 images supported" in _doc(ELEMENT, "reference_image_urls")
        assert spec.max_element_images <= 3
    if family_of(spec) == "v3":
        defaults = TYPES["types"][t2v]["fields"]
        assert defaults["generate_audio"]["default"] is DEFAULT_AUDIO


def test_the_fixture_names_its_source_and_every_endpoint_the_project_uses():
    src = TYPES["source"]
    assert (src["package"], src["repo"], src["path"]) == (
        "@fal-ai/client", "fal-ai/fal-js", "libs/client/src/types/endpoints.ts")
    assert src["commit"].startswith("381105e1") and src["commit"] in TYPES["generated_by"]
    from kling_compose.providers.fal import family_of

    used = {KEY_CHECK_ENDPOINT_ID}
    bodies = ({}, {"start_image_url": IMG}, {"image_url": IMG}, {"elements": []})
    for spec in (MODELS[a] for a in TYPED_ALIASES):
        used |= {endpoint_id(spec, body) for body in bodies}
    assert used <= set(TYPES["endpoints"])
    for endpoint in used - {KEY_CHECK_ENDPOINT_ID}:
        spec = next(s for s in MODELS.values() if endpoint.startswith(s.model_id + "/"))
        route = endpoint[len(spec.model_id) + 1:]
        assert TYPES["endpoints"][endpoint]["type"] == FAMILY_TYPES[family_of(spec)][route]
    names = {e: (TYPES["endpoints"][e]["input"], TYPES["endpoints"][e]["type"])
             for e in used if "/v3/pro/" in e or "/v3/standard/" in e}
    assert names == {  # Standard's inputs are Pro's type (one generated type for the tiers)
        T2V: ("KlingVideoV3ProTextToVideoInput", "KlingVideoV34kTextToVideoInput"),
        I2V: ("KlingVideoV3ProImageToVideoInput", "KlingVideoV34kImageToVideoInput"),
        "fal-ai/kling-video/v3/standard/text-to-video":
            ("KlingVideoV3StandardTextToVideoInput", "KlingVideoV34kTextToVideoInput"),
        "fal-ai/kling-video/v3/standard/image-to-video":
            ("KlingVideoV3StandardImageToVideoInput", "KlingVideoV34kImageToVideoInput"),
    }
    for rule, (type_name, field, sentence) in DOC_RULES.items():
        assert sentence in _doc(type_name, field), rule
    assert _doc("KlingVideoV34kTextToVideoInput", "prompt") == _doc(
        "KlingVideoV34kImageToVideoInput", "prompt")
    assert OPENAPI["source"]["commit"].startswith("276bd4ef")
    assert OPENAPI_INPUT["required"] == ["start_image_url"]


# -- the checker itself finds the misreadings it is there for -------------------------------


@pytest.mark.parametrize("endpoint, body, expected", [
    (T2V, {"prompt": "x", "duration": 5}, "duration: 5 is a number, fal's type is string"),
    (T2V, {"prompt": "x", "duration": "16"}, "'16' is not one of fal's literals"),
    (T2V, {"prompt": "x", "aspect_ratio": "4:3"}, "'4:3' is not one of fal's literals"),
    (T2V, {"prompt": "x", "generate_audio": "true"}, "is a string, fal's type is boolean"),
    (T2V, {"prompt": "x", "cfg_scale": "0.5"}, "is a string, fal's type is number"),
    (T2V, {"prompt": "x", "start_image_url": IMG}, "declares no 'start_image_url'"),
    (T2V, {"prompt": "x", "mode": "pro"}, "declares no 'mode'"),
    (I2V, {"prompt": "x"}, "start_image_url: missing; fal's KlingVideoV34kImageToVideoInput"),
    (I2V, {"prompt": "x", "start_image_url": IMG, "aspect_ratio": "16:9"},
     "declares no 'aspect_ratio'"),
    (I2V, {"start_image_url": IMG, "multi_prompt": [{"duration": "3"}]},
     "multi_prompt[0].prompt: missing"),
    (I2V, {"start_image_url": IMG, "multi_prompt": [{"prompt": "a", "duration": 3}]},
     "multi_prompt[0].duration: 3 is a number"),
    (I2V, {"prompt": "x", "start_image_url": IMG, "elements": [{"image_url": IMG}]},
     "elements[0].image_url: 'https://example.com/a.png' is sent, but fal's "
     "KlingV3ComboElementInput declares no 'image_url'"),
    (I2V, {"prompt": "x", "start_image_url": IMG, "elements": [{"reference_image_urls": IMG}]},
     "is a string, fal's type is array"),
])  # fmt: skip
def test_the_checker_finds_type_misreadings(endpoint, body, expected):
    problems = check_body(endpoint, body)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("body, expected", [
    ({"prompt": "x", "multi_prompt": []}, "both prompt and multi_prompt"),
    ({"duration": "5"}, "neither prompt nor multi_prompt"),
    ({"prompt": "x", "elements": [{"video_url": VID}, {"video_url": VID}]},
     "2 elements with a video"),
    ({"prompt": "x", "elements": [{"frontal_image_url": IMG, "reference_image_urls": []}]},
     "has 0 images"),
    ({"prompt": "x", "elements": [{"frontal_image_url": IMG,
                                   "reference_image_urls": [IMG] * 4}]}, "has 4 images"),
    ({"prompt": "x", "elements": [{}]}, "neither an image set"),
    ({"prompt": "x", "elements": [{"video_url": VID, "frontal_image_url": IMG}]},
     "neither an image set"),
])  # fmt: skip
def test_the_checker_finds_doc_rule_breaks(body, expected):
    problems = check_doc_rules(body)
    assert any(expected in p for p in problems), problems


def test_the_checker_finds_openapi_limit_breaks():
    body = {"prompt": "p" * 2501, "cfg_scale": 1.5, "shot_type": "intelligent",
            "multi_prompt": [{"prompt": "a", "duration": "2"}]}
    text = "\n".join(check_openapi_limits(body))
    for expected in ("body.prompt: 2501 characters", "body.cfg_scale: 1.5 > OpenAPI maximum",
                     "body.shot_type: 'intelligent' is not in the OpenAPI enum",
                     "body.multi_prompt[0].duration: '2' is not in the OpenAPI enum"):
        assert expected in text


# -- voices (issue 24) ----------------------------------------------------------------------

CREATE_VOICE_ENDPOINT = "fal-ai/kling-video/create-voice"


def test_a_voice_request_is_fals_create_voice_input(compile_one):
    """The body of the `voice` task is `CreateVoiceInput` ({voice_url}: "Supports .mp3/.wav
    audio or .mp4/.mov video. Duration must be 5-30 seconds"), sent to the endpoint fal-js maps
    it to; its answer's `voice_id` (`CreateVoiceOutput`) is what the generations send."""
    from kling_compose.providers import PROVIDERS
    from kling_compose.providers.fal import CREATE_VOICE, VOICE_PRICE_USD

    assert CREATE_VOICE == CREATE_VOICE_ENDPOINT
    fal = PROVIDERS["fal"]
    body = fal.voice_request(mara(), lambda source, media: source.value)
    assert body == {"voice_url": "https://example.com/mara.wav"}
    assert check_body(CREATE_VOICE_ENDPOINT, body) == []
    entry = TYPES["endpoints"][CREATE_VOICE_ENDPOINT]
    assert (entry["input"], entry["type"]) == ("KlingVideoCreateVoiceInput", "CreateVoiceInput")
    doc = TYPES["types"]["CreateVoiceInput"]["fields"]["voice_url"]["doc"]
    assert ".mp3/.wav audio or .mp4/.mov video" in doc and "5-30 seconds" in doc
    assert fal.voice_cost(body) == VOICE_PRICE_USD == __import__("decimal").Decimal("0.007")


def test_a_speaking_element_sends_its_voice_id_as_fal_types_bind_it(compile_one):
    """`KlingV3ComboElementInput.voice_id`: "The voice will be binded to the element and
    references to this element will use the binded voice"; at most 2 voices per task."""
    job = compile_one(CASES["i2v dialogue, two voices"][0])
    assert [e["voice_id"] for e in job.request["elements"]] == [
        f"{PLACEHOLDER_PREFIX}voice:mara", "829877809978941442"]  # made by the run; as written
    assert "binded voice" in _doc(ELEMENT, "voice_id")
    # the current types have no top-level voice_ids on v3 (eve's older copy had one)
    assert "voice_ids" not in TYPES["types"][TYPES["endpoints"][I2V]["type"]]["fields"]
    assert "voice_ids" in OPENAPI_INPUT["properties"]


def test_the_fal_golden_requests_keep_to_fals_types():
    """The golden bodies (tests/cases/golden/fal-*), the dialogue case's voice ids included,
    as the engine sends them: every field declared and typed, fal's prose rules kept."""
    golden = Path(__file__).parent.parent / "cases" / "golden"
    cases = sorted(golden.glob("fal-*/request.json"))
    assert len(cases) >= 2
    for path in cases:
        body = json.loads(path.read_text().replace(f"{PLACEHOLDER_PREFIX}voice:mara",
                                                   "829877809978941443"))
        endpoint = I2V if "start_image_url" in body else T2V
        problems = check_body(endpoint, body) + check_doc_rules(body)
        assert problems == [], (path.parent.name, problems)
