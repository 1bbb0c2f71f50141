"""The application factory. Nothing is built at import time."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from web import http
from web.db import Database
from web.extensions import csrf, limiter, login_manager
from web.queueing import RQDispatcher, redis_from_settings
from web.settings import Settings, SettingsError

log = logging.getLogger(__name__)

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
)


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    if not settings.database_url:
        raise SettingsError(
            "DATABASE_URL is not set. `make run` starts an embedded PostgreSQL and sets it "
            "for you; otherwise point it at your database."
        )
    if not settings.redis_url:
        raise SettingsError(
            "REDIS_URL is not set. `make run` starts an embedded Redis and sets it for you; "
            "otherwise point it at your Redis."
        )
    instance = Path(settings.instance_path).resolve()
    app = Flask(__name__, instance_path=str(instance), instance_relative_config=False)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_NAME="chorus_session",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=settings.cookie_secure,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        PREFERRED_URL_SCHEME="https" if settings.base_url.startswith("https") else "http",
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
        MAX_FORM_MEMORY_SIZE=256 * 1024,
        MAX_FORM_PARTS=200,
        WTF_CSRF_TIME_LIMIT=6 * 3600,
        RATELIMIT_ENABLED=settings.ratelimit_enabled,
        RATELIMIT_STORAGE_URI=_limiter_storage(settings.redis_url),
        RATELIMIT_KEY_PREFIX=f"{settings.rq_queue_prefix}ratelimit",
        # Off: X-RateLimit headers cost Redis round trips on every limited request (the
        # signing path most of all); a refusal still says when to retry (Retry-After).
        RATELIMIT_HEADERS_ENABLED=False,
        TESTING=settings.env == "test",
    )
    app.extensions["chorus.settings"] = settings
    app.extensions["chorus.db"] = Database(settings.database_url)
    redis = redis_from_settings(settings)
    app.extensions["chorus.redis"] = redis
    app.extensions["chorus.dispatcher"] = RQDispatcher(settings, redis)

    app.url_map.converters["id"] = http.IdConverter
    app.url_map.converters["slug"] = http.SlugConverter
    app.url_map.strict_slashes = False

    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "accounts.login"
    login_manager.login_message = "Please log in to see that page."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"
    limiter.init_app(app)

    _register_blueprints(app, settings)
    _register_hooks(app, settings)
    _register_cli(app)
    from web.campaigns.public import CountFastPath
    from web.signatures.fastpath import SignFastPath

    # The two busiest requests skip the framework when they can (each explains when).
    app.wsgi_app = CountFastPath(  # type: ignore[method-assign]
        SignFastPath(app.wsgi_app, app), redis, settings.rq_queue_prefix
    )
    return app


def _limiter_storage(redis_url: str) -> str:
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url[len("unix://") :]
    return redis_url


def _register_blueprints(app: Flask, settings: Settings) -> None:
    from web.accounts.views import bp as accounts_bp
    from web.billing.stripe_views import bp as stripe_billing_bp
    from web.billing.stripe_views import stripe_webhook
    from web.billing.stripe_views import webhook_bp as stripe_webhook_bp
    from web.billing.views import admin_bp as billing_admin_bp
    from web.billing.views import bp as billing_bp
    from web.billing.views import brand_bp
    from web.campaigns.public import bp as public_bp
    from web.campaigns.views import bp as campaigns_bp
    from web.collectives.views import bp as collectives_bp
    from web.collectives.views import invitations_bp
    from web.delivery.loop_views import bp as loop_bp
    from web.delivery.loop_views import public_bp as loop_public_bp
    from web.delivery.views import bp as delivery_bp
    from web.pages import bp as pages_bp
    from web.pdf.verify_views import bp as verify_bp
    from web.pdf.views import bp as pdf_documents_bp
    from web.recipients.views import admin_bp as recipients_admin_bp
    from web.recipients.views import bp as recipients_bp
    from web.responses.department_views import bp as department_bp
    from web.responses.department_views import public_bp as accountability_bp
    from web.responses.holding_views import bp as inbound_admin_bp
    from web.responses.inbound_views import bp as inbound_bp
    from web.responses.inbound_views import receive_email as inbound_webhook
    from web.responses.meeting_views import bp as meetings_bp
    from web.responses.page_views import bp as respond_bp
    from web.responses.responses_panel import bp as responses_bp
    from web.signatures.export import bp as signatures_export_bp
    from web.signatures.offline_views import bp as offline_signatures_bp
    from web.signatures.selfservice_views import bp as selfservice_bp
    from web.signatures.statement_views import bp as statements_bp
    from web.signatures.update_views import bp as updates_bp
    from web.signatures.update_views import public_bp as public_updates_bp
    from web.signatures.views import bp as signatures_bp

    # Stripe signs its deliveries, mail providers send INBOUND_WEBHOOK_SECRET: that is
    # their authority, so these two API routes take no CSRF token (nor does the RFC 8058
    # one-click unsubscribe, whose token is in its address: web/signatures/update_views.py).
    csrf.exempt(stripe_webhook)
    csrf.exempt(inbound_webhook)
    for blueprint in (
        pages_bp,
        accounts_bp,
        invitations_bp,
        collectives_bp,
        recipients_bp,
        recipients_admin_bp,
        campaigns_bp,
        signatures_bp,
        statements_bp,
        offline_signatures_bp,
        updates_bp,
        public_updates_bp,
        signatures_export_bp,
        pdf_documents_bp,
        delivery_bp,
        verify_bp,
        billing_bp,
        billing_admin_bp,
        brand_bp,
        stripe_billing_bp,
        stripe_webhook_bp,
        loop_bp,
        loop_public_bp,
        responses_bp,
        meetings_bp,
        respond_bp,
        inbound_admin_bp,
        department_bp,
        accountability_bp,
        inbound_bp,
    ):
        app.register_blueprint(blueprint)
    if settings.is_development or settings.env == "test":
        from web.devtools.views import bp as dev_bp

        app.register_blueprint(dev_bp)
    # Last: /<collective>/<campaign> must not shadow any fixed path above.
    app.register_blueprint(selfservice_bp)
    app.register_blueprint(public_bp)


def security_header_items(settings: Settings) -> list[tuple[str, str]]:
    """The headers every response carries unless it sets its own (the WSGI fast paths
    send these too)."""
    items = [
        ("Content-Security-Policy", CSP),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
        ("X-Frame-Options", "DENY"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
    ]
    if settings.cookie_secure or settings.is_production:
        items.append(("Strict-Transport-Security", "max-age=63072000; includeSubDomains"))
    return items


def _register_hooks(app: Flask, settings: Settings) -> None:
    @login_manager.user_loader
    def load_user(user_id: str) -> Any:
        from web.accounts.models import User

        try:
            raw_id, raw_version = user_id.split(":", 1)
            uid, version = int(raw_id), int(raw_version)
        except ValueError:
            return None
        if not 0 < uid < 2**63:
            return None
        user = http.db_session().get(User, uid)
        if user is None or user.session_version != version:
            return None
        return user

    app.before_request(http.reject_hostile_request)
    app.after_request(http.finish_request)
    app.teardown_request(http.discard_request_session)

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        for name, value in security_header_items(settings):
            if name == "X-Frame-Options" and "frame-ancestors *" in headers.get(
                "Content-Security-Policy", ""
            ):
                continue  # an embeddable page (its CSP says who may frame it)
            headers.setdefault(name, value)
        if current_user and getattr(current_user, "is_authenticated", False):
            headers.setdefault("Cache-Control", "no-store")
        return response

    @app.context_processor
    def template_globals() -> dict[str, Any]:
        return {
            "settings": settings,
            "current_collective": g.get("collective"),
            "current_membership": g.get("membership"),
        }

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Response:
        if request.content_length and not request.form and not request.files:
            # Werkzeug drops a form body it cannot decode; the token went with it.
            return http.error_response(
                400,
                "We could not read what your browser sent: it was not valid text (UTF-8). "
                "Please go back, retype the entry and try again.",
                title="We could not read that request",
            )
        return http.error_response(
            400,
            "This form has expired or was sent from another site. Go back, reload the page "
            "and try again.",
            title="Please try that again",
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        if exc.code == 429:
            response = http.error_response(429, http.MESSAGES[429])
            retry_after = getattr(exc, "retry_after", None)  # SignRateLimited
            if not isinstance(retry_after, int):
                limit = getattr(exc, "limit", None)  # flask_limiter's RateLimitExceeded
                retry_after = getattr(getattr(limit, "limit", None), "get_expiry", lambda: 60)()
            response.headers["Retry-After"] = str(int(retry_after))
            return response
        return http.handle_http_exception(exc)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        return http.handle_unexpected(exc)

    @app.get("/healthz")
    @limiter.exempt
    def healthz() -> Response:
        return Response("ok\n", mimetype="text/plain")


def _register_cli(app: Flask) -> None:
    from web.cli import register

    register(app)


def settings_of(app: Flask) -> Settings:
    value: Settings = app.extensions["chorus.settings"]
    return value
