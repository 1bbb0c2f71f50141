"""Organiser pages for campaigns (under /app/<collective-slug>/campaigns/...)."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from web.campaigns import services
from web.campaigns.forms import CommentForm, LetterForm, NewCampaignForm, SettingsForm
from web.campaigns.markdown import plain_text, render_markdown
from web.campaigns.models import Campaign, CampaignKind, CampaignState
from web.campaigns.readability import reading_ease, reading_ease_label, word_count
from web.campaigns.styles import STYLES, salutation, style_for
from web.collectives.services import slugify
from web.collectives.tenant import (
    campaign_or_404,
    current_collective,
    current_membership,
    tenant_blueprint,
)
from web.forms import ConfirmForm
from web.http import db_session, refused
from web.recipients.services import list_recipients, suggest_recipients

bp = tenant_blueprint("campaigns", __name__)

PREFIX = "/<slug:collective_slug>/campaigns"

Page = Response | str | tuple[str, int]


def _recipient_choices() -> list[tuple[str, str]]:
    directory, own = list_recipients(db_session())
    return [("", "Choose a recipient")] + [(str(r.id), r.display_name) for r in own + directory]


def _suggestions(text: str) -> list[Any]:
    return list(suggest_recipients(db_session(), text))


@bp.route(f"{PREFIX}/new", methods=["GET", "POST"])
def new() -> Page:
    form = NewCampaignForm()
    if request.method == "GET" and request.args.get("title"):
        form.slug.data = slugify(request.args["title"])
    if form.validate_on_submit():
        try:
            campaign = services.create_campaign(
                db_session(),
                current_membership(),
                kind=form.kind.data or "",
                title=form.title.data or "",
                slug=form.slug.data or "",
            )
        except PermissionError as exc:
            return refused(str(exc), 403)
        except services.CampaignError as exc:
            target = form.slug if "web address" in str(exc) else form.title
            target.errors = [*target.errors, str(exc)]
        else:
            flash("Campaign created. Next, choose who the letter is for.", "success")
            return redirect(url_for("campaigns.settings", campaign_id=campaign.id))
    status = 422 if request.method == "POST" else 200
    return render_template("campaigns/new.html", form=form), status


def _render_overview(
    campaign: Campaign, problems: list[services.Problem] | None = None, *, blocked: bool = False
) -> str:
    s = db_session()
    return render_template(
        "campaigns/overview.html",
        campaign=campaign,
        problems=services.publication_problems(campaign) if problems is None else problems,
        blocked=blocked,
        needs_review=services.needs_second_approver(s, current_collective()),
        approved=services.is_approved(s, campaign),
        events=services.review_events(s, campaign),
        versions=services.list_versions(s, campaign),
        user_name=lambda uid: services.user_name(s, uid),
        confirm=ConfirmForm(),
        comment_form=CommentForm(),
        body_html=render_markdown(campaign.body_markdown),
        greeting=salutation(
            campaign.audience_style, campaign.addressee_name, campaign.addressee_role
        ),
        style=style_for(campaign.audience_style),
        state=CampaignState,
        unpublished_changes=services.has_unpublished_changes(s, campaign),
    )


@bp.get(f"{PREFIX}/<id:campaign_id>/")
def overview(campaign_id: int) -> str:
    return _render_overview(campaign_or_404(campaign_id))


@bp.route(f"{PREFIX}/<id:campaign_id>/settings", methods=["GET", "POST"])
def settings(campaign_id: int) -> Page:
    campaign = campaign_or_404(campaign_id)
    form = SettingsForm(obj=campaign if request.method == "GET" else None)
    form.recipient_id.choices = _recipient_choices()
    if request.method == "GET":
        form.recipient_id.data = str(campaign.recipient_id or "")
    suggestions: list[Any] = []
    wants_suggestions = request.form.get("action") == "suggest"
    if wants_suggestions and form.validate_on_submit():
        query = form.suggest_text.data or campaign.subject or campaign.title
        suggestions = _suggestions(query)
        return render_template(
            "campaigns/settings.html",
            form=form,
            campaign=campaign,
            suggestions=suggestions,
            suggested=True,
        ), 200
    if form.validate_on_submit():
        try:
            services.update_settings(
                db_session(),
                current_membership(),
                campaign,
                title=form.title.data or "",
                slug=form.slug.data or "",
                recipient_id=int(form.recipient_id.data) if form.recipient_id.data else None,
                addressee_name=form.addressee_name.data or "",
                addressee_role=form.addressee_role.data or "",
                audience_style=form.audience_style.data or "",
                signature_target=form.signature_target.data,
                closes_on=form.closes_on.data,
                # Shown only while own words are on: otherwise leave the setting alone.
                statements_auto_approve=bool(form.statements_auto_approve.data)
                if campaign.statements_enabled
                else None,
            )
        except PermissionError as exc:
            return refused(str(exc), 403)
        except services.CampaignError as exc:
            form.title.errors = [*form.title.errors, str(exc)]
        else:
            flash("Settings saved.", "success")
            return redirect(url_for("campaigns.overview", campaign_id=campaign.id))
    status = 422 if request.method == "POST" else 200
    return render_template(
        "campaigns/settings.html",
        form=form,
        campaign=campaign,
        suggestions=suggestions,
        suggested=False,
    ), status


def _fill_letter_form(form: LetterForm, campaign: Campaign) -> None:
    form.subject.data = campaign.subject
    form.summary.data = campaign.summary
    form.body_markdown.data = campaign.body_markdown
    form.easy_read_markdown.data = campaign.easy_read_markdown
    form.meeting_purpose.data = campaign.meeting_purpose
    form.meeting_attendees.data = campaign.meeting_attendees
    form.lead_signatories.data = campaign.lead_signatories
    form.signing_organisations.data = campaign.signing_organisations
    while len(form.asks.entries):
        form.asks.pop_entry()
    for ask in campaign.asks or []:
        form.asks.append_entry(ask)
    for _ in range(max(2, 3 - len(form.asks.entries))):
        if len(form.asks.entries) < form.asks.max_entries:
            form.asks.append_entry("")
    while len(form.evidence_links.entries):
        form.evidence_links.pop_entry()
    for link in campaign.evidence_links or []:
        form.evidence_links.append_entry(link)
    for _ in range(2):
        if len(form.evidence_links.entries) < form.evidence_links.max_entries:
            form.evidence_links.append_entry({})
    while len(form.meeting_slots.entries):
        form.meeting_slots.pop_entry()
    for slot in campaign.meeting_slots or []:
        form.meeting_slots.append_entry(slot)
    while len(form.meeting_slots.entries) < max(3, len(campaign.meeting_slots or []) + 1):
        if len(form.meeting_slots.entries) >= form.meeting_slots.max_entries:
            break
        form.meeting_slots.append_entry({})


@bp.route(f"{PREFIX}/<id:campaign_id>/letter", methods=["GET", "POST"])
def letter(campaign_id: int) -> Page:
    campaign = campaign_or_404(campaign_id)
    form = LetterForm()
    if request.method == "GET":
        _fill_letter_form(form, campaign)
    error = None
    if form.validate_on_submit():
        try:
            revision = services.save_letter(
                db_session(),
                current_membership(),
                campaign,
                subject=form.subject.data or "",
                summary=form.summary.data or "",
                body_markdown=form.body_markdown.data or "",
                asks=[a or "" for a in form.asks.data],
                evidence_links=list(form.evidence_links.data),
                easy_read_markdown=form.easy_read_markdown.data or "",
                meeting_purpose=form.meeting_purpose.data or "",
                meeting_attendees=form.meeting_attendees.data or "",
                meeting_slots=list(form.meeting_slots.data),
                lead_signatories=form.lead_signatories.data or "",
                signing_organisations=form.signing_organisations.data or "",
            )
        except PermissionError as exc:
            return refused(str(exc), 403)
        except services.CampaignError as exc:
            error = str(exc)
        else:
            flash(f"Saved as revision {revision.number}.", "success")
            return redirect(url_for("campaigns.letter", campaign_id=campaign.id))
    status = 422 if request.method == "POST" else 200
    summary = form.summary.data or ""
    score = reading_ease(plain_text(summary))
    style = style_for(campaign.audience_style)
    return render_template(
        "campaigns/letter.html",
        form=form,
        campaign=campaign,
        error=error,
        style=style,
        styles=STYLES,
        summary_words=word_count(summary),
        summary_limit=style.summary_words,
        score=score,
        score_label=reading_ease_label(score),
        is_meeting=campaign.kind == CampaignKind.MEETING_REQUEST.value,
        greeting=salutation(
            campaign.audience_style, campaign.addressee_name, campaign.addressee_role
        ),
    ), status


@bp.get(f"{PREFIX}/<id:campaign_id>/revisions")
def revisions(campaign_id: int) -> str:
    s = db_session()
    campaign = campaign_or_404(campaign_id)
    return render_template(
        "campaigns/revisions.html",
        campaign=campaign,
        revisions=services.list_revisions(s, campaign),
    )


@bp.get(f"{PREFIX}/<id:campaign_id>/revisions/compare")
def compare(campaign_id: int) -> Page:
    s = db_session()
    campaign = campaign_or_404(campaign_id)
    try:
        old_n = int(request.args.get("from", ""))
        new_n = int(request.args.get("to", ""))
    except ValueError:
        return refused("Choose two revisions to compare.", 400)
    try:
        old = services.get_revision(s, campaign, old_n)
        new = services.get_revision(s, campaign, new_n)
    except services.NotFoundError:
        abort(404)
    return render_template(
        "campaigns/compare.html",
        campaign=campaign,
        old=old,
        new=new,
        sections=services.diff_contents(old.content, new.content),
    )


def _action(campaign_id: int, run: Any, done: str) -> Page:
    campaign = campaign_or_404(campaign_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        run(campaign)
    except PermissionError as exc:
        return refused(str(exc), 403)
    except services.PublicationBlocked as exc:
        return _render_overview(campaign, exc.problems, blocked=True), 422
    except services.CampaignError as exc:
        return refused(str(exc))
    flash(done, "success")
    return redirect(url_for("campaigns.overview", campaign_id=campaign.id))


@bp.post(f"{PREFIX}/<id:campaign_id>/submit")
def submit(campaign_id: int) -> Page:
    return _action(
        campaign_id,
        lambda c: services.submit_for_review(db_session(), current_membership(), c),
        "Submitted for review. Another organiser can now approve it.",
    )


@bp.post(f"{PREFIX}/<id:campaign_id>/withdraw")
def withdraw(campaign_id: int) -> Page:
    return _action(
        campaign_id,
        lambda c: services.withdraw_from_review(db_session(), current_membership(), c),
        "Withdrawn from review. You can edit the letter again.",
    )


@bp.post(f"{PREFIX}/<id:campaign_id>/approve")
def approve(campaign_id: int) -> Page:
    comment = (request.form.get("comment") or "")[:5000]
    return _action(
        campaign_id,
        lambda c: services.approve(db_session(), current_membership(), c, comment),
        "Approved. It can now be published.",
    )


@bp.post(f"{PREFIX}/<id:campaign_id>/request-changes")
def request_changes(campaign_id: int) -> Page:
    comment = (request.form.get("comment") or "")[:5000]
    return _action(
        campaign_id,
        lambda c: services.request_changes(db_session(), current_membership(), c, comment),
        "Sent back with your comment.",
    )


@bp.post(f"{PREFIX}/<id:campaign_id>/publish")
def publish(campaign_id: int) -> Page:
    return _action(
        campaign_id,
        lambda c: services.publish(db_session(), current_membership(), current_collective(), c),
        "Published. Share the campaign page to start collecting signatures.",
    )


@bp.post(f"{PREFIX}/<id:campaign_id>/close")
def close(campaign_id: int) -> Page:
    return _action(
        campaign_id,
        lambda c: services.close_campaign(db_session(), current_membership(), c),
        "Closed. No more signatures will be collected.",
    )


@bp.get(f"{PREFIX}/<id:campaign_id>/share")
def share(campaign_id: int) -> str:
    campaign = campaign_or_404(campaign_id)
    base = current_app.extensions["chorus.settings"].base_url
    public_url = f"{base}/{current_collective().slug}/{campaign.slug}"
    return render_template(
        "campaigns/share.html",
        campaign=campaign,
        public_url=public_url,
        embed_url=f"{public_url}/embed",
        is_public=campaign.published_at is not None,
        state=CampaignState,
    )
