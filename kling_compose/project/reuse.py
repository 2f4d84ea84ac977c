"""What a finished result hands on, and when it may be reused: content identities.

A record is reused only if the identities its inputs had when it was made equal what the
upstream tasks hand on now (generation is not deterministic: an equal cache key is not enough).
Pure functions of ledger records; `decide.py` applies them to a plan.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Mapping

from .state import Record

if TYPE_CHECKING:
    from ..plan import Task

# work whose result is known from what it is made of: a frame, an upload, an element created
# at the provider from its images (a new element from the same images is the same element),
# a voice made of its sample
DERIVED = ("extract_frame", "upload", "element", "voice")

Identity = Callable[[Record, int], "str | None"]


def handed_on(record: Record, pick: int = 1) -> str | None:
    """The content identity a finished task hands to the tasks that need it.

    A clip or a film: its sha256. A frame or an upload: a digest of what it was made from
    (its cache key and its inputs' identities), known before it runs: frames are extracted
    byte-exactly and an upload carries its source's bytes, so extracting again or uploading
    again (an expired upload URL, a ledger rebuilt from storyboard.lock) leaves every shot
    made from it reusable."""
    if record.kind in DERIVED:
        return derived_identity(record.kind, record.cache_key, record.inputs or {})
    if not record.artifacts:
        return None
    index = pick - 1 if record.kind == "generate" else 0
    return record.artifacts[index][0] if index < len(record.artifacts) else None


def derived_identity(kind: str, cache_key: str, inputs: Mapping[str, str | None]) -> str:
    from ..plan import hash_key

    return "~" + hash_key(kind, cache_key, dict(inputs))


def _legacy_handed_on(record: Record, pick: int = 1) -> str | None:
    """What ledgers before content identities recorded: an upload's URL, a frame's sha256."""
    if record.kind == "upload":
        return record.reference
    if record.kind == "extract_frame":
        return record.artifacts[0][0] if record.artifacts else None
    return handed_on(record, pick)


def is_reusable(task: Task, record: Record | None, upstream: Mapping[str, Record]) -> bool:
    """A finished record whose inputs had the same content as the upstream results now."""
    if record is None or record.status != "done":
        return False
    inputs = record.inputs or {}
    return inputs == input_digests(task, upstream) or \
        inputs == input_digests(task, upstream, _legacy_handed_on)


def input_digests(task: Task, upstream: Mapping[str, Record],
                  identity: Identity = handed_on) -> dict[str, str | None]:
    """{dependency task id: its content identity} for a task whose dependencies are known."""
    return {dep: identity(upstream[dep], task.pick(dep)) for dep in task.depends_on}


def planned(task: Task, upstream: Mapping[str, Record]) -> Record:
    """The record a free derived task (a frame, an upload) will have: its identity is known
    from its inputs before it runs."""
    return Record(cache_key=task.cache_key, task_id=task.id, kind=task.kind, status="planned",
                  inputs=input_digests(task, upstream))


def expired(task: Task, record: Record, now: float | None = None) -> bool:
    """An upload older than its provider keeps uploaded files: its URL may be gone, so it is
    uploaded again (free) before a generation sends it."""
    if task.kind != "upload" or record.finished_at is None or task.provider is None:
        return False
    from ..providers import PROVIDERS

    provider = PROVIDERS.get(task.provider)
    ttl = provider.upload_ttl_s if provider is not None else None
    return ttl is not None and (time.time() if now is None else now) - record.finished_at > ttl


def in_flight(record: Record | None) -> bool:
    """This project's own submission that has not finished: it is resumed, never claimed."""
    return record is not None and record.status != "done" and \
        record.phase in ("submitting", "submitted")
