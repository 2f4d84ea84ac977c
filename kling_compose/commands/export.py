"""`kling-compose export`: an assembled film's timeline for an editor, as OpenTimelineIO or a
CMX 3600 EDL (through OTIO's `otio-cmx3600-adapter`).

The timeline is the one `media/assemble.py` made, read from what the run recorded (the plan,
the ledger, the clips in renders/shots), never re-derived from the storyboard alone: one clip
per shot of the output's sequence (the picked take, as `run` exported it), its in point and
duration in frames of the film's rate, and each crossfade as an OTIO Transition. A film that
is not assembled from the current storyboard is refused. Before anything is written, the
timeline's length is checked against the assembled film's own frame count.

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
from typing import TYPE_CHECKING

from ..errors import UserError, did_you_mean
from ..media.ffmpeg import ClipInfo

if TYPE_CHECKING:  # plan.py imports networkx: only its names are needed here
    from ..plan import Task
    from ..project.state import Record

FORMATS = {"otio": ".otio", "edl": ".edl"}
EXPORT_EXTRA = "pip install 'kling-compose[export]'"
# what each format needs: (module, what it is)
NEEDS = {"otio": [("opentimelineio", "OpenTimelineIO")],
         "edl": [("opentimelineio", "OpenTimelineIO"),
                 ("otio_cmx3600_adapter", "OpenTimelineIO's CMX 3600 adapter")]}
NAMESPACE = "kling_compose"  # the metadata key every clip and the timeline carry
REEL_CHARS = 8  # CMX 3600 reel names: at most 8 characters


@dataclass(frozen=True, slots=True)
class Placed:
    """One shot where the film shows it: its clip and the film frame its first frame lands on."""

    shot: str
    clip: Path  # renders/shots/<shot><suffix>, the picked take
    info: ClipInfo
    frames: int  # frames it has at the film's rate
    start: int  # the film frame showing its frame 0
    task: Task  # the plan's generate task
    record: Record  # its ledger row


@dataclass(frozen=True, slots=True)
class Film:
    """An assembled output as a list of placed shots; overlaps[i] joins shots i and i + 1."""

    path: str  # as in the storyboard's outputs
    crossfade_s: float
    fps: Fraction
    frames: int
    shots: tuple[Placed, ...]
    overlaps: tuple[int, ...]
    record: Record  # the assemble task's ledger row


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
        outputs = [o for o in outputs if name in (o.path, Path(o.path).name, Path(o.path).stem)]
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
    if plan.provider:
        words.append(f"--provider {plan.provider}")
    if plan.preview_short_side != PREVIEW_SHORT_SIDE:
        words.append(f"--preview-resolution {plan.preview_short_side}")
    return " ".join(words)


def _film(plan, output, state) -> Film:
    """The output's placed shots, checked against the film the ledger records."""
    from ..media.ffmpeg import probe
    from ..paths import ProjectPaths
    from ..project.store import Store

    root = plan.resolved.storyboard.root
    assembled = state.get(plan.tasks[f"assemble:{output.path}"].cache_key)
    picked = {s: _picked_clip(plan, s, state) for s in dict.fromkeys(output.sequence)}
    infos = {s: probe(clip) for s, (clip, _task, _record) in picked.items()}
    fps = infos[output.sequence[0]].fps  # the assembler brings every clip to the first's rate
    frames = [_frames_at(infos[s], fps) for s in output.sequence]
    starts, overlaps = film_layout(frames, fps, output.crossfade_s)
    shots = tuple(Placed(s, picked[s][0], infos[s], n, start, picked[s][1], picked[s][2])
                  for s, n, start in zip(output.sequence, frames, starts))
    total = starts[-1] + frames[-1]
    digest, suffix = assembled.artifacts[0]
    measured = probe(Store(ProjectPaths(root).state).path(digest, suffix)).frame_count
    if measured != total:
        # a bug, here or in the assembler: never hand an editor a timeline that is not the film
        raise RuntimeError(
            f"export: {output.path} has {measured} frames, but its clips joined as "
            f"media/assemble.py joins them give {total} (crossfade {output.crossfade_s:g} s, "
            f"clips of {frames} frames at {fps} fps)")
    return Film(output.path, output.crossfade_s, fps, total, shots, tuple(overlaps), assembled)


