"""The SQLite ledger at .kling-compose/state.db: what was run, paid for and produced.

One row per cache key. For a remote generation the provider task id is written (and committed)
*before* the request is sent, so a run that dies mid-request resumes by polling that id instead
of paying again. WAL mode keeps readers (`status`, `plan`) working while a run writes.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    cache_key TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    shot TEXT,
    provider TEXT,
    model TEXT,
    status TEXT NOT NULL,          -- running | submitted | done | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    provider_task_id TEXT,
    phase TEXT,                    -- remote: submitting | submitted | rejected
    handle TEXT,                   -- remote: JSON the provider needs to find the task again
    artifacts TEXT,                -- JSON list of [sha256, suffix], one per take
    reference TEXT,                -- upload result: the URL / UUID / data URI handed on
    inputs TEXT,                   -- JSON {placeholder: sha256} the result was made from
    result TEXT,                   -- JSON: result URLs, seeds, provider extras
    cost_usd TEXT,
    error TEXT,
    started_at REAL,
    finished_at REAL,
    submitted_at REAL,             -- remote: when the submission was committed (epoch s)
    made_from TEXT,                -- JSON: request, provider, model, input identities (why.py)
    used_at REAL                   -- when a run last made, reused or restored it (why.py)
);
CREATE INDEX IF NOT EXISTS tasks_by_task_id ON tasks (task_id);
-- how long generations took here, so that polling starts near the expected time
CREATE TABLE IF NOT EXISTS timings (
    provider TEXT NOT NULL,
    model TEXT,
    seconds REAL NOT NULL,
    recorded_at REAL NOT NULL,
    clip_s REAL                    -- the clip's seconds (a 10 s clip takes longer than 5 s)
);
"""
TIMING_SAMPLES = 9  # the last few generations of a provider and model


@dataclass(frozen=True, slots=True)
class Record:
    cache_key: str
    task_id: str
    kind: str
    status: str
    attempts: int = 0
    shot: str | None = None
    provider: str | None = None
    model: str | None = None
    provider_task_id: str | None = None
    phase: str | None = None
    handle: dict | None = None
    artifacts: tuple[tuple[str, str], ...] = ()
    reference: str | None = None
    inputs: dict | None = None
    result: dict | None = None
    cost_usd: Decimal | None = None
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    submitted_at: float | None = None
    made_from: dict | None = None  # what it was made from (plan.Task.made_from), for `plan`


