"""Runware `videoInference` for the Kling VIDEO 3.0 family: capability data and one class.

Tiers (issue 25, docs/kling-family.md R1-R7): 3.0 Standard / Pro / 4K, O3 (3.0 Omni)
Standard / Pro, 3.0 Turbo at 720p and 1080p (one model id, two storyboard aliases). O3 4K
(`klingai:kling-video@o3-4k`) is not offered: runware-sdk 1.8.0 types it, but no Runware page
with its price or sizes was found (third parties only).

Sources: seed 000 (runware.ai/docs/models/klingai-video-3-0-pro), seed 003
(runware.ai/docs/models/klingai-video-3-0-omni-pro), seed 004
(runware.ai/docs/models/klingai-video-o3-pro), the prices of the project's provider reference,
and (issue 21) the current 3.0 Pro page (`klingai-video-3-0-pro.md`: audio price, dimension
table), runware-sdk 1.8.0's generated `runware/types/task_map.py` and Runware's sdk-python
`runware/types.py` (`IKlingAIProviderSettings.sound: Optional[bool]`, `IElements.voice`).
The request bodies reproduce the seed examples field for field and in key order; the engine adds
`taskUUID` (right after `taskType`), `deliveryMethod: "async"` and `includeCost: true`.
"""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from . import dialogue, rules
from ..errors import Diagnostic
from ..model import Element, Prompt, ResolvedShot
from .base import (
    TRANSIENT_STATUS,
    Account,
    Capabilities,
    Credential,
    Declared,
    Handle,
    Job,
    ModelSpec,
    ProviderError,
    ProviderSpec,
    Ref,
    Result,
    Send,
    Status,
    TransientError,
    UrlOf,
    answer_url,
    json_answer,
    read_cost,
    retry_after_s,
)

if TYPE_CHECKING:
    import httpx

_SOURCE_3_PRO = "Runware's KlingAI Video 3.0 Pro page, runware.ai/docs/models/klingai-video-3-0-pro"
_SOURCE_O3_PRO = "Runware's KlingAI Video O3 Pro page, runware.ai/docs/models/klingai-video-o3-pro"
_SOURCE_3_STD = ("Runware's Kling VIDEO 3.0 Standard page, "
                 "runware.ai/docs/models/klingai-video-3-0-standard")
_SOURCE_3_4K = "Runware's Kling VIDEO 3.0 4K page, runware.ai/docs/models/klingai-video-3-0-4k"
_SOURCE_O3_STD = ("Runware's Kling VIDEO O3 Standard page, "
                  "runware.ai/docs/models/klingai-video-o3-standard")
_SOURCE_TURBO = ("Runware's Kling VIDEO 3.0 Turbo page, "
                 "runware.ai/docs/models/klingai-video-3-0-turbo")

# seeds 000, 003, 004: "Provide exactly one of ... frameImages or width/height". Sizes for an
# aspect come from the O3 dimension table (seeds 003/004); both models render 1080p.
ASPECT_SIZES: Mapping[str, tuple[int, int]] = {
    "16:9": (1920, 1080),
    "1:1": (1440, 1440),
    "9:16": (1080, 1920),
}
DEFAULT_SIZE = (1920, 1080)  # seeds 000/004 text-to-video examples
# The dimension tables of the other tiers ("The following dimension combinations are
# supported"), 16:9, 1:1, 9:16; a text-to-video shot's aspect picks its tier's size.
SIZES_720P = ((1280, 720), (960, 960), (720, 1280))  # 3.0 Standard, O3 Standard, Turbo 720p
SIZES_1080P = ((1920, 1080), (1440, 1440), (1080, 1920))  # 3.0 Pro, O3 Pro, Turbo 1080p
SIZES_4K = ((3840, 2160), (2880, 2880), (2160, 3840))  # 3.0 4K
DEFAULT_DURATION_S = 5  # seeds 000, 003, 004: duration default 5

_COMMON_FIELDS = frozenset(
    {"duration", "size", "aspect", "first_frame", "last_frame", "reference_images",
     "reference_videos", "elements", "takes", "output_format", "quality"}
)  # fmt: skip

_VIDEO_SETTINGS = (
    "When inputs.video or inputs.referenceVideos is provided, providerSettings cannot be used "
    "(Runware's O3 Pro and 3.0 Omni Pro pages); multi_prompt travels in "
    "providerSettings.klingai.multiPrompt"
)
_ONE_OF_FRAMES_VIDEO = (
    "Provide exactly one of: inputs.frameImages or inputs.video or width/height "
    "(Runware's 3.0 Omni Pro page)"
)

