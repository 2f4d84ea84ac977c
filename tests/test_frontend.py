"""The front end (render, parse, validate, resolve) on behaviour the error case folders do not
show: what a valid storyboard resolves to, and where positions in generated text point."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from textwrap import dedent

import pytest

from kling_compose.errors import Location, UserError
from kling_compose.parse import parse_document
from kling_compose.pipeline import load_resolved, render_text
from kling_compose.render import read_source, render_source

HEAD = "version: 1\nname: test-film\n"


def _tiny_png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (30, 60, 90)).save(out, "PNG")
    return out.getvalue()


TINY_PNG = _tiny_png()  # validate decodes local and data URI images: a whole one


def project(tmp_path: Path, text: str, files=None) -> Path:
    """Write storyboard.yaml (HEAD + the dedented body) and other files (as they are)."""
    for name, content in (files or {}).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    if text.startswith(HEAD):
        text = HEAD + dedent(text[len(HEAD):])
    path = tmp_path / "storyboard.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dedent(text))
    return path


def load(tmp_path: Path, text: str, variables=None, files=None):
    return load_resolved(project(tmp_path, text, files), variables or {}, "storyboard.yaml")


def errors(tmp_path: Path, text: str, variables=None, files=None) -> list[str]:
    with pytest.raises(UserError) as info:
        load(tmp_path, text, variables, files)
    return [str(d) for d in info.value.diagnostics]


# -- inheritance -------------------------------------------------------------------------------


def test_inheritance_defaults_then_scene_then_shot(tmp_path: Path) -> None:
    resolved = load(tmp_path, HEAD + """\
        defaults:
          duration: 5
          audio: true
          negative_prompt: text
        scenes:
          - id: one
            defaults: { duration: 8, audio: false }
            shots:
              - id: a
                prompt: A
                duration: 3
              - id: b
                prompt: B
          - id: two
            shots:
              - id: c
                prompt: C
        """)
    a, b, c = resolved.shots
    assert (a.duration, b.duration, c.duration) == (3, 8, 5)
    assert (a.audio, b.audio, c.audio) == (False, False, True)
    assert a.negative_prompt == b.negative_prompt == c.negative_prompt == "text"
    assert a.where("duration") == Location("storyboard.yaml", 13, 19)
    assert b.where("duration") == Location("storyboard.yaml", 9, 27)
    assert c.where("duration") == Location("storyboard.yaml", 4, 13)
    assert (a.scene, b.scene, c.scene) == ("one", "one", "two")
    assert [s.index for s in resolved.shots] == [0, 1, 2]
    assert (a.provider, a.model, a.takes, a.pick) == ("preview", "kling-3-pro", 1, 1)


def test_size_and_aspect_replace_each_other_across_levels(tmp_path: Path) -> None:
    resolved = load(tmp_path, HEAD + """\
        defaults:
          size: 1920x1080
        scenes:
          - id: one
            defaults: { aspect: "9:16" }
            shots:
              - id: a
                prompt: A
              - id: b
                prompt: B
                size: 1280x720
          - id: two
            shots:
              - id: c
                prompt: C
        """)
    a, b, c = resolved.shots
    assert (a.size, a.aspect) == (None, "9:16")
    assert (b.size, b.aspect) == ((1280, 720), None)
    assert (c.size, c.aspect) == ((1920, 1080), None)


def test_provider_options_merge_deeply(tmp_path: Path) -> None:
    resolved = load(tmp_path, HEAD + """\
        defaults:
          provider_options: { ttl: 60, extra: { a: 1, b: 1, deep: { x: 1 } }, tags: [p] }
        scenes:
          - id: one
            defaults:
              provider_options: { extra: { b: 2, deep: { y: 2 } } }
            shots:
              - id: a
                prompt: A
                provider_options: { extra: { c: 3 }, tags: [q], ttl: 30 }
              - id: b
                prompt: B
                provider_options: { extra: 7 }
        """)
    a, b = resolved.shots
    assert dict(a.provider_options) == {
        "ttl": 30, "extra": {"a": 1, "b": 2, "c": 3, "deep": {"x": 1, "y": 2}}, "tags": ["q"]}
    assert dict(b.provider_options) == {"ttl": 60, "extra": 7, "tags": ["p"]}


def test_provider_options_do_not_leak_between_shots(tmp_path: Path) -> None:
    resolved = load(tmp_path, HEAD + """\
        defaults:
          provider_options: { extra: { a: 1 } }
        scenes:
          - id: one
            shots:
              - { id: a, prompt: A, provider_options: { extra: { b: 2 } } }
              - { id: b, prompt: B }
        """)
    a, b = resolved.shots
    assert dict(b.provider_options) == {"extra": {"a": 1}}
    assert dict(a.provider_options) == {"extra": {"a": 1, "b": 2}}


# -- elements and prompts ----------------------------------------------------------------------

ELEMENTS = """\
elements:
  ann: { description: Ann }
  bob: { description: Bob }
  cat: { description: Cat }
  dan: { description: Dan }
