"""Continuity checks (issue 12): a chained shot's first frame is compared with the frame it was
seeded from; a shot whose generation drifted is flagged in the run summary, `--json` and
`status`. Preview chains score as continuous."""

from __future__ import annotations

import json

from _e2e import PREVIEW, chain_storyboard, cli, run_json
from PIL import Image
from test_money_runs import run, sim  # noqa: F401

from kling_compose.media.continuity import THRESHOLD, ssim


def continuity(summary: dict) -> dict:
    return {t["shot"]: t.get("continuity") for t in summary["tasks"] if t["kind"] == "generate"}


def test_preview_chains_score_as_continuous(project):
    summary = run_json(project(chain_storyboard(3)))
    found = continuity(summary)
    assert found["s1"] is None  # not chained
    for shot in ("s2", "s3"):
        assert found[shot]["from"] == f"s{int(shot[1]) - 1}"
        assert found[shot]["score"] >= THRESHOLD and found[shot]["broken"] is False, found


def test_a_generation_that_drifted_from_its_seed_is_flagged(project, sim):
    """The simulator's model ignores s2's first frame (a drift): s2 is a broken chain in the
    run summary, --json and status; s3, seeded from s2's own last frame, is continuous."""
    root = project(chain_storyboard(3, {2: "shot number 2 drifts"}))
    sim.faults.drift("drifts")
    summary = run(root, "fal", sim)
    assert summary["failed"] == 0, summary
    found = continuity(summary)
    assert found["s2"]["broken"] is True and found["s2"]["score"] < THRESHOLD, found
    assert found["s3"]["broken"] is False, found
    assert summary["broken_chains"] == ["s2"]
    status = json.loads(cli("status", root, "--json").stdout)
    flagged = {t["shot"]: t.get("continuity") for t in status["tasks"] if t["kind"] == "generate"}
    assert flagged["s2"]["broken"] is True and flagged["s3"]["broken"] is False
    table = cli("status", root).stdout
    assert "broken chain" in table and "s1" in table
    from test_money_runs import environment

    again = cli("run", root, "--provider", "fal", *PREVIEW, env=environment(sim))
    assert "broken chain: s2" in again.stdout  # a cached shot stays flagged


def test_ssim_orders_same_similar_and_unrelated_images(tmp_path):
    import random

    rng = random.Random(7)
    base = Image.new("RGB", (320, 176))
    for x in range(0, 320, 8):  # blocks of texture: structure at the scale SSIM compares
        for y in range(0, 176, 8):
            shade = rng.randrange(256)
            for dx in range(8):
                for dy in range(8):
                    base.putpixel((x + dx, y + dy), (shade, 255 - shade, shade // 2))
    shifted = base.transform(base.size, Image.AFFINE, (1, 0, 24, 0, 1, 0))
    other = Image.new("RGB", (320, 176), (30, 30, 40))
    assert ssim(base, base) == 1.0
    assert ssim(base, shifted) < THRESHOLD < ssim(base, base.resize((160, 90)))
    assert ssim(base, other) < 0.2


def test_a_shot_finished_but_never_scored_is_scored_by_the_next_run(project):
    """A run stopped between a shot's finish and its score (the score is written after the
    result is safe) leaves it without one: the next run scores it, generating nothing."""
    import sqlite3

    root = project(chain_storyboard(3))
    scored = continuity(run_json(root))
    db = sqlite3.connect(root / ".kling-compose" / "state.db")
    with db:
        db.execute("UPDATE tasks SET result='{}' WHERE task_id='generate:s2'")
    db.close()
    assert status_continuity(root)["s2"] is None
    again = run_json(root)
    assert again["generated"] == 0
    assert scored["s2"]["score"] >= THRESHOLD
    assert continuity(again)["s2"] == scored["s2"] == status_continuity(root)["s2"]


def status_continuity(root) -> dict:
    tasks = json.loads(cli("status", root, "--json").stdout)["tasks"]
    return {t["shot"]: t.get("continuity") for t in tasks if t["kind"] == "generate"}
