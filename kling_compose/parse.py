"""Stage 2, parse: Rendered YAML text -> Document (plain data plus a position index).

Safe YAML only: the loader is a CSafeLoader subclass (SafeLoader where libyaml is missing), so
a `!!python/...` tag is an error, never executed. Its constructors record where every mapping
value, key and sequence item starts, reject duplicate keys, keep plain keys as the text the
user wrote (`on:` stays "on"), and refuse values JSON cannot carry (dates, binary, sets, NaN).
"""

from __future__ import annotations

import bisect
import json
import math
import re
from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any

import yaml

from .errors import DeferredLocation, Diagnostic, Location, UserError
from .render import _SURROGATE, Rendered, surrogate_diagnostic

# the C loader when PyYAML was built with libyaml (3-4x faster); PyYAML has no type stubs here
_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Resolvers of YAML 1.1 that surprise people: `2024-01-01` would become a date.
_DROPPED_TAGS = {"tag:yaml.org,2002:timestamp"}


@dataclass(slots=True)
class Document:
    """Parsed YAML data and where each piece of it came from.

    positions maps id(container) -> (start, {key_or_index: (key_start, value_start, value_end)})
    with 0-based (line, column, index) marks in the rendered text; locate() turns a path of
    keys and indices into the user's file:line:col. `values` is how many values `data`
    holds (extent()'s size), counted while it was built; None when a node is used twice
    (an alias, a merge key) and only extent() can say.
    """

    data: Any
    rendered: Rendered
    positions: dict
    values: int | None = None

    def locate(self, path, key: bool = False) -> Location:
        """Where the value at `path` starts (or its key, with key=True); the nearest known
        ancestor when the path does not exist. Computed when first used (DeferredLocation)."""
        path = tuple(path)
        return DeferredLocation(lambda: self.locate_now(path, key))

    def locate_now(self, path, key: bool = False) -> Location:
        node, mark = self.data, (0, 0, 0)
        for part in path:
            entry = self.positions.get(id(node))
            try:
                child = node[part]
            except (KeyError, IndexError, TypeError):
                break
            if entry is not None and part in entry[1]:
                key_mark, value_mark, _ = entry[1][part]
                mark = key_mark if key and part == path[-1] and key_mark else value_mark
            node = child
        return self._location(mark)

    def locate_text(self, path, offset: int) -> Location:
        """Where character `offset` of the string at `path` is, when the scalar allows it
        (computed when first used)."""
        path = tuple(path)
        return DeferredLocation(lambda: self.locate_text_now(path, offset))

    def locate_text_now(self, path, offset: int) -> Location:
        parent = self._get(path[:-1])
        entry = self.positions.get(id(parent))
        if entry is None or path[-1] not in entry[1]:
            return self.locate_now(path)
        _, start, end = entry[1][path[-1]]
        value = self._get(path)
        raw = self.rendered.text[start[2]:end[2]] if end else ""
        needle = value[offset:offset + 24] if isinstance(value, str) else ""
        at = -1
        if needle:
            for _ in range(value[:offset].count(needle) + 1):
                at = raw.find(needle, at + 1)
                if at < 0:
                    break
        if at < 0:
            return self._location(start)
        index = start[2] + at
        newlines = raw.count("\n", 0, at)  # only the scalar's own text: no whole-file scan
        line = start[0] + newlines
        col = at - (raw.rfind("\n", 0, at) + 1) if newlines else start[1] + at
        return self._location((line, col, index))

    def scalar_text(self, path) -> str | None:
        """The text the one-line scalar at `path` was written as (`16:9`, where the value is
        969), or None."""
        entry = self.positions.get(id(self._get(path[:-1]))) if path else None
        if entry is None or path[-1] not in entry[1]:
            return None
        _, start, end = entry[1][path[-1]]
        if end is None or start[0] != end[0]:
            return None
        return _source_line(self.rendered.text, start[0])[start[1]:end[1]]

    def _get(self, path):
        node = self.data
        for part in path:
            node = node[part]
        return node

    def _location(self, mark) -> Location:
        return _locate(self.rendered, mark[0], mark[1], mark[2])


