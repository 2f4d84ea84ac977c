"""`kling-compose export`: an assembled film's timeline for an editor, as OpenTimelineIO or a
CMX 3600 EDL (through OTIO's `otio-cmx3600-adapter`).

The timeline is the one `media/assemble.py` (a plain film) or `media/cut.py` (an edited one)
made, read from what the run recorded (the plan, the ledger, the clips in renders/shots, the
cues the run kept), never re-derived from the storyboard alone: one clip per shot piece (the
picked take, as `run` exported it), its in point and duration in frames of the film's rate,
each crossfade as an OTIO Transition, each dip as a fade out to a zero-length gap (black) and
a fade up from it, each title card a black generator clip named by its title; the music on a
track of its own and each cue of dialogue a marker. A film that is not assembled from the
current storyboard is refused. Before anything is written, the timeline's length is checked
against the assembled film's own frame count.

opentimelineio is imported here only (and this module only by the `export` command), so no
other command pays for it at start-up. It is an optional dependency (the `export` extra, with
the EDL adapter): without it, `export` is one UserError saying how to install it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UserError, did_you_mean
from ..paths import profiled
from ..media.ffmpeg import ClipInfo

if TYPE_CHECKING:  # plan.py imports networkx: only its names are needed here
    from ..plan import DeliveryParams, Task
    from ..project.state import Record

FORMATS = {"otio": ".otio", "edl": ".edl"}
EXPORT_EXTRA = "pip install 'kling-compose[export]'"
# what each format needs: (module, what it is)
NEEDS = {"otio": [("opentimelineio", "OpenTimelineIO")],
         "edl": [("opentimelineio", "OpenTimelineIO"),
                 ("otio_cmx3600_adapter", "OpenTimelineIO's CMX 3600 adapter")]}
NAMESPACE = "kling_compose"  # the metadata key every clip and the timeline carry
REEL_CHARS = 8  # CMX 3600 reel names: at most 8 characters
MARKER_COLOR = "YELLOW"  # the dialogue's markers
MUSIC_FADE_S = 2.0  # media/mix.py's bed fades in and out over this (bed_filter's fade_s)


@dataclass(frozen=True, slots=True)
class Placed:
    """One shot where the film shows it: its clip and the film frame its first frame (the
    first frame of its trim) lands on, and how it is joined to the piece before."""

    shot: str
    clip: Path  # renders/shots/<shot><suffix>, the picked take
    info: ClipInfo
    frames: int  # frames it has at the film's rate
    start: int  # the film frame showing its first frame used (frame 0 when untrimmed)
    task: Task  # the plan's generate task
    record: Record  # its ledger row
    first: int = 0  # the first source frame used (its in trim), in frames of the film's rate
    into: str = "cut"  # cut | crossfade (overlaps the piece before) | dip (through black)
    into_frames: int = 0  # the frames that transition takes
    into_s: float = 0.0  # its seconds as written
    trim: tuple[float, float | None] = (0.0, None)  # in and out as written, seconds


@dataclass(frozen=True, slots=True)
class Card:
    """A title card where the film shows it: silence under a still of its text."""

    title: str
    subtitle: str
    background: str  # a colour, or an image's absolute path
    duration_s: float
    frames: int
    start: int
    into: str = "cut"
    into_frames: int = 0
    into_s: float = 0.0
    first: int = 0  # a card has no trim: its source starts at 0


Piece = Placed | Card


@dataclass(frozen=True, slots=True)
class Film:
    """An assembled output as its pieces in film order; overlaps[i] joins pieces i and i + 1
    (the frames a crossfade blends; 0 for a cut or a dip)."""

    path: str  # as in the storyboard's outputs
    crossfade_s: float
    fps: Fraction
    frames: int
    pieces: tuple[Piece, ...]
    overlaps: tuple[int, ...]
    record: Record  # the assemble task's ledger row
    edited: bool = False  # made by media/cut.py from its pieces and delivery
    cues: tuple[dict, ...] = ()  # the dialogue in film time: start_s, end_s, text, speaker
    delivery: DeliveryParams | None = None  # how an edited film was finished

    @property
    def shots(self) -> tuple[Placed, ...]:
        return tuple(p for p in self.pieces if isinstance(p, Placed))


def export_films(plan, fmt: str, *, output: str | None = None, out: Path | None = None,
                 edl_style: str = "avid") -> list[Path]:
    """Write the timeline of each assembled film (or of the one `output` names, to `out`) as
    `fmt`; the files written. A UserError if a film is not assembled from the current plan,
    or the `export` extra is not installed."""
    require_export_extra(fmt)
    outputs = chosen_outputs(plan, output, out)
    films = assembled_films(plan, outputs)
    from ..files import project_files

    root = plan.resolved.storyboard.root
    protected = project_files(plan.resolved)
    written = []
    for film in films:
        target = out if out is not None else root / default_name(plan, film.path, fmt)
        display = str(out) if out is not None else default_name(plan, film.path, fmt)
        _target(target, display, protected)  # refused before any timeline is built
        timeline = build_timeline(plan, film, root, Path(os.path.abspath(target)).parent)
        write_text(target, timeline_text(timeline, fmt, edl_style, film.fps), display,
                   protected)
        written.append(target)
    return written


def require_export_extra(fmt: str) -> None:
    """Refuse, before anything is read or written, an export whose libraries (the `export`
    extra) are not installed: one message naming the extra, never an ImportError."""
    import importlib

    for module, name in NEEDS.get(fmt, NEEDS["otio"]):
        try:
            importlib.import_module(module)
        except ImportError:
            raise UserError.single(
                f"kling-compose export --format {fmt} needs {name} ({module}), which is not "
                "installed",
                hint=f"install the export extra: {EXPORT_EXTRA} (from a checkout: pip install "
                     "'.[export]'; pipx: pipx install --force '.[export]')") from None


def _target(target: Path, display: str, protected=None) -> Path:
    from ..files import output_target

    return output_target(target, display, what="the timeline", protected=protected,
                         may_replace=is_timeline, make_parents=True,
                         hint="give -o the path of a new .otio or .edl file")


def is_timeline(path: Path) -> bool:
    """An existing file export may replace: empty, or a timeline (OTIO or EDL) by its name or
    its first bytes, never any other file (a storyboard, a film, a picture)."""
    from ..files import head

    data = head(path, 4096)
    if data is None:
        return False
    if path.suffix.lower() in FORMATS.values() or not data.strip():
        return True
    text = data.lstrip()
    return (text.startswith(b"{") and b'"OTIO_SCHEMA"' in text) or text.startswith(b"TITLE:")


def chosen_outputs(plan, name: str | None, out: Path | None) -> list:
    """The storyboard's outputs to export: all, or the one `name` names (its path as written,
    its file name or its stem)."""
    outputs = list(plan.resolved.outputs)
    if not outputs:
        raise UserError.single("this storyboard assembles no film (`outputs: []`)",
                               hint="add an output to export its timeline")
    if name is not None:
        profile = plan.resolved.storyboard.profile
        named = profiled(name, profile) if profile and Path(name).suffix else name
        if profile and not Path(name).suffix:
            named = f"{name}.{profile}"  # the stem as written in the storyboard
        outputs = [o for o in outputs
                   if {name, named} & {o.path, Path(o.path).name, Path(o.path).stem}]
        if not outputs:
            paths = [o.path for o in plan.resolved.outputs]
            names = [n for p in paths for n in (p, Path(p).name, Path(p).stem)]
            hint = did_you_mean(name, dict.fromkeys(names)) or "one of " + ", ".join(paths)
            raise UserError.single(f"no output named '{name}'", hint=hint)
        if len(outputs) > 1:
            raise UserError.single(f"'{name}' names several outputs: "
                                   + ", ".join(o.path for o in outputs),
                                   hint="give the output's path, as in the storyboard")
    if out is not None and len(outputs) > 1:
        raise UserError.single(f"-o/--out writes one file, and this storyboard has "
                               f"{len(outputs)} films", hint="choose one with --output NAME "
                               "(" + ", ".join(o.path for o in outputs) + ")")
    return outputs


def default_name(plan, film_path: str, fmt: str) -> str:
    """Beside the film, named after it (renders/trailer.mp4 -> renders/trailer.otio); the full
    file name when another output shares the stem (renders/loop.mov.otio)."""
    path = Path(film_path)
    twins = [o for o in plan.resolved.outputs
             if Path(o.path).with_suffix("") == path.with_suffix("")]
    stem = path.name if len(twins) > 1 else path.stem
    return (path.parent / (stem + FORMATS[fmt])).as_posix()


# -- what the run made ---------------------------------------------------------------------

def assembled_films(plan, outputs) -> list[Film]:
    """Each output as the run assembled it; a UserError naming what is missing otherwise."""
    from ..project.decide import read_statuses
    from ..project.state import State, state_path

    root = plan.resolved.storyboard.root
    statuses = read_statuses(plan)
    problems = [p for o in outputs if (p := _not_assembled(plan, o, statuses))]
    if problems:
        raise UserError(*problems)
    state = State(state_path(root), readonly=True)
    try:
        return [_film(plan, o, state) for o in outputs]
    finally:
        state.close()


def _not_assembled(plan, output, statuses: dict):
    """A Diagnostic if the output's film (or a clip of it) is not done for the current plan."""
    from ..errors import Diagnostic

    shots = [s for s in dict.fromkeys(output.sequence)
             if statuses.get(f"generate:{s}") != "cached"]
    if not shots and statuses.get(f"assemble:{output.path}") == "cached":
        return None
    why = (f"no finished clip for shot(s) {', '.join(shots)} (never run, failed, or changed "
           "since)") if shots else "the film was not assembled from the storyboard as it is now"
    return Diagnostic(f"{output.path} is not assembled yet: {why}", output.location,
                      f"run `{_run_command(plan)}` first: export describes the film a run made")


