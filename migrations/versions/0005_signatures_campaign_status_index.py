"""index signatures on (campaign_id, status) for counts, reconciliation and moderation

Revision ID: 0005_sig_campaign_status
Revises: 2f487388b47e
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005_sig_campaign_status"
down_revision: str | None = "2f487388b47e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_signatures_campaign_id_status", "signatures", ["campaign_id", "status"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_signatures_campaign_id_status", table_name="signatures")
