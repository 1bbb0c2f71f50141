"""Billing operations that are not Stripe's: free Supporter requests and the operator's
decisions on them, federations, and a collective's branding (logo and colours).

Services flush and never commit. Owners act through their `Membership` (PermissionError
otherwise); the platform operator through a `User` with `is_platform_admin`. Operator
operations span collectives, so they run inside `system_scope` and read with
`all_collectives=True`; every one of them writes a `PlanDecision` row (who, when, what,
note), and nothing here ever deletes a billing account or a collective's data.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from web.accounts.models import User
from web.billing.models import (
    BillingAccount,
    CollectiveBranding,
    Plan,
    PlanDecision,
    RequestStatus,
    SupporterRequest,
    account_for,
    effective_plan,
    has_supporter_features,
)
from web.billing.plans import Feature, plan_of, require_feature
from web.collectives.models import Collective, Membership, Role
from web.collectives.services import require_role
from web.db import utcnow
from web.settings import Settings
from web.tenancy import current_collective_id, system_scope

MAX_REASON = 1000
MAX_NOTE = 2000
MAX_ACCOUNT_NAME = 120
MAX_LOGO_BYTES = 1024 * 1024
MAX_LOGO_SIDE = 4096
MIN_LOGO_SIDE = 16
DEFAULT_GRANT_MONTHS = 12
MAX_GRANT_MONTHS = 36
# WCAG 2.2 AA, 1.4.3: normal text needs a contrast ratio of at least 4.5:1.
MIN_CONTRAST = 4.5
WHITE = "#ffffff"

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


class BillingError(ValueError):
    """A rule was broken; the message is safe to show. `field` names the form field."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class NotFoundError(LookupError):
    pass


class Action:
    """What a `PlanDecision` records."""

    REQUESTED = "requested"
    APPROVED = "approved"
    DECLINED = "declined"
    FEDERATION_CREATED = "federation_created"
    LINKED = "linked_to_federation"
    UNLINKED = "unlinked_from_federation"
    GRANTED = "complimentary_granted"
    GRANT_ENDED = "complimentary_ended"


ACTION_LABELS = {
    Action.REQUESTED: "Asked for Supporter free",
    Action.APPROVED: "Approved free Supporter",
    Action.DECLINED: "Declined free Supporter",
    Action.FEDERATION_CREATED: "Created a federation",
    Action.LINKED: "Linked a collective to a federation",
    Action.UNLINKED: "Unlinked a collective from a federation",
    Action.GRANTED: "Granted a plan free",
    Action.GRANT_ENDED: "Ended a free grant",
}


# --- text checks ---------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean_text(
    value: str, *, limit: int, what: str, field: str, required: bool, one_line: bool = False
) -> str:
    """Trimmed free text, otherwise stored as sent (and shown escaped, with dir="auto").
    Control characters other than tabs and line breaks are refused; a one-line text
    (a name) also refuses line breaks and text-direction overrides, which could make it
    display as something else."""
    text = (value or "").strip()
    if required and not text:
        raise BillingError(f"Enter {what}.", field)
    if len(text) > limit:
        raise BillingError(
            f"{what[0].upper()}{what[1:]} must be {limit:,} characters or fewer "
            f"(it has {len(text):,}).",
            field,
        )
    if _CONTROL.search(text) or (one_line and ("\n" in text or "\r" in text)):
        raise BillingError(
            f"Remove the line breaks and invisible control characters from {what}.", field
        )
    if one_line and any(ch in _BIDI for ch in text):
        raise BillingError(f"Remove the invisible text-direction characters from {what}.", field)
    return text


# --- the decision log ----------------------------------------------------------------


def _log(
    session: Session,
    actor: User,
    action: str,
    *,
    account_id: int | None = None,
    collective_id: int | None = None,
    request_id: int | None = None,
    note: str = "",
) -> PlanDecision:
    decision = PlanDecision(
        actor_id=actor.id,
        actor_email=actor.email,
        action=action,
        billing_account_id=account_id,
        collective_id=collective_id,
        supporter_request_id=request_id,
        note=note,
    )
    session.add(decision)
    session.flush()
    return decision


@dataclass(frozen=True)
class DecisionRow:
    decision: PlanDecision
    collective_name: str
    account_name: str

    @property
    def label(self) -> str:
        return ACTION_LABELS.get(self.decision.action, self.decision.action)