def _run_command(plan) -> str:
    from ..plan import PREVIEW_SHORT_SIDE

    words = ["kling-compose run"]
    if plan.resolved.storyboard.profile:
        words.append(f"--profile {plan.resolved.storyboard.profile}")
    if plan.provider:
        words.append(f"--provider {plan.provider}")
    if plan.preview_short_side != PREVIEW_SHORT_SIDE:
        words.append(f"--preview-resolution {plan.preview_short_side}")
    return " ".join(words)


def _film(plan, output, state) -> Film:
    """The output's placed pieces, checked against the film the ledger records."""
    from ..media.ffmpeg import probe
    from ..paths import ProjectPaths
    from ..project.store import Store

    root = plan.resolved.storyboard.root
    params = plan.tasks[f"assemble:{output.path}"].assemble_params
    assembled = state.get(plan.tasks[f"assemble:{output.path}"].cache_key)
    picked = {s: _picked_clip(plan, s, state) for s in dict.fromkeys(output.sequence)}
    infos = {s: probe(clip) for s, (clip, _task, _record) in picked.items()}
    store = Store(ProjectPaths(root).state)
    if params.edited:
        film = _edited_film(output.path, params, picked, assembled, store)
        explain = "media/cut.py lays them out"
    else:
        film = _plain_film(output, picked, infos, assembled)
        explain = (f"media/assemble.py joins them (crossfade {output.crossfade_s:g} s, clips "
                   f"of {[p.frames for p in film.shots]} frames at {film.fps} fps)")
    digest, suffix = assembled.artifacts[0]
    measured = probe(store.path(digest, suffix)).frame_count
    if measured != film.frames:
        # a bug, here or in the assembler: never hand an editor a timeline that is not the film
        raise RuntimeError(
            f"export: {output.path} has {measured} frames, but its pieces placed as "
            f"{explain} give {film.frames}")
    return film


