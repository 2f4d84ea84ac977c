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

import functools
import itertools
import os
import re
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Collection, Iterator, Mapping, cast

import jinja2
from jinja2.compiler import CodeGenerator, operators as jinja_operators, optimizeconst
from jinja2.ext import Extension
from jinja2.lexer import Token
from jinja2.runtime import Macro, markup_join, str_join
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import Namespace
from markupsafe import Markup

from .errors import Diagnostic, Location, UserError, did_you_mean

_JINJA_SYNTAX = ("{{", "{%", "{#")
EMPTY_TEXTS: Mapping[Path, str] = MappingProxyType({})
_MARK_OPEN, _MARK_CLOSE = "\ue000", "\ue001"
_MARK_RE = re.compile(f"{_MARK_OPEN}(\\d+){_MARK_CLOSE}")
_LEAD_MARKS_RE = re.compile(f"(?:{_MARK_RE.pattern})+")  # the marks a line starts with


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


_SURROGATE = re.compile("[\ud800-\udfff]")


def surrogate_diagnostic(char: str, where: Location | None, what: str = "the rendered text",
                         hint: str | None = None) -> Diagnostic:
    """A lone surrogate (U+D800-U+DFFF) is no character: UTF-8 cannot carry it, and
    libyaml and every JSON request would fail on it. Python makes one from '\\ud800' in a
    template string, and from each byte of a command-line argument that is not UTF-8."""
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return Diagnostic(f"{what} holds the byte 0x{code - 0xDC00:02x}, which is not UTF-8 "
                          "text", where, hint=hint or "a --var value, or a file name given on "
                          "the command line, is in another encoding: give it as UTF-8")
    return Diagnostic(f"{what} holds a lone surrogate (U+{code:04X}), which is not a "
                      "character", where, hint=hint or "a '\\u" f"{code:04x}' escape in a "
                      "template string, or a --var value that is not UTF-8, makes one")


def variable_problem(name: str, value: str) -> Diagnostic | None:
    """Why `--var NAME=VALUE` cannot be used (its value is not UTF-8 text), or None."""
    lone = _SURROGATE.search(value)
    if lone is None:
        return None
    return surrogate_diagnostic(lone.group(), None, f"--var {name}",
                                hint="give the value as UTF-8 text")


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
        raise UserError(_recursion(exc, env.loader)) from None
    except (ArithmeticError, TypeError, ValueError, LookupError, RuntimeError,
            AssertionError, AttributeError) as exc:
        where = _template_frame(exc, env.loader, strict=True)
        if where is None:
            raise  # not raised by template code: a bug
        message = str(exc)
        if "integer string conversion" in message:  # Python's 4,300-digit limit
            message = "an integer of more than 4,300 digits cannot be printed"
        raise UserError(Diagnostic(f"template error: {message}", where,
                                   hint=_runtime_hint(exc))) from None
    lone = _SURROGATE.search(text)
    if lone is not None:
        rendered = Rendered(source, root, text, variables, templated=True)
        line = text.count("\n", 0, lone.start()) + 1
        col = lone.start() - (text.rfind("\n", 0, lone.start()) + 1) + 1
        raise UserError(surrogate_diagnostic(lone.group(), rendered.locate(line, col)))
    if len(text) > MAX_OUTPUT_CHARS:
        raise UserError(Diagnostic(
            f"template error: the rendered storyboard has {len(text):,} characters, more than "
            f"the {MAX_OUTPUT_CHARS:,} allowed", Location(source.display),
            hint="a loop or a repeated string makes the storyboard grow without bound"))
    return Rendered(source, root, text, variables, templated=True)


def _recursion(exc: RecursionError, loader) -> Diagnostic:
    """What nests too deeply: files or macros calling themselves (many template frames on
    the stack), a template expression (Jinja's parser), or a value nested level upon level
    (Python's own comparison, hash or str() of it, from one template line)."""
    frames, parser = 0, False
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        frames += filename in loader.sources
        parser = parser or filename.endswith(("jinja2/parser.py", "jinja2/compiler.py",
                                              "jinja2/lexer.py"))
        tb = tb.tb_next
    where = _template_frame(exc, loader)
    if parser and frames == 0:
        return Diagnostic("template syntax: an expression is nested too deeply to read",
                          _deepest_line(loader), hint="brackets or parentheses nest hundreds "
                          "of levels deep here; write the value with fewer levels")
    if frames > 20:
        return Diagnostic("template error: includes or macros nest too deeply (does a file "
                          "include itself?)", where)
    return Diagnostic("template error: a value is nested too deeply to compare or print "
                      "(lists or mappings inside each other, level upon level)", where,
                      hint=f"template data may nest at most {MAX_VALUE_DEPTH} levels deep")


