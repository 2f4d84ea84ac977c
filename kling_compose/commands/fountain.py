"""A small parser for Fountain, the plain-text screenplay format (https://fountain.io/syntax,
version 1.1), for `kling-compose import` (commands/screenplay.py).

What it gives: the title page (its keys and values) and the body as a flat list of elements,
each with its kind, its text as it reads (emphasis markup, notes and boneyard removed) and the
line of the file it starts on. The rules, each from the spec:

- Scene heading: a line that begins with INT, EXT, EST, INT./EXT, INT/EXT or I/E (any case),
  followed by a dot or a space, with a blank line before and after; or forced by a single
  leading period followed by a letter or digit (`.SNIPER SCOPE POV`; `...` stays action).
  A trailing scene number `#1A#` is taken off.
- Character: a line entirely in uppercase (its name, that is: an extension in parentheses
  after it may be lower case, `HANS (on the radio)`), with at least one letter, a blank line
  before it and none after it; or forced with `@` (`@McCLANE`). A `^` at its end marks the
  second half of dual dialogue. Dialogue and parentheticals follow it until a blank line; a
  line of two spaces keeps the block going.
- Transition: an uppercase line ending in `TO:`, blank lines before and after; or forced with
  `>` (`>Burn to White.`). `>text<` is centered text.
- Lyrics (`~`), sections (`#`), synopses (`=`), page breaks (`===`), forced action (`!`).
- Notes `[[...]]` (they may span lines, not an empty one) and boneyard `/* ... */` (which may
  span anything) are removed; a line left empty by that is dropped, not read as a blank line.
- Emphasis `*italic*`, `**bold**`, `***both***`, `_underline_` is taken off the text (`\\*`
  and `\\_` are literal); tabs are four spaces.
- Title page: `Key: value` lines at the very start of the file (values inline or indented on
  the lines below), up to the first blank line. It is read as one only when the first line's
  key is one the spec names (Title, Credit, Author, ...), so that an action line such as
  `Note: the lights are off` is not mistaken for one.

One deliberate extension: `FADE IN:`, `FADE OUT.` and `FADE TO BLACK.` alone between blank
lines are transitions (by the spec they are action unless forced with `>`), since every
screenplay writes them so.

Everything here is linear in the size of the text (no backtracking regular expression runs
over more than one line), so a hostile file costs no more than its bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

KINDS = ("scene_heading", "action", "character", "parenthetical", "dialogue", "lyrics",
         "transition", "centered", "section", "synopsis", "page_break")

# the title page keys the spec names; a first line with another key is not a title page
TITLE_KEYS = frozenset({"title", "credit", "author", "authors", "source", "draft date", "date",
                        "contact", "copyright", "notes", "revision"})

_SCENE = re.compile(r"(?:INT\./EXT|INT/EXT|I/E|INT|EXT|EST)[. ]", re.IGNORECASE)
_SCENE_NUMBER = re.compile(r"[A-Za-z0-9.\-]+")
_PAGE_BREAK = re.compile(r"={3,}")
_KEY = re.compile(r"([A-Za-z][A-Za-z0-9 '_-]{0,39}):(.*)")
_FADES = frozenset({"FADE IN:", "FADE OUT.", "FADE OUT", "FADE TO BLACK.", "FADE TO BLACK",
                    "FADE OUT:", "FADE TO BLACK:"})

# emphasis: the delimiters must touch the words they wrap (Markdown's rule: "*69 and *23"
# is no italics); contents hold no delimiter, so each pattern scans a line once
_EMPHASIS = (re.compile(r"\*\*\*(?=\S)([^*\n]+?)(?<=\S)\*\*\*"),
             re.compile(r"\*\*(?=\S)([^*\n]+?)(?<=\S)\*\*"),
             re.compile(r"\*(?=\S)([^*\n]+?)(?<=\S)\*"),
             re.compile(r"(?<![^\W_])_(?=\S)([^_\n]+?)(?<=\S)_(?![^\W_])"))
_STAR, _UNDERSCORE = "\x00", "\x01"  # escaped delimiters while emphasis is taken off


@dataclass(frozen=True, slots=True)
class Element:
    """One element of the body: `kind` (one of KINDS), its text as it reads, and the line of
    the file it starts on (1-based)."""

    kind: str
    text: str
    line: int
    name: str = ""  # a character cue, and the lines it speaks: the character's name
    extensions: tuple[str, ...] = ()  # a cue's parenthetical notes: ("V.O.",), ("CONT'D",)
    dual: bool = False  # a cue marked `^`: the second half of dual dialogue
    forced: bool = False  # written with its forcing character (`.`, `@`, `>`, `!`)
    number: str = ""  # a scene heading's scene number (`#1A#`)
    level: int = 0  # a section's depth (`#` 1, `##` 2, ...)


@dataclass(slots=True)
class Screenplay:
    """The title page (keys lower-cased, in order; each value's lines joined by a space, its
    emphasis taken off) and the body's elements in order."""

    title_page: dict[str, str] = field(default_factory=dict)
    elements: list[Element] = field(default_factory=list)

    @property
    def title(self) -> str:
        return self.title_page.get("title", "")


