"""Before a run touches anything: what `run` can know before the first paid submission.

The request (--force and --only names, every key and host a paid shot needs, the --max-cost
estimate), every place it writes (inside the project, links followed), one run per project
(`project_lock`), and temp files a killed run left.
"""

from __future__ import annotations

import errno
import fcntl
import os
from decimal import Decimal
from pathlib import Path

from ..errors import UserError
from ..paths import ProjectPaths
from ..plan import Plan
from ..project.decide import Review, Verdict, read_statuses
from ..project.lockfile import check_lockfile
from ..project.store import refuse_links
from ..providers import LOCAL_PROVIDERS
from ..selection import select
from ..settings import Settings
from .outcomes import RunOptions


def write_failure(exc: Exception, root: Path) -> str:
    """A full disk, a read-only folder, a file where a folder should be: what could not be
    written."""
    if isinstance(exc, OSError):
        where = exc.filename2 or exc.filename or ""  # a rename's target, not its temp file
        try:
            where = str(Path(where).relative_to(root)) if where else ""
        except ValueError:
            pass
        what = f"could not write {where}: {exc.strerror or exc}" if where else \
            f"could not write: {exc.strerror or exc}"
    else:
        what = f"could not write .kling-compose/state.db: {exc}"
    return what


class project_lock:
    """One run per project at a time: a second concurrent run would race on the same files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = ProjectPaths(root).run_lock
        self.file: int | None = None

    def __enter__(self):
        refuse_links(self.path.parent, self.root)  # run.lock, state.db, objects/ab/, tmp/
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        except OSError as exc:
            # a read-only project: no run can be writing it either. Held read-only (flock
            # needs no write access), or not at all when a run never made run.lock; what
            # needs to write says what it cannot write (gc --dry-run only reads)
            if not _read_only(exc):
                raise UserError.single(write_failure(exc, self.root), hint="free disk space or "
                                       "fix the folder's permissions, then run again") from None
            try:
                self.file = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                return self
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.file)
            raise UserError.single("another `kling-compose run` is working on this project",
                                   hint="wait for it to finish (or stop it) and run again") from None
        return self

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            os.close(self.file)


def _read_only(exc: OSError) -> bool:
    return exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)


# paid tasks that are not shots, which `run --force TASK_ID` makes again: a voice a provider no
# longer knows, an element or voice whose lost answer was not found
FORCEABLE_KINDS = frozenset({"voice", "element"})


def check_request(plan: Plan, options: RunOptions, settings: Settings) -> dict[str, Verdict]:
    """Refuse bad --force/--only names, a missing API key, and an estimate of what would be
    paid above --max-cost, before anything (even the state file) is touched. Returns the
    plan's statuses (decide.read_statuses)."""
    board = plan.resolved.storyboard
    check_lockfile(board.root, board.profile, board.path.stem, board.name)
    check_write_paths(plan)
    selected = select(plan, options.only)
    for shot in options.force:
        made = plan.tasks.get(shot)  # a voice or an element is forced by its task id
        if f"generate:{shot}" not in plan.tasks and (made is None or
                                                     made.kind not in FORCEABLE_KINDS):
            raise UserError.single(f"--force: no shot '{shot}' in the storyboard",
                                   hint="give a shot id, or the id of a voice or element "
                                        "task (`kling-compose plan` lists them)")
    statuses = read_statuses(plan)
    review = Review(plan, statuses, options.force, tuple(selected))
    to_pay = review.to_pay
    for provider in sorted({t.provider for t in to_pay if t.provider} - LOCAL_PROVIDERS):
        settings.check_provider(provider)  # its key and every host it needs
    limit = options.max_cost_usd
    if limit is None:
        return statuses
    unknown = [t.id for t in to_pay if t.cost_usd is None]
    # every priced task the run makes (a fal voice too), as the question before paying shows;
    # an element or voice without a published price is not refused: Kling publishes none
    total = review.to_pay_usd
    if unknown:
        raise UserError.single(f"{options.max_cost_name}: the price of {', '.join(unknown)} "
                               "is unknown", hint="run without a cost cap once you accept "
                               "that")
    if total > limit:
        raise UserError.single(
            f"{options.max_cost_name}: this run would cost an estimated ${total:.3f}, more "
            f"than the ${limit:.3f} allowed",
            hint="raise --max-cost, or run fewer shots with --only"
            if options.max_cost_name == "--max-cost" else "give a higher --max-cost USD (it "
            "overrides the project file's), or run fewer shots with --only")
    return statuses


def check_write_paths(plan: Plan) -> None:
    """Every place a run writes stays inside the project, symbolic links followed: a
    `renders` or `.kling-compose/objects` that links elsewhere is refused before anything is
    written (outputs: are checked by validate, the default output and shot copies here)."""
    root = plan.resolved.storyboard.root
    real_root = root.resolve()
    paths = plan.resolved.storyboard.paths
    places = [paths.shots, paths.objects, paths.tmp, paths.lock]
    films = [t.assemble_params for t in plan.tasks.values() if t.kind == "assemble"]
    places += [root / film.path for film in films]
    places += [(root / film.path).with_suffix("." + form) for film in films  # subtitles
               for form in film.delivery.subtitles]
    for place in places:
        relative = place.relative_to(root)
        for depth in range(1, len(relative.parts) + 1):
            path = root.joinpath(*relative.parts[:depth])
            if not (path.exists() or path.is_symlink()):
                break
            if not path.resolve().is_relative_to(real_root):
                raise UserError.single(
                    f"{path.relative_to(root)} leads outside the project (to "
                    f"{path.resolve()}): kling-compose writes only inside the project",
                    hint=f"remove the link ({path.relative_to(root)}) or make it point inside "
                         "the project folder")


def remove_stale_temp_files(plan: Plan) -> None:
    """Temp files a killed run left just before a final rename (renders/.tmp-*, the shot
    copies', .storyboard.lock.*): only this project's, and only while it holds the run lock."""
    root = plan.resolved.storyboard.root
    paths = plan.resolved.storyboard.paths
    folders = {root, paths.renders, paths.shots}
    folders |= {(root / task.assemble_params.path).parent for task in plan.tasks.values()
                if task.kind == "assemble"}
    for folder in folders:
        if not folder.is_dir():
            continue
        for stale in [*folder.glob(".tmp-*"), *folder.glob(".storyboard.lock.*"),
                      *folder.glob(".storyboard.*.lock.*")]:  # a profile's lock
            if stale.is_file() and not stale.is_symlink():
                stale.unlink(missing_ok=True)
