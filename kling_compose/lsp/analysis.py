"""One look at a storyboard as the editor holds it: `validate`'s stages on unsaved text.

The stages are those of `kling-compose validate` (pipeline.load_resolved, then
compile_storyboard), run one at a time so that what the editor features read (the elements,
the shots, the jobs) is kept from the furthest stage reached: a storyboard with a missing file
still completes its element names. The project file (kling-compose.yaml beside the
storyboard) gives its `vars` files, as on the command line. Every diagnostic's location is
resolved here, inside `render.editor_files(...)`: finding a place in a templated storyboard
renders it again, and that rendering must read the same unsaved includes as the first.

The storyboard is named by its file name in messages (includes by their path from its folder,
the project file and vars files by their absolute path), so each Location names a file from
which `Place.path` is known.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal
from operator import attrgetter
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from ..errors import Diagnostic, Location, UserError
from ..model import (NARRATOR, Element, ElementRef, FrameSource, Prompt, Resolved,
                     ResolvedShot, Storyboard)

if TYPE_CHECKING:
    from ..project.defaults import ProjectDefaults
    from ..providers import InputRef, Job

_RENDERED = re.compile(r"^(?P<file>.*) \(line (?P<line>\d+) of `kling-compose render`\)$")
NO_TEXTS: Mapping[Path, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Place:
    """A resolved Location: the file's absolute path, 1-based line and column (None: the
    whole file); `rendered_line` when only the line of `kling-compose render` is known."""

    path: Path
    line: int | None = None
    col: int | None = None
    rendered_line: int | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """A diagnostic with its place resolved (None: a problem of no file, e.g. a --var)."""

    diagnostic: Diagnostic
    place: Place | None

    @property
    def message(self) -> str:
        return self.diagnostic.message

    @property
    def hint(self) -> str | None:
        return self.diagnostic.hint

    @property
    def severity(self) -> str:
        return self.diagnostic.severity


@dataclass(frozen=True, slots=True)
class Names:
    """What completion offers, from the furthest stage reached (or the last look that got
    that far): element names (True: it has a voice), shot ids in storyboard order, each
    shot's provider, and the storyboard defaults' provider."""

    elements: Mapping[str, bool]
    shots: tuple[str, ...]
    providers: Mapping[str, str]
    default_provider: str | None = None


@dataclass
class Analysis:
    path: Path  # the storyboard, absolute
    text: str
    version: int | None = None
    problems: list[Problem] = field(default_factory=list)
    data: Any = None  # the parsed YAML (None: it did not parse)
    storyboard: Storyboard | None = None
    resolved: Resolved | None = None
    jobs: tuple[Job, ...] | None = None
    names: Names | None = None
    includes: frozenset[Path] = frozenset()  # every template file it included (or tried to)
    depends_on: frozenset[Path] = frozenset()  # includes, vars files, the project file
    defaults: ProjectDefaults | None = None
    texts: Mapping[Path, str] = field(default_factory=dict)  # the unsaved includes it read
    # shot content -> its compiled Job: a _Compiled, or a Job of this analysis (stripped of
    # its places when the next one reuses or carries it)
    compiled: dict = field(default_factory=dict, repr=False)
    seconds: float = 0.0
    stage: str = "project"  # the stage that stopped it, or "done"

    @property
    def folder(self) -> Path:
        return self.path.parent

    def place(self, location: Location | None) -> Place | None:
        """Where a Location of this storyboard is (resolving it renders again, with the
        same unsaved includes)."""
        if location is None:
            return None
        from ..render import editor_files

        with editor_files(self.texts):
            return _place(location, self.folder)

    def shot(self, shot_id: str) -> ResolvedShot | None:
        if self.resolved is None:
            return None
        found = self._shots().get(shot_id)
        return found

    def job(self, shot_id: str) -> Job | None:
        if self.jobs is None:
            return None
        return self._jobs().get(shot_id)

    def element(self, name: str) -> Element | None:
        return self.storyboard.elements.get(name) if self.storyboard is not None else None

    def _shots(self) -> dict[str, ResolvedShot]:
        cached = self.__dict__.get("_by_id")
        if cached is None:
            shots = self.resolved.shots if self.resolved is not None else ()
            cached = self.__dict__["_by_id"] = {s.id: s for s in shots}
        return cached

    def _jobs(self) -> dict[str, Job]:
        cached = self.__dict__.get("_jobs_by_id")
        if cached is None:
            cached = self.__dict__["_jobs_by_id"] = {j.shot.id: j for j in self.jobs or ()}
        return cached


def analyse(path: Path, text: str, texts: Mapping[Path, str] = NO_TEXTS,
            version: int | None = None, previous: Analysis | None = None) -> Analysis:
    """`validate` on `text`, the storyboard at `path` (absolute) as the editor holds it;
    `texts`: other files the editor holds unsaved (includes), by absolute path; `previous`:
    the last analysis of the same storyboard, whose compiled shots are reused where a shot
    is the same as then (compile_reusing)."""
    from ..collector import paused
    from ..parse import parse_document
    from ..pipeline import read_variables, text_storyboard
    from ..project.defaults import PROJECT_FILE, project_defaults
    from ..render import editor_files, render_source
    from ..resolve import resolve_storyboard
    from ..validate import validate_document

    started = time.perf_counter()
    path = Path(path).absolute()
    folder = path.parent
    found = Analysis(path, text, version, texts=texts)
    depends = {folder / PROJECT_FILE}
    diagnostics: list[Diagnostic] = []
    with paused(), editor_files(texts) as editor:
        try:
            found.defaults = project_defaults(folder, str(folder))
            depends.update(Path(v) for v in found.defaults.vars)
            found.stage = "variables"
            variables = read_variables((), found.defaults.vars)
            found.stage = "render"
            rendered = render_source(text_storyboard(text, path, path.name), variables)
            found.stage = "parse"
            document = parse_document(rendered)
            found.data = document.data
            found.stage = "validate"
            found.storyboard = validate_document(document)
            found.stage = "resolve"
            found.resolved = resolve_storyboard(found.storyboard)
            found.stage = "compile"
            reuse = previous.compiled if previous is not None and previous.path == path \
                else {}
            found.jobs = compile_reusing(found.resolved, reuse, found.compiled)
            found.stage = "done"
            # a warning from a shared default is the same for every shot: once (as validate)
            diagnostics = list(dict.fromkeys(w for job in found.jobs for w in job.warnings))
        except UserError as exc:
            diagnostics = list(exc.diagnostics)
        if found.stage != "done" and previous is not None and previous.path == path:
            # a half-typed edit, or one a shot's limits refuse, keeps what was compiled: the
            # edit that fixes it finds the shots as they were (at most twice the shots kept);
            # the last analysis's own Jobs are stripped of its places: kept as they are, a
            # run of such edits would keep a parsed document each
            kept = _stripped(previous.compiled)
            if found.stage == "compile" and found.resolved is not None:
                merged = {**kept, **found.compiled}
                kept = merged if len(merged) <= 2 * len(found.resolved.shots) \
                    else found.compiled
            found.compiled = kept
        found.problems = [Problem(d, _place(d.location, folder) if d.location else None)
                          for d in diagnostics]
        found.includes = frozenset(editor.read)
    found.depends_on = frozenset(depends | found.includes)
    found.names = names_of(found)
    found.seconds = time.perf_counter() - started
    return found


def compile_reusing(resolved: Resolved, reuse: Mapping, made: dict) -> tuple[Job, ...]:
    """compiler.compile_shots(resolved) (what `validate` runs), each shot compiled again only
    when it differs from every shot of the last analysis: the compiler reads nothing but the
    shot (its fields and elements, not where they are written, nor its index or scene), the
    files it names (their size and modification time are in the key) and, for a warning, the
    voices of its speakers (in the key too). Only a shot compiled without any diagnostic is
    kept for reuse, as a diagnostic carries the places of this analysis. `made` receives
    what the next analysis may reuse: a Job made here (its places are this analysis's,
    alive with it), or a _Compiled, which holds nothing of an analysis (the reused Job's
    inputs have no places: nothing here reports one); a Job of the last analysis becomes
    a _Compiled when reused (or carried, `_stripped`), so nothing keeps an older one."""
    from ..compiler import compile_shot

    sb = resolved.storyboard
    root = sb.root  # a property (Path.parent): once, not per shot
    keys = _ShotKeys(sb.elements)
    stripped: dict[tuple, InputRef] = {}  # an input without its place, shared by the shots
    jobs: list[Job] = []
    errors: list[Diagnostic] = []
    for shot in resolved.shots:
        key = keys.of(shot)
        kept = reuse.get(key) if key is not None else None
        if kept is not None and type(kept) is not _Compiled:
            kept = _Compiled.of(kept, stripped)  # a Job of the last analysis, reused
        job = kept.job(shot) if kept is not None else None
        if job is None:
            job, diagnostics = compile_shot(shot, root, sb.elements)
            errors += [d for d in diagnostics if d.severity == "error"]
            if job is None or diagnostics:
                if job is not None:
                    jobs.append(job)
                continue
            # kept as it is: stripped only if the next analysis reuses it (an every-shot edit
            # makes 10,000 Jobs the next every-shot edit never looks at: 0.1 s)
            kept = job
        if key is not None:
            made[key] = kept
        jobs.append(job)
    if errors:  # as compile_shots: a default's mistake is found once per shot, said once
        raise UserError(*sorted(dict.fromkeys(errors), key=Diagnostic.sort_key))
    return tuple(jobs)


def _stripped(made: dict) -> dict:
    """`made` (an analysis's compiled shots) with each of its own Jobs made a _Compiled."""
    if all(type(kept) is _Compiled for kept in made.values()):
        return made
    stripped: dict[tuple, InputRef] = {}
    return {key: kept if type(kept) is _Compiled else _Compiled.of(kept, stripped)
            for key, kept in made.items()}


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A clean Job without its shot: what a shot with the same key compiles to. Its inputs'
    sources are kept without their places (a place holds its whole parsed document: kept,
    each analysis would keep its predecessors alive); the language server never reports a
    run-time input's place, which is all they are for."""

    provider: str
    model: Any  # ModelSpec
    request: Mapping[str, Any]
    inputs: tuple[InputRef, ...]
    cost_usd: Decimal | None
    cost_note: str | None

    @classmethod
    def of(cls, job: Job, stripped: dict[tuple, InputRef]) -> _Compiled:
        """`stripped`: the inputs stripped so far, by what they are (most shots share an
        element's image: one InputRef for them all)."""
        from ..providers import InputRef

        inputs = []
        for ref in job.inputs:
            s = ref.source
            what = (ref.key, ref.media, s.kind, s.value, s.frame, s.path)
            found = stripped.get(what)
            if found is None:
                # FrameSource(kind, value, location, frame, path): replace() is 10 us
                found = stripped[what] = InputRef(
                    ref.key, FrameSource(s.kind, s.value, None, s.frame, s.path), ref.media)
            inputs.append(found)
        return cls(job.provider, job.model, job.request, tuple(inputs), job.cost_usd,
                   job.cost_note)

    def job(self, shot: ResolvedShot) -> Job:
        from ..providers import Job as JobType

        return JobType(shot=shot, provider=self.provider, model=self.model,
                       request=self.request, inputs=self.inputs, cost_usd=self.cost_usd,
                       cost_note=self.cost_note)


_UNKEYED = frozenset({"location", "locations", "speaker_location", "index", "scene"})
_SCALARS = frozenset({str, int, float, bool, Decimal, type(None)})
_NONE: tuple = ()  # the empty tuple (one object): most list fields of most shots


class _ShotKeys:
    """What a shot is, for the compiler: its values without places, each local file's size
    and modification time, each speaker's voice. None for a value it cannot key.

    Written for speed (it runs for every shot of every edit): values dispatch on their exact
    type, the storyboard's own types have a key of their own, an element (shared by many
    shots) is keyed once per analysis."""

    def __init__(self, elements: Mapping[str, Element]) -> None:
        self.elements = elements
        self.fields: dict[type, attrgetter] = {}
        self.stamps: dict[Path, tuple[int, int] | None] = {}
        self.shared: dict[int, Any] = {}  # elements, used by many shots: keyed once

    def of(self, shot: ResolvedShot) -> tuple | None:
        try:
            voices = tuple((line.speaker, bool(self.elements.get(line.speaker) and
                                               self.elements[line.speaker].has_voice))
                           for line, _, _ in shot.lines)
            return (self.record(shot), voices)
        except _Unkeyed:
            return None

    def value(self, value: Any) -> Any:
        kind = type(value)
        if kind in _SCALARS:
            return value
        handler = _KINDS.get(kind)
        if handler is not None:
            return handler(self, value)
        if isinstance(value, Path):
            return ("path", str(value), self.stamp(value))
        if dataclasses.is_dataclass(value):
            return self.record(value)
        raise _Unkeyed

    def record(self, value: Any) -> tuple:
        kind = type(value)
        getter = self.fields.get(kind)
        if getter is None:
            names = [f.name for f in dataclasses.fields(value) if f.name not in _UNKEYED]
            getter = self.fields[kind] = attrgetter(*names, names[0])  # always a tuple
        return (kind.__name__, *[v if type(v) in _SCALARS or v is _NONE else self.value(v)
                                 for v in getter(value)])

    def sequence(self, value: tuple | list) -> tuple:
        return tuple([v if type(v) in _SCALARS else self.value(v) for v in value])

    def mapping(self, value: Mapping) -> tuple:
        if not value:
            return _NONE
        return ("{}", tuple(sorted([(str(k), self.value(v)) for k, v in value.items()])))

    def prompt(self, value: Prompt) -> tuple:
        return ("prompt", tuple([p if type(p) is str else self.value(p) for p in value.parts]))

    def reference(self, value: ElementRef) -> tuple:
        return ("@", value.name)

    def source(self, value: FrameSource) -> tuple:
        path = value.path
        return (value.kind, value.value, value.frame,
                None if path is None else (str(path), self.stamp(path)))

    def element(self, value: Element) -> Any:
        key = self.shared.get(id(value))
        if key is None:
            key = self.shared[id(value)] = self.record(value)
        return key

    def stamp(self, path: Path) -> tuple[int, int] | None:
        if path not in self.stamps:
            try:
                info = os.stat(path)
                self.stamps[path] = (info.st_mtime_ns, info.st_size)
            except (OSError, ValueError):
                self.stamps[path] = None
        return self.stamps[path]


class _Unkeyed(Exception):
    pass


# the key of each type the storyboard is made of (unbound: no cycle through bound methods)
_KINDS: dict[type, Any] = {
    tuple: _ShotKeys.sequence, list: _ShotKeys.sequence, dict: _ShotKeys.mapping,
    MappingProxyType: _ShotKeys.mapping, Prompt: _ShotKeys.prompt,
    FrameSource: _ShotKeys.source, ElementRef: _ShotKeys.reference, Element: _ShotKeys.element,
}


def _place(location: Location, folder: Path) -> Place:
    file = location.file
    match = _RENDERED.match(file) if location.line is None else None
    if match is not None:
        return Place(_absolute(match["file"], folder), rendered_line=int(match["line"]))
    return Place(_absolute(file, folder), location.line, location.col)


def _absolute(file: str, folder: Path) -> Path:
    return Path(os.path.normpath(folder / file))


# -- names for completion --------------------------------------------------------------------

def names_of(found: Analysis) -> Names | None:
    """The names the furthest stage reached knows; None when the text did not parse."""
    from ..resolve import DEFAULT_PROVIDER

    if found.storyboard is not None:
        sb = found.storyboard
        default = sb.defaults.provider or DEFAULT_PROVIDER
        providers: dict[str, str] = {}
        if found.resolved is not None:
            providers = {s.id: s.provider for s in found.resolved.shots}
        else:
            for scene in sb.scenes:
                for shot in scene.shots:
                    providers[shot.id] = shot.fields.provider or scene.defaults.provider \
                        or default
        return Names(MappingProxyType({n: e.has_voice for n, e in sb.elements.items()}),
                     tuple(dict.fromkeys(s.id for s in sb.shots)),
                     MappingProxyType(providers), default)
    data = found.data
    if not isinstance(data, dict):
        return None
    elements = data.get("elements")
    voiced = {str(name): isinstance(spec, dict) and bool(spec.get("voice") or
                                                         spec.get("voice_id"))
              for name, spec in (elements.items() if isinstance(elements, dict) else ())}
    top = data.get("defaults")
    written = _text(top.get("provider")) if isinstance(top, dict) else None
    ids: dict[str, str] = {}
    for scene_data in _dicts(data.get("scenes")):
        own = scene_data.get("defaults")
        scene_provider = _text(own.get("provider")) if isinstance(own, dict) else None
        for shot_data in _dicts(scene_data.get("shots")):
            shot_id = _text(shot_data.get("id"))
            if shot_id is not None and shot_id not in ids:
                ids[shot_id] = _text(shot_data.get("provider")) or scene_provider or written \
                    or DEFAULT_PROVIDER
    return Names(MappingProxyType(voiced), tuple(ids), MappingProxyType(ids),
                 written or DEFAULT_PROVIDER)


def _dicts(value) -> Iterator[dict]:
    return (v for v in value if isinstance(v, dict)) if isinstance(value, list) else iter(())


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def speakers(names: Names) -> list[str]:
    """Who may speak a line with a voice: the elements with one, and the narrator."""
    return [name for name, voiced in names.elements.items() if voiced] + [NARRATOR]
