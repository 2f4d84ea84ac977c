"""Stage 1, render: storyboard source -> Rendered YAML text.

The source is a Jinja template rendered in a SandboxedEnvironment with StrictUndefined.
`{% include %}` and `{% import %}` resolve relative to the storyboard's folder and can never
read outside it. A file with no Jinja syntax is passed through untouched (the fast path).

Every later error is reported against the file the user wrote: `Rendered.locate` maps a
position in the rendered text back to the template (or included file) line it came from. The
map is built only when an error needs it, by rendering once more with a marker at the start of
every line of literal template text (see `_LineMarks`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import jinja2
from jinja2.ext import Extension
from jinja2.lexer import Token
from jinja2.sandbox import SandboxedEnvironment

from .errors import Diagnostic, Location, UserError, did_you_mean

_JINJA_SYNTAX = ("{{", "{%", "{#")
_MARK_OPEN, _MARK_CLOSE = "\ue000", "\ue001"
_MARK_RE = re.compile(f"{_MARK_OPEN}(\\d+){_MARK_CLOSE}")


@dataclass(frozen=True, slots=True)
class Source:
    """A template file read from the project: its absolute path and the name shown to the user."""

    path: Path
    display: str
    text: str


@dataclass(slots=True)
class Rendered:
    """Rendered YAML text plus what is needed to point back into the user's files."""

    source: Source
    root: Path
    text: str
    variables: Mapping[str, object] = field(default_factory=dict)
    templated: bool = False
    _origins: list | None = None  # per rendered line: (Source, source line) or None if unknown
    _origins_built: bool = False
    # the rendered text and each template file split into lines once (a lookup per field of
    # every shot must not split the whole file: that made templated storyboards quadratic)
    _lines: dict = field(default_factory=dict)

    def locate(self, line: int, col: int) -> Location:
        """The user's file, line and column for a 1-based position in the rendered text."""
        if not self.templated:
            return Location(self.source.display, line, col)
        origin = self._origin(line)
        if origin is None:
            return Location(f"{self.source.display} (line {line} of `kling-compose render`)")
        src, src_line = origin
        out_text = self.line_of(self.text, line)
        src_text = self.line_of(src.text, src_line)
        return Location(src.display, src_line, _map_column(out_text, src_text, col))

    def line_of(self, text: str, line: int) -> str:
        """Line `line` (1-based) of `text` (this rendering's text or a template's), or ''."""
        lines = self._lines.get(id(text))
        if lines is None or lines[0] is not text:
            lines = self._lines[id(text)] = (text, text.split("\n"))
        rows = lines[1]
        return rows[line - 1] if 0 < line <= len(rows) else ""

    def _origin(self, line: int):
        if not self._origins_built:
            self._origins = _build_origins(self)
            self._origins_built = True
        if self._origins is None or line - 1 >= len(self._origins):
            return None
        return self._origins[line - 1]


def read_source(path: Path, display: str) -> Source:
    """The storyboard file's text; a missing or unreadable file is a UserError."""
    try:
        text = decode_text(path.read_bytes(), display)
    except FileNotFoundError:
        raise UserError.single(
            f"no storyboard at '{display}'",
            hint="give the path of a storyboard.yaml, or create one with `kling-compose init DIR`",
        ) from None
    except IsADirectoryError:
        raise UserError.single(f"'{display}' is a folder without storyboard.yaml") from None
    return Source(path, display, text)


