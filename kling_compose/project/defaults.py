"""The project file, `kling-compose.yaml` beside the storyboard: defaults for every command.

What a team would otherwise repeat on each command line, declared once and committed:

    vars: [vars.yaml]          # --vars files, read before any given on the command line
    provider: fal              # --provider, when none is given (status, report and export:
                               #   after the provider of the last run)
    concurrency: 6             # run --concurrency
    max_cost: 25               # run --max-cost, in USD
    preview_resolution: 540    # --preview-resolution
    store: s3://studio/harbour # the shared artifact store, when the storyboard names none

The command line wins over the file; for the store, KLING_COMPOSE_STORE wins, then the
storyboard's own `store:`, then this file. The file holds no templates and no secrets (keys
stay in the environment or `.env`); a path in it is relative to its folder. It is read by
every command that reads the storyboard, and `config` shows what it set.

Like a storyboard, the file is read with the project's YAML stage: located errors, no
duplicate keys, did-you-mean for an unknown key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from ..errors import Diagnostic, UserError, did_you_mean

PROJECT_FILE = "kling-compose.yaml"

_KEYS = ("vars", "provider", "concurrency", "max_cost", "preview_resolution", "store")


@dataclass(frozen=True, slots=True)
class ProjectDefaults:
    """What the project file sets; None (or ()) where it sets nothing."""

    file: str | None = None  # the file as the user names it; None when there is none
    vars: tuple[str, ...] = ()  # --vars files, as paths from the current folder
    provider: str | None = None
    concurrency: int | None = None
    max_cost: Decimal | None = None
    preview_resolution: int | None = None
    store: str | None = None

    def settings(self) -> dict[str, object]:
        """Each setting the file makes, by key, in the file's own terms (for `config`)."""
        values = {"vars": list(self.vars) or None, "provider": self.provider,
                  "concurrency": self.concurrency, "preview_resolution": self.preview_resolution,
                  "max_cost": None if self.max_cost is None else
                  int(self.max_cost) if self.max_cost == int(self.max_cost)
                  else float(self.max_cost),
                  "store": self.store}
        return {k: v for k, v in values.items() if v is not None}


def project_defaults(folder: Path, shown_folder: str = "") -> ProjectDefaults:
    """The defaults of the project file in `folder` (named `shown_folder` in messages);
    empty defaults when there is no such file. A file that cannot be used is a UserError
    naming every problem, at its line and column."""
    from ..files import read_bytes
    from ..parse import parse_document
    from ..render import Rendered, Source, decode_text

    path = folder / PROJECT_FILE
    shown = os.path.join(shown_folder, PROJECT_FILE)
    if not os.path.lexists(path):
        return ProjectDefaults()
    text = decode_text(read_bytes(path, shown, what="the project file"), shown)
    doc = parse_document(Rendered(Source(path.absolute(), shown, text), folder, text))
    data = doc.data
    if data is None:  # empty, or comments only: the file `init` writes
        return ProjectDefaults(file=shown)
    if not isinstance(data, dict):
        raise UserError.single(f"the project file must be a mapping of settings, not "
                               f"{type(data).__name__}", doc.locate(()),
                               hint=f"write `key: value` lines; the keys: {', '.join(_KEYS)}")
    return _Reader(doc, folder, shown_folder, shown).read()


class _Reader:
    def __init__(self, doc, folder: Path, shown_folder: str, shown: str) -> None:
        self.doc, self.folder, self.shown_folder, self.shown = doc, folder, shown_folder, shown
        self.problems: list[Diagnostic] = []

    def read(self) -> ProjectDefaults:
        data = self.doc.data
        for key in data:
            if key not in _KEYS:
                hint = did_you_mean(str(key), _KEYS) or f"the keys: {', '.join(_KEYS)}"
                self.problem(f"unknown setting '{key}' in the project file", (key,), hint,
                             key=True)
        values = ProjectDefaults(
            file=self.shown, vars=self.vars(data.get("vars")),
            provider=self.provider(data.get("provider")),
            concurrency=self.integer("concurrency", data.get("concurrency"), 1, 1000),
            max_cost=self.dollars(data.get("max_cost")),
            preview_resolution=self.integer("preview_resolution",
                                            data.get("preview_resolution"), 72, 2160),
            store=self.store(data.get("store")))
        if self.problems:
            raise UserError(*sorted(self.problems, key=Diagnostic.sort_key))
        return values

    def problem(self, message: str, path, hint: str | None = None, key: bool = False) -> None:
        self.problems.append(Diagnostic(message, self.doc.locate(path, key=key), hint))

    def vars(self, value) -> tuple[str, ...]:
        if value is None:
            return ()
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            self.problem("'vars' must be a file name or a list of them", ("vars",),
                         "write `vars: [vars.yaml]`")
            return ()
        files = []
        for index, item in enumerate(items):
            where = ("vars",) if isinstance(value, str) else ("vars", index)
            if not isinstance(item, str) or not item.strip():
                self.problem("each of 'vars' must be the name of a YAML file", where)
                continue
            try:
                found = (self.folder / item).is_file()
            except (OSError, ValueError) as exc:  # a name too long, a NUL byte
                from ..files import os_problem

                reason = os_problem(exc) if isinstance(exc, OSError) else "a NUL byte"
                self.problem(f"vars file '{item[:80]}' cannot be read: {reason}", where)
                continue
            if not found:
                self.problem(f"vars file '{item}' does not exist", where,
                             f"a path relative to {self.shown}'s folder")
                continue
            files.append(item if os.path.isabs(item) else os.path.join(self.shown_folder, item))
        return tuple(files)

    def provider(self, value) -> str | None:
        from ..settings import PROVIDER_NAMES

        if value is None or value in PROVIDER_NAMES:
            return value
        hint = did_you_mean(str(value), PROVIDER_NAMES) or \
            "one of " + ", ".join(PROVIDER_NAMES)
        self.problem(f"unknown provider '{value}'", ("provider",), hint)
        return None

    def integer(self, key: str, value, low: int, high: int) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problem(f"'{key}' must be a whole number from {low} to {high}, not "
                         f"{value!r}", (key,))
            return None
        return value

    def dollars(self, value) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not 0 <= value <= 10**9:
            self.problem(f"'max_cost' must be an amount of dollars (a number from 0), not "
                         f"{value!r}", ("max_cost",), "write e.g. `max_cost: 25`")
            return None
        return Decimal(str(value))

    def store(self, value) -> str | None:
        from urllib.parse import urlsplit

        if value is None:
            return None
        parts = urlsplit(value) if isinstance(value, str) and value.strip() else None
        if parts is None or (parts.scheme == "s3" and not parts.netloc) or \
                (len(parts.scheme) > 1 and parts.scheme not in ("s3", "file")):
            self.problem(f"store {value!r} is neither a folder nor s3://bucket/prefix",
                         ("store",), "write a folder (a path or file:///...) or "
                         "s3://bucket/prefix")
            return None
        return value
