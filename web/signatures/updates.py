"""Updates to signers: an organiser writes to the verified signers who asked for news.

What an organiser and a signer can rely on:
- Only verified signers who ticked "send me updates", have an email address (paper
  signatures may have none) and have not unsubscribed receive an update.
- Rate limits, so signers are not flooded: one update per campaign per
  UPDATE_INTERVAL, and at most COLLECTIVE_DAILY_LIMIT per collective in any such window.
  The refusal says when the next update is allowed.
- Sending happens in the background, in batches of BATCH_SIZE signers ordered by id.
  Each batch is one transaction (the `send_update_batch` job): it reads the signers
  after the update's cursor, re-checking their consent, queues one email each through
  the outbox, moves the cursor past them and enqueues the next batch. A crash anywhere
  in a batch rolls all of it back (no email leaves without the cursor moving past its
  signer), and the batch runs again from the same cursor; a batch already done is
  recognised by its cursor and skipped. So nobody gets an update twice, and an
  unsubscribe takes effect for every batch after it.
- Every email carries a one-click unsubscribe (RFC 8058): a List-Unsubscribe header with
  an https link, List-Unsubscribe-Post, and the same link in the text. A POST to the link
  unsubscribes at once, with no login and no CSRF token: the link's token is the proof.

The unsubscribe token is derived, not stored: `<signature id>.<HMAC-SHA256 of the id>`,
keyed with a key derived from the app's SECRET_KEY (256 bits, base64url), and checked
with `hmac.compare_digest`. A stored random secret (the house pattern for confirmation
links) does not fit here: only its SHA-256 is kept, so it could not be put into the
next update's email, and a new secret per email would either break the links in older
emails (which mail clients keep offering for years) or need a row per email. The
derived token stays valid for as long as the signature exists, costs no write per
recipient, and reveals nothing (the id alone is not enough to forge it). Rotating
SECRET_KEY invalidates outstanding unsubscribe links; the next update carries new ones.

The model lives here rather than in `models.py` because only this feature uses it.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from web import tokens
from web.accounts.models import User
from web.campaigns.models import Campaign
from web.collectives.models import Collective, Membership, Role
from web.collectives.services import require_role
from web.db import Base, IdMixin, TimestampMixin, sql_in, utcnow
from web.emails import send_templated_email
from web.forms import BIDI_CONTROLS
from web.outbox import enqueue_job
from web.settings import Settings
from web.signatures.models import Signature, SignatureStatus
from web.tenancy import TenantScoped

MAX_SUBJECT = 150
MAX_BODY = 10_000
BATCH_SIZE = 500
MAX_BATCH_SIZE = 5_000  # what one job (one transaction) may take on
UPDATE_INTERVAL = timedelta(hours=24)
COLLECTIVE_DAILY_LIMIT = 3
SEND_BATCH_JOB = "workers.jobs.updates.send_update_batch"
PAGE_SIZE = 20  # past updates listed on the organiser's page


class UpdateStatus(enum.StrEnum):
    QUEUED = "queued"  # written; its first batch has not run yet
    SENDING = "sending"  # some batches done
    SENT = "sent"  # every opted-in signer's email is in the outbox


class CampaignUpdate(TenantScoped, IdMixin, TimestampMixin, Base):
    """One update to a campaign's signers, and how far its sending has got."""

    __tablename__ = "campaign_updates"
    __table_args__ = (
        CheckConstraint(f"status IN ({sql_in(UpdateStatus)})", name="status"),
        CheckConstraint("recipient_count >= 0 AND sent_count >= 0", name="counts"),
        # The rate limits and the page's list read a campaign's updates newest first.
        Index("ix_campaign_updates_campaign_id_created_at", "campaign_id", "created_at"),
    )

    campaign_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("campaigns.id", ondelete="CASCADE")
    )
    author_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL")
    )
    subject: Mapped[str] = mapped_column(String(MAX_SUBJECT))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=UpdateStatus.QUEUED.value)
    # Opted-in signers when the organiser pressed Send (the progress bar's total).
    recipient_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Emails queued in committed batches: each leaves exactly once through the outbox.
    sent_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The cursor: the highest signature id already served (0 before the first batch).
    last_signature_id: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Written by Chorus when a delivery reaches a milestone (web/delivery/loop.py), not by
    # an organiser: outside the organisers' allowance, and labelled as such.
    is_automatic: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")


