"""`KlingProvider`: Kling's own compile-time rules, the request bodies (the 3.0 spec's field
tables) and their cost in resource-pack units (3.0 spec, "Prepaid Resource Packs")."""

from __future__ import annotations

from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any, Mapping
from urllib.parse import urlsplit

from .. import dialogue, rules
from ...errors import Diagnostic
from ...model import Element, FrameSource, Prompt, ResolvedShot
from ..base import PLACEHOLDER_PREFIX, ModelSpec, Ref, image_size
from . import api
from .api import SPEC, KlingTasks
from .models import (
    ACCEPTED_KINDS,
    DEFAULT_DURATION_S,
    ELEMENT_DESCRIPTION_CHARS,
    ELEMENT_IMAGES,
    ELEMENT_NAME_CHARS,
    ELEMENT_TAGS,
    IMAGE_BYTES,
    IMAGE_MIMES,
    IMAGE_MIN_PX,
    IMAGE_RATIO,
    IMAGE_SUFFIXES,
    MODES,
    OMNI_MODEL,
    OMNI_REFERENCES,
    RESOLUTIONS,
    SEGMENT_CHARS,
    VIDEO_INPUT_S,
    VOICE_NAME_CHARS,
    VOICES,
    _OTHER_IMAGE_SUFFIXES,
    _OTHER_VIDEO_SUFFIXES,
)

def element_placeholder(name: str) -> str:
    """What a generation's `element_list` holds for an element created by the run."""
    return f"{PLACEHOLDER_PREFIX}element:{name}"


