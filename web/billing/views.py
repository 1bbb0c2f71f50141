"""Plan pages.

* `bp` (/app/<collective-slug>/plan...): the collective's Plan page. Every member reads
  it; only owners ask for Supporter free and set the logo and colours (403 naming who
  may, like the rest of the app). Subscribing through Stripe is the Stripe side's
  (web/billing/stripe_views.py); this page includes `billing/_subscribe.html` for its
  buttons when that template exists.
* `brand_bp` (/brand/<collective-slug>/logo and /style.css): public, the collective's
  logo and a tiny stylesheet with its colours. CSP forbids inline styles, so the
  colours arrive as a stylesheet of their own. Both answer 404 unless the collective
  has the Supporter features and has set them.
* `admin_bp` (/admin/billing/...): the platform operator decides free Supporter
  requests and manages federations; every decision is logged and listed. Anyone else
  gets a 404: the pages do not exist for them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

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
from flask_wtf import FlaskForm
from jinja2 import pass_context
from jinja2.runtime import Context
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import BuildError
from werkzeug.wrappers import Response

from web.billing import plans, services
from web.billing.forms import (
    ColoursForm,
    DecisionForm,
    FederationForm,
    FreeSupporterForm,
    GrantForm,
    LinkForm,
    LogoForm,
)
from web.billing.models import CollectiveBranding, RequestStatus, has_supporter_features
from web.collectives.models import Collective, Role
from web.collectives.tenant import current_collective, current_membership, tenant_blueprint
from web.forms import ConfirmForm
from web.http import db_session, error_response, refused
from web.settings import Settings
from web.tenancy import current_collective_id, set_current_collective

bp = tenant_blueprint("billing", __name__)
brand_bp = Blueprint("brand", __name__, url_prefix="/brand")
admin_bp = Blueprint("billing_admin", __name__, url_prefix="/admin/billing")

PREFIX = "/<slug:collective_slug>/plan"
OWNERS_ONLY = "Only owners of this collective can do that."
TOO_LARGE = "That file is too large. A logo must be 1 MB or smaller."
# Blueprints whose pages are a collective's public pages (footer and branding).
PUBLIC_BLUEPRINTS = frozenset({"public", "selfservice", "public_updates"})
ONE_YEAR = 365 * 24 * 3600

Page = Response | str | tuple[str, int]


def _settings() -> Settings:
    settings: Settings = current_app.extensions["chorus.settings"]
    return settings


def _is_owner() -> bool:
    return current_membership().role is Role.OWNER


def _field_error(form: FlaskForm, exc: services.BillingError) -> str:
    """Put the service's message on its field; return it if it belongs to none."""
    target = getattr(form, exc.field, None) if exc.field else None
    if target is None:
        return str(exc)
    target.errors = [*target.errors, str(exc)]
    return ""


# --- the Plan page -----------------------------------------------------------------------


def _render_plan(
    free_form: FreeSupporterForm | None = None, error: str = "", status: int = 200
) -> tuple[str, int]:
    s = db_session()
    collective = current_collective()
    settings = _settings()
    info = plans.collective_plan(s, collective.id)
    prices = {
        (plan, interval): bool(settings.stripe_price(plan, interval))
        for plan in ("supporter", "federation")
        for interval in ("month", "year")
    }
    try:  # the Stripe side's page (web/billing/stripe_views.py)
        subscribe_url = url_for("stripe_billing.subscribe_page")
    except BuildError:
        subscribe_url = ""
    return render_template(
        "billing/plan.html",
        subscribe_url=subscribe_url,
        info=info,
        account=info.account,
        features=list(plans.Feature),
        free_limit=plans.FREE_COLLECTING_LIMIT,
        latest=services.latest_request(s, collective.id),
        free_form=free_form or FreeSupporterForm(formdata=None),
        error=error,
        is_owner=_is_owner(),
        billing_enabled=settings.billing_enabled,
        prices=prices,
        statuses=RequestStatus,
    ), status


@bp.get(PREFIX)
def plan() -> Page:
    return _render_plan()


@bp.post(f"{PREFIX}/free-supporter")
def request_free() -> Page:
    if not _is_owner():
        return refused(OWNERS_ONLY, 403)
    form = FreeSupporterForm()
    if form.validate_on_submit():
        try:
            services.request_free_supporter(
                db_session(), current_membership(), current_collective(), form.reason.data or ""
            )
        except PermissionError as exc:
            return refused(str(exc), 403)
        except services.BillingError as exc:
            return _render_plan(form, _field_error(form, exc), 422)
        flash(
            "Your request has been sent. The platform operator will answer by email, and "
            "the answer will show on this page.",
            "success",
        )
        return redirect(url_for("billing.plan"))
    if form.csrf_token.errors:
        abort(400)
    return _render_plan(form, status=422)


