"""Review of issue 26 ("projects that merge in git"): defects found by trying the lock's format
2, union merges, the project file, `gc --store` and `plan --base`. Each test fails today."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from _e2e import PREVIEW, cli
from support.locks import read_lock

from kling_compose.project.lockfile import GITATTRIBUTES

STORYBOARD = """\
version: 1
name: merges
defaults: { provider: fal, model: kling-3-std, duration: 3, aspect: "16:9" }
scenes:
  - id: a
    shots:
      - { id: one, prompt: A harbour at dawn }
      - { id: two, prompt: Boats leave the harbour }
"""


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, check=check, capture_output=True,
                          text=True, env=env)


def run(root: Path, env: dict, *extra: str) -> dict:
    result = cli("run", root, "--json", *PREVIEW, *extra, env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_prompt_with_a_unicode_line_separator_leaves_a_lock_that_reads_back(
        project, sim, sim_env):
    """YAML's "\\L" (U+2028) and "\\N" (U+0085) are ordinary characters of a prompt; the lock
    is written with ensure_ascii=False, and read back with str.splitlines(), which breaks a
    line at them: the lock the run just paid for is refused by every later command."""
    root = project(STORYBOARD.replace("A harbour at dawn", '"A harbour\\Lat dawn"').replace(
        "Boats leave the harbour", '"Boats leave\\N the harbour"'))
    assert run(root, sim_env)["generated"] == 2
    assert len(read_lock(root / "storyboard.lock")["shots"]) == 2
    again = cli("plan", root, "--json", *PREVIEW, env=sim_env)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["to_pay_usd"] == 0


@pytest.fixture
def repo(project):
    root = project(STORYBOARD)
    (root / ".gitignore").write_text(".kling-compose/\nrenders/\n")
    (root / ".gitattributes").write_text(GITATTRIBUTES)  # what `init` writes
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "storyboard")
    return root


def test_a_clean_union_merge_after_a_rename_on_one_branch_leaves_a_usable_lock(
        repo, sim, sim_env):
    """alice renames the storyboard (`lock rename`, as the refusal tells her); bob adds a shot
    and pays for it. git merges both without a conflict (merge=union), but the merged lock has
    two header lines, the old name last: every command now refuses the lock of a merge git
    called clean ("written for storyboard 'merges', not 'harbour'")."""
    board = repo / "storyboard.yaml"
    assert run(repo, sim_env, "--only=two")["generated"] == 1
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "paid two")
    git(repo, "checkout", "-q", "-b", "alice")
    board.write_text(board.read_text().replace("name: merges", "name: harbour"))
    assert cli("lock", "rename", repo).exit_code == 0
    git(repo, "commit", "-qam", "renamed")
    git(repo, "checkout", "-q", "main")
    git(repo, "checkout", "-q", "-b", "bob")
    board.write_text(board.read_text().replace(
        "      - { id: one,", "      - { id: gulls, prompt: Gulls }\n      - { id: one,"))
    assert run(repo, sim_env, "--only=gulls")["generated"] == 1
    git(repo, "commit", "-qam", "paid gulls")
    git(repo, "checkout", "-q", "alice")
    merged = git(repo, "merge", "--no-edit", "bob", check=False)
    assert merged.returncode == 0, merged.stdout + merged.stderr  # clean for git
    result = cli("plan", repo, "--json", *PREVIEW, env=sim_env)
    assert result.exit_code == 0, result.output
    statuses = {t["id"]: t["status"] for t in json.loads(result.stdout)["tasks"]}
    assert statuses["generate:gulls"] == "cached" and statuses["generate:two"] == "cached"


FORMAT_1_BRANCH = """\
import json, sys
path = sys.argv[1]
data = json.load(open(path))
entry = dict(data["shots"]["one"])
entry.update(cache_key="f" * 64, sha256=["e" * 64])
data["shots"]["three"] = entry
open(path, "w").write(json.dumps(data, indent=2, sort_keys=True) + "\\n")
"""


def test_a_union_of_a_format_1_and_a_format_2_lock_is_resolvable_without_losing_entries(
        repo, sim, sim_env):
    """The upgrade: main's lock is format 1 (pretty-printed JSON). A teammate still on the
    old release pays for a shot on one branch (format 1 changes); on main the new release
    pays for another (format 2). git's union of the two is neither format: every command
    calls it "not valid JSON" and says to move it aside (losing the teammate's paid entry),
    and `lock resolve` says there is no conflict to resolve."""
    import sys

    from support.locks import read_lock as read

    assert run(repo, sim_env, "--only=one")["generated"] == 1
    old = read(repo / "storyboard.lock")
    (repo / "storyboard.lock").write_text(json.dumps({**old, "version": 1}, indent=2,
                                                     sort_keys=True) + "\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "format 1 lock")
    git(repo, "checkout", "-q", "-b", "old-release")
    subprocess.run([sys.executable, "-c", FORMAT_1_BRANCH, str(repo / "storyboard.lock")],
                   check=True)
    git(repo, "commit", "-qam", "the old release paid for 'three'")
    git(repo, "checkout", "-q", "main")
    assert run(repo, sim_env, "--only=two")["generated"] == 1
    git(repo, "commit", "-qam", "the new release paid for 'two'")
    merged = git(repo, "merge", "--no-edit", "old-release", check=False)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    planned = cli("plan", repo, *PREVIEW, env=sim_env)
    if planned.exit_code != 0:  # refused: then `lock resolve` must be the way out
        resolved = cli("lock", "resolve", repo)
        assert "both sides kept" in resolved.output, (planned.output, resolved.output)
    lock = read(repo / "storyboard.lock")
    assert {"one", "two", "three"} <= set(lock["shots"]), lock["shots"].keys()


def test_a_lock_that_conflicts_during_a_run_is_not_overwritten_without_the_other_side(
        repo, sim, sim_env):
    """A long run is going; in another terminal the filmmaker pulls a teammate's branch and
    git leaves storyboard.lock with conflict markers (a project without the attribute). The
    run checked the lock at its start only: at its end it reads the conflicted lock as empty
    and writes its own results over it, so the teammate's paid entry is gone and the markers
    with it (git then takes the file as resolved on `git add`)."""
    import sys
    import time

    (repo / ".gitattributes").unlink()  # a project from before `lock setup`
    git(repo, "commit", "-qam", "no attributes")
    assert run(repo, sim_env, "--only=one")["generated"] == 1
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "paid one")
    git(repo, "checkout", "-q", "-b", "bob")
    board = repo / "storyboard.yaml"
    board.write_text(board.read_text() + "      - { id: three, prompt: Gulls }\n")
    assert run(repo, sim_env, "--only=three")["generated"] == 1
    git(repo, "commit", "-qam", "bob paid three")
    git(repo, "checkout", "-q", "main")
    assert run(repo, sim_env, "--only=two")["generated"] == 1  # main's lock changes too
    git(repo, "commit", "-qam", "paid two")
    board.write_text(board.read_text().replace("A harbour at dawn", "A harbour at noon"))
    git(repo, "commit", "-qam", "one changed")
    sim.faults.task_seconds = 6.0
    env = {**os.environ, **sim_env, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("KLING_COMPOSE_STORE", None)
    running = subprocess.Popen([sys.executable, "-m", "kling_compose", "run", "-y", "-q",
                                *PREVIEW, "--only=one", str(repo)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(2.5)  # submitted, not finished
        assert running.poll() is None
        merged = git(repo, "merge", "--no-edit", "bob", check=False)
        assert "CONFLICT" in merged.stdout and "storyboard.lock" in merged.stdout, merged.stdout
        out, _ = running.communicate(timeout=120)
    finally:
        if running.poll() is None:
            running.kill()
    text = (repo / "storyboard.lock").read_text()
    # either the run left the conflicted lock alone (and said so), or it kept both sides
    assert "<<<<<<<" in text or '{"shot":"three"' in text, \
        (out, [line[:30] for line in text.splitlines()])


def test_a_second_storyboard_file_with_a_dot_in_its_name_is_not_taken_for_a_profile(
        project, sim, sim_env):
    """storyboard.v2.yaml (a second cut, its own name) writes storyboard.v2.lock, which
    lock_profiles() also lists as storyboard.yaml's lock of a profile 'v2'. Then `gc`, `push`
    and `pull` of storyboard.yaml refuse it as "written for storyboard 'harbour-v2', not
    'merges'", and `lock rename` of storyboard.yaml (which that refusal recommends) rewrites
    the other storyboard's lock."""
    root = project(STORYBOARD)
    (root / "storyboard.v2.yaml").write_text(STORYBOARD.replace("name: merges",
                                                                "name: harbour-v2"))
    assert run(root, sim_env)["generated"] == 2
    assert run(root / "storyboard.v2.yaml", sim_env)["failed"] == 0
    other = (root / "storyboard.v2.lock").read_bytes()
    for command in ("gc", "push", "pull"):
        result = cli(command, root, "--dry-run" if command == "gc" else None, env={
            **sim_env, "KLING_COMPOSE_STORE": str(root.parent / "store")})
        assert "storyboard.v2.lock was written for" not in result.output, (command,
                                                                          result.output)
    board = root / "storyboard.yaml"
    board.write_text(board.read_text().replace("name: merges", "name: harbour"))
    assert cli("lock", "rename", root).exit_code == 0
    assert (root / "storyboard.v2.lock").read_bytes() == other  # not storyboard.yaml's


def test_status_and_export_of_one_storyboard_do_not_follow_another_storyboards_last_run(
        project):
    """`status`, `report` and `export` take the provider and preview size of "the last run";
    that record (.kling-compose/last-run.json) is the folder's, not the storyboard file's, so
    a run of alt.yaml makes storyboard.yaml's finished film read as never made, and export's
    hint asks for a run with alt's flags (with a paid provider: paying for every shot again)."""
    root = project(STORYBOARD.replace("provider: fal", "provider: preview"))
    (root / "alt.yaml").write_text(STORYBOARD.replace("provider: fal", "provider: preview")
                                   .replace("name: merges", "name: alt")
                                   .replace("A harbour at dawn", "Gulls at dawn"))
    assert cli("run", root, "--json", "--preview-resolution", "144").exit_code == 0
    before = json.loads(cli("status", root, "--json").stdout)
    assert cli("run", root / "alt.yaml", "--json", "--preview-resolution", "180").exit_code == 0
    after = json.loads(cli("status", root, "--json").stdout)
    assert after == before
    exported = cli("export", root)
    assert exported.exit_code == 0, exported.output


def test_the_lock_records_the_take_the_storyboard_now_picks(project, sim, sim_env):
    """An entry whose cache key is in the lock is now kept as written, "pick" included: after
    `kling-compose pick one 2` and a run, storyboard.lock still says pick 1, and `pull`
    (export_lock) writes take 1 to renders/shots/one.mp4 for a teammate."""
    root = project(STORYBOARD.replace("provider: fal, model: kling-3-std, duration: 3",
                                      "provider: runware, duration: 5")
                   .replace("A harbour at dawn }", "A harbour at dawn, takes: 2 }"))
    assert run(root, sim_env)["generated"] == 2
    assert read_lock(root / "storyboard.lock")["shots"]["one"]["pick"] == 1
    assert cli("pick", "one", "2", root).exit_code == 0
    assert run(root, sim_env)["generated"] == 0
    assert read_lock(root / "storyboard.lock")["shots"]["one"]["pick"] == 2


@pytest.mark.parametrize("name", ["final cut", "alt[1]"])
def test_lock_setup_writes_attributes_that_apply_to_the_lock(tmp_path, name):
    """`lock setup` writes `<stem>.lock merge=union` as it is: a stem with a space makes the
    line read as pattern `final` with attributes `cut.lock` and `merge=union` (git warns
    "cut.*.lock is not a valid attribute name"), and `[1]` is a character class: the lock of
    such a storyboard still conflicts on every merge, though setup said it would not."""
    git(tmp_path, "init", "-q")
    (tmp_path / f"{name}.yaml").write_text(STORYBOARD)
    assert cli("lock", "setup", tmp_path / f"{name}.yaml").exit_code == 0
    said = git(tmp_path, "check-attr", "merge", "--", f"{name}.lock", f"{name}.v.lock")
    assert said.stdout == f"{name}.lock: merge: union\n{name}.v.lock: merge: union\n", \
        said.stdout + said.stderr


def test_gc_of_one_storyboard_keeps_another_storyboards_paid_clips_the_ledger_holds(
        project, sim, sim_env):
    """Each storyboard file has its own lock (issue 26), and gc keeps what any lock names
    and what this storyboard's plans use. A run of alt.yaml killed after its generations
    finished and before it wrote alt.lock (the state this test makes by removing alt.lock)
    holds its paid clips in the ledger only: `gc` of storyboard.yaml deletes them, and alt's
    next run pays for every shot again."""
    root = project(STORYBOARD)
    (root / "alt.yaml").write_text(STORYBOARD.replace("name: merges", "name: alt")
                                   .replace("A harbour at dawn", "Gulls at dawn")
                                   .replace("Boats leave", "Ships leave"))
    assert run(root / "alt.yaml", sim_env)["generated"] == 2
    (root / "alt.lock").unlink()  # as a run killed before writing it leaves the project
    planned = json.loads(cli("plan", root / "alt.yaml", "--json", *PREVIEW,
                             env=sim_env).stdout)
    assert planned["to_pay_usd"] == 0
    assert cli("gc", root, env=sim_env).exit_code == 0
    planned = json.loads(cli("plan", root / "alt.yaml", "--json", *PREVIEW,
                             env=sim_env).stdout)
    assert planned["to_pay_usd"] == 0, [(t["id"], t["status"]) for t in planned["tasks"]]


def caught(*args: str, env: dict | None = None):
    """The CLI in-process, an exception kept as the result's (a traceback is the defect)."""
    from click.testing import CliRunner

    from kling_compose.cli import main

    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True, env=env)


