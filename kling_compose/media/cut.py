"""The finished film (issue 24): one output rendered from its parts.

A part is a shot's clip (trimmed in and out, frame-accurately) or a title card, joined to the
one before by a cut, a crossfade (the two overlap: the film is shorter) or a dip through black
(out over the first half, in over the second: the length is kept). On top: dialogue cues
aligned to the speech in each clip's audio and moved to film time, a music bed ducked under
them, loudness normalisation, reframing to another aspect or size, burned-in subtitles, a
watermark, fades, and the web (H.264 + AAC) or master (ProRes + PCM) encoding.

Passes (docs/media.md "cut.py"): the soundtrack is built on its own first (audio only: cheap),
measured and normalised if asked, and encoded to its final codec; then the picture is either
stream-copied (every part a whole clip joined by cuts, nothing drawn on it: assemble.py's
concat join, the soundtrack muxed in as is) or rendered in one filtergraph and encoded once,
with the soundtrack copied in (past CHUNK_PARTS parts, stretch by stretch, joined copied:
one call's memory grows with every clip). The plainest film (no music, no loudness target) is exactly
`assemble.assemble` with 10 ms declicking fades at the cuts.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

from PIL import Image, ImageColor, ImageDraw, ImageFont, ImageOps

from . import deliver, mix
from .assemble import _concat_quote, assemble
from .ffmpeg import ClipInfo, MediaError, atomic_output, loop_input, probe, run_ffmpeg
from .subtitles import Cue, align, speech_spans, srt, webvtt

SAMPLE_RATE = 48_000
DECLICK_S = 0.01
"""Fades at the head and tail of every part's audio (mix.declick_filter): no click at a cut."""
TRANSITIONS = ("cut", "crossfade", "dip")
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
SUBTITLE_FORMATS = ("srt", "vtt")
MIN_CUE_S = 0.2
"""A cue cut by a trim keeps at least this much of itself, or it is dropped."""
_STEREO = f"aformat=sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts=stereo"
_NO_CLIP_FPS = Fraction(24)
_BURN_FONT = "Aileron"  # Pillow's bundled default font: the same picture on every machine


@dataclass(frozen=True, slots=True)
class Said:
    """One line of dialogue inside a part: spoken within [start_s, end_s] of the *clip*
    (seconds of the untrimmed clip: the whole clip, or a multi_prompt segment's span)."""

    speaker: str
    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True, slots=True)
class Part:
    """A piece of the film: a clip (trimmed to [start_s, end_s]) or, with clip None, a title
    card of `duration_s`; `transition` is how it is joined to the part before."""

    clip: Path | None = None
    start_s: float = 0.0
    end_s: float | None = None
    transition: str = "cut"
    transition_s: float = 0.0
    title: str = ""
    subtitle: str = ""
    duration_s: float = 0.0
    background: str | Path = "black"
    focus: tuple[float, float] = (0.5, 0.5)
    lines: tuple[Said, ...] = ()


@dataclass(frozen=True, slots=True)
class Watermark:
    """An image over a corner of the picture, `scale` x the film's width wide."""

    image: Path
    corner: str = "bottom-right"
    opacity: float = 0.8
    scale: float = 0.12


@dataclass(frozen=True, slots=True)
class Delivery:
    """How one output is finished and encoded (see render and docs/media.md)."""

    aspect: tuple[int, int] | None = None
    size: tuple[int, int] | None = None
    reframe: str = "crop"
    preset: str = "web"
    fade_in_s: float = 0.0
    fade_out_s: float = 0.0
    music: Path | None = None
    music_gain_db: float = -18.0
    duck_db: float = 10.0
    loudness_lufs: float | None = None
    true_peak_db: float = -1.0
    subtitles: tuple[str, ...] = ()
    burn_in: bool = False
    watermark: Watermark | None = None


@dataclass(frozen=True, slots=True)
class Rendered:
    """What render wrote: measured on the final file."""

    duration_s: float
    width: int
    height: int
    loudness_lufs: float | None
    true_peak_db: float | None
    cues: tuple[Cue, ...]
    subtitles: dict[str, str]
    normalised: str | None


@dataclass(frozen=True, slots=True)
class Placed:
    """A part placed on the film's timeline (frames at the film's fps)."""

    part: Part
    info: ClipInfo | None
    first: int  # first source frame (the clip's own frame rate)
    stop: int  # source frame after the last
    frames: int  # frames in the film
    start: int  # the film frame it starts on
    into: str  # the transition into it ("cut" when it takes no time)
    into_frames: int


@dataclass(frozen=True, slots=True)
class Layout:
    pieces: tuple[Placed, ...]
    fps: Fraction
    frames: int

    def seconds(self, frames: int) -> float:
        return float(frames / self.fps)

    def samples(self, frames: int) -> int:
        return round(frames * SAMPLE_RATE / self.fps)


