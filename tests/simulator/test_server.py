"""The simulator server: URL layout, lifecycle, request records, files and `serve`."""

from __future__ import annotations

import re
import threading

import httpx
import pytest

from kling_compose.simulator import Simulator, serve

from .kit import KEYS, RUNWARE_AUTH, runware, video_task


def test_url_layout(sim):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sim.base_url)
    assert sim.url("runware") == sim.base_url + "/runware/v1"
    assert sim.url("fal") == sim.base_url + "/fal"
    assert sim.url("fal-rest") == sim.base_url + "/fal-rest"
    assert sim.url("kling-v3-task") == sim.base_url + "/kling-v3-task"
    assert sim.url("kling") == sim.base_url + "/kling"
    with pytest.raises(KeyError):
        sim.url("klingai")


def test_env_points_a_client_at_the_simulator(sim):
    env = sim.env()
    assert env["KLING_COMPOSE_RUNWARE_URL"] == sim.url("runware")
    assert env["KLING_COMPOSE_FAL_URL"] == sim.url("fal")
    assert env["KLING_COMPOSE_FAL_REST_URL"] == sim.url("fal-rest")
    assert env["KLING_COMPOSE_KLING_V3_TASK_URL"] == sim.url("kling-v3-task")
    assert env["RUNWARE_API_KEY"] == KEYS["runware"]
    assert env["KLING_V3_TASK_API_KEY"] == KEYS["kling-v3-task"]


def test_without_keys_any_non_empty_key_is_accepted(client):
    with Simulator() as sim:
        assert (
            runware(
                client, sim, [video_task()], headers={"Authorization": "Bearer anything"}
            ).status_code
            == 200
        )
        assert runware(client, sim, [video_task()], headers={}).status_code == 401


def test_start_and_stop_free_the_port(client):
    sim = Simulator(keys=KEYS).start()
    url = sim.url("runware")
    assert runware(client, sim, [video_task()]).status_code == 200
    sim.stop()
    with pytest.raises(httpx.ConnectError):
        client.post(url, json=[], headers=RUNWARE_AUTH)


def test_unknown_paths_and_files_are_404(sim, client):
    assert client.get(sim.base_url + "/nothing").status_code == 404
    assert client.get(sim.base_url + "/files/missing.mp4").status_code == 404
    assert client.get(sim.url("kling-v3-task") + "/api/v1/jobs/deleteTask").status_code == 404


def test_requests_are_recorded_per_provider_with_secrets_masked(sim, client):
    runware(client, sim, [video_task()])
    client.post(
        sim.url("fal") + "/fal-ai/kling-video/v3/pro/text-to-video",
        json={"prompt": "x"},
        headers={"Authorization": "Key fal-id:fal-secret"},
    )
    client.get(
        sim.url("kling-v3-task") + "/api/v1/jobs/recordInfo?taskId=x", headers={"x-api-key": "k"}
    )
    assert [r.provider for r in sim.requests()] == ["runware", "fal", "kling-v3-task"]
    assert sim.requests("fal")[0].headers["authorization"] == "Key ***"
    assert sim.requests("kling-v3-task")[0].headers["x-api-key"] == "***"
    assert sim.requests("kling-v3-task")[0].query == {"taskId": "x"}
    assert "fal-secret" not in repr(sim.requests())


def test_serve_prints_the_urls_and_env_lines_and_stops():
    lines: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(
        target=serve, kwargs={"keys": KEYS, "echo": lines.append, "stop": stop}
    )
    thread.start()
    try:
        for _ in range(100):
            if any(line.startswith("export KLING_COMPOSE_KLING_V3_TASK_URL=") for line in lines):
                break
            threading.Event().wait(0.02)
        url = next(
            line.split("=", 1)[1]
            for line in lines
            if line.startswith("export KLING_COMPOSE_RUNWARE_URL=")
        )
        answer = httpx.post(url, json=[video_task()], headers=RUNWARE_AUTH)
        assert answer.status_code == 200
    finally:
        stop.set()
        thread.join(5)
    # `export` lines: pasted into a shell, they reach kling-compose, a child process
    assert any(line.startswith("export KLING_COMPOSE_FAL_URL=http://127.0.0.1:") for line in lines)
    assert f"export RUNWARE_API_KEY={KEYS['runware']}" in lines