def test_a_project_file_naming_a_vars_file_too_long_for_the_system_is_a_located_error(
        project):
    """os.stat raises ENAMETOOLONG, which Path.is_file() does not swallow: every command
    ends in a traceback (OSError: [Errno 36] File name too long)."""
    root = project(STORYBOARD)
    (root / "kling-compose.yaml").write_text(f"vars: [{'a' * 300}.yaml]\n")
    result = caught("plan", root)
    assert result.exit_code == 1 and result.exception is None or \
        isinstance(result.exception, SystemExit), repr(result.exception)
    assert "kling-compose.yaml:1:" in result.output, result.output


def test_lock_resolve_of_a_lock_that_is_not_utf8_is_one_message(project):
    root = project(STORYBOARD)
    (root / "storyboard.lock").write_bytes(b"<<<<<<< ours\n\xff\xfe\n=======\n{}\n>>>>>>> b\n")
    result = caught("lock", "resolve", root)
    assert isinstance(result.exception, (SystemExit, type(None))), repr(result.exception)
    assert result.exit_code == 1 and "storyboard.lock" in result.output, result.output


@pytest.mark.parametrize("kind", ["utf-16", "folder"])
def test_lock_setup_with_an_unreadable_gitattributes_is_one_message(project, kind):
    """Windows PowerShell 5's `echo ... > .gitattributes` writes UTF-16 with a BOM; git reads
    such a file as no attributes. `lock setup` ends in a traceback (UnicodeDecodeError), and
    for a folder named .gitattributes in IsADirectoryError."""
    root = project(STORYBOARD)
    if kind == "folder":
        (root / ".gitattributes").mkdir()
    else:
        (root / ".gitattributes").write_bytes("*.png binary\r\n".encode("utf-16"))
    result = caught("lock", "setup", root)
    assert isinstance(result.exception, (SystemExit, type(None))), repr(result.exception)
    assert result.exit_code == 1 and ".gitattributes" in result.output, result.output


