"""storyboard.lock: what was generated for each shot, for git.

JSON with sorted keys and one entry per shot, written atomically. Every value comes from the
state ledger (times are when a result was made, not when the run happened), so a run that
changes nothing leaves the file byte-identical and a one-shot change is a small diff.
Shots not run this time keep their previous entry; shots no longer in the storyboard go.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from .state import State

LOCK_NAME = "storyboard.lock"
LOCK_VERSION = 1


def lock_path(root: Path) -> Path:
    return root / LOCK_NAME


def read_lockfile(root: Path) -> dict:
    """The lock file's content, or an empty lock when there is none (or it is unreadable)."""
    try:
        data = json.loads(lock_path(root).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"version": LOCK_VERSION, "shots": {}, "outputs": {}}
    return data if isinstance(data, dict) else {"version": LOCK_VERSION, "shots": {}, "outputs": {}}


def write_lockfile(plan, state: State) -> None:
    """Update storyboard.lock from the state of every shot and output in the plan."""
    root = plan.resolved.storyboard.root
    old = read_lockfile(root)
    shots, outputs = {}, {}
    for task_id in plan.order:
        task = plan.tasks[task_id]
        if task.kind not in ("generate", "assemble"):
            continue
        record = state.get(task.cache_key)
        entry = _entry(task, record) if record is not None and record.status == "done" else None
        if task.kind == "generate":
            entry = entry or old.get("shots", {}).get(task.shot)
            if entry:
                shots[task.shot] = entry
        else:
            entry = entry or old.get("outputs", {}).get(task.params["path"])
            if entry:
                outputs[task.params["path"]] = entry
    data = {"version": LOCK_VERSION, "storyboard": plan.resolved.storyboard.name,
            "shots": shots, "outputs": outputs}
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    target = lock_path(root)
    if target.is_file() and target.read_text(encoding="utf-8") == text:
        return
    fd, name = tempfile.mkstemp(dir=root, prefix=".storyboard.lock.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(name, target)


def _entry(task, record) -> dict:
    result = record.result or {}
    entry = {
        "cache_key": task.cache_key,
        "sha256": [digest for digest, _ in record.artifacts],
        "created_at": _iso(record.finished_at),
    }
    if task.kind == "generate":
        entry.update({
            "provider": task.provider,
            "model": task.job.model.model_id,
            "task_id": record.provider_task_id,
            "result_url": result.get("urls"),
            "seed": result.get("seeds"),
            "cost_usd": None if record.cost_usd is None else f"{record.cost_usd:.3f}",
            "pick": task.job.shot.pick,
        })
    else:
        entry["duration_s"] = result.get("duration_s")
    return entry


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")
