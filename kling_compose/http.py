"""The one place the project's HTTP clients are built (the run's uploads, submissions, polls and
downloads; `adopt`; `doctor`'s key checks; `plan`'s look at the lock's result URLs).

Every client takes a `transport`: None sends over the network, a test passes
`httpx.MockTransport` (or the simulator behind a transport) and sees every request. The
settings are those each caller used before this module existed: httpx's default limits, its
reading of the environment (HTTP(S)_PROXY, NO_PROXY, SSL_CERT_FILE: a user behind a proxy
keeps working), and a timeout per read (the engine puts an overall deadline on each request
itself, engine/remote.py `Remote.send`).

Redirects: off by default. A request that carries a credential is sent by `Remote.send`,
which follows redirects itself and drops the credential on another origin (httpx strips only
Authorization, and keeps it on an https -> http downgrade). Only a client that never sends a
credential (the HEAD checks of public result URLs) may let httpx follow them.
"""

from __future__ import annotations

import httpx


def client(*, timeout_s: float, transport: httpx.BaseTransport | None = None,
           follow_redirects: bool = False) -> httpx.Client:
    """A blocking client (doctor, plan's result-URL checks); close it (a `with` block)."""
    return httpx.Client(transport=transport, timeout=timeout_s,
                        follow_redirects=follow_redirects)


def async_client(*, timeout_s: float,
                 transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The asyncio client (run, adopt): it sends credentials, so it never follows a redirect
    itself (Remote.send does); close it (an `async with` block)."""
    return httpx.AsyncClient(transport=transport, timeout=timeout_s, follow_redirects=False)
