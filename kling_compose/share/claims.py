"""Claims in the shared store: two machines running one storyboard pay for each shot once.

Before a run pays for a generation, it claims the task's cache key in the shared store with a
create-only write (`claim-<key>.json`: who, when, which provider). The run that wins generates,
pushes the takes and then `result-<key>.json` (digests, input identities, cost, the provider's
task id), also create-only. A run that finds the claim taken does not submit: it watches the
store for the result, pulls the takes (verified by sha256) and records the shot as restored.
This is the ledger's write-ahead rule (state.db commits a task id before it is sent) made
shared, as Terraform's S3 backend lock is.

As soon as the provider acknowledges the holder's submission, the holder records the task
(`task-<key>-<nonce>.json`: provider, task id, poll handle; the nonce ties it to this claim, so
a record left by an earlier, released claim is never followed). A waiting run that finds it
follows that generation itself (polls the provider with its own key, downloads, verifies,
publishes): a claim whose owner died is taken over by resuming its recorded task, never by
submitting again. A claim whose owner died before any task was recorded is named, not paid
over (see docs/format.md). A holder whose generation ends without anything billable in flight
(refused, failed, or never sent) releases its claim, so a later run may claim it anew.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from pathlib import Path

from ..paths import PROJECT_ID
from ..project.store import Store, file_sha256
from .artifacts import ArtifactStore


def claim_name(cache_key: str) -> str:
    return f"claim-{cache_key}.json"


def task_name(cache_key: str, nonce: str) -> str:
    return f"task-{cache_key}-{nonce}.json"


def result_name(cache_key: str) -> str:
    return f"result-{cache_key}.json"


def owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def project_id(store: Store) -> str:
    """This clone's id (made once, kept in .kling-compose/): a claim it finds with its own id
    is its own, left by an earlier run of it that was killed before it published."""
    import uuid

    path = store.root / PROJECT_ID  # .kling-compose/project-id (paths.ProjectPaths)
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        from ..files import replace_atomically

        path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(path, uuid.uuid4().hex)
        return path.read_text(encoding="utf-8").strip()


def _put_json(remote: ArtifactStore, name: str, data: dict) -> bool:
    fd, temp = tempfile.mkstemp(suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, sort_keys=True)
        return remote.put(Path(temp), name)
    finally:
        Path(temp).unlink(missing_ok=True)


def _get_json(remote: ArtifactStore, name: str) -> dict | None:
    fd, temp = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        remote.get(name, Path(temp))
        data = json.loads(Path(temp).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None
    except (FileNotFoundError, ValueError):
        return None
    finally:
        Path(temp).unlink(missing_ok=True)


def claim(remote: ArtifactStore, store: Store, task) -> tuple[bool, dict]:
    """(True, the claim) when this clone holds the task's claim (now, or from an earlier run
    of it: its own ledger then says whether anything was submitted); (False, the holder's
    claim) when another clone holds it."""
    import uuid

    project = project_id(store)
    mine = {"owner": owner(), "project": project, "provider": task.provider,
            "shot": task.shot, "claimed_at": time.time(), "nonce": uuid.uuid4().hex}
    if _put_json(remote, claim_name(task.cache_key), mine):
        return True, mine
    holder = _get_json(remote, claim_name(task.cache_key)) or {}
    return holder.get("project") == project, holder


def announce(remote: ArtifactStore, task, held: dict, task_id: str, handle: dict) -> None:
    """Record the provider's task for the claim `held`, the moment it is known."""
    nonce = held.get("nonce")
    if isinstance(nonce, str) and nonce:
        _put_json(remote, task_name(task.cache_key, nonce), {
            "provider": task.provider, "provider_task_id": task_id, "handle": handle,
            "owner": held.get("owner"), "submitted_at": time.time()})


def recorded_task(remote: ArtifactStore, task, holder: dict) -> dict | None:
    """The provider task the holder of `holder` recorded, if any (and for this provider)."""
    nonce = holder.get("nonce")
    if not isinstance(nonce, str) or not nonce:
        return None
    data = _get_json(remote, task_name(task.cache_key, nonce))
    if (not data or data.get("provider") != task.provider
            or not isinstance(data.get("provider_task_id"), str)
            or not isinstance(data.get("handle") or {}, dict)):
        return None
    return data


def release(remote: ArtifactStore, task, held: dict) -> None:
    """Give up a claim whose generation ended with nothing billable in flight; only while
    the claim in the store is still `held` (its nonce), never another run's."""
    current = _get_json(remote, claim_name(task.cache_key)) or {}
    if current.get("nonce") == held.get("nonce") and held.get("nonce"):
        nonce = held["nonce"]
        remote.delete(task_name(task.cache_key, nonce))
        remote.delete(claim_name(task.cache_key))


def publish(remote: ArtifactStore, store: Store, cache_key: str, record) -> None:
    """Push the takes of a finished generation, then its result record (create-only)."""
    for digest, suffix in record.artifacts:
        remote.put(store.path(digest, suffix), digest + suffix)
    _put_json(remote, result_name(cache_key), {
        "artifacts": [list(a) for a in record.artifacts], "inputs": record.inputs or {},
        "result": record.result or {}, "provider_task_id": record.provider_task_id,
        "cost_usd": None if record.cost_usd is None else str(record.cost_usd)})


class BadRecord(Exception):
    """A record in the store that does not parse as this project writes it: named, ignored."""


def _takes(value) -> list[tuple[str, str]] | None:
    """A result record's artifacts as written by `publish`: [[sha256, ".suffix"], ...]."""
    if not isinstance(value, list) or not value:
        return None
    takes = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, str)
                                                                    for x in item)):
            return None
        digest, suffix = item
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or \
                not (suffix.startswith(".") and 1 < len(suffix) <= 8 and suffix[1:].isalnum()):
            return None
        takes.append((digest, suffix))
    return takes


def published(remote: ArtifactStore, store: Store, task) -> dict | None:
    """The result another run published for this task, with its takes pulled into the local
    store and verified; None while there is none (or its bytes do not match); BadRecord
    when the record there does not parse (it is never used)."""
    name = result_name(task.cache_key)
    data = _get_json(remote, name)
    if not data:
        return None
    takes = _takes(data.get("artifacts"))
    if takes is None or not isinstance(data.get("inputs", {}), dict) or \
            not isinstance(data.get("result") or {}, dict):
        raise BadRecord(f"{name} in {getattr(remote, 'url', 'the store')} does not parse as "
                        "a result record (artifacts [[sha256, suffix], ...]); it is ignored")
    data = {**data, "artifacts": [list(t) for t in takes]}
    for digest, suffix in takes:
        if store.find(digest) is not None:
            continue
        temp = store.temp_path(suffix)
        try:
            remote.get(digest + suffix, temp)
            if file_sha256(temp) != digest:
                return None
            store.adopt(temp)
        except FileNotFoundError:
            return None
        finally:
            temp.unlink(missing_ok=True)
    return data


def publish_missing(remote: ArtifactStore, store: Store, records) -> int:
    """Publish the result of every finished generation in `records` the store has no result
    for (one listing): a holder killed between finishing and publishing left runs waiting on
    it; its next run, which finds the shot cached, publishes it then. Returns how many."""
    names = remote.listing()
    count = 0
    for record in records:
        if result_name(record.cache_key) in names or not record.artifacts:
            continue
        if all(store.find(digest) is not None for digest, _ in record.artifacts):
            publish(remote, store, record.cache_key, record)
            count += 1
    return count
