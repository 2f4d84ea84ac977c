"""Runware's REST protocol: one POST endpoint taking a JSON array of tasks.

Written from seed 000 (Kling VIDEO 3.0 Pro page), seeds 003/004 (O3 Pro pages) and the
project's provider reference, section 1. Task types: `videoInference` (validated, queued,
acknowledged), `getResponse` (the full current state of a generation on every poll),
`imageUpload` (stores an image, answers its UUID and URL), `accountManagement` with
`operation: getDetails` (the account's details and `balance`, runware.ai/docs/platform/
account-management) and `authentication`.

Every validation failure is an `errors[]` entry `{code, message, parameter, taskType,
taskUUID}` with HTTP 400; codes are `invalid<Parameter>` (for example `invalidDuration`),
`unknownParameter` for a field the model pages do not list, and `unsupportedDimensions` for a
width x height outside the model's dimension table.

Stricter readings (issue 21; docs/simulator.md "Runware: stricter readings"):

- A repeated `taskUUID` is not refused: Runware's REST API documents no `conflictTaskUUID`, so
  the stricter reading is that a second `videoInference` with the same taskUUID is accepted
  and billed as a new generation. It is a Generation of its own (id `<taskUUID>#2`, `#3`...),
  counted in `generations("runware")` and `/_sim/stats`, due when the first one is due (or at
  once if that one is over), billed when it finishes; getResponse for the taskUUID reports the
  results of every generation made under it.
- 3.0 Pro takes only its dimension table (1920x1080, 1440x1440, 1080x1920), like O3 Pro.

The other Kling 3.0 tiers (issue 25), each from its Runware model page (runware.ai/docs/models/
klingai-video-3-0-standard, -3-0-4k, -o3-standard, -3-0-turbo) and runware-sdk 1.8.0's
generated types (`KlingaiVideo30StandardParams`, `...304kParams`, `...30OmniStandardParams`,
`...30TurboParams`), kept here apart from the provider's reading of them:

- 3.0 Standard (`@3-standard`) and 3.0 4K (`@3-4k`) are 3.0 Pro at 720p and at 4K; Standard
  refuses providerSettings with inputs.referenceVideos (its page: "When inputs.referenceVideos
  is provided, providerSettings cannot be used").
- O3 Standard (`@o3-standard`) is O3 Pro at 720p, `resolution: '720p'` (with inputs.video).
- 3.0 Turbo (`@3.0-turbo`) is one model at two resolutions: width/height from either table, or
  inputs.frameImages (a first frame only [inferred: every source gives Turbo no end frame])
  with `resolution` 720p | 1080p; no providerSettings; negativePrompt only with frameImages;
  its clips have sound; billed by resolution (a frame without `resolution` at the dearer
  1080p [inferred: the stricter bill]).
- numberResults on the new tiers: 1-4 [inferred: their pages' bounds were not read; 4 is the
  smallest maximum of a Runware Kling 3.0 page].
"""

from __future__ import annotations

import io
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from PIL import Image

from .faults import TransportFault
from .store import (
    Backend,
    ClipPlan,
    Generation,
    ImageInput,
    InputError,
    StoredFile,
    inline_bytes,
    video_facts,
)
from .wire import Request, Response, Route, json_response

NAME = "runware"

_COMMON_KEYS = frozenset(
    {
        "taskType",
        "taskUUID",
        "outputType",
        "outputFormat",
        "outputQuality",
        "webhookURL",
        "deliveryMethod",
        "uploadEndpoint",
        "safety",
        "ttl",
        "includeCost",
        "numberResults",
        "inputs",
        "model",
        "positivePrompt",
        "width",
        "height",
        "duration",
        "providerSettings",
        "seed",  # seeds 003/004: "If none was provided, shows the randomly generated seed"
        # runware-sdk 1.8.0 `types/task_map.py` (generated from Runware's schemas bundle
        # 20261012233936): `routing: dict` is a parameter of every model, 3.0 Pro and O3 included
        "routing",
    }
)


@dataclass(frozen=True, slots=True)
class ModelRules:
    """What one Runware Kling model accepts; each field cites its seed page."""

    omni: bool  # O3: inputs.video, multiPrompt, sound, the compatibility rules of seeds 003/004
    keys: frozenset[str]
    input_keys: frozenset[str]
    settings_keys: frozenset[str]
    sizes: frozenset[tuple[int, int]] | None
    number_results: tuple[int, int]
    prices: Mapping[str, Decimal]
    # `resolution` values and the sizes each one makes (O3: with inputs.video only; Turbo: with
    # inputs.frameImages only, and it is the tier billed)
    resolutions: Mapping[str, frozenset[tuple[int, int]]] = field(default_factory=dict)
    resolution_needs: str = "video"  # the input `resolution` requires
    # inputs whose presence forbids providerSettings (the O3 pages; 3.0 Standard's page)
    no_settings_with: tuple[str, ...] = ()
    frames: tuple[str, ...] = ("first", "last")  # frame positions frameImages may hold
    negative_needs_frames: bool = False  # Turbo: negativePrompt only with frameImages
    always_audio: bool = False  # Turbo: no sound switch, its clips have sound
    # USD per second by resolution (Turbo), instead of `prices`
    resolution_prices: Mapping[str, Decimal] = field(default_factory=dict)


