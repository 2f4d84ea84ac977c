"""kie.ai's Kling 3.0 (model `kling-3.0/video`), Kling 3.0 Turbo and its File Upload API.

Kling 3.0 Turbo (issue 25) is two models of their own, written from kie's "Kling V3 Turbo"
text-to-video and image-to-video createTask pages (copies: henjicc/Henji-AI@a4cc65b,
docs/api/KIE/Video Models/Kling/071-..., 072-...) and kie's pricing page of 2026-06-30:
`kling/v3-turbo-text-to-video` takes `input` {prompt (maxLength 2500), duration ("3s -
15s", a string), aspect_ratio (1:1 | 9:16 | 16:9), resolution (720p | 1080p)}, all required;
`kling/v3-turbo-image-to-video` takes {prompt, image_urls (JPEG/PNG, at most 10 MB; one start
image [inferred: no end frame]), duration, resolution}, all required. No other field (sound,
mode, multi_shots...) is accepted. Clips have sound; billed $0.09/s at 720p, $0.1125/s at
1080p. The pages give no size per resolution: 720p renders kie's std sizes and 1080p its pro
sizes [inferred].

Written from the docs (https://docs.kie.ai/market/kling/kling-3-0 in its two versions,
https://docs.kie.ai/market/common/get-task-detail, https://docs.kie.ai/file-upload-api). Two
hosts, each under its own prefix (a request to the wrong host is a 404, as in reality):

- `{base}/kie` (https://api.kie.ai): `POST /api/v1/jobs/createTask` with
  `Authorization: Bearer <key>` and `{"model": "kling-3.0/video", "callBackUrl"?, "input"}`,
  answering `{"code": 200, "msg": "success", "data": {"taskId"}}`; `GET
  /api/v1/jobs/recordInfo?taskId=` answering `{"code": 200, "msg": "success", "data": {taskId,
  model, state, param, resultJson, failCode, failMsg, costTime, completeTime, createTime,
  updateTime}}`, `param` and `resultJson` JSON strings, `state` waiting -> queuing ->
  generating -> success | fail.
- `{base}/kie-upload` (https://kieai.redpandaai.co): `POST /api/file-stream-upload`,
  multipart/form-data with `file`, `uploadPath`, `fileName`?, answering `{"success": true,
  "code": 200, "msg", "data": {fileName, filePath, downloadUrl, fileSize, mimeType,
  uploadedAt}}`. The same uploadPath/fileName overwrites, as documented.
- `GET {base}/kie/api/v1/chat/credit` (https://docs.kie.ai/common-api/get-account-credits)
  answers the remaining credits, `{"code": 200, "msg": "success", "data": 100}`.

Errors carry kie's code in the body, `{"code", "msg", "data": null}`. createTask answers them
with HTTP 200 (its spec documents a single 200 response whose `code` says what happened)
[inferred]; recordInfo with the same HTTP status (its spec lists 400, 401, 404, 422, 429, 500
responses). An unknown taskId is `422 "recordInfo is null"` (set `unknown_task_code = 404` for
the other documented answer, `404 "Task not found"`). `callBackUrl` is checked, never called.

Right after createTask, recordInfo does not show the task yet: for `null_window_s` (default:
a tenth of the generation time, at most 1 s; within the `waiting` stretch) it answers HTTP
200 `{"code": 422, "msg": "recordInfo is null", "data": null}`, the answer kie's
get-task-detail OpenAPI gives for 422 and public clients meet right after createTask (the
stricter reading: a client must not take it for "unknown"). `aspect_ratio` is required on every createTask, images or not (the schema's
`required` list; every example sends it).

Where the two spec versions differ, the simulator takes the newer one (`mode` 4K,
`element_input_audio_urls`, video elements through `element_input_urls` with `start_time` and
`end_time`) and also accepts the older `element_input_video_urls`; the schema's `required` list
is applied as the docs' own examples follow it (see `_check`).
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from .faults import TransportFault
from .kling_v3_task import task_record
from .store import Backend, ClipPlan, Generation, ImageInput, InputError, image_format
from .wire import Request, Response, Route, json_response

NAME = "kie"
MODEL = "kling-3.0/video"  # the spec's `model` enum
MESSAGES = {  # the Kling 3.0 spec, "Response status code"
    400: "Bad Request",
    401: "Unauthorized - Authentication credentials are missing or invalid",
    402: "Insufficient Credits - Account does not have enough credits to perform the operation",
    404: "Not Found - The requested resource or endpoint does not exist",
    422: "Validation Error - The request parameters failed validation checks",
    429: "Rate Limited - Request limit has been exceeded for this resource",
    433: "Request Limit - Sub-key Usage Exceeds Limit",
    455: "Service Unavailable - System is currently undergoing maintenance",
    500: "Server Error - An unexpected error occurred while processing the request",
    501: "Generation Failed - Content generation task failed",
    505: "Feature Disabled - The requested feature is currently disabled",
}
# The HTTP status sent with a body code where the answer is not HTTP 200 (recordInfo, upload).
HTTP_STATUS = {455: 503, 501: 500, 505: 403, 433: 429}
INPUT_FIELDS = frozenset(
    {"prompt", "image_urls", "sound", "duration", "aspect_ratio", "mode", "multi_shots",
     "multi_prompt", "kling_elements"}
)  # fmt: skip
ELEMENT_FIELDS = frozenset(
    {"name", "description", "element_input_urls", "element_input_audio_urls",
     "element_input_video_urls", "start_time", "end_time"}
)  # fmt: skip
DURATIONS = tuple(str(n) for n in range(3, 16))  # `duration` enum "3".."15" (strings)
ASPECTS = ("16:9", "9:16", "1:1")
RESOLUTIONS = {  # "Resolution Mappings"
    "std": {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720)},
    "pro": {"16:9": (1920, 1080), "9:16": (1080, 1920), "1:1": (1080, 1080)},
    "4K": {"16:9": (3840, 2160), "9:16": (2160, 3840), "1:1": (2160, 2160)},
}
MAX_SHOTS = 5  # "Supports up to 5 shots"
TURBO_T2V = "kling/v3-turbo-text-to-video"
TURBO_I2V = "kling/v3-turbo-image-to-video"
TURBO_FIELDS = {  # each model's `input`, every field required (its `required` list)
    TURBO_T2V: ("prompt", "duration", "aspect_ratio", "resolution"),
    TURBO_I2V: ("prompt", "image_urls", "duration", "resolution"),
}
TURBO_SIZES = {"720p": RESOLUTIONS["std"], "1080p": RESOLUTIONS["pro"]}  # [inferred]
TURBO_PROMPT_CHARS = 2500  # `prompt` maxLength 2500
SHOT_SECONDS = (1, 12)  # multi_prompt[].duration minimum 1, maximum 12
SHOT_CHARS = 500  # multi_prompt[].prompt maxLength 500
ELEMENT_REF_CHARS = 37  # "Each @element will occupy 37 characters"
MAX_ELEMENTS = 3  # kling_elements maxItems 3
ELEMENT_IMAGES = (2, 4)  # element_input_urls: "2-4 URLs required"
IMAGE_BYTES = 10 * 1024 * 1024  # "Maximum file size: 10MB per image"
IMAGE_FORMATS = frozenset({"JPEG", "PNG"})  # "Only JPG, JPEG, PNG" / "JPG, PNG"
VIDEO_SUFFIXES = (".mp4", ".mov")  # video elements: MP4, MOV
VIDEO_SPAN_MS = (3000, 8000)  # end_time - start_time
UPLOAD_FIELDS = frozenset({"file", "uploadPath", "fileName"})
# Fractions of the generation time spent waiting and queuing before generating [inferred].
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_PARAM = re.compile(r'(\w+)="([^"]*)"')


class Kie:
    """createTask / recordInfo on the API host, file-stream-upload on the upload host."""

    name = NAME

    def __init__(self, backend: Backend, key: str | None) -> None:
        self.backend = backend
        self.key = key
        self.unknown_task_code = 422  # or 404: both are documented for an unknown taskId
        # seconds after createTask during which recordInfo answers "recordInfo is null" (HTTP
        # 200, code 422); None: a tenth of the generation's time, at most 1 s
        self.null_window_s: float | None = None
        self.uploads: list[dict[str, Any]] = []  # the `data` of each accepted upload
        self.credits = 1000  # what the credit query reports; tests may set it
        self.routes = (
            Route("POST", r"/api/v1/jobs/createTask", self.create_task, "submit", "api"),
            Route("GET", r"/api/v1/jobs/recordInfo", self.record_info, "poll", "api"),
            Route("GET", r"/api/v1/chat/credit", self.credit, "account", "api"),
            Route("POST", r"/api/file-stream-upload", self.upload, "upload", "upload"),
        )

    # auth and faults ---------------------------------------------------------------------

    def authorize(self, request: Request) -> Response | None:
        """None for `Authorization: Bearer <key>`; else code 401 in the host's envelope."""
        scheme, _, value = request.header("authorization").partition(" ")
        if scheme.lower() == "bearer" and value and (self.key is None or value == self.key):
            return None
        detail = "You do not have access permissions"
        if request.host == "upload":
            return upload_error(401, detail)
        return error(401, detail, http_status=200 if request.path.endswith("createTask") else 401)

    def fault_response(self, fault: TransportFault) -> Response:
        """A transport fault as a body code (429, 455, 500...), HTTP status per HTTP_STATUS
        unless the fault names one (http_status=200: the code in the body only)."""
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
        status = fault.http_status or HTTP_STATUS.get(fault.status, fault.status)
        body = {"code": fault.status, "msg": f"{MESSAGES.get(fault.status, 'Error')}: simulated",
                "data": None}  # fmt: skip
        return json_response(status, body, headers)

    # the API host --------------------------------------------------------------------------

    def create_task(self, request: Request) -> Response:
        """Validate the task and queue it; answer its taskId (errors: HTTP 200, body code)."""
        try:
            body = request.json()
        except (ValueError, UnicodeDecodeError):
            return error(422, "the body must be a JSON object", http_status=200)
        if not isinstance(body, dict):
            return error(422, "the body must be a JSON object", http_status=200)
        turbo = body.get("model") in TURBO_FIELDS
        problems, plan = (_check_turbo if turbo else _check)(self.backend, body)
        if problems:
            return error(422, "; ".join(problems), http_status=200)
        prefix = "task_kling_" if turbo else "task_kling-3.0_"  # the pages' examples
        task_id = f"{prefix}{int(time.time() * 1000)}{uuid.uuid4().hex[:8]}"
        self.backend.start(NAME, task_id, plan, prompt=plan.caption, request=body,
                           cost_usd=_billed(body))
        return json_response(200, {"code": 200, "msg": "success", "data": {"taskId": task_id}})

    def credit(self, request: Request) -> Response:
        """"Get Remaining Credits": the number of credits left (free; nothing is generated)."""
        return json_response(200, {"code": 200, "msg": "success", "data": self.credits})

    def record_info(self, request: Request) -> Response:
        """The task's `data`; 400 without taskId, 422 (or 404) for an unknown one."""
        task_id = request.query.get("taskId", "")
        if not task_id:
            return error(400, "taskId parameter is required", plain=True)
        generation = self.backend.generation(NAME, task_id)
        if generation is None:
            if self.unknown_task_code == 404:
                return error(404, "Task not found", plain=True)
            return error(422, "recordInfo is null", plain=True)
        if self.backend.clock() - generation.started_s < self.null_window(generation):
            return error(422, "recordInfo is null", http_status=200, plain=True)
        data = self.task_data(generation)
        return json_response(200, {"code": 200, "msg": "success", "data": data})

    def null_window(self, generation: Generation) -> float:
        """Seconds after createTask during which the task's record does not exist yet."""
        if self.null_window_s is not None:
            return self.null_window_s
        return min(1.0, generation.task_s / 10)

    def task_data(self, generation: Generation) -> dict[str, Any]:
        """recordInfo's `data` object."""
        model = generation.request.get("model")
        return task_record(self.backend, generation, model if isinstance(model, str) else MODEL)

    # the upload host -----------------------------------------------------------------------

    def upload(self, request: Request) -> Response:
        """file-stream-upload: store the bytes, answer their downloadUrl."""
        content_type = request.header("content-type")
        found = _BOUNDARY.search(content_type)
        if not content_type.lower().startswith("multipart/form-data") or found is None:
            return upload_error(400, "Content-Type must be multipart/form-data")
        try:
            parts = parse_multipart(request.body, found.group(1))
        except ValueError as exc:
            return upload_error(400, f"malformed multipart body: {exc}")
        unknown = sorted(set(parts) - UPLOAD_FIELDS)
        if unknown:
            return upload_error(400, f"unknown form field(s) {unknown}")
        file = parts.get("file")
        if file is None or file.filename is None:
            return upload_error(400, "file is required (a file part)")
        upload_path = _text(parts.get("uploadPath"))
        if not upload_path:
            return upload_error(400, "uploadPath is required")
        if upload_path.startswith("/") or upload_path.endswith("/"):
            return upload_error(400, "uploadPath must have no leading or trailing slashes")
        file_name = _text(parts.get("fileName")) or file.filename or uuid.uuid4().hex
        mime = file.content_type or mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        file_path = f"{upload_path}/{file_name}"
        # the same uploadPath/fileName is the same file: a second upload overwrites it
        digest = hashlib.sha256(file_path.encode("utf-8")).hexdigest()[:24]
        stored = self.backend.put_file(
            file.data, provider=NAME, suffix=PurePosixPath(file_name).suffix, content_type=mime,
            name=f"kie-{digest}{PurePosixPath(file_name).suffix}",
        )  # fmt: skip
        data = {
            "fileName": file_name,
            "filePath": file_path,
            "downloadUrl": self.backend.file_url(stored.name),
            "fileSize": len(file.data),
            "mimeType": mime,
            "uploadedAt": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        }
        self.uploads.append(data)
        return json_response(
            200, {"success": True, "code": 200, "msg": "File uploaded successfully", "data": data}
        )


