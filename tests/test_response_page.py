"""The department's response page (/respond/<token>), as an official uses it without an
account: the letter, the PDF, the statements and the method; one-click acknowledgement;
a reply with an attachment (PDF, DOCX or ODT, checked by content, stored in
PostgreSQL); and everything that must be refused (bad links, bad files, bad input,
missing CSRF tokens), with nothing saved and a message a person can act on."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import secrets
import zipfile
from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, undefer

from tests.conftest import Mailbox, csrf_token, form_post
from tests.factories import add_member, make_collective, make_user
from web import tokens
from web.campaigns import services as campaigns
from web.campaigns.models import Campaign
from web.collectives.models import Membership, Role
from web.db import utcnow
from web.delivery.models import Delivery, DeliveryEvent
from web.delivery.services import issue_secrets, placeholder_secrets, response_token
from web.delivery.workdays import UK_TIME as UK
from web.mail import make_message_id
from web.pdf.models import Document
from web.recipients.models import Recipient
from web.responses.models import MAX_ATTACHMENT_BYTES, Response, ResponseAttachment
from web.signatures.models import Signature
from web.tenancy import set_current_collective, system_scope

TITLE = "Fair PIP assessments"
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
BODY = "People wait **months** for a decision. <script>alert(1)</script>"


# --- a delivered letter ------------------------------------------------------------------


@dataclasses.dataclass
class World:
    collective_id: int
    collective_slug: str
    campaign_id: int
    delivery_id: int
    token: str
    owner_email: str
    organiser_email: str
    viewer_email: str

    @property
    def path(self) -> str:
        return f"/respond/{self.token}"


def uk_today() -> date:
    return utcnow().astimezone(UK).date()


def uk_slot(day: date, times: str = "10:00-11:00") -> str:
    return f"{day.strftime('%A %-d %B %Y')}, {times}"


def default_slots() -> list[dict[str, str]]:
    today = uk_today()
    return [
        {"when": uk_slot(today + timedelta(days=10)), "place": "Caxton House, London"},
        {
            "when": "Any morning in the week of "
            + (today + timedelta(days=20)).strftime("%-d %B %Y"),
            "place": "Online",
        },
        {"when": uk_slot(today - timedelta(days=3), "14:00-15:00"), "place": "Leeds"},
    ]


def make_world(
    session: Session,
    app: Flask,
    *,
    kind: str = "open_letter",
    slots: list[dict[str, str]] | None = None,
    statements: list[tuple[str, str, bool]] = (),  # type: ignore[assignment]
    tag: str | None = None,
) -> World:
    """A published, delivered letter (sent by email today) with its final PDF; the
    collective has an owner, an organiser and a viewer. Flushes only."""
    tag = tag or secrets.token_hex(3)
    owner = make_user(session, app, email=f"owner-{tag}@example.org", name="Olu Owner")
    organiser = make_user(session, app, email=f"organiser-{tag}@example.org", name="Ola Org")
    viewer = make_user(session, app, email=f"viewer-{tag}@example.org")
    collective = make_collective(session, owner, name="Claimants Together", slug=f"claim-{tag}")
    set_current_collective(session, collective.id)
    member = session.scalars(select(Membership).where(Membership.user_id == owner.id)).one()
    with system_scope(session):
        recipient = Recipient(
            key=f"dwp-{tag}", kind="ministerial_department", name="Department for Work and Pensions"
        )
        session.add(recipient)
        session.flush()
    campaign = campaigns.create_campaign(session, member, kind=kind, title=TITLE, slug="fair-pip")
    campaigns.update_settings(
        session,
        member,
        campaign,
        title=TITLE,
        slug="fair-pip",
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
        subject="Delays to PIP assessments",
        summary="People wait months for a decision.",
        body_markdown=BODY,
        asks=["Publish a plan to clear the backlog"],
        evidence_links=[],
        meeting_purpose="To discuss the backlog and how claimants can help clear it.",
        meeting_attendees="Amina Khan, Chair\nJo Bloggs, Treasurer",
        meeting_slots=slots if slots is not None else default_slots(),
    )
    version = campaigns.publish(session, member, collective, campaign)
    # Added after publication: a second organiser would have to approve the letter.
    add_member(session, collective, organiser, Role.ORGANISER)
    add_member(session, collective, viewer, Role.VIEWER)
    set_current_collective(session, collective.id)
    for n, (text, name, show_name) in enumerate(statements):
        session.add(
            Signature(
                collective_id=collective.id,
                campaign_id=campaign.id,
                letter_version_id=version.id,
                name=name,
                email=f"signer{n}-{tag}@example.org",
                email_canonical=f"signer{n}-{tag}@example.org",
                statement=text,
                show_name=show_name,
                show_statement=True,
                statement_status="approved",
                status="verified",
                verified_at=utcnow(),
                secret_hash=secrets.token_bytes(32),
            )
        )
    campaign.state = "delivered"
    document = Document(
        collective_id=collective.id,
        campaign_id=campaign.id,
        kind="final",
        letter_version_id=version.id,
        sha256=hashlib.sha256(PDF + tag.encode()).hexdigest(),
        size=len(PDF + tag.encode()),
        pages=3,
        inputs_hash=secrets.token_hex(32),
        data=PDF + tag.encode(),
    )
    session.add(document)
    session.flush()
    delivery = Delivery(
        collective_id=collective.id,
        campaign_id=campaign.id,
        recipient_id=recipient.id,
        recipient_name="Department for Work and Pensions",
        method="email",
        status="sent",
        idempotency_key=secrets.token_hex(16),
        to_email="correspondence@dwp.gov.uk",
        document_id=document.id,
        message_id=make_message_id(),
        sent_at=utcnow(),
        delivered_on=uk_today(),
    )
    placeholder_secrets(delivery)
    session.add(delivery)
    session.flush()
    settings = app.extensions["chorus.settings"]
    issue_secrets(settings, delivery)
    session.flush()
    world = World(
        collective.id,
        collective.slug,
        campaign.id,
        delivery.id,
        response_token(settings, delivery),
        owner.email,
        organiser.email,
        viewer.email,
    )
    set_current_collective(session, None)
    return world


def delivery_of(session: Session, world: World) -> Delivery:
    set_current_collective(session, world.collective_id)
    session.expire_all()
    delivery = session.get(Delivery, world.delivery_id)
    assert delivery is not None
    return delivery


def responses(session: Session, world: World) -> list[Response]:
    set_current_collective(session, world.collective_id)
    session.expire_all()
    return list(
        session.scalars(
            select(Response).where(Response.delivery_id == world.delivery_id).order_by(Response.id)
        )
    )


def attachments(session: Session, world: World) -> list[ResponseAttachment]:
    set_current_collective(session, world.collective_id)
    return list(
        session.scalars(
            select(ResponseAttachment)
            .join(Response, Response.id == ResponseAttachment.response_id)
            .where(Response.delivery_id == world.delivery_id)
            .options(undefer(ResponseAttachment.data))
        )
    )


def text_of(response: Any) -> str:
    return str(response.get_data(as_text=True))


def assert_private(response: Any) -> None:
    assert response.headers["Referrer-Policy"] == "no-referrer", response.headers
    assert response.headers["Cache-Control"] == "no-store"
    assert "noindex" in response.headers["X-Robots-Tag"]


@pytest.fixture
def world(session: Session, app: Flask) -> World:
    return make_world(
        session,
        app,
        statements=[
            ("I waited nine months for my assessment.", "Dana Signer", True),
            ("The wait made my health worse.", "Hidden Name", False),
        ],
    )


# --- files -------------------------------------------------------------------------------


def docx_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/'
            '2006/content-types"/>',
        )
        archive.writestr(
            "word/document.xml",
            '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/'
            'wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Reply</w:t></w:r></w:p>'
            "</w:body></w:document>",
        )
    return buffer.getvalue()


def odt_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.text"
        )  # first, stored
        archive.writestr("content.xml", "<office:document-content/>")
    return buffer.getvalue()


def zip_not_docx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "not a document")
    return buffer.getvalue()


def reply_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "reply-body": "Thank you for your letter. We will publish a plan in the spring.",
        "reply-kind": "substantive",
        "reply-name": "Sam Official",
        "reply-role": "Correspondence Officer",
        "reply-email": "sam.official@dwp.gov.uk",
    }
    data.update(overrides)
    return data


def post_reply(client: FlaskClient, world: World, **overrides: Any) -> Any:
    return form_post(
        client,
        world.path,
        reply_data(**overrides),
        action=f"{world.path}/reply",
        content_type="multipart/form-data",
    )


# --- reading --------------------------------------------------------------------------------


def test_official_reads_the_letter_pdf_statements_method_and_clock(
    client: FlaskClient, world: World
) -> None:
    response = client.get(world.path)
    assert response.status_code == 200
    assert_private(response)
    page = text_of(response)
    assert "Claimants Together" in page
    assert TITLE in page
    assert "Delays to PIP assessments" in page
    assert "<strong>months</strong>" in page  # the letter's Markdown, rendered
    assert "<script>alert(1)</script>" not in page  # and sanitised
    assert "Publish a plan to clear the backlog" in page
    assert "Day 0 of 20" in page
    assert "Acknowledge receipt" in page
    assert "I waited nine months for my assessment." in page
    assert "Dana Signer" in page
    assert "The wait made my health worse." in page
    assert "Hidden Name" not in page  # the signer did not agree to show their name
    assert "2 verified signatures are counted" in page
    assert "How people signed" in page
    assert f"{world.path}/letter.pdf" in page
    assert '<meta name="referrer" content="no-referrer">' in page

    pdf = client.get(f"{world.path}/letter.pdf")
    assert pdf.status_code == 200
    assert pdf.data.startswith(b"%PDF-")
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.headers["Content-Disposition"].startswith("attachment;")
    assert_private(pdf)


def test_statements_are_paginated_fifty_a_page(
    session: Session, app: Flask, client: FlaskClient
) -> None:
    world = make_world(
        session,
        app,
        statements=[
            (f"Statement number {n} about waiting {n * 7} days.", "", False) for n in range(60)
        ],
    )
    first = text_of(client.get(world.path))
    assert "60 distinct statements" in first
    assert "Showing 1 to 50" in first
    assert "Page 1 of 2" in first
    second = text_of(client.get(f"{world.path}?voices=2"))
    assert "Showing 51 to 60" in second
    assert second.count('class="statement"') == 10
    assert client.get(f"{world.path}?voices=zzz").status_code == 200


def test_bad_links_are_404_and_revoked_or_expired_links_410(
    session: Session, app: Flask, client: FlaskClient, world: World
) -> None:
    unknown = client.get("/respond/12345.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert unknown.status_code == 404
    assert "This link is not valid" in text_of(unknown)
    assert_private(unknown)
    for raw in ("nonsense", "1.x", "9" * 30 + ".abc", "%00", "..%2F..%2Fetc"):
        answer = client.get(f"/respond/{raw}")
        assert answer.status_code == 404, raw
        assert_private(answer)
    unmatched = client.get(f"{world.path}/no/such/page")
    assert unmatched.status_code == 404
    assert_private(unmatched)

    # Another delivery's secret with this delivery's id (and the reverse) is not a link.
    other = make_world(session, app)
    mixed = tokens.compose(world.delivery_id, other.token.split(".", 1)[1])
    assert client.get(f"/respond/{mixed}").status_code == 404
    assert client.get(f"/respond/{mixed}/letter.pdf").status_code == 404
    html = text_of(client.get(world.path))
    assert (
        client.post(
            f"/respond/{mixed}/acknowledge", data={"csrf_token": csrf_token(html)}
        ).status_code
        == 404
    )
    assert responses(session, world) == []
    assert responses(session, other) == []

    delivery = delivery_of(session, world)
    delivery.response_token_revoked_at = utcnow()
    session.flush()
    revoked = client.get(world.path)
    assert revoked.status_code == 410
    assert "withdrawn" in text_of(revoked)
    assert_private(revoked)
    assert client.get(f"{world.path}/letter.pdf").status_code == 410

    delivery.response_token_revoked_at = None
    delivery.response_token_expires_at = utcnow() - timedelta(minutes=1)
    session.flush()
    expired = client.get(world.path)
    assert expired.status_code == 410
    assert "expired" in text_of(expired)
    assert_private(expired)


# --- acknowledging ----------------------------------------------------------------------------


def test_acknowledge_once_then_told_it_was_already_done(
    session: Session, client: FlaskClient, world: World, mailbox: Mailbox, work: Any
) -> None:
    answer = form_post(
        client,
        world.path,
        {"ack-name": "Sam Official", "ack-role": "Correspondence Officer"},
        action=f"{world.path}/acknowledge",
    )
    assert answer.status_code == 303
    assert_private(answer)
    assert answer.headers["Location"].endswith("#status")
    page = text_of(client.get(world.path))
    assert "receipt is acknowledged" in page
    assert "Acknowledged on" in page
    assert "Acknowledge receipt</button>" not in page
    [ack] = responses(session, world)
    assert (ack.kind, ack.channel, ack.classified_by) == ("acknowledgement", "page", "responder")
    assert (ack.responder_name, ack.responder_role) == ("Sam Official", "Correspondence Officer")
    delivery = delivery_of(session, world)
    assert delivery.acknowledged_at is not None
    assert delivery.replied_at is None
    campaign = session.get(Campaign, world.campaign_id)
    assert campaign is not None
    assert campaign.state == "acknowledged"

    # A second click (a stale tab) records nothing and says when it was done.
    html = text_of(client.get(f"{world.path}?voices=1"))
    again = client.post(f"{world.path}/acknowledge", data={"csrf_token": csrf_token(html)})
    assert again.status_code == 303
    page = text_of(client.get(world.path))
    day = delivery.acknowledged_at.strftime("%-d %B %Y")
    assert f"already acknowledged on {day}" in page
    assert len(responses(session, world)) == 1

    work()
    for address in (world.owner_email, world.organiser_email):
        [note] = mailbox.to(address)
        assert "receipt acknowledged" in str(note["Subject"])
        body = Mailbox.text_of(note)
        assert "Sam Official, Correspondence Officer" in body
        assert f"/deliveries/{world.delivery_id}" in body
    assert mailbox.to(world.viewer_email) == []


def test_acknowledging_needs_no_name(session: Session, client: FlaskClient, world: World) -> None:
    answer = form_post(client, world.path, {}, action=f"{world.path}/acknowledge")
    assert answer.status_code == 303
    [ack] = responses(session, world)
    assert ack.responder_name == ""


def test_posts_without_a_csrf_token_are_refused(
    session: Session, client: FlaskClient, world: World
) -> None:
    for action, data in (
        ("acknowledge", {}),
        ("reply", reply_data()),
        ("meeting/decline", {"decline-reason": "No", "decline-name": "Sam"}),
    ):
        answer = client.post(f"{world.path}/{action}", data=data)
        assert answer.status_code == 400, action
        assert "expired" in text_of(answer)
        assert_private(answer)
    assert responses(session, world) == []


# --- replying ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "make", "content_type", "stored_name"),
    [
        (
            "Reply to Claimants Together.pdf",
            lambda: PDF,
            "application/pdf",
            "Reply to Claimants Together.pdf",
        ),
        (
            "reply.docx",
            docx_bytes,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "reply.docx",
        ),
        ("reply", odt_bytes, "application/vnd.oasis.opendocument.text", "reply.odt"),
    ],
)
def test_reply_with_an_attachment_is_stored_and_the_organisers_told(
    session: Session,
    client: FlaskClient,
    world: World,
    mailbox: Mailbox,
    work: Any,
    filename: str,
    make: Any,
    content_type: str,
    stored_name: str,
) -> None:
    data = make()
    answer = post_reply(client, world, **{"reply-attachment": (io.BytesIO(data), filename)})
    assert answer.status_code == 303, text_of(answer)
    assert_private(answer)
    assert "your reply has been sent" in text_of(client.get(world.path))
    [reply] = responses(session, world)
    assert (reply.kind, reply.channel, reply.classified_by) == ("substantive", "page", "responder")
    assert reply.body_text.startswith("Thank you for your letter.")
    assert reply.responder_email == "sam.official@dwp.gov.uk"
    [stored] = attachments(session, world)
    assert (stored.content_type, stored.filename, stored.data) == (content_type, stored_name, data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    delivery = delivery_of(session, world)
    assert delivery.replied_at is not None
    assert delivery.acknowledged_at is not None
    campaign = session.get(Campaign, world.campaign_id)
    assert campaign is not None
    assert campaign.state == "responded"
    work()
    [note] = mailbox.to(world.organiser_email)
    assert "a full reply" in str(note["Subject"])
    assert "We will publish a plan in the spring." in Mailbox.text_of(note)


def test_a_holding_reply_without_attachment_does_not_stop_the_reply_clock(
    session: Session, client: FlaskClient, world: World
) -> None:
    answer = post_reply(client, world, **{"reply-kind": "holding", "reply-email": ""})
    assert answer.status_code == 303
    [reply] = responses(session, world)
    assert reply.kind == "holding"
    assert attachments(session, world) == []
    delivery = delivery_of(session, world)
    assert delivery.acknowledged_at is not None
    assert delivery.replied_at is None


@pytest.mark.parametrize(
    ("filename", "data", "message"),
    [
        ("reply.pdf", b"MZ\x90\x00\x03" + b"\x00" * 200, "is not a PDF"),
        ("reply.docx", zip_not_docx(), "is not a PDF"),
        ("empty.pdf", b"", "empty"),
        ("big.pdf", b"%PDF-" + b"0" * MAX_ATTACHMENT_BYTES, "the limit is 20 MB"),
    ],
)
def test_a_refused_attachment_saves_nothing_and_keeps_the_text(
    session: Session, client: FlaskClient, world: World, filename: str, data: bytes, message: str
) -> None:
    answer = post_reply(
        client,
        world,
        **{
            "reply-body": "Our reply, which must not be lost.",
            "reply-attachment": (io.BytesIO(data), filename),
        },
    )
    assert answer.status_code == 422
    assert_private(answer)
    page = text_of(answer)
    assert message in page
    assert "There is a problem" in page
    assert "Our reply, which must not be lost." in page  # kept in the form
    assert responses(session, world) == []
    assert attachments(session, world) == []
    assert delivery_of(session, world).acknowledged_at is None


def test_an_upload_beyond_the_request_limit_is_a_readable_413(
    session: Session, client: FlaskClient, world: World
) -> None:
    huge = b"%PDF-" + b"0" * (MAX_ATTACHMENT_BYTES + 2 * 1024 * 1024)
    answer = post_reply(client, world, **{"reply-attachment": (io.BytesIO(huge), "huge.pdf")})
    assert answer.status_code == 413
    assert_private(answer)
    page = text_of(answer)
    assert "larger than 20 MB" in page
    assert "Send the reply" in page  # the form is there to try again
    assert responses(session, world) == []
    # Other forms keep the app's usual limit.
    big_ack = client.post(f"{world.path}/acknowledge", data={"ack-name": "x" * (3 * 1024 * 1024)})
    assert big_ack.status_code == 413
    assert_private(big_ack)


def test_hostile_replies_are_refused_or_cleaned(
    session: Session, client: FlaskClient, world: World
) -> None:
    refused = {
        "reply-name": ("Sam\r\nBcc: victim@example.org", "line breaks"),
        "reply-role": ("Officer\u202e", "text-direction"),
        "reply-email": ("not an address", "correct format"),
        "reply-body": ("x" * 50_001, "50000 characters or fewer"),
        "reply-kind": ("everything", "Not a valid choice"),
    }
    for name, (value, message) in refused.items():
        answer = post_reply(client, world, **{name: value})
        assert answer.status_code == 422, name
        assert message in text_of(answer), (name, text_of(answer)[:3000])
    for missing in ("reply-body", "reply-name", "reply-role"):
        answer = post_reply(client, world, **{missing: ""})
        assert answer.status_code == 422, missing
    null = post_reply(client, world, **{"reply-body": "a\x00b"})
    assert null.status_code == 400
    assert responses(session, world) == []

    # Control and text-direction characters in a long text are removed, line breaks kept;
    # markup is stored as text and shown escaped.
    answer = post_reply(
        client,
        world,
        **{
            "reply-body": "Line one\u202e\x07\r\nLine two <b>bold</b>",
            "reply-name": "<script>alert('x')</script>",
        },
    )
    assert answer.status_code == 303
    [reply] = responses(session, world)
    assert reply.body_text == "Line one\nLine two <b>bold</b>"
    page = text_of(client.get(world.path))
    assert "<script>alert('x')</script>" not in page
    assert "&lt;script&gt;" in page


def test_timeline_records_page_answers(session: Session, client: FlaskClient, world: World) -> None:
    form_post(client, world.path, {}, action=f"{world.path}/acknowledge")
    post_reply(client, world)
    set_current_collective(session, world.collective_id)
    kinds = list(
        session.scalars(
            select(DeliveryEvent.kind)
            .where(DeliveryEvent.delivery_id == world.delivery_id)
            .order_by(DeliveryEvent.id)
        )
    )
    assert kinds == ["acknowledged", "reply_received"]
