"""Signatory self-service and re-consent (#4 §7), through the real outbox, RQ worker and
SMTP server: a signer follows the private link in their confirmation email to see,
change, withdraw or erase their signature; after a new version of the letter, signers of
the old one get exactly one email asking them to confirm the new text."""

from __future__ import annotations

import hashlib
import re
import time
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer
from markupsafe import escape
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from tests.conftest import Mailbox, csrf_token
from tests.factories import login, make_collective, make_user
from tests.test_cross_collective import snapshot
from web import tokens
from web.accounts.models import User
from web.campaigns import services as campaigns
from web.campaigns.models import Campaign, LetterVersion
from web.collectives.models import Collective, Membership
from web.db import utcnow
from web.http import database
from web.outbox import OutboxMessage, attach_dispatcher, enqueue_job
from web.recipients.models import Recipient
from web.signatures import selfservice
from web.signatures import services as signing
from web.signatures.models import Signature
from web.tenancy import set_current_collective, system_scope
from workers.jobs.reconsent import JOB

RECONSENT_SUBJECT = "The letter you signed has changed"


@pytest.fixture
def committing(session: Session, app: Flask) -> Session:
    """The test's session, committing like a request: jobs leave after commit."""
    attach_dispatcher(session, app.extensions["chorus.dispatcher"])
    return session


def _published(session: Session, app: Flask, slug: str = "fair-pip") -> tuple[Collective, Campaign]:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    set_current_collective(session, collective.id)
    member = _member(session)
    with system_scope(session):
        recipient = Recipient(
            key=f"dwp-{time.monotonic_ns()}",
            kind="ministerial_department",
            name="Department for Work and Pensions",
        )
        session.add(recipient)
        session.flush()
    campaign = campaigns.create_campaign(
        session, member, kind="open_letter", title="Fair PIP", slug=slug
    )
    campaigns.update_settings(
        session,
        member,
        campaign,
        title="Fair PIP",
        slug=slug,
        recipient_id=recipient.id,
        addressee_name="",
        addressee_role="Secretary of State",
        audience_style="minister",
        signature_target=None,
        closes_on=None,
    )
    _save_letter(session, campaign, "Delays to PIP assessments")
    campaigns.publish(session, member, collective, campaign)
    session.flush()
    return collective, campaign


def _member(session: Session) -> Membership:
    member = session.scalar(select(Membership).order_by(Membership.id.desc()).limit(1))
    assert member is not None
    return member


def _save_letter(session: Session, campaign: Campaign, subject: str) -> None:
    campaigns.save_letter(
        session,
        _member(session),
        campaign,
        subject=subject,
        summary="People wait months for a decision.",
        body_markdown="We ask for a plan to clear the backlog.",
        asks=["Publish a plan to clear the backlog"],
        evidence_links=[],
    )


def _new_version(session: Session, collective: Collective, campaign: Campaign, subject: str) -> Any:
    set_current_collective(session, collective.id)
    _save_letter(session, campaign, subject)
    return campaigns.publish(session, _member(session), collective, campaign)


def _page(collective: Collective, campaign: Campaign) -> str:
    return f"/{collective.slug}/{campaign.slug}"


def _sign(client: FlaskClient, page: str, **fields: Any) -> Any:
    """The signing form as a person fills it in (after the minimum fill time)."""
    html = client.get(page).get_data(as_text=True)
    shown_at = URLSafeTimedSerializer(client.application.secret_key or "", salt="sign-form")
    data = {
        "csrf_token": csrf_token(html),
        "started": shown_at.dumps(int(time.time()) - 60),
        "name": "Sam Signer",
        "email": "sam@example.org",
        "postcode": "",
        "statement": "",
        "website": "",
        **fields,
    }
    response = client.post(f"{page}/sign", data=data)
    assert response.status_code == 303, response.get_data(as_text=True)
    return response


def _confirmation(mailbox: Mailbox, address: str) -> EmailMessage:
    [msg] = [m for m in mailbox.to(address) if "Confirm your signature" in str(m["Subject"])]
    return msg


def _links(mailbox: Mailbox, msg: EmailMessage) -> tuple[str, str]:
    """(confirmation link, "your signature" link) as paths."""
    confirm = urlsplit(mailbox.link_in(msg, "/confirm/")).path
    manage = urlsplit(mailbox.link_in(msg, "/signature/")).path
    return confirm, manage


