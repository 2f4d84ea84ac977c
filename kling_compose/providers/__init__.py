"""The providers, keyed by the name a storyboard uses (`provider: runware`)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

from .base import (
    Capabilities,
    InputRef,
    Job,
    ModelSpec,
    Provider,
    ProviderSpec,
    RegisteredProvider,
    RemoteProvider,
)
from .fal import FalProvider
from .kie import KieProvider
from .kling import KlingProvider
from .kling_v3_task import KlingV3TaskProvider
from .preview import PreviewProvider
from .runware import RunwareProvider

# each provider both halves: `Provider` (compile) and `RemoteProvider` (run time)
PROVIDERS: Mapping[str, RegisteredProvider] = MappingProxyType(
    {
        "runware": RunwareProvider(),
        "fal": FalProvider(),
        "kling-v3-task": KlingV3TaskProvider(),
        "kie": KieProvider(),
        "kling": KlingProvider(),
        "preview": PreviewProvider(),
    }
)

# the providers that run in-process (`Capabilities.local`: the preview): they read local
# files themselves and need no key, host or upload
LOCAL_PROVIDERS: frozenset[str] = frozenset(
    name for name, provider in PROVIDERS.items() if provider.spec.capabilities.local)

__all__ = ["LOCAL_PROVIDERS", "PROVIDERS", "Capabilities", "InputRef", "Job", "ModelSpec",
           "Provider", "ProviderSpec", "RegisteredProvider", "RemoteProvider"]
