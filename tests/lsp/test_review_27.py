"""Review of issue 27 (the language server): hostile input over stdio must neither crash the
server nor answer a request with an error, and positions are in UTF-16 code units."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from .test_stdio import STORYBOARD, _diagnostics, _open

pytestmark = pytest.mark.asyncio


def _edit(client: LanguageClient, uri: str, version: int, line: int, start: int, end: int,
          new: str, end_line: int | None = None) -> None:
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(version=version, uri=uri),
        [types.TextDocumentContentChangePartial(
            types.Range(types.Position(line, start),
                        types.Position(line if end_line is None else end_line, end)), new)]))


async def _all_requests(client: LanguageClient, uri: str, line: int, char: int) -> None:
    doc = types.TextDocumentIdentifier(uri)
    at = types.Position(line, char)
    await client.text_document_hover_async(types.HoverParams(doc, at))
    await client.text_document_completion_async(types.CompletionParams(doc, at))
    await client.text_document_definition_async(types.DefinitionParams(doc, at))
    await client.text_document_references_async(types.ReferenceParams(
        text_document=doc, position=at, context=types.ReferenceContext(True)))
    await client.text_document_code_action_async(types.CodeActionParams(
        doc, types.Range(at, types.Position(line + 5, char + 5)),
        types.CodeActionContext(diagnostics=[])))


async def _alive(client: LanguageClient, tmp_path: Path) -> None:
    """The server still answers, and checks a storyboard."""
    other = tmp_path / "alive" / "storyboard.yaml"
    other.parent.mkdir(exist_ok=True)
    other.write_text(STORYBOARD, encoding="utf-8")
    uri = _open(client, other)
    await _diagnostics(client, uri, lambda d: len(d) == 1, timeout=60)


# -- requests at positions past the end -------------------------------------------------------


async def test_requests_past_the_end_of_the_document_are_answered_not_failed(client, tmp_path):
    # completion on a line past the last one raised IndexError in text.py (the server answered
    # the request with an internal error); hover, definition and references likewise read a
    # line that is not there
    path = tmp_path / "storyboard.yaml"
    path.write_text(STORYBOARD, encoding="utf-8")
    uri = _open(client, path)
    await _diagnostics(client, uri, lambda d: len(d) == 1)
    for line, char in ((19, 0), (25, 3), (10**6, 10**6), (16, 10**6)):
        await _all_requests(client, uri, line, char)  # raises on an error answer
    doc = types.TextDocumentIdentifier(uri)
    assert await client.text_document_completion_async(
        types.CompletionParams(doc, types.Position(40, 0))) is None
    await _alive(client, tmp_path)


# -- line ends: the client's, not Python's ----------------------------------------------------


async def test_an_edit_below_a_form_feed_in_a_template_comment_lands_on_its_line(client,
                                                                                 tmp_path):
    # pygls applies an edit to the lines str.splitlines() makes, which also breaks at form
    # feeds, U+2028, U+0085 and more; the client counts only \n, \r\n and \r (LSP). An edit
    # below such a character landed a line too high: the server checked another text than the
    # editor's (here the error stayed, and the prompt above was mangled)
    text = "{# page one\x0cpage two #}\n" + STORYBOARD
    path = tmp_path / "storyboard.yaml"
    path.write_text(text, encoding="utf-8")
    uri = _open(client, path)
    found = await _diagnostics(client, uri, lambda d: len(d) == 1)
    assert found[0].range.start == types.Position(17, 18)
    _edit(client, uri, 2, 17, 18, 20, "10")  # duration: 40 -> 10
    await _diagnostics(client, uri, lambda d: not d)
    hover = await client.text_document_hover_async(types.HoverParams(
        types.TextDocumentIdentifier(uri), types.Position(15, 15)))  # `- id: second`
    assert hover is not None and "The lamp turns" in hover.contents.value
    assert "duration: 10" in hover.contents.value


async def test_a_line_separator_in_a_quoted_value_does_not_move_the_diagnostics(client,
                                                                                tmp_path):
    text = STORYBOARD.replace("name: harbour", 'name: "harbour\u2028bay"')
    path = tmp_path / "storyboard.yaml"
    path.write_text(text, encoding="utf-8")
    uri = _open(client, path)
    found = await _diagnostics(client, uri, lambda d: len(d) == 1)
    assert found[0].range.start == types.Position(16, 18)


# -- nothing written into the project ---------------------------------------------------------


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


async def test_a_hover_with_a_cache_status_writes_nothing_into_the_project(client, tmp_path):
    import subprocess

    path = tmp_path / "storyboard.yaml"
    path.write_text(STORYBOARD.replace("duration: 40", "duration: 4"), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "kling_compose", "run", "--provider", "preview",
                    "--preview-resolution", "144"], cwd=tmp_path, check=True,
                   capture_output=True, env=os.environ | {"PYTHONPATH": str(
                       Path(__file__).resolve().parents[2])})
    before = _files(tmp_path)
    uri = _open(client, path)
    await _diagnostics(client, uri, lambda d: not d)
    hover = await client.text_document_hover_async(types.HoverParams(
        types.TextDocumentIdentifier(uri), types.Position(11, 15)))  # `- id: opening`
    assert hover is not None and "cache: " in hover.contents.value
    assert _files(tmp_path) == before


# -- held up: UTF-16 positions with astral characters before the cursor -----------------------


def _u16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


async def test_ranges_are_utf16_code_units_after_astral_characters(client, tmp_path):
    text = STORYBOARD.replace('"@keeper climbs the stairs"', '"😀😀 @keeper climbs 😀 @gul"')
    path = tmp_path / "storyboard.yaml"
    path.write_text(text, encoding="utf-8")
    uri = _open(client, path)
    found = await _diagnostics(client, uri, lambda d: len(d) > 0)
    line = text.split("\n")[12]
    assert any(d.range.start == types.Position(12, _u16(line[:line.index("@gul")]))
               for d in found)
    start = _u16(line[:line.index("@keeper")])
    doc = types.TextDocumentIdentifier(uri)
    hover = await client.text_document_hover_async(types.HoverParams(
        doc, types.Position(12, start + 3)))
    assert hover is not None
    assert hover.range == types.Range(types.Position(12, start), types.Position(12, start + 7))
    refs = await client.text_document_references_async(types.ReferenceParams(
        text_document=doc, position=types.Position(12, start + 3),
        context=types.ReferenceContext(include_declaration=True)))
    assert refs is not None and types.Position(12, start) in [r.range.start for r in refs]
    defs = await client.text_document_definition_async(types.DefinitionParams(
        doc, types.Position(12, start + 3)))
    assert defs and defs[0].range.start == types.Position(3, 2)


def test_the_search_for_an_included_files_storyboards_stops_after_its_time(tmp_path,
                                                                          monkeypatch):
    """Opening a template no open storyboard includes analyses the storyboards in its folder
    and up to five above (20 at most) to find its owners; each analysis may take seconds,
    and the editor waits: the search now stops after _SEARCH_SECONDS (it could take 200 s)."""
    import time

    from kling_compose.lsp import server as lsp_server

    for n in range(8):
        (tmp_path / f"board{n}.yaml").write_text("version: 1\nscenes: []\n", encoding="utf-8")
    template = tmp_path / "shots.j2"
    template.write_text("- id: a\n", encoding="utf-8")
    made = lsp_server.create_server(0.01)
    analysed = []

    def slow(path):
        analysed.append(path)
        time.sleep(0.2)
        return None

    monkeypatch.setattr(made, "analyse_now", slow)
    monkeypatch.setattr(lsp_server, "_SEARCH_SECONDS", 0.5)
    started = time.monotonic()
    assert made.find_owners(template) == set()
    assert time.monotonic() - started < 1.0
    assert 2 <= len(analysed) < 8
