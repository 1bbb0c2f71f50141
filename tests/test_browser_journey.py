"""Real-browser journeys: Debian's Chromium through Playwright against the app served
from a thread, with committed data, real SMTP and real RQ workers; axe-core checks every
page a journey visits."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.browser import (
    A11y,
    LiveServer,
    assert_session_cookie_is_secure,
    tab_until_focused,
    wait_for_link,
)
from tests.conftest import Mailbox

PASSWORD = "plenty of unrelated words"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def unique_email(who: str) -> str:
    return f"{who}-{secrets.token_hex(3)}@example.org"


def heading(page: Page) -> Locator:
    return page.get_by_role("heading", level=1)


def sign_up(page: Page, name: str, email: str) -> None:
    page.get_by_label("Your name", exact=True).fill(name)
    page.get_by_label("Email address", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(heading(page)).to_have_text("Check your email")


@pytest.mark.browser
@pytest.mark.live
def test_organiser_signs_up_creates_collective_and_invites_co_organiser(
    live: LiveServer, new_context: Callable[..., BrowserContext], mailbox: Mailbox
) -> None:
    a11y = A11y()
    ada_email, bea_email = unique_email("ada"), unique_email("bea")
    collective_name = "Riverside Tenants Voice"
    slug = f"riverside-{secrets.token_hex(2)}"

    # 1. Ada signs up on her phone.
    ada = a11y.watch(new_context(viewport=PHONE).new_page())
    ada.goto("/signup")
    expect(heading(ada)).to_have_text("Create an account")
    a11y.check(ada)
    sign_up(ada, "Ada Organiser", ada_email)
    a11y.check(ada)

    # 2. She confirms her address from the email: the link opens a page with a button.
    link = wait_for_link(live.app, mailbox, ada_email, "/verify/")
    assert link.startswith(f"{live.url}/verify/"), link
    ada.goto(link)
    expect(heading(ada)).to_have_text("Confirm your email address")
    expect(ada.get_by_text(ada_email)).to_be_visible()
    a11y.check(ada)
    ada.get_by_role("button", name="Confirm my email address").click()
    expect(heading(ada)).to_have_text("Your collectives")
    expect(ada.get_by_role("status")).to_contain_text("Your email address is confirmed")
    assert_session_cookie_is_secure(ada.context, live.url)
    a11y.check(ada)

    # 3. She creates a collective and lands on its dashboard.
    ada.get_by_role("link", name="Create a collective").click()
    expect(heading(ada)).to_have_text("Create a collective")
    a11y.check(ada)
    ada.get_by_label("Name of the collective").fill(collective_name)
    ada.get_by_label("Web address").fill(slug)
    ada.get_by_label("Contact address").fill("12 River Street\nLondon E1 1AA")
    ada.get_by_role("button", name="Create collective").click()
    expect(heading(ada)).to_have_text(collective_name)
    expect(ada).to_have_url(f"{live.url}/app/{slug}/")
    expect(ada.get_by_role("status")).to_contain_text(f"{collective_name} is ready")
    expect(ada.get_by_text("You are owner of this collective.")).to_be_visible()
    a11y.check(ada)

    # 4. She invites Bea as an organiser.
    collective_nav = ada.get_by_role("navigation", name=collective_name)
    collective_nav.get_by_role("link", name="Members").click()
    expect(heading(ada)).to_have_text("Members")
    a11y.check(ada)
    ada.get_by_label("Email address").fill(bea_email)
    ada.get_by_label("Role", exact=True).select_option(label="Organiser")
    ada.get_by_role("button", name="Send invitation").click()
    expect(ada.get_by_role("status")).to_have_text(f"Invitation sent to {bea_email}.")
    expect(ada.get_by_text(f"{bea_email} as organiser")).to_be_visible()
    a11y.check(ada)

    # 5. Bea opens the invitation on her own computer (separate cookies)...
    invitation = wait_for_link(live.app, mailbox, bea_email, "/invitations/")
    assert invitation.startswith(f"{live.url}/invitations/"), invitation
    invitation_path = urlsplit(invitation).path
    bea = a11y.watch(new_context(viewport=DESKTOP).new_page())
    bea.goto(invitation)
    expect(heading(bea)).to_have_text(f"Join {collective_name}")
    expect(bea.get_by_role("main")).to_contain_text("as organiser")
    a11y.check(bea)

    # ... creates an account, the invitation remembered in the link ...
    bea.get_by_role("link", name="create an account").click()
    expect(heading(bea)).to_have_text("Create an account")
    assert parse_qs(urlsplit(bea.url).query)["next"] == [invitation_path]
    a11y.check(bea)
    sign_up(bea, "Bea Co-organiser", bea_email)
    a11y.check(bea)

    # ... confirms her address and is brought back to the invitation ...
    link = wait_for_link(live.app, mailbox, bea_email, "/verify/")
    bea.goto(link)
    expect(heading(bea)).to_have_text("Confirm your email address")
    a11y.check(bea)
    bea.get_by_role("button", name="Confirm my email address").click()
    expect(heading(bea)).to_have_text(f"Join {collective_name}")
    expect(bea).to_have_url(invitation)
    expect(bea.get_by_role("status")).to_contain_text("Your email address is confirmed")
    a11y.check(bea)

    # ... and accepts it: the dashboard counts her in.
    bea.get_by_role("button", name="Accept and join").click()
    expect(heading(bea)).to_have_text(collective_name)
    expect(bea).to_have_url(f"{live.url}/app/{slug}/")
    expect(bea.get_by_role("status")).to_have_text(f"You have joined {collective_name}.")
    expect(bea.get_by_text("You are organiser of this collective.")).to_be_visible()
    expect(bea.get_by_text("2 members")).to_be_visible()
    a11y.check(bea)

    # Ada reloads Members: Bea is listed as an organiser, the invitation is used up.
    ada.reload()
    expect(heading(ada)).to_have_text("Members")
    bea_row = ada.get_by_role("row").filter(has_text="Bea Co-organiser")
    expect(bea_row).to_have_count(1)
    expect(bea_row.get_by_role("cell", name=bea_email)).to_be_visible()
    expect(bea_row.get_by_role("cell", name="Organiser", exact=True)).to_be_visible()
    expect(ada.get_by_text(f"{bea_email} as organiser")).to_have_count(0)
    a11y.check(ada)

    a11y.assert_every_page_checked()


@pytest.mark.browser
@pytest.mark.live
def test_keyboard_only_login_shows_the_error_summary(
    live: LiveServer, new_context: Callable[..., BrowserContext]
) -> None:
    a11y = A11y()
    page = a11y.watch(new_context(viewport=DESKTOP).new_page())
    page.goto("/login")
    expect(heading(page)).to_have_text("Log in")
    a11y.check(page)
    email = page.get_by_label("Email address", exact=True)
    password = page.get_by_label("Password", exact=True)

    # The first Tab reaches the skip link; keep tabbing (bounded) to the email field.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
    tab_until_focused(page, email)
    page.keyboard.type("nobody@example.org")
    page.keyboard.press("Tab")
    expect(password).to_be_focused()
    page.keyboard.type("not the right password")
    page.keyboard.press("Enter")

    summary = page.get_by_role("alert")
    expect(summary).to_be_visible()
    expect(summary.get_by_role("heading")).to_have_text("There is a problem")
    expect(summary).to_contain_text("That email and password do not match an account.")
    expect(page).to_have_title(re.compile(r"^Error: Log in"))
    expect(email).to_have_value("nobody@example.org")  # kept, so only the password is retyped
    a11y.check(page)

    # A missing password: the summary links to the field, and following the link by
    # keyboard puts the focus in it.
    page.keyboard.press("Tab")
    tab_until_focused(page, password)
    page.keyboard.press("Enter")
    problem = summary.get_by_role("link", name="Enter your password.")
    expect(problem).to_have_attribute("href", "#password")
    expect(password).to_have_attribute("aria-invalid", "true")
    a11y.check(page)
    page.keyboard.press("Tab")
    tab_until_focused(page, problem)
    page.keyboard.press("Enter")
    expect(password).to_be_focused()

    a11y.assert_every_page_checked()


@pytest.mark.browser
@pytest.mark.live
def test_signup_and_verification_work_without_javascript(
    live: LiveServer, new_context: Callable[..., BrowserContext], mailbox: Mailbox
) -> None:
    """The app has no JavaScript yet; this guards that signing up never comes to need it.
    axe cannot run here (Playwright's evaluate waits forever with scripts disabled); the
    same pages are checked in the journey above."""
    email = unique_email("nojs")
    page = new_context(viewport=PHONE, java_script_enabled=False).new_page()
    page.goto("/signup")
    expect(heading(page)).to_have_text("Create an account")
    sign_up(page, "Noor No-Script", email)

    page.goto(wait_for_link(live.app, mailbox, email, "/verify/"))
    page.get_by_role("button", name="Confirm my email address").click()
    expect(heading(page)).to_have_text("Your collectives")
    expect(page.get_by_role("status")).to_contain_text("Your email address is confirmed")