class KlingProvider(KlingTasks):
    """Builds official Kling API bodies (kling-v3, kling-v3-omni) and prices them in units."""

    spec = SPEC

    def check(self, shot: ResolvedShot, spec: ModelSpec) -> list[Diagnostic]:
        omni = spec.model_id == OMNI_MODEL
        diags = rules.check_source_kinds(shot, self.name, ACCEPTED_KINDS)
        diags += _check_frames(shot, omni)
        diags += _check_multi_shot_frames(shot, omni)
        diags += _check_segments(shot, self.prompt_text)
        diags += _check_elements(shot)
        diags += _check_options(shot, omni)
        diags += _check_images(shot)
        diags += _check_videos(shot)
        if omni:
            diags += _check_omni(shot)
        diags += _check_size(shot, spec)
        diags += _check_voices(shot, omni, self.name)
        return diags

    def prompt_text(self, shot: ResolvedShot, prompt: Prompt) -> str:
        """The prompt as sent: `@name` becomes `<<<element_N>>>`, N its place in
        element_list (3.0 spec: "Specify a element ... such as <<<element_1>>>"); its lines
        follow, `[<<<element_N>>>, tone]: "words"` (providers/dialogue.py)."""
        numbers = {e.name: n for n, e in enumerate(shot.elements, 1)}
        text = prompt.render(lambda name: f"<<<element_{numbers[name]}>>>")
        speaker = dialogue.speaker_of(shot, lambda n, e: f"<<<element_{n}>>>")
        return dialogue.spoken(text, dialogue.lines_of(shot, prompt), speaker)

    def payload(self, shot: ResolvedShot, spec: ModelSpec, ref: Ref) -> dict[str, Any]:
        # NOTE: the key order follows the 3.0 spec's field tables.
        model, mode = MODES[spec.alias]
        if model == OMNI_MODEL:
            return self._omni(shot, mode, ref)
        body: dict[str, Any] = {"model_name": model}
        if shot.first_frame is not None:
            body["image"] = image_value(shot.first_frame, ref)
        if shot.last_frame is not None:
            body["image_tail"] = image_value(shot.last_frame, ref)
        body.update(self._shots(shot))
        if shot.negative_prompt is not None:
            body["negative_prompt"] = shot.negative_prompt
        if shot.elements:
            body["element_list"] = [{"element_id": element_id(e)} for e in shot.elements]
        body["sound"] = "on" if shot.audio else "off"
        body["mode"] = mode
        aspect = _aspect_ratio(shot)
        if aspect is not None and "image" not in body and "image_tail" not in body:
            body["aspect_ratio"] = aspect  # image2video has no aspect_ratio: the image sets it
        body["duration"] = str(rules.effective_duration(shot) or DEFAULT_DURATION_S)
        return body

    def _omni(self, shot: ResolvedShot, mode: str, ref: Ref) -> dict[str, Any]:
        body: dict[str, Any] = {"model_name": OMNI_MODEL}
        body.update(self._shots(shot))
        # reference images first, so the prompt's <<<image_N>>> counts them alone [inferred]
        images = [{"image_url": image_value(s, ref)} for s in shot.reference_images]
        if shot.first_frame is not None:
            images.append({"image_url": image_value(shot.first_frame, ref), "type": "first_frame"})
        if shot.last_frame is not None:
            images.append({"image_url": image_value(shot.last_frame, ref), "type": "end_frame"})
        if images:
            body["image_list"] = images
        if shot.elements:
            body["element_list"] = [{"element_id": element_id(e)} for e in shot.elements]
        videos = [{"video_url": ref(shot.video, "video"), "refer_type": "base",
                   "keep_original_sound": "yes"}] if shot.video is not None else []
        videos += [{"video_url": ref(s, "video"), "refer_type": "feature",
                    "keep_original_sound": "yes"} for s in shot.reference_videos]
        if videos:
            body["video_list"] = videos
        # "When there is a reference video, the value of the sound parameter can only be off"
        body["sound"] = "on" if shot.audio and not videos else "off"
        body["mode"] = mode
        aspect = _aspect_ratio(shot)
        if shot.first_frame is None and shot.video is None:
            # "required when the first-frame reference or video editing features are not used"
            body["aspect_ratio"] = aspect or "16:9"
        if shot.video is None:  # an edit lasts as long as its source: `duration` is invalid
            body["duration"] = str(rules.effective_duration(shot) or DEFAULT_DURATION_S)
        return body

    def _shots(self, shot: ResolvedShot) -> dict[str, Any]:
        """`prompt`, or multi-shot: `multi_shot`, `shot_type`, `multi_prompt` (3.0 spec: with
        multi_shot true "the prompt parameter is invalid": not sent)."""
        if not shot.multi_prompt:
            prompt = dialogue.main_prompt(shot)
            return {"prompt": self.prompt_text(shot, prompt)} if prompt is not None else {}
        return {"multi_shot": True, "shot_type": "customize", "multi_prompt": [
            {"index": n, "prompt": self.prompt_text(shot, seg.prompt),
             "duration": str(seg.duration_s)}
            for n, seg in enumerate(shot.multi_prompt, 1)]}

    def element_request(self, element: Element, ref: Ref) -> dict[str, Any]:
        """The body that creates `element` in Kling's element library (3.0 spec, "General -
        Create Element"): a multi-image element, or a video character element."""
        body: dict[str, Any] = {
            "element_name": element.name[:ELEMENT_NAME_CHARS],
            # required; an element without one sends its name [inferred]
            "element_description": element.description or element.name,
        }
        if element.videos:
            body["reference_type"] = "video_refer"
            body["element_video_list"] = {"refer_videos": [{"video_url": ref(v, "video")}
                                                           for v in element.videos]}
        else:
            body["reference_type"] = "image_refer"
            frontal = image_value(element.frontal_image, ref) \
                if element.frontal_image is not None else None
            body["element_image_list"] = {
                "frontal_image": frontal,
                "refer_images": [{"image_url": image_value(s, ref)} for s in element.images]}
        if element.has_voice and element.videos:  # it speaks in this voice wherever it speaks
            body["element_voice_id"] = dialogue.voice_value(element)
        tags = [ELEMENT_TAGS[t.lower()] for t in element.tags if t.lower() in ELEMENT_TAGS]
        if tags:
            body["tag_list"] = [{"tag_id": t} for t in dict.fromkeys(tags)]
        return body

    def route(self, spec: ModelSpec, request: Mapping[str, Any]) -> str:
        """The path the request is posted to, its model and mode (the tier it pays)."""
        fields = [f"{key} {request[key]}" for key in ("model_name", "mode") if key in request]
        return " ".join([api.PATHS[api.endpoint(request)], *fields])

    def voice_request(self, element: Element, ref: Ref) -> dict[str, Any]:
        """The body that makes a custom voice of `element.voice` (Kling's custom voices:
        `voice_name` at most 20 characters, `voice_url`). The name is the sample's file name
        and a digest of where it is, so one sample is one voice whichever elements speak in it,
        and two samples named alike (`a/voice.wav`, `b/voice.wav`) are two names: a name must
        be unique within the account (gmicloud's copy of the custom-voice page, the stricter
        reading; docs/providers.md)."""
        import hashlib

        sample = element.voice
        if sample is None:
            raise TypeError(f"element '{element.name}' has no voice sample")  # a bug
        stem = PurePosixPath(urlsplit(sample.value).path if sample.kind == "url"
                             else sample.value.replace("\\", "/")).stem
        digest = hashlib.sha256(sample.value.encode()).hexdigest()[:8]
        name = f"{(stem or 'voice')[:VOICE_NAME_CHARS - 9]}-{digest}"
        return {"voice_name": name, "voice_url": ref(sample, "audio")}

    def voice_cost(self, request: Mapping[str, Any]) -> Decimal | None:
        """Unknown: the price tables have no row for a custom voice; its query's
        `final_unit_deduction` is recorded when it is made."""
        return None

    def cost(
        self, shot: ResolvedShot, spec: ModelSpec, payload: Mapping[str, Any]
    ) -> Decimal | None:
        rate = spec.prices.get(_voice_price_key(shot, spec, payload))
        seconds = billed_seconds(shot, payload)
        if rate is None or seconds is None:
            return None
        return rate * seconds

    def cost_note(
        self, shot: ResolvedShot, spec: ModelSpec, payload: Mapping[str, Any]
    ) -> str | None:
        if billed_seconds(shot, payload) is None:
            return ("a video edit is billed by the source clip's duration, unknown until run "
                    "time (write it as the shot's duration)")
        note = "units x $0.14, the unit's list price (a discounted resource pack costs less)"
        if _voice_price_key(shot, spec, payload) == "voice" and not payload.get("voice_list"):
            note += ("; priced with voice control, as Kling bills a voice_list: whether a voice "
                     "bound to its element is billed so is not documented")
        return note


