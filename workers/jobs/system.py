"""Recurring housekeeping that spans collectives."""

from __future__ import annotations

import logging
from datetime import timedelta

from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from web.accounts.services import purge_expired_tokens
from web.db import utcnow
from web.outbox import OutboxMessage
from workers.context import get_app, settings, system_job

log = logging.getLogger(__name__)

ALIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
MAX_REQUEUES = 10


@system_job
def reconcile_outbox(session: Session, limit: int = 500) -> int:
    """Re-enqueue committed outbox rows whose job is gone (Redis restarted, enqueue
    failed, retries exhausted), and make sure a drain is queued while emails are owed
    (including those waiting out a temporary refusal). Idempotent: a row whose job is
    alive is left alone, a live drain is not doubled, and jobs skip rows already done.
    Gives up on a job row after MAX_REQUEUES attempts. Returns how many rows were
    re-enqueued or handed to a new drain."""
    app = get_app()
    redis = app.extensions["chorus.redis"]
    dispatcher = app.extensions["chorus.dispatcher"]
    now = utcnow()
    cutoff = now - timedelta(seconds=settings().outbox_reconcile_after_seconds)
    owed_emails = session.scalar(
        select(func.count()).select_from(
            select(OutboxMessage.id)
            .where(
                OutboxMessage.kind == "email",
                OutboxMessage.done_at.is_(None),
                OutboxMessage.failed_at.is_(None),
                OutboxMessage.created_at < cutoff,
                or_(OutboxMessage.available_at.is_(None), OutboxMessage.available_at <= now),
            )
            .limit(limit)
            .subquery()
        )
    )
    drained = 0
    if owed_emails and dispatcher.request_drain(force=True):
        drained = int(owed_emails)
        log.info("queued an email drain for %d owed emails", drained)
    rows = session.scalars(
        select(OutboxMessage)
        .where(
            OutboxMessage.kind != "email",
            OutboxMessage.done_at.is_(None),
            OutboxMessage.failed_at.is_(None),
            OutboxMessage.created_at < cutoff,
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    requeue = []
    for row in rows:
        try:
            status = Job.fetch(row.job_id, connection=redis).get_status()
        except NoSuchJobError:
            status = None
        if status in ALIVE:
            continue
        if row.requeued >= MAX_REQUEUES:
            row.failed_at = utcnow()
            row.last_error = (row.last_error or "") + " | gave up after repeated re-enqueues"
            continue
        row.requeued += 1
        requeue.append((row.id, row.queue, row.func))
    session.flush()
    if requeue:
        dispatcher.dispatch(requeue)
        log.info("re-enqueued %d outbox rows", len(requeue))
    return len(requeue) + drained


@system_job
def purge_expired(session: Session) -> int:
    """Delete email-link tokens that expired over a day ago, and outbox rows finished over
    a week ago. Idempotent."""
    cutoff = utcnow() - timedelta(days=7)
    old = session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.created_at < cutoff,
            (OutboxMessage.done_at.is_not(None)) | (OutboxMessage.failed_at.is_not(None)),
        )
    ).all()
    for row in old:
        session.delete(row)
    session.flush()
    return purge_expired_tokens(session) + len(old)
