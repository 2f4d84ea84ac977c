"""Subtitle cues: SRT and WebVTT writers, voice activity from a clip's audio, cue placement.

A building block of issue 24 (the finished film). Times here are plain seconds on whatever
timeline the caller uses (clip time for `speech_spans`, film time for the writers); moving
cues from clip time to film time (trims, crossfades) is the caller's job.

Formats, as written here (sources consulted):

- WebVTT: W3C "WebVTT: The Web Video Text Tracks Format"
  (https://www.w3.org/TR/webvtt1/, Working Drafts 2014-11-13 and 2015-12-08, and the
  Community Group draft https://w3.org/2013/07/webvtt.html with its `<v Roger Bingham>`
  voice-span example), and MDN "Web Video Text Tracks Format"
  (https://developer.mozilla.org/docs/Web/API/WebVTT_API/Web_Video_Text_Tracks_Format):
  UTF-8; the file starts with `WEBVTT` then a blank line; a cue is its timings line
  `HH:MM:SS.mmm --> HH:MM:SS.mmm` then its text; cues are separated by blank lines; the cue
  text may contain neither a blank line nor `-->`; `&`, `<` (and `>`) are written as `&amp;`,
  `&lt;`, `&gt;` (escaping `>` is what keeps `-->` out of the text); a cue's end is after
  its start, and cues are ordered by start time (they may overlap); a speaker is a voice
  span `<v Name>...</v>`.
- SRT (SubRip) has no official specification; the de facto description used is the one
  SubRip's own source implies (https://cnblogs.com/MaxWoods/p/608078.html), the srt-validator
  spec (https://app.unpkg.com/srt-validator@6.0.4/files/doc/srt-spec.md) and Subtitle Edit's
  reference (https://raw.githubusercontent.com/SubtitleEdit/subtitleedit/v5.2.0/docs/reference/subrip.md):
  cues numbered from 1, `HH:MM:SS,mmm --> HH:MM:SS,mmm` (two-digit fields, three-digit
  milliseconds, comma), the text lines, a blank line between cues; no header, no escaping
  (`<b> <i> <u> <font>` are tags to most players, so text is written as is, but `-->` is
  rewritten to `->` so no text line can look like a timing line).

Both are written with LF line ends: WebVTT allows LF, CR or CRLF; SubRip wrote CRLF, but every
player and tool this project targets (ffmpeg's subtitles filter and demuxer, browsers, VLC,
mpv, editors) reads LF, and LF keeps the files diff-stable in git on every platform.

Times are rounded once to whole milliseconds (half up) and both writers use that one
rounding; a cue always ends at least 1 ms after it starts. SRT players show overlapping cues
badly, so `srt` ends each cue no later than the next one starts (cues starting on the same
millisecond are merged into one, their lines stacked); `webvtt` keeps overlaps, which the
format allows.

Voice activity (`speech_spans`): see its docstring and docs/media.md.
"""

from __future__ import annotations

import math
import operator
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import av

from kling_compose.media.ffmpeg import MediaError

# -- cues and writers -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cue:
    """One subtitle: shown from `start_s` to `end_s` (seconds); `speaker` for WebVTT's <v>."""

    start_s: float
    end_s: float
    text: str
    speaker: str | None = None


Line = tuple[str, str | None]
"""A line of dialogue and its speaker (None: no speaker)."""


def _ms(t: float) -> int:
    """Seconds -> whole milliseconds, half up, never negative: the one rounding used."""
    return max(0, math.floor(t * 1000 + 0.5))


def _stamp(ms: int, sep: str) -> str:
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, milli = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{milli:03d}"


def _text_lines(text: str) -> list[str]:
    """The cue's lines: stripped, blank lines dropped (a blank line ends a cue in both formats)."""
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def _timed(cues: Iterable[Cue]) -> list[tuple[int, int, list[str], str | None]]:
    """Cues with text, in ms, sorted by (start, end), each ending >= 1 ms after its start."""
    out = []
    for c in cues:
        lines = _text_lines(c.text)
        if not lines:
            continue
        s = _ms(c.start_s)
        e = max(_ms(c.end_s), s + 1)
        out.append((s, e, lines, c.speaker))
    out.sort(key=operator.itemgetter(0, 1))
    return out


