"""The providers, keyed by the name a storyboard uses (`provider: runware`)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from .base import InputRef, Job, ModelSpec, Provider
from .fal import FalProvider
from .kie import KieProvider
from .kling import KlingProvider
from .kling_v3_task import KlingV3TaskProvider
from .preview import PreviewProvider
from .runware import RunwareProvider

PROVIDERS: Mapping[str, Provider] = MappingProxyType(
    {
        "runware": RunwareProvider(),
        "fal": FalProvider(),
        "kling-v3-task": KlingV3TaskProvider(),
        "kie": KieProvider(),
        "kling": KlingProvider(),
        "preview": PreviewProvider(),
    }
)

__all__ = ["PROVIDERS", "InputRef", "Job", "ModelSpec", "Provider"]
