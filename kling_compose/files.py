"""Reading and writing the user's files without trusting what the path leads to.

A path the user gives (a storyboard, a `--vars` file, a saved plan, an output) may be a named
pipe (reading blocks for ever), a link to /dev/zero (reading never ends), a device node (an
atomic write would replace it with a regular file), a folder, a symbolic link loop, or longer
than the file system takes. Every read here opens without blocking, refuses what is not a
regular file and reads at most a bound; every write goes to a temp file beside the target and
is renamed over it only when the target is a regular file (or nothing), never over a file the
project reads. Each refusal is a UserError naming the path as the user wrote it.

Every file the project writes (outputs, the lock, films, the store's objects) is replaced
through `replace_atomically` (or its context-manager form `atomic_path`): one permission
policy (the user's umask), fsynced, and no temp file left behind on any failure.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import Callable, Iterable, Iterator

from .errors import Location, UserError

MAX_TEXT_BYTES = 16 << 20  # a storyboard, a --vars file, a saved plan: far more than any needs


def kind_of(mode: int) -> str:
    """What a file of st_mode `mode` is, as the messages name it."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def os_problem(exc: OSError) -> str:
    """Why an OSError happened, in words that name no temp file and carry no errno."""
    code = exc.errno
    if code in (errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS) \
            and exc.strerror:
        return exc.strerror  # the words every tool prints: "No such file or directory"
    if code == errno.ENAMETOOLONG:
        return "the path is too long for the file system"
    if code == errno.ELOOP:
        return "it leads through a loop of symbolic links (or too many of them)"
    if code == errno.ENOTDIR:
        return "a part of the path is not a folder"
    if code == errno.EISDIR:
        return "it is a folder"
    return exc.strerror or str(exc)


LONG_PATH = 300  # characters: a longer path is shown cut in the middle


def shown(display: str) -> str:
    """A path as messages show it: one of thousands of characters is cut in the middle."""
    if len(display) <= LONG_PATH:
        return display
    return f"{display[:120]}...{display[-120:]} ({len(display):,} characters)"


def _where(display: str, location: Location | None) -> Location:
    return location if location is not None else Location(shown(display))


