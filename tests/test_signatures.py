"""Signing: one screen, double opt-in by POST, aliases count once, counts stay exact."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
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
from tests.factories import make_collective, make_user
from web.campaigns import services as campaigns
from web.campaigns.models import Campaign
from web.collectives.models import Collective, Membership
from web.http import database
from web.outbox import attach_dispatcher
from web.recipients.models import Recipient
from web.signatures import services as signing
from web.signatures.models import Signature, SignatureCount
from web.tenancy import set_current_collective, system_scope


def _published(session: Session, app: Flask, slug: str = "fair-pip") -> tuple[Collective, Campaign]:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    set_current_collective(session, collective.id)
    member = session.scalar(select(Membership).where(Membership.user_id == owner.id))
    assert member is not None
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
    campaigns.save_letter(
        session,
        member,
        campaign,
        subject="Subject",
        summary="Summary.",
        body_markdown="Body.",
        asks=["Ask"],
        evidence_links=[],
    )
    campaigns.publish(session, member, collective, campaign)
    session.flush()
    return collective, campaign


def _page(collective: Collective, campaign: Campaign) -> str:
    return f"/{collective.slug}/{campaign.slug}"


def _sign(client: FlaskClient, page: str, *, wait: bool = True, **fields: Any) -> Any:
    """Fill in the signing form as a person would; `wait` stands for the seconds a person
    takes to type (the form refuses anything faster than MIN_FILL_SECONDS)."""
    html = client.get(page).get_data(as_text=True)
    started = re.search(r'name="started"[^>]*value="([^"]+)"', html)
    assert started, "the form carries when it was shown"
    if wait:
        time_travel = URLSafeTimedSerializer(client.application.secret_key or "", salt="sign-form")
        shown_at = time_travel.dumps(int(time.time()) - 60)
    else:
        shown_at = started.group(1)
    data = {
        "csrf_token": csrf_token(html),
        "started": shown_at,
        "name": "Sam Signer",
        "email": "sam@example.org",
        "postcode": "",
        "statement": "",
        "website": "",
        **fields,
    }
    return client.post(f"{page}/sign", data=data)


def _count(session: Session, campaign: Campaign) -> int:
    session.expire_all()
    set_current_collective(session, campaign.collective_id)
    return signing.verified_count(session, campaign)


def test_sign_confirm_by_post_and_the_count_goes_up(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, work: Any
) -> None:
    collective, campaign = _published(session, app)
    page = _page(collective, campaign)
    response = _sign(client, page, postcode="sw1a1aa", show_name="y")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"{page}/sign/check-email")
    set_current_collective(session, collective.id)
    signature = session.scalar(select(Signature))
    assert signature is not None
    assert signature.status == "pending"
    assert signature.postcode == "SW1A 1AA"
    version = campaigns.current_version(session, campaign)
    assert version is not None
    assert signature.letter_version_id == version.id
    assert signature.ip_hash
    assert "127.0.0.1" not in signature.ip_hash

    work()
    [msg] = mailbox.to("sam@example.org")
    link = urlsplit(mailbox.link_in(msg, "/confirm/")).path
    confirm_page = client.get(link)
    assert confirm_page.status_code == 200
    assert "Confirm my signature" in confirm_page.get_data(as_text=True)
    assert _count(session, campaign) == 0  # opening the link confirms nothing

    token = csrf_token(confirm_page.get_data(as_text=True))
    assert client.post(link, data={"csrf_token": token}).status_code == 303
    assert client.post(link, data={"csrf_token": token}).status_code == 303  # harmless twice
    assert _count(session, campaign) == 1
    public = client.get(page).get_data(as_text=True)
    assert '<span class="count">1</span> verified signature.' in public
    assert "Sam Signer, SW" in public  # shown by consent, with the postcode area only
    count = client.get(f"{page}/count.json")
    assert count.get_json() == {"campaign": campaign.slug, "verified": 1}
    assert "max-age=5" in count.headers["Cache-Control"]


def test_signing_again_or_with_an_alias_never_makes_a_second_signature(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, work: Any
) -> None:
    collective, campaign = _published(session, app)
    page = _page(collective, campaign)
    answers = [
        _sign(client, page, email=address)
        for address in (
            "Sam.Signer@gmail.com",
            " samsigner+petitions@googlemail.com ",
            "SAMSIGNER@GMAIL.COM",
            "s.a.m.signer@gmail.com",
        )
    ]
    assert {a.status_code for a in answers} == {303}
    assert len({a.headers["Location"] for a in answers}) == 1  # the same page every time
    set_current_collective(session, collective.id)
    assert session.scalar(select(func.count()).select_from(Signature)) == 1
    work()
    sent = [m for m in mailbox.messages if "Confirm your signature" in str(m["Subject"])]
    assert len(sent) == 3  # the first email and two re-sends, then no more


def test_disposable_addresses_are_refused_with_a_clear_message(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    collective, campaign = _published(session, app)
    response = _sign(client, _page(collective, campaign), email="someone@mailinator.com")
    assert response.status_code == 422
    assert "disposable email services" in response.get_data(as_text=True)
    set_current_collective(session, collective.id)
    assert session.scalar(select(func.count()).select_from(Signature)) == 0


@pytest.mark.parametrize(
    ("fields", "wait", "reason"),
    [({"website": "https://spam.example"}, True, "honeypot"), ({}, False, "too-fast")],
    ids=["honeypot", "too-fast"],
)
def test_suspicious_submissions_are_quarantined_silently(
    client: FlaskClient,
    session: Session,
    app: Flask,
    mailbox: Mailbox,
    work: Any,
    fields: dict[str, str],
    wait: bool,
    reason: str,
) -> None:
    collective, campaign = _published(session, app)
    page = _page(collective, campaign)
    response = _sign(client, page, wait=wait, **fields)
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/sign/check-email")  # as for anyone
    set_current_collective(session, collective.id)
    signature = session.scalar(select(Signature))
    assert signature is not None
    assert signature.status == "quarantined"
    assert signature.quarantine_reason == reason
    work()
    assert mailbox.to("sam@example.org") == []
    assert _count(session, campaign) == 0


def test_form_errors_are_listed_and_linked(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    collective, campaign = _published(session, app)
    campaign.postcode_mode = "required"
    session.flush()
    response = _sign(
        client, _page(collective, campaign), name="", email="not-an-email", postcode="12345"
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "There is a problem" in html
    assert '<a href="#name">Enter your name.</a>' in html
    assert 'href="#email"' in html
    set_current_collective(session, collective.id)
    assert session.scalar(select(func.count()).select_from(Signature)) == 0
    bad_postcode = _sign(client, _page(collective, campaign), postcode="12345")
    assert bad_postcode.status_code == 422
    assert "Enter a UK postcode" in bad_postcode.get_data(as_text=True)


def test_drafts_and_other_collectives_campaigns_cannot_be_signed(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    _collective, campaign = _published(session, app)
    other_owner = make_user(session, app)
    other = make_collective(session, other_owner)
    assert client.get(f"/{other.slug}/{campaign.slug}").status_code == 404
    assert client.post(f"/{other.slug}/{campaign.slug}/sign", data={}).status_code in (400, 404)


def test_the_reconciler_repairs_a_drifted_count(session: Session, app: Flask) -> None:
    collective, campaign = _published(session, app)
    with app.app_context():
        outcome = signing.record_signature(
            session, app.extensions["chorus.settings"], campaign, name="A", email="a@example.org"
        )
    assert outcome.signature_id is not None
    session.execute(
        update(Signature).where(Signature.id == outcome.signature_id).values(status="verified")
    )
    session.add(
        SignatureCount(collective_id=collective.id, campaign_id=campaign.id, shard=3, verified=41)
    )
    session.flush()
    assert signing.verified_count(session, campaign) == 41
    assert signing.reconcile_counts(session, campaign.id) == (41, 1)
    assert signing.verified_count(session, campaign) == 1
    assert signing.reconcile_counts(session, campaign.id) == (1, 1)


def test_a_new_version_asks_earlier_signers_to_re_consent(session: Session, app: Flask) -> None:
    collective, campaign = _published(session, app)
    set_current_collective(session, collective.id)
    settings = app.extensions["chorus.settings"]
    with app.app_context():
        first = signing.record_signature(
            session, settings, campaign, name="A", email="a@example.org"
        )
    assert first.signature_id is not None
    session.execute(update(Signature).values(status="verified"))
    signing.reconcile_counts(session, campaign.id)
    assert signing.verified_count(session, campaign) == 1
    member = session.scalar(select(Membership))
    assert member is not None
    campaigns.save_letter(
        session,
        member,
        campaign,
        subject="A new subject",
        summary="Summary.",
        body_markdown="Body.",
        asks=["Ask"],
        evidence_links=[],
    )
    v2 = campaigns.publish(session, member, collective, campaign)
    session.expire_all()
    signature = session.get(Signature, first.signature_id)
    assert signature is not None
    assert signature.needs_reconsent
    assert signature.letter_version_id != v2.id
    assert signing.verified_count(session, campaign) == 0  # counts only for version 1 now


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        (" Jane.Doe+news@Gmail.com ", "janedoe@gmail.com"),
        ("j.doe@googlemail.com", "jdoe@gmail.com"),
        ("jane+x@outlook.com", "jane@outlook.com"),
        ("jane.doe+x@example.org", "jane.doe+x@example.org"),
    ],
)
def test_email_canonical_forms(raw: str, canonical: str) -> None:
    assert signing.canonical_email(raw) == canonical


@pytest.mark.live
def test_two_hundred_concurrent_submissions_of_one_email_make_one_signature(
    live_app_factory: Any, live_db: str
) -> None:
    app: Flask = live_app_factory()
    db = database(app)
    with app.app_context():
        s = db.new_session()
        attach_dispatcher(s, app.extensions["chorus.dispatcher"])
        collective, campaign = _published(s, app, slug="concurrency")
        s.commit()
        campaign_id, collective_id = campaign.id, collective.id
        s.close()

    def submit(_: int) -> str:
        with app.app_context():
            own = db.new_session()
            attach_dispatcher(own, app.extensions["chorus.dispatcher"])
            try:
                set_current_collective(own, collective_id)
                c = own.get(Campaign, campaign_id)
                assert c is not None
                outcome = signing.record_signature(
                    own,
                    app.extensions["chorus.settings"],
                    c,
                    name="Same Person",
                    email="same.person@gmail.com",
                )
                own.commit()
                return outcome.action
            finally:
                own.close()

    with ThreadPoolExecutor(max_workers=16) as pool:
        actions = list(pool.map(submit, range(200)))
    assert actions.count("created") == 1
    assert set(actions) <= {"created", "resent", "limit"}
    with db.engine.connect() as conn:
        conn.execute(
            text("select set_config('app.collective_id', :c, false)"), {"c": str(collective_id)}
        )
        rows = conn.scalar(
            text("select count(*) from signatures where campaign_id = :c"), {"c": campaign_id}
        )
        emails = conn.scalar(
            text(
                "select count(*) from outbox_messages where kind = 'email' and collective_id = :c"
            ),
            {"c": collective_id},
        )
    assert rows == 1
    assert emails == 3  # one confirmation plus at most two re-sends
    db.engine.dispose()


def test_a_confirmation_link_works_only_for_its_own_campaign(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, work: Any
) -> None:
    collective, campaign = _published(session, app, slug="first")
    page = _page(collective, campaign)
    assert _sign(client, page).status_code == 303
    work()
    link = urlsplit(mailbox.link_in(mailbox.to("sam@example.org")[0], "/confirm/")).path
    token = link.rsplit("/", 1)[1]
    other_collective, other = _published(session, app, slug="second")
    response = client.get(f"{_page(other_collective, other)}/confirm/{token}")
    assert response.status_code == 404
    assert "not valid" in response.get_data(as_text=True)
    forged = client.get(f"{page}/confirm/{token[:-4]}AAAA")
    assert forged.status_code == 404


@pytest.mark.parametrize(
    ("field", "value", "status", "says"),
    [
        ("name", "Sam\x00Signer", 400, "null character"),
        ("name", "x" * 1_000_000, (413, 422), None),
        ("name", "\u202egnp.exe", 422, "text-direction"),
        ("name", "Line\r\nBcc: victim@example.org", 422, "line breaks"),
        ("email", "sam@example.org\r\nBcc: victim@example.org", 422, "Enter an email address"),
        ("email", "not an email", 422, "Enter an email address"),
        ("postcode", "<script>", 422, "Enter a UK postcode"),
        ("statement", "x" * 2001, 422, "2000 characters or fewer"),
        ("show_name", ["y", "n"], 303, None),
    ],
    ids=[
        "nul",
        "1mb",
        "rtl",
        "crlf-name",
        "crlf-email",
        "bad-email",
        "postcode",
        "long-words",
        "list",
    ],
)
def test_hostile_values_get_a_clear_answer_and_write_nothing(
    client: FlaskClient,
    session: Session,
    app: Flask,
    field: str,
    value: Any,
    status: Any,
    says: str | None,
) -> None:
    collective, campaign = _published(session, app)
    response = _sign(client, _page(collective, campaign), **{field: value})
    expected = status if isinstance(status, tuple) else (status,)
    assert response.status_code in expected
    body = response.get_data(as_text=True)
    if says:
        assert says in body
    set_current_collective(session, collective.id)
    written = session.scalar(select(func.count()).select_from(Signature))
    assert written == (1 if response.status_code == 303 else 0)


@pytest.mark.parametrize(
    "name", ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "{{7*7}}"]
)
def test_hostile_names_are_stored_as_written_and_shown_escaped(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, work: Any, name: str
) -> None:
    collective, campaign = _published(session, app)
    page = _page(collective, campaign)
    assert _sign(client, page, name=name, show_name="y").status_code == 303
    work()
    [msg] = mailbox.to("sam@example.org")
    html_part = msg.get_body(preferencelist=("html",)).get_content()
    assert name not in html_part or "<" not in name
    assert str(escape(name)) in html_part
    link = urlsplit(mailbox.link_in(msg, "/confirm/")).path
    confirm = client.get(link).get_data(as_text=True)
    assert str(escape(name)) in confirm
    client.post(link, data={"csrf_token": csrf_token(confirm)})
    public = client.get(page).get_data(as_text=True)
    assert str(escape(name)) in public
    if "<" in name:
        assert name not in public
    set_current_collective(session, collective.id)
    stored = session.scalar(select(Signature.name))
    assert stored == name


def test_count_json_is_served_from_the_cache_between_database_reads(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    collective, campaign = _published(session, app)
    url = f"{_page(collective, campaign)}/count.json"
    first = client.get(url)
    assert first.get_json() == {"campaign": campaign.slug, "verified": 0}
    # A verification lands without going through confirm (so the cache is not told):
    session.add(
        SignatureCount(collective_id=collective.id, campaign_id=campaign.id, shard=1, verified=5)
    )
    session.flush()
    cached = client.get(url)
    assert cached.get_json()["verified"] == 0  # answered from the cache, no database read
    assert cached.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in cached.headers
    assert cached.headers["Cache-Control"] == first.headers["Cache-Control"]
    assert cached.headers["Cache-Control"] == "public, max-age=5, stale-while-revalidate=10"
    redis = app.extensions["chorus.redis"]
    prefix = app.extensions["chorus.settings"].rq_queue_prefix
    redis.delete(f"{prefix}chorus:count:{collective.slug}/{campaign.slug}")  # the TTL ends
    assert client.get(url).get_json()["verified"] == 5
    assert client.get(f"/{collective.slug}/no-such-campaign/count.json").status_code == 404
    assert client.post(url).status_code == 405


def test_one_address_signing_over_and_over_is_refused_with_a_time_to_retry(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    collective, campaign = _published(session, app)
    page = f"/{collective.slug}/{campaign.slug}"
    statuses = [_sign(client, page, email=f"burst{i}@example.org").status_code for i in range(6)]
    assert statuses == [303] * 5 + [429]  # SIGN_LIMIT_PER_IP: 5 a minute from one address
    refused = _sign(client, page, email="burst-late@example.org")
    assert refused.status_code == 429
    assert "too many times" in refused.get_data(as_text=True)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60  # the rest of the minute
    session.expire_all()
    set_current_collective(session, collective.id)
    emails = set(session.scalars(select(Signature.email)))
    assert emails == {f"burst{i}@example.org" for i in range(5)}


def test_a_campaign_closed_by_another_process_refuses_signatures_at_once(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    """Signing keeps what it knows of a campaign for a moment (per process). A change made
    elsewhere, invisible to that memory, must still stop signatures: the insert itself
    checks that the campaign is collecting."""
    collective, campaign = _published(session, app)
    page = f"/{collective.slug}/{campaign.slug}"
    assert _sign(client, page, email="before@example.org").status_code == 303
    html = client.get(page).get_data(as_text=True)  # the form, still open in a tab
    # Another server closes the campaign: plain SQL, no ORM event in this process.
    session.execute(
        update(Campaign).where(Campaign.id == campaign.id).values(state="closed"),
        execution_options={"synchronize_session": False},
    )
    session.flush()
    shown = URLSafeTimedSerializer(client.application.secret_key or "", salt="sign-form")
    refused = client.post(
        f"{page}/sign",
        data={
            "csrf_token": csrf_token(html),
            "started": shown.dumps(int(time.time()) - 60),
            "name": "Late Signer",
            "email": "after@example.org",
            "postcode": "",
            "statement": "",
            "website": "",
        },
    )
    assert refused.status_code == 422
    assert "no longer collecting signatures" in refused.get_data(as_text=True)
    session.expire_all()
    set_current_collective(session, collective.id)
    assert set(session.scalars(select(Signature.email))) == {"before@example.org"}


def test_an_out_of_date_campaign_lookup_heals_itself(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    """If this process remembers another campaign at these addresses (it was deleted and
    made again elsewhere), the signature still lands on the campaign that is there now."""
    from dataclasses import replace

    collective, campaign = _published(session, app)
    page = f"/{collective.slug}/{campaign.slug}"
    assert _sign(client, page, email="first@example.org").status_code == 303
    [(key, (expiry, target))] = [
        item for item in signing._targets.items() if item[0][1:] == (collective.slug, "fair-pip")
    ]
    signing._targets[key] = (expiry + 60, replace(target, id=target.id + 10**9))
    assert _sign(client, page, email="second@example.org").status_code == 303
    session.expire_all()
    set_current_collective(session, collective.id)
    rows = session.execute(select(Signature.email, Signature.campaign_id)).all()
    assert sorted(rows) == [("first@example.org", campaign.id), ("second@example.org", campaign.id)]
    assert signing._targets[key][1].id == campaign.id  # remembered correctly again