def error(
    code: int,
    detail: str,
    headers: Mapping[str, str] | None = None,
    http_status: int | None = None,
    plain: bool = False,
) -> Response:
    """`{"code", "msg", "data": null}`; msg is the code's meaning and the detail (`plain`: the
    detail alone, as recordInfo's documented answers are), HTTP status per HTTP_STATUS."""
    msg = detail if plain else f"{MESSAGES.get(code, 'Error')}: {detail}"
    status = http_status or HTTP_STATUS.get(code, code)
    return json_response(status, {"code": code, "msg": msg, "data": None}, headers)


def upload_error(code: int, detail: str) -> Response:
    """The File Upload API's envelope for a refusal [inferred: only its success is shown]."""
    return json_response(code, {"success": False, "code": code, "msg": detail, "data": None})


# -- createTask validation -------------------------------------------------------------------


def _envelope(body: Mapping[str, Any]) -> tuple[list[str], dict | None]:
    """(problems, `input`) of any createTask body: only model, callBackUrl and input at the
    top, a callback URL that is one, `input` an object (None when it is not)."""
    problems: list[str] = []
    unknown_top = sorted(set(body) - {"model", "callBackUrl", "input"})
    if unknown_top:
        problems.append(f"unknown field(s) {unknown_top}")
    callback = body.get("callBackUrl")
    if callback is not None and not _is_url(callback):
        problems.append("callBackUrl must be an http(s) URL")
    fields = body.get("input")
    return problems, fields if isinstance(fields, dict) else None


