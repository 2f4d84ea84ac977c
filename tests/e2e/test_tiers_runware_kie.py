"""Issue 25: every new Kling 3.0 tier of Runware and kie runs one shot against the simulator,
goes to its documented model id (and, for Turbo, resolution), and is billed what the plan
estimated: the documented price. The simulator keeps its own copy of the prices, so a
misreading on either side shows as a difference."""

from __future__ import annotations

import json
from decimal import Decimal

from _e2e import PREVIEW, cli

RUNWARE = """\
version: 1
name: tiers
defaults: { provider: runware, duration: 5, aspect: '16:9' }
scenes:
  - id: a
    shots:
      - { id: std, model: kling-3-std, prompt: A harbour at dawn, audio: true }
      - { id: uhd, model: kling-3-4k, prompt: Boats leave the harbour }
      - { id: omni, model: kling-o3-std, prompt: Gulls over the water, audio: true }
      - { id: fast, model: kling-3-turbo-std, prompt: A lighthouse blinks, aspect: '1:1' }
      - { id: faster, model: kling-3-turbo-pro, prompt: The tide comes in,
          first_frame: assets/start.png, negative_prompt: blurry }
"""

KIE = """\
version: 1
name: tiers
defaults: { provider: kie, duration: 5, aspect: '16:9' }
scenes:
  - id: a
    shots:
      - { id: fast, model: kling-3-turbo-std, prompt: A lighthouse blinks, aspect: '9:16' }
      - { id: faster, model: kling-3-turbo-pro, prompt: The tide comes in,
          first_frame: assets/start.png }
"""


def _plan(root, env) -> dict[str, tuple[str, float]]:
    result = cli("plan", root, "--json", env=env)
    assert result.exit_code == 0, result.output
    planned = json.loads(result.stdout)
    return {t["id"]: (t["endpoint"], t["estimated_cost_usd"]) for t in planned["tasks"]
            if t["kind"] == "generate"}


def _run(root, env, shots: int) -> None:
    result = cli("run", root, "--json", *PREVIEW, env=env)
    summary = json.loads(result.stdout)
    assert summary["failed"] == 0 and summary["generated"] == shots, summary


def test_each_new_runware_tier_goes_to_its_model_and_is_billed_its_price(project, sim, sim_env):
    root = project(RUNWARE)
    assert _plan(root, sim_env) == {
        "generate:std": ("klingai:kling-video@3-standard", 0.63),  # 5 s x $0.126 (audio)
        "generate:uhd": ("klingai:kling-video@3-4k", 2.1),  # 5 s x $0.42
        "generate:omni": ("klingai:kling-video@o3-standard", 0.56),  # 5 s x $0.112 (audio)
        "generate:fast": ("klingai:kling-video@3.0-turbo resolution 720p", 0.56),  # x $0.112
        "generate:faster": ("klingai:kling-video@3.0-turbo resolution 1080p", 0.7),  # x $0.14
    }
    _run(root, sim_env, 5)
    sent = {g.request["model"]: g.request for g in sim.generations("runware")}
    assert sorted(sent) == ["klingai:kling-video@3-4k", "klingai:kling-video@3-standard",
                            "klingai:kling-video@3.0-turbo", "klingai:kling-video@o3-standard"]
    turbo = [g.request for g in sim.generations("runware")
             if g.request["model"] == "klingai:kling-video@3.0-turbo"]
    shapes = {(r.get("width"), r.get("height"), r.get("resolution")) for r in turbo}
    assert shapes == {(960, 960, None), (None, None, "1080p")}  # size, or a frame + resolution
    assert all("providerSettings" not in r for r in turbo)
    assert {g.request["model"]: g.cost_usd for g in sim.generations("runware")
            if g.request["model"] != "klingai:kling-video@3.0-turbo"} == {
        "klingai:kling-video@3-standard": Decimal("0.63"),
        "klingai:kling-video@3-4k": Decimal("2.10"),
        "klingai:kling-video@o3-standard": Decimal("0.56")}
    assert sorted(g.cost_usd for g in sim.generations("runware")
                  if g.request["model"] == "klingai:kling-video@3.0-turbo") == [
        Decimal("0.56"), Decimal("0.70")]
    assert sim.billed("runware") == Decimal("0.63") + Decimal("2.10") + Decimal("0.56") \
        + Decimal("0.56") + Decimal("0.70")


def test_each_kie_turbo_tier_goes_to_its_model_and_is_billed_its_price(project, sim, sim_env):
    root = project(KIE)
    assert _plan(root, sim_env) == {
        "generate:fast": ("kling/v3-turbo-text-to-video resolution 720p", 0.45),  # 5 x $0.09
        "generate:faster": ("kling/v3-turbo-image-to-video resolution 1080p", 0.5625),  # x .1125
    }
    _run(root, sim_env, 2)
    sent = sorted((g.request["model"], g.request["input"]["resolution"], g.cost_usd)
                  for g in sim.generations("kie"))
    assert sent == [("kling/v3-turbo-image-to-video", "1080p", Decimal("0.5625")),
                    ("kling/v3-turbo-text-to-video", "720p", Decimal("0.45"))]
    assert sim.billed("kie") == Decimal("1.0125")
