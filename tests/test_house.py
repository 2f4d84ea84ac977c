"""The house's boundaries, checked by tools (issue 23): the import layers and the simulator's
independence (import-linter, contracts in pyproject.toml), types (mypy over the engine and the
providers, config in pyproject.toml), and the rules a type checker cannot see: nothing outside
providers/ probes a provider's attributes or branches on a provider's name."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "kling_compose"
# the one place a provider's name is known, and the simulator, which plays the providers
OWN_NAMES = (PACKAGE / "providers", PACKAGE / "simulator")


def _run(*command: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=600)


def test_the_import_contracts_hold():
    result = _run(sys.executable, "-c", "from importlinter.cli import lint_imports_command; "
                  "lint_imports_command()", "--no-cache")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout and " kept, 0 broken" in result.stdout, result.stdout


def test_the_type_checker_passes():
    result = _run(sys.executable, "-m", "mypy", "--no-incremental")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def _sources_outside_providers():
    for path in sorted(PACKAGE.rglob("*.py")):
        if not any(path.is_relative_to(folder) for folder in OWN_NAMES):
            yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _provider_names() -> set[str]:
    from kling_compose.providers import PROVIDERS

    return set(PROVIDERS)


def _mentions_provider(node: ast.AST) -> bool:
    """An expression naming a provider object: `provider`, `self.provider`, PROVIDERS[...]."""
    return "provider" in ast.unparse(node).lower()


def test_nothing_outside_providers_probes_a_provider_with_getattr_or_hasattr():
    found = []
    for path, tree in _sources_outside_providers():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in ("getattr", "hasattr") and node.args \
                    and _mentions_provider(node.args[0]):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "\n".join(found)


def test_nothing_outside_providers_branches_on_a_provider_name_or_keys_a_table_by_one():
    """A provider's name compared (`provider == "preview"`, `in {...}`) anywhere, or held in
    a module's table (keys of a dict, members of a set, list or tuple) outside providers/, is
    a seam that breaks with the next provider: read the provider's spec (its capabilities)."""
    names = _provider_names()
    found = []

    def named(values) -> list[str]:
        return [v.value for v in values if isinstance(v, ast.Constant) and v.value in names]

    for path, tree in _sources_outside_providers():
        tables = [n.value for n in tree.body
                  if isinstance(n, (ast.Assign, ast.AnnAssign)) and n.value is not None]
        for node in ast.walk(tree):
            hits = named([node.left, *node.comparators]) if isinstance(node, ast.Compare) \
                else []
            for hit in hits:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
        for table in tables:
            for node in ast.walk(table):
                keys = node.keys if isinstance(node, ast.Dict) else \
                    node.elts if isinstance(node, (ast.Set, ast.List, ast.Tuple)) else []
                for hit in named(k for k in keys if k is not None):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: table entry {hit!r}")
    assert not found, "\n".join(found)
