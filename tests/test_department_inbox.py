"""The department inbox (issue #6 §9): an official proves an address on one of a
directory department's official domains, then reads every letter sent to that
department from every collective, and answers from there. The only view across
collectives: these tests check that it shows exactly one department's letters, to
exactly the people who proved they work there, and nothing else to anyone."""

from __future__ import annotations

import hashlib
import io
import itertools
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from tests.conftest import Mailbox, csrf_token, form_post
from tests.factories import login, make_collective, make_user
from web.accounts.models import User, UserToken
from web.campaigns import services as campaigns
from web.campaigns.models import Campaign, CampaignState
from web.collectives.models import Membership
from web.db import utcnow
from web.delivery.models import Delivery, DeliveryEvent
from web.delivery.services import issue_secrets, placeholder_secrets, timeline
from web.mail import make_message_id
from web.pdf.models import Document
from web.recipients.models import Recipient
from web.responses.models import DepartmentAccount, Response, ResponseAttachment
from web.tenancy import set_current_collective, system_scope

_seq = itertools.count(1)
PDF = b"%PDF-1.7\n% the department's answer\n%%EOF\n"


# --- the world: departments, collectives, campaigns, deliveries --------------------------


def make_department(
    session: Session, name: str, domains: list[str], *, key: str = "", **fields: Any
) -> Recipient:
    """A directory entry (collective_id NULL), as the operator's import leaves it."""
    with system_scope(session):
        department = Recipient(
            key=key or f"dept-{secrets.token_hex(4)}",
            name=name,
            email_domains=domains,
            **{"kind": "ministerial_department", **fields},
        )
        session.add(department)
        session.flush()
    return department


@dataclass(frozen=True)
class World:
    """Plain ids: ORM rows of one tenant cannot be reloaded while another is current."""

    collective_id: int
    campaign_id: int
    owner: User


@dataclass(frozen=True)
class Dept:
    id: int
    key: str
    email_domains: list[str]


@dataclass(frozen=True)
class Ref:
    id: int
    collective_id: int


def dept(recipient: Recipient) -> Dept:
    return Dept(recipient.id, recipient.key, list(recipient.email_domains))


def ref(delivery: Delivery) -> Ref:
    return Ref(delivery.id, delivery.collective_id)


def make_campaign(
    session: Session,
    app: Flask,
    *,
    title: str,
    recipient: Recipient,
    collective_name: str | None = None,
    publish: bool = True,
) -> World:
    """A collective with one campaign addressed to `recipient` (published unless told)."""
    n = next(_seq)
    owner = make_user(session, app)
    collective = make_collective(
        session, owner, name=collective_name, slug=f"dept-test-{n}-{secrets.token_hex(2)}"
    )
    set_current_collective(session, collective.id)
    member = session.scalars(select(Membership).where(Membership.user_id == owner.id)).one()
    slug = f"letter-{n}"
    campaign = campaigns.create_campaign(
        session, member, kind="open_letter", title=title, slug=slug
    )
    campaigns.update_settings(
        session,
        member,
        campaign,
        title=title,
        slug=slug,
        recipient_id=recipient.id,
        addressee_name="",
        addressee_role="Secretary of State",
        audience_style="minister",
        signature_target=None,
        closes_on=None,
    )
    campaigns.save_letter(
        session,
        member,
        campaign,
        subject=f"About {title}",
        summary="A summary.",
        body_markdown="We ask for a plan.",
        asks=["Publish a plan"],
        evidence_links=[],
    )
    if publish:
        campaigns.publish(session, member, collective, campaign)
        campaign.state = CampaignState.DELIVERED.value
    session.flush()
    world = World(collective.id, campaign.id, owner)
    set_current_collective(session, None)
    return world


def deliver(
    session: Session,
    app: Flask,
    world: World,
    recipient: Recipient,
    delivered_on: date,
    *,
    acknowledged_at: datetime | None = None,
    replied_at: datetime | None = None,
    status: str = "sent",
    reply_target_days: int = 20,
) -> Delivery:
    """A delivery row as the send job leaves it (built directly, as design.md says)."""
    set_current_collective(session, world.collective_id)
    delivery = Delivery(
        collective_id=world.collective_id,
        campaign_id=world.campaign_id,
        recipient_id=recipient.id,
        recipient_name=recipient.name,
        method="email",
        status=status,
        idempotency_key=secrets.token_hex(16),
        to_email=f"correspondence@{(recipient.email_domains or ['example.org'])[0]}",
        message_id=make_message_id(),
        sent_at=utcnow() if status == "sent" else None,
        delivered_on=delivered_on if status == "sent" else None,
        nation=recipient.nation,
        ack_target_days=recipient.ack_target_days,
        reply_target_days=reply_target_days,
        acknowledged_at=acknowledged_at,
        replied_at=replied_at,
    )
    placeholder_secrets(delivery)
    session.add(delivery)
    session.flush()
    issue_secrets(app.extensions["chorus.settings"], delivery)
    session.flush()
    set_current_collective(session, None)
    return delivery


def grant(
    session: Session, user: User, department: Recipient | Dept, *, verified: bool = True
) -> DepartmentAccount:
    """A department account as a confirmed (or pending) claim leaves it."""
    account = DepartmentAccount(
        user_id=user.id,
        recipient_id=department.id,
        email=f"{user.email.split('@')[0]}@{department.email_domains[0]}",
        verified_at=utcnow() if verified else None,
    )
    session.add(account)
    session.flush()
    return account


def inbox_path(department: Recipient | Dept) -> str:
    return f"/department/{department.key}/"


def letter_path(department: Recipient | Dept, delivery: Delivery | Ref) -> str:
    return f"/department/{department.key}/letters/{delivery.id}"


def body(response: Any) -> str:
    return str(response.get_data(as_text=True))


def reload(session: Session, delivery: Delivery | Ref) -> Delivery:
    collective_id, delivery_id = delivery.collective_id, delivery.id
    session.expire_all()
    set_current_collective(session, collective_id)
    row = session.get(Delivery, delivery_id)
    assert row is not None
    return row


@dataclass
class TwoDepartments:
    dwp: Dept
    hmrc: Dept
    a: World
    b: World
    dwp_from_a: Ref
    dwp_from_b: Ref
    hmrc_from_a: Ref


