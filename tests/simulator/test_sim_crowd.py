"""The simulator under a crowd: rendered clips cached by what they show, its counts (the
`/_sim/stats` page, and what `kling-compose simulate` prints when it stops)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from decimal import Decimal

import httpx

from kling_compose.simulator import Faults, Simulator
from kling_compose.simulator.server import stats_lines

from .kit import FAL_AUTH, KEYS, T2V, fal_wait, poll_runware, runware, video_task

BODY = {"prompt": "A lantern boat drifts across the harbour", "duration": "5",
        "aspect_ratio": "16:9", "generate_audio": False}


def fal_clip(client: httpx.Client, sim: Simulator, body: dict) -> bytes:
    """Submit to fal, wait, fetch the result and download its clip."""
    answer = client.post(f"{sim.url('fal')}/{T2V}", json=body, headers=FAL_AUTH).json()
    fal_wait(client, answer["status_url"])
    video = client.get(answer["response_url"], headers=FAL_AUTH).json()["video"]
    return client.get(video["url"]).content


def test_identical_generations_render_once_and_serve_the_same_bytes(sim, client):
    first = fal_clip(client, sim, BODY)
    second = fal_clip(client, sim, BODY)
    assert sim.backend.renders == 1
    assert first == second and len(first) > 1000
    assert len(sim.generations("fal")) == 2  # two generations, both billed
    assert sim.billed("fal") == 2 * Decimal("0.560")


def test_generations_that_differ_render_apart(sim, client):
    first = fal_clip(client, sim, BODY)
    other = fal_clip(client, sim, BODY | {"prompt": "A different harbour at night"})
    longer = fal_clip(client, sim, BODY | {"duration": "10"})
    assert sim.backend.renders == 3
    assert len({first, other, longer}) == 3


def test_stats_count_requests_by_provider_and_kind(sim, client):
    task = video_task()
    assert runware(client, sim, [task]).status_code == 200
    poll_runware(client, sim, task["taskUUID"])
    stats = client.get(sim.base_url + "/_sim/stats").json()
    entry = stats["providers"]["runware"]
    assert entry["requests"]["submit"] == 1 and entry["requests"]["poll"] >= 1
    assert entry["total"] == sum(entry["requests"].values())
    assert entry["generations"] == 1
    assert Decimal(entry["billed_usd"]) == sim.billed("runware") > 0
    assert stats["requests"] == entry["total"]  # the stats page itself is not counted
    assert client.get(sim.base_url + "/_sim/stats").json()["requests"] == entry["total"]
    line = next(x for x in stats_lines(stats) if x.strip().startswith("runware"))
    assert f"generations 1, billed ${entry['billed_usd']}" in line


def test_simulate_prints_what_it_was_asked_and_billed_when_stopped(tmp_path):
    command = [sys.executable, "-m", "kling_compose", "simulate", "--task-seconds", "0.05",
               "--key", f"runware={KEYS['runware']}"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    try:
        base = proc.stdout.readline().split(" at ", 1)[1].strip()
        sim = _At(base)
        with httpx.Client(timeout=10) as client:
            task = video_task()
            runware(client, sim, [task])
            poll_runware(client, sim, task["taskUUID"])
            runware(client, sim, [video_task(positivePrompt="another")])  # never polled
            counts = client.get(base + "/_sim/stats").json()["providers"]["runware"]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert counts["requests"]["submit"] == 2 and counts["generations"] == 2
    assert proc.returncode == 0, err
    tail = out[out.index("simulator stopped"):]
    assert f"requests: {counts['total']}" in tail
    runware_line = next(line for line in tail.splitlines() if line.strip().startswith("runware"))
    assert "submit 2" in runware_line and "generations 2" in runware_line
    assert f"billed ${counts['billed_usd']}" in runware_line


def test_a_stopped_simulator_stops_rendering_ahead(client):
    sim = Simulator(keys=KEYS, faults=Faults(task_seconds=60)).start()  # never due
    for n in range(3):
        runware(client, sim, [video_task(positivePrompt=f"boat {n}")])
    sim.stop()  # waits for a clip being rendered, drops the others
    assert sim.backend._renderer is None and not sim.backend.root.exists()
    assert sim.backend.renders <= 3


class _At:
    """What kit's helpers need of a simulator: its URLs, for one started elsewhere."""

    def __init__(self, base: str) -> None:
        self.base_url = base

    def url(self, provider: str) -> str:
        return self.base_url + {"runware": "/runware/v1"}[provider]


def test_stats_are_json_with_every_figure_a_string_or_number(sim, client):
    fal_clip(client, sim, BODY)
    stats = json.loads(client.get(sim.base_url + "/_sim/stats").text)
    assert stats["renders"] == 1 and stats["render_s"] > 0
    assert set(stats["providers"]) == {"fal"}  # its clip's download counts as fal's
    assert stats["providers"]["fal"]["requests"]["download"] == 1


def test_simulate_started_with_sigint_ignored_still_stops_on_sigint():
    """A shell starts a background job (`kling-compose simulate &`) with SIGINT ignored, and
    Python keeps it ignored: the simulator installs its own handler, so `kill -INT` stops it."""
    command = [sys.executable, "-m", "kling_compose", "simulate", "--task-seconds", "0.05"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ | {"PYTHONUNBUFFERED": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        assert " at http://127.0.0.1:" in proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "simulator stopped" in out
