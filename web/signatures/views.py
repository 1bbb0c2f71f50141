"""Organiser pages for a campaign's signatures (under
/app/<collective-slug>/campaigns/<id>/signatures): the numbers, the moderation queue and
bulk invalidation.

Every member may read these pages; restoring and rejecting need an owner or organiser
(the services check, and a refusal is a 403 page that says who may act). The bulk
invalidation has two steps: a GET preview that counts, and a POST confirmation that
carries the same criteria plus the previewed count, and changes exactly that many
rows or nothing. The forms live here rather than in `forms.py` because only these
views use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import DateTimeLocalField, HiddenField, StringField
from wtforms.validators import Optional

from web.campaigns.models import Campaign
from web.collectives.tenant import campaign_or_404, can_act, current_membership, tenant_blueprint
from web.db import utcnow
from web.forms import ConfirmForm, max_length, strip
from web.http import app_settings, db_session, refused
from web.signatures import services, trending
from web.signatures.offline import counted_offline

bp = tenant_blueprint("signatures", __name__)

PREFIX = "/<slug:collective_slug>/campaigns/<id:campaign_id>/signatures"

Page = Response | str | tuple[str, int]

STATUS_LABELS = {
    "pending": "Waiting for the signer to confirm",
    "verified": "Verified",
    "quarantined": "In the moderation queue",
    "rejected": "Rejected",
    "withdrawn": "Withdrawn by the signer",
    "erased": "Erased by the signer (an anonymous record kept after delivery)",
}
METHOD_LABELS = {
    "online": "Online",
    "assisted": "Assisted (by phone or in person)",
    "paper": "Paper",
}
REASON_LABELS = {
    "honeypot": "Filled in a field people never see",
    "too-fast": "Sent faster than a person can type",
    "no-form-timestamp": "Sent without loading the form",
}
DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]
DATETIME_HINT = "Enter a date and time like 2025-05-01 14:30."
IP_HASH_SHOWN = 12  # characters of the IP hash shown in the queue
CHART_WIDTH = 640
CHART_HEIGHT = 240
CHART_LEFT = 48  # room for the count labels
CHART_BOTTOM = 32  # room for the date labels
CHART_TOP = 12
CHART_MAX_DAYS = 366
CHART_MAX_BAR = 40  # a few days' bars stay bars, not blocks


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: date
    count: int


@dataclass(frozen=True)
class Chart:
    """A bar chart of confirmations per day, laid out here and drawn by the template as
    SVG (no script; the table beside it carries the same numbers)."""

    bars: list[Bar]
    ticks: list[tuple[float, int]]  # (y, value) for the horizontal grid lines
    first: date
    last: date
    peak: int
    peak_day: date
    total: int
    truncated: bool  # only the last CHART_MAX_DAYS days are drawn
    summary: str  # the chart in words, for its aria-label
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    left: int = CHART_LEFT
    baseline: int = CHART_HEIGHT - CHART_BOTTOM


def _chart(per_day: list[tuple[date, int]]) -> Chart | None:
    if not per_day:
        return None
    counts = dict(per_day)
    last = per_day[-1][0]
    first = max(per_day[0][0], last - timedelta(days=CHART_MAX_DAYS - 1))
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    peak_day = max(days, key=lambda d: (counts.get(d, 0), d))
    peak = counts.get(peak_day, 0)
    scale = _nice_ceiling(peak)
    plot_height = CHART_HEIGHT - CHART_BOTTOM - CHART_TOP
    slot = (CHART_WIDTH - CHART_LEFT) / len(days)
    gap = min(2.0, slot * 0.2)
    baseline = CHART_HEIGHT - CHART_BOTTOM
    width = max(min(slot - gap, CHART_MAX_BAR), 0.5)
    bars = []
    for i, day in enumerate(days):
        n = counts.get(day, 0)
        height = plot_height * n / scale
        bars.append(
            Bar(
                x=round(CHART_LEFT + i * slot + (slot - width) / 2, 2),
                y=round(baseline - height, 2),
                width=round(width, 2),
                height=round(height, 2),
                day=day,
                count=n,
            )
        )
    ticks = [(round(baseline - plot_height * v / scale, 2), v) for v in _tick_values(scale)]
    total = sum(counts.get(d, 0) for d in days)
    span = _day(first) if first == last else f"from {_day(first)} to {_day(last)}"
    summary = (
        f"Bar chart of verified signatures per day, {span}: {total:,} in all, the most "
        f"on {_day(peak_day)} ({peak:,}). The table below gives the number for each day."
    )
    return Chart(
        bars=bars,
        ticks=ticks,
        first=first,
        last=last,
        peak=peak,
        peak_day=peak_day,
        total=total,
        truncated=first != per_day[0][0],
        summary=summary,
    )


def _nice_ceiling(n: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50... at least n (so grid lines fall on round
    numbers)."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if step * m >= n:
                return step * m
        step *= 10


def _tick_values(scale: int) -> list[int]:
    if scale <= 1:
        return [0, 1]
    return [0, scale // 2, scale]


def _day(d: date) -> str:
    return f"{d.day} {d:%B %Y}"


@bp.get(f"{PREFIX}/")
def counts(campaign_id: int) -> str:
    campaign = campaign_or_404(campaign_id)
    report = services.signature_report(db_session(), campaign)
    chart = _chart(report.per_day)
    running, cumulative = 0, []
    for day, n in report.per_day:
        running += n
        cumulative.append((day, n, running))
    return render_template(
        "signatures/counts.html",
        campaign=campaign,
        report=report,
        chart=chart,
        per_day=cumulative,
        status_labels=STATUS_LABELS,
        method_labels=METHOD_LABELS,
        offline=counted_offline(db_session(), campaign),
        day=_day,
    )


# --- moderation ----------------------------------------------------------------------------


@bp.get(f"{PREFIX}/moderation")
def moderation(campaign_id: int) -> str:
    campaign = campaign_or_404(campaign_id)
    page = request.args.get("page", 1, type=int) or 1
    queue = services.quarantine_queue(db_session(), campaign, page)
    return render_template(
        "signatures/moderation.html",
        campaign=campaign,
        queue=queue,
        flags=trending.open_flags(db_session(), campaign),
        trend_window=trending.RECENT,
        can_act=can_act(),
        reason_labels=REASON_LABELS,
        shown=IP_HASH_SHOWN,
    )


def _moderate(campaign_id: int, signature_id: int, *, restore: bool) -> Page:
    campaign = campaign_or_404(campaign_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    s = db_session()
    try:
        if restore:
            signature = services.restore_signature(
                s, app_settings(), current_membership(), campaign, signature_id
            )
            done = (
                f"Restored the signature of {signature.name}. We have emailed them a link to "
                "confirm it; it counts once they do."
            )
        else:
            signature = services.reject_signature(s, current_membership(), campaign, signature_id)
            done = f"Rejected the signature of {signature.name}. It will not be counted."
    except PermissionError as exc:
        return refused(str(exc), 403)
    except services.SignatureNotFound:
        abort(404)
    except services.ModerationError as exc:
        return refused(str(exc), 409)
    flash(done, "success")
    page = request.args.get("page", 1, type=int) or 1
    target = url_for(
        "signatures.moderation", campaign_id=campaign.id, page=page if page > 1 else None
    )
    return redirect(target, 303)


@bp.post(f"{PREFIX}/<id:signature_id>/restore")
def restore(campaign_id: int, signature_id: int) -> Page:
    return _moderate(campaign_id, signature_id, restore=True)


@bp.post(f"{PREFIX}/<id:signature_id>/reject")
def reject(campaign_id: int, signature_id: int) -> Page:
    return _moderate(campaign_id, signature_id, restore=False)


@bp.post(f"{PREFIX}/flags/<id:flag_id>/dismiss")
def dismiss_flag(campaign_id: int, flag_id: int) -> Page:
    campaign = campaign_or_404(campaign_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        flag = trending.dismiss_flag(db_session(), current_membership(), campaign, flag_id)
    except PermissionError as exc:
        return refused(str(exc), 403)
    except trending.FlagNotFound:
        abort(404)
    flash(f"Dismissed the warning about {flag.value}. It will not be raised again.", "success")
    return redirect(url_for("signatures.moderation", campaign_id=campaign.id), 303)


# --- bulk invalidation ---------------------------------------------------------------------


class BulkForm(FlaskForm):
    """The criteria. Sent by GET for the preview (no CSRF: it changes nothing)."""

    email_domain = StringField(
        "Email domain",
        description="For example example.org. Its subdomains match too.",
        filters=[strip],
        validators=[Optional(), max_length(253, "The email domain")],
    )
    ip_hash = StringField(
        "IP hash",
        description="As shown in the moderation queue: the first 8 or more characters.",
        filters=[strip],
        validators=[Optional(), max_length(64, "The IP hash")],
    )
    signed_from = DateTimeLocalField(
        "Signed from (UTC)",
        description="For example 2025-05-01 14:30. Leave empty for no limit.",
        format=DATETIME_FORMATS,
        invalid_value_message=DATETIME_HINT,
        validators=[Optional()],
    )
    signed_to = DateTimeLocalField(
        "Signed before (UTC)",
        description="For example 2025-05-02 09:00. Leave empty for no limit.",
        format=DATETIME_FORMATS,
        invalid_value_message=DATETIME_HINT,
        validators=[Optional()],
    )

    class Meta:
        csrf = False


class BulkConfirmForm(BulkForm):
    """The same criteria as hidden fields, the moment of the preview and its count."""

    as_of = HiddenField()
    expected = HiddenField()

    class Meta:
        csrf = True


def _criteria(form: BulkForm, as_of: datetime | None = None) -> services.BulkCriteria:
    return services.bulk_criteria(
        email_domain=form.email_domain.data or "",
        ip_hash=form.ip_hash.data or "",
        signed_from=form.signed_from.data,
        signed_to=form.signed_to.data,
        as_of=as_of,
    )


def _field_error(form: BulkForm, exc: services.ModerationError) -> str:
    """Put the service's message on its field; return it if it belongs to none."""
    field = getattr(form, exc.field, None) if exc.field else None
    if field is None:
        return str(exc)
    field.errors = [*field.errors, str(exc)]
    return ""


