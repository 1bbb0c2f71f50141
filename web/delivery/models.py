"""Deliveries: one letter sent (by email or by post) to one recipient, and its timeline.

A `Delivery` row is committed, with a unique `idempotency_key`, before anything is sent
(issue #6 §2): the send job reads the row, does nothing if it is already sent, and
records the outcome on the same row. The email carries a `Message-ID` chosen when the row
is created, so a retry after a crash sends the same message (and a receiving server or
a person can recognise a duplicate by it).

Two secrets belong to a delivery:
- the reply address `reply+<reply key>@<INBOUND_DOMAIN>`: 160 bits in lower-case base32,
  because mail systems may change the case of an address's local part;
- the department's response link `/respond/<id>.<secret>` (256 bits), valid for a year
  and revocable by the organiser.
Both are derived, not stored: HMAC-SHA256 of the delivery's id and a random 128-bit nonce
of its own (`reply_nonce`, `link_nonce`), keyed with a key derived from SECRET_KEY
(web/delivery/services.py says why). The rows keep the nonces and the SHA-256 of each
secret; lookups compare those hashes. Re-issuing the link draws a new `link_nonce`,
which changes the link and leaves the reply address alone.

The working-day clock snapshots the recipient's targets and nation at delivery, so later
edits to the directory do not move a deadline that has already been set.

`DeliveryEvent` is the timeline that the organiser (and, for public kinds, everyone)
reads: delivered, acknowledged, replied, chased, meeting agreed, and so on. `Chaser` has
one row per chaser with a unique (delivery, number): two schedulers running at once
cannot both send chaser 2.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from web.db import Base, IdMixin, TimestampMixin, sql_in, utcnow
from web.tenancy import TenantScoped


class DeliveryMethod(enum.StrEnum):
    EMAIL = "email"
    POST = "post"

    @property
    def label(self) -> str:
        return "By email" if self is DeliveryMethod.EMAIL else "By post"


class DeliveryStatus(enum.StrEnum):
    SCHEDULED = "scheduled"  # waiting for a date or for the signature target
    PENDING = "pending"  # committed, the send job will (re)try it
    SENT = "sent"  # the mail server accepted it, or the organiser recorded posting it
    FAILED = "failed"  # refused for good (5xx); the server's message is in last_error
    CANCELLED = "cancelled"  # a scheduled delivery the organiser called off

    @property
    def label(self) -> str:
        return {
            "scheduled": "Scheduled",
            "pending": "Sending",
            "sent": "Delivered",
            "failed": "Failed",
            "cancelled": "Cancelled",
        }[self.value]


class Delivery(TenantScoped, IdMixin, TimestampMixin, Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        UniqueConstraint("message_id"),
        UniqueConstraint("reply_key_hash"),
        CheckConstraint(f"method IN ({sql_in(DeliveryMethod)})", name="method"),
        CheckConstraint(f"status IN ({sql_in(DeliveryStatus)})", name="status"),
        CheckConstraint("status <> 'sent' OR sent_at IS NOT NULL", name="sent_at"),
        CheckConstraint("status <> 'sent' OR delivered_on IS NOT NULL", name="delivered_on"),
        CheckConstraint("ack_target_days BETWEEN 1 AND 365", name="ack_target"),
        CheckConstraint("reply_target_days BETWEEN 1 AND 365", name="reply_target"),
        CheckConstraint("chasers_sent BETWEEN 0 AND 3", name="chasers_sent"),
        # The chaser sweep and the department inbox read sent deliveries.
        Index("ix_deliveries_sent", "delivered_on", postgresql_where=text("status = 'sent'")),
    )

    campaign_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    # The directory entry or the collective's own recipient; the names below are copies
    # taken at delivery, so the record stays true if the recipient is edited later.
    recipient_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("recipients.id", ondelete="SET NULL"), index=True
    )
    recipient_name: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    idempotency_key: Mapped[str] = mapped_column(String(64))
    to_email: Mapped[str] = mapped_column(String(254), default="", server_default="")
    escalation_email: Mapped[str] = mapped_column(String(254), default="", server_default="")
    postal_address: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The final PDF that was (or will be) sent.
    document_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("documents.id", ondelete="SET NULL")
    )
    message_id: Mapped[str] = mapped_column(String(255))
    reply_nonce: Mapped[bytes] = mapped_column(LargeBinary(16))
    reply_key_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    link_nonce: Mapped[bytes] = mapped_column(LargeBinary(16))
    response_token_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    response_token_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    response_token_revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Scheduling: send on this date, or when the campaign reaches its signature target.
    scheduled_for: Mapped[date | None] = mapped_column(Date)
    send_at_target: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The mail server's answer when it refused or deferred the message ("" otherwise).
    last_error: Mapped[str] = mapped_column(Text, default="", server_default="")
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Day 0 of the working-day clock: the UK date of sending, or the posting date.
    delivered_on: Mapped[date | None] = mapped_column(Date)
    tracking_reference: Mapped[str] = mapped_column(String(100), default="", server_default="")
    # A postal delivery's print-ready PDF (cover sheet + the final letter), made by a
    # worker (workers.jobs.delivery.make_print_pack) and made again when the response
    # link it prints changes. Deferred: listing deliveries never loads it.
    print_pdf: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    print_pdf_sha256: Mapped[str | None] = mapped_column(String(64))
    print_pdf_error: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The clock, copied from the recipient at delivery (web/delivery/workdays.py).
    ack_target_days: Mapped[int] = mapped_column(Integer, default=5, server_default="5")
    reply_target_days: Mapped[int] = mapped_column(Integer, default=20, server_default="20")
    nation: Mapped[str] = mapped_column(
        String(32), default="england-and-wales", server_default="england-and-wales"
    )
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    chasers_paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    chasers_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Closing the loop (§8): the organiser's published account of the response.
    response_summary: Mapped[str] = mapped_column(Text, default="", server_default="")
    response_published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL")
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, onupdate=utcnow
    )

    @property
    def method_enum(self) -> DeliveryMethod:
        return DeliveryMethod(self.method)

    @property
    def status_enum(self) -> DeliveryStatus:
        return DeliveryStatus(self.status)

    @property
    def is_sent(self) -> bool:
        return self.status == DeliveryStatus.SENT.value

    @property
    def has_response(self) -> bool:
        return self.acknowledged_at is not None or self.replied_at is not None


class EventKind(enum.StrEnum):
    SCHEDULED = "scheduled"
    SEND_DEFERRED = "send_deferred"  # 4xx: will retry
    SEND_FAILED = "send_failed"  # 5xx: given up
    DELIVERED = "delivered"
    POSTED = "posted"
    LINK_REVOKED = "link_revoked"
    LINK_REISSUED = "link_reissued"
    ACKNOWLEDGED = "acknowledged"
    REPLY_RECEIVED = "reply_received"
    RECLASSIFIED = "reclassified"
    CHASER_SENT = "chaser_sent"
    CHASERS_PAUSED = "chasers_paused"
    CHASERS_RESUMED = "chasers_resumed"
    MEETING_ACCEPTED = "meeting_accepted"
    MEETING_ALTERNATIVES = "meeting_alternatives"
    MEETING_DECLINED = "meeting_declined"
    MEETING_OUTCOME = "meeting_outcome"
    ASSESSED = "assessed"
    RESPONSE_PUBLISHED = "response_published"


class DeliveryEvent(TenantScoped, IdMixin, TimestampMixin, Base):
    """One line of a delivery's timeline. `summary` is written for people; `detail`
    holds the facts behind it (ids, the server's answer, the chaser number)."""

    __tablename__ = "delivery_events"
    __table_args__ = (CheckConstraint(f"kind IN ({sql_in(EventKind)})", name="kind"),)

    delivery_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Who: a member's user id, or a description ("the department", "Chorus").
    actor_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL")
    )
    actor_label: Mapped[str] = mapped_column(String(200), default="", server_default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")

    @property
    def kind_enum(self) -> EventKind:
        return EventKind(self.kind)


class Chaser(TenantScoped, IdMixin, TimestampMixin, Base):
    """A polite reminder, claimed by inserting its row: the unique (delivery, number)
    makes a second scheduler's insert fail, so it sends nothing."""

    __tablename__ = "chasers"
    __table_args__ = (
        UniqueConstraint("delivery_id", "number"),
        CheckConstraint("number BETWEEN 1 AND 3", name="number"),
    )

    delivery_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    to_email: Mapped[str] = mapped_column(String(254))
    is_escalation: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    message_id: Mapped[str] = mapped_column(String(255))
    due_on: Mapped[date] = mapped_column(Date)
