"""Chasers: polite reminders to a department that has not answered (issue #6, §6).

What an organiser and an official can rely on:
- The schedule is the published one (`web.delivery.workdays`, shown at /chasers): the
  first reminder on the first working day after the reply deadline, the second
  10 working days later, a third 10 working days after that and only to the
  recipient's escalation contact, if they have one. At most three; none once the
  department has responded in any way (a bounce is not a response); none while the
  organiser has paused them; only on working days of the recipient's nation.
- Only email deliveries are chased (a posted letter has no address to remind).
- Exactly once: the sweep claims a chaser by inserting its row, unique on
  (delivery, number), with INSERT ... ON CONFLICT DO NOTHING. A second sweep running at
  the same moment waits on that insert and then gets no row, so it sends nothing. The
  email is queued through the outbox in the same transaction as the row: it leaves
  only after commit, and a rollback sends nothing. The delivery row is locked first,
  so a sweep also sees a response or a pause committed a moment earlier.
- Every chaser is a line on the delivery's timeline ("Reminder 1 sent to ...").

`Chaser.due_on` holds the day the reminder went out (the sweep runs hourly, so that is
its scheduled working day unless chasers were paused); `next_chaser` spaces the next one
at least 10 working days after it. Storing that day (rather than reading `created_at`)
keeps the schedule on the sweep's clock, which tests freeze.

Services flush, never commit; `run_chasers` takes an optional `checkpoint` (the job
passes `session.commit`) so one delivery's reminder is committed before the next is
looked at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from web.campaigns.models import Campaign
from web.collectives.models import Collective, Membership, Role
from web.collectives.services import require_role
from web.delivery import workdays
from web.delivery.loop import letter_title, long_date, one_line
from web.delivery.models import Chaser, Delivery, DeliveryMethod, DeliveryStatus, EventKind
from web.delivery.services import DeliveryError, record_event, reply_address, response_url
from web.emails import send_templated_email
from web.mail import make_message_id
from web.settings import Settings
from web.tenancy import set_current_collective

# --- the sweep -------------------------------------------------------------------------


def chaseable_deliveries(session: Session, today: date) -> list[tuple[int, int]]:
    """(delivery id, collective id) of every delivery the sweep should look at today:
    sent by email, no response, not paused, fewer than 3 chasers. Spans collectives:
    call in `system_scope`."""
    rows = session.execute(
        select(Delivery.id, Delivery.collective_id)
        .where(
            Delivery.status == DeliveryStatus.SENT.value,
            Delivery.method == DeliveryMethod.EMAIL.value,
            Delivery.acknowledged_at.is_(None),
            Delivery.replied_at.is_(None),
            Delivery.chasers_paused.is_(False),
            Delivery.chasers_sent < workdays.MAX_CHASERS,
            Delivery.delivered_on < today,
        )
        .order_by(Delivery.id),
        execution_options={"all_collectives": True},
    ).all()
    return [(int(d), int(c)) for d, c in rows]


def run_chasers(
    session: Session,
    settings: Settings,
    today: date,
    *,
    checkpoint: Callable[[], None] | None = None,
) -> list[Chaser]:
    """Send every chaser due on `today` (a UK date: the clock, frozen in tests). Each
    delivery is handled inside its own collective; `checkpoint` runs after each one
    that sent something (the job commits there). Idempotent: a second run on the same
    day, or one running at the same time, sends nothing again. Returns the chasers
    this run sent. Call in `system_scope`; leaves no collective current."""
    sent: list[Chaser] = []
    for delivery_id, collective_id in chaseable_deliveries(session, today):
        set_current_collective(session, collective_id)
        delivery = session.get(Delivery, delivery_id)
        if delivery is None:
            continue
        chaser = chase_delivery(session, settings, delivery, today)
        if chaser is not None:
            sent.append(chaser)
            if checkpoint is not None:
                checkpoint()
    set_current_collective(session, None)
    return sent


def _last_sent_on(session: Session, delivery: Delivery) -> tuple[int, date | None]:
    row = session.execute(
        select(func.max(Chaser.number), func.max(Chaser.due_on)).where(
            Chaser.delivery_id == delivery.id
        )
    ).one()
    return int(row[0] or 0), row[1]


def chase_delivery(
    session: Session, settings: Settings, delivery: Delivery, today: date
) -> Chaser | None:
    """Send this delivery's chaser if one is due on `today`; None otherwise (not due, a
    response came in, paused, all sent, or another sweep claimed it first). Queues the
    email through the outbox, bumps `chasers_sent` and writes the timeline. Flushes."""
    # Lock the delivery and read it afresh: a response or a pause committed since the
    # sweep listed it stops the reminder.
    locked = session.scalar(
        select(Delivery)
        .where(Delivery.id == delivery.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if locked is None or not locked.is_sent or locked.method != DeliveryMethod.EMAIL.value:
        return None
    delivery = locked
    if delivery.delivered_on is None:
        return None
    sent, last_sent_on = _last_sent_on(session, delivery)
    step = workdays.next_chaser(
        delivery.delivered_on,
        delivery.reply_target_days,
        delivery.nation,
        sent=max(sent, delivery.chasers_sent),
        has_escalation=bool(delivery.escalation_email),
        responded=delivery.has_response,
        paused=delivery.chasers_paused,
        today=today,
        last_sent_on=last_sent_on,
    )
    if step is None:
        return None
    to = delivery.escalation_email if step.to_escalation else delivery.to_email
    if not to:
        return None
    # The claim: only one transaction ever gets this row back.
    chaser_id = session.scalar(
        insert(Chaser)
        .values(
            collective_id=delivery.collective_id,
            delivery_id=delivery.id,
            number=step.number,
            to_email=to,
            is_escalation=step.to_escalation,
            message_id="",
            due_on=today,
        )
        .on_conflict_do_nothing(index_elements=["delivery_id", "number"])
        .returning(Chaser.id)
    )
    if chaser_id is None:
        return None
    message = _queue_chaser_email(session, settings, delivery, step, to, today)
    session.execute(
        update(Chaser)
        .where(Chaser.id == chaser_id)
        .values(message_id=message)
        .execution_options(synchronize_session=False)
    )
    delivery.chasers_sent = max(delivery.chasers_sent, step.number)
    session.flush()
    record_event(
        session,
        delivery,
        EventKind.CHASER_SENT,
        f"Reminder {step.number} sent to {to}"
        + (" (the escalation contact)." if step.to_escalation else "."),
        actor_label="Chorus",
        number=step.number,
        to_email=to,
        chaser_id=chaser_id,
        sent_on=today.isoformat(),
        is_escalation=step.to_escalation,
    )
    chaser = session.get(Chaser, chaser_id)
    assert chaser is not None
    return chaser


def _queue_chaser_email(  # noqa: PLR0917 - private; every argument is needed
    session: Session,
    settings: Settings,
    delivery: Delivery,
    step: workdays.ChaserStep,
    to: str,
    today: date,
) -> str:
    """Queue the reminder (plain text and HTML) and return its Message-ID."""
    assert delivery.delivered_on is not None
    campaign = session.get(Campaign, delivery.campaign_id)
    collective = session.get(Collective, delivery.collective_id)
    if campaign is None or collective is None:
        raise DeliveryError("This delivery's campaign no longer exists.")
    title = letter_title(session, delivery, campaign)
    subject = f"Reminder: {one_line(title)} (sent {long_date(delivery.delivered_on)})"
    context = {
        "delivery": delivery,
        "campaign": campaign,
        "collective": collective,
        "title": title,
        "number": step.number,
        "is_escalation": step.to_escalation,
        "is_last": step.number >= workdays.MAX_CHASERS
        or step.number
        >= len(
            workdays.chaser_steps(
                delivery.delivered_on,
                delivery.reply_target_days,
                delivery.nation,
                bool(delivery.escalation_email),
            )
        ),
        "delivered_on": long_date(delivery.delivered_on),
        "elapsed": workdays.working_day_number(delivery.delivered_on, today, delivery.nation),
        "target": delivery.reply_target_days,
        "due_on": long_date(
            workdays.add_working_days(
                delivery.delivered_on, delivery.reply_target_days, delivery.nation
            )
        ),
        "response_url": response_url(settings, delivery),
        "reply_address": reply_address(settings, delivery),
        "schedule_url": f"{settings.base_url}/chasers",
    }
    row = send_templated_email(
        session,
        settings,
        to=to,
        template="chaser",
        subject=subject[:300],
        context=context,
        collective_id=delivery.collective_id,
        headers={
            "Reply-To": reply_address(settings, delivery),
            # Threads the reminder under the letter in the official's mail client.
            "In-Reply-To": delivery.message_id,
            "References": delivery.message_id,
            "Auto-Submitted": "auto-generated",
        },
    )
    message_id = row.payload.get("message_id") or make_message_id()
    return str(message_id)


# --- pausing ---------------------------------------------------------------------------


def pause_chasers(session: Session, actor: Membership, delivery: Delivery) -> bool:
    """Stop reminders for this delivery until resumed. Owners and organisers only.
    Returns whether anything changed (pausing twice records one event). Flushes."""
    require_role(actor, Role.OWNER, Role.ORGANISER)
    if delivery.chasers_paused:
        return False
    delivery.chasers_paused = True
    session.flush()
    record_event(
        session,
        delivery,
        EventKind.CHASERS_PAUSED,
        "Reminders paused by the organisers.",
        actor_id=actor.user_id,
    )
    return True


def resume_chasers(session: Session, actor: Membership, delivery: Delivery) -> bool:
    """Let reminders go out again on the published schedule (a reminder that fell due
    while paused goes at the next sweep). Owners and organisers only. Flushes."""
    require_role(actor, Role.OWNER, Role.ORGANISER)
    if not delivery.chasers_paused:
        return False
    delivery.chasers_paused = False
    session.flush()
    record_event(
        session,
        delivery,
        EventKind.CHASERS_RESUMED,
        "Reminders resumed by the organisers.",
        actor_id=actor.user_id,
    )
    return True


# --- the organiser's panel --------------------------------------------------------------


@dataclass(frozen=True)
class PlannedChaser:
    number: int
    due_on: date
    working_day: int
    to_escalation: bool
    to_email: str
    sent_on: date | None

    @property
    def status(self) -> str:
        if self.sent_on is not None:
            return f"Sent on {long_date(self.sent_on)} to {self.to_email}"
        return "Not sent"


@dataclass(frozen=True)
class ChaserPlan:
    applies: bool  # an email delivery that has been sent
    paused: bool
    responded: bool
    steps: list[PlannedChaser]
    sent: int
    schedule: list[str]
    reason: str  # why no (more) reminders will go, or ""


def chaser_plan(session: Session, delivery: Delivery) -> ChaserPlan:
    """The published schedule with this delivery's dates, and which reminders went."""
    schedule = workdays.schedule_description(delivery.reply_target_days)
    applies = (
        delivery.is_sent
        and delivery.method == DeliveryMethod.EMAIL.value
        and delivery.delivered_on is not None
    )
    if not applies or delivery.delivered_on is None:
        reason = (
            "Reminders are sent only for letters delivered by email."
            if delivery.method == DeliveryMethod.POST.value
            else "Reminders start once the letter has been delivered."
        )
        return ChaserPlan(False, delivery.chasers_paused, False, [], 0, schedule, reason)
    sent = {
        c.number: c
        for c in session.scalars(
            select(Chaser).where(Chaser.delivery_id == delivery.id).order_by(Chaser.number)
        )
    }
    steps = [
        PlannedChaser(
            number=step.number,
            due_on=step.due_on,
            working_day=step.working_day,
            to_escalation=step.to_escalation,
            to_email=(sent[step.number].to_email if step.number in sent else "")
            or (delivery.escalation_email if step.to_escalation else delivery.to_email),
            sent_on=sent[step.number].due_on if step.number in sent else None,
        )
        for step in workdays.chaser_steps(
            delivery.delivered_on,
            delivery.reply_target_days,
            delivery.nation,
            bool(delivery.escalation_email),
        )
    ]
    reason = ""
    if delivery.has_response:
        reason = "The department has responded, so no more reminders will be sent."
    elif delivery.chasers_paused:
        reason = "Reminders are paused: none will be sent until you resume them."
    elif len(sent) >= len(steps):
        reason = "Every reminder on the schedule has been sent."
    return ChaserPlan(
        True, delivery.chasers_paused, delivery.has_response, steps, len(sent), schedule, reason
    )
