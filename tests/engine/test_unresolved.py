"""Issue 21: what the engine does when a provider's answer leaves a paid generation's fate open
(unknown, unconfirmed, malformed), reports an unusable cost, or its download is cut or gone.

The provider's reading is replaced here (monkeypatched `read_statuses`) so these tests pin the
engine's side alone; each provider's own tests pin how its answers map to these statuses."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal

import httpx
import pytest
from test_remote import FakeRunware, chain_storyboard, clip, make_project, run, statuses  # noqa: F401

from kling_compose.engine.remote import Budget
from kling_compose.providers import PROVIDERS
from kling_compose.providers.base import Result, Status
from support.locks import read_lock


def _phase(root, task_id="generate:s1"):
    db = sqlite3.connect(root / ".kling-compose" / "state.db")
    try:
        return db.execute("SELECT phase, status FROM tasks WHERE task_id=?", (task_id,)).fetchone()
    finally:
        db.close()


@pytest.fixture
def answers(monkeypatch):
    """A queue of Status answers the Runware provider gives instead of reading the body
    (an empty queue: its own reading)."""
    queue: list = []
    provider = type(PROVIDERS["runware"])
    original = provider.read_statuses

    def read_statuses(self, response, handles, takes):
        if queue:
            status = queue.pop(0)
            return {h.task_id: status for h in handles}
        return original(self, response, handles, takes)

    monkeypatch.setattr(provider, "read_statuses", read_statuses)
    return queue


@pytest.mark.parametrize("status", [
    Status("unknown", message="taskNotFound"),
    Status("invalid", message="videoURL is not a URL"),
])
def test_an_unresolved_generation_is_kept_submitted_and_never_sent_again(tmp_path, clip, answers,
                                                                        status):
    root = make_project(tmp_path, chain_storyboard(1))
    fake = FakeRunware(clip)
    answers.append(status)
    result, _ = run(root, fake)
    error = result.outcomes[1].error
    assert statuses(result)["generate:s1"] == "failed"
    assert "kling-compose adopt s1" in error and "run --force s1" in error
    assert _phase(root)[0] == "submitted"  # not rejected: the next run asks again
    result, _ = run(root, fake)  # the provider's own answer now: done
    assert result.ok and len(fake.submits) == 1


def test_an_unconfirmed_task_is_polled_through_its_grace_then_the_user_is_asked(
        tmp_path, clip, answers, monkeypatch):
    root = make_project(tmp_path, chain_storyboard(1))
    fake = FakeRunware(clip)
    monkeypatch.setattr(type(PROVIDERS["runware"]), "unconfirmed_grace_s", 60.0, raising=False)
    answers.extend([Status("unconfirmed", message="recordInfo is null")] * 3)
    result, _ = run(root, fake)  # within the grace period: polled on, then done
    assert result.ok and len(fake.submits) == 1 and not answers

    root = make_project(tmp_path / "two", chain_storyboard(1))
    fake = FakeRunware(clip)
    answers.extend([Status("unconfirmed", message="recordInfo is null")] * 500)
    result, _ = run(root, fake)
    error = result.outcomes[1].error
    assert statuses(result)["generate:s1"] == "failed"
    assert "has not shown it for 60 s" in error and "kling-compose adopt s1" in error
    assert _phase(root)[0] == "submitted"
    answers.clear()
    result, _ = run(root, fake)
    assert result.ok and len(fake.submits) == 1  # polled again, never paid twice


def test_a_reported_cost_that_is_not_a_number_is_replaced_by_the_estimate(tmp_path, clip,
                                                                         answers):
    root = make_project(tmp_path, chain_storyboard(1))
    fake = FakeRunware(clip)
    bad = Result("https://vm.runware.test/x.mp4", 1, None,
                 "runware reported a cost of 'NaN'")
    answers.append(Status("done", (bad,)))
    result, _ = run(root, fake, max_cost_usd=Decimal("10"))
    assert result.ok
    lock = read_lock(root / "storyboard.lock")
    entry = lock["shots"]["s1"]
    assert entry["cost_usd"] == entry.get("estimate_usd", entry["cost_usd"])
    assert Decimal(entry["cost_usd"]) > 0
    (warning,) = result.warnings  # said once, in the run's summary
    assert "shot 's1': runware reported a cost of 'NaN'" in warning and "counted instead" in warning


@pytest.mark.parametrize("actual", [Decimal("NaN"), Decimal("-1000"), Decimal("Infinity")])
def test_the_budget_never_counts_an_unusable_amount(actual):
    budget = Budget(limit=Decimal("5"))
    budget.reserve("t", Decimal("1.5"))
    budget.settle("t", actual)
    assert budget.spent == Decimal("1.5")
    budget.reserve("u", Decimal("3"))  # still within the limit, no decimal traceback
    with pytest.raises(Exception, match="--max-cost"):
        budget.reserve("v", Decimal("1"))


def test_a_cut_download_says_it_was_cut_not_that_the_host_is_unreachable(tmp_path, clip):
    root = make_project(tmp_path, chain_storyboard(1))

    class Cutting(FakeRunware):
        def handle(self, request):
            if request.method == "GET":
                return httpx.Response(200, headers={"content-length": str(len(self.clip))},
                                      stream=_CutStream(self.clip[:100]))
            return super().handle(request)

    result, _ = run(root, Cutting(clip))
    error = result.outcomes[1].error
    assert "was cut after 100 of" in error and "cannot reach" not in error
    assert _phase(root)[0] == "submitted"  # the paid generation is kept: `run` again fetches it


def test_an_expired_result_url_says_so_and_keeps_the_shot(tmp_path, clip, monkeypatch):
    root = make_project(tmp_path, chain_storyboard(1))
    monkeypatch.setattr(type(PROVIDERS["runware"]), "result_ttl_s", 24 * 3600, raising=False)

    class Gone(FakeRunware):
        def handle(self, request):
            if request.method == "GET":
                return httpx.Response(404)
            return super().handle(request)

    result, _ = run(root, Gone(clip))
    error = result.outcomes[1].error
    assert "keeps a finished result for about 24 h" in error and "run --force s1" in error
    assert _phase(root)[0] == "submitted"


class _CutStream(httpx.AsyncByteStream):
    def __init__(self, head: bytes) -> None:
        self.head = head

    async def __aiter__(self):
        yield self.head
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


def test_an_endless_download_is_refused_at_its_cap_and_leaves_nothing_in_tmp(tmp_path, clip,
                                                                             monkeypatch):
    """Issue 22: a result URL that streams without end filled 9.7 GB of .kling-compose/tmp in
    one run. A download stops at its cap (a multiple of what a clip of that length can hold),
    is not retried, removes its partial file, and keeps the paid generation submitted."""
    from kling_compose.engine import remote

    monkeypatch.setattr(remote, "DOWNLOAD_MIN_BYTES", 1 << 20)
    monkeypatch.setattr(remote, "DOWNLOAD_BYTES_PER_S", 1 << 18)  # a 3 s clip: at most 1 MiB
    root = make_project(tmp_path, chain_storyboard(1))
    sent: list[int] = []

    class Endless(httpx.AsyncByteStream):
        async def __aiter__(self):
            while True:
                sent.append(1)
                yield b"\0" * 65536

    class Flood(FakeRunware):
        def handle(self, request):
            if request.method == "GET":
                return httpx.Response(200, stream=Endless())
            return super().handle(request)

    result, _ = run(root, Flood(clip))
    error = result.outcomes[1].error
    assert "is larger than 1 MiB" in error and _phase(root)[0] == "submitted"
    assert len(sent) <= 2 * 16 + 1  # one attempt, stopped within a read past the cap
    tmp = root / ".kling-compose" / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []


def test_a_download_announcing_more_than_its_cap_is_not_started(tmp_path, clip):
    root = make_project(tmp_path, chain_storyboard(1))

    class Huge(FakeRunware):
        def handle(self, request):
            if request.method == "GET":
                return httpx.Response(200, headers={"content-length": str(50 << 30)},
                                      content=b"")
            return super().handle(request)

    result, _ = run(root, Huge(clip))
    assert "is larger than 256 MiB" in result.outcomes[1].error


@pytest.mark.parametrize("forgotten", [True, False], ids=["task forgotten", "task kept"])
def test_clips_lost_here_and_at_the_provider_are_made_anew_in_the_same_run(tmp_path, clip,
                                                                          forgotten):
    """Issue 22: objects deleted and the result URL dead: `plan` said the shot would be paid
    again, `run` failed ("does not know task") and only the next run paid. Now the run that
    finds it so (the provider forgot the task, or still knows it but its URL is dead)
    generates it anew, and says so once."""
    import shutil

    root = make_project(tmp_path, chain_storyboard(1))
    dead: set[str] = set()

    class Forgetful(FakeRunware):
        def handle(self, request):
            if request.method == "GET" and any(d in str(request.url) for d in dead):
                return httpx.Response(404)
            return super().handle(request)

    fake = Forgetful(clip)
    assert run(root, fake)[0].ok
    shutil.rmtree(root / ".kling-compose" / "objects")
    (old,) = fake.tasks
    dead.add(old)
    if forgotten:
        fake.tasks.clear()
    result, _ = run(root, fake)
    assert result.ok, [(o.task.id, o.error) for o in result.outcomes]
    assert len(fake.submits) == 2 and fake.submits[1]["taskUUID"] != old
    (warning,) = result.warnings
    assert "clips were missing here" in warning and "generated anew" in warning


def test_the_grace_for_an_unconfirmed_task_runs_from_its_submission(tmp_path, clip, answers,
                                                                   monkeypatch):
    """A later run does not poll a task the provider never showed for another whole grace
    period: the grace counts from the submission (the ledger's submitted_at)."""
    import sqlite3

    monkeypatch.setattr(type(PROVIDERS["runware"]), "unconfirmed_grace_s", 600.0, raising=False)
    root = make_project(tmp_path, chain_storyboard(1))
    fake = FakeRunware(clip)
    answers.extend([Status("unconfirmed", message="not shown")] * 10_000)
    first, sleeps = run(root, fake)
    assert "has not shown it for 600 s" in first.outcomes[1].error
    assert sum(sleeps) >= 600  # polled on through the grace
    db = sqlite3.connect(root / ".kling-compose" / "state.db")
    db.execute("UPDATE tasks SET submitted_at = submitted_at - 3600")  # an hour ago
    db.commit()
    db.close()
    again, sleeps = run(root, fake)
    assert "has not shown it" in again.outcomes[1].error
    assert sum(sleeps) < 60  # asked at once, not after another ten minutes
    assert len(fake.submits) == 1


def test_a_finished_task_unconfirmed_when_fetched_again_is_made_anew_at_once(tmp_path, clip,
                                                                            answers,
                                                                            monkeypatch):
    import shutil

    monkeypatch.setattr(type(PROVIDERS["runware"]), "unconfirmed_grace_s", 600.0, raising=False)
    root = make_project(tmp_path, chain_storyboard(1))
    dead: set[str] = set()

    class Expired(FakeRunware):
        def handle(self, request):
            if request.method == "GET" and any(d in str(request.url) for d in dead):
                return httpx.Response(404)
            return super().handle(request)

    fake = Expired(clip)
    assert run(root, fake)[0].ok
    shutil.rmtree(root / ".kling-compose" / "objects")
    dead.update(fake.tasks)
    answers.append(Status("unconfirmed", message="record is null"))  # the old task's poll
    result, sleeps = run(root, fake)
    assert result.ok and len(fake.submits) == 2, [(o.task.id, o.error) for o in result.outcomes]
    assert sum(sleeps) < 60
