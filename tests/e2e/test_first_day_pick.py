"""Issue 21, item 18 (f): `pick` on a CRLF storyboard that uses Jinja.

Jinja renders line endings as \\n, so every line of a CRLF template differed from its rendered
line by its \\r and `pick` refused a shot with no Jinja ("written with a Jinja expression")."""

from __future__ import annotations

from _e2e import cli

STORYBOARD = """\
version: 1
name: crlf
{% set seconds = 3 %}
defaults:
  duration: {{ seconds }}
scenes:
  - id: main
    shots:
      - id: s1
        takes: 2
        prompt: a quiet harbour
      - id: s2
        takes: 3
        pick: 1
        prompt: "{{ 'lantern' }} rises"
      - id: s3
        takes: 2
        pick: {{ 1 }}
        prompt: the sky
"""


def test_pick_edits_a_crlf_jinja_storyboard_and_keeps_its_line_endings(tmp_path):
    path = tmp_path / "storyboard.yaml"
    path.write_bytes(STORYBOARD.replace("\n", "\r\n").encode())
    added = cli("pick", "s1", "2", path)  # no pick: a `pick: 2` line is added
    assert added.exit_code == 0, added.output
    replaced = cli("pick", "s2", "3", path)  # a plain pick: its digits are replaced
    assert replaced.exit_code == 0, replaced.output
    data = path.read_bytes()
    assert data.count(b"\r\n") == data.count(b"\n") == STORYBOARD.count("\n") + 1
    text = data.decode().replace("\r\n", "\n")
    assert "      - id: s1\n        pick: 2\n        takes: 2\n" in text
    assert "        takes: 3\n        pick: 3\n" in text
    assert cli("validate", path).exit_code == 0


def test_a_pick_written_with_jinja_is_still_refused_located_in_a_crlf_file(tmp_path):
    path = tmp_path / "storyboard.yaml"
    original = STORYBOARD.replace("\n", "\r\n").encode()
    path.write_bytes(original)
    refused = cli("pick", "s3", "2", path)
    assert refused.exit_code == 1
    message = refused.output + (refused.stderr or "")
    assert "storyboard.yaml:18:" in message and "written with a Jinja expression" in message
    assert path.read_bytes() == original
