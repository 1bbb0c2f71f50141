"""The HTTP side's shared plumbing: the per-request session, safe redirects, errors.

The request's session commits in exactly one place, `finish_request` (an
`after_request` hook): a response below 400 commits, anything else rolls back. Views
and services only flush.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, render_template, request
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import BaseConverter, ValidationError

from web.db import Database
from web.outbox import attach_dispatcher
from web.settings import Settings

log = logging.getLogger(__name__)

MAX_ID = 2**63 - 1


def database(app: Flask | None = None) -> Database:
    db: Database = (app or current_app).extensions["chorus.db"]
    return db


def db_session() -> Session:
    """The session of the current request (created on first use)."""
    if "db_session" not in g:
        session = database().new_session()
        attach_dispatcher(session, current_app.extensions.get("chorus.dispatcher"))
        g.db_session = session
    session_: Session = g.db_session
    return session_


def finish_request(response: Response) -> Response:
    session: Session | None = g.pop("db_session", None)
    if session is None:
        return response
    try:
        if response.status_code < 400:
            session.commit()
        else:
            session.rollback()
    except IntegrityError:
        session.rollback()
        log.warning("commit refused by a constraint", exc_info=True)
        response = error_response(
            409,
            "That change clashes with something saved at the same moment. "
            "Please reload the page and try again.",
        )
    except SQLAlchemyError:
        session.rollback()
        log.exception("commit failed")
        response = error_response(503, "We could not save that just now. Please try again.")
    finally:
        session.close()
    return response


def discard_request_session(_exc: BaseException | None = None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.rollback()
        session.close()


_SCHEME_OR_NETLOC = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def safe_next(target: str | None, default: str = "/") -> str:
    """Only our own absolute paths: never another host, scheme or protocol-relative URL."""
    if not target or len(target) > 2000:
        return default
    if any(ch in target for ch in ("\\", "\x00", "\r", "\n", "\t")) or any(
        ord(ch) < 32 for ch in target
    ):
        return default
    if not target.startswith("/") or target.startswith("//"):
        return default
    if _SCHEME_OR_NETLOC.match(target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return (
        best == "application/json"
        and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


def error_response(status: int, message: str, title: str | None = None) -> Response:
    titles = {
        400: "We could not read that request",
        403: "Not allowed",
        404: "Page not found",
        405: "That action is not available here",
        409: "Something changed at the same time",
        413: "That is too large",
        422: "Please check what you entered",
        429: "Too many attempts",
        500: "Something went wrong on our side",
        503: "Please try again in a moment",
    }
    heading = title or titles.get(status, "Something went wrong")
    if request and wants_json():
        return Response(
            json.dumps({"error": heading, "message": message}),
            status=status,
            mimetype="application/json",
        )
    html = render_template("error.html", status=status, heading=heading, message=message)
    return Response(html, status=status, mimetype="text/html")


MESSAGES = {
    400: "The request was malformed. Please go back, reload the page and try again.",
    404: "There is nothing here, or you do not have access to it. Check the address.",
    405: "This address does not accept that kind of request.",
    413: "What you sent is too large. Please shorten it and try again.",
    429: "You have tried this too many times. Please wait a few minutes and try again.",
    500: "We could not complete this. It has been logged; please try again later.",
}


def handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    message = MESSAGES.get(status, exc.description or "")
    if status in (400, 422) and exc.description and not exc.description.startswith("The browser"):
        message = exc.description
    response = error_response(status, message)
    for name, value in exc.get_headers():
        if name.lower() == "allow":  # 405 must say which methods are allowed
            response.headers[name] = value
    return response


def handle_unexpected(exc: Exception) -> Response:
    # A failed flush leaves the request's transaction unusable: roll it back before the
    # error page (whose layout may load the user or the collective) touches the database.
    session: Session | None = g.get("db_session")
    if session is not None:
        session.rollback()
    if isinstance(exc, IntegrityError):
        # A constraint refused a write mid-request (a double submit, a race): as at commit.
        log.warning("write refused by a constraint", exc_info=exc)
        return error_response(
            409,
            "That change clashes with something saved at the same moment. "
            "Please reload the page and try again.",
        )
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, MESSAGES[500])


class IdConverter(BaseConverter):
    """Positive integers that fit a BIGINT; anything else is a plain 404."""

    regex = r"\d{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 0 < number <= MAX_ID:
            raise ValidationError()
        return number

    def to_url(self, value: Any) -> str:
        return str(int(value))


class SlugConverter(BaseConverter):
    regex = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"


def reject_hostile_request() -> Response | None:
    """Refuse input PostgreSQL cannot store before any view sees it."""
    for mapping in (request.args, request.form):
        for key, values in mapping.lists():
            if "\x00" in key or any("\x00" in v for v in values):
                return error_response(
                    400,
                    "Your entry contains a null character, which we cannot store. "
                    "Please remove it and try again.",
                    title="We could not read that request",
                )
    if request.view_args:
        for value in request.view_args.values():
            if isinstance(value, str) and "\x00" in value:
                raise NotFound()
    return None


def app_settings() -> Settings:
    """The running app's settings."""
    settings: Settings = current_app.extensions["chorus.settings"]
    return settings


def refused(message: str, status: int = 422) -> tuple[str, int]:
    """An organiser's action that was not done: the error page with `message`."""
    heading = "Not allowed" if status == 403 else "That was not done"
    return render_template("error.html", status=status, heading=heading, message=message), status
