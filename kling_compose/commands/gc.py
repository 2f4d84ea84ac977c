"""`kling-compose gc`: remove stored objects nothing needs any more.

Kept: every take and film any lock in the folder names (each storyboard's and profile's, and
the rehearsal records), every paid generation the ledger holds (a hosted provider's takes:
paid bytes are never garbage here, even of a shot since removed or of a run killed before it
wrote its lock), and every artifact of a ledger row whose cache key is in one of the given
plans (the storyboard as the last run ran it, and as it would run with no flags). Everything
else under .kling-compose/objects (preview takes of changed shots, old films, frames of
deleted chains) goes; the ledger rows that named them then read as `missing`, made again
for free if ever needed.

`gc --store` does the same for the team's shared artifact store (share/artifacts.py): it removes
what no lock names, in this folder or on any git ref, once it is older than an age (below).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..paths import ProjectPaths
from ..project.lockfile import (
    HEADER_KEY,
    MAX_LOCK_BYTES,
    Conflicted,
    all_locks,
    parse_lock,
    parse_text,
)
from ..project.state import State, state_path
from ..share.artifacts import TRANSFERS, ArtifactStore, Stored


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
        from ..providers import LOCAL_PROVIDERS

        state = State(path, readonly=True)
        try:
            # every paid generation the ledger holds, whatever storyboard or lock: another
            # storyboard file's run killed before it wrote its lock, a shot since removed.
            # Paid bytes are never garbage here; only what is free to make again is
            for row in state.all():
                if row.kind == "generate" and row.provider is not None and \
                        row.provider not in LOCAL_PROVIDERS:
                    keep |= {digest for digest, _ in row.artifacts}
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


# -- gc --store: the shared artifact store --------------------------------------------------------
#
# What it removes, and only when older than the age (--older-than, default DEFAULT_AGE):
#   - a clip or film `<sha256><suffix>` whose digest no lock names: no lock file in the
#     storyboard's folder (every storyboard's and profile's, and this clone's rehearsal
#     records), and none on any git ref given (default: every branch, remote-tracking branch and
#     tag, and HEAD), unless a result record that is kept names it;
#   - a finished generation's team records whose takes no lock names: its result record
#     (`result-<key>.json`), its claim (`claim-<key>.json`) and task records
#     (`task-<key>-<nonce>.json`), all older than the age, with the takes. They go together,
#     the claim first: a claim left without its result, or a result without its takes, would
#     have every later run of that shot wait on a holder that never publishes (share/claims.py,
#     engine/team.py), where with all of them gone it is claimed anew. Removed in this order,
#     a gc stopped half-way leaves a result and takes (adopted as before) or bare takes.
# What it keeps: a claim without a result (a generation in flight, or whose holder died: no
# one can prove nothing is running at the provider; docs/format.md says how to remove it by
# hand), its task records, a result record that does not parse (and every digest its text
# holds), every object whose name is not one kling-compose writes, and everything younger
# than the age (a teammate may have pushed clips whose lock is on no ref this clone knows).

DEFAULT_AGE = "30d"
AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
GIT_TIMEOUT_S = 60
BLOBS_AT_ONCE = 64  # lock files read by one `git cat-file --batch`

_DIGEST = re.compile(r"[0-9a-f]{64}")
_CONTENT = re.compile(r"([0-9a-f]{64})\.[A-Za-z0-9]{1,7}")
_RECORD = re.compile(r"(claim|result)-([0-9a-f]+)\.json|task-([0-9a-f]+)-[0-9a-f]+\.json")


def parse_age(text: str) -> float:
    """Seconds in an age: `0`, or a count and a unit, `30d`, `12h`, `90m`, `45s`, `2w`, or
    several, `1d12h`. ValueError (said for the user) otherwise."""
    value = text.strip().lower()
    if value == "0":
        return 0.0
    parts = re.fullmatch(r"(?:\d+[smhdw])+", value) and re.findall(r"(\d+)([smhdw])", value)
    if not parts:
        raise ValueError(f"'{text}' is not an age: write a number and a unit, e.g. 30d, "
                         "12h, 90m, 2w, 1d12h, or 0 for any age")
    return float(sum(int(count) * AGE_UNITS[unit] for count, unit in parts))


def shown_age(seconds: float) -> str:
    for unit in "dhm":
        if seconds >= AGE_UNITS[unit]:
            return f"{int(seconds // AGE_UNITS[unit])}{unit}"
    return f"{max(0, int(seconds))}s"


@dataclass(frozen=True, slots=True)
class Locks:
    """What every lock gc --store read names."""

    digests: frozenset[str]
    files: int  # lock files read (the working tree's and each distinct one on the refs)
    refs: tuple[str, ...]  # the git refs read; () outside a git repository
    note: str | None = None  # said before the result: why only the working tree counted


@dataclass(frozen=True, slots=True)
class StoreGarbage:
    remove: tuple[tuple[str, Stored], ...]  # in the order they go (a group's claim first)
    bytes: int
    named: int  # clips a lock names
    young: int  # unnamed, younger than the age (or of unknown age)
    records: int  # team records kept, and clips a kept result names
    other: int  # objects of names kling-compose does not write


def read_locks(root: Path, refs: tuple[str, ...] | None) -> Locks:
    """Every digest the locks name: the working tree's (each `*.lock` beside the storyboard
    and the rehearsal records) and, in a git repository, each `*.lock` in the storyboard's
    folder on `refs` (None: every branch, remote-tracking branch and tag, and HEAD), read
    with git (no checkout). A lock of ours with conflict markers, or that does not read, is a
    UserError naming it: nothing is removed on a guess."""
    digests, files = _tree_digests(root)
    prefix, note = _repository(root, refs)
    if note is not None:
        return Locks(frozenset(digests), files, (), note)
    names = list(refs) if refs else _default_refs(root)
    found, read = _ref_digests(root, prefix, names)
    return Locks(frozenset(digests | found), files + read, tuple(names))


def _lock_files(root: Path):
    try:
        return sorted(p for p in root.glob("*.lock") if not p.name.startswith("."))
    except (OSError, ValueError):
        return []


def _yaml_stems(names) -> set[str]:
    return {n.rsplit(".", 1)[0] for n in names if n.endswith((".yaml", ".yml"))}


def _ours(name: str, text: str, stems: set[str]) -> bool:
    """A kling-compose lock: named after a storyboard beside it (`S.lock`, `S.P.lock`) or
    holding our header; a `yarn.lock` or `poetry.lock` in the folder is none of gc's business."""
    stem = name[:-len(".lock")]
    return stem in stems or stem.rsplit(".", 1)[0] in stems or f'"{HEADER_KEY}"' in text