def _plain_film(output, picked: dict, infos: dict, assembled) -> Film:
    """A film joined as it is (media/assemble.py): whole clips, cuts or one crossfade."""
    fps = infos[output.sequence[0]].fps  # the assembler brings every clip to the first's rate
    frames = [_frames_at(infos[s], fps) for s in output.sequence]
    starts, overlaps = film_layout(frames, fps, output.crossfade_s)
    shots = tuple(Placed(s, picked[s][0], infos[s], n, start, picked[s][1], picked[s][2],
                         into="crossfade" if i and overlaps[i - 1] else "cut",
                         into_frames=overlaps[i - 1] if i else 0,
                         into_s=output.crossfade_s if i and overlaps[i - 1] else 0.0)
                  for i, (s, n, start) in enumerate(zip(output.sequence, frames, starts)))
    return Film(output.path, output.crossfade_s, fps, starts[-1] + frames[-1], shots,
                tuple(overlaps), assembled)


def _edited_film(path: str, params, picked: dict, assembled, store) -> Film:
    """An edited film (media/cut.py): its pieces placed by the renderer's own layout (trims
    to whole frames, crossfades overlapping, dips and cards keeping their length)."""
    from ..media.cut import Part, layout  # the renderer's own rule, not a copy of it

    parts = [Part(clip=picked[p.shot][0] if p.shot is not None else None,
                  start_s=p.start_s, end_s=p.end_s, transition=p.transition,
                  transition_s=p.transition_s, title=p.title, subtitle=p.subtitle,
                  duration_s=p.duration_s) for p in params.pieces]
    laid = layout(parts)
    fps = laid.fps
    pieces: list[Piece] = []
    for cut, at in zip(params.pieces, laid.pieces):
        into_s = cut.transition_s if at.into != "cut" else 0.0
        if cut.shot is None:
            pieces.append(Card(cut.title, cut.subtitle, cut.background, cut.duration_s,
                               at.frames, at.start, at.into, at.into_frames,
                               into_s))
            continue
        clip, task, record = picked[cut.shot]
        info = at.info
        assert info is not None  # a shot's part: its clip was probed
        own = info.fps or fps
        first = at.first if own == fps else round(at.first * fps / own)
        pieces.append(Placed(cut.shot, clip, info, at.frames, at.start, task,
                             record, first, at.into, at.into_frames, into_s,
                             (cut.start_s, cut.end_s)))
    overlaps = tuple(p.into_frames if p.into == "crossfade" else 0 for p in pieces[1:])
    return Film(path, params.crossfade_s, fps, laid.frames, tuple(pieces), overlaps,
                assembled, edited=True, cues=_cues(assembled, store),
                delivery=params.delivery)


