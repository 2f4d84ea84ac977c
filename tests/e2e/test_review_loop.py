"""The review loop (issue 12): a plan that says why a task runs again (`changed` reasons,
`--diff`, `orphaned`), saved plans (`plan --out`, `run --plan`), `pick` editing the storyboard
in place, a pick switch that regenerates only what follows, and `run` with nothing to do."""

from __future__ import annotations

import json
import shutil

import pytest
from _e2e import PREVIEW, chain_storyboard, cli, clone_project, run_json
from test_money_runs import sim  # noqa: F401
from PIL import Image

from kling_compose.errors import UserError
from kling_compose.commands.pick import set_pick
from support.locks import read_lock, rehearsal_lock


def plan_of(root, *extra) -> dict:
    result = cli("plan", root, "--json", *PREVIEW, *extra)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    return {t["id"]: t for t in data["tasks"]}


def edit(root, old: str, new: str) -> None:
    path = root / "storyboard.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture
def made(project):
    """A 3-shot chain rendered once with the preview provider (s1 with 2 takes)."""
    story = chain_storyboard(3).replace("        prompt: shot number 1\n",
                                        "        prompt: shot number 1\n        takes: 2\n")
    root = project(story)
    first = run_json(root)
    assert first["generated"] == 3 and first["failed"] == 0
    return root


def test_a_changed_prompt_is_named_and_followed_down_the_chain(made):
    edit(made, "prompt: shot number 1", "prompt: shot number one")
    tasks = plan_of(made)
    assert tasks["generate:s1"]["status"] == "changed"
    assert tasks["generate:s1"]["reason"] == "prompt: shot number 1 -> shot number one"
    change = tasks["generate:s1"]["changes"][0]
    assert (change["what"], change["before"], change["after"]) == \
        ("prompt", "shot number 1", "shot number one")
    why = "prompt: shot number 1 -> shot number one"
    assert tasks["generate:s2"]["reason"] == f"last frame of s1 will be new (s1: {why})"
    assert tasks["generate:s3"]["reason"] == f"last frame of s2 will be new (s2 <- s1: {why})"
    film = tasks["assemble:renders/chain.mp4"]
    assert film["status"] == "changed" and "clip of s1 will be new" in film["reason"]
    table = cli("plan", made, *PREVIEW).stdout
    assert f"generate:s1: {why}" in table
    edit(made, "prompt: shot number one", "prompt: " + "a much longer prompt " * 4)
    assert plan_of(made)["generate:s1"]["reason"] == "prompt changed"  # long: named


def test_a_changed_duration_shows_both_values(made):
    edit(made, "  duration: 3\n", "  duration: 3\n    \n")  # no change: still cached
    assert plan_of(made)["generate:s2"]["status"] == "cached"
    edit(made, "prompt: shot number 3\n", "prompt: shot number 3\n        duration: 5\n")
    tasks = plan_of(made)
    assert tasks["generate:s3"]["reason"] == "duration: 3 -> 5"
    assert tasks["generate:s1"]["status"] == "cached" and "reason" not in tasks["generate:s1"]


def test_a_changed_asset_is_named_by_its_path(made):
    image = Image.open(made / "assets" / "start.png")
    image.putpixel((3, 3), (255, 0, 0))
    image.save(made / "assets" / "start.png")
    tasks = plan_of(made)
    assert tasks["generate:s1"]["reason"] == "assets/start.png changed"
    assert tasks["generate:s2"]["reason"] == \
        "last frame of s1 will be new (s1: assets/start.png changed)"


def test_a_pick_switch_is_named_and_regenerates_only_what_follows(made):
    result = cli("pick", "s1", "2", made)
    assert result.exit_code == 0, result.output
    tasks = plan_of(made)
    assert tasks["generate:s1"]["status"] == "cached"
    assert tasks["frame:s1:last"]["reason"] == "pick: 1 -> 2"
    assert tasks["generate:s2"]["reason"] == "last frame of s1 will be new (s1: pick: 1 -> 2)"
    assert "pick of s1: 1 -> 2" in tasks["assemble:renders/chain.mp4"]["reason"]
    second = run_json(made)
    statuses = {t["id"]: t["status"] for t in second["tasks"]}
    assert statuses["generate:s1"] == "cached"  # the shot itself: nothing made, nothing paid
    assert statuses["generate:s2"] == statuses["generate:s3"] == "done"
    assert second["generated"] == 2


