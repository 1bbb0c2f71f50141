"""Meeting requests answered on the response page: accept a proposed time (both sides
get an iCalendar invitation with the right UID, time and attendees), propose other
times, decline with a reason; the reminder two days before (once, however often the
job runs); and the organiser's record of the outcome, published on request."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from icalendar import Calendar
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import Mailbox, form_post
from tests.factories import login
from tests.test_response_page import (
    World,
    assert_private,
    delivery_of,
    make_world,
    responses,
    text_of,
    uk_slot,
    uk_today,
)
from web.accounts.models import User
from web.campaigns.models import Campaign
from web.db import utcnow
from web.delivery.models import DeliveryEvent
from web.outbox import OutboxMessage
from web.responses import meetings
from web.responses.models import Meeting
from web.tenancy import set_current_collective, system_scope
from workers.jobs.meetings import send_meeting_reminders

OFFICIAL = "sam.official@dwp.gov.uk"
SOON = uk_today() + timedelta(days=10)
WINDOW = uk_today() + timedelta(days=20)


@pytest.fixture
def world(session: Session, app: Flask) -> World:
    return make_world(session, app, kind="meeting_request")


def meeting_of(session: Session, world: World) -> Meeting | None:
    set_current_collective(session, world.collective_id)
    session.expire_all()
    return session.scalar(select(Meeting).where(Meeting.delivery_id == world.delivery_id))


def accept(client: FlaskClient, world: World, **overrides: Any) -> Any:
    data = {
        "accept-slot": "0",
        "accept-name": "Sam Official",
        "accept-role": "Private Secretary",
        "accept-email": OFFICIAL,
    }
    data.update(overrides)
    return form_post(client, world.path, data, action=f"{world.path}/meeting/accept")


def calendar_in(msg: EmailMessage) -> Calendar:
    parts = [p for p in msg.iter_attachments() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1, f"no calendar attached to {msg['Subject']}"
    data = parts[0].get_content()
    return Calendar.from_ical(data if isinstance(data, bytes) else data.encode())


def event_of(calendar: Calendar) -> Any:
    [event] = calendar.walk("VEVENT")
    return event


def uk(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=meetings.UK)


def user_named(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(User.email == email))
    assert user is not None
    return user


# --- reading proposed times ----------------------------------------------------------------


def test_proposed_times_are_read_from_common_uk_forms() -> None:
    today = date(2026, 3, 1)
    assert meetings.parse_when("Tuesday 3 March 2026, 10:00-11:30", today)[1:] == (
        uk(date(2026, 3, 3), 10),
        uk(date(2026, 3, 3), 11, 30),
    )
    assert meetings.parse_when("3/3/2026 at 2pm", today)[1:] == (
        uk(date(2026, 3, 3), 14),
        uk(date(2026, 3, 3), 15),
    )
    assert meetings.parse_when("2026-07-14 09.30 to 10.15", today)[1:] == (
        uk(date(2026, 7, 14), 9, 30),
        uk(date(2026, 7, 14), 10, 15),
    )
    # No year: the next such day. A window: a date but no time. Nothing: nothing.
    assert meetings.parse_when("12th January, 10:00", today)[0] == date(2027, 1, 12)
    assert meetings.parse_when("Any morning in the week of 9 March", today) == (
        date(2026, 3, 9),
        None,
        None,
    )
    assert meetings.parse_when("Whenever suits the Minister", today) == (None, None, None)
    assert meetings.parse_when("31 February 2026, 10:00", today) == (None, None, None)
    # Summer time: 10:00 in London in July is 09:00 UTC.
    start = meetings.parse_when("14 July 2026 10:00", today)[1]
    assert start is not None
    assert start.utcoffset() == timedelta(hours=1)


def test_only_future_times_are_offered(client: FlaskClient, world: World) -> None:
    page = text_of(client.get(world.path))
    assert uk_slot(SOON) in page
    assert "Any morning in the week of" in page
    past = uk_slot(uk_today() - timedelta(days=3), "14:00-15:00")
    assert 'value="2"' not in page.split('id="accept-title"')[1].split("</form>")[0]
    assert past in page  # still shown in the letter itself
    # Choosing the past time anyway (a forged form) is refused.
    answer = accept(client, world, **{"accept-slot": "2"})
    assert answer.status_code == 422
    assert "Choose one of the proposed times" in text_of(answer)


# --- accepting --------------------------------------------------------------------------------


def test_accepting_a_time_sends_both_sides_the_same_invitation(
    session: Session, client: FlaskClient, world: World, mailbox: Mailbox, work: Any
) -> None:
    answer = accept(client, world)
    assert answer.status_code == 303, text_of(answer)
    assert_private(answer)
    page = text_of(client.get(world.path))
    assert "the meeting is agreed for" in page
    assert f"{world.path}/meeting.ics" in page

    meeting = meeting_of(session, world)
    assert meeting is not None
    assert meeting.status == "accepted"
    assert meeting.starts_at == uk(SOON, 10)
    assert meeting.ends_at == uk(SOON, 11)
    assert meeting.location == "Caxton House, London"  # the place the letter proposed
    assert (meeting.official_name, meeting.official_email) == ("Sam Official", OFFICIAL)
    assert meeting.ics_sequence == 0
    assert meeting.invitation_sent_at is not None
    campaign = session.get(Campaign, world.campaign_id)
    assert campaign is not None
    assert campaign.state == "meeting_scheduled"
    [response] = responses(session, world)
    assert (response.kind, response.channel) == ("substantive", "page")
    assert delivery_of(session, world).replied_at is not None
    kinds = list(
        session.scalars(
            select(DeliveryEvent.kind).where(DeliveryEvent.delivery_id == world.delivery_id)
        )
    )
    assert "meeting_accepted" in kinds

    work()
    for address in (OFFICIAL, world.owner_email, world.organiser_email):
        [msg] = mailbox.to(address)
        assert "Meeting agreed" in str(msg["Subject"])
        assert "To discuss the backlog" in Mailbox.text_of(msg)
        calendar = calendar_in(msg)
        assert str(calendar["METHOD"]) == "REQUEST"
        event = event_of(calendar)
        assert str(event["UID"]) == meeting.ics_uid
        assert int(event["SEQUENCE"]) == 0
        assert event.decoded("DTSTART") == uk(SOON, 10)
        assert event.decoded("DTEND") == uk(SOON, 11)
        attendees = {str(a).lower() for a in event.get("ATTENDEE")}
        assert attendees == {
            f"mailto:{OFFICIAL}",
            f"mailto:{world.owner_email}",
            f"mailto:{world.organiser_email}",
        }
        assert "To discuss the backlog" in str(event["DESCRIPTION"])
        assert f"/{world.collective_slug}/fair-pip" in str(event["DESCRIPTION"])
        assert str(event["LOCATION"]) == "Caxton House, London"
        assert "no-reply@chorus.localhost" in str(event["ORGANIZER"]).lower()
    assert mailbox.to(world.viewer_email) == []
    # Once sent, the outbox keeps no copy of the attachment (only what identifies it).
    with system_scope(session):
        sent = session.scalars(
            select(OutboxMessage).where(OutboxMessage.payload["to"].astext == OFFICIAL)
        ).all()
    assert sent
    assert all(row.done_at is not None and "attachments" not in row.payload for row in sent)

    # The download on the response page is the same event.
    download = client.get(f"{world.path}/meeting.ics")
    assert download.status_code == 200
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert_private(download)
    assert str(event_of(Calendar.from_ical(download.data))["UID"]) == meeting.ics_uid


def test_a_window_needs_an_exact_date_and_time(
    session: Session, client: FlaskClient, world: World
) -> None:
    answer = accept(client, world, **{"accept-slot": "1"})
    assert answer.status_code == 422
    assert "is a window, not an exact time" in text_of(answer)
    answer = accept(client, world, **{"accept-slot": "1", "accept-day": WINDOW.isoformat()})
    assert answer.status_code == 422
    assert "Enter the time the meeting starts" in text_of(answer)
    assert meeting_of(session, world) is None
    answer = accept(
        client,
        world,
        **{
            "accept-slot": "1",
            "accept-day": WINDOW.isoformat(),
            "accept-start": "09:30",
            "accept-end": "10:15",
            "accept-location": "https://meet.example.gov.uk/j/123",
        },
    )
    assert answer.status_code == 303, text_of(answer)
    meeting = meeting_of(session, world)
    assert meeting is not None
    assert (meeting.starts_at, meeting.ends_at) == (uk(WINDOW, 9, 30), uk(WINDOW, 10, 15))
    assert meeting.location == "https://meet.example.gov.uk/j/123"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"accept-slot": ""}, "Choose one of the proposed times"),
        ({"accept-slot": "7"}, "Choose one of the proposed times"),
        ({"accept-email": ""}, "Enter your email address"),
        ({"accept-email": "sam@"}, "correct format"),
        ({"accept-name": ""}, "Enter your name"),
        ({"accept-location": "javascript:alert(1)"}, "must start with https://"),
        ({"accept-location": "http://meet.example.org/x"}, "must start with https://"),
        ({"accept-location": "<script>x</script>"}, "without &lt; or &gt;"),
        ({"accept-location": "x" * 301}, "300 characters or fewer"),
        ({"accept-day": "2020-01-01", "accept-start": "10:00"}, "already passed"),
        (
            {"accept-start": "11:00", "accept-end": "10:00", "accept-day": SOON.isoformat()},
            "end after it starts",
        ),
        ({"accept-start": "25:00"}, "Not a valid time"),
    ],
)
def test_accepting_refuses_bad_answers(
    session: Session, client: FlaskClient, world: World, fields: dict[str, str], message: str
) -> None:
    answer = accept(client, world, **fields)
    assert answer.status_code == 422
    assert_private(answer)
    assert message in text_of(answer)
    assert meeting_of(session, world) is None
    assert responses(session, world) == []


def test_changing_an_accepted_time_bumps_the_sequence_and_declining_cancels_it(
    session: Session, client: FlaskClient, world: World, mailbox: Mailbox, work: Any
) -> None:
    assert accept(client, world).status_code == 303
    first = meeting_of(session, world)
    assert first is not None
    uid = first.ics_uid
    answer = accept(
        client,
        world,
        **{"accept-day": SOON.isoformat(), "accept-start": "14:00", "accept-end": "15:00"},
    )
    assert answer.status_code == 303
    moved = meeting_of(session, world)
    assert moved is not None
    assert (moved.ics_uid, moved.ics_sequence, moved.starts_at) == (uid, 1, uk(SOON, 14))
    work()
    latest = mailbox.to(OFFICIAL)[-1]
    event = event_of(calendar_in(latest))
    assert (str(event["UID"]), int(event["SEQUENCE"])) == (uid, 1)
    assert event.decoded("DTSTART") == uk(SOON, 14)

    mailbox.clear()
    declined = form_post(
        client,
        world.path,
        {
            "decline-reason": "The Minister is unavailable.",
            "decline-name": "Sam Official",
            "decline-email": OFFICIAL,
        },
        action=f"{world.path}/meeting/decline",
    )
    assert declined.status_code == 303
    meeting = meeting_of(session, world)
    assert meeting is not None
    assert (meeting.status, meeting.ics_sequence) == ("declined", 2)
    work()
    for address in (OFFICIAL, world.owner_email):
        [msg] = [m for m in mailbox.to(address) if str(m["Subject"]).startswith("Cancelled")]
        calendar = calendar_in(msg)
        assert str(calendar["METHOD"]) == "CANCEL"
        event = event_of(calendar)
        assert (str(event["UID"]), int(event["SEQUENCE"])) == (uid, 2)


# --- other times and declining ---------------------------------------------------------------


def alternatives(client: FlaskClient, world: World, **fields: str) -> Any:
    data = {"alt-name": "Sam Official", "alt-note": "Mornings are best.", **fields}
    return form_post(client, world.path, data, action=f"{world.path}/meeting/alternatives")


def test_proposing_other_times_is_validated_and_recorded_as_a_holding_reply(
    session: Session, client: FlaskClient, world: World, mailbox: Mailbox, work: Any
) -> None:
    later = uk_today() + timedelta(days=30)
    refused = [
        ({}, "Propose at least one other time"),
        ({"alt-time1-day": later.isoformat(), "alt-time1-start": "10:00"}, "Give a date"),
        (
            {"alt-time1-day": "2020-02-02", "alt-time1-start": "10:00", "alt-time1-end": "11:00"},
            "already passed",
        ),
        (
            {
                "alt-time1-day": later.isoformat(),
                "alt-time1-start": "11:00",
                "alt-time1-end": "10:00",
            },
            "end after it starts",
        ),
        (
            {"alt-time1-day": "not a date", "alt-time1-start": "10:00", "alt-time1-end": "11:00"},
            "Not a valid date",
        ),
        (
            {
                "alt-name": "",
                "alt-time1-day": later.isoformat(),
                "alt-time1-start": "10:00",
                "alt-time1-end": "11:00",
            },
            "Enter your name",
        ),
    ]
    for fields, message in refused:
        answer = alternatives(client, world, **fields)
        assert answer.status_code == 422, fields
        assert message in text_of(answer), (fields, message)
    assert meeting_of(session, world) is None

    answer = alternatives(
        client,
        world,
        **{
            "alt-time1-day": later.isoformat(),
            "alt-time1-start": "10:00",
            "alt-time1-end": "11:00",
            "alt-time3-day": (later + timedelta(days=1)).isoformat(),
            "alt-time3-start": "09:00",
            "alt-time3-end": "09:45",
        },
    )
    assert answer.status_code == 303, text_of(answer)
    meeting = meeting_of(session, world)
    assert meeting is not None
    assert meeting.status == "alternatives"
    assert [a["starts_at"] for a in meeting.alternatives] == [
        uk(later, 10).isoformat(),
        uk(later + timedelta(days=1), 9).isoformat(),
    ]
    assert meeting.alternatives[0]["note"] == "Mornings are best."
    [response] = responses(session, world)
    assert response.kind == "holding"
    delivery = delivery_of(session, world)
    assert delivery.acknowledged_at is not None
    assert delivery.replied_at is None
    page = text_of(client.get(world.path))
    assert "You proposed other times" in page
    work()
    [note] = mailbox.to(world.owner_email)
    assert "other meeting times proposed" in str(note["Subject"])
    assert "Mornings are best." in Mailbox.text_of(note)


def test_declining_needs_a_reason(session: Session, client: FlaskClient, world: World) -> None:
    action = f"{world.path}/meeting/decline"
    answer = form_post(client, world.path, {"decline-name": "Sam"}, action=action)
    assert answer.status_code == 422
    assert "Enter a reason" in text_of(answer)
    answer = form_post(
        client,
        world.path,
        {"decline-name": "Sam", "decline-reason": "We are not taking meetings during purdah."},
        action=action,
    )
    assert answer.status_code == 303
    meeting = meeting_of(session, world)
    assert meeting is not None
    assert (meeting.status, meeting.reason) == (
        "declined",
        "We are not taking meetings during purdah.",
    )
    [response] = responses(session, world)
    assert response.kind == "substantive"
    assert "purdah" in text_of(client.get(world.path))


def test_an_open_letter_has_no_meeting_forms(
    session: Session, app: Flask, client: FlaskClient
) -> None:
    letter = make_world(session, app)
    assert "Answer the meeting request" not in text_of(client.get(letter.path))
    answer = form_post(
        client,
        letter.path,
        {"decline-name": "S", "decline-reason": "R"},
        action=f"{letter.path}/meeting/decline",
    )
    assert answer.status_code == 404
    assert client.get(f"{letter.path}/meeting.ics").status_code == 404


# --- reminders --------------------------------------------------------------------------------


def test_the_reminder_is_sent_once_two_days_before(
    session: Session, client: FlaskClient, app: Flask, mailbox: Mailbox, work: Any
) -> None:
    near = make_world(session, app, kind="meeting_request")
    far = make_world(session, app, kind="meeting_request")
    for w in (near, far):
        assert accept(client, w).status_code == 303
    work()
    mailbox.clear()
    near_meeting = meeting_of(session, near)
    assert near_meeting is not None
    near_meeting.starts_at = utcnow() + timedelta(hours=30)
    near_meeting.ends_at = near_meeting.starts_at + timedelta(hours=1)
    session.flush()
    set_current_collective(session, None)

    assert send_meeting_reminders() == 1
    assert send_meeting_reminders() == 0  # a second run (or scheduler) claims nothing
    work()
    for address in (OFFICIAL, near.owner_email, near.organiser_email):
        reminders = [m for m in mailbox.to(address) if "Reminder" in str(m["Subject"])]
        assert len(reminders) == 1, address
    assert mailbox.to(far.owner_email) == []
    meeting = meeting_of(session, near)
    assert meeting is not None
    assert meeting.reminder_sent_at is not None
    far_meeting = meeting_of(session, far)
    assert far_meeting is not None
    assert far_meeting.reminder_sent_at is None


# --- the outcome -------------------------------------------------------------------------------


def test_organiser_records_and_publishes_the_outcome(
    session: Session, app: Flask, client: FlaskClient, other_client: FlaskClient, world: World
) -> None:
    assert accept(client, world).status_code == 303
    organiser = user_named(session, world.organiser_email)
    login(other_client, organiser)
    delivery_page = (
        f"/app/{world.collective_slug}/campaigns/{world.campaign_id}/deliveries/{world.delivery_id}"
    )
    action = f"{delivery_page}/meeting/outcome"
    data = {"notes": "The Minister agreed to review the backlog.", "publish": "y"}

    page = other_client.get(delivery_page)
    assert page.status_code == 200, text_of(page)[:500]
    assert "Meeting agreed" in text_of(page)
    assert "Download the calendar invitation" in text_of(page)
    assert "Record the outcome" not in text_of(page)  # not before the meeting
    early = form_post(other_client, delivery_page, data, action=action)
    assert early.status_code == 422
    assert "has not started yet" in text_of(early)

    meeting = meeting_of(session, world)
    assert meeting is not None
    meeting.starts_at = utcnow() - timedelta(hours=2)
    meeting.ends_at = utcnow() - timedelta(hours=1)
    session.flush()
    assert "Record the outcome" in text_of(other_client.get(delivery_page))
    too_long = form_post(other_client, delivery_page, {"notes": "x" * 10_001}, action=action)
    assert too_long.status_code == 422
    done = form_post(other_client, delivery_page, data, action=action)
    assert done.status_code == 302
    meeting = meeting_of(session, world)
    assert meeting is not None
    assert meeting.status == "held"
    assert meeting.outcome_notes == "The Minister agreed to review the backlog."
    assert meeting.outcome_published_at is not None
    campaign = session.get(Campaign, world.campaign_id)
    assert campaign is not None
    [published] = meetings.published_meeting_outcomes(session, campaign)
    assert published.notes == "The Minister agreed to review the backlog."
    assert published.recipient_name == "Department for Work and Pensions"
    shown = text_of(other_client.get(delivery_page))
    assert "Published on the campaign page" in shown
    ics = other_client.get(f"{delivery_page}/meeting.ics")
    assert ics.status_code == 200
    assert str(event_of(Calendar.from_ical(ics.data))["UID"]) == meeting.ics_uid

    # Unpublishing takes it down; the department can no longer change a held meeting.
    form_post(other_client, delivery_page, {"notes": "Kept private."}, action=action)
    assert meetings.published_meeting_outcomes(session, campaign) == []
    late = form_post(
        client,
        world.path,
        {"decline-name": "Sam", "decline-reason": "Too late"},
        action=f"{world.path}/meeting/decline",
    )
    assert late.status_code == 422
    assert "already taken place" in text_of(late)


def test_viewers_cannot_record_an_outcome(
    session: Session, client: FlaskClient, other_client: FlaskClient, world: World
) -> None:
    assert accept(client, world).status_code == 303
    meeting = meeting_of(session, world)
    assert meeting is not None
    meeting.starts_at = utcnow() - timedelta(hours=2)
    meeting.ends_at = utcnow() - timedelta(hours=1)
    session.flush()
    login(other_client, user_named(session, world.viewer_email))
    delivery_page = (
        f"/app/{world.collective_slug}/campaigns/{world.campaign_id}/deliveries/{world.delivery_id}"
    )
    answer = form_post(
        other_client,
        delivery_page,
        {"notes": "Sneaky", "publish": "y"},
        action=f"{delivery_page}/meeting/outcome",
    )
    assert answer.status_code == 403
    assert meeting_of(session, world).status == "accepted"  # type: ignore[union-attr]
