"""Close and deliver (issue #6 §1, §2): the organiser closes the campaign, reviews the
final PDF and sends it; a real worker sends it through the loopback SMTP server once,
with the PDF attached, a Reply-To of its own and the response link; 4xx answers are
retried, 5xx fail with the server's words; post gets a print-ready PDF and a posting
date; hostile input gets a 4xx and leaves nothing behind."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pypdf
import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tests.conftest import Mailbox, csrf_token, form_post
from tests.factories import add_member, login, make_collective, make_user
from tests.test_pdf_documents import _owner, _sign
from tests.test_signatures import _published
from web.campaigns.models import Campaign
from web.collectives.models import Collective, Role
from web.db import utcnow
from web.delivery import sending
from web.delivery.models import Delivery, DeliveryEvent
from web.delivery.services import reply_key
from web.delivery.workdays import uk_date
from web.outbox import OutboxMessage
from web.pdf.models import Document
from web.recipients.models import Recipient
from web.signatures import services as signing
from web.tenancy import set_current_collective, system_scope
from workers.jobs.delivery import sweep_deliveries

ADDRESS = "correspondence@dwp.example.gov.uk"


def _base(collective: Collective, campaign: Campaign) -> str:
    return f"/app/{collective.slug}/campaigns/{campaign.id}"


def _text(response: Any) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def world(session: Session, app: Flask, client: FlaskClient) -> tuple[Collective, Campaign]:
    """A published, collecting campaign with two signatures, to a directory recipient
    with a correspondence address; its owner is logged in."""
    collective, campaign = _published(session, app, slug="fair-pip")
    with system_scope(session):
        session.execute(
            update(Recipient)
            .where(Recipient.id == campaign.recipient_id)
            .values(correspondence_email=ADDRESS, postal_address="Caxton House\nLondon SW1H 9NA")
            .execution_options(all_collectives=True)
        )
    for name in ("Ada Lovelace", "Owain Glyndŵr"):
        _sign(session, campaign, name)
    set_current_collective(session, collective.id)
    signing.reconcile_counts(session, campaign.id)  # the public count, as signing keeps it
    set_current_collective(session, None)
    login(client, _owner(session, collective))
    return collective, campaign


def _close_and_render(client: FlaskClient, work: Any, base: str, method: str = "email") -> str:
    """Close and deliver now: the plan form, then the final PDF made by a real worker.
    Returns the confirm page's address."""
    response = form_post(
        client, f"{base}/delivery", {"method": method, "when": "now", "to_email": ""}
    )
    assert response.status_code == 302, _text(response)[-2000:]
    confirm = response.headers["Location"]
    page = _text(client.get(confirm))
    assert "Make the final PDF" in page
    made = client.post(f"{base}/pdf/final", data={"csrf_token": csrf_token(page)})
    assert made.status_code == 303, _text(made)[-2000:]
    work("pdf-priority", "pdf")
    return confirm.split("?")[0]


def _deliveries(session: Session, collective: Collective) -> list[Delivery]:
    session.expire_all()
    set_current_collective(session, collective.id)
    return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def _events(session: Session, delivery: Delivery) -> list[str]:
    return list(
        session.scalars(
            select(DeliveryEvent.kind)
            .where(DeliveryEvent.delivery_id == delivery.id)
            .order_by(DeliveryEvent.id)
        )
    )


def _send(client: FlaskClient, confirm: str, to: str = ADDRESS) -> Any:
    page = _text(client.get(confirm))
    key = re.search(r'name="key" type="hidden" value="([0-9a-f]{32})"', page)
    document = re.search(r'name="document_id" type="hidden" value="(\d+)"', page)
    assert key, page[-3000:]
    assert document, page[-3000:]
    return client.post(
        confirm,
        data={
            "csrf_token": csrf_token(page),
            "to_email": to,
            "key": key.group(1),
            "document_id": document.group(1),
        },
    )


