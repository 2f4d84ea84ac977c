"""The one capability checker: reads a ModelSpec and reports every limit a shot breaks.

Each check returns located Diagnostics (message, location, hint) and never raises, so the
compiler can collect every problem of every shot before it stops. Provider-specific rules
live in each provider's `check`; the helpers at the bottom are shared by those.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Callable, Iterator, Mapping

from ..errors import Diagnostic, Location
from ..model import Element, FrameSource, Prompt, ResolvedShot

if TYPE_CHECKING:  # providers import this module: keep the import graph acyclic at run time
    from .base import ModelSpec

PromptText = Callable[[Prompt], str]

# Shot fields that only tune the output. When a model lacks one it is dropped with a
# warning instead of an error, so storyboard-wide defaults (audio, negative_prompt, quality)
# keep working in a storyboard that mixes models. Every other field changes what is
# generated, so a model without it is an error.
SOFT_FIELDS: frozenset[str] = frozenset(
    {"negative_prompt", "audio", "cfg_scale", "quality", "output_format"}
)

# Fields checked against ModelSpec.supports; provider, model, pick and provider_options
# are accepted everywhere, and every shot has prompt or multi_prompt.
CHECKED_FIELDS: tuple[str, ...] = (
    "multi_prompt", "negative_prompt", "duration", "size", "aspect", "audio", "first_frame",
    "last_frame", "reference_images", "video", "reference_videos", "elements", "cfg_scale",
    "takes", "output_format", "quality", "keyframes",
)  # fmt: skip

# The allowed values of ResolvedShot fields that mean "not set".
_UNSET_DEFAULTS: Mapping[str, object] = {"takes": 1, "pick": 1}


def is_set(shot: ResolvedShot, name: str) -> bool:
    """True when the shot's field `name` holds a value other than "not set"."""
    value = getattr(shot, name)
    if name in _UNSET_DEFAULTS:
        return value != _UNSET_DEFAULTS[name]
    if name == "audio":
        return value is True  # audio: false asks for what every model does without the field
    if value is None:
        return False
    if type(value) in _NEVER_EMPTY:  # neither () nor {}: no comparison to make
        return True
    return value != () and value != {}


_NEVER_EMPTY = frozenset({str, int, float, bool})


def elements_where(shot: ResolvedShot):
    """Where a shot's elements come from: its `elements:` list, else its prompt."""
    for name in ("elements", "prompt", "multi_prompt"):
        if name in shot.locations:
            return shot.where(name)
    return shot.location


def label(provider: str, spec: ModelSpec) -> str:
    """How messages name a model: `runware model 'kling-3-pro'`."""
    return f"{provider} model '{spec.alias}'"


def check_shot(
    shot: ResolvedShot, spec: ModelSpec, provider: str, prompt_text: PromptText
) -> list[Diagnostic]:
    """Every generic limit of `spec` that `shot` breaks (errors and warnings)."""
    diags: list[Diagnostic] = []
    for check in _CHECKS:
        diags += check(shot, spec, provider)
    diags += check_prompts(shot, spec, provider, prompt_text)
    return diags


def effective_duration(shot: ResolvedShot) -> int | None:
    """The duration to send: the shot's, else the multi_prompt total, else None (default)."""
    if shot.duration is not None:
        return shot.duration
    if shot.multi_prompt:
        return sum(seg.duration_s for seg in shot.multi_prompt)
    return None


def follows_input(shot: ResolvedShot) -> bool:
    """True when the output frame follows an input (frame image or source video): no size."""
    return any(s is not None for s in (shot.first_frame, shot.last_frame, shot.video))


def aspect_of(size: tuple[int, int]) -> str:
    """`(1920, 1080)` -> `"16:9"`."""
    ratio = Fraction(size[0], size[1])
    return f"{ratio.numerator}:{ratio.denominator}"


def _fmt_size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _chars(count: int) -> str:
    return "1 character" if count == 1 else f"{count} characters"


def _range(bounds) -> str:
    low, high = bounds
    return f"{low}-{high}"


