"""Typed settings read from the environment, shared by the web app, workers and tools.

Every setting has one environment variable, a default and a meaning; README.md lists
them all. A bad value stops start-up with a `SettingsError` naming the variable, so a
typo in a deployment is found at boot rather than at the first email.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ENVIRONMENTS = ("development", "test", "production")
SMTP_SECURITY = ("none", "starttls", "ssl")


SIGN_LIMIT_PER_IP = "5 per minute;30 per hour;100 per day"
SIGN_LIMIT_PER_CAMPAIGN = "1000 per second;36000 per minute"


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{name} must be true or false (got {raw!r}).")


def _int(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a whole number (got {raw!r}).") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high} (got {value}).")
    return value


def _choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)} (got {raw!r}).")
    return value


def _limits(name: str, raw: str) -> str:
    """A rate limit in the `limits` notation, such as "5 per minute;30 per hour"."""
    from limits import parse_many

    value = raw.strip()
    try:
        if not parse_many(value):
            raise ValueError(value)
    except ValueError:
        raise SettingsError(
            f'{name} must be rate limits like "5 per minute;30 per hour" (got {raw!r}).'
        ) from None
    return value


def _url(name: str, raw: str, schemes: tuple[str, ...]) -> str:
    value = raw.strip()
    parts = urlsplit(value)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in schemes:
        raise SettingsError(
            f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}"
            f" (got {raw!r})."
        )
    return value


@dataclass(frozen=True)
class Settings:
    """Everything Chorus reads from its environment. Field order follows README.md."""

    env: str = "development"
    secret_key: str = ""
    base_url: str = "http://127.0.0.1:5000"
    database_url: str = ""
    migration_database_url: str = ""
    redis_url: str = ""
    instance_path: str = "instance"
    web_port: int = 5000
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_security: str = "none"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_timeout: int = 30
    mail_from: str = "Chorus <no-reply@chorus.localhost>"
    # Replies to deliveries: reply+<key>@INBOUND_DOMAIN reaches `python -m workers.inbound`
    # (an SMTP listener) or the provider's webhook, which must send INBOUND_WEBHOOK_SECRET.
    inbound_domain: str = "reply.chorus.localhost"
    inbound_webhook_secret: str = ""
    inbound_smtp_host: str = "127.0.0.1"
    inbound_smtp_port: int = 2525
    cookie_secure: bool = True
    ratelimit_enabled: bool = True
    # Signing: per IP address (burst; sustained) and per campaign (a flood's ceiling,
    # above the 500 signatures a second one server is built to take).
    sign_limit_per_ip: str = SIGN_LIMIT_PER_IP
    sign_limit_per_campaign: str = SIGN_LIMIT_PER_CAMPAIGN
    rq_queue_prefix: str = ""
    token_ttl_hours: int = 48
    invitation_ttl_days: int = 7
    outbox_reconcile_after_seconds: int = 120
    retention_days: int = 180
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    # Billing (web/billing). Off while the secret key is empty: every collective stays on
    # Free (or a Supporter plan the operator grants). Prices are Stripe price ids.
    stripe_secret_key: str = ""
    stripe_publishable_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_api_base: str = ""
    stripe_price_supporter_monthly: str = ""
    stripe_price_supporter_yearly: str = ""
    stripe_price_federation_monthly: str = ""
    stripe_price_federation_yearly: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_development(self) -> bool:
        return self.env == "development"

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def smtp_configured(self) -> bool:
        return bool(self.smtp_host)

    @property
    def billing_enabled(self) -> bool:
        """Whether anything can be bought here (a Stripe secret key is set)."""
        return bool(self.stripe_secret_key)

    def stripe_price(self, plan: str, interval: str) -> str:
        """The Stripe price id for `plan` ("supporter" | "federation") billed every
        `interval` ("month" | "year"); "" when that price is not configured."""
        prices = {
            ("supporter", "month"): self.stripe_price_supporter_monthly,
            ("supporter", "year"): self.stripe_price_supporter_yearly,
            ("federation", "month"): self.stripe_price_federation_monthly,
            ("federation", "year"): self.stripe_price_federation_yearly,
        }
        return prices.get((plan, interval), "")

    def plan_for_price(self, price_id: str) -> tuple[str, str] | None:
        """(plan, interval) for a configured Stripe price id, else None."""
        if not price_id:
            return None
        for plan in ("supporter", "federation"):
            for interval in ("month", "year"):
                if self.stripe_price(plan, interval) == price_id:
                    return plan, interval
        return None

    @property
    def admin_database_url(self) -> str:
        """The URL migrations run with: the owner of the tables."""
        return self.migration_database_url or self.database_url

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from `environ` (default: os.environ) and validate every value."""
        env = dict(os.environ if environ is None else environ)

        def get(name: str, default: str = "") -> str:
            return env.get(name, default)

        chorus_env = _choice("CHORUS_ENV", get("CHORUS_ENV", "development"), ENVIRONMENTS)
        instance_path = get("CHORUS_INSTANCE_PATH", "instance").strip() or "instance"
        secret_key = get("SECRET_KEY").strip()
        if not secret_key:
            if chorus_env == "production":
                raise SettingsError(
                    "SECRET_KEY must be set in production (a long random string; "
                    "for example: python -c 'import secrets; print(secrets.token_urlsafe(48))')."
                )
            secret_key = _instance_secret(Path(instance_path))
        elif len(secret_key) < 32 and chorus_env == "production":
            raise SettingsError("SECRET_KEY must be at least 32 characters in production.")

        database_url = get("DATABASE_URL").strip()
        if database_url:
            database_url = _url("DATABASE_URL", database_url, ("postgresql", "postgres"))
        migration_url = get("MIGRATION_DATABASE_URL").strip()
        if migration_url:
            migration_url = _url(
                "MIGRATION_DATABASE_URL", migration_url, ("postgresql", "postgres")
            )
        redis_url = get("REDIS_URL").strip()
        if redis_url:
            redis_url = _url("REDIS_URL", redis_url, ("redis", "rediss", "unix"))
        if chorus_env == "production" and not (database_url and redis_url):
            raise SettingsError("DATABASE_URL and REDIS_URL must be set in production.")

        port = _int("PORT", get("PORT", "5000"), 1, 65535)
        base_url = _url("BASE_URL", get("BASE_URL", f"http://127.0.0.1:{port}"), ("http", "https"))
        smtp_host = get("SMTP_HOST").strip()
        stripe = _stripe_settings(get)
        return cls(
            env=chorus_env,
            secret_key=secret_key,
            base_url=base_url.rstrip("/"),
            database_url=database_url,
            migration_database_url=migration_url,
            redis_url=redis_url,
            instance_path=instance_path,
            web_port=port,
            smtp_host=smtp_host,
            smtp_port=_int("SMTP_PORT", get("SMTP_PORT", "25"), 1, 65535),
            smtp_security=_choice("SMTP_SECURITY", get("SMTP_SECURITY", "none"), SMTP_SECURITY),
            smtp_username=get("SMTP_USERNAME"),
            smtp_password=get("SMTP_PASSWORD"),
            smtp_timeout=_int("SMTP_TIMEOUT", get("SMTP_TIMEOUT", "30"), 1, 600),
            mail_from=get("MAIL_FROM", "Chorus <no-reply@chorus.localhost>").strip(),
            inbound_domain=_domain(
                "INBOUND_DOMAIN", get("INBOUND_DOMAIN", "reply.chorus.localhost")
            ),
            inbound_webhook_secret=_webhook_secret(get("INBOUND_WEBHOOK_SECRET")),
            inbound_smtp_host=get("INBOUND_SMTP_HOST", "127.0.0.1").strip() or "127.0.0.1",
            inbound_smtp_port=_int("INBOUND_SMTP_PORT", get("INBOUND_SMTP_PORT", "2525"), 1, 65535),
            cookie_secure=_bool(
                "COOKIE_SECURE",
                get("COOKIE_SECURE", "false" if chorus_env == "development" else "true"),
            ),
            ratelimit_enabled=_bool("RATELIMIT_ENABLED", get("RATELIMIT_ENABLED", "true")),
            sign_limit_per_ip=_limits(
                "SIGN_LIMIT_PER_IP", get("SIGN_LIMIT_PER_IP", SIGN_LIMIT_PER_IP)
            ),
            sign_limit_per_campaign=_limits(
                "SIGN_LIMIT_PER_CAMPAIGN", get("SIGN_LIMIT_PER_CAMPAIGN", SIGN_LIMIT_PER_CAMPAIGN)
            ),
            rq_queue_prefix=get("RQ_QUEUE_PREFIX").strip(),
            token_ttl_hours=_int("TOKEN_TTL_HOURS", get("TOKEN_TTL_HOURS", "48"), 1, 24 * 30),
            invitation_ttl_days=_int("INVITATION_TTL_DAYS", get("INVITATION_TTL_DAYS", "7"), 1, 90),
            outbox_reconcile_after_seconds=_int(
                "OUTBOX_RECONCILE_AFTER_SECONDS",
                get("OUTBOX_RECONCILE_AFTER_SECONDS", "120"),
                1,
                86400,
            ),
            retention_days=_int(
                "SIGNER_RETENTION_DAYS", get("SIGNER_RETENTION_DAYS", "180"), 1, 3650
            ),
            argon2_time_cost=_int("ARGON2_TIME_COST", get("ARGON2_TIME_COST", "3"), 1, 20),
            argon2_memory_kib=_int(
                "ARGON2_MEMORY_KIB", get("ARGON2_MEMORY_KIB", "65536"), 8192, 4 * 1024 * 1024
            ),
            stripe_secret_key=stripe["stripe_secret_key"],
            stripe_publishable_key=stripe["stripe_publishable_key"],
            stripe_webhook_secret=stripe["stripe_webhook_secret"],
            stripe_api_base=stripe["stripe_api_base"],
            stripe_price_supporter_monthly=stripe["stripe_price_supporter_monthly"],
            stripe_price_supporter_yearly=stripe["stripe_price_supporter_yearly"],
            stripe_price_federation_monthly=stripe["stripe_price_federation_monthly"],
            stripe_price_federation_yearly=stripe["stripe_price_federation_yearly"],
        )


