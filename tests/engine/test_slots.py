"""engine/slots.py on its own: `Slots` (rank-ordered slots, kept slots, cancellation) on a bare
event loop, and the ranks and heirs on small hand-made task graphs, without compiling a
storyboard (tests/engine/test_scheduling.py runs them on plans and through the engine)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import networkx as nx
import pytest

from kling_compose.engine.slots import Slots, heir, rank_tasks, remaining_path_s

# -- Slots ------------------------------------------------------------------------------------


async def settle() -> None:
    """A few turns of the event loop: every slot that can be handed out is."""
    for _ in range(3):
        await asyncio.sleep(0)


class Party:
    """Tasks asking one Slots, and the order in which they got a slot."""

    def __init__(self, slots: Slots) -> None:
        self.slots = slots
        self.served: list[str] = []
        self.jobs: dict[str, asyncio.Task] = {}

    def ask(self, name: str, rank) -> asyncio.Task:
        async def acquire() -> None:
            await self.slots.acquire(name, rank)
            self.served.append(name)

        self.jobs[name] = asyncio.create_task(acquire())
        return self.jobs[name]


def run(scenario):
    return asyncio.run(scenario())


def test_at_most_size_hold_a_slot_and_a_release_lets_the_next_in():
    async def scenario():
        slots = Slots(2)
        party = Party(slots)
        for name in ("a", "b", "c"):
            party.ask(name, 0)
        await settle()
        assert party.served == ["a", "b"] and slots.free == 0
        slots.release()
        await settle()
        assert party.served == ["a", "b", "c"] and slots.free == 0
        slots.release()  # b's
        slots.release()  # c's (a's went to c)
        assert slots.free == 2

    run(scenario)


def test_equal_ranks_are_served_in_the_order_they_asked():
    async def scenario():
        slots = Slots(1)
        await slots.acquire("holder", 0)
        party = Party(slots)
        for name in ("first", "second", "third"):
            party.ask(name, 7)
            await asyncio.sleep(0)
        for _ in range(3):
            slots.release()
            await settle()
        return party.served

    assert run(scenario) == ["first", "second", "third"]


def test_tasks_ready_at_the_same_moment_are_served_by_rank_though_a_slot_is_free():
    """A free slot is handed out a turn after it is asked for: the task that happened to run
    first does not take it from a better ranked one that asks in the same turn."""
    async def scenario():
        slots = Slots(1)
        party = Party(slots)
        party.ask("ran-first", (0.0, 5))
        party.ask("critical", (-90.0, 9))  # the longer remaining path
        await settle()
        assert party.served == ["critical"]
        slots.release()
        await settle()
        return party.served

    assert run(scenario) == ["critical", "ran-first"]


def test_a_slot_is_kept_for_an_heir_that_outranks_every_waiter():
    async def scenario():
        slots = Slots(1)
        await slots.acquire("link-1", 0)
        party = Party(slots)
        party.ask("waiter", 5)
        await settle()
        slots.release("link-2", 1)
        await settle()
        assert party.served == [] and slots.free == 0  # kept, not handed to the waiter
        await asyncio.wait_for(slots.acquire("link-2", 1), 1)  # at once, not queued
        slots.release()
        await settle()
        assert party.served == ["waiter"]

    run(scenario)


def test_a_slot_goes_to_a_better_ranked_waiter_not_to_the_heir():
    async def scenario():
        slots = Slots(1)
        await slots.acquire("link-1", 0)
        party = Party(slots)
        party.ask("urgent", 1)
        await settle()
        slots.release("link-2", 4)  # the waiter outranks the heir
        await settle()
        assert party.served == ["urgent"]
        late = party.ask("link-2", 4)  # the heir now queues like anyone
        await settle()
        assert not late.done()
        slots.release()
        await settle()
        return party.served

    assert run(scenario) == ["urgent", "link-2"]


def test_with_nobody_waiting_the_slot_is_kept_for_the_heir():
    async def scenario():
        slots = Slots(1)
        await slots.acquire("link-1", 0)
        slots.release("link-2", 99)
        assert slots.free == 0
        party = Party(slots)
        party.ask("newcomer", 0)  # better ranked, but asks after the slot was kept
        await settle()
        assert party.served == []
        await asyncio.wait_for(slots.acquire("link-2", 99), 1)
        slots.release()
        await settle()
        return party.served

    assert run(scenario) == ["newcomer"]


def test_a_forfeited_slot_comes_back_and_goes_to_the_next_waiter():
    async def scenario():
        slots = Slots(1)
        await slots.acquire("link-1", 0)
        slots.release("never-runs", 0)
        party = Party(slots)
        party.ask("waiter", 3)
        await settle()
        assert party.served == []
        slots.forfeit("someone-else")  # nothing was kept for it: nothing changes
        await settle()
        assert party.served == [] and slots.free == 0
        slots.forfeit("never-runs")
        await settle()
        assert party.served == ["waiter"]
        slots.forfeit("never-runs")  # twice: still one slot
        slots.release()
        return slots.free

    assert run(scenario) == 1


def test_a_waiter_cancelled_before_its_turn_takes_no_slot_and_blocks_no_one():
    async def scenario():
        slots = Slots(1)
        await slots.acquire("holder", 0)
        party = Party(slots)
        party.ask("cancelled", 0)
        party.ask("next", 5)
        await settle()
        party.jobs["cancelled"].cancel()
        await settle()
        slots.release()
        await settle()
        assert party.served == ["next"]
        slots.release()
        return slots.free

    assert run(scenario) == 1


def test_a_waiter_cancelled_as_it_was_handed_the_slot_passes_it_on():
    async def scenario():
        slots = Slots(1)
        await slots.acquire("holder", 0)
        party = Party(slots)
        handed = party.ask("handed", 0)
        party.ask("after", 5)
        await settle()
        slots.release()
        await asyncio.sleep(0)  # the slot is handed to "handed"; it has not run since
        handed.cancel()
        with pytest.raises(asyncio.CancelledError):
            await handed
        await settle()
        assert party.served == ["after"]
        slots.release()
        return slots.free

    assert run(scenario) == 1


# -- ranks and heirs on hand-made graphs ------------------------------------------------------


@dataclass(frozen=True)
class T:
    """The fields of a plan's Task that slots.py reads."""

    provider: str
    kind: str = "generate"
    weight_s: float = 10.0
    depends_on: tuple[str, ...] = ()