def srt(cues: Iterable[Cue]) -> str:
    """SubRip text of `cues`: numbered from 1, sorted, non-overlapping, LF line ends.

    Speakers are not written (SubRip has no voice markup); cues that start on the same
    millisecond become one cue with their lines stacked.
    """
    merged: list[tuple[int, int, list[str]]] = []
    for s, e, lines, _speaker in _timed(cues):
        if merged and merged[-1][0] == s:
            ps, pe, plines = merged[-1]
            merged[-1] = (ps, max(pe, e), plines + lines)
        else:
            merged.append((s, e, lines))
    blocks = []
    for i, (s, e, lines) in enumerate(merged):
        if i + 1 < len(merged):
            e = min(e, merged[i + 1][0])  # the next starts later (merged), so e > s still
        safe = [_no_arrow(ln) for ln in lines]
        blocks.append(f"{i + 1}\n{_stamp(s, ',')} --> {_stamp(e, ',')}\n" + "\n".join(safe) + "\n")
    return "\n".join(blocks)


def _no_arrow(line: str) -> str:
    while "-->" in line:
        line = line.replace("-->", "->")
    return line


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webvtt(cues: Iterable[Cue]) -> str:
    """WebVTT text of `cues`: `WEBVTT` header, sorted cues (overlaps kept), escaped text,
    a `<v Speaker>` voice span when the cue has a speaker; LF line ends."""
    blocks = ["WEBVTT\n"]
    for s, e, lines, speaker in _timed(cues):
        body = "\n".join(_vtt_escape(ln) for ln in lines)
        name = " ".join(speaker.split()) if speaker else ""
        if name:
            body = f"<v {_vtt_escape(name)}>{body}</v>"
        blocks.append(f"{_stamp(s, '.')} --> {_stamp(e, '.')}\n{body}\n")
    return "\n".join(blocks)


# -- placing lines -----------------------------------------------------------------------------

MIN_CUE_S = 0.8
"""The shortest cue `spread` makes when the span has room (reading time for a short line)."""
GAP_S = 0.1
"""The pause `spread` leaves between consecutive cues."""


def _words(text: str) -> int:
    return max(1, len(text.split()))


def _shares(weights: Sequence[float], total: float, minimum: float) -> list[float]:
    """`total` split in proportion to `weights`, each part at least `minimum` when possible
    (water-filling: parts under the minimum are fixed at it, the rest share what is left)."""
    n = len(weights)
    if n == 0:
        return []
    if minimum * n >= total:
        return [total / n] * n
    fixed: set[int] = set()
    while True:
        free = [i for i in range(n) if i not in fixed]
        left = total - minimum * len(fixed)
        wsum = sum(weights[i] for i in free)
        parts = [minimum if i in fixed else left * weights[i] / wsum for i in range(n)]
        low = {i for i in free if parts[i] < minimum}
        if not low:
            return parts
        fixed |= low


def spread(
    lines: Sequence[Line],
    start_s: float,
    end_s: float,
    *,
    min_s: float = MIN_CUE_S,
    gap_s: float = GAP_S,
) -> list[Cue]:
    """Cues for `lines` in order over [start_s, end_s], each lasting in proportion to its
    word count (at least `min_s` when the span has room), `gap_s` apart. For a shot or
    segment whose audio has no detectable speech."""
    n = len(lines)
    span = max(0.0, end_s - start_s)
    if n == 0 or span == 0:
        return []
    gap = gap_s if span - gap_s * (n - 1) >= min(min_s, span / n) * n else 0.0
    parts = _shares([_words(t) for t, _ in lines], span - gap * (n - 1), min_s)
    cues, t = [], start_s
    for (text, speaker), d in zip(lines, parts):
        end = min(end_s, t + d)
        cues.append(Cue(t, end, text, speaker))
        t = end + gap
    return cues


