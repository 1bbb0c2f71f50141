"""The responses panel on the organiser's delivery page, and its two routes.

The delivery page (web/templates/delivery/show.html, endpoint `delivery.show`)
includes `responses/_responses_panel.html`, which reads `delivery_responses(delivery)`
(a template global registered here): the delivery's responses, oldest first, each with
its attachments (without their bytes).

Routes (tenant blueprint, under /app/<collective-slug>/...):

* POST .../campaigns/<c>/deliveries/<d>/responses/<r>/kind   owners and organisers,
  CSRF: reclassify a response (acknowledgement, holding reply, substantive reply,
  delivery failure). Sets `classified_by="organiser"`, re-applies the kind to the
  delivery's clock and the campaign's state (forward only) and adds a RECLASSIFIED line
  to the timeline. Then back to the delivery page.
* GET .../responses/attachments/<a>   any member: the file, as a download
  (Content-Disposition: attachment, nosniff). Another collective's attachment is a 404:
  the tenant filter does not find it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import abort, flash, redirect, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import undefer
from werkzeug.routing import BuildError
from werkzeug.wrappers import Response as WerkzeugResponse
from wtforms import SelectChoice, SelectField
from wtforms.validators import InputRequired

from web.collectives.tenant import (
    campaign_or_404,
    can_act,
    tenant_blueprint,
)
from web.delivery.loop import Milestone, notify_signers
from web.delivery.models import Delivery, EventKind
from web.delivery.services import get_delivery, record_event
from web.http import db_session, refused
from web.responses.attachments import content_disposition
from web.responses.models import Response, ResponseAttachment, ResponseKind
from web.responses.services import apply_kind, responses_for

bp = tenant_blueprint("responses", __name__)

PREFIX = "/<slug:collective_slug>"

KIND_CHOICES = [SelectChoice(k.value, k.label) for k in ResponseKind]


class ReclassifyForm(FlaskForm):
    kind = SelectField(
        "What this response is",
        choices=KIND_CHOICES,
        validators=[InputRequired(message="Choose what this response is.")],
    )


@dataclass(frozen=True)
class ResponseRow:
    response: Response
    attachments: list[ResponseAttachment]


@bp.app_template_global()
def delivery_responses(delivery: Delivery) -> list[ResponseRow]:
    """The delivery's responses with their attachments (for the responses panel)."""
    s = db_session()
    responses = responses_for(s, delivery)
    if not responses:
        return []
    attachments = list(
        s.scalars(
            select(ResponseAttachment)
            .where(ResponseAttachment.response_id.in_([r.id for r in responses]))
            .order_by(ResponseAttachment.id)
        )
    )
    return [ResponseRow(r, [a for a in attachments if a.response_id == r.id]) for r in responses]


@bp.app_template_global()
def reclassify_form(response: Response) -> ReclassifyForm:
    form = ReclassifyForm(formdata=None)
    form.kind.data = response.kind
    form.kind.id = f"kind-{response.id}"
    return form


def delivery_page(campaign_id: int, delivery_id: int) -> str:
    """The delivery page, or the campaign's page while the delivery page is not there."""
    try:
        return url_for("delivery.show", campaign_id=campaign_id, delivery_id=delivery_id)
    except BuildError:
        return url_for("campaigns.overview", campaign_id=campaign_id)


@bp.post(
    f"{PREFIX}/campaigns/<id:campaign_id>/deliveries/<id:delivery_id>/responses/<id:response_id>/kind"
)
def reclassify(campaign_id: int, delivery_id: int, response_id: int) -> Any:
    campaign = campaign_or_404(campaign_id)
    s = db_session()
    try:
        delivery = get_delivery(s, campaign, delivery_id)
    except LookupError:
        abort(404)
    response = s.scalar(
        select(Response).where(Response.id == response_id, Response.delivery_id == delivery.id)
    )
    if response is None:
        abort(404)
    if not can_act():
        return refused("Only owners and organisers can change how a response is classified.", 403)
    form = ReclassifyForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        return refused(" ".join(form.kind.errors) or "Choose what this response is.", 422)
    new_kind = ResponseKind(form.kind.data)
    old_kind = response.kind_enum
    if new_kind is not old_kind:
        response.kind = new_kind.value
        response.classified_by = "organiser"
        s.flush()
        apply_kind(s, delivery, response)
        if new_kind is ResponseKind.SUBSTANTIVE:
            notify_signers(s, delivery, Milestone.ANSWERED)
        elif new_kind is not ResponseKind.BOUNCE:
            notify_signers(s, delivery, Milestone.ACKNOWLEDGED)
        record_event(
            s,
            delivery,
            EventKind.RECLASSIFIED,
            f"A response was reclassified from {old_kind.label.lower()} to "
            f"{new_kind.label.lower()}.",
            actor_id=current_user.id,
            actor_label=current_user.display_name,
            response_id=response.id,
            old=old_kind.value,
            new=new_kind.value,
        )
        flash(f"The response is now classified as: {new_kind.label.lower()}.", "success")
    return redirect(delivery_page(campaign.id, delivery.id))


@bp.get(f"{PREFIX}/responses/attachments/<id:attachment_id>")
def download_attachment(attachment_id: int) -> WerkzeugResponse:
    s = db_session()
    attachment = s.scalar(
        select(ResponseAttachment)
        .where(ResponseAttachment.id == attachment_id)
        .options(undefer(ResponseAttachment.data))
    )
    if attachment is None:
        abort(404)
    response = WerkzeugResponse(attachment.data, mimetype=attachment.content_type)
    # The name was cleaned when stored (no controls or paths); content_disposition keeps
    # the header latin-1 and gives names outside ASCII as RFC 5987 filename*.
    response.headers["Content-Disposition"] = content_disposition(attachment.filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