class State:
    """The ledger; every write is its own committed transaction."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        try:
            self._open(path, readonly)
        except sqlite3.DatabaseError as exc:
            if _cannot_write(exc):
                raise unwritable(path, exc) from None
            raise damaged(path, exc) from None

    def _open(self, path: Path, readonly: bool) -> None:
        if readonly:
            self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            if self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'tasks'").fetchone() \
                    is None:  # created, then a full disk or a kill before its first table
                self.db.close()
                self.db = sqlite3.connect(":memory:", check_same_thread=False)
                self.db.executescript(SCHEMA)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            self._migrate()
        self.db.row_factory = sqlite3.Row
        problems = [r[0] for r in self.db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError("; ".join(problems[:3]))

    def _migrate(self) -> None:
        """Add columns a ledger written by an earlier version lacks."""
        have = {row[1] for row in self.db.execute("PRAGMA table_info(tasks)")}
        for column, kind in (("phase", "TEXT"), ("handle", "TEXT"), ("submitted_at", "REAL"),
                             ("made_from", "TEXT"), ("used_at", "REAL")):
            if column not in have:
                self.db.execute(f"ALTER TABLE tasks ADD COLUMN {column} {kind}")
        if "clip_s" not in {row[1] for row in self.db.execute("PRAGMA table_info(timings)")}:
            self.db.execute("ALTER TABLE timings ADD COLUMN clip_s REAL")

    def close(self) -> None:
        self.db.close()

    def get(self, cache_key: str) -> Record | None:
        row = self.db.execute("SELECT * FROM tasks WHERE cache_key = ?", (cache_key,)).fetchone()
        return _record(row) if row else None

    def latest_for(self, task_id: str, provider: str | None = None) -> Record | None:
        """The finished record of a task id (any cache key) a run last made, reused or
        restored; with `provider`, the last one of that provider only. A result reused from
        the cache counts as its latest: after runware, back to a cached fal result, fal's is
        the last result (issue 21, item 16), though runware's finished later."""
        last = self._last_use()
        where = "task_id = ? AND status = 'done'" + (" AND provider = ?" if provider else "")
        row = self.db.execute(
            f"SELECT * FROM tasks WHERE {where} ORDER BY {last} DESC, finished_at DESC LIMIT 1",
            (task_id, provider) if provider else (task_id,)).fetchone()
        return _record(row) if row else None

    def _last_use(self) -> str:
        """The SQL for when a record was last used (a read-only ledger of an earlier version
        has no used_at column)."""
        if not hasattr(self, "_last_use_sql"):
            have = {row[1] for row in self.db.execute("PRAGMA table_info(tasks)")}
            self._last_use_sql = "COALESCE(used_at, finished_at)" if "used_at" in have \
                else "finished_at"
        return self._last_use_sql

    def used(self, key: str) -> None:
        """A run reused this finished result (a cache hit): it is the task's latest again."""
        self.db.execute("UPDATE tasks SET used_at=? WHERE cache_key=?", (time.time(), key))

    def all(self) -> list[Record]:
        return [_record(r) for r in self.db.execute("SELECT * FROM tasks ORDER BY task_id")]

    def start(self, key: str, task_id: str, kind: str, **fields: Any) -> Record:
        """Mark a task running (attempts + 1); provider_task_id, if given, is committed now."""
        now = time.time()
        self.db.execute(
            "INSERT INTO tasks (cache_key, task_id, kind, status, attempts, started_at, shot, "
            "provider, model, provider_task_id, made_from) "
            "VALUES (?, ?, ?, 'running', 1, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(cache_key) DO UPDATE SET status='running', attempts=attempts+1, "
            "started_at=excluded.started_at, error=NULL, provider_task_id="
            "COALESCE(excluded.provider_task_id, provider_task_id), "
            "made_from=COALESCE(excluded.made_from, made_from)",
            (key, task_id, kind, now, fields.get("shot"), fields.get("provider"),
             fields.get("model"), fields.get("provider_task_id"),
             _made_from(fields.get("made_from"))))
        return self.get(key)

    def finish(self, key: str, *, artifacts=(), reference=None, inputs=None, result=None,
               cost_usd: Decimal | None = None) -> None:
        now = time.time()
        self.db.execute(
            "UPDATE tasks SET status='done', artifacts=?, reference=?, inputs=?, result=?, "
            "cost_usd=?, error=NULL, finished_at=?, used_at=? WHERE cache_key=?",
            (json.dumps([list(a) for a in artifacts]), reference, json.dumps(inputs or {},
             sort_keys=True), json.dumps(result or {}, sort_keys=True),
             None if cost_usd is None else str(cost_usd), now, now, key))

    def set_result(self, key: str, result: dict | None) -> None:
        """Replace a finished task's result (the continuity scores, added after it is safe)."""
        self.db.execute("UPDATE tasks SET result=? WHERE cache_key=?",
                        (json.dumps(result or {}, sort_keys=True), key))

    def restore(self, record: Record) -> None:
        """Write a finished record rebuilt from storyboard.lock (engine/restore.py)."""
        self.db.execute(
            "INSERT OR REPLACE INTO tasks (cache_key, task_id, kind, shot, provider, model, "
            "status, attempts, provider_task_id, artifacts, inputs, result, cost_usd, "
            "finished_at, made_from, used_at) "
            "VALUES (?, ?, ?, ?, ?, ?, 'done', 0, ?, ?, ?, ?, ?, ?, ?, ?)",
            (record.cache_key, record.task_id, record.kind, record.shot, record.provider,
             record.model, record.provider_task_id,
             json.dumps([list(a) for a in record.artifacts]),
             json.dumps(record.inputs or {}, sort_keys=True),
             json.dumps(record.result or {}, sort_keys=True),
             None if record.cost_usd is None else str(record.cost_usd), record.finished_at,
             _made_from(record.made_from), time.time()))

    def submitting(self, key: str, provider_task_id: str, sent: str | None = None) -> None:
        """Commit the id a submission will carry, before it is sent (exactly-once spending),
        and the digest of the body sent (`sent_sha256`): a lost answer is matched by it."""
        handle = json.dumps({"sent_sha256": sent}) if sent is not None else None
        self.db.execute("UPDATE tasks SET provider_task_id=?, phase='submitting', handle=?, "
                        "submitted_at=? WHERE cache_key=?",
                        (provider_task_id, handle, time.time(), key))

    def submitted(self, key: str, provider_task_id: str, handle: dict) -> None:
        """The provider accepted the task under its id (the server's own where it assigns
        one): from now on that id is polled, never sent again."""
        self.db.execute("UPDATE tasks SET phase='submitted', provider_task_id=?, handle=? "
                        "WHERE cache_key=?",
                        (provider_task_id, json.dumps(handle, sort_keys=True), key))

    def record_timing(self, provider: str, model: str | None, seconds: float,
                      clip_s: float | None = None) -> None:
        """How long a generation of a `clip_s`-second clip took from its acknowledgement to
        the poll that saw it done."""
        self.db.execute("INSERT INTO timings (provider, model, seconds, recorded_at, clip_s) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (provider, model, float(seconds), time.time(),
                         None if clip_s is None else float(clip_s)))

    def timings(self, provider: str, model: str | None) -> list[tuple[float, float | None]]:
        """(seconds, clip seconds or None) of the last generations of this provider and model
        here, newest first (engine/remote.expected_time turns them into an expectation)."""
        rows = self.db.execute(
            "SELECT seconds, clip_s FROM timings WHERE provider = ? AND model IS ? "
            "ORDER BY recorded_at DESC LIMIT ?", (provider, model, TIMING_SAMPLES)).fetchall()
        return [(r[0], r[1]) for r in rows]

    def rejected(self, key: str, error: str) -> None:
        """The provider refused or failed the generation: a new run submits anew."""
        self.db.execute("UPDATE tasks SET status='failed', phase='rejected', error=?, "
                        "finished_at=? WHERE cache_key=?", (error, time.time(), key))

    def fail(self, key: str, error: str) -> None:
        self.db.execute("UPDATE tasks SET status='failed', error=?, finished_at=? WHERE "
                        "cache_key=?", (error, time.time(), key))


