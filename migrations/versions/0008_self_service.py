"""signatory self-service: withdraw, erase, re-consent

Revision ID: 0008_self_service
Revises: 0007_assisted_paper
Create Date: 2026-11-25
"""

from collections.abc import Sequence

revision: str = "0008_self_service"
down_revision: str | None = "0007_assisted_paper"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
