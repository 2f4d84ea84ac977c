"""The official Kling API (api-singapore.klingai.com): Kling VIDEO 3.0 text-to-video,
image-to-video and 3.0 Omni video, element creation, task queries, with JWT auth.

Written from Kling's own documentation, never from `providers/kling/`. The developer portal
(https://app.klingai.com/global/dev/document-api/...) renders in a browser only, so its pages
were read through public copies; where a fact is only in a third-party client or summary, the
comment beside it says so. Sources:

- [GEN] "General Information" (apiReference/commonInfo): the API domain
  https://api-singapore.klingai.com; a JWT per RFC 7519, header `{"alg": "HS256", "typ":
  "JWT"}`, payload `{"iss": <access key>, "exp": now + 1800, "nbf": now - 5}`, signed with the
  secret key and sent as `Authorization: Bearer <token>`; the error-code table with each code's
  HTTP status (1000-1004 401; 1100-1102 429, 1103 403; 1200/1201 400, 1202/1203 404; 1300/1301
  400; 1302-1304 429; 5000 500, 5001 503, 5002 504); task statuses submitted -> processing ->
  succeed | failed; images .jpg/.jpeg/.png, at most 10 MB, sides >= 300 px, aspect 1:2.5 to
  2.5:1; Base64 "without any prefix such as data:image/png;base64,"; the 1303 body `{"code",
  "message", "request_id"}`. Read in inference-sh/grid `api/klingai/docs/00-general.md` (a
  summary) and in a project spec quoting the portal's tables verbatim.
- [I2V] "Image to Video" (apiReference/model/imageToVideo), verbatim copy of the pre-3.0 page
  in QuincyMillerDev/cooliomusic `docs/KLINGAI_IMAGE_TO_VIDEO_API.md`: `POST
  /v1/videos/image2video`; `image` / `image_tail` as URL or raw Base64, at least one of them,
  not with `static_mask`/`dynamic_masks`/`camera_control`; `model` is the old name of
  `model_name` and means the default, kling-v1; `external_task_id` "must be unique within a
  single user account" and does not replace `task_id`; `GET /v1/videos/image2video/{id}` takes
  either the task_id or the external_task_id in the path; the answers `{code: 0, message,
  request_id, data: {task_id, task_status, task_status_msg, task_info: {external_task_id},
  created_at, updated_at, task_result: {videos: [{id, url, duration}]}}}`; the list, `GET
  /v1/videos/image2video?pageNum=[1,1000]&pageSize=[1,500]`.
- [T2V] "Text to Video" for kling-v3 (same layout, `POST /v1/videos/text2video`): model_name
  enum up to `kling-v3`, `multi_shot` / `shot_type` customize|intelligence / `multi_prompt`
  `[{index: int, prompt, duration: "string"}]` (1 to 6 shots, each prompt at most 512
  characters, each duration >= 1 and <= the total, summing to `duration`), `sound` "on"|"off"
  (default off), `mode` std|pro (default std), `aspect_ratio` 16:9|9:16|1:1 (default 16:9),
  `duration` "3".."15" (default "5"), `watermark_info: {enabled}`, and `final_unit_deduction`
  (a string) in the query answer. Read in a third-party skill file quoting the page's table and
  in vercel/ai `packages/klingai/src/klingai-video-model-options.ts` (third-party client, which
  adds: `element_list [{element_id: number}]`, at most 3, image-to-video only and not with
  `voice_list`; `voice_list [{voice_id}]`, at most 2, referenced as `<<<voice_1>>>`, with sound
  "on").
- [OMNI] "Omni-Video" (apiReference/model/OmniVideo, a public scrape of the page): `POST
  /v1/videos/omni-video`, `model_name` kling-video-o1 (default) | kling-v3-omni; prompt
  required unless multi_shot customize, `<<<element_1>>>`, `<<<image_1>>>`, `<<<video_1>>>`
  references; `image_list [{image_url, type?: first_frame|end_frame}]` (an end frame needs a
  first frame); `element_list`; `video_list [{video_url, refer_type: base|feature,
  keep_original_sound}]` (one video; sound must be off with it); images + elements <= 7, <= 4
  with a video; `aspect_ratio` required without a first frame or a video to edit; no first or
  end frame in multi-shot.
- [ELEM] "General - Create Element": `POST /v1/general/advanced-custom-elements` with
  `element_name` (<= 20 characters), `element_description` (<= 100), `reference_type`
  image_refer|video_refer, `element_image_list {frontal_image, refer_images: [{image_url}] 1-3}`
  or `element_video_list {refer_videos: [{video_url}]}` (one video), `element_voice_id` (video
  elements only), `tag_list [{tag_id: o_101..o_108}]`; an asynchronous task whose query, `GET
  .../advanced-custom-elements/{id}`, ends with `task_result.elements[{element_id (a long),
  element_name, ...}]`. Read in a Go client of the official element API (a QuantumNous/new-api
  derivative, `OfficialElementClient`) and a gateway's Chinese copy of the page (third-party).
- [VOICE] "自定义音色" (custom voices), a gateway's Chinese copy of the page: `POST
  /v1/general/custom-voices` with `voice_name` (required, "不超过20字符", at most 20
  characters), `voice_url` (".mp3/.wav/.mp4/.mov，5-30秒", one clean voice) or `video_id` (one
  of the two), `callback_url`, `external_task_id`; a task whose query, `GET
  .../custom-voices/{id}`, ends with `task_result.voices[{voice_id, voice_name, trial_url,
  owned_by}]`. The voice id goes to `voice_list` or an element's `element_voice_id`; an id
  this simulator did not make is refused (official preset voices are not modelled).
- [PRICE] Units per second for kling-v3 (std 0.6 silent, 0.9 with sound, 1.1 with sound and a
  voice; pro 0.8 / 1.2 / 1.4) and kling-v3-omni (std 0.6, 0.8 with sound, 0.9 with a video, 1.1
  both; pro 0.8 / 1.0 / 1.2 / 1.4), a unit being $0.14: only in a third-party compilation of the
  official price list ("Kling AI 3.0 API Reference, compiled from official Kling AI
  documentation, Feb 2026"); $0.084/s std and $0.112/s pro match fal's published rates.
- [QUERY] The query by external_task_id. Kling's query pages (copies as above): "When
  creating a task, you can choose to query by external_task_id or task_id", both listed as
  request path parameters: `GET {endpoint}/{external_task_id}` (served by `query_video`). A
  relay copy of the image-to-video page (betasecond/KlingDemo `APIDoc.md`) and clients of
  other endpoints (Kotlin SDKs: `GET /v1/videos/avatar/image2video?external_task_id=`) send it
  as a query parameter on the endpoint, the list's path: `GET {endpoint}?external_task_id=ID`.
  That copy says its answer is the single query's (one task in `data`); the list endpoint
  answers a list. The stricter reading, served here: the list shape, `data: [task]`, and an
  empty list (not 1203) when no task has that id, so a client must find its own id in the
  list and may not take "no error" for "found".
- [SEEN] Live answers quoted by third parties: `"message": "SUCCEED"` and an 18-digit numeric
  `task_id` on success; a failed task as `{code: 0, message: "SUCCEED", data: {task_status:
  "failed", task_status_msg: "Image pixel is invalid", task_result: {}, task_info: {}}}`
  (QuantumNous/new-api pull request 2532).

Choices where the documentation is silent [inferred]:

- JWT: a bad signature or an `iss` other than the access key is 1000, no or an empty
  Authorization 1001, anything not `Bearer <a decodable HS256 JWT with iss, exp, nbf>` 1002,
  `nbf` in the future 1003, `exp` passed 1004; `JWT_LEEWAY_S` of clock skew either way. Without
  a configured key pair any access/secret pair is accepted (the signature cannot be checked;
  the claims still are), as the other simulated providers accept any non-empty key.
- Errors answer `{code, message, request_id}` with the table's HTTP status; every parameter
  problem is 1201 (1200 for a body that is not a JSON object), a model this simulator does not
  serve 1203, an unknown task id 1203 / HTTP 404, a duplicate `external_task_id` 1201.
  Unknown fields are refused (1201) so that a misspelt field fails here, not silently there.
- An empty `callback_url` or `external_task_id` means none (the official examples send "");
  callbacks are checked, never called. A task is found only under the endpoint that created
  it; external_task_id is unique across all of them. `pageNum`/`pageSize` lists are newest
  first. Element creation is not billed; an element can be used once its task succeeded.
- A generation's state is `submitted` for its first quarter, then `processing`; a failed one
  (`Faults.fail_generation`) answers `failed` with the failure message in `task_status_msg`
  and an empty `task_result`.
- Scope: `kling-v3` on text2video and image2video, `kling-v3-omni` on omni-video; any other
  model_name (or none: the API would use kling-v1 / kling-video-o1) is 1203. Fields follow
  each page's table: no `aspect_ratio` on image2video (the image sets it), no `element_list`
  on text2video, no `voice_list` on omni-video. `element_id` is a long; a numeric string is
  accepted too (the API is documented with a long and reads JSON leniently, probably).
  Outside image URLs are accepted unread; bytes and this simulator's files are checked.

The key pair is given as `Simulator(keys={"kling": "ACCESS_KEY:SECRET_KEY"})` (or `--key
kling=ACCESS_KEY:SECRET_KEY`); `Simulator.env()` hands it on as KLING_ACCESS_KEY and
KLING_SECRET_KEY (`DEFAULT_KEYS` when none is configured), with KLING_COMPOSE_KLING_URL.
Faults: `error(status=<code>, provider="kling")` answers that body code with its HTTP status
(1100-1102 429, 1300/1301 400, 1302/1303 429, 5000-5002 500/503/504); a plain HTTP status
(429, 500, 503...) becomes the code standing for it (`CODE_OF_HTTP`).
"""

