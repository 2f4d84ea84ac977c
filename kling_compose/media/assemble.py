"""Join shot clips into one film: stream-copy the video when possible, always re-encode audio.

Why (media.md, measured): a stream-copied AAC join keeps each clip's priming and padding
samples, drifting ~35 ms per join, while re-encoding only the audio stays within 1 ms and is
still ~25x real time. ffmpeg exits 0 for a copy-concat of mismatched clips and writes a broken
file, so every clip's codec parameters are compared first and odd ones are normalised.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from .ffmpeg import ClipInfo, MediaError, atomic_output, probe, run_ffmpeg
from .mix import declick_filter

_DEFAULT_AUDIO = ("aac", "LC", 48_000, "stereo")
_AUDIO_BITRATE = "160k"
# A clip whose audio and video lengths differ by more than this gets its audio padded/trimmed:
# the concat demuxer offsets each next file by the longer stream, so any excess accumulates.
_AV_LENGTH_TOLERANCE_S = 0.001
_X264_PROFILES = {
    "Constrained Baseline": "baseline",
    "Baseline": "baseline",
    "Main": "main",
    "High": "high",
    "High 10": "high10",
    "High 4:2:2": "high422",
    "High 4:4:4 Predictive": "high444",
}


@dataclass(frozen=True, slots=True)
class _Target:
    """The parameters every clip is brought to: the first clip's video, the first audio's."""

    codec: str
    profile: str | None
    width: int
    height: int
    pix_fmt: str
    sar: str
    fps: Fraction
    time_base: Fraction
    sample_rate: int
    layout: str

    @classmethod
    def of(cls, infos: list[ClipInfo]) -> _Target:
        """The target taken from the first clip (and the first clip that has audio)."""
        codec, profile, w, h, pix_fmt, sar, _rate, tb = infos[0].video_params
        audio = next((i.audio_params for i in infos if i.has_audio), _DEFAULT_AUDIO)
        return cls(codec, profile, w, h, pix_fmt or "yuv420p", sar, infos[0].fps,
                   Fraction(tb), audio[2], audio[3] or "stereo")  # fmt: skip


def assemble(
    clips: list[Path], out: Path, *, crossfade_s: float = 0.0, workdir: Path,
    declick_s: float = 0.0, audio: Path | None = None,
) -> ClipInfo:
    """Concatenate `clips` into `out` atomically (crossfading if crossfade_s > 0); probe(out).

    Stream-copy join only (crossfade_s == 0):
    declick_s > 0 fades each clip's audio in and out over that long (mix.declick_filter), so
    no cut clicks; `audio` is a finished soundtrack (the film's length) muxed instead of the
    clips' own, stream-copied (cut.py prepares it: mixed, normalised, encoded)."""
    if not clips:
        raise MediaError("assemble: no clips given")
    if crossfade_s > 0 and (declick_s > 0 or audio is not None):
        raise MediaError("assemble: declick_s and audio apply to the stream-copy join only")
    clips, out, workdir = [Path(c) for c in clips], Path(out), Path(workdir)
    infos = [probe(c) for c in clips]
    target = _Target.of(infos)
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="assemble-", dir=workdir) as tmp:
        with atomic_output(out) as part:
            if crossfade_s > 0 and len(clips) > 1:
                _check_crossfade(clips, infos, crossfade_s)
                run_ffmpeg(_crossfade_args(clips, infos, target, crossfade_s, part))
            else:
                _concat_copy(clips, infos, target, Path(tmp), part, declick_s=declick_s,
                             audio=audio)
    return probe(out)


