"""department inbox and public accountability: four fixed SQL functions

The department inbox (issue #6 §9) is the only view in Chorus that spans collectives,
and the public department pages (§10) publish figures about every collective's letters.
Neither opens the tenant policy to the request. Each reads through a fixed function
that lifts the policy for one query and returns only the columns its page shows:

- `chorus_department_inbox(recipient, max_rows, skip_rows)`: one page of the sent
  letters addressed to a directory department, newest first, with the collective's
  and campaign's names, the clock's inputs and the status (never a collective id);
- `chorus_department_letter(recipient, delivery)`: the owning collective's id, only
  when that sent delivery is addressed to that department (the caller then enters the
  collective to read the letter as usual);
- `chorus_department_record(recipient)`: the timing of every sent letter to a
  department (for the medians and the on-time share), plus the campaign's title,
  collective and addresses only when the campaign is published (NULL otherwise);
- `chorus_departments_with_letters()`: directory departments that have received a
  letter, with how many.

Only directory entries (recipients.collective_id IS NULL) are answered for: a
collective's own recipients are nobody else's business. Whether the person asking may
read a department's inbox is the application's decision (a verified department
account, web/responses/department.py).

Revision ID: 0017_department_views
Revises: 0016_delivery_responses
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

from web.db import APP_ROLE

revision: str = "0017_department_views"
down_revision: str | None = "0016_delivery_responses"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INBOX_FUNCTION = """
CREATE FUNCTION chorus_department_inbox(recipient bigint, max_rows integer, skip_rows integer)
RETURNS TABLE (
    delivery_id bigint,
    collective_name text,
    campaign_title text,
    campaign_kind text,
    method text,
    delivered_on date,
    nation text,
    ack_target_days integer,
    reply_target_days integer,
    acknowledged_at timestamptz,
    replied_at timestamptz,
    meeting_status text,
    total bigint
)
LANGUAGE sql STABLE
SET app.all_collectives = 'on'
SET search_path = public, pg_temp
AS $$
    SELECT d.id, co.name::text, c.title::text, c.kind::text, d.method::text,
           d.delivered_on, d.nation::text, d.ack_target_days, d.reply_target_days,
           d.acknowledged_at, d.replied_at, m.status::text, count(*) OVER ()
    FROM deliveries d
    JOIN recipients r ON r.id = d.recipient_id AND r.collective_id IS NULL
    JOIN campaigns c ON c.id = d.campaign_id
    JOIN collectives co ON co.id = d.collective_id
    LEFT JOIN meetings m ON m.delivery_id = d.id
    WHERE d.recipient_id = recipient AND d.status = 'sent'
    ORDER BY d.delivered_on DESC, d.sent_at DESC, d.id DESC
    LIMIT greatest(least(max_rows, 200), 0) OFFSET greatest(skip_rows, 0)
$$
"""

LETTER_FUNCTION = """
CREATE FUNCTION chorus_department_letter(recipient bigint, delivery bigint)
RETURNS TABLE (collective_id bigint)
LANGUAGE sql STABLE
SET app.all_collectives = 'on'
SET search_path = public, pg_temp
AS $$
    SELECT d.collective_id FROM deliveries d
    JOIN recipients r ON r.id = d.recipient_id AND r.collective_id IS NULL
    WHERE d.id = delivery AND d.recipient_id = recipient AND d.status = 'sent'
$$
"""

RECORD_FUNCTION = """
CREATE FUNCTION chorus_department_record(recipient bigint)
RETURNS TABLE (
    delivered_on date,
    nation text,
    ack_target_days integer,
    reply_target_days integer,
    acknowledged_at timestamptz,
    replied_at timestamptz,
    meeting_agreed boolean,
    campaign_title text,
    campaign_slug text,
    collective_name text,
    collective_slug text
)
LANGUAGE sql STABLE
SET app.all_collectives = 'on'
SET search_path = public, pg_temp
AS $$
    SELECT d.delivered_on, d.nation::text, d.ack_target_days, d.reply_target_days,
           d.acknowledged_at, d.replied_at,
           EXISTS (
               SELECT 1 FROM meetings m
               WHERE m.delivery_id = d.id AND m.status IN ('accepted', 'held')
           ),
           CASE WHEN c.published_at IS NOT NULL THEN c.title::text END,
           CASE WHEN c.published_at IS NOT NULL THEN c.slug::text END,
           CASE WHEN c.published_at IS NOT NULL THEN co.name::text END,
           CASE WHEN c.published_at IS NOT NULL THEN co.slug::text END
    FROM deliveries d
    JOIN recipients r ON r.id = d.recipient_id AND r.collective_id IS NULL
    JOIN campaigns c ON c.id = d.campaign_id
    JOIN collectives co ON co.id = d.collective_id
    WHERE d.recipient_id = recipient AND d.status = 'sent'
    ORDER BY d.delivered_on DESC, d.id DESC
$$
"""

INDEX_FUNCTION = """
CREATE FUNCTION chorus_departments_with_letters()
RETURNS TABLE (recipient_id bigint, letters bigint)
LANGUAGE sql STABLE
SET app.all_collectives = 'on'
SET search_path = public, pg_temp
AS $$
    SELECT d.recipient_id, count(*) FROM deliveries d
    JOIN recipients r ON r.id = d.recipient_id AND r.collective_id IS NULL
    WHERE d.status = 'sent'
    GROUP BY d.recipient_id
$$
"""

FUNCTIONS = (
    "chorus_department_inbox(bigint, integer, integer)",
    "chorus_department_letter(bigint, bigint)",
    "chorus_department_record(bigint)",
    "chorus_departments_with_letters()",
)


def upgrade() -> None:
    for statement in (INBOX_FUNCTION, LETTER_FUNCTION, RECORD_FUNCTION, INDEX_FUNCTION):
        op.execute(statement)
    for function in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {function} TO {APP_ROLE}")


def downgrade() -> None:
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
