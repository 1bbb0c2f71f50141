"""Real-browser journeys for signing: members of the public sign a published letter on
a phone (with and without JavaScript) and confirm by email; a keyboard-only signer
completes the form and recovers from errors; an address alias signs only once.

The signing form refuses submissions sent sooner than MIN_FILL_SECONDS after it was
shown (silently: no email), so every journey waits like a person before it submits.
axe-core checks every page a journey visits."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect
from sqlalchemy import select

from tests.browser import (
    A11y,
    LiveServer,
    assert_fits_viewport,
    tab_until_focused,
    wait_for_link,
)
from tests.conftest import Mailbox, run_worker
from tests.factories import make_collective, make_user
from web.campaigns import services as campaigns
from web.campaigns.public import COUNT_TTL
from web.collectives.models import Membership
from web.http import database
from web.recipients.models import Recipient
from web.signatures.models import Signature
from web.signatures.services import MIN_FILL_SECONDS
from web.tenancy import set_current_collective, system_scope

DESKTOP = {"width": 1280, "height": 800}
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 3,
}
TITLE = "Fair PIP assessments"
HUMAN_PAUSE_SECONDS = MIN_FILL_SECONDS + 0.2
NAME_ERROR = "Enter your name."
EMAIL_ERROR = "Enter an email address in the correct format, like name@example.org."


@dataclass
class Published:
    collective_id: int
    campaign_id: int
    campaign_slug: str
    path: str  # the public page, /<collective>/<campaign>


def published_campaign(live: LiveServer) -> Published:
    """A collecting open letter (postcode optional, own words on), committed so the
    server thread sees it."""
    tag = secrets.token_hex(3)
    with database(live.app).session_scope() as s:
        owner = make_user(s, live.app, email=f"owner-{tag}@example.org")
        collective = make_collective(s, owner, name="Claimants Together", slug=f"claim-{tag}")
        set_current_collective(s, collective.id)
        member = s.scalars(select(Membership).where(Membership.user_id == owner.id)).one()
        with system_scope(s):
            recipient = Recipient(
                key=f"dwp-{tag}",
                kind="ministerial_department",
                name="Department for Work and Pensions",
            )
            s.add(recipient)
            s.flush()
        campaign = campaigns.create_campaign(
            s, member, kind="open_letter", title=TITLE, slug="fair-pip"
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
            body_markdown="We ask for a plan to clear the backlog.",
            asks=["Publish a plan to clear the backlog"],
            evidence_links=[],
        )
        campaigns.publish(s, member, collective, campaign)
        s.flush()
        return Published(
            collective.id, campaign.id, campaign.slug, f"/{collective.slug}/{campaign.slug}"
        )


def signatures(live: LiveServer, world: Published) -> list[Signature]:
    with database(live.app).session_scope() as s:
        set_current_collective(s, world.collective_id)
        rows = list(s.scalars(select(Signature).where(Signature.campaign_id == world.campaign_id)))
        s.expunge_all()
        return rows


def heading(page: Page) -> Locator:
    return page.get_by_role("heading", level=1)


def sign_form(page: Page) -> Locator:
    return page.get_by_role("region", name="Sign this letter")


def count_text(n: int) -> str:
    return f"{n} verified signature{'' if n == 1 else 's'}"


def open_campaign(page: Page, a11y: A11y, world: Published, *, twin: Page | None = None) -> float:
    """Open the public page, check it, and return when it was shown (monotonic)."""
    page.goto(world.path)
    shown_at = time.monotonic()
    expect(heading(page)).to_have_text(TITLE)
    check(page, a11y, twin)
    return shown_at


def check(page: Page, a11y: A11y, twin: Page | None) -> None:
    if twin is None:
        a11y.check(page)
    else:
        a11y.check_without_scripts(page, twin)


def pause_like_a_person(page: Page, shown_at: float) -> None:
    """Let MIN_FILL_SECONDS pass since the form was shown (a person reads and types)."""
    remaining = HUMAN_PAUSE_SECONDS - (time.monotonic() - shown_at)
    if remaining > 0:
        page.wait_for_timeout(remaining * 1000)


def sign_on_phone(
    page: Page,
    a11y: A11y,
    world: Published,
    *,
    name: str,
    email: str,
    postcode: str,
    twin: Page | None = None,
) -> None:
    shown_at = open_campaign(page, a11y, world, twin=twin)
    assert_fits_viewport(page)
    form = sign_form(page)
    form.get_by_label("Your name").fill(name)
    form.get_by_label("Email address").fill(email)
    form.get_by_label("Postcode (optional)").fill(postcode)
    form.get_by_label("Show my name on the campaign page").check()
    pause_like_a_person(page, shown_at)
    form.get_by_role("button", name="Sign the letter").tap()
    expect(heading(page)).to_have_text("Check your email")
    # (The browser keeps the form action's #sign across the redirect.)
    expect(page).to_have_url(re.compile(re.escape(f"{world.path}/sign/check-email") + "(#sign)?$"))
    expect(page.get_by_text(f"to confirm your signature on “{TITLE}”")).to_be_visible()
    assert_fits_viewport(page)
    check(page, a11y, twin)


def confirm_on_phone(
    page: Page,
    a11y: A11y,
    live: LiveServer,
    mailbox: Mailbox,
    world: Published,
    *,
    name: str,
    email: str,
    count_before: int,
    twin: Page | None = None,
) -> None:
    link = wait_for_link(live.app, mailbox, email, "/confirm/")
    assert link.startswith(f"{live.url}{world.path}/confirm/"), link
    page.goto(link)
    expect(heading(page)).to_have_text("Confirm your signature")
    expect(page.get_by_text(f"as {name}")).to_be_visible()
    assert_fits_viewport(page)
    check(page, a11y, twin)

    # Opening the link (as a mail scanner would) confirms nothing.
    [mine] = [s for s in signatures(live, world) if s.email == email]
    assert mine.status == "pending", mine.status
    expect_count_json(page, world, count_before)
    elsewhere = page.context.new_page()
    a11y.watch(elsewhere)
    open_campaign(elsewhere, a11y, world, twin=twin)
    expect(elsewhere.locator(".count-box")).to_contain_text(f"{count_text(count_before)}.")
    expect(elsewhere.get_by_text(name)).to_have_count(0)  # not shown until confirmed
    elsewhere.close()

    page.get_by_role("button", name="Confirm my signature").tap()
    expect(heading(page)).to_have_text("Thank you: your signature is confirmed")
    expect(page).to_have_url(re.compile(re.escape(f"{world.path}/thanks") + "$"))
    expect(page.get_by_text(f"“{TITLE}” now has {count_before + 1} verified")).to_be_visible()
    assert_fits_viewport(page)
    check(page, a11y, twin)


def count_json(page: Page, world: Published) -> int:
    response = page.request.get(f"{world.path}/count.json")
    assert response.ok, response.status
    body = response.json()
    assert body["campaign"] == world.campaign_slug, body
    return int(body["verified"])


def expect_count_json(page: Page, world: Published, expected: int) -> None:
    """count.json answers from a cache kept COUNT_TTL seconds: it may lag that long."""
    deadline = time.monotonic() + COUNT_TTL + 2
    while (got := count_json(page, world)) != expected and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert got == expected, f"count.json says {got}, not {expected}, after {COUNT_TTL + 2} s"


def assert_public_page_shows(
    page: Page,
    a11y: A11y,
    world: Published,
    count: int,
    names: list[str],
    twin: Page | None = None,
) -> None:
    open_campaign(page, a11y, world, twin=twin)
    expect(page.locator(".count-box")).to_contain_text(f"{count_text(count)}.")
    recent = page.get_by_role("region", name="Recent signatures").get_by_role("listitem")
    expect(recent).to_have_text(names)
    expect_count_json(page, world, count)


@pytest.mark.browser
@pytest.mark.live
def test_two_people_sign_and_confirm_on_phones_with_and_without_javascript(
    live: LiveServer, mailbox: Mailbox, new_context: Callable[..., BrowserContext]
) -> None:
    a11y = A11y()
    world = published_campaign(live)

    # 1. Priya, on a phone with JavaScript, signs, confirms by email and is counted.
    priya = a11y.watch(new_context(**PHONE).new_page())
    sign_on_phone(
        priya, a11y, world, name="Priya Shah", email="priya@example.org", postcode="sw1a 1aa"
    )
    [pending] = signatures(live, world)
    assert (pending.status, pending.postcode, pending.show_name) == ("pending", "SW1A 1AA", True)
    confirm_on_phone(
        priya,
        a11y,
        live,
        mailbox,
        world,
        name="Priya Shah",
        email="priya@example.org",
        count_before=0,
    )
    assert_public_page_shows(priya, a11y, world, 1, ["Priya Shah, SW"])

    # 2. Tom, on a phone with JavaScript disabled, does the same: the count goes to 2.
    # (axe needs scripts: each page Tom sees is checked as a copy in a scripted tab.)
    twin = new_context(**PHONE).new_page()
    tom = a11y.watch(new_context(**PHONE, java_script_enabled=False).new_page())
    sign_on_phone(
        tom,
        a11y,
        world,
        name="Tom Okafor",
        email="tom@example.org",
        postcode="M1 1AE",
        twin=twin,
    )
    confirm_on_phone(
        tom,
        a11y,
        live,
        mailbox,
        world,
        name="Tom Okafor",
        email="tom@example.org",
        count_before=1,
        twin=twin,
    )
    assert_public_page_shows(tom, a11y, world, 2, ["Tom Okafor, M", "Priya Shah, SW"], twin=twin)
    assert sorted(s.status for s in signatures(live, world)) == ["verified", "verified"]

    a11y.assert_every_page_checked()


def focused_id(page: Page) -> str:
    """The focused element, as its id (or its tag and text when it has none)."""
    return str(
        page.evaluate(
            """() => { const el = document.activeElement;
                if (!el || el === document.body) return 'body';
                return el.id || `${el.tagName.toLowerCase()}:${el.textContent.trim()}`; }"""
        )
    )


def tab_order(page: Page, max_presses: int = 60) -> list[str]:
    """Every stop of the Tab key through the page, from the top until focus leaves it."""
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    stops: list[str] = []
    for _ in range(max_presses):
        page.keyboard.press("Tab")
        stop = focused_id(page)
        if stop == "body" or stop in stops:
            return stops
        stops.append(stop)
    raise AssertionError(f"Tab never left the page after {max_presses} presses: {stops}")


def press_tab_to(page: Page, target: Locator) -> None:
    page.keyboard.press("Tab")
    expect(target).to_be_focused()


@pytest.mark.browser
@pytest.mark.live
def test_a_keyboard_user_signs_and_recovers_from_errors(
    live: LiveServer, mailbox: Mailbox, new_context: Callable[..., BrowserContext]
) -> None:
    a11y = A11y()
    world = published_campaign(live)
    page = a11y.watch(new_context(viewport=DESKTOP).new_page())

    # The Tab order runs through the form in reading order and skips the honeypot.
    shown_at = open_campaign(page, a11y, world)
    stops = tab_order(page)
    assert "website" not in stops, f"the honeypot is reachable by Tab: {stops}"
    form_stops = [s for s in stops if s in {"name", "email", "postcode", "statement"}]
    assert form_stops == ["name", "email", "postcode", "statement"], stops
    i = stops.index("name")
    expected = [
        "name",
        "email",
        "postcode",
        "statement",
        "show_name",
        "show_statement",
        "wants_updates",
        "button:Sign the letter",
    ]
    assert stops[i : i + len(expected)] == expected, stops

    # Tab, type, Space and Enter only: no clicks.
    form = sign_form(page)
    name = form.get_by_label("Your name")
    email = form.get_by_label("Email address")
    postcode = form.get_by_label("Postcode (optional)")
    statement = form.get_by_label("In your own words (optional)")
    show_name = form.get_by_label("Show my name on the campaign page")
    show_words = form.get_by_label("Show my words publicly")
    updates = form.get_by_label("Send me updates about this campaign")
    submit = form.get_by_role("button", name="Sign the letter")
    shown_at = open_campaign(page, a11y, world)  # from the top of a fresh page
    tab_until_focused(page, name, max_presses=20)
    page.keyboard.type("Kit Keys")
    press_tab_to(page, email)
    page.keyboard.type("kit@example.org")
    press_tab_to(page, postcode)
    page.keyboard.type("LS1 4AP")
    press_tab_to(page, statement)
    page.keyboard.type("I wait every day.")
    press_tab_to(page, show_name)
    page.keyboard.press("Space")
    expect(show_name).to_be_checked()
    press_tab_to(page, show_words)
    page.keyboard.press("Space")
    expect(show_words).to_be_checked()
    press_tab_to(page, updates)
    press_tab_to(page, submit)  # the honeypot in between is skipped
    pause_like_a_person(page, shown_at)
    page.keyboard.press("Enter")
    expect(heading(page)).to_have_text("Check your email")
    a11y.check(page)
    [signature] = signatures(live, world)
    assert signature.status == "pending", signature.quarantine_reason
    assert (signature.name, signature.email, signature.postcode) == (
        "Kit Keys",
        "kit@example.org",
        "LS1 4AP",
    )
    assert (signature.statement, signature.show_name, signature.wants_updates) == (
        "I wait every day.",
        True,
        False,
    )
    assert (signature.show_statement, signature.statement_status) == (True, "pending")

    # An invalid form, by keyboard: no name, a malformed address.
    open_campaign(page, a11y, world)
    tab_until_focused(page, name, max_presses=20)
    press_tab_to(page, email)
    page.keyboard.type("kit-at-example")
    tab_until_focused(page, submit, max_presses=8)
    page.keyboard.press("Enter")
    summary = page.get_by_role("alert").filter(has_text="There is a problem")
    expect(summary).to_be_visible()
    expect(page).to_have_title(re.compile(r"^Error: "))
    expect(summary.get_by_role("link")).to_have_text([NAME_ERROR, EMAIL_ERROR])
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(name).to_have_accessible_description(re.compile(re.escape(NAME_ERROR)))
    expect(email).to_have_accessible_description(re.compile(re.escape(EMAIL_ERROR)))
    expect(email).to_have_value("kit-at-example")  # what was typed is kept
    a11y.check(page)
    first_link = summary.get_by_role("link", name=NAME_ERROR)
    tab_until_focused(page, first_link, max_presses=20)
    page.keyboard.press("Enter")
    expect(name).to_be_focused()
    assert "website" not in tab_order(page)
    assert len(signatures(live, world)) == 1

    a11y.assert_every_page_checked()


@pytest.mark.browser
@pytest.mark.live
def test_signing_again_with_an_alias_looks_the_same_and_counts_once(
    live: LiveServer, mailbox: Mailbox, new_context: Callable[..., BrowserContext]
) -> None:
    a11y = A11y()
    world = published_campaign(live)
    first, alias = "Jo.Bloggs+chorus@gmail.com", "jobloggs@googlemail.com"
    # Two tabs fill the form side by side, so the people's pauses overlap.
    tabs = []
    for address in (first, alias):
        page = a11y.watch(new_context(viewport=DESKTOP).new_page())
        shown_at = open_campaign(page, a11y, world)
        form = sign_form(page)
        form.get_by_label("Your name").fill("Jo Bloggs")
        form.get_by_label("Email address").fill(address)
        tabs.append((page, shown_at))
    pages = []
    for page, shown_at in tabs:  # one after the other: the second is the repeat
        pause_like_a_person(page, shown_at)
        sign_form(page).get_by_role("button", name="Sign the letter").click()
        expect(heading(page)).to_have_text("Check your email")
        a11y.check(page)
        pages.append((page.url, page.title(), page.locator("main").inner_html()))
    assert pages[0] == pages[1], "signing again must not reveal that the address has signed"

    [signature] = signatures(live, world)
    assert signature.email_canonical == "jobloggs@gmail.com"
    assert signature.status == "pending"
    # Both submissions sent a confirmation, to the address first given.
    deadline = time.monotonic() + 10
    while len(mailbox.to(first)) < 2 and time.monotonic() < deadline:
        run_worker(live.app)
        time.sleep(0.1)
    assert len(mailbox.to(first)) == 2, [str(m["To"]) for m in mailbox.messages]
    assert all("/confirm/" in Mailbox.text_of(m) for m in mailbox.to(first))
    assert mailbox.to(alias) == []

    a11y.assert_every_page_checked()
