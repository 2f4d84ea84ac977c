"""The engine against Runware's protocol, through httpx.MockTransport and an instant sleep."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import httpx
import pytest
from support.projects import chain_storyboard, make_project

from kling_compose import RunOptions, build_plan, load_storyboard, run_plan
from kling_compose.media.animatic import AnimaticSpec, render_animatic
from kling_compose.settings import Secret, Settings

KEY = "rw-secret-key-123"
BASE = "https://runware.test/v1"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    render_animatic(AnimaticSpec(duration_s=3, width=160, height=90, title="t", audio=True), path)
    return path.read_bytes()


class FakeRunware:
    """Just enough of Runware's REST protocol: submit, getResponse, downloads."""

    def __init__(self, clip: bytes) -> None:
        self.clip = clip
        self.tasks: dict[str, dict] = {}
        self.submits: list[dict] = []
        self.polls = 0
        self.faults: list = []  # queue of callables(request) -> Response | None
        self.fail_prompts: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.faults:
            fault = self.faults.pop(0)
            answer = fault(request) if fault is not None else None
            if answer is not None:
                return answer
        return self.handle(request)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, content=self.clip,
                                  headers={"content-length": str(len(self.clip))})
        assert request.headers["authorization"] == f"Bearer {KEY}"
        (task,) = json.loads(request.content)
        if task["taskType"] == "getResponse":
            self.polls += 1
            if task["taskUUID"] not in self.tasks:  # as Runware answers an unknown taskUUID
                return httpx.Response(400, json={"errors": [{
                    "code": "taskNotFound", "message": "no such task",
                    "taskUUID": task["taskUUID"], "taskType": "getResponse"}]})
            body = self.tasks[task["taskUUID"]]
            if any(p in body.get("positivePrompt", "") for p in self.fail_prompts):
                return httpx.Response(200, json={"data": [{"taskUUID": task["taskUUID"],
                                      "status": "error", "error": {"code": "inferenceError",
                                      "message": "the model could not render this"}}]})
            items = [{"taskType": "videoInference", "taskUUID": task["taskUUID"],
                      "status": "success", "videoUUID": str(uuid.uuid4()),
                      "videoURL": f"https://vm.runware.test/{task['taskUUID']}-{n}.mp4",
                      "seed": 1000 + n, "cost": 0.336}
                     for n in range(body.get("numberResults", 1))]
            return httpx.Response(200, json={"data": items})
        self.submits.append(task)
        if task["taskUUID"] in self.tasks:
            return httpx.Response(400, json={"errors": [{"code": "conflictTaskUUID",
                                  "message": "taskUUID already used", "taskUUID": task["taskUUID"]}]})
        self.tasks[task["taskUUID"]] = task
        return httpx.Response(200, json={"data": [{"taskType": "videoInference",
                                                   "taskUUID": task["taskUUID"]}]})


def run(root: Path, fake: FakeRunware, **options):
    plan = build_plan(load_storyboard(root / "storyboard.yaml"), "runware")
    settings = Settings(keys={"runware": Secret(KEY)}, urls={"runware": BASE}, retries=4)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    result = run_plan(plan, RunOptions(**options), None, settings,
                      httpx.MockTransport(fake), sleep)
    return result, sleeps


def statuses(result) -> dict[str, str]:
    return {o.task.id: o.status for o in result.outcomes}


def test_a_chain_runs_remotely_with_inline_frames_and_exact_bodies(tmp_path, clip):
    root = make_project(tmp_path, chain_storyboard(2))
    fake = FakeRunware(clip)
    result, _ = run(root, fake)
    assert result.ok, [(o.task.id, o.error) for o in result.outcomes]
    first, second = fake.submits
    assert list(first)[:2] == ["taskType", "taskUUID"]
    assert first["deliveryMethod"] == "async" and first["includeCost"] is True
    assert first["inputs"]["frameImages"][0]["image"].startswith("data:image/png;base64,")
    chained = second["inputs"]["frameImages"][0]["image"]
    assert chained.startswith("data:image/png;base64,") and chained != first["inputs"]["frameImages"][0]["image"]
    lock = json.loads((root / "storyboard.lock").read_text())
    entry = lock["shots"]["s1"]
    assert entry["task_id"] == first["taskUUID"] and entry["cost_usd"] == "0.336"
    assert entry["result_url"] == [f"https://vm.runware.test/{first['taskUUID']}-0.mp4"]
    assert (root / "renders" / "chain.mp4").is_file()
    again, _ = run(root, fake)
    assert len(fake.submits) == 2 and again.count("cached", "generate") == 2


