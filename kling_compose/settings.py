"""Settings read once from the environment; nothing else in the package touches os.environ.

API keys travel as `Secret`, whose repr and str hide the value: a key can end up in a log line,
an exception or a dataclass repr and still never be printed. Only a provider's auth code calls
`Secret.reveal()`.

Every value read from the environment is checked here, with a message naming the variable: a
poll interval of `0`, `-5`, `nan` or `inf` would poll many times a second or wait forever, and a
base URL without a scheme would fail only after earlier shots were paid for.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping
from urllib.parse import urlsplit

from .errors import UserError

# storyboard provider name -> the environment variable holding its API key
KEY_VARIABLES = MappingProxyType({
    "runware": "RUNWARE_API_KEY",
    "fal": "FAL_KEY",
    "kling-v3-task": "KLING_V3_TASK_API_KEY",
    "kie": "KIE_API_KEY",
})

# endpoint name -> default base URL (None: there is no public default; the user names the host).
# Each real host has its own entry, so that a request sent to the wrong host fails in the
# simulator too (fal's storage token comes from its REST host, not the queue host).
ENDPOINTS = MappingProxyType({
    "runware": "https://api.runware.ai/v1",  # Runware REST API (runware.ai/docs)
    "fal": "https://queue.fal.run",  # fal queue (fal-client 1.0.3: QUEUE_URL_FORMAT)
    "fal-rest": "https://rest.fal.ai",  # fal storage tokens (fal-client 1.0.3: REST_URL)
    "fal-cdn": "https://v3.fal.media",  # fal uploads (fal-client 1.0.3: CDN_URL, /files/upload)
    "fal-api": "https://api.fal.ai",  # fal platform API: recent requests by endpoint
    "kling-v3-task": None,  # seed 002 names no host: its dialect is spoken by no known host
    "kie": "https://api.kie.ai",  # docs.kie.ai: Market API host
    "kie-upload": "https://kieai.redpandaai.co",  # docs.kie.ai: File Upload API host
})

# the endpoints each remote provider talks to (the first is its API; others as needed)
PROVIDER_ENDPOINTS = MappingProxyType({
    "runware": ("runware",),
    "fal": ("fal", "fal-rest", "fal-cdn", "fal-api"),
    "kling-v3-task": ("kling-v3-task",),
    "kie": ("kie", "kie-upload"),
})

# (variable, settings field, lowest allowed, highest allowed) for numeric tuning variables
_NUMBERS = (
    ("KLING_COMPOSE_POLL_SECONDS", "poll_interval_s", 0.01, 600.0),
    ("KLING_COMPOSE_POLL_TIMEOUT_SECONDS", "poll_timeout_s", 1.0, 7 * 24 * 3600.0),
    ("KLING_COMPOSE_DOWNLOAD_TIMEOUT_SECONDS", "download_timeout_s", 1.0, 24 * 3600.0),
)


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
    """Keys and endpoints per remote provider, the polling cadence and the deadlines."""

    keys: Mapping[str, Secret] = field(default_factory=dict)
    urls: Mapping[str, str | None] = field(default_factory=lambda: dict(ENDPOINTS))
    # None: adaptive polling (providers.md, "Polling"); a number: a fixed cadence (simulator)
    poll_interval_s: float | None = None
    poll_first_s: float = 1.0  # without history: 1 s after submit, then x1.5, up to poll_max_s
    poll_factor: float = 1.5
    poll_max_s: float = 5.0
    poll_timeout_s: float = 1800.0  # per run; a task still processing is polled by the next run
    request_timeout_s: float = 60.0  # connect/read/write of one request, and its overall deadline
    download_timeout_s: float = 900.0  # the overall deadline of one download attempt
    retries: int = 5

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, **overrides) -> Settings:
        env = os.environ if environ is None else environ
        keys = {name: Secret(env[var]) for name, var in KEY_VARIABLES.items() if env.get(var)}
        urls = {}
        for name, default in ENDPOINTS.items():
            variable = url_variable(name)
            value = env.get(variable)
            urls[name] = _checked_url(variable, value) if value else default
        numbers = {}
        for variable, name, low, high in _NUMBERS:
            if env.get(variable):
                numbers[name] = _checked_number(variable, env[variable], low, high)
        return cls(keys=MappingProxyType(keys), urls=MappingProxyType(urls),
                   **{**numbers, **overrides})

    def key(self, provider: str) -> Secret:
        """The provider's key, or a UserError naming the variable to set."""
        if provider in self.keys:
            return self.keys[provider]
        variable = KEY_VARIABLES[provider]
        raise UserError.single(
            f"no API key for {provider}: {variable} is not set",
            hint=f"export {variable}=... (or rehearse for free with --provider preview)")

    def url(self, endpoint: str) -> str:
        """The base URL of an endpoint, or a UserError naming the variable to set."""
        value = self.urls.get(endpoint)
        if value:
            return value.rstrip("/")
        variable = url_variable(endpoint)
        raise UserError.single(
            f"{endpoint} has no default host: set {variable}",
            hint=f"export {variable}=https://... (the base URL of the service that speaks "
                 f"this API; see docs/providers.md)")

    def check_provider(self, provider: str) -> None:
        """Everything a run at `provider` needs from the environment: its key and its hosts."""
        self.key(provider)
        for endpoint in PROVIDER_ENDPOINTS[provider]:
            self.url(endpoint)


def url_variable(endpoint: str) -> str:
    """KLING_COMPOSE_<ENDPOINT>_URL, the base URL override (proxies, the simulator)."""
    return "KLING_COMPOSE_" + endpoint.upper().replace("-", "_") + "_URL"


def _checked_url(variable: str, value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError.single(f"{variable}={value!r} is not an http(s) URL",
                               hint=f"for example {variable}=https://host.example/v1")
    if parts.username or parts.password:
        raise UserError.single(f"{variable} carries credentials in the URL",
                               hint="keys go in their own variables, never in a URL")
    return value.strip().rstrip("/")


def _checked_number(variable: str, value: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or not low <= number <= high:
        raise UserError.single(f"{variable}={value!r} is not a number of seconds from {low:g} "
                               f"to {high:g}", hint=f"unset {variable} to use the default")
    return number
