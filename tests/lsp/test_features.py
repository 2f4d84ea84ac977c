"""lsp/features.py: completion, hover, definition, references and quick fixes, on an
Analysis and the editor's lines (positions in code points: no client units here)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from lsprotocol import types

from kling_compose.lsp import features
from kling_compose.lsp.analysis import Analysis, analyse
from kling_compose.providers import PROVIDERS
from kling_compose.settings import PROVIDER_NAMES

STORYBOARD = """\
version: 1
name: harbour
defaults:
  provider: runware
  model: kling-o3-pro
elements:
  keeper: { description: An old keeper, voice_id: v1, frontal_image: assets/start.png }
  gull: { description: A grey gull }
scenes:
  - id: dawn
    shots:
      - id: opening
        prompt: "@keeper climbs the stairs"
        duration: 5
      - id: second
        provider: fal
        model: kling-3-pro
        prompt: The lamp turns
        first_frame: { from: opening }
        dialogue:
          - { speaker: narrator, line: "Again." }
outputs:
  - path: renders/film.mp4
    sequence: [opening, second]
"""


class Plain:
    """features.Files on the test's own texts, positions in code points."""

    def __init__(self, texts: dict[Path, str]) -> None:
        self.texts = texts

    def lines(self, path: Path) -> list[str]:
        return features.split_lines(self.texts.get(path) or path.read_text(encoding="utf-8"))

    def position(self, path: Path, line: int, col: int) -> types.Position:
        return types.Position(line, col)

    def uri(self, path: Path) -> str:
        return path.as_uri()


@pytest.fixture
def project(tmp_path) -> tuple[Path, Analysis, Plain]:
    from PIL import Image

    (tmp_path / "assets").mkdir()
    Image.new("RGB", (320, 180)).save(tmp_path / "assets" / "start.png")
    path = tmp_path / "storyboard.yaml"
    path.write_text(STORYBOARD, encoding="utf-8")
    found = analyse(path, STORYBOARD)
    assert found.problems == [], found.problems
    return path, found, Plain({path: STORYBOARD})


def _complete(text: str, needle: str, found: Analysis, path: Path) -> list[str]:
    lines = features.split_lines(text)
    line = next(i for i, row in enumerate(lines) if needle in row)
    col = lines[line].index(needle) + len(needle)
    items = features.complete(lines, line, col, found.names, path, Plain({path: text}))
    return [item.label for item in items]


def test_model_completion_lists_the_aliases_of_the_shots_provider(project):
    path, found, _ = project
    text = STORYBOARD.replace("        duration: 5\n", "        duration: 5\n        model: k\n")
    assert _complete(text, "        model: k", found, path) == list(PROVIDERS["runware"].models)
    assert "kling-3-std" in PROVIDERS["runware"].models  # the tiers are aliases too
    assert _complete(STORYBOARD, "        model: kling-3", found, path) == \
        list(PROVIDERS["fal"].models)  # its own `provider: fal`
    assert _complete(STORYBOARD, "  model: kling-o", found, path) == \
        list(PROVIDERS["runware"].models)  # the storyboard's defaults


def test_provider_speaker_and_element_list_completion(project):
    path, found, _ = project
    assert _complete(STORYBOARD, "        provider: f", found, path) == list(PROVIDER_NAMES)
    assert _complete(STORYBOARD, "{ speaker: n", found, path) == ["keeper", "narrator"]
    text = STORYBOARD.replace("        duration: 5\n", "        elements: [g]\n")
    assert _complete(text, "elements: [g", found, path) == ["keeper", "gull"]
    assert _complete(STORYBOARD, "sequence: [opening, s", found, path) == \
        ["opening", "second"]
    assert _complete(STORYBOARD, '"@k', found, path) == ["keeper", "gull"]
    assert _complete(STORYBOARD, '"@keeper climbs the', found, path) == []


