"""Outputs that collide (issue 22): two spellings of one film path, a film through a link onto
another, a film in kling-compose's own folders or over an input are refused, located; a film
path is used in one spelling (the plan, the lock, the task ids). The located messages of the
plain cases are in tests/cases/errors/hostile2-outputs-*."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

HEAD = """version: 1
name: test-film
scenes:
  - id: dawn
    shots:
      - id: opening
        prompt: Wide shot of a river at dawn
      - id: harbour
        prompt: The harbour wakes
outputs:
"""


def write(root: Path, outputs: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "storyboard.yaml").write_text(HEAD + outputs, encoding="utf-8")
    return root


def validate(run_cli, root: Path):
    code, out, err = run_cli(["validate", root / "storyboard.yaml"])
    assert "Traceback" not in err
    return code, err


@pytest.mark.parametrize("second", ["./renders/a.mp4", "renders//a.mp4", "renders/./a.mp4",
                                    "renders/x/../a.mp4", ".//renders///a.mp4"])
def test_two_spellings_of_one_film_are_one_file_refused(run_cli, tmp_path, second):
    root = write(tmp_path / "film", f"  - path: renders/a.mp4\n  - path: {second}\n")
    code, err = validate(run_cli, root)
    assert code == 1
    assert f"storyboard.yaml:12:5: error: output path '{second}' is the same file as " \
           "'renders/a.mp4' (line 11)" in err, err


def test_a_film_through_a_link_onto_another_is_refused(run_cli, tmp_path):
    root = write(tmp_path / "film", "  - path: renders/a.mp4\n  - path: films/a.mp4\n")
    (root / "renders").mkdir()
    (root / "films").symlink_to("renders", target_is_directory=True)
    code, err = validate(run_cli, root)
    assert code == 1 and "output path 'films/a.mp4' is the same file as 'renders/a.mp4'" \
        in err and "through a link" in err, err


def test_a_link_into_kling_composes_own_folder_is_refused(run_cli, tmp_path):
    root = write(tmp_path / "film", "  - path: cuts/film.mp4\n")
    (root / ".kling-compose" / "tmp").mkdir(parents=True)
    (root / "cuts").symlink_to(".kling-compose/tmp", target_is_directory=True)
    code, err = validate(run_cli, root)
    assert code == 1 and "output path 'cuts/film.mp4' is inside .kling-compose" in err, err


@pytest.mark.parametrize("path, where", [
    ("renders/shots/opening.mp4", "inside renders/shots"),
    ("renders/shots/finale.mov", "inside renders/shots"),
    (".kling-compose/tmp/film.mp4", "inside .kling-compose"),
    (".kling-compose/objects/ab/film.mp4", "inside .kling-compose"),
    ("./.kling-compose/film.mp4", "inside .kling-compose"),
    ("renders/../.kling-compose/film.mp4", "inside .kling-compose"),
])
def test_a_film_in_kling_composes_own_folders_is_refused(run_cli, tmp_path, path, where):
    root = write(tmp_path / "film", f"  - path: {path}\n")
    code, err = validate(run_cli, root)
    assert code == 1 and f"storyboard.yaml:11:5: error: output path '{path}' is {where}" \
        in err, err


def test_a_film_over_an_input_is_refused(run_cli, tmp_path):
    root = write(tmp_path / "film", "  - path: assets/walk.mp4\n")
    text = (root / "storyboard.yaml").read_text().replace(
        "        prompt: The harbour wakes\n",
        "        prompt: The harbour wakes\n        reference_videos: [assets/walk.mp4]\n")
    (root / "storyboard.yaml").write_text(text)
    code, err = validate(run_cli, root)
    assert code == 1 and "output path 'assets/walk.mp4' is an input of the storyboard " \
        "(line 10): the film would overwrite it" in err, err


def test_distinct_films_are_accepted(run_cli, tmp_path):
    root = write(tmp_path / "film", "  - path: renders/a.mp4\n  - path: renders/b.mp4\n"
                 "  - path: renders/a.mov\n  - path: renders/cuts/a.mp4\n"
                 "  - path: shots/a.mp4\n")
    code, err = validate(run_cli, root)
    assert code == 0, err


def test_a_film_path_is_used_in_one_spelling(run_cli, tmp_path):
    root = write(tmp_path / "film", "  - path: ./renders//cut/../a.mp4\n")
    code, out, err = run_cli(["plan", root / "storyboard.yaml", "--json"])
    assert code == 0, err
    ids = [t["id"] for t in json.loads(out)["tasks"]]
    assert "assemble:renders/a.mp4" in ids, ids
