"""storyboard.lock: what was generated and paid for, for git, in a form git merges.

Format 2 (issue 26) is line-oriented, like go.sum: a header line, then one JSON object per
line, one per result (a shot's generation, `{"shot": ...}`, or a film, `{"output": ...}`),
sorted. Every value comes from the state ledger, and an entry whose cache key is already in
the lock is kept as written (a restore-only run rewrites nothing), so a run that changes
nothing leaves the file byte-identical and a one-shot change is a one-line diff. Two branches
that ran different shots differ in different lines: `init`'s `.gitattributes` merges the lock
with git's built-in `merge=union`, and a union of two locks is a lock (a shot may then have
two entries, both paid: the plan's cache key picks the one the storyboard asks for). Shots no
longer in the storyboard go; a shot's earlier paid results stay, so going back to an earlier
version of a shot restores it for $0. Format 1 (one JSON object) is read and rewritten as 2 on
the next run; a lock with git's conflict markers is named, with the command that resolves it
(`kling-compose lock resolve`: the union of both sides).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from glob import escape as glob_escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..files import replace_atomically
from ..paths import LOCK, ProjectPaths

if TYPE_CHECKING:  # the ledger reads the lock (state.py, taking over a damaged one)
    from .state import State

LOCK_NAME = LOCK
LOCK_VERSION = 2
HEADER_KEY = "kling-compose-lock"  # the first line: {"kling-compose-lock": 2, ...}
CONFLICT_MARKERS = ("<<<<<<<", "=======", ">>>>>>>", "|||||||")


def lock_path(root: Path, profile: str | None = None, stem: str = "storyboard") -> Path:
    return ProjectPaths(root, profile, stem).lock


def lock_profiles(root: Path, stem: str = "storyboard") -> list[str | None]:
    """The profiles whose lock is in the project: None for storyboard.lock, then each
    storyboard.<profile>.lock by name (a folder's `gc`, `push` and `pull` keep them all)."""
    try:
        found: list[str | None] = [None] if (root / f"{stem}.lock").is_file() else []
        for path in sorted(root.glob(f"{glob_escape(stem)}.*.lock")):
            name = path.name[len(stem) + 1:-len(".lock")]
            if name and "." not in name and path.is_file() and \
                    not _own_storyboard(root, f"{stem}.{name}") and \
                    _read(path).profile in (None, name):
                found.append(name)
    except (OSError, ValueError):  # a path too long, a loop of links: reading says why
        return [None]
    return found


def _own_storyboard(root: Path, stem: str) -> bool:
    """A storyboard file named `stem` is in the folder (storyboard.v2.yaml: storyboard.v2.lock
    is its lock, not profile v2's of storyboard.yaml)."""
    return any((root / f"{stem}{suffix}").is_file() for suffix in (".yaml", ".yml"))


def storyboard_argument(root: Path, stem: str) -> str:
    """How a command names the storyboard `stem` in a hint: nothing for ./storyboard.yaml,
    else its file (with its folder when that is not the current one)."""
    name = next((f"{stem}{s}" for s in (".yaml", ".yml") if (root / f"{stem}{s}").is_file()),
                f"{stem}.yaml")
    try:
        here = root.resolve() == Path.cwd().resolve()
    except OSError:
        here = False
    if here:
        return "" if name == "storyboard.yaml" else f" {name}"
    return f" {root / name}"


def all_locks(root: Path) -> list[Lock]:
    """Every lock in the project folder, of every storyboard and profile, and the rehearsal
    records: what `gc` keeps and a damaged ledger's take-over counts as recorded."""
    found = []
    try:
        paths = [*sorted(root.glob("*.lock")),
                 *sorted(ProjectPaths(root).state.glob("rehearsal.*.lock"))]
    except (OSError, ValueError):
        return []
    for path in paths:
        lock = _read(path) if path.is_file() else Lock()
        if lock.shot_entries or lock.output_entries:
            found.append(lock)
    return found


MAX_LOCK_BYTES = 128 * 1024 * 1024  # far above any storyboard's lock; /dev/zero is not one
MAX_DEPTH = 200  # a lock nests a few levels (shots, entry, made_from, provider_options):
# 100,000 is an attack; every reader (json, comparisons) recurses well within 200


class _Unusable(ValueError):
    """A lock file that is not a bounded regular file of shallow JSON."""


def _load(path: Path, hint: str | None = None):
    """The lock's content, read as a regular file of bounded size (files.read_bytes:
    UserError otherwise) and bounded nesting (_Unusable; UnicodeDecodeError, ValueError):
    `parse_text`'s (format 1's object, or format 2's header and records)."""
    from ..files import read_bytes

    text = read_bytes(path, path.name, what=path.name, limit=MAX_LOCK_BYTES,
                      hint=hint).decode("utf-8")
    return parse_text(text)


def parse_text(text: str):
    """A lock's text as format 1's JSON object, or format 2's list of line objects (the
    header first when present). Raises Conflicted (git's markers), _Unusable (too deep) or
    ValueError (not JSON), naming the line. git's union of a format 1 lock (a teammate on an
    older release) and a format 2 one reads as both: format 2's lines, and the rest as the
    format 1 object."""
    if _nesting(text) > MAX_DEPTH:
        raise _Unusable(f"nests deeper than {MAX_DEPTH} levels")
    lines = _lines(text)
    marked = [n for n, line in enumerate(lines, 1) if line.startswith(CONFLICT_MARKERS)]
    if marked:
        raise Conflicted(marked[0])
    try:
        if not text.lstrip().startswith('{"' + HEADER_KEY):
            try:
                data = json.loads(text)  # format 1: one object
            except ValueError:
                data = None
            if isinstance(data, dict) and ("shots" in data or "outputs" in data or
                                           "version" in data):
                return data
        records = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                mixed = _mixed_formats(lines)
                if mixed is not None:
                    return mixed
                raise ValueError(f"line {number}: {exc}") from None
        return records
    except RecursionError:
        raise _Unusable(f"nests deeper than {MAX_DEPTH} levels") from None


def _mixed_formats(lines: list[str]) -> list | None:
    """The records of a union of a format 2 lock's lines and a format 1 lock's text (the
    latter's shots and outputs as format 2 records), or None when it is not that."""
    records, rest = [], []
    for line in lines:
        try:
            value = json.loads(line) if line.startswith('{"') else None
        except ValueError:
            value = None
        if isinstance(value, dict) and (HEADER_KEY in value or "shot" in value
                                        or "output" in value):
            records.append(value)
        else:
            rest.append(line)
    try:
        old = json.loads("\n".join(rest))
    except ValueError:
        return None
    if not records or not isinstance(old, dict):
        return None
    for section, kind in (("shots", "shot"), ("outputs", "output")):
        values = old.get(section)
        for key, entry in (values.items() if isinstance(values, dict) else ()):
            if isinstance(entry, dict):
                records.append({kind: key, **entry})
    return records


def _lines(text: str) -> list[str]:
    """A lock's lines as git sees them: split at "\n" only (a prompt may hold U+2028 or U+0085,
    which str.splitlines would break a JSON line at), a Windows checkout's "\r" dropped."""
    return [line.removesuffix("\r") for line in text.split("\n")]


class Conflicted(ValueError):
    """A lock with git's conflict markers (a merge without `merge=union`)."""

    def __init__(self, line: int) -> None:
        super().__init__(f"has git conflict markers (line {line})")
        self.line = line


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


def check_lockfile(root: Path, profile: str | None = None, stem: str = "storyboard",
                   name: str | None = None) -> None:
    """A lock file that cannot be read back is refused before the run starts (after it, the
    run would fail at the end, with every clip paid for), and by every command that reads it
    (a conflicted lock read as empty would plan every paid shot as new): a UserError naming
    the file and the command that fixes it. So is, given the storyboard's `name`, a lock
    written for another storyboard (files renamed or swapped): a run would drop every paid
    entry of that storyboard's shots from it."""
    from ..errors import UserError

    path = lock_path(root, profile, stem)
    if not (path.exists() or path.is_symlink()):
        return
    where = storyboard_argument(root, stem)
    hint = (f"restore it from git (`git checkout {path.name}`), or move it aside: the next "
            "run writes it anew from .kling-compose/state.db")
    try:
        data = _load(path, hint)  # not a regular file, too large: read_bytes's UserError
    except UnicodeDecodeError:
        raise UserError.single(f"{path.name} is not UTF-8 text", hint=hint) from None
    except Conflicted as exc:
        flag = f" --profile {profile}" if profile else ""
        raise UserError.single(
            f"{path.name} {exc}: a git merge left both sides in it",
            hint=f"`kling-compose lock resolve{where}{flag}` keeps both sides' results (each "
                 f"was paid for; the storyboard picks the one it uses), or take one side: "
                 f"`git checkout --theirs {path.name}` (or --ours); then `git add "
                 f"{path.name}`. `kling-compose lock setup{where}` makes git merge locks "
                 "without conflicts") from None
    except _Unusable as exc:
        raise UserError.single(f"{path.name} {exc}", hint=hint) from None
    except ValueError as exc:
        raise UserError.single(f"{path.name} is not valid JSON ({exc})", hint=hint) from None
    if not _well_formed(data):
        raise UserError.single(f"{path.name} does not have the shape of a kling-compose lock "
                               "file (a header line, then one object per result)", hint=hint)
    lock = _as_lock(data)
    written_for = lock.storyboard
    if name is not None and lock.names and name not in lock.names and \
            not _templated_name(root, stem):
        flag = f" --profile {profile}" if profile else ""
        raise UserError.single(
            f"{path.name} was written for storyboard '{written_for}', not '{name}'",
            hint=f"each storyboard file has its own lock, named after the file (alt.yaml: "
                 f"alt.lock): if another storyboard's file was renamed or copied to "
                 f"{stem}.yaml, give it back its own name. If you renamed this storyboard "
                 f"(`name: {written_for}` before), `kling-compose lock rename{where}{flag}` "
                 "records the new name and keeps every result")


def _templated_name(root: Path, stem: str) -> bool:
    """The storyboard's `name:` is a template (`name: harbour-{{ lang }}`): each value is
    the same storyboard, so its lock is not checked against one of them."""
    import re

    for suffix in (".yaml", ".yml"):
        try:
            text = (root / f"{stem}{suffix}").read_text("utf-8", errors="replace")
        except (OSError, ValueError):
            continue
        found = re.search(r"^name\s*:(.*)$", text, re.M)
        return found is None or "{{" in found.group(1) or "{%" in found.group(1)
    return False


def _well_formed(data) -> bool:
    if isinstance(data, dict):  # format 1
        sections = ("shots", "outputs")
        return all(isinstance(data.get(k, {}), dict) and
                   all(isinstance(v, dict) for v in data.get(k, {}).values()) for k in sections)
    return isinstance(data, list) and all(
        isinstance(r, dict) and (HEADER_KEY in r or isinstance(r.get("shot"), str)
                                 or isinstance(r.get("output"), str)) for r in data)


@dataclass(frozen=True, slots=True)
class Lock:
    """A lock, parsed once: every entry of each shot and each output (JSON objects from the
    ledger's values; after a merge a shot may have several, each paid for). A lock that
    cannot be read reads as empty (`check_lockfile` says why first)."""

    shot_entries: Mapping[str, tuple[dict, ...]] = field(default_factory=dict)
    output_entries: Mapping[str, tuple[dict, ...]] = field(default_factory=dict)
    version: Any = LOCK_VERSION
    storyboard: str | None = None  # the storyboard's name the lock was written for
    # every storyboard name its header lines give (a union merge after a rename keeps both)
    names: frozenset[str] = frozenset()
    profile: str | None = None  # the profile its header names

    @property
    def shots(self) -> Mapping[str, dict]:
        """One entry per shot: its newest."""
        return {name: _newest(entries) for name, entries in self.shot_entries.items()}

    @property
    def outputs(self) -> Mapping[str, dict]:
        return {path: _newest(entries) for path, entries in self.output_entries.items()}

    def shot(self, name: str | None, cache_key: str | None = None) -> dict | None:
        """The shot's entry made for `cache_key` when the lock holds one, else its newest."""
        return _pick(self.shot_entries.get(name, ()) if name is not None else (), cache_key)

    def output(self, path: str, cache_key: str | None = None) -> dict | None:
        return _pick(self.output_entries.get(path, ()), cache_key)

    @classmethod
    def of(cls, shots: Mapping[str, dict] | None = None,
           outputs: Mapping[str, dict] | None = None) -> "Lock":
        """A lock with one entry per shot and output (as format 1 held them)."""
        return cls({k: (v,) for k, v in (shots or {}).items()},
                   {k: (v,) for k, v in (outputs or {}).items()})

    def entries(self) -> list[dict]:
        """Every entry, shots then outputs."""
        return [e for group in (*self.shot_entries.values(), *self.output_entries.values())
                for e in group]


def _newest(entries: tuple[dict, ...]) -> dict:
    return max(entries, key=lambda e: str(e.get("created_at") or ""))


def _pick(entries: tuple[dict, ...], cache_key: str | None) -> dict | None:
    if not entries:
        return None
    if cache_key is not None:
        for entry in entries:
            if entry.get("cache_key") == cache_key:
                return entry
    return _newest(entries)


def parse_lock(text: str, name: str = LOCK_NAME) -> Lock:
    """A lock's text (of either format) as a Lock; an empty Lock when it is not one. `name`
    names it in errors (`git show REF:storyboard.lock` is read this way)."""
    try:
        return _as_lock(parse_text(text))
    except ValueError:
        return Lock()


def _as_lock(data) -> Lock:
    shots: dict[str, list[dict]] = {}
    outputs: dict[str, list[dict]] = {}
    version: Any = None
    storyboard = profile = None
    names: set[Any] = set()
    if isinstance(data, dict):  # format 1: {"shots": {name: entry}, "outputs": {path: entry}}
        for section, target in (("shots", shots), ("outputs", outputs)):
            values = data.get(section)
            for key, entry in (values.items() if isinstance(values, dict) else ()):
                if isinstance(entry, dict):
                    target.setdefault(key, []).append(entry)
        version, storyboard = data.get("version"), data.get("storyboard")
        names.add(storyboard)
    elif isinstance(data, list):
        for record in data:
            if not isinstance(record, dict):
                continue
            if HEADER_KEY in record:
                version, storyboard = record.get(HEADER_KEY), record.get("storyboard")
                profile = record.get("profile")
                names.add(storyboard)
                continue
            key, target = (record.get("shot"), shots) if "shot" in record else \
                (record.get("output"), outputs)
            if isinstance(key, str):
                entry = {k: v for k, v in record.items() if k not in ("shot", "output")}
                group = target.setdefault(key, [])
                if entry not in group:  # a union merge may repeat a line
                    group.append(entry)
    return Lock({k: tuple(v) for k, v in shots.items()},
                {k: tuple(v) for k, v in outputs.items()}, version,
                storyboard if isinstance(storyboard, str) else None,
                frozenset(n for n in names if isinstance(n, str)),
                profile if isinstance(profile, str) else None)


def read_lockfile(root: Path, profile: str | None = None, stem: str = "storyboard") -> Lock:
    """What the lock (storyboard.lock, or a profile's storyboard.<profile>.lock) and this
    clone's rehearsal records (`rehearsal_path`) name, together; an empty lock when neither
    can be read (`check_lockfile` says why)."""
    return _union(_read(lock_path(root, profile, stem)),
                  _read(rehearsal_path(root, profile, stem)))


def rehearsal_path(root: Path, profile: str | None = None, stem: str = "storyboard") -> Path:
    """Where the results of free local rehearsals (the preview) are recorded: beside the
    ledger, never in git, so a rehearsal never touches the committed lock (issue 26)."""
    paths = ProjectPaths(root, profile, stem)
    return paths.state / f"rehearsal.{paths.lock.name}"


def _read(path: Path) -> Lock:
    from ..errors import UserError

    try:
        data = _load(path)
    except (UserError, ValueError, OSError):  # none, or unreadable: check_lockfile says why
        return Lock()
    return _as_lock(data)


def _union(paid: Lock, rehearsed: Lock) -> Lock:
    def merged(a: Mapping[str, tuple[dict, ...]], b: Mapping[str, tuple[dict, ...]]):
        out = {k: list(v) for k, v in a.items()}
        for key, group in b.items():
            out.setdefault(key, []).extend(e for e in group if e not in out[key])
        return {k: tuple(v) for k, v in out.items()}

    if not rehearsed.shot_entries and not rehearsed.output_entries:
        return paid
    return Lock(merged(paid.shot_entries, rehearsed.shot_entries),
                merged(paid.output_entries, rehearsed.output_entries), paid.version,
                paid.storyboard or rehearsed.storyboard)


def write_lockfile(plan, state: State) -> list[str]:
    """Update the lock from the state of every shot and output in the plan: each paid result
    made now is added (an entry whose cache key the lock holds is kept as written), each
    shot's earlier paid results stay, and what the storyboard no longer has goes. Results of a
    local provider (the free preview), and films made from them, go to this clone's rehearsal
    records instead: a rehearsal never touches the committed lock (issue 26). A film keeps
    only its entry for what the storyboard now makes (a film is re-made free from its shots).

    The lock is read again here, strictly: git may have left it conflicted during the run
    (a merge in another terminal). Then both sides' results are kept with this run's, as
    `lock resolve` does; a lock that does not read at all is left as it is. Returns the
    warnings that say so."""
    from ..providers import LOCAL_PROVIDERS

    board = plan.resolved.storyboard
    root, profile, stem = board.root, board.profile, board.path.stem
    paid_old, warnings = _read_to_write(lock_path(root, profile, stem))
    if paid_old is None:
        return warnings
    rehearsed_old = _read(rehearsal_path(root, profile, stem))
    paid: dict[str, dict[str, list[dict]]] = {"shot": {}, "output": {}}
    rehearsed: dict[str, dict[str, list[dict]]] = {"shot": {}, "output": {}}
    # the cache keys of rehearsed shots: a film made from one is a rehearsal too
    rehearsal_keys = {e.get("cache_key") for lock in (paid_old, rehearsed_old)
                      for entries in lock.shot_entries.values() for e in entries
                      if e.get("provider") in LOCAL_PROVIDERS} | \
        {t.cache_key for t in plan.tasks.values()
         if t.kind == "generate" and t.provider in LOCAL_PROVIDERS}
    for task_id in plan.order:
        task = plan.tasks[task_id]
        if task.kind == "generate":
            kind, name = "shot", task.shot
            local = task.provider in LOCAL_PROVIDERS
            old_paid = paid_old.shot_entries.get(name or "", ())
            old_local = rehearsed_old.shot_entries.get(name or "", ())
        elif task.kind == "assemble":
            kind, name = "output", task.assemble_params.path
            local = any(plan.tasks[d].provider in LOCAL_PROVIDERS for d in _shots_of(plan, task))
            old_paid = paid_old.output_entries.get(name, ())
            old_local = rehearsed_old.output_entries.get(name, ())
        else:
            continue
        if name is None:
            continue
        # a format 1 lock held rehearsals too (shots and the films made from them): they
        # move to the rehearsal records
        moved = [e for e in old_paid if e.get("provider") in LOCAL_PROVIDERS or
                 (kind == "output" and local and e.get("cache_key") == task.cache_key) or
                 (kind == "output" and _made_from_any(e, rehearsal_keys))]
        kept = [e for e in old_paid if e not in moved]
        record = state.get(task.cache_key)
        new = _entry(task, record) if record is not None and record.status == "done" else None
        if local:
            earlier = [*old_local, *moved]
            same = [e for e in earlier if e.get("cache_key") == task.cache_key and
                    (new is None or e.get("sha256") == new.get("sha256"))]
            entry = (same[0] if same else new) or (_newest(tuple(earlier)) if earlier else None)
            if entry is not None:
                rehearsed[kind][name] = [entry]
        elif new is not None:
            if kind == "output":  # only the film the storyboard makes now
                kept = [e for e in kept if e.get("cache_key") == task.cache_key][:1]
            at = [i for i, e in enumerate(kept) if e.get("cache_key") == task.cache_key]
            if not at:
                kept.append(new)
            elif _facts(kept[at[0]]) != _facts(new):
                kept[at[0]] = new  # paid again for the same request (--force): its takes,
                # task and result URLs, the freshest way back; or another take picked
            # else: the same result (restored, or a film made again byte for byte): kept as
            # written, so the line never changes
        if kept:
            paid[kind][name] = kept
    if warnings:  # a lock git left conflicted mid-run: the other side's shots, which this
        # run's storyboard may not have yet, are kept too (nothing paid is dropped)
        for kind, entries in (("shot", paid_old.shot_entries),
                              ("output", paid_old.output_entries)):
            for name, group in entries.items():
                paid[kind].setdefault(name, list(group))
    header = {HEADER_KEY: LOCK_VERSION, "storyboard": board.name,
              **({"profile": profile} if profile is not None else {})}
    _write(lock_path(root, profile, stem), format_lock(header, paid["shot"], paid["output"]),
           bool(paid["shot"] or paid["output"]))
    _write(rehearsal_path(root, profile, stem),
           format_lock(header, rehearsed["shot"], rehearsed["output"]),
           bool(rehearsed["shot"] or rehearsed["output"]))
    return warnings


def _read_to_write(path: Path) -> tuple[Lock | None, list[str]]:
    """The lock a run is about to rewrite, and what to warn: a conflicted one as the union of
    its sides; None (leave it) when it does not read."""
    from ..errors import UserError

    if not (path.exists() or path.is_symlink()):
        return Lock(), []
    try:
        return _as_lock(_load(path)), []
    except Conflicted:
        pass
    except (UserError, ValueError, OSError) as exc:
        reason = exc.diagnostics[0].message if isinstance(exc, UserError) else str(exc)
        return None, [f"{path.name} could not be read when the run ended ({reason}): it was "
                      "left as it is. This run's results are kept in .kling-compose/state.db; "
                      "the next run writes them into the lock once it reads"]
    from ..files import read_bytes

    text = read_bytes(path, path.name, limit=MAX_LOCK_BYTES).decode("utf-8", "replace")
    sides = _sides(text)
    if sides is None:
        return None, [f"{path.name} has git conflict markers that do not parse as two locks: "
                      "it was left as it is; take one side (`git checkout --theirs "
                      f"{path.name}`), then run again: nothing is paid twice"]
    return _union(*sides), [f"{path.name} had git conflict markers when the run ended: both "
                            "sides' results were kept with this run's (as `kling-compose lock "
                            f"resolve` does); review it and `git add {path.name}`"]


def _made_from_any(entry: dict, cache_keys: set) -> bool:
    """A film's entry assembled from a shot result with one of these cache keys."""
    made_from = entry.get("made_from")
    inputs = made_from.get("inputs") if isinstance(made_from, dict) else None
    return isinstance(inputs, dict) and any(
        name.startswith("clip:") and key in cache_keys for name, key in inputs.items())


def _write(path: Path, text: str, anything: bool) -> None:
    """Write the lock's text when it changed; no file for nothing at all (a rehearsal of a new
    project makes no storyboard.lock)."""
    if path.is_file() and path.read_bytes() == text.encode("utf-8"):
        return
    if not anything and not path.exists():
        return
    # the temp file's name is the one .gitignore (commands/scaffold.py) and run's clean-up know
    replace_atomically(path, text, prefix=f".{path.name}.")


def _facts(entry: dict) -> tuple:
    """What identifies a result: its bytes and the provider's task (a restored result has the
    lock's own; a film only its bytes), and the take the storyboard picks of it."""
    return (entry.get("sha256"), entry.get("task_id"), entry.get("pick"))


def format_lock(header: dict, shots: Mapping[str, list[dict]],
                outputs: Mapping[str, list[dict]]) -> str:
    """Format 2: the header, then a line per entry, shots then outputs, sorted by name and
    then by when each result was made (a stable order: no run moves a line)."""
    def line(record: dict) -> str:
        return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))

    lines = [line(header)]
    for kind, section in (("shot", shots), ("output", outputs)):
        for name in sorted(section):
            for entry in sorted(section[name], key=lambda e: (str(e.get("created_at") or ""),
                                                             str(e.get("cache_key") or ""))):
                rest = {k: v for k, v in entry.items() if k not in ("shot", "output")}
                # the shot or film first, so a line reads (and a diff shows) whose it is
                lines.append(line({kind: name})[:-1] + ("," + line(rest)[1:] if rest else "}"))
    return "\n".join(lines) + "\n"


