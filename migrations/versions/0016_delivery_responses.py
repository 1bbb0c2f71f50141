"""delivery and responses: deliveries, their timeline and chasers; responses, attachments,
raw inbound mail, meetings, ask assessments and department accounts

Every tenant table carries the tenant policy. `inbound_messages` and
`department_accounts` are not tenant tables (see web/responses/models.py).

Two public doors need to find a delivery whatever collective sent it, without opening
the tenant policy to the request: the department's response link and a reply to the
delivery's Reply-To address. Each is a fixed SQL function that lifts the policy for one
query and returns only the owning collective's id (and the delivery's id), and only when
the secret's SHA-256 matches; the caller then works inside that collective as usual.

Revision ID: 0016_delivery_responses
Revises: 0015_stripe_events
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from web.db import APP_ROLE
from web.tenancy import disable_rls_sql, enable_rls_sql

revision: str = "0016_delivery_responses"
down_revision: str | None = "0015_stripe_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = (
    "deliveries",
    "delivery_events",
    "chasers",
    "responses",
    "response_attachments",
    "meetings",
    "ask_assessments",
)

RESPONSE_LINK_FUNCTION = """
CREATE FUNCTION chorus_delivery_by_response_token(delivery bigint, token_hash bytea)
RETURNS TABLE (delivery_id bigint, collective_id bigint)
LANGUAGE sql STABLE
SET app.all_collectives = 'on'
SET search_path = public, pg_temp
AS $$
    SELECT d.id, d.collective_id FROM deliveries d
    WHERE d.id = delivery AND d.response_token_hash = token_hash
$$
"""

REPLY_KEY_FUNCTION = """
CREATE FUNCTION chorus_delivery_by_reply_key(key_hash bytea)
RETURNS TABLE (delivery_id bigint, collective_id bigint)
LANGUAGE sql STABLE
SET app.all_collectives = 'on'
SET search_path = public, pg_temp
AS $$
    SELECT d.id, d.collective_id FROM deliveries d WHERE d.reply_key_hash = key_hash
