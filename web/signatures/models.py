"""Signatures: one verified voice each, bound to the letter version that was signed."""

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
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from web.db import Base, IdMixin, TimestampMixin, sql_in
from web.tenancy import TenantScoped


class SignatureStatus(enum.StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"
    QUARANTINED = "quarantined"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class SignatureMethod(enum.StrEnum):
    ONLINE = "online"
    ASSISTED = "assisted"
    PAPER = "paper"


class Signature(TenantScoped, IdMixin, TimestampMixin, Base):
    __tablename__ = "signatures"
    __table_args__ = (
        # One signature per person per campaign, whatever alias of the address they use.
        UniqueConstraint("campaign_id", "email_canonical"),
        # Counts, reconciliation and the moderation queue all filter on these two.
        Index("ix_signatures_campaign_id_status", "campaign_id", "status"),
        CheckConstraint(f"status IN ({sql_in(SignatureStatus)})", name="status"),
        CheckConstraint(f"method IN ({sql_in(SignatureMethod)})", name="method"),
    )

    campaign_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    letter_version_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("letter_versions.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str] = mapped_column(String(254))
    email_canonical: Mapped[str] = mapped_column(String(254))
    postcode: Mapped[str] = mapped_column(String(10), default="", server_default="")
    statement: Mapped[str] = mapped_column(Text, default="", server_default="")
    show_name: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    wants_updates: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    method: Mapped[str] = mapped_column(String(16), default=SignatureMethod.ONLINE.value)
    status: Mapped[str] = mapped_column(String(16), default=SignatureStatus.PENDING.value)
    # Signed an earlier version of the letter and has not yet confirmed the new one.
    needs_reconsent: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    quarantine_reason: Mapped[str] = mapped_column(String(64), default="", server_default="")
    # The confirmation link's secret, stored as SHA-256 only.
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    confirmations_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # HMAC of the signer's IP address with the app's secret: never the address itself.
    ip_hash: Mapped[str] = mapped_column(String(64), default="", server_default="")
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SignatureCount(TenantScoped, Base):
    """Verified signatures per campaign, spread over a few shard rows so concurrent
    confirmations do not queue on one row; the public count is their sum. The reconciler
    rewrites them from the signatures table, repairing any drift."""

    __tablename__ = "signature_counts"

    campaign_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    verified: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