def decode_text(data: bytes, display: str) -> str:
    """UTF-8 text, or a UserError pointing at the first byte that is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[:exc.start].decode("utf-8")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        raise UserError.single(f"not UTF-8 text ({exc.reason})",
                               Location(display, line, col)) from None


def render_source(source: Source, variables: Mapping[str, object] | None = None) -> Rendered:
    """Render the storyboard template; a file without Jinja syntax is returned as it is."""
    variables = dict(variables or {})
    root = source.path.parent
    if not any(tag in source.text for tag in _JINJA_SYNTAX):
        return Rendered(source, root, source.text, variables)
    env = _environment(root, source)
    try:
        with _bounded():
            text = env.get_template(source.path.name).render(variables)
    except jinja2.TemplateError as exc:
        raise UserError(_translate(exc, env, variables)) from None
    except (MemoryError, _OutOfTime) as exc:
        what = (f"took longer than {RENDER_SECONDS} s" if isinstance(exc, _OutOfTime)
                else f"needed more than {RENDER_MEMORY >> 20} MiB of memory")
        raise UserError(Diagnostic(
            f"template error: rendering {what}", _template_frame(exc, env.loader),
            hint="a loop, a repeated string or a huge number grows without bound here")) \
            from None
    except RecursionError as exc:
        raise UserError(Diagnostic(
            "template error: includes or macros nest too deeply (does a file include itself?)",
            _template_frame(exc, env.loader))) from None
    except (ArithmeticError, TypeError, ValueError, LookupError) as exc:
        where = _template_frame(exc, env.loader, strict=True)
        if where is None:
            raise  # not raised by template code: a bug
        raise UserError(Diagnostic(f"template error: {exc}", where)) from None
    if len(text) > MAX_OUTPUT_CHARS:
        raise UserError(Diagnostic(
            f"template error: the rendered storyboard has {len(text):,} characters, more than "
            f"the {MAX_OUTPUT_CHARS:,} allowed", Location(source.display),
            hint="a loop or a repeated string makes the storyboard grow without bound"))
    return Rendered(source, root, text, variables, templated=True)


# -- resource bounds (a storyboard is untrusted input) ---------------------------------------

RENDER_SECONDS = 10  # wall clock for one rendering
RENDER_MEMORY = 2 << 30  # bytes of address space rendering may add
MAX_OUTPUT_CHARS = 20_000_000
MAX_STRING_CHARS = 10_000_000  # one string built by an operator or a str method
MAX_INT_BITS = 100_000  # an integer result of * or ** (about 30,000 digits)


class _OutOfTime(Exception):
    pass


class _bounded:
    """Rendering under a wall-clock limit (SIGALRM, in the main thread) and an address-space
    limit (RLIMIT_AS, where the platform enforces it): a template that loops for ever or
    allocates gigabytes ends in a located error, not a hang or a MemoryError traceback."""

    def __enter__(self):
        import signal
        import threading

        self.timer = threading.current_thread() is threading.main_thread() and \
            hasattr(signal, "setitimer")
        if self.timer:
            def out_of_time(signum, frame):
                raise _OutOfTime()

            self.previous_handler = signal.signal(signal.SIGALRM, out_of_time)
            signal.setitimer(signal.ITIMER_REAL, RENDER_SECONDS)
        self.limits = None
        try:
            import resource

            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            used = _address_space()
            if used is not None:
                cap = used + RENDER_MEMORY
                if soft == resource.RLIM_INFINITY or soft > cap:
                    cap = cap if hard == resource.RLIM_INFINITY else min(cap, hard)
                    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
                    self.limits = (soft, hard)
        except (ImportError, ValueError, OSError):
            self.limits = None
        return self

    def __exit__(self, *exc) -> None:
        import signal

        if self.timer:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous_handler)
        if self.limits is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, self.limits)


def _address_space() -> int | None:
    """This process's virtual memory size in bytes (Linux), or None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


# -- the environment -------------------------------------------------------------------------