def _shots_of(plan, task) -> list[str]:
    """The generate tasks a film is assembled from."""
    return [d for d in task.depends_on if plan.tasks[d].kind == "generate"]


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


def resolve_conflict(root: Path, profile: str | None = None, stem: str = "storyboard") -> int:
    """Rewrite a lock git left with conflict markers as the union of both sides (each result
    was paid for; the storyboard picks the one it uses): `kling-compose lock resolve`. Returns
    the number of entries kept; a lock without markers is left as it is (0)."""
    from ..errors import UserError
    from ..files import read_bytes

    path = lock_path(root, profile, stem)
    if not path.is_file():
        raise UserError.single(f"no {path.name} here", hint="run `kling-compose lock resolve` "
                               "in the project folder (or give its path)")
    try:
        text = read_bytes(path, path.name, what=path.name, limit=MAX_LOCK_BYTES).decode("utf-8")
    except UnicodeDecodeError:
        raise UserError.single(f"{path.name} is not UTF-8 text", hint=f"take one side: `git "
                               f"checkout --theirs {path.name}` (or --ours)") from None
    if not any(line.startswith(CONFLICT_MARKERS) for line in _lines(text)):
        return 0
    try:
        locks = _sides(text, strict=True)
    except ValueError as exc:
        raise UserError.single(f"{path.name}: {exc}",
                               hint=f"take one side: `git checkout --theirs {path.name}` "
                                    "(or --ours)") from None
    merged = _union(locks[0], locks[1])
    header = {HEADER_KEY: LOCK_VERSION, "storyboard": merged.storyboard,
              **({"profile": profile} if profile is not None else {})}
    shots = {k: list(v) for k, v in merged.shot_entries.items()}
    outputs = {k: list(v) for k, v in merged.output_entries.items()}
    replace_atomically(path, format_lock(header, shots, outputs), prefix=f".{path.name}.")
    return sum(len(v) for v in shots.values()) + sum(len(v) for v in outputs.values())


