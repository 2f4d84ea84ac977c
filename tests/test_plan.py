"""plan.py: the task DAG, Merkle cache keys, critical path, and the plan/graph commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from support.projects import chain_storyboard, cli, make_project

from kling_compose import build_plan, load_storyboard


def plan_of(root: Path, provider: str | None = None):
    return build_plan(load_storyboard(root / "storyboard.yaml"), provider)


def keys(plan) -> dict[str, str]:
    return {t: plan.tasks[t].cache_key for t in plan.order}


def test_tasks_of_a_chain_in_topological_order(tmp_path):
    plan = plan_of(make_project(tmp_path, chain_storyboard(3)))
    assert plan.order == (
        "generate:s1", "frame:s1:last", "generate:s2", "frame:s2:last", "generate:s3",
        "assemble:renders/chain.mp4")
    assert plan.tasks["generate:s2"].depends_on == ("frame:s1:last",)
    assert plan.critical_path() == list(plan.order)


def test_keys_are_stable_across_runs_and_machines(tmp_path):
    a = make_project(tmp_path / "a", chain_storyboard(3))
    b = tmp_path / "elsewhere" / "b"
    shutil.copytree(a, b)
    assert keys(plan_of(a)) == keys(plan_of(a)) == keys(plan_of(b))


def test_editing_shot_k_changes_the_keys_of_exactly_k_and_its_chain(tmp_path):
    root = make_project(tmp_path, chain_storyboard(4))
    before = keys(plan_of(root))
    (root / "storyboard.yaml").write_text(chain_storyboard(4, {2: "something else"}))
    after = keys(plan_of(root))
    changed = {t for t in before if before[t] != after[t]}
    assert changed == {"generate:s2", "frame:s2:last", "generate:s3", "frame:s3:last",
                       "generate:s4", "assemble:renders/chain.mp4"}


def test_changing_an_input_file_changes_the_key(tmp_path):
    root = make_project(tmp_path, chain_storyboard(2))
    before = keys(plan_of(root))
    (root / "assets" / "start.png").write_bytes((root / "assets" / "start.png").read_bytes() + b"x")
    after = keys(plan_of(root))
    assert before["generate:s1"] != after["generate:s1"]


def test_independent_shots_run_in_parallel(tmp_path):
    story = chain_storyboard(1).replace("first_frame: assets/start.png", "duration: 4") + \
        "      - id: other\n        prompt: unrelated\n"
    plan = plan_of(make_project(tmp_path, story))
    assert plan.generations()[0] == ["generate:other", "generate:s1"]


def test_remote_provider_plans_uploads_for_local_files_and_chained_frames(tmp_path):
    plan = plan_of(make_project(tmp_path, chain_storyboard(2)), "runware")
    uploads = [t for t in plan.order if plan.tasks[t].kind == "upload"]
    assert uploads == ["upload:runware:assets/start.png", "upload:runware:frame:s1:last"]
    assert plan.tasks["generate:s2"].depends_on == ("upload:runware:frame:s1:last",)
    assert plan.total_cost_usd == plan.tasks["generate:s1"].cost_usd * 2


def test_plan_json_has_the_documented_fields(tmp_path):
    root = make_project(tmp_path, chain_storyboard(2))
    result = cli("plan", root, "--json", "--provider", "runware")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    task = data["tasks"][0]
    assert set(task) >= {"id", "kind", "shot", "depends_on", "provider", "model", "cache_key",
                         "estimated_cost_usd"}
    generates = [t for t in data["tasks"] if t["kind"] == "generate"]
    assert data["total_estimated_cost_usd"] == sum(t["estimated_cost_usd"] for t in generates)
    assert data["critical_path"][-1] == "assemble:renders/chain.mp4"


def test_plan_requests_prints_exact_bodies_with_placeholders(tmp_path):
    root = make_project(tmp_path, chain_storyboard(2))
    data = json.loads(cli("plan", root, "--requests", "--provider", "runware").stdout)
    assert [r["task"] for r in data] == ["generate:s1", "generate:s2"]
    body = data[1]["request"]
    assert body["model"] == "klingai:kling-video@3-pro" and "taskUUID" not in body
    assert body["inputs"]["frameImages"] == [{"image": "kc-input:frame:s1:last", "frame": "first"}]


def test_plan_table_and_graphs(tmp_path):
    root = make_project(tmp_path, chain_storyboard(2))
    table = cli("plan", root)
    assert table.exit_code == 0 and "critical path" in table.stdout
    mermaid = cli("graph", root, "--format", "mermaid").stdout
    assert mermaid.startswith("flowchart LR") and 't0["generate:s1"]' in mermaid
    assert "t0 --> t1" in mermaid
    dot = cli("graph", root, "--format", "dot").stdout
    assert dot.startswith("digraph plan {") and "t0 -> t1;" in dot
    assert cli("graph", root, "--format", "png").exit_code == 2


def test_the_seed_requests_example_compiles_to_the_nine_seed_bodies_and_costs():
    repo = Path(__file__).parents[1]
    data = json.loads(cli("plan", repo / "examples" / "seed-requests", "--json").stdout)
    requests = json.loads(cli("plan", repo / "examples" / "seed-requests", "--requests").stdout)
    bodies = {r["shot"]: r["request"] for r in requests}
    costs = {t["shot"]: t["estimated_cost_usd"] for t in data["tasks"] if t["kind"] == "generate"}
    cases = sorted(p for p in (repo / "tests" / "cases" / "golden").iterdir()
                   if p.name.startswith("runware"))
    assert len(cases) == 9
    for case in cases:
        shot = case.name.split("-", 3)[-1]
        want = json.loads((case / "request.json").read_text())
        want.pop("taskUUID")
        assert list(bodies[shot].items()) == list(want.items()), shot  # same fields, same order
        assert costs[shot] == float((case / "cost.txt").read_text().strip()), shot