def plain(text: str) -> str:
    """`text` without Fountain's emphasis markup: `*`, `**`, `***` and `_` taken off the
    words they wrap; `\\*` and `\\_` are the characters themselves."""
    if "*" not in text and "_" not in text:
        return text
    text = text.replace("\\*", _STAR).replace("\\_", _UNDERSCORE)
    for _ in range(8):  # nested emphasis comes off one level a round
        before = text
        for pattern in _EMPHASIS:
            text = pattern.sub(r"\1", text)
        if text == before:
            break
    return text.replace(_STAR, "*").replace(_UNDERSCORE, "_")


def parse(text: str) -> Screenplay:
    """The screenplay in `text` (any line ends; a leading byte order mark is ignored)."""
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\t", "    ")
    lines = _without_notes_and_boneyard(text)
    screenplay = Screenplay()
    start = _title_page(lines, screenplay.title_page)
    screenplay.elements = _Body(lines[start:]).elements()
    return screenplay


# -- notes and boneyard -----------------------------------------------------------------------


def _removed_spans(text: str) -> list[tuple[int, int]]:
    """Where the boneyard (`/* ... */`) and the notes (`[[ ... ]]`, not across an empty line)
    are, in order. Each search starts where the last one stopped, so the text is walked a
    bounded number of times whatever it holds (a thousand `[[` and one `]]` at the end)."""
    spans: list[tuple[int, int]] = []
    at = 0  # the end of the last span taken
    bone, note, close = text.find("/*"), text.find("[["), -1
    while True:
        if bone != -1 and bone < at:
            bone = text.find("/*", at)
        if note != -1 and note < at:
            note = text.find("[[", at)
        if bone == -1 and note == -1:
            return spans
        if bone != -1 and (note == -1 or bone < note):
            end = text.find("*/", bone + 2)
            if end == -1:  # never closed: text, and so is every later `/*`
                bone = -1
                continue
            spans.append((bone, end + 2))
            at = end + 2
            continue
        if close < note + 2:
            close = text.find("]]", note + 2)
        if close == -1:  # never closed: text, and so is every later `[[`
            note = -1
            continue
        blank = text.find("\n\n", note + 2, close)
        if blank != -1:  # an empty line before its `]]`: not a note
            note = text.find("[[", blank + 2)
            continue
        spans.append((note, close + 2))
        at = close + 2