MODELS: Mapping[str, ModelSpec] = {
    "kling-3-pro": ModelSpec(
        alias="kling-3-pro",
        model_id="klingai:kling-video@3-pro",
        source=_SOURCE_3_PRO,
        durations_s=(3, 15),  # seed 000: duration min 3 max 15
        prompt_chars=(2, 2500),  # seed 000: positivePrompt / negativePrompt min 2 max 2500
        # the current 3.0 Pro page's dimension table (seed 000 had none): 1080p 16:9, 1:1, 9:16
        sizes=((1920, 1080), (1440, 1440), (1080, 1920)),
        aspects=tuple(ASPECT_SIZES),  # the Kling 3.0 aspects (seeds 001, 003, 004)
        frame_images=(1, 2),  # seed 000: frameImages min items 1, max items 2
        max_elements=3,  # seed 000: inputs.elements max items 3
        max_element_images=3,  # seed 000: elements.images "Up to 3 images"
        takes=(1, 20),  # seed 000: numberResults min 1 max 20
        quality=(20, 99),  # seed 000: outputQuality min 20 max 99
        cfg_scale=None,  # seed 000 documents no CFGScale field
        # seed 000 documents neither multiPrompt nor inputs.video. Audio: the current 3.0 Pro
        # page prices it ("$0.112/s without audio & $0.168/s with audio"); the switch is
        # providerSettings.klingai.sound, a boolean (sdk-python IKlingAIProviderSettings.sound;
        # integrations send it to klingai:kling-video@3-pro), as on O3 (seed 004)
        supports=_COMMON_FIELDS | {"negative_prompt", "audio"},
        # the current 3.0 Pro page and the provider reference: 0.112/s silent, 0.168/s audio;
        # seed 000 costs 1.12 (10 s) and 0.896 (8 s) = 0.112/s
        prices={"silent": Decimal("0.112"), "audio": Decimal("0.168")},
    ),
    "kling-o3-pro": ModelSpec(
        alias="kling-o3-pro",
        model_id="klingai:kling-video@o3-pro",
        source=_SOURCE_O3_PRO,
        durations_s=(3, 15),  # seeds 003/004: duration min 3 max 15
        prompt_chars=(2, 2500),  # seeds 003/004: positivePrompt, multiPrompt.prompt 2-2500
        sizes=((1920, 1080), (1440, 1440), (1080, 1920)),  # seeds 003/004 dimension table
        aspects=tuple(ASPECT_SIZES),
        frame_images=(1, 2),  # seed 004: 1 image first frame, 2 images first and last
        max_elements=3,  # seed 000 (same elements object on seeds 003/004)
        max_element_images=3,  # seeds 003/004: elements.images "Up to 3 images"
        takes=(1, 4),  # seed 003: numberResults max 4 (seed 004 says 20; the stricter wins)
        quality=(20, 99),  # seeds 003/004: outputQuality min 20 max 99
        cfg_scale=None,
        multi_prompt_segments=6,  # product brief; seeds 003/004 give no count
        # seeds 003/004 document no negativePrompt
        supports=_COMMON_FIELDS | {"multi_prompt", "audio", "video"},
        excludes=(
            ("video", "first_frame", _ONE_OF_FRAMES_VIDEO),
            ("video", "last_frame", _ONE_OF_FRAMES_VIDEO),
            ("video", "reference_videos",
             "Inside inputs, video cannot be used with referenceVideos "
             "(Runware's 3.0 Omni Pro page)"),
            ("video", "elements",
             "When inputs.video is provided, inputs.elements cannot be used "
             "(Runware's O3 Pro and 3.0 Omni Pro pages)"),
            ("video", "multi_prompt", _VIDEO_SETTINGS),
            ("reference_videos", "multi_prompt", _VIDEO_SETTINGS),
        ),  # fmt: skip
        # seeds 003/004 per-second prices: 0.112 no input, 0.14 audio, 0.168 video input
        prices={
            "silent": Decimal("0.112"),
            "audio": Decimal("0.14"),
            "video_input": Decimal("0.168"),
        },
    ),
}

# -- issue 25: the other Kling 3.0 tiers (docs/kling-family.md, Tables 1-3, R1-R7) ------------
#
# Durations: runware-sdk 1.8.0 types `duration: NotRequired[int]` without bounds for every tier
# (runware/types/task_map.py, KlingaiVideo30StandardParams, ...304kParams, ...OmniStandard
# Params, ...TurboParams), and the stored copies of the new tiers' pages stop before their
# `duration` entry; 3-15 s is what every source gives for these tiers (Runware's 3.0 Pro and O3
# Pro pages for the family, fal F2/F12, kie K1/K4), none gives a narrower range, and the 4K
# examples page sends `duration: 9`.
# numberResults: not in the stored copies either; 4 is the smallest maximum any Runware Kling
# 3.0 page states (seed 003; 3.0 Pro says 20), so a request is never refused for it.
_NEW_TAKES = (1, 4)
_NEW_DURATIONS = (3, 15)

MODELS = {
    **MODELS,
    # 3.0 Standard (R2): 3.0 Pro's inputs at 720p. The page says both "When
    # inputs.referenceVideos is provided, providerSettings cannot be used" and "... is
    # required"; as on the O3 pages (which say the same) `sound` is not sent with reference
    # videos (NO_SETTINGS_WITH_VIDEO), with a warning.
    "kling-3-std": replace(
        MODELS["kling-3-pro"],
        alias="kling-3-std",
        model_id="klingai:kling-video@3-standard",  # R2 "ID"; runware-sdk KlingaiVideo30Standard
        source=_SOURCE_3_STD,
        durations_s=_NEW_DURATIONS,  # see above
        sizes=SIZES_720P,  # R2 dimension table: 1280x720, 960x960, 720x1280
        takes=_NEW_TAKES,  # see above
        # R2: "$0.084/s without audio & $0.126/s with audio" (720p · 1s rows)
        prices={"silent": Decimal("0.084"), "audio": Decimal("0.126")},
    ),
    # 3.0 4K (R4, released 2026-04-23): 3.0 Pro's inputs at 4K, one price with or without
    # audio. The examples page also sends providerSettings.klingai.multiPrompt; multi_prompt is
    # not offered until a page documents the field (3.0 Pro's has none).
    "kling-3-4k": replace(
        MODELS["kling-3-pro"],
        alias="kling-3-4k",
        model_id="klingai:kling-video@3-4k",  # R4 "ID"; runware-sdk KlingaiVideo304kParams
        source=_SOURCE_3_4K,
        durations_s=_NEW_DURATIONS,  # see above
        sizes=SIZES_4K,  # R4 dimension table: 3840x2160, 2880x2880, 2160x3840
        takes=_NEW_TAKES,  # see above
        # R4 Pricing: "1s: $0.42", the one row; examples send sound: true at that price
        prices={"silent": Decimal("0.42"), "audio": Decimal("0.42")},
    ),
    # O3 Standard (R5): O3 Pro's inputs and video rules at 720p (its page carries the same
    # compatibility lines: providerSettings not with video inputs, no elements with
    # inputs.video, referenceImages <= 4 with a video; no negativePrompt in the SDK type).
    "kling-o3-std": replace(
        MODELS["kling-o3-pro"],
        alias="kling-o3-std",
        model_id="klingai:kling-video@o3-standard",  # R5 "ID"; KlingaiVideo30OmniStandard
        source=_SOURCE_O3_STD,
        durations_s=_NEW_DURATIONS,  # see above
        sizes=SIZES_720P,  # R5 dimension table: 1280x720, 960x960, 720x1280
        takes=_NEW_TAKES,  # see above (O3 Pro: 4, seed 003)
        # R5 Pricing, 720p · 1s: no input + no audio $0.084, audio + no input $0.112, video
        # input + no audio $0.126
        prices={"silent": Decimal("0.084"), "audio": Decimal("0.112"),
                "video_input": Decimal("0.126")},
    ),
}