# --- the generic checks, one per limit ---------------------------------------------------


def check_supported(shot: ResolvedShot, spec: ModelSpec, provider: str) -> list[Diagnostic]:
    diags = []
    for name in _unsupported(spec):  # CHECKED_FIELDS the model lacks, in their order
        if not is_set(shot, name):
            continue
        if name in SOFT_FIELDS:
            diags.append(Diagnostic(
                f"{name} is not sent: {label(provider, spec)} has no such setting",
                shot.where(name),
                "it is ignored for this shot; remove it or choose a model that has it",
                severity="warning",
            ))  # fmt: skip
        else:
            diags.append(Diagnostic(
                f"{label(provider, spec)} does not support {name}",
                shot.where(name),
                f"remove {name} from this shot or choose another model ({spec.source})",
            ))  # fmt: skip
    return diags


def _unsupported(spec: ModelSpec) -> tuple[str, ...]:
    """The CHECKED_FIELDS `spec` does not support, in their order (once per spec)."""
    return _per_spec(_UNSUPPORTED, spec, lambda: tuple(
        name for name in CHECKED_FIELDS if name not in spec.supports))


_UNSUPPORTED: dict[int, tuple[ModelSpec, tuple[str, ...]]] = {}


def _per_spec(table: dict, spec: ModelSpec, make):
    """What `make()` derives from `spec`, made once per spec (every shot asks): kept in
    `table` by the spec's id, with the spec, so the id is not reused while it is there."""
    known = table.get(id(spec))
    if known is not None and known[0] is spec:
        return known[1]
    found = make()
    if len(table) > 256:  # the providers' specs are a few dozen; tests make more
        table.clear()
    table[id(spec)] = (spec, found)
    return found


def check_exclusions(shot: ResolvedShot, spec: ModelSpec, provider: str) -> list[Diagnostic]:
    return [
        Diagnostic(
            f"{first} cannot be combined with {second} on {label(provider, spec)}",
            shot.where(second),
            rule,
        )
        for first, second, rule in spec.excludes
        if is_set(shot, first) and is_set(shot, second)
    ]


def check_duration(shot: ResolvedShot, spec: ModelSpec, provider: str) -> list[Diagnostic]:
    duration = effective_duration(shot)
    low, high = spec.durations_s
    if duration is None or shot.video is not None or low <= duration <= high:
        return []
    where = "duration" if shot.duration is not None else "multi_prompt"
    return [Diagnostic(
        f"duration {duration} s is out of range: {label(provider, spec)} makes {low}-{high} s",
        shot.where(where),
        f"set a duration from {low} to {high} seconds",
    )]  # fmt: skip


# The largest Kling output is 4K (kie's `mode: 4K`, 3840x2160); a model without a size table
# (Runware 3.0 Pro, the preview) still may not ask for more, or the request is refused after
# earlier shots were paid for.
SIDE_PX = (64, 3840)


def check_size(shot: ResolvedShot, spec: ModelSpec, provider: str) -> list[Diagnostic]:
    if follows_input(shot):
        return []  # no size is sent: the provider follows the input image or video
    allowed = ", ".join(_fmt_size(s) for s in spec.sizes or ())
    aspects = ", ".join(spec.aspects or ())
    low, high = SIDE_PX
    if shot.size is not None and not all(low <= side <= high for side in shot.size):
        return [Diagnostic(
            f"size {_fmt_size(shot.size)} is beyond what any Kling model renders ({low}-{high} "
            "px a side)",
            shot.where("size"),
            "use the model's size (1920x1080, 1080x1920, 1440x1440), or an aspect",
        )]  # fmt: skip
    if shot.size is not None and spec.sizes is not None and shot.size not in spec.sizes:
        return [Diagnostic(
            f"size {_fmt_size(shot.size)} is not available on {label(provider, spec)}",
            shot.where("size"),
            f"use one of {allowed}",
        )]  # fmt: skip
    if shot.size is not None and spec.aspects and aspect_of(shot.size) not in spec.aspects:
        return [Diagnostic(
            f"size {_fmt_size(shot.size)} ({aspect_of(shot.size)}) is not available on "
            f"{label(provider, spec)}",
            shot.where("size"),
            f"use an aspect of {aspects}",
        )]  # fmt: skip
    if shot.aspect is not None and spec.aspects and shot.aspect not in spec.aspects:
        return [Diagnostic(
            f"aspect {shot.aspect} is not available on {label(provider, spec)}",
            shot.where("aspect"),
            f"use one of {aspects}",
        )]  # fmt: skip
    return []


