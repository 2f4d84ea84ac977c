"""`kling-compose report`: one offline HTML page to review the project as the last run left it.

Reads the plan, the ledger (read-only), storyboard.lock and the content store; never
re-derives what the engine recorded. Writes renders/report.html and, in renders/report/, what
the page shows: every take and film (a hard link to the store's file, or a copy where the
file system refuses links) and the first and last frame of each picked take as small JPEGs.
Files there are named by the sha256 of the clip they come from, so running the command again
writes only what is new and removes what the page no longer shows. A film with subtitles plays
with them: its WebVTT file linked from the store, or (only .srt asked for) one written from
the dialogue cues the run kept beside the film.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard
from urllib.parse import quote

from ..errors import UserError
from ..paths import RENDERS, REPORT_ASSETS, REPORT_PAGE, ProjectPaths
from ..providers import LOCAL_PROVIDERS

if TYPE_CHECKING:
    from ..project.lockfile import Lock

PAGE = Path(RENDERS) / REPORT_PAGE  # relative to the project: renders/report.html
ASSETS = Path(RENDERS) / REPORT_ASSETS  # the page's own folder: clips and frames, nothing else
THUMBNAIL_PX = 320  # the long side of a frame thumbnail
LONG_TEXT = 300  # request strings longer than this (data URIs) are shortened on the page
_OWN_FILE = re.compile(r"^(\.tmp-|[0-9a-f]{64}\.)")  # a clip, a frame, or a temp file


@dataclass(frozen=True, slots=True)
class Continuity:
    """A chained take's continuity, as media/continuity.py's `for_pick` reads the record."""

    score: float
    threshold: float | None
    broken: bool
    source: str | None  # the shot it was chained from
    frame: str | None  # which end of this shot was compared with the seed: first | last


@dataclass(frozen=True, slots=True)
class Take:
    number: int  # 1-based, as `pick` counts
    href: str | None  # the clip, relative to the page; None: not in the store here
    picked: bool
    continuity: Continuity | None = None  # how well this take continues its chain


@dataclass(frozen=True, slots=True)
class Link:
    """An input of one shot made from another shot's clip."""

    field: str  # first_frame | last_frame | video | reference_images | reference_videos
    shot: str  # the shot the clip comes from
    frame: str  # first | last | clip (the whole clip)


@dataclass(frozen=True, slots=True)
class PromptPart:
    """Literal prompt text, or an `@element` reference (element set)."""

    text: str
    element: str | None = None
    description: str | None = None
    sent_as: str | None = None  # the provider's syntax, where it is not `@name`


@dataclass(frozen=True, slots=True)
class LineView:
    """A line of dialogue as the shot says it, and whose voice says it."""

    speaker: str
    text: str
    tone: str | None
    voice: str  # the element's voice sample (file name) or voice_id, "narrator", or "default"
    span: tuple[float, float]  # seconds of the clip it is spoken in (a segment's, or all)


@dataclass(frozen=True, slots=True)
class CueView:
    """A subtitle of a film, in film time."""

    start_s: float
    end_s: float
    speaker: str | None
    text: str


@dataclass(frozen=True, slots=True)
class ShotView:
    id: str
    scene: str
    status: str  # as `status` says: done | restorable | failed | running | interrupted | pending
    provider: str
    model: str
    duration_s: int | None
    cost_usd: Decimal | None
    cost_is_estimate: bool  # nothing was paid yet: the plan's estimate
    provider_task_id: str | None
    error: str | None
    prompt: tuple[PromptPart, ...]
    segments: tuple[tuple[int, tuple[PromptPart, ...]], ...]  # multi_prompt: (seconds, parts)
    negative_prompt: str | None
    elements: tuple[tuple[str, str | None], ...]  # (name, description)
    takes: tuple[Take, ...]
    take_count: int
    pick: int
    clip: str | None  # the picked take, relative to the page
    first_frame: str | None  # thumbnails of the picked take
    last_frame: str | None
    inputs: tuple[Link, ...]  # what this shot is made from
    feeds: tuple[tuple[str, Link], ...]  # (shot, link): the shots made from this one
    continuity: Continuity | None
    request: str  # the exact request body as JSON (placeholders for run-time inputs)
    notes: tuple[str, ...]
    lines: tuple[LineView, ...] = ()


