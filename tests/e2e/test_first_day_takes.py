"""Issue 21, item 15: more takes on a shot already rendered on the preview, then `pick 2`.

The preview's cache key ignored `takes`, so the one-take clip was reused and `run` crashed
with an IndexError at `record.artifacts[pick - 1]`, leaving a frame task interrupted."""

from __future__ import annotations

import json
import sqlite3

from _e2e import cli, run_json
from support.locks import read_lock, rehearsal_lock

STORYBOARD = """\
version: 1
name: takes
defaults:
  duration: 3
  aspect: '16:9'
scenes:
  - id: main
    shots:
      - id: s1
        prompt: a quiet harbour at dusk
      - id: s2
        prompt: a lantern rises
        first_frame: { from: previous }
      - id: s3
        prompt: the sky fills with lanterns
        first_frame: { from: previous }
"""


def _statuses(root) -> dict[str, str]:
    result = cli("status", root, "--json")
    return {t["id"]: t["status"] for t in json.loads(result.stdout)["tasks"]}


def test_raising_takes_then_picking_take_2_renders_the_second_take(project):
    root = project(STORYBOARD)
    assert run_json(root)["failed"] == 0
    storyboard = root / "storyboard.yaml"
    storyboard.write_text(storyboard.read_text().replace(
        "      - id: s2\n", "      - id: s2\n        takes: 2\n"))
    picked = cli("pick", "s2", "2", root)
    assert picked.exit_code == 0, picked.output
    summary = run_json(root)
    assert summary["failed"] == 0 and summary["skipped"] == 0, summary
    status = {t["id"]: t["status"] for t in summary["tasks"]}
    assert status["generate:s2"] == "done"  # two takes now, not the cached single take
    lock = read_lock(rehearsal_lock(root))
    assert len(lock["shots"]["s2"]["sha256"]) == 2 and lock["shots"]["s2"]["pick"] == 2
    assert "interrupted" not in _statuses(root).values()
    assert (root / "renders" / "takes.mp4").is_file()


def test_a_pick_past_the_takes_recorded_is_a_located_error_not_a_crash(project):
    """A result with fewer takes than the pick (a provider that returned fewer clips than
    asked): the shot fails with where the pick is written and the way on, exit 1; what needs
    it is skipped, nothing is left interrupted."""
    root = project(STORYBOARD.replace("      - id: s2\n",
                                      "      - id: s2\n        takes: 2\n        pick: 2\n"))
    assert run_json(root)["failed"] == 0
    db = sqlite3.connect(root / ".kling-compose" / "state.db")
    with db:
        (artifacts,) = db.execute("SELECT artifacts FROM tasks WHERE task_id = "
                                  "'generate:s2' AND status = 'done'").fetchone()
        one = json.dumps(json.loads(artifacts)[:1])
        db.execute("UPDATE tasks SET artifacts = ? WHERE task_id = 'generate:s2'", (one,))
    db.close()
    (root / "storyboard.yaml").write_text(  # s3 must be made again: it needs s2's take 2
        (root / "storyboard.yaml").read_text().replace("the sky fills", "the night sky fills"))
    result = cli("run", root, "--json", "--preview-resolution", "144")
    assert result.exit_code == 1, result.output
    tasks = {t["id"]: t for t in json.loads(result.stdout)["tasks"]}
    error = tasks["generate:s2"]["error"]
    assert tasks["generate:s2"]["status"] == "failed"
    assert "storyboard.yaml:" in error and "pick is 2" in error and "1 take(s)" in error
    assert "kling-compose pick s2 1" in error and "--force s2" in error
    assert tasks["generate:s3"]["status"] == "skipped"
    assert "interrupted" not in _statuses(root).values()
