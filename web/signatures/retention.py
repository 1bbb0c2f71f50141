"""Retention: signers' personal data is anonymised `retention_days` after their campaign
concludes (PRODUCT.md: "purge signatory data on a schedule after a campaign concludes").

What goes, on every signature of the campaign whatever its status (CLEARED_COLUMNS): the
name, the email (email and the canonical email, which must stay unique per campaign,
become "anonymised:<id>", which names nobody and has no "@"), the signer's own words and
everything about them (consent to show them, moderation state and reason, group), the
IP hash, the secrets of every emailed link (replaced by nothing any link can match), the
helper's name on assisted signatures, and the consents that only mean something with a
name or an address (show my name, send me updates). The campaign's near-duplicate
statement groups (a MinHash of the words) and its trending flags (which name IP hashes
and email domains) are deleted, and the helper's name on its paper imports is cleared.

What stays (KEPT_COLUMNS): status, method and channel, letter version, re-consent flag,
quarantine reason, timestamps and the postcode AREA ("SW1A 1AA" becomes "SW"). So every
number the organisers' counts page shows (by status, method, region and day) and the
public count (the shard rows are not touched) are the same before and after.

Work is done in batches of BATCH_SIZE rows, keyed on the signature id, with `checkpoint`
(the job passes `session.commit`) called after each: a campaign of a million signatures
never holds one long transaction or a million row locks, and a crash loses one batch.
Every step is idempotent (anonymising an anonymised row writes the same values), so a
job that dies half-way is simply run again; a campaign is marked `signers_anonymised_at`
only once all its batches are done, and is skipped after that.

Like the other services this never commits itself; it takes the clock (`now`) as an
argument so tests can freeze it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    String,
    case,
    cast,
    delete,
    func,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.orm import Session

from web.campaigns.models import Campaign, CampaignState
from web.db import utcnow
from web.signatures.models import Signature, SignatureImport, StatementGroup, StatementStatus
from web.signatures.trending import SignatureFlag
from web.tenancy import current_collective_id, set_current_collective, system_scope

BATCH_SIZE = 5000
ANONYMISED_PREFIX = "anonymised:"
# No secret hashes to 32 zero bytes, so tokens.matches() never succeeds against it.
NO_SECRET_HASH = b"\x00" * 32

# Every column of `signatures` is in exactly one of these two lists (a test checks), so a
# new column cannot slip past retention without someone deciding which list it joins.
CLEARED_COLUMNS = (
    "name",
    "email",
    "email_canonical",
    "statement",
    "ip_hash",
    "secret_hash",
    "show_name",
    "wants_updates",
    "postcode",  # cut to its area
    "helper_name",  # assisted and paper signatures
    "manage_secret_hash",  # self-service link
    "reconsent_secret_hash",  # re-consent link
    "show_statement",
    "statement_status",  # back to "none"
    "statement_hidden_reason",
    "statement_moderated_at",
    "statement_group_id",
)
KEPT_COLUMNS = (
    "id",
    "collective_id",
    "campaign_id",
    "letter_version_id",
    "status",
    "method",
    "channel",
    "needs_reconsent",
    "quarantine_reason",  # "honeypot", "too-fast": about the submission, not the person
    "confirmations_sent",
    "created_at",
    "verified_at",
    "consent_confirmed_at",
    "recorded_by_id",  # the organiser who recorded an assisted signature
    "import_id",
    "reconsent_version_id",
    "unsubscribed_at",
)


@dataclass(frozen=True)
class RetentionRun:
    """What one run did: campaigns finished, and signature rows written."""

    campaigns: list[int]
    signatures: int


def retention_cutoff(now: datetime, retention_days: int) -> datetime:
    """Campaigns concluded at or before this moment are due."""
    return now - timedelta(days=retention_days)


def campaigns_due(
    session: Session, *, retention_days: int, now: datetime | None = None
) -> list[tuple[int, int]]:
    """(campaign id, collective id) of every concluded campaign, in any collective, whose
    retention period is over and whose signers are not yet anonymised. Reads only."""
    cutoff = retention_cutoff(now or utcnow(), retention_days)
    with system_scope(session):
        rows = session.execute(
            select(Campaign.id, Campaign.collective_id)
            .where(
                Campaign.state == CampaignState.CONCLUDED.value,
                Campaign.concluded_at <= cutoff,
                Campaign.signers_anonymised_at.is_(None),
            )
            .order_by(Campaign.concluded_at, Campaign.id),
            execution_options={"all_collectives": True},
        ).all()
    return [(int(c), int(k)) for c, k in rows]


def _postcode_area() -> ColumnElement[str]:
    # The same reading of the area as signature_report(): '' stays '', letters are
    # kept, and anything unreadable becomes '?' (still "Unknown" in the report).
    return case(
        (Signature.postcode == literal_column("''"), literal_column("''")),
        else_=func.coalesce(
            func.substring(Signature.postcode, literal_column("'^[A-Z]{1,2}'")),
            literal_column("'?'"),
        ),
    )


def anonymise_batch(
    session: Session, campaign_id: int, *, after_id: int = 0, limit: int = BATCH_SIZE
) -> list[int]:
    """Anonymise the next `limit` signatures of the campaign with an id above `after_id`
    (the current collective must own it), in one UPDATE. Returns the ids written (none
    when the campaign has no more). Idempotent."""
    batch = (
        select(Signature.id)
        .where(Signature.campaign_id == campaign_id, Signature.id > after_id)
        .order_by(Signature.id)
        .limit(limit)
        .scalar_subquery()
    )
    anonymised = literal(ANONYMISED_PREFIX) + cast(Signature.id, String)
    ids = session.scalars(
        update(Signature)
        .where(Signature.id.in_(batch))
        .values(
            name="",
            # An online signature may not have an empty email (ck_signatures_online_email),
            # so it gets the same non-address as email_canonical: no "@", no mail.
            email=anonymised,
            email_canonical=anonymised,
            statement="",
            ip_hash="",
            secret_hash=NO_SECRET_HASH,
            show_name=False,
            wants_updates=False,
            postcode=_postcode_area(),
            helper_name="",
            manage_secret_hash=None,
            reconsent_secret_hash=None,
            # Own words are gone, so is everything about them (and the grouping job,
            # which reads statement_status, leaves the rows alone).
            show_statement=False,
            statement_status=StatementStatus.NONE.value,
            statement_hidden_reason="",
            statement_moderated_at=None,
            statement_group_id=None,
        )
        .returning(Signature.id)
        .execution_options(synchronize_session=False)
    ).all()
    return list(ids)


def anonymise_campaign(
    session: Session,
    campaign_id: int,
    *,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    checkpoint: Callable[[], None] | None = None,
) -> int:
    """Anonymise every signature of one campaign (of the current collective), batch by
    batch, calling `checkpoint` after each; then mark the campaign done. Returns the
    number of rows written. Idempotent."""
    written = 0
    # Resume where an interrupted run stopped: batches go in id order, so every row
    # below the first one not yet anonymised is done.
    first_left = session.scalar(
        select(func.min(Signature.id)).where(
            Signature.campaign_id == campaign_id,
            Signature.email_canonical.not_like(f"{ANONYMISED_PREFIX}%"),
        )
    )
    after = int(first_left) - 1 if first_left is not None else None
    while after is not None and (
        ids := anonymise_batch(session, campaign_id, after_id=after, limit=batch_size)
    ):
        written += len(ids)
        after = max(ids)
        if checkpoint is not None:
            checkpoint()
    session.execute(
        delete(StatementGroup)
        .where(StatementGroup.campaign_id == campaign_id)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        delete(SignatureFlag)
        .where(SignatureFlag.campaign_id == campaign_id)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(SignatureImport)
        .where(SignatureImport.campaign_id == campaign_id, SignatureImport.helper_name != "")
        .values(helper_name="")
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.signers_anonymised_at.is_(None))
        .values(signers_anonymised_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Signature | Campaign | SignatureImport | StatementGroup | SignatureFlag):
            session.expire(obj)  # the UPDATEs went around them
    if checkpoint is not None:
        checkpoint()
    return written


def anonymise_due_campaigns(
    session: Session,
    *,
    retention_days: int,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    checkpoint: Callable[[], None] | None = None,
) -> RetentionRun:
    """Anonymise the signers of every campaign whose retention period is over (see the
    module docstring). Spans collectives: each campaign is worked on as its own
    collective, so the ORM filter and row-level security apply to every write.
    Idempotent: a second run finds nothing due. Sends no email."""
    now = now or utcnow()
    done: list[int] = []
    total = 0
    previous = current_collective_id(session)
    try:
        for campaign_id, collective_id in campaigns_due(
            session, retention_days=retention_days, now=now
        ):
            set_current_collective(session, collective_id)
            total += anonymise_campaign(
                session, campaign_id, now=now, batch_size=batch_size, checkpoint=checkpoint
            )
            done.append(campaign_id)
    finally:
        set_current_collective(session, previous)
    return RetentionRun(done, total)
