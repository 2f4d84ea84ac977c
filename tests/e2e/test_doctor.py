"""`kling-compose doctor` against the simulator: one line per check, a hint on each problem,
exit 1 on any problem, and never a key's value (issue 10)."""

from __future__ import annotations

import socket
import sqlite3

import pytest
from _e2e import cli

from kling_compose.settings import KEY_VARIABLES
from kling_compose.simulator import Faults, Simulator

KEYS = {"runware": "rw-doctor-4e1f", "fal": "fal-doctor-77b2", "kie": "kie-doctor-c0d9",
        "kling-v3-task": "task-doctor-a5e3"}
BAD_KEY = "kie-WRONG-8d6c21"
STORYBOARD = """version: 1
name: doctor
defaults:
  duration: 3
  aspect: '16:9'
scenes:
  - id: main
    shots:
""" + "".join(f"      - id: {p}-shot\n        provider: {p}\n        prompt: a lantern on the "
              f"water, shot for {p}\n" for p in ("runware", "kie"))


@pytest.fixture
def sim():
    with Simulator(KEYS, Faults(task_seconds=0.05)) as simulator:
        yield simulator


def environment(sim, **keys) -> dict:
    """The simulator's hosts and only the given key variables (the real ones unset)."""
    env = dict(sim.env())
    for variable in KEY_VARIABLES.values():
        env[variable] = env[variable + "_FILE"] = None
    return env | keys


def doctor(root, sim, *args, **keys):
    result = cli("doctor", root, *args, env=environment(sim, **keys))
    assert result.exit_code in (0, 1), result.output
    return result


def lines(result, start: str) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith(start)]


def test_a_healthy_provider_and_a_refused_key(project, sim):
    root = project(STORYBOARD)
    result = doctor(root, sim, RUNWARE_API_KEY=KEYS["runware"], KIE_API_KEY=BAD_KEY)
    assert result.exit_code == 1
    out = result.stdout
    assert f"ok       runware: key accepted by {sim.url('runware')} (balance 100)" in out
    (problem,) = lines(result, "problem")
    assert problem.startswith("problem  kie: the API key from KIE_API_KEY (set in the "
                              "environment) was refused: kie refused the credit query: code 401")
    hint = out.splitlines()[out.splitlines().index(problem) + 1]
    assert hint == ("         hint: fix KIE_API_KEY where it is set: the key may be mistyped, "
                    "revoked or another account's; then run kling-compose doctor again")
    assert out.splitlines()[-1] == "1 problem(s): fix them before kling-compose run"
    for key in (BAD_KEY, KEYS["runware"]):
        assert key not in result.output and key not in result.stderr
    assert not sim.generations()  # nothing was paid for
    (checked,) = sim.requests("kie", "account")
    assert checked.path == "/kie/api/v1/chat/credit"


def test_every_check_passes_with_keys_from_dotenv_and_a_key_file(project, sim, tmp_path):
    root = project(STORYBOARD.replace("provider: kie", "provider: fal"))
    (root / ".env").write_text(f"RUNWARE_API_KEY='{KEYS['runware']}'\n")
    secret = tmp_path / "fal.key"
    secret.write_text(KEYS["fal"] + "\n")
    result = doctor(root, sim, FAL_KEY_FILE=str(secret))
    assert result.exit_code == 0, result.stdout
    assert not lines(result, "problem")
    assert result.stdout.splitlines()[-1] == "no problems found"
    assert f"ok       runware: API key from RUNWARE_API_KEY (set in {root / '.env'})" \
        in result.stdout
    assert f"ok       fal: API key from FAL_KEY_FILE ({secret}, set in the environment)" \
        in result.stdout
    assert f"ok       fal: key accepted by {sim.url('fal-api')}/v1/models/requests/by-endpoint" \
        in result.stdout
    assert lines(result, "ok       Python 3.")
    assert lines(result, "ok       ffmpeg version")
    assert f"ok       {root / 'storyboard.yaml'} loads: 2 shot(s), provider(s) fal, runware" \
        in result.stdout
    assert KEYS["runware"] not in result.output and KEYS["fal"] not in result.output


def test_a_provider_without_a_free_call_is_set_but_not_verified(project, sim):
    root = project(STORYBOARD)
    result = doctor(root, sim, "--provider", "kling-v3-task",
                    KLING_V3_TASK_API_KEY=KEYS["kling-v3-task"])
    assert result.exit_code == 0, result.stdout
    assert "ok       kling-v3-task: key set; not verified (no free call)" in result.stdout
    assert "runware" not in result.stdout and "kie:" not in result.stdout


def test_an_unreachable_host_names_the_url_and_its_setting(project, sim):
    with socket.socket() as free:  # a port nobody listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    root = project(STORYBOARD)
    dead = f"http://127.0.0.1:{port}/kie"
    result = doctor(root, sim, RUNWARE_API_KEY=KEYS["runware"], KIE_API_KEY=KEYS["kie"],
                    KLING_COMPOSE_KIE_URL=dead)
    assert result.exit_code == 1
    (problem,) = lines(result, "problem")
    assert problem.startswith(f"problem  kie: cannot reach {dead}/api/v1/chat/credit: ")
    assert f"hint: check the network, or the host: KLING_COMPOSE_KIE_URL (now {dead})" \
        in result.stdout