def _cues(record, store) -> tuple[dict, ...]:
    """The dialogue cues the run kept beside an edited film (film time), or none."""
    import json

    from ..engine.tasks import CUES_SUFFIX

    for digest, suffix in record.artifacts[1:]:
        if suffix == CUES_SUFFIX:
            return tuple(json.loads(store.path(digest, suffix).read_text(encoding="utf-8")))
    return ()


def _picked_clip(plan, shot: str, state):
    """(renders/shots/<shot><suffix>, task, record): the picked take `run` exported, checked
    to be the very clip the film was made from."""
    from ..project.store import file_sha256

    task = plan.tasks[f"generate:{shot}"]
    record = state.get(task.cache_key)
    digest, suffix = record.artifacts[task.job.shot.pick - 1]
    board = plan.resolved.storyboard
    clip = board.paths.shot_clip(shot, suffix)  # renders/<profile>/shots/ for a profile
    rel = clip.relative_to(board.root).as_posix()
    if not clip.is_file() or file_sha256(clip) != digest:
        state_of = "is missing" if not clip.is_file() else "is not the clip the film was made from"
        raise UserError.single(f"{rel} {state_of}", hint=f"run `{_run_command(plan)}`: it "
                               "writes every shot's picked take to renders/ again, "
                               "without generating anything")
    return clip, task, record


def _frames_at(info: ClipInfo, fps: Fraction) -> int:
    """Frames the clip has in the film (resampled to fps if its rate differs)."""
    from ..media.assemble import (
        _frames_at,  # the assembler's own rule, not a copy of it
    )

    return _frames_at(info, fps)


def film_layout(frames: list[int], fps: Fraction,
                crossfade_s: float) -> tuple[list[int], list[int]]:
    """(the film frame where each clip's frame 0 lands, the frames each join overlaps), as
    media/assemble.py joins clips of `frames` frames at `fps`.

    Cuts: end to end. Crossfades: the assembler chains ffmpeg `xfade`s, the i-th at
    `offset = (length so far, in seconds as it sums them) - crossfade_s`, printed with 6
    decimals. xfade turns the offset into a frame of its input's time base (1/fps after the
    `fps` filter) rounding to nearest, blends from there to the end of the film so far, and
    shows the next clip's frame 0 on that frame (libavfilter/vf_xfade.c: `xfade_activate`).
    So a crossfade of 0.3 s at 24 fps (7.2 frames) overlaps 7 frames.
    """
    if crossfade_s <= 0 or len(frames) < 2:
        starts = [sum(frames[:i]) for i in range(len(frames))]
        return starts, [0] * (len(frames) - 1)
    starts, overlaps = [0], []
    end = frames[0]  # frames of the film so far
    total = float(frames[0] / fps)  # seconds, summed the way the assembler sums them
    duration = _rescale(crossfade_s, fps)
    for n in frames[1:]:
        start = _rescale(total - crossfade_s, fps)
        # xfade ends the blend (and the first input) once it is past its duration
        overlaps.append(min(end - start, duration + 2))
        starts.append(start)
        end = start + n
        total = total + n / fps - crossfade_s
    return starts, overlaps