def _tree_digests(root: Path) -> tuple[set[str], int]:
    """The digests the working tree's locks name, and how many lock files of ours it has;
    one of ours that does not read is check_lockfile's UserError (the fix named)."""
    from ..files import read_bytes
    from ..project.lockfile import check_lockfile

    try:
        stems = _yaml_stems(p.name for p in root.iterdir())
    except OSError:
        stems = set()
    files = 0
    for path in _lock_files(root):
        try:
            text = read_bytes(path, path.name, limit=MAX_LOCK_BYTES).decode("utf-8", "replace")
        except UserError:
            text = ""
        if _ours(path.name, text, stems):
            files += 1
            stem = path.name[:-len(".lock")]
            if stem in stems or "." not in stem:
                check_lockfile(root, None, stem)
            else:
                check_lockfile(root, stem.rsplit(".", 1)[1], stem.rsplit(".", 1)[0])
    return _lock_digests(root), files


def _git(root: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """`git ARGS` in the project's folder, its output as bytes (names may be any bytes);
    FileNotFoundError when git is not installed."""
    try:
        return subprocess.run(["git", *args], cwd=root, input=stdin, capture_output=True,
                              check=False, timeout=GIT_TIMEOUT_S,
                              env=os.environ | {"GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"})
    except subprocess.TimeoutExpired:
        raise UserError.single(f"gc --store: `git {args[0]}` took more than {GIT_TIMEOUT_S} s",
                               hint="check the repository (`git status`); nothing was "
                                    "removed") from None


def _said(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.decode("utf-8", "replace").splitlines()
             if line.strip()]
    return lines[0].removeprefix("fatal: ").strip() if lines else f"exit {done.returncode}"


def _repository(root: Path, refs: tuple[str, ...] | None) -> tuple[str, str | None]:
    """The storyboard folder's path in its git repository ('' or 'films/harbour/'), or a
    note when the folder is not in one (and no --ref was asked for: then a UserError)."""
    only_tree = ("only the locks in this folder keep objects: a lock committed on a branch "
                 "of another clone is not seen")
    try:
        done = _git(root, "rev-parse", "--show-prefix")
    except FileNotFoundError:
        inside = any((folder / ".git").exists() for folder in (root.resolve(),
                                                               *root.resolve().parents))
        if inside or refs:
            raise UserError.single(
                "gc --store reads the locks on every branch with git, which is not installed "
                "(or not on PATH)", hint="install git and run it again; nothing was "
                                         "removed") from None
        return "", f"note: this project is not in a git repository: {only_tree}"
    if done.returncode != 0:
        said = _said(done)
        if "not a git repository" in said and not refs:
            return "", f"note: this project is not in a git repository: {only_tree}"
        if "not a git repository" in said:
            raise UserError.single("--ref: this project is not in a git repository",
                                   hint="leave --ref out: the locks in this folder are read")
        raise UserError.single(f"gc --store: git cannot read this repository ({said})",
                               hint="fix what git says (`git status`) and run it again; "
                                    "nothing was removed")
    prefix = done.stdout.decode("utf-8", "surrogateescape").removesuffix("\n")
    if "\n" in prefix:
        raise UserError.single("gc --store: the project's folder has a line break in its "
                               "path, which git's batch reading cannot name",
                               hint="move the project to a folder without one")
    if refs:
        for ref in refs:
            if not ref or ref.startswith("-") or any(c in ref for c in "\0\n :"):
                raise UserError.single(f"--ref: '{ref}' is not a git ref",
                                       hint="give a branch, tag or commit, e.g. --ref "
                                            "origin/main")
            known = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
            if known.returncode != 0:
                raise UserError.single(f"--ref: git does not know the ref '{ref}'",
                                       hint="`git branch -a` and `git tag` list the refs "
                                            "this clone knows (`git fetch --all` first); "
                                            "nothing was removed")
    return prefix, None


def _default_refs(root: Path) -> list[str]:
    """Every local branch, remote-tracking branch and tag this clone knows, and HEAD (a
    detached checkout's commit)."""
    done = _git(root, "for-each-ref", "--format=%(refname)", "refs/heads", "refs/remotes",
                "refs/tags")
    if done.returncode != 0:
        raise UserError.single(f"gc --store: git cannot list the refs ({_said(done)})",
                               hint="fix what git says (`git status`); nothing was removed")
    names = done.stdout.decode("utf-8", "surrogateescape").split()
    if _git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}").returncode == 0:
        names.append("HEAD")
    return names