MODELS: Mapping[str, ModelRules] = {
    "klingai:kling-video@3-pro": ModelRules(
        omni=False,
        keys=_COMMON_KEYS | {"negativePrompt"},  # seed 000: negativePrompt min 2 max 2500
        input_keys=frozenset({"referenceImages", "frameImages", "referenceVideos", "elements"}),
        # seed 000 lists characterOrientation and keepOriginalSound; `sound` (a boolean,
        # sdk-python IKlingAIProviderSettings.sound) switches audio on, which the current 3.0
        # Pro page prices ($0.112/s without audio, $0.168/s with audio)
        settings_keys=frozenset({"characterOrientation", "keepOriginalSound", "sound"}),
        # the current 3.0 Pro page's dimension table (seed 000 had none)
        sizes=frozenset({(1920, 1080), (1440, 1440), (1080, 1920)}),
        number_results=(1, 20),  # seed 000: numberResults min 1 max 20
        # the current 3.0 Pro page and the provider reference: 0.112/s silent, 0.168/s audio
        prices={"silent": Decimal("0.112"), "audio": Decimal("0.168")},
    ),
    "klingai:kling-video@o3-pro": ModelRules(
        omni=True,
        keys=_COMMON_KEYS | {"resolution"},  # seed 003: resolution 1080p; no negativePrompt
        input_keys=frozenset(
            {"referenceImages", "frameImages", "video", "referenceVideos", "elements"}
        ),
        settings_keys=frozenset(
            {"characterOrientation", "keepOriginalSound", "multiPrompt", "sound"}
        ),
        sizes=frozenset({(1920, 1080), (1440, 1440), (1080, 1920)}),  # seeds 003/004 table
        number_results=(1, 4),  # seed 003 says max 4, seed 004 max 20: the stricter one
        # seeds 003/004: 0.112 no input, 0.14 audio, 0.168 video input (per second)
        prices={"silent": Decimal("0.112"), "audio": Decimal("0.14"), "video": Decimal("0.168")},
        resolutions={"1080p": frozenset({(1920, 1080), (1440, 1440), (1080, 1920)})},
        no_settings_with=("video", "referenceVideos"),  # seeds 003/004
    ),
}

_SIZES_720P = frozenset({(1280, 720), (960, 960), (720, 1280)})  # the 720p dimension tables
_SIZES_1080P = frozenset({(1920, 1080), (1440, 1440), (1080, 1920)})
_SIZES_4K = frozenset({(3840, 2160), (2880, 2880), (2160, 3840)})  # the 3.0 4K page's table
_NEW_RESULTS = (1, 4)  # numberResults of the issue-25 tiers [inferred] (module docstring)

MODELS = {
    **MODELS,
    # Kling VIDEO 3.0 Standard page: 720p table; "$0.084/s without audio & $0.126/s with audio"
    "klingai:kling-video@3-standard": ModelRules(
        omni=False,
        keys=_COMMON_KEYS | {"negativePrompt"},  # runware-sdk KlingaiVideo30StandardParams
        input_keys=frozenset({"referenceImages", "frameImages", "referenceVideos", "elements"}),
        settings_keys=frozenset({"characterOrientation", "keepOriginalSound", "sound"}),
        sizes=_SIZES_720P,
        number_results=_NEW_RESULTS,
        prices={"silent": Decimal("0.084"), "audio": Decimal("0.126")},
        no_settings_with=("referenceVideos",),
    ),
    # Kling VIDEO 3.0 4K page: 4K table (1:1 is 2880x2880); "1s: $0.42", audio or not
    "klingai:kling-video@3-4k": ModelRules(
        omni=False,
        keys=_COMMON_KEYS | {"negativePrompt"},  # runware-sdk KlingaiVideo304kParams
        input_keys=frozenset({"referenceImages", "frameImages", "referenceVideos", "elements"}),
        settings_keys=frozenset({"characterOrientation", "keepOriginalSound", "sound"}),
        sizes=_SIZES_4K,
        number_results=_NEW_RESULTS,
        prices={"silent": Decimal("0.42"), "audio": Decimal("0.42")},
    ),
    # Kling VIDEO O3 Standard page: O3 Pro's rules at 720p; 720p · 1s: no input + no audio
    # $0.084, audio + no input $0.112, video input + no audio $0.126; runware-sdk
    # KlingaiVideo30OmniStandardParams: `resolution: Literal['720p']`, no negativePrompt
    "klingai:kling-video@o3-standard": ModelRules(
        omni=True,
        keys=_COMMON_KEYS | {"resolution"},
        input_keys=frozenset(
            {"referenceImages", "frameImages", "video", "referenceVideos", "elements"}
        ),
        settings_keys=frozenset(
            {"characterOrientation", "keepOriginalSound", "multiPrompt", "sound"}
        ),
        sizes=_SIZES_720P,
        number_results=_NEW_RESULTS,
        prices={"silent": Decimal("0.084"), "audio": Decimal("0.112"), "video": Decimal("0.126")},
        resolutions={"720p": _SIZES_720P},
        no_settings_with=("video", "referenceVideos"),
    ),
    # Kling VIDEO 3.0 Turbo page: "When inputs.frameImages is provided, width/height cannot be
    # used", "When negativePrompt is provided, inputs.frameImages is required", "`resolution`
    # cannot be used with width/height", "When `resolution` is provided, inputs.frameImages is
    # required"; 720p and 1080p tables; "$0.112 per second of video at 720p with native audio",
    # "1080p . 3s: $0.42". runware-sdk KlingaiVideo30TurboParams: positivePrompt required,
    # negativePrompt, width, height, resolution, duration, inputs; no providerSettings.
    "klingai:kling-video@3.0-turbo": ModelRules(
        omni=False,
        keys=(_COMMON_KEYS - {"providerSettings"}) | {"negativePrompt", "resolution"},
        input_keys=frozenset({"frameImages"}),  # the page names no other input
        settings_keys=frozenset(),
        sizes=_SIZES_720P | _SIZES_1080P,
        number_results=_NEW_RESULTS,
        prices={},
        resolutions={"720p": _SIZES_720P, "1080p": _SIZES_1080P},
        resolution_needs="frameImages",
        frames=("first",),
        negative_needs_frames=True,
        always_audio=True,
        resolution_prices={"720p": Decimal("0.112"), "1080p": Decimal("0.14")},
    ),
}