from __future__ import annotations

import itertools
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import jwt

from .faults import TransportFault
from .store import Backend, ClipPlan, Generation, ImageInput, InputError
from .wire import Request, Response, Route, json_response

NAME = "kling"
ENV_ACCESS_KEY, ENV_SECRET_KEY = "KLING_ACCESS_KEY", "KLING_SECRET_KEY"
# what env() hands a client when no pair is configured (any pair is then accepted); the
# secret is 32 bytes, the length PyJWT wants for HS256
DEFAULT_KEYS = ("simulator-access-key", "simulator-secret-key-0123456789ab")
JWT_LEEWAY_S = 5  # [inferred] the official sample backdates nbf by 5 s; no leeway is documented
ERRORS = {  # [GEN] code -> (HTTP status, definition)
    1000: (401, "Authentication failed"),
    1001: (401, "Authorization is empty"),
    1002: (401, "Authorization is invalid"),
    1003: (401, "Authorization is not yet valid"),
    1004: (401, "Authorization has expired"),
    1100: (429, "Account exception"),
    1101: (429, "Account in arrears (postpaid)"),
    1102: (429, "Resource pack depleted or expired (prepaid)"),
    1103: (403, "Unauthorized access to the requested resource, such as the API or model"),
    1200: (400, "Invalid request parameters"),
    1201: (400, "Invalid parameters, such as an incorrect key or an illegal value"),
    1202: (404, "The requested method is invalid"),
    1203: (404, "The requested resource does not exist, such as the model"),
    1300: (400, "Trigger strategy of the platform"),
    1301: (400, "Trigger the content security policy of the platform"),
    1302: (429, "The API request is too fast, exceeding the platform's rate limit"),
    1303: (429, "parallel task over resource pack limit"),  # [GEN] the 1303 example's message
    1304: (429, "Trigger the platform's IP whitelisting policy"),
    5000: (500, "Server internal error"),
    5001: (503, "Server temporarily unavailable, usually due to maintenance"),
    5002: (504, "Server internal timeout, usually due to a backlog"),
}
# a generic fault (Faults.rate_limit, error(status=503)...) as the Kling code it stands for
CODE_OF_HTTP = {400: 1200, 401: 1000, 402: 1102, 403: 1103, 404: 1203, 429: 1302, 500: 5000,
                502: 5000, 503: 5001, 504: 5002}  # fmt: skip
MODELS = {"text2video": "kling-v3", "image2video": "kling-v3", "omni-video": "kling-v3-omni"}
DEFAULT_MODELS = {"text2video": "kling-v1", "image2video": "kling-v1",
                  "omni-video": "kling-video-o1"}  # fmt: skip
_COMMON = frozenset({"model_name", "prompt", "multi_shot", "shot_type", "multi_prompt", "mode",
                     "sound", "duration", "watermark_info", "callback_url", "external_task_id"})
FIELDS = {  # fmt: skip
    "text2video": _COMMON | {"negative_prompt", "cfg_scale", "camera_control", "aspect_ratio",
                             "voice_list"},
    "image2video": _COMMON | {"image", "image_tail", "negative_prompt", "cfg_scale",
                              "camera_control", "static_mask", "dynamic_masks", "element_list",
                              "voice_list"},
    "omni-video": _COMMON | {"aspect_ratio", "image_list", "element_list", "video_list"},
}
MODES = ("std", "pro")
SIZES = {  # [T2V] std 720p, pro 1080p
    "std": {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720)},
    "pro": {"16:9": (1920, 1080), "9:16": (1080, 1920), "1:1": (1080, 1080)},
}
DURATIONS = tuple(str(n) for n in range(3, 16))  # [T2V] "3".."15", strings
SHOT_TYPES = ("customize", "intelligence")
MAX_SHOTS, SHOT_CHARS, PROMPT_CHARS = 6, 512, 2500  # [T2V]
MAX_VOICES, MAX_I2V_ELEMENTS = 2, 3  # vercel/ai klingai options (third-party)
OMNI_REFERENCES, OMNI_REFERENCES_WITH_VIDEO = 7, 4  # [OMNI]
IMAGE_BYTES, IMAGE_SIDE, IMAGE_ASPECT = 10 * 1024 * 1024, 300, 2.5  # [GEN]
IMAGE_SUFFIXES = (".jpg", ".png")  # [GEN] .jpg / .jpeg / .png (JPEG, PNG)
VIDEO_SUFFIXES = (".mp4", ".mov")  # [OMNI]
CAMERA_TYPES = ("simple", "down_back", "forward_up", "right_turn_forward", "left_turn_forward")
ELEMENT_FIELDS = frozenset({"element_name", "element_description", "reference_type",
                            "element_image_list", "element_video_list", "element_voice_id",
                            "tag_list", "callback_url", "external_task_id"})  # fmt: skip