def _deepest_line(loader) -> Location:
    """The line of the main template where brackets nest deepest."""
    src = loader.main
    best, best_line, depth = -1, 1, 0
    for number, line in enumerate(src.text.split("\n"), 1):
        for char in line:
            if char in "([{":
                depth += 1
                if depth > best:
                    best, best_line = depth, number
            elif char in ")]}":
                depth -= 1
    return Location(src.display, best_line, _syntax_column(src, best_line))


def _runtime_hint(exc: BaseException) -> str | None:
    if isinstance(exc, RuntimeError) and "changed size during iteration" in str(exc):
        return "a loop must not add to or remove from the mapping it walks through; " \
               "loop over a copy (`d|list`) or build a new mapping"
    return None


# -- resource bounds (a storyboard is untrusted input) ---------------------------------------

RENDER_SECONDS = 10  # wall clock for one rendering
RENDER_MEMORY = 2 << 30  # bytes of address space rendering may add
MAX_OUTPUT_CHARS = 20_000_000
MAX_STRING_CHARS = 10_000_000  # one string built by an operator, a filter or a str method
MAX_INT_BITS = 100_000  # an integer result of * or ** (about 30,000 digits)
MAX_VALUE_ITEMS = 2_000_000  # items one comparison, hash, filter or output may walk through
MAX_VALUE_DEPTH = 200  # levels of lists and mappings inside each other in such a value


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
        name = _shown(template)
        if template.startswith("/") or os.path.isabs(template) or ".." in pieces:
            raise jinja2.exceptions.SecurityError(
                f"'{name}' is outside the project folder; includes must be relative paths "
                "inside it"
            )
        if "\0" in template:
            raise _NotText(f"included file '{name}' has a NUL byte in its name")
        path = self.root.joinpath(*[p for p in pieces if p not in ("", ".")])
        editor = _EDITOR.get()
        data: bytes | None
        try:
            if not path.resolve().is_relative_to(self.root):
                raise jinja2.exceptions.SecurityError(
                    f"'{name}' leads outside the project folder (through a symlink)"
                )
            unsaved = None
            if editor is not None:
                editor.read.add(path.resolve())  # a missing one too: creating it matters
                unsaved = editor.text_of(path)
            if unsaved is not None:
                data = unsaved.encode("utf-8", "surrogatepass")
                if len(data) > MAX_INCLUDE_BYTES:
                    raise _NotText(f"included file '{name}' has more than the "
                                   f"{MAX_INCLUDE_BYTES:,} bytes allowed")
            else:
                if path.exists() and not path.is_file():  # a folder, a named pipe (reading blocks)
                    raise _NotText(f"included file '{name}' is not a regular file")
                data = _read_bounded(path) if path.is_file() else None
        except RuntimeError:  # pathlib's resolve() on a loop of symbolic links
            raise _NotText(f"included file '{name}' cannot be read: it leads through a loop "
                           "of symbolic links") from None
        except OSError as exc:
            raise _NotText(f"included file '{name}' cannot be read: {_os_problem(exc)}") \
                from None
        if data is None:
            raise jinja2.TemplateNotFound(name)
        display = os.path.join(os.path.dirname(self.main.display), *pieces)
        try:
            return Source(path, display, data.decode("utf-8"))
        except UnicodeDecodeError:
            raise _NotText(f"included file '{name}' is not UTF-8 text") from None


class EditorFiles:
    """Template files as an editor holds them, unsaved (`kling-compose lsp`): while a
    rendering runs under `editor_files(...)`, an include or import of one of these paths reads
    the editor's text instead of the file on disk (a file not saved yet included), after the
    same sandbox checks; `read` collects the absolute path of every file the templates
    included or imported (or tried to: a missing one), so the language server knows which
    storyboards an edit touches."""

    def __init__(self, texts: Mapping[Path, str]) -> None:
        self.texts = {Path(path).resolve(): text for path, text in texts.items()}
        self.read: set[Path] = set()

    def text_of(self, path: Path) -> str | None:
        return self.texts.get(path.resolve()) if self.texts else None


