"""Dialogue and voices against the simulator (issue 24): a two-character storyboard whose
speaker has a voice sample runs on fal; the voice is made once (create-voice) and named by its
id in every generation it speaks in, a second run and a second shot reuse it, and a keyless
clone plans it unneeded with nothing to pay."""

from __future__ import annotations

import json
import math
import os
import signal
import struct
import subprocess
import sys
import time
import wave
from decimal import Decimal
from pathlib import Path

import pytest
from _e2e import PREVIEW, cli, clone_project

STORYBOARD = """\
version: 1
name: kitchen
defaults:
  duration: 5
elements:
  mara: { frontal_image: assets/start.png, voice: assets/mara-voice.wav }
  theo: { frontal_image: assets/start.png }
scenes:
  - id: kitchen
    shots:
      - id: tea
        prompt: "@mara pours tea for @theo"
        first_frame: assets/start.png
        dialogue:
          - { speaker: mara, line: "You came back.", tone: quietly }
          - { speaker: theo, line: "I never left." }
          - { speaker: narrator, line: "She did not believe him." }
      - id: door
        prompt: "@mara at the door"
        first_frame: assets/start.png
        dialogue:
          - { speaker: mara, line: "Then stay." }
"""


def write_voice(path: Path, seconds: float = 6.0) -> None:
    """A mono 16 kHz WAV tone of `seconds`: a sample of the length fal documents (5-30 s)."""
    rate = 16000
    frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 220 * n / rate)))
                      for n in range(int(rate * seconds)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)