def _check(backend: Backend, body: Mapping[str, Any]) -> tuple[list[str], ClipPlan | None]:
    """(problems, clip plan) of a createTask body, in the docs' words where they have some.

    The schema lists prompt, sound, duration, aspect_ratio, mode, multi_shots and multi_prompt
    as required, but the docs' own examples send no multi_prompt in single-shot mode and no
    prompt or sound in multi-shot mode; so `prompt` is required when multi_shots is false,
    `multi_prompt` when it is true, `aspect_ratio` always (every example sends it, with
    image_urls too), and `sound` falls back to its documented default.
    """
    problems, fields = _envelope(body)
    if body.get("model") != MODEL:
        problems.append(f"model must be {MODEL!r} (or Turbo's {TURBO_T2V!r}, {TURBO_I2V!r}), "
                        f"got {body.get('model')!r}")
    if fields is None:
        return problems + ["input is required and must be an object"], None
    unknown = sorted(set(fields) - INPUT_FIELDS)
    if unknown:
        problems.append(f"unknown input field(s) {unknown}")
    multi = fields.get("multi_shots")
    if not isinstance(multi, bool):
        problems.append("multi_shots is required (true or false)")
        multi = False
    duration = fields.get("duration")
    if not (isinstance(duration, str) and duration in DURATIONS):
        problems.append(f"duration is required: a string from '3' to '15', got {duration!r}")
    mode = fields.get("mode")
    if not (isinstance(mode, str) and mode in RESOLUTIONS):
        problems.append(f"mode is required: one of {list(RESOLUTIONS)}, got {mode!r}")
    sound = fields.get("sound", multi)  # default false; "When multi_shots is true ... true"
    if not isinstance(sound, bool):
        problems.append("sound must be a boolean")
    images = _image_urls(backend, fields.get("image_urls"), multi, problems)
    aspect = fields.get("aspect_ratio")
    if aspect is None:  # required in the schema; every example sends it, with images too
        problems.append("aspect_ratio is required")
    elif not (isinstance(aspect, str) and aspect in ASPECTS):
        problems.append(f"aspect_ratio must be one of {list(ASPECTS)}, got {aspect!r}")
    names = _elements(backend, fields.get("kling_elements"), problems)
    texts = _prompts(fields, multi, names, problems)
    referenced = [n for n in names if any(f"@{n}" in t for t in texts)]
    if referenced and "image_urls" not in fields:
        problems.append(
            "image_urls is required when elements are referenced in the prompt "
            f"(@{', @'.join(referenced)})"
        )
    if problems:
        return problems, None
    width, height = RESOLUTIONS[mode][aspect or "16:9"]
    return [], ClipPlan(
        duration_s=float(int(duration)),
        width=width,
        height=height,
        audio=sound,
        first_image=images[0] if images and images[0].path else None,
        last_image=images[1] if not multi and len(images) > 1 and images[1].path else None,
        title=MODEL,
        caption="\n".join(texts),
    )