def test_diff_prints_the_request_bodies(made):
    edit(made, "prompt: shot number 2", "prompt: shot number two")
    out = cli("plan", made, "--diff", *PREVIEW).stdout
    assert "--- generate:s2 (last result)\n+++ generate:s2 (this plan)" in out
    assert '-  "prompt": "shot number 2",' in out and '+  "prompt": "shot number two",' in out
    assert "generate:s3 (this plan)\n  (the same request body; last frame of s2 will be new" in out
    assert "generate:s1" not in out
    edit(made, "prompt: shot number two", "prompt: shot number 2")
    assert cli("plan", made, "--diff", *PREVIEW).stdout == "no request changed\n"


def test_orphaned_results_are_listed(made):
    edit(made, "      - id: s3\n        prompt: shot number 3\n"
               "        first_frame: { from: previous }\n", "")
    data = json.loads(cli("plan", made, "--json", *PREVIEW).stdout)
    orphans = [t for t in data["tasks"] if t["status"] == "orphaned"]
    assert [t["id"] for t in orphans] == ["generate:s3"]
    assert "orphaned: 1 result(s)" in cli("plan", made, *PREVIEW).stdout


def test_a_clone_explains_changes_from_the_lock(made, tmp_path):
    # a lock that names the results (a preview run records them apart: issue 26)
    (made / "storyboard.lock").write_bytes(rehearsal_lock(made).read_bytes())
    clone = clone_project(made, tmp_path / "clone")
    edit(clone, "prompt: shot number 1", "prompt: shot number one")
    tasks = plan_of(clone)
    assert tasks["generate:s1"]["status"] == "changed"
    assert tasks["generate:s1"]["reason"] == "prompt: shot number 1 -> shot number one"
    assert tasks["generate:s2"]["status"] == "changed"  # its frame comes from the new s1
    assert tasks["generate:s2"]["reason"] == \
        "last frame of s1 will be new (s1: prompt: shot number 1 -> shot number one)"


def test_run_with_nothing_to_do_says_so(made):
    again = cli("run", made, *PREVIEW)
    assert again.exit_code == 0, again.output
    assert "nothing to do: all 6 task(s) are up to date" in again.stdout
    summary = run_json(made)
    assert summary["nothing_to_do"] is True and summary["cost_usd"] == 0


# -- saved plans -----------------------------------------------------------------------------


def test_a_saved_plan_runs_exactly_and_a_stale_one_is_refused(made, tmp_path):
    saved = tmp_path / "plan.json"
    edit(made, "prompt: shot number 3", "prompt: shot number three")
    result = cli("plan", made, "--out", saved, *PREVIEW)
    assert result.exit_code == 0 and saved.is_file(), result.output
    data = json.loads(saved.read_text())
    assert data["to_pay"] == ["generate:s3"]
    assert data["fingerprint"]["files"] == {"assets/start.png": data["fingerprint"]["files"][
        "assets/start.png"]}
    summary = json.loads(cli("run", made, "--plan", saved, "--json").stdout)
    assert summary["generated"] == 1 and summary["failed"] == 0
    stale = cli("run", made, "--plan", saved)
    assert stale.exit_code == 1 and "the rehearsal records changed" in stale.output


