"""The official Kling API (`provider: kling`): capability data and one class.

Sources (docs/providers.md, "kling", lists each with what it gave): the Kling AI API
documentation (app.klingai.com/global/dev/document-api, kling.ai/document-api) and its "Kling
AI Series 3.0 Model API Specification" (docs.qingque.cn/d/home/eZQDkLsWj1-DlmBV0EQIOm9vu),
both read from public copies of their text (the pages themselves need a browser session);
client code that implements the API (vercel/ai `packages/klingai`, QuantumNous/new-api's
element client) where the documentation is silent, marked so beside each value.

Two models, each on the endpoints the documentation gives it:

- `kling-3-std` / `kling-3-pro` -> `kling-v3`: `POST /v1/videos/text2video`, or
  `/v1/videos/image2video` when the body has `image` / `image_tail` (first and last frame;
  elements exist only there);
- `kling-o3-std` / `kling-o3-pro` -> `kling-v3-omni`: `POST /v1/videos/omni-video`, what only
  the omni endpoint offers: reference images, a video to edit or to follow, elements without
  a frame.

Elements are not sent with the generation: each is created once in Kling's element library
(`POST /v1/general/advanced-custom-elements`, its own task, polled like a generation; plan.py
makes it a task of kind `element`) and the generation names it by id (`element_list`).
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Callable, Mapping
from urllib.parse import urlsplit

from .. import rules
from ..errors import Diagnostic
from ..model import Element, FrameSource, Prompt, ResolvedShot
from .base import (
    PLACEHOLDER_PREFIX,
    Account,
    Capabilities,
    Credential,
    Declared,
    Handle,
    Job,
    ModelSpec,
    ProviderSpec,
    Ref,
    Status,
    UrlOf,
)

if TYPE_CHECKING:
    import httpx

NAME = "kling"
V3_MODEL = "kling-v3"  # 3.0 spec: text2video / image2video `model_name` enum
OMNI_MODEL = "kling-v3-omni"  # 3.0 spec: omni-video `model_name` enum
_SOURCE = "the Kling AI API documentation (Kling AI Series 3.0 Model API Specification)"

# storyboard alias -> (model_name, mode); 3.0 spec: `mode` std (720p) | pro (1080p)
MODES: Mapping[str, tuple[str, str]] = {
    "kling-3-std": (V3_MODEL, "std"),
    "kling-3-pro": (V3_MODEL, "pro"),
    "kling-o3-std": (OMNI_MODEL, "std"),
    "kling-o3-pro": (OMNI_MODEL, "pro"),
}

# The 3.0 spec bills prepaid resource-pack units per second of output ("Prepaid Resource
# Packs"); its table gives each in units and at the original price, which is units x $0.14
# (the billing page: "The standard price for each video generation credit is $0.14 USD").
UNIT_USD = Decimal("0.14")
UNITS_PER_S: Mapping[tuple[str, str], Mapping[str, str]] = {
    # 【Kling V3.0】 without native audio / with audio, without / with voice control
    (V3_MODEL, "std"): {"silent": "0.6", "audio": "0.9", "voice": "1.1"},
    (V3_MODEL, "pro"): {"silent": "0.8", "audio": "1.2", "voice": "1.4"},
    # 【Kling Video-3O】 without video input, without / with audio; with video input, silent
    # (the spec allows sound only `off` with a reference video)
    (OMNI_MODEL, "std"): {"silent": "0.6", "audio": "0.8", "video_input": "0.9"},
    (OMNI_MODEL, "pro"): {"silent": "0.8", "audio": "1.0", "video_input": "1.2"},
}

# the output size of each mode (3.0 spec: std "generating 720P", pro "generating 1080P")
RESOLUTIONS: Mapping[str, Mapping[str, tuple[int, int]]] = {
    "std": {"16:9": (1280, 720), "9:16": (720, 1280), "1:1": (720, 720)},
    "pro": {"16:9": (1920, 1080), "9:16": (1080, 1920), "1:1": (1080, 1080)},
}

_V3_FIELDS = frozenset({"multi_prompt", "negative_prompt", "duration", "size", "aspect", "audio",
                        "first_frame", "last_frame", "elements"})
# omni-video has no negative_prompt ("Text prompt words, which can include positive and
# negative descriptions") and takes reference images and videos
_OMNI_FIELDS = frozenset({"multi_prompt", "duration", "size", "aspect", "audio", "first_frame",
                          "last_frame", "reference_images", "video", "reference_videos",
                          "elements"})
_OMNI_EXCLUDES = (
    ("video", "first_frame", "Kling API, omni-video video_list: when the reference video is a "
     "video to be edited, the start and end frames cannot be defined"),
    ("video", "last_frame", "Kling API, omni-video video_list: when the reference video is a "
     "video to be edited, the start and end frames cannot be defined"),
    ("video", "reference_videos", "Kling API, omni-video video_list: only 1 video can be "
     "uploaded (a video to edit or a reference video, not both)"),
)


def _spec(alias: str) -> ModelSpec:
    model, mode = MODES[alias]
    omni = model == OMNI_MODEL
    return ModelSpec(
        alias=alias,
        model_id=model,
        source=_SOURCE,
        durations_s=(3, 15),  # `duration` enum "3".."15" (both endpoints)
        prompt_chars=(2, 2500),  # `prompt` "Cannot exceed 2500 characters"; 2: product brief
        sizes=None,  # the API takes an aspect ratio; the mode sets the resolution
        aspects=("16:9", "9:16", "1:1"),  # `aspect_ratio` enum
        frame_images=(1, 2),  # image + image_tail / image_list first_frame + end_frame
        max_elements=3,  # image2video element_list: "Supports up to 3 reference elements";
        # omni: "a maximum of 3 subjects" with a first (and last) frame (the stricter)
        max_element_images=3,  # element refer_images: "1 to 3 additional reference images"
        takes=(1, 1),  # one video per task (no `n` for videos)
        quality=None,
        cfg_scale=None,  # `cfg_scale`: "Only Kling-v1.x model supports the this parameters"
        multi_prompt_segments=6,  # multi_prompt: "Supports up to 6 storyboards"
        segment_s=(1, 15),  # each storyboard at least 1 s, at most the total duration
        supports=_OMNI_FIELDS if omni else _V3_FIELDS,
        excludes=_OMNI_EXCLUDES if omni else (),
        prices={k: Decimal(v) * UNIT_USD for k, v in UNITS_PER_S[(model, mode)].items()},
    )


MODELS: Mapping[str, ModelSpec] = {alias: _spec(alias) for alias in MODES}

DEFAULT_DURATION_S = 5  # `duration` default "5"; sent explicitly (the price depends on it)
SEGMENT_CHARS = 512  # multi_prompt: "The maximum length of the prompt for each storyboard 512"
IMAGE_BYTES = 10 * 1024 * 1024  # "The image file size cannot exceed 10MB"
IMAGE_MIN_PX = 300  # "the width and height dimensions of the image shall not be less than 300px"
IMAGE_RATIO = 2.5  # "the aspect ratio of the image should be between 1:2.5 ~ 2.5:1"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})  # "Supported image formats include..."
IMAGE_MIMES = frozenset({"image/jpeg", "image/jpg", "image/png"})
_OTHER_IMAGE_SUFFIXES = frozenset(
    {".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif", ".avif", ".svg"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov"})  # video_list, element videos: ".mp4/.mov"
_OTHER_VIDEO_SUFFIXES = frozenset({".webm", ".mkv", ".avi", ".m4v", ".flv", ".wmv", ".gif"})
VIDEO_INPUT_S = (3, 10)  # omni video_list: "a duration of >= 3 seconds and <= 10 seconds"
OMNI_REFERENCES = (7, 4)  # images + elements: at most 7, at most 4 with a reference video
ELEMENT_NAME_CHARS = 20  # element_name: "Must not exceed 20 characters" (cut, see docs)
ELEMENT_DESCRIPTION_CHARS = 100  # element_description: "Must not exceed 100 characters"
ELEMENT_IMAGES = (1, 3)  # refer_images: "It is required to include 1 to 3 additional ..."
VOICES = 2  # voice_list: "can reference up to 2 voices at most"
# tag_list: "The relationship between tag ID and name"
ELEMENT_TAGS: Mapping[str, str] = {
    "hottest": "o_101", "character": "o_102", "animal": "o_103", "item": "o_104",
    "costume": "o_105", "scene": "o_106", "effect": "o_107", "others": "o_108",
}

# Images travel as a URL or as raw base64 ("do not add any prefixes ... such as
# data:image/png;base64"): local files and chained frames inline, a data URI loses its
# prefix. Videos only as URLs (no upload API); voices are Kling voice ids, not modelled.
ACCEPTED_KINDS: Mapping[str, frozenset[str]] = {
    "image": frozenset({"url", "data", "path", "chain"}),
    "video": frozenset({"url"}),
    "audio": frozenset({"url", "uuid", "data", "path", "chain"}),  # refused in _check_elements
}

PATHS: Mapping[str, str] = {
    "text2video": "/v1/videos/text2video",
    "image2video": "/v1/videos/image2video",
    "omni-video": "/v1/videos/omni-video",
    "element": "/v1/general/advanced-custom-elements",
}

def element_placeholder(name: str) -> str:
    """What a generation's `element_list` holds for an element created by the run."""
    return f"{PLACEHOLDER_PREFIX}element:{name}"