def _pdf_part(msg: EmailMessage) -> bytes:
    parts = [p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert len(parts) == 1
    return bytes(parts[0].get_content())


# --- by email --------------------------------------------------------------------------


def test_organiser_closes_reviews_and_sends_the_letter_once_with_the_pdf_attached(
    client: FlaskClient, session: Session, app: Flask, work: Any, mailbox: Mailbox, world: Any
) -> None:
    collective, campaign = world
    base = _base(collective, campaign)
    confirm = _close_and_render(client, work, base)
    page = _text(client.get(confirm))
    set_current_collective(session, collective.id)
    session.expire_all()
    [document] = session.scalars(select(Document).where(Document.kind == "final")).all()
    assert document.sha256 in page
    assert f"{document.pages} page" in page
    assert ADDRESS in page  # prefilled from the directory
    assert session.get(Campaign, campaign.id).state == "closed"  # type: ignore[union-attr]

    sent = _send(client, confirm)
    assert sent.status_code == 302, _text(sent)[-2000:]
    [delivery] = _deliveries(session, collective)
    assert delivery.status == "pending"  # committed before anything is sent
    assert len(delivery.idempotency_key) == 32
    assert mailbox.messages == []

    work()
    [msg] = mailbox.to(ADDRESS)
    settings = app.extensions["chorus.settings"]
    [delivery] = _deliveries(session, collective)
    assert delivery.status == "sent"
    assert str(msg["Message-ID"]).strip() == delivery.message_id
    assert msg["Subject"] == "Open letter: Fair PIP"
    assert msg["Reply-To"] == f"reply+{reply_key(settings, delivery)}@reply.chorus.localhost"
    assert _pdf_part(msg) == bytes(session.get(Document, document.id).data)  # type: ignore[union-attr]
    text = Mailbox.text_of(msg)
    html_part = msg.get_body(preferencelist=("html",))
    assert html_part is not None
    html = str(html_part.get_content())
    link = mailbox.link_in(msg, "/respond/")
    assert link in html
    assert "reply to this email" in text.lower()
    assert "5 working days" in text
    assert "20 working days" in text
    assert document.sha256 in text
    assert "/verify" in text
    assert "2 people" in text
    assert delivery.delivered_on == uk_date(delivery.sent_at)  # type: ignore[arg-type]
    assert _events(session, delivery) == ["delivered"]
    assert session.get(Campaign, campaign.id).state == "delivered"  # type: ignore[union-attr]

    # The organiser sees it, with the clock, on the delivery and overview pages.
    show = _text(client.get(f"{base}/deliveries/{delivery.id}"))
    assert "Delivered" in show
    assert str(escape(delivery.message_id)) in show
    assert "Day 0 of 5" in show
    assert "Day 0 of 20" in show
    assert "Response clock" in _text(client.get(f"{base}/"))
    assert "Day 0 of 20" in _text(client.get(f"{base}/delivery"))

    # Running the job again (a duplicate job, a retry) sends nothing more.
    with app.app_context():
        set_current_collective(session, collective.id)
        sending.queue_send(session, delivery)
        session.commit()
    work()
    assert len(mailbox.to(ADDRESS)) == 1
    # A double click on Send (the same form key) makes no second delivery.
    assert len(_deliveries(session, collective)) == 1


def test_a_double_submitted_send_form_makes_one_delivery(
    client: FlaskClient, session: Session, work: Any, mailbox: Mailbox, world: Any
) -> None:
    collective, campaign = world
    confirm = _close_and_render(client, work, _base(collective, campaign))
    page = _text(client.get(confirm))
    key = re.search(r'name="key" type="hidden" value="([0-9a-f]{32})"', page)
    assert key
    data = {"csrf_token": csrf_token(page), "to_email": ADDRESS, "key": key.group(1)}
    first = client.post(confirm, data=data)
    second = client.post(confirm, data=data)
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    work()
    assert len(_deliveries(session, collective)) == 1
    assert len(mailbox.to(ADDRESS)) == 1


def test_a_temporary_refusal_is_retried_with_backoff_then_sent(
    client: FlaskClient, session: Session, work: Any, mailbox: Mailbox, world: Any
) -> None:
    collective, campaign = world
    base = _base(collective, campaign)
    confirm = _close_and_render(client, work, base)
    mailbox.answers[ADDRESS] = "451 4.7.1 Greylisted, please try again later"
    assert _send(client, confirm).status_code == 302
    work()
    [delivery] = _deliveries(session, collective)
    assert delivery.status == "pending"
    assert delivery.attempts == 1
    assert "Greylisted" in delivery.last_error
    assert delivery.next_attempt_at is not None
    assert timedelta(seconds=50) < delivery.next_attempt_at - utcnow() <= timedelta(seconds=60)
    assert mailbox.messages == []
    show = _text(client.get(f"{base}/deliveries/{delivery.id}"))
    assert "Greylisted" in show
    assert "try again later" in show

    # Not due yet: the sweep leaves it alone.
    assert sweep_deliveries() == 0
    # The pause is over (as if a minute had passed); the server still defers.
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery.id)
        .values(next_attempt_at=utcnow() - timedelta(seconds=1))
    )
    session.commit()
    assert sweep_deliveries() == 1
    work()
    [delivery] = _deliveries(session, collective)
    assert delivery.attempts == 2
    assert delivery.next_attempt_at - utcnow() > timedelta(minutes=4)  # type: ignore[operator]

    mailbox.answers.clear()
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery.id)
        .values(next_attempt_at=utcnow() - timedelta(seconds=1))
    )
    session.commit()
    assert sweep_deliveries() == 1
    work()
    [delivery] = _deliveries(session, collective)
    assert delivery.status == "sent"
    assert delivery.attempts == 3
    assert len(mailbox.to(ADDRESS)) == 1
    assert _events(session, delivery) == ["send_deferred", "send_deferred", "delivered"]


