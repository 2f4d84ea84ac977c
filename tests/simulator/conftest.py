"""Simulator fixtures: a fresh server per test (faults are per simulator), a sync httpx client."""

from __future__ import annotations

import httpx
import pytest

from kling_compose.simulator import Faults, Simulator

from .kit import KEYS, make_image


@pytest.fixture
def faults() -> Faults:
    """The simulator's fault plan; generations take 0.05 s unless a test changes it."""
    return Faults(task_seconds=0.05)


@pytest.fixture
def sim(faults):
    """A running Simulator on an ephemeral port, accepting only the keys in kit.KEYS."""
    with Simulator(keys=KEYS, faults=faults) as simulator:
        yield simulator


@pytest.fixture(scope="session")
def client():
    """A plain synchronous httpx client (one per run: building one loads certificates)."""
    with httpx.Client(timeout=10) as c:
        yield c


@pytest.fixture(scope="session")
def png() -> bytes:
    """A 320x180 PNG with shapes: the usual first frame."""
    return make_image()


@pytest.fixture(scope="session")
def png_last() -> bytes:
    """A different 320x180 PNG: the usual last frame."""
    return make_image(hue=128)