def endpoint(request: Mapping[str, Any]) -> str:
    """Which endpoint takes `request` (a key of PATHS): an element's body names one; omni by
    its model; image-to-video when a first or last frame is sent."""
    if "element_name" in request or "reference_type" in request:
        return "element"
    if request.get("model_name") == OMNI_MODEL:
        return "omni-video"
    return "image2video" if "image" in request or "image_tail" in request else "text2video"


# -- run time ---------------------------------------------------------------------------------

TOKEN_LIFETIME_S = 1800  # API authentication example: "exp": now + 1800 (30 min)
NOT_BEFORE_S = 5  # API authentication example: "nbf": now - 5

# Every answer is `{code, message, request_id, data}` and the body's code decides, not the
# HTTP status (1100-1102 arrive as HTTP 429 but are not temporary). API docs, "Error Code".
_RETRY_CODES = frozenset({1302, 1303, 5000, 5001, 5002})  # rate, concurrency, server
# every other code is final: authentication 1000-1004, account 1100-1103, parameters
# 1200-1203, platform and content policy 1300/1301 (with the shot's file:line), IP list 1304
_POLICY_CODES = frozenset({1300, 1301})
_PARAMETER_CODES = frozenset({1200, 1201, 1202, 1203})
_UNKNOWN_TASK_CODE = 1203  # "The requested resource does not exist"
_HINTS = {
    1000: "check KLING_ACCESS_KEY and KLING_SECRET_KEY",
    1001: "check KLING_ACCESS_KEY and KLING_SECRET_KEY",
    1002: "check KLING_ACCESS_KEY and KLING_SECRET_KEY",
    1003: "the token is signed with this computer's clock: set it right (kling-compose doctor "
          "compares it with Kling's)",
    1004: "the token is signed with this computer's clock: set it right (kling-compose doctor "
          "compares it with Kling's)",
    1100: "the account has a problem: check it at klingai.com (not temporary, not retried)",
    1101: "the account is in arrears: recharge it (not temporary, not retried)",
    1102: "the resource pack is used up or expired: buy another (not temporary, not retried)",
    1103: "the account may not use this API or model",
    1304: "Kling's IP allow-list refuses this machine: contact Kling",
}
_WHERE = "kling_compose.where"  # httpx request extension: the shot's file:line, never sent


