"""bench/lsp.py runs: its edits apply where it means them, and a short session times them."""

from __future__ import annotations

import asyncio

from support.scripts import bench


def test_the_bench_edits_and_times_a_small_storyboard(tmp_path, monkeypatch):
    lsp = bench("lsp")
    compile_bench = lsp._compile_bench()
    monkeypatch.setattr(compile_bench, "OUT", tmp_path)
    path = compile_bench.write_plain(20)
    text = path.read_text(encoding="utf-8")
    cycle = lsp._edits(text)
    assert [label for label, _ in cycle] == ["one shot", "one shot", "one shot, error",
                                             "one shot, fixed", "every shot", "every shot"]
    edited = text
    for _, edit in cycle:
        edited = lsp._apply(edited, edit)
    assert edited == text  # the cycle comes back to where it started
    opened, times, largest, peak, checks = asyncio.run(lsp._session(path, len(cycle), 10))
    assert [label for label, _ in times] == [label for label, _ in cycle]
    assert largest == 1  # the duration of 40 s, and nothing else
    assert opened > 0 and all(seconds > 0 for _, seconds in times)
    assert peak is None or peak > 10
    assert [label for label, _ in checks] == [label for label, _ in cycle]
    assert all(0 < seconds < took for (_, seconds), (_, took) in zip(checks, times))
