"""The department's inbox (issue #6 §9) and the public department pages (§10).

* `bp` ("department"), /department/...: for signed-in officials. Claim a department
  with a work address (a confirmation link goes to it), then read every letter sent to
  that department from every collective, and acknowledge or reply from there; for a
  meeting request, also accept a proposed time, propose others or decline with a
  reason, exactly as on the response page (the same forms, web/responses/page_forms.py,
  and the same services, web/responses/meetings.py, with channel INBOX and the
  official's account). An inbox or letter of a department the person holds no
  verified account for is a 404, the same as an unknown department or letter: nothing
  says whether it has letters.
* `public_bp` ("accountability"), /departments and /departments/<key>: no login, no
  JavaScript. How each department has answered the letters sent through Chorus.

All reading across collectives goes through web/responses/department.py, which uses
the fixed SQL functions of migration 0020 and never the ORM with `all_collectives`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms.fields.choices import SelectChoice

from web.app import settings_of
from web.campaigns.markdown import render_markdown
from web.campaigns.models import Campaign, CampaignKind
from web.campaigns.styles import salutation
from web.collectives.models import Collective
from web.db import utcnow
from web.delivery.models import Delivery
from web.delivery.services import delivered_version
from web.delivery.workdays import uk_date
from web.extensions import limiter
from web.http import db_session, refused
from web.pdf.models import Document
from web.pdf.services import document_bytes
from web.recipients.models import Recipient
from web.responses import department as services
from web.responses import meetings
from web.responses.attachments import (
    AttachmentRejected,
    check_attachment,
    content_disposition,
    store_attachment,
)
from web.responses.department_forms import AcknowledgeForm, ClaimForm, ReplyForm
from web.responses.models import (
    MAX_ATTACHMENT_BYTES,
    DepartmentAccount,
    MeetingStatus,
    ResponseAttachment,
    ResponseChannel,
    ResponseKind,
)
from web.responses.models import (
    Response as ResponseRow,
)
from web.responses.notify import notify_organisers
from web.responses.page_forms import AcceptForm, AlternativesForm, DeclineForm

# The response page's own checks of a meeting answer, so both places judge alike.
from web.responses.page_views import (
    accepted_span,
    alternative_times,
    alternatives_shown,
    form_errors,
    lock_for_answer,
)
from web.responses.services import ResponseError, record_response, responses_for

bp = Blueprint("department", __name__, url_prefix="/department")
public_bp = Blueprint("accountability", __name__)

KEY = "<string(maxlength=80):key>"
LETTER = f"/{KEY}/letters/<id:delivery_id>"
CLAIM_LIMIT = "5 per hour"
CLAIM_ATTEMPT_LIMIT = "30 per hour"
RESPOND_LIMIT = "30 per hour"
FORM_OVERHEAD = 256 * 1024  # the reply's text, the CSRF token and multipart headers
MAX_PAGE = 100_000


def _user_key() -> str:
    """Rate limits per signed-in user (the address for anyone else)."""
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return get_remote_address()


@bp.before_request
@login_required
def require_login() -> None:
    return None


@bp.url_value_preprocessor
def allow_attachments(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    # Runs before the CSRF check reads the body (see web/pdf/verify_views.py).
    if endpoint == "department.reply":
        request.max_content_length = MAX_ATTACHMENT_BYTES + FORM_OVERHEAD


# --- claiming -----------------------------------------------------------------------------


@bp.get("/")
def index() -> str:
    accounts = services.accounts_of(db_session(), current_user)
    return render_template("department/index.html", accounts=accounts)


def _claim_page(form: ClaimForm, status: int = 200, error: str = "") -> tuple[str, int]:
    departments = services.claimable_departments(db_session())
    form.department.choices = [SelectChoice("", "Choose a department")] + [
        SelectChoice(str(d.id), d.display_name) for d in departments
    ]
    return (
        render_template(
            "department/claim.html",
            form=form,
            error=error,
            departments=departments,
            verified=current_user.is_verified,
        ),
        status,
    )


@bp.route("/claim", methods=["GET", "POST"])
@limiter.limit(CLAIM_ATTEMPT_LIMIT, methods=["POST"], key_func=_user_key)
@limiter.limit(
    CLAIM_LIMIT,
    methods=["POST"],
    key_func=_user_key,
    # Only claims that send an email count against the five an hour; mistakes in the
    # form count against the attempts limit above.
    deduct_when=lambda response: response.status_code == 302,
)
def claim() -> Response | tuple[str, int]:
    form = ClaimForm()
    if not current_user.is_verified:
        return _claim_page(form, 403)
    if request.method == "GET":
        return _claim_page(form)
    if not form.validate_on_submit():
        return _claim_page(form, 422)
    s = db_session()
    try:
        result = services.claim_department(
            s,
            settings_of(current_app),
            current_user,
            recipient_id=form.department.data,
            email=form.email.data or "",
        )
    except services.DepartmentError as exc:
        target = form.department if "department from the list" in str(exc) else form.email
        target.errors = [*target.errors, str(exc)]
        return _claim_page(form, 422)
    if result.token is None:
        flash(f"You already have access to {result.department.name}'s letters.", "info")
        return redirect(url_for("department.inbox", key=result.department.key))
    return redirect(url_for("department.claim_sent", key=result.department.key))


@bp.get("/claim/sent/" + KEY)
def claim_sent(key: str) -> str:
    s = db_session()
    department = services.department_by_key(s, key)
    if department is None:
        abort(404)
    account = s.scalar(
        select(DepartmentAccount).where(
            DepartmentAccount.user_id == current_user.id,
            DepartmentAccount.recipient_id == department.id,
        )
    )
    if account is None:
        abort(404)
    return render_template("department/claim_sent.html", department=department, account=account)


@bp.route("/confirm/<token>", methods=["GET", "POST"])
@limiter.limit("30 per hour", methods=["POST"], key_func=_user_key)
def confirm(token: str) -> Response | tuple[str, int]:
    s = db_session()
    form = AcknowledgeForm()
    try:
        pending = services.check_claim_link(s, current_user, token)
        if request.method == "POST" and form.validate_on_submit():
            pending = services.confirm_department_claim(s, current_user, token)
            flash(
                f"Confirmed: you can now read and answer the letters sent to "
                f"{pending.department.name} through Chorus.",
                "success",
            )
            return redirect(url_for("department.inbox", key=pending.department.key))
    except services.ClaimLinkProblem as exc:
        return (
            render_template("department/link_problem.html", message=str(exc)),
            exc.status,
        )
    status = 422 if request.method == "POST" else 200
    return render_template("department/confirm.html", form=form, pending=pending), status


# --- the inbox ----------------------------------------------------------------------------


def _department_or_404(key: str) -> tuple[Recipient, DepartmentAccount]:
    """The department and the user's verified account for it, or 404 (unknown key, no
    account, or not verified yet: the same answer)."""
    s = db_session()
    department = services.department_by_key(s, key)
    if department is None:
        abort(404)
    account = services.verified_account(s, current_user, department)
    if account is None:
        abort(404)
    return department, account


def _page_number() -> int:
    raw = request.args.get("page", "1")
    if not raw.isdigit() or len(raw) > 6:
        return 1
    return min(max(int(raw), 1), MAX_PAGE)


@bp.get(f"/{KEY}/")
def inbox(key: str) -> str:
    department, _account = _department_or_404(key)
    page = services.inbox(db_session(), department, _page_number())
    if not page.letters and page.page > 1:
        abort(404)
    return render_template("department/inbox.html", department=department, inbox=page)


def _letter_or_404(key: str, delivery_id: int) -> tuple[Recipient, DepartmentAccount, Delivery]:
    department, account = _department_or_404(key)
    try:
        delivery = services.open_letter(db_session(), department, delivery_id)
    except LookupError:
        abort(404)
    return department, account, delivery


def _letter_content(delivery: Delivery, campaign: Campaign) -> dict[str, Any] | None:
    version = delivered_version(db_session(), delivery)
    return dict(version.content) if version is not None else None


def _letter_page(
    department: Recipient,
    account: DepartmentAccount,
    delivery: Delivery,
    *,
    reply_form: ReplyForm | None = None,
    accept_form: AcceptForm | None = None,
    alternatives_form: AlternativesForm | None = None,
    decline_form: DeclineForm | None = None,
    problem: str = "",
    submitted: str = "",
    status: int = 200,
) -> tuple[str, int]:
    s = db_session()
    campaign = s.get(Campaign, delivery.campaign_id)
    if campaign is None:
        abort(404)
    content = _letter_content(delivery, campaign)
    is_meeting = _is_meeting(campaign, content)
    meeting = meetings.meeting_for(s, delivery) if is_meeting else None
    slots = meetings.proposed_slots(content or {}) if is_meeting else []
    meeting_forms = _meeting_forms(account, accept_form, alternatives_form, decline_form)
    meeting_forms["accept_form"].slot.choices = [SelectChoice(x.index, x.when) for x in slots]
    responses = responses_for(s, delivery)
    attachments: dict[int, list[ResponseAttachment]] = {}
    if responses:
        for attachment in s.scalars(
            select(ResponseAttachment)
            .where(ResponseAttachment.response_id.in_([r.id for r in responses]))
            .order_by(ResponseAttachment.id)
        ):
            attachments.setdefault(attachment.response_id, []).append(attachment)
    if reply_form is None:
        reply_form = ReplyForm(formdata=None)
        reply_form.responder_name.data = current_user.display_name
    today = uk_date(utcnow())
    collective_name = _collective_name(delivery)
    html = render_template(
        "department/letter.html",
        department=department,
        account=account,
        delivery=delivery,
        campaign=campaign,
        collective_name=collective_name,
        content=content,
        body_html=render_markdown((content or {}).get("body_markdown", "")),
        greeting=salutation(
            (content or {}).get("audience_style", "minister"),
            (content or {}).get("addressee_name", ""),
            (content or {}).get("addressee_role", ""),
        ),
        recipient=department,
        is_meeting=is_meeting,
        meeting=meeting,
        meeting_label=services.meeting_label(meeting.status if meeting else None),
        meeting_when=(
            meetings.uk_span(meeting.starts_at, meeting.ends_at)
            if meeting is not None and meeting.starts_at is not None
            else ""
        ),
        alternatives=alternatives_shown(meeting),
        slots=slots,
        errors={name: form_errors(form) for name, form in meeting_forms.items()},
        problem=problem,
        submitted=submitted,
        **meeting_forms,
        responses=responses,
        attachments=attachments,
        status_label=services.status_label(
            acknowledged_at=delivery.acknowledged_at,
            replied_at=delivery.replied_at,
            meeting_agreed=meeting is not None and meeting.status in services.MEETING_AGREED,
        ),
        clock=services.clock_label(
            delivered_on=delivery.delivered_on or today,
            reply_target_days=delivery.reply_target_days,
            nation=delivery.nation,
            replied_at=delivery.replied_at,
            today=today,
        ),
        ack_form=AcknowledgeForm(formdata=None),
        reply_form=reply_form,
        max_mb=MAX_ATTACHMENT_BYTES // (1024 * 1024),
    )
    return html, status


def _is_meeting(campaign: Campaign, content: dict[str, Any] | None) -> bool:
    meeting_request = CampaignKind.MEETING_REQUEST.value
    return (content or {}).get("kind") == meeting_request or campaign.kind == meeting_request


def _meeting_forms(
    account: DepartmentAccount,
    accept_form: AcceptForm | None,
    alternatives_form: AlternativesForm | None,
    decline_form: DeclineForm | None,
) -> dict[str, Any]:
    """The three meeting forms: the ones posted, or empty ones with the official's name
    and work address filled in."""
    forms: dict[str, Any] = {
        "accept_form": accept_form,
        "alternatives_form": alternatives_form,
        "decline_form": decline_form,
    }
    for name, cls in (
        ("accept_form", AcceptForm),
        ("alternatives_form", AlternativesForm),
        ("decline_form", DeclineForm),
    ):
        if forms[name] is None:
            form = cls(formdata=None)
            form.name.data = current_user.display_name
            form.email.data = account.email
            forms[name] = form
    return forms


def _collective_name(delivery: Delivery) -> str:
    collective = db_session().get(Collective, delivery.collective_id)
    return collective.name if collective is not None else ""


@bp.get(LETTER)
def letter(key: str, delivery_id: int) -> tuple[str, int]:
    department, account, delivery = _letter_or_404(key, delivery_id)
    return _letter_page(department, account, delivery)


@bp.get(f"{LETTER}/letter.pdf")
def letter_pdf(key: str, delivery_id: int) -> Response:
    _department, _account, delivery = _letter_or_404(key, delivery_id)
    s = db_session()
    document = s.get(Document, delivery.document_id) if delivery.document_id else None
    if document is None:
        abort(404)
    response = Response(document_bytes(s, document), mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="letter-{delivery.id}.pdf"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get(f"{LETTER}/attachments/<id:attachment_id>")
def attachment(key: str, delivery_id: int, attachment_id: int) -> Response:
    _department, _account, delivery = _letter_or_404(key, delivery_id)
    s = db_session()
    row = s.scalar(
        select(ResponseAttachment)
        .join(ResponseRow, ResponseRow.id == ResponseAttachment.response_id)
        .where(ResponseAttachment.id == attachment_id, ResponseRow.delivery_id == delivery.id)
    )
    if row is None:
        abort(404)
    data = s.scalar(select(ResponseAttachment.data).where(ResponseAttachment.id == row.id))
    response = Response(bytes(data or b""), mimetype=row.content_type)
    response.headers["Content-Disposition"] = content_disposition(row.filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post(f"{LETTER}/acknowledge")
@limiter.limit(RESPOND_LIMIT, key_func=_user_key)
def acknowledge(key: str, delivery_id: int) -> Response | tuple[str, int]:
    department, account, delivery = _letter_or_404(key, delivery_id)
    form = AcknowledgeForm()
    if not form.validate_on_submit():
        abort(400)
    here = url_for("department.letter", key=department.key, delivery_id=delivery.id)
    if delivery.acknowledged_at is not None:
        flash("This letter was already acknowledged; nothing more was sent.", "info")
        return redirect(here)
    try:
        record_response(
            db_session(),
            delivery,
            kind=ResponseKind.ACKNOWLEDGEMENT,
            channel=ResponseChannel.INBOX,
            responder_name=current_user.display_name,
            responder_email=account.email,
            classified_by="responder",
            department_account_id=account.id,
        )
    except ResponseError as exc:
        return refused(str(exc), 409)
    notify_organisers(
        db_session(),
        settings_of(current_app),
        delivery,
        what="receipt acknowledged",
        responder=_who(current_user.display_name, "", account.email),
        channel=ResponseChannel.INBOX,
    )
    flash("Thank you: the letter is marked as acknowledged. Its senders can see this.", "success")
    return redirect(here)


@bp.post(f"{LETTER}/reply")
@limiter.limit(RESPOND_LIMIT, key_func=_user_key)
def reply(key: str, delivery_id: int) -> Response | tuple[str, int]:
    department, account, delivery = _letter_or_404(key, delivery_id)
    form = ReplyForm()
    if not form.validate_on_submit():
        return _letter_page(department, account, delivery, reply_form=form, status=422)
    upload = request.files.get("attachment")
    data: bytes | None = None
    filename = ""
    if upload is not None and upload.filename:
        data = upload.read()
        filename = upload.filename
        try:
            check_attachment(data, filename)
        except AttachmentRejected as exc:
            form.attachment.errors = [str(exc)]
            return _letter_page(department, account, delivery, reply_form=form, status=422)
    s = db_session()
    kind = ResponseKind.HOLDING if form.kind.data == "holding" else ResponseKind.SUBSTANTIVE
    try:
        response = record_response(
            s,
            delivery,
            kind=kind,
            channel=ResponseChannel.INBOX,
            body_text=form.body.data or "",
            subject=f"Re: {_subject(delivery)}",
            responder_name=form.responder_name.data or "",
            responder_role=form.responder_role.data or "",
            responder_email=account.email,
            classified_by="responder",
            department_account_id=account.id,
        )
        if data is not None:
            store_attachment(s, response, data, filename)
    except (ResponseError, AttachmentRejected) as exc:
        # Nothing is half-written: a status of 400 or more rolls the request back.
        form.body.errors = [*form.body.errors, str(exc)]
        return _letter_page(department, account, delivery, reply_form=form, status=422)
    notify_organisers(
        s,
        settings_of(current_app),
        delivery,
        what="a full reply" if kind is ResponseKind.SUBSTANTIVE else "a holding reply",
        responder=_who(
            form.responder_name.data or "", form.responder_role.data or "", account.email
        ),
        channel=ResponseChannel.INBOX,
        body_excerpt=form.body.data or "",
    )
    flash("Thank you: your reply is recorded and its senders can read it.", "success")
    return redirect(url_for("department.letter", key=department.key, delivery_id=delivery.id))


# --- meeting requests ------------------------------------------------------------------------


def _meeting_letter_or_404(
    key: str, delivery_id: int
) -> tuple[Recipient, DepartmentAccount, Delivery, dict[str, Any]]:
    """As `_letter_or_404`, for a meeting request only (any other letter: 404)."""
    department, account, delivery = _letter_or_404(key, delivery_id)
    campaign = db_session().get(Campaign, delivery.campaign_id)
    if campaign is None:
        abort(404)
    content = _letter_content(delivery, campaign) or {}
    if not _is_meeting(campaign, content):
        abort(404)
    return department, account, delivery, content


def _meeting_done(department: Recipient, delivery: Delivery, message: str) -> Response:
    flash(message, "success")
    return redirect(
        url_for("department.letter", key=department.key, delivery_id=delivery.id) + "#meeting"
    )


def _who(name: str, role: str, email: str) -> str:
    who = ", ".join(part for part in (name, role) if part)
    return f"{who} <{email}>" if who and email else who or email or "the department"


MEETING_TIMED = (MeetingStatus.ACCEPTED.value, MeetingStatus.HELD.value)


@bp.get(f"{LETTER}/meeting.ics")
def meeting_ics(key: str, delivery_id: int) -> Response:
    _department, _account, delivery, _content = _meeting_letter_or_404(key, delivery_id)
    s = db_session()
    meeting = meetings.meeting_for(s, delivery)
    if meeting is None or meeting.starts_at is None or meeting.status not in MEETING_TIMED:
        abort(404)
    data = meetings.calendar_file(s, settings_of(current_app), delivery, meeting)
    response = Response(data, mimetype="text/calendar")
    response.headers["Content-Disposition"] = 'attachment; filename="meeting.ics"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post(f"{LETTER}/meeting/accept")
@limiter.limit(RESPOND_LIMIT, key_func=_user_key)
def meeting_accept(key: str, delivery_id: int) -> Response | tuple[str, int]:
    department, account, delivery, content = _meeting_letter_or_404(key, delivery_id)
    slots = {slot.index: slot for slot in meetings.proposed_slots(content)}
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

    def again(problem: str = "") -> tuple[str, int]:
        return _letter_page(
            department,
            account,
            delivery,
            accept_form=form,
            problem=problem,
            submitted="accept",
            status=422,
        )

    if not valid or slot is None or span is None:
        return again()
    delivery = lock_for_answer(delivery)
    try:
        meetings.accept_slot(
            db_session(),
            settings_of(current_app),
            delivery,
            slot=slot,
            starts_at=span[0],
            ends_at=span[1],
            official_name=form.name.data or "",
            official_email=form.email.data or "",
            official_role=form.role.data or "",
            location=location,
            channel=ResponseChannel.INBOX,
            department_account_id=account.id,
        )
    except (meetings.MeetingError, ResponseError) as exc:
        return again(str(exc))  # a status of 400 or more rolls the request back
    return _meeting_done(
        department,
        delivery,
        f"Thank you: the meeting is agreed for {meetings.uk_span(*span)}. A calendar "
        f"invitation is on its way to {form.email.data} and to the organisers.",
    )


@bp.post(f"{LETTER}/meeting/alternatives")
@limiter.limit(RESPOND_LIMIT, key_func=_user_key)
def meeting_alternatives(key: str, delivery_id: int) -> Response | tuple[str, int]:
    department, account, delivery, _content = _meeting_letter_or_404(key, delivery_id)
    form = AlternativesForm()
    times, valid = alternative_times(form)

    def again(problem: str = "") -> tuple[str, int]:
        return _letter_page(
            department,
            account,
            delivery,
            alternatives_form=form,
            problem=problem,
            submitted="alternatives",
            status=422,
        )

    if not valid:
        return again()
    delivery = lock_for_answer(delivery)
    s = db_session()
    settings = settings_of(current_app)
    name, role, email = form.name.data or "", form.role.data or "", form.email.data or ""
    try:
        meetings.propose_alternatives(
            s,
            settings,
            delivery,
            times=times,
            note=form.note.data or "",
            official_name=name,
            official_email=email,
            official_role=role,
            channel=ResponseChannel.INBOX,
            department_account_id=account.id,
        )
    except (meetings.MeetingError, ResponseError) as exc:
        return again(str(exc))
    listed = "; ".join(meetings.uk_span(a, b) for a, b in times)
    notify_organisers(
        s,
        settings,
        delivery,
        what="other meeting times proposed",
        responder=_who(name, role, email),
        channel=ResponseChannel.INBOX,
        body_excerpt=f"{listed}\n\n{form.note.data or ''}".strip(),
    )
    return _meeting_done(
        department,
        delivery,
        "Thank you: the organisers have your times and will answer about them.",
    )


@bp.post(f"{LETTER}/meeting/decline")
@limiter.limit(RESPOND_LIMIT, key_func=_user_key)
def meeting_decline(key: str, delivery_id: int) -> Response | tuple[str, int]:
    department, account, delivery, _content = _meeting_letter_or_404(key, delivery_id)
    form = DeclineForm()

    def again(problem: str = "") -> tuple[str, int]:
        return _letter_page(
            department,
            account,
            delivery,
            decline_form=form,
            problem=problem,
            submitted="decline",
            status=422,
        )

    if not form.validate():
        return again()
    delivery = lock_for_answer(delivery)
    s = db_session()
    settings = settings_of(current_app)
    name, role, email = form.name.data or "", form.role.data or "", form.email.data or ""
    try:
        meetings.decline_meeting(
            s,
            settings,
            delivery,
            reason=form.reason.data or "",
            official_name=name,
            official_email=email,
            official_role=role,
            channel=ResponseChannel.INBOX,
            department_account_id=account.id,
        )
    except (meetings.MeetingError, ResponseError) as exc:
        return again(str(exc))
    notify_organisers(
        s,
        settings,
        delivery,
        what="meeting declined",
        responder=_who(name, role, email),
        channel=ResponseChannel.INBOX,
        body_excerpt=form.reason.data or "",
    )
    return _meeting_done(department, delivery, "Your answer has been sent to the organisers.")


def _subject(delivery: Delivery) -> str:
    campaign = db_session().get(Campaign, delivery.campaign_id)
    return campaign.title if campaign is not None else "your letter"


# --- public accountability ------------------------------------------------------------------


@public_bp.get("/departments")
def departments() -> str:
    rows = services.departments_with_letters(db_session())
    return render_template("accountability/index.html", rows=rows)


@public_bp.get(f"/departments/{KEY}")
def department_page(key: str) -> str:
    s = db_session()
    department = services.department_by_key(s, key)
    if department is None:
        abort(404)
    record = services.department_record(s, department)
    return render_template(
        "accountability/department.html",
        department=department,
        record=record,
        min_sample=services.MIN_SAMPLE,
    )
