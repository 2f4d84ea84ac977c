"""Temporary projects run through the real CLI in-process, with real ffmpeg and SQLite.

Imported as `support.projects` by the tests (and under its old name `_e2e` by tests/e2e), and
loaded from its file by tests/e2e/_full_disk.py, a driver that runs outside pytest: it imports
nothing from the tests, only kling_compose and its dependencies."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from kling_compose.cli import main

PREVIEW = ["--preview-resolution", "144"]  # small clips: the runs stay fast


def chain_storyboard(n: int, prompts: dict[int, str] | None = None, extra: str = "") -> str:
    """n shots of 3 s in one scene, each after the first chained from the one before."""
    prompts = prompts or {}
    lines = ["version: 1", "name: chain", "defaults:", "  duration: 3", "  aspect: '16:9'",
             extra, "scenes:", "  - id: main", "    shots:"]
    for i in range(1, n + 1):
        lines += [f"      - id: s{i}", f"        prompt: {prompts.get(i, f'shot number {i}')}"]
        if i == 1:
            lines.append("        first_frame: assets/start.png")
        else:
            lines.append("        first_frame: { from: previous }")
    return "\n".join(line for line in lines if line) + "\n"


def make_project(root: Path, storyboard: str) -> Path:
    """`root` made a project: the storyboard and assets/start.png (320x180, with structure)."""
    (root / "assets").mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (320, 180))
    for x in range(320):  # a gradient with structure, so frames can be compared
        for y in range(0, 180, 4):
            image.putpixel((x, y), (x % 256, (y * 3) % 256, (x + y) % 256))
    image.save(root / "assets" / "start.png")
    (root / "storyboard.yaml").write_text(storyboard, encoding="utf-8")
    return root


def cli(*args: str, env: dict | None = None):
    """Run kling-compose in-process; returns the click Result."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, env=env)


def run_json(root: Path, *extra: str) -> dict:
    """`run --json` at preview resolution; its summary (exit code 0 or 1, else it fails)."""
    result = cli("run", root, "--json", *PREVIEW, *extra)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def clone_project(root: Path, to: Path) -> Path:
    """What a teammate's `git clone` holds: the storyboard, the lock and the assets."""
    import shutil

    to.mkdir()
    for name in ("storyboard.yaml", "storyboard.lock"):
        if (root / name).exists():  # a project only rehearsed has no lock (issue 26)
            shutil.copy(root / name, to / name)
    shutil.copytree(root / "assets", to / "assets")
    return to