def parse_document(rendered: Rendered) -> Document:
    """Parse rendered YAML; every syntax problem becomes a located UserError."""
    lone = _SURROGATE.search(rendered.text)
    if lone is not None:  # libyaml would fail encoding it (UnicodeEncodeError)
        text = rendered.text
        line = text.count("\n", 0, lone.start()) + 1
        col = lone.start() - (text.rfind("\n", 0, lone.start()) + 1) + 1
        raise UserError(surrogate_diagnostic(lone.group(), rendered.locate(line, col)))
    recursive = _recursive_aliases(rendered.text)
    if recursive:
        raise UserError(*[Diagnostic(msg, _locate(rendered, m.line, m.column, m.index))
                          for msg, m in recursive])
    loader = _Loader(rendered.text)
    try:
        node = loader.get_single_node()  # PyYAML's get_single_data(), the plain case first
        data = None if node is None else loader.construct_plain(node)
        if data is _NOT_PLAIN:
            data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise UserError(_yaml_diagnostic(exc, rendered)) from None
    except yaml.YAMLError as exc:
        raise UserError(Diagnostic(f"YAML: {exc}", Location(rendered.source.display))) from None
    finally:
        loader.dispose()
    if loader.problems:
        diagnostics = [Diagnostic(msg, _locate(rendered, m[0], m[1], m[2]), hint)
                       for msg, m, hint in loader.problems]
        raise UserError(*diagnostics)
    values = loader.values if not loader.shared and data is not None else None
    return Document(data, rendered, loader.positions, values)


