"""The service's error hierarchy, one shallow tree; translated to HTTP only in widip/http/errors.py.

    ServiceError
     ├── ConfigError          bad environment at start
     ├── Invalid              bad input from a caller (400)
     ├── Unauthorized         no or bad credentials (401)
     ├── Forbidden            authenticated but not allowed (403)
     ├── NotFound             no such thing (404)
     ├── Conflict             state does not allow it (409)
     ├── PolicyDenied         SAFEGUARD refused the action (403)
     └── IntegrationError     an external system failed
          ├── Unavailable     retryable: timeout, 5xx, connection refused
          └── Rejected        permanent: 4xx, validation by the remote side
"""

from __future__ import annotations


class ServiceError(Exception):
    """Raised for any failure the service understands; carries a safe, user-facing message."""

    status = 500
    title = "Erreur interne"

    def __init__(self, message: str = "", **details):
        super().__init__(message or self.title)
        self.message = message or self.title
        self.details = details


class ConfigError(ServiceError):
    """Raised at start when required settings are missing or malformed."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid configuration: " + "; ".join(self.problems))


class Invalid(ServiceError):
    """Raised when a caller's input is malformed or fails validation."""

    status = 400
    title = "Requête invalide"


class Unauthorized(ServiceError):
    """Raised when credentials are missing, wrong or expired."""

    status = 401
    title = "Authentification requise"


class Forbidden(ServiceError):
    """Raised when an authenticated caller lacks the right for this action."""

    status = 403
    title = "Accès refusé"


class NotFound(ServiceError):
    """Raised when the requested item does not exist (or must not be revealed)."""

    status = 404
    title = "Introuvable"


class Conflict(ServiceError):
    """Raised when the item's current state forbids the action (already approved, expired…)."""

    status = 409
    title = "Conflit"


class PolicyDenied(ServiceError):
    """Raised when SAFEGUARD refuses an action outright."""

    status = 403
    title = "Refusé par SAFEGUARD"


class IntegrationError(ServiceError):
    """Raised when an external system (GLPI, AD, SMTP…) fails; `system` names it."""

    status = 502
    title = "Erreur d'un système externe"

    def __init__(self, system: str, message: str, *, status_code: int | None = None, code: str | None = None):
        super().__init__(f"{system}: {message}", system=system)
        self.system = system
        self.status_code = status_code
        self.code = code


class Unavailable(IntegrationError):
    """Raised when the external system is unreachable, slow or failing (5xx): worth retrying.

    `maybe_applied` says whether the request may have reached the system before the failure (a read
    timeout, a dropped connection): True unless the client knows nothing was sent (refused connection).
    Callers must not blindly repeat a non-idempotent action when it is True.
    """

    status = 503
    title = "Système externe indisponible"

    def __init__(self, system: str, message: str, *, status_code: int | None = None, code: str | None = None,
                 maybe_applied: bool = True):
        super().__init__(system, message, status_code=status_code, code=code)
        self.maybe_applied = maybe_applied


class Rejected(IntegrationError):
    """Raised when the external system refused the request (4xx, validation): retrying will not help."""

    status = 502
    title = "Requête refusée par un système externe"