def damaged(path: Path, exc: Exception):
    """The UserError for a ledger SQLite cannot read: say so, and the way back."""
    from ..errors import UserError

    return UserError.single(
        f"{path.parent.name}/{path.name} is damaged ({exc}): kling-compose cannot tell what "
        "was paid for", hint="move it aside (mv .kling-compose/state.db "
        ".kling-compose/state.db.damaged) and run `kling-compose plan`: every result "
        "storyboard.lock names whose clip is still in .kling-compose/objects shows as "
        "restorable, and the next run rebuilds it from there without paying")


def _cannot_write(exc: Exception) -> bool:
    """SQLite's words for a full disk, a failing or read-only one: not a damaged ledger."""
    text = str(exc).lower()
    return any(words in text for words in ("disk is full", "disk i/o error", "readonly",
                                           "read-only", "unable to open"))


def unwritable(path: Path, exc: Exception):
    from ..errors import UserError

    return UserError.single(
        f"could not write {path.parent.name}/{path.name}: {exc}",
        hint="free disk space or fix the folder's permissions, then run again: finished "
             "work is kept and the run resumes")


def _record(row: sqlite3.Row) -> Record:
    loads = lambda v: json.loads(v) if v else None
    return Record(
        cache_key=row["cache_key"], task_id=row["task_id"], kind=row["kind"],
        status=row["status"], attempts=row["attempts"], shot=row["shot"],
        provider=row["provider"], model=row["model"], provider_task_id=row["provider_task_id"],
        phase=_column(row, "phase"), handle=loads(_column(row, "handle")),
        artifacts=tuple(tuple(a) for a in loads(row["artifacts"]) or ()),
        reference=row["reference"], inputs=loads(row["inputs"]), result=loads(row["result"]),
        cost_usd=Decimal(row["cost_usd"]) if row["cost_usd"] is not None else None,
        error=row["error"], started_at=row["started_at"], finished_at=row["finished_at"],
        submitted_at=_column(row, "submitted_at"), made_from=loads(_column(row, "made_from")),
    )


def _made_from(value) -> str | None:
    return None if not value else json.dumps(value, sort_keys=True, ensure_ascii=False,
                                              default=str)


def _column(row: sqlite3.Row, name: str):
    return row[name] if name in row.keys() else None  # a ledger of an earlier version


def state_path(project_root: Path) -> Path:
    return project_root / ".kling-compose" / "state.db"


NOTHING_TO_PAY = ("cached", "restorable")  # plan statuses of a generation the run does not pay
# work whose result is known from what it is made of: a frame, an upload, an element created
# at the provider from its images (a new element from the same images is the same element)
DERIVED = ("extract_frame", "upload", "element")


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


def derived_identity(kind: str, cache_key: str, inputs: dict) -> str:
    from ..plan import hash_key

    return "~" + hash_key(kind, cache_key, inputs)


def _legacy_handed_on(record: Record, pick: int = 1) -> str | None:
    """What ledgers before content identities recorded: an upload's URL, a frame's sha256."""
    if record.kind == "upload":
        return record.reference
    if record.kind == "extract_frame":
        return record.artifacts[0][0] if record.artifacts else None
    return handed_on(record, pick)


def is_reusable(task, record: Record | None, upstream: dict[str, Record]) -> bool:
    """A finished record whose inputs had the same content as the upstream results now."""
    if record is None or record.status != "done":
        return False
    inputs = record.inputs or {}
    return inputs == input_digests(task, upstream) or \
        inputs == input_digests(task, upstream, _legacy_handed_on)


