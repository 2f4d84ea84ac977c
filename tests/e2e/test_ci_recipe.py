"""docs/ci.md cannot drift (issue 26): its GitHub Actions workflow's `run:` steps are run here
with bash as Actions runs them, in a clone of a real git repository whose `main` paid for the
shots and whose pull request's branch changes one; its pre-commit configuration and the
repository's `.pre-commit-hooks.yaml` are run as pre-commit runs them (the entry and its args,
no file names), on valid and invalid storyboards."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from _e2e import PREVIEW, cli, make_project
from test_pr_gates import storyboard  # the two-shot fal storyboard, its noon prompt given

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
HOOKS = ROOT / ".pre-commit-hooks.yaml"


def block(after: str, lang: str) -> str:
    """The first ```lang code block of docs/ci.md after the text `after`."""
    start = DOC.index(after)
    return re.compile(rf"```{lang}\n(.*?)```", re.S).search(DOC, start).group(1)


def git(cwd: Path, *args: str) -> str:
    env = os.environ | {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
                        "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def machine(tmp_path) -> dict:
    """A CI machine's environment: `kling-compose` on PATH (this checkout's, run by this
    Python), no provider key, no setting of the developer's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "kling-compose"
    shim.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m kling_compose \"$@\"\n")
    shim.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(home),
           "LANG": "C.UTF-8", "NO_COLOR": "1", "GIT_CONFIG_GLOBAL": os.devnull,
           "GIT_CONFIG_NOSYSTEM": "1"}
    if "PYTHONPATH" in os.environ:  # the tests run this checkout, not an installed copy
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def step(script: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    """A `run:` step as GitHub Actions runs it on Linux: `bash --noprofile --norc -eo
    pipefail {0}` with the script in a file."""
    file = cwd.parent / f"step-{abs(hash(script))}.sh"
    file.write_text(script)
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(file)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


# -- the GitHub Actions workflow --------------------------------------------------------------

def workflow() -> dict:
    return yaml.safe_load(block("## The GitHub Actions workflow", "yaml"))


def test_the_workflow_never_pays_and_fetches_the_base():
    steps = workflow()["jobs"]["plan"]["steps"]
    scripts = [s.get("run", "") for s in steps]
    assert not any(re.search(r"kling-compose\s+run\b", s) for s in scripts)
    assert not any("KEY" in str(s.get("env", "")) for s in steps)
    checkout = next(s for s in steps if str(s.get("uses", "")).startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0
    assert any("pip install kling-compose" in s for s in scripts)
    assert any("kling-compose plan --detailed-exitcode --format markdown --base origin/main"
               in s for s in scripts)


def test_the_workflow_runs_on_a_pull_request(tmp_path, sim, sim_env, machine):
    # a team's origin: main paid for both shots; the pull request's branch rewrites noon
    origin, alice = tmp_path / "origin.git", tmp_path / "alice"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    make_project(alice, storyboard("a market on the quay at noon"))
    (alice / ".gitignore").write_text(".kling-compose/\nrenders/\n")
    assert cli("run", alice, *PREVIEW, env=sim_env | {"KLING_COMPOSE_STORE": ""}).exit_code == 0
    git(alice, "init", "-q", "-b", "main")
    git(alice, "add", "-A")
    git(alice, "commit", "-qm", "two shots, paid")
    git(alice, "remote", "add", "origin", str(origin))
    git(alice, "push", "-q", "origin", "main")
    git(alice, "checkout", "-qb", "noon-at-dusk")
    (alice / "storyboard.yaml").write_text(storyboard("the market closes at dusk"))
    git(alice, "commit", "-qam", "noon at dusk")
    git(alice, "push", "-q", "origin", "noon-at-dusk")

    # the CI machine: the pull request's branch checked out with every branch (fetch-depth: 0)
    ci = tmp_path / "ci"
    git(tmp_path, "clone", "-q", "-b", "noon-at-dusk", str(origin), str(ci))
    outputs, summary = tmp_path / "github_output", tmp_path / "step_summary"
    outputs.touch()
    summary.touch()
    env = machine | {"GITHUB_OUTPUT": str(outputs), "GITHUB_STEP_SUMMARY": str(summary)}
    ran = []
    for action in workflow()["jobs"]["plan"]["steps"]:
        if "run" not in action or "pip install" in action["run"]:
            continue  # actions (checkout, setup-python, the comment) and the installation
        done = step(action["run"], ci, env)
        assert done.returncode == 0, (action["name"], done.stdout, done.stderr)
        ran.append(action["name"])
    assert ran == ["Validate", "Plan"]
    assert "exitcode=2" in outputs.read_text().splitlines()  # a shot to make

    comment = next(s for s in workflow()["jobs"]["plan"]["steps"] if "Comment" in
                   s.get("name", ""))
    posted = (ci / comment["with"]["path"]).read_text()
    assert posted.startswith("<!-- kling-compose plan -->\n")
    assert posted in summary.read_text()
    assert "**Against `origin/main`:** 1 shot(s) paid on base" in posted
    row = next(line for line in posted.splitlines() if line.startswith("| noon |"))
    assert "prompt: a market on the quay at noon -> the market closes at dusk" in row
    assert row.endswith("| not paid yet |")
    assert "Unchanged (1, nothing to pay): dawn" in posted
    assert len(sim.generations("fal")) == 2  # alice paid for main; CI paid nothing

    # a storyboard that does not validate fails the job at its first step
    (ci / "storyboard.yaml").write_text(storyboard("x").replace("duration: 3",
                                                                            "duration: 99"))
    validate = next(s for s in workflow()["jobs"]["plan"]["steps"] if s.get("name") ==
                    "Validate")
    done = step(validate["run"], ci, env)
    assert done.returncode == 1 and "error: duration 99 s is out of range" in done.stderr


# -- pre-commit ---------------------------------------------------------------------------------

def hook() -> dict:
    hooks = yaml.safe_load(HOOKS.read_text(encoding="utf-8"))
    assert isinstance(hooks, list)
    return next(h for h in hooks if h["id"] == "kling-compose-validate")


def as_pre_commit_runs(declared: dict, args: list, cwd: Path, env: dict):
    """A hook run as pre-commit runs it with `pass_filenames: false`: its entry, then its
    args, from the repository's root."""
    command = [*shlex.split(declared["entry"]), *map(str, args)]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60)


def test_the_hook_is_declared_for_pre_commit():
    declared = hook()
    assert declared["entry"] == "kling-compose validate"
    assert declared["language"] == "python"
    assert declared["pass_filenames"] is False and declared["args"] == []
    files = re.compile(declared["files"])  # pre-commit matches it with re.search
    for path in ("storyboard.yaml", "films/teaser/alt.yml", "vars.yaml", "assets/a.png",
                 "assets/theme.mp3", "storyboard.schema.json"):
        assert files.search(path), path
    for path in ("README.md", "src/app.py", "storyboard.lock", "renders"):
        assert not files.search(path), path


def test_the_hook_and_the_documented_config_validate(tmp_path, machine):
    repo = make_project(tmp_path / "repo", storyboard("noon"))
    teaser = make_project(repo / "films" / "teaser", storyboard("{{ mood }}"))
    (teaser / "storyboard.yaml").rename(teaser / "alt.yaml")
    (teaser / "vars.yaml").write_text("mood: a storm at noon\n")

    config = yaml.safe_load(block("## pre-commit", "yaml"))
    entries = [h for r in config["repos"] for h in r["hooks"]]
    assert {h["id"] for h in entries} == {"kling-compose-validate"}
    for entry in entries:  # each as configured: the hook's args, or the entry's own
        done = as_pre_commit_runs(hook(), entry.get("args", hook()["args"]), repo, machine)
        assert done.returncode == 0, (entry, done.stdout, done.stderr)
        assert ": ok: 1 scene(s), 2 shot(s)" in done.stdout

    broken = storyboard("noon").replace("duration: 3", "duration: 99")
    (repo / "storyboard.yaml").write_text(broken)
    done = as_pre_commit_runs(hook(), hook()["args"], repo, machine)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "storyboard.yaml:6:13: error: duration 99 s is out of range" in done.stderr
    (teaser / "alt.yaml").write_text(storyboard("{{ mood }}").replace(
        "duration: 3", "duration: 99"))
    done = as_pre_commit_runs(hook(), entries[1]["args"], repo, machine)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "films/teaser/alt.yaml:6:13: error: duration 99 s" in done.stderr
