"""Issue 21, item 16: "why it changed" compares with the result of the same lineage.

After a run on runware, back to fal (every shot cached) and one prompt edited, `plan` said
`provider: runware -> fal; model: ...; duration: 6 -> 6; ...`: it compared with the latest
run of any provider, not with the fal result the last run reused."""

from __future__ import annotations

import json

import pytest
from _e2e import PREVIEW, chain_storyboard, cli

from kling_compose.project.state import State
from kling_compose.simulator import Faults, Simulator


@pytest.fixture
def sim():
    with Simulator(None, Faults(task_seconds=0.05)) as simulator:
        yield simulator


def _env(sim) -> dict:
    return dict(sim.env()) | {"RUNWARE_API_KEY": "rk", "FAL_KEY": "fk",
                              "KLING_COMPOSE_POLL_SECONDS": "0.05"}


def _changes(root, env, provider: str) -> dict[str, list[str]]:
    result = cli("plan", root, "--json", "--provider", provider, env=env)
    assert result.exit_code == 0, result.output
    return {t["id"]: [c["text"] for c in t.get("changes", [])]
            for t in json.loads(result.stdout)["tasks"] if t["status"] == "changed"}


def test_back_on_a_cached_provider_an_edit_is_compared_with_that_providers_result(project, sim):
    root = project(chain_storyboard(2))
    env = _env(sim)
    for provider, generated in (("fal", 2), ("runware", 2), ("fal", 0)):
        result = cli("run", root, "--json", "--provider", provider, *PREVIEW, env=env)
        summary = json.loads(result.stdout)
        assert summary["failed"] == 0 and summary["generated"] == generated, summary
    storyboard = root / "storyboard.yaml"
    storyboard.write_text(storyboard.read_text().replace("shot number 2", "shot number two"))
    changes = _changes(root, env, "fal")
    assert changes["generate:s2"] == ["prompt: shot number 2 -> shot number two"]
    # the film: the fal clips the last run assembled, not runware's
    assert changes["assemble:renders/chain.mp4"] == [
        "clip of s2 will be new (s2: prompt: shot number 2 -> shot number two)"]
    # planned on runware, the edit is compared with runware's own result
    assert _changes(root, env, "runware")["generate:s2"] == [
        "positivePrompt: shot number 2 -> shot number two"]


def test_the_latest_result_is_the_one_a_run_last_reused(tmp_path):
    state = State(tmp_path / "state.db")
    for key, provider in (("a", "fal"), ("b", "runware")):
        state.start(key, "generate:s1", "generate", shot="s1", provider=provider)
        state.finish(key)
    assert state.latest_for("generate:s1").cache_key == "b"
    state.used("a")  # the next run reused fal's result from the cache
    assert state.latest_for("generate:s1").cache_key == "a"
    assert state.latest_for("generate:s1", "runware").cache_key == "b"
    assert state.latest_for("generate:s1", "kie") is None
    state.close()


def test_a_value_that_only_changed_its_type_shows_the_types():
    from kling_compose.commands.why import _scalar

    assert _scalar("duration", 6, "6").text == 'duration: 6 -> "6"'
    assert _scalar("duration", 5, 8).text == "duration: 5 -> 8"