def _check_turbo(backend: Backend, body: Mapping[str, Any]) -> tuple[list[str], ClipPlan | None]:
    """(problems, clip plan) of a Kling 3.0 Turbo createTask body (module docstring)."""
    model = body["model"]
    problems, fields = _envelope(body)
    if fields is None:
        return problems + ["input is required and must be an object"], None
    wanted = TURBO_FIELDS[model]
    unknown = sorted(set(fields) - set(wanted))
    if unknown:
        problems.append(f"unknown input field(s) {unknown} for {model}")
    missing = [name for name in wanted if name not in fields]
    if missing:
        problems.append(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                        "required")  # fmt: skip
    prompt = fields.get("prompt")
    if "prompt" in fields and not (isinstance(prompt, str) and prompt):
        problems.append("prompt must be a non-empty string")
    elif isinstance(prompt, str) and len(prompt) > TURBO_PROMPT_CHARS:
        problems.append(f"prompt is {len(prompt)} characters; the maximum is "
                        f"{TURBO_PROMPT_CHARS}")  # fmt: skip
    duration = fields.get("duration")
    if "duration" in fields and not (isinstance(duration, str) and duration in DURATIONS):
        problems.append(f"duration must be a string from '3' to '15', got {duration!r}")
    resolution = fields.get("resolution")
    if "resolution" in fields and not (isinstance(resolution, str)
                                       and resolution in TURBO_SIZES):
        problems.append(f"resolution must be one of {list(TURBO_SIZES)}, got {resolution!r}")
    aspect = fields.get("aspect_ratio")
    if "aspect_ratio" in fields and not (isinstance(aspect, str) and aspect in ASPECTS):
        problems.append(f"aspect_ratio must be one of {list(ASPECTS)}, got {aspect!r}")
    images: list[ImageInput] = []
    urls = fields.get("image_urls")
    if "image_urls" in fields:
        if not (isinstance(urls, list) and len(urls) == 1):
            problems.append("image_urls takes the start image: a list of 1 URL")
        else:
            image = _image(backend, urls[0], "image_urls[0]", problems)
            if image is not None and image.byte_count > IMAGE_BYTES:
                problems.append("image_urls[0]: maximum file size is 10.0MB")
            images = [image] if image is not None else []
    if problems:
        return problems, None
    width, height = TURBO_SIZES[resolution][aspect] if model == TURBO_T2V else (None, None)
    return [], ClipPlan(
        duration_s=float(int(duration)),
        width=width,
        height=height,
        audio=True,  # no switch: Turbo's clips have sound
        first_image=images[0] if images and images[0].path else None,
        title=model,
        caption=prompt,
    )


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://")) and bool(
        urlsplit(value).hostname
    )


