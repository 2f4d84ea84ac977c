"""The SQLite ledger at .kling-compose/state.db: what was run, paid for and produced.

One row per cache key. For a remote generation the provider task id is written (and committed)
*before* the request is sent, so a run that dies mid-request resumes by polling that id instead
of paying again. WAL mode keeps readers (`status`, `plan`) working while a run writes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Mapping

from ..paths import ProjectPaths

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
TASK_COLUMNS = frozenset((
    "cache_key", "task_id", "kind", "shot", "provider", "model", "status", "attempts",
    "provider_task_id", "phase", "handle", "artifacts", "reference", "inputs", "result",
    "cost_usd", "error", "started_at", "finished_at", "submitted_at", "made_from", "used_at"))
TIMING_COLUMNS = frozenset(("provider", "model", "seconds", "recorded_at", "clip_s"))
# what a row whose bytes were flipped raises once it is read: text that is not UTF-8 (a column
# name), JSON that does not parse, money that is not a number, a column that is not there
UNREADABLE = (ValueError, ArithmeticError, TypeError, IndexError, KeyError)


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

    salvaged: str | None = None  # what a new ledger took over from state.db.damaged
    db: sqlite3.Connection

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        refuse_links(path)
        fresh = not readonly and not path.exists()
        try:
            if fresh:
                _set_aside_strays(path)
            self._open(path, readonly)
            if fresh:  # a ledger moved aside as damaged: what only it knew is taken over
                self.salvaged = self._take_over(damaged_path(path))
                if self.salvaged:
                    self.salvaged += _retire(damaged_path(path))
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            if _cannot_write(exc):
                if not readonly and path.parent.is_dir() and \
                        not os.access(path.parent, os.W_OK):
                    raise unwritable(path, f"{path.parent.name} is read-only ({exc})") from None
                raise unwritable(path, exc) from None
            raise damaged(path, exc) from None
        except OSError as exc:  # a read-only or full disk: .kling-compose cannot be made
            self._close_quietly()
            raise unwritable(path, exc) from None
        except _Unreadable as exc:  # bytes flipped inside a row: quick_check passes, the
            self._close_quietly()  # text or the JSON does not decode
            raise damaged(path, exc) from None
        except UNREADABLE as exc:  # in the schema (a column name that is not UTF-8)
            self._close_quietly()
            raise damaged(path, _row_problem(exc)) from None

    def _close_quietly(self) -> None:
        if getattr(self, "db", None) is not None:  # opened before the failure
            try:
                self.db.close()
            except sqlite3.Error:
                pass

    def _open(self, path: Path, readonly: bool) -> None:
        if readonly:
            self.db = _open_readonly(path)
            if self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'tasks'").fetchone() \
                    is None:  # created, then a full disk or a kill before its first table
                self.db.close()
                self.db = sqlite3.connect(":memory:", check_same_thread=False)
                self.db.executescript(SCHEMA)
            elif self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'timings'") \
                    .fetchone() is None:  # a full disk between its two tables: none timed yet
                timings = SCHEMA[SCHEMA.index("CREATE TABLE IF NOT EXISTS timings"):]
                self.db.execute(timings.replace("CREATE TABLE", "CREATE TEMP TABLE", 1))
            self._check_columns()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            self._check_columns()  # before a column a flipped byte renamed is added anew
            self._migrate()
        self.db.row_factory = sqlite3.Row
        problems = [r[0] for r in self.db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError("; ".join(problems[:3]))
        for row in self.db.execute("SELECT * FROM tasks"):  # every row decodes (text, JSON,
            try:  # money) before anything relies on one
                _decode(row)
            except UNREADABLE as exc:
                raise _Unreadable(_row_problem(exc, row)) from None
        self.db.execute("SELECT provider, model, seconds, recorded_at FROM timings").fetchall()

    @classmethod
    def salvaged_only(cls, path: Path) -> "State | None":
        """A read-only view, in memory, of what a run would take over from state.db.damaged
        when there is no ledger at `path` (`plan` then says what the run will do); None when
        there is nothing to take over."""
        if path.exists() or path.is_symlink() or not damaged_path(path).is_file():
            return None
        state = cls.__new__(cls)
        state.path = path
        state.db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        state.db.executescript(SCHEMA)
        state.db.row_factory = sqlite3.Row
        state.salvaged = state._take_over(damaged_path(path))
        if state.salvaged is None:
            state.db.close()
            return None
        return state

    def _take_over(self, damaged: Path) -> str | None:
        """Copy from a damaged ledger moved aside every row that reads whole and that neither
        the lock nor the store brings back: generations submitted and not finished (paid for,
        maybe running: polled, not paid again) and finished generations the lock does not
        name whose clips are in the store intact (a run killed before it wrote the lock). The
        rest is rebuilt from the lock; what it says, or None when it took nothing over."""
        if damaged.is_symlink() or not damaged.is_file():
            return None
        from .lockfile import all_locks
        from .store import Store

        rows, lost = salvage(damaged)
        root = self.path.parent.parent
        # every profile's lock (and its rehearsal records) brings back its own
        shots = [e for lock in all_locks(root) for e in lock.entries()]
        locked = {e.get("cache_key") for e in shots if isinstance(e, dict)}
        store = Store(self.path.parent)
        flying = finished = 0
        for values in rows:
            record = _decode(values)
            if record.kind not in ("generate", "element", "voice"):
                continue  # free work, made again from what it is made of
            if record.status != "done" and record.phase in ("submitting", "submitted"):
                flying += 1
            elif record.status == "done" and record.kind == "generate" and record.artifacts \
                    and record.cache_key not in locked \
                    and all(store.intact(d, s) for d, s in record.artifacts):
                finished += 1
            else:
                continue
            names = [n for n in values if n in TASK_COLUMNS]
            self.db.execute(f"INSERT OR IGNORE INTO tasks ({', '.join(names)}) VALUES "
                            f"({', '.join('?' * len(names))})", [values[n] for n in names])
        if not (flying or finished or lost):
            return None
        parts = [f"{flying} generation(s) submitted and not finished (polled, not paid again)"
                 if flying else "", f"{finished} finished generation(s) the lock does not "
                 "name (their clips are in the store)" if finished else ""]
        taken = " and ".join(p for p in parts if p) or "nothing"
        unread = ("; state.db.damaged could not be read: check your providers' dashboards "
                  "for generations it may have recorded in flight" if lost is None else
                  f"; {lost} of its record(s) could not be read" if lost else "")
        return f"a new ledger took over from .kling-compose/state.db.damaged: {taken}{unread}"

    def _check_columns(self) -> None:
        """Every column of the ledger's tables is one kling-compose ever wrote: a flipped
        byte in the schema renames one (its rows would read as empty, an in-flight
        submission's phase lost)."""
        for table, known in (("tasks", TASK_COLUMNS), ("timings", TIMING_COLUMNS)):
            have = [row[1] for row in self.db.execute(f"PRAGMA table_info({table})")]
            strange = [name for name in have if name not in known]
            if strange:
                raise sqlite3.DatabaseError(f"table {table} has an unknown column "
                                            f"{strange[0]!r}")

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

    def _get(self, cache_key: str) -> Record:
        """The record of a row just written."""
        record = self.get(cache_key)
        if record is None:
            raise sqlite3.DatabaseError(f"the ledger lost the row it wrote for {cache_key}")
        return record

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
        return self._get(key)

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
        """Write a finished record rebuilt from storyboard.lock (project/restore.py)."""
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


def damaged(path: Path, exc: Exception | str, look: bool = True) -> Exception:
    """The UserError for a ledger SQLite (or kling-compose) cannot read: say so, and the way
    back; name every generation it records as submitted and not finished (paid for, maybe
    still running), which the lock cannot bring back."""
    from ..errors import UserError

    hint = ("move it aside (mv .kling-compose/state.db .kling-compose/state.db.damaged) and "
            "run `kling-compose plan`: every result storyboard.lock names whose clip is still "
            "in .kling-compose/objects shows as restorable, and the next run rebuilds it from "
            "there without paying")
    flying = in_flight_rows(path) if look else []
    if flying is None:
        hint += ("; kling-compose cannot tell whether it records generations submitted and "
                 "not finished: keep state.db.damaged, and check your providers' dashboards "
                 "before running (a shot missing from the lock is generated and paid again)")
    elif flying:
        whole = {(r["task_id"], r["provider_task_id"]) for r in salvage(path)[0]}
        taken = [f"{t} at {p}, task {i}" for t, p, i in flying if (t, i) in whole]
        lost = [f"{t} at {p}, task {i}" for t, p, i in flying if (t, i) not in whole]
        hint += "; it records generations submitted and not finished, maybe paid for"
        if taken:
            hint += (f": {'; '.join(taken)}: the next run takes them over from "
                     "state.db.damaged and polls them, paying nothing again")
        if lost:
            hint += (f"{'; and' if taken else ':'} {'; '.join(lost)}, whose record is damaged: "
                     "keep state.db.damaged; when one shows done on the provider's dashboard, "
                     "`kling-compose adopt SHOT TASK_ID` takes it without paying again (a run "
                     "generates it anew)")
    what = str(exc)
    what = what if len(what) <= 160 else what[:157] + "..."
    return UserError.single(
        f"{path.parent.name}/{path.name} is damaged ({what}): kling-compose cannot tell what "
        "was paid for", hint=hint)


def _set_aside_strays(path: Path) -> None:
    """A -wal (and -shm) left beside a ledger that was moved aside belong to it: SQLite would
    replay the old pages into the new ledger. They go with it (state.db.damaged-wal, where
    SQLite reads it for that file), or, with no such file, aside under another name."""
    wal = path.with_name(path.name + "-wal")
    if wal.is_file() and not wal.is_symlink():
        damaged = damaged_path(path)
        to = damaged.with_name(damaged.name + "-wal")
        if not damaged.is_file() or to.exists():
            to = wal.with_name(f"{wal.name}.orphaned-{int(time.time())}")
        os.replace(wal, to)
    path.with_name(path.name + "-shm").unlink(missing_ok=True)


def _retire(damaged: Path) -> str:
    """A damaged ledger taken over is kept under another name, so that it is never taken
    over again (a later new ledger would poll its old submissions once more)."""
    to = damaged.with_name(f"{damaged.name}.taken-over-{int(time.time())}")
    try:
        os.replace(damaged, to)
        wal = damaged.with_name(damaged.name + "-wal")
        if wal.is_file() and wal.stat().st_size:
            os.replace(wal, to.with_name(to.name + "-wal"))
        wal.unlink(missing_ok=True)  # an empty one SQLite made reading it
        damaged.with_name(damaged.name + "-shm").unlink(missing_ok=True)
    except OSError:
        return ""
    return f" (kept as .kling-compose/{to.name})"


def damaged_path(path: Path) -> Path:
    """Where the way back (`damaged`'s hint) moves a damaged ledger."""
    return path.with_name(path.name + ".damaged")


def salvage(path: Path) -> tuple[list[dict], int | None]:
    """The rows of a damaged ledger that read whole (every text UTF-8, every JSON column
    parses, known columns only), as {column: value}, and how many could not be read (None:
    the table itself cannot be read)."""
    try:
        db = _open_readonly(path)  # with its -wal, if it has one
    except (sqlite3.Error, OSError, ValueError):
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        except (sqlite3.Error, ValueError):
            return [], None
    rows, lost = [], 0
    try:
        db.text_factory = bytes
        cursor = db.execute("SELECT * FROM tasks")
        names = [d[0] for d in cursor.description]
        while True:
            try:
                raw = cursor.fetchone()
            except (sqlite3.Error, ValueError):
                lost += 1  # SQLite cannot go past it: the rest is unread
                break
            if raw is None:
                break
            try:
                values = {n: v.decode("utf-8") if isinstance(v, bytes) else v
                          for n, v in zip(names, raw)}
                if set(values) - TASK_COLUMNS:
                    raise ValueError("unknown column")
                _decode(values)
            except UNREADABLE:
                lost += 1
                continue
            rows.append(values)
    except (sqlite3.Error, ValueError):
        return rows, None if not rows else lost + 1
    finally:
        db.close()
    return rows, lost


def in_flight_rows(path: Path) -> list[tuple] | None:
    """The generations a (damaged) ledger records as submitted and not finished, read as
    far as its bytes allow: (task id, provider, provider task id); None when that cannot be
    told (the table or a row's status does not read)."""
    try:
        db = _open_readonly(path)
    except (sqlite3.Error, OSError, ValueError):  # ValueError: SQLite's message not UTF-8
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
        except (sqlite3.Error, ValueError):
            return None
    try:
        db.text_factory = lambda b: b.decode("utf-8", "replace")
        rows = db.execute("SELECT task_id, status, phase, provider, provider_task_id "
                          "FROM tasks").fetchall()
    except (sqlite3.Error, ValueError, OSError):
        return None
    finally:
        db.close()
    found = []
    for task_id, status, phase, provider, provider_task_id in rows:
        if status == "done" or phase in (None, "rejected") and status in ("failed", "running"):
            continue  # finished, refused, or never submitted: the lock and the store tell
        if status not in ("failed", "running", "submitted") or \
                phase not in ("submitting", "submitted"):
            return None  # a flipped byte in its status or phase: it may be in flight
        found.append((task_id, provider, provider_task_id))
    return found


def refuse_links(path: Path) -> None:
    """The ledger (and its -wal, -shm) is a real file in the project: SQLite follows a link
    and would write the database elsewhere."""
    from ..errors import UserError

    for name in (path.name, f"{path.name}-wal", f"{path.name}-shm", f"{path.name}-journal"):
        if path.with_name(name).is_symlink():
            raise UserError.single(
                f"{path.parent.name}/{name} is a symbolic link: kling-compose keeps its ledger "
                "only in the project, and never writes through a link",
                hint=f"remove the link (rm {path.parent.name}/{name}); if it led to a ledger "
                     "of this project, copy that file there instead")


_LEAVE_NO_TRACE = False
"""True in the language server (leave_no_trace): reading the ledger creates no file."""


def leave_no_trace() -> None:
    """From now on, in this process, reading a ledger creates nothing beside it (SQLite's
    read of a WAL database makes its -wal and -shm files): the language server promises to
    write nothing into the project. It reads the ledger as a read-only folder's is read."""
    global _LEAVE_NO_TRACE
    _LEAVE_NO_TRACE = True


def _open_readonly(path: Path) -> sqlite3.Connection:
    """The ledger opened only to read. A WAL ledger needs its -shm file, which a read-only
    folder (or disk) cannot hold: then it is read as an immutable file (nothing can be writing
    it), and a -wal a killed run left is read through a private copy (replayed there, then
    held in memory: nothing is written in the project). After leave_no_trace it is always
    read so (a run writing it meanwhile is seen as of its last checkpoint, or of the copy)."""
    if not _LEAVE_NO_TRACE:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        try:
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            return db
        except sqlite3.OperationalError as exc:
            db.close()
            if not _cannot_write(exc) or os.access(path.parent, os.W_OK):
                raise
    wal = path.with_name(path.name + "-wal")
    if not (wal.is_file() and wal.stat().st_size > 0):
        return sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True,
                               check_same_thread=False)
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="kling-compose-ledger-") as folder:
        copy = Path(folder) / "state.db"
        shutil.copyfile(path, copy)
        shutil.copyfile(wal, copy.with_name("state.db-wal"))
        replayed = sqlite3.connect(copy)
        try:
            replayed.execute("PRAGMA journal_mode=DELETE")  # the -wal checkpointed into it
            data = replayed.serialize()
        finally:
            replayed.close()
    db = sqlite3.connect(":memory:", check_same_thread=False)
    db.deserialize(data)
    return db