def _sides(text: str, strict: bool = False):
    """The two locks a text with git's conflict markers holds (ours, theirs); None (or with
    `strict`, ValueError naming the side) when a side is not a lock."""
    sides: tuple[list[str], list[str]] = ([], [])
    state = "both"
    for line in _lines(text):
        if line.startswith("<<<<<<<"):
            state = "ours"
        elif line.startswith("|||||||"):
            state = "base"
        elif line.startswith("=======") and state in ("ours", "base"):
            state = "theirs"
        elif line.startswith(">>>>>>>"):
            state = "both"
        else:
            if state in ("both", "ours"):
                sides[0].append(line)
            if state in ("both", "theirs"):
                sides[1].append(line)
    locks = []
    for side, name in zip(sides, ("ours", "theirs")):
        try:
            locks.append(_as_lock(parse_text("\n".join(side) + "\n")))
        except ValueError as exc:
            if strict:
                raise ValueError(f"{name} side is not a lock ({exc})") from None
            return None
    return locks[0], locks[1]


def rename_lock(root: Path, profile: str | None, stem: str, name: str) -> str | None:
    """Record the storyboard's new `name` in its lock (`kling-compose lock rename`), every
    entry kept as written; returns the name it had, None when there is nothing to rename."""
    path = lock_path(root, profile, stem)
    if not path.is_file():
        return None
    check_lockfile(root, profile, stem)  # conflicted or unreadable: said, never "renamed"
    lock = _read(path)
    if lock.storyboard in (None, name) and lock.names <= {name}:
        return None
    header = {HEADER_KEY: LOCK_VERSION, "storyboard": name,
              **({"profile": profile} if profile is not None else {})}
    replace_atomically(path, format_lock(header, {k: list(v) for k, v in lock.shot_entries.items()},
                                         {k: list(v) for k, v in lock.output_entries.items()}),
                       prefix=f".{path.name}.")
    return lock.storyboard


