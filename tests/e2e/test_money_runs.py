"""Runs against the simulator that must never lose a paid clip or pay twice (issue 8):
interrupted while polling on every hosted provider, downloads cut short or dripping, a lost
fal submission found again, and --max-cost holding when reported costs pass the estimate."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from _e2e import PREVIEW, cli

from kling_compose.media.animatic import AnimaticSpec, render_animatic
from kling_compose.simulator import Faults, Simulator
from support.locks import read_lock

KEYS = {"runware": "rw-key-e2e", "fal": "fal-key-e2e", "kling-v3-task": "task-key-e2e",
        "kie": "kie-key-e2e",
        # the official API's pair (access:secret); sim.env() sets KLING_ACCESS/SECRET_KEY
        "kling": "kling-access-e2e:kling-secret-e2e-0123456789abcdef0123"}
KEY_VARIABLES = {"runware": "RUNWARE_API_KEY", "fal": "FAL_KEY",
                 "kling-v3-task": "KLING_V3_TASK_API_KEY", "kie": "KIE_API_KEY"}
ONE_SHOT = """version: 1
name: one
defaults:
  duration: 3
  aspect: '16:9'
scenes:
  - id: main
    shots:
      - id: s1
        prompt: a lantern drifts across the harbour
"""


@pytest.fixture
def sim():
    with Simulator(KEYS, Faults(task_seconds=0.05)) as simulator:
        yield simulator


def environment(sim, **extra) -> dict:
    env = dict(sim.env()) | {KEY_VARIABLES[p]: k for p, k in KEYS.items() if p in KEY_VARIABLES}
    return env | {"KLING_COMPOSE_POLL_SECONDS": "0.05"} | extra


def run(root, provider, sim, *args, **env):
    result = cli("run", root, "--json", "--provider", provider, *PREVIEW, *args,
                 env=environment(sim, **env))
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def interrupt_at(root, provider, sim, kind: str, how=signal.SIGKILL, after_s: float = 0.0):
    """Start `run` as a process and send it `how` once the simulator saw a new `kind`
    request (one more than before the start)."""
    seen = len(sim.requests(provider, kind))
    command = [sys.executable, "-m", "kling_compose", "run", str(root), "--provider", provider]
    proc = subprocess.Popen(command, env=os.environ | environment(sim),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(sim.requests(provider, kind)) == seen:
        time.sleep(0.005)
    time.sleep(after_s)
    proc.send_signal(how)
    proc.wait(timeout=30)


def lock_of(root) -> dict:
    return read_lock(root / "storyboard.lock")


@pytest.mark.parametrize("provider", ["runware", "fal", "kling-v3-task", "kie", "kling"])
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_interrupted_while_polling_resumes_without_a_second_charge(project, sim, provider, how):
    sim.faults.task_seconds = 2.5
    root = project(ONE_SHOT)
    interrupt_at(root, provider, sim, "poll", how)
    assert len(sim.generations(provider)) == 1
    summary = run(root, provider, sim)
    assert summary["failed"] == 0 and summary["generated"] == 1, summary
    (generation,) = sim.generations(provider)  # polled by the server's own id, not sent again
    assert lock_of(root)["shots"]["s1"]["task_id"] == generation.id


def test_a_download_cut_short_is_fetched_again_before_it_is_kept(project, sim):
    root = project(ONE_SHOT)
    sim.faults.truncate(1, 0.4, provider="runware")
    summary = run(root, "runware", sim)
    assert summary["failed"] == 0, summary
    assert len(sim.requests("runware", "download")) == 2
    assert len(sim.generations("runware")) == 1
    again = run(root, "runware", sim)
    assert again["generated"] == 0 and len(sim.requests("runware", "download")) == 2


def test_a_dripping_download_meets_its_deadline_and_is_retried(project, sim):
    root = project(ONE_SHOT)
    sim.faults.drip(1, 0.3, provider="fal")
    started = time.monotonic()
    summary = run(root, "fal", sim, KLING_COMPOSE_DOWNLOAD_TIMEOUT_SECONDS="1")
    assert summary["failed"] == 0, summary
    assert time.monotonic() - started < 20
    assert len(sim.requests("fal", "download")) == 2 and len(sim.generations("fal")) == 1


def test_a_lost_fal_submission_is_found_in_falls_request_list_not_paid_again(project, sim):
    root = project(ONE_SHOT)
    sim.faults.reset(1, provider="fal", kind="submit", after_processing=True)
    first = run(root, "fal", sim)
    assert first["failed"] == 1 and "run` again" in json.dumps(first)
    assert len(sim.generations("fal")) == 1  # accepted, its answer lost
    second = run(root, "fal", sim)
    assert second["failed"] == 0 and second["generated"] == 1, second
    assert len(sim.generations("fal")) == 1  # found by its input, polled, not sent again
    assert sim.requests("fal", "poll")[0].path == "/fal-api/v1/models/requests/by-endpoint"


def test_a_lost_fal_submission_that_fal_does_not_list_asks_the_user(project, sim):
    root = project(ONE_SHOT)
    sim.faults.reset(1, provider="fal", kind="submit")  # dropped before fal saw it
    run(root, "fal", sim)
    second = run(root, "fal", sim)
    assert second["failed"] == 1 and sim.generations("fal") == []
    text = json.dumps(second)
    assert "shows it finished" in text and "kling-compose adopt s1" in text
    forced = run(root, "fal", sim, "--force", "s1")
    assert forced["failed"] == 0 and len(sim.generations("fal")) == 1


def test_max_cost_stops_a_run_whose_reported_costs_pass_the_estimate(project, sim):
    root = project("""version: 1
