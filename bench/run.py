"""How cheap and how fast `kling-compose run` is against the provider simulator.

Starts `kling_compose.simulator.Simulator` in this process (its HTTP server runs in a thread),
writes a temporary project of N independent shots (3 s, 16:9, distinct prompts, no frames) and
runs `python -m kling_compose run PROJECT --provider P --concurrency C --json` as a separate
process pointed at the simulator, with the adaptive polling of a real run
(KLING_COMPOSE_POLL_SECONDS is not set). Every generation takes `--seconds` of simulated time.

Each provider runs cold (a fresh project: no timing history, so polls come 1, 2, 4, 8, 16 s
after submit up to half the prior, plan.GENERATION_PRIOR_S: 48 s for a 3 s clip, then every
4.8 s; Runware, batched: 1 s growing x1.5 up to 5 s) and, where
asked, warm (the same project again with every prompt changed, so every shot is generated anew
while state.db holds the cold run's timings: polls wait until 90 % of the expected time, then
come densely).

    .venv/bin/python bench/run.py              # the table of docs/benchmarks.md (~9 minutes)
    .venv/bin/python bench/run.py --quick      # runware cold and warm only (~2.5 minutes)
    .venv/bin/python bench/run.py --providers fal --scenarios warm --clips 20 --seconds 60
    .venv/bin/python bench/run.py --providers runware --scenarios cold --listen-backlog 5
    .venv/bin/python bench/run.py --providers runware --trace   # each submit and poll, timed
    .venv/bin/python bench/run.py --scheduling          # chains and shots, 20-300 (~20 min)
    .venv/bin/python bench/run.py --scheduling --quick  # 20 shots at 4, and at 1 (~5 min)

--scheduling measures the scheduler instead (see `scheduling_main` below): storyboards mixing
chains and independent shots, makespan against max(critical path, work / concurrency).

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
  lockfile); render: wall time during which the simulator was rendering clips inside a
  request (it renders each clip in the background while the generation runs; a poll that
  finds a generation due before its clip is ready renders it then: work a real provider has
  done before it says done);
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
    """Wraps the simulator's clip rendering to record when it ran inside a request (a poll
    that found a generation due before the background renderer had its clip: the rendering
    that delays an answer); instrumentation only."""

    def __init__(self, sim: Simulator) -> None:
        self.intervals: list[tuple[float, float]] = []
        self._lock = threading.Lock()
        render = sim.backend._render_clip

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return render(*args, **kwargs)
            finally:
                if not threading.current_thread().name.startswith("sim-render"):
                    with self._lock:
                        self.intervals.append((started, time.perf_counter()))

        sim.backend._render_clip = timed

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


# -- the scheduler: chains and independent shots (--scheduling) ------------------------------

# `python -m kling_compose` with first-come-first-served slots (asyncio.Semaphore's order,
# no slot kept for a chain's next link): the scheduler before issue 13, for comparison
FIFO = ("import sys, kling_compose.engine.slots as s\n"
        "acquire, release = s.Slots.acquire, s.Slots.release\n"
        "async def fifo(self, task_id, rank):\n"
        "    await acquire(self, task_id, 0)\n"
        "s.Slots.acquire = fifo\n"
        "s.Slots.release = lambda self, heir=None, rank=None: release(self)\n"
        "from kling_compose.cli import main\n"
        "sys.argv[0] = 'kling-compose'\n"
        "main()\n")
TARGET_BOUND = 1.10


@dataclass(frozen=True)
class Mix:
    """One scheduling scenario: `shots` shots of 3 s in scenes of `chain`, every other scene a
    chain; `history`: the project has run before (its timings are in state.db), else cold."""

    label: str
    shots: int
    concurrency: int
    seconds: float
    chain: int = 5
    history: bool = True
    fifo: bool = False
    footprint: bool = False  # peak RSS, and the time of a re-run with nothing to do
    sequential: bool = False  # and bench/sequential.py on the same shots


SCHEDULING = (
    Mix("mixed", 20, 4, 6.0), Mix("mixed fifo", 20, 4, 6.0, fifo=True),
    Mix("mixed cold", 20, 4, 6.0, history=False),
    Mix("mixed", 100, 16, 6.0), Mix("mixed fifo", 100, 16, 6.0, fifo=True),
    Mix("mixed", 100, 4, 6.0), Mix("mixed", 300, 16, 6.0, footprint=True),
    Mix("one at a time", 6, 1, 5.0, chain=3, sequential=True),
    Mix("one at a time", 6, 1, 7.5, chain=3, sequential=True),
)
SCHEDULING_QUICK = (
    Mix("mixed", 20, 4, 6.0), Mix("mixed fifo", 20, 4, 6.0, fifo=True),
    Mix("one at a time", 6, 1, 7.5, chain=3, sequential=True),
)


def mixed_storyboard(shots: int, chain: int, take: str) -> str:
    """Scenes of `chain` shots of 3 s: the even scenes chains (each shot after the first
    starts from the last frame of the one before), the odd ones independent shots."""
    lines = ["version: 1", "name: bench-run", "defaults:", "  duration: 3", "  aspect: '16:9'",
             "scenes:"]
    for i in range(shots):
        scene, position = divmod(i, chain)
        if position == 0:
            lines += [f"  - id: scene{scene + 1:03d}", "    shots:"]
        lines += [f"      - id: s{i + 1:03d}",
                  f"        prompt: lantern boat {i + 1} crosses the harbour, {take}"]
        if scene % 2 == 0 and position > 0:
            lines.append("        first_frame: { from: previous }")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Overheads:
    """What a task costs besides the generation itself, measured on this machine (median of
    5): a clip's download from the simulator and its check (every generation), the last
    frame's extraction and the continuity score (a chain's link), a frame sent inline."""

    download_s: float
    frame_s: float
    continuity_s: float
    upload_s: float


def measure_overheads(sim: Simulator, clip: Path, work: Path) -> Overheads:
    import base64

    import httpx

    from kling_compose.media.continuity import score_takes
    from kling_compose.media.ffmpeg import verify_clip
    from kling_compose.media.frames import extract_frame

    served = sim.backend.put_file(clip.read_bytes(), provider="files", suffix=".mp4",
                                  content_type="video/mp4")
    url, png = sim.backend.file_url(served.name), work / "frame.png"

    def download() -> None:
        with httpx.Client() as client:
            (work / "clip.mp4").write_bytes(client.get(url).content)
        verify_clip(work / "clip.mp4", 3.0)

    def median_s(step) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            step()
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    frame_s = median_s(lambda: extract_frame(clip, "last", png))
    return Overheads(median_s(download), frame_s,
                     median_s(lambda: score_takes(png, [clip], "first")),
                     median_s(lambda: base64.b64encode(png.read_bytes())))


def schedule_bound(root: Path, mix: Mix, over: Overheads) -> tuple[float, float, float]:
    """(critical path, work / concurrency, rounds) of the project's plan in seconds, every
    generation taking the simulator's time plus the measured overheads; assembly is left out
    (it is measured, and comes after them). rounds: N generations of (nearly) one length on C
    slots need ceil(N / C) of them one after another, a bound work / C does not see (100 on
    16: 7 rounds, where work / C counts 6.25)."""
    from kling_compose import build_plan, load_storyboard

    plan = build_plan(load_storyboard(root / "storyboard.yaml"), "runware")
    cost = {}
    for task_id in plan.order:
        task = plan.tasks[task_id]
        cost[task_id] = {
            "generate": mix.seconds + over.download_s + (over.continuity_s if task.depends_on
                                                         else 0.0),
            "extract_frame": over.frame_s, "upload": over.upload_s}.get(task.kind, 0.0)
    finish: dict[str, float] = {}
    for task_id in plan.order:
        before = max((finish[d] for d in plan.tasks[task_id].depends_on), default=0.0)
        finish[task_id] = before + cost[task_id]
    work = sum(c for t, c in cost.items() if plan.tasks[t].kind in ("generate", "upload"))
    generations = [c for t, c in cost.items() if plan.tasks[t].kind == "generate"]
    rounds = -(-len(generations) // mix.concurrency) * min(generations)
    return max(finish.values()), work / mix.concurrency, rounds


@dataclass
class Timed:
    wall_s: float
    started: float
    ended: float
    summary: dict
    # peak RSS of the process (its /proc VmHWM, read every 50 ms until it exits; wait4's
    # ru_maxrss would count the pages of this big benchmark process it was forked from)
    peak_mib: float


def timed_run(command: list[str], env: dict) -> Timed:
    """Run `command`, timed from outside; its JSON summary and peak memory."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.time()
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True)
        hwm = [0]

        def sample() -> None:
            status = Path(f"/proc/{proc.pid}/status")
            while proc.returncode is None:
                try:
                    line = next(x for x in status.read_text().splitlines()
                                if x.startswith("VmHWM:"))
                    hwm[0] = max(hwm[0], int(line.split()[1]))
                except (OSError, StopIteration):
                    return
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        proc.wait()
        ended = time.time()
        sampler.join()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode not in (0, 1):
        sys.exit(f"{' '.join(command[-8:])}: exited {proc.returncode}\n{stderr[-3000:]}")
    summary = json.loads(stdout) if stdout.strip().startswith("{") else {}
    return Timed(ended - started, started, ended, summary, hwm[0] / 1024)


