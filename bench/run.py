"""How cheap and how fast `kling-compose run` is against the provider simulator.

Starts `kling_compose.simulator.Simulator` in this process (its HTTP server runs in a thread),
writes a temporary project of N independent shots (3 s, 16:9, distinct prompts, no frames) and
runs `python -m kling_compose run PROJECT --provider P --concurrency C --json` as a separate
process pointed at the simulator, with the adaptive polling of a real run
(KLING_COMPOSE_POLL_SECONDS is not set). Every generation takes `--seconds` of simulated time.

Each provider runs cold (a fresh project: no timing history, polls start 1 s after submit and
grow x1.5 up to 5 s) and, where asked, warm (the same project again with every prompt changed,
so every shot is generated anew while state.db holds the cold run's timings: polls wait until
90 % of the expected time, then come densely).

    .venv/bin/python bench/run.py              # the table of docs/benchmarks.md (~9 minutes)
    .venv/bin/python bench/run.py --quick      # runware cold and warm only (~2.5 minutes)
    .venv/bin/python bench/run.py --providers fal --scenarios warm --clips 20 --seconds 60
    .venv/bin/python bench/run.py --providers runware --scenarios cold --listen-backlog 5
    .venv/bin/python bench/run.py --providers runware --trace   # each submit and poll, timed

The default table adds a runware row of 12 clips of 30 s (the figure before adaptive, batched
polling was 9.0 requests per clip). --listen-backlog sets the simulator's listen backlog (its
own is 128; with socketserver's 5, a burst of 20 new connections loses some SYNs and those
requests arrive 1 s late, the kernel's SYN retransmission, which a real provider's server
does not do).

Figures per row (times in seconds):

- req/clip: every request the simulator received during the run (submit, poll, download,
  upload), divided by the number of clips, in total and by kind; target <= 3;
- makespan: wall time of the `run` process, start to exit;
- pre: process start to the first submit the simulator receives (start-up, compile, state);
  post: the last download request to process exit (that download, its check, assembly,
  lockfile); render: wall time during which the simulator was rendering clips (it renders a
  clip inside the first poll that finds it due: work a real provider has done before it
  says done, and serial within one batched Runware poll);
- ideal = pre + task seconds + render + post: with N <= C every clip can be submitted at
  once, so no schedule of this run finishes sooner; what makespan has above it is waiting
  for polls, submission spread and the other downloads (with N > C, task seconds count once
  per wave of C clips). /ideal = makespan / ideal, target <= 1.10; /bare = makespan /
  (pre + task + post), the same without the simulator's rendering; /task = makespan / task
  seconds;
- lag, max: per clip, from its submit to its download request, minus task seconds (how late
  the poll that saw it done came, the simulator's rendering included); median and max.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kling_compose.simulator import Faults, Simulator

KEYS = {"runware": "rw-bench-key", "fal": "fal-bench-key", "kling-v3-task": "task-bench-key",
        "kie": "kie-bench-key"}
KEY_VARIABLES = {"runware": "RUNWARE_API_KEY", "fal": "FAL_KEY",
                 "kling-v3-task": "KLING_V3_TASK_API_KEY", "kie": "KIE_API_KEY"}
KINDS = ("submit", "poll", "download", "upload")
TARGET_REQUESTS = 3.0
TARGET_RATIO = 1.10


@dataclass(frozen=True)
class Case:
    """Runs of one project: cold, then (if asked) warm; a warm-only case still runs cold first
    (to record timings) but reports only the warm run. backlog: the simulator's listen
    backlog (None: its own, 128)."""

    provider: str
    scenarios: tuple[str, ...] = ("cold", "warm")
    clips: int = 20
    concurrency: int = 20
    seconds: float = 60.0
    backlog: int | None = None


# the table of docs/benchmarks.md (about 9 minutes)
DEFAULT_PLAN = (
    Case("runware"), Case("fal"), Case("kie"),
    Case("runware", ("cold",), 12, 12, 30.0),  # the sanity row: 9.0 requests per clip before
)


@dataclass
class Row:
    provider: str
    scenario: str
    clips: int
    concurrency: int
    task_s: float
    requests: dict[str, int]
    makespan_s: float
    pre_s: float
    post_s: float
    lag_s: list[float]
    render_s: float  # the simulator's rendering: seconds summed over clips
    render_wall_s: float  # ... and wall seconds during which at least one clip was rendering

    @property
    def per_clip(self) -> float:
        return sum(self.requests.values()) / self.clips

    @property
    def generation_s(self) -> float:
        """Task seconds times the waves ceil(clips / concurrency) the run needs at least."""
        return self.task_s * -(-self.clips // self.concurrency)

    @property
    def ideal_s(self) -> float:
        return self.pre_s + self.generation_s + self.render_wall_s + self.post_s

    @property
    def bare_s(self) -> float:
        """The ideal without the simulator's rendering (what a provider with the clip ready
        the moment it says done would allow)."""
        return self.pre_s + self.generation_s + self.post_s


def storyboard(clips: int, take: int) -> str:
    """`clips` independent 3 s shots; `take` changes every prompt (a warm run's new shots)."""
    lines = ["version: 1", "name: bench-run", "defaults:", "  duration: 3", "  aspect: '16:9'",
             "scenes:", "  - id: main", "    shots:"]
    for i in range(1, clips + 1):
        lines += [f"      - id: s{i:02d}",
                  f"        prompt: lantern boat number {i} drifts across the harbour, take {take}"]
    return "\n".join(lines) + "\n"


class RenderClock:
    """Wraps the simulator's clip rendering to record when it ran (instrumentation only)."""

    def __init__(self, sim: Simulator) -> None:
        self.intervals: list[tuple[float, float]] = []
        self._lock = threading.Lock()
        render = sim.backend._render

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return render(*args, **kwargs)
            finally:
                with self._lock:
                    self.intervals.append((started, time.perf_counter()))

        sim.backend._render = timed

    def take(self) -> tuple[float, float]:
        """(sum of render seconds, wall seconds during which at least one render ran) since
        the last take."""
        with self._lock:
            intervals, self.intervals = sorted(self.intervals), []
        total = sum(end - start for start, end in intervals)
        wall, reach = 0.0, float("-inf")
        for start, end in intervals:
            if end > reach:
                wall += end - max(start, reach)
                reach = end
        return total, wall


TRACE = False  # --trace: print each submit and poll of a run, timed from the first submit


def run_once(sim: Simulator, renders: RenderClock, root: Path, provider: str, scenario: str,
             clips: int, concurrency: int, task_s: float) -> Row:
    """One `kling-compose run` of the project at `root`; its requests and times."""
    sim.faults.task_seconds = task_s
    env = os.environ | sim.env() | {KEY_VARIABLES[p]: k for p, k in KEYS.items()}
    env.pop("KLING_COMPOSE_POLL_SECONDS", None)  # the adaptive cadence of a real run
    command = [sys.executable, "-m", "kling_compose", "run", str(root), "--provider", provider,
               "--concurrency", str(concurrency), "--json", "--preview-resolution", "144"]
    seen_requests = len(sim.requests())
    seen_generations = len(sim.generations(provider))
    renders.take()
    offset = time.time() - time.monotonic()  # simulator generation times are monotonic
    started = time.time()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    ended = time.time()
    if done.returncode != 0:
        sys.exit(f"{provider} {scenario}: run exited {done.returncode}\n"
                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout)
    if summary.get("failed") or summary.get("generated") != clips:
        sys.exit(f"{provider} {scenario}: expected {clips} generated, got {summary}")
    records = sim.requests()[seen_requests:]
    if any(r.provider not in (provider, "files") for r in records):
        sys.exit(f"{provider} {scenario}: requests to another provider")
    counts = {kind: sum(1 for r in records if r.kind == kind) for kind in KINDS}
    submits = [r.time_s for r in records if r.kind == "submit"]
    if TRACE:
        print(f"# {provider} {scenario}: submits and polls, seconds after the first submit "
              "(tasks: how many a batched request carries)")
        for r in records:
            if r.kind in ("submit", "poll"):
                tasks = f"  tasks {len(r.body)}" if isinstance(r.body, list) else ""
                print(f"#   {r.time_s - min(submits):7.3f}  {r.kind:<6} {r.method} "
                      f"{r.path[:70]}{tasks}")
    downloads = [r for r in records if r.kind == "download"]
    lags = []
    for generation in sim.generations(provider)[seen_generations:]:
        names = {f"/files/{output}.mp4" for output in generation.output_ids}
        fetched = [r.time_s for r in downloads if r.path in names]
        if fetched:
            lags.append(min(fetched) - (generation.started_s + offset) - task_s)
    return Row(provider, scenario, clips, concurrency, task_s, counts, ended - started,
               min(submits) - started, ended - max(r.time_s for r in downloads), lags,
               *renders.take())


def run_case(case: Case) -> list[Row]:
    """A simulator and a temporary project for `case`; its rows, printed as they come."""
    import kling_compose.simulator.server as server

    label = "" if case.backlog is None else f" bl{case.backlog}"
    plain = server._Server
    if case.backlog is not None:  # the listen() backlog of the simulator's server socket
        server._Server = type("Backlogged", (plain,), {"request_queue_size": case.backlog})
    rows = []
    try:
        with Simulator(KEYS, Faults(task_seconds=case.seconds)) as sim, \
                tempfile.TemporaryDirectory(prefix="kling-compose-bench-run-") as tmp:
            renders = RenderClock(sim)
            root = Path(tmp) / "film"
            root.mkdir()
            for take, scenario in enumerate(("cold", "warm"), start=1):
                if scenario == "warm" and "warm" not in case.scenarios:
                    break
                (root / "storyboard.yaml").write_text(storyboard(case.clips, take),
                                                      encoding="utf-8")
                row = run_once(sim, renders, root, case.provider, scenario + label,
                               case.clips, case.concurrency, case.seconds)
                if scenario in case.scenarios:
                    rows.append(row)
                    print_row(row)
    finally:
        server._Server = plain
    return rows


HEADER = (f"{'provider':<14}{'scenario':<9}{'clips':>6}{'conc':>5}{'task':>5}"
          f"{'req/clip':>9}{'submit':>7}{'poll':>6}{'dl':>5}{'upl':>5}"
          f"{'makespan':>9}{'pre':>5}{'post':>5}{'render':>7}{'ideal':>6}{'/ideal':>7}"
          f"{'/bare':>6}{'/task':>6}{'lag':>5}{'max':>5}")


def print_row(row: Row) -> None:
    per = {k: row.requests[k] / row.clips for k in KINDS}
    ratio = row.makespan_s / row.ideal_s
    verdict = ("ok" if row.per_clip <= TARGET_REQUESTS else "REQ") + "/" + \
        ("ok" if ratio <= TARGET_RATIO else "SLOW")
    lag = sorted(row.lag_s) or [float("nan")]
    print(f"{row.provider:<14}{row.scenario:<9}{row.clips:>6}{row.concurrency:>5}"
          f"{row.task_s:>5.0f}{row.per_clip:>9.2f}{per['submit']:>7.2f}{per['poll']:>6.2f}"
          f"{per['download']:>5.2f}{per['upload']:>5.2f}{row.makespan_s:>9.1f}"
          f"{row.pre_s:>5.1f}{row.post_s:>5.1f}{row.render_wall_s:>7.1f}{row.ideal_s:>6.1f}"
          f"{ratio:>7.3f}{row.makespan_s / row.bare_s:>6.3f}{row.makespan_s / row.task_s:>6.2f}"
          f"{statistics.median(lag):>5.1f}{lag[-1]:>5.1f}  {verdict}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--providers", help="comma-separated, of runware, fal, kie, "
                        "kling-v3-task; each runs cold and warm (default: the table of "
                        "docs/benchmarks.md)")
    parser.add_argument("--scenarios", help="cold, warm or cold,warm")
    parser.add_argument("--clips", type=int, default=20, help="shots per run (default 20)")
    parser.add_argument("--concurrency", type=int, default=20, help="--concurrency (default 20)")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="simulated generation time per clip (default 60)")
    parser.add_argument("--listen-backlog", type=int, metavar="N",
                        help="the simulator's listen backlog (default: its own, 128)")
    parser.add_argument("--quick", action="store_true", help="runware cold and warm only")
    parser.add_argument("--trace", action="store_true",
                        help="print each submit and poll of every run, timed")
    args = parser.parse_args()
    global TRACE
    TRACE = args.trace
    scenarios = ("cold", "warm")
    if args.scenarios:
        scenarios = tuple(s.strip() for s in args.scenarios.split(","))
        if not scenarios or set(scenarios) - {"cold", "warm"}:
            parser.error("--scenarios: cold, warm or cold,warm")
    providers = ["runware"] if args.quick else \
        [p.strip() for p in args.providers.split(",")] if args.providers else []
    for provider in providers:
        if provider not in KEYS:
            parser.error(f"--providers: unknown provider {provider!r}; one of {sorted(KEYS)}")
    custom = (args.scenarios, args.listen_backlog) != (None, None) or \
        (args.clips, args.concurrency, args.seconds) != (20, 20, 60.0)
    if providers or custom:
        plan = [Case(p, scenarios, args.clips, args.concurrency, args.seconds,
                     args.listen_backlog) for p in providers or ("runware", "fal", "kie")]
    else:
        plan = list(DEFAULT_PLAN)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; req/clip: requests per "
          "clip, in total and by kind; times in seconds; targets: <= 3 requests per clip, "
          "makespan <= 1.10 x ideal")
    print(HEADER)
    for case in plan:
        run_case(case)


if __name__ == "__main__":
    main()
