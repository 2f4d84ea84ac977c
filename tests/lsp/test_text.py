"""lsp/text.py: where the cursor is, read from half-typed YAML and templates."""

from __future__ import annotations

import pytest

from kling_compose.lsp.text import (
    ITEM,
    context,
    includes,
    mapping_keys,
    reference_before,
    token_end,
    word_at,
)

DOC = """\
version: 1
defaults:
  provider: fal

elements:
  mara: { description: a woman }
scenes:
  - id: dawn
    shots:
      - id: opening
        prompt: "@mara walks"
        model: kl
        first_frame: { from: op }
        last_frame:
          from: op

      - id: second
        elements: [mara, ]
{% if hd %}
        size: 1920x1080
{% endif %}
        dialogue:
          - { speaker: ma }
outputs:
  - path: renders/x.mp4
    sequence:
      - ope
    transition: { crossfade: 0.5 }
"""
LINES = DOC.split("\n")
SHOT = ("scenes", ITEM, "shots", ITEM)


def _at(needle: str, nth: int = 0) -> tuple[int, int]:
    hits = [(i, line.index(needle) + len(needle)) for i, line in enumerate(LINES)
            if needle in line]
    return hits[nth]


@pytest.mark.parametrize("needle, path, key, prefix, in_list", [
    ("model: kl", SHOT, "model", "kl", False),
    ("{ from: op", (*SHOT, "first_frame"), "from", "op", False),
    ("  from: op", (*SHOT, "last_frame"), "from", "op", False),
    ("elements: [mara, ", SHOT, "elements", "", True),
    ("{ speaker: ma", (*SHOT, "dialogue", ITEM), "speaker", "ma", False),
    ("  - ope", ("outputs", ITEM), "sequence", "ope", True),
    ("{ crossfade", ("outputs", ITEM, "transition"), None, "crossfade", False),
    ("mara: { desc", ("elements", "mara"), None, "desc", False),
    ("  provider: f", ("defaults",), "provider", "f", False),
])
def test_the_context_at_the_cursor(needle, path, key, prefix, in_list):
    line, col = _at(needle)
    found = context(LINES, line, col)
    assert (found.path, found.key, found.prefix, found.in_list) == (path, key, prefix, in_list)
    assert found.rooted


def test_a_key_being_typed_in_a_shot_and_the_keys_it_already_has():
    line = 15  # the empty line after `last_frame: from: op`, where the editor indented
    lines = [*LINES[:line], " " * 8, *LINES[line + 1:]]
    found = context(lines, line, 8)
    assert (found.path, found.key, found.prefix) == (SHOT, None, "")
    assert set(mapping_keys(lines, line, 8)) == {"id", "prompt", "model", "first_frame",
                                                  "last_frame"}
    # a template tag between keys is skipped, the next shot is not this one
    size_line = _at("size: 1920")[0]
    assert set(mapping_keys(LINES, size_line, 8)) == {"id", "elements", "size", "dialogue"}


def test_a_new_list_item_of_mappings_is_a_key_position():
    lines = ["scenes:", "  - id: a", "    shots:", "      - "]
    found = context(lines, 3, 8)
    assert (found.path, found.key, found.dash) == (SHOT, None, 6)


def test_a_compact_list_and_a_fragment_without_its_root():
    lines = ["scenes:", "- id: a", "  shots:", "  - id: b", "    mo"]
    assert context(lines, 4, 6).path == SHOT
    fragment = ["  - id: harbour", "    shots:", "      - id: wide", "        mo"]
    assert not context(fragment, 3, 10).rooted


@pytest.mark.parametrize("line, col, token", [
    ('  prompt: "@mara walks" # x', 10, '"@mara walks"'),
    ("  prompt: 'it''s here' # x", 10, "'it''s here'"),
    ("  - id: opening", 4, "id"),
    ("  - id: opening", 8, "opening"),
    ("  x: { from: op, frame: last }", 13, "op"),
    ("  x: { from: op, frame: last }", 5, "{ from: op, frame: last }"),
    ("  promt: Wide shot # c", 2, "promt"),
    ("  prompt: Lanterns rise @ dawn", 24, "@"),
    ("  prompt: Lanterns rise @violnist at dawn", 24, "@violnist"),
    ("  duration: {{ seconds }}", 12, "{{ seconds }}"),
    ("  aspect: 16:9", 10, "16:9"),
    ("  sequence: [opening, secnd]", 22, "secnd"),
])
def test_the_extent_of_what_a_diagnostic_points_at(line, col, token):
    assert line[col:token_end(line, col)] == token


def test_words_references_and_includes():
    assert word_at('        prompt: "@mara walks"', 19) == ("@mara", 17, 22)
    assert word_at("        model: kling-3-pro", 20) == ("kling-3-pro", 15, 26)
    assert word_at("   ", 1) is None
    assert reference_before('prompt: "@ma') == ("ma", 9)
    assert reference_before('prompt: "@') == ("", 9)
    assert reference_before('prompt: "mail@@') is None
    assert reference_before("prompt: walks") is None
    assert includes('{% include "parts/a.yaml" %}\n  {%- import \'m.j2\' as m %}') == [
        (0, "parts/a.yaml", 12, 24), (1, "m.j2", 14, 18)]
