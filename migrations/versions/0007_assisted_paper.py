"""assisted and paper signatures, CSV imports

Revision ID: 0007_assisted_paper
Revises: 0006_statements
Create Date: 2026-11-25
"""

from collections.abc import Sequence

revision: str = "0007_assisted_paper"
down_revision: str | None = "0006_statements"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
