"""`config` (the storyboard as the compiler sees it) and `--only` selectors (issue 10)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from _e2e import PREVIEW, chain_storyboard, cli

EXAMPLE = Path(__file__).parents[2] / "examples" / "lantern-regatta"

TEMPLATED = """version: 1
name: templated
{% set moods = ['calm', 'storm', 'dawn'] %}
defaults:
  duration: 3
  aspect: '16:9'
  negative_prompt: blur
scenes:
  - id: sea
    defaults: { audio: true }
    shots:
{% for mood in moods %}
      - id: s{{ loop.index }}
        prompt: the sea, {{ mood }}
{% if not loop.first %}        first_frame: { from: previous }
{% endif %}{% endfor %}
  - id: land
    shots:
      - { id: l1, prompt: the harbour at night, first_frame: assets/start.png }
"""


def _keys(root: Path) -> list[tuple[str, str]]:
    plan = json.loads(cli("plan", root, "--json").stdout)
    return [(t["id"], t["cache_key"]) for t in plan["tasks"]]


@pytest.mark.parametrize("source", ["example", "templated"])
def test_config_is_a_storyboard_that_plans_to_the_very_same_tasks(project, tmp_path, source):
    if source == "example":
        root = tmp_path / "example"
        shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".kling-compose",
                                                                     "renders"))
    else:
        root = project(TEMPLATED)
    result = cli("config", root)
    assert result.exit_code == 0, result.output
    config = yaml.safe_load(result.stdout)
    shots = [s for scene in config["scenes"] for s in scene["shots"]]
    assert all("provider" in s and "model" in s and "takes" in s for s in shots)  # inherited
    if source == "templated":
        assert [s["id"] for s in shots] == ["s1", "s2", "s3", "l1"]
        assert shots[1]["audio"] is True and shots[1]["negative_prompt"] == "blur"
        assert shots[1]["first_frame"] == {"from": "s1", "frame": "last"}
        assert "{%" not in result.stdout
    as_json = json.loads(cli("config", root, "--json").stdout)
    assert as_json == config
    before = _keys(root)
    (root / "storyboard.yaml").write_text(result.stdout, encoding="utf-8")
    assert cli("validate", root).exit_code == 0
    assert _keys(root) == before


def _ran(root: Path, *only: str) -> set[str]:
    args = [a for s in only for a in ("--only", s)]
    result = cli("run", root, "--json", *PREVIEW, *args)
    assert result.exit_code == 0, result.output
    return {t["id"] for t in json.loads(result.stdout)["tasks"]}


def test_selectors_pick_shots_with_what_they_need_and_what_is_made_from_them(project):
    root = project(chain_storyboard(4).replace("scenes:\n", "scenes:\n  - id: other\n"
                                               "    shots:\n      - id: lone\n"
                                               "        prompt: independent\n", 1))
    assert _ran(root, "s2") == {"generate:s1", "frame:s1:last", "generate:s2"}
    assert _ran(root, "+s2") == {"generate:s1", "frame:s1:last", "generate:s2"}
    downstream = _ran(root, "s3+")
    assert {"generate:s3", "generate:s4", "frame:s3:last", "assemble:renders/chain.mp4",
            "generate:lone"} <= downstream  # the film needs every shot
    assert _ran(root, "other") == {"generate:lone"}
    assert {"generate:s1", "generate:s4"} <= _ran(root, "main")
    wrong = cli("run", root, "--only", "s33+", *PREVIEW)
    assert wrong.exit_code == 1 and "no shot or scene 's33'" in wrong.output
    assert "did you mean 's3'" in wrong.output
    wrong = cli("run", root, "--only", "nothing-like-it", *PREVIEW)
    assert wrong.exit_code == 1 and "SHOT+ (and what is made from it)" in wrong.output