name: budget
scenes:
  - id: main
    shots:
      - id: long
        model: kling-3-pro
        prompt: ten seconds of harbour
        duration: 10
        aspect: '16:9'
      - id: edit
        model: kling-o3-pro
        prompt: make it night
        video: { from: long }
        duration: 3
      - id: last
        model: kling-3-pro
        prompt: the end
        duration: 5
        first_frame: { from: edit }
""")
    summary = run(root, "runware", sim, "--max-cost", "2.5")
    status = {t["id"]: t["status"] for t in summary["tasks"]}
    # estimated 1.12 + 0.504 + 0.56 = 2.184; the edit is billed by its 10 s source: 1.68
    assert status["generate:long"] == status["generate:edit"] == "done", summary
    assert status["generate:last"] == "skipped"
    assert "--max-cost $2.500 would be passed" in json.dumps(summary)
    assert str(sim.billed("runware")) == "2.800"
    edit = next(t for t in summary["tasks"] if t["id"] == "generate:edit")
    assert edit["estimated_cost_usd"] == 0.504 and edit["cost_usd"] == 1.68
    resumed = run(root, "runware", sim, "--max-cost", "5")
    assert resumed["failed"] == 0 and resumed["generated"] == 1


def test_a_local_video_edit_is_priced_by_its_source_and_uploaded(project, sim):
    root = project("""version: 1
name: edit
scenes:
  - id: main
    shots:
      - id: edit
        model: kling-o3-pro
        prompt: make it night
        video: assets/source.mp4
""")
    render_animatic(AnimaticSpec(duration_s=4, width=320, height=180, title="src"),
                    root / "assets" / "source.mp4")
    summary = run(root, "runware", sim)
    assert summary["failed"] == 0, summary
    (upload,) = [r for r in sim.requests("runware", "upload")]
    assert upload.body[0]["taskType"] == "mediaStorage"
    assert str(sim.billed("runware")) == "0.672"  # 0.168 x the source's 4 s


@pytest.mark.parametrize("provider", ["runware", "fal", "kie"])
def test_killed_while_downloading_resumes_by_downloading_not_paying(project, sim, provider):
    root = project(ONE_SHOT)
    sim.faults.drip(1, 0.2, provider=provider)  # the first download hangs: kill it there
    interrupt_at(root, provider, sim, "download", after_s=0.3)
    assert not (root / ".kling-compose" / "objects").exists() or not any(
        (root / ".kling-compose" / "objects").rglob("*.mp4"))  # nothing half-written kept
    summary = run(root, provider, sim)
    assert summary["failed"] == 0 and summary["generated"] == 1, summary
    assert len(sim.generations(provider)) == 1


@pytest.mark.parametrize("provider", ["runware", "fal", "kie"])
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_interrupted_while_uploading_resumes_and_pays_once(project, sim, provider, how):
    root = project(ONE_SHOT + "        first_frame: assets/start.png\n"
                   "      - id: s2\n        prompt: the lantern goes out\n"
                   "        reference_videos: [{ from: s1 }]\n" if provider == "runware"
                   else ONE_SHOT + "        first_frame: assets/start.png\n")
    if provider == "runware":  # images travel inline there: interrupt the chained clip's upload
        (root / "storyboard.yaml").write_text((root / "storyboard.yaml").read_text().replace(
            "      - id: s1\n", "      - id: s1\n        model: kling-o3-pro\n").replace(
            "      - id: s2\n", "      - id: s2\n        model: kling-o3-pro\n"))
    sim.faults.task_seconds = 0.5
    interrupt_at(root, provider, sim, "upload", how)
    summary = run(root, provider, sim)
    shots = 2 if provider == "runware" else 1
    assert len(sim.generations(provider)) <= shots  # never a shot generated twice
    if summary["failed"]:  # the kill landed between committing a kie submission and its answer
        assert provider == "kie", summary
        assert "your kie dashboard shows the task" in json.dumps(summary)
    else:
        assert len(sim.generations(provider)) == shots


@pytest.mark.parametrize("provider", ["runware", "kling", "fal"])
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_interrupted_while_asking_after_a_lost_answer_resumes_and_pays_once(project, sim,
                                                                             provider, how):
    """Issue 21's new awaits: after a lost submit answer the engine asks the provider before
    anything is sent again (Runware's getResponse between two retries of one run; Kling's
    lookups by our id and fal's request list in the next run). A run stopped while asking
    resumes, finds the task, and pays for it once."""
    sim.faults.task_seconds = 1.0
    root = project(ONE_SHOT)
    sim.faults.reset(1, provider=provider, kind="submit", after_processing=True)
    if provider != "runware":  # the run that lost the answer stops: the next one asks
        first = run(root, provider, sim)
        assert first["failed"] == 1 and len(sim.generations(provider)) == 1, first
    interrupt_at(root, provider, sim, "poll", how)  # stopped at the question
    summary = run(root, provider, sim)
    assert summary["failed"] == 0, summary
    assert len(sim.generations(provider)) == 1  # found again, never sent twice
