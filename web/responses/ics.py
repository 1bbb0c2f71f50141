"""iCalendar (.ics) invitations for agreed meetings, built with the `icalendar` package.

One VEVENT per meeting. Its UID (`Meeting.ics_uid`) never changes, and SEQUENCE is the
meeting's `ics_sequence`, bumped on every change, so a calendar updates the event it
already holds instead of adding a second one. METHOD:REQUEST invites (or re-invites
after a change of time); METHOD:CANCEL with the same UID removes the event when the
department later declines or proposes other times.

Times are written in UTC (`DTSTART:20260303T100000Z`): every calendar converts them to
its own zone, and no VTIMEZONE block is needed. Text values are plain text: control
characters are removed here and `icalendar` escapes the rest (commas, semicolons,
line breaks) and folds long lines.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime

from icalendar import Calendar, Event, vCalAddress, vText

PRODID = "-//Chorus//Meetings//EN"
CONTENT_TYPE = "text/calendar"


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    role: str = "REQ-PARTICIPANT"


@dataclass(frozen=True)
class Invitation:
    uid: str
    sequence: int
    starts_at: datetime
    ends_at: datetime
    summary: str
    description: str
    location: str
    organiser: Person
    attendees: list[Person] = field(default_factory=list)
    url: str = ""
    method: str = "REQUEST"  # or "CANCEL"


def clean(value: str, limit: int = 5000) -> str:
    """Plain text for a calendar property: no control characters but line breaks."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    kept = "".join(
        ch for ch in value if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf")
    )
    return kept[:limit]


def _address(person: Person, *, attendee: bool) -> vCalAddress:
    address = vCalAddress(f"mailto:{person.email}")
    if person.name:
        address.params["CN"] = vText(clean(person.name, 200).replace("\n", " "))
    if attendee:
        address.params["ROLE"] = vText(person.role)
        address.params["PARTSTAT"] = vText("ACCEPTED" if person.role == "CHAIR" else "NEEDS-ACTION")
        address.params["RSVP"] = vText("FALSE")
    return address


def build_calendar(invitation: Invitation, *, stamp: datetime | None = None) -> bytes:
    """The .ics file for one invitation (or cancellation), as bytes (UTF-8, CRLF)."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", invitation.method)
    event = Event()
    event.add("uid", invitation.uid)
    event.add("sequence", invitation.sequence)
    event.add("dtstamp", (stamp or datetime.now(UTC)).astimezone(UTC))
    event.add("dtstart", invitation.starts_at.astimezone(UTC))
    event.add("dtend", invitation.ends_at.astimezone(UTC))
    event.add("summary", clean(invitation.summary, 300).replace("\n", " "))
    event.add("description", clean(invitation.description))
    if invitation.location:
        event.add("location", clean(invitation.location, 300).replace("\n", " "))
    if invitation.url:
        event.add("url", invitation.url)
    event.add("status", "CANCELLED" if invitation.method == "CANCEL" else "CONFIRMED")
    event.add("organizer", _address(invitation.organiser, attendee=False))
    for person in invitation.attendees:
        event.add("attendee", _address(person, attendee=True), encode=False)
    calendar.add_component(event)
    return calendar.to_ical()


def content_type(method: str) -> str:
    return f"{CONTENT_TYPE}; method={method}; charset=utf-8"