def test_plan_base_in_a_folder_whose_name_starts_with_a_space(tmp_path, sim, sim_env):
    """base_lock() strips git's --show-prefix (gc --store was fixed for this: only the newline
    goes): for "<space>harbour/" at the top of the repository it asks git for harbour/storyboard.lock, finds none
    and reports every shot the base paid for as "not paid yet" / what the branch adds."""
    from support.projects import make_project

    git(tmp_path, "init", "-q", "-b", "main")
    root = make_project(tmp_path / " harbour", STORYBOARD)
    assert run(root, sim_env)["generated"] == 2
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "paid")
    git(tmp_path, "checkout", "-q", "-b", "feature")
    result = cli("plan", root, "--json", *PREVIEW, "--base", "main", env=sim_env)
    assert result.exit_code == 0, result.output
    base = json.loads(result.stdout)["base"]
    assert base["lock_found"] and base["paid_on_base"] == ["generate:one", "generate:two"], base


def test_gc_removes_the_films_of_earlier_versions(project, sim, sim_env):
    """docs/format.md (Commands, gc): gc removes "earlier takes of changed shots, old films".
    write_lockfile kept every earlier entry of an output as it keeps a shot's paid takes, so
    every film ever assembled stayed named by the lock: gc never removed one, `push` sent
    each to the shared store and `gc --store` could never remove it there (a film is remade
    for free from the takes; the lock grew a line per edit). The lock keeps the current one."""
    import hashlib

    def film() -> str:
        return hashlib.sha256((root / "renders" / "merges.mp4").read_bytes()).hexdigest()

    root = project(STORYBOARD)
    assert run(root, sim_env)["generated"] == 2
    made = [film()]
    board = root / "storyboard.yaml"
    for prompt in ("Gulls over the harbour", "Ravens over the harbour"):
        board.write_text(STORYBOARD.replace("Boats leave the harbour", prompt))
        assert run(root, sim_env)["generated"] == 1
        made.append(film())
    text = (root / "storyboard.lock").read_text()
    films = [json.loads(line) for line in text.splitlines() if line.startswith('{"output"')]
    assert [f["sha256"][0] for f in films] == [made[-1]]
    result = cli("gc", root, "--dry-run", env=sim_env)
    assert result.exit_code == 0, result.output
    assert all(digest[:12] in result.output for digest in made[:-1]), result.output
    assert made[-1][:12] not in result.output