# -- the plan ---------------------------------------------------------------------------------


def _check_delivery(delivery: Delivery, out: Path) -> None:
    deliver._check_preset(delivery.preset, out)
    if delivery.reframe not in ("crop", "pad"):
        raise MediaError(f"unknown reframe {delivery.reframe!r} (crop or pad)")
    if delivery.aspect is not None and not all(x > 0 for x in delivery.aspect):
        raise MediaError(f"aspect {delivery.aspect} must be positive")
    if delivery.size is not None:
        w, h = delivery.size
        if w <= 0 or h <= 0 or w % 2 or h % 2:
            raise MediaError(f"size {w}x{h} must be positive and even (yuv420p)")
    for fmt in delivery.subtitles:
        if fmt not in SUBTITLE_FORMATS:
            raise MediaError(f"unknown subtitle format {fmt!r} (srt or vtt)")
    if delivery.fade_in_s < 0 or delivery.fade_out_s < 0:
        raise MediaError("fades cannot be negative")
    wm = delivery.watermark
    if wm is not None:
        if wm.corner not in CORNERS:
            raise MediaError(f"unknown watermark corner {wm.corner!r} ({', '.join(CORNERS)})")
        if not 0 <= wm.opacity <= 1 or not 0 < wm.scale <= 1:
            raise MediaError("watermark opacity must be in [0, 1] and scale in (0, 1]")
        if not Path(wm.image).is_file():
            raise MediaError(f"watermark image {wm.image} not found")
    if delivery.music is not None and not mix._has_audio(delivery.music):
        raise MediaError(f"{delivery.music} has no audio stream to use as music")


def layout(parts: Sequence[Part]) -> Layout:
    """Every part probed, trimmed to whole frames and placed in film frames; MediaError for a
    trim outside its clip, an empty title card, a transition longer than its parts."""
    if not parts:
        raise MediaError("render: no parts given")
    infos: dict[Path, ClipInfo] = {}
    for part in parts:
        if part.clip is not None and Path(part.clip) not in infos:
            infos[Path(part.clip)] = probe(part.clip)
    first_clip = next((infos[Path(p.clip)] for p in parts if p.clip is not None), None)
    fps = first_clip.fps if first_clip is not None and first_clip.fps else _NO_CLIP_FPS
    pieces: list[Placed] = []
    start = 0
    for i, part in enumerate(parts):
        name = f"part {i + 1}"
        info = infos[Path(part.clip)] if part.clip is not None else None
        if info is not None and part.clip is not None:
            own = info.fps or fps
            length = float(info.frame_count / own)
            end_s = length if part.end_s is None else part.end_s
            half = 0.5 / float(own)
            if part.start_s < 0 or part.start_s >= length - half or end_s > length + half \
                    or end_s <= part.start_s:
                raise MediaError(f"{name}: trim {part.start_s:g}-{end_s:g} s is outside "
                                 f"{Path(part.clip).name} (0-{float(length):.3f} s)")
            first = round(part.start_s * own)
            stop = min(info.frame_count, round(end_s * own))
            if stop <= first:
                raise MediaError(f"{name}: trim {part.start_s:g}-{end_s:g} s holds no frame")
            frames = stop - first if own == fps else max(1, round((stop - first) / own * fps))
        else:
            if part.duration_s <= 0:
                raise MediaError(f"{name}: a title card needs a duration")
            first, stop, frames = 0, 0, max(1, round(part.duration_s * fps))
        if part.transition not in TRANSITIONS:
            raise MediaError(f"{name}: unknown transition {part.transition!r} "
                             f"({', '.join(TRANSITIONS)})")
        if part.transition_s < 0:
            raise MediaError(f"{name}: a transition cannot last {part.transition_s:g} s")
        into_frames = round(part.transition_s * fps) if i > 0 else 0
        into = part.transition if into_frames > 0 and part.transition != "cut" else "cut"
        if into == "cut":
            into_frames = 0
        if into == "crossfade":
            start -= into_frames
        pieces.append(Placed(part, info, first, stop, frames, start, into, into_frames))
        start += frames
    _check_transitions(pieces, fps)
    return Layout(tuple(pieces), fps, start)