def _recursive_aliases(text: str) -> list:
    """Aliases used inside the node their anchor names (they would make cyclic data)."""
    if "&" not in text or "*" not in text:
        return []
    found, open_anchors = [], []
    try:
        for event in yaml.parse(text, Loader=_BaseLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                open_anchors.append(event.anchor)
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                open_anchors.pop()
            elif isinstance(event, yaml.AliasEvent) and event.anchor in open_anchors:
                found.append((f"YAML: recursive alias '*{event.anchor}' (the anchor "
                              f"&{event.anchor} contains itself)", event.start_mark))
    except yaml.YAMLError:
        return found  # the loader reports syntax errors with their context
    return found


def _short_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


def _locate(rendered: Rendered, line: int, column: int, index: int) -> Location:
    """rendered.locate of a YAML mark (0-based). YAML breaks lines at U+0085, U+2028 and
    U+2029 too, where editors, LSP and the templates' line map see none: in a text holding
    one, the line and column are counted again from the mark's index, at \\n, \\r\\n and
    \\r only (else every place below it is a line too low)."""
    lines = _editor_lines(rendered.text)
    if lines is not None:
        line = bisect.bisect_right(lines, index) - 1
        column = index - lines[line]
    return rendered.locate(line + 1, column + 1)


_ODD_BREAK = re.compile("[\x85\u2028\u2029]")
_EDITOR_BREAK = re.compile(r"\r\n|\r|\n")
_EDITOR_LINES: list = [None, None]  # the last text looked at, and its line starts (or None)


def _editor_lines(text: str) -> list[int] | None:
    """The index where each line of `text` starts as an editor counts lines, when YAML would
    count them otherwise (None: the marks' own lines are right). Indexes as the scanner's:
    after a byte order mark, which it skips."""
    if _EDITOR_LINES[0] is not text:
        found = None
        if _ODD_BREAK.search(text):
            body = text.removeprefix("\ufeff")
            found = [0, *(m.end() for m in _EDITOR_BREAK.finditer(body))]
        _EDITOR_LINES[:] = [text, found]
    return _EDITOR_LINES[1]


def _mark(m) -> tuple[int, int, int]:
    return (m.line, m.column, m.index)


class _Loader(_BaseLoader):
    """Safe loader that records positions and collects problems instead of stopping."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
        for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self.positions: dict = {}
        self.problems: list = []  # (message, mark, hint)
        self.values = 0  # values made: the document's extent while no node is made twice
        self.shared = False  # a node asked for again (an alias, a merge key)

    def resolve(self, kind, value, implicit):
        """The tag of a node: a scalar's depends on its text alone (no path resolvers here),
        so each plain text is resolved once (keys, ids and values repeat thousands of
        times); a quoted one is a string."""
        if kind is yaml.ScalarNode:
            if not implicit[0]:
                return self.DEFAULT_SCALAR_TAG
            tag = _RESOLVED.get(value)
            if tag is None:
                tag = super().resolve(kind, value, implicit)
                if len(_RESOLVED) > 100_000:
                    _RESOLVED.clear()
                _RESOLVED[value] = tag
            return tag
        return super().resolve(kind, value, implicit)

    def construct_plain(self, root):
        """construct_document(root), without PyYAML's machinery, for a document of plain
        mappings, lists and untagged scalars (what storyboards are): the same data,
        positions and count of values. _NOT_PLAIN, with nothing recorded, when the document
        has anything else (a tag, an alias, a merge key, a duplicate or non-scalar key, a
        value its tag cannot make): construct_document() then does it all, problems in
        their order."""
        plain = _Plain(self)
        try:
            data = plain.build(root, 0)
        except _NotPlain:
            del self.problems[plain.problems:]  # construct_document() finds them again
            return _NOT_PLAIN
        self.positions.update(plain.positions)
        self.values += plain.count
        return data

    def construct_object(self, node, deep=False):
        """A value a tag cannot make (`!!float abc`, `!!bool maybe`) is a located problem,
        never an exception out of PyYAML's constructors."""
        if node in self.constructed_objects:
            self.shared = True
        else:
            self.values += 1
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError,
                OverflowError) as exc:
            self.recursive_objects.pop(node, None)
            self.problems.append((f"YAML: {_shown_value(node)} is not a valid "
                                  f"{_short_tag(node.tag)} ({type(exc).__name__})",
                                  _mark(node.start_mark), None))
            return None

    def _wrong_kind(self, node, expected) -> bool:
        """True (and a problem recorded) when a !!map or !!seq tag sits on another kind of
        node: `!!map [1]`, `!!seq {a: 1}`, `!!map text`."""
        if isinstance(node, expected):
            return False
        want = "a mapping" if expected is yaml.MappingNode else "a list"
        self.problems.append((f"YAML: {_short_tag(node.tag)} needs {want}, not "
                              f"{_node_kind(node)}", _mark(node.start_mark),
                              "remove the tag, or write the value it names"))
        return True

    def construct_yaml_map(self, node):
        if self._wrong_kind(node, yaml.MappingNode):
            yield None
            return
        data: dict = {}
        yield data
        entries: dict = {}
        self.positions[id(data)] = (_mark(node.start_mark), entries)
        self._check_duplicates(node)
        self.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = self._key(key_node)
            if key is None:
                continue
            data[key] = self.construct_object(value_node, deep=False)
            entries[key] = (_mark(key_node.start_mark), _mark(value_node.start_mark),
                            _mark(value_node.end_mark))

    def construct_yaml_seq(self, node):
        if self._wrong_kind(node, yaml.SequenceNode):
            yield None
            return
        data: list = []
        yield data
        entries: dict = {}
        self.positions[id(data)] = (_mark(node.start_mark), entries)
        for index, child in enumerate(node.value):
            data.append(self.construct_object(child, deep=False))
            entries[index] = (None, _mark(child.start_mark), _mark(child.end_mark))

    def construct_yaml_float(self, node):
        if self._too_long(node):
            return None
        try:
            value = super().construct_yaml_float(node)
        except (ValueError, IndexError):
            self.problems.append((f"YAML: {_shown_value(node)} is not a valid !!float",
                                  _mark(node.start_mark), None))
            return None
        if not math.isfinite(value):
            self.problems.append((f"'{_shown_text(node.value)}' is not a finite number",
                                  _mark(node.start_mark), None))
        return value

    def construct_yaml_bool(self, node):
        try:
            return super().construct_yaml_bool(node)
        except KeyError:
            self.problems.append((f"YAML: {_shown_value(node)} is not a valid !!bool",
                                  _mark(node.start_mark), "write true or false"))
            return None

    def _too_long(self, node) -> bool:
        """A number written with more than MAX_NUMBER_CHARS characters: Python refuses to
        print an integer of more than 4,300 digits, and a sexagesimal (`1:2:3`) of thousands
        of parts takes quadratic time to compute."""
        if isinstance(node, yaml.ScalarNode) and len(node.value) > MAX_NUMBER_CHARS:
            self.problems.append((
                f"YAML: a number written with {len(node.value):,} characters (at most "
                f"{MAX_NUMBER_CHARS:,}): '{_shown_text(node.value)}'", _mark(node.start_mark),
                "quote it if it is meant as text"))
            return True
        return False

    def construct_undefined(self, node):
        self.problems.append((f"YAML: unsupported YAML tag '{_short_tag(node.tag)}'",
                              _mark(node.start_mark), "storyboards are plain data: tags like "
                              "!!python/... are refused, never executed"))
        return None

    def construct_yaml_int(self, node):
        if self._too_long(node):
            return None
        try:
            return super().construct_yaml_int(node)
        except (ValueError, IndexError):
            self.problems.append((f"YAML: {_shown_value(node)} is not a valid !!int",
                                  _mark(node.start_mark), None))
            return None

    def construct_unsupported(self, node):
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        self.problems.append((f"YAML type {tag} is not supported in a storyboard",
                              _mark(node.start_mark), "use plain strings, numbers, lists and "
                              "mappings"))
        return None

    def _key(self, key_node):
        if isinstance(key_node, yaml.ScalarNode):
            if key_node.tag == "tag:yaml.org,2002:merge":
                return None
            return key_node.value  # the key as written, never a YAML 1.1 bool or number
        self.problems.append(("a mapping key must be a plain name, not a list or mapping",
                              _mark(key_node.start_mark), None))
        return None

    def _check_duplicates(self, node) -> None:
        seen: dict = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            first = seen.setdefault(key_node.value, key_node)
            if first is not key_node:
                self.problems.append((
                    f"duplicate key '{key_node.value}' (first defined on line "
                    f"{first.start_mark.line + 1})", _mark(key_node.start_mark),
                    "each key may appear once in a mapping; remove or rename one"))


