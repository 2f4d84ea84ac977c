"""Nothing `run` refuses could have been refused before the first paid submission (issue 8).

For the demo example and for generated storyboards (hypothesis), whatever validates for a
hosted provider runs against the simulator without a single failed task: every limit, input
kind and rule the simulator (written from the providers' documentation) enforces is one that
`validate` enforced first. A storyboard that does not validate is not run: that is the point.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from _e2e import make_project
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from kling_compose import RunOptions, build_plan, load_storyboard, run_plan
from kling_compose.errors import UserError
from kling_compose.providers import PROVIDERS
from kling_compose.settings import ENDPOINTS, KEY_VARIABLES, Secret, Settings
from kling_compose.simulator import Faults, Simulator

HOSTED = ("runware", "fal", "kie", "kling-v3-task")
EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.fixture(scope="module")
def sim():
    with Simulator(None, Faults(task_seconds=0.02), short_side=90) as simulator:
        yield simulator


def settings_for(sim) -> Settings:
    return Settings(keys={p: Secret("key") for p in KEY_VARIABLES},
                    urls={name: sim.url(name) for name in ENDPOINTS}, poll_interval_s=0.02)


def plan_or_none(path: Path, provider: str):
    try:
        return build_plan(load_storyboard(path), provider)
    except UserError:
        return None  # refused before a cent is spent: what validate is for


def assert_runs_clean(plan, sim) -> None:
    result = run_plan(plan, RunOptions(concurrency=4),
                      settings=settings_for(sim))
    failures = [(o.task.id, o.error) for o in result.outcomes if o.status == "failed"]
    assert failures == [], failures
    assert result.ok


@pytest.mark.parametrize("provider", HOSTED)
def test_the_demo_runs_wherever_it_validates(tmp_path, sim, provider):
    root = tmp_path / "demo"
    shutil.copytree(EXAMPLES / "lantern-regatta", root,
                    ignore=shutil.ignore_patterns("renders", ".kling-compose", "*.lock"))
    plan = plan_or_none(root / "storyboard.yaml", provider)
    if provider in ("runware", "fal"):
        assert (plan is not None) == (provider == "runware")  # fal: 2 s segments, refused
    if plan is not None:
        assert_runs_clean(plan, sim)


# -- generated storyboards ------------------------------------------------------------------

LOCAL_IMAGES = ("assets/start.png", "assets/face.png")


def hosted_image(sim) -> str:
    """An image the simulator serves, standing for a URL the user put online."""
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (640, 360), (40, 90, 160)).save(buffer, "PNG")
    stored = sim.backend.put_file(buffer.getvalue(), provider="files", suffix=".png",
                                  content_type="image/png")
    return sim.backend.file_url(stored.name)


@st.composite
def storyboards(draw, provider: str, url: str) -> dict:
    # a provider without an upload API gets URLs; the others a mix of files, chains and URLs
    local = provider != "kling-v3-task"
    images = (*LOCAL_IMAGES, url) if local else (url,)
    models = sorted(PROVIDERS[provider].models)
    shots = []
    for n in range(draw(st.integers(1, 3))):
        shot: dict = {"id": f"s{n + 1}", "model": draw(st.sampled_from(models))}
        if draw(st.booleans()):
            segments = draw(st.integers(1, 3))
            shot["multi_prompt"] = [
                {"prompt": draw(st.sampled_from(["the boats drift", "@hero waves", "dusk"])),
                 "duration": draw(st.sampled_from([3, 4, 5, 2]))} for _ in range(segments)]
        else:
            shot["prompt"] = draw(st.sampled_from(["a harbour at dawn", "@hero at the dock",
                                                   "lanterns rise"]))
            shot["duration"] = draw(st.sampled_from([3, 5, 8, 15, 2]))
        frame = draw(st.sampled_from(["none", "file", "chain"] if n and local
                                     else ["none", "file"]))
        if frame == "file":
            shot["first_frame"] = draw(st.sampled_from(images))
        elif frame == "chain":
            shot["first_frame"] = {"from": "previous"}
        if "first_frame" in shot and draw(st.booleans()):
            shot["last_frame"] = draw(st.sampled_from(images))
        if "first_frame" not in shot:
            shot["aspect"] = draw(st.sampled_from(["16:9", "9:16", "1:1"]))
        audio = draw(st.sampled_from([None, True, False]))
        if audio is not None:
            shot["audio"] = audio
        shots.append(shot)
    hero = {"description": "a sailor in a yellow coat",
            "frontal_image": "assets/face.png" if local else url}
    extra = draw(st.integers(0, 2))
    if extra:
        hero["images"] = [images[0]] * extra
    return {"version": 1, "name": "generated", "elements": {"hero": hero},
            "scenes": [{"id": "main", "shots": shots}]}


def _assets(root: Path) -> None:
    make_project(root, "")
    Image.new("RGB", (400, 400), (200, 120, 40)).save(root / "assets" / "face.png")


@pytest.mark.parametrize("provider", HOSTED)
def test_generated_storyboards_that_validate_run_without_a_refusal(tmp_path_factory, sim,
                                                                   provider):
    ran = []

    @settings(max_examples=15, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(storyboards(provider, hosted_image(sim)))
    def check(storyboard: dict) -> None:
        root = tmp_path_factory.mktemp(provider)
        _assets(root)
        (root / "storyboard.yaml").write_text(yaml.safe_dump(storyboard, sort_keys=False))
        plan = plan_or_none(root / "storyboard.yaml", provider)
        if plan is not None:
            assert_runs_clean(plan, sim)
            ran.append(len(plan.tasks))

    check()
    assert len(ran) >= 3, "the strategy must produce storyboards that validate"
