"""Settings read once from the environment; nothing else in the package touches os.environ.

API keys travel as `Secret`, whose repr and str hide the value: a key can end up in a log line,
an exception or a dataclass repr and still never be printed. Only a provider's auth code calls
`Secret.reveal()`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from .errors import UserError

# storyboard provider name -> (key variable, default base URL)
REMOTE = MappingProxyType({
    "runware": ("RUNWARE_API_KEY", "https://api.runware.ai/v1"),
    "fal": ("FAL_KEY", "https://queue.fal.run"),
    "kling-v3-task": ("KLING_V3_TASK_API_KEY", "https://api.kie.ai"),
})


class Secret:
    """A string that does not show itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class Settings:
    """Keys and endpoints per remote provider, and the polling cadence."""

    keys: Mapping[str, Secret] = field(default_factory=dict)
    urls: Mapping[str, str] = field(default_factory=dict)
    poll_first_s: float = 1.0  # Runware SDKs: first poll 1 s after submit, then x1.5, cap 10 s
    poll_factor: float = 1.5
    poll_max_s: float = 10.0
    poll_timeout_s: float = 1800.0
    request_timeout_s: float = 60.0
    retries: int = 5

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, **overrides) -> Settings:
        env = os.environ if environ is None else environ
        keys = {name: Secret(env[var]) for name, (var, _) in REMOTE.items() if env.get(var)}
        urls = {name: env.get(url_variable(name), default).rstrip("/")
                for name, (_, default) in REMOTE.items()}
        poll = env.get("KLING_COMPOSE_POLL_SECONDS")  # a fixed cadence (the simulator, proxies)
        if poll:
            try:
                seconds = float(poll)
            except ValueError:
                raise UserError.single(f"KLING_COMPOSE_POLL_SECONDS={poll!r} is not a number") \
                    from None
            overrides = {"poll_first_s": seconds, "poll_max_s": seconds, **overrides}
        return cls(keys=MappingProxyType(keys), urls=MappingProxyType(urls), **overrides)

    def key(self, provider: str) -> Secret:
        """The provider's key, or a UserError naming the variable to set."""
        if provider in self.keys:
            return self.keys[provider]
        variable = REMOTE[provider][0]
        raise UserError.single(
            f"no API key for {provider}: {variable} is not set",
            hint=f"export {variable}=... (or rehearse for free with --provider preview)")


def url_variable(provider: str) -> str:
    """KLING_COMPOSE_<PROVIDER>_URL, the base URL override (proxies, the simulator)."""
    return "KLING_COMPOSE_" + provider.upper().replace("-", "_") + "_URL"
