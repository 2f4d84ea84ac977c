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


def did_you_mean(word: str, choices) -> str | None:
    """A 'did you mean ...?' hint from the closest choices, or None."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    if not close:
        return None
    if len(close) == 1:
        return f"did you mean '{close[0]}'?"
    return "did you mean " + ", ".join(f"'{c}'" for c in close[:-1]) + f" or '{close[-1]}'?"
