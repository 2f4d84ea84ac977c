"""Paid results rebuilt from storyboard.lock: the way back when the ledger is gone or damaged.

storyboard.lock (in git) names, for each shot, the cache key it was generated for, the
identities of the inputs it was made from and the sha256 of every take. When the ledger has no
reusable record for a generate task but the lock describes this very task (same cache key,
made from inputs with the same identities as now) and every take is in the store with its
bytes intact, the record is rebuilt from the lock: nothing is paid, and the chain's free work
(frames, uploads, the film) is redone from the restored clips, byte-exactly.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Mapping, NamedTuple

from .reuse import input_digests
from .state import Record
from .store import Store

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def may_restore(record: Record | None) -> bool:
    """Never over a generation the ledger says was submitted and not finished: the next run
    polls it (it may be paid for), whatever the lock holds for the same key."""
    return record is None or record.status == "done" or record.phase in (None, "rejected")


class Fetch(NamedTuple):
    """A take the lock names that is not in the store: fetched from the provider's result
    URL, and trusted only if its bytes hash to the lock's sha256."""

    url: str
    digest: str
    suffix: str


def lock_record(task, entry: dict | None, upstream: Mapping[str, Record], store: Store,
                repair: bool = False) -> tuple[Record | None, str | None, list[Fetch]]:
    """(the rebuilt record, None, takes to fetch) when the lock's entry restores `task` (every
    take in the store, or with a result URL to fetch it from); (None, why not, []) when the
    lock names this task's cache key but cannot be trusted or used; (None, None, []) when the
    lock says nothing about it. `upstream` holds the records (or planned records) of every
    dependency. repair=True removes a damaged object from the store (a run); a plan only
    reads."""
    if task.kind != "generate" or not isinstance(entry, dict) or \
            entry.get("cache_key") != task.cache_key:
        return None, None, []
    if any(d not in upstream for d in task.depends_on):
        return None, None, []  # an input will be made anew: the lock's take was made from another
    digests = entry.get("sha256")
    if not isinstance(digests, list) or not all(isinstance(d, str) and _SHA256.match(d)
                                                for d in digests):
        return None, "the lock's sha256 list is malformed", []
    if len(digests) != task.job.shot.takes:
        return None, (f"the lock holds {len(digests)} takes, the shot asks for "
                      f"{task.job.shot.takes}"), []
    inputs = input_digests(task, upstream)
    recorded = entry.get("inputs", {} if not task.depends_on else None)
    if recorded != inputs:
        return None, ("the lock's take was made from other inputs" if recorded is not None
                      else "the lock (written by an earlier version) does not name the inputs "
                      "the take was made from"), []
    urls = entry.get("result_url")
    urls = urls if isinstance(urls, list) and len(urls) == len(digests) else [None] * len(digests)
    artifacts, fetches = [], []
    for digest, url in zip(digests, urls):
        suffix = store.find(digest, repair=repair)
        if suffix is None:
            if not (isinstance(url, str) and url.startswith(("https://", "http://"))):
                return None, "its clip is not in .kling-compose/objects and the lock has no " \
                    "result URL to fetch it from", []
            suffix = "." + (task.job.shot.output_format or "mp4")
            fetches.append(Fetch(url, digest, suffix))
        artifacts.append((digest, suffix))
    return Record(
        cache_key=task.cache_key, task_id=task.id, kind="generate", status="done",
        shot=task.shot, provider=task.provider, model=task.model,
        provider_task_id=_text(entry.get("task_id")), artifacts=tuple(artifacts),
        inputs=inputs, result={"urls": entry.get("result_url"), "seeds": entry.get("seed"),
                               "restored_from": "storyboard.lock"},
        cost_usd=_money(entry.get("cost_usd")), finished_at=_time(entry.get("created_at")),
    ), None, fetches


def unavailable(fetches: list[Fetch], timeout_s: float = 10.0,
                dead: dict[str, str] | None = None, *, transport=None) -> str | None:
    """Why a take cannot be fetched from its result URL (None: every URL answers). A plan asks
    before it calls a shot restorable: an expired URL means paying again, and the user sees
    that before the run. HEAD first; a host that refuses HEAD is asked for one byte. `dead`
    remembers hosts that did not answer during one plan, so a hundred takes on a gone host
    cost one timeout, not a hundred. `transport`: None asks the network (http.client); a test
    passes httpx.MockTransport. No credential is sent, so redirects are followed (a CDN)."""
    import httpx

    from ..http import client as http_client

    dead = {} if dead is None else dead
    host = ""
    try:
        with http_client(timeout_s=timeout_s, transport=transport,
                         follow_redirects=True) as client:
            for fetch in fetches:
                host = httpx.URL(fetch.url).host
                if host in dead:
                    return dead[host]
                response = client.head(fetch.url)
                if response.status_code in (403, 405, 501):
                    response = client.get(fetch.url, headers={"Range": "bytes=0-0"})
                if response.status_code in (404, 410):
                    return f"result URL expired (HTTP {response.status_code})"
                if response.status_code not in (200, 206):
                    return f"result URL answers HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        dead[host] = f"result URL does not answer ({type(exc).__name__})"
        return dead[host]
    return None


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def _money(value) -> Decimal | None:
    try:
        return Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        return None


def _time(value) -> float | None:
    try:
        return datetime.fromisoformat(value).timestamp() if isinstance(value, str) else None
    except ValueError:
        return None
