"""Billing accounts, plans, branding and free Supporter requests.

`BillingAccount` is deliberately NOT tenant-scoped: one account belongs to one
collective, or to a federation whose collectives share it, and the platform (the Stripe
webhook, the operator's pages) must reach it without a current collective. Collective
members only ever reach their own account through `services.account_for` and the
organiser views, which look it up from the collective they belong to.

`CollectiveBranding` and `SupporterRequest` are tenant data (TenantScoped + RLS).
`PlanDecision` is the operator's log and is read only on the operator's pages.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    select,
    text,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from web.db import Base, IdMixin, TimestampMixin, sql_in, utcnow
from web.tenancy import TenantScoped


class Plan(enum.StrEnum):
    FREE = "free"
    SUPPORTER = "supporter"
    FEDERATION = "federation"

    @property
    def label(self) -> str:
        return self.value.capitalize()


class Interval(enum.StrEnum):
    NONE = ""
    MONTH = "month"
    YEAR = "year"


# Stripe subscription statuses under which the paid plan is in force.
LIVE_STATUSES = frozenset({"active", "trialing"})
PAST_DUE = "past_due"


class BillingAccount(IdMixin, TimestampMixin, Base):
    """Who pays (or is excused from paying): one per collective, or one per federation.

    `plan` is what was bought (or granted); whether it is in force right now is
    `effective_plan(account, now)`. Stripe ids are unique so a webhook finds exactly one
    account. `last_event_created` is the `created` timestamp of the newest Stripe event
    applied, so an older event delivered late changes nothing.
    """

    __tablename__ = "billing_accounts"
    __table_args__ = (
        CheckConstraint(f"plan IN ({sql_in(Plan)})", name="plan"),
        CheckConstraint(f"interval IN ({sql_in(Interval)})", name="interval"),
    )

    name: Mapped[str] = mapped_column(String(120))
    plan: Mapped[str] = mapped_column(String(16), default=Plan.FREE, server_default="free")
    # A federation's account (several collectives share it), as opposed to one collective's.
    is_federation: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # The collective whose own account this is (NULL for a federation's account). A
    # collective linked to a federation keeps its own account, unused, for when it leaves.
    owner_collective_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("collectives.id", ondelete="SET NULL"), unique=True
    )
    interval: Mapped[str] = mapped_column(String(8), default="", server_default="")
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    subscription_status: Mapped[str] = mapped_column(String(32), default="", server_default="")
    current_period_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    grace_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    complimentary_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_event_created: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()"), default=utcnow, onupdate=utcnow
    )


def effective_plan(account: BillingAccount | None, now: datetime) -> Plan:
    """The plan in force at `now`.

    The bought plan while Stripe says the subscription is active or trialing, or is
    past due but still inside the grace period; Supporter (a federation's account:
    Federation) while an operator's free grant lasts; otherwise Free.
    """
    if account is None:
        return Plan.FREE
    bought = Plan(account.plan) if account.plan in Plan._value2member_map_ else Plan.FREE
    if bought is not Plan.FREE:
        status = account.subscription_status
        if status in LIVE_STATUSES:
            return bought
        if status == PAST_DUE and account.grace_until is not None and account.grace_until > now:
            return bought
    if account.complimentary_until is not None and account.complimentary_until > now:
        return Plan.FEDERATION if account.is_federation else Plan.SUPPORTER
    return Plan.FREE


def account_for(session: Session, collective_id: int) -> BillingAccount:
    """The billing account in force for a collective: its federation's when linked,
    else its own, created (flushed) on first use. Locks the collective row while
    creating, so two requests never make two accounts."""
    from web.collectives.models import Collective

    collective = session.get(Collective, collective_id)
    if collective is None:
        raise LookupError(f"no collective {collective_id}")
    if collective.billing_account_id is not None:
        account = session.get(BillingAccount, collective.billing_account_id)
        if account is not None:
            return account
    collective = session.execute(
        select(Collective).where(Collective.id == collective_id).with_for_update()
    ).scalar_one()
    session.refresh(collective)
    if collective.billing_account_id is not None:
        account = session.get(BillingAccount, collective.billing_account_id)
        if account is not None:
            return account
    own = session.execute(
        select(BillingAccount).where(BillingAccount.owner_collective_id == collective_id)
    ).scalar_one_or_none()
    if own is None:
        own = BillingAccount(name=collective.name, owner_collective_id=collective_id)
        session.add(own)
        session.flush()
    collective.billing_account_id = own.id
    session.flush()
    return own


def has_supporter_features(plan: Plan) -> bool:
    """Supporter and Federation get the same features."""
    return plan is not Plan.FREE


class CollectiveBranding(TenantScoped, IdMixin, TimestampMixin, Base):
    """A collective's logo and two colours. Kept when the plan lapses (never deleted),
    shown only while the collective has Supporter features."""

    __tablename__ = "collective_brandings"
    __table_args__ = (
        UniqueConstraint("collective_id"),
        CheckConstraint("logo_type IN ('', 'image/png', 'image/jpeg')", name="logo_type"),
        CheckConstraint("primary_colour ~ '^(#[0-9a-f]{6})?$'", name="primary_colour"),
        CheckConstraint("accent_colour ~ '^(#[0-9a-f]{6})?$'", name="accent_colour"),
    )

    # One row per collective.
    logo: Mapped[bytes | None] = mapped_column(LargeBinary)
    logo_type: Mapped[str] = mapped_column(String(16), default="", server_default="")
    # SHA-256 hex of the logo: the URL's cache-buster and the ETag.
    logo_sha256: Mapped[str] = mapped_column(String(64), default="", server_default="")
    logo_width: Mapped[int | None] = mapped_column(BigInteger)
    logo_height: Mapped[int | None] = mapped_column(BigInteger)
    primary_colour: Mapped[str] = mapped_column(String(7), default="", server_default="")
    accent_colour: Mapped[str] = mapped_column(String(7), default="", server_default="")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()"), default=utcnow, onupdate=utcnow
    )


class RequestStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"


class SupporterRequest(TenantScoped, IdMixin, TimestampMixin, Base):
    """An owner's request for Supporter free of charge, and the operator's answer."""

    __tablename__ = "supporter_requests"
    __table_args__ = (
        CheckConstraint(f"status IN ({sql_in(RequestStatus)})", name="status"),
        CheckConstraint("char_length(reason) <= 1000", name="reason_length"),
        # At most one open request per collective.
        Index(
            "uq_supporter_requests_pending",
            "collective_id",
            unique=True,
            postgresql_where=text("status = 'pending'"),
        ),
    )

    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=RequestStatus.PENDING)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decision_note: Mapped[str] = mapped_column(Text, default="", server_default="")
    complimentary_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PlanDecision(IdMixin, TimestampMixin, Base):
    """The operator's log: every approval, decline, grant and federation change, with
    who, when, what and the note. Append-only; shown on the operator's pages only."""

    __tablename__ = "plan_decisions"

    actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    actor_email: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(32))
    billing_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("billing_accounts.id", ondelete="SET NULL"), index=True
    )
    collective_id: Mapped[int | None] = mapped_column(
        ForeignKey("collectives.id", ondelete="SET NULL"), index=True
    )
    supporter_request_id: Mapped[int | None] = mapped_column(
        ForeignKey("supporter_requests.id", ondelete="SET NULL")
    )
    note: Mapped[str] = mapped_column(Text, default="", server_default="")