# 3.0 Turbo (R7, released 2026-06-17): ONE model id, `klingai:kling-video@3.0-turbo`; its tier
# is the output resolution. runware-sdk's KlingaiVideo30TurboParams has `resolution:
# Literal['720p', '1080p']`, `positivePrompt: str` (required), `negativePrompt`, width, height,
# duration, inputs, and NO providerSettings: no sound switch, no multiPrompt. R7: "When
# inputs.frameImages is provided, width/height cannot be used", "`resolution` cannot be used
# with width/height", "When `resolution` is provided, inputs.frameImages is required", "When
# negativePrompt is provided, inputs.frameImages is required". So text-to-video picks the tier
# by width/height (the tier's dimension table), image-to-video by `resolution`.
# Audio: no switch, and the output has sound (R7: "$0.112 per second of video at 720p with
# native audio"): priced as audio; `audio: false` is a warning (see `_check_turbo`).
TURBO_MODEL_ID = "klingai:kling-video@3.0-turbo"  # R7 "ID"; KlingaiVideo30TurboParams
TURBO_RESOLUTIONS: Mapping[str, str] = {"kling-3-turbo-std": "720p", "kling-3-turbo-pro": "1080p"}
# R7 Pricing: "$0.112 per second of video at 720p with native audio", "720p . 3s: $0.336",
# "1080p . 3s: $0.42" (= $0.14 a second)
TURBO_PRICES: Mapping[str, Decimal] = {"720p": Decimal("0.112"), "1080p": Decimal("0.14")}
TURBO_SIZES: Mapping[str, tuple[tuple[int, int], ...]] = {  # R7 dimension table
    "720p": SIZES_720P, "1080p": SIZES_1080P}


def _turbo(alias: str) -> ModelSpec:
    resolution = TURBO_RESOLUTIONS[alias]
    return ModelSpec(
        alias=alias,
        model_id=TURBO_MODEL_ID,
        source=_SOURCE_TURBO,
        durations_s=_NEW_DURATIONS,  # see above (fal F12, kie K4: 3-15 s for Turbo too)
        prompt_chars=(2, 2500),  # Runware's Kling prompts, seed 000: 2-2500
        sizes=TURBO_SIZES[resolution],  # R7 dimension table of the tier
        aspects=tuple(ASPECT_SIZES),
        # a first frame only: R7 names inputs.frameImages without a count, and every other
        # source gives Turbo a start image and no end frame (fal F12 `image_url` only; kie K5;
        # docs/kling-family.md Table 3): the stricter reading
        frame_images=(1, 1),
        takes=_NEW_TAKES,  # see above
        quality=(20, 99),  # outputQuality, a platform option (seed 000: 20-99)
        cfg_scale=None,
        # no providerSettings (runware-sdk KlingaiVideo30TurboParams): no multi_prompt and no
        # sound switch; `audio` is accepted because the output has sound anyway (R7); inputs:
        # R7 names frameImages only (no referenceImages, referenceVideos, elements, video)
        supports=frozenset({"duration", "size", "aspect", "first_frame", "takes",
                            "output_format", "quality", "negative_prompt", "audio"}),
        prices={"audio": TURBO_PRICES[resolution]},  # R7; always audio
    )


MODELS = {**MODELS, **{alias: _turbo(alias) for alias in TURBO_RESOLUTIONS}}

# What each media input accepts (provider reference: images take a UUID, URL, data URI or
# base64; inputs.video and referenceVideos a UUID or URL only). Local files and chains: images
# travel inline as data URIs, videos and audio through mediaStorage, whose mediaUUID any input
# takes (runware.ai/docs/platform/media-storage).
ACCEPTED_KINDS: Mapping[str, frozenset[str]] = {
    "image": frozenset({"url", "uuid", "data", "path", "chain"}),
    "video": frozenset({"url", "uuid", "path", "chain"}),
    "audio": frozenset({"url", "uuid", "path", "chain"}),
}

# Rules of one model that need an input when another is given: (field, any of, rule).
REQUIRES: Mapping[str, tuple[tuple[str, tuple[str, ...], str], ...]] = {
    alias: (
        ("elements", ("first_frame", "last_frame"),
         f"When inputs.elements is provided, inputs.frameImages is required ({page})"),
    )
    for alias, page in (("kling-3-pro", "Runware's KlingAI Video 3.0 Pro page"),
                        ("kling-3-std", "Runware's Kling VIDEO 3.0 Standard page"),
                        ("kling-3-4k", "Runware's Kling VIDEO 3.0 4K page"))
}  # fmt: skip

