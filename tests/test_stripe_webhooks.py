"""The Stripe webhook, end to end with real parts.

The real `stripe` library talks to localstripe (a Stripe-compatible server the tests
start, see the `localstripe` fixture); every subscription and invoice here is a real
localstripe object, and the worker re-reads them from it. Deliveries are signed with
Stripe's real scheme (HMAC-SHA256 over "{t}.{body}" with the endpoint secret). localstripe
can send webhooks itself, but only after a one-second sleep and without retries, so the
tests deliver the events (built around localstripe's own objects) themselves: that lets
them choose the order, the timing and the duplicates.
"""

from __future__ import annotations

import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from tests.conftest import Mailbox, run_worker
from tests.factories import add_member, make_collective, make_user
from tests.stripe_support import (
    PRICES,
    WEBHOOK_SECRET,
    client_for,
    deliver,
    ensure_prices,
    make_event,
    make_past_due,
    pay_invoice,
    retrieve,
    sign,
    stripe_settings,
    subscribe,
)
from web.billing.models import BillingAccount, Plan, account_for, effective_plan
from web.billing.stripe_models import StripeEvent
from web.billing.stripe_services import GRACE_DAYS, PROCESS_JOB
from web.campaigns.models import Campaign
from web.collectives.models import Collective, Role
from web.db import utcnow
from web.http import database
from web.outbox import OutboxMessage, attach_dispatcher
from web.tenancy import set_current_collective, system_scope
from workers.context import use_app
from workers.cron import SCHEDULE
from workers.jobs.billing import expire_grace_periods

SUPPORTER_MONTHLY = PRICES["stripe_price_supporter_monthly"]
SUPPORTER_YEARLY = PRICES["stripe_price_supporter_yearly"]


