"""What the last run was asked for (`.kling-compose/last-run.json`), and whether a run is
working on the project now (it holds `run.lock`): project state `status`, `report` and the
commands that follow a run read."""

from __future__ import annotations

import fcntl
import json
import os

from ..files import replace_atomically
from ..paths import ProjectPaths


def last_run(root, profile: str | None = None, stem: str = "storyboard") -> dict:
    """What the last `run` (of the profile) was asked for ({"provider",
    "preview_resolution"}), or {}: `status` shows the project as that run left it, whatever
    flags it is given."""
    try:
        data = json.loads(ProjectPaths(root, profile, stem).last_run.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    provider, side = data.get("provider"), data.get("preview_resolution")
    from ..settings import PROVIDER_NAMES

    return {"provider": provider if provider in PROVIDER_NAMES else None,
            "preview_resolution": side if isinstance(side, int) and 72 <= side <= 2160 else None}


def record_run(plan) -> None:
    """Remember what this run was asked for (written atomically)."""
    text = json.dumps({"provider": plan.provider, "preview_resolution": plan.preview_short_side})
    board = plan.resolved.storyboard
    replace_atomically(ProjectPaths(board.root, board.profile, board.path.stem).last_run, text)


def run_in_progress(root) -> bool:
    """True while a `kling-compose run` holds this project's run lock."""
    path = ProjectPaths(root).run_lock
    try:  # only read (a read-only project), never through a link (a run refuses one)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
