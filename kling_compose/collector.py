"""When Python's cyclic garbage collector runs.

A command compiles one large, mostly acyclic object graph (the parsed document, the resolved
storyboard, the jobs, the plan) and then exits. The collector, triggered every few hundred
allocations, walks that growing graph again and again and finds nothing to free: at 10,000
shots it was 2.5 s of validate's 4.3 s and 3.7 s of plan's 7.3 s (docs/benchmarks.md). So a
command runs with the collector off (reference counting still frees nearly everything), and the
phases that run for minutes and churn short-lived cyclic objects (the asyncio run, the
simulator's server) switch it back on. Both restore the previous state, so a command invoked
in-process (tests, CliRunner) leaves the interpreter as it found it.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def _switched(on: bool) -> Iterator[None]:
    was = gc.isenabled()
    (gc.enable if on else gc.disable)()
    try:
        yield
    finally:
        (gc.enable if was else gc.disable)()


def paused():
    """The collector off for a batch command."""
    return _switched(False)


def running():
    """The collector on for a long-running phase inside a paused command."""
    return _switched(True)
