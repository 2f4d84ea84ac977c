"""The end-to-end tests' helpers, under the name they import them by (`from _e2e import cli`).

The code is tests/support/projects.py, which the engine tests and tests/test_plan.py share;
pytest's prepend import mode makes this folder (for its test modules) and tests/ (for the
rootdir conftest) importable, so both names resolve without touching sys.path."""

from __future__ import annotations

from support.projects import PREVIEW, chain_storyboard, cli, clone_project, make_project, run_json

__all__ = ["PREVIEW", "chain_storyboard", "cli", "clone_project", "make_project", "run_json"]