def _sign_and_confirm(
    client: FlaskClient, mailbox: Mailbox, work: Any, page: str, email: str = "sam@example.org"
) -> str:
    """Sign, confirm by the emailed link, and return the "your signature" link."""
    _sign(client, page, email=email)
    work()
    confirm, manage = _links(mailbox, _confirmation(mailbox, email))
    html = client.get(confirm).get_data(as_text=True)
    assert client.post(confirm, data={"csrf_token": csrf_token(html)}).status_code == 303
    return manage


def _post(client: FlaskClient, page: str, action: str, data: dict[str, Any] | None = None) -> Any:
    html = client.get(page).get_data(as_text=True)
    return client.post(action, data={"csrf_token": csrf_token(html), **(data or {})})


def _count(session: Session, campaign: Campaign) -> int:
    session.expire_all()
    set_current_collective(session, campaign.collective_id)
    return signing.verified_count(session, campaign)


def _signatures(session: Session, campaign: Campaign) -> list[Signature]:
    session.expire_all()
    set_current_collective(session, campaign.collective_id)
    return list(
        session.scalars(
            select(Signature).where(Signature.campaign_id == campaign.id).order_by(Signature.id)
        )
    )


def _input(html: str, field_id: str) -> str:
    match = re.search(rf'<input[^>]*id="{field_id}"[^>]*>', html)
    assert match, field_id
    return match.group(0)


def _reconsent_emails(mailbox: Mailbox, address: str) -> list[EmailMessage]:
    return [m for m in mailbox.to(address) if RECONSENT_SUBJECT in str(m["Subject"])]


# --- the private link -------------------------------------------------------------------


def test_the_confirmation_email_links_to_a_private_page_showing_what_is_stored(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, work: Any
) -> None:
    collective, campaign = _published(session, app)
    page = _page(collective, campaign)
    _sign(client, page, postcode="sw1a1aa", statement="My own words.", wants_updates="y")
    work()
    msg = _confirmation(mailbox, "sam@example.org")
    confirm, manage = _links(mailbox, msg)
    html_part = msg.get_body(preferencelist=("html",))
    assert html_part is not None
    assert f'href="https://localhost{manage}"' in str(html_part.get_content())
    assert "withdraw it or erase your details" in mailbox.text_of(msg)
    assert manage.startswith(f"{page}/signature/")
    # A secret of its own, not the confirmation link's, stored as SHA-256 only.
    manage_secret = manage.rsplit(".", 1)[1]
    assert manage_secret != confirm.rsplit(".", 1)[1]
    assert len(manage_secret) >= 22  # 128+ bits in URL-safe base64
    [signature] = _signatures(session, campaign)
    assert signature.manage_secret_hash == hashlib.sha256(manage_secret.encode()).digest()

    response = client.get(manage)
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    for shown in ("Sam Signer", "sam@example.org", "SW1A 1AA", "My own words.", "Version 1"):
        assert shown in body
    assert "Not confirmed yet" in body
    assert "Send me updates about this campaign</dt><dd>Yes" in body
    assert response.headers["X-Robots-Tag"] == "noindex, nofollow"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cache-Control"] == "no-store"
    assert '<meta name="robots" content="noindex, nofollow">' in body

    html = client.get(confirm).get_data(as_text=True)
    client.post(confirm, data={"csrf_token": csrf_token(html)})
    body = client.get(manage).get_data(as_text=True)
    assert "Confirmed and counted." in body
    assert "Confirmed on</dt><dd>Not confirmed" not in body


def test_withdrawing_takes_the_signature_out_of_the_count_at_once(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, work: Any
) -> None:
    collective, campaign = _published(session, app)
    page = _page(collective, campaign)
    _sign_and_confirm(client, mailbox, work, page, email="other@example.org")
    manage = _sign_and_confirm(client, mailbox, work, page)
    assert _count(session, campaign) == 2

    response = _post(client, manage, f"{manage}/withdraw")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(manage)
    assert _count(session, campaign) == 1
    signature = _signatures(session, campaign)[1]
    assert signature.status == "withdrawn"
    assert signature.name == "Sam Signer"  # kept, so the signer can still see it
    body = client.get(manage).get_data(as_text=True)
    assert "Your signature is withdrawn. It is no longer counted." in body
    assert "Withdrawn by you: not counted." in body
    assert "Withdraw my signature" not in body
    assert '<span class="count">1</span> verified signature.' in client.get(page).get_data(
        as_text=True
    )

    # Twice is harmless, and the reconciler finds nothing to repair.
    assert _post(client, manage, f"{manage}/withdraw").status_code == 303
    assert _count(session, campaign) == 1
    assert signing.reconcile_counts(session, campaign.id) == (1, 1)
    # The old confirmation link cannot bring it back.
    confirm, _ = _links(mailbox, _confirmation(mailbox, "sam@example.org"))
    assert client.get(confirm).status_code == 404


