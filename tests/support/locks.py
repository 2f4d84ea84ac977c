"""A lock file as tests read it: format 2's lines (or format 1's object) as one mapping in
format 1's shape, each shot's and film's newest entry: {"version", "storyboard", "shots":
{name: entry}, "outputs": {path: entry}}. Written back with json.dumps it is a format 1 lock,
which kling-compose still reads."""

from __future__ import annotations

import json
from pathlib import Path

from kling_compose.project.lockfile import parse_lock


def read_lock(path: Path) -> dict:
    text = Path(path).read_text(encoding="utf-8")
    lock = parse_lock(text)
    header = json.loads(text.splitlines()[0]) if text.startswith("{\"kling-compose-lock") else {}
    return {"version": lock.version, "storyboard": lock.storyboard,
            **({"profile": header["profile"]} if "profile" in header else {}),
            "shots": dict(lock.shots), "outputs": dict(lock.outputs)}


def rehearsal_lock(root: Path, name: str = "storyboard.lock") -> Path:
    """Where a preview run records its results (never the committed lock: issue 26)."""
    return Path(root) / ".kling-compose" / f"rehearsal.{name}"
