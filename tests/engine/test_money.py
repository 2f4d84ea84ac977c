"""Money-safety of the engine (issue 8), through httpx.MockTransport and virtual time:
final poll errors, lost submissions looked up before re-sending, batched polls, the budget
during a run, credentials on redirects, deadlines and verified downloads."""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from test_remote import KEY, FakeRunware, chain_storyboard, clip, make_project, run, statuses  # noqa: F401

from kling_compose import build_plan, load_storyboard
from kling_compose.engine.remote import Budget, BudgetExceeded, Clock, Remote
from kling_compose.project.decide import read_statuses
from kling_compose.project.state import State, state_path
from kling_compose.project.store import Store
from kling_compose.errors import UserError
from kling_compose.providers import PROVIDERS
from kling_compose.providers.base import ProviderError
from kling_compose.settings import Secret, Settings


class BatchRunware(FakeRunware):
    """FakeRunware that answers every task of an array (batched getResponse), knows which
    tasks exist (taskNotFound otherwise) and can bill more than the estimate."""

    def __init__(self, clip: bytes, cost: float = 0.336, polls_until_done: int = 1) -> None:
        super().__init__(clip)
        self.cost = cost
        self.polls_until_done = polls_until_done
        self.poll_requests: list[list[str]] = []
        self.seen: dict[str, int] = {}

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, content=self.clip)
        assert request.headers["authorization"] == f"Bearer {KEY}"
        tasks = json.loads(request.content)
        if tasks[0]["taskType"] != "getResponse":
            return super().handle(request)
        self.poll_requests.append([t["taskUUID"] for t in tasks])
        data, errors = [], []
        for task in tasks:
            task_uuid = task["taskUUID"]
            if task_uuid not in self.tasks:
                errors.append({"code": "taskNotFound", "message": "no such task",
                               "taskUUID": task_uuid, "taskType": "getResponse"})
                continue
            self.seen[task_uuid] = self.seen.get(task_uuid, 0) + 1
            if self.seen[task_uuid] < self.polls_until_done:
                data.append({"taskUUID": task_uuid, "status": "processing"})
                continue
            data.append({"taskType": "videoInference", "taskUUID": task_uuid,
                         "status": "success", "videoUUID": str(uuid.uuid4()),
                         "videoURL": f"https://vm.runware.test/{task_uuid}.mp4", "seed": 7,
                         "cost": self.cost})
        body = {"data": data} if data else {}
        if errors:
            body["errors"] = errors
        return httpx.Response(200 if data else 400, json=body)


def independent_storyboard(n: int) -> str:
    lines = ["version: 1", "name: many", "defaults:", "  duration: 3", "  aspect: '16:9'",
             "scenes:", "  - id: main", "    shots:"]
    for i in range(1, n + 1):
        lines += [f"      - id: s{i}", f"        prompt: shot number {i}"]
    return "\n".join(lines) + "\n"


# -- Runware: an errors[] entry is the task's final answer ---------------------------------


def test_a_poll_error_entry_is_final_and_the_next_run_submits_anew(tmp_path, clip):
    root = make_project(tmp_path, chain_storyboard(1))
    fake = BatchRunware(clip)

    def refuse_poll(request):
        (task,) = json.loads(request.content)
        if task["taskType"] != "getResponse":
            return None
        return httpx.Response(400, json={"errors": [{
            "code": "providerContentModeration", "message": "flagged by the provider",
            "taskUUID": task["taskUUID"]}]})

    fake.faults = [None, refuse_poll]
    result, _ = run(root, fake)
    assert statuses(result)["generate:s1"] == "failed"
    assert "providerContentModeration: flagged by the provider" in result.outcomes[1].error
    with _state(root) as state:
        record = state.get(result.outcomes[1].task.cache_key)
        assert (record.status, record.phase) == ("failed", "rejected")  # not polled forever
    result, _ = run(root, fake)
    assert result.ok and len(fake.tasks) == 2  # the next run generated it anew, once


