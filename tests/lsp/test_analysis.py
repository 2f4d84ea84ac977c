"""lsp/analysis.py: validate's stages on an editor's text, each problem placed in its file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kling_compose.lsp.analysis import Problem, analyse
from kling_compose.pipeline import load_resolved, load_resolved_text
from kling_compose.render import editor_files

TESTS = Path(__file__).parents[1]
CASES = sorted(p for p in (TESTS / "cases" / "errors").iterdir()
               if p.is_dir() and not (p / "args.txt").exists())

STORYBOARD = """\
version: 1
name: harbour
elements:
  keeper: { description: a keeper, voice_id: v1 }
  gull: { description: a gull }
scenes:
  - id: dawn
    shots:
      - id: opening
        prompt: "@keeper waits, {{ mood }}"
      - id: second
        prompt: The gull lands
        first_frame: { from: opening }
"""


def _shown(problem: Problem, folder: Path) -> str:
    """A problem as `validate` prints it, run from `folder`."""
    place, head = problem.place, ""
    if place is not None:
        head = os.path.relpath(place.path, folder)
        if place.rendered_line is not None:
            head += f" (line {place.rendered_line} of `kling-compose render`)"
        elif place.line is not None:
            head += f":{place.line}" + (f":{place.col}" if place.col is not None else "")
        head += ": "
    text = f"{head}{problem.severity}: {problem.message}"
    return text + (f"\n  hint: {problem.hint}" if problem.hint else "")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_error_case_is_found_on_the_editors_text_where_validate_puts_it(case):
    """The error cases of tests/cases/errors (those without command-line arguments): the
    text given as the editor's, the same problems at the same file, line and column."""
    path = (case / "storyboard.yaml").absolute()
    text = path.read_bytes().decode("utf-8", "surrogateescape")
    found = analyse(path, text)
    shown = "".join(_shown(p, case.absolute()) + "\n" for p in
                    sorted(found.problems, key=lambda p: p.diagnostic.sort_key()))
    assert shown == (case / "errors.txt").read_text(encoding="utf-8")


def test_the_project_files_vars_are_read_as_on_the_command_line(tmp_path):
    path = tmp_path / "storyboard.yaml"
    found = analyse(path, STORYBOARD)
    assert [p.message for p in found.problems] == ["undefined template variable 'mood'"]
    (tmp_path / "vars.yaml").write_text("mood: stormy\n", encoding="utf-8")
    (tmp_path / "kling-compose.yaml").write_text("vars: [vars.yaml]\n", encoding="utf-8")
    found = analyse(path, STORYBOARD)
    assert found.problems == [] and found.stage == "done"
    assert found.resolved is not None
    assert found.resolved.shots[0].prompt.parts[-1] == " waits, stormy"
    assert {tmp_path / "vars.yaml", tmp_path / "kling-compose.yaml"} <= found.depends_on


def test_a_project_file_mistake_is_placed_in_the_project_file(tmp_path):
    (tmp_path / "kling-compose.yaml").write_text("provder: fal\n", encoding="utf-8")
    found = analyse(tmp_path / "storyboard.yaml", STORYBOARD)
    (problem,) = found.problems
    assert problem.message == "unknown setting 'provder' in the project file"
    assert problem.place is not None
    assert (problem.place.path, problem.place.line, problem.place.col) == \
        (tmp_path / "kling-compose.yaml", 1, 1)


def test_an_unsaved_include_is_read_as_the_editor_holds_it(tmp_path):
    (tmp_path / "shots.yaml").write_text("      - id: later\n        prompt: Dusk\n",
                                         encoding="utf-8")
    text = STORYBOARD.replace("{{ mood }}", "calm") + '{% include "shots.yaml" %}\n'
    path = tmp_path / "storyboard.yaml"
    assert analyse(path, text).problems == []
    unsaved = {tmp_path / "shots.yaml": "      - id: later\n        prompt: Dusk\n"
                                        "        duration: 99\n"}
    found = analyse(path, text, unsaved)
    (problem,) = found.problems
    assert problem.message.startswith("duration 99 s is out of range")
    assert problem.place is not None
    assert (problem.place.path, problem.place.line, problem.place.col) == \
        (tmp_path / "shots.yaml", 3, 19)
    assert tmp_path / "shots.yaml" in found.includes
    # placed later (as a hover or a reference does), the same unsaved text is rendered again
    assert found.place(found.problems[0].diagnostic.location) == problem.place


def test_a_missing_include_is_a_dependency_so_creating_it_checks_again(tmp_path):
    text = STORYBOARD.replace("{{ mood }}", "calm") + '{% include "more.yaml" %}\n'
    found = analyse(tmp_path / "storyboard.yaml", text)
    assert [p.message for p in found.problems] == ["included file 'more.yaml' not found"]
    assert tmp_path / "more.yaml" in found.depends_on
    found = analyse(tmp_path / "storyboard.yaml", text,
                    {tmp_path / "more.yaml": "      - id: later\n        prompt: Dusk\n"})
    assert found.problems == []


