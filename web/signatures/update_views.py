"""Updates to signers, over HTTP.

Organisers (blueprint `updates`, under /app/<collective-slug>/campaigns/<id>/updates):
every member sees the past updates and their progress; owners and organisers compose an
update, preview it with the number of signers it will reach, and send it. Preview and
send are POSTs (the body may be 10,000 characters, too long for a query string); the
preview changes nothing, the send records the update and its first batch job. A refusal
is a page that says why: 403 names who may send, 429 says when the next update may go.

Signers (blueprint `public_updates`, under /<collective>/<campaign>/unsubscribe/<token>):
GET shows one button; any POST to the link unsubscribes at once. That POST is exempt
from CSRF because mail clients send it themselves (RFC 8058: a body of
"List-Unsubscribe=One-Click", no cookie, no token): the token in the link, an HMAC only
this app can make, is the authority. It answers 200 with the confirmation (no redirect,
which one-click senders need not follow), and is idempotent.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired

from web.campaigns import services as campaigns
from web.campaigns.models import Campaign
from web.collectives.models import Collective, Role
from web.collectives.tenant import campaign_or_404, current_membership, tenant_blueprint
from web.extensions import csrf
from web.forms import max_length, no_control_characters, strip
from web.http import app_settings, db_session, refused
from web.signatures import updates
from web.tenancy import set_current_collective

bp = tenant_blueprint("updates", __name__)
public_bp = Blueprint("public_updates", __name__)

PREFIX = "/<slug:collective_slug>/campaigns/<id:campaign_id>/updates"
UNSUBSCRIBE = "/<slug:collective_slug>/<slug:campaign_slug>/unsubscribe/<token>"

Page = Response | str | tuple[str, int]


def _one_newline(value: Any) -> Any:
    """Browsers send a textarea's line breaks as CR LF: count and keep them as one."""
    if isinstance(value, str):
        return value.replace("\r\n", "\n").replace("\r", "\n")
    return value


class UpdateForm(FlaskForm):
    subject = StringField(
        "Subject",
        description=f"The email's subject line. Up to {updates.MAX_SUBJECT} characters.",
        filters=[strip],
        validators=[
            DataRequired("Enter a subject."),
            max_length(updates.MAX_SUBJECT, "The subject"),
            no_control_characters,
        ],
    )
    body = TextAreaField(
        "Message",
        description=(
            f"Plain text, up to {updates.MAX_BODY:,} characters. Leave a blank line between "
            "paragraphs. We add a greeting, a link to the campaign and a link to unsubscribe."
        ),
        filters=[_one_newline, strip],
        # DataRequired, not InputRequired: a message of spaces only is empty once stripped.
        validators=[
            DataRequired("Enter the message."),
            max_length(updates.MAX_BODY, "The message"),
        ],
    )


def _can_send() -> bool:
    return current_membership().role in (Role.OWNER, Role.ORGANISER)


def _render(
    campaign: Campaign,
    form: UpdateForm,
    *,
    preview: bool = False,
    error: str = "",
    status: int = 200,
) -> tuple[str, int]:
    s = db_session()
    limit = updates.next_allowed_at(s, campaign) if campaign.published_at else None
    return render_template(
        "signatures/updates.html",
        campaign=campaign,
        form=form,
        preview=preview,
        error=error,
        can_send=_can_send(),
        is_published=campaign.published_at is not None,
        recipients=updates.count_recipients(s, campaign),
        limit_message=limit[1] if limit else "",
        history=updates.list_updates(s, campaign),
    ), status


@bp.get(PREFIX)
def index(campaign_id: int) -> Page:
    campaign = campaign_or_404(campaign_id)
    return _render(campaign, UpdateForm(formdata=None))


def _checked_form(campaign: Campaign) -> tuple[UpdateForm, Page | None]:
    """The posted form, or the page that refuses it."""
    form = UpdateForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        return form, _render(campaign, form, status=422)
    if not _can_send():
        return form, refused("Only owners or organisers of this collective can send updates.", 403)
    return form, None


@bp.post(f"{PREFIX}/preview")
def preview(campaign_id: int) -> Page:
    campaign = campaign_or_404(campaign_id)
    form, refusal = _checked_form(campaign)
    if refusal is not None:
        return refusal
    return _render(campaign, form, preview=True)


@bp.post(PREFIX)
def send(campaign_id: int) -> Page:
    campaign = campaign_or_404(campaign_id)
    form, refusal = _checked_form(campaign)
    if refusal is not None:
        return refusal
    try:
        row = updates.send_update(
            db_session(),
            current_membership(),
            campaign,
            subject=form.subject.data or "",
            body=form.body.data or "",
        )
    except PermissionError as exc:
        return refused(str(exc), 403)
    except updates.UpdateRateLimited as exc:
        return _render(campaign, form, error=str(exc), status=429)
    except updates.UpdateError as exc:
        field = getattr(form, exc.field, None) if exc.field else None
        if field is not None:
            field.errors = [*field.errors, str(exc)]
            return _render(campaign, form, status=422)
        return _render(campaign, form, error=str(exc), status=422)
    plural = "" if row.recipient_count == 1 else "s"
    flash(
        f"Sending “{row.subject}” to {row.recipient_count:,} signer{plural}. Its progress is "
        "shown below.",
        "success",
    )
    return redirect(url_for("updates.index", campaign_id=campaign.id), 303)


# --- unsubscribe (public) -------------------------------------------------------------------


def _not_found() -> tuple[str, int]:
    return render_template("public/unsubscribe.html", state="invalid"), 404


@public_bp.route(UNSUBSCRIBE, methods=["GET", "POST"])
@csrf.exempt
def unsubscribe(collective_slug: str, campaign_slug: str, token: str) -> Page:
    """GET: a page with one button. POST (the button, or a mail client's one-click):
    stop updates at once and say so."""
    # The token is checked before any database read: a forged link costs nothing.
    signature_id = updates.check_unsubscribe_token(app_settings(), token)
    if signature_id is None:
        return _not_found()
    s = db_session()
    collective = s.scalar(select(Collective).where(Collective.slug == collective_slug))
    if collective is None:
        return _not_found()
    set_current_collective(s, collective.id)
    campaign = campaigns.find_public_campaign(s, campaign_slug)
    signature = updates.find_subscriber(s, campaign, signature_id) if campaign else None
    if campaign is None or signature is None:
        return _not_found()
    state = "ask"
    if request.method == "POST":
        updates.unsubscribe(s, signature)
        state = "done"
    elif signature.unsubscribed_at is not None or not signature.wants_updates:
        state = "already"
    return render_template(
        "public/unsubscribe.html",
        state=state,
        collective=collective,
        campaign=campaign,
        public_url=f"{app_settings().base_url}/{collective.slug}/{campaign.slug}",
    ), 200
