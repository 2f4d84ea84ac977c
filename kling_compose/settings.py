"""Settings read once from the environment; nothing else in the package touches os.environ.

API keys travel as `Secret`, whose repr and str hide the value: a key can end up in a log line,
an exception or a dataclass repr and still never be printed. Only a provider's auth code calls
`Secret.reveal()`.

Every value read from the environment is checked here, with a message naming the variable: a
poll interval of `0`, `-5`, `nan` or `inf` would poll many times a second or wait forever, and a
base URL without a scheme would fail only after earlier shots were paid for.

Where a value comes from, first found wins:

1. the environment (an empty variable counts as unset);
2. `.env` in the project folder (python-dotenv reads it: `NAME=value` lines, comments, quotes,
   `export ` prefixes; values are taken literally, `${...}` is not expanded);
3. for an API key only, `<VAR>_FILE` naming a file that holds the key (the Docker secrets
   convention, `FAL_KEY_FILE=/run/secrets/fal`), itself from the environment or `.env`; a
   relative path in `.env` is relative to the project folder. Setting both `VAR` and
   `VAR_FILE` is an error: which one is meant cannot be guessed.

A provider may need more than one secret (the official Kling API signs its tokens with an
access key and a secret key: `KEY_SETS`); each is read the same way, and the provider has a
key only when every one of them is set (a `KeyPair`).

Messages name the variable and where it was set, never a key's value.
"""

from __future__ import annotations

import io
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Mapping, NamedTuple
from urllib.parse import urlsplit

from .errors import Diagnostic, Location, UserError

if TYPE_CHECKING:
    from .providers.base import ProviderSpec

# Each provider declares its key variables and hosts in its spec (providers/base.py
# ProviderSpec); these tables are read off the specs, in the providers' order.
def _specs() -> list[ProviderSpec]:
    from .providers import PROVIDERS

    return [p.spec for p in PROVIDERS.values()]


def _hosted() -> list[ProviderSpec]:
    return [spec for spec in _specs() if not spec.capabilities.local]


# storyboard provider name -> the environment variable holding its API key
KEY_VARIABLES = MappingProxyType({s.name: s.key_variables[0] for s in _hosted()})

# providers whose credential is several secrets, every one required (a KeyPair); the first is
# the provider's KEY_VARIABLES entry
KEY_SETS = MappingProxyType({s.name: s.key_variables for s in _hosted()
                             if len(s.key_variables) > 1})

# endpoint name -> default base URL (None: there is no public default; the user names the host)
ENDPOINTS = MappingProxyType({endpoint: url for s in _hosted() for endpoint, url in s.endpoints})

# every provider a storyboard or --provider may name (the local ones first)
PROVIDER_NAMES = (*(s.name for s in _specs() if s.capabilities.local), *KEY_VARIABLES)

# the endpoints each remote provider talks to (the first is its API; others as needed)
PROVIDER_ENDPOINTS = MappingProxyType({s.name: tuple(e for e, _ in s.endpoints)
                                       for s in _hosted()})

# (variable, settings field, lowest allowed, highest allowed) for numeric tuning variables
_NUMBERS = (
    ("KLING_COMPOSE_POLL_SECONDS", "poll_interval_s", 0.01, 600.0),
    ("KLING_COMPOSE_POLL_TIMEOUT_SECONDS", "poll_timeout_s", 1.0, 7 * 24 * 3600.0),
    ("KLING_COMPOSE_DOWNLOAD_TIMEOUT_SECONDS", "download_timeout_s", 1.0, 24 * 3600.0),
)

DOTENV_NAME = ".env"  # in the project folder, next to storyboard.yaml
KEY_FILE_MAX_BYTES = 64 * 1024  # a key file is a few dozen bytes; more is not a key file


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


class KeyPair:
    """Two secrets that are one credential (the official Kling API's access key and secret
    key); like Secret, it never shows either."""

    __slots__ = ("access", "secret")

    def __init__(self, access: Secret, secret: Secret) -> None:
        self.access, self.secret = access, secret

    def __repr__(self) -> str:
        return "KeyPair('***', '***')"

    __str__ = __repr__

    def __eq__(self, other) -> bool:
        return isinstance(other, KeyPair) and (other.access, other.secret) == \
            (self.access, self.secret)

    def __hash__(self) -> int:
        return hash((self.access, self.secret))