def _rescale(seconds: float, fps: Fraction) -> int:
    """ffmpeg's av_rescale_q of a duration option (microseconds, as printed with %.6f) to a
    1/fps time base: rounded to nearest, halves away from zero."""
    micros = int(Decimal(f"{seconds:.6f}") * 1_000_000)  # offsets here are never negative
    return math.floor(Fraction(micros, 1_000_000) * fps + Fraction(1, 2))


# -- the timeline ----------------------------------------------------------------------------

def build_timeline(plan, film: Film, root: Path, folder: Path):
    """The OTIO Timeline of `film`: a video track and an audio track (the clips' sound, or a
    gap where a clip has none), media referenced relative to `folder`; for an edited film
    also its title cards, dips and fades, the music (A2) and the dialogue as markers."""
    import opentimelineio as otio

    rate = float(film.fps)
    name = Path(film.path).stem
    timeline = otio.schema.Timeline(name=name, metadata={NAMESPACE: _film_metadata(plan, film,
                                                                                 root, folder)})
    reels = reel_names([p.shot for p in film.shots])
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    audio = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    ranges = _trimmed(film)
    fade_in, fade_out = _fades(film, ranges)
    for track in (video, audio):
        track.extend(_fade_items("in", fade_in, rate))
    for index, (piece, (first, count)) in enumerate(zip(film.pieces, ranges)):
        if index:
            video.extend(_join_items(film, index, rate))
            audio.extend(_join_items(film, index, rate))
        source = otio.opentime.TimeRange(otio.opentime.RationalTime(first, rate),
                                         otio.opentime.RationalTime(count, rate))
        if isinstance(piece, Card):
            video.append(_card(piece, source, root, folder))
            audio.append(otio.schema.Gap(source_range=source,
                                         name=f"{_label(piece)} (title card: silence)"))
            continue
        meta = {NAMESPACE: _shot_metadata(piece, root, film.edited)}
        video.append(_clip(piece, source, folder, meta, reels[piece.shot]))
        if piece.info.has_audio:
            audio.append(_clip(piece, source, folder, meta, reels[piece.shot]))
        else:  # the assembler lays silence under a clip without sound
            audio.append(otio.schema.Gap(source_range=source, name=f"{piece.shot} (no audio)"))
    for track in (video, audio):
        track.extend(_fade_items("out", fade_out, rate))
    timeline.tracks.append(video)
    timeline.tracks.append(audio)
    music = _music_track(plan, film, root, folder) if film.edited else None
    if music is not None:
        timeline.tracks.append(music)
    timeline.tracks.markers.extend(_marker(cue, rate) for cue in film.cues)
    return timeline


