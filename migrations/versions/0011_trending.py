"""trending email domains and IP hashes per campaign; the email drain's retry time

Flags raised by the recurring trending job, under the tenant policy, and an index on
signatures (campaign_id, created_at) for the job's recent-window queries. The outbox gets
`available_at` (when a temporarily refused email may be tried again) and a partial index
for the email drain's claim.

Revision ID: 0011_trending
Revises: 0010_retention
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from web.tenancy import disable_rls_sql, enable_rls_sql

revision: str = "0011_trending"
down_revision: str | None = "0010_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signature_flags",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=253), nullable=False),
        sa.Column("recent", sa.Integer(), nullable=False),
        sa.Column("baseline", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("collective_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('email_domain', 'ip_hash')", name=op.f("ck_signature_flags_kind")
        ),
        sa.CheckConstraint(
            "status IN ('open', 'dismissed')", name=op.f("ck_signature_flags_status")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_signature_flags_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["collective_id"],
            ["collectives.id"],
            name=op.f("fk_signature_flags_collective_id_collectives"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signature_flags")),
        sa.UniqueConstraint(
            "campaign_id", "kind", "value", name=op.f("uq_signature_flags_campaign_id_kind_value")
        ),
    )
    op.create_index(
        op.f("ix_signature_flags_campaign_id"), "signature_flags", ["campaign_id"], unique=False
    )
    op.create_index(
        op.f("ix_signature_flags_collective_id"), "signature_flags", ["collective_id"], unique=False
    )
    op.create_index(
        "ix_signatures_campaign_id_created_at",
        "signatures",
        ["campaign_id", "created_at"],
        unique=False,
    )
    for statement in enable_rls_sql("signature_flags"):
        op.execute(statement)
    op.add_column(
        "outbox_messages", sa.Column("available_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_outbox_messages_pending_email",
        "outbox_messages",
        ["id"],
        unique=False,
        postgresql_where=sa.text("kind = 'email' AND done_at IS NULL AND failed_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_outbox_messages_pending_email",
        table_name="outbox_messages",
        postgresql_where=sa.text("kind = 'email' AND done_at IS NULL AND failed_at IS NULL"),
    )
    op.drop_column("outbox_messages", "available_at")
    for statement in disable_rls_sql("signature_flags"):
        op.execute(statement)
    op.drop_index("ix_signatures_campaign_id_created_at", table_name="signatures")
    op.drop_index(op.f("ix_signature_flags_collective_id"), table_name="signature_flags")
    op.drop_index(op.f("ix_signature_flags_campaign_id"), table_name="signature_flags")
    op.drop_table("signature_flags")