def test_a_storyboard_whose_name_is_templated_runs_with_each_value(project, sim, sim_env):
    """`name:` may use the template (one storyboard, a film per language: renders/<name>.mp4).
    The lock's header records the name of the last run, so a run with another --var is refused
    as "written for storyboard 'harbour-en', not 'harbour-fr'", and `lock rename` only moves
    the refusal to the other value."""
    root = project(STORYBOARD.replace("name: merges",
                                      "name: \"harbour-{{ lang | default('en') }}\""))
    assert run(root, sim_env, "--var", "lang=en")["generated"] == 2
    result = cli("plan", root, *PREVIEW, "--var", "lang=fr", env=sim_env)
    assert result.exit_code == 0, result.output


def test_the_fix_named_for_a_conflicted_lock_of_a_second_storyboard_acts_on_that_lock(
        project):
    """alt.lock with conflict markers: the message says to run `kling-compose lock resolve`
    (and `lock setup`), which, as written, act on storyboard.yaml's lock ("no storyboard.lock
    here"; storyboard.lock's attributes): the path alt.yaml is missing from the commands."""
    root = project(STORYBOARD)
    (root / "alt.yaml").write_text(STORYBOARD.replace("name: merges", "name: alt"))
    (root / "alt.lock").write_text(
        '<<<<<<< ours\n{"kling-compose-lock":2,"storyboard":"alt"}\n=======\n'
        '{"kling-compose-lock":2,"storyboard":"alt"}\n'
        f'{{"shot":"one","cache_key":"{"a" * 64}","sha256":["{"b" * 64}"]}}\n>>>>>>> theirs\n')
    result = cli("plan", root / "alt.yaml")
    assert result.exit_code == 1
    assert "kling-compose lock resolve alt.yaml" in result.output or \
        f"kling-compose lock resolve {root / 'alt.yaml'}" in result.output, result.output


