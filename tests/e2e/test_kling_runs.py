"""`kling-compose run --provider kling` against the provider simulator's official Kling API
(kling_compose/simulator/kling.py, written from Kling's documentation independently of
providers/kling/): JWT, elements, chains, multi-shot, the omni endpoint, no key leaked."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from _e2e import cli
from PIL import Image

from kling_compose.simulator import Faults, Simulator
from support.locks import read_lock

ACCESS, SECRET = "e2e-kling-access-key-0001", "e2e-kling-secret-key-0001-abcdef012345"

STORYBOARD = """\
version: 1
name: harbour
defaults:
  provider: kling
  model: kling-3-pro
  duration: 3
elements:
  keeper:
    description: A lighthouse keeper in a yellow oilskin
    frontal_image: assets/keeper.png
    images: [assets/keeper-side.png]
    tags: [Character]
scenes:
  - id: main
    shots:
      - id: arrive
        prompt: "@keeper walks along the pier at dawn"
        first_frame: assets/start.png
      - id: storm
        first_frame: {from: arrive}
        duration: 5
        multi_prompt:
          - {prompt: "@keeper looks at the sky", duration: 2}
          - {prompt: Waves break over the pier, duration: 3}
      - id: wide
        prompt: The harbour from above, gulls circling
        aspect: "16:9"
        audio: true
"""


@pytest.fixture
def sim():
    # clips of 640x360: a chained frame must have 300 px a side on Kling
    with Simulator({"kling": f"{ACCESS}:{SECRET}"}, Faults(task_seconds=0.05),
                   short_side=360) as simulator:
        yield simulator


def write_project(root: Path, storyboard: str = STORYBOARD) -> Path:
    (root / "assets").mkdir(parents=True)
    for n, name in enumerate(("start", "keeper", "keeper-side")):
        Image.new("RGB", (640, 360), (60 * n, 120, 200 - 40 * n)).save(root / "assets" /
                                                                         f"{name}.png")
    (root / "storyboard.yaml").write_text(storyboard, encoding="utf-8")
    return root


def run(root: Path, sim, *extra) -> dict:
    env = dict(sim.env()) | {"KLING_COMPOSE_POLL_SECONDS": "0.05",
                             "KLING_ACCESS_KEY": ACCESS, "KLING_SECRET_KEY": SECRET}
    result = cli("run", root, "--json", *extra, env=env)
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def statuses(summary: dict) -> dict[str, str]:
    return {t["id"]: t["status"] for t in summary["tasks"]}


def test_elements_chains_and_multi_shot_run_and_rerun_for_free(tmp_path, sim):
    root = write_project(tmp_path / "film")
    summary = run(root, sim)
    assert summary["failed"] == 0, summary
    assert statuses(summary)["element:kling:keeper"] == "done"
    assert len(sim.generations("kling")) == 3
    assert (root / "renders" / "harbour.mp4").is_file()
    lock = read_lock(root / "storyboard.lock")
    assert set(lock["shots"]) == {"arrive", "storm", "wide"}
    again = run(root, sim)
    assert again["generated"] == 0 and len(sim.generations("kling")) == 3
    assert statuses(again)["element:kling:keeper"] == "cached"


def test_the_omni_endpoint_edits_a_video_and_makes_multi_shot_clips(tmp_path, sim):
    root = write_project(tmp_path / "omni", """\
version: 1
name: omni
defaults: {provider: kling, model: kling-o3-pro}
scenes:
  - id: main
    shots:
      - id: edit
        prompt: Restyle the clip as a rainy night
        video: https://example.com/source.mp4
        duration: 6
      - id: shots
        size: 1920x1080
        audio: true
        multi_prompt:
          - {prompt: A drummer starts, duration: 3}
          - {prompt: The crowd claps, duration: 3}
""")
    summary = run(root, sim)
    assert summary["failed"] == 0, summary
    assert len(sim.generations("kling")) == 2


def test_neither_key_nor_token_is_written_anywhere(tmp_path, sim):
    root = write_project(tmp_path / "film")
    summary = run(root, sim)
    assert summary["failed"] == 0, summary
    # every token starts with the base64url of its header {"alg":"HS256","typ":"JWT"}
    token_head = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert ACCESS.encode() not in data and SECRET.encode() not in data, path
            assert token_head not in data, path
    text = json.dumps(summary)
    assert ACCESS not in text and SECRET not in text and token_head.decode() not in text


def test_an_element_two_shots_use_is_created_once(tmp_path, sim):
    root = write_project(tmp_path / "film")
    assert run(root, sim)["failed"] == 0
    creations = [r for r in sim.requests("kling", "element") if r.method == "POST"]
    assert len(creations) == 1  # `arrive` and `storm` both name @keeper
    bodies = [r.body for r in sim.requests("kling", "submit")]
    ids = {json.dumps(b.get("element_list")) for b in bodies if b.get("element_list")}
    assert len(ids) == 1  # both shots reference the one element id


def test_a_first_and_last_frame_chain(tmp_path, sim):
    root = write_project(tmp_path / "frames", """\
