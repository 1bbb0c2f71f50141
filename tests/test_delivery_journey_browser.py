"""The whole delivery loop of issue #6 in a real browser (Chromium), on a phone: the
organiser closes a meeting request, has the final PDF made by a real worker, reviews it
and sends it; the letter reaches the department through the loopback SMTP server with
the PDF attached, its own Reply-To and a response link; the official, with no account
and no cookies, opens that link, acknowledges, replies with a document and accepts a
proposed time; the calendar invitation (.ics) arrives by email; and the organiser sees
it all on the delivery's timeline. axe-core runs on every page of both people; none may
have a serious or critical violation."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as clock_time
from email.message import EmailMessage
from pathlib import Path

import icalendar
import pytest
from playwright.sync_api import BrowserContext, Page, expect
from sqlalchemy import select

from tests.browser import A11y, LiveServer, assert_fits_viewport
from tests.conftest import Mailbox, run_worker
from tests.factories import PASSWORD, make_collective, make_user
from tests.test_pdf_documents import _sign
from tests.test_response_page import PDF, uk_slot, uk_today
from tests.test_signing_journey import PHONE, heading
from web.campaigns import services as campaigns
from web.campaigns.models import Campaign
from web.collectives.models import Membership, Role
from web.db import utcnow
from web.delivery import sending
from web.delivery.workdays import UK_TIME as UK
from web.http import database
from web.outbox import attach_dispatcher
from web.pdf import services as pdf_services
from web.pdf.models import Document, DocumentKind
from web.recipients.models import Recipient
from web.signatures import services as signing
from web.tenancy import set_current_collective, system_scope

TITLE = "Fair PIP assessments"
DEPARTMENT = "Department for Work and Pensions"
ADDRESS = "correspondence@dwp.example.gov.uk"
OFFICIAL = "sam.official@dwp.example.gov.uk"
SIGNERS = ("Ada Lovelace", "Owain Glyndŵr", "Mary Seacole")
MEETING_DAY = uk_today() + timedelta(days=10)
SLOT = uk_slot(MEETING_DAY)
OTHER_SLOT = uk_slot(uk_today() + timedelta(days=12), "14:00-15:00")
WINDOW = "Any morning in the week of " + (uk_today() + timedelta(days=20)).strftime("%-d %B %Y")
REPLY = "Thank you for your letter. The Minister will set out a plan in the spring."
WORKER_TIMEOUT_SECONDS = 60.0
REPLY_TO = re.compile(r"reply\+[a-z2-7]{32}@reply\.chorus\.localhost")


@dataclass
class World:
    collective_id: int
    owner_email: str
    collective_slug: str
    campaign_id: int

    @property
    def base(self) -> str:
        return f"/app/{self.collective_slug}/campaigns/{self.campaign_id}"


def _world(live: LiveServer) -> World:
    """A collecting meeting request with three verified signatures, to a directory
    department that lists a correspondence address; committed for the server thread."""
    tag = secrets.token_hex(3)
    with database(live.app).session_scope() as s:
        owner = make_user(s, live.app, email=f"owner-{tag}@example.org", name="Olu Owner")
        collective = make_collective(s, owner, name="Claimants Together", slug=f"claim-{tag}")
        set_current_collective(s, collective.id)
        member = s.scalars(select(Membership).where(Membership.user_id == owner.id)).one()
        with system_scope(s):
            recipient = Recipient(
                key=f"dwp-{tag}",
                kind="ministerial_department",
                name=DEPARTMENT,
                correspondence_email=ADDRESS,
                postal_address="Caxton House\nTothill Street\nLondon SW1H 9NA",
            )
            s.add(recipient)
            s.flush()
        campaign = campaigns.create_campaign(
            s, member, kind="meeting_request", title=TITLE, slug="fair-pip"
        )
        campaigns.update_settings(
            s,
            member,
            campaign,
            title=TITLE,
            slug="fair-pip",
            recipient_id=recipient.id,
            addressee_name="",
            addressee_role="Secretary of State",
            audience_style="minister",
            signature_target=None,
            closes_on=None,
        )
        campaigns.save_letter(
            s,
            member,
            campaign,
            subject="Delays to PIP assessments",
            summary="People wait months for a decision.",
            body_markdown="We ask to meet you to discuss how to clear the backlog.",
            asks=["Publish a plan to clear the backlog"],
            evidence_links=[],
            meeting_purpose="To discuss the backlog and how claimants can help clear it.",
            meeting_attendees="Amina Khan, Chair\nJo Bloggs, Treasurer",
            meeting_slots=[
                {"when": SLOT, "place": "Caxton House, London"},
                {"when": OTHER_SLOT, "place": "Online"},
                {"when": WINDOW, "place": "Online"},
            ],
        )
        campaigns.publish(s, member, collective, campaign)
        s.flush()
        for name in SIGNERS:
            _sign(s, campaign, name)
        set_current_collective(s, collective.id)
        signing.reconcile_counts(s, campaign.id)
        return World(collective.id, owner.email, collective.slug, campaign.id)


def _mail(
    live: LiveServer, mailbox: Mailbox, address: str, subject: str, what: str
) -> EmailMessage:
    """Run real workers until an email to `address` whose subject holds `subject`
    arrives at the test SMTP server."""
    deadline = time.monotonic() + WORKER_TIMEOUT_SECONDS
    while True:
        run_worker(live.app)
        for msg in mailbox.to(address):
            if subject in str(msg["Subject"]):
                return msg
        if time.monotonic() > deadline:
            seen = [f"{m['Subject']!r} to {m['To']}" for m in mailbox.messages]
            raise AssertionError(f"no {what} reached {address}; the server received {seen}")
        time.sleep(0.1)


def _attachments(msg: EmailMessage, content_type: str) -> list[bytes]:
    found = []
    for part in msg.iter_attachments():
        if part.get_content_type() == content_type:
            data = part.get_content()
            found.append(data if isinstance(data, bytes) else data.encode())
    return found


Check = Callable[[Page], None]


def _checker(a11y: A11y, twin: Page | None = None) -> Check:
    """axe-core on the page (on its scripted twin when the page runs without
    JavaScript), and no sideways scrolling on the phone."""

    def check(page: Page) -> None:
        if twin is None:
            a11y.check(page)
        else:
            a11y.check_without_scripts(page, twin)
        assert_fits_viewport(page)

    return check


def _final_pdf_made_beforehand(live: LiveServer, world: World) -> None:
    """Close the campaign and have a real worker make its final PDF, as the organiser
    would have done on the PDF letter tab."""
    with database(live.app).session_scope() as s:
        attach_dispatcher(s, live.app.extensions["chorus.dispatcher"])  # jobs after commit
        set_current_collective(s, world.collective_id)
        member = s.scalars(select(Membership).where(Membership.role == Role.OWNER)).one()
        campaign = s.get(Campaign, world.campaign_id)
        assert campaign is not None
        sending.close_for_delivery(s, member, campaign)
        pdf_services.request_render(s, member, campaign, DocumentKind.FINAL)
    deadline = time.monotonic() + WORKER_TIMEOUT_SECONDS
    while True:
        run_worker(live.app)
        with database(live.app).session_scope() as s:
            set_current_collective(s, world.collective_id)
            if s.scalar(select(Document.id).where(Document.kind == "final")) is not None:
                return
        assert time.monotonic() < deadline, "the final PDF was not made"
        time.sleep(0.1)


# --- the organiser delivers -------------------------------------------------------------


def _log_in(page: Page, check: Check, email: str, next_path: str) -> None:
    page.goto(f"/login?next={next_path}")
    expect(heading(page)).to_have_text("Log in")
    check(page)
    page.get_by_label("Email address", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(re.escape(next_path) + "$"))


def _continue_to_review(page: Page, check: Check) -> None:
    """The plan on the Delivery tab: by email, now, to the directory's address."""
    expect(heading(page)).to_have_text("Delivery")
    plan = page.get_by_role("region", name="Close and deliver")
    expect(plan.get_by_label("By email")).to_be_checked()
    plan.get_by_label("Now: close the campaign").check()
    expect(plan.get_by_label("Recipient's email address")).to_have_value(ADDRESS)
    check(page)
    plan.get_by_role("button", name="Continue").click()
    expect(heading(page)).to_have_text("Review and send")


