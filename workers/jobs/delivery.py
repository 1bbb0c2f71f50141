"""Delivering letters: the send job and the sweep (web/delivery/sending.py explains both).

`send_delivery` serves the outbox row `create_email_delivery` (or the sweep) wrote,
payload {"delivery_id": id}. It runs under `@job`: the row's collective is the tenant and
one session commits the outcome with the outbox row. It is idempotent: the delivery row
is locked and only a pending email delivery is sent, so a second run (RQ's retry, the
reconciler's re-enqueue, a duplicate job from the sweep) sends nothing. A temporary
refusal is not raised to RQ: the job records it and the sweep starts a new job once
the pause is over, so the timeline shows every attempt.

`sweep_deliveries` (every minute, workers/cron.py) starts scheduled deliveries whose
date has come or whose campaign reached its target, and retries deferred ones.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from web.delivery import sending
from web.outbox import OutboxMessage
from workers.context import PermanentJobError, job, settings, system_job

log = logging.getLogger(__name__)


@job
def send_delivery(session: Session, row: OutboxMessage) -> None:
    """Send one email delivery (see the module docstring). Commits once, through @job."""
    try:
        delivery_id = int(row.payload["delivery_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentJobError(f"This job names no delivery: {row.payload!r}") from exc
    outcome = sending.send_delivery_now(session, settings(), delivery_id)
    log.info("delivery %s: %s", delivery_id, outcome)


@job
def make_print_pack(session: Session, row: OutboxMessage) -> None:
    """Make a postal delivery's print-ready PDF (web.delivery.sending.make_print_pack).
    Idempotent; commits once, through @job."""
    try:
        delivery_id = int(row.payload["delivery_id"])
        link = str(row.payload["link"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PermanentJobError(f"This job names no delivery: {row.payload!r}") from exc
    outcome = sending.make_print_pack(session, settings(), delivery_id, link)
    log.info("print pack for delivery %s: %s", delivery_id, outcome)


@system_job
def sweep_deliveries(session: Session) -> int:
    """Start due scheduled deliveries and retry deferred ones, across collectives.
    Idempotent (rows are claimed with SKIP LOCKED; jobs send only pending deliveries).
    Returns how many deliveries were handed to a send job."""
    result = sending.sweep_deliveries(session, settings())
    if result.retried or result.started or result.waiting_for_pdf:
        log.info(
            "deliveries: %d retried, %d started, %d waiting for their PDF",
            result.retried,
            result.started,
            result.waiting_for_pdf,
        )
    return result.retried + result.started