def _check_transitions(pieces: list[Placed], fps: Fraction) -> None:
    for i, piece in enumerate(pieces):
        if piece.into == "cut":
            continue
        prev = pieces[i - 1]
        seconds = float(piece.into_frames / fps)
        if piece.into == "crossfade":
            out_next = pieces[i + 1].into_frames if i + 1 < len(pieces) and \
                pieces[i + 1].into == "crossfade" else 0
            prev_in = prev.into_frames if prev.into == "crossfade" else 0
            if piece.into_frames + out_next >= piece.frames or \
                    prev_in + piece.into_frames >= prev.frames:
                raise MediaError(f"part {i + 1}: a crossfade of {seconds:g} s is longer than "
                                 "a part it joins (with that part's other crossfade)")
        else:  # dip: out over the first half, in over the second
            if piece.into_frames // 2 > prev.frames or \
                    piece.into_frames - piece.into_frames // 2 > piece.frames:
                raise MediaError(f"part {i + 1}: a dip of {seconds:g} s is longer than "
                                 "twice a part it joins")


def _output_size(tl: Layout, delivery: Delivery) -> tuple[int, int]:
    """The film's frame: size if given; else the first clip's frame re-cut to aspect (crop:
    the largest window; pad: the smallest canvas holding it); else the first clip's."""
    if delivery.size is not None:
        return delivery.size
    clip = next((p.info for p in tl.pieces if p.info is not None), None)
    if clip is None:
        raise MediaError("a film of title cards only needs a size")
    if delivery.aspect is None:
        return clip.width, clip.height
    _chain, size = deliver.reframe_filter(clip.width, clip.height, aspect=delivery.aspect,
                                          mode=delivery.reframe)  # type: ignore[arg-type]
    return size


def _video_untouched(tl: Layout, delivery: Delivery) -> bool:
    """True when the picture is the clips' own, whole, joined by cuts: it can be copied."""
    first = next((p.info for p in tl.pieces if p.info is not None), None)
    if first is None:
        return False
    same_frame = delivery.size in (None, (first.width, first.height)) and (
        delivery.aspect is None or delivery.size is not None)
    return (all(p.info is not None and p.first == 0 and p.stop == p.info.frame_count
                and p.into == "cut" for p in tl.pieces)
            and same_frame and delivery.preset == "web" and not delivery.burn_in
            and delivery.watermark is None and delivery.fade_in_s == 0
            and delivery.fade_out_s == 0)


# -- cues ----------------------------------------------------------------------------------------


def _cues(tl: Layout) -> list[Cue]:
    """Each part's lines aligned to the speech in its clip's audio (else spread by words)
    inside each line's span, cut to the trim, moved to film time; in order."""
    spans_of: dict[Path, list[tuple[float, float]]] = {}
    out: list[tuple[float, int, Cue]] = []
    for index, piece in enumerate(tl.pieces):
        part = piece.part
        if not part.lines:
            continue
        if piece.info is not None:
            own = piece.info.fps or tl.fps
            length = float(piece.info.frame_count / own)
            t0, t1 = float(piece.first / own), float(piece.stop / own)
            clip = Path(part.clip)  # type: ignore[arg-type]
            if clip not in spans_of:
                spans_of[clip] = speech_spans(clip) if piece.info.has_audio else []
            spans = spans_of[clip]
        else:
            length = t1 = tl.seconds(piece.frames)
            t0, spans = 0.0, []
        film0 = tl.seconds(piece.start)
        film1 = tl.seconds(piece.start + piece.frames)
        for a, b, group in _groups(part.lines):
            a, b = max(0.0, a), min(length, b)
            if b <= a:
                continue
            for cue in align([(s.text, s.speaker) for s in group], spans, a, b):
                s, e = max(cue.start_s, t0), min(cue.end_s, t1)
                if e - s < min(MIN_CUE_S, cue.end_s - cue.start_s) or e <= s:
                    continue
                fs = min(film1, film0 + (s - t0))
                fe = min(film1, film0 + (e - t0))
                out.append((fs, index, Cue(fs, fe, cue.text, cue.speaker)))
    out.sort(key=lambda c: (c[0], c[1]))
    return [c for _, _, c in out]


def _groups(lines: Sequence[Said]) -> list[tuple[float, float, list[Said]]]:
    """Consecutive lines sharing a span, grouped (they are placed together)."""
    groups: list[tuple[float, float, list[Said]]] = []
    for line in lines:
        if line.end_s <= line.start_s:
            raise MediaError(f"line {line.text!r}: span {line.start_s:g}-{line.end_s:g} s "
                             "is empty")
        if groups and (groups[-1][0], groups[-1][1]) == (line.start_s, line.end_s):
            groups[-1][2].append(line)
        else:
            groups.append((line.start_s, line.end_s, [line]))
    return groups


# -- the soundtrack ------------------------------------------------------------------------------


def _file_url(path: Path | str) -> str:
    return "file:" + str(Path(path).resolve())