# Models whose page says "When inputs.video or inputs.referenceVideos is provided,
# providerSettings cannot be used" (O3 Pro, 3.0 Omni Pro, O3 Standard), or "When
# inputs.referenceVideos is provided, providerSettings cannot be used" (3.0 Standard). The 3.0
# Pro page has no such rule (it even asks for providerSettings with referenceVideos), so 3.0
# Pro sends `sound` with them; the 4K page has neither rule. Values: the rule as the pages
# word it, for messages.
_NO_SETTINGS = "When inputs.video or inputs.referenceVideos is provided, providerSettings " \
    "cannot be used"
NO_SETTINGS_WITH_VIDEO: Mapping[str, str] = {
    "kling-o3-pro": f"{_NO_SETTINGS} (Runware's O3 Pro and 3.0 Omni Pro pages)",
    "kling-o3-std": f"{_NO_SETTINGS} (Runware's Kling VIDEO O3 Standard page)",
    "kling-3-std": "When inputs.referenceVideos is provided, providerSettings cannot be used "
                   "(Runware's Kling VIDEO 3.0 Standard page)",
}

# seeds 003/004: "When inputs.video or inputs.referenceVideos is provided,
# inputs.referenceImages is limited to 4 items."
MAX_REFERENCE_IMAGES_WITH_VIDEO = 4

SPEC = ProviderSpec(
    name="runware",
    key_variables=("RUNWARE_API_KEY",),
    endpoints=(("runware", "https://api.runware.ai/v1"),),  # Runware REST API (runware.ai/docs)
    capabilities=Capabilities(
        inline_media=frozenset({"image"}),  # images may be sent as data URI / base64
        # a voice is an element's audio (`voices`, seed 000), not an id: one per element, at
        # most 3 elements ("max items: 3")
        voices_per_task=3,
        # The client picks taskUUID, so after a lost answer the engine asks getResponse for
        # that very UUID and sends it again only when Runware does not know it.
        lost_answer="resend",
        # One request carries any number of tasks ("The payload for each request is a JSON
        # array with one or more objects", runware.ai/docs/platform/authentication), errors
        # are scoped to their task (runware.ai/docs/platform/errors): a run's getResponse
        # tasks go together.
        batch_poll=True,
        upload_ttl_s=None,  # mediaStorage keeps uploads until deleted (no retention documented)
    ),
    # doctor: the account's details, a read that generates nothing
    # (runware.ai/docs/platform/account-management: `accountManagement`, `getDetails`)
    key_check_endpoint="runware",
    models=MODELS,
)


# the last prompt made as sent: (shot, prompt, text), one tuple replaced whole (threads read
# a consistent one); it holds the frozen shot and prompt, so their ids are not reused
_LAST_PROMPT: tuple[Any, Any, str] = (None, None, "")


