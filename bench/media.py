"""Media benchmarks: last-frame extraction, preview rendering, stream-copy assembly.

Run: .venv/bin/python bench/media.py [--quick]   (--quick: fewer repetitions)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
from PIL import Image

from kling_compose.media.animatic import AnimaticSpec, preview_size, render_animatic
from kling_compose.media.assemble import assemble
from kling_compose.media.ffmpeg import run_ffmpeg
from kling_compose.media.frames import extract_frame


def timed(fn, *args, **kw) -> float:
    """Wall time of one call, in seconds."""
    t = time.perf_counter()
    fn(*args, **kw)
    return time.perf_counter() - t


def median_time(reps: int, fn, *args, **kw) -> float:
    """Median wall time of `reps` calls."""
    return statistics.median(timed(fn, *args, **kw) for _ in range(reps))


def make_hd_clip(path: Path) -> Path:
    """10 s 1080p24 H.264 (libx264 medium, GOP 48, B-frames) + AAC, like a hosted output."""
    run_ffmpeg([
        "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=24:duration=10",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=10",
        "-c:v", "libx264", "-preset", "medium", "-crf", "23", "-g", "48", "-keyint_min", "48",
        "-sc_threshold", "0", "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(path),
    ])  # fmt: skip
    return path


def full_decode_last(path: Path, png: Path | None) -> None:
    """The naive way: decode every frame (threads on), keep the last, save it as PNG."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        last = None
        for last in c.decode(s):
            pass
        if png is not None:
            last.to_image().save(png, compress_level=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    reps = 3 if ap.parse_args().quick else 5
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        hd = make_hd_clip(d / "hd.mp4")
        full = median_time(reps, full_decode_last, hd, d / "full.png")
        decode_only = median_time(reps, full_decode_last, hd, None)
        last = median_time(reps, extract_frame, hd, "last", d / "last.png")
        assert Image.open(d / "full.png").tobytes() == Image.open(d / "last.png").tobytes()
        rows += [
            ("full decode + PNG (10 s 1080p, GOP 2 s)", f"{full:.3f} s", "1.0x"),
            ("full decode only (PyAV, no PNG)", f"{decode_only:.3f} s", ""),
            ("extract_frame(last), PNG included", f"{last:.3f} s",
             f"{full / last:.1f}x faster ({decode_only / last:.1f}x vs decode only), exact"),
        ]
        w, h = preview_size(1920, 1080)
        still = d / "still.png"
        Image.open(d / "last.png").save(still)
        for label, kw in (("title card", {}), ("first image", {"first_image": still}),
                          ("first -> last image", {"first_image": still, "last_image": still})):
            spec = AnimaticSpec(10.0, w, h, 24, title="s010", caption="a prompt " * 20, **kw)
            t = median_time(reps, render_animatic, spec, d / "anim.mp4")
            rows.append((f"render_animatic 10 s {w}x{h}, {label}", f"{t:.3f} s", f"{10 / t:.1f}x real time"))
        clips = [render_animatic(AnimaticSpec(10.0, w, h, 24, title=f"s{i}"), d / f"c{i}.mp4")
                 for i in range(10)]  # fmt: skip
        t = median_time(reps, assemble, clips, d / "film.mp4", workdir=d / "work")
        rows.append(("assemble 10 previews (100 s), copy video", f"{t:.3f} s", f"{100 / t:.0f}x real time"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(wd) for c, wd in zip(r, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