version: 1
name: frames
defaults: {provider: kling, model: kling-3-pro, duration: 3}
scenes:
  - id: main
    shots:
      - id: a
        prompt: The pier at dawn
        first_frame: assets/start.png
      - id: c
        prompt: The pier at noon
        first_frame: assets/keeper.png
      - id: b
        prompt: The light changes from dawn to noon
        first_frame: {from: a}
        last_frame: {from: c, frame: first}
""")
    summary = run(root, sim)
    assert summary["failed"] == 0, summary
    body = next(r.body for r in sim.requests("kling", "submit")
                if r.body.get("prompt", "").startswith("The light"))
    assert body["image"] and body["image_tail"] and "aspect_ratio" not in body
    assert not body["image"].startswith("data:") and not body["image_tail"].startswith("data:")


def test_a_long_run_signs_a_new_token_before_the_old_one_expires(tmp_path, sim, monkeypatch):
    """Tokens live 2 s here (30 min in life) and each generation 4 s: a run that kept its
    first token would be refused by the simulator (code 1004) while polling. The lifetime is
    patched where `sign_token` reads it (kling.api: the package's re-export is a copy), and
    every token the run signed is checked to carry it, so the test fails if the patch no
    longer reaches the signer."""
    import jwt

    from kling_compose.providers.kling import api

    monkeypatch.setattr(api, "TOKEN_LIFETIME_S", 2)
    signed: list[str] = []
    sign = api.sign_token

    def recorded(key, now):
        signed.append(sign(key, now))
        return signed[-1]

    monkeypatch.setattr(api, "sign_token", recorded)
    sim.faults.task_seconds = 4.0
    root = write_project(tmp_path / "long", STORYBOARD.split("      - id: storm")[0])
    summary = run(root, sim)
    assert summary["failed"] == 0, summary
    polls = sim.requests("kling", "poll")
    assert polls and polls[-1].time_s - sim.requests("kling", "submit")[0].time_s > 2
    claims = [jwt.decode(t, options={"verify_signature": False}) for t in signed]
    assert len(claims) >= len(polls)  # each request signed its own token
    assert {c["exp"] - c["nbf"] for c in claims} == {2 + api.NOT_BEFORE_S}


def test_a_lost_submit_answer_is_found_by_external_task_id_and_not_paid_twice(tmp_path, sim):
    """The simulator accepts the submission, then resets the connection before answering: the
    client asks for its own external_task_id, finds the task, and polls it."""
    sim.faults.reset(1, after_processing=True, provider="kling", kind="submit")
    root = write_project(tmp_path / "lost", STORYBOARD.split("      - id: storm")[0])
    first = run(root, sim)
    billed = len(sim.generations("kling"))
    summary = first if first["failed"] == 0 else run(root, sim)  # found now, or next run
    assert summary["failed"] == 0, (first, summary)
    assert len(sim.generations("kling")) == billed == 1
    lookups = [r for r in sim.requests("kling", "poll")
               if not r.path.rstrip("/").split("/")[-1].isdigit()]
    assert lookups, "no query by external_task_id"


def test_plan_requests_lists_the_element_creation_before_the_shots_that_use_it(tmp_path, sim):
    root = write_project(tmp_path / "film")
    entries = json.loads(cli("plan", root, "--requests").stdout)
    element = next(e for e in entries if e["task"] == "element:kling:keeper")
    assert element["shot"] is None and element["element"] == "keeper"
    order = [e["task"] for e in entries]
    assert order.index("element:kling:keeper") < order.index("generate:arrive")
    run(root, sim)  # what the run sends is what the plan printed, placeholders filled in
    sent = [r for r in sim.requests("kling", "element") if r.method == "POST"]
    assert len(sent) == 1
    body = sent[0].body
    assert body.pop("external_task_id")  # added when sent, as for a generation
    assert body.keys() == element["request"].keys()
    assert {k: v for k, v in body.items() if "image" not in k} == {
        k: v for k, v in element["request"].items() if "image" not in k}


def test_a_keyless_clone_restores_shots_that_use_a_run_created_element(tmp_path, sim):
    """The element was created by the first run (no `id:` in the storyboard): a clone without
    Kling keys restores every shot from the lock, and creates no element (it would need the
    keys, and no generation of this run sends it)."""
    from _e2e import clone_project

    root = write_project(tmp_path / "film")
    assert run(root, sim)["failed"] == 0
    billed = len(sim.generations("kling"))
    created = len(sim.requests("kling", "element"))
    clone = clone_project(root, tmp_path / "teammate")
    env = dict(sim.env()) | {"KLING_ACCESS_KEY": "", "KLING_SECRET_KEY": ""}
    result = cli("run", clone, "--json", env=env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["restored"] == 3 and summary["generated"] == 0, summary
    assert statuses(summary)["element:kling:keeper"] == "unneeded"
    assert len(sim.generations("kling")) == billed
    assert len(sim.requests("kling", "element")) == created
    assert (clone / "renders" / "harbour.mp4").read_bytes() == \
        (root / "renders" / "harbour.mp4").read_bytes()