def test_task_not_found_after_a_lost_submission_sends_the_same_uuid_again(tmp_path, clip):
    root = make_project(tmp_path, chain_storyboard(1))
    fake = BatchRunware(clip)
    log: list[tuple[str, str]] = []

    def lose(request):  # the request never reached the provider, the client cannot tell
        (task,) = json.loads(request.content)
        log.append((task["taskType"], task["taskUUID"]))
        if task["taskType"] == "videoInference":
            raise httpx.ReadTimeout("answer lost", request=request)
        return None

    fake.faults = [lose] * 9  # every attempt of the first run (5 sends, 4 questions between)
    result, _ = run(root, fake)
    assert statuses(result)["generate:s1"] == "failed" and fake.tasks == {}
    (task_uuid,) = {uuid_ for _, uuid_ in log}
    # issue 21 item 11: the same taskUUID is never sent again before getResponse proves that
    # Runware does not know it (a provider that bills a repeated UUID would bill each send)
    kinds = [kind for kind, _ in log]
    sends = kinds.count("videoInference")
    assert sends >= 2 and kinds == ["videoInference", "getResponse"] * (sends - 1) + [
        "videoInference"]
    fake.poll_requests.clear()
    result, _ = run(root, fake)
    assert result.ok and len(fake.tasks) == 1
    assert fake.poll_requests[0] == [task_uuid]  # asked first ...
    assert [s["taskUUID"] for s in fake.submits] == [task_uuid]  # ... then the same UUID


def test_a_repeated_task_uuid_is_never_billed_twice_when_acknowledgements_are_lost(tmp_path,
                                                                                  clip):
    """Issue 21 item 11: a server that bills every POST of a taskUUID (its REST API does not
    document `conflictTaskUUID`) and loses the first acknowledgements bills each shot once."""
    root = make_project(tmp_path, independent_storyboard(6))
    fake = BatchRunware(clip)
    billed: list[str] = []
    lost = {"left": 4}

    def bill_then_lose(request):
        if request.method != "POST":
            return None
        (task, *_) = json.loads(request.content)
        if task["taskType"] != "videoInference":
            return None
        billed.append(task["taskUUID"])  # billed whether or not the answer arrives
        answer = fake.handle(request)
        if lost["left"] > 0:
            lost["left"] -= 1
            raise httpx.RemoteProtocolError("connection closed", request=request)
        return answer

    fake.faults = [bill_then_lose] * 200
    result, _ = run(root, fake)
    assert result.ok
    assert len(billed) == 6 and len(set(billed)) == 6  # one bill per shot


def test_a_lost_submission_that_was_accepted_is_polled_not_sent_again(tmp_path, clip):
    root = make_project(tmp_path, chain_storyboard(1))
    fake = BatchRunware(clip)

    def accept_then_lose(request):
        if request.method == "POST" and json.loads(request.content)[0]["taskType"] == \
                "videoInference":
            fake.handle(request)
            raise httpx.RemoteProtocolError("connection closed", request=request)
        return None

    fake.faults = [accept_then_lose] * 5
    run(root, fake)
    submits = len(fake.submits)
    result, _ = run(root, fake)
    assert result.ok and len(fake.tasks) == 1 and len(fake.submits) == submits


# -- batched polling ------------------------------------------------------------------------


def test_runware_tasks_are_polled_together(tmp_path, clip):
    root = make_project(tmp_path, independent_storyboard(6))
    fake = BatchRunware(clip, polls_until_done=4)
    result, _ = run(root, fake, concurrency=6)
    assert result.ok
    assert max(len(p) for p in fake.poll_requests) == 6
    assert len(fake.poll_requests) <= 5  # 6 tasks x 4 polls each, in a handful of requests


