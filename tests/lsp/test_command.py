"""`kling-compose lsp` as a command: pygls is the [lsp] extra."""

from __future__ import annotations

import sys


def test_without_pygls_the_command_names_the_extra(run_cli, monkeypatch):
    monkeypatch.delitem(sys.modules, "kling_compose.lsp.server", raising=False)
    monkeypatch.setitem(sys.modules, "pygls", None)
    monkeypatch.setitem(sys.modules, "pygls.lsp.server", None)
    code, out, err = run_cli(["lsp"])
    assert code == 1 and "Traceback" not in err
    assert err == "error: kling-compose lsp needs pygls, which is not installed " \
                  "(pygls.lsp.server)\n  hint: pip install 'kling-compose[lsp]'\n"


def test_the_command_is_listed_with_its_options(run_cli):
    code, out, _ = run_cli(["lsp", "--help"])
    assert code == 0
    assert "--debounce-ms" in out and "--stdio" in out
    code, out, _ = run_cli(["--help"])
    assert "lsp " in out