@pytest.fixture
def two(session: Session, app: Flask) -> TwoDepartments:
    """Two collectives each deliver to DWP; one also delivers to HMRC."""
    dwp = make_department(session, "Department for Work and Pensions", ["dwp.gov.uk"])
    hmrc = make_department(session, "HM Revenue and Customs", ["hmrc.gov.uk"])
    a = make_campaign(
        session, app, title="Fair PIP assessments", recipient=dwp, collective_name="Claimants North"
    )
    b = make_campaign(
        session, app, title="Carers allowance now", recipient=dwp, collective_name="Carers South"
    )
    dwp_from_a = ref(deliver(session, app, a, dwp, date(2026, 11, 2)))
    dwp_from_b = ref(deliver(session, app, b, dwp, date(2026, 11, 9)))
    hmrc_from_a = ref(deliver(session, app, a, hmrc, date(2026, 11, 3)))
    return TwoDepartments(dept(dwp), dept(hmrc), a, b, dwp_from_a, dwp_from_b, hmrc_from_a)


# --- who sees what -------------------------------------------------------------------------


def test_a_dwp_official_sees_both_collectives_dwp_letters_and_not_the_hmrc_one(
    session: Session, app: Flask, client: FlaskClient, two: TwoDepartments
) -> None:
    official = make_user(session, app, name="Dana Official")
    grant(session, official, two.dwp)
    login(client, official)
    page = client.get(inbox_path(two.dwp))
    assert page.status_code == 200
    html = body(page)
    assert "Letters to Department for Work and Pensions" in html
    assert "Fair PIP assessments" in html
    assert "Claimants North" in html
    assert "Carers allowance now" in html
    assert "Carers South" in html
    # Newest first: B's letter (9 November) before A's (2 November).
    assert html.index("Carers allowance now") < html.index("Fair PIP assessments")
    assert "2 letters in all" in html
    assert "Awaiting acknowledgement" in html
    assert "Overdue by" in html or "Day " in html
    # The HMRC letter is not there, and its id does not open as a DWP letter.
    assert f"/letters/{two.hmrc_from_a.id}" not in html
    assert client.get(letter_path(two.dwp, two.hmrc_from_a)).status_code == 404
    # Both DWP letters open, read inside their own collective.
    for delivery, title in ((two.dwp_from_a, "Fair PIP assessments"), (two.dwp_from_b, "Carers")):
        opened = client.get(letter_path(two.dwp, delivery))
        assert opened.status_code == 200
        assert title in body(opened)
        assert "We ask for a plan." in body(opened)


def test_the_inbox_clock_reads_in_working_days(
    session: Session, app: Flask, client: FlaskClient
) -> None:
    dwp = make_department(session, "Department for Work and Pensions", ["dwp.gov.uk"])
    world = make_campaign(session, app, title="An old letter", recipient=dwp)
    deliver(session, app, world, dwp, date(2020, 1, 6))  # long overdue
    official = make_user(session, app)
    grant(session, official, dwp)
    login(client, official)
    html = body(client.get(inbox_path(dwp)))
    assert "Overdue by" in html
    assert "working days" in html


def test_an_hmrc_official_cannot_open_a_dwp_letter_by_id(
    session: Session, app: Flask, client: FlaskClient, two: TwoDepartments
) -> None:
    official = make_user(session, app)
    grant(session, official, two.hmrc)
    login(client, official)
    html = body(client.get(inbox_path(two.hmrc)))
    assert "Fair PIP assessments" in html  # A's letter to HMRC
    assert "Carers allowance now" not in html
    for delivery in (two.dwp_from_a, two.dwp_from_b):
        assert client.get(letter_path(two.hmrc, delivery)).status_code == 404
        assert client.get(letter_path(two.dwp, delivery)).status_code == 404
        assert client.get(letter_path(two.dwp, delivery) + "/letter.pdf").status_code == 404
        token = csrf_token(html)
        acknowledged = client.post(
            letter_path(two.hmrc, delivery) + "/acknowledge", data={"csrf_token": token}
        )
        assert acknowledged.status_code == 404
        assert reload(session, delivery).acknowledged_at is None
    assert client.get(inbox_path(two.dwp)).status_code == 404


def test_an_unverified_claim_sees_nothing(
    session: Session, app: Flask, client: FlaskClient, two: TwoDepartments
) -> None:
    official = make_user(session, app)
    grant(session, official, two.dwp, verified=False)
    login(client, official)
    assert client.get(inbox_path(two.dwp)).status_code == 404
    assert client.get(letter_path(two.dwp, two.dwp_from_a)).status_code == 404
    index = body(client.get("/department/"))
    assert "waiting for you to confirm" in index


def test_without_a_claim_every_inbox_address_is_404(
    session: Session, app: Flask, client: FlaskClient, two: TwoDepartments
) -> None:
    # The organiser of collective A, signed in, has no department account.
    login(client, two.a.owner)
    for path in (
        inbox_path(two.dwp),
        letter_path(two.dwp, two.dwp_from_a),
        letter_path(two.dwp, two.dwp_from_b),
        letter_path(two.dwp, two.dwp_from_b) + "/letter.pdf",
        "/department/no-such-department/",
    ):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "Carers" not in body(answer)
    # Not signed in at all: the log-in page.
    client.post("/logout", data={"csrf_token": csrf_token(body(client.get("/department/")))})
    assert client.get(inbox_path(two.dwp)).status_code == 302


def test_the_organiser_of_a_never_sees_bs_delivery(
    session: Session, app: Flask, client: FlaskClient, two: TwoDepartments
) -> None:
    set_current_collective(session, two.a.collective_id)
    assert session.get(Delivery, two.dwp_from_b.id) is None
    seen = session.scalars(select(Delivery.id)).all()
    assert set(seen) == {two.dwp_from_a.id, two.hmrc_from_a.id}
    # Row security too: raw SQL in A's tenant sees only A's rows.
    raw = session.execute(text("SELECT id FROM deliveries")).scalars().all()
    assert set(raw) == {two.dwp_from_a.id, two.hmrc_from_a.id}
    set_current_collective(session, None)
    # Even holding a DWP account, an organiser reaches B's letter only as an official
    # (read-only apart from responses) and their own collective's pages stay their own.
    login(client, two.a.owner)
    assert client.get(letter_path(two.dwp, two.dwp_from_b)).status_code == 404


