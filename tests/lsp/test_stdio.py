"""`kling-compose lsp` driven by a real LSP client over stdio (pytest-lsp): the server runs as
`python -m kling_compose lsp` in its own process, as an editor starts it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.asyncio

STORYBOARD = """\
version: 1
name: harbour
elements:
  keeper:
    description: An old lighthouse keeper in a yellow coat
    voice_id: v-keeper
  gull:
    description: A grey gull
scenes:
  - id: dawn
    shots:
      - id: opening
        prompt: "@keeper climbs the stairs"
        duration: 5
      - id: second
        prompt: The lamp turns
        duration: 40
        first_frame: { from: opening }
"""


def _open(client: LanguageClient, path: Path, text: str | None = None) -> str:
    uri = path.as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(types.TextDocumentItem(
        uri, "yaml", 1, path.read_text(encoding="utf-8") if text is None else text)))
    return uri


def _edit(client: LanguageClient, uri: str, version: int, line: int, start: int, end: int,
          new: str) -> None:
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(version=version, uri=uri),
        [types.TextDocumentContentChangePartial(
            types.Range(types.Position(line, start), types.Position(line, end)), new)]))


async def _diagnostics(client: LanguageClient, uri: str, check, timeout: float = 30.0):
    """The diagnostics published on `uri` once `check(diagnostics)` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = client.diagnostics.get(uri)
        if found is not None and check(found):
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no diagnostics on {uri} as expected; last: {found}")
        await asyncio.sleep(0.02)


async def test_a_mistake_is_published_at_its_line_and_cleared_once_fixed(client, tmp_path):
    path = tmp_path / "storyboard.yaml"
    path.write_text(STORYBOARD, encoding="utf-8")
    uri = _open(client, path)
    found = await _diagnostics(client, uri, lambda d: len(d) > 0)
    assert len(found) == 1
    problem = found[0]
    assert problem.severity == types.DiagnosticSeverity.Error
    assert problem.message.startswith("duration 40 s is out of range")
    assert "hint: set a duration from 3 to 15 seconds" in problem.message
    assert problem.range == types.Range(types.Position(16, 18), types.Position(16, 20))
    _edit(client, uri, 2, 16, 18, 20, "10")  # unsaved: the editor's text is what is checked
    await _diagnostics(client, uri, lambda d: not d)
    assert path.read_text(encoding="utf-8") == STORYBOARD
    assert not (tmp_path / ".kling-compose").exists()


async def test_completion_offers_elements_after_at_and_shots_in_from(client, tmp_path):
    path = tmp_path / "storyboard.yaml"
    text = STORYBOARD.replace("duration: 40", "duration: 4")
    path.write_text(text, encoding="utf-8")
    uri = _open(client, path)
    await _diagnostics(client, uri, lambda d: not d)
    _edit(client, uri, 2, 15, 16, 30, "@")  # prompt: The lamp turns -> prompt: @
    items = await client.text_document_completion_async(types.CompletionParams(
        types.TextDocumentIdentifier(uri), types.Position(15, 17)))
    assert items is not None
    assert {i.label for i in items.items} == {"keeper", "gull"}
    col = len("        first_frame: { from: ")
    _edit(client, uri, 3, 17, col, col + len("opening"), "")  # { from:  }
    items = await client.text_document_completion_async(types.CompletionParams(
        types.TextDocumentIdentifier(uri), types.Position(17, col)))
    assert items is not None
    assert [i.label for i in items.items] == ["previous", "opening", "second"]


async def test_hover_on_a_shot_shows_its_cost_prompt_and_fields(client, tmp_path):
    path = tmp_path / "storyboard.yaml"
    path.write_text(STORYBOARD.replace("duration: 40", "duration: 4")
                    .replace("version: 1\n", "version: 1\ndefaults:\n  provider: runware\n"
                             "  model: kling-o3-pro\n"), encoding="utf-8")
    uri = _open(client, path)
    await _diagnostics(client, uri, lambda d: not d)
    hover = await client.text_document_hover_async(types.HoverParams(
        types.TextDocumentIdentifier(uri), types.Position(14, 15)))  # `- id: opening`
    assert hover is not None
    value = hover.contents.value
    assert "**shot `opening`** · scene `dawn` · runware `kling-o3-pro`" in value
    assert "Estimated cost: $" in value
    assert "cache: new" in value
    assert "<<<element_1>>> climbs the stairs" in value  # as runware receives it
    assert "duration: 5" in value
    assert not (tmp_path / ".kling-compose").exists()


