"""Provider simulator: a local HTTP server speaking Runware, fal and the kling/v3 task API.

Written from the seed pages and the provider reference, never from `kling_compose.providers`,
so a field misread on one side fails on the other. See docs/simulator.md.
"""

from .faults import Faults
from .server import Simulator, serve
from .wire import RecordedRequest

__all__ = ["Faults", "RecordedRequest", "Simulator", "serve"]
