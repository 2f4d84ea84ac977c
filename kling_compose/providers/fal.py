"""fal queue API for the Kling family: capability data and one class.

Tiers (issue 25; docs/kling-family.md gives every source): Kling 3.0 Standard, Pro and 4K
(`fal-ai/kling-video/v3/{standard,pro,4k}`), 3.0 Omni "O3" Standard, Pro and 4K
(`fal-ai/kling-video/o3/...`), 3.0 Turbo Standard and Pro (`fal-ai/kling-video/v3/turbo/...`)
and 4.0 (`fal-ai/kling-video/v4`, providers/fal_v4.py). Sources: seed 001 (fal model page
"Kling Video V3 Pro"), fal's model pages for each tier and fal-js's generated endpoint types
(@fal-ai/client 1.10.1, commit 381105e). The body is the flat model input; which endpoint
receives it depends on the inputs (`endpoint_id`): text-to-video; image-to-video when a start
image is sent; O3's reference-to-video when elements or reference images are.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Mapping

from . import dialogue, fal_v4, rules
from ..errors import Diagnostic
from ..model import Element, Prompt, ResolvedShot
from .base import (
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
    Send,
    Status,
    UrlOf,
    shot_job,
)

if TYPE_CHECKING:
    import httpx

_SOURCE = ("fal's Kling Video V3 Pro page, "
           "fal.ai/docs/model-api-reference/video-generation-api/kling-video-v3-pro")

DEFAULT_DURATION_S = 5  # fal v3 pro: duration default "5"
DEFAULT_AUDIO = True  # seed 001: generate_audio "Default value: true"

MODELS: Mapping[str, ModelSpec] = {
    "kling-3-pro": ModelSpec(
        alias="kling-3-pro",
        model_id="fal-ai/kling-video/v3/pro",  # + "/text-to-video" or "/image-to-video"
        source=_SOURCE,
        durations_s=(3, 15),  # fal v3 pro: duration enum "3".."15"
        prompt_chars=(2, 2500),  # product brief (fal documents no bounds)
        sizes=None,  # fal takes an aspect ratio, not pixels
        aspects=("16:9", "9:16", "1:1"),  # seed 001 / fal: aspect_ratio enum
        # fal takes no resolution: the tier is one (Kling's 3.0 spec: pro "generating 1080P")
        resolutions=("1080p",),
        frame_images=(1, 2),  # fal image-to-video: start_image_url, optional end_image_url
        max_elements=3,  # product brief (fal documents no count)
        max_element_images=3,  # fal: reference_image_urls 1-3
        takes=(1, 1),  # fal has no number of results
        quality=None,  # no output quality setting
        cfg_scale=(0.0, 1.0),  # seed 001 / fal: cfg_scale 0-1, default 0.5
        multi_prompt_segments=6,  # product brief
        # fal-js types (KlingV3MultiPromptElement) say "1".."15", an older OpenAPI copy of the
        # model page 3-15: the stricter, so a shot is never refused after others were paid for
        segment_s=(3, 15),
        supports=frozenset(
            {"multi_prompt", "negative_prompt", "duration", "size", "aspect", "audio",
             "first_frame", "last_frame", "elements", "cfg_scale"}
        ),  # fmt: skip
        # provider reference, fal v3 pro model page: 0.112/s audio off, 0.168/s audio on,
        # "$0.196/s with voice control" (docs/providers.md, "Dialogue and voices")
        prices={"silent": Decimal("0.112"), "audio": Decimal("0.168"),
                "voice": Decimal("0.196")},
    ),
}
# Kling 3.0 Standard (720p): the same inputs and limits as Pro at fal (fal-js 381105e,
# `KlingVideoV3StandardImageToVideoInput` / `TextToVideoInput` have Pro's fields), its own
# endpoint and prices: fal's v3 standard page (fal.ai/models/fal-ai/kling-video/v3/standard/
# text-to-video/llms.txt): $0.084/s audio off, $0.126/s on, $0.154/s with voice control
# (docs/kling-family.md, F1 and F2; issue 25)
MODELS = {
    **MODELS,
    "kling-3-std": replace(
        MODELS["kling-3-pro"], alias="kling-3-std", model_id="fal-ai/kling-video/v3/standard",
        source="fal's Kling Video V3 Standard page, fal.ai/models/fal-ai/kling-video/v3/"
               "standard/text-to-video/llms.txt",
        resolutions=("720p",),  # Kling's 3.0 spec: std "generating 720P"
        prices={"silent": Decimal("0.084"), "audio": Decimal("0.126"),
                "voice": Decimal("0.154")}),
    # Kling 3.0 4K: fal-js 381105e gives it the very type Std and Pro alias
    # (`KlingVideoV34kTextToVideoInput`, `KlingVideoV34kImageToVideoInput`), so Pro's limits.
    # fal's v3 4k pages (fal.ai/models/fal-ai/kling-video/v3/4k/text-to-video/llms.txt and
    # image-to-video/llms.txt): "$0.42 regardless of whether audio is on or off"; the
    # playground's table prices audio "without voice control" only: no voice price is
    # published, so a voice is not bound on 4K (`_VOICE_UNPRICED`; docs/kling-family.md F5, F6)
    "kling-3-4k": replace(
        MODELS["kling-3-pro"], alias="kling-3-4k", model_id="fal-ai/kling-video/v3/4k",
        source="fal's Kling Video V3 4K page, fal.ai/models/fal-ai/kling-video/v3/4k/"
               "text-to-video/llms.txt",
        resolutions=("4k",),  # fal's v3 4k page: "directly outputs professional-grade 4K video"
        prices={"silent": Decimal("0.42"), "audio": Decimal("0.42")}),
}

# Kling 3.0 Omni (O3): three routes per tier, one type each for Standard, Pro and 4K (fal-js
# 381105e: `O3ProTextToVideoInput`, `O3ProImageToVideoInput`, `O3ProReferenceVideoI2VInput`,
# which the Standard and 4K inputs alias). No negative_prompt and no cfg_scale on any route;
# image-to-video takes `image_url` (required) and `end_image_url`, no elements, no
# aspect_ratio; reference-to-video takes start/end images, `image_urls` (@Image1...) and
# `elements`, no frame required. `generate_audio` defaults to false on every O3 route (fal's
# O3 API pages: "default: false"), so it is always sent.
_O3_SOURCE = ("fal's Kling O3 pages, fal.ai/docs/model-api-reference/video-generation-api/"
              "kling-video-o3-standard-reference-to-video")
MODELS = {
    **MODELS,
    "kling-o3-std": ModelSpec(
        alias="kling-o3-std",
        model_id="fal-ai/kling-video/o3/standard",  # + text-to-video | image-to-video |
        # reference-to-video (`endpoint_id`)
        source=_O3_SOURCE,
        durations_s=(3, 15),  # fal-js O3 inputs: duration "3".."15" ("3-15s")
        prompt_chars=(2, 2500),  # as v3: fal documents no bound on O3
        sizes=None,  # an aspect ratio, not pixels
        aspects=("16:9", "9:16", "1:1"),  # fal-js O3ProTextToVideoInput.aspect_ratio
        resolutions=("720p",),  # Kling's 3.0 spec: omni std "720P"; no resolution field
        frame_images=(1, 2),  # image_url / start_image_url, optional end_image_url
        # fal documents no element count on O3; Kling's omni-video takes at most 3 elements
        # with a first frame (providers/kling/models.py): the stricter
        max_elements=3,
        max_element_images=3,  # the same element type as v3 (KlingV3ComboElementInput): 1-3
        takes=(1, 1),
        quality=None,
        cfg_scale=None,  # no cfg_scale in fal-js's O3 inputs
        multi_prompt_segments=6,  # as v3 (the same KlingV3MultiPromptElement)
        segment_s=(3, 15),  # as v3 (the stricter of fal-js "1".."15" and the OpenAPI 3-15)
        supports=frozenset(
            {"multi_prompt", "duration", "size", "aspect", "audio", "first_frame",
             "last_frame", "reference_images", "elements"}
        ),  # fmt: skip
        # fal's O3 standard image-to-video page: "$0.084 (audio off) or $0.112 (audio on)"
        # (fal.ai/models/fal-ai/kling-video/o3/standard/image-to-video; F7)
        # with a video element: no fal page prices it (the O3 4K reference page: video
        # elements "may be priced under a separate tier"); Kling's own omni std and Runware's
        # O3 Std charge $0.126/s with a video input, sound off (the independent review)
        prices={"silent": Decimal("0.084"), "audio": Decimal("0.112"),
                "video_input": Decimal("0.126")},
    ),
}
MODELS = {
    **MODELS,
    # O3 Pro: no stored fal page gives its price. Secondary sources disagree by 2x: 0.112/0.14
    # (a fal models reference on forgedemy.org; also Kling's own O3 Pro units, 0.8/1.0 x $0.14,
    # and Runware's O3 Pro page) and 0.224/0.28 (a third-party model registry of fal
    # endpoints, the same doubling as fal's own v3 Pro llms.txt against its playground). The
    # estimate takes the higher, so a run never costs more than it was planned at, and says so
    # (`cost_note`; docs/kling-family.md F9, X3)
    "kling-o3-pro": replace(
        MODELS["kling-o3-std"], alias="kling-o3-pro", model_id="fal-ai/kling-video/o3/pro",
        source="fal's Kling O3 Pro pages, fal.ai/docs/model-api-reference/"
               "video-generation-api/kling-video-o3-pro-text-to-video",
        resolutions=("1080p",),  # Kling's 3.0 spec: omni pro "1080P"
        # video input: twice Kling's own 0.168 (the same doubling as the estimate above)
        prices={"silent": Decimal("0.224"), "audio": Decimal("0.28"),
                "video_input": Decimal("0.336")}),
    # O3 4K: "$0.42 regardless of whether audio is on or off" (fal.ai/models/fal-ai/
    # kling-video/o3/4k/text-to-video/llms.txt, reference-to-video/llms.txt; F10, F11)
    "kling-o3-4k": replace(
        MODELS["kling-o3-std"], alias="kling-o3-4k", model_id="fal-ai/kling-video/o3/4k",
        source="fal's Kling O3 4K pages, fal.ai/models/fal-ai/kling-video/o3/4k/"
               "reference-to-video/llms.txt",
        resolutions=("4k",),  # fal's O3 4k pages: "native 4K"
        prices={"silent": Decimal("0.42"), "audio": Decimal("0.42")}),
}
_O3_PRO_NOTE = ("fal publishes no Kling O3 Pro price: estimated at $0.224/s silent, $0.28/s "
                "with audio, the higher of two secondary readings (the other, 0.112/0.14, is "
                "Kling's own O3 Pro price), so the run never costs more than planned")

# Elements plus reference images on O3's reference-to-video: "Maximum 4 total (elements +
# reference images) when using video" (fal-js O3ProReferenceVideoI2VInput.image_urls; a video
# element is a video input), "Maximum 7 total (elements + reference images) is allowed" on
# 4K (fal.ai/models/fal-ai/kling-video/o3/4k/reference-to-video/llms.txt), 7 without a video
# on Kling's own omni-video too (its 3.0 specification): (without a video, with one)
O3_REFERENCES = (7, 4)

# Kling 3.0 Turbo: fal-js 381105e `KlingVideoV3TurboProTextToVideoInput` {prompt,
# multi_prompt, aspect_ratio, duration} and `...ImageToVideoInput` {prompt, multi_prompt,
# image_url (required), duration}, which the Standard inputs alias: no end frame, elements,
# negative_prompt, cfg_scale, shot_type or generate_audio. The output has sound anyway (fal's
# Turbo Standard page: "720P video with native audio"), so it is priced with audio and
# `audio: false` is a warning (`_check_turbo_audio`).
MODELS = {
    **MODELS,
    "kling-3-turbo-std": ModelSpec(
        alias="kling-3-turbo-std",
        model_id="fal-ai/kling-video/v3/turbo/standard",  # + text-to-video | image-to-video
        source="fal's Kling Video V3 Turbo Standard page, fal.ai/models/fal-ai/kling-video/"
               "v3/turbo/standard/image-to-video/llms.txt",
        durations_s=(3, 15),  # fal-js Turbo inputs: duration "3".."15"
        prompt_chars=(2, 2500),  # fal-js: "keep the prompt under 2500 characters"
        sizes=None,
        aspects=("16:9", "9:16", "1:1"),  # fal-js Turbo text-to-video aspect_ratio
        resolutions=("720p",),  # fal's Turbo Standard page: "into 720P video"
        frame_images=(1, 1),  # image_url only: no end frame
        takes=(1, 1),
        quality=None,
        cfg_scale=None,
        multi_prompt_segments=6,  # fal-js: "Multi-shot storyboard (1-6 shots)"
        segment_s=(3, 15),  # as v3 (the same KlingV3MultiPromptElement); total <= 15 s
        supports=frozenset(
            {"multi_prompt", "duration", "size", "aspect", "audio", "first_frame"}
        ),  # fmt: skip
        # "you will be charged $0.112" a second, one price (the Turbo Standard llms.txt; F12)
        prices={"audio": Decimal("0.112")},
    ),
}
MODELS = {
    **MODELS,
    # "you will be charged $0.14" a second (fal.ai/models/fal-ai/kling-video/v3/turbo/pro/
    # text-to-video/llms.txt, image-to-video/llms.txt; F13, F14)
    "kling-3-turbo-pro": replace(
        MODELS["kling-3-turbo-std"], alias="kling-3-turbo-pro",
        model_id="fal-ai/kling-video/v3/turbo/pro",
        source="fal's Kling Video V3 Turbo Pro page, fal.ai/models/fal-ai/kling-video/v3/"
               "turbo/pro/text-to-video/llms.txt",
        resolutions=("1080p",),  # fal's Turbo Pro page: "high quality 1080p videos"
        prices={"audio": Decimal("0.14")}),
}

# Kling 4.0: fal-ai/kling-video/v4/{text-to-video,image-to-video}, 3-30 s, 720p or 1080p,
# up to 8 middle keyframes (providers/fal_v4.py gives its sources and decisions)
MODELS = {**MODELS, "kling-4": fal_v4.MODEL}

# The families of fal's Kling endpoints, by model id: which fields a body holds.
V3, O3, TURBO, V4 = "v3", "o3", "turbo", "v4"
FAMILIES: Mapping[str, str] = {
    "fal-ai/kling-video/v3/pro": V3, "fal-ai/kling-video/v3/standard": V3,
    "fal-ai/kling-video/v3/4k": V3, "fal-ai/kling-video/o3/standard": O3,
    "fal-ai/kling-video/o3/pro": O3, "fal-ai/kling-video/o3/4k": O3,
    "fal-ai/kling-video/v3/turbo/standard": TURBO, "fal-ai/kling-video/v3/turbo/pro": TURBO,
    fal_v4.MODEL_ID: V4,
}  # fmt: skip
# Where fal publishes no price with voice control, a voice is not bound (its lines are still
# spoken, in a voice the model picks): 3.0 4K prices audio "without voice control" only; no
# O3 page prices voice control, and Kling's 3.0 capability map gives its omni model none.
_VOICE_UNPRICED = {
    "kling-3-4k": "fal's 4K price covers audio without voice control only",
    **{alias: "fal prices O3 with audio on or off only, and Kling gives its omni model no "
              "voice control" for alias in ("kling-o3-std", "kling-o3-pro", "kling-o3-4k")},
}


def family_of(spec: ModelSpec) -> str:
    """The family (v3, o3, turbo, v4) of a fal model."""
    return FAMILIES[spec.model_id]


# fal takes URLs ("the universal format"); data URIs are accepted by some models. fal has
# no asset UUIDs; a voice travels as a voice id on its element (`elements[].voice_id`), made of
# the element's sample by create-voice. Local files and chains are uploaded to fal's CDN at
# run time (any media).
ACCEPTED_KINDS: Mapping[str, frozenset[str]] = {
    "image": frozenset({"url", "data", "path", "chain"}),
    "video": frozenset({"url", "path", "chain"}),
}

# Voices (docs/providers.md, "Dialogue and voices"). fal-js 1.10.1 endpoints.ts (commit
# 381105e, 2026-08-02) `CreateVoiceInput.voice_url` ("Supports .mp3/.wav audio or .mp4/.mov
# video. Duration must be 5-30 seconds"), `CreateVoiceOutput.voice_id`; the v3 inputs bind a
# voice to an element (`KlingV3ComboElementInput.voice_id`: "references to this element will
# use the binded voice"); fal's earlier v3 page (edenartlab/eve docs.md, 2026-02) had a
# top-level `voice_ids`, "maximum 2 voices per task", which the current types no longer
# declare on v3: the element's voice_id is sent, the limit of 2 is kept (the stricter reading)
CREATE_VOICE = "fal-ai/kling-video/create-voice"
VOICE_PRICE_USD = Decimal("0.007")  # fal create-voice llms.txt: "$0.007 per generations"
VOICES_PER_TASK = 2
_VOICE_SOURCE = ("fal: at most 2 voices per task (v3 page, `voice_ids`); a voice is bound to "
                 "its element (fal-js KlingV3ComboElementInput.voice_id)")
_SAMPLE_SOURCE = "fal create-voice: voice_url .mp3/.wav/.mp4/.mov, 5-30 s"

# -- run time: fal's queue API (providers reference, section 2) ----------------------------------


def _auth(key) -> dict[str, str]:
    return {"Authorization": f"Key {key.reveal()}"}


KEY_CHECK_ENDPOINT_ID = "fal-ai/kling-video/v3/pro/text-to-video"  # any endpoint: ours


def _detail(data) -> str | None:
    """fal's error text: `detail` as a string, or the first validation item's loc and msg."""
    detail = data.get("detail") if isinstance(data, dict) else None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        loc = ".".join(str(p) for p in detail[0].get("loc", []) if p != "body")
        return f"{loc}: {detail[0].get('msg')}" if loc else str(detail[0].get("msg"))
    return str(detail) if detail else None


SPEC = ProviderSpec(
    name="fal",
    key_variables=("FAL_KEY",),
    endpoints=(
        ("fal", "https://queue.fal.run"),  # fal queue (fal-client 1.0.3: QUEUE_URL_FORMAT)
        ("fal-rest", "https://rest.fal.ai"),  # fal storage tokens (fal-client 1.0.3: REST_URL)
        ("fal-cdn", "https://v3.fal.media"),  # uploads (fal-client 1.0.3: CDN_URL, /files/upload)
        ("fal-api", "https://api.fal.ai"),  # fal platform API: recent requests by endpoint
    ),
    capabilities=Capabilities(
        inline_media=frozenset(),  # upload local files to the fal CDN first
        # fal assigns the request id: after a lost answer the engine looks the request up in
        # fal's platform API (`find_submission`) and never re-sends it on its own
        lost_answer="request_list",
        batch_poll=False,
        result_fetch=True,  # COMPLETED, then the response URL (`result_request`)
        creates_voices=True,  # create-voice, once per sample (a `voice` task)
        voices_per_task=VOICES_PER_TASK,
        upload_ttl_s=6 * 24 * 3600.0,  # [inferred] fal documents no CDN retention: weekly
    ),
    # doctor: fal documents an account call (`GET /v1/account/billing`, fal.ai/docs/
    # platform-apis/v1/account/billing) for Admin-scope keys only, so the ordinary key a run
    # uses would be refused there. The request list `find_submission` already reads takes
    # that key ("Requires API key", fal.ai/docs/platform-apis/v1/models/requests/by-endpoint)
    # and generates nothing: one item of it tests the key and the host a run relies on.
    key_check_endpoint="fal-api",
    models=MODELS,
)


class FalQueue(Declared):
    """Submit to the queue, poll the returned status URL, fetch the returned response URL."""

    def route(self, spec: ModelSpec, request: Mapping[str, Any]) -> str:
        """The endpoint the request is posted to (its path on fal's queue)."""
        return endpoint_id(spec, request)

    def submit_request(self, job: Job | None, request: Mapping[str, Any], task_id: str,
                       base_url: str, key: Credential) -> httpx.Request:
        import httpx

        endpoint = CREATE_VOICE if job is None and "voice_url" in request else \
            endpoint_id(shot_job(job, 'fal').model, request)
        return httpx.Request("POST", f"{base_url}/{endpoint}", json=dict(request),
                             headers=_auth(key))

    def read_submit(self, response: httpx.Response, task_id: str) -> Handle:
        """The handle; retried only where fal-client retries a request (408, 409, 429, and a
        502-504 from fal's ingress: no x-fal-request-id header, an nginx page). Any other
        5xx came from fal's own server after the request arrived: it may be queued."""
        from .base import (
            Handle,
            LostAnswer,
            ProviderError,
            TransientError,
            json_answer,
            retry_after_s,
        )

        status = response.status_code
        if status in (408, 409, 429) or _ingress_error(response):
            raise TransientError(f"fal answered HTTP {status}", retry_after_s(response))
        if status >= 500:
            raise LostAnswer(f"fal answered HTTP {status} to the submission")
        data = json_answer(response, "fal")
        if status >= 400:
            raise ProviderError(f"fal refused the request (HTTP {status})"
                                + (f": {_detail(data)}" if _detail(data) else ""))
        return Handle(data["request_id"], {"status_url": data["status_url"],
                                           "response_url": data["response_url"]})

    async def find_submission(self, send: Send, job: Job | None, url: UrlOf, key: Credential,
                              since: float | None = None,
                              sent: str | None = None) -> Handle | None:
        """A request of this endpoint with exactly the input sent, since `since` (epoch s):
        fal's platform API lists an endpoint's requests (fal.ai/docs/platform-apis/v1/models/
        requests/by-endpoint, `expand=payloads`). `sent` is the digest of the body as sent
        (uploads substituted; `base.sent_digest`), recorded before sending: the
        job's own request still holds `kc-input:` placeholders, so it matches only a shot
        without inputs (the comparison made when no digest was recorded). The handle is
        rebuilt as fal-client's `from_request_id` does: owner/app only."""

        import datetime as dt

        import httpx

        from .base import json_answer, raise_for_status, sent_digest

        if job is None:  # a voice: create-voice's own list, by the digest of the body sent
            if sent is None:
                return None
            endpoint, wanted = CREATE_VOICE, None
        else:
            job = shot_job(job, "fal")
            endpoint, wanted = endpoint_id(job.model, job.request), dict(job.request)
        params = {"endpoint_id": endpoint, "expand": "payloads", "limit": "100"}
        if since is not None:
            start = dt.datetime.fromtimestamp(since - 300, dt.UTC)
            params["start"] = start.isoformat().replace("+00:00", "Z")
        answer = await send(httpx.Request("GET", f"{url('fal-api')}/v1/models/requests/"
                                          "by-endpoint", params=params, headers=_auth(key)))
        data = json_answer(answer, "fal")
        raise_for_status(answer, "fal", _detail(data))
        items = data.get("items") if isinstance(data, dict) else None
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict) or not isinstance(item.get("request_id"), str):
                continue
            given = item.get("json_input")
            if given is None:
                continue  # payload storage off: nothing to match by
            if (sent_digest(given) == sent) if sent is not None else (given == wanted):
                return _queue_handle(url, endpoint, item["request_id"])
        return None

    def adopt_handle(self, job: Job | None, request: Mapping[str, Any], task_id: str,
                     url: UrlOf) -> Handle:
        """What polls a request id from the user's dashboard (`kling-compose adopt`): the queue
        URLs fal-client's `from_request_id` builds (owner/app only)."""
        return _queue_handle(url, endpoint_id(shot_job(job, "fal").model, request), task_id)

    # doctor: one item of the request list (SPEC.key_check_endpoint says why)
    def key_check_request(self, base_url: str, key: Credential) -> httpx.Request:
        import httpx

        params = {"endpoint_id": KEY_CHECK_ENDPOINT_ID, "limit": "1"}
        return httpx.Request("GET", f"{base_url}/v1/models/requests/by-endpoint",
                             params=params, headers=_auth(key))

    def read_key_check(self, response: httpx.Response) -> Account:
        """Account() (the list says nothing about money); ProviderError for a refused key."""
        from .base import Account, ProviderError, json_answer, raise_for_status

        data = json_answer(response, "fal")
        raise_for_status(response, "fal", _detail(data))
        if not isinstance(data, dict) or not isinstance(data.get("items"), list):
            raise ProviderError("fal answered the request list without its items")
        return Account()

    def poll_request(self, handle: Handle, base_url: str, key: Credential) -> httpx.Request:
        import httpx

        return httpx.Request("GET", _handle_url(handle, "status_url"), headers=_auth(key))

    def read_status(self, response: httpx.Response, handle: Handle, takes: int) -> Status:
        """202 while queued or running; COMPLETED means the result can be fetched."""
        from .base import ProviderError, Status, json_answer, raise_for_status

        data = json_answer(response, "fal")
        if response.status_code == 404:
            return Status("unknown", message=handle.task_id)
        raise_for_status(response, "fal", _detail(data))
        state = data.get("status")
        if state == "IN_QUEUE":  # fal's queue status carries queue_position while queued
            position = data.get("queue_position")
            return Status("processing", detail=f"queued (position {position})"
                          if isinstance(position, int) else "queued")
        if state == "IN_PROGRESS":
            return Status("processing", detail="processing")
        if state == "COMPLETED":
            if data.get("error"):
                return Status("failed", message=f"{data.get('error_type') or 'error'}: "
                                                f"{data['error']}")
            return Status("ready")
        raise ProviderError(f"fal answered an unknown status {state!r}")

    def result_request(self, handle: Handle, base_url: str, key: Credential) -> httpx.Request:
        import httpx

        return httpx.Request("GET", _handle_url(handle, "response_url"), headers=_auth(key))

    def read_result(self, response: httpx.Response, handle: Handle, takes: int) -> Status:
        from .base import Result, Status, TransientError, json_answer

        data = json_answer(response, "fal")
        if response.status_code in (408, 429) or response.status_code >= 500:
            raise TransientError(f"fal answered HTTP {response.status_code}")
        if response.status_code >= 400:
            return Status("failed", message=_detail(data) or f"HTTP {response.status_code}")
        if isinstance(data, dict) and "video" not in data and "voice_id" in data:
            return _voice_made(data)  # create-voice: `CreateVoiceOutput`
        video = data.get("video") or {}
        if not video.get("url"):
            return Status("failed", message="fal returned no video")
        return Status("done", (Result(video["url"]),))

    async def upload(self, send: Send, data: bytes, mime: str, name: str, url: UrlOf,
                     key: Credential) -> str:
        """fal-client 1.0.3's CDN flow: a storage token from the REST host (`REST_URL`,
        `CDNTokenManager`), then the bytes to the CDN (`CDN_URL` + /files/upload) with it."""
        import httpx

        from .base import json_answer, raise_for_status

        token_url = f"{url('fal-rest')}/storage/auth/token?storage_type=fal-cdn-v3"
        answer = await send(httpx.Request("POST", token_url, json={}, headers=_auth(key)))
        token = json_answer(answer, "fal")
        raise_for_status(answer, "fal", _detail(token))
        headers = {"Authorization": f"{token['token_type']} {token['token']}",
                   "Content-Type": mime, "X-Fal-File-Name": name}
        answer = await send(httpx.Request("POST", f"{url('fal-cdn')}/files/upload",
                                          content=data, headers=headers))
        body = json_answer(answer, "fal")
        raise_for_status(answer, "fal", _detail(body))
        return body["access_url"]


