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


def validate(tmp_path: Path, storyboard: str | bytes) -> subprocess.CompletedProcess:
    (tmp_path / "assets").mkdir(exist_ok=True)
    data = storyboard if isinstance(storyboard, bytes) else storyboard.encode("utf-8")
    (tmp_path / "storyboard.yaml").write_bytes(data)
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
        shot(shot_id="a" * 300), "storyboard.yaml:", "has 300 characters, more than the 200 allowed"),
    "a name of 300 characters": (
        shot(name="n" * 300), "storyboard.yaml:", "has 300 characters, more than the 200 allowed"),
    "a NUL byte in an asset path": (
        shot('        first_frame: "assets/a\\0.png"\n'), "storyboard.yaml:", "NUL byte"),
    "a data URI of invalid base64": (
        shot("        first_frame: 'data:image/png;base64,iVBOR!!w0KGgo'\n"),
        "storyboard.yaml:", "invalid base64"),
    "an output path part longer than 255 bytes": (
        shot() + f"outputs:\n  - path: renders/{'o' * 300}.mp4\n", "storyboard.yaml:",
        "cannot be a file name"),
}


_BASE = "version: 1\nname: h\nscenes:\n  - id: m\n    shots:\n      - id: s1\n"
CASES.update({
    "flow lists nested 1000 deep": (
        _BASE + "        prompt: " + "[" * 1000 + "]" * 1000 + "\n", "storyboard.yaml:7:",
        "exceeded maximum nesting depth"),
    "a duration of 26 digits": (
        _BASE + "        prompt: hi there\n        duration: " + "9" * 26 + "\n",
        "storyboard.yaml:8:", "is out of range"),
    "an infinite version": ("version: .inf\nname: h\nscenes: []\n", "storyboard.yaml:1:",
                            "is not a finite number"),
    "negative takes": (_BASE + "        prompt: hi there\n        takes: -1\n",
                       "storyboard.yaml:8:", "must be at least 1"),
    "a control character in an id": (
        _BASE.replace("id: s1", 'id: "s\\x01"') + "        prompt: hi there\n",
        "storyboard.yaml:6:", "must be lowercase letters"),
    "a key of 100,000 characters": (
        _BASE + "        prompt: hi there\n        " + "k" * 100_000 + ": 1\n",
        "storyboard.yaml:8:", "YAML:"),
    "a tab for indentation": (_BASE + "\tprompt: hi\n", "storyboard.yaml:7:", "tab character"),
    "10,000 shots with one id": (
        "version: 1\nname: h\nscenes:\n  - id: m\n    shots:\n"
        + "      - {id: a, prompt: hi there}\n" * 10_000, "storyboard.yaml:7:",
        "duplicate shot id 'a'"),
    "a storyboard that includes itself": (
        "{% include 'storyboard.yaml' %}\n" + _BASE, "storyboard.yaml:1:", "nest too deeply"),
    "a size of 99999999x99999999": (
        _BASE + "        prompt: hi there\n        size: 99999999x99999999\n",
        "storyboard.yaml:8:", "beyond what any Kling model renders"),
    "a 16:9 size of 19200000x10800000 on runware": (
        _BASE + "        prompt: hi there\n        provider: runware\n"
        "        size: 19200000x10800000\n", "storyboard.yaml:9:",
        "beyond what any Kling model renders"),
    "an element that does not exist": (
        _BASE + "        prompt: '@ghost waves'\n", "storyboard.yaml:7:", "unknown element"),
    "a frame chain cycle": (
        "version: 1\nname: h\nscenes:\n  - id: m\n    shots:\n"
        "      - {id: a, prompt: hi there, first_frame: {from: b}}\n"
        "      - {id: b, prompt: hi there, first_frame: {from: a}}\n",
        "storyboard.yaml:6:", "frame chain cycle"),
    "an include out of the project": (
        "{% include '../../etc/passwd' %}\n" + _BASE, "storyboard.yaml:1:",
        "outside the project folder"),
    "an absolute asset path": (
        _BASE + "        prompt: hi there\n        first_frame: /etc/passwd\n",
        "storyboard.yaml:8:", "outside the project folder"),
    "a dunder attribute in a template": (
        _BASE + "        prompt: \"{{ ''.__class__.__mro__ }}\"\n", "storyboard.yaml:7:",
        "unsafe"),
    "a range of a billion": (
        _BASE + "        prompt: \"{{ range(10**9)|list|length }}\"\n", "storyboard.yaml:7:",
        "Range too big"),
    "a prompt of a megabyte": (
        _BASE + "        prompt: " + "a" * 1_000_000 + "\n", "storyboard.yaml:7:",
        "characters long as sent"),
    "an output path outside": (
        _BASE + "        prompt: hi there\noutputs:\n  - path: ../../x.mp4\n",
        "storyboard.yaml:9:", "outside the project folder"),
    "an empty file": ("", "storyboard.yaml:1:", "the storyboard is empty"),
    "a duplicate key": (_BASE + "        prompt: hi there\n        prompt: again\n",
                        "storyboard.yaml:8:", "duplicate key 'prompt'"),
    "takes of a million": (_BASE + "        prompt: hi there\n        takes: 1000000\n",
                           "storyboard.yaml:8:", "out of range"),
    "a python tag": (_BASE + "        prompt: !!python/object/apply:os.system ['true']\n",
                     "storyboard.yaml:7:", "tag"),
})