# --- branding ----------------------------------------------------------------------------


def _render_branding(
    colours: ColoursForm | None = None,
    logo: LogoForm | None = None,
    error: str = "",
    status: int = 200,
) -> tuple[str, int]:
    s = db_session()
    collective = current_collective()
    branding = services.get_branding(s, collective.id)
    if colours is None:
        colours = ColoursForm(formdata=None)
        if branding is not None:
            colours.primary_colour.data = branding.primary_colour
            colours.accent_colour.data = branding.accent_colour
    return render_template(
        "billing/branding.html",
        info=plans.collective_plan(s, collective.id),
        branding=branding,
        colours=colours,
        logo=logo or LogoForm(formdata=None),
        error=error,
        is_owner=_is_owner(),
    ), status


@bp.get(f"{PREFIX}/branding")
def branding() -> Page:
    return _render_branding()


def _owner_with_branding() -> Page | None:
    """Owners only (403), and only with the Supporter features (403 with the upgrade
    link): the same answer for the form page's POSTs whatever the form holds."""
    if not _is_owner():
        return refused(OWNERS_ONLY, 403)
    try:
        plans.require_feature(db_session(), current_collective().id, plans.Feature.BRANDING)
    except plans.PlanLimitReached as exc:
        return render_template("billing/needs_supporter.html", message=str(exc)), 403
    return None


@bp.post(f"{PREFIX}/branding/colours")
def save_colours() -> Page:
    refusal = _owner_with_branding()
    if refusal:
        return refusal
    form = ColoursForm()
    if form.validate_on_submit():
        try:
            services.save_colours(
                db_session(),
                current_membership(),
                current_collective().id,
                primary=form.primary_colour.data or "",
                accent=form.accent_colour.data or "",
            )
        except services.BillingError as exc:
            return _render_branding(colours=form, error=_field_error(form, exc), status=422)
        flash("Your colours are saved. They show on your public pages now.", "success")
        return redirect(url_for("billing.branding"))
    if form.csrf_token.errors:
        abort(400)
    return _render_branding(colours=form, status=422)


@bp.post(f"{PREFIX}/branding/logo")
def save_logo() -> Page:
    refusal = _owner_with_branding()
    if refusal:
        return refusal
    form = LogoForm()
    if form.validate_on_submit():
        data = form.logo.data.read(services.MAX_LOGO_BYTES + 1)
        try:
            services.save_logo(db_session(), current_membership(), current_collective().id, data)
        except services.BillingError as exc:
            return _render_branding(logo=form, error=_field_error(form, exc), status=422)
        flash("Your logo is saved. It shows on your public pages now.", "success")
        return redirect(url_for("billing.branding"))
    if form.csrf_token.errors:
        abort(400)
    return _render_branding(logo=form, status=422)


@bp.post(f"{PREFIX}/branding/logo/remove")
def remove_logo() -> Page:
    if not _is_owner():
        return refused(OWNERS_ONLY, 403)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    services.remove_logo(db_session(), current_membership(), current_collective().id)
    flash("The logo has been removed.", "success")
    return redirect(url_for("billing.branding"))


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_exc: RequestEntityTooLarge) -> Response:
    return error_response(413, TOO_LARGE)


# --- public: logo and stylesheet -----------------------------------------------------------


def _public_branding(collective_slug: str) -> CollectiveBranding:
    s = db_session()
    collective = s.scalar(select(Collective).where(Collective.slug == collective_slug))
    if collective is None:
        abort(404)
    set_current_collective(s, collective.id)
    branding = services.public_branding(s, collective)
    if branding is None:
        abort(404)
    return branding


def _cached(response: Response, etag: str) -> Response:
    response.set_etag(etag)
    # The URL carries the content's hash (?v=...), so it can be cached for a year.
    response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response.make_conditional(request)


@brand_bp.get("/<slug:collective_slug>/logo")
def logo(collective_slug: str) -> Response:
    branding = _public_branding(collective_slug)
    if branding.logo is None or branding.logo_type not in ("image/png", "image/jpeg"):
        abort(404)
    response = Response(bytes(branding.logo), mimetype=branding.logo_type)
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Content-Disposition"] = "inline"
    return _cached(response, branding.logo_sha256)