def key_variables(provider: str) -> tuple[str, ...]:
    """Every environment variable the provider's credential needs (most need one)."""
    return KEY_SETS.get(provider) or (KEY_VARIABLES[provider],)


@dataclass(frozen=True, slots=True)
class Settings:
    """Keys and endpoints per remote provider, the polling cadence and the deadlines."""

    keys: Mapping[str, Secret | KeyPair] = field(default_factory=dict)
    # provider -> where its key came from, for `doctor` ("FAL_KEY (.env)"); never the value
    key_sources: Mapping[str, str] = field(default_factory=dict)
    # provider -> the variables of its credential that are not set, when some others are
    missing_keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
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
    store_url: str | None = None  # KLING_COMPOSE_STORE: a shared artifact store (artifacts.py)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None, *,
                         project_root: Path | None = None, **overrides) -> Settings:
        """Settings from the environment and, given `project_root`, its `.env` file; every
        problem found is reported at once (a UserError naming each variable)."""
        dotenv = _read_dotenv(project_root / DOTENV_NAME) if project_root is not None else {}
        found = _Lookup(os.environ if environ is None else environ, dotenv, project_root)
        problems: list[Diagnostic] = []
        keys, sources, missing = {}, {}, {}
        for name in KEY_VARIABLES:
            read = [_collect(problems, _read_key, v, found) for v in key_variables(name)]
            if all(r is not None for r in read):
                keys[name] = read[0][0] if len(read) == 1 else KeyPair(*(r[0] for r in read))
                sources[name] = " and ".join(r[1] for r in read)
            elif any(r is not None for r in read):
                missing[name] = tuple(v for v, r in zip(key_variables(name), read) if r is None)
        urls = {}
        for name, default in ENDPOINTS.items():
            value = found.value(url_variable(name))
            urls[name] = _collect(problems, _checked_url, url_variable(name), value) \
                if value else default
        numbers = {}
        for variable, name, low, high in _NUMBERS:
            value = found.value(variable)
            if value:
                numbers[name] = _collect(problems, _checked_number, variable, value, low, high)
        if problems:
            raise UserError(*problems)
        store = found.value("KLING_COMPOSE_STORE") or None
        return cls(keys=MappingProxyType(keys), key_sources=MappingProxyType(sources),
                   missing_keys=MappingProxyType(missing), urls=MappingProxyType(urls),
                   store_url=store, **{**numbers, **overrides})

    def key(self, provider: str) -> Secret | KeyPair:
        """The provider's key, or a UserError naming the variable (or variables) to set."""
        if provider in self.keys:
            return self.keys[provider]
        unset = self.missing_keys.get(provider) or key_variables(provider)
        names = " and ".join(unset)
        raise UserError.single(
            f"no API key for {provider}: {names} {'is' if len(unset) == 1 else 'are'} not set",
            hint="; ".join(f"export {v}=..." for v in unset)
            + " (or rehearse for free with --provider preview)")

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


class _Found(NamedTuple):
    value: str
    where: str  # "the environment" or the .env file's path
    folder: Path | None = None  # the .env file's folder; None: the environment


class _Lookup:
    """A variable's value: the environment's when set and non-empty, else `.env`'s."""

    def __init__(self, environ: Mapping[str, str], dotenv: Mapping[str, str | None],
                 project_root: Path | None) -> None:
        self.environ, self.dotenv, self.project_root = environ, dotenv, project_root

    def get(self, variable: str) -> _Found | None:
        if self.environ.get(variable):
            return _Found(self.environ[variable], "the environment")
        value = self.dotenv.get(variable)
        if value and self.project_root is not None:  # a .env is read only in a project
            return _Found(value, str(self.project_root / DOTENV_NAME), self.project_root)
        return None

    def value(self, variable: str) -> str | None:
        found = self.get(variable)
        return found.value if found else None


