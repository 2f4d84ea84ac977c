"""Fault injection: 429s, 5xx, connection resets, slow tasks and failed generations."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime

import httpx
import pytest

from kling_compose.simulator import Faults

from .kit import (
    FAL_AUTH,
    T2V,
    fal_wait,
    new_uuid,
    poll_runware,
    runware,
    task_create,
    task_wait,
    video_task,
)


def test_rate_limit_with_retry_after_seconds_then_normal_service(sim, client, faults):
    faults.rate_limit(2, retry_after=3, provider="runware")
    task = video_task()
    for _ in range(2):
        answer = runware(client, sim, [task])
        assert answer.status_code == 429
        assert answer.headers["retry-after"] == "3"
        assert answer.json()["errors"][0]["code"] == "rateLimitExceeded"
    assert sim.generations() == []
    assert runware(client, sim, [task]).status_code == 200
    assert len(sim.requests("runware", "submit")) == 3


def test_rate_limit_with_an_http_date_and_without_retry_after(sim, client, faults):
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    faults.rate_limit(1, retry_after=when, provider="fal").rate_limit(1, provider="fal")
    first = client.post(f"{sim.url('fal')}/{T2V}", json={"prompt": "x"}, headers=FAL_AUTH)
    assert first.status_code == 429
    assert parsedate_to_datetime(first.headers["retry-after"]) == when
    second = client.post(f"{sim.url('fal')}/{T2V}", json={"prompt": "x"}, headers=FAL_AUTH)
    assert second.status_code == 429 and "retry-after" not in second.headers


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_for_the_next_n_requests(sim, client, faults, status):
    faults.error(2, status=status)
    task = video_task()
    assert [runware(client, sim, [task]).status_code for _ in range(3)] == [status, status, 200]


def test_fal_503_is_an_infrastructure_error_with_its_type(sim, client, faults):
    faults.error(1, status=503, provider="fal")
    answer = client.post(f"{sim.url('fal')}/{T2V}", json={"prompt": "x"}, headers=FAL_AUTH)
    assert answer.status_code == 503
    assert answer.json() == {"detail": "Runner disconnected", "error_type": "runner_disconnected"}
    assert answer.headers["x-fal-error-type"] == "runner_disconnected"
    assert "x-fal-request-id" not in answer.headers


@pytest.mark.parametrize(("code", "http"), [(455, 503), (429, 429), (500, 500), (402, 402)])
def test_task_api_error_codes_travel_in_the_body(sim, client, faults, code, http):
    faults.error(1, status=code, provider="kling-v3-task")
    answer = task_create(client, sim, {"prompt": "p", "multi_shots": False})
    assert answer.status_code == http and answer.json()["code"] == code


def test_task_api_error_code_with_http_200(sim, client, faults):
    faults.error(1, status=455, provider="kling-v3-task", http_status=200)
    answer = task_create(client, sim, {"prompt": "p", "multi_shots": False})
    assert answer.status_code == 200 and answer.json()["code"] == 455


def test_faults_are_scoped_by_provider_and_kind(sim, client, faults):
    faults.error(1, status=500, provider="runware", kind="poll")
    task = video_task()
    assert runware(client, sim, [task]).status_code == 200  # a submit: not matched
    assert (
        client.post(f"{sim.url('fal')}/{T2V}", json={"prompt": "x"}, headers=FAL_AUTH).status_code
        == 200
    )
    poll = [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}]
    assert runware(client, sim, poll).status_code == 500
    assert runware(client, sim, poll).status_code == 200


def test_download_faults(sim, client, faults):
    task = video_task()
    runware(client, sim, [task])
    url = poll_runware(client, sim, task["taskUUID"])["data"][0]["videoURL"]
    faults.error(1, status=503, kind="download")
    assert client.get(url).status_code == 503
    assert client.get(url).status_code == 200
    faults.reset(1, kind="download")
    with pytest.raises(httpx.TransportError):
        client.get(url)
    assert client.get(url).status_code == 200
    assert [r.kind for r in sim.requests("runware")][-4:] == ["download"] * 4


def test_upload_faults(sim, client, faults, png):
    faults.rate_limit(1, provider="fal", kind="upload")
    url = f"{sim.url('fal-rest')}/storage/auth/token?storage_type=fal-cdn-v3"
    assert client.post(url, json={}, headers=FAL_AUTH).status_code == 429
    assert client.post(url, json={}, headers=FAL_AUTH).status_code == 200


def test_a_reset_closes_the_connection_without_an_answer(sim, client, faults):
    faults.reset(1, provider="runware", kind="submit")
    task = video_task()
    with pytest.raises(httpx.TransportError):
        runware(client, sim, [task])
    assert sim.generations() == []  # dropped before processing
    assert runware(client, sim, [task]).status_code == 200


def test_a_reset_after_processing_loses_only_the_ack_and_a_resubmit_is_billed_again(sim, client,
                                                                                   faults):
    """The stricter reading (issue 21 item 11): Runware's REST API documents no
    `conflictTaskUUID`, so the simulator bills a repeated taskUUID as a new generation; only
    asking `getResponse` before sending again keeps a lost acknowledgement from paying twice."""
    faults.reset(1, provider="runware", kind="submit", after_processing=True)
    task = video_task(includeCost=True)
    with pytest.raises(httpx.TransportError):
        runware(client, sim, [task])
    assert len(sim.generations("runware")) == 1  # queued although the client heard nothing
    again = runware(client, sim, [task])
    assert again.status_code == 200 and "errors" not in again.json()
    assert len(sim.generations("runware")) == 2
    poll_runware(client, sim, task["taskUUID"])
    assert sim.billed("runware") == Decimal("0.672")  # paid twice: what the engine must avoid


def test_slow_tasks_stay_processing_until_their_time(sim, client, faults):
    faults.task_seconds = 0.6
    task = video_task()
    started = time.monotonic()
    runware(client, sim, [task])
    poll = [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}]
    assert runware(client, sim, poll).json()["data"][0]["status"] == "processing"
    poll_runware(client, sim, task["taskUUID"])
    assert time.monotonic() - started >= 0.6


def test_a_failed_generation_on_runware(sim, client, faults):
    faults.fail_generation("dragon", "content flagged by the provider")
    task = video_task(positivePrompt="A dragon burns the city")
    assert runware(client, sim, [task]).status_code == 200  # accepted: it fails later
    body = poll_runware(client, sim, task["taskUUID"])
    (item,) = body["data"]
    assert item["status"] == "error"
    assert item["error"] == {
        "code": "providerContentPolicyViolation",
        "message": "content flagged by the provider",
    }
    assert body["errors"][0]["taskUUID"] == task["taskUUID"]
    assert sim.billed("runware") == 0


def test_a_failed_generation_on_fal(sim, client, faults):
    faults.fail_generation("dragon", "flagged", code="content_policy_violation", provider="fal")
    body = client.post(
        f"{sim.url('fal')}/{T2V}", json={"prompt": "a dragon"}, headers=FAL_AUTH
    ).json()
    final = fal_wait(client, body["status_url"])[-1]
    assert final.status_code == 200
    assert (final.json()["error"], final.json()["error_type"]) == (
        "flagged",
        "content_policy_violation",
    )
    result = client.get(body["response_url"], headers=FAL_AUTH)
    assert result.status_code == 422
    assert result.json()["detail"][0]["type"] == "content_policy_violation"


def test_a_failure_scoped_to_one_provider_spares_the_others(sim, client, faults):
    faults.fail_generation("dragon", provider="fal")
    task = video_task(positivePrompt="A dragon sleeps")
    runware(client, sim, [task])
    assert poll_runware(client, sim, task["taskUUID"])["data"][0]["status"] == "success"
    task_id = task_create(client, sim, {"prompt": "a dragon", "multi_shots": False}).json()["data"][
        "taskId"
    ]
    assert task_wait(client, sim, task_id)[-1]["state"] == "success"


def test_fault_specs_parse_from_text(sim, client):
    faults = Faults.parse(
        [
            "429:2,provider=runware,retry_after=1.5",
            "503,kind=poll",
            "reset:1,kind=submit,after_processing=1",
            "fail=boom,message=it blew up",
        ],
        task_seconds=0.3,
    )
    assert faults.task_seconds == 0.3
    first = faults.take("runware", "submit")
    assert (first.status, first.retry_after, first.remaining) == (429, "1.5", 1)
    assert faults.take("fal", "poll").status == 503
    reset = faults.take("fal", "submit")
    assert reset.kind == "reset" and reset.after_processing
    assert faults.failure_for("fal", "big boom").message == "it blew up"
    with pytest.raises(ValueError, match="unknown fault option"):
        Faults.parse(["429,colour=red"])
    with pytest.raises(ValueError, match="unknown provider"):
        Faults().error(provider="klingai")


def test_an_unused_task_uuid_is_still_new_after_faults(sim, client, faults):
    faults.error(1, status=500)
    assert (
        runware(client, sim, [{"taskType": "getResponse", "taskUUID": new_uuid()}]).status_code
        == 500
    )
