"""Grouping near-identical statements (web/signatures/statements.py), in the background.

The recurring sweep finds campaigns with words still to group and enqueues one
`group_campaign_statements` job for each (through the outbox, unless one is already
waiting). Each job groups one batch under the campaign's advisory lock and, if the batch
was full, enqueues the next: a campaign's backlog drains continuously, one batch per
transaction, and never in a signing request.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from web.campaigns.models import Campaign
from web.outbox import OutboxMessage, enqueue_job
from web.signatures.statements import campaigns_with_ungrouped_statements, group_statements
from workers.context import job, system_job

log = logging.getLogger(__name__)

GROUP_JOB = "workers.jobs.statements.group_campaign_statements"


def _enqueue(session: Session, campaign_id: int, collective_id: int) -> None:
    enqueue_job(
        session, GROUP_JOB, payload={"campaign_id": campaign_id}, collective_id=collective_id
    )


@system_job
def sweep_statements(session: Session) -> int:
    """Enqueue a grouping job for every campaign with ungrouped words and no grouping job
    waiting. Idempotent. Returns how many jobs were enqueued."""
    waiting = {
        int(payload.get("campaign_id", 0))
        for payload in session.scalars(
            select(OutboxMessage.payload).where(
                OutboxMessage.func == GROUP_JOB,
                OutboxMessage.done_at.is_(None),
                OutboxMessage.failed_at.is_(None),
            )
        )
    }
    enqueued = 0
    for campaign_id, collective_id in campaigns_with_ungrouped_statements(session):
        if campaign_id not in waiting:
            _enqueue(session, campaign_id, collective_id)
            enqueued += 1
    return enqueued


@job
def group_campaign_statements(session: Session, row: OutboxMessage) -> None:
    """Group one batch of a campaign's words; enqueue the next batch if there may be more.
    Idempotent: grouped words are skipped, and a deleted campaign is nothing to do."""
    campaign = session.scalar(
        select(Campaign).where(Campaign.id == int(row.payload.get("campaign_id", 0)))
    )
    if campaign is None:
        return
    result = group_statements(session, campaign)
    log.info(
        "campaign %s: grouped %d statements, %d new groups",
        campaign.id,
        result.statements,
        result.groups_founded,
    )
    if result.more:
        _enqueue(session, campaign.id, campaign.collective_id)
