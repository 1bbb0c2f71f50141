"""The chaser sweep (issue #6, §6): polite reminders on the published schedule."""

from __future__ import annotations

import logging
from datetime import date

from sqlalchemy.orm import Session

from web.db import utcnow
from web.delivery.chasers import run_chasers
from web.delivery.workdays import uk_date
from workers.context import settings, system_job

log = logging.getLogger(__name__)


@system_job
def send_chasers(session: Session, today: str | None = None) -> int:
    """Send every reminder due today (UK date; `today` as YYYY-MM-DD overrides it, for
    tests and for catching up by hand). Runs across collectives, each delivery inside
    its own collective, and commits after every reminder, so a crash keeps what was
    sent. Idempotent: the Chaser row's unique (delivery, number) means a second sweep,
    at the same moment or later the same day, sends nothing twice. Emails leave through
    the outbox after each commit. Returns how many reminders were sent."""
    day = date.fromisoformat(today) if today else uk_date(utcnow())
    sent = run_chasers(session, settings(), day, checkpoint=session.commit)
    if sent:
        log.info("sent %d reminders for %s", len(sent), day.isoformat())
    return len(sent)