def _trimmed(film: Film) -> list[tuple[int, int]]:
    """(first source frame, frames) each piece has on the track: every crossfade centred on
    its cut (the earlier half, rounded down, before it); a dip's cut is where the next piece
    starts."""
    cuts = [0]
    for piece, overlap in zip(film.pieces[1:], film.overlaps):
        cuts.append(piece.start + overlap // 2)
    cuts.append(film.frames)
    return [(p.first + cuts[i] - p.start, cuts[i + 1] - cuts[i])
            for i, p in enumerate(film.pieces)]


def _label(piece: Piece) -> str:
    if isinstance(piece, Placed):
        return piece.shot
    return piece.title or piece.subtitle or "title card"


def _join_items(film: Film, index: int, rate: float) -> list:
    """What joins piece `index` to the one before on a track: nothing (a cut), a Transition
    (a crossfade), or a dip: a fade out to a zero-length gap (black, silence) and a fade up
    from it (OTIO has no dip-to-black transition; this is how an EDL writes one)."""
    piece = film.pieces[index]
    if piece.into == "crossfade":
        return [_transition(film, index, rate)]
    if piece.into != "dip":
        return []

    n = piece.into_frames
    out, up = n // 2, n - n // 2  # as media/cut.py fades: out over the first half
    a, b = _label(film.pieces[index - 1]), _label(piece)
    meta = {NAMESPACE: {"dip_s": piece.into_s, "frames": n}}
    return [*_fade_to_black(f"dip {a} -> {b}: out", out, rate, meta, before=True),
            _black(f"black (dip {a} -> {b})", out, rate),
            *_fade_to_black(f"dip {a} -> {b}: in", up, rate, meta, before=False)]


def _black(name: str, after: int, rate: float):
    """The zero-length gap a fade to black reaches: black, and silence. Its range starts
    `after` frames in, the frames of the fade before it, so that an EDL (which starts a
    dissolve on its cut, moving the gap's in point back by them) writes its BL event from
    00:00:00:00 rather than a negative timecode."""
    import opentimelineio as otio

    return otio.schema.Gap(name=name, source_range=otio.opentime.TimeRange(
        otio.opentime.RationalTime(after, rate), otio.opentime.RationalTime(0, rate)))


def _fade_to_black(name: str, frames: int, rate: float, metadata: dict, *,
                   before: bool) -> list:
    """A dissolve between a piece and black of `frames` frames, all of them the piece's own
    (before the cut for a fade out, after it for a fade up): no handle is needed."""
    import opentimelineio as otio

    if frames <= 0:
        return []
    zero, span = otio.opentime.RationalTime(0, rate), otio.opentime.RationalTime(frames, rate)
    return [otio.schema.Transition(
        name=name, transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
        in_offset=span if before else zero, out_offset=zero if before else span,
        metadata=metadata)]


def _fades(film: Film, ranges: list[tuple[int, int]]) -> tuple[int, int]:
    """The frames of the film's fade in and out (media/cut.py's rounding), each kept inside
    the first or last piece's place on the track."""
    if not film.edited:
        return 0, 0
    delivery = film_delivery(film)
    fade_in, fade_out = (min(film.frames, round(s * film.fps))
                         for s in (delivery.fade_in_s, delivery.fade_out_s))
    return min(fade_in, ranges[0][1]), min(fade_out, ranges[-1][1])


def _fade_items(which: str, frames: int, rate: float) -> list:
    """The film's fade in (black, then a fade up into the first piece) or out."""
    if frames <= 0:
        return []
    black = _black(f"black (fade {which})", frames if which == "out" else 0, rate)
    fade = _fade_to_black(f"fade {which}", frames, rate,
                          {NAMESPACE: {f"fade_{which}_s": frames / rate, "frames": frames}},
                          before=which == "out")
    return [black, *fade] if which == "in" else [*fade, black]


def film_delivery(film: Film) -> DeliveryParams:
    """How an edited film was finished (its assemble task's DeliveryParams)."""
    if film.delivery is None:
        raise TypeError(f"{film.path} is not an edited film")
    return film.delivery


def _transition(film: Film, index: int, rate: float):
    """The crossfade before piece `index`: in_offset before the cut (on the outgoing clip),
    out_offset after it (on the incoming one), together the overlap."""
    import opentimelineio as otio

    overlap = film.overlaps[index - 1]
    before = overlap // 2
    a, b = _label(film.pieces[index - 1]), _label(film.pieces[index])
    return otio.schema.Transition(
        name=f"crossfade {a} -> {b}",
        transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
        in_offset=otio.opentime.RationalTime(before, rate),
        out_offset=otio.opentime.RationalTime(overlap - before, rate),
        metadata={NAMESPACE: {"crossfade_s": film.pieces[index].into_s, "frames": overlap}})


def _card(card: Card, source, root: Path, folder: Path):
    """A title card: a generator clip named by its title (black or a colour, or over an
    image), its reel BL (black) in an EDL, its text in the generator's parameters."""
    import opentimelineio as otio

    image = Path(card.background) if "/" in card.background else None
    available = otio.opentime.TimeRange(
        otio.opentime.RationalTime(0, source.duration.rate),
        otio.opentime.RationalTime(card.frames, source.duration.rate))
    parameters = {"title": card.title, "subtitle": card.subtitle,
                  "color": None if image else card.background,
                  "image": media_url(image, folder) if image else None}
    reference = otio.schema.GeneratorReference(
        name=_label(card), generator_kind="SolidColor", available_range=available,
        parameters=parameters)
    meta = {NAMESPACE: {"title": card.title, "subtitle": card.subtitle,
                        "background": _shown(image, root) if image else card.background,
                        "duration_s": card.duration_s, "film_frame": card.start},
            "cmx_3600": {"reel": "BL"}}
    return otio.schema.Clip(name=_label(card), media_reference=reference,
                            source_range=source, metadata=meta)


def _music_track(plan, film: Film, root: Path, folder: Path):
    """A2: the music bed, the music file from its start for the film's length (a clip per
    loop where the film is longer than the music), its gain and ducking in metadata."""
    import opentimelineio as otio

    delivery = film_delivery(film)
    if delivery.music is None:
        return None
    music = Path(delivery.music)
    rate = float(film.fps)
    length = max(1, math.floor(_audio_seconds(music) * film.fps))
    available = otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate),
                                        otio.opentime.RationalTime(length, rate))
    track = otio.schema.Track(name="A2", kind=otio.schema.TrackKind.Audio,
                              metadata={NAMESPACE: {"music": True}})
    meta = {NAMESPACE: {"music": _shown(music, root), "gain_db": delivery.music_gain_db,
                        "duck_db": delivery.duck_db, "ducked_under_dialogue": bool(film.cues),
                        "fade_s": MUSIC_FADE_S}}
    left, loop = film.frames, 0
    while left > 0:
        count = min(left, length)
        reference = otio.schema.ExternalReference(target_url=media_url(music, folder),
                                                  available_range=available)
        track.append(otio.schema.Clip(
            name=music.name, media_reference=reference, metadata={
                NAMESPACE: {**meta[NAMESPACE], "loop": loop}},
            source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, rate),
                                                 otio.opentime.RationalTime(count, rate))))
        left, loop = left - count, loop + 1
    return track