def stylesheet_text(branding: CollectiveBranding) -> str:
    """The collective's colours as CSS. Colours are `#rrggbb` (checked by the service and
    by the table's CHECK constraints), so nothing else can reach the stylesheet."""
    rules = ["/* Chorus: this collective's colours */"]
    primary, accent = branding.primary_colour, branding.accent_colour
    if primary:
        rules += [
            f".site-header, .collective-band {{ background: {primary}; }}",
            f".button {{ background: {primary}; border-bottom-color: #0b0c0c; }}",
            f".button:hover {{ background: {primary}; text-decoration: underline; }}",
        ]
    if accent:
        rules += [
            f"main a, main a:visited {{ color: {accent}; }}",
            f".count-box, .statement {{ border-color: {accent}; }}",
        ]
    rules.append(".brand-logo { display: block; max-height: 4rem; width: auto; height: auto; }")
    return "\n".join(rules) + "\n"


@brand_bp.get("/<slug:collective_slug>/style.css")
def stylesheet(collective_slug: str) -> Response:
    branding = _public_branding(collective_slug)
    body = stylesheet_text(branding)
    etag = hashlib.sha256(body.encode()).hexdigest()
    return _cached(Response(body, mimetype="text/css"), etag)


@dataclass(frozen=True)
class PublicBrand:
    """What base.html needs on a collective's public page."""

    show_footer: bool
    logo_url: str
    logo_width: int | None
    logo_height: int | None
    stylesheet_url: str


@brand_bp.app_template_global()
@pass_context
def public_brand(context: Context) -> PublicBrand | None:
    """On a collective's public pages: whether to show the "Made with Chorus" footer
    (Free) and the collective's logo and stylesheet (Supporter). None elsewhere."""
    if request.blueprint not in PUBLIC_BLUEPRINTS:
        return None
    collective = context.get("collective")
    if not isinstance(collective, Collective):
        return None
    cache: dict[int, PublicBrand] = g.setdefault("chorus_public_brand", {})
    if collective.id in cache:
        return cache[collective.id]
    s = db_session()
    plan = plans.plan_of(s, collective.id)  # one lookup serves the footer and the branding
    branding = (
        services.get_branding(s, collective.id)
        if has_supporter_features(plan) and current_collective_id(s) == collective.id
        else None
    )
    brand = PublicBrand(
        show_footer=not has_supporter_features(plan),
        logo_url=(
            url_for("brand.logo", collective_slug=collective.slug, v=branding.logo_sha256[:16])
            if branding is not None and branding.logo_sha256
            else ""
        ),
        logo_width=branding.logo_width if branding is not None else None,
        logo_height=branding.logo_height if branding is not None else None,
        stylesheet_url=(
            url_for(
                "brand.stylesheet",
                collective_slug=collective.slug,
                v=f"{branding.primary_colour}{branding.accent_colour}".replace("#", ""),
            )
            if branding is not None and (branding.primary_colour or branding.accent_colour)
            else ""
        ),
    )
    cache[collective.id] = brand
    return brand


@bp.app_template_global()
def collective_has_supporter_features() -> bool:
    """On organiser pages: whether the current collective has the Supporter features."""
    collective = g.get("collective")
    if collective is None:
        return False
    return has_supporter_features(plans.plan_of(db_session(), collective.id))


# --- the operator's pages ----------------------------------------------------------------


@admin_bp.before_request
def require_platform_admin() -> None:
    if not (current_user.is_authenticated and current_user.is_platform_admin):
        abort(404)


def _render_admin_index(
    federation_form: FederationForm | None = None, error: str = "", status: int = 200
) -> tuple[str, int]:
    s = db_session()
    return render_template(
        "billing/admin/index.html",
        pending=services.list_requests(s, current_user, pending_only=True),
        federations=services.list_federations(s, current_user),
        decisions=services.list_decisions(s, current_user),
        federation_form=federation_form or FederationForm(formdata=None),
        error=error,
    ), status


@admin_bp.get("")
def admin_index() -> Page:
    return _render_admin_index()


def _request_or_404(request_id: int) -> services.RequestRow:
    try:
        return services.get_request(db_session(), current_user, request_id)
    except services.NotFoundError:
        abort(404)


def _render_request(
    row: services.RequestRow, form: DecisionForm | None = None, error: str = "", status: int = 200
) -> tuple[str, int]:
    s = db_session()
    history = [
        d
        for d in services.list_decisions(s, current_user, limit=500)
        if d.decision.collective_id == row.request.collective_id
    ]
    return render_template(
        "billing/admin/request.html",
        row=row,
        form=form or DecisionForm(formdata=None),
        error=error,
        history=history,
        statuses=RequestStatus,
    ), status


@admin_bp.get("/requests/<id:request_id>")
def admin_request(request_id: int) -> Page:
    return _render_request(_request_or_404(request_id))


