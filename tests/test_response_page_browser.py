"""The department's response page in a real browser (Chromium), on a phone, with and
without JavaScript: an official opens the link, acknowledges receipt, replies with a
PDF, corrects a mistake, accepts a meeting time and receives the calendar invitation;
axe-core finds no serious or critical violation on any page on the way."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

from playwright.sync_api import BrowserContext, Page, expect

from tests.browser import EMAIL_TIMEOUT_SECONDS, A11y, LiveServer
from tests.conftest import Mailbox, run_worker
from tests.test_response_page import PDF, TITLE, World, make_world, uk_slot, uk_today
from tests.test_signing_journey import PHONE, heading
from web.http import database

OFFICIAL = "sam.official@dwp.gov.uk"
SLOT = uk_slot(uk_today() + timedelta(days=10))


def _world(live: LiveServer) -> World:
    with database(live.app).session_scope() as s:
        return make_world(
            s,
            live.app,
            kind="meeting_request",
            statements=[("I waited nine months for my assessment.", "Dana Signer", True)],
        )


def _invitation(live: LiveServer, mailbox: Mailbox, address: str) -> EmailMessage:
    """Run the workers until the meeting invitation to `address` arrives."""
    deadline = time.monotonic() + EMAIL_TIMEOUT_SECONDS
    while True:
        run_worker(live.app)
        for msg in mailbox.to(address):
            if "Meeting agreed" in str(msg["Subject"]):
                return msg
        assert time.monotonic() < deadline, f"no invitation to {address}"
        time.sleep(0.1)


def _calendar_part(msg: EmailMessage) -> bytes:
    [part] = [p for p in msg.iter_attachments() if p.get_content_type() == "text/calendar"]
    data = part.get_content()
    return data if isinstance(data, bytes) else data.encode()


def _journey(page: Page, check: Callable[[Page], None], world: World, letter: Path) -> None:
    page.goto(world.path)
    expect(heading(page)).to_have_text(TITLE)
    expect(page.get_by_text("I waited nine months for my assessment.")).to_be_visible()
    check(page)

    ack = page.get_by_role("form", name="Acknowledge receipt")
    ack.get_by_label("Your name (optional)").fill("Sam Official")
    ack.get_by_role("button", name="Acknowledge receipt").click()
    expect(page.get_by_role("status")).to_contain_text("receipt is acknowledged")
    check(page)

    # A reply sent without the required fields comes back with the problems listed.
    reply = page.get_by_role("form", name="Reply to the letter")
    reply.get_by_label("Your reply", exact=True).fill("Thank you. A plan follows in spring.")
    reply.get_by_role("button", name="Send the reply").click()
    expect(page.locator(".error-summary")).to_contain_text("Enter your name")
    check(page)
    reply = page.get_by_role("form", name="Reply to the letter")
    expect(reply.get_by_label("Your reply", exact=True)).to_have_value(
        "Thank you. A plan follows in spring."
    )
    reply.get_by_label("This is our full reply").check()
    reply.get_by_label("Attach a document (optional)").set_input_files(str(letter))
    reply.get_by_label("Your name", exact=True).fill("Sam Official")
    reply.get_by_label("Your role", exact=True).fill("Correspondence Officer")
    reply.get_by_role("button", name="Send the reply").click()
    expect(page.get_by_role("status")).to_contain_text("your reply has been sent")
    check(page)

    accept = page.get_by_role("form", name="Accept a proposed time")
    accept.get_by_label(SLOT).check()
    accept.get_by_label("Your name", exact=True).fill("Sam Official")
    accept.get_by_label("Your email address").fill(OFFICIAL)
    accept.get_by_role("button", name="Accept this time").click()
    expect(page.get_by_role("status")).to_contain_text("the meeting is agreed")
    expect(page.get_by_role("link", name="Download the calendar invitation (.ics)")).to_be_visible()
    check(page)


def test_an_official_answers_a_meeting_request_on_a_phone(
    live: LiveServer,
    new_context: Callable[..., BrowserContext],
    mailbox: Mailbox,
    tmp_path: Path,
) -> None:
    world = _world(live)
    letter = tmp_path / "reply.pdf"
    letter.write_bytes(PDF)
    a11y = A11y()
    page = a11y.watch(new_context(**PHONE).new_page())
    _journey(page, a11y.check, world, letter)
    a11y.assert_every_page_checked()

    answer = page.request.get(f"{world.path}/meeting.ics")
    assert answer.status == 200
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert b"BEGIN:VEVENT" in answer.body()
    invitation = _invitation(live, mailbox, OFFICIAL)
    assert b"METHOD:REQUEST" in _calendar_part(invitation)
    assert _invitation(live, mailbox, world.owner_email) is not None


def test_the_response_page_works_without_javascript(
    live: LiveServer,
    new_context: Callable[..., BrowserContext],
    mailbox: Mailbox,
    tmp_path: Path,
) -> None:
    world = _world(live)
    letter = tmp_path / "reply.pdf"
    letter.write_bytes(PDF)
    a11y = A11y()
    page = a11y.watch(new_context(java_script_enabled=False, **PHONE).new_page())
    twin = new_context(**PHONE).new_page()  # axe runs on a scripted twin of each page
    _journey(page, lambda p: a11y.check_without_scripts(p, twin), world, letter)
    a11y.assert_every_page_checked()
    assert b"METHOD:REQUEST" in _calendar_part(_invitation(live, mailbox, OFFICIAL))


def test_error_pages_for_bad_links_pass_axe(
    live: LiveServer, new_context: Callable[..., BrowserContext]
) -> None:
    a11y = A11y()
    page = a11y.watch(new_context(**PHONE).new_page())
    answer = page.goto("/respond/1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert answer is not None
    assert answer.status == 404
    assert answer.headers["referrer-policy"] == "no-referrer"
    expect(heading(page)).to_have_text("This link is not valid")
    a11y.check(page)
    a11y.assert_every_page_checked()
