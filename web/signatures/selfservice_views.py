"""The signer's private pages, at /<collective>/<campaign>/signature/<token>: see what is
stored, change "show my name" and "send me updates", withdraw, erase (after a second,
"are you sure" page), and confirm a new version of the letter.

No login: the secret in the link is the authority (web/signatures/selfservice.py). Each
page is kept out of search engines and caches, and its address (the secret) out of the
Referer sent to any other site. The policy is `same-origin` rather than `no-referrer`:
over HTTPS, Flask-WTF refuses a form POST without a same-site Referer, so `no-referrer`
would break every button on these pages in a real browser; our own server already knows
the address. A wrong, stale or hostile link is a 404 page that says what to do. Only
published campaigns answer, as on the public campaign page.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import BooleanField, HiddenField

from web.campaigns import services as campaigns
from web.campaigns.models import Campaign, LetterVersion
from web.collectives.models import Collective
from web.extensions import limiter
from web.forms import ConfirmForm
from web.http import db_session
from web.signatures import selfservice
from web.signatures.models import Signature
from web.tenancy import set_current_collective

bp = Blueprint("selfservice", __name__)

CAMPAIGN = "/<slug:collective_slug>/<slug:campaign_slug>"
SIGNATURE = f"{CAMPAIGN}/signature/<token>"
POST_LIMIT = "30 per minute"
REFERRER_POLICY = "same-origin"  # see the module docstring

Page = Response | str | tuple[str, int]

# What each status means, in the signer's words. A quarantined signature reads like a
# pending one: quarantine is silent by design.
STATUS_TEXT = {
    "pending": "Not confirmed yet. Open the link in your confirmation email and press the "
    "button: your signature counts once it is confirmed.",
    "verified": "Confirmed and counted.",
    "quarantined": "Not counted yet.",
    "rejected": "Not counted: the organisers of this campaign did not accept it.",
    "withdrawn": "Withdrawn by you: not counted. Your details stay here until you erase them.",
}
METHOD_TEXT = {
    "online": "Online",
    "assisted": "Recorded for you by a helper",
    "paper": "On paper",
}


class PreferencesForm(FlaskForm):
    show_name = BooleanField("Show my name on the campaign page")
    wants_updates = BooleanField("Send me updates about this campaign")


class ReconsentForm(FlaskForm):
    version_id = HiddenField()


@bp.after_request
def private_page(response: Response) -> Response:
    """The address carries the secret: no indexing, no caching, no Referer elsewhere."""
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Referrer-Policy"] = REFERRER_POLICY
    response.headers["Cache-Control"] = "no-store"
    return response


def _load(collective_slug: str, campaign_slug: str) -> tuple[Collective, Campaign]:
    s = db_session()
    collective = s.scalar(select(Collective).where(Collective.slug == collective_slug))
    if collective is None:
        abort(404)
    set_current_collective(s, collective.id)
    campaign = campaigns.find_public_campaign(s, campaign_slug)
    if campaign is None:
        abort(404)
    return collective, campaign


def _invalid(collective: Collective, campaign: Campaign, message: str) -> tuple[str, int]:
    return render_template(
        "public/signature_invalid.html", collective=collective, campaign=campaign, message=message
    ), 404


def _manage_url(collective: Collective, campaign: Campaign, token: str) -> str:
    return url_for(
        "selfservice.manage",
        collective_slug=collective.slug,
        campaign_slug=campaign.slug,
        token=token,
    )


def _render_manage(
    collective: Collective,
    campaign: Campaign,
    signature: Signature,
    token: str,
    *,
    preferences: PreferencesForm | None = None,
    error: str = "",
    status: int = 200,
) -> tuple[str, int]:
    s = db_session()
    version = s.get(LetterVersion, signature.letter_version_id)
    current = campaigns.current_version(s, campaign)
    if preferences is None:
        preferences = PreferencesForm(
            formdata=None, show_name=signature.show_name, wants_updates=signature.wants_updates
        )
    return render_template(
        "public/signature.html",
        collective=collective,
        campaign=campaign,
        signature=signature,
        token=token,
        version=version,
        current=current,
        status_text=STATUS_TEXT.get(signature.status, signature.status),
        method_text=METHOD_TEXT.get(signature.method, signature.method),
        is_delivered=selfservice.is_delivered(campaign),
        can_withdraw=signature.status in ("pending", "verified", "quarantined"),
        preferences=preferences,
        action_form=ConfirmForm(formdata=None),
        error=error,
    ), status


@bp.get(SIGNATURE)
def manage(collective_slug: str, campaign_slug: str, token: str) -> Page:
    collective, campaign = _load(collective_slug, campaign_slug)
    try:
        signature = selfservice.find_by_manage_token(db_session(), campaign, token)
    except selfservice.LinkInvalid as exc:
        return _invalid(collective, campaign, str(exc))
    return _render_manage(collective, campaign, signature, token)


@bp.post(f"{SIGNATURE}/preferences")
@limiter.limit(POST_LIMIT)
def preferences(collective_slug: str, campaign_slug: str, token: str) -> Page:
    collective, campaign = _load(collective_slug, campaign_slug)
    s = db_session()
    try:
        signature = selfservice.find_by_manage_token(s, campaign, token, for_update=True)
    except selfservice.LinkInvalid as exc:
        return _invalid(collective, campaign, str(exc))
    form = PreferencesForm()
    if not form.validate_on_submit():
        return _render_manage(collective, campaign, signature, token, preferences=form, status=422)
    selfservice.set_preferences(
        s,
        signature,
        show_name=bool(form.show_name.data),
        wants_updates=bool(form.wants_updates.data),
    )
    flash("Your choices are saved.", "success")
    return redirect(_manage_url(collective, campaign, token), 303)


@bp.post(f"{SIGNATURE}/withdraw")
@limiter.limit(POST_LIMIT)
def withdraw(collective_slug: str, campaign_slug: str, token: str) -> Page:
    collective, campaign = _load(collective_slug, campaign_slug)
    s = db_session()
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        selfservice.withdraw_signature(s, campaign, token)
    except selfservice.LinkInvalid as exc:
        return _invalid(collective, campaign, str(exc))
    except selfservice.SelfServiceError as exc:
        signature = selfservice.find_by_manage_token(s, campaign, token)
        return _render_manage(collective, campaign, signature, token, error=str(exc), status=422)
    flash("Your signature is withdrawn. It is no longer counted.", "success")
    return redirect(_manage_url(collective, campaign, token), 303)


@bp.route(f"{SIGNATURE}/erase", methods=["GET", "POST"])
@limiter.limit(POST_LIMIT, methods=["POST"])
def erase(collective_slug: str, campaign_slug: str, token: str) -> Page:
    """GET asks "are you sure?"; only the POST erases."""
    collective, campaign = _load(collective_slug, campaign_slug)
    s = db_session()
    try:
        signature = selfservice.find_by_manage_token(s, campaign, token)
    except selfservice.LinkInvalid as exc:
        return _invalid(collective, campaign, str(exc))
    form = ConfirmForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        try:
            kept = selfservice.erase_signature(s, campaign, token)
        except selfservice.LinkInvalid as exc:  # erased meanwhile, in another tab
            return _invalid(collective, campaign, str(exc))
        return redirect(
            url_for(
                "selfservice.erased",
                collective_slug=collective.slug,
                campaign_slug=campaign.slug,
                record="kept" if kept else None,
            ),
            303,
        )
    return render_template(
        "public/signature_erase.html",
        collective=collective,
        campaign=campaign,
        signature=signature,
        token=token,
        form=form,
        is_delivered=selfservice.is_delivered(campaign),
    ), 200


@bp.get(f"{CAMPAIGN}/signature-erased")
def erased(collective_slug: str, campaign_slug: str) -> str:
    collective, campaign = _load(collective_slug, campaign_slug)
    return render_template(
        "public/signature_erased.html",
        collective=collective,
        campaign=campaign,
        kept=request.args.get("record") == "kept",
    )


@bp.route(f"{SIGNATURE}/reconsent", methods=["GET", "POST"])
@limiter.limit(POST_LIMIT, methods=["POST"])
def reconsent(collective_slug: str, campaign_slug: str, token: str) -> Page:
    """The changes since the version signed, and one "I still sign" button (a POST)."""
    collective, campaign = _load(collective_slug, campaign_slug)
    s = db_session()
    try:
        signature = selfservice.find_by_manage_token(s, campaign, token)
    except selfservice.LinkInvalid as exc:
        return _invalid(collective, campaign, str(exc))
    form = ReconsentForm()
    error = ""
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        raw = (form.version_id.data or "").strip()
        version_id = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 19 else None
        try:
            selfservice.confirm_new_version(s, campaign, token, version_id)
        except selfservice.LinkInvalid as exc:
            return _invalid(collective, campaign, str(exc))
        except selfservice.SelfServiceError as exc:
            error = str(exc)
        else:
            flash("Thank you: your signature now counts for the new version.", "success")
            return redirect(_manage_url(collective, campaign, token), 303)
    change = selfservice.reconsent_for(s, campaign, signature)
    form = ReconsentForm(formdata=None, version_id=str(change.current.id))
    return render_template(
        "public/signature_reconsent.html",
        collective=collective,
        campaign=campaign,
        signature=signature,
        token=token,
        change=change,
        form=form,
        error=error,
        manage_url=_manage_url(collective, campaign, token),
    ), (422 if error else 200)