def fal_run(root: Path, env: dict) -> dict:
    result = cli("run", root, "--json", "--provider", "fal", *PREVIEW, env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def plan_json(root: Path, env: dict) -> dict:
    result = cli("plan", root, "--json", "--provider", "fal", env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_voice_is_made_once_named_by_id_and_a_keyless_clone_pays_nothing(
        project, sim, sim_env, tmp_path):
    root = project(STORYBOARD)
    write_voice(root / "assets" / "mara-voice.wav")
    planned = plan_json(root, sim_env)
    tasks = {t["id"]: t for t in planned["tasks"]}
    voice = tasks["voice:fal:assets/mara-voice.wav"]
    assert voice["status"] == "new" and voice["estimated_cost_usd"] == 0.007, voice
    assert "upload:fal:assets/mara-voice.wav" in voice["depends_on"]

    summary = fal_run(root, sim_env)
    assert summary["failed"] == 0 and summary["generated"] == 2, summary
    fal = sim.fal
    assert len(fal.voices) == 1  # one voice for two shots
    (voice_id,) = fal.voices
    sent = [g.request["input"] for g in sim.generations("fal")]
    for body in sent:  # bound to the speaking element, mara, the first element
        assert body["elements"][0]["voice_id"] == voice_id
        assert all("voice_id" not in e for e in body["elements"][1:])
    tea = next(b for b in sent if "pours tea" in b["prompt"])
    assert tea["prompt"].splitlines()[1:] == [
        '[@Element1, quietly]: "You came back."',
        '[@Element2]: "I never left."',
        '[Narrator, off-screen voice-over]: "She did not believe him."',
    ]
    # voice control is billed: 2 x 5 s x $0.196, and the voice $0.007
    assert sim.billed("fal") == 2 * 5 * Decimal("0.196") + Decimal("0.007")

    again = fal_run(root, sim_env)
    assert again["generated"] == 0 and again["cached"] >= 2
    assert len(fal.voices) == 1  # reused, not made again

    clone = clone_project(root, tmp_path / "teammate")
    keyless = sim_env | {"FAL_KEY": ""}
    cloned = plan_json(clone, keyless)
    statuses = {t["id"]: t["status"] for t in cloned["tasks"]}
    assert statuses["voice:fal:assets/mara-voice.wav"] == "unneeded", statuses
    assert statuses["generate:tea"] == statuses["generate:door"] == "restorable"
    to_pay = [t for t in cloned["tasks"] if t["status"] not in ("cached", "restorable",
                                                                  "unneeded")]
    assert sum(t["estimated_cost_usd"] or 0 for t in to_pay) == 0, to_pay
    restored = fal_run(clone, keyless)
    assert restored["restored"] == 2 and restored["generated"] == 0, restored
    assert len(fal.voices) == 1


KLING_STORYBOARD = """\
version: 1
name: song
defaults: {provider: kling, model: kling-3-pro, duration: 3}
elements:
  singer:
    description: A singer in a red coat
    videos: [https://example.com/singer.mp4]
    voice: https://example.com/singer-voice.wav
scenes:
  - id: main
    shots:
      - id: verse
        prompt: "@singer on a stage"
        first_frame: assets/start.png
        dialogue: [{speaker: singer, line: "Here I am.", tone: warmly}]
      - id: chorus
        prompt: "@singer bows"
        first_frame: assets/start.png
        dialogue: [{speaker: singer, line: "Thank you."}]
"""


def test_kling_makes_a_custom_voice_once_and_binds_it_to_the_video_element(tmp_path):
    from test_kling_runs import ACCESS, SECRET, run, write_project

    from kling_compose.simulator import Faults, Simulator

    with Simulator({"kling": f"{ACCESS}:{SECRET}"}, Faults(task_seconds=0.05),
                   short_side=360) as sim:
        root = write_project(tmp_path / "song", KLING_STORYBOARD)
        summary = run(root, sim)
        assert summary["failed"] == 0, summary
        status = {t["id"]: t["status"] for t in summary["tasks"]}
        voice_task = "voice:kling:https://example.com/singer-voice.wav"
        assert status[voice_task] == status["element:kling:singer"] == "done"
        (voice_id,) = sim.kling.voices  # one voice for two shots
        (element,) = [t.element for t in sim.kling.element_tasks.values()]
        assert element["element_voice_id"] == voice_id
        prompts = sorted(g.request["prompt"] for g in sim.generations("kling"))
        assert prompts == ['<<<element_1>>> bows\n[<<<element_1>>>]: "Thank you."',
                           '<<<element_1>>> on a stage\n[<<<element_1>>>, warmly]: "Here I am."']
        again = run(root, sim)
        assert again["generated"] == 0 and len(sim.kling.voices) == 1
        assert {t["id"]: t["status"] for t in again["tasks"]}[voice_task] == "cached"


def test_a_lost_create_voice_answer_is_found_on_fal_s_request_list_not_paid_again(
        project, sim, sim_env):
    """The create-voice request reached fal and was billed, its answer was lost: the next run
    finds it on create-voice's request list by the body it sent, and the voice is not made
    twice (before, the voice stayed 'submitting' for good with a way on that was refused)."""
    root = project(STORYBOARD)
    write_voice(root / "assets" / "mara-voice.wav")
    sim.faults.reset(1, provider="fal", kind="submit", after_processing=True)
    first = cli("run", root, "--json", "--provider", "fal", *PREVIEW, env=sim_env)
    summary = json.loads(first.stdout)
    if summary["failed"] or summary["skipped"]:  # the run stopped at the lost answer
        summary = fal_run(root, sim_env)
    assert summary["failed"] == 0, summary
    assert len(sim.fal.voices) == 1  # made once, found again
    assert sim.billed("fal") == 2 * 5 * Decimal("0.196") + Decimal("0.007")


def test_a_voice_the_account_no_longer_knows_is_made_again_by_forcing_it(project, sim, sim_env):
    """A deleted voice (or another account's key): the refusal says which voice to force, and
    `run --force voice:...` makes it again; the shots already made are not paid again."""
    root = project(STORYBOARD)
    write_voice(root / "assets" / "mara-voice.wav")
    fal_run(root, sim_env)
    sim.fal.voices.clear()  # the account's voice was deleted
    storyboard = root / "storyboard.yaml"
    storyboard.write_text(storyboard.read_text().replace("@mara at the door",
                                                         "@mara at the red door"))
    refused = json.loads(cli("run", root, "--json", "--provider", "fal", *PREVIEW,
                             env=sim_env).stdout)
    (door,) = [t for t in refused["tasks"] if t["id"] == "generate:door"]
    assert door["status"] == "failed"
    assert "`kling-compose run --force voice:fal:assets/mara-voice.wav`" in door["error"]
    billed = sim.billed("fal")
    forced = cli("run", root, "--json", "--provider", "fal", *PREVIEW, "--force",
                 "voice:fal:assets/mara-voice.wav", env=sim_env)
    summary = json.loads(forced.stdout)
    assert summary["failed"] == 0 and summary["generated"] == 1, summary  # door, not tea
    assert len(sim.fal.voices) == 1
    assert sim.billed("fal") == billed + Decimal("0.007") + 5 * Decimal("0.196")


def test_force_names_a_shot_or_a_voice_or_element_task(project, sim_env):
    root = project(STORYBOARD)
    write_voice(root / "assets" / "mara-voice.wav")
    result = cli("run", root, "--provider", "fal", "--force", "voice:fal:nothing", env=sim_env)
    assert result.exit_code == 1
    assert "--force: no shot 'voice:fal:nothing' in the storyboard" in result.output
    assert "the id of a voice or element task" in result.output


def test_the_question_before_paying_counts_the_voice_it_makes(project):
    """The gate before spending listed generations only: a fal voice ($0.007) was left out
    of what it showed, while the run pays for it (review of issue 26)."""
    from kling_compose.commands.review import spending
    from kling_compose.console import route
    from kling_compose.pipeline import build_storyboard_plan, load_resolved, plan_statuses

    root = project(STORYBOARD)
    write_voice(root / "assets" / "mara-voice.wav")
    plan = build_storyboard_plan(load_resolved(root / "storyboard.yaml", {}, "storyboard.yaml",
                                               None), "fal")
    paid = spending(plan, plan_statuses(plan), (), (), route)
    voices = [t for t in plan.tasks.values() if t.kind == "voice"]
    assert voices and voices[0].cost_usd > 0
    lines = paid.lines()
    assert "2 generation(s) and 1 voice or element task(s)" in lines[0], lines
    assert paid.total_usd == sum(t.cost_usd for t in plan.tasks.values()
                                 if t.cost_usd and t.provider == "fal")
    assert any(line.split()[:2] == ["fal", "voice"] for line in lines[1:]), lines


def test_max_cost_counts_the_voice_it_makes_before_anything_runs(project, sim, sim_env):
    """--max-cost's check before the run added generations only: a cap between the shots'
    price and the shots' plus the fal voice's passed the check, and the run paid past it."""
    from kling_compose.pipeline import build_storyboard_plan, load_resolved

    root = project(STORYBOARD)
    write_voice(root / "assets" / "mara-voice.wav")
    plan = build_storyboard_plan(load_resolved(root / "storyboard.yaml", {}, "storyboard.yaml",
                                               None), "fal")
    shots = sum(t.cost_usd for t in plan.tasks.values() if t.kind == "generate")
    voice = sum(t.cost_usd for t in plan.tasks.values() if t.kind == "voice")
    assert voice > 0
    cap = shots + voice / 2
    result = cli("run", root, "--provider", "fal", *PREVIEW, "--max-cost", str(cap),
                 env=sim_env)
    assert result.exit_code == 1, result.output
    assert f"would cost an estimated ${shots + voice:.3f}" in result.stderr
    assert not sim.fal.voices and not sim.generations("fal")  # refused before paying


def stop_when(command: list[str], env: dict, seen, how: int, after_s: float = 0.0) -> None:
    """Start `command` and send it `how` once `seen()` holds (then `after_s` later)."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not seen():
        time.sleep(0.005)
    time.sleep(after_s)
    proc.send_signal(how)
    proc.wait(timeout=30)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_run_stopped_while_its_voice_is_made_resumes_and_pays_for_it_once(project, sim,
                                                                          sim_env, how):
    """Stopped (killed, or Ctrl-C) while fal makes the voice, the next run follows the same
    create-voice request: one voice, billed once, and both shots made with it."""
    root = project(STORYBOARD)
    write_voice(root / "assets" / "mara-voice.wav")
    sim.faults.task_seconds = 2.5
    command = [sys.executable, "-m", "kling_compose", "run", str(root), "--provider", "fal",
               *PREVIEW]
    stop_when(command, os.environ | sim_env, lambda: sim.requests("fal", "poll"), how)
    assert sim.fal.voices and not sim.generations("fal")  # stopped at the voice
    sim.faults.task_seconds = 0.05
    summary = fal_run(root, sim_env)
    assert summary["failed"] == 0 and summary["generated"] == 2, summary
    assert len(sim.fal.voices) == 1
    assert sim.billed("fal") == 2 * 5 * Decimal("0.196") + Decimal("0.007")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_kling_run_stopped_while_its_voice_is_made_makes_each_once(tmp_path, how):
    """The same on Kling, where the voice goes into an element: stopped while the voice is
    made, the next run makes one custom voice, one element and two generations."""
    from test_kling_runs import ACCESS, SECRET, run, write_project

    from kling_compose.simulator import Faults, Simulator

    with Simulator({"kling": f"{ACCESS}:{SECRET}"}, Faults(task_seconds=2.5),
                   short_side=360) as sim:
        root = write_project(tmp_path / "song", KLING_STORYBOARD)
        env = os.environ | dict(sim.env()) | {"KLING_COMPOSE_POLL_SECONDS": "0.05",
                                              "KLING_ACCESS_KEY": ACCESS,
                                              "KLING_SECRET_KEY": SECRET}
        stop_when([sys.executable, "-m", "kling_compose", "run", str(root)], env,
                  lambda: sim.kling.voices, how, after_s=0.3)  # the voice in the making
        assert sim.kling.voices and not sim.generations("kling")  # stopped before any shot
        sim.faults.task_seconds = 0.05
        summary = run(root, sim)
        assert summary["failed"] == 0 and summary["generated"] == 2, summary
        assert len(sim.kling.voices) == 1 and len(sim.kling.element_tasks) == 1
        assert len(sim.generations("kling")) == 2