def test_a_pending_signature_can_be_withdrawn_without_touching_the_count(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, work: Any
) -> None:
    collective, campaign = _published(session, app)
    _sign(client, _page(collective, campaign))
    work()
    _, manage = _links(mailbox, _confirmation(mailbox, "sam@example.org"))
    assert _post(client, manage, f"{manage}/withdraw").status_code == 303
    assert _count(session, campaign) == 0
    assert signing.reconcile_counts(session, campaign.id) == (0, 0)


def test_a_rejected_signature_cannot_be_withdrawn_but_can_be_erased(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, work: Any
) -> None:
    collective, campaign = _published(session, app)
    _sign(client, _page(collective, campaign))
    work()
    _, manage = _links(mailbox, _confirmation(mailbox, "sam@example.org"))
    session.execute(update(Signature).values(status="rejected"))
    response = _post(client, manage, f"{manage}/withdraw")
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "The organisers did not accept this signature" in body
    assert "There is a problem" in body
    assert [s.status for s in _signatures(session, campaign)] == ["rejected"]
    assert _post(client, f"{manage}/erase", f"{manage}/erase").status_code == 303
    assert _signatures(session, campaign) == []


def test_choices_can_be_changed_and_take_effect_at_once(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, work: Any
) -> None:
    collective, campaign = _published(session, app)
    page = _page(collective, campaign)
    _sign(client, page, show_name="y")
    work()
    confirm, manage = _links(mailbox, _confirmation(mailbox, "sam@example.org"))
    client.post(
        confirm, data={"csrf_token": csrf_token(client.get(confirm).get_data(as_text=True))}
    )
    assert "Sam Signer" in client.get(page).get_data(as_text=True)

    response = _post(client, manage, f"{manage}/preferences", {"wants_updates": "y"})
    assert response.status_code == 303
    [signature] = _signatures(session, campaign)
    assert (signature.show_name, signature.wants_updates) == (False, True)
    body = client.get(manage).get_data(as_text=True)
    assert "Your choices are saved." in body
    assert "Sam Signer" not in client.get(page).get_data(as_text=True)
    assert "checked" in _input(body, "wants_updates")
    assert "checked" not in _input(body, "show_name")
    assert _count(session, campaign) == 1


# --- erasing ---------------------------------------------------------------------------


def test_erasing_before_delivery_deletes_the_signature(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, work: Any
) -> None:
    collective, campaign = _published(session, app)
    page = _page(collective, campaign)
    manage = _sign_and_confirm(client, mailbox, work, page)
    assert _count(session, campaign) == 1

    confirm_page = client.get(f"{manage}/erase")
    assert confirm_page.status_code == 200
    assert "Are you sure you want to erase your details?" in confirm_page.get_data(as_text=True)
    assert _count(session, campaign) == 1  # asking changes nothing

    response = _post(client, f"{manage}/erase", f"{manage}/erase")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"{page}/signature-erased")
    assert _signatures(session, campaign) == []
    assert _count(session, campaign) == 0
    assert signing.reconcile_counts(session, campaign.id) == (0, 0)
    done = client.get(response.headers["Location"])
    assert "Your details are erased" in done.get_data(as_text=True)
    assert "anonymous record remains" not in done.get_data(as_text=True)
    # The sent emails' records no longer name the address.
    with system_scope(session):
        recipients = session.scalars(
            select(OutboxMessage.payload["to"].astext).where(
                OutboxMessage.collective_id == collective.id, OutboxMessage.kind == "email"
            )
        ).all()
    assert recipients
    assert "sam@example.org" not in recipients

    gone = client.get(manage)
    assert gone.status_code == 404
    assert "This link is not valid" in gone.get_data(as_text=True)
    # The person may sign again: it is a new signature.
    _sign(client, page)
    assert [s.status for s in _signatures(session, campaign)] == ["pending"]