def _ingress_error(response) -> bool:
    """fal-client 1.0.3 `_is_ingress_error`: a 502-504 that fal's own server did not send."""
    if response.status_code not in (502, 503, 504):
        return False
    return "x-fal-request-id" not in response.headers and "nginx" in response.text


class FalProvider(FalQueue):
    """Builds fal's Kling inputs (each tier's own fields) and estimates costs."""

    spec = SPEC

    def check(self, shot: ResolvedShot, spec: ModelSpec) -> list[Diagnostic]:
        family = family_of(spec)
        diags = rules.check_source_kinds(shot, self.name, ACCEPTED_KINDS)
        diags += rules.check_element_frontal(shot, self.name)
        diags += _check_start_image(shot, family)
        diags += _check_elements(shot)
        if family == O3:
            diags += _check_references(shot, spec)
        if family in (TURBO, V4):
            diags += _check_sound_always(shot, spec, family)
            diags += _check_frame_images(shot, family)
        unpriced = _VOICE_UNPRICED.get(spec.alias)
        if unpriced is not None:
            return diags + dialogue.prompt_only(shot, f"{self.name} model '{spec.alias}'",
                                                unpriced, dialogue.voiced(shot))
        diags += dialogue.check_voice_count(shot, self.name, self.voices_per_task, _VOICE_SOURCE)
        diags += dialogue.check_sample_kinds(shot, self.name, frozenset({"url", "path"}))
        diags += dialogue.check_samples(shot, self.name, _SAMPLE_SOURCE)
        return diags

    def prompt_text(self, shot: ResolvedShot, prompt: Prompt) -> str:
        """The prompt as sent: `@name` becomes `@ElementN`, N by first appearance; its lines
        follow, `[@ElementN, tone]: "words"` (providers/dialogue.py)."""
        numbers = {e.name: n for n, e in enumerate(shot.elements, 1)}
        text = prompt.render(lambda name: f"@Element{numbers[name]}")
        speaker = dialogue.speaker_of(shot, lambda n, e: f"@Element{n}")
        return dialogue.spoken(text, dialogue.lines_of(shot, prompt), speaker)

    def voice_request(self, element: Element, ref: Ref) -> dict[str, Any]:
        """create-voice's input (`CreateVoiceInput`): the sample's URL (a local file is
        uploaded to fal's CDN first)."""
        if element.voice is None:
            raise TypeError(f"element '{element.name}' has no voice sample")  # a bug
        return {"voice_url": ref(element.voice, "audio")}

    def voice_cost(self, request: Mapping[str, Any]) -> Decimal | None:
        return VOICE_PRICE_USD

    def payload(self, shot: ResolvedShot, spec: ModelSpec, ref: Ref) -> dict[str, Any]:
        # NOTE: the key order follows the seed 001 example body.
        family = family_of(spec)
        if family == V4:
            return fal_v4.body(shot, ref, dialogue.main_prompt(shot), self.prompt_text,
                               _aspect_ratio(shot))
        body: dict[str, Any] = {}
        prompt = dialogue.main_prompt(shot)
        if prompt is not None:
            body["prompt"] = self.prompt_text(shot, prompt)
        duration = rules.effective_duration(shot)
        if duration is not None:
            body["duration"] = str(duration)  # fal durations are strings
        if shot.multi_prompt:
            body["multi_prompt"] = [
                {"prompt": self.prompt_text(shot, seg.prompt), "duration": str(seg.duration_s)}
                for seg in shot.multi_prompt
            ]
        if family == O3:  # O3 defaults to silence: always said, as the price depends on it
            # with a video element the sound can only be off (Kling's omni-video: "When there
            # is a reference video, the value of the sound parameter can only be off")
            body["generate_audio"] = shot.audio is True and not _video_element(shot)
        elif family == V3 and shot.audio is not None:
            body["generate_audio"] = shot.audio
        if family != TURBO:  # Turbo has no shot_type
            body["shot_type"] = "customize"  # fal's default, sent as in seed 001
        route = _route(spec, shot)
        aspect = _aspect_ratio(shot)
        if aspect is not None and route != "image-to-video":
            body["aspect_ratio"] = aspect
        if shot.negative_prompt is not None and "negative_prompt" in spec.supports:
            body["negative_prompt"] = shot.negative_prompt
        if shot.cfg_scale is not None and "cfg_scale" in spec.supports:
            body["cfg_scale"] = shot.cfg_scale
        if shot.first_frame is not None:
            # O3's and Turbo's image-to-video name the start image `image_url`
            start = "image_url" if route == "image-to-video" and family != V3 else \
                "start_image_url"
            body[start] = ref(shot.first_frame, "image")
        if shot.last_frame is not None:
            body["end_image_url"] = ref(shot.last_frame, "image")
        if shot.reference_images:  # O3 reference-to-video: @Image1, @Image2...
            body["image_urls"] = [ref(s, "image") for s in shot.reference_images]
        if shot.elements:
            speaking = set() if spec.alias in _VOICE_UNPRICED else \
                {e.name for e in dialogue.voiced(shot)}
            body["elements"] = [element_body(e, ref, e.name in speaking) for e in shot.elements]
        return body

    def cost(
        self, shot: ResolvedShot, spec: ModelSpec, payload: Mapping[str, Any]
    ) -> Decimal | None:
        rate = spec.prices.get(price_key(spec, payload))
        if rate is None:
            return None
        return rate * int(payload.get("duration", DEFAULT_DURATION_S))

    def cost_note(
        self, shot: ResolvedShot, spec: ModelSpec, payload: Mapping[str, Any]
    ) -> str | None:
        key = price_key(spec, payload)
        if key not in spec.prices:
            return f"fal publishes no {key} price for {spec.model_id}"
        if key == "video_input":
            return ("fal publishes no price for Kling O3 with a video element: estimated at "
                    "Kling's own video-input price" + (" doubled, as O3 Pro's other prices"
                                                       if spec.alias == "kling-o3-pro" else ""))
        if spec.alias == "kling-o3-pro":
            return _O3_PRO_NOTE
        return None


