"""Time `kling-compose validate` and `plan --json` as whole processes on large storyboards.

Generates storyboards of 1,000 and 10,000 shots (scenes of 10 shots, each shot after the first
of a scene chained from the one before, elements referenced in every prompt) into bench/out/,
runs each command several times and prints the median wall time, the peak memory of the
process and the time per 1,000 shots (linear growth keeps that constant).

    .venv/bin/python bench/compile.py            # 1,000 and 10,000 shots, 5 runs each
    .venv/bin/python bench/compile.py --quick    # 1,000 shots, 3 runs

Targets on the 2-core machine: validate 1,000 shots <= 1.0 s, 10,000 <= 6 s; plan --json
1,000 <= 1.5 s, 10,000 <= 10 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
CLI = [sys.executable, "-m", "kling_compose"]
TARGETS = {("validate", 1000): 1.0, ("validate", 10000): 6.0,
           ("plan --json", 1000): 1.5, ("plan --json", 10000): 10.0}


def write_storyboard(shots: int) -> Path:
    """A project with `shots` shots in scenes of 10, chains and elements."""
    root = OUT / f"shots-{shots}"
    (root / "assets").mkdir(parents=True, exist_ok=True)
    png = root / "assets" / "start.png"
    if not png.exists():
        from PIL import Image

        Image.new("RGB", (320, 180), (40, 80, 120)).save(png)
    lines = ["version: 1", f"name: bench-{shots}", "defaults:", "  provider: runware",
             "  model: kling-o3-pro", "  duration: 5", "  audio: true",
             "elements:"]
    for e in range(5):
        lines += [f"  hero{e}:", f"    description: Character number {e}",
                  "    frontal_image: assets/start.png", "    tags: [Character]"]
    lines.append("scenes:")
    for s in range(shots // 10):
        lines += [f"  - id: scene-{s}", "    shots:"]
        for k in range(10):
            i = s * 10 + k
            lines += [f"      - id: shot-{i}",
                      f"        prompt: \"@hero{i % 5} walks through scene {s}, take {k}, slow "
                      "camera drift, warm light\""]
            if k == 0:
                lines.append("        first_frame: assets/start.png")
            else:
                lines.append("        first_frame: { from: previous }")
    path = root / "storyboard.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def measure(command: list[str], runs: int) -> tuple[float, float]:
    """Median wall seconds and peak RSS (MiB) of `command` over `runs` runs after a warm-up."""
    times, peaks = [], []
    for i in range(runs + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"{' '.join(command)} failed:\n{done.stderr.decode()[-2000:]}")
        if i:
            times.append(elapsed)
            peaks.append(max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
    return statistics.median(times), max(peaks) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes, runs = ((1000,), 3) if args.quick else ((1000, 10000), 5)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, median of {runs} runs")
    print(f"{'command':<14}{'shots':>7}{'median s':>10}{'s/1k shots':>12}{'peak MiB':>10}"
          f"{'target s':>10}")
    for shots in sizes:
        path = write_storyboard(shots)
        for name in ("validate", "plan --json"):
            seconds, peak = measure([*CLI, *name.split(), str(path)], runs)
            target = TARGETS[(name, shots)]
            verdict = "ok" if seconds <= target else "OVER"
            print(f"{name:<14}{shots:>7}{seconds:>10.2f}{seconds / shots * 1000:>12.3f}"
                  f"{peak:>10.0f}{target:>9.1f} {verdict}")


if __name__ == "__main__":
    main()
