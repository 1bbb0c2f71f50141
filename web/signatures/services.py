"""Signing: record a pending signature, confirm it by email (double opt-in), count it.

Rules a signer can rely on:
- Signing again with the same address (or an alias of it) never creates a second
  signature and never reveals that the address has signed: it re-sends the
  confirmation, at most MAX_CONFIRMATIONS times in all.
- Suspicious submissions (honeypot filled, sent faster than a person can type) are
  quarantined silently: stored, not counted, no email, the same "check your email" page.
- The public count is the number of verified signatures, kept in a few shard rows per
  campaign (`SignatureCount`) so reading it costs the same at any size; the reconciler
  recomputes it exactly from the signatures.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
from dataclasses import dataclass
from typing import Any, cast

from disposable_email_domains import blocklist as disposable_domains
from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from web import tokens
from web.campaigns.models import Campaign, CampaignState, LetterVersion
from web.db import utcnow
from web.emails import send_templated_email
from web.settings import Settings
from web.signatures.models import Signature, SignatureCount, SignatureStatus

MAX_CONFIRMATIONS = 3
SHARDS = 8
MAX_STATEMENT = 2000
MIN_FILL_SECONDS = 3.0
POSTCODE_RE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}$")
POSTCODE_AREA_RE = re.compile(r"^[A-Z]{1,2}")

# Providers that deliver "first.last+tag@" to "firstlast@": count such aliases once.
DOT_BLIND = {"gmail.com", "googlemail.com"}
PLUS_TAGS = DOT_BLIND | {
    "outlook.com",
    "hotmail.com",
    "hotmail.co.uk",
    "live.com",
    "live.co.uk",
    "icloud.com",
    "me.com",
    "fastmail.com",
    "fastmail.fm",
    "protonmail.com",
    "proton.me",
    "pm.me",
}
DOMAIN_ALIASES = {"googlemail.com": "gmail.com"}


class SigningError(ValueError):
    """The signer must fix something; `field` names the form field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def canonical_email(email: str) -> str:
    """The address as the mail provider sees it: case, spaces, dots and +tags folded."""
    address = email.strip().lower()
    local, _, domain = address.rpartition("@")
    domain = DOMAIN_ALIASES.get(domain, domain)
    if domain in PLUS_TAGS:
        local = local.split("+", 1)[0]
    if domain in DOT_BLIND:
        local = local.replace(".", "")
    return f"{local}@{domain}"


def is_disposable(email: str) -> bool:
    domain = email.strip().lower().rpartition("@")[2]
    parts = domain.split(".")
    return any(".".join(parts[i:]) in disposable_domains for i in range(len(parts) - 1))


def normalise_postcode(raw: str) -> str:
    compact = re.sub(r"\s+", "", raw.upper())
    if len(compact) < 5:
        return compact
    return f"{compact[:-3]} {compact[-3:]}"


def postcode_area(postcode: str) -> str:
    match = POSTCODE_AREA_RE.match(postcode)
    return match.group(0) if match else ""


