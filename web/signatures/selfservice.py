"""Signatory self-service: see, withdraw or erase one's signature; re-consent to a new
version of the letter.

Promises to a signer:
- Every confirmation email carries a private link (`<signature id>.<secret>`, the secret
  stored as SHA-256 only, compared in constant time) to a page showing everything stored
  about their signature. A re-consent email carries a second such link that opens the
  same page; either stops working once the signature is erased.
- Withdrawing takes the signature out of the count at once and keeps the details so the
  signer can still see them.
- Erasing removes every personal detail. Before the letter is delivered the row goes;
  after, an anonymous tombstone (status "erased": method, letter version and times only)
  keeps the delivered numbers explainable. Neither is counted.
- After a new version, each signer of an older one gets one email per new version
  (`send_reconsent_batch`, run by workers/jobs/reconsent.py) and counts again once they
  confirm the new text (`confirm_new_version`).

Like every service, these functions only flush; emails leave through the outbox after
the caller commits.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, or_, select, text, update
from sqlalchemy.orm import Session

from web import tokens
from web.campaigns.models import Campaign, CampaignState, LetterVersion
from web.campaigns.services import DiffLine, current_version, diff_contents
from web.collectives.models import Collective
from web.emails import send_templated_email
from web.settings import Settings
from web.signatures.models import Signature, SignatureStatus, StatementStatus
from web.signatures.services import _add_to_count

# From delivery on, the letter's numbers are on record: an erased signature leaves an
# anonymous tombstone instead of disappearing.
DELIVERED_STATES = frozenset(
    {
        CampaignState.DELIVERED.value,
        CampaignState.ACKNOWLEDGED.value,
        CampaignState.RESPONDED.value,
        CampaignState.MEETING_SCHEDULED.value,
        CampaignState.CONCLUDED.value,
    }
)
# A tombstone's confirmation secret: no secret hashes to all zeros that anyone can find.
ERASED_SECRET_HASH = b"\0" * 32
ERASED_PREFIX = "erased:"
RECONSENT_BATCH = 500

INVALID_LINK = (
    "This link is not valid. Copy the whole link from your email, or use the link in the "
    "newest email about your signature. If you erased your signature, its link stops "
    "working: there is nothing left to show."
)


class LinkInvalid(LookupError):
    """The link names no signature of this campaign, or its secret does not match."""


class SelfServiceError(ValueError):
    """The signer asked for something that cannot be done now; the message says why."""


def _matches(secret: str, stored: bytes | None) -> bool:
    """Constant-time, and as slow for a signature without this secret (recorded before
    self-service existed, or never sent a re-consent email) as for a wrong one."""
    if stored is None:
        hmac.compare_digest(tokens.hash_secret(secret), ERASED_SECRET_HASH)
        return False
    return tokens.matches(secret, stored)


def find_by_manage_token(
    session: Session, campaign: Campaign, raw: str | None, *, for_update: bool = False
) -> Signature:
    """The signature a "your signature" or re-consent link opens; LinkInvalid otherwise."""
    parsed = tokens.parse(raw)
    if parsed is None:
        raise LinkInvalid(INVALID_LINK)
    row_id, secret = parsed
    query = select(Signature).where(Signature.id == row_id, Signature.campaign_id == campaign.id)
    if for_update:
        query = query.with_for_update()
    signature = session.scalar(query)
    if signature is None:
        raise LinkInvalid(INVALID_LINK)
    by_manage = _matches(secret, signature.manage_secret_hash)
    by_reconsent = _matches(secret, signature.reconsent_secret_hash)
    if not (by_manage or by_reconsent) or signature.status == SignatureStatus.ERASED.value:
        raise LinkInvalid(INVALID_LINK)
    return signature


def _is_counted(signature: Signature) -> bool:
    """As `reconcile_counts` counts: verified, and not waiting to re-consent."""
    return signature.status == SignatureStatus.VERIFIED.value and not signature.needs_reconsent


def is_delivered(campaign: Campaign) -> bool:
    return campaign.state in DELIVERED_STATES


def set_preferences(
    session: Session, signature: Signature, *, show_name: bool, wants_updates: bool
) -> None:
    """Turn "show my name" and "send me updates" on or off; takes effect at once."""
    signature.show_name = show_name
    signature.wants_updates = wants_updates
    session.flush()


def withdraw_signature(session: Session, campaign: Campaign, raw_token: str) -> Signature:
    """Withdraw the signature the link opens: out of the count at once (if it was
    counted), details kept. Idempotent: withdrawing twice changes nothing more."""
    signature = find_by_manage_token(session, campaign, raw_token, for_update=True)
    if signature.status == SignatureStatus.WITHDRAWN.value:
        return signature
    if signature.status == SignatureStatus.REJECTED.value:
        raise SelfServiceError(
            "The organisers did not accept this signature, so it is not counted and there is "
            "nothing to withdraw. You can erase your details below."
        )
    was_counted = _is_counted(signature)
    signature.status = SignatureStatus.WITHDRAWN.value
    session.flush()
    if was_counted:
        _add_to_count(session, campaign, -1)
    return signature


def erase_signature(session: Session, campaign: Campaign, raw_token: str) -> bool:
    """Remove every personal detail of the signature the link opens; the link stops
    working. Returns True when an anonymous tombstone was kept (the letter was already
    delivered), False when the row was deleted. Either way it is no longer counted."""
    signature = find_by_manage_token(session, campaign, raw_token, for_update=True)
    was_counted = _is_counted(signature)
    _scrub_sent_emails(session, campaign.collective_id, signature.email)
    keep = is_delivered(campaign)
    if keep:
        session.execute(
            update(Signature)
            .where(Signature.id == signature.id)
            .values(
                status=SignatureStatus.ERASED.value,
                name="",
                # Unique per campaign and no address (no "@", so no mail): a later
                # signature by the same person is a new one. Not '': an online signature
                # must have an email (ck_signatures_online_email).
                email=f"{ERASED_PREFIX}{signature.id}",
                email_canonical=f"{ERASED_PREFIX}{signature.id}",
                postcode="",
                statement="",
                show_name=False,
                wants_updates=False,
                show_statement=False,
                statement_status=StatementStatus.NONE.value,
                statement_hidden_reason="",
                statement_group_id=None,
                helper_name="",
                quarantine_reason="",
                ip_hash="",
                secret_hash=ERASED_SECRET_HASH,
                manage_secret_hash=None,
                reconsent_secret_hash=None,
            )
            .execution_options(synchronize_session=False)
        )
    else:
        session.execute(
            delete(Signature)
            .where(Signature.id == signature.id)
            .execution_options(synchronize_session=False)
        )
    session.expunge(signature)  # its loaded attributes are the erased details
    if was_counted:
        _add_to_count(session, campaign, -1)
    session.flush()
    return keep


def _scrub_sent_emails(session: Session, collective_id: int, email: str) -> None:
    """Sent emails keep their recipient's address in the outbox for a week (until
    `purge_expired`); an erasure should not wait for that. Unsent ones are left alone:
    the outbox is shared by every area and a row may not be about this signature."""
    if not email:
        return
    session.execute(
        text(
            "UPDATE outbox_messages SET payload = jsonb_build_object("
            "'message_id', payload->'message_id', 'to', '', 'subject', '') "
            "WHERE collective_id = :cid AND kind = 'email' "
            "AND (done_at IS NOT NULL OR failed_at IS NOT NULL) "
            "AND lower(payload->>'to') = lower(:email)"
        ),
        {"cid": collective_id, "email": email},
    )


# --- re-consent ----------------------------------------------------------------------


@dataclass(frozen=True)
class Reconsent:
    """What a signer of an older version needs to decide: the two versions and the
    changes between them (empty when the signature is already on the current one)."""

    signed: LetterVersion
    current: LetterVersion
    sections: list[tuple[str, list[DiffLine]]]

    @property
    def is_needed(self) -> bool:
        return self.signed.id != self.current.id


def reconsent_for(session: Session, campaign: Campaign, signature: Signature) -> Reconsent:
    signed = session.get(LetterVersion, signature.letter_version_id)
    current = current_version(session, campaign)
    if signed is None or current is None:  # versions are immutable and never deleted
        raise LinkInvalid(INVALID_LINK)
    sections = [] if signed.id == current.id else diff_contents(signed.content, current.content)
    return Reconsent(signed, current, sections)


def confirm_new_version(
    session: Session, campaign: Campaign, raw_token: str, version_id: int | None
) -> Signature:
    """Bind the signature to the current version (the one the signer read, `version_id`)
    and count it again. Idempotent: a signature already on it is left as it is."""
    signature = find_by_manage_token(session, campaign, raw_token, for_update=True)
    current = current_version(session, campaign)
    if current is None:
        raise LinkInvalid(INVALID_LINK)
    if signature.letter_version_id == current.id and not signature.needs_reconsent:
        return signature
    if version_id != current.id:
        raise SelfServiceError(
            "The letter has changed again since this page was shown. Read the newest "
            "changes below, then confirm again if you still agree."
        )
    if campaign.state != CampaignState.COLLECTING.value:
        raise SelfServiceError(
            "This campaign is no longer collecting signatures, so your signature stays "
            "with the version you signed."
        )
    if signature.status != SignatureStatus.VERIFIED.value:
        raise SelfServiceError(
            "Only a confirmed signature can move to the new version. Confirm your signature "
            "first with the link in your confirmation email."
        )
    was_counted = _is_counted(signature)
    signature.letter_version_id = current.id
    signature.needs_reconsent = False
    session.flush()
    if not was_counted:
        _add_to_count(session, campaign, 1)
    return signature


def _collective_slug(session: Session, campaign: Campaign) -> str:
    collective = session.get(Collective, campaign.collective_id)
    return collective.slug if collective else ""


def _send_reconsent(
    session: Session,
    settings: Settings,
    campaign: Campaign,
    signature: Signature,
    *,
    page: str,
    version: LetterVersion,
    signed_number: int,
) -> None:
    secret, digest = tokens.new_secret()
    signature.reconsent_secret_hash = digest
    signature.reconsent_version_id = version.id
    link = f"{page}/signature/{tokens.compose(signature.id, secret)}"
    send_templated_email(
        session,
        settings,
        to=signature.email,
        template="reconsent",
        subject=f"The letter you signed has changed: {campaign.title}",
        context={
            "signature": signature,
            "campaign": campaign,
            "version": version,
            "signed_number": signed_number,
            "link": f"{link}/reconsent",
            "manage_link": link,
            "version_link": f"{page}/versions/{version.number}",
        },
        collective_id=campaign.collective_id,
    )


def _awaiting(campaign: Campaign, version: LetterVersion) -> list[Any]:
    """Verified signers of an older version, with an email, not yet asked about `version`."""
    return [
        Signature.campaign_id == campaign.id,
        Signature.needs_reconsent.is_(True),
        Signature.status == SignatureStatus.VERIFIED.value,
        Signature.email != "",
        Signature.letter_version_id != version.id,
        or_(Signature.reconsent_version_id.is_(None), Signature.reconsent_version_id != version.id),
    ]


def send_reconsent_batch(
    session: Session,
    settings: Settings,
    campaign: Campaign,
    version_id: int,
    *,
    after_id: int = 0,
    limit: int = RECONSENT_BATCH,
) -> tuple[int, int | None]:
    """Email up to `limit` signers of older versions (ids above `after_id`) asking them to
    confirm `version_id`, and record that each was asked. Returns (emails queued, the id
    to continue after, or None when there is nothing more). Idempotent: a signer asked
    about this version is never asked again, and a version that is no longer the newest
    asks nobody (the newer version's run asks about the newer text)."""
    current = current_version(session, campaign)
    if (
        current is None
        or current.id != version_id
        or campaign.state != CampaignState.COLLECTING.value
    ):
        return 0, None
    # Rows locked here are re-checked by a concurrent run of the same version after this
    # one commits, so two runs never ask one signer twice.
    batch = session.scalars(
        select(Signature)
        .where(*_awaiting(campaign, current), Signature.id > after_id)
        .order_by(Signature.id)
        .limit(limit)
        .with_for_update()
    ).all()
    if not batch:
        return 0, None
    page = f"{settings.base_url}/{_collective_slug(session, campaign)}/{campaign.slug}"
    numbers = dict(
        session.execute(
            select(LetterVersion.id, LetterVersion.number).where(
                LetterVersion.campaign_id == campaign.id
            )
        ).all()
    )
    for signature in batch:
        signed_number = int(numbers.get(signature.letter_version_id, 0))
        _send_reconsent(
            session,
            settings,
            campaign,
            signature,
            page=page,
            version=current,
            signed_number=signed_number,
        )
    session.flush()
    return len(batch), (batch[-1].id if len(batch) == limit else None)


def ask_to_reconsent(
    session: Session, settings: Settings, campaign: Campaign, signature: Signature
) -> bool:
    """For a signer who confirms an older version after a new one was published (the
    batch job only asks confirmed signers): send them the one re-consent email for the
    current version now. Returns whether an email was queued."""
    if (  # the usual confirmation stops here, without a query
        not signature.needs_reconsent
        or signature.status != SignatureStatus.VERIFIED.value
        or not signature.email
        or campaign.state != CampaignState.COLLECTING.value
    ):
        return False
    current = current_version(session, campaign)
    if current is None or current.id in (
        signature.letter_version_id,
        signature.reconsent_version_id,
    ):
        return False
    signed = session.get(LetterVersion, signature.letter_version_id)
    page = f"{settings.base_url}/{_collective_slug(session, campaign)}/{campaign.slug}"
    _send_reconsent(
        session,
        settings,
        campaign,
        signature,
        page=page,
        version=current,
        signed_number=signed.number if signed else 0,
    )
    session.flush()
    return True
