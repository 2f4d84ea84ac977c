"""fal's queue protocol for the Kling family (3.0 Standard/Pro/4K, O3 Standard/Pro/4K, 3.0
Turbo Standard/Pro, 4.0) and its CDN uploads.

Written from seed 001 and the project's provider reference, section 2. Paths are relative to
`{base}/fal`, which stands for https://queue.fal.run:

- `POST /{endpoint_id}` submits the flat input; `{request_id, response_url, status_url,
  cancel_url}` come back, built from `{owner}/{app}` only (fal's documented gotcha);
- `GET /{owner}/{app}/requests/{id}/status` answers 202 IN_QUEUE / IN_PROGRESS, then 200
  COMPLETED (with `error` and `error_type` when the generation failed);
- `GET /{owner}/{app}/requests/{id}` answers `{"video": {url, content_type, file_name,
  file_size}}`; `PUT .../requests/{id}/cancel` cancels.

Uploads follow fal-client's CDN flow (fal-client 1.0.3, `CDNTokenManager`, `REST_URL`), each
host under its own prefix as in reality, so a request sent to the wrong host is refused:
`POST {base}/fal-rest/storage/auth/token?storage_type=fal-cdn-v3` (Key auth; the REST host,
https://rest.fal.ai) answers `{token, token_type, base_url: {base}/fal-cdn, expires_at}`, then
`POST {base}/fal-cdn/files/upload` (Authorization: <token_type> <token>, raw bytes,
X-Fal-File-Name) answers `{access_url}`. The fallback `POST {base}/fal-rest/storage/upload/
initiate` answers `{upload_url, file_url}` for a `PUT` of the bytes.

Voices: `POST /fal-ai/kling-video/create-voice` takes `{voice_url}` (fal's create-voice page:
".mp3/.wav audio or .mp4/.mov video. Duration must be 5-30 seconds"; a sample uploaded here is
measured) at $0.007, and its result is `{voice_id}` (fal-js `CreateVoiceOutput`). A generation
binds a voice to an element (`elements[].voice_id`, fal-js `KlingV3ComboElementInput`) or
lists it in `voice_ids` (fal's earlier v3 page), "maximum 2 voices per task" in all; an id
this simulator did not make is refused, and voice control bills its own per-second price.

Each tier's endpoints take their own fields (`ROUTES`, from fal's model pages and fal-js's
generated types, @fal-ai/client 1.10.1, commit 381105e): O3's image-to-video names its start
image `image_url` and takes no elements, its reference-to-video takes `image_urls` and elements
without a frame; Turbo has no end frame, elements, negative prompt, cfg_scale, shot_type or
audio switch (its clips have sound); 4.0 takes integer durations of 3-30 s, a `resolution`
and up to 8 `middle_image_urls`. Each bills its page's price (`TIERS`).

Validation errors are 422 `{"detail": [{"loc": ["body", field, ...], "msg", "type"}]}` as
FastAPI writes them; unknown fields are refused (`extra_forbidden`).
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit
from decimal import Decimal
from typing import Any

from .faults import GenerationFailure, TransportFault
from .store import Backend, ClipPlan, ImageInput, InputError
from .wire import Request, Response, Route, json_response

NAME = "fal"

_COMMON_FIELDS = frozenset(
    {
        "prompt",
        "multi_prompt",
        "duration",
        "generate_audio",
        "shot_type",
        "negative_prompt",
        "cfg_scale",
        "voice_ids",
    }
)
# provider reference, section 2: text-to-video adds aspect_ratio; image-to-video adds the
# start and end images and elements (and has no aspect_ratio: the start image sets it).
FIELDS = {
    "text-to-video": _COMMON_FIELDS | {"aspect_ratio"},
    "image-to-video": _COMMON_FIELDS | {"start_image_url", "end_image_url", "elements"},
}
# O3 (fal-js O3ProTextToVideoInput, O3ProImageToVideoInput, O3ProReferenceVideoI2VInput, the
# types Standard and 4K alias): no negative_prompt, cfg_scale or voice_ids anywhere
_O3_COMMON = frozenset({"prompt", "multi_prompt", "duration", "generate_audio", "shot_type"})
# Turbo (fal-js KlingVideoV3TurboPro{TextToVideo,ImageToVideo}Input, Standard aliases them)
_TURBO_COMMON = frozenset({"prompt", "multi_prompt", "duration"})
# 4.0 (fal.ai/models/fal-ai/kling-video/v4/{text-to-video,image-to-video}/llms.txt): integer
# duration 3-30, resolution 720p|1080p; image-to-video's duration and resolution are inferred
# from text-to-video's (the stored page stops after multi_prompt); no audio switch
_V4_COMMON = frozenset({"prompt", "multi_prompt", "duration", "resolution"})


class RouteSpec:
    """What one endpoint kind of one family takes."""

    def __init__(self, fields: frozenset[str], start: str | None = None,
                 start_required: bool = False, audio_default: bool | None = True) -> None:
        self.fields = fields
        self.start = start  # the field of the start image
        self.start_required = start_required
        # generate_audio's default; None: no switch, the clip always has sound
        self.audio_default = audio_default


ROUTES: dict[tuple[str, str], RouteSpec] = {
    ("v3", "text-to-video"): RouteSpec(FIELDS["text-to-video"]),
    ("v3", "image-to-video"): RouteSpec(FIELDS["image-to-video"], "start_image_url", True),
    # O3: generate_audio "default: false" (fal's O3 API pages)
    ("o3", "text-to-video"): RouteSpec(_O3_COMMON | {"aspect_ratio"}, audio_default=False),
    ("o3", "image-to-video"): RouteSpec(_O3_COMMON | {"image_url", "end_image_url"},
                                        "image_url", True, audio_default=False),
    ("o3", "reference-to-video"): RouteSpec(
        _O3_COMMON | {"aspect_ratio", "start_image_url", "end_image_url", "image_urls",
                      "elements"}, "start_image_url", False, audio_default=False),
    ("turbo", "text-to-video"): RouteSpec(_TURBO_COMMON | {"aspect_ratio"},
                                          audio_default=None),
    ("turbo", "image-to-video"): RouteSpec(_TURBO_COMMON | {"image_url"}, "image_url", True,
                                           audio_default=None),
    ("v4", "text-to-video"): RouteSpec(_V4_COMMON | {"aspect_ratio"}, audio_default=None),
    ("v4", "image-to-video"): RouteSpec(
        _V4_COMMON | {"start_image_url", "middle_image_urls", "end_image_url"},
        "start_image_url", True, audio_default=None),
}


class Tier:
    """A tier's family, output short side and prices per second."""

    def __init__(self, family: str, silent: Decimal | None, audio: Decimal,
                 voice: Decimal | None = None, short_side: int = 1080,
                 by_resolution: dict[str, Decimal] | None = None) -> None:
        self.family = family
        self.silent = silent
        self.audio = audio
        self.voice = voice  # with voice control; None: not published (billed as audio)
        self.short_side = short_side
        self.by_resolution = by_resolution or {}


