"""/verify: anyone can check whether a PDF (or its SHA-256) is a document Chorus made.

The documents here are rows written straight into `documents` (real rows under row-level
security, small stand-in PDFs), so these tests do not depend on the renderer; the journey
from a rendered letter to /verify is in tests/test_pdf_documents.py.
"""

from __future__ import annotations

import hashlib
import io
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.conftest import csrf_token
from tests.test_cross_collective import snapshot
from tests.test_signatures import _published
from web.campaigns import services as campaigns
from web.campaigns.models import Campaign
from web.collectives.models import Collective
from web.pdf.models import Document
from web.pdf.services import MAX_UPLOAD_BYTES
from web.tenancy import set_current_collective

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"
XSS = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'


def _document(
    session: Session, campaign: Campaign, data: bytes = PDF, kind: str = "final"
) -> Document:
    set_current_collective(session, campaign.collective_id)
    version = campaigns.current_version(session, campaign)
    document = Document(
        campaign_id=campaign.id,
        kind=kind,
        letter_version_id=version.id if version else None,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        pages=1,
        inputs_hash=hashlib.sha256(data + kind.encode()).hexdigest(),
        data=data,
    )
    session.add(document)
    session.flush()
    set_current_collective(session, None)
    return document


@pytest.fixture
def world(session: Session, app: Flask) -> tuple[Collective, Campaign, Document]:
    collective, campaign = _published(session, app, slug="fair-pip")
    return collective, campaign, _document(session, campaign)


def _token(client: FlaskClient) -> str:
    page = client.get("/verify")
    assert page.status_code == 200
    return csrf_token(page.get_data(as_text=True))


def _upload(client: FlaskClient, data: bytes, name: str = "letter.pdf", **extra: Any) -> Any:
    return client.post(
        "/verify/file",
        data={"csrf_token": _token(client), "document": (io.BytesIO(data), name), **extra},
        content_type="multipart/form-data",
    )


def _paste(client: FlaskClient, value: str) -> Any:
    return client.post(
        "/verify/fingerprint", data={"csrf_token": _token(client), "fingerprint": value}
    )


def _text(response: Any) -> str:
    return response.get_data(as_text=True)


def _says(response: Any, status: int, phrase: str) -> str:
    body = _text(response)
    assert response.status_code == status, (response.status_code, body[-1500:])
    assert response.mimetype == "text/html"
    assert phrase in body, body[-2000:]
    assert "Traceback" not in body
    assert "<script>alert" not in body
    assert "<img src=x" not in body
    return body


# --- the page --------------------------------------------------------------------------


def test_the_page_offers_both_checks_without_login_or_script(client: FlaskClient) -> None:
    page = client.get("/verify")
    body = _says(page, 200, "Check a document from Chorus")
    assert '<label for="document">PDF file</label>' in body
    assert '<label for="fingerprint">Fingerprint (SHA-256)</label>' in body
    assert 'enctype="multipart/form-data"' in body
    assert body.count('name="csrf_token"') >= 2
    assert "<script" not in body.split("</header>", 1)[1]  # works without JavaScript
    assert "style=" not in body
    assert 'aria-describedby="document-hint"' in body
    # A reload of an answer's address goes back to the forms.
    assert client.get("/verify/file").headers["Location"].endswith("/verify")
    assert client.get("/verify/fingerprint").status_code == 303


# --- answers ---------------------------------------------------------------------------


def test_an_uploaded_chorus_pdf_names_its_campaign_and_nothing_else(
    client: FlaskClient, session: Session, world: Any
) -> None:
    collective, _, document = world
    body = _says(_upload(client, PDF), 200, "This is a Chorus document: ")
    assert (
        f"<strong>Fair PIP</strong> by <strong>{collective.name}</strong>, letter version 1, "
        f"final letter, generated {document.created_at:%-d %B %Y at %H:%M} UTC."
    ) in body
    assert document.sha256 in body
    assert f"({len(PDF):,} bytes)" in body
    # Nothing else about the collective or the campaign.
    assert collective.contact_address.splitlines()[0] not in body
    assert "Department for Work and Pensions" not in body
    assert "Summary." not in body


def test_a_pasted_fingerprint_is_found_whatever_its_spacing_and_case(
    client: FlaskClient, world: Any
) -> None:
    _, _, document = world
    spaced = "\n".join(re.findall(".{1,16}", document.sha256.upper()))
    for pasted in (document.sha256, f"  {document.sha256.upper()}  ", spaced):
        body = _says(_paste(client, pasted), 200, "This is a Chorus document: ")
        assert f'id="checked-fingerprint">{document.sha256}</code>' in body


def test_an_unknown_pdf_or_fingerprint_is_not_a_chorus_document(
    client: FlaskClient, world: Any
) -> None:
    expected = "Not a Chorus document: no document with this fingerprint was generated by Chorus"
    _says(_upload(client, PDF + b"% one byte changed\n"), 200, expected)
    _says(_paste(client, "0" * 64), 200, expected)


