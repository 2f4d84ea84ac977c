"""The finished film (issue 24): cut.render on a 50-clip film, timed per deliverable.

Run: .venv/bin/python bench/mix_50.py [--runs N] [--size WxH] [--only NAME ...] [--chunk-parts N]

The film: 50 preview animatics of 5 s (640x360, 24 fps, the preview provider's clips: a slow
zoom on a still, its caption band), dialogue on every other clip (two speakers, rendered as
speaker tones and captions), a 60 s music bed looped under it. The clips and the music are
made once into bench/out/mix_50/ and reused. Deliverables timed (median of --runs):

- plain:  the clips joined by cuts, nothing else (assemble's stream copy + declick)
- mix:    + music bed ducked under the cues, loudness -16 LUFS / -1 dBTP, SRT + WebVTT
          (the picture is still stream-copied; the soundtrack is rebuilt)
- crop:   mix + a 9:16 crop around each shot's focus, web preset (the picture re-encoded)
- edit:   mix + trims (0.5 s off each end), a title card, dips and crossfades, burn-in

Each line gives the wall time, x real time, the ffmpeg passes (count and their summed time)
and the loudness measured on the result.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kling_compose.media.animatic import AnimaticSpec, render_animatic
from kling_compose.media import cut
from kling_compose.media.cut import Delivery, Part, Said, render
from kling_compose.media.ffmpeg import ffmpeg_exe, run_ffmpeg

OUT = Path(__file__).resolve().parent / "out" / "mix_50"
CLIPS, SECONDS = 50, 5.0
WORDS = ["the", "harbour", "lights", "are", "out", "again", "tonight", "and", "nobody", "knows"]


def make_media(size: tuple[int, int]) -> tuple[list[Path], list[tuple[Said, ...]], Path]:
    """The 50 clips (made once), their dialogue, and the music."""
    OUT.mkdir(parents=True, exist_ok=True)
    clips, said = [], []
    w, h = size
    for i in range(CLIPS):
        lines: tuple[Said, ...] = ()
        if i % 2 == 0:
            a = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(6))
            b = " ".join(WORDS[(i * 3 + k) % len(WORDS)] for k in range(3))
            lines = (Said("ann", a.capitalize(), 0.5, 4.5), Said("bob", b.capitalize(), 0.5, 4.5))
        path = OUT / f"clip-{w}x{h}-{i:02d}.mp4"
        if not path.exists():
            render_animatic(AnimaticSpec(
                SECONDS, w, h, 24, title=f"s{i:03d}", caption=f"shot {i} of the bench film",
                lines=tuple((0 if s.speaker == "ann" else 1, s.text, s.start_s, s.end_s)
                            for s in lines)), path)
        clips.append(path)
        said.append(lines)
    music = OUT / "music.wav"
    if not music.exists():
        tune = ("aevalsrc='0.3*sin(2*PI*220*t)*(0.6+0.4*sin(2*PI*0.5*t))"
                "+0.2*sin(2*PI*330*t)':s=48000:d=60:c=stereo")
        run_ffmpeg(["-f", "lavfi", "-i", tune, "-c:a", "pcm_s16le", str(music)])
    return clips, said, music


def deliverables(clips, said, music) -> dict[str, tuple[list[Part], Delivery]]:
    whole = [Part(c, lines=s, focus=(0.3 if i % 3 == 0 else 0.6, 0.5))
             for i, (c, s) in enumerate(zip(clips, said))]
    mixed = Delivery(music=music, loudness_lufs=-16.0, subtitles=("srt", "vtt"))
    edit: list[Part] = [Part(title="The harbour", subtitle="a bench film", duration_s=3.0)]
    for i, (c, s) in enumerate(zip(clips, said)):
        kind = ("cut", "dip", "crossfade")[i % 3] if i else "dip"
        edit.append(Part(c, start_s=0.5, end_s=SECONDS - 0.5, lines=s, transition=kind,
                         transition_s=0.5 if kind != "cut" else 0.0))
    return {
        "plain": ([Part(c) for c in clips], Delivery()),
        "mix": (whole, mixed),
        "crop": (whole, Delivery(music=music, loudness_lufs=-16.0, subtitles=("srt", "vtt"),
                                 aspect=(9, 16))),
        "edit": (edit, Delivery(music=music, loudness_lufs=-16.0, subtitles=("srt",),
                                burn_in=True)),
    }


class Passes:
    """Counts the ffmpeg processes (and their wall time) while active."""

    def __init__(self) -> None:
        self.count, self.seconds, self._real = 0, 0.0, subprocess.run

    def __enter__(self) -> Self:
        exe = ffmpeg_exe()

        def run(cmd, *a, **k):
            t = time.perf_counter()
            try:
                return self._real(cmd, *a, **k)
            finally:
                if exe in map(str, cmd):
                    self.count += 1
                    self.seconds += time.perf_counter() - t

        subprocess.run = run  # type: ignore[assignment]
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run = self._real  # type: ignore[assignment]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--chunk-parts", type=int, default=None,
                    help="cut.CHUNK_PARTS: the most parts one ffmpeg call renders")
    args = ap.parse_args()
    if args.chunk_parts is not None:
        cut.CHUNK_PARTS = args.chunk_parts
    w, h = (int(x) for x in args.size.split("x"))
    t = time.perf_counter()
    clips, said, music = make_media((w, h))
    print(f"media ready in {time.perf_counter() - t:.1f} s ({CLIPS} clips of {SECONDS:g} s, "
          f"{w}x{h})", flush=True)
    print(f"{'deliverable':<12}{'film s':>8}{'median s':>10}{'runs':>24}{'x real':>8}"
          f"{'passes':>8}{'ffmpeg s':>10}{'LUFS':>8}{'dBTP':>7}  size")
    for name, (parts, delivery) in deliverables(clips, said, music).items():
        if args.only and name not in args.only:
            continue
        out = OUT / f"film-{name}.mp4"
        times, passes = [], None
        for _ in range(args.runs):
            with Passes() as p:
                t = time.perf_counter()
                r = render(parts, delivery, out, workdir=OUT / "work")
                times.append(time.perf_counter() - t)
            passes = p
        med = statistics.median(times)
        assert passes is not None
        lufs = f"{r.loudness_lufs:.1f}" if r.loudness_lufs is not None else "-"
        tp = f"{r.true_peak_db:.1f}" if r.true_peak_db is not None else "-"
        print(f"{name:<12}{r.duration_s:>8.1f}{med:>10.1f}"
              f"{' '.join(f'{x:.1f}' for x in times):>24}{r.duration_s / med:>8.0f}"
              f"{passes.count:>8}{passes.seconds:>10.1f}{lufs:>8}{tp:>7}  "
              f"{r.width}x{r.height}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
