"""The official Kling API on the wire: the token, the requests the engine sends, the answers
it reads (API docs: "API Authentication", "Error Code", the task and element endpoints and
their queries), and the provider's spec."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..base import (
    Account,
    Capabilities,
    Credential,
    Declared,
    Handle,
    Job,
    ProviderSpec,
    Status,
    UrlOf,
)
from .models import MODELS, NAME, OMNI_MODEL, UNIT_USD, VOICES

if TYPE_CHECKING:
    import httpx

PATHS: Mapping[str, str] = {
    "text2video": "/v1/videos/text2video",
    "image2video": "/v1/videos/image2video",
    "omni-video": "/v1/videos/omni-video",
    "element": "/v1/general/advanced-custom-elements",
    "voice": "/v1/general/custom-voices",  # custom voices (docs/providers.md, "Dialogue ...")
}


def endpoint(request: Mapping[str, Any]) -> str:
    """Which endpoint takes `request` (a key of PATHS): an element's body names one; omni by
    its model; image-to-video when a first or last frame is sent."""
    if "element_name" in request or "reference_type" in request:
        return "element"
    if "voice_name" in request or "voice_url" in request:
        return "voice"
    if request.get("model_name") == OMNI_MODEL:
        return "omni-video"
    return "image2video" if "image" in request or "image_tail" in request else "text2video"


# sign_token reads these here (a test shortens the lifetime: patch kling.api, not kling)
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
    from ..base import TRANSIENT_STATUS, ProviderError, TransientError, retry_after_s

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
        # custom voices (`voice_request`), bound to their elements (`element_voice_id`); at
        # most 2 per generation (voice_list: "can reference up to 2 voices at most")
        creates_voices=True,
        voices_per_task=VOICES,
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
        from ..base import Handle, LostAnswer

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
        from ..base import Handle, ProviderError

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
        from ..base import Handle

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
        from ..base import Status

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
            if handle.extra.get("endpoint") == "voice":
                return _voice_done(data, cost, note)
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
        from ..base import Account

        _judge(response, _body(response), "task list query")
        return Account()


def _what(response) -> str:
    kind = _endpoint_of(response)
    return kind if kind in ("element", "voice") else "generation"


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
    from ..base import read_cost

    amount, note = read_cost(units, NAME)
    return (amount * UNIT_USD if amount is not None else None), note


def _videos_done(data: dict, cost: Decimal | None, note: str | None, takes: int):
    """The finished clips of `task_result.videos[].url`, or `invalid` naming the bad field."""
    from ..base import Result, Status, answer_url

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


def _voice_done(data: dict, cost: Decimal | None, note: str | None = None):
    """A custom voice's "result" is its id: `task_result.voices[0].voice_id` (a string)."""
    from ..base import Result, Status

    result = data.get("task_result")
    voices = result.get("voices") if isinstance(result, dict) else None
    first = voices[0] if isinstance(voices, list) and voices else None
    found = first.get("voice_id") if isinstance(first, dict) else None
    if isinstance(found, bool) or not isinstance(found, (int, str)) or not str(found).strip():
        return Status("invalid", message="kling reported the voice made, but "
                      f"task_result.voices[0].voice_id is {found!r:.40}")
    return Status("done", (Result(str(found), cost_usd=cost, cost_note=note),))


def _element_done(data: dict, cost: Decimal | None, note: str | None = None):
    """An element's "result" is its id (handed on to the generations that name it)."""
    from ..base import Result, Status

    result = data.get("task_result")
    elements = result.get("elements") if isinstance(result, dict) else None
    first = elements[0] if isinstance(elements, list) and elements else None
    found = first.get("element_id") if isinstance(first, dict) else None
    if isinstance(found, bool) or not isinstance(found, (int, str)) or str(found) == "" \
            or not str(found).isdigit():
        return Status("invalid", message="kling reported the element made, but "
                      f"task_result.elements[0].element_id is {found!r:.40}")
    return Status("done", (Result(str(found), cost_usd=cost, cost_note=note),))
