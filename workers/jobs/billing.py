"""Billing work outside requests: applying Stripe events and ending grace periods."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from web.billing.gateway import GatewayNotConfigured, gateway_from_settings
from web.billing.stripe_services import apply_stripe_event, expire_grace
from web.outbox import OutboxMessage
from workers.context import PermanentJobError, job, settings, system_job

log = logging.getLogger(__name__)


@job
def process_stripe_event(session: Session, row: OutboxMessage) -> None:
    """Apply one stored Stripe event (payload: {"event_id"}). Idempotent: an event
    already processed is skipped, and every change re-reads Stripe's current state.
    Commits once (the job wrapper). Sends the owners' email when a payment failure
    starts a grace period. When Stripe cannot be reached it raises, the row stays
    unfinished, and the outbox reconciler runs it again later."""
    event_id = row.payload.get("event_id")
    if not isinstance(event_id, str):
        raise PermanentJobError("the outbox row names no Stripe event")
    try:
        gateway = gateway_from_settings(settings())
    except GatewayNotConfigured as exc:
        raise PermanentJobError(str(exc)) from exc
    applied = apply_stripe_event(session, settings(), gateway, event_id)
    log.info("stripe event %s: account %s %s", event_id, applied.account_id, applied.note)


@system_job
def expire_grace_periods(session: Session, now: datetime | None = None) -> int:
    """Daily: accounts whose 14-day grace period after a failed payment has ended move
    to Free (nothing is deleted) and their owners are told by email. Idempotent; commits
    once. `now` lets tests pass time. Returns how many accounts moved."""
    moved = expire_grace(session, settings(), now)
    if moved:
        log.info("%d billing accounts moved to Free after their grace period", moved)
    return moved
