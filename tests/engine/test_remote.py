"""The engine against Runware's protocol, with an instant sleep: through the simulator in-process
(tests/conftest.py `run_in_process`: its transport, no socket, virtual time) where the
simulator's faults say what goes wrong, and through httpx.MockTransport and a hand-made fake
where a test must act in the middle of a request (the ledger read while a submission is in
flight) or raise an exception the simulator does not (a refused connection)."""

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
from support.locks import read_lock

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


# -- against the simulator, in-process -----------------------------------------------------------

def runware_plan(root: Path):
    return build_plan(load_storyboard(root / "storyboard.yaml"), "runware")


def submitted(sim) -> list[dict]:
    """The videoInference tasks the simulator received, in order."""
    return [r.body[0] for r in sim.requests("runware", "submit")]


def test_a_chain_runs_remotely_with_inline_frames_and_exact_bodies(tmp_path, run_in_process,
                                                                   sim_in_process):
    root = make_project(tmp_path, chain_storyboard(2))
    result = run_in_process(runware_plan(root))
    assert result.ok, [(o.task.id, o.error) for o in result.outcomes]
    first, second = submitted(sim_in_process)
    assert list(first)[:2] == ["taskType", "taskUUID"]
    assert first["deliveryMethod"] == "async" and first["includeCost"] is True
    assert first["inputs"]["frameImages"][0]["image"].startswith("data:image/png;base64,")
    chained = second["inputs"]["frameImages"][0]["image"]
    assert chained.startswith("data:image/png;base64,") and chained != first["inputs"]["frameImages"][0]["image"]
    lock = read_lock(root / "storyboard.lock")
    entry = lock["shots"]["s1"]
    (generation, _) = sim_in_process.generations("runware")
    assert entry["task_id"] == first["taskUUID"] == generation.id
    assert entry["cost_usd"] == "0.336" == str(generation.cost_usd)  # what the provider reported
    downloaded = sim_in_process.requests("runware", "download")[0]
    assert entry["result_url"] == [sim_in_process.base_url + downloaded.path]
    assert (root / "renders" / "chain.mp4").is_file()
    again = run_in_process(runware_plan(root))
    assert len(submitted(sim_in_process)) == 2 and again.count("cached", "generate") == 2


def test_a_failed_generation_skips_its_chain_and_a_rerun_pays_anew(tmp_path, run_in_process,
                                                                   sim_in_process):
    root = make_project(tmp_path, chain_storyboard(2, {1: "please fail"}))
    sim_in_process.faults.fail_generation("please fail", "the model could not render this")
    result = run_in_process(runware_plan(root))
    status = statuses(result)
    assert status["generate:s1"] == "failed" and status["generate:s2"] == "skipped"
    failed = next(o for o in result.outcomes if o.task.id == "generate:s1")
    assert "the model could not render this" in failed.error
    sim_in_process.faults.clear()
    result = run_in_process(runware_plan(root))
    assert result.ok and len(sim_in_process.generations("runware")) == 3  # failed, again, s2


def test_takes_are_all_downloaded_and_the_reported_cost_is_recorded(tmp_path, run_in_process,
                                                                    sim_in_process):
    root = make_project(tmp_path, chain_storyboard(1).replace("  duration: 3\n",
                                                              "  duration: 3\n  takes: 2\n"))
    result = run_in_process(runware_plan(root))
    assert result.ok and submitted(sim_in_process)[0]["numberResults"] == 2
    generate = next(o for o in result.outcomes if o.task.id == "generate:s1")
    assert len(generate.record.artifacts) == 2 and str(generate.cost_usd) == "0.672"
    assert sim_in_process.billed("runware") == generate.cost_usd


def test_the_api_key_is_never_written_anywhere(tmp_path, run_in_process, sim_in_process):
    root = make_project(tmp_path, chain_storyboard(2))
    sim_in_process.faults.fail_generation("shot number 2", "refused")
    run_in_process(runware_plan(root), environ={"RUNWARE_API_KEY": KEY})
    assert len(sim_in_process.generations("runware")) == 2  # the key was used: both were sent
    for path in root.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert KEY not in repr(Settings(keys={"runware": Secret(KEY)}))


def test_the_simulators_rate_limit_server_error_and_reset_are_retried(tmp_path, run_in_process,
                                                                      sim_in_process, sim_clock):
    root = make_project(tmp_path, chain_storyboard(1))
    sim_in_process.faults.rate_limit(1, retry_after=7, kind="submit") \
        .error(1, status=503, kind="poll").reset(1, kind="download")
    result = run_in_process(runware_plan(root))
    assert result.ok, [(o.task.id, o.error) for o in result.outcomes]
    assert 7.0 in sim_clock.sleeps  # Retry-After, on the run's (virtual) clock
    kinds = [r.kind for r in sim_in_process.requests("runware")]
    assert (kinds.count("submit"), kinds.count("download")) == (2, 2) and kinds.count("poll") >= 2
    assert len(sim_in_process.generations("runware")) == 1  # the refused submission made none