class _ProjectLoader(jinja2.BaseLoader):
    """Loads templates by path relative to the project folder, refusing anything outside it."""

    def __init__(self, root: Path, main: Source) -> None:
        self.root = root.resolve()
        self.main = main
        self.sources: dict[str, Source] = {}  # jinja filename -> Source

    def get_source(self, environment, template: str):
        if template == self.main.path.name:
            src = self.main
        else:
            src = self._load(template)
        self.sources[str(src.path)] = src
        return src.text, str(src.path), lambda: True

    def _load(self, template: str) -> Source:
        pieces = template.replace("\\", "/").split("/")
        if template.startswith("/") or os.path.isabs(template) or ".." in pieces:
            raise jinja2.exceptions.SecurityError(
                f"'{template}' is outside the project folder; includes must be relative paths "
                "inside it"
            )
        path = self.root.joinpath(*[p for p in pieces if p not in ("", ".")])
        if not path.resolve().is_relative_to(self.root):
            raise jinja2.exceptions.SecurityError(
                f"'{template}' leads outside the project folder (through a symlink)"
            )
        if path.exists() and not path.is_file():  # a folder, a named pipe (reading blocks)
            raise _NotText(f"included file '{template}' is not a regular file")
        if not path.is_file():
            raise jinja2.TemplateNotFound(template)
        display = os.path.join(os.path.dirname(self.main.display), *pieces)
        try:
            return Source(path, display, path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            raise _NotText(f"included file '{template}' is not UTF-8 text") from None


class _NotText(jinja2.TemplateError):
    pass


class _TooBig(jinja2.exceptions.SecurityError):
    """An operator or call whose result would exhaust memory or time."""


class _Sandbox(SandboxedEnvironment):
    """The sandbox, also refusing operator results and string-building calls big enough to
    exhaust memory or time: sequences by `*` and `+`, integers by `*` and `**`, strings by `%`
    formatting and by str methods that pad or replace."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    MAX_ITEMS = 1_000_000

    def call_binop(self, context, operator, left, right):
        refuse = _TooBig
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(count, int) and \
                        len(seq) * count > self.MAX_ITEMS:
                    raise refuse(
                        f"'*' would build {len(seq) * count:,} items (limit {self.MAX_ITEMS:,})")
            if _ints(left, right) and _bits(left) + _bits(right) > MAX_INT_BITS:
                raise refuse(f"'*' would build an integer of more than {MAX_INT_BITS:,} bits")
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 1000:
            raise refuse(f"'**' with exponent {right} is refused")
        if operator == "**" and _ints(left, right) and _bits(left) * max(right, 0) > MAX_INT_BITS:
            raise refuse(f"'**' would build an integer of more than {MAX_INT_BITS:,} bits")
        if operator == "+" and isinstance(left, (str, list, tuple)) and \
                isinstance(right, (str, list, tuple)) and len(left) + len(right) > MAX_STRING_CHARS:
            raise refuse(f"'+' would build {len(left) + len(right):,} items")
        if operator == "%" and isinstance(left, str):
            widths = [int(w) for w in re.findall(r"%[-#0 +]*(\d+)", left)]
            precisions = [int(p) for p in re.findall(r"%[-#0 +]*\d*\.(\d+)", left)]
            if any(n > MAX_STRING_CHARS for n in widths + precisions):
                raise refuse(f"'%' formatting with a width of {max(widths + precisions):,} "
                             "is refused")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (jinja's signature)
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str):
            size = _str_call_size(owner, name, args, kwargs)
            if size is not None and size > MAX_STRING_CHARS:
                raise _TooBig(
                    f"'{name}' would build a string of {size:,} characters "
                    f"(limit {MAX_STRING_CHARS:,})")
        return super().call(__context, __obj, *args, **kwargs)


def _ints(*values) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _bits(value: int) -> int:
    return abs(value).bit_length()


def _str_call_size(text: str, name: str, args, kwargs) -> int | None:
    """The length of the string a str method would build, where a caller controls it."""
    try:
        if name in ("ljust", "rjust", "center", "zfill") and args:
            return int(args[0])
        if name == "expandtabs":
            return len(text) * int(args[0] if args else kwargs.get("tabsize", 8))
        if name == "replace" and len(args) >= 2:
            old, new = str(args[0]), str(args[1])
            count = text.count(old) if old else len(text) + 1
            if len(args) > 2 and int(args[2]) >= 0:
                count = min(count, int(args[2]))
            return len(text) + count * max(0, len(new) - len(old))
        if name == "join" and args:
            parts = args[0] if isinstance(args[0], (list, tuple)) else None
            if parts is not None:
                return sum(len(str(p)) for p in parts) + len(text) * len(parts)
    except (TypeError, ValueError, OverflowError):
        return None
    return None


def _environment(root: Path, main: Source, *extensions) -> SandboxedEnvironment:
    return _Sandbox(
        loader=_ProjectLoader(root, main),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        extensions=extensions,
    )


# -- errors ----------------------------------------------------------------------------------


def _translate(exc: jinja2.TemplateError, env, variables) -> Diagnostic:
    """One located diagnostic for a Jinja error (syntax, undefined, sandbox, missing include)."""
    loader: _ProjectLoader = env.loader
    if isinstance(exc, jinja2.TemplateSyntaxError):
        src = loader.sources.get(exc.filename or "", loader.main)
        line = exc.lineno
        if "Unexpected end of template" in (exc.message or ""):
            line = _unclosed_block_line(env, src) or line
        col = _syntax_column(src, line)
        return Diagnostic(
            f"template syntax: {exc.message}", Location(src.display, line, col),
            hint=_syntax_hint(exc.message or ""),
        )
    where = _template_frame(exc, loader)
    if isinstance(exc, jinja2.UndefinedError):
        return _undefined(exc, where, variables)
    if isinstance(exc, jinja2.TemplateNotFound):
        return Diagnostic(
            f"included file '{exc.name}' not found", where,
            hint="include paths are relative to the storyboard's folder",
        )
    if isinstance(exc, _NotText):
        return Diagnostic(exc.message, where)
    if isinstance(exc, _TooBig):
        return Diagnostic(f"template error: {exc}", where, hint="templates are bounded: a "
                          "result this large would exhaust the machine's memory or time")
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return Diagnostic(f"sandbox: {exc}", where, hint="templates may only read files inside "
                          "the project folder and call safe methods")
    return Diagnostic(f"template error: {exc}", where)


def _undefined(exc: jinja2.UndefinedError, where, variables) -> Diagnostic:
    message = str(exc.message or exc)
    match = re.match(r"'([^']+)' is undefined", message)
    if not match:
        return Diagnostic(f"template: {message}", where)
    name = match.group(1)
    if name in variables:
        return Diagnostic(
            f"undefined template variable '{name}' (it is defined, but not in this imported "
            "file)", where, hint="an {% import %}ed file does not see the storyboard's variables:"
            " write {% import '...' as m with context %} or pass the value as an argument")
    hint = did_you_mean(name, variables) or (
        f"pass it with --var {name}=VALUE or --vars FILE.yaml, or define it with "
        f"{{% set {name} = ... %}}"
    )
    return Diagnostic(f"undefined template variable '{name}'", where, hint=hint)


_BLOCKS = {"for", "if", "macro", "call", "filter", "block", "with", "autoescape", "trans", "raw"}


def _unclosed_block_line(env, src: Source) -> int | None:
    """The line of the innermost block tag that is never closed."""
    stack: list = []
    try:
        tokens = list(env.lex(src.text))
    except jinja2.TemplateSyntaxError:
        return None
    tokens = [tok for tok in tokens if tok[1] != "whitespace"]
    for i, (lineno, kind, _) in enumerate(tokens):
        if kind != "block_begin" or i + 1 >= len(tokens):
            continue
        name = tokens[i + 1][2]
        if name in _BLOCKS:
            stack.append((name, lineno))
        elif isinstance(name, str) and name.startswith("end") and stack:
            stack.pop()
    return stack[-1][1] if stack else None


def _template_frame(exc: BaseException, loader: _ProjectLoader, strict: bool = False):
    """The innermost template line in the traceback (Jinja rewrites frames to template lines)."""
    found = None
    tb = exc.__traceback__
    while tb is not None:
        src = loader.sources.get(tb.tb_frame.f_code.co_filename)
        if src is not None:
            found = Location(src.display, tb.tb_lineno, _syntax_column(src, tb.tb_lineno))
        tb = tb.tb_next
    if strict:
        return found
    return found or Location(loader.main.display)


def _syntax_column(src: Source, line: int | None) -> int | None:
    """The column of the first Jinja tag on `line`, or 1."""
    if not line:
        return None
    text = _line_of(src.text, line)
    cols = [text.find(t) for t in _JINJA_SYNTAX if t in text]
    return min(cols) + 1 if cols else 1


def _syntax_hint(message: str) -> str | None:
    if "Unexpected end of template" in message:
        return "a block ({% for %}, {% if %}, ...) is not closed"
    if "unknown tag" in message.lower() or "Encountered unknown tag" in message:
        return "check the tag name and that every {% ... %} block is closed in the right order"
    return None


# -- the line map ----------------------------------------------------------------------------


class _LineMarks(Extension):
    """Puts a marker before every line of literal template text: (file, line) it came from."""

    def filter_stream(self, stream):
        table: list = self.environment.mark_table
        sources = self.environment.loader.sources
        src = sources.get(stream.filename or "")
        for token in stream:
            if token.type != "data" or src is None:
                yield token
                continue
            lines = token.value.split("\n")
            marked = []
            for offset, piece in enumerate(lines):
                table.append((src, token.lineno + offset))
                marked.append(f"{_MARK_OPEN}{len(table) - 1}{_MARK_CLOSE}{piece}")
            yield Token(token.lineno, "data", "\n".join(marked))


def _build_origins(rendered: Rendered) -> list | None:
    """Per rendered line, (Source, line) of the template text that produced it, or None if the
    marked rendering does not reproduce the clean one (a filter changed literal text)."""
    env = _environment(rendered.root, rendered.source, _LineMarks)
    env.mark_table = []
    try:
        marked = env.get_template(rendered.source.path.name).render(rendered.variables)
    except jinja2.TemplateError:
        return None
    if _MARK_RE.sub("", marked) != rendered.text:
        return None
    origins, current = [], None
    for line in marked.split("\n"):
        # the last of the marks before the line's first character: a mark for an empty
        # template line holding `{% include %}` is followed by the included file's own mark
        lead = re.match(f"(?:{_MARK_RE.pattern})+", line)
        first = _MARK_RE.search(line)
        if lead is not None:
            current = env.mark_table[int(_MARK_RE.findall(lead.group(0))[-1])]
        elif first is not None:
            current = env.mark_table[int(first.group(1))]
        origins.append(current)
    return origins


def _line_of(text: str, line: int) -> str:
    lines = text.split("\n")
    return lines[line - 1] if 0 < line <= len(lines) else ""


def _map_column(out: str, src: str, col: int) -> int:
    """Map a column of a rendered line to the template line it came from."""
    if out == src:
        return col
    prefix = len(os.path.commonprefix([out, src]))
    if col - 1 < prefix:
        return col
    tail = out[col - 1:]
    if tail and src.endswith(tail):
        return len(src) - len(tail) + 1
    expr = src.find("{{", prefix)
    return (expr if expr >= 0 else prefix) + 1
