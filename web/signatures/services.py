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
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, cast

from disposable_email_domains import blocklist as disposable_domains
from flask import render_template
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import (
    ColumnElement,
    CursorResult,
    case,
    event,
    func,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from web import tokens
from web.campaigns.models import Campaign, CampaignState, LetterVersion
from web.collectives.models import Membership, Role
from web.collectives.services import require_role
from web.db import utcnow
from web.outbox import EMAIL_JOB, enqueue_job, note_committed_later, queue_deferred_email
from web.settings import Settings
from web.signatures import statements
from web.signatures.models import Signature, SignatureCount, SignatureMethod, SignatureStatus

MAX_CONFIRMATIONS = 3
RECONSENT_JOB = "workers.jobs.reconsent.send_reconsent_emails"
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


def suspicion(secret_key: str | bytes, honeypot: str | None, started: str | None) -> str:
    """Why a submission looks automated, or "" for a person: the hidden field was filled
    in, the form's signed timestamp is missing or forged, or it came back too fast."""
    if honeypot:
        return "honeypot"
    try:
        shown = URLSafeTimedSerializer(secret_key, salt="sign-form").loads(
            started or "", max_age=7 * 24 * 3600
        )
    except (BadSignature, SignatureExpired):
        return "no-form-timestamp"
    if time.time() - float(shown) < MIN_FILL_SECONDS:
        return "too-fast"
    return ""


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

    signature_id: int | None
    action: str  # "created" | "resent" | "limit" | "quarantined" | "already_verified"


@dataclass(frozen=True)
class SignTarget:
    """What signing needs to know of a published campaign, cheap to keep for a moment."""

    collective_id: int
    collective_slug: str
    id: int
    slug: str
    title: str
    state: str
    postcode_mode: str
    statements_enabled: bool

    @classmethod
    def of(cls, collective_slug: str, campaign: Campaign) -> SignTarget:
        return cls(
            collective_id=campaign.collective_id,
            collective_slug=collective_slug,
            id=campaign.id,
            slug=campaign.slug,
            title=campaign.title,
            state=campaign.state,
            postcode_mode=campaign.postcode_mode,
            statements_enabled=campaign.statements_enabled,
        )


# (database, collective slug, campaign slug) -> (expiry on the monotonic clock, target). Reused for
# TARGET_TTL seconds, and dropped in this process whenever a campaign or collective is
# written (`forget_sign_targets`, wired to the session in web/db.py). Another process
# may go on using a target for up to TARGET_TTL seconds after a change: the insert
# itself checks that the campaign is collecting, and a failed insert reloads.
TARGET_TTL = 2.0
_targets: dict[tuple[str, str, str], tuple[float, SignTarget]] = {}


def forget_sign_targets() -> None:
    _targets.clear()


@event.listens_for(Session, "after_flush")
def _forget_on_change(session: Session, _context: object) -> None:
    from web.collectives.models import Collective

    changed = (*session.new, *session.dirty, *session.deleted)
    if _targets and any(isinstance(obj, Campaign | Collective) for obj in changed):
        forget_sign_targets()


def sign_target(
    session: Session, collective_slug: str, campaign_slug: str, *, fresh: bool = False
) -> SignTarget | None:
    """The published campaign at these slugs, or None; makes its collective the
    session's tenant. A recent answer is reused without touching the database."""
    from web.campaigns.services import find_public_campaign
    from web.collectives.models import Collective
    from web.tenancy import set_current_collective

    # Per database too: one process may serve two (the tests' live server does).
    key = (str(session.get_bind().engine.url), collective_slug, campaign_slug)
    cached = None if fresh else _targets.get(key)
    if cached is not None and cached[0] > time.monotonic():
        set_current_collective(session, cached[1].collective_id)
        return cached[1]
    collective = session.scalar(select(Collective).where(Collective.slug == collective_slug))
    if collective is None:
        return None
    set_current_collective(session, collective.id)
    campaign = find_public_campaign(session, campaign_slug)
    if campaign is None:
        return None
    target = SignTarget.of(collective.slug, campaign)
    if len(_targets) > 10_000:
        _targets.clear()
    _targets[key] = (time.monotonic() + TARGET_TTL, target)
    return target


def _as_target(session: Session, campaign: Campaign | SignTarget) -> SignTarget:
    if isinstance(campaign, SignTarget):
        return campaign
    from web.collectives.models import Collective

    collective = session.get(Collective, campaign.collective_id)
    return SignTarget.of(collective.slug if collective else "", campaign)


# One statement for the busiest path: the newest letter version (only while the
# campaign is collecting, so a stale SignTarget cannot sign a closed campaign), the
# signature (the unique index lets one of concurrent duplicates in) and its confirmation
# email, queued as a reference for the worker to render.
_SIGN_SQL = """
WITH version AS (
    SELECT v.id FROM letter_versions v JOIN campaigns k ON k.id = v.campaign_id
    WHERE v.campaign_id = %(campaign_id)s AND k.state = 'collecting'
    ORDER BY v.number DESC LIMIT 1
), signature AS (
    INSERT INTO signatures (
        collective_id, campaign_id, letter_version_id, name, email, email_canonical,
        postcode, statement, show_name, wants_updates, show_statement, statement_status,
        method, status, quarantine_reason, secret_hash, manage_secret_hash,
        confirmations_sent, ip_hash)
    SELECT %(collective_id)s, %(campaign_id)s, version.id, %(name)s, %(email)s, %(email_canonical)s,
        %(postcode)s, %(statement)s, %(show_name)s, %(wants_updates)s, %(show_statement)s,
        %(statement_status)s, 'online', %(status)s, %(quarantine_reason)s, %(secret_hash)s,
        %(manage_secret_hash)s, %(confirmations_sent)s, %(ip_hash)s
    FROM version
    ON CONFLICT (campaign_id, email_canonical) DO NOTHING
    RETURNING id
), email AS (
    INSERT INTO outbox_messages (kind, queue, func, collective_id, payload)
    SELECT 'email', 'email', %(email_job)s, %(collective_id)s, jsonb_build_object(
        'to', CAST(%(email)s AS text), 'subject', CAST(%(subject)s AS text),
        'render', CAST(%(renderer)s AS text), 'headers', '{}'::jsonb,
        'message_id', CAST(%(message_id)s AS text),
        'args', jsonb_build_object(
            'signature_id', signature.id, 'secret', CAST(%(secret)s AS text),
            'manage_secret', CAST(%(manage)s AS text)))
    FROM signature WHERE CAST(%(send)s AS boolean)
    RETURNING id
)
SELECT signature.id, (SELECT id FROM email) FROM signature
"""


def record_signature(
    session: Session,
    settings: Settings,
    campaign: Campaign | SignTarget,
    *,
    name: str,
    email: str,
    postcode: str = "",
    statement: str = "",
    show_name: bool = False,
    wants_updates: bool = False,
    show_statement: bool = False,
    ip: str | None = None,
    suspicious: str = "",
    retry_stale: bool = True,
) -> SignOutcome:
    """Store a pending signature and email its confirmation link (after commit).

    `suspicious` names why the submission looks automated; such a signature is kept
    quarantined, uncounted and unconfirmed. Idempotent per (campaign, canonical email).
    The session's tenant must be the campaign's collective (`sign_target` sets it).
    """
    from web.mail import make_message_id

    target = _as_target(session, campaign)
    if target.state != CampaignState.COLLECTING.value:
        raise SigningError("name", "This campaign is not collecting signatures any more.")
    name, email, postcode, statement = _clean(target, name, email, postcode, statement)
    canonical = canonical_email(email)
    secret, digest = tokens.new_secret()
    manage, manage_digest = tokens.new_secret()  # the private "your signature" link
    status = SignatureStatus.QUARANTINED.value if suspicious else SignatureStatus.PENDING.value
    row = (
        session.connection()
        .exec_driver_sql(
            _SIGN_SQL,
            {
                "collective_id": target.collective_id,
                "campaign_id": target.id,
                "name": name,
                "email": email,
                "email_canonical": canonical,
                "postcode": postcode,
                "statement": statement,
                "show_name": show_name,
                "wants_updates": wants_updates,
                "show_statement": bool(statement) and show_statement,
                "statement_status": statements.initial_status(statement, show_statement),
                "status": status,
                "quarantine_reason": suspicious[:64],
                "secret_hash": digest,
                "manage_secret_hash": manage_digest,
                "confirmations_sent": 0 if suspicious else 1,
                "ip_hash": hash_ip(settings, ip),
                "email_job": EMAIL_JOB,
                "subject": _confirmation_subject(target.title),
                "renderer": CONFIRMATION_RENDERER,
                "message_id": make_message_id(),
                "secret": secret,
                "manage": manage,
                "send": not suspicious,
            },
        )
        .first()
    )
    if row is not None:
        signature_id, outbox_id = row
        if suspicious:
            return SignOutcome(signature_id, "quarantined")
        note_committed_later(session, outbox_id, "email", EMAIL_JOB)
        return SignOutcome(signature_id, "created")

    existing = session.scalar(
        select(Signature)
        .where(Signature.campaign_id == target.id, Signature.email_canonical == canonical)
        .with_for_update()
    )
    if existing is None:
        # Nothing inserted and nothing to conflict with: the campaign stopped collecting,
        # or this process's SignTarget is out of date. Look again, and try once more if
        # the campaign at these addresses is another one now.
        forget_sign_targets()
        fresh = sign_target(session, target.collective_slug, target.slug, fresh=True)
        if fresh is None or fresh.state != CampaignState.COLLECTING.value:
            raise SigningError("name", "This campaign is not collecting signatures any more.")
        if retry_stale and fresh != target:
            return record_signature(
                session,
                settings,
                fresh,
                name=name,
                email=email,
                postcode=postcode,
                statement=statement,
                show_name=show_name,
                wants_updates=wants_updates,
                show_statement=show_statement,
                ip=ip,
                suspicious=suspicious,
                retry_stale=False,
            )
        return SignOutcome(None, "quarantined")
    if suspicious or existing.status == SignatureStatus.QUARANTINED.value:
        return SignOutcome(existing.id, "quarantined")
    if existing.status == SignatureStatus.VERIFIED.value:
        return SignOutcome(existing.id, "already_verified")
    if existing.status != SignatureStatus.PENDING.value:
        return SignOutcome(existing.id, "limit")
    if existing.confirmations_sent >= MAX_CONFIRMATIONS:
        return SignOutcome(existing.id, "limit")
    existing.confirmations_sent += 1
    existing.secret_hash = digest  # the newest link works; older ones stop
    existing.manage_secret_hash = manage_digest  # likewise its "your signature" link
    session.flush()
    _send_confirmation(session, settings, target, existing, secret, manage_secret=manage)
    return SignOutcome(existing.id, "resent")


def _confirmation_subject(title: str) -> str:
    return f"Confirm your signature: {title}"


def _clean(
    campaign: Campaign | SignTarget, name: str, email: str, postcode: str, statement: str
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


CONFIRMATION_RENDERER = "web.signatures.services.render_confirmations"


def _send_confirmation(
    session: Session,
    settings: Settings,
    campaign: Campaign | SignTarget,
    signature: Signature,
    secret: str,
    *,
    manage_secret: str,
) -> None:
    """Queue the confirmation email as a reference: the worker renders it
    (`render_confirmations`), so no signing request renders a template."""
    queue_deferred_email(
        session,
        to=signature.email,
        subject=_confirmation_subject(campaign.title),
        render=CONFIRMATION_RENDERER,
        args={"signature_id": signature.id, "secret": secret, "manage_secret": manage_secret},
        collective_id=campaign.collective_id,
    )


def render_confirmations(
    session: Session, settings: Settings, payloads: list[dict[str, Any]]
) -> list[tuple[str, str] | None]:
    """The bodies of queued confirmation emails, with one query for the whole batch.
    A signature that is gone, or no longer waiting for (or holding) a confirmation,
    gets None: its email is not sent."""
    from web.collectives.models import Collective

    ids = [int(p["args"]["signature_id"]) for p in payloads]
    rows = session.execute(
        select(Signature, Campaign, Collective.slug)
        .join(Campaign, Campaign.id == Signature.campaign_id)
        .join(Collective, Collective.id == Signature.collective_id)
        .where(Signature.id.in_(ids)),
        execution_options={"all_collectives": True},
    ).all()
    found = {signature.id: (signature, campaign, slug) for signature, campaign, slug in rows}
    sendable = (SignatureStatus.PENDING.value, SignatureStatus.VERIFIED.value)
    bodies: list[tuple[str, str] | None] = []
    for payload, signature_id in zip(payloads, ids, strict=True):
        entry = found.get(signature_id)
        if entry is None or entry[0].status not in sendable or not entry[0].email:
            bodies.append(None)
            continue
        signature, campaign, slug = entry
        args = payload["args"]
        page = f"{settings.base_url}/{slug}/{campaign.slug}"
        context = {
            "settings": settings,
            "subject": payload["subject"],
            "signature": signature,
            "campaign": campaign,
            "link": f"{page}/confirm/{tokens.compose(signature.id, args['secret'])}",
            # To view, withdraw or erase the signature later (web/signatures/selfservice.py).
            "manage_link": (
                f"{page}/signature/{tokens.compose(signature.id, args['manage_secret'])}"
            ),
        }
        bodies.append(
            (
                render_template("emails/confirm_signature.txt", **context),
                render_template("emails/confirm_signature.html", **context),
            )
        )
    return bodies


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
    if changed:
        statements.on_signature_verified(session, campaign, signature)
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
    until their signers confirm the new text. Their signers are asked to, by email, by a
    job enqueued here that leaves after commit (workers/jobs/reconsent.py)."""
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
    marked = int(cast("CursorResult[Any]", result).rowcount or 0)
    if marked:
        reconcile_counts(session, campaign.id)  # verified ones among them stop counting
    # Also when none were newly marked: signers still waiting from an earlier new version
    # are asked about this one (the job emails each signer once per version).
    enqueue_job(
        session,
        RECONSENT_JOB,
        payload={"campaign_id": campaign.id, "version_id": version.id},
        collective_id=campaign.collective_id,
    )
    return marked


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


# --- Organisers: counts, moderation and bulk invalidation ----------------------------
#
# Everything below reads with GROUP BY or pages through rows; nothing loads a campaign's
# signatures into Python. Actions need an owner or organiser (`require_role`); reading
# is open to every member. Like the rest of this module, these functions only flush.

# UK postcode areas by ONS region or nation. An area that crosses a boundary (KT, DA,
# HP, SY, CH, TD...) goes where most of its people live: good enough to show an organiser
# and a department where support comes from, not a boundary service. Crown dependencies
# (GY, JE, IM), BFPO and unrecognised areas count as "Unknown".
_REGION_AREAS = {
    "North East": "DH DL NE SR TS",
    "North West": "BB BL CA CH CW FY L LA M OL PR SK WA WN",
    "Yorkshire and the Humber": "BD DN HD HG HU HX LS S WF YO",
    "East Midlands": "DE LE LN NG NN",
    "West Midlands": "B CV DY HR ST SY TF WR WS WV",
    "East of England": "AL CB CM CO IP LU NR PE SG SS WD",
    "London": "BR CR E EC EN HA IG N NW RM SE SM SW TW UB W WC",
    "South East": "BN CT DA GU HP KT ME MK OX PO RG RH SL SO TN",
    "South West": "BA BH BS DT EX GL PL SN SP TA TQ TR",
    "Wales": "CF LD LL NP SA",
    "Scotland": "AB DD DG EH FK G HS IV KA KW KY ML PA PH TD ZE",
    "Northern Ireland": "BT",
}
REGIONS: tuple[str, ...] = tuple(_REGION_AREAS)
AREA_REGIONS: dict[str, str] = {
    area: region for region, areas in _REGION_AREAS.items() for area in areas.split()
}
UNKNOWN_REGION = "Unknown"
NO_POSTCODE = "Not given"
STATUS_ORDER: tuple[str, ...] = tuple(s.value for s in SignatureStatus)
METHOD_ORDER: tuple[str, ...] = tuple(m.value for m in SignatureMethod)
MODERATION_PAGE_SIZE = 50
# What a bulk invalidation may change: everything not already out of the count.
BULK_STATUSES: tuple[str, ...] = (
    SignatureStatus.PENDING.value,
    SignatureStatus.VERIFIED.value,
    SignatureStatus.QUARANTINED.value,
)
IP_HASH_MIN = 8
_IP_HASH_RE = re.compile(r"[0-9a-f]+")
_DOMAIN_LABEL_RE = re.compile(r"[^\W_](?:[\w-]{0,61}[^\W_])?")


def region_for_postcode(postcode: str) -> str:
    """The region or nation of a (normalised) postcode, "Not given" or "Unknown"."""
    if not postcode.strip():
        return NO_POSTCODE
    return AREA_REGIONS.get(postcode_area(postcode.strip().upper()), UNKNOWN_REGION)


class ModerationError(ValueError):
    """An organiser must fix something; `field` names the form field, if any."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class SignatureNotFound(LookupError):
    """No such signature in this campaign (or not in the state the action needs)."""


class BulkCountChanged(ModerationError):
    """The signatures matching a bulk invalidation changed between preview and confirm;
    nothing was changed."""

    def __init__(self, expected: int, found: int) -> None:
        super().__init__(
            "",
            f"The preview said {expected:,} signature{'s' if expected != 1 else ''}, but "
            f"{found:,} match now, so nothing was changed. Check the new preview and confirm "
            "again.",
        )
        self.expected = expected
        self.found = found


def _require_moderator(actor: Membership) -> None:
    require_role(actor, Role.OWNER, Role.ORGANISER)


def _counted(campaign: Campaign) -> list[ColumnElement[bool]]:
    """The signatures the public count is made of (as `reconcile_counts` counts them)."""
    return [
        Signature.campaign_id == campaign.id,
        Signature.status == SignatureStatus.VERIFIED.value,
        Signature.needs_reconsent.is_(False),
    ]


@dataclass(frozen=True)
class SignatureReport:
    """A campaign's numbers for its organisers. The method, region and daily numbers are
    of the counted signatures (verified and, after a new version, re-confirmed)."""

    verified_total: int  # the public count, from the shard rows
    counted: int  # recounted from the signatures; differs from the total only by drift
    awaiting_reconsent: int
    by_status: list[tuple[str, int]]
    by_method: list[tuple[str, int]]
    by_region: list[tuple[str, int]]
    per_day: list[tuple[date, int]]  # days with at least one confirmation, oldest first


def signature_report(session: Session, campaign: Campaign) -> SignatureReport:
    """Counts by status, method, region and day, each one GROUP BY query."""
    statuses = counts_by_status(session, campaign)
    methods = dict(
        session.execute(
            select(Signature.method, func.count())
            .where(*_counted(campaign))
            .group_by(Signature.method)
        ).all()
    )
    # '' for no postcode, '?' for one whose area cannot be read, else the area letters.
    # Constants as literals: bound parameters would differ between SELECT and GROUP BY.
    area = case(
        (Signature.postcode == literal_column("''"), literal_column("''")),
        else_=func.coalesce(
            func.substring(Signature.postcode, literal_column("'^[A-Z]{1,2}'")),
            literal_column("'?'"),
        ),
    )
    regions: dict[str, int] = dict.fromkeys((*REGIONS, UNKNOWN_REGION, NO_POSTCODE), 0)
    for code, n in session.execute(
        select(area, func.count()).where(*_counted(campaign)).group_by(area)
    ):
        region = NO_POSTCODE if code == "" else AREA_REGIONS.get(code, UNKNOWN_REGION)
        regions[region] += int(n)
    day = func.date(func.timezone(literal_column("'UTC'"), Signature.verified_at))
    per_day = [
        (d, int(n))
        for d, n in session.execute(
            select(day, func.count())
            .where(*_counted(campaign), Signature.verified_at.is_not(None))
            .group_by(day)
            .order_by(day)
        )
    ]
    awaiting = session.scalar(
        select(func.count())
        .select_from(Signature)
        .where(
            Signature.campaign_id == campaign.id,
            Signature.status == SignatureStatus.VERIFIED.value,
            Signature.needs_reconsent.is_(True),
        )
    )
    return SignatureReport(
        verified_total=verified_count(session, campaign),
        counted=sum(int(n) for n in methods.values()),
        awaiting_reconsent=int(awaiting or 0),
        by_status=[(s, statuses.get(s, 0)) for s in STATUS_ORDER],
        by_method=[(m, int(methods.get(m, 0))) for m in METHOD_ORDER],
        by_region=list(regions.items()),
        per_day=per_day,
    )


@dataclass(frozen=True)
class QueuePage:
    signatures: list[Signature]
    page: int  # 1-based, clamped to the pages there are
    pages: int
    total: int


def quarantine_queue(
    session: Session, campaign: Campaign, page: int = 1, per_page: int = MODERATION_PAGE_SIZE
) -> QueuePage:
    """One page of quarantined signatures, newest first."""
    where = (
        Signature.campaign_id == campaign.id,
        Signature.status == SignatureStatus.QUARANTINED.value,
    )
    total = int(session.scalar(select(func.count()).select_from(Signature).where(*where)) or 0)
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    rows = session.scalars(
        select(Signature)
        .where(*where)
        .order_by(Signature.created_at.desc(), Signature.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return QueuePage(list(rows), page, pages, total)


def _quarantined(session: Session, campaign: Campaign, signature_id: int) -> Signature:
    signature = session.scalar(
        select(Signature)
        .where(Signature.id == signature_id, Signature.campaign_id == campaign.id)
        .with_for_update()
    )
    if signature is None:
        raise SignatureNotFound()
    if signature.status != SignatureStatus.QUARANTINED.value:
        raise ModerationError(
            "",
            "This signature is no longer in the moderation queue: someone has already "
            "restored or rejected it.",
        )
    return signature


def send_confirmation(
    session: Session, settings: Settings, campaign: Campaign, signature: Signature
) -> None:
    """Email a fresh confirmation link (after commit); older links stop working."""
    secret, digest = tokens.new_secret()
    manage, manage_digest = tokens.new_secret()
    signature.secret_hash = digest
    signature.manage_secret_hash = manage_digest
    signature.confirmations_sent += 1
    session.flush()
    _send_confirmation(session, settings, campaign, signature, secret, manage_secret=manage)


def restore_signature(
    session: Session, settings: Settings, actor: Membership, campaign: Campaign, signature_id: int
) -> Signature:
    """Move a quarantined signature back to pending and email its signer the confirmation
    link, as for a new signature. Not idempotent by design: a second call finds the
    signature out of the queue and raises ModerationError (no second email)."""
    _require_moderator(actor)
    signature = _quarantined(session, campaign, signature_id)
    if campaign.state != CampaignState.COLLECTING.value:
        raise ModerationError(
            "",
            "This campaign is no longer collecting signatures, so its signer could not "
            "confirm. You can reject the signature or leave it in the queue.",
        )
    signature.status = SignatureStatus.PENDING.value
    signature.quarantine_reason = ""
    send_confirmation(session, settings, campaign, signature)
    return signature


def reject_signature(
    session: Session, actor: Membership, campaign: Campaign, signature_id: int
) -> Signature:
    """Reject a quarantined signature: it stays stored, uncounted, and gets no email."""
    _require_moderator(actor)
    signature = _quarantined(session, campaign, signature_id)
    signature.status = SignatureStatus.REJECTED.value
    session.flush()
    return signature


@dataclass(frozen=True)
class BulkCriteria:
    """Which signatures a bulk invalidation selects: all the given conditions at once.
    `as_of` (set when the preview is made) keeps later signatures out, so the confirmed
    change is the previewed one even while signatures keep arriving."""

    email_domain: str = ""
    ip_hash: str = ""  # the whole hash or a prefix of at least IP_HASH_MIN characters
    signed_from: datetime | None = None
    signed_to: datetime | None = None
    as_of: datetime | None = None


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def bulk_criteria(
    *,
    email_domain: str = "",
    ip_hash: str = "",
    signed_from: datetime | None = None,
    signed_to: datetime | None = None,
    as_of: datetime | None = None,
) -> BulkCriteria:
    """Check and normalise what an organiser entered (times without a zone are UTC)."""
    domain = email_domain.strip().lower().removeprefix("@")
    if "@" in domain:  # a whole address pasted in: take its domain
        domain = domain.rpartition("@")[2]
    domain = DOMAIN_ALIASES.get(domain, domain)
    if domain:
        labels = domain.split(".")
        if len(domain) > 253 or len(labels) < 2 or not all(map(_DOMAIN_LABEL_RE.fullmatch, labels)):
            raise ModerationError(
                "email_domain", "Enter an email domain like example.org, without spaces."
            )
    digest = ip_hash.strip().lower()
    if digest and not (
        IP_HASH_MIN <= len(digest) <= 64 and _IP_HASH_RE.fullmatch(digest) is not None
    ):
        raise ModerationError(
            "ip_hash",
            f"Enter an IP hash as shown in the moderation queue: {IP_HASH_MIN} to 64 "
            "characters, digits 0-9 and letters a-f only.",
        )
    start, end = _aware(signed_from), _aware(signed_to)
    if start and end and start >= end:
        raise ModerationError("signed_to", "The end of the time window must be after its start.")
    if not (domain or digest or start or end):
        raise ModerationError(
            "email_domain",
            "Enter at least one of: an email domain, an IP hash, or a start or end time.",
        )
    return BulkCriteria(domain, digest, start, end, _aware(as_of))


def _bulk_conditions(campaign: Campaign, criteria: BulkCriteria) -> list[ColumnElement[bool]]:
    """The one definition of a bulk invalidation's rows, shared by preview and change."""
    conditions: list[ColumnElement[bool]] = [
        Signature.campaign_id == campaign.id,
        Signature.status.in_(BULK_STATUSES),
    ]
    if criteria.email_domain:
        domain = func.substring(Signature.email_canonical, "@([^@]*)$")
        conditions.append(
            or_(
                domain == criteria.email_domain,
                domain.endswith("." + criteria.email_domain, autoescape=True),
            )
        )
    if criteria.ip_hash:
        conditions.append(Signature.ip_hash.startswith(criteria.ip_hash, autoescape=True))
    if criteria.signed_from is not None:
        conditions.append(Signature.created_at >= criteria.signed_from)
    if criteria.signed_to is not None:
        conditions.append(Signature.created_at < criteria.signed_to)
    if criteria.as_of is not None:
        conditions.append(Signature.created_at <= criteria.as_of)
    return conditions


def preview_bulk_rejection(
    session: Session, campaign: Campaign, criteria: BulkCriteria
) -> dict[str, int]:
    """How many signatures, by status, `reject_in_bulk` would reject. Reads only."""
    rows = session.execute(
        select(Signature.status, func.count())
        .where(*_bulk_conditions(campaign, criteria))
        .group_by(Signature.status)
    )
    found = {status: int(n) for status, n in rows}
    return {status: found.get(status, 0) for status in BULK_STATUSES}


def reject_in_bulk(
    session: Session, actor: Membership, campaign: Campaign, criteria: BulkCriteria, expected: int
) -> int:
    """Reject every signature the criteria match, if and only if that is `expected`
    rows (the number the organiser saw in the preview); otherwise change nothing and
    raise BulkCountChanged. Recounts the public count when any were rejected."""
    _require_moderator(actor)
    savepoint = session.begin_nested()
    result = session.execute(
        update(Signature)
        .where(*_bulk_conditions(campaign, criteria))
        .values(status=SignatureStatus.REJECTED.value)
        .execution_options(synchronize_session=False)
    )
    changed = int(cast("CursorResult[Any]", result).rowcount or 0)
    if changed != expected:
        savepoint.rollback()
        raise BulkCountChanged(expected, changed)
    savepoint.commit()
    if changed:
        reconcile_counts(session, campaign.id)
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Signature):
            session.expire(obj)  # the UPDATE went around them
    return changed