class RunwareProvider(Declared):
    """Builds Runware `videoInference` task bodies (without taskUUID) and estimates costs."""

    spec = SPEC

    def check(self, shot: ResolvedShot, spec: ModelSpec) -> list[Diagnostic]:
        diags = rules.check_source_kinds(shot, self.name, ACCEPTED_KINDS)
        diags += rules.check_element_frontal(shot, self.name)
        diags += _check_requires(shot, spec)
        diags += _check_video_inputs(shot, spec)
        diags += _check_voices(shot, self.name)
        diags += _check_turbo(shot, spec)
        return diags

    def route(self, spec: ModelSpec, request: Mapping[str, Any]) -> str:
        """The model id; for Turbo (one id, two tiers) also the resolution it is billed at."""
        model = request.get("model", spec.model_id)
        if spec.alias not in TURBO_RESOLUTIONS:
            return str(model)
        return f"{model} resolution {turbo_resolution(spec, request)}"

    def prompt_text(self, shot: ResolvedShot, prompt: Prompt) -> str:
        """The prompt as sent: `@name` becomes `<<<element_N>>>`, N by first appearance; its
        lines follow, `[<<<element_N>>>, tone]: "words"` (providers/dialogue.py)."""
        global _LAST_PROMPT
        last = _LAST_PROMPT  # the limits measure it, then the payload sends it: made once
        if last[0] is shot and last[1] is prompt:
            return last[2]
        numbers = {e.name: n for n, e in enumerate(shot.elements, 1)}
        text = prompt.render(lambda name: f"<<<element_{numbers[name]}>>>")
        lines = dialogue.lines_of(shot, prompt)
        if lines:
            speaker = dialogue.speaker_of(shot, lambda n, e: f"<<<element_{n}>>>")
            text = dialogue.spoken(text, lines, speaker)
        _LAST_PROMPT = (shot, prompt, text)
        return text

    def payload(self, shot: ResolvedShot, spec: ModelSpec, ref: Ref) -> dict[str, Any]:
        # NOTE: the key order follows the seed examples (taskType, model, positivePrompt,
        # negativePrompt, width, height, duration, providerSettings, inputs).
        body: dict[str, Any] = {"taskType": "videoInference", "model": spec.model_id}
        prompt = dialogue.main_prompt(shot)
        if prompt is not None:
            body["positivePrompt"] = self.prompt_text(shot, prompt)
        if shot.negative_prompt is not None and "negative_prompt" in spec.supports and not (
                spec.alias in TURBO_RESOLUTIONS and shot.first_frame is None):
            body["negativePrompt"] = shot.negative_prompt  # Turbo: with frameImages only (R7)
        size = output_size(shot, spec)
        if size is not None:
            body["width"], body["height"] = size
        elif spec.alias in TURBO_RESOLUTIONS:
            # R7: `resolution` only with inputs.frameImages (and never with width/height)
            body["resolution"] = TURBO_RESOLUTIONS[spec.alias]
        duration = rules.effective_duration(shot)
        if duration is not None and shot.video is None:
            body["duration"] = duration
        body.update(_output_options(shot))
        settings = self._settings(shot, spec)
        if settings:
            body["providerSettings"] = {"klingai": settings}
        inputs = self._inputs(shot, ref)
        if inputs:
            body["inputs"] = inputs
        return body

    def cost(
        self, shot: ResolvedShot, spec: ModelSpec, payload: Mapping[str, Any]
    ) -> Decimal | None:
        rate = _rate(spec, payload)
        seconds = billed_seconds(shot, payload)
        if rate is None or seconds is None:
            return None
        return rate * seconds * int(payload.get("numberResults", 1))

    def cost_note(
        self, shot: ResolvedShot, spec: ModelSpec, payload: Mapping[str, Any]
    ) -> str | None:
        key = price_key(payload, spec)
        if _rate(spec, payload) is None:
            return f"Runware publishes no {key.replace('_', ' ')} price for {spec.model_id}"
        if "video" in payload.get("inputs", {}) and shot.duration is None:
            if billed_seconds(shot, payload) is None:
                return (
                    "a video edit is billed by the source clip's duration, unknown until run time"
                )
            return "a video edit is billed by the source clip's duration (probed from the file)"
        if int(payload.get("numberResults", 1)) > 1:
            return "numberResults times the price of one result"
        return None

    def _settings(self, shot: ResolvedShot, spec: ModelSpec) -> dict[str, Any]:
        settings: dict[str, Any] = {}
        if spec.alias in TURBO_RESOLUTIONS:
            return settings  # runware-sdk KlingaiVideo30TurboParams has no providerSettings
        if shot.audio is True and "audio" in spec.supports and not _no_settings(shot, spec):
            # seed 004 examples, sdk-python IKlingAIProviderSettings.sound: Optional[bool];
            # sound defaults to false
            settings["sound"] = True
        if shot.multi_prompt:
            settings["multiPrompt"] = [
                {"prompt": self.prompt_text(shot, seg.prompt), "duration": seg.duration_s}
                for seg in shot.multi_prompt
            ]
        return settings

    def _inputs(self, shot: ResolvedShot, ref: Ref) -> dict[str, Any]:
        inputs: dict[str, Any] = {}
        frames = [(shot.first_frame, "first"), (shot.last_frame, "last")]
        frame_images = [{"image": ref(src, "image"), "frame": pos} for src, pos in frames if src]
        if frame_images:
            inputs["frameImages"] = frame_images
        if shot.reference_images:
            inputs["referenceImages"] = [ref(s, "image") for s in shot.reference_images]
        if shot.video is not None:
            inputs["video"] = ref(shot.video, "video")
        if shot.reference_videos:
            inputs["referenceVideos"] = [ref(s, "video") for s in shot.reference_videos]
        if shot.elements:
            inputs["elements"] = [element_body(e, ref) for e in shot.elements]
        return inputs


    # -- run time: requests built and answers read; the engine sends them ------------------

    def inline(self, data: bytes, mime: str) -> str:
        """A local image as the API takes it inline (providers.md: data URI accepted)."""
        import base64

        return f"data:{mime};base64,{base64.b64encode(data).decode()}"

    def submit_request(self, job: Job | None, request: Mapping[str, Any], task_id: str,
                       base_url: str, key: Credential) -> httpx.Request:
        """POST of the task array: taskUUID right after taskType (as in the seeds), then the
        API options every submission sets: async delivery and the cost in the answer."""
        import httpx

        body = {"taskType": request["taskType"], "taskUUID": task_id}
        body.update((k, v) for k, v in request.items() if k != "taskType")
        body.update({"deliveryMethod": "async", "includeCost": True})
        return httpx.Request("POST", base_url, json=[body], headers=_auth(key))

    def read_submit(self, response: httpx.Response, task_id: str) -> Handle:
        """The handle of an accepted task. `conflictTaskUUID` can only answer a re-send, which
        the engine makes only after getResponse said the UUID was unknown: the task appeared
        in between, so it exists (poll it) and is not paid twice."""
        data = _answer(response)
        errors = _errors(data)
        if errors and all(e.get("code") == "conflictTaskUUID" for e in errors):
            return Handle(task_id)
        _raise_for(response, errors)
        return Handle(task_id)

    def poll_request(self, handle: Handle, base_url: str, key: Credential) -> httpx.Request:
        """getResponse for one task (the engine's batched poll calls `batch_poll_request`)."""
        return self.batch_poll_request([handle], base_url, key)

    def batch_poll_request(self, handles: Sequence[Handle], base_url: str,
                           key: Credential) -> httpx.Request:
        """One getResponse task per handle, all in one request."""
        import httpx

        body = [{"taskType": "getResponse", "taskUUID": h.task_id} for h in handles]
        return httpx.Request("POST", base_url, json=body, headers=_auth(key))

    def read_status(self, response: httpx.Response, handle: Handle, takes: int) -> Status:
        return self.read_statuses(response, [handle], {handle.task_id: takes})[handle.task_id]

    def read_statuses(self, response: httpx.Response, handles: Sequence[Handle],
                      takes: Mapping[str, int]) -> dict[str, Status]:
        """Each task's state. An `errors[]` entry of a task is its final answer whatever the
        HTTP status, as the official SDKs read it (runware-sdk 1.8.0 `_extract_items`); a code
        meaning the task does not exist (`...NotFound`, `...Expired`, runware-sdk `derive_code`)
        is `unknown`. A task the answer does not mention stays processing."""
        data = _answer(response)
        errors = _errors(data)
        ids = {h.task_id for h in handles}
        loose = [e for e in errors if e.get("taskUUID") not in ids]
        if len(handles) == 1:  # an error without taskUUID can only be about the one task
            errors = [{**e, "taskUUID": handles[0].task_id} for e in errors]
            loose = []
        _raise_for(response, loose, final_ok=True, attributed=len(errors) > len(loose))
        statuses = {}
        items = [i for i in data.get("data") or [] if isinstance(i, dict)]
        for handle in handles:
            mine = [e for e in errors if e.get("taskUUID") == handle.task_id]
            own = [i for i in items if i.get("taskUUID") == handle.task_id]
            failed = [i for i in own if i.get("status") == "error"]
            if mine and _not_found(mine[0]):
                statuses[handle.task_id] = Status("unknown", message=handle.task_id)
            elif mine or failed:
                error = mine[0] if mine else (failed[0].get("error") or failed[0])
                statuses[handle.task_id] = Status("failed", message=_message(error))
            else:
                statuses[handle.task_id] = _progress(own, takes[handle.task_id])
        return statuses

    async def upload(self, send: Send, data: bytes, mime: str, name: str, url: UrlOf,
                     key: Credential) -> str:
        """mediaStorage upload (runware.ai/docs/platform/media-storage): the bytes as a data
        URI; the answer's mediaUUID is reusable as any input."""
        import uuid

        import httpx

        task = {"taskType": "mediaStorage", "taskUUID": str(uuid.uuid4()), "operation": "upload",
                "media": self.inline(data, mime)}
        response = await send(httpx.Request("POST", url("runware"), json=[task],
                                            headers=_auth(key)))
        answer = _answer(response)
        _raise_for(response, _errors(answer))
        for item in answer.get("data") or []:
            if isinstance(item, dict) and isinstance(item.get("mediaUUID"), str) \
                    and item["mediaUUID"]:
                return item["mediaUUID"]
        raise ProviderError("runware answered the upload without a mediaUUID")

    # doctor: the free account query (SPEC.key_check_endpoint)
    def key_check_request(self, base_url: str, key: Credential) -> httpx.Request:
        import uuid

        import httpx

        task = {"taskType": "accountManagement", "taskUUID": str(uuid.uuid4()),
                "operation": "getDetails"}
        return httpx.Request("POST", base_url, json=[task], headers=_auth(key))

    def read_key_check(self, response: httpx.Response) -> Account:
        """The account's `balance`; ProviderError for a refused key (`invalidApiKey`)."""
        answer = _answer(response)
        _raise_for(response, _errors(answer))
        for item in answer.get("data") or []:
            if isinstance(item, dict) and item.get("taskType") == "accountManagement":
                balance = item.get("balance")
                number = isinstance(balance, (int, float)) and not isinstance(balance, bool)
                return Account(_decimal(balance) if number else None)
        raise ProviderError("runware answered the account query without its details")