def test_names_come_from_the_furthest_stage_reached(tmp_path):
    text = STORYBOARD.replace("{{ mood }}", "calm")
    missing = text.replace("first_frame: { from: opening }", "first_frame: assets/none.png")
    found = analyse(tmp_path / "storyboard.yaml", missing)  # resolve fails: a missing file
    assert found.stage == "resolve" and found.resolved is None
    assert found.names is not None
    assert dict(found.names.elements) == {"keeper": True, "gull": False}
    assert found.names.shots == ("opening", "second")
    broken_schema = text.replace("prompt: The gull lands", "promt: The gull lands")
    found = analyse(tmp_path / "storyboard.yaml", broken_schema)
    assert found.stage == "validate"
    assert found.names is not None and found.names.shots == ("opening", "second")
    half_typed = text + "        first_frame: { from: \n"
    assert analyse(tmp_path / "storyboard.yaml", half_typed).names is None


def test_warnings_are_published_once(tmp_path):
    text = STORYBOARD.replace("{{ mood }}", "calm").replace(
        "version: 1\n", "version: 1\ndefaults:\n  provider: runware\n  model: kling-o3-pro\n"
                        "  negative_prompt: text\n")
    found = analyse(tmp_path / "storyboard.yaml", text)
    assert [(p.severity, p.message) for p in found.problems] == [
        ("warning", "negative_prompt is not sent: runware model 'kling-o3-pro' has no such "
                    "setting")]


def test_load_resolved_text_is_load_resolved_on_the_editors_text(tmp_path):
    path = tmp_path / "storyboard.yaml"
    text = STORYBOARD.replace("{{ mood }}", "calm")
    path.write_text(text, encoding="utf-8")
    from_disk = load_resolved(path, {}, "storyboard.yaml")
    from_text = load_resolved_text(text, path, {}, "storyboard.yaml")
    assert [s.id for s in from_text.shots] == [s.id for s in from_disk.shots]
    assert from_text.storyboard.path == from_disk.storyboard.path
    assert load_resolved_text(text.replace("second", "third"), path).shots[1].id == "third"


def test_editor_files_stay_inside_the_project_folder(tmp_path):
    """An unsaved text stands for a file only where the file itself could be included."""
    outside = tmp_path / "secret.yaml"
    project = tmp_path / "film"
    project.mkdir()
    text = STORYBOARD.replace("{{ mood }}", "calm") + '{% include "../secret.yaml" %}\n'
    found = analyse(project / "storyboard.yaml", text, {outside: "x"})
    assert [p.message.split(";")[0] for p in found.problems] == \
        ["sandbox: '../secret.yaml' is outside the project folder"]
    with editor_files({outside: "x"}) as editor:
        assert editor.text_of(outside) == "x"


def _chain(shots: int, prompt: str = "the harbour at dawn") -> str:
    lines = ["version: 1", "name: chain", "defaults:", "  provider: runware",
             "  model: kling-o3-pro", "elements:", "  keeper:", "    description: a keeper",
             "    frontal_image: assets/start.png", "scenes:", "  - id: main", "    shots:"]
    for i in range(shots):
        lines += [f"      - id: s{i}", f'        prompt: "@keeper walks, {prompt} {i}"',
                  "        first_frame: " + ("assets/start.png" if i == 0
                                             else "{ from: previous }")]
    return "\n".join(lines) + "\n"


def test_an_edit_compiles_again_only_the_shots_it_changed(tmp_path, monkeypatch):
    from PIL import Image

    import kling_compose.compiler as compiler

    (tmp_path / "assets").mkdir()
    Image.new("RGB", (1280, 720)).save(tmp_path / "assets" / "start.png")
    path = tmp_path / "storyboard.yaml"
    first = analyse(path, _chain(6))
    compiled = []
    real = compiler.compile_shot
    monkeypatch.setattr(compiler, "compile_shot",
                        lambda shot, *args: compiled.append(shot.id) or real(shot, *args))
    text = _chain(6).replace("dawn 3", "dusk 3")
    second = analyse(path, text, previous=first)
    assert compiled == ["s3"]
    fresh = analyse(path, text)  # nothing to reuse: the same jobs
    assert second.jobs is not None and fresh.jobs is not None
    assert [(j.shot.id, j.request, j.cost_usd) for j in second.jobs] == \
        [(j.shot.id, j.request, j.cost_usd) for j in fresh.jobs]
    assert all(j.shot is s for j, s in zip(second.jobs, second.resolved.shots))
    # a half-typed edit (no YAML) keeps what was compiled for the one after it
    compiled.clear()
    broken = analyse(path, text + "      - id: [", previous=second)
    assert broken.stage == "parse"
    analyse(path, text, previous=broken)
    assert compiled == []
    # a file a shot names, changed on disk, compiles the shots that name it again
    Image.new("RGB", (720, 1280)).save(tmp_path / "assets" / "start.png")
    os.utime(tmp_path / "assets" / "start.png", ns=(1, 1))
    compiled.clear()
    analyse(path, text, previous=second)
    assert compiled == [f"s{i}" for i in range(6)]  # every shot sends the keeper's image


