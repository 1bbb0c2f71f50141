"""Recurring work on signatures."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from web.campaigns.models import Campaign, CampaignState
from web.signatures.services import reconcile_counts
from web.tenancy import set_current_collective
from workers.context import system_job

log = logging.getLogger(__name__)


@system_job
def reconcile_signature_counts(session: Session) -> int:
    """Recount verified signatures of every collecting campaign and repair any drift in
    the sharded counters. Idempotent. Returns how many campaigns were repaired."""
    campaigns = session.execute(
        select(Campaign.id, Campaign.collective_id).where(
            Campaign.state == CampaignState.COLLECTING.value
        ),
        execution_options={"all_collectives": True},
    ).all()
    repaired = 0
    for campaign_id, collective_id in campaigns:
        set_current_collective(session, collective_id)
        before, after = reconcile_counts(session, campaign_id)
        if before != after:
            repaired += 1
            log.warning("campaign %s count drifted: %s -> %s", campaign_id, before, after)
    set_current_collective(session, None)
    return repaired
