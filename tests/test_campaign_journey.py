"""Real-browser journeys for "Letters, recipients and campaigns": two organisers draft,
review and publish an open letter to a directory department; a member of the public
reads it on a phone (with and without JavaScript), prints the poster and sees the
widget. axe-core checks every page a journey visits."""

from __future__ import annotations

import hashlib
import re
import secrets
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
)
from tests.factories import PASSWORD, add_member, make_collective, make_user
from web.campaigns import services
from web.campaigns.models import LetterVersion
from web.collectives.models import Membership, Role
from web.http import database
from web.recipients.models import Recipient
from web.tenancy import set_current_collective, system_scope

DESKTOP = {"width": 1280, "height": 800}
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 3,
}
DWP = "Department for Work and Pensions"
ROLE = "Secretary of State for Work and Pensions"
TITLE = "Fix PIP assessment delays"
SUBJECT = "Delays to Personal Independence Payment assessments"
SUMMARY = "Disabled people wait eight months for a PIP decision. We ask for three changes."
BODY = (
    "We are writing about **months-long delays** to PIP assessments.\n\n"
    "- People fall into debt while they wait.\n"
    "- Many decisions are overturned on appeal.\n\n"
    "Read the [official statistics](https://www.gov.uk/government/collections/pip-statistics)."
)
ASKS = ("Publish a plan to clear the backlog by March", "Meet us to hear from claimants")


@dataclass
class World:
    slug: str
    name: str
    collective_id: int
    first: str  # organiser emails
    second: str


def committed_world(live: LiveServer, *, second_organiser: bool = True) -> World:
    """A directory department, a collective and its organiser(s), committed so the
    server thread sees them."""
    tag = secrets.token_hex(3)
    with database(live.app).session_scope() as s:
        with system_scope(s):
            s.add(
                Recipient(
                    collective_id=None,
                    key=f"dwp-{tag}",
                    kind="ministerial_department",
                    name=DWP,
                    short_name="DWP",
                    remit_keywords=["benefits", "disability", "pip"],
                )
            )
            s.flush()
        ada = make_user(s, live.app, email=f"ada-{tag}@example.org", name="Ada Organiser")
        bea = make_user(s, live.app, email=f"bea-{tag}@example.org", name="Bea Organiser")
        collective = make_collective(s, ada, name="Claimants Together", slug=f"claimants-{tag}")
        if second_organiser:
            add_member(s, collective, bea, Role.ORGANISER)
        return World(collective.slug, collective.name, collective.id, ada.email, bea.email)


def heading(page: Page) -> Locator:
    return page.get_by_role("heading", level=1)


def flash(page: Page) -> Locator:
    return page.get_by_role("status")


def log_in(page: Page, a11y: A11y, email: str, next_path: str) -> None:
    page.goto(f"/login?next={next_path}")
    expect(heading(page)).to_have_text("Log in")
    a11y.check(page)
    page.get_by_label("Email address", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(re.escape(next_path) + "$"))


def campaign_tab(page: Page, name: str) -> None:
    nav = page.get_by_role("navigation", name="Campaign")
    nav.get_by_role("link", name=name, exact=True).click()


def write_letter(page: Page, body: str, asks: tuple[str, ...]) -> None:
    page.get_by_label("Subject line").fill(SUBJECT)
    page.get_by_label("Executive summary").fill(SUMMARY)
    page.get_by_label("Body of the letter").fill(body)
    for number, ask in enumerate(asks, 1):
        page.get_by_label(f"Ask {number}", exact=True).fill(ask)
    page.get_by_role("button", name="Save letter").click()