def _image_urls(backend: Backend, urls: Any, multi: bool, problems: list[str]) -> list[ImageInput]:
    if urls is None:
        return []
    if not isinstance(urls, list):
        problems.append("image_urls must be a list of URLs")
        return []
    if multi and len(urls) != 1:
        problems.append("When multi_shots is true, image_urls takes only the first frame (1 URL)")
    elif not multi and not 1 <= len(urls) <= 2:
        problems.append("image_urls takes 1 (first frame) or 2 (first and last frame) URLs")
    return [
        image
        for i, url in enumerate(urls[:2])
        if (image := _image(backend, url, f"image_urls[{i}]", problems)) is not None
    ]


def _image(backend: Backend, url: Any, where: str, problems: list[str]) -> ImageInput | None:
    """A JPG/PNG image URL (read when it is the simulator's own file)."""
    if not _is_url(url):
        problems.append(f"{where} must be an http(s) URL")
        return None
    try:
        image = backend.image_input(url, allow_inline=False)
    except InputError as exc:
        problems.append(f"{where} {exc}")
        return None
    if image.path is not None:
        fmt, _ = image_format(image.path.read_bytes())
        if fmt not in IMAGE_FORMATS:
            problems.append(f"{where}: only JPG, JPEG, PNG images are supported, got {fmt}")
            return None
    return image