ELEMENT_NAME_CHARS, ELEMENT_DESCRIPTION_CHARS, ELEMENT_REFER_IMAGES = 20, 100, (1, 3)  # [ELEM]
TAG_IDS = tuple(f"o_{n}" for n in range(101, 109))  # [ELEM]
USD_PER_UNIT = Decimal("0.14")  # [PRICE] (third-party compilation)
UNITS_PER_S = {  # [PRICE] (mode, sound, voice) for kling-v3
    ("std", False, False): Decimal("0.6"), ("std", True, False): Decimal("0.9"),
    ("std", True, True): Decimal("1.1"), ("pro", False, False): Decimal("0.8"),
    ("pro", True, False): Decimal("1.2"), ("pro", True, True): Decimal("1.4"),
}  # fmt: skip
OMNI_UNITS_PER_S = {  # [PRICE] (mode, video input, sound) for kling-v3-omni
    ("std", False, False): Decimal("0.6"), ("std", False, True): Decimal("0.8"),
    ("std", True, False): Decimal("0.9"), ("std", True, True): Decimal("1.1"),
    ("pro", False, False): Decimal("0.8"), ("pro", False, True): Decimal("1.0"),
    ("pro", True, False): Decimal("1.2"), ("pro", True, True): Decimal("1.4"),
}  # fmt: skip
_SUBMITTED = 0.25  # the fraction of the generation time a task says `submitted` [inferred]
_REFERENCE = re.compile(r"<<<(element|image|video|voice)_(\d+)>>>")


def split_key(value: str | None) -> tuple[str, str] | None:
    """(access key, secret key) from the simulator's `"ACCESS:SECRET"` key text; None: any."""
    if value is None:
        return None
    access, sep, secret = value.partition(":")
    if not (sep and access and secret):
        raise ValueError("the kling key is ACCESS_KEY:SECRET_KEY (both non-empty)")
    return access, secret


def key_env(value: str | None) -> dict[str, str]:
    """KLING_ACCESS_KEY and KLING_SECRET_KEY for a client of this simulator."""
    access, secret = split_key(value) or DEFAULT_KEYS
    return {ENV_ACCESS_KEY: access, ENV_SECRET_KEY: secret}


@dataclass(frozen=True, slots=True)
class _Task:
    """What the API keeps beside a generation: its endpoint, external id and units."""

    endpoint: str
    external_task_id: str
    units: Decimal
    duration: str
    watermark: bool


@dataclass
class _ElementTask:
    """An element-creation task; the element is usable once the task succeeded."""

    task_id: str
    external_task_id: str
    element: dict[str, Any]
    started_s: float
    failure: str | None
    created_ms: int = field(default_factory=lambda: int(time.time() * 1000))