_EDITOR: ContextVar[EditorFiles | None] = ContextVar("kling_compose_editor_files",
                                                     default=None)


@contextmanager
def editor_files(texts: Mapping[Path, str] | EditorFiles = EMPTY_TEXTS) -> Iterator[EditorFiles]:
    """Render (and locate, which renders again) with `texts`, absolute path -> unsaved text,
    in place of those files on disk; yields the EditorFiles whose `read` fills as templates
    are included. Nothing changes for a rendering outside the block."""
    editor = texts if isinstance(texts, EditorFiles) else EditorFiles(texts)
    token = _EDITOR.set(editor)
    try:
        yield editor
    finally:
        _EDITOR.reset(token)


MAX_INCLUDE_BYTES = 16 << 20  # one included file (a storyboard is bounded the same)


def _read_bounded(path: Path) -> bytes:
    """An included file's bytes: a regular file (opened without blocking: a named pipe put
    there after the check does not hang), at most MAX_INCLUDE_BYTES."""
    import stat

    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _NotText(f"included file '{_shown(path.name)}' is not a regular file")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(MAX_INCLUDE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_INCLUDE_BYTES:
        raise _NotText(f"included file '{_shown(path.name)}' has more than the "
                       f"{MAX_INCLUDE_BYTES:,} bytes allowed")
    return data


def _shown(name: str) -> str:
    """A name as messages show it: one of hundreds of characters is cut in the middle."""
    return name if len(name) <= 100 else f"{name[:40]}...{name[-40:]} ({len(name):,} characters)"


def _os_problem(exc: OSError) -> str:
    import errno

    if exc.errno == errno.ENAMETOOLONG:
        return "the path is too long for the file system"
    if exc.errno == errno.ELOOP:
        return "it leads through a loop of symbolic links"
    return exc.strerror or str(exc)


class _NotText(jinja2.TemplateError):
    pass


class _TooBig(jinja2.exceptions.SecurityError):
    """An operator or call whose result would exhaust memory or time."""


class _Codegen(CodeGenerator):
    """Jinja's code generator, routing what Python would run in C without a bound through the
    sandbox: the operands of comparisons (`==`, `<`, `in` walk whole values), the parts of `~`
    (str() of a value) and the keys of mapping literals (a hash walks a whole tuple)."""

    @optimizeconst
    def visit_Compare(self, node, frame) -> None:
        self.write("(")
        self._checked(node.expr, frame, node.ops[0].op if node.ops else "==")
        for op in node.ops:
            self.write(f" {jinja_operators[op.op]} ")
            self._checked(op.expr, frame, op.op)
        self.write(")")

    def visit_Concat(self, node, frame) -> None:
        self.write("environment.checked_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("), context.eval_ctx)")

    def visit_Dict(self, node, frame) -> None:
        self.write("{")
        for idx, item in enumerate(node.items):
            if idx:
                self.write(", ")
            self._checked(item.key, frame, "a mapping key")
            self.write(": ")
            self.visit(item.value, frame)
        self.write("}")

    def _checked(self, expr, frame, what: str) -> None:
        self.write("environment.checked(")
        self.visit(expr, frame)
        name = _OPERATOR_NAMES.get(what)
        self.write(", " + repr(f"'{name}'" if name else what) + ")")


_OPERATOR_NAMES = {"eq": "==", "ne": "!=", "gt": ">", "gteq": ">=", "lt": "<", "lteq": "<=",
                   "in": "in", "notin": "not in"}


# -- values: how much an operation that walks a whole value would walk ------------------------

_SCALARS = frozenset({str, Markup, int, float, bool, type(None), range})
_STRINGS = frozenset({str, Markup})
_VIEWS: tuple[type, ...] = (type({}.keys()), type({}.values()), type({}.items()))


class _TooDeep(_TooBig):
    """A value nested deeper than MAX_VALUE_DEPTH (Python would hit its recursion limit)."""


