"""Trending email domains and IP hashes: a recurring job's early warning for organisers.

A sudden burst of signatures from one email domain or one network is the commonest sign
of a scripted attack (the UK Parliament petitions site watches exactly these). Nothing
here blocks anyone: a flag is a suggestion on the moderation page, with a link to the
bulk invalidation preview for that domain or IP hash, and the organiser decides.

The rule, per campaign, compares the last hour with the 24 hours before it:
- an IP hash is flagged once it has `IP_MIN` or more signatures in the last hour (the
  per-IP rate limits allow a shared network, such as a library, to reach it; hence a
  flag, not a block);
- an email domain is flagged once it has `DOMAIN_MIN` or more signatures in the last hour
  and its share of the last hour is at least `DOMAIN_RATIO` times its (smoothed) share of
  the day before. Big webmail providers are never flagged by domain: their share is large
  everywhere, and an attack through them shows up by IP instead.

Every query is a GROUP BY over one campaign's recent signatures (index on
campaign_id, created_at); nothing loads signatures into Python.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ColumnElement,
    DateTime,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from web.campaigns.models import Campaign
from web.collectives.models import Membership, Role
from web.collectives.services import require_role
from web.db import Base, IdMixin, TimestampMixin, sql_in, utcnow
from web.signatures.models import Signature
from web.signatures.services import DOT_BLIND, PLUS_TAGS
from web.tenancy import TenantScoped

RECENT = timedelta(hours=1)
BASELINE = timedelta(hours=24)
IP_MIN = 10
DOMAIN_MIN = 20
DOMAIN_RATIO = 3.0
# Smoothing for the baseline share: a campaign with a quiet or empty day before still
# needs a domain to make up a real part of the last hour (with no baseline at all:
# 1/SMOOTHING x DOMAIN_RATIO = 15 %).
SMOOTHING = 20
WEBMAIL = (
    DOT_BLIND
    | PLUS_TAGS
    | {
        "yahoo.com",
        "yahoo.co.uk",
        "ymail.com",
        "aol.com",
        "aol.co.uk",
        "btinternet.com",
        "sky.com",
        "virginmedia.com",
        "talktalk.net",
        "msn.com",
        "mail.com",
        "gmx.com",
        "gmx.co.uk",
        "zoho.com",
        "tutanota.com",
    }
)


class FlagKind(enum.StrEnum):
    EMAIL_DOMAIN = "email_domain"
    IP_HASH = "ip_hash"


class FlagStatus(enum.StrEnum):
    OPEN = "open"
    DISMISSED = "dismissed"


class SignatureFlag(TenantScoped, IdMixin, TimestampMixin, Base):
    """One email domain or IP hash trending on one campaign. `recent` and `baseline`
    are the numbers from the latest run that saw it trending; dismissed flags stay
    dismissed (the job updates their numbers but does not reopen them)."""

    __tablename__ = "signature_flags"
    __table_args__ = (
        UniqueConstraint("campaign_id", "kind", "value"),
        CheckConstraint(f"kind IN ({sql_in(FlagKind)})", name="kind"),
        CheckConstraint(f"status IN ({sql_in(FlagStatus)})", name="status"),
    )

    campaign_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(253))
    recent: Mapped[int] = mapped_column(Integer)
    baseline: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=FlagStatus.OPEN.value)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Trend:
    kind: str
    value: str
    recent: int
    baseline: int


def _domain() -> ColumnElement[str]:
    # Offline and anonymised signatures have keys without "@": the substring is NULL.
    return func.substring(Signature.email_canonical, "@([^@]*)$")


def find_trends(session: Session, campaign_id: int, now: datetime) -> list[Trend]:
    """What is trending on one campaign at `now` (reads only)."""
    recent_from, baseline_from = now - RECENT, now - RECENT - BASELINE
    in_campaign = (Signature.campaign_id == campaign_id, Signature.created_at < now)
    trends: list[Trend] = []

    ip_rows = session.execute(
        select(Signature.ip_hash, func.count())
        .where(*in_campaign, Signature.created_at >= recent_from, Signature.ip_hash != "")
        .group_by(Signature.ip_hash)
        .having(func.count() >= IP_MIN)
    ).all()
    for ip_hash, recent in ip_rows:
        baseline = session.scalar(
            select(func.count())
            .select_from(Signature)
            .where(
                Signature.campaign_id == campaign_id,
                Signature.ip_hash == ip_hash,
                Signature.created_at >= baseline_from,
                Signature.created_at < recent_from,
            )
        )
        trends.append(Trend(FlagKind.IP_HASH.value, ip_hash, int(recent), int(baseline or 0)))

    domain = _domain()
    recent_total = int(
        session.scalar(
            select(func.count())
            .select_from(Signature)
            .where(*in_campaign, Signature.created_at >= recent_from)
        )
        or 0
    )
    if recent_total < DOMAIN_MIN:
        return trends
    candidates = {
        d: int(n)
        for d, n in session.execute(
            select(domain, func.count())
            .where(*in_campaign, Signature.created_at >= recent_from, domain.is_not(None))
            .group_by(domain)
            .having(func.count() >= DOMAIN_MIN)
        )
        if d not in WEBMAIL
    }
    if not candidates:
        return trends
    window = (Signature.created_at >= baseline_from, Signature.created_at < recent_from)
    baseline_total = int(
        session.scalar(
            select(func.count())
            .select_from(Signature)
            .where(Signature.campaign_id == campaign_id, *window)
        )
        or 0
    )
    baselines = dict(
        session.execute(
            select(domain, func.count())
            .where(Signature.campaign_id == campaign_id, *window, domain.in_(list(candidates)))
            .group_by(domain)
        ).all()
    )
    for name, recent in sorted(candidates.items(), key=lambda kv: (-kv[1], kv[0])):
        base = int(baselines.get(name, 0))
        base_share = (base + 1) / (baseline_total + SMOOTHING)
        if recent / recent_total >= DOMAIN_RATIO * base_share:
            trends.append(Trend(FlagKind.EMAIL_DOMAIN.value, name, recent, base))
    return trends


def flag_trends(
    session: Session, campaign: Campaign, now: datetime | None = None
) -> list[SignatureFlag]:
    """Record what is trending now as flags (new ones open; known ones get the new
    numbers). Returns the flags touched. Idempotent for one `now`."""
    now = now or utcnow()
    touched: list[SignatureFlag] = []
    for trend in find_trends(session, campaign.id, now):
        flag = session.scalars(
            insert(SignatureFlag)
            .values(
                collective_id=campaign.collective_id,
                campaign_id=campaign.id,
                kind=trend.kind,
                value=trend.value,
                recent=trend.recent,
                baseline=trend.baseline,
                status=FlagStatus.OPEN.value,
                last_seen_at=now,
            )
            .on_conflict_do_update(
                index_elements=["campaign_id", "kind", "value"],
                set_={"recent": trend.recent, "baseline": trend.baseline, "last_seen_at": now},
            )
            .returning(SignatureFlag),
            execution_options={"populate_existing": True},
        ).one()
        touched.append(flag)
    return touched


def open_flags(session: Session, campaign: Campaign) -> list[SignatureFlag]:
    return list(
        session.scalars(
            select(SignatureFlag)
            .where(
                SignatureFlag.campaign_id == campaign.id,
                SignatureFlag.status == FlagStatus.OPEN.value,
            )
            .order_by(SignatureFlag.last_seen_at.desc(), SignatureFlag.id.desc())
        )
    )


class FlagNotFound(LookupError):
    """No open flag with that id on this campaign."""


def dismiss_flag(
    session: Session, actor: Membership, campaign: Campaign, flag_id: int
) -> SignatureFlag:
    """The organiser has looked and is content: hide the flag (it does not come back)."""
    require_role(actor, Role.OWNER, Role.ORGANISER)
    flag = session.scalar(
        select(SignatureFlag)
        .where(SignatureFlag.id == flag_id, SignatureFlag.campaign_id == campaign.id)
        .with_for_update()
    )
    if flag is None or flag.status != FlagStatus.OPEN.value:
        raise FlagNotFound()
    flag.status = FlagStatus.DISMISSED.value
    session.flush()
    return flag
