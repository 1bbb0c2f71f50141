"""trending email domains and IP hashes per campaign

Revision ID: 0011_trending
Revises: 0010_retention
Create Date: 2026-11-25
"""

from collections.abc import Sequence

revision: str = "0011_trending"
down_revision: str | None = "0010_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