def test_erasing_after_delivery_keeps_an_anonymous_tombstone(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, work: Any
) -> None:
    collective, campaign = _published(session, app)
    page = _page(collective, campaign)
    manage = _sign_and_confirm(client, mailbox, work, page)
    [before] = _signatures(session, campaign)
    verified_at, version_id, signature_id = before.verified_at, before.letter_version_id, before.id
    session.execute(update(Campaign).where(Campaign.id == campaign.id).values(state="delivered"))

    erase_page = client.get(f"{manage}/erase").get_data(as_text=True)
    assert "we keep an anonymous record" in erase_page
    response = _post(client, f"{manage}/erase", f"{manage}/erase")
    assert response.status_code == 303
    assert "anonymous record remains" in client.get(response.headers["Location"]).get_data(
        as_text=True
    )

    [tomb] = _signatures(session, campaign)
    assert tomb.id == signature_id
    assert tomb.status == "erased"
    assert (tomb.name, tomb.postcode, tomb.statement, tomb.ip_hash) == ("", "", "", "")
    assert "@" not in tomb.email
    assert "@" not in tomb.email_canonical
    assert "sam" not in tomb.email_canonical
    assert tomb.manage_secret_hash is None
    assert tomb.reconsent_secret_hash is None
    assert tomb.secret_hash == b"\0" * 32
    assert (tomb.method, tomb.letter_version_id, tomb.verified_at) == (
        "online",
        version_id,
        verified_at,
    )
    assert _count(session, campaign) == 0
    assert signing.reconcile_counts(session, campaign.id) == (0, 0)
    assert client.get(manage).status_code == 404

    # The organisers see it counted as erased, under a plain label.
    owner = session.scalar(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.collective_id == collective.id)
    )
    assert owner is not None
    login(client, owner)
    counts = client.get(f"/app/{collective.slug}/campaigns/{campaign.id}/signatures/")
    assert counts.status_code == 200
    assert "Erased by the signer" in counts.get_data(as_text=True)


# --- wrong links and hostile input ----------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "1." + "A" * 43,
        "%00",
        "%FF%FE",
        "9" * 5000,
        "1.%3Cscript%3E",
        "99999999999999999999999." + "a" * 43,
        "{id}." + "A" * 43,  # the right signature, a guessed secret
        "{confirm}",  # the confirmation link's token is not this link's
    ],
    ids=["unknown", "nul", "bad-utf8", "huge", "xss", "overflow", "guessed", "confirm-token"],
)
def test_wrong_or_hostile_links_are_a_404_that_explains_and_changes_nothing(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, work: Any, token: str
) -> None:
    collective, campaign = _published(session, app)
    page = _page(collective, campaign)
    _sign(client, page)
    work()
    confirm, manage = _links(mailbox, _confirmation(mailbox, "sam@example.org"))
    [signature] = _signatures(session, campaign)
    token = token.format(id=signature.id, confirm=confirm.rsplit("/", 1)[1])
    csrf = csrf_token(client.get(manage).get_data(as_text=True))
    before = snapshot(session)
    base = f"{page}/signature/{token}"
    for method, url in [
        ("GET", base),
        ("GET", f"{base}/erase"),
        ("GET", f"{base}/reconsent"),
        ("POST", f"{base}/preferences"),
        ("POST", f"{base}/withdraw"),
        ("POST", f"{base}/erase"),
        ("POST", f"{base}/reconsent"),
    ]:
        response = client.open(
            url,
            method=method,
            data={"csrf_token": csrf, "show_name": "y"} if method == "POST" else None,
        )
        assert response.status_code == 404, (method, url, response.status_code)
        body = response.get_data(as_text=True)
        assert "<h1>" in body
        assert "Traceback" not in body
        assert "This link is not valid" in body or "There is nothing here" in body
        assert "Sam Signer" not in body
    assert snapshot(session) == before