def list_decisions(session: Session, operator: User, limit: int = 200) -> list[DecisionRow]:
    """The operator's log, newest first."""
    _require_operator(operator)
    rows = session.execute(
        select(PlanDecision, Collective.name, BillingAccount.name)
        .outerjoin(Collective, Collective.id == PlanDecision.collective_id)
        .outerjoin(BillingAccount, BillingAccount.id == PlanDecision.billing_account_id)
        .order_by(PlanDecision.id.desc())
        .limit(limit)
    ).all()
    return [DecisionRow(d, c or "", a or "") for d, c, a in rows]


def _require_operator(actor: User) -> None:
    if not getattr(actor, "is_platform_admin", False):
        raise PermissionError("Only the platform operator can do that.")


# --- free Supporter requests: the owner's side ----------------------------------------


def latest_request(session: Session, collective_id: int) -> SupporterRequest | None:
    """The collective's most recent request (in the current collective's context)."""
    return session.scalar(
        select(SupporterRequest)
        .where(SupporterRequest.collective_id == collective_id)
        .order_by(SupporterRequest.id.desc())
        .limit(1)
    )


def request_free_supporter(
    session: Session, actor: Membership, collective: Collective, reason: str
) -> SupporterRequest:
    """An owner of a Free collective asks for Supporter free of charge. One open request
    at a time; the reason is required (at most 1,000 characters). Flushes."""
    require_role(actor, Role.OWNER)
    text = clean_text(
        reason, limit=MAX_REASON, what="a short reason", field="reason", required=True
    )
    if has_supporter_features(plan_of(session, collective.id)):
        raise BillingError("Your collective already has the Supporter features.", "reason")
    pending = session.scalar(
        select(SupporterRequest.id).where(
            SupporterRequest.collective_id == collective.id,
            SupporterRequest.status == RequestStatus.PENDING.value,
        )
    )
    if pending is not None:
        raise BillingError(
            "Your collective has already asked; the platform operator will answer that "
            "request first.",
            "reason",
        )
    request = SupporterRequest(
        collective_id=collective.id,
        requested_by_id=actor.user_id,
        reason=text,
        status=RequestStatus.PENDING.value,
    )
    session.add(request)
    session.flush()
    user = session.get(User, actor.user_id)
    if user is not None:
        _log(
            session,
            user,
            Action.REQUESTED,
            collective_id=collective.id,
            request_id=request.id,
            note=text,
        )
    return request


# --- free Supporter requests: the operator's side -------------------------------------


@dataclass(frozen=True)
class RequestRow:
    request: SupporterRequest
    collective_name: str
    collective_slug: str
    requested_by: str


def list_requests(
    session: Session, operator: User, *, pending_only: bool = True, limit: int = 200
) -> list[RequestRow]:
    """Requests across every collective, oldest pending first (or newest of all)."""
    _require_operator(operator)
    query = (
        select(SupporterRequest, Collective.name, Collective.slug, User.email)
        .join(Collective, Collective.id == SupporterRequest.collective_id)
        .outerjoin(User, User.id == SupporterRequest.requested_by_id)
    )
    if pending_only:
        query = query.where(SupporterRequest.status == RequestStatus.PENDING.value).order_by(
            SupporterRequest.id
        )
    else:
        query = query.order_by(SupporterRequest.id.desc())
    with system_scope(session):
        rows = session.execute(
            query.limit(limit), execution_options={"all_collectives": True}
        ).all()
    return [RequestRow(r, name, slug, email or "") for r, name, slug, email in rows]


def get_request(session: Session, operator: User, request_id: int) -> RequestRow:
    _require_operator(operator)
    with system_scope(session):
        row = session.execute(
            select(SupporterRequest, Collective.name, Collective.slug, User.email)
            .join(Collective, Collective.id == SupporterRequest.collective_id)
            .outerjoin(User, User.id == SupporterRequest.requested_by_id)
            .where(SupporterRequest.id == request_id),
            execution_options={"all_collectives": True},
        ).first()
    if row is None:
        raise NotFoundError()
    request, name, slug, email = row
    return RequestRow(request, name, slug, email or "")


