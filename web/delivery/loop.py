"""Closing the loop (issue #6, §8): the organiser's assessment of the reply, the
published response on the campaign page, and the signers' news.

Assessment: each ask of the delivered letter (the `asks` of the LetterVersion the
delivered PDF carries) is marked answered, partly answered or not answered, with an
optional note. One row per (delivery, ask); assessing again updates it. Every change
is a line on the timeline (ASSESSED).

Publishing: a summary (up to 10,000 characters) and the assessments appear on the
public campaign page once the organiser publishes them (`response_published_at`); they
can take them down again. The public section also shows the facts Chorus recorded:
when the letter was delivered and to whom, when it was acknowledged and answered, and
how many working days each took.

Signers' news: `notify_signers` turns a milestone of a delivery (delivered,
acknowledged, answered, meeting agreed) into an automatic update for the campaign's
opted-in signers, sent by the updates machinery (web/signatures/updates.py): batched
by workers, consent read afresh for each batch, one-click unsubscribe honoured.
- Idempotent: the delivery row is locked and the milestone's update is recognised by
  its fixed subject among the campaign's automatic updates, so a milestone reported twice,
  or by two channels at once, sends nothing new. Two deliveries of one campaign to the
  same recipient (by email and by post, say) share the news: signers hear it once.
- Automatic updates neither wait for nor use up the organiser's own update allowance
  (one a day per campaign, three per collective): they are marked `is_automatic`, which
  `updates.next_allowed_at` leaves out, and listed as written by "Chorus, automatically".

Services flush, never commit; emails and jobs leave through the outbox after commit.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from web.campaigns.models import Campaign
from web.collectives.models import Collective, Membership, Role
from web.collectives.services import require_role
from web.db import utcnow
from web.delivery import workdays
from web.delivery.models import Delivery, DeliveryStatus, EventKind
from web.delivery.services import delivered_version, record_event
from web.delivery.workdays import uk_date
from web.outbox import enqueue_job
from web.responses.models import AskAssessment, Assessment, Meeting
from web.signatures.updates import (
    BATCH_SIZE,
    MAX_SUBJECT,
    SEND_BATCH_JOB,
    CampaignUpdate,
    UpdateStatus,
    count_recipients,
)

MAX_NOTE = 2_000
MAX_SUMMARY = 10_000


class LoopError(ValueError):
    """A rule was broken; the message is safe to show to the organiser."""


def one_line(value: str) -> str:
    """Text for a header or a one-line label: control characters become spaces."""
    cleaned = "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in value)
    return " ".join(cleaned.split())


def long_date(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


# --- the delivered letter ---------------------------------------------------------------


def asks_for(session: Session, delivery: Delivery) -> list[str]:
    version = delivered_version(session, delivery)
    if version is None:
        return []
    asks = version.content.get("asks") or []
    return [str(ask) for ask in asks if str(ask).strip()]


def letter_title(session: Session, delivery: Delivery, campaign: Campaign) -> str:
    """The delivered letter's subject line, or the campaign's title."""
    version = delivered_version(session, delivery)
    subject = str(version.content.get("subject") or "") if version is not None else ""
    return one_line(subject) or one_line(campaign.title)


# --- assessing the asks -----------------------------------------------------------------


def _clean_text(value: str, limit: int, what: str) -> str:
    text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) > limit:
        raise LoopError(f"{what} must be {limit:,} characters or fewer.")
    if any((ord(ch) < 32 and ch not in "\n\t") or ord(ch) == 127 for ch in text):
        raise LoopError(f"Remove the invisible control characters from {what.lower()}.")
    return text


def assess_asks(
    session: Session,
    actor: Membership,
    delivery: Delivery,
    choices: Mapping[int, tuple[str, str]],
) -> list[AskAssessment]:
    """Record the organiser's assessment of some or all asks: {ask index: (assessment,
    note)}. Re-assessing an ask updates its row. Owners and organisers only; refuses an
    unknown ask or assessment and a note over 2,000 characters before writing anything.
    Writes one ASSESSED line on the timeline. Flushes."""
    require_role(actor, Role.OWNER, Role.ORGANISER)
    if delivery.status != DeliveryStatus.SENT.value:
        raise LoopError("The letter has not been delivered yet, so there is nothing to assess.")
    asks = asks_for(session, delivery)
    if not choices:
        raise LoopError("Choose answered, partly answered or not answered for at least one ask.")
    cleaned: list[tuple[int, Assessment, str]] = []
    for index, (value, note) in sorted(choices.items()):
        if not 0 <= index < len(asks):
            raise LoopError("That ask is not in the delivered letter. Reload the page.")
        try:
            assessment = Assessment(value)
        except ValueError:
            raise LoopError(
                f"Choose answered, partly answered or not answered for ask {index + 1}."
            ) from None
        cleaned.append(
            (index, assessment, _clean_text(note, MAX_NOTE, f"The note on ask {index + 1}"))
        )
    for index, assessment, note in cleaned:
        session.execute(
            insert(AskAssessment)
            .values(
                collective_id=delivery.collective_id,
                delivery_id=delivery.id,
                ask_index=index,
                ask_text=asks[index],
                assessment=assessment.value,
                note=note,
            )
            .on_conflict_do_update(
                index_elements=["delivery_id", "ask_index"],
                set_={"assessment": assessment.value, "note": note, "ask_text": asks[index]},
            )
        )
    session.flush()
    counts = {a: sum(1 for _, x, _ in cleaned if x is a) for a in Assessment}
    words = ", ".join(f"{n} {a.label.lower()}" for a, n in counts.items() if n)
    record_event(
        session,
        delivery,
        EventKind.ASSESSED,
        f"Assessed {len(cleaned)} ask{'' if len(cleaned) == 1 else 's'}: {words}.",
        actor_id=actor.user_id,
        assessments={str(i): a.value for i, a, _ in cleaned},
    )
    return assessments_for(session, delivery)


def assessments_for(session: Session, delivery: Delivery) -> list[AskAssessment]:
    return list(
        session.scalars(
            select(AskAssessment)
            .where(AskAssessment.delivery_id == delivery.id)
            .order_by(AskAssessment.ask_index)
            .execution_options(populate_existing=True)
        )
    )


# --- publishing the response ------------------------------------------------------------


def save_summary(
    session: Session, actor: Membership, delivery: Delivery, summary: str, *, publish: bool
) -> None:
    """Keep the organiser's summary of the response and, with `publish`, show it and the
    assessments on the public campaign page. Owners and organisers only. Flushes."""
    require_role(actor, Role.OWNER, Role.ORGANISER)
    if delivery.status != DeliveryStatus.SENT.value:
        raise LoopError(
            "The letter has not been delivered yet, so there is no response to publish."
        )
    text = _clean_text(summary, MAX_SUMMARY, "The summary")
    if publish and not text:
        raise LoopError("Write a summary of the response before publishing it.")
    delivery.response_summary = text
    if publish:
        first = delivery.response_published_at is None
        delivery.response_published_at = utcnow()
        session.flush()
        record_event(
            session,
            delivery,
            EventKind.RESPONSE_PUBLISHED,
            "The response was published on the campaign page."
            if first
            else "The published response was updated.",
            actor_id=actor.user_id,
            published=True,
        )
    session.flush()


def unpublish_response(session: Session, actor: Membership, delivery: Delivery) -> bool:
    """Take the response off the public campaign page (the summary is kept). Owners and
    organisers only. Returns whether it was published. Flushes."""
    require_role(actor, Role.OWNER, Role.ORGANISER)
    if delivery.response_published_at is None:
        return False
    delivery.response_published_at = None
    session.flush()
    record_event(
        session,
        delivery,
        EventKind.RESPONSE_PUBLISHED,
        "The response was taken off the campaign page.",
        actor_id=actor.user_id,
        published=False,
    )
    return True


@dataclass(frozen=True)
class AskRow:
    index: int
    text: str
    assessment: Assessment | None
    note: str


@dataclass(frozen=True)
class AssessmentPanel:
    applies: bool
    asks: list[AskRow]
    summary: str
    published_at: datetime | None
    has_response: bool


def assessment_panel(session: Session, delivery: Delivery) -> AssessmentPanel:
    """What the organiser's panel shows: each ask with its current assessment."""
    asks = asks_for(session, delivery)
    rows = {a.ask_index: a for a in assessments_for(session, delivery)}
    return AssessmentPanel(
        applies=delivery.status == DeliveryStatus.SENT.value,
        asks=[
            AskRow(
                index=i,
                text=text,
                assessment=rows[i].assessment_enum if i in rows else None,
                note=rows[i].note if i in rows else "",
            )
            for i, text in enumerate(asks)
        ],
        summary=delivery.response_summary,
        published_at=delivery.response_published_at,
        has_response=delivery.has_response,
    )


