"""Where a project keeps what kling-compose writes: one value instead of `root / ".kling-compose"`
spelled out in every module.

    <root>/storyboard.lock              what was generated and paid for (in git)
    <root>/storyboard.<profile>.lock    the same for a `--profile` (in git)
    <root>/.kling-compose/              the state folder (never in git)
        state.db                        the ledger (SQLite, WAL)
        objects/ab/<sha256><suffix>     the content-addressed store
        tmp/                            where tools write before the store adopts
        run.lock                        held (flock) by a running `run`
        last-run.json                   what the last `run` was asked for (`status` reads it)
        project-id                      this clone's id in a shared store's claims
    <root>/renders/                     what the user watches
        shots/<shot><suffix>            each shot's picked take
        report.html, report/            the review page and its clips and frames
        <profile>/shots/, report.html   the same for a `--profile`: kept apart

A leaf module: it imports nothing of the project, so any stage may use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATE_DIR = ".kling-compose"
LEDGER = "state.db"
OBJECTS = "objects"
TMP = "tmp"
RUN_LOCK = "run.lock"
LAST_RUN = "last-run.json"
PROJECT_ID = "project-id"
LOCK = "storyboard.lock"
RENDERS = "renders"
SHOTS = "shots"
REPORT_PAGE = "report.html"
REPORT_ASSETS = "report"


def lock_name(profile: str | None = None, stem: str = "storyboard") -> str:
    """The lock of the storyboard file `stem`.yaml: storyboard.lock, or
    storyboard.<profile>.lock; alt.yaml's is alt.lock (each storyboard its own: issue 26)."""
    return f"{stem}.lock" if profile is None else f"{stem}.{profile}.lock"


def profiled(path: str, profile: str | None) -> str:
    """A film's path under a profile: renders/film.mp4 -> renders/film.draft.mp4 (its
    subtitles and hand-off files follow the film's name)."""
    if profile is None:
        return path
    head, sep, name = path.rpartition("/")
    stem, dot, suffix = name.rpartition(".")
    named = f"{stem}.{profile}.{suffix}" if dot and stem else f"{name}.{profile}"
    return head + sep + named


@dataclass(frozen=True, slots=True)
class ProjectPaths:
    """The paths of the project whose storyboard lives in `root` (nothing is created); with a
    `profile` (`--profile draft`), its own lock and renders, so switching profiles never
    overwrites the other's records or clips."""

    root: Path
    profile: str | None = None
    stem: str = "storyboard"  # the storyboard file's name without its suffix: its lock's name

    def __post_init__(self) -> None:
        if not isinstance(self.root, Path):
            object.__setattr__(self, "root", Path(self.root))

    @property
    def state(self) -> Path:
        """.kling-compose/: the ledger, the store, the run lock."""
        return self.root / STATE_DIR

    @property
    def ledger(self) -> Path:
        return self.state / LEDGER

    @property
    def objects(self) -> Path:
        return self.state / OBJECTS

    @property
    def tmp(self) -> Path:
        return self.state / TMP

    @property
    def run_lock(self) -> Path:
        return self.state / RUN_LOCK

    @property
    def last_run(self) -> Path:
        """last-run.json; last-run.<profile>.json for a profile (each remembers its own); a
        storyboard file other than storyboard.yaml has its own: last-run@<stem>[.<profile>].json
        (an "@": profile x of storyboard.yaml and the file x.yaml are not one)."""
        name = "last-run" if self.stem == "storyboard" else f"last-run@{self.stem}"
        return self.state / (name + (f".{self.profile}" if self.profile else "") + ".json")

    @property
    def project_id(self) -> Path:
        return self.state / PROJECT_ID

    @property
    def lock(self) -> Path:
        """storyboard.lock; storyboard.<profile>.lock for a profile."""
        return self.root / lock_name(self.profile, self.stem)

    @property
    def renders(self) -> Path:
        return self.root / RENDERS

    @property
    def profile_renders(self) -> Path:
        """renders/, or renders/<profile>/: where this profile's shots and report go; for a
        storyboard file other than storyboard.yaml, under renders/<stem>/ (two storyboards
        in one folder would otherwise write one renders/shots/)."""
        base = self.renders if self.stem == "storyboard" else self.renders / self.stem
        return base if self.profile is None else base / self.profile

    @property
    def shots(self) -> Path:
        """renders/shots/: each shot's picked take (renders/<profile>/shots/)."""
        return self.profile_renders / SHOTS

    def shot_clip(self, shot: str, suffix: str = ".mp4") -> Path:
        return self.shots / f"{shot}{suffix}"

    @property
    def report_page(self) -> Path:
        return self.profile_renders / REPORT_PAGE

    @property
    def report_assets(self) -> Path:
        """renders/report/: the report page's own clips and frames."""
        return self.profile_renders / REPORT_ASSETS

    def shown(self, path: Path) -> str:
        """`path` as messages name it: relative to the project when inside it."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)
