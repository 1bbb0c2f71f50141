"""updates written by Chorus when a delivery reaches a milestone are marked as such

Revision ID: 0019_automatic_updates
Revises: 0018_inbound
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_automatic_updates"
down_revision: str | None = "0018_inbound"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "campaign_updates",
        sa.Column("is_automatic", sa.Boolean(), server_default="false", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("campaign_updates", "is_automatic")