@dataclass(frozen=True)
class PublicResponse:
    delivery_id: int
    recipient_name: str
    method_label: str
    delivered_on: date
    acknowledged_on: date | None
    acknowledged_after: int | None  # working days
    ack_target: int
    replied_on: date | None
    replied_after: int | None
    reply_target: int
    asks: list[AskRow]
    summary_paragraphs: list[str]
    published_at: datetime

    @property
    def replied_on_time(self) -> bool | None:
        if self.replied_after is None:
            return None
        return self.replied_after <= self.reply_target


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def public_responses(session: Session, campaign: Campaign) -> list[PublicResponse]:
    """The campaign's published responses, oldest delivery first (current collective)."""
    deliveries = session.scalars(
        select(Delivery)
        .where(
            Delivery.campaign_id == campaign.id,
            Delivery.status == DeliveryStatus.SENT.value,
            Delivery.response_published_at.is_not(None),
        )
        .order_by(Delivery.delivered_on, Delivery.id)
    ).all()
    result = []
    for d in deliveries:
        if d.delivered_on is None or d.response_published_at is None:
            continue
        ack_on = uk_date(d.acknowledged_at) if d.acknowledged_at else None
        reply_on = uk_date(d.replied_at) if d.replied_at else None
        panel = assessment_panel(session, d)
        result.append(
            PublicResponse(
                delivery_id=d.id,
                recipient_name=d.recipient_name,
                method_label=d.method_enum.label.lower(),
                delivered_on=d.delivered_on,
                acknowledged_on=ack_on,
                acknowledged_after=workdays.working_days_between(d.delivered_on, ack_on, d.nation)
                if ack_on
                else None,
                ack_target=d.ack_target_days,
                replied_on=reply_on,
                replied_after=workdays.working_days_between(d.delivered_on, reply_on, d.nation)
                if reply_on
                else None,
                reply_target=d.reply_target_days,
                asks=[row for row in panel.asks if row.assessment is not None],
                summary_paragraphs=_paragraphs(d.response_summary),
                published_at=d.response_published_at,
            )
        )
    return result


