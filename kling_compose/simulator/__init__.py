"""Provider simulator: a local HTTP server speaking Runware, fal, kie, the kling/v3 task API
and the official Kling API.

Written from the seed pages and the provider reference, never from `kling_compose.providers`,
so a field misread on one side fails on the other. See docs/simulator.md.

The server and its providers load on first use (`Simulator`, `serve`): `kling-compose`
imports this package for its `simulate` command and starts no slower for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .faults import Faults

# the short side in px of the clips `serve` (`kling-compose simulate`) renders: a frame taken
# from one passes every provider's input minimum (Kling: "not less than 300px" a side), so a
# chain rehearses on every provider; in-process tests keep Simulator's faster 180
SERVE_SHORT_SIDE = 360

if TYPE_CHECKING:
    from .server import Simulator, serve
    from .wire import RecordedRequest

__all__ = ["Faults", "RecordedRequest", "Simulator", "serve"]


def __getattr__(name: str) -> Any:
    if name in ("Simulator", "serve"):
        from . import server

        return getattr(server, name)
    if name == "RecordedRequest":
        from .wire import RecordedRequest

        return RecordedRequest
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
