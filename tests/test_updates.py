"""Updates to signers: only opted-in verified signers with an address get them, in
batches by a real worker through the real outbox and SMTP server; each carries a
one-click unsubscribe (RFC 8058) that works at once; rate limits say when the next
update may go; a crashed batch never sends anyone a second copy."""

from __future__ import annotations

import dataclasses
import html as htmllib
import itertools
import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from tests.conftest import Mailbox, csrf_token, form_post
from tests.factories import add_member, login, make_user
from tests.test_cross_collective import snapshot
from tests.test_signatures import _published
from web.accounts.models import User
from web.campaigns import services as campaigns
from web.campaigns.models import Campaign
from web.collectives.models import Collective, Membership, Role
from web.emails import send_templated_email
from web.http import database
from web.outbox import OutboxMessage, attach_dispatcher, queue_email
from web.signatures import services as signing
from web.signatures import updates
from web.signatures.models import Signature
from web.signatures.updates import CampaignUpdate
from web.tenancy import set_current_collective, system_scope
from workers.jobs.updates import send_update_batch

_seq = itertools.count(1)


# --- helpers ---------------------------------------------------------------------------


def _add(session: Session, campaign: Campaign, **fields: Any) -> Signature:
    """A signature as the signing flow would store it (verified and opted in unless
    told otherwise)."""
    set_current_collective(session, campaign.collective_id)
    version = campaigns.current_version(session, campaign)
    assert version is not None
    n = next(_seq)
    email = fields.pop("email", f"signer{n}@example.org")
    status = fields.pop("status", "verified")
    values: dict[str, Any] = {
        "campaign_id": campaign.id,
        "letter_version_id": version.id,
        "name": f"Signer {n}",
        "email": email,
        "email_canonical": signing.canonical_email(email) if email else f"offline:{n:064x}",
        "status": status,
        "wants_updates": True,
        "secret_hash": b"\x01" * 32,
        **fields,
    }
    signature = Signature(**values)
    session.add(signature)
    session.flush()
    return signature


def _owner(session: Session, collective: Collective) -> User:
    set_current_collective(session, collective.id)
    membership = session.scalar(select(Membership).where(Membership.role == Role.OWNER))
    assert membership is not None
    user = session.get(User, membership.user_id)
    assert user is not None
    return user


def _membership(session: Session, collective: Collective) -> Membership:
    set_current_collective(session, collective.id)
    membership = session.scalar(select(Membership).where(Membership.role == Role.OWNER))
    assert membership is not None
    return membership


def _page(collective: Collective, campaign: Campaign) -> str:
    return f"/app/{collective.slug}/campaigns/{campaign.id}/updates"


def _updates(session: Session, collective_id: int) -> list[CampaignUpdate]:
    session.expire_all()
    set_current_collective(session, collective_id)
    return list(session.scalars(select(CampaignUpdate).order_by(CampaignUpdate.id)))


def _signature(session: Session, collective_id: int, signature_id: int) -> Signature:
    session.expire_all()
    set_current_collective(session, collective_id)
    signature = session.get(Signature, signature_id)
    assert signature is not None
    return signature


def _send(client: FlaskClient, page: str, subject: str, body: str) -> Any:
    return form_post(client, page, {"subject": subject, "body": body})


def _age_updates(session: Session, hours: int) -> None:
    """Move every update `hours` into the past (the database clock stands still inside
    a test's transaction)."""
    with system_scope(session):
        session.execute(
            update(CampaignUpdate)
            .values(created_at=CampaignUpdate.created_at - timedelta(hours=hours))
            .execution_options(all_collectives=True, synchronize_session=False)
        )
    session.flush()


def _job_session(app: Flask) -> Session:
    s = database(app).new_session()
    attach_dispatcher(s, app.extensions["chorus.dispatcher"])
    return s


def _pending_batch_jobs(session: Session) -> list[OutboxMessage]:
    session.expire_all()
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.func == updates.SEND_BATCH_JOB, OutboxMessage.done_at.is_(None))
            .order_by(OutboxMessage.id)
        )
    )


def _update_emails(session: Session) -> list[OutboxMessage]:
    """Every email in the outbox (the tests that use this queue no other email)."""
    session.expire_all()
    return list(
        session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "email").order_by(OutboxMessage.id)
        )
    )


