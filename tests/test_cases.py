"""End-to-end error cases and the CLI commands, run through the real `kling-compose` CLI.

Each folder under tests/cases/errors/ holds a storyboard.yaml (plus any files it includes or
refers to), an optional args.txt (extra CLI arguments, one per line) and errors.txt: the exact
stderr `kling-compose validate` must print, run from inside that folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from kling_compose.pipeline import load_resolved

TESTS = Path(__file__).parent
ROOT = TESTS.parent
CASES = sorted(p for p in (TESTS / "cases" / "errors").iterdir() if p.is_dir())
EXAMPLES = sorted((ROOT / "examples").glob("**/storyboard.yaml"))
MINIMAL = """\
version: 1
name: test-film
scenes:
  - id: dawn
    shots:
      - id: opening
        prompt: Wide shot of a river at dawn, {{ look }}
"""


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_error_case(run_cli, case: Path) -> None:
    args = ["validate"]
    extra = case / "args.txt"
    if extra.exists():
        args += [line for line in extra.read_text().splitlines() if line.strip()]
    code, out, err = run_cli(args, cwd=case)  # an escaping exception fails the test
    assert "Traceback" not in err
    assert err == (case / "errors.txt").read_text()
    assert code == 1


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 45
    for case in CASES:
        assert (case / "storyboard.yaml").is_file(), case
        assert (case / "errors.txt").read_text().strip(), case


def test_python_tag_is_never_executed(run_cli, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "storyboard.yaml").write_text(
        "version: 1\nname: x\nscenes:\n  - id: a\n    shots:\n      - id: b\n"
        f"        prompt: !!python/object/apply:os.system ['touch {marker}']\n"
        f"        negative_prompt: !!python/object/apply:pathlib.Path.touch ['{marker}']\n"
        "        audio: !!python/object/new:builtins.exit [3]\n"
    )
    code, out, err = run_cli(["validate"], cwd=tmp_path)
    assert code == 1
    assert not marker.exists()
    assert "error: YAML: unsupported YAML tag '!!python/object/apply:os.system'" in err


# -- examples ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_example_resolves(path: Path) -> None:
    resolved = load_resolved(path, {}, "storyboard.yaml")
    assert resolved.shots


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_example_validates(run_cli, path: Path, tmp_path: Path) -> None:
    project = tmp_path / path.parent.name
    shutil.copytree(path.parent, project)
    code, out, err = run_cli(["validate"], cwd=project)
    assert code == 0, err
    assert "error:" not in err
    assert out.startswith("storyboard.yaml: ok:")


def test_examples_exist() -> None:
    assert EXAMPLES


# -- commands ----------------------------------------------------------------------------------


def test_schema_prints_the_schema_file(run_cli) -> None:
    code, out, err = run_cli(["schema"])
    assert code == 0
    assert out == (ROOT / "schemas" / "storyboard.schema.json").read_text(encoding="utf-8")
    assert err == ""


def test_init_creates_a_valid_project(run_cli, tmp_path: Path) -> None:
    code, out, err = run_cli(["init", "my-film"], cwd=tmp_path)
    assert code == 0, err
    project = tmp_path / "my-film"
    text = (project / "storyboard.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    schema_ref = text.splitlines()[0].split("$schema=", 1)[1].strip()
    assert (project / schema_ref).is_file()
    resolved = load_resolved(project / "storyboard.yaml", {}, "storyboard.yaml")
    assert resolved.storyboard.name == "my-film"
    assert [s.id for s in resolved.shots]
    code, out, err = run_cli(["validate"], cwd=project)
    assert code == 0, err


def _ignored(gitignore: str, path: str) -> bool:
    """Whether git would ignore `path` (a tiny subset of gitignore: dir/ patterns, !negation)."""
    ignored = False
    for line in gitignore.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        if pattern.endswith("/"):
            hit = path.startswith(pattern)
        else:
            hit = path == pattern or path.startswith(pattern + "/")
        if hit:
            ignored = not negate
    return ignored


def test_init_gitignore(run_cli, tmp_path: Path) -> None:
    run_cli(["init", "film"], cwd=tmp_path)
    gitignore = (tmp_path / "film" / ".gitignore").read_text()
    assert _ignored(gitignore, ".kling-compose/state.db")
    assert _ignored(gitignore, "renders/film.mp4")
    assert not _ignored(gitignore, "storyboard.lock")
    assert not _ignored(gitignore, "storyboard.yaml")
    assert not _ignored(gitignore, "assets/lantern.png")


def test_init_into_an_existing_project_fails(run_cli, tmp_path: Path) -> None:
    assert run_cli(["init", "film"], cwd=tmp_path)[0] == 0
    before = (tmp_path / "film" / "storyboard.yaml").read_text()
    code, out, err = run_cli(["init", "film"], cwd=tmp_path)
    assert code == 1
    assert "error: " in err and "already exists" in err
    assert (tmp_path / "film" / "storyboard.yaml").read_text() == before


def test_render_with_var_and_vars(run_cli, tmp_path: Path) -> None:
    (tmp_path / "storyboard.yaml").write_text(MINIMAL + "        duration: {{ seconds }}\n")
    (tmp_path / "vars.yaml").write_text("look: blue hour\nseconds: 5\n")
    code, out, err = run_cli(["render", "--vars", "vars.yaml", "--var", "look=golden light"],
                             cwd=tmp_path)
    assert (code, err) == (0, "")
    assert "prompt: Wide shot of a river at dawn, golden light\n" in out
    assert "duration: 5\n" in out
    assert yaml.safe_load(out)["scenes"][0]["shots"][0]["duration"] == 5


def test_render_without_jinja_is_unchanged(run_cli, tmp_path: Path) -> None:
    text = MINIMAL.replace(", {{ look }}", "")
    (tmp_path / "storyboard.yaml").write_text(text)
    assert run_cli(["render"], cwd=tmp_path) == (0, text, "")


def test_path_may_be_a_folder(run_cli, tmp_path: Path) -> None:
    project = tmp_path / "film"
    project.mkdir()
    (project / "storyboard.yaml").write_text(MINIMAL + "        duration: 0\n")
    code, out, err = run_cli(["validate", "film", "--var", "look=x"], cwd=tmp_path)
    assert code == 1
    assert err.startswith("film/storyboard.yaml:8:19: error: 'duration' must be at least 1")
    code, out, err = run_cli(["render", "film", "--var", "look=x"], cwd=tmp_path)
    assert code == 0 and "x\n" in out


def test_path_may_name_a_file(run_cli, tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text(MINIMAL.replace("{{ look }}", "") + "        pick: 0\n")
    code, out, err = run_cli(["validate", "other.yaml"], cwd=tmp_path)
    assert code == 1
    assert err.startswith("other.yaml:8:15: error: 'pick' must be at least 1, not 0")


def test_missing_storyboard(run_cli, tmp_path: Path) -> None:
    code, out, err = run_cli(["validate", "nope.yaml"], cwd=tmp_path)
    assert code == 1
    assert err.startswith("error: no storyboard at 'nope.yaml'\n  hint: ")
    code, out, err = run_cli(["validate"], cwd=tmp_path)
    assert code == 1
    assert err.startswith("error: no storyboard at 'storyboard.yaml'")


def test_folder_without_storyboard(run_cli, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, out, err = run_cli(["validate", "empty"], cwd=tmp_path)
    assert code == 1
    assert "error: " in err and "Traceback" not in err


def test_not_utf8(run_cli, tmp_path: Path) -> None:
    (tmp_path / "storyboard.yaml").write_bytes(b"version: 1\nname: \xff\xfe\n")
    code, out, err = run_cli(["validate"], cwd=tmp_path)
    assert code == 1
    assert err == "storyboard.yaml:2:7: error: not UTF-8 text (invalid start byte)\n"


@pytest.mark.parametrize("args", [
    ["validate", "--no-such-option"],
    ["validate", "--var"],
    ["render", "a.yaml", "b.yaml"],
    ["init"],
    ["no-such-command"],
])
def test_usage_errors_exit_2(run_cli, tmp_path: Path, args) -> None:
    code, out, err = run_cli(args, cwd=tmp_path)
    assert code == 2
    assert "Error:" in err and "Traceback" not in err
