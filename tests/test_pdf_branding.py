"""The collective's own logo and colours on its letters (issue #7, Supporter features).

`build_letter` copies the branding into the `LetterDoc` only while the collective has the
Supporter features; the renderer draws the logo at the top of the letter's first page,
served from the bytes given to that render (never a file or a data: URL), and uses the
colours for headings and rules only when they read on white (WCAG AA).
"""

from __future__ import annotations

import io
from dataclasses import replace

import pikepdf
import pypdf
import pytest
from flask import Flask
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.test_billing_plans import _make_free, _make_supporter
from tests.test_pdf_engine import letter_doc, signatories
from tests.test_pdf_security import (  # noqa: F401 - fixtures used by name
    Listener,
    Secrets,
    _pdf_bytes_everywhere,
    _render_hostile,
    listener,
    secret_files,
)
from tests.test_signatures import _published
from web.billing import services as billing
from web.campaigns.models import Campaign
from web.collectives.models import Membership
from web.pdf.context import build_letter, inputs_hash
from web.pdf.engine import render_letter
from web.pdf.safety import (
    LOGO_URL,
    AssetFetcher,
    RefusedResource,
    checked_logo,
    safe_colour,
)
from web.tenancy import set_current_collective

PRIMARY = "#1d4f91"  # 8.6:1 on white
ACCENT = "#00703c"  # 6.4:1 on white


def _png(size: tuple[int, int] = (240, 80), colour: str = PRIMARY) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def _images(data: bytes) -> list[list[str]]:
    """The image XObjects each page draws (their resource names), page by page."""
    found: list[list[str]] = []
    with pikepdf.open(io.BytesIO(data)) as pdf:
        for page in pdf.pages:
            xobjects = page.resources.get("/XObject", pikepdf.Dictionary())
            found.append(
                [str(name) for name, obj in xobjects.items() if obj.get("/Subtype") == "/Image"]
            )
    return found


def _fill_colours(data: bytes, page_number: int) -> set[tuple[float, float, float]]:
    """The RGB fill colours (`r g b rg`) used on one page, rounded to 2 places."""
    with pikepdf.open(io.BytesIO(data)) as pdf:
        return {
            tuple(round(float(x), 2) for x in operands)  # type: ignore[misc]
            for operands, operator in pikepdf.parse_content_stream(pdf.pages[page_number])
            if str(operator) == "rg" and len(operands) == 3
        }


def _rgb(colour: str) -> tuple[float, float, float]:
    return tuple(round(int(colour[i : i + 2], 16) / 255, 2) for i in (1, 3, 5))  # type: ignore[return-value]


def _text(data: bytes) -> list[str]:
    return [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages]


def _image_alts(data: bytes) -> list[str]:
    """Alt text of every /Figure in the structure tree."""
    alts: list[str] = []
    with pikepdf.open(io.BytesIO(data)) as pdf:

        def walk(element: pikepdf.Object) -> None:
            if isinstance(element, pikepdf.Dictionary):
                if element.get("/S") == "/Figure":
                    alts.append(str(element.get("/Alt", "")))
                kids = element.get("/K")
                if kids is not None:
                    for kid in kids if isinstance(kids, pikepdf.Array) else [kids]:
                        walk(kid)

        walk(pdf.Root.StructTreeRoot)
    return alts


def _branded_world(session: Session, app: Flask) -> tuple[Membership, Campaign]:
    collective, campaign = _published(session, app)
    set_current_collective(session, collective.id)
    member = session.scalar(select(Membership))
    assert member is not None
    _make_supporter(session, collective.id)
    billing.save_logo(session, member, collective.id, _png())
    billing.save_colours(session, member, collective.id, primary=PRIMARY, accent=ACCENT)
    session.flush()
    return member, campaign


def test_a_supporter_letter_has_the_logo_on_page_one_and_the_colours(
    session: Session, app: Flask
) -> None:
    _member, campaign = _branded_world(session, app)
    inputs = build_letter(session, campaign, draft=True, verify_url="")
    doc = inputs.doc
    assert doc.logo.startswith(b"\x89PNG")
    assert doc.logo_type == "image/png"
    assert (doc.primary_colour, doc.accent_colour) == (PRIMARY, ACCENT)

    pdf = render_letter(doc, inputs.signatories, inputs.voices)
    images = _images(pdf.data)
    assert len(images[0]) == 1, images  # the logo, on the letter's first page
    assert not any(images[1:]), images  # and nowhere else
    # The logo is a tagged figure whose alternative text is the collective's name.
    assert _image_alts(pdf.data) == [doc.sender.name]
    # The text still reads in order: sender, date, recipient, subject, salutation.
    first = _text(pdf.data)[0]
    order = [doc.sender.name, doc.date, doc.recipient.organisation, doc.subject, doc.salutation]
    assert all(order), order
    positions = [first.find(piece) for piece in order]
    assert -1 not in positions, (order, first)
    assert positions == sorted(positions), first
    # Headings are set in the main colour, on the letter and on annex C (the last page).
    assert _rgb(PRIMARY) in _fill_colours(pdf.data, 0)
    assert _rgb(PRIMARY) in _fill_colours(pdf.data, pdf.pages - 1)


