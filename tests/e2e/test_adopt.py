"""`kling-compose adopt SHOT TASK_ID` (issue 21 item 13): a submission whose answer was lost on a
provider with no lookup by our id is paid and unreachable; the message that stops the run names
`adopt`, and adopting the task the dashboard shows collects the clip without paying again."""

from __future__ import annotations

import json

import pytest
from _e2e import cli
from test_money_runs import ONE_SHOT, environment, run, sim  # noqa: F401
from support.locks import read_lock

TWO_SHOTS = ONE_SHOT + "      - id: s2\n        prompt: the lantern goes out over the water\n"


def adopt(root, sim, *args):
    return cli("adopt", *args, root, "--provider", "kie", env=environment(sim))


def test_a_lost_kie_submission_is_adopted_and_never_paid_twice(project, sim):
    root = project(ONE_SHOT)
    sim.faults.reset(1, provider="kie", kind="submit", after_processing=True)
    first = run(root, "kie", sim)
    assert first["failed"] == 1 and len(sim.generations("kie")) == 1  # paid, answer lost
    assert "kling-compose adopt s1 TASK_ID" in json.dumps(first)
    again = run(root, "kie", sim)  # nothing sent again by itself
    assert again["failed"] == 1 and len(sim.generations("kie")) == 1
    (made,) = sim.generations("kie")
    adopted = adopt(root, sim, "s1", made.id)
    assert adopted.exit_code == 0, adopted.output
    assert f"adopted task {made.id} as shot 's1'" in adopted.stdout
    downloads = len(sim.requests("kie", "download")) + len(sim.requests("files", "download"))
    summary = run(root, "kie", sim)
    assert summary["failed"] == 0, summary
    assert len(sim.generations("kie")) == 1  # one generation paid, one clip kept
    lock = read_lock(root / "storyboard.lock")
    assert lock["shots"]["s1"]["task_id"] == made.id
    # the takes adopt downloaded and verified are not fetched again
    assert len(sim.requests("kie", "download")) + len(sim.requests("files", "download")) \
        == downloads
    assert run(root, "kie", sim)["cached"] >= 1


def test_adopt_refuses_a_task_made_for_another_shot(project, sim):
    root = project(TWO_SHOTS)
    summary = run(root, "kie", sim, "--only", "s2")
    assert summary["failed"] == 0
    (other,) = sim.generations("kie")
    refused = adopt(root, sim, "s1", other.id)
    assert refused.exit_code == 1
    assert "was not made from shot 's1''s request" in refused.output
    assert "prompt" in refused.output and "Traceback" not in refused.output


@pytest.mark.parametrize("args, message", [
    (("s1", "no-such-task"), "adopt: kie does not"),  # kie answers an unknown id with 422
    (("nope", "abc"), "no shot 'nope'"),
])
def test_adopt_refuses_what_it_cannot_take_with_one_message(project, sim, args, message):
    root = project(ONE_SHOT)
    refused = adopt(root, sim, *args)
    assert refused.exit_code == 1 and message in refused.output, refused.output
    assert "Traceback" not in refused.output
    assert sim.generations("kie") == []


@pytest.mark.parametrize("provider", ["runware", "fal", "kling", "kling-v3-task"])
def test_every_hosted_provider_adopts_a_task_by_its_id_alone(project, sim, provider):
    """The id is all the dashboard gives: each provider rebuilds what its poll needs from it
    (fal: the queue URLs; kling: the endpoint), and the next run pays nothing."""
    from test_money_runs import environment as env_of

    root = project(ONE_SHOT)
    made = run(root, provider, sim)  # a first project makes the task the dashboard shows
    assert made["failed"] == 0, made
    (generation,) = sim.generations(provider)
    clone = root.parent / "clone"  # a second project, same storyboard, knows nothing of it
    clone.mkdir()
    (clone / "storyboard.yaml").write_text((root / "storyboard.yaml").read_text())
    adopted = cli("adopt", "s1", _task_id(sim, provider, generation), clone, "--provider",
                  provider, env=env_of(sim))
    assert adopted.exit_code == 0, adopted.output
    summary = run(clone, provider, sim)
    assert summary["failed"] == 0 and len(sim.generations(provider)) == 1, summary
    assert read_lock(clone / "storyboard.lock")["shots"]["s1"]["task_id"] == \
        _task_id(sim, provider, generation) or provider == "kling"


def _task_id(sim, provider, generation) -> str:
    """The id the provider's dashboard shows for a generation (kling: its task_id)."""
    return generation.id.split("#")[0]