def test_field_completion_offers_the_schemas_fields_not_yet_written(project):
    path, found, _ = project
    text = STORYBOARD.replace("        duration: 5\n", "        duration: 5\n        au\n")
    labels = _complete(text, "        au", found, path)
    assert "audio" in labels and "negative_prompt" in labels
    assert "prompt" not in labels and "duration" not in labels and "id" not in labels
    text = STORYBOARD.replace("{ from: opening }", "{ from: opening, fr }")
    assert _complete(text, "opening, fr", found, path) == ["from", "frame"]
    text = STORYBOARD.replace("  provider: runware\n", "  provider: runware\n  neg\n")
    labels = _complete(text, "  neg", found, path)
    assert "negative_prompt" in labels and "prompt" not in labels  # defaults have no prompt


def test_quick_fixes_write_what_the_hint_spells_out(tmp_path):
    text = STORYBOARD.replace("  model: kling-o3-pro\n", "  model: kling-o3-pro\n  aspect: 16:9\n")
    text = text.replace('prompt: "@keeper climbs the stairs"', "prompt: @keeper climbs")
    path = tmp_path / "storyboard.yaml"
    found = analyse(path, text)
    lines = features.split_lines(text)
    (problem,) = found.problems  # YAML stops at the first: the unquoted @
    fix = features.fixes(problem, lines)[0]
    assert (fix.old, fix.new) == ("@keeper climbs", '"@keeper climbs"')
    text = text.replace("prompt: @keeper climbs", 'prompt: "mail me@ home, @keper climbs"')
    text = text.replace("        duration: 5\n", "        duraton: 5\n")
    found = analyse(path, text)
    lines = features.split_lines(text)
    applied = {(f.old, f.new) for p in found.problems for f in features.fixes(p, lines)}
    assert applied == {("16:9", '"16:9"'), ("duraton", "duration")}
    text = text.replace("  aspect: 16:9", '  aspect: "16:9"').replace("duraton", "duration")
    found = analyse(path, text)
    lines = features.split_lines(text)
    applied = {(f.old, f.new) for p in found.problems for f in features.fixes(p, lines)}
    assert applied == {("@", "@@")}
    text = text.replace("me@ home", "me@@ home")
    found = analyse(path, text)
    lines = features.split_lines(text)
    (problem,) = [p for p in found.problems if "@keper" in p.message]
    (fix,) = features.fixes(problem, lines)
    assert (fix.title, fix.old, fix.new) == ("Replace '@keper' with '@keeper'", "@keper",
                                             "@keeper")
    assert features.still_applies(fix, lines)
    assert not features.still_applies(fix, [line.replace("@keper", "@kee") for line in lines])


def test_hover_on_a_model_alias_shows_its_price_and_limits(project):
    path, found, files = project
    lines = features.split_lines(STORYBOARD)
    hover = features.hover(lines, 4, 12, found, path, files)
    assert hover is not None
    value = hover.contents.value
    assert value.startswith("**kling-o3-pro** on runware (`klingai:kling-video@o3-pro`)")
    assert "Price: $0.112/s silent (3 s: $0.336)" in value
    assert "duration 3-15 s" in value and "sizes 1920x1080, 1440x1440, 1080x1920" in value


def test_hover_on_an_element_shows_its_description_and_image(project):
    path, found, files = project
    lines = features.split_lines(STORYBOARD)
    value = features.hover(lines, 12, 19, found, path, files).contents.value
    assert value.startswith("**@keeper**\n\nAn old keeper")
    assert f"[assets/start.png]({(path.parent / 'assets' / 'start.png').as_uri()})" in value


def test_references_and_definition_of_a_shot(project):
    path, found, files = project
    lines = features.split_lines(STORYBOARD)
    target = features.target_at(lines, 18, 31, found)  # `{ from: opening }`
    assert target == features.Target("shot", "opening")
    (where,) = features.definition(target, found, files)
    assert (where.range.start.line, where.range.start.character) == (11, 12)
    refs = features.references(target, found, files, declaration=True)
    assert [(r.range.start.line, r.range.start.character, r.range.end.character)
            for r in refs] == [(11, 12, 19), (18, 29, 36), (23, 15, 22)]


