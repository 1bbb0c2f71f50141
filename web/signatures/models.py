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
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from web.db import Base, IdMixin, TimestampMixin, sql_in
from web.tenancy import TenantScoped


class SignatureStatus(enum.StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"
    QUARANTINED = "quarantined"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    # Erased by the signer after delivery: an anonymous tombstone (no personal data).
    ERASED = "erased"


class SignatureMethod(enum.StrEnum):
    ONLINE = "online"
    ASSISTED = "assisted"
    PAPER = "paper"


class StatementStatus(enum.StrEnum):
    """Where a signer's own words stand (web/signatures/statements.py)."""

    NONE = "none"  # no words, or the signer did not agree to show them
    PENDING = "pending"  # waiting for an organiser (or, with auto-approve, for confirmation)
    APPROVED = "approved"
    HIDDEN = "hidden"  # by an organiser, with a reason


class CollectionChannel(enum.StrEnum):
    """How an organiser's helper collected an offline signature ('' for online ones).

    `phone` and `in_person` go with the method `assisted`, `paper` with the method
    `paper` (see web/signatures/offline.py)."""

    PHONE = "phone"
    IN_PERSON = "in_person"
    PAPER = "paper"


class Signature(TenantScoped, IdMixin, TimestampMixin, Base):
    __tablename__ = "signatures"
    __table_args__ = (
        # One signature per person per campaign, whatever alias of the address they use.
        UniqueConstraint("campaign_id", "email_canonical"),
        # Counts, reconciliation and the moderation queue all filter on these two.
        Index("ix_signatures_campaign_id_status", "campaign_id", "status"),
        # Trending detection and time-window bulk invalidation read recent signatures.
        Index("ix_signatures_campaign_id_created_at", "campaign_id", "created_at"),
        # The re-consent job pages through a campaign's signers of older versions by id.
        Index(
            "ix_signatures_awaiting_reconsent",
            "campaign_id",
            "id",
            postgresql_where=text("needs_reconsent"),
        ),
        # An update to signers pages through a campaign's opted-in verified signers by id.
        Index(
            "ix_signatures_update_recipients",
            "campaign_id",
            "id",
            postgresql_where=text("wants_updates AND status = 'verified'"),
        ),
        CheckConstraint(f"status IN ({sql_in(SignatureStatus)})", name="status"),
        CheckConstraint(f"method IN ({sql_in(SignatureMethod)})", name="method"),
        # Own words (web/signatures/statements.py). Signatures without words to show
        # (most of them) stay out of these partial indexes, so signing pays nothing.
        CheckConstraint(
            f"statement_status IN ({sql_in(StatementStatus)})", name="statement_status"
        ),
        Index(
            "ix_signatures_statements",
            "campaign_id",
            "statement_status",
            "status",
            "id",
            postgresql_where=text("statement_status <> 'none'"),
        ),
        Index(
            "ix_signatures_ungrouped_statements",
            "status",
            "campaign_id",
            "id",
            postgresql_where=text("statement_group_id IS NULL AND statement_status <> 'none'"),
        ),
        Index(
            "ix_signatures_statement_group_id",
            "statement_group_id",
            postgresql_where=text("statement_group_id IS NOT NULL"),
        ),
        # Assisted and paper signatures (web/signatures/offline.py).
        CheckConstraint(f"channel IN ('', {sql_in(CollectionChannel)})", name="channel"),
        CheckConstraint(
            "channel = ''"
            " OR (method = 'assisted' AND channel IN ('phone', 'in_person'))"
            " OR (method = 'paper' AND channel = 'paper')",
            name="channel_method",
        ),
        # Only an offline signature may come without an email address.
        CheckConstraint("email <> '' OR method <> 'online'", name="online_email"),
        # The public page's "including 40 on paper" reads only the few offline rows.
        Index(
            "ix_signatures_offline",
            "campaign_id",
            "status",
            "method",
            "channel",
            postgresql_where=text("method <> 'online'"),
        ),
        Index(
            "ix_signatures_import_id",
            "import_id",
            postgresql_where=text("import_id IS NOT NULL"),
        ),
        Index(
            "ix_signatures_recorded_by_id",
            "recorded_by_id",
            postgresql_where=text("recorded_by_id IS NOT NULL"),
        ),
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
    # Own words: shown publicly only with consent (`show_statement`), once approved, and
    # while the signature counts. `statement_group_id` is set by the grouping job.
    show_statement: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    statement_status: Mapped[str] = mapped_column(
        String(16), default=StatementStatus.NONE.value, server_default=StatementStatus.NONE.value
    )
    statement_hidden_reason: Mapped[str] = mapped_column(String(500), default="", server_default="")
    statement_moderated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    statement_group_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("statement_groups.id", ondelete="SET NULL")
    )
    # Assisted and paper signatures (method `assisted` or `paper`), recorded by an
    # organiser on someone's behalf; all empty or NULL for online ones.
    # - `email` may be '' (people sign paper without one). Such a row's
    #   `email_canonical` is "offline:" + the SHA-256 of the signer's normalised name and
    #   postcode (`offline.offline_key`), so the unique (campaign_id, email_canonical)
    #   constraint still holds and importing the same paper forms twice adds nothing.
    #   It contains no "@", so it never equals a real address. Code that emails signers
    #   must skip rows whose `email` is ''.
    # - They are verified at once (status verified, `verified_at` when recorded): the
    #   helper confirmed the person's consent (`consent_confirmed_at`) instead of an email.
    channel: Mapped[str] = mapped_column(String(16), default="", server_default="")
    helper_name: Mapped[str] = mapped_column(String(120), default="", server_default="")
    recorded_by_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL")
    )
    consent_confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    import_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("signature_imports.id", ondelete="SET NULL")
    )
    # Self-service: the secret of the private "your signature" link (SHA-256 only). NULL
    # for signatures recorded before the link existed, and once erased.
    manage_secret_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    # The newest re-consent email: the version it asked about (so a re-run sends nothing
    # twice) and its link's secret (SHA-256 only; the link also opens the page above).
    reconsent_version_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("letter_versions.id", ondelete="SET NULL")
    )
    reconsent_secret_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    # Updates to signers: when the signer stopped them (wants_updates is cleared then too).
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


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


