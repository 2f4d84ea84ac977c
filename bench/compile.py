"""Time `validate`, `plan` (the table) and `plan --json` as whole processes on large storyboards,
plain YAML and Jinja templates, and fit how time grows with the number of shots.

Writes storyboards of 1,000, 10,000 and 30,000 shots into bench/out/: scenes of 10 shots, each
shot after the first of a scene chained from the one before, an element referenced in every
prompt, provider runware / kling-o3-pro with audio (so rules, element translation and prices
all run). The *templated* twin renders to the same storyboard from a `{% for %}` loop over
scenes and shots, a macro from an imported file (`{% import %}`) for the prompt, and an
`{% include %}` for each chained shot's frame source. Each command runs as a separate process;
the script prints the median wall time, the peak memory, the time per 1,000 shots, and the
exponent k of time ~ shots^k between sizes (1.0 is linear).

    .venv/bin/python bench/compile.py            # 1k, 10k and 30k shots, median of 5 runs
    .venv/bin/python bench/compile.py --quick    # 1k and 10k shots, 3 runs
    .venv/bin/python bench/compile.py --sizes 1000 --kinds templated --commands validate

Targets (issue 13), templated or not: validate 10,000 shots <= 3 s, plan (table or --json)
10,000 shots <= 5 s, exponent from 1k to 30k <= 1.05.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
CLI = [sys.executable, "-m", "kling_compose"]
COMMANDS = ("validate", "plan", "plan --json")
TARGETS = {"validate": 3.0, "plan": 5.0, "plan --json": 5.0}  # seconds at 10,000 shots
MAX_EXPONENT = 1.05

HEADER = ["version: 1", "name: bench-{shots}", "defaults:", "  provider: runware",
          "  model: kling-o3-pro", "  duration: 5", "  audio: true", "elements:"]


def _project(name: str) -> Path:
    root = OUT / name
    (root / "assets").mkdir(parents=True, exist_ok=True)
    png = root / "assets" / "start.png"
    if not png.exists():
        from PIL import Image

        Image.new("RGB", (320, 180), (40, 80, 120)).save(png)
    return root


def _elements() -> list[str]:
    lines = []
    for e in range(5):
        lines += [f"  hero{e}:", f"    description: Character number {e}",
                  "    frontal_image: assets/start.png", "    tags: [Character]"]
    return lines


def write_plain(shots: int) -> Path:
    """A project with `shots` shots in scenes of 10, chains and elements, as plain YAML."""
    root = _project(f"shots-{shots}")
    lines = [line.format(shots=shots) for line in HEADER] + _elements() + ["scenes:"]
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


def write_templated(shots: int) -> Path:
    """The same storyboard written as a Jinja template: a loop, a macro, an include."""
    root = _project(f"templated-{shots}")
    (root / "macros.j2").write_text(
        "{% macro prompt(i, s, k) -%}\n"
        "@hero{{ i % 5 }} walks through scene {{ s }}, take {{ k }}, slow camera drift, "
        "warm light\n"
        "{%- endmacro %}\n", encoding="utf-8")
    (root / "chained.yaml").write_text("        first_frame: { from: previous }\n",
                                       encoding="utf-8")
    lines = ["{% import 'macros.j2' as m %}"] + \
        [line.replace("{shots}", "{{ shots }}") for line in HEADER] + _elements() + [
        "scenes:",
        "{% for s in range(shots // 10) %}",
        "  - id: scene-{{ s }}",
        "    shots:",
        "{% for k in range(10) %}{% set i = s * 10 + k %}",
        "      - id: shot-{{ i }}",
        '        prompt: "{{ m.prompt(i, s, k) }}"',
        "{% if k == 0 %}",
        "        first_frame: assets/start.png",
        "{% else %}",
        "{% include 'chained.yaml' %}",
        "{% endif %}",
        "{% endfor %}",
        "{% endfor %}",
    ]
    text = "\n".join(lines) + "\n"
    text = text.replace("{% import 'macros.j2' as m %}",
                        "{% set shots = " + str(shots) + " %}{% import 'macros.j2' as m %}")
    path = root / "storyboard.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def measure(command: list[str], runs: int) -> tuple[float, float]:
    """Median wall seconds and peak RSS (MiB) of `command` over `runs` runs after a warm-up."""
    times, peaks = [], []
    for i in range(runs + 1):
        start = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env=os.environ | {"COLUMNS": "120"})
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            sys.exit(f"{' '.join(command)} failed:\n{done.stderr.decode()[-2000:]}")
        if i:
            times.append(elapsed)
            peaks.append(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return statistics.median(times), max(peaks) / 1024


def calibration_s() -> float:
    """Seconds for a fixed pure-Python loop (10M additions), best of 3: this machine's speed
    at the time, so that figures from different batches can be compared (the 2-core VM has
    been seen to run it in 0.6 s and in 3.2 s on the same day)."""
    best = float("inf")
    for _ in range(3):
        start, total = time.perf_counter(), 0
        for i in range(10_000_000):
            total += i
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k shots, 3 runs")
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--kinds", nargs="+", choices=("plain", "templated"),
                        default=("plain", "templated"))
    parser.add_argument("--commands", nargs="+", choices=COMMANDS, default=COMMANDS)
    parser.add_argument("--runs", type=int)
    args = parser.parse_args()
    sizes = args.sizes or ((1000, 10000) if args.quick else (1000, 10000, 30000))
    runs = args.runs or (3 if args.quick else 5)
    writers = {"plain": write_plain, "templated": write_templated}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, median of {runs} runs "
          f"(peak MiB: the largest child so far); calibration loop {calibration_s():.2f} s")
    print(f"{'kind':<10}{'command':<13}{'shots':>7}{'median s':>10}{'s/1k shots':>12}"
          f"{'peak MiB':>10}{'exponent':>10}  target")
    for kind in args.kinds:
        for name in args.commands:
            previous = None
            for shots in sizes:
                path = writers[kind](shots)
                seconds, peak = measure([*CLI, *name.split(), str(path)], runs)
                exponent = "" if previous is None else \
                    f"{math.log(seconds / previous[1]) / math.log(shots / previous[0]):.3f}"
                verdict = ""
                if shots == 10000:
                    target = TARGETS[name]
                    verdict = f"<= {target:g} s {'ok' if seconds <= target else 'OVER'}"
                if exponent and float(exponent) > MAX_EXPONENT:
                    verdict += f" exponent > {MAX_EXPONENT} OVER"
                print(f"{kind:<10}{name:<13}{shots:>7}{seconds:>10.2f}"
                      f"{seconds / shots * 1000:>12.3f}{peak:>10.0f}{exponent:>10}  {verdict}",
                      flush=True)
                previous = (shots, seconds)


if __name__ == "__main__":
    main()
