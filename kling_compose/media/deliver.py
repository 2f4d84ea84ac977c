"""Deliverables of a finished film: re-cut to another aspect ratio (crop around a focus, per
shot if asked, or letterbox) and encoded for the web (H.264 + AAC, faststart) or for editors
(ProRes 422 HQ + PCM in .mov).

One ffmpeg call each. Figures and choices measured: docs/media.md "deliver.py".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from .ffmpeg import MediaError, atomic_output, probe, run_ffmpeg

Preset = Literal["web", "master"]
Mode = Literal["crop", "pad"]
Focus = tuple[float, float]
# (start_s, end_s, focus) of each shot of a film, in film time
FocusSpan = tuple[float, float, Focus]

_PRESETS: dict[str, tuple[tuple[str, ...], list[str], list[str]]] = {
    # suffixes, video args, audio args
    "web": ((".mp4", ".m4v"),
            ["-c:v", "libx264", "-preset", "medium", "-crf", "20", "-pix_fmt", "yuv420p",
             "-profile:v", "high"],
            ["-c:a", "aac", "-b:a", "192k", "-ar", "48000"]),
    "master": ((".mov",),
               ["-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le",
                "-vendor", "apl0"],
               ["-c:a", "pcm_s24le", "-ar", "48000"]),
}
# what reframe writes when no preset is asked: a near-lossless intermediate, audio copied
_INTERMEDIATE = ["-c:v", "libx264", "-preset", "fast", "-crf", "16", "-pix_fmt", "yuv420p"]


def _file_url(path: Path | str) -> str:
    """An ffmpeg input for a local file that no ':' or leading '-' can misread."""
    return "file:" + str(Path(path).resolve())


def _even(value: float) -> int:
    """`value` rounded to the nearest even integer, at least 2."""
    return max(2, 2 * round(value / 2))


def _check_preset(preset: str, dst: Path) -> tuple[list[str], list[str]]:
    """The (video, audio) encoder args of `preset`; MediaError for an unknown preset or a
    destination whose suffix is not that preset's container."""
    if preset not in _PRESETS:
        raise MediaError(f"unknown preset {preset!r} (web or master)")
    suffixes, video, audio = _PRESETS[preset]
    if dst.suffix.lower() not in suffixes:
        raise MediaError(f"preset {preset} writes {' or '.join(suffixes)}, not {dst.name}")
    return video, audio


def _mux_args(preset: str) -> list[str]:
    """web: the moov atom before the media data, so a browser plays before the download ends."""
    return ["-movflags", "+faststart"] if preset == "web" else []


def crop_window(width: int, height: int, aspect: tuple[int, int]) -> tuple[int, int]:
    """The largest (even) window of `aspect` inside a width x height frame."""
    aw, ah = aspect
    if aw <= 0 or ah <= 0:
        raise MediaError(f"aspect {aw}:{ah} must be positive")
    if width * ah > height * aw:  # the frame is wider than the target: full height
        h = height - height % 2
        w = min(_even(h * aw / ah), width - width % 2)
    else:
        w = width - width % 2
        h = min(_even(w * ah / aw), height - height % 2)
    return w, h