def test_the_task_id_is_committed_before_sending_and_a_lost_answer_is_not_paid_twice(tmp_path, clip):
    root = make_project(tmp_path, chain_storyboard(1))
    fake = FakeRunware(clip)
    seen = {}

    def crash_after_receiving(request):
        if request.method == "POST" and json.loads(request.content)[0]["taskType"] == "videoInference":
            db = sqlite3.connect(root / ".kling-compose" / "state.db")
            seen["ledger"] = db.execute("SELECT provider_task_id, phase FROM tasks WHERE "
                                        "task_id='generate:s1'").fetchone()
            db.close()
            fake.handle(request)  # the provider accepts it ...
            raise httpx.ReadTimeout("answer lost", request=request)  # ... the answer is lost
        return None

    fake.faults = [crash_after_receiving] * 4  # every submission of this run loses its answer
    result, _ = run(root, fake)
    task_uuid = seen["ledger"][0]
    assert seen["ledger"] == (task_uuid, "submitting")
    # the lost answer is followed by getResponse for the same id, which finds the task: it is
    # polled and downloaded, never sent a second time
    assert result.ok and len(fake.tasks) == 1
    assert [s["taskUUID"] for s in fake.submits] == [task_uuid]


def test_a_submitted_task_is_polled_after_a_crash_not_submitted_again(tmp_path, clip):
    root = make_project(tmp_path, chain_storyboard(1))
    fake = FakeRunware(clip)
    fake.faults = [None, lambda r: httpx.Response(401, json={"errors": [{"code": "invalidApiKey",
                                                   "message": "Invalid API key"}]})]
    result, _ = run(root, fake)  # accepted, then the poll is refused
    assert statuses(result)["generate:s1"] == "failed"
    assert "invalidApiKey" in result.outcomes[1].error or "API key" in result.outcomes[1].error
    result, _ = run(root, fake)
    assert result.ok and len(fake.submits) == 1 and len(fake.tasks) == 1


def test_rate_limits_and_server_errors_are_retried_with_retry_after(tmp_path, clip):
    root = make_project(tmp_path, chain_storyboard(1))
    fake = FakeRunware(clip)
    fake.faults = [lambda r: httpx.Response(429, headers={"retry-after": "7"}),
                   lambda r: httpx.Response(503, text="upstream busy"),
                   lambda r: (_ for _ in ()).throw(httpx.ConnectError("reset", request=r))]
    result, sleeps = run(root, fake)
    assert result.ok
    assert 7.0 in sleeps and len(fake.tasks) == 1


def test_a_failed_generation_skips_its_chain_and_a_rerun_pays_anew(tmp_path, clip):
    root = make_project(tmp_path, chain_storyboard(2, {1: "please fail"}))
    fake = FakeRunware(clip)
    fake.fail_prompts = {"please fail"}
    result, _ = run(root, fake)
    status = statuses(result)
    assert status["generate:s1"] == "failed" and status["generate:s2"] == "skipped"
    assert "the model could not render this" in result.outcomes[1].error
    fake.fail_prompts = set()
    result, _ = run(root, fake)
    assert result.ok and len(fake.tasks) == 3  # the failed one, its new try, and s2


def test_takes_are_all_downloaded_and_the_reported_cost_is_recorded(tmp_path, clip):
    root = make_project(tmp_path, chain_storyboard(1).replace("  duration: 3\n",
                                                              "  duration: 3\n  takes: 2\n"))
    fake = FakeRunware(clip)
    result, _ = run(root, fake)
    assert result.ok and fake.submits[0]["numberResults"] == 2
    generate = next(o for o in result.outcomes if o.task.id == "generate:s1")
    assert len(generate.record.artifacts) == 2 and str(generate.cost_usd) == "0.672"


def test_the_api_key_is_never_written_anywhere(tmp_path, clip):
    root = make_project(tmp_path, chain_storyboard(2))
    fake = FakeRunware(clip)
    fake.fail_prompts = {"shot number 2"}
    run(root, fake)
    for path in root.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in repr(Settings(keys={"runware": Secret(KEY)}))
