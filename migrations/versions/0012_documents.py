"""generated PDF documents and their renders

`documents` holds every generated PDF (bytes, SHA-256, size, content type), keyed per
campaign and kind by the hash of its inputs (the render cache); `pdf_renders` holds each
request for a PDF with its status and progress. Both carry the tenant policy.

/verify must find a document by its SHA-256 whichever collective made it, without the
public request opening the tenant policy: `chorus_verify_document(fingerprint)` lifts
the policy (its own SET clause, restored when it returns) for one fixed query that
returns only the campaign title, the collective's name, the letter version number, the
kind and the date. Never the bytes, never another column. Its sibling
`chorus_verify_letter_version` does the same for the SHA-256 of a published letter
version's text (public already, on the version's page).

Revision ID: 0012_documents
Revises: 0011_trending
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from web.db import APP_ROLE
from web.tenancy import disable_rls_sql, enable_rls_sql

revision: str = "0012_documents"
down_revision: str | None = "0011_trending"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = ("documents", "pdf_renders")

VERIFY_FUNCTION = """
CREATE FUNCTION chorus_verify_document(fingerprint text)
RETURNS TABLE (
    document_id bigint,
    kind text,
    created_at timestamptz,
    campaign_title text,
    collective_name text,
    letter_version integer
)
LANGUAGE sql STABLE
SET app.all_collectives = 'on'
SET search_path = public, pg_temp
AS $$
    SELECT d.id, d.kind::text, d.created_at, c.title::text, co.name::text, lv.number
    FROM documents d
    JOIN campaigns c ON c.id = d.campaign_id
    JOIN collectives co ON co.id = d.collective_id
    LEFT JOIN letter_versions lv ON lv.id = d.letter_version_id
    WHERE d.sha256 = fingerprint
    ORDER BY d.created_at, d.id
    LIMIT 10
$$
"""

# The letter prints the SHA-256 of the letter version's text beside the /verify address,
# so people paste that too: this says which published letter it names (already public).
VERIFY_VERSION_FUNCTION = """
CREATE FUNCTION chorus_verify_letter_version(fingerprint text)
RETURNS TABLE (campaign_title text, collective_name text, letter_version integer)
LANGUAGE sql STABLE
SET app.all_collectives = 'on'
SET search_path = public, pg_temp
AS $$
    SELECT c.title::text, co.name::text, lv.number
    FROM letter_versions lv
    JOIN campaigns c ON c.id = lv.campaign_id
    JOIN collectives co ON co.id = lv.collective_id
    WHERE lv.sha256 = fingerprint AND c.published_at IS NOT NULL
    ORDER BY lv.id
    LIMIT 10
$$
"""
FUNCTIONS = ("chorus_verify_document(text)", "chorus_verify_letter_version(text)")


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("letter_version_id", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column(
            "content_type",
            sa.String(length=64),
            server_default="application/pdf",
            nullable=False,
        ),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("inputs_hash", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("collective_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("kind IN ('preview', 'final')", name=op.f("ck_documents_kind")),
        sa.CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name=op.f("ck_documents_sha256")),
        sa.CheckConstraint("size = octet_length(data)", name=op.f("ck_documents_size")),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_documents_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["collective_id"],
            ["collectives.id"],
            name=op.f("fk_documents_collective_id_collectives"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["letter_version_id"],
            ["letter_versions.id"],
            name=op.f("fk_documents_letter_version_id_letter_versions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
        sa.UniqueConstraint(
            "campaign_id",
            "kind",
            "inputs_hash",
            name=op.f("uq_documents_campaign_id_kind_inputs_hash"),
        ),
    )
    op.create_index(op.f("ix_documents_campaign_id"), "documents", ["campaign_id"], unique=False)
    op.create_index(
        op.f("ix_documents_collective_id"), "documents", ["collective_id"], unique=False
    )
    op.create_index(op.f("ix_documents_sha256"), "documents", ["sha256"], unique=False)
    op.create_table(
        "pdf_renders",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("progress_done", sa.Integer(), server_default="0", nullable=False),
        sa.Column("progress_total", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), server_default="", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("is_cached", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("requested_by_id", sa.BigInteger(), nullable=True),
        sa.Column("document_id", sa.BigInteger(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("collective_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("kind IN ('preview', 'final')", name=op.f("ck_pdf_renders_kind")),
        sa.CheckConstraint(
            "status IN ('queued', 'rendering', 'done', 'failed')",
            name=op.f("ck_pdf_renders_status"),
        ),
        sa.CheckConstraint(
            "progress_done >= 0 AND progress_total >= 0 AND progress_done <= progress_total",
            name=op.f("ck_pdf_renders_progress"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_pdf_renders_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["collective_id"],
            ["collectives.id"],
            name=op.f("fk_pdf_renders_collective_id_collectives"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_pdf_renders_document_id_documents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"],
            ["users.id"],
            name=op.f("fk_pdf_renders_requested_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pdf_renders")),
    )
    op.create_index(
        op.f("ix_pdf_renders_campaign_id"), "pdf_renders", ["campaign_id"], unique=False
    )
    op.create_index(
        op.f("ix_pdf_renders_collective_id"), "pdf_renders", ["collective_id"], unique=False
    )
    op.create_index(
        op.f("ix_pdf_renders_document_id"), "pdf_renders", ["document_id"], unique=False
    )
    op.create_index(
        "ix_pdf_renders_unfinished",
        "pdf_renders",
        ["updated_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('queued', 'rendering')"),
    )
    for table in TENANT_TABLES:
        for statement in enable_rls_sql(table):
            op.execute(statement)
    op.execute(VERIFY_FUNCTION)
    op.execute(VERIFY_VERSION_FUNCTION)
    for function in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {function} TO {APP_ROLE}")


def downgrade() -> None:
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    for table in TENANT_TABLES:
        for statement in disable_rls_sql(table):
            op.execute(statement)
    op.drop_index(
        "ix_pdf_renders_unfinished",
        table_name="pdf_renders",
        postgresql_where=sa.text("status IN ('queued', 'rendering')"),
    )
    op.drop_index(op.f("ix_pdf_renders_document_id"), table_name="pdf_renders")
    op.drop_index(op.f("ix_pdf_renders_collective_id"), table_name="pdf_renders")
    op.drop_index(op.f("ix_pdf_renders_campaign_id"), table_name="pdf_renders")
    op.drop_table("pdf_renders")
    op.drop_index(op.f("ix_documents_sha256"), table_name="documents")
    op.drop_index(op.f("ix_documents_collective_id"), table_name="documents")
    op.drop_index(op.f("ix_documents_campaign_id"), table_name="documents")
    op.drop_table("documents")