def _cannot_write(exc: Exception) -> bool:
    """SQLite's words for a full disk, a failing or read-only one: not a damaged ledger."""
    text = str(exc).lower()
    return any(words in text for words in ("disk is full", "disk i/o error", "readonly",
                                           "read-only", "unable to open"))


def unwritable(path: Path, exc: Exception | str) -> Exception:
    from ..errors import UserError

    what = exc.strerror or exc if isinstance(exc, OSError) else exc
    return UserError.single(
        f"could not write {path.parent.name}/{path.name}: {what}",
        hint="free disk space or fix the folder's permissions, then run again: finished "
             "work is kept and the run resumes")


class _Unreadable(Exception):
    """A ledger row that does not decode (State checks every row as it opens the ledger)."""


def _record(row: sqlite3.Row) -> Record:
    try:
        return _decode(row)
    except UNREADABLE as exc:  # never a traceback (State opened it whole: a concurrent
        raise damaged(Path(".kling-compose") / "state.db",  # writer's damage)
                      _row_problem(exc, row), look=False) from None


def _row_problem(exc: Exception, row: sqlite3.Row | None = None) -> str:
    """What could not be read, briefly (a decode error quotes the whole column)."""
    try:
        where = f"the record of {row['task_id']}: " if row is not None else ""
    except UNREADABLE:
        where = ""
    text = f"{type(exc).__name__}: {exc}"
    what = "a record cannot be read" if row is not None else "its schema or a record cannot " \
        "be read"
    return where + what + " (" + (text if len(text) < 120 else
                                                  text[:117] + "...") + ")"


