"""The language server's fast paths (issue 27) give what the plain ones give.

- an analysis that reuses the last one (`previous`: compiled Jobs kept by what a shot is)
  finds the same problems, at the same places, and the same jobs as a fresh analysis of
  the same text, over a run of edits: one shot, every shot (a default, a template's loop),
  errors at each stage, half-typed text and its fix;
- parse's construct_plain (a plain document built without PyYAML's machinery) makes the
  data, positions and value count construct_document makes, and leaves every other
  document to it with nothing recorded;
- the value count parse_document keeps is extent()'s size, which validate no longer walks;
- checking a plain storyboard leaves no cyclic garbage (the server pauses the collector).
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import yaml

from kling_compose.lsp.analysis import Analysis, analyse
from kling_compose.parse import _NOT_PLAIN, _Loader, extent, parse_document
from kling_compose.render import Rendered, Source

TESTS = Path(__file__).parent
REPOSITORY = TESTS.parent


def _plain(shots: int) -> str:
    """Scenes of 5 chained shots, elements in prompts, a voice speaking in some."""
    lines = ["version: 1", "name: speed", "defaults:", "  provider: runware",
             "  model: kling-o3-pro", "  duration: 5", "  audio: true", "elements:",
             "  hero:", "    description: the hero", "    frontal_image: assets/start.png",
             "  gull:", "    description: a gull", "    frontal_image: assets/start.png",
             "    voice_id: v1", "scenes:"]
    for s in range(shots // 5):
        lines += [f"  - id: scene-{s}", "    shots:"]
        for k in range(5):
            i = s * 5 + k
            lines += [f"      - id: shot-{i}",
                      f'        prompt: "@hero walks through scene {s}, take {k}, @@ dusk"']
            lines.append("        first_frame: assets/start.png" if k == 0 else
                         "        first_frame: { from: previous }")
            if k == 3:
                lines += ["        dialogue:",
                          "          - { speaker: gull, line: 'one two three four five six "
                          "seven eight nine ten eleven twelve thirteen fourteen fifteen "
                          "sixteen seventeen' }"]
    return "\n".join(lines) + "\n"


def _templated(shots: int) -> str:
    return "\n".join([
        "{% set shots = " + str(shots) + " %}",
        "version: 1", "name: speed", "defaults:", "  provider: runware",
        "  model: kling-o3-pro", "  duration: 5", "  audio: true", "elements:",
        "  hero:", "    description: the hero", "    frontal_image: assets/start.png",
        "scenes:",
        "{% for s in range(shots // 5) %}",
        "  - id: scene-{{ s }}",
        "    shots:",
        "{% for k in range(5) %}",
        "      - id: shot-{{ s * 5 + k }}",
        '        prompt: "@hero walks through scene {{ s }}, take {{ k }}"',
        "{% if k == 0 %}",
        "        first_frame: assets/start.png",
        "{% else %}",
        "        first_frame: { from: previous }",
        "{% endif %}",
        "{% endfor %}",
        "{% endfor %}",
    ]) + "\n"


def _edits(text: str, templated: bool) -> list[str]:
    """Texts one after another: each an edit of the one before."""
    texts = []

    def then(old: str, new: str, count: int = 1) -> None:
        current = texts[-1] if texts else text
        assert old in current, old
        texts.append(current.replace(old, new, count))

    if not templated:
        then("scene 3, take 2", "scene 3, take 9")  # one shot
        then("scene 3, take 9", "scene 3, take 2")  # and back
        then("      - id: shot-7\n", "      - id: shot-7\n        duration: 40\n")  # compile
        then("        duration: 40\n", "")  # fixed
        then("  duration: 5\n", "  duration: 6\n")  # every shot: a default
        then("  duration: 6\n", "  duration: 5\n")  # and back, twice reused
        then("  duration: 5\n", "  duration: 7\n")
        then("  audio: true\n", "  audio: false\n")  # a default the dialogue refuses
        then("  audio: false\n", "  audio: true\n")
        then("scene 1, take 1", "scene 1, take 1, @nobody")  # resolve
        then(", @nobody", "")
        then("      - id: shot-2\n", "      - id: shot-2\n        bogus: 1\n")  # validate
        then("        bogus: 1\n", "")
        then("      - id: shot-4\n", "      - id: [\n")  # half-typed: parse
        then("      - id: [\n", "      - id: shot-4\n")
        then("  duration: 7\n", "  duration: 40\n")  # every shot refused at compile
        then("  duration: 40\n", "  duration: 5\n")
        then("      - id: shot-9\n", "      - id: shot-9\n        aspect: '4:3'\n"
             "        negative_prompt: blur\n")  # a warning
        then("@hero walks through scene 2", "@gull walks through scene 2", 5)
    else:
        loop = "        first_frame: { from: previous }\n"
        then(loop, loop + "        duration: 40\n")  # every shot, refused at compile
        then("        duration: 40\n", "")
        then("  duration: 5\n", "  duration: 6\n")
        then("  duration: 6\n", "  duration: 5\n")
        then(", take {{ k }}", ", take {{ k + 1 }}")  # every shot's prompt
        then(loop, loop + "        bogus: 1\n")  # validate, every shot
        then("        bogus: 1\n", "")
        then("{% endif %}", "{% endif")  # template syntax
        then("{% endif", "{% endif %}")
        then(", take {{ k + 1 }}", ", take {{ k }}")
    return texts


def _problems(found: Analysis) -> list:
    return [(p.severity, p.message, p.hint, p.place) for p in found.problems]


def _jobs(found: Analysis) -> list | None:
    if found.jobs is None:
        return None
    return [(job.shot, job.provider, job.model, job.request, job.cost_usd, job.cost_note,
             job.warnings, [(ref.key, ref.media, ref.source.kind, ref.source.value,
                             ref.source.frame, ref.source.path) for ref in job.inputs])
            for job in job_list(found)]


def job_list(found: Analysis) -> tuple:
    assert found.jobs is not None
    assert all(job.shot is shot for job, shot in zip(found.jobs, found.resolved.shots))
    return found.jobs


def _project(tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "assets").mkdir()
    Image.new("RGB", (1280, 720)).save(tmp_path / "assets" / "start.png")


@pytest.mark.parametrize("templated", [False, True], ids=["plain", "templated"])
def test_a_reusing_analysis_finds_what_a_fresh_one_finds(tmp_path, templated):
    _project(tmp_path)
    path = tmp_path / "storyboard.yaml"
    text = _templated(30) if templated else _plain(30)
    found = analyse(path, text)
    assert found.stage == "done", _problems(found)
    for n, edited in enumerate(_edits(text, templated)):
        found = analyse(path, edited, previous=found)
        fresh = analyse(path, edited)
        assert found.stage == fresh.stage, n
        assert _problems(found) == _problems(fresh), n
        assert _jobs(found) == _jobs(fresh), n
        assert found.names == fresh.names, n
        assert found.data == fresh.data, n


@pytest.mark.parametrize("templated", [False, True], ids=["plain", "templated"])
def test_an_analysis_finds_what_validate_finds(tmp_path, templated):
    """The fast paths also serve `kling-compose validate`: the pipeline and compile_shots
    on each edited text give the problems the analysis gives, and the same jobs."""
    from kling_compose.compiler import compile_shots
    from kling_compose.errors import UserError
    from kling_compose.pipeline import load_resolved_text

    _project(tmp_path)
    path = tmp_path / "storyboard.yaml"
    text = _templated(20) if templated else _plain(20)
    found = None
    for edited in [text, *_edits(text, templated)]:
        found = analyse(path, edited, previous=found)
        try:
            jobs = compile_shots(load_resolved_text(edited, path, {}, path.name))
        except UserError as exc:
            errors = sorted({d.message for d in exc.diagnostics if d.severity == "error"})
            assert errors == sorted({p.message for p in found.problems
                                     if p.severity == "error"})
            continue
        assert found.stage == "done"
        assert [(j.shot.id, j.request, j.cost_usd, j.cost_note) for j in jobs] == \
            [(j.shot.id, j.request, j.cost_usd, j.cost_note) for j in job_list(found)]


_SNIPPETS = [
    "a: 1\na: 2\n", "a: &x {b: 1}\nc: *x\n", "<<: {a: 1}\nb: 2\n", "a: !!binary aGk=\n",
    "a: .nan\n", "a: 0x1F\nb: 1_000\nc: 1:30\nd: yes\ne: ~\nf: ''\ng: !!str 5\nh: !!int '7'\n",
    "? [a]\n: b\n", "a: !!map text\n", "a: !!float abc\n", "a: !!bool maybe\n",
    "- 1\n- [2, {x: y}]\n", "", "x", "a: 2024-01-01\n", "a: !custom 1\n",
    "a: &s str\nb: *s\n", "a: " + "[" * 150 + "]" * 150 + "\n", "a: 1" + "0" * 1200 + "\n",
    "k: {a: 1, a: 2}\n", "!!seq {a: 1}\n", "a: -.inf\n", "a: 1e3\nb: 1.5\nc: !!float 2\n",
    "a: {b: [1, {c: d}], e: null}\n", "a: !!null x\nb: !!map {c: 1}\n", "a: |\n  x\n  y\n",
    "? a\n: 1\n!!str b: 2\n", "a: 'x'\nb: \"y\"\nc: @z\n",
]


def _texts() -> list[tuple[str, str]]:
    files = [p for p in REPOSITORY.glob("**/*.y*ml")
             if p.is_file() and ".venv" not in p.parts and "out" not in p.parts]
    found = []
    for p in files:
        try:
            found.append((str(p.relative_to(REPOSITORY)), p.read_text(encoding="utf-8")))
        except (UnicodeDecodeError, OSError):
            continue
    found += [(f"snippet {i}", text) for i, text in enumerate(_SNIPPETS)]
    found.append(("plain storyboard", _plain(20)))
    return found


def _construct(text: str, plain: bool):
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        data = loader.construct_plain(node) if plain else _NOT_PLAIN
        used = data is not _NOT_PLAIN
        if not used:
            data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        return ("error", str(exc))
    finally:
        loader.dispose()
    places: dict = {}

    def walk(value, path):  # the positions, by path (ids differ from one parse to another)
        if len(path) > 200 or len(places) > 100_000:
            return
        entry = loader.positions.get(id(value))
        if entry is not None:
            places[path] = entry
        if isinstance(value, dict):
            for key, child in value.items():
                walk(child, path + (key,))
        elif isinstance(value, list):
            for index, child in enumerate(value):
                walk(child, path + (index,))

    if not (isinstance(data, (dict, list)) and _recursive(data)):
        walk(data, ())
    return (data if not _recursive(data) else repr(type(data)), loader.problems, places,
            loader.values, loader.shared, used)


def _recursive(data, seen=None) -> bool:
    seen = set() if seen is None else seen
    if isinstance(data, (dict, list)):
        if id(data) in seen:
            return True
        seen.add(id(data))
        children = data.values() if isinstance(data, dict) else data
        found = any(_recursive(child, seen) for child in children)
        seen.discard(id(data))
        return found
    return False


def test_construct_plain_makes_what_construct_document_makes():
    built = 0
    for name, text in _texts():
        slow, fast = _construct(text, plain=False), _construct(text, plain=True)
        if slow is None or slow[0] == "error":
            assert fast == slow, name
            continue
        assert fast[:5] == slow[:5], name
        built += fast[5]
    assert built >= 50  # the storyboards of the repository, the plain snippets


def test_the_count_of_values_is_extents_size():
    counted = 0
    for name, text in _texts():
        source = Source(Path("/project/storyboard.yaml"), "storyboard.yaml", text)
        try:
            doc = parse_document(Rendered(source, Path("/project"), text))
        except Exception:  # noqa: BLE001 (a document the parser refuses has no count)
            continue
        if doc.values is not None:
            assert doc.values == extent(doc.data, {})[0], name
            counted += 1
    assert counted >= 50


def test_a_check_of_a_plain_storyboard_leaves_no_cyclic_garbage(tmp_path):
    _project(tmp_path)
    path = tmp_path / "storyboard.yaml"
    text = _plain(20)
    found = analyse(path, text)
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        for edited in _edits(text, templated=False)[:7]:  # the edits that succeed
            found = analyse(path, edited, previous=found)
        assert gc.collect() == 0
    finally:
        if was:
            gc.enable()
