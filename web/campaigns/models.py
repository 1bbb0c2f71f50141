"""Campaigns, their letter (draft, revisions, reviews) and immutable published versions."""

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
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from web.accounts.models import User
from web.db import Base, IdMixin, TimestampMixin, sql_in, utcnow
from web.tenancy import TenantScoped


class CampaignKind(enum.StrEnum):
    OPEN_LETTER = "open_letter"
    MEETING_REQUEST = "meeting_request"

    @property
    def label(self) -> str:
        return "Open letter" if self is CampaignKind.OPEN_LETTER else "Meeting request"


class CampaignState(enum.StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    COLLECTING = "collecting"
    CLOSED = "closed"
    # Later stages of the lifecycle (delivery and responses) arrive with their issues.
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    RESPONDED = "responded"
    MEETING_SCHEDULED = "meeting_scheduled"
    CONCLUDED = "concluded"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


class AudienceStyle(enum.StrEnum):
    MINISTER = "minister"
    SENIOR_OFFICIAL = "senior_official"
    POLICY_TEAM = "policy_team"
    SELECT_COMMITTEE = "select_committee"
    LOCAL_AUTHORITY = "local_authority"


class Campaign(TenantScoped, IdMixin, TimestampMixin, Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        UniqueConstraint("collective_id", "slug"),
        CheckConstraint(f"kind IN ({sql_in(CampaignKind)})", name="kind"),
        CheckConstraint(f"state IN ({sql_in(CampaignState)})", name="state"),
        CheckConstraint(f"audience_style IN ({sql_in(AudienceStyle)})", name="audience_style"),
        CheckConstraint("signature_target IS NULL OR signature_target > 0", name="target"),
        CheckConstraint("postcode_mode IN ('off', 'optional', 'required')", name="postcode_mode"),
        # Retention counts from concluded_at, so a concluded campaign must have one.
        CheckConstraint("state <> 'concluded' OR concluded_at IS NOT NULL", name="concluded_at"),
    )

    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(80))
    state: Mapped[str] = mapped_column(String(32), default=CampaignState.DRAFT.value)
    recipient_id: Mapped[int | None] = mapped_column(
        ForeignKey("recipients.id", ondelete="SET NULL"), index=True
    )
    addressee_name: Mapped[str] = mapped_column(String(200), default="", server_default="")
    addressee_role: Mapped[str] = mapped_column(String(200), default="", server_default="")
    audience_style: Mapped[str] = mapped_column(String(32), default=AudienceStyle.MINISTER.value)
    signature_target: Mapped[int | None] = mapped_column(Integer)
    closes_on: Mapped[date | None] = mapped_column(Date)

    # The draft letter: edited freely until publication, saved as revisions.
    subject: Mapped[str] = mapped_column(String(200), default="", server_default="")
    summary: Mapped[str] = mapped_column(Text, default="", server_default="")
    body_markdown: Mapped[str] = mapped_column(Text, default="", server_default="")
    asks: Mapped[list[str]] = mapped_column(JSONB, default=list, server_default="[]")
    evidence_links: Mapped[list[dict[str, str]]] = mapped_column(
        JSONB, default=list, server_default="[]"
    )
    easy_read_markdown: Mapped[str] = mapped_column(Text, default="", server_default="")
    meeting_purpose: Mapped[str] = mapped_column(Text, default="", server_default="")
    meeting_attendees: Mapped[str] = mapped_column(Text, default="", server_default="")
    meeting_slots: Mapped[list[dict[str, str]]] = mapped_column(
        JSONB, default=list, server_default="[]"
    )
    # Signed under the letter: "Name, role" and organisations, one a line (the PDF's
    # signature block). Part of the letter content only when not empty.
    lead_signatories: Mapped[str] = mapped_column(Text, default="", server_default="")
    signing_organisations: Mapped[str] = mapped_column(Text, default="", server_default="")

    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, onupdate=utcnow
    )
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set on entering CONCLUDED. Signers' personal data is anonymised `retention_days`
    # later (web/signatures/retention.py), which records when in signers_anonymised_at.
    concluded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    signers_anonymised_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revision_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Signing form options: postcode "off" | "optional" | "required"; own words on or off.
    postcode_mode: Mapped[str] = mapped_column(
        String(8), default="optional", server_default="optional"
    )
    statements_enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    # Approve a signer's own words as soon as their signature is verified (they still need
    # the signer's consent to show; organisers can still hide them).
    statements_auto_approve: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default="false"
    )

    @property
    def kind_enum(self) -> CampaignKind:
        return CampaignKind(self.kind)

    @property
    def state_enum(self) -> CampaignState:
        return CampaignState(self.state)

    @property
    def style(self) -> AudienceStyle:
        return AudienceStyle(self.audience_style)

    def letter_content(self) -> dict[str, Any]:
        """The letter as plain data: what a revision stores and a version freezes."""
        content: dict[str, Any] = {
            "kind": self.kind,
            "title": self.title,
            "addressee_name": self.addressee_name,
            "addressee_role": self.addressee_role,
            "audience_style": self.audience_style,
            "recipient_id": self.recipient_id,
            "subject": self.subject,
            "summary": self.summary,
            "body_markdown": self.body_markdown,
            "asks": list(self.asks or []),
            "evidence_links": [dict(link) for link in (self.evidence_links or [])],
            "easy_read_markdown": self.easy_read_markdown,
        }
        if self.kind == CampaignKind.MEETING_REQUEST.value:
            content["meeting_purpose"] = self.meeting_purpose
            content["meeting_attendees"] = self.meeting_attendees
            content["meeting_slots"] = [dict(slot) for slot in (self.meeting_slots or [])]
        # Only when filled in, so the content (and SHA-256) of letters without them is
        # exactly what it was before these fields existed.
        if self.lead_signatories:
            content["lead_signatories"] = self.lead_signatories
        if self.signing_organisations:
            content["signing_organisations"] = self.signing_organisations
        return content


class LetterRevision(TenantScoped, IdMixin, TimestampMixin, Base):
    """Every save of the draft: who, when and exactly what."""

    __tablename__ = "letter_revisions"
    __table_args__ = (UniqueConstraint("campaign_id", "number"),)

    campaign_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    content: Mapped[dict[str, Any]] = mapped_column(JSONB)

    author: Mapped[User | None] = relationship(lazy="joined")


class ReviewEvent(TenantScoped, IdMixin, TimestampMixin, Base):
    """Submitted for review, approved, or changes requested (with a comment)."""

    __tablename__ = "review_events"
    __table_args__ = (
        CheckConstraint(
            "action IN ('submitted', 'approved', 'changes_requested', 'withdrawn')",
            name="action",
        ),
    )

    campaign_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    revision_number: Mapped[int] = mapped_column(Integer)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(24))
    comment: Mapped[str] = mapped_column(Text, default="", server_default="")

    actor: Mapped[User | None] = relationship(lazy="joined")


class LetterVersion(TenantScoped, IdMixin, TimestampMixin, Base):
    """The letter's text at publication: immutable, identified by the SHA-256 of its
    canonical text. Signatures bind to one version."""

    __tablename__ = "letter_versions"
    __table_args__ = (UniqueConstraint("campaign_id", "number"),)

    campaign_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    content: Mapped[dict[str, Any]] = mapped_column(JSONB)
    canonical_text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
