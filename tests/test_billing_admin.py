"""Free Supporter requests and the operator's decisions (logged, emailed, shown on the
Plan page), federations, who may do what, hostile input, and reaching only one's own
billing account."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import Mailbox, form_post
from tests.factories import add_member, login, make_collective, make_user
from web.accounts.models import User
from web.billing import plans, services
from web.billing.models import BillingAccount, Plan, PlanDecision, SupporterRequest
from web.collectives.models import Collective, Membership, Role
from web.db import utcnow
from web.tenancy import set_current_collective, system_scope


def _operator(session: Session, app: Flask, email: str = "operator@example.org") -> User:
    operator = make_user(session, app, email=email, name="Platform Operator")
    operator.is_platform_admin = True
    session.flush()
    return operator


def _requests(session: Session, collective_id: int) -> list[SupporterRequest]:
    session.expire_all()
    with system_scope(session):
        return list(
            session.scalars(
                select(SupporterRequest)
                .where(SupporterRequest.collective_id == collective_id)
                .order_by(SupporterRequest.id),
                execution_options={"all_collectives": True},
            )
        )


def _decisions(session: Session) -> list[PlanDecision]:
    session.expire_all()
    return list(session.scalars(select(PlanDecision).order_by(PlanDecision.id)))


def _membership(session: Session, collective: Collective, user_id: int) -> Membership:
    set_current_collective(session, collective.id)
    membership = session.scalar(select(Membership).where(Membership.user_id == user_id))
    assert membership is not None
    return membership


def test_owner_asks_operator_approves_decision_logged_emailed_and_shown(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    app: Flask,
    mailbox: Mailbox,
    work: Any,
) -> None:
    owner = make_user(session, app, email="owner-free@example.org")
    co_owner = make_user(session, app, email="second-owner@example.org")
    organiser = make_user(session, app, email="organiser-free@example.org")
    collective = make_collective(session, owner, name="Renters Without Money")
    add_member(session, collective, co_owner, Role.OWNER)
    add_member(session, collective, organiser, Role.ORGANISER)
    operator = _operator(session, app)
    session.flush()

    login(client, owner)
    plan_page = f"/app/{collective.slug}/plan"
    reason = "We are six renters with no funds.\nWe run three campaigns a year."
    response = form_post(
        client, plan_page, {"reason": reason}, action=f"{plan_page}/free-supporter"
    )
    assert response.status_code == 302
    html = client.get(plan_page).get_data(as_text=True)
    assert "The platform operator has not answered yet." in html
    assert "Ask for Supporter free</button>" not in html
    # A second request while one is open is refused with the reason.
    again = form_post(client, plan_page, {"reason": "Again"}, action=f"{plan_page}/free-supporter")
    assert again.status_code == 422
    assert "already asked" in again.get_data(as_text=True)
    [request] = _requests(session, collective.id)
    assert request.status == "pending"
    assert request.reason == reason

    login(other_client, operator)
    index = other_client.get("/admin/billing").get_data(as_text=True)
    assert "Renters Without Money" in index
    assert "1 waiting" in index
    page = f"/admin/billing/requests/{request.id}"
    shown = other_client.get(page).get_data(as_text=True)
    assert "We are six renters with no funds." in shown
    response = form_post(
        other_client, page, {"decision": "approve", "months": "12", "note": "Welcome aboard"}
    )
    assert response.status_code == 302

    [request] = _requests(session, collective.id)
    assert request.status == "approved"
    assert request.decided_by_id == operator.id
    assert request.decided_at is not None
    assert request.decision_note == "Welcome aboard"
    until = request.complimentary_until
    assert until is not None
    assert 364 <= (until - utcnow()).days <= 366
    account = session.scalar(
        select(BillingAccount).where(BillingAccount.owner_collective_id == collective.id)
    )
    assert account is not None
    assert account.complimentary_until == until
    assert plans.plan_of(session, collective.id) is Plan.SUPPORTER

    actions = [(d.action, d.actor_email, d.collective_id) for d in _decisions(session)]
    assert actions == [
        ("requested", "owner-free@example.org", collective.id),
        ("approved", "operator@example.org", collective.id),
    ]
    log = other_client.get("/admin/billing").get_data(as_text=True)
    assert "Approved free Supporter" in log
    assert "Welcome aboard" in log
    assert "operator@example.org" in log
    assert "No requests are waiting." in log

    work()
    for address in ("owner-free@example.org", "second-owner@example.org"):
        [message] = mailbox.to(address)
        assert "Supporter plan granted free" in message["Subject"]
        body = mailbox.text_of(message)
        assert "Welcome aboard" in body
        assert f"/app/{collective.slug}/plan" in body
    assert mailbox.to("organiser-free@example.org") == []

    html = client.get(plan_page).get_data(as_text=True)
    assert "is on the <strong>Supporter</strong> plan" in html
    assert f"granted it free until {until.strftime('%-d %B %Y')}" in html

    # A decided request cannot be decided again.
    response = form_post(other_client, page, {"decision": "decline", "note": "Changed my mind"})
    assert response.status_code in (400, 422)
    assert _requests(session, collective.id)[0].status == "approved"


def test_operator_declines_with_a_note_and_the_owner_may_ask_again(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    app: Flask,
    mailbox: Mailbox,
    work: Any,
) -> None:
    owner = make_user(session, app, email="owner-declined@example.org")
    collective = make_collective(session, owner, name="Big Charity")
    operator = _operator(session, app, "operator2@example.org")
    set_current_collective(session, collective.id)
    member = _membership(session, collective, owner.id)
    request = services.request_free_supporter(session, member, collective, "Please")
    set_current_collective(session, None)
    session.flush()

    login(other_client, operator)
    page = f"/admin/billing/requests/{request.id}"
    # Declining needs a note, so the owners know why.
    response = form_post(other_client, page, {"decision": "decline", "note": ""})
    assert response.status_code == 422
    assert "Enter a note." in response.get_data(as_text=True)
    assert _requests(session, collective.id)[0].status == "pending"
    bad = form_post(other_client, page, {"decision": "maybe", "note": "x"})
    assert bad.status_code == 422
    assert "Not a valid choice" in bad.get_data(as_text=True)
    response = form_post(
        other_client,
        page,
        {"decision": "decline", "note": "Your annual income is over £1m.\n<b>Sorry</b>"},
    )
    assert response.status_code == 302
    [request] = _requests(session, collective.id)
    assert request.status == "declined"
    assert request.complimentary_until is None
    assert plans.plan_of(session, collective.id) is Plan.FREE
    assert [d.action for d in _decisions(session)] == ["requested", "declined"]

    work()
    [message] = mailbox.to("owner-declined@example.org")
    assert "your request for Supporter free" in message["Subject"]
    assert "over £1m" in mailbox.text_of(message)

    login(client, owner)
    html = client.get(f"/app/{collective.slug}/plan").get_data(as_text=True)
    assert "was declined on" in html
    assert "&lt;b&gt;Sorry&lt;/b&gt;" in html
    assert "<b>Sorry</b>" not in html
    response = form_post(
        client,
        f"/app/{collective.slug}/plan",
        {"reason": "Our income fell"},
        action=f"/app/{collective.slug}/plan/free-supporter",
    )
    assert response.status_code == 302
    assert [r.status for r in _requests(session, collective.id)] == ["declined", "pending"]


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("", "Enter a short reason."),
        ("   \n  ", "Enter a short reason."),
        ("x" * 1001, "1000 characters or fewer"),
        ("x" * 1024 * 1024, "1000 characters or fewer"),
        ("Nul\x00byte", "control characters"),
    ],
)
def test_hostile_reasons_get_a_clear_answer_and_store_nothing(
    client: FlaskClient, session: Session, app: Flask, reason: str, message: str
) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    session.flush()
    login(client, owner)
    page = f"/app/{collective.slug}/plan"
    response = form_post(client, page, {"reason": reason}, action=f"{page}/free-supporter")
    assert 400 <= response.status_code < 500
    if response.status_code == 422:
        html = response.get_data(as_text=True)
        assert message in html, html[:3000]
        assert 'href="#reason"' in html
    assert _requests(session, collective.id) == []


def test_a_script_in_the_reason_is_stored_and_shown_escaped_to_the_operator(
    other_client: FlaskClient, session: Session, app: Flask
) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner, name="<img src=x onerror=alert(1)>")
    member = _membership(session, collective, owner.id)
    services.request_free_supporter(
        session, member, collective, "<script>alert('op')</script> مرحبا"
    )
    set_current_collective(session, None)
    operator = _operator(session, app, "operator3@example.org")
    session.flush()
    login(other_client, operator)
    html = other_client.get("/admin/billing").get_data(as_text=True)
    assert "<script>alert" not in html
    assert "&lt;script&gt;" in html
    assert "<img src=x" not in html
    assert "&lt;img src=x" in html
    assert "مرحبا" in html


def test_only_owners_ask_and_members_read_the_plan_page(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    owner = make_user(session, app)
    viewer = make_user(session, app)
    organiser = make_user(session, app)
    collective = make_collective(session, owner)
    add_member(session, collective, viewer, Role.VIEWER)
    add_member(session, collective, organiser, Role.ORGANISER)
    session.flush()
    for person in (viewer, organiser):
        login(client, person)
        page = f"/app/{collective.slug}/plan"
        html = client.get(page).get_data(as_text=True)
        assert "Only owners of this collective can ask for it." in html
        assert "Ask for Supporter free</button>" not in html
        response = form_post(client, page, {"reason": "Please"}, action=f"{page}/free-supporter")
        assert response.status_code == 403
        assert "Only owners of this collective can do that." in response.get_data(as_text=True)
    with pytest.raises(PermissionError):
        services.request_free_supporter(
            session, _membership(session, collective, viewer.id), collective, "Please"
        )
    assert _requests(session, collective.id) == []


def test_admin_pages_do_not_exist_for_anyone_but_the_operator(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    member = _membership(session, collective, owner.id)
    request = services.request_free_supporter(session, member, collective, "Please")
    set_current_collective(session, None)
    session.flush()
    urls = ["/admin/billing", f"/admin/billing/requests/{request.id}"]
    for url in urls:
        assert client.get(url).status_code == 404
    login(client, owner)
    for url in urls:
        assert client.get(url).status_code == 404
    token_page = client.get(f"/app/{collective.slug}/plan").get_data(as_text=True)
    from tests.conftest import csrf_token

    response = client.post(
        urls[1], data={"csrf_token": csrf_token(token_page), "decision": "approve"}
    )
    assert response.status_code == 404
    with pytest.raises(PermissionError):
        services.list_requests(session, owner)
    assert _requests(session, collective.id)[0].status == "pending"


def test_federation_gives_its_collectives_supporter_features_and_unlinking_restores(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    operator = _operator(session, app, "operator4@example.org")
    owner = make_user(session, app)
    north = make_collective(session, owner, name="North Branch", slug="north-branch")
    south = make_collective(session, owner, name="South Branch", slug="south-branch")
    session.flush()
    login(client, operator)
    response = form_post(
        client,
        "/admin/billing",
        {"name": "Tenants Federation", "months": "6"},
        action="/admin/billing/federations",
    )
    assert response.status_code == 302
    federation = session.scalar(select(BillingAccount).where(BillingAccount.is_federation))
    assert federation is not None
    assert federation.plan == "federation"
    page = f"/admin/billing/federations/{federation.id}"
    assert response.headers["Location"].endswith(page)
    for slug in ("north-branch", "SOUTH-branch "):
        response = form_post(
            client, page, {"collective_slug": slug, "note": "joined"}, action=f"{page}/link"
        )
        assert response.status_code == 302
    missing = form_post(
        client, page, {"collective_slug": "no-such-collective"}, action=f"{page}/link"
    )
    assert missing.status_code == 422
    assert "No collective has that web address" in missing.get_data(as_text=True)
    twice = form_post(client, page, {"collective_slug": "north-branch"}, action=f"{page}/link")
    assert twice.status_code == 422
    assert "already in this federation" in twice.get_data(as_text=True)

    for collective in (north, south):
        assert plans.plan_of(session, collective.id) is Plan.FEDERATION
        assert plans.collective_plan(session, collective.id).has_supporter_features
    html = client.get(page).get_data(as_text=True)
    assert "North Branch" in html
    assert "South Branch" in html

    response = form_post(client, page, {"collective_id": str(south.id)}, action=f"{page}/unlink")
    assert response.status_code == 302
    session.expire_all()
    assert plans.plan_of(session, south.id) is Plan.FREE
    assert plans.plan_of(session, north.id) is Plan.FEDERATION
    own = session.scalar(
        select(BillingAccount).where(BillingAccount.owner_collective_id == south.id)
    )
    assert own is not None
    assert session.get(Collective, south.id).billing_account_id == own.id
    # Unlinking something not in the federation is a 404, and garbage a 400.
    assert (
        form_post(
            client, page, {"collective_id": str(south.id)}, action=f"{page}/unlink"
        ).status_code
        == 404
    )
    assert (
        form_post(client, page, {"collective_id": "1 OR 1=1"}, action=f"{page}/unlink").status_code
        == 400
    )

    # Ending the grant ends the plan for its collectives (nothing deleted).
    response = form_post(client, page, {"months": "0", "note": "ended"}, action=f"{page}/grant")
    assert response.status_code == 302
    session.expire_all()
    assert plans.plan_of(session, north.id) is Plan.FREE
    actions = [d.action for d in _decisions(session)]
    assert actions == [
        "federation_created",
        "linked_to_federation",
        "linked_to_federation",
        "unlinked_from_federation",
        "complimentary_ended",
    ]
    log = client.get(page).get_data(as_text=True)
    assert "Unlinked a collective from a federation" in log
    assert "operator4@example.org" in log

    # The owner sees the federation on the Plan page of a linked collective.
    form_post(client, page, {"months": "3"}, action=f"{page}/grant")
    login(client, owner)
    html = client.get("/app/north-branch/plan").get_data(as_text=True)
    assert "part of the federation <strong>Tenants Federation</strong>" in html
    assert "is on the <strong>Federation</strong> plan" in html


def test_plan_page_shows_only_the_collectives_own_account(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    owner_a = make_user(session, app)
    owner_b = make_user(session, app)
    a = make_collective(session, owner_a, name="Alpha Plan")
    b = make_collective(session, owner_b, name="Bravo Plan")
    from web.billing.models import account_for

    account_b = account_for(session, b.id)
    account_b.plan = "supporter"
    account_b.subscription_status = "active"
    account_b.complimentary_until = utcnow()
    session.flush()
    login(client, owner_a)
    html = client.get(f"/app/{a.slug}/plan").get_data(as_text=True)
    assert "is on the <strong>Free</strong> plan" in html
    assert "Bravo Plan" not in html
    assert client.get(f"/app/{b.slug}/plan").status_code == 404
    assert client.get(f"/app/{b.slug}/plan/branding").status_code == 404
    # Nothing was created for A by reading.
    count = session.scalar(
        select(func.count())
        .select_from(BillingAccount)
        .where(BillingAccount.owner_collective_id == a.id)
    )
    assert count == 0
