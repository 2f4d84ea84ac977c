"""The one exception a user ever sees, and the location it carries.

Exception tree::

    UserError            every mistake in the user's input or environment; exit code 1
      (carries one or more Diagnostic, each with an optional Location and hint)

Anything else that escapes is a bug and keeps its traceback. This module imports nothing
from the rest of the package and nothing from click: the CLI decides how to print.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    """A 1-based position in a file, the path as the user wrote it."""

    file: str
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.file
        if self.col is None:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.col}"


class DeferredLocation(Location):
    """A Location computed on first use: the typed stages record one for every field of
    every shot, and nearly all are never shown (only those of the errors and warnings that
    are reported). Finding a place in a templated storyboard means rendering it again with
    line marks, so doing it up front cost more than validating the storyboard."""

    __slots__ = ("_compute", "_where")

    def __init__(self, compute) -> None:  # noqa: D107 (compute() -> Location)
        object.__setattr__(self, "_compute", compute)
        object.__setattr__(self, "_where", None)

    def resolved(self) -> Location:
        where = object.__getattribute__(self, "_where")
        if where is None:
            where = object.__getattribute__(self, "_compute")()
            object.__setattr__(self, "_where", where)
            object.__setattr__(self, "_compute", None)
        return where

    file = property(lambda self: self.resolved().file)
    line = property(lambda self: self.resolved().line)
    col = property(lambda self: self.resolved().col)

    def __eq__(self, other):
        if isinstance(other, DeferredLocation):
            other = other.resolved()
        return self.resolved() == other if isinstance(other, Location) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.resolved())

    def __repr__(self) -> str:
        return repr(self.resolved())

    def __reduce__(self):
        return Location, (self.file, self.line, self.col)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One message for the user: what is wrong, where, and what to do about it."""

    message: str
    location: Location | None = None
    hint: str | None = None
    severity: str = "error"

    def __str__(self) -> str:
        head = f"{self.location}: " if self.location else ""
        text = f"{head}{self.severity}: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def sort_key(self) -> tuple:
        loc = self.location
        if loc is None:
            return ("", 0, 0, self.message)
        return (loc.file, loc.line or 0, loc.col or 0, self.message)


class UserError(Exception):
    """Raised with every diagnostic a stage collected; the CLI prints them and exits 1."""

    exit_code = 1

    def __init__(self, *diagnostics: Diagnostic) -> None:
        if not diagnostics:
            raise ValueError("UserError needs at least one diagnostic")
        self.diagnostics: tuple[Diagnostic, ...] = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))

    @classmethod
    def single(
        cls, message: str, location: Location | None = None, hint: str | None = None
    ) -> UserError:
        return cls(Diagnostic(message, location, hint))


def did_you_mean(word: str, choices, prefix: str = "") -> str | None:
    """A 'did you mean ...?' hint from the closest choices, or None. `prefix` goes before
    each suggestion: a file name is compared with file names and shown with its folder."""
    close = close_matches(word, choices)
    if not close:
        return None
    close = [prefix + c for c in close]
    if len(close) == 1:
        return f"did you mean '{close[0]}'?"
    return "did you mean " + ", ".join(f"'{c}'" for c in close[:-1]) + f" or '{close[-1]}'?"


def close_matches(word: str, choices, n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The choices most like `word` (best first), judged only where the two differ.

    What both share at the ends, cut at a separator (a folder `assets/`, a prefix `shot-`, an
    extension `.jpg`), says nothing about a typo: left in, it made `shot-3` look like `shot-1`
    and `assets/harbor.jpg` like `assets/portrait.png`. A shared stem is kept, so `harbor.jpg`
    still finds `harbor.png`.
    """
    import difflib
    import heapq

    scored = []
    for choice in choices:
        a, b = _differing_parts(word, choice)
        score = difflib.SequenceMatcher(None, a, b).ratio()
        if score >= cutoff:
            scored.append((score, choice))
    return [choice for _, choice in heapq.nlargest(n, scored)]


_HEAD_SEPARATORS = "/\\-_ "  # not '.': the part before an extension is the name itself
_TAIL_SEPARATORS = "/\\-_ ."


def _differing_parts(a: str, b: str) -> tuple[str, str]:
    """a and b without the prefix and suffix they share up to a separator."""
    head = _shared_run(a, b, _HEAD_SEPARATORS)
    a, b = a[head:], b[head:]
    tail = _shared_run(a[::-1], b[::-1], _TAIL_SEPARATORS)
    return a[:len(a) - tail], b[:len(b) - tail]


def _shared_run(a: str, b: str, separators: str) -> int:
    """Length of the longest common start of a and b that ends with a separator."""
    end = 0
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            break
        if x in separators:
            end = i + 1
    return end
