"""The one decision of what a task needs (project/decide.py), as a unit: `plan`, `run`,
`status` and the report all ask it, so each answer here is what every command says."""

from __future__ import annotations

import time
from decimal import Decimal
from types import SimpleNamespace

import networkx as nx

from kling_compose.project.decide import (NOTHING_TO_PAY, Review, Verdict, decide,
                                         unneeded_inputs)
from kling_compose.project.lockfile import Lock
from kling_compose.project.reuse import input_digests
from kling_compose.project.state import Record
from kling_compose.plan import Task, UploadParams
from kling_compose.providers import PROVIDERS

CLIP = "a" * 64
OTHER_CLIP = "b" * 64
HOSTED = next(name for name, p in PROVIDERS.items() if p.upload_ttl_s is not None)


class Store:
    """What decide asks of the store: is an object there, intact (and may it be removed)."""

    def __init__(self, *present: str) -> None:
        self.present = set(present)
        self.removed: list[str] = []

    def intact(self, digest: str, suffix: str) -> bool:
        return digest in self.present

    def verify(self, digest: str, suffix: str) -> bool:
        if digest not in self.present:
            self.removed.append(digest)
        return digest in self.present

    def find(self, digest: str, repair: bool = False) -> str | None:
        return ".mp4" if digest in self.present else None


class Ledger:
    def __init__(self, earlier: dict[str, Record] | None = None) -> None:
        self.earlier = earlier or {}

    def latest_for(self, task_id: str, provider: str | None = None) -> Record | None:
        return self.earlier.get(task_id)


def shot_task(shot="s1", key="k-s1", depends_on=(), takes=1, cost=Decimal("1.5")) -> Task:
    job = SimpleNamespace(shot=SimpleNamespace(takes=takes, output_format=None))
    return Task(id=f"generate:{shot}", kind="generate", cache_key=key, depends_on=depends_on,
                shot=shot, provider=HOSTED, job=job, cost_usd=cost)  # type: ignore[arg-type]


def upload_task(key="k-up") -> Task:
    return Task(id=f"upload:{HOSTED}:assets/a.png", kind="upload", cache_key=key,
                provider=HOSTED, params=UploadParams("image", "assets/a.png"))


def done(task: Task, artifacts=((CLIP, ".mp4"),), inputs=None, finished_at=None) -> Record:
    return Record(cache_key=task.cache_key, task_id=task.id, kind=task.kind, status="done",
                  shot=task.shot, artifacts=tuple(artifacts), inputs=inputs or {},
                  finished_at=finished_at if finished_at is not None else time.time())


def test_a_reusable_result_in_the_store_is_cached_and_handed_on():
    task = shot_task()
    record = done(task)
    decision = decide(task, record, {}, store=Store(CLIP), lock=Lock())
    assert decision.status is Verdict.CACHED and decision.record is record


def test_a_reusable_result_whose_clip_is_gone_is_missing_and_a_run_repairs_the_store():
    task, store = shot_task(), Store()
    assert decide(task, done(task), {}, store=store, lock=Lock()).status is Verdict.MISSING
    assert store.removed == []  # a plan only reads
    assert decide(task, done(task), {}, store=store, lock=Lock(), repair=True).status is \
        Verdict.MISSING
    assert store.removed == [CLIP]  # a run removes what it found damaged


def test_a_forced_shot_is_never_cached_nor_restored():
    task = shot_task()
    lock = Lock.of(shots={"s1": {"cache_key": task.cache_key, "sha256": [CLIP], "inputs": {}}})
    decision = decide(task, done(task), {}, store=Store(CLIP), lock=lock, forced=True)
    assert decision.status not in NOTHING_TO_PAY and decision.record is None