def test_a_permanent_refusal_fails_shows_the_servers_message_and_can_be_corrected(
    client: FlaskClient, session: Session, work: Any, mailbox: Mailbox, world: Any
) -> None:
    collective, campaign = world
    base = _base(collective, campaign)
    confirm = _close_and_render(client, work, base)
    wrong = "nobody@dwp.example.gov.uk"
    mailbox.answers[wrong] = "550 5.1.1 No such mailbox here"
    assert _send(client, confirm, to=wrong).status_code == 302
    work()
    [failed] = _deliveries(session, collective)
    assert failed.status == "failed"
    assert "No such mailbox here" in failed.last_error
    assert _events(session, failed) == ["send_failed"]
    show = _text(client.get(f"{base}/deliveries/{failed.id}"))
    assert "The mail server refused the letter" in show
    assert "No such mailbox here" in show
    assert "Correct the address and send again" in show
    assert "No such mailbox here" in _text(client.get(f"{base}/delivery"))

    # Corrected: a new delivery with a new key; the failed one stays in the history.
    assert _send(client, confirm).status_code == 302
    work()
    failed_again, sent = _deliveries(session, collective)
    assert failed_again.id == failed.id
    assert failed_again.status == "failed"
    assert sent.status == "sent"
    assert sent.idempotency_key != failed.idempotency_key
    assert sent.message_id != failed.message_id
    assert len(mailbox.to(ADDRESS)) == 1


# --- scheduled -------------------------------------------------------------------------


def test_a_scheduled_delivery_closes_the_campaign_makes_the_pdf_and_sends_on_its_day(
    client: FlaskClient, session: Session, work: Any, mailbox: Mailbox, world: Any
) -> None:
    collective, campaign = world
    base = _base(collective, campaign)
    tomorrow = uk_date(utcnow()) + timedelta(days=1)
    response = form_post(
        client,
        f"{base}/delivery",
        {
            "method": "email",
            "when": "date",
            "scheduled_for": tomorrow.isoformat(),
            "to_email": ADDRESS,
        },
    )
    assert response.status_code == 302, _text(response)[-2000:]
    [delivery] = _deliveries(session, collective)
    assert delivery.status == "scheduled"
    assert delivery.scheduled_for == tomorrow
    assert session.get(Campaign, campaign.id).state == "collecting"  # type: ignore[union-attr]
    assert "Scheduled for" in _text(client.get(f"{base}/deliveries/{delivery.id}"))
    assert sweep_deliveries() == 0  # not yet

    session.execute(update(Delivery).values(scheduled_for=uk_date(utcnow())))
    session.commit()
    assert sweep_deliveries() == 0  # due: closes the campaign, asks for the PDF, waits
    [delivery] = _deliveries(session, collective)
    assert delivery.status == "scheduled"
    assert session.get(Campaign, campaign.id).state == "closed"  # type: ignore[union-attr]
    work("pdf-priority", "pdf")
    assert sweep_deliveries() == 1
    work()
    [delivery] = _deliveries(session, collective)
    assert delivery.status == "sent"
    assert len(mailbox.to(ADDRESS)) == 1
    assert _events(session, delivery) == ["scheduled", "delivered"]