class Kling:
    """The route table of api-singapore.klingai.com over a shared `Backend`."""

    name = NAME

    def __init__(self, backend: Backend, key: str | None) -> None:
        self.backend = backend
        self.keys = split_key(key)
        self.tasks: dict[str, _Task] = {}  # by task_id
        self.element_tasks: dict[str, _ElementTask] = {}  # by task_id
        self.voice_tasks: dict[str, _ElementTask] = {}  # by task_id; `element` is the voice
        self.voices: dict[str, str] = {}  # voice_id -> the sample URL it was made of
        self._external: dict[str, str] = {}  # external_task_id -> task_id (all endpoints)
        self._elements: dict[int, str] = {}  # element_id -> its creation task_id
        self._ids = itertools.count(secrets.randbelow(10**16))
        self._lock = threading.Lock()
        endpoint = "(?P<endpoint>text2video|image2video|omni-video)"
        self.routes = (
            Route("POST", rf"/v1/videos/{endpoint}", self.create_video, "submit"),
            Route("GET", rf"/v1/videos/{endpoint}/(?P<task>[^/]+)", self.query_video, "poll"),
            Route("GET", rf"/v1/videos/{endpoint}", self.list_videos, "poll"),
            Route("POST", r"/v1/general/advanced-custom-elements", self.create_element,
                  "element"),
            Route("GET", r"/v1/general/advanced-custom-elements/(?P<task>[^/]+)",
                  self.query_element, "element"),
            Route("GET", r"/v1/general/advanced-custom-elements", self.list_elements,
                  "element"),
            Route("POST", r"/v1/general/custom-voices", self.create_voice, "element"),
            Route("GET", r"/v1/general/custom-voices/(?P<task>[^/]+)", self.query_voice,
                  "element"),
        )  # fmt: skip

    # auth and faults ---------------------------------------------------------------------

    def authorize(self, request: Request) -> Response | None:
        """None for `Authorization: Bearer <JWT>` signed by the secret key with iss = the
        access key, within exp and nbf; else 1000-1004 [GEN]."""
        value = request.header("authorization").strip()
        if not value:
            return error(1001, "send Authorization: Bearer <JWT>")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token or " " in token:
            return error(1002, "the header is `Bearer <token>`, one space between them")
        return self._check_token(token)

    def _check_token(self, token: str) -> Response | None:
        access, secret = self.keys or (None, "")
        options = {"require": ["iss", "exp", "nbf"], "verify_signature": self.keys is not None,
                   "verify_exp": True, "verify_nbf": True, "verify_iss": access is not None}
        try:
            claims = jwt.decode(token, secret, algorithms=["HS256"], options=options,
                                issuer=access, leeway=JWT_LEEWAY_S)  # fmt: skip
        except jwt.ExpiredSignatureError:
            return error(1004, "the token's exp has passed")
        except jwt.ImmatureSignatureError:
            return error(1003, "the token's nbf is in the future")
        except (jwt.InvalidSignatureError, jwt.InvalidIssuerError):
            return error(1000, "the token is not signed by this key pair (iss, secret key)")
        except jwt.InvalidTokenError as exc:
            return error(1002, f"not an HS256 JWT with iss, exp and nbf ({exc})")
        if not (isinstance(claims["iss"], str) and claims["iss"]):
            return error(1000, "iss must be the access key")
        return None

    def fault_response(self, fault: TransportFault) -> Response:
        """A fault as a Kling code: `status` is a code (1302, 5001...) or an HTTP status
        (429 -> 1302, 500 -> 5000...); HTTP status per ERRORS unless the fault names one."""
        if fault.status in ERRORS:
            code, status = fault.status, ERRORS[fault.status][0]
        else:
            code, status = CODE_OF_HTTP.get(fault.status, 5000), fault.status
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
        return error(code, "simulated", headers, fault.http_status or status)

    # videos ------------------------------------------------------------------------------

    def create_video(self, request: Request, endpoint: str) -> Response:
        """Validate the task and queue it; answer `data: {task_id, task_status: submitted}`."""
        body = _json_object(request)
        if body is None:
            return error(1200, "the body must be a JSON object")
        refused = _model_refusal(endpoint, body)
        if refused is not None:
            return refused
        check = _VideoCheck(self, endpoint, body)
        plan, units = check.run()
        if check.problems:
            return error(1201, "; ".join(check.problems))
        external = body.get("external_task_id") or ""
        with self._lock:
            if external and external in self._external:
                return error(1201, f"external_task_id {external!r} already exists "
                                   "(it must be unique within the account)")  # fmt: skip
            task_id = self._new_id()
            if external:
                self._external[external] = task_id
            self.tasks[task_id] = _Task(endpoint, external, units, body.get("duration", "5"),
                                        bool((body.get("watermark_info") or {}).get("enabled")))
        generation = self.backend.start(NAME, task_id, plan, prompt=plan.caption,
                                        cost_usd=units * USD_PER_UNIT, request=body)  # fmt: skip
        data = {"task_id": task_id, "task_status": "submitted", "task_info": _info(external),
                "created_at": generation.created_ms, "updated_at": generation.created_ms}
        return ok(data)

    def query_video(self, request: Request, endpoint: str, task: str) -> Response:
        """The task found by task_id or external_task_id [I2V]; 1203 when there is none."""
        task = unquote(task)
        with self._lock:
            task_id = task if task in self.tasks else self._external.get(task, "")
            record = self.tasks.get(task_id)
        generation = self.backend.generation(NAME, task_id) if record else None
        if record is None or record.endpoint != endpoint or generation is None:
            return error(1203, f"no {endpoint} task with task_id or external_task_id {task!r}")
        return ok(self.task_data(generation, record))

    def list_videos(self, request: Request, endpoint: str) -> Response:
        """`pageNum` [1, 1000] / `pageSize` [1, 500] of this endpoint's tasks, newest first;
        with `external_task_id`, the query by our id [QUERY]: a list holding that task, or an
        empty list."""
        if "external_task_id" in request.query:
            return self._by_external(request.query["external_task_id"], endpoint)
        page, size = request.query.get("pageNum", "1"), request.query.get("pageSize", "30")
        if not (page.isdigit() and 1 <= int(page) <= 1000 and size.isdigit()
                and 1 <= int(size) <= 500):  # fmt: skip
            return error(1201, "pageNum must be 1-1000 and pageSize 1-500")
        with self._lock:
            ids = [i for i, t in self.tasks.items() if t.endpoint == endpoint][::-1]
        start = (int(page) - 1) * int(size)
        found = [(self.backend.generation(NAME, i), self.tasks[i])
                 for i in ids[start : start + int(size)]]  # fmt: skip
        return ok([self.task_data(g, t) for g, t in found if g is not None])

    def _by_external(self, external: str, endpoint: str) -> Response:
        """The query form of a lookup by external_task_id: the list endpoint's shape (`data`, a
        list), filtered to the task created under that id on this endpoint [QUERY]."""
        if not external:
            return error(1201, "external_task_id must not be empty")
        with self._lock:
            task_id = self._external.get(external, "")
            record = self.tasks.get(task_id)
            element = self.element_tasks.get(task_id)
        if endpoint == "element":
            return ok([self._element_data(element)] if element is not None else [])
        generation = self.backend.generation(NAME, task_id) if record else None
        if record is None or record.endpoint != endpoint or generation is None:
            return ok([])
        return ok([self.task_data(generation, record)])

    def task_data(self, generation: Generation, record: _Task) -> dict[str, Any]:
        """The query's `data` object."""
        done = self.backend.finish(generation)
        status = _status(generation, self.backend.clock(), done)
        data: dict[str, Any] = {
            "task_id": generation.id,
            "task_status": status,
            "task_status_msg": generation.failure.message if status == "failed" else "",
            "task_info": _info(record.external_task_id),
            "task_result": {},
            "watermark_info": {"enabled": record.watermark},
            "created_at": generation.created_ms,
            "updated_at": generation.finished_ms if done else int(time.time() * 1000),
        }
        if status == "succeed":
            pairs = zip(generation.outputs, generation.output_ids)
            data["task_result"] = {"videos": [self._video(f.name, i, record) for f, i in pairs]}
            data["final_unit_deduction"] = _units_text(record.units)
        return data

    def _video(self, name: str, output_id: str, record: _Task) -> dict[str, str]:
        video = {"id": output_id, "url": self.backend.file_url(name), "duration": record.duration}
        if record.watermark:
            video["watermark_url"] = self.backend.file_url(name)
        return video

    # elements ----------------------------------------------------------------------------

    def create_element(self, request: Request) -> Response:
        """Validate an element and start its creation task [ELEM]."""
        body = _json_object(request)
        if body is None:
            return error(1200, "the body must be a JSON object")
        problems = _element_problems(self.backend, body)
        voice = body.get("element_voice_id")
        if isinstance(voice, str) and voice not in self.voices:
            problems.append(f"element_voice_id {voice!r} is no voice of this account")
        if problems:
            return error(1201, "; ".join(problems))
        external = body.get("external_task_id") or ""
        failure = self.backend.faults.failure_for(NAME, body["element_name"])
        with self._lock:
            if external and external in self._external:
                return error(1201, f"external_task_id {external!r} already exists")
            task_id, element_id = self._new_id(), int(self._new_id())
            if external:
                self._external[external] = task_id
            element = {"element_id": element_id, **{k: v for k, v in body.items()
                       if k not in ("callback_url", "external_task_id")}}  # fmt: skip
            task = _ElementTask(task_id, external, element, self.backend.clock(),
                                failure.message if failure else None)
            self.element_tasks[task_id] = task
            self._elements[element_id] = task_id
        return ok({"task_id": task_id, "task_status": "submitted", "task_info": _info(external),
                   "created_at": task.created_ms, "updated_at": task.created_ms})

    def query_element(self, request: Request, task: str) -> Response:
        """The creation task by task_id or external_task_id; its element once it succeeded."""
        task = unquote(task)
        with self._lock:
            found = self.element_tasks.get(task) or self.element_tasks.get(
                self._external.get(task, "")
            )
        if found is None:
            return error(1203, f"no element task with task_id or external_task_id {task!r}")
        return ok(self._element_data(found))

    def list_elements(self, request: Request) -> Response:
        """`GET /v1/general/advanced-custom-elements?external_task_id=` [QUERY]; without it,
        `pageNum`/`pageSize` of the creation tasks, newest first."""
        if "external_task_id" in request.query:
            return self._by_external(request.query["external_task_id"], "element")
        page, size = request.query.get("pageNum", "1"), request.query.get("pageSize", "30")
        if not (page.isdigit() and 1 <= int(page) <= 1000 and size.isdigit()
                and 1 <= int(size) <= 500):  # fmt: skip
            return error(1201, "pageNum must be 1-1000 and pageSize 1-500")
        with self._lock:
            tasks = list(self.element_tasks.values())[::-1]
        start = (int(page) - 1) * int(size)
        return ok([self._element_data(t) for t in tasks[start : start + int(size)]])

    # custom voices -----------------------------------------------------------------------

    def create_voice(self, request: Request) -> Response:
        """Validate a custom voice and start its task [VOICE]."""
        body = _json_object(request)
        if body is None:
            return error(1200, "the body must be a JSON object")
        problems = _voice_problems(self.backend, body)
        if problems:
            return error(1201, "; ".join(problems))
        external = body.get("external_task_id") or ""
        with self._lock:
            if external and external in self._external:
                return error(1201, f"external_task_id {external!r} already exists")
            task_id, voice_id = self._new_id(), self._new_id()
            if external:
                self._external[external] = task_id
            voice = {"voice_id": voice_id, "voice_name": body["voice_name"],
                     "trial_url": body.get("voice_url", ""), "owned_by": "creator"}
            task = _ElementTask(task_id, external, voice, self.backend.clock(), None)
            self.voice_tasks[task_id] = task
            self.voices[voice_id] = body.get("voice_url", "")
        return ok({"task_id": task_id, "task_status": "submitted", "task_info": _info(external),
                   "created_at": task.created_ms, "updated_at": task.created_ms})

    def query_voice(self, request: Request, task: str) -> Response:
        """The voice task by task_id or external_task_id; its voice once it succeeded."""
        task = unquote(task)
        with self._lock:
            found = self.voice_tasks.get(task) or self.voice_tasks.get(
                self._external.get(task, ""))
        if found is None:
            return error(1203, f"no voice task with task_id or external_task_id {task!r}")
        status = self._element_status(found)
        data = {"task_id": found.task_id, "task_status": status, "task_status_msg": "",
                "task_info": _info(found.external_task_id), "task_result": {},
                "created_at": found.created_ms, "updated_at": int(time.time() * 1000)}
        if status == "succeed":
            data["task_result"] = {"voices": [dict(found.element)]}
        return ok(data)

    def _element_data(self, found: _ElementTask) -> dict[str, Any]:
        status = self._element_status(found)
        data = {"task_id": found.task_id, "task_status": status,
                "task_status_msg": found.failure if status == "failed" else "",
                "task_info": _info(found.external_task_id), "task_result": {},
                "created_at": found.created_ms, "updated_at": int(time.time() * 1000)}
        if status == "succeed":
            data["task_result"] = {"elements": [{**found.element, "owned_by": "creator",
                                                 "status": "succeed"}]}  # fmt: skip
        return data

    def _element_status(self, task: _ElementTask) -> str:
        if self.backend.clock() - task.started_s < self.backend.faults.task_seconds:
            return "processing"
        return "failed" if task.failure else "succeed"

    def element_problem(self, value: Any) -> str | None:
        """Why `element_id` cannot be used (None when it can): unknown, unfinished, failed."""
        if isinstance(value, str) and value.isdigit():
            value = int(value)  # documented as a long; a numeric string passes [inferred]
        if not isinstance(value, int) or isinstance(value, bool):
            return f"element_id must be an integer, got {value!r}"
        with self._lock:
            task = self.element_tasks.get(self._elements.get(value, ""))
        if task is None:
            return f"element {value} does not exist"
        status = self._element_status(task)
        return None if status == "succeed" else f"element {value} is not ready ({status})"

    def element_voice(self, value: Any) -> str | None:
        """The voice bound to element `value`, if it is one of this account's with a voice."""
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        with self._lock:
            task = self.element_tasks.get(self._elements.get(value, "")) \
                if isinstance(value, int) else None
        voice = task.element.get("element_voice_id") if task is not None else None
        return voice if isinstance(voice, str) else None

    def _new_id(self) -> str:
        """An 18-digit numeric id, as the API's task ids are."""
        return str(10**17 + next(self._ids) % 10**17)


