"""The language server: documents in, diagnostics out, requests answered (pygls).

A storyboard (a YAML file with a top-level `scenes:`) is analysed when it is opened and, a
short pause after each edit (the debounce), on the text the editor holds; an edit to a file
it includes analyses it again with that file's unsaved text. Its problems are published on
the file that holds each one (an included template, the project file, a vars file), and a
file that had problems gets an empty list once they are fixed. An included file opened alone
finds the storyboard that includes it in its folder or above.

The analysis runs on the event loop's thread, between messages: rendering's bounds (10 s of
wall time by SIGALRM, which only the main thread receives) hold for a hostile template as on
the command line, and no two analyses ever run at once. Requests that arrive meanwhile are
answered after it, from its result.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument, Workspace

from . import features
from .analysis import Analysis, analyse
from .features import Fix, split_lines

DEBOUNCE_S = 0.03  # after the last edit (edits made while a check runs wait for it anyway)
_STORYBOARD = re.compile(r"(?m)^scenes[ \t]*:")
_SEARCH_UP = 6  # folders above an included file where its storyboard may be
_MAX_CANDIDATES = 20
_SEARCH_SECONDS = 3.0  # the most one search for an included file's storyboards may take
IDLE_S = 2.0  # after the last analysis: garbage is collected


_LINES = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


class _Document(TextDocument):
    """pygls' document, its lines broken where LSP breaks them: at \n, \r\n and \r only.
    pygls applies an edit to `lines` made by str.splitlines(), which also breaks at a form
    feed, U+0085, U+2028 and more: an edit below one of them (a form feed in a template
    comment) landed on another line than the editor's, and the text checked was not the
    editor's."""

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(_LINES.findall(self.source))


class _Workspace(Workspace):
    def _create_text_document(self, doc_uri: str, source: str | None = None,
                              version: int | None = None, language_id: str | None = None
                              ) -> TextDocument:
        return _Document(doc_uri, source=source, version=version, language_id=language_id,
                         sync_kind=self._sync_kind, position_codec=self._position_codec)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("kling-compose")
    except PackageNotFoundError:
        return "0"


def is_storyboard(path: Path, text: str) -> bool:
    """A YAML file with a top-level `scenes:` (or named storyboard.yaml: a template may
    write its scenes from an include), not the project file."""
    from ..project.defaults import PROJECT_FILE

    if path.name == PROJECT_FILE:
        return False
    return path.name in ("storyboard.yaml", "storyboard.yml") or bool(_STORYBOARD.search(text))