def sign_token(key, now: float) -> str:
    """The API token: a JWT (HS256) with `iss` the access key, valid from a few seconds
    before `now` for 30 minutes, signed with the secret key (API docs, "API Authentication")."""
    import warnings

    import jwt

    issued = int(now)
    claims = {"iss": key.access.reveal(), "exp": issued + TOKEN_LIFETIME_S,
              "nbf": issued - NOT_BEFORE_S}
    with warnings.catch_warnings():  # the secret's length is Kling's choice, not the user's:
        warnings.simplefilter("ignore")  # PyJWT's short-key warning reached stderr raw
        return jwt.encode(claims, key.secret.reveal(), algorithm="HS256",
                          headers={"alg": "HS256", "typ": "JWT"})


def _code(body: Any) -> int | None:
    value = body.get("code") if isinstance(body, dict) else None
    if isinstance(value, bool):
        return None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _message(body: Any) -> str:
    return str(body.get("message") or "") if isinstance(body, dict) else ""


def _where(response) -> str | None:
    try:
        return response.request.extensions.get(_WHERE)
    except RuntimeError:  # a response built without its request
        return None


def _body(response):
    """The answer's JSON object, or None (a gateway's page, an empty answer)."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _judge(response, body: dict | None, what: str) -> None:
    """Raise for anything but code 0: TransientError for rate, concurrency and server
    faults; ProviderError (final) for the rest, with Kling's message and a hint."""
    from .base import TRANSIENT_STATUS, ProviderError, TransientError, retry_after_s

    status, code = response.status_code, _code(body)
    if code is None:
        if status in TRANSIENT_STATUS:
            raise TransientError(f"kling answered HTTP {status}", retry_after_s(response))
        raise ProviderError(f"kling answered the {what} with HTTP {status} and no code")
    if code == 0:
        return
    message = _message(body)
    if code in _RETRY_CODES:
        raise TransientError(f"kling answered code {code}: {message}", retry_after_s(response))
    if code in _POLICY_CODES:
        where = _where(response)
        raise ProviderError(
            (f"{where}: " if where else "") + f"kling refused the {what} under its content "
            f"policy (code {code}): {message}; change the prompt or the images"
            + (" there" if where else "") + " (not retried)")
    hint = _HINTS.get(code)
    raise ProviderError(f"kling refused the {what}: code {code}: {message}"
                        + (f" ({hint})" if hint else ""))


