"""/verify: anyone can check whether a PDF is a document Chorus generated.

No login, no JavaScript. Two small forms on one page, each with its CSRF token and its own
address: upload the PDF (`/verify/file`), or paste its SHA-256 (`/verify/fingerprint`).
The answer names the campaign, the collective, the letter version, the kind and the date
(`web.pdf.services.verify_fingerprint`), or says plainly that no Chorus document has that
fingerprint. Nothing else about any collective is read or shown.

Uploads: the app caps request bodies at 2 MB (web/app.py); this blueprint raises the cap
to 25 MB for `/verify/file` only. It does so in a URL value preprocessor because those run
before every `before_request` hook, and the CSRF check (the first of those) reads the
body. A larger upload is a 413 page that says how large a file may be and what to do
instead. The file is hashed in 1 MB chunks as Werkzeug spooled it (to disk past 500 KB),
never held in memory whole, and never stored.

Both forms share a rate limit per address (flask-limiter): a fingerprint check is cheap,
but nobody needs hundreds a minute.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response
from wtforms import StringField

from web.extensions import limiter
from web.http import db_session
from web.pdf import services

bp = Blueprint("verify", __name__)

VERIFY_LIMIT = "20 per minute;200 per hour"
FORM_OVERHEAD = 64 * 1024  # the CSRF token and multipart headers around the file
MAX_FINGERPRINT_FIELD = 1000  # generous for a pasted hash with spaces and line breaks


class FileCheckForm(FlaskForm):
    document = FileField(
        "PDF file",
        description=(
            f"The PDF you want to check, up to {services.MAX_UPLOAD_BYTES // (1024 * 1024)} "
            "MB. We do not keep it: we only work out its fingerprint."
        ),
    )


class FingerprintForm(FlaskForm):
    fingerprint = StringField(
        "Fingerprint (SHA-256)",
        description=(
            "64 characters: digits 0-9 and letters a-f. Spaces, line breaks and capital "
            "letters are fine."
        ),
    )


@bp.url_value_preprocessor
def allow_pdf_uploads(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    if endpoint == "verify.check_file":
        request.max_content_length = services.MAX_UPLOAD_BYTES + FORM_OVERHEAD


def _page(
    *,
    file_form: FileCheckForm | None = None,
    fingerprint_form: FingerprintForm | None = None,
    submitted: FlaskForm | None = None,
    status: int = 200,
    **answer: Any,
) -> Response:
    html = render_template(
        "pdf_pages/verify.html",
        file_form=file_form or FileCheckForm(formdata=None),
        fingerprint_form=fingerprint_form or FingerprintForm(formdata=None),
        submitted=submitted,
        max_mb=services.MAX_UPLOAD_BYTES // (1024 * 1024),
        **answer,
    )
    response = make_response(html, status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _answer(fingerprint: str) -> dict[str, Any]:
    s = db_session()
    documents = services.verify_fingerprint(s, fingerprint)
    versions = [] if documents else services.letter_versions_with(s, fingerprint)
    return {
        "checked": True,
        "fingerprint": fingerprint,
        "documents": documents,
        "versions": versions,
    }


@bp.get("/verify")
def page() -> Response:
    return _page()


@bp.get("/verify/file")
@bp.get("/verify/fingerprint")
def back_to_form() -> Response:
    """A reload of an answer's address (a GET) goes back to the forms."""
    return redirect(url_for("verify.page"), 303)


@bp.post("/verify/file")
@limiter.shared_limit(VERIFY_LIMIT, scope="verify")
def check_file() -> Response:
    form = FileCheckForm()
    form.validate_on_submit()  # the CSRF token was checked before the view ran
    upload = request.files.get("document")
    if upload is None or not upload.filename:
        form.document.errors = ["Choose the PDF file to check."]
        return _page(file_form=form, submitted=form, status=400)
    try:
        fingerprint, size = services.fingerprint_upload(upload.stream)
    except services.UploadRefused as exc:
        form.document.errors = [str(exc)]
        return _page(file_form=form, submitted=form, status=exc.status)
    return _page(file_form=form, uploaded_size=size, **_answer(fingerprint))


@bp.post("/verify/fingerprint")
@limiter.shared_limit(VERIFY_LIMIT, scope="verify")
def check_fingerprint() -> Response:
    form = FingerprintForm()
    form.validate_on_submit()
    raw = form.fingerprint.data or ""
    try:
        if len(raw) > MAX_FINGERPRINT_FIELD:
            raise services.FingerprintInvalid(
                "That is far longer than a fingerprint (SHA-256), which is 64 characters. "
                "Paste only the fingerprint."
            )
        fingerprint = services.parse_fingerprint(raw)
    except services.FingerprintInvalid as exc:
        form.fingerprint.errors = [str(exc)]
        if len(raw) > MAX_FINGERPRINT_FIELD:
            form.fingerprint.data = ""  # do not echo a megabyte back
        return _page(fingerprint_form=form, submitted=form, status=400)
    form.fingerprint.data = fingerprint
    return _page(fingerprint_form=form, **_answer(fingerprint))


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_exc: RequestEntityTooLarge) -> Response:
    # The body was not read (that is the point), so neither form can be rebuilt from it.
    if request.endpoint == "verify.check_file":
        form = FileCheckForm(formdata=None)
        form.document.errors = [services.too_large_message()]
        return _page(file_form=form, submitted=form, status=413)
    fingerprint_form = FingerprintForm(formdata=None)
    fingerprint_form.fingerprint.errors = [
        "What you sent is too large. A fingerprint (SHA-256) is 64 characters: paste only "
        "the fingerprint."
    ]
    return _page(fingerprint_form=fingerprint_form, submitted=fingerprint_form, status=413)