def _frame(name: str) -> str:
    return _BASE + f"        prompt: hi there\n        first_frame: assets/{name}\n"


def _whole_png() -> bytes:
    import io

    from PIL import Image

    image = Image.new("RGB", (320, 180))
    for x in range(0, 320, 3):
        image.putpixel((x, x % 180), (x % 256, 40, 200))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


# cases that need files beside the storyboard: {relative path: bytes | "fifo" | "dir" |
# ("link", target)}
FILES = {
    "a named pipe as a frame": {"assets/pipe.png": "fifo"},
    "a folder as a frame": {"assets/dir.png": "dir"},
    "a link to /dev/zero as a frame": {"assets/zero.png": ("link", "/dev/zero")},
    "an include of a named pipe": {"part.yaml": "fifo"},
    "an include of a link to /dev/zero": {"part.yaml": ("link", "/dev/zero")},
    "a truncated PNG as a frame": {"assets/cut.png": "truncated"},
    "text named .png as a frame": {"assets/fake.png": b"not an image at all"},
}
CASES.update({
    "a named pipe as a frame": (_frame("pipe.png"), "storyboard.yaml:8:", "is a named pipe"),
    "a folder as a frame": (_frame("dir.png"), "storyboard.yaml:8:", "is a folder"),
    "a link to /dev/zero as a frame": (_frame("zero.png"), "storyboard.yaml:8:",
                                       "outside the project folder"),
    "an include of a named pipe": ("{% include 'part.yaml' %}\n" + _BASE, "storyboard.yaml:1:",
                                   "is not a regular file"),
    "an include of a link to /dev/zero": ("{% include 'part.yaml' %}\n" + _BASE,
                                          "storyboard.yaml:1:", "leads outside the project"),
    "a truncated PNG as a frame": (_frame("cut.png"), "storyboard.yaml:8:", "is truncated"),
    "text named .png as a frame": (_frame("fake.png"), "storyboard.yaml:8:",
                                   "is not a readable image"),
    "a truncated data URI image": (
        _BASE + "        prompt: hi there\n        first_frame: 'data:image/png;base64,"
        + __import__("base64").b64encode(_whole_png()[:200]).decode() + "'\n",
        "storyboard.yaml:8:", "the data URI's image cannot be read"),
    "an alias bomb no shot uses": (alias_bomb(9) + _BASE + "        prompt: hi there\n",
                                   "storyboard.yaml:", "the storyboard expands to"),
    "a UTF-16 storyboard": ("version: 1\nname: h\nscenes: []\n".encode("utf-16"),
                            "storyboard.yaml:1:1:", "not UTF-8"),
})


