"""inbound mail: find a delivery from the Message-IDs a reply refers to

A reply by email normally reaches a delivery through its Reply-To address
(`chorus_delivery_by_reply_key`, 0016). Some mail systems drop the Reply-To (a reply
typed to the From address of a chaser forwarded to a colleague, or a provider that
rewrites recipients); the reply still names our message in In-Reply-To or References.
This fixed function lifts the tenant policy for one query and returns only the ids of
the delivery whose own Message-ID, or one of whose chasers' Message-IDs, is among those
given. Message-IDs are not secrets the way reply keys are (anyone the letter was
forwarded to knows one), so web/responses/inbound.py uses this only after the reply
key found nothing, and never to read anything but the owning collective's id.

Revision ID: 0018_inbound
Revises: 0017_department_views
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

from web.db import APP_ROLE

revision: str = "0018_inbound"
down_revision: str | None = "0017_department_views"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = "chorus_delivery_by_message_id(text[])"

MESSAGE_ID_FUNCTION = """
CREATE FUNCTION chorus_delivery_by_message_id(message_ids text[])
RETURNS TABLE (delivery_id bigint, collective_id bigint)
LANGUAGE sql STABLE
SET app.all_collectives = 'on'
SET search_path = public, pg_temp
AS $$
    SELECT found.delivery_id, found.collective_id FROM (
        SELECT d.id AS delivery_id, d.collective_id, 0 AS rank FROM deliveries d
        WHERE d.message_id = ANY (message_ids[1:200])
        UNION ALL
        SELECT c.delivery_id, c.collective_id, 1 AS rank FROM chasers c
        WHERE c.message_id = ANY (message_ids[1:200])
    ) AS found
    ORDER BY found.rank, found.delivery_id DESC
    LIMIT 1
$$
"""


def upgrade() -> None:
    op.execute(MESSAGE_ID_FUNCTION)
    op.execute(f"REVOKE ALL ON FUNCTION {FUNCTION} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {FUNCTION} TO {APP_ROLE}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}")