def _data(body: dict, what: str) -> dict:
    from .base import ProviderError

    data = body.get("data")
    if not isinstance(data, dict):
        raise ProviderError(f"kling answered the {what} without data")
    return data


def _numeric_ids(request: Mapping[str, Any]) -> dict[str, Any]:
    """The body as sent: an element id the run created (a string once substituted) is a
    number ("element_id": long)."""
    body = dict(request)
    if isinstance(body.get("element_list"), list):
        body["element_list"] = [
            {**item, "element_id": int(item["element_id"])}
            if isinstance(item, dict) and isinstance(item.get("element_id"), str)
            and item["element_id"].isdigit() else item
            for item in body["element_list"]
        ]
    return body


def _is_duplicate(message: str) -> bool:
    """Kling's refusal of an external_task_id it has seen (the id of an earlier submission
    that was accepted after all) [inferred: the documentation names no code for it]."""
    words = message.lower()
    return "external_task_id" in words or "duplicate" in words or "already exist" in words


SPEC = ProviderSpec(
    name=NAME,
    key_variables=("KLING_ACCESS_KEY", "KLING_SECRET_KEY"),  # the JWT's `iss` and signing key
    endpoints=(("kling", "https://api-singapore.klingai.com"),),  # Kling API docs: "API Domain"
    capabilities=Capabilities(
        inline_media=frozenset({"image"}),  # images may be sent inline as raw base64
        # Kling assigns task_id. Ours, committed to the ledger before the submission, is sent
        # as external_task_id; after a lost answer the next run asks for it (`lookup_requests`,
        # each documented form of the query) and, when none finds it, asks the user: never
        # re-sent.
        lost_answer="lookup",
        creates_elements=True,  # the element library (`element_request`)
        batch_poll=False,  # a query takes one task
        upload_ttl_s=None,  # nothing is uploaded: local images travel inline (raw base64)
        signs_tokens=True,  # doctor compares this computer's clock with Kling's
    ),
    # doctor: the task list of text-to-video (queries cost nothing: "query interfaces do not
    # consume concurrency"); it tests both keys, the token and the host
    key_check_endpoint="kling",
    models=MODELS,
)