DEFAULT_DURATION_S = 5  # seeds 000, 003, 004: duration default 5
EXTERNAL_VIDEO_S = 5  # an outside inputs.video cannot be probed offline [inferred]
MAX_UPLOAD_SIDE = 2048  # image-upload page: stored at most 2048 px on the long side
_ELEMENT_REF = re.compile(r"<<<element_(\d+)>>>")
_FRAME_POSITIONS = {
    "first": "first",
    "last": "last",
    0: "first",
    -1: "last",
    "0": "first",
    "-1": "last",
}
_FAULT_CODES = {
    429: "rateLimitExceeded",
    402: "insufficientCredits",
    500: "internalServerError",
    502: "badGateway",
    503: "serviceUnavailable",
    504: "timeoutProvider",
}


class _Invalid(Exception):
    """Raised inside a check to stop it; the errors are already collected."""


class _Errors:
    """Collects a task's validation errors in Runware's error shape."""

    def __init__(self, task: Mapping[str, Any]) -> None:
        self.task = task
        self.items: list[dict[str, Any]] = []

    def add(self, parameter: str, message: str, code: str | None = None) -> None:
        """Record that `parameter` is wrong; the code defaults to invalid<LastSegment>."""
        self.items.append(
            error_item(code or invalid_code(parameter), message, parameter, self.task)
        )


