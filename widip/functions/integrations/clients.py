"""The integration clients a tool handler uses, built lazily from the settings (one per process)."""

from __future__ import annotations

import threading

import redis

from widip.config import Settings
from widip.errors import Unavailable


class Clients:
    """Lazy access to every integration client; an unconfigured system raises Unavailable when used."""

    def __init__(self, settings: Settings, redis_client: redis.Redis):
        self.settings = settings
        self.redis = redis_client
        self._built: dict[str, object] = {}
        self._lock = threading.RLock()  # building AD or MySecret builds the secret store inside

    def _get(self, name: str, configured: bool, build):
        if not configured:
            raise Unavailable(name, "not configured in this deployment")
        with self._lock:
            if name not in self._built:
                self._built[name] = build()
            return self._built[name]

    @property
    def secret_store(self):
        from widip.functions.integrations.secret_handles import SecretStore

        return self._get("secret_store", True, lambda: SecretStore(self.redis))

    @property
    def secret_links(self):
        from widip.functions.integrations.secret_links import SecretLinkStore

        return self._get("secret_links", True, lambda: SecretLinkStore(self.redis))

    @property
    def glpi(self):
        from widip.functions.integrations.glpi import GlpiClient

        return self._get("glpi", bool(self.settings.glpi_url), lambda: GlpiClient.from_settings(self.settings))

    @property
    def observium(self):
        from widip.functions.integrations.observium import ObserviumClient

        return self._get("observium", bool(self.settings.observium_url),
                         lambda: ObserviumClient.from_settings(self.settings))

    @property
    def phibee(self):
        from widip.functions.integrations.phibee import PhibeeClient

        return self._get("phibee", bool(self.settings.phibee_api_url), lambda: PhibeeClient.from_settings(self.settings))

    @property
    def mail(self):
        from widip.functions.integrations.mail import MailClient

        return self._get("smtp", bool(self.settings.smtp_host), lambda: MailClient.from_settings(self.settings))

    @property
    def active_directory(self):
        from widip.functions.integrations.active_directory import ActiveDirectoryClient

        return self._get("active_directory", bool(self.settings.ad_server),
                         lambda: ActiveDirectoryClient.from_settings(self.settings, self.secret_store))

    @property
    def mysecret(self):
        from widip.functions.integrations.mysecret import MySecretClient

        return self._get("mysecret", bool(self.settings.mysecret_api_url),
                         lambda: MySecretClient.from_settings(self.settings, self.secret_store))

    @property
    def docs(self):
        from widip.functions.docs.index import DocsIndex

        return self._get("docs", True, lambda: DocsIndex(self.settings))

    def close(self) -> None:
        for client in self._built.values():
            close = getattr(client, "close", None)
            if close:
                close()
        self._built.clear()