TIERS = {
    # (silent, with audio, with voice control) per second. v3 pro: the provider reference and
    # fal's model page ("$0.196/s with voice control")
    "v3/pro": Tier("v3", Decimal("0.112"), Decimal("0.168"), Decimal("0.196")),
    # v3 standard: fal's page, 0.084 / 0.126 / 0.154 with voice control; 720p
    "v3/standard": Tier("v3", Decimal("0.084"), Decimal("0.126"), Decimal("0.154"), 720),
    # v3 4k: "$0.42 regardless of whether audio is on or off"; no voice price published
    "v3/4k": Tier("v3", Decimal("0.42"), Decimal("0.42"), short_side=2160),
    # O3 standard: "$0.084 (audio off) or $0.112 (audio on)"
    "o3/standard": Tier("o3", Decimal("0.084"), Decimal("0.112"), short_side=720),
    # O3 pro: fal publishes no price; Kling's own O3 Pro units (0.8 / 1.0 x $0.14), Runware's
    # O3 Pro page and a fal models reference say 0.112 / 0.14 [secondary]
    "o3/pro": Tier("o3", Decimal("0.112"), Decimal("0.14")),
    # O3 4k: "$0.42 regardless of whether audio is on or off"
    "o3/4k": Tier("o3", Decimal("0.42"), Decimal("0.42"), short_side=2160),
    # Turbo: one price, sound always ("$0.112", "$0.14" a second)
    "v3/turbo/standard": Tier("turbo", None, Decimal("0.112"), short_side=720),
    "v3/turbo/pro": Tier("turbo", None, Decimal("0.14")),
    # 4.0: "$0.157 per second at 720p and $0.235 per second at 1080p" (kling/v4 pages); the
    # fal-ai/kling-video/v4 pages say "$0.157 per seconds" alone: 1080p bills the higher
    "v4": Tier("v4", None, Decimal("0.235"),
               by_resolution={"720p": Decimal("0.157"), "1080p": Decimal("0.235")}),
}
CREATE_VOICE = "fal-ai/kling-video/create-voice"
VOICE_PRICE = Decimal("0.007")  # create-voice: "$0.007 per generations"
VOICE_SUFFIXES = (".mp3", ".wav", ".mp4", ".mov")
VOICE_SECONDS = (5.0, 30.0)
VOICES_PER_TASK = 2
_ENDPOINT = re.compile(
    r"fal-ai/kling-video/(?P<tier>v3/pro|v3/standard|v3/4k|v3/turbo/standard|v3/turbo/pro"
    r"|o3/standard|o3/pro|o3/4k|v4)/(?P<kind>text-to-video|image-to-video|reference-to-video)"
)
DURATIONS = tuple(str(n) for n in range(3, 16))  # "3".."15", strings
V4_DURATIONS = (3, 30)  # 4.0: `duration` integer, "Range: 3 to 30"
V4_RESOLUTIONS = ("720p", "1080p")  # 4.0: ResolutionEnum, default "1080p"
V4_MIDDLE_IMAGES = 8  # "Ordered keyframes between the first and last frames (max 8)"
# O3 reference-to-video: "Maximum 4 total (elements + reference images) when using video";
# the 4K page: "Maximum 7 total (elements + reference images) is allowed"
O3_REFERENCES = 7
O3_REFERENCES_WITH_VIDEO = 4
ASPECTS = {"16:9": (1920, 1080), "9:16": (1080, 1920), "1:1": (1440, 1440)}
SHOT_TYPES = ("customize", "intelligent")
MAX_IMAGE_BYTES = 10 * 1024 * 1024  # image-to-video: images up to 10 MB
# Turbo's image_url: "max 50MB"; 4.0's start_image_url: "Max file size: 30.0MB"
MAX_START_BYTES = {"turbo": 50 * 1024 * 1024, "v4": 30 * 1024 * 1024}
IMAGE_ASPECT = (0.40, 2.50)  # image-to-video: aspect ratio 0.40-2.50
_ELEMENT_REF = re.compile(r"@Element(\d+)")
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})  # pydantic's truthy query strings
_FAULTS = {
    503: ("Runner disconnected", "runner_disconnected"),
    504: ("Request timed out", "request_timeout"),
}


