"""Subscribing and managing billing: the owner's buttons, Checkout, the Billing Portal.

Real parts: the real `stripe` library, and customers made in localstripe. localstripe
has no Checkout Sessions (POST /v1/checkout/sessions) and no Billing Portal sessions
(POST /v1/billing_portal/sessions): it answers 404 to both. For those two calls only,
the gateway still calls the real library, pointed at `stripe_recorder` (a loopback HTTP
server in tests/stripe_support.py) that records the request our code makes and answers
with the id, object and URL Stripe answers with; it passes every other request on to
localstripe unchanged. What is tested there is the request we send (mode, price,
customer, account reference, return URLs), not Stripe's hosted pages.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.conftest import csrf_token, form_post
from tests.factories import add_member, login, make_collective, make_user
from tests.stripe_support import (
    PRICES,
    StripeRecorder,
    client_for,
    ensure_prices,
    stripe_recorder,
    stripe_settings,
)
from tests.test_cross_collective import snapshot
from web.billing.models import BillingAccount, account_for
from web.collectives.models import Collective, Role
from web.embedded import free_port
from web.tenancy import set_current_collective

PAGE = "/app/{slug}/billing/subscribe"


@pytest.fixture
def recorder(
    app: Flask, localstripe: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StripeRecorder]:
    """The app, for this test, configured for Stripe at the recorder (and localstripe)."""
    ensure_prices(localstripe)
    with stripe_recorder(localstripe) as rec:
        settings = stripe_settings(app.extensions["chorus.settings"], rec.url)
        monkeypatch.setitem(app.extensions, "chorus.settings", settings)
        yield rec


@pytest.fixture
def home(session: Session, app: Flask) -> dict[str, Any]:
    owner = make_user(session, app, email="owner@home.example", name="Olu Owner")
    collective = make_collective(session, owner, name="Home Collective", slug="home")
    organiser = make_user(session, app, email="organiser@home.example")
    viewer = make_user(session, app, email="viewer@home.example")
    add_member(session, collective, organiser, Role.ORGANISER)
    add_member(session, collective, viewer, Role.VIEWER)
    set_current_collective(session, None)
    return {"owner": owner, "organiser": organiser, "viewer": viewer, "collective": collective}


def _account(session: Session, collective: Collective) -> BillingAccount:
    session.expire_all()
    return account_for(session, collective.id)


def test_an_owner_subscribing_goes_to_stripe_checkout_for_the_chosen_price(
    client: FlaskClient,
    session: Session,
    home: dict[str, Any],
    recorder: StripeRecorder,
    localstripe: str,
) -> None:
    login(client, home["owner"])
    page = client.get(PAGE.format(slug="home"))
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Continue to payment" in body
    assert "Home Collective is on the <strong>Free</strong> plan" in body

    response = form_post(
        client, PAGE.format(slug="home"), {"plan": "supporter", "interval": "year"}
    )
    assert response.status_code == 303
    [sent] = recorder.sessions("checkout")
    assert response.headers["Location"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
    account = _account(session, home["collective"])
    assert account.stripe_customer_id is not None
    assert sent.form["mode"] == "subscription"
    assert sent.form["customer"] == account.stripe_customer_id
    assert sent.form["line_items[0][price]"] == PRICES["stripe_price_supporter_yearly"]
    assert sent.form["line_items[0][quantity]"] == "1"
    assert sent.form["client_reference_id"] == str(account.id)
    assert sent.form["metadata[billing_account_id]"] == str(account.id)
    assert sent.form["success_url"] == "https://localhost/app/home/billing/subscribed"
    assert sent.form["cancel_url"] == "https://localhost/app/home/billing/not-subscribed"
    assert sent.headers["Authorization"] == "Bearer sk_test_chorus"
    # The customer is real (in localstripe), named after the account, tagged with its id.
    customer = client_for(localstripe).v1.customers.retrieve(account.stripe_customer_id)
    assert customer.email == "owner@home.example"
    assert customer.metadata["billing_account_id"] == str(account.id)
    # Coming back changes nothing: the plan waits for Stripe's confirmation.
    assert (account.plan, account.subscription_status) == ("free", "")


def test_the_collective_keeps_one_stripe_customer_across_checkouts(
    client: FlaskClient, session: Session, home: dict[str, Any], recorder: StripeRecorder
) -> None:
    login(client, home["owner"])
    for interval in ("month", "year", "month"):
        response = form_post(
            client, PAGE.format(slug="home"), {"plan": "supporter", "interval": interval}
        )
        assert response.status_code == 303
    customers = {r.form["customer"] for r in recorder.sessions("checkout")}
    assert len(recorder.sessions("checkout")) == 3
    assert customers == {_account(session, home["collective"]).stripe_customer_id}
    created = [r for r in recorder.requests if r.path == "/v1/customers"]
    assert created == []  # customers go to localstripe, never to the stand-in


@pytest.mark.parametrize("who", ["organiser", "viewer"])
def test_only_an_owner_can_subscribe_or_manage_billing(
    client: FlaskClient,
    session: Session,
    home: dict[str, Any],
    recorder: StripeRecorder,
    who: str,
) -> None:
    login(client, home[who])
    page = client.get(PAGE.format(slug="home")).get_data(as_text=True)
    assert "Only owners of Home Collective can subscribe" in page
    assert "Continue to payment" not in page
    token = csrf_token(page)
    before = snapshot(session)
    for action, data in (("subscribe", {"plan": "supporter", "interval": "month"}), ("manage", {})):
        response = client.post(f"/app/home/billing/{action}", data={"csrf_token": token, **data})
        assert response.status_code == 403
        assert "Only owners of this collective can" in response.get_data(as_text=True)
    assert recorder.requests == []
    assert snapshot(session) == before


def test_manage_billing_opens_the_stripe_billing_portal(
    client: FlaskClient, session: Session, home: dict[str, Any], recorder: StripeRecorder
) -> None:
    login(client, home["owner"])
    token = csrf_token(client.get(PAGE.format(slug="home")).get_data(as_text=True))
    nothing_yet = client.post("/app/home/billing/manage", data={"csrf_token": token})
    assert nothing_yet.status_code == 409
    assert "subscribe to a plan first" in nothing_yet.get_data(as_text=True)

    form_post(client, PAGE.format(slug="home"), {"plan": "supporter", "interval": "month"})
    account = _account(session, home["collective"])
    account.stripe_subscription_id = "sub_home"
    account.subscription_status = "active"
    account.plan, account.interval = "supporter", "month"
    session.flush()
    page = client.get(PAGE.format(slug="home")).get_data(as_text=True)
    assert "Manage billing" in page
    assert "Continue to payment" not in page  # never a second subscription

    response = form_post(client, PAGE.format(slug="home"), {}, action="/app/home/billing/manage")
    assert response.status_code == 303
    assert response.headers["Location"].startswith("https://billing.stripe.com/p/session/bps_")
    [sent] = recorder.sessions("billing_portal")
    assert sent.form == {
        "customer": account.stripe_customer_id,
        "return_url": "https://localhost/app/home/billing/subscribe",
    }


def test_subscribing_again_while_subscribed_is_refused_with_the_way_forward(
    client: FlaskClient, session: Session, home: dict[str, Any], recorder: StripeRecorder
) -> None:
    account = account_for(session, home["collective"].id)
    account.stripe_customer_id = "cus_home"
    account.stripe_subscription_id = "sub_home"
    account.subscription_status = "past_due"
    session.flush()
    login(client, home["owner"])
    token = csrf_token(client.get(PAGE.format(slug="home")).get_data(as_text=True))
    response = client.post(
        PAGE.format(slug="home"),
        data={"csrf_token": token, "plan": "supporter", "interval": "year"},
    )
    assert response.status_code == 409
    assert "already has a subscription" in response.get_data(as_text=True)
    assert recorder.sessions("checkout") == []


def test_the_return_pages_say_what_happens_next(
    client: FlaskClient, home: dict[str, Any], recorder: StripeRecorder
) -> None:
    login(client, home["owner"])
    paid = client.get("/app/home/billing/subscribed").get_data(as_text=True)
    assert "Your plan changes as soon as Stripe confirms the payment" in paid
    turned_back = client.get("/app/home/billing/not-subscribed").get_data(as_text=True)
    assert "nothing has been charged and your plan has not changed" in turned_back


def test_when_stripe_is_unreachable_the_owner_is_told_and_nothing_is_kept(
    app: Flask,
    client: FlaskClient,
    session: Session,
    home: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = stripe_settings(app.extensions["chorus.settings"], closed)
    monkeypatch.setitem(app.extensions, "chorus.settings", settings)
    login(client, home["owner"])
    token = csrf_token(client.get(PAGE.format(slug="home")).get_data(as_text=True))
    before = snapshot(session)
    response = client.post(
        PAGE.format(slug="home"),
        data={"csrf_token": token, "plan": "supporter", "interval": "month"},
    )
    assert response.status_code == 503
    assert "could not reach Stripe" in response.get_data(as_text=True)
    assert snapshot(session) == before


def test_without_stripe_keys_the_page_says_payments_are_not_set_up(
    client: FlaskClient, session: Session, home: dict[str, Any]
) -> None:
    login(client, home["owner"])
    page = client.get(PAGE.format(slug="home")).get_data(as_text=True)
    assert "Payments are not set up on this installation" in page
    before = snapshot(session)
    response = form_post(
        client, PAGE.format(slug="home"), {"plan": "supporter", "interval": "month"}
    )
    assert response.status_code == 503
    assert "not set up" in response.get_data(as_text=True)
    assert snapshot(session) == before


# --- hostile input -------------------------------------------------------------------------

HOSTILE = [
    ("plan", "federation", 422, "Not a valid choice"),  # a collective's own account
    ("plan", "<script>alert(1)</script>", 422, "Not a valid choice"),
    ("interval", "week", 422, "Not a valid choice"),
    ("interval", "", 422, "Choose monthly or yearly"),
    ("interval", "\u202emonth", 422, "Not a valid choice"),
    ("interval", "mo\x00nth", 400, "null character"),
    ("plan", "x" * (1024 * 1024), 422, "Not a valid choice"),
    ("csrf_token", "<script>alert(1)</script>", 400, "has expired"),
]


@pytest.mark.parametrize(
    ("name", "value", "status", "says"),
    HOSTILE,
    ids=["wrong-plan", "xss", "wrong-interval", "empty", "rtl", "nul", "1mb", "bad-csrf"],
)
def test_hostile_subscribe_input_gets_a_readable_refusal_and_changes_nothing(
    client: FlaskClient,
    session: Session,
    home: dict[str, Any],
    recorder: StripeRecorder,
    name: str,
    value: str,
    status: int,
    says: str,
) -> None:
    login(client, home["owner"])
    token = csrf_token(client.get(PAGE.format(slug="home")).get_data(as_text=True))
    before = snapshot(session)
    data = {"csrf_token": token, "plan": "supporter", "interval": "month", name: value}
    response = client.post(PAGE.format(slug="home"), data=data)
    body = response.get_data(as_text=True)
    assert response.status_code == status, body[-1500:]
    assert says in body
    assert "<script>alert(1)</script>" not in body
    assert recorder.requests == []
    assert snapshot(session) == before


def test_invalid_utf8_in_the_subscribe_form_is_a_readable_400(
    client: FlaskClient, session: Session, home: dict[str, Any], recorder: StripeRecorder
) -> None:
    login(client, home["owner"])
    token = csrf_token(client.get(PAGE.format(slug="home")).get_data(as_text=True))
    before = snapshot(session)
    body = f"csrf_token={token}&plan=supporter&interval=".encode() + b"\xff\xfe"
    response = client.post(
        PAGE.format(slug="home"),
        data=body,
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code in (400, 422)
    assert recorder.requests == []
    assert snapshot(session) == before