@pytest.fixture
def stripe_base(app: Flask, localstripe: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The app, for this test, configured for Stripe at localstripe."""
    ensure_prices(localstripe)
    settings = stripe_settings(app.extensions["chorus.settings"], localstripe)
    monkeypatch.setitem(app.extensions, "chorus.settings", settings)
    return localstripe


def _customer_account(
    session: Session, app: Flask, api_base: str, slug: str
) -> tuple[Collective, BillingAccount, str]:
    """A collective (owner + organiser) whose billing account has a localstripe customer."""
    owner = make_user(session, app, email=f"owner@{slug}.example", name="Olu Owner")
    collective = make_collective(session, owner, name=f"Collective {slug}", slug=slug)
    organiser = make_user(session, app, email=f"organiser@{slug}.example")
    add_member(session, collective, organiser, Role.ORGANISER)
    set_current_collective(session, None)
    account = account_for(session, collective.id)
    customer = client_for(api_base).v1.customers.create(params={"email": owner.email})
    account.stripe_customer_id = customer.id
    session.flush()
    return collective, account, customer.id


def _events(session: Session) -> list[StripeEvent]:
    session.expire_all()
    return list(session.scalars(select(StripeEvent).order_by(StripeEvent.received_at)))


def _jobs(session: Session) -> int:
    session.expire_all()
    return (
        session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.func == PROCESS_JOB)
        )
        or 0
    )


def _account(session: Session, account_id: int) -> BillingAccount:
    session.expire_all()
    account = session.get(BillingAccount, account_id)
    assert account is not None
    return account


# --- verification ----------------------------------------------------------------------


def _tamper(kind: str, payload: str) -> dict[str, str]:
    now = int(time.time())
    match kind:
        case "stale":  # signed correctly, but 10 minutes ago (the tolerance is 5)
            return {"Stripe-Signature": sign(payload, timestamp=now - 600)}
        case "altered":  # signed, then the body changed on the way
            return {"Stripe-Signature": sign(payload.replace("invoice", "invoicf", 1))}
        case "wrong-secret":
            return {"Stripe-Signature": sign(payload, secret="whsec_someone_else")}
        case "garbage":
            return {"Stripe-Signature": "garbage"}
        case "no-v1":
            return {"Stripe-Signature": f"t={now},v0=abc"}
        case "bad-timestamp":
            return {"Stripe-Signature": f"t=yesterday,v1={'0' * 64}"}
        case "empty":
            return {"Stripe-Signature": ""}
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind", ["stale", "altered", "wrong-secret", "garbage", "no-v1", "bad-timestamp", "empty"]
)
def test_a_delivery_that_fails_verification_is_refused_and_nothing_is_stored(
    client: FlaskClient, session: Session, stripe_base: str, kind: str
) -> None:
    payload = json.dumps(make_event("invoice.paid", {"id": "in_x", "object": "invoice"}))
    response = client.post(
        "/stripe/webhook",
        data=payload.encode(),
        headers={"Content-Type": "application/json", **_tamper(kind, payload)},
    )
    assert response.status_code == 400
    assert response.get_data(as_text=True) == "Invalid signature.\n"
    assert _events(session) == []
    assert _jobs(session) == 0


def test_a_delivery_without_a_signature_header_is_refused(
    client: FlaskClient, session: Session, stripe_base: str
) -> None:
    payload = json.dumps(make_event("invoice.paid", {"id": "in_x", "object": "invoice"}))
    response = client.post("/stripe/webhook", data=payload, content_type="application/json")
    assert response.status_code == 400
    assert _events(session) == []


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"\xff\xfe not utf-8", "Invalid payload."),
        (b"not json", "Invalid payload."),
        (b"[1, 2]", "Invalid payload."),
        (
            b'{"object": "event", "id": 5, "type": "x", "created": 1, "data": {"object": {}}}',
            "Invalid event: The event has no valid id.",
        ),
        (
            b'{"object": "event", "id": "evt_1", "type": "x", "created": "now",'
            b' "data": {"object": {}}}',
            "Invalid event: The event has no valid creation time.",
        ),
        (
            b'{"object": "event", "id": "evt_<script>", "type": "x", "created": 1, "data": {}}',
            "Invalid event: The event has no valid id.",
        ),
    ],
    ids=["invalid-utf8", "not-json", "json-list", "numeric-id", "text-created", "xss-id"],
)
def test_a_signed_body_that_is_not_a_stripe_event_is_refused(
    client: FlaskClient, session: Session, stripe_base: str, body: bytes, says: str
) -> None:
    """Signed with the real secret (only Stripe has it), but still not storable."""
    timestamp = int(time.time())
    import hashlib
    import hmac

    mac = hmac.new(
        WEBHOOK_SECRET.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    response = client.post(
        "/stripe/webhook",
        data=body,
        headers={"Content-Type": "application/json", "Stripe-Signature": f"t={timestamp},v1={mac}"},
    )
    assert response.status_code == 400
    assert response.get_data(as_text=True) == says + "\n"
    assert _events(session) == []


def test_an_oversized_delivery_is_refused_unread(
    client: FlaskClient, session: Session, stripe_base: str
) -> None:
    event = make_event("invoice.paid", {"id": "in_x", "object": "invoice", "pad": "x" * 600_000})
    response = deliver(client, event)
    assert response.status_code == 413
    assert _events(session) == []


def test_the_webhook_needs_no_csrf_token_and_billing_adds_no_other_exemption(
    app: Flask, client: FlaskClient, session: Session, stripe_base: str
) -> None:
    """The webhook is exempt from CSRF (its signature is its authority); it is billing's
    only exempt route. The app has exactly two others, each with its own authority: the
    RFC 8058 one-click unsubscribe of signers' updates (mail clients POST it without a
    token; the token is in its address) and the inbound-mail webhook (mail providers send
    INBOUND_WEBHOOK_SECRET). Any new exemption fails here."""
    from web.extensions import csrf

    assert deliver(client, make_event("charge.refunded", {"id": "ch_1"})).status_code == 200
    exempt = set(csrf._exempt_views)
    assert exempt == {
        "web.billing.stripe_views.stripe_webhook",
        "web.signatures.update_views.unsubscribe",
        "web.responses.inbound_views.receive_email",
    }
    assert not csrf._exempt_blueprints


def test_stripe_is_never_rate_limited(
    client: FlaskClient, session: Session, stripe_base: str
) -> None:
    answers = {
        deliver(client, make_event("charge.refunded", {"id": "ch_1"})).status_code
        for _ in range(60)
    }
    assert answers == {200}
    assert len(_events(session)) == 60


def test_without_a_webhook_secret_the_endpoint_says_it_is_not_configured(
    app: Flask, client: FlaskClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = app.extensions["chorus.settings"].with_overrides(stripe_webhook_secret="")
    monkeypatch.setitem(app.extensions, "chorus.settings", settings)
    response = deliver(client, make_event("invoice.paid", {"id": "in_x"}))
    assert response.status_code == 503
    assert "not configured" in response.get_data(as_text=True)
    assert _events(session) == []


# --- storing once ------------------------------------------------------------------------


def test_an_event_is_stored_once_and_a_redelivery_is_acknowledged_and_ignored(
    client: FlaskClient, session: Session, stripe_base: str
) -> None:
    event = make_event("charge.refunded", {"id": "ch_1", "note": "nul \u0000 inside"})
    first = deliver(client, event)
    assert (first.status_code, first.get_data(as_text=True)) == (200, "Received.\n")
    again = deliver(client, event)
    assert again.status_code == 200
    assert "Duplicate" in again.get_data(as_text=True)
    [stored] = _events(session)
    assert (stored.id, stored.type, stored.created) == (
        event["id"],
        event["type"],
        event["created"],
    )
    assert stored.payload["data"]["object"]["note"] == "nul \ufffd inside"
    assert stored.processed_at is None
    assert _jobs(session) == 1


def test_an_event_chorus_does_not_act_on_is_processed_without_changes(
    client: FlaskClient, session: Session, app: Flask, stripe_base: str, work: Any
) -> None:
    _, account, customer = _customer_account(session, app, stripe_base, "ignored")
    deliver(client, make_event("customer.updated", {"id": customer, "object": "customer"}))
    work()
    [stored] = _events(session)
    assert stored.processed_at is not None
    assert stored.error == ""
    assert _account(session, account.id).plan == Plan.FREE


def test_an_event_for_a_customer_we_do_not_know_is_recorded_not_retried(
    client: FlaskClient, session: Session, stripe_base: str, work: Any
) -> None:
    deliver(
        client,
        make_event(
            "invoice.payment_failed", {"id": "in_x", "object": "invoice", "customer": "cus_nobody"}
        ),
    )
    work()
    [stored] = _events(session)
    assert stored.processed_at is not None
    assert "no billing account" in stored.error


# --- applying: Stripe's current state, whatever the order --------------------------------


def test_checkout_completed_puts_the_collective_on_the_plan_it_paid_for(
    client: FlaskClient, session: Session, app: Flask, stripe_base: str, work: Any
) -> None:
    _, account, customer = _customer_account(session, app, stripe_base, "paid")
    subscription = subscribe(stripe_base, customer, SUPPORTER_YEARLY)
    completed = {
        "id": "cs_test_1",
        "object": "checkout.session",
        "mode": "subscription",
        "customer": customer,
        "subscription": subscription["id"],
        "client_reference_id": str(account.id),
        "status": "complete",
    }
    assert deliver(client, make_event("checkout.session.completed", completed)).status_code == 200
    assert _account(session, account.id).plan == Plan.FREE  # nothing before the worker
    work()
    paid = _account(session, account.id)
    assert (paid.plan, paid.interval, paid.subscription_status) == ("supporter", "year", "active")
    assert paid.stripe_subscription_id == subscription["id"]
    assert paid.current_period_end is not None
    assert int(paid.current_period_end.timestamp()) == subscription["current_period_end"]
    assert effective_plan(paid, utcnow()) is Plan.SUPPORTER
    [stored] = _events(session)
    assert (stored.billing_account_id, stored.error) == (account.id, "")


def _lifecycle(api_base: str, customer: str, *, cancel: bool) -> list[dict[str, Any]]:
    """A subscription's life in localstripe, with the event Stripe would send at each
    step carrying that step's snapshot: created monthly, switched to yearly, and
    (optionally) cancelled."""
    subscription = subscribe(api_base, customer, SUPPORTER_MONTHLY)
    created = int(time.time()) - 100
    events = [make_event("customer.subscription.created", subscription, created)]
    stripe_client = client_for(api_base)
    yearly = stripe_client.v1.subscriptions.update(
        subscription["id"],
        params={
            "items": [{"id": subscription["items"]["data"][0]["id"], "plan": SUPPORTER_YEARLY}]
        },
    )
    events.append(make_event("customer.subscription.updated", yearly.to_dict(), created + 10))
    events.append(
        make_event(
            "invoice.paid",
            retrieve(api_base, "invoices", str(yearly.latest_invoice)),
            created + 11,
        )
    )
    if cancel:
        cancelled = stripe_client.v1.subscriptions.cancel(subscription["id"])
        events.append(
            make_event("customer.subscription.deleted", cancelled.to_dict(), created + 20)
        )
    return events


@pytest.mark.parametrize("cancel", [False, True], ids=["ends-active-yearly", "ends-cancelled"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_subscriptions_events_in_shuffled_order_end_in_the_latest_state(
    client: FlaskClient,
    session: Session,
    app: Flask,
    stripe_base: str,
    work: Any,
    cancel: bool,
    seed: int,
) -> None:
    _, account, customer = _customer_account(session, app, stripe_base, f"shuffle-{seed}")
    events = _lifecycle(stripe_base, customer, cancel=cancel)
    order = events[:]
    random.Random(seed).shuffle(order)
    if order == events:  # a shuffle that changes nothing proves nothing
        order.reverse()
    for event in order:
        assert deliver(client, event).status_code == 200
        work()  # one at a time, in the delivered order
    final = _account(session, account.id)
    if cancel:
        assert (final.plan, final.subscription_status) == ("free", "canceled")
        assert final.stripe_subscription_id == events[0]["data"]["object"]["id"]
    else:
        assert (final.plan, final.interval, final.subscription_status) == (
            "supporter",
            "year",
            "active",
        )
    assert final.last_event_created == max(e["created"] for e in events)
    assert all(e.processed_at is not None for e in _events(session))


# --- a failed payment: grace, email, expiry ---------------------------------------------


def _owner_emails(mailbox: Mailbox, slug: str) -> list[Any]:
    return mailbox.to(f"owner@{slug}.example")


def test_a_failed_payment_starts_a_grace_period_and_emails_the_owners_once(
    client: FlaskClient,
    session: Session,
    app: Flask,
    stripe_base: str,
    work: Any,
    mailbox: Mailbox,
) -> None:
    _, account, customer = _customer_account(session, app, stripe_base, "failing")
    subscription = subscribe(stripe_base, customer, SUPPORTER_MONTHLY)
    deliver(client, make_event("customer.subscription.created", subscription))
    work()
    invoice = make_past_due(stripe_base, subscription)

    started = utcnow()
    deliver(client, make_event("invoice.payment_failed", invoice))
    work()
    account_now = _account(session, account.id)
    assert account_now.subscription_status == "past_due"
    assert account_now.grace_until is not None
    expected = started + timedelta(days=GRACE_DAYS)
    assert abs((account_now.grace_until - expected).total_seconds()) < 60
    # The paid plan stays in force during the grace period.
    assert effective_plan(account_now, utcnow()) is Plan.SUPPORTER
    [email] = _owner_emails(mailbox, "failing")
    text_body = mailbox.text_of(email)
    assert "Payment failed for Collective failing" in str(email["Subject"])
    assert account_now.grace_until.strftime("%-d %B %Y") in text_body
    assert "https://localhost/app/failing/billing/subscribe" in text_body
    assert "Nothing is deleted" in text_body
    assert mailbox.to("organiser@failing.example") == []  # owners only

    # Stripe retries the charge and it fails again: no second grace period, no second email.
    grace = account_now.grace_until
    deliver(client, make_event("invoice.payment_failed", invoice))
    work()
    assert _account(session, account.id).grace_until == grace
    assert len(_owner_emails(mailbox, "failing")) == 1

    # The owner fixes the card; the invoice is paid: grace over, plan kept.
    paid = pay_invoice(stripe_base, customer, invoice["id"])
    deliver(client, make_event("invoice.paid", paid))
    work()
    recovered = _account(session, account.id)
    assert (recovered.grace_until, recovered.subscription_status) == (None, "active")
    assert recovered.plan == "supporter"


def test_a_late_payment_failure_after_the_invoice_was_paid_changes_nothing(
    client: FlaskClient,
    session: Session,
    app: Flask,
    stripe_base: str,
    work: Any,
    mailbox: Mailbox,
) -> None:
    _, account, customer = _customer_account(session, app, stripe_base, "late")
    subscription = subscribe(stripe_base, customer, SUPPORTER_MONTHLY)
    invoice = make_past_due(stripe_base, subscription)
    failed = make_event("invoice.payment_failed", invoice, int(time.time()) - 60)
    paid = make_event(
        "invoice.paid", pay_invoice(stripe_base, customer, invoice["id"]), int(time.time())
    )
    for event in (paid, failed):  # Stripe sent them the other way round
        deliver(client, event)
        work()
    final = _account(session, account.id)
    assert (final.grace_until, final.subscription_status, final.plan) == (
        None,
        "active",
        "supporter",
    )
    assert _owner_emails(mailbox, "late") == []


def test_when_grace_ends_the_collective_moves_to_free_and_nothing_is_deleted(
    session: Session, app: Flask, stripe_base: str, work: Any, mailbox: Mailbox
) -> None:
    from web.campaigns.services import create_campaign
    from web.collectives.models import Membership

    collective, account, customer = _customer_account(session, app, stripe_base, "lapsing")
    set_current_collective(session, collective.id)
    owner_membership = session.scalar(select(Membership).where(Membership.role == Role.OWNER))
    assert owner_membership is not None
    campaign = create_campaign(
        session, owner_membership, kind="open_letter", title="Still here", slug="still-here"
    )
    set_current_collective(session, None)
    now = utcnow()
    account.plan, account.interval = "supporter", "month"
    account.stripe_subscription_id = "sub_lapsing"
    account.subscription_status = "past_due"
    account.grace_until = now + timedelta(days=GRACE_DAYS)
    session.flush()

    # The day before the grace period ends: nothing moves.
    assert expire_grace_periods(now=account.grace_until - timedelta(days=1)) == 0
    assert _account(session, account.id).plan == "supporter"
    # The day after (time passed as a parameter, not slept).
    after = account.grace_until + timedelta(seconds=1)
    assert expire_grace_periods(now=after) == 1
    work()
    [told] = _owner_emails(mailbox, "lapsing")
    assert told["Subject"] == f"{collective.name} is now on the Free plan"
    text = told.get_body(("plain",)).get_content()
    assert "Nothing has been deleted" in text
    assert f"/app/{collective.slug}/billing/subscribe" in text
    lapsed = _account(session, account.id)
    assert (lapsed.plan, lapsed.interval) == ("free", "")
    assert effective_plan(lapsed, after) is Plan.FREE
    # Nothing deleted: the account, its Stripe ids, the lapse date, the campaign.
    assert (lapsed.stripe_customer_id, lapsed.stripe_subscription_id) == (customer, "sub_lapsing")
    assert lapsed.grace_until is not None
    set_current_collective(session, collective.id)
    assert session.get(Campaign, campaign.id) is not None
    set_current_collective(session, None)
    # Running again does nothing more, and tells nobody again.
    assert expire_grace_periods(now=after + timedelta(days=1)) == 0
    work()
    assert len(_owner_emails(mailbox, "lapsing")) == 1


def test_the_grace_expiry_runs_daily() -> None:
    [entry] = [e for e in SCHEDULE if e.func == "workers.jobs.billing.expire_grace_periods"]
    assert entry.every_seconds == 86400


# --- a hundred deliveries at once ---------------------------------------------------------


@pytest.mark.live
def test_a_hundred_concurrent_deliveries_of_one_event_make_one_state_change(
    live_app_factory: Any, live_db: str, localstripe: str, mailbox: Mailbox
) -> None:
    ensure_prices(localstripe)
    app: Flask = live_app_factory()
    app.extensions["chorus.settings"] = stripe_settings(
        app.extensions["chorus.settings"], localstripe
    )
    db = database(app)
    with app.app_context():
        s = db.new_session()
        attach_dispatcher(s, app.extensions["chorus.dispatcher"])
        _, account, customer = _customer_account(s, app, localstripe, "concurrent")
        s.commit()
        account_id = account.id
        s.close()
    subscription = subscribe(localstripe, customer, SUPPORTER_MONTHLY)
    invoice = make_past_due(localstripe, subscription)
    payload = json.dumps(make_event("invoice.payment_failed", invoice))

    def post(_: int) -> int:
        response = app.test_client().post(
            "/stripe/webhook",
            data=payload.encode(),
            headers={"Content-Type": "application/json", "Stripe-Signature": sign(payload)},
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(post, range(100)))
    assert statuses == [200] * 100

    use_app(app)
    try:
        run_worker(app)
    finally:
        use_app(None)
    with db.engine.connect() as conn:
        conn.execute(text("select set_config('app.all_collectives', 'on', false)"))
        assert conn.scalar(text("select count(*) from stripe_events")) == 1
        assert (
            conn.scalar(
                text("select count(*) from outbox_messages where func = :f"), {"f": PROCESS_JOB}
            )
            == 1
        )
        grace_until, status = conn.execute(
            text("select grace_until, subscription_status from billing_accounts where id = :a"),
            {"a": account_id},
        ).one()
    assert grace_until is not None
    assert status == "past_due"
    assert len(mailbox.to("owner@concurrent.example")) == 1
    db.engine.dispose()


def test_reading_events_needs_no_collective(session: Session) -> None:
    """Events are the platform's (no tenant): readable without a current collective."""
    with system_scope(session):
        assert session.scalar(select(func.count()).select_from(StripeEvent)) == 0
