"""Issue 25, first tier: Kling 3.0 Standard on fal runs against the simulator at its own
endpoint and is billed what the plan estimated."""

from __future__ import annotations

import json
from decimal import Decimal

from _e2e import PREVIEW, cli

STORYBOARD = """\
version: 1
name: tiers
defaults: { provider: fal, model: kling-3-std, duration: 5, audio: true }
scenes:
  - id: a
    shots:
      - { id: one, prompt: A harbour at dawn }
      - { id: two, prompt: Boats leave the harbour, model: kling-3-pro }
"""


def test_a_standard_shot_goes_to_fal_s_standard_endpoint_at_its_price(project, sim, sim_env):
    root = project(STORYBOARD)
    planned = json.loads(cli("plan", root, "--json", env=sim_env).stdout)
    estimate = {t["id"]: (t["endpoint"], t["estimated_cost_usd"]) for t in planned["tasks"]
                if t["kind"] == "generate"}
    assert estimate == {
        "generate:one": ("fal-ai/kling-video/v3/standard/text-to-video", 0.63),  # 5 x 0.126
        "generate:two": ("fal-ai/kling-video/v3/pro/text-to-video", 0.84)}  # 5 x 0.168
    result = cli("run", root, "--json", *PREVIEW, env=sim_env)
    summary = json.loads(result.stdout)
    assert summary["failed"] == 0 and summary["generated"] == 2, summary
    endpoints = sorted(g.request["endpoint"] for g in sim.generations("fal"))
    assert endpoints == ["fal-ai/kling-video/v3/pro/text-to-video",
                         "fal-ai/kling-video/v3/standard/text-to-video"]
    assert sim.billed("fal") == Decimal("0.63") + Decimal("0.84")
