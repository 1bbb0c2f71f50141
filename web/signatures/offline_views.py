"""Organiser pages for assisted and paper signatures (under
/app/<collective-slug>/campaigns/<id>/signatures/...): record one signature taken by a
helper, import a CSV file of paper forms, and read the import history and each import's
report.

Recording and importing are for owners and organisers: anyone else gets a 403 page
saying who may act, for the form as for the action. Every member may read the import
history and reports (they hold line numbers and reasons, no personal data) and download
the template. The rules themselves live in `web.signatures.offline`.
"""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response
from wtforms import (
    BooleanField,
    EmailField,
    RadioField,
    SelectChoice,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Optional

from web.campaigns.models import Campaign
from web.collectives.models import Role
from web.collectives.services import require_role
from web.collectives.tenant import campaign_or_404, current_membership, tenant_blueprint
from web.forms import email_address, max_length, no_control_characters, required, strip
from web.http import MESSAGES, db_session, error_response, refused
from web.signatures import offline

bp = tenant_blueprint("offline_signatures", __name__)

PREFIX = "/<slug:collective_slug>/campaigns/<id:campaign_id>/signatures"

Page = Response | str | tuple[str, int]

CHANNEL_CHOICES = [
    SelectChoice("phone", "By phone"),
    SelectChoice("in_person", "In person"),
    SelectChoice("paper", "On a paper form"),
]
CHANNEL_PHRASES = {"phone": "by phone", "in_person": "in person", "paper": "on paper"}
TEMPLATE_NAME = "paper-signatures-template.csv"
TOO_LARGE = (
    "The file is too large: a CSV file must be smaller than 2 MB (that is many thousands "
    "of signatures). Split it into smaller files and import each one; importing the same "
    "rows twice adds nothing."
)


class RecordForm(FlaskForm):
    channel = RadioField(
        "How was the signature taken?",
        choices=CHANNEL_CHOICES,
        validators=[InputRequired(message="Choose how the signature was taken.")],
    )
    helper_name = StringField(
        "Helper’s name",
        description="Who took the signature: on the phone, in person or on the paper form.",
        filters=[strip],
        validators=[
            required("the name of the person who took the signature"),
            max_length(offline.MAX_HELPER, "The helper’s name"),
            no_control_characters,
        ],
    )
    name = StringField(
        "Signer’s name",
        filters=[strip],
        validators=[
            required("the signer’s name"),
            max_length(offline.MAX_NAME, "The signer’s name"),
            no_control_characters,
        ],
    )
    email = EmailField(
        "Signer’s email address (optional)",
        description="Only if they gave one. Without it, the name and postcode tell signers apart.",
        filters=[strip],
        validators=[
            Optional(),
            max_length(offline.MAX_EMAIL, "The email address"),
            email_address(),
        ],
    )
    postcode = StringField(
        "Postcode",
        description="Like SW1A 1AA. Only the area (SW1A) is ever shown.",
        filters=[strip],
        validators=[max_length(10, "The postcode"), no_control_characters],
    )
    statement = TextAreaField(
        "In their own words (optional)",
        description="What they said about why this matters to them, up to 2,000 characters.",
        filters=[strip],
        validators=[max_length(2000, "Their own words")],
    )
    show_name = BooleanField("Show their name on the campaign page")
    wants_updates = BooleanField("Send them updates about this campaign (needs their email)")
    consent = BooleanField(
        "They agreed to sign this letter, and to us recording these details",
        validators=[
            DataRequired(
                message="Confirm that the person agreed to sign this letter. If they did "
                "not, do not record a signature for them."
            )
        ],
    )


class ImportForm(FlaskForm):
    file = FileField(
        "CSV file",
        description="UTF-8 text, smaller than 2 MB, with the column names on the first line.",
        validators=[FileRequired(message="Choose the CSV file to import.")],
    )
    helper_name = StringField(
        "Collected by (optional)",
        description="Who collected these paper forms, for your records.",
        filters=[strip],
        validators=[max_length(offline.MAX_HELPER, "Collected by"), no_control_characters],
    )
    consent = BooleanField(
        "Every person in this file signed a paper form themselves",
        validators=[
            DataRequired(
                message="Confirm that every person in the file signed a paper form themselves."
            )
        ],
    )


def _readers_refused() -> tuple[str, int] | None:
    """Owners and organisers only: the same 403 for the form page as for its POST."""
    try:
        require_role(current_membership(), Role.OWNER, Role.ORGANISER)
    except PermissionError as exc:
        return refused(str(exc), 403)
    return None


def _not_open(campaign: Campaign) -> str:
    try:
        offline.check_open(campaign)
    except offline.OfflineError as exc:
        return str(exc)
    return ""


def _field_error(form: FlaskForm, exc: offline.OfflineError) -> str:
    """Put the service's message on its field; return it if it belongs to none."""
    field = getattr(form, exc.field, None) if exc.field else None
    if field is None:
        return str(exc)
    field.errors = [*field.errors, str(exc)]
    return ""


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_exc: RequestEntityTooLarge) -> Response:
    limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
    if request.content_length and limit and request.content_length > limit:
        return error_response(413, TOO_LARGE)
    return error_response(413, MESSAGES[413])


# --- record one signature ----------------------------------------------------------------


def _render_record(
    campaign: Campaign, form: RecordForm, error: str = "", status: int = 200
) -> tuple[str, int]:
    if campaign.postcode_mode == "optional":
        form.postcode.label.text = "Postcode (optional)"
    return render_template(
        "signatures/record.html",
        campaign=campaign,
        form=form,
        error=error,
        closed=_not_open(campaign),
    ), status