def endpoint_id(spec: ModelSpec, request: Mapping[str, Any]) -> str:
    """The fal endpoint that takes `request`: O3's reference-to-video when it sends what only
    that route takes (elements, reference images, a `start_image_url`), image-to-video when it
    sends a start image, else text-to-video."""
    family = family_of(spec)
    if family == O3 and any(k in request for k in ("elements", "image_urls", "start_image_url")):
        kind = "reference-to-video"
    elif "start_image_url" in request or "image_url" in request:
        kind = "image-to-video"
    else:
        kind = "text-to-video"
    return f"{spec.model_id}/{kind}"


def _route(spec: ModelSpec, shot: ResolvedShot) -> str:
    """The route a shot's body goes to (as `endpoint_id` reads it back from the body)."""
    if family_of(spec) == O3 and (shot.elements or shot.reference_images):
        return "reference-to-video"
    return "image-to-video" if shot.first_frame is not None else "text-to-video"


def price_key(spec: ModelSpec, payload: Mapping[str, Any]) -> str:
    """Which per-second price a body pays: "voice" (an element speaks in a bound voice),
    "audio" or "silent". Turbo has no switch and always makes sound; a body without
    generate_audio gets fal's default (v3: true; O3 sends it always)."""
    if family_of(spec) == TURBO:
        return "audio"
    if family_of(spec) == V4:
        return fal_v4.price_key(payload)
    elements = payload.get("elements")
    if family_of(spec) == O3 and isinstance(elements, list) and any(
            isinstance(e, dict) and e.get("video_url") for e in elements):
        return "video_input"  # O3 4K has no such price: unknown, and the plan says so
    if not payload.get("generate_audio", DEFAULT_AUDIO):
        return "silent"
    voices = isinstance(elements, list) and any(
        isinstance(e, dict) and e.get("voice_id") for e in elements)
    return "voice" if voices else "audio"


