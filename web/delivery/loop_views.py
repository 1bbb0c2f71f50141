"""Chasers and closing the loop, over HTTP (issue #6, §6 and §8).

Organisers (blueprint `loop`, under /app/<collective>/campaigns/<id>/deliveries/<id>):
two panels on the delivery page (delivery/show.html includes
delivery/_chasers_panel.html and delivery/_assessment_panel.html; their data comes from
the template globals below). Owners and organisers pause and resume reminders, assess
each ask, save or publish the summary, and unpublish it; viewers see the panels without
the forms, and a POST from them answers 403. Every POST carries a CSRF token, answers
bad input with 422 and a message, and redirects back to the delivery page.
`.../follow-up` shows the two panels on a page of their own.

Public (blueprint `loop_public`): /chasers explains the published reminder schedule. The
public campaign page includes delivery/_public_response.html, which reads the published
responses through the `published_responses` template global.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from web.campaigns.models import Campaign, CampaignState
from web.collectives.tenant import (
    campaign_or_404,
    can_act,
    current_collective,
    current_membership,
    tenant_blueprint,
)
from web.db import utcnow
from web.delivery import chasers, loop, workdays
from web.delivery.models import Delivery, DeliveryStatus
from web.delivery.sending import ClockLine, clock
from web.delivery.services import deliveries_for, get_delivery
from web.delivery.workdays import uk_date
from web.forms import ConfirmForm
from web.http import db_session, refused
from web.responses import meetings

bp = tenant_blueprint("loop", __name__)
public_bp = Blueprint("loop_public", __name__)

PREFIX = "/<slug:collective_slug>/campaigns/<id:campaign_id>/deliveries/<id:delivery_id>"

Page = Response | str | tuple[str, int]

# Campaign states in which a letter may have gone out (the public page asks only then).
DELIVERED_STATES = frozenset(
    {
        CampaignState.DELIVERED,
        CampaignState.ACKNOWLEDGED,
        CampaignState.RESPONDED,
        CampaignState.MEETING_SCHEDULED,
        CampaignState.CONCLUDED,
    }
)


# --- data for the panels and the public page --------------------------------------------


@bp.app_template_global()
def delivery_chaser_plan(delivery: Delivery) -> chasers.ChaserPlan:
    return chasers.chaser_plan(db_session(), delivery)


@bp.app_template_global()
def delivery_assessment(delivery: Delivery) -> loop.AssessmentPanel:
    return loop.assessment_panel(db_session(), delivery)


@bp.app_template_global()
def public_delivery_clocks(campaign: Campaign) -> list[tuple[Delivery, list[ClockLine]]]:
    """Sent deliveries and their working-day clocks, for the public campaign page. Only
    a campaign past collecting has any (no query for the others: the page is busy)."""
    if campaign.state_enum not in DELIVERED_STATES:
        return []
    today = uk_date(utcnow())
    return [
        (d, clock(d, today))
        for d in deliveries_for(db_session(), campaign)
        if d.status == DeliveryStatus.SENT.value
    ]


@bp.app_template_global()
def published_responses(campaign: Campaign) -> list[loop.PublicResponse]:
    if campaign.state_enum not in DELIVERED_STATES:
        return []  # nothing delivered yet: no query on the busy public page
    return loop.public_responses(db_session(), campaign)


@bp.app_template_global()
def published_meetings(campaign: Campaign) -> list[meetings.PublishedOutcome]:
    # Read here, not in web/delivery/loop.py: meetings imports the responses services,
    # which import loop (for the signers' news).
    if campaign.state_enum not in DELIVERED_STATES:
        return []
    return meetings.published_meeting_outcomes(db_session(), campaign)


# --- organiser actions ------------------------------------------------------------------


def _load(campaign_id: int, delivery_id: int) -> tuple[Campaign, Delivery]:
    campaign = campaign_or_404(campaign_id)
    try:
        delivery = get_delivery(db_session(), campaign, delivery_id)
    except LookupError:
        abort(404)
    return campaign, delivery


def _checked(message: str) -> Page | None:
    """The refusal for a POST without a valid token or from a member who only reads."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400, "The form had expired. Go back, reload the page and try again.")
    if not can_act():
        return refused(message, 403)
    return None


def _back(campaign: Campaign, delivery: Delivery, anchor: str) -> Response:
    """To the delivery page (its panels), or to the follow-up page before it exists."""
    if "delivery.show" in current_app.view_functions:
        target = url_for("delivery.show", campaign_id=campaign.id, delivery_id=delivery.id)
    else:
        target = url_for("loop.follow_up", campaign_id=campaign.id, delivery_id=delivery.id)
    return redirect(f"{target}#{anchor}", 303)