def _voice_price_key(shot: ResolvedShot, spec: ModelSpec, payload: Mapping[str, Any]) -> str:
    """price_key, and "voice" for a kling-v3 shot with sound in which an element speaks in a
    voice bound to it (the higher price: an estimate never falls short)."""
    key = price_key(payload)
    if key == "audio" and spec.model_id != OMNI_MODEL and _bound(shot):
        return "voice"
    return key


def _bound(shot: ResolvedShot) -> tuple[Element, ...]:
    """The speaking elements whose voice the run binds: video elements created by the run
    (`element_voice_id` "binds a voice to a video element only"; an element with a provider
    `id:` exists already, with whatever voice it has)."""
    return tuple(e for e in dialogue.voiced(shot) if e.id is None and e.videos)


def _check_voices(shot: ResolvedShot, omni: bool, provider: str) -> list[Diagnostic]:
    """At most 2 voices per generation; samples as URLs (Kling has no upload: a local sample
    cannot reach it) of a documented format; what cannot be bound is a warning."""
    source = "Kling API, voice_list: \"A video generation task can reference up to 2 voices\""
    diags = dialogue.check_voice_count(shot, provider, VOICES, source, _bound(shot))
    voiced = [e for e in shot.elements if e.voice is not None and e.id is None and e.videos]
    diags += [Diagnostic(
        f"element '{e.name}': kling takes a voice sample only as an http(s) URL",
        dialogue.voice_where(e),
        "Kling's custom voices take voice_url (it documents no upload): put the sample at an "
        "http(s) URL, give the id of a voice your Kling account has (`voice_id:`), or use fal, "
        "which uploads local files",
    ) for e in voiced if e.voice is not None and e.voice.kind != "url"]
    diags += dialogue.check_samples(shot, provider, "Kling custom voices: voice_url "
                                    ".mp3/.wav/.mp4/.mov, 5-30 s", elements=voiced)
    existing = [e for e in dialogue.voiced(shot) if e.id is not None]
    diags += dialogue.prompt_only(shot, provider, "an element named by `id:` exists at Kling "
                                  "already; a voice is bound when the element is created",
                                  existing)
    images = [e for e in dialogue.voiced(shot) if e.id is None and not e.videos]
    diags += dialogue.prompt_only(shot, provider, "Kling binds a voice to a video element "
                                  "only (element_voice_id), and voice_list cannot go with "
                                  "element_list", images)
    if omni:
        diags += dialogue.prompt_only(shot, f"{provider} model kling-v3-omni", "the 3.0 "
                                      "capability map gives the omni model no voice control",
                                      _bound(shot))
    return diags


