"""One part of the letter, rendered to a tagged PDF: runs only inside a render process.

The engine (`web.pdf.engine`) starts a process per part and calls `render_part` there;
this module imports WeasyPrint, so nothing on the web side imports it. The template gets
the contract's dataclasses, cleaned (`web.pdf.safety.clean_data`), and the part's rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from markupsafe import Markup
from weasyprint import HTML

from web.pdf.contract import LetterDoc, Signatory, Voice
from web.pdf.engine import Part
from web.pdf.safety import (
    LOGO_URL,
    MAX_NAME,
    MAX_VOICE,
    AssetFetcher,
    check_nesting,
    checked_logo,
    clean_data,
    clean_text,
    safe_colour,
    template_environment,
)

PDF_VARIANT = "pdf/ua-1"
# Relative URLs in the letter's HTML resolve against this (and are then refused by the
# fetcher like any URL that is not chorus-asset:); without a base, WeasyPrint fails the
# whole render on some of them (`@import "//host/x"`) instead of skipping them. The .invalid
# top-level domain never resolves (RFC 2606), and the fetcher opens no connection anyway.
BASE_URL = "https://base.chorus.invalid/"
TEMPLATES = {
    "letter": "letter.html",
    "signatories": "annex_signatories.html",
    "voices": "annex_voices.html",
    "method": "annex_method.html",
}
# Headings and rules are black and links dark blue unless the collective's colours (Supporter
# features) are dark enough to read on white; see web.pdf.safety.safe_colour.
TEXT_COLOUR = "#000000"
LINK_COLOUR = "#0b3d91"
NAMES_PER_PARAGRAPH = 100  # annex A flows as paragraphs of names: few boxes, fast layout

SUMMARY_HEADINGS = {
    "minister": "In brief",
    "policy_team": "Executive summary",
}


def paragraphs(text: str) -> list[str]:
    """Plain text split into paragraphs at blank lines (single newlines join)."""
    blocks = [" ".join(block.split()) for block in text.replace("\r\n", "\n").split("\n\n")]
    return [block for block in blocks if block]


def is_web_url(url: str) -> bool:
    """Only http(s) evidence links become PDF links; anything else is printed as text."""
    return url.lower().startswith(("https://", "http://"))


def html_for(doc: LetterDoc, part: Part) -> str:
    """The part's HTML: the sandboxed template over the cleaned contract data."""
    # Every plain string is cleaned and capped; the letter's HTML is cleaned but never cut
    # (cutting it would drop the end of the letter and split a tag).
    doc = replace(clean_data(doc), body_html=clean_text(doc.body_html, limit=len(doc.body_html)))
    items: Sequence[Signatory] | Sequence[Voice]
    if part.kind == "voices":
        items = clean_data(part.items, MAX_VOICE)
    else:
        items = clean_data(part.items, MAX_NAME)
    context: dict[str, Any] = {
        "doc": doc,
        "part": part,
        "items": items,
        "paragraphs": paragraphs,
        "summary_heading": SUMMARY_HEADINGS.get(doc.audience_style, "Summary"),
        "names_per_paragraph": NAMES_PER_PARAGRAPH,
        "is_web_url": is_web_url,
        "primary_colour": safe_colour(doc.primary_colour, TEXT_COLOUR),
        "accent_colour": safe_colour(doc.accent_colour, LINK_COLOUR),
        "logo_url": LOGO_URL if checked_logo(doc.logo, doc.logo_type) else "",
    }
    if part.kind == "letter":
        check_nesting(doc.body_html)
        # The one place the letter's HTML is trusted: web.campaigns.markdown rendered and
        # sanitised it. Even if that failed, the fetcher and the render limits hold.
        context["body_html"] = Markup(doc.body_html)  # noqa: S704 - sanitised upstream
    env = template_environment()
    return env.get_template(TEMPLATES[part.kind]).render(context)


def render_part(doc: LetterDoc, part: Part) -> tuple[bytes, int]:
    """The part as a tagged PDF (PDF/UA-1 variant) and its page count."""
    # Only the letter shows the logo, so only its render may fetch it.
    logo = checked_logo(doc.logo, doc.logo_type) if part.kind == "letter" else None
    fetcher = AssetFetcher(logo=logo)
    html = HTML(string=html_for(doc, part), base_url=BASE_URL, url_fetcher=fetcher)
    document = html.render(pdf_variant=PDF_VARIANT)
    data = document.write_pdf(pdf_variant=PDF_VARIANT)
    return data, len(document.pages)


def render_html_page(html: str) -> tuple[bytes, int]:
    """A small document made elsewhere from a sandboxed template (a postal cover sheet)
    as PDF, with the same URL fetcher: our own assets only, no logo."""
    document = HTML(string=html, base_url=BASE_URL, url_fetcher=AssetFetcher()).render()
    return document.write_pdf(), len(document.pages)


def warm_up() -> None:
    """Render the method annex of a tiny letter and throw it away (see web.pdf.preload)."""
    from web.pdf.contract import MethodFacts, Party

    party = Party(name="Chorus")
    doc = LetterDoc(
        reference="CH-warm-up",
        title="Warm-up",
        subject="Warm-up",
        date="",
        kind="open_letter",
        audience_style="minister",
        sender=party,
        recipient=party,
        salutation="",
        summary="",
        body_html="",
        asks=(),
        closing="",
        sign_off="",
        method=MethodFacts(verified_total=0),
    )
    render_part(doc, Part("method"))