class Runware:
    """The Runware route table and its task handlers, over a shared `Backend`."""

    name = NAME

    def __init__(self, backend: Backend, key: str | None) -> None:
        self.backend = backend
        self.key = key
        self.routes = (Route("POST", "/v1", self.post, request_kind),)
        self._uploads: dict[str, StoredFile] = {}
        self._repeats: dict[str, list[Generation]] = {}  # taskUUID -> its repeats, in order
        self._lock = threading.Lock()
        self.balance = Decimal("100")  # what getDetails reports; tests may set it
        self._handlers: dict[str, Callable[[Mapping[str, Any]], tuple[list, list]]] = {
            "videoInference": self.video_inference,
            "getResponse": self.get_response,
            "imageUpload": self.image_upload,
            "mediaStorage": self.media_storage,
            "accountManagement": self.account_management,
        }

    # auth and faults ---------------------------------------------------------------------

    def authorize(self, request: Request) -> Response | None:
        """None when the key is right (header, or an authentication task first); else 401."""
        scheme, _, value = request.header("authorization").partition(" ")
        if scheme.lower() != "bearer" or not value:
            value = _auth_task_key(request)
        if value and (self.key is None or value == self.key):
            return None
        return json_response(
            401,
            {
                "errors": [
                    {
                        "code": "invalidApiKey",
                        "message": "Invalid API key. Get one at https://my.runware.ai/signup",
                        "parameter": "apiKey",
                        "taskType": "authentication",
                    }
                ]
            },
        )

    def fault_response(self, fault: TransportFault) -> Response:
        """A transport fault in Runware's error envelope."""
        code = _FAULT_CODES.get(fault.status, "simulatedError")
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
        body = {"errors": [{"code": code, "message": f"simulated HTTP {fault.status}"}]}
        return json_response(fault.http_status or fault.status, body, headers)

    # the one endpoint --------------------------------------------------------------------

    def post(self, request: Request) -> Response:
        """Run every task of the array; data and errors are gathered task by task."""
        tasks = _tasks(request)
        if tasks is None:
            return json_response(
                400,
                {
                    "errors": [
                        error_item(
                            "invalidRequestBody",
                            "the body must be a JSON array of task objects",
                            "body",
                            {},
                        )
                    ]
                },
            )
        data: list[dict] = []
        errors: list[dict] = []
        for task in tasks:
            handler = self._handlers.get(task.get("taskType"))
            if task.get("taskType") == "authentication":
                continue
            if handler is None:
                errors.append(
                    error_item(
                        "invalidTaskType",
                        f"unsupported taskType {task.get('taskType')!r}",
                        "taskType",
                        task,
                    )
                )
                continue
            items, task_errors = handler(task)
            data += items
            errors += task_errors
        return json_response(_status(data, errors), _envelope(data, errors))

    # videoInference ----------------------------------------------------------------------

    def video_inference(self, task: Mapping[str, Any]) -> tuple[list, list]:
        """Validate and queue a generation; ACK `{taskType, taskUUID}` or the errors.

        A taskUUID already used starts (and bills) another generation: the stricter reading
        of an API that documents no `conflictTaskUUID` (see the module docstring)."""
        errors = _Errors(task)
        task_uuid = task.get("taskUUID")
        try:
            plan, prompt, cost = _VideoCheck(self, task, errors).run()
        except _Invalid:
            return [], errors.items
        if errors.items:
            return [], errors.items
        options = {"results": task.get("numberResults", 1), "prompt": prompt, "cost_usd": cost,
                   "request": dict(task), "seed": task.get("seed")}
        with self._lock:
            repeat = None
            if self.backend.start(NAME, task_uuid, plan, **options) is None:
                repeat = self._repeat(task_uuid, plan, options)  # used before: billed again
        if repeat is not None:
            self.backend.finish(repeat)  # bills it now when it is already due
        return [{"taskType": "videoInference", "taskUUID": task_uuid}], []

    def _repeat(self, task_uuid: str, plan: ClipPlan, options: dict) -> Generation:
        """Another generation under a used taskUUID (called with the lock held), due when the
        first one is (at once when that one is over)."""
        first = self.backend.generation(NAME, task_uuid)
        repeats = self._repeats.setdefault(task_uuid, [])
        generation = self.backend.start(NAME, f"{task_uuid}#{len(repeats) + 2}", plan, **options)
        assert generation is not None and first is not None
        generation.task_s = max(0.0, first.started_s + first.task_s - generation.started_s)
        repeats.append(generation)
        return generation

    def under(self, task_uuid: str) -> list[Generation]:
        """Every generation made under `task_uuid`: the first, then its repeats."""
        first = self.backend.generation(NAME, task_uuid)
        with self._lock:
            repeats = list(self._repeats.get(task_uuid, ()))
        return ([first] if first is not None else []) + repeats

    # getResponse -------------------------------------------------------------------------

    def get_response(self, task: Mapping[str, Any]) -> tuple[list, list]:
        """One item per result: processing, then success items (or an error item), for every
        generation made under the taskUUID (a repeated taskUUID made more than one)."""
        task_uuid = task.get("taskUUID")
        generations = self.under(task_uuid) if isinstance(task_uuid, str) else []
        if not generations:
            return [], [
                error_item(
                    "taskNotFound",
                    f"no task with taskUUID {task_uuid!r}",
                    "taskUUID",
                    task,
                )
                | {"taskType": "getResponse"}
            ]
        data: list = []
        errors: list = []
        for generation in generations:
            items, failed = self._state(task_uuid, generation)
            data += items
            errors += failed
        return data, errors

    def _state(self, task_uuid: str, generation: Generation) -> tuple[list, list]:
        """The getResponse items of one generation."""
        base = {"taskType": "videoInference", "taskUUID": task_uuid}
        if not self.backend.finish(generation):
            progress = int(100 * generation.progress(self.backend.clock()))
            return [base | {"status": "processing", "progress": progress}] * generation.results, []
        if generation.failure is not None:
            error = {
                "code": generation.failure.code or "providerContentPolicyViolation",
                "message": generation.failure.message,
            }
            return [base | {"status": "error", "error": error}], [base | error]
        request = generation.request
        items = []
        for video_uuid, stored, seed in zip(
            generation.output_ids, generation.outputs, generation.seeds
        ):
            item = base | {
                "status": "success",
                "videoUUID": video_uuid,
                "videoURL": self.backend.file_url(stored.name),
                "seed": seed,
                "NSFWContent": False,
            }
            if request.get("includeCost") is True:
                item["cost"] = float(generation.cost_usd)
            items.append(item)
        return items, []

    # imageUpload -------------------------------------------------------------------------

    def image_upload(self, task: Mapping[str, Any]) -> tuple[list, list]:
        """Store the image (at most 2048 px on the long side); answer imageUUID and imageURL."""
        errors = _Errors(task)
        _check_task_uuid(task, errors)
        value = task.get("image")
        try:
            if isinstance(value, str) and value.startswith(("http://", "https://")):
                stored = self.backend.local_file(value)
                if stored is None:
                    raise InputError("the simulator cannot fetch outside URLs")
                data = stored.path.read_bytes()
            elif isinstance(value, str) and value:
                data = inline_bytes(value)
            else:
                raise InputError("is required: a data URI, base64 or a URL")
            image = self.backend.image_input(data_uri(data))
        except InputError as exc:
            errors.add("image", f"image {exc}")
        if errors.items:
            return [], errors.items
        image_uuid = str(uuid.uuid4())
        stored = self.backend.put_file(
            _downscaled(image.path.read_bytes()),
            provider=NAME,
            suffix=image.path.suffix,
            content_type="image/" + image.path.suffix[1:],
            name=f"{image_uuid}{image.path.suffix}",
        )
        self._uploads[image_uuid] = stored
        return [
            {
                "taskType": "imageUpload",
                "taskUUID": task.get("taskUUID"),
                "imageUUID": image_uuid,
                "imageURL": self.backend.file_url(stored.name),
            }
        ], []

    # accountManagement -------------------------------------------------------------------

    def account_management(self, task: Mapping[str, Any]) -> tuple[list, list]:
        """`operation: getDetails`: the organization, its `balance` and usage, in the shape of
        the page's example (runware.ai/docs/platform/account-management); team and keys are
        left empty here."""
        errors = _Errors(task)
        _check_task_uuid(task, errors)
        if task.get("operation") != "getDetails":
            errors.add("operation", "operation must be 'getDetails' (the only one documented)")
        if errors.items:
            return [], errors.items
        return [{"taskType": "accountManagement", "taskUUID": task["taskUUID"],
                 "operation": "getDetails",
                 "organizationUUID": "a6379343-9ff2-46a0-996b-e4a7b3057c88",
                 "organizationName": "kling-compose simulator", "balance": float(self.balance),
                 "team": [], "apiKeys": []}], []

    # mediaStorage ------------------------------------------------------------------------

    def media_storage(self, task: Mapping[str, Any]) -> tuple[list, list]:
        """`operation: upload` of any media as a data URI, base64 or URL
        (runware.ai/docs/platform/media-storage): answers mediaUUID and mediaURL, reusable as
        any input (an image, inputs.video, a reference video, an element's voice)."""
        errors = _Errors(task)
        _check_task_uuid(task, errors)
        if task.get("operation") != "upload":
            errors.add("operation", "operation must be 'upload' (the simulator stores only)")
        value = task.get("media")
        data, mime = b"", "application/octet-stream"
        try:
            if isinstance(value, str) and value.startswith(("http://", "https://")):
                stored = self.backend.local_file(value)
                if stored is None:
                    raise InputError("the simulator cannot fetch outside URLs")
                data, mime = stored.path.read_bytes(), stored.content_type
            elif isinstance(value, str) and value:
                data = inline_bytes(value)
                if value.startswith("data:"):
                    mime = value[5:].split(";", 1)[0].split(",", 1)[0] or mime
            else:
                raise InputError("is required: a data URI, base64 or a URL")
        except InputError as exc:
            errors.add("media", f"media {exc}")
        if errors.items:
            return [], errors.items
        media_uuid = str(uuid.uuid4())
        suffix = _MEDIA_SUFFIXES.get(mime, ".bin")
        stored = self.backend.put_file(
            data, provider=NAME, suffix=suffix, content_type=mime, name=f"{media_uuid}{suffix}"
        )
        self._uploads[media_uuid] = stored
        return [
            {
                "taskType": "mediaStorage",
                "taskUUID": task.get("taskUUID"),
                "operation": "upload",
                "mediaUUID": media_uuid,
                "mediaURL": self.backend.file_url(stored.name),
            }
        ], []

    def uploaded(self, image_uuid: str) -> StoredFile | None:
        """The image uploaded under `image_uuid`, or None."""
        return self._uploads.get(image_uuid.lower())

    def video_file(self, value: str) -> StoredFile | None:
        """The served video a UUID (a videoUUID of a generation) or a simulator URL points at."""
        if value.startswith(("http://", "https://")):
            return self.backend.local_file(value)
        stored = self.backend.file(f"{value.lower()}.mp4") or self._uploads.get(value.lower())
        if stored is None:
            raise InputError(f"unknown video UUID {value}")
        return stored


