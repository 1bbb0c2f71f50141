"""Sending an update to a campaign's signers, one batch per job."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from web.outbox import OutboxMessage
from web.signatures.updates import BATCH_SIZE, MAX_BATCH_SIZE, send_next_batch
from workers.context import PermanentJobError, job, settings

log = logging.getLogger(__name__)


@job
def send_update_batch(session: Session, row: OutboxMessage) -> None:
    """Queue the update's emails for the next batch of opted-in signers and enqueue the
    batch after it. Commits once (through @job), so the emails, the moved cursor and the
    next batch's job appear together or not at all: a crash repeats the batch, never a
    signer. Idempotent: a batch whose cursor has moved on does nothing."""
    try:
        update_id = int(row.payload["update_id"])
        after_id = int(row.payload.get("after_id", 0))
        batch_size = int(row.payload.get("batch_size", BATCH_SIZE))
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentJobError(f"This job names no update: {row.payload!r}") from exc
    if not 0 < batch_size <= MAX_BATCH_SIZE:
        raise PermanentJobError(f"Batch size out of range: {batch_size}")
    queued = send_next_batch(session, settings(), update_id, after_id, batch_size)
    log.info("update %s: queued %d emails after signature %s", update_id, queued, after_id)