def run_command(root: Path, concurrency: int, fifo: bool = False) -> list[str]:
    head = [sys.executable, "-c", FIFO] if fifo else [sys.executable, "-m", "kling_compose"]
    return head + ["run", str(root), "--provider", "runware", "--concurrency",
                   str(concurrency), "--json"]


def generated_clip(root: Path) -> Path:
    """A clip the simulator made for this project (from its ledger: not the film)."""
    import sqlite3

    with sqlite3.connect(root / ".kling-compose" / "state.db") as db:
        (artifacts,) = db.execute("SELECT artifacts FROM tasks WHERE kind = 'generate' AND "
                                  "status = 'done' LIMIT 1").fetchone()
    digest, suffix = json.loads(artifacts)[0]
    return root / ".kling-compose" / "objects" / digest[:2] / f"{digest}{suffix}"


def assembly_s(root: Path) -> tuple[float, float]:
    """(seconds the last assembly took, when it ended) from the project's ledger."""
    import sqlite3

    with sqlite3.connect(root / ".kling-compose" / "state.db") as db:
        started, finished = db.execute(
            "SELECT started_at, finished_at FROM tasks WHERE kind = 'assemble' "
            "ORDER BY finished_at DESC LIMIT 1").fetchone()
    return finished - started, finished


SCHEDULE_HEADER = (f"{'scenario':<15}{'shots':>6}{'conc':>5}{'task':>5}{'makespan':>9}"
                   f"{'pre':>5}{'crit':>6}{'work/C':>7}{'rounds':>7}{'asm':>5}{'post':>5}"
                   f"{'bound':>7}{'/bound':>7}{'/rounds':>8}{'req/clip':>9}{'RSS':>6}")


