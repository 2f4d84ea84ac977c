"""End-to-end fixtures: temporary projects (helpers: tests/support/projects.py, also `_e2e`)."""

import pytest
from support.projects import make_project


@pytest.fixture
def project(tmp_path):
    """A function that writes a project with the given storyboard (and assets/start.png)."""
    return lambda storyboard: make_project(tmp_path / "film", storyboard)


@pytest.fixture(autouse=True)
def _quick_retries(quick_retries):
    """Every end-to-end test runs with the retry waits shortened (tests/conftest.py): the runs
    are real, their backoff need not be (an unreachable host cost a test ~7 s of waiting).
    Runs in a child process (`python -m kling_compose`) keep the real waits."""
