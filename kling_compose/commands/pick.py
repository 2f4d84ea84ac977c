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

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..errors import Location, UserError, did_you_mean

_INTEGER = re.compile(r"[0-9]+(?![0-9A-Za-z_.])")


@dataclass(frozen=True, slots=True)
class Picked:
    shot: str
    before: int
    after: int
    where: Location  # the edited place
    changed: bool  # False: the shot already had that pick; nothing was written


def set_pick(path: Path, display: str, variables: Mapping[str, object], shot_id: str,
             take: int, profile: str | None = None) -> Picked:
    """Set the shot's `pick:` (shared by every profile); `profile`: the --profile whose takes
    the pick is checked against (a profile may ask for more takes)."""
    from ..parse import parse_document
    from ..pipeline import read_storyboard
    from ..render import render_source
    from ..resolve import VARIANT_MARK, resolve_storyboard
    from ..validate import validate_document
    from .config import resolved_config

    source = read_storyboard(path, display)
    document = parse_document(render_source(source, variables))
    resolved = resolve_storyboard(validate_document(document, profile))
    shots = {s.id: s for s in resolved.shots}
    original, mark, aspect = shot_id.partition(VARIANT_MARK)
    if mark and shot_id in shots:  # made again at an output's aspect (reframe: generate)
        raise UserError.single(
            f"'{shot_id}' is shot '{original}' generated again at {aspect.replace('x', ':')} "
            "for an output's `reframe: generate`: it takes its takes and pick from that shot",
            hint=f"pick for both with `kling-compose pick {original} {take}`")
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
    expected = _with_pick(resolved_config(resolved), shot_id, take)
    if edit.file == source.path:  # checked before anything is written
        _check(edit, shot_id, expected,
               lambda: _resolved_text(source, edit.edited, variables))
    _write_checked(edit, shot_id, expected,
                   lambda: _reloaded(path, display, variables))
    return Picked(shot_id, shot.pick, take, edit.location, True)


def _with_pick(config: dict, shot_id: str, take: int) -> dict:
    """The resolved configuration `config` with shot `shot_id`'s pick set to `take`."""
    import copy

    config = copy.deepcopy(config)
    for scene in config["scenes"]:
        for shot in scene["shots"]:
            if shot["id"] == shot_id:
                shot["pick"] = take
    return config


def _changed_shots(got: dict, expected: dict) -> list[str]:
    """The shots whose resolved configuration differs between `got` and `expected`."""
    def by_id(config):
        return {s["id"]: s for scene in config.get("scenes", ()) for s in scene["shots"]}

    mine, theirs = by_id(got), by_id(expected)
    return [i for i in dict.fromkeys([*theirs, *mine]) if mine.get(i) != theirs.get(i)]


def _resolved_text(source, text: str, variables):
    """The resolved configuration of the storyboard `source` with `text` as its content."""
    from ..parse import parse_document
    from ..render import Source, render_source
    from ..resolve import resolve_storyboard
    from ..validate import validate_document
    from .config import resolved_config

    edited = Source(source.path, source.display, text)
    return resolved_config(resolve_storyboard(validate_document(parse_document(
        render_source(edited, variables)))))


def _reloaded(path: Path, display: str, variables) -> dict:
    from ..pipeline import load_resolved
    from .config import resolved_config

    return resolved_config(load_resolved(path, variables, display))