def test_a_delivery_at_the_target_waits_for_it_and_can_be_cancelled(
    client: FlaskClient, session: Session, work: Any, mailbox: Mailbox, world: Any
) -> None:
    collective, campaign = world
    base = _base(collective, campaign)
    data = {"method": "email", "when": "target", "to_email": ADDRESS}
    no_target = form_post(client, f"{base}/delivery", data)
    assert no_target.status_code == 422
    assert "no signature target" in _text(no_target)
    assert _deliveries(session, collective) == []

    session.execute(update(Campaign).values(signature_target=1_000_000))
    session.commit()
    assert form_post(client, f"{base}/delivery", data).status_code == 302
    assert sweep_deliveries() == 0
    [delivery] = _deliveries(session, collective)
    assert delivery.status == "scheduled"
    assert delivery.send_at_target
    show = f"{base}/deliveries/{delivery.id}"
    cancelled = form_post(client, show, {}, action=f"{show}/cancel")
    assert cancelled.status_code == 302
    [delivery] = _deliveries(session, collective)
    assert delivery.status == "cancelled"
    assert sweep_deliveries() == 0
    assert mailbox.messages == []


# --- by post ---------------------------------------------------------------------------


def test_postal_delivery_prints_a_cover_sheet_and_records_the_posting_date(
    client: FlaskClient, session: Session, work: Any, world: Any
) -> None:
    collective, campaign = world
    base = _base(collective, campaign)
    confirm = _close_and_render(client, work, base, method="post")
    assert confirm.endswith("/delivery/post")
    page = _text(client.get(confirm))
    assert "Caxton House" in page
    key = re.search(r'name="key" type="hidden" value="([0-9a-f]{32})"', page)
    assert key, "the confirm page carries the delivery's key"
    prepared = client.post(confirm, data={"csrf_token": csrf_token(page), "key": key[1]})
    assert prepared.status_code == 302, _text(prepared)[-2000:]
    [delivery] = _deliveries(session, collective)
    assert delivery.method == "post"
    assert delivery.status == "pending"
    postal = prepared.headers["Location"]

    # A worker makes the print-ready PDF (never the request); until then the page says so.
    assert "is being made" in _text(client.get(postal))
    assert client.get(f"{base}/deliveries/{delivery.id}/print.pdf").status_code == 404
    work()
    assert "Download the print-ready PDF" in _text(client.get(postal))
    pack = client.get(f"{base}/deliveries/{delivery.id}/print.pdf")
    assert pack.status_code == 200
    assert pack.mimetype == "application/pdf"
    reader = pypdf.PdfReader(io.BytesIO(pack.data))
    document = session.get(Document, delivery.document_id)
    assert document is not None
    assert len(reader.pages) == document.pages + 1
    cover = " ".join(reader.pages[0].extract_text().split())
    assert "Caxton House" in cover
    assert document.sha256 in cover.replace(" ", "")
    assert "/respond/" in cover
    assert "reply.chorus.localhost" in cover

    # A new response link makes a new cover sheet, printing the new link.
    old_link = re.search(r"/respond/\S+", cover)
    assert old_link
    renewed = form_post(
        client,
        f"{base}/deliveries/{delivery.id}",
        {},
        action=f"{base}/deliveries/{delivery.id}/new-link",
    )
    assert renewed.status_code in {200, 302}
    assert client.get(f"{base}/deliveries/{delivery.id}/print.pdf").status_code == 404
    work()
    again = pypdf.PdfReader(
        io.BytesIO(client.get(f"{base}/deliveries/{delivery.id}/print.pdf").data)
    )
    new_cover = " ".join(again.pages[0].extract_text().split())
    assert "/respond/" in new_cover
    assert old_link[0] not in new_cover

    today = uk_date(utcnow())
    future = form_post(
        client, postal, {"posted_on": (today + timedelta(days=1)).isoformat(), "tracking": ""}
    )
    assert future.status_code == 422
    assert "cannot be in the future" in _text(future)
    early = form_post(
        client, postal, {"posted_on": (today - timedelta(days=400)).isoformat(), "tracking": ""}
    )
    assert early.status_code == 422
    assert "before the campaign was published" in _text(early)
    long_ref = form_post(client, postal, {"posted_on": today.isoformat(), "tracking": "X" * 101})
    assert long_ref.status_code == 422
    assert "100 characters or fewer" in _text(long_ref)
    assert _deliveries(session, collective)[0].status == "pending"

    done = form_post(client, postal, {"posted_on": today.isoformat(), "tracking": "AB123456789GB"})
    assert done.status_code == 302, _text(done)[-2000:]
    [delivery] = _deliveries(session, collective)
    assert delivery.status == "sent"
    assert delivery.delivered_on == today
    assert delivery.tracking_reference == "AB123456789GB"
    assert _events(session, delivery) == ["link_reissued", "posted"]
    assert session.get(Campaign, campaign.id).state == "delivered"  # type: ignore[union-attr]
    assert "Day 0 of 20" in _text(client.get(f"{base}/deliveries/{delivery.id}"))