class _HoldsItself(_TooBig):
    """A list or mapping inside itself (`l.append(l)`): comparing it never ends."""


def _container(value) -> bool:
    return isinstance(value, (list, tuple, dict, set, frozenset, Namespace, *_VIEWS))


def _items(value):
    if isinstance(value, Namespace):
        return iter((object.__getattribute__(value, "_Namespace__attrs"),))
    if isinstance(value, dict):
        return itertools.chain(value, value.values())
    return iter(value)


def _flat_weight(value) -> int | None:
    """The weight of a container holding only scalars, at C speed; None if it holds more."""
    parts: tuple[Collection[Any], ...]
    if isinstance(value, dict):
        parts = (value, value.values())
    elif isinstance(value, (list, tuple, set, frozenset)):
        parts = (value,)
    else:
        return None
    weight = 1
    for part in parts:
        types = set(map(type, part))
        if types <= _STRINGS:
            weight += len(part) + sum(map(len, part)) // 64
        elif types <= _SCALARS and not types & _STRINGS:
            weight += len(part)
        else:
            return None
    return weight


def check_value(value, what: str) -> None:
    """Refuse a value that `what` (an operator, a filter, the output) would walk through for
    longer than the render's limits allow, in C code that no deadline interrupts: more than
    MAX_VALUE_ITEMS items counted with every repeat (a list holding the same list twice, 80
    times over, is 2**80 items in 80 lists), nested deeper than MAX_VALUE_DEPTH, or holding
    itself. Strings weigh one item per 64 characters. Time linear in the distinct lists and
    mappings (each is measured once), in Python code, so the deadline holds here too."""
    if type(value) in _SCALARS or not _container(value):
        return
    weight = _flat_weight(value)
    if weight is not None:
        if weight > MAX_VALUE_ITEMS:
            raise _TooBig(f"{what} would go through more than {MAX_VALUE_ITEMS:,} items")
        return
    memo: dict = {}
    keep = [value]  # ids stay valid while the objects are alive
    path = {id(value)}
    stack = [[value, _items(value), 1]]
    total = 1
    while stack:
        frame = stack[-1]
        descended = False
        for child in frame[1]:
            kind = type(child)
            if kind in _STRINGS:
                weight = 1 + len(child) // 64
            elif kind in _SCALARS or not _container(child):
                weight = 1
            else:
                key = id(child)
                weight = memo.get(key)
                if weight is None:
                    if key in path:
                        raise _HoldsItself(f"{what}: a list or mapping that holds itself "
                                           "cannot be compared or printed")
                    weight = _flat_weight(child)
                    if weight is None:
                        if len(stack) >= MAX_VALUE_DEPTH:
                            raise _TooDeep(
                                f"{what}: a value nested more than {MAX_VALUE_DEPTH} levels "
                                "deep (lists or mappings inside each other)")
                        keep.append(child)
                        path.add(key)
                        stack.append([child, _items(child), 1])
                        descended = True
                        break
                    memo[key] = weight
                    keep.append(child)
            frame[2] += weight
            total += weight
            if total > MAX_VALUE_ITEMS:
                raise _TooBig(f"{what} would go through more than {MAX_VALUE_ITEMS:,} items "
                              "(counting each time a list or mapping is repeated)")
        if descended:
            continue
        stack.pop()
        path.discard(id(frame[0]))
        memo[id(frame[0])] = frame[2]
        if stack:
            stack[-1][2] += frame[2]