def _decode(row: sqlite3.Row | Mapping[str, Any]) -> Record:
    def loads(value, kind=dict):
        data = json.loads(value) if value else None
        if data is not None and not isinstance(data, kind):
            raise ValueError(f"{kind.__name__} expected, found {type(data).__name__}")
        return data

    artifacts = tuple(tuple(a) for a in loads(row["artifacts"], list) or ())
    if not all(len(a) == 2 and all(isinstance(v, str) for v in a) for a in artifacts):
        raise ValueError("artifacts are not [sha256, suffix] pairs")
    for name in ("cache_key", "task_id", "kind", "status"):
        if not isinstance(row[name], str):
            raise ValueError(f"{name} is not text")
    return Record(
        cache_key=row["cache_key"], task_id=row["task_id"], kind=row["kind"],
        status=row["status"], attempts=row["attempts"], shot=row["shot"],
        provider=row["provider"], model=row["model"], provider_task_id=row["provider_task_id"],
        phase=_column(row, "phase"), handle=loads(_column(row, "handle")),
        artifacts=artifacts,
        reference=row["reference"], inputs=loads(row["inputs"]), result=loads(row["result"]),
        cost_usd=_money(row["cost_usd"]),
        error=row["error"], started_at=row["started_at"], finished_at=row["finished_at"],
        submitted_at=_column(row, "submitted_at"), made_from=loads(_column(row, "made_from")),
    )


def _money(value) -> Decimal | None:
    if value is None:
        return None
    money = Decimal(value)
    if not money.is_finite():
        raise ValueError(f"cost_usd is {value!r}")
    return money


def _made_from(value) -> str | None:
    return None if not value else json.dumps(value, sort_keys=True, ensure_ascii=False,
                                              default=str)


def _column(row, name: str):
    return row[name] if name in row.keys() else None  # a ledger of an earlier version


def state_path(project_root: Path) -> Path:
    return ProjectPaths(project_root).ledger
