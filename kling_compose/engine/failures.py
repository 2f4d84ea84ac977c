"""How remote work fails: the errors the run records on a task (never a traceback)."""

from __future__ import annotations

from ..providers.base import ProviderError

# statuses that leave open whether a generation exists and was paid for: the task stays
# submitted (the next run asks again) and is never sent again by itself
UNRESOLVED = frozenset({"unknown", "unconfirmed", "invalid"})


class RemoteError(Exception):
    """A task failed at a provider (recorded on the task, never a traceback)."""


class ResultGone(RemoteError):
    """A finished generation's result URL no longer serves it (HTTP 403, 404, 410)."""


class KeyRefused(RemoteError):
    """A request would have carried a provider key to a host the settings do not name (an
    address read from a saved record): nothing was sent."""


class _Gone(ProviderError):
    """A download answered 403/404/410: the result is gone from that URL."""

    remote_error = ResultGone


class _KeyRefused(ProviderError):
    remote_error = KeyRefused


class BudgetExceeded(RemoteError):
    """--max-cost would be passed by this submission: it is not sent (the run is resumable)."""