def _audio_args(tl: Layout, delivery: Delivery, cues: Sequence[Cue], dst: Path,
                codec: list[str]) -> list[str]:
    """One ffmpeg call writing the film's soundtrack to `dst`: each part's audio trimmed like
    its picture (silence for titles and silent clips), declicked, joined by the parts'
    transitions, the music bed under it, the output fades."""
    inputs: list[str] = []
    graph: list[str] = []
    labels = []
    pieces = tl.pieces
    for i, piece in enumerate(pieces):
        n = tl.samples(piece.frames)
        if piece.info is not None and piece.info.has_audio:
            own = piece.info.fps or tl.fps
            first = round(piece.first * SAMPLE_RATE / own)
            k = inputs.count("-i")
            inputs += ["-i", _file_url(piece.part.clip)]  # type: ignore[arg-type]
            chain = (f"[{k}:a:0]aresample={SAMPLE_RATE},{_STEREO},apad,"
                     f"atrim=start_sample={first}:end_sample={first + n},asetpts=N/SR/TB,"
                     f"{mix.declick_filter(n / SAMPLE_RATE, DECLICK_S)}")
        else:
            chain = f"anullsrc=r={SAMPLE_RATE}:cl=stereo,atrim=end_sample={n},{_STEREO}"
        if piece.into == "dip":
            fade_in = tl.samples(piece.into_frames - piece.into_frames // 2)
            chain += f",afade=t=in:start_sample=0:nb_samples={fade_in}"
        nxt = pieces[i + 1] if i + 1 < len(pieces) else None
        if nxt is not None and nxt.into == "dip":
            fade_out = tl.samples(nxt.into_frames // 2)
            chain += f",afade=t=out:start_sample={n - fade_out}:nb_samples={fade_out}"
        graph.append(f"{chain}[a{i}]")
        labels.append(f"[a{i}]")
    total = tl.samples(tl.frames)
    joined = _join(graph, labels, tl, audio=True)
    chain = f"{joined}apad,atrim=end_sample={total},asetpts=N/SR/TB"
    if delivery.music is not None:
        k = inputs.count("-i")
        inputs += loop_input(delivery.music, total / SAMPLE_RATE)
        graph.append(f"{chain}[own]")
        graph.append(f"[{k}:a:0]" + mix.bed_filter(
            total / SAMPLE_RATE, gain_db=delivery.music_gain_db, duck_db=delivery.duck_db,
            dialogue=[(c.start_s, c.end_s) for c in cues]) + "[bed]")
        chain = "[own][bed]amix=inputs=2:duration=first:normalize=0"
    chain += _audio_fades(delivery, total)
    graph.append(f"{chain}[aout]")
    return [*inputs, "-filter_complex", ";".join(graph), "-map", "[aout]", *codec, str(dst)]


def _audio_fades(delivery: Delivery, total: int) -> str:
    out = ""
    if delivery.fade_in_s > 0:
        n = min(total, round(delivery.fade_in_s * SAMPLE_RATE))
        out += f",afade=t=in:start_sample=0:nb_samples={n}"
    if delivery.fade_out_s > 0:
        n = min(total, round(delivery.fade_out_s * SAMPLE_RATE))
        out += f",afade=t=out:start_sample={total - n}:nb_samples={n}"
    return out


def _join(graph: list[str], labels: list[str], tl: Layout, *, audio: bool) -> str:
    """Append to `graph` the filters joining `labels` (one per piece) in order: runs of cuts
    and dips by one concat filter each, the runs by crossfades (xfade / acrossfade, exactly
    the overlap in frames or samples; an xfade's offset is where its second part starts).
    Returns the joined stream's label."""
    kinds = [p.into for p in tl.pieces]
    runs: list[list[int]] = [[0]]
    for i in range(1, len(labels)):
        if kinds[i] == "crossfade":
            runs.append([i])
        else:
            runs[-1].append(i)
    tag = "a" if audio else "v"
    heads: list[str] = []
    for r, run in enumerate(runs):
        if len(run) == 1:
            heads.append(labels[run[0]])
            continue
        media = "v=0:a=1" if audio else "v=1:a=0"
        # concat's timestamps are in microseconds, a piece's in frames (its fps filter):
        # xfade refuses inputs of two time bases, so a run it joins is put back in frames
        base = f",settb={tl.fps.denominator}/{tl.fps.numerator}" \
            if not audio and len(runs) > 1 else ""
        graph.append("".join(labels[i] for i in run)
                     + f"concat=n={len(run)}:{media}{base}[{tag}r{r}]")
        heads.append(f"[{tag}r{r}]")
    current = heads[0]
    for r in range(1, len(runs)):
        piece = tl.pieces[runs[r][0]]
        if audio:
            graph.append(f"{current}{heads[r]}acrossfade=ns={tl.samples(piece.into_frames)}"
                         f":c1=tri:c2=tri[{tag}x{r}]")
        else:
            graph.append(f"{current}{heads[r]}xfade=transition=fade"
                         f":duration={tl.seconds(piece.into_frames):.6f}"
                         f":offset={tl.seconds(piece.start):.6f}[{tag}x{r}]")
        current = f"[{tag}x{r}]"
    return current


def _soundtrack(tl: Layout, delivery: Delivery, cues: Sequence[Cue], tmp: Path,
                ) -> tuple[Path, str | None]:
    """The finished soundtrack (its final codec) and how its loudness was reached."""
    if delivery.preset == "master":
        codec, final = ["-c:a", "pcm_s24le", "-ar", str(SAMPLE_RATE)], tmp / "sound.wav"
    else:
        codec = ["-c:a", "aac", "-b:a", "192k", "-ar", str(SAMPLE_RATE)]
        final = tmp / "sound.m4a"
    if delivery.loudness_lufs is None:
        run_ffmpeg(_audio_args(tl, delivery, cues, final, codec))
        return final, None
    mixed = tmp / "mix.wav"
    run_ffmpeg(_audio_args(tl, delivery, cues, mixed, ["-c:a", "pcm_f32le"]))
    before = mix.measure(mixed)
    if before.integrated_lufs <= mix._SILENT_LUFS:  # nothing to bring up: left silent
        run_ffmpeg(["-i", _file_url(mixed), "-map", "0:a:0", *codec, str(final)])
        return final, None
    done = mix.normalise(mixed, final, target_lufs=delivery.loudness_lufs,
                         true_peak_dbtp=delivery.true_peak_db, audio_args=codec,
                         measured=before)
    return final, "loudnorm" if done.mode == "linear" else done.mode


# -- the picture ---------------------------------------------------------------------------------


def _fit_chain(info: ClipInfo, size: tuple[int, int], delivery: Delivery,
               focus: tuple[float, float]) -> str:
    """A clip's frame brought to the film's: reframed (crop around `focus`, or pad) to the
    delivery's aspect / size; without either, letterboxed into the first clip's frame."""
    w, h = size
    if delivery.aspect is None and delivery.size is None:
        if (info.width, info.height) == size:
            return "setsar=1"
        return (f"scale={w}:{h}:force_original_aspect_ratio=decrease,"
                f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1")
    g = math.gcd(w, h)
    aspect = (w // g, h // g) if delivery.size is not None else delivery.aspect
    chain, got = deliver.reframe_filter(info.width, info.height, aspect=aspect,  # type: ignore[arg-type]
                                        out_height=h, mode=delivery.reframe,  # type: ignore[arg-type]
                                        focus=focus)
    if got != size:
        chain += f",scale={w}:{h}:flags=lanczos,setsar=1"
    return chain


def _picture(tl: Layout, delivery: Delivery, size: tuple[int, int], tmp: Path,
             cues: Sequence[Cue], *, following: Placed | None = None, offset: int = 0,
             film_frames: int | None = None, first_card: int = 0,
             ) -> tuple[list[str], list[str]]:
    """The inputs and the filtergraph (ending in [vout]) of `tl`'s picture: every part
    trimmed, fitted to the film's frame, joined; then the burned-in cues, the watermark, the
    fades. `tl` may be a stretch of the film starting on film frame `offset`, `following` the
    part after it (a dip into it fades this stretch's last part out); the film's fades are
    drawn where their frames fall in it (_chunks keeps each in one stretch)."""
    w, h = size
    fps = tl.fps
    inputs: list[str] = []
    graph: list[str] = []
    labels = []
    pieces = tl.pieces
    for i, piece in enumerate(pieces):
        k = inputs.count("-i")
        if piece.info is not None:
            # one decoding thread per clip: the clips are read one after another
            inputs += ["-threads", "1", "-i", _file_url(piece.part.clip)]  # type: ignore[arg-type]
            own = piece.info.fps or fps
            chain = (f"[{k}:v:0]trim=start_frame={piece.first}:end_frame={piece.stop},"
                     f"setpts=PTS-STARTPTS")
            if own != fps:
                chain += f",fps={fps},tpad=stop=-1:stop_mode=clone,trim=end_frame={piece.frames}"
            chain += "," + _fit_chain(piece.info, size, delivery, piece.part.focus)
        else:
            card = tmp / f"card-{first_card + i:04d}.png"
            title_card(piece.part, size).save(card)
            inputs += ["-framerate", str(fps), "-i", _file_url(card)]
            chain = (f"[{k}:v:0]loop=loop={piece.frames - 1}:size=1:start=0,"
                     f"setpts=N/FRAME_RATE/TB,setsar=1")
        chain += f",fps={fps},format=yuv420p"
        if piece.into == "dip":
            chain += f",fade=t=in:start_frame=0:nb_frames={piece.into_frames - piece.into_frames // 2}"
        nxt = pieces[i + 1] if i + 1 < len(pieces) else following
        if nxt is not None and nxt.into == "dip" and nxt.into_frames // 2 > 0:
            chain += "," + _fade_out(piece.frames, nxt.into_frames // 2)
        graph.append(f"{chain}[v{i}]")
        labels.append(f"[v{i}]")
    post = _join(graph, labels, tl, audio=False)
    if delivery.burn_in and cues:
        subs = tmp / "burn.ass"
        if not subs.exists():
            subs.write_text(_ass(cues, w, h), encoding="utf-8")
            fonts = tmp / "fonts"
            fonts.mkdir(exist_ok=True)
            (fonts / "Aileron-Regular.ttf").write_bytes(_font_bytes())
        # a stretch's frames are drawn at their film time: the cues' own (frame-exact) times
        film_time = f"setpts=PTS+{offset}*{fps.denominator}/({fps.numerator}*TB)," \
            if offset else ""
        back = ",setpts=PTS-STARTPTS" if offset else ""
        graph.append(f"{post}{film_time}subtitles=filename={_filter_path(subs)}:"
                     f"fontsdir={_filter_path(tmp / 'fonts')}{back}[vsub]")
        post = "[vsub]"
    wm = delivery.watermark
    if wm is not None:
        k = inputs.count("-i")
        inputs += ["-i", _file_url(wm.image)]
        ww = max(2, 2 * round(w * wm.scale / 2))
        margin = max(2, round(0.03 * min(w, h)))
        x = f"{margin}" if "left" in wm.corner else f"W-w-{margin}"
        y = f"{margin}" if "top" in wm.corner else f"H-h-{margin}"
        graph.append(f"[{k}:v:0]scale={ww}:-2,format=rgba,"
                     f"colorchannelmixer=aa={wm.opacity:.4f}[wm]")
        graph.append(f"{post}[wm]overlay=x={x}:y={y}:format=auto[vwm]")
        post = "[vwm]"
    chain = f"{post}null"
    fade_in, fade_out = _film_fades(delivery, fps, film_frames or tl.frames)
    if fade_in and offset == 0:
        chain += f",fade=t=in:start_frame=0:nb_frames={fade_in}"
    if fade_out and following is None:
        chain += "," + _fade_out(tl.frames, fade_out)
    if delivery.preset == "web":
        chain += ",format=yuv420p"
    graph.append(f"{chain}[vout]")
    return inputs, graph


def _film_fades(delivery: Delivery, fps: Fraction, frames: int) -> tuple[int, int]:
    """The frames of the film's fade in and fade out (`frames`: the film's length)."""
    n_in = min(frames, round(delivery.fade_in_s * fps)) if delivery.fade_in_s > 0 else 0
    n_out = min(frames, round(delivery.fade_out_s * fps)) if delivery.fade_out_s > 0 else 0
    return n_in, n_out


def _video_args(tl: Layout, delivery: Delivery, size: tuple[int, int], tmp: Path,
                sound: Path, cues: Sequence[Cue], dst: Path) -> list[str]:
    """One ffmpeg call: the whole picture (_picture) encoded to the preset, the soundtrack
    copied."""
    inputs, graph = _picture(tl, delivery, size, tmp, cues)
    k = inputs.count("-i")
    inputs += ["-i", _file_url(sound)]
    video, _audio = deliver._check_preset(delivery.preset, dst)
    return [*inputs, "-filter_complex", ";".join(graph), "-map", "[vout]", "-map", f"{k}:a:0",
            "-frames:v", str(tl.frames), *video, "-c:a", "copy",
            *deliver._mux_args(delivery.preset), str(dst)]


CHUNK_PARTS = 12
"""The most parts one ffmpeg renders: ffmpeg keeps every input's decoder and its frames until
it exits, so one call for the whole film grew by about 30 MB a 1080p clip (1.7 GB at 50
clips, docs/benchmarks.md); a longer film is rendered in stretches of at most this many parts,
each encoded alike, and the stretches joined without re-encoding."""


def _chunks(tl: Layout, delivery: Delivery) -> list[tuple[int, int]]:
    """The film's stretches [a, b) of at most CHUNK_PARTS parts, split only before a part
    joined by a cut or a dip (a crossfade mixes two parts' frames) and outside the film's
    fades."""
    fade_in, fade_out = _film_fades(delivery, tl.fps, tl.frames)
    pieces = tl.pieces
    bounds, a = [], 0
    for i in range(1, len(pieces)):
        if i - a < CHUNK_PARTS:
            continue
        for j in range(i, a, -1):  # the latest place to split at or before i
            start = pieces[j].start
            if pieces[j].into != "crossfade" and fade_in <= start <= tl.frames - fade_out:
                bounds.append((a, j))
                a = j
                break
    bounds.append((a, len(pieces)))
    return bounds


def _stretch(tl: Layout, a: int, b: int) -> Layout:
    """Parts a..b-1 of the film as a layout of their own, starting on frame 0."""
    start = tl.pieces[a].start
    end = tl.pieces[b - 1].start + tl.pieces[b - 1].frames
    pieces = tuple(replace(p, start=p.start - start) for p in tl.pieces[a:b])
    return Layout(pieces, tl.fps, end - start)


def _render_picture(tl: Layout, delivery: Delivery, size: tuple[int, int], tmp: Path,
                    sound: Path, cues: Sequence[Cue], dst: Path) -> None:
    """The picture encoded and the soundtrack copied into `dst`: in one ffmpeg call, or for
    a film of more than CHUNK_PARTS parts each stretch encoded on its own (the same encoder
    and settings) and the stretches joined by the concat demuxer, copied."""
    chunks = _chunks(tl, delivery)
    if len(chunks) == 1:
        run_ffmpeg(_video_args(tl, delivery, size, tmp, sound, cues, dst))
        return
    video, _audio = deliver._check_preset(delivery.preset, dst)
    made = []
    for n, (a, b) in enumerate(chunks):
        part = _stretch(tl, a, b)
        following = tl.pieces[b] if b < len(tl.pieces) else None
        inputs, graph = _picture(part, delivery, size, tmp, cues, following=following,
                                 offset=tl.pieces[a].start, film_frames=tl.frames,
                                 first_card=a)
        piece = tmp / f"stretch-{n:04d}{dst.suffix}"
        run_ffmpeg([*inputs, "-filter_complex", ";".join(graph), "-map", "[vout]",
                    "-frames:v", str(part.frames), *video, "-an", str(piece)])
        made.append(piece)
    listing = tmp / "stretches.txt"
    listing.write_text("".join(f"file {_concat_quote(p)}\n" for p in made), encoding="utf-8")
    run_ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-i", _file_url(sound),
                "-map", "0:v:0", "-map", "1:a:0", "-c", "copy", "-frames:v", str(tl.frames),
                *deliver._mux_args(delivery.preset), str(dst)])


def _fade_out(frames: int, n: int) -> str:
    """A fade to black over the last `n` of `frames` frames whose last frame is black (the
    fade filter's last fading frame is still 1/nb_frames lit)."""
    nb = max(1, n - 1)
    return f"fade=t=out:start_frame={max(0, frames - 1 - nb)}:nb_frames={nb}"


def _ass(cues: Sequence[Cue], width: int, height: int) -> str:
    """The cues as an ASS script authored at the film's own size, so a size in it is pixels
    of the film. (An SRT is laid out on libass's default 384x288 canvas and stretched to the
    frame: on a 9:16 film its letters came out squeezed to half their width.) White with a
    dark outline; on a landscape or square film 6.5% of the height, 4% of it above the
    bottom; on a portrait one (a social cut) 5% of the height, 15% above the bottom, clear of
    the apps' own captions and buttons."""
    portrait = height > width
    size = max(8, round((0.05 if portrait else 0.065) * height))
    margin = max(4, round((0.15 if portrait else 0.04) * height))
    outline = max(1, round(size / 12))
    head = (
        "[Script Info]\nScriptType: v4.00+\nWrapStyle: 0\nScaledBorderAndShadow: yes\n"
        f"PlayResX: {width}\nPlayResY: {height}\n\n"
        "[V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, "
        "OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, "
        "Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, "
        "Encoding\n"
        f"Style: Default,{_BURN_FONT},{size},&H00FFFFFF,&H00FFFFFF,&H00000000,&H80000000,"
        f"0,0,0,0,100,100,0,0,1,{outline},0,2,{margin},{margin},{margin},1\n\n"
        "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, "
        "Text\n")
    events = [f"Dialogue: 0,{_ass_time(c.start_s)},{_ass_time(c.end_s)},Default,,0,0,0,,"
              f"{_ass_text(c.text)}\n" for c in cues]
    return head + "".join(events)


def _ass_time(seconds: float) -> str:
    """H:MM:SS.cc, ASS's centisecond times."""
    cs = max(0, round(seconds * 100))
    return f"{cs // 360000}:{cs // 6000 % 60:02d}:{cs // 100 % 60:02d}.{cs % 100:02d}"


def _ass_text(text: str) -> str:
    """Words shown as written: no override block ({...}) or escape (\\N) read into them;
    line breaks kept."""
    text = text.replace("\\", "\\\u2060").replace("{", "\\{").replace("}", "\\}")
    return "\\N".join(line.strip() for line in text.splitlines())


def _filter_path(path: Path) -> str:
    """A path as a filter option value inside a filtergraph: escaped for the option parser
    (\\ ' :) and then for the graph parser (\\ ' [ ] , ;)."""
    text = str(Path(path).resolve())
    for ch in ("\\", "'", ":"):
        text = text.replace(ch, "\\" + ch)
    out = []
    for ch in text:
        out.append("\\" + ch if ch in "\\'[],;" else ch)
    return "".join(out)


def _font_bytes() -> bytes:
    """The TrueType bytes of Pillow's bundled default font (Aileron Regular)."""
    font = ImageFont.load_default(size=12)
    data = getattr(font, "font_bytes", None)
    if not data:
        raise MediaError("Pillow has no bundled FreeType font to burn subtitles with")
    return bytes(data)


def title_card(part: Part, size: tuple[int, int]) -> Image.Image:
    """A title card: the background (a colour, or an image scaled to cover), the title large
    and centred, the subtitle below it; long text wrapped, then cut with '...'."""
    from .animatic import _wrap

    w, h = size
    bg = part.background
    if isinstance(bg, str) and not bg.startswith("#") and Path(bg).is_file():
        bg = Path(bg)  # an image given as a string
    if isinstance(bg, Path):
        try:
            with Image.open(bg) as im:
                img = ImageOps.fit(im.convert("RGB"), size, method=Image.Resampling.BICUBIC)
        except OSError as exc:
            raise MediaError(f"title card background {bg}: {exc}") from None
    else:
        try:
            img = Image.new("RGB", size, ImageColor.getrgb(bg))
        except ValueError:
            raise MediaError(f"title card background {bg!r} is not a colour") from None
    light = sum(img.resize((1, 1)).getpixel((0, 0))) > 3 * 150  # type: ignore[arg-type]
    ink = (16, 16, 16) if light else (240, 240, 240)
    draw = ImageDraw.Draw(img)
    unit = min(w, h)
    title_font = ImageFont.load_default(size=max(10, unit // 9))
    sub_font = ImageFont.load_default(size=max(8, unit // 20))
    margin = max(8, w // 12)
    title_lines = _wrap(part.title, title_font, w - 2 * margin, 3)
    sub_lines = _wrap(part.subtitle, sub_font, w - 2 * margin, 3)
    th, sh = int(unit // 9 * 1.25), int(unit // 20 * 1.4)
    block = len(title_lines) * th + (sh // 2 + len(sub_lines) * sh if sub_lines else 0)
    y = (h - block) // 2
    for line in title_lines:
        draw.text((w // 2, y + th // 2), line, font=title_font, fill=ink, anchor="mm")
        y += th
    y += sh // 2
    for line in sub_lines:
        draw.text((w // 2, y + sh // 2), line, font=sub_font, fill=ink, anchor="mm")
        y += sh
    return img


# -- render ---------------------------------------------------------------------------------------


def render(parts: Sequence[Part], delivery: Delivery, out: Path, *, workdir: Path) -> Rendered:
    """Write the film of `parts` finished as `delivery` to `out` atomically and return what
    was measured on it (duration, size, loudness) with its cues and subtitle texts."""
    out, workdir = Path(out), Path(workdir)
    _check_delivery(delivery, out)
    tl = layout(parts)
    size = _output_size(tl, delivery)
    cues = _cues(tl)
    subtitles = {fmt: srt(cues) if fmt == "srt" else webvtt(cues) for fmt in delivery.subtitles}
    workdir.mkdir(parents=True, exist_ok=True)
    normalised = None
    with tempfile.TemporaryDirectory(prefix="cut-", dir=workdir) as tmp_name:
        tmp = Path(tmp_name)
        copy_video = _video_untouched(tl, delivery)
        clips = [Path(p.part.clip) for p in tl.pieces if p.part.clip is not None]
        if copy_video and delivery.music is None and delivery.loudness_lufs is None:
            assemble(clips, out, workdir=tmp, declick_s=DECLICK_S)  # the fast path
        else:
            sound, normalised = _soundtrack(tl, delivery, cues, tmp)
            if copy_video:
                assemble(clips, out, workdir=tmp, audio=sound)
            else:
                with atomic_output(out) as part:
                    _render_picture(tl, delivery, size, tmp, sound, cues, part)
    info = probe(out)
    loudness = mix.measure(out) if info.has_audio else None
    return Rendered(
        duration_s=info.video_duration_s, width=info.width, height=info.height,
        loudness_lufs=loudness.integrated_lufs if loudness else None,
        true_peak_db=loudness.true_peak_dbtp if loudness else None,
        cues=tuple(cues), subtitles=subtitles, normalised=normalised)