_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")


def _domain(name: str, raw: str) -> str:
    value = raw.strip().lower().rstrip(".")
    if not _DOMAIN.match(value):
        raise SettingsError(f"{name} must be a domain name such as reply.example.org.")
    return value


def _webhook_secret(raw: str) -> str:
    value = raw.strip()
    if value and len(value) < 32:
        raise SettingsError(
            "INBOUND_WEBHOOK_SECRET must be at least 32 characters (or empty to turn the "
            "inbound webhook off)."
        )
    return value


def _stripe_token(name: str, raw: str, prefixes: tuple[str, ...]) -> str:
    """A Stripe key, secret or price id: one word, starting as Stripe's do."""
    value = raw.strip()
    if not value:
        return ""
    if (
        len(value) > 255
        or not value.isascii()
        or any(ch.isspace() or ord(ch) < 32 for ch in value)
        or (prefixes and not value.startswith(prefixes))
    ):
        starts = " or ".join(f"{p}..." for p in prefixes) if prefixes else "one word"
        raise SettingsError(f"{name} must look like {starts} (got {raw!r}).")
    return value


STRIPE_PRICES = (
    "STRIPE_PRICE_SUPPORTER_MONTHLY",
    "STRIPE_PRICE_SUPPORTER_YEARLY",
    "STRIPE_PRICE_FEDERATION_MONTHLY",
    "STRIPE_PRICE_FEDERATION_YEARLY",
)


