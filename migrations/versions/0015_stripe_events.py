"""Stripe webhook events, stored once by id

Revision ID: 0015_stripe_events
Revises: 0014_billing
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015_stripe_events"
down_revision: str | None = "0014_billing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Not tenant-scoped (see web/billing/stripe_models.py): no row-level security. The
    # app role gets its privileges from the schema's default privileges (0001).
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), server_default="", nullable=False),
        sa.Column("billing_account_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["billing_account_id"],
            ["billing_accounts.id"],
            name=op.f("fk_stripe_events_billing_account_id_billing_accounts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_events")),
    )
    op.create_index(
        op.f("ix_stripe_events_billing_account_id"),
        "stripe_events",
        ["billing_account_id"],
        unique=False,
    )
    op.create_index(op.f("ix_stripe_events_type"), "stripe_events", ["type"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_stripe_events_type"), table_name="stripe_events")
    op.drop_index(op.f("ix_stripe_events_billing_account_id"), table_name="stripe_events")
    op.drop_table("stripe_events")