def _render_bulk(
    campaign: Campaign,
    form: BulkForm,
    *,
    criteria: services.BulkCriteria | None = None,
    preview: dict[str, int] | None = None,
    error: str = "",
    status: int = 200,
) -> tuple[str, int]:
    return render_template(
        "signatures/bulk.html",
        campaign=campaign,
        form=form,
        criteria=criteria,
        preview=preview,
        total=sum(preview.values()) if preview else 0,
        error=error,
        can_act=can_act(),
        status_labels=STATUS_LABELS,
    ), status


@bp.get(f"{PREFIX}/bulk")
def bulk(campaign_id: int) -> Page:
    campaign = campaign_or_404(campaign_id)
    form = BulkForm(request.args)
    if not request.args:
        return _render_bulk(campaign, BulkForm(formdata=None))
    if not form.validate():
        return _render_bulk(campaign, form, status=422)
    try:
        criteria = _criteria(form, as_of=utcnow())
    except services.ModerationError as exc:
        return _render_bulk(campaign, form, error=_field_error(form, exc), status=422)
    preview = services.preview_bulk_rejection(db_session(), campaign, criteria)
    return _render_bulk(campaign, form, criteria=criteria, preview=preview)


@bp.post(f"{PREFIX}/bulk")
def bulk_reject(campaign_id: int) -> Page:
    campaign = campaign_or_404(campaign_id)
    form = BulkConfirmForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        return _render_bulk(campaign, form, status=422)
    try:
        as_of = datetime.fromisoformat(form.as_of.data or "")
        expected = int(form.expected.data or "")
    except ValueError:
        return refused(
            "This confirmation is incomplete. Go back to the preview and confirm from there.",
            400,
        )
    if expected < 0 or as_of.tzinfo is None:
        return refused(
            "This confirmation is incomplete. Go back to the preview and confirm from there.",
            400,
        )
    s = db_session()
    try:
        criteria = _criteria(form, as_of=as_of)
        changed = services.reject_in_bulk(s, current_membership(), campaign, criteria, expected)
    except PermissionError as exc:
        return refused(str(exc), 403)
    except services.BulkCountChanged as exc:
        preview = services.preview_bulk_rejection(s, campaign, criteria)
        fresh = BulkForm(request.form)
        fresh.validate()
        return _render_bulk(
            campaign,
            fresh,
            criteria=criteria,
            preview=preview,
            error=str(exc),
            status=409,
        )
    except services.ModerationError as exc:
        return _render_bulk(campaign, form, error=_field_error(form, exc), status=422)
    plural = "s" if changed != 1 else ""
    flash(f"Rejected {changed:,} signature{plural}. The public count is up to date.", "success")
    return redirect(url_for("signatures.counts", campaign_id=campaign.id), 303)