def _progress(items: list[dict], takes: int) -> Status:
    """processing until `takes` distinct results succeeded; `invalid` (naming the field) when a
    success item of this task has no usable `videoURL`: the generation is paid, so it is
    reported and kept, never polled until the timeout nor abandoned for a traceback.

    A reported `cost` goes through `read_cost`: NaN, Infinity, a negative number or "12abc"
    give no cost and a `cost_note`, so the engine counts the estimate and says why."""
    done: dict[str, dict] = {}
    for item in items:
        if item.get("status", "success") != "success":
            continue
        url = answer_url(item.get("videoURL"))
        if url is None:
            return Status("invalid", message=_bad_url(item.get("videoURL")))
        video_uuid = item.get("videoUUID")
        done.setdefault(video_uuid if isinstance(video_uuid, str) and video_uuid else url, item)
    if len(done) < takes:
        return Status("processing")
    return Status("done", tuple(_result(i) for i in list(done.values())[:takes]))


def _bad_url(value: Any) -> str:
    """Which field of a success answer is wrong, and how."""
    if value is None:
        return "videoURL: missing from a success result"
    return f"videoURL: not an http(s) URL ({value!r:.60})"


def _result(item: dict) -> Result:
    cost, note = read_cost(item.get("cost"), "runware")
    seed = item.get("seed")
    seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else None
    return Result(item["videoURL"], seed, cost, cost_note=note)


def _not_found(error: dict) -> bool:
    code = str(error.get("code") or "")
    return code.endswith(("NotFound", "Expired")) or code == "taskFailedOrNotFound"


def _auth(key) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.reveal()}"}


def _answer(response) -> dict:
    """The JSON envelope, in the shapes the SDKs accept; `data` and `errors` always lists."""
    data = json_answer(response, "runware")
    if isinstance(data, list):  # a bare list of results (SDK error parser accepts it too)
        data = {"data": data}
    if isinstance(data, dict) and "error" in data and "errors" not in data:
        data = {**data, "errors": [data["error"]]}
    if not isinstance(data, dict):
        return {}
    return {**data, **{k: data[k] if isinstance(data.get(k), list) else []
                       for k in ("data", "errors")}}


def _errors(data: dict) -> list[dict]:
    return [e for e in data.get("errors") or [] if isinstance(e, dict)]


def _raise_for(response, errors: list[dict], final_ok: bool = False,
               attributed: bool = False) -> None:
    """TransientError for rate limits and server faults, ProviderError for refusals.

    final_ok: errors of the tasks themselves are answers, not refusals of the request
    (attributed: some were, so a 4xx status is theirs)."""
    status = response.status_code
    if status in TRANSIENT_STATUS:
        raise TransientError(f"runware answered HTTP {status}"
                             + (f": {_message(errors[0])}" if errors else ""),
                             retry_after_s(response))
    if status == 401 or any(e.get("code") == "invalidApiKey" for e in errors):
        raise ProviderError("runware refused the API key (invalidApiKey): check RUNWARE_API_KEY")
    if (status >= 400 and not attributed) or (errors and not final_ok):
        detail = _message(errors[0]) if errors else f"HTTP {status}"
        raise ProviderError(f"runware refused the task: {detail}")