def price_key(payload: Mapping[str, Any]) -> str:
    """Which per-second price a body pays: a video input, a voice, audio, or silence."""
    if payload.get("video_list"):
        return "video_input"
    if payload.get("sound") != "on":
        return "silent"
    return "voice" if payload.get("voice_list") else "audio"


def billed_seconds(shot: ResolvedShot, payload: Mapping[str, Any]) -> int | None:
    """The seconds billed: the duration sent; an edit, its source's (the shot's duration)."""
    duration = payload.get("duration")
    if duration is not None:
        try:
            return int(duration)
        except (TypeError, ValueError):
            return None
    videos = payload.get("video_list")
    if isinstance(videos, list) and any(isinstance(v, dict) and v.get("refer_type") == "base"
                                        for v in videos):
        return shot.duration  # "Calculate billing by rounding the input video duration"
    return DEFAULT_DURATION_S


def image_value(source: FrameSource, ref: Ref) -> str:
    """An image as the API takes it: a URL, or raw base64 (a data URI loses its prefix)."""
    value = ref(source, "image")
    if source.kind == "data":
        return value.partition(",")[2]
    return value


def element_id(element: Element) -> Any:
    """An element's `element_id`: its `id:` (a number) or the placeholder of the element the
    run creates."""
    if element.id is not None:
        return int(element.id) if element.id.isdigit() else element.id
    return element_placeholder(element.name)


def _aspect_ratio(shot: ResolvedShot) -> str | None:
    if shot.size is not None:
        return rules.aspect_of(shot.size)
    return shot.aspect


# -- Kling's own rules --------------------------------------------------------------------------


def _check_frames(shot: ResolvedShot, omni: bool) -> list[Diagnostic]:
    diags = []
    if shot.last_frame is not None and shot.first_frame is None:
        diags.append(Diagnostic(
            "a last_frame needs a first_frame on kling",
            shot.where("last_frame"),
            "add a first_frame (Kling API: \"Currently does not support only the end frame\")",
        ))  # fmt: skip
    if shot.elements and not omni and shot.first_frame is None:
        names = ", ".join("@" + e.name for e in shot.elements)
        diags.append(Diagnostic(
            f"elements ({names}) need a first_frame on kling model '{shot.model}'",
            rules.elements_where(shot),
            "kling-v3 takes element_list only on image-to-video: add a first_frame, or use "
            "model kling-o3-pro (the omni endpoint takes elements without a frame)",
        ))  # fmt: skip
    return diags



def _check_segments(shot: ResolvedShot, prompt_text) -> list[Diagnostic]:
    """Each multi_prompt segment at most 512 characters as sent."""
    diags = []
    for n, seg in enumerate(shot.multi_prompt or (), 1):
        text = prompt_text(shot, seg.prompt)
        if SEGMENT_CHARS < len(text) <= 2500:  # longer: rules.check_prompts says so
            diags.append(Diagnostic(
                f"multi_prompt segment {n} is {len(text)} characters long as sent; kling takes "
                f"at most {SEGMENT_CHARS} per segment",
                seg.location or shot.where("multi_prompt"),
                "shorten the segment (Kling API: \"The maximum length of the prompt for each "
                "storyboard 512\")",
            ))  # fmt: skip
    return diags


