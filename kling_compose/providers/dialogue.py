"""Dialogue as a provider's prompt carries it, and the voices that speak it.

Every provider writes a shot's lines into the prompt they belong to (the shot's own prompt, or
their multi_prompt segment's), one line each, in the form Kling 3.0's native audio lip-syncs
to: `[<speaker>, <tone>]: "<line>"`, the speaker named as the provider names the element
(fal `@Element1`, Kling and Runware `<<<element_1>>>`, kie `@mara`), the narrator as an
off-screen voice-over (docs/providers.md, "Dialogue and voices", gives each source).

Voices bind where a provider's API has them: a voice id on the speaking element (fal's
`elements[].voice_id`, Kling's `element_voice_id`), made once of the element's `voice:`
sample by the provider's create-voice API (the `voice` task kind), or the sample itself as
the element's audio (Runware `voices`, kie `element_input_audio_urls`). Elsewhere the line
goes into the prompt alone, with a warning. The shared checks are here: how many voices one
generation binds, a sample's format and length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from ..errors import Diagnostic, Location
from ..model import NARRATOR, Element, Line, Prompt, ResolvedShot
from .base import PLACEHOLDER_PREFIX

# The narrator is nobody in the frame: an off-screen voice-over, no element, no lip sync.
# No provider documents a form for it [inferred]: the label says what it is in words.
NARRATOR_LABEL = "Narrator, off-screen voice-over"

# fal create-voice (`voice_url`: "Supports .mp3/.wav audio or .mp4/.mov video. Duration must
# be 5-30 seconds with clean, single-voice audio") and Kling's custom voices (`voice_url`
# "支持.mp3/.wav/.mp4/.mov，5-30秒"): the same limits
SAMPLE_SUFFIXES = (".mp3", ".wav", ".mp4", ".mov")
SAMPLE_S = (5.0, 30.0)

# An empty prompt: what a shot with lines but no prompt sends them in.
SPOKEN_ONLY = Prompt(())


def lines_of(shot: ResolvedShot, prompt: Prompt) -> tuple[Line, ...]:
    """The lines spoken with `prompt`: the shot's own for its prompt, a segment's for the
    segment's (matched by identity: two segments may hold equal prompts)."""
    if prompt is shot.prompt or prompt is SPOKEN_ONLY:
        return shot.dialogue
    for seg in shot.multi_prompt or ():
        if seg.prompt is prompt:
            return seg.dialogue
    return ()


def main_prompt(shot: ResolvedShot) -> Prompt | None:
    """The shot's prompt, or an empty one that carries its lines when it has none."""
    if shot.prompt is not None:
        return shot.prompt
    return SPOKEN_ONLY if shot.dialogue and not shot.multi_prompt else None


def line_text(line: Line, speaker: str) -> str:
    """`[speaker, tone]: "words"`, on one line of the prompt: a double quote in the words
    becomes a single one, so the line's quotes stay the line's, a bracket in the tone a
    parenthesis, so the label ends where it should, and line breaks spaces."""
    tone = " ".join(line.tone.split()).replace("[", "(").replace("]", ")") if line.tone else ""
    tags = [speaker] + ([tone] if tone else [])
    words = " ".join(line.text.split()).replace('"', "'")
    return f'[{", ".join(tags)}]: "{words}"'


def spoken(text: str, lines: Iterable[Line], speaker: Callable[[Line], str]) -> str:
    """`text` with each line after it, one a line."""
    said = [line_text(line, speaker(line)) for line in lines]
    if not said:
        return text
    return "\n".join([text, *said] if text else said)


def speaker_of(shot: ResolvedShot, reference: Callable[[int, Element], str]) -> Callable[[Line], str]:
    """The speaker label of a line: the element as the provider refers to it (`reference(N,
    element)`, N its place among the shot's elements), the narrator as a voice-over, a name
    that is no element of the shot as written."""
    numbers = {e.name: (n, e) for n, e in enumerate(shot.elements, 1)}

    def label(line: Line) -> str:
        if line.speaker == NARRATOR:
            return NARRATOR_LABEL
        found = numbers.get(line.speaker)
        return reference(*found) if found is not None else line.speaker

    return label


def voiced(shot: ResolvedShot) -> tuple[Element, ...]:
    """The shot's elements that speak in it and have a voice, in order of their first line."""
    speakers = shot.speakers
    if not speakers:
        return ()  # most shots: nobody speaks
    elements = {e.name: e for e in shot.elements}
    speaking = (elements.get(name) for name in speakers)
    return tuple(e for e in speaking if e is not None and e.has_voice)


def voice_placeholder(element: Element) -> str:
    """What a request holds for the voice the run makes of `element.voice`: the engine puts
    the provider's voice id there (the `voice` task's result)."""
    return f"{PLACEHOLDER_PREFIX}voice:{element.name}"


def voice_value(element: Element) -> str:
    """An element's voice id as a request sends it: its `voice_id:`, or the placeholder of the
    voice made of its sample."""
    return element.voice_id if element.voice_id is not None else voice_placeholder(element)


def voice_where(element: Element) -> Location | None:
    source = element.voice
    return (source.location if source is not None else None) or element.location