@admin_bp.post("/requests/<id:request_id>")
def admin_decide(request_id: int) -> Page:
    row = _request_or_404(request_id)
    form = DecisionForm()
    if form.validate_on_submit():
        approve = form.decision.data == "approve"
        try:
            services.decide_request(
                db_session(),
                _settings(),
                current_user,
                request_id,
                approve=approve,
                note=form.note.data or "",
                months=form.months.data or services.DEFAULT_GRANT_MONTHS,
            )
        except services.NotFoundError:
            abort(404)
        except services.BillingError as exc:
            return _render_request(row, form, _field_error(form, exc), 422)
        flash(
            f"{row.collective_name}: {'approved' if approve else 'declined'}. The owners have "
            "been emailed.",
            "success",
        )
        return redirect(url_for("billing_admin.admin_index"))
    if form.csrf_token.errors:
        abort(400)
    return _render_request(row, form, status=422)


@admin_bp.post("/federations")
def admin_create_federation() -> Page:
    form = FederationForm()
    if form.validate_on_submit():
        try:
            account = services.create_federation(
                db_session(), current_user, form.name.data or "", months=form.months.data or 0
            )
        except services.BillingError as exc:
            return _render_admin_index(form, _field_error(form, exc), 422)
        flash(f"Federation “{account.name}” created. Now link its collectives.", "success")
        return redirect(url_for("billing_admin.admin_federation", account_id=account.id))
    if form.csrf_token.errors:
        abort(400)
    return _render_admin_index(form, status=422)


def _render_federation(
    account_id: int,
    link_form: LinkForm | None = None,
    grant_form: GrantForm | None = None,
    error: str = "",
    status: int = 200,
) -> tuple[str, int]:
    s = db_session()
    try:
        row = services.get_federation(s, current_user, account_id)
    except services.NotFoundError:
        abort(404)
    history = [
        d
        for d in services.list_decisions(s, current_user, limit=500)
        if d.decision.billing_account_id == account_id
    ]
    return render_template(
        "billing/admin/federation.html",
        row=row,
        link_form=link_form or LinkForm(formdata=None),
        grant_form=grant_form or GrantForm(formdata=None),
        error=error,
        history=history,
    ), status


@admin_bp.get("/federations/<id:account_id>")
def admin_federation(account_id: int) -> Page:
    return _render_federation(account_id)


@admin_bp.post("/federations/<id:account_id>/link")
def admin_link(account_id: int) -> Page:
    form = LinkForm()
    if form.validate_on_submit():
        try:
            collective = services.link_collective(
                db_session(),
                current_user,
                account_id,
                form.collective_slug.data or "",
                form.note.data or "",
            )
        except services.NotFoundError:
            abort(404)
        except services.BillingError as exc:
            return _render_federation(
                account_id, link_form=form, error=_field_error(form, exc), status=422
            )
        flash(f"{collective.name} is now in this federation.", "success")
        return redirect(url_for("billing_admin.admin_federation", account_id=account_id))
    if form.csrf_token.errors:
        abort(400)
    return _render_federation(account_id, link_form=form, status=422)


@admin_bp.post("/federations/<id:account_id>/unlink")
def admin_unlink(account_id: int) -> Page:
    if not ConfirmForm().validate_on_submit():
        abort(400)
    raw = request.form.get("collective_id", "")
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) < 2**63:
        return refused("Choose a collective of this federation to unlink.", 400)
    try:
        collective = services.unlink_collective(
            db_session(), current_user, account_id, int(raw), request.form.get("note", "")[:2000]
        )
    except services.NotFoundError:
        abort(404)
    except services.BillingError as exc:
        return refused(str(exc))
    flash(f"{collective.name} has left this federation and is back on its own plan.", "success")
    return redirect(url_for("billing_admin.admin_federation", account_id=account_id))


@admin_bp.post("/federations/<id:account_id>/grant")
def admin_grant(account_id: int) -> Page:
    form = GrantForm()
    if form.validate_on_submit():
        try:
            services.grant_federation(
                db_session(),
                current_user,
                account_id,
                months=form.months.data or 0,
                note=form.note.data or "",
            )
        except services.NotFoundError:
            abort(404)
        except services.BillingError as exc:
            return _render_federation(
                account_id, grant_form=form, error=_field_error(form, exc), status=422
            )
        flash("Saved.", "success")
        return redirect(url_for("billing_admin.admin_federation", account_id=account_id))
    if form.csrf_token.errors:
        abort(400)
    return _render_federation(account_id, grant_form=form, status=422)