@pytest.mark.browser
@pytest.mark.live
def test_organisers_draft_review_and_publish_a_letter_the_public_reads_on_a_phone(
    live: LiveServer, new_context: Callable[..., BrowserContext]
) -> None:
    a11y = A11y()
    world = committed_world(live)
    dashboard = f"/app/{world.slug}/"

    # 1. Ada logs in and starts a campaign from the dashboard.
    ada = a11y.watch(new_context(viewport=DESKTOP).new_page())
    log_in(ada, a11y, world.first, dashboard)
    expect(heading(ada)).to_have_text(world.name)
    a11y.check(ada)
    ada.get_by_role("link", name="Start a campaign").click()
    expect(heading(ada)).to_have_text("New campaign")
    a11y.check(ada)
    ada.get_by_label("Open letter").check()
    ada.get_by_label("Campaign title").fill(TITLE)
    ada.get_by_label("Web address").fill("fix-pip-delays")
    ada.get_by_role("button", name="Create campaign").click()

    # 2. Recipient and settings: the directory department, the addressee's role, the reader.
    expect(heading(ada)).to_have_text("Recipient and settings")
    expect(flash(ada)).to_contain_text("Campaign created")
    a11y.check(ada)
    match = re.search(r"/campaigns/(\d+)/settings$", ada.url)
    assert match, ada.url
    overview_path = f"/app/{world.slug}/campaigns/{match.group(1)}/"
    ada.get_by_label("Recipient", exact=True).select_option(label=f"{DWP} (DWP)")
    ada.get_by_label("Addressee's role").fill(ROLE)
    ada.get_by_label("Who will read it?").select_option(label="Minister")
    ada.get_by_label("Signature target (optional)").fill("5000")
    ada.get_by_role("button", name="Save settings").click()
    expect(heading(ada)).to_have_text(TITLE)
    expect(flash(ada)).to_have_text("Settings saved.")
    expect(ada.get_by_role("link", name="Write a subject line.")).to_be_visible()
    a11y.check(ada)

    # 3. The letter: subject, summary, Markdown body, two asks.
    campaign_tab(ada, "Letter")
    expect(heading(ada)).to_have_text("Letter")
    expect(ada.get_by_text("Greeting: “Dear Secretary of State")).to_be_visible()
    a11y.check(ada)
    write_letter(ada, BODY, ASKS)
    expect(flash(ada)).to_have_text("Saved as revision 1.")
    expect(ada.get_by_label("Ask 2", exact=True)).to_have_value(ASKS[1])
    a11y.check(ada)

    # 4. Overview: nothing blocks publication; two organisers, so a review comes first.
    campaign_tab(ada, "Overview")
    expect(heading(ada)).to_have_text(TITLE)
    expect(ada.get_by_role("heading", name="Before you can publish")).to_have_count(0)
    preview = ada.get_by_role("region", name="The letter as it stands")
    expect(preview.locator("strong", has_text="months-long delays")).to_be_visible()
    expect(ada.get_by_role("button", name="Publish")).to_have_count(0)
    a11y.check(ada)
    ada.get_by_role("button", name="Submit for review").click()
    expect(flash(ada)).to_contain_text("Submitted for review")
    expect(ada.get_by_text("In review", exact=True)).to_be_visible()
    a11y.check(ada)

    # 5. Bea, on her own computer, approves it.
    bea = a11y.watch(new_context(viewport=DESKTOP).new_page())
    log_in(bea, a11y, world.second, overview_path)
    expect(heading(bea)).to_have_text(TITLE)
    expect(bea.get_by_text("Ada Organiser submitted revision 1")).to_be_visible()
    a11y.check(bea)
    bea.get_by_label("Comment (optional)").fill("Clear and short. Approved.")
    bea.get_by_role("button", name="Approve", exact=True).click()
    expect(flash(bea)).to_have_text("Approved. It can now be published.")
    a11y.check(bea)

    # 6. Ada publishes: collecting, version 1 with its SHA-256.
    ada.reload()
    expect(ada.get_by_text("approved, ready to publish")).to_be_visible()
    a11y.check(ada)
    ada.get_by_role("button", name="Publish", exact=True).click()
    expect(flash(ada)).to_contain_text("Published.")
    expect(ada.get_by_text("Collecting", exact=True)).to_be_visible()
    versions = ada.get_by_role("region", name="Published versions")
    expect(versions.get_by_role("link", name="Version 1")).to_be_visible()
    sha = versions.locator("code.hash").inner_text()
    assert re.fullmatch(r"[0-9a-f]{64}", sha), sha
    assert sha == published_sha256(live, world), "the overview shows another fingerprint"
    a11y.check(ada)

    campaign_tab(ada, "Share")
    expect(heading(ada)).to_have_text("Share")
    public_path = f"/{world.slug}/fix-pip-delays"
    expect(ada.get_by_role("link", name=f"{live.url}{public_path}")).to_be_visible()
    a11y.check(ada)

    # 7. A member of the public opens the campaign on a phone, not logged in.
    phone = a11y.watch(new_context(**PHONE).new_page())
    phone.goto(public_path)
    expect(heading(phone)).to_have_text(TITLE)
    expect(phone.get_by_text(f"To {ROLE}, {DWP}.")).to_be_visible()
    expect(phone.get_by_text("0 verified signatures of a target of 5,000.")).to_be_visible()
    sign = phone.get_by_role("region", name="Sign this letter")
    expect(sign).to_be_visible()
    expect(sign.get_by_label("Your name")).to_be_visible()
    expect(sign.get_by_label("Email address")).to_be_visible()
    expect(sign.get_by_role("button", name="Sign the letter")).to_be_visible()
    letter = phone.get_by_role("article", name="The letter")
    expect(letter).to_contain_text(f"To: {ROLE}, {DWP}")
    expect(letter.get_by_text(SUBJECT)).to_be_visible()
    expect(letter.locator("strong", has_text="months-long delays")).to_be_visible()
    expect(letter.get_by_role("link", name="official statistics")).to_be_visible()
    expect(letter).not_to_contain_text("**")
    asks = letter.get_by_role("region", name="What we ask").get_by_role("listitem")
    expect(asks).to_have_text(list(ASKS))
    expect(phone.get_by_text(sha)).to_be_visible()
    expect(phone.get_by_role("button", name="Log out")).to_have_count(0)
    assert_fits_viewport(phone)
    a11y.check(phone)

    # ... prints the poster: a visible QR code that names the address it opens ...
    phone.get_by_role("link", name="Print a poster").click()
    expect(heading(phone)).to_have_text(TITLE)
    qr = phone.get_by_role("img", name=f"QR code that opens {live.url}{public_path}")
    expect(qr.locator("svg")).to_be_visible()
    box = qr.locator("svg").bounding_box()
    assert box is not None
    assert min(box["width"], box["height"]) >= 150, f"the QR code is too small to scan: {box}"
    assert_fits_viewport(phone)
    a11y.check(phone)

    # ... and the widget that other sites embed.
    phone.goto(f"{public_path}/embed")
    expect(heading(phone)).to_have_text(TITLE)
    expect(phone.get_by_text("0 verified signatures")).to_be_visible()
    widget_link = phone.get_by_role("link", name="Sign the letter (opens in a new tab)")
    expect(widget_link).to_have_attribute("href", f"{live.url}{public_path}#sign")
    assert_fits_viewport(phone)
    a11y.check(phone)

    a11y.assert_every_page_checked()

    # 8. Without JavaScript the campaign page still shows the whole letter. (axe cannot
    # run here: Playwright's evaluate needs scripts; the same page was checked above.)
    no_js = new_context(**PHONE, java_script_enabled=False).new_page()
    no_js.goto(public_path)
    expect(heading(no_js)).to_have_text(TITLE)
    letter = no_js.get_by_role("article", name="The letter")
    expect(letter.get_by_text(SUBJECT)).to_be_visible()
    expect(letter.get_by_role("region", name="What we ask").get_by_role("listitem")).to_have_text(
        list(ASKS)
    )
    expect(no_js.get_by_role("region", name="Sign this letter")).to_be_visible()


