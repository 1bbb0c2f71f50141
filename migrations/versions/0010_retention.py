"""retention: anonymise signers after a campaign concludes

Revision ID: 0010_retention
Revises: 0009_updates
Create Date: 2026-11-25
"""

from collections.abc import Sequence

revision: str = "0010_retention"
down_revision: str | None = "0009_updates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
