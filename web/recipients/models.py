"""Recipients: the shared directory of UK government departments, plus each collective's
own recipients (a council, an MP, a regulator, a company) that only it can see."""

from __future__ import annotations

import enum

from sqlalchemy import ARRAY, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from web.db import Base, IdMixin, TimestampMixin
from web.tenancy import SharedOrTenantScoped


class RecipientKind(enum.StrEnum):
    MINISTERIAL_DEPARTMENT = "ministerial_department"
    DEVOLVED_GOVERNMENT = "devolved_government"
    COUNCIL = "council"
    MP = "mp"
    REGULATOR = "regulator"
    COMPANY = "company"
    OTHER = "other"

    @property
    def label(self) -> str:
        return {
            "ministerial_department": "Ministerial department",
            "devolved_government": "Devolved government",
            "council": "Council",
            "mp": "Member of Parliament",
            "regulator": "Regulator",
            "company": "Company",
            "other": "Other",
        }[self.value]


class Nation(enum.StrEnum):
    """Whose bank holidays count when deadlines are computed in working days."""

    ENGLAND_AND_WALES = "england-and-wales"
    SCOTLAND = "scotland"
    NORTHERN_IRELAND = "northern-ireland"


class Recipient(SharedOrTenantScoped, IdMixin, TimestampMixin, Base):
    """collective_id NULL: a directory entry, curated by the platform operator.
    Unknown fields stay empty; nothing is invented."""

    __tablename__ = "recipients"
    __table_args__ = (
        UniqueConstraint("collective_id", "key", postgresql_nulls_not_distinct=True),
        Index("ix_recipients_name", "name"),
    )

    key: Mapped[str] = mapped_column(String(80))  # stable identifier, e.g. "dwp"
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    short_name: Mapped[str] = mapped_column(String(60), default="", server_default="")
    postal_address: Mapped[str] = mapped_column(Text, default="", server_default="")
    website: Mapped[str] = mapped_column(String(300), default="", server_default="")
    remit_keywords: Mapped[list[str]] = mapped_column(
        ARRAY(Text), default=list, server_default="{}"
    )
    ack_target_days: Mapped[int] = mapped_column(Integer, default=5, server_default="5")
    reply_target_days: Mapped[int] = mapped_column(Integer, default=20, server_default="20")
    nation: Mapped[str] = mapped_column(
        String(32), default=Nation.ENGLAND_AND_WALES.value, server_default="england-and-wales"
    )
    email_domains: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    correspondence_email: Mapped[str] = mapped_column(String(254), default="", server_default="")
    escalation_email: Mapped[str] = mapped_column(String(254), default="", server_default="")

    @property
    def is_directory_entry(self) -> bool:
        return self.collective_id is None

    @property
    def display_name(self) -> str:
        return f"{self.name} ({self.short_name})" if self.short_name else self.name