def test_a_shot_with_a_diagnostic_is_compiled_each_time(tmp_path, monkeypatch):
    import kling_compose.compiler as compiler

    text = _chain(3).replace("assets/start.png", "https://example.com/start.png") \
        .replace("  model: kling-o3-pro\n", "  model: kling-o3-pro\n  negative_prompt: x\n")
    path = tmp_path / "storyboard.yaml"
    first = analyse(path, text)
    assert {p.severity for p in first.problems} == {"warning"}
    compiled = []
    real = compiler.compile_shot
    monkeypatch.setattr(compiler, "compile_shot",
                        lambda shot, *args: compiled.append(shot.id) or real(shot, *args))
    again = analyse(path, text, previous=first)
    assert compiled == ["s0", "s1", "s2"]  # warnings carry this analysis's places
    assert [p.message for p in again.problems] == [p.message for p in first.problems]


def test_an_image_is_decoded_once_while_it_stays_the_same(tmp_path, monkeypatch):
    from PIL import Image

    import kling_compose.resolve as resolve

    (tmp_path / "assets").mkdir()
    image = tmp_path / "assets" / "start.png"
    Image.new("RGB", (64, 64)).save(image)
    decoded = []
    real = resolve._image_problem
    monkeypatch.setattr(resolve, "_image_problem",
                        lambda opener, what: decoded.append(what) or real(opener, what))
    text = _chain(2).replace("  model: kling-o3-pro\n", "  model: kling-o3-pro\n")
    path = tmp_path / "storyboard.yaml"
    analyse(path, text)
    analyse(path, text.replace("dawn", "dusk"))
    assert decoded == ["image 'start.png'"]
    image.write_bytes(image.read_bytes()[:40])  # damaged: decoded again, and said
    found = analyse(path, text)
    assert decoded == ["image 'start.png'"] * 2
    assert any("image 'start.png'" in p.message for p in found.problems), found.problems


def test_an_image_named_by_every_shot_is_followed_through_its_links_once(tmp_path,
                                                                          monkeypatch):
    from PIL import Image

    import kling_compose.files as files

    (tmp_path / "assets").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "assets" / "start.png")
    text = _chain(5).replace("{ from: previous }", "assets/start.png")
    walked = []
    real = files.resolves_inside
    monkeypatch.setattr(files, "resolves_inside",
                        lambda path, *args: walked.append(path.name) or real(path, *args))
    found = analyse(tmp_path / "storyboard.yaml", text)
    assert found.problems == []
    assert walked == ["start.png"]  # resolve's check, once for the five shots and the element


def test_a_refused_edit_keeps_what_was_compiled_for_the_fix(tmp_path, monkeypatch):
    import kling_compose.compiler as compiler

    text = _chain(4).replace("assets/start.png", "https://example.com/start.png")
    path = tmp_path / "storyboard.yaml"
    first = analyse(path, text)
    assert first.problems == []
    refused = analyse(path, text.replace("  model: kling-o3-pro\n",
                                         "  model: kling-o3-pro\n  duration: 40\n"),
                      previous=first)
    assert refused.stage == "compile"
    compiled = []
    real = compiler.compile_shot
    monkeypatch.setattr(compiler, "compile_shot",
                        lambda shot, *args: compiled.append(shot.id) or real(shot, *args))
    fixed = analyse(path, text, previous=refused)
    assert fixed.problems == [] and compiled == []


def test_what_is_kept_for_reuse_holds_no_earlier_analysis(tmp_path):
    """A reused Job gets this analysis's shot and sources: one edit after another, only the
    last parsed document stays alive (each holds the whole storyboard)."""
    import gc

    from PIL import Image

    from kling_compose.parse import Document

    (tmp_path / "assets").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "assets" / "start.png")
    path = tmp_path / "storyboard.yaml"
    found = analyse(path, _chain(5))
    for i in range(5):
        found = analyse(path, _chain(5).replace(f"dawn {i}", f"dusk {i}"), previous=found)
        assert found.problems == []
    gc.collect()
    assert sum(isinstance(o, Document) for o in gc.get_objects()) == 1
    assert found.jobs is not None and all(job.shot is shot for job, shot in
                                          zip(found.jobs, found.resolved.shots))


def test_a_refused_edit_keeps_no_earlier_analysis_alive_either(tmp_path):
    import gc

    from kling_compose.parse import Document

    text = _chain(4).replace("assets/start.png", "https://example.com/start.png")
    path = tmp_path / "storyboard.yaml"
    found = analyse(path, text)
    for i in range(4):  # each refused: what was compiled is merged and kept
        found = analyse(path, text.replace(f"dawn {i}", f"dusk {i}").replace(
            "  model: kling-o3-pro\n", "  model: kling-o3-pro\n  duration: 40\n"),
            previous=found)
        assert found.stage == "compile"
    gc.collect()
    assert sum(isinstance(o, Document) for o in gc.get_objects()) == 1
