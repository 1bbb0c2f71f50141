"""Organiser pages for delivering a campaign's letter (under
/app/<collective-slug>/campaigns/<id>/delivery and .../deliveries/<delivery id>).

Every member may look; owners and organisers act (anyone else gets a 403 page). A
delivery of another campaign or collective is a 404. A refused action re-renders its
page with a 422 and the reason; nothing of it is saved (the request rolls back).

The delivery page (`show`) includes panels owned by other parts of issue #6, in this
order, each optional: responses, meeting, chasers, assessment. They see `campaign`,
`collective`, `membership`, `delivery` and `can_edit`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from web.campaigns.models import Campaign, CampaignState
from web.campaigns.services import CampaignError, user_name
from web.collectives.tenant import (
    campaign_or_404,
    can_act,
    current_collective,
    current_membership,
    tenant_blueprint,
)
from web.db import utcnow
from web.delivery import sending
from web.delivery.forms import PlanForm, PostalForm, PostingForm, SendForm
from web.delivery.models import Delivery, DeliveryStatus
from web.delivery.services import (
    DeliveryError,
    deliveries_for,
    get_delivery,
    reply_address,
    timeline,
)
from web.delivery.workdays import uk_date
from web.forms import ConfirmForm
from web.http import db_session, refused
from web.settings import Settings

bp = tenant_blueprint("delivery", __name__)

PREFIX = "/<slug:collective_slug>/campaigns/<id:campaign_id>"

Page = Response | str | tuple[str, int]


def _settings() -> Settings:
    value: Settings = current_app.extensions["chorus.settings"]
    return value


def _today() -> date:
    return uk_date(utcnow())


def _delivery_or_404(campaign: Campaign, delivery_id: int) -> Delivery:
    try:
        return get_delivery(db_session(), campaign, delivery_id)
    except LookupError:
        abort(404)


def _require_editor() -> None:
    if not can_act():
        abort(
            refused_response("Only owners and organisers of this collective can deliver letters.")
        )


def refused_response(message: str) -> Response:
    html, status = refused(message, 403)
    return Response(html, status=status, mimetype="text/html")


@bp.app_template_global("delivery_clocks")
def delivery_clocks(campaign: Campaign) -> list[tuple[Delivery, list[sending.ClockLine]]]:
    """The sent deliveries of `campaign` and their clocks (for the overview page)."""
    today = _today()
    return [
        (d, sending.clock(d, today)) for d in deliveries_for(db_session(), campaign) if d.is_sent
    ]


# --- the campaign's deliveries and the plan --------------------------------------------


def _render_index(campaign: Campaign, form: PlanForm, error: str | None = None) -> str:
    s = db_session()
    recipient = sending.campaign_recipient(s, campaign)
    today = _today()
    deliveries = deliveries_for(s, campaign)
    return render_template(
        "delivery/index.html",
        campaign=campaign,
        form=form,
        error=error,
        recipient=recipient,
        deliveries=[(d, sending.clock(d, today)) for d in reversed(deliveries)],
        can_edit=can_act(),
        can_plan=campaign.state_enum
        in (CampaignState.COLLECTING, CampaignState.CLOSED, *sending.DELIVERABLE),
    )


@bp.get(f"{PREFIX}/delivery")
def index(campaign_id: int) -> str:
    campaign = campaign_or_404(campaign_id)
    form = PlanForm()
    if not form.to_email.data:
        form.to_email.data = sending.suggested_email(
            sending.campaign_recipient(db_session(), campaign)
        )
    return _render_index(campaign, form)


@bp.post(f"{PREFIX}/delivery")
def plan(campaign_id: int) -> Page:
    campaign = campaign_or_404(campaign_id)
    _require_editor()
    form = PlanForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        return _render_index(campaign, form), 422
    s = db_session()
    membership = current_membership()
    try:
        if form.when.data == "now":
            closed = sending.close_for_delivery(s, membership, campaign)
            if closed:
                flash("Closed. No more signatures will be collected.", "success")
            if form.method.data == "post":
                return redirect(url_for("delivery.confirm_post", campaign_id=campaign.id))
            return redirect(
                url_for(
                    "delivery.confirm_email",
                    campaign_id=campaign.id,
                    to=(form.to_email.data or "")[:254],
                )
            )
        if form.method.data == "post":
            raise DeliveryError(
                "Only email deliveries can be scheduled. A letter by post is delivered when "
                "you post it: choose “Now”."
            )
        delivery = sending.schedule_delivery(
            s,
            _settings(),
            membership,
            campaign,
            to_email=form.to_email.data or "",
            key=sending.new_key(),
            on_date=form.scheduled_for.data if form.when.data == "date" else None,
            at_target=form.when.data == "target",
            today=_today(),
        )
    except PermissionError as exc:
        return refused(str(exc), 403)
    except (DeliveryError, CampaignError) as exc:
        return _render_index(campaign, form, error=str(exc)), 422
    flash("Delivery scheduled.", "success")
    return redirect(url_for("delivery.show", campaign_id=campaign.id, delivery_id=delivery.id))


# --- review the PDF and send ------------------------------------------------------------


def _render_confirm(
    campaign: Campaign, form: SendForm | PostalForm, method: str, error: str | None = None
) -> str:
    s = db_session()
    document = sending.final_document(s, _settings(), campaign)
    render = sending.latest_final_render(s, campaign) if document is None else None
    if document is not None:
        form.document_id.data = str(document.id)
    if not form.key.data:
        form.key.data = sending.new_key()
    return render_template(
        "delivery/confirm.html",
        campaign=campaign,
        form=form,
        method=method,
        error=error,
        document=document,
        render=render,
        recipient=sending.campaign_recipient(s, campaign),
    )


def _document_id(raw: str | None) -> int | None:
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise DeliveryError("This form has expired. Please reload the page and try again.")
    return int(raw)


@bp.route(f"{PREFIX}/delivery/email", methods=["GET", "POST"])
def confirm_email(campaign_id: int) -> Page:
    campaign = campaign_or_404(campaign_id)
    _require_editor()
    form = SendForm()
    if request.method == "GET":
        suggested = request.args.get("to", "")[:254]
        form.to_email.data = suggested or sending.suggested_email(
            sending.campaign_recipient(db_session(), campaign)
        )
        return _render_confirm(campaign, form, "email")
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        return _render_confirm(campaign, form, "email"), 422
    try:
        delivery = sending.create_email_delivery(
            db_session(),
            _settings(),
            current_membership(),
            campaign,
            to_email=form.to_email.data or "",
            key=form.key.data or "",
            document_id=_document_id(form.document_id.data),
        )
    except PermissionError as exc:
        return refused(str(exc), 403)
    except DeliveryError as exc:
        return _render_confirm(campaign, form, "email", error=str(exc)), 422
    flash("Sending. The page shows when the mail server has accepted the letter.", "success")
    return redirect(url_for("delivery.show", campaign_id=campaign.id, delivery_id=delivery.id))


@bp.route(f"{PREFIX}/delivery/post", methods=["GET", "POST"])
def confirm_post(campaign_id: int) -> Page:
    campaign = campaign_or_404(campaign_id)
    _require_editor()
    form = PostalForm()
    if request.method == "GET":
        return _render_confirm(campaign, form, "post")
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        return _render_confirm(campaign, form, "post"), 422
    try:
        delivery = sending.prepare_postal_delivery(
            db_session(),
            _settings(),
            current_membership(),
            campaign,
            key=form.key.data or "",
            document_id=_document_id(form.document_id.data),
        )
    except PermissionError as exc:
        return refused(str(exc), 403)
    except DeliveryError as exc:
        return _render_confirm(campaign, form, "post", error=str(exc)), 422
    return redirect(url_for("delivery.postal", campaign_id=campaign.id, delivery_id=delivery.id))


# --- one delivery ----------------------------------------------------------------------


def _render_show(
    campaign: Campaign,
    delivery: Delivery,
    *,
    new_link: str | None = None,
    error: str | None = None,
) -> str:
    s = db_session()
    return render_template(
        "delivery/show.html",
        campaign=campaign,
        collective=current_collective(),
        membership=current_membership(),
        delivery=delivery,
        can_edit=can_act(),
        clock=sending.clock(delivery, _today()),
        events=timeline(s, delivery),
        reply_address=reply_address(_settings(), delivery),
        new_link=new_link,
        error=error,
        link_expired=delivery.response_token_expires_at <= utcnow(),
        user_name=lambda uid: user_name(s, uid),
    )


@bp.get(f"{PREFIX}/deliveries/<id:delivery_id>")
def show(campaign_id: int, delivery_id: int) -> str:
    campaign = campaign_or_404(campaign_id)
    return _render_show(campaign, _delivery_or_404(campaign, delivery_id))


def _delivery_action(campaign_id: int, delivery_id: int, run: Any, done: str) -> Page:
    campaign = campaign_or_404(campaign_id)
    delivery = _delivery_or_404(campaign, delivery_id)
    _require_editor()
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        result = run(campaign, delivery)
    except PermissionError as exc:
        return refused(str(exc), 403)
    except DeliveryError as exc:
        return _render_show(campaign, delivery, error=str(exc)), 422
    if isinstance(result, str):  # a new response link: shown once, on this response
        return _render_show(campaign, delivery, new_link=result)
    flash(done, "success")
    return redirect(url_for("delivery.show", campaign_id=campaign.id, delivery_id=delivery.id))


@bp.post(f"{PREFIX}/deliveries/<id:delivery_id>/cancel")
def cancel(campaign_id: int, delivery_id: int) -> Page:
    return _delivery_action(
        campaign_id,
        delivery_id,
        lambda c, d: sending.cancel_scheduled(db_session(), current_membership(), d),
        "The scheduled delivery was cancelled. Nothing was sent.",
    )


@bp.post(f"{PREFIX}/deliveries/<id:delivery_id>/revoke-link")
def revoke_link(campaign_id: int, delivery_id: int) -> Page:
    return _delivery_action(
        campaign_id,
        delivery_id,
        lambda c, d: sending.revoke_link(db_session(), current_membership(), d),
        "The response link was revoked. Issue a new one when the department needs it.",
    )


@bp.post(f"{PREFIX}/deliveries/<id:delivery_id>/new-link")
def new_link(campaign_id: int, delivery_id: int) -> Page:
    return _delivery_action(
        campaign_id,
        delivery_id,
        lambda c, d: sending.issue_new_link(db_session(), _settings(), current_membership(), d),
        "",
    )


# --- by post ---------------------------------------------------------------------------


def _render_postal(
    campaign: Campaign, delivery: Delivery, form: PostingForm, error: str | None = None
) -> str:
    return render_template(
        "delivery/postal.html",
        campaign=campaign,
        delivery=delivery,
        form=form,
        error=error,
        can_edit=can_act(),
        reply_address=reply_address(_settings(), delivery),
    )


@bp.route(f"{PREFIX}/deliveries/<id:delivery_id>/post", methods=["GET", "POST"])
def postal(campaign_id: int, delivery_id: int) -> Page:
    campaign = campaign_or_404(campaign_id)
    delivery = _delivery_or_404(campaign, delivery_id)
    if delivery.method != "post":
        abort(404)
    form = PostingForm()
    if request.method == "GET":
        if form.posted_on.data is None:
            form.posted_on.data = _today()
        return _render_postal(campaign, delivery, form)
    _require_editor()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        return _render_postal(campaign, delivery, form), 422
    try:
        sending.record_posting(
            db_session(),
            current_membership(),
            campaign,
            delivery,
            posted_on=form.posted_on.data,
            tracking=form.tracking.data or "",
            today=_today(),
        )
    except PermissionError as exc:
        return refused(str(exc), 403)
    except DeliveryError as exc:
        return _render_postal(campaign, delivery, form, error=str(exc)), 422
    flash("Recorded. The working-day clock starts from the posting date.", "success")
    return redirect(url_for("delivery.show", campaign_id=campaign.id, delivery_id=delivery.id))


@bp.get(f"{PREFIX}/deliveries/<id:delivery_id>/print.pdf")
def print_pack(campaign_id: int, delivery_id: int) -> Response:
    campaign = campaign_or_404(campaign_id)
    delivery = _delivery_or_404(campaign, delivery_id)
    if delivery.method != "post" or delivery.status == DeliveryStatus.CANCELLED.value:
        abort(404)
    data = sending.stored_print_pack(db_session(), delivery)
    if data is None:
        html, status = refused(
            "The print-ready PDF is not ready yet. Go back to the delivery's page and try "
            "again in a moment.",
            404,
        )
        return Response(html, status=status, mimetype="text/html")
    response = Response(data, mimetype="application/pdf")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{campaign.slug}-print-{delivery.id}.pdf"'
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response