def test_a_letter_to_a_collectives_own_recipient_is_in_no_inbox(
    session: Session, app: Flask, client: FlaskClient
) -> None:
    dwp = make_department(session, "Department for Work and Pensions", ["dwp.gov.uk"])
    world = make_campaign(session, app, title="Local letter", recipient=dwp)
    set_current_collective(session, world.collective_id)
    own = Recipient(
        collective_id=world.collective_id,
        key="own-council",
        kind="council",
        name="Our Council",
        email_domains=["dwp.gov.uk"],
    )
    session.add(own)
    session.flush()
    set_current_collective(session, None)
    delivery = deliver(session, app, world, own, date(2026, 11, 2))
    for sql in (
        "SELECT count(*) FROM chorus_department_inbox(:r, 50, 0)",
        "SELECT count(*) FROM chorus_department_record(:r)",
    ):
        assert session.execute(text(sql), {"r": own.id}).scalar_one() == 0
    assert (
        session.execute(
            text("SELECT count(*) FROM chorus_department_letter(:r, :d)"),
            {"r": own.id, "d": delivery.id},
        ).scalar_one()
        == 0
    )


def test_unsent_deliveries_are_not_in_the_inbox(
    session: Session, app: Flask, client: FlaskClient
) -> None:
    dwp = make_department(session, "Department for Work and Pensions", ["dwp.gov.uk"])
    world = make_campaign(session, app, title="Scheduled letter", recipient=dwp)
    pending = deliver(session, app, world, dwp, date(2026, 11, 2), status="pending")
    official = make_user(session, app)
    grant(session, official, dwp)
    login(client, official)
    assert "Scheduled letter" not in body(client.get(inbox_path(dwp)))
    assert client.get(letter_path(dwp, pending)).status_code == 404


def test_the_inbox_shows_fifty_letters_a_page(
    session: Session, app: Flask, client: FlaskClient
) -> None:
    dwp = make_department(session, "Department for Work and Pensions", ["dwp.gov.uk"])
    world = make_campaign(session, app, title="Many letters", recipient=dwp)
    start = date(2026, 1, 1)
    for day in range(51):
        deliver(session, app, world, dwp, start + timedelta(days=day))
    official = make_user(session, app)
    grant(session, official, dwp)
    login(client, official)
    first = body(client.get(inbox_path(dwp)))
    assert first.count("<tr>") == 51  # the header row and 50 letters
    assert "51 letters in all" in first
    assert "Page 1 of 2" in first
    assert ">20 February 2026<" in first
    assert ">1 January 2026<" not in first
    second = body(client.get(inbox_path(dwp) + "?page=2"))
    assert second.count("<tr>") == 2
    assert ">1 January 2026<" in second
    assert client.get(inbox_path(dwp) + "?page=3").status_code == 404


# --- claiming ------------------------------------------------------------------------------


def test_claiming_a_department_by_email_opens_its_inbox(
    session: Session, app: Flask, client: FlaskClient, mailbox: Mailbox, work: Any, two: Any
) -> None:
    official = make_user(session, app, email="dana@example.org", name="Dana Official")
    login(client, official)
    form = body(client.get("/department/claim"))
    assert "Department for Work and Pensions" in form
    answer = form_post(
        client,
        "/department/claim",
        {"department": str(two.dwp.id), "email": "Dana.Official@Digital.DWP.gov.uk"},
    )
    assert answer.status_code == 302
    assert "Check your email" in body(client.get(answer.headers["Location"]))
    session.expire_all()
    account = session.scalars(
        select(DepartmentAccount).where(DepartmentAccount.user_id == official.id)
    ).one()
    assert account.verified_at is None
    assert account.email == "dana.official@digital.dwp.gov.uk"
    assert client.get(inbox_path(two.dwp)).status_code == 404  # not yet

    work("email")
    [message] = mailbox.to("dana.official@digital.dwp.gov.uk")
    link = mailbox.link_in(message, "/department/confirm/")
    path = link.split("://", 1)[1].split("/", 1)[1]
    confirm_page = client.get("/" + path)
    assert confirm_page.status_code == 200
    assert "Confirm your department" in body(confirm_page)
    confirmed = client.post("/" + path, data={"csrf_token": csrf_token(body(confirm_page))})
    assert confirmed.status_code == 302
    assert confirmed.headers["Location"].endswith(inbox_path(two.dwp))
    session.expire_all()
    assert session.get(DepartmentAccount, account.id).verified_at is not None  # type: ignore[union-attr]
    assert "Carers allowance now" in body(client.get(inbox_path(two.dwp)))
    # Single use.
    assert client.get("/" + path).status_code == 410


def test_a_user_may_hold_several_departments(
    session: Session, app: Flask, client: FlaskClient, two: TwoDepartments
) -> None:
    official = make_user(session, app)
    grant(session, official, two.dwp)
    grant(session, official, two.hmrc)
    login(client, official)
    index = body(client.get("/department/"))
    assert "Department for Work and Pensions" in index
    assert "HM Revenue and Customs" in index
    assert client.get(inbox_path(two.dwp)).status_code == 200
    assert client.get(inbox_path(two.hmrc)).status_code == 200
    # Claiming one already held changes nothing and sends nothing.
    again = form_post(
        client,
        "/department/claim",
        {"department": str(two.dwp.id), "email": "someone@dwp.gov.uk"},
    )
    assert again.status_code == 302
    assert again.headers["Location"].endswith(inbox_path(two.dwp))


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("dana@gmail.com", "A personal address (gmail.com) cannot show that you work for"),
        ("dana@hmrc.gov.uk", "hmrc.gov.uk is not an official email domain of"),
        ("dana@evildwp.gov.uk", "evildwp.gov.uk is not an official email domain of"),
        ("dana@dwp.gov.uk.example.org", "is not an official email domain of"),
        ("not an address", "Enter an email address in the correct format"),
    ],
)
def test_a_claim_on_a_non_official_domain_is_refused(
    session: Session,
    app: Flask,
    client: FlaskClient,
    mailbox: Mailbox,
    work: Any,
    two: TwoDepartments,
    email: str,
    message: str,
) -> None:
    official = make_user(session, app)
    login(client, official)
    answer = form_post(client, "/department/claim", {"department": str(two.dwp.id), "email": email})
    assert answer.status_code == 422
    assert message in body(answer)
    assert "@dwp.gov.uk" in body(answer) or "correct format" in body(answer)
    session.expire_all()
    assert (
        session.scalar(select(DepartmentAccount).where(DepartmentAccount.user_id == official.id))
        is None
    )
    work("email")
    assert mailbox.messages == []


