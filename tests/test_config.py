"""Settings: a bad environment fails at start with a message naming each bad variable."""

import pytest

from widip.config import Settings
from widip.errors import ConfigError

BASE = {"DATABASE_URL": "postgresql:///widip", "REDIS_URL": "redis://127.0.0.1:6379/0"}


def test_missing_required_settings_are_all_named():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({})
    message = str(caught.value)
    assert "DATABASE_URL (or POSTGRES_DSN)" in message and "REDIS_URL" in message


def test_postgres_dsn_is_accepted_for_the_database():
    settings = Settings.from_env({"POSTGRES_DSN": "postgresql:///other", "REDIS_URL": "redis://x"})
    assert settings.database_url == "postgresql:///other"


def test_malformed_values_name_the_variable_and_the_value():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**BASE, "WORKFLOW_INTERVAL_SECONDS": "five", "GLPI_URL": "glpi.local",
                           "WORKFLOW_ENABLED": "maybe"})
    problems = caught.value.problems
    assert any("WORKFLOW_INTERVAL_SECONDS" in p and "'five'" in p for p in problems)
    assert any("GLPI_URL" in p for p in problems)
    assert any("WORKFLOW_ENABLED" in p for p in problems)


def test_seed_defaults_apply_when_unset():
    settings = Settings.from_env(BASE)
    assert settings.workflow_interval_seconds == 300
    assert settings.workflow_enabled is True
    assert settings.alert_mail_threshold_minutes == 20
    assert settings.ollama_model == "qwen2.5:14b"


def test_smtp_use_tls_accepts_the_seed_boolean():
    assert Settings.from_env({**BASE, "SMTP_USE_TLS": "true"}).smtp_use_tls == "starttls"
    assert Settings.from_env({**BASE, "SMTP_USE_TLS": "false"}).smtp_use_tls == "none"


def test_secrets_stay_out_of_the_printable_settings():
    settings = Settings.from_env({**BASE, "GLPI_USER_TOKEN": "s3cr3t-token", "AD_PASSWORD": "p4ss"})
    assert "s3cr3t-token" not in repr(settings) and "p4ss" not in repr(settings)
    assert "s3cr3t-token" not in str(settings.describe())


def test_connection_passwords_never_show_in_the_printable_settings():
    settings = Settings.from_env({"DATABASE_URL": "postgresql://widip:pg-s3cret@db/widip",
                                  "REDIS_URL": "redis://:redis-s3cret@cache:6379/0"})
    assert "pg-s3cret" not in repr(settings) and "redis-s3cret" not in repr(settings)
    described = str(settings.describe())
    assert "pg-s3cret" not in described and "redis-s3cret" not in described and "db/widip" in described


def test_a_cleartext_directory_connection_is_refused_in_production():
    from widip.functions.integrations.active_directory import ActiveDirectoryClient

    settings = Settings.from_env({**BASE, "AD_SERVER": "ldap://dc01", "AD_USER": "svc", "AD_PASSWORD": "x",
                                  "AD_BASE_DN": "DC=widip,DC=local"})
    with pytest.raises(ConfigError, match="ldaps"):
        ActiveDirectoryClient.from_settings(settings)