@bp.get(f"{PREFIX}/record")
def record(campaign_id: int) -> Page:
    campaign = campaign_or_404(campaign_id)
    denied = _readers_refused()
    if denied:
        return denied
    form = RecordForm(formdata=None)
    form.helper_name.data = current_membership().user.display_name
    return _render_record(campaign, form)


@bp.post(f"{PREFIX}/record")
def record_post(campaign_id: int) -> Page:
    campaign = campaign_or_404(campaign_id)
    denied = _readers_refused()
    if denied:
        return denied
    form = RecordForm()
    closed = _not_open(campaign)
    if closed:
        return _render_record(campaign, form, error=closed, status=422)
    if not form.validate_on_submit():
        return _render_record(campaign, form, status=422)
    try:
        signature = offline.record_assisted_signature(
            db_session(),
            current_membership(),
            campaign,
            channel=form.channel.data or "",
            helper_name=form.helper_name.data or "",
            consent=bool(form.consent.data),
            name=form.name.data or "",
            email=form.email.data or "",
            postcode=form.postcode.data or "",
            statement=form.statement.data or "",
            show_name=bool(form.show_name.data),
            wants_updates=bool(form.wants_updates.data),
        )
    except PermissionError as exc:
        return refused(str(exc), 403)
    except offline.AlreadySigned as exc:
        return _render_record(campaign, form, error=_field_error(form, exc), status=409)
    except offline.OfflineError as exc:
        return _render_record(campaign, form, error=_field_error(form, exc), status=422)
    flash(
        f"Recorded the signature of {signature.name}, taken "
        f"{CHANNEL_PHRASES[signature.channel]}. It counts now. You can record the next one "
        "below.",
        "success",
    )
    return redirect(url_for("offline_signatures.record", campaign_id=campaign.id), 303)


# --- import paper signatures ----------------------------------------------------------------


def _render_import(
    campaign: Campaign, form: ImportForm, error: str = "", status: int = 200
) -> tuple[str, int]:
    return render_template(
        "signatures/import.html",
        campaign=campaign,
        form=form,
        error=error,
        closed=_not_open(campaign),
        columns=offline.COLUMNS,
        max_rows=offline.MAX_ROWS,
    ), status


@bp.get(f"{PREFIX}/import")
def import_form(campaign_id: int) -> Page:
    campaign = campaign_or_404(campaign_id)
    denied = _readers_refused()
    if denied:
        return denied
    return _render_import(campaign, ImportForm(formdata=None))


@bp.post(f"{PREFIX}/import")
def import_post(campaign_id: int) -> Page:
    campaign = campaign_or_404(campaign_id)
    denied = _readers_refused()
    if denied:
        return denied
    form = ImportForm()
    closed = _not_open(campaign)
    if closed:
        return _render_import(campaign, form, error=closed, status=422)
    if not form.validate_on_submit():
        return _render_import(campaign, form, status=422)
    upload: FileStorage = form.file.data
    data = upload.stream.read(offline.MAX_FILE_BYTES + 1)
    try:
        imported = offline.import_paper_signatures(
            db_session(),
            current_membership(),
            campaign,
            file_name=upload.filename or "",
            data=data,
            helper_name=form.helper_name.data or "",
            consent=bool(form.consent.data),
        )
    except PermissionError as exc:
        return refused(str(exc), 403)
    except offline.ImportRefused as exc:
        form.file.errors = [*form.file.errors, str(exc)]
        return _render_import(campaign, form, status=exc.status)
    except offline.OfflineError as exc:
        return _render_import(campaign, form, error=_field_error(form, exc), status=422)
    n = imported.imported_count
    flash(
        f"Imported {n:,} signature{'' if n == 1 else 's'}. "
        f"{imported.duplicate_count:,} duplicate{'' if imported.duplicate_count == 1 else 's'} "
        f"and {imported.invalid_count:,} invalid row{'' if imported.invalid_count == 1 else 's'} "
        "were not imported: they are listed below.",
        "success",
    )
    return redirect(
        url_for("offline_signatures.import_report", campaign_id=campaign.id, import_id=imported.id),
        303,
    )


@bp.get(f"{PREFIX}/import/template.csv")
def import_template(campaign_id: int) -> Response:
    campaign_or_404(campaign_id)
    response = Response(offline.template_csv(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{TEMPLATE_NAME}"'
    return response


# --- history and reports ----------------------------------------------------------------------


@bp.get(f"{PREFIX}/imports")
def imports(campaign_id: int) -> str:
    campaign = campaign_or_404(campaign_id)
    s = db_session()
    page = request.args.get("page", 1, type=int) or 1
    listing = offline.list_imports(s, campaign, page)
    return render_template(
        "signatures/imports.html",
        campaign=campaign,
        listing=listing,
        can_act=current_membership().role in (Role.OWNER, Role.ORGANISER),
    )


@bp.get(f"{PREFIX}/imports/<id:import_id>")
def import_report(campaign_id: int, import_id: int) -> str:
    campaign = campaign_or_404(campaign_id)
    s = db_session()
    record = offline.get_import(s, campaign, import_id)
    if record is None:
        abort(404)
    rows = [e for e in record.report if e.get("kind") in ("invalid", "duplicate")]
    notes = [str(e.get("reason", "")) for e in record.report if e.get("kind") == "note"]
    return render_template(
        "signatures/import_report.html",
        campaign=campaign,
        record=record,
        rows=rows,
        notes=notes,
        earlier=offline.earlier_imports_of_same_file(s, record),
        importer=offline.importer_name(s, record),
        can_act=current_membership().role in (Role.OWNER, Role.ORGANISER),
    )
