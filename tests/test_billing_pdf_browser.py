"""The new organiser pages of issue #7 in a real browser, on a phone: an owner of a
Supporter collective opens the Plan page, sets the logo and colours, opens the campaign's
PDF letter tab, starts a preview, watches it being made and downloads it, branded. axe-core
runs on every page; none may have a serious or critical violation."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import pikepdf
from PIL import Image
from playwright.sync_api import BrowserContext, Page, expect
from sqlalchemy import select

from tests.browser import A11y, LiveServer, assert_fits_viewport
from tests.conftest import run_worker
from tests.test_billing_plans import _make_supporter
from tests.test_campaign_journey import log_in
from tests.test_signing_journey import PHONE, heading, published_campaign
from web.accounts.models import User
from web.collectives.models import Membership
from web.http import database
from web.tenancy import set_current_collective

PRIMARY = "#1d4f91"
ACCENT = "#00703c"


def _check(page: Page, a11y: A11y) -> None:
    a11y.check(page)
    assert_fits_viewport(page)


def test_an_owner_on_a_phone_brands_and_previews_the_pdf_letter(
    live: LiveServer, new_context: Callable[..., BrowserContext], tmp_path: Path
) -> None:
    world = published_campaign(live)
    collective_slug = world.path.split("/")[1]
    with database(live.app).session_scope() as s:
        set_current_collective(s, world.collective_id)
        _make_supporter(s, world.collective_id)
        email = s.scalars(select(User.email).join(Membership, Membership.user_id == User.id)).one()
    a11y = A11y()
    page = a11y.watch(new_context(**PHONE).new_page())
    plan = f"/app/{collective_slug}/plan"
    log_in(page, a11y, email, plan)

    # The Plan page says what the collective has and links to the branding.
    expect(heading(page)).to_have_text("Plan")
    expect(page.get_by_role("main")).to_contain_text("Supporter")
    _check(page, a11y)
    page.get_by_role("link", name="Set your logo and colours").click()
    expect(heading(page)).to_have_text("Logo and colours")
    _check(page, a11y)

    # A colour too light to read is refused with a summary linking to the field.
    page.get_by_label("Main colour (optional)").fill("#ffdd00")
    page.get_by_role("button", name="Save the colours").click()
    summary = page.locator(".error-summary")
    expect(summary).to_be_visible()
    _check(page, a11y)
    page.get_by_label("Main colour (optional)").fill(PRIMARY)
    page.get_by_label("Accent colour (optional)").fill(ACCENT)
    page.get_by_role("button", name="Save the colours").click()
    expect(page.get_by_role("status")).to_contain_text("Your colours are saved")
    _check(page, a11y)

    logo = tmp_path / "logo.png"
    Image.new("RGB", (240, 80), PRIMARY).save(logo, format="PNG")
    upload = page.get_by_role("region", name="Logo").get_by_label("Logo", exact=True)
    upload.set_input_files(str(logo))
    page.get_by_role("button", name="Upload the logo").click()
    expect(page.get_by_role("status")).to_contain_text("Your logo is saved")
    expect(page.get_by_role("img", name="Your current logo")).to_be_visible()
    _check(page, a11y)

    # The campaign's PDF letter tab, then a preview.
    page.goto(f"/app/{collective_slug}/campaigns/{world.campaign_id}/pdf")
    expect(heading(page)).to_have_text("PDF letter")
    expect(page.get_by_role("main")).to_contain_text("No PDF has been made yet.")
    _check(page, a11y)
    page.get_by_role("button", name="Preview PDF").click()
    expect(page).to_have_url(re.compile(r"/pdf/\d+$"))
    expect(page.get_by_role("heading", level=2)).to_have_text("Making the PDF")
    expect(page.locator("#render-progress")).to_be_attached()
    _check(page, a11y)

    # The worker makes the PDF; the page's script, polling, reloads it by itself once the
    # render is done (reloading here as well raced with it: two documents, one unchecked).
    run_worker(live.app)
    expect(page.get_by_role("heading", level=2)).to_have_text("Ready", timeout=30_000)
    expect(page.locator("#render-status")).to_contain_text("Your PDF is ready.")
    _check(page, a11y)

    # The downloaded preview carries the logo on its first page.
    download = page.get_by_role("link", name="Download the PDF")
    response = page.request.get(download.get_attribute("href") or "")
    assert response.status == 200
    assert response.headers["content-type"] == "application/pdf"
    with pikepdf.open(io.BytesIO(response.body())) as pdf:
        images = [
            name
            for name, obj in pdf.pages[0].resources.get("/XObject", pikepdf.Dictionary()).items()
            if obj.get("/Subtype") == "/Image"
        ]
        assert len(images) == 1

    # Back on the PDF letter tab, the preview is listed.
    page.goto(f"/app/{collective_slug}/campaigns/{world.campaign_id}/pdf")
    expect(page.get_by_role("main")).to_contain_text("Your PDF is ready.")
    _check(page, a11y)
    a11y.assert_every_page_checked()
