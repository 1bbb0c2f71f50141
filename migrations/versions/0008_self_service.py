"""signatory self-service: withdraw, erase, re-consent

The private "your signature" link's secret, the re-consent email's version and secret,
the status "erased" (an anonymous tombstone), and a partial index the re-consent job
pages through. The signatures table already carries the tenant policy (0004).

Revision ID: 0008_self_service
Revises: 0007_assisted_paper
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_self_service"
down_revision: str | None = "0007_assisted_paper"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES_BEFORE = ("pending", "verified", "quarantined", "rejected", "withdrawn")
STATUSES_AFTER = (*STATUSES_BEFORE, "erased")


def _status_check(statuses: tuple[str, ...]) -> None:
    op.drop_constraint(op.f("ck_signatures_status"), "signatures", type_="check")
    listed = ", ".join(f"'{s}'" for s in statuses)
    op.create_check_constraint(op.f("ck_signatures_status"), "signatures", f"status IN ({listed})")


def upgrade() -> None:
    op.add_column("signatures", sa.Column("manage_secret_hash", sa.LargeBinary(length=32)))
    op.add_column("signatures", sa.Column("reconsent_version_id", sa.BigInteger()))
    op.add_column("signatures", sa.Column("reconsent_secret_hash", sa.LargeBinary(length=32)))
    op.create_foreign_key(
        op.f("fk_signatures_reconsent_version_id_letter_versions"),
        "signatures",
        "letter_versions",
        ["reconsent_version_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(
        "ix_signatures_awaiting_reconsent",
        "signatures",
        ["campaign_id", "id"],
        unique=False,
        postgresql_where=sa.text("needs_reconsent"),
    )
    _status_check(STATUSES_AFTER)


def downgrade() -> None:
    # Tombstones hold no personal data and are counted nowhere: the older schema knows
    # them only as withdrawn signatures. The table is under forced row-level security,
    # so this data change must be allowed across collectives.
    op.execute("select set_config('app.all_collectives', 'on', true)")
    op.execute("UPDATE signatures SET status = 'withdrawn' WHERE status = 'erased'")
    _status_check(STATUSES_BEFORE)
    op.drop_index(
        "ix_signatures_awaiting_reconsent",
        table_name="signatures",
        postgresql_where=sa.text("needs_reconsent"),
    )
    op.drop_constraint(
        op.f("fk_signatures_reconsent_version_id_letter_versions"),
        "signatures",
        type_="foreignkey",
    )
    op.drop_column("signatures", "reconsent_secret_hash")
    op.drop_column("signatures", "reconsent_version_id")
    op.drop_column("signatures", "manage_secret_hash")