class _VideoCheck:
    """Validates one videoInference task against its model's rules and builds the clip plan."""

    def __init__(self, runware: Runware, task: Mapping[str, Any], errors: _Errors) -> None:
        self.runware = runware
        self.task = task
        self.errors = errors
        self.inputs: Mapping[str, Any] = {}
        self.settings: Mapping[str, Any] = {}

    def run(self) -> tuple[ClipPlan, str, Decimal]:
        """(clip plan, prompt text, per-result cost); raises _Invalid when it cannot go on."""
        task, add = self.task, self.errors.add
        model = task.get("model")
        rules = MODELS.get(model) if isinstance(model, str) else None
        if rules is None:
            add("model", f"model must be one of {sorted(MODELS)}, got {task.get('model')!r}")
            raise _Invalid
        self.rules = rules
        _check_task_uuid(task, self.errors)
        for key in sorted(set(task) - rules.keys):
            add(key, f"unknown parameter {key!r} for {task['model']}", "unknownParameter")
        self._options()
        self.inputs = self._mapping(task, "inputs", rules.input_keys, "inputs")
        provider_settings = self._mapping(
            task, "providerSettings", frozenset({"klingai"}), "providerSettings"
        )
        self.settings = self._mapping(
            provider_settings, "klingai", rules.settings_keys, "providerSettings.klingai"
        )
        duration = self._duration()
        prompt = self._prompts(duration)
        frames = self._frames()
        source = self._video()
        self._size(frames, source)
        references = self._strings("referenceImages", image=True)
        self._strings("referenceVideos", image=False)
        self._elements(frames)
        self._compatibility(references)
        self._settings()
        if self.errors.items:
            raise _Invalid
        return self._plan(duration, prompt, frames, source)

    # single fields -----------------------------------------------------------------------

    def _options(self) -> None:
        task, add = self.task, self.errors.add
        if task.get("deliveryMethod", "async") != "async":
            add(
                "deliveryMethod",
                "deliveryMethod must be 'async': the Kling models allow only async",
            )
        if task.get("outputType", "URL") != "URL":
            add("outputType", "outputType must be 'URL'")
        if task.get("outputFormat", "MP4") not in ("MP4", "WEBM", "MOV"):
            add("outputFormat", "outputFormat must be one of MP4, WEBM, MOV")
        _int_range(task, "outputQuality", 20, 99, self.errors)
        _int_range(task, "ttl", 60, None, self.errors)
        _int_range(task, "numberResults", *self.rules.number_results, self.errors)
        _int_range(task, "seed", 0, None, self.errors)
        if "includeCost" in task and not isinstance(task["includeCost"], bool):
            add("includeCost", "includeCost must be a boolean")
        if "routing" in task and not isinstance(task["routing"], dict):
            add("routing", "routing must be an object")

    def _mapping(self, parent: Mapping, key: str, allowed: frozenset[str], where: str) -> Mapping:
        value = parent.get(key, {})
        if not isinstance(value, dict):
            self.errors.add(where, f"{where} must be an object")
            return {}
        for unknown in sorted(set(value) - allowed):
            self.errors.add(
                f"{where}.{unknown}", f"unknown parameter {where}.{unknown}", "unknownParameter"
            )
        return value

    def _duration(self) -> int | None:
        task = self.task
        if "duration" not in task:
            return None
        value = task["duration"]
        if not _is_int(value) or not 3 <= value <= 15:
            self.errors.add("duration", f"duration must be an integer from 3 to 15, got {value!r}")
            return None
        return value

    def _prompts(self, duration: int | None) -> str:
        task, add = self.task, self.errors.add
        segments = self.settings.get("multiPrompt")
        has_prompt = "positivePrompt" in task
        if not self.rules.omni and not has_prompt:
            add("positivePrompt", "positivePrompt is required")
        if self.rules.omni and has_prompt == (segments is not None):
            add(
                "positivePrompt",
                "Provide exactly one of: positivePrompt, providerSettings.klingai.multiPrompt",
            )
        texts = []
        if has_prompt:
            texts.append(_text(task, "positivePrompt", "positivePrompt", self.errors))
        if "negativePrompt" in task:
            _text(task, "negativePrompt", "negativePrompt", self.errors)
        if segments is not None:
            texts += self._multi_prompt(segments, duration)
        return "\n".join(t for t in texts if t)

    def _multi_prompt(self, segments: Any, duration: int | None) -> list[str]:
        where = "providerSettings.klingai.multiPrompt"
        add = self.errors.add
        if not isinstance(segments, list) or not 1 <= len(segments) <= 6:
            add(where, "multiPrompt must be a list of 1 to 6 segments")
            return []
        texts, total = [], 0
        for i, segment in enumerate(segments):
            if not isinstance(segment, dict):
                add(f"{where}[{i}]", "a multiPrompt segment must be an object {prompt, duration}")
                continue
            texts.append(_text(segment, "prompt", f"{where}[{i}].prompt", self.errors))
            seconds = segment.get("duration")
            if not _is_int(seconds) or seconds < 1:
                add(
                    f"{where}[{i}].duration",
                    f"segment duration must be an integer >= 1, got {seconds!r}",
                )
            else:
                total += seconds
        expected = duration if duration is not None else DEFAULT_DURATION_S
        if total != expected and len(texts) == len(segments):
            add(
                where, f"the multiPrompt durations add up to {total} s but duration is {expected} s"
            )
        return texts

    # inputs ------------------------------------------------------------------------------

    def _image(self, value: Any, where: str) -> ImageInput | None:
        try:
            return self.runware.backend.image_input(value, self.runware.uploaded)
        except InputError as exc:
            self.errors.add(where, f"{where} {exc}")
            return None

    def _frames(self) -> dict[str, ImageInput | None]:
        frames = self.inputs.get("frameImages")
        where = "inputs.frameImages"
        if frames is None:
            return {}
        if not isinstance(frames, list) or not 1 <= len(frames) <= 2:
            self.errors.add(where, "frameImages must hold 1 or 2 items")
            return {}
        positions: dict[str, ImageInput | None] = {}
        for i, item in enumerate(frames):
            if isinstance(item, str) and self.rules.omni:  # seed 003: Format 1, string[]
                item = {"image": item}
            if not isinstance(item, dict) or "image" not in item:
                self.errors.add(f"{where}[{i}]", "a frame image must be an object with an image")
                continue
            default = "first" if i == 0 else "last"
            frame = item.get("frame", default)
            position = _FRAME_POSITIONS.get(frame) if isinstance(frame, (str, int)) else None
            if position is None:
                self.errors.add(f"{where}[{i}].frame", "frame must be first, last, 0 or -1")
                continue
            if position in positions:
                self.errors.add(f"{where}[{i}].frame", f"two frame images for the {position} frame")
                continue
            if position not in self.rules.frames:
                self.errors.add(f"{where}[{i}].frame", f"{self.task.get('model')} takes "
                                f"{' and '.join(self.rules.frames)} frame images only")
                continue
            positions[position] = self._image(item["image"], f"{where}[{i}].image")
        return positions

    def _video(self) -> StoredFile | str | None:
        value = self.inputs.get("video")
        if value is None:
            return None
        try:
            if not isinstance(value, str) or value.startswith("data:"):
                raise InputError("must be a video UUID or URL")
            return self.runware.video_file(value) or value
        except InputError as exc:
            self.errors.add("inputs.video", f"inputs.video {exc}")
            return None

    def _size(self, frames: Mapping, source: Any) -> None:
        task, add = self.task, self.errors.add
        has_w, has_h = "width" in task, "height" in task
        if has_w != has_h:
            add("width" if has_w else "height", "width and height must be used together")
        sized = has_w and has_h
        chosen = [
            name
            for name, present in (
                ("inputs.frameImages", "frameImages" in self.inputs),
                ("inputs.video", "video" in self.inputs),
                ("width/height", sized),
            )
            if present
        ]
        if len(chosen) != 1:
            options = (
                "inputs.frameImages or inputs.video or width/height"
                if self.rules.omni
                else ("inputs.frameImages or width/height")
            )
            add(
                chosen[0] if len(chosen) > 1 else "width",
                f"Provide exactly one of: {options} (got {' and '.join(chosen) or 'none'})",
            )
        if not sized:
            return
        width, height = task["width"], task["height"]
        if not (_is_int(width) and _is_int(height)) or width <= 0 or height <= 0:
            add("width", f"width and height must be positive integers, got {width!r}x{height!r}")
        elif self.rules.sizes is not None and (width, height) not in self.rules.sizes:
            # the models' dimension tables; a third-party client reports Runware's
            # `unsupportedDimensions` for any other size, with the supported ones listed
            allowed = ", ".join(f"'{w}x{h}'" for w, h in sorted(self.rules.sizes))
            add("width", f"The dimensions {width}x{height} are not supported. Supported "
                f"dimensions are: {allowed}.", "unsupportedDimensions")

    def _strings(self, key: str, *, image: bool) -> list:
        values = self.inputs.get(key)
        where = f"inputs.{key}"
        if values is None:
            return []
        if not isinstance(values, list) or not values:
            self.errors.add(where, f"{key} must be a non-empty list")
            return []
        if image:
            return [self._image(v, f"{where}[{i}]") for i, v in enumerate(values)]
        for i, value in enumerate(values):
            if not isinstance(value, str) or value.startswith("data:"):
                self.errors.add(f"{where}[{i}]", f"{where}[{i}] must be a UUID or URL")
        return values

    def _elements(self, frames: Mapping) -> None:
        elements = self.inputs.get("elements")
        where = "inputs.elements"
        count = 0
        if elements is not None:
            if not isinstance(elements, list) or not 1 <= len(elements) <= 3:
                self.errors.add(where, "elements must hold 1 to 3 items")
            else:
                count = len(elements)
                for i, element in enumerate(elements):
                    self._element(element, f"{where}[{i}]")
            if not self.rules.omni and "frameImages" not in self.inputs:
                # Runware 3.0 Pro page (provider reference): elements need frameImages
                self.errors.add(
                    where, "When inputs.elements is provided, inputs.frameImages is required"
                )
        self._element_refs(count)

    def _element(self, element: Any, where: str) -> None:
        add = self.errors.add
        if not isinstance(element, dict):
            add(where, "an element must be an object")
            return
        if not isinstance(element.get("id"), str) or not element["id"]:
            add(f"{where}.id", "element id is required")
        images = element.get("images")
        if images is not None:
            if not isinstance(images, list) or not 1 <= len(images) <= 3:
                add(f"{where}.images", "element images must hold 1 to 3 items")
            elif "frontalImage" not in element:
                add(f"{where}.images", "element images require frontalImage")
            else:
                for i, value in enumerate(images):
                    self._image(value, f"{where}.images[{i}]")
        if "frontalImage" in element:
            self._image(element["frontalImage"], f"{where}.frontalImage")
        has_images = "frontalImage" in element or images is not None
        if "videos" in element:
            if has_images or "voices" in element:
                add(f"{where}.videos", "element videos cannot be combined with images or voices")
            elif not isinstance(element["videos"], list) or len(element["videos"]) != 1:
                add(f"{where}.videos", "element videos must hold exactly 1 item")
        if "voices" in element and not has_images and "videos" not in element:
            add(f"{where}.voices", "element voices can only be combined with images")

    def _element_refs(self, count: int) -> None:
        texts = [("positivePrompt", self.task.get("positivePrompt"))]
        segments = self.settings.get("multiPrompt")
        for i, segment in enumerate(segments if isinstance(segments, list) else []):
            if isinstance(segment, dict):
                texts.append(
                    (f"providerSettings.klingai.multiPrompt[{i}].prompt", segment.get("prompt"))
                )
        for where, text in texts:
            for number in _ELEMENT_REF.findall(text if isinstance(text, str) else ""):
                if not 1 <= int(number) <= count:
                    self.errors.add(
                        where,
                        f"<<<element_{number}>>> refers to element {number} "
                        f"but inputs.elements has {count}",
                        "invalidElements",
                    )

    # cross-field rules -------------------------------------------------------------------

    def _compatibility(self, references: list) -> None:
        """The compatibility rules of the model pages (O3: seeds 003/004, which the seed
        examples also follow; 3.0 Standard; 3.0 Turbo)."""
        inputs, task, add = self.inputs, self.task, self.errors.add
        excluding = self.rules.no_settings_with
        if "providerSettings" in task and any(k in inputs for k in excluding):
            named = " or ".join(f"inputs.{k}" for k in excluding)
            add("providerSettings",
                f"When {named} is provided, providerSettings cannot be used")  # fmt: skip
        self._resolution()
        if self.rules.negative_needs_frames and "negativePrompt" in task \
                and "frameImages" not in inputs:
            add("negativePrompt",
                "When negativePrompt is provided, inputs.frameImages is required")  # fmt: skip
        if not self.rules.omni:
            return
        video, ref_videos = "video" in inputs, "referenceVideos" in inputs
        if video and ref_videos:
            add("inputs.video", "Inside inputs, video cannot be used with referenceVideos")
        if video and "duration" in task:
            add("duration", "inputs.video cannot be used with duration")
        if video and "elements" in inputs:
            add("inputs.elements", "When inputs.video is provided, inputs.elements cannot be used")
        if (video or ref_videos) and len(references) > 4:
            add(
                "inputs.referenceImages",
                "When inputs.video or inputs.referenceVideos is provided, "
                "inputs.referenceImages is limited to 4 items",
            )

    def _resolution(self) -> None:
        """`resolution`: one of the model's values, with the input it needs (O3: inputs.video;
        Turbo: inputs.frameImages), never with width/height (the Turbo page)."""
        task, add = self.task, self.errors.add
        if "resolution" not in task:
            return
        allowed = sorted(self.rules.resolutions)
        if not allowed:
            return  # not a parameter of this model: `unknownParameter` says so
        if task["resolution"] not in allowed:
            add("resolution", "resolution must be " + " or ".join(f"'{r}'" for r in allowed))
        needs = self.rules.resolution_needs
        if needs not in self.inputs:
            add("resolution", f"When resolution is provided, inputs.{needs} is required")
        if "width" in task or "height" in task:
            add("resolution", "resolution cannot be used with width/height")

    def tier(self) -> str | None:
        """The resolution a task is made at, where the model bills by it (Turbo): its
        `resolution`, else the table its width x height is in, else the dearest one (a frame
        without `resolution`: the stricter bill)."""
        prices = self.rules.resolution_prices
        if not prices:
            return None
        task = self.task
        if task.get("resolution") in prices:
            return task["resolution"]
        size = (task.get("width"), task.get("height"))
        for name, sizes in self.rules.resolutions.items():
            if size in sizes:
                return name
        return max(prices, key=lambda name: prices[name])

    def _settings(self) -> None:
        settings, add = self.settings, self.errors.add
        where = "providerSettings.klingai"
        for key in ("sound", "keepOriginalSound"):
            if key in settings and not isinstance(settings[key], bool):
                add(f"{where}.{key}", f"{key} must be a boolean")
        if settings.get("characterOrientation", "image") not in ("image", "video"):
            add(f"{where}.characterOrientation", "characterOrientation must be image or video")

    # the result --------------------------------------------------------------------------

    def _plan(self, duration: int | None, prompt: str, frames: Mapping, source: Any) -> tuple:
        task = self.task
        audio = self.settings.get("sound") is True or self.rules.always_audio
        width, height = task.get("width"), task.get("height")
        first = frames.get("first")
        seconds = duration or DEFAULT_DURATION_S
        if isinstance(source, StoredFile):
            seconds, (width, height), frame = video_facts(source.path)
            first = self._frame_input(frame)
        elif source is not None:
            seconds = EXTERNAL_VIDEO_S
        plan = ClipPlan(
            duration_s=float(seconds),
            width=width,
            height=height,
            audio=audio,
            first_image=first if first and first.path else None,
            last_image=frames.get("last") if frames.get("last") and frames["last"].path else None,
            title=f"runware {task.get('taskUUID', '')[:8]}",
            caption=prompt,
        )
        # "video input" is inputs.video, inputs.referenceVideos or an element's videos (the O3
        # pages' price tiers, as docs/providers.md reads them); a tier a model does not price
        # falls back to the dearest one that applies (the stricter reading of a bill)
        elements = self.inputs.get("elements")
        elements = elements if isinstance(elements, list) else []
        video_input = source is not None or bool(self.inputs.get("referenceVideos")) or any(
            isinstance(e, dict) and e.get("videos") for e in elements)
        tiers = ["silent"] + ["audio"] * audio + ["video"] * video_input
        tier = self.tier()
        rate = self.rules.resolution_prices[tier] if tier is not None else \
            max(self.rules.prices[t] for t in tiers if t in self.rules.prices)
        cost = (rate * round(seconds)).quantize(Decimal("0.001"))
        return plan, prompt, cost

    def _frame_input(self, frame: Image.Image | None) -> ImageInput | None:
        if frame is None:
            return None
        buffer = io.BytesIO()
        frame.save(buffer, "PNG")
        return self.runware.backend.image_input(data_uri(buffer.getvalue()))