@pytest.fixture
def world(session: Session, app: Flask) -> tuple[Collective, Campaign]:
    return _published(session, app)


# --- who receives an update ------------------------------------------------------------


def test_only_opted_in_verified_signers_with_an_address_receive_the_update(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, work: Any, world: Any
) -> None:
    collective, campaign = world
    yes_1 = _add(session, campaign, email="yes-one@example.org")
    yes_2 = _add(session, campaign, email="yes-two@example.org", needs_reconsent=True)
    _add(session, campaign, email="no-updates@example.org", wants_updates=False)
    _add(session, campaign, email="pending@example.org", status="pending")
    _add(session, campaign, email="quarantined@example.org", status="quarantined")
    _add(session, campaign, email="rejected@example.org", status="rejected")
    _add(session, campaign, email="withdrawn@example.org", status="withdrawn")
    _add(session, campaign, email="", method="paper", name="Paper Signer")
    other_collective, other_campaign = _published(session, app, slug="other-campaign")
    _add(session, other_campaign, email="elsewhere@example.org")

    owner = _owner(session, collective)
    login(client, owner)
    page = _page(collective, campaign)
    body = client.get(page).get_data(as_text=True)
    assert '<span class="count" id="update-recipients">2</span> signers would receive' in body

    preview = form_post(
        client,
        page,
        {"subject": "We got a meeting", "body": "The minister will see us.\n\nThank you."},
        action=f"{page}/preview",
    )
    assert preview.status_code == 200
    html = preview.get_data(as_text=True)
    assert "Send to 2 signers" in html
    assert "The minister will see us." in html
    assert _updates(session, collective.id) == []  # a preview sends nothing

    # Send as the browser would: the preview's own form, with its hidden fields.
    send_form = html[html.index(f'action="{page}"') :]
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', send_form))
    fields = {name: htmllib.unescape(value) for name, value in fields.items()}
    assert fields["body"] == "The minister will see us.\n\nThank you."
    response = client.post(page, data=fields)
    assert response.status_code == 303
    assert "Sending “We got a meeting” to 2 signers" in client.get(page).get_data(as_text=True)
    work()

    received = sorted(str(m["To"]) for m in mailbox.messages)
    assert received == ["yes-one@example.org", "yes-two@example.org"]
    [msg] = mailbox.to("yes-one@example.org")
    assert msg["Subject"] == "We got a meeting"
    text_part = mailbox.text_of(msg).replace("\r\n", "\n")
    assert f"Hello {yes_1.name}," in text_part
    assert "The minister will see us.\n\nThank you." in text_part
    html_part = msg.get_body(preferencelist=("html",))
    assert html_part is not None
    assert "<p>The minister will see us.</p>" in html_part.get_content()

    # RFC 8058: an https link in angle brackets, and the one-click POST marker.
    link = mailbox.link_in(msg, "/unsubscribe/")
    assert link.startswith(f"https://localhost/{collective.slug}/{campaign.slug}/unsubscribe/")
    assert msg["List-Unsubscribe"] == f"<{link}>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f'href="{link}"' in html_part.get_content()  # the visible link too
    [other] = mailbox.to("yes-two@example.org")
    assert other["List-Unsubscribe"] != msg["List-Unsubscribe"]  # each signer their own

    [row] = _updates(session, collective.id)
    assert (row.status, row.recipient_count, row.sent_count) == ("sent", 2, 2)
    assert row.last_signature_id == yes_2.id
    assert row.sent_at is not None
    page_html = client.get(page).get_data(as_text=True)
    assert "Sent to 2 signers" in page_html
    assert other_collective.id != collective.id


# --- unsubscribing ---------------------------------------------------------------------


