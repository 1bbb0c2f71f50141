"""The meeting panel on the organiser's delivery page, and its routes.

`delivery/show.html` includes `responses/_meeting_panel.html`, which reads
`delivery_meeting(delivery)` (a template global registered here): the delivery's
`Meeting` (status, agreed time, alternatives, reason, outcome) or None.

Routes (tenant blueprint, under /app/<collective-slug>/campaigns/<c>/deliveries/<d>/):

* GET  meeting.ics       any member: the current calendar invitation, as a download.
* POST meeting/outcome   owners and organisers, CSRF: after the meeting, record its
  outcome and notes (status HELD, a MEETING_OUTCOME line on the timeline), and publish
  them on the campaign page or not. Then back to the delivery page.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as WerkzeugResponse
from wtforms import BooleanField, TextAreaField

from web.collectives.tenant import (
    campaign_or_404,
    can_act,
    current_membership,
    tenant_blueprint,
)
from web.delivery.models import Delivery
from web.delivery.services import get_delivery
from web.forms import max_length
from web.http import app_settings, db_session, refused
from web.responses import meetings
from web.responses.models import Meeting, MeetingStatus
from web.responses.page_forms import clean_long_text
from web.responses.responses_panel import delivery_page

bp = tenant_blueprint("meetings", __name__)

DELIVERY = "/<slug:collective_slug>/campaigns/<id:campaign_id>/deliveries/<id:delivery_id>"


class OutcomeForm(FlaskForm):
    notes = TextAreaField(
        "What happened at the meeting",
        description="Who came, what was said, what was agreed, what happens next. Up to "
        f"{meetings.MAX_NOTES:,} characters.",
        filters=[clean_long_text],
        validators=[max_length(meetings.MAX_NOTES, "The notes")],
    )
    publish = BooleanField("Publish these notes on the campaign page")


@bp.app_template_global()
def delivery_meeting(delivery: Delivery) -> Meeting | None:
    """The delivery's meeting, for the meeting panel."""
    return meetings.meeting_for(db_session(), delivery)


@bp.app_template_global()
def meeting_outcome_form(meeting: Meeting) -> OutcomeForm:
    form = OutcomeForm(formdata=None)
    form.notes.data = meeting.outcome_notes
    form.publish.data = meeting.outcome_published_at is not None
    return form


@bp.app_template_global()
def meeting_when(meeting: Meeting) -> str:
    if meeting.starts_at is None:
        return ""
    return meetings.uk_span(meeting.starts_at, meeting.ends_at)


@bp.app_template_global()
def meeting_alternatives(meeting: Meeting) -> list[str]:
    from datetime import datetime

    shown = []
    for item in meeting.alternatives or []:
        try:
            start = datetime.fromisoformat(item["starts_at"])
            end = datetime.fromisoformat(item["ends_at"])
        except (KeyError, TypeError, ValueError):
            continue
        shown.append(meetings.uk_span(start, end))
    return shown


@bp.app_template_global()
def meeting_has_started(meeting: Meeting) -> bool:
    from web.db import utcnow

    return meeting.starts_at is not None and meeting.starts_at <= utcnow()


def _load(campaign_id: int, delivery_id: int) -> tuple[Any, Delivery]:
    campaign = campaign_or_404(campaign_id)
    try:
        delivery = get_delivery(db_session(), campaign, delivery_id)
    except LookupError:
        abort(404)
    return campaign, delivery


@bp.get(f"{DELIVERY}/meeting.ics")
def calendar(campaign_id: int, delivery_id: int) -> WerkzeugResponse:
    _campaign, delivery = _load(campaign_id, delivery_id)
    s = db_session()
    meeting = meetings.meeting_for(s, delivery)
    if (
        meeting is None
        or meeting.starts_at is None
        or meeting.status
        not in (
            MeetingStatus.ACCEPTED.value,
            MeetingStatus.HELD.value,
        )
    ):
        abort(404)
    data = meetings.calendar_file(s, app_settings(), delivery, meeting)
    response = WerkzeugResponse(data, mimetype="text/calendar")
    response.headers.set("Content-Disposition", "attachment", filename="meeting.ics")
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post(f"{DELIVERY}/meeting/outcome")
def record_outcome(campaign_id: int, delivery_id: int) -> Any:
    campaign, delivery = _load(campaign_id, delivery_id)
    if not can_act():
        return refused("Only owners and organisers can record a meeting's outcome.", 403)
    form = OutcomeForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        return refused(" ".join(form.notes.errors) or "Check the notes.", 422)
    try:
        meetings.record_outcome(
            db_session(),
            current_membership(),
            delivery,
            notes=form.notes.data or "",
            publish=bool(form.publish.data),
        )
    except PermissionError as exc:
        return refused(str(exc), 403)
    except meetings.MeetingError as exc:
        return refused(str(exc), 422)
    flash(
        "The meeting's outcome is recorded"
        + (" and published on the campaign page." if form.publish.data else "."),
        "success",
    )
    return redirect(delivery_page(campaign.id, delivery.id))
