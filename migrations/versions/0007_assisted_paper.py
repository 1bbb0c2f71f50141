"""assisted and paper signatures, CSV imports

Signatures gain how an offline signature was collected (channel), the helper's name,
the organiser who recorded it, when consent was confirmed, and the import it came from.
The new table `signature_imports` carries the tenant policy. Partial indexes keep the
online signing path free of their upkeep: only offline rows are indexed.

Revision ID: 0007_assisted_paper
Revises: 0006_statements
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from web.tenancy import disable_rls_sql, enable_rls_sql

revision: str = "0007_assisted_paper"
down_revision: str | None = "0006_statements"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signature_imports",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("imported_by_id", sa.BigInteger(), nullable=True),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("helper_name", sa.String(length=120), server_default="", nullable=False),
        sa.Column("imported_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("duplicate_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("invalid_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "report",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
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
        sa.CheckConstraint(
            "imported_count >= 0 AND duplicate_count >= 0 AND invalid_count >= 0",
            name=op.f("ck_signature_imports_counts"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_signature_imports_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["collective_id"],
            ["collectives.id"],
            name=op.f("fk_signature_imports_collective_id_collectives"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["imported_by_id"],
            ["users.id"],
            name=op.f("fk_signature_imports_imported_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signature_imports")),
    )
    for column in ("campaign_id", "collective_id", "imported_by_id"):
        op.create_index(
            op.f(f"ix_signature_imports_{column}"), "signature_imports", [column], unique=False
        )
    for statement in enable_rls_sql("signature_imports"):
        op.execute(statement)

    op.add_column(
        "signatures", sa.Column("channel", sa.String(length=16), server_default="", nullable=False)
    )
    op.add_column(
        "signatures",
        sa.Column("helper_name", sa.String(length=120), server_default="", nullable=False),
    )
    op.add_column("signatures", sa.Column("recorded_by_id", sa.BigInteger(), nullable=True))
    op.add_column(
        "signatures",
        sa.Column("consent_confirmed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column("signatures", sa.Column("import_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_signatures_recorded_by_id_users"),
        "signatures",
        "users",
        ["recorded_by_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_foreign_key(
        op.f("fk_signatures_import_id_signature_imports"),
        "signatures",
        "signature_imports",
        ["import_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_check_constraint(
        op.f("ck_signatures_channel"),
        "signatures",
        "channel IN ('', 'phone', 'in_person', 'paper')",
    )
    op.create_check_constraint(
        op.f("ck_signatures_channel_method"),
        "signatures",
        "channel = ''"
        " OR (method = 'assisted' AND channel IN ('phone', 'in_person'))"
        " OR (method = 'paper' AND channel = 'paper')",
    )
    op.create_check_constraint(
        op.f("ck_signatures_online_email"), "signatures", "email <> '' OR method <> 'online'"
    )
    op.create_index(
        "ix_signatures_offline",
        "signatures",
        ["campaign_id", "status", "method", "channel"],
        unique=False,
        postgresql_where=sa.text("method <> 'online'"),
    )
    op.create_index(
        "ix_signatures_import_id",
        "signatures",
        ["import_id"],
        unique=False,
        postgresql_where=sa.text("import_id IS NOT NULL"),
    )
    op.create_index(
        "ix_signatures_recorded_by_id",
        "signatures",
        ["recorded_by_id"],
        unique=False,
        postgresql_where=sa.text("recorded_by_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_signatures_recorded_by_id",
        table_name="signatures",
        postgresql_where=sa.text("recorded_by_id IS NOT NULL"),
    )
    op.drop_index(
        "ix_signatures_import_id",
        table_name="signatures",
        postgresql_where=sa.text("import_id IS NOT NULL"),
    )
    op.drop_index(
        "ix_signatures_offline",
        table_name="signatures",
        postgresql_where=sa.text("method <> 'online'"),
    )
    op.drop_constraint(op.f("ck_signatures_online_email"), "signatures", type_="check")
    op.drop_constraint(op.f("ck_signatures_channel_method"), "signatures", type_="check")
    op.drop_constraint(op.f("ck_signatures_channel"), "signatures", type_="check")
    op.drop_constraint(
        op.f("fk_signatures_import_id_signature_imports"), "signatures", type_="foreignkey"
    )
    op.drop_constraint(op.f("fk_signatures_recorded_by_id_users"), "signatures", type_="foreignkey")
    op.drop_column("signatures", "import_id")
    op.drop_column("signatures", "consent_confirmed_at")
    op.drop_column("signatures", "recorded_by_id")
    op.drop_column("signatures", "helper_name")
    op.drop_column("signatures", "channel")

    for statement in disable_rls_sql("signature_imports"):
        op.execute(statement)
    for column in ("imported_by_id", "collective_id", "campaign_id"):
        op.drop_index(op.f(f"ix_signature_imports_{column}"), table_name="signature_imports")
    op.drop_table("signature_imports")
