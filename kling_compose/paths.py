"""Where a project keeps what kling-compose writes: one value instead of `root / ".kling-compose"`
spelled out in every module.

    <root>/storyboard.lock              what was generated and paid for (in git)
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


@dataclass(frozen=True, slots=True)
class ProjectPaths:
    """The paths of the project whose storyboard lives in `root` (nothing is created)."""

    root: Path

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
        return self.state / LAST_RUN

    @property
    def project_id(self) -> Path:
        return self.state / PROJECT_ID

    @property
    def lock(self) -> Path:
        """storyboard.lock."""
        return self.root / LOCK

    @property
    def renders(self) -> Path:
        return self.root / RENDERS

    @property
    def shots(self) -> Path:
        """renders/shots/: each shot's picked take."""
        return self.renders / SHOTS

    def shot_clip(self, shot: str, suffix: str = ".mp4") -> Path:
        return self.shots / f"{shot}{suffix}"

    @property
    def report_page(self) -> Path:
        return self.renders / REPORT_PAGE

    @property
    def report_assets(self) -> Path:
        """renders/report/: the report page's own clips and frames."""
        return self.renders / REPORT_ASSETS

    def shown(self, path: Path) -> str:
        """`path` as messages name it: relative to the project when inside it."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)
