"""The soundtrack of a finished film: loudness measured (EBU R128), normalised in two passes,
a music bed trimmed or looped, faded and ducked under dialogue, short fades against clicks.

Every function is one or two ffmpeg calls; the video stream is always copied, never
re-encoded. Figures and choices measured: docs/media.md "mix.py".
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av

from .ffmpeg import MediaError, atomic_output, loop_input, probe, run_ffmpeg, stderr_tail

SAMPLE_RATE = 48_000
_AUDIO_OUT = ["-c:a", "aac", "-b:a", "192k", "-ar", str(SAMPLE_RATE)]
_STEREO = f"aformat=sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts=stereo"
# ebur128 reports silence as -70 LUFS and a true peak of -inf
_SILENT_LUFS = -70.0
# loudnorm's own LRA target range; the second pass asks for at least the measured LRA so the
# linear (one gain for the whole film) mode is not refused for the range alone
_LRA_MIN, _LRA_MAX = 1.0, 50.0

# the limited path (see normalise): its ceiling sits this far under the asked true peak,
# because AAC encoding adds overshoots; and it corrects its gain at most this many times
_TP_MARGIN_DB = 0.5
_LIMIT_TRIES = 6

Span = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Loudness:
    """EBU R128 figures of a file's audio: integrated loudness (LUFS), true peak (dBTP),
    loudness range (LU), and the relative gate of the integrated measure (LUFS; loudnorm's
    measured_thresh). A silent file has integrated_lufs -70 and true_peak_dbtp -inf."""

    integrated_lufs: float
    true_peak_dbtp: float
    lra: float
    threshold_lufs: float = _SILENT_LUFS


@dataclass(frozen=True, slots=True)
class Normalised:
    """What `normalise` did: the loudness before and after (measured on the written file),
    and how: "linear" (loudnorm's second pass, one gain for the whole film) or "limited" (one
    gain and a true-peak limiter, when one gain alone would push the peaks over the ceiling)."""

    before: Loudness
    after: Loudness
    mode: str


def _ffmpeg_stderr(args: list[str]) -> str:
    """An analysis pass (`-f null -`): what its filters printed (ffmpeg.run_ffmpeg)."""
    return run_ffmpeg(args, reports=True)


def _file_url(path: Path | str) -> str:
    """An ffmpeg input for a local file that no ':' or leading '-' can misread."""
    return "file:" + str(Path(path).resolve())


def _has_audio(path: Path | str) -> bool:
    """True if `path` has an audio stream (PyAV); MediaError if it cannot be opened."""
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot open {path}: {exc}") from None


def _has_video(path: Path | str) -> bool:
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.video)
    except (av.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot open {path}: {exc}") from None


def _number(text: str) -> float:
    """A figure as ebur128/loudnorm print it ('-23.4', '-inf', 'inf', 'nan')."""
    value = float(text)
    return value if not math.isnan(value) else -math.inf


_SUMMARY = re.compile(
    r"Summary:.*?I:\s*(?P<i>\S+)\s+LUFS\s*Threshold:\s*(?P<th>\S+)\s+LUFS"
    r".*?LRA:\s*(?P<lra>\S+)\s+LU.*?Peak:\s*(?P<tp>\S+)\s+dBFS",
    re.DOTALL,
)


def measure(path: Path | str) -> Loudness:
    """The EBU R128 loudness of `path`'s first audio stream (ffmpeg `ebur128=peak=true`:
    integrated loudness, loudness range, true peak from 4x oversampling)."""
    if not _has_audio(path):
        raise MediaError(f"{path} has no audio stream to measure")
    stderr = _ffmpeg_stderr(["-i", _file_url(path), "-map", "0:a:0", "-vn", "-sn", "-dn",
                             "-af", "ebur128=peak=true:framelog=quiet", "-f", "null", "-"])
    found = list(_SUMMARY.finditer(stderr))
    if not found:
        raise MediaError(f"measuring {path}: no ebur128 summary ({stderr_tail(stderr)})")
    m = found[-1]
    return Loudness(_number(m["i"]), _number(m["tp"]), max(0.0, _number(m["lra"])),
                    _number(m["th"]))


def _loudnorm_json(stderr: str) -> dict[str, str]:
    """The last JSON object loudnorm printed (print_format=json)."""
    start = stderr.rfind("{")
    end = stderr.rfind("}")
    if start < 0 or end < start:
        raise MediaError(f"loudnorm printed no JSON ({stderr_tail(stderr)})")
    try:
        data = json.loads(stderr[start : end + 1])
    except json.JSONDecodeError as exc:
        raise MediaError(f"loudnorm printed unreadable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MediaError("loudnorm printed unreadable JSON")
    return {str(k): str(v) for k, v in data.items()}


def loudnorm_filter(measured: Loudness, target_lufs: float, true_peak_dbtp: float) -> str:
    """loudnorm's second pass in linear mode (one gain: target - measured) from the first
    pass's figures. loudnorm only stays linear if the measured LRA is not above the target
    LRA and not 0 (a pure tone), and the threshold is not -70: both are arranged here."""
    lra = max(measured.lra, 0.1)
    lra_target = min(_LRA_MAX, max(_LRA_MIN, math.ceil(lra + 1)))
    return (f"loudnorm=I={target_lufs:g}:TP={true_peak_dbtp:g}:LRA={lra_target:g}"
            f":measured_I={measured.integrated_lufs:.2f}:measured_TP={measured.true_peak_dbtp:.2f}"
            f":measured_LRA={lra:.2f}:measured_thresh={max(measured.threshold_lufs, -69.0):.2f}"
            ":offset=0:linear=true:print_format=json")


def normalise(src: Path | str, dst: Path | str, *, target_lufs: float = -14.0,
              true_peak_dbtp: float = -1.0,
              audio_args: Sequence[str] | None = None,
              measured: Loudness | None = None) -> Normalised:
    """Write `dst`: `src` with its audio brought to `target_lufs` integrated and a true peak
    at most `true_peak_dbtp` (two passes: ebur128 measures, loudnorm applies one gain in its
    linear mode; where one gain cannot keep the peaks under the ceiling, that gain and a
    true-peak limiter), video copied.

    The first pass is `measure` (ebur128), not loudnorm's own print-only pass: the same
    figures, 6x faster (loudnorm runs its dynamic mode at 192 kHz even when only printing).
    The audio comes out AAC 48 kHz stereo (loudnorm works at 192 kHz; it is resampled back).
    `after` is measured on the written file, AAC encoding included. `audio_args` replaces
    the AAC encoder arguments (e.g. PCM for a master's soundtrack); `measured` is `src`'s
    loudness when the caller has measured it already (the first pass is then skipped).
    """
    out_args = list(audio_args) if audio_args is not None else _AUDIO_OUT
    mux = ["-movflags", "+faststart"] if Path(dst).suffix.lower() in (".mp4", ".m4a", ".mov",
                                                                      ".m4v") else []
    if not _has_audio(src):
        raise MediaError(f"{src} has no audio stream to normalise")
    before = measured if measured is not None else measure(src)
    if before.integrated_lufs <= _SILENT_LUFS:
        raise MediaError(f"{src} is silent: there is no loudness to normalise")
    video = ["-map", "0:v:0", "-c:v", "copy"] if _has_video(src) else []
    dst = Path(dst)
    gain = target_lufs - before.integrated_lufs
    if before.true_peak_dbtp + gain <= true_peak_dbtp:
        graph = loudnorm_filter(before, target_lufs, true_peak_dbtp)
        with atomic_output(dst) as part:
            second = _loudnorm_json(_ffmpeg_stderr([
                "-i", _file_url(src), *video, "-map", "0:a:0",
                "-af", f"{graph},aresample={SAMPLE_RATE},{_STEREO}",
                *out_args, *mux, str(part)]))
        mode = second.get("normalization_type", "unknown")
        if mode != "linear":
            raise MediaError(f"normalising {src}: loudnorm refused its linear mode")
        return Normalised(before, measure(dst), mode)
    # One gain would push the peaks over the ceiling: loudnorm would fall back to its dynamic
    # mode, measured here 10 LU short of the target on a quiet film with loud transients.
    # Instead: that gain, then a look-ahead limiter at 4x oversampling (true peak) a margin
    # below the ceiling (AAC overshoots), re-measured; the gain corrected until within 0.5 LU,
    # the ceiling lowered by any overshoot.
    after, tried, ceiling = before, [], true_peak_dbtp - _TP_MARGIN_DB
    with atomic_output(dst) as part:
        for _ in range(_LIMIT_TRIES):
            run_ffmpeg(["-i", _file_url(src), *video, "-map", "0:a:0",
                        "-af", _limited_chain(gain, ceiling),
                        *out_args, *mux, str(part)])
            after = measure(part)
            miss = target_lufs - after.integrated_lufs
            if abs(miss) <= 0.5 and after.true_peak_dbtp <= true_peak_dbtp:
                break
            if after.true_peak_dbtp > true_peak_dbtp:  # the encoder overshot the limiter
                ceiling -= after.true_peak_dbtp - true_peak_dbtp + 0.1
            tried.append((gain, after.integrated_lufs))
            # limiting makes loudness grow slower than the gain: step along the measured slope
            slope = 1.0
            if len(tried) > 1 and tried[-1][0] != tried[-2][0]:
                (g0, l0), (g1, l1) = tried[-2], tried[-1]
                slope = min(1.0, max(0.1, (l1 - l0) / (g1 - g0)))
            gain += miss / slope
        else:
            raise MediaError(f"normalising {src}: {after.integrated_lufs:g} LUFS, "
                             f"{after.true_peak_dbtp:g} dBTP after {_LIMIT_TRIES} tries")
    return Normalised(before, after, "limited")


def _limited_chain(gain_db: float, ceiling_dbtp: float) -> str:
    """`gain_db`, then a brickwall limiter at `ceiling_dbtp` working at 4x the sample rate
    (so it holds inter-sample peaks too), back to 48 kHz stereo."""
    return (f"aresample={4 * SAMPLE_RATE},volume={gain_db:.3f}dB,"
            f"alimiter=limit={10 ** (ceiling_dbtp / 20):.5f}:attack=1:release=50:"
            f"level=false:latency=true,aresample={SAMPLE_RATE},{_STEREO}")


def _duck_expr(spans: Sequence[Span], duck_db: float, ramp_s: float) -> str:
    """A `volume` expression (eval=frame, in t): 1 outside the spans, -duck_db dB inside,
    linear-in-dB ramps of ramp_s *before* each start and *after* each end, so the music is
    already down when a line begins and rises only once it is over."""
    if not spans or duck_db <= 0:
        return "1"
    r = max(ramp_s, 1e-3)
    parts = [f"min(clip((t-{s - r:.4f})/{r:.4f},0,1),clip(({e + r:.4f}-t)/{r:.4f},0,1))"
             for s, e in sorted(spans)]
    depth = parts[0]
    for p in parts[1:]:
        depth = f"max({depth},{p})"
    return f"pow(10,-{duck_db / 20:.6f}*{depth})"


def bed_filter(duration_s: float, *, gain_db: float = -18.0, fade_s: float = 2.0,
               dialogue: Sequence[Span] = (), duck_db: float = 10.0,
               ramp_s: float = 0.25) -> str:
    """The filter chain turning a looped music input into the bed: 48 kHz stereo, exactly
    `duration_s` long (in samples), at `gain_db`, ducked under `dialogue`, faded in and out.

    The input must loop (`ffmpeg.loop_input`) for a film longer than the music.
    """
    samples = round(duration_s * SAMPLE_RATE)
    fade = max(0.0, min(fade_s, duration_s / 2))
    chain = [
        f"aresample={SAMPLE_RATE}", _STEREO,
        f"atrim=end_sample={samples}", "asetpts=N/SR/TB",
        # 10 ms frames: the duck envelope is evaluated once per frame
        f"asetnsamples=n={SAMPLE_RATE // 100}:p=0",
        f"volume={gain_db:g}dB",
        f"volume='{_duck_expr(dialogue, duck_db, ramp_s)}':eval=frame",
    ]
    if fade > 0:
        chain += [f"afade=t=in:st=0:d={fade:.4f}",
                  f"afade=t=out:st={duration_s - fade:.4f}:d={fade:.4f}"]
    return ",".join(chain)


def _check_spans(spans: Sequence[Span]) -> list[Span]:
    out = []
    for s, e in spans:
        if not (math.isfinite(s) and math.isfinite(e)) or e <= s:
            raise MediaError(f"dialogue span ({s:g}, {e:g}) is not a forward interval")
        out.append((float(s), float(e)))
    return out


def bed(music: Path | str, dst: Path | str, duration_s: float, *, gain_db: float = -18.0,
        fade_s: float = 2.0, dialogue: Sequence[Span] = (), duck_db: float = 10.0,
        ramp_s: float = 0.25) -> Path:
    """Write the music bed alone (e.g. a separate music track for an export): `music`
    looped or trimmed to `duration_s`, at `gain_db`, ducked, faded; AAC 48 kHz stereo."""
    if duration_s <= 0:
        raise MediaError(f"a music bed of {duration_s:g} s")
    if not _has_audio(music):
        raise MediaError(f"{music} has no audio stream to use as music")
    chain = bed_filter(duration_s, gain_db=gain_db, fade_s=fade_s,
                       dialogue=_check_spans(dialogue), duck_db=duck_db, ramp_s=ramp_s)
    dst = Path(dst)
    with atomic_output(dst) as part:
        run_ffmpeg([*loop_input(music, duration_s), "-map", "0:a:0",
                    "-af", chain, *_AUDIO_OUT, str(part)])
    return dst


def mix_music(film: Path | str, music: Path | str, dst: Path | str, *, gain_db: float = -18.0,
              duck_db: float = 10.0, dialogue: Sequence[Span] = (), fade_s: float = 2.0,
              ramp_s: float = 0.25) -> Path:
    """Write `dst`: `film` with a music bed under its own audio (see `bed_filter`), summed at
    unity (amix normalize=0: no level halving), as long as the film's video; video copied.
    A film without audio gets the bed alone."""
    info = probe(film)
    if not _has_audio(music):
        raise MediaError(f"{music} has no audio stream to use as music")
    duration = info.video_duration_s
    samples = round(duration * SAMPLE_RATE)
    chain = bed_filter(duration, gain_db=gain_db, fade_s=fade_s,
                       dialogue=_check_spans(dialogue), duck_db=duck_db, ramp_s=ramp_s)
    graph = [f"[1:a:0]{chain}[bed]"]
    if info.has_audio:
        graph.append(f"[0:a:0]aresample={SAMPLE_RATE},{_STEREO},apad,"
                     f"atrim=end_sample={samples},asetpts=N/SR/TB[own]")
        graph.append("[own][bed]amix=inputs=2:duration=first:normalize=0[a]")
    else:
        graph.append("[bed]anull[a]")
    dst = Path(dst)
    with atomic_output(dst) as part:
        run_ffmpeg(["-i", _file_url(film), *loop_input(music, duration),
                    "-filter_complex", ";".join(graph),
                    "-map", "0:v:0", "-map", "[a]", "-c:v", "copy", *_AUDIO_OUT,
                    "-movflags", "+faststart", str(part)])
    return dst


def declick_filter(duration_s: float, fade_s: float = 0.01) -> str:
    """An audio chain fading a clip's first and last `fade_s` (a cut between two clips whose
    waveforms do not meet at zero clicks); for the assembler's per-clip audio chain."""
    fade = max(0.0, min(fade_s, duration_s / 2))
    if fade == 0:
        return "anull"
    return (f"afade=t=in:st=0:d={fade:.4f}:curve=qsin,"
            f"afade=t=out:st={duration_s - fade:.6f}:d={fade:.4f}:curve=qsin")


def declick(clip: Path | str, dst: Path | str, *, fade_s: float = 0.01) -> Path:
    """Write `dst`: `clip` with `fade_s` fades at the head and tail of its audio, video copied."""
    info = probe(clip)
    if not info.has_audio:
        raise MediaError(f"{clip} has no audio to declick")
    length = info.audio_duration_s or info.video_duration_s
    dst = Path(dst)
    with atomic_output(dst) as part:
        run_ffmpeg(["-i", _file_url(clip), "-map", "0:v:0", "-map", "0:a:0", "-c:v", "copy",
                    "-af", declick_filter(length, fade_s), *_AUDIO_OUT,
                    "-movflags", "+faststart", str(part)])
    return dst
