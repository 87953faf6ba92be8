"""MySecret client: one-time secret links on WIDIP's Password Pusher (JSON API v1, docs/integrations.md).

A new AD password reaches its owner as a link that works once and expires within a day. The password
itself arrives here as a `SecretStore` handle, is redeemed inside `create_secret` and travels only in
the POST body to Password Pusher: never in a return value, a log line or an exception. The payload is
sent with `retrieval_step=false` so the link is the plain `<base>/p/<token>` the seed mails out.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from widip.errors import ConfigError, IntegrationError, Invalid, Rejected
from widip.functions.integrations.http_client import make_client, send

logger = logging.getLogger(__name__)

SYSTEM = "mysecret"
DAYS_RANGE = (1, 90)
VIEWS_RANGE = (1, 100)


@dataclass(frozen=True)
class SecretLink:
    """Where the recipient reads the secret, and how long/how often that works."""

    secret_url: str
    url_token: str
    expires_in_days: int
    expire_views: int

    def to_dict(self) -> dict:
        return asdict(self)


class MySecretClient:
    """Creates and expires pushes; the API token goes in `Authorization: Bearer`."""

    def __init__(self, base_url: str, token: str | None, *, timeout: float = 10.0, verify: bool | str = True,
                 secret_store=None, transport=None):
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = make_client(base_url.rstrip("/"), timeout=timeout, verify=verify, headers=headers,
                                   transport=transport)
        self._store = secret_store
        self.base_url = base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"MySecretClient({self.base_url!r})"

    @classmethod
    def from_settings(cls, settings, secret_store=None) -> "MySecretClient":
        if not settings.mysecret_api_url:
            raise ConfigError(["MYSECRET_API_URL is required for MySecret"])
        return cls(settings.mysecret_api_url, settings.mysecret_api_token,
                   timeout=settings.integration_timeout_seconds, verify=settings.ca_file or True,
                   secret_store=secret_store)

    def close(self) -> None:
        self._client.close()

    def create_secret(self, *, payload: str | None = None, secret_handle: str | None = None,
                      expire_days: int = 1, expire_views: int = 1) -> SecretLink:
        """Push `payload`, or the secret behind `secret_handle` (redeemed here, once), and return its link."""
        if (payload is None) == (secret_handle is None):
            raise Invalid("give exactly one of payload or secret_handle")
        for name, value, (low, high) in (("expire_days", expire_days, DAYS_RANGE),
                                         ("expire_views", expire_views, VIEWS_RANGE)):
            # Password Pusher silently replaces out-of-range values by its defaults (7 days, 5 views).
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise Invalid(f"{name} must be an integer between {low} and {high}")
        if secret_handle is not None:
            if self._store is None:
                raise ConfigError(["create_secret with a secret_handle needs a SecretStore"])
            secret = self._store.redeem(secret_handle)
        else:
            if not isinstance(payload, str) or not payload.strip():
                raise Invalid("payload must be a non-empty string")
            secret = payload
        body = {"password": {"payload": secret, "expire_after_days": expire_days,
                             "expire_after_views": expire_views, "retrieval_step": False}}
        try:
            response = send(self._client, SYSTEM, "POST", "/p.json", json=body)
        except IntegrationError:
            if secret_handle is not None and self._store.restore(secret_handle, secret):
                logger.info("mysecret push failed; the secret handle stays redeemable for a retry")
            raise
        finally:
            body["password"]["payload"] = None
            del secret
        return self._link(response)

    def _link(self, response) -> SecretLink:
        try:
            data = response.json()
            link = SecretLink(secret_url=str(data["html_url"]), url_token=str(data["url_token"]),
                              expires_in_days=int(data["expire_after_days"]),
                              expire_views=int(data["expire_after_views"]))
        except (ValueError, KeyError, TypeError):
            raise Rejected(SYSTEM, "unexpected response to push creation", status_code=response.status_code) from None
        # The link opens the secret: it is not logged either.
        logger.info("mysecret push created (%d day(s), %d view(s))", link.expires_in_days, link.expire_views)
        return link

    def expire_secret(self, url_token: str) -> bool:
        """Expire a push now (e.g. the mail could not be sent). True if it is expired afterwards."""
        if not isinstance(url_token, str) or not url_token.replace("-", "").replace("_", "").isalnum():
            raise Invalid("invalid url_token")
        response = send(self._client, SYSTEM, "DELETE", f"/p/{url_token}.json")
        return bool(response.json().get("expired"))
