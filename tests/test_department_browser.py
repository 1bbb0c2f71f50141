"""The department inbox and the public department page in a real browser (Chromium),
with and without JavaScript: an official claims a department, logs in, reads the
letters sent to it by two collectives, acknowledges one and replies to it; the public
sees how the department answers. axe-core finds nothing serious or critical on any
page on the way."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from playwright.sync_api import BrowserContext, Page, expect

from tests.browser import A11y, LiveServer, assert_fits_viewport
from tests.factories import PASSWORD, make_user
from tests.test_department_inbox import (
    deliver,
    grant,
    letter_path,
    make_campaign,
    make_department,
    meeting_letter,
)
from tests.test_response_page import TITLE, uk_slot, uk_today
from tests.test_signing_journey import PHONE, heading
from web.delivery.models import Delivery
from web.http import database
from web.tenancy import set_current_collective


@dataclass(frozen=True)
class Inbox:
    key: str
    official_email: str
    first_id: int  # the newest letter (collective B's)
    first_collective_id: int


def inbox_world(live: LiveServer, *, verified: bool = True) -> Inbox:
    """DWP with letters from two collectives, and an official holding its account;
    committed, so the server thread sees it."""
    with database(live.app).session_scope() as s:
        dwp = make_department(s, "Department for Work and Pensions", ["dwp.gov.uk"])
        a = make_campaign(
            s, live.app, title="Fair PIP assessments", recipient=dwp, collective_name="Claimants"
        )
        b = make_campaign(
            s, live.app, title="Carers allowance now", recipient=dwp, collective_name="Carers"
        )
        deliver(s, live.app, a, dwp, date(2025, 12, 19))
        newest = deliver(s, live.app, b, dwp, date(2025, 12, 23))
        official = make_user(s, live.app, name="Dana Official")
        if verified:
            grant(s, official, dwp)
        return Inbox(dwp.key, official.email, newest.id, newest.collective_id)


def log_in(page: Page, a11y: A11y, email: str, next_path: str, twin: Page | None = None) -> None:
    page.goto(f"/login?next={next_path}")
    expect(heading(page)).to_have_text("Log in")
    check(page, a11y, twin)
    page.get_by_label("Email address", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(re.escape(next_path) + "$"))


def check(page: Page, a11y: A11y, twin: Page | None) -> None:
    if twin is None:
        a11y.check(page)
    else:
        a11y.check_without_scripts(page, twin)


def acknowledged(live: LiveServer, world: Inbox) -> Delivery:
    with database(live.app).session_scope() as s:
        set_current_collective(s, world.first_collective_id)
        delivery = s.get(Delivery, world.first_id)
        assert delivery is not None
        s.expunge(delivery)
        return delivery


def read_and_answer(
    page: Page, a11y: A11y, live: LiveServer, world: Inbox, twin: Page | None = None
) -> None:
    inbox = f"/department/{world.key}/"
    log_in(page, a11y, world.official_email, inbox, twin)
    expect(heading(page)).to_have_text("Letters to Department for Work and Pensions")
    table = page.get_by_role("table", name="Letters sent to Department for Work and Pensions")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table).to_contain_text("Claimants")
    expect(table).to_contain_text("Carers")
    check(page, a11y, twin)

    page.get_by_role("link", name="Carers allowance now").click()
    expect(heading(page)).to_have_text("Carers allowance now")
    expect(page.locator("#letter-status")).to_have_text("Awaiting acknowledgement")
    check(page, a11y, twin)

    page.get_by_role("button", name="Acknowledge receipt").click()
    expect(page.get_by_role("status")).to_contain_text("marked as acknowledged")
    expect(page.locator("#letter-status")).to_have_text("Acknowledged")
    check(page, a11y, twin)
    assert acknowledged(live, world).acknowledged_at is not None

    # A reply with its text left out: the error summary leads to the field.
    page.get_by_label("Your reply", exact=True).fill("")
    page.get_by_role("button", name="Send the reply").click()
    expect(page.locator(".error-summary")).to_contain_text("Enter your reply.")
    check(page, a11y, twin)

    page.get_by_label("Your reply", exact=True).fill("Thank you. We will publish a plan.")
    page.get_by_label("Your role (optional)", exact=True).fill("Head of Correspondence")
    page.get_by_role("button", name="Send the reply").click()
    expect(page.get_by_role("status")).to_contain_text("your reply is recorded")
    expect(page.locator("#responses")).to_contain_text("We will publish a plan.")
    expect(page.locator("#letter-status")).to_have_text("Replied")
    check(page, a11y, twin)
    assert acknowledged(live, world).replied_at is not None


def test_an_official_reads_and_answers_letters_in_the_inbox(
    live: LiveServer, new_context: Callable[..., BrowserContext]
) -> None:
    world = inbox_world(live)
    a11y = A11y()
    page = a11y.watch(new_context().new_page())
    read_and_answer(page, a11y, live, world)
    a11y.assert_every_page_checked()


def test_the_inbox_works_without_javascript_on_a_phone(
    live: LiveServer, new_context: Callable[..., BrowserContext]
) -> None:
    world = inbox_world(live)
    a11y = A11y()
    page = a11y.watch(new_context(java_script_enabled=False, **PHONE).new_page())
    twin = new_context(**PHONE).new_page()  # axe runs on a scripted twin of each page
    read_and_answer(page, a11y, live, world, twin)
    a11y.assert_every_page_checked()


@dataclass(frozen=True)
class MeetingInbox:
    path: str  # the letter page in the inbox
    official_email: str


def meeting_world(live: LiveServer) -> MeetingInbox:
    """A meeting request (one future time, one window, one past time) delivered to a
    DWP, and a verified official of that DWP; committed, so the server thread sees it."""
    with database(live.app).session_scope() as s:
        m = meeting_letter(s, live.app)
        official = make_user(s, live.app, name="Sam Official")
        grant(s, official, m.dwp)
        return MeetingInbox(letter_path(m.dwp, m.letter), official.email)


def answer_meeting(page: Page, a11y: A11y, world: MeetingInbox, twin: Page | None = None) -> None:
    log_in(page, a11y, world.official_email, world.path, twin)
    expect(heading(page)).to_have_text(TITLE)
    expect(page.locator("#meeting-status")).to_have_text("Not answered yet")
    accept = page.get_by_role("form", name="Accept a proposed time")
    expect(accept.get_by_role("radio")).to_have_count(2)  # the past time is not offered
    assert_fits_viewport(page)
    check(page, a11y, twin)

    # Other times with the start and end left out: the summary above that form says so.
    alternatives = page.get_by_role("form", name="Propose other times")
    first = alternatives.get_by_role("group", name="Time 1", exact=True)
    first.get_by_label("Date", exact=True).fill((uk_today() + timedelta(days=30)).isoformat())
    alternatives.get_by_role("button", name="Propose these times").click()
    summary = page.get_by_role("alert").filter(has_text="There is a problem")
    expect(summary).to_contain_text("Give a date, a start time and an end time")
    expect(page.locator("#meeting-status")).to_have_text("Not answered yet")
    check(page, a11y, twin)

    accept = page.get_by_role("form", name="Accept a proposed time")
    accept.get_by_label(uk_slot(uk_today() + timedelta(days=10)), exact=True).check()
    expect(accept.get_by_label("Your name", exact=True)).to_have_value("Sam Official")
    accept.get_by_role("button", name="Accept this time").click()
    expect(page.get_by_role("status")).to_contain_text("the meeting is agreed")
    expect(page.locator("#meeting-status")).to_contain_text("Meeting agreed: ")
    expect(page.locator("#letter-status")).to_have_text("Meeting agreed")
    expect(page.locator("#meeting")).to_contain_text("The meeting is agreed")
    expect(page.get_by_role("link", name="Download the calendar invitation (.ics)")).to_be_visible()
    check(page, a11y, twin)


def test_an_official_answers_a_meeting_request_in_the_inbox_on_a_phone(
    live: LiveServer, new_context: Callable[..., BrowserContext]
) -> None:
    """The meeting forms with, then without, JavaScript (each on its own letter)."""
    a11y = A11y()
    page = a11y.watch(new_context(**PHONE).new_page())
    answer_meeting(page, a11y, meeting_world(live))

    plain = a11y.watch(new_context(java_script_enabled=False, **PHONE).new_page())
    twin = new_context(**PHONE).new_page()  # axe runs on a scripted twin of each page
    answer_meeting(plain, a11y, meeting_world(live), twin)
    a11y.assert_every_page_checked()


def test_an_official_claims_a_department_and_is_told_what_is_wrong(
    live: LiveServer, new_context: Callable[..., BrowserContext]
) -> None:
    world = inbox_world(live, verified=False)
    a11y = A11y()
    page = a11y.watch(new_context().new_page())
    log_in(page, a11y, world.official_email, "/department/claim")
    expect(heading(page)).to_have_text("Claim a department")
    a11y.check(page)
    page.get_by_label("Your department", exact=True).select_option(
        label="Department for Work and Pensions"
    )
    page.get_by_label("Your work email address", exact=True).fill("dana@gmail.com")
    page.get_by_role("button", name="Send the confirmation link").click()
    expect(page.locator(".error-summary")).to_contain_text("A personal address (gmail.com)")
    a11y.check(page)
    page.get_by_label("Your work email address", exact=True).fill("dana@dwp.gov.uk")
    page.get_by_role("button", name="Send the confirmation link").click()
    expect(heading(page)).to_have_text("Check your email")
    a11y.check(page)
    a11y.assert_every_page_checked()


def test_the_public_department_pages_with_and_without_javascript(
    live: LiveServer, new_context: Callable[..., BrowserContext]
) -> None:
    world = inbox_world(live)
    a11y = A11y()
    page = a11y.watch(new_context(**PHONE).new_page())
    page.goto("/departments")
    expect(heading(page)).to_have_text("How departments answer")
    a11y.check(page)
    page.get_by_role("link", name="Department for Work and Pensions").click()
    expect(heading(page)).to_have_text("Department for Work and Pensions")
    figures = page.get_by_role("table", name="Figures for Department for Work and Pensions")
    expect(figures).to_contain_text("Letters received")
    expect(page.get_by_text("Not enough data yet").first).to_be_visible()
    a11y.check(page)

    plain = a11y.watch(new_context(java_script_enabled=False, **PHONE).new_page())
    twin = new_context(**PHONE).new_page()
    plain.goto(f"/departments/{world.key}")
    expect(plain.get_by_role("table", name=re.compile("from public campaigns"))).to_contain_text(
        "Carers allowance now"
    )
    a11y.check_without_scripts(plain, twin)
    a11y.assert_every_page_checked()
