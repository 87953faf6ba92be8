"""One way to call an external HTTP API: explicit timeouts, pooled connections, errors split in two.

Every integration client (GLPI, Observium, Phibee, Password Pusher…) builds its `httpx.Client`
with `make_client` and sends through `send`, so that
- a timeout, a refused connection or a 5xx becomes `Unavailable` (worth retrying later), and
- any other 4xx becomes `Rejected` (permanent),
and so that every outcome reaches the listeners in `OUTCOME_LISTENERS` (integration status and
latency metrics) without the clients knowing about them. Nothing here logs headers or bodies:
they carry tokens and personal data.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import ssl
import sys
import time
from typing import Callable

from widip.errors import Rejected, Unavailable

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _as_if_not_installed(*modules: str):
    """Import as though `modules` were absent, so their importers take their own fallback path."""
    hidden = [name for name in modules if name not in sys.modules]
    sys.modules.update(dict.fromkeys(hidden, None))
    try:
        yield
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


# NOTE: httpcore imports trio (~2.4 MB; selenium brings it) in case it runs under trio; our clients never
# do, so it takes the path it takes without trio. httpx imports httpcore only when a first client is
# built, which is after this module (every client is built by `make_client` or an SDK loaded later).
# (httpx's own command-line client is kept out in widip/__init__.py.)
with _as_if_not_installed("trio"):
    import httpcore  # noqa: F401 - imported here for the line above; httpx would import it on first use
import httpx  # noqa: E402

#: Called as listener(system, ok, elapsed_seconds, error_or_None) after every call.
OUTCOME_LISTENERS: list[Callable[[str, bool, float, Exception | None], None]] = []

DEFAULT_TIMEOUT_SECONDS = 10.0


def make_client(base_url: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS, verify: bool | str = True,
                headers: dict[str, str] | None = None, auth=None, transport=None) -> httpx.Client:
    """A long-lived client with a base URL and an explicit timeout on every phase."""
    return httpx.Client(
        base_url=base_url, timeout=httpx.Timeout(timeout), verify=ssl_context(verify), headers=headers or {},
        auth=auth, transport=transport, limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
    )


@functools.cache
def ssl_context(verify: bool | str = True) -> ssl.SSLContext:
    """The process's one TLS context per `verify` (True, False or a CA file/directory), built on first use.

    httpx would build one per client and load the whole CA bundle into each (~0.8 MB resident apiece);
    a context is safe to share between clients and threads. Same settings as httpx's own.
    """
    if isinstance(verify, str):
        return ssl.create_default_context(**{"capath" if os.path.isdir(verify) else "cafile": verify})
    return httpx.create_ssl_context(verify=verify)


def send(client: httpx.Client, system: str, method: str, path: str, *,
         reject_statuses: Callable[[httpx.Response], bool] | None = None, **kwargs) -> httpx.Response:
    """Send one request; return the response when it is a success (< 400), else raise.

    `reject_statuses` lets a client keep some 4xx responses for itself (GLPI's 401 session expiry is
    handled by re-login, not raised): when it returns False for a response, that response is returned
    as is.
    """
    started = time.perf_counter()
    try:
        response = client.request(method, path, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nothing was sent
        raise notify_outcome(system, started, Unavailable(
            system, f"cannot connect ({type(exc).__name__})", maybe_applied=False)) from exc
    except httpx.TimeoutException as exc:
        raise notify_outcome(system, started, Unavailable(system, f"timed out after {_elapsed(started):.1f} s")) from exc
    except httpx.TransportError as exc:
        raise notify_outcome(system, started, Unavailable(system, f"cannot connect ({type(exc).__name__})")) from exc
    if response.status_code >= 500:
        # 502/503 come from a proxy or an overloaded server that did not process the request.
        raise notify_outcome(system, started, Unavailable(
            system, f"server error {response.status_code}", status_code=response.status_code,
            maybe_applied=response.status_code not in (502, 503)))
    if response.status_code >= 400 and (reject_statuses is None or reject_statuses(response)):
        code, message = describe_error(response)
        raise notify_outcome(system, started, Rejected(
            system, f"{response.status_code} {message}", status_code=response.status_code, code=code))
    notify_outcome(system, started, None)
    return response


def describe_error(response: httpx.Response) -> tuple[str | None, str]:
    """(code, message) from an error body: GLPI's ["CODE", "msg"], {"error": …}, or plain text."""
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:200]
    if isinstance(body, list) and body and isinstance(body[0], str):
        return body[0], str(body[1]) if len(body) > 1 else body[0]
    if isinstance(body, dict):
        message = body.get("error") or body.get("message") or body.get("detail") or body.get("title")
        if isinstance(message, dict):
            message = message.get("message")
        return body.get("code") or body.get("status"), str(message or body)[:200]
    return None, str(body)[:200]


def _elapsed(started: float) -> float:
    return time.perf_counter() - started


def notify_outcome(system: str, started: float, error: Exception | None, *, ok: bool | None = None) -> Exception | None:
    """Tell every listener how a call to `system` went (clients that do not use `send` call this too).

    A 4xx (`Rejected`) is the remote side answering: the system is up even though the call was refused.
    `started` is a `time.perf_counter()` value; returns `error` so callers can `raise notify_outcome(…)`.
    """
    elapsed = _elapsed(started)
    if ok is None:
        ok = error is None or isinstance(error, Rejected)
    for listener in OUTCOME_LISTENERS:
        try:
            listener(system, ok, elapsed, error)
        except Exception:  # noqa: BLE001 - a broken listener must not break the call
            logger.exception("integration outcome listener failed")
    if error is not None:
        logger.warning("%s call failed: %s", system, error)
    return error
