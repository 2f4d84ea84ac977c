"""Issue 25: the Kling family on fal runs against the simulator, each tier at its own endpoint
and billed its own price; a Kling 4.0 shot runs through its keyframes, one of them chained
from another shot's last frame."""

from __future__ import annotations

import json
from decimal import Decimal

from _e2e import PREVIEW, cli

FAL = "fal-ai/kling-video"

TIERS = """\
version: 1
name: family
defaults: { provider: fal, duration: 3, audio: true }
scenes:
  - id: a
    shots:
      - { id: std, model: kling-3-std, prompt: A harbour at dawn }
      - { id: k4, model: kling-3-4k, prompt: A harbour at dawn in 4K }
      - { id: o3std, model: kling-o3-std, prompt: Boats leave, first_frame: assets/start.png }
      - { id: o3pro, model: kling-o3-pro, prompt: Gulls circle the masts }
      - id: o3k4
        model: kling-o3-4k
        prompt: The harbour in the style of @@Image1
        reference_images: [assets/start.png]
      - { id: turbostd, model: kling-3-turbo-std, prompt: Rain on the quay, aspect: '9:16' }
      - id: turbopro
        model: kling-3-turbo-pro
        prompt: A lantern is lit
        first_frame: assets/start.png
      - { id: v4, model: kling-4, prompt: Night falls, resolution: 720p }
"""

ESTIMATES = {  # shot: (endpoint, estimate for 3 s with audio, what fal bills)
    "std": (f"{FAL}/v3/standard/text-to-video", "0.378", "0.378"),
    "k4": (f"{FAL}/v3/4k/text-to-video", "1.26", "1.26"),
    "o3std": (f"{FAL}/o3/standard/image-to-video", "0.336", "0.336"),
    # no fal price: estimated at the higher secondary reading (0.28), billed at Kling's (0.14)
    "o3pro": (f"{FAL}/o3/pro/text-to-video", "0.84", "0.42"),
    "o3k4": (f"{FAL}/o3/4k/reference-to-video", "1.26", "1.26"),
    "turbostd": (f"{FAL}/v3/turbo/standard/text-to-video", "0.336", "0.336"),
    "turbopro": (f"{FAL}/v3/turbo/pro/image-to-video", "0.42", "0.42"),
    "v4": (f"{FAL}/v4/text-to-video", "0.471", "0.471"),
}


def test_one_shot_of_each_tier_runs_at_its_endpoint_and_is_billed_its_price(project, sim,
                                                                           sim_env):
    root = project(TIERS)
    _fal_sized_start(root)
    planned = json.loads(cli("plan", root, "--json", env=sim_env).stdout)
    generated = {t["shot"]: (t["endpoint"], t["estimated_cost_usd"]) for t in planned["tasks"]
                 if t["kind"] == "generate"}
    assert generated == {shot: (endpoint, float(estimate))
                         for shot, (endpoint, estimate, _) in ESTIMATES.items()}
    summary = json.loads(cli("run", root, "--json", *PREVIEW, env=sim_env).stdout)
    assert summary["failed"] == 0 and summary["generated"] == len(ESTIMATES), summary
    sent = {g.request["endpoint"]: g.request["input"] for g in sim.generations("fal")}
    assert set(sent) == {endpoint for endpoint, _, _ in ESTIMATES.values()}
    assert sent[f"{FAL}/o3/pro/text-to-video"]["generate_audio"] is True  # O3: always said
    assert "generate_audio" not in sent[f"{FAL}/v3/turbo/pro/image-to-video"]
    assert sent[f"{FAL}/v3/turbo/pro/image-to-video"]["image_url"].startswith(sim.base_url)
    assert sent[f"{FAL}/o3/4k/reference-to-video"]["image_urls"][0].startswith(sim.base_url)
    assert sent[f"{FAL}/v4/text-to-video"] == {"prompt": "Night falls", "duration": 3,
                                               "resolution": "720p"}
    assert sim.billed("fal") == sum(Decimal(billed) for _, _, billed in ESTIMATES.values())


KEYFRAMES = """\
version: 1
name: keyframes
defaults: { provider: fal }
scenes:
  - id: harbour
    shots:
      - { id: opening, model: kling-3-std, prompt: A harbour at dawn, duration: 3 }
      - id: crossing
        model: kling-4
        prompt: A ferry crosses the harbour and docks
        duration: 8
        resolution: 720p
        first_frame: assets/start.png
        keyframes:
          - { from: opening, frame: last }
          - assets/start.png
        last_frame: { from: opening }
"""


def test_a_4_0_shot_runs_through_keyframes_chained_from_another_shot(project, sim, sim_env):
    root = project(KEYFRAMES)
    _fal_sized_start(root)
    planned = json.loads(cli("plan", root, "--json", env=sim_env).stdout)
    tasks = {t["id"]: t for t in planned["tasks"]}
    crossing = tasks["generate:crossing"]
    assert crossing["endpoint"] == f"{FAL}/v4/image-to-video"
    assert crossing["estimated_cost_usd"] == float(Decimal("0.157") * 8)

    def reaches(task_id, target):
        task = tasks[task_id]
        return task_id == target or any(reaches(d, target) for d in task["depends_on"])

    assert reaches("generate:crossing", "generate:opening")  # the chain is a dependency
    summary = json.loads(cli("run", root, "--json", *PREVIEW, env=sim_env).stdout)
    assert summary["failed"] == 0 and summary["generated"] == 2, summary
    [v4] = [g for g in sim.generations("fal") if "/v4/" in g.request["endpoint"]]
    body = v4.request["input"]
    assert body["duration"] == 8 and body["resolution"] == "720p"
    middle = body["middle_image_urls"]
    assert len(middle) == 2 and all(url.startswith(sim.base_url) for url in middle)
    assert middle[1] == body["start_image_url"]  # the same file, uploaded once, in its place
    assert middle[0] != middle[1] and body["end_image_url"] == middle[0]  # opening's last frame
    # opening: fal v3 generate_audio defaults to true (0.126)
    assert sim.billed("fal") == Decimal("0.126") * 3 + Decimal("0.157") * 8


def _fal_sized_start(root) -> None:
    """assets/start.png at 640x360: fal's 4.0 and Turbo image inputs are at least 300 px a
    side (checked before paying; the project's 320x180 is refused, as fal would)."""
    from PIL import Image

    Image.new("RGB", (640, 360), (40, 90, 140)).save(root / "assets" / "start.png")