def test_a_department_without_official_domains_cannot_be_claimed(
    session: Session, app: Flask, client: FlaskClient
) -> None:
    nodomain = make_department(session, "Office of the Leader of the House", [])
    official = make_user(session, app)
    login(client, official)
    assert "Office of the Leader of the House" not in body(client.get("/department/claim"))
    answer = form_post(
        client, "/department/claim", {"department": str(nodomain.id), "email": "a@b.gov.uk"}
    )
    assert answer.status_code == 422
    assert "has no official email domain" in body(answer)


def _claim(client: FlaskClient, department: Recipient, email: str) -> None:
    answer = form_post(
        client, "/department/claim", {"department": str(department.id), "email": email}
    )
    assert answer.status_code == 302, body(answer)


def _tokens(session: Session, user: User) -> list[UserToken]:
    session.expire_all()
    return list(
        session.scalars(
            select(UserToken)
            .where(UserToken.user_id == user.id, UserToken.purpose.startswith("department:"))
            .order_by(UserToken.id)
        )
    )


def test_a_wrong_expired_replaced_or_someone_elses_confirmation_link_is_refused(
    session: Session,
    app: Flask,
    client: FlaskClient,
    other_client: FlaskClient,
    mailbox: Mailbox,
    work: Any,
    two: TwoDepartments,
) -> None:
    official = make_user(session, app)
    login(client, official)
    _claim(client, two.dwp, "first@dwp.gov.uk")
    _claim(client, two.dwp, "second@dwp.gov.uk")
    work("email")
    first = mailbox.link_in(mailbox.to("first@dwp.gov.uk")[0], "/department/confirm/")
    second = mailbox.link_in(mailbox.to("second@dwp.gov.uk")[0], "/department/confirm/")
    first_path = "/" + first.split("://", 1)[1].split("/", 1)[1]
    second_path = "/" + second.split("://", 1)[1].split("/", 1)[1]

    # The first link was replaced by the second claim.
    replaced = client.get(first_path)
    assert replaced.status_code == 410
    assert "replaced by a newer one" in body(replaced)
    # A tampered secret, a malformed token, an unknown id.
    row_id, secret = second_path.rsplit("/", 1)[1].split(".", 1)
    flipped = ("A" if secret[0] != "A" else "B") + secret[1:]
    for bad in (
        f"/department/confirm/{row_id}.{flipped}",
        "/department/confirm/not-a-token",
        f"/department/confirm/{int(row_id) + 1000}.{secret}",
        "/department/confirm/" + "9" * 30,
    ):
        answer = client.get(bad)
        assert answer.status_code == 404, bad
        assert "This confirmation link is not valid" in body(answer)
    # Someone else, signed in, cannot use it.
    intruder = make_user(session, app)
    login(other_client, intruder)
    stolen = other_client.get(second_path)
    assert stolen.status_code == 403
    assert "another Chorus account" in body(stolen)
    # Expired.
    newest = _tokens(session, official)[-1]
    session.execute(
        update(UserToken)
        .where(UserToken.id == newest.id)
        .values(expires_at=utcnow() - timedelta(minutes=1))
    )
    session.flush()
    expired = client.get(second_path)
    assert expired.status_code == 410
    assert "has expired" in body(expired)
    session.expire_all()
    account = session.scalars(
        select(DepartmentAccount).where(DepartmentAccount.user_id == official.id)
    ).one()
    assert account.verified_at is None
    assert client.get(inbox_path(two.dwp)).status_code == 404


def test_claims_are_rate_limited_per_user(
    session: Session, app: Flask, client: FlaskClient, two: TwoDepartments
) -> None:
    official = make_user(session, app)
    login(client, official)
    for n in range(5):
        _claim(client, two.dwp, f"try{n}@dwp.gov.uk")
    sixth = form_post(
        client, "/department/claim", {"department": str(two.dwp.id), "email": "x@dwp.gov.uk"}
    )
    assert sixth.status_code == 429
    assert "Retry-After" in sixth.headers


# --- answering from the inbox ----------------------------------------------------------------


def test_acknowledging_from_the_inbox_reaches_the_organisers_timeline(
    session: Session, app: Flask, client: FlaskClient, two: TwoDepartments
) -> None:
    official = make_user(session, app, name="Dana Official")
    account = grant(session, official, two.dwp)
    login(client, official)
    page = letter_path(two.dwp, two.dwp_from_b)
    answer = form_post(client, page, {}, action=page + "/acknowledge")
    assert answer.status_code == 302
    shown = body(client.get(page))
    assert "marked as acknowledged" in shown
    assert "Acknowledged on" in shown

    delivery = reload(session, two.dwp_from_b)
    assert delivery.acknowledged_at is not None
    assert delivery.replied_at is None
    response = session.scalars(select(Response).where(Response.delivery_id == delivery.id)).one()
    assert (response.kind, response.channel) == ("acknowledgement", "inbox")
    assert response.department_account_id == account.id
    assert response.responder_name == "Dana Official"
    # The organiser's side (collective B): the timeline and the campaign's state.
    events = timeline(session, delivery)
    assert [e.kind for e in events] == ["acknowledged"]
    assert "Dana Official" in events[0].summary
    assert "department inbox" in events[0].summary
    campaign = session.get(Campaign, delivery.campaign_id)
    assert campaign is not None
    assert campaign.state == "acknowledged"
    # Collective A's organiser sees none of it.
    set_current_collective(session, two.a.collective_id)
    assert session.scalars(select(DeliveryEvent)).all() == []
    # A second click records nothing more.
    again = form_post(client, page, {}, action=page + "/acknowledge")
    assert again.status_code == 302
    session.expire_all()
    set_current_collective(session, delivery.collective_id)
    assert len(session.scalars(select(Response)).all()) == 1


def test_answers_from_the_inbox_are_emailed_to_the_organisers(
    session: Session, app: Flask, client: FlaskClient, two: TwoDepartments
) -> None:
    """The inbox tells the organisers as the response page and a reply by email do."""
    from web.outbox import OutboxMessage

    official = make_user(session, app, name="Dana Official")
    grant(session, official, two.dwp)
    login(client, official)
    page = letter_path(two.dwp, two.dwp_from_b)
    assert form_post(client, page, {}, action=page + "/acknowledge").status_code == 302
    reply = form_post(
        client,
        page,
        {
            "body": "We will review the guidance this spring.",
            "responder_name": "Dana Official",
            "responder_role": "Correspondence Officer",
            "kind": "substantive",
        },
        action=page + "/reply",
    )
    assert reply.status_code == 302, body(reply)[-1500:]
    with system_scope(session):
        emails = list(
            session.scalars(
                select(OutboxMessage)
                .where(
                    OutboxMessage.kind == "email",
                    OutboxMessage.collective_id == two.b.collective_id,
                )
                .order_by(OutboxMessage.id)
            )
        )
    assert [e.payload["to"] for e in emails] == [two.b.owner.email, two.b.owner.email]
    first, second = (e.payload["text"] for e in emails)
    assert "from the department inbox: receipt acknowledged, from Dana Official" in first
    assert "from the department inbox: a full reply, from Dana Official" in second
    assert "We will review the guidance this spring." in second
    # Collective A, which also wrote to DWP, hears nothing of B's letter.
    assert not any(e.payload["to"] == two.a.owner.email for e in emails)


