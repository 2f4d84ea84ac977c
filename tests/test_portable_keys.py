"""Cache keys hold nothing machine-specific (issue 11): the same project in two folders (other
absolute paths, another folder name) plans to the very same keys, with local files, chains,
elements and templates, for the preview and for a hosted provider."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kling_compose import build_plan, load_storyboard

EXAMPLE = Path(__file__).parents[1] / "examples" / "lantern-regatta"
STORYBOARD = """version: 1
name: portable
defaults: { duration: 5, aspect: '16:9', model: kling-3-pro }
elements:
  keeper: { description: an old lighthouse keeper, frontal_image: assets/violinist.png,
            images: [assets/regatta.jpg] }
scenes:
  - id: night
    shots:
{% for n in range(3) %}
      - id: s{{ n }}
        prompt: '@keeper climbs the stairs, step {{ n }}'
{% if n == 0 %}        first_frame: assets/regatta.jpg
{% else %}        first_frame: { from: previous }
{% endif %}{% endfor %}
"""


@pytest.mark.parametrize("provider", ["preview", "runware", "fal", "kie"])
def test_a_project_plans_to_the_same_keys_in_any_folder(tmp_path, provider):
    keys = []
    for place in (tmp_path / "alice" / "films" / "regatta", tmp_path / "b" / "copy of it"):
        shutil.copytree(EXAMPLE, place, ignore=shutil.ignore_patterns(".kling-compose",
                                                                      "renders"))
        if provider in ("fal", "kie"):  # the example's O3 model is Runware's only
            (place / "storyboard.yaml").write_text(STORYBOARD, encoding="utf-8")
        plan = build_plan(load_storyboard(place / "storyboard.yaml"), provider)
        keys.append({t.id: t.cache_key for t in plan.tasks.values()})
        assert all(str(place) not in repr(t.job.request) for t in plan.tasks.values()
                   if t.job is not None and provider != "preview")
    assert keys[0] == keys[1] and len(keys[0]) >= 5