def test_one_click_post_without_csrf_unsubscribes_at_once_and_later_updates_skip_them(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    app: Flask,
    mailbox: Mailbox,
    work: Any,
    world: Any,
) -> None:
    collective, campaign = world
    leaver = _add(session, campaign, email="leaver@example.org")
    stayer = _add(session, campaign, email="stayer@example.org")
    leaver_id = leaver.id
    login(client, _owner(session, collective))
    page = _page(collective, campaign)
    assert _send(client, page, "First news", "Something happened.").status_code == 303
    work()
    [msg] = mailbox.to("leaver@example.org")
    path = urlsplit(msg["List-Unsubscribe"].strip("<>")).path

    # Opening the link (as a mail scanner would) changes nothing.
    shown = other_client.get(path)
    assert shown.status_code == 200
    assert "Unsubscribe from updates" in shown.get_data(as_text=True)
    assert _signature(session, collective.id, leaver_id).wants_updates is True

    # The mail client's one-click POST: no session, no CSRF token, this exact body.
    mail_client = app.test_client()
    one_click = mail_client.post(
        path,
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
        base_url="https://localhost",
    )
    assert one_click.status_code == 200
    assert "You are unsubscribed" in one_click.get_data(as_text=True)
    signature = _signature(session, collective.id, leaver_id)
    assert signature.wants_updates is False
    assert signature.unsubscribed_at is not None
    first_moment = signature.unsubscribed_at
    assert signature.status == "verified"  # the signature still counts

    again = mail_client.post(path, data="List-Unsubscribe=One-Click", base_url="https://localhost")
    assert again.status_code == 200  # idempotent
    assert _signature(session, collective.id, leaver_id).unsubscribed_at == first_moment
    assert "You will get no more updates" in other_client.get(path).get_data(as_text=True)

    mailbox.clear()
    _age_updates(session, 25)
    assert "1</span> signer would receive" in client.get(page).get_data(as_text=True)
    assert _send(client, page, "Second news", "More happened.").status_code == 303
    work()
    assert mailbox.to("leaver@example.org") == []
    assert len(mailbox.to("stayer@example.org")) == 1
    assert stayer.id != leaver_id


def test_an_unsubscribe_during_a_send_is_honoured_by_the_remaining_batches(
    session: Session, app: Flask, mailbox: Mailbox, work: Any, world: Any
) -> None:
    collective, campaign = world
    signers = [_add(session, campaign, email=f"batch{i}@example.org") for i in range(5)]
    settings = app.extensions["chorus.settings"]
    with app.app_context():
        s = _job_session(app)
        set_current_collective(s, collective.id)
        row = updates.send_update(
            s,
            _membership(s, collective),
            s.get(Campaign, campaign.id),
            subject="In batches",
            body="Two at a time.",
            batch_size=2,
        )
        s.commit()
        update_id = row.id
        s.close()

    [first] = _pending_batch_jobs(session)
    send_update_batch(first.id)  # the first batch only: signers 0 and 1
    assert len(_update_emails(session)) == 2
    assert [r.payload["after_id"] for r in _pending_batch_jobs(session)] == [signers[1].id]

    # Signer 3 clicks "unsubscribe" in an earlier update's email while the send runs.
    token = updates.unsubscribe_token(settings, signers[3].id)
    path = f"/{collective.slug}/{campaign.slug}/unsubscribe/{token}"
    assert app.test_client().post(path, base_url="https://localhost").status_code == 200

    work()
    got = sorted(str(m["To"]) for m in mailbox.messages)
    assert got == [f"batch{i}@example.org" for i in (0, 1, 2, 4)]
    [done] = [u for u in _updates(session, collective.id) if u.id == update_id]
    assert (done.status, done.recipient_count, done.sent_count) == ("sent", 5, 4)