def check_frame_count(shot: ResolvedShot, spec: ModelSpec, provider: str) -> list[Diagnostic]:
    count = sum(f is not None for f in (shot.first_frame, shot.last_frame))
    low, high = spec.frame_images
    if count == 0 or low <= count <= high:
        return []
    where = "last_frame" if shot.last_frame is not None else "first_frame"
    return [Diagnostic(
        f"{count} frame images given; {label(provider, spec)} takes {low}-{high}",
        shot.where(where),
        "remove the last_frame" if count > high else "add a first_frame",
    )]  # fmt: skip


def check_keyframe_count(shot: ResolvedShot, spec: ModelSpec, provider: str) -> list[Diagnostic]:
    """Middle keyframes: at most the model's number, and only between a first frame and the
    end (a keyframe list without a first frame has nothing to space them from)."""
    if not shot.keyframes or "keyframes" not in spec.supports:
        return []  # check_supported says a model without keyframes does not take them
    if len(shot.keyframes) > spec.max_keyframes:
        return [Diagnostic(
            f"{len(shot.keyframes)} keyframes given; {label(provider, spec)} takes at most "
            f"{spec.max_keyframes} between the first and last frame",
            shot.keyframes[spec.max_keyframes].location or shot.where("keyframes"),
            f"remove {len(shot.keyframes) - spec.max_keyframes}, or split the shot in two "
            f"chained shots ({spec.source})")]
    if shot.first_frame is None:
        return [Diagnostic(
            f"keyframes need a first_frame on {label(provider, spec)}",
            shot.where("keyframes"),
            "add a first_frame (a path, URL or `{from: previous, frame: last}`): the "
            "keyframes are spaced evenly from it to the end of the clip")]
    return []


_RESOLUTION_OF_SHORT_SIDE: Mapping[int, str] = {720: "720p", 1080: "1080p", 1440: "1080p",
                                                2160: "4k", 2880: "4k"}


def resolutions(spec: ModelSpec) -> tuple[str, ...]:
    """The resolutions a model offers: its own list, else what its size table says (Runware's
    1:1 sizes are 960x960 at 720p, 1440x1440 at 1080p and 2880x2880 at 4K: the widescreen
    sizes' short side decides). Computed once per spec (every shot asks)."""
    return _per_spec(_RESOLUTIONS, spec, lambda: _resolutions(spec))


_RESOLUTIONS: dict[int, tuple[ModelSpec, tuple[str, ...]]] = {}


def _resolutions(spec: ModelSpec) -> tuple[str, ...]:
    if spec.resolutions or not spec.sizes:
        return spec.resolutions
    sides = sorted({min(w, h) for w, h in spec.sizes if w != h} or
                   {min(w, h) for w, h in spec.sizes})
    found = [_RESOLUTION_OF_SHORT_SIDE.get(side) for side in sides]
    return tuple(dict.fromkeys(r for r in found if r is not None))


def check_resolution(shot: ResolvedShot, spec: ModelSpec, provider: str) -> list[Diagnostic]:
    """A shot's `resolution` is one the model offers; a tier offers one (its own)."""
    offered = resolutions(spec)
    if shot.resolution is None or shot.resolution in offered:
        return []
    if not offered:
        return [Diagnostic(f"{label(provider, spec)} has no resolution setting",
                           shot.where("resolution"),
                           f"remove resolution from this shot ({spec.source})")]
    listed = " or ".join(offered)
    tier = ("a tier is one resolution: choose the tier of that resolution (kling-3-std 720p, "
            "kling-3-pro 1080p, kling-3-4k 4k)" if len(offered) == 1 else f"write {listed}")
    return [Diagnostic(
        f"{label(provider, spec)} renders {listed}, not {shot.resolution}",
        shot.where("resolution"), tier)]