def test_a_preview_says_it_is_a_draft_and_a_draft_campaign_has_no_version(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    _, campaign = _published(session, app, slug="drafty")
    data = PDF + b"% preview\n"
    _document(session, campaign, data, kind="preview")
    body = _says(_upload(client, data), 200, "preview (marked draft)")
    assert "not the letter that was sent" in body


def test_the_letter_version_hash_printed_in_the_letter_is_recognised_as_text(
    client: FlaskClient, session: Session, world: Any
) -> None:
    collective, campaign, _ = world
    set_current_collective(session, collective.id)
    version = campaigns.current_version(session, campaign)
    assert version is not None
    body = _says(_paste(client, version.sha256), 200, "Not a Chorus document")
    assert "belongs to the text of a letter, not to a PDF file: version 1 of" in body
    assert "<strong>Fair PIP</strong>" in body


def test_another_collectives_document_is_found_but_reveals_only_the_answer(
    client: FlaskClient, session: Session, app: Flask, world: Any
) -> None:
    """Collective B's document: the answer names it; B's other data stays hidden, and a
    logged-in member of another collective learns nothing more than a stranger."""
    from tests.factories import login, make_collective, make_user

    collective, _, document = world
    stranger = make_user(session, app)
    make_collective(session, stranger)
    login(client, stranger)
    body = _says(_paste(client, document.sha256), 200, "This is a Chorus document")
    assert collective.contact_address.splitlines()[0] not in body
    assert "%PDF" not in body


# --- hostile and malformed input -------------------------------------------------------


def test_files_that_cannot_be_checked_get_a_message(
    client: FlaskClient, session: Session, world: Any
) -> None:
    before = snapshot(session)
    _says(_upload(client, b"GIF89a not a pdf at all"), 400, "This file is not a PDF.")
    _says(_upload(client, b"", "empty.pdf"), 400, "The file is empty.")
    _says(_upload(client, b"\xff\xfe\x00\x00" * 100, "\u202egnp.exe.pdf"), 400, "not a PDF")
    no_file = client.post(
        "/verify/file",
        data={"csrf_token": _token(client), "document": (io.BytesIO(b""), "")},
        content_type="multipart/form-data",
    )
    body = _says(no_file, 400, "Choose the PDF file to check.")
    assert '<a href="#document">Choose the PDF file to check.</a>' in body  # error summary
    assert 'aria-invalid="true"' in body
    assert snapshot(session) == before


def test_a_file_over_25_mb_gets_a_413_page_that_says_what_to_do(
    client: FlaskClient, world: Any
) -> None:
    huge = b"%PDF-1.7\n" + b"0" * (MAX_UPLOAD_BYTES + 1024)
    body = _says(_upload(client, huge), 413, "larger than 25 MB")
    assert "paste its fingerprint" in body
    # Just under the cap is read, hashed and answered.
    near = b"%PDF-1.7\n" + b"0" * (MAX_UPLOAD_BYTES - 100)
    _says(_upload(client, near), 200, "Not a Chorus document")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "not a hash",
        "a" * 63,
        "a" * 65,
        "g" * 64,
        "０" * 64,  # full-width digits
        "\u202e" + "a" * 64,
        XSS,
        "{{7*7}}" + "a" * 57,
        "a" * 32 + ":" + "a" * 32,
    ],
)
def test_bad_fingerprints_get_a_400_that_says_what_one_looks_like(
    client: FlaskClient, session: Session, value: str
) -> None:
    before = snapshot(session)
    response = _paste(client, value)
    phrase = "Enter the fingerprint" if not value.strip() else "is 64 characters, each a digit"
    body = _says(response, 400, phrase)
    assert '<a href="#fingerprint">' in body
    assert "This is a Chorus document" not in body
    assert snapshot(session) == before


def test_a_megabyte_fingerprint_null_bytes_and_invalid_utf8_are_refused_readably(
    client: FlaskClient,
) -> None:
    _says(_paste(client, "a" * 100_000), 400, "far longer than a fingerprint")
    body = _says(_paste(client, "a" * (1024 * 1024)), 400, "far longer than a fingerprint")
    assert "a" * 1000 not in body  # not echoed back
    _says(_paste(client, "a" * (3 * 1024 * 1024)), 413, "too large")
    _says(_paste(client, "a" * 32 + "\x00" + "a" * 31), 400, "null character")
    raw = client.post(
        "/verify/fingerprint",
        data=b"csrf_token=" + _token(client).encode() + b"&fingerprint=\xff\xfe",
        content_type="application/x-www-form-urlencoded",
    )
    assert raw.status_code == 400
    assert "not valid text" in _text(raw) or "64 characters" in _text(raw)


def test_a_missing_csrf_token_is_a_readable_400(client: FlaskClient) -> None:
    response = client.post("/verify/fingerprint", data={"fingerprint": "0" * 64})
    _says(response, 400, "has expired")
    response = client.post(
        "/verify/file",
        data={"document": (io.BytesIO(PDF), "letter.pdf")},
        content_type="multipart/form-data",
    )
    _says(response, 400, "has expired")


def test_checks_are_rate_limited_per_address(client: FlaskClient, redis: Any) -> None:
    token = _token(client)
    for _ in range(20):
        ok = client.post("/verify/fingerprint", data={"csrf_token": token, "fingerprint": "0" * 64})
        assert ok.status_code == 200
    limited = client.post(
        "/verify/file",
        data={"csrf_token": token, "document": (io.BytesIO(PDF), "letter.pdf")},
        content_type="multipart/form-data",
    )
    assert limited.status_code == 429
    assert "Retry-After" in limited.headers