def read_bytes(path: Path | str, display: str | None = None, *, what: str = "file",
               limit: int = MAX_TEXT_BYTES, location: Location | None = None,
               hint: str | None = None) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` of them; anything else (a
    pipe, a device, a folder, a loop of links, a path too long, a file too large) is a
    UserError at `location` (else at the path as `display` names it)."""
    display = str(path) if display is None else display
    where = _where(display, location)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) \
        | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise UserError.single(f"cannot read {what}: {os_problem(exc)}", where, hint) from None
    except ValueError:  # a NUL byte
        raise UserError.single(f"cannot read {what}: the path contains a NUL byte", where,
                               hint) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UserError.single(f"{what} is {kind_of(info.st_mode)}, not a regular file",
                                   where, hint or "give the path of a regular file")
        if info.st_size > limit:
            raise UserError.single(f"{what} has {info.st_size:,} bytes, more than the "
                                   f"{limit:,} allowed", where, hint)
        chunks, size = [], 0
        while True:  # a file that grows while it is read is cut at the bound, and refused
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise UserError.single(f"{what} has more than the {limit:,} bytes allowed",
                                       where, hint)
        return b"".join(chunks)
    except OSError as exc:
        raise UserError.single(f"cannot read {what}: {os_problem(exc)}", where, hint) from None
    finally:
        os.close(fd)


def require_readable(path: Path | str, display: str | None = None, *, what: str = "file",
                     limit: int = MAX_TEXT_BYTES, hint: str | None = None) -> None:
    """Refuse, as read_bytes would, a path that is not a regular file of at most `limit`
    bytes (for a file another module reads itself)."""
    read_bytes(path, display, what=what, limit=limit, hint=hint)


def is_dir(path: Path | str) -> bool:
    """True for a folder (or a link to one); False for anything else and for a path that
    cannot be looked at (too long, a loop of links)."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def real_path(path: Path | str) -> Path | None:
    """The path with every symbolic link followed, or None when that cannot be done (a loop
    of links, a path too long)."""
    try:
        return Path(os.path.realpath(path, strict=False))
    except (OSError, RuntimeError, ValueError):
        return None


def resolves_inside(path: Path, root: Path, root_real: Path | None = None) -> bool | None:
    """Whether `path`, links followed, stays inside `root` (`root_real`: root already
    resolved, for a caller checking many paths); None when it cannot be followed."""
    try:
        return path.resolve().is_relative_to(root_real or root.resolve())
    except (OSError, RuntimeError, ValueError):
        return None


def _identity(path: Path | str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info.st_dev, info.st_ino


class Protected:
    """Files an output must never be written over, each with what it is ("the storyboard",
    "storyboard.lock", "an input of shot 'x'"), and folders it must not be written into."""

    def __init__(self) -> None:
        self.files: list[tuple[Path, str]] = []
        self.folders: list[tuple[Path, str]] = []

    def add(self, path: Path | str | None, role: str) -> Protected:
        if path is not None:
            self.files.append((Path(os.path.abspath(path)), role))
        return self

    def add_folder(self, path: Path | str, role: str) -> Protected:
        self.folders.append((Path(os.path.abspath(path)), role))
        return self

    def role_of(self, target: Path) -> str | None:
        """What `target` (absolute, links followed) is to the project, or None."""
        ident = _identity(target)
        for path, role in self.files:
            real = real_path(path)
            if real == target or (ident is not None and _identity(path) == ident):
                return role
        for folder, role in self.folders:
            real = real_path(folder)
            if real is not None and target.is_relative_to(real):
                return role
        return None


def output_target(target: Path | str, display: str | None = None, *, what: str = "the output",
                  protected: Protected | None = None,
                  may_replace: Callable[[Path], bool] | None = None,
                  make_parents: bool = False, hint: str | None = None) -> Path:
    """The file to write for the output path `target`: links followed (a link stays a link;
    the file it points at is written). Refused, located at `display`: a target that exists and
    is not a regular file (a device, a pipe, a folder), a protected file, an existing file
    `may_replace` does not accept, a folder that does not exist (unless `make_parents`)."""
    display = str(target) if display is None else display
    where = Location(shown(display))
    hint = hint or "give the path of a new file"
    real = real_path(target)
    if real is None:
        raise UserError.single(f"cannot write {what}: the path leads through a loop of "
                               "symbolic links", where, hint)
    try:
        info = os.lstat(real)
    except FileNotFoundError:
        info = None
    except (OSError, ValueError) as exc:
        problem = os_problem(exc) if isinstance(exc, OSError) else "the path contains a NUL byte"
        raise UserError.single(f"cannot write {what}: {problem}", where, hint) from None
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise UserError.single(f"this is {kind_of(info.st_mode)}: {what} is written only over "
                               "a regular file (or where there is none); nothing was written",
                               where, hint)
    role = protected.role_of(real) if protected is not None else None
    if role is not None:
        raise UserError.single(f"this is {role}: {what} is never written over it; nothing was "
                               "written", where, hint)
    if info is not None and may_replace is not None and not may_replace(real):
        kind = "a " + what[4:] if what.startswith("the ") else what
        raise UserError.single(f"this file exists and is not {kind}: it is not written over",
                               where, "give the path of a new file, or remove that one first")
    folder = real.parent
    if not is_dir(folder):
        if make_parents and not os.path.lexists(folder):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError.single(f"cannot create the folder for {what}: "
                                       f"{os_problem(exc)}", where, hint) from None
        elif os.path.lexists(folder):
            raise UserError.single(f"cannot write {what}: '{shown(str(folder))}' is not a "
                                   "folder", where, hint)
        else:
            raise UserError.single(f"cannot write {what}: the folder '{shown(str(folder))}' "
                                   "does not exist", where, "create it first, or " + hint)
    return real


TEMP_PREFIX = ".tmp-"  # run removes `.tmp-*` a killed run left beside its outputs


def current_umask() -> int:
    """The process's umask. Read from /proc where it is shown (Linux 4.7+): setting it to read
    it, as os.umask must, would give a file another thread creates meanwhile the wrong mode."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def user_mode() -> int:
    """The permissions of a file this project writes: those of any file the user creates
    (0o666 less the umask), never mkstemp's 0o600."""
    return 0o666 & ~current_umask()


def temp_beside(target: Path, prefix: str = TEMP_PREFIX) -> Path:
    """A fresh temp path in `target`'s folder with `target`'s suffix (a tool that chooses the
    format by the extension, ffmpeg, writes the right one); nothing is created."""
    import secrets

    return target.with_name(f"{prefix}{secrets.token_hex(6)}{target.suffix}")


@contextlib.contextmanager
def atomic_path(target: Path | str, *, mode: int | None = None,
                check: Callable[[Path], None] | None = None,
                prefix: str = TEMP_PREFIX) -> Iterator[Path]:
    """Yield a temp path beside `target` for a producer to write (ffmpeg, a download, a copy);
    when the block ends, the file there replaces `target` as replace_atomically says. On any
    exception (KeyboardInterrupt included) the temp file is removed and `target` is left as
    it was."""
    target = Path(target)
    temp = temp_beside(target, prefix)
    try:
        yield temp
        _commit(temp, target, mode, check)
    except BaseException as exc:
        _discard(temp)
        _rename_error(exc, temp, target)
        raise


def replace_atomically(target: Path | str, data: bytes | str | None = None, *,
                       produce: Callable[[Path], object] | None = None,
                       move_from: Path | str | None = None, mode: int | None = None,
                       check: Callable[[Path], None] | None = None,
                       prefix: str = TEMP_PREFIX) -> Path:
    """Replace (or create) `target` atomically with exactly one of: `data` (bytes, or text
    written as UTF-8), what `produce(temp)` writes to the temp path it is given, or the
    finished file `move_from` (in a folder of the same file system). A reader sees the old
    file or the new one, never part of one.

    The one policy of every file this project writes: the temp file sits beside the target
    (`prefix` + random + the target's suffix), gets `mode` (default: user_mode(), whatever
    mkstemp or a tool gave it), is fsynced, `check(temp)` may refuse it just before it is
    renamed over the target, and the folder is fsynced after the rename. On any failure
    (an OSError, a producer's exception, KeyboardInterrupt) the temp file (or `move_from`) is
    removed and `target` is untouched; an OSError about the temp file names `target`
    instead. Returns `target`."""
    target = Path(target)
    if (data is not None) + (produce is not None) + (move_from is not None) != 1:
        raise TypeError("replace_atomically takes exactly one of data, produce, move_from")
    if move_from is not None:
        temp = Path(move_from)
        try:
            _commit(temp, target, mode, check)
        except BaseException as exc:
            _discard(temp)
            _rename_error(exc, temp, target)
            raise
        return target
    with atomic_path(target, mode=mode, check=check, prefix=prefix) as temp:
        if produce is not None:
            produce(temp)
        elif data is not None:
            _write_new(temp, data.encode("utf-8") if isinstance(data, str) else data)
    return target


def _write_new(path: Path, data: bytes) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
        | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o600)  # the final mode is set in _commit
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _commit(temp: Path, target: Path, mode: int | None, check) -> None:
    if check is not None:
        check(temp)
    _settle(temp, mode)
    os.replace(temp, target)
    _sync_folder(target.parent)


def _settle(temp: Path, mode: int | None = None) -> None:
    """Give the temp file its final mode (the user's umask, or `mode`) and flush it to disk."""
    fd = os.open(temp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, user_mode() if mode is None else mode)
        else:  # pragma: no cover - Windows before 3.13
            os.chmod(temp, user_mode() if mode is None else mode)
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable where a folder can be opened and fsynced (POSIX);
    elsewhere, or where the file system refuses, the rename is left to the system."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _discard(temp: Path) -> None:
    try:
        os.unlink(temp)
    except OSError:
        pass


def _rename_error(exc: BaseException, temp: Path, target: Path) -> None:
    """An OSError naming the temp file is raised again naming the target (the user never
    saw the temp file); any other exception is left as it is."""
    if not isinstance(exc, OSError) or exc.errno is None:
        return
    named = {os.fspath(n) for n in (exc.filename, exc.filename2) if isinstance(n, (str, Path))}
    if str(temp) in named:
        raise OSError(exc.errno, exc.strerror, str(target)) from exc


def write_atomic(target: Path | str, data: bytes | str, display: str | None = None, *,
                 what: str = "the output", protected: Protected | None = None,
                 may_replace: Callable[[Path], bool] | None = None,
                 make_parents: bool = False, mode: int | None = None,
                 hint: str | None = None) -> Path:
    """Write a user's output `data` to `target` with replace_atomically, after output_target's
    checks, which run again just before the rename. `mode`: the new file's permissions
    (default: user_mode()). Returns the file written (links followed). An OSError is a
    UserError located at `display`, never naming the temp file; the temp file never outlives
    the call."""
    shown_as = str(target) if display is None else display

    def checked(make_parents: bool = False) -> Path:
        return output_target(target, shown_as, what=what, protected=protected,
                             may_replace=may_replace, make_parents=make_parents, hint=hint)

    real = checked(make_parents)

    def unchanged(_temp: Path) -> None:
        if checked() != real:  # a link changed meanwhile
            raise UserError.single(f"{what} changed while it was written; nothing was written",
                                   Location(shown(shown_as)))

    try:
        replace_atomically(real, data, mode=mode, check=unchanged,
                           prefix=f".{real.name[:100]}.")
    except OSError as exc:
        raise UserError.single(f"cannot write {what}: {os_problem(exc)}",
                               Location(shown(shown_as)), hint) from None
    return real


def create_exclusive(path: Path, data: bytes | str, display: str | None = None) -> None:
    """Create the new file `path` holding `data`; never follows a link, never replaces
    anything (O_EXCL). An OSError is a UserError located at `display`."""
    display = str(path) if display is None else display
    if isinstance(data, str):
        data = data.encode("utf-8")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
        | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        raise UserError.single(f"cannot create this file: {os_problem(exc)}",
                               Location(shown(display))) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise UserError.single(f"cannot write this file: {os_problem(exc)}",
                               Location(shown(display))) from None


def create_whole(target: Path, data: bytes, display: str, *, what: str = "the file",
                 exists_hint: str = "give another name") -> None:
    """Create the file `target` holding `data`, whole or not at all: written to a temp file
    beside it, then linked to its name, which fails if anything is there (never replaced, as
    create_exclusive, but never seen half-written either). Where the file system has no hard
    links, the temp file is renamed over the name after a last check that it is still free.
    Already there, or an OSError: a UserError located at `display`."""
    where = Location(shown(display))
    exists = UserError.single(f"'{shown(display)}' already exists: nothing was written", where,
                              exists_hint)
    temp = temp_beside(target, prefix=f".{target.name[:100]}.")
    try:
        _write_new(temp, data)
        _settle(temp)
        try:
            os.link(temp, target, follow_symlinks=False)
        except FileExistsError:
            raise exists from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV,
                                 errno.EMLINK, errno.ENOSYS):
                raise
            if os.path.lexists(target):
                raise exists from None
            os.replace(temp, target)
        _sync_folder(target.parent)
    except OSError as exc:
        raise UserError.single(f"cannot write {what}: {os_problem(exc)}", where,
                               "give the path of a new file in a folder you may write to"
                               ) from None
    finally:
        _discard(temp)


def head(path: Path | str, size: int = 4096) -> bytes | None:
    """The first `size` bytes of the regular file at `path`, or None (not a regular file,
    unreadable)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) \
        | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except (OSError, ValueError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)


def project_files(resolved, inputs: Iterable[Path | str] = ()) -> Protected:
    """What an output (`plan --out`, `export -o`) must never be written over: the storyboard,
    storyboard.lock, every file a shot or an element reads, each film, the files `inputs`
    (--vars files, a saved plan being run), and anything under the project's .kling-compose/
    and renders/shots/ folders."""
    storyboard = resolved.storyboard
    from .paths import ProjectPaths

    root = storyboard.root
    paths = storyboard.paths
    protected = Protected().add(storyboard.path, "the storyboard")
    for profile in (None, *storyboard.profiles):  # every profile's lock, not only this one's
        lock = ProjectPaths(root, profile, storyboard.path.stem).lock
        protected.add(lock, f"{lock.name} (what was paid for)")
    protected.add_folder(paths.state, "inside the project's state folder .kling-compose/")
    protected.add_folder(paths.shots, "inside renders/shots/, where run "
                                                     "writes each shot's clip")
    for path in inputs:
        protected.add(path, "an input of this command")
    sources = []
    for shot in resolved.shots:
        sources += [shot.first_frame, shot.last_frame, shot.video, *shot.reference_images,
                    *shot.keyframes, *shot.reference_videos]
        for element in shot.elements:
            sources += [element.frontal_image, *element.images, *element.videos,
                        *element.voices]
    for element in storyboard.elements.values():
        sources += [element.frontal_image, *element.images, *element.videos, *element.voices]
    for source in sources:
        if source is not None and source.kind == "path" and source.path is not None:
            protected.add(source.path, f"an input of the storyboard ({source.value})")
    for output in resolved.outputs:
        protected.add(root / output.path, f"a film of the storyboard ({output.path})")
    return protected
