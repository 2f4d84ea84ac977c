"""The cyclic garbage collector is off while a command compiles and on while a run runs
(kling_compose/collector.py), and a command leaves the interpreter's setting as it found it."""

from __future__ import annotations

import gc

import kling_compose.engine.run as engine_run
import kling_compose.pipeline as pipeline
from kling_compose.collector import paused, running

from _e2e import chain_storyboard, run_json, cli


def test_paused_and_running_nest_and_restore():
    assert gc.isenabled()
    with paused():
        assert not gc.isenabled()
        with running():
            assert gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()


def test_a_command_compiles_with_the_collector_off_and_runs_with_it_on(project, monkeypatch):
    seen: dict[str, bool] = {}
    load, run = pipeline.load_resolved, engine_run.asyncio.run

    def load_resolved(*args, **kwargs):
        seen["compile"] = gc.isenabled()
        return load(*args, **kwargs)

    def asyncio_run(coroutine):
        seen["run"] = gc.isenabled()
        return run(coroutine)

    monkeypatch.setattr(pipeline, "load_resolved", load_resolved)
    monkeypatch.setattr(engine_run.asyncio, "run", asyncio_run)
    root = project(chain_storyboard(2))
    assert run_json(root)["generated"] == 2
    assert seen == {"compile": False, "run": True}
    assert gc.isenabled()
    seen.clear()
    assert cli("validate", root).exit_code == 0 and seen == {"compile": False}
    assert gc.isenabled()
