"""Issue 26, the project file: `kling-compose.yaml` beside the storyboard declares the
defaults every teammate's commands use (vars files, provider, concurrency, max_cost, preview
resolution, store). The command line overrides them; `config` shows them; a mistake in the
file is located like a storyboard's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from _e2e import PREVIEW, cli
from support.locks import rehearsal_lock

STORYBOARD = """\
version: 1
name: harbour
defaults: { provider: preview, model: kling-3-pro, duration: 5, aspect: "16:9" }
scenes:
  - id: a
    shots:
      - { id: one, prompt: "A harbour at dawn, {{ mood }}" }
      - id: two
        prompt: "Boats leave the harbour, {{ mood }}"
        first_frame: { from: one, frame: last }
"""


@pytest.fixture
def root(project) -> Path:
    root = project(STORYBOARD)
    (root / "vars.yaml").write_text("mood: calm\n")
    return root


def _project_file(root: Path, text: str) -> None:
    (root / "kling-compose.yaml").write_text(text)


def _prompts(root: Path, *extra: str) -> list[str]:
    result = cli("plan", root, "--requests", "--provider", "fal", *extra)
    assert result.exit_code == 0, result.output
    return [t["request"]["prompt"] for t in json.loads(result.stdout)
            if t.get("request")]


def _plan(root: Path, *extra: str, env: dict | None = None) -> dict:
    result = cli("plan", root, "--json", *extra, env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_vars_files_are_read_for_every_command_and_the_command_line_overrides(root):
    forgot = cli("validate", root)
    assert forgot.exit_code == 1 and "mood" in forgot.output  # the error the issue names
    _project_file(root, "vars: [vars.yaml]\n")
    for command in ("validate", "config", "render", "status", "graph"):
        result = cli(command, root)
        assert result.exit_code == 0, (command, result.output)
    assert all(p.endswith("calm") for p in _prompts(root))
    # --var and a later --vars file win over the project's file
    assert all(p.endswith("storm") for p in _prompts(root, "--var", "mood=storm"))
    (root / "night.yaml").write_text("mood: night\n")
    assert all(p.endswith("night") for p in _prompts(root, "--vars", root / "night.yaml"))


def test_the_project_file_is_found_beside_the_storyboard_from_any_folder(root, tmp_path):
    _project_file(root, "vars: vars.yaml\n")  # one file, without a list
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run([sys.executable, "-m", "kling_compose", "validate",
                             str(root.relative_to(tmp_path)) + "/storyboard.yaml"],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_provider_and_preview_resolution_defaults_and_overrides(root):
    _project_file(root, "vars: [vars.yaml]\nprovider: fal\npreview_resolution: 144\n")
    plan = _plan(root)
    assert {t["provider"] for t in plan["tasks"] if t.get("provider")} == {"fal"}
    overridden = _plan(root, "--provider", "preview")
    assert {t["provider"] for t in overridden["tasks"] if t.get("provider")} == {"preview"}
    # a rehearsal at the project's preview resolution: the run and its status agree
    run = cli("run", root, "--json", "--provider", "preview")
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["generated"] == 2
    assert rehearsal_lock(root).exists() and not (root / "storyboard.lock").exists()
    # `status` shows what the last run made (the preview), not the project's provider
    status = cli("status", root, "--json")
    assert status.exit_code == 0, status.output
    shots = [t for t in json.loads(status.stdout)["tasks"] if t.get("kind") == "generate"]
    assert shots and all(t["status"] == "done" for t in shots), shots


def test_run_takes_concurrency_and_max_cost_from_the_project_file(root, sim_env, sim):
    _project_file(root, "vars: [vars.yaml]\nprovider: fal\nconcurrency: 1\nmax_cost: 0.5\n")
    refused = cli("run", root, "--json", *PREVIEW, env=sim_env)
    assert refused.exit_code == 1
    assert "max_cost in" in refused.output and "kling-compose.yaml" in refused.output
    assert "--max-cost USD" in refused.output  # the hint: the command line overrides it
    assert sim.generations("fal") == []  # refused before paying anything
    paid = cli("run", root, "--json", *PREVIEW, "--max-cost", "5", env=sim_env)
    assert paid.exit_code == 0, paid.output
    assert json.loads(paid.stdout)["generated"] == 2
    assert len(sim.generations("fal")) == 2


def test_store_from_the_project_file_and_the_storyboard_wins(root, tmp_path):
    _project_file(root, "vars: [vars.yaml]\nstore: ../team-store\n")
    run = cli("run", root, "--json", *PREVIEW)
    assert run.exit_code == 0, run.output
    pushed = cli("push", root)
    assert pushed.exit_code == 0, pushed.output
    assert str(tmp_path / "team-store") in pushed.output or "team-store" in pushed.output
    assert (tmp_path / "team-store").is_dir()
    # the storyboard's own `store:` comes before the project file's
    board = root / "storyboard.yaml"
    board.write_text(board.read_text().replace("name: harbour", "name: harbour\n"
                                               "store: ../own-store"))
    pushed = cli("push", root)
    assert pushed.exit_code == 0, pushed.output
    assert "own-store" in pushed.output and (tmp_path / "own-store").is_dir()


def test_config_shows_the_project_defaults_and_stays_a_storyboard(root):
    _project_file(root, "vars: [vars.yaml]\nprovider: fal\nconcurrency: 3\n")
    result = cli("config", root)
    assert result.exit_code == 0, result.output
    head = result.stdout.splitlines()[:5]
    assert head[0].startswith("# defaults from") and "kling-compose.yaml" in head[0]
    assert "#   provider: fal" in head and "#   concurrency: 3" in head
    # the YAML is still a storyboard (the defaults are comments); --json keeps stdout JSON
    (root / "config.yaml").write_text(result.stdout)
    assert cli("validate", root / "config.yaml").exit_code == 0
    as_json = cli("config", root, "--json")
    assert json.loads(as_json.stdout)["name"] == "harbour"
    assert "provider: fal" in as_json.stderr
    # one setting a line whatever their kinds (scalars only came out as one flow mapping)
    _project_file(root, "provider: fal\nmax_cost: 2.5\n")
    head = cli("config", root, "--var", "mood=x").stdout.splitlines()[:3]
    assert head[1:] == ["#   provider: fal", "#   max_cost: 2.5"], head


@pytest.mark.parametrize("text, expected", [
    ("provider: fall\n", ["kling-compose.yaml:1:11: error: unknown provider 'fall'",
                          "did you mean 'fal'?"]),
    ("concurency: 3\n", ["kling-compose.yaml:1:1: error: unknown setting 'concurency'",
                         "did you mean 'concurrency'?"]),
    ("vars: [missing.yaml]\n", ["kling-compose.yaml:1:8: error: vars file 'missing.yaml' "
                                "does not exist"]),
    ("concurrency: 0\n", ["kling-compose.yaml:1:14: error: 'concurrency' must be a whole "
                          "number from 1"]),
    ("max_cost: -2\n", ["kling-compose.yaml:1:11: error: 'max_cost' must be an amount"]),
    ("store: 'ftp://x/y'\n", ["kling-compose.yaml:1:8: error: store 'ftp://x/y' is neither"]),
    ("- provider\n", ["kling-compose.yaml:1:1: error: the project file must be a mapping"]),
    ("provider: fal\nprovider: kie\n", ["kling-compose.yaml:2:1", "provider"]),
])
def test_a_mistake_in_the_project_file_is_located(root, text, expected):
    _project_file(root, text)
    for command in ("validate", "plan", "run"):
        result = cli(command, root)
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output
        for part in expected:
            assert part in result.output, (command, result.output)


def test_init_writes_a_project_file_that_changes_nothing_until_edited(tmp_path):
    created = cli("init", tmp_path / "new")
    assert created.exit_code == 0, created.output
    text = (tmp_path / "new" / "kling-compose.yaml").read_text()
    assert all(line.startswith("#") for line in text.splitlines() if line)
    assert "# provider:" in text and "# vars:" in text and "# store:" in text
    assert cli("validate", tmp_path / "new").exit_code == 0


@pytest.mark.parametrize("kind", ["folder", "device", "binary", "loop"])
def test_a_project_file_that_is_not_text_is_refused_with_its_name(root, kind):
    target = root / "kling-compose.yaml"
    if kind == "folder":
        target.mkdir()
    elif kind == "device":
        target.symlink_to("/dev/zero")
    elif kind == "binary":
        target.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    else:
        target.symlink_to(target)
    result = cli("plan", root)
    assert result.exit_code == 1, result.output
    assert "kling-compose.yaml" in result.output and "Traceback" not in result.output


def test_gc_after_a_rehearsal_keeps_what_the_project_default_run_needs(root, sim_env, sim):
    """The project's provider is how the project runs with no flags: gc keeps that plan's
    clips and frames even when the last run was a free rehearsal on the preview."""
    _project_file(root, "vars: [vars.yaml]\nprovider: fal\n")
    assert cli("run", root, "--json", *PREVIEW, env=sim_env).exit_code == 0
    assert cli("run", root, "--json", *PREVIEW, "--provider", "preview").exit_code == 0
    collected = cli("gc", root, env=sim_env)
    assert collected.exit_code == 0, collected.output
    again = cli("run", root, "--json", *PREVIEW, env=sim_env)
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert summary["generated"] == 0 and summary["failed"] == 0, summary
    assert len(sim.generations("fal")) == 2


def test_doctor_says_what_the_project_file_sets(root):
    _project_file(root, "vars: [vars.yaml]\nprovider: preview\nconcurrency: 2\n")
    result = cli("doctor", root)
    assert result.exit_code == 0, result.output
    assert "ok       project file " in result.output
    assert "provider preview, concurrency 2" in result.output
