"""Fixtures for the provider tests; the factories live in providers/factory.py."""

from __future__ import annotations

import pytest

from .factory import make_resolved


@pytest.fixture
def compile_one():
    """compile_one(shot, provider=None) -> the Job of that single shot."""
    from kling_compose.compiler import compile_shots

    def run(shot, provider=None):
        return compile_shots(make_resolved(shot), provider)[0]

    return run
