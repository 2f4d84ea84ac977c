"""The official Kling API's models and documented limits: data, each value citing its source
(the Kling AI API documentation and its "Kling AI Series 3.0 Model API Specification"; see the
package's docstring)."""

from __future__ import annotations

from decimal import Decimal
from typing import Mapping

from ..base import ModelSpec

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


_RESOLUTION = {"std": "720p", "pro": "1080p"}


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
        resolutions=(_RESOLUTION[mode],),  # 3.0 spec: std "generating 720P", pro "1080P"
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
# Custom voices (a copy of Kling's "自定义音色" page: `POST /v1/general/custom-voices`,
# voice_name "不超过20字符", voice_url ".mp3/.wav/.mp4/.mov，5-30秒"); docs/providers.md,
# "Dialogue and voices"
VOICE_NAME_CHARS = 20
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
