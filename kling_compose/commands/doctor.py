"""`kling-compose doctor`: everything a run needs, checked before anything is spent.

Like dbt's `debug`: each check is one `ok` or `problem` line, a problem with a hint. The checks,
in order: Python, ffmpeg, the storyboard (loaded as every command loads it), the ledger
`.kling-compose/state.db`, `storyboard.lock`, the settings (environment and `.env`), and for
each hosted provider the plan uses (or the one `--provider` names): its key, its hosts, and
where the provider has a free authenticated call, that the key is accepted. A key's value is
never shown, only the variable (and file) it came from.

Network errors are problems whose hint names the URL and its `KLING_COMPOSE_<HOST>_URL`
setting. httpx's errors are translated here, the one place doctor sends anything.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import Diagnostic, UserError

MIN_PYTHON = (3, 11)  # pyproject.toml: requires-python
REQUEST_TIMEOUT_S = 15.0  # per key check: a user is waiting at the terminal
FFMPEG_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Check:
    """One finding: ok or a problem, with a hint saying what to do about a problem."""

    ok: bool
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        text = f"{'ok' if self.ok else 'problem':<8} {self.message}"
        return text + (f"\n{'':<9}hint: {self.hint}" if self.hint else "")


def diagnose(storyboard: Path, display: str, load_plan: Callable[[], object],
             provider: str | None = None, *, environ: Mapping[str, str] | None = None,
             transport=None) -> Iterator[Check]:
    """Every check, in order, as it is made (the key checks take a moment each).

    `storyboard` is the file as the user named it (its folder is the project), `load_plan`
    builds the plan as `kling-compose plan` does, `provider` is `--provider`.
    """
    yield python_check()
    yield ffmpeg_check()
    plan = None
    try:
        plan = load_plan()
    except UserError as exc:
        yield from _problems(exc)
    else:
        yield storyboard_check(plan, display)
    root = storyboard.parent
    yield from project_file_check(root, os.path.dirname(display))
    yield from state_check(root)
    yield from lock_check(root, storyboard.stem)
    if plan is not None:
        yield from store_check(plan, environ, root)
    providers = hosted_providers(plan, provider)
    if providers is None:
        yield Check(False, "provider keys not checked: the storyboard does not load",
                    hint="fix the storyboard, or name the provider: kling-compose doctor "
                         "--provider P")
        return
    if not providers:
        yield Check(True, "no hosted provider: preview renders locally, no key needed")
        return
    from ..settings import Settings

    try:
        settings = Settings.from_environment(environ, project_root=root)
    except UserError as exc:
        yield from _problems(exc)
        yield Check(False, f"provider keys not checked ({', '.join(providers)}): the settings "
                    "above have problems", hint="fix them, then run kling-compose doctor again")
        return
    for name in providers:
        yield from provider_checks(name, settings, root, transport)


def store_check(plan, environ, root: Path) -> Iterator[Check]:
    """The shared artifact store, if the project names one: its listing can be read."""
    from ..settings import Settings
    from ..share.artifacts import STORE_FAILURES, project_store

    try:
        settings = Settings.from_environment(environ, project_root=root)
    except UserError:
        settings = Settings()  # its problems are reported with the provider keys, once
    try:
        remote = project_store(plan.resolved.storyboard, settings)
    except UserError as exc:
        yield from _problems(exc)
        return
    if remote is None:
        return
    try:
        count = len(remote.listing())
    except UserError as exc:  # its client library is not installed (the s3 extra)
        yield from _problems(exc)
        return
    except STORE_FAILURES as exc:  # translated at the store's boundary; a bug propagates
        yield Check(False, f"artifact store {remote.url} cannot be read: {exc}",
                    hint="check its URL and credentials (the AWS_* variables or profile for "
                         "s3://), or unset KLING_COMPOSE_STORE / remove `store:`")
        return
    yield Check(True, f"artifact store {remote.url} readable ({count} object(s))")


def project_file_check(root: Path, shown_folder: str) -> Iterator[Check]:
    """The project file's defaults, when there is one: what every command here runs with."""
    from ..project.defaults import project_defaults

    try:
        defaults = project_defaults(root, shown_folder)
    except UserError as exc:
        yield from _problems(exc)
        return
    if defaults.file is None:
        return
    said = ", ".join(f"{k} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                     for k, v in defaults.settings().items()) or "no setting"
    yield Check(True, f"project file {defaults.file}: {said}")


def python_check() -> Check:
    version = platform.python_version()
    if sys.version_info[:2] < MIN_PYTHON:
        return Check(False, f"Python {version} ({sys.executable})",
                     hint=f"kling-compose needs Python {'.'.join(map(str, MIN_PYTHON))} or newer")
    return Check(True, f"Python {version} ({sys.executable})")


def ffmpeg_check() -> Check:
    """ffmpeg found (imageio-ffmpeg's) and answering `-version`."""
    from ..media.ffmpeg import ffmpeg_exe

    hint = ("reinstall imageio-ffmpeg (pip install --force-reinstall imageio-ffmpeg), or set "
            "IMAGEIO_FFMPEG_EXE to an ffmpeg executable")
    try:
        exe = ffmpeg_exe()
    except RuntimeError as exc:  # imageio-ffmpeg: "No ffmpeg exe could be found..."
        return Check(False, f"ffmpeg not found: {exc}", hint=hint)
    try:
        proc = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True,
                              errors="replace", timeout=FFMPEG_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Check(False, f"ffmpeg at {exe} did not answer -version within "
                     f"{FFMPEG_TIMEOUT_S:g} s", hint=hint)
    except OSError as exc:
        return Check(False, f"ffmpeg at {exe} cannot run: {exc.strerror}", hint=hint)
    first = (proc.stdout.strip().splitlines() or [""])[0]
    if proc.returncode != 0 or not first:
        tail = " | ".join(proc.stderr.strip().splitlines()[-2:]) or "no output"
        return Check(False, f"ffmpeg at {exe} failed (exit {proc.returncode}): {tail}",
                     hint=hint)
    return Check(True, f"{first.split(' Copyright')[0]} ({exe})")


def storyboard_check(plan, display: str) -> Check:
    shots = sum(1 for t in plan.tasks.values() if t.kind == "generate")
    used = sorted({t.provider for t in plan.tasks.values() if t.kind == "generate"})
    return Check(True, f"{display} loads: {shots} shot(s), provider(s) {', '.join(used)}")


def state_check(root: Path) -> Iterator[Check]:
    """The ledger opens read-only and passes SQLite's quick_check."""
    from ..paths import ProjectPaths
    from ..project.state import State

    path = ProjectPaths(root).ledger
    try:
        os.stat(path)
    except FileNotFoundError:
        yield Check(True, f"{path}: none yet (the first run creates it)")
        return
    except OSError as exc:  # a path too long, a loop of links, a folder not readable
        from ..files import shown

        yield Check(False, f"{shown(str(path))}: cannot be read ({exc.strerror or exc})",
                    "check the project folder's path and permissions")
        return
    try:
        state = State(path, readonly=True)
    except UserError as exc:
        yield from _problems(exc)
        return
    try:
        count = len(state.all())
    finally:
        state.close()
    yield Check(True, f"{path} readable ({count} task record(s))")


def lock_check(root: Path, stem: str = "storyboard") -> Iterator[Check]:
    """storyboard.lock and every profile's storyboard.<profile>.lock read back."""
    from ..project.lockfile import lock_profiles

    for profile in lock_profiles(root, stem) or [None]:
        yield from _one_lock(root, profile, stem)


def _one_lock(root: Path, profile: str | None, stem: str) -> Iterator[Check]:
    from ..files import shown
    from ..paths import ProjectPaths
    from ..project.lockfile import check_lockfile

    path = ProjectPaths(root, profile, stem).lock
    try:
        check_lockfile(root, profile, stem)
        present = path.is_file()
    except UserError as exc:
        yield from _problems(exc)
        return
    except OSError as exc:  # a path too long, a loop of links
        yield Check(False, f"{shown(str(path))}: cannot be read ({exc.strerror or exc})",
                    "check the project folder's path and permissions")
        return
    yield Check(True, f"{path} readable" if present else f"{path}: none yet")


def hosted_providers(plan, provider: str | None) -> list[str] | None:
    """The hosted providers to check: the plan's, else the one --provider names; None when
    neither is known (the storyboard does not load and no --provider)."""
    from ..plan import LOCAL_PROVIDERS
    from ..settings import KEY_VARIABLES

    if plan is not None:
        used = {t.provider for t in plan.tasks.values() if t.kind == "generate"}
    elif provider is not None:
        used = {provider}
    else:
        return None
    return sorted(p for p in used - LOCAL_PROVIDERS if p in KEY_VARIABLES)


def provider_checks(name: str, settings, root: Path, transport=None) -> Iterator[Check]:
    """The key is set, every host is configured and, given a free call, the key is accepted."""
    from ..settings import PROVIDER_ENDPOINTS, key_variables

    variables = key_variables(name)  # most providers: one; kling: access key and secret key
    variable = " and ".join(variables)
    source = settings.key_sources.get(name)
    key_ok = name in settings.keys
    if key_ok:
        yield Check(True, f"{name}: API key from {source or variable}")
    else:
        unset = settings.missing_keys.get(name) or variables
        names = " and ".join(unset)
        files = " or ".join(f"{v}_FILE" for v in unset)
        yield Check(False, f"{name}: no API key ({names} {'is' if len(unset) == 1 else 'are'} "
                    "not set)",
                    hint=f"set {names} in the environment or in {root / '.env'}, or point "
                         f"{files} at a file holding the key (or rehearse for free "
                         "with --provider preview)")
    hosts: list[str] = []
    missing: list[Diagnostic] = []
    for endpoint in PROVIDER_ENDPOINTS[name]:
        try:
            hosts.append(f"{endpoint} {settings.url(endpoint)}")
        except UserError as exc:
            missing.extend(exc.diagnostics)
    for diagnostic in missing:
        yield Check(False, f"{name}: {diagnostic.message}", hint=diagnostic.hint)
    if not missing:
        yield Check(True, f"{name}: host(s) {', '.join(hosts)}")
    if key_ok and not missing:
        answered: list = []
        yield key_check(name, settings, source or variable, transport, answered)
        from ..providers import PROVIDERS

        if answered and PROVIDERS[name].signs_tokens:
            yield clock_check(name, answered[0])


# A token-signing provider (the official Kling API's JWT: valid from 5 s before it is signed
# for 30 min) refuses every request when this computer's clock is ahead of its server's by
# more than the 5 s, or behind by about the 30 min (codes 1003, 1004).
CLOCK_AHEAD_S = 4.0  # the Date header has whole seconds
CLOCK_BEHIND_S = 1700.0


def clock_check(name: str, response, now: float | None = None) -> Check:
    """This computer's clock against the Date header of the provider's answer."""
    import email.utils
    import time

    try:
        server = email.utils.parsedate_to_datetime(response.headers.get("date", ""))
    except (TypeError, ValueError):
        return Check(True, f"{name}: clock not compared (the answer has no Date header)")
    skew = (time.time() if now is None else now) - server.timestamp()
    if -CLOCK_BEHIND_S <= skew <= CLOCK_AHEAD_S:
        return Check(True, f"{name}: this computer's clock is within {abs(skew):.0f} s of "
                           f"{name}'s (its API tokens are signed with it)")
    return Check(False, f"{name}: this computer's clock is {abs(skew):.0f} s "
                 f"{'ahead of' if skew > 0 else 'behind'} {name}'s: every signed API token "
                 "would be refused (code 1003 or 1004)",
                 hint="set the clock right (enable NTP time synchronisation), then run "
                      "kling-compose doctor again")


def key_check(name: str, settings, source: str, transport=None,
              answered: list | None = None) -> Check:
    """Whether the provider accepts the key, through its free authenticated call (its answer
    appended to `answered`, if given)."""
    from ..providers import PROVIDERS
    from ..settings import url_variable

    provider = PROVIDERS[name]
    endpoint = provider.key_check_endpoint
    if endpoint is None:
        return Check(True, f"{name}: key set; not verified (no free call)")
    base = settings.url(endpoint)
    request = provider.key_check_request(base, settings.key(name))
    where = str(request.url.copy_with(query=None))
    setting = url_variable(endpoint)
    outcome = _send(request, transport)
    if answered is not None and not isinstance(outcome, str):
        answered.append(outcome)
    if isinstance(outcome, str):
        return Check(False, f"{name}: cannot reach {where}: {outcome}",
                     hint=f"check the network, or the host: {setting} (now {base})")
    return _judge_key(name, provider, outcome, source, where, setting)


def _judge_key(name: str, provider, response, source: str, where: str, setting: str) -> Check:
    from ..providers.base import ProviderError, TransientError

    if response.is_redirect:
        return Check(False, f"{name}: {where} answered HTTP {response.status_code}, a redirect "
                     f"to {response.headers.get('location')}", hint=f"set {setting} to the "
                     "address the service answers at")
    try:
        account = provider.read_key_check(response)
    except TransientError as exc:
        return Check(False, f"{name}: {exc} ({where})",
                     hint="the service is busy or down: try again in a while")
    except ProviderError as exc:
        variable = source.split(" ", 1)[0]
        where_to_fix = (f"the file {variable} names" if variable.endswith("_FILE")
                        else f"{variable} where it is set")
        if " and " in source:  # a credential of several keys (kling): any may be wrong
            where_to_fix = "the keys " + source
        return Check(False, f"{name}: the API key from {source} was refused: {exc}",
                     hint=f"fix {where_to_fix}: the key may be mistyped, revoked or another "
                          "account's; then run kling-compose doctor again")
    if account.balance is not None and account.balance <= 0:
        return Check(False, f"{name}: key accepted, but the account is empty "
                     f"({_amount(account)})", hint="add credits to the account before "
                     "kling-compose run (a generation would be refused)")
    left = f" ({_amount(account)})" if account.balance is not None else ""
    return Check(True, f"{name}: key accepted by {where}{left}")


def _send(request, transport=None):
    """The response to `request`, or a sentence saying why there is none."""
    import httpx

    from ..http import client as http_client

    try:
        with http_client(timeout_s=REQUEST_TIMEOUT_S, transport=transport) as client:
            return client.send(request)
    except httpx.TimeoutException:
        return f"no answer within {REQUEST_TIMEOUT_S:g} s"
    except httpx.TransportError as exc:
        return str(exc) or type(exc).__name__


def _amount(account) -> str:
    """"1000 credits left", or "balance 2450.75" where the documentation names no unit."""
    amount = format(account.balance.normalize(), "f")
    return f"{amount} {account.unit} left" if account.unit else f"balance {amount}"


def _problems(exc: UserError) -> Iterator[Check]:
    for diagnostic in exc.diagnostics:
        head = f"{diagnostic.location}: " if diagnostic.location else ""
        yield Check(False, head + diagnostic.message, hint=diagnostic.hint)
