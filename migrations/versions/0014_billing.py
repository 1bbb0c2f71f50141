"""billing accounts, federations, free Supporter requests and plan limits

Revision ID: 0014_billing
Revises: 0013_letter_signatories
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from web.tenancy import disable_rls_sql, enable_rls_sql

TENANT_TABLES = ("collective_brandings", "supporter_requests")

revision: str = "0014_billing"
down_revision: str | None = "0013_letter_signatories"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "billing_accounts",
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("plan", sa.String(length=16), server_default="free", nullable=False),
        sa.Column("is_federation", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("owner_collective_id", sa.BigInteger(), nullable=True),
        sa.Column("interval", sa.String(length=8), server_default="", nullable=False),
        sa.Column("stripe_customer_id", sa.String(length=255), nullable=True),
        sa.Column("stripe_subscription_id", sa.String(length=255), nullable=True),
        sa.Column("subscription_status", sa.String(length=32), server_default="", nullable=False),
        sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("grace_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("complimentary_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_event_created", sa.BigInteger(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "interval IN ('', 'month', 'year')", name=op.f("ck_billing_accounts_interval")
        ),
        sa.CheckConstraint(
            "plan IN ('free', 'supporter', 'federation')", name=op.f("ck_billing_accounts_plan")
        ),
        sa.ForeignKeyConstraint(
            ["owner_collective_id"],
            ["collectives.id"],
            name=op.f("fk_billing_accounts_owner_collective_id_collectives"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_billing_accounts")),
        sa.UniqueConstraint(
            "owner_collective_id", name=op.f("uq_billing_accounts_owner_collective_id")
        ),
        sa.UniqueConstraint(
            "stripe_customer_id", name=op.f("uq_billing_accounts_stripe_customer_id")
        ),
        sa.UniqueConstraint(
            "stripe_subscription_id", name=op.f("uq_billing_accounts_stripe_subscription_id")
        ),
    )
    op.create_table(
        "collective_brandings",
        sa.Column("logo", sa.LargeBinary(), nullable=True),
        sa.Column("logo_type", sa.String(length=16), server_default="", nullable=False),
        sa.Column("logo_sha256", sa.String(length=64), server_default="", nullable=False),
        sa.Column("logo_width", sa.BigInteger(), nullable=True),
        sa.Column("logo_height", sa.BigInteger(), nullable=True),
        sa.Column("primary_colour", sa.String(length=7), server_default="", nullable=False),
        sa.Column("accent_colour", sa.String(length=7), server_default="", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("collective_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "accent_colour ~ '^(#[0-9a-f]{6})?$'",
            name=op.f("ck_collective_brandings_accent_colour"),
        ),
        sa.CheckConstraint(
            "logo_type IN ('', 'image/png', 'image/jpeg')",
            name=op.f("ck_collective_brandings_logo_type"),
        ),
        sa.CheckConstraint(
            "primary_colour ~ '^(#[0-9a-f]{6})?$'",
            name=op.f("ck_collective_brandings_primary_colour"),
        ),
        sa.ForeignKeyConstraint(
            ["collective_id"],
            ["collectives.id"],
            name=op.f("fk_collective_brandings_collective_id_collectives"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collective_brandings")),
        sa.UniqueConstraint("collective_id", name=op.f("uq_collective_brandings_collective_id")),
    )
    op.create_index(
        op.f("ix_collective_brandings_collective_id"),
        "collective_brandings",
        ["collective_id"],
        unique=False,
    )
    op.create_table(
        "supporter_requests",
        sa.Column("requested_by_id", sa.BigInteger(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_by_id", sa.BigInteger(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_note", sa.Text(), server_default="", nullable=False),
        sa.Column("complimentary_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("collective_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'declined')",
            name=op.f("ck_supporter_requests_status"),
        ),
        sa.CheckConstraint(
            "char_length(reason) <= 1000", name=op.f("ck_supporter_requests_reason_length")
        ),
        sa.ForeignKeyConstraint(
            ["collective_id"],
            ["collectives.id"],
            name=op.f("fk_supporter_requests_collective_id_collectives"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by_id"],
            ["users.id"],
            name=op.f("fk_supporter_requests_decided_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"],
            ["users.id"],
            name=op.f("fk_supporter_requests_requested_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supporter_requests")),
    )
    op.create_index(
        op.f("ix_supporter_requests_collective_id"),
        "supporter_requests",
        ["collective_id"],
        unique=False,
    )
    op.create_index(
        "uq_supporter_requests_pending",
        "supporter_requests",
        ["collective_id"],
        unique=True,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "plan_decisions",
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("actor_email", sa.String(length=254), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("billing_account_id", sa.BigInteger(), nullable=True),
        sa.Column("collective_id", sa.BigInteger(), nullable=True),
        sa.Column("supporter_request_id", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["users.id"],
            name=op.f("fk_plan_decisions_actor_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["billing_account_id"],
            ["billing_accounts.id"],
            name=op.f("fk_plan_decisions_billing_account_id_billing_accounts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["collective_id"],
            ["collectives.id"],
            name=op.f("fk_plan_decisions_collective_id_collectives"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["supporter_request_id"],
            ["supporter_requests.id"],
            name=op.f("fk_plan_decisions_supporter_request_id_supporter_requests"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_decisions")),
    )
    op.create_index(
        op.f("ix_plan_decisions_actor_id"), "plan_decisions", ["actor_id"], unique=False
    )
    op.create_index(
        op.f("ix_plan_decisions_billing_account_id"),
        "plan_decisions",
        ["billing_account_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_plan_decisions_collective_id"), "plan_decisions", ["collective_id"], unique=False
    )
    op.add_column("collectives", sa.Column("billing_account_id", sa.BigInteger(), nullable=True))
    op.create_index(
        op.f("ix_collectives_billing_account_id"),
        "collectives",
        ["billing_account_id"],
        unique=False,
    )
    op.create_foreign_key(
        op.f("fk_collectives_billing_account_id_billing_accounts"),
        "collectives",
        "billing_accounts",
        ["billing_account_id"],
        ["id"],
        ondelete="SET NULL",
    )
    # Brandings and free Supporter requests are tenant data. billing_accounts and
    # plan_decisions are not (a federation's account spans collectives; the log is the
    # operator's): the services and views reach them only through the collective.
    for table in TENANT_TABLES:
        for statement in enable_rls_sql(table):
            op.execute(statement)


def downgrade() -> None:
    for table in TENANT_TABLES:
        for statement in disable_rls_sql(table):
            op.execute(statement)
    op.drop_constraint(
        op.f("fk_collectives_billing_account_id_billing_accounts"),
        "collectives",
        type_="foreignkey",
    )
    op.drop_index(op.f("ix_collectives_billing_account_id"), table_name="collectives")
    op.drop_column("collectives", "billing_account_id")
    op.drop_index(op.f("ix_plan_decisions_collective_id"), table_name="plan_decisions")
    op.drop_index(op.f("ix_plan_decisions_billing_account_id"), table_name="plan_decisions")
    op.drop_index(op.f("ix_plan_decisions_actor_id"), table_name="plan_decisions")
    op.drop_table("plan_decisions")
    op.drop_index(
        "uq_supporter_requests_pending",
        table_name="supporter_requests",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_index(op.f("ix_supporter_requests_collective_id"), table_name="supporter_requests")
    op.drop_table("supporter_requests")
    op.drop_index(op.f("ix_collective_brandings_collective_id"), table_name="collective_brandings")
    op.drop_table("collective_brandings")
    op.drop_table("billing_accounts")
