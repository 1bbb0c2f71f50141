"""Settings come from the environment; a bad value names its variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from web.app import create_app
from web.settings import Settings, SettingsError

BASE = {"CHORUS_ENV": "development", "CHORUS_INSTANCE_PATH": "/nonexistent/chorus-instance"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CHORUS_ENV", "staging"),
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("SMTP_PORT", "-1"),
        ("SMTP_SECURITY", "tls-please"),
        ("COOKIE_SECURE", "maybe"),
        ("DATABASE_URL", "mysql://root@localhost/chorus"),
        ("REDIS_URL", "memcached://localhost"),
        ("BASE_URL", "ftp://chorus.example"),
        ("ARGON2_MEMORY_KIB", "12"),
        ("TOKEN_TTL_HOURS", ""),
        ("SIGN_LIMIT_PER_IP", "lots"),
        ("SIGN_LIMIT_PER_CAMPAIGN", ""),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**BASE, name: value})
    assert name in str(info.value)


def test_production_requires_a_secret_key_and_real_servers() -> None:
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        Settings.from_env({"CHORUS_ENV": "production"})
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        Settings.from_env({"CHORUS_ENV": "production", "SECRET_KEY": "short"})
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        Settings.from_env({"CHORUS_ENV": "production", "SECRET_KEY": "x" * 40})


def test_production_defaults_are_secure() -> None:
    settings = Settings.from_env(
        {
            "CHORUS_ENV": "production",
            "SECRET_KEY": "x" * 40,
            "DATABASE_URL": "postgresql://chorus_app:pw@db/chorus",
            "REDIS_URL": "redis://redis:6379/0",
        }
    )
    assert settings.cookie_secure is True
    assert settings.ratelimit_enabled is True
    assert settings.smtp_port == 25


def test_create_app_without_a_database_says_how_to_get_one() -> None:
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        create_app(Settings(secret_key="x" * 40))


def test_nothing_is_built_at_import_time() -> None:
    """Importing every module creates no app, engine or Redis connection."""
    probe = (
        "import gc, sys\n"
        "import web.app, web.models, workers.__main__, workers.cron, workers.jobs.email\n"
        "import workers.jobs.system\n"
        "from flask import Flask\n"
        "from sqlalchemy.engine import Engine\n"
        "from redis import Redis\n"
        "kinds = (Flask, Engine, Redis)\n"
        "built = [type(o).__name__ for o in gc.get_objects() if isinstance(o, kinds)]\n"
        "print(built)\n"
        "sys.exit(1 if built else 0)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