class _Plain:
    """One construct_plain(): what it has built so far (a method, not a closure calling
    itself, which would be a reference cycle holding the positions until the collector
    runs)."""

    __slots__ = ("loader", "positions", "seen", "count", "problems")

    def __init__(self, loader: _Loader) -> None:
        self.loader = loader
        self.positions: dict = {}
        self.seen: set = set()
        self.count = 0
        self.problems = len(loader.problems)  # problems recorded before: none may be added

    def build(self, node, depth: int):
        if id(node) in self.seen or depth > _PLAIN_DEPTH:
            raise _NotPlain
        self.seen.add(id(node))
        self.count += 1
        kind, tag = type(node), node.tag
        if kind is yaml.ScalarNode:
            if tag == _STR:
                return node.value
            if tag == _NULL:
                return None
            maker = _SCALARS.get(tag)
            if maker is None:
                raise _NotPlain
            try:
                value = maker(self.loader, node)
            except (ValueError, TypeError, KeyError, IndexError, AttributeError,
                    OverflowError):
                raise _NotPlain from None
            if len(self.loader.problems) != self.problems:
                raise _NotPlain
            return value
        start = node.start_mark
        entries: dict = {}
        seen = self.seen
        if kind is yaml.MappingNode and tag == _MAP:
            data: dict = {}
            for key_node, value_node in node.value:
                if type(key_node) is not yaml.ScalarNode or key_node.tag in _SPECIAL_KEYS:
                    raise _NotPlain
                key = key_node.value
                if key in data:
                    raise _NotPlain  # a duplicate: construct_document() says where
                if value_node.tag == _STR and type(value_node) is yaml.ScalarNode and \
                        id(value_node) not in seen:  # build()'s first case, inline
                    seen.add(id(value_node))
                    self.count += 1
                    data[key] = value_node.value
                else:
                    data[key] = self.build(value_node, depth + 1)
                k, v, e = key_node.start_mark, value_node.start_mark, value_node.end_mark
                entries[key] = ((k.line, k.column, k.index), (v.line, v.column, v.index),
                                (e.line, e.column, e.index))
            self.positions[id(data)] = ((start.line, start.column, start.index), entries)
            return data
        if kind is yaml.SequenceNode and tag == _SEQ:
            items: list = []
            for index, child in enumerate(node.value):
                items.append(self.build(child, depth + 1))
                v, e = child.start_mark, child.end_mark
                entries[index] = (None, (v.line, v.column, v.index), (e.line, e.column,
                                                                      e.index))
            self.positions[id(items)] = ((start.line, start.column, start.index), entries)
            return items
        raise _NotPlain


