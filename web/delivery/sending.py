"""Closing a campaign and delivering its letter, by email or by post (issue #6, §1 and §2).

The organiser's ways to deliver:

- **Now, by email.** The campaign is closed (if it was still collecting), the final PDF of
  the letter as it now stands must exist (`final_document`; if not, the organiser asks for
  it and waits on the PDF progress page), the organiser confirms the recipient's address
  and presses Send: `create_email_delivery` commits a `Delivery` row (status pending, a
  unique `idempotency_key`, the `Message-ID` fixed now, the reply address and response
  link) and, through the outbox, the job `workers.jobs.delivery.send_delivery`.
- **Later, by email.** `schedule_delivery` writes a row with status scheduled, for a date
  (at most a year ahead) or for the moment the signature target is reached. The recurring
  `sweep_deliveries` closes the campaign when the time comes, asks for the final PDF if
  there is none (the delivery waits, still scheduled, until it exists; nothing blocks)
  and then hands the delivery to the send job.
- **By post.** `prepare_postal_delivery` writes a row (pending, never sent by a job); the
  organiser downloads a print-ready PDF (a cover sheet with the reply address, the
  response link and the fingerprint, then the final letter; `build_print_pack`, in a
  worker) and records the
  posting date and any tracking reference (`record_posting`), which makes it sent.

Sending (`send_delivery_now`, run by the job) locks the delivery row, does nothing unless
it is pending (idempotent: a second run, or a run for a delivery already sent, failed or
cancelled, sends nothing), builds the message (plain text and HTML cover, the PDF
attached, Reply-To the delivery's own address, the Message-ID chosen at creation) and
sends it with `web.mail.send_each`:

- accepted: status sent, `sent_at`, `delivered_on` (the UK date), the recipient's working-
  day targets, nation and escalation contact copied onto the row, the timeline's
  "delivered", and the campaign moves to delivered;
- 4xx or a network failure: `attempts` + 1, the server's answer in `last_error`, a
  "deferred" line on the timeline and `next_attempt_at` after a growing pause
  (`BACKOFF_SECONDS`); the sweep hands it to a new send job when that time comes. After
  `MAX_ATTEMPTS` it is failed;
- 5xx: status failed, the server's answer in `last_error` for the organiser, who may
  correct the address and send again (a new delivery; the failed one stays in history).

The window where a message can be sent twice. The job holds the row lock from before the
SMTP conversation until its transaction commits the outcome. If the worker dies (SIGKILL,
a power cut, the RQ timeout) after the mail server has answered "250 accepted" to the
message's data but before that commit lands, the transaction rolls back, the delivery is
still pending, and the outbox reconciler (or RQ) runs the job again, which sends the
message a second time. No design that commits after sending can close this window (and
committing "sent" before sending would lose messages instead); it is narrowed to one SMTP
reply plus one commit, a few milliseconds. The duplicate carries the same Message-ID, so
the recipient's mail system, or a person, can tell it is the same letter.
tests/test_delivery_faults.py measures how often it happens when the worker is killed at
random (docs/benchmarks.md, "Delivery under SIGKILL").

Services take (session, actor, ...) and flush; the request or the job commits.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from typing import TYPE_CHECKING

from email_validator import EmailNotValidError, validate_email
from flask import render_template
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from web.campaigns import services as campaigns
from web.campaigns.models import Campaign, CampaignKind, CampaignState
from web.collectives.models import Collective, Membership, Role
from web.db import utcnow
from web.delivery import workdays
from web.delivery.loop import Milestone, notify_signers
from web.delivery.models import Delivery, DeliveryMethod, DeliveryStatus, EventKind
from web.delivery.services import (
    DeliveryError,
    advance_campaign,
    issue_secrets,
    placeholder_secrets,
    record_event,
    reissue_link,
    reply_address,
    response_url,
)
from web.delivery.workdays import uk_date
from web.mail import PermanentMailError, send_each
from web.outbox import enqueue_job
from web.pdf import services as pdf
from web.pdf.models import UNFINISHED, Document, DocumentKind, PdfRender, RenderStatus
from web.recipients.models import Recipient
from web.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Iterable

SEND_JOB = "workers.jobs.delivery.send_delivery"
EDITORS = (Role.OWNER, Role.ORGANISER)
MAX_ATTEMPTS = 10
# Pauses after the 1st, 2nd, ... temporary refusal (seconds): 1, 5, 15 minutes, 1, 2, 4,
# 8, 12 hours, a day. The tenth refusal fails the delivery (about two and a half days).
BACKOFF_SECONDS = (60, 300, 900, 3600, 7200, 14400, 28800, 43200, 86400)
MAX_SCHEDULE_DAYS = 365
# A failed render for a scheduled delivery is asked for again after this long, not at
# every sweep: a letter that cannot be rendered should not spin the PDF workers.
RENDER_RETRY_AFTER = timedelta(hours=1)
TRACKING_MAX = 100
KEY_ALPHABET = frozenset(string.hexdigits.lower())

# States from which a letter can be delivered: stopped collecting, not concluded.
DELIVERABLE = frozenset(
    {
        CampaignState.CLOSED,
        CampaignState.DELIVERED,
        CampaignState.ACKNOWLEDGED,
        CampaignState.RESPONDED,
        CampaignState.MEETING_SCHEDULED,
    }
)


# --- small checks ----------------------------------------------------------------------


def require_editor(actor: Membership) -> None:
    if actor.role not in EDITORS:
        raise PermissionError("Only owners and organisers of this collective can deliver letters.")


def new_key() -> str:
    """A fresh idempotency key: 128 bits in hex."""
    return secrets.token_hex(16)


def check_key(key: str) -> str:
    key = (key or "").strip().lower()
    if len(key) != 32 or not set(key) <= KEY_ALPHABET:
        raise DeliveryError("This form has expired. Please reload the page and try again.")
    return key


def clean_email(value: str) -> str:
    """A single email address, normalised; DeliveryError with a readable message."""
    value = (value or "").strip()
    if not value:
        raise DeliveryError("Enter the recipient's email address.")
    if len(value) > 254:
        raise DeliveryError("An email address must be 254 characters or fewer.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise DeliveryError("An email address cannot contain line breaks or control characters.")
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise DeliveryError(
            f"Enter an email address in the correct format, like name@example.org ({exc})."
        ) from None
    return str(checked.normalized)


def clean_tracking(value: str) -> str:
    value = (value or "").strip()
    if len(value) > TRACKING_MAX:
        raise DeliveryError(f"A tracking reference must be {TRACKING_MAX} characters or fewer.")
    if not value.isprintable():
        raise DeliveryError(
            "A tracking reference cannot contain line breaks or invisible characters."
        )
    return value


def check_schedule_date(day: date, today: date) -> date:
    if day <= today:
        raise DeliveryError("Choose a date after today (or deliver now).")
    if day > today + timedelta(days=MAX_SCHEDULE_DAYS):
        raise DeliveryError("Choose a date within a year from today.")
    return day


def check_deliverable(campaign: Campaign) -> None:
    if campaign.state_enum is CampaignState.CONCLUDED:
        raise DeliveryError("This campaign has concluded; its letter can no longer be delivered.")
    if campaign.state_enum not in DELIVERABLE:
        raise DeliveryError(
            "The letter can be delivered once the campaign has been published and closed."
        )


# --- reading ---------------------------------------------------------------------------


def campaign_recipient(session: Session, campaign: Campaign) -> Recipient | None:
    if campaign.recipient_id is None:
        return None
    return session.get(Recipient, campaign.recipient_id)


def recipient_name(campaign: Campaign, recipient: Recipient | None) -> str:
    if recipient is not None:
        return recipient.display_name[:200]
    return (campaign.addressee_name or campaign.addressee_role or "The recipient")[:200]


def suggested_email(recipient: Recipient | None) -> str:
    return recipient.correspondence_email if recipient is not None else ""


def final_document(session: Session, settings: Settings, campaign: Campaign) -> Document | None:
    """The final PDF of the letter as it stands now (same inputs), or None when there is
    none yet (or the campaign cannot have one)."""
    from web.pdf.context import LetterNotReady, build_letter, inputs_hash

    if not pdf.can_make_final(campaign):
        return None
    try:
        inputs = build_letter(session, campaign, draft=False, verify_url=pdf.verify_url(settings))
    except LetterNotReady:
        return None
    return pdf.cached_document(session, campaign.id, DocumentKind.FINAL.value, inputs_hash(inputs))


def latest_final_render(session: Session, campaign: Campaign) -> PdfRender | None:
    return session.scalar(
        select(PdfRender)
        .where(PdfRender.campaign_id == campaign.id, PdfRender.kind == DocumentKind.FINAL.value)
        .order_by(PdfRender.id.desc())
        .limit(1)
    )


def find_by_key(session: Session, key: str) -> Delivery | None:
    return session.scalar(select(Delivery).where(Delivery.idempotency_key == key))


@dataclass(frozen=True)
class ClockLine:
    what: str  # "Acknowledgement" | "Reply"
    label: str  # "Day 3 of 5", "Overdue by 2 working days", "Acknowledged on 4 May 2026"
    is_overdue: bool
    is_done: bool
    due_on: date | None


def _long_date(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


def clock(delivery: Delivery, today: date) -> list[ClockLine]:
    """The working-day clock of a sent delivery: acknowledgement and reply lines."""
    if not delivery.is_sent or delivery.delivered_on is None:
        return []
    lines = []
    for what, target, done_at, verb in (
        ("Acknowledgement", delivery.ack_target_days, delivery.acknowledged_at, "Acknowledged"),
        ("Reply", delivery.reply_target_days, delivery.replied_at, "Replied"),
    ):
        status = workdays.deadline_status(delivery.delivered_on, target, today, delivery.nation)
        if done_at is not None:
            lines.append(
                ClockLine(what, f"{verb} on {_long_date(uk_date(done_at))}", False, True, None)
            )
        else:
            lines.append(ClockLine(what, status.label, status.is_overdue, False, status.due_on))
    return lines


# --- closing and creating --------------------------------------------------------------


def close_for_delivery(session: Session, actor: Membership, campaign: Campaign) -> bool:
    """Close a collecting campaign so its final letter can be made; returns whether it
    closed it. A campaign already closed (or later) is left as it is."""
    require_editor(actor)
    if campaign.state_enum is CampaignState.COLLECTING:
        campaigns.close_campaign(session, actor, campaign)
        return True
    check_deliverable(campaign)
    return False


def _new_delivery(
    session: Session,
    settings: Settings,
    campaign: Campaign,
    *,
    method: DeliveryMethod,
    status: DeliveryStatus,
    key: str,
    actor_id: int | None,
    to_email: str = "",
    document: Document | None = None,
) -> Delivery:
    from web.mail import make_message_id

    recipient = campaign_recipient(session, campaign)
    delivery = Delivery(
        collective_id=campaign.collective_id,
        campaign_id=campaign.id,
        recipient_id=recipient.id if recipient is not None else None,
        recipient_name=recipient_name(campaign, recipient),
        method=method.value,
        status=status.value,
        idempotency_key=key,
        to_email=to_email,
        postal_address=recipient.postal_address if recipient is not None else "",
        document_id=document.id if document is not None else None,
        message_id=make_message_id(),
        created_by_id=actor_id,
    )
    _copy_targets(delivery, recipient)
    placeholder_secrets(delivery)
    session.add(delivery)
    session.flush()
    issue_secrets(settings, delivery)
    session.flush()
    return delivery


def _copy_targets(delivery: Delivery, recipient: Recipient | None) -> None:
    if recipient is None:
        delivery.ack_target_days = workdays.DEFAULT_ACKNOWLEDGEMENT_TARGET
        delivery.reply_target_days = workdays.DEFAULT_REPLY_TARGET
        delivery.nation = "england-and-wales"
        delivery.escalation_email = ""
        return
    delivery.ack_target_days = recipient.ack_target_days
    delivery.reply_target_days = recipient.reply_target_days
    delivery.nation = recipient.nation or "england-and-wales"
    delivery.escalation_email = recipient.escalation_email or ""


def _existing(session: Session, campaign: Campaign, key: str) -> Delivery | None:
    found = find_by_key(session, key)
    if found is not None and found.campaign_id != campaign.id:
        raise DeliveryError("This form has expired. Please reload the page and try again.")
    return found


def reviewed_document(
    session: Session, settings: Settings, campaign: Campaign, document_id: int | None
) -> Document:
    """The final PDF of the letter as it stands, which must be the one the organiser
    reviewed (`document_id`, from the review page); DeliveryError otherwise."""
    document = final_document(session, settings, campaign)
    if document is None:
        raise DeliveryError("Make the final PDF before sending: the letter has no final PDF yet.")
    if document_id is not None and document.id != document_id:
        raise DeliveryError(
            "The letter's PDF has changed since you reviewed it. Please review the new PDF."
        )
    return document


def create_email_delivery(
    session: Session,
    settings: Settings,
    actor: Membership,
    campaign: Campaign,
    *,
    to_email: str,
    key: str,
    document_id: int | None,
) -> Delivery:
    """Commit-ready: a pending email delivery of `document_id` (which must be the final
    PDF of the letter as it stands) and its send job, queued after commit. The same key
    twice (a double click) returns the first delivery and queues nothing more."""
    require_editor(actor)
    key = check_key(key)
    existing = _existing(session, campaign, key)
    if existing is not None:
        return existing
    check_deliverable(campaign)
    address = clean_email(to_email)
    document = reviewed_document(session, settings, campaign, document_id)
    delivery = _new_delivery(
        session,
        settings,
        campaign,
        method=DeliveryMethod.EMAIL,
        status=DeliveryStatus.PENDING,
        key=key,
        actor_id=actor.user_id,
        to_email=address,
        document=document,
    )
    queue_send(session, delivery)
    return delivery


PRINT_PACK_JOB = "workers.jobs.delivery.make_print_pack"


def queue_send(session: Session, delivery: Delivery) -> None:
    enqueue_job(
        session,
        SEND_JOB,
        payload={"delivery_id": delivery.id},
        collective_id=delivery.collective_id,
    )


def schedule_delivery(
    session: Session,
    settings: Settings,
    actor: Membership,
    campaign: Campaign,
    *,
    to_email: str,
    key: str,
    on_date: date | None,
    at_target: bool,
    today: date | None = None,
) -> Delivery:
    """A scheduled email delivery: on `on_date`, or when the signature target is reached.
    The campaign keeps collecting until then; the sweep closes it and sends."""
    require_editor(actor)
    key = check_key(key)
    existing = _existing(session, campaign, key)
    if existing is not None:
        return existing
    if campaign.state_enum not in (CampaignState.COLLECTING, *DELIVERABLE):
        raise DeliveryError("Publish the campaign before scheduling its delivery.")
    address = clean_email(to_email)
    today = today or uk_date(utcnow())
    if at_target:
        if not campaign.signature_target:
            raise DeliveryError(
                "This campaign has no signature target. Set one in the campaign's settings, "
                "or choose a date."
            )
        on_date = None
    elif on_date is None:
        raise DeliveryError("Choose the date to deliver the letter.")
    else:
        check_schedule_date(on_date, today)
    delivery = _new_delivery(
        session,
        settings,
        campaign,
        method=DeliveryMethod.EMAIL,
        status=DeliveryStatus.SCHEDULED,
        key=key,
        actor_id=actor.user_id,
        to_email=address,
    )
    delivery.scheduled_for = on_date
    delivery.send_at_target = at_target
    when = (
        f"when the campaign reaches {campaign.signature_target:,} signatures"
        if at_target
        else f"on {_long_date(on_date)}"  # type: ignore[arg-type]
    )
    record_event(
        session,
        delivery,
        EventKind.SCHEDULED,
        f"Delivery by email to {address} scheduled {when}.",
        actor_id=actor.user_id,
        scheduled_for=on_date.isoformat() if on_date else None,
        send_at_target=at_target,
    )
    return delivery


def cancel_scheduled(session: Session, actor: Membership, delivery: Delivery) -> None:
    require_editor(actor)
    if delivery.status != DeliveryStatus.SCHEDULED.value:
        raise DeliveryError("Only a scheduled delivery can be cancelled.")
    delivery.status = DeliveryStatus.CANCELLED.value
    delivery.last_error = ""
    session.flush()


def prepare_postal_delivery(
    session: Session,
    settings: Settings,
    actor: Membership,
    campaign: Campaign,
    *,
    key: str,
    document_id: int | None,
) -> Delivery:
    """A postal delivery waiting for its posting date (status pending; no job sends it)."""
    require_editor(actor)
    key = check_key(key)
    existing = _existing(session, campaign, key)
    if existing is not None:
        return existing
    check_deliverable(campaign)
    document = reviewed_document(session, settings, campaign, document_id)
    delivery = _new_delivery(
        session,
        settings,
        campaign,
        method=DeliveryMethod.POST,
        status=DeliveryStatus.PENDING,
        key=key,
        actor_id=actor.user_id,
        document=document,
    )
    queue_print_pack(session, delivery)
    return delivery


def record_posting(
    session: Session,
    actor: Membership,
    campaign: Campaign,
    delivery: Delivery,
    *,
    posted_on: date,
    tracking: str,
    today: date | None = None,
) -> Delivery:
    """The organiser posted the letter on `posted_on`: the delivery is sent, the clock
    starts from that day."""
    require_editor(actor)
    if delivery.method != DeliveryMethod.POST.value:
        raise DeliveryError("Only a postal delivery has a posting date.")
    if delivery.status != DeliveryStatus.PENDING.value:
        raise DeliveryError("The posting of this letter has already been recorded.")
    today = today or uk_date(utcnow())
    if posted_on > today:
        raise DeliveryError("The posting date cannot be in the future.")
    if campaign.published_at is not None and posted_on < uk_date(campaign.published_at):
        raise DeliveryError("The posting date cannot be before the campaign was published.")
    delivery.tracking_reference = clean_tracking(tracking)
    delivery.status = DeliveryStatus.SENT.value
    delivery.sent_at = utcnow()
    delivery.delivered_on = posted_on
    _copy_targets(delivery, campaign_recipient(session, campaign))
    summary = f"Posted on {_long_date(posted_on)}"
    if delivery.tracking_reference:
        summary += f" (tracking reference {delivery.tracking_reference})"
    record_event(
        session,
        delivery,
        EventKind.POSTED,
        summary + ".",
        actor_id=actor.user_id,
        posted_on=posted_on.isoformat(),
        tracking_reference=delivery.tracking_reference,
    )
    advance_campaign(campaign, CampaignState.DELIVERED)
    session.flush()
    notify_signers(session, delivery, Milestone.DELIVERED)
    return delivery


# --- the response link -----------------------------------------------------------------


def revoke_link(session: Session, actor: Membership, delivery: Delivery) -> None:
    require_editor(actor)
    if delivery.response_token_revoked_at is not None:
        raise DeliveryError("The response link has already been revoked.")
    delivery.response_token_revoked_at = utcnow()
    record_event(
        session,
        delivery,
        EventKind.LINK_REVOKED,
        "The response link was revoked; it no longer opens the response page.",
        actor_id=actor.user_id,
    )


def issue_new_link(
    session: Session, settings: Settings, actor: Membership, delivery: Delivery
) -> str:
    """A new response link (the old one stops working); returns its full URL."""
    require_editor(actor)
    if delivery.status in (DeliveryStatus.CANCELLED.value, DeliveryStatus.FAILED.value):
        raise DeliveryError("This delivery was not sent, so it has no response link to renew.")
    reissue_link(settings, delivery)
    if delivery.method == DeliveryMethod.POST.value:
        queue_print_pack(session, delivery)  # the cover sheet prints the link
    record_event(
        session,
        delivery,
        EventKind.LINK_REISSUED,
        "A new response link was issued; the previous one no longer works.",
        actor_id=actor.user_id,
    )
    return response_url(settings, delivery)


# --- sending ---------------------------------------------------------------------------


def subject_for(campaign: Campaign) -> str:
    prefix = "Meeting request" if campaign.kind == CampaignKind.MEETING_REQUEST else "Open letter"
    title = " ".join(campaign.title.split())
    return f"{prefix}: {title}"


def attachment_name(campaign: Campaign) -> str:
    return f"{campaign.slug}-letter.pdf"


def cover_context(
    session: Session, settings: Settings, delivery: Delivery, campaign: Campaign
) -> dict[str, object]:
    from web.signatures.services import verified_count

    collective = session.get(Collective, campaign.collective_id)
    document = session.get(Document, delivery.document_id) if delivery.document_id else None
    return {
        "settings": settings,
        "delivery": delivery,
        "campaign": campaign,
        "collective": collective,
        "document": document,
        "signatories": verified_count(session, campaign),
        "asks": list(campaign.asks or []),
        "is_meeting": campaign.kind == CampaignKind.MEETING_REQUEST,
        "response_url": response_url(settings, delivery),
        "reply_address": reply_address(settings, delivery),
        "verify_url": pdf.verify_url(settings),
        "subject": subject_for(campaign),
    }


def build_delivery_message(
    session: Session, settings: Settings, delivery: Delivery, campaign: Campaign, data: bytes
) -> EmailMessage:
    context = cover_context(session, settings, delivery, campaign)
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = delivery.to_email
    msg["Reply-To"] = reply_address(settings, delivery)
    msg["Subject"] = subject_for(campaign)
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = delivery.message_id
    msg.set_content(render_template("emails/delivery_letter.txt", **context))
    msg.add_alternative(render_template("emails/delivery_letter.html", **context), subtype="html")
    msg.add_attachment(
        data, maintype="application", subtype="pdf", filename=attachment_name(campaign)
    )
    return msg


def lock_delivery(session: Session, delivery_id: int) -> Delivery | None:
    return session.scalar(
        select(Delivery)
        .where(Delivery.id == delivery_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def mark_sent(session: Session, delivery: Delivery, campaign: Campaign, when: datetime) -> None:
    delivery.status = DeliveryStatus.SENT.value
    delivery.sent_at = when
    delivery.delivered_on = uk_date(when)
    delivery.next_attempt_at = None
    delivery.last_error = ""
    _copy_targets(delivery, campaign_recipient(session, campaign))
    record_event(
        session,
        delivery,
        EventKind.DELIVERED,
        f"Delivered by email to {delivery.to_email}.",
        actor_label="Chorus",
        message_id=delivery.message_id,
        attempts=delivery.attempts,
    )
    advance_campaign(campaign, CampaignState.DELIVERED)
    session.flush()
    notify_signers(session, delivery, Milestone.DELIVERED)


def _fail(session: Session, delivery: Delivery, message: str) -> None:
    delivery.status = DeliveryStatus.FAILED.value
    delivery.last_error = message[:2000]
    delivery.next_attempt_at = None
    record_event(
        session,
        delivery,
        EventKind.SEND_FAILED,
        f"The mail server refused the letter: {message}"[:1000],
        actor_label="Chorus",
        server_message=message[:2000],
    )


def send_delivery_now(
    session: Session, settings: Settings, delivery_id: int, now: datetime | None = None
) -> str:
    """Send one pending email delivery (see the module docstring). Idempotent; flushes
    (the job commits). Returns what happened: "sent", "deferred", "failed" or "skipped".
    The session's tenant must be the delivery's collective."""
    delivery = lock_delivery(session, delivery_id)
    if (
        delivery is None
        or delivery.status != DeliveryStatus.PENDING.value
        or delivery.method != DeliveryMethod.EMAIL.value
    ):
        return "skipped"
    campaign = session.get(Campaign, delivery.campaign_id)
    document = session.get(Document, delivery.document_id) if delivery.document_id else None
    if campaign is None or document is None:
        _fail(session, delivery, "The letter's PDF is no longer available; nothing was sent.")
        return "failed"
    message = build_delivery_message(
        session, settings, delivery, campaign, pdf.document_bytes(session, document)
    )
    [outcome] = send_each(settings, [message])
    now = now or utcnow()
    delivery.attempts += 1
    if outcome is None:
        mark_sent(session, delivery, campaign, now)
        session.flush()
        return "sent"
    if isinstance(outcome, PermanentMailError):
        _fail(session, delivery, str(outcome))
        session.flush()
        return "failed"
    delivery.last_error = str(outcome)[:2000]
    if delivery.attempts >= MAX_ATTEMPTS:
        _fail(session, delivery, f"Gave up after {delivery.attempts} attempts: {outcome}")
        session.flush()
        return "failed"
    pause = BACKOFF_SECONDS[min(delivery.attempts, len(BACKOFF_SECONDS)) - 1]
    delivery.next_attempt_at = now + timedelta(seconds=pause)
    record_event(
        session,
        delivery,
        EventKind.SEND_DEFERRED,
        f"The mail server asked us to try again later ({outcome}). Next attempt in "
        f"{_duration(pause)}."[:1000],
        actor_label="Chorus",
        server_message=str(outcome)[:2000],
        attempt=delivery.attempts,
    )
    session.flush()
    return "deferred"


def _duration(seconds: int) -> str:
    if seconds < 3600:
        minutes = seconds // 60
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = seconds // 3600
    return f"{hours} hour{'s' if hours != 1 else ''}"


# --- the sweep (scheduled deliveries and retries) --------------------------------------


@dataclass
class SweepResult:
    retried: int = 0
    started: int = 0
    waiting_for_pdf: int = 0


def _system_actor(session: Session, delivery: Delivery) -> Membership:
    """Whom a render asked for by the sweep is recorded against: the member who
    scheduled the delivery (a transient object, never written)."""
    return Membership(
        collective_id=delivery.collective_id, user_id=delivery.created_by_id, role=Role.ORGANISER
    )


def _due(session: Session, delivery: Delivery, campaign: Campaign, today: date) -> bool:
    from web.signatures.services import verified_count

    if delivery.send_at_target:
        target = campaign.signature_target
        return bool(target) and verified_count(session, campaign) >= int(target or 0)
    return delivery.scheduled_for is not None and delivery.scheduled_for <= today


def start_scheduled(session: Session, settings: Settings, delivery: Delivery, today: date) -> str:
    """One scheduled delivery: "waiting" (not due), "rendering" (due, waiting for the
    final PDF), "queued" (handed to the send job) or "failed"."""
    campaign = session.get(Campaign, delivery.campaign_id)
    if campaign is None:
        return "waiting"
    if campaign.state_enum is CampaignState.CONCLUDED:
        delivery.status = DeliveryStatus.FAILED.value
        delivery.last_error = "The campaign concluded before its scheduled delivery."
        return "failed"
    if not _due(session, delivery, campaign, today):
        return "waiting"
    if campaign.state_enum is CampaignState.COLLECTING:
        campaigns.close_campaign(session, _system_actor(session, delivery), campaign)
        session.flush()
    if campaign.state_enum not in DELIVERABLE:
        return "waiting"  # still a draft: nothing to deliver yet
    document = final_document(session, settings, campaign)
    if document is None:
        latest = latest_final_render(session, campaign)
        if latest is not None and latest.status == RenderStatus.FAILED.value:
            delivery.last_error = f"The final PDF could not be made: {latest.error}"[:2000]
            finished = latest.finished_at or latest.updated_at
            if finished is not None and utcnow() - finished < RENDER_RETRY_AFTER:
                return "rendering"
        if latest is None or latest.status not in UNFINISHED:
            pdf.request_render(
                session, _system_actor(session, delivery), campaign, DocumentKind.FINAL
            )
        return "rendering"
    delivery.document_id = document.id
    delivery.status = DeliveryStatus.PENDING.value
    delivery.last_error = ""
    queue_send(session, delivery)
    return "queued"


def sweep_deliveries(
    session: Session, settings: Settings, now: datetime | None = None, limit: int = 500
) -> SweepResult:
    """For every collective (the caller holds `system_scope`): start scheduled deliveries
    whose date has come or whose campaign reached its target, and hand email deliveries
    whose pause after a temporary refusal is over to a new send job. Rows are claimed
    with SKIP LOCKED, so two sweeps at once share them and a row being sent is left to
    its job. Idempotent. Flushes."""
    from web.tenancy import current_collective_id, set_current_collective

    now = now or utcnow()
    today = uk_date(now)
    result = SweepResult()
    previous = current_collective_id(session)
    rows: Iterable[Delivery] = session.scalars(
        select(Delivery)
        .where(
            Delivery.method == DeliveryMethod.EMAIL.value,
            or_(
                Delivery.status == DeliveryStatus.SCHEDULED.value,
                (Delivery.status == DeliveryStatus.PENDING.value)
                & Delivery.next_attempt_at.is_not(None)
                & (Delivery.next_attempt_at <= now),
            ),
        )
        .order_by(Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(all_collectives=True)
    ).all()
    try:
        for delivery in rows:
            set_current_collective(session, delivery.collective_id)
            if delivery.status == DeliveryStatus.PENDING.value:
                delivery.next_attempt_at = None
                queue_send(session, delivery)
                result.retried += 1
                continue
            outcome = start_scheduled(session, settings, delivery, today)
            if outcome == "queued":
                result.started += 1
            elif outcome == "rendering":
                result.waiting_for_pdf += 1
            session.flush()
    finally:
        set_current_collective(session, previous)
    return result


# --- the postal pack -------------------------------------------------------------------

COVER_TEMPLATE = """<!doctype html>
<html lang="en-GB"><head><meta charset="utf-8"><title>Cover sheet</title>
<style>
@font-face { font-family: "Noto Serif"; src: url("{{ font }}"); }
@page { size: A4; margin: 20mm; }
body { font-family: "Noto Serif", serif; font-size: 11pt; color: #000; line-height: 1.4; }
.addresses { display: flex; justify-content: space-between; margin-bottom: 12mm; }
.block { white-space: pre-line; }
h1 { font-size: 16pt; margin: 0 0 6mm; }
dt { font-weight: bold; margin-top: 3mm; }
dd { margin: 0; word-break: break-all; }
</style></head><body>
<div class="addresses">
  <div><p><strong>From</strong></p><p class="block">{{ sender }}</p>
    <p class="block">{{ sender_address }}</p></div>
  <div><p><strong>To</strong></p><p class="block">{{ recipient }}</p>
    <p class="block">{{ recipient_address }}</p></div>
</div>
<h1>{{ subject }}</h1>
<p>Date: {{ today }}<br>Reference: {{ reference }}</p>
<p>Enclosed is the letter, with its annexes, from {{ sender }}
{% if signatories %}, signed by {{ signatories }} people{% endif %}.</p>
<dl>
  <dt>Reply online (no account needed)</dt><dd>{{ response_url }}</dd>
  <dt>Or reply by email to</dt><dd>{{ reply_address }}</dd>
  <dt>Check this letter is genuine</dt>
  <dd>Go to {{ verify_url }} and enter the fingerprint {{ fingerprint }}</dd>
</dl>
</body></html>
"""


def cover_html(session: Session, settings: Settings, delivery: Delivery) -> str:
    """The cover sheet of a postal delivery as HTML, from a sandboxed, autoescaped
    template over cleaned plain values."""
    from web.pdf.safety import asset_url, clean_text, template_environment

    campaign = session.get(Campaign, delivery.campaign_id)
    document = session.get(Document, delivery.document_id) if delivery.document_id else None
    if campaign is None or document is None:
        raise DeliveryError("The letter's PDF is no longer available.")
    collective = session.get(Collective, campaign.collective_id)
    from web.signatures.services import verified_count

    context = {
        "font": asset_url("fonts/NotoSerif-Regular.ttf"),
        "sender": clean_text(collective.name if collective else ""),
        "sender_address": clean_text(collective.contact_address if collective else ""),
        "recipient": clean_text(delivery.recipient_name),
        "recipient_address": clean_text(delivery.postal_address),
        "subject": clean_text(subject_for(campaign)),
        "today": _long_date(uk_date(utcnow())),
        "reference": f"CH-{campaign.collective_id}-{campaign.id}-{delivery.id}",
        "signatories": f"{verified_count(session, campaign):,}",
        "response_url": response_url(settings, delivery),
        "reply_address": reply_address(settings, delivery),
        "verify_url": pdf.verify_url(settings),
        "fingerprint": document.sha256,
    }
    return template_environment().from_string(COVER_TEMPLATE).render(context)


def build_print_pack(session: Session, settings: Settings, delivery: Delivery) -> bytes:
    """The print-ready PDF of a postal delivery: the one-page cover sheet, rendered in a
    render process (web.pdf.engine.render_html: limits, our own assets only), followed by
    the final letter exactly as stored. Runs in a worker, never in a request.

    The two are joined with pikepdf (qpdf), which copies the letter's pages as they are;
    web/pdf/merge.py cannot be used here because it stamps every page "Page X of Y", and
    the final letter already carries its own stamps (and is the fingerprinted file, which
    the cover sheet names)."""
    import io

    import pikepdf

    from web.pdf.engine import render_html

    html = cover_html(session, settings, delivery)
    document = session.get(Document, delivery.document_id) if delivery.document_id else None
    if document is None:
        raise DeliveryError("The letter's PDF is no longer available.")
    cover = render_html(html).data
    out = io.BytesIO()
    with (
        pikepdf.open(io.BytesIO(cover)) as merged,
        pikepdf.open(io.BytesIO(pdf.document_bytes(session, document))) as letter,
    ):
        merged.pages.extend(letter.pages)
        merged.save(out)
    return out.getvalue()


def stored_print_pack(session: Session, delivery: Delivery) -> bytes | None:
    """The print-ready PDF once a worker has made it, else None."""
    if delivery.print_pdf_sha256 is None:
        return None
    data = session.scalar(select(Delivery.print_pdf).where(Delivery.id == delivery.id))
    return bytes(data) if data is not None else None


def queue_print_pack(session: Session, delivery: Delivery) -> None:
    """(Re)make a postal delivery's print-ready PDF in a worker (after commit)."""
    delivery.print_pdf = None
    delivery.print_pdf_sha256 = None
    delivery.print_pdf_error = ""
    enqueue_job(
        session,
        PRINT_PACK_JOB,
        payload={"delivery_id": delivery.id, "link": bytes(delivery.link_nonce).hex()},
        collective_id=delivery.collective_id,
    )


def make_print_pack(session: Session, settings: Settings, delivery_id: int, link: str) -> str:
    """The job's work: build and store the print-ready PDF, unless the delivery is gone,
    is not postal, or its response link changed since the job was queued (a newer job
    makes the pack with the new link). A render that fails is recorded for the organiser.
    Idempotent: a pack already made for the current link is left alone."""
    from web.pdf.engine import RenderError

    delivery = lock_delivery(session, delivery_id)
    if delivery is None or delivery.method != DeliveryMethod.POST.value:
        return "no such postal delivery"
    if bytes(delivery.link_nonce).hex() != link:
        return "the response link changed since; a newer job makes the pack"
    if delivery.print_pdf_sha256 is not None:
        return "already made"
    try:
        data = build_print_pack(session, settings, delivery)
    except (RenderError, DeliveryError) as exc:
        delivery.print_pdf_error = str(exc)[:2000]
        return f"failed: {exc}"
    delivery.print_pdf = data
    delivery.print_pdf_sha256 = hashlib.sha256(data).hexdigest()
    delivery.print_pdf_error = ""
    session.flush()
    return f"made ({len(data):,} bytes)"