def test_polling_starts_near_the_time_earlier_generations_took(tmp_path, clip):
    root = make_project(tmp_path, independent_storyboard(1))
    with _state(root) as state:
        for _ in range(3):
            state.record_timing("runware", "kling-3-pro", 120.0)
    fake = BatchRunware(clip)
    _, sleeps = run(root, fake)
    assert sleeps[0] == pytest.approx(108.0)  # 90 % of the median, then densely


# -- the budget holds during the run --------------------------------------------------------


def test_max_cost_stops_new_submissions_when_reported_costs_pass_the_estimate(tmp_path, clip):
    root = make_project(tmp_path, chain_storyboard(2))
    fake = BatchRunware(clip, cost=1.0)  # estimated 0.336 each, billed 1.00
    result, _ = run(root, fake, max_cost_usd=Decimal("1.2"))
    status = statuses(result)
    assert status["generate:s1"] == "done" and status["generate:s2"] == "skipped"
    s2 = next(o for o in result.outcomes if o.task.id == "generate:s2")
    assert "--max-cost $1.200 would be passed" in s2.error
    assert len(fake.tasks) == 1
    result, _ = run(root, fake, max_cost_usd=Decimal("5"))  # resumable: s1 stays paid
    assert result.ok and len(fake.tasks) == 2
    assert statuses(result)["generate:s1"] == "cached"


def test_budget_counts_spent_in_flight_and_next():
    budget = Budget(Decimal("1.0"))
    budget.reserve("a", Decimal("0.4"))
    budget.reserve("b", Decimal("0.4"))
    with pytest.raises(BudgetExceeded):
        budget.reserve("c", Decimal("0.4"))
    budget.settle("a", Decimal("0.1"))  # billed less than estimated: room again
    budget.reserve("c", Decimal("0.4"))
    assert budget.spent == Decimal("0.1") and set(budget.in_flight) == {"b", "c"}


# -- credentials never cross origins ---------------------------------------------------------


@pytest.mark.parametrize("provider, header", [("runware", "authorization"),
                                              ("fal", "authorization"),
                                              ("kling-v3-task", "x-api-key"),
                                              ("kie", "authorization")])
def test_no_credential_header_follows_a_redirect_to_another_origin(tmp_path, provider, header):
    seen = {}

    def transport(request: httpx.Request) -> httpx.Response:
        if request.url.host == "api.example.test" and request.url.path.startswith("/hop"):
            return httpx.Response(307, headers={"location": "https://elsewhere.test/land"})
        if request.url.host == "api.example.test":
            return httpx.Response(307, headers={"location": "/hop"})  # same origin first
        seen[request.url.host] = dict(request.headers)
        return httpx.Response(200, json={})

    job = build_plan(load_storyboard(_project(tmp_path)), provider).tasks["generate:s1"].job
    secret = "sekrit-" + provider
    request = PROVIDERS[provider].submit_request(job, job.request, "id-1",
                                                 "https://api.example.test", Secret(secret))
    assert secret in str(request.headers.get(header))
    remote = _remote(tmp_path, transport)
    asyncio.run(_send(remote, request))
    landed = seen["elsewhere.test"]
    assert not any(secret in v for v in landed.values()), landed
    assert header not in landed


@pytest.mark.parametrize("url", ["https://attacker.test/status", "http://api.example.test/s",
                                 "https://api.example.test:8443/s"])
def test_a_credential_goes_only_to_a_configured_provider_host(tmp_path, url):
    """Issue 22: a fal status_url planted in the shared store sent `Authorization: Key
    <FAL_KEY>` to the planter's server on every poll. A request carrying a key to an origin no
    setting names is refused before anything is sent; without a key it may go anywhere (a
    result URL on a provider's CDN)."""
    seen = []

    def transport(request):
        seen.append(request.url)
        return httpx.Response(200, json={})

    remote = _remote(tmp_path, transport)
    keyed = httpx.Request("GET", url, headers={"Authorization": "Key fal-secret"})
    with pytest.raises(ProviderError, match="refused to send a provider key to"):
        asyncio.run(_send(remote, keyed))
    assert seen == []
    remote = _remote(tmp_path, transport)
    asyncio.run(_send(remote, httpx.Request("GET", url)))  # no credential: a download
    assert len(seen) == 1


