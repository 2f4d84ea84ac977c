"""API keys from the environment, the project's `.env` and `<VAR>_FILE` (settings.py), and a
real run against the simulator whose keys come from `.env` and `_FILE` and show up in nothing
the project writes or prints."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from kling_compose.cli import main
from kling_compose.errors import UserError
from kling_compose.commands.scaffold import create_project
from kling_compose.settings import KEY_VARIABLES, Secret, Settings

KEY = "rw-7f3a9c-SECRET"


def settings(root: Path, env: dict | None = None, dotenv: str | None = None) -> Settings:
    if dotenv is not None:
        (root / ".env").write_text(dotenv, encoding="utf-8")
    return Settings.from_environment(env or {}, project_root=root)


def problems(root: Path, env: dict | None = None, dotenv: str | None = None) -> list[str]:
    with pytest.raises(UserError) as caught:
        settings(root, env, dotenv)
    return [str(d) for d in caught.value.diagnostics]


# -- .env -------------------------------------------------------------------------------------


def test_dotenv_lines_comments_quotes_and_export_prefixes(tmp_path):
    found = settings(tmp_path, dotenv=(
        "# keys for this film\n"
        f"export RUNWARE_API_KEY={KEY}\n"
        "FAL_KEY = 'fal-key:with-colon'  # a comment after a quoted value\n"
        'KIE_API_KEY="kie key"\n'
        "\n"
        "KLING_COMPOSE_RUNWARE_URL=http://127.0.0.1:9/runware/v1\n"
        "KLING_COMPOSE_POLL_SECONDS=0.5\n"))
    assert found.keys["runware"].reveal() == KEY
    assert found.keys["fal"].reveal() == "fal-key:with-colon"
    assert found.keys["kie"].reveal() == "kie key"
    assert found.url("runware") == "http://127.0.0.1:9/runware/v1"
    assert found.poll_interval_s == 0.5
    assert found.key_sources["runware"] == f"RUNWARE_API_KEY (set in {tmp_path / '.env'})"


def test_the_environment_wins_over_dotenv_and_an_empty_variable_counts_as_unset(tmp_path):
    found = settings(tmp_path, {"RUNWARE_API_KEY": "from-env", "FAL_KEY": ""},
                     dotenv="RUNWARE_API_KEY=from-dotenv\nFAL_KEY=fal-from-dotenv\n")
    assert found.keys["runware"].reveal() == "from-env"
    assert found.key_sources["runware"] == "RUNWARE_API_KEY (set in the environment)"
    assert found.keys["fal"].reveal() == "fal-from-dotenv"


def test_values_are_literal_and_nothing_leaks_into_the_process_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME_OF_KEYS", "expanded")
    monkeypatch.delenv("KIE_API_KEY", raising=False)
    found = settings(tmp_path, dotenv="KIE_API_KEY=a${HOME_OF_KEYS}b\n")
    assert found.keys["kie"].reveal() == "a${HOME_OF_KEYS}b"
    assert "KIE_API_KEY" not in os.environ


def test_without_a_project_root_no_dotenv_is_read(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text(f"RUNWARE_API_KEY={KEY}\n")
    monkeypatch.chdir(tmp_path)
    assert "runware" not in Settings.from_environment({}).keys


def test_a_line_python_dotenv_cannot_read_is_located_and_never_shown(tmp_path):
    found = problems(tmp_path, dotenv=f'FAL_KEY=ok\nRUNWARE_API_KEY="{KEY}\n')
    assert found == [f"{tmp_path / '.env'}:2: error: .env has a line python-dotenv cannot read\n"
                     "  hint: write NAME=value, one per line; quote a value holding spaces or '#'"]


def test_a_dotenv_that_is_not_utf8_or_not_a_file_is_named(tmp_path):
    (tmp_path / ".env").write_bytes(b"RUNWARE_API_KEY=\xff\xfe" + KEY.encode())
    (message,) = problems(tmp_path)
    assert "is not UTF-8 text" in message and KEY not in message and "\\xff" not in message
    (tmp_path / ".env").unlink()
    (tmp_path / ".env").mkdir()
    (message,) = problems(tmp_path)
    assert message.startswith(f"error: {tmp_path / '.env'} (the project's environment file) is "
                              "not a regular file")


# -- <VAR>_FILE -------------------------------------------------------------------------------


def test_a_key_file_is_read_with_its_whitespace_and_newline_stripped(tmp_path):
    secret = tmp_path / "secrets" / "fal"
    secret.parent.mkdir()
    secret.write_text(f"  {KEY}\r\n\n")
    found = settings(tmp_path, {"FAL_KEY_FILE": str(secret)})
    assert found.keys["fal"].reveal() == KEY
    assert found.key_sources["fal"] == f"FAL_KEY_FILE ({secret}, set in the environment)"


def test_a_relative_key_file_in_dotenv_is_relative_to_the_project(tmp_path):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "kie").write_text(KEY + "\n")
    found = settings(tmp_path, dotenv="KIE_API_KEY_FILE=keys/kie\n")
    assert found.keys["kie"].reveal() == KEY
    assert found.key_sources["kie"] == (f"KIE_API_KEY_FILE ({tmp_path / 'keys' / 'kie'}, set in "
                                        f"{tmp_path / '.env'})")


def test_a_missing_empty_or_unreadable_key_file_is_an_error_naming_the_variable(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text(" \n")
    big = tmp_path / "big"
    big.write_bytes(b"k" * (64 * 1024 + 1))
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff" + KEY.encode())
    env = {"RUNWARE_API_KEY_FILE": str(tmp_path / "nowhere"), "FAL_KEY_FILE": str(empty),
           "KIE_API_KEY_FILE": str(tmp_path), "KLING_V3_TASK_API_KEY_FILE": str(big)}
    found = problems(tmp_path, env)
    hint = "\n  hint: point {0} at a readable file holding only the key"
    assert found == [
        f"error: RUNWARE_API_KEY_FILE names {tmp_path / 'nowhere'}, which does not exist"
        + hint.format("RUNWARE_API_KEY_FILE"),
        f"error: FAL_KEY_FILE names {empty}, which is empty" + hint.format("FAL_KEY_FILE"),
        f"error: {big} (named by KLING_V3_TASK_API_KEY_FILE) is larger than 64 KiB"
        + hint.format("KLING_V3_TASK_API_KEY_FILE"),
        f"error: {tmp_path} (named by KIE_API_KEY_FILE) is not a regular file"
        + hint.format("KIE_API_KEY_FILE"),
    ]
    (message,) = problems(tmp_path, {"FAL_KEY_FILE": str(binary)})
    assert "FAL_KEY_FILE" in message and "not UTF-8" in message and KEY not in message


def test_a_key_file_with_a_second_line_is_refused_without_showing_it(tmp_path):
    secret = tmp_path / "fal"
    secret.write_text(f"{KEY}\n# the staging key\n")
    (message,) = problems(tmp_path, {"FAL_KEY_FILE": str(secret)})
    assert message == (f"error: the API key in the file FAL_KEY_FILE names ({secret}) holds a "
                       "line break, a control or a non-ASCII character, which no HTTP header "
                       "can carry\n  hint: set FAL_KEY to the key exactly as the provider "
                       "shows it")


def test_both_a_variable_and_its_file_variable_is_an_error(tmp_path):
    secret = tmp_path / "rw"
    secret.write_text(KEY)
    found = problems(tmp_path, {"RUNWARE_API_KEY": KEY},
                     dotenv=f"RUNWARE_API_KEY_FILE={secret}\n")
    assert found == [f"error: both RUNWARE_API_KEY (set in the environment) and "
                     f"RUNWARE_API_KEY_FILE (set in {tmp_path / '.env'}) are set\n"
                     "  hint: keep one of them: unset RUNWARE_API_KEY or RUNWARE_API_KEY_FILE"]
    assert KEY not in "".join(found)


def test_every_problem_is_reported_at_once(tmp_path):
    found = problems(tmp_path, {"FAL_KEY_FILE": str(tmp_path / "nowhere"),
                                "KLING_COMPOSE_POLL_SECONDS": "0",
                                "KLING_COMPOSE_KIE_URL": "api.kie.ai"})
    assert len(found) == 3 and [m.split(" ")[1] for m in found] == [
        "FAL_KEY_FILE", "KLING_COMPOSE_KIE_URL='api.kie.ai'", "KLING_COMPOSE_POLL_SECONDS='0'"]


def test_a_key_never_shows_in_a_repr(tmp_path):
    found = settings(tmp_path, {"RUNWARE_API_KEY": KEY})
    assert KEY not in repr(found) and KEY not in str(found.keys["runware"])
    assert found.keys["runware"] == Secret(KEY)


# -- init ---------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_init_makes_git_ignore_dotenv(tmp_path):
    create_project(tmp_path / "film")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path / "film", check=True)
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=tmp_path / "film")
    assert ignored.returncode == 0
    kept = subprocess.run(["git", "check-ignore", "-q", "storyboard.lock"], cwd=tmp_path / "film")
    assert kept.returncode == 1


# -- a real run: keys from .env and _FILE, in nothing written or printed -------------------------

STORYBOARD = """version: 1
name: keys
defaults:
  duration: 3
  aspect: '16:9'