def test_a_link_works_only_under_its_own_campaign(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, work: Any
) -> None:
    collective, campaign = _published(session, app, slug="first")
    _sign(client, _page(collective, campaign))
    work()
    _, manage = _links(mailbox, _confirmation(mailbox, "sam@example.org"))
    token = manage.rsplit("/", 1)[1]
    other_collective, other = _published(session, app, slug="second")
    response = client.get(f"{_page(other_collective, other)}/signature/{token}")
    assert response.status_code == 404
    assert "Sam Signer" not in response.get_data(as_text=True)
    assert client.get(f"{_page(collective, campaign)}/signature/{token}").status_code == 200


@pytest.mark.parametrize(
    "name", ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "{{7*7}}"]
)
def test_hostile_details_are_shown_escaped(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, work: Any, name: str
) -> None:
    collective, campaign = _published(session, app)
    statement = f"{name}\nsecond line \u202eoverride"
    _sign(client, _page(collective, campaign), name=name, statement=statement)
    work()
    _, manage = _links(mailbox, _confirmation(mailbox, "sam@example.org"))
    for url in (manage, f"{manage}/erase"):
        body = client.get(url).get_data(as_text=True)
        if "<" in name:
            assert name not in body
        if url == manage:
            assert str(escape(name)) in body
            assert "\u202e" in body  # stored as written, shown as text


@pytest.mark.parametrize(
    ("data", "status", "says"),
    [
        ({"show_name": "y\x00"}, 400, "null character"),
        # A checkbox stores only yes or no, whatever was sent.
        ({"show_name": "x" * 1_000_000, "wants_updates": "y"}, 303, None),
        ({"show_name": ["y", "n"], "wants_updates": "<script>"}, 303, None),
        ({"csrf_token": ""}, 400, "has expired"),
    ],
    ids=["nul", "1mb", "list-and-xss", "no-csrf"],
)
def test_hostile_choices_get_a_clear_answer(
    client: FlaskClient,
    session: Session,
    app: Flask,
    mailbox: Mailbox,
    work: Any,
    data: dict[str, Any],
    status: int,
    says: str | None,
) -> None:
    collective, campaign = _published(session, app)
    _sign(client, _page(collective, campaign))
    work()
    _, manage = _links(mailbox, _confirmation(mailbox, "sam@example.org"))
    before = snapshot(session)
    response = _post(client, manage, f"{manage}/preferences", data)
    assert response.status_code == status
    if says:
        assert says in response.get_data(as_text=True)
        assert snapshot(session) == before
    else:
        [signature] = _signatures(session, campaign)
        assert (signature.show_name, signature.wants_updates) == (True, True)


