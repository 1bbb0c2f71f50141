"""updates to signers and one-click unsubscribe

Revision ID: 0009_updates
Revises: 0008_self_service
Create Date: 2026-11-25
"""

from collections.abc import Sequence

revision: str = "0009_updates"
down_revision: str | None = "0008_self_service"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
