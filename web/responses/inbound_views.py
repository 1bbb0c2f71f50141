"""POST /inbound/email: mail providers' inbound webhooks deliver replies here.

The body is one raw RFC 822 message (Content-Type message/rfc822, application/
octet-stream or text/plain), or a form whose field `message` holds it (a file or a text
field; some providers post that way). The caller proves itself with the shared secret
INBOUND_WEBHOOK_SECRET, sent as `Authorization: Bearer <secret>` or in the header
`X-Chorus-Inbound-Secret`, compared in constant time.

- INBOUND_WEBHOOK_SECRET unset: 404 (the feature is off; the route says nothing).
- A wrong or missing secret: 401. An empty body: 400. Over 30 MB: 413.
- Otherwise JSON {"status": ...}: 200 for "attached" and "duplicate", 202 for "held"
  and "malformed" (kept for the operator). Providers retry anything but 2xx, so a
  message we stored is always answered 2xx; if even storing it failed, 503 asks for a
  retry.

Like the Stripe webhook, this route is exempt from CSRF (its authority is the shared
secret, and its callers are servers, not browsers); unlike it, it is rate-limited per
address, because anyone can reach it and each call stores up to 30 MB.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from flask import Blueprint, Response, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge

from web.extensions import limiter
from web.http import app_settings, db_session
from web.responses.inbound import MAX_MESSAGE_BYTES, receive_message, store_malformed

log = logging.getLogger(__name__)

bp = Blueprint("inbound", __name__)

RATE_LIMIT = "300 per minute"
# Multipart framing around a 30 MB message.
MAX_BODY_BYTES = MAX_MESSAGE_BYTES + 64 * 1024
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _json(code: int, **body: Any) -> Response:
    return Response(json.dumps(body), status=code, mimetype="application/json")


@bp.url_value_preprocessor
def allow_large_messages(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # URL value preprocessors run before every before_request hook, and the app's first
    # hook (web/http.py reject_hostile_request) reads the form, which would apply the
    # app-wide 2 MB limit. A reply may carry a 20 MB attachment.
    if endpoint == "inbound.receive_email":
        request.max_content_length = MAX_BODY_BYTES
        request.max_form_memory_size = MAX_BODY_BYTES


def _presented_secret() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("X-Chorus-Inbound-Secret", "").strip()


def _read_message() -> bytes:
    if request.mimetype in FORM_TYPES:
        upload = request.files.get("message")
        if upload is not None:
            return upload.read(MAX_MESSAGE_BYTES + 1)
        value = request.form.get("message", "")
        return value.encode("utf-8", "surrogateescape")
    return request.get_data(cache=False)


@bp.post("/inbound/email")
@limiter.limit(RATE_LIMIT)
def receive_email() -> Response:
    """Authenticate, store, match (web/responses/inbound.py); never a 500 on content."""
    settings = app_settings()
    secret = settings.inbound_webhook_secret
    if not secret:
        return _json(404, error="Not found.")
    presented = _presented_secret()
    if not presented or not hmac.compare_digest(presented.encode(), secret.encode()):
        response = _json(401, error="A valid inbound webhook secret is required.")
        response.headers["WWW-Authenticate"] = 'Bearer realm="chorus-inbound"'
        return response
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return _json(413, error="The message is larger than 30 MB.")
    try:
        raw = _read_message()
    except RequestEntityTooLarge:
        return _json(413, error="The message is larger than 30 MB.")
    if len(raw) > MAX_MESSAGE_BYTES:
        return _json(413, error="The message is larger than 30 MB.")
    if not raw.strip():
        return _json(400, error="The body is empty: send the raw message.")
    session = db_session()
    try:
        result = receive_message(session, settings, raw, source="http")
    except SQLAlchemyError:
        log.exception("inbound webhook: could not handle a message")
        session.rollback()
        try:
            stored = store_malformed(
                session, raw, source="http", note="Chorus failed while handling this message."
            )
        except SQLAlchemyError:
            session.rollback()
            log.exception("inbound webhook: could not store a message")
            return _json(503, error="The message could not be stored; please retry.")
        return _json(202, status="malformed" if stored else "duplicate")
    body: dict[str, Any] = {"status": result.status}
    if result.kind:
        body["kind"] = result.kind
    code = 200 if result.status in ("attached", "duplicate") else 202
    return _json(code, **body)
