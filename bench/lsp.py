"""Time `kling-compose lsp` from an edit to its diagnostics, on storyboards of 1,000 and 10,000
shots (issue 27: within 300 ms and 2 s).

A real client (pygls's) starts the server as an editor does (`python -m kling_compose lsp`,
stdio), opens a storyboard written by bench/compile.py (scenes of 10 chained shots, an element
in every prompt, runware / kling-o3-pro with audio; plain YAML, or the templated twin: a
loop, a macro, an include), then sends edits one at a time, as incremental changes of a few
characters, and waits for the diagnostics published for each new version. Every edit runs
the whole pipeline (render, parse, validate, resolve, compile); they are timed by what they
change:

- one shot (plain only): a character of the middle shot's prompt typed and typed back, then
  `duration: 40` typed into that shot (an error at compile, the last stage) and removed;
- every shot: the defaults' duration 5 -> 6 -> 5, and in the templated storyboard the same
  `duration: 40` in the loop's shot (a template line is every shot's).

The time is from sending the change to receiving its diagnostics: the debounce, JSON-RPC both
ways and the check (`median s`, `max s`); `server s` is the check alone as the server logs it
(window/logMessage), `alone s` the same check run in this process on the same texts. It
first times bench/compile.py's calibration loop: figures of batches whose loops differ are
not comparable.

    .venv/bin/python bench/lsp.py                    # 1k and 10k, plain and templated, 12 edits
    .venv/bin/python bench/lsp.py --sizes 1000 --kinds plain --edits 6
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

BENCH = Path(__file__).resolve().parent
TARGETS = {1000: 0.300, 10000: 2.0}  # seconds from an edit to its diagnostics


def _compile_bench():
    spec = importlib.util.spec_from_file_location("bench_compile", BENCH / "compile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_compile"] = module
    spec.loader.exec_module(module)
    return module


Edit = tuple[tuple[int, int], tuple[int, int], str]  # LSP range (line, column) x 2, new text


def _edits(text: str) -> list[tuple[str, Edit]]:
    """The cycle of edits, each (what it changes, edit) against the text the one before left.
    In the plain storyboard: a character of the middle shot's prompt typed and typed back
    (one shot), `duration: 40` typed into it on a line of its own and removed (an error at
    compile, then none); in both: the defaults' duration 5 -> 6 -> 5 (every shot). In the
    templated one a shot's lines are the loop's: an edit there is every shot's."""
    lines = text.split("\n")
    default = next(i for i, line in enumerate(lines) if line == "  duration: 5")
    prompts = [i for i, line in enumerate(lines) if line.lstrip().startswith("prompt:")]
    middle = prompts[len(prompts) // 2]
    end = len(lines[middle])
    whom = "one shot" if len(prompts) > 1 else "every shot"
    edits: list[tuple[str, Edit]] = []
    take = lines[middle].find("take ")
    if take >= 0:
        col = take + len("take ")
        old = lines[middle][col]
        edits += [(whom, ((middle, col), (middle, col + 1), "x")),
                  (whom, ((middle, col), (middle, col + 1), old))]
    added = "        duration: 40"
    edits += [(f"{whom}, error", ((middle, end), (middle, end), "\n" + added)),
              (f"{whom}, fixed", ((middle, end), (middle + 1, len(added)), "")),
              ("every shot", ((default, 12), (default, 13), "6")),
              ("every shot", ((default, 12), (default, 13), "5"))]
    return edits


def _apply(text: str, edit: Edit) -> str:
    (start_line, start_col), (end_line, end_col), new = edit
    lines = text.split("\n")
    start = sum(len(row) + 1 for row in lines[:start_line]) + start_col
    end = sum(len(row) + 1 for row in lines[:end_line]) + end_col
    return text[:start] + new + text[end:]


@dataclass
class Session:
    opened: float = 0.0  # seconds to the first diagnostics after opening
    times: list[tuple[str, float]] = field(default_factory=list)  # (edit, seconds) each
    checks: list[tuple[str, float]] = field(default_factory=list)  # the server's own check
    problems: list[int] = field(default_factory=list)  # diagnostics published for each
    peak_mib: float | None = None  # the server's peak memory (None: /proc does not say)


async def _session(path: Path, edits: int, debounce_ms: int) -> Session:
    """Open `path` in a server, then send `edits` edits one at a time, each when the one
    before has its diagnostics."""
    client = LanguageClient("kling-compose-bench", "1")
    uri = path.as_uri()
    arrived: dict[int, tuple[float, int]] = {}  # version -> (when, diagnostics)
    checked: dict[int, float] = {}  # version -> the server's own seconds for it
    changed = asyncio.Event()

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def logged(params: types.LogMessageParams) -> None:
        found = re.match(r"checked .* \(version (\d+)\) in ([\d.]+) s", params.message)
        if found:
            checked[int(found[1])] = float(found[2])

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def published(params: types.PublishDiagnosticsParams) -> None:
        if params.uri == uri and params.version is not None:
            arrived[params.version] = (time.perf_counter(), len(params.diagnostics))
            changed.set()

    async def wait_for(version: int) -> float:
        while version not in arrived:
            changed.clear()
            await asyncio.wait_for(changed.wait(), timeout=120)
        return arrived[version][0]

    await client.start_io(sys.executable, "-m", "kling_compose", "lsp", "--debounce-ms",
                          str(debounce_ms))
    await client.initialize_async(types.InitializeParams(
        capabilities=types.ClientCapabilities(), process_id=os.getpid()))
    client.initialized(types.InitializedParams())
    text = path.read_text(encoding="utf-8")
    session = Session()
    start = time.perf_counter()
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(uri=uri, language_id="yaml", version=1, text=text)))
    session.opened = await wait_for(1) - start
    cycle = _edits(text)
    for n in range(edits):
        label, ((start_line, start_col), (end_line, end_col), new) = cycle[n % len(cycle)]
        version = n + 2
        sent = time.perf_counter()
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(version=version, uri=uri),
            [types.TextDocumentContentChangePartial(
                range=types.Range(types.Position(start_line, start_col),
                                  types.Position(end_line, end_col)), text=new)]))
        session.times.append((label, await wait_for(version) - sent))
        session.problems.append(arrived[version][1])
    session.peak_mib = _peak_mib(client._server.pid) if client._server is not None else None
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    session.checks = [(label, checked.get(n + 2, float("nan")))  # logged after diagnostics
                      for n, (label, _) in enumerate(session.times)]
    return session