def _check_elements(shot: ResolvedShot) -> list[Diagnostic]:
    low, high = ELEMENT_IMAGES
    diags = []
    for e in shot.elements:
        where = e.location or shot.where("elements")
        if e.id is not None:
            if not e.id.isdigit():
                diags.append(Diagnostic(
                    f"element '{e.name}' has id '{e.id}'; Kling's element ids are numbers",
                    where,
                    "write the element_id Kling returned (digits only), or remove id: so the "
                    "run creates the element from its images",
                ))  # fmt: skip
            continue
        if e.voices:
            diags.append(Diagnostic(
                f"element '{e.name}' has voices; kling binds a voice by its voice-library id, "
                "not by an audio file",
                where,
                "remove voices; a video element speaks in a voice given as `voice:` (a sample "
                "URL, made a custom voice and bound to it) or `voice_id:` (a Kling voice)",
            ))  # fmt: skip
        if e.videos:  # with images too: rules.check_element_shapes says so
            if len(e.videos) > 1:
                diags.append(Diagnostic(
                    f"element '{e.name}' has {len(e.videos)} videos; a kling video element is "
                    "one video",
                    where,
                    "keep one video (Kling API: \"Only supports 1 video can be uploaded\")",
                ))  # fmt: skip
        elif e.frontal_image is None or len(e.images) < low:  # more: rules.check_element_shapes
            diags.append(Diagnostic(
                f"element '{e.name}' has {'a' if e.frontal_image else 'no'} frontal_image and "
                f"{len(e.images)} more image{'s' if len(e.images) != 1 else ''}; kling needs a "
                f"frontal_image and {low}-{high} images",
                where,
                "Kling API, Create Element: at least one frontal reference image and \"1 to 3 "
                "additional reference images\"",
            ))  # fmt: skip
        if e.description and len(e.description) > ELEMENT_DESCRIPTION_CHARS:
            diags.append(Diagnostic(
                f"element '{e.name}': its description is {len(e.description)} characters; "
                f"kling takes at most {ELEMENT_DESCRIPTION_CHARS}",
                where,
                "shorten the description (Kling API: element_description \"Must not exceed "
                "100 characters\")",
            ))  # fmt: skip
        unknown = [t for t in e.tags if t.lower() not in ELEMENT_TAGS]
        if unknown:
            diags.append(Diagnostic(
                f"element '{e.name}': tag{'s' if len(unknown) > 1 else ''} "
                f"{', '.join(unknown)} not sent: kling knows {', '.join(ELEMENT_TAGS)}",
                where, "use Kling's tag names, or drop them", severity="warning",
            ))  # fmt: skip
    return diags


def _check_options(shot: ResolvedShot, omni: bool) -> list[Diagnostic]:
    """What provider_options adds that the API constrains: voice_list and the shot mode."""
    options = shot.provider_options
    where = shot.where("provider_options")
    diags = []
    voices = options.get("voice_list")
    if voices:
        if omni:
            diags.append(Diagnostic(
                "voice_list is not taken by the omni endpoint", where,
                "Kling API capability map: kling-v3-omni has no voice control; use kling-3-pro",
            ))  # fmt: skip
        if shot.elements:
            diags.append(Diagnostic(
                "voice_list cannot be combined with elements on kling", where,
                "Kling API: \"The element_list parameter and the voice_list parameter are "
                "mutually exclusive and cannot coexist\"",
            ))  # fmt: skip
        if isinstance(voices, list) and len(voices) > VOICES:
            diags.append(Diagnostic(
                f"voice_list has {len(voices)} voices; kling takes at most {VOICES}", where,
                "Kling API: \"A video generation task can reference up to 2 voices at most\"",
            ))  # fmt: skip
        if shot.audio is not True and options.get("sound") != "on":
            diags.append(Diagnostic(
                "voice_list needs audio: true on kling", where,
                "Kling API: \"When specifying a tone, the sound parameter value must be on\"",
            ))  # fmt: skip
    multi = bool(options.get("multi_shot", bool(shot.multi_prompt)))
    shot_type = options.get("shot_type", "customize")
    if multi and shot_type == "intelligence":
        if omni:
            diags.append(Diagnostic(
                "shot_type intelligence is not taken by the omni endpoint", where,
                "Kling API, omni-video shot_type: \"Enum values: customize\"",
            ))  # fmt: skip
        if shot.multi_prompt or shot.prompt is None:
            diags.append(Diagnostic(
                "shot_type intelligence needs a prompt and no multi_prompt", where,
                "Kling API: with shot_type intelligence the model segments the prompt itself",
            ))  # fmt: skip
    elif multi and not shot.multi_prompt:
        diags.append(Diagnostic(
            "multi_shot with shot_type customize needs a multi_prompt", where,
            "write the shots as multi_prompt (or set shot_type: intelligence)",
        ))  # fmt: skip
    return diags


def _image_sources(shot: ResolvedShot):
    """(field, source, location) of every image kling receives."""
    for name in ("first_frame", "last_frame"):
        source = getattr(shot, name)
        if source is not None:
            yield name, source, source.location or shot.where(name)
    for source in shot.reference_images:
        yield "reference_images", source, source.location or shot.where("reference_images")
    for e in shot.elements:
        if e.id is None:
            for name, source, media in rules.element_sources(e):
                if media == "image":
                    yield name, source, source.location or e.location or shot.where("elements")


