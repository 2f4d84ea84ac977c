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