def _queue_handle(url, endpoint: str, request_id: str):
    """The handle of a request known by its id alone, as fal-client's `from_request_id`
    rebuilds it: the queue URLs under the endpoint's owner/app."""
    from .base import Handle

    owner_app = "/".join(endpoint.split("/")[:2])
    base = f"{url('fal')}/{owner_app}/requests/{request_id}"
    return Handle(request_id, {"status_url": f"{base}/status", "response_url": base})


def element_body(element: Element, ref: Ref, speaks: bool = False) -> dict[str, Any]:
    """An `elements[]` item: {frontal_image_url, reference_image_urls} or {video_url}, and
    the `voice_id` of an element that speaks in the shot with a voice.

    fal's types say reference_image_urls takes "1-3 images ... At least one image is
    required" (fal-js KlingV3ComboElementInput): an element with only a frontal image sends
    that image as its one reference too."""
    voice = {"voice_id": dialogue.voice_value(element)} if speaks and element.has_voice else {}
    if element.videos:
        return {"video_url": ref(element.videos[0], "video"), **voice}
    body: dict[str, Any] = {}
    if element.frontal_image is not None:
        body["frontal_image_url"] = ref(element.frontal_image, "image")
    references = element.images or ((element.frontal_image,) if element.frontal_image else ())
    if references:
        body["reference_image_urls"] = [ref(s, "image") for s in references]
    body.update(voice)
    return body