# --- the response link -----------------------------------------------------------------


def test_organiser_revokes_and_reissues_the_response_link(
    client: FlaskClient, session: Session, app: Flask, work: Any, mailbox: Mailbox, world: Any
) -> None:
    collective, campaign = world
    base = _base(collective, campaign)
    _send(client, _close_and_render(client, work, base))
    work()
    [msg] = mailbox.to(ADDRESS)
    old_link = mailbox.link_in(msg, "/respond/")
    [delivery] = _deliveries(session, collective)
    show = f"{base}/deliveries/{delivery.id}"
    assert form_post(client, show, {}, action=f"{show}/revoke-link").status_code == 302
    [delivery] = _deliveries(session, collective)
    assert delivery.response_token_revoked_at is not None
    assert "was revoked" in _text(client.get(show))

    reissued = form_post(client, show, {}, action=f"{show}/new-link")
    assert reissued.status_code == 200
    match = re.search(r'id="new-link"[^>]*value="([^"]+)"', _text(reissued))
    assert match
    new_link = match.group(1)
    assert "/respond/" in new_link
    assert new_link != old_link
    assert new_link not in _text(client.get(show))  # shown once
    [delivery] = _deliveries(session, collective)
    assert delivery.response_token_revoked_at is None
    assert _events(session, delivery)[-2:] == ["link_revoked", "link_reissued"]


# --- who may, and hostile input --------------------------------------------------------


def test_viewers_see_deliveries_but_cannot_deliver(
    client: FlaskClient, other_client: FlaskClient, session: Session, app: Flask, world: Any
) -> None:
    collective, campaign = world
    base = _base(collective, campaign)
    viewer = make_user(session, app)
    add_member(session, collective, viewer, Role.VIEWER)
    login(other_client, viewer)
    page = other_client.get(f"{base}/delivery")
    assert page.status_code == 200
    assert "Only owners and organisers can deliver" in _text(page)
    token = csrf_token(_text(page))
    for path, data in (
        (f"{base}/delivery", {"method": "email", "when": "now"}),
        (f"{base}/delivery/email", {"to_email": ADDRESS}),
        (f"{base}/delivery/post", {}),
    ):
        response = other_client.post(path, data={"csrf_token": token, **data})
        assert response.status_code == 403, path
    assert other_client.get(f"{base}/delivery/email").status_code == 403
    assert _deliveries(session, collective) == []
    assert session.get(Campaign, campaign.id).state == "collecting"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"to_email": "not an address"}, "correct format"),
        ({"to_email": "a@example.org\r\nBcc: victim@example.org"}, "line breaks"),
        ({"to_email": "x" * 300 + "@example.org"}, "254 characters or fewer"),
        ({"to_email": ""}, "Enter the recipient"),
        ({"when": "date", "scheduled_for": "2001-01-01"}, "after today"),
        ({"when": "date", "scheduled_for": "2999-01-01"}, "within a year"),
        ({"when": "date", "scheduled_for": "not-a-date"}, "Not a valid date"),
        ({"when": "date", "scheduled_for": ""}, "Choose the date"),
        ({"when": "sometime"}, "Not a valid choice"),
        ({"method": "post", "when": "date", "scheduled_for": "2999-01-01"}, "can be scheduled"),
    ],
)
def test_hostile_plans_are_refused_with_a_reason_and_nothing_is_written(
    client: FlaskClient, session: Session, world: Any, data: dict[str, str], message: str
) -> None:
    collective, campaign = world
    base = _base(collective, campaign)
    form = {"method": "email", "when": "date", "to_email": ADDRESS, "scheduled_for": ""}
    form.update(data)
    response = form_post(client, f"{base}/delivery", form)
    assert response.status_code == 422, _text(response)[-1500:]
    assert message in _text(response)
    assert _deliveries(session, collective) == []
    assert session.get(Campaign, campaign.id).state == "collecting"  # type: ignore[union-attr]


