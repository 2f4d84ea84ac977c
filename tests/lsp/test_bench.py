"""bench/lsp.py runs: its edits apply where it means them, and a short session times them on
the text it means (the server's diagnostics for each edit are the in-process check's)."""

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
    session = asyncio.run(lsp._session(path, 2 * len(cycle), 10))
    assert [label for label, _ in session.times] == [label for label, _ in cycle] * 2
    assert session.problems == [0, 0, 1, 0, 0, 0] * 2  # the duration of 40 s, then none
    assert lsp._in_process(path, 2 * len(cycle))[1] == session.problems
    assert session.opened > 0 and all(seconds > 0 for _, seconds in session.times)
    assert session.peak_mib is None or session.peak_mib > 10
    assert all(0 < check < took for (_, check), (_, took) in
               zip(session.checks, session.times))