def test_a_redirect_keeps_the_requests_extensions(tmp_path):
    """Issue 23: `_redirected` dropped `request.extensions`, so a refusal after a redirect no
    longer named the shot's file:line (kling puts it there)."""
    seen = {}

    def transport(request):
        if request.url.path == "/first":
            return httpx.Response(307, headers={"location": "/second"})
        seen.update(request.extensions)
        return httpx.Response(200, json={})

    remote = _remote(tmp_path, transport)
    request = httpx.Request("GET", "https://api.example.test/first",
                            extensions={"kling_compose_where": "storyboard.yaml:7:9"})
    asyncio.run(_send(remote, request))
    assert seen.get("kling_compose_where") == "storyboard.yaml:7:9"


def test_a_same_origin_redirect_keeps_the_credential(tmp_path):
    seen = {}

    def transport(request):
        if request.url.path == "/first":
            return httpx.Response(308, headers={"location": "/second"})
        seen.update(request.headers)
        return httpx.Response(200, json={})

    remote = _remote(tmp_path, transport)
    request = httpx.Request("POST", "https://api.example.test/first", json=[1],
                            headers={"Authorization": "Bearer k"})
    asyncio.run(_send(remote, request))
    assert seen["authorization"] == "Bearer k" and seen["content-length"] == "3"


# -- deadlines and verified downloads -----------------------------------------------------


def test_a_download_that_drips_forever_ends_at_its_deadline(tmp_path):
    async def drip():
        while True:
            yield b"x"
            await asyncio.sleep(0.05)

    def transport(request):
        return httpx.Response(200, stream=_Stream(drip()))

    remote = _remote(tmp_path, transport, download_timeout_s=0.3, retries=2)
    from kling_compose.engine.remote import RemoteError

    with pytest.raises(RemoteError, match="took longer than 0.3 s"):
        asyncio.run(_download(remote, "https://cdn.example.test/clip.mp4"))


