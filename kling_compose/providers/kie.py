"""kie.ai's Kling 3.0 (model `kling-3.0/video`) and 3.0 Turbo: capability data and one class.

Kling 3.0 Turbo (issue 25, docs/kling-family.md K3-K5) is a pair of models of its own,
`kling/v3-turbo-text-to-video` and `kling/v3-turbo-image-to-video`, with their own input shapes
(see TURBO_* below). kie has no O3 (Omni) and no 4.0 model (K2, K3).

Sources (see docs/providers.md, "kie"): the Kling 3.0 page
https://docs.kie.ai/market/kling/kling-3-0 (OpenAPI `.md`, the newer spec: `mode` std|pro|4K, elements with `element_input_audio_urls`) and
an older copy of the same page (`mode` std|pro, `element_input_video_urls`); the task query
https://docs.kie.ai/market/common/get-task-detail; the File Upload API
https://docs.kie.ai/file-upload-api. Where the two spec versions disagree this module takes the
stricter reading, so a request is never refused after other shots were paid for; a value that
neither version states is marked [inferred].

Fields that do not apply are left out as the docs' own usage examples do: a single-shot body has
no `multi_prompt`, a multi-shot body no `prompt` (both are in the schema's `required` list, which
the examples do not follow) [inferred]. `aspect_ratio` is always sent (required in the schema,
sent by every example, with or without `image_urls`).

Prices: kie's pricing page (https://kie.ai/pricing, read 2026-06-30 from the copy
henjicc/Henji-AI@fa7c35ab docs/api/KIE/kie-ai-pricing-20260630-023103.md), USD per second of
"Kling 3.0, video": 720P $0.07 without audio / $0.10 with audio, 1080P $0.09 / $0.135, 4K
$0.335 either way. recordInfo reports no cost (its `costTime` is the processing time in ms).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urlsplit

from . import dialogue, rules
from ..errors import Diagnostic
from ..model import Element, FrameSource, Prompt, ResolvedShot
from .base import (
    Account,
    Capabilities,
    Credential,
    Declared,
    Handle,
    Job,
    ModelSpec,
    ProviderSpec,
    Ref,
    Send,
    Status,
    UrlOf,
    image_size,
)

if TYPE_CHECKING:
    import httpx

NAME = "kie"
MODEL_ID = "kling-3.0/video"  # Kling 3.0 spec: `model` enum is only "kling-3.0/video"
_SOURCE = "kie.ai's Kling 3.0 page, docs.kie.ai/market/kling/kling-3-0"

# storyboard alias -> `input.mode` (newer spec: std | pro | 4K; the older one has no 4K)
MODES: Mapping[str, str] = {"kling-3-std": "std", "kling-3-pro": "pro", "kling-3-4k": "4K"}

# the output size of each mode and aspect (Kling 3.0 spec, "Resolution Mappings")
RESOLUTIONS: Mapping[str, Mapping[str, tuple[int, int]]] = {
    "std": {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720)},
    "pro": {"16:9": (1920, 1080), "9:16": (1080, 1920), "1:1": (1080, 1080)},
    "4K": {"16:9": (3840, 2160), "9:16": (2160, 3840), "1:1": (2160, 2160)},
}


ASPECTS = ("16:9", "9:16", "1:1")  # `aspect_ratio` enum

# USD per second of output by mode (its resolution) and sound: kie's pricing page, "Kling 3.0,
# video, with/without audio-720P/1080P/4K", read 2026-06-30 (copy: henjicc/Henji-AI@fa7c35ab,
# docs/api/KIE/kie-ai-pricing-20260630-023103.md). std makes 720p, pro 1080p (RESOLUTIONS).
PRICES_DATE = "2026-06-30"
PRICES: Mapping[str, Mapping[str, Decimal]] = {
    "std": {"silent": Decimal("0.07"), "audio": Decimal("0.10")},
    "pro": {"silent": Decimal("0.09"), "audio": Decimal("0.135")},
    "4K": {"silent": Decimal("0.335"), "audio": Decimal("0.335")},
}


def _spec(alias: str) -> ModelSpec:
    return ModelSpec(
        alias=alias,
        model_id=MODEL_ID,
        source=_SOURCE,
        durations_s=(3, 15),  # `duration` enum "3".."15"
        prompt_chars=(2, 2500),  # product brief: the spec gives no bound for `prompt`
        sizes=None,  # the API takes an aspect ratio; the mode sets the resolution
        aspects=ASPECTS,  # `aspect_ratio` enum
        # K1 "Resolution Mappings": std 720P, pro 1080P, 4K 2160P
        resolutions=({"std": "720p", "pro": "1080p", "4K": "4k"}[MODES[alias]],),
        frame_images=(1, 2),  # `image_urls`: 1 = first frame, 2 = first + last
        max_elements=3,  # `kling_elements` maxItems 3
        max_element_images=3,  # "2-4 URLs required" = frontal + at most 3
        takes=(1, 1),  # one video per task
        quality=None,
        cfg_scale=None,
        multi_prompt_segments=5,  # newer spec: "Supports up to 5 shots"
        segment_s=(1, 12),  # `multi_prompt[].duration`: integer, minimum 1, maximum 12
        supports=frozenset(
            {"multi_prompt", "duration", "size", "aspect", "audio", "first_frame",
             "last_frame", "elements"}
        ),  # fmt: skip
        prices=PRICES[MODES[alias]],
    )


MODELS: Mapping[str, ModelSpec] = {alias: _spec(alias) for alias in MODES}

# -- Kling 3.0 Turbo (issue 25) ----------------------------------------------------------------
# Sources: K4 = kie's "Kling V3 Turbo 文生视频" (text-to-video) createTask OpenAPI and K5 = its
# "Kling V3 Turbo 图生视频" (image-to-video), copies henjicc/Henji-AI@a4cc65b docs/api/KIE/Video
# Models/Kling/071-..., 072-...; K3 = kie's pricing page of 2026-06-30 (the copy named above),
# rows "kling 3.0 turbo, text-to-video/image-to-video, 720P/1080P".
# K4 `input`: prompt (maxLength 2500), duration (string, "3s - 15s", default "5"), aspect_ratio
# (1:1 | 9:16 | 16:9, default 16:9), resolution (720p | 1080p, default 720p), all four required.
# K5 `input`: prompt, image_urls (uploaded file URLs, image/jpeg or image/png, at most 10 MB),
# duration, resolution, all four required; no aspect_ratio (the image sets the frame).
# Neither has sound, negative_prompt, multi_shots/multi_prompt, kling_elements, mode or an end
# frame. Audio: there is no switch, and Turbo's clips have sound (fal's and Runware's Turbo
# pages: "with native audio"; docs/kling-family.md Table 3): one price per resolution, kept
# under "audio"; `audio: false` is a warning.
TURBO_MODEL_ID = "kling/v3-turbo"  # + "-text-to-video" (K4) or "-image-to-video" (K5)
TURBO_RESOLUTIONS: Mapping[str, str] = {"kling-3-turbo-std": "720p", "kling-3-turbo-pro": "1080p"}
# K3, USD per second, text-to-video and image-to-video alike
TURBO_PRICES: Mapping[str, Decimal] = {"720p": Decimal("0.09"), "1080p": Decimal("0.1125")}
TURBO_SHORT_SIDE = {"720p": 720, "1080p": 1080}  # what the resolution names [inferred]
_SOURCE_TURBO = ("kie.ai's Kling V3 Turbo pages, models kling/v3-turbo-text-to-video and "
                 "kling/v3-turbo-image-to-video")


def _turbo_spec(alias: str) -> ModelSpec:
    return ModelSpec(
        alias=alias,
        model_id=TURBO_MODEL_ID,
        source=_SOURCE_TURBO,
        durations_s=(3, 15),  # K4/K5 `duration`: "3s - 15s"
        prompt_chars=(2, 2500),  # K4/K5 `prompt` maxLength 2500 (the minimum: as 3.0's)
        sizes=None,  # the API takes an aspect ratio; `resolution` sets the size
        aspects=ASPECTS,  # K4 `aspect_ratio` enum
        resolutions=(TURBO_RESOLUTIONS[alias],),  # K4/K5 `resolution` 720p | 1080p
        frame_images=(1, 1),  # K5 `image_urls`: the start image; no end frame
        takes=(1, 1),  # one video per task
        quality=None,
        cfg_scale=None,
        # `audio` is accepted: the clip has sound anyway (no switch to send)
        supports=frozenset({"duration", "size", "aspect", "audio", "first_frame"}),
        prices={"audio": TURBO_PRICES[TURBO_RESOLUTIONS[alias]]},
    )


MODELS = {**MODELS, **{alias: _turbo_spec(alias) for alias in TURBO_RESOLUTIONS}}

SEGMENT_CHARS = 500  # `multi_prompt[].prompt` maxLength 500
ELEMENT_REF_CHARS = 37  # "Each @element will occupy 37 characters"
ELEMENT_IMAGES = (2, 4)  # `element_input_urls`: "2-4 URLs required"
ELEMENT_VOICES = 1  # newer spec: "Up to 1 audio URL" (`element_input_audio_urls`)
# "Maximum file size: 10MB per image"; Turbo's start image too (K5: "最大文件大小：10.0MB")
ELEMENT_IMAGE_BYTES = 10 * 1024 * 1024
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})  # "Only JPG, JPEG, PNG" / "JPG, PNG"
# image suffixes a URL may end with that kie does not take
_OTHER_IMAGE_SUFFIXES = frozenset(
    {".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif", ".svg"}
)
DEFAULT_DURATION = 5  # `duration` default "5"; sent explicitly (required in the schema)
DEFAULT_ASPECT = "16:9"  # sent explicitly: the newer spec's default is 16:9, the older one's 1:1

# Images and voices are sent as URLs; local files and chained frames are uploaded by the
# engine (File Upload API) and sent as their downloadUrl. Data URIs and provider UUIDs are
# refused. Videos are refused by this provider's own element check and by `supports`
# (`video`, `reference_videos`), so the kind check must not report them a second time.
ACCEPTED_KINDS: Mapping[str, frozenset[str]] = {
    "image": frozenset({"url", "path", "chain"}),
    "audio": frozenset({"url", "path", "chain"}),
    "video": frozenset({"url", "uuid", "data", "path", "chain"}),
}

UPLOAD_PATH = "kling-compose"  # `uploadPath`: "without leading or trailing slashes"

# -- run time: createTask, recordInfo, file-stream-upload -------------------------------------

# rate limited, maintenance, server error (the upload API's 500 too)
_RETRY_CODES = frozenset({429, 455, 500})
# A server error answering createTask may come after the task was made: sending it again could
# pay twice (429 and 455 say the request was not taken, a gateway's 503 that it never arrived)
_SUBMIT_LOST_CODES = frozenset({500})
_SUBMIT_LOST_STATUS = frozenset({500, 502, 504})
# recordInfo: 404 "Task not found" says kie does not know the task; 422 "recordInfo is null" is
# what kie answers right after createTask, before the task's record exists (K3 lists it apart
# from 404; public clients poll on through it): the task is not shown *yet*, never "unknown"
_UNKNOWN_TASK_CODE = 404
_UNCONFIRMED_CODE = 422
_HINTS = {
    401: "check KIE_API_KEY",
    402: "insufficient credits: add credits to the kie.ai account",
    433: "the sub-key's usage limit is exceeded: raise it or use another key",
    505: "the feature is disabled at kie.ai",
}


def _code(body: Any) -> int | None:
    """The envelope's `code` as an int (the newer spec types it as a string in one place)."""
    value = body.get("code") if isinstance(body, dict) else None
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


