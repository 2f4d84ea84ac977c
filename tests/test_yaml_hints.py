"""YAML mistakes that deserve teaching, beyond the case folders: `16:9` read as a number, a
value starting with '@', a tab anywhere, with libyaml and with the pure-Python loader (whose
messages differ); and "did you mean" hints that only name close matches."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kling_compose import parse
from kling_compose.errors import UserError, close_matches, did_you_mean
from kling_compose.pipeline import load_resolved
from kling_compose.render import Rendered, Source

HEAD = "version: 1\nname: test-film\n"
SHOT = "scenes:\n  - id: dawn\n    shots:\n      - id: opening\n"
# libyaml names no character ("found character that cannot start any token"); Python does
LOADERS = sorted({parse._BaseLoader, yaml.SafeLoader}, key=lambda c: c.__name__)


def errors(tmp_path: Path, text: str, variables=None) -> list[str]:
    path = tmp_path / "storyboard.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as info:
        load_resolved(path, variables or {}, "storyboard.yaml")
    return [str(d) for d in info.value.diagnostics]


def yaml_error(text: str, loader) -> str:
    """The diagnostic for `text` as parse.py words the error `loader` raises."""
    rendered = Rendered(Source(Path("storyboard.yaml"), "storyboard.yaml", text), Path("."), text)
    with pytest.raises(yaml.MarkedYAMLError) as info:
        yaml.load(text, Loader=loader)
    return str(parse._yaml_diagnostic(info.value, rendered))


# -- digits:digits read as a base-60 number ------------------------------------------------------


def test_unquoted_aspect_says_why_it_is_a_number(tmp_path):
    assert errors(tmp_path, HEAD + "defaults:\n  aspect: 16:9   # wide\n" + SHOT
                  + "        prompt: hi there\n") == [
        "storyboard.yaml:4:11: error: 'aspect' must be a string, not the number 969 "
        "(YAML reads unquoted 16:9 in base 60)\n  hint: quote it: aspect: \"16:9\""]


def test_unquoted_aspect_from_a_template_variable(tmp_path):
    text = HEAD + SHOT + "        prompt: hi there\n        aspect: {{ ratio }}\n"
    assert errors(tmp_path, text, {"ratio": "21:9"}) == [
        "storyboard.yaml:8:17: error: 'aspect' must be a string, not the number 1269 "
        "(YAML reads unquoted 21:9 in base 60)\n  hint: quote it: aspect: \"21:9\""]


def test_no_quote_hint_when_quoting_would_not_help(tmp_path):
    # an id may not contain ':', so `id: "1:30"` would only trade one error for another
    text = HEAD + "scenes:\n  - id: 1:30\n    shots:\n      - id: a\n        prompt: hi\n"
    assert errors(tmp_path, text) == [
        "storyboard.yaml:4:9: error: 'id' must be a string, not the number 90 "
        "(YAML reads unquoted 1:30 in base 60)"]


def test_a_plain_number_keeps_the_plain_message(tmp_path):
    assert errors(tmp_path, HEAD + SHOT + "        prompt: 1969\n") == [
        "storyboard.yaml:7:17: error: 'prompt' must be a string, not integer 1969"]


def test_a_quoted_aspect_is_fine(tmp_path):
    path = tmp_path / "storyboard.yaml"
    path.write_text(HEAD + "defaults:\n  aspect: \"16:9\"\n" + SHOT + "        prompt: hi\n")
    assert load_resolved(path, {}, "storyboard.yaml").shots[0].aspect == "16:9"


# -- a value starting with '@', '`' or '%' ------------------------------------------------------


@pytest.mark.parametrize("loader", LOADERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(("line", "col", "fixed"), [
    ("prompt: @keeper walks", 9, 'prompt: "@keeper walks"'),
    ("prompt: @keeper walks  # at dawn", 9, 'prompt: "@keeper walks"'),
    ('prompt: @keeper says "hi" \\ twice', 9, 'prompt: "@keeper says \\"hi\\" \\\\ twice"'),
    ("prompt: @keeper walks along the harbour wall at dawn, golden light", 9,
     'prompt: "@keeper walks along the harbour wall..."'),
    ("prompt: @keeper: walks", 9, 'prompt: "@keeper: walks"'),
    ("prompt: @kéeper walks", 9, 'prompt: "@kéeper walks"'),
    ("elements: [keeper, @pier]", 20, 'elements: [keeper, "@pier"]'),
    ("provider_options: {seed: @x, mode: pro}", 26, 'provider_options: {seed: "@x", mode: pro}'),
])
def test_at_start_is_explained_with_the_line_fixed(loader, line, col, fixed):
    text = HEAD + "defaults:\n  negative_prompt: ünïcode\n  " + line + "\n"
    assert yaml_error(text, loader) == (
        f"storyboard.yaml:5:{col + 2}: error: YAML: a value starting with '@' must be quoted "
        f"(YAML reserves '@')\n  hint: quote it: {fixed}")


@pytest.mark.parametrize("loader", LOADERS, ids=lambda c: c.__name__)
def test_a_list_item_starting_with_at(loader):
    text = HEAD + SHOT + "        elements:\n          - @keeper\n"
    assert yaml_error(text, loader) == (
        "storyboard.yaml:8:13: error: YAML: a value starting with '@' must be quoted "
        "(YAML reserves '@')\n  hint: quote it: - \"@keeper\"")


@pytest.mark.parametrize("loader", LOADERS, ids=lambda c: c.__name__)
def test_percent_start_is_explained(loader):
    assert yaml_error(HEAD + SHOT + "        prompt: %50 slower\n", loader) == (
        "storyboard.yaml:7:17: error: YAML: a value starting with '%' must be quoted "
        "('%' starts a YAML directive)\n  hint: quote it: prompt: \"%50 slower\"")


def test_at_start_after_a_byte_order_mark_and_crlf(tmp_path):
    text = "\ufeffversion: 1\r\nname: @film\r\n"
    assert errors(tmp_path, text) == [
        "storyboard.yaml:2:7: error: YAML: a value starting with '@' must be quoted "
        "(YAML reserves '@')\n  hint: quote it: name: \"@film\""]


def test_at_start_in_a_template_points_at_the_source(tmp_path):
    text = HEAD + "{% set who = 'keeper' %}\n" + SHOT + "        prompt: @{{ who }} walks\n"
    assert errors(tmp_path, text) == [
        "storyboard.yaml:8:17: error: YAML: a value starting with '@' must be quoted "
        "(YAML reserves '@')\n  hint: quote it: prompt: \"@keeper walks\""]


# -- tabs ------------------------------------------------------------------------------------


TAB = ("error: YAML: a tab character where YAML expects spaces\n"
       "  hint: YAML indentation must use spaces; replace the tab with spaces")


@pytest.mark.parametrize("loader", LOADERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(("text", "where"), [
    ("\tversion: 1\nname: x\n", "1:1"),
    ("version: 1\n\tname: x\n", "2:1"),
    (HEAD + "defaults:\n\taspect: '16:9'\n", "4:1"),
    (HEAD + "defaults:\n  duration: 5\n\t  aspect: '16:9'\n", "5:1"),
    (HEAD + "scenes:\n\t- id: dawn\n", "4:1"),
    (HEAD + "scenes:\n  -\tid: dawn\n", "4:4"),
    (HEAD + SHOT + "\tprompt: hi\n", "7:1"),
    (HEAD + SHOT + "        \tprompt: hi\n", "7:9"),
    (HEAD + SHOT + "        prompt: hi\n\t- id: next\n", "8:1"),
    (HEAD + SHOT + "        prompt: |\n\t  a river\n", "8:1"),
    (HEAD + SHOT + "        elements:\n\t- keeper\n", "8:1"),
])
def test_every_tab_indentation_gets_the_same_hint(loader, text, where):
    assert yaml_error(text, loader) == f"storyboard.yaml:{where}: {TAB}"


def test_a_tab_inside_a_value_or_before_a_comment_is_fine(tmp_path):
    path = tmp_path / "storyboard.yaml"
    path.write_text(HEAD + SHOT + "        prompt: a\triver\t# dawn\n")
    assert load_resolved(path, {}, "storyboard.yaml").shots[0].prompt.parts == ("a\triver",)


# -- did you mean ----------------------------------------------------------------------------


@pytest.mark.parametrize(("word", "choices", "expected"), [
    ("harbor.jpg", ["portrait.png"], []),
    ("harbor.jpg", ["harbour.jpg", "portrait.png"], ["harbour.jpg"]),
    ("harbor.jpg", ["anchor.jpg"], []),
    ("harbor.jpg", ["harbor.png"], ["harbor.png"]),
    ("assets/harbor.jpg", ["assets/portrait.png"], []),
    ("regata.jpg", ["regatta.jpg"], ["regatta.jpg"]),
    ("shot-3", ["shot-1", "shot-2"], []),
    ("shot-12", ["shot-1", "shot-5"], ["shot-1"]),
    ("dawn-wide", ["dusk-wide"], []),
    ("dawn-wid", ["dawn-wide", "dusk-wide"], ["dawn-wide"]),
    ("opening-2", ["opening"], ["opening"]),
    ("kling-o3-pro", ["kling-3-pro", "kling-3-std"], ["kling-3-pro"]),
    ("fram", ["from", "frame", "last"], ["frame", "from"]),
    ("violnist", ["violinist", "drummer"], ["violinist"]),
])
def test_close_matches_ignore_shared_folders_prefixes_and_extensions(word, choices, expected):
    assert close_matches(word, choices) == expected


def test_did_you_mean_shows_the_folder_it_left_out():
    assert did_you_mean("harbor.jpg", ["harbour.jpg", "portrait.png"], prefix="assets/") == (
        "did you mean 'assets/harbour.jpg'?")
    assert did_you_mean("harbor.jpg", ["portrait.png"], prefix="assets/") is None


def test_a_missing_file_is_compared_with_files_only(tmp_path):
    (tmp_path / "assets" / "harbour.jpg").mkdir(parents=True)  # a folder, not a file
    text = HEAD + SHOT + "        prompt: hi\n        first_frame: assets/harbor.jpg\n"
    assert errors(tmp_path, text) == [
        "storyboard.yaml:8:22: error: file 'assets/harbor.jpg' not found\n"
        "  hint: paths are relative to the storyboard's folder"]


def test_output_sequence_does_not_suggest_numbered_siblings(tmp_path):
    text = (HEAD + "scenes:\n  - id: dawn\n    shots:\n"
            + "".join(f"      - id: shot-{i}\n        prompt: hi\n" for i in (1, 2))
            + "outputs:\n  - path: renders/film.mp4\n    sequence: [shot-1, shot-3, shot-11]\n")
    assert errors(tmp_path, text) == [
        "storyboard.yaml:12:24: error: output 'renders/film.mp4' names unknown shot 'shot-3'",
        "storyboard.yaml:12:32: error: output 'renders/film.mp4' names unknown shot 'shot-11'\n"
        "  hint: did you mean 'shot-1'?"]