def _owner_emails(session: Session, collective_id: int) -> list[str]:
    with system_scope(session):
        return list(
            session.scalars(
                select(User.email)
                .join(Membership, Membership.user_id == User.id)
                .where(
                    Membership.collective_id == collective_id,
                    Membership.role == Role.OWNER,
                )
                .order_by(User.id),
                execution_options={"all_collectives": True},
            )
        )


def decide_request(
    session: Session,
    settings: Settings,
    operator: User,
    request_id: int,
    *,
    approve: bool,
    note: str,
    months: int = DEFAULT_GRANT_MONTHS,
    now: datetime | None = None,
) -> SupporterRequest:
    """Approve (Supporter free for `months`, from today or from the end of a grant
    already running) or decline (a note is required, so the owners know why) a pending
    request. Logs the decision and emails the collective's owners (after commit).
    Needs an app context (the email is rendered now). Flushes."""
    _require_operator(operator)
    now = now or utcnow()
    text = clean_text(note, limit=MAX_NOTE, what="a note", field="note", required=not approve)
    if approve and not 1 <= months <= MAX_GRANT_MONTHS:
        raise BillingError(f"Choose between 1 and {MAX_GRANT_MONTHS} months.", "months")
    with system_scope(session):
        request = session.scalar(
            select(SupporterRequest).where(SupporterRequest.id == request_id).with_for_update(),
            execution_options={"all_collectives": True},
        )
        if request is None:
            raise NotFoundError()
        if request.status != RequestStatus.PENDING.value:
            raise BillingError(
                f"This request was already {request.status}; it cannot be decided again."
            )
        collective = session.get(Collective, request.collective_id)
        assert collective is not None  # the foreign key cascades
        request.decided_by_id = operator.id
        request.decided_at = now
        request.decision_note = text
        account: BillingAccount | None = None
        if approve:
            account = _own_account(session, collective)
            until = _extend(account.complimentary_until, now, months)
            account.complimentary_until = until
            request.complimentary_until = until
            request.status = RequestStatus.APPROVED.value
        else:
            request.status = RequestStatus.DECLINED.value
        session.flush()
        _log(
            session,
            operator,
            Action.APPROVED if approve else Action.DECLINED,
            account_id=account.id if account else None,
            collective_id=collective.id,
            request_id=request.id,
            note=text if text or not approve else f"{months} months",
        )
        owners = _owner_emails(session, collective.id)
    from web.emails import send_templated_email

    link = f"{settings.base_url}/app/{collective.slug}/plan"
    for email in owners:
        send_templated_email(
            session,
            settings,
            to=email,
            template="supporter_decision",
            subject=(
                f"{collective.name}: Supporter plan granted free"
                if approve
                else f"{collective.name}: your request for Supporter free"
            ),
            context={
                "collective": collective,
                "approved": approve,
                "note": text,
                "until": request.complimentary_until,
                "link": link,
            },
            collective_id=collective.id,
        )
    return request


def _extend(current: datetime | None, now: datetime, months: int) -> datetime:
    start = current if current is not None and current > now else now
    return start + timedelta(days=round(months * 365.25 / 12))


def _own_account(session: Session, collective: Collective) -> BillingAccount:
    """The collective's OWN account (not its federation's), created if need be."""
    own = session.scalar(
        select(BillingAccount).where(BillingAccount.owner_collective_id == collective.id)
    )
    if own is not None:
        return own
    if collective.billing_account_id is None:
        return account_for(session, collective.id)
    own = BillingAccount(name=collective.name, owner_collective_id=collective.id)
    session.add(own)
    session.flush()
    return own


# --- federations (operator) ----------------------------------------------------------


@dataclass(frozen=True)
class FederationRow:
    account: BillingAccount
    plan: Plan
    members: list[Collective]


def create_federation(
    session: Session, operator: User, name: str, *, months: int = 0, now: datetime | None = None
) -> BillingAccount:
    """A billing account several collectives can share. `months` > 0 grants the
    Federation plan free for that long (else it waits for a subscription)."""
    _require_operator(operator)
    now = now or utcnow()
    text = clean_text(
        name,
        limit=MAX_ACCOUNT_NAME,
        what="the federation's name",
        field="name",
        required=True,
        one_line=True,
    )
    if not 0 <= months <= MAX_GRANT_MONTHS:
        raise BillingError(f"Choose between 0 and {MAX_GRANT_MONTHS} months.", "months")
    account = BillingAccount(name=text, plan=Plan.FEDERATION.value, is_federation=True)
    if months:
        account.complimentary_until = _extend(None, now, months)
    session.add(account)
    session.flush()
    _log(
        session,
        operator,
        Action.FEDERATION_CREATED,
        account_id=account.id,
        note=f"{text}; free for {months} months" if months else text,
    )
    return account


