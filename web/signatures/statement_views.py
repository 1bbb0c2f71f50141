"""Organiser pages for the signers' own words (under
/app/<collective-slug>/campaigns/<id>/statements): the lists (waiting, approved, hidden,
optionally one near-duplicate group), approve, hide with a reason, restore, and approve
a whole group at once.

Every member may read; acting needs an owner or organiser (the services check; a refusal
is a 403 page that says who may act). Hiding has its own page, so the reason gets a
proper label, hint and error summary without JavaScript. Approving a group carries the
number of waiting words the organiser saw and the newest signature id on the page, and
changes exactly those or nothing.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import HiddenField, TextAreaField

from web.campaigns.models import Campaign
from web.collectives.tenant import campaign_or_404, can_act, current_membership, tenant_blueprint
from web.forms import ConfirmForm, max_length, required, strip
from web.http import MAX_ID, db_session, refused
from web.signatures import statements as services

bp = tenant_blueprint("statements", __name__)

PREFIX = "/<slug:collective_slug>/campaigns/<id:campaign_id>/statements"

Page = Response | str | tuple[str, int]

TAB_LABELS = {"waiting": "Waiting for review", "approved": "Approved", "hidden": "Hidden"}
TOP_GROUPS = 10


class HideForm(FlaskForm):
    reason = TextAreaField(
        "Why are you hiding these words?",
        description="Only organisers of this collective see the reason, next to the hidden "
        "words. For example: abusive language, or personal details about someone else.",
        filters=[strip],
        validators=[
            required("why you are hiding these words"),
            max_length(services.MAX_REASON, "The reason"),
        ],
    )


class GroupApproveForm(FlaskForm):
    expected = HiddenField()
    upto = HiddenField()


def _list_args() -> dict[str, Any]:
    """Which list the organiser is on (from the query string), checked: an unknown list
    or a malformed group is a 404, a page number out of range is clamped."""
    tab = request.args.get("status", "waiting")
    if tab not in services.TABS:
        abort(404)
    raw_group = request.args.get("group", "")
    group_id = None
    if raw_group:
        if not raw_group.isascii() or not raw_group.isdigit() or not 0 < int(raw_group) <= MAX_ID:
            abort(404)
        group_id = int(raw_group)
    page = request.args.get("page", 1, type=int) or 1
    return {"status": tab, "group": group_id, "page": min(max(page, 1), 10**9)}


def _back(campaign: Campaign, args: dict[str, Any]) -> Response:
    return redirect(
        url_for(
            "statements.index",
            campaign_id=campaign.id,
            status=args["status"] if args["status"] != "waiting" else None,
            group=args["group"],
            page=args["page"] if args["page"] > 1 else None,
        ),
        303,
    )


def _render_index(
    campaign: Campaign, args: dict[str, Any], error: str = "", status: int = 200
) -> Page:
    s = db_session()
    group = None
    if args["group"] is not None:
        group = services.get_group(s, campaign, args["group"])
        if group is None:
            abort(404)
    listing = services.list_statements(
        s, campaign, args["status"], page=args["page"], group_id=args["group"]
    )
    return render_template(
        "signatures/statements.html",
        campaign=campaign,
        overview=services.statement_overview(s, campaign),
        listing=listing,
        groups=[
            g
            for g in services.statement_groups(s, campaign, limit=TOP_GROUPS, with_members=False)
            if g.count > 1
        ],
        tab_labels=TAB_LABELS,
        can_act=can_act(),
        form=ConfirmForm(),
        group_form=GroupApproveForm(
            formdata=None, expected=str(listing.total), upto=str(listing.max_id)
        ),
        error=error,
    ), status


@bp.get(f"{PREFIX}/")
def index(campaign_id: int) -> Page:
    campaign = campaign_or_404(campaign_id)
    return _render_index(campaign, _list_args())


def _act(campaign_id: int, signature_id: int, action: str) -> Page:
    campaign = campaign_or_404(campaign_id)
    args = _list_args()
    if not ConfirmForm().validate_on_submit():
        abort(400)
    s = db_session()
    try:
        if action == "approve":
            signature = services.approve_statement(s, current_membership(), campaign, signature_id)
            done = f"Approved the words of {signature.name}. They are shown on the campaign page."
        else:
            signature = services.restore_statement(s, current_membership(), campaign, signature_id)
            done = (
                f"Restored the words of {signature.name}. They are shown on the campaign page "
                "again."
            )
    except PermissionError as exc:
        return refused(str(exc), 403)
    except services.StatementNotFound:
        abort(404)
    except services.StatementError as exc:
        return refused(str(exc), 409)
    flash(done, "success")
    return _back(campaign, args)


@bp.post(f"{PREFIX}/<id:signature_id>/approve")
def approve(campaign_id: int, signature_id: int) -> Page:
    return _act(campaign_id, signature_id, "approve")


@bp.post(f"{PREFIX}/<id:signature_id>/restore")
def restore(campaign_id: int, signature_id: int) -> Page:
    return _act(campaign_id, signature_id, "restore")


@bp.route(f"{PREFIX}/<id:signature_id>/hide", methods=["GET", "POST"])
def hide(campaign_id: int, signature_id: int) -> Page:
    campaign = campaign_or_404(campaign_id)
    args = _list_args()
    s = db_session()
    try:
        signature = services.get_statement(s, campaign, signature_id)
    except services.StatementNotFound:
        abort(404)
    if not can_act():
        return refused("Only owners or organisers of this collective can do that.", 403)
    form = HideForm()
    error = ""
    if form.validate_on_submit():
        try:
            services.hide_statement(
                s, current_membership(), campaign, signature_id, form.reason.data or ""
            )
        except PermissionError as exc:
            return refused(str(exc), 403)
        except services.StatementNotFound:
            abort(404)
        except services.StatementError as exc:
            if exc.field == "reason":
                form.reason.errors = [*form.reason.errors, str(exc)]
            else:
                error = str(exc)
        else:
            flash(
                f"Hid the words of {signature.name}. They are no longer shown on the campaign "
                "page; the signature still counts.",
                "success",
            )
            return _back(campaign, args)
    elif request.method == "POST" and form.csrf_token.errors:
        abort(400)
    status = 200 if request.method == "GET" else (409 if error else 422)
    return render_template(
        "signatures/statements_hide.html",
        campaign=campaign,
        signature=signature,
        form=form,
        args=args,
        error=error,
    ), status


@bp.post(f"{PREFIX}/groups/<id:group_id>/approve")
def approve_group(campaign_id: int, group_id: int) -> Page:
    campaign = campaign_or_404(campaign_id)
    form = GroupApproveForm()
    if not form.validate_on_submit():
        abort(400)
    s = db_session()
    if services.get_group(s, campaign, group_id) is None:
        abort(404)
    try:
        expected = int(form.expected.data or "")
        upto = int(form.upto.data or "")
    except ValueError:
        return refused(
            "This approval is incomplete. Go back to the group's list and approve from there.",
            400,
        )
    if not (0 <= expected <= MAX_ID and 0 <= upto <= MAX_ID):
        return refused(
            "This approval is incomplete. Go back to the group's list and approve from there.",
            400,
        )
    args = {"status": "waiting", "group": group_id, "page": 1}
    try:
        changed = services.approve_group(
            s, current_membership(), campaign, group_id, expected=expected, upto=upto
        )
    except PermissionError as exc:
        return refused(str(exc), 403)
    except services.StatementNotFound:
        abort(404)
    except services.GroupChanged as exc:
        return _render_index(campaign, args, error=str(exc), status=409)
    plural = "s" if changed != 1 else ""
    flash(
        f"Approved {changed:,} statement{plural} with near-identical words. They are shown on "
        "the campaign page as one voice.",
        "success",
    )
    return _back(campaign, {"status": "waiting", "group": None, "page": 1})
