"""Recurring work on signatures."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from web.campaigns.models import Campaign, CampaignState
from web.db import utcnow
from web.signatures.services import reconcile_counts
from web.signatures.trending import flag_trends
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


@system_job
def flag_trending(session: Session) -> int:
    """Flag email domains and IP hashes trending on any collecting campaign (see
    web/signatures/trending.py). Idempotent. Returns how many flags were raised or
    refreshed."""
    campaigns = session.scalars(
        select(Campaign).where(Campaign.state == CampaignState.COLLECTING.value),
        execution_options={"all_collectives": True},
    ).all()
    now = utcnow()
    touched = 0
    for campaign in campaigns:
        set_current_collective(session, campaign.collective_id)
        flags = flag_trends(session, campaign, now)
        touched += len(flags)
        for flag in flags:
            log.info(
                "campaign %s: %s %s trending (%s in the last hour)",
                campaign.id,
                flag.kind,
                flag.value,
                flag.recent,
            )
    set_current_collective(session, None)
    return touched
