"""Meeting reminders: two days before an agreed meeting, both sides get an email.

`send_meeting_reminders` runs every 15 minutes (workers/cron.py). It claims the due
meetings with one UPDATE ... WHERE reminder_sent_at IS NULL RETURNING
(`web.responses.meetings.claim_due_reminders`) and queues the emails through the outbox
in the same transaction: the claim and the emails commit together or not at all, and a
second run (or a second scheduler at the same moment) finds nothing left to claim.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from web.responses import meetings
from web.responses.models import Meeting
from web.tenancy import set_current_collective
from workers.context import settings, system_job

log = logging.getLogger(__name__)


@system_job
def send_meeting_reminders(session: Session) -> int:
    """Queue reminders for accepted meetings starting within 48 hours that have had
    none. Idempotent: each meeting is claimed once. Returns how many meetings."""
    config = settings()
    claimed = meetings.claim_due_reminders(session)
    for meeting_id, collective_id in claimed:
        set_current_collective(session, collective_id)
        meeting = session.get(Meeting, meeting_id)
        if meeting is not None:
            meetings.queue_reminder(session, config, meeting)
    set_current_collective(session, None)
    if claimed:
        log.info("queued reminders for %d meetings", len(claimed))
    return len(claimed)
