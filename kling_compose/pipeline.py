"""The stages in order; the table of contents of the package.

    source --render--> Rendered --parse--> Document --validate--> Storyboard
           --resolve--> Resolved --compile--> Jobs --plan--> Plan --execute--> RunState
"""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from .model import Resolved

if TYPE_CHECKING:  # the ledger's reader is imported only when a command needs it
    from .project.decide import Verdict


def load_resolved(path: Path, variables: Mapping[str, object] | None = None,
                  display: str | None = None, profile: str | None = None) -> Resolved:
    """Render, parse, validate and resolve the storyboard at `path` (with `profile`'s fields
    over its defaults)."""
    from .parse import parse_document
    from .render import render_source
    from .resolve import resolve_storyboard
    from .validate import validate_document

    source = read_storyboard(path, display or str(path))
    rendered = render_source(source, variables)
    return resolve_storyboard(validate_document(parse_document(rendered), profile))


def load_resolved_text(text: str, path: Path, variables: Mapping[str, object] | None = None,
                       display: str | None = None, profile: str | None = None) -> Resolved:
    """load_resolved on `text`, the storyboard at `path` as an editor holds it unsaved
    (`kling-compose lsp`): the same stages, includes relative to path's folder (and read as
    the editor holds them inside `render.editor_files(...)`)."""
    from .parse import parse_document
    from .render import render_source
    from .resolve import resolve_storyboard
    from .validate import validate_document

    source = text_storyboard(text, path, display or str(path))
    rendered = render_source(source, variables)
    return resolve_storyboard(validate_document(parse_document(rendered), profile))


def text_storyboard(text: str, path: Path, display: str):
    """A render.Source of `text` standing for the storyboard file at `path`, bounded as a
    file read from disk is (MAX_TEXT_BYTES; a lone surrogate is found by the stages)."""
    from .errors import Location, UserError
    from .files import MAX_TEXT_BYTES
    from .render import Source

    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_TEXT_BYTES:
        raise UserError.single(f"the storyboard has {size:,} bytes, more than the "
                               f"{MAX_TEXT_BYTES:,} allowed", Location(display))
    return Source(Path(path).absolute(), display, text)


def compile_storyboard(resolved: Resolved, provider: str | None = None):
    """One Job per shot: exact request payloads, limits checked, costs estimated."""
    from .compiler import compile_shots

    return compile_shots(resolved, provider)


def render_text(path: Path, variables: Mapping[str, object] | None = None,
                display: str | None = None) -> str:
    """The storyboard after Jinja rendering (what `kling-compose render` prints)."""
    from .render import render_source

    return render_source(read_storyboard(path, display or str(path)), variables).text


def read_storyboard(path: Path, display: str):
    """The storyboard file as a render.Source: a regular file of at most MAX_TEXT_BYTES of
    UTF-8 text. A missing file, a folder, a named pipe, a device (a link to /dev/zero), a loop
    of links or a path too long is a UserError, never a hang or a traceback."""
    import os

    from .errors import UserError
    from .files import read_bytes, shown
    from .render import Source, decode_text

    try:
        absolute = Path(path).absolute()  # not normalised: `link/..` is the OS's to follow
        info = os.stat(absolute)
    except FileNotFoundError:
        raise UserError.single(
            f"no storyboard at '{shown(display)}'",
            hint="give the path of a storyboard.yaml, or create one with `kling-compose init DIR`",
        ) from None
    except (OSError, ValueError):
        info = None  # read_bytes says why (a loop of links, a path too long)
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise UserError.single(f"'{shown(display)}' is a folder without storyboard.yaml")
    data = read_bytes(absolute, display, what="the storyboard",
                      hint="give the path of a storyboard.yaml file")
    return Source(absolute, display, decode_text(data, display))


def build_storyboard_plan(resolved: Resolved, provider: str | None = None,
                          preview_short_side: int | None = None):
    """Compile and plan: the task DAG with keys and costs. preview_short_side: the short side
    in pixels of the clips the preview provider renders (part of their cache keys)."""
    from .plan import PREVIEW_SHORT_SIDE, build_plan

    return build_plan(resolved, compile_storyboard(resolved, provider),
                      preview_short_side or PREVIEW_SHORT_SIDE, provider)


def plan_statuses(plan, reasons: dict[str, str] | None = None) -> dict[str, Verdict]:
    """Per task, what the next run does with it (a `Verdict`: cached, restorable,
    unneeded, changed, missing, expired, new), read from the project's state without
    changing it."""
    from .project.decide import read_statuses

    return read_statuses(plan, reasons)


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def read_variables(assignments: tuple[str, ...] = (), files: tuple[str, ...] = ()) -> dict:
    """Template variables from `--vars FILE.yaml` files, then `--var NAME=VALUE` (strings).

    A --vars file goes through the storyboard's own YAML stage: safe, located, no duplicates.
    """
    from .errors import Diagnostic, Location, UserError
    from .files import read_bytes
    from .parse import parse_document
    from .render import Rendered, Source, decode_text, variable_problem

    variables: dict = {}
    problems: list = []
    for name in files:
        path = Path(name).absolute()
        try:
            text = decode_text(read_bytes(path, name, what="--vars file"), name)
            data = parse_document(Rendered(Source(path, name, text), path.parent, text)).data
        except UserError as exc:
            problems.extend(exc.diagnostics)
            continue
        if not isinstance(data, dict):
            problems.append(Diagnostic("a --vars file must be a mapping of NAME: VALUE",
                                       Location(name, 1, 1)))
            continue
        variables.update(data)
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep or not _NAME.match(name):
            problems.append(Diagnostic(f"bad --var '{item}'", None, "write --var NAME=VALUE, "
                                       "NAME made of letters, digits and '_'"))
            continue
        problem = variable_problem(name, value)
        if problem is not None:
            problems.append(problem)
            continue
        variables[name] = value
    if problems:
        raise UserError(*problems)
    return variables