def _peak_mib(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = next((line for line in status.splitlines() if line.startswith("VmHWM:")), None)
    return int(found.split()[1]) / 1024 if found else None


def _in_process(path: Path, edits: int) -> tuple[list[tuple[str, float]], list[int]]:
    """The analysis alone, in this process, on the texts the edits make: its times and the
    problems of each (which the server's must equal: the same text checked)."""
    from kling_compose.collector import paused
    from kling_compose.lsp.analysis import analyse

    text = path.read_text(encoding="utf-8")
    cycle = _edits(text)
    found = analyse(path, text)  # imports, caches
    times, problems = [], []
    with paused():  # as the server runs
        for n in range(edits):
            label, edit = cycle[n % len(cycle)]
            text = _apply(text, edit)
            start = time.perf_counter()
            found = analyse(path, text, previous=found)
            times.append((label, time.perf_counter() - start))
            problems.append(len(found.problems))
    return times, problems


def _by_kind(times: list[tuple[str, float]]) -> dict[str, list[float]]:
    kinds: dict[str, list[float]] = {}
    for label, seconds in times:
        kinds.setdefault(label.split(",")[0], []).append(seconds)
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--kinds", nargs="+", choices=("plain", "templated"),
                        default=("plain", "templated"))
    parser.add_argument("--edits", type=int, default=12)
    parser.add_argument("--debounce-ms", type=int, default=30)
    args = parser.parse_args()
    compile_bench = _compile_bench()
    writers = {"plain": compile_bench.write_plain, "templated": compile_bench.write_templated}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.edits} edits, "
          f"debounce {args.debounce_ms} ms; calibration loop "
          f"{compile_bench.calibration_s():.2f} s")
    print(f"{'kind':<10}{'shots':>7}{'open s':>8}{'peak MiB':>9}  {'edit':<11}{'n':>3}"
          f"{'median s':>10}{'max s':>8}{'server s':>10}{'alone s':>9}  target")
    for kind in args.kinds:
        for shots in args.sizes:
            path = writers[kind](shots)
            session = asyncio.run(_session(path, args.edits, args.debounce_ms))
            alone, problems = _in_process(path, args.edits)
            if problems != session.problems:
                sys.exit(f"the server's diagnostics {session.problems} are not the check's "
                         f"{problems}: the edits did not make the same text")
            memory = f"{session.peak_mib:>9.0f}" if session.peak_mib is not None \
                else f"{'?':>9}"
            checks, alone_kinds = _by_kind(session.checks), _by_kind(alone)
            target = TARGETS.get(shots)
            for what, seconds in _by_kind(session.times).items():
                median = statistics.median(seconds)
                verdict = "" if target is None else \
                    f"<= {target:g} s {'ok' if median <= target else 'OVER'}"
                print(f"{kind:<10}{shots:>7}{session.opened:>8.2f}{memory}  {what:<11}"
                      f"{len(seconds):>3}{median:>10.3f}{max(seconds):>8.3f}"
                      f"{statistics.median(checks[what]):>10.3f}"
                      f"{statistics.median(alone_kinds[what]):>9.3f}  {verdict}", flush=True)


if __name__ == "__main__":
    main()
