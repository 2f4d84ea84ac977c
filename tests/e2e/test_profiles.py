"""Issue 25, profiles: one storyboard holds a draft and a final rendering. Each profile's
clips, lock and films are kept apart, so switching `--profile draft` / `--profile final` back
and forth generates nothing twice, and a teammate's keyless `git clone` restores both
profiles' clips. Against the simulator, with real git."""

from __future__ import annotations

import json
import os
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from _e2e import PREVIEW, cli
from kling_compose.settings import KEY_VARIABLES
from support.locks import read_lock

STORYBOARD = """\
version: 1
name: profiles
defaults: { provider: fal, model: kling-3-pro, duration: 5, aspect: "16:9" }
profiles:
  draft: { model: kling-3-std, audio: false }
  final: { model: kling-3-pro, audio: true }
scenes:
  - id: a
    shots:
      - { id: one, prompt: A harbour at dawn }
      - id: two
        prompt: Boats leave the harbour
        first_frame: { from: one, frame: last }
"""


def _git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)


def _run(root: Path, env: dict, *extra: str) -> dict:
    result = cli("run", root, "--json", *PREVIEW, *extra, env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _tiers(sim) -> list[str]:
    return [g.request["endpoint"].split("/")[3] for g in sim.generations("fal")]


@pytest.fixture
def paid(project, sim, sim_env):
    """A project whose draft, then final, ran against the simulator (the root)."""
    root = project(STORYBOARD)
    (root / ".gitignore").write_text(".kling-compose/\nrenders/\n")
    draft = _run(root, sim_env, "--profile", "draft")
    assert draft["generated"] == 2 and draft["failed"] == 0, draft
    final = _run(root, sim_env, "--profile", "final")
    assert final["generated"] == 2 and final["failed"] == 0, final
    return root


def test_each_profile_renders_its_own_tier_to_its_own_lock_and_film(paid, sim):
    assert _tiers(sim) == ["standard", "standard", "pro", "pro"]
    assert sorted(p.name for p in paid.glob("*.lock")) == ["storyboard.draft.lock",
                                                           "storyboard.final.lock"]
    draft = read_lock(paid / "storyboard.draft.lock")
    final = read_lock(paid / "storyboard.final.lock")
    assert draft["profile"] == "draft" and final["profile"] == "final"
    assert set(draft["outputs"]) == {"renders/profiles.draft.mp4"}
    assert set(final["outputs"]) == {"renders/profiles.final.mp4"}
    assert draft["shots"]["one"]["sha256"] != final["shots"]["one"]["sha256"]
    for profile in ("draft", "final"):
        assert (paid / "renders" / f"profiles.{profile}.mp4").is_file()
        assert (paid / "renders" / profile / "shots" / "one.mp4").is_file()
    assert not (paid / "renders" / "shots").exists()  # the plain defaults never ran
    # billed as each tier's price: 2 x 5 s at std silent 0.084 and pro with audio 0.168
    assert sim.billed("fal") == 10 * Decimal("0.084") + 10 * Decimal("0.168")


def test_switching_back_and_forth_generates_nothing(paid, sim, sim_env):
    films = {p: (paid / "renders" / f"profiles.{p}.mp4").read_bytes() for p in ("draft", "final")}
    locks = {p: (paid / f"storyboard.{p}.lock").read_bytes() for p in ("draft", "final")}
    billed = len(sim.generations("fal"))
    for profile in ("draft", "final", "draft", "final"):
        summary = _run(paid, sim_env, "--profile", profile)
        assert summary["generated"] == 0 and summary["cached"] >= 2, (profile, summary)
        assert (paid / "renders" / f"profiles.{profile}.mp4").read_bytes() == films[profile]
        assert (paid / f"storyboard.{profile}.lock").read_bytes() == locks[profile]
    assert len(sim.generations("fal")) == billed
    planned = json.loads(cli("plan", paid, "--json", "--profile", "draft", *PREVIEW,
                             env=sim_env).stdout)
    assert planned["to_pay_usd"] == 0


def test_a_keyless_clone_restores_both_profiles(paid, sim, sim_env, tmp_path):
    _git(paid, "init", "-q")
    _git(paid, "add", "-A")
    _git(paid, "commit", "-qm", "draft and final")
    clone = tmp_path / "teammate"
    _git(tmp_path, "clone", "-q", str(paid), str(clone))
    assert sorted(p.name for p in clone.glob("*.lock")) == ["storyboard.draft.lock",
                                                            "storyboard.final.lock"]
    keyless = {**sim_env, **{v: "" for v in KEY_VARIABLES.values()}}
    billed = len(sim.generations("fal"))
    for profile in ("draft", "final"):
        summary = _run(clone, keyless, "--profile", profile)
        assert summary["restored"] == 2 and summary["generated"] == 0, (profile, summary)
        assert (clone / "renders" / f"profiles.{profile}.mp4").read_bytes() == \
            (paid / "renders" / f"profiles.{profile}.mp4").read_bytes()
    assert len(sim.generations("fal")) == billed


def test_an_unknown_profile_is_a_located_error_naming_the_profiles(project, sim_env):
    root = project(STORYBOARD)
    result = cli("plan", root, "--profile", "drat", env=sim_env)
    assert result.exit_code == 1
    assert "storyboard.yaml:5:3: error: no profile" in result.stderr  # at the profiles
    assert "no profile 'drat'" in result.stderr and "did you mean 'draft'?" in result.stderr


def test_status_report_and_export_read_the_profile_s_own_records(paid, sim_env):
    for profile in ("draft", "final"):
        status = json.loads(cli("status", paid, "--json", "--profile", profile, *PREVIEW,
                                env=sim_env).stdout)
        assert status["pending"] == 0, status
        report = cli("report", paid, "--profile", profile, *PREVIEW, env=sim_env)
        assert report.exit_code == 0, report.output
        page = paid / "renders" / profile / "report.html"
        assert page.is_file() and f"profiles.{profile}.mp4" in page.read_text()
        export = cli("export", paid, "--profile", profile, env=sim_env)
        assert export.exit_code == 0, export.output
        assert (paid / "renders" / f"profiles.{profile}.otio").is_file()
    # the plain defaults never ran: nothing of theirs is done, and their plan says so
    plain = json.loads(cli("status", paid, "--json", *PREVIEW, env=sim_env).stdout)
    assert plain["pending"] > 0
    line = cli("plan", paid, "--profile", "draft", *PREVIEW, env=sim_env).stdout
    # one line: each profile's whole cost, and what the planned one's next run pays where it
    # is not $0 (another profile's is not asked for: no probe of its result URLs)
    assert "profiles: (defaults) $1.680 · *draft $0.840 · final $1.680\n" in line, line


def _stored(root: Path) -> set[str]:
    return {p.name.split(".")[0] for p in (root / ".kling-compose" / "objects").glob("*/*")}


def test_gc_keeps_every_profile_s_paid_clips_whatever_it_is_run_with(paid, sim_env,
                                                                     monkeypatch):
    """The review's finding: a rehearsal of `final` on the preview rewrote its lock, and a
    `gc` without --profile then removed final's paid clips (paid again on the next run). gc
    keeps every profile's plan; run from inside the project with no PATH (its own example),
    it names what it removes relative to the project and never fails."""
    paid_clips = {read_lock(paid / f"storyboard.{p}.lock")["shots"]["one"]
                  ["sha256"][0] for p in ("draft", "final")}
    final_lock = (paid / "storyboard.final.lock").read_bytes()
    rehearsal = _run(paid, sim_env, "--profile", "final", "--provider", "preview")
    assert rehearsal["failed"] == 0 and rehearsal["generated"] == 2
    # the profile's rehearsal is recorded apart: its paid lock is byte-identical
    assert (paid / "storyboard.final.lock").read_bytes() == final_lock
    assert set(read_lock(paid / ".kling-compose" / "rehearsal.storyboard.final.lock")
               ["shots"]) == {"one", "two"}
    monkeypatch.chdir(paid)
    for flags in ((), ("--profile", "draft")):
        result = cli("gc", *flags, env=sim_env)
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output
        assert paid_clips <= _stored(paid), result.output
    # and so `final` on fal is still cached: nothing is paid again
    again = _run(paid, sim_env, "--profile", "final")
    assert again["generated"] == 0, again
