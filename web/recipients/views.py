"""Recipient pages.

* `bp`: /app/<collective-slug>/recipients/...: the directory and the collective's own
  recipients (organisers and owners edit; viewers read), and the routing help. A
  `tenant_blueprint`: a non-member gets a 404 and the collective becomes the session's
  tenant, so every query below sees the directory and this collective's rows only.
* `admin_bp`: /admin/recipients/...: the platform operator curates the directory.
  Anyone else, signed in or not, gets a 404: the pages do not exist for them.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from web.collectives.tenant import current_membership, tenant_blueprint
from web.forms import ConfirmForm
from web.http import db_session
from web.recipients import services
from web.recipients.forms import DirectoryEntryForm, RecipientForm
from web.recipients.models import Recipient, RecipientKind

bp = tenant_blueprint("recipients", __name__)

admin_bp = Blueprint("recipients_admin", __name__, url_prefix="/admin/recipients")

MAX_SEARCH = 200
EDITORS_ONLY = "Only owners or organisers of this collective can do that."


def _can_edit() -> bool:
    return current_membership().role.value in ("owner", "organiser")


def _forbidden(exc: PermissionError) -> tuple[str, int]:
    return render_template("error.html", status=403, heading="Not allowed", message=str(exc)), 403


def _recipient_or_404(recipient_id: int) -> Recipient:
    try:
        return services.get_recipient(db_session(), recipient_id)
    except services.NotFoundError:
        abort(404)


def _show_error(form: RecipientForm, exc: services.RecipientError) -> None:
    target = getattr(form, exc.field, None) if exc.field else None
    if target is None:
        target = form.name
    target.errors = [*target.errors, str(exc)]


@bp.app_template_global()
def recipient_kind_label(kind: str) -> str:
    try:
        return RecipientKind(kind).label
    except ValueError:
        return kind


@bp.get("/<slug:collective_slug>/recipients")
def index() -> str:
    search = request.args.get("q", "")[:MAX_SEARCH]
    directory, own = services.list_recipients(db_session(), search)
    return render_template(
        "recipients/index.html",
        directory=directory,
        own=own,
        search=search,
        can_edit=_can_edit(),
    )


@bp.route("/<slug:collective_slug>/recipients/new", methods=["GET", "POST"])
def create() -> Response | tuple[str, int]:
    if not _can_edit():
        return _forbidden(PermissionError(EDITORS_ONLY))
    form = RecipientForm()
    if request.method == "GET":
        form.kind.data = RecipientKind.COUNCIL.value
        form.ack_target_days.data = "5"
        form.reply_target_days.data = "20"
    if form.validate_on_submit():
        try:
            recipient = services.create_recipient(
                db_session(), current_membership(), form.service_values()
            )
        except PermissionError as exc:
            return _forbidden(exc)
        except services.RecipientError as exc:
            _show_error(form, exc)
        else:
            flash(f"{recipient.name} has been added to your recipients.", "success")
            return redirect(url_for("recipients.show", recipient_id=recipient.id))
    status = 422 if request.method == "POST" else 200
    return render_template("recipients/form.html", form=form, recipient=None), status


@bp.get("/<slug:collective_slug>/recipients/<id:recipient_id>")
def show(recipient_id: int) -> str:
    recipient = _recipient_or_404(recipient_id)
    return render_template(
        "recipients/show.html",
        recipient=recipient,
        can_edit=_can_edit() and not recipient.is_directory_entry,
    )


@bp.route("/<slug:collective_slug>/recipients/<id:recipient_id>/edit", methods=["GET", "POST"])
def edit(recipient_id: int) -> Response | tuple[str, int]:
    recipient = _recipient_or_404(recipient_id)
    if not _can_edit():
        return _forbidden(PermissionError(EDITORS_ONLY))
    if recipient.is_directory_entry:
        return _forbidden(PermissionError(services.DIRECTORY_READ_ONLY))
    form = RecipientForm()
    if request.method == "GET":
        form.fill_from(recipient)
    if form.validate_on_submit():
        try:
            services.update_recipient(
                db_session(), current_membership(), recipient, form.service_values()
            )
        except PermissionError as exc:
            return _forbidden(exc)
        except services.RecipientError as exc:
            _show_error(form, exc)
        else:
            flash(f"{recipient.name} has been saved.", "success")
            return redirect(url_for("recipients.show", recipient_id=recipient.id))
    status = 422 if request.method == "POST" else 200
    return render_template("recipients/form.html", form=form, recipient=recipient), status


@bp.route("/<slug:collective_slug>/recipients/<id:recipient_id>/delete", methods=["GET", "POST"])
def delete(recipient_id: int) -> Response | tuple[str, int]:
    recipient = _recipient_or_404(recipient_id)
    if not _can_edit():
        return _forbidden(PermissionError(EDITORS_ONLY))
    if recipient.is_directory_entry:
        return _forbidden(PermissionError(services.DIRECTORY_READ_ONLY))
    form = ConfirmForm()
    error = None
    if form.validate_on_submit():
        name = recipient.name
        try:
            services.delete_recipient(db_session(), current_membership(), recipient)
        except PermissionError as exc:
            return _forbidden(exc)
        except services.RecipientError as exc:
            error = str(exc)
        else:
            flash(f"{name} has been deleted.", "success")
            return redirect(url_for("recipients.index"))
    elif request.method == "POST":
        abort(400)
    status = 422 if error else 200
    return render_template(
        "recipients/delete.html", recipient=recipient, form=form, error=error
    ), status


@bp.get("/<slug:collective_slug>/recipients/suggest")
def suggest() -> str:
    """Routing help without JavaScript: describe the issue, see who deals with it and
    why. `fragment=1` answers with just the list, for pages that embed it."""
    text = request.args.get("q", "")[: services.MAX_SUGGEST_INPUT]
    suggestions = services.suggest_recipients(db_session(), text) if text.strip() else []
    context: dict[str, Any] = {"text": text, "suggestions": suggestions}
    if request.args.get("fragment") == "1":
        return render_template("recipients/_suggestions.html", **context)
    return render_template("recipients/suggest.html", **context)


# --- the platform operator's pages ---------------------------------------------------------


@admin_bp.before_request
def require_platform_admin() -> None:
    if not (current_user.is_authenticated and current_user.is_platform_admin):
        abort(404)


def _entry_or_404(recipient_id: int) -> Recipient:
    try:
        return services.get_directory_entry(db_session(), recipient_id)
    except services.NotFoundError:
        abort(404)


@admin_bp.get("")
def admin_index() -> str:
    search = request.args.get("q", "")[:MAX_SEARCH]
    return render_template(
        "recipients/admin/index.html",
        entries=services.list_directory(db_session(), search),
        search=search,
    )


@admin_bp.route("/<id:recipient_id>/edit", methods=["GET", "POST"])
def admin_edit(recipient_id: int) -> Response | tuple[str, int]:
    entry = _entry_or_404(recipient_id)
    form = DirectoryEntryForm()
    if request.method == "GET":
        form.fill_from(entry)
    if form.validate_on_submit():
        try:
            changed = services.update_directory_entry(
                db_session(), current_user, entry, form.service_values()
            )
        except PermissionError as exc:
            return _forbidden(exc)
        except services.RecipientError as exc:
            _show_error(form, exc)
        else:
            flash(
                f"{entry.name} has been saved." if changed else f"{entry.name}: nothing changed.",
                "success",
            )
            return redirect(url_for("recipients_admin.admin_index"))
    status = 422 if request.method == "POST" else 200
    return render_template("recipients/admin/edit.html", form=form, entry=entry), status
