"""The operator's holding list: inbound mail that matched no delivery, or could not be read.

Platform admins only (anyone else gets a 404, as for the other /admin pages):

* GET  /admin/inbound                 held and malformed messages, newest first
* GET  /admin/inbound/<id>            one message: its headers and readable text (its
                                      HTML is never rendered: the text is the parser's)
* GET  /admin/inbound/<id>/raw        the raw bytes, as a message/rfc822 download
* POST /admin/inbound/<id>/attach     attach it to a delivery named by id (any
                                      collective): it becomes a response like any reply
* POST /admin/inbound/<id>/dismiss    set it aside (kept, not deleted)
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import undefer
from werkzeug.wrappers import Response as WerkzeugResponse
from wtforms import IntegerField
from wtforms.validators import InputRequired, NumberRange

from web.forms import ConfirmForm
from web.http import app_settings, db_session
from web.responses import inbound, mailparse
from web.responses.models import InboundMessage, InboundStatus

bp = Blueprint("inbound_admin", __name__, url_prefix="/admin/inbound")


class AttachForm(FlaskForm):
    delivery_id = IntegerField(
        "Delivery number",
        description="The number at the end of the delivery page’s address.",
        validators=[
            InputRequired(message="Enter the delivery’s number."),
            NumberRange(min=1, max=2**63 - 1, message="Enter a delivery number, like 42."),
        ],
    )


@bp.before_request
def require_platform_admin() -> None:
    if not (current_user.is_authenticated and current_user.is_platform_admin):
        abort(404)


def _message(message_id: int, *, with_raw: bool = False) -> InboundMessage:
    s = db_session()
    if with_raw:
        found = s.scalar(
            select(InboundMessage)
            .where(InboundMessage.id == message_id)
            .options(undefer(InboundMessage.raw))
        )
    else:
        found = s.get(InboundMessage, message_id)
    if found is None:
        abort(404)
    return found


@bp.get("")
def index() -> str:
    return render_template("inbound_admin/index.html", messages=inbound.held_messages(db_session()))


def _render_message(
    message: InboundMessage, form: AttachForm | None = None, error: str = "", status: int = 200
) -> tuple[str, int]:
    raw = message.raw
    parsed = mailparse.parse_message(raw)
    return render_template(
        "inbound_admin/message.html",
        message=message,
        headers=inbound.raw_headers(raw),
        parsed=parsed,
        form=form or AttachForm(formdata=None),
        confirm=ConfirmForm(),
        error=error,
        open_statuses=(InboundStatus.HELD.value, InboundStatus.MALFORMED.value),
    ), status


@bp.get("/<id:message_id>")
def show(message_id: int) -> tuple[str, int]:
    return _render_message(_message(message_id, with_raw=True))


@bp.get("/<id:message_id>/raw")
def raw(message_id: int) -> WerkzeugResponse:
    message = _message(message_id, with_raw=True)
    response = WerkzeugResponse(message.raw, mimetype="message/rfc822")
    response.headers.set("Content-Disposition", "attachment", filename=f"inbound-{message.id}.eml")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post("/<id:message_id>/attach")
def attach(message_id: int) -> Any:
    message = _message(message_id, with_raw=True)
    form = AttachForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        return _render_message(message, form, status=422)
    try:
        result = inbound.attach_held(
            db_session(), app_settings(), current_user, message.id, int(form.delivery_id.data or 0)
        )
    except inbound.InboundError as exc:
        form.delivery_id.errors = [*form.delivery_id.errors, str(exc)]
        return _render_message(_message(message_id, with_raw=True), form, status=422)
    flash(
        f"Message {message.id} is now a response ({result.kind}) on delivery {result.delivery_id}.",
        "success",
    )
    return redirect(url_for("inbound_admin.index"))


@bp.post("/<id:message_id>/dismiss")
def dismiss(message_id: int) -> Any:
    message = _message(message_id)
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        inbound.dismiss(db_session(), current_user, message.id)
    except inbound.InboundError as exc:
        return _render_message(_message(message_id, with_raw=True), error=str(exc), status=422)
    flash(f"Message {message.id} was set aside.", "success")
    return redirect(url_for("inbound_admin.index"))