class _NotPlain(Exception):
    """A document construct_plain() leaves to construct_document()."""


_NOT_PLAIN = object()
_PLAIN_DEPTH = 100  # deeper: construct_document(), which needs no stack
_STR, _NULL = "tag:yaml.org,2002:str", "tag:yaml.org,2002:null"
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_SPECIAL_KEYS = frozenset({"tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"})
# the constructors of the other untagged scalars (problems recorded, not raised)
_SCALARS = {"tag:yaml.org,2002:int": _Loader.construct_yaml_int,
            "tag:yaml.org,2002:float": _Loader.construct_yaml_float,
            "tag:yaml.org,2002:bool": _Loader.construct_yaml_bool}
_RESOLVED: dict[str, str] = {}  # a plain scalar's text -> its tag (_Loader.resolve)

_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _Loader.construct_yaml_seq)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_yaml_float)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:bool", _Loader.construct_yaml_bool)
_Loader.add_constructor(None, _Loader.construct_undefined)
for _tag in ("binary", "set", "omap", "pairs", "timestamp"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _Loader.construct_unsupported)


MAX_NUMBER_CHARS = 1000  # characters of one number as written in YAML


def _shown_text(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:30]}...{text[-6:]}"


def _shown_value(node) -> str:
    """A node's value as a message quotes it: a scalar's text (cut), or what kind it is."""
    if isinstance(node, yaml.ScalarNode):
        return f"'{_shown_text(node.value)}'" if node.value else "an empty value"
    return _node_kind(node)