def _review_and_send(page: Page, check: Check) -> str:
    """Review the final PDF and press Send. Returns the fingerprint shown."""
    review = page.get_by_role("region", name="The final PDF")
    fingerprint = review.locator("code.hash").inner_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", fingerprint), fingerprint
    check(page)

    # The organiser reviews the PDF: the download is the file the fingerprint names.
    href = review.get_by_role("link", name="Download the final PDF to review it")
    answer = page.request.get(href.get_attribute("href") or "")
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/pdf"
    assert answer.body().startswith(b"%PDF-")
    assert hashlib.sha256(answer.body()).hexdigest() == fingerprint

    send = page.get_by_role("region", name="Send by email")
    expect(send).to_contain_text(DEPARTMENT)
    expect(send.get_by_label("Send to this email address")).to_have_value(ADDRESS)
    send.get_by_role("button", name="Send the letter").click()
    expect(heading(page)).to_have_text(f"Delivery to {DEPARTMENT}")
    expect(page.get_by_role("main")).to_contain_text("Sending.")
    expect(page.get_by_role("region", name="Summary")).to_contain_text("Sending")
    check(page)
    return fingerprint


def _deliver(page: Page, check: Check, live: LiveServer, world: World) -> str:
    """From the Delivery tab to Send, the final PDF made on the way. Returns the
    fingerprint shown on the review page."""
    delivery_tab = f"{world.base}/delivery"
    _log_in(page, check, world.owner_email, delivery_tab)
    expect(page.get_by_role("main")).to_contain_text("The letter has not been delivered yet.")
    _continue_to_review(page, check)
    expect(page.get_by_role("main")).to_contain_text("Closed. No more signatures")
    expect(page.get_by_role("main")).to_contain_text("no final PDF")
    check(page)

    # The final PDF, made by a real worker. The progress page's script polls and
    # reloads the page by itself when the render is done: wait for that, never reload.
    page.get_by_role("button", name="Make the final PDF").click()
    expect(page.get_by_role("heading", level=2)).to_have_text("Making the PDF")
    check(page)
    run_worker(live.app)
    expect(page.get_by_role("heading", level=2)).to_have_text("Ready", timeout=60_000)
    expect(page.locator("#render-status")).to_contain_text("Your PDF is ready.")
    check(page)

    # Back to the Delivery tab (the campaign is closed now) and on to the review.
    page.get_by_role("navigation", name="Campaign").get_by_role(
        "link", name="Delivery", exact=True
    ).click()
    _continue_to_review(page, check)
    return _review_and_send(page, check)


