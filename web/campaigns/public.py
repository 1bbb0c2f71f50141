"""Public campaign pages: /<collective-slug>/<campaign-slug> and its poster and widget.

No login. The collective named in the URL becomes the tenant for the request, and only
published campaigns are shown (a draft's address answers 404 like any unknown one).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import segno
from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from itsdangerous import URLSafeTimedSerializer
from markupsafe import Markup
from sqlalchemy import select
from werkzeug.wrappers import Response

from web.campaigns import services
from web.campaigns.markdown import render_markdown
from web.campaigns.models import Campaign, CampaignKind, CampaignState, LetterVersion
from web.campaigns.styles import salutation
from web.collectives.models import Collective
from web.extensions import limiter
from web.forms import ConfirmForm
from web.http import app_settings, db_session
from web.recipients.models import Recipient
from web.signatures import offline, selfservice
from web.signatures import services as signing
from web.signatures.fastpath import LIMITS_COUNTED
from web.signatures.forms import SignForm
from web.signatures.limits import SignRateLimited, check_sign_limits
from web.signatures.statements import public_statements
from web.tenancy import set_current_collective

bp = Blueprint("public", __name__)

CAMPAIGN = "/<slug:collective_slug>/<slug:campaign_slug>"
COUNT_TTL = 2  # seconds a count.json answer is reused


def _load(collective_slug: str, campaign_slug: str) -> tuple[Collective, Campaign]:
    s = db_session()
    collective = s.scalar(select(Collective).where(Collective.slug == collective_slug))
    if collective is None:
        abort(404)
    set_current_collective(s, collective.id)
    campaign = services.find_public_campaign(s, campaign_slug)
    if campaign is None:
        abort(404)
    return collective, campaign


def _public_url(collective: Collective, campaign: Campaign) -> str:
    base = current_app.extensions["chorus.settings"].base_url
    return f"{base}/{collective.slug}/{campaign.slug}"


def _letter_context(campaign: Campaign, version: LetterVersion) -> dict[str, object]:
    content = version.content
    recipient = None
    if content.get("recipient_id"):
        recipient = db_session().scalar(
            select(Recipient).where(Recipient.id == content["recipient_id"])
        )
    return {
        "content": content,
        "recipient": recipient,
        "body_html": render_markdown(content.get("body_markdown", "")),
        "easy_read_html": render_markdown(content.get("easy_read_markdown", "")),
        "greeting": salutation(
            content.get("audience_style", "minister"),
            content.get("addressee_name", ""),
            content.get("addressee_role", ""),
        ),
        "is_meeting": content.get("kind") == CampaignKind.MEETING_REQUEST.value,
    }


def _render_campaign(
    collective: Collective, campaign: Campaign, form: SignForm | None = None, error: str = ""
) -> str:
    s = db_session()
    version = services.current_version(s, campaign)
    if version is None:
        abort(404)
    if form is None:
        form = SignForm()
    form.started.data = _started_token()
    if campaign.postcode_mode == "optional":
        form.postcode.label.text = "Postcode (optional)"
    return render_template(
        "public/campaign.html",
        collective=collective,
        campaign=campaign,
        version=version,
        versions=services.list_versions(s, campaign),
        public_url=_public_url(collective, campaign),
        verified_count=signing.verified_count(s, campaign),
        offline_signatures=offline.describe_offline(offline.counted_offline(s, campaign)),
        names=signing.public_names(s, campaign),
        statements=public_statements(s, campaign) if campaign.statements_enabled else [],
        is_collecting=campaign.state == CampaignState.COLLECTING.value,
        form=form,
        sign_error=error,
        **_letter_context(campaign, version),
    )


@bp.get(CAMPAIGN)
def campaign_page(collective_slug: str, campaign_slug: str) -> str:
    collective, campaign = _load(collective_slug, campaign_slug)
    return _render_campaign(collective, campaign)


def _started_token() -> str:
    return URLSafeTimedSerializer(current_app.secret_key or "", salt="sign-form").dumps(
        int(time.time())
    )


def _suspicion(form: SignForm) -> str:
    """Why a submission looks automated, or "" for a person."""
    return signing.suspicion(current_app.secret_key or "", form.website.data, form.started.data)


@bp.post(f"{CAMPAIGN}/sign")
@limiter.exempt  # its own limits, in one Redis round trip (web/signatures/limits.py)
def sign(collective_slug: str, campaign_slug: str) -> Response | tuple[str, int]:
    # The busiest route: limits in one Redis round trip, no ORM campaign unless the
    # form must be shown again.
    counted = request.environ.get(LIMITS_COUNTED)  # by the fast path, before it stepped aside
    if isinstance(counted, SignRateLimited):
        raise counted
    if not counted:
        check_sign_limits(
            current_app.extensions["chorus.redis"],
            app_settings(),
            request.remote_addr or "",
            f"{collective_slug}/{campaign_slug}",
        )
    s = db_session()
    target = signing.sign_target(s, collective_slug, campaign_slug)
    if target is None:
        abort(404)
    form = SignForm()
    if not form.validate_on_submit():
        return _render_campaign(*_load(collective_slug, campaign_slug), form), 422
    try:
        signing.record_signature(
            s,
            app_settings(),
            target,
            name=form.name.data or "",
            email=form.email.data or "",
            postcode=form.postcode.data or "",
            statement=form.statement.data or "",
            show_name=bool(form.show_name.data),
            wants_updates=bool(form.wants_updates.data),
            show_statement=bool(form.show_statement.data),
            ip=request.remote_addr,
            suspicious=_suspicion(form),
        )
    except signing.SigningError as exc:
        collective, campaign = _load(collective_slug, campaign_slug)
        field = getattr(form, exc.field, None)
        if field is not None and exc.field != "token":
            field.errors = [*field.errors, str(exc)]
            return _render_campaign(collective, campaign, form), 422
        return _render_campaign(collective, campaign, form, error=str(exc)), 422
    return redirect(
        url_for(
            "public.check_email", collective_slug=target.collective_slug, campaign_slug=target.slug
        ),
        303,
    )


@bp.get(f"{CAMPAIGN}/sign/check-email")
def check_email(collective_slug: str, campaign_slug: str) -> str:
    collective, campaign = _load(collective_slug, campaign_slug)
    return render_template("public/check_email.html", collective=collective, campaign=campaign)


@bp.route(f"{CAMPAIGN}/confirm/<token>", methods=["GET", "POST"])
@limiter.limit("30 per minute", methods=["POST"])
def confirm(collective_slug: str, campaign_slug: str, token: str) -> Response | tuple[str, int]:
    """GET shows one button; only the POST confirms, so mail scanners that open links
    cannot sign on anyone's behalf."""
    collective, campaign = _load(collective_slug, campaign_slug)
    s = db_session()
    try:
        signature = signing.find_by_token(s, campaign, token)
    except signing.SigningError as exc:
        return render_template(
            "public/confirm.html",
            collective=collective,
            campaign=campaign,
            error=str(exc),
            form=ConfirmForm(),
            signature=None,
        ), 404
    form = ConfirmForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        signature = signing.confirm_signature(s, campaign, token)
        # Confirmed after a newer version was published: ask about the new text now.
        selfservice.ask_to_reconsent(
            s, current_app.extensions["chorus.settings"], campaign, signature
        )
        return redirect(
            url_for("public.thanks", collective_slug=collective.slug, campaign_slug=campaign.slug),
            303,
        )
    return render_template(
        "public/confirm.html",
        collective=collective,
        campaign=campaign,
        error="",
        form=form,
        signature=signature,
    ), 200


