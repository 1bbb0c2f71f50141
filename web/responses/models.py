"""What comes back: responses, their attachments, raw inbound mail, meetings, the
organiser's assessment of each ask, and department accounts.

- `Response`: one answer to one delivery, from the response page, from the department
  inbox, or by email (then `inbound_message_id` points at the raw message). Its `kind`
  is acknowledgement, holding reply or substantive reply (or a delivery failure), set
  automatically for email and changeable by the organiser (`classified_by`).
- `ResponseAttachment`: a PDF, DOCX or ODT (type checked by content), stored in
  PostgreSQL, at most 20 MB.
- `InboundMessage`: every message that reached the inbound listener or webhook, kept
  raw. Not tenant-scoped: until it is matched to a delivery nobody owns it, and unknown
  or malformed messages wait on the operator's holding list. Organisers never read this
  table; they read the `Response` made from it.
- `Meeting`: the department's answer to a meeting request (one per delivery): a slot
  accepted, alternatives proposed, or declined with a reason; then the invitation, the
  reminder and the outcome.
- `AskAssessment`: answered, partly answered or not answered, per ask of the letter.
- `DepartmentAccount`: a user who proved an address on one of a directory department's
  official domains. Spans collectives by design (the department inbox, §9), so it is
  not tenant-scoped; what it may read goes through fixed SQL functions (migration 0016).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from web.db import Base, IdMixin, TimestampMixin, sql_in
from web.tenancy import TenantScoped

MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024


class ResponseKind(enum.StrEnum):
    ACKNOWLEDGEMENT = "acknowledgement"
    HOLDING = "holding"
    SUBSTANTIVE = "substantive"
    BOUNCE = "bounce"

    @property
    def label(self) -> str:
        return {
            "acknowledgement": "Acknowledgement",
            "holding": "Holding reply",
            "substantive": "Substantive reply",
            "bounce": "Delivery failure",
        }[self.value]


class ResponseChannel(enum.StrEnum):
    PAGE = "page"  # the response link
    INBOX = "inbox"  # the department inbox (a signed-in official)
    EMAIL = "email"  # a reply to the delivery's Reply-To address

    @property
    def label(self) -> str:
        return {"page": "Response page", "inbox": "Department inbox", "email": "Email"}[self.value]


class Response(TenantScoped, IdMixin, TimestampMixin, Base):
    __tablename__ = "responses"
    __table_args__ = (
        CheckConstraint(f"kind IN ({sql_in(ResponseKind)})", name="kind"),
        CheckConstraint(f"channel IN ({sql_in(ResponseChannel)})", name="channel"),
        CheckConstraint("classified_by IN ('auto', 'responder', 'organiser')", name="classified"),
        # One response per inbound message, however often the webhook is retried.
        UniqueConstraint("inbound_message_id"),
    )

    delivery_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(10))
    classified_by: Mapped[str] = mapped_column(String(10), default="auto", server_default="auto")
    responder_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    responder_role: Mapped[str] = mapped_column(String(200), default="", server_default="")
    responder_email: Mapped[str] = mapped_column(String(254), default="", server_default="")
    subject: Mapped[str] = mapped_column(String(300), default="", server_default="")
    body_text: Mapped[str] = mapped_column(Text, default="", server_default="")
    inbound_message_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("inbound_messages.id", ondelete="SET NULL")
    )
    department_account_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("department_accounts.id", ondelete="SET NULL")
    )

    @property
    def kind_enum(self) -> ResponseKind:
        return ResponseKind(self.kind)

    @property
    def channel_enum(self) -> ResponseChannel:
        return ResponseChannel(self.channel)


class ResponseAttachment(TenantScoped, IdMixin, TimestampMixin, Base):
    __tablename__ = "response_attachments"
    __table_args__ = (
        CheckConstraint(f"size = octet_length(data) AND size <= {MAX_ATTACHMENT_BYTES}", "size"),
        CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="sha256"),
    )

    response_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("responses.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(200))
    # The type found by looking at the bytes, not the one the sender declared.
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)


class InboundStatus(enum.StrEnum):
    ATTACHED = "attached"  # made into a Response on its delivery
    HELD = "held"  # no delivery matched: on the operator's holding list
    MALFORMED = "malformed"  # could not be read as email: kept for the operator
    DISMISSED = "dismissed"  # the operator looked and set it aside

    @property
    def label(self) -> str:
        return self.value.capitalize()


class InboundMessage(IdMixin, TimestampMixin, Base):
    """A raw message as received. Not tenant-scoped (see the module docstring)."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        CheckConstraint(f"status IN ({sql_in(InboundStatus)})", name="status"),
        CheckConstraint("source IN ('smtp', 'http')", name="source"),
        # The same message delivered twice (a retried webhook, a resent SMTP transaction)
        # is stored once.
        UniqueConstraint("raw_sha256"),
        Index("ix_inbound_messages_held", "id", postgresql_where=text("status <> 'attached'")),
    )

    source: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    envelope_from: Mapped[str] = mapped_column(String(320), default="", server_default="")
    envelope_to: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    from_address: Mapped[str] = mapped_column(String(320), default="", server_default="")
    subject: Mapped[str] = mapped_column(String(300), default="", server_default="")
    message_id_header: Mapped[str] = mapped_column(String(998), default="", server_default="")
    size: Mapped[int] = mapped_column(BigInteger)
    raw_sha256: Mapped[str] = mapped_column(String(64))
    raw: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    defects: Mapped[list[str]] = mapped_column(JSONB, default=list, server_default="[]")
    # Set when matched: whose delivery it answered.
    collective_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("collectives.id", ondelete="SET NULL"), index=True
    )
    delivery_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("deliveries.id", ondelete="SET NULL"), index=True
    )
    note: Mapped[str] = mapped_column(Text, default="", server_default="")


class MeetingStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    ALTERNATIVES = "alternatives"  # the department proposed other times
    DECLINED = "declined"
    HELD = "held"  # it took place; the organiser recorded the outcome

    @property
    def label(self) -> str:
        return {
            "accepted": "Meeting agreed",
            "alternatives": "Other times proposed",
            "declined": "Declined",
            "held": "Meeting held",
        }[self.value]


class Meeting(TenantScoped, IdMixin, TimestampMixin, Base):
    __tablename__ = "meetings"
    __table_args__ = (
        UniqueConstraint("delivery_id"),
        UniqueConstraint("ics_uid"),
        CheckConstraint(f"status IN ({sql_in(MeetingStatus)})", name="status"),
        CheckConstraint("status <> 'accepted' OR starts_at IS NOT NULL", name="accepted_slot"),
        CheckConstraint("ends_at IS NULL OR ends_at > starts_at", name="slot_order"),
    )

    delivery_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("deliveries.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(16))
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    location: Mapped[str] = mapped_column(String(300), default="", server_default="")
    # [{"starts_at": iso, "ends_at": iso, "note": str}] when the department proposed others.
    alternatives: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, default=list, server_default="[]"
    )
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    official_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    official_email: Mapped[str] = mapped_column(String(254), default="", server_default="")
    ics_uid: Mapped[str] = mapped_column(String(255))
    ics_sequence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    invitation_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reminder_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome_notes: Mapped[str] = mapped_column(Text, default="", server_default="")
    outcome_published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def status_enum(self) -> MeetingStatus:
        return MeetingStatus(self.status)


class Assessment(enum.StrEnum):
    ANSWERED = "answered"
    PARTLY = "partly"
    NOT_ANSWERED = "not_answered"

    @property
    def label(self) -> str:
        labels = {"answered": "Answered", "partly": "Partly answered"}
        return labels.get(self.value, "Not answered")


class AskAssessment(TenantScoped, IdMixin, TimestampMixin, Base):
    __tablename__ = "ask_assessments"
    __table_args__ = (
        UniqueConstraint("delivery_id", "ask_index"),
        CheckConstraint(f"assessment IN ({sql_in(Assessment)})", name="assessment"),
        CheckConstraint("ask_index >= 0", name="ask_index"),
    )

    delivery_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    ask_index: Mapped[int] = mapped_column(Integer)
    ask_text: Mapped[str] = mapped_column(Text)
    assessment: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="", server_default="")

    @property
    def assessment_enum(self) -> Assessment:
        return Assessment(self.assessment)


class DepartmentAccount(IdMixin, TimestampMixin, Base):
    """An official's claim on a directory department, proved by email (see the module
    docstring). One user may hold several (a shared service answering for two)."""

    __tablename__ = "department_accounts"
    __table_args__ = (UniqueConstraint("user_id", "recipient_id"),)

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    recipient_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("recipients.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(254))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
