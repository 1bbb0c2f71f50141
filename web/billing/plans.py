"""Plan rules: what each plan allows, and the checks every path goes through.

Free has every feature that helps a voice be heard, with at most
`FREE_COLLECTING_LIMIT` campaigns collecting at once and a small "Made with Chorus"
footer on the collective's public pages. Supporter (and Federation, which gives each of
its collectives the same) adds unlimited campaigns, the collective's own logo and colours,
the CSV export of signers, and priority on the rendering queue.

The checks live here and are called by the services that do the work
(`web.campaigns.services.publish`, the CSV export, `web.pdf.services.request_render`),
so the web form, an import or a future API meet the same rule. A lapsed plan never
deletes or stops anything: campaigns already collecting keep collecting until they
close; only a new one is held back. Branding is kept and shown again on upgrade.

Reading the plan never writes: a collective without a billing account is on Free
(`account_for`, which creates the account, is for the places that must have one).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from web.billing.models import BillingAccount, Plan, effective_plan, has_supporter_features
from web.db import utcnow

FREE_COLLECTING_LIMIT = 2
PDF_QUEUE = "pdf"
PDF_PRIORITY_QUEUE = "pdf-priority"


class Feature(enum.StrEnum):
    UNLIMITED_CAMPAIGNS = "unlimited_campaigns"
    BRANDING = "branding"
    SIGNER_EXPORT = "signer_export"
    PRIORITY_RENDERING = "priority_rendering"

    @property
    def description(self) -> str:
        return FEATURE_DESCRIPTIONS[self]


FEATURE_DESCRIPTIONS = {
    Feature.UNLIMITED_CAMPAIGNS: "Any number of campaigns collecting signatures at once",
    Feature.BRANDING: "Your own logo and colours on your public pages and letters",
    Feature.SIGNER_EXPORT: "Download your verified signers as a CSV file",
    Feature.PRIORITY_RENDERING: "Your PDF letters are made ahead of the queue",
}

# What a person is told when a Free collective reaches for a Supporter feature.
REFUSALS = {
    Feature.BRANDING: (
        "Your own logo and colours are part of the Supporter plan. Your collective is on "
        "the Free plan."
    ),
    Feature.SIGNER_EXPORT: (
        "Downloading the signatures as a CSV file is part of the Supporter plan. Your "
        "collective is on the Free plan. The counts, the moderation tools and the letter "
        "itself stay free."
    ),
}


class PlanLimitReached(Exception):
    """A plan's rule refused the action; `str(exc)` is fit to show, and the page that
    shows it links to the Plan page (`feature` says what would be needed)."""

    def __init__(self, message: str, feature: Feature) -> None:
        super().__init__(message)
        self.feature = feature


@dataclass(frozen=True)
class CollectivePlan:
    """A collective's plan as the pages show it."""

    plan: Plan
    account: BillingAccount | None
    collecting: int

    @property
    def is_free(self) -> bool:
        return self.plan is Plan.FREE

    @property
    def has_supporter_features(self) -> bool:
        return has_supporter_features(self.plan)

    @property
    def is_federation_member(self) -> bool:
        return self.account is not None and self.account.is_federation

    @property
    def collecting_limit(self) -> int | None:
        return FREE_COLLECTING_LIMIT if self.is_free else None


def account_in_force(session: Session, collective_id: int) -> BillingAccount | None:
    """The collective's billing account (its own or its federation's), if it has one.
    Never creates one."""
    from web.collectives.models import Collective

    account_id = session.scalar(
        select(Collective.billing_account_id).where(Collective.id == collective_id)
    )
    return session.get(BillingAccount, account_id) if account_id is not None else None


def plan_of(session: Session, collective_id: int, now: datetime | None = None) -> Plan:
    """The plan in force for the collective right now (Free without an account)."""
    return effective_plan(account_in_force(session, collective_id), now or utcnow())


def collecting_count(session: Session, collective_id: int) -> int:
    """How many of the collective's campaigns are collecting signatures now."""
    from web.campaigns.models import Campaign, CampaignState

    return (
        session.scalar(
            select(func.count())
            .select_from(Campaign)
            .where(
                Campaign.collective_id == collective_id,
                Campaign.state == CampaignState.COLLECTING.value,
            )
        )
        or 0
    )


def collective_plan(
    session: Session, collective_id: int, now: datetime | None = None
) -> CollectivePlan:
    account = account_in_force(session, collective_id)
    return CollectivePlan(
        plan=effective_plan(account, now or utcnow()),
        account=account,
        collecting=collecting_count(session, collective_id),
    )


def limit_message(collecting: int) -> str:
    return (
        f"The Free plan lets a collective collect signatures on {FREE_COLLECTING_LIMIT} "
        f"campaigns at once, and {collecting} of yours are collecting now. Close one of "
        "them first, or move to the Supporter plan for any number of campaigns."
    )


def check_can_start_collecting(
    session: Session, collective_id: int, now: datetime | None = None
) -> None:
    """Raise PlanLimitReached if one more campaign may not start collecting.

    Locks the collective's row first, so two campaigns published at the same moment
    are counted one after the other (neither sees the other's count as stale).
    Campaigns already collecting are never stopped: this only holds back new ones."""
    from web.collectives.models import Collective

    session.execute(
        select(Collective.id).where(Collective.id == collective_id).with_for_update(key_share=True)
    )
    if has_supporter_features(plan_of(session, collective_id, now)):
        return
    collecting = collecting_count(session, collective_id)
    if collecting >= FREE_COLLECTING_LIMIT:
        raise PlanLimitReached(limit_message(collecting), Feature.UNLIMITED_CAMPAIGNS)


def require_feature(
    session: Session, collective_id: int, feature: Feature, now: datetime | None = None
) -> None:
    """Raise PlanLimitReached unless the collective's plan includes `feature`."""
    if has_supporter_features(plan_of(session, collective_id, now)):
        return
    raise PlanLimitReached(
        REFUSALS.get(feature, f"{feature.description} is part of the Supporter plan."),
        feature,
    )


def render_queue(session: Session, collective_id: int) -> str:
    """The RQ queue for the collective's PDF renders: Supporter plans go first."""
    if has_supporter_features(plan_of(session, collective_id)):
        return PDF_PRIORITY_QUEUE
    return PDF_QUEUE