def hash_ip(settings: Settings, ip: str | None) -> str:
    if not ip:
        return ""
    return hmac.new(settings.secret_key.encode(), ip.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SignOutcome:
    """What happened, for tests and logs; the signer sees the same page every time."""

    signature: Signature | None
    action: str  # "created" | "resent" | "limit" | "quarantined" | "already_verified"


def _latest_version(session: Session, campaign: Campaign) -> LetterVersion:
    version = session.scalar(
        select(LetterVersion)
        .where(LetterVersion.campaign_id == campaign.id)
        .order_by(LetterVersion.number.desc())
        .limit(1)
    )
    if version is None:
        raise SigningError("name", "This campaign is not open for signatures.")
    return version


def record_signature(
    session: Session,
    settings: Settings,
    campaign: Campaign,
    *,
    name: str,
    email: str,
    postcode: str = "",
    statement: str = "",
    show_name: bool = False,
    wants_updates: bool = False,
    ip: str | None = None,
    suspicious: str = "",
) -> SignOutcome:
    """Store a pending signature and email its confirmation link (after commit).

    `suspicious` names why the submission looks automated; such a signature is kept
    quarantined, uncounted and unconfirmed. Idempotent per (campaign, canonical email).
    """
    if campaign.state != CampaignState.COLLECTING.value:
        raise SigningError("name", "This campaign is not collecting signatures any more.")
    name, email, postcode, statement = _clean(campaign, name, email, postcode, statement)
    version = _latest_version(session, campaign)
    canonical = canonical_email(email)
    secret, digest = tokens.new_secret()
    status = SignatureStatus.QUARANTINED.value if suspicious else SignatureStatus.PENDING.value
    # Concurrent submissions of one address race here: the unique index lets one in.
    inserted = session.execute(
        insert(Signature)
        .values(
            collective_id=campaign.collective_id,
            campaign_id=campaign.id,
            letter_version_id=version.id,
            name=name,
            email=email,
            email_canonical=canonical,
            postcode=postcode,
            statement=statement,
            show_name=show_name,
            wants_updates=wants_updates,
            status=status,
            quarantine_reason=suspicious[:64],
            secret_hash=digest,
            confirmations_sent=0 if suspicious else 1,
            ip_hash=hash_ip(settings, ip),
        )
        .on_conflict_do_nothing(index_elements=["campaign_id", "email_canonical"])
        .returning(Signature.id)
    ).scalar()
    if inserted is not None:
        signature = session.get(Signature, inserted)
        assert signature is not None
        if suspicious:
            return SignOutcome(signature, "quarantined")
        _send_confirmation(session, settings, campaign, signature, secret)
        return SignOutcome(signature, "created")

    existing = session.scalar(
        select(Signature)
        .where(Signature.campaign_id == campaign.id, Signature.email_canonical == canonical)
        .with_for_update()
    )
    if existing is None or suspicious or existing.status == SignatureStatus.QUARANTINED.value:
        return SignOutcome(existing, "quarantined")
    if existing.status == SignatureStatus.VERIFIED.value:
        return SignOutcome(existing, "already_verified")
    if existing.status != SignatureStatus.PENDING.value:
        return SignOutcome(existing, "limit")
    if existing.confirmations_sent >= MAX_CONFIRMATIONS:
        return SignOutcome(existing, "limit")
    existing.confirmations_sent += 1
    existing.secret_hash = digest  # the newest link works; older ones stop
    session.flush()
    _send_confirmation(session, settings, campaign, existing, secret)
    return SignOutcome(existing, "resent")


def _clean(
    campaign: Campaign, name: str, email: str, postcode: str, statement: str
) -> tuple[str, str, str, str]:
    name = name.strip()
    email = email.strip()
    if not name:
        raise SigningError("name", "Enter your name.")
    if is_disposable(email):
        raise SigningError(
            "email",
            "Please use an email address you will keep: we cannot accept addresses from "
            "disposable email services.",
        )
    postcode = normalise_postcode(postcode) if postcode.strip() else ""
    if campaign.postcode_mode == "required" and not postcode:
        raise SigningError("postcode", "Enter your postcode.")
    if postcode and not POSTCODE_RE.match(postcode):
        raise SigningError("postcode", "Enter a UK postcode, like SW1A 1AA.")
    if campaign.postcode_mode == "off":
        postcode = ""
    statement = statement.strip() if campaign.statements_enabled else ""
    if len(statement) > MAX_STATEMENT:
        raise SigningError(
            "statement", f"Keep your own words to {MAX_STATEMENT:,} characters or fewer."
        )
    return name, email, postcode, statement


def _send_confirmation(
    session: Session, settings: Settings, campaign: Campaign, signature: Signature, secret: str
) -> None:
    token = tokens.compose(signature.id, secret)
    collective_slug = _collective_slug(session, campaign)
    send_templated_email(
        session,
        settings,
        to=signature.email,
        template="confirm_signature",
        subject=f"Confirm your signature: {campaign.title}",
        context={
            "signature": signature,
            "campaign": campaign,
            "link": f"{settings.base_url}/{collective_slug}/{campaign.slug}/confirm/{token}",
        },
        collective_id=campaign.collective_id,
    )


def _collective_slug(session: Session, campaign: Campaign) -> str:
    from web.collectives.models import Collective

    collective = session.get(Collective, campaign.collective_id)
    return collective.slug if collective else ""


_INVALID = (
    "This confirmation link is not valid. It may be from an older email: use the link in "
    "the newest one, or sign again to get a new link."
)


def find_by_token(session: Session, campaign: Campaign, raw: str | None) -> Signature:
    parsed = tokens.parse(raw)
    if parsed is None:
        raise SigningError("token", _INVALID)
    signature = session.scalar(
        select(Signature).where(Signature.id == parsed[0], Signature.campaign_id == campaign.id)
    )
    if signature is None or not tokens.matches(parsed[1], signature.secret_hash):
        raise SigningError("token", _INVALID)
    if signature.status not in (SignatureStatus.PENDING.value, SignatureStatus.VERIFIED.value):
        raise SigningError("token", _INVALID)
    return signature


def confirm_signature(session: Session, campaign: Campaign, raw: str | None) -> Signature:
    """Verify the signature the link belongs to. Confirming twice is harmless: the
    count moves only on the first confirmation."""
    signature = find_by_token(session, campaign, raw)
    result = session.execute(
        update(Signature)
        .where(Signature.id == signature.id, Signature.status == SignatureStatus.PENDING.value)
        .values(status=SignatureStatus.VERIFIED.value, verified_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    changed = cast("CursorResult[Any]", result).rowcount
    if changed and not signature.needs_reconsent:
        _add_to_count(session, campaign, 1)
    session.refresh(signature)
    return signature


def _add_to_count(session: Session, campaign: Campaign, delta: int) -> None:
    session.execute(
        insert(SignatureCount)
        .values(
            collective_id=campaign.collective_id,
            campaign_id=campaign.id,
            shard=random.randrange(SHARDS),  # noqa: S311 - spreading writes, not a secret
            verified=delta,
        )
        .on_conflict_do_update(
            index_elements=["campaign_id", "shard"],
            set_={"verified": SignatureCount.verified + delta},
        )
    )


def verified_count(session: Session, campaign: Campaign) -> int:
    """The public count: a sum over at most SHARDS rows, whatever the campaign's size."""
    total = session.scalar(
        select(func.coalesce(func.sum(SignatureCount.verified), 0)).where(
            SignatureCount.campaign_id == campaign.id
        )
    )
    return int(total or 0)


def reconcile_counts(session: Session, campaign_id: int) -> tuple[int, int]:
    """Rewrite a campaign's count from the signatures themselves. Returns (before, after).

    Locks the shard rows first, so a confirmation in flight either finished before the
    recount (and is counted) or waits and adds itself after it.
    """
    shards = session.scalars(
        select(SignatureCount).where(SignatureCount.campaign_id == campaign_id).with_for_update()
    ).all()
    before = sum(s.verified for s in shards)
    exact = (
        session.scalar(
            select(func.count())
            .select_from(Signature)
            .where(
                Signature.campaign_id == campaign_id,
                Signature.status == SignatureStatus.VERIFIED.value,
                Signature.needs_reconsent.is_(False),
            )
        )
        or 0
    )
    if before != exact:
        for shard in shards:
            shard.verified = 0
        campaign = session.get(Campaign, campaign_id)
        if campaign is not None:
            session.flush()
            session.execute(
                insert(SignatureCount)
                .values(
                    collective_id=campaign.collective_id,
                    campaign_id=campaign_id,
                    shard=0,
                    verified=exact,
                )
                .on_conflict_do_update(
                    index_elements=["campaign_id", "shard"], set_={"verified": exact}
                )
            )
    session.flush()
    return before, exact


def mark_reconsent_needed(session: Session, campaign: Campaign, version: LetterVersion) -> int:
    """After a new version: signatures on older versions count only for those versions
    until their signers confirm the new text (the emails are sent by the Signing flow)."""
    result = session.execute(
        update(Signature)
        .where(
            Signature.campaign_id == campaign.id,
            Signature.letter_version_id != version.id,
            Signature.needs_reconsent.is_(False),
        )
        .values(needs_reconsent=True)
        .execution_options(synchronize_session=False)
    )
    moved = (
        session.scalar(
            select(func.count())
            .select_from(Signature)
            .where(
                Signature.campaign_id == campaign.id,
                Signature.letter_version_id != version.id,
                Signature.status == SignatureStatus.VERIFIED.value,
            )
        )
        or 0
    )
    if moved:
        reconcile_counts(session, campaign.id)
    return int(cast("CursorResult[Any]", result).rowcount or 0)


def counts_by_status(session: Session, campaign: Campaign) -> dict[str, int]:
    rows = session.execute(
        select(Signature.status, func.count())
        .where(Signature.campaign_id == campaign.id)
        .group_by(Signature.status)
    ).all()
    return {status: int(n) for status, n in rows}


def public_names(session: Session, campaign: Campaign, limit: int = 20) -> list[dict[str, Any]]:
    """The most recent verified signers who chose to show their name."""
    rows = session.scalars(
        select(Signature)
        .where(
            Signature.campaign_id == campaign.id,
            Signature.status == SignatureStatus.VERIFIED.value,
            Signature.show_name.is_(True),
        )
        .order_by(Signature.verified_at.desc())
        .limit(limit)
    ).all()
    return [{"name": s.name, "area": postcode_area(s.postcode)} for s in rows]
