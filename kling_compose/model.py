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
from .paths import ProjectPaths

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


NARRATOR = "narrator"  # the speaker of an off-screen voice: no element, no lip sync


@dataclass(frozen=True, slots=True)
class Line:
    """One line of dialogue: who says it, the words, and how (`tone`, optional)."""

    speaker: str  # an element's name, or NARRATOR
    text: str
    tone: str | None = None
    location: Location | None = None  # the line's mapping
    speaker_location: Location | None = None

    @property
    def words(self) -> int:
        return len(self.text.split())


@dataclass(frozen=True, slots=True)
class PromptSegment:
    """One segment of a multi_prompt."""

    prompt: Prompt
    duration_s: int
    location: Location | None = None
    dialogue: tuple[Line, ...] = ()


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
    voice: FrameSource | None = None  # a 5-30 s sample the provider makes a voice of, once
    voice_id: str | None = None  # or a voice the provider account already has

    @property
    def has_voice(self) -> bool:
        return self.voice is not None or self.voice_id is not None


@dataclass(frozen=True, slots=True)
class Framing:
    """Where a reframed deliverable keeps a shot's centre: fractions of width and height."""

    focus: tuple[float, float] = (0.5, 0.5)


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
    dialogue: tuple[Line, ...] | None = None
    framing: Framing | None = None
    keyframes: tuple[FrameSource, ...] | None = None
    resolution: str | None = None
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
class Transition:
    """How the film goes into a piece: a cut, a crossfade (the two overlap: the film is
    shorter by `seconds`) or a dip through black (out over half, in over half: no overlap)."""

    kind: str = "cut"  # cut | crossfade | dip
    seconds: float = 0.0
    location: Location | None = None


CUT = Transition()


@dataclass(frozen=True, slots=True)
class Piece:
    """One item of an output's sequence: a shot (trimmed to `start_s`..`end_s` seconds of its
    clip) or a title card (`title`, `duration_s`, over `background`: a colour or an image)."""

    shot: str | None = None
    start_s: float | None = None  # `in`
    end_s: float | None = None  # `out`
    transition: Transition | None = None  # into this piece; None: the output's transition
    title: str | None = None
    subtitle: str | None = None
    duration_s: float | None = None
    background: FrameSource | str | None = None  # an image, or a colour ("black", "#102030")
    location: Location | None = None

    @property
    def is_title(self) -> bool:
        return self.shot is None


@dataclass(frozen=True, slots=True)
class Watermark:
    """A logo over every frame of one output."""

    image: FrameSource
    corner: str = "bottom-right"  # top-left | top-right | bottom-left | bottom-right
    opacity: float = 0.8
    scale: float = 0.12  # the logo's width as a fraction of the film's width
    location: Location | None = None


@dataclass(frozen=True, slots=True)
class OutputAudio:
    """An output's mix: a music bed (gain, ducking under dialogue) and a loudness target."""

    music: FrameSource | None = None
    music_gain_db: float = -18.0
    duck_db: float = 10.0
    loudness_lufs: float | None = None  # integrated LUFS; None: no normalisation
    true_peak_db: float = -1.0
    location: Location | None = None


@dataclass(frozen=True, slots=True)
class Output:
    """One film to assemble: `path` relative to the project root."""

    path: str
    sequence: tuple[str, ...]  # the shots, in order (title cards aside)
    crossfade_s: float = 0.0  # 0 means hard cuts
    location: Location | None = None
    sequence_locations: tuple[Location | None, ...] = ()
    crossfade_location: Location | None = None
    # issue 24: the edit and the deliverable; the defaults make the film of before
    pieces: tuple[Piece, ...] = ()  # the sequence as written; () means one piece per shot
    transition: Transition = CUT  # the default transition into each piece
    fade_in_s: float = 0.0
    fade_out_s: float = 0.0
    subtitles: tuple[str, ...] = ()  # srt | vtt
    burn_in: bool = False
    audio: OutputAudio | None = None
    aspect: str | None = None  # "9:16"
    size: tuple[int, int] | None = None
    reframe: str = "crop"  # crop | pad | generate
    preset: str = "web"  # web | master
    watermark: Watermark | None = None


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
    profile: str | None = None  # the `--profile` applied to `defaults` (None: none)
    profiles: tuple[str, ...] = ()  # every profile the storyboard declares

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def paths(self) -> ProjectPaths:
        """Where this storyboard's project keeps its lock and renders (the profile's own)."""
        return ProjectPaths(self.root, self.profile, self.path.stem)

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
    # the frames between first_frame and last_frame, in order, spaced evenly (Kling 4.0)
    keyframes: tuple[FrameSource, ...] = ()
    video: FrameSource | None = None
    reference_videos: tuple[FrameSource, ...] = ()
    elements: tuple[Element, ...] = ()  # in order of first use: prompt refs, then the explicit list
    cfg_scale: float | None = None
    takes: int = 1
    pick: int = 1
    output_format: str | None = None
    quality: int | None = None
    provider_options: Mapping[str, Any] = field(default_factory=lambda: EMPTY)
    dialogue: tuple[Line, ...] = ()  # the shot's own lines (a multi_prompt's are on its segments)
    focus: tuple[float, float] = (0.5, 0.5)
    resolution: str | None = None  # "720p" | "1080p" | "4k" as written; None: the model's own
    location: Location | None = None  # the shot's `id`
    # field -> where its effective value was set
    locations: Mapping[str, Location] = field(default_factory=lambda: EMPTY)

    def where(self, name: str) -> Location | None:
        """Where the effective value of field `name` was written (else the shot itself)."""
        return self.locations.get(name, self.location)

    @property
    def lines(self) -> tuple[tuple[Line, float, float], ...]:
        """Every line of the shot with the span of the clip it is spoken in (seconds): the
        whole clip for the shot's own lines, its segment's span for a multi_prompt's."""
        if not self.dialogue and not self.multi_prompt:
            return ()  # most shots: no lines (every stage asks, for every shot)
        if self.multi_prompt:
            spans, start = [], 0.0
            for seg in self.multi_prompt:
                spans += [(line, start, start + seg.duration_s) for line in seg.dialogue]
                start += seg.duration_s
            return tuple(spans)
        end = float(self.duration or 5)
        return tuple((line, 0.0, end) for line in self.dialogue)

    @property
    def speakers(self) -> tuple[str, ...]:
        """Each speaker once, in order of first line."""
        return tuple(dict.fromkeys(line.speaker for line, _, _ in self.lines))

    @property
    def chains(self) -> tuple[FrameSource, ...]:
        """Every input taken from another shot's clip."""
        srcs = [self.first_frame, self.last_frame, self.video, *self.reference_images,
                *self.keyframes]
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