class KlingTasks(Declared):
    """Create a task (the server assigns task_id; ours travels as external_task_id), then
    query it until succeed or failed. Tokens are signed per request: none outlives 30 min."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

    def auth(self, key: Credential) -> dict[str, str]:
        return {"Authorization": f"Bearer {sign_token(key, self.clock())}"}

    def _request(self, method: str, url: str, key, *, json=None, params=None,
                 where: str | None = None):
        import httpx

        return httpx.Request(method, url, json=json, params=params, headers=self.auth(key),
                             extensions={_WHERE: where} if where else None)

    def inline(self, data: bytes, mime: str) -> str:
        """A local image as the API takes it: raw base64, no `data:` prefix."""
        import base64

        return base64.b64encode(data).decode()

    def submit_request(self, job: Job | None, request: Mapping[str, Any], task_id: str,
                       base_url: str, key: Credential) -> httpx.Request:
        body = {**_numeric_ids(request), "external_task_id": task_id}
        return self._request("POST", f"{base_url}{PATHS[endpoint(request)]}", key, json=body,
                             where=_shot_where(job))

    def read_submit(self, response: httpx.Response, task_id: str) -> Handle:
        """The handle (Kling's task_id, the endpoint, our id); LostAnswer when the answer
        leaves open whether the task was made."""
        from .base import Handle, LostAnswer

        body = _body(response)
        if body is None and response.status_code in (500, 502, 504):
            raise LostAnswer(f"kling answered HTTP {response.status_code} to the submission")
        if _code(body) in _PARAMETER_CODES and _is_duplicate(_message(body)):
            raise LostAnswer(f"kling refused external_task_id {task_id} as already used: an "
                             "earlier submission of it was accepted")
        _judge(response, body, _what(response))
        data = body.get("data")
        found = data.get("task_id") if isinstance(data, dict) else None
        if not isinstance(found, (str, int)) or isinstance(found, bool) or found == "":
            # code 0: the task was made (and may be billed); refused, the next run would send
            # it again. Lost instead: the next run finds it by our external_task_id.
            raise LostAnswer(f"kling accepted the {_what(response)} but its answer has no "
                             "data.task_id")
        return Handle(str(found), {"endpoint": _endpoint_of(response), "external_task_id":
                                   task_id, **_where_extra(response)})

    def lookup_requests(self, job: Job | None, request: Mapping[str, Any], task_id: str,
                        base_url: str, key: Credential) -> list[httpx.Request]:
        """After a lost answer: the queries by our own id, in the order to try. Kling's query
        pages say "you can choose to query by external_task_id or task_id" and list both as
        request path parameters (`GET {endpoint}/{id}`); copies of the pages and clients also
        send it as a query parameter on the endpoint (`GET {endpoint}?external_task_id={id}`).
        Both are queries: they cost nothing and never create a task."""
        path = f"{base_url}{PATHS[endpoint(request)]}"
        where = _shot_where(job)
        return [self._request("GET", path, key, params={"external_task_id": task_id},
                              where=where),
                self._request("GET", f"{path}/{task_id}", key, where=where)]

    def read_lookup(self, response: httpx.Response, task_id: str) -> Handle | None:
        """The handle of the task sent under `task_id`; None when this query did not find it
        (code 1203, an HTTP 404 without a code, `data` null or a list without it, or a task
        under another external_task_id). `data` is one task (the path form; the query form
        in the relay copies) or a list of tasks (the query form on the list endpoint): the
        task must carry our id in `task_info.external_task_id` when it says one. ProviderError
        for an answer that cannot be used (several tasks with our id, a task without id)."""
        from .base import Handle, ProviderError

        body = _body(response)
        code = _code(body)
        if code == _UNKNOWN_TASK_CODE or (body is None and response.status_code == 404):
            return None
        if code in _PARAMETER_CODES:
            return None  # this form is not taken here (the other one may be)
        _judge(response, body, "query")
        data = body.get("data")
        if data is None:
            return None
        if isinstance(data, dict):
            found = [data] if _external_id(data) in (None, task_id) else []
        elif isinstance(data, list):
            found = [t for t in data if isinstance(t, dict) and _external_id(t) == task_id]
        else:
            raise ProviderError("kling answered the query by external_task_id with data that "
                                "is neither a task nor a list of tasks")
        if not found:
            return None
        if len(found) > 1:
            raise ProviderError(f"kling lists {len(found)} tasks under external_task_id "
                                f"{task_id}, which it documents as unique: check them in your "
                                "Kling account")
        kling_id = found[0].get("task_id")
        if isinstance(kling_id, bool) or not isinstance(kling_id, (str, int)) or kling_id == "":
            raise ProviderError(f"kling found external_task_id {task_id} but its answer has no "
                                "task_id")
        return Handle(str(kling_id), {"endpoint": _endpoint_of(response), "external_task_id":
                                      task_id, **_where_extra(response)})

    def adopt_handle(self, job: Job | None, request: Mapping[str, Any], task_id: str,
                     url: UrlOf) -> Handle:
        """What polls a task id from the user's dashboard (`kling-compose adopt`): the
        endpoint the shot's request goes to."""
        from .base import Handle

        where = _shot_where(job)
        return Handle(task_id, {"endpoint": endpoint(request), **({"where": where} if where
                                                                  else {})})

    def poll_request(self, handle: Handle, base_url: str, key: Credential) -> httpx.Request:
        kind = handle.extra.get("endpoint", "text2video")
        return self._request("GET", f"{base_url}{PATHS[kind]}/{handle.task_id}", key,
                             where=handle.extra.get("where"))

    def read_status(self, response: httpx.Response, handle: Handle, takes: int) -> Status:
        """submitted / processing wait; succeed gives task_result.videos[].url (an element:
        task_result.elements[0].element_id) and what it cost: final_unit_deduction x $0.14;
        failed gives task_status_msg. A malformed answer about the task is `invalid`, naming
        the field (it may be paid for: never recorded as failed, never sent again by itself)."""
        from .base import Status

        body = _body(response)
        if _code(body) == _UNKNOWN_TASK_CODE or (body is None and response.status_code == 404):
            return Status("unknown", message=handle.task_id)
        _judge(response, body, "query")
        data = body.get("data")
        if not isinstance(data, dict):
            return Status("invalid", message="kling answered the query without a data object")
        state = data.get("task_status")
        if not isinstance(state, str):
            return Status("invalid", message=f"kling answered data.task_status {state!r:.40}")
        if state == "succeed":
            cost, note = _units_usd(data.get("final_unit_deduction"))
            if handle.extra.get("endpoint") == "element":
                return _element_done(data, cost, note)
            return _videos_done(data, cost, note, takes)
        if state == "failed":
            where = handle.extra.get("where")
            reason = data.get("task_status_msg") or "generation failed"
            return Status("failed", message=f"{reason}" + (f" ({where})" if where else ""))
        return Status("processing", detail="queued" if state == "submitted" else "processing")

    # doctor: the task list of text-to-video (SPEC.key_check_endpoint)
    def key_check_request(self, base_url: str, key: Credential) -> httpx.Request:
        return self._request("GET", f"{base_url}{PATHS['text2video']}", key,
                             params={"pageNum": "1", "pageSize": "1"})

    def read_key_check(self, response: httpx.Response) -> Account:
        from .base import Account

        _judge(response, _body(response), "task list query")
        return Account()


def _what(response) -> str:
    return "element" if _endpoint_of(response) == "element" else "generation"


def _endpoint_of(response) -> str:
    path = response.request.url.path.rstrip("/")
    for kind, suffix in PATHS.items():
        if path.endswith(suffix) or path.rsplit("/", 1)[0].endswith(suffix):
            return kind
    return "text2video"


def _where_extra(response) -> dict[str, str]:
    where = _where(response)
    return {"where": where} if where else {}


def _shot_where(job) -> str | None:
    shot = getattr(job, "shot", None)
    location = getattr(shot, "location", None)
    return str(location) if location is not None else None


def _external_id(task: dict):
    """The `task_info.external_task_id` a task answer carries (None when it says none)."""
    info = task.get("task_info")
    value = info.get("external_task_id") if isinstance(info, dict) else None
    return value if isinstance(value, str) and value else None


def _units_usd(units) -> tuple[Decimal | None, str | None]:
    """What a task cost at the unit's list price, from its `final_unit_deduction` (a string
    of units), read by `read_cost`: (USD, None), (None, why it cannot be used) or (None,
    None) when the answer has none."""
    from .base import read_cost

    amount, note = read_cost(units, NAME)
    return (amount * UNIT_USD if amount is not None else None), note


def _videos_done(data: dict, cost: Decimal | None, note: str | None, takes: int):
    """The finished clips of `task_result.videos[].url`, or `invalid` naming the bad field."""
    from .base import Result, Status, answer_url

    result = data.get("task_result")
    videos = result.get("videos") if isinstance(result, dict) else None
    if not isinstance(videos, list) or not videos:
        return Status("invalid", message="kling reported succeed without task_result.videos")
    results = []
    for n, video in enumerate(videos[: max(1, takes)]):
        url = answer_url(video.get("url")) if isinstance(video, dict) else None
        if url is None:
            shown = video.get("url") if isinstance(video, dict) else video
            return Status("invalid", message=f"kling reported succeed, but "
                          f"task_result.videos[{n}].url is not an http(s) URL ({shown!r:.60})")
        results.append(Result(url, cost_usd=cost if n == 0 else None,
                              cost_note=note if n == 0 else None))
    return Status("done", tuple(results))


def _element_done(data: dict, cost: Decimal | None, note: str | None = None):
    """An element's "result" is its id (handed on to the generations that name it)."""
    from .base import Result, Status

    result = data.get("task_result")
    elements = result.get("elements") if isinstance(result, dict) else None
    first = elements[0] if isinstance(elements, list) and elements else None
    found = first.get("element_id") if isinstance(first, dict) else None
    if isinstance(found, bool) or not isinstance(found, (int, str)) or str(found) == "" \
            or not str(found).isdigit():
        return Status("invalid", message="kling reported the element made, but "
                      f"task_result.elements[0].element_id is {found!r:.40}")
    return Status("done", (Result(str(found), cost_usd=cost, cost_note=note),))


# -- compile time -----------------------------------------------------------------------------


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
        return diags

    def prompt_text(self, shot: ResolvedShot, prompt: Prompt) -> str:
        """The prompt as sent: `@name` becomes `<<<element_N>>>`, N its place in
        element_list (3.0 spec: "Specify a element ... such as <<<element_1>>>")."""
        numbers = {e.name: n for n, e in enumerate(shot.elements, 1)}
        return prompt.render(lambda name: f"<<<element_{numbers[name]}>>>")

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
            return {"prompt": self.prompt_text(shot, shot.prompt)} if shot.prompt else {}
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
        tags = [ELEMENT_TAGS[t.lower()] for t in element.tags if t.lower() in ELEMENT_TAGS]
        if tags:
            body["tag_list"] = [{"tag_id": t} for t in dict.fromkeys(tags)]
        return body

    def cost(
        self, shot: ResolvedShot, spec: ModelSpec, payload: Mapping[str, Any]
    ) -> Decimal | None:
        rate = spec.prices.get(price_key(payload))
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
        return "units x $0.14, the unit's list price (a discounted resource pack costs less)"


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
                "remove voices (a Kling voice id can be sent through provider_options: "
                "voice_list, not together with elements)",
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
    from PIL import Image, UnidentifiedImageError  # lazy: validate must start fast

    try:
        with Image.open(source.path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError):
        return None  # rules.check_frame_aspect names an unreadable first frame
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