def test_invalid_utf8_in_a_form_is_a_readable_400(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, work: Any
) -> None:
    collective, campaign = _published(session, app)
    _sign(client, _page(collective, campaign))
    work()
    _, manage = _links(mailbox, _confirmation(mailbox, "sam@example.org"))
    token = csrf_token(client.get(manage).get_data(as_text=True))
    before = snapshot(session)
    response = client.post(
        f"{manage}/withdraw",
        data=b"csrf_token=" + token.encode() + b"&x=\xff\xfe",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    assert "not valid text" in response.get_data(as_text=True)
    assert snapshot(session) == before


# --- re-consent --------------------------------------------------------------------------


def _verified(session: Session, campaign: Campaign, **values: Any) -> Signature:
    """A verified signature on the campaign's current version, written directly."""
    version = campaigns.current_version(session, campaign)
    assert version is not None
    email = values.get("email", "")
    signature = Signature(
        collective_id=campaign.collective_id,
        campaign_id=campaign.id,
        letter_version_id=version.id,
        name=values.pop("name", "Someone"),
        email=email,
        email_canonical=email or f"offline:{time.monotonic_ns()}",
        status="verified",
        verified_at=utcnow(),
        secret_hash=b"\1" * 32,
        **{k: v for k, v in values.items() if k != "email"},
    )
    session.add(signature)
    session.flush()
    signing.reconcile_counts(session, campaign.id)
    return signature


def test_a_new_version_emails_each_earlier_signer_once_and_reconfirming_counts_again(
    client: FlaskClient,
    committing: Session,
    app: Flask,
    mailbox: Mailbox,
    work: Any,
) -> None:
    session = committing
    collective, campaign = _published(session, app)
    page = _page(collective, campaign)
    manage = _sign_and_confirm(client, mailbox, work, page)  # verified, online
    _sign(client, page, email="pending@example.org")  # never confirms
    set_current_collective(session, collective.id)
    _verified(session, campaign, method="paper", channel="paper")  # no email address
    withdrawn = _verified(session, campaign, email="gone@example.org")
    withdrawn.status = "withdrawn"
    signing.reconcile_counts(session, campaign.id)
    assert _count(session, campaign) == 2  # Sam and the paper signature
    work()  # the pending signer's confirmation email
    mailbox.clear()

    v2 = _new_version(session, collective, campaign, "Delays to PIP assessments, revised")
    assert _count(session, campaign) == 0  # they count only for version 1 now
    session.commit()  # the re-consent job leaves after commit
    work()
    [msg] = _reconsent_emails(mailbox, "sam@example.org")
    assert len(mailbox.messages) == 1  # nobody else: pending, withdrawn, no email
    text_part = mailbox.text_of(msg)
    assert "You signed version 1" in text_part
    assert f"{page}/versions/2" in text_part
    assert "This is the only email we send you about version 2." in text_part

    # A second run for the same version sends nothing.
    set_current_collective(session, collective.id)
    enqueue_job(
        session,
        JOB,
        payload={"campaign_id": campaign.id, "version_id": v2.id},
        collective_id=collective.id,
    )
    session.commit()
    work()
    assert len(mailbox.messages) == 1

    link = urlsplit(mailbox.link_in(msg, "/reconsent")).path
    reconsent = client.get(link)
    assert reconsent.status_code == 200
    body = reconsent.get_data(as_text=True)
    assert "The letter has changed since you signed" in body
    assert "Delays to PIP assessments, revised" in body  # the change itself
    assert "I still sign the new version" in body
    assert reconsent.headers["X-Robots-Tag"] == "noindex, nofollow"
    # The same link opens the signer's page too, which points back here.
    assert "See what changed and confirm the new version" in client.get(
        link.removesuffix("/reconsent")
    ).get_data(as_text=True)
    # The confirmation email's link still works too.
    assert client.get(manage).status_code == 200

    response = client.post(link, data={"csrf_token": csrf_token(body), "version_id": str(v2.id)})
    assert response.status_code == 303
    assert _count(session, campaign) == 1
    sam = next(s for s in _signatures(session, campaign) if s.email == "sam@example.org")
    assert sam.letter_version_id == v2.id
    assert not sam.needs_reconsent
    assert sam.reconsent_version_id == v2.id
    assert "your signature now counts for the new version" in client.get(manage).get_data(
        as_text=True
    )
    # Twice is harmless.
    again = client.post(link, data={"csrf_token": csrf_token(body), "version_id": str(v2.id)})
    assert again.status_code == 303
    assert _count(session, campaign) == 1
    assert signing.reconcile_counts(session, campaign.id) == (1, 1)
    assert "Your signature is on the current letter" in client.get(link).get_data(as_text=True)


def test_the_job_pages_through_signers_in_batches_and_never_asks_twice(
    committing: Session, app: Flask, mailbox: Mailbox, work: Any
) -> None:
    session = committing
    collective, campaign = _published(session, app)
    set_current_collective(session, collective.id)
    addresses = [f"signer{i}@example.org" for i in range(5)]
    for address in addresses:
        _verified(session, campaign, email=address)
    session.commit()
    # Publish version 2 where nothing is dispatched: its run waits in the outbox (as if
    # Redis had lost it) while a run in batches of 2 goes first.
    quiet = database(app).new_session()
    set_current_collective(quiet, collective.id)
    quiet_campaign = quiet.get(Campaign, campaign.id)
    quiet_collective = quiet.get(Collective, collective.id)
    assert quiet_campaign is not None
    assert quiet_collective is not None
    v2 = _new_version(quiet, quiet_collective, quiet_campaign, "A second text")
    quiet.commit()
    quiet.close()
    session.expire_all()
    set_current_collective(session, collective.id)
    enqueue_job(
        session,
        JOB,
        payload={"campaign_id": campaign.id, "version_id": v2.id, "batch": 2},
        collective_id=collective.id,
    )
    session.commit()
    work()
    for address in addresses:
        assert len(_reconsent_emails(mailbox, address)) == 1, address
    assert len(mailbox.messages) == 5
    ids = [s.id for s in _signatures(session, campaign)]
    with system_scope(session):
        runs = session.execute(
            select(
                OutboxMessage.id, OutboxMessage.queue, OutboxMessage.payload, OutboxMessage.done_at
            )
            .where(OutboxMessage.func == JOB, OutboxMessage.collective_id == collective.id)
            .order_by(OutboxMessage.id)
        ).all()
    batched = [r for r in runs if r.payload.get("batch") == 2]
    assert [r.payload.get("after_id", 0) for r in batched] == [0, ids[1], ids[3]]
    assert all(r.done_at is not None for r in batched)
    [late] = [r for r in runs if r.done_at is None]  # the publication's own run

    # The reconciler's way: the late run finds everyone already asked.
    app.extensions["chorus.dispatcher"].dispatch([(late.id, late.queue, JOB)])
    work()
    assert len(mailbox.messages) == 5

    # Version 3 asks everyone again, once, about version 3; a run for version 2 now asks
    # nobody (it is superseded).
    mailbox.clear()
    v3 = _new_version(session, collective, campaign, "A third text")
    enqueue_job(
        session,
        JOB,
        payload={"campaign_id": campaign.id, "version_id": v2.id},
        collective_id=collective.id,
    )
    session.commit()
    work()
    assert len(mailbox.messages) == 5
    assert all("published version 3" in mailbox.text_of(m) for m in mailbox.messages)
    assert {s.reconsent_version_id for s in _signatures(session, campaign)} == {v3.id}


def test_a_stale_or_hostile_version_in_the_reconsent_form_changes_nothing(
    client: FlaskClient, committing: Session, app: Flask, mailbox: Mailbox, work: Any
) -> None:
    session = committing
    collective, campaign = _published(session, app)
    manage = _sign_and_confirm(client, mailbox, work, _page(collective, campaign))
    v2 = _new_version(session, collective, campaign, "Second")
    session.commit()
    link = f"{manage}/reconsent"
    shown = client.get(link).get_data(as_text=True)
    assert f'value="{v2.id}"' in shown
    _new_version(session, collective, campaign, "Third")  # published while Sam reads
    session.commit()
    before = snapshot(session)
    for value in (str(v2.id), "<script>", "9" * 40, "", "\u0663"):
        response = client.post(link, data={"csrf_token": csrf_token(shown), "version_id": value})
        assert response.status_code == 422, value
        body = response.get_data(as_text=True)
        assert "The letter has changed again" in body
        assert "Third" in body  # the newest changes are shown
        assert "<script>" not in body
    assert snapshot(session) == before
    assert _count(session, campaign) == 0


def test_confirming_an_old_version_after_a_new_one_asks_about_the_new_text(
    client: FlaskClient, committing: Session, app: Flask, mailbox: Mailbox, work: Any
) -> None:
    session = committing
    collective, campaign = _published(session, app)
    page = _page(collective, campaign)
    _sign(client, page)
    work()
    confirm, _ = _links(mailbox, _confirmation(mailbox, "sam@example.org"))
    _new_version(session, collective, campaign, "Second")
    session.commit()
    work()
    assert _reconsent_emails(mailbox, "sam@example.org") == []  # not confirmed: not asked

    html = client.get(confirm).get_data(as_text=True)
    assert client.post(confirm, data={"csrf_token": csrf_token(html)}).status_code == 303
    work()
    assert len(_reconsent_emails(mailbox, "sam@example.org")) == 1
    assert _count(session, campaign) == 0  # counts once they confirm the new text
    client.post(confirm, data={"csrf_token": csrf_token(html)})  # a second click
    work()
    assert len(_reconsent_emails(mailbox, "sam@example.org")) == 1


def test_erasing_and_withdrawing_work_from_the_reconsent_link_too(
    client: FlaskClient, committing: Session, app: Flask, mailbox: Mailbox, work: Any
) -> None:
    session = committing
    collective, campaign = _published(session, app)
    _sign_and_confirm(client, mailbox, work, _page(collective, campaign))
    _new_version(session, collective, campaign, "Second")
    session.commit()
    work()
    [msg] = _reconsent_emails(mailbox, "sam@example.org")
    manage = urlsplit(mailbox.link_in(msg, "/signature/")).path.removesuffix("/reconsent")
    assert _post(client, manage, f"{manage}/withdraw").status_code == 303
    [signature] = _signatures(session, campaign)
    assert signature.status == "withdrawn"
    reconsent = client.get(f"{manage}/reconsent").get_data(as_text=True)
    assert "cannot move to the new version" in reconsent
    assert _count(session, campaign) == 0


def test_a_signature_recorded_before_self_service_has_no_link_until_given_a_secret(
    session: Session, app: Flask
) -> None:
    """No stored secret: no guess opens it. The link opens only with its own secret."""
    collective, campaign = _published(session, app)
    set_current_collective(session, collective.id)
    signature = _verified(session, campaign, email="old@example.org")
    assert signature.manage_secret_hash is None
    with pytest.raises(selfservice.LinkInvalid):
        selfservice.find_by_manage_token(session, campaign, f"{signature.id}." + "A" * 43)
    secret, digest = tokens.new_secret()
    session.execute(
        text("UPDATE signatures SET manage_secret_hash = :h WHERE id = :i"),
        {"h": digest, "i": signature.id},
    )
    session.expire_all()
    found = selfservice.find_by_manage_token(session, campaign, f"{signature.id}.{secret}")
    assert found.id == signature.id
    number = select(LetterVersion.number).where(LetterVersion.id == found.letter_version_id)
    assert session.scalar(number) == 1


# --- in a real browser ------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.live
def test_a_signer_without_javascript_sees_reconfirms_withdraws_and_erases_on_a_phone(
    live: Any, mailbox: Mailbox, new_context: Any
) -> None:
    from playwright.sync_api import expect

    from tests.browser import A11y, assert_fits_viewport, wait_for_link
    from tests.test_signing_journey import (
        PHONE,
        confirm_on_phone,
        heading,
        published_campaign,
        sign_on_phone,
    )

    a11y = A11y()
    world = published_campaign(live)
    twin = new_context(**PHONE).new_page()
    page = a11y.watch(new_context(**PHONE, java_script_enabled=False).new_page())
    sign_on_phone(
        page, a11y, world, name="Ada Reyes", email="ada@example.org", postcode="", twin=twin
    )
    confirm_on_phone(
        page,
        a11y,
        live,
        mailbox,
        world,
        name="Ada Reyes",
        email="ada@example.org",
        count_before=0,
        twin=twin,
    )

    def shows(title: str) -> None:
        expect(heading(page)).to_have_text(title)
        assert_fits_viewport(page)
        a11y.check_without_scripts(page, twin)

    page.goto(wait_for_link(live.app, mailbox, "ada@example.org", "/signature/"))
    shows("Your signature")
    expect(page.get_by_text("Confirmed and counted.")).to_be_visible()
    page.get_by_label("Show my name on the campaign page").uncheck()
    page.get_by_label("Send me updates about this campaign").check()
    page.get_by_role("button", name="Save my choices").tap()
    shows("Your signature")
    expect(page.get_by_text("Your choices are saved.")).to_be_visible()

    # A new version: the one email, the changes, one button.
    db = database(live.app)
    with live.app.app_context():
        s = db.new_session()
        attach_dispatcher(s, live.app.extensions["chorus.dispatcher"])
        set_current_collective(s, world.collective_id)
        campaign = s.get(Campaign, world.campaign_id)
        collective = s.get(Collective, world.collective_id)
        assert campaign is not None
        assert collective is not None
        _new_version(s, collective, campaign, "Delays to PIP assessments must end")
        s.commit()
        s.close()
    page.goto(wait_for_link(live.app, mailbox, "ada@example.org", "/reconsent"))
    shows("The letter has changed since you signed")
    expect(page.get_by_text("Delays to PIP assessments must end").first).to_be_visible()
    page.get_by_role("button", name="I still sign the new version").tap()
    shows("Your signature")
    expect(page.get_by_text("your signature now counts for the new version")).to_be_visible()

    page.get_by_role("button", name="Withdraw my signature").tap()
    shows("Your signature")
    expect(page.get_by_text("Withdrawn by you: not counted.")).to_be_visible()
    page.get_by_role("link", name="Erase my details").tap()
    shows("Are you sure you want to erase your details?")
    page.get_by_role("button", name="Yes, erase my details").tap()
    shows("Your details are erased")
    with db.session_scope() as s:
        set_current_collective(s, world.collective_id)
        left = s.scalar(select(func.count()).select_from(Signature))
    assert left == 0
    a11y.assert_every_page_checked()
