"""Animatic clips: the free local `preview` provider's stand-in for a generated shot.

One ffmpeg call per clip: each still is decoded once, scaled to cover the frame, then
`zoompan` makes every frame from it (media.md: `-loop 1` re-decodes the PNG per frame, 4x
slower). The last image fades in over the whole clip through an alpha `fade` + `overlay`
(measured ~1.4x faster than `xfade` here). Encoder settings are fixed, so every clip of the
same size and fps has the same codec parameters and clips join by stream copy.

With dialogue (`lines`), each line is "spoken" for a part of its span (the span's lines
spread by words, `SPOKEN_GAP_S` apart): its caption is drawn over the picture then, and the
sound is a tone of its speaker's pitch then, over near-silence otherwise, so the film's cue
alignment (subtitles.speech_spans), subtitles and music ducking can be rehearsed for free.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .ffmpeg import atomic_output, run_ffmpeg
from .subtitles import spread

AUDIO_RATE = 48_000
ZOOM_END = 1.08
TAKE_ZOOM_END = 1.2  # takes after the first move further, so their drift is plain to see
TAKE_DRIFT = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))  # take 1 centre, then left, right...
# Audio fade length (s): long enough to avoid a click at every cut, short enough not to hear.
_AUDIO_FADE_S = 0.05
_TONE_GAIN = 0.25  # on top of the sine source's own 1/8 amplitude: about -30 dBFS
# dialogue: one pitch per speaker index (cycled), a 4 Hz "syllable" swell, peak 0.1 (-20
# dBFS, above the -50 dBFS gate and 12 dB over the floor that speech_spans needs), 20 ms
# ramps; under it, noise at about -71 dBFS RMS ("near-silence", the quiet a VAD measures)
SPEAKER_HZ = (220.0, 330.0, 495.0, 660.0, 880.0, 277.0, 415.0, 587.0)
SPOKEN_GAP_S = 0.3  # between lines sharing a span: over speech_spans' 0.25 s bridge
_VOICE_PEAK = 0.1
_VOICE_RAMP_S = 0.02
_NEAR_SILENCE = 0.0005
_CAPTION_INK = ((255, 255, 255), (255, 220, 120), (150, 220, 255), (190, 255, 170),
                (255, 170, 210), (220, 190, 255))


@dataclass(frozen=True, slots=True)
class AnimaticSpec:
    """What one preview clip shows: stills (or a title card), a slow zoom, a tone or silence."""

    duration_s: float
    width: int
    height: int
    fps: int = 24
    first_image: Path | None = None
    last_image: Path | None = None
    title: str = ""
    caption: str = ""
    audio: bool = True
    tone_hz: float = 440.0
    # the shot's id and prompt over the bottom of a clip that starts from an image (the
    # preview's clips; the simulator's stand for a provider's, which show the image alone)
    band: bool = False
    # one of several takes: the take number is on screen and the camera moves its own way
    # (take 1 zooms to the centre, the others drift left, right, up, down), so a reviewer
    # tells them apart; every take's first frame is still the first image itself
    take: int = 1
    takes: int = 1
    # dialogue: (speaker index, text, start_s, end_s) within the clip; see spoken()
    lines: tuple[tuple[int, str, float, float], ...] = ()

    @property
    def label(self) -> str:
        return f"{self.title} - take {self.take}/{self.takes}" if self.takes > 1 else self.title

    @property
    def frame_count(self) -> int:
        """Frames in the clip: round(duration * fps), at least one."""
        return max(1, round(self.duration_s * self.fps))


def _even(x: float) -> int:
    """x rounded to the nearest even integer, at least 2."""
    return max(2, 2 * round(x / 2))


def preview_size(width: int, height: int, short_side: int = 360) -> tuple[int, int]:
    """(w, h) with the aspect of width x height, the short side `short_side`, both even."""
    if width <= 0 or height <= 0:
        raise ValueError(f"bad frame size {width}x{height}")
    scale = short_side / min(width, height)
    return _even(width * scale), _even(height * scale)


def render_animatic(spec: AnimaticSpec, out: Path) -> Path:
    """Write the animatic of `spec` to `out` (mp4, H.264 + AAC) atomically; returns `out`."""
    out = Path(out)
    if spec.width % 2 or spec.height % 2:
        raise ValueError(f"animatic size must be even, got {spec.width}x{spec.height}")
    with tempfile.TemporaryDirectory(prefix=".animatic-", dir=out.parent) as tmp:
        base = spec.first_image
        if base is None:
            base = Path(tmp) / "card.png"
            title_card(spec.width, spec.height, spec.label, spec.caption).save(base)
        band = None
        if spec.band and (spec.first_image is not None or spec.last_image is not None):
            band = Path(tmp) / "band.png"
            caption_band(spec.width, spec.height, spec.label, spec.caption).save(band)
        captions = []
        for k, (speaker, text, start, end) in enumerate(spoken(spec)):
            png = Path(tmp) / f"line-{k:03d}.png"
            line_caption(spec.width, spec.height, text, speaker).save(png)
            captions.append((png, start, end))
        with atomic_output(out) as part:
            run_ffmpeg(_ffmpeg_args(spec, Path(base), part, band, captions))
    return out


SPOKEN_WORDS_PER_S = 2.5  # conversational speech, 150 words a minute
MIN_LINE_S = 0.8  # a one-word line is still heard (and read) as a line
SPOKEN_LEAD_S = 0.3  # a beat between the cut and the first line


def spoken(spec: AnimaticSpec) -> list[tuple[int, str, float, float]]:
    """When each line is "spoken" in the clip: the lines sharing a span (consecutive, same
    start and end), inside the span less half a gap at each end (a tenth of it at most),
    SPOKEN_GAP_S apart: each for its words at SPOKEN_WORDS_PER_S from a beat after the span's
    start where they fit, else spread over the span by words (subtitles.spread); spans
    clipped to the clip; (speaker, text, start_s, end_s) in order."""
    length = spec.frame_count / spec.fps
    groups: list[tuple[float, float, list[tuple[int, str]]]] = []
    for speaker, text, start, end in spec.lines:
        if groups and (groups[-1][0], groups[-1][1]) == (start, end):
            groups[-1][2].append((speaker, text))
        else:
            groups.append((start, end, [(speaker, text)]))
    out = []
    for start, end, group in groups:
        a, b = max(0.0, start), min(length, end)
        if b <= a:
            continue
        # a breath at both ends, so the lines of two adjacent spans are heard apart too
        inset = min(SPOKEN_GAP_S / 2, (b - a) / 10)
        a, b = a + inset, b - inset
        # at a natural pace where the span has room (a real clip's speech does not fill its
        # shot, and its subtitles should not either), else spread over the whole span
        natural = [max(MIN_LINE_S, len(text.split()) / SPOKEN_WORDS_PER_S)
                   for _, text in group]
        room = (b - a) - sum(natural) - SPOKEN_GAP_S * (len(group) - 1)
        if room >= 0:
            t = a + min(SPOKEN_LEAD_S, room / 2)
            for (speaker, text), seconds in zip(group, natural):
                out.append((speaker, text, t, t + seconds))
                t += seconds + SPOKEN_GAP_S
            continue
        cues = spread([(text, str(speaker)) for speaker, text in group], a, b,
                      gap_s=SPOKEN_GAP_S)
        out += [(int(c.speaker or 0), c.text, c.start_s, c.end_s) for c in cues]
    return out


def _ffmpeg_args(spec: AnimaticSpec, base: Path, out: Path, band: Path | None = None,
                 captions: list[tuple[Path, float, float]] | None = None) -> list[str]:
    """The full ffmpeg argument list rendering `spec` from the still `base` to `out`; `band`
    (the shot's own id and prompt) is laid over the bottom of every frame, each caption
    (picture, start, end) over the top while its line is spoken."""
    n, fps = spec.frame_count, spec.fps
    inputs = ["-i", _file_url(base)]
    graph = [f"[0:v]{_still_chain(spec, zoom_in=True)}[base]"]
    video = "[base]"
    if spec.last_image is not None:
        inputs += ["-i", _file_url(spec.last_image)]
        # Alpha rises to exactly 1 on the last frame, so it shows the last image unblended.
        fade_d = max(n - 1, 1) / fps
        graph.append(
            f"[1:v]{_still_chain(spec, zoom_in=False)},format=yuva420p,"
            f"fade=t=in:st=0:d={fade_d:.6f}:alpha=1[top]"
        )
        graph.append("[base][top]overlay=format=yuv420[mix]")
        video = "[mix]"
    if band is not None:
        band_idx = len(inputs) // 2
        inputs += ["-i", _file_url(band)]
        graph.append(f"{video}[{band_idx}:v]overlay=0:main_h-overlay_h:format=yuv420[banded]")
        video = "[banded]"
    # at the top of the frame: the bottom is the band's and, in a film, the subtitles' (an
    # output's burned-in cues would sit on a caption at the bottom)
    top = max(2, spec.height // 24)
    for k, (png, start, end) in enumerate(captions or []):
        idx = len(inputs) // 2
        inputs += ["-i", _file_url(png)]
        graph.append(f"{video}[{idx}:v]overlay=0:{top}:format=yuv420:"
                     f"enable='between(t,{start:.4f},{end:.4f})'[said{k}]")
        video = f"[said{k}]"
    audio_idx = len(inputs) // 2
    inputs += ["-f", "lavfi", "-i", _audio_source(spec)]
    graph.append(f"[{audio_idx}:a]{_audio_chain(spec)}[aud]")
    return [
        *inputs,
        "-filter_complex", ";".join(graph),
        "-map", video, "-map", "[aud]",
        "-frames:v", str(n),
        *video_encoder_args(spec.width, spec.height, fps),
        "-c:a", "aac", "-b:a", "96k", "-ar", str(AUDIO_RATE), "-ac", "2",
        "-movflags", "+faststart",
        str(out),
    ]  # fmt: skip


def video_encoder_args(width: int, height: int, fps: int) -> list[str]:
    """Fixed libx264 settings: same inputs -> same SPS/PPS, so clips concat by stream copy."""
    level = "4.1" if width * height <= 1920 * 1088 else "5.1"
    gop = str(2 * fps)  # fixed 2 s GOP, no scene-cut keyframes
    return [
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "23",
        "-profile:v", "baseline", "-level:v", level,
        "-g", gop, "-keyint_min", gop, "-sc_threshold", "0", "-bf", "0",
        "-pix_fmt", "yuv420p", "-r", str(fps),
    ]  # fmt: skip


def _file_url(path: Path) -> str:
    """An ffmpeg input for a local file that no ':' or leading '-' can misread."""
    return "file:" + str(Path(path).resolve())


def _still_chain(spec: AnimaticSpec, *, zoom_in: bool) -> str:
    """Filters turning one decoded still into frame_count zoomed frames of the clip's size.

    The zoom is exactly 1.0 on the first frame (zoom_in) or on the last frame (zoom out),
    so the first/last frame is the still itself, scaled to cover and centre-cropped.
    """
    w, h, n = spec.width, spec.height, spec.frame_count
    end = ZOOM_END if spec.take == 1 else TAKE_ZOOM_END
    step = f"{end - 1:.4f}*on/{max(n - 1, 1)}"
    zoom = f"1+{step}" if zoom_in else f"{end:.4f}-{step}"
    dx, dy = TAKE_DRIFT[(spec.take - 1) % len(TAKE_DRIFT)]
    # the crop's corner moves from the centre (dx = 0) to an edge (dx = -1 or 1); at zoom 1
    # it is 0 whatever the drift, so the first (or last) frame is the still itself
    x, y = f"(iw/2-iw/zoom/2)*{1 + dx}", f"(ih/2-ih/zoom/2)*{1 + dy}"
    return (
        f"scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h},setsar=1,"
        f"format=yuv420p,"
        f"zoompan=z='{zoom}':x='{x}':y='{y}':d={n}:s={w}x{h}:fps={spec.fps}"
    )


def _audio_source(spec: AnimaticSpec) -> str:
    """The lavfi audio source: a sine tone, the lines' voices over near-silence, or digital
    silence (still an AAC track)."""
    said = spoken(spec) if spec.audio else []
    if said:
        r = _VOICE_RAMP_S
        voices = "+".join(
            f"clip(min(t-{a:.4f},{b:.4f}-t)/{r},0,1)"
            f"*sin(2*PI*{SPEAKER_HZ[speaker % len(SPEAKER_HZ)]:g}*t)"
            for speaker, _text, a, b in said)
        expr = (f"{_VOICE_PEAK}*(0.7+0.3*sin(2*PI*4*t))*({voices})"
                f"+{_NEAR_SILENCE}*(random(0)*2-1)")
        return f"aevalsrc='{expr}':s={AUDIO_RATE}:c=mono"
    if spec.audio:
        return f"sine=frequency={spec.tone_hz:g}:sample_rate={AUDIO_RATE}"
    return f"anullsrc=r={AUDIO_RATE}:cl=stereo"


def _audio_chain(spec: AnimaticSpec) -> str:
    """Trim to exactly the video's length in samples, make stereo, fade in and out."""
    samples = round(spec.frame_count * AUDIO_RATE / spec.fps)
    chain = f"atrim=end_sample={samples}"
    if spec.audio:
        total = samples / AUDIO_RATE
        fade = min(_AUDIO_FADE_S, total / 4)
        gain = 1 if spoken(spec) else _TONE_GAIN
        chain += (
            f",pan=stereo|c0={gain}*c0|c1={gain}*c0"
            f",afade=t=in:d={fade:.4f},afade=t=out:st={total - fade:.6f}:d={fade:.4f}"
        )
    return chain


def title_card(width: int, height: int, title: str, caption: str) -> Image.Image:
    """An RGB card: the shot id large, the caption wrapped below and cut with '...'."""
    img = Image.new("RGB", (width, height), (24, 28, 38))
    draw = ImageDraw.Draw(img)
    margin = max(8, width // 16)
    title_font = ImageFont.load_default(size=max(10, height // 8))
    body_font = ImageFont.load_default(size=max(8, height // 20))
    y = height // 6
    draw.text((margin, y), title or "untitled", font=title_font, fill=(240, 240, 240))
    y += int(height // 8 * 1.6)
    line_h = int(height // 20 * 1.35)
    max_lines = max(1, (height - y - margin) // line_h)
    for line in _wrap(caption, body_font, width - 2 * margin, max_lines):
        draw.text((margin, y), line, font=body_font, fill=(190, 196, 210))
        y += line_h
    return img


def caption_band(width: int, height: int, title: str, caption: str) -> Image.Image:
    """An opaque strip for the bottom of a shot that starts from an image: its own id and
    prompt. Opaque and always the same size, so in a chain, where a shot starts from the last
    frame of the one before, it covers that shot's band (the slow zoom only pushes the old
    band further down, under the new one)."""
    band_h = max(12, height // 6)
    img = Image.new("RGB", (width, band_h), (16, 18, 26))
    draw = ImageDraw.Draw(img)
    margin = max(4, width // 40)
    size = max(8, band_h // 3)
    font = ImageFont.load_default(size=size)
    lines = _wrap(f"{title or 'untitled'}: {caption}" if caption else title or "untitled",
                  font, width - 2 * margin, 2)
    y = max(1, (band_h - len(lines) * int(size * 1.25)) // 2)
    for line in lines:
        draw.text((margin, y), line, font=font, fill=(235, 235, 240))
        y += int(size * 1.25)
    return img


def line_caption(width: int, height: int, text: str, speaker: int = 0) -> Image.Image:
    """A subtitle for a spoken line: the text (at most two lines, cut with '...') centred on
    a translucent dark strip, in the speaker's colour; RGBA, laid over the picture."""
    size = max(8, height // 16)
    font = ImageFont.load_default(size=size)
    margin = max(4, width // 24)
    lines = _wrap(text, font, width - 2 * margin, 2) or [""]
    line_h = int(size * 1.3)
    img = Image.new("RGBA", (width, line_h * len(lines) + size // 2), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    ink = _CAPTION_INK[speaker % len(_CAPTION_INK)]
    y = size // 4
    for line in lines:
        box_w = int(font.getlength(line)) + size
        draw.rectangle(((width - box_w) // 2, y - size // 8, (width + box_w) // 2,
                        y + line_h - size // 8), fill=(0, 0, 0, 170))
        draw.text((width // 2, y + line_h // 2), line, font=font, fill=(*ink, 255), anchor="mm")
        y += line_h
    return img


def _wrap(text: str, font, max_px: int, max_lines: int) -> list[str]:
    """`text` wrapped to lines at most max_px wide; past max_lines it ends with '...'."""
    words = " ".join(text.split()).split(" ") if text.strip() else []
    lines: list[str] = []
    for word in words:
        if lines and font.getlength(f"{lines[-1]} {word}") <= max_px:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(_fit(word, font, max_px))
        if len(lines) > max_lines:
            break
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = _fit(lines[-1] + "...", font, max_px, ellipsis=True)
    return lines


def _fit(text: str, font, max_px: int, ellipsis: bool = False) -> str:
    """`text` shortened (keeping a trailing '...' if ellipsis) until it fits max_px."""
    body = text[:-3] if ellipsis else text
    tail = "..." if ellipsis else ""
    while body and font.getlength(body + tail) > max_px:
        body = body[:-1]
    return body.rstrip() + tail

