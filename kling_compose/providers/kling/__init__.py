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

The package: `models.py` (the models and the documented limits, each value citing its source),
`api.py` (the wire protocol: the token, the requests built and the answers read, and the
provider's spec) and `compile.py` (`KlingProvider`: the checks, the request bodies and their
cost). Every name other modules use is re-exported here.
"""

from .api import NOT_BEFORE_S, PATHS, SPEC, TOKEN_LIFETIME_S, KlingTasks, endpoint, sign_token
from .compile import (
    KlingProvider,
    billed_seconds,
    element_id,
    element_placeholder,
    image_value,
    price_key,
)
from .models import (
    ACCEPTED_KINDS,
    DEFAULT_DURATION_S,
    ELEMENT_DESCRIPTION_CHARS,
    ELEMENT_IMAGES,
    ELEMENT_NAME_CHARS,
    ELEMENT_TAGS,
    IMAGE_BYTES,
    IMAGE_MIMES,
    IMAGE_MIN_PX,
    IMAGE_RATIO,
    IMAGE_SUFFIXES,
    MODELS,
    MODES,
    NAME,
    OMNI_MODEL,
    OMNI_REFERENCES,
    RESOLUTIONS,
    SEGMENT_CHARS,
    UNIT_USD,
    UNITS_PER_S,
    V3_MODEL,
    VIDEO_INPUT_S,
    VIDEO_SUFFIXES,
    VOICES,
)

__all__ = [
    "ACCEPTED_KINDS", "DEFAULT_DURATION_S", "ELEMENT_DESCRIPTION_CHARS", "ELEMENT_IMAGES",
    "ELEMENT_NAME_CHARS", "ELEMENT_TAGS", "IMAGE_BYTES", "IMAGE_MIMES", "IMAGE_MIN_PX",
    "IMAGE_RATIO", "IMAGE_SUFFIXES", "MODELS", "MODES", "NAME", "NOT_BEFORE_S", "OMNI_MODEL",
    "OMNI_REFERENCES", "PATHS", "RESOLUTIONS", "SEGMENT_CHARS", "SPEC", "TOKEN_LIFETIME_S",
    "UNITS_PER_S", "UNIT_USD", "V3_MODEL", "VIDEO_INPUT_S", "VIDEO_SUFFIXES", "VOICES",
    "KlingProvider", "KlingTasks", "billed_seconds", "element_id", "element_placeholder",
    "endpoint", "image_value", "price_key", "sign_token",
]
