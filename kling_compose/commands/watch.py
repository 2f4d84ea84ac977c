"""`kling-compose watch`: check the storyboard on every save, rehearse what changed for free.

Each time the storyboard, a template it includes, a vars file or the project file is saved
(watchfiles, debounced), the storyboard is loaded and compiled again, with its own providers
(as `validate`: their limits are checked, nothing is sent) and on the preview. What changed
in the diagnostics is printed, not the whole list again: the errors and warnings that are new,
in full, and a line for each one fixed. While the storyboard is valid, it is run on the free
preview provider, forced for every shot whatever the storyboard or the project file names (as
`run --provider preview`): the planner's cache makes only the shots whose requests changed and
what chains from them, then the films; the review report is written again.

What the watch writes itself (renders/, .kling-compose/, the lock files, the films) is never a
reason to check again. A save during a render is seen after it: the next check reads the
files as they are then. Ctrl-C stops it: between two renders at once (exit 0); during one, the
run stops as an interrupted `run` does (its finished work is kept, its temp files removed by
the next run) and the exit code is 130.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from ..errors import Diagnostic, UserError
from ..files import TEMP_PREFIX
from ..paths import ProjectPaths
from ..providers import LOCAL_PROVIDERS

if TYPE_CHECKING:
    from watchfiles import Change

    from ..plan import Plan
    from .serve import ReportServer

# the free local provider every shot is rehearsed on (the preview), named by its capability
FREE_PROVIDER = min(LOCAL_PROVIDERS)
DEBOUNCE_MS = 1600  # the longest a burst of saves is gathered before checking
STEP_MS = 150  # a burst ends when nothing changed for this long
IDLE_MS = 300  # how long the watch waits in watchfiles before it looks up (and starts)
MAX_NAMED = 8  # shots or files named in one line; more are counted

Echo = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Request:
    """What the command line asked: the storyboard and how to read it."""

    file: Path
    display: str
    var_items: tuple[str, ...] = ()
    vars_files: tuple[str, ...] = ()
    profile: str | None = None
    preview_resolution: int | None = None


@dataclass(frozen=True, slots=True)
class Checked:
    """The storyboard as it is now: its plan on the preview when it is valid."""

    plan: Plan | None
    diagnostics: tuple[Diagnostic, ...]  # errors and warnings, in order
    inputs: tuple[Path, ...] = ()  # the vars files read (absolute)
    outputs: tuple[Path, ...] = ()  # the films (absolute): written by the watch itself
    concurrency: int = 4

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "error")


def check(request: Request) -> Checked:
    """Load and compile the storyboard as `validate` does (its own providers) and plan it on
    the preview; never raises a UserError: its diagnostics are the result."""
    from ..pipeline import (
        build_storyboard_plan,
        compile_storyboard,
        load_resolved,
        read_variables,
    )
    from ..project.defaults import project_defaults
    from ..project.lockfile import check_lockfile

    inputs = tuple(Path(v).absolute() for v in request.vars_files)
    try:
        defaults = project_defaults(request.file.parent, os.path.dirname(request.display))
        vars_files = (*defaults.vars, *request.vars_files)
        inputs = tuple(Path(v).absolute() for v in vars_files)
        variables = read_variables(request.var_items, vars_files)
        resolved = load_resolved(request.file, variables, request.display, request.profile)
        own = compile_storyboard(resolved)  # the storyboard's providers: their limits
        plan = build_storyboard_plan(resolved, FREE_PROVIDER,
                                     request.preview_resolution or defaults.preview_resolution)
        board = resolved.storyboard
        check_lockfile(board.root, board.profile, board.path.stem, board.name)
    except UserError as exc:
        return Checked(None, _unique(exc.diagnostics), inputs)
    paid = {t.provider for t in plan.tasks.values() if t.provider} - LOCAL_PROVIDERS
    if paid:  # build_storyboard_plan put every shot on the preview: anything else is a bug
        raise AssertionError(f"the watch planned a paid provider: {sorted(paid)}")
    jobs = [*own, *(t.job for t in plan.tasks.values() if t.job is not None)]
    warnings = _unique(w for job in jobs for w in job.warnings)
    root = board.root.absolute()
    outputs = tuple(root / output.path for output in resolved.outputs)
    return Checked(plan, warnings, inputs, outputs, defaults.concurrency or 4)


def vars_inputs(request: Request) -> tuple[Path, ...]:
    """The vars files the storyboard is read with (the project file's, then --vars), before
    it is read: what the watch must follow from its start."""
    from ..project.defaults import project_defaults

    try:
        first = project_defaults(request.file.parent, os.path.dirname(request.display)).vars
    except UserError:
        first = ()  # said by the first round
    return tuple(Path(v).absolute() for v in (*first, *request.vars_files))


def _unique(diagnostics) -> tuple[Diagnostic, ...]:
    return tuple(dict.fromkeys(diagnostics))


# -- what changed in the diagnostics -------------------------------------------------------

def _identity(diagnostic: Diagnostic) -> tuple:
    """A diagnostic's identity across saves: its words and file, not its line (a line added
    above an error moves it; it is not a new error)."""
    where = diagnostic.location.file if diagnostic.location is not None else None
    return diagnostic.severity, diagnostic.message, where, diagnostic.hint


def diagnostics_diff(before: Sequence[Diagnostic], after: Sequence[Diagnostic]
                     ) -> tuple[list[Diagnostic], list[Diagnostic]]:
    """(new, fixed): the diagnostics of `after` that `before` did not have, and those of
    `before` that are gone (each counted: a second identical error is new)."""
    old = Counter(_identity(d) for d in before)
    now = Counter(_identity(d) for d in after)
    new, fixed = [], []
    seen: Counter = Counter()
    for d in after:
        seen[_identity(d)] += 1
        if seen[_identity(d)] > old[_identity(d)]:
            new.append(d)
    seen.clear()
    for d in before:
        seen[_identity(d)] += 1
        if seen[_identity(d)] > now[_identity(d)]:
            fixed.append(d)
    return new, fixed


def fixed_line(diagnostic: Diagnostic) -> str:
    where = diagnostic.location.file if diagnostic.location is not None else None
    return f"fixed: {where + ': ' if where else ''}{diagnostic.severity}: {diagnostic.message}"


def named(items: Sequence[str]) -> str:
    """`a, b, c`; past MAX_NAMED, the first ones and how many more."""
    if len(items) <= MAX_NAMED:
        return ", ".join(items)
    return ", ".join(items[:MAX_NAMED]) + f" and {len(items) - MAX_NAMED} more"


# -- which saves count ---------------------------------------------------------------------

def watchfiles() -> ModuleType:
    """The watchfiles package; missing, one message saying how to install it."""
    try:
        import watchfiles
    except ImportError:
        raise UserError.single("`kling-compose watch` needs watchfiles, which is not installed",
                               hint="pip install 'watchfiles>=1.0'") from None
    return watchfiles


class SaveFilter:
    """watchfiles' filter: the saves that may change the storyboard (templates, vars files,
    the project file, the files shots read), never what the watch writes itself."""

    def __init__(self, root: Path) -> None:
        self.default = watchfiles().DefaultFilter()  # .git, __pycache__, editors' swap and backup files
        self.root = root
        paths = ProjectPaths(root)
        self.own = (paths.state, paths.renders)
        self.inputs: frozenset[Path] = frozenset()  # vars files, also outside the folder
        self.outputs: frozenset[Path] = frozenset()  # films and the files beside them

    def update(self, checked: Checked) -> None:
        self.inputs = frozenset(checked.inputs)
        if checked.plan is not None:
            self.outputs = frozenset(checked.outputs)

    def __call__(self, change: Change, path: str) -> bool:
        if not self.default(change, path):
            return False
        file = Path(path)
        if file.name.startswith(TEMP_PREFIX):  # an atomic write on its way
            return False
        if file in self.inputs:
            return True
        if not file.is_relative_to(self.root):
            return False  # a folder watched for a vars file: its other files
        if any(file.is_relative_to(own) for own in self.own):
            return False
        if file.parent == self.root and file.suffix == ".lock":  # run writes the locks
            return False
        # a film, and what is written beside it (subtitles, an editor's timeline)
        return not any(file.parent == out.parent and file.name.startswith(out.stem + ".")
                       for out in self.outputs)


def saves(changes: set[tuple[Change, str]]) -> list[str]:
    """The files a burst of changes saved or removed, without an editor's or a tool's temp
    files that came and went within it (`sed -i`'s, vim's `4913`)."""
    from watchfiles import Change

    kinds: dict[str, set] = {}
    for change, path in changes:
        kinds.setdefault(path, set()).add(change)
    return sorted(path for path, seen in kinds.items()
                  if os.path.lexists(path) or seen == {Change.deleted})


def watched_folders(root: Path, inputs: Iterable[Path]) -> tuple[Path, ...]:
    """The storyboard's folder (with its templates and the project file), and the folder of
    each vars file outside it: a folder, not the file, as an editor saving by renaming a new
    file over the old one would end a watch on the file."""
    folders = [root]
    for file in inputs:
        if not file.is_relative_to(root) and file.parent not in folders and \
                file.parent.is_dir():
            folders.append(file.parent)
    return tuple(folders)


# -- the loop ------------------------------------------------------------------------------

class Watch:
    """The watch over one storyboard: check, say what changed, render on the preview."""

    def __init__(self, request: Request, out: Echo, err: Echo,
                 server: ReportServer | None = None) -> None:
        self.request = request
        self.out, self.err = out, err
        self.server = server
        self.root = request.file.parent.absolute()
        self.filter = SaveFilter(self.root)
        self.shown: tuple[Diagnostic, ...] = ()  # the diagnostics printed so far
        self.checked: Checked | None = None
        self.rendering = False
        self.interrupted: Plan | None = None  # the plan whose run a Ctrl-C stopped
        # the cache keys of the last render that succeeded: a save that changes none of them
        # (a comment, a file the storyboard does not read) renders nothing, writes nothing
        self.rendered_keys: frozenset[str] | None = None

    def run(self) -> int:
        """Watch until Ctrl-C: the exit code (0, or 130 when a render was interrupted)."""
        watch = watchfiles().watch
        if not self.root.is_dir():
            raise UserError.single(f"cannot watch '{self.request.display}': its folder "
                                   "does not exist", hint="give the path of a storyboard, "
                                   "or create one with `kling-compose init DIR`")
        previous = signal.getsignal(signal.SIGINT)
        try:
            self.filter.inputs = frozenset(vars_inputs(self.request))
            folders = watched_folders(self.root, self.filter.inputs)
            while True:
                # the first round runs once the watch is set up (its first timeout), so a
                # save during it is never missed; then one round per burst of saves
                first = True
                _wait_for_folder(self.root)
                folder = _identity_of(self.root)
                for changes in watch(*folders, watch_filter=self.filter, debounce=DEBOUNCE_MS,
                                     step=STEP_MS, rust_timeout=IDLE_MS, yield_on_timeout=True,
                                     raise_interrupt=True):
                    saved = saves(changes)
                    if saved or first:
                        self.once(saved)
                        first = False
                    if _identity_of(self.root) != folder:
                        # the folder itself removed (a `git checkout`, `git stash`), perhaps
                        # made again already: a watch on it sees nothing more. Say so (the
                        # round above may have run before it went), wait for it, then watch
                        # it anew (its first round says what changed meanwhile)
                        self.once([str(self.root)])
                        _wait_for_folder(self.root)
                        folders = watched_folders(self.root, self.filter.inputs)
                        break
                    if watched_folders(self.root, self.filter.inputs) != folders:
                        # a vars file in another folder now (the project file changed): watch
                        # it too; the new watch's first round catches a save made meanwhile
                        folders = watched_folders(self.root, self.filter.inputs)
                        break
                else:
                    return 0
        except KeyboardInterrupt:
            with contextlib.suppress(ValueError):  # a second Ctrl-C while stopping: ignored
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            if self.interrupted is not None:
                _tidy(self.interrupted)
                self.err("watch: stopped during a render (what it finished is kept; the next "
                         "watch or run makes the rest)")
                return 130
            self.err("watch: stopped")
            return 0
        finally:
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signal.SIGINT, previous)

    def once(self, changed: Sequence[str]) -> None:
        """One round: check the storyboard, print what changed, render what it needs."""
        if changed:
            self.out(f"changed: {named([self._shown(p) for p in changed])}")
        checked = check(self.request)
        self.filter.update(checked)
        if self.checked is None:  # the first round: everything there is to say
            for diagnostic in checked.diagnostics:
                self.err(str(diagnostic))
        else:
            new, fixed = diagnostics_diff(self.shown, checked.diagnostics)
            for diagnostic in fixed:
                self.out(fixed_line(diagnostic))
            for diagnostic in new:
                self.err(str(diagnostic))
        self.shown, self.checked = checked.diagnostics, checked
        errors = checked.errors
        if self.server is not None:
            self.server.live.set(problems=tuple(str(d) for d in errors))
        if errors or checked.plan is None:
            self.out(f"{len(errors)} error(s): nothing is rendered until they are fixed")
        else:
            self.render(checked.plan, checked.concurrency)
        # the command runs with the collector paused (collector.py): it collects once a
        # round, with Ctrl-C held back (in a finalizer, such as an event loop's __del__, a
        # KeyboardInterrupt is printed as "Exception ignored" and lost)
        with _interrupts_deferred():
            gc.collect()

    def render(self, plan: Plan, concurrency: int) -> None:
        """Run the plan on the preview (what changed, by the planner's cache), then write the
        report. A failure of the run is said, and the watch goes on."""
        from ..engine.outcomes import Ending, Quiet, RunOptions
        from ..engine.run import run_plan
        from ..pipeline import plan_statuses
        from ..project.decide import Review
        from ..settings import Settings
        from .report import write_report

        try:
            to_run = Review(plan, plan_statuses(plan)).to_run
        except UserError as exc:
            self._failed(exc)
            return
        shots = [t.shot or t.id for t in to_run if t.kind == "generate"]
        films = [t.assemble_params.path for t in to_run if t.kind == "assemble"]
        keys = frozenset(t.cache_key for t in plan.tasks.values())
        if not to_run and self.rendered_keys == keys and \
                plan.resolved.storyboard.paths.report_page.is_file():
            self.out(f"nothing to render: all {len(plan.tasks)} task(s) are up to date")
            return
        what = [*(shots and [f"shot(s) {named(shots)}"]),
                *(films and [f"film(s) {named(films)}"])]
        busy = f"rendering {' and '.join(what)} ..." if what else "writing the report ..."
        started = time.monotonic()
        self.rendering = True  # from the line on: a Ctrl-C stops a render
        try:
            if what:
                self.out(busy)
            if self.server is not None:
                self.server.live.set(busy=busy)
            # the preview needs no key, no endpoint and no poll setting: none is read (not the
            # environment's keys, not the project's .env), so a key the watch never uses,
            # malformed, does not stop it, and no key is ever in its hands
            settings = Settings()
            # no shared store: a rehearsal on the preview uses none of the team's clips
            result = run_plan(plan, RunOptions(concurrency=concurrency, shared=False), Quiet(),
                              settings)
            self.rendering = False  # made and recorded: a Ctrl-C now stops between rounds
            for warning in result.warnings:
                self.err(f"warning: {warning}")
            for outcome in result.outcomes:
                if outcome.status == Ending.FAILED:
                    self.err(f"failed: {outcome.task.id}: {outcome.error}")
            made = [o.task.shot or o.task.id for o in result.outcomes
                    if o.task.kind == "generate" and o.status == Ending.DONE]
            assembled = [o.task.assemble_params.path for o in result.outcomes
                         if o.task.kind == "assemble" and o.status == Ending.DONE]
            if made or assembled or not result.ok:
                line = f"rendered: {named(made) if made else 'no shot'}"
                if assembled:
                    line += f"; film(s): {named(assembled)}"
                if not result.ok:
                    line += (f"; {result.count(Ending.FAILED)} failed, "
                             f"{result.count(Ending.SKIPPED)} skipped")
                self.out(f"{line} ({time.monotonic() - started:.1f} s)")
            else:
                self.out(f"nothing to render: all {len(plan.tasks)} task(s) are up to date")
            with _interrupts_deferred():  # the page and its files, whole or not at all
                page = write_report(plan)
            self.out(f"report: {plan.resolved.storyboard.paths.shown(page)}")
            self.rendered_keys = keys if result.ok else None
        except UserError as exc:  # another run holds the project, a disk full, ...
            self._failed(exc)
        except KeyboardInterrupt:
            if self.rendering:
                self.interrupted = plan
            raise
        finally:
            self.rendering = False
            if self.server is not None:
                self.server.live.set(busy="")

    def _failed(self, exc: UserError) -> None:
        for diagnostic in exc.diagnostics:
            self.err(str(diagnostic))
        self.rendered_keys = None
        self.out("the render did not finish; the next save tries again")

    def _shown(self, path: str) -> str:
        file = Path(path)
        return str(file.relative_to(self.root)) if file.is_relative_to(self.root) else path


def _identity_of(folder: Path) -> tuple[int, int] | None:
    """The folder's (device, inode): another once it was removed and made again."""
    try:
        info = os.stat(folder)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _wait_for_folder(folder: Path) -> None:
    """Until `folder` exists again (a Ctrl-C meanwhile stops the watch as ever)."""
    while not folder.is_dir():
        time.sleep(IDLE_MS / 1000)


def _tidy(plan: Plan) -> None:
    """After a run stopped by Ctrl-C (its threads are done: asyncio.run waited for them),
    remove what it was writing: the temp files of the store and beside renders, as the next
    run would first. Only while no other run holds the project."""
    from ..engine.preflight import project_lock, remove_stale_temp_files
    from ..project.store import Store

    root = plan.resolved.storyboard.root
    with contextlib.suppress(UserError, OSError), project_lock(root):
        Store(ProjectPaths(root).state).clean_temp()
        remove_stale_temp_files(plan)


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """A Ctrl-C in the block takes effect after it (a KeyboardInterrupt then)."""
    caught: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    except ValueError:  # not the main thread: nothing to defer
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt
