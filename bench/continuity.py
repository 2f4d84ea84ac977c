"""Continuity scores and their cost (media/continuity.py): SSIM of a seed frame with frames
that are the same, re-encoded, reframed and unrelated, and the time per pair.

    .venv/bin/python bench/continuity.py
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from PIL import Image

from kling_compose.media.animatic import AnimaticSpec, render_animatic
from kling_compose.media.continuity import THRESHOLD, ssim
from kling_compose.media.frames import frame_image


def textured(width: int = 640, height: int = 360, seed: int = 7, block: int = 16) -> Image.Image:
    """A still with structure at several scales (blocks and a gradient)."""
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height))
    pixels = image.load()
    for x in range(width):
        for y in range(height):
            shade = (x // block * 37 + y // block * 91 + rng.randrange(24)) % 256
            pixels[x, y] = (shade, (x * 255) // width, (y * 255) // height)
    return image


def main() -> None:
    seed = textured()
    with tempfile.TemporaryDirectory() as tmp:
        still = Path(tmp) / "seed.png"
        seed.save(still)
        clip = render_animatic(AnimaticSpec(duration_s=2, width=640, height=360,
                                            first_image=still, audio=False), Path(tmp) / "a.mp4")
        reencoded = frame_image(clip, "first")
        banded = render_animatic(AnimaticSpec(duration_s=2, width=640, height=360,
                                              first_image=still, audio=False, band=True,
                                              title="s2", caption="the next shot"),
                                 Path(tmp) / "b.mp4")
        with_band = frame_image(banded, "first")
    cases = {
        "identical": seed,
        "re-encoded (H.264 first frame)": reencoded,
        "re-encoded, preview caption band": with_band,
        "reframed (zoom 1.2)": seed.crop((53, 30, 587, 330)).resize(seed.size),
        "shifted 5%": seed.transform(seed.size, Image.AFFINE, (1, 0, 32, 0, 1, 0)),
        "relit (+40 brightness)": seed.point(lambda v: min(255, v + 40)),
        "unrelated (other still)": textured(seed=99, block=23).transpose(Image.FLIP_LEFT_RIGHT),
        "title card (flat dark)": Image.new("RGB", seed.size, (24, 26, 36)),
    }
    print(f"threshold {THRESHOLD}")
    for name, other in cases.items():
        print(f"{name:36s} {ssim(seed, other):.3f}")
    runs = 50
    start = time.perf_counter()
    for _ in range(runs):
        ssim(seed, reencoded)
    print(f"time per pair: {(time.perf_counter() - start) / runs * 1000:.1f} ms")


if __name__ == "__main__":
    main()