# helpers -------------------------------------------------------------------------------


def request_kind(request: Request) -> str:
    """submit, poll or upload: what the first non-authentication task of the array is."""
    kinds = {"videoInference": "submit", "getResponse": "poll", "imageUpload": "upload",
             "mediaStorage": "upload", "accountManagement": "account"}
    for task in _tasks(request) or []:
        if task.get("taskType") in kinds:
            return kinds[task["taskType"]]
    return "submit"


_MEDIA_SUFFIXES = {
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "audio/mpeg": ".mp3",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
}


def _tasks(request: Request) -> list[dict] | None:
    try:
        tasks = request.json()
    except ValueError:
        return None
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        return None
    return tasks


def _auth_task_key(request: Request) -> str:
    tasks = _tasks(request) or []
    if tasks and tasks[0].get("taskType") == "authentication":
        key = tasks[0].get("apiKey")
        return key if isinstance(key, str) else ""
    return ""


def error_item(code: str, message: str, parameter: str, task: Mapping[str, Any]) -> dict:
    """One `errors[]` entry in Runware's shape."""
    item = {"code": code, "message": message, "parameter": parameter}
    if "taskType" in task:
        item["taskType"] = task["taskType"]
    if "taskUUID" in task:
        item["taskUUID"] = task["taskUUID"]
    return item


