"""Time `kling-compose lsp` from an edit to its diagnostics, on storyboards of 1,000 and 10,000
shots (issue 27: within 300 ms and 2 s).

A real client (pygls's) starts the server as an editor does (`python -m kling_compose lsp`,
stdio), opens a storyboard written by bench/compile.py (scenes of 10 chained shots, an element
in every prompt, runware / kling-o3-pro with audio; plain YAML or the templated twin), then
sends edits one at a time, as incremental changes of a few characters, and waits for the
diagnostics published for each new version. Each edit makes the whole pipeline run (render,
parse, validate, resolve, compile): the defaults' duration 5 -> 6 -> 5, and a `duration: 40`
typed into the middle shot and removed again (an error at compile, the last stage). The time
is from sending the change to receiving its diagnostics: the debounce, JSON-RPC both ways and
the analysis. The script also runs the analysis in-process on the same texts (the share of
the analysis alone).

    .venv/bin/python bench/lsp.py                    # 1k and 10k, plain and templated, 8 edits
    .venv/bin/python bench/lsp.py --sizes 1000 --kinds plain --edits 4
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import sys
import time
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


def _edits(text: str) -> list[tuple[int, int, int, str]]:
    """The cycle of edits (line, start, end, new text), each against the text left by the
    one before: the defaults' duration 5 -> 6 -> 5, then `duration: 40` into the middle shot
    (a new line after its prompt) and out again."""
    lines = text.split("\n")
    default = next(i for i, line in enumerate(lines) if line == "  duration: 5")
    prompts = [i for i, line in enumerate(lines) if line.lstrip().startswith("prompt:")]
    middle = prompts[len(prompts) // 2]
    end = len(lines[middle])
    return [(default, 12, 13, "6"), (default, 12, 13, "5"),
            (middle, end, end, "\n        duration: 40"),
            (middle, end, end + len("\n        duration: 40"), "")]


def _apply(text: str, edit: tuple[int, int, int, str]) -> str:
    line, start, end, new = edit
    lines = text.split("\n")
    offset = sum(len(row) + 1 for row in lines[:line])
    return text[:offset + start] + new + text[offset + end:]


async def _session(path: Path, edits: int, debounce_ms: int) -> tuple[float, list[float], int]:
    """Seconds to the first diagnostics after opening, then for each edit; the most
    diagnostics one publication carried."""
    client = LanguageClient("kling-compose-bench", "1")
    uri = path.as_uri()
    arrived: dict[int, float] = {}
    largest = 0
    changed = asyncio.Event()

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def published(params: types.PublishDiagnosticsParams) -> None:
        nonlocal largest
        if params.uri == uri and params.version is not None:
            arrived[params.version] = time.perf_counter()
            largest = max(largest, len(params.diagnostics))
            changed.set()

    async def wait_for(version: int) -> float:
        while version not in arrived:
            changed.clear()
            await asyncio.wait_for(changed.wait(), timeout=120)
        return arrived[version]

    await client.start_io(sys.executable, "-m", "kling_compose", "lsp", "--debounce-ms",
                          str(debounce_ms))
    await client.initialize_async(types.InitializeParams(
        capabilities=types.ClientCapabilities(), process_id=os.getpid()))
    client.initialized(types.InitializedParams())
    text = path.read_text(encoding="utf-8")
    start = time.perf_counter()
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(uri=uri, language_id="yaml", version=1, text=text)))
    opened = await wait_for(1) - start
    cycle = _edits(text)
    times = []
    for n in range(edits):
        line, col, end, new = cycle[n % len(cycle)]
        version = n + 2
        sent = time.perf_counter()
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            types.VersionedTextDocumentIdentifier(version=version, uri=uri),
            [types.TextDocumentContentChangePartial(
                range=types.Range(types.Position(line, col), types.Position(line, end)),
                text=new)]))
        times.append(await wait_for(version) - sent)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return opened, times, largest


def _in_process(path: Path, edits: int) -> list[float]:
    """The analysis alone, in this process, on the texts the edits make."""
    from kling_compose.collector import paused
    from kling_compose.lsp.analysis import analyse

    text = path.read_text(encoding="utf-8")
    cycle = _edits(text)
    found = analyse(path, text)  # imports, caches
    times = []
    with paused():  # as the server runs
        for n in range(edits):
            text = _apply(text, cycle[n % len(cycle)])
            start = time.perf_counter()
            found = analyse(path, text, previous=found)
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--kinds", nargs="+", choices=("plain", "templated"),
                        default=("plain", "templated"))
    parser.add_argument("--edits", type=int, default=8)
    parser.add_argument("--debounce-ms", type=int, default=50)
    args = parser.parse_args()
    compile_bench = _compile_bench()
    writers = {"plain": compile_bench.write_plain, "templated": compile_bench.write_templated}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.edits} edits, "
          f"debounce {args.debounce_ms} ms; calibration loop "
          f"{compile_bench.calibration_s():.2f} s")
    print(f"{'kind':<10}{'shots':>7}{'open s':>9}{'edit median s':>15}{'max s':>8}"
          f"{'analysis s':>12}  target")
    for kind in args.kinds:
        for shots in args.sizes:
            path = writers[kind](shots)
            opened, times, _ = asyncio.run(_session(path, args.edits, args.debounce_ms))
            alone = statistics.median(_in_process(path, args.edits))
            median = statistics.median(times)
            target = TARGETS.get(shots)
            verdict = "" if target is None else \
                f"<= {target:g} s {'ok' if median <= target else 'OVER'}"
            print(f"{kind:<10}{shots:>7}{opened:>9.2f}{median:>15.3f}{max(times):>8.3f}"
                  f"{alone:>12.3f}  {verdict}", flush=True)


if __name__ == "__main__":
    main()
