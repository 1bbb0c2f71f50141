"""Meetings: the department's answer to a meeting request, the invitation, the reminder
and the outcome (issue #6 §3 and §7).

The department answers on the response page, without an account, in one of three ways:

- accept one of the proposed times: the `Meeting` row becomes ACCEPTED with an exact
  start and end, the campaign moves to MEETING_SCHEDULED, and both sides (the official
  and the collective's owners and organisers) receive an iCalendar invitation;
- propose other times (one to three, in UK local time) with a note: ALTERNATIVES;
- decline, with a reason: DECLINED.

A signed-in official answers the same way from the department inbox
(web/responses/department_views.py): the services then take `channel=INBOX` and the
official's `department_account_id`, which go onto the recorded response.

There is one `Meeting` per delivery (a unique constraint). A second answer updates it:
`ics_sequence` goes up, so calendars replace the event they hold (same UID); moving
away from an accepted time sends a cancellation (METHOD:CANCEL) for the old one.

Each answer also counts as a response (`record_response`), so the clock, the timeline
and the campaign's state move as for any reply:
- accepting and declining are SUBSTANTIVE replies: the question the letter asked
  (will you meet us?) has its answer;
- proposing other times is a HOLDING reply: it acknowledges the letter, but the meeting
  is not settled, so the reply clock keeps running until it is.

Proposed times in a letter are free text ("Tuesday 3 March 2026, 10:00-11:00" or "any
morning in the week of 9 March"): `parse_when` reads a date and times from the common
UK ways of writing them. A slot with a known date in the past is not offered; a slot
without an exact time (a window) is offered, and the official then gives the exact
date and time. Services flush, never commit; emails go through the outbox.
"""

from __future__ import annotations

import base64
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from web.campaigns.models import Campaign, CampaignState
from web.collectives.models import Collective, Membership, Role
from web.db import utcnow
from web.delivery.loop import Milestone, notify_signers
from web.delivery.models import Delivery, EventKind
from web.delivery.services import advance_campaign, delivered_version, record_event
from web.emails import send_templated_email
from web.responses import ics
from web.responses.models import Meeting, MeetingStatus, ResponseChannel, ResponseKind
from web.responses.notify import delivery_url, organisers
from web.responses.services import record_response
from web.settings import Settings

UK = ZoneInfo("Europe/London")
DEFAULT_LENGTH = timedelta(hours=1)
MAX_LENGTH = timedelta(hours=8)
MAX_AHEAD = timedelta(days=366)
MAX_ALTERNATIVES = 3
REMINDER_BEFORE = timedelta(hours=48)
MAX_NOTES = 10_000
MAX_LOCATION = 300

MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ],
        1,
    )
    for name in names
}
_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_ISO_DATE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_NUMERIC_DATE = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})\b")
_DAY_MONTH = re.compile(
    rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MONTH})\.?(?:\s+(\d{{4}}))?\b", re.I
)
_MONTH_DAY = re.compile(
    rf"\b({_MONTH})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(\d{{4}}))?\b", re.I
)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")
_TIME = re.compile(r"\b(\d{1,2})(?:[:.](\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?(?![\d/])", re.I)


class MeetingError(ValueError):
    """A rule was broken; the message is safe to show to the person."""


# --- reading proposed times -------------------------------------------------------------


def _date_in(text_: str, today: date) -> tuple[date | None, str]:
    """The first date written in `text_` and the text with it removed."""
    for pattern, order in (
        (_ISO_DATE, "ymd"),
        (_NUMERIC_DATE, "dmy"),
        (_DAY_MONTH, "dMy"),
        (_MONTH_DAY, "Mdy"),
    ):
        match = pattern.search(text_)
        if not match:
            continue
        parts = dict(zip(order, match.groups(), strict=True))
        try:
            month = MONTHS[parts["M"].lower()] if "M" in parts else int(parts["m"])
            day = int(parts["d"])
            raw_year = parts.get("y")
            if raw_year:
                year = int(raw_year) + (2000 if len(raw_year) == 2 else 0)
                found = date(year, month, day)
            else:  # no year: the next such day from today
                found = date(today.year, month, day)
                if found < today:
                    found = date(today.year + 1, month, day)
        except ValueError:
            return None, text_
        return found, text_[: match.start()] + " " + text_[match.end() :]
    return None, text_