@bp.get(f"{CAMPAIGN}/thanks")
def thanks(collective_slug: str, campaign_slug: str) -> str:
    collective, campaign = _load(collective_slug, campaign_slug)
    return render_template(
        "public/thanks.html",
        collective=collective,
        campaign=campaign,
        verified_count=signing.verified_count(db_session(), campaign),
        public_url=_public_url(collective, campaign),
    )


@bp.get(f"{CAMPAIGN}/count.json")
@limiter.exempt
def count_json(collective_slug: str, campaign_slug: str) -> Response:
    """The public count, for widgets and pages that poll it. Reached only when
    `CountFastPath` found no cached answer: compute it and keep it COUNT_TTL seconds, so
    a burst of readers costs one database read per interval."""
    _, campaign = _load(collective_slug, campaign_slug)
    body = json.dumps(
        {"campaign": campaign.slug, "verified": signing.verified_count(db_session(), campaign)}
    )
    prefix = current_app.extensions["chorus.settings"].rq_queue_prefix
    current_app.extensions["chorus.redis"].set(
        count_cache_key(prefix, collective_slug, campaign_slug), body, ex=COUNT_TTL
    )
    response = Response(body, mimetype="application/json")
    response.headers.update(COUNT_HEADERS)
    return response


COUNT_HEADERS = {
    "Cache-Control": "public, max-age=5, stale-while-revalidate=10",
    "Access-Control-Allow-Origin": "*",
}
COUNT_PATH = re.compile(r"^/([a-z0-9][a-z0-9-]{0,62})/([a-z0-9][a-z0-9-]{0,62})/count\.json$")