def test_an_upload_older_than_its_provider_keeps_files_is_expired_for_plan_and_run_alike():
    task = upload_task()
    ttl = PROVIDERS[HOSTED].upload_ttl_s
    old = done(task, artifacts=(), finished_at=time.time() - ttl - 60)
    for repair in (False, True):  # plan, run
        decision = decide(task, old, {}, store=Store(), lock=Lock(), repair=repair)
        assert decision.status is Verdict.EXPIRED
        # its identity is known from its inputs: downstream shots stay reusable
        assert decision.record is not None and decision.record.status == "planned"
    fresh = done(task, artifacts=())
    assert decide(task, fresh, {}, store=Store(), lock=Lock()).status is Verdict.CACHED


def test_the_lock_restores_a_shot_whose_clip_is_in_the_store():
    task = shot_task()
    lock = Lock.of(shots={"s1": {"cache_key": task.cache_key, "sha256": [CLIP], "inputs": {},
                             "cost_usd": "1.5"}})
    decision = decide(task, None, {}, store=Store(CLIP), lock=lock)
    assert decision.status is Verdict.RESTORABLE and decision.fetches == ()
    assert decision.record.artifacts == ((CLIP, ".mp4"),)
    assert decision.record.cost_usd == Decimal("1.5")


def test_a_take_the_store_lacks_is_fetched_and_a_failed_fetch_falls_back():
    task = shot_task()
    lock = Lock.of(shots={"s1": {"cache_key": task.cache_key, "sha256": [CLIP], "inputs": {},
                             "result_url": ["https://cdn.example/a.mp4"]}})
    decision = decide(task, None, {}, store=Store(), lock=lock)
    assert decision.status is Verdict.RESTORABLE
    assert [f.url for f in decision.fetches] == ["https://cdn.example/a.mp4"]
    fallback = decision.failed_restore("result URL expired (HTTP 404)")
    assert fallback.status is Verdict.NEW and fallback.why == "result URL expired (HTTP 404)"


def test_a_lock_entry_for_other_inputs_is_not_restored_and_says_why():
    upstream_task = shot_task("s0", "k-s0")
    task = shot_task("s1", "k-s1", depends_on=(upstream_task.id,))
    upstream = {upstream_task.id: done(upstream_task, artifacts=((OTHER_CLIP, ".mp4"),))}
    lock = Lock.of(shots={"s1": {"cache_key": task.cache_key, "sha256": [CLIP],
                             "inputs": {upstream_task.id: CLIP}}})
    decision = decide(task, None, upstream, store=Store(CLIP), lock=lock)
    assert decision.status is Verdict.NEW and decision.why == \
        "the lock's take was made from other inputs"


def test_a_result_made_from_other_inputs_is_changed_not_cached():
    upstream_task = shot_task("s0", "k-s0")
    task = shot_task("s1", "k-s1", depends_on=(upstream_task.id,))
    upstream = {upstream_task.id: done(upstream_task, artifacts=((OTHER_CLIP, ".mp4"),))}
    stale = done(task, inputs={upstream_task.id: CLIP})  # made from the old clip
    ledger = Ledger({task.id: stale})
    decision = decide(task, stale, upstream, store=Store(CLIP), lock=Lock(), ledger=ledger)
    assert decision.status is Verdict.CHANGED
    fresh = done(task, inputs=input_digests(task, upstream))
    assert decide(task, fresh, upstream, store=Store(CLIP), lock=Lock()).status is Verdict.CACHED


def test_an_upstream_to_be_made_leaves_the_task_undecidable_until_it_is():
    upstream_task = shot_task("s0", "k-s0")
    task = shot_task("s1", "k-s1", depends_on=(upstream_task.id,))
    decision = decide(task, done(task), {}, store=Store(CLIP), lock=Lock())
    assert decision.status is Verdict.NEW and decision.record is None


def test_the_lock_naming_an_earlier_result_makes_a_clone_say_changed():
    task = shot_task()
    lock = Lock.of(shots={"s1": {"cache_key": "an-earlier-key", "sha256": [CLIP]}})
    assert decide(task, None, {}, store=Store(CLIP), lock=lock).status is Verdict.CHANGED


