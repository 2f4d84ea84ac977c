"""The ffmpeg binary, clip metadata (PyAV) and atomic output files.

imageio-ffmpeg ships `ffmpeg` but no `ffprobe`, so every probe goes through PyAV.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shlex
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av


class MediaError(Exception):
    """A media operation failed; the message names what failed and why, on one line."""


@functools.cache
def ffmpeg_exe() -> str:
    """The path of the ffmpeg executable bundled with imageio-ffmpeg."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _stderr_tail(stderr: str, lines: int = 3) -> str:
    """The last non-empty lines of ffmpeg's stderr, joined on one line."""
    tail = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()][-lines:]
    return " | ".join(tail) or "(no output)"


def _short_cmd(args: list[str], limit: int = 160) -> str:
    """A shell-quoted, length-capped rendering of an ffmpeg command for error messages."""
    text = "ffmpeg " + shlex.join(str(a) for a in args)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_ffmpeg(args: list[str], *, reports: bool = False) -> str:
    """Run ffmpeg quietly with `args`; raise MediaError if it exits non-zero (OSError for a
    full disk, a quota or a file size limit). reports=True runs it at loglevel info, where
    analysis filters (ebur128, loudnorm) print what they measured, and returns its stderr."""
    level = ["-nostats", "-loglevel", "info"] if reports else ["-loglevel", "error"]
    cmd = [*_dies_with_parent(), ffmpeg_exe(), "-hide_banner", "-nostdin", *level, "-y",
           *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        # the machine, not the media: a full disk, a quota, a file size limit (SIGXFSZ)
        for code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            if os.strerror(code) in proc.stderr or \
                    (code == errno.EFBIG and proc.returncode == -signal.SIGXFSZ):
                raise OSError(code, os.strerror(code), str(args[-1]))
        raise MediaError(
            f"{_short_cmd(args)} failed (exit {proc.returncode}): {_stderr_tail(proc.stderr)}"
        )
    return proc.stderr


def stderr_tail(stderr: str, lines: int = 3) -> str:
    """The last lines of what ffmpeg printed, for a message."""
    return _stderr_tail(stderr, lines)


@functools.cache
def _dies_with_parent() -> tuple[str, ...]:
    """A prefix that makes ffmpeg die with the run that started it, even a SIGKILLed one:
    util-linux `setpriv --pdeathsig KILL` (Linux). preexec_fn with prctl would do the same but
    is not safe in a threaded program; where setpriv is missing the prefix is empty."""
    import shutil

    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return ()
    probe = subprocess.run([setpriv, "--pdeathsig", "KILL", "true"], capture_output=True)
    return (setpriv, "--pdeathsig", "KILL") if probe.returncode == 0 else ()


@contextlib.contextmanager
def atomic_output(path: Path | str) -> Iterator[Path]:
    """Yield a temp path beside `path` (same suffix); it replaces `path` only on success
    (files.atomic_path: the user's umask, fsynced).

    On an exception, or when nothing (or an empty file) was written, the temp file is
    removed and `path` is left untouched: no half-written file is ever visible.
    """
    from ..files import atomic_path

    path = Path(path)

    def written(tmp: Path) -> None:
        # ffmpeg can exit 0 and write nothing (e.g. -sseof past the end); never publish that.
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise MediaError(f"nothing was written for {path}")

    with atomic_path(path, check=written) as tmp:
        yield tmp


@dataclass(frozen=True, slots=True)
class ClipInfo:
    """What the pipeline needs to know about a clip.

    video_params / audio_params hold everything that must match for two clips to be joined
    by stream copy: (codec, profile, width, height, pix_fmt, SAR, frame rate, time base) and
    (codec, profile, sample rate, channel layout); audio_params is () without audio.
    """

    video_duration_s: float
    audio_duration_s: float | None
    width: int
    height: int
    fps: Fraction
    frame_count: int
    has_audio: bool
    video_params: tuple
    audio_params: tuple


def _stream_duration(stream, container) -> float | None:
    """The stream's own duration in seconds (not the container's), or None if unknown."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def _scan_video_packets(container, stream) -> tuple[int, float]:
    """(frame count, duration in s) by demuxing, for containers without per-stream totals."""
    count, start, end = 0, None, None
    for pkt in container.demux(stream):
        if pkt.pts is None or pkt.size == 0:
            continue
        count += 1
        start = pkt.pts if start is None else min(start, pkt.pts)
        stop = pkt.pts + (pkt.duration or 0)
        end = stop if end is None else max(end, stop)
    if count == 0:
        return 0, 0.0
    return count, float((end - start) * stream.time_base)


def _video_params(stream) -> tuple:
    """The stream-copy compatibility key of a video stream."""
    cc = stream.codec_context
    sar = stream.sample_aspect_ratio or Fraction(1, 1)
    rate = stream.guessed_rate or stream.average_rate
    return (
        cc.name,
        cc.profile,
        cc.width,
        cc.height,
        cc.format.name if cc.format else None,
        str(sar),
        str(rate),
        str(stream.time_base),
    )


def _audio_params(stream) -> tuple:
    """The stream-copy compatibility key of an audio stream."""
    cc = stream.codec_context
    return (cc.name, cc.profile, cc.sample_rate, cc.layout.name if cc.layout else None)


def audio_seconds(path: Path | str) -> float | None:
    """How long the first audio stream of a file plays (s), from its header or, without one,
    its packets; None when it has no readable audio. A voice sample's length, a music bed's
    (an empty one cannot be looped to fill a film: ffmpeg's -stream_loop would spin)."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / av.time_base
            end = 0.0
            for packet in container.demux(stream):
                if packet.pts is not None and packet.time_base is not None:
                    end = max(end, float((packet.pts + (packet.duration or 0))
                                         * packet.time_base))
            return end or None
    except (av.FFmpegError, OSError, ValueError):
        return None


def loop_input(path: Path | str, seconds: float) -> list[str]:
    """ffmpeg input args playing an audio file over and over for at least `seconds`: as many
    loops as that takes (never -1, which spins for ever on an empty file); MediaError for a
    file with no sound to loop."""
    import math

    length = audio_seconds(path)
    if length is None or length < MIN_LOOP_S:
        raise MediaError(f"{path} has no sound to play (no audio stream, or it is empty)")
    loops = max(0, math.ceil(seconds / length))
    return ["-stream_loop", str(loops), "-i", "file:" + str(Path(path).resolve())]


MIN_LOOP_S = 0.1  # a music bed shorter than this is refused: it would loop thousands of times


def open_video(path: Path | str):
    """An open PyAV container with a video stream (close it: `with`); MediaError otherwise."""
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot open {path}: {exc}") from None
    if not container.streams.video:
        container.close()
        raise MediaError(f"{path} has no video stream")
    return container


def probe(path: Path | str) -> ClipInfo:
    """ClipInfo of the first video (and first audio) stream of `path`; MediaError if unreadable."""
    path = Path(path)
    with open_video(path) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        fps = video.guessed_rate or video.average_rate or Fraction(0)
        v_dur = _stream_duration(video, container)
        frames = video.frames
        if v_dur is None or not frames:
            try:
                frames, v_dur = _scan_video_packets(container, video)
            except av.FFmpegError as exc:
                raise MediaError(f"cannot read {path}: {exc}") from None
        if frames == 0:
            raise MediaError(f"{path} has no video frames")
        a_dur = _stream_duration(audio, container) if audio is not None else None
        return ClipInfo(
            video_duration_s=v_dur,
            audio_duration_s=a_dur,
            width=video.codec_context.width,
            height=video.codec_context.height,
            fps=Fraction(fps),
            frame_count=frames,
            has_audio=audio is not None,
            video_params=_video_params(video),
            audio_params=_audio_params(audio) if audio is not None else (),
        )


def verify_clip(path: Path | str, expected_s: float | None = None) -> ClipInfo:
    """A downloaded clip, checked before it is adopted: every video packet the header
    promises can be read (a cut-short download keeps its header, so a probe alone believes
    it), and its duration is the one asked for within two frames. MediaError otherwise."""
    info = probe(path)
    with open_video(path) as container:
        stream = container.streams.video[0]
        header_frames = stream.frames  # read while open: PyAV 18.1.1 refuses it after close
        try:
            count, seconds = _scan_video_packets(container, stream)
        except av.FFmpegError as exc:
            raise MediaError(f"cannot read {path}: {exc}") from None
    promised = header_frames or info.frame_count
    if count < promised:
        raise MediaError(f"{Path(path).name} holds {count} of the {promised} frames its header "
                         "promises (cut short)")
    if expected_s is not None and info.fps:
        tolerance = max(2.0 / float(info.fps), 0.05)
        if abs(seconds - expected_s) > tolerance + 1e-6:
            raise MediaError(f"{Path(path).name} lasts {seconds:.3f} s, not the {expected_s:g} s "
                             "asked for")
    return info