# --- signers' news ------------------------------------------------------------------------


class Milestone(enum.StrEnum):
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    ANSWERED = "answered"
    MEETING_AGREED = "meeting_agreed"


def _milestone_subject(milestone: Milestone, recipient: str) -> str:
    who = one_line(recipient)[:100] or "The department"
    subject = {
        Milestone.DELIVERED: f"Your letter has been delivered to {who}",
        Milestone.ACKNOWLEDGED: f"{who} has acknowledged the letter",
        Milestone.ANSWERED: f"{who} has replied to the letter",
        Milestone.MEETING_AGREED: f"{who} has agreed to meet",
    }[milestone]
    return subject[:MAX_SUBJECT]


def _milestone_body(
    session: Session, milestone: Milestone, delivery: Delivery, collective: Collective
) -> str:
    who = one_line(delivery.recipient_name) or "the department"
    today = uk_date(utcnow())
    delivered = long_date(delivery.delivered_on) if delivery.delivered_on else "recently"
    if milestone is Milestone.DELIVERED:
        how = "by email" if delivery.method == "email" else "by post"
        return (
            f"The letter you signed was delivered to {who} on {delivered}, {how}.\n\n"
            f"We have asked for a reply within {delivery.reply_target_days} working days. "
            "We will let you know when they acknowledge it and when they answer."
        )
    if milestone is Milestone.ACKNOWLEDGED:
        when = uk_date(delivery.acknowledged_at) if delivery.acknowledged_at else today
        days = (
            workdays.working_days_between(delivery.delivered_on, when, delivery.nation)
            if delivery.delivered_on
            else 0
        )
        return (
            f"{who} acknowledged the letter you signed on {long_date(when)}, "
            f"{days} working day{'' if days == 1 else 's'} after it was delivered.\n\n"
            f"A full reply is expected within {delivery.reply_target_days} working days of "
            f"delivery. {one_line(collective.name)} will tell you when it arrives."
        )
    if milestone is Milestone.ANSWERED:
        when = uk_date(delivery.replied_at) if delivery.replied_at else today
        days = (
            workdays.working_days_between(delivery.delivered_on, when, delivery.nation)
            if delivery.delivered_on
            else 0
        )
        return (
            f"{who} replied to the letter you signed on {long_date(when)}, "
            f"{days} working day{'' if days == 1 else 's'} after it was delivered.\n\n"
            f"{one_line(collective.name)} is reading the reply against each of the letter's "
            "asks and will publish what it said on the campaign page."
        )
    meeting = session.scalar(select(Meeting).where(Meeting.delivery_id == delivery.id))
    when_text = ""
    if meeting is not None and meeting.starts_at is not None:
        starts = meeting.starts_at.astimezone(workdays.UK_TIME)
        when_text = f" The meeting is on {long_date(starts.date())} at {starts:%H:%M}."
    return (
        f"{who} has agreed to meet {one_line(collective.name)} about the letter you signed."
        f"{when_text}\n\nWe will share what comes of it."
    )