def ok(data: Any) -> Response:
    """`{code: 0, message: "SUCCEED", request_id, data}`."""
    return json_response(200, {"code": 0, "message": "SUCCEED", "request_id": str(uuid.uuid4()),
                               "data": data})  # fmt: skip


def error(
    code: int, detail: str = "", headers: Mapping[str, str] | None = None,
    http_status: int | None = None,
) -> Response:
    """`{code, message, request_id}` with the code's HTTP status [GEN]."""
    status, definition = ERRORS[code]
    message = f"{definition}: {detail}" if detail else definition
    body = {"code": code, "message": message, "request_id": str(uuid.uuid4())}
    return json_response(http_status or status, body, headers)


def _json_object(request: Request) -> dict[str, Any] | None:
    try:
        body = request.json()
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _model_refusal(endpoint: str, body: Mapping[str, Any]) -> Response | None:
    """1203 unless the body names the 3.0 model this simulator serves on `endpoint`."""
    model = body.get("model_name")
    if model == MODELS[endpoint]:
        return None
    if model is None:
        legacy = ""
        if "model" in body:
            legacy = " (`model` is the old name, read as an empty model_name)"
        return error(1203, f"model_name is missing{legacy}: the API then uses "
                           f"{DEFAULT_MODELS[endpoint]}; this simulator serves "
                           f"{MODELS[endpoint]} on {endpoint}")  # fmt: skip
    return error(1203, f"model_name {model!r}: this simulator serves {MODELS[endpoint]} on "
                       f"{endpoint}")  # fmt: skip


def _info(external: str) -> dict[str, str]:
    return {"external_task_id": external} if external else {}


def _status(generation: Generation, now_s: float, done: bool) -> str:
    if done:
        return "failed" if generation.failure is not None else "succeed"
    return "submitted" if generation.progress(now_s) < _SUBMITTED else "processing"


def _units_text(units: Decimal) -> str:
    return f"{units.normalize():f}"


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://")) and bool(
        urlsplit(value).hostname
    )


# -- validation ---------------------------------------------------------------------------------


