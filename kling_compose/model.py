"""The storyboard vocabulary: plain frozen dataclasses that flow between the stages.

validate.py builds a Storyboard (each level's fields as the user wrote them);
resolve.py turns it into ResolvedShots (inheritance applied, references checked).
Everything made from user text carries the Location it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from .errors import Location

EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class FrameSource:
    """An image or video input of a shot.

    kind is one of: "path" (a local file, `path` is absolute), "url", "data" (a data URI),
    "uuid" (a provider asset id), "chain" (`value` is the shot id whose frame or clip is used).
    """

    kind: str
    value: str
    location: Location | None = None
    frame: str = "last"  # for chains: which frame of the source clip ("first" | "last")
    path: Path | None = None  # for kind == "path": the absolute file

    @property
    def is_chain(self) -> bool:
        return self.kind == "chain"


@dataclass(frozen=True, slots=True)
class ElementRef:
    """`@name` inside a prompt."""

    name: str
    location: Location | None = None


@dataclass(frozen=True, slots=True)
class Prompt:
    """Prompt text split into literal text and element references (`@@` already unescaped)."""

    parts: tuple[str | ElementRef, ...]
    location: Location | None = None

    def render(self, element_text) -> str:
        """The prompt with each ElementRef replaced by `element_text(name)`."""
        return "".join(p if isinstance(p, str) else element_text(p.name) for p in self.parts)

    @property
    def refs(self) -> tuple[ElementRef, ...]:
        return tuple(p for p in self.parts if isinstance(p, ElementRef))

    @property
    def text(self) -> str:
        """The prompt as written (references as `@name`, literal `@` as `@@`)."""
        return "".join(
            p.replace("@", "@@") if isinstance(p, str) else "@" + p.name for p in self.parts
        )


@dataclass(frozen=True, slots=True)
class PromptSegment:
    """One segment of a multi_prompt."""

    prompt: Prompt
    duration_s: int
    location: Location | None = None


@dataclass(frozen=True, slots=True)
class Element:
    """A reusable character or object (`elements:` in the storyboard)."""

    name: str
    location: Location | None = None
    description: str | None = None
    frontal_image: FrameSource | None = None
    images: tuple[FrameSource, ...] = ()
    videos: tuple[FrameSource, ...] = ()
    voices: tuple[FrameSource, ...] = ()
    tags: tuple[str, ...] = ()
    id: str | None = None  # a provider-side element id to reuse instead of creating one


@dataclass(frozen=True, slots=True)
class ShotFields:
    """The settings of one level (storyboard defaults, scene defaults or a shot).

    None means "not set at this level"; `locations` maps each set field to where it was set.
    """

    prompt: Prompt | None = None
    multi_prompt: tuple[PromptSegment, ...] | None = None
    negative_prompt: str | None = None
    duration: int | None = None
    size: tuple[int, int] | None = None
    aspect: str | None = None
    audio: bool | None = None
    first_frame: FrameSource | None = None
    last_frame: FrameSource | None = None
    reference_images: tuple[FrameSource, ...] | None = None
    video: FrameSource | None = None
    reference_videos: tuple[FrameSource, ...] | None = None
    elements: tuple[ElementRef, ...] | None = None
    provider: str | None = None
    model: str | None = None
    cfg_scale: float | None = None
    takes: int | None = None
    pick: int | None = None
    output_format: str | None = None
    quality: int | None = None
    provider_options: Mapping[str, Any] | None = None
    locations: Mapping[str, Location] = field(default_factory=lambda: EMPTY)


SHOT_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(ShotFields) if f.name != "locations")


@dataclass(frozen=True, slots=True)
class Shot:
    id: str
    fields: ShotFields
    location: Location | None = None


@dataclass(frozen=True, slots=True)
class Scene:
    id: str
    shots: tuple[Shot, ...]
    defaults: ShotFields = ShotFields()
    location: Location | None = None


@dataclass(frozen=True, slots=True)
class Output:
    """One film to assemble: `path` relative to the project root."""

    path: str
    sequence: tuple[str, ...]
    crossfade_s: float = 0.0  # 0 means hard cuts
    location: Location | None = None
    sequence_locations: tuple[Location | None, ...] = ()
    crossfade_location: Location | None = None


@dataclass(frozen=True, slots=True)
class Storyboard:
    version: int
    name: str
    path: Path  # the storyboard file (absolute)
    display_path: str  # as the user named it, for messages
    defaults: ShotFields
    elements: Mapping[str, Element]
    scenes: tuple[Scene, ...]
    outputs: tuple[Output, ...]
    outputs_given: bool = True
    store: str | None = None  # the shared artifact store's URL (share/artifacts.py)

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def shots(self) -> tuple[Shot, ...]:
        return tuple(s for scene in self.scenes for s in scene.shots)


@dataclass(frozen=True, slots=True)
class ResolvedShot:
    """A shot with every inherited setting applied and every reference checked."""

    id: str
    scene: str
    index: int  # position in storyboard order
    provider: str
    model: str
    prompt: Prompt | None = None
    multi_prompt: tuple[PromptSegment, ...] | None = None
    negative_prompt: str | None = None
    duration: int | None = None
    size: tuple[int, int] | None = None
    aspect: str | None = None
    audio: bool | None = None
    first_frame: FrameSource | None = None
    last_frame: FrameSource | None = None
    reference_images: tuple[FrameSource, ...] = ()
    video: FrameSource | None = None
    reference_videos: tuple[FrameSource, ...] = ()
    elements: tuple[Element, ...] = ()  # in order of first use: prompt refs, then the explicit list
    cfg_scale: float | None = None
    takes: int = 1
    pick: int = 1
    output_format: str | None = None
    quality: int | None = None
    provider_options: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    location: Location | None = None  # the shot's `id`
    # field -> where its effective value was set
    locations: Mapping[str, Location] = field(default_factory=lambda: EMPTY)

    def where(self, name: str) -> Location | None:
        """Where the effective value of field `name` was written (else the shot itself)."""
        return self.locations.get(name, self.location)

    @property
    def chains(self) -> tuple[FrameSource, ...]:
        """Every input taken from another shot's clip."""
        srcs = [self.first_frame, self.last_frame, self.video, *self.reference_images]
        srcs += list(self.reference_videos)
        return tuple(s for s in srcs if s is not None and s.is_chain)


@dataclass(frozen=True, slots=True)
class Resolved:
    """The result of resolve: the storyboard and its shots in storyboard order."""

    storyboard: Storyboard
    shots: tuple[ResolvedShot, ...]
    outputs: tuple[Output, ...] = ()  # with defaults applied: every sequence is explicit

    def shot(self, shot_id: str) -> ResolvedShot:
        for s in self.shots:
            if s.id == shot_id:
                return s
        raise KeyError(shot_id)
