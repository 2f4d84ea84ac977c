"""Scripts that are no module of any importable package, loaded from their files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def load_script(path: Path, name: str) -> ModuleType:
    """The module of the Python file `path`, executed afresh under `name` (registered in
    sys.modules while it runs and after, as dataclasses and pickle look modules up by name).

    For scripts such as bench/compile.py: a folder of scripts is not a package, and putting
    it on sys.path would let its names (`compile`, `media`, `run`) shadow others."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def bench(name: str) -> ModuleType:
    """bench/<name>.py as the module `bench_<name>`."""
    return load_script(REPO / "bench" / f"{name}.py", f"bench_{name}")