def _offset(focus: float, size: int, window: int) -> int:
    """The window's left (or top) edge centred on `focus` (a fraction), clamped in the frame
    and even (so chroma planes stay aligned)."""
    edge = focus * size - window / 2
    edge = min(max(edge, 0.0), float(size - window))
    return min(max(0, 2 * int(edge // 2)), size - window)


def _check_focus(focus: Focus) -> None:
    if len(focus) != 2 or not all(0.0 <= f <= 1.0 for f in focus):
        raise MediaError(f"focus {focus} must be two fractions in [0, 1]")


def _offset_expr(values: list[tuple[float, float, int]], default: int) -> str:
    """A crop x/y expression of t: each span's offset inside [start, end), else `default`.
    Commas are escaped for the filtergraph."""
    expr = str(default)
    for start, end, value in reversed(values):
        expr = f"if(gte(t\\,{start:.6f})*lt(t\\,{end:.6f})\\,{value}\\,{expr})"
    return expr


def reframe_filter(
    width: int,
    height: int,
    *,
    aspect: tuple[int, int],
    out_height: int | None = None,
    mode: Mode = "crop",
    focus: Focus = (0.5, 0.5),
    spans: Sequence[FocusSpan] = (),
) -> tuple[str, tuple[int, int]]:
    """The -vf chain that reframes a width x height picture, and the output size.

    crop: the largest window of `aspect` that fits, centred on `focus` (or, inside each of
    `spans`, on that span's focus), clamped in the frame, scaled to the output size.
    pad: scaled to fit the output size and letterboxed / pillarboxed with black.
    The output height defaults to the crop window's (crop) or to the smallest frame of
    `aspect` holding the picture unscaled (pad); both dimensions are even."""
    aw, ah = aspect
    if aw <= 0 or ah <= 0:
        raise MediaError(f"aspect {aw}:{ah} must be positive")
    _check_focus(focus)
    if mode == "crop":
        cw, ch = crop_window(width, height, aspect)
        oh = _even(out_height if out_height else ch)
        ow = _even(oh * aw / ah)
        x0, y0 = _offset(focus[0], width, cw), _offset(focus[1], height, ch)
        xs, ys = [], []
        for start, end, span_focus in sorted(spans, key=lambda s: s[0]):
            _check_focus(span_focus)
            if end <= start:
                raise MediaError(f"focus span {start:g}-{end:g} s is empty")
            xs.append((start, end, _offset(span_focus[0], width, cw)))
            ys.append((start, end, _offset(span_focus[1], height, ch)))
        x = _offset_expr(xs, x0) if xs else str(x0)
        y = _offset_expr(ys, y0) if ys else str(y0)
        chain = f"crop=w={cw}:h={ch}:x={x}:y={y}:exact=1,scale={ow}:{oh}:flags=lanczos,setsar=1"
        return chain, (ow, oh)
    if mode == "pad":
        if out_height:
            oh = _even(out_height)
        elif width * ah > height * aw:  # wider than the target: bars above and below
            oh = _even(width * ah / aw)
        else:
            oh = _even(height)
        ow = _even(oh * aw / ah)
        chain = (f"scale={ow}:{oh}:force_original_aspect_ratio=decrease:force_divisible_by=2"
                 f":flags=lanczos,pad={ow}:{oh}:(ow-iw)/2:(oh-ih)/2:black,setsar=1")
        return chain, (ow, oh)
    raise MediaError(f"unknown reframe mode {mode!r} (crop or pad)")


def reframe(
    src: Path | str,
    dst: Path | str,
    *,
    aspect: tuple[int, int],
    height: int | None = None,
    mode: Mode = "crop",
    focus: Focus = (0.5, 0.5),
    spans: Sequence[FocusSpan] = (),
    preset: Preset | None = None,
) -> tuple[int, int]:
    """Re-cut `src` to `aspect` (see reframe_filter) into `dst`; returns the output size.

    Every frame is kept (same count and duration). Without `preset` the video is a
    near-lossless H.264 intermediate and the audio is copied; with one, it is encoded once,
    straight to that deliverable (see `encode`)."""
    src, dst = Path(src), Path(dst)
    info = probe(src)
    chain, size = reframe_filter(info.width, info.height, aspect=aspect, out_height=height,
                                 mode=mode, focus=focus, spans=spans)
    if preset is None:
        video, audio, mux = _INTERMEDIATE, ["-c:a", "copy"], ["-movflags", "+faststart"]
    else:
        video, audio = _check_preset(preset, dst)
        mux = _mux_args(preset)
    args = ["-i", _file_url(src), "-map", "0:v:0", "-map", "0:a:0?", "-vf", chain,
            "-fps_mode", "passthrough", *video, *audio, *mux]
    with atomic_output(dst) as tmp:
        run_ffmpeg([*args, str(tmp)])
    return size


def encode(src: Path | str, dst: Path | str, preset: Preset = "web") -> None:
    """`src` encoded as a deliverable: web = H.264 High (yuv420p, CRF 20) + AAC 192k in .mp4
    with the moov atom first (faststart); master = ProRes 422 HQ (prores_ks profile 3,
    yuv422p10le) + PCM s24le in .mov. Frames and duration unchanged."""
    src, dst = Path(src), Path(dst)
    video, audio = _check_preset(preset, dst)
    args = ["-i", _file_url(src), "-map", "0:v:0", "-map", "0:a:0?",
            "-fps_mode", "passthrough", *video, *audio, *_mux_args(preset)]
    with atomic_output(dst) as tmp:
        run_ffmpeg([*args, str(tmp)])