def test_a_batch_that_fails_half_way_runs_again_without_sending_anyone_twice(
    session: Session, app: Flask, mailbox: Mailbox, work: Any, world: Any
) -> None:
    collective, campaign = world
    good = [_add(session, campaign, email=f"crash{i}@example.org") for i in range(3)]
    # A corrupt address in the middle of the second batch makes the job fail half-way
    # through it, after it has already queued the email of the signer before.
    broken = _add(session, campaign, email="broken@example.org\r\nBcc: victim@example.org")
    last = _add(session, campaign, email="after-the-crash@example.org")
    # Plain ids: jobs share the test's connection and reset its tenant setting.
    second_id, broken_id, last_id = good[1].id, broken.id, last.id
    with app.app_context():
        s = _job_session(app)
        set_current_collective(s, collective.id)
        updates.send_update(
            s,
            _membership(s, collective),
            s.get(Campaign, campaign.id),
            subject="Resilient",
            body="Once each.",
            batch_size=2,
        )
        s.commit()
        s.close()

    work()  # batch 1 goes through; batch 2 (crash2, broken) fails and rolls back
    assert sorted(str(m["To"]) for m in mailbox.messages) == [
        "crash0@example.org",
        "crash1@example.org",
    ]
    [failed] = _pending_batch_jobs(session)
    assert failed.payload["after_id"] == second_id
    assert "line break" in (failed.last_error or "")
    assert len(_update_emails(session)) == 2  # crash2's email was rolled back with it
    [row] = _updates(session, collective.id)
    assert (row.status, row.sent_count, row.last_signature_id) == ("sending", 2, second_id)

    # The organiser's data is fixed; the retry (RQ's, or the reconciler's) runs the
    # same batch from the same cursor.
    with system_scope(session):
        session.execute(
            update(Signature)
            .where(Signature.id == broken_id)
            .values(email="fixed@example.org")
            .execution_options(all_collectives=True, synchronize_session=False)
        )
    session.flush()
    send_update_batch(failed.id)
    send_update_batch(failed.id)  # a duplicate delivery of the job does nothing
    work()
    got = sorted(str(m["To"]) for m in mailbox.messages)
    assert got == sorted(
        [
            "crash0@example.org",
            "crash1@example.org",
            "crash2@example.org",
            "fixed@example.org",
            "after-the-crash@example.org",
        ]
    )
    [row] = _updates(session, collective.id)
    assert (row.status, row.sent_count, row.last_signature_id) == ("sent", 5, last_id)

    # A stale batch (its cursor has moved on) queues nothing.
    with app.app_context():
        s = _job_session(app)
        set_current_collective(s, collective.id)
        settings = app.extensions["chorus.settings"]
        assert updates.send_next_batch(s, settings, row.id, second_id, 2) == 0
        s.rollback()
        s.close()


# --- limits and roles --------------------------------------------------------------------


def test_one_update_a_day_per_campaign_with_a_message_saying_when_the_next_may_go(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, world: Any
) -> None:
    collective, campaign = world
    _add(session, campaign)
    login(client, _owner(session, collective))
    page = _page(collective, campaign)
    assert _send(client, page, "Today", "One.").status_code == 303
    [first] = _updates(session, collective.id)
    next_at = first.created_at + timedelta(hours=24)
    when = f"{next_at:%H:%M} UTC on {next_at.day} {next_at:%B %Y}"

    response = _send(client, page, "Again", "Two.")
    assert response.status_code == 429
    body = response.get_data(as_text=True)
    assert "There is a problem" in body
    assert f"the next one can go from {when}" in body
    assert "Two." in body  # the text the organiser wrote is kept
    assert len(_updates(session, collective.id)) == 1
    assert when in client.get(page).get_data(as_text=True)  # said before they try too

    _age_updates(session, 25)
    assert _send(client, page, "Tomorrow", "Three.").status_code == 303
    assert len(_updates(session, collective.id)) == 2


def test_three_updates_a_day_per_collective(
    client: FlaskClient, session: Session, app: Flask, world: Any
) -> None:
    collective, campaign = world
    _add(session, campaign)
    member = _membership(session, collective)
    for hours_ago in (23, 10, 1):
        draft = campaigns.create_campaign(
            session, member, kind="open_letter", title=f"Other {hours_ago}", slug=f"o{hours_ago}"
        )
        session.add(
            CampaignUpdate(
                campaign_id=draft.id,
                author_id=member.user_id,
                subject="Earlier",
                body="Earlier.",
                status="sent",
            )
        )
        session.flush()
        session.execute(
            text(
                "update campaign_updates set created_at = now() - make_interval(hours => :h)"
                " where campaign_id = :c"
            ),
            {"h": hours_ago, "c": draft.id},
        )
    oldest = session.scalar(select(text("now() - interval '23 hours'")))
    next_at = oldest + timedelta(hours=24)
    login(client, _owner(session, collective))
    response = _send(client, _page(collective, campaign), "Fourth", "Too many.")
    assert response.status_code == 429
    body = response.get_data(as_text=True)
    assert "Your collective has sent 3 updates in the last 24 hours" in body
    assert f"{next_at:%H:%M} UTC on {next_at.day} {next_at:%B %Y}" in body
    assert len(_updates(session, collective.id)) == 3


