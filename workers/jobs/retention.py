"""Retention: the daily job that anonymises signers after their campaign concluded."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from web.signatures.retention import BATCH_SIZE, anonymise_due_campaigns
from workers.context import settings, system_job

log = logging.getLogger(__name__)


@system_job
def anonymise_concluded_signers(
    session: Session, now: datetime | None = None, batch_size: int = BATCH_SIZE
) -> int:
    """Anonymise the signers of every campaign concluded more than `retention_days` ago
    (web/signatures/retention.py says what goes and what stays). `now` is the clock,
    for tests. Idempotent: run twice, the second run finds nothing to do. Sends no email.

    Unlike most jobs this commits after every batch of signatures (not once at the
    end): one transaction over a large campaign would lock every row of it for the
    whole run, and a crash would throw all the work away. Each batch is harmless to
    repeat, so a run that dies half-way is finished by the next. Returns the number of
    signature rows written."""
    run = anonymise_due_campaigns(
        session,
        retention_days=settings().retention_days,
        now=now,
        batch_size=batch_size,
        checkpoint=session.commit,
    )
    if run.campaigns:
        log.info(
            "anonymised %d signatures of %d concluded campaigns: %s",
            run.signatures,
            len(run.campaigns),
            ", ".join(map(str, run.campaigns)),
        )
    return run.signatures
