"""docs/format.md's JSON examples are the real output of its example storyboard: the same keys
everywhere and the same values, except those that differ by machine and time (cache keys are
checked to be 64 hex digits, hashes and times left out)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from kling_compose.cli import main
from support.locks import read_lock, rehearsal_lock

FORMAT = (Path(__file__).parents[1] / "docs" / "format.md").read_text(encoding="utf-8")
VOLATILE = {"created_at", "sha256"}


def _block(after: str, lang: str) -> str:
    start = FORMAT.index(after)
    match = re.compile(rf"```{lang}\n(.*?)```", re.S).search(FORMAT, start)
    return match.group(1)


def _same(doc, real, where="") -> None:
    if isinstance(doc, dict):
        assert isinstance(real, dict) and set(doc) == set(real), (where, set(doc) ^ set(real))
        for key in doc:
            if key in VOLATILE:
                continue
            if key == "cache_key":
                assert re.fullmatch(r"[0-9a-f]{64}", real[key])
                continue
            _same(doc[key], real[key], f"{where}.{key}")
    elif isinstance(doc, list):
        assert isinstance(real, list) and len(doc) == len(real), where
        for i, (d, r) in enumerate(zip(doc, real)):
            _same(d, r, f"{where}[{i}]")
    else:
        assert doc == real, (where, doc, real)


def test_the_json_examples_are_what_the_commands_print(tmp_path):
    (tmp_path / "storyboard.yaml").write_text(
        _block("The examples below are the real output", "yaml"), encoding="utf-8")
    cli = CliRunner()

    def run(*args):
        result = cli.invoke(main, [*args, str(tmp_path)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    _same(json.loads(_block("### plan --json", "json")), run("plan", "--json"))
    run("run", "--json")
    _same(json.loads(_block("### run --json", "json")), run("run", "--json"))
    _same(json.loads(_block("### status --json", "json")), run("status", "--json"))
    # a preview run records apart from the committed lock (issue 26): none is written
    assert not (tmp_path / "storyboard.lock").exists()
    lock = read_lock(rehearsal_lock(tmp_path))
    documented = tmp_path / "documented.lock"
    documented.write_text(_block("## The lock file", "jsonl"), encoding="utf-8")
    _same(read_lock(documented), lock)