def check_element_count(shot: ResolvedShot, spec: ModelSpec, provider: str) -> list[Diagnostic]:
    if len(shot.elements) <= spec.max_elements:
        return []
    where = "elements" if "elements" in shot.locations else "prompt"
    names = ", ".join("@" + e.name for e in shot.elements)
    return [Diagnostic(
        f"shot uses {len(shot.elements)} elements ({names}); {label(provider, spec)} "
        f"takes at most {spec.max_elements}",
        shot.where(where),
        "split the shot or drop an element",
    )]  # fmt: skip


def check_element_shapes(shot: ResolvedShot, spec: ModelSpec, provider: str) -> list[Diagnostic]:
    diags = []
    for element in shot.elements:
        where = element.location or shot.where("elements")
        if len(element.images) > spec.max_element_images:
            diags.append(Diagnostic(
                f"element '{element.name}' has {len(element.images)} extra images; "
                f"{label(provider, spec)} takes at most {spec.max_element_images} besides "
                "the frontal image",
                where,
                f"keep the {spec.max_element_images} most telling angles",
            ))  # fmt: skip
        if element.videos and (element.frontal_image or element.images or element.voices):
            diags.append(Diagnostic(
                f"element '{element.name}' combines videos with images or voices",
                where,
                "an element is either a video, or images (optionally with voices)",
            ))  # fmt: skip
    return diags


def check_takes(shot: ResolvedShot, spec: ModelSpec, provider: str) -> list[Diagnostic]:
    low, high = spec.takes
    if "takes" not in spec.supports or low <= shot.takes <= high:
        return []
    return [Diagnostic(
        f"takes {shot.takes} is out of range: {label(provider, spec)} makes "
        f"{_range(spec.takes)} results per request",
        shot.where("takes"),
        f"use {low} to {high}, or make more takes in several shots",
    )]  # fmt: skip


def check_quality(shot: ResolvedShot, spec: ModelSpec, provider: str) -> list[Diagnostic]:
    return _check_range(shot, spec, provider, "quality")


def check_cfg_scale(shot: ResolvedShot, spec: ModelSpec, provider: str) -> list[Diagnostic]:
    return _check_range(shot, spec, provider, "cfg_scale")


def _check_range(shot: ResolvedShot, spec: ModelSpec, provider: str, name: str) -> list[Diagnostic]:
    """The shot's `name` within the model's (low, high) of the same name, where both are set."""
    value, bounds = getattr(shot, name), getattr(spec, name)
    if value is None or bounds is None or name not in spec.supports:
        return []
    low, high = bounds
    if low <= value <= high:
        return []
    return [Diagnostic(
        f"{name} {value:g} is out of range: {label(provider, spec)} takes {low:g}-{high:g}",
        shot.where(name),
        f"use a value from {low:g} to {high:g}",
    )]  # fmt: skip


def check_multi_prompt(shot: ResolvedShot, spec: ModelSpec, provider: str) -> list[Diagnostic]:
    segments = shot.multi_prompt or ()
    if not segments or "multi_prompt" not in spec.supports:
        return []
    where = shot.where("multi_prompt")
    diags = []
    if len(segments) > spec.multi_prompt_segments:
        diags.append(Diagnostic(
            f"multi_prompt has {len(segments)} segments; {label(provider, spec)} takes at "
            f"most {spec.multi_prompt_segments}",
            where,
            "merge segments or split the shot",
        ))  # fmt: skip
    low, high = spec.segment_s
    for n, seg in enumerate(segments, 1):
        if not low <= seg.duration_s <= high:
            diags.append(Diagnostic(
                f"multi_prompt segment {n} lasts {seg.duration_s} s; {label(provider, spec)} "
                f"takes segments of {low}-{high} s",
                seg.location or where,
                f"give the segment a duration from {low} to {high} s",
            ))  # fmt: skip
    total = sum(seg.duration_s for seg in segments)
    if shot.duration is not None and total != shot.duration:
        diags.append(Diagnostic(
            f"multi_prompt segments add up to {total} s but the shot's duration is "
            f"{shot.duration} s",
            where,
            "make the segment durations add up to the duration, or leave duration out",
        ))  # fmt: skip
    return diags