@pytest.mark.parametrize("option", [["--provider", "nope"], ["--preview-resolution", "5"],
                                    ["--format", "html"]])
def test_plan_detailed_exitcode_never_reports_an_error_as_changes(project, option):
    """docs/ci.md: 0 nothing to do, 2 something to make, 1 an error, and the recipe fails the
    job only on 1. A bad option is click's usage error, exit 2: CI reads it as "shots to make"
    and passes, posting an empty plan."""
    root = project(STORYBOARD.replace("provider: fal", "provider: preview"))
    result = cli("plan", root, "--detailed-exitcode", *option)
    assert result.exit_code == 1, (result.exit_code, result.output)


def test_lock_rename_of_a_lock_it_cannot_read_says_so(project):
    """A conflicted (or otherwise unreadable) lock reads as empty, and `lock rename` answers
    "the locks already name 'merges'", exit 0: nothing was renamed, and the refusal stays."""
    root = project(STORYBOARD)
    (root / "storyboard.lock").write_text(
        '<<<<<<< ours\n{"kling-compose-lock":2,"storyboard":"old"}\n=======\n'
        '{"kling-compose-lock":2,"storyboard":"old"}\n>>>>>>> theirs\n')
    result = cli("lock", "rename", root)
    assert "already name" not in result.output, result.output