def _without_notes_and_boneyard(text: str) -> list[tuple[int, str]]:
    """The lines of `text` as (line number, text), notes and boneyard taken out. A line that
    held only those (or lay inside them) is dropped, not left blank, so that a note between a
    cue and its dialogue does not end the block."""
    spans = _removed_spans(text)
    out: list[tuple[int, str]] = []
    k, offset = 0, 0
    for number, line in enumerate(text.split("\n"), start=1):
        start, end = offset, offset + len(line)  # the line's characters, then its newline
        offset = end + 1
        while k < len(spans) and spans[k][1] <= start:
            k += 1
        kept: list[str] = []
        at, j = start, k
        while j < len(spans) and spans[j][0] <= end:
            a, b = spans[j]
            if a > at:
                kept.append(text[at:a])
            at = max(at, b)
            j += 1
        if j == k:  # nothing removed here
            out.append((number, line))
            continue
        if at < end:
            kept.append(text[at:end])
        rest = "".join(kept)
        if rest.strip():
            out.append((number, rest))
    return out


# -- the title page ---------------------------------------------------------------------------


def _title_page(lines: list[tuple[int, str]], into: dict[str, str]) -> int:
    """Read the title page at the start of `lines` into `into`; returns where the body
    starts."""
    first = 0
    while first < len(lines) and not lines[first][1].strip():
        first += 1
    match = _KEY.fullmatch(lines[first][1]) if first < len(lines) else None
    if match is None or match.group(1).strip().lower() not in TITLE_KEYS:
        return 0
    values: dict[str, list[str]] = {}
    key = ""
    i = first
    while i < len(lines):
        line = lines[i][1]
        if not line.strip():
            break
        indented = line.startswith("   ")
        match = None if indented else _KEY.fullmatch(line)
        if match is not None:
            key = match.group(1).strip().lower()
            values.setdefault(key, [])
            if match.group(2).strip():
                values[key].append(match.group(2).strip())
        elif indented and key:
            values[key].append(line.strip())
        else:  # neither a key nor a value: the body starts here
            break
        i += 1
    for key, parts in values.items():
        into[key] = " ".join(" ".join(plain(p).split()) for p in parts if p)
    return i


# -- the body ---------------------------------------------------------------------------------


def _blank(line: str) -> bool:
    return not line.strip()


def _cue(text: str) -> tuple[str, tuple[str, ...], bool] | None:
    """A character cue's name, extensions and dual mark, when `text` (stripped, without a
    forcing `@`) is one; None when its name is not uppercase or has no letter."""
    dual = text.endswith("^")
    if dual:
        text = text[:-1].rstrip()
    paren = text.find("(")
    name = (text if paren == -1 else text[:paren]).strip()
    extensions: list[str] = []
    at = len(text) if paren == -1 else paren  # walked by index: no copy of the rest per step
    while at < len(text):
        close = text.find(")", at)
        if text[at] != "(" or close == -1:
            return None
        extensions.append(text[at + 1:close].strip())
        at = close + 1
        while at < len(text) and text[at].isspace():
            at += 1
    if not name:
        return None
    return name, tuple(e for e in extensions if e), dual


def _natural_cue(text: str) -> tuple[str, tuple[str, ...], bool] | None:
    cue = _cue(text)
    if cue is None:
        return None
    name = cue[0]
    # "entirely in uppercase": no lower-case letter and at least one upper-case one (a name
    # in a script without case, 黒澤, is forced with @); "R2D2" works, "23" does not
    if name != name.upper() or not any(c.isupper() for c in name) or name.endswith(":"):
        return None
    return cue