def _concat_copy(
    clips: list[Path], infos: list[ClipInfo], target: _Target, tmp: Path, out: Path,
    *, declick_s: float = 0.0, audio: Path | None = None,
) -> None:
    """Concat demuxer, video copied, audio re-encoded; odd clips normalised into tmp first.
    declick_s > 0: each part's audio is read from the part itself (one input each), made
    exactly its video's length, faded at both ends, and the parts joined by the concat filter.
    `audio`: that file's first audio stream is copied instead."""
    parts, lengths = [], []
    for i, (clip, info) in enumerate(zip(clips, infos)):
        norm = tmp / f"norm-{i:04d}.mp4"
        seconds = info.video_duration_s
        if info.video_params != infos[0].video_params:
            run_ffmpeg(_normalise_args(clip, info, target, norm, video=True))
            clip, seconds = norm, float(_frames_at(info, target.fps) / target.fps)
        elif not _audio_fits(info, target):
            run_ffmpeg(_normalise_args(clip, info, target, norm, video=False))
            clip = norm
        parts.append(clip)
        lengths.append(seconds)
    listing = tmp / "concat.txt"
    listing.write_text("".join(f"file {_concat_quote(p)}\n" for p in parts), encoding="utf-8")
    args = ["-f", "concat", "-safe", "0", "-i", str(listing)]
    if audio is not None:
        args += ["-i", _file_url(audio), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
                 "-c:a", "copy"]
    elif declick_s > 0:
        graph = []
        for k, (part_path, seconds) in enumerate(zip(parts, lengths)):
            args += ["-i", _file_url(part_path)]
            graph.append(f"[{k + 1}:a:0]{_audio_chain(target, seconds)},"
                         f"{declick_filter(seconds, declick_s)}[a{k}]")
        graph.append("".join(f"[a{k}]" for k in range(len(parts)))
                     + f"concat=n={len(parts)}:v=0:a=1[a]")
        args += ["-filter_complex", ";".join(graph), "-map", "0:v:0", "-map", "[a]",
                 "-c:v", "copy", *_audio_encoder_args(target)]
    else:
        args += ["-map", "0:v:0", "-map", "0:a:0", "-c:v", "copy", *_audio_encoder_args(target)]
    run_ffmpeg([*args, "-movflags", "+faststart", str(out)])


def _audio_fits(info: ClipInfo, target: _Target) -> bool:
    """True if the clip's audio can go straight into the concat (right format and length)."""
    if not info.has_audio or info.audio_duration_s is None:
        return False
    codec, _profile, rate, layout = info.audio_params
    if (codec, rate, layout) != ("aac", target.sample_rate, target.layout):
        return False
    return abs(info.audio_duration_s - info.video_duration_s) <= _AV_LENGTH_TOLERANCE_S


def _normalise_args(
    clip: Path, info: ClipInfo, target: _Target, out: Path, *, video: bool
) -> list[str]:
    """ffmpeg args rewriting one clip to the target (video re-encoded or copied, audio exact)."""
    frames = _frames_at(info, target.fps) if video else info.frame_count
    seconds = frames / target.fps if video else info.video_duration_s
    args = ["-i", _file_url(clip), *_silence_input(info, target, seconds)]
    audio_in = "0:a:0" if info.has_audio else "1:a:0"
    args += ["-filter_complex", f"[{audio_in}]{_audio_chain(target, seconds)}[a]"]
    args += ["-map", "0:v:0", "-map", "[a]"]
    if video:
        args += ["-vf", _video_chain(target), "-frames:v", str(frames)]
        args += _video_encoder_args(target)
    else:
        args += ["-c:v", "copy"]
    return [*args, *_audio_encoder_args(target), "-movflags", "+faststart", str(out)]


def _frames_at(info: ClipInfo, fps: Fraction) -> int:
    """Frames the clip has once resampled to fps (same duration, whole frames)."""
    if info.fps == fps:
        return info.frame_count
    return max(1, round(info.video_duration_s * fps))


def _silence_input(info: ClipInfo, target: _Target, seconds: float) -> list[str]:
    """An extra lavfi input of silence for a clip without audio; nothing otherwise."""
    if info.has_audio:
        return []
    src = f"anullsrc=r={target.sample_rate}:cl={target.layout}"
    return ["-f", "lavfi", "-t", f"{seconds + 0.1:.6f}", "-i", src]


def _audio_chain(target: _Target, seconds: float) -> str:
    """Resample to the target format and pad/trim to exactly `seconds` (in samples)."""
    samples = round(seconds * target.sample_rate)
    return (
        f"aresample={target.sample_rate},"
        f"aformat=sample_fmts=fltp:sample_rates={target.sample_rate}:"
        f"channel_layouts={target.layout},"
        f"apad,atrim=end_sample={samples},asetpts=N/SR/TB"
    )


