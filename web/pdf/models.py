"""Generated PDFs and the renders that make them.

A `Document` is one PDF, stored in PostgreSQL (bytes, SHA-256, size, content type) so web
and workers on different machines read the same file. It is keyed by the hash of the
inputs it was rendered from (per campaign and kind), which makes the cache: an unchanged
letter is not rendered twice (the unique constraint settles a race between two workers).

A `PdfRender` is one organiser's request for a PDF: its status and progress, which the
progress page reads while a worker renders, and the document it produced (or reused).

Anyone may ask /verify whether a PDF's SHA-256 belongs to a Chorus document. That lookup
spans collectives, so it does not read these tables through the ORM: it calls the SQL
function `chorus_verify_document(fingerprint)` (created in migration 0012), which returns
only the campaign title, the collective's name, the letter version, the kind and the date
(see `web.pdf.services.verify_fingerprint`), never the bytes of another collective's PDF.
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
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from web.db import Base, IdMixin, TimestampMixin, sql_in, utcnow
from web.tenancy import TenantScoped

PDF_CONTENT_TYPE = "application/pdf"


class DocumentKind(enum.StrEnum):
    PREVIEW = "preview"  # any state, watermarked DRAFT on every page
    FINAL = "final"  # once the campaign has stopped collecting

    @property
    def label(self) -> str:
        return "Preview (marked DRAFT)" if self is DocumentKind.PREVIEW else "Final letter"


class RenderStatus(enum.StrEnum):
    QUEUED = "queued"
    RENDERING = "rendering"
    DONE = "done"
    FAILED = "failed"


UNFINISHED = (RenderStatus.QUEUED.value, RenderStatus.RENDERING.value)


class Document(TenantScoped, IdMixin, TimestampMixin, Base):
    """One generated PDF. Immutable once written."""

    __tablename__ = "documents"
    __table_args__ = (
        # The render cache: one document per campaign, kind and rendered inputs.
        UniqueConstraint("campaign_id", "kind", "inputs_hash"),
        CheckConstraint(f"kind IN ({sql_in(DocumentKind)})", name="kind"),
        # Lower-case hex only, so /verify can compare with `=` on the index.
        CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="sha256"),
        CheckConstraint("size = octet_length(data)", name="size"),
    )

    campaign_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    # The published version the letter carries; NULL for a preview of an unpublished draft.
    letter_version_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("letter_versions.id", ondelete="SET NULL")
    )
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(
        String(64), default=PDF_CONTENT_TYPE, server_default=PDF_CONTENT_TYPE
    )
    pages: Mapped[int] = mapped_column(Integer)
    inputs_hash: Mapped[str] = mapped_column(String(64))
    # Deferred: listing documents never loads megabytes of PDF.
    data: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)

    @property
    def kind_enum(self) -> DocumentKind:
        return DocumentKind(self.kind)


class PdfRender(TenantScoped, IdMixin, TimestampMixin, Base):
    """An organiser's request for a PDF, and how far the worker has got with it."""

    __tablename__ = "pdf_renders"
    __table_args__ = (
        CheckConstraint(f"kind IN ({sql_in(DocumentKind)})", name="kind"),
        CheckConstraint(f"status IN ({sql_in(RenderStatus)})", name="status"),
        CheckConstraint(
            "progress_done >= 0 AND progress_total >= 0 AND progress_done <= progress_total",
            name="progress",
        ),
        # The sweep for renders whose worker vanished (workers/jobs/pdf.py) reads these.
        Index(
            "ix_pdf_renders_unfinished",
            "updated_at",
            postgresql_where=text("status IN ('queued', 'rendering')"),
        ),
    )

    campaign_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(
        String(16), default=RenderStatus.QUEUED.value, server_default=RenderStatus.QUEUED.value
    )
    # Annex pages (chunks) done and in all, as the engine reports them; 0/0 until known.
    progress_done: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    progress_total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The engine's readable message when the render failed; "" otherwise.
    error: Mapped[str] = mapped_column(Text, default="", server_default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # True when an earlier PDF of the same inputs was reused instead of rendering again.
    is_cached: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    requested_by_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL")
    )
    document_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("documents.id", ondelete="SET NULL"), index=True
    )
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, onupdate=utcnow
    )

    @property
    def kind_enum(self) -> DocumentKind:
        return DocumentKind(self.kind)

    @property
    def is_finished(self) -> bool:
        return self.status not in UNFINISHED

    @property
    def percent(self) -> int:
        """Share of annex pages done, 0-100 (0 until the engine says how many)."""
        if self.status == RenderStatus.DONE.value:
            return 100
        if not self.progress_total:
            return 0
        return min(100, self.progress_done * 100 // self.progress_total)