def test_replying_with_an_attachment_from_the_inbox(
    session: Session, app: Flask, client: FlaskClient, two: TwoDepartments
) -> None:
    official = make_user(session, app, name="Dana Official")
    grant(session, official, two.dwp)
    login(client, official)
    page = letter_path(two.dwp, two.dwp_from_a)
    form = body(client.get(page))
    assert 'value="Dana Official"' in form  # the name is prefilled
    answer = client.post(
        page + "/reply",
        data={
            "csrf_token": csrf_token(form),
            "kind": "substantive",
            "body": "Thank you for your letter.\nWe will publish a plan in March.",
            "responder_name": "Dana Official",
            "responder_role": "Head of Correspondence",
            "attachment": (io.BytesIO(PDF), "our-answer.pdf"),
        },
        content_type="multipart/form-data",
    )
    assert answer.status_code == 302, body(answer)
    shown = body(client.get(page))
    assert "We will publish a plan in March." in shown
    assert "Head of Correspondence" in shown
    assert "our-answer.pdf" in shown

    delivery = reload(session, two.dwp_from_a)
    assert delivery.replied_at is not None
    assert delivery.acknowledged_at is not None
    response = session.scalars(select(Response).where(Response.delivery_id == delivery.id)).one()
    assert response.kind == "substantive"
    assert response.channel == "inbox"
    attachment = session.scalars(select(ResponseAttachment)).one()
    assert attachment.content_type == "application/pdf"
    assert attachment.size == len(PDF)
    download = client.get(f"{page}/attachments/{attachment.id}")
    assert download.status_code == 200
    assert download.data == PDF
    assert "attachment" in download.headers["Content-Disposition"]
    assert [e.kind for e in timeline(session, delivery)] == ["reply_received"]
    # The attachment is not reachable through another letter's address.
    other = letter_path(two.dwp, two.dwp_from_b)
    assert client.get(f"{other}/attachments/{attachment.id}").status_code == 404


def test_a_holding_reply_acknowledges_but_does_not_answer(
    session: Session, app: Flask, client: FlaskClient, two: TwoDepartments
) -> None:
    official = make_user(session, app)
    grant(session, official, two.dwp)
    login(client, official)
    page = letter_path(two.dwp, two.dwp_from_a)
    answer = form_post(
        client,
        page,
        {"kind": "holding", "body": "We will reply fully soon.", "responder_name": "Dana"},
        action=page + "/reply",
    )
    assert answer.status_code == 302
    delivery = reload(session, two.dwp_from_a)
    assert delivery.acknowledged_at is not None
    assert delivery.replied_at is None


# --- hostile input --------------------------------------------------------------------------


def test_hostile_input_on_the_claim_form(
    session: Session, app: Flask, client: FlaskClient, two: TwoDepartments
) -> None:
    official = make_user(session, app)
    login(client, official)
    token = csrf_token(body(client.get("/department/claim")))
    cases: list[tuple[dict[str, str], int, str]] = [
        ({"department": str(two.dwp.id), "email": "a\x00@dwp.gov.uk"}, 400, "null character"),
        ({"department": "abc", "email": "a@dwp.gov.uk"}, 422, "Choose your department"),
        ({"department": "-1", "email": "a@dwp.gov.uk"}, 422, "Choose your department"),
        ({"department": "9" * 40, "email": "a@dwp.gov.uk"}, 422, "Choose your department"),
        ({"department": "", "email": "a@dwp.gov.uk"}, 422, "Enter your department"),
        ({"department": str(two.dwp.id), "email": ""}, 422, "Enter your work email"),
        ({"department": str(two.dwp.id), "email": "a" * 300 + "@dwp.gov.uk"}, 422, "254"),
        ({"department": str(two.dwp.id), "email": "a@dwp.gov.uk\r\nBcc: x@y"}, 422, "format"),
        ({"department": str(two.dwp.id), "email": "<script>@dwp.gov.uk"}, 422, "format"),
    ]
    for data, status, message in cases:
        answer = client.post("/department/claim", data={"csrf_token": token, **data})
        assert answer.status_code == status, (data, body(answer))
        assert message in body(answer), (data, body(answer))
        assert "<script>@" not in body(answer)
    # A collective's own recipient cannot be claimed as a department.
    set_current_collective(session, two.a.collective_id)
    own = Recipient(
        collective_id=two.a.collective_id,
        key="ours",
        kind="council",
        name="Ours",
        email_domains=["dwp.gov.uk"],
    )
    session.add(own)
    session.flush()
    set_current_collective(session, None)
    answer = client.post(
        "/department/claim",
        data={"csrf_token": token, "department": str(own.id), "email": "a@dwp.gov.uk"},
    )
    assert answer.status_code == 422
    assert "Choose your department" in body(answer)
    # Without a CSRF token.
    answer = client.post(
        "/department/claim", data={"department": str(two.dwp.id), "email": "a@dwp.gov.uk"}
    )
    assert answer.status_code == 400


