"""Content-addressed artifacts under .kling-compose/objects: sha256-named, written atomically.

A file is streamed into a temp file in the store while it is hashed, then renamed onto its
final name; a reader never sees half a file, and the same content is stored once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..files import replace_atomically
from ..paths import OBJECTS, TMP
from ..plan import file_digest as file_sha256

_VERIFIED: dict[tuple, str] = {}  # objects hashed in this process: (path, stat) -> sha256


class Store:
    """Artifacts by sha256, each with the suffix it was stored with (.mp4, .png...), in the
    state folder `root` (a project's ProjectPaths.state)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / OBJECTS
        self.tmp = root / TMP

    def path(self, digest: str, suffix: str) -> Path:
        return self.objects / digest[:2] / f"{digest}{suffix}"

    def has(self, digest: str, suffix: str) -> bool:
        return self.path(digest, suffix).is_file()

    def intact(self, digest: str, suffix: str) -> bool:
        """The object is there and its bytes hash to its name. Hashed once per process while
        the file stays the same (inode, size, mtime and ctime): `run` checks each object in
        its plan and again before reusing it, and hashing 300 clips twice was most of a
        no-op re-run."""
        path = self.path(digest, suffix)
        try:
            st = path.stat()
        except OSError:
            return False
        if not path.is_file():
            return False
        key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if _VERIFIED.get(key) == digest:
            return True
        if file_sha256(path) != digest:
            return False
        _VERIFIED[key] = digest
        return True

    def verify(self, digest: str, suffix: str) -> bool:
        """intact(); a damaged object is removed, so that it is made (or fetched) again
        instead of being used."""
        if self.intact(digest, suffix):
            return True
        self.path(digest, suffix).unlink(missing_ok=True)
        return False

    def find(self, digest: str, repair: bool = False) -> str | None:
        """The suffix an intact object with this sha256 is stored with, or None (repair=True:
        a damaged one is removed)."""
        folder = self.objects / digest[:2]
        if not folder.is_dir():
            return None
        for path in sorted(folder.glob(f"{digest}.*")) + sorted(folder.glob(digest)):
            suffix = path.name[len(digest):]
            if (self.verify if repair else self.intact)(digest, suffix):
                return suffix
        return None

    def temp_path(self, suffix: str) -> Path:
        """A fresh path inside the store for a tool (ffmpeg) to write into; pass it to adopt()."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.tmp, suffix=suffix)
        os.close(fd)
        return Path(name)

    def adopt(self, temp: Path) -> str:
        """Move a finished temp file into the store under its sha256; returns the digest.
        The file gets the user's umask and is fsynced (files.replace_atomically); on a
        failure it is removed."""
        digest = file_sha256(temp)
        target = self.path(digest, temp.suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(target, move_from=temp)
        return digest

    def export(self, digest: str, suffix: str, destination: Path) -> None:
        """Copy an artifact to a user-visible path atomically (renders/...)."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        source = self.path(digest, suffix)
        replace_atomically(destination, produce=lambda temp: shutil.copyfile(source, temp))

    def clean_temp(self) -> None:
        """Remove temp files left by an interrupted run."""
        if self.tmp.is_dir():
            shutil.rmtree(self.tmp, ignore_errors=True)


def refuse_links(folder: Path, root: Path) -> None:
    """No symbolic link anywhere under the project's own folder (.kling-compose): the ledger,
    run.lock, objects/ab/ and tmp/ are written in place, and a link there would put the
    database or paid clips outside the project. A UserError naming the first one."""
    from ..errors import UserError

    pending = [folder]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:  # gone, or unreadable: whatever writes there says so
            continue
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.is_symlink():
                shown = os.path.relpath(entry.path, root)
                raise UserError.single(
                    f"{shown} is a symbolic link: kling-compose writes in its own folder only "
                    "real files and folders, never through a link",
                    hint=f"remove the link (rm {shown}); what it points to is left as it is")
            if entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