def list_federations(session: Session, operator: User) -> list[FederationRow]:
    _require_operator(operator)
    now = utcnow()
    accounts = list(
        session.scalars(
            select(BillingAccount)
            .where(BillingAccount.is_federation)
            .order_by(BillingAccount.name, BillingAccount.id)
        )
    )
    members: dict[int, list[Collective]] = {a.id: [] for a in accounts}
    if accounts:
        for collective in session.scalars(
            select(Collective)
            .where(Collective.billing_account_id.in_(members.keys()))
            .order_by(Collective.name)
        ):
            assert collective.billing_account_id is not None
            members[collective.billing_account_id].append(collective)
    return [FederationRow(a, effective_plan(a, now), members[a.id]) for a in accounts]


def get_federation(session: Session, operator: User, account_id: int) -> FederationRow:
    _require_operator(operator)
    account = session.get(BillingAccount, account_id)
    if account is None or not account.is_federation:
        raise NotFoundError()
    members = list(
        session.scalars(
            select(Collective)
            .where(Collective.billing_account_id == account.id)
            .order_by(Collective.name)
        )
    )
    return FederationRow(account, effective_plan(account, utcnow()), members)


def link_collective(
    session: Session, operator: User, account_id: int, collective_slug: str, note: str = ""
) -> Collective:
    """Put a collective (found by its web address) under a federation's account. Its own
    account is kept, unused, for when it leaves."""
    federation = get_federation(session, operator, account_id).account
    text = clean_text(note, limit=MAX_NOTE, what="a note", field="note", required=False)
    slug = (collective_slug or "").strip().lower()
    collective = (
        session.scalar(select(Collective).where(Collective.slug == slug))
        if len(slug) <= 63
        else None
    )
    if collective is None:
        raise BillingError(
            "No collective has that web address. Enter the part after /app/, such as "
            "“tenants-union”.",
            "collective_slug",
        )
    if collective.billing_account_id == federation.id:
        raise BillingError(f"{collective.name} is already in this federation.", "collective_slug")
    current = (
        session.get(BillingAccount, collective.billing_account_id)
        if collective.billing_account_id is not None
        else None
    )
    if current is not None and current.is_federation:
        raise BillingError(
            f"{collective.name} is in another federation ({current.name}). Unlink it there first.",
            "collective_slug",
        )
    _own_account(session, collective)  # kept for when it leaves
    collective.billing_account_id = federation.id
    session.flush()
    _log(
        session,
        operator,
        Action.LINKED,
        account_id=federation.id,
        collective_id=collective.id,
        note=text,
    )
    return collective


def unlink_collective(
    session: Session, operator: User, account_id: int, collective_id: int, note: str = ""
) -> Collective:
    """Take a collective out of a federation: it goes back to its own account (and its
    own plan). Nothing else changes; campaigns already collecting keep collecting."""
    federation = get_federation(session, operator, account_id).account
    text = clean_text(note, limit=MAX_NOTE, what="a note", field="note", required=False)
    collective = session.get(Collective, collective_id)
    if collective is None or collective.billing_account_id != federation.id:
        raise NotFoundError()
    own = _own_account(session, collective)
    collective.billing_account_id = own.id
    session.flush()
    _log(
        session,
        operator,
        Action.UNLINKED,
        account_id=federation.id,
        collective_id=collective.id,
        note=text,
    )
    return collective