def test_definition_of_an_include_is_the_file(tmp_path):
    text = STORYBOARD.replace("scenes:\n", 'scenes:\n{% include "parts/more.yaml" %}\n')
    path = tmp_path / "storyboard.yaml"
    found = analyse(path, text)
    lines = features.split_lines(text)
    target = features.target_at(lines, 9, 15, found)
    assert target == features.Target("file", "parts/more.yaml")
    (where,) = features.definition(target, found, Plain({path: text}))
    assert where.uri == (tmp_path / "parts" / "more.yaml").as_uri()


def test_a_shots_cache_status_is_read_without_the_network_or_keys(project, monkeypatch):
    """After a rehearsal run the preview's shots are cached (the plan built as `plan` builds
    it: the project file's preview resolution); the hover reads the ledger and the lock
    read-only and asks no one (a socket connection would fail the test). SQLite's own
    files of a WAL ledger opened to read (state.db-shm, -wal) are all that may appear, as
    after `kling-compose plan` or `status`; the project's files are untouched."""
    from support.projects import cli

    path, _, files = project
    text = STORYBOARD.replace("  provider: runware\n  model: kling-o3-pro\n",
                              "  provider: preview\n").replace(
        "        provider: fal\n        model: kling-3-pro\n", "")
    path.write_text(text, encoding="utf-8")
    (path.parent / "kling-compose.yaml").write_text("preview_resolution: 144\n",
                                                    encoding="utf-8")  # small clips, quick
    result = cli("run", path)
    assert result.exit_code == 0, result.output
    before = {p: p.read_bytes() for p in path.parent.rglob("*") if p.is_file()}

    def refuse(*args, **kwargs):
        raise AssertionError("the language server asked the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)

    def no_keys(*args, **kwargs):
        raise AssertionError("the language server read the keys")

    import kling_compose.settings as settings

    monkeypatch.setattr(settings.Settings, "from_environment", no_keys)
    monkeypatch.setattr(settings, "_read_dotenv", no_keys)
    (path.parent / ".env").write_text("RUNWARE_API_KEY=rk-secret\n", encoding="utf-8")
    before[path.parent / ".env"] = (path.parent / ".env").read_bytes()
    found = analyse(path, text)
    lines = features.split_lines(text)
    line = lines.index("      - id: opening")
    value = features.hover(lines, line, 15, found, path, Plain({path: text})).contents.value
    assert "Estimated cost: $0.000 · cache: cached" in value
    after = {p: p.read_bytes() for p in path.parent.rglob("*") if p.is_file()}
    assert {p: after[p] for p in before} == before
    assert {p.name for p in set(after) - set(before)} <= {"state.db-shm", "state.db-wal"}


def test_previous_leads_to_the_shot_before(project):
    path, found, files = project
    text = STORYBOARD.replace("{ from: opening }", "{ from: previous }")
    found = analyse(path, text)
    lines = features.split_lines(text)
    line = next(i for i, row in enumerate(lines) if "from: previous" in row)
    target = features.target_at(lines, line, lines[line].index("previous") + 2, found)
    assert target == features.Target("shot", "opening")
    refs = features.references(target, found, Plain({path: text}), declaration=False)
    assert [(r.range.start.line, r.range.start.character) for r in refs] == \
        [(line, lines[line].index("previous")), (23, 15)]


def test_a_scene_id_is_no_shot_and_a_shot_that_does_not_compile_has_no_cost(project):
    path, found, files = project
    text = STORYBOARD.replace("  - id: dawn", "  - id: opening").replace(
        "        duration: 5", "        duration: 50")
    found = analyse(path, text)
    lines = features.split_lines(text)
    assert features.hover(lines, 9, 10, found, path, Plain({path: text})) is None
    value = features.hover(lines, 11, 15, found, path, Plain({path: text})).contents.value
    assert "Estimated cost and cache status: once the storyboard compiles " \
           "(duration 50 s is out of range" in value
    assert "duration: 50" in value