def test_viewers_see_the_updates_but_only_owners_and_organisers_send(
    client: FlaskClient, other_client: FlaskClient, session: Session, app: Flask, world: Any
) -> None:
    collective, campaign = world
    _add(session, campaign)
    viewer = make_user(session, app, email="viewer@example.org")
    add_member(session, collective, viewer, Role.VIEWER)
    organiser = make_user(session, app, email="organiser@example.org")
    add_member(session, collective, organiser, Role.ORGANISER)
    page = _page(collective, campaign)

    login(client, viewer)
    body = client.get(page).get_data(as_text=True)
    assert "Only owners and organisers can send updates." in body
    assert 'name="subject"' not in body
    before = snapshot(session)
    token = csrf_token(body)
    for action in (page, f"{page}/preview"):
        response = client.post(action, data={"csrf_token": token, "subject": "S", "body": "B"})
        assert response.status_code == 403
        assert "Only owners or organisers of this collective can send updates." in (
            response.get_data(as_text=True)
        )
    assert snapshot(session) == before

    login(other_client, organiser)
    assert _send(other_client, page, "From the organiser", "Hello.").status_code == 303
    [row] = _updates(session, collective.id)
    assert row.author_id == organiser.id
    assert "Person" in other_client.get(page).get_data(as_text=True)  # the author's name


def test_a_draft_or_a_campaign_nobody_opted_into_cannot_send(
    client: FlaskClient, session: Session, app: Flask, world: Any
) -> None:
    collective, campaign = world
    _add(session, campaign, wants_updates=False)
    login(client, _owner(session, collective))
    page = _page(collective, campaign)
    response = _send(client, page, "Nobody", "Hears this.")
    assert response.status_code == 422
    assert "No verified signer has asked for updates yet" in response.get_data(as_text=True)

    draft = campaigns.create_campaign(
        session, _membership(session, collective), kind="open_letter", title="Draft", slug="d"
    )
    draft_page = _page(collective, draft)
    assert "Publish the campaign first" in client.get(draft_page).get_data(as_text=True)
    token = csrf_token(client.get(page).get_data(as_text=True))
    response = client.post(draft_page, data={"csrf_token": token, "subject": "S", "body": "B"})
    assert response.status_code == 422
    assert "Publish the campaign first" in response.get_data(as_text=True)
    assert _updates(session, collective.id) == []


def test_another_collectives_updates_are_out_of_reach(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, work: Any, world: Any
) -> None:
    collective, campaign = world
    theirs = _add(session, campaign, email="theirs@example.org")
    session.add(
        CampaignUpdate(
            campaign_id=campaign.id, subject="Bravo private news", body="Secret.", status="sent"
        )
    )
    session.flush()
    intruder = make_user(session, app, email="intruder@example.org")
    mine, my_campaign = _published(session, app, slug="mine")
    add_member(session, mine, intruder, Role.OWNER)
    login(client, intruder)
    # Plain values: the snapshot below expires every ORM object.
    campaign_id, campaign_slug, their_slug, theirs_id = (
        campaign.id,
        campaign.slug,
        collective.slug,
        theirs.id,
    )
    my_slug, my_campaign_slug = mine.slug, my_campaign.slug
    before = snapshot(session)
    token = csrf_token(client.get(f"/app/{my_slug}/").get_data(as_text=True))
    for slug in (my_slug, their_slug):
        base = f"/app/{slug}/campaigns/{campaign_id}/updates"
        assert client.get(base).status_code == 404
        for action in (base, f"{base}/preview"):
            response = client.post(action, data={"csrf_token": token, "subject": "S", "body": "B"})
            assert response.status_code == 404
            assert "Bravo private news" not in response.get_data(as_text=True)
    assert snapshot(session) == before

    # Their signer's link works only under their campaign's address.
    settings = app.extensions["chorus.settings"]
    link = updates.unsubscribe_token(settings, theirs_id)
    for path in (
        f"/{my_slug}/{my_campaign_slug}/unsubscribe/{link}",
        f"/{my_slug}/{campaign_slug}/unsubscribe/{link}",
    ):
        response = client.post(path)
        assert response.status_code == 404
        assert "This link does not work" in response.get_data(as_text=True)
    assert snapshot(session) == before
    # Control: under its own address the same link works.
    assert client.get(f"/{their_slug}/{campaign_slug}/unsubscribe/{link}").status_code == 200