def _aspect_ratio(shot: ResolvedShot) -> str | None:
    if shot.first_frame is not None:
        return None  # image-to-video has no aspect_ratio: the start image sets it
    if shot.size is not None:
        return rules.aspect_of(shot.size)
    return shot.aspect


# fal's 4.0 and Turbo image inputs, each local file checked before anything is paid (an
# independent review saw a 4:1 first frame refused after other shots were paid): fal v4
# image-to-video `start_image_url` "Max file size: 30.0MB, Min width: 300px, Min height: 300px,
# Min aspect ratio: 0.40, Max aspect ratio: 2.50" (fal_v4.py; its middle and end images are
# checked the same, the stricter reading); Turbo's `image_url` "Min 300x300px, aspect ratio
# between 1:2.5 and 2.5:1" and ".jpg, .jpeg, .png" (F12, F14)
FRAME_MIN_PX = 300
FRAME_RATIO = (Fraction(2, 5), Fraction(5, 2))
FRAME_BYTES = {V4: 30 * 1024 * 1024, TURBO: 50 * 1024 * 1024}
FRAME_SUFFIXES = {TURBO: frozenset({".jpg", ".jpeg", ".png"})}


def _check_frame_images(shot: ResolvedShot, family: str) -> list[Diagnostic]:
    """Each local image the shot sends as a frame or keyframe: an image fal reads, at least
    300 px a side, its aspect from 2:5 to 5:2, within fal's file size."""
    from .base import image_size

    found = []
    frames = [("first_frame", shot.first_frame), ("last_frame", shot.last_frame),
              *(("keyframes", k) for k in shot.keyframes)]
    for name, source in frames:
        if source is None or source.kind != "path" or source.path is None or \
                not source.path.exists():  # a missing file: resolve says so, located
            continue
        where = source.location or shot.where(name)
        suffixes = FRAME_SUFFIXES.get(family)
        if suffixes is not None and source.path.suffix.lower() not in suffixes:
            found.append(Diagnostic(f"{name} {source.value}: fal takes {', '.join(sorted(suffixes))} "
                                    "images here", where, "convert it to PNG or JPEG"))
            continue
        size = image_size(source.path)
        if size is None:
            found.append(Diagnostic(f"{name} {source.value} is not an image fal can read", where,
                                    "use a PNG or JPEG file (a clip's frame: a chain "
                                    "`{from: SHOT, frame: last}`)"))
            continue
        width, height = size
        ratio = Fraction(width, height)
        try:
            too_big = source.path.stat().st_size > FRAME_BYTES[family]
        except OSError:
            too_big = False
        if min(width, height) < FRAME_MIN_PX or not FRAME_RATIO[0] <= ratio <= FRAME_RATIO[1] \
                or too_big:
            found.append(Diagnostic(
                f"{name} {source.value} is {width}x{height}"
                + (f", more than {FRAME_BYTES[family] // 2**20} MB" if too_big else "")
                + f": fal takes images of at least {FRAME_MIN_PX} px a side, from 2:5 to 5:2",
                where, "crop or scale the image (fal refuses it after other shots are paid)"))
    return found