def _make_files(root: Path, files: dict) -> None:
    import os

    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if content == "fifo":
            os.mkfifo(path)
        elif content == "dir":
            path.mkdir()
        elif content == "truncated":
            data = _whole_png()
            path.write_bytes(data[: len(data) // 2])
        elif isinstance(content, tuple):
            path.symlink_to(content[1])
        else:
            path.write_bytes(content)


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_storyboard_ends_in_a_located_message(tmp_path, case):
    storyboard, where, message = CASES[case]
    _make_files(tmp_path, FILES.get(case, {}))
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


# -- templates that loop for ever or allocate without bound ----------------------------------

ENDLESS = ("{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}"
           "{% endfor %}")
DOUBLING = ("{% set ns = namespace(s='ab') %}{% for i in range(60) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}")


@pytest.mark.parametrize("template, message, seconds", [
    (ENDLESS, "rendering took longer than 1 s", 1),
    # time enough on a loaded machine to reach the memory limit first (CI saw 1 s run out)
    (DOUBLING, "rendering needed more than 256 MiB of memory", 8),
])
def test_a_template_that_never_ends_or_fills_memory_is_stopped_located(
        tmp_path, monkeypatch, template, message, seconds):
    import time

    from kling_compose import render
    from kling_compose.errors import UserError

    monkeypatch.setattr(render, "RENDER_SECONDS", seconds)
    monkeypatch.setattr(render, "RENDER_MEMORY", 256 << 20)
    path = tmp_path / "storyboard.yaml"
    path.write_text(f'version: 1\nname: j\nscenes:\n  - id: m\n    shots:\n      - id: s1\n'
                    f'        prompt: "{template}"\n', encoding="utf-8")
    started = time.monotonic()
    with pytest.raises(UserError) as caught:
        render.render_source(render.read_source(path, "storyboard.yaml"))
    assert time.monotonic() - started < 10 + seconds
    assert str(caught.value).startswith("storyboard.yaml:7:") and message in str(caught.value)
    import resource

    assert resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY  # restored


# -- generated hostile templates ----------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_NUMBERS = st.sampled_from(["3", "10**6", "3e9", "10**1000", "100000", "-1", "2**64"])
_PIECES = st.one_of(
    st.builds("{{{{ 'ab' * {} }}}}".format, _NUMBERS),
    st.builds("{{{{ ({})**({}) }}}}".format, _NUMBERS, _NUMBERS),
    st.builds("{{{{ 'x'.{}({}) }}}}".format,
              st.sampled_from(["ljust", "rjust", "center", "zfill", "expandtabs"]), _NUMBERS),
    st.builds("{{{{ ('ab' * 1000).replace('a', 'y' * {}) }}}}".format, _NUMBERS),
    st.builds("{{{{ '%0{}d' % 1 }}}}".format, _NUMBERS),
    st.builds("{{% for i in range({}) %}}{{% for j in range({}) %}}z{{% endfor %}}{{% endfor %}}"
              .format, _NUMBERS, _NUMBERS),
    st.builds("{{{{ ([[0] * {}] * {}) | string | length }}}}".format, _NUMBERS, _NUMBERS),
    st.just("{{ lipsum(100000) }}"),
    st.just("{% set ns = namespace(s='ab') %}{% for i in range(64) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}"),
    st.just("{{ [1] + [2] }}"),
)


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(st.lists(_PIECES, min_size=1, max_size=3))
def test_generated_hostile_templates_end_in_a_message_never_a_traceback(pieces):
    import tempfile
    import time

    from kling_compose import render
    from kling_compose.errors import UserError
    from kling_compose.pipeline import load_resolved

    old = render.RENDER_SECONDS, render.RENDER_MEMORY
    render.RENDER_SECONDS, render.RENDER_MEMORY = 2, 512 << 20
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "storyboard.yaml"
            text = " ".join(pieces).replace('"', "'")
            path.write_text(f'version: 1\nname: j\nscenes:\n  - id: m\n    shots:\n'
                            f'      - id: s1\n        prompt: "{text}"\n', encoding="utf-8")
            started = time.monotonic()
            try:
                load_resolved(path, display="storyboard.yaml")
            except UserError as exc:
                assert str(exc).startswith("storyboard.yaml"), str(exc)
            assert time.monotonic() - started < 15
    finally:
        render.RENDER_SECONDS, render.RENDER_MEMORY = old