class _Sandbox(SandboxedEnvironment):
    """The sandbox, also refusing operator results and string-building calls big enough to
    exhaust memory or time: sequences by `*` and `+`, integers by `*` and `**`, strings by `%`
    formatting and by str methods that pad or replace."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _Codegen
    MAX_ITEMS = 1_000_000
    loader: _ProjectLoader  # always (`_environment`): Jinja's BaseLoader | None, narrowed
    mark_table: list[tuple[Source, int]]  # the line map's rendering only (`_LineMarks`)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, finalize=_finalize, **kwargs)
        self.filters = _checked_filters(self.filters)
        self.tests = _checked_tests(self.tests)
        self.globals["cycler"] = _cycler
        self.globals["lipsum"] = _lipsum(self.globals["lipsum"])

    def call_binop(self, context, operator, left, right):
        refuse = _TooBig
        if type(left) is int and type(right) is int and operator != "**":
            # two integers (a loop's arithmetic): only `*` can grow one past the bound; what
            # the checks below do for them, without the sequence and string cases
            if operator == "*" and _bits(left) + _bits(right) > MAX_INT_BITS:
                raise refuse(f"'*' would build an integer of more than {MAX_INT_BITS:,} bits")
            return super().call_binop(context, operator, left, right)
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
        if operator == "%" and type(right) not in _SCALARS:
            check_value(right, "'%'")
        if operator == "%" and isinstance(left, str):
            _check_percent(left, "'%'", right if isinstance(right, tuple) else (right,))
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (jinja's signature)
        if type(__obj) is Macro:  # no __wrapped__, __self__ nor __name__: nothing to check
            return super().call(__context, __obj, *args, **kwargs)
        # the sandbox wraps str.format (functools.update_wrapper): its string is the wrapped
        # method's __self__
        owner = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        name = getattr(__obj, "__name__", "")
        if not isinstance(__obj, Macro) and name not in _SHALLOW_METHODS:
            # a method of a list or mapping compares, hashes or prints its arguments (and
            # `sort`, `index`, `count`, `remove` the list itself) in C code; so do str methods
            if name in _WALKING_METHODS and isinstance(owner, (list, dict, tuple)):
                check_value(owner, f"'{name}'")
            for value in itertools.chain(args, kwargs.values()):
                if type(value) not in _SCALARS:
                    check_value(value, f"'{name}'" if name else "a call")
        if isinstance(owner, str):
            size = _str_call_size(owner, name, args, kwargs)
            if size is not None and size > MAX_STRING_CHARS:
                raise _TooBig(
                    f"'{name}' would build a string of {size:,} characters "
                    f"(limit {MAX_STRING_CHARS:,})")
        return super().call(__context, __obj, *args, **kwargs)

    def checked(self, value, what: str):
        """`value`, once it is known that `what` (a comparison, a hash) can walk it."""
        if type(value) not in _SCALARS:
            check_value(value, what)
        return value

    def checked_join(self, parts, eval_ctx):
        """The `~` operator: its parts as text, each checked before str() walks it (a
        string that doubles is left to the memory bound)."""
        for part in parts:
            if type(part) not in _SCALARS:
                check_value(part, "'~'")
        return (markup_join if eval_ctx.volatile or eval_ctx.autoescape else str_join)(parts)

    def getitem(self, obj, argument):
        if type(argument) not in _SCALARS:  # a key is hashed: a tuple walks all its items
            check_value(argument, "a subscript")
        return super().getitem(obj, argument)


def _finalize(value):
    """What `{{ ... }}` prints: checked before str() walks it."""
    if type(value) not in _SCALARS:
        check_value(value, "{{ ... }}")
    return value


# filters that never walk a whole value nor build text from it (the others are checked)
_SHALLOW_FILTERS = frozenset({
    "abs", "attr", "batch", "count", "d", "default", "first", "float", "int", "items", "last",
    "length", "list", "map", "random", "reject", "rejectattr", "reverse", "round", "select",
    "selectattr", "slice"})
# tests that compare their value with an argument (the others look at one value's type)
_WALKING_TESTS = frozenset({"==", "!=", "<", "<=", ">", ">=", "eq", "equalto", "ne", "lt",
                            "lessthan", "le", "gt", "greaterthan", "ge", "in"})
_SHALLOW_METHODS = frozenset({"append", "extend", "insert", "clear", "copy", "keys", "values",
                              "items", "reverse", "pop", "popitem"})
_WALKING_METHODS = frozenset({"sort", "index", "count", "remove", "__contains__"})


def _size_checks(name: str, args: tuple, kwargs: dict) -> None:
    """Refuse a filter call whose numeric arguments would build a huge result."""
    def arg(index: int, key: str, default=None):
        return args[index] if len(args) > index else kwargs.get(key, default)

    def refuse(size) -> None:
        if isinstance(size, int) and size > MAX_STRING_CHARS:
            raise _TooBig(f"'{name}' would build a string of {size:,} characters "
                          f"(limit {MAX_STRING_CHARS:,})")

    value = args[0] if args else None
    text = value if isinstance(value, str) else ""
    if name == "indent":
        width = arg(1, "width", 4)
        lines = text.count("\n") + 1
        if isinstance(width, str):
            refuse(len(text) + len(width) * lines)
        elif isinstance(width, int):
            refuse(len(text) + width * lines)
    elif name == "center":
        refuse(arg(1, "width", 80))
    elif name == "replace" and len(args) >= 3:
        refuse(_str_call_size(text, "replace", args[1:], kwargs))
    elif name == "format" and isinstance(value, str):
        _check_percent(value, "'format'", args[1:])
    elif name == "truncate":
        length, end = arg(1, "length", 255), arg(3, "end", "...")
        leeway = arg(4, "leeway")
        if isinstance(end, str) and isinstance(length, int) and length < len(end):
            raise jinja2.exceptions.FilterArgumentError(
                f"truncate: the length {length} is shorter than the end {end!r} that is added "
                f"({len(end)} characters)")
        if isinstance(leeway, int) and leeway < 0:
            raise jinja2.exceptions.FilterArgumentError(
                f"truncate: the leeway {leeway} is negative")
    elif name in ("batch", "slice"):
        count = arg(1, "linecount" if name == "batch" else "slices")
        if isinstance(count, int) and count > _Sandbox.MAX_ITEMS and (
                name == "slice" or arg(2, "fill_with") is not None):
            raise _TooBig(f"'{name}' with {count:,} would build more than "
                          f"{_Sandbox.MAX_ITEMS:,} items")
    elif name == "tojson":
        indent = arg(1, "indent")
        if isinstance(indent, (int, str)) and not isinstance(indent, bool):
            width = len(indent) if isinstance(indent, str) else indent
            if width > 1000:
                raise _TooBig(f"'tojson' with an indent of {width:,} is refused (at most 1,000)")
    elif name == "wordwrap":
        wrapstring = arg(3, "wrapstring")
        if isinstance(wrapstring, str):
            refuse(len(text) + len(text) * len(wrapstring))


def _checked_filter(name: str, func):
    """`func`, refusing arguments it would walk for too long and sizes it would build."""
    shallow = name in _SHALLOW_FILTERS

    @functools.wraps(func)
    def checked(*args, **kwargs):
        plain = args[1:] if getattr(func, "jinja_pass_arg", None) is not None else args
        _size_checks(name, plain, kwargs)
        if not shallow:
            for value in itertools.chain(plain, kwargs.values()):
                if type(value) not in _SCALARS:
                    check_value(value, f"'{name}'")
        return func(*args, **kwargs)

    return checked


def _join(eval_ctx, value, d="", attribute=None):
    """The `join` filter, knowing the size of what it builds before building it."""
    from jinja2.filters import do_join

    items = list(value) if not isinstance(value, str) else value
    if not isinstance(items, str):
        strings = [item for item in items if type(item) in _STRINGS]
        size = sum(map(len, strings)) + len(str(d)) * max(len(items) - 1, 0)
        if size > MAX_STRING_CHARS:
            raise _TooBig(f"'join' would build a string of {size:,} characters "
                          f"(limit {MAX_STRING_CHARS:,})")
    return do_join(eval_ctx, items, d, attribute)


def _sum(environment, iterable, attribute=None, start=0):
    """The `sum` filter: numbers at C speed, anything else one `+` at a time under the
    sandbox's bounds (C's sum() of lists copies without end and no deadline stops it)."""
    from jinja2.filters import make_attrgetter

    if attribute is not None:
        iterable = map(make_attrgetter(environment, attribute), iterable)
    items = list(iterable)
    if set(map(type, items)) <= {int, float, bool} and isinstance(start, (int, float)):
        if not all(type(i) is not int or _bits(i) <= MAX_INT_BITS for i in items):
            raise _TooBig(f"'sum' of integers of more than {MAX_INT_BITS:,} bits")
        return sum(items, start)
    total = start
    for item in items:
        total = environment.call_binop(None, "+", total, item)
    return total


def _checked_filters(filters: dict) -> dict:
    out = {name: _checked_filter(name, func) for name, func in filters.items()}
    out["join"] = _checked_filter("join", jinja2.pass_eval_context(_join))
    out["sum"] = _checked_filter("sum", jinja2.pass_environment(_sum))
    return out


def _checked_tests(tests: dict) -> dict:
    out = dict(tests)
    for name in _WALKING_TESTS & tests.keys():
        out[name] = _checked_filter(name, tests[name])
    return out


def _cycler(*items):
    if not items:
        raise jinja2.exceptions.TemplateRuntimeError("cycler() needs at least one item")
    return jinja2.utils.Cycler(*items)


def _lipsum(original):
    @functools.wraps(original)
    def lipsum(n=5, html=True, min=20, max=100):  # noqa: A002 (jinja's parameter names)
        if all(isinstance(v, int) for v in (n, max)) and n * max * 8 > MAX_STRING_CHARS:
            raise _TooBig(f"'lipsum' of {n:,} paragraphs of up to {max:,} words is refused")
        return original(n, html, min, max)

    return lipsum


def _check_percent(text: str, what: str, args=()) -> None:
    """Refuse %-formatting whose width or precision (written, or a `*` taken from the
    arguments) would build a string of more than MAX_STRING_CHARS characters."""
    widths = [int(w) for w in re.findall(r"%[-#0 +]*(\d+)", text)]
    precisions = [int(p) for p in re.findall(r"%[-#0 +]*\d*\.(\d+)", text)]
    if re.search(r"%[-#0 +]*(\*|\d*\.\*)", text):
        widths += [abs(a) for a in args if isinstance(a, int) and not isinstance(a, bool)]
    if any(n > MAX_STRING_CHARS for n in widths + precisions):
        raise _TooBig(f"{what} formatting with a width of {max(widths + precisions):,} "
                      "is refused")


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
        if name in ("format", "format_map"):
            import string

            specs = [spec for _, _, spec, _ in string.Formatter().parse(text) if spec]
            numbers = [int(n) for spec in specs for n in re.findall(r"\d+", spec)]
            if any("{" in spec for spec in specs):  # a width taken from the arguments
                values = list(itertools.chain(args, kwargs.values()))
                if name == "format_map" and args and isinstance(args[0], Mapping):
                    values += list(args[0].values())
                numbers += [abs(a) for a in values if isinstance(a, int)]
            return max(numbers, default=0) + len(text)
        if name == "join" and args:
            parts = args[0] if isinstance(args[0], (list, tuple)) else None
            if parts is not None:  # str() of the other parts is bounded by check_value
                return sum(len(p) for p in parts if type(p) in _STRINGS) + \
                    len(text) * len(parts)
    except (TypeError, ValueError, OverflowError):
        return None
    return None


def _environment(root: Path, main: Source, *extensions) -> _Sandbox:
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
        return Diagnostic(str(exc), where)  # its one argument, the message (never None)
    if isinstance(exc, _TooDeep):
        return Diagnostic(f"template error: {exc}", where, hint="template data may nest at "
                          f"most {MAX_VALUE_DEPTH} levels deep")
    if isinstance(exc, _HoldsItself):
        return Diagnostic(f"template error: {exc}", where, hint="a list or mapping was added "
                          "to itself (`l.append(l)`); add a copy (`l|list`) instead")
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
        env = cast(_Sandbox, self.environment)  # `_build_origins` makes it with this extension
        table = env.mark_table
        sources = env.loader.sources
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
        with _bounded():  # the same bounds as the first rendering
            marked = env.get_template(rendered.source.path.name).render(rendered.variables)
    except (jinja2.TemplateError, MemoryError, _OutOfTime, RecursionError, ArithmeticError,
            TypeError, ValueError, LookupError, RuntimeError, AssertionError, AttributeError):
        return None
    if _MARK_RE.sub("", marked) != rendered.text:
        return None
    origins, current = [], None
    table = env.mark_table
    for line in marked.split("\n"):
        if _MARK_OPEN in line:  # a line without a mark keeps the origin of the one before
            # the last of the marks before the line's first character: a mark for an empty
            # template line holding `{% include %}` is followed by the included file's own
            lead = _LEAD_MARKS_RE.match(line)
            if lead is not None:
                current = table[int(_MARK_RE.findall(lead.group(0))[-1])]
            else:
                first = _MARK_RE.search(line)
                if first is not None:
                    current = table[int(first.group(1))]
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
