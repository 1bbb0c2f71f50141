"""Retention: signers' personal data is anonymised `retention_days` (default 180) after
their campaign concludes, by a daily job, with every count unchanged. The clock is
frozen: the job is run as if on day 179 and day 181 after the campaign concluded."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tests.conftest import run_worker
from tests.factories import add_member, login, make_user
from tests.test_signatures import _published
from web.accounts.models import User
from web.campaigns import services as campaigns
from web.campaigns.models import Campaign
from web.collectives.models import Collective, Membership, Role
from web.queueing import queue_name
from web.settings import Settings, SettingsError
from web.signatures import retention
from web.signatures import services as signing
from web.signatures.models import (
    Signature,
    SignatureImport,
    StatementBand,
    StatementGroup,
)
from web.signatures.trending import SignatureFlag
from web.tenancy import set_current_collective
from workers.cron import SCHEDULE
from workers.jobs.retention import anonymise_concluded_signers

_seq = itertools.count(1)
SIGNED = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)


def _add(session: Session, campaign: Campaign, **fields: Any) -> Signature:
    set_current_collective(session, campaign.collective_id)
    version = campaigns.current_version(session, campaign)
    assert version is not None
    n = next(_seq)
    email = fields.pop("email", f"Signer.{n}@Example.org")
    status = fields.pop("status", "verified")
    values: dict[str, Any] = {
        "campaign_id": campaign.id,
        "letter_version_id": version.id,
        "name": f"Signer Number {n}",
        "email": email,
        "email_canonical": signing.canonical_email(email) if email else f"offline:{n}",
        "postcode": "SW1A 1AA",
        "statement": f"My own words, number {n}.",
        "show_name": True,
        "show_statement": True,
        "statement_status": "approved",
        "wants_updates": True,
        "status": status,
        "secret_hash": bytes([n % 256]) * 32,
        "ip_hash": f"{n:064x}",
        "verified_at": SIGNED + timedelta(days=n % 5) if status == "verified" else None,
        **fields,
    }
    signature = Signature(**values)
    session.add(signature)
    session.flush()
    return signature


def _member(session: Session, collective: Collective, role: Role = Role.OWNER) -> Membership:
    set_current_collective(session, collective.id)
    membership = session.scalar(select(Membership).where(Membership.role == role))
    assert membership is not None
    return membership


def _owner_user(session: Session, collective: Collective) -> User:
    user = session.get(User, _member(session, collective).user_id)
    assert user is not None
    return user


def _conclude(session: Session, collective: Collective, campaign: Campaign) -> datetime:
    owner = _member(session, collective)
    campaigns.close_campaign(session, owner, campaign)
    campaigns.conclude_campaign(session, owner, campaign)
    assert campaign.concluded_at is not None
    return campaign.concluded_at


def _rows(session: Session, campaign_id: int, collective_id: int) -> list[dict[str, Any]]:
    session.expire_all()
    set_current_collective(session, collective_id)
    return [
        dict(row._mapping)
        for row in session.execute(
            select(Signature.__table__)
            .where(Signature.campaign_id == campaign_id)
            .order_by(Signature.id)
        )
    ]


def _report(session: Session, campaign_id: int, collective_id: int) -> tuple[Any, int]:
    session.expire_all()
    set_current_collective(session, collective_id)
    campaign = session.get(Campaign, campaign_id)
    assert campaign is not None
    return signing.signature_report(session, campaign), signing.verified_count(session, campaign)


@pytest.fixture
def world(session: Session, app: Flask) -> tuple[Collective, Campaign]:
    """A campaign with signatures of every status and method, postcodes of several
    regions (and none), statements, consents and IP hashes, and an exact count."""
    collective, campaign = _published(session, app)
    for postcode in ("SW1A 1AA", "M1 1AE", "EH1 1YZ", "BT1 5GS", "JE2 3AB", ""):
        _add(session, campaign, postcode=postcode)
    _add(session, campaign, method="assisted", channel="phone", email="", helper_name="Hal")
    _add(session, campaign, method="paper", channel="paper", postcode="CF10 1EP", email="")
    _add(session, campaign, needs_reconsent=True)
    for status in ("pending", "quarantined", "rejected", "withdrawn"):
        _add(session, campaign, status=status, postcode="NE1 4ST")
    set_current_collective(session, collective.id)
    signing.reconcile_counts(session, campaign.id)
    session.flush()
    return collective, campaign


# --- concluding ----------------------------------------------------------------------


def test_concluding_records_when_and_only_a_campaign_that_stopped_collecting_can(
    session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    owner = _member(session, collective)
    with pytest.raises(campaigns.CampaignError, match="collecting cannot become concluded"):
        campaigns.conclude_campaign(session, owner, campaign)
    assert campaign.concluded_at is None

    viewer = add_member(session, collective, make_user(session, app), Role.VIEWER)
    set_current_collective(session, collective.id)
    campaigns.close_campaign(session, owner, campaign)
    with pytest.raises(PermissionError, match="Only owners or organisers"):
        campaigns.conclude_campaign(session, viewer, campaign)

    before = datetime.now(UTC)
    campaigns.conclude_campaign(session, owner, campaign)
    assert campaign.state == "concluded"
    assert campaign.concluded_at is not None
    assert before <= campaign.concluded_at <= datetime.now(UTC)
    with pytest.raises(campaigns.CampaignError):
        campaigns.conclude_campaign(session, owner, campaign)

    # The database itself refuses a concluded campaign without the date retention needs.
    set_current_collective(session, collective.id)
    with pytest.raises(IntegrityError, match="ck_campaigns_concluded_at"), session.begin_nested():
        session.execute(
            update(Campaign).where(Campaign.id == campaign.id).values(concluded_at=None)
        )


def test_every_signature_column_is_either_cleared_or_kept_on_purpose() -> None:
    """A column added later (personal or not) fails here until it joins one list."""
    columns = {c.name for c in Signature.__table__.columns}
    cleared, kept = set(retention.CLEARED_COLUMNS), set(retention.KEPT_COLUMNS)
    assert not cleared & kept
    assert columns == cleared | kept, (
        f"decide for {sorted(columns - cleared - kept)}; gone: {sorted((cleared | kept) - columns)}"
    )


# --- the job, with a frozen clock ------------------------------------------------------


def test_signers_are_anonymised_after_180_days_and_every_count_stays(
    client: FlaskClient, session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    campaign_id, collective_id = campaign.id, collective.id
    # A paper signature from an import, whose words founded a group of near-duplicates.
    group = StatementGroup(campaign_id=campaign_id, minhash=b"\x01" * 16)
    batch = SignatureImport(
        campaign_id=campaign_id, file_name="forms.csv", sha256="0" * 64, helper_name="Helen"
    )
    session.add_all([group, batch])
    session.flush()
    session.add(StatementBand(group_id=group.id, band=0, campaign_id=campaign_id, band_hash=7))
    flag = SignatureFlag(
        campaign_id=campaign_id,
        kind="ip_hash",
        value="ab" * 32,
        recent=50,
        baseline=1,
        status="open",
        last_seen_at=SIGNED,
    )
    session.add(flag)
    session.flush()
    flag_id = flag.id
    _add(session, campaign, method="paper", channel="paper", email="", import_id=batch.id)
    _add(session, campaign, statement_group_id=group.id, statement_hidden_reason="Rude")
    signing.reconcile_counts(session, campaign_id)
    group_id, batch_id = group.id, batch.id

    concluded_at = _conclude(session, collective, campaign)
    original = _rows(session, campaign_id, collective_id)
    report_before, count_before = _report(session, campaign_id, collective_id)
    assert count_before == 10  # the verified ones, less the one awaiting re-consent

    # Day 179: nothing happens.
    assert anonymise_concluded_signers(now=concluded_at + timedelta(days=179)) == 0
    assert _rows(session, campaign_id, collective_id) == original
    assert session.get(Campaign, campaign_id).signers_anonymised_at is None  # type: ignore[union-attr]

    # Day 181: every signature of the campaign, whatever its status, is anonymised.
    day_181 = concluded_at + timedelta(days=181)
    assert anonymise_concluded_signers(now=day_181) == len(original)
    after = _rows(session, campaign_id, collective_id)
    assert len(after) == len(original)
    areas = {"SW1A 1AA": "SW", "M1 1AE": "M", "EH1 1YZ": "EH", "BT1 5GS": "BT"}
    areas |= {"JE2 3AB": "JE", "CF10 1EP": "CF", "NE1 4ST": "NE", "": ""}
    for old, new in zip(original, after, strict=True):
        kept = retention.KEPT_COLUMNS
        assert {k: new[k] for k in kept} == {k: old[k] for k in kept}
        assert new["postcode"] == areas[old["postcode"]]
        assert new["name"] == ""
        assert new["statement"] == ""
        assert new["ip_hash"] == ""
        assert new["email"] == new["email_canonical"] == f"anonymised:{old['id']}"
        assert bytes(new["secret_hash"]) == bytes(32)
        assert new["show_name"] is False
        assert new["wants_updates"] is False
        for column in retention.CLEARED_COLUMNS:
            if column not in {"email", "email_canonical", "postcode", "secret_hash"}:
                assert not new[column] or new[column] == "none", column
        assert new["statement_status"] == "none"
        assert new["method"] == old["method"]
        assert new["channel"] == old["channel"]
    # Nothing of any signer is left anywhere in the rows.
    every_value = repr(after)
    for old in original:
        for column in ("name", "statement", "ip_hash"):
            assert old[column] not in every_value
        if old["email"]:
            assert old["email"] not in every_value

    # The near-duplicate groups (a MinHash of the words) and the trending flags (IP
    # hashes, email domains) go; the helper's name too.
    assert session.get(StatementGroup, group_id) is None
    assert session.get(SignatureFlag, flag_id) is None
    assert not session.scalars(
        select(StatementBand).where(StatementBand.group_id == group_id)
    ).all()
    imported = session.get(SignatureImport, batch_id)
    assert imported is not None
    assert imported.helper_name == ""
    assert imported.file_name == "forms.csv"

    report_after, count_after = _report(session, campaign_id, collective_id)
    assert count_after == count_before
    assert report_after == report_before
    assert dict(report_after.by_region)["London"] == 4
    assert dict(report_after.by_region)["Unknown"] == 1  # Jersey stays outside the regions
    assert dict(report_after.by_region)["Not given"] == 1
    campaign_after = session.get(Campaign, campaign_id)
    assert campaign_after is not None
    assert campaign_after.signers_anonymised_at == day_181

    # Running again is harmless: nothing is due, nothing changes.
    assert anonymise_concluded_signers(now=day_181 + timedelta(days=1)) == 0
    assert _rows(session, campaign_id, collective_id) == after
    session.expire_all()
    assert session.get(Campaign, campaign_id).signers_anonymised_at == day_181  # type: ignore[union-attr]

    # The organisers see the same numbers, and why the names are gone.
    login(client, _owner_user(session, collective))
    body = client.get(f"/app/{collective.slug}/campaigns/{campaign_id}/signatures/").get_data(
        as_text=True
    )
    assert '<span class="count">10</span> verified signatures' in body
    assert "names, email addresses and own words were removed on" in body


def test_only_campaigns_past_their_retention_period_are_touched(
    session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    mine = (campaign.id, collective.id)
    concluded_at = _conclude(session, collective, campaign)
    # Another collective's campaign, concluded ten days later.
    other, recent = _published(session, app, slug="recent")
    _add(session, recent)
    owner = _member(session, other)
    campaigns.close_campaign(session, owner, recent)
    campaigns.conclude_campaign(session, owner, recent)
    session.execute(
        update(Campaign)
        .where(Campaign.id == recent.id)
        .values(concluded_at=concluded_at + timedelta(days=10))
    )
    later = (recent.id, other.id)
    # And a third one still collecting signatures.
    third, collecting = _published(session, app, slug="still-going")
    _add(session, collecting)
    going = (collecting.id, third.id)
    later_rows, going_rows = _rows(session, *later), _rows(session, *going)

    run = retention.anonymise_due_campaigns(
        session, retention_days=180, now=concluded_at + timedelta(days=181)
    )
    assert run.campaigns == [mine[0]]
    assert [r["name"] for r in _rows(session, *mine)] == [""] * 13
    assert _rows(session, *later) == later_rows
    assert _rows(session, *going) == going_rows

    # The other campaign's turn comes 180 days after its own conclusion.
    run = retention.anonymise_due_campaigns(
        session, retention_days=180, now=concluded_at + timedelta(days=191)
    )
    assert run.campaigns == [later[0]]
    assert [r["name"] for r in _rows(session, *later)] == [""]
    assert _rows(session, *going) == going_rows


def test_batches_are_committed_one_by_one_and_an_interrupted_run_resumes(
    session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    concluded_at = _conclude(session, collective, campaign)
    set_current_collective(session, collective.id)

    def anonymised() -> int:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Signature)
                .where(
                    Signature.campaign_id == campaign.id,
                    Signature.email_canonical.startswith("anonymised:"),
                )
            )
            or 0
        )

    # A run that dies after its first batch of 5 leaves those 5 done (committed).
    first = retention.anonymise_batch(session, campaign.id, limit=5)
    assert len(first) == 5
    assert anonymised() == 5

    seen: list[int] = []
    run = retention.anonymise_due_campaigns(
        session,
        retention_days=180,
        now=concluded_at + timedelta(days=181),
        batch_size=3,
        checkpoint=lambda: seen.append(anonymised()),
    )
    # It resumed after the 5 already done: 8 more in batches of 3, 3 and 2, then the mark.
    assert run.signatures == 8
    assert seen == [8, 11, 13, 13]


def test_the_daily_job_runs_from_the_schedule_through_a_worker(
    session: Session, app: Flask, redis: Redis, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    [entry] = [e for e in SCHEDULE if e.name == "anonymise-signers"]
    assert entry.every_seconds == 24 * 3600
    concluded_at = _conclude(session, collective, campaign)
    # Concluded 181 days ago by the real clock.
    session.execute(
        update(Campaign)
        .where(Campaign.id == campaign.id)
        .values(concluded_at=concluded_at - timedelta(days=181))
    )
    session.flush()
    settings: Settings = app.extensions["chorus.settings"]
    Queue(queue_name(settings, entry.queue), connection=redis).enqueue(entry.func)
    run_worker(app, (entry.queue,))
    rows = _rows(session, campaign.id, collective.id)
    assert [r["name"] for r in rows] == [""] * len(rows)
    assert session.get(Campaign, campaign.id).signers_anonymised_at is not None  # type: ignore[union-attr]


# --- the setting -----------------------------------------------------------------------

BASE = {
    "CHORUS_ENV": "development",
    "CHORUS_INSTANCE_PATH": "/nonexistent/chorus-instance",
    "SECRET_KEY": "s" * 40,
}


def test_the_retention_period_is_180_days_unless_configured() -> None:
    assert Settings.from_env(BASE).retention_days == 180
    assert Settings.from_env({**BASE, "SIGNER_RETENTION_DAYS": " 30 "}).retention_days == 30


@pytest.mark.parametrize("value", ["0", "-5", "half a year", "", "3651"])
def test_a_bad_retention_period_stops_start_up_naming_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="SIGNER_RETENTION_DAYS"):
        Settings.from_env({**BASE, "SIGNER_RETENTION_DAYS": value})


def test_the_retention_setting_is_documented_in_the_readme() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "| `SIGNER_RETENTION_DAYS` | `180` |" in readme