class _VideoCheck:
    """The documented checks of one video-task body; problems collect in `problems`."""

    def __init__(self, kling: Kling, endpoint: str, body: Mapping[str, Any]) -> None:
        self.kling, self.backend, self.endpoint, self.body = kling, kling.backend, endpoint, body
        self.problems: list[str] = []

    def run(self) -> tuple[ClipPlan, Decimal]:
        """(clip plan, units to deduct), meaningful when `problems` stays empty."""
        self._fields()
        mode = self._choice("mode", MODES, "std")
        duration = self._choice("duration", DURATIONS, "5", kind="a string")
        sound = self._choice("sound", ("on", "off"), "off", kind='the string "on" or "off"')
        aspect = self._choice("aspect_ratio", ("16:9", "9:16", "1:1"), "16:9") \
            if "aspect_ratio" in FIELDS[self.endpoint] else None  # fmt: skip
        texts = self._prompts(int(duration) if duration else 0)
        voice = self._voices(texts, sound)
        frames, video = self._frames(texts)
        self._elements(texts)
        self._options()
        plan = ClipPlan(
            duration_s=float(int(duration or 5)),
            width=SIZES[mode or "std"][aspect or "16:9"][0],
            height=SIZES[mode or "std"][aspect or "16:9"][1],
            audio=sound == "on",
            first_image=frames.get("first"),
            last_image=frames.get("last"),
            title=MODELS[self.endpoint],
            caption="\n".join(texts),
        )
        return plan, self._units(mode, int(duration or 5), sound == "on", voice, video)

    def _fields(self) -> None:
        unknown = sorted(set(self.body) - FIELDS[self.endpoint] - {"model"})
        if unknown:
            self.problems.append(f"unknown field(s) for {self.endpoint}: {unknown}")
        callback = self.body.get("callback_url", "")
        if callback != "" and not _is_url(callback):
            self.problems.append("callback_url must be an http(s) URL")
        if not isinstance(self.body.get("external_task_id", ""), str):
            self.problems.append("external_task_id must be a string")

    def _choice(self, key: str, allowed: tuple[str, ...], default: str,
                kind: str = "a string") -> str | None:  # fmt: skip
        value = self.body.get(key, default)
        if isinstance(value, str) and value in allowed:
            return value
        shown = f"{allowed[0]}..{allowed[-1]}" if len(allowed) > 5 else "|".join(allowed)
        self.problems.append(f"{key} must be {kind} ({shown}), got {value!r}")
        return None

    def _prompts(self, duration: int) -> list[str]:
        """The texts that take effect (prompt, or the shots' prompts); checks both."""
        prompt = self._text("prompt")
        self._text("negative_prompt")
        multi = self.body.get("multi_shot", False)
        if not isinstance(multi, bool):
            self.problems.append(f"multi_shot must be a boolean, got {multi!r}")
            multi = False
        if not multi:
            if not prompt:
                self.problems.append("prompt is required when multi_shot is false")
            return [prompt] if prompt else []
        shot_type = self.body.get("shot_type")
        if shot_type not in SHOT_TYPES:
            self.problems.append(f"shot_type is required when multi_shot is true: one of "
                                 f"{list(SHOT_TYPES)}, got {shot_type!r}")  # fmt: skip
            return []
        if shot_type == "intelligence":
            if not prompt:
                self.problems.append("prompt is required when shot_type is intelligence")
            return [prompt] if prompt else []
        return self._shots(self.body.get("multi_prompt"), duration)

    def _text(self, key: str) -> str:
        value = self.body.get(key, "")
        if not isinstance(value, str):
            self.problems.append(f"{key} must be a string")
            return ""
        if len(value) > PROMPT_CHARS:
            self.problems.append(f"{key} cannot exceed {PROMPT_CHARS} characters ({len(value)})")
        return value

    def _shots(self, shots: Any, duration: int) -> list[str]:
        if not isinstance(shots, list) or not 1 <= len(shots) <= MAX_SHOTS:
            count = len(shots) if isinstance(shots, list) else shots
            self.problems.append(f"multi_prompt is required when shot_type is customize: 1 to "
                                 f"{MAX_SHOTS} shots, got {count!r}")  # fmt: skip
            return []
        texts, total, indexes = [], 0, []
        for i, shot in enumerate(shots):
            text, seconds, index = self._shot(shot, i, duration)
            texts += [text] if text else []
            total += seconds
            indexes += [index] if isinstance(index, int) else []
        if len(set(indexes)) != len(indexes):
            self.problems.append("multi_prompt[].index values must be distinct")
        if duration and total != duration:
            self.problems.append(f"the multi_prompt durations sum to {total}; they must equal "
                                 f"duration ({duration})")  # fmt: skip
        return texts

    def _shot(self, shot: Any, i: int, duration: int) -> tuple[str, int, Any]:
        where = f"multi_prompt[{i}]"
        if not isinstance(shot, dict):
            self.problems.append(f"{where} must be an object {{index, prompt, duration}}")
            return "", 0, i
        extra = sorted(set(shot) - {"index", "prompt", "duration"})
        if extra:
            self.problems.append(f"{where}: unknown field(s) {extra}")
        index, text, seconds = shot.get("index"), shot.get("prompt"), shot.get("duration")
        if not isinstance(index, int) or isinstance(index, bool):
            self.problems.append(f"{where}.index must be an integer, got {index!r}")
        if not isinstance(text, str) or not text or len(text) > SHOT_CHARS:
            self.problems.append(f"{where}.prompt must be 1 to {SHOT_CHARS} characters")
            text = ""
        if not (isinstance(seconds, str) and seconds.isdigit()
                and 1 <= int(seconds) <= max(duration, 1)):  # fmt: skip
            self.problems.append(f"{where}.duration must be a string of whole seconds from 1 "
                                 f"to the total duration, got {seconds!r}")  # fmt: skip
            return text, 0, index
        return text, int(seconds), index

    def _voices(self, texts: list[str], sound: str | None) -> bool:
        """True when the prompt speaks with a voice of voice_list (billed as voice)."""
        bound = self._bound_voices()
        if len(bound) > MAX_VOICES:
            self.problems.append(f"{len(bound)} elements speak in a voice of their own; a video "
                                 f"generation task can reference up to {MAX_VOICES} voices")
        if "voice_list" not in FIELDS[self.endpoint]:
            return False
        voices = self.body.get("voice_list")
        refs = [int(n) for kind, n in _references(texts) if kind == "voice"]
        if voices is None:
            if refs:
                self.problems.append("<<<voice_N>>> needs voice_list")
            return False
        if not (isinstance(voices, list) and 1 <= len(voices) <= MAX_VOICES and all(
                isinstance(v, dict) and set(v) == {"voice_id"} and isinstance(v["voice_id"], str)
                and v["voice_id"] for v in voices)):  # fmt: skip
            self.problems.append(f"voice_list takes 1 to {MAX_VOICES} {{voice_id}} objects")
            return False
        for voice in voices:
            if voice["voice_id"] not in self.kling.voices:
                self.problems.append(f"voice_id {voice['voice_id']!r} is no voice of this "
                                     "account")
        if self.body.get("element_list"):
            self.problems.append("voice_list cannot be used together with element_list")
        if any(not 1 <= n <= len(voices) for n in refs):
            self.problems.append(f"the prompt references a voice beyond voice_list "
                                 f"({len(voices)} voice(s))")  # fmt: skip
        if refs and sound != "on":
            self.problems.append('sound must be "on" when the prompt references a voice')
        return bool(refs)

    def _bound_voices(self) -> list[str]:
        """The voices bound to the elements of element_list (`element_voice_id`)."""
        elements = self.body.get("element_list")
        if not isinstance(elements, list):
            return []
        found = []
        for item in elements:
            value = item.get("element_id") if isinstance(item, dict) else None
            voice = self.kling.element_voice(value)
            if voice is not None:
                found.append(voice)
        return found

    def _frames(self, texts: list[str]) -> tuple[dict[str, ImageInput | None], bool]:
        """The first and last frame images, and whether a video is an input (omni)."""
        if self.endpoint == "image2video":
            return self._i2v_frames(), False
        if self.endpoint == "omni-video":
            return self._omni_inputs(texts)
        return {}, False

    def _i2v_frames(self) -> dict[str, ImageInput | None]:
        image, tail = self.body.get("image"), self.body.get("image_tail")
        if not image and not tail:
            self.problems.append("at least one of image and image_tail is required")
        if tail and self.body.get("multi_shot") is True:
            self.problems.append("multi-shot videos do not support an end frame (image_tail)")
        if tail and any(k in self.body for k in ("camera_control", "static_mask",
                                                 "dynamic_masks")):  # fmt: skip
            self.problems.append("image_tail, dynamic_masks/static_mask and camera_control "
                                 "cannot be used together")  # fmt: skip
        return {"first": self._image(image, "image") if image else None,
                "last": self._image(tail, "image_tail") if tail else None}

    def _omni_inputs(self, texts: list[str]) -> tuple[dict[str, ImageInput | None], bool]:
        images = self._list("image_list", {"image_url", "type"}, "image_url")
        videos = self._list("video_list", {"video_url", "refer_type", "keep_original_sound"},
                            "video_url")  # fmt: skip
        if len(videos) > 1:
            self.problems.append("video_list takes 1 video")
        for i, video in enumerate(videos):
            self._video(video, f"video_list[{i}]")
        elements = self.body.get("element_list") or []
        limit = OMNI_REFERENCES_WITH_VIDEO if videos else OMNI_REFERENCES
        if len(images) + (len(elements) if isinstance(elements, list) else 0) > limit:
            self.problems.append(f"image_list plus element_list take at most {limit} items"
                                 f"{' with a video' if videos else ''}")  # fmt: skip
        if videos and self.body.get("sound", "off") != "off":
            self.problems.append('sound must be "off" when video_list is given')
        frames = self._typed_frames(images)
        editing = any(v.get("refer_type", "base") == "base" for v in videos)
        # a first frame given (even one this simulator cannot fetch) sets the aspect
        has_first = any(image.get("type") == "first_frame" for image in images)
        if not has_first and not editing and "aspect_ratio" not in self.body:
            self.problems.append("aspect_ratio is required without a first_frame image or a "
                                 "video to edit")  # fmt: skip
        self._counted(texts, "image", len(images))
        self._counted(texts, "video", len(videos))
        return frames, bool(videos)

    def _list(self, key: str, allowed: set[str], required: str) -> list[dict]:
        value = self.body.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.problems.append(f"{key} must be a list")
            return []
        items = []
        for i, item in enumerate(value):
            if not isinstance(item, dict) or not set(item) <= allowed or required not in item:
                self.problems.append(f"{key}[{i}] must be an object with {required} (and "
                                     f"{sorted(allowed - {required})})")  # fmt: skip
                continue
            items.append(item)
        return items

    def _typed_frames(self, images: list[dict]) -> dict[str, ImageInput | None]:
        types = [image.get("type") for image in images]
        if any(t not in (None, "first_frame", "end_frame") for t in types):
            self.problems.append("image_list[].type is first_frame or end_frame (or absent)")
        if types.count("first_frame") > 1 or types.count("end_frame") > 1:
            self.problems.append("image_list takes one first_frame and one end_frame at most")
        if "end_frame" in types and "first_frame" not in types:
            self.problems.append("an end_frame image needs a first_frame image")
        if "end_frame" in types and len(images) > 2:
            self.problems.append("an end frame is not supported with more than 2 images")
        if self.body.get("multi_shot") is True and any(t in ("first_frame", "end_frame")
                                                       for t in types):  # fmt: skip
            self.problems.append("multi-shot videos do not support first or end frames")
        frames: dict[str, ImageInput | None] = {}
        for i, image in enumerate(images):
            checked = self._image(image["image_url"], f"image_list[{i}].image_url")
            if image.get("type") == "first_frame":
                frames["first"] = checked
            elif image.get("type") == "end_frame":
                frames["last"] = checked
        return frames

    def _image(self, value: Any, where: str) -> ImageInput | None:
        """A URL or raw Base64 image [GEN]: read when it is bytes or this simulator's file."""
        image = check_image(self.backend, value, where, self.problems)
        return image if image is not None and image.path is not None else None

    def _video(self, video: dict, where: str) -> None:
        if video.get("refer_type", "base") not in ("base", "feature"):
            self.problems.append(f"{where}.refer_type is base or feature")
        if video.get("keep_original_sound", "yes") not in ("yes", "no"):
            self.problems.append(f"{where}.keep_original_sound is yes or no")
        problem = video_problem(self.backend, video["video_url"])
        if problem:
            self.problems.append(f"{where}.video_url {problem}")

    def _elements(self, texts: list[str]) -> None:
        if "element_list" not in FIELDS[self.endpoint]:
            return
        elements = self.body.get("element_list")
        if elements is None:
            self._counted(texts, "element", 0)
            return
        limit = MAX_I2V_ELEMENTS if self.endpoint == "image2video" else OMNI_REFERENCES
        if not isinstance(elements, list) or not 1 <= len(elements) <= limit:
            self.problems.append(f"element_list takes 1 to {limit} {{element_id}} objects")
            return
        for i, element in enumerate(elements):
            if not isinstance(element, dict) or set(element) != {"element_id"}:
                self.problems.append(f"element_list[{i}] must be {{\"element_id\": <long>}}")
                continue
            problem = self.kling.element_problem(element["element_id"])
            if problem:
                self.problems.append(f"element_list[{i}]: {problem}")
        if self.endpoint == "omni-video":
            self._counted(texts, "element", len(elements))

    def _counted(self, texts: list[str], kind: str, count: int) -> None:
        beyond = sorted({int(n) for k, n in _references(texts) if k == kind and int(n) > count})
        if beyond:
            self.problems.append(f"the prompt references <<<{kind}_{beyond[0]}>>> but only "
                                 f"{count} {kind}(s) are given")  # fmt: skip

    def _options(self) -> None:
        cfg = self.body.get("cfg_scale", 0.5)
        if not isinstance(cfg, (int, float)) or isinstance(cfg, bool) or not 0 <= cfg <= 1:
            self.problems.append(f"cfg_scale must be a number in [0, 1], got {cfg!r}")
        camera = self.body.get("camera_control")
        if camera is not None and not (isinstance(camera, dict)
                                       and camera.get("type") in CAMERA_TYPES):  # fmt: skip
            self.problems.append(f"camera_control.type must be one of {list(CAMERA_TYPES)}")
        watermark = self.body.get("watermark_info")
        if watermark is not None and not (isinstance(watermark, dict) and set(watermark) ==
                                          {"enabled"} and isinstance(watermark["enabled"], bool)):
            self.problems.append("watermark_info must be {\"enabled\": true|false}")

    def _units(self, mode: str | None, seconds: int, sound: bool, voice: bool,
               video: bool) -> Decimal:  # fmt: skip
        mode = mode or "std"
        if self.endpoint == "omni-video":
            rate = OMNI_UNITS_PER_S[(mode, video, sound)]
        else:
            rate = UNITS_PER_S[(mode, sound, voice and sound)]
        return rate * seconds