def _cut(items: Sequence[float], groups: int, targets: Sequence[float]) -> list[int]:
    """Boundaries splitting `items` (weights, len >= groups) into `groups` consecutive
    non-empty groups whose cumulative weight share is nearest to `targets` (groups - 1
    cumulative shares in (0, 1)). Returns the start index of each group."""
    m = len(items)
    total = sum(items) or 1.0
    cum = [0.0]
    for w in items:
        cum.append(cum[-1] + w / total)
    starts = [0]
    for k, target in enumerate(targets, start=1):
        lo, hi = starts[-1] + 1, m - (groups - k)
        starts.append(min(range(lo, hi + 1), key=lambda b: abs(cum[b] - target)))
    return starts


def _cumulative(weights: Sequence[float]) -> list[float]:
    total = sum(weights) or 1.0
    out, acc = [], 0.0
    for w in weights[:-1]:
        acc += w
        out.append(acc / total)
    return out


def align(
    lines: Sequence[Line],
    spans: Sequence[tuple[float, float]],
    start_s: float,
    end_s: float,
    *,
    min_s: float = MIN_CUE_S,
) -> list[Cue]:
    """Cues for `lines` placed on the speech `spans` inside [start_s, end_s], in order.

    With as many spans as lines, line k is span k. With more spans, consecutive spans are
    grouped (each line gets at least one) so that each group's share of the speech time is
    nearest the line's cumulative share of the words; with fewer, consecutive lines share a
    span (each span gets at least one line), split inside it by words. A cue shorter than
    `min_s` is lengthened into the silence after it when there is room (never past the next
    cue or `end_s`). No spans inside the shot: `spread`.
    """
    inside = sorted((max(a, start_s), min(b, end_s)) for a, b in spans)
    inside = [(a, b) for a, b in inside if b > a]
    n = len(lines)
    if n == 0:
        return []
    if not inside:
        return spread(lines, start_s, end_s, min_s=min_s)
    words = [float(_words(t)) for t, _ in lines]
    durations = [b - a for a, b in inside]
    m = len(inside)
    placed: list[tuple[float, float]] = []
    if m >= n:
        starts = _cut(durations, n, _cumulative(words)) + [m]
        for k in range(n):
            placed.append((inside[starts[k]][0], inside[starts[k + 1] - 1][1]))
    else:
        starts = _cut(words, m, _cumulative(durations)) + [n]
        for j, (a, b) in enumerate(inside):
            group = range(starts[j], starts[j + 1])
            gw = sum(words[i] for i in group)
            acc = 0.0
            for i in group:  # boundaries from cumulative words: the last ends exactly at b
                t = a + (b - a) * acc / gw
                acc += words[i]
                placed.append((t, b if i == group[-1] else a + (b - a) * acc / gw))
    cues = []
    for k, ((a, b), (text, speaker)) in enumerate(zip(placed, lines)):
        limit = placed[k + 1][0] if k + 1 < n else end_s
        b = max(b, min(a + min_s, limit))
        cues.append(Cue(a, b, text, speaker))
    return cues


# -- voice activity ------------------------------------------------------------------------------

VAD_RATE = 16_000
"""Analysis sample rate (Hz): speech energy lies below 8 kHz; fewer samples to sum."""
FRAME_S = 0.02
"""Analysis frame: 20 ms, non-overlapping (320 samples at 16 kHz)."""
FLOOR_PERCENTILE = 0.10
"""The noise floor: this percentile of the frames' energies (dB) inside the analysed window."""
ON_DB = 12.0
"""A span starts on a frame this many dB above the floor ..."""
OFF_DB = 6.0
"""... and continues while frames stay this many dB above it (hysteresis)."""
ABS_GATE_DBFS = -50.0
"""Nothing quieter than this (dBFS, mean square of the frame) is speech, whatever the floor."""
HANGOVER_S = 0.25
"""Gaps shorter than this between spans are bridged (pauses between words)."""
MIN_SPAN_S = 0.15
"""Spans shorter than this after bridging are dropped (clicks, bumps)."""