def test_hostile_input_on_the_reply_and_acknowledge_forms(
    session: Session, app: Flask, client: FlaskClient, two: TwoDepartments
) -> None:
    official = make_user(session, app)
    grant(session, official, two.dwp)
    login(client, official)
    page = letter_path(two.dwp, two.dwp_from_a)
    token = csrf_token(body(client.get(page)))
    good = {"kind": "substantive", "body": "Our reply.", "responder_name": "Dana"}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**good, "body": ""}, 422, "Enter your reply"),
        ({**good, "body": "x" * 50_001}, 422, "50000 characters or fewer"),
        ({**good, "responder_name": ""}, 422, "Enter your name"),
        ({**good, "responder_name": "Dana\r\nBcc: x"}, 422, "line breaks"),
        ({**good, "responder_name": "x" * 201}, 422, "200 characters or fewer"),
        ({**good, "responder_role": "\u202eevil"}, 422, "text-direction"),
        ({**good, "kind": "bounce"}, 422, "Choose whether this is your reply"),
        ({**good, "body": "nul\x00byte"}, 400, "null character"),
    ]
    for data, status, message in cases:
        answer = client.post(page + "/reply", data={"csrf_token": token, **data})
        assert answer.status_code == status, data
        assert message in body(answer), (data, body(answer)[:3000])
    # A file that is not a PDF, DOCX or ODT, whatever its name says.
    answer = client.post(
        page + "/reply",
        data={
            "csrf_token": token,
            **good,
            "attachment": (io.BytesIO(b"MZ\x90\x00 not a pdf"), "reply.pdf"),
        },
        content_type="multipart/form-data",
    )
    assert answer.status_code == 422
    assert "error-message" in body(answer)
    # Script in the reply is shown as text, never run.
    answer = client.post(
        page + "/reply",
        data={"csrf_token": token, **good, "body": "<script>alert(1)</script>"},
    )
    assert answer.status_code == 302
    shown = body(client.get(page))
    assert "<script>alert(1)</script>" not in shown
    assert "&lt;script&gt;" in shown
    # No CSRF token.
    assert client.post(page + "/reply", data=good).status_code == 400
    assert client.post(page + "/acknowledge", data={}).status_code == 400
    # Addresses that are not letters.
    for bad in (
        f"/department/{two.dwp.key}/letters/0",
        f"/department/{two.dwp.key}/letters/99999999999999999999",
        f"/department/{two.dwp.key}/letters/-1",
        f"/department/{'k' * 81}/",
        f"/department/{two.dwp.key}/?page=-1",
        f"/department/{two.dwp.key}/?page=abc",
        f"/department/{two.dwp.key}/?page=99999999999",
    ):
        answer = client.get(bad)
        assert answer.status_code in (200, 404), bad
    delivery = reload(session, two.dwp_from_a)
    set_current_collective(session, delivery.collective_id)
    assert len(session.scalars(select(Response)).all()) == 1  # only the escaped one


def test_the_letter_as_sent_downloads_as_a_pdf_from_the_inbox(
    session: Session, app: Flask, client: FlaskClient, two: TwoDepartments
) -> None:
    letter = b"%PDF-1.7\n% the letter as sent\n%%EOF\n"
    set_current_collective(session, two.b.collective_id)
    document = Document(
        collective_id=two.b.collective_id,
        campaign_id=two.b.campaign_id,
        kind="final",
        sha256=hashlib.sha256(letter).hexdigest(),
        size=len(letter),
        pages=1,
        inputs_hash="0" * 64,
        data=letter,
    )
    session.add(document)
    session.flush()
    delivery = session.get(Delivery, two.dwp_from_b.id)
    assert delivery is not None
    delivery.document_id = document.id
    session.flush()
    set_current_collective(session, None)
    official = make_user(session, app)
    grant(session, official, two.dwp)
    login(client, official)
    page = letter_path(two.dwp, two.dwp_from_b)
    assert "Download the letter as sent (PDF)" in body(client.get(page))
    download = client.get(page + "/letter.pdf")
    assert download.status_code == 200
    assert download.data == letter
    assert download.mimetype == "application/pdf"
    # Collective A's letter has no PDF yet: no link, and its address is a 404.
    other = letter_path(two.dwp, two.dwp_from_a)
    assert "Download the letter as sent" not in body(client.get(other))
    assert client.get(other + "/letter.pdf").status_code == 404


# --- meeting requests answered from the inbox -------------------------------------------


@dataclass(frozen=True)
class MeetingLetter:
    """A meeting request (tests/test_response_page.make_world) to a DWP with an official
    domain, so an official can claim it; `letter` is the delivery."""

    world: Any  # tests.test_response_page.World
    dwp: Dept
    letter: Ref


def meeting_letter(session: Session, app: Flask) -> MeetingLetter:
    from tests.test_response_page import make_world

    world = make_world(session, app, kind="meeting_request")
    set_current_collective(session, world.collective_id)
    delivery = session.get(Delivery, world.delivery_id)
    assert delivery is not None
    recipient_id = delivery.recipient_id
    set_current_collective(session, None)
    session.execute(
        update(Recipient)
        .where(Recipient.id == recipient_id, Recipient.collective_id.is_(None))
        .values(email_domains=["dwp.gov.uk"])
        .execution_options(all_collectives=True)  # one directory row
    )
    key = session.scalar(
        select(Recipient.key)
        .where(Recipient.id == recipient_id)
        .execution_options(all_collectives=True)
    )
    assert key is not None
    department = Dept(recipient_id, key, ["dwp.gov.uk"])
    return MeetingLetter(world, department, Ref(world.delivery_id, world.collective_id))


def meeting_rows(session: Session, m: MeetingLetter) -> tuple[Any, list[Response]]:
    from web.responses.models import Meeting

    set_current_collective(session, m.world.collective_id)
    session.expire_all()
    meeting = session.scalar(select(Meeting).where(Meeting.delivery_id == m.letter.id))
    rows = list(
        session.scalars(
            select(Response).where(Response.delivery_id == m.letter.id).order_by(Response.id)
        )
    )
    set_current_collective(session, None)
    return meeting, rows


def input_value(html: str, field_id: str) -> str:
    tag = re.search(rf'<input[^>]*\bid="{re.escape(field_id)}"[^>]*>', html)
    assert tag, f"no input {field_id}"
    value = re.search(r'\bvalue="([^"]*)"', tag.group(0))
    return value.group(1) if value else ""


@pytest.fixture
def meeting_request(session: Session, app: Flask) -> MeetingLetter:
    return meeting_letter(session, app)