def _message(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    return body.get("msg") or body.get("message")


def _refusal(code: int | None, message: str | None, what: str) -> str:
    hint = _HINTS.get(code) if code is not None else None
    text = f"kie refused the {what}: code {code}: {message}"
    return f"{text} ({hint})" if hint else text


def _judge(response, body: Any, label: str, what: str) -> int | None:
    """Raise for anything but a success; returns the body's code. The body's `code` decides
    (kie answers its codes with HTTP 200 on createTask); without one, the HTTP status does."""
    from .base import TRANSIENT_STATUS, ProviderError, TransientError, retry_after_s

    code, message, status = _code(body), _message(body), response.status_code
    if code in _RETRY_CODES or (code is None and status in TRANSIENT_STATUS):
        shown = f"code {code}" if code is not None else f"HTTP {status}"
        raise TransientError(f"{label} answered {shown}: {message}", retry_after_s(response))
    if code is not None and code != 200:
        raise ProviderError(_refusal(code, message, what))
    if status >= 400 or code is None:
        raise ProviderError(f"{label} refused the {what} (HTTP {status}): {message}")
    return code


def _envelope(response, what: str) -> dict:
    """The `{code, msg, data}` answer of createTask or the credit query, judged by `_judge`
    (recordInfo's is read field by field in `read_status`)."""
    from .base import ProviderError, json_answer

    body = json_answer(response, NAME)
    if not isinstance(body, dict):
        raise ProviderError(f"kie answered the {what} with JSON that is not an object")
    _judge(response, body, NAME, what)
    return body


SPEC = ProviderSpec(
    name=NAME,
    key_variables=("KIE_API_KEY",),
    endpoints=(
        ("kie", "https://api.kie.ai"),  # docs.kie.ai: Market API host
        ("kie-upload", "https://kieai.redpandaai.co"),  # docs.kie.ai: File Upload API host
    ),
    capabilities=Capabilities(
        inline_media=frozenset(),  # everything local is uploaded
        # a voice is an element's audio (`element_input_audio_urls`, up to 1), at most 3
        # elements (`kling_elements` maxItems 3)
        voices_per_task=3,
        lost_answer="ask",  # the server assigns taskId and has no lookup: the user is asked
        batch_poll=False,  # recordInfo takes one taskId
        upload_ttl_s=20 * 3600,  # uploads are kept 24 h (pages say 24 h or 3 days): margin 4 h
        # `recordInfo is null` (code 422) is polled as processing this long before the user is
        # asked (never re-submitted). Public clients meet it right after createTask and poll
        # on; kie documents no bound for it, and tells to stop polling a whole task after 10-15
        # min (get-task-detail, "Polling best practices"): 5 min is far past a record's delay,
        # and a third of that bound, so a task kie never made reaches the user within minutes.
        unconfirmed_grace_s=5 * 60,
        # "generated content URLs typically expire after 24 hours" (get-task-detail)
        result_ttl_s=24 * 3600,
    ),
    # doctor: "Get Remaining Credits", `GET /api/v1/chat/credit` answering `{"code": 200,
    # "msg": "success", "data": 100}` (docs.kie.ai/common-api/get-account-credits)
    key_check_endpoint="kie",
    models=MODELS,
)


class KieTasks(Declared):
    """createTask (the server assigns taskId), then recordInfo until success or fail."""

    def route(self, spec: ModelSpec, request: Mapping[str, Any]) -> str:
        """The model and its tier: Kling 3.0's mode (std, pro, 4K), Turbo's resolution."""
        fields = request.get("input")
        fields = fields if isinstance(fields, Mapping) else {}
        mode, resolution = fields.get("mode"), fields.get("resolution")
        return (f"{request.get('model', spec.model_id)}" + (f" mode {mode}" if mode else "")
                + (f" resolution {resolution}" if resolution else ""))

    def submit_request(self, job: Job | None, request: Mapping[str, Any], task_id: str,
                       base_url: str, key: Credential) -> httpx.Request:
        import httpx

        return httpx.Request("POST", f"{base_url}/api/v1/jobs/createTask", json=dict(request),
                             headers={"Authorization": f"Bearer {key.reveal()}"})

    def read_submit(self, response: httpx.Response, task_id: str) -> Handle:
        """The taskId; LostAnswer when a server error leaves open whether the task was made."""
        from .base import Handle, LostAnswer, ProviderError

        try:
            code = _code(response.json())
        except ValueError:
            code = None
        status = response.status_code
        if code in _SUBMIT_LOST_CODES or (code is None and status in _SUBMIT_LOST_STATUS):
            shown = f"code {code}" if code is not None else f"HTTP {status}"
            raise LostAnswer(f"kie answered {shown} to the submission")
        data = _envelope(response, "task").get("data")
        found = data.get("taskId") if isinstance(data, dict) else None
        if not isinstance(found, str) or not found:
            raise ProviderError("kie accepted the task but its answer has no data.taskId")
        return Handle(found)

    def poll_request(self, handle: Handle, base_url: str, key: Credential) -> httpx.Request:
        import httpx

        return httpx.Request("GET", f"{base_url}/api/v1/jobs/recordInfo",
                             params={"taskId": handle.task_id},
                             headers={"Authorization": f"Bearer {key.reveal()}"})

    def read_status(self, response: httpx.Response, handle: Handle, takes: int) -> Status:
        """The task's state. Every field kie's answer is read from is checked: a malformed one
        is `invalid` (naming it), never a traceback, never polled forever, never a rejection;
        404 is `unknown`, 422 "recordInfo is null" `unconfirmed` (not shown yet)."""
        from .base import Result, Status, json_answer

        body = json_answer(response, NAME)
        if not isinstance(body, dict):
            return Status("invalid", message="the task query's answer is not a JSON object")
        code = _code(body)
        if code == _UNKNOWN_TASK_CODE:
            return Status("unknown", message=handle.task_id)  # kie does not know the task
        if code == _UNCONFIRMED_CODE:
            return Status("unconfirmed", message=(
                f"kie does not show task {handle.task_id} yet (code 422: "
                f"{_message(body) or 'recordInfo is null'})"))  # fmt: skip
        _judge(response, body, NAME, "task query")  # anything but code 200 raises, as before
        data = body.get("data")
        if not isinstance(data, dict):
            return Status("invalid", message="data: not an object")
        found = data.get("taskId")
        if found is not None and found != handle.task_id:
            return Status("invalid", message=f"data.taskId: {found!r:.60} is not "
                                             f"{handle.task_id}")  # fmt: skip
        state = data.get("state")
        if not isinstance(state, str) or not state:
            return Status("invalid", message=f"data.state: {state!r:.40}")
        made_from = _param(data.get("param"))
        if state == "success":
            urls, problem = _result_urls(data.get("resultJson"))
            if problem is not None:
                return Status("invalid", message=problem)
            return Status("done", tuple(Result(u) for u in urls[: max(1, takes)]),
                          request=made_from)
        if state == "fail":
            code, message = data.get("failCode"), data.get("failMsg") or "generation failed"
            return Status("failed", message=f"{code}: {message}" if code else str(message))
        # waiting | queuing | generating; an undocumented state waits (the poll timeout ends it)
        detail = {"generating": "generating", "waiting": "queued", "queuing": "queued"}
        return Status("processing", detail=detail.get(state, f"state {state[:40]}"),
                      request=made_from)

    # doctor: the remaining credits (SPEC.key_check_endpoint)
    def key_check_request(self, base_url: str, key: Credential) -> httpx.Request:
        import httpx

        return httpx.Request("GET", f"{base_url}/api/v1/chat/credit",
                             headers={"Authorization": f"Bearer {key.reveal()}"})

    def read_key_check(self, response: httpx.Response) -> Account:
        """The remaining credits; ProviderError for a refused key (code 401)."""
        from decimal import Decimal

        from .base import Account, ProviderError

        credits = _envelope(response, "credit query").get("data")
        if not isinstance(credits, (int, float)) or isinstance(credits, bool):
            raise ProviderError("kie answered the credit query without a number of credits")
        return Account(Decimal(str(credits)), "credits")

    async def upload(self, send: Send, data: bytes, mime: str, name: str, url: UrlOf,
                     key: Credential) -> str:
        """POST the bytes to the File Upload API (multipart); returns `data.downloadUrl`."""
        import httpx

        from .base import ProviderError, json_answer

        request = httpx.Request(
            "POST", f"{url('kie-upload')}/api/file-stream-upload",
            files={"file": (name, data, mime)},
            data={"uploadPath": UPLOAD_PATH, "fileName": name},
            headers={"Authorization": f"Bearer {key.reveal()}"},
        )  # fmt: skip
        response = await send(request)
        body = json_answer(response, "kie upload")
        if not isinstance(body, dict):
            raise ProviderError("kie upload answered with JSON that is not an object")
        if body.get("success") is False and _code(body) in (None, 200):
            raise ProviderError(f"kie refused the upload: {_message(body)}")
        _judge(response, body, "kie upload", "upload")
        found = body.get("data")
        link = found.get("downloadUrl") if isinstance(found, dict) else None
        if not isinstance(link, str) or not link.startswith(("http://", "https://")):
            raise ProviderError("kie accepted the upload but its answer has no data.downloadUrl")
        return link


def _param(value: Any) -> dict | None:
    """The createTask body recordInfo echoes as `data.param` (a JSON string), if readable."""
    import json

    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


def _result_urls(result: Any) -> tuple[list[str], str | None]:
    """(URLs, None) from `resultJson`, a JSON string holding `{"resultUrls": [...]}` (an object
    is read too); ([], which field is wrong) when any part is missing or malformed."""
    import json

    from .base import answer_url

    if isinstance(result, str):
        if not result.strip():
            return [], "data.resultJson: empty on success"
        try:
            result = json.loads(result)
        except ValueError:
            return [], "data.resultJson: not JSON"
    if not isinstance(result, dict):
        return [], "data.resultJson: not a JSON object"
    urls = result.get("resultUrls")
    if not isinstance(urls, list) or not urls:
        return [], "data.resultJson.resultUrls: missing or empty"
    for n, url in enumerate(urls):
        if answer_url(url) is None:
            return [], f"data.resultJson.resultUrls[{n}]: not an http(s) URL ({url!r:.60})"
    return list(urls), None


# -- compile time -----------------------------------------------------------------------------


class KieProvider(KieTasks):
    """Builds kie.ai `createTask` bodies for Kling 3.0, priced per second (kie's USD prices)."""

    spec = SPEC

    def check(self, shot: ResolvedShot, spec: ModelSpec) -> list[Diagnostic]:
        if spec.alias in TURBO_RESOLUTIONS:  # no elements, segments or end frame to check
            diags = rules.check_source_kinds(shot, self.name, ACCEPTED_KINDS)
            return diags + _check_image_files(shot) + _check_turbo(shot, spec)
        diags = rules.check_source_kinds(shot, self.name, ACCEPTED_KINDS)
        diags += rules.check_element_frontal(shot, self.name)
        diags += _check_frames(shot)
        diags += _check_segments(shot, self.prompt_text)
        diags += _check_elements(shot)
        diags += _check_image_files(shot)
        diags += _check_size(shot, spec)
        diags += _check_voices(shot, self.name)
        return diags

    def prompt_text(self, shot: ResolvedShot, prompt: Prompt) -> str:
        """The prompt as sent: `@name` stays `@name` (kie: `@element_name`); its lines follow,
        `[@name, tone]: "words"` (providers/dialogue.py)."""
        text = prompt.render(lambda name: "@" + name)
        speaker = dialogue.speaker_of(shot, lambda n, e: "@" + e.name)
        return dialogue.spoken(text, dialogue.lines_of(shot, prompt), speaker)

    def payload(self, shot: ResolvedShot, spec: ModelSpec, ref: Ref) -> dict[str, Any]:
        # NOTE: the key order follows the spec's field order (x-apidog-orders) and its examples.
        if spec.alias in TURBO_RESOLUTIONS:
            return self._turbo_payload(shot, spec, ref)
        segments = shot.multi_prompt or ()
        multi = bool(segments)
        fields: dict[str, Any] = {}
        prompt = dialogue.main_prompt(shot)
        if not multi and prompt is not None:
            fields["prompt"] = self.prompt_text(shot, prompt)
        frames = [f for f in (shot.first_frame, shot.last_frame) if f is not None]
        if frames:
            fields["image_urls"] = [ref(f, "image") for f in frames]
        # single-shot: default false; multi-shot: the newer spec defaults to true, the older
        # says "must be true", so true is sent (audio: false is a warning)
        fields["sound"] = True if multi else bool(shot.audio)
        fields["duration"] = str(rules.effective_duration(shot) or DEFAULT_DURATION)
        fields["aspect_ratio"] = _aspect_ratio(shot)  # required, with or without images
        fields["mode"] = MODES[spec.alias]
        fields["multi_shots"] = multi  # sent on every request (required)
        if multi:
            fields["multi_prompt"] = [
                {"prompt": self.prompt_text(shot, seg.prompt), "duration": seg.duration_s}
                for seg in segments
            ]
        if shot.elements:
            fields["kling_elements"] = [element_body(e, ref) for e in shot.elements]
        return {"model": spec.model_id, "input": fields}

    def _turbo_payload(self, shot: ResolvedShot, spec: ModelSpec, ref: Ref) -> dict[str, Any]:
        """K4 (text-to-video: prompt, duration, aspect_ratio, resolution) or K5 (image-to-video:
        prompt, image_urls, duration, resolution), every field required, in their order."""
        fields: dict[str, Any] = {}
        prompt = dialogue.main_prompt(shot)
        if prompt is not None:
            fields["prompt"] = self.prompt_text(shot, prompt)
        if shot.first_frame is not None:
            fields["image_urls"] = [ref(shot.first_frame, "image")]
        fields["duration"] = str(rules.effective_duration(shot) or DEFAULT_DURATION)
        if shot.first_frame is None:
            fields["aspect_ratio"] = _aspect_ratio(shot)
        fields["resolution"] = TURBO_RESOLUTIONS[spec.alias]
        kind = "image-to-video" if shot.first_frame is not None else "text-to-video"
        return {"model": f"{TURBO_MODEL_ID}-{kind}", "input": fields}

    def cost(
        self, shot: ResolvedShot, spec: ModelSpec, payload: Mapping[str, Any]
    ) -> Decimal | None:
        """The sent mode's per-second price, with or without sound, times `duration`, all as
        sent (provider_options may change them); Turbo's by the `resolution` sent."""
        fields = payload.get("input")
        fields = fields if isinstance(fields, Mapping) else {}
        try:
            seconds = int(str(fields.get("duration", DEFAULT_DURATION)))
        except ValueError:
            return None
        if spec.alias in TURBO_RESOLUTIONS:
            resolution = fields.get("resolution", TURBO_RESOLUTIONS[spec.alias])
            rate = TURBO_PRICES.get(resolution) if isinstance(resolution, str) else None
            return None if rate is None else rate * seconds
        mode = fields.get("mode", MODES[spec.alias])
        rates = PRICES.get(mode) if isinstance(mode, str) else None
        if rates is None:
            return None
        return rates["audio" if fields.get("sound", False) is True else "silent"] * seconds

    def cost_note(
        self, shot: ResolvedShot, spec: ModelSpec, payload: Mapping[str, Any]
    ) -> str | None:
        if self.cost(shot, spec, payload) is None:
            return "kie publishes no price for this request's mode or duration"
        return None


def element_body(element: Element, ref: Ref) -> dict[str, Any]:
    """A `kling_elements[]` item: {name, description, element_input_urls[, audio]}."""
    images = [element.frontal_image] if element.frontal_image is not None else []
    body: dict[str, Any] = {
        "name": element.name,
        # `description` is required by both spec versions; an element without one sends its
        # name [inferred]
        "description": element.description or element.name,
        "element_input_urls": [ref(s, "image") for s in images + list(element.images)],
    }
    voices = (*element.voices, *(() if element.voice is None else (element.voice,)))
    if voices:  # newer spec only; a `voice:` sample is the element's voice audio
        body["element_input_audio_urls"] = [ref(s, "audio") for s in voices]
    return body


def _check_voices(shot: ResolvedShot, provider: str) -> list[Diagnostic]:
    """A `voice:` sample is the element's one audio URL (with `voices:`, more than kie takes),
    of the documented length; a `voice_id:` names a voice kie has no way to bind."""
    diags = [Diagnostic(
        f"element '{e.name}' has voices and a voice; kie takes at most {ELEMENT_VOICES}",
        dialogue.voice_where(e),
        "keep one (docs.kie.ai Kling 3.0: up to 1 audio URL per element)",
    ) for e in shot.elements if e.voice is not None and len(e.voices) + 1 > ELEMENT_VOICES]
    diags += dialogue.check_sample_kinds(shot, provider, ACCEPTED_KINDS["audio"] - {"chain"})
    diags += dialogue.check_samples(shot, provider, "docs.kie.ai Kling 3.0: an element's "
                                    "audio is one 5-30 s recording")
    ids = [e for e in dialogue.voiced(shot) if e.voice is None]
    diags += dialogue.prompt_only(shot, provider, "kie has no voice ids; an element takes a "
                                  "voice as an audio file, `voice:`", ids)
    return diags


def _aspect_ratio(shot: ResolvedShot) -> str:
    """`aspect_ratio`, always sent (K1 and every kie example send it, images or not): the
    shot's size (reduced) or aspect; with frame images and neither one of kie's three, the
    one nearest the first frame's (a local file), else the default. Without images any other
    aspect is a located error of rules.check_size."""
    wanted = rules.aspect_of(shot.size) if shot.size is not None else shot.aspect
    if wanted in ASPECTS or (wanted is not None and shot.first_frame is None
                             and shot.last_frame is None):  # fmt: skip
        return wanted
    frame = shot.first_frame or shot.last_frame
    size = _image_size(frame) if frame is not None else None
    if size is None:
        return DEFAULT_ASPECT
    ratio = size[0] / size[1]
    return min(ASPECTS, key=lambda a: abs(_ratio(a) - ratio))


def _ratio(aspect: str) -> float:
    width, height = aspect.split(":")
    return int(width) / int(height)


def _image_size(source: FrameSource) -> tuple[int, int] | None:
    """A local image's width and height (its header only), None when unknown or unreadable."""
    if source.kind != "path" or source.path is None:
        return None
    size = image_size(source.path)  # None: not an image Pillow reads (the file check says so)
    if size is None:
        return None
    width, height = size
    return (width, height) if width > 0 and height > 0 else None


# -- kie's own rules ----------------------------------------------------------------------------


def _check_frames(shot: ResolvedShot) -> list[Diagnostic]:
    diags = []
    if shot.last_frame is not None and shot.first_frame is None:
        diags.append(Diagnostic(
            "a last_frame needs a first_frame on kie: a single image in image_urls is the "
            "first frame",
            shot.where("last_frame"),
            "add a first_frame, or make this image the first_frame",
        ))  # fmt: skip
    # a last_frame with a multi_prompt is rules.check_multi_prompt_frames' error (one message;
    # docs.kie.ai Kling 3.0: "when multi_shots is true, only the first frame is supported")
    if shot.elements and shot.first_frame is None:
        names = ", ".join("@" + e.name for e in shot.elements)
        diags.append(Diagnostic(
            f"elements ({names}) need a first_frame on kie",
            rules.elements_where(shot),
            "docs.kie.ai Kling 3.0: image_urls is required when elements are referenced in "
            "the prompt; add a first_frame",
        ))  # fmt: skip
    if shot.multi_prompt and shot.audio is False:
        diags.append(Diagnostic(
            "audio: false is not sent: multi-shot generations on kie have sound",
            shot.where("audio"),
            "docs.kie.ai Kling 3.0: sound defaults to true in multi-shot mode (older spec: "
            "must be true); provider_options: {input: {sound: false}} sends it anyway",
            severity="warning",
        ))  # fmt: skip
    return diags


def _check_segments(shot: ResolvedShot, prompt_text) -> list[Diagnostic]:
    """Each shot prompt at most 500 characters as kie counts them (an @element counts 37)."""
    diags = []
    for n, seg in enumerate(shot.multi_prompt or (), 1):
        counted = len(seg.prompt.render(lambda name: "@" * ELEMENT_REF_CHARS))
        if counted > SEGMENT_CHARS and len(prompt_text(shot, seg.prompt)) <= 2500:
            diags.append(Diagnostic(
                f"multi_prompt segment {n} is {counted} characters long as kie counts it "
                f"(each @element counts {ELEMENT_REF_CHARS}); kie takes at most {SEGMENT_CHARS}",
                seg.location or shot.where("multi_prompt"),
                "shorten the segment (docs.kie.ai Kling 3.0: multi_prompt prompt maxLength 500)",
            ))  # fmt: skip
    return diags


def _check_elements(shot: ResolvedShot) -> list[Diagnostic]:
    low, high = ELEMENT_IMAGES
    diags = []
    for e in shot.elements:
        where = e.location or shot.where("elements")
        if e.videos:
            diags.append(Diagnostic(
                f"element '{e.name}' has videos; kie elements are images here",
                where,
                "kie's two spec versions name video elements differently "
                "(element_input_video_urls / element_input_urls with start_time, end_time); "
                "use 2-4 images, or send the element through provider_options",
            ))  # fmt: skip
            continue
        count = len(e.images) + (e.frontal_image is not None)
        if count < low:
            diags.append(Diagnostic(
                f"element '{e.name}' has {count} image{'s' if count != 1 else ''}; kie needs "
                f"{low}-{high}",
                where,
                "give the element a frontal_image and 1-3 images (docs.kie.ai Kling 3.0: "
                "element_input_urls, 2-4 URLs required)",
            ))  # fmt: skip
        if len(e.voices) > ELEMENT_VOICES:
            diags.append(Diagnostic(
                f"element '{e.name}' has {len(e.voices)} voices; kie takes at most "
                f"{ELEMENT_VOICES}",
                where,
                "keep one voice (docs.kie.ai Kling 3.0: up to 1 audio URL per element)",
            ))  # fmt: skip
    return diags


def _image_sources(shot: ResolvedShot):
    """(field, source, location, is an element image) of every image kie receives."""
    for name in ("first_frame", "last_frame"):
        source = getattr(shot, name)
        if source is not None:
            yield name, source, source.location or shot.where(name), False
    for e in shot.elements:
        for name, source, media in rules.element_sources(e):
            if media == "image":
                yield name, source, source.location or e.location or shot.where("elements"), True


def _check_image_files(shot: ResolvedShot) -> list[Diagnostic]:
    """JPG/PNG only; element images at most 10 MB (local files: by their suffix and size)."""
    diags = []
    for name, source, where, element_image in _image_sources(shot):
        if source.kind == "path":
            suffix = PurePosixPath(source.value.replace("\\", "/")).suffix.lower()
            wrong = suffix not in IMAGE_SUFFIXES
        elif source.kind == "url":
            suffix = PurePosixPath(urlsplit(source.value).path).suffix.lower()
            wrong = suffix in _OTHER_IMAGE_SUFFIXES
        else:
            continue
        if wrong:
            diags.append(Diagnostic(
                f"{name}: kie takes JPG or PNG images, not {suffix or 'a file without suffix'}",
                where,
                "convert the image to PNG or JPEG (docs.kie.ai Kling 3.0: JPG, JPEG, PNG)",
            ))  # fmt: skip
            continue
        if element_image and source.kind == "path" and source.path is not None:
            try:
                size = source.path.stat().st_size
            except OSError:
                continue  # a missing file is reported where the file is read
            if size > ELEMENT_IMAGE_BYTES:
                diags.append(Diagnostic(
                    f"{name}: {source.value} is {size / 1024 / 1024:.1f} MB; kie takes element "
                    "images of at most 10 MB",
                    where,
                    "save it smaller (a JPEG of a few MB is plenty)",
                ))  # fmt: skip
    return diags


def _check_turbo(shot: ResolvedShot, spec: ModelSpec) -> list[Diagnostic]:
    """Turbo's own warnings: `audio: false` (its clips have sound and there is no switch), and
    a size whose resolution is not the tier's (a size is sent as its aspect)."""
    diags = []
    if shot.audio is False:
        diags.append(Diagnostic(
            f"audio: false is not honoured: kie model '{spec.alias}' has no sound switch and "
            "its clips have sound",
            shot.where("audio"),
            "mute the clip in the edit, or choose kling-3-std (silent at $0.07/s); kie's Turbo "
            "pages have no `sound` field, and Kling 3.0 Turbo makes video \"with native audio\" "
            "(fal's and Runware's Turbo pages)",
            severity="warning",
        ))  # fmt: skip
    frame = shot.first_frame
    if frame is not None and frame.kind == "path" and frame.path is not None:
        try:
            size = frame.path.stat().st_size
        except OSError:
            size = 0  # a missing file is reported where the file is read
        if size > ELEMENT_IMAGE_BYTES:
            diags.append(Diagnostic(
                f"first_frame: {frame.value} is {size / 1024 / 1024:.1f} MB; kie's Turbo "
                "image-to-video takes images of at most 10 MB",
                frame.location or shot.where("first_frame"),
                "save it smaller (a JPEG of a few MB is plenty)",
            ))  # fmt: skip
    resolution = TURBO_RESOLUTIONS[spec.alias]
    if shot.size is not None and not rules.follows_input(shot) \
            and min(shot.size) != TURBO_SHORT_SIDE[resolution]:
        others = [a for a, r in TURBO_RESOLUTIONS.items()
                  if TURBO_SHORT_SIDE[r] == min(shot.size)]  # fmt: skip
        hint = f"use model {others[0]}" if others else "write aspect: instead of size:"
        diags.append(Diagnostic(
            f"size {shot.size[0]}x{shot.size[1]} is sent as aspect_ratio "
            f"{rules.aspect_of(shot.size)}: kie model '{spec.alias}' makes {resolution} video",
            shot.where("size"),
            f"{hint} (kie's Turbo text-to-video page: `resolution` 720p or 1080p)",
            severity="warning",
        ))  # fmt: skip
    return diags


def _check_size(shot: ResolvedShot, spec: ModelSpec) -> list[Diagnostic]:
    """A `size` is reduced to its aspect; the mode sets the resolution: say so if they differ."""
    if shot.size is None or rules.follows_input(shot):
        return []
    mode = MODES[spec.alias]
    made = RESOLUTIONS[mode].get(rules.aspect_of(shot.size))
    if made is None or made == shot.size:
        return []  # an unavailable aspect is an error of rules.check_size
    others = [a for a, m in MODES.items() if RESOLUTIONS[m].get(rules.aspect_of(shot.size))
              == shot.size]  # fmt: skip
    hint = f"use model {others[0]}" if others else f"write size: {made[0]}x{made[1]}"
    return [Diagnostic(
        f"size {shot.size[0]}x{shot.size[1]} is sent as aspect_ratio "
        f"{rules.aspect_of(shot.size)}: kie model '{spec.alias}' (mode {mode}) makes "
        f"{made[0]}x{made[1]}",
        shot.where("size"),
        f"{hint}, or write aspect: instead of size:",
        severity="warning",
    )]  # fmt: skip