def input_digests(task, upstream: dict[str, Record], identity=handed_on) -> dict[str, str | None]:
    """{dependency task id: its content identity} for a task whose dependencies are known."""
    picks = task.params.get("picks", {})
    return {dep: identity(upstream[dep], picks.get(dep, 1)) for dep in task.depends_on}


def planned(task, upstream: dict[str, Record]) -> Record:
    """The record a free derived task (a frame, an upload) will have: its identity is known
    from its inputs before it runs."""
    return Record(cache_key=task.cache_key, task_id=task.id, kind=task.kind, status="planned",
                  inputs=input_digests(task, upstream))


REMOTE_INPUTS = ("upload", "element")  # made at a provider, only for the generations using them


def unneeded_inputs(plan, statuses: dict[str, str], selected: list[str],
                    force: tuple[str, ...] = ()) -> set[str]:
    """Uploads and elements not yet made that no generation of this run will send: every
    selected generation they feed (directly, or through an element) is cached or restorable
    and not forced. Making them would need the provider's key and pays nothing back, so a
    teammate's keyless clone restoring the paid clips skips them; a generation that turns out
    to need one after all (its restore failed) makes it first (run.py, _Runner.inputs_made)."""
    chosen = set(selected)
    needed: dict[str, bool] = {}
    for task_id in reversed(plan.order):  # a task's dependents before the task
        task = plan.tasks[task_id]
        if task.kind not in REMOTE_INPUTS:
            continue
        users = [plan.tasks[d] for d in plan.graph.successors(task_id) if d in chosen]
        needed[task_id] = any(
            needed.get(u.id, True) if u.kind in REMOTE_INPUTS else
            u.kind != "generate" or statuses.get(u.id) not in NOTHING_TO_PAY or u.shot in force
            for u in users)
    return {t for t, need in needed.items() if not need and statuses.get(t) != "cached"}


def _locked_differently(task, shots: dict, outputs: dict) -> bool:
    """storyboard.lock names a result of this shot or output made from something else."""
    entry = shots.get(task.shot) if task.kind == "generate" else \
        outputs.get(task.params["path"]) if task.kind == "assemble" else None
    return isinstance(entry, dict) and entry.get("cache_key") not in (None, task.cache_key)


def read_statuses(plan, reasons: dict[str, str] | None = None) -> dict[str, str]:
    """Per task id: cached | restorable | changed | missing | new, from the project's ledger
    and storyboard.lock (read-only; neither: all new).

    restorable: the ledger has no reusable result, but storyboard.lock names one for this very
    task whose clips are in the store: the run rebuilds its record and pays nothing.
    missing: a finished result whose clip is gone from (or damaged in) the store: it will be
    made again, and paid for again if it is a generation. `reasons`, if given, receives why a
    generation the lock names cannot be restored."""
    from .lockfile import read_lockfile
    from .restore import lock_record, may_restore, unavailable
    from .store import Store

    root = plan.resolved.storyboard.root
    path = state_path(root)
    whole_lock = read_lockfile(root)
    lock, outputs = whole_lock.get("shots", {}), whole_lock.get("outputs", {})
    state = State(path, readonly=True) if path.is_file() else None
    store = Store(root / ".kling-compose")
    try:
        statuses: dict[str, str] = {}
        records: dict[str, Record] = {}  # the finished (or, for free work, planned) results
        dead_hosts: dict[str, str] = {}  # result hosts that did not answer, asked once
        for task_id in plan.order:
            task = plan.tasks[task_id]
            record = state.get(task.cache_key) if state else None
            known = all(d in records for d in task.depends_on)
            if known and is_reusable(task, record, records):
                if all(store.intact(d, s) for d, s in record.artifacts):
                    statuses[task_id] = "cached"
                    records[task_id] = record
                    continue
                statuses[task_id] = "missing"
            elif state and state.latest_for(task_id) is not None:
                statuses[task_id] = "changed"
            elif _locked_differently(task, lock, outputs):
                statuses[task_id] = "changed"  # a clone: the lock names an earlier result
            else:
                statuses[task_id] = "new"
            if known and task.kind == "generate" and may_restore(record):
                restored, why, fetches = lock_record(task, lock.get(task.shot), records, store)
                if restored is not None and fetches:
                    why = unavailable(fetches, dead=dead_hosts)
                    restored = None if why else restored
                if restored is not None:
                    statuses[task_id] = "restorable"
                    records[task_id] = restored
                elif why and reasons is not None:
                    reasons[task_id] = why
            elif known and task.kind in DERIVED:
                records[task_id] = planned(task, records)
        for task_id in unneeded_inputs(plan, statuses, plan.order):
            statuses[task_id] = "unneeded"
        return statuses
    except sqlite3.DatabaseError as exc:
        raise (unwritable if _cannot_write(exc) else damaged)(path, exc) from None
    finally:
        if state:
            state.close()