class StoryboardServer(LanguageServer):
    """The server's state: the last analysis of each storyboard, what it published, the
    edits waiting for their analysis."""

    def __init__(self, debounce_s: float = DEBOUNCE_S) -> None:
        super().__init__("kling-compose", version(),
                         text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.debounce_s = debounce_s
        self.analyses: dict[Path, Analysis] = {}
        self.storyboards: set[Path] = set()  # the storyboards kept up to date
        # storyboard -> uri -> the diagnostics it published there, each with its fixes
        self.published: dict[Path, dict[str, list[tuple[types.Diagnostic, list[Fix]]]]] = {}
        self.timers: dict[Path, asyncio.TimerHandle] = {}
        self.uris: dict[Path, str] = {}  # open documents, as the client names them
        self.searched: dict[Path, float] = {}  # candidate storyboards read: path -> mtime
        self.files = _Files(self)
        self.idle: asyncio.TimerHandle | None = None

    # -- documents ---------------------------------------------------------------------------

    def path_of(self, uri: str) -> Path | None:
        path = to_fs_path(uri)
        return Path(os.path.normpath(path)) if path else None

    def text_of(self, path: Path) -> str | None:
        uri = self.uris.get(path)
        if uri is not None:
            return self.workspace.get_text_document(uri).source
        return self.files.disk_text(path)

    def opened(self, uri: str) -> None:
        path = self.path_of(uri)
        if path is None:
            return
        self.uris[path] = uri
        text = self.workspace.get_text_document(uri).source
        if is_storyboard(path, text):
            self.storyboards.add(path)
            self.schedule(path, 0.0)
            return
        owners = self.owners(path)
        if not owners:
            owners = self.find_owners(path)
        for owner in owners:
            self.schedule(owner, 0.0)

    def changed(self, uri: str) -> None:
        path = self.path_of(uri)
        if path is None:
            return
        if path in self.storyboards:
            self.schedule(path, self.debounce_s)
            return
        text = self.workspace.get_text_document(uri).source
        if is_storyboard(path, text):  # it became one
            self.storyboards.add(path)
            self.schedule(path, self.debounce_s)
            return
        for owner in self.owners(path):
            self.schedule(owner, self.debounce_s)

    def saved(self, uri: str) -> None:
        path = self.path_of(uri)
        if path is None:
            return
        self.files.forget(path)
        for owner in self.owners(path) | ({path} & self.storyboards):
            self.schedule(owner, 0.0)

    def closed(self, uri: str) -> None:
        """A storyboard is kept up to date while it, or a file it reads, is open; then its
        diagnostics are withdrawn. Otherwise what read the closed file reads the disk's."""
        path = self.path_of(uri)
        if path is None:
            return
        self.uris.pop(path, None)
        self.files.forget(path)
        for board in self.owners(path) | ({path} & self.storyboards):
            if self.wanted(board):
                self.schedule(board, self.debounce_s)
            else:
                self.forget(board)

    def wanted(self, board: Path) -> bool:
        found = self.analyses.get(board)
        return board in self.uris or (found is not None and
                                      any(p in self.uris for p in found.depends_on))

    def forget(self, board: Path) -> None:
        self.storyboards.discard(board)
        self.analyses.pop(board, None)
        timer = self.timers.pop(board, None)
        if timer is not None:
            timer.cancel()
        self.publish(board, None)

    def everything_changed(self) -> None:
        self.files.forget_all()
        for path in list(self.storyboards):
            self.schedule(path, self.debounce_s)

    def owners(self, path: Path) -> set[Path]:
        """The storyboards whose last analysis read `path` (an include, a vars file, the
        project file)."""
        return {board for board, found in self.analyses.items()
                if board in self.storyboards and path in found.depends_on}

    def find_owners(self, path: Path) -> set[Path]:
        """Storyboards in `path`'s folder or above that include it (an included template
        opened before its storyboard); each is analysed once here to know."""
        found: set[Path] = set()
        candidates = 0
        deadline = time.monotonic() + _SEARCH_SECONDS  # each analysis may take seconds
        for folder in [path.parent, *path.parents][:_SEARCH_UP]:
            try:
                names = sorted(folder.glob("*.y*ml"))
            except OSError:
                continue
            for candidate in names:
                if candidate == path or candidate in self.storyboards:
                    continue
                candidates += 1
                if candidates > _MAX_CANDIDATES or time.monotonic() > deadline:
                    return found
                try:
                    mtime = candidate.stat().st_mtime
                except OSError:
                    continue
                if self.searched.get(candidate) == mtime:
                    continue
                self.searched[candidate] = mtime
                text = self.text_of(candidate)
                if text is None or not is_storyboard(candidate, text):
                    continue
                result = self.analyse_now(candidate)
                if result is not None and path in result.depends_on:
                    self.storyboards.add(candidate)
                    found.add(candidate)
                else:
                    self.analyses.pop(candidate, None)
        return found

    # -- analysis ----------------------------------------------------------------------------

    def schedule(self, path: Path, delay: float) -> None:
        """Analyse `path` after `delay` seconds, unless another edit comes first."""
        timer = self.timers.pop(path, None)
        if timer is not None:
            timer.cancel()
        loop = asyncio.get_event_loop()
        self.timers[path] = loop.call_later(delay, self.run, path)

    def run(self, path: Path) -> None:
        self.timers.pop(path, None)
        previous = self.analyses.get(path)
        found = self.analyse_now(path)
        if found is not None and path in self.storyboards:
            self.publish(path, found)
            self.window_log_message(types.LogMessageParams(
                types.MessageType.Log, f"checked {path.name} (version {found.version}) in "
                f"{found.seconds:.3f} s: {len(found.problems)} problem(s)"))
        del previous  # freed once its diagnostics' successors are out (10,000 shots: ~0.1 s)
        self.when_idle()

    def analyse_now(self, path: Path) -> Analysis | None:
        text = self.text_of(path)
        if text is None:
            return None
        uri = self.uris.get(path)
        version = self.workspace.get_text_document(uri).version if uri else None
        texts = {p: self.workspace.get_text_document(u).source for p, u in self.uris.items()
                 if p != path}
        previous = self.analyses.get(path)
        try:
            found = analyse(path, text, texts, version, previous)
        except Exception as exc:  # a bug in a stage: said in the log, the server goes on
            import traceback

            self.window_log_message(types.LogMessageParams(
                types.MessageType.Error, f"kling-compose: analysing {path} failed: {exc!r}\n"
                + traceback.format_exc()))
            return None
        if found.names is None and previous is not None:
            found.names = previous.names  # half-typed YAML: complete with what was known
        self.analyses[path] = found
        return found

    def when_idle(self) -> None:
        """Collect cyclic garbage once the editor has been idle for IDLE_S: the server runs
        with the collector paused (command.py), whose passes over a storyboard's large object
        graph would otherwise land between an edit and its diagnostics (its young generation
        holds every object an analysis made). An analysis replaced is freed by reference
        counting as soon as the next one is published."""
        if self.idle is not None:
            self.idle.cancel()
        self.idle = asyncio.get_event_loop().call_later(IDLE_S, self.collect)

    def collect(self) -> None:
        import gc

        self.idle = None
        gc.collect()

    def analysis_for(self, path: Path) -> Analysis | None:
        """The analysis a document's requests read: its own, or its storyboard's."""
        found = self.analyses.get(path)
        if found is not None:
            return found
        for owner in sorted(self.owners(path)):
            return self.analyses[owner]
        return None

    # -- publishing --------------------------------------------------------------------------

    def publish(self, storyboard: Path, found: Analysis | None) -> None:
        """Publish `found`'s problems on the files that hold them, and an empty list on each
        file that had some from this storyboard and has none now."""
        fresh: dict[str, list[tuple[types.Diagnostic, list[Fix]]]] = {}
        if found is not None:
            by_file: dict[Path, list] = {}
            for problem in found.problems:
                where = problem.place.path if problem.place is not None else storyboard
                by_file.setdefault(where, []).append(problem)
            for path, problems in by_file.items():
                lines = split_lines(found.text) if path == storyboard else \
                    self.files.lines(path)
                uri = self.files.uri(path)
                fresh[uri] = [(features.diagnostic(p, lines, self.files, path),
                               features.fixes(p, lines)) for p in problems]
        before = self.published.get(storyboard, {})
        if found is None:
            self.published.pop(storyboard, None)
        else:
            self.published[storyboard] = fresh
        own_uri = self.files.uri(storyboard)
        for uri in sorted(set(before) | set(fresh) | ({own_uri} if found else set())):
            diagnostics = [d for board in self.published.values()
                           for d, _ in board.get(uri, ())]
            version = found.version if found is not None and uri == own_uri else None
            self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
                uri, diagnostics, version=version))

    def fixes_at(self, uri: str, where: types.Range) -> list[tuple[types.Diagnostic, Fix]]:
        found = []
        for board in self.published.values():
            for diagnostic, fixes in board.get(uri, ()):
                if _overlaps(diagnostic.range, where):
                    found += [(diagnostic, fix) for fix in fixes]
        return found