@dataclass(frozen=True, slots=True)
class FilmView:
    path: str
    status: str
    href: str | None
    duration_s: float | None
    sequence: tuple[str, ...]
    subtitles: str | None = None  # a WebVTT file of its dialogue, relative to the page
    track: str | None = None  # the same WebVTT as a data: URI, for the player's <track>
    cues: tuple[CueView, ...] = ()
    loudness_lufs: float | None = None  # integrated, as measured on the film
    true_peak_db: float | None = None
    normalised: str | None = None  # how a loudness target was reached


@dataclass(frozen=True, slots=True)
class Failure:
    task: str
    shot: str | None
    message: str


@dataclass(frozen=True, slots=True)
class ReportView:
    name: str
    storyboard: str
    provider: str | None  # every shot's provider (--provider or the last run's), or None
    preview_px: int | None  # the preview's short side, when a shot renders with it
    spent_usd: Decimal
    estimated_usd: Decimal
    to_pay_usd: Decimal
    unknown_costs: int
    counts: tuple[tuple[str, int], ...]  # shots per status
    films: tuple[FilmView, ...]
    failures: tuple[Failure, ...]
    broken_chains: tuple[tuple[str, Continuity], ...]
    shots: tuple[ShotView, ...]


def write_report(plan) -> Path:
    """Write renders/report.html for `plan` (and its clips and frames in renders/report/);
    returns the page's path. Only reads the ledger, the lock and the store."""
    root = plan.resolved.storyboard.root
    paths = plan.resolved.storyboard.paths  # renders/<profile>/ for a profile
    rel_page, rel_assets = (paths.report_page.relative_to(root),
                            paths.report_assets.relative_to(root))
    _check_inside(root, (rel_page, rel_assets))
    page, folder = root / rel_page, root / rel_assets
    try:
        folder.mkdir(parents=True, exist_ok=True)
        files = _Files(plan.resolved.storyboard.root, folder)
        html = render_page(review(plan, files))
        _write_text(page, html)
        files.prune()
    except OSError as exc:
        raise UserError.single(
            f"could not write {_shown(root, exc.filename) or rel_page}: "
            f"{exc.strerror or exc}",
            hint="free disk space, fix the folder's permissions or move what is in the way, "
                 "then run `kling-compose report` again") from None
    return page


def review(plan, files: _Files) -> ReportView:
    """What the page shows, read from the plan, the ledger, the lock and the store; clips and
    frames are put in place by `files`."""
    from ..project.lockfile import read_lockfile
    from .status import project_status

    status = project_status(plan)
    by_task = {t.task_id: t for t in status.tasks}
    records = _records(plan)
    board = plan.resolved.storyboard
    lock = read_lockfile(board.root, board.profile, board.path.stem)
    feeds = _feeds(plan.resolved.shots)
    shots = tuple(
        _shot_view(plan.tasks[f"generate:{s.id}"], s, by_task[f"generate:{s.id}"],
                   records.get(f"generate:{s.id}"), _entry(lock, "shots", s.id), feeds, files)
        for s in plan.resolved.shots)
    films = tuple(_film_view(plan.tasks[t], by_task[t], records.get(t),
                             _entry(lock, "outputs", plan.tasks[t].assemble_params.path), files)
                  for t in plan.order if plan.tasks[t].kind == "assemble")
    unpaid = [plan.tasks[t.task_id] for t in status.tasks if t.kind == "generate"
              and t.status not in ("done", "restorable")]
    uses_preview = any(t.provider in LOCAL_PROVIDERS for t in plan.tasks.values())
    return ReportView(
        name=plan.resolved.storyboard.name,
        storyboard=plan.resolved.storyboard.display_path,
        provider=plan.provider, preview_px=plan.preview_short_side if uses_preview else None,
        spent_usd=status.spent_usd, estimated_usd=plan.total_cost_usd,
        to_pay_usd=sum((t.cost_usd for t in unpaid if t.cost_usd is not None), Decimal(0)),
        unknown_costs=len(plan.unknown_costs),
        counts=_counts(s.status for s in shots),
        films=films,
        failures=tuple(Failure(t.task_id, t.shot, t.error or "failed")
                       for t in status.tasks if t.status == "failed"),
        broken_chains=tuple((s.id, s.continuity) for s in shots
                            if s.continuity is not None and s.continuity.broken),
        shots=shots)