class UpdateError(ValueError):
    """The organiser must change something; `field` names the form field, if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UpdateRateLimited(UpdateError):
    """Too soon after an earlier update; `next_at` is when the next one is allowed."""

    def __init__(self, message: str, next_at: datetime) -> None:
        super().__init__(message)
        self.next_at = next_at


# --- who receives an update ------------------------------------------------------------


def _recipients_where(campaign_id: int) -> list[Any]:
    # Matches the partial index ix_signatures_update_recipients (campaign_id, id).
    return [
        Signature.campaign_id == campaign_id,
        Signature.wants_updates.is_(True),
        Signature.status == SignatureStatus.VERIFIED.value,
        Signature.email != "",
    ]


def count_recipients(session: Session, campaign: Campaign) -> int:
    """How many signers an update sent now would reach."""
    total = session.scalar(
        select(func.count()).select_from(Signature).where(*_recipients_where(campaign.id))
    )
    return int(total or 0)


# --- composing and sending ---------------------------------------------------------------


def clean_update(subject: str, body: str) -> tuple[str, str]:
    """The subject and body as they will be sent, or UpdateError naming the field.

    The forms check the same; the service checks again so no caller can put a line
    break into an email header."""
    subject = subject.strip()
    body = body.strip().replace("\r\n", "\n").replace("\r", "\n")
    if not subject:
        raise UpdateError("Enter a subject.", "subject")
    if len(subject) > MAX_SUBJECT:
        raise UpdateError(f"The subject must be {MAX_SUBJECT} characters or fewer.", "subject")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in subject):
        raise UpdateError(
            "Remove the line breaks and invisible control characters from the subject.",
            "subject",
        )
    if any(ch in BIDI_CONTROLS for ch in subject):
        raise UpdateError(
            "Remove the invisible text-direction characters from the subject.", "subject"
        )
    if not body:
        raise UpdateError("Enter the message.", "body")
    if len(body) > MAX_BODY:
        raise UpdateError(f"The message must be {MAX_BODY:,} characters or fewer.", "body")
    if "\x00" in subject or "\x00" in body:
        raise UpdateError("Remove the null character from your text.", "body")
    return subject, body


def _when(moment: datetime) -> str:
    return f"{moment:%H:%M} UTC on {moment.day} {moment:%B %Y}"


def next_allowed_at(
    session: Session, campaign: Campaign, now: datetime | None = None
) -> tuple[datetime, str] | None:
    """When the next update is allowed and why, or None if one may be sent now."""
    now = now or utcnow()
    window_start = now - UPDATE_INTERVAL
    # Automatic updates (a delivery's milestones, web/delivery/loop.py) are news the
    # signers asked for; they neither wait for nor use up this allowance.
    last_here = session.scalar(
        select(func.max(CampaignUpdate.created_at)).where(
            CampaignUpdate.campaign_id == campaign.id,
            CampaignUpdate.created_at > window_start,
            CampaignUpdate.is_automatic.is_(False),
        )
    )
    if last_here is not None:
        at = last_here + UPDATE_INTERVAL
        return at, (
            "This campaign sent an update less than 24 hours ago. To keep signers with "
            f"you, send at most one a day: the next one can go from {_when(at)}."
        )
    recent = session.scalars(
        select(CampaignUpdate.created_at)
        .where(
            CampaignUpdate.collective_id == campaign.collective_id,
            CampaignUpdate.created_at > window_start,
            CampaignUpdate.is_automatic.is_(False),
        )
        .order_by(CampaignUpdate.created_at.desc())
        .limit(COLLECTIVE_DAILY_LIMIT)
    ).all()
    if len(recent) >= COLLECTIVE_DAILY_LIMIT:
        at = recent[-1] + UPDATE_INTERVAL
        return at, (
            f"Your collective has sent {COLLECTIVE_DAILY_LIMIT} updates in the last 24 "
            f"hours, the most we allow. The next one can go from {_when(at)}."
        )
    return None


def send_update(
    session: Session,
    actor: Membership,
    campaign: Campaign,
    *,
    subject: str,
    body: str,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
) -> CampaignUpdate:
    """Record an update and enqueue its first batch (after commit). Owners and
    organisers only; refuses a draft campaign, an update with nobody to receive it, and
    one the rate limits forbid. Flushes; sends nothing itself."""
    require_role(actor, Role.OWNER, Role.ORGANISER)
    subject, body = clean_update(subject, body)
    if campaign.published_at is None:
        raise UpdateError("Publish the campaign first: only its signers can get updates.")
    # Two organisers pressing Send at once must not both pass the limits: take turns per
    # collective. NO KEY UPDATE, so signing (which only key-share locks) is not held up.
    session.execute(
        select(Collective.id)
        .where(Collective.id == campaign.collective_id)
        .with_for_update(key_share=True)
    )
    # created_at is the transaction's now() in the database: compare with that clock.
    now = now or session.scalar(select(func.now())) or utcnow()
    limit = next_allowed_at(session, campaign, now)
    if limit is not None:
        raise UpdateRateLimited(limit[1], limit[0])
    recipients = count_recipients(session, campaign)
    if recipients == 0:
        raise UpdateError(
            "No verified signer has asked for updates yet, so there is nobody to send this to."
        )
    row = CampaignUpdate(
        collective_id=campaign.collective_id,
        campaign_id=campaign.id,
        author_id=actor.user_id,
        subject=subject,
        body=body,
        status=UpdateStatus.QUEUED.value,
        recipient_count=recipients,
        created_at=now,
    )
    session.add(row)
    session.flush()
    _enqueue_batch(session, row, batch_size)
    return row


def _enqueue_batch(session: Session, row: CampaignUpdate, batch_size: int) -> None:
    enqueue_job(
        session,
        SEND_BATCH_JOB,
        payload={
            "update_id": row.id,
            "after_id": row.last_signature_id,
            "batch_size": batch_size,
        },
        collective_id=row.collective_id,
    )


def send_next_batch(
    session: Session,
    settings: Settings,
    update_id: int,
    after_id: int,
    batch_size: int = BATCH_SIZE,
) -> int:
    """Queue the update's email for the next `batch_size` opted-in signers after the
    cursor, move the cursor, and enqueue the following batch (or mark the update sent).

    Idempotent: the update row is locked, and a batch whose cursor has already moved on
    (it ran before) does nothing. Consent is read afresh, so someone who unsubscribed
    during the send is skipped. Returns how many emails were queued. Flushes only: the
    job commits the batch as one transaction.
    """
    row = session.scalar(
        select(CampaignUpdate).where(CampaignUpdate.id == update_id).with_for_update()
    )
    if row is None or row.status == UpdateStatus.SENT.value or row.last_signature_id != after_id:
        return 0
    campaign = session.get(Campaign, row.campaign_id)
    collective = session.get(Collective, row.collective_id)
    if campaign is None or collective is None:
        return 0
    signers = session.execute(
        select(Signature.id, Signature.name, Signature.email)
        .where(*_recipients_where(campaign.id), Signature.id > row.last_signature_id)
        .order_by(Signature.id)
        .limit(batch_size)
    ).all()
    base = f"{settings.base_url}/{collective.slug}/{campaign.slug}"
    paragraphs = _paragraphs(row.body)
    for signature_id, name, email in signers:
        link = f"{base}/unsubscribe/{unsubscribe_token(settings, signature_id)}"
        send_templated_email(
            session,
            settings,
            to=email,
            template="update",
            subject=row.subject,
            context={
                "name": name,
                "campaign": campaign,
                "collective": collective,
                "update": row,
                "paragraphs": paragraphs,
                "campaign_url": base,
                "unsubscribe_url": link,
            },
            collective_id=row.collective_id,
            headers={
                "List-Unsubscribe": f"<{link}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        )
    now = utcnow()
    row.started_at = row.started_at or now
    row.sent_count += len(signers)
    if signers:
        row.last_signature_id = signers[-1][0]
    if len(signers) == batch_size:
        row.status = UpdateStatus.SENDING.value
        session.flush()
        _enqueue_batch(session, row, batch_size)
    else:
        row.status = UpdateStatus.SENT.value
        row.sent_at = now
    session.flush()
    return len(signers)


def _paragraphs(body: str) -> list[list[str]]:
    """The body as paragraphs (blank-line separated) of lines, for the HTML email: the
    template escapes each line and joins them with <br>, so line breaks survive."""
    blocks = [block.strip("\n") for block in body.split("\n\n")]
    return [block.split("\n") for block in blocks if block.strip()]


# --- the organiser's list -------------------------------------------------------------------


@dataclass(frozen=True)
class UpdateRow:
    update: CampaignUpdate
    author: str


def list_updates(session: Session, campaign: Campaign, limit: int = PAGE_SIZE) -> list[UpdateRow]:
    """The campaign's latest updates, newest first, with their author's name."""
    rows = session.execute(
        select(CampaignUpdate, User.display_name)
        .outerjoin(User, User.id == CampaignUpdate.author_id)
        .where(CampaignUpdate.campaign_id == campaign.id)
        .order_by(CampaignUpdate.created_at.desc(), CampaignUpdate.id.desc())
        .limit(limit)
    ).all()
    return [
        UpdateRow(u, "Chorus, automatically" if u.is_automatic else author or "A former member")
        for u, author in rows
    ]


# --- unsubscribing --------------------------------------------------------------------------


def _unsubscribe_key(settings: Settings) -> bytes:
    # A key of its own, so this token can never be mistaken for another HMAC of the id.
    return hmac.new(settings.secret_key.encode(), b"chorus:unsubscribe:v1", hashlib.sha256).digest()


def _unsubscribe_mac(settings: Settings, signature_id: int) -> str:
    digest = hmac.new(_unsubscribe_key(settings), str(signature_id).encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def unsubscribe_token(settings: Settings, signature_id: int) -> str:
    """`<id>.<43 characters>`: 256 bits that only this app can make for this signature."""
    return tokens.compose(signature_id, _unsubscribe_mac(settings, signature_id))


def check_unsubscribe_token(settings: Settings, raw: str | None) -> int | None:
    """The signature id the token was made for, or None. Needs no database."""
    parsed = tokens.parse(raw)
    if parsed is None:
        return None
    signature_id, mac = parsed
    if not hmac.compare_digest(mac.encode(), _unsubscribe_mac(settings, signature_id).encode()):
        return None
    return signature_id


def find_subscriber(session: Session, campaign: Campaign, signature_id: int) -> Signature | None:
    return session.scalar(
        select(Signature).where(Signature.id == signature_id, Signature.campaign_id == campaign.id)
    )


def unsubscribe(session: Session, signature: Signature) -> bool:
    """Stop updates for this signer at once. Idempotent: returns whether they were
    still subscribed (the first moment they stopped is kept)."""
    was_subscribed = signature.wants_updates
    session.execute(
        update(Signature)
        .where(Signature.id == signature.id)
        .values(
            wants_updates=False,
            unsubscribed_at=func.coalesce(Signature.unsubscribed_at, func.now()),
        )
        .execution_options(synchronize_session=False)
    )
    session.refresh(signature)
    return was_subscribed
