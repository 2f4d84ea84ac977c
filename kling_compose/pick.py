"""`kling-compose pick SHOT K`: choose a take by editing the storyboard for the user.

The storyboard is a Jinja template, so a YAML round-trip library cannot load it; the edit is an
exact text edit at the place the parser located instead. A shot that has `pick:` gets its
value replaced (the digits, nothing else); a shot without one gets a `pick: K` line under its
`id:` (or `pick: K, ` in a flow mapping). Every other byte of the file stays as it was:
comments, order, quoting, line endings. A pick that comes out of a Jinja expression, or a
shot written once in a `{% for %}` loop, cannot be edited at one place: the message says
where to edit instead. The edited file is loaded again before it replaces the original (it
must validate and give the shot the new pick), then written atomically.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .errors import Location, UserError, did_you_mean

_INTEGER = re.compile(r"[0-9]+(?![0-9A-Za-z_.])")


@dataclass(frozen=True, slots=True)
class Picked:
    shot: str
    before: int
    after: int
    where: Location  # the edited place
    changed: bool  # False: the shot already had that pick; nothing was written


def set_pick(path: Path, display: str, variables: Mapping[str, object], shot_id: str,
             take: int) -> Picked:
    from .parse import parse_document
    from .render import read_source, render_source
    from .resolve import resolve_storyboard
    from .validate import validate_document

    source = read_source(path.absolute(), display)
    document = parse_document(render_source(source, variables))
    resolved = resolve_storyboard(validate_document(document))
    shots = {s.id: s for s in resolved.shots}
    if shot_id not in shots:
        raise UserError.single(f"no shot '{shot_id}' in {display}",
                               hint=did_you_mean(shot_id, shots) or
                               "`kling-compose plan` lists the shots")
    shot = shots[shot_id]
    if not 1 <= take <= shot.takes:
        raise UserError.single(
            f"shot '{shot_id}' has {shot.takes} take(s): there is no take {take}",
            document.locate(_shot_path(document, shot_id) + ("id",)),
            hint=f"pick a take between 1 and {shot.takes}, or raise its 'takes' and run again")
    where = document.locate(_shot_path(document, shot_id) + ("id",))
    if shot.pick == take:
        return Picked(shot_id, take, take, where, False)
    edit = _edit(document, _shot_path(document, shot_id), take)
    _write_checked(edit, lambda: _reloaded_pick(path, display, variables, shot_id), take)
    return Picked(shot_id, shot.pick, take, edit.location, True)


@dataclass(frozen=True, slots=True)
class _Edit:
    file: Path
    original: str
    edited: str
    location: Location


def _shot_path(document, shot_id: str) -> tuple:
    for i, scene in enumerate(document.data["scenes"]):
        for j, shot in enumerate(scene["shots"]):
            if shot.get("id") == shot_id:
                return ("scenes", i, "shots", j)
    raise AssertionError(f"validated storyboard without shot {shot_id}")


def _edit(document, path: tuple, take: int) -> _Edit:
    shot = document._get(path)
    has_pick = "pick" in shot
    location = document.locate(path + ("pick",) if has_pick else path + ("id",), key=not has_pick)
    origin, lines = _origin(document, location, path)
    file, line_no = origin
    text = file.read_bytes().decode("utf-8")
    rows = text.split("\n")  # the line numbering of the parser's marks (CRLF keeps its \r)
    row = rows[line_no - 1]
    col = location.col - 1
    if has_pick:
        match = _INTEGER.match(row, col)
        if match is None or int(match.group()) != shot["pick"]:
            raise _templated(location, "its `pick:` value is not a plain number there")
        rows[line_no - 1] = row[:col] + str(take) + row[match.end():]
    else:
        before = row[:col].rstrip(" \t")
        if before.endswith(("{", ",")):  # a flow mapping: { id: s1, prompt: ... }
            rows[line_no - 1] = row[:col] + f"pick: {take}, " + row[col:]
        else:
            cr = "\r" if row.endswith("\r") else ""
            rows.insert(line_no, " " * col + f"pick: {take}" + cr)
            location = Location(location.file, line_no + 1, col + 1)
    return _Edit(file, text, "\n".join(rows), location)


def _origin(document, location: Location, path: tuple) -> tuple[tuple[Path, int], int]:
    """The template file and line the located line was written at; refused when that line
    is not the rendered line itself (a `{{ }}` on it) or renders more than once (a loop)."""
    rendered = document.rendered
    mark = _mark(document, path)
    line = mark + 1
    if not rendered.templated:
        return (rendered.source.path, line), 1
    origin = rendered._origin(line)
    if origin is None:
        raise _templated(location, "the template's lines cannot be mapped to the rendered "
                                   "storyboard")
    source, source_line = origin
    # Jinja renders every line ending as \n: a CRLF template's line keeps its \r
    out_text = rendered.text.split("\n")[line - 1].rstrip("\r")
    src_text = source.text.split("\n")[source_line - 1].rstrip("\r")
    if out_text != src_text:
        raise _templated(location, "that line is written with a Jinja expression")
    count = sum(1 for i in range(1, rendered.text.count("\n") + 2)
                if rendered._origin(i) == origin)
    if count > 1:
        raise _templated(location, "that line renders more than once (a {% for %} loop or a "
                                   "macro)")
    return (source.path, source_line), count


def _mark(document, path: tuple) -> int:
    """The 0-based rendered line of the shot's `pick` value, or of its `id` key."""
    shot = document._get(path)
    entry = document.positions[id(shot)][1]
    if "pick" in shot:
        return entry["pick"][1][0]
    key_mark, value_mark, _ = entry["id"]
    return (key_mark or value_mark)[0]


def _templated(location: Location, why: str) -> UserError:
    return UserError.single(
        f"cannot set the pick here: {why}",
        location, hint="edit `pick:` in the template by hand there, or give the shot a pick "
                       "from a variable (`--var`)")


def _reloaded_pick(path: Path, display: str, variables, shot_id: str) -> int:
    from .pipeline import load_resolved

    return next(s.pick for s in load_resolved(path, variables, display).shots
                if s.id == shot_id)


def _write_checked(edit: _Edit, reload, take: int) -> None:
    """Write the edit, load the storyboard again, and put the original back unless it gives
    the shot the new pick. Each write is atomic (temp file + rename, mode kept)."""
    _atomic_write(edit.file, edit.edited)
    try:
        got = reload()
    except UserError:
        _atomic_write(edit.file, edit.original)
        raise UserError.single(f"setting the pick at {edit.location} would break the "
                               "storyboard; nothing was changed", edit.location,
                               hint="edit `pick:` by hand there") from None
    except BaseException:
        _atomic_write(edit.file, edit.original)
        raise
    if got != take:
        _atomic_write(edit.file, edit.original)
        raise UserError.single(f"the storyboard sets the pick elsewhere than {edit.location} "
                               "(defaults or a template); nothing was changed", edit.location,
                               hint="edit `pick:` by hand where it is set")


def _atomic_write(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o7777
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
