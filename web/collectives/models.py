"""Collectives (the tenants), their members and invitations."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Enum,
    ForeignKey,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from web.accounts.models import User
from web.db import Base, IdMixin, TimestampMixin
from web.tenancy import TenantScoped


class Role(enum.StrEnum):
    OWNER = "owner"
    ORGANISER = "organiser"
    VIEWER = "viewer"

    @property
    def label(self) -> str:
        return self.value.capitalize()


ROLE_ENUM = Enum(Role, name="member_role", values_callable=lambda roles: [r.value for r in roles])


class Collective(IdMixin, TimestampMixin, Base):
    """The tenant itself. Not row-secured: it is the root every tenant row points to;
    views reach it by slug and then require a membership (404 otherwise)."""

    __tablename__ = "collectives"

    name: Mapped[str] = mapped_column(String(120))
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    contact_address: Mapped[str] = mapped_column(Text)
    # Whether publishing needs a second organiser's approval: "auto" means yes once the
    # collective has two or more organisers (owners count), "on" always, "off" never.
    second_approver: Mapped[str] = mapped_column(String(8), default="auto", server_default="auto")
    # The billing account in force (web/billing): its own, or its federation's. NULL
    # until first needed; `web.billing.models.account_for` creates it lazily.
    billing_account_id: Mapped[int | None] = mapped_column(
        BigInteger,
        # use_alter: billing_accounts also points back here (its owner collective).
        ForeignKey("billing_accounts.id", ondelete="SET NULL", use_alter=True),
        index=True,
    )


class Membership(TenantScoped, IdMixin, TimestampMixin, Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("collective_id", "user_id"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(ROLE_ENUM)

    user: Mapped[User] = relationship(lazy="joined")


class Invitation(TenantScoped, IdMixin, TimestampMixin, Base):
    """An emailed, expiring, single-use invitation; only the secret's SHA-256 is kept."""

    __tablename__ = "invitations"

    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[Role] = mapped_column(ROLE_ENUM)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    accepted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    invited_by: Mapped[User | None] = relationship(foreign_keys=[invited_by_id])

    @property
    def is_open(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None