def _ref_digests(root: Path, prefix: str, refs: list[str]) -> tuple[set[str], int]:
    """The digests every `*.lock` of the folder names on each ref, and how many distinct lock
    files were read. Refs that share the folder's tree read it once, and each lock blob is read
    once however many refs hold it."""
    folder = prefix.rstrip("/")
    asked = "".join(f"{ref}:{folder}\n" for ref in refs).encode("utf-8", "surrogateescape")
    checked = _git(root, "cat-file", "--batch-check", stdin=asked)
    if checked.returncode != 0:
        raise UserError.single(f"gc --store: git cannot read the refs ({_said(checked)})",
                               hint="fix what git says (`git status`); nothing was removed")
    trees: dict[str, list[str]] = {}  # tree id -> the refs whose folder it is
    for ref, line in zip(refs, checked.stdout.decode("utf-8", "replace").splitlines()):
        fields = line.split()
        if len(fields) == 3 and fields[1] == "tree":  # else: no such folder on that ref
            trees.setdefault(fields[0], []).append(ref)
    blobs: dict[str, tuple[str, list[str]]] = {}  # lock blob id -> its name, where (ref:path)
    stems_of: dict[str, set[str]] = {}
    for tree, holders in trees.items():
        listed = _git(root, "ls-tree", "-z", "--full-tree", tree)  # not relative to cwd
        if listed.returncode != 0:
            raise UserError.single(f"gc --store: git cannot list {holders[0]}:{folder} "
                                   f"({_said(listed)})", hint="nothing was removed")
        entries = []
        for item in listed.stdout.split(b"\0"):
            if b"\t" not in item:
                continue
            meta, name = item.split(b"\t", 1)
            mode, kind, oid = meta.decode().split()
            entries.append((mode, kind, oid, name.decode("utf-8", "surrogateescape")))
        stems = _yaml_stems(name for _, _, _, name in entries)
        for mode, kind, oid, name in entries:
            if kind == "blob" and mode in ("100644", "100755") and name.endswith(".lock"):
                blobs.setdefault(oid, (name, []))[1].extend(
                    f"{_short(ref)}:{prefix}{name}" for ref in holders)
                stems_of[oid] = stems_of.get(oid, set()) | stems
    digests: set[str] = set()
    oids = list(blobs)
    for start in range(0, len(oids), BLOBS_AT_ONCE):
        chunk = oids[start:start + BLOBS_AT_ONCE]
        for oid, data in zip(chunk, _cat_blobs(root, chunk, [blobs[o][1][0] for o in chunk])):
            digests |= _blob_digests(data, *blobs[oid], stems_of[oid])
    return digests, len(oids)


