"""The signing form's submissions, answered in front of Flask when they are plainly valid.

Signing is the one write that must take hundreds of submissions a second on a small
machine, and most of a Flask request's cost is machinery a valid signature does not
need (the request and form objects, the extensions' hooks, the proxies). This WSGI layer
takes a POST to `/<collective>/<campaign>/sign` only when everything about it is plain:

- a url-encoded body of at most `MAX_BODY` bytes, valid UTF-8, no repeated or null fields;
- Flask-WTF's CSRF check passes (the same token, session cookie, time limit and, over
  HTTPS, the same Referer rule);
- the form's own fields and validators (`SignFields`, shared with the view) pass;
- the sign limits (`check_sign_limits`, the same Lua call) let it through;
- `record_signature` (the same function the view calls) stores it, and the commit works.

Then it answers exactly what the view answers: 303 to the "check your email" page, with
the app's security headers. Anything else, and any doubt, goes to the Flask view with the
body untouched, which judges it again in full and explains the problem to the person.
If the limits were already counted here, the view is told (`LIMITS_COUNTED`: True, or
the refusal to raise) so one submission never counts twice.
"""

from __future__ import annotations

import hmac
import io
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flask import Flask
from itsdangerous import BadData, URLSafeTimedSerializer
from werkzeug.datastructures import MultiDict

from web.http import SlugConverter
from web.outbox import attach_dispatcher
from web.signatures import services as signing
from web.signatures.forms import SignFields
from web.signatures.limits import SignRateLimited, check_sign_limits

log = logging.getLogger(__name__)

LIMITS_COUNTED = "chorus.sign_limits_counted"
MAX_BODY = 32 * 1024  # 2,000 characters of own words, percent-encoded, and the rest
_SLUG = f"({SlugConverter.regex})"  # the URL map's own slug rule
SIGN_PATH = re.compile(rf"^/{_SLUG}/{_SLUG}/sign$")
FIELDS = frozenset(
    {
        "csrf_token",
        "name",
        "email",
        "postcode",
        "statement",
        "show_name",
        "show_statement",
        "wants_updates",
        "website",
        "started",
    }
)

StartResponse = Callable[..., Any]