def notify_signers(
    session: Session, delivery: Delivery, milestone: Milestone | str
) -> CampaignUpdate | None:
    """Tell the campaign's opted-in signers that this delivery reached `milestone`:
    records an automatic update and enqueues its first batch (leaves after commit).
    Idempotent per (campaign, recipient, milestone): returns None, sending nothing, when
    that news was already recorded, when the delivery was not sent, or for an
    acknowledgement that comes after the answer. Does not check
    or consume the organiser's update allowance. Flushes."""
    milestone = Milestone(milestone)
    locked = session.scalar(
        select(Delivery)
        .where(Delivery.id == delivery.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if locked is None or locked.status != DeliveryStatus.SENT.value:
        return None
    if milestone is Milestone.ACKNOWLEDGED and locked.replied_at is not None:
        return None  # a late acknowledgement after the answer is no news
    campaign = session.get(Campaign, locked.campaign_id)
    collective = session.get(Collective, locked.collective_id)
    if campaign is None or collective is None:
        return None
    subject = _milestone_subject(milestone, locked.recipient_name)
    already = session.scalar(
        select(CampaignUpdate.id).where(
            CampaignUpdate.campaign_id == campaign.id,
            CampaignUpdate.is_automatic.is_(True),
            CampaignUpdate.subject == subject,
        )
    )
    if already is not None:
        return None
    row = CampaignUpdate(
        collective_id=campaign.collective_id,
        campaign_id=campaign.id,
        author_id=None,
        is_automatic=True,  # outside the organisers' allowance
        subject=subject,
        body=_milestone_body(session, milestone, locked, collective),
        status=UpdateStatus.QUEUED.value,
        recipient_count=count_recipients(session, campaign),
    )
    session.add(row)
    session.flush()
    enqueue_job(
        session,
        SEND_BATCH_JOB,
        payload={"update_id": row.id, "after_id": 0, "batch_size": BATCH_SIZE},
        collective_id=row.collective_id,
    )
    return row
