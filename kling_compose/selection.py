"""The --only selector language (dbt's graph operators), a pure function of a plan.

`SHOT` or `+SHOT` is the shot and what it needs (it cannot run without it); `SHOT+` adds
everything made from it (the shots chained from it, the films it is in); a scene id selects
each of its shots, with the same operators. `run --only` uses it; so can `plan`, `status`,
`report` and `export`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from .errors import UserError, did_you_mean

if TYPE_CHECKING:
    from .plan import Plan


def select(plan: Plan, only: Iterable[str] = ()) -> list[str]:
    """Task ids in plan order: everything, or what the selectors name."""
    only = tuple(only)
    if not only:
        return list(plan.order)
    import networkx as nx

    wanted: set[str] = set()
    for selector in only:
        for task_id in _selected_shots(plan, selector):
            wanted |= {task_id, *nx.ancestors(plan.graph, task_id)}
            if selector.endswith("+"):
                for below in nx.descendants(plan.graph, task_id):
                    wanted |= {below, *nx.ancestors(plan.graph, below)}
    return [t for t in plan.order if t in wanted]


def _selected_shots(plan: Plan, selector: str) -> list[str]:
    """The generate task ids a selector names (its `+` operators stripped)."""
    name = selector.removeprefix("+").removesuffix("+")
    if f"generate:{name}" in plan.tasks:
        return [f"generate:{name}"]
    scenes = {s.id: s for s in plan.resolved.storyboard.scenes}
    if name in scenes:
        return [f"generate:{shot.id}" for shot in scenes[name].shots
                if f"generate:{shot.id}" in plan.tasks]
    names = [t.partition(":")[2] for t in plan.tasks if t.startswith("generate:")]
    raise UserError.single(
        f"--only: no shot or scene '{name}' in the storyboard",
        hint=did_you_mean(name, [*names, *scenes]) or "write SHOT, +SHOT (with what it needs), "
        "SHOT+ (and what is made from it), or a scene id")