def _check_start_image(shot: ResolvedShot, family: str = V3) -> list[Diagnostic]:
    """v3 takes an end frame and elements on image-to-video only, whose start image is
    required. O3 takes elements without a frame (reference-to-video) but not an end frame
    alone: fal's reference-to-video leaves start_image_url optional, Kling's own API "does not
    support only the end frame" (the stricter). Turbo has no end frame at all (its spec)."""
    if shot.first_frame is not None or family == TURBO:
        return []
    if family == V4:  # 4.0: no elements at all (its spec); an end frame on image-to-video
        return [Diagnostic(
            "last_frame needs a first_frame on fal",
            shot.where("last_frame"),
            "fal takes end_image_url only on 4.0's image-to-video, whose start_image_url is "
            "required",
        )] if shot.last_frame is not None else []  # fmt: skip
    if family == O3:
        return [Diagnostic(
            "last_frame needs a first_frame on fal",
            shot.where("last_frame"),
            "add a first_frame: Kling O3 makes no clip from an end frame alone (Kling API: "
            "\"Currently does not support only the end frame\")",
        )] if shot.last_frame is not None else []  # fmt: skip
    needs = [("last_frame", "end_image_url"), ("elements", "elements")]
    return [
        Diagnostic(
            f"{name} needs a first_frame on fal",
            shot.where(name),
            f"fal takes {field} only on image-to-video, whose start_image_url is required",
        )
        for name, field in needs
        if rules.is_set(shot, name)
    ]


