"""Shared fixtures: run the real CLI in-process."""

from __future__ import annotations

import inspect
import os

import pytest
from click.testing import CliRunner

from kling_compose.cli import main


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
