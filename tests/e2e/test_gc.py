"""`kling-compose gc` (issue 11): removes what neither the lock nor the plan needs, lists it
with --dry-run, and never removes a clip the lock names."""

from __future__ import annotations

from _e2e import PREVIEW, chain_storyboard, cli, run_json


def _objects(root):
    return sorted(p.name for p in (root / ".kling-compose" / "objects").glob("*/*"))


def test_gc_removes_old_takes_and_films_and_keeps_what_the_plan_and_lock_need(project):
    root = project(chain_storyboard(3))
    assert run_json(root)["generated"] == 3
    story = (root / "storyboard.yaml").read_text()
    (root / "storyboard.yaml").write_text(story.replace("shot number 3", "the third, again"))
    assert run_json(root)["generated"] == 1
    before = _objects(root)
    dry = cli("gc", root, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "2 object(s), would free" in dry.stdout  # the old third clip and the old film
    assert dry.stdout.count("would remove .kling-compose/objects/") == 2
    assert _objects(root) == before
    done = cli("gc", root)
    assert done.exit_code == 0 and "2 object(s), freed" in done.stdout
    assert len(_objects(root)) == len(before) - 2
    again = run_json(root)
    assert again["generated"] == 0 and again["cached"] == 3  # nothing needed was removed


def test_gc_never_removes_a_clip_the_lock_names(project):
    root = project(chain_storyboard(2))
    assert run_json(root)["generated"] == 2
    folder = root / ".kling-compose"
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        (folder / name).unlink(missing_ok=True)  # no ledger: only the lock says what is paid
    assert cli("gc", root).exit_code == 0
    summary = run_json(root)
    assert summary["restored"] == 2 and summary["generated"] == 0, summary
