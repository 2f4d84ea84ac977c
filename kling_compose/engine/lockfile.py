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
from .store import current_umask

LOCK_NAME = "storyboard.lock"
LOCK_VERSION = 1


def lock_path(root: Path) -> Path:
    return root / LOCK_NAME


def check_lockfile(root: Path) -> None:
    """A lock file that cannot be read back is refused before the run starts (after it, the
    run would fail at the end, with every clip paid for): a UserError naming the file."""
    from ..errors import UserError

    path = lock_path(root)
    if not path.is_file():
        return
    hint = ("restore it from git (`git checkout storyboard.lock`), or move it aside: the next "
            "run writes it anew from .kling-compose/state.db")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise UserError.single(f"{path.name} is not UTF-8 text", hint=hint) from None
    except ValueError as exc:
        raise UserError.single(f"{path.name} is not valid JSON ({exc})", hint=hint) from None
    except OSError as exc:
        raise UserError.single(f"{path.name} cannot be read ({exc.strerror})", hint=hint) \
            from None
    sections = ("shots", "outputs")
    if not isinstance(data, dict) or not all(
            isinstance(data.get(k, {}), dict) and
            all(isinstance(v, dict) for v in data.get(k, {}).values()) for k in sections):
        raise UserError.single(f"{path.name} does not have the shape of a kling-compose lock "
                               "file (an object with 'shots' and 'outputs' objects)", hint=hint)


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
    if target.is_file() and target.read_bytes() == text.encode("utf-8"):
        return
    fd, name = tempfile.mkstemp(dir=root, prefix=".storyboard.lock.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(name, 0o666 & ~current_umask())  # as the user's other files, not mkstemp's 0600
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
            # the identities of what the takes were made from: a clone or a rebuilt ledger
            # restores them only for the very same inputs (engine/restore.py)
            "inputs": record.inputs or {},
        })
    else:
        entry["duration_s"] = result.get("duration_s")
    # the request and input identities it was made from: `plan` says what changed since
    entry["made_from"] = task.made_from
    return entry


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")
