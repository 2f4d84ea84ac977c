"""Issue 21, item 18 (d): the project `init` writes validates on every provider it suggests.

Its template failed `validate` on kie and kling (an element with one image) and on
kling-v3-task (local files, chained frames) although its comment suggested them."""

from __future__ import annotations

import pytest
from _e2e import cli

from kling_compose.settings import PROVIDER_NAMES


def _validate(root):
    result = cli("validate", root / "storyboard.yaml")
    return result.exit_code, result.output + (result.stderr or "")


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_init_for_a_provider_validates_there_without_a_warning(tmp_path, provider):
    root = tmp_path / "film"
    made = cli("init", root, "--provider", provider)
    assert made.exit_code == 0, made.output
    code, output = _validate(root)
    assert code == 0 and "warning" not in output, output
    assert f"  provider: {provider}\n" in (root / "storyboard.yaml").read_text()


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_the_default_template_validates_on_each_provider_its_comment_suggests(tmp_path, provider):
    """Set `provider:` as the comment says: it validates, or the comment names the `init
    --provider` that writes a storyboard for that provider."""
    root = tmp_path / "film"
    assert cli("init", root).exit_code == 0
    storyboard = root / "storyboard.yaml"
    text = storyboard.read_text()
    assert "  provider: preview\n" in text
    storyboard.write_text(text.replace("  provider: preview\n", f"  provider: {provider}\n"))
    code, output = _validate(root)
    comment = " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    if code != 0:
        assert f"init DIR --provider {provider}" in comment, output
    else:
        assert provider in comment or provider == "preview"


def test_init_help_lists_its_provider_option_and_refuses_an_unknown_one(tmp_path):
    assert "--provider" in cli("init", "--help").output
    wrong = cli("init", tmp_path / "x", "--provider", "fl")
    assert wrong.exit_code == 2 and "did you mean 'fal'" in wrong.output
    assert not (tmp_path / "x" / "storyboard.yaml").exists()