async def test_a_mistake_in_an_included_template_is_published_on_that_file(client, tmp_path):
    (tmp_path / "parts").mkdir()
    include = tmp_path / "parts" / "shots.yaml"
    include.write_text("      - id: second\n        prompt: The lamp turns\n"
                       "        duration: {{ seconds }}\n", encoding="utf-8")
    (tmp_path / "vars.yaml").write_text("seconds: 40\n", encoding="utf-8")
    (tmp_path / "kling-compose.yaml").write_text("vars: [vars.yaml]\n", encoding="utf-8")
    path = tmp_path / "storyboard.yaml"
    path.write_text(STORYBOARD.split("      - id: second")[0]
                    + '{% include "parts/shots.yaml" %}\n', encoding="utf-8")
    uri = _open(client, path)
    included = include.as_uri()
    found = await _diagnostics(client, included, lambda d: len(d) > 0)
    assert found[0].message.startswith("duration 40 s is out of range")
    assert found[0].range.start == types.Position(2, 18)
    assert not client.diagnostics.get(uri)
    # the include edited in the editor, unsaved: the storyboard is checked with that text
    include_uri = _open(client, include)
    assert include_uri == included
    _edit(client, included, 2, 2, 18, 31, "8")
    await _diagnostics(client, included, lambda d: not d)


async def test_a_quick_fix_writes_the_did_you_mean(client, tmp_path):
    path = tmp_path / "storyboard.yaml"
    text = STORYBOARD.replace("duration: 40", "duration: 4").replace(
        '"@keeper climbs', '"@keper climbs')
    path.write_text(text, encoding="utf-8")
    uri = _open(client, path)
    found = await _diagnostics(client, uri, lambda d: len(d) > 0)
    assert found[0].message.startswith("unknown element '@keper'")
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        types.TextDocumentIdentifier(uri), found[0].range,
        types.CodeActionContext(diagnostics=list(found))))
    assert actions is not None
    (action,) = actions
    assert action.title == "Replace '@keper' with '@keeper'"
    (edit,) = action.edit.changes[uri]
    assert edit.new_text == "@keeper"
    assert edit.range == found[0].range


async def test_definition_and_references_of_an_element(client, tmp_path):
    path = tmp_path / "storyboard.yaml"
    path.write_text(STORYBOARD.replace("duration: 40", "duration: 4"), encoding="utf-8")
    uri = _open(client, path)
    await _diagnostics(client, uri, lambda d: not d)
    at = types.Position(12, 18)  # `@keeper` in the first prompt
    found = await client.text_document_definition_async(types.DefinitionParams(
        types.TextDocumentIdentifier(uri), at))
    assert found == [types.Location(uri, types.Range(types.Position(3, 2),
                                                     types.Position(3, 8)))]
    refs = await client.text_document_references_async(types.ReferenceParams(
        text_document=types.TextDocumentIdentifier(uri), position=at,
        context=types.ReferenceContext(include_declaration=True)))
    assert [r.range.start for r in refs] == [types.Position(3, 2), types.Position(12, 17)]



async def test_an_included_template_opened_alone_finds_its_storyboard(client, tmp_path):
    (tmp_path / "parts").mkdir()
    include = tmp_path / "parts" / "shots.yaml"
    include.write_text("      - id: second\n        prompt: The lamp turns @ dusk\n",
                       encoding="utf-8")
    (tmp_path / "storyboard.yaml").write_text(
        STORYBOARD.split("      - id: second")[0] + '{% include "parts/shots.yaml" %}\n',
        encoding="utf-8")
    uri = _open(client, include)
    found = await _diagnostics(client, uri, lambda d: len(d) > 0)
    assert found[0].message.startswith("'@' must be followed by an element name")
    assert found[0].range == types.Range(types.Position(1, 31), types.Position(1, 32))
    items = await client.text_document_completion_async(types.CompletionParams(
        types.TextDocumentIdentifier(uri), types.Position(1, 32)))
    assert items is not None and {i.label for i in items.items} == {"keeper", "gull"}


async def test_other_yaml_files_are_left_alone(client, tmp_path):
    path = tmp_path / "compose.yaml"
    path.write_text("services:\n  web:\n    image: nginx\n    \n", encoding="utf-8")
    uri = _open(client, path)
    items = await client.text_document_completion_async(types.CompletionParams(
        types.TextDocumentIdentifier(uri), types.Position(3, 4)))
    hover = await client.text_document_hover_async(types.HoverParams(
        types.TextDocumentIdentifier(uri), types.Position(2, 12)))
    assert items is None and hover is None
    assert uri not in client.diagnostics


async def test_closing_the_last_file_of_a_storyboard_withdraws_its_diagnostics(client,
                                                                               tmp_path):
    (tmp_path / "parts").mkdir()
    include = tmp_path / "parts" / "shots.yaml"
    include.write_text("      - id: second\n        prompt: The lamp turns\n"
                       "        duration: 40\n", encoding="utf-8")
    path = tmp_path / "storyboard.yaml"
    path.write_text(STORYBOARD.split("      - id: second")[0]
                    + '{% include "parts/shots.yaml" %}\n', encoding="utf-8")
    uri, included = _open(client, path), _open(client, include)
    await _diagnostics(client, included, lambda d: len(d) == 1)
    client.text_document_did_close(types.DidCloseTextDocumentParams(
        types.TextDocumentIdentifier(uri)))
    await asyncio.sleep(0.3)  # the include is still open: the storyboard is still checked
    assert len(client.diagnostics[included]) == 1
    client.text_document_did_close(types.DidCloseTextDocumentParams(
        types.TextDocumentIdentifier(included)))
    await _diagnostics(client, included, lambda d: not d)