def _node_kind(node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return f"the text '{_shown_text(node.value)}'" if node.value else "an empty value"


def _yaml_diagnostic(exc: yaml.MarkedYAMLError, rendered: Rendered) -> Diagnostic:
    if isinstance(exc, yaml.scanner.ScannerError) and exc.problem_mark is not None:
        taught = _scanner_diagnostic(exc, rendered)
        if taught is not None:
            return taught
    mark = exc.problem_mark or exc.context_mark
    context = exc.context_mark
    problem = exc.problem or "invalid YAML"
    hint = None
    if "end of stream" in problem and context is not None and "quoted scalar" in (exc.context or ""):
        mark = context
        hint = "the quote that starts here is never closed"
    elif "flow sequence" in (exc.context or "") and context is not None:
        hint = f"the '[' on line {context.line + 1} is not closed, or a ',' is missing"
    elif "flow mapping" in (exc.context or "") and context is not None:
        hint = f"the '{{' on line {context.line + 1} is not closed, or a ',' is missing"
    elif "did not find expected" in problem and "block" in (exc.context or ""):
        hint = "check the indentation of this line against the lines above it"
    location = _locate(rendered, mark.line, mark.column, mark.index) if mark else None
    if exc.problem and "could not determine a constructor" in exc.problem:
        tag = re.search(r"tag '([^']*)'", exc.problem)
        problem = f"unsupported YAML tag '{_short_tag(tag.group(1) if tag else '?')}'"
        hint = "storyboards are plain data: tags like !!python/... are refused, never executed"
    elif exc.context:
        problem = f"{problem} ({exc.context})"
    if "mapping values are not allowed" in (exc.problem or ""):
        hint = "quote a value that contains ': ' (for example a prompt), or fix the indentation"
    elif "found undefined alias" in (exc.problem or ""):
        hint = "define the anchor with &name before using *name"
    return Diagnostic(f"YAML: {problem}", location, hint)


# What YAML does with these at the start of a plain value; a prompt like `@keeper walks`
# (an element reference first) is the usual way to meet them.
_RESERVED_STARTS = {"@": "YAML reserves '@'", "`": "YAML reserves '`'",
                    "%": "'%' starts a YAML directive"}
_LINE_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")


def _scanner_diagnostic(exc: yaml.MarkedYAMLError, rendered: Rendered) -> Diagnostic | None:
    """The scanner errors a character explains, in the user's words: libyaml does not name
    the character ("found character that cannot start any token"), so it is read here."""
    mark = exc.problem_mark
    line = _source_line(rendered.text, mark.line)
    char = line[mark.column:mark.column + 1]
    location = _locate(rendered, mark.line, mark.column, mark.index)
    if char == "\t" or "tab character" in (exc.problem or ""):
        return Diagnostic("YAML: a tab character where YAML expects spaces", location,
                          "YAML indentation must use spaces; replace the tab with spaces")
    if char in _RESERVED_STARTS and "cannot start any token" in (exc.problem or ""):
        return Diagnostic(f"YAML: a value starting with '{char}' must be quoted "
                          f"({_RESERVED_STARTS[char]})", location,
                          f"quote it: {_quoted_line(line, mark.column)}")
    return None


def _source_line(text: str, line: int) -> str:
    """Line `line` (0-based, as YAML counts lines) of `text`, as the scanner's columns see it:
    without a byte order mark, which no column counts (and libyaml's index skips)."""
    lines = _LINE_BREAK.split(text, line + 1)
    found = lines[line] if line < len(lines) else ""
    return found.removeprefix("\ufeff") if line == 0 else found


def _quoted_line(line: str, col: int) -> str:
    """The line with the plain value that starts at `col` in double quotes, shortened."""
    head, value, rest = line[:col].lstrip(), line[col:], ""
    if "[" in head or "{" in head:  # a flow collection: the value ends at the next indicator
        cut = re.search(r"[,\]}]", value)
        value, rest = (value[:cut.start()], value[cut.start():]) if cut else (value, "")
    else:
        value = re.split(r"\s#", value, maxsplit=1)[0]  # a comment stays out of the value
    value = value.rstrip()
    if len(value) > 40:
        value = value[:37].rstrip() + "..."
    return head + json.dumps(value, ensure_ascii=False) + rest.rstrip()


def extent(value, seen: dict) -> tuple[int, int]:
    """(values, depth) of a YAML value with its aliases expanded, in time linear in the
    number of *distinct* nodes: a node shared by aliases is measured once (by identity)."""
    key = id(value)
    if key in seen:
        return seen[key]
    seen[key] = (1, 1)  # a recursive alias is refused by the parser; this only stops a loop
    children = value.values() if isinstance(value, Mapping) else \
        value if isinstance(value, (list, tuple)) else ()
    size, depth = 1, 0
    for child in children:
        child_size, child_depth = extent(child, seen)
        size, depth = min(size + child_size, 10**12), max(depth, child_depth)
    seen[key] = (size, depth + 1)
    return seen[key]