GITATTRIBUTES = """\
# kling-compose: git merges the lock files line by line, keeping both sides' results (each
# was paid for; the storyboard picks the one it uses): no conflicts, no per-clone setup
storyboard.lock merge=union
storyboard.*.lock merge=union
"""


def _attribute_pattern(name: str, glob: str = "") -> str:
    """A .gitattributes pattern matching the file `name` (+ `glob`, a pattern itself): glob
    characters escaped, and C-quoted when it holds a space or a quote (git 2.20's quoting)."""
    import re

    escaped = re.sub(r"([\\\[\]*?!])", r"\\\1", name) + glob
    if not re.search(r'[\s"]', escaped):
        return escaped
    quoted = escaped.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + quoted.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r") + '"'


def setup_gitattributes(root: Path, stem: str = "storyboard") -> bool:
    """Add the merge attributes of the storyboard `stem`'s locks to the project's
    .gitattributes (created when missing); False when they are there already."""
    from ..errors import UserError
    from ..files import os_problem

    path = root / ".gitattributes"
    try:
        current = path.read_bytes().decode("utf-8") if path.exists() else ""
    except UnicodeDecodeError:
        raise UserError.single(".gitattributes is not UTF-8 text (git reads it as UTF-8)",
                               hint="save it as UTF-8 (PowerShell 5's `>` writes UTF-16), then "
                                    "run `kling-compose lock setup` again") from None
    except OSError as exc:
        raise UserError.single(f"cannot read .gitattributes: {os_problem(exc)}",
                               hint="it must be a file git can read; move it aside and run "
                                    "`kling-compose lock setup` again") from None
    text = GITATTRIBUTES.replace("storyboard.lock", _attribute_pattern(f"{stem}.lock")) \
        .replace("storyboard.*.lock", _attribute_pattern(stem, ".*.lock"))
    wanted = [line for line in text.splitlines() if line and not line.startswith("#")]
    if all(line in current.splitlines() for line in wanted):
        return False
    text = current + ("\n" if current and not current.endswith("\n") else "") + text
    replace_atomically(path, text)
    return True
