"""kling-compose: a declarative storyboard compiler for AI video.

    resolved = load_storyboard(Path("storyboard.yaml"))
    plan = build_plan(resolved)            # compile + plan: exact requests, keys, costs
    result = run_plan(plan)                # execute (preview provider: local and free)

Names are imported lazily so that `import kling_compose` (and the CLI's fast commands) do not
pay for networkx, httpx or the media stack.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "Diagnostic",
    "Location",
    "RunOptions",
    "UserError",
    "build_plan",
    "load_storyboard",
    "run_plan",
]

_LAZY = {
    "Diagnostic": ("errors", "Diagnostic"),
    "Location": ("errors", "Location"),
    "UserError": ("errors", "UserError"),
    "load_storyboard": ("pipeline", "load_resolved"),
    "build_plan": ("pipeline", "build_storyboard_plan"),
    "run_plan": ("engine.run", "run_plan"),
    "RunOptions": ("engine.run", "RunOptions"),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'kling_compose' has no attribute '{name}'")
    import importlib

    module, attr = _LAZY[name]
    return getattr(importlib.import_module(f".{module}", __name__), attr)
