"""Helpers for the media tests: fixture clips and pictures, reference decodes."""

from __future__ import annotations

from pathlib import Path

import av
from PIL import Image, ImageDraw

from kling_compose.media.ffmpeg import run_ffmpeg


def make_clip(
    path: Path,
    *,
    size: str = "320x240",
    seconds: float = 2.0,
    fps: int = 24,
    gop: int = 48,
    bframes: int = 3,
    audio_s: float | None = None,
    audio: bool = True,
    rate: int = 48_000,
    preset: str = "veryfast",
) -> Path:
    """Write an H.264 (+AAC) test clip with moving content; audio_s defaults to `seconds`."""
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}:duration={seconds}"]
    if audio:
        dur = seconds if audio_s is None else audio_s
        args += ["-f", "lavfi", "-i", f"sine=frequency=330:sample_rate={rate}:duration={dur}"]
    args += ["-c:v", "libx264", "-preset", preset, "-g", str(gop), "-keyint_min", str(gop),
             "-sc_threshold", "0", "-bf", str(bframes), "-pix_fmt", "yuv420p"]  # fmt: skip
    if audio:
        args += ["-c:a", "aac", "-ac", "2"]
    run_ffmpeg([*args, "-movflags", "+faststart", str(path)])
    return path


def decode_all_rgb(path: Path) -> list[bytes]:
    """Every video frame of `path` in display order as RGB bytes (a plain full decode)."""
    with av.open(str(path)) as c:
        return [f.to_image().tobytes() for f in c.decode(c.streams.video[0])]


def make_image(path: Path, size: tuple[int, int], seed: int) -> Path:
    """A smooth, distinctive RGB test picture (gradients and shapes) saved as PNG."""
    w, h = size
    img = Image.new("RGB", size)
    px = img.load()
    for y in range(h):
        for x in range(w):
            px[x, y] = ((x * 255 // w + seed * 80) % 256, (y * 255 // h) % 256, (seed * 97) % 256)
    draw = ImageDraw.Draw(img)
    draw.ellipse((w // 4, h // 4, w * 3 // 4, h * 3 // 4), fill=((seed * 53) % 256, 40, 200))
    img.save(path)
    return path


def audio_peak(path: Path) -> float:
    """The largest absolute sample value of the first audio stream, decoded as float."""
    from array import array

    peak = 0.0
    with av.open(str(path)) as c:
        for frame in c.decode(c.streams.audio[0]):
            assert frame.format.name == "fltp"  # what ffmpeg's AAC decoder outputs
            for plane in frame.planes:
                values = array("f", bytes(plane))[: frame.samples]
                peak = max(peak, max((abs(v) for v in values), default=0.0))
    return peak


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two RGB pictures of the same size, 0..255."""
    from PIL import ImageChops, ImageStat

    assert a.size == b.size
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


def cover(img_path: Path, size: tuple[int, int]) -> Image.Image:
    """The picture scaled to cover `size` and centre-cropped (what an animatic frame shows)."""
    from PIL import ImageOps

    with Image.open(img_path) as im:
        return ImageOps.fit(im.convert("RGB"), size, method=Image.Resampling.BICUBIC)


def decoded_frame(path: Path, index: int) -> Image.Image:
    """Frame `index` (display order, negative counts from the end) of a full decode."""
    with av.open(str(path)) as c:
        frames = [f.to_image() for f in c.decode(c.streams.video[0])]
    return frames[index]