def test_a_server_error_and_an_empty_account_are_problems(project, sim):
    root = project(STORYBOARD)
    sim.faults.error(1, status=503, provider="runware", kind="account")
    sim.kie.credits = 0
    result = doctor(root, sim, RUNWARE_API_KEY=KEYS["runware"], KIE_API_KEY=KEYS["kie"])
    assert result.exit_code == 1
    problems = lines(result, "problem")
    assert problems == [
        "problem  kie: key accepted, but the account is empty (0 credits left)",
        f"problem  runware: runware answered HTTP 503: serviceUnavailable: simulated HTTP 503 "
        f"({sim.url('runware')})"]
    assert "hint: add credits to the account before kling-compose run" in result.stdout
    assert "hint: the service is busy or down: try again in a while" in result.stdout


def test_missing_keys_hosts_and_conflicting_settings(project, sim, tmp_path):
    root = project(STORYBOARD)
    result = doctor(root, sim, KIE_API_KEY=KEYS["kie"], KLING_COMPOSE_KIE_UPLOAD_URL=None)
    assert result.exit_code == 1
    (problem,) = lines(result, "problem")
    assert problem == "problem  runware: no API key (RUNWARE_API_KEY is not set)"
    assert (f"hint: set RUNWARE_API_KEY in the environment or in {root / '.env'}, or point "
            "RUNWARE_API_KEY_FILE at a file holding the key") in result.stdout
    assert "ok       kie: host(s) kie " in result.stdout  # kie-upload: its public default
    both = doctor(root, sim, RUNWARE_API_KEY=KEYS["runware"],
                  RUNWARE_API_KEY_FILE=str(tmp_path / "rw"))
    assert lines(both, "problem") == [
        "problem  both RUNWARE_API_KEY (set in the environment) and RUNWARE_API_KEY_FILE (set "
        "in the environment) are set",
        "problem  provider keys not checked (kie, runware): the settings above have problems"]
    assert KEYS["runware"] not in both.output


def test_the_task_api_without_a_host_is_a_problem(project, sim):
    root = project(STORYBOARD)
    result = doctor(root, sim, "--provider", "kling-v3-task", KLING_V3_TASK_API_KEY="k",
                    KLING_COMPOSE_KLING_V3_TASK_URL=None)
    assert lines(result, "problem") == [
        "problem  kling-v3-task: kling-v3-task has no default host: set "
        "KLING_COMPOSE_KLING_V3_TASK_URL"]


def test_a_broken_storyboard_ledger_and_lock_are_each_named(project, sim):
    root = project(STORYBOARD.replace("duration: 3", "duration: 99"))
    (root / ".kling-compose").mkdir()
    (root / ".kling-compose" / "state.db").write_bytes(b"SQLite format 3\x00" + b"\x07" * 900)
    (root / "storyboard.lock").write_text("{not json")
    result = doctor(root, sim, RUNWARE_API_KEY=KEYS["runware"], KIE_API_KEY=KEYS["kie"])
    assert result.exit_code == 1
    problems = lines(result, "problem")
    assert problems[0].startswith(f"problem  {root / 'storyboard.yaml'}:4:")
    assert "duration" in problems[0]
    assert any(p.startswith("problem  .kling-compose/state.db is damaged") for p in problems)
    assert any(p.startswith("problem  storyboard.lock is not valid JSON") for p in problems)
    assert problems[-1] == "problem  provider keys not checked: the storyboard does not load"
    # with --provider, the key is checked all the same
    named = doctor(root, sim, "--provider", "runware", RUNWARE_API_KEY=KEYS["runware"])
    assert f"ok       runware: key accepted by {sim.url('runware')}" in named.stdout


def test_a_healthy_ledger_and_lock_are_ok(project, sim):
    root = project(STORYBOARD)
    (root / ".kling-compose").mkdir()
    sqlite3.connect(root / ".kling-compose" / "state.db").close()
    (root / "storyboard.lock").write_text('{"version": 1, "shots": {}, "outputs": {}}')
    result = doctor(root, sim, "--provider", "preview")
    assert result.exit_code == 0, result.stdout
    assert f"ok       {root / '.kling-compose' / 'state.db'} readable (0 task record(s))" \
        in result.stdout
    assert f"ok       {root / 'storyboard.lock'} readable" in result.stdout
    assert "ok       no hosted provider: preview renders locally, no key needed" in result.stdout


def test_user_text_is_printed_as_it_is_never_as_markup(tmp_path, sim):
    from _e2e import make_project

    root = make_project(tmp_path / "[bold]film[/bold]", STORYBOARD)
    result = doctor(root, sim, "--provider", "preview")
    assert f"ok       {root / 'storyboard.yaml'} loads" in result.stdout
    assert "[bold]film[/bold]" in result.stdout
