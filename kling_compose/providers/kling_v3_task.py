"""The task-style API with model `kling/v3` (seed 002): capability data and one class.

Seed 002 names the fields (`multi_shots`, `prompt`, `shot_type`, `multi_prompt`, `img_urls`,
`aspect_ratio`, `audio`, `element_list`, `callback_url`) and the rules, but shows no request
body. The envelope `{"model", "input": {...}}`, string durations, `mode` and the element item
`{name, description, element_input_urls}` follow the kie.ai template the page matches (see
docs/providers.md); `provider_options` can override any of them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, Mapping

from . import dialogue, rules
from ..errors import Diagnostic
from ..model import Element, Prompt, ResolvedShot
from .base import (
    Capabilities,
    Credential,
    Declared,
    Handle,
    Job,
    ModelSpec,
    ProviderSpec,
    Ref,
    Status,
)

if TYPE_CHECKING:
    import httpx

_SOURCE = "the kling/v3 task API documentation"

MODELS: Mapping[str, ModelSpec] = {
    "kling-3-pro": ModelSpec(
        alias="kling-3-pro",
        model_id="kling/v3",  # seed 002: "Must be kling/v3 for this endpoint"
        source=_SOURCE,
        durations_s=(3, 15),  # seed 002: "between 3 and 15 seconds"
        prompt_chars=(2, 2500),  # product brief (seed 002 gives no bounds)
        sizes=None,  # the API takes an aspect ratio
        aspects=("16:9", "9:16", "1:1"),  # kie.ai template (seed 002 shows no values)
        frame_images=(1, 2),  # seed 002: single-shot img_urls: 1 start frame or 2 first/last
        max_elements=3,  # seed 002: element_list supports up to 3 elements
        max_element_images=3,  # seed 002: 1 to 4 reference images = frontal + 3
        takes=(1, 1),  # one video per task
        quality=None,
        cfg_scale=None,
        multi_prompt_segments=6,  # seed 002: "up to 6 shots, with a minimum of 1 second"
        supports=frozenset(
            {"multi_prompt", "duration", "size", "aspect", "audio", "first_frame",
             "last_frame", "elements"}
        ),  # fmt: skip
        prices={},  # seed 002 bills in credits and publishes no price
    ),
}

MODE = "pro"  # seed 002: "Supports standard/pro modes"; the alias is the Pro model
ELEMENT_IMAGES = (1, 4)  # seed 002: "each element accepts 1 to 4 reference images"

# seed 002 documents URLs only.
ACCEPTED_KINDS: Mapping[str, frozenset[str]] = {"image": frozenset({"url"})}

# -- run time: the task API (seed 002; kie.ai's Market API shape, providers reference section 3) --

_RETRY_CODES = frozenset({429, 455, 500})  # seed 002: rate limited, maintenance, server error


def _answer(response) -> dict:
    """The envelope; its body `code` (not only the HTTP status) says what happened."""
    from .base import (
        ProviderError,
        TransientError,
        json_answer,
        raise_for_status,
        retry_after_s,
    )

    data = json_answer(response, "kling-v3-task")
    code = data.get("code") if isinstance(data, dict) else None
    message = (data.get("msg") or data.get("message")) if isinstance(data, dict) else None
    if code in _RETRY_CODES:
        raise TransientError(f"kling-v3-task answered code {code}: {message}",
                             retry_after_s(response))
    raise_for_status(response, "kling-v3-task", message)
    if code != 200:
        hint = " (check KLING_V3_TASK_API_KEY)" if code == 401 else ""
        raise ProviderError(f"kling-v3-task refused the request: code {code}: {message}{hint}")
    return data


SPEC = ProviderSpec(
    name="kling-v3-task",
    key_variables=("KLING_V3_TASK_API_KEY",),
    # seed 002 names no host: its dialect is spoken by no known host
    endpoints=(("kling-v3-task", None),),
    capabilities=Capabilities(
        local_inputs=False,  # seed 002 documents URLs only: no upload, no inline data
        inline_media=frozenset(),
        lost_answer="ask",  # the server assigns taskId and has no lookup: the user is asked
        batch_poll=False,  # recordInfo takes one taskId
    ),
    models=MODELS,
)


class TaskQueue(Declared):
    """createTask (the server assigns taskId), then recordInfo until the state is success or
    fail."""

    def submit_request(self, job: Job | None, request: Mapping[str, Any], task_id: str,
                       base_url: str, key: Credential) -> httpx.Request:
        import httpx

        return httpx.Request("POST", f"{base_url}/api/v1/jobs/createTask", json=dict(request),
                             headers={"x-api-key": key.reveal()})

    def read_submit(self, response: httpx.Response, task_id: str) -> Handle:
        """The taskId; LostAnswer when a server error leaves open whether the task was made
        (seed 002's code 500 "Server Error", or a gateway's 500/502/504 without a code)."""
        from .base import Handle, LostAnswer

        try:
            body = response.json()
        except ValueError:
            body = None
        code = body.get("code") if isinstance(body, dict) else None
        status = response.status_code
        if code in _SUBMIT_LOST_CODES or (code is None and status in _SUBMIT_LOST_STATUS):
            shown = f"code {code}" if code is not None else f"HTTP {status}"
            raise LostAnswer(f"kling-v3-task answered {shown} to the submission")
        data = _answer(response).get("data")
        found = data.get("taskId") if isinstance(data, dict) else None
        if isinstance(found, bool) or not isinstance(found, (str, int)) or str(found) == "":
            # code 200: the task was made (and may be billed); refused, the next run would
            # send it again
            raise LostAnswer("kling-v3-task accepted the task but its answer has no "
                             "data.taskId")
        return Handle(str(found))

    def poll_request(self, handle: Handle, base_url: str, key: Credential) -> httpx.Request:
        import httpx

        return httpx.Request("GET", f"{base_url}/api/v1/jobs/recordInfo",
                             params={"taskId": handle.task_id}, headers={"x-api-key": key.reveal()})

    def read_status(self, response: httpx.Response, handle: Handle, takes: int) -> Status:
        """waiting / queuing / generating wait; success gives resultJson's resultUrls; fail
        gives failCode and failMsg. A malformed answer about the task is `invalid` (it may be
        paid for: never recorded as failed, never sent again by itself)."""
        from .base import Result, Status

        data = _answer(response).get("data")
        if not isinstance(data, dict):
            return Status("invalid", message="kling-v3-task answered the task query without "
                                             "a data object")
        state = data.get("state")
        if not isinstance(state, str):
            return Status("invalid", message=f"kling-v3-task answered data.state {state!r:.40}")
        if state == "success":
            urls, problem = _result_urls(data.get("resultJson"), takes)
            if problem:
                return Status("invalid", message=f"kling-v3-task reported success, but {problem}")
            return Status("done", tuple(Result(u) for u in urls))
        if state == "fail":
            code, message = data.get("failCode"), data.get("failMsg") or "generation failed"
            return Status("failed", message=f"{code}: {message}" if code else str(message))
        # waiting | queuing | generating (an unknown state waits)
        return Status("processing", detail="generating" if state == "generating" else "queued"
                      if state in ("waiting", "queuing") else None)


_SUBMIT_LOST_CODES = frozenset({500})  # seed 002: "Server Error"
_SUBMIT_LOST_STATUS = frozenset({500, 502, 504})  # a gateway's error page, no code


def _result_urls(result: Any, takes: int) -> tuple[list[str], str | None]:
    """The first `takes` result URLs of `resultJson` (a JSON string holding `{"resultUrls":
    [...]}`; an object is read too), or the field that is malformed."""
    import json

    from .base import answer_url

    if isinstance(result, str):
        try:
            result = json.loads(result) if result.strip() else None
        except ValueError:
            return [], "data.resultJson is not JSON"
    if result is None:
        return [], "data.resultJson is empty"
    urls = result.get("resultUrls") if isinstance(result, dict) else None
    if not isinstance(urls, list) or not urls:
        return [], "data.resultJson has no resultUrls list"
    taken = urls[: max(1, takes)]
    for n, url in enumerate(taken):
        if answer_url(url) is None:
            return [], f"data.resultJson.resultUrls[{n}] is not an http(s) URL ({url!r:.60})"
    return list(taken), None


class KlingV3TaskProvider(TaskQueue):
    """Builds `createTask` bodies for model `kling/v3`; the price is unknown."""

    spec = SPEC

    def check(self, shot: ResolvedShot, spec: ModelSpec) -> list[Diagnostic]:
        diags = rules.check_source_kinds(shot, self.name, ACCEPTED_KINDS)
        diags += _check_elements(shot)
        diags += _check_shot_mode(shot)
        diags += dialogue.prompt_only(shot, self.name, "seed 002 documents no voice field",
                                      dialogue.voiced(shot))
        return diags

    def prompt_text(self, shot: ResolvedShot, prompt: Prompt) -> str:
        """The prompt as sent: `@name` stays `@name` (seed 002: `@element_name`); its lines
        follow, `[@name, tone]: "words"` (providers/dialogue.py)."""
        text = prompt.render(lambda name: "@" + name)
        speaker = dialogue.speaker_of(shot, lambda n, e: "@" + e.name)
        return dialogue.spoken(text, dialogue.lines_of(shot, prompt), speaker)

    def payload(self, shot: ResolvedShot, spec: ModelSpec, ref: Ref) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        prompt = dialogue.main_prompt(shot)
        if prompt is not None:
            fields["prompt"] = self.prompt_text(shot, prompt)
        fields["multi_shots"] = bool(shot.multi_prompt)  # seed 002: required on every request
        if shot.multi_prompt:
            fields["shot_type"] = "customize"
            fields["multi_prompt"] = [
                {"prompt": self.prompt_text(shot, seg.prompt), "duration": seg.duration_s}
                for seg in shot.multi_prompt
            ]
        duration = rules.effective_duration(shot)
        if duration is not None:
            fields["duration"] = str(duration)
        aspect = _aspect_ratio(shot)
        if aspect is not None:
            fields["aspect_ratio"] = aspect
        fields["mode"] = MODE
        if shot.audio is not None:
            fields["audio"] = shot.audio
        frames = [f for f in (shot.first_frame, shot.last_frame) if f is not None]
        if frames:
            fields["img_urls"] = [ref(f, "image") for f in frames]
        if shot.elements:
            fields["element_list"] = [element_body(e, ref) for e in shot.elements]
        return {"model": spec.model_id, "input": fields}

    def cost(
        self, shot: ResolvedShot, spec: ModelSpec, payload: Mapping[str, Any]
    ) -> Decimal | None:
        return None

    def cost_note(
        self, shot: ResolvedShot, spec: ModelSpec, payload: Mapping[str, Any]
    ) -> str | None:
        return "the kling/v3 task API bills in credits and publishes no USD price"


def element_body(element: Element, ref: Ref) -> dict[str, Any]:
    """An `element_list[]` item: {name, description, element_input_urls}."""
    body: dict[str, Any] = {"name": element.name}
    if element.description:
        body["description"] = element.description
    images = [element.frontal_image] if element.frontal_image is not None else []
    body["element_input_urls"] = [ref(s, "image") for s in images + list(element.images)]
    return body


def _aspect_ratio(shot: ResolvedShot) -> str | None:
    if shot.first_frame is not None or shot.last_frame is not None:
        return None  # seed 002: with img_urls, aspect_ratio is ignored
    if shot.size is not None:
        return rules.aspect_of(shot.size)
    return shot.aspect


def shot_mode(shot: ResolvedShot) -> tuple[bool, str | None]:
    """(multi_shots, shot_type) as sent, after provider_options."""
    options = shot.provider_options.get("input", {})
    multi = bool(options.get("multi_shots", bool(shot.multi_prompt)))
    shot_type = options.get("shot_type", "customize")  # seed 002 names no default
    return multi, shot_type if multi else None


def _check_shot_mode(shot: ResolvedShot) -> list[Diagnostic]:
    multi, shot_type = shot_mode(shot)
    if not multi:
        return []
    where = shot.where("multi_prompt" if shot.multi_prompt else "provider_options")
    diags = []
    if shot_type == "customize" and not shot.multi_prompt:
        diags.append(Diagnostic(
            "shot_type customize needs a multi_prompt", where,
            "the kling/v3 task API: when multi_shots=true and shot_type=customize, "
            "multi_prompt is required",
        ))  # fmt: skip
    if shot_type == "intelligence" and (shot.prompt is None or shot.multi_prompt):
        diags.append(Diagnostic(
            "shot_type intelligence needs a prompt and no multi_prompt", where,
            "the kling/v3 task API: when shot_type=intelligence, prompt is required and "
            "multi_prompt "
            "should not be provided",
        ))  # fmt: skip
    # a last_frame with a multi_prompt is rules.check_multi_prompt_frames' error (one message)
    lone_last = shot.last_frame is not None and not shot.multi_prompt
    if shot.first_frame is None or lone_last:
        diags.append(Diagnostic(
            "a multi-shot generation needs exactly one image: a first_frame and no last_frame",
            shot.where("last_frame") if lone_last else where,
            "the kling/v3 task API: when multi_shots is true, img_urls must contain exactly "
            "1 image",
        ))  # fmt: skip
    if shot.audio is False:
        diags.append(Diagnostic(
            "audio: false is overridden: multi-shot generations always have audio",
            shot.where("audio"),
            "the kling/v3 task API: audio is forced to true in multi-shot mode",
            severity="warning",
        ))  # fmt: skip
    return diags


def _check_elements(shot: ResolvedShot) -> list[Diagnostic]:
    low, high = ELEMENT_IMAGES
    diags = []
    for e in shot.elements:
        where = e.location or shot.where("elements")
        if e.videos or e.voices:
            diags.append(Diagnostic(
                f"element '{e.name}' has videos or voices; kling-v3-task elements take images",
                where,
                "the kling/v3 task API: element_list elements accept 1 to 4 reference images",
            ))  # fmt: skip
        count = len(e.images) + (e.frontal_image is not None)
        if count < low:
            diags.append(Diagnostic(
                f"element '{e.name}' has no image; kling-v3-task needs {low}-{high}",
                where,
                "add a frontal_image",
            ))  # fmt: skip
    return diags