def test_accepting_a_meeting_from_the_inbox_sends_the_invitation(
    session: Session,
    app: Flask,
    client: FlaskClient,
    meeting_request: MeetingLetter,
    mailbox: Mailbox,
    work: Any,
) -> None:
    from tests.test_meetings import SOON, calendar_in, event_of, uk

    m = meeting_request
    official = make_user(session, app, name="Sam Official")
    account = grant(session, official, m.dwp)
    login(client, official)
    page = letter_path(m.dwp, m.letter)
    shown = body(client.get(page))
    assert "Answer the meeting request" in shown
    assert 'id="meeting-status">Not answered yet' in shown
    # The official's name and verified work address are filled in on every meeting form.
    for prefix in ("accept", "alt", "decline"):
        assert input_value(shown, f"{prefix}-name") == "Sam Official"
        assert input_value(shown, f"{prefix}-email") == account.email

    answer = form_post(
        client,
        page,
        {"accept-slot": "0", "accept-name": "Sam Official", "accept-email": account.email},
        action=page + "/meeting/accept",
    )
    assert answer.status_code == 302, body(answer)
    assert answer.headers["Location"].endswith("#meeting")
    shown = body(client.get(page))
    assert "the meeting is agreed for" in shown
    assert 'id="letter-status">Meeting agreed' in shown
    assert 'id="meeting-status">Meeting agreed: ' in shown
    assert "/meeting.ics" in shown

    meeting, rows = meeting_rows(session, m)
    assert meeting is not None
    assert meeting.status == "accepted"
    assert (meeting.starts_at, meeting.ends_at) == (uk(SOON, 10), uk(SOON, 11))
    assert (meeting.official_name, meeting.official_email) == ("Sam Official", account.email)
    uid = meeting.ics_uid
    [response] = rows
    assert (response.kind, response.channel) == ("substantive", "inbox")
    assert response.department_account_id == account.id
    delivery = reload(session, m.letter)
    assert delivery.replied_at is not None
    campaign = session.get(Campaign, delivery.campaign_id)
    assert campaign is not None
    assert campaign.state == "meeting_scheduled"
    assert "meeting_accepted" in [e.kind for e in timeline(session, delivery)]
    set_current_collective(session, None)

    # The inbox list says so too.
    row = body(client.get(inbox_path(m.dwp))).split(f"/letters/{m.letter.id}")[1]
    assert "Meeting agreed" in row.split("</tr>")[0]
    # The official can download the calendar entry from the inbox.
    ics = client.get(page + "/meeting.ics")
    assert ics.status_code == 200
    assert ics.mimetype == "text/calendar"
    assert uid in ics.get_data(as_text=True)

    work()
    for address in (account.email, m.world.owner_email):
        [msg] = mailbox.to(address)
        assert "Meeting agreed" in str(msg["Subject"])
        event = event_of(calendar_in(msg))
        assert str(event["UID"]) == uid
        assert event.decoded("DTSTART") == uk(SOON, 10)
        attendees = {str(a).lower() for a in event.get("ATTENDEE")}
        assert f"mailto:{account.email}" in attendees
        assert f"mailto:{m.world.owner_email}" in attendees


def test_other_times_from_the_inbox_are_validated_then_recorded(
    session: Session,
    app: Flask,
    client: FlaskClient,
    meeting_request: MeetingLetter,
    mailbox: Mailbox,
    work: Any,
) -> None:
    from tests.test_meetings import uk
    from tests.test_response_page import uk_today

    m = meeting_request
    official = make_user(session, app, name="Sam Official")
    account = grant(session, official, m.dwp)
    login(client, official)
    page = letter_path(m.dwp, m.letter)
    action = page + "/meeting/alternatives"
    later = uk_today() + timedelta(days=30)
    good = {"alt-name": "Sam Official", "alt-note": "Mornings are best."}
    one = {
        "alt-time1-day": later.isoformat(),
        "alt-time1-start": "10:00",
        "alt-time1-end": "11:00",
    }
    refused: list[tuple[dict[str, str], str]] = [
        ({}, "Propose at least one other time"),
        ({"alt-time1-day": later.isoformat(), "alt-time1-start": "10:00"}, "Give a date"),
        ({**one, "alt-time1-day": "2020-02-02"}, "already passed"),
        ({**one, "alt-time1-start": "12:00"}, "end after it starts"),
        ({**one, "alt-time1-day": "not a date"}, "Not a valid date"),
        ({**one, "alt-name": ""}, "Enter your name"),
        ({**one, "alt-email": "sam@"}, "correct format"),
        ({**one, "alt-note": "x" * 2_001}, "2000 characters or fewer"),
    ]
    for fields, message in refused:
        answer = form_post(client, page, {**good, **fields}, action=action)
        assert answer.status_code == 422, fields
        shown = body(answer)
        assert message in shown, (fields, message)
        assert "<title>Error: " in shown
        assert "alternatives-error-title" in shown  # the summary above that form
    assert meeting_rows(session, m) == (None, [])

    answer = form_post(client, page, {**good, **one}, action=action)
    assert answer.status_code == 302, body(answer)
    meeting, rows = meeting_rows(session, m)
    assert meeting is not None
    assert meeting.status == "alternatives"
    assert [a["starts_at"] for a in meeting.alternatives] == [uk(later, 10).isoformat()]
    [response] = rows
    assert (response.kind, response.channel) == ("holding", "inbox")
    assert response.department_account_id == account.id
    delivery = reload(session, m.letter)
    assert delivery.acknowledged_at is not None
    assert delivery.replied_at is None
    set_current_collective(session, None)
    shown = body(client.get(page))
    assert "Other times were proposed" in shown
    assert 'id="meeting-status">Other meeting times proposed' in shown
    row = body(client.get(inbox_path(m.dwp))).split(f"/letters/{m.letter.id}")[1]
    assert "Other meeting times proposed" in row.split("</tr>")[0]
    work()
    [note] = mailbox.to(m.world.owner_email)
    assert "other meeting times proposed" in str(note["Subject"])
    assert "Mornings are best." in Mailbox.text_of(note)


def test_declining_from_the_inbox_needs_a_reason(
    session: Session, app: Flask, client: FlaskClient, meeting_request: MeetingLetter
) -> None:
    m = meeting_request
    official = make_user(session, app, name="Sam Official")
    account = grant(session, official, m.dwp)
    login(client, official)
    page = letter_path(m.dwp, m.letter)
    action = page + "/meeting/decline"
    good = {"decline-name": "Sam Official", "decline-reason": "Not during purdah."}
    refused: list[tuple[dict[str, str], str]] = [
        ({"decline-reason": ""}, "Enter a reason"),
        ({"decline-reason": "x" * 5_001}, "5000 characters or fewer"),
        ({"decline-name": ""}, "Enter your name"),
        ({"decline-email": "nobody"}, "correct format"),
    ]
    for fields, message in refused:
        answer = form_post(client, page, {**good, **fields}, action=action)
        assert answer.status_code == 422, fields
        assert message in body(answer), (fields, message)
        assert "decline-error-title" in body(answer)
    assert meeting_rows(session, m) == (None, [])

    answer = form_post(client, page, good, action=action)
    assert answer.status_code == 302, body(answer)
    meeting, rows = meeting_rows(session, m)
    assert meeting is not None
    assert (meeting.status, meeting.reason) == ("declined", "Not during purdah.")
    [response] = rows
    assert (response.kind, response.channel) == ("substantive", "inbox")
    assert response.department_account_id == account.id
    shown = body(client.get(page))
    assert "Not during purdah." in shown
    assert 'id="meeting-status">Meeting declined' in shown
    assert client.get(page + "/meeting.ics").status_code == 404  # no agreed time