def count_cache_key(prefix: str, collective_slug: str, campaign_slug: str) -> str:
    return f"{prefix}chorus:count:{collective_slug}/{campaign_slug}"


class CountFastPath:
    """WSGI layer that answers a GET for a cached count.json straight from Redis.

    The count is the page a viral campaign's widgets and pages poll; a cache hit needs
    no session, form or database, so it skips the framework's request machinery. A miss
    (or any other request) goes to the Flask app, which fills the cache.
    """

    def __init__(self, app: Any, redis: Any, prefix: str) -> None:
        self.app = app
        self.redis = redis
        self.prefix = prefix

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD") == "GET":
            match = COUNT_PATH.match(environ.get("PATH_INFO", ""))
            if match:
                try:
                    body = self.redis.get(count_cache_key(self.prefix, *match.groups()))
                except Exception:  # Redis away: let the app answer (or explain)
                    body = None
                if body is not None:
                    headers = [
                        ("Content-Type", "application/json"),
                        ("Content-Length", str(len(body))),
                        ("X-Content-Type-Options", "nosniff"),
                        ("Content-Security-Policy", "default-src 'none'"),
                        *COUNT_HEADERS.items(),
                    ]
                    start_response("200 OK", headers)
                    return [body]
        return self.app(environ, start_response)


@bp.get(f"{CAMPAIGN}/versions/<id:number>")
def version_page(collective_slug: str, campaign_slug: str, number: int) -> str:
    collective, campaign = _load(collective_slug, campaign_slug)
    s = db_session()
    try:
        version = services.get_version(s, campaign, number)
    except services.NotFoundError:
        abort(404)
    latest = services.current_version(s, campaign)
    return render_template(
        "public/version.html",
        collective=collective,
        campaign=campaign,
        version=version,
        is_latest=latest is not None and latest.id == version.id,
        public_url=_public_url(collective, campaign),
        **_letter_context(campaign, version),
    )


def _qr_svg(url: str) -> Markup:
    qr = segno.make(url, error="m")
    svg = qr.svg_inline(scale=8, border=2, dark="#0b0c0c", light="#ffffff", omitsize=True)
    return Markup(svg)  # noqa: S704 - generated by segno from our own URL


@bp.get(f"{CAMPAIGN}/poster")
def poster(collective_slug: str, campaign_slug: str) -> str:
    collective, campaign = _load(collective_slug, campaign_slug)
    url = _public_url(collective, campaign)
    return render_template(
        "public/poster.html",
        collective=collective,
        campaign=campaign,
        public_url=url,
        qr_svg=_qr_svg(url),
        version=services.current_version(db_session(), campaign),
    )


@bp.get(f"{CAMPAIGN}/embed")
def embed(collective_slug: str, campaign_slug: str) -> Response:
    collective, campaign = _load(collective_slug, campaign_slug)
    html = render_template(
        "public/embed.html",
        collective=collective,
        campaign=campaign,
        public_url=_public_url(collective, campaign),
        verified_count=signing.verified_count(db_session(), campaign),
    )
    response = Response(html, mimetype="text/html")
    # The widget is meant to be framed by other sites; every other page refuses framing.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors *; "
        "base-uri 'none'; form-action 'none'"
    )
    response.headers["Cache-Control"] = "public, max-age=30"
    return response