class _Body:
    """The body's lines classified one by one, as the spec describes each element."""

    def __init__(self, lines: list[tuple[int, str]]) -> None:
        self.lines = lines
        # each element as it is built: kind, its lines of text, its fields
        self.out: list[tuple[str, list[str], dict]] = []
        self.open = False  # the last element may take the next line (no blank line between)

    def blank(self, i: int) -> bool:
        return i < 0 or i >= len(self.lines) or _blank(self.lines[i][1])

    def add(self, kind: str, text: str, line: int, **extra) -> None:
        last = self.out[-1] if self.out else None
        if self.open and last is not None and kind in ("action", "dialogue", "lyrics") \
                and last[0] == kind and last[2].get("name", "") == extra.get("name", ""):
            last[1].append(text)
        else:
            self.out.append((kind, [text], {"line": line, **extra}))
        self.open = True

    def elements(self) -> list[Element]:
        speaker = ""  # the character speaking, inside a dialogue block
        for i, (number, raw) in enumerate(self.lines):
            if _blank(raw):
                if speaker and len(raw) >= 2 and not self.blank(i + 1):
                    continue  # two spaces: the dialogue goes on
                speaker, self.open = "", False
                continue
            text = raw.strip()
            if speaker:
                self.dialogue_line(text, number, speaker)
            else:
                speaker = self.line(i, number, raw, text)
        return [Element(kind, "\n".join(texts), **fields) for kind, texts, fields in self.out]

    def dialogue_line(self, text: str, number: int, speaker: str) -> None:
        if text.startswith("(") and text.endswith(")"):
            self.add("parenthetical", plain(text), number, name=speaker)
        elif text.startswith("~"):
            self.add("lyrics", plain(text[1:].strip()), number, name=speaker)
        else:
            self.add("dialogue", plain(text), number, name=speaker)

    def line(self, i: int, number: int, raw: str, text: str) -> str:
        """Classify the line outside dialogue; returns the speaker when it is a cue."""
        before, after = self.blank(i - 1), self.blank(i + 1)
        if text.startswith("!"):
            self.add("action", plain(raw.lstrip()[1:]).rstrip(), number, forced=True)
        elif text.startswith("@") and len(text) > 1 and not after \
                and (cue := _cue(text[1:].strip())) is not None:
            return self.cue(cue, number, forced=True)
        elif text.startswith("~"):
            self.add("lyrics", plain(text[1:].strip()), number)
        elif text.startswith(">") and text.endswith("<") and text[1:-1].strip():
            self.add("centered", plain(text[1:-1].strip()), number)
        elif text.startswith(">") and not text.endswith("<") and text[1:].strip():
            self.add("transition", plain(text[1:].strip()), number, forced=True)
        elif text.startswith(".") and len(text) > 1 and text[1].isalnum():
            self.heading(text[1:], number, forced=True)
        elif _PAGE_BREAK.fullmatch(text):
            self.add("page_break", "", number)
            self.open = False
        elif text.startswith("#"):
            level = len(text) - len(text.lstrip("#"))
            self.add("section", plain(text[level:].strip()), number, level=level)
        elif text.startswith("="):
            self.add("synopsis", plain(text[1:].strip()), number)
        elif before and after and _SCENE.match(text):
            self.heading(text, number)
        elif before and after and text == text.upper() and any(c.isupper() for c in text) \
                and (raw.endswith("TO:") or text in _FADES):
            # "CUT TO: " (a space after the colon) is action, as the spec says
            self.add("transition", text, number)
        elif before and not after and (cue := _natural_cue(text)) is not None:
            return self.cue(cue, number)
        else:
            self.add("action", plain(raw.rstrip()), number)
        return ""

    def heading(self, text: str, number: int, forced: bool = False) -> None:
        text = text.strip()
        scene_number = ""
        # a trailing `#1A#`, found from the end (a pattern searched from each space of a long
        # run of them would try the rest of the line from every one: quadratic)
        if text.endswith("#"):
            opening = text.rfind("#", 0, len(text) - 1)
            if opening != -1 and _SCENE_NUMBER.fullmatch(text, opening + 1, len(text) - 1):
                scene_number, text = text[opening + 1:-1], text[:opening].rstrip()
        self.add("scene_heading", plain(text), number, forced=forced, number=scene_number)

    def cue(self, cue: tuple[str, tuple[str, ...], bool], number: int,
            forced: bool = False) -> str:
        name, extensions, dual = cue
        self.add("character", name, number, name=name, extensions=extensions, dual=dual,
                 forced=forced)
        return name
