"""retention: anonymise signers after a campaign concludes

Revision ID: 0010_retention
Revises: 0009_updates
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_retention"
down_revision: str | None = "0009_updates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("campaigns", sa.Column("concluded_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "campaigns", sa.Column("signers_anonymised_at", sa.DateTime(timezone=True), nullable=True)
    )
    # Retention counts from concluded_at, so a concluded campaign must have one. Any
    # campaign concluded before this migration starts its retention period now.
    op.execute(
        "UPDATE campaigns SET concluded_at = now() WHERE state = 'concluded' AND concluded_at IS NULL"
    )
    op.create_check_constraint(
        op.f("ck_campaigns_concluded_at"),
        "campaigns",
        "state <> 'concluded' OR concluded_at IS NOT NULL",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_campaigns_concluded_at"), "campaigns", type_="check")
    op.drop_column("campaigns", "signers_anonymised_at")
    op.drop_column("campaigns", "concluded_at")