def run_mix(mix: Mix, over: Overheads | None) -> Overheads:
    """Run one scenario against its own simulator; print its row (and extras)."""
    env = os.environ | {KEY_VARIABLES["runware"]: KEYS["runware"]}
    env.pop("KLING_COMPOSE_POLL_SECONDS", None)
    with Simulator(KEYS, Faults(task_seconds=mix.seconds)) as sim, \
            tempfile.TemporaryDirectory(prefix="kling-compose-bench-sched-") as tmp:
        env |= sim.env()
        root = Path(tmp) / "film"
        root.mkdir()
        if mix.history:  # an earlier run of this project: its timings are in state.db
            (root / "storyboard.yaml").write_text(mixed_storyboard(4, 4, "warm-up"))
            timed_run(run_command(root, 4), env | {"KLING_COMPOSE_POLL_SECONDS": "0.2"})
        if over is None:
            if not mix.history:  # a cold first scenario: make one clip to measure with
                (root / "storyboard.yaml").write_text(mixed_storyboard(1, 1, "probe"))
                timed_run(run_command(root, 1), env | {"KLING_COMPOSE_POLL_SECONDS": "0.2"})
            over = measure_overheads(sim, generated_clip(root), Path(tmp))
            print(f"# overheads (median of 5): download + check {over.download_s:.3f} s, "
                  f"last frame {over.frame_s:.3f} s, continuity {over.continuity_s:.3f} s, "
                  f"inline frame {over.upload_s:.4f} s", flush=True)
        (root / "storyboard.yaml").write_text(mixed_storyboard(mix.shots, mix.chain, "take 1"))
        seen = len(sim.requests())
        run = timed_run(run_command(root, mix.concurrency, mix.fifo), env)
        if run.summary.get("generated") != mix.shots or run.summary.get("failed"):
            sys.exit(f"{mix.label}: expected {mix.shots} generated, got {run.summary}")
        records = sim.requests()[seen:]
        pre = min(r.time_s for r in records if r.kind == "submit") - run.started
        assemble_s, assembled_at = assembly_s(root)
        post = run.ended - assembled_at
        critical, spread, rounds = schedule_bound(root, mix, over)
        bound = pre + max(critical, spread) + assemble_s + post
        ratio = run.wall_s / bound
        verdict = "ok" if ratio <= TARGET_BOUND else "SLOW"
        rounded = run.wall_s / (pre + max(critical, spread, rounds) + assemble_s + post)
        print(f"{mix.label:<15}{mix.shots:>6}{mix.concurrency:>5}{mix.seconds:>5.1f}"
              f"{run.wall_s:>9.1f}{pre:>5.1f}{critical:>6.1f}{spread:>7.1f}{rounds:>7.1f}"
              f"{assemble_s:>5.1f}{post:>5.1f}{bound:>7.1f}{ratio:>7.3f}{rounded:>8.3f}"
              f"{len(records) / mix.shots:>9.2f}{run.peak_mib:>6.0f}  {verdict}", flush=True)
        if mix.footprint:
            again = [timed_run(run_command(root, mix.concurrency), env) for _ in range(3)]
            if any(a.summary.get("generated") or a.summary.get("failed") for a in again):
                sys.exit(f"{mix.label}: a re-run did something: {again[0].summary}")
            walls = sorted(a.wall_s for a in again)
            print(f"#   re-run with nothing to do: {walls[1]:.2f} s median of 3 "
                  f"({walls[0]:.2f}-{walls[2]:.2f}), peak RSS "
                  f"{max(a.peak_mib for a in again):.0f} MiB", flush=True)
        if mix.sequential:
            script = [sys.executable, str(Path(__file__).with_name("sequential.py")), str(root),
                      "--url", sim.url("runware"), "--key", KEYS["runware"],
                      "--out", str(Path(tmp) / "sequential")]
            baseline = timed_run(script, env)
            print(f"#   sequential script, polls every 5 s: {baseline.wall_s:.1f} s; "
                  f"run / script = {run.wall_s / baseline.wall_s:.3f} "
                  f"({'ok' if run.wall_s <= baseline.wall_s else 'SLOWER'})", flush=True)
    return over


def scheduling_main(quick: bool) -> None:
    """Chains and independent shots against the simulator's fixed generation time: makespan
    against the bound max(critical path, work / concurrency), both from the plan with the
    simulator's seconds per generation and the overheads measured here; plus start-up (pre),
    the assembly and what follows it (post), measured in the run itself. Runware, whose polls
    are batched; every project but "cold" has run before (a short warm-up run, polled every
    0.2 s, records its timings), so its polls start near the expected time."""
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; times in seconds; "
          f"bound = pre + max(crit, work/C) + asm + post; target /bound <= {TARGET_BOUND}; "
          "/rounds: against pre + max(crit, work/C, rounds) + asm + post")
    print(SCHEDULE_HEADER)
    over = None
    for mix in SCHEDULING_QUICK if quick else SCHEDULING:
        over = run_mix(mix, over)


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
    parser.add_argument("--scheduling", action="store_true",
                        help="chains and independent shots, 20 to 300, makespan against "
                        "max(critical path, work / concurrency) (with --quick: 20 shots)")
    args = parser.parse_args()
    if args.scheduling:
        scheduling_main(args.quick)
        return
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
