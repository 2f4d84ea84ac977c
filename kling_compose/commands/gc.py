"""`kling-compose gc`: remove stored objects nothing needs any more.

Kept: every take and film `storyboard.lock` or a profile's `storyboard.<profile>.lock` names
(paid clips travel with the project), and every artifact of a ledger row whose cache key is in one of the given plans (the current
storyboard as the last run ran it, and as it would run with no flags). Everything else under
.kling-compose/objects (earlier takes of changed shots, old films, frames of deleted chains)
goes; the ledger rows that named them then read as `missing`, made again if ever needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..paths import ProjectPaths
from ..project.lockfile import all_locks
from ..project.state import State, state_path


@dataclass(frozen=True, slots=True)
class Garbage:
    files: tuple[Path, ...]
    bytes: int
    kept: int  # objects kept


def find_garbage(plans) -> Garbage:
    root = plans[0].resolved.storyboard.root
    objects = ProjectPaths(root).objects
    keep = _lock_digests(root)
    path = state_path(root)
    if path.is_file():
        state = State(path, readonly=True)
        try:
            for plan in plans:
                for task in plan.tasks.values():
                    record = state.get(task.cache_key)
                    if record is not None:
                        keep |= {digest for digest, _ in record.artifacts}
        finally:
            state.close()
    files, size, kept = [], 0, 0
    if objects.is_dir():
        for file in sorted(objects.glob("*/*")):
            digest = file.name.split(".", 1)[0]
            if digest in keep:
                kept += 1
                continue
            files.append(file)
            size += file.stat().st_size
    return Garbage(tuple(files), size, kept)


def collect(garbage: Garbage) -> None:
    for file in garbage.files:
        try:
            file.unlink(missing_ok=True)
        except OSError as exc:  # a read-only project: say what could not be removed
            from ..errors import UserError

            root = file.parents[3]  # <root>/.kling-compose/objects/ab/<file>
            raise UserError.single(
                f"could not remove {ProjectPaths(root).shown(file)}: {exc.strerror or exc}",
                hint="fix the folder's permissions (or free it from a read-only mount) and "
                     "run `kling-compose gc` again; nothing the lock or the plan needs was "
                     "touched") from None
        try:
            file.parent.rmdir()  # the two-letter folder, once empty
        except OSError:
            pass


def _lock_digests(root: Path) -> set[str]:
    """Every take and film any lock names: storyboard.lock and each profile's."""
    digests: set[str] = set()
    # every storyboard's and profile's lock in the folder, and the rehearsal records
    entries = [e for lock in all_locks(root) for e in lock.entries()]
    for entry in entries:
        values = entry.get("sha256")
        if isinstance(values, list):
            digests |= {v for v in values if isinstance(v, str)}
    return digests