def _video_chain(target: _Target) -> str:
    """Fit inside the target frame (letterboxed: nothing cropped), at its fps and pix_fmt."""
    w, h = target.width, target.height
    sar = target.sar.replace("/", ":") if "/" in target.sar else f"{target.sar}:1"
    return (
        f"scale={w}:{h}:force_original_aspect_ratio=decrease,"
        f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar={sar},"
        f"fps={target.fps},format={target.pix_fmt}"
    )


def _video_encoder_args(target: _Target) -> list[str]:
    """Encoder args producing the target's codec, profile, pix_fmt and time base."""
    args = ["-c:v", target.codec, "-pix_fmt", target.pix_fmt]
    if target.codec == "h264":
        args = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", target.pix_fmt]
        if target.profile in _X264_PROFILES:
            args += ["-profile:v", _X264_PROFILES[target.profile]]
    # Same mp4 timescale as the other clips: the concat demuxer copies timestamps verbatim.
    tb = target.time_base
    if tb.numerator == 1:
        args += ["-video_track_timescale", str(tb.denominator)]
    return args


def _audio_encoder_args(target: _Target) -> list[str]:
    """AAC at the target rate and layout."""
    return ["-c:a", "aac", "-b:a", _AUDIO_BITRATE, "-ar", str(target.sample_rate)]


def _check_crossfade(clips: list[Path], infos: list[ClipInfo], crossfade_s: float) -> None:
    """MediaError unless every clip is longer than the crossfade."""
    for clip, info in zip(clips, infos):
        if info.video_duration_s <= crossfade_s:
            raise MediaError(
                f"crossfade of {crossfade_s:g} s is not shorter than {clip} "
                f"({info.video_duration_s:.3f} s)"
            )


def _crossfade_args(
    clips: list[Path], infos: list[ClipInfo], target: _Target, crossfade_s: float, out: Path
) -> list[str]:
    """One ffmpeg call: every clip normalised in-graph, joined by xfade + acrossfade."""
    inputs: list[str] = []
    graph: list[str] = []
    lengths = []
    for i, (clip, info) in enumerate(zip(clips, infos)):
        inputs += ["-i", _file_url(clip)]
        frames = _frames_at(info, target.fps)
        lengths.append(frames / target.fps)
        graph.append(f"[{i}:v]{_video_chain(target)},trim=end_frame={frames},setpts=PTS-STARTPTS[v{i}]")
    n = len(clips)
    for i, info in enumerate(infos):
        src = f"{i}:a:0"
        if not info.has_audio:
            k = n + sum(1 for j in infos[:i] if not j.has_audio)
            src = f"{k}:a:0"
            inputs += _silence_input(info, target, lengths[i])
        graph.append(f"[{src}]{_audio_chain(target, lengths[i])}[a{i}]")
    v, a, total = "[v0]", "[a0]", lengths[0]
    for i in range(1, n):
        offset = total - crossfade_s
        graph.append(f"{v}[v{i}]xfade=transition=fade:duration={crossfade_s:.6f}:offset={offset:.6f}[vx{i}]")
        graph.append(f"{a}[a{i}]acrossfade=d={crossfade_s:.6f}[ax{i}]")
        v, a, total = f"[vx{i}]", f"[ax{i}]", total + lengths[i] - crossfade_s
    return [
        *inputs,
        "-filter_complex", ";".join(graph),
        "-map", v, "-map", a,
        *_video_encoder_args(target),
        *_audio_encoder_args(target),
        "-movflags", "+faststart", str(out),
    ]  # fmt: skip


def _file_url(path: Path) -> str:
    """An ffmpeg input for a local file that no ':' or leading '-' can misread."""
    return "file:" + str(Path(path).resolve())


def _concat_quote(path: Path) -> str:
    """A path quoted for a concat demuxer list (single quotes, ' escaped)."""
    return "'" + str(Path(path).resolve()).replace("'", "'\\''") + "'"