scenes:
  - id: main
    shots:
      - id: one
        provider: runware
        prompt: a lantern drifts across the harbour
      - id: two
        provider: fal
        prompt: boats rock gently at dusk
      - id: three
        provider: kie
        first_frame: {from: one}
        prompt: the lantern rises over the boats
"""
KEYS = {"runware": "rw-key-3b1d7e-from-dotenv", "fal": "fal-key-9c2f44-from-file",
        "kie": "kie-key-51aa0b-from-dotenv-file"}


def test_a_run_with_keys_from_dotenv_and_key_files_writes_and_prints_no_key(tmp_path):
    from kling_compose.simulator import Faults, Simulator

    root = tmp_path / "film"
    root.mkdir()
    (root / "storyboard.yaml").write_text(STORYBOARD, encoding="utf-8")
    secrets = tmp_path / "secrets"  # outside the project, as /run/secrets would be
    secrets.mkdir()
    (secrets / "fal").write_text(KEYS["fal"] + "\n")
    (secrets / "kie").write_text(KEYS["kie"] + "\n")
    (root / ".env").write_text(f"# this film's keys\nexport RUNWARE_API_KEY=\"{KEYS['runware']}\"\n"
                               "KIE_API_KEY_FILE=../secrets/kie\n", encoding="utf-8")
    with Simulator(KEYS, Faults(task_seconds=0.05)) as sim:
        env = dict(sim.env()) | {"KLING_COMPOSE_POLL_SECONDS": "0.05",
                                 "FAL_KEY_FILE": str(secrets / "fal")}
        for variable in KEY_VARIABLES.values():  # only .env and _FILE may provide keys
            env[variable] = None
        env["RUNWARE_API_KEY_FILE"] = env["KIE_API_KEY"] = env["KIE_API_KEY_FILE"] = None
        result = CliRunner().invoke(main, ["run", str(root), "--json"], env=env,
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert summary["failed"] == 0 and summary["generated"] == 3, summary
        assert {r.provider for r in sim.requests(kind="submit")} == {"runware", "fal", "kie"}
    written = [p for p in root.rglob("*") if p.is_file() and p != root / ".env"]
    assert root / "storyboard.lock" in written
    assert any(".kling-compose" in p.parts for p in written)
    assert any("renders" in p.parts for p in written)
    for key in KEYS.values():
        assert key not in result.stdout and key not in result.stderr
        for path in written:
            assert key.encode() not in path.read_bytes(), path
