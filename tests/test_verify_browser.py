"""The public /verify page in a real browser, on a phone, with and without JavaScript:
a civil servant checks a PDF by uploading it or by pasting its fingerprint, recovers
from a mistyped fingerprint with the keyboard alone, and axe-core finds nothing serious
on any page on the way."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import BrowserContext, expect

from tests.browser import A11y, LiveServer
from tests.test_signing_journey import PHONE, heading, published_campaign
from web.http import database
from web.pdf.models import Document
from web.tenancy import set_current_collective

PDF = b"%PDF-1.7\n% a letter Chorus made, as far as /verify is concerned\n%%EOF\n"


def _store_document(live: LiveServer) -> str:
    """A generated letter's record, as the render job leaves it (the job and engine have
    their own tests); returns its SHA-256."""
    world = published_campaign(live)
    digest = hashlib.sha256(PDF).hexdigest()
    with database(live.app).session_scope() as s:
        set_current_collective(s, world.collective_id)
        s.add(
            Document(
                collective_id=world.collective_id,
                campaign_id=world.campaign_id,
                kind="final",
                sha256=digest,
                size=len(PDF),
                pages=1,
                inputs_hash="0" * 64,
                data=PDF,
            )
        )
    return digest


def test_an_official_checks_a_letter_by_file_and_by_fingerprint(
    live: LiveServer, new_context: Callable[..., BrowserContext], tmp_path: Path
) -> None:
    digest = _store_document(live)
    a11y = A11y()
    page = a11y.watch(new_context(**PHONE).new_page())
    page.goto("/verify")
    expect(heading(page)).to_have_text("Check a document from Chorus")
    a11y.check(page)

    # Upload the file itself.
    letter = tmp_path / "letter.pdf"
    letter.write_bytes(PDF)
    page.get_by_label("PDF file", exact=True).set_input_files(str(letter))
    page.get_by_role("button", name="Check this file").click()
    result = page.get_by_role("region", name="This is a Chorus document")
    expect(result).to_contain_text("Fair PIP assessments")
    expect(result).to_contain_text("Claimants Together")
    a11y.check(page)

    # A file that is not one of ours.
    other = tmp_path / "other.pdf"
    other.write_bytes(PDF + b"% changed\n")
    page.get_by_label("PDF file", exact=True).set_input_files(str(other))
    page.get_by_role("button", name="Check this file").click()
    expect(page.get_by_role("region", name="Not a Chorus document")).to_be_visible()
    a11y.check(page)

    # A mistyped fingerprint, fixed with the keyboard alone.
    box = page.get_by_label("Fingerprint (SHA-256)", exact=True)
    box.fill(digest[:-1] + "z")
    box.press("Enter")
    summary = page.locator(".error-summary")
    expect(summary).to_be_visible()
    a11y.check(page)
    summary.get_by_role("link").first.press("Enter")
    expect(box).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type(digest.upper())
    page.keyboard.press("Enter")
    expect(page.get_by_role("region", name="This is a Chorus document")).to_be_visible()
    a11y.check(page)
    a11y.assert_every_page_checked()


def test_verify_works_without_javascript(
    live: LiveServer, new_context: Callable[..., BrowserContext]
) -> None:
    digest = _store_document(live)
    a11y = A11y()
    page = a11y.watch(new_context(java_script_enabled=False, **PHONE).new_page())
    twin = new_context(**PHONE).new_page()  # axe runs on a scripted twin of each page
    page.goto("/verify")
    a11y.check_without_scripts(page, twin)
    page.get_by_label("Fingerprint (SHA-256)", exact=True).fill(digest)
    page.get_by_role("button", name="Check this fingerprint").click()
    expect(page.get_by_role("region", name="This is a Chorus document")).to_contain_text(
        "Fair PIP assessments"
    )
    a11y.check_without_scripts(page, twin)
    a11y.assert_every_page_checked()