def published_sha256(live: LiveServer, world: World) -> str:
    """The stored fingerprint, after checking it is the SHA-256 of the canonical text."""
    with database(live.app).session_scope() as s:
        set_current_collective(s, world.collective_id)
        version = s.scalars(select(LetterVersion)).one()
        assert version.sha256 == hashlib.sha256(version.canonical_text.encode()).hexdigest()
        return version.sha256


@pytest.mark.browser
@pytest.mark.live
def test_revisions_are_compared_with_the_keyboard_only(
    live: LiveServer, new_context: Callable[..., BrowserContext]
) -> None:
    a11y = A11y()
    world = committed_world(live, second_organiser=False)
    with database(live.app).session_scope() as s:
        set_current_collective(s, world.collective_id)
        owner = s.scalars(select(Membership)).one()
        campaign = services.create_campaign(
            s, owner, kind="open_letter", title=TITLE, slug="fix-pip-delays"
        )
        letter_path = f"/app/{world.slug}/campaigns/{campaign.id}/letter"

    page = a11y.watch(new_context(viewport=DESKTOP).new_page())
    log_in(page, a11y, world.first, letter_path)
    expect(heading(page)).to_have_text("Letter")
    a11y.check(page)
    write_letter(page, BODY, ASKS)
    expect(flash(page)).to_have_text("Saved as revision 1.")
    a11y.check(page)
    changed_body = BODY.replace("Many decisions", "Two in three decisions")
    write_letter(page, changed_body, (ASKS[0], "Meet us within six weeks"))
    expect(flash(page)).to_have_text("Saved as revision 2.")
    a11y.check(page)

    campaign_tab(page, "Revisions")
    expect(heading(page)).to_have_text("Revisions")
    expect(page.get_by_role("row")).to_have_count(3)  # the header and two revisions
    a11y.check(page)

    # Keyboard only: Tab to each list, type the revision number, Tab to Compare, Enter.
    older = page.get_by_label("Compare revision")
    newer = page.get_by_label("with revision")
    compare = page.get_by_role("button", name="Compare")
    tab_until_focused(page, older, max_presses=30)  # past the header and campaign tabs
    page.keyboard.press("1")  # typing picks the option
    expect(older).to_have_value("1")
    page.keyboard.press("Tab")
    expect(newer).to_be_focused()
    page.keyboard.press("2")
    expect(newer).to_have_value("2")
    page.keyboard.press("Tab")
    expect(compare).to_be_focused()
    page.keyboard.press("Enter")

    expect(heading(page)).to_have_text("Changes from revision 1 to 2")
    expect(page).to_have_url(re.compile(r"/revisions/compare\?from=1&to=2$"))
    body = page.get_by_role("region", name="Body")
    removed = body.get_by_role("listitem").filter(has=page.locator("del"))
    added = body.get_by_role("listitem").filter(has=page.locator("ins"))
    expect(removed).to_have_text(["Removed: − - Many decisions are overturned on appeal."])
    expect(added).to_have_text(["Added: + - Two in three decisions are overturned on appeal."])
    asks = page.get_by_role("region", name="Asks")
    expect(asks.locator("del")).to_have_text([f"Removed: − 2. {ASKS[1]}"])
    expect(asks.locator("ins")).to_have_text(["Added: + 2. Meet us within six weeks"])
    expect(page.get_by_role("region", name="Subject")).to_have_count(0)  # unchanged
    a11y.check(page)

    a11y.assert_every_page_checked()