class Fal:
    """The fal route table: queue submit/status/result/cancel and the CDN upload flow."""

    name = NAME

    def __init__(self, backend: Backend, key: str | None) -> None:
        self.backend = backend
        self.key = key
        self._tokens: set[str] = set()
        self._pending_puts: dict[str, tuple[str, str]] = {}
        self._voice_requests: dict[str, dict[str, Any]] = {}  # request id -> its voice
        self.voices: dict[str, str] = {}  # voice id -> the sample URL it was made of
        requests = r"/(?P<owner>[^/]+)/(?P<app>[^/]+)/requests/(?P<request_id>[^/]+)"
        # NOTE: first match wins; the catch-all submit route comes last.
        self.routes = (
            Route("POST", r"/storage/auth/token", self.auth_token, "upload", "rest"),
            Route("POST", r"/storage/upload/initiate", self.initiate_upload, "upload", "rest"),
            Route("PUT", r"/storage/put/(?P<token>[^/]+)", self.put_upload, "upload", "cdn"),
            Route("POST", r"/files/upload", self.upload, "upload", "cdn"),
            Route("GET", requests + "/status", self.status, "poll", "queue"),
            Route("GET", requests, self.result, "poll", "queue"),
            Route("PUT", requests + "/cancel", self.cancel, "poll", "queue"),
            Route("GET", r"/v1/models/requests/by-endpoint", self.list_requests, "poll",
                  "platform"),
            Route("POST", r"/(?P<endpoint>.+)", self.submit, "submit", "queue"),
        )

    # auth and faults ---------------------------------------------------------------------

    def authorize(self, request: Request) -> Response | None:
        """None when allowed: `Key <key>` on the API, a CDN token on uploads; else 401."""
        if request.host == "cdn" and request.path.startswith("/storage/put/"):
            return None  # a presigned upload URL carries its own secret
        scheme, _, value = request.header("authorization").partition(" ")
        if request.host == "cdn":
            if value in self._tokens:
                return None
            return json_response(401, {"detail": "Invalid or expired upload token"})
        if scheme == "Key" and value and (self.key is None or value == self.key):
            return None
        return json_response(
            401, {"detail": "Invalid authentication: use 'Authorization: Key <FAL_KEY>'"}
        )

    def fault_response(self, fault: TransportFault) -> Response:
        """A transport fault as fal's infrastructure answers it."""
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
        if fault.status in _FAULTS:
            detail, error_type = _FAULTS[fault.status]
            body = {"detail": detail, "error_type": error_type}
            headers["X-Fal-Error-Type"] = error_type
        elif fault.status == 429:
            body = {"detail": "Too many concurrent requests"}
        else:
            body = {"detail": f"simulated HTTP {fault.status}"}
        return json_response(fault.http_status or fault.status, body, headers)

    # queue -------------------------------------------------------------------------------

    def submit(self, request: Request, endpoint: str) -> Response:
        """Validate the flat input and queue it; answer the request id and its URLs."""
        if endpoint == CREATE_VOICE:
            return self.create_voice(request)
        found = _ENDPOINT.fullmatch(endpoint)
        tier = TIERS[found["tier"]] if found is not None else None
        if found is None or tier is None or (tier.family, found["kind"]) not in ROUTES:
            return json_response(404, {"detail": f"Application '{endpoint}' not found"})
        try:
            body = request.json()
        except ValueError:
            return _invalid(
                [_detail(["body"], "Input should be a valid JSON object", "json_invalid")]
            )
        if not isinstance(body, dict):
            return _invalid([_detail(["body"], "Input should be a valid dictionary", "dict_type")])
        check = _InputCheck(self.backend, found["kind"], body, self.voices, tier.family,
                            tier.short_side)
        plan = check.run()
        if check.details:
            return _invalid(check.details)
        seconds = int(plan.duration_s)
        cost = _rate(tier, plan.audio, bool(check.voices), check.resolution) * seconds
        request_id = str(uuid.uuid4())
        owner_app = "/".join(endpoint.split("/")[:2])
        self.backend.start(
            NAME,
            request_id,
            plan,
            prompt=plan.caption,
            cost_usd=cost,
            request={"endpoint": endpoint, "owner_app": owner_app, "input": body},
        )
        urls = self._urls(owner_app, request_id)
        return json_response(
            200,
            {"request_id": request_id, **urls, "status": "IN_QUEUE", "queue_position": 0},
            {"x-fal-request-id": request_id},
        )

    def create_voice(self, request: Request) -> Response:
        """Make a voice of a sample: `{voice_url}` only, a documented format and length."""
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _invalid([_detail(["body"], "Input should be a valid dictionary", "dict_type")])
        details = [_detail(["body", key], "Extra inputs are not permitted", "extra_forbidden")
                   for key in sorted(set(body) - {"voice_url"})]
        url = body.get("voice_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            details.append(_detail(["body", "voice_url"], "Field required (a URL)", "missing"))
        else:
            problem = self._sample_problem(url)
            if problem:
                details.append(_detail(["body", "voice_url"], problem, "voice_invalid"))
        if details:
            return _invalid(details)
        request_id = str(uuid.uuid4())
        voice_id = str(800000000000000000 + secrets.randbelow(10**17))
        self._voice_requests[request_id] = {"voice_id": voice_id, "input": body,
                                            "created_ms": int(time.time() * 1000)}
        self.voices[voice_id] = url
        self.backend.charge(NAME, VOICE_PRICE)
        urls = self._urls("fal-ai/kling-video", request_id)
        return json_response(
            200,
            {"request_id": request_id, **urls, "status": "IN_QUEUE", "queue_position": 0},
            {"x-fal-request-id": request_id},
        )

    def _sample_problem(self, url: str) -> str | None:
        """Why a voice sample is refused: its format by suffix, its length when it is a file
        of this simulator (an outside URL cannot be fetched offline: taken as it is)."""
        path = urlsplit(url).path.lower()
        if re.search(r"\.[a-z0-9]{1,5}$", path) and not path.endswith(VOICE_SUFFIXES):
            return "Supports .mp3/.wav audio or .mp4/.mov video only"
        try:
            stored = self.backend.local_file(url)
        except InputError as exc:
            return str(exc)
        if stored is None:
            return None
        from ..media.ffmpeg import audio_seconds  # a file's length: no reading of a protocol

        seconds = audio_seconds(stored.path)
        if seconds is None:
            return "The voice file has no readable audio"
        low, high = VOICE_SECONDS
        if not low <= seconds <= high:
            return f"Duration must be 5-30 seconds (got {seconds:.1f} s)"
        return None

    def status(self, request: Request, owner: str, app: str, request_id: str) -> Response:
        """202 IN_QUEUE / IN_PROGRESS while running; 200 COMPLETED (with error when failed)."""
        if request_id in self._voice_requests and f"{owner}/{app}" == "fal-ai/kling-video":
            return json_response(200, {"request_id": request_id, "status": "COMPLETED",
                                       "response_url": self._urls(f"{owner}/{app}",
                                                                  request_id)["response_url"]})
        generation = self._generation(owner, app, request_id)
        if generation is None:
            return json_response(404, {"detail": f"Request {request_id} not found"})
        # `logs` is a boolean query parameter: the docs write ?logs=1, fal-client 1.0.3 sends
        # httpx's rendering of a bool (`logs=true` / `logs=false`); FastAPI takes both spellings
        logs = [] if request.query.get("logs", "").lower() in _TRUE else None
        body: dict[str, Any] = {
            "request_id": request_id,
            "response_url": self._urls(f"{owner}/{app}", request_id)["response_url"],
        }
        if not self.backend.finish(generation):
            if generation.progress(self.backend.clock()) < 0.25:
                return json_response(202, body | {"status": "IN_QUEUE", "queue_position": 0})
            return json_response(202, body | {"status": "IN_PROGRESS", "logs": logs})
        body |= {
            "status": "COMPLETED",
            "logs": logs,
            "metrics": {"inference_time": generation.task_s},
        }
        if generation.failure is not None:
            body |= {
                "error": generation.failure.message,
                "error_type": generation.failure.code or "content_policy_violation",
            }
        return json_response(200, body)

    def result(self, request: Request, owner: str, app: str, request_id: str) -> Response:
        """The output `{"video": {...}}`; the error status and body when it failed; a voice's
        `{"voice_id"}`."""
        voice = self._voice_requests.get(request_id)
        if voice is not None and f"{owner}/{app}" == "fal-ai/kling-video":
            return json_response(200, {"voice_id": voice["voice_id"]})  # CreateVoiceOutput
        generation = self._generation(owner, app, request_id)
        if generation is None:
            return json_response(404, {"detail": f"Request {request_id} not found"})
        if not self.backend.finish(generation):
            return json_response(400, {"detail": "Request is still in progress"})
        failure = generation.failure
        if failure is not None:
            return json_response(
                422,
                {
                    "detail": [
                        _detail(
                            ["body", "prompt"],
                            failure.message,
                            failure.code or "content_policy_violation",
                        )
                    ]
                },
            )
        stored = generation.outputs[0]
        return json_response(
            200,
            {
                "video": {
                    "url": self.backend.file_url(stored.name),
                    "content_type": "video/mp4",
                    "file_name": stored.name,
                    "file_size": stored.size,
                }
            },
        )

    def cancel(self, request: Request, owner: str, app: str, request_id: str) -> Response:
        """CANCELLATION_REQUESTED while running, ALREADY_COMPLETED after, NOT_FOUND."""
        generation = self._generation(owner, app, request_id)
        if generation is None:
            return json_response(404, {"status": "NOT_FOUND"})
        with generation.lock:
            if generation.finished_ms is None and not generation.due(self.backend.clock()):
                generation.failure = GenerationFailure(
                    "", "Request was cancelled", "request_cancelled"
                )
                return json_response(202, {"status": "CANCELLATION_REQUESTED"})
        return json_response(400, {"status": "ALREADY_COMPLETED"})

    def list_requests(self, request: Request) -> Response:
        """fal's platform API, `GET /v1/models/requests/by-endpoint` (fal.ai/docs/platform-apis/
        v1/models/requests/by-endpoint): the requests of one endpoint since `start` (ISO 8601),
        newest first; `expand=payloads` adds `json_input`."""
        endpoint = request.query.get("endpoint_id")
        if not endpoint:
            return json_response(
                422, {"detail": [_detail(["query", "endpoint_id"], "Field required", "missing")]}
            )
        since = request.query.get("start")
        try:
            since_ms = int(datetime.fromisoformat(since).timestamp() * 1000) if since else 0
        except ValueError:
            return json_response(
                422, {"detail": [_detail(["query", "start"], "Invalid datetime", "datetime")]}
            )
        payloads = "payloads" in request.query.get("expand", "")
        items = []
        if endpoint == CREATE_VOICE:  # create-voice is a queue app like the others
            for request_id, voice in reversed(self._voice_requests.items()):
                if voice["created_ms"] < since_ms:
                    continue
                item = {"request_id": request_id, "endpoint_id": endpoint,
                        "sent_at": datetime.fromtimestamp(voice["created_ms"] / 1000,
                                                          UTC).isoformat()}
                if payloads:
                    item["json_input"] = voice["input"]
                items.append(item)
        for generation in reversed(self.backend.generations(NAME)):
            sent = generation.request or {}
            if sent.get("endpoint") != endpoint or generation.created_ms < since_ms:
                continue
            item = {
                "request_id": generation.id,
                "endpoint_id": endpoint,
                "sent_at": datetime.fromtimestamp(generation.created_ms / 1000, UTC).isoformat(),
            }
            if payloads:
                item["json_input"] = sent.get("input")
            items.append(item)
        limit = int(request.query.get("limit") or 50)
        return json_response(
            200, {"items": items[:limit], "next_cursor": None, "has_more": len(items) > limit}
        )

    def _generation(self, owner: str, app: str, request_id: str):
        generation = self.backend.generation(NAME, request_id)
        if generation is None or generation.request["owner_app"] != f"{owner}/{app}":
            return None
        return generation

    def _urls(self, owner_app: str, request_id: str) -> dict[str, str]:
        base = f"{self.backend.base_url}/fal/{owner_app}/requests/{request_id}"
        return {
            "response_url": base,
            "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel",
        }

    # uploads -----------------------------------------------------------------------------

    def auth_token(self, request: Request) -> Response:
        """A CDN token whose base_url is this simulator's fal base."""
        if request.query.get("storage_type") != "fal-cdn-v3":
            return json_response(
                422,
                {
                    "detail": [
                        _detail(
                            ["query", "storage_type"],
                            "Input should be 'fal-cdn-v3'",
                            "literal_error",
                        )
                    ]
                },
            )
        token = secrets.token_urlsafe(24)
        self._tokens.add(token)
        expires = datetime.now(UTC) + timedelta(hours=1)
        return json_response(
            200,
            {
                "token": token,
                "token_type": "Bearer",
                "base_url": f"{self.backend.base_url}/fal-cdn",
                "expires_at": expires.isoformat(),
            },
        )

    def upload(self, request: Request) -> Response:
        """Store the raw bytes; answer their access_url."""
        if not request.body:
            return json_response(400, {"detail": "empty upload"})
        name = request.header("x-fal-file-name") or "upload.bin"
        content_type = request.header("content-type") or "application/octet-stream"
        stored = self.backend.put_file(
            request.body, provider=NAME, suffix=_suffix(name), content_type=content_type
        )
        return json_response(200, {"access_url": self.backend.file_url(stored.name)})

    def initiate_upload(self, request: Request) -> Response:
        """The fallback flow: an upload URL to PUT the bytes to, and the file's final URL."""
        try:
            body = request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("file_name"), str):
            return json_response(
                422, {"detail": [_detail(["body", "file_name"], "Field required", "missing")]}
            )
        token = secrets.token_urlsafe(16)
        name = f"{uuid.uuid4()}{_suffix(body['file_name'])}"
        self._pending_puts[token] = (name, body.get("content_type") or "application/octet-stream")
        return json_response(
            200,
            {
                "upload_url": f"{self.backend.base_url}/fal-cdn/storage/put/{token}",
                "file_url": self.backend.file_url(name),
            },
        )

    def put_upload(self, request: Request, token: str) -> Response:
        """Receive the bytes for an initiated upload."""
        pending = self._pending_puts.pop(token, None)
        if pending is None:
            return json_response(404, {"detail": "unknown upload URL"})
        name, content_type = pending
        self.backend.put_file(
            request.body, provider=NAME, suffix="", content_type=content_type, name=name
        )
        return Response(200, b"", content_type="text/plain")


