"""statements in the signers' own words: moderation and near-duplicate groups

Revision ID: 0006_statements
Revises: 0005_sig_campaign_status
Create Date: 2026-11-25
"""

from collections.abc import Sequence

revision: str = "0006_statements"
down_revision: str | None = "0005_sig_campaign_status"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