@dataclass
class P:
    """The fields of a Plan that slots.py reads: tasks, a topological order, the graph."""

    tasks: dict[str, T]
    order: list[str] = field(default_factory=list)
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)

    def __post_init__(self) -> None:
        self.graph.add_nodes_from(self.tasks)
        for task_id, task in self.tasks.items():
            self.graph.add_edges_from((d, task_id) for d in task.depends_on)
        self.order = self.order or list(nx.lexicographical_topological_sort(
            self.graph, key=list(self.tasks).index))


def test_the_remaining_path_is_the_heaviest_way_to_an_end():
    plan = P({"a": T("x", weight_s=1), "b": T("x", weight_s=5, depends_on=("a",)),
              "c": T("x", weight_s=2, depends_on=("a",)),
              "d": T("x", weight_s=3, depends_on=("b", "c")), "e": T("x", weight_s=4)})
    assert remaining_path_s(plan) == {"a": 9, "b": 8, "c": 5, "d": 3, "e": 4}


def test_ranks_put_the_longest_remaining_path_first_then_the_plans_order():
    plan = P({"short": T("x", weight_s=5), "long": T("x", weight_s=20),
              "tie-1": T("x", weight_s=5), "tie-2": T("x", weight_s=5)})
    ranks = rank_tasks(plan)
    assert sorted(ranks, key=ranks.__getitem__) == ["long", "short", "tie-1", "tie-2"]
    assert ranks["long"] == (-20, 1)


def chain(*, frame_kind: str = "extract_frame") -> P:
    """g1 -> its last frame -> g2 (same provider), and g2's sibling g3 through another frame."""
    return P({"g1": T("fal"), "f1": T("local", frame_kind, 1, ("g1",)),
              "g2": T("fal", depends_on=("f1",)), "g3": T("fal", weight_s=30, depends_on=("f1",)),
              "g4": T("fal", depends_on=("g2",))})


def test_the_heir_is_the_best_ranked_next_link_a_frame_extraction_away():
    plan = chain()
    ranks, everything = rank_tasks(plan), set(plan.tasks)
    assert heir(plan, "g1", ranks, everything, lambda t: False) == "g3"  # 30 s still to go
    assert heir(plan, "g1", ranks, everything - {"g3"}, lambda t: False) == "g2"  # not run
    assert heir(plan, "g2", ranks, everything, lambda t: False) == "g4"  # a direct successor
    assert heir(plan, "g4", ranks, everything, lambda t: False) is None  # the chain's end


def test_no_heir_through_a_task_that_is_no_frame_extraction_or_at_another_provider():
    plan = chain(frame_kind="upload")
    assert heir(plan, "g1", rank_tasks(plan), set(plan.tasks), lambda t: True) is None
    other = P({"g1": T("fal"), "g2": T("runware", depends_on=("g1",))})
    assert heir(other, "g1", rank_tasks(other), set(other.tasks), lambda t: True) is None


def test_an_heir_whose_other_inputs_are_not_ready_is_passed_over():
    plan = P({"g1": T("fal"), "f1": T("local", "extract_frame", 1, ("g1",)),
              "ref": T("fal", "upload"), "g2": T("fal", depends_on=("f1", "ref"))})
    ranks, runs = rank_tasks(plan), set(plan.tasks) - {"ref"}
    assert heir(plan, "g1", ranks, runs, lambda t: False) is None  # waits for `ref` too
    assert heir(plan, "g1", ranks, runs, lambda t: t == "ref") == "g2"