@pytest.mark.parametrize("change, message", [
    ("storyboard", "storyboard.yaml changed"),
    ("asset", "assets/start.png changed"),
    ("variable", "variable 'mood' is 'dawn', the plan was saved with 'dusk'"),
    ("lock", "the rehearsal records changed (a preview run since)"),
    ("provider", "--provider fal differs from the saved plan (no --provider)"),
])
def test_a_saved_plan_is_refused_when_anything_changed(project, tmp_path, change, message):
    root = project(chain_storyboard(2, {1: "harbour at {{ mood }}"}))
    run_json(root, "--var", "mood=dusk")
    saved = tmp_path / "plan.json"
    assert cli("plan", root, "--out", saved, "--var", "mood=dusk", *PREVIEW).exit_code == 0
    args = []
    if change == "storyboard":
        edit(root, "shot number 2", "shot number two")
    elif change == "asset":
        Image.new("RGB", (320, 180), (9, 9, 9)).save(root / "assets" / "start.png")
    elif change == "variable":
        args = ["--var", "mood=dawn"]
    elif change == "lock":
        lock = read_lock(rehearsal_lock(root))
        lock["shots"]["s1"]["cost_usd"] = "9.000"
        rehearsal_lock(root).write_text(json.dumps(lock))
    else:
        args = ["--provider", "fal"]
    result = cli("run", root, "--plan", saved, *args)
    assert result.exit_code == (2 if change == "provider" else 1), result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_file_that_is_not_a_saved_plan_is_named(project, tmp_path):
    root = project(chain_storyboard(1))
    bogus = tmp_path / "plan.json"
    bogus.write_text('{"tasks": []}')
    result = cli("run", root, "--plan", bogus)
    assert result.exit_code == 1 and "is not a saved kling-compose plan" in result.output
    result = cli("run", root, "--plan", tmp_path / "missing.json")
    assert result.exit_code == 1 and "cannot read the saved plan" in result.output


# -- pick ------------------------------------------------------------------------------------

COMMENTED = """\
# harbour: the opening sequence   (a comment that must survive)
version: 1
name: harbour
defaults:
  duration: 3   # seconds
  provider: preview
scenes:
  - id: dawn
    shots:
      - id: wide        # the establishing shot
        prompt: "Wide shot, 'quoted' text"
        takes: 3
      - { id: close, prompt: A close shot, takes: 2 }
      - id: last
        takes: 2
        pick: 1   # first take for now
        prompt: >
          A folded
          prompt
"""


def test_pick_inserts_or_replaces_and_keeps_every_other_byte(project):
    root = project(COMMENTED)
    path = root / "storyboard.yaml"
    assert cli("pick", "wide", "3", root).exit_code == 0
    assert cli("pick", "close", "2", root).exit_code == 0
    result = cli("pick", "last", "2", root)
    assert result.exit_code == 0, result.output
    assert "storyboard.yaml:17:15: pick of 'last': 1 -> 2" in result.stdout
    expected = COMMENTED.replace(
        "      - id: wide        # the establishing shot\n",
        "      - id: wide        # the establishing shot\n        pick: 3\n").replace(
        "{ id: close,", "{ pick: 2, id: close,").replace("pick: 1   # first", "pick: 2   # first")
    assert path.read_text() == expected
    from kling_compose.pipeline import load_resolved

    picks = {s.id: s.pick for s in load_resolved(path).shots}
    assert picks == {"wide": 3, "close": 2, "last": 2}
    same = cli("pick", "last", "2", root)
    assert same.exit_code == 0 and "already uses take 2" in same.stdout
    assert path.read_text() == expected


def test_pick_keeps_crlf_line_endings(project):
    root = project(COMMENTED.replace("\n", "\r\n"))
    assert cli("pick", "wide", "2", root).exit_code == 0
    text = (root / "storyboard.yaml").read_bytes()
    assert b"# the establishing shot\r\n        pick: 2\r\n" in text
    assert b"\n" not in text.replace(b"\r\n", b"")


@pytest.mark.parametrize("story, message", [
    (COMMENTED.replace("pick: 1   # first", "pick: {{ 1 }}   # first"),
     "that line is written with a Jinja expression"),
    ("version: 1\nname: loop\nscenes:\n  - id: a\n    shots:\n"
     "{% for i in range(2) %}\n      - id: s{{ i }}\n        prompt: shot {{ i }}\n"
     "        takes: 2\n{% endfor %}\n", "that line is written with a Jinja expression"),
    ("version: 1\nname: loop\nscenes:\n  - id: a\n    shots:\n"
     "{% for i in range(2) %}\n      - prompt: shot\n        takes: 2\n"
     "        id: {{ 's%d' % i }}\n        pick: 1\n{% endfor %}\n",
     "that line renders more than once"),
])
def test_pick_refuses_a_pick_a_template_writes(project, story, message):
    root = project(story)
    before = (root / "storyboard.yaml").read_bytes()
    shot = "last" if "wide" in story else "s1"
    result = cli("pick", shot, "2", root)
    assert result.exit_code == 1, result.output
    assert message in result.output and "storyboard.yaml:" in result.output
    assert (root / "storyboard.yaml").read_bytes() == before