def _stripe_settings(get: Any) -> dict[str, str]:
    """The STRIPE_* settings. Billing is off when STRIPE_SECRET_KEY is empty; when it is
    set, the webhook secret and both Supporter prices must be too (a checkout with no
    price, or payments whose webhooks cannot be verified, would take money and change
    nothing)."""
    values = {
        "stripe_secret_key": _stripe_token(
            "STRIPE_SECRET_KEY", get("STRIPE_SECRET_KEY"), ("sk_", "rk_")
        ),
        "stripe_publishable_key": _stripe_token(
            "STRIPE_PUBLISHABLE_KEY", get("STRIPE_PUBLISHABLE_KEY"), ("pk_",)
        ),
        "stripe_webhook_secret": _stripe_token(
            "STRIPE_WEBHOOK_SECRET", get("STRIPE_WEBHOOK_SECRET"), ("whsec_",)
        ),
        "stripe_api_base": (
            _url("STRIPE_API_BASE", get("STRIPE_API_BASE"), ("http", "https")).rstrip("/")
            if get("STRIPE_API_BASE").strip()
            else ""
        ),
    }
    for name in STRIPE_PRICES:
        values[name.lower()] = _stripe_token(name, get(name), ())
    if values["stripe_secret_key"]:
        for name in (
            "STRIPE_WEBHOOK_SECRET",
            "STRIPE_PRICE_SUPPORTER_MONTHLY",
            "STRIPE_PRICE_SUPPORTER_YEARLY",
        ):
            if not values[name.lower()]:
                raise SettingsError(
                    f"{name} must be set when STRIPE_SECRET_KEY is (or leave "
                    "STRIPE_SECRET_KEY empty to turn billing off)."
                )
    elif values["stripe_webhook_secret"]:
        # Webhooks would be accepted and stored, but could never be applied (applying one
        # re-reads the subscription from Stripe, which needs the secret key).
        raise SettingsError(
            "STRIPE_SECRET_KEY must be set when STRIPE_WEBHOOK_SECRET is (or leave both "
            "empty to turn billing off)."
        )
    return values


def _instance_secret(instance: Path) -> str:
    """A development secret kept under instance/ so sessions survive restarts."""
    path = instance / "secret_key"
    try:
        existing = path.read_text().strip()
    except OSError:
        existing = ""
    if existing:
        return existing
    value = secrets.token_urlsafe(48)
    try:
        instance.mkdir(parents=True, exist_ok=True)
        path.write_text(value)
        path.chmod(0o600)
    except OSError:
        pass  # a read-only checkout still starts; sessions just end at restart
    return value


SETTING_NAMES = tuple(f.name for f in fields(Settings))