def render_page(view: ReportView) -> str:
    """The page's HTML: the package's template, autoescaped (every name, prompt and message
    is user text)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("kling_compose", "templates"),
                      autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters["usd"] = lambda amount: "unknown" if amount is None else f"${amount:.3f}"
    return env.get_template("report.html.j2").render(report=view)


def _counts(statuses) -> tuple[tuple[str, int], ...]:
    """(status, number of shots), in the order `status` lists them."""
    statuses = list(statuses)
    return tuple((s, statuses.count(s)) for s in
                 ("done", "restorable", "failed", "running", "interrupted", "pending")
                 if s in statuses)


# -- reading ----------------------------------------------------------------------------------

def _records(plan) -> dict:
    """{task id: ledger record under the task's current cache key} for generations and films."""
    from ..project.state import State, state_path

    path = state_path(plan.resolved.storyboard.root)
    if not path.is_file():
        return {}
    state = State(path, readonly=True)
    try:
        return {t: r for t in plan.order if plan.tasks[t].kind in ("generate", "assemble")
                and (r := state.get(plan.tasks[t].cache_key)) is not None}
    finally:
        state.close()


def _entry(lock: Lock, section: str, name: str) -> dict:
    return (lock.shot(name) if section == "shots" else lock.output(name)) or {}


def _artifacts(task, status: str, record, entry: dict) -> tuple[tuple[str, str | None], ...]:
    """(sha256, suffix) of each take (or the film): from the ledger once done; from
    storyboard.lock for a result the next run restores (suffix None: not in the store here)."""
    if status == "done" and record is not None:
        return tuple(record.artifacts)
    if status == "restorable" and entry.get("cache_key") == task.cache_key:
        return tuple((d, None) for d in entry.get("sha256") or () if isinstance(d, str))
    return ()


def _shot_view(task, shot, status, record, entry: dict, feeds: dict, files: _Files) -> ShotView:
    from ..media.continuity import for_pick

    artifacts = _artifacts(task, status.status, record, entry)
    result = (record.result if record is not None else None) or {}
    takes = tuple(Take(n, files.clip(digest, suffix), n == shot.pick,
                       _continuity(for_pick(result.get("continuity"), n))
                       if status.status == "done" else None)
                  for n, (digest, suffix) in enumerate(artifacts, 1))
    picked = takes[shot.pick - 1] if shot.pick <= len(takes) else None
    first, last, notes = files.frames(*artifacts[shot.pick - 1]) if picked and picked.href \
        else (None, None, ())
    paid = record.cost_usd if record is not None and status.status != "pending" else None
    if status.status == "restorable" and paid is None:
        paid = _decimal(entry.get("cost_usd"))
    notes = (*notes, *(n for n in result.get("notes", ()) if isinstance(n, str)))
    return ShotView(
        id=shot.id, scene=shot.scene, status=status.status, provider=task.provider,
        model=task.model, duration_s=task.duration_s,
        cost_usd=paid if paid is not None else task.cost_usd, cost_is_estimate=paid is None,
        provider_task_id=_task_id(status.status, record, entry), error=status.error,
        prompt=_prompt_parts(task.job, shot.prompt) if shot.prompt else (),
        segments=tuple((seg.duration_s, _prompt_parts(task.job, seg.prompt))
                       for seg in shot.multi_prompt or ()),
        negative_prompt=shot.negative_prompt,
        elements=tuple((e.name, e.description) for e in shot.elements),
        takes=takes if len(takes) > 1 else (), take_count=shot.takes, pick=shot.pick,
        clip=picked.href if picked else None, first_frame=first, last_frame=last,
        inputs=_links(shot), feeds=tuple(feeds.get(shot.id, ())),
        continuity=_continuity(status.continuity),
        request=json.dumps(_shortened(task.job.request), indent=2, ensure_ascii=False),
        notes=notes, lines=_lines(shot))


def _lines(shot) -> tuple[LineView, ...]:
    """The shot's dialogue (its segments' included), each with the voice that speaks it."""
    from ..model import NARRATOR

    elements = {e.name: e for e in shot.elements}
    return tuple(LineView(line.speaker, line.text, line.tone,
                          _voice(elements.get(line.speaker), line.speaker == NARRATOR),
                          (start, end))
                 for line, start, end in shot.lines)


def _voice(element, narrator: bool) -> str:
    if narrator:
        return "narrator"
    if element is not None and element.voice is not None:
        return Path(element.voice.value).name
    if element is not None and element.voice_id is not None:
        return f"voice_id {element.voice_id}"
    return "the provider's default"


def _film_view(task, status, record, entry: dict, files: _Files) -> FilmView:
    artifacts = _artifacts(task, status.status, record, entry)
    if not artifacts and entry.get("cache_key") == task.cache_key:  # pulled: in the lock only
        artifacts = tuple((d, None) for d in entry.get("sha256") or () if isinstance(d, str))
    href = files.clip(*artifacts[0]) if artifacts else None
    result = (record.result if record is not None else None) or {}
    duration = result.get("duration_s", entry.get("duration_s"))
    shown = status.status if status.status == "done" or href is None else "restorable"
    cues = _film_cues(artifacts[1:], files) if href is not None else ()
    lufs, peak = (v if _number(v := result.get(k, entry.get(k))) else None
                  for k in ("loudness_lufs", "true_peak_db"))
    normalised = result.get("normalised")
    subtitles, track = _subtitles(artifacts[1:], cues, files, href)
    return FilmView(task.assemble_params.path, shown, href,
                    duration if isinstance(duration, (int, float)) else None,
                    _sequence(task.assemble_params), subtitles=subtitles, track=track,
                    cues=cues, loudness_lufs=lufs, true_peak_db=peak,
                    normalised=normalised if isinstance(normalised, str) else None)


def _sequence(params) -> tuple[str, ...]:
    """The film's pieces in order: shot ids, and an edited film's title cards."""
    if not params.pieces:
        return params.sequence
    return tuple(p.shot if p.shot is not None else f"title “{p.title or p.subtitle}”"
                 for p in params.pieces)


def _film_cues(sidecars, files: _Files) -> tuple[CueView, ...]:
    """The dialogue cues the run kept beside an edited film (film time), if in the store."""
    from ..engine.tasks import CUES_SUFFIX

    for digest, suffix in sidecars:
        if files.suffix(digest, suffix) != CUES_SUFFIX:
            continue
        path = files.store.path(digest, CUES_SUFFIX)
        if not path.is_file():
            return ()
        cues = json.loads(path.read_text(encoding="utf-8"))
        return tuple(CueView(round(float(c["start_s"]), 3), round(float(c["end_s"]), 3),
                             c.get("speaker"), str(c["text"])) for c in cues)
    return ()


def _subtitles(sidecars, cues: tuple[CueView, ...], files: _Files,
               film: str | None) -> tuple[str | None, str | None]:
    """The film's WebVTT for the page (the file, and it as a data: URI for the <track>):
    the run's .vtt, else one written from its cues (an output that asked for .srt only); none
    for a film without a subtitle file.

    The player's <track> takes the data: URI because Chromium refuses a text track from a
    file: URL ("'file:' URLs are treated as unique security origins"), and the page must play
    from the folder, unserved; the file is linked beside the player for download."""
    sidecars = tuple(sidecars)
    if film is None:
        return None, None
    href = None
    for digest, suffix in sidecars:
        if files.suffix(digest, suffix) == ".vtt" and (href := files.clip(digest, ".vtt")):
            break
    else:
        if not cues or not any(files.suffix(d, s) == ".srt" for d, s in sidecars):
            return None, None
        from ..engine.tasks import CUES_SUFFIX

        source = next(d for d, s in sidecars if files.suffix(d, s) == CUES_SUFFIX)
        href = files.webvtt(source, cues)
    text = (files.folder / Path(href).name).read_text(encoding="utf-8")
    return href, "data:text/vtt;charset=utf-8," + quote(text)


def _task_id(status: str, record, entry: dict) -> str | None:
    """The provider's id of the generation (what its support asks for)."""
    if record is not None and status != "pending":
        return record.provider_task_id or (record.result or {}).get("task_id")
    return entry.get("task_id") if status == "restorable" else None


def _prompt_parts(job, prompt) -> tuple[PromptPart, ...]:
    """The prompt as written, each `@element` marked with its description and the provider's
    syntax for it (the numbering the provider module itself applies)."""
    from ..model import ElementRef, Prompt
    from ..providers import PROVIDERS

    shot = job.shot
    descriptions = {e.name: e.description for e in shot.elements}
    parts = []
    for part in prompt.parts:
        if isinstance(part, ElementRef):
            sent = PROVIDERS[job.provider].prompt_text(shot, Prompt((part,)))
            parts.append(PromptPart("@" + part.name, part.name, descriptions.get(part.name),
                                    sent if sent != "@" + part.name else None))
        else:
            parts.append(PromptPart(part))
    return tuple(parts)


_LINK_FIELDS = ("first_frame", "keyframes", "last_frame", "video", "reference_images",
                "reference_videos")


def _links(shot) -> tuple[Link, ...]:
    links = []
    for name in _LINK_FIELDS:
        value = getattr(shot, name)
        for source in value if isinstance(value, tuple) else (value,):
            if source is not None and source.is_chain:
                frame = "clip" if name in ("video", "reference_videos") else source.frame
                links.append(Link(name, source.value, frame))
    return tuple(links)


def _feeds(shots) -> dict[str, list[tuple[str, Link]]]:
    """{shot: [(shot made from it, link)]}."""
    feeds: dict[str, list[tuple[str, Link]]] = {}
    for shot in shots:
        for link in _links(shot):
            feeds.setdefault(link.shot, []).append((shot.id, link))
    return feeds


def _continuity(value: dict | None) -> Continuity | None:
    """A take's continuity ({"score", "threshold", "broken", "from", "frame"}), when the
    check scored it."""
    if not isinstance(value, dict) or not _number(value.get("score")):
        return None
    threshold, source, frame = value.get("threshold"), value.get("from"), value.get("frame")
    return Continuity(float(value["score"]), float(threshold) if _number(threshold) else None,
                      value.get("broken") is True, source if isinstance(source, str) else None,
                      frame if frame in ("first", "last") else None)


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(value) if isinstance(value, str) else None
    except ArithmeticError:
        return None


def _shortened(value: Any) -> Any:
    """The request with very long strings (inline data URIs) cut, for reading."""
    if isinstance(value, str) and len(value) > LONG_TEXT:
        return f"{value[:80]}... ({len(value)} characters)"
    if isinstance(value, dict):
        return {k: _shortened(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_shortened(v) for v in value]
    return value


# -- writing ----------------------------------------------------------------------------------

class _Files:
    """The page's folder: clips linked from the store, frame thumbnails; names used by the
    page are remembered so that `prune` removes the rest."""

    def __init__(self, root: Path, folder: Path) -> None:
        from ..project.store import Store

        self.store = Store(ProjectPaths(root).state)
        self.folder = folder
        self.used: set[str] = set()
        self.suffixes: dict[str, str | None] = {}  # digest -> suffix found in the store

    def suffix(self, digest: str, suffix: str | None) -> str | None:
        """The suffix a clip is stored with (looked up, and verified, once when unknown)."""
        if suffix is None and digest not in self.suffixes:
            self.suffixes[digest] = self.store.find(digest)
        return suffix or self.suffixes[digest]

    def href(self, name: str) -> str:
        self.used.add(name)
        return f"{ASSETS.name}/{name}"

    def clip(self, digest: str, suffix: str | None) -> str | None:
        """The page's link to a stored clip, put in place (None: the store lacks it)."""
        suffix = self.suffix(digest, suffix)
        if suffix is None:
            return None
        source = self.store.path(digest, suffix)
        if not source.is_file():
            return None
        target = self.folder / f"{digest}{suffix}"
        if not _same_file(source, target):
            _link_or_copy(source, target)
        return self.href(target.name)

    def webvtt(self, digest: str, cues) -> str:
        """The page's WebVTT file of `cues` (the cues file `digest`), written once."""
        from ..media.subtitles import Cue, webvtt

        target = self.folder / f"{digest}.cues.vtt"
        if not target.is_file():
            _write_text(target, webvtt(Cue(c.start_s, c.end_s, c.text, c.speaker)
                                       for c in cues))
        return self.href(target.name)

    def frames(self, digest: str, suffix: str | None) -> tuple[str | None, str | None,
                                                               tuple[str, ...]]:
        """Thumbnails of the first and last frame of a stored clip, and why one is missing."""
        from ..media.ffmpeg import MediaError

        clip = self.store.path(digest, self.suffix(digest, suffix) or "")
        hrefs = []
        for which in ("first", "last"):
            target = self.folder / f"{digest}.{which}.jpg"
            try:
                if not target.is_file():
                    _thumbnail(clip, which, target)
            except MediaError as exc:
                return None, None, (f"no frame thumbnails: {exc}",)
            hrefs.append(self.href(target.name))
        return hrefs[0], hrefs[1], ()

    def prune(self) -> None:
        """Remove the clips and frames of earlier reports the page no longer shows."""
        for path in self.folder.iterdir():
            if path.name not in self.used and _OWN_FILE.match(path.name) and path.is_file():
                path.unlink(missing_ok=True)


def _same_file(source: Path, target: Path) -> bool:
    """The target is the source (a hard link) or a copy of the same size."""
    try:
        return os.path.samefile(source, target) or \
            target.stat().st_size == source.stat().st_size
    except FileNotFoundError:
        return False


def _link_or_copy(source: Path, target: Path) -> None:
    """`target` becomes a hard link to `source` (a copy where links are refused), atomically."""
    from ..files import replace_atomically

    def produce(temp: Path) -> None:
        try:
            os.link(source, temp)
        except OSError:  # another file system, or one without hard links
            shutil.copyfile(source, temp)

    with _named(target):
        replace_atomically(target, produce=produce)


def _thumbnail(clip: Path, which: str, target: Path) -> None:
    """A small JPEG of the first or last frame of `clip`, written atomically."""
    from PIL import Image

    from ..media.ffmpeg import atomic_output
    from ..media.frames import extract_frame

    with _named(target), atomic_output(target) as temp:
        png = temp.with_suffix(".png")
        try:
            extract_frame(clip, which, png)
            with Image.open(png) as image:
                image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
                image.convert("RGB").save(temp, "JPEG", quality=85)
        finally:
            png.unlink(missing_ok=True)


def _write_text(path: Path, text: str) -> None:
    """Write `path` atomically, readable as the user's other files."""
    from ..files import replace_atomically

    with _named(path):
        replace_atomically(path, text)


@contextlib.contextmanager
def _named(path: Path):
    """An OSError while writing `path` through a temp file names `path`, not the temp file."""
    try:
        yield
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


def _check_inside(root: Path, places) -> None:
    """Refuse to write where a symbolic link leads outside the project."""
    real_root = root.resolve()
    for place in places:
        for depth in range(1, len(place.parts) + 1):
            path = root.joinpath(*place.parts[:depth])
            if (path.exists() or path.is_symlink()) and \
                    not path.resolve().is_relative_to(real_root):
                raise UserError.single(
                    f"{path.relative_to(root)} leads outside the project (to {path.resolve()}):"
                    " kling-compose writes only inside the project",
                    hint=f"remove the link ({path.relative_to(root)}) or make it point inside "
                         "the project folder")


def _shown(root: Path, filename) -> str | None:
    if not filename:
        return None
    path = Path(filename)
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
