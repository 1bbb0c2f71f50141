"""statements in the signers' own words: moderation and near-duplicate groups

Signatures get the signer's consent to show their words, a moderation state and the
near-duplicate group; campaigns get the auto-approve setting. The two new tables (groups
and their LSH band hashes) carry the tenant policy.

Revision ID: 0006_statements
Revises: 0005_sig_campaign_status
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from web.tenancy import disable_rls_sql, enable_rls_sql

TENANT_TABLES = ("statement_groups", "statement_bands")

revision: str = "0006_statements"
down_revision: str | None = "0005_sig_campaign_status"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "statement_groups",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("minhash", sa.LargeBinary(), nullable=False),
        sa.Column("collective_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_statement_groups_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["collective_id"],
            ["collectives.id"],
            name=op.f("fk_statement_groups_collective_id_collectives"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statement_groups")),
    )
    op.create_index(
        op.f("ix_statement_groups_campaign_id"), "statement_groups", ["campaign_id"], unique=False
    )
    op.create_index(
        op.f("ix_statement_groups_collective_id"),
        "statement_groups",
        ["collective_id"],
        unique=False,
    )
    op.create_table(
        "statement_bands",
        sa.Column("group_id", sa.BigInteger(), nullable=False),
        sa.Column("band", sa.SmallInteger(), nullable=False),
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("band_hash", sa.BigInteger(), nullable=False),
        sa.Column("collective_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_statement_bands_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["collective_id"],
            ["collectives.id"],
            name=op.f("fk_statement_bands_collective_id_collectives"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["statement_groups.id"],
            name=op.f("fk_statement_bands_group_id_statement_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "band", name=op.f("pk_statement_bands")),
    )
    op.create_index(
        "ix_statement_bands_lookup",
        "statement_bands",
        ["campaign_id", "band", "band_hash"],
        unique=False,
    )
    op.create_index(
        op.f("ix_statement_bands_collective_id"),
        "statement_bands",
        ["collective_id"],
        unique=False,
    )

    op.add_column(
        "campaigns",
        sa.Column("statements_auto_approve", sa.Boolean(), server_default="false", nullable=False),
    )
    op.add_column(
        "signatures",
        sa.Column("show_statement", sa.Boolean(), server_default="false", nullable=False),
    )
    op.add_column(
        "signatures",
        sa.Column("statement_status", sa.String(length=16), server_default="none", nullable=False),
    )
    op.add_column(
        "signatures",
        sa.Column(
            "statement_hidden_reason", sa.String(length=500), server_default="", nullable=False
        ),
    )
    op.add_column(
        "signatures",
        sa.Column("statement_moderated_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column("signatures", sa.Column("statement_group_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_signatures_statement_group_id_statement_groups"),
        "signatures",
        "statement_groups",
        ["statement_group_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_check_constraint(
        "statement_status",
        "signatures",
        "statement_status IN ('none', 'pending', 'approved', 'hidden')",
    )
    op.create_index(
        "ix_signatures_statements",
        "signatures",
        ["campaign_id", "statement_status", "status", "id"],
        unique=False,
        postgresql_where=sa.text("statement_status <> 'none'"),
    )
    op.create_index(
        "ix_signatures_ungrouped_statements",
        "signatures",
        ["status", "campaign_id", "id"],
        unique=False,
        postgresql_where=sa.text("statement_group_id IS NULL AND statement_status <> 'none'"),
    )
    op.create_index(
        "ix_signatures_statement_group_id",
        "signatures",
        ["statement_group_id"],
        unique=False,
        postgresql_where=sa.text("statement_group_id IS NOT NULL"),
    )
    for table in TENANT_TABLES:
        for statement in enable_rls_sql(table):
            op.execute(statement)


def downgrade() -> None:
    for table in TENANT_TABLES:
        for statement in disable_rls_sql(table):
            op.execute(statement)
    op.drop_index("ix_signatures_statement_group_id", table_name="signatures")
    op.drop_index("ix_signatures_ungrouped_statements", table_name="signatures")
    op.drop_index("ix_signatures_statements", table_name="signatures")
    op.drop_constraint(op.f("ck_signatures_statement_status"), "signatures", type_="check")
    op.drop_constraint(
        op.f("fk_signatures_statement_group_id_statement_groups"),
        "signatures",
        type_="foreignkey",
    )
    op.drop_column("signatures", "statement_group_id")
    op.drop_column("signatures", "statement_moderated_at")
    op.drop_column("signatures", "statement_hidden_reason")
    op.drop_column("signatures", "statement_status")
    op.drop_column("signatures", "show_statement")
    op.drop_column("campaigns", "statements_auto_approve")
    op.drop_index(op.f("ix_statement_bands_collective_id"), table_name="statement_bands")
    op.drop_index("ix_statement_bands_lookup", table_name="statement_bands")
    op.drop_table("statement_bands")
    op.drop_index(op.f("ix_statement_groups_collective_id"), table_name="statement_groups")
    op.drop_index(op.f("ix_statement_groups_campaign_id"), table_name="statement_groups")
    op.drop_table("statement_groups")
