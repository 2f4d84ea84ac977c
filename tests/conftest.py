"""Shared fixtures of every test folder: the real CLI in-process, the provider simulator.

Plain helpers (projects, the CLI as a function, bench scripts) are in the package
tests/support (`from support.projects import make_project`): pytest puts tests/ on sys.path
for this rootdir conftest. Fixtures a folder needs alone live in that folder's conftest.py.

`quick_retries`: every retry wait of the engine (backoff and Retry-After) 100 times shorter,
for runs on the real clock (the CLI in-process); tests/e2e/conftest.py applies it to every
end-to-end test. Tests that pass run_plan a virtual `sleep` need it not.

Simulator fixtures (override `sim_faults` in a module to arm faults before the start):

- `sim_faults`: the simulator's fault plan; generations take 0.05 s;
- `sim`: a started Simulator on 127.0.0.1 accepting any non-empty key, one per test;
- `sim_env`: the environment pointing the CLI at `sim` (URLs, keys), polling every 0.05 s;
- `sim_environ`: `sim_env` set in os.environ for the test (KLING_COMPOSE_STORE removed), for
  code that reads the process environment (`run_cli`, Settings.from_environment()).

In-process: no socket, no real waiting (simulator/transport.py; the engine's sleeps move the
simulator's clock):

- `sim_clock`: a support.clock.VirtualClock (its `sleeps`: what the run waited);
- `sim_in_process`: a Simulator on `sim_clock` with `sim_faults`, started with listen=False:
  reached only through `sim_in_process.transport()`;
- `run_in_process`: run_in_process(plan, options=None, reporter=None, environ=None,
  **settings) -> RunResult, the engine's run_plan against `sim_in_process` (Settings from its
  env() updated by `environ`; other Settings fields by keyword).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from kling_compose.cli import main
from kling_compose.engine import retry
from kling_compose.simulator import Faults, Simulator
from support.clock import VirtualClock


def _runner() -> CliRunner:
    """A CliRunner that keeps stderr apart from stdout on every click version."""
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:  # click < 8.2
        return CliRunner(mix_stderr=False)
    return CliRunner()


@pytest.fixture
def run_cli():
    """run_cli(args, cwd=None) -> (exit_code, stdout, stderr) of `kling-compose ARGS` run in cwd.

    An exception other than SystemExit escaping the command is re-raised: it is a bug."""

    def run(args, cwd=None):
        old = os.getcwd()
        if cwd is not None:
            os.chdir(cwd)
        try:
            result = _runner().invoke(main, [str(a) for a in args], catch_exceptions=True)
        finally:
            os.chdir(old)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result.exit_code, result.stdout, result.stderr

    return run


QUICK_RETRIES = retry.Waits(scale=0.01)  # 1 s of backoff waits 10 ms; at most 0.3 s


@pytest.fixture
def quick_retries(monkeypatch) -> retry.Waits:
    """The engine's retry waits (engine/retry.py WAITS) 100 times shorter for the test: a
    run that retries an unreachable host waits ~0.1 s instead of up to 15 s. What is retried,
    how often and in what order is unchanged."""
    monkeypatch.setattr(retry, "WAITS", QUICK_RETRIES)
    return QUICK_RETRIES


@pytest.fixture
def sim_faults() -> Faults:
    """The fault plan of `sim`: generations take 0.05 s; arm faults on it (or on sim.faults)."""
    return Faults(task_seconds=0.05)


@pytest.fixture
def sim(sim_faults) -> Iterator[Simulator]:
    """A started simulator of every provider on an ephemeral port of 127.0.0.1, accepting any
    non-empty key (sim.keys is empty); stopped, with its files deleted, after the test."""
    with Simulator(faults=sim_faults) as simulator:
        yield simulator


@pytest.fixture
def sim_env(sim) -> dict[str, str]:
    """The environment for `cli(..., env=sim_env)`: every provider's URL and key pointing at
    `sim`, and polls every 0.05 s."""
    return dict(sim.env()) | {"KLING_COMPOSE_POLL_SECONDS": "0.05"}


@pytest.fixture
def sim_environ(sim_env, monkeypatch) -> dict[str, str]:
    """`sim_env` set in the process environment for the test (restored after), with no
    KLING_COMPOSE_STORE of the machine's; returns sim_env."""
    for name, value in sim_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KLING_COMPOSE_STORE", raising=False)
    return sim_env


@pytest.fixture
def sim_clock() -> VirtualClock:
    """Virtual time for `sim_in_process` and the runs against it."""
    return VirtualClock()


@pytest.fixture
def sim_in_process(sim_faults, sim_clock) -> Iterator[Simulator]:
    """A simulator with no socket, on `sim_clock`, accepting any non-empty key; requests
    reach it through sim_in_process.transport() only (its base URL resolves nowhere)."""
    simulator = Simulator(faults=sim_faults, clock=sim_clock).start(listen=False)
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture
def run_in_process(sim_in_process, sim_clock):
    """run_in_process(plan, options=None, reporter=None, environ=None, **settings): run_plan
    against `sim_in_process` through its transport, on `sim_clock` (instant), with Settings
    read from the simulator's env() (keys and URLs of every provider) updated by `environ`,
    and `settings` overriding other fields (retries=2, poll_timeout_s=...)."""
    from kling_compose import RunOptions, run_plan
    from kling_compose.settings import Settings

    def run(plan, options=None, reporter=None, environ=None, **settings):
        configured = Settings.from_environment(sim_in_process.env() | dict(environ or {}),
                                               **settings)
        return run_plan(plan, options or RunOptions(), reporter, configured,
                        sim_in_process.transport(), sim_clock.sleep)

    return run