def _times_in(text_: str) -> list[time]:
    found: list[time] = []
    for match in _TIME.finditer(text_):
        hours, minutes, meridiem = match.group(1), match.group(2), match.group(3)
        if minutes is None and meridiem is None:
            continue  # a bare number ("week 3") is not a time
        hour, minute = int(hours), int(minutes or 0)
        if meridiem:
            if not 1 <= hour <= 12:
                continue
            pm = meridiem.lower().startswith("p")
            hour = hour % 12 + (12 if pm else 0)
        if hour > 23 or minute > 59:
            continue
        found.append(time(hour, minute))
    return found


def parse_when(when: str, today: date) -> tuple[date | None, datetime | None, datetime | None]:
    """(date, start, end) read from a proposed time: the date if one is written, and
    the start and end (UK time, aware) when times are written too. A single time means
    a meeting of an hour."""
    day, rest = _date_in(when or "", today)
    if day is None:
        return None, None, None
    times = _times_in(rest)
    if not times:
        return day, None, None
    start = datetime.combine(day, times[0], tzinfo=UK)
    end = datetime.combine(day, times[1], tzinfo=UK) if len(times) > 1 else start + DEFAULT_LENGTH
    if end <= start:
        return day, None, None
    return day, start, end


@dataclass(frozen=True)
class ProposedSlot:
    index: int
    when: str
    place: str
    day: date | None
    starts_at: datetime | None
    ends_at: datetime | None

    @property
    def is_exact(self) -> bool:
        return self.starts_at is not None


def proposed_slots(content: dict[str, Any], now: datetime | None = None) -> list[ProposedSlot]:
    """The letter's proposed times that have not passed (a slot whose date or start
    cannot be read is kept: the official gives the exact time)."""
    now = now or utcnow()
    today = now.astimezone(UK).date()
    slots = []
    for index, slot in enumerate(content.get("meeting_slots") or []):
        if not isinstance(slot, dict):
            continue
        when = str(slot.get("when") or "").strip()
        place = str(slot.get("place") or "").strip()
        if not when:
            continue
        day, start, end = parse_when(when, today)
        if start is not None and start <= now:
            continue
        if day is not None and day < today:
            continue
        slots.append(ProposedSlot(index, when, place, day, start, end))
    return slots


def uk_time(moment: datetime) -> str:
    """ "Tuesday 3 March 2026, 10:00" in UK time."""
    local = moment.astimezone(UK)
    return local.strftime("%A %-d %B %Y, %H:%M")


def uk_span(starts_at: datetime, ends_at: datetime | None) -> str:
    if ends_at is None:
        return uk_time(starts_at)
    end = ends_at.astimezone(UK)
    if end.date() == starts_at.astimezone(UK).date():
        return f"{uk_time(starts_at)} to {end.strftime('%H:%M')} (UK time)"
    return f"{uk_time(starts_at)} to {uk_time(ends_at)} (UK time)"


def local_datetime(day: date, at: time) -> datetime:
    """A UK wall-clock time as an aware datetime (Europe/London, summer time included)."""
    return datetime.combine(day, at, tzinfo=UK)


def check_span(starts_at: datetime, ends_at: datetime, now: datetime | None = None) -> None:
    now = now or utcnow()
    if starts_at <= now:
        raise MeetingError("That time has already passed. Choose a time in the future.")
    if starts_at > now + MAX_AHEAD:
        raise MeetingError("Choose a time within the next year.")
    if ends_at <= starts_at:
        raise MeetingError("The meeting must end after it starts.")
    if ends_at - starts_at > MAX_LENGTH:
        raise MeetingError("A meeting can last at most 8 hours.")


def clean_location(value: str) -> str:
    """A place or a video link, as plain text. A link must be https:// (any other
    scheme, javascript: and data: included, is refused); markup is refused."""
    value = " ".join(value.split())
    if len(value) > MAX_LOCATION:
        raise MeetingError(f"The place or link must be {MAX_LOCATION} characters or fewer.")
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in value):
        raise MeetingError("Remove the invisible control characters from the place or link.")
    if "<" in value or ">" in value:
        raise MeetingError("Write the place or link as plain text, without < or >.")
    lower = value.lower()
    if _SCHEME.match(lower) or lower.startswith(("javascript:", "data:", "vbscript:", "www.")):
        if not lower.startswith("https://"):
            raise MeetingError("A video link must start with https://.")
        if not urlsplit(value).hostname or " " in value:
            raise MeetingError("That video link is not a complete https:// address.")
    return value


