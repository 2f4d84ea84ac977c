"""Hostile storyboards (issue 9, first part): each ends in one located message and exit 1, in a
few seconds and bounded memory (a subprocess under RLIMIT_AS), never a traceback or a hang."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

MEMORY_BYTES = 2 * 1024**3
SECONDS = 30


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


def validate(tmp_path: Path, storyboard: str) -> subprocess.CompletedProcess:
    (tmp_path / "assets").mkdir(exist_ok=True)
    (tmp_path / "storyboard.yaml").write_text(storyboard, encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "kling_compose", "validate", str(tmp_path)],
                          capture_output=True, text=True, timeout=SECONDS, preexec_fn=_limit)


def shot(extra: str = "", shot_id: str = "s1", name: str = "hostile") -> str:
    return (f"version: 1\nname: {name}\nscenes:\n  - id: main\n    shots:\n"
            f"      - id: {shot_id}\n        prompt: a quiet harbour\n{extra}")


def alias_bomb(levels: int) -> str:
    lines = ['x-bomb:', '  l0: &l0 ["ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha", "ha"]']
    for n in range(1, levels + 1):
        refs = ", ".join([f"*l{n - 1}"] * 9)
        lines.append(f"  l{n}: &l{n} [{refs}]")
    return "\n".join(lines) + "\n"


CASES = {
    "alias bomb in provider_options": (
        alias_bomb(9) + shot("        provider_options: {extra: *l9}\n"),
        "storyboard.yaml:", "the storyboard expands to"),
    "a smaller alias bomb in provider_options": (
        alias_bomb(4) + shot("        provider_options: {extra: *l4}\n"),
        "storyboard.yaml:14:", "provider_options expands to"),
    "alias bomb in multi_prompt": (
        alias_bomb(9) + shot("        multi_prompt: *l9\n").replace(
            "        prompt: a quiet harbour\n", ""),
        "storyboard.yaml:", "the storyboard expands to"),
    "provider_options nested 200 deep": (
        shot("        provider_options: " + "{a: " * 200 + "1" + "}" * 200 + "\n"),
        "storyboard.yaml:", "provider_options is nested"),
    "a shot id of 300 bytes": (
        shot(shot_id="a" * 300), "storyboard.yaml:", "is too long"),
    "a name of 300 characters": (
        shot(name="n" * 300), "storyboard.yaml:", "is too long"),
    "a NUL byte in an asset path": (
        shot('        first_frame: "assets/a\\0.png"\n'), "storyboard.yaml:", "NUL byte"),
    "a data URI of invalid base64": (
        shot("        first_frame: 'data:image/png;base64,iVBOR!!w0KGgo'\n"),
        "storyboard.yaml:", "invalid base64"),
    "an output path part longer than 255 bytes": (
        shot() + f"outputs:\n  - path: renders/{'o' * 300}.mp4\n", "storyboard.yaml:",
        "cannot be a file name"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_storyboard_ends_in_a_located_message(tmp_path, case):
    storyboard, where, message = CASES[case]
    result = validate(tmp_path, storyboard)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert message in result.stderr and where in result.stderr, result.stderr