def _check(edit, shot_id: str, expected: dict, load) -> None:
    """Refuse the edit unless the storyboard it makes (`load()`: its resolved configuration)
    is the one expected: the shot's new pick and nothing else changed."""
    try:
        got = load()
    except UserError:
        raise UserError.single(f"setting the pick at {edit.location} would break the "
                               "storyboard; nothing was changed", edit.location,
                               hint="edit `pick:` by hand there") from None
    if got == expected:
        return
    changed = _changed_shots(got, expected)
    others = [i for i in changed if i != shot_id]
    if others:
        names = ", ".join(f"'{i}'" for i in others)
        raise UserError.single(
            f"cannot set the pick here: shot(s) {names} share this mapping (a YAML anchor "
            f"`&` and an alias `*` or merge key `<<`), so their pick would change too; "
            "nothing was changed", edit.location,
            hint="give each of those shots its own `pick:` by hand, then pick again")
    raise UserError.single(f"the storyboard sets the pick of '{shot_id}' elsewhere than "
                           f"{edit.location} (defaults or a template); nothing was changed",
                           edit.location, hint="edit `pick:` by hand where it is set")


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
    _plain_lines(document.rendered.source.text, document.rendered.source.display)
    origin, lines = _origin(document, location, path)
    file, line_no = origin
    display = location.file
    text = _read_text(file, display)
    _plain_lines(text, display)
    rows = text.split("\n")  # the line numbering of the parser's marks (CRLF keeps its \r)
    if not 1 <= line_no <= len(rows):
        raise _templated(location, "the located line is not in the file as it is now")
    row = rows[line_no - 1]
    col = location.col - 1
    if has_pick:
        match = _INTEGER.match(row, col) if 0 <= col <= len(row) else None
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
    _plain_lines(source.text, source.display)
    out_rows, src_rows = rendered.text.split("\n"), source.text.split("\n")
    if not (1 <= line <= len(out_rows) and 1 <= source_line <= len(src_rows)):
        raise _templated(location, "the template's lines cannot be mapped to the rendered "
                                   "storyboard")
    out_text = out_rows[line - 1].rstrip("\r")
    src_text = src_rows[source_line - 1].rstrip("\r")
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
    from ..pipeline import load_resolved

    return next(s.pick for s in load_resolved(path, variables, display).shots
                if s.id == shot_id)


def _write_checked(edit: _Edit, shot_id: str, expected: dict, reload) -> None:
    """Write the edit, load the storyboard again, and put the original back unless it gives
    the shot the new pick and changes nothing else. Each write is atomic (temp file + rename,
    mode kept) and goes to the file a symbolic link points at: a link stays a link."""
    _atomic_write(edit.file, edit.edited, edit.location)
    try:
        _check(edit, shot_id, expected, reload)
    except BaseException:
        _atomic_write(edit.file, edit.original, edit.location)
        raise


_LINE_BREAKS = re.compile("\r(?!\n)|[\x85\u2028\u2029]")


def _plain_lines(text: str, display: str) -> None:
    """Refuse a file whose lines do not all end in \\n or \\r\\n: YAML also breaks lines at a
    lone \\r (old Mac files), U+0085, U+2028 and U+2029, so the parser's line numbers would
    not be the lines an exact edit counts."""
    found = _LINE_BREAKS.search(text)
    if found is None:
        return
    before = text[:found.start()]
    line = before.count("\n") + 1
    col = found.start() - (before.rfind("\n") + 1) + 1
    what = "a carriage return (\\r) without \\n after it" if found.group() == "\r" else \
        f"the line separator U+{ord(found.group()):04X}"
    raise UserError.single(
        f"cannot set the pick in this file: it has {what}, which YAML reads as a line end; "
        "an exact edit cannot be located", Location(display, line, col),
        hint="convert the file's line endings to \\n (or \\r\\n), or set `pick:` by hand")


def _read_text(file: Path, display: str) -> str:
    from ..files import read_bytes
    from ..render import decode_text

    return decode_text(read_bytes(file, display, what="the storyboard"), display)


def _atomic_write(path: Path, text: str, where: Location) -> None:
    """The storyboard is the user's own file, edited in place as an editor does: it keeps
    its permissions (a new file would get the umask's, files.user_mode)."""
    import os

    from ..files import write_atomic

    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        mode = None  # write_atomic names what is wrong with the path
    write_atomic(path, text.encode("utf-8"), where.file, what="the storyboard", mode=mode,
                 hint="make the storyboard writable, or set `pick:` by hand")