def _check_images(shot: ResolvedShot) -> list[Diagnostic]:
    """JPG/PNG, at most 10 MB, at least 300 px a side, aspect 1:2.5 to 2.5:1 (local files
    by their header; URLs by their suffix; data URIs by their media type)."""
    diags = []
    for name, source, where in _image_sources(shot):
        problem = _image_problem(source)
        if problem:
            diags.append(Diagnostic(
                f"{name}: {problem}", where,
                "Kling API: images .jpg/.jpeg/.png, at most 10MB, at least 300px a side, "
                "aspect 1:2.5 to 2.5:1",
            ))  # fmt: skip
    return diags


def _image_problem(source: FrameSource) -> str | None:
    if source.kind == "data":
        head = source.value[5:].partition(",")[0].lower()
        mime, _, encoding = head.partition(";")
        if mime not in IMAGE_MIMES:
            return f"kling takes PNG or JPEG images, not {mime or 'an untyped data URI'}"
        if "base64" not in encoding:
            return "kling takes images inline as base64: this data URI is not base64"
        return None
    if source.kind == "url":
        suffix = PurePosixPath(urlsplit(source.value).path).suffix.lower()
        return f"kling takes PNG or JPEG images, not {suffix}" \
            if suffix in _OTHER_IMAGE_SUFFIXES else None
    if source.kind != "path" or source.path is None:
        return None
    suffix = PurePosixPath(source.value.replace("\\", "/")).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        return f"kling takes PNG or JPEG images, not {suffix or 'a file without suffix'}"
    try:
        size = source.path.stat().st_size
    except OSError:
        return None  # a missing file is reported where the file is read
    if size > IMAGE_BYTES:
        return f"{source.value} is {size / 1024 / 1024:.1f} MB; kling takes at most 10 MB"
    return _dimensions_problem(source)


def _dimensions_problem(source: FrameSource) -> str | None:
    size = image_size(source.path) if source.path is not None else None
    if size is None:
        return None  # rules.check_frame_aspect names an unreadable first frame
    width, height = size
    if min(width, height) < IMAGE_MIN_PX:
        return f"{source.value} is {width}x{height}; kling takes at least 300 px a side"
    if max(width, height) > IMAGE_RATIO * min(width, height):
        return f"{source.value} is {width}x{height}; kling takes aspects from 1:2.5 to 2.5:1"
    return None


def _check_videos(shot: ResolvedShot) -> list[Diagnostic]:
    """Videos (omni inputs, element videos) are .mp4 or .mov URLs."""
    sources = [("video", shot.video, shot.where("video"))] if shot.video else []
    sources += [("reference_videos", s, shot.where("reference_videos"))
                for s in shot.reference_videos]
    sources += [("videos", v, e.location or shot.where("elements"))
                for e in shot.elements if e.id is None for v in e.videos]
    diags = []
    for name, source, where in sources:
        suffix = PurePosixPath(urlsplit(source.value).path).suffix.lower() \
            if source.kind == "url" else ""
        if suffix in _OTHER_VIDEO_SUFFIXES:
            diags.append(Diagnostic(
                f"{name}: kling takes .mp4 or .mov videos, not {suffix}",
                source.location or where, "convert the video to MP4",
            ))  # fmt: skip
    return diags


def _check_multi_shot_frames(shot: ResolvedShot, omni: bool) -> list[Diagnostic]:
    """Frames in a multi-shot generation: omni takes none ("When true: ... it does not
    support setting the start & end frames"); image2video no end frame. A last_frame with a
    multi_prompt is rules.check_multi_prompt_frames' error: here only what it leaves."""
    multi = bool(shot.provider_options.get("multi_shot", bool(shot.multi_prompt)))
    diags = []
    if multi and omni and shot.first_frame is not None:
        diags.append(Diagnostic(
            "kling's omni endpoint takes no first_frame in a multi-shot generation",
            shot.first_frame.location or shot.where("first_frame"),
            "remove the first_frame (a reference image can keep the look), or use model "
            "kling-3-pro: its image-to-video endpoint starts a multi-shot clip from a first "
            "frame (Kling API, omni-video multi_shot: \"When true: ... it does not support "
            "setting the start & end frames\")",
        ))  # fmt: skip
    if multi and not shot.multi_prompt and shot.last_frame is not None:
        diags.append(Diagnostic(
            "a multi-shot generation on kling takes no last_frame",
            shot.last_frame.location or shot.where("last_frame"),
            "remove the last_frame, or the multi_shot of provider_options (Kling 3.0: the end "
            "frame \"cannot be used together with multi_prompt\")",
        ))  # fmt: skip
    return diags