def _video_element(shot: ResolvedShot) -> bool:
    return any(e.videos for e in shot.elements)


def _check_references(shot: ResolvedShot, spec: ModelSpec) -> list[Diagnostic]:
    """O3 reference-to-video: elements and reference images together (`O3_REFERENCES`), and
    no end frame with more than 2 images (Kling API, omni-video: "Setting an end frame is not
    supported when there are more than 2 images"; fal sends O3 to it)."""
    video = _video_element(shot)
    limit = O3_REFERENCES[1] if video else O3_REFERENCES[0]
    count = len(shot.elements) + len(shot.reference_images)
    diags = []
    if video and shot.audio is True:
        diags.append(Diagnostic(
            f"audio is not sent with a video element on {rules.label('fal', spec)}",
            shot.where("audio"),
            "the clip is made silent (Kling's omni-video: \"When there is a reference video, "
            "the value of the sound parameter can only be off\"); add sound in the edit",
            severity="warning"))
    if count > limit:
        diags.append(Diagnostic(
            f"{len(shot.elements)} element(s) and {len(shot.reference_images)} reference "
            f"image(s); {rules.label('fal', spec)} takes at most {limit} together"
            + (" with a video element" if video else ""),
            shot.where("reference_images") if shot.reference_images
            else rules.elements_where(shot),
            "fal's O3 reference-to-video: \"Maximum 4 total (elements + reference images) when "
            "using video\", 7 otherwise (its 4K page; Kling's omni-video): drop some",
        ))  # fmt: skip
    images = len(shot.reference_images) + (shot.first_frame is not None) + \
        (shot.last_frame is not None)
    if shot.last_frame is not None and images > 2:
        diags.append(Diagnostic(
            f"an end frame cannot be combined with reference images on {rules.label('fal', spec)}",
            shot.last_frame.location or shot.where("last_frame"),
            "remove the last_frame or the reference_images (Kling API, omni-video: \"Setting an "
            "end frame is not supported when there are more than 2 images\")",
        ))  # fmt: skip
    return diags