def _prompts(
    fields: Mapping[str, Any], multi: bool, names: list[str], problems: list[str]
) -> list[str]:
    """The prompt texts that take effect; checks prompt and multi_prompt."""
    prompt, shots = fields.get("prompt"), fields.get("multi_prompt")
    if prompt is not None and not isinstance(prompt, str):
        problems.append("prompt must be a string")
        prompt = None
    if shots is not None and not isinstance(shots, list):
        problems.append("multi_prompt must be a list of {prompt, duration}")
        shots = None
    texts = _shots(shots or [], names, problems)
    if not multi:
        if not prompt:
            problems.append("prompt is required when multi_shots is false")
        return [prompt] if prompt else []
    if not shots:
        problems.append("multi_prompt is required when multi_shots is true (1 to 5 shots)")
    elif len(shots) > MAX_SHOTS:
        problems.append(f"multi_prompt supports up to {MAX_SHOTS} shots, got {len(shots)}")
    return texts


def _shots(shots: list, names: list[str], problems: list[str]) -> list[str]:
    low, high = SHOT_SECONDS
    texts = []
    for i, shot in enumerate(shots):
        if not isinstance(shot, dict):
            problems.append(f"multi_prompt[{i}] must be an object {{prompt, duration}}")
            continue
        extra = sorted(set(shot) - {"prompt", "duration"})
        if extra:
            problems.append(f"multi_prompt[{i}]: unknown field(s) {extra}")
        text, seconds = shot.get("prompt"), shot.get("duration")
        if not isinstance(text, str) or not text:
            problems.append(f"multi_prompt[{i}].prompt is required (a string)")
        else:
            texts.append(text)
            counted = _counted(text, names)
            if counted > SHOT_CHARS:
                problems.append(
                    f"multi_prompt[{i}].prompt is {counted} characters (each @element counts "
                    f"{ELEMENT_REF_CHARS}); the maximum is {SHOT_CHARS}"
                )
        if not (isinstance(seconds, int) and not isinstance(seconds, bool)
                and low <= seconds <= high):  # fmt: skip
            problems.append(
                f"multi_prompt[{i}].duration must be an integer from {low} to {high}, "
                f"got {seconds!r}"
            )
    return texts


