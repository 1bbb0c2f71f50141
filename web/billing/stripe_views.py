"""Paying through Stripe: the owner's Subscribe and Manage buttons, the pages Stripe
sends people back to, and the webhook.

Organiser pages (under /app/<collective-slug>/billing/...):

* GET  subscribe        the plan in force and, for owners, the form to subscribe (or the
                        button to manage an existing subscription). Every member may read.
* POST subscribe        owner only, CSRF: a Stripe Checkout session, then 303 to it.
* POST manage           owner only, CSRF: a Stripe Billing Portal session, then 303 to it.
* GET  subscribed       where Checkout returns after paying: says the plan changes when
                        Stripe confirms the payment (this page changes nothing itself).
* GET  not-subscribed   where Checkout returns when the owner turns back.

POST /stripe/webhook (a second blueprint, outside the tenant guard): Stripe's deliveries.
Billing's only route exempt from CSRF (its authority is the signature, checked with
the endpoint secret on the raw body) and exempt from rate limits (Stripe retries on any
refusal, and a limit would only delay our own state). Each event is stored once by id;
a worker applies it.
"""

from __future__ import annotations

import logging

import stripe
from flask import Blueprint, Response, redirect, render_template, request
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy.exc import DBAPIError
from werkzeug.wrappers import Response as WerkzeugResponse
from wtforms import RadioField, SelectChoice
from wtforms.validators import InputRequired

from web.billing import stripe_services as services
from web.billing.gateway import GatewayError, gateway_from_settings
from web.billing.models import Interval, Plan, account_for, effective_plan
from web.collectives.models import Role
from web.collectives.tenant import current_collective, current_membership, tenant_blueprint
from web.db import utcnow
from web.extensions import limiter
from web.forms import ConfirmForm
from web.http import app_settings, db_session, refused

log = logging.getLogger(__name__)

bp = tenant_blueprint("stripe_billing", __name__)
webhook_bp = Blueprint("stripe_webhook", __name__)

PREFIX = "/<slug:collective_slug>/billing"
# Stripe's events are a few kilobytes; the largest (an invoice with many lines) stay far
# below this. Anything bigger is not from Stripe.
WEBHOOK_MAX_BYTES = 512 * 1024

Page = WerkzeugResponse | str | tuple[str, int]

INTERVAL_CHOICES = [
    SelectChoice(Interval.MONTH.value, "Monthly"),
    SelectChoice(Interval.YEAR.value, "Yearly"),
]


class SubscribeForm(FlaskForm):
    plan = RadioField(
        "Plan",
        validators=[InputRequired(message="Choose a plan.")],
    )
    interval = RadioField(
        "How often to pay",
        choices=INTERVAL_CHOICES,
        validators=[InputRequired(message="Choose monthly or yearly payments.")],
    )


def _form(plans: tuple[Plan, ...]) -> SubscribeForm:
    form = SubscribeForm()
    form.plan.choices = [SelectChoice(p.value, p.label) for p in plans]
    if len(plans) == 1 and not form.plan.data:
        form.plan.data = plans[0].value
    return form


def _page(form: SubscribeForm, error: str | None = None, status: int = 200) -> Page:
    collective = current_collective()
    account = account_for(db_session(), collective.id)
    now = utcnow()
    html = render_template(
        "billing/stripe_subscribe.html",
        form=form,
        error=error,
        account=account,
        plan=effective_plan(account, now),
        in_grace=account.grace_until is not None and account.grace_until > now,
        has_subscription=services.has_ongoing_subscription(account),
        is_owner=current_membership().role == Role.OWNER,
        configured=bool(app_settings().stripe_secret_key),
    )
    return html, status


@bp.get(f"{PREFIX}/subscribe")
def subscribe_page() -> Page:
    account = account_for(db_session(), current_collective().id)
    return _page(_form(services.plans_on_offer(account)))


@bp.post(f"{PREFIX}/subscribe")
def subscribe() -> Page:
    s = db_session()
    collective = current_collective()
    membership = current_membership()
    account = account_for(s, collective.id)
    form = _form(services.plans_on_offer(account))
    if membership.role != Role.OWNER:
        # Before the form is read: a refusal that names who may act.
        return refused("Only owners of this collective can subscribe or change its plan.", 403)
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            return refused("This form has expired. Go back, reload the page and try again.", 400)
        return _page(form, status=422)
    try:
        url = services.start_checkout(
            s,
            app_settings(),
            gateway_from_settings(app_settings()),
            membership,
            collective,
            plan=Plan(form.plan.data),
            interval=Interval(form.interval.data),
            email=current_user.email,
        )
    except PermissionError as exc:
        return refused(str(exc), 403)
    except services.BillingError as exc:
        return _page(form, error=str(exc), status=409)
    except GatewayError as exc:
        return _page(form, error=str(exc), status=503)
    return redirect(url, 303)


@bp.post(f"{PREFIX}/manage")
def manage() -> Page:
    membership = current_membership()
    if membership.role != Role.OWNER:
        return refused("Only owners of this collective can manage its billing.", 403)
    if not ConfirmForm().validate_on_submit():
        return refused("This form has expired. Go back, reload the page and try again.", 400)
    try:
        url = services.open_billing_portal(
            db_session(),
            app_settings(),
            gateway_from_settings(app_settings()),
            membership,
            current_collective(),
        )
    except PermissionError as exc:
        return refused(str(exc), 403)
    except services.BillingError as exc:
        return refused(str(exc), 409)
    except GatewayError as exc:
        return refused(str(exc), 503)
    return redirect(url, 303)


@bp.get(f"{PREFIX}/subscribed")
def subscribed() -> Page:
    return render_template("billing/stripe_returned.html", paid=True)


@bp.get(f"{PREFIX}/not-subscribed")
def not_subscribed() -> Page:
    return render_template("billing/stripe_returned.html", paid=False)


# --- the webhook ---------------------------------------------------------------------


def _plain(status: int, message: str) -> Response:
    return Response(message + "\n", status=status, mimetype="text/plain")


@webhook_bp.post("/stripe/webhook")
@limiter.exempt
def stripe_webhook() -> Response:
    """Verify, store once, acknowledge. Processing happens in the worker."""
    secret = app_settings().stripe_webhook_secret
    if not secret:
        return _plain(503, "Stripe webhooks are not configured here (STRIPE_WEBHOOK_SECRET).")
    if (request.content_length or 0) > WEBHOOK_MAX_BYTES:
        return _plain(413, "Payload too large.")
    payload = request.get_data(cache=False)
    if len(payload) > WEBHOOK_MAX_BYTES:
        return _plain(413, "Payload too large.")
    signature = request.headers.get("Stripe-Signature", "")
    try:
        # Verifies the HMAC over "{t}.{body}" and the timestamp's tolerance (5 minutes).
        stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError:
        return _plain(400, "Invalid signature.")
    except Exception:  # undecodable or malformed bodies (the library raises several kinds)
        return _plain(400, "Invalid payload.")
    try:
        event = services.parse_event(payload)
    except services.InvalidEvent as exc:
        return _plain(400, f"Invalid event: {exc}")
    try:
        stored = services.store_event(db_session(), event)
    except DBAPIError:
        db_session().rollback()
        log.exception("could not store stripe event %s", event["id"])
        return _plain(503, "Could not store the event; please retry.")
    if not stored:
        return _plain(200, "Duplicate event: already received.")
    return _plain(200, "Received.")