class _InputCheck:
    """Validates one flat input for text-to-video or image-to-video, collecting FastAPI details."""

    def __init__(self, backend: Backend, kind: str, body: Mapping[str, Any],
                 known_voices: Mapping[str, str] | None = None, family: str = "v3",
                 short_side: int = 1080) -> None:
        self.backend = backend
        self.kind = kind
        self.family = family
        self.route = ROUTES[(family, kind)]
        self.short_side = short_side
        self.resolution: str | None = None  # 4.0's, as asked (default 1080p)
        self.known_voices = known_voices if known_voices is not None else {}
        self.voices: list[str] = []  # the voices the input binds
        # seed 001's example sends "multi_prompt": null: null means absent
        self.body = {k: v for k, v in body.items() if v is not None}
        self.details: list[dict] = []

    def fail(self, loc: list, msg: str, type_: str) -> None:
        """Record one error detail."""
        self.details.append(_detail(["body", *loc], msg, type_))

    def run(self) -> ClipPlan | None:
        """The clip plan of a valid input; None when `details` lists what is wrong."""
        body = self.body
        route = self.route
        for key in sorted(set(body) - route.fields):
            self.fail([key], "Extra inputs are not permitted", "extra_forbidden")
        duration = self._v4_duration() if self.family == "v4" else self._duration()
        texts = self._prompts(duration)
        self._literal("shot_type", SHOT_TYPES)
        # 4.0's AspectRatioEnum starts with "auto" (its text-to-video page)
        self._literal("aspect_ratio", (("auto",) if self.family == "v4" else ()) + tuple(ASPECTS))
        if self.family == "v4":
            self._literal("resolution", V4_RESOLUTIONS)
            resolution = body.get("resolution", V4_RESOLUTIONS[1])
            self.resolution = resolution if resolution in V4_RESOLUTIONS else None
        if "generate_audio" in body and not isinstance(body["generate_audio"], bool):
            self.fail(["generate_audio"], "Input should be a valid boolean", "bool_type")
        if "negative_prompt" in body and not isinstance(body["negative_prompt"], str):
            self.fail(["negative_prompt"], "Input should be a valid string", "string_type")
        self._cfg_scale()
        self._voice_ids()
        start = end = None
        if route.start is not None:
            if route.start in body:
                start = self._image([route.start], body[route.start],
                                    MAX_START_BYTES.get(self.family, MAX_IMAGE_BYTES))
            elif route.start_required:
                self.fail([route.start], "Field required", "missing")
        if "end_image_url" in body:
            end = self._image(["end_image_url"], body["end_image_url"])
        self._middle_images()
        references = self._image_urls()
        elements = self._elements() if "elements" in route.fields else 0
        self._references(references, elements)
        self._element_refs(texts, elements)
        self._voice_count()
        if self.details:
            return None
        width, height = ASPECTS.get(body.get("aspect_ratio", "16:9"), (1920, 1080))
        short = 720 if self.resolution == "720p" else self.short_side
        if short != 1080:  # the nominal size of a 720p or 4K tier
            side = min(width, height)
            width, height = width * short // side, height * short // side
        # v3: default true; O3: default false; Turbo and 4.0: no switch, sound always
        audio = True if route.audio_default is None else \
            bool(body.get("generate_audio", route.audio_default))
        return ClipPlan(
            duration_s=float(duration),
            width=width,
            height=height,
            audio=audio,
            first_image=start if start and start.path else None,
            last_image=end if end and end.path else None,
            title=f"fal {self.family} {self.kind}",
            caption="\n".join(texts),
        )

    def _v4_duration(self) -> int:
        """4.0: an integer of seconds, 3-30 (a string is refused, as FastAPI's int_type)."""
        value = self.body.get("duration", 5)
        low, high = V4_DURATIONS
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(["duration"], "Input should be a valid integer", "int_type")
            return 5
        if not low <= value <= high:
            self.fail(["duration"], f"Input should be between {low} and {high}",
                      "less_than_equal" if value > high else "greater_than_equal")
            return 5
        return value

    def _middle_images(self) -> None:
        """4.0's `middle_image_urls`: "Ordered keyframes between the first and last frames
        (max 8)"."""
        value = self.body.get("middle_image_urls")
        if value is None:
            return
        if not isinstance(value, list):
            self.fail(["middle_image_urls"], "Input should be a valid list", "list_type")
            return
        if len(value) > V4_MIDDLE_IMAGES:
            self.fail(["middle_image_urls"], f"List should have at most {V4_MIDDLE_IMAGES} "
                      f"items after validation, not {len(value)}", "too_long")
        for i, url in enumerate(value):
            self._image(["middle_image_urls", i], url)

    def _image_urls(self) -> int:
        """O3 reference-to-video's reference images (@Image1...)."""
        value = self.body.get("image_urls")
        if value is None:
            return 0
        if not isinstance(value, list):
            self.fail(["image_urls"], "Input should be a valid list", "list_type")
            return 0
        for i, url in enumerate(value):
            self._image(["image_urls", i], url)
        return len(value)

    def _references(self, images: int, elements: int) -> None:
        """O3 reference-to-video: elements and reference images together, at most 7, at most
        4 with a video element."""
        if self.kind != "reference-to-video":
            return
        items = self.body.get("elements") if isinstance(self.body.get("elements"), list) else []
        video = any(isinstance(e, dict) and "video_url" in e for e in items)
        limit = O3_REFERENCES_WITH_VIDEO if video else O3_REFERENCES
        if images + elements > limit:
            self.fail(["image_urls"], f"Maximum {limit} total (elements + reference images)"
                      + (" when using video" if video else ""), "too_long")

    def _literal(self, key: str, allowed: tuple) -> None:
        if key in self.body and self.body[key] not in allowed:
            expected = ", ".join(repr(a) for a in allowed)
            self.fail([key], f"Input should be {expected}", "literal_error")

    def _duration(self) -> int:
        value = self.body.get("duration", "5")
        if value not in DURATIONS or not isinstance(value, str):
            self.fail(
                ["duration"], "Input should be '3', '4', ..., '15' (a string)", "literal_error"
            )
            return 5
        return int(value)

    def _prompts(self, duration: int) -> list[str]:
        body = self.body
        has_prompt, has_multi = "prompt" in body, "multi_prompt" in body
        if has_prompt == has_multi:
            which = (
                "both prompt and multi_prompt" if has_prompt else "neither prompt nor multi_prompt"
            )
            self.fail(
                ["prompt"],
                f"Provide exactly one of prompt or multi_prompt (got {which})",
                "value_error",
            )
        texts = []
        if has_prompt:
            texts.append(self._prompt(["prompt"], body["prompt"]))
        if has_multi:
            texts += self._multi_prompt(body["multi_prompt"], duration)
        return [t for t in texts if t]

    def _prompt(self, loc: list, value: Any) -> str:
        if not isinstance(value, str):
            self.fail(loc, "Input should be a valid string", "string_type")
            return ""
        if not 1 <= len(value) <= 2500:  # 2500 as on the other Kling 3.0 APIs [inferred]
            self.fail(loc, "String should have 1 to 2500 characters", "string_too_long")
        return value

    def _multi_prompt(self, segments: Any, duration: int) -> list[str]:
        if not isinstance(segments, list) or not 1 <= len(segments) <= 6:
            self.fail(
                ["multi_prompt"], "multi_prompt should be a list of 1 to 6 shots", "list_type"
            )
            return []
        texts, total = [], 0
        for i, segment in enumerate(segments):
            if not isinstance(segment, dict):
                self.fail(["multi_prompt", i], "Input should be a valid dictionary", "dict_type")
                continue
            texts.append(self._prompt(["multi_prompt", i, "prompt"], segment.get("prompt")))
            seconds = segment.get("duration", "5")
            if seconds not in DURATIONS or not isinstance(seconds, str):
                self.fail(
                    ["multi_prompt", i, "duration"],
                    "Input should be '3', '4', ..., '15' (a string)",
                    "literal_error",
                )
            else:
                total += int(seconds)
        if total != duration and len(texts) == len(segments):
            self.fail(
                ["multi_prompt"],
                f"the shot durations add up to {total} s, not the duration {duration} s",
                "value_error",
            )
        return texts

    def _cfg_scale(self) -> None:
        value = self.body.get("cfg_scale")
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(["cfg_scale"], "Input should be a valid number", "float_type")
        elif not 0 <= value <= 1:
            self.fail(
                ["cfg_scale"],
                "Input should be between 0 and 1",
                "less_than_equal" if value > 1 else "greater_than_equal",
            )

    def _voice_ids(self) -> None:
        value = self.body.get("voice_ids")
        if value is not None and (
            not isinstance(value, list)
            or len(value) > 2
            or not all(isinstance(v, str) for v in value)
        ):
            self.fail(["voice_ids"], "voice_ids should be a list of at most 2 strings", "too_long")
        elif value:
            for i, voice in enumerate(value):
                self._voice(["voice_ids", i], voice)

    def _voice(self, loc: list, value: Any) -> None:
        """A voice id this simulator's create-voice made."""
        if not isinstance(value, str) or not value:
            self.fail(loc, "Input should be a valid string", "string_type")
        elif value not in self.known_voices:
            self.fail(loc, f"Voice {value} not found: create it with {CREATE_VOICE}",
                      "voice_not_found")
        else:
            self.voices.append(value)

    def _voice_count(self) -> None:
        if len(set(self.voices)) > VOICES_PER_TASK:
            self.fail(["elements"], f"{len(set(self.voices))} voices; maximum "
                      f"{VOICES_PER_TASK} voices per task", "too_many_voices")

    def _image(self, loc: list, value: Any, most: int = MAX_IMAGE_BYTES) -> ImageInput | None:
        try:
            image = self.backend.image_input(value)
        except InputError as exc:
            self.fail(loc, f"Image URL {exc}", "image_load_error")
            return None
        if image.byte_count > most:
            self.fail(loc, f"Image is larger than {most // (1024 * 1024)} MB", "image_too_large")
        if image.size is not None:
            ratio = image.size[0] / image.size[1]
            if not IMAGE_ASPECT[0] <= ratio <= IMAGE_ASPECT[1]:
                self.fail(
                    loc,
                    f"Image aspect ratio {ratio:.2f} is outside 0.40-2.50",
                    "image_aspect_ratio",
                )
        return image

    def _elements(self) -> int:
        elements = self.body.get("elements")
        if elements is None:
            return 0
        if not isinstance(elements, list):
            self.fail(["elements"], "Input should be a valid list", "list_type")
            return 0
        videos = 0
        for i, element in enumerate(elements):
            loc = ["elements", i]
            if not isinstance(element, dict):
                self.fail(loc, "Input should be a valid dictionary", "dict_type")
                continue
            if "voice_id" in element:
                self._voice([*loc, "voice_id"], element["voice_id"])
            if "video_url" in element:
                videos += 1
                if set(element) - {"voice_id"} != {"video_url"}:
                    self.fail(loc, "A video element takes only video_url", "value_error")
                continue
            for key in sorted(set(element) - {"frontal_image_url", "reference_image_urls",
                                              "voice_id"}):
                self.fail([*loc, key], "Extra inputs are not permitted", "extra_forbidden")
            if "frontal_image_url" not in element:
                self.fail([*loc, "frontal_image_url"], "Field required", "missing")
            else:
                self._image([*loc, "frontal_image_url"], element["frontal_image_url"])
            refs = element.get("reference_image_urls")
            if refs is not None:
                if not isinstance(refs, list) or not 1 <= len(refs) <= 3:
                    self.fail(
                        [*loc, "reference_image_urls"], "List should have 1 to 3 items", "too_long"
                    )
                else:
                    for j, url in enumerate(refs):
                        self._image([*loc, "reference_image_urls", j], url)
        if videos > 1:
            self.fail(["elements"], "At most one video element per request", "value_error")
        return len(elements)

    def _element_refs(self, texts: list[str], count: int) -> None:
        for text in texts:
            for number in _ELEMENT_REF.findall(text):
                if not 1 <= int(number) <= count:
                    self.fail(
                        ["prompt"],
                        f"@Element{number} refers to element {number} but elements has {count}",
                        "value_error",
                    )


def _rate(tier: Tier, audio: bool, voices: bool, resolution: str | None) -> Decimal:
    """The price per second of one generation of `tier`."""
    if tier.by_resolution:
        return tier.by_resolution.get(resolution or "", tier.audio)
    if not audio and tier.silent is not None:
        return tier.silent
    return tier.voice if voices and tier.voice is not None else tier.audio


def _detail(loc: list, msg: str, type_: str) -> dict:
    return {"loc": loc, "msg": msg, "type": type_}


def _invalid(details: list[dict]) -> Response:
    return json_response(422, {"detail": details})


def _suffix(file_name: str) -> str:
    found = re.search(r"\.[A-Za-z0-9]{1,5}$", file_name)
    return found.group(0).lower() if found else ""
