"""Organisers' signature pages: the numbers (by status, method, region and day, with an
SVG chart), the moderation queue (restore sends the confirmation email, reject keeps a
signature out) and bulk invalidation (the preview's count is exactly what changes)."""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import expect
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from tests.browser import A11y, LazyBrowser, serve_live_app, wait_for_link
from tests.conftest import Mailbox, csrf_token, form_post
from tests.factories import PASSWORD, add_member, login, make_user
from tests.test_cross_collective import snapshot
from tests.test_signatures import _published
from web.accounts.models import User
from web.campaigns import services as campaigns
from web.campaigns.models import Campaign
from web.collectives.models import Collective, Membership, Role
from web.http import database
from web.signatures import services as signing
from web.signatures.models import Signature
from web.tenancy import set_current_collective

_seq = itertools.count(1)
DAY1 = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)
DAY3 = datetime(2025, 3, 5, 18, 0, tzinfo=UTC)


# --- helpers ---------------------------------------------------------------------------


def _add(session: Session, campaign: Campaign, **fields: Any) -> Signature:
    """A signature as the signing flow would store it, with any field overridden."""
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
        "email_canonical": signing.canonical_email(email),
        "status": status,
        "secret_hash": b"\x01" * 32,
        "ip_hash": f"{n:064x}",
        "verified_at": DAY1 if status == "verified" else None,
        **fields,
    }
    signature = Signature(**values)
    session.add(signature)
    session.flush()
    return signature


def _recount(session: Session, campaign: Campaign) -> None:
    set_current_collective(session, campaign.collective_id)
    signing.reconcile_counts(session, campaign.id)
    session.flush()


def _owner(session: Session, collective: Collective) -> User:
    set_current_collective(session, collective.id)
    membership = session.scalar(select(Membership).where(Membership.role == Role.OWNER))
    assert membership is not None
    user = session.get(User, membership.user_id)
    assert user is not None
    return user


def _base(collective: Collective, campaign: Campaign) -> str:
    return f"/app/{collective.slug}/campaigns/{campaign.id}/signatures"


def _statuses(session: Session, campaign: Campaign) -> dict[int, str]:
    collective_id, campaign_id = campaign.collective_id, campaign.id
    session.expire_all()
    set_current_collective(session, collective_id)
    rows = session.execute(
        select(Signature.id, Signature.status).where(Signature.campaign_id == campaign_id)
    )
    return dict(rows.all())


def _public_count(session: Session, campaign: Campaign) -> int:
    collective_id = campaign.collective_id
    session.expire_all()
    set_current_collective(session, collective_id)
    return signing.verified_count(session, campaign)


def _row(body: str, label: str) -> list[int]:
    """The numbers in the table row headed `label`."""
    match = re.search(
        rf'<th scope="row"[^>]*>{re.escape(label)}</th>(.*?)</tr>', body, flags=re.DOTALL
    )
    assert match, f"no row {label!r}"
    return [int(v.replace(",", "")) for v in re.findall(r">([\d,]+)</td>", match.group(1))]


def _hidden_fields(body: str) -> dict[str, str]:
    return {
        name: html.unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', body)
    }


def _preview_total(body: str) -> int:
    match = re.search(r'<span class="count" id="bulk-total">([\d,]+)</span>', body)
    assert match, "the page shows no preview count"
    return int(match.group(1).replace(",", ""))


@pytest.fixture
def world(session: Session, app: Flask) -> tuple[Collective, Campaign]:
    return _published(session, app)


# --- counts ------------------------------------------------------------------------------