def grant_federation(
    session: Session,
    operator: User,
    account_id: int,
    *,
    months: int,
    note: str = "",
    now: datetime | None = None,
) -> BillingAccount:
    """Grant a federation its plan free for `months` more (0 ends a grant now)."""
    federation = get_federation(session, operator, account_id).account
    now = now or utcnow()
    text = clean_text(note, limit=MAX_NOTE, what="a note", field="note", required=False)
    if not 0 <= months <= MAX_GRANT_MONTHS:
        raise BillingError(f"Choose between 0 and {MAX_GRANT_MONTHS} months.", "months")
    if months:
        federation.complimentary_until = _extend(federation.complimentary_until, now, months)
    else:
        federation.complimentary_until = None
    session.flush()
    _log(
        session,
        operator,
        Action.GRANTED if months else Action.GRANT_ENDED,
        account_id=federation.id,
        note=f"{months} months. {text}".strip() if months else text,
    )
    return federation


# --- branding ------------------------------------------------------------------------


def get_branding(session: Session, collective_id: int) -> CollectiveBranding | None:
    """The collective's branding row (the collective must be the current one)."""
    if current_collective_id(session) != collective_id:
        return None
    return session.scalar(
        select(CollectiveBranding).where(CollectiveBranding.collective_id == collective_id)
    )


def _branding_for_update(session: Session, collective_id: int) -> CollectiveBranding:
    branding = get_branding(session, collective_id)
    if branding is None:
        branding = CollectiveBranding(collective_id=collective_id)
        session.add(branding)
    return branding


_HEX = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")


def normalise_colour(value: str, what: str, field: str) -> str:
    """`#rrggbb` in lower case from `#rgb`, `#rrggbb` (with or without the #), or ""."""
    text = (value or "").strip()
    if not text:
        return ""
    match = _HEX.fullmatch(text)
    if match is None:
        raise BillingError(
            f"Enter the {what} as a hex colour code, like #1d4f91.",
            field,
        )
    digits = match.group(1).lower()
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    return f"#{digits}"


