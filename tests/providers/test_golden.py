"""The golden cases: storyboards that must compile to the seed requests and costs exactly."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from kling_compose.compiler import compile_shots

from .factory import resolved_from_yaml

CASES_DIR = Path(__file__).parent.parent / "cases" / "golden"
CASES = sorted(p for p in CASES_DIR.iterdir() if p.is_dir())


def expected(case: Path) -> tuple[dict, Decimal | None]:
    request = json.loads((case / "request.json").read_text())
    request.pop("taskUUID", None)  # the engine adds a fresh UUID v4 at submit time
    cost = (case / "cost.txt").read_text().strip()
    return request, None if cost == "unknown" else Decimal(cost)


def assert_matches(case: Path, jobs) -> None:
    request, cost = expected(case)
    assert len(jobs) == 1
    job = jobs[0]
    # json.dumps keeps key order, so this also pins the order of every object's keys
    assert json.dumps(job.request, indent=1) == json.dumps(request, indent=1)
    assert job.cost_usd == cost
    assert job.warnings == ()


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_golden_through_pipeline(case):
    pipeline = pytest.importorskip("kling_compose.pipeline")
    assert_matches(case, compile_shots(pipeline.load_resolved(case / "storyboard.yaml")))


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_golden_from_resolved_shots(case):
    assert_matches(case, compile_shots(resolved_from_yaml(case / "storyboard.yaml")))


def test_every_seed_example_has_a_case():
    runware = [c for c in CASES if c.name.startswith("runware-")]
    assert len(runware) == 9  # seeds 000 (4 examples) and 004 (5 examples)
