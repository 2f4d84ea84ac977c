"""Fixture clips generated with the bundled ffmpeg, once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
from _mediakit import make_clip, make_image


@pytest.fixture(scope="session")
def clipdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def bframe_clip(clipdir) -> Path:
    return make_clip(clipdir / "bframes.mp4", seconds=3.0, bframes=3)


@pytest.fixture(scope="session")
def audio_longer_clip(clipdir) -> Path:
    return make_clip(clipdir / "audio_longer.mp4", seconds=2.0, audio_s=3.5)


@pytest.fixture(scope="session")
def short_clip(clipdir) -> Path:
    return make_clip(clipdir / "short.mp4", seconds=0.5)


@pytest.fixture(scope="session")
def one_frame_clip(clipdir) -> Path:
    return make_clip(clipdir / "one_frame.mp4", seconds=1 / 24, audio=False)


@pytest.fixture(scope="session")
def gop2_clip(clipdir) -> Path:
    return make_clip(clipdir / "gop2.mp4", size="160x120", seconds=10.0, gop=48)


@pytest.fixture(scope="session")
def gop10_clip(clipdir) -> Path:
    return make_clip(clipdir / "gop10.mp4", size="160x120", seconds=10.0, gop=240)


@pytest.fixture(scope="session")
def clip_1080p(clipdir) -> Path:
    return make_clip(clipdir / "hd.mp4", size="1920x1080", seconds=10.0, gop=48)


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("images")
    return make_image(d / "first.png", (240, 160), 1), make_image(d / "last.png", (200, 200), 2)