def test_forged_or_mangled_unsubscribe_links_get_a_404_that_explains(
    client: FlaskClient, session: Session, app: Flask, world: Any
) -> None:
    collective, campaign = world
    signer = _add(session, campaign)
    settings = app.extensions["chorus.settings"]
    good = updates.unsubscribe_token(settings, signer.id)
    base = f"/{collective.slug}/{campaign.slug}/unsubscribe/"
    signature_id, mac = good.split(".")
    forged = [
        f"{signature_id}.{'A' * 43}",
        f"{int(signature_id) + 1}.{mac}",  # a real MAC moved to another id
        good[:-1],
        good + "A",
        "0." + mac,
        "9" * 30 + "." + mac,
        "<script>alert(1)</script>",
        "%FF%FE",
        "x" * 5000,
    ]
    before = snapshot(session)
    for token in forged:
        for method in ("GET", "POST"):
            response = client.open(base + token, method=method)
            assert response.status_code == 404, (token, method)
            body = response.get_data(as_text=True)
            assert "This link does not work" in body or "/" in token, token
            assert "<script>alert(1)</script>" not in body
    assert snapshot(session) == before
    assert client.get(base + good).status_code == 200


# --- hostile input -----------------------------------------------------------------------


def test_hostile_subject_and_body_are_shown_escaped_in_the_email_and_the_pages(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, work: Any, world: Any
) -> None:
    collective, campaign = world
    _add(session, campaign, email="reader@example.org")
    login(client, _owner(session, collective))
    page = _page(collective, campaign)
    subject = "<script>alert(1)</script> \"quoted\" & 'single' {{7*7}}"
    body = 'Line <b>one</b>\nLine "><img src=x onerror=alert(1)>\n\n\u202egnp.exe\u202c & done'
    preview = form_post(client, page, {"subject": subject, "body": body}, action=f"{page}/preview")
    assert preview.status_code == 200
    html = preview.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "<img src=x" not in html
    assert str(escape(subject)) in html
    assert _send(client, page, subject, body).status_code == 303

    work()
    [msg] = mailbox.to("reader@example.org")
    assert msg["Subject"] == subject
    assert body in mailbox.text_of(msg).replace("\r\n", "\n")
    html_part = msg.get_body(preferencelist=("html",))
    assert html_part is not None
    email_html = html_part.get_content()
    assert "<script>alert(1)</script>" not in email_html
    assert "<img src=x" not in email_html
    assert "<b>one</b>" not in email_html
    img = escape('"><img src=x onerror=alert(1)>')
    assert f"<p>Line {escape('<b>one</b>')}<br>Line {img}</p>" in email_html

    listing = client.get(page).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in listing
    assert "<img src=x" not in listing
    assert str(escape(subject)) in listing
    [row] = _updates(session, collective.id)
    assert (row.subject, row.body) == (subject, body)  # stored as written


@pytest.mark.parametrize(
    ("subject", "body", "status", "says"),
    [
        ("Hi\r\nBcc: victim@example.org", "Body.", 422, "Remove the line breaks"),
        ("Hi\nthere", "Body.", 422, "Remove the line breaks"),
        ("\u202eevil", "Body.", 422, "text-direction"),
        ("x" * 151, "Body.", 422, "150 characters or fewer"),
        ("Subject", "x" * 10_001, 422, "10000 characters or fewer"),
        ("", "Body.", 422, "Enter a subject"),
        ("Subject", "   ", 422, "Enter the message"),
        ("Sub\x00ject", "Body.", 400, "null character"),
        ("Subject", "Bo\x00dy", 400, "null character"),
        # Werkzeug may refuse the body before the form sees it (413), or the form does.
        ("Subject", "x" * (1024 * 1024), {413, 422}, r"too large|10000 characters or fewer"),
    ],
)
@pytest.mark.parametrize("step", ["preview", "send"])
def test_bad_subjects_and_bodies_are_refused_with_a_message_and_write_nothing(
    client: FlaskClient,
    session: Session,
    app: Flask,
    world: Any,
    step: str,
    subject: str,
    body: str,
    status: int | set[int],
    says: str,
) -> None:
    collective, campaign = world
    _add(session, campaign)
    login(client, _owner(session, collective))
    page = _page(collective, campaign)
    action = f"{page}/preview" if step == "preview" else page
    before = snapshot(session)
    response = form_post(client, page, {"subject": subject, "body": body}, action=action)
    assert response.status_code in (status if isinstance(status, set) else {status})
    assert re.search(says, response.get_data(as_text=True).replace(",", ""))
    assert snapshot(session) == before


