"""updates to signers and one-click unsubscribe

`campaign_updates` (under the tenant policy) records each update and its sending
progress; `signatures.unsubscribed_at` records when a signer stopped updates; a partial
index on signatures (campaign_id, id) for the opted-in verified signers lets the send
page through them by id.

Revision ID: 0009_updates
Revises: 0008_self_service
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from web.tenancy import disable_rls_sql, enable_rls_sql

revision: str = "0009_updates"
down_revision: str | None = "0008_self_service"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "campaign_updates",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("author_id", sa.BigInteger(), nullable=True),
        sa.Column("subject", sa.String(length=150), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("recipient_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("sent_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_signature_id", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("collective_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "recipient_count >= 0 AND sent_count >= 0", name=op.f("ck_campaign_updates_counts")
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'sending', 'sent')", name=op.f("ck_campaign_updates_status")
        ),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_campaign_updates_author_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_updates_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["collective_id"],
            ["collectives.id"],
            name=op.f("fk_campaign_updates_collective_id_collectives"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaign_updates")),
    )
    op.create_index(
        "ix_campaign_updates_campaign_id_created_at",
        "campaign_updates",
        ["campaign_id", "created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_campaign_updates_collective_id"),
        "campaign_updates",
        ["collective_id"],
        unique=False,
    )
    for statement in enable_rls_sql("campaign_updates"):
        op.execute(statement)

    op.add_column(
        "signatures", sa.Column("unsubscribed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_signatures_update_recipients",
        "signatures",
        ["campaign_id", "id"],
        unique=False,
        postgresql_where=sa.text("wants_updates AND status = 'verified'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_signatures_update_recipients",
        table_name="signatures",
        postgresql_where=sa.text("wants_updates AND status = 'verified'"),
    )
    op.drop_column("signatures", "unsubscribed_at")
    for statement in disable_rls_sql("campaign_updates"):
        op.execute(statement)
    op.drop_index(op.f("ix_campaign_updates_collective_id"), table_name="campaign_updates")
    op.drop_index("ix_campaign_updates_campaign_id_created_at", table_name="campaign_updates")
    op.drop_table("campaign_updates")
