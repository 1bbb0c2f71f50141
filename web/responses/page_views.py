"""/respond/<token>: the department's response page (issue #6 §3). No account, no
JavaScript needed.

The token names one delivery (`web.responses.services.load_for_link`): an unknown or
wrong token is a 404 ("This link is not valid"), a revoked or expired one a 410 that
says why and what to do instead. The page shows who sent the letter, the letter as
published (the same sanitised HTML as the public campaign page), the delivered PDF, the
signers' own words (approved and consented, near-duplicates once, 50 a page), the
method annex (the PDF's annex C, as of today), the working-day clock and what has been
recorded so far. The official can:

- acknowledge receipt in one click (a second click records nothing and says when it
  was acknowledged);
- reply with text and, optionally, one PDF, DOCX or ODT file up to 20 MB (checked by its
  bytes, stored in PostgreSQL), saying whether it is the full reply or a holding reply;
- for a meeting request, accept a proposed time, propose others, or decline with a
  reason (web/responses/meetings.py).

Every answer notifies the collective's owners and organisers by email.

Headers: every response under /respond (error pages and unmatched addresses included)
carries `Referrer-Policy: no-referrer`, `Cache-Control: no-store` and
`X-Robots-Tag: noindex`, set by an app-wide after-request hook registered here. It is
registered with the blueprints, before the app's own hooks, and Flask runs
after-request hooks in reverse order, so it runs last: after the security headers'
defaults and after `web.http.finish_request` (which may replace the response when the
commit fails). The pages also carry `<meta name="referrer" content="no-referrer">`.

Uploads: the app caps bodies at 2 MB; the reply form's address allows 20 MB plus 1 MB
for the text and the form around it (set in a URL value preprocessor, which runs before
the CSRF check reads the body). Anything larger is a 413 page that says the limit.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import func, select
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Response
from wtforms.fields.choices import SelectChoice

from web.campaigns.markdown import render_markdown
from web.campaigns.models import Campaign, CampaignKind, LetterVersion
from web.campaigns.styles import salutation
from web.collectives.models import Collective
from web.db import utcnow
from web.delivery.models import Delivery
from web.delivery.services import delivered_version
from web.delivery.workdays import deadline_status, uk_date
from web.extensions import limiter
from web.http import app_settings, db_session
from web.pdf.context import method_facts
from web.pdf.models import Document
from web.recipients.models import Recipient
from web.responses import meetings
from web.responses.attachments import AttachmentRejected, check_attachment, store_attachment
from web.responses.models import (
    MAX_ATTACHMENT_BYTES,
    Meeting,
    MeetingStatus,
    ResponseChannel,
    ResponseKind,
)
from web.responses.notify import notify_organisers
from web.responses.page_forms import (
    AcceptForm,
    AcknowledgeForm,
    AlternativesForm,
    DeclineForm,
    ReplyForm,
)
from web.responses.services import LinkProblem, load_for_link, record_response, responses_for
from web.signatures.models import Signature
from web.signatures.statements import distinct_voices, public_conditions, statement_groups

bp = Blueprint("respond", __name__, url_prefix="/respond")

FORM_OVERHEAD = 1024 * 1024  # the reply text (50,000 characters) and the multipart parts
VOICES_PER_PAGE = 50
MAX_VOICE_PAGES = 200
RESPOND_LIMIT = "30 per minute;300 per hour"
MB = 1024 * 1024


class Refused(HTTPException):
    """A page that cannot be shown: 404 (not a valid link) or 410 (no longer valid)."""

    def __init__(self, status: int, heading: str, message: str) -> None:
        super().__init__(message)
        self.code = status
        self.heading = heading
        self.message = message


# --- headers and limits --------------------------------------------------------------------


def _is_respond_path() -> bool:
    return request.path == "/respond" or request.path.startswith("/respond/")


@bp.after_app_request
def private_headers(response: Response) -> Response:
    if _is_respond_path():
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


@bp.url_value_preprocessor
def allow_attachments(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    if endpoint == "respond.reply":
        request.max_content_length = MAX_ATTACHMENT_BYTES + FORM_OVERHEAD


@bp.errorhandler(Refused)
def refused_page(exc: Refused) -> Response:
    html = render_template(
        "respond/invalid.html", status=exc.code, heading=exc.heading, message=exc.message
    )
    return make_response(html, exc.code or 404)


@bp.errorhandler(RequestEntityTooLarge)
def too_large(_exc: RequestEntityTooLarge) -> Response:
    token = (request.view_args or {}).get("token", "")
    if request.endpoint != "respond.reply" or not token:
        html = render_template(
            "respond/invalid.html",
            status=413,
            heading="That is too large",
            message="What you sent is too large. Please shorten it and try again.",
        )
        return make_response(html, 413)
    try:
        delivery = _open(token)
    except Refused as exc:
        return refused_page(exc)
    form = ReplyForm(formdata=None)
    form.attachment.errors = [
        f"The file is larger than {MAX_ATTACHMENT_BYTES // MB} MB, the most we accept. "
        "Attach a smaller file (a PDF of the reply often is), or reply by email instead. "
        "Your text was not sent: please enter it again."
    ]
    return _page(delivery, token, reply_form=form, status=413)


# --- loading -------------------------------------------------------------------------------


def _open(token: str) -> Delivery:
    s = db_session()
    try:
        delivery = load_for_link(s, token)
    except LinkProblem as exc:
        raise Refused(410, "This link no longer works", str(exc)) from None
    except LookupError:
        raise Refused(
            404,
            "This link is not valid",
            "Check that you copied the whole link from the email. If it still does not "
            "work, reply to the email the letter came with.",
        ) from None
    if not delivery.is_sent:
        raise Refused(404, "This link is not valid", "This letter has not been delivered.")
    return delivery


@dataclasses.dataclass
class Letter:
    collective: Collective
    campaign: Campaign
    version: LetterVersion | None
    content: dict[str, Any]
    document: Document | None

    @property
    def is_meeting(self) -> bool:
        return self.content.get("kind") == CampaignKind.MEETING_REQUEST.value or (
            self.campaign.kind == CampaignKind.MEETING_REQUEST.value
        )


def _letter(delivery: Delivery) -> Letter:
    s = db_session()
    campaign = s.get(Campaign, delivery.campaign_id)
    collective = s.get(Collective, delivery.collective_id)
    if campaign is None or collective is None:
        abort(404)
    document = s.get(Document, delivery.document_id) if delivery.document_id else None
    version = delivered_version(s, delivery)
    content = dict(version.content) if version is not None else campaign.letter_content()
    return Letter(collective, campaign, version, content, document)


def _voices(campaign: Campaign, page: int) -> dict[str, Any]:
    s = db_session()
    total = distinct_voices(s, campaign)
    pages = max(1, -(-total // VOICES_PER_PAGE))
    page = max(1, min(page, pages, MAX_VOICE_PAGES))
    groups = statement_groups(s, campaign, limit=page * VOICES_PER_PAGE)
    groups = groups[(page - 1) * VOICES_PER_PAGE :]
    firsts = [g.member_ids[0] for g in groups if g.member_ids]
    names: dict[int, str] = {}
    if firsts:
        names = {
            int(sid): str(name)
            for sid, name in s.execute(
                select(Signature.id, Signature.name).where(
                    Signature.campaign_id == campaign.id,
                    Signature.id.in_(firsts),
                    Signature.show_name.is_(True),
                )
            )
        }
    voices = [
        {
            "text": g.representative,
            "count": g.count,
            "name": names.get(g.member_ids[0], "") if g.member_ids else "",
        }
        for g in groups
    ]
    return {
        "voices": voices,
        "voices_total": total,
        "voices_page": page,
        "voices_pages": min(pages, MAX_VOICE_PAGES),
        "voices_capped": pages > MAX_VOICE_PAGES,
        "voices_first": (page - 1) * VOICES_PER_PAGE + 1,
    }


def _method(letter: Letter) -> Any:
    s = db_session()
    facts = method_facts(
        s,
        letter.campaign,
        voice_list=[],
        letter_sha256=letter.version.sha256 if letter.version else "",
        verify_url=f"{app_settings().base_url}/verify",
    )
    statements = int(s.scalar(select(func.count()).where(*public_conditions(letter.campaign))) or 0)
    return dataclasses.replace(
        facts,
        statements_total=statements,
        distinct_statements=distinct_voices(s, letter.campaign),
    )


def _recipient(content: dict[str, Any]) -> Recipient | None:
    recipient_id = content.get("recipient_id")
    if not isinstance(recipient_id, int):
        return None
    return db_session().scalar(select(Recipient).where(Recipient.id == recipient_id))


def _clock(delivery: Delivery) -> dict[str, Any]:
    if delivery.delivered_on is None:
        return {}
    today = uk_date(utcnow())
    try:
        reply = deadline_status(
            delivery.delivered_on, delivery.reply_target_days, today, delivery.nation
        )
        ack = deadline_status(
            delivery.delivered_on, delivery.ack_target_days, today, delivery.nation
        )
    except ValueError:
        return {}
    return {"reply_clock": reply, "ack_clock": ack}


def _page(
    delivery: Delivery,
    token: str,
    *,
    status: int = 200,
    ack_form: AcknowledgeForm | None = None,
    reply_form: ReplyForm | None = None,
    accept_form: AcceptForm | None = None,
    alternatives_form: AlternativesForm | None = None,
    decline_form: DeclineForm | None = None,
    problem: str = "",
    submitted: str = "",
) -> Response:
    s = db_session()
    letter = _letter(delivery)
    meeting = meetings.meeting_for(s, delivery) if letter.is_meeting else None
    slots = meetings.proposed_slots(letter.content) if letter.is_meeting else []
    accept_form = accept_form or AcceptForm(formdata=None)
    accept_form.slot.choices = [SelectChoice(slot.index, slot.when) for slot in slots]
    try:
        voices_page = int(request.args.get("voices", "1"))
    except ValueError:
        voices_page = 1
    forms = {
        "ack_form": ack_form or AcknowledgeForm(formdata=None),
        "reply_form": reply_form or ReplyForm(formdata=None),
        "accept_form": accept_form,
        "alternatives_form": alternatives_form or AlternativesForm(formdata=None),
        "decline_form": decline_form or DeclineForm(formdata=None),
    }
    errors = {name: form_errors(form) for name, form in forms.items()}
    html = render_template(
        "respond/page.html",
        token=token,
        delivery=delivery,
        collective=letter.collective,
        campaign=letter.campaign,
        version=letter.version,
        document=letter.document,
        content=letter.content,
        recipient=_recipient(letter.content),
        body_html=render_markdown(letter.content.get("body_markdown", "")),
        greeting=salutation(
            letter.content.get("audience_style", "minister"),
            letter.content.get("addressee_name", ""),
            letter.content.get("addressee_role", ""),
        ),
        is_meeting=letter.is_meeting,
        meeting=meeting,
        meeting_when=(
            meetings.uk_span(meeting.starts_at, meeting.ends_at)
            if meeting is not None and meeting.starts_at is not None
            else ""
        ),
        alternatives=alternatives_shown(meeting),
        slots=slots,
        responses=responses_for(s, delivery),
        method=_method(letter),
        errors=errors,
        problem=problem,
        submitted=submitted,
        max_mb=MAX_ATTACHMENT_BYTES // MB,
        **forms,
        **_clock(delivery),
        **_voices(letter.campaign, voices_page),
    )
    return make_response(html, status)


def alternatives_shown(meeting: Meeting | None) -> list[str]:
    if meeting is None or meeting.status != MeetingStatus.ALTERNATIVES.value:
        return []
    shown = []
    for item in meeting.alternatives or []:
        try:
            start = datetime.fromisoformat(item["starts_at"])
            end = datetime.fromisoformat(item["ends_at"])
        except (KeyError, TypeError, ValueError):
            continue
        shown.append(meetings.uk_span(start, end))
    return shown


def form_errors(form: Any) -> list[tuple[str, str]]:
    """(field id, message) for every error of a form, nested fields included."""
    found: list[tuple[str, str]] = []
    for field in form:
        if field.type == "FormField":
            for sub in field.form:
                found += [(sub.id, str(e)) for e in sub.errors]
        elif isinstance(field.errors, list | tuple):
            found += [(field.id, str(e)) for e in field.errors]
    return found


def lock_for_answer(delivery: Delivery) -> Delivery:
    """The delivery, locked for the rest of the request: two clicks at once wait for
    each other, so the second sees what the first recorded."""
    locked = db_session().scalar(
        select(Delivery)
        .where(Delivery.id == delivery.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if locked is None:
        abort(404)
    return locked


def _back(token: str, anchor: str) -> Response:
    return redirect(url_for("respond.page", token=token) + f"#{anchor}", 303)


def _day(moment: datetime | None) -> str:
    return moment.astimezone(meetings.UK).strftime("%-d %B %Y") if moment else ""


# --- the page -------------------------------------------------------------------------------


@bp.get("/<token>")
def page(token: str) -> Response:
    return _page(_open(token), token)


@bp.get("/<token>/letter.pdf")
def letter_pdf(token: str) -> Response:
    delivery = _open(token)
    letter = _letter(delivery)
    if letter.document is None:
        raise Refused(404, "No PDF for this letter", "This letter was delivered without a PDF.")
    response = make_response(letter.document.data)
    response.headers["Content-Type"] = "application/pdf"
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{letter.campaign.slug}-letter.pdf"'
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/<token>/meeting.ics")
def meeting_ics(token: str) -> Response:
    delivery = _open(token)
    s = db_session()
    meeting = meetings.meeting_for(s, delivery)
    if (
        meeting is None
        or meeting.starts_at is None
        or meeting.status
        not in (
            MeetingStatus.ACCEPTED.value,
            MeetingStatus.HELD.value,
        )
    ):
        raise Refused(404, "No meeting agreed yet", "No meeting time has been agreed yet.")
    data = meetings.calendar_file(s, app_settings(), delivery, meeting)
    response = make_response(data)
    response.headers["Content-Type"] = "text/calendar; charset=utf-8"
    response.headers["Content-Disposition"] = 'attachment; filename="meeting.ics"'
    return response


@bp.post("/<token>/acknowledge")
@limiter.shared_limit(RESPOND_LIMIT, scope="respond")
def acknowledge(token: str) -> Response:
    delivery = _open(token)
    form = AcknowledgeForm()
    if not form.validate():
        return _page(delivery, token, ack_form=form, status=422, submitted="ack")
    delivery = lock_for_answer(delivery)
    if delivery.acknowledged_at is not None:
        flash(
            f"This letter was already acknowledged on {_day(delivery.acknowledged_at)}. "
            "Nothing more was recorded.",
            "info",
        )
        return _back(token, "status")
    s = db_session()
    name, role = form.name.data or "", form.role.data or ""
    record_response(
        s,
        delivery,
        kind=ResponseKind.ACKNOWLEDGEMENT,
        channel=ResponseChannel.PAGE,
        responder_name=name,
        responder_role=role,
        classified_by="responder",
    )
    notify_organisers(
        s,
        app_settings(),
        delivery,
        what="receipt acknowledged",
        responder=_who(name, role),
    )
    flash(
        "Thank you: receipt is acknowledged. The organisers have been told. You can reply "
        "in full below whenever you are ready.",
        "success",
    )
    return _back(token, "status")


def _who(name: str, role: str, email: str = "") -> str:
    who = ", ".join(part for part in (name, role) if part)
    if email:
        who = f"{who} <{email}>" if who else email
    return who or "the department (no name given)"


@bp.post("/<token>/reply")
@limiter.shared_limit(RESPOND_LIMIT, scope="respond")
def reply(token: str) -> Response:
    delivery = _open(token)
    form = ReplyForm()
    valid = form.validate()
    upload = request.files.get("reply-attachment")
    data = b""
    if upload is not None and upload.filename:
        data = upload.stream.read(MAX_ATTACHMENT_BYTES + 1)
        try:
            check_attachment(data, upload.filename)
        except AttachmentRejected as exc:
            form.attachment.errors = [f"{exc} Your text is kept below; attach the file again."]
            valid = False
    if not valid:
        return _page(delivery, token, reply_form=form, status=422, submitted="reply")
    delivery = lock_for_answer(delivery)
    s = db_session()
    kind = ResponseKind.HOLDING if form.kind.data == "holding" else ResponseKind.SUBSTANTIVE
    response = record_response(
        s,
        delivery,
        kind=kind,
        channel=ResponseChannel.PAGE,
        body_text=form.body.data or "",
        subject=f"Reply from {form.name.data}",
        responder_name=form.name.data or "",
        responder_role=form.role.data or "",
        responder_email=form.email.data or "",
        classified_by="responder",
    )
    if data and upload is not None:
        store_attachment(s, response, data, upload.filename)
    notify_organisers(
        s,
        app_settings(),
        delivery,
        what="a full reply" if kind is ResponseKind.SUBSTANTIVE else "a holding reply",
        responder=_who(form.name.data or "", form.role.data or "", form.email.data or ""),
        body_excerpt=form.body.data or "",
    )
    flash(
        "Thank you: your reply has been sent to the organisers"
        + (" with its attachment." if data else "."),
        "success",
    )
    return _back(token, "status")


# --- meetings --------------------------------------------------------------------------------


def _meeting_delivery(token: str) -> tuple[Delivery, Letter]:
    delivery = _open(token)
    letter = _letter(delivery)
    if not letter.is_meeting:
        abort(404)
    return delivery, letter


@bp.post("/<token>/meeting/accept")
@limiter.shared_limit(RESPOND_LIMIT, scope="respond")
def accept(token: str) -> Response:
    delivery, letter = _meeting_delivery(token)
    slots = {slot.index: slot for slot in meetings.proposed_slots(letter.content)}
    form = AcceptForm()
    form.slot.choices = [SelectChoice(i, slot.when) for i, slot in slots.items()]
    valid = form.validate()
    slot = slots.get(form.slot.data) if isinstance(form.slot.data, int) else None
    span: tuple[datetime, datetime] | None = None
    location = ""
    if valid and slot is not None:
        span = accepted_span(form, slot)
        try:
            location = meetings.clean_location(form.location.data or "")
        except meetings.MeetingError as exc:
            form.location.errors = [str(exc)]
            span = None
    if not valid or slot is None or span is None:
        return _page(delivery, token, accept_form=form, status=422, submitted="accept")
    delivery = lock_for_answer(delivery)
    try:
        meetings.accept_slot(
            db_session(),
            app_settings(),
            delivery,
            slot=slot,
            starts_at=span[0],
            ends_at=span[1],
            official_name=form.name.data or "",
            official_email=form.email.data or "",
            official_role=form.role.data or "",
            location=location,
        )
    except meetings.MeetingError as exc:
        return _page(
            delivery, token, accept_form=form, status=422, problem=str(exc), submitted="accept"
        )
    flash(
        f"Thank you: the meeting is agreed for {meetings.uk_span(*span)}. A calendar "
        f"invitation is on its way to {form.email.data} and to the organisers.",
        "success",
    )
    return _back(token, "meeting")


def accepted_span(
    form: AcceptForm, slot: meetings.ProposedSlot
) -> tuple[datetime, datetime] | None:
    """The exact time accepted: the one typed in, or the proposed one when it is exact.
    Sets the form's errors and returns None when it cannot be worked out."""
    typed_day: date | None = form.day.data
    if typed_day is not None or form.start.data is not None or not slot.is_exact:
        # A window ("the week of 9 March") may name a date, but not the one to meet on.
        day = typed_day if not slot.is_exact else typed_day or slot.day
        if day is None:
            form.day.errors = [
                f"“{slot.when}” is a window, not an exact time: enter the date you will meet."
            ]
            return None
        if form.start.data is None:
            form.start.errors = ["Enter the time the meeting starts (UK time)."]
            return None
        start = meetings.local_datetime(day, form.start.data)
        end = (
            meetings.local_datetime(day, form.end.data)
            if form.end.data is not None
            else start + timedelta(hours=1)
        )
    else:
        assert slot.starts_at is not None
        assert slot.ends_at is not None
        start, end = slot.starts_at, slot.ends_at
    try:
        meetings.check_span(start, end)
    except meetings.MeetingError as exc:
        target = form.start if form.start.data is not None else form.slot
        target.errors = [str(exc)]
        return None
    return start, end