$$
"""
FUNCTIONS = (
    "chorus_delivery_by_response_token(bigint, bytea)",
    "chorus_delivery_by_reply_key(bytea)",
)


def upgrade() -> None:

    op.create_table(
        "department_accounts",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("recipient_id", sa.BigInteger(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["recipients.id"],
            name=op.f("fk_department_accounts_recipient_id_recipients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_department_accounts_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_department_accounts")),
        sa.UniqueConstraint(
            "user_id", "recipient_id", name=op.f("uq_department_accounts_user_id_recipient_id")
        ),
    )
    op.create_index(
        op.f("ix_department_accounts_recipient_id"),
        "department_accounts",
        ["recipient_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_department_accounts_user_id"), "department_accounts", ["user_id"], unique=False
    )
    op.create_table(
        "deliveries",
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("recipient_id", sa.BigInteger(), nullable=True),
        sa.Column("recipient_name", sa.String(length=200), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("idempotency_key", sa.String(length=64), nullable=False),
        sa.Column("to_email", sa.String(length=254), server_default="", nullable=False),
        sa.Column("escalation_email", sa.String(length=254), server_default="", nullable=False),
        sa.Column("postal_address", sa.Text(), server_default="", nullable=False),
        sa.Column("document_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("reply_nonce", sa.LargeBinary(length=16), nullable=False),
        sa.Column("reply_key_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("link_nonce", sa.LargeBinary(length=16), nullable=False),
        sa.Column("response_token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("response_token_expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("response_token_revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scheduled_for", sa.Date(), nullable=True),
        sa.Column("send_at_target", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), server_default="", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_on", sa.Date(), nullable=True),
        sa.Column("tracking_reference", sa.String(length=100), server_default="", nullable=False),
        sa.Column("ack_target_days", sa.Integer(), server_default="5", nullable=False),
        sa.Column("reply_target_days", sa.Integer(), server_default="20", nullable=False),
        sa.Column(
            "nation", sa.String(length=32), server_default="england-and-wales", nullable=False
        ),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("chasers_paused", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("chasers_sent", sa.Integer(), server_default="0", nullable=False),
        sa.Column("response_summary", sa.Text(), server_default="", nullable=False),
        sa.Column("response_published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.BigInteger(), nullable=True),
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
        sa.CheckConstraint("method IN ('email', 'post')", name=op.f("ck_deliveries_method")),
        sa.CheckConstraint(
            "status <> 'sent' OR delivered_on IS NOT NULL", name=op.f("ck_deliveries_delivered_on")
        ),
        sa.CheckConstraint(
            "status <> 'sent' OR sent_at IS NOT NULL", name=op.f("ck_deliveries_sent_at")
        ),
        sa.CheckConstraint(
            "status IN ('scheduled', 'pending', 'sent', 'failed', 'cancelled')",
            name=op.f("ck_deliveries_status"),
        ),
        sa.CheckConstraint(
            "ack_target_days BETWEEN 1 AND 365", name=op.f("ck_deliveries_ack_target")
        ),
        sa.CheckConstraint("chasers_sent BETWEEN 0 AND 3", name=op.f("ck_deliveries_chasers_sent")),
        sa.CheckConstraint(
            "reply_target_days BETWEEN 1 AND 365", name=op.f("ck_deliveries_reply_target")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_deliveries_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["collective_id"],
            ["collectives.id"],
            name=op.f("fk_deliveries_collective_id_collectives"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_deliveries_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_deliveries_document_id_documents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["recipient_id"],
            ["recipients.id"],
            name=op.f("fk_deliveries_recipient_id_recipients"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_deliveries_idempotency_key")),
        sa.UniqueConstraint("message_id", name=op.f("uq_deliveries_message_id")),
        sa.UniqueConstraint("reply_key_hash", name=op.f("uq_deliveries_reply_key_hash")),
    )
    op.create_index(op.f("ix_deliveries_campaign_id"), "deliveries", ["campaign_id"], unique=False)
    op.create_index(
        op.f("ix_deliveries_collective_id"), "deliveries", ["collective_id"], unique=False
    )
    op.create_index(
        op.f("ix_deliveries_recipient_id"), "deliveries", ["recipient_id"], unique=False
    )
    op.create_index(
        "ix_deliveries_sent",
        "deliveries",
        ["delivered_on"],
        unique=False,
        postgresql_where=sa.text("status = 'sent'"),
    )
    op.create_table(
        "ask_assessments",
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("ask_index", sa.Integer(), nullable=False),
        sa.Column("ask_text", sa.Text(), nullable=False),
        sa.Column("assessment", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("collective_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "assessment IN ('answered', 'partly', 'not_answered')",
            name=op.f("ck_ask_assessments_assessment"),
        ),
        sa.CheckConstraint("ask_index >= 0", name=op.f("ck_ask_assessments_ask_index")),
        sa.ForeignKeyConstraint(
            ["collective_id"],
            ["collectives.id"],
            name=op.f("fk_ask_assessments_collective_id_collectives"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_ask_assessments_delivery_id_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ask_assessments")),
        sa.UniqueConstraint(
            "delivery_id", "ask_index", name=op.f("uq_ask_assessments_delivery_id_ask_index")
        ),
    )
    op.create_index(
        op.f("ix_ask_assessments_collective_id"), "ask_assessments", ["collective_id"], unique=False
    )
    op.create_index(
        op.f("ix_ask_assessments_delivery_id"), "ask_assessments", ["delivery_id"], unique=False
    )
    op.create_table(
        "chasers",
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("to_email", sa.String(length=254), nullable=False),
        sa.Column("is_escalation", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("collective_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("number BETWEEN 1 AND 3", name=op.f("ck_chasers_number")),
        sa.ForeignKeyConstraint(
            ["collective_id"],
            ["collectives.id"],
            name=op.f("fk_chasers_collective_id_collectives"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_chasers_delivery_id_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chasers")),
        sa.UniqueConstraint("delivery_id", "number", name=op.f("uq_chasers_delivery_id_number")),
    )
    op.create_index(op.f("ix_chasers_collective_id"), "chasers", ["collective_id"], unique=False)
    op.create_index(op.f("ix_chasers_delivery_id"), "chasers", ["delivery_id"], unique=False)
    op.create_table(
        "delivery_events",
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("summary", sa.Text(), server_default="", nullable=False),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("actor_label", sa.String(length=200), server_default="", nullable=False),
        sa.Column(
            "detail", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
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
            "kind IN ('scheduled', 'send_deferred', 'send_failed', 'delivered', 'posted', 'link_revoked', 'link_reissued', 'acknowledged', 'reply_received', 'reclassified', 'chaser_sent', 'chasers_paused', 'chasers_resumed', 'meeting_accepted', 'meeting_alternatives', 'meeting_declined', 'meeting_outcome', 'assessed', 'response_published')",
            name=op.f("ck_delivery_events_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["users.id"],
            name=op.f("fk_delivery_events_actor_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["collective_id"],
            ["collectives.id"],
            name=op.f("fk_delivery_events_collective_id_collectives"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_delivery_events_delivery_id_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_events")),
    )
    op.create_index(
        op.f("ix_delivery_events_collective_id"), "delivery_events", ["collective_id"], unique=False
    )
    op.create_index(
        op.f("ix_delivery_events_delivery_id"), "delivery_events", ["delivery_id"], unique=False
    )
    op.create_table(
        "inbound_messages",
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("envelope_from", sa.String(length=320), server_default="", nullable=False),
        sa.Column("envelope_to", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("from_address", sa.String(length=320), server_default="", nullable=False),
        sa.Column("subject", sa.String(length=300), server_default="", nullable=False),
        sa.Column("message_id_header", sa.String(length=998), server_default="", nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("raw_sha256", sa.String(length=64), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column(
            "defects", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False
        ),
        sa.Column("collective_id", sa.BigInteger(), nullable=True),
        sa.Column("delivery_id", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("source IN ('smtp', 'http')", name=op.f("ck_inbound_messages_source")),
        sa.CheckConstraint(
            "status IN ('attached', 'held', 'malformed', 'dismissed')",
            name=op.f("ck_inbound_messages_status"),
        ),
        sa.ForeignKeyConstraint(
            ["collective_id"],
            ["collectives.id"],
            name=op.f("fk_inbound_messages_collective_id_collectives"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_inbound_messages_delivery_id_deliveries"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
        sa.UniqueConstraint("raw_sha256", name=op.f("uq_inbound_messages_raw_sha256")),
    )
    op.create_index(
        op.f("ix_inbound_messages_collective_id"),
        "inbound_messages",
        ["collective_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_inbound_messages_delivery_id"), "inbound_messages", ["delivery_id"], unique=False
    )
    op.create_index(
        "ix_inbound_messages_held",
        "inbound_messages",
        ["id"],
        unique=False,
        postgresql_where=sa.text("status <> 'attached'"),
    )
    op.create_table(
        "meetings",
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("location", sa.String(length=300), server_default="", nullable=False),
        sa.Column(
            "alternatives",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("official_name", sa.String(length=200), server_default="", nullable=False),
        sa.Column("official_email", sa.String(length=254), server_default="", nullable=False),
        sa.Column("ics_uid", sa.String(length=255), nullable=False),
        sa.Column("ics_sequence", sa.Integer(), server_default="0", nullable=False),
        sa.Column("invitation_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminder_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome_notes", sa.Text(), server_default="", nullable=False),
        sa.Column("outcome_published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("collective_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status <> 'accepted' OR starts_at IS NOT NULL", name=op.f("ck_meetings_accepted_slot")
        ),
        sa.CheckConstraint(
            "status IN ('accepted', 'alternatives', 'declined', 'held')",
            name=op.f("ck_meetings_status"),
        ),
        sa.CheckConstraint(
            "ends_at IS NULL OR ends_at > starts_at", name=op.f("ck_meetings_slot_order")
        ),
        sa.ForeignKeyConstraint(
            ["collective_id"],
            ["collectives.id"],
            name=op.f("fk_meetings_collective_id_collectives"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_meetings_delivery_id_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meetings")),
        sa.UniqueConstraint("delivery_id", name=op.f("uq_meetings_delivery_id")),
        sa.UniqueConstraint("ics_uid", name=op.f("uq_meetings_ics_uid")),
    )
    op.create_index(op.f("ix_meetings_collective_id"), "meetings", ["collective_id"], unique=False)
    op.create_table(
        "responses",
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("classified_by", sa.String(length=10), server_default="auto", nullable=False),
        sa.Column("responder_name", sa.String(length=200), server_default="", nullable=False),
        sa.Column("responder_role", sa.String(length=200), server_default="", nullable=False),
        sa.Column("responder_email", sa.String(length=254), server_default="", nullable=False),
        sa.Column("subject", sa.String(length=300), server_default="", nullable=False),
        sa.Column("body_text", sa.Text(), server_default="", nullable=False),
        sa.Column("inbound_message_id", sa.BigInteger(), nullable=True),
        sa.Column("department_account_id", sa.BigInteger(), nullable=True),
        sa.Column("collective_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "channel IN ('page', 'inbox', 'email')", name=op.f("ck_responses_channel")
        ),
        sa.CheckConstraint(
            "classified_by IN ('auto', 'responder', 'organiser')",
            name=op.f("ck_responses_classified"),
        ),
        sa.CheckConstraint(
            "kind IN ('acknowledgement', 'holding', 'substantive', 'bounce')",
            name=op.f("ck_responses_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["collective_id"],
            ["collectives.id"],
            name=op.f("fk_responses_collective_id_collectives"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_responses_delivery_id_deliveries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["department_account_id"],
            ["department_accounts.id"],
            name=op.f("fk_responses_department_account_id_department_accounts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["inbound_message_id"],
            ["inbound_messages.id"],
            name=op.f("fk_responses_inbound_message_id_inbound_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_responses")),
        sa.UniqueConstraint("inbound_message_id", name=op.f("uq_responses_inbound_message_id")),
    )
    op.create_index(
        op.f("ix_responses_collective_id"), "responses", ["collective_id"], unique=False
    )
    op.create_index(op.f("ix_responses_delivery_id"), "responses", ["delivery_id"], unique=False)
    op.create_table(
        "response_attachments",
        sa.Column("response_id", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("collective_id", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "sha256 ~ '^[0-9a-f]{64}$'", name=op.f("ck_response_attachments_sha256")
        ),
        sa.CheckConstraint(
            "size = octet_length(data) AND size <= 20971520",
            name=op.f("ck_response_attachments_size"),
        ),
        sa.ForeignKeyConstraint(
            ["collective_id"],
            ["collectives.id"],
            name=op.f("fk_response_attachments_collective_id_collectives"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["response_id"],
            ["responses.id"],
            name=op.f("fk_response_attachments_response_id_responses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_response_attachments")),
    )
    op.create_index(
        op.f("ix_response_attachments_collective_id"),
        "response_attachments",
        ["collective_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_response_attachments_response_id"),
        "response_attachments",
        ["response_id"],
        unique=False,
    )
    for table in TENANT_TABLES:
        for statement in enable_rls_sql(table):
            op.execute(statement)
    op.execute(RESPONSE_LINK_FUNCTION)
    op.execute(REPLY_KEY_FUNCTION)
    for function in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {function} TO {APP_ROLE}")


def downgrade() -> None:
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    for table in TENANT_TABLES:
        for statement in disable_rls_sql(table):
            op.execute(statement)

    op.drop_index(op.f("ix_response_attachments_response_id"), table_name="response_attachments")
    op.drop_index(op.f("ix_response_attachments_collective_id"), table_name="response_attachments")
    op.drop_table("response_attachments")
    op.drop_index(op.f("ix_responses_delivery_id"), table_name="responses")
    op.drop_index(op.f("ix_responses_collective_id"), table_name="responses")
    op.drop_table("responses")
    op.drop_index(op.f("ix_meetings_collective_id"), table_name="meetings")
    op.drop_table("meetings")
    op.drop_index(
        "ix_inbound_messages_held",
        table_name="inbound_messages",
        postgresql_where=sa.text("status <> 'attached'"),
    )
    op.drop_index(op.f("ix_inbound_messages_delivery_id"), table_name="inbound_messages")
    op.drop_index(op.f("ix_inbound_messages_collective_id"), table_name="inbound_messages")
    op.drop_table("inbound_messages")
    op.drop_index(op.f("ix_delivery_events_delivery_id"), table_name="delivery_events")
    op.drop_index(op.f("ix_delivery_events_collective_id"), table_name="delivery_events")
    op.drop_table("delivery_events")
    op.drop_index(op.f("ix_chasers_delivery_id"), table_name="chasers")
    op.drop_index(op.f("ix_chasers_collective_id"), table_name="chasers")
    op.drop_table("chasers")
    op.drop_index(op.f("ix_ask_assessments_delivery_id"), table_name="ask_assessments")
    op.drop_index(op.f("ix_ask_assessments_collective_id"), table_name="ask_assessments")
    op.drop_table("ask_assessments")
    op.drop_index(
        "ix_deliveries_sent", table_name="deliveries", postgresql_where=sa.text("status = 'sent'")
    )
    op.drop_index(op.f("ix_deliveries_recipient_id"), table_name="deliveries")
    op.drop_index(op.f("ix_deliveries_collective_id"), table_name="deliveries")
    op.drop_index(op.f("ix_deliveries_campaign_id"), table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_index(op.f("ix_department_accounts_user_id"), table_name="department_accounts")
    op.drop_index(op.f("ix_department_accounts_recipient_id"), table_name="department_accounts")
    op.drop_table("department_accounts")
