"""Asking signers of an older version of a letter to confirm the new one."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from web.campaigns.models import Campaign
from web.outbox import OutboxMessage, enqueue_job
from web.signatures.selfservice import RECONSENT_BATCH, send_reconsent_batch
from workers.context import job, settings

log = logging.getLogger(__name__)

JOB = "workers.jobs.reconsent.send_reconsent_emails"


@job
def send_reconsent_emails(session: Session, row: OutboxMessage) -> None:
    """Email one batch of a campaign's verified signers of older versions (page by id,
    RECONSENT_BATCH at a time), asking each to confirm the version in the payload, then
    enqueue the next batch. Each batch is one job and one commit, so 100,000 signers
    never load at once and a failure repeats one batch only.

    Enqueued by `mark_reconsent_needed` when a version is published. Idempotent: each
    signer is recorded as asked about the version in the same commit as their email, so
    a re-run (or a second run) asks nobody twice; signers without an email address are
    skipped; a version superseded meanwhile asks nobody.
    """
    payload = row.payload
    campaign = session.get(Campaign, int(payload["campaign_id"]))
    if campaign is None:  # deleted meanwhile
        return
    version_id = int(payload["version_id"])
    sent, after_id = send_reconsent_batch(
        session,
        settings(),
        campaign,
        version_id,
        after_id=int(payload.get("after_id", 0)),
        limit=int(payload.get("batch", RECONSENT_BATCH)),
    )
    log.info("campaign %s version %s: %d re-consent emails", campaign.id, version_id, sent)
    if after_id is not None:
        enqueue_job(
            session,
            JOB,
            payload={**payload, "after_id": after_id},
            collective_id=row.collective_id,
        )
