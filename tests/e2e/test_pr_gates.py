"""The gates of issue 26 against the simulator: the question a paid `run` asks at a terminal
(through a real pseudo-terminal: no answers nothing was paid, yes pays), `plan
--detailed-exitcode` (0 nothing to do, 2 something runs, 1 an error) and `plan --base REF`
against the lock a real git branch holds."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _e2e import PREVIEW, cli

STORYBOARD = """version: 1
name: harbour
defaults:
  provider: fal
  model: kling-3-pro
  duration: 3
  aspect: '16:9'
scenes:
  - id: main
    shots:
      - id: dawn
        prompt: boats leave the harbour at dawn
      - id: noon
        prompt: {noon}
{more}"""
DUSK = """      - id: dusk
        prompt: lanterns rise over the water at dusk
"""
PROMPT = "Continue? [y/N]"


def storyboard(noon: str = "a market on the quay at noon", more: str = "") -> str:
    return STORYBOARD.format(noon=noon, more=more)


def at_terminal(args, env: dict, cwd: Path, answer: str | None = None,
                timeout: float = 60) -> tuple[int, str]:
    """`kling-compose ARGS` in a child process whose stdin, stdout and stderr are a
    pseudo-terminal; `answer` is typed when it asks to continue. Its exit code and all it
    printed."""
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "kling_compose", *map(str, args)],
                            stdin=slave, stdout=slave, stderr=slave, cwd=cwd,
                            env=os.environ | env | {"NO_COLOR": "1", "COLUMNS": "160"},
                            start_new_session=True)
    os.close(slave)
    output, answered = b"", False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                if proc.poll() is not None and not select.select([master], [], [], 0)[0]:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal (it ended)
                break
            if not chunk:
                break
            output += chunk
            if answer is not None and not answered and PROMPT.encode() in output:
                os.write(master, answer.encode() + b"\n")
                answered = True
        else:
            proc.kill()
            raise AssertionError(f"no end within {timeout} s:\n{output.decode(errors='replace')}")
        return proc.wait(timeout=30), output.decode(errors="replace").replace("\r\n", "\n")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


@pytest.fixture
def env(sim_env) -> dict:
    return sim_env | {"KLING_COMPOSE_STORE": ""}


# -- the gate before spending ---------------------------------------------------------------------

@pytest.mark.parametrize("answer", ["n", "", "\x04"], ids=["no", "enter", "end-of-input"])
def test_no_at_the_question_pays_nothing_and_touches_nothing(project, sim, env, answer):
    root = project(storyboard())
    code, out = at_terminal(["run", *PREVIEW], env, root, answer=answer)
    assert code == 1, out
    assert PROMPT in out
    assert "this run pays for 2 generation(s), an estimated $1.008:" in out
    assert "  fal  fal-ai/kling-video/v3/pro/text-to-video    2 shot(s)    $1.008  dawn, noon" \
        "\n" in out
    assert "`--max-cost USD` caps a run; `-y` skips this question" in out
    assert "nothing was paid" in out and "Traceback" not in out
    assert sim.generations("fal") == [] and sim.requests("fal") == []
    assert not (root / "storyboard.lock").exists()
    assert not (root / ".kling-compose").exists()
    assert not (root / "renders").exists()


def test_yes_at_the_question_pays_then_nothing_to_pay_asks_nothing(project, sim, env):
    root = project(storyboard())
    code, out = at_terminal(["run", *PREVIEW], env, root, answer="y")
    assert code == 0, out
    assert PROMPT in out
    assert len(sim.generations("fal")) == 2
    assert (root / "storyboard.lock").is_file() and (root / "renders" / "harbour.mp4").is_file()
    code, out = at_terminal(["run", *PREVIEW], env, root)  # all cached: free
    assert code == 0, out
    assert PROMPT not in out and len(sim.generations("fal")) == 2


def test_the_yes_flag_never_asks(project, sim, env):
    root = project(storyboard())
    code, out = at_terminal(["run", "-y", *PREVIEW], env, root)
    assert code == 0, out
    assert PROMPT not in out and len(sim.generations("fal")) == 2


def test_a_free_rehearsal_never_asks(project, sim, env):
    root = project(storyboard())
    code, out = at_terminal(["run", "--provider", "preview", *PREVIEW], env, root)
    assert code == 0, out
    assert PROMPT not in out and (root / "renders" / "harbour.mp4").is_file()


def test_a_run_refused_by_max_cost_is_refused_before_the_question(project, sim, env):
    root = project(storyboard())
    code, out = at_terminal(["run", "--max-cost", "0.10", *PREVIEW], env, root)
    assert code == 1, out
    assert PROMPT not in out and "--max-cost: this run would cost an estimated $1.008" in out
    assert sim.generations("fal") == []


def test_without_a_terminal_nothing_is_asked(project, sim, env):
    root = project(storyboard())
    result = cli("run", root, *PREVIEW, env=env)  # CliRunner: stdin is not a TTY
    assert result.exit_code == 0, result.output
    assert PROMPT not in result.output and len(sim.generations("fal")) == 2


# -- plan --detailed-exitcode ---------------------------------------------------------------------

def test_detailed_exitcode(project, sim, env):
    root = project(storyboard())
    for args in ([], ["--json"], ["--format", "markdown"]):
        result = cli("plan", root, "--detailed-exitcode", *args, env=env)
        assert result.exit_code == 2, result.output  # two shots would run
    assert cli("plan", root, env=env).exit_code == 0  # without the flag: 0 as before
    assert cli("run", root, *PREVIEW, env=env).exit_code == 0
    for args in ([], ["--json"], ["--format", "markdown"]):
        result = cli("plan", root, "--detailed-exitcode", *args, env=env)
        assert result.exit_code == 0, result.output  # nothing to do
    result = cli("plan", root, "--detailed-exitcode", "--provider", "preview", *PREVIEW,
                 env=env)
    assert result.exit_code == 2, result.output  # free, but something would run
    (root / "storyboard.yaml").write_text(storyboard().replace("duration: 3", "duration: 99"))
    result = cli("plan", root, "--detailed-exitcode", env=env)
    assert result.exit_code == 1 and "error" in result.stderr, result.output


# -- plan --base REF with real git ----------------------------------------------------------------

def git(cwd: Path, *args: str) -> str:
    env = os.environ | {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
                        "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def paid_main_and_a_feature(root: Path, env: dict) -> None:
    """main: two shots paid and committed with their lock; branch `feature`: noon's prompt
    changed and a shot added, not run."""
    (root / ".gitignore").write_text(".kling-compose/\nrenders/\n")
    git(root, "init", "-q", "-b", "main")
    assert cli("run", root, *PREVIEW, env=env).exit_code == 0
    git(root, "add", "-A")
    git(root, "commit", "-qm", "two shots, paid")
    git(root, "checkout", "-qb", "feature")
    (root / "storyboard.yaml").write_text(storyboard("the market | closing at noon", DUSK))
    git(root, "commit", "-qam", "noon rewritten, dusk added")


def test_base_says_what_the_base_paid_and_what_the_branch_adds(project, sim, env):
    root = project(storyboard())
    paid_main_and_a_feature(root, env)
    plan = json.loads(cli("plan", root, "--json", env=env).stdout)
    cost = {t["shot"]: t["estimated_cost_usd"] for t in plan["tasks"] if t["kind"] == "generate"}

    result = cli("plan", root, "--format", "markdown", "--base", "main", env=env)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "**Against `main`:** 1 shot(s) paid on base" in text
    adds = cost["noon"] + cost["dusk"]
    assert f"this branch adds **${adds:.3f}** (2 generation(s) the base did not pay for; " \
           f"${adds:.3f} of it not paid yet)" in text
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()
            if line.startswith("| ") and " | fal | " in line}
    assert set(rows) == {"noon", "dusk"}  # dawn is unchanged and paid on base
    assert "| prompt: a market on the quay at noon -> the market \\| closing at noon |" in \
        rows["noon"] and rows["noon"].endswith("| not paid yet |")
    assert "never made" in rows["dusk"]
    assert "`fal-ai/kling-video/v3/pro/text-to-video`" in rows["dusk"]
    assert "| noon | the market \\| closing at noon |" in text  # the prompt, its | escaped
    assert "Unchanged (1, nothing to pay): dawn" in text

    # the branch pays: what it adds over main stays, nothing is left to pay
    assert cli("run", root, *PREVIEW, env=env).exit_code == 0
    result = cli("plan", root, "--json", "--base", "main", "--detailed-exitcode", env=env)
    assert result.exit_code == 0, result.output
    base = json.loads(result.stdout)["base"]
    assert base["ref"] == "main" and base["lock"] == "storyboard.lock" and base["lock_found"]
    assert base["paid_on_base"] == ["generate:dawn"]
    assert base["paid_on_branch"] == ["generate:noon", "generate:dusk"]
    assert base["not_paid_yet"] == [] and base["not_paid_yet_usd"] == 0
    assert base["adds_usd"] == pytest.approx(adds)
    result = cli("plan", root, "--base", "main", env=env)  # the table says it in a line
    assert f"against main: this branch adds ${adds:.3f} (2 generation(s)" in result.stdout
    result = cli("plan", root, "--format", "markdown", "--base", "main", env=env)
    assert "| restorable ($0) |" in result.stdout or "| cached ($0) |" in result.stdout
    assert "paid on this branch" in result.stdout


def test_base_in_a_subfolder_and_a_base_without_a_lock(project, sim, env, tmp_path):
    repo = tmp_path / "repo"
    root = project(storyboard())
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    (repo / "README.md").write_text("films\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "no film yet")
    root.rename(repo / "harbour")
    result = cli("plan", repo / "harbour", "--json", "--base", "main", env=env)
    assert result.exit_code == 0, result.output
    base = json.loads(result.stdout)["base"]
    assert base["lock"] == "harbour/storyboard.lock" and not base["lock_found"]
    assert base["not_paid_yet"] == ["generate:dawn", "generate:noon"]
    result = cli("plan", repo / "harbour", "--format", "markdown", "--base", "HEAD", env=env)
    assert "its tree has no `harbour/storyboard.lock`" in result.stdout


def test_a_base_git_cannot_read_is_one_located_error(project, sim, env):
    root = project(storyboard())
    result = cli("plan", root, "--format", "markdown", "--base", "origin/main", env=env)
    assert result.exit_code == 1 and result.stdout == ""
    assert "error: --base:" in result.stderr and "is not in a git repository" in \
        result.stderr and "hint: --base compares" in result.stderr
    assert "Traceback" not in result.stderr
    paid_main_and_a_feature(root, env)
    result = cli("plan", root, "--format", "markdown", "--base", "origin/main", env=env)
    assert result.exit_code == 1 and result.stdout == ""
    assert "storyboard.lock: error: --base: git does not know the ref 'origin/main'" in \
        result.stderr, result.stderr
    assert "`git fetch origin main`" in result.stderr and "fetch-depth: 0" in result.stderr
    result = cli("plan", root, "--base", "--upload-pack=x", env=env)
    assert result.exit_code == 1 and "is not a git ref" in result.stderr