@bp.get(f"{PREFIX}/follow-up")
def follow_up(campaign_id: int, delivery_id: int) -> Page:
    campaign, delivery = _load(campaign_id, delivery_id)
    return render_template(
        "delivery/follow_up.html",
        campaign=campaign,
        collective=current_collective(),
        membership=current_membership(),
        delivery=delivery,
        can_edit=can_act(),
    )


@bp.post(f"{PREFIX}/chasers/pause")
def pause(campaign_id: int, delivery_id: int) -> Page:
    campaign, delivery = _load(campaign_id, delivery_id)
    refusal = _checked("Only owners or organisers of this collective can pause reminders.")
    if refusal is not None:
        return refusal
    if chasers.pause_chasers(db_session(), current_membership(), delivery):
        flash("Reminders are paused. None will be sent until you resume them.", "success")
    return _back(campaign, delivery, "chasers")


@bp.post(f"{PREFIX}/chasers/resume")
def resume(campaign_id: int, delivery_id: int) -> Page:
    campaign, delivery = _load(campaign_id, delivery_id)
    refusal = _checked("Only owners or organisers of this collective can resume reminders.")
    if refusal is not None:
        return refusal
    if chasers.resume_chasers(db_session(), current_membership(), delivery):
        flash("Reminders resumed: they follow the published schedule again.", "success")
    return _back(campaign, delivery, "chasers")


def _choices() -> dict[int, tuple[str, str]]:
    """The posted assessments: `ask-<n>` (the choice) and `note-<n>` (the note)."""
    choices: dict[int, tuple[str, str]] = {}
    for key, value in request.form.items():
        if not key.startswith("ask-"):
            continue
        raw = key.removeprefix("ask-")
        if not raw.isdigit() or len(raw) > 4:
            abort(422, "The form named an ask that is not in the letter. Reload the page.")
        if value:
            choices[int(raw)] = (value, request.form.get(f"note-{raw}", ""))
    return choices


@bp.post(f"{PREFIX}/assessment")
def assess(campaign_id: int, delivery_id: int) -> Page:
    campaign, delivery = _load(campaign_id, delivery_id)
    refusal = _checked("Only owners or organisers of this collective can assess the reply.")
    if refusal is not None:
        return refusal
    try:
        loop.assess_asks(db_session(), current_membership(), delivery, _choices())
    except loop.LoopError as exc:
        return refused(str(exc), 422)
    flash("Your assessment is saved.", "success")
    return _back(campaign, delivery, "assessment")


@bp.post(f"{PREFIX}/response")
def publish(campaign_id: int, delivery_id: int) -> Page:
    campaign, delivery = _load(campaign_id, delivery_id)
    refusal = _checked("Only owners or organisers of this collective can publish the response.")
    if refusal is not None:
        return refusal
    action = request.form.get("action", "publish")
    if action not in ("publish", "save"):
        return refused("Choose whether to save the summary or publish it.", 422)
    try:
        loop.save_summary(
            db_session(),
            current_membership(),
            delivery,
            request.form.get("summary", ""),
            publish=action == "publish",
        )
    except loop.LoopError as exc:
        return refused(str(exc), 422)
    flash(
        "The response is published on the campaign page."
        if action == "publish"
        else "The summary is saved. It is not public until you publish it.",
        "success",
    )
    return _back(campaign, delivery, "assessment")


@bp.post(f"{PREFIX}/response/unpublish")
def unpublish(campaign_id: int, delivery_id: int) -> Page:
    campaign, delivery = _load(campaign_id, delivery_id)
    refusal = _checked("Only owners or organisers of this collective can unpublish the response.")
    if refusal is not None:
        return refusal
    if loop.unpublish_response(db_session(), current_membership(), delivery):
        flash("The response is no longer shown on the campaign page.", "success")
    return _back(campaign, delivery, "assessment")


# --- the published schedule ---------------------------------------------------------------


@public_bp.get("/chasers")
def schedule() -> str:
    return render_template(
        "delivery/chasers_schedule.html",
        schedule=workdays.schedule_description(workdays.DEFAULT_REPLY_TARGET),
        nations=list(workdays.NATION_NAMES.values()),
        max_chasers=workdays.MAX_CHASERS,
        target=workdays.DEFAULT_REPLY_TARGET,
    )
