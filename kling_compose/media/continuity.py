"""Continuity of a chain: does a chained shot start (or end) on the frame it was seeded from?

A generation seeded with the last frame of the shot before should open on that very frame; a
model that drifts (recomposes, relights, ignores the image) breaks the chain, and the audience
sees a jump cut. After a chained shot is generated, the engine compares the seed frame with
the matching frame of each take (the first frame for `first_frame`, the last for
`last_frame`) and records the score; a pick whose score is under THRESHOLD is flagged as a
broken chain in `status`, the run summary, `--json` and the report.

The score is SSIM (Wang et al. 2004, the structural similarity index) of the two frames in
grey, both scaled to SIZE px wide (the seed's aspect), over 8x8 windows with stride 4, in
pure Python (no numpy; 9-17 ms a pair here). Measured by `bench/continuity.py` on a textured
640x360 still: identical 1.0; its H.264 first frame 0.999; with the preview's caption band
over it 0.84; brightened by 40 levels 0.95 (SSIM forgives relighting); zoomed 1.2x 0.14;
shifted by 5 % about 0; another still 0.04; a flat title card 0.08. THRESHOLD 0.6 sits
between what a faithful first frame scores and what a recomposed one does. A chain of two flat
title cards (the preview without images) scores high whatever the text: it checks structure,
which such cards barely have.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

SIZE = 96  # px: the width both frames are compared at
THRESHOLD = 0.6  # a score under this is a broken chain
_WINDOW, _STRIDE = 8, 4
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2  # SSIM's stabilisers for 8-bit values


def ssim(a: Image.Image, b: Image.Image) -> float:
    """Mean SSIM of two images (any sizes: both are scaled to SIZE px wide, in grey)."""
    width = SIZE
    height = max(_WINDOW, round(SIZE * a.height / max(1, a.width)))
    x = a.convert("L").resize((width, height), Image.BILINEAR).tobytes()
    y = b.convert("L").resize((width, height), Image.BILINEAR).tobytes()
    total, count = 0.0, 0
    n = _WINDOW * _WINDOW
    for top in range(0, height - _WINDOW + 1, _STRIDE):
        for left in range(0, width - _WINDOW + 1, _STRIDE):
            sx = sy = sxx = syy = sxy = 0
            for row in range(top, top + _WINDOW):
                base = row * width + left
                for i in range(base, base + _WINDOW):
                    p, q = x[i], y[i]
                    sx += p
                    sy += q
                    sxx += p * p
                    syy += q * q
                    sxy += p * q
            mx, my = sx / n, sy / n
            vx, vy = sxx / n - mx * mx, syy / n - my * my
            cov = sxy / n - mx * my
            total += ((2 * mx * my + _C1) * (2 * cov + _C2)) / \
                ((mx * mx + my * my + _C1) * (vx + vy + _C2))
            count += 1
    return total / count if count else 1.0


def score_takes(seed_png: Path, clips: list[Path], which: str) -> list[float]:
    """The SSIM of the seed frame with the `which` ("first" | "last") frame of each clip."""
    from .frames import frame_image

    with Image.open(seed_png) as seed:
        seed.load()
        return [round(ssim(seed, frame_image(clip, which)), 4) for clip in clips]


def for_pick(continuity: dict | None, pick: int) -> dict | None:
    """A record's continuity (`result["continuity"]`) for the take `pick` now uses:
    {"score", "threshold", "broken", "from", "frame"}, or None when the shot is not chained."""
    if not isinstance(continuity, dict):
        return None
    scores = continuity.get("scores") or []
    if not 1 <= pick <= len(scores):
        return None
    score = scores[pick - 1]
    threshold = continuity.get("threshold", THRESHOLD)
    return {"score": score, "threshold": threshold, "broken": score < threshold,
            "from": continuity.get("from"), "frame": continuity.get("frame")}
