"""A shared artifact store: a team's paid clips, content-addressed, as DVC's remotes and
Bazel's remote cache keep build outputs.

A store is named by URL, in the storyboard (`store:`) or by KLING_COMPOSE_STORE: a folder (a
path, relative to the storyboard or absolute, or file:///...; a shared drive, an NFS mount) or
an S3-compatible bucket (s3://bucket/prefix, share/s3store.py). Objects are named as in the
local store, `<sha256><suffix>`, flat under the store's root. A name is its content, so a push
is create-only and idempotent: it never overwrites other bytes, and two machines pushing one
clip at once store it once. Everything pulled is hashed before it is adopted.

`push` sends every object storyboard.lock names that the store lacks (one listing, not a
request per object); `pull` fetches every one the local store lacks; `run` pulls what the lock
names before it would pay (project/restore.py treats a pulled take like a local one) and pushes
each clip it generated. Transfers run a few at a time, in threads, streaming. `inventory` is the
listing with each object's size and age, for `gc --store` (commands/gc.py): the only caller
that deletes anything but a claim.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Protocol
from urllib.parse import urlsplit

from ..files import user_mode
from ..paths import ProjectPaths
from ..project.store import Store, file_sha256

TRANSFERS = 4  # objects moving at once


class StoreError(Exception):
    """A shared store refused a request or could not be reached; the message names the bucket
    (and key) and what to check, never a credential. share/s3store.py translates every boto3
    and botocore error into it (or FileNotFoundError for a missing object) at its boundary."""


# what a shared store raises when it fails: StoreError (S3, translated at its boundary) or an
# OSError (a folder store; a local file read or written on the way). Anything else is a bug
# and propagates: never reported as "the store failed".
STORE_FAILURES: tuple[type[Exception], ...] = (StoreError, OSError)


@dataclass(frozen=True, slots=True)
class Stored:
    """An object in a shared store, as its listing shows it."""

    size: int  # bytes
    modified: float | None  # when it was written, seconds since the epoch; None: not said


class ArtifactStore(Protocol):
    url: str

    def listing(self) -> set[str]: ...
    def inventory(self) -> dict[str, Stored]: ...
    def put(self, source: Path, name: str) -> bool: ...
    def get(self, name: str, dest: Path) -> None: ...
    def delete(self, name: str) -> None: ...


class FolderStore:
    """A folder as a store: objects written to a temp name in the folder, then linked into
    place create-only (os.link fails if the name exists: never an overwrite, never half a
    file under a final name)."""

    def __init__(self, folder: Path, url: str) -> None:
        self.folder = folder
        self.url = url

    def listing(self) -> set[str]:
        if not self.folder.is_dir():
            return set()
        return {p.name for p in self.folder.iterdir() if not p.name.startswith(".")}

    def inventory(self) -> dict[str, Stored]:
        """Each regular file of the listing (never a folder or a link), with its size and
        mtime: when it was linked into place, as a push copies the bytes anew."""
        found: dict[str, Stored] = {}
        if not self.folder.is_dir():
            return found
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):  # a push's temp file
                    continue
                try:
                    if entry.is_file(follow_symlinks=False):
                        info = entry.stat(follow_symlinks=False)
                        found[entry.name] = Stored(info.st_size, info.st_mtime)
                except FileNotFoundError:  # removed while listed
                    continue
        return found

    def put(self, source: Path, name: str) -> bool:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / name
        if target.exists():
            return False
        fd, temp = tempfile.mkstemp(dir=self.folder, prefix=".push-")
        os.close(fd)
        try:
            shutil.copyfile(source, temp)
            # readable by the team as the user's other files are, not mkstemp's 0600
            os.chmod(temp, user_mode())
            with open(temp, "rb") as f:
                os.fsync(f.fileno())
            try:
                os.link(temp, target)  # create-only
            except FileExistsError:
                return False
            return True
        finally:
            Path(temp).unlink(missing_ok=True)

    def get(self, name: str, dest: Path) -> None:
        source = self.folder / name
        if not source.is_file():
            raise FileNotFoundError(f"{self.url}: no {name}")
        shutil.copyfile(source, dest)

    def delete(self, name: str) -> None:
        """Remove `name` if it is there: a released claim, or what `gc --store` found that no
        lock names (nothing else deletes from a store)."""
        (self.folder / name).unlink(missing_ok=True)


def open_store(url: str, root: Path) -> ArtifactStore:
    """The store a URL names; a relative folder is relative to the project."""
    if url.startswith("s3://"):
        from .s3store import S3Store

        return S3Store(url)
    parts = urlsplit(url)
    if parts.scheme == "file":
        return FolderStore(Path(parts.path), url)
    if parts.scheme and len(parts.scheme) > 1:
        from ..errors import UserError

        raise UserError.single(f"artifact store '{url}': unknown kind of URL",
                               hint="a folder (a path or file:///...) or s3://bucket/prefix")
    folder = Path(url).expanduser()
    return FolderStore(folder if folder.is_absolute() else root / folder, url)


def project_store(storyboard, settings) -> ArtifactStore | None:
    """The store KLING_COMPOSE_STORE names (a user's own), else the storyboard's `store:`,
    else the project file's (project/defaults.py)."""
    from ..project.defaults import project_defaults

    url = settings.store_url or storyboard.store or project_defaults(storyboard.root).store
    return open_store(url, storyboard.root) if url else None


def export_lock(root: Path, store: Store, profile: str | None = None,
                stem: str = "storyboard", wanted: dict[str, str] | None = None) -> list[Path]:
    """Each film and shot clip the lock (a profile's) names, where a run would put it
    (renders/..., renders/<profile>/shots/...), from the local store: a teammate watches the
    film after `pull`, without a key. `wanted` (shot id or film path -> the cache key the
    storyboard now asks for) picks among a shot's several paid results the one the
    storyboard uses; without it, or for a name it lacks, the newest."""
    from ..project.lockfile import read_lockfile

    lock = read_lockfile(root, profile, stem)
    wanted = wanted or {}
    written = []
    outputs = {path: lock.output(path, wanted.get(path)) for path in lock.output_entries}
    shots = {shot: lock.shot(shot, wanted.get(shot)) for shot in lock.shot_entries}
    places = [(root / path, entry) for path, entry in outputs.items()]
    for shot, entry in shots.items():
        if entry is None:
            continue
        pick = entry.get("pick", 1) if isinstance(entry.get("pick"), int) else 1
        digests = entry.get("sha256") or []
        if isinstance(digests, list) and 0 < pick <= len(digests):
            places.append((ProjectPaths(root, profile, stem).shot_clip(shot),
                           {"sha256": [digests[pick - 1]]}))
    for target, entry in places:
        digests = entry.get("sha256") if isinstance(entry, dict) else None
        if not (isinstance(digests, list) and digests and isinstance(digests[0], str)):
            continue
        suffix = store.find(digests[0])
        if suffix is None or not target.resolve().is_relative_to(root.resolve()):
            continue
        store.export(digests[0], suffix, target)
        written.append(target)
    return written


def store_failure(remote: ArtifactStore, exc: Exception):  # exc: one of STORE_FAILURES
    """A store that cannot be read or written, before anything is paid: say which."""
    from ..errors import UserError

    return UserError.single(
        f"artifact store {remote.url}: {exc}",
        hint="check the store's URL and credentials (AWS_* variables or profile for s3://) "
             "and that its server is up (a transfer cut off midway leaves nothing half-written: "
             "run the command again), or run without it: unset KLING_COMPOSE_STORE / remove "
             "`store:`")


@dataclass(frozen=True, slots=True)
class Transfer:
    done: tuple[str, ...]  # names moved
    present: int  # already on the other side
    refused: tuple[str, ...] = ()  # pulled bytes that did not hash to their name


def lock_objects(root: Path, store: Store, profiles: Iterable[str | None] = (None,),
                 stem: str = "storyboard") -> dict[str, str]:
    """{sha256: suffix} of every take and film the locks of `profiles` name (None:
    storyboard.lock; suffix from the local store when it is there, else .mp4)."""
    from ..project.lockfile import read_lockfile

    found: dict[str, str] = {}
    for profile in profiles:
        found.update(_lock_objects(read_lockfile(root, profile, stem), store))
    return found


def _lock_objects(lock, store: Store) -> dict[str, str]:
    found: dict[str, str] = {}
    for section, groups in (("shots", lock.shot_entries), ("outputs", lock.output_entries)):
        for key, entry in ((k, e) for k, group in groups.items() for e in group):
            digests = entry.get("sha256") if isinstance(entry, dict) else None
            default = Path(key).suffix if section == "outputs" and Path(key).suffix else ".mp4"
            for digest in digests if isinstance(digests, list) else ():
                if isinstance(digest, str) and len(digest) == 64:
                    found[digest] = store.find(digest) or default
    return found


def push(remote: ArtifactStore, store: Store, objects: dict[str, str]) -> Transfer:
    """Send each local object of `objects` the remote lacks."""
    have = remote.listing()
    todo = [(d, s) for d, s in objects.items()
            if d + s not in have and store.has(d, s)]
    with ThreadPoolExecutor(TRANSFERS) as pool:
        written = list(pool.map(lambda item: remote.put(store.path(*item), item[0] + item[1])
                                and item[0] + item[1], todo))
    done = tuple(name for name in written if name)
    return Transfer(done, len(objects) - len(todo))


def pull(remote: ArtifactStore, store: Store, objects: dict[str, str]) -> Transfer:
    """Fetch each object of `objects` the local store lacks and the remote has; adopt it only
    if its bytes hash to its name."""
    todo = [(d, s) for d, s in objects.items() if store.find(d) is None]
    have = remote.listing() if todo else set()
    todo = [(d, s) for d, s in todo if d + s in have]

    def fetch(item) -> tuple[str, bool]:
        digest, suffix = item
        temp = store.temp_path(suffix)
        try:
            remote.get(digest + suffix, temp)
            if file_sha256(temp) != digest:
                return digest + suffix, False
            store.adopt(temp)
            return digest + suffix, True
        finally:
            temp.unlink(missing_ok=True)

    with ThreadPoolExecutor(TRANSFERS) as pool:
        results = list(pool.map(fetch, todo))
    return Transfer(tuple(n for n, ok in results if ok), len(objects) - len(todo),
                    tuple(n for n, ok in results if not ok))
