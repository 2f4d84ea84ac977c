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


PINNED = """\
version: 1
name: pinned
defaults:
  duration: 5
  aspect: '16:9'
scenes:
  - id: main
    shots:
      - id: s1
        prompt: a lantern on dark water
        takes: 2
        pick: 2
      - id: s2
        prompt: the lantern drifts under a bridge
        first_frame: { from: previous }
      - id: s3
        prompt: the bridge from above
        last_frame: { from: s1, frame: first }
outputs:
  - path: renders/pinned.mp4
    sequence: [s1, s2, s3]
    transition: { crossfade: 0.5 }
"""

# computed by the plan.py before task params were typed per kind (issue 23): a change of the
# params' shape must not change a key (a key change makes every project pay again)
PINNED_KEYS = {
    "preview": {
        "generate:s1": "7c8861b7a8b35b5531441bd2db0fa3d1031aba712a8a978741dd2397e79ad8c5",
        "frame:s1:last": "3adf131aa6a55f117ed58ac4640bf6b739def15b7e488505f0e3d368450caad7",
        "generate:s2": "7a43a08d5e3f3315255065efdd577f508a9abf48c6fa8c3a7224d0db0efa40cd",
        "frame:s1:first": "f2da53f5386c6c35c65b556ed56080c3462a84798015616aae37de6a926425ad",
        "generate:s3": "0c977fe7bedc6779d138fcad24538b88ff9cd2fe9cbc9d5ee3984897f7b7cee6",
        "assemble:renders/pinned.mp4":
            "1e8bfbe2eb45ffef0e204c3d2e4a06911f82121832890aca5c67105dccdcc140",
    },
    "runware": {
        "generate:s1": "9a9bbcb517453b9391d9f18b35e17987bf049f086113cff32cceedf66776239f",
        "frame:s1:last": "de31bf07f95aee4ccab751433c68d8ae9d706c6847585e2a1b0c9ee8a5250baf",
        "upload:runware:frame:s1:last":
            "50c61a757e3549fc0142545a6a72e1e86add2c9dca21b7421fe63d45507085cb",
        "generate:s2": "358633c0d92ba3ee29f98a425de41e0425c6fac102ab2b3da4b44af45ec194f7",
        "frame:s1:first": "16fcbed22e8e9936e118fd53d8eb863be5033ccd90584f9a7bd9a98ba5e9e774",
        "upload:runware:frame:s1:first":
            "807e2723633029b47856e09b521b2c82a943a20ffb4bf19c51053647481b94f0",
        "generate:s3": "3c4f55b167c98044ba565bff4f25b4d64fad96082453fd40a85d2b9761e4da09",
        "assemble:renders/pinned.mp4":
            "a81ec62457ae87c31e2a4a6821aaa4772684e881e8e8109588c7eaa9e9475bfe",
    },
}


def test_the_keys_of_a_fixed_storyboard_are_pinned(tmp_path):
    (tmp_path / "storyboard.yaml").write_text(PINNED)
    for provider, pinned in PINNED_KEYS.items():
        assert keys(plan_of(tmp_path, provider)) == pinned, provider


def test_each_kind_has_its_typed_params_and_the_picks_it_reads(tmp_path):
    import pytest

    from kling_compose.plan import (AssembleParams, FrameParams, GenerateParams,
                                    UploadParams)

    (tmp_path / "storyboard.yaml").write_text(PINNED)
    tasks = plan_of(tmp_path, "runware").tasks
    s2, frame = tasks["generate:s2"], tasks["frame:s1:last"]
    assert s2.generate_params == GenerateParams(
        inputs={"kc-input:frame:s1:last": "upload:runware:frame:s1:last"}, files={})
    assert s2.inputs == s2.generate_params.inputs and s2.generate_params.short_side is None
    assert frame.frame_params == FrameParams("last") and frame.picks == {"generate:s1": 2}
    assert tasks["frame:s1:first"].frame_params.frame == "first"
    assert tasks["upload:runware:frame:s1:last"].upload_params == UploadParams("image")
    assert tasks["upload:runware:frame:s1:last"].inputs == {}
    film = tasks["assemble:renders/pinned.mp4"]
    assert film.assemble_params == AssembleParams("renders/pinned.mp4", ("s1", "s2", "s3"), 0.5)
    assert film.pick("generate:s1") == 2 and film.pick("generate:s2") == 1
    with pytest.raises(TypeError, match="assemble"):
        film.upload_params
    with pytest.raises(TypeError):
        frame.generate_params
    preview = plan_of(tmp_path, "preview").tasks["generate:s1"]
    assert preview.generate_params.short_side == 360


def test_each_request_says_where_it_goes_and_which_tier_it_pays(tmp_path):
    """`plan --requests` and `plan --json` name each generation's endpoint or model id (and
    mode) beside its body, so a user sees which paid tier each shot goes to (issue 25)."""
    make_project(tmp_path, "version: 1\nname: t\ndefaults: { duration: 5 }\nscenes:\n"
                           "  - id: a\n    shots:\n      - { id: one, prompt: a harbour }\n"
                           "      - { id: two, prompt: boats leave }\n")
    seen = {}
    for provider in ("fal", "kling", "kie", "runware", "preview"):
        result = cli("plan", tmp_path, "--requests", "--provider", provider)
        assert result.exit_code == 0, result.output
        seen[provider] = [entry["endpoint"] for entry in json.loads(result.stdout)]
        planned = json.loads(cli("plan", tmp_path, "--json", "--provider", provider).stdout)
        assert [t["endpoint"] for t in planned["tasks"] if t["kind"] == "generate"] == \
            seen[provider]
    assert seen["fal"] == ["fal-ai/kling-video/v3/pro/text-to-video"] * 2
    assert seen["kling"] == ["/v1/videos/text2video model_name kling-v3 mode pro"] * 2
    assert seen["kie"] == ["kling-3.0/video mode pro"] * 2
    assert seen["runware"] == ["klingai:kling-video@3-pro"] * 2
    assert seen["preview"] == ["local animatic (free)"] * 2