def test_pick_checks_the_shot_and_the_take(project):
    root = project(COMMENTED)
    result = cli("pick", "wdie", "2", root)
    assert result.exit_code == 1 and "did you mean 'wide'?" in result.output
    result = cli("pick", "close", "3", root)
    assert result.exit_code == 1 and "shot 'close' has 2 take(s): there is no take 3" \
        in result.output
    assert cli("pick", "close", "0", root).exit_code == 2  # a usage error


def test_pick_refuses_where_defaults_set_the_pick(project):
    """A pick that comes from defaults is set on the shot (the shot's own wins)."""
    root = project(COMMENTED.replace("  provider: preview\n", "  provider: preview\n  takes: 2\n"
                                     "  pick: 2\n").replace("        takes: 3\n", ""))
    picked = set_pick(root / "storyboard.yaml", "storyboard.yaml", {}, "wide", 1)
    assert picked.changed and picked.before == 2
    assert "      - id: wide        # the establishing shot\n        pick: 1\n" in \
        (root / "storyboard.yaml").read_text()
    with pytest.raises(UserError):
        set_pick(root / "storyboard.yaml", "storyboard.yaml", {}, "nope", 1)


def test_pick_in_an_included_file_edits_that_file(project):
    root = project("version: 1\nname: inc\nscenes:\n  - id: a\n    shots:\n"
                   "{% include 'shots.yaml' %}\n")
    (root / "shots.yaml").write_text("      - id: s1\n        prompt: one\n        takes: 2\n")
    result = cli("pick", "s1", "2", root)
    assert result.exit_code == 0, result.output
    assert (root / "shots.yaml").read_text() == \
        "      - id: s1\n        pick: 2\n        prompt: one\n        takes: 2\n"
    assert "{% include 'shots.yaml' %}" in (root / "storyboard.yaml").read_text()


def test_the_preview_takes_differ_visibly(made):
    from kling_compose.project.state import State, state_path
    from kling_compose.project.store import Store
    from kling_compose.media.frames import extract_frame

    state = State(state_path(made), readonly=True)
    record = next(r for r in state.all() if r.task_id == "generate:s1" and r.status == "done")
    state.close()
    store = Store(made / ".kling-compose")
    frames = []
    for i, (digest, suffix) in enumerate(record.artifacts):
        for which in ("first", "last"):
            out = made / f"take{i}-{which}.png"
            extract_frame(store.path(digest, suffix), which, out)
            frames.append(Image.open(out).convert("L"))
    first1, last1, first2, last2 = frames
    width, height = first1.size
    top = (0, 0, width, height * 2 // 3)  # above the caption band (it names the take)

    def mean_diff(a, b) -> float:
        pixels = list(zip(a.crop(top).tobytes(), b.crop(top).tobytes()))
        return sum(abs(p - q) for p, q in pixels) / len(pixels)

    assert mean_diff(first1, first2) < 2  # both start on the first frame
    assert mean_diff(last1, last2) > 8  # and end in visibly different places
    shutil.rmtree(made / ".kling-compose" / "tmp", ignore_errors=True)


def test_a_pick_switch_bills_only_the_shots_chained_from_it(project, sim):
    """At a hosted provider (the simulator bills each generation): 2 takes of s1, then take
    2 picked: s1 is not submitted again; s2 and s3, chained from it, are."""
    from test_money_runs import run as run_at

    story = chain_storyboard(3).replace("        prompt: shot number 1\n",
                                        "        prompt: shot number 1\n        takes: 2\n")
    root = project(story)
    assert run_at(root, "runware", sim)["generated"] == 3
    billed = [g.plan.caption for g in sim.generations("runware")]
    assert cli("pick", "s1", "2", root).exit_code == 0
    second = run_at(root, "runware", sim)
    assert second["generated"] == 2 and second["cached"] == 1, second
    again = [g.plan.caption for g in sim.generations("runware")][len(billed):]
    assert sorted(again) == ["shot number 2", "shot number 3"]