def alternative_times(form: AlternativesForm) -> tuple[list[tuple[datetime, datetime]], bool]:
    """The times proposed, each checked with `meetings.check_span`, and whether the
    form is valid; sets the form's errors. Used by the response page and the department inbox."""
    valid = form.validate()
    times: list[tuple[datetime, datetime]] = []
    for entry in form.times:
        sub = entry.form
        day, start, end = sub.day.data, sub.start.data, sub.end.data
        if any(f.errors for f in (sub.day, sub.start, sub.end)):
            valid = False
            continue
        if day is None and start is None and end is None:
            continue
        if day is None or start is None or end is None:
            missing = sub.day if day is None else sub.start if start is None else sub.end
            missing.errors = ["Give a date, a start time and an end time for each time."]
            valid = False
            continue
        span = meetings.local_datetime(day, start), meetings.local_datetime(day, end)
        try:
            meetings.check_span(*span)
        except meetings.MeetingError as exc:
            sub.start.errors = [str(exc)]
            valid = False
            continue
        times.append(span)
    if valid and not times:
        form.times[0].form.day.errors = ["Propose at least one other time."]
        valid = False
    return times, valid


@bp.post("/<token>/meeting/alternatives")
@limiter.shared_limit(RESPOND_LIMIT, scope="respond")
def alternatives(token: str) -> Response:
    delivery, _ = _meeting_delivery(token)
    form = AlternativesForm()
    times, valid = alternative_times(form)
    if not valid:
        return _page(delivery, token, alternatives_form=form, status=422, submitted="alternatives")
    delivery = lock_for_answer(delivery)
    s = db_session()
    try:
        meetings.propose_alternatives(
            s,
            app_settings(),
            delivery,
            times=times,
            note=form.note.data or "",
            official_name=form.name.data or "",
            official_email=form.email.data or "",
            official_role=form.role.data or "",
        )
    except meetings.MeetingError as exc:
        return _page(
            delivery,
            token,
            alternatives_form=form,
            status=422,
            problem=str(exc),
            submitted="alternatives",
        )
    listed = "; ".join(meetings.uk_span(a, b) for a, b in times)
    notify_organisers(
        s,
        app_settings(),
        delivery,
        what="other meeting times proposed",
        responder=_who(form.name.data or "", form.role.data or "", form.email.data or ""),
        body_excerpt=f"{listed}\n\n{form.note.data or ''}".strip(),
    )
    flash("Thank you: the organisers will answer about the times you proposed.", "success")
    return _back(token, "meeting")


@bp.post("/<token>/meeting/decline")
@limiter.shared_limit(RESPOND_LIMIT, scope="respond")
def decline(token: str) -> Response:
    delivery, _ = _meeting_delivery(token)
    form = DeclineForm()
    if not form.validate():
        return _page(delivery, token, decline_form=form, status=422, submitted="decline")
    delivery = lock_for_answer(delivery)
    s = db_session()
    try:
        meetings.decline_meeting(
            s,
            app_settings(),
            delivery,
            reason=form.reason.data or "",
            official_name=form.name.data or "",
            official_email=form.email.data or "",
            official_role=form.role.data or "",
        )
    except meetings.MeetingError as exc:
        return _page(
            delivery, token, decline_form=form, status=422, problem=str(exc), submitted="decline"
        )
    notify_organisers(
        s,
        app_settings(),
        delivery,
        what="meeting declined",
        responder=_who(form.name.data or "", form.role.data or "", form.email.data or ""),
        body_excerpt=form.reason.data or "",
    )
    flash("Your answer has been sent to the organisers.", "success")
    return _back(token, "meeting")