def _counted(text: str, names: list[str]) -> int:
    """The length kie counts: each `@name` of a defined element is 37 characters."""
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(f"@{name}", "\0" * ELEMENT_REF_CHARS)
    return len(text)


def _elements(backend: Backend, elements: Any, problems: list[str]) -> list[str]:
    """The element names; checks each kling_elements item."""
    if elements is None:
        return []
    if not isinstance(elements, list):
        problems.append("kling_elements must be a list")
        return []
    if len(elements) > MAX_ELEMENTS:
        problems.append(
            f"kling_elements takes at most {MAX_ELEMENTS} elements, got {len(elements)}"
        )
    names: list[str] = []
    for i, element in enumerate(elements):
        where = f"kling_elements[{i}]"
        if not isinstance(element, dict):
            problems.append(f"{where} must be an object")
            continue
        extra = sorted(set(element) - ELEMENT_FIELDS)
        if extra:
            problems.append(f"{where}: unknown field(s) {extra}")
        name = element.get("name")
        if not isinstance(name, str) or not name:
            problems.append(f"{where}.name is required")
        elif name in names:
            problems.append(f"{where}: duplicate element name {name!r}")
        else:
            names.append(name)
        if not isinstance(element.get("description"), str):
            problems.append(f"{where}.description is required")
        _element_media(backend, element, where, problems)
    return names


def _element_media(backend: Backend, element: dict, where: str, problems: list[str]) -> None:
    urls, videos = element.get("element_input_urls"), element.get("element_input_video_urls")
    audio = element.get("element_input_audio_urls")
    if audio is not None and not (
        isinstance(audio, list) and len(audio) <= 1 and all(_is_url(u) for u in audio)
    ):
        problems.append(f"{where}.element_input_audio_urls takes up to 1 audio URL")
    if videos is not None:  # the older spec's video element
        if not (isinstance(videos, list) and len(videos) == 1 and _is_url(videos[0])):
            problems.append(f"{where}.element_input_video_urls takes 1 video URL")
        if urls is not None:
            problems.append(f"{where}: an element is images or a video, not both")
        return
    if not isinstance(urls, list) or not urls:
        problems.append(f"{where}.element_input_urls is required: 2-4 image URLs or 1 video URL")
        return
    if len(urls) == 1 and _is_video(backend, urls[0]):  # the newer spec's video element
        _video_span(element, where, problems)
        return
    if "start_time" in element or "end_time" in element:
        problems.append(f"{where}: start_time and end_time apply to a video element only")
    low, high = ELEMENT_IMAGES
    if not low <= len(urls) <= high:
        problems.append(f"{where}.element_input_urls: {low}-{high} image URLs required, "
                        f"got {len(urls)}")  # fmt: skip
    for j, url in enumerate(urls):
        image = _image(backend, url, f"{where}.element_input_urls[{j}]", problems)
        if image is not None and image.byte_count > IMAGE_BYTES:
            problems.append(f"{where}.element_input_urls[{j}]: maximum file size is 10MB")