def invalid_code(parameter: str) -> str:
    """`invalid` + the last path segment: inputs.frameImages[0] -> invalidFrameImages."""
    last = re.sub(r"\[\d+\]", "", parameter).split(".")[-1].split("/")[0]
    return "invalid" + last[:1].upper() + last[1:]


def data_uri(data: bytes) -> str:
    """A data URI wrapping `data` (the MIME type is not checked by the simulator)."""
    import base64

    return "data:application/octet-stream;base64," + base64.b64encode(data).decode("ascii")


def _check_task_uuid(task: Mapping[str, Any], errors: _Errors) -> None:
    value = task.get("taskUUID")
    try:
        ok = (
            isinstance(value, str)
            and uuid.UUID(value).version == 4
            and str(uuid.UUID(value)) == value.lower()
        )
    except ValueError:
        ok = False
    if not ok:
        errors.add("taskUUID", f"taskUUID must be a UUID v4, got {value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_range(task: Mapping, key: str, low: int, high: int | None, errors: _Errors) -> None:
    if key not in task:
        return
    value = task[key]
    if not _is_int(value) or value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f">= {low}"
        errors.add(key, f"{key} must be an integer {bounds}, got {value!r}")


def _text(parent: Mapping, key: str, where: str, errors: _Errors) -> str:
    value = parent.get(key)
    if not isinstance(value, str) or not 2 <= len(value) <= 2500:
        size = len(value) if isinstance(value, str) else type(value).__name__
        errors.add(where, f"{where} must be a string of 2 to 2500 characters, got {size}")
        return ""
    return value


def _downscaled(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as img:
        if max(img.size) <= MAX_UPLOAD_SIDE:
            return data
        fmt = img.format
        img.thumbnail((MAX_UPLOAD_SIDE, MAX_UPLOAD_SIDE))
        out = io.BytesIO()
        img.save(out, fmt)
        return out.getvalue()


def _status(data: list, errors: list) -> int:
    if not errors or data:
        return 200
    if all(e.get("code") == "taskNotFound" for e in errors):
        return 404
    return 400


def _envelope(data: list, errors: list) -> dict:
    body: dict[str, Any] = {}
    if data:
        body["data"] = data
    if errors:
        body["errors"] = errors
    return body