def _message(error: Any) -> str:
    if not isinstance(error, dict):  # e.g. `"error": "text"` in a failed item
        return str(error)[:500]
    code, text = error.get("code"), error.get("message") or "no message"
    parameter = error.get("parameter")
    message = f"{code}: {text}" + (f" (parameter {parameter})" if parameter else "") \
        if code else str(text)
    if _about_voices(error):
        message += VOICES_HINT
    return message


# Item 10 of issue 21: the element key for voice audio. Seed 000 (Runware's 3.0 Pro page) names
# it `voices`, which kling-compose sends; Runware's official Python SDK names it `voice`
# (sdk-python runware/types.py, `IElements.voice: Optional[List[str]]`). Until a real run
# settles it, a refusal of that field says so.
VOICES_HINT = (
    "\n  hint: Runware's KlingAI Video 3.0 Pro page (seed 000) names the element key `voices`, "
    "which kling-compose sends; Runware's official Python SDK (sdk-python runware/types.py, "
    "IElements) names it `voice`. To send `voice`, remove `voices:` from the element and write "
    "the shot's whole element list in provider_options: {inputs: {elements: [{id: ..., "
    "frontalImage: <URL or UUID>, voice: [<URL or UUID>]}]}} (provider_options replaces the "
    "list; its inputs are sent as written); please report which key Runware accepted"
)


def _about_voices(error: dict) -> bool:
    """True when a refusal is about the elements' voice field (`voices` / `voice`): its
    parameter names it (`inputs.elements[0].voices`), or, without a parameter, its code or
    message names a voice field of an element (`invalidVoices`, "... voices ... elements")."""
    parameter = error.get("parameter")
    if isinstance(parameter, str) and parameter:
        return re.search(r"(^|[.\]])voices?$", parameter, re.IGNORECASE) is not None
    code = str(error.get("code") or "")
    text = str(error.get("message") or "").lower()
    return code.lower() in ("invalidvoice", "invalidvoices") or (
        re.search(r"\bvoices?\b", text) is not None and "element" in text)


def _decimal(value) -> Decimal | None:
    """A finite number as a Decimal; None for anything else (NaN, Infinity, None)."""
    amount = None if value is None else Decimal(str(value))
    return amount if amount is not None and amount.is_finite() else None


def _no_settings(shot: ResolvedShot, spec: ModelSpec) -> bool:
    """True when the shot's video inputs forbid providerSettings on this model."""
    video_input = shot.video is not None or bool(shot.reference_videos)
    return video_input and spec.alias in NO_SETTINGS_WITH_VIDEO


def output_size(shot: ResolvedShot, spec: ModelSpec) -> tuple[int, int] | None:
    """width x height to send: none when an input image or video sets the frame; an aspect
    (or none: 16:9) is the model's size of that aspect (its dimension table)."""
    if rules.follows_input(shot):
        return None
    if shot.size is not None:
        return shot.size
    table = {rules.aspect_of(size): size for size in spec.sizes or ()} or ASPECT_SIZES
    if shot.aspect is not None:
        return table.get(shot.aspect, DEFAULT_SIZE)  # another aspect: check_size's error
    return table.get("16:9", DEFAULT_SIZE)


def turbo_resolution(spec: ModelSpec, payload: Mapping[str, Any]) -> str:
    """The resolution a Turbo request is made (and billed) at, as sent: its `resolution`, or
    the tier whose dimension table holds its width x height, else the alias's tier."""
    sent = payload.get("resolution")
    if isinstance(sent, str) and sent in TURBO_SIZES:
        return sent
    size = (payload.get("width"), payload.get("height"))
    for resolution, sizes in TURBO_SIZES.items():
        if size in sizes:
            return resolution
    return TURBO_RESOLUTIONS[spec.alias]


def _rate(spec: ModelSpec, payload: Mapping[str, Any]) -> Decimal | None:
    """USD per second of one result: Turbo's by the resolution sent (always with audio), the
    others' by `price_key`."""
    if spec.alias in TURBO_RESOLUTIONS:
        return TURBO_PRICES.get(turbo_resolution(spec, payload))
    return spec.prices.get(price_key(payload, spec))


def element_body(element: Element, ref: Ref) -> dict[str, Any]:
    """`inputs.elements[]` item: {id, description, frontalImage, images, videos, voices, tags};
    a `voice:` sample is one more of the element's voices (Runware has no voice ids)."""
    body: dict[str, Any] = {"id": element.id or element.name}
    if element.description:
        body["description"] = element.description
    if element.frontal_image is not None:
        body["frontalImage"] = ref(element.frontal_image, "image")
    for key, sources, media in (
        ("images", element.images, "image"),
        ("videos", element.videos, "video"),
        ("voices", (*element.voices, *(() if element.voice is None else (element.voice,))),
         "audio"),
    ):
        if sources:
            body[key] = [ref(s, media) for s in sources]
    if element.tags:
        body["tags"] = list(element.tags)
    return body