def _plan(tasks: list[Task], edges: list[tuple[str, str]]):
    graph = nx.DiGraph()
    graph.add_nodes_from(t.id for t in tasks)
    graph.add_edges_from(edges)
    return SimpleNamespace(tasks={t.id: t for t in tasks}, graph=graph,
                           order=tuple(nx.topological_sort(graph)))


def test_an_upload_only_cached_shots_send_is_unneeded_unless_in_flight_or_forced():
    upload = upload_task()
    shot = shot_task()
    plan = _plan([upload, shot], [(upload.id, shot.id)])
    cached = {upload.id: Verdict.EXPIRED, shot.id: Verdict.CACHED}
    assert unneeded_inputs(plan, cached, plan.order) == {upload.id}
    assert unneeded_inputs(plan, cached, plan.order, flying=[upload.id]) == set()
    assert unneeded_inputs(plan, cached, plan.order, force=["s1"]) == set()
    to_make = {upload.id: Verdict.EXPIRED, shot.id: Verdict.NEW}
    assert unneeded_inputs(plan, to_make, plan.order) == set()
    # a cached upload is simply cached, never "unneeded"
    assert unneeded_inputs(plan, {upload.id: Verdict.CACHED, shot.id: Verdict.CACHED},
                           plan.order) == set()


def test_the_review_counts_what_the_next_run_pays_once():
    paid, free, unknown = shot_task("s1", "k1"), shot_task("s2", "k2"), \
        shot_task("s3", "k3", cost=None)
    upload = upload_task()
    plan = _plan([upload, paid, free, unknown], [])
    statuses = {paid.id: Verdict.NEW, free.id: Verdict.CACHED, unknown.id: Verdict.CHANGED,
                upload.id: Verdict.UNNEEDED}
    review = Review(plan, statuses)  # type: ignore[arg-type]
    assert [t.id for t in review.to_pay] == [paid.id, unknown.id]
    assert review.to_pay_usd == Decimal("1.5") and review.unknown_to_pay == (unknown.id,)
    forced = Review(plan, statuses, frozenset({"s2"}))  # type: ignore[arg-type]
    assert forced.to_pay_usd == Decimal("3.0")
    only = Review(plan, statuses, selected=(free.id,))  # type: ignore[arg-type]
    assert only.to_pay == () and only.to_pay_usd == 0


def test_a_plan_asks_the_lock_s_result_urls_through_the_transport_it_is_given(
        tmp_path, run_in_process):
    """A clone whose store lacks the paid clips: `plan` asks each result URL the lock names
    (HEAD) before it calls a shot restorable, through the transport its caller passes (the
    one HTTP client factory), so a test sees it: a URL gone makes the shot paid again, and
    the plan says why."""
    import shutil

    import httpx
    from support.projects import chain_storyboard, make_project

    from kling_compose import build_plan, load_storyboard
    from kling_compose.project.decide import read_statuses

    root = make_project(tmp_path, chain_storyboard(2))
    plan = build_plan(load_storyboard(root / "storyboard.yaml"), "fal")
    assert run_in_process(plan).ok
    shutil.rmtree(root / ".kling-compose")  # a clone: storyboard.lock, no ledger, no clips
    asked: list[str] = []

    def gone(request: httpx.Request) -> httpx.Response:
        asked.append(request.method)
        return httpx.Response(404)

    reasons: dict[str, str] = {}
    statuses = read_statuses(plan, reasons, transport=httpx.MockTransport(gone))
    assert asked and set(asked) == {"HEAD"}
    assert statuses["generate:s1"] == Verdict.NEW
    assert reasons["generate:s1"] == "result URL expired (HTTP 404)"
    assert read_statuses(plan, transport=httpx.MockTransport(
        lambda request: httpx.Response(200)))["generate:s1"] == Verdict.RESTORABLE
