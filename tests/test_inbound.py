"""Replies by plain email, through the mail provider's webhook (POST /inbound/email):
every corpus message is stored and attached to the real delivery it answers with the
right kind; unknown addresses wait on the operator's holding list; garbage is kept as
malformed; duplicates are stored once; the organiser reclassifies and downloads
attachments, and nobody outside the collective can."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import secrets
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, render_template
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import csrf_token, form_post, https_client
from tests.factories import add_member, login, make_collective, make_user
from tests.test_signatures import _published
from web.accounts.models import User
from web.campaigns.models import Campaign
from web.collectives.models import Collective, Membership, Role
from web.db import utcnow
from web.delivery.models import Delivery, DeliveryEvent
from web.delivery.services import issue_secrets, placeholder_secrets, reply_key
from web.delivery.workdays import uk_date
from web.http import db_session
from web.mail import make_message_id
from web.outbox import OutboxMessage
from web.responses.models import InboundMessage, Response, ResponseAttachment
from web.tenancy import set_current_collective

CORPUS = Path(__file__).parent / "data" / "inbound"
SECRET = "inbound-webhook-secret-" + "x" * 24
URL = "/inbound/email"
TOKEN = re.compile(rb"(reply\+)([a-z0-9]{26,64})(@reply\.chorus\.localhost)", re.IGNORECASE)

# The kinds the corpus must produce (every other readable message: substantive).
EXPECTED_KIND = {
    "dsn_bounce": "bounce",
    "postmaster_undeliverable": "bounce",
    "dwp_acknowledgement": "acknowledgement",
    "human_acknowledgement": "acknowledgement",
    "exchange_out_of_office": "holding",
    "gmail_vacation": "holding",
    "human_holding": "holding",
}
NOT_ATTACHED = {"garbage": "malformed", "unknown_recipient": "held"}


# --- helpers ---------------------------------------------------------------------------


@dataclasses.dataclass
class World:
    collective: Collective
    campaign: Campaign
    delivery: Delivery
    owner: User
    key: str
    delivery_id: int = 0
    campaign_id: int = 0
    message_id: str = ""


def _owner(session: Session, collective: Collective) -> User:
    set_current_collective(session, collective.id)
    membership = session.scalar(select(Membership).where(Membership.role == Role.OWNER))
    assert membership is not None
    user = session.get(User, membership.user_id)
    assert user is not None
    return user


def make_delivery(
    session: Session, app: Flask, collective: Collective, campaign: Campaign, status: str = "sent"
) -> Delivery:
    set_current_collective(session, collective.id)
    sent = status == "sent"
    delivery = Delivery(
        collective_id=collective.id,
        campaign_id=campaign.id,
        recipient_name="Department for Work and Pensions",
        method="email",
        status=status,
        idempotency_key=secrets.token_hex(16),
        to_email="correspondence@dwp.gov.uk",
        message_id=make_message_id(),
        sent_at=utcnow() if sent else None,
        delivered_on=uk_date(utcnow()) if sent else None,
    )
    placeholder_secrets(delivery)
    session.add(delivery)
    session.flush()
    issue_secrets(app.extensions["chorus.settings"], delivery)
    session.flush()
    return delivery


def make_world(session: Session, app: Flask, slug: str = "fair-pip") -> World:
    collective, campaign = _published(session, app, slug=slug)
    set_current_collective(session, collective.id)
    campaign.state = "delivered"
    delivery = make_delivery(session, app, collective, campaign)
    key = reply_key(app.extensions["chorus.settings"], delivery)
    owner = _owner(session, collective)
    set_current_collective(session, None)
    return World(
        collective, campaign, delivery, owner, key, delivery.id, campaign.id, delivery.message_id
    )


@pytest.fixture
def webhook_on(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Any:
    settings = app.extensions["chorus.settings"]
    monkeypatch.setitem(
        app.extensions,
        "chorus.settings",
        dataclasses.replace(settings, inbound_webhook_secret=SECRET),
    )
    return app.extensions["chorus.settings"]


@pytest.fixture
def world(session: Session, app: Flask) -> World:
    return make_world(session, app)


def corpus(name: str, key: str) -> bytes:
    """A corpus message addressed to `key` (its placeholder tokens rewritten, keeping
    their case, so the upper-case sample stays upper-case)."""
    raw = (CORPUS / f"{name}.eml").read_bytes()

    def swap(match: re.Match[bytes]) -> bytes:
        token = key.encode()
        if match.group(2).isupper():
            token = token.upper()
        return match.group(1) + token + match.group(3)

    return TOKEN.sub(swap, raw)


def email_to(
    to: str,
    *,
    body: str = "Thank you. The Minister will meet you on 3 March.",
    subject: str = "RE: Fair PIP",
    html: str | None = None,
    attachments: list[tuple[bytes, str, str]] = (),  # type: ignore[assignment]
    **headers: str,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Jo Patel <j.patel@dwp.gov.uk>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Mon, 22 Dec 2025 10:00:00 +0000"
    msg["Message-ID"] = make_message_id()
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for data, filename, ctype in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def post(client: FlaskClient, raw: bytes, **headers: str) -> Any:
    sent = {"Authorization": f"Bearer {SECRET}", "Content-Type": "message/rfc822", **headers}
    return client.post(URL, data=raw, headers={k: v for k, v in sent.items() if v})


def responses(session: Session, w: World) -> list[Response]:
    session.expire_all()
    set_current_collective(session, w.collective.id)
    return list(
        session.scalars(
            select(Response).where(Response.delivery_id == w.delivery_id).order_by(Response.id)
        )
    )


def inbound(session: Session) -> list[InboundMessage]:
    session.expire_all()
    return list(session.scalars(select(InboundMessage).order_by(InboundMessage.id)))


def delivery_now(session: Session, w: World) -> Delivery:
    session.expire_all()
    set_current_collective(session, w.collective.id)
    found = session.get(Delivery, w.delivery_id)
    assert found is not None
    return found


def campaign_state(session: Session, w: World) -> str:
    session.expire_all()
    set_current_collective(session, w.collective.id)
    campaign = session.get(Campaign, w.campaign_id)
    assert campaign is not None
    return campaign.state


def make_admin(session: Session, app: Flask) -> User:
    admin = make_user(session, app)
    admin.is_platform_admin = True
    session.flush()
    return admin


# --- the corpus, end to end -----------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.stem for p in CORPUS.glob("*.eml")))
def test_every_corpus_message_is_kept_and_the_replies_attach_with_their_kind(
    client: FlaskClient, session: Session, app: Flask, webhook_on: Any, world: World, name: str
) -> None:
    raw = corpus(name, world.key)
    answer = post(client, raw)
    assert answer.status_code in (200, 202), answer.get_data(as_text=True)
    body = answer.get_json()

    [message] = inbound(session)
    assert message.raw == raw  # nothing lost: the exact bytes
    assert message.raw_sha256 == hashlib.sha256(raw).hexdigest()
    assert message.source == "http"
    if name in NOT_ATTACHED:
        assert body["status"] == NOT_ATTACHED[name]
        assert answer.status_code == 202
        assert message.status == NOT_ATTACHED[name]
        assert responses(session, world) == []
        return
    kind = EXPECTED_KIND.get(name, "substantive")
    assert (answer.status_code, body) == (200, {"status": "attached", "kind": kind})
    assert (message.status, message.delivery_id) == ("attached", world.delivery_id)
    assert message.collective_id == world.collective.id
    [response] = responses(session, world)
    assert (response.kind, response.channel, response.classified_by) == (kind, "email", "auto")
    assert response.inbound_message_id == message.id
    delivery = delivery_now(session, world)
    if kind == "bounce":  # recorded, but not an answer: the clock runs on
        assert delivery.acknowledged_at is None
        assert delivery.replied_at is None
    else:
        assert delivery.acknowledged_at is not None
        assert (delivery.replied_at is not None) == (kind == "substantive")


def test_a_bounce_is_recorded_but_does_not_count_as_an_answer(
    client: FlaskClient, session: Session, app: Flask, webhook_on: Any, world: World
) -> None:
    assert post(client, corpus("dsn_bounce", world.key)).get_json()["status"] == "attached"
    [response] = responses(session, world)
    assert response.kind == "bounce"
    delivery = delivery_now(session, world)
    assert delivery.acknowledged_at is None
    assert campaign_state(session, world) == "delivered"
    events = list(
        session.scalars(select(DeliveryEvent).where(DeliveryEvent.kind == "reply_received"))
    )
    assert [e.summary for e in events] == ["A delivery failure notice came back for this letter."]


def test_acknowledgement_and_substantive_reply_move_the_campaign_forward(
    client: FlaskClient, session: Session, app: Flask, webhook_on: Any, world: World
) -> None:
    post(client, corpus("dwp_acknowledgement", world.key))
    assert campaign_state(session, world) == "acknowledged"
    post(client, corpus("plain_reply_quoted", world.key))
    assert campaign_state(session, world) == "responded"
    kinds = [r.kind for r in responses(session, world)]
    assert kinds == ["acknowledgement", "substantive"]


def test_a_substantive_reply_emails_the_owners_and_organisers_only(
    client: FlaskClient, session: Session, app: Flask, webhook_on: Any, world: World
) -> None:
    organiser = make_user(session, app, email="organiser@example.org")
    viewer = make_user(session, app, email="viewer@example.org")
    add_member(session, world.collective, organiser, Role.ORGANISER)
    add_member(session, world.collective, viewer, Role.VIEWER)
    post(client, corpus("human_acknowledgement", world.key))  # no email for this
    post(client, corpus("plain_reply_quoted", world.key))
    session.expire_all()
    emails = list(session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "email")))
    assert sorted(e.payload["to"] for e in emails) == sorted(
        [world.owner.email, "organiser@example.org"]
    )
    text = emails[0].payload["text"]
    assert (
        "Department for Work and Pensions answered the letter “Fair PIP” by email: a reply" in text
    )
    assert (
        f"/app/{world.collective.slug}/campaigns/{world.campaign_id}/deliveries/"
        f"{world.delivery_id}" in text
    )


def test_an_upper_case_reply_address_still_matches(
    client: FlaskClient, session: Session, app: Flask, webhook_on: Any, world: World
) -> None:
    raw = email_to(f"REPLY+{world.key.upper()}@REPLY.CHORUS.LOCALHOST")
    assert post(client, raw).get_json() == {"status": "attached", "kind": "substantive"}
    assert len(responses(session, world)) == 1


def test_a_reply_that_lost_its_address_is_found_by_in_reply_to(
    client: FlaskClient, session: Session, app: Flask, webhook_on: Any, world: World
) -> None:
    raw = email_to("letters@dwp.gov.uk", In_Reply_To=world.message_id, References="<x@y>")
    assert post(client, raw).get_json()["status"] == "attached"
    assert len(responses(session, world)) == 1


def test_a_reply_to_a_delivery_not_yet_sent_is_held_with_a_note(
    client: FlaskClient, session: Session, app: Flask, webhook_on: Any, world: World
) -> None:
    cancelled = make_delivery(session, app, world.collective, world.campaign, "cancelled")
    key = reply_key(app.extensions["chorus.settings"], cancelled)
    cancelled_id = cancelled.id
    answer = post(client, email_to(f"reply+{key}@reply.chorus.localhost"))
    assert (answer.status_code, answer.get_json()) == (202, {"status": "held"})
    [message] = inbound(session)
    assert message.status == "held"
    assert f"delivery {cancelled_id}, which has not been sent" in message.note
    assert "cancelled" in message.note


def test_the_same_message_twice_is_one_message_and_one_response(
    client: FlaskClient, session: Session, app: Flask, webhook_on: Any, world: World
) -> None:
    raw = corpus("plain_reply_quoted", world.key)
    assert post(client, raw).get_json()["status"] == "attached"
    again = post(client, raw)
    assert (again.status_code, again.get_json()) == (200, {"status": "duplicate"})
    assert len(inbound(session)) == 1
    assert len(responses(session, world)) == 1


def test_pdf_and_docx_attachments_are_stored_others_are_listed_as_not_kept(
    client: FlaskClient, session: Session, app: Flask, webhook_on: Any, world: World
) -> None:
    raw = email_to(
        f"reply+{world.key}@reply.chorus.localhost",
        attachments=[
            (b"%PDF-1.4\n% reply\n", "reply.pdf", "application/pdf"),
            (b"MZ\x90\x00 not a document", "run-me.exe", "application/octet-stream"),
        ],
    )
    assert post(client, raw).get_json()["status"] == "attached"
    [response] = responses(session, world)
    assert "not kept: run-me.exe (application/octet-stream)" in response.body_text
    set_current_collective(session, world.collective.id)
    files = list(session.scalars(select(ResponseAttachment)))
    assert [(f.filename, f.content_type) for f in files] == [("reply.pdf", "application/pdf")]


# --- the organiser ---------------------------------------------------------------------


def test_attachments_download_for_the_collective_only(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    app: Flask,
    webhook_on: Any,
    world: World,
) -> None:
    post(client, corpus("attachments_pdf_docx", world.key))
    [response] = responses(session, world)
    files = list(session.scalars(select(ResponseAttachment).order_by(ResponseAttachment.id)))
    assert [f.content_type for f in files] == [
        "application/pdf",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ]
    assert all(f.response_id == response.id for f in files)

    login(client, world.owner)
    for f in files:
        got = client.get(f"/app/{world.collective.slug}/responses/attachments/{f.id}")
        assert got.status_code == 200
        assert got.data == f.data
        assert got.headers["Content-Type"].startswith(f.content_type)
        assert got.headers["Content-Disposition"].startswith("attachment")
        assert got.headers["X-Content-Type-Options"] == "nosniff"

    stranger = make_user(session, app)
    make_collective(session, stranger, slug="other-collective")
    login(other_client, stranger)
    for path in (
        f"/app/{world.collective.slug}/responses/attachments/{files[0].id}",  # not a member
        f"/app/other-collective/responses/attachments/{files[0].id}",  # not their file
    ):
        assert other_client.get(path).status_code == 404
    anonymous = https_client(app)
    assert (
        anonymous.get(
            f"/app/{world.collective.slug}/responses/attachments/{files[0].id}"
        ).status_code
        == 302
    )


def _kind_url(w: World, response: Response, slug: str | None = None) -> str:
    return (
        f"/app/{slug or w.collective.slug}/campaigns/{w.campaign_id}/deliveries/"
        f"{w.delivery_id}/responses/{response.id}/kind"
    )


def _overview(w: World, slug: str | None = None) -> str:
    return f"/app/{slug or w.collective.slug}/campaigns/{w.campaign_id}/"


def test_the_organiser_reclassifies_and_the_timeline_says_so(
    client: FlaskClient, session: Session, app: Flask, webhook_on: Any, world: World
) -> None:
    post(client, corpus("human_holding", world.key))
    [response] = responses(session, world)
    assert response.kind == "holding"
    login(client, world.owner)
    token = csrf_token(client.get(_overview(world)).get_data(as_text=True))
    answer = client.post(
        _kind_url(world, response), data={"csrf_token": token, "kind": "substantive"}
    )
    assert answer.status_code == 302
    [response] = responses(session, world)
    assert (response.kind, response.classified_by) == ("substantive", "organiser")
    delivery = delivery_now(session, world)
    assert delivery.replied_at is not None
    events = list(
        session.scalars(select(DeliveryEvent).where(DeliveryEvent.kind == "reclassified"))
    )
    assert [e.summary for e in events] == [
        "A response was reclassified from holding reply to substantive reply."
    ]
    assert events[0].actor_id == world.owner.id
    # Without a CSRF token, or with a kind that does not exist: refused, nothing changes.
    assert client.post(_kind_url(world, response), data={"kind": "holding"}).status_code == 400
    bad = client.post(_kind_url(world, response), data={"csrf_token": token, "kind": "spam"})
    assert bad.status_code == 422
    assert "Not a valid choice" in bad.get_data(as_text=True)
    assert responses(session, world)[0].kind == "substantive"


def test_viewers_and_other_collectives_cannot_reclassify(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    app: Flask,
    webhook_on: Any,
    world: World,
) -> None:
    post(client, corpus("human_holding", world.key))
    [response] = responses(session, world)
    viewer = make_user(session, app)
    add_member(session, world.collective, viewer, Role.VIEWER)
    login(client, viewer)
    token = csrf_token(client.get(_overview(world)).get_data(as_text=True))
    refused = client.post(_kind_url(world, response), data={"csrf_token": token, "kind": "bounce"})
    assert refused.status_code == 403

    stranger = make_user(session, app)
    make_collective(session, stranger, slug="other-collective")
    login(other_client, stranger)
    token = csrf_token(other_client.get("/app/other-collective/").get_data(as_text=True))
    for slug in (world.collective.slug, "other-collective"):
        answer = other_client.post(
            _kind_url(world, response, slug), data={"csrf_token": token, "kind": "bounce"}
        )
        assert answer.status_code == 404
    assert responses(session, world)[0].kind == "holding"


def test_the_responses_panel_shows_replies_attachments_and_the_reclassify_form(
    client: FlaskClient, session: Session, app: Flask, webhook_on: Any, world: World
) -> None:
    post(client, corpus("attachments_pdf_docx", world.key))
    set_current_collective(session, world.collective.id)
    [attachment, _docx] = list(
        session.scalars(select(ResponseAttachment).order_by(ResponseAttachment.id))
    )
    with app.test_request_context("/"):
        set_current_collective(db_session(), world.collective.id)
        delivery = db_session().get(Delivery, world.delivery_id)
        html = render_template(
            "responses/_responses_panel.html",
            collective=world.collective,
            campaign=world.campaign,
            delivery=delivery,
            can_edit=True,
        )
        viewer_html = render_template(
            "responses/_responses_panel.html",
            collective=world.collective,
            campaign=world.campaign,
            delivery=delivery,
            can_edit=False,
        )
    assert "Substantive reply" in html
    assert "correspondence@dwp.gov.uk" in html
    assert f"/app/{world.collective.slug}/responses/attachments/{attachment.id}" in html
    assert "Response.pdf" in html
    assert 'name="kind"' in html
    assert "Change classification" in html
    assert "Change classification" not in viewer_html


# --- the operator's holding list -------------------------------------------------------


def test_an_unknown_address_is_held_and_the_operator_attaches_it(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    app: Flask,
    webhook_on: Any,
    world: World,
) -> None:
    answer = post(client, corpus("unknown_recipient", world.key))
    assert (answer.status_code, answer.get_json()) == (202, {"status": "held"})
    [message] = inbound(session)

    organiser_only = https_client(app)
    login(organiser_only, world.owner)
    assert organiser_only.get("/admin/inbound").status_code == 404
    assert organiser_only.get(f"/admin/inbound/{message.id}/raw").status_code == 404

    admin = make_admin(session, app)
    login(other_client, admin)
    page = other_client.get("/admin/inbound").get_data(as_text=True)
    assert "Your letter about school meals" in page
    assert "lucy.grant@example.gov.uk" in page
    shown = other_client.get(f"/admin/inbound/{message.id}").get_data(as_text=True)
    assert "The free school meals pilot will continue." in shown
    assert "&lt;unknown-rcpt-1@example.gov.uk&gt;" in shown  # the headers, escaped
    raw = other_client.get(f"/admin/inbound/{message.id}/raw")
    assert raw.headers["Content-Type"] == "message/rfc822"
    assert raw.headers["Content-Disposition"] == f"attachment; filename=inbound-{message.id}.eml"
    assert raw.data == message.raw

    action = f"/admin/inbound/{message.id}/attach"
    wrong = form_post(
        other_client, f"/admin/inbound/{message.id}", {"delivery_id": "999999"}, action
    )
    assert wrong.status_code == 422
    assert "There is no delivery 999999" in wrong.get_data(as_text=True)
    done = form_post(
        other_client,
        f"/admin/inbound/{message.id}",
        {"delivery_id": str(world.delivery_id)},
        action,
    )
    assert done.status_code == 302
    [message] = inbound(session)
    assert (message.status, message.delivery_id) == ("attached", world.delivery_id)
    [response] = responses(session, world)
    assert response.responder_email == "lucy.grant@example.gov.uk"
    assert "free school meals pilot will continue" in response.body_text
    assert "Your letter about school meals" not in other_client.get("/admin/inbound").get_data(
        as_text=True
    )


def test_the_operator_sees_html_mail_as_text_never_rendered_and_can_set_it_aside(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    app: Flask,
    webhook_on: Any,
    world: World,
) -> None:
    raw = email_to(
        "letters@elsewhere.example",
        body="",
        html='<p>Hello <b>team</b></p><script>alert("x")</script><img src="https://tracker.example/p.gif">',
    )
    post(client, raw)
    [message] = inbound(session)
    admin = make_admin(session, app)
    login(other_client, admin)
    shown = other_client.get(f"/admin/inbound/{message.id}").get_data(as_text=True)
    assert "<script>alert" not in shown
    assert 'tracker.example/p.gif"' not in shown
    assert "<b>team</b>" not in shown
    dismissed = form_post(
        other_client, f"/admin/inbound/{message.id}", {}, f"/admin/inbound/{message.id}/dismiss"
    )
    assert dismissed.status_code == 302
    assert inbound(session)[0].status == "dismissed"


def test_garbage_is_kept_as_malformed_and_answered_without_an_error(
    client: FlaskClient, session: Session, app: Flask, webhook_on: Any
) -> None:
    for raw in (secrets.token_bytes(5000), b"\x00\xff" * 100, b"<html><b>not mail</b>"):
        answer = post(client, raw)
        assert (answer.status_code, answer.get_json()) == (202, {"status": "malformed"})
    assert [m.status for m in inbound(session)] == ["malformed"] * 3


# --- the webhook's door ----------------------------------------------------------------


def test_a_wrong_or_missing_secret_is_refused_with_401(
    client: FlaskClient, session: Session, app: Flask, webhook_on: Any, world: World
) -> None:
    raw = corpus("plain_reply_quoted", world.key)
    assert post(client, raw, Authorization="").status_code == 401
    assert post(client, raw, Authorization="Bearer " + "y" * 47).status_code == 401
    assert post(client, raw, Authorization=f"Basic {SECRET}").status_code == 401
    assert inbound(session) == []
    # The other header is accepted too.
    answer = post(client, raw, Authorization="", **{"X-Chorus-Inbound-Secret": SECRET})
    assert answer.get_json()["status"] == "attached"


def test_the_webhook_is_off_without_a_secret(client: FlaskClient, session: Session) -> None:
    assert post(client, b"From: a@b\r\n\r\nhi").status_code == 404
    assert inbound(session) == []


def test_too_large_and_empty_bodies_are_refused(
    client: FlaskClient, session: Session, webhook_on: Any
) -> None:
    big = b"From: a@example.org\r\nSubject: big\r\n\r\n" + b"x" * (31 * 1024 * 1024)
    assert post(client, big).status_code == 413
    assert post(client, b"").status_code == 400
    assert post(client, b"  \r\n").status_code == 400
    assert inbound(session) == []


def test_a_25_mb_message_and_a_form_posted_message_are_accepted(
    client: FlaskClient, session: Session, app: Flask, webhook_on: Any, world: World
) -> None:
    pdf = b"%PDF-1.4\n" + secrets.token_bytes(15 * 1024 * 1024)
    raw = email_to(
        f"reply+{world.key}@reply.chorus.localhost",
        attachments=[(pdf, "report.pdf", "application/pdf")],
    )
    assert 20 * 1024 * 1024 < len(raw) < 30 * 1024 * 1024
    assert post(client, raw).get_json() == {"status": "attached", "kind": "substantive"}
    set_current_collective(session, world.collective.id)
    files = list(session.scalars(select(ResponseAttachment)))
    assert [f.size for f in files] == [len(pdf)]

    form = email_to(f"reply+{world.key}@reply.chorus.localhost", body="Second reply.")
    answer = client.post(
        URL,
        data={"message": (io.BytesIO(form), "message.eml")},
        headers={"Authorization": f"Bearer {SECRET}"},
        content_type="multipart/form-data",
    )
    assert answer.get_json()["status"] == "attached"
    text_field = email_to(f"reply+{world.key}@reply.chorus.localhost", body="Third reply.")
    answer = client.post(
        URL,
        data={"message": text_field.decode()},
        headers={"Authorization": f"Bearer {SECRET}"},
    )
    assert answer.get_json()["status"] == "attached"
    assert len(responses(session, world)) == 3


def test_replies_cannot_reach_another_collectives_delivery_by_guessing(
    client: FlaskClient, session: Session, app: Flask, webhook_on: Any, world: World
) -> None:
    other = make_world(session, app, slug="second")
    raw = email_to(f"reply+{world.key[:-1]}a@reply.chorus.localhost")
    if world.key.endswith("a"):
        raw = email_to(f"reply+{world.key[:-1]}b@reply.chorus.localhost")
    assert post(client, raw).get_json()["status"] == "held"
    assert responses(session, world) == []
    assert responses(session, other) == []