def test_a_clip_cut_short_without_content_length_is_fetched_again(tmp_path, clip):
    answers = [clip[: len(clip) // 3], clip]

    def transport(request):
        return httpx.Response(200, stream=_Stream(_once(answers.pop(0))))

    from kling_compose.media.ffmpeg import verify_clip

    remote = _remote(tmp_path, transport, verify=verify_clip)
    digest = asyncio.run(_download(remote, "https://cdn.example.test/c.mp4", 3.0))
    assert answers == [] and remote.store.path(digest, ".mp4").read_bytes() == clip


def test_a_clip_of_the_wrong_duration_is_not_adopted(tmp_path, clip):
    from kling_compose.engine.remote import RemoteError
    from kling_compose.media.ffmpeg import verify_clip

    remote = _remote(tmp_path, lambda r: httpx.Response(200, content=clip), verify=verify_clip,
                     retries=2)
    with pytest.raises(RemoteError, match="lasts 3.000 s, not the 8 s asked for"):
        asyncio.run(_download(remote, "https://cdn.example.test/c.mp4", 8.0))
    assert not any(remote.store.objects.rglob("*.mp4"))


def test_a_damaged_store_object_is_planned_as_missing_and_fetched_again(tmp_path, clip):
    root = make_project(tmp_path, chain_storyboard(1))
    fake = BatchRunware(clip)
    result, _ = run(root, fake)
    assert result.ok
    record = next(o.record for o in result.outcomes if o.task.id == "generate:s1")
    digest, suffix = record.artifacts[0]
    object_path = Store(root / ".kling-compose").path(digest, suffix)
    object_path.write_bytes(object_path.read_bytes()[:1000])  # a broken disk, a bad copy
    plan = build_plan(load_storyboard(root / "storyboard.yaml"), "runware")
    assert read_statuses(plan)["generate:s1"] == "missing"
    result, _ = run(root, fake)
    # the lock names the take and its result URL: fetched again from there and verified
    assert result.ok and statuses(result)["generate:s1"] == "restored"
    assert len(fake.tasks) == 1  # not paid again
    assert object_path.read_bytes() == clip


# -- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "soon", "1e9"])
def test_a_poll_interval_out_of_range_is_refused_with_its_name(value):
    with pytest.raises(UserError, match=f"KLING_COMPOSE_POLL_SECONDS='{value}' is not a number"):
        Settings.from_environment({"KLING_COMPOSE_POLL_SECONDS": value})


@pytest.mark.parametrize("value", ["api.runware.ai", "ftp://x", "https://user:pw@host/v1"])
def test_a_base_url_must_be_an_http_url_without_credentials(value):
    with pytest.raises(UserError, match="KLING_COMPOSE_RUNWARE_URL"):
        Settings.from_environment({"KLING_COMPOSE_RUNWARE_URL": value})


def test_the_task_api_has_no_default_host():
    settings = Settings.from_environment({"KLING_V3_TASK_API_KEY": "k"})
    with pytest.raises(UserError) as caught:
        settings.check_provider("kling-v3-task")
    assert "kling-v3-task has no default host: set KLING_COMPOSE_KLING_V3_TASK_URL" in \
        str(caught.value)
    ok = Settings.from_environment({"KLING_V3_TASK_API_KEY": "k",
                                    "KLING_COMPOSE_KLING_V3_TASK_URL": "https://tasks.test/"})
    ok.check_provider("kling-v3-task")
    assert ok.url("kling-v3-task") == "https://tasks.test"


def test_each_fal_host_has_its_own_default_and_override():
    settings = Settings.from_environment({"KLING_COMPOSE_FAL_REST_URL": "http://127.0.0.1:9/r"})
    assert settings.url("fal") == "https://queue.fal.run"
    assert settings.url("fal-rest") == "http://127.0.0.1:9/r"
    assert settings.url("fal-cdn") == "https://v3.fal.media"
    assert math.isclose(Settings().poll_max_s, 5.0)


# -- helpers ------------------------------------------------------------------------------


class _Stream(httpx.AsyncByteStream):
    def __init__(self, chunks) -> None:
        self.chunks = chunks

    async def __aiter__(self):
        async for chunk in self.chunks:
            yield chunk


async def _once(data: bytes):
    yield data


def _state(root: Path):
    import contextlib

    @contextlib.contextmanager
    def opened():
        state = State(state_path(root))
        try:
            yield state
        finally:
            state.close()

    return opened()


def _project(tmp_path: Path) -> Path:
    root = make_project(tmp_path / "p", independent_storyboard(1))
    return root / "storyboard.yaml"


def _remote(tmp_path: Path, handler, verify=None, **settings) -> Remote:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    state = State(tmp_path / "state.db")

    async def instant(seconds):
        pass

    settings = {"urls": {"runware": "https://api.example.test"}} | settings  # the host it may key
    return Remote(client, Settings(**settings), state, Store(tmp_path / "store"),
                  Clock(instant), verify=verify)


async def _send(remote: Remote, request: httpx.Request) -> httpx.Response:
    async with remote.client:
        return await remote.send(request)


async def _download(remote: Remote, url: str, expected_s: float | None = None) -> str:
    async with remote.client:
        return await remote.download(url, ".mp4", expected_s)


def test_two_shots_asking_for_the_same_clip_are_paid_once(tmp_path, clip):
    twins = independent_storyboard(2).replace("shot number 2", "shot number 1")
    root = make_project(tmp_path, twins)
    fake = BatchRunware(clip, polls_until_done=2)
    result, _ = run(root, fake, concurrency=4)
    assert result.ok and len(fake.tasks) == 1
    assert sorted(statuses(result)[t] for t in ("generate:s1", "generate:s2")) == \
        ["cached", "done"]
