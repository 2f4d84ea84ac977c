"""Kling 4.0 on fal (`kling-4`): its capability data and its request body.

Sources (docs/kling-family.md, F15-F22; read from stored copies, 2026-12-07):

- fal's own schema pages for `fal-ai/kling-video/v4/{text-to-video,image-to-video}`
  (fal.ai/models/fal-ai/kling-video/v4/text-to-video/llms.txt, .../image-to-video/llms.txt):
  text-to-video takes `prompt` xor `multi_prompt` (`KlingV4Shot`), `duration` (integer,
  "Range: 3 to 30", default 5), `resolution` ("720p" | "1080p", default "1080p") and
  `aspect_ratio` ("auto", "16:9", "9:16", ...: the stored copy is cut there); image-to-video
  takes `start_image_url` (required; "Max file size: 30.0MB, Min width: 300px, Min height:
  300px, Min aspect ratio: 0.40, Max aspect ratio: 2.50"), `middle_image_urls` ("Ordered
  keyframes between the first and last frames (max 8)") and `end_image_url`; its stored copy
  stops after `multi_prompt`, so its `duration` and `resolution` are read as text-to-video's
  [inferred: fal's 4.0 image-to-video page, F15, says "3 to 30-second video at 720p or 1080p"].
  These pages give one price, "$0.157 per seconds".
- fal's branded pages for `kling/v4/*` (fal.ai/models/kling/v4/image-to-video/llms.txt) and
  fal's own guide (fal.ai/learn/tools/kling-api): "$0.157 per second at 720p and $0.235 per
  second at 1080p". Those pages say "Kling 4.0 is available in the playground and fal Agent.
  API access is coming soon."; the `fal-ai/kling-video/v4` endpoints are the ones whose schema
  fal publishes, so they are the ones compiled to.

Decisions where the sources are silent or disagree:

- Price: 720p $0.157/s (all agree); 1080p $0.235/s (the `kling/v4` pages and fal's guide; the
  schema page's single $0.157 would let a 1080p run cost more than planned).
- Audio: no page documents a switch (neither namespace's stored text has `generate_audio`);
  every third party says 4.0's sound is always on (useapi.net: "always with a stereo
  soundtrack"; Venice: audio "always generated"; Siray: "none of the endpoints has an audio
  switch"). No field is sent, the price is the same either way, and `audio: false` is a
  warning that the clip has sound anyway.
- multi_prompt: fal names its items `KlingV4Shot` but no stored page gives their fields or
  bounds, so a 4.0 shot with multi_prompt is refused (the generic `supports` check).
- Aspects: 16:9, 9:16 (on the stored page) and 1:1 (every Kling tier at fal, every third
  party); 21:9, which only third parties list, is not offered.
- Elements, reference images and videos belong to reference-to-video, whose fal schema is
  only partly stored: not offered (text- and image-to-video only).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, Mapping

from . import rules
from ..model import Prompt, ResolvedShot
from .base import ModelSpec, Ref

MODEL_ID = "fal-ai/kling-video/v4"  # + "/text-to-video" or "/image-to-video"
DEFAULT_RESOLUTION = "1080p"  # fal v4 text-to-video: resolution "Default value: `"1080p"`"
DEFAULT_DURATION_S = 5  # fal v4: duration "Default value: `5`"

MODEL = ModelSpec(
    alias="kling-4",
    model_id=MODEL_ID,
    # the kling/v4 pages say "API access is coming soon": these are the pages with a schema
    source="fal's Kling 4.0 schema pages, fal.ai/models/fal-ai/kling-video/v4/image-to-video/"
           "llms.txt",
    durations_s=(3, 30),  # duration: integer, "Range: 3 to 30"
    prompt_chars=(2, 2500),  # fal gives no bound; the other Kling tiers' 2500 (the stricter)
    sizes=None,  # an aspect ratio and a resolution, not pixels
    aspects=("16:9", "9:16", "1:1"),  # see the module's docstring (21:9 left out)
    resolutions=(DEFAULT_RESOLUTION, "720p"),  # ResolutionEnum "720p" | "1080p", default 1080p
    frame_images=(1, 2),  # start_image_url (required on image-to-video), end_image_url
    max_keyframes=8,  # middle_image_urls: "Ordered keyframes ... (max 8)"
    takes=(1, 1),  # one video per request
    quality=None,
    cfg_scale=None,  # no cfg_scale on the 4.0 pages
    # no elements, reference images, negative_prompt or multi_prompt (see above): a shot
    # with one is refused, or the setting dropped with a warning
    supports=frozenset(
        {"duration", "size", "aspect", "audio", "first_frame", "last_frame", "keyframes"}
    ),  # fmt: skip
    # per second by resolution, sound always (kling/v4 pages, fal's guide; see above)
    prices={"720p": Decimal("0.157"), "1080p": Decimal("0.235")},
)


def body(shot: ResolvedShot, ref: Ref, prompt: Prompt | None,
         prompt_text: Callable[[ResolvedShot, Prompt], str],
         aspect: str | None) -> dict[str, Any]:
    """The flat input of text-to-video, or of image-to-video when the shot has a first frame
    (`start_image_url`, the keyframes in order as `middle_image_urls`, `end_image_url`).
    Duration and resolution are always sent: the price depends on them."""
    # NOTE: the key order follows fal's v4 pages
    out: dict[str, Any] = {}
    if prompt is not None:
        out["prompt"] = prompt_text(shot, prompt)
    if shot.first_frame is not None:
        out["start_image_url"] = ref(shot.first_frame, "image")
        if shot.keyframes:
            out["middle_image_urls"] = [ref(k, "image") for k in shot.keyframes]
        if shot.last_frame is not None:
            out["end_image_url"] = ref(shot.last_frame, "image")
    out["duration"] = rules.effective_duration(shot) or DEFAULT_DURATION_S  # an integer
    out["resolution"] = resolution_of(shot)
    if aspect is not None and shot.first_frame is None:
        out["aspect_ratio"] = aspect  # image-to-video follows its start image
    return out


def resolution_of(shot: ResolvedShot) -> str:
    """The shot's `resolution`; else what its `size` asks (a 720-px short side: 720p, the
    cheaper; the review saw 1280x720 sent as 1080p at the dearer price); else fal's 1080p."""
    if shot.resolution is not None:
        return shot.resolution
    if shot.size is not None and min(shot.size) <= 720:
        return "720p"
    return DEFAULT_RESOLUTION


def price_key(payload: Mapping[str, Any]) -> str:
    """4.0 is priced by resolution (fal's default 1080p when none is sent)."""
    resolution = payload.get("resolution", DEFAULT_RESOLUTION)
    return resolution if isinstance(resolution, str) else DEFAULT_RESOLUTION