def _audio_seconds(path: Path) -> float:
    """The length of a music file's first audio stream, in seconds."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        return float(container.duration or 0) / av.time_base


def _marker(cue: dict, rate: float):
    """A cue of dialogue as a marker on the timeline: named by its speaker, its words as the
    comment, over the frames it is on screen."""
    import opentimelineio as otio

    first = round(cue["start_s"] * rate)
    last = max(first + 1, round(cue["end_s"] * rate))
    return otio.schema.Marker(
        name=cue.get("speaker") or "", comment=cue["text"], color=MARKER_COLOR,
        marked_range=otio.opentime.TimeRange(otio.opentime.RationalTime(first, rate),
                                             otio.opentime.RationalTime(last - first, rate)),
        metadata={NAMESPACE: {"speaker": cue.get("speaker"), "text": cue["text"],
                              "start_s": cue["start_s"], "end_s": cue["end_s"]}})


def _shown(path: Path, root: Path) -> str:
    """A file's path in the project when it is inside it, else as it is."""
    try:
        return Path(os.path.abspath(path)).relative_to(os.path.abspath(root)).as_posix()
    except ValueError:
        return str(path)


def _clip(placed: Placed, source, folder: Path, metadata: dict, reel: str):
    import opentimelineio as otio

    info = placed.info
    available = otio.opentime.TimeRange(
        otio.opentime.RationalTime(0, float(info.fps)),
        otio.opentime.RationalTime(info.frame_count, float(info.fps)))
    reference = otio.schema.ExternalReference(target_url=media_url(placed.clip, folder),
                                              available_range=available)
    metadata = {**metadata, "cmx_3600": {"reel": reel}}
    return otio.schema.Clip(name=placed.shot, media_reference=reference, source_range=source,
                            metadata=metadata)


def media_url(clip: Path, folder: Path) -> str:
    """The clip's path relative to the export file's folder, with forward slashes and no
    leading './' (what Resolve resolves beside the .otio file, and what OTIO's own .otioz
    bundles hold)."""
    return Path(os.path.relpath(os.path.abspath(clip), folder)).as_posix()


def _shot_metadata(placed: Placed, root: Path, edited: bool = False) -> dict:
    shot, record = placed.task.generation.shot, placed.record
    meta: dict[str, Any] = {
        "shot": placed.shot,
        "scene": shot.scene,
        "prompt": shot.prompt.text if shot.prompt is not None else None,
        "multi_prompt": [{"prompt": s.prompt.text, "duration_s": s.duration_s}
                         for s in shot.multi_prompt or ()] or None,
        "provider": placed.task.provider,
        "model": placed.task.generation.model.model_id,
        "cost_usd": None if record.cost_usd is None else f"{record.cost_usd:.3f}",
        "task_id": record.provider_task_id,
        "cache_key": placed.task.cache_key,
        "sha256": record.artifacts[shot.pick - 1][0],
        "take": shot.pick,
        "takes": shot.takes,
        "clip": placed.clip.relative_to(root).as_posix(),
        "film_frame": placed.start,  # where its first frame used (frame 0 untrimmed) is
    }
    if edited:
        meta.update({"in_s": placed.trim[0], "out_s": placed.trim[1],
                     "in_frame": placed.first, "transition": placed.into,
                     "transition_s": placed.into_s,
                     "dialogue": [{"speaker": line.speaker, "line": line.text,
                                   "tone": line.tone} for line, *_span in shot.lines]})
    return meta


