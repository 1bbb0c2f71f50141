"""Organiser pages under /app/<collective-slug>/..., and invitation links.

Every route of `bp` with a collective slug resolves it in `load_collective`: a person
who is not a member gets a 404 (never a hint that the collective exists), and the
collective becomes the session's tenant, so every query below is filtered by it.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from werkzeug.wrappers import Response

from web.app import settings_of
from web.collectives import services
from web.collectives.forms import CollectiveForm, CollectiveSettingsForm, InviteForm, RoleForm
from web.collectives.models import Collective, Membership, Role
from web.collectives.tenant import tenant_blueprint
from web.forms import ConfirmForm
from web.http import db_session

bp = tenant_blueprint("collectives", __name__)
invitations_bp = Blueprint("invitations", __name__)


def _membership() -> Membership:
    membership: Membership = g.membership
    return membership


def _forbidden(exc: PermissionError) -> tuple[str, int]:
    return render_template("error.html", status=403, heading="Not allowed", message=str(exc)), 403


@bp.get("/")
def home() -> str:
    s = db_session()
    return render_template(
        "collectives/home.html",
        memberships=services.memberships_of_user(s, current_user),
        invitations=services.pending_invitations_for(s, current_user),
    )


@bp.route("/new", methods=["GET", "POST"])
def create() -> Response | tuple[str, int]:
    form = CollectiveForm()
    if request.method == "GET" and not form.slug.data and request.args.get("name"):
        form.slug.data = services.slugify(request.args["name"])
    if form.validate_on_submit():
        try:
            collective = services.create_collective(
                db_session(),
                current_user,
                name=form.name.data or "",
                slug=form.slug.data or "",
                contact_address=form.contact_address.data or "",
            )
        except services.CollectiveError as exc:
            target = form.slug if "web address" in str(exc) else form.name
            target.errors = [*target.errors, str(exc)]
        else:
            flash(f"{collective.name} is ready. Invite a co-organiser next.", "success")
            return redirect(url_for("collectives.dashboard", collective_slug=collective.slug))
    status = 422 if request.method == "POST" else 200
    return render_template("collectives/new.html", form=form), status


@bp.get("/<slug:collective_slug>/")
def dashboard() -> str:
    s = db_session()
    from web.campaigns.services import list_campaigns

    return render_template(
        "collectives/dashboard.html",
        members=services.list_members(s),
        invitations=services.list_open_invitations(s),
        campaigns=list_campaigns(s),
    )


@bp.route("/<slug:collective_slug>/settings", methods=["GET", "POST"])
def collective_settings() -> Response | tuple[str, int]:
    collective: Collective = g.collective
    if request.method == "POST" and _membership().role != Role.OWNER:
        # The role decides before the form: a viewer learns they may not, not what is missing.
        return _forbidden(PermissionError("Only owners of this collective can do that."))
    form = CollectiveSettingsForm(obj=collective)
    if form.validate_on_submit():
        try:
            services.update_collective(
                db_session(),
                _membership(),
                collective,
                name=form.name.data or "",
                contact_address=form.contact_address.data or "",
                second_approver=form.second_approver.data,
            )
        except PermissionError as exc:
            return _forbidden(exc)
        except services.CollectiveError as exc:
            form.name.errors = [str(exc)]
        else:
            flash("Settings saved.", "success")
            return redirect(url_for("collectives.collective_settings"))
    status = 422 if request.method == "POST" else 200
    return render_template("collectives/settings.html", form=form), status


@bp.route("/<slug:collective_slug>/members", methods=["GET", "POST"])
def members() -> Response | tuple[str, int]:
    s = db_session()
    form = InviteForm()
    if form.validate_on_submit():
        try:
            services.invite_member(
                s,
                settings_of(current_app),
                _membership(),
                g.collective,
                email=form.email.data or "",
                role=Role(form.role.data),
            )
        except PermissionError as exc:
            return _forbidden(exc)
        except services.CollectiveError as exc:
            form.email.errors = [str(exc)]
        else:
            flash(f"Invitation sent to {form.email.data}.", "success")
            return redirect(url_for("collectives.members"))
    status = 422 if request.method == "POST" else 200
    return render_template(
        "collectives/members.html",
        form=form,
        members=services.list_members(s),
        invitations=services.list_open_invitations(s),
        role_choices=[(r.value, r.label) for r in Role],
        confirm=ConfirmForm(),
    ), status


def _member_or_404(member_id: int) -> Membership:
    try:
        return services.get_member(db_session(), member_id)
    except services.NotFoundError:
        abort(404)


@bp.post("/<slug:collective_slug>/members/<id:member_id>/role")
def change_role(member_id: int) -> Response | tuple[str, int]:
    member = _member_or_404(member_id)
    form = RoleForm()
    if not form.validate_on_submit():
        return render_template(
            "error.html",
            status=422,
            heading="That change was not made",
            message="Choose one of the roles listed: owner, organiser or viewer.",
        ), 422
    try:
        services.change_role(db_session(), _membership(), member, Role(form.role.data))
    except PermissionError as exc:
        return _forbidden(exc)
    except services.CollectiveError as exc:
        return render_template(
            "error.html", status=422, heading="That change was not made", message=str(exc)
        ), 422
    flash(f"{member.user.display_name} is now {Role(form.role.data).label.lower()}.", "success")
    return redirect(url_for("collectives.members"))


@bp.post("/<slug:collective_slug>/members/<id:member_id>/remove")
def remove_member(member_id: int) -> Response | tuple[str, int]:
    member = _member_or_404(member_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    leaving = member.id == _membership().id
    name = member.user.display_name
    try:
        services.remove_member(db_session(), _membership(), member)
    except PermissionError as exc:
        return _forbidden(exc)
    except services.CollectiveError as exc:
        return render_template(
            "error.html", status=422, heading="That change was not made", message=str(exc)
        ), 422
    if leaving:
        flash(f"You have left {g.collective.name}.", "info")
        return redirect(url_for("collectives.home"))
    flash(f"{name} has been removed.", "success")
    return redirect(url_for("collectives.members"))


@bp.post("/<slug:collective_slug>/invitations/<id:invitation_id>/revoke")
def revoke_invitation(invitation_id: int) -> Response | tuple[str, int]:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        invitation = services.revoke_invitation(db_session(), _membership(), invitation_id)
    except PermissionError as exc:
        return _forbidden(exc)
    except services.NotFoundError:
        abort(404)
    flash(f"The invitation to {invitation.email} has been withdrawn.", "success")
    return redirect(url_for("collectives.members"))


@invitations_bp.route("/invitations/<token>", methods=["GET", "POST"])
def invitation(token: str) -> Response | tuple[str, int]:
    s = db_session()
    try:
        invite, collective = services.find_invitation(s, token)
    except services.CollectiveError as exc:
        return render_template("accounts/link_invalid.html", message=str(exc)), 404
    form = ConfirmForm()
    error = None
    if current_user.is_authenticated and form.validate_on_submit():
        try:
            services.accept_invitation(s, current_user, token)
        except services.CollectiveError as exc:
            error = str(exc)
        else:
            flash(f"You have joined {collective.name}.", "success")
            return redirect(url_for("collectives.dashboard", collective_slug=collective.slug))
    status = 422 if error else 200
    return render_template(
        "collectives/invitation.html",
        invitation=invite,
        collective=collective,
        form=form,
        error=error,
        next=request.path,
    ), status