_SOUND_ALWAYS = {
    TURBO: "fal's Turbo endpoints have no generate_audio and their clips come \"with native "
           "audio\" (priced so)",
    V4: "fal's 4.0 endpoints document no audio switch and Kling 4.0 clips come with a stereo "
        "soundtrack (the price is the same)",
}


def _check_sound_always(shot: ResolvedShot, spec: ModelSpec, family: str) -> list[Diagnostic]:
    """Turbo and 4.0 have no audio switch and their clips have sound: `audio: false` cannot
    be honoured (a warning: the clip is made, with sound, at the price fal bills anyway)."""
    if shot.audio is not False:
        return []
    return [Diagnostic(
        f"audio: false is not honoured: {rules.label('fal', spec)} always makes sound",
        shot.where("audio"),
        f"{_SOUND_ALWAYS[family]}: mute it when editing, or choose a model with an audio "
        "switch",
        severity="warning",
    )]  # fmt: skip


def _check_elements(shot: ResolvedShot) -> list[Diagnostic]:
    diags = []
    for e in shot.elements:
        where = e.location or shot.where("elements")
        if e.frontal_image is None and not e.images and not e.videos:
            diags.append(Diagnostic(
                f"element '{e.name}' has no images and no video; a fal element is an image set "
                "(frontal + reference images) or one video (fal-js KlingV3ComboElementInput)",
                where,
                "add frontal_image (and images) or one video; fal has no library of elements "
                "to name by id",
            ))  # fmt: skip
            continue
        if e.voices:
            diags.append(Diagnostic(
                f"element '{e.name}' has voices; fal elements take images or one video",
                where,
                "remove voices from the element, or use runware",
            ))  # fmt: skip
        if len(e.videos) > 1:
            diags.append(Diagnostic(
                f"element '{e.name}' has {len(e.videos)} videos; fal takes one video_url",
                where,
                "keep one video",
            ))  # fmt: skip
    video_elements = [e.name for e in shot.elements if e.videos]
    if len(video_elements) > 1:
        diags.append(Diagnostic(
            f"{len(video_elements)} video elements ({', '.join(video_elements)}); fal takes "
            "at most one per request",
            shot.where("elements"),
            "use image elements for the others",
        ))  # fmt: skip
    return diags


def _voice_made(data: dict) -> Status:
    """A create-voice result: its `voice_id` is what the task hands on."""
    from .base import Result, Status

    found = data.get("voice_id")
    if not isinstance(found, str) or not found.strip() or len(found) > 256:
        return Status("invalid", message=f"fal answered create-voice with voice_id "
                      f"{found!r:.40}")
    return Status("done", (Result(found),))  # fal reports no cost: the estimate counts


def _handle_url(handle: Handle, name: str) -> str:
    """A URL the submission's answer gave (kept in the ledger or a teammate's task record);
    a record without it cannot be polled from here: a provider error, never a KeyError."""
    url = handle.extra.get(name)
    if not isinstance(url, str) or not url:
        raise ProviderError(f"fal request {handle.task_id}: its record has no {name} to ask")
    return url