def test_invalid_utf8_and_missing_csrf_are_refused(
    client: FlaskClient, session: Session, app: Flask, world: Any
) -> None:
    collective, campaign = world
    _add(session, campaign)
    login(client, _owner(session, collective))
    page = _page(collective, campaign)
    token = csrf_token(client.get(page).get_data(as_text=True))
    before = snapshot(session)
    raw = f"csrf_token={token}&subject=%FF%FE&body=".encode() + b"\xff\xfe"
    response = client.post(page, data=raw, content_type="application/x-www-form-urlencoded")
    assert response.status_code in (400, 422)
    assert "not valid text" in response.get_data(as_text=True) or "There is a problem" in (
        response.get_data(as_text=True)
    )
    response = client.post(page, data={"subject": "S", "body": "B"})
    assert response.status_code == 400
    assert "has expired" in response.get_data(as_text=True)
    assert snapshot(session) == before


def test_email_headers_with_line_breaks_are_refused_before_anything_is_queued(
    session: Session, app: Flask
) -> None:
    settings = app.extensions["chorus.settings"]
    cases: list[dict[str, Any]] = [
        {"subject": "Hi\r\nBcc: victim@example.org"},
        {"to": "a@example.org\nBcc: victim@example.org"},
        {"headers": {"List-Unsubscribe": "<https://x>\r\nBcc: victim@example.org"}},
        {"headers": {"X-Evil\r\nBcc": "victim@example.org"}},
        {"headers": {"Bad: name": "value"}},
        {"headers": {"To": "second@example.org"}},  # the mailer writes To itself
    ]
    with app.app_context():
        for case in cases:
            arguments = {
                "to": "ok@example.org",
                "subject": "Fine",
                "text_body": "Text.",
                "html_body": "<p>HTML.</p>",
                **case,
            }
            with pytest.raises(ValueError, match=r"line break|header name|sets"):
                queue_email(session, **arguments)
        with pytest.raises(ValueError, match="line break"):
            send_templated_email(
                session,
                settings,
                to="ok@example.org",
                template="verify_email",
                subject="Fine",
                context={"user": None, "link": "https://localhost/"},
                headers={"List-Unsubscribe-Post": "x\ny"},
            )
    assert session.scalar(select(OutboxMessage.id).limit(1)) is None


def test_unsubscribe_tokens_are_256_bit_hmacs_bound_to_one_signature(app: Flask) -> None:
    settings = app.extensions["chorus.settings"]
    token = updates.unsubscribe_token(settings, 42)
    signature_id, mac = token.split(".")
    assert signature_id == "42"
    assert len(mac) == 43  # 32 bytes, base64url
    assert updates.check_unsubscribe_token(settings, token) == 42
    assert updates.unsubscribe_token(settings, 43) != token
    assert updates.check_unsubscribe_token(settings, f"43.{mac}") is None
    other = dataclasses.replace(settings, secret_key="another " * 8)
    assert updates.check_unsubscribe_token(other, token) is None


def test_the_send_pages_through_signers_by_id_with_the_partial_index(
    session: Session, app: Flask, world: Any
) -> None:
    """The batch query's plan uses ix_signatures_update_recipients, so a batch reads
    only its own rows however large the campaign."""
    _collective, campaign = world
    session.execute(text("set local enable_seqscan = off"))
    plan = "\n".join(
        row[0]
        for row in session.execute(
            text(
                "explain select id, name, email from signatures where campaign_id = :c"
                " and wants_updates and status = 'verified' and email <> '' and id > 0"
                " order by id limit 500"
            ).bindparams(c=campaign.id)
        )
    )
    assert "ix_signatures_update_recipients" in plan