def test_a_free_collective_keeps_its_branding_but_its_letter_has_none(
    session: Session, app: Flask
) -> None:
    _member, campaign = _branded_world(session, app)
    branded = build_letter(session, campaign, draft=True, verify_url="")
    _make_free(session, campaign.collective_id)
    plain = build_letter(session, campaign, draft=True, verify_url="")
    assert (plain.doc.logo, plain.doc.logo_type) == (b"", "")
    assert (plain.doc.primary_colour, plain.doc.accent_colour) == ("", "")
    assert inputs_hash(plain) != inputs_hash(branded)

    pdf = render_letter(plain.doc, plain.signatories, plain.voices)
    assert not any(_images(pdf.data))
    assert _rgb(PRIMARY) not in _fill_colours(pdf.data, 0)


def test_the_cache_key_covers_the_logo_and_each_colour() -> None:
    from web.pdf.context import LetterInputs

    def key(**changes: object) -> str:
        return inputs_hash(LetterInputs(letter_doc(**changes), [], [], None))

    plain = key()
    logo = key(logo=_png(), logo_type="image/png")
    keys = {
        plain,
        logo,
        key(logo=_png(colour="#000000"), logo_type="image/png"),
        key(primary_colour=PRIMARY),
        key(accent_colour=ACCENT),
    }
    assert len(keys) == 5
    assert key(logo=_png(), logo_type="image/png") == logo  # equal inputs, equal key


def test_colours_that_do_not_read_on_white_fall_back() -> None:
    assert safe_colour(PRIMARY, "#000000") == PRIMARY
    assert safe_colour("#1D4F91", "#000000") == PRIMARY
    for bad in ("#ffdd00", "#ffffff", "", "red", "#1d4f9", "#1d4f911", "#1d4f91;}", " #1d4f91"):
        assert safe_colour(bad, "#000000") == "#000000", bad


def test_only_png_and_jpeg_logos_are_served_and_only_at_their_url(
    secret_files: Secrets,  # noqa: F811
) -> None:
    png = _png()
    assert checked_logo(png, "image/png") == (png, "image/png")
    image = f'<image href="{secret_files.svg.as_uri()}"/>'
    svg = f'<svg xmlns="http://www.w3.org/2000/svg">{image}</svg>'
    for data, kind in (
        (svg.encode(), "image/svg+xml"),
        (svg.encode(), "image/png"),  # a declared type that the bytes contradict
        (png, "image/svg+xml"),
        (png, "text/css"),
        (b"", "image/png"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * (3 * 1024 * 1024), "image/png"),  # absurdly large
    ):
        assert checked_logo(data, kind) is None, kind

    fetcher = AssetFetcher(logo=(png, "image/png"))
    assert fetcher.fetch(LOGO_URL).read() == png
    for url in (
        LOGO_URL + "/../../letter.css",
        LOGO_URL + ".png",
        "chorus-asset:branding/../branding/logo",
        "data:image/png;base64,iVBORw0KGgo=",
        secret_files.text.as_uri(),
    ):
        with pytest.raises(RefusedResource):
            fetcher.fetch(url)
    # Without a logo given to this render, its URL is refused like any other.
    with pytest.raises(RefusedResource):
        AssetFetcher().fetch(LOGO_URL)


def test_a_hostile_logo_and_colours_reach_nothing(
    listener: Listener,  # noqa: F811
    secret_files: Secrets,  # noqa: F811
) -> None:
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        f'<image href="{secret_files.svg.as_uri()}"/>'
        f'<image xlink:href="http://127.0.0.1:{listener.port}/x"/>'
        f'<style>@import url("{secret_files.css.as_uri()}");</style></svg>'
    ).encode()
    hostile_colour = f'#000000; }} body {{ background: url("{secret_files.svg.as_uri()}") }} a {{'
    for logo, kind in ((svg, "image/svg+xml"), (svg, "image/png"), (svg, "image/jpeg")):
        doc = letter_doc(
            logo=logo,
            logo_type=kind,
            primary_colour=hostile_colour,
            accent_colour=f"url(http://127.0.0.1:{listener.port}/c)",
        )
        data = _render_hostile(doc, listener, secret_files)
        assert data is not None
        assert not any(_images(data))  # refused: no logo at all, rather than a wrong one
        assert b"CHORUS-SECRET" not in _pdf_bytes_everywhere(data)

    # A letter's own HTML may name the logo's URL: without a logo it is simply refused,
    # and the annexes (rendered without the logo's bytes) never fetch it.
    body = f'<p>Before.</p><img src="{LOGO_URL}" alt="x"><p>After.</p>'
    data = _render_hostile(
        replace(letter_doc(), body_html=body), listener, secret_files, signatories(3)
    )
    assert data is not None
    assert not any(_images(data))
