"""letter versions are immutable: the app role may insert and read them, never update

Revision ID: 0003_versions_immutable
Revises: f312ff4af1e1
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003_versions_immutable"
down_revision: str | None = "f312ff4af1e1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APP_ROLE = "chorus_app"


def upgrade() -> None:
    op.execute(f"REVOKE UPDATE ON letter_versions FROM {APP_ROLE}")


def downgrade() -> None:
    op.execute(f"GRANT UPDATE ON letter_versions TO {APP_ROLE}")