class SignFastPath:
    """WSGI middleware: see the module docstring."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], app: Flask) -> None:
        self.wsgi_app = wsgi_app
        self.app = app
        self.settings = app.extensions["chorus.settings"]
        self.db = app.extensions["chorus.db"]
        self.redis = app.extensions["chorus.redis"]
        self.dispatcher = app.extensions.get("chorus.dispatcher")
        secret = app.config["SECRET_KEY"] or ""
        self.secret_key = secret
        self.csrf_serializer = URLSafeTimedSerializer(
            app.config.get("WTF_CSRF_SECRET_KEY") or secret, salt="wtf-csrf-token"
        )
        self.csrf_time_limit = app.config.get("WTF_CSRF_TIME_LIMIT", 3600)
        self.csrf_ssl_strict = app.config.get("WTF_CSRF_SSL_STRICT", True)
        self.csrf_enabled = app.config.get("WTF_CSRF_ENABLED", True) and app.config.get(
            "WTF_CSRF_CHECK_DEFAULT", True
        )
        self.cookie_name = app.config["SESSION_COOKIE_NAME"]
        self.session_serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
        self.session_max_age = int(app.permanent_session_lifetime.total_seconds())
        from web.app import security_header_items

        self.headers = security_header_items(self.settings)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "POST":
            match = SIGN_PATH.match(environ.get("PATH_INFO", ""))
            if match is not None:
                answer = self._sign(environ, match.group(1), match.group(2))
                if answer is not None:
                    status, headers, body = answer
                    start_response(status, headers)
                    return [body]
        return self.wsgi_app(environ, start_response)

    # --- the plain case ---------------------------------------------------------------------

    def _sign(
        self, environ: dict[str, Any], collective_slug: str, campaign_slug: str
    ) -> tuple[str, list[tuple[str, str]], bytes] | None:
        if self.session_serializer is None or not self.csrf_enabled:
            return None
        content_type = environ.get("CONTENT_TYPE", "")
        if content_type.split(";", 1)[0].strip().lower() != "application/x-www-form-urlencoded":
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return None
        if not 0 < length <= MAX_BODY:
            return None
        raw = environ["wsgi.input"].read(length)
        # Whatever happens next, the view can still read the body.
        environ["wsgi.input"] = io.BytesIO(raw)
        if len(raw) != length:
            return None
        form = self._parse(raw)
        if form is None or not self._csrf_ok(environ, form.get("csrf_token", "")):
            return None
        fields = SignFields(formdata=form)
        if not fields.validate():
            return None
        suspicious = signing.suspicion(self.secret_key, fields.website.data, fields.started.data)
        if suspicious:
            return None  # the view keeps such a signature aside, and says nothing different
        ip = environ.get("REMOTE_ADDR") or ""
        try:
            check_sign_limits(self.redis, self.settings, ip, f"{collective_slug}/{campaign_slug}")
        except SignRateLimited as refusal:
            environ[LIMITS_COUNTED] = refusal  # the view explains when to try again
            return None
        except Exception:
            log.warning("sign limits unavailable; the view will answer", exc_info=True)
            return None
        environ[LIMITS_COUNTED] = True
        return self._record(environ, collective_slug, campaign_slug, fields, ip)

    def _record(
        self,
        environ: dict[str, Any],
        collective_slug: str,
        campaign_slug: str,
        fields: SignFields,
        ip: str,
    ) -> tuple[str, list[tuple[str, str]], bytes] | None:
        session = self.db.new_session()
        attach_dispatcher(session, self.dispatcher)
        try:
            target = signing.sign_target(session, collective_slug, campaign_slug)
            if target is None:
                session.rollback()
                return None
            signing.record_signature(
                session,
                self.settings,
                target,
                name=fields.name.data or "",
                email=fields.email.data or "",
                postcode=fields.postcode.data or "",
                statement=fields.statement.data or "",
                show_name=bool(fields.show_name.data),
                wants_updates=bool(fields.wants_updates.data),
                show_statement=bool(fields.show_statement.data),
                ip=ip,
            )
            session.commit()
        except signing.SigningError:
            session.rollback()
            return None  # the view shows the person what to fix
        except Exception:
            session.rollback()
            log.warning("fast signing path failed; the view will answer", exc_info=True)
            return None
        finally:
            session.close()
        location = (
            f"{environ.get('SCRIPT_NAME', '')}/{collective_slug}/{campaign_slug}/sign/check-email"
        )
        body = (
            b"<!doctype html>\n<html lang=en>\n<title>Redirecting...</title>\n"
            b"<h1>Redirecting...</h1>\n<p>You should be redirected to "
            b'<a href="' + location.encode() + b'">the next page</a>.</p>\n'
        )
        headers = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Location", location),
            *self.headers,
        ]
        return "303 SEE OTHER", headers, body

    # --- checks ---------------------------------------------------------------------------

    @staticmethod
    def _parse(raw: bytes) -> MultiDict[str, str] | None:
        """The form, or None for anything but a plain one (the view explains those)."""
        try:
            pairs = parse_qsl(
                raw.decode("ascii"),
                keep_blank_values=True,
                strict_parsing=True,
                encoding="utf-8",
                errors="strict",
                max_num_fields=len(FIELDS),
            )
        except (UnicodeDecodeError, ValueError):
            return None
        seen: set[str] = set()
        for key, value in pairs:
            if key not in FIELDS or key in seen or "\x00" in value:
                return None
            seen.add(key)
        return MultiDict(pairs)

    def _csrf_ok(self, environ: dict[str, Any], token: str) -> bool:
        """Flask-WTF's `CSRFProtect.protect`, for a token in the form."""
        if not token:
            return False
        cookie = _cookie(environ.get("HTTP_COOKIE", ""), self.cookie_name)
        if not cookie:
            return False
        try:
            session = self.session_serializer.loads(cookie, max_age=self.session_max_age)
            expected = self.csrf_serializer.loads(token, max_age=self.csrf_time_limit)
        except BadData:
            return False
        stored = session.get("csrf_token") if isinstance(session, dict) else None
        if not isinstance(stored, str) or not isinstance(expected, str):
            return False
        if not hmac.compare_digest(stored, expected):
            return False
        if environ.get("wsgi.url_scheme") == "https" and self.csrf_ssl_strict:
            referrer = environ.get("HTTP_REFERER", "")
            host = environ.get("HTTP_HOST", "")
            parts = urlsplit(referrer)
            if not referrer or parts.scheme != "https" or parts.netloc != host:
                return False
        return True


def _cookie(header: str, name: str) -> str:
    """One cookie's value from a Cookie header (a session cookie is never quoted)."""
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return ""