def _short(ref: str) -> str:
    for kind in ("refs/heads/", "refs/remotes/", "refs/tags/"):
        if ref.startswith(kind):
            return ref[len(kind):]
    return ref


def _cat_blobs(root: Path, oids: list[str], places: list[str]) -> list[bytes]:
    """The bytes of each blob, from one `git cat-file --batch`; a blob git does not have (a
    partial clone that cannot fetch it) is refused, named."""
    done = _git(root, "cat-file", "--batch", stdin="".join(o + "\n" for o in oids).encode())
    if done.returncode != 0:
        raise UserError.single(f"gc --store: git cannot read the lock files ({_said(done)})",
                               hint="nothing was removed")
    out, at, found = done.stdout, 0, []
    for place in places:
        end = out.index(b"\n", at)
        header = out[at:end].split()
        if len(header) != 3:  # "<oid> missing"
            raise UserError.single(f"gc --store: git cannot read {place}",
                                   hint="fetch it (`git fetch`), or leave its ref out with "
                                        "--ref; nothing was removed")
        size = int(header[2])
        found.append(out[end + 1:end + 1 + size])
        at = end + 1 + size + 1  # the content, then a newline
    return found


def _blob_digests(data: bytes, name: str, places: list[str], stems: set[str]) -> set[str]:
    """The digests a lock blob (the file `name`) names; a lock of ours that cannot be read is
    refused, named at `places` (ref:path, the first of them)."""
    where = places[0] + (f" (and on {len(places) - 1} other ref(s))" if len(places) > 1 else "")
    text = data.decode("utf-8", "replace")
    if not _ours(name, text, stems):
        return set()
    hint = ("fix it on that branch (`git switch BRANCH`, `kling-compose lock resolve`, "
            "commit), or name the refs to read with --ref; nothing was removed")
    if len(data) > MAX_LOCK_BYTES:
        raise UserError.single(f"{where} has more than {MAX_LOCK_BYTES:,} bytes: not a lock "
                               "gc can read", hint=hint)
    try:
        parse_text(data.decode("utf-8"))
    except Conflicted as exc:
        raise UserError.single(f"{where} {exc}: a git merge left both sides in it; gc "
                               "cannot tell which clips it keeps", hint=hint) from None
    except ValueError as exc:  # not UTF-8, not JSON, nested too deep
        raise UserError.single(f"{where} does not read as a lock ({exc}); gc cannot tell "
                               "which clips it keeps", hint=hint) from None
    digests: set[str] = set()
    for entry in parse_lock(text).entries():
        values = entry.get("sha256")
        if isinstance(values, list):
            digests |= {v for v in values if isinstance(v, str)}
    return digests


def find_store_garbage(remote: ArtifactStore, named: frozenset[str], age_s: float,
                       now: float | None = None) -> StoreGarbage:
    """What `gc --store` removes from `remote` (see above), from one listing and a read of
    each result record. Raises what the store raises (artifacts.STORE_FAILURES)."""
    now = time.time() if now is None else now
    listed = remote.inventory()

    def old(name: str) -> bool:
        modified = listed[name].modified
        return modified is not None and now - modified >= age_s

    content: dict[str, list[str]] = {}
    claims: dict[str, str] = {}
    results: dict[str, str] = {}
    tasks: dict[str, list[str]] = {}
    other = 0
    for name in sorted(listed):
        record = _RECORD.fullmatch(name)
        clip = _CONTENT.fullmatch(name)
        if clip:
            content.setdefault(clip.group(1), []).append(name)
        elif record and record.group(1) == "claim":
            claims[record.group(2)] = name
        elif record and record.group(1) == "result":
            results[record.group(2)] = name
        elif record:
            tasks.setdefault(record.group(3), []).append(name)
        else:
            other += 1
    read = _read_results(remote, sorted(results.values()))
    groups = {key: [n for n in (claims.get(key), *tasks.get(key, ()), name) if n is not None]
              for key, name in results.items()}
    stale = {key for key, name in results.items()
             if read[name][1] and not (read[name][0] & named)
             and all(old(n) for n in groups[key])
             and all(old(n) for digest in read[name][0] for n in content.get(digest, ()))}
    while True:  # a take two results name goes only when both do
        protected = {d for key, name in results.items() if key not in stale
                     for d in read[name][0]}  # digests a kept result names
        shared = {key for key in stale if read[results[key]][0] & protected}
        if not shared:
            break
        stale -= shared
    remove: list[str] = []
    for key in sorted(stale):
        remove += groups[key] + [n for digest in sorted(read[results[key]][0])
                                 for n in content.get(digest, ())]
    kept_records = sum(len(groups[key]) for key in results if key not in stale)
    kept_records += sum(1 for key in claims if key not in results)
    kept_records += sum(len(names) for key, names in tasks.items() if key not in results)
    going = set(remove)
    counts = {"named": 0, "young": 0, "records": 0}
    for digest, names in sorted(content.items()):
        for name in names:
            if name in going:
                continue
            if digest in named:
                counts["named"] += 1
            elif digest in protected:
                counts["records"] += 1
            elif not old(name):
                counts["young"] += 1
            else:
                remove.append(name)
    chosen = tuple((name, listed[name]) for name in remove)
    return StoreGarbage(chosen, sum(s.size for _, s in chosen), counts["named"],
                        counts["young"], kept_records + counts["records"], other)