def _check_omni(shot: ResolvedShot) -> list[Diagnostic]:
    """The omni endpoint's counts: images (frames included) and elements together, the end
    frame, video elements and the length of a video input."""
    has_video = shot.video is not None or bool(shot.reference_videos)
    images = len(shot.reference_images) + (shot.first_frame is not None) + \
        (shot.last_frame is not None)
    limit = OMNI_REFERENCES[1] if has_video else OMNI_REFERENCES[0]
    diags = []
    if images + len(shot.elements) > limit:
        diags.append(Diagnostic(
            f"{images} image(s) and {len(shot.elements)} element(s); kling's omni endpoint "
            f"takes at most {limit} together" + (" with a video input" if has_video else ""),
            shot.where("reference_images") if shot.reference_images
            else rules.elements_where(shot),
            "Kling API, omni-video: reference images plus elements \"shall not exceed 7\", "
            "4 when there is a reference video",
        ))  # fmt: skip
    if shot.last_frame is not None and images > 2:
        diags.append(Diagnostic(
            "an end frame cannot be combined with reference images on kling's omni endpoint",
            shot.where("last_frame"),
            "Kling API, omni-video: \"Setting an end frame is not supported when there are "
            "more than 2 images\"",
        ))  # fmt: skip
    if has_video and any(e.videos for e in shot.elements if e.id is None):
        diags.append(Diagnostic(
            "video elements cannot be combined with a video input on kling's omni endpoint",
            rules.elements_where(shot),
            "Kling API, omni-video: with a reference video \"the use of video subjects is not "
            "supported\"",
        ))  # fmt: skip
    low, high = VIDEO_INPUT_S
    duration = rules.effective_duration(shot)
    if has_video and duration is not None and not low <= duration <= high:
        diags.append(Diagnostic(
            f"duration {duration} s: with a video input kling's omni endpoint takes {low}-{high} s"
            + (" (an edit lasts as long as its source video)" if shot.video else ""),
            shot.where("duration" if shot.duration is not None else "multi_prompt"),
            "Kling API, omni-video: videos \"of >= 3 seconds and <= 10 seconds\"",
        ))  # fmt: skip
    if has_video and shot.audio is True:
        diags.append(Diagnostic(
            "audio is not generated with a video input on kling's omni endpoint: sound is sent "
            "off", shot.where("audio"),
            "Kling API, omni-video: \"When there is a reference video, the value of the sound "
            "parameter can only be off\"", severity="warning",
        ))  # fmt: skip
    return diags


def _check_size(shot: ResolvedShot, spec: ModelSpec) -> list[Diagnostic]:
    """A size is sent as its aspect; the mode sets the resolution: say so if they differ."""
    if shot.size is None or rules.follows_input(shot):
        return []
    mode = MODES[spec.alias][1]
    made = RESOLUTIONS[mode].get(rules.aspect_of(shot.size))
    if made is None or made == shot.size:
        return []  # an unavailable aspect is an error of rules.check_size
    family = spec.alias.rsplit("-", 1)[0]
    other = f"{family}-{'pro' if mode == 'std' else 'std'}"
    hint = f"use model {other}" if MODES.get(other) and RESOLUTIONS[MODES[other][1]].get(
        rules.aspect_of(shot.size)) == shot.size else f"write size: {made[0]}x{made[1]}"
    return [Diagnostic(
        f"size {shot.size[0]}x{shot.size[1]} is sent as aspect_ratio "
        f"{rules.aspect_of(shot.size)}: kling model '{spec.alias}' (mode {mode}) makes "
        f"{made[0]}x{made[1]}",
        shot.where("size"),
        f"{hint}, or write aspect: instead of size:",
        severity="warning",
    )]  # fmt: skip
