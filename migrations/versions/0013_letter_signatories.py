"""lead signatories and signing organisations on campaigns

Revision ID: 0013_letter_signatories
Revises: 0012_documents
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_letter_signatories"
down_revision: str | None = "0012_documents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Two columns on an existing tenant table: its row-level security already applies.
    op.add_column(
        "campaigns",
        sa.Column("lead_signatories", sa.Text(), server_default="", nullable=False),
    )
    op.add_column(
        "campaigns",
        sa.Column("signing_organisations", sa.Text(), server_default="", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("campaigns", "signing_organisations")
    op.drop_column("campaigns", "lead_signatories")