def check_multi_prompt_frames(shot: ResolvedShot, spec: ModelSpec,
                              provider: str) -> list[Diagnostic]:
    """A multi_prompt shot takes a first frame only, on every provider: Kling 3.0 has no end
    frame in a multi-shot generation (docs/providers.md, "Round 3", item 4; kie says so too:
    "when multi_shots is true, only the first frame is supported"). Sent anyway, it is
    refused mid-run or silently ignored in a paid clip (and a chain from it breaks). This is
    the one message: no provider's `check` repeats it."""
    if (not shot.multi_prompt or shot.last_frame is None
            or not {"multi_prompt", "last_frame"} <= spec.supports):
        return []
    return [Diagnostic(
        "last_frame cannot be combined with multi_prompt: Kling 3.0 makes a multi-shot clip "
        "from a first frame only",
        shot.last_frame.location or shot.where("last_frame"),
        "remove the last_frame (keep the first_frame), or write the shot as one prompt to end "
        "on that frame (Kling 3.0: the end frame \"cannot be used together with multi_prompt\")",
    )]  # fmt: skip


_CHECKS = (
    check_supported,
    check_exclusions,
    check_duration,
    check_size,
    check_frame_count,
    check_keyframe_count,
    check_resolution,
    check_element_count,
    check_element_shapes,
    check_takes,
    check_quality,
    check_cfg_scale,
    check_multi_prompt,
    check_multi_prompt_frames,
)


def check_prompts(
    shot: ResolvedShot, spec: ModelSpec, provider: str, prompt_text: PromptText
) -> list[Diagnostic]:
    """Prompt and negative prompt lengths, measured on the text as sent."""
    texts: list[tuple[str, str, Location | None]] = []
    if shot.prompt is not None:
        texts.append(("prompt", prompt_text(shot.prompt), shot.where("prompt")))
    for n, seg in enumerate(shot.multi_prompt or (), 1):
        where = seg.location or shot.where("multi_prompt")
        texts.append((f"multi_prompt segment {n}", prompt_text(seg.prompt), where))
    if shot.negative_prompt is not None and "negative_prompt" in spec.supports:
        texts.append(("negative_prompt", shot.negative_prompt, shot.where("negative_prompt")))
    low, high = spec.prompt_chars
    return [
        Diagnostic(
            f"{what} is {_chars(len(text))} long as sent; {label(provider, spec)} takes "
            f"{low}-{high} characters",
            where,
            "shorten it" if len(text) > high else f"write at least {low} characters",
        )
        for what, text, where in texts
        if not low <= len(text) <= high
    ]


# --- checks shared by provider modules ---------------------------------------------------


def shot_sources(shot: ResolvedShot) -> Iterator[tuple[str, FrameSource, str, Location | None]]:
    """Every input of a shot as (field, source, media, location)."""
    singles = (("first_frame", shot.first_frame, "image"),
               ("last_frame", shot.last_frame, "image"), ("video", shot.video, "video"))
    for name, source, media in singles:
        if source is not None:
            yield name, source, media, source.location or shot.where(name)
    for name, media in (("reference_images", "image"), ("keyframes", "image"),
                        ("reference_videos", "video")):
        for source in getattr(shot, name):
            yield name, source, media, source.location or shot.where(name)
    for element in shot.elements:
        for name, source, media in element_sources(element):
            yield name, source, media, source.location or element.location