def test_pull_writes_the_film_and_takes_the_storyboard_uses_not_the_newest_entries(
        project, sim, sim_env, tmp_path):
    """A shot keeps every paid result (issue 26), and going back to an earlier prompt restores
    it: the lock then holds the earlier and the abandoned entry of the shot, and of the film
    (the film made again has the first film's cache key, so its first entry is kept as
    written). `pull` (export_lock) writes each shot's and film's *newest* entry: a keyless
    teammate gets the abandoned version's film and take in renders/, not the cut the
    storyboard and the lock's author have."""
    import hashlib
    import shutil
    import time

    store = tmp_path / "store"
    root = project(STORYBOARD.replace("name: merges", f"name: merges\nstore: {store}"))
    board = root / "storyboard.yaml"
    first = board.read_text()
    assert run(root, sim_env)["generated"] == 2
    time.sleep(1.1)  # created_at has whole seconds
    board.write_text(first.replace("Boats leave the harbour", "Gulls over the harbour"))
    assert run(root, sim_env)["generated"] == 1
    time.sleep(1.1)
    board.write_text(first)  # back to the first cut: $0
    assert run(root, sim_env)["generated"] == 0
    clone = tmp_path / "teammate"
    clone.mkdir()
    for name in ("storyboard.yaml", "storyboard.lock"):
        shutil.copy(root / name, clone / name)
    keyless = {k: v for k, v in sim_env.items() if "KEY" not in k}
    pulled = cli("pull", clone, env=keyless)
    assert pulled.exit_code == 0, pulled.output

    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    assert digest(clone / "renders" / "shots" / "two.mp4") == \
        digest(root / "renders" / "shots" / "two.mp4")
    assert digest(clone / "renders" / "merges.mp4") == digest(root / "renders" / "merges.mp4")