def _luminance(colour: str) -> float:
    channels = []
    for i in (1, 3, 5):
        c = int(colour[i : i + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
    r, g, b = channels
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(first: str, second: str) -> float:
    """WCAG 2.x contrast ratio of two `#rrggbb` colours (1 to 21)."""
    a, b = _luminance(first), _luminance(second)
    light, dark = max(a, b), min(a, b)
    return (light + 0.05) / (dark + 0.05)


def save_colours(
    session: Session, actor: Membership, collective_id: int, *, primary: str, accent: str
) -> CollectiveBranding:
    """Set (or clear, with "") the two colours. The primary colour is the background of
    the header band and buttons, under white text; the accent colour is for links and
    headings on white. Each must reach WCAG AA contrast (4.5:1) with white."""
    require_role(actor, Role.OWNER)
    require_feature(session, collective_id, Feature.BRANDING)
    colours = {
        "primary_colour": normalise_colour(primary, "main colour", "primary_colour"),
        "accent_colour": normalise_colour(accent, "accent colour", "accent_colour"),
    }
    uses = {
        "primary_colour": ("White text on the main colour", "main colour"),
        "accent_colour": ("Links in the accent colour on white", "accent colour"),
    }
    for field, colour in colours.items():
        if not colour:
            continue
        ratio = contrast_ratio(colour, WHITE)
        if ratio < MIN_CONTRAST:
            use, what = uses[field]
            raise BillingError(
                f"{use} would have a contrast of only {ratio:.1f}:1 ({colour}). "
                f"People with low vision need at least {MIN_CONTRAST}:1 to read it (WCAG AA). "
                f"Choose a darker {what}.",
                field,
            )
    branding = _branding_for_update(session, collective_id)
    branding.primary_colour = colours["primary_colour"]
    branding.accent_colour = colours["accent_colour"]
    session.flush()
    return branding


@dataclass(frozen=True)
class CleanImage:
    data: bytes
    content_type: str
    width: int
    height: int


def clean_logo(data: bytes) -> CleanImage:
    """Check an uploaded logo by its content and re-encode it.

    Only PNG and JPEG, recognised by their first bytes (the file name and the browser's
    declared type are ignored), at most 1 MB, decoded in full by Pillow, with sane
    dimensions. The image is then re-encoded from its pixels, so whatever else the file
    carried (metadata, a second format appended to make a polyglot, trailing scripts)
    is dropped, and only what we wrote ever leaves Chorus."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise BillingError("The file is empty. Choose a PNG or JPEG image.", "logo")
    if len(data) > MAX_LOGO_BYTES:
        raise BillingError(
            f"The logo must be 1 MB or smaller (this file is {len(data) / 1024 / 1024:.1f} MB). "
            "Save it smaller or as a JPEG, and try again.",
            "logo",
        )
    if data.startswith(PNG_MAGIC):
        expected = "PNG"
    elif data.startswith(JPEG_MAGIC):
        expected = "JPEG"
    else:
        raise BillingError(
            "The logo must be a PNG or JPEG image. This file is not one, whatever its name "
            "says. (SVG and other formats are not accepted: they can carry scripts.)",
            "logo",
        )
    unreadable = BillingError(
        f"This file starts like a {expected} image but could not be read as one. "
        "Open it in an image editor, save it again as PNG or JPEG, and upload that.",
        "logo",
    )
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format != expected:
                raise unreadable
            width, height = probe.size
            if not (MIN_LOGO_SIDE <= width <= MAX_LOGO_SIDE) or not (
                MIN_LOGO_SIDE <= height <= MAX_LOGO_SIDE
            ):
                raise BillingError(
                    f"The logo must be between {MIN_LOGO_SIDE} and {MAX_LOGO_SIDE} pixels on "
                    f"each side (this one is {width} × {height}).",
                    "logo",
                )
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            out = io.BytesIO()
            if expected == "PNG":
                mode = image.mode if image.mode in ("1", "L", "LA", "P", "RGB", "RGBA") else "RGBA"
                image.convert(mode).save(out, format="PNG", optimize=True)
                content_type = "image/png"
            else:
                mode = image.mode if image.mode in ("L", "RGB") else "RGB"
                image.convert(mode).save(out, format="JPEG", quality=90)
                content_type = "image/jpeg"
    except BillingError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise unreadable from None
    cleaned = out.getvalue()
    if len(cleaned) > 2 * MAX_LOGO_BYTES:
        raise BillingError("The logo is too detailed to store. Please use a smaller image.", "logo")
    return CleanImage(cleaned, content_type, width, height)


def save_logo(
    session: Session, actor: Membership, collective_id: int, data: bytes
) -> CollectiveBranding:
    """Check, clean and store the collective's logo (owners, Supporter features)."""
    require_role(actor, Role.OWNER)
    require_feature(session, collective_id, Feature.BRANDING)
    image = clean_logo(data)
    branding = _branding_for_update(session, collective_id)
    branding.logo = image.data
    branding.logo_type = image.content_type
    branding.logo_sha256 = hashlib.sha256(image.data).hexdigest()
    branding.logo_width = image.width
    branding.logo_height = image.height
    session.flush()
    return branding


def remove_logo(session: Session, actor: Membership, collective_id: int) -> None:
    """Remove the logo (owners; allowed on any plan: taking something down is free)."""
    require_role(actor, Role.OWNER)
    branding = get_branding(session, collective_id)
    if branding is None or branding.logo is None:
        return
    branding.logo = None
    branding.logo_type = ""
    branding.logo_sha256 = ""
    branding.logo_width = None
    branding.logo_height = None
    session.flush()


def public_branding(session: Session, collective: Collective) -> CollectiveBranding | None:
    """The branding to show on the collective's public pages (the collective must be the
    session's current one, as on every public page): only while it has the Supporter
    features. A lapsed plan keeps the row but stops showing it."""
    if current_collective_id(session) != collective.id:
        return None
    if not has_supporter_features(plan_of(session, collective.id)):
        return None
    return get_branding(session, collective.id)


@dataclass(frozen=True)
class LetterBranding:
    """Plain values for the PDF letter (no ORM objects reach the renderer)."""

    logo: bytes | None
    logo_type: str
    primary_colour: str
    accent_colour: str


def letter_branding(session: Session, collective_id: int) -> LetterBranding | None:
    """The collective's logo and colours for its letters, while it has the Supporter
    features (the collective must be the current one); None otherwise. Read by
    `web.pdf.context.build_letter` into the LetterDoc's logo and colour fields."""
    if not has_supporter_features(plan_of(session, collective_id)):
        return None
    branding = get_branding(session, collective_id)
    if branding is None:
        return None
    return LetterBranding(
        logo=bytes(branding.logo) if branding.logo is not None else None,
        logo_type=branding.logo_type,
        primary_colour=branding.primary_colour,
        accent_colour=branding.accent_colour,
    )