def _references(texts: list[str]) -> list[tuple[str, str]]:
    return [found.groups() for text in texts for found in _REFERENCE.finditer(text)]


def check_image(backend: Backend, value: Any, where: str, problems: list[str]) -> ImageInput | None:
    """An image given as a URL or raw Base64 [GEN]; None (and a problem) when refused."""
    if not isinstance(value, str) or not value:
        problems.append(f"{where} must be an image URL or a Base64 string")
        return None
    if value.startswith("data:"):
        problems.append(f"{where}: send the Base64 string itself, without a prefix such as "
                        "data:image/png;base64,")  # fmt: skip
        return None
    try:
        image = backend.image_input(value, allow_inline=not value.startswith(("http://",
                                                                              "https://")))
    except InputError as exc:
        problems.append(f"{where} {exc}")
        return None
    if image.path is None:
        return image  # an outside URL: accepted unread
    width, height = image.size or (0, 0)
    if image.path.suffix not in IMAGE_SUFFIXES:  # the store names an input by its format
        problems.append(f"{where}: only .jpg / .jpeg / .png images, got {image.path.suffix}")
    if image.byte_count > IMAGE_BYTES:
        problems.append(f"{where}: the image file size cannot exceed 10MB")
    if min(width, height) < IMAGE_SIDE:
        problems.append(f"{where}: width and height must be at least {IMAGE_SIDE}px, got "
                        f"{width}x{height}")  # fmt: skip
    if not 1 / IMAGE_ASPECT <= width / height <= IMAGE_ASPECT:
        problems.append(f"{where}: the aspect ratio must be between 1:2.5 and 2.5:1")
    return image