def test_hostile_send_forms_are_refused_and_nothing_is_sent(
    client: FlaskClient, session: Session, work: Any, mailbox: Mailbox, world: Any
) -> None:
    collective, campaign = world
    base = _base(collective, campaign)
    confirm = _close_and_render(client, work, base)
    page = _text(client.get(confirm))
    key = re.search(r'name="key" type="hidden" value="([0-9a-f]{32})"', page)
    assert key
    good = {"csrf_token": csrf_token(page), "to_email": ADDRESS, "key": key.group(1)}
    for changes, expected in (
        ({"to_email": "x@example.org\nBcc: y@example.org"}, "line breaks"),
        ({"to_email": "@@"}, "correct format"),
        ({"key": "../../etc/passwd"}, "expired"),
        ({"key": "Z" * 5000}, "64 characters or fewer"),
        ({"document_id": "99999999999999999999999"}, "20 characters or fewer"),
        ({"document_id": "12abc"}, "expired"),
        ({"document_id": "999999"}, "has changed since you reviewed it"),
    ):
        response = client.post(confirm, data={**good, **changes})
        assert response.status_code == 422, (changes, _text(response)[-1500:])
        assert expected in _text(response), changes
    assert client.post(confirm, data={**good, "csrf_token": "forged"}).status_code == 400
    assert (
        client.post(confirm, data={k: v for k, v in good.items() if k != "csrf_token"}).status_code
        == 400
    )
    work()
    assert _deliveries(session, collective) == []
    assert mailbox.messages == []
    set_current_collective(session, collective.id)
    assert (
        session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.func == sending.SEND_JOB)
        )
        == 0
    )


def test_another_collectives_campaigns_and_deliveries_are_404(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    app: Flask,
    work: Any,
    mailbox: Mailbox,
    world: Any,
) -> None:
    collective, campaign = world
    base = _base(collective, campaign)
    _send(client, _close_and_render(client, work, base))
    [delivery] = _deliveries(session, collective)
    campaign_id = campaign.id
    stranger = make_user(session, app)
    theirs = make_collective(session, stranger)
    their_slug = theirs.slug
    login(other_client, stranger)
    own_page = other_client.get(f"/app/{their_slug}/campaigns")
    token = csrf_token(_text(own_page)) if "csrf_token" in _text(own_page) else ""
    for path in (
        f"/app/{their_slug}/campaigns/{campaign_id}/delivery",
        f"/app/{their_slug}/campaigns/{campaign_id}/deliveries/{delivery.id}",
        f"/app/{their_slug}/campaigns/{campaign_id}/deliveries/{delivery.id}/print.pdf",
        f"{base}/deliveries/{delivery.id}",  # their slug: not a member
    ):
        assert other_client.get(path).status_code == 404, path
    for path in (
        f"/app/{their_slug}/campaigns/{campaign_id}/deliveries/{delivery.id}/revoke-link",
        f"/app/{their_slug}/campaigns/{campaign_id}/deliveries/{delivery.id}/new-link",
        f"/app/{their_slug}/campaigns/{campaign_id}/delivery/email",
    ):
        assert other_client.post(path, data={"csrf_token": token}).status_code == 404, path
    # A delivery id of this collective under another of its campaigns is a 404 too.
    other_campaign_path = f"/app/{collective.slug}/campaigns/{campaign_id + 10_000}"
    assert client.get(f"{other_campaign_path}/deliveries/{delivery.id}").status_code == 404
    assert client.get(f"{base}/deliveries/{delivery.id + 10_000}").status_code == 404