def _is_video(backend: Backend, url: Any) -> bool:
    if not _is_url(url):
        return False
    try:
        stored = backend.local_file(url)
    except InputError:
        return False
    if stored is not None:
        return stored.content_type.startswith("video/")
    return PurePosixPath(urlsplit(url).path).suffix.lower() in VIDEO_SUFFIXES


def _video_span(element: dict, where: str, problems: list[str]) -> None:
    start, end = element.get("start_time", 0), element.get("end_time")
    if end is None:
        return
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end))
    low, high = VIDEO_SPAN_MS
    if not ints or start < 0 or not low <= end - start <= high:
        problems.append(f"{where}: end_time - start_time must be {low}-{high} ms")


# -- multipart ---------------------------------------------------------------------------------


class Part:
    """One form-data part."""

    __slots__ = ("name", "filename", "content_type", "data")

    def __init__(self, name: str, filename: str | None, content_type: str | None, data: bytes):
        self.name, self.filename, self.content_type, self.data = name, filename, content_type, data


def parse_multipart(body: bytes, boundary: str) -> dict[str, Part]:
    """The parts of a multipart/form-data body by field name; ValueError when malformed."""
    delimiter = b"--" + boundary.encode("latin-1")
    chunks = body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise ValueError("no closing boundary")
    parts: dict[str, Part] = {}
    for chunk in chunks[1:-1]:
        if not chunk.startswith(b"\r\n") or not chunk.endswith(b"\r\n"):
            raise ValueError("a part is not framed by CRLF")
        head, sep, data = chunk[2:-2].partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("a part has no header end")
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        params = dict(_PARAM.findall(disposition))
        if not disposition.lower().startswith("form-data") or "name" not in params:
            raise ValueError("a part has no form-data name")
        parts[params["name"]] = Part(
            params["name"], params.get("filename"), headers.get("content-type"), data
        )
    return parts


def _text(part: Part | None) -> str:
    return part.data.decode("utf-8", "replace") if part is not None else ""


# USD per second by mode, silent / with sound: kie's pricing page of 2026-06-30 (Kling 3.0:
# 720p $0.07/$0.10, 1080p $0.09/$0.135, 4K $0.335), kept here apart from the provider's table
# so that a misreading there shows as a difference between the estimate and the bill
_RATES = {"std": ("0.07", "0.10"), "pro": ("0.09", "0.135"), "4K": ("0.335", "0.335")}


# Kling 3.0 Turbo, USD per second by resolution (the same pricing page: "kling 3.0 turbo,
# text-to-video/image-to-video, 720P $0.09, 1080P $0.1125"); sound always
_TURBO_RATES = {"720p": "0.09", "1080p": "0.1125"}


def _billed(body: dict) -> Decimal | None:
    """What kie bills for a createTask body: the mode's rate (Turbo: the resolution's) times
    the seconds asked for."""
    fields = body.get("input") if isinstance(body.get("input"), dict) else {}
    try:
        seconds = int(str(fields.get("duration", "5")))
    except ValueError:
        return None
    if body.get("model") in TURBO_FIELDS:
        rate = _TURBO_RATES.get(fields.get("resolution"))
        return None if rate is None else Decimal(rate) * seconds
    rates = _RATES.get(fields.get("mode", "pro"))
    if rates is None:
        return None
    return Decimal(rates[1] if fields.get("sound") else rates[0]) * seconds
