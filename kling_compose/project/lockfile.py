"""storyboard.lock: what was generated for each shot, for git.

JSON with sorted keys and one entry per shot, written atomically. Every value comes from the
state ledger (times are when a result was made, not when the run happened), so a run that
changes nothing leaves the file byte-identical and a one-shot change is a small diff.
Shots not run this time keep their previous entry; shots no longer in the storyboard go.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..files import replace_atomically
from ..paths import LOCK, ProjectPaths

if TYPE_CHECKING:  # the ledger reads the lock (state.py, taking over a damaged one)
    from .state import State

LOCK_NAME = LOCK
LOCK_VERSION = 1


def lock_path(root: Path, profile: str | None = None) -> Path:
    return ProjectPaths(root, profile).lock


def lock_profiles(root: Path) -> list[str | None]:
    """The profiles whose lock is in the project: None for storyboard.lock, then each
    storyboard.<profile>.lock by name (a folder's `gc`, `push` and `pull` keep them all)."""
    try:
        found: list[str | None] = [None] if (root / LOCK_NAME).is_file() else []
        for path in sorted(root.glob("storyboard.*.lock")):
            name = path.name[len("storyboard."):-len(".lock")]
            if name and "." not in name and path.is_file():
                found.append(name)
    except (OSError, ValueError):  # a path too long, a loop of links: reading says why
        return [None]
    return found


MAX_LOCK_BYTES = 128 * 1024 * 1024  # far above any storyboard's lock; /dev/zero is not one
MAX_DEPTH = 200  # a lock nests a few levels (shots, entry, made_from, provider_options):
# 100,000 is an attack; every reader (json, comparisons) recurses well within 200


class _Unusable(ValueError):
    """A lock file that is not a bounded regular file of shallow JSON."""


def _load(path: Path, hint: str | None = None):
    """The lock's JSON, read as a regular file of bounded size (files.read_bytes: UserError
    otherwise) and bounded nesting (_Unusable; UnicodeDecodeError, ValueError)."""
    from ..files import read_bytes

    text = read_bytes(path, path.name, what=path.name, limit=MAX_LOCK_BYTES,
                      hint=hint).decode("utf-8")
    if _nesting(text) > MAX_DEPTH:
        raise _Unusable(f"nests deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text)
    except RecursionError:
        raise _Unusable(f"nests deeper than {MAX_DEPTH} levels") from None


def _nesting(text: str) -> int:
    """How deep the brackets of a JSON text nest (strings skipped), without recursing."""
    import re

    depth = deepest = 0
    for token in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        char = token.group()
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def check_lockfile(root: Path, profile: str | None = None) -> None:
    """A lock file that cannot be read back is refused before the run starts (after it, the
    run would fail at the end, with every clip paid for): a UserError naming the file."""
    from ..errors import UserError

    path = lock_path(root, profile)
    if not (path.exists() or path.is_symlink()):
        return
    hint = (f"restore it from git (`git checkout {path.name}`), or move it aside: the next "
            "run writes it anew from .kling-compose/state.db")
    try:
        data = _load(path, hint)  # not a regular file, too large: read_bytes's UserError
    except UnicodeDecodeError:
        raise UserError.single(f"{path.name} is not UTF-8 text", hint=hint) from None
    except _Unusable as exc:
        raise UserError.single(f"{path.name} {exc}", hint=hint) from None
    except ValueError as exc:
        raise UserError.single(f"{path.name} is not valid JSON ({exc})", hint=hint) from None
    sections = ("shots", "outputs")
    if not isinstance(data, dict) or not all(
            isinstance(data.get(k, {}), dict) and
            all(isinstance(v, dict) for v in data.get(k, {}).values()) for k in sections):
        raise UserError.single(f"{path.name} does not have the shape of a kling-compose lock "
                               "file (an object with 'shots' and 'outputs' objects)", hint=hint)


@dataclass(frozen=True, slots=True)
class Lock:
    """storyboard.lock, parsed once: each shot's and each output's entry (a JSON object from
    the ledger's values). A section that is not an object reads as empty, as does a lock that
    cannot be read (`check_lockfile` says why before a run)."""

    shots: Mapping[str, Any] = field(default_factory=dict)
    outputs: Mapping[str, Any] = field(default_factory=dict)
    version: Any = LOCK_VERSION

    def shot(self, name: str | None) -> dict | None:
        """The entry of a shot, if the lock holds one that is an object."""
        entry = self.shots.get(name) if name is not None else None
        return entry if isinstance(entry, dict) else None

    def output(self, path: str) -> dict | None:
        entry = self.outputs.get(path)
        return entry if isinstance(entry, dict) else None

    def entries(self) -> list[dict]:
        """Every entry that is an object, shots then outputs."""
        return [e for e in (*self.shots.values(), *self.outputs.values()) if isinstance(e, dict)]


def read_lockfile(root: Path, profile: str | None = None) -> Lock:
    """The lock file's content (storyboard.lock, or a profile's storyboard.<profile>.lock), or
    an empty lock when there is none (or it is unreadable)."""
    from ..errors import UserError

    try:
        data = _load(lock_path(root, profile))
    except (UserError, ValueError):  # none, or unreadable: check_lockfile says why
        return Lock()
    if not isinstance(data, dict):
        return Lock()
    shots, outputs = data.get("shots", {}), data.get("outputs", {})
    return Lock(shots if isinstance(shots, dict) else {},
                outputs if isinstance(outputs, dict) else {}, data.get("version"))


def write_lockfile(plan, state: State) -> None:
    """Update storyboard.lock from the state of every shot and output in the plan."""
    root, profile = plan.resolved.storyboard.root, plan.resolved.storyboard.profile
    old = read_lockfile(root, profile)
    shots, outputs = {}, {}
    for task_id in plan.order:
        task = plan.tasks[task_id]
        if task.kind not in ("generate", "assemble"):
            continue
        record = state.get(task.cache_key)
        entry = _entry(task, record) if record is not None and record.status == "done" else None
        if task.kind == "generate":
            entry = entry or old.shots.get(task.shot)
            if entry:
                shots[task.shot] = entry
        else:
            entry = entry or old.outputs.get(task.assemble_params.path)
            if entry:
                outputs[task.assemble_params.path] = entry
    data = {"version": LOCK_VERSION, "storyboard": plan.resolved.storyboard.name,
            **({"profile": profile} if profile is not None else {}),
            "shots": shots, "outputs": outputs}
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    target = lock_path(root, profile)
    if target.is_file() and target.read_bytes() == text.encode("utf-8"):
        return
    # the temp file's name is the one .gitignore (commands/scaffold.py) and run's clean-up know
    replace_atomically(target, text, prefix=f".{target.name}.")



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
            # restores them only for the very same inputs (project/restore.py)
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
