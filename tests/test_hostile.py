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


def _png_header(path: Path, width: int, height: int) -> None:
    """A PNG that declares width x height without holding its pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1) * 4)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("width, height, message", [
    (30000, 30000, "too large to open safely"),
    (20000, 100, "is 20000x100: larger than 16384 px a side"),
])
def test_an_image_too_large_to_use_is_refused_by_validate(tmp_path, width, height, message):
    (tmp_path / "assets").mkdir()
    _png_header(tmp_path / "assets" / "huge.png", width, height)
    result = validate(tmp_path, shot("        first_frame: assets/huge.png\n"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "storyboard.yaml:8:22: error: image 'huge.png' " in result.stderr
    assert message in result.stderr, result.stderr