class StatementGroup(TenantScoped, IdMixin, TimestampMixin, Base):
    """Near-identical statements of one campaign. The group keeps the MinHash of the
    statement that founded it; its LSH band hashes are in `statement_bands`, so a new
    statement finds its group by index lookup (web/signatures/statements.py)."""

    __tablename__ = "statement_groups"

    campaign_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    minhash: Mapped[bytes] = mapped_column(LargeBinary)


class StatementBand(TenantScoped, Base):
    """One LSH band of a group's MinHash: statements sharing a band are candidates."""

    __tablename__ = "statement_bands"
    __table_args__ = (Index("ix_statement_bands_lookup", "campaign_id", "band", "band_hash"),)

    group_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("statement_groups.id", ondelete="CASCADE"), primary_key=True
    )
    band: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("campaigns.id", ondelete="CASCADE")
    )
    band_hash: Mapped[int] = mapped_column(BigInteger)


class SignatureImport(TenantScoped, IdMixin, TimestampMixin, Base):
    """One CSV file of paper signatures, imported in one transaction: who, when, which
    file (name and SHA-256), what came of its rows, and the report of every row that was
    not imported. The report holds line numbers, columns and reasons only, never the
    rows' personal data, so it can be kept for as long as the campaign."""

    __tablename__ = "signature_imports"
    __table_args__ = (
        CheckConstraint(
            "imported_count >= 0 AND duplicate_count >= 0 AND invalid_count >= 0",
            name="counts",
        ),
    )

    campaign_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    imported_by_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    file_name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))  # hex digest of the file's bytes
    helper_name: Mapped[str] = mapped_column(String(120), default="", server_default="")
    imported_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    duplicate_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    invalid_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # [{"line": 7, "kind": "invalid" | "duplicate", "column": "postcode", "reason": "..."}]
    report: Mapped[list[dict[str, object]]] = mapped_column(
        JSONB, default=list, server_default="[]"
    )