def _overlaps(a: types.Range, b: types.Range) -> bool:
    def key(p: types.Position) -> tuple[int, int]:
        return (p.line, p.character)

    return key(a.start) <= key(b.end) and key(b.start) <= key(a.end)


class _Files:
    """features.Files for the server: the editor's text of an open document, else the
    file's on disk (read once per modification time), and positions in the client's units."""

    def __init__(self, server: StoryboardServer) -> None:
        self.server = server
        self.cache: dict[Path, tuple[tuple[float, int], str]] = {}
        self.split: dict[Path, tuple[str, list[str]]] = {}

    def disk_text(self, path: Path) -> str | None:
        from ..files import MAX_TEXT_BYTES, read_bytes
        from ..errors import UserError

        try:
            info = path.stat()
        except OSError:
            return None
        stamp = (info.st_mtime, info.st_size)
        cached = self.cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            text = read_bytes(path, limit=MAX_TEXT_BYTES).decode("utf-8", "replace")
        except UserError:
            return None
        self.cache[path] = (stamp, text)
        return text

    def forget(self, path: Path) -> None:
        self.cache.pop(path, None)
        self.split.pop(path, None)

    def forget_all(self) -> None:
        self.cache.clear()
        self.split.clear()

    def lines(self, path: Path) -> list[str]:
        text = self.server.text_of(path) or ""
        cached = self.split.get(path)
        if cached is not None and cached[0] is text:
            return cached[1]
        lines = split_lines(text)
        self.split[path] = (text, lines)
        return lines

    def position(self, path: Path, line: int, col: int) -> types.Position:
        lines = self.lines(path)
        if line >= len(lines):
            return types.Position(line, col)
        codec = self.server.workspace.position_codec
        return codec.position_to_client_units(lines, types.Position(line, col))

    def uri(self, path: Path) -> str:
        return self.server.uris.get(path) or path.as_uri()