def _collect(problems: list[Diagnostic], check, *args):
    """check(*args); on a UserError, None and its diagnostics added to `problems`."""
    try:
        return check(*args)
    except UserError as exc:
        problems.extend(exc.diagnostics)
        return None


def _read_dotenv(path: Path) -> Mapping[str, str | None]:
    """The variables of a `.env` file ({} when there is none); a file python-dotenv cannot
    read completely is a UserError locating each bad line (its text is never shown: it may
    hold a key)."""
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    text = _read_small_text(path, "the project's environment file", limit=None)
    if text is None:
        return {}
    bad = [binding.original.line for binding in parse_stream(io.StringIO(text)) if binding.error]
    if bad:
        raise UserError(*(Diagnostic(
            f"{path.name} has a line python-dotenv cannot read", Location(str(path), line),
            "write NAME=value, one per line; quote a value holding spaces or '#'")
            for line in bad))
    return dotenv_values(stream=io.StringIO(text), interpolate=False)


def _read_small_text(path: Path, what: str, limit: int | None) -> str | None:
    """A regular file's UTF-8 text, None when it does not exist; else a UserError naming the
    file (never its content: not even the bytes a decoding error would quote)."""
    hint = f"fix or remove {path}"
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UserError.single(f"{path} ({what}) cannot be read: {exc.strerror}", hint=hint) \
            from None
    if not stat.S_ISREG(info.st_mode):  # a folder, or a pipe that would block the run
        raise UserError.single(f"{path} ({what}) is not a regular file", hint=hint)
    try:
        with open(path, "rb") as handle:
            data = handle.read(-1 if limit is None else limit + 1)
    except OSError as exc:
        raise UserError.single(f"{path} ({what}) cannot be read: {exc.strerror}", hint=hint) \
            from None
    if limit is not None and len(data) > limit:
        raise UserError.single(f"{path} ({what}) is larger than {limit // 1024} KiB",
                               hint=hint)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError.single(f"{path} ({what}) is not UTF-8 text", hint=hint) from None


def _read_key(variable: str, found: _Lookup) -> tuple[Secret, str] | None:
    """The key `variable` names, directly or through `<variable>_FILE`, with where it came
    from; None when neither is set."""
    file_variable = variable + "_FILE"
    direct, pointer = found.get(variable), found.get(file_variable)
    if direct is not None and pointer is not None:
        raise UserError.single(
            f"both {variable} (set in {direct.where}) and {file_variable} (set in "
            f"{pointer.where}) are set", hint=f"keep one of them: unset {variable} or "
            f"{file_variable}")
    if direct is not None:
        _check_key_text(variable, direct.value, variable)
        return Secret(direct.value), f"{variable} (set in {direct.where})"
    if pointer is None:
        return None
    path = Path(pointer.value).expanduser()
    if not path.is_absolute() and pointer.folder is not None:
        path = pointer.folder / path  # relative to the .env file that names it
    text = _read_key_file(file_variable, path)
    _check_key_text(variable, text, f"the file {file_variable} names ({path})")
    return Secret(text), f"{file_variable} ({path}, set in {pointer.where})"


def _read_key_file(file_variable: str, path: Path) -> str:
    """The key in the file, surrounding whitespace and newlines stripped."""
    hint = f"point {file_variable} at a readable file holding only the key"
    try:
        text = _read_small_text(path, f"named by {file_variable}", KEY_FILE_MAX_BYTES)
    except UserError as exc:
        raise UserError.single(exc.diagnostics[0].message, hint=hint) from None
    if text is None:
        raise UserError.single(f"{file_variable} names {path}, which does not exist", hint=hint)
    if not text.strip():
        raise UserError.single(f"{file_variable} names {path}, which is empty", hint=hint)
    return text.strip()


def _check_key_text(variable: str, value: str, where: str) -> None:
    """A key must fit in an HTTP header: printable ASCII (a pasted line break or a non-ASCII
    quote would otherwise fail deep inside the HTTP library, quoting the key)."""
    if not all(" " <= c <= "~" for c in value):
        raise UserError.single(
            f"the API key in {where} holds a line break, a control or a non-ASCII character, "
            f"which no HTTP header can carry", hint=f"set {variable} to the key exactly as the "
            "provider shows it")


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