def video_problem(backend: Backend, value: Any) -> str | None:
    """Why a video URL is refused: not a URL, or a served file that is not .mp4/.mov video."""
    if not _is_url(value):
        return "must be an http(s) URL"
    try:
        stored = backend.local_file(value)
    except InputError as exc:
        return str(exc)
    if stored is not None and not stored.content_type.startswith("video/"):
        return f"is not a video ({stored.content_type})"
    if stored is None and PurePosixPath(urlsplit(value).path).suffix.lower() not in VIDEO_SUFFIXES:
        return "must be an .mp4 or .mov video"
    return None


VOICE_FIELDS = frozenset({"voice_name", "voice_url", "video_id", "callback_url",
                          "external_task_id"})  # [VOICE]
VOICE_NAME_CHARS, VOICE_SECONDS = 20, (5.0, 30.0)  # [VOICE]
VOICE_SUFFIXES = (".mp3", ".wav", ".mp4", ".mov")  # [VOICE]


def _voice_problems(backend: Backend, body: Mapping[str, Any]) -> list[str]:
    """The problems of a custom-voice body [VOICE]."""
    problems: list[str] = []
    unknown = sorted(set(body) - VOICE_FIELDS)
    if unknown:
        problems.append(f"unknown field(s) {unknown}")
    name = body.get("voice_name")
    if not isinstance(name, str) or not name or len(name) > VOICE_NAME_CHARS:
        problems.append(f"voice_name is required: 1 to {VOICE_NAME_CHARS} characters")
    url, video = body.get("voice_url"), body.get("video_id")
    if (url is None) == (video is None):
        problems.append("give one of voice_url and video_id")
    elif url is not None:
        problems += _sample_problems(backend, url)
    return problems


def _sample_problems(backend: Backend, url: Any) -> list[str]:
    if not _is_url(url):
        return ["voice_url must be an http(s) URL"]
    path = urlsplit(url).path.lower()
    if re.search(r"\.[a-z0-9]{1,5}$", path) and not path.endswith(VOICE_SUFFIXES):
        return ["voice_url must be .mp3/.wav/.mp4/.mov"]
    try:
        stored = backend.local_file(url)
    except InputError as exc:
        return [f"voice_url {exc}"]
    if stored is None:
        return []  # an outside URL: not fetched offline
    from ..media.ffmpeg import audio_seconds

    seconds = audio_seconds(stored.path)
    low, high = VOICE_SECONDS
    if seconds is None:
        return ["voice_url has no readable audio"]
    if not low <= seconds <= high:
        return [f"voice_url must last 5-30 s (got {seconds:.1f} s)"]
    return []


def _element_problems(backend: Backend, body: Mapping[str, Any]) -> list[str]:
    """The problems of an element-creation body [ELEM]."""
    problems: list[str] = []
    unknown = sorted(set(body) - ELEMENT_FIELDS)
    if unknown:
        problems.append(f"unknown field(s) {unknown}")
    for key, limit in (("element_name", ELEMENT_NAME_CHARS),
                       ("element_description", ELEMENT_DESCRIPTION_CHARS)):  # fmt: skip
        value = body.get(key)
        if not isinstance(value, str) or not value or len(value) > limit:
            problems.append(f"{key} is required: 1 to {limit} characters")
    kind = body.get("reference_type")
    checks: dict[Any, Callable[[Backend, Any, list[str]], None]] = {
        "image_refer": _element_images, "video_refer": _element_video}  # fmt: skip
    check = checks.get(kind) if isinstance(kind, str) else None
    if check is None:
        problems.append(f"reference_type must be image_refer or video_refer, got {kind!r}")
    else:
        check(backend, body, problems)
    if "element_voice_id" in body and (kind != "video_refer"
                                       or not isinstance(body["element_voice_id"], str)):
        problems.append("element_voice_id (a string) binds a voice to a video element only")
    tags = body.get("tag_list", [])
    if not (isinstance(tags, list) and all(isinstance(t, dict) and set(t) == {"tag_id"}
                                           and t["tag_id"] in TAG_IDS for t in tags)):
        problems.append(f"tag_list items are {{tag_id}} with tag_id in {list(TAG_IDS)}")
    callback = body.get("callback_url", "")
    if callback != "" and not _is_url(callback):
        problems.append("callback_url must be an http(s) URL")
    if not isinstance(body.get("external_task_id", ""), str):
        problems.append("external_task_id must be a string")
    return problems


def _element_images(backend: Backend, body: Mapping[str, Any], problems: list[str]) -> None:
    images = body.get("element_image_list")
    if "element_video_list" in body:
        problems.append("element_video_list is for reference_type video_refer")
    if not isinstance(images, dict) or set(images) - {"frontal_image", "refer_images"}:
        problems.append("element_image_list {frontal_image, refer_images} is required for "
                        "image_refer")  # fmt: skip
        return
    check_image(backend, images.get("frontal_image"), "element_image_list.frontal_image",
                problems)  # fmt: skip
    refers, (low, high) = images.get("refer_images"), ELEMENT_REFER_IMAGES
    if not isinstance(refers, list) or not low <= len(refers) <= high:
        problems.append(f"element_image_list.refer_images takes {low} to {high} images")
        return
    for i, refer in enumerate(refers):
        if not isinstance(refer, dict) or set(refer) != {"image_url"}:
            problems.append(f"element_image_list.refer_images[{i}] must be {{image_url}}")
            continue
        check_image(backend, refer["image_url"], f"element_image_list.refer_images[{i}]",
                    problems)  # fmt: skip


def _element_video(backend: Backend, body: Mapping[str, Any], problems: list[str]) -> None:
    videos = body.get("element_video_list")
    if "element_image_list" in body:
        problems.append("element_image_list is for reference_type image_refer")
    refers = videos.get("refer_videos") if isinstance(videos, dict) else None
    if not (isinstance(refers, list) and len(refers) == 1 and isinstance(refers[0], dict)
            and set(refers[0]) == {"video_url"}):  # fmt: skip
        problems.append("element_video_list {refer_videos: [{video_url}]} (one video) is "
                        "required for video_refer")  # fmt: skip
        return
    problem = video_problem(backend, refers[0]["video_url"])
    if problem:
        problems.append(f"element_video_list.refer_videos[0].video_url {problem}")
