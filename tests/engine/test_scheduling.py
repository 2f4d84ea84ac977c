"""Who gets a contended slot (engine/slots.py), and when the first poll of a generation comes
(engine/remote.py: the project's history, else the prior; through the engine against the
simulator in-process)."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from support.projects import make_project

from kling_compose import RunOptions, build_plan, load_storyboard, run_plan
from kling_compose.engine.remote import Expected, expected_time, poll_delays, prior_s
from kling_compose.engine.slots import Slots, heir, rank_tasks, remaining_path_s
from kling_compose.project.state import State
from kling_compose.settings import Settings


def mixed_storyboard() -> str:
    """Three independent shots written first, then a chain of three (c2, c3 from c1)."""
    lines = ["version: 1", "name: mixed", "defaults:", "  duration: 3", "  aspect: '16:9'",
             "scenes:", "  - id: main", "    shots:"]
    for n in (1, 2, 3):
        lines += [f"      - id: i{n}", f"        prompt: independent shot {n}"]
    for n in (1, 2, 3):
        lines += [f"      - id: c{n}", f"        prompt: chained shot {n}"]
        if n > 1:
            lines.append("        first_frame: { from: previous }")
    return "\n".join(lines) + "\n"


@pytest.fixture
def mixed(tmp_path):
    root = make_project(tmp_path, mixed_storyboard())
    return build_plan(load_storyboard(root / "storyboard.yaml"), "preview", 90)


# -- slots ------------------------------------------------------------------------------------

async def _serve_in_order(slots: Slots, waiters: list[tuple[str, int]]) -> list[str]:
    """One holder; `waiters` (name, rank) queue in this order; the order they are served."""
    served: list[str] = []
    await slots.acquire("holder", 0)

    async def wait(name: str, rank: int) -> None:
        await slots.acquire(name, rank)
        served.append(name)
        slots.release()

    jobs = [asyncio.create_task(wait(name, rank)) for name, rank in waiters]
    await asyncio.sleep(0)  # every waiter queued
    slots.release()
    await asyncio.gather(*jobs)
    return served


def test_a_contended_slot_goes_to_the_best_rank_not_the_first_to_ask():
    served = asyncio.run(_serve_in_order(Slots(1), [("late", 3), ("first", 1), ("second", 2)]))
    assert served == ["first", "second", "late"]


def test_a_cancelled_waiter_never_keeps_a_slot():
    async def scenario() -> int:
        slots = Slots(1)
        await slots.acquire("holder", 0)
        waiting = asyncio.create_task(slots.acquire("cancelled", 1))
        handed = asyncio.create_task(slots.acquire("handed", 2))
        await asyncio.sleep(0)
        waiting.cancel()  # cancelled while it waits
        await asyncio.sleep(0)
        slots.release()  # goes to "handed", which is cancelled before it runs again
        handed.cancel()
        for job in (waiting, handed):
            with pytest.raises(asyncio.CancelledError):
                await job
        return slots.free

    assert asyncio.run(scenario()) == 1  # the slot came back


def test_a_slot_kept_for_an_heir_is_its_at_once_or_freed_if_it_will_not_run():
    async def scenario() -> tuple[list[str], int]:
        slots = Slots(1)
        await slots.acquire("link-1", 0)
        other = asyncio.create_task(slots.acquire("independent", 5))
        await asyncio.sleep(0)
        slots.release("link-2", 1)  # the heir outranks the waiter: kept for it
        await asyncio.sleep(0)
        assert not other.done()
        await slots.acquire("link-2", 1)  # not queued behind anyone
        order = ["link-2"]
        slots.release("link-3", 9)  # outranked by the waiter: it goes to the waiter
        await other
        order.append("independent")
        slots.release("never-runs", 0)
        slots.forfeit("never-runs")  # skipped: the kept slot comes back
        return order, slots.free

    assert asyncio.run(scenario()) == (["link-2", "independent"], 1)


# -- ranks ------------------------------------------------------------------------------------

def test_the_chain_head_has_the_longest_remaining_path(mixed):
    remaining = remaining_path_s(mixed)
    weight = {t: mixed.tasks[t].weight_s for t in mixed.tasks}
    film = next(t for t in mixed.tasks if t.startswith("assemble:"))
    assert remaining["generate:i1"] == weight["generate:i1"] + weight[film]
    assert remaining["generate:c1"] == pytest.approx(
        sum(weight[f"generate:c{n}"] for n in (1, 2, 3))
        + weight["frame:c1:last"] + weight["frame:c2:last"] + weight[film])
    ranks = rank_tasks(mixed)
    assert min(ranks, key=ranks.__getitem__) == "generate:c1"
    assert ranks["generate:i1"] < ranks["generate:i2"]  # equal paths: the plan's order


def test_the_heir_of_a_chain_link_is_the_next_link_a_frame_extraction_away(mixed):
    ranks, runs = rank_tasks(mixed), set(mixed.tasks)
    assert heir(mixed, "generate:c1", ranks, runs, lambda t: False) == "generate:c2"
    assert heir(mixed, "generate:c3", ranks, runs, lambda t: False) is None
    assert heir(mixed, "generate:i1", ranks, runs, lambda t: False) is None
    assert heir(mixed, "generate:c1", ranks, runs - {"generate:c2"}, lambda t: False) is None


class Starts:
    def __init__(self) -> None:
        self.order: list[str] = []

    def started(self, task) -> None:
        self.order.append(task.id)

    def finished(self, outcome) -> None:
        pass


def test_at_concurrency_one_the_chain_goes_first_and_keeps_its_slot(mixed):
    # First come, first served would start i1, i2, i3, c1, c2, c3 (the plan's order). The
    # rank alone would start c1, i1, c2, ...: while c1's last frame is extracted, c2 is not
    # waiting yet and i1 would take the slot. c1 keeps it for c2 instead. c3's remaining path
    # is no longer than an independent shot's (one generation, then the film): the plan's
    # order decides, and the independent shots written first go first.
    starts = Starts()
    result = run_plan(mixed, RunOptions(concurrency=1), starts)
    assert result.ok
    generations = [t for t in starts.order if t.startswith("generate:")]
    assert generations == ["generate:c1", "generate:c2", "generate:i1", "generate:i2",
                           "generate:i3", "generate:c3"]


# -- the first poll ----------------------------------------------------------------------------

def test_without_history_polls_grow_geometrically_from_a_second():
    """Issue 21 item 17: a cold project waited half the prior (60 s for a 5 s clip) before its
    first poll, so a 3 s generation took a minute. Now the wait doubles from 1 s up to half the
    prior, then polls come densely until the prior, then grow up to a quarter of it; a
    batched provider (one request polls every task) polls from 1 s, x1.5, up to 5 s."""
    settings = Settings()
    prior = Expected(prior_s("runware", "kling-3-pro", 5), measured=False)
    assert prior.seconds == 120  # the documented assumption: 60 s + 12 s per clip second

    def seen(seconds, delays):
        """(polls until a generation of `seconds` is seen done, how late)."""
        at, count = 0.0, 0
        while at < seconds:
            at += next(delays)
            count += 1
        return count, at - seconds

    steps = list(itertools.islice(poll_delays(settings, prior), 30))
    assert steps[:5] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert sum(steps[:6]) == 60.0  # half the prior, reached exactly
    assert steps[6:18] == [5.0] * 12  # densely until the prior
    assert max(steps) == 30.0  # then growing up to a quarter of it
    assert seen(4.0, poll_delays(settings, prior)) == (3, 3.0)  # seen at 7 s, not 60 s
    count, late = seen(30.0, poll_delays(settings, prior))
    assert count == 5 and late == 1.0
    count, late = seen(110.0, poll_delays(settings, prior))  # near the prior: the old latency
    assert count == 16 and late < 5.0
    batched = list(itertools.islice(poll_delays(settings, prior, batch=True), 20))
    assert batched[:3] == [1.0, 1.5, 2.25] and max(batched) == settings.poll_max_s
    measured = poll_delays(settings, Expected(20.0, measured=True))
    assert [next(measured) for _ in range(3)] == [18.0, 1.0, 1.0]
    short = poll_delays(settings, Expected(6.0, measured=True))  # 5 % of it: seen ~0.15 s late
    assert [round(next(short), 3) for _ in range(3)] == [5.4, 0.3, 0.3]
    tiny = poll_delays(settings, Expected(2.0, measured=True))  # never under 0.25 s apart
    assert [round(next(tiny), 3) for _ in range(3)] == [1.8, 0.25, 0.25]
    assert next(poll_delays(Settings(poll_interval_s=0.05), prior)) == 0.05


def test_history_is_matched_by_clip_duration_else_scaled_to_it(tmp_path):
    state = State(tmp_path / "state.db")
    cold = expected_time(state, "fal", "kling-3-pro", 10)
    assert cold == Expected(prior_s("fal", "kling-3-pro", 10), measured=False)
    for seconds in (40.0, 44.0, 42.0):
        state.record_timing("fal", "kling-3-pro", seconds, 5)
    assert expected_time(state, "fal", "kling-3-pro", 5) == Expected(42.0, measured=True)
    scaled = expected_time(state, "fal", "kling-3-pro", 10)  # no 10 s sample: 42 x 180/120
    assert scaled.measured and scaled.seconds == pytest.approx(63.0)
    state.record_timing("fal", "kling-3-pro", 90.0, 10)
    assert expected_time(state, "fal", "kling-3-pro", 10).seconds == 90.0
    assert expected_time(state, "fal", "other-model", 5).measured is False
    state.close()


def test_a_cold_project_polls_first_after_a_second(tmp_path, run_in_process, sim_in_process,
                                                  sim_clock):
    """Through the engine: one Runware shot against the simulator in-process, virtual time;
    the only wait before the first poll is poll_first_s, not half of the prior (48 s for a
    3 s clip), and that poll finds it done."""
    root = make_project(tmp_path, mixed_storyboard().split("      - id: i2")[0])
    plan = build_plan(load_storyboard(root / "storyboard.yaml"), "runware")
    result = run_in_process(plan)
    assert result.ok and len(sim_in_process.requests("runware", "poll")) == 1
    assert len(sim_clock.sleeps) == 1  # one poll, after one wait
    model = plan.tasks["generate:i1"].model
    assert sim_clock.sleeps[0] == pytest.approx(Settings().poll_first_s)
    assert sim_clock.sleeps[0] < prior_s("runware", model, 3) / 10
