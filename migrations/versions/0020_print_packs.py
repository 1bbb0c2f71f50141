"""a postal delivery's print-ready PDF, made by a worker and stored with the delivery

Revision ID: 0020_print_packs
Revises: 0019_automatic_updates
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020_print_packs"
down_revision: str | None = "0019_automatic_updates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("print_pdf", sa.LargeBinary(), nullable=True))
    op.add_column("deliveries", sa.Column("print_pdf_sha256", sa.String(length=64), nullable=True))
    op.add_column(
        "deliveries",
        sa.Column("print_pdf_error", sa.Text(), server_default="", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("deliveries", "print_pdf_error")
    op.drop_column("deliveries", "print_pdf_sha256")
    op.drop_column("deliveries", "print_pdf")
