"""The task-style API with model `kling/v3` (seed 002), in the kie.ai "Market" template.

Paths are relative to `{base}/kling-v3-task`:

- `POST /api/v1/jobs/createTask` with `x-api-key`, body `{"model": "kling/v3",
  "callback_url"?, "input": {...}}`, answers `{"code": 200, "msg": "success", "data":
  {"taskId"}}`;
- `GET /api/v1/jobs/recordInfo?taskId=` answers `{"code": 200, "message": "success", "data":
  {taskId, model, state, param, resultJson, failCode, failMsg, createTime, updateTime,
  completeTime}}` where `param` and `resultJson` are JSON strings and `state` runs waiting ->
  queuing -> generating -> success | fail.

Errors carry the seed's code in the body (401, 402, 404, 422, 429, 455, 500, 501, 505) with a
matching HTTP status where one exists (`HTTP_STATUS`); a generation failure is state `fail`
with failCode "501". With `callback_url`, the finished `data` object is POSTed there once.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from typing import Any

from .faults import TransportFault
from .store import Backend, ClipPlan, Generation, ImageInput, InputError
from .wire import Request, Response, Route, json_response

NAME = "kling-v3-task"
MODEL = "kling/v3"  # seed 002: "Must be kling/v3 for this endpoint"
MESSAGES = {  # seed 002, "Response status code"
    401: "Unauthorized - Authentication credentials are missing or invalid",
    402: "Insufficient Credits - Account does not have enough credits to perform the operation",
    404: "Not Found - The requested resource or endpoint does not exist",
    422: "Validation Error - The request parameters failed validation checks",
    429: "Rate Limited - Request limit has been exceeded for this resource",
    455: "Service Unavailable - System is currently undergoing maintenance",
    500: "Server Error - An unexpected error occurred while processing the request",
    501: "Generation Failed - Content generation task failed",
    505: "Feature Disabled - The requested feature is currently disabled",
}
# The HTTP status sent with each body code: the same number where HTTP has a fitting one.
HTTP_STATUS = {
    401: 401,
    402: 402,
    404: 404,
    422: 422,
    429: 429,
    455: 503,
    500: 500,
    501: 500,
    505: 403,
}
INPUT_FIELDS = frozenset(
    {
        "prompt",
        "negative_prompt",
        "duration",
        "multi_shots",
        "shot_type",
        "multi_prompt",
        "img_urls",
        "aspect_ratio",
        "audio",
        "element_list",
        "mode",
        "cfg_scale",
    }
)
ASPECTS = {"16:9": (1920, 1080), "9:16": (1080, 1920), "1:1": (1440, 1440)}
MODES = ("std", "pro")  # kie.ai template [inferred]
SHOT_TYPES = ("customize", "intelligence")  # seed 002
# Fractions of the generation time spent waiting and queuing before generating [inferred].
_WAITING, _QUEUING = 0.15, 0.3


class KlingV3Task:
    """The createTask / recordInfo route table over a shared `Backend`."""

    name = NAME

    def __init__(self, backend: Backend, key: str | None) -> None:
        self.backend = backend
        self.key = key
        self.callbacks: list[tuple[str, dict, int | str]] = []  # (url, data, HTTP status or error)
        self._notified: set[str] = set()
        self._lock = threading.Lock()
        self.routes = (
            Route("POST", r"/api/v1/jobs/createTask", self.create_task, "submit"),
            Route("GET", r"/api/v1/jobs/recordInfo", self.record_info, "poll"),
        )

    def authorize(self, request: Request) -> Response | None:
        """None when `x-api-key` is right; else code 401."""
        value = request.header("x-api-key")
        if value and (self.key is None or value == self.key):
            return None
        return error(401, "x-api-key is missing or invalid")

    def fault_response(self, fault: TransportFault) -> Response:
        """A transport fault as a body code (429, 455, 500...) with its HTTP status."""
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
        return error(fault.status, f"simulated {fault.status}", headers, fault.http_status)

    def create_task(self, request: Request) -> Response:
        """Validate the task and queue it; answer its taskId."""
        try:
            body = request.json()
        except ValueError:
            return error(422, "the body must be a JSON object")
        if not isinstance(body, dict):
            return error(422, "the body must be a JSON object")
        if body.get("model") != MODEL:
            return error(422, f"model must be {MODEL!r}, got {body.get('model')!r}")
        problems, plan = _check(self.backend, body)
        if problems:
            return error(422, "; ".join(problems))
        task_id = uuid.uuid4().hex
        self.backend.start(NAME, task_id, plan, prompt=plan.caption, request=body)
        return json_response(200, {"code": 200, "msg": "success", "data": {"taskId": task_id}})

    def record_info(self, request: Request) -> Response:
        """The task's current `data` object; code 404 for an unknown taskId."""
        task_id = request.query.get("taskId", "")
        generation = self.backend.generation(NAME, task_id)
        if generation is None:
            return error(404, f"no task with taskId {task_id!r}")
        data = self.task_data(generation)
        if data["state"] in ("success", "fail"):
            self._notify(generation, data)
        return json_response(200, {"code": 200, "message": "success", "data": data})

    def task_data(self, generation: Generation) -> dict[str, Any]:
        """The query's `data` object (also the callback payload)."""
        return task_record(self.backend, generation, MODEL)

    def _notify(self, generation: Generation, data: dict) -> None:
        """POST the finished data to callback_url once, from a background thread."""
        url = generation.request.get("callback_url")
        with self._lock:
            if not isinstance(url, str) or generation.id in self._notified:
                return
            self._notified.add(generation.id)
        threading.Thread(target=self._post_callback, args=(url, data), daemon=True).start()

    def _post_callback(self, url: str, data: dict) -> None:
        payload = json.dumps(data).encode("utf-8")
        req = urllib.request.Request(
            url, payload, {"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as answer:
                outcome: int | str = answer.status
        except (urllib.error.URLError, OSError) as exc:
            outcome = f"{exc.__class__.__name__}: {exc}"
        with self._lock:
            self.callbacks.append((url, data, outcome))


def error(
    code: int, detail: str, headers: Mapping[str, str] | None = None, http_status: int | None = None
) -> Response:
    """An error answer: body `{"code", "msg", "data": null}`, HTTP status per HTTP_STATUS."""
    msg = f"{MESSAGES.get(code, 'Error')}: {detail}"
    status = http_status or HTTP_STATUS.get(code, 200)
    return json_response(status, {"code": code, "msg": msg, "data": None}, headers)


def _state(generation: Generation, now_s: float, done: bool) -> str:
    if done:
        return "fail" if generation.failure is not None else "success"
    progress = generation.progress(now_s)
    if progress < _WAITING:
        return "waiting"
    return "queuing" if progress < _QUEUING else "generating"


def task_record(backend: Backend, generation: Generation, model: str) -> dict[str, Any]:
    """recordInfo's `data` object, the Market API shape kie.ai documents (shared by the seed
    002 dialect and the `kie` simulator: docs.kie.ai/market/common/get-task-detail)."""
    done = backend.finish(generation)
    now_ms = int(time.time() * 1000)
    data: dict[str, Any] = {
        "taskId": generation.id,
        "model": model,
        "state": _state(generation, backend.clock(), done),
        "param": json.dumps(generation.request),
        "resultJson": "",
        "failCode": "",
        "failMsg": "",
        "costTime": None,
        "completeTime": generation.finished_ms if done else None,
        "createTime": generation.created_ms,
        "updateTime": generation.finished_ms if done else now_ms,
    }
    if data["state"] == "success":
        urls = [backend.file_url(f.name) for f in generation.outputs]
        data["resultJson"] = json.dumps({"resultUrls": urls})
        data["costTime"] = generation.finished_ms - generation.created_ms
    elif data["state"] == "fail":
        data["failCode"] = generation.failure.code or "501"
        data["failMsg"] = generation.failure.message
    return data


def _check(backend: Backend, body: Mapping[str, Any]) -> tuple[list[str], ClipPlan | None]:
    """(problems, clip plan): seed 002's Key Rules and Validation Rules, in its words."""
    problems: list[str] = []
    callback = body.get("callback_url")
    if callback is not None and not (
        isinstance(callback, str) and callback.startswith(("http://", "https://"))
    ):
        problems.append("callback_url must be an http(s) URL")
    unknown_top = sorted(set(body) - {"model", "callback_url", "input"})
    if unknown_top:
        problems.append(f"unknown field(s) {unknown_top}")
    fields = body.get("input")
    if not isinstance(fields, dict):
        return problems + ["input is required and must be an object"], None
    unknown = sorted(set(fields) - INPUT_FIELDS)
    if unknown:
        problems.append(f"unknown input field(s) {unknown}")
    multi = fields.get("multi_shots")
    if not isinstance(multi, bool):
        problems.append("multi_shots is required on every request (true or false)")
        multi = False
    duration = _duration(fields.get("duration", "5"), "duration", problems, 3)
    texts = _prompts(fields, multi, duration, problems)
    images = _images(backend, fields.get("img_urls"), multi, problems)
    _elements(backend, fields.get("element_list"), problems)
    if not _choice(fields.get("aspect_ratio", "16:9"), ASPECTS):
        problems.append(f"aspect_ratio must be one of {sorted(ASPECTS)}")
    if not _choice(fields.get("mode", "pro"), MODES):
        problems.append(f"mode must be one of {list(MODES)}")
    if "audio" in fields and not isinstance(fields["audio"], bool):
        problems.append("audio must be a boolean")
    if problems:
        return problems, None
    width, height = ASPECTS[fields.get("aspect_ratio", "16:9")]
    return [], ClipPlan(
        duration_s=float(duration),
        width=width,
        height=height,
        audio=True if multi else fields.get("audio", True),  # seed 002: forced true in multi-shot
        first_image=images[0] if images and images[0].path else None,
        last_image=images[1] if len(images) > 1 and images[1].path else None,
        title="kling/v3",
        caption="\n".join(texts),
    )


def _choice(value: Any, allowed) -> bool:
    """True when `value` is one of the allowed strings (lists and objects never are)."""
    return isinstance(value, str) and value in allowed


def _duration(value: Any, where: str, problems: list[str], low: int) -> int:
    """An integer duration from a string like "5" (an int is accepted too) [inferred]."""
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not re.fullmatch(r"\d+", text) or not low <= int(text) <= 15:
        problems.append(f"{where} must be {low} to 15 seconds, got {value!r}")
        return 0
    return int(text)


def _prompts(
    fields: Mapping[str, Any], multi: bool, duration: int, problems: list[str]
) -> list[str]:
    prompt, segments = fields.get("prompt"), fields.get("multi_prompt")
    texts = [prompt] if isinstance(prompt, str) and prompt else []
    if not multi:
        # seed 002: "When multi_shots=false, shot_type is automatically set to null"
        if not texts:
            problems.append("When multi_shots is false, prompt is required")
        return texts
    shot_type = fields.get("shot_type", "customize" if segments is not None else "intelligence")
    if shot_type not in SHOT_TYPES:
        problems.append(f"shot_type must be one of {list(SHOT_TYPES)} when multi_shots is true")
    elif shot_type == "intelligence":
        if not texts:
            problems.append("When multi_shots=true and shot_type=intelligence, prompt is required")
        if segments is not None:
            problems.append("When shot_type=intelligence, multi_prompt should not be provided")
    elif segments is None:
        problems.append("When multi_shots=true and shot_type=customize, multi_prompt is required")
    else:
        texts += _segments(segments, duration, problems)
    return texts


def _segments(segments: Any, duration: int, problems: list[str]) -> list[str]:
    if not isinstance(segments, list) or not 1 <= len(segments) <= 6:
        problems.append("multi_prompt must define 1 to 6 shots")
        return []
    texts, total = [], 0
    for i, segment in enumerate(segments):
        if (
            not isinstance(segment, dict)
            or not isinstance(segment.get("prompt"), str)
            or not segment["prompt"]
        ):
            problems.append(f"multi_prompt[{i}] needs a prompt and a duration")
            continue
        texts.append(segment["prompt"])
        total += _duration(segment.get("duration"), f"multi_prompt[{i}].duration", problems, 1)
    if total != duration and not any(p.startswith("multi_prompt[") for p in problems):
        problems.append(
            f"the shot durations in multi_prompt add up to {total}, "
            f"which must exactly equal duration ({duration})"
        )
    return texts


def _images(backend: Backend, urls: Any, multi: bool, problems: list[str]) -> list[ImageInput]:
    if urls is None:
        if multi:
            problems.append("When multi_shots is true, img_urls must contain exactly 1 image")
        return []
    if not isinstance(urls, list):
        problems.append("img_urls must be a list of URLs")
        return []
    if multi and len(urls) != 1:
        problems.append("When multi_shots is true, img_urls must contain exactly 1 image")
    if not multi and not 1 <= len(urls) <= 2:
        problems.append(
            "In single-shot mode, img_urls supports 1 start frame or 2 frames (first/last)"
        )
    return [
        image
        for i, url in enumerate(urls[:2])
        if (image := _url_image(backend, url, f"img_urls[{i}]", problems))
    ]


def _url_image(backend: Backend, url: Any, where: str, problems: list[str]) -> ImageInput | None:
    try:
        return backend.image_input(url, allow_inline=False)
    except InputError as exc:
        problems.append(f"{where} {exc}")
        return None


def _elements(backend: Backend, elements: Any, problems: list[str]) -> None:
    if elements is None:
        return
    if not isinstance(elements, list) or not 1 <= len(elements) <= 3:
        problems.append("element_list supports up to 3 elements")
        return
    names = set()
    for i, element in enumerate(elements):
        if (
            not isinstance(element, dict)
            or not isinstance(element.get("name"), str)
            or not element["name"]
        ):
            problems.append(f"element_list[{i}] needs a name")
            continue
        if element["name"] in names:
            problems.append(f"element_list[{i}]: duplicate element name {element['name']!r}")
        names.add(element["name"])
        urls = element.get("element_input_urls")
        if not isinstance(urls, list) or not 1 <= len(urls) <= 4:
            problems.append(f"element_list[{i}]: each element accepts 1 to 4 reference images")
            continue
        for j, url in enumerate(urls):
            _url_image(backend, url, f"element_list[{i}].element_input_urls[{j}]", problems)