def _decode_mono(path: Path, start_s: float, end_s: float | None) -> tuple[float, array[float]]:
    """The first audio stream of `path` as mono float32 at VAD_RATE, from about `start_s`:
    (time of the first sample, samples)."""
    samples: array[float] = array("f")
    t0: float | None = None
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot open {path}: {exc}") from exc
    with container:
        if not container.streams.audio:
            return start_s, samples
        stream = container.streams.audio[0]
        if start_s > 1.0:
            container.seek(int((start_s - 1.0) * 1_000_000), backward=True)  # av.time_base
        resampler = av.AudioResampler(format="flt", layout="mono", rate=VAD_RATE)
        try:
            for frame in container.decode(stream):
                if frame.time is not None and end_s is not None and frame.time > end_s:
                    break
                if t0 is None:
                    t0 = float(frame.time) if frame.time is not None else 0.0
                for out in resampler.resample(frame):
                    samples.extend(array("f", bytes(out.planes[0]))[: out.samples])
            for out in resampler.resample(None):
                samples.extend(array("f", bytes(out.planes[0]))[: out.samples])
        except av.error.FFmpegError as exc:
            raise MediaError(f"cannot decode the audio of {path}: {exc}") from exc
    return (t0 if t0 is not None else start_s), samples


def speech_spans(
    audio_path: Path | str,
    *,
    start_s: float = 0.0,
    end_s: float | None = None,
) -> list[tuple[float, float]]:
    """Where something is voiced in the audio of `audio_path` (any file PyAV reads: WAV, MP4
    ...), as (start, end) seconds on the file's timeline, clipped to [start_s, end_s].

    Method (energy, no model): decode to mono float at 16 kHz; mean-square energy in dB of
    non-overlapping 20 ms frames; the noise floor is the 10th percentile of the frames in the
    window; a span opens on a frame >= floor + 12 dB and stays open while frames are
    >= floor + 6 dB (and always above an absolute -50 dBFS gate); gaps under 250 ms are
    bridged; spans under 150 ms dropped. Boundaries are frame-accurate (20 ms). It finds
    anything loud against the clip's own quiet parts: speech, but also a door slam or music,
    and a clip with no quiet part (wall-to-wall music or speech) shows only its loudest
    moments. No audio stream: no spans.
    """
    path = Path(audio_path)
    t0, samples = _decode_mono(path, start_s, end_s)
    hop = int(VAD_RATE * FRAME_S)
    first = max(0, round((start_s - t0) * VAD_RATE))
    last = len(samples) if end_s is None else min(len(samples), round((end_s - t0) * VAD_RATE))
    energies: list[float] = []
    for i in range(first, last - hop + 1, hop):
        chunk = samples[i : i + hop]
        ms = sum(map(operator.mul, chunk, chunk)) / hop
        energies.append(10.0 * math.log10(ms + 1e-12))
    if not energies:
        return []
    floor = sorted(energies)[int(FLOOR_PERCENTILE * (len(energies) - 1))]
    on = max(floor + ON_DB, ABS_GATE_DBFS)
    off = max(floor + OFF_DB, ABS_GATE_DBFS)
    base = t0 + first / VAD_RATE
    raw: list[tuple[float, float]] = []
    open_at: int | None = None
    for k, db in enumerate(energies):
        if open_at is None and db >= on:
            open_at = k
        elif open_at is not None and db < off:
            raw.append((base + open_at * FRAME_S, base + k * FRAME_S))
            open_at = None
    if open_at is not None:
        raw.append((base + open_at * FRAME_S, base + len(energies) * FRAME_S))
    bridged: list[tuple[float, float]] = []
    for a, b in raw:
        if bridged and a - bridged[-1][1] < HANGOVER_S:
            bridged[-1] = (bridged[-1][0], b)
        else:
            bridged.append((a, b))
    hi = math.inf if end_s is None else end_s
    return [(max(a, start_s), min(b, hi)) for a, b in bridged if b - a >= MIN_SPAN_S]