def _letter(live: LiveServer, mailbox: Mailbox, fingerprint: str) -> EmailMessage:
    """The letter as the department receives it: once, with the PDF the organiser
    reviewed and a Reply-To of its own."""
    letter = _mail(live, mailbox, ADDRESS, TITLE, "letter")
    assert len(mailbox.to(ADDRESS)) == 1
    [pdf] = _attachments(letter, "application/pdf")
    assert hashlib.sha256(pdf).hexdigest() == fingerprint
    assert REPLY_TO.fullmatch(str(letter["Reply-To"])), letter["Reply-To"]
    text = Mailbox.text_of(letter)
    assert fingerprint in text
    assert "3 people" in text
    return letter


# --- the official answers ----------------------------------------------------------------


def _answer(page: Page, check: Check, link: str, reply_pdf: Path) -> None:
    answer = page.goto(link)
    assert answer is not None
    assert answer.status == 200
    assert answer.headers["referrer-policy"] == "no-referrer"
    expect(heading(page)).to_have_text(TITLE)
    expect(page.get_by_role("main")).to_contain_text(f"sent this letter to {DEPARTMENT}")
    check(page)

    ack = page.get_by_role("form", name="Acknowledge receipt")
    ack.get_by_label("Your name (optional)").fill("Sam Official")
    ack.get_by_role("button", name="Acknowledge receipt").click()
    expect(page.get_by_role("status")).to_contain_text("receipt is acknowledged")
    check(page)

    reply = page.get_by_role("form", name="Reply to the letter")
    reply.get_by_label("Your reply", exact=True).fill(REPLY)
    reply.get_by_label("This is our full reply").check()
    reply.get_by_label("Attach a document (optional)").set_input_files(str(reply_pdf))
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