def _read_results(remote: ArtifactStore, names: list[str]) -> dict[str, tuple[set[str], bool]]:
    """Each result record's take digests, and whether it parsed as `claims.publish` writes
    it (one that does not keeps every digest its text holds, and itself)."""

    def read(name: str) -> tuple[set[str], bool]:
        fd, temp = tempfile.mkstemp(suffix=".json")
        os.close(fd)
        try:
            try:
                remote.get(name, Path(temp))
            except FileNotFoundError:  # gone since the listing: nothing of it to keep
                return set(), False
            raw = Path(temp).read_bytes()[:MAX_LOCK_BYTES].decode("utf-8", "replace")
        finally:
            Path(temp).unlink(missing_ok=True)
        try:
            artifacts = json.loads(raw).get("artifacts")
        except (ValueError, AttributeError):
            artifacts = None
        if not (isinstance(artifacts, list) and artifacts and all(
                isinstance(a, list) and len(a) == 2 and isinstance(a[0], str)
                and _DIGEST.fullmatch(a[0]) for a in artifacts)):
            return set(_DIGEST.findall(raw)), False
        return {a[0] for a in artifacts}, True

    with ThreadPoolExecutor(TRANSFERS) as pool:
        return dict(zip(names, pool.map(read, names)))


def store_gc(storyboard, refs: tuple[str, ...], age_s: float, dry_run: bool,
             echo: Callable[..., None]) -> None:
    """`kling-compose gc --store`: read every lock, list the store, remove (or with
    `dry_run` list) what no lock names and is older than `age_s`. `echo(text, err=False)`
    prints; each object is said removed only once it is."""
    from ..settings import Settings
    from ..share.artifacts import STORE_FAILURES, project_store, store_failure

    root = storyboard.root
    remote = project_store(storyboard, Settings.from_environment(project_root=root))
    if remote is None:
        raise UserError.single("this project names no artifact store",
                               hint="add `store: s3://bucket/prefix` (or a folder) to the "
                                    "storyboard, or set KLING_COMPOSE_STORE")
    locks = read_locks(root, refs or None)
    if locks.note:
        echo(locks.note, err=True)
    verb = "would remove" if dry_run else "removed"
    now = time.time()
    try:
        garbage = find_store_garbage(remote, locks.digests, age_s, now)
        for name, stored in garbage.remove:
            if not dry_run:
                remote.delete(name)
            age = "age unknown" if stored.modified is None else \
                f"{shown_age(now - stored.modified)} old"
            echo(f"{verb} {name} ({stored.size} bytes, {age})")
    except STORE_FAILURES as exc:
        raise store_failure(remote, exc) from None
    where = f"{len(locks.refs)} git ref(s) and this folder" if locks.refs else "this folder"
    echo(f"{len(garbage.remove)} object(s) in {remote.url}, "
         f"{'would free' if dry_run else 'freed'} {garbage.bytes / 1e6:.1f} MB; kept "
         f"{garbage.named} named by a lock ({locks.files} lock file(s) in {where}), "
         f"{garbage.young} younger than {shown_age(age_s)}, {garbage.records} team "
         f"record(s) and the clips they name, {garbage.other} not kling-compose's")