# --- the meeting row ----------------------------------------------------------------------


def meeting_for(session: Session, delivery: Delivery) -> Meeting | None:
    return session.scalar(select(Meeting).where(Meeting.delivery_id == delivery.id))


def _locked_meeting(session: Session, delivery: Delivery) -> Meeting | None:
    return session.scalar(
        select(Meeting)
        .where(Meeting.delivery_id == delivery.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _new_uid(settings: Settings) -> str:
    host = urlsplit(settings.base_url).hostname or "chorus.localhost"
    return f"meeting-{secrets.token_hex(16)}@{host}"


def _campaign(session: Session, delivery: Delivery) -> Campaign:
    campaign = session.get(Campaign, delivery.campaign_id)
    if campaign is None:
        raise LookupError("No such campaign.")
    return campaign


def _require_answerable(meeting: Meeting | None) -> None:
    if meeting is not None and meeting.status == MeetingStatus.HELD.value:
        raise MeetingError("This meeting has already taken place; its outcome is recorded.")


def _meeting(
    session: Session, settings: Settings, delivery: Delivery
) -> tuple[Meeting, bool, datetime | None, datetime | None]:
    """The delivery's meeting (locked), created if new; whether it was accepted before
    the change, and its accepted time then."""
    meeting = _locked_meeting(session, delivery)
    _require_answerable(meeting)
    if meeting is None:
        meeting = Meeting(
            collective_id=delivery.collective_id,
            delivery_id=delivery.id,
            status=MeetingStatus.ALTERNATIVES.value,
            ics_uid=_new_uid(settings),
            ics_sequence=0,
        )
        session.add(meeting)
        return meeting, False, None, None
    was_accepted = meeting.status == MeetingStatus.ACCEPTED.value
    meeting.ics_sequence += 1
    return meeting, was_accepted, meeting.starts_at, meeting.ends_at


def accept_slot(
    session: Session,
    settings: Settings,
    delivery: Delivery,
    *,
    slot: ProposedSlot,
    starts_at: datetime,
    ends_at: datetime,
    official_name: str,
    official_email: str,
    official_role: str = "",
    location: str = "",
    channel: ResponseChannel = ResponseChannel.PAGE,
    department_account_id: int | None = None,
) -> Meeting:
    """The department accepts one proposed time. Records a SUBSTANTIVE response, the
    MEETING_ACCEPTED event, moves the campaign to MEETING_SCHEDULED, and queues the
    invitation (.ics) to the official and to the collective's owners and organisers.
    Flushes; the emails leave after commit."""
    check_span(starts_at, ends_at)
    place = clean_location(location) if location.strip() else clean_location(slot.place)
    if not official_email:
        raise MeetingError("Enter your email address: the invitation goes there.")
    meeting, _was_accepted, _old_start, _old_end = _meeting(session, settings, delivery)
    meeting.status = MeetingStatus.ACCEPTED.value
    meeting.starts_at = starts_at
    meeting.ends_at = ends_at
    meeting.location = place
    meeting.alternatives = []
    meeting.reason = ""
    meeting.official_name = official_name[:200]
    meeting.official_email = official_email[:254]
    meeting.reminder_sent_at = None  # a new time gets its own reminder
    meeting.invitation_sent_at = utcnow()
    session.flush()
    when = uk_span(starts_at, ends_at)
    response = record_response(
        session,
        delivery,
        kind=ResponseKind.SUBSTANTIVE,
        channel=channel,
        subject="Meeting accepted",
        body_text=f"We accept the meeting on {when}."
        + (f"\nPlace or link: {place}" if place else ""),
        responder_name=official_name,
        responder_role=official_role,
        responder_email=official_email,
        classified_by="responder",
        department_account_id=department_account_id,
    )
    record_event(
        session,
        delivery,
        EventKind.MEETING_ACCEPTED,
        f"Meeting agreed for {when}.",
        actor_label=official_name or "the department",
        meeting_id=meeting.id,
        response_id=response.id,
        slot=slot.when,
        starts_at=starts_at.isoformat(),
        ends_at=ends_at.isoformat(),
        sequence=meeting.ics_sequence,
    )
    advance_campaign(_campaign(session, delivery), CampaignState.MEETING_SCHEDULED)
    notify_signers(session, delivery, Milestone.MEETING_AGREED)
    session.flush()
    queue_invitations(session, settings, delivery, meeting)
    return meeting


def propose_alternatives(
    session: Session,
    settings: Settings,
    delivery: Delivery,
    *,
    times: list[tuple[datetime, datetime]],
    note: str,
    official_name: str,
    official_email: str = "",
    official_role: str = "",
    channel: ResponseChannel = ResponseChannel.PAGE,
    department_account_id: int | None = None,
) -> Meeting:
    """The department proposes one to three other times (a HOLDING response). A time
    accepted before is cancelled in the calendars it was sent to."""
    if not times:
        raise MeetingError("Propose at least one other time.")
    if len(times) > MAX_ALTERNATIVES:
        raise MeetingError(f"Propose at most {MAX_ALTERNATIVES} other times.")
    for start, end in times:
        check_span(start, end)
    meeting, was_accepted, old_start, old_end = _meeting(session, settings, delivery)
    meeting.status = MeetingStatus.ALTERNATIVES.value
    meeting.alternatives = [
        {"starts_at": s.isoformat(), "ends_at": e.isoformat(), "note": note} for s, e in times
    ]
    meeting.reason = ""
    meeting.official_name = official_name[:200]
    meeting.official_email = official_email[:254]
    session.flush()
    listed = "\n".join(f"- {uk_span(s, e)}" for s, e in times)
    response = record_response(
        session,
        delivery,
        kind=ResponseKind.HOLDING,
        channel=channel,
        subject="Other meeting times proposed",
        body_text=f"We propose these other times:\n{listed}" + (f"\n\n{note}" if note else ""),
        responder_name=official_name,
        responder_role=official_role,
        responder_email=official_email,
        classified_by="responder",
        department_account_id=department_account_id,
    )
    record_event(
        session,
        delivery,
        EventKind.MEETING_ALTERNATIVES,
        f"The department proposed {len(times)} other time{'s' if len(times) > 1 else ''}.",
        actor_label=official_name or "the department",
        meeting_id=meeting.id,
        response_id=response.id,
        times=[[s.isoformat(), e.isoformat()] for s, e in times],
    )
    if was_accepted and old_start is not None:
        queue_invitations(
            session, settings, delivery, meeting, cancel=(old_start, old_end or old_start)
        )
    return meeting


def decline_meeting(
    session: Session,
    settings: Settings,
    delivery: Delivery,
    *,
    reason: str,
    official_name: str,
    official_email: str = "",
    official_role: str = "",
    channel: ResponseChannel = ResponseChannel.PAGE,
    department_account_id: int | None = None,
) -> Meeting:
    """The department declines the meeting with a reason (a SUBSTANTIVE response). A
    time accepted before is cancelled in the calendars it was sent to."""
    if not reason.strip():
        raise MeetingError("Give a reason for declining.")
    meeting, was_accepted, old_start, old_end = _meeting(session, settings, delivery)
    meeting.status = MeetingStatus.DECLINED.value
    meeting.reason = reason
    meeting.alternatives = []
    meeting.official_name = official_name[:200]
    meeting.official_email = official_email[:254]
    session.flush()
    response = record_response(
        session,
        delivery,
        kind=ResponseKind.SUBSTANTIVE,
        channel=channel,
        subject="Meeting declined",
        body_text=f"We decline the meeting.\n\n{reason}",
        responder_name=official_name,
        responder_role=official_role,
        responder_email=official_email,
        classified_by="responder",
        department_account_id=department_account_id,
    )
    record_event(
        session,
        delivery,
        EventKind.MEETING_DECLINED,
        "The department declined the meeting.",
        actor_label=official_name or "the department",
        meeting_id=meeting.id,
        response_id=response.id,
    )
    if was_accepted and old_start is not None:
        queue_invitations(
            session, settings, delivery, meeting, cancel=(old_start, old_end or old_start)
        )
    return meeting


# --- the outcome --------------------------------------------------------------------------


def record_outcome(
    session: Session, actor: Membership, delivery: Delivery, *, notes: str, publish: bool
) -> Meeting:
    """After the meeting, an owner or organiser records what happened (status HELD) and
    may publish the notes on the campaign page. Recording again updates the notes;
    unticking "publish" takes them down."""
    if actor.role not in (Role.OWNER, Role.ORGANISER):
        raise PermissionError("Only owners and organisers can record a meeting's outcome.")
    meeting = _locked_meeting(session, delivery)
    if meeting is None or meeting.status not in (
        MeetingStatus.ACCEPTED.value,
        MeetingStatus.HELD.value,
    ):
        raise MeetingError("There is no agreed meeting to record an outcome for.")
    if meeting.starts_at is not None and meeting.starts_at > utcnow():
        raise MeetingError("The meeting has not started yet. Record its outcome afterwards.")
    notes = notes.strip()
    if not notes:
        raise MeetingError("Write what happened at the meeting.")
    if len(notes) > MAX_NOTES:
        raise MeetingError(f"The notes must be {MAX_NOTES:,} characters or fewer.")
    meeting.status = MeetingStatus.HELD.value
    meeting.outcome_notes = notes
    if publish and meeting.outcome_published_at is None:
        meeting.outcome_published_at = utcnow()
    elif not publish:
        meeting.outcome_published_at = None
    session.flush()
    record_event(
        session,
        delivery,
        EventKind.MEETING_OUTCOME,
        "The meeting's outcome was recorded"
        + (" and published on the campaign page." if publish else "."),
        actor_id=actor.user_id,
        actor_label=actor.user.display_name if actor.user else "",
        meeting_id=meeting.id,
        published=publish,
    )
    return meeting


@dataclass(frozen=True)
class PublishedOutcome:
    recipient_name: str
    held_at: datetime | None
    notes: str
    published_at: datetime | None


def published_meeting_outcomes(session: Session, campaign: Campaign) -> list[PublishedOutcome]:
    """The outcomes organisers chose to publish for this campaign's meetings, oldest
    meeting first: for the public campaign page. One query."""
    rows = session.execute(
        select(
            Delivery.recipient_name,
            Meeting.starts_at,
            Meeting.outcome_notes,
            Meeting.outcome_published_at,
        )
        .join(Delivery, Delivery.id == Meeting.delivery_id)
        .where(
            Delivery.campaign_id == campaign.id,
            Meeting.status == MeetingStatus.HELD.value,
            Meeting.outcome_published_at.is_not(None),
        )
        .order_by(Meeting.starts_at, Meeting.id)
    )
    return [
        PublishedOutcome(name, start, notes, published) for name, start, notes, published in rows
    ]


# --- invitations and reminders ------------------------------------------------------------


def campaign_url(settings: Settings, collective: Collective, campaign: Campaign) -> str:
    return f"{settings.base_url}/{collective.slug}/{campaign.slug}"


def invitation_for(
    session: Session,
    settings: Settings,
    delivery: Delivery,
    meeting: Meeting,
    *,
    cancel: tuple[datetime, datetime] | None = None,
) -> ics.Invitation:
    """The calendar entry for an accepted meeting (or the cancellation of `cancel`)."""
    campaign = _campaign(session, delivery)
    collective = session.get(Collective, delivery.collective_id)
    assert collective is not None
    from_name, from_address = parseaddr(settings.mail_from)
    starts_at, ends_at = cancel or (meeting.starts_at, meeting.ends_at)
    if starts_at is None:
        raise MeetingError("This meeting has no agreed time.")
    letter = campaign_url(settings, collective, campaign)
    purpose = _purpose(session, delivery, campaign)
    description = "\n\n".join(
        part
        for part in (
            f"Agenda: {purpose}" if purpose else "",
            f"Requested by {collective.name} in the letter “{campaign.title}”.",
            f"The letter: {letter}",
        )
        if part
    )
    attendees = (
        [ics.Person(meeting.official_name, meeting.official_email)]
        if (meeting.official_email)
        else []
    )
    attendees += [ics.Person(name, email, "CHAIR") for name, email in organisers(session)]
    return ics.Invitation(
        uid=meeting.ics_uid,
        sequence=meeting.ics_sequence,
        starts_at=starts_at,
        ends_at=ends_at or starts_at + DEFAULT_LENGTH,
        summary=f"Meeting: {campaign.title} ({collective.name} and {delivery.recipient_name})",
        description=description,
        location=meeting.location,
        organiser=ics.Person(collective.name or from_name, from_address),
        attendees=attendees,
        url=letter,
        method="CANCEL" if cancel else "REQUEST",
    )


def _purpose(session: Session, delivery: Delivery, campaign: Campaign) -> str:
    version = delivered_version(session, delivery)
    content: dict[str, Any] = version.content if version is not None else {}
    return str(content.get("meeting_purpose") or campaign.meeting_purpose or "").strip()


def calendar_file(
    session: Session, settings: Settings, delivery: Delivery, meeting: Meeting
) -> bytes:
    """The current .ics for an accepted meeting (the download links serve this)."""
    return ics.build_calendar(invitation_for(session, settings, delivery, meeting))


def queue_invitations(
    session: Session,
    settings: Settings,
    delivery: Delivery,
    meeting: Meeting,
    *,
    cancel: tuple[datetime, datetime] | None = None,
) -> int:
    """Queue the invitation (or, with `cancel`, the cancellation of the time accepted
    before) to the official and to each owner and organiser, each with the .ics
    attached. Returns how many emails were queued."""
    invitation = invitation_for(session, settings, delivery, meeting, cancel=cancel)
    data = ics.build_calendar(invitation)
    attachment = {
        "filename": "meeting.ics" if cancel is None else "cancelled-meeting.ics",
        "content_type": ics.content_type(invitation.method),
        "data_b64": base64.b64encode(data).decode(),
    }
    campaign = _campaign(session, delivery)
    subject = (
        f"Cancelled: meeting on {campaign.title}"
        if cancel
        else f"Meeting agreed: {campaign.title}, {uk_time(invitation.starts_at)}"
    )
    return _email_both_sides(
        session,
        settings,
        delivery,
        meeting,
        template="meeting_cancelled" if cancel else "meeting_invitation",
        subject=subject,
        when=uk_span(invitation.starts_at, invitation.ends_at),
        location=invitation.location,
        attachments=[attachment],
    )


def _email_both_sides(
    session: Session,
    settings: Settings,
    delivery: Delivery,
    meeting: Meeting,
    *,
    template: str,
    subject: str,
    when: str,
    location: str,
    attachments: list[dict[str, str]] | None = None,
) -> int:
    """One email to the official and to each owner and organiser (each address once).
    Returns how many were queued."""
    collective = session.get(Collective, delivery.collective_id)
    campaign = _campaign(session, delivery)
    assert collective is not None
    recipients: list[tuple[str, str, bool]] = []
    if meeting.official_email:
        recipients.append((meeting.official_name, meeting.official_email, False))
    recipients += [(name, email, True) for name, email in organisers(session)]
    seen: set[str] = set()
    for name, email, is_organiser in recipients:
        if email.lower() in seen:
            continue
        seen.add(email.lower())
        send_templated_email(
            session,
            settings,
            to=email,
            template=template,
            subject=subject,
            context={
                "name": name,
                "is_organiser": is_organiser,
                "collective": collective,
                "campaign": campaign,
                "delivery": delivery,
                "meeting": meeting,
                "when": when,
                "location": location,
                "purpose": _purpose(session, delivery, campaign),
                "letter_url": campaign_url(settings, collective, campaign),
                "delivery_url": delivery_url(settings, collective, delivery),
            },
            collective_id=delivery.collective_id,
            attachments=attachments,
        )
    return len(seen)


def claim_due_reminders(session: Session, now: datetime | None = None) -> list[tuple[int, int]]:
    """Claim every accepted meeting that starts within 48 hours and has had no reminder:
    (meeting id, collective id) pairs. The claim is one UPDATE ... WHERE
    reminder_sent_at IS NULL RETURNING: a second scheduler running at the same moment
    waits on the row locks, then finds the column set and claims nothing. Run in
    `system_scope` (it spans collectives)."""
    now = now or utcnow()
    rows = session.execute(
        text(
            "UPDATE meetings SET reminder_sent_at = :now "
            "WHERE status = 'accepted' AND reminder_sent_at IS NULL "
            "AND starts_at > :now AND starts_at <= :until "
            "RETURNING id, collective_id"
        ),
        {"now": now, "until": now + REMINDER_BEFORE},
    ).all()
    return [(int(mid), int(cid)) for mid, cid in rows]


def queue_reminder(session: Session, settings: Settings, meeting: Meeting) -> int:
    """Queue the reminder to both sides of one meeting (in its collective)."""
    delivery = session.get(Delivery, meeting.delivery_id)
    if delivery is None or meeting.starts_at is None:
        return 0
    campaign = _campaign(session, delivery)
    return _email_both_sides(
        session,
        settings,
        delivery,
        meeting,
        template="meeting_reminder",
        subject=f"Reminder: meeting on {uk_time(meeting.starts_at)} about {campaign.title}",
        when=uk_span(meeting.starts_at, meeting.ends_at),
        location=meeting.location,
    )