def test_another_departments_official_cannot_answer_a_meeting(
    session: Session, app: Flask, client: FlaskClient, meeting_request: MeetingLetter
) -> None:
    from tests.test_response_page import uk_today

    m = meeting_request
    hmrc = make_department(session, "HM Revenue and Customs", ["hmrc.gov.uk"])
    official = make_user(session, app)
    grant(session, official, hmrc)
    unverified = make_user(session, app)
    grant(session, unverified, m.dwp, verified=False)
    forms = {
        "accept": {"accept-slot": "0", "accept-name": "X", "accept-email": "x@hmrc.gov.uk"},
        "decline": {"decline-name": "X", "decline-reason": "No."},
        "alternatives": {
            "alt-name": "X",
            "alt-time1-day": (uk_today() + timedelta(days=30)).isoformat(),
            "alt-time1-start": "10:00",
            "alt-time1-end": "11:00",
        },
    }
    # The collective's own owner is signed in too, but holds no department account.
    owner = session.scalar(select(User).where(User.email == m.world.owner_email))
    assert owner is not None
    for user in (official, unverified, owner):
        login(client, user)
        token = csrf_token(body(client.get("/department/")))
        for department in (m.dwp, dept(hmrc)):
            path = letter_path(department, m.letter)
            assert client.get(path).status_code == 404
            assert client.get(path + "/meeting.ics").status_code == 404
            for name, data in forms.items():
                answer = client.post(f"{path}/meeting/{name}", data={"csrf_token": token, **data})
                assert answer.status_code == 404, (user.email, name)
                assert "Fair PIP" not in body(answer)
        client.post("/logout", data={"csrf_token": token})
    assert meeting_rows(session, m) == (None, [])
    assert reload(session, m.letter).replied_at is None


def test_an_open_letter_in_the_inbox_has_no_meeting_forms(
    session: Session, app: Flask, client: FlaskClient, two: TwoDepartments
) -> None:
    official = make_user(session, app)
    grant(session, official, two.dwp)
    login(client, official)
    page = letter_path(two.dwp, two.dwp_from_a)
    shown = body(client.get(page))
    assert "Answer the meeting request" not in shown
    assert "meeting-status" not in shown
    assert "/meeting/" not in shown
    token = csrf_token(shown)
    for name, data in (
        ("accept", {"accept-slot": "0", "accept-name": "S", "accept-email": "s@dwp.gov.uk"}),
        ("alternatives", {"alt-name": "S"}),
        ("decline", {"decline-name": "S", "decline-reason": "R"}),
    ):
        answer = client.post(f"{page}/meeting/{name}", data={"csrf_token": token, **data})
        assert answer.status_code == 404, name
    assert client.get(page + "/meeting.ics").status_code == 404
    delivery = reload(session, two.dwp_from_a)
    assert session.scalars(select(Response).where(Response.delivery_id == delivery.id)).all() == []


def test_hostile_input_on_the_inbox_meeting_forms(
    session: Session, app: Flask, client: FlaskClient, meeting_request: MeetingLetter
) -> None:
    m = meeting_request
    official = make_user(session, app, name="Sam Official")
    account = grant(session, official, m.dwp)
    login(client, official)
    page = letter_path(m.dwp, m.letter)
    token = csrf_token(body(client.get(page)))
    accept = {"accept-slot": "0", "accept-name": "Sam", "accept-email": account.email}
    cases: list[tuple[str, dict[str, str], int, str]] = [
        ("accept", {**accept, "accept-slot": ""}, 422, "Choose one of the proposed times"),
        ("accept", {**accept, "accept-slot": "99"}, 422, "Choose one of the proposed times"),
        ("accept", {**accept, "accept-slot": "2"}, 422, "Choose one of the proposed times"),
        ("accept", {**accept, "accept-slot": "-1e9"}, 422, "Choose one of the proposed times"),
        ("accept", {**accept, "accept-slot": "1"}, 422, "is a window, not an exact time"),
        ("accept", {**accept, "accept-email": ""}, 422, "Enter your email address"),
        ("accept", {**accept, "accept-email": "a@b.gov.uk\r\nBcc: x@y"}, 422, "format"),
        ("accept", {**accept, "accept-name": "Sam\r\nBcc: x"}, 422, "line breaks"),
        ("accept", {**accept, "accept-role": "\u202eevil"}, 422, "text-direction"),
        ("accept", {**accept, "accept-location": "javascript:alert(1)"}, 422, "https://"),
        ("accept", {**accept, "accept-location": "<script>x</script>"}, 422, "without &lt;"),
        ("accept", {**accept, "accept-start": "25:00"}, 422, "Not a valid time"),
        ("accept", {**accept, "accept-name": "nul\x00"}, 400, "null character"),
        ("decline", {"decline-name": "S", "decline-reason": "a\x00b"}, 400, "null character"),
        ("alternatives", {"alt-name": "S", "alt-time1-day": "9" * 500}, 422, "Not a valid date"),
    ]
    for name, data, status, message in cases:
        answer = client.post(f"{page}/meeting/{name}", data={"csrf_token": token, **data})
        assert answer.status_code == status, (name, data, body(answer)[:2000])
        assert message in body(answer), (name, data)
        assert "<script>x</script>" not in body(answer)
    # Without a CSRF token, nothing is even looked at.
    for name, data in (("accept", accept), ("decline", {"decline-reason": "R"})):
        assert client.post(f"{page}/meeting/{name}", data=data).status_code == 400
    assert meeting_rows(session, m) == (None, [])
    # A reason with markup is kept as text and shown escaped.
    answer = client.post(
        f"{page}/meeting/decline",
        data={
            "csrf_token": token,
            "decline-name": "Sam",
            "decline-reason": "<script>alert(1)</script>",
        },
    )
    assert answer.status_code == 302
    shown = body(client.get(page))
    assert "<script>alert(1)</script>" not in shown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