def _picked_clip(plan, shot: str, state):
    """(renders/shots/<shot><suffix>, task, record): the picked take `run` exported, checked
    to be the very clip the film was made from."""
    from ..project.store import file_sha256

    task = plan.tasks[f"generate:{shot}"]
    record = state.get(task.cache_key)
    digest, suffix = record.artifacts[task.job.shot.pick - 1]
    rel = f"renders/shots/{shot}{suffix}"
    clip = plan.resolved.storyboard.root / rel
    if not clip.is_file() or file_sha256(clip) != digest:
        state_of = "is missing" if not clip.is_file() else "is not the clip the film was made from"
        raise UserError.single(f"{rel} {state_of}", hint=f"run `{_run_command(plan)}`: it "
                               "writes every shot's picked take to renders/shots/ again, "
                               "without generating anything")
    return clip, task, record


def _frames_at(info: ClipInfo, fps: Fraction) -> int:
    """Frames the clip has in the film (resampled to fps if its rate differs)."""
    from ..media.assemble import _frames_at  # the assembler's own rule, not a copy of it

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
    gap where a clip has none), media referenced relative to `folder`."""
    import opentimelineio as otio

    rate = float(film.fps)
    name = Path(film.path).stem
    timeline = otio.schema.Timeline(name=name, metadata={NAMESPACE: _film_metadata(plan, film,
                                                                                 root, folder)})
    reels = reel_names([p.shot for p in film.shots])
    video = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    audio = otio.schema.Track(name="A1", kind=otio.schema.TrackKind.Audio)
    for index, (placed, (first, count)) in enumerate(zip(film.shots, _trimmed(film))):
        if index and film.overlaps[index - 1]:
            video.append(_transition(film, index, rate))
            audio.append(_transition(film, index, rate))
        source = otio.opentime.TimeRange(otio.opentime.RationalTime(first, rate),
                                         otio.opentime.RationalTime(count, rate))
        meta = {NAMESPACE: _shot_metadata(placed, root)}
        video.append(_clip(placed, source, folder, meta, reels[placed.shot]))
        if placed.info.has_audio:
            audio.append(_clip(placed, source, folder, meta, reels[placed.shot]))
        else:  # the assembler lays silence under a clip without sound
            audio.append(otio.schema.Gap(source_range=source, name=f"{placed.shot} (no audio)"))
    timeline.tracks.append(video)
    timeline.tracks.append(audio)
    return timeline


def _trimmed(film: Film) -> list[tuple[int, int]]:
    """(first source frame, frames) each shot has on the track: every crossfade centred on
    its cut (the earlier half, rounded down, before it)."""
    cuts = [0]
    for placed, overlap in zip(film.shots[1:], film.overlaps):
        cuts.append(placed.start + overlap // 2)
    cuts.append(film.frames)
    return [(cuts[i] - p.start, cuts[i + 1] - cuts[i]) for i, p in enumerate(film.shots)]


def _transition(film: Film, index: int, rate: float):
    """The crossfade before shot `index`: in_offset before the cut (on the outgoing clip),
    out_offset after it (on the incoming one), together the overlap."""
    import opentimelineio as otio

    overlap = film.overlaps[index - 1]
    before = overlap // 2
    a, b = film.shots[index - 1].shot, film.shots[index].shot
    return otio.schema.Transition(
        name=f"crossfade {a} -> {b}",
        transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
        in_offset=otio.opentime.RationalTime(before, rate),
        out_offset=otio.opentime.RationalTime(overlap - before, rate),
        metadata={NAMESPACE: {"crossfade_s": film.crossfade_s, "frames": overlap}})


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


def _shot_metadata(placed: Placed, root: Path) -> dict:
    shot, record = placed.task.generation.shot, placed.record
    return {
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
        "film_frame": placed.start,  # where the clip's frame 0 is in the film
    }


def _film_metadata(plan, film: Film, root: Path, folder: Path) -> dict:
    return {
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