def _check_voices(shot: ResolvedShot, provider: str) -> list[Diagnostic]:
    """A `voice:` sample travels as the element's voice audio, which seed 000 allows only
    beside images ("Voices via voices (can only be combined with images, not videos)"); a
    `voice_id:` names a voice of another provider's account: Runware has none to bind."""
    diags = [Diagnostic(
        f"element '{e.name}' has a video and a voice; runware combines voices with images only",
        dialogue.voice_where(e),
        "seed 000, inputs.elements: voices \"can only be combined with images, not videos\"; "
        "give the element images instead of the video, or drop `voice:`",
    ) for e in shot.elements if e.voice is not None and e.videos]
    ids = [e for e in dialogue.voiced(shot) if e.voice is None]
    diags += dialogue.prompt_only(shot, provider, "Runware has no voice ids; an element "
                                  "takes a voice as an audio file, `voice:`", ids)
    return diags


def _output_options(shot: ResolvedShot) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if shot.takes != 1:  # numberResults defaults to 1; the seed bodies leave it out
        options["numberResults"] = shot.takes
    if shot.output_format is not None:
        options["outputFormat"] = shot.output_format.upper()
    if shot.quality is not None:
        options["outputQuality"] = shot.quality
    return options


def price_key(payload: Mapping[str, Any], spec: ModelSpec | None = None) -> str:
    """Which per-second price applies: "video_input", "audio" or "silent" (Turbo: "audio"
    always, its output has sound without a switch)."""
    if spec is not None and spec.alias in TURBO_RESOLUTIONS:
        return "audio"
    inputs = payload.get("inputs", {})
    elements = inputs.get("elements", ())
    if "video" in inputs or inputs.get("referenceVideos") or any("videos" in e for e in elements):
        return "video_input"
    if payload.get("providerSettings", {}).get("klingai", {}).get("sound"):
        return "audio"
    return "silent"


def billed_seconds(shot: ResolvedShot, payload: Mapping[str, Any]) -> int | None:
    """Seconds of output billed: the duration sent, or for an edit the source clip's length."""
    if "video" not in payload.get("inputs", {}):
        return int(payload.get("duration", DEFAULT_DURATION_S))
    if shot.video is not None and shot.video.kind == "path" and shot.video.path is not None:
        probed = probe_duration_s(shot.video.path)  # the file says what will be billed
        if probed is not None:
            return probed
    return shot.duration  # on an edit, `duration` states the source clip's length


def probe_duration_s(path: Path) -> int | None:
    """A local clip's duration in whole seconds, or None when it cannot be read."""
    import av  # lazy: validate must start fast

    try:
        with av.open(str(path)) as container:
            if container.duration is None:
                return None
            return round(container.duration / av.time_base)
    except (av.FFmpegError, OSError):
        return None


def _check_requires(shot: ResolvedShot, spec: ModelSpec) -> list[Diagnostic]:
    return [
        Diagnostic(
            f"{field} needs a {' or '.join(needs)} on {rules.label('runware', spec)}",
            shot.where(field),
            rule,
        )
        for field, needs, rule in REQUIRES.get(spec.alias, ())
        if rules.is_set(shot, field) and not any(rules.is_set(shot, n) for n in needs)
    ]


def _check_video_inputs(shot: ResolvedShot, spec: ModelSpec) -> list[Diagnostic]:
    diags = []
    if shot.audio is True and _no_settings(shot, spec):
        diags.append(Diagnostic(
            "audio is not sent: a shot with a video input cannot carry providerSettings",
            shot.where("audio"),
            f"{NO_SETTINGS_WITH_VIDEO[spec.alias]}; set audio: false to silence this warning",
            severity="warning",
        ))  # fmt: skip
    if "video" not in spec.supports or not (shot.video or shot.reference_videos):
        return diags
    if len(shot.reference_images) > MAX_REFERENCE_IMAGES_WITH_VIDEO:
        diags.append(Diagnostic(
            f"{len(shot.reference_images)} reference_images given; with a video input "
            f"{rules.label('runware', spec)} takes at most {MAX_REFERENCE_IMAGES_WITH_VIDEO}",
            shot.where("reference_images"),
            "When inputs.video or inputs.referenceVideos is provided, inputs.referenceImages "
            "is limited to 4 items (Runware's O3 Pro and 3.0 Omni Pro pages)",
        ))  # fmt: skip
    source = shot.video
    if source is not None and source.kind == "path" and source.path is not None and \
            shot.duration is not None:
        probed = probe_duration_s(source.path)
        if probed is not None and probed != shot.duration:
            diags.append(Diagnostic(
                f"duration: {shot.duration} does not shorten a video edit: the source clip "
                f"lasts {probed} s, and the edit is billed for {probed} s",
                shot.where("duration"),
                "a video edit keeps its source's length (Runware's 3.0 Omni Pro page: "
                "inputs.video cannot be used with duration); trim the source clip to pay less",
                severity="warning",
            ))  # fmt: skip
    return diags


def _check_turbo(shot: ResolvedShot, spec: ModelSpec) -> list[Diagnostic]:
    """Turbo has no sound switch and its output has sound (R7 prices it "with native audio"):
    `audio: false` is a warning; a negative prompt travels only with a first frame."""
    if spec.alias not in TURBO_RESOLUTIONS:
        return []
    diags = []
    if shot.audio is False:
        diags.append(Diagnostic(
            f"audio: false is not honoured: {rules.label('runware', spec)} has no sound switch "
            "and its clips have sound",
            shot.where("audio"),
            f"mute the clip in the edit, or choose kling-3-std (silent at $0.084/s); "
            f"{spec.source}: \"with native audio\"",
            severity="warning",
        ))  # fmt: skip
    if shot.negative_prompt is not None and shot.first_frame is None:
        diags.append(Diagnostic(
            f"negative_prompt is not sent: {rules.label('runware', spec)} takes one only with "
            "a first_frame",
            shot.where("negative_prompt"),
            f"When negativePrompt is provided, inputs.frameImages is required ({spec.source}); "
            "add a first_frame or remove negative_prompt",
            severity="warning",
        ))  # fmt: skip
    return diags