def check_voice_count(shot: ResolvedShot, provider: str, most: int, source: str,
                      bound: Iterable[Element] | None = None) -> list[Diagnostic]:
    """More voiced speakers in one generation than the provider binds (`bound`: the speakers
    whose voice it binds, when not every voiced one)."""
    speakers = voiced(shot) if bound is None else tuple(bound)
    if len(speakers) <= most:
        return []
    extra = speakers[most]
    line = next((line for line, _, _ in shot.lines if line.speaker == extra.name), None)
    where = (line.speaker_location or line.location) if line is not None else None
    names = ", ".join(e.name for e in speakers)
    return [Diagnostic(
        f"{len(speakers)} voices speak in shot '{shot.id}' ({names}); {provider} binds at "
        f"most {most} per generation",
        where or shot.where("dialogue"),
        f"{source}; split the lines over shots (or multi_prompt shots), or drop `voice:` from "
        "an element that speaks little",
    )]


_KIND_NAMES = {"url": "an http(s) URL", "path": "a local file", "data": "a data URI",
               "uuid": "a provider asset UUID", "chain": "a chained clip"}


def check_sample_kinds(shot: ResolvedShot, provider: str, kinds: frozenset[str]
                       ) -> list[Diagnostic]:
    """A voiced speaker's sample written in a form the provider cannot receive."""
    return [Diagnostic(
        f"element '{e.name}': {provider} does not take {_KIND_NAMES.get(e.voice.kind, e.voice.kind)} "
        "as a voice sample",
        voice_where(e),
        "give " + " or ".join(_KIND_NAMES[k] for k in sorted(kinds, reverse=True))
        + (" (uploaded at run time)" if "path" in kinds else "")
        + ", or the id of a voice your account has (`voice_id:`)",
    ) for e in voiced(shot) if e.voice is not None and e.voice.kind not in kinds]


def check_samples(shot: ResolvedShot, provider: str, source: str,
                  suffixes: tuple[str, ...] = SAMPLE_SUFFIXES,
                  seconds: tuple[float, float] | None = SAMPLE_S,
                  elements: Iterable[Element] | None = None) -> list[Diagnostic]:
    """Each voiced speaker's `voice:` sample (or each of `elements`') in a format and of a
    length the provider takes: a local file by its suffix and its measured duration, a URL by
    its suffix."""
    diags = []
    for element in voiced(shot) if elements is None else elements:
        sample = element.voice
        if sample is None:
            continue
        where = voice_where(element)
        name = sample.value.split("?", 1)[0].split("#", 1)[0]
        suffix = Path(name).suffix.lower()
        if sample.kind in ("path", "url") and suffix not in suffixes:
            diags.append(Diagnostic(
                f"element '{element.name}': voice sample '{sample.value}' is not one of "
                f"{'/'.join(suffixes)}; {provider} takes only those",
                where, f"{source}; convert it, e.g. `ffmpeg -i {Path(name).name} voice.wav`",
            ))  # fmt: skip
            continue
        if sample.kind != "path" or sample.path is None or seconds is None:
            continue
        length = sample_seconds(sample.path)
        if length is None:
            diags.append(Diagnostic(
                f"element '{element.name}': cannot read voice sample '{sample.value}' "
                "(no audio stream found)",
                where, f"give a clean recording of one voice, {seconds[0]:g}-{seconds[1]:g} s",
            ))  # fmt: skip
        elif not seconds[0] <= length <= seconds[1]:
            diags.append(Diagnostic(
                f"element '{element.name}': voice sample '{sample.value}' lasts {length:.1f} s; "
                f"{provider} takes {seconds[0]:g}-{seconds[1]:g} s",
                where, f"{source}; cut or record a sample of {seconds[0]:g}-{seconds[1]:g} s "
                "of one clean voice",
            ))  # fmt: skip
    return diags


_SECONDS: dict[tuple[Path, int, int], float | None] = {}


def sample_seconds(path: Path) -> float | None:
    """A local sample's duration from its first audio stream (PyAV), cached by path, size and
    modification time; None when it has no readable audio."""
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key not in _SECONDS:
        _SECONDS[key] = _measure(path)
    return _SECONDS[key]


def _measure(path: Path) -> float | None:
    from ..media.ffmpeg import audio_seconds  # lazy: PyAV, and validate must start fast

    return audio_seconds(path)


def prompt_only(shot: ResolvedShot, provider: str, why: str, elements: Iterable[Element]
                ) -> list[Diagnostic]:
    """The warning of a voice a provider cannot bind: its lines go into the prompt alone.
    One per element and provider (the message does not name the shot, so the CLI, which
    prints each distinct warning once, says it once however many shots it speaks in)."""
    return [Diagnostic(
        f"{provider} cannot bind the voice of element '{e.name}' ({why}): its lines go into "
        "the prompt alone, spoken in a voice the model picks",
        voice_where(e) if e.voice is not None else e.location,
        "use a provider that binds voices (fal, kling; runware and kie take a `voice:` sample "
        "file), or keep it: the words and tone are still sent",
        severity="warning",
    ) for e in elements]