def element_sources(element: Element) -> Iterator[tuple[str, FrameSource, str]]:
    """The inputs of an element as (field, source, media)."""
    if element.frontal_image is not None:
        yield "frontal_image", element.frontal_image, "image"
    for name, media in (("images", "image"), ("videos", "video"), ("voices", "audio")):
        for source in getattr(element, name):
            yield name, source, media


# Sources uploaded at run time (local files) or produced by the run (chains): a provider takes
# them only where it has a way to receive the bytes (inline or an upload API), which its
# ACCEPTED_KINDS says with "path" and "chain".
RUNTIME_KINDS = frozenset({"path", "chain"})

_KIND_NAMES = {"url": "a URL", "uuid": "a provider asset UUID", "data": "a data URI",
               "path": "a local file", "chain": "a chained frame or clip"}


def check_source_kinds(
    shot: ResolvedShot, provider: str, accepted: Mapping[str, frozenset[str]]
) -> list[Diagnostic]:
    """Inputs the provider cannot take as written (`accepted`: media -> FrameSource kinds)."""
    diags = []
    for name, source, media, where in shot_sources(shot):
        kinds = accepted.get(media, frozenset())
        if source.kind in kinds:
            continue
        if not kinds:
            hint = f"{provider} takes no {media} inputs: remove it"
        elif source.kind in RUNTIME_KINDS:
            hint = (f"{provider} has no way to receive {media} bytes: give an http(s) URL of "
                    "the file, or use a provider that uploads files (see docs/providers.md)")
        elif RUNTIME_KINDS <= kinds:
            hint = "use an http(s) URL or a local file (uploaded at run time)"
        else:
            hint = "use an http(s) URL"
        diags.append(Diagnostic(
            f"{name}: {provider} does not accept {_KIND_NAMES.get(source.kind, source.kind)} "
            f"for {media} inputs",
            where,
            hint,
        ))  # fmt: skip
    return diags


def check_element_frontal(shot: ResolvedShot, provider: str) -> list[Diagnostic]:
    """Element angle images need a frontal image (Runware `images`, fal `reference_image_urls`)."""
    return [
        Diagnostic(
            f"element '{e.name}' has images but no frontal_image; {provider} needs one",
            e.location or shot.where("elements"),
            "add frontal_image: the main reference image of the element",
        )
        for e in shot.elements
        if e.images and e.frontal_image is None
    ]


def check_frame_aspect(shot: ResolvedShot) -> list[Diagnostic]:
    """Warn when a local first frame's aspect differs from the asked size or aspect."""
    source = shot.first_frame
    if source is None or source.kind != "path" or source.path is None:
        return []
    asked = _asked_ratio(shot)
    if asked is None:
        return []
    from PIL import Image, UnidentifiedImageError  # lazy: validate must start fast

    where = source.location or shot.where("first_frame")
    import warnings

    try:
        with warnings.catch_warnings():  # a damaged EXIF block: Pillow warns raw to stderr
            warnings.simplefilter("ignore")
            with Image.open(source.path) as image:
                size = image.size
    except (UnidentifiedImageError, OSError) as exc:
        return [Diagnostic(f"first_frame {source.value} is not a readable image: {exc}", where,
                           "use a PNG, JPEG or WebP file")]  # fmt: skip
    if abs(Fraction(*size) - asked[1]) <= asked[1] / 100:
        return []
    return [Diagnostic(
        f"first_frame is {_fmt_size(size)} ({aspect_of(size)}) but the shot asks for "
        f"{asked[0]}; the provider follows the image",
        where,
        f"crop the image to {asked[0]}, or drop size/aspect for this shot",
        severity="warning",
    )]  # fmt: skip


def _asked_ratio(shot: ResolvedShot) -> tuple[str, Fraction] | None:
    if shot.size is not None:
        return _fmt_size(shot.size), Fraction(*shot.size)
    if shot.aspect is not None:
        w, _, h = shot.aspect.partition(":")
        return shot.aspect, Fraction(int(w), int(h))
    return None
