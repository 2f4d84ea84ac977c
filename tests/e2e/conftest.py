"""End-to-end fixtures: temporary projects (helpers: tests/support/projects.py, also `_e2e`)."""

import pytest
from support.projects import make_project


@pytest.fixture
def project(tmp_path):
    """A function that writes a project with the given storyboard (and assets/start.png)."""
    return lambda storyboard: make_project(tmp_path / "film", storyboard)
