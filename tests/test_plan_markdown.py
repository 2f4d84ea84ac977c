"""`plan --format markdown` (issue 26): a pull request's comment that shows the storyboard's
text as written, whatever it holds (`|` splits no cell, `<img>` is no tag, `@name` mentions
nobody), the reasons, the money, the profiles; and `--format`'s usage errors. On the free
preview provider: nothing here pays or needs a network."""

from __future__ import annotations

import json
import re

import pytest
from markdown_it import MarkdownIt
from support.projects import PREVIEW, chain_storyboard, cli, make_project

from kling_compose.commands.review import md

HOSTILE = ("boats | nets <img src=x onerror=alert(1)> *bold* [link](http://x) @@octocat "
           "`tick` &amp; ~~gone~~")
STORYBOARD = """version: 1
name: "quay | night"
defaults:
  provider: preview
  duration: 3
  aspect: '16:9'
scenes:
  - id: main
    shots:
      - id: one
        prompt: "{one}"
      - id: two
        prompt: |
          a lantern rises
          over the | water
"""


def board(one: str = HOSTILE) -> str:
    return STORYBOARD.replace("{one}", one.replace('"', '\\"'))


def rendered(text: str) -> str:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(text)


def cell_text(markdown: str) -> str:
    """What a cell shows: its markdown rendered, the tags and escapes gone."""
    html = MarkdownIt("commonmark").enable("strikethrough").renderInline(markdown)
    import html as entities

    return entities.unescape(re.sub(r"<[^>]+>", "", html))


def test_the_storyboard_text_shows_as_written(tmp_path):
    root = make_project(tmp_path / "film", board())
    result = cli("plan", root, "--format", "markdown")
    assert result.exit_code == 0, result.output
    text = result.stdout
    html = rendered(text)
    assert "<img" not in html and "<a href" not in html and "<em>" not in html \
        and "<del>" not in html and "<s>" not in html
    assert "@octocat" not in text  # a zero-width space after @: no mention
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    header, *rows = [line for line in lines if line.count(" | ") >= 6]
    columns = len(re.split(r"(?<!\\)\|", header))
    for row in rows:  # an escaped | splits no cell
        assert len(re.split(r"(?<!\\)\|", row)) == columns, row
    prompts = {cells[0]: cells[1] for cells in
               (re.split(r"(?<!\\) \| ", line.strip("| ")) for line in lines)
               if len(cells) == 2 and cells[0] in ("one", "two")}
    assert cell_text(prompts["one"]).replace("\u200b", "") == HOSTILE[:79] + "…"
    assert cell_text(prompts["two"]) == "a lantern rises over the | water"
    assert "### kling-compose plan: quay \\| night" in text


def test_md_escapes_what_markdown_reads_as_markup():
    assert md("a|b") == "a\\|b"
    assert md("line\nnext") == "line next"
    assert md("<b>x</b>") == "\\<b>x\\</b>"
    assert md("@team") == "@&#8203;team"
    assert md("a\\|b") == "a\\\\\\|b"
    assert cell_text(md(HOSTILE)).replace("\u200b", "") == HOSTILE


def test_why_a_shot_runs_again_and_nothing_to_do(tmp_path):
    root = make_project(tmp_path / "film", board("nets | dawn"))
    assert cli("run", root, *PREVIEW).exit_code == 0
    result = cli("plan", root, "--format", "markdown", *PREVIEW)
    assert "nothing to do: every shot is cached or restorable" in result.stdout
    assert "Unchanged (2, nothing to pay): one, two" in result.stdout
    (root / "storyboard.yaml").write_text(board("nets | dusk"), encoding="utf-8")
    result = cli("plan", root, "--format", "markdown", *PREVIEW)
    row = next(line for line in result.stdout.splitlines() if line.startswith("| one |"))
    assert "| changed | prompt: nets \\| dawn -> nets \\| dusk | preview |" in row
    assert "- **Next run:** 1 of 2 shot(s) to generate, **$0.000** to pay" in result.stdout
    assert "Films made again (local, free): renders/quay-night.mp4" in result.stdout


def test_profiles_are_compared(tmp_path):
    text = board("boats").replace("provider: preview", "provider: fal\n  model: kling-3-pro")
    root = make_project(tmp_path / "film", text + "profiles:\n  draft: { model: kling-3-std }\n")
    result = cli("plan", root, "--format", "markdown", "--profile", "draft")
    assert result.exit_code == 0, result.output
    costs = {p["profile"]: p for p in json.loads(cli("plan", root, "--json").stdout)["profiles"]}
    assert costs["draft"]["total_estimated_cost_usd"] < costs[None]["total_estimated_cost_usd"]
    assert "| profile | whole storyboard | next run pays |" in result.stdout
    draft, plain = (f"${costs[p]['total_estimated_cost_usd']:.3f}" for p in ("draft", None))
    assert f"| **draft** (this plan) | {draft} | {draft} |" in result.stdout
    assert f"| (defaults) | {plain} |  |" in result.stdout  # another profile: not probed
    assert "### kling-compose plan: quay \\| night (profile draft)" in result.stdout
    assert "| one | new | never made | fal | kling-3-std |" in result.stdout


def test_format_json_is_json(tmp_path):
    root = make_project(tmp_path / "film", board("boats"))
    one = cli("plan", root, "--json")
    two = cli("plan", root, "--format", "json")
    assert one.exit_code == two.exit_code == 0
    assert json.loads(one.stdout) == json.loads(two.stdout)
    assert cli("plan", root, "--json", "--format", "json").exit_code == 0


@pytest.mark.parametrize("args", [["--json", "--format", "markdown"],
                                  ["--json", "--format", "table"],
                                  ["--format", "markdown", "--requests"],
                                  ["--format", "markdown", "--diff"],
                                  ["--base", "main", "--requests"],
                                  ["--format", "html"]])
def test_formats_that_exclude_each_other_are_usage_errors(tmp_path, args):
    root = make_project(tmp_path / "film", board("boats"))
    result = cli("plan", root, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_a_large_plan_fits_in_a_pull_request_comment(tmp_path):
    text = chain_storyboard(400).replace("  aspect: '16:9'", "  aspect: '16:9'\n  provider: fal")
    root = make_project(tmp_path / "film", text)
    result = cli("plan", root, "--format", "markdown")
    assert result.exit_code == 0, result.output
    assert len(result.stdout) < 65536  # GitHub's limit of a comment
    assert "- **Next run:** 400 of 400 shot(s) to generate" in result.stdout
    assert "... and 300 more (`kling-compose plan` lists every task)" in result.stdout
    assert "| s100 | new |" in result.stdout and "| s101 |" not in result.stdout