"""


def test_elements_by_first_appearance_then_explicit_list(tmp_path: Path) -> None:
    resolved = load(tmp_path, HEAD + ELEMENTS + dedent("""\
        defaults:
          elements: [dan]
        scenes:
          - id: one
            shots:
              - id: a
                prompt: "@cat greets @ann, then @cat waves"
                elements: [bob, ann]
              - id: b
                prompt: "@bob alone"
              - id: c
                duration: 4
                multi_prompt:
                  - { prompt: "@bob starts", duration: 2 }
                  - { prompt: "@ann and @bob end", duration: 2 }
        """))
    names = {s.id: [e.name for e in s.elements] for s in resolved.shots}
    assert names == {"a": ["cat", "ann", "bob"], "b": ["bob", "dan"], "c": ["bob", "ann", "dan"]}


def test_double_at_is_a_literal_at(tmp_path: Path) -> None:
    resolved = load(tmp_path, HEAD + ELEMENTS + dedent("""\
        scenes:
          - id: one
            shots:
              - id: a
                prompt: "mail us@@example.com, @@ann is not @ann"
        """))
    (shot,) = resolved.shots
    assert [e.name for e in shot.elements] == ["ann"]
    assert [r.name for r in shot.prompt.refs] == ["ann"]
    assert shot.prompt.render(lambda name: f"<{name}>") == (
        "mail us@example.com, @ann is not <ann>")
    assert shot.prompt.text == "mail us@@example.com, @@ann is not @ann"
    assert shot.prompt.refs[0].location == Location("storyboard.yaml", 12, 53)


def test_prompt_with_only_double_at_needs_no_elements(tmp_path: Path) -> None:
    resolved = load(tmp_path, HEAD + """\
        scenes:
          - id: one
            shots:
              - { id: a, prompt: "@@home" }
        """)
    assert resolved.shots[0].elements == ()
    assert resolved.shots[0].prompt.render(str) == "@home"


# -- chains and outputs ------------------------------------------------------------------------


def test_previous_becomes_the_shot_before(tmp_path: Path) -> None:
    resolved = load(tmp_path, HEAD + """\
        scenes:
          - id: one
            shots:
              - { id: a, prompt: A }
              - { id: b, prompt: B, first_frame: { from: previous } }
          - id: two
            defaults:
              first_frame: { from: previous, frame: first }
            shots:
              - { id: c, prompt: C }
              - { id: d, prompt: D, last_frame: { from: a } }
        """)
    a, b, c, d = resolved.shots
    assert (b.first_frame.kind, b.first_frame.value, b.first_frame.frame) == ("chain", "a", "last")
    assert (c.first_frame.value, c.first_frame.frame) == ("b", "first")
    assert d.first_frame.value == "c"
    assert [s.value for s in d.chains] == ["c", "a"]
    assert a.chains == ()


def test_frame_source_kinds(tmp_path: Path) -> None:
    resolved = load(tmp_path, HEAD + """\
        scenes:
          - id: one
            shots:
              - id: a
                prompt: A
                first_frame: assets/start.png
                last_frame: https://example.com/end.png
                reference_images:
                  - "data:image/png;base64,%s"
                  - 6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9
        """ % base64.b64encode(TINY_PNG).decode(), files={"assets/start.png": TINY_PNG})
    (a,) = resolved.shots
    assert a.first_frame.kind == "path"
    assert a.first_frame.path == tmp_path / "assets" / "start.png"
    assert a.last_frame.kind == "url"
    assert [s.kind for s in a.reference_images] == ["data", "uuid"]


def test_default_output_is_every_shot(tmp_path: Path) -> None:
    resolved = load(tmp_path, """\
        version: 1
        name: "Lantern Regatta: Dawn!"
        scenes:
          - id: one
            shots: [{ id: a, prompt: A }, { id: b, prompt: B }]
          - id: two
            shots: [{ id: c, prompt: C }]
        """)
    (output,) = resolved.outputs
    assert output.path == "renders/lantern-regatta-dawn.mp4"
    assert output.sequence == ("a", "b", "c")
    assert output.crossfade_s == 0


def test_output_without_sequence_takes_every_shot(tmp_path: Path) -> None:
    resolved = load(tmp_path, HEAD + """\
        scenes:
          - id: one
            shots: [{ id: a, prompt: A, duration: 5 }, { id: b, prompt: B, duration: 5 }]
        outputs:
          - path: renders/all.mp4
            transition: { crossfade: 0.5 }
          - path: renders/b.mov
            sequence: [b]
        """)
    first, second = resolved.outputs
    assert (first.sequence, first.crossfade_s) == (("a", "b"), 0.5)
    assert (second.path, second.sequence) == ("renders/b.mov", ("b",))


def test_every_resolve_error_at_once(tmp_path: Path) -> None:
    found = errors(tmp_path, HEAD + """\
        scenes:
          - id: one
            shots:
              - { id: a, prompt: "@nobody", pick: 2 }
              - { id: a, prompt: B, first_frame: missing.png }
        outputs:
          - { path: renders/x.mp4, sequence: [zzz] }
        """)
    assert len(found) == 5


# -- YAML values -------------------------------------------------------------------------------


def test_yaml_scalars(tmp_path: Path) -> None:
    resolved = load(tmp_path, HEAD + """\
        scenes:
          - id: one
            shots:
              - id: a
                prompt: 2024-01-01
                negative_prompt: "on"
                audio: yes
                cfg_scale: 0.5
                provider_options: { on: 1, 2024-01-02: x, 3: y }
        """)
    (a,) = resolved.shots
    assert a.prompt.text == "2024-01-01"
    assert a.audio is True
    assert a.cfg_scale == 0.5
    assert dict(a.provider_options) == {"on": 1, "2024-01-02": "x", "3": "y"}


def test_extension_keys_anchors_and_merge_keys(tmp_path: Path) -> None:
    resolved = load(tmp_path, HEAD + """\
        x-common: &common
          duration: 6
          audio: false
        scenes:
          - id: one
            shots:
              - { <<: *common, id: a, prompt: A }
              - <<: *common
                id: b
                prompt: B
                duration: 4
        """)
    a, b = resolved.shots
    assert (a.duration, a.audio, b.duration) == (6, False, 4)


# -- render ------------------------------------------------------------------------------------


def test_file_without_jinja_is_passed_through(tmp_path: Path) -> None:
    text = HEAD + "scenes: []  # {not jinja} { {x} }\n"
    path = project(tmp_path, text)
    rendered = render_source(read_source(path, "storyboard.yaml"))
    assert rendered.text == text and not rendered.templated
    assert rendered.locate(3, 5) == Location("storyboard.yaml", 3, 5)


def test_variables_keep_their_yaml_types(tmp_path: Path) -> None:
    resolved = load(tmp_path, HEAD + """\
        scenes:
          - id: one
            shots:
        {% for i in range(count) %}
              - { id: shot-{{ i }}, prompt: "{{ look | default('plain') }}", duration: {{ d }} }
        {% endfor %}
        """, {"count": 2, "d": 5})
    assert [(s.id, s.duration, s.prompt.text) for s in resolved.shots] == [
        ("shot-0", 5, "plain"), ("shot-1", 5, "plain")]


def test_set_and_include_and_import(tmp_path: Path) -> None:
    resolved = load(tmp_path, HEAD + """\
        {% import "lib/macros.j2" as m %}
        {% set look = "warm" %}
        scenes:
          - id: one
            shots:
        {% include "lib/shots.yaml" %}
        {{ m.shot("b", "B " ~ look) }}
        """, files={"lib/shots.yaml": "      - { id: a, prompt: A }\n",
                 "lib/macros.j2": dedent("""\
        {% macro shot(id, text) %}
              - { id: {{ id }}, prompt: {{ text }} }
        {%- endmacro %}
        """)})
    assert [(s.id, s.prompt.text) for s in resolved.shots] == [("a", "A"), ("b", "B warm")]


def _located(tmp_path: Path, text: str, variables=None, files=None) -> list[str]:
    return errors(tmp_path, text, variables, files)


def test_locate_in_loop_points_at_the_template_line(tmp_path: Path) -> None:
    found = _located(tmp_path, HEAD + """\
        scenes:
          - id: one
            shots:
        {% for d in [5, 0, 7, -1] %}
              - id: shot-{{ loop.index }}
                prompt: Shot {{ loop.index }}
                duration: {{ d }}
        {% endfor %}
        """)
    assert found == [
        "storyboard.yaml:9:19: error: 'duration' must be at least 1, not -1",
        "storyboard.yaml:9:19: error: 'duration' must be at least 1, not 0",
    ]


def test_locate_after_a_multiline_if_and_a_loop(tmp_path: Path) -> None:
    found = _located(tmp_path, HEAD + """\
        {% set n = 3 %}
        defaults:
        {% if n > 2 %}
          duration: 5
        {% else %}
          duration: 8
        {% endif %}
        scenes:
          - id: one
            shots:
        {% for i in range(n) %}
              - { id: s{{ i }}, prompt: P }
        {% endfor %}
          - id: two
            shots:
              - id: last
                prompt: Q
                quality: 1
        """)
    assert found == ["storyboard.yaml:20:18: error: 'quality' must be at least 20, not 1"]


def test_locate_in_an_included_file(tmp_path: Path) -> None:
    found = _located(tmp_path, HEAD + """\
        scenes:
          - id: one
            shots:
        {% include "parts/shots.yaml" %}
              - id: tail
                prompt: Tail
                pick: 0
        """, files={"parts/shots.yaml": dedent("""\
              - id: a
                prompt: A

                takes: 0
        """).replace("\n", "\n      ").replace("- id", "      - id").rstrip(" ")})
    assert found == [
        "parts/shots.yaml:4:16: error: 'takes' must be at least 1, not 0",
        "storyboard.yaml:9:15: error: 'pick' must be at least 1, not 0",
    ]


def test_locate_in_an_included_file_shown_relative_to_the_storyboard(tmp_path: Path) -> None:
    project(tmp_path / "film", HEAD + """\
        scenes:
          - id: one
            shots:
        {% include "parts/shots.yaml" %}
        """, files={"parts/shots.yaml": "      - { id: z, prompt: Z }\n      - { id: a, prompt: A, takes: 0 }\n"})
    with pytest.raises(UserError) as info:
        load_resolved(tmp_path / "film" / "storyboard.yaml", {}, "film/storyboard.yaml")
    assert [str(d) for d in info.value.diagnostics] == [
        "film/parts/shots.yaml:2:36: error: 'takes' must be at least 1, not 0"]


def test_locate_in_a_macro(tmp_path: Path) -> None:
    found = _located(tmp_path, HEAD + """\
        {% from "macros.j2" import shot %}
        scenes:
          - id: one
            shots:
        {{ shot("a", 5) }}
        {{ shot("b", "5s") }}
        """, files={"macros.j2": dedent("""\
        {% macro shot(id, seconds) %}
              - id: {{ id }}
                prompt: Shot {{ id }}
                duration: {{ seconds }}
        {%- endmacro %}
        """)})
    assert found == [
        "macros.j2:4:19: error: 'duration' must be an integer, not string '5s'\n"
        "  hint: write the number without quotes or unit: 5"]


def test_locate_text_generated_by_an_expression(tmp_path: Path) -> None:
    found = _located(tmp_path, HEAD + """\
        scenes:
          - id: one
            shots:
              - id: a
                prompt: {{ "Text" }} of {{ "the shot" }} with @nobody
        """)
    assert found[0].startswith("storyboard.yaml:7:55: error: unknown element '@nobody'")


def test_filter_that_changes_text_points_at_the_render_output(tmp_path: Path) -> None:
    text = HEAD + """\
        scenes:
          - id: one
            shots:
        {% filter center(30) %}
              - id: a
        {% endfilter %}
                prompt: A
                duration: 0
        """
    found = _located(tmp_path, text)
    assert found == [
        "storyboard.yaml (line 10 of `kling-compose render`): error: "
        "'duration' must be at least 1, not 0"]
    rendered = render_text(tmp_path / "storyboard.yaml", {}, "storyboard.yaml")
    assert rendered.split("\n")[9] == "        duration: 0"


def test_filter_that_keeps_line_starts_still_maps(tmp_path: Path) -> None:
    found = _located(tmp_path, HEAD + """\
        scenes:
          - id: one
            shots:
        {% filter replace("X", "x") %}
              - id: a
                prompt: A
                duration: 0
        {% endfilter %}
        """)
    assert found == ["storyboard.yaml:9:19: error: 'duration' must be at least 1, not 0"]


def test_parse_positions_of_keys_and_values(tmp_path: Path) -> None:
    path = project(tmp_path, HEAD + "scenes:\n  - id: one\n    shots: [{ id: a, prompt: A }]\n")
    doc = parse_document(render_source(read_source(path, "storyboard.yaml")))
    assert doc.locate(("scenes", 0, "shots", 0, "prompt")) == Location("storyboard.yaml", 5, 30)
    assert doc.locate(("scenes", 0, "shots"), key=True) == Location("storyboard.yaml", 5, 5)
    assert doc.locate(("scenes", 0, "nope", 3)) == Location("storyboard.yaml", 4, 5)