def _film_metadata(plan, film: Film, root: Path, folder: Path) -> dict:
    meta = {
        "storyboard": plan.resolved.storyboard.name,
        "output": film.path,
        "film": media_url(root / film.path, folder),
        "sha256": film.record.artifacts[0][0],
        "fps": str(film.fps),
        "frames": film.frames,
        "crossfade_s": film.crossfade_s,
        "provider": plan.provider,
        "preview_resolution": plan.preview_short_side,
    }
    if film.edited:
        meta.update(_edit_metadata(film, root, folder))
    return meta


def _edit_metadata(film: Film, root: Path, folder: Path) -> dict:
    """What an edited film's timeline adds: its subtitle files (beside the film, as `run`
    writes them), what was measured of it, and how it was finished."""
    delivery = film_delivery(film)
    result = film.record.result or {}
    film_file = root / film.path
    return {
        "edited": True,
        "subtitles": {form: media_url(film_file.with_suffix("." + form), folder)
                      for form in delivery.subtitles},
        "cues": len(film.cues),
        "duration_s": result.get("duration_s"),
        "size": result.get("size"),
        "loudness_lufs": result.get("loudness_lufs"),
        "true_peak_db": result.get("true_peak_db"),
        "normalised": result.get("normalised"),
        "music": None if delivery.music is None else {
            "file": media_url(Path(delivery.music), folder), "gain_db": delivery.music_gain_db,
            "duck_db": delivery.duck_db, "track": "A2"},
        "loudness_target_lufs": delivery.loudness_lufs,
        "fade_in_s": delivery.fade_in_s,
        "fade_out_s": delivery.fade_out_s,
        "aspect": None if delivery.aspect is None else "{}:{}".format(*delivery.aspect),
        "reframe": delivery.reframe,
        "preset": delivery.preset,
        "burn_in": delivery.burn_in,
    }


def reel_names(shots: list[str]) -> dict[str, str]:
    """A distinct CMX reel name of at most 8 letters and digits for each shot: its id in
    upper case, cut short, with a number in place of its end where two would be the same."""
    names: dict[str, str] = {}
    for shot in dict.fromkeys(shots):
        base = "".join(c for c in shot.upper() if c.isascii() and c.isalnum()) or "SHOT"
        name, k = base[:REEL_CHARS], 1
        while name in names.values():
            k += 1
            name = base[:REEL_CHARS - len(str(k))] + str(k)
        names[shot] = name
    return names


# -- writing -------------------------------------------------------------------------------

def timeline_text(timeline, fmt: str, edl_style: str, fps: Fraction) -> str:
    """The timeline as OTIO JSON, or as a CMX 3600 EDL of its video track."""
    import opentimelineio as otio

    if fmt == "otio":
        return otio.adapters.write_to_string(timeline, "otio_json")
    rate = float(fps)
    if not otio.opentime.RationalTime.is_valid_timecode_rate(rate):
        raise UserError.single(f"an EDL cannot be written at {rate:g} fps: SMPTE timecode "
                               "has no such rate", hint="use --format otio")
    edl = timeline.deepcopy()  # the EDL writer changes the tracks it is given
    del edl.tracks[1:]  # CMX 3600: one video track; the sound stays in the source clips
    if edl_style == "premiere":  # the adapter names events AX in this style, dissolves too
        for clip in edl.tracks[0].find_clips():
            if clip.metadata["cmx_3600"]["reel"] != "BL":  # a title card stays black
                clip.metadata["cmx_3600"] = {"reel": "AX"}
    return otio.adapters.write_to_string(edl, "cmx_3600", rate=rate, style=edl_style)


def write_text(target: Path, text: str, display: str | None = None, protected=None) -> None:
    """Write `text` to `target` atomically (a temp file beside it, then a rename), only over a
    regular file that is a timeline (or where there is none), never over a file the project
    reads or makes (files.write_atomic)."""
    from ..files import write_atomic

    write_atomic(target, text.encode("utf-8"), display, what="the timeline",
                 protected=protected, may_replace=is_timeline, make_parents=True,
                 hint="give -o the path of a new .otio or .edl file")