def test_every_postcode_area_belongs_to_one_of_the_twelve_regions() -> None:
    assert len(signing.REGIONS) == 12
    assert signing.REGIONS[-3:] == ("Wales", "Scotland", "Northern Ireland")
    assert len(signing.AREA_REGIONS) == 121  # each UK postcode area once
    cases = {
        "SW1A 1AA": "London",
        "EC1A 1BB": "London",
        "M1 1AE": "North West",
        "B33 8TH": "West Midlands",
        "S1 2HE": "Yorkshire and the Humber",
        "SO16 0AS": "South East",
        "EX1 1AA": "South West",
        "NR1 1AA": "East of England",
        "NG1 1AA": "East Midlands",
        "NE1 4ST": "North East",
        "CF10 1EP": "Wales",
        "EH1 1YZ": "Scotland",
        "G1 1AA": "Scotland",
        "BT1 5GS": "Northern Ireland",
        "JE2 3AB": "Unknown",
        "": "Not given",
    }
    for postcode, region in cases.items():
        assert signing.region_for_postcode(postcode) == region, postcode


def test_counts_by_status_method_and_region(
    client: FlaskClient, session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    _add(session, campaign, postcode="SW1A 1AA")
    _add(session, campaign, postcode="E1 6AN", method="assisted")
    _add(session, campaign, postcode="M1 1AE", method="paper")
    _add(session, campaign, postcode="EH1 1YZ")
    _add(session, campaign, postcode="BT1 5GS", method="paper")
    _add(session, campaign, postcode="JE2 3AB")  # Jersey: not one of the twelve
    _add(session, campaign, postcode="")
    _add(session, campaign, status="verified", needs_reconsent=True, postcode="SW1A 2AA")
    for status in ("pending", "pending", "quarantined", "rejected", "withdrawn"):
        _add(session, campaign, status=status, postcode="CF10 1EP")
    _recount(session, campaign)

    login(client, _owner(session, collective))
    response = client.get(f"{_base(collective, campaign)}/")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert '<span class="count">7</span> verified signatures' in body
    assert "1 more signed an earlier version" in body
    assert _row(body, "Verified") == [8]  # the status, re-consent or not
    assert _row(body, "Waiting for the signer to confirm") == [2]
    assert _row(body, "In the moderation queue") == [1]
    assert _row(body, "Rejected") == [1]
    assert _row(body, "Withdrawn by the signer") == [1]
    assert _row(body, "Online") == [4]
    assert _row(body, "Assisted (by phone or in person)") == [1]
    assert _row(body, "Paper") == [2]
    assert _row(body, "London") == [2]
    assert _row(body, "North West") == [1]
    assert _row(body, "Scotland") == [1]
    assert _row(body, "Northern Ireland") == [1]
    assert _row(body, "Wales") == [0]  # only pending and other uncounted ones there
    assert _row(body, "Unknown") == [1]
    assert _row(body, "Not given") == [1]
    assert "Review the 1 signature in the moderation queue" in body

    set_current_collective(session, collective.id)
    report = signing.signature_report(session, campaign)
    assert report.verified_total == report.counted == 7
    assert sum(n for _, n in report.by_method) == sum(n for _, n in report.by_region) == 7


def test_the_counts_page_runs_the_same_queries_for_ten_or_three_hundred_signatures(
    client: FlaskClient, session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    """Counting happens in SQL (GROUP BY): the page's statements do not grow with rows."""
    collective, campaign = world
    login(client, _owner(session, collective))
    page = f"{_base(collective, campaign)}/"
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    engine = database(app).engine
    for how_many in (10, 290):
        for i in range(how_many):
            _add(
                session,
                campaign,
                postcode="SW1A 1AA" if i % 2 else "",
                verified_at=DAY1 + timedelta(days=i % 7),
            )
        _recount(session, campaign)
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            body = client.get(page).get_data(as_text=True)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        selects = [s for s in statements if "FROM signatures" in s]
        assert len(selects) <= 6, selects
        assert all("GROUP BY" in s or "count(" in s for s in selects), selects
    assert '<span class="count">300</span>' in body


def test_the_chart_is_an_svg_with_the_same_numbers_as_its_table(
    client: FlaskClient, session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    for _ in range(2):
        _add(session, campaign, verified_at=DAY1)
    for _ in range(5):
        _add(session, campaign, verified_at=DAY3)
    _add(session, campaign, status="pending")  # not on the chart
    _recount(session, campaign)

    login(client, _owner(session, collective))
    response = client.get(f"{_base(collective, campaign)}/")
    body = response.get_data(as_text=True)
    csp = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp
    assert "<script" not in body
    assert " style=" not in body

    svg = re.search(r"<svg[^>]*>.*?</svg>", body, flags=re.DOTALL)
    assert svg, "no chart"
    label = re.search(r'<svg role="img" aria-label="([^"]+)"', svg.group(0))
    assert label, "the chart is not an image with a name"
    summary = html.unescape(label.group(1))
    assert "from 3 March 2025 to 5 March 2025" in summary
    assert "7 in all" in summary
    assert "the most on 5 March 2025 (5)" in summary
    bars = re.findall(
        r'<rect class="chart-bar"[^>]*height="([\d.]+)"><title>([^<]+)</title>', svg.group(0)
    )
    assert [title for _, title in bars] == ["3 March 2025: 2", "5 March 2025: 5"]
    assert float(bars[1][0]) / float(bars[0][0]) == pytest.approx(5 / 2)

    assert _row(body, "3 March 2025") == [2, 2]
    assert _row(body, "5 March 2025") == [5, 7]
    assert "4 March 2025" not in body.split("</svg>")[1]  # days with none are left out


def test_a_campaign_without_confirmations_has_no_chart(
    client: FlaskClient, session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    _add(session, campaign, status="pending")
    login(client, _owner(session, collective))
    body = client.get(f"{_base(collective, campaign)}/").get_data(as_text=True)
    assert "<svg" not in body
    assert "No verified signatures yet." in body


# --- moderation --------------------------------------------------------------------------


def _quarantined(session: Session, app: Flask, campaign: Campaign, email: str) -> Signature:
    set_current_collective(session, campaign.collective_id)
    with app.app_context():
        outcome = signing.record_signature(
            session,
            app.extensions["chorus.settings"],
            campaign,
            name="Quinn Quarantined",
            email=email,
            ip="203.0.113.9",
            suspicious="honeypot",
        )
    assert outcome.action == "quarantined"
    signature = session.get(Signature, outcome.signature_id)
    assert signature is not None
    assert signature.status == "quarantined"
    return signature


def test_restore_sends_the_confirmation_email_and_the_signature_then_counts(
    client: FlaskClient,
    session: Session,
    app: Flask,
    mailbox: Mailbox,
    work: Any,
    world: tuple[Collective, Campaign],
) -> None:
    collective, campaign = world
    signature = _quarantined(session, app, campaign, "quinn@example.org")
    signature_id, ip_hash = signature.id, signature.ip_hash
    work()
    assert mailbox.to("quinn@example.org") == []  # quarantine sends nothing

    login(client, _owner(session, collective))
    queue = f"{_base(collective, campaign)}/moderation"
    body = client.get(queue).get_data(as_text=True)
    assert "Quinn Quarantined" in body
    assert "quinn@example.org" in body
    assert "Filled in a field people never see" in body
    assert f"<code>{ip_hash[:12]}</code>" in body
    assert ip_hash not in body  # shortened

    response = form_post(
        client, queue, {}, action=f"{_base(collective, campaign)}/{signature_id}/restore"
    )
    assert response.status_code == 303
    assert urlsplit(response.headers["Location"]).path == queue
    assert _statuses(session, campaign)[signature_id] == "pending"
    page = client.get(queue).get_data(as_text=True)
    assert "Restored the signature of Quinn Quarantined" in page
    assert "The queue is empty." in page

    work()
    [msg] = mailbox.to("quinn@example.org")
    assert "Confirm your signature" in str(msg["Subject"])
    link = urlsplit(mailbox.link_in(msg, "/confirm/")).path
    confirm = client.get(link)
    assert confirm.status_code == 200
    token = csrf_token(confirm.get_data(as_text=True))
    assert client.post(link, data={"csrf_token": token}).status_code == 303
    assert _statuses(session, campaign)[signature_id] == "verified"
    assert _public_count(session, campaign) == 1

    # Restoring again: it left the queue, so a readable refusal and no second email.
    again = form_post(
        client, queue, {}, action=f"{_base(collective, campaign)}/{signature_id}/restore"
    )
    assert again.status_code == 409
    assert "no longer in the moderation queue" in again.get_data(as_text=True)
    work()
    assert len(mailbox.to("quinn@example.org")) == 1


def test_reject_keeps_a_signature_out_of_the_queue_and_the_count(
    client: FlaskClient,
    session: Session,
    app: Flask,
    mailbox: Mailbox,
    work: Any,
    world: tuple[Collective, Campaign],
) -> None:
    collective, campaign = world
    _add(session, campaign)
    signature = _quarantined(session, app, campaign, "bot@example.org")
    signature_id = signature.id
    _recount(session, campaign)
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    before = client.get(f"{base}/").get_data(as_text=True)
    assert _row(before, "In the moderation queue") == [1]

    response = form_post(client, f"{base}/moderation", {}, action=f"{base}/{signature_id}/reject")
    assert response.status_code == 303
    assert _statuses(session, campaign)[signature_id] == "rejected"
    after = client.get(f"{base}/").get_data(as_text=True)
    assert _row(after, "In the moderation queue") == [0]
    assert _row(after, "Rejected") == [1]
    assert _row(after, "Verified") == [1]
    assert '<span class="count">1</span> verified signature:' in after
    assert "Quinn Quarantined" not in client.get(f"{base}/moderation").get_data(as_text=True)
    work()
    assert mailbox.to("bot@example.org") == []
    # A rejected signature cannot be restored from the queue any more.
    restore = form_post(client, f"{base}/moderation", {}, action=f"{base}/{signature_id}/restore")
    assert restore.status_code == 409
    assert _statuses(session, campaign)[signature_id] == "rejected"


def test_a_closed_campaign_cannot_restore_but_can_reject(
    client: FlaskClient,
    session: Session,
    app: Flask,
    mailbox: Mailbox,
    work: Any,
    world: tuple[Collective, Campaign],
) -> None:
    collective, campaign = world
    held = _quarantined(session, app, campaign, "late@example.org").id
    set_current_collective(session, collective.id)
    member = session.scalar(select(Membership).where(Membership.role == Role.OWNER))
    assert member is not None
    campaigns.close_campaign(session, member, campaign)
    session.flush()
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    response = form_post(client, f"{base}/moderation", {}, action=f"{base}/{held}/restore")
    assert response.status_code == 409
    assert "no longer collecting signatures" in response.get_data(as_text=True)
    assert _statuses(session, campaign)[held] == "quarantined"
    work()
    assert mailbox.to("late@example.org") == []
    response = form_post(client, f"{base}/moderation", {}, action=f"{base}/{held}/reject")
    assert response.status_code == 303
    assert _statuses(session, campaign)[held] == "rejected"


def test_the_queue_shows_fifty_a_page(
    client: FlaskClient, session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    start = datetime(2025, 4, 1, tzinfo=UTC)
    for i in range(51):
        _add(
            session,
            campaign,
            status="quarantined",
            name=f"Queued {i:02d}",
            quarantine_reason="too-fast",
            created_at=start + timedelta(minutes=i),
        )
    login(client, _owner(session, collective))
    queue = f"{_base(collective, campaign)}/moderation"
    first = client.get(queue).get_data(as_text=True)
    assert first.count("<tr>") == 51  # the header row and 50 signatures
    assert "Queued 50" in first  # newest first
    assert "Queued 00" not in first
    assert "Page 1 of 2" in first
    assert 'rel="next"' in first
    second = client.get(f"{queue}?page=2").get_data(as_text=True)
    assert second.count("<tr>") == 2
    assert "Queued 00" in second
    assert "Page 2 of 2" in second
    assert "Queued 00" in client.get(f"{queue}?page=999").get_data(as_text=True)  # the last
    assert "Queued 50" in client.get(f"{queue}?page=nonsense").get_data(as_text=True)


def test_a_signature_of_another_campaign_or_collective_is_not_found(
    client: FlaskClient, session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    _, other_campaign = _published(session, app, slug="elsewhere")
    theirs = _add(session, other_campaign, status="quarantined")
    set_current_collective(session, collective.id)
    member = session.scalar(select(Membership).where(Membership.role == Role.OWNER))
    assert member is not None
    sibling = campaigns.create_campaign(
        session, member, kind="open_letter", title="Sibling", slug="sibling"
    )
    # A signature of a second campaign of the same collective, reached through the first.
    sibling_signature = _add(session, campaign, status="quarantined")
    sibling_signature.campaign_id = sibling.id
    session.flush()
    ids = (theirs.id, sibling_signature.id)
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    before = snapshot(session)
    for signature_id in ids:
        for action in ("restore", "reject"):
            response = form_post(
                client, f"{base}/moderation", {}, action=f"{base}/{signature_id}/{action}"
            )
            assert response.status_code == 404, (signature_id, action)
    assert snapshot(session) == before


# --- bulk invalidation ----------------------------------------------------------------------


def _bulk_world(session: Session, campaign: Campaign) -> dict[str, set[int]]:
    """Signatures in every status, some matching each criterion and some not."""
    matching: dict[str, set[int]] = {"domain": set(), "ip": set(), "window": set()}
    inside = datetime(2025, 2, 10, 12, 0, tzinfo=UTC)
    outside = datetime(2025, 2, 20, 12, 0, tzinfo=UTC)
    for status in ("pending", "verified", "verified", "quarantined", "rejected", "withdrawn"):
        by_domain = _add(session, campaign, status=status, email=f"x{next(_seq)}@spam.test")
        sub_domain = _add(session, campaign, status=status, email=f"y{next(_seq)}@mx.spam.test")
        by_ip = _add(session, campaign, status=status, ip_hash="abcdef12" + "0" * 56)
        in_window = _add(session, campaign, status=status, created_at=inside)
        _add(session, campaign, status=status, email=f"z{next(_seq)}@notspam.test")
        _add(session, campaign, status=status, created_at=outside)
        if status in signing.BULK_STATUSES:
            matching["domain"] |= {by_domain.id, sub_domain.id}
            matching["ip"].add(by_ip.id)
            matching["window"].add(in_window.id)
    _recount(session, campaign)
    return matching


CRITERIA = {
    "domain": {"email_domain": "@Spam.Test"},
    "ip": {"ip_hash": "ABCDEF12"},
    "window": {"signed_from": "2025-02-10T00:00", "signed_to": "2025-02-11T00:00"},
}


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
def test_bulk_rejection_changes_exactly_what_the_preview_counted(
    client: FlaskClient,
    session: Session,
    app: Flask,
    world: tuple[Collective, Campaign],
    criterion: str,
) -> None:
    collective, campaign = world
    expected = _bulk_world(session, campaign)[criterion]
    before = _statuses(session, campaign)
    public_before = _public_count(session, campaign)
    verified_matching = sum(1 for i in expected if before[i] == "verified")
    assert verified_matching

    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    preview = client.get(f"{base}/bulk?{urlencode(CRITERIA[criterion])}")
    assert preview.status_code == 200
    body = preview.get_data(as_text=True)
    previewed = _preview_total(body)
    assert previewed == len(expected)
    assert _statuses(session, campaign) == before  # a preview changes nothing

    fields = _hidden_fields(body)
    assert fields["expected"] == str(previewed)
    response = client.post(f"{base}/bulk", data={"csrf_token": csrf_token(body), **fields})
    assert response.status_code == 303, response.get_data(as_text=True)
    after = _statuses(session, campaign)
    changed = {i for i in after if after[i] != before[i]}
    assert len(changed) == previewed
    assert changed == expected
    assert all(after[i] == "rejected" for i in changed)
    assert _public_count(session, campaign) == public_before - verified_matching
    flash = client.get(f"{base}/").get_data(as_text=True)
    assert f"Rejected {previewed} signatures." in flash


def test_bulk_preview_and_change_share_one_query(
    session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    """The same, one level down: for every criterion and combinations of them, the
    preview's count is the number of rows `reject_in_bulk` changes."""
    _, campaign = world
    _bulk_world(session, campaign)
    set_current_collective(session, campaign.collective_id)
    member = session.scalar(select(Membership).where(Membership.role == Role.OWNER))
    assert member is not None
    combos = [
        {"email_domain": "spam.test", "ip_hash": "abcdef12"},
        {"signed_to": datetime(2025, 2, 15, tzinfo=UTC)},
        {"signed_from": datetime(2025, 2, 15)},  # noqa: DTZ001 - no zone means UTC
        {"email_domain": "mx.spam.test"},
        {"email_domain": "nobody.test"},
    ]
    for combo in combos:
        criteria = signing.bulk_criteria(**combo, as_of=datetime.now(UTC))
        previewed = sum(signing.preview_bulk_rejection(session, campaign, criteria).values())
        changed = signing.reject_in_bulk(session, member, campaign, criteria, previewed)
        assert changed == previewed, combo
        assert sum(signing.preview_bulk_rejection(session, campaign, criteria).values()) == 0


def test_a_wrong_expected_count_changes_nothing_even_within_one_transaction(
    session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    _, campaign = world
    for i in range(3):
        _add(session, campaign, email=f"s{i}@spam.test")
    _recount(session, campaign)
    member = session.scalar(select(Membership).where(Membership.role == Role.OWNER))
    assert member is not None
    criteria = signing.bulk_criteria(email_domain="spam.test", as_of=datetime.now(UTC))
    before = _statuses(session, campaign)
    with pytest.raises(signing.BulkCountChanged):
        signing.reject_in_bulk(session, member, campaign, criteria, expected=2)
    assert _statuses(session, campaign) == before  # the savepoint undid the UPDATE
    assert _public_count(session, campaign) == 3


def test_bulk_rejection_changes_nothing_when_the_matches_changed_since_the_preview(
    client: FlaskClient, session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    spam = [_add(session, campaign, email=f"s{i}@spam.test") for i in range(3)]
    _recount(session, campaign)
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    body = client.get(f"{base}/bulk?email_domain=spam.test").get_data(as_text=True)
    assert _preview_total(body) == 3
    fields = _hidden_fields(body)
    token = csrf_token(body)

    # Meanwhile another organiser rejects one of them.
    spam[0].status = "rejected"
    session.flush()
    before = snapshot(session)
    response = client.post(f"{base}/bulk", data={"csrf_token": token, **fields})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "The preview said 3 signatures, but 2 match now, so nothing was changed." in page
    assert _preview_total(page) == 2  # a fresh preview to confirm instead
    assert snapshot(session) == before

    # Signatures arriving after the preview are not part of it.
    _add(session, campaign, email="late@spam.test", created_at=datetime.now(UTC) + timedelta(1))
    response = client.post(
        f"{base}/bulk", data={"csrf_token": token, **_hidden_fields(page), "expected": "2"}
    )
    assert response.status_code == 303
    assert list(_statuses(session, campaign).values()).count("verified") == 1  # the late one


HOSTILE_GET = [
    ({"signed_from": "2025-13-45T25:61"}, "Enter a date and time like 2025-05-01 14:30."),
    ({"signed_to": "yesterday"}, "Enter a date and time like 2025-05-01 14:30."),
    ({"signed_from": "0000-01-01T00:00"}, "Enter a date and time like 2025-05-01 14:30."),
    (
        {"signed_from": "2025-02-11T00:00", "signed_to": "2025-02-10T00:00"},
        "The end of the time window must be after its start.",
    ),
    ({"email_domain": "x" * (1024 * 1024)}, "must be 253 characters or fewer"),
    ({"email_domain": "spam test"}, "Enter an email domain like example.org"),
    ({"email_domain": "%"}, "Enter an email domain like example.org"),
    ({"ip_hash": "abc"}, "Enter an IP hash as shown in the moderation queue"),
    ({"ip_hash": "' OR 1=1 --"}, "Enter an IP hash as shown in the moderation queue"),
    ({"email_domain": "", "ip_hash": ""}, "Enter at least one of"),
    ({"email_domain": "spam.test\x00"}, "null character"),
    ({"signed_to": "2025-02-10T00:00\x00"}, "null character"),
]


@pytest.mark.parametrize(("query", "says"), HOSTILE_GET)
def test_hostile_bulk_criteria_get_a_readable_answer(
    client: FlaskClient,
    session: Session,
    app: Flask,
    world: tuple[Collective, Campaign],
    query: dict[str, str],
    says: str,
) -> None:
    collective, campaign = world
    _bulk_world(session, campaign)
    login(client, _owner(session, collective))
    before = snapshot(session)
    response = client.get(f"{_base(collective, campaign)}/bulk?{urlencode(query)}")
    assert 400 <= response.status_code < 500
    body = response.get_data(as_text=True)
    assert says in body
    if response.status_code == 422:
        assert "<title>Error: Reject signatures in bulk" in body
        assert 'aria-invalid="true"' in body or "Enter at least one of" in body
    assert "bulk-total" not in body  # no preview, no confirm button
    assert snapshot(session) == before


HOSTILE_POST = [
    ({"signed_from": "2025-13-45T25:61"}, 422, "Enter a date and time like 2025-05-01 14:30."),
    ({"signed_to": "not a time"}, 422, "Enter a date and time like 2025-05-01 14:30."),
    ({"as_of": "last tuesday"}, 400, "This confirmation is incomplete."),
    ({"as_of": "2025-02-10T00:00:00"}, 400, "This confirmation is incomplete."),
    ({"expected": "many"}, 400, "This confirmation is incomplete."),
    ({"expected": "-1"}, 400, "This confirmation is incomplete."),
    ({"expected": "9" * 40}, 409, "nothing was changed"),
    ({"email_domain": "spam.test\x00"}, 400, "null character"),
    ({"as_of": "\x00"}, 400, "null character"),
    ({"ip_hash": "x" * (1024 * 1024)}, 422, "must be 64 characters or fewer"),
    ({"email_domain": "", "ip_hash": "", "signed_from": ""}, 422, "Enter at least one of"),
    ({"csrf_token": ""}, 400, "has expired"),
]


@pytest.mark.parametrize(("override", "status", "says"), HOSTILE_POST)
def test_hostile_bulk_confirmations_change_nothing(
    client: FlaskClient,
    session: Session,
    app: Flask,
    world: tuple[Collective, Campaign],
    override: dict[str, str],
    status: int,
    says: str,
) -> None:
    collective, campaign = world
    _bulk_world(session, campaign)
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    body = client.get(f"{base}/bulk?email_domain=spam.test").get_data(as_text=True)
    data = {"csrf_token": csrf_token(body), **_hidden_fields(body), **override}
    before = snapshot(session)
    response = client.post(f"{base}/bulk", data=data)
    assert response.status_code == status
    assert says in response.get_data(as_text=True)
    assert snapshot(session) == before


# --- roles ---------------------------------------------------------------------------------


def test_viewers_read_the_pages_but_cannot_act(
    client: FlaskClient, session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    held = _add(session, campaign, status="quarantined", name="Held Back").id
    _add(session, campaign, email="v@spam.test")
    _recount(session, campaign)
    viewer = make_user(session, app, email="viewer@example.org")
    add_member(session, collective, viewer, Role.VIEWER)
    login(client, viewer)
    base = _base(collective, campaign)

    assert client.get(f"{base}/").status_code == 200
    queue = client.get(f"{base}/moderation").get_data(as_text=True)
    assert "Held Back" in queue
    assert "Only owners and organisers can restore or reject signatures." in queue
    assert "/restore" not in queue
    preview = client.get(f"{base}/bulk?email_domain=spam.test").get_data(as_text=True)
    assert _preview_total(preview) == 1
    assert "Only owners and organisers can reject signatures." in preview
    assert 'name="expected"' not in preview

    before = snapshot(session)
    token = csrf_token(queue)
    as_of = datetime.now(UTC).isoformat()
    attempts = [
        (f"{base}/{held}/restore", {}),
        (f"{base}/{held}/reject", {}),
        (f"{base}/bulk", {"email_domain": "spam.test", "as_of": as_of, "expected": "1"}),
    ]
    for action, data in attempts:
        response = client.post(action, data={"csrf_token": token, **data})
        assert response.status_code == 403, action
        assert "Only owners or organisers of this collective can do that." in (
            response.get_data(as_text=True)
        )
    assert snapshot(session) == before


def test_an_organiser_can_act(
    client: FlaskClient, session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    held = _add(session, campaign, status="quarantined")
    organiser = make_user(session, app, email="organiser@example.org")
    add_member(session, collective, organiser, Role.ORGANISER)
    login(client, organiser)
    base = _base(collective, campaign)
    response = form_post(client, f"{base}/moderation", {}, action=f"{base}/{held.id}/reject")
    assert response.status_code == 303
    assert _statuses(session, campaign)[held.id] == "rejected"


def test_the_campaign_pages_link_to_the_signatures(
    client: FlaskClient, session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    login(client, _owner(session, collective))
    overview = client.get(f"/app/{collective.slug}/campaigns/{campaign.id}/")
    assert f'href="{_base(collective, campaign)}/">Signatures</a>' in overview.get_data(
        as_text=True
    )
    page = client.get(f"{_base(collective, campaign)}/").get_data(as_text=True)
    assert f'href="{_base(collective, campaign)}/" aria-current="page">Numbers' in page


# --- in a real browser ---------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.live
def test_an_organiser_moderates_and_rejects_in_bulk_in_a_browser_with_axe_on_every_page(
    live_app_factory: Callable[..., Flask], live_db: str, mailbox: Mailbox, browser: LazyBrowser
) -> None:
    with serve_live_app(live_app_factory) as live:
        with database(live.app).session_scope() as s:
            collective, campaign = _published(s, live.app, slug="signatures-journey")
            for day in (DAY1, DAY1, DAY3):
                _add(s, campaign, verified_at=day, postcode="SW1A 1AA")
            _add(s, campaign, email="one@spam.test", verified_at=DAY3)
            _add(s, campaign, email="two@spam.test", status="pending")
            _add(s, campaign, status="quarantined", name="Quinn Queue", email="quinn@example.org")
            _recount(s, campaign)
            owner_email = _owner(s, collective).email
            base = _base(collective, campaign)

        a11y = A11y()
        context = browser.get().new_context(
            base_url=live.url, viewport={"width": 1280, "height": 800}
        )
        context.set_default_timeout(10_000)
        try:
            page = a11y.watch(context.new_page())
            page.goto(f"/login?next={base}/")
            a11y.check(page)
            page.get_by_label("Email address", exact=True).fill(owner_email)
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Signatures")
            chart = page.get_by_role("img", name=re.compile(r"^Bar chart of verified signatures"))
            expect(chart).to_be_visible()
            expect(page.locator(".count").first).to_have_text("4")
            a11y.check(page)

            tabs = page.get_by_role("navigation", name="Signatures")
            tabs.get_by_role("link", name="Moderation queue").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Moderation queue")
            a11y.check(page)
            page.get_by_role("button", name="Restore the signature of Quinn Queue").click()
            expect(page.get_by_role("status")).to_contain_text("Restored the signature of Quinn")
            a11y.check(page)
            wait_for_link(live.app, mailbox, "quinn@example.org", "/confirm/")

            tabs.get_by_role("link", name="Reject in bulk").click()
            a11y.check(page)
            page.get_by_label("Email domain").fill("spam.test")
            page.get_by_role("button", name="Preview").click()
            expect(page.locator("#bulk-total")).to_have_text("2")
            a11y.check(page)
            page.get_by_role("button", name="Reject 2 signatures").click()
            expect(page.get_by_role("status")).to_contain_text("Rejected 2 signatures.")
            expect(page.locator(".count").first).to_have_text("3")
            a11y.check(page)

            page.goto(f"{base}/bulk?signed_from=yesterday")
            expect(page.get_by_role("alert")).to_contain_text("Enter a date and time like")
            a11y.check(page)
            a11y.assert_every_page_checked()
        finally:
            context.close()