# --- the journey -----------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.live
def test_deliver_then_the_department_answers_and_a_meeting_is_booked(
    live: LiveServer,
    new_context: Callable[..., BrowserContext],
    mailbox: Mailbox,
    tmp_path: Path,
) -> None:
    world = _world(live)
    a11y = A11y()

    # 1. The organiser delivers the letter by email.
    organiser = a11y.watch(new_context(**PHONE).new_page())
    check = _checker(a11y)
    fingerprint = _deliver(organiser, check, live, world)
    show_url = organiser.url

    # 2. The letter arrives at the department, once, with the PDF the organiser reviewed,
    # a Reply-To of its own and the link to the response page.
    letter = _letter(live, mailbox, fingerprint)
    assert "accept one, propose others or decline" in Mailbox.text_of(letter)
    link = mailbox.link_in(letter, "/respond/")
    assert link.startswith(f"{live.url}/respond/")

    # The organiser's page says it was delivered (the page does not refresh by itself).
    organiser.reload()
    summary = organiser.get_by_role("region", name="Summary")
    expect(summary).to_contain_text("Delivered")
    expect(summary).to_contain_text(str(letter["Reply-To"]))
    check(organiser)

    # 3. The official, in a browser of their own (no cookies, no account), answers.
    reply_pdf = tmp_path / "reply.pdf"
    reply_pdf.write_bytes(PDF)
    official = a11y.watch(new_context(**PHONE).new_page())
    _answer(official, check, link, reply_pdf)

    # 4. The calendar invitation reaches the official, with the agreed time.
    invitation = _mail(live, mailbox, OFFICIAL, "Meeting agreed", "meeting invitation")
    [data] = _attachments(invitation, "text/calendar")
    calendar = icalendar.Calendar.from_ical(data)
    assert str(calendar["METHOD"]) == "REQUEST"
    [event] = calendar.walk("VEVENT")
    assert str(event["UID"]).strip()
    starts_at = event.decoded("DTSTART")
    assert isinstance(starts_at, datetime)
    assert starts_at > utcnow()
    assert starts_at == datetime.combine(MEETING_DAY, clock_time(10, 0), tzinfo=UK)
    attendees = event.get("ATTENDEE")
    attendees = attendees if isinstance(attendees, list) else [attendees]
    addresses = {str(a).lower().removeprefix("mailto:") for a in attendees}
    assert OFFICIAL in addresses
    assert world.owner_email in addresses
    # The organiser is invited too, to the same event.
    to_owner = _mail(live, mailbox, world.owner_email, "Meeting agreed", "meeting invitation")
    [owner_data] = _attachments(to_owner, "text/calendar")
    assert icalendar.Calendar.from_ical(owner_data).walk("VEVENT")[0]["UID"] == event["UID"]

    # 5. The organiser sees the whole story on the delivery page...
    organiser.goto(show_url)
    expect(heading(organiser)).to_have_text(f"Delivery to {DEPARTMENT}")
    timeline = organiser.get_by_role("region", name="Timeline")
    expect(timeline).to_contain_text(f"Delivered by email to {ADDRESS}.")
    expect(timeline).to_contain_text("Acknowledgement from Sam Official (response page).")
    expect(timeline).to_contain_text("Substantive reply from Sam Official (response page).")
    expect(timeline).to_contain_text("Meeting agreed for")
    responses = organiser.get_by_role("region", name="Responses")
    expect(responses).to_contain_text(REPLY)
    expect(responses.get_by_role("link", name="reply.pdf")).to_be_visible()
    meeting = organiser.get_by_role("region", name="Meeting", exact=True)
    expect(meeting).to_contain_text("Sam Official")
    expect(meeting).to_contain_text(OFFICIAL)
    check(organiser)

    # ...and the campaign has moved on to "Meeting scheduled".
    organiser.get_by_role("navigation", name="Campaign").get_by_role(
        "link", name="Overview", exact=True
    ).click()
    expect(heading(organiser)).to_have_text(TITLE)
    expect(organiser.get_by_role("main")).to_contain_text("Meeting scheduled")
    check(organiser)

    a11y.assert_every_page_checked()


@pytest.mark.browser
@pytest.mark.live
def test_the_organiser_delivers_without_javascript(
    live: LiveServer, new_context: Callable[..., BrowserContext], mailbox: Mailbox
) -> None:
    """The organiser's delivery pages work without JavaScript. (The final PDF is made
    beforehand: its progress page refreshes itself every 2 seconds without scripts.)"""
    world = _world(live)
    _final_pdf_made_beforehand(live, world)
    a11y = A11y()
    page = a11y.watch(new_context(java_script_enabled=False, **PHONE).new_page())
    twin = new_context(**PHONE).new_page()  # axe runs on a scripted twin of each page
    check = _checker(a11y, twin)

    _log_in(page, check, world.owner_email, f"{world.base}/delivery")
    _continue_to_review(page, check)
    fingerprint = _review_and_send(page, check)

    letter = _letter(live, mailbox, fingerprint)
    assert mailbox.link_in(letter, "/respond/").startswith(f"{live.url}/respond/")
    page.reload()
    summary = page.get_by_role("region", name="Summary")
    expect(summary).to_contain_text("Delivered")
    expect(summary).to_contain_text(str(letter["Reply-To"]))
    expect(page.get_by_role("region", name="Timeline")).to_contain_text(
        f"Delivered by email to {ADDRESS}."
    )
    check(page)
    a11y.assert_every_page_checked()
