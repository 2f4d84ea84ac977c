"""Where the cursor is in the YAML the user wrote, read from the lines themselves.

Completion runs on half-typed text (`first_frame: { from: ` does not parse), and a
templated storyboard is not YAML until it is rendered, so nothing here parses: the key path
to the cursor is found from indentation (block mappings and lists, `- ` items, compact lists),
and the line itself is read for `key: value`, flow mappings and sequences (`{ from: a }`,
`[a, b]`). Lines of template tags are skipped. Columns are 0-based code points.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ITEM = "[]"  # a list item in a key path: ("scenes", ITEM, "shots", ITEM)

_LINE = re.compile(r"^( *)((?:-(?: +|$))*)(.*)$")
_KEY = re.compile(  # a key: quoted, or plain (not starting with an indicator), then `:`
    r"""^(?:"([^"]*)"|'([^']*)'|([^\s#'"{}\[\],:&*!|>%@`][^#{}\[\],:]*?))\s*:(?=\s|$)""")
_TAG_LINE = re.compile(r"^\s*(\{%.*%\}|\{#.*#\})\s*$")
_WORD = re.compile(r"[A-Za-z0-9_.\-]+")
_REF_BEFORE = re.compile(r"(?:^|[^@])(?:@@)*@([A-Za-z_][A-Za-z0-9_]*)?$")
_INCLUDE = re.compile(r"\{%-?\s*(?:include|import|from|extends)\s+([\"'])([^\"']+)\1")


@dataclass(frozen=True, slots=True)
class Line:
    """One line split as YAML reads its start: indentation, `- ` item marks, a key."""

    indent: int
    dash: int | None  # column of the last `-` item mark, or None
    key_col: int  # where the content after the marks starts
    key: str | None
    value: str  # after `key:` (stripped), or the whole content when there is no key
    value_col: int


def split_line(text: str) -> Line:
    m = _LINE.match(text)
    assert m is not None  # the pattern matches every string
    indent, marks, rest = len(m[1]), m[2], m[3]
    dash = indent + marks.rstrip().rfind("-") if marks else None
    key_col = indent + len(marks)
    km = _KEY.match(rest)
    if km is None:
        return Line(indent, dash, key_col, None, rest.strip(), key_col)
    key = next(g for g in km.groups() if g is not None)
    after = rest[km.end():]
    value_col = key_col + km.end() + (len(after) - len(after.lstrip()))
    return Line(indent, dash, key_col, key.strip(), _uncommented(after).strip(), value_col)


def _uncommented(value: str) -> str:
    return re.split(r"(?:^|\s)#", value, maxsplit=1)[0]


def _skipped(text: str) -> bool:
    stripped = text.strip()
    return not stripped or stripped.startswith("#") or bool(_TAG_LINE.match(text)) \
        or stripped.startswith("{{")


@dataclass(frozen=True, slots=True)
class Context:
    """What the cursor is in.

    path: the keys from the document's root to the mapping (or list) holding the cursor,
    ITEM for a list item; key: the key whose value the cursor is in (None: where a key is
    typed); prefix: the word typed so far, starting at column `start`; in_list: the value
    is an item of a list (`elements: [a, |]`, a `- |` line); indent and dash: the column of
    the mapping's keys and, when it is a list item, of its `-`."""

    path: tuple[str, ...]
    key: str | None
    prefix: str
    start: int
    in_list: bool = False
    indent: int = 0
    dash: int | None = None
    rooted: bool = True  # the path reaches column 0 (False: an included fragment)


def context(lines: list[str], line: int, col: int) -> Context:
    """The Context at (line, col), 0-based."""
    text = lines[line] if line < len(lines) else ""
    before = text[:col]
    word = re.search(r"[A-Za-z0-9_.\-]*$", before)
    prefix = word.group(0) if word else ""
    start = col - len(prefix)
    head = split_line(before)
    inner: tuple[str, ...] = ()
    in_list = False
    key: str | None
    if head.key is not None and head.value_col <= col:
        key, indent = head.key, head.key_col
        flow = _flow(head.key, before[head.value_col:])
        if flow is not None:
            inner, key, in_list = flow
    elif head.key is not None:  # the cursor is on the key itself
        key, indent = None, head.key_col
    else:
        key, indent = None, head.key_col
        flow = _flow(None, before[head.key_col:]) if head.value[:1] in ("{", "[") else None
        if flow is not None:  # `- { speaker: |`: a flow mapping as a list item
            inner, key, in_list = flow
        elif head.dash is not None and head.value and not re.fullmatch(r"[A-Za-z0-9_\-]*",
                                                                      head.value):
            in_list = True
    dash = head.dash
    path, rooted = _parents(lines, line, indent, dash)
    if key is None and dash is not None and len(path) >= 2 and path[-1] == ITEM \
            and _scalar_list(path[-2]):
        # `- |` under `sequence:` or `elements:`: a list of values, not of mappings
        key, in_list, path = path[-2], True, path[:-2]
    return Context((*path, *inner), key, prefix, start, in_list, indent, dash, rooted)


_SCALAR_LISTS = frozenset({"elements", "sequence", "reference_images", "reference_videos",
                           "keyframes", "images", "videos", "voices", "tags", "subtitles"})


def _scalar_list(key: str) -> bool:
    return key in _SCALAR_LISTS


def _flow(outer: str | None, value: str) -> tuple[tuple[str, ...], str | None, bool] | None:
    """Inside a flow collection written after `outer:` (or as a list item: no `outer`): the
    keys into it (`outer` first),
    the key whose value the cursor is in (None: a key of a flow mapping is typed) and whether
    it is a list item; None when the cursor is not inside one."""
    stack: list[tuple[str, int]] = []
    quote = None
    for i, char in enumerate(value):
        if quote:
            if char == quote:
                quote = None
            continue
        if char in "\"'":
            quote = char
        elif char in "{[":
            stack.append((char, i))
        elif char in "}]" and stack:
            stack.pop()
    if not stack:
        return None
    keys: list[str] = [outer] if outer is not None else []
    for depth, (opener, at) in enumerate(stack):
        end = stack[depth + 1][1] if depth + 1 < len(stack) else len(value)
        segment = value[at + 1:end].rsplit(",", 1)[-1]
        km = re.match(r"\s*([A-Za-z0-9_\-]+)\s*:", segment)
        last = depth == len(stack) - 1
        if opener == "[":
            if last:
                return (tuple(keys[:-1]), keys[-1], True) if keys else None
            keys.append(ITEM)
            continue
        if last:
            return tuple(keys), (km.group(1) if km else None), False
        if km:
            keys.append(km.group(1))
    return None


def _parents(lines: list[str], line: int, indent: int, dash: int | None
             ) -> tuple[tuple[str, ...], bool]:
    """The keys leading to the mapping whose keys start at column `indent` on `line` (an
    item of a list whose `-` is at column `dash`, if given), and whether they reach the
    document's root."""
    path: list[str] = []
    want, in_list = indent, dash
    for i in range(line - 1, -1, -1):
        if _skipped(lines[i]):
            continue
        row = split_line(lines[i])
        if in_list is not None:  # the key owning the list whose items start at `in_list`
            if row.indent > in_list or row.dash == in_list:
                continue  # inside an item, or an item before ours
            if row.key is None:
                return tuple(path), False
            path[:0] = [row.key, ITEM]
            want, in_list = row.key_col, row.dash
            continue
        if row.key_col > want:
            continue  # inside a value before ours
        if row.key_col == want:
            in_list = row.dash  # the first key of the item the mapping is, if a `-` leads
            continue
        if row.key is None:
            return tuple(path), False
        path.insert(0, row.key)
        want, in_list = row.key_col, row.dash
    return tuple(path), in_list is None and want == 0


def mapping_keys(lines: list[str], line: int, indent: int) -> dict[str, tuple[int, str]]:
    """The keys of the block mapping whose keys start at column `indent` and which holds
    `line`, each with its line and its value as written."""
    found: dict[str, tuple[int, str]] = {}
    own = split_line(lines[line]) if line < len(lines) else split_line("")
    if own.key is not None and own.key_col == indent:
        found[own.key] = (line, own.value)
    if not (own.dash is not None and own.key_col == indent):  # not the item's first line
        for i in range(line - 1, -1, -1):
            if _skipped(lines[i]):
                continue
            row = split_line(lines[i])
            if row.key_col > indent:
                continue
            if row.key_col < indent:
                break
            if row.key is not None:
                found.setdefault(row.key, (i, row.value))
            if row.dash is not None:
                break
    for i in range(line + 1, len(lines)):
        if _skipped(lines[i]):
            continue
        row = split_line(lines[i])
        if row.key_col > indent:
            continue
        if row.key_col < indent or row.dash is not None:  # the mapping's end, the next item
            break
        if row.key is not None:
            found.setdefault(row.key, (i, row.value))
    return found


def word_at(text: str, col: int) -> tuple[str, int, int] | None:
    """The word (an id, an alias, a name) under column `col`, with its start and end, and a
    `@` before it included."""
    for m in _WORD.finditer(text):
        if m.start() <= col <= m.end():
            start = m.start()
            if start > 0 and text[start - 1] == "@" and (start < 2 or text[start - 2] != "@"):
                start -= 1
            return text[start:m.end()], start, m.end()
    if col < len(text) and text[col] == "@":
        after = _WORD.match(text, col + 1)
        if after is not None:
            return text[col:after.end()], col, after.end()
    return None


def reference_before(text: str) -> tuple[str, int] | None:
    """An element reference being typed at the end of `text` (`... @ma`): the name so far
    and the column of its `@`; None when the `@` is escaped (`@@`) or there is none."""
    m = _REF_BEFORE.search(text)
    if m is None:
        return None
    name = m.group(1) or ""
    return name, len(text) - len(name) - 1


def include_at(text: str, col: int) -> tuple[str, int, int] | None:
    """The path of the `{% include %}`/`{% import %}`/`{% from %}` under `col`, with the
    columns of the path."""
    for m in _INCLUDE.finditer(text):
        if m.start() <= col <= m.end():
            return m.group(2), m.start(2), m.end(2)
    return None


def includes(text: str) -> list[tuple[int, str, int, int]]:
    """Every include, import or from in `text`: (line, path, start, end), 0-based."""
    found = []
    for number, line in enumerate(text.split("\n")):
        if "{%" in line:
            found += [(number, m.group(2), m.start(2), m.end(2)) for m in _INCLUDE.finditer(line)]
    return found


# -- the extent of what a diagnostic points at -----------------------------------------------

def token_end(text: str, col: int) -> int:
    """Where the YAML token starting at column `col` of `text` ends (exclusive): a quoted
    string to its closing quote, `@name`, a template tag, a flow collection to its closing
    bracket, a key to its colon, a plain value to a comment or the end of the line (or the
    next `,`/`]`/`}` inside a flow collection)."""
    if col >= len(text):
        return col
    char = text[col]
    if char == '"':
        i = col + 1
        while i < len(text):
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == '"':
                return i + 1
            i += 1
        return len(text.rstrip())
    if char == "'":
        i = col + 1
        while i < len(text):
            if text[i] == "'":
                if text[i + 1:i + 2] == "'":
                    i += 2
                    continue
                return i + 1
            i += 1
        return len(text.rstrip())
    if text.startswith(("{{", "{%", "{#"), col):
        close = {"{{": "}}", "{%": "%}", "{#": "#}"}[text[col:col + 2]]
        end = text.find(close, col + 2)
        return end + 2 if end >= 0 else len(text.rstrip())
    if char == "@":
        m = re.compile(r"@@?[A-Za-z0-9_]*").match(text, col)
        return m.end() if m else col + 1
    if char in "{[":
        depth = 0
        for i in range(col, len(text)):
            if text[i] in "{[":
                depth += 1
            elif text[i] in "}]":
                depth -= 1
                if depth == 0:
                    return i + 1
        return len(text.rstrip())
    if char.isspace():
        return col + 1
    head = text[:col]
    if not head.strip(" -"):  # at the start of the line's content: a key or an item
        km = _KEY.match(text[col:])
        if km is not None:
            return col + len(km.group(0)) - 1
    if _open_flow(head):
        m = re.compile(r"[^,\]}]*").match(text, col)
        end = m.end() if m else len(text)
        return col + len(text[col:end].rstrip()) or col + 1
    rest = _uncommented(text[col:]).rstrip()
    return col + (len(rest) or 1)


def _open_flow(head: str) -> bool:
    depth, quote = 0, None
    for char in head:
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth = max(0, depth - 1)
    return depth > 0