def create_server(debounce_s: float = DEBOUNCE_S) -> StoryboardServer:
    """A server with every feature registered."""
    server = StoryboardServer(debounce_s)

    @server.feature(types.INITIALIZE)
    def initialize(ls: StoryboardServer, params: types.InitializeParams) -> None:
        # made by pygls just before this handler, empty: its documents break lines as LSP
        if type(ls.workspace) is Workspace:
            ls.workspace.__class__ = _Workspace
        options = params.initialization_options
        if isinstance(options, dict) and isinstance(options.get("debounceMs"), (int, float)):
            ls.debounce_s = max(0.0, float(options["debounceMs"]) / 1000)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: StoryboardServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.opened(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: StoryboardServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.changed(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: StoryboardServer, params: types.DidSaveTextDocumentParams) -> None:
        ls.saved(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: StoryboardServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.closed(params.text_document.uri)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def watched(ls: StoryboardServer, params: types.DidChangeWatchedFilesParams) -> None:
        ls.everything_changed()

    @server.feature(types.TEXT_DOCUMENT_COMPLETION,
                    types.CompletionOptions(trigger_characters=["@", ":", " ", "-"]))
    def completion(ls: StoryboardServer, params: types.CompletionParams
                   ) -> types.CompletionList | None:
        at = _at(ls, params.text_document.uri, params.position)
        if at is None:
            return None
        path, lines, line, col, found = at
        items = features.complete(lines, line, col, found.names, path, ls.files)
        return types.CompletionList(is_incomplete=False, items=items)

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: StoryboardServer, params: types.HoverParams) -> types.Hover | None:
        at = _at(ls, params.text_document.uri, params.position)
        if at is None:
            return None
        path, lines, line, col, found = at
        return features.hover(lines, line, col, found, path, ls.files)

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: StoryboardServer, params: types.DefinitionParams
                   ) -> list[types.Location] | None:
        at = _at(ls, params.text_document.uri, params.position)
        if at is None:
            return None
        _, lines, line, col, found = at
        target = features.target_at(lines, line, col, found)
        return None if target is None else features.definition(target, found, ls.files) or None

    @server.feature(types.TEXT_DOCUMENT_REFERENCES)
    def references(ls: StoryboardServer, params: types.ReferenceParams
                   ) -> list[types.Location] | None:
        at = _at(ls, params.text_document.uri, params.position)
        if at is None:
            return None
        _, lines, line, col, found = at
        target = features.target_at(lines, line, col, found)
        if target is None:
            return None
        return features.references(target, found, ls.files,
                                   params.context.include_declaration) or None

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(
        code_action_kinds=[types.CodeActionKind.QuickFix]))
    def code_action(ls: StoryboardServer, params: types.CodeActionParams
                    ) -> list[types.CodeAction] | None:
        uri = params.text_document.uri
        path = ls.path_of(uri)
        if path is None:
            return None
        lines = ls.files.lines(path)
        actions = []
        for diagnostic, fix in ls.fixes_at(uri, params.range):
            if features.still_applies(fix, lines):
                actions.append(features.code_action(fix, uri, ls.files, path, [diagnostic]))
        return actions or None

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: StoryboardServer, params: Any) -> None:
        for timer in ls.timers.values():
            timer.cancel()
        ls.timers.clear()

    return server


def _at(ls: StoryboardServer, uri: str, position: types.Position
        ) -> tuple[Path, list[str], int, int, Analysis] | None:
    """The document's path, its lines, the position in code points and the analysis its
    requests read; None for a YAML file that is no storyboard and no part of one."""
    path = ls.path_of(uri)
    if path is None:
        return None
    lines = ls.files.lines(path)
    if position.line >= len(lines):  # past the end (a client out of step): nothing there
        return None
    found = ls.analysis_for(path)
    if found is None:
        return None
    server_position = ls.workspace.position_codec.position_from_client_units(
        lines, types.Position(position.line, position.character))
    return path, lines, server_position.line, server_position.character, found
