"""The department's inbox (issue #6 §9) and public accountability (§10).

An official claims a directory department with an email address on one of its official
domains (`claim_department`); Chorus emails a confirmation link to that address, and
following it while signed in as the same user verifies the claim
(`confirm_department_claim`). A verified `DepartmentAccount` opens the department's
inbox: every sent letter addressed to it, from every collective.

This is the only view in Chorus across collectives. It never runs the ORM with
`all_collectives`: the list comes from the fixed SQL function
`chorus_department_inbox` (migration 0020), which returns only the columns the inbox
shows, and opening one letter asks `chorus_department_letter` for the owning
collective's id (only when that letter is addressed to that department), then enters
that collective (`web.responses.services.enter`) and reads it like any tenant page.
Officials read; the only thing they write is a response, through the same
`record_response` every other channel uses.

The public department pages compute their figures from `chorus_department_record`:
the timing of every sent letter (and the campaign's title and collective only when the
campaign is published). Medians and the on-time share count only what Chorus recorded.

The confirmation link reuses `UserToken` (web/accounts/models.py): it already is a
single-use, expiring, hashed 256-bit secret bound to a user, which is exactly what a
claim needs. Its purpose, `department:<account id>`, binds it to one claim; a new claim
for the same department withdraws the links sent before. Services flush, never commit;
the email leaves through the outbox after commit.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from web import tokens
from web.accounts.models import User, UserToken
from web.db import utcnow
from web.delivery.models import Delivery
from web.delivery.workdays import deadline_status, uk_date, working_days_between
from web.emails import send_templated_email
from web.recipients.models import Recipient
from web.responses.models import DepartmentAccount, MeetingStatus
from web.responses.services import FoundDelivery, enter
from web.settings import Settings

CLAIM_TTL = timedelta(hours=48)
PURPOSE_PREFIX = "department:"
INBOX_PAGE_SIZE = 50
PUBLIC_LIST_LIMIT = 100
MIN_SAMPLE = 3  # fewer figures than this: "not enough data yet"

# Addresses anyone can open: they can never show that someone works for a department.
FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "hotmail.co.uk",
        "live.com",
        "live.co.uk",
        "msn.com",
        "yahoo.com",
        "yahoo.co.uk",
        "ymail.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "aol.co.uk",
        "protonmail.com",
        "proton.me",
        "pm.me",
        "gmx.com",
        "gmx.co.uk",
        "mail.com",
        "zoho.com",
        "yandex.com",
        "tutanota.com",
        "fastmail.com",
        "btinternet.com",
        "sky.com",
        "virginmedia.com",
        "talktalk.net",
        "ntlworld.com",
    }
)


class DepartmentError(ValueError):
    """A rule was broken; the message is safe to show to the person."""


class ClaimLinkProblem(LookupError):
    """A confirmation link cannot be used; the message says why. `status` is the HTTP
    status the page answers with."""

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.status = status


# --- the directory ----------------------------------------------------------------------


def claimable_departments(session: Session) -> list[Recipient]:
    """Directory departments with at least one official email domain, by name."""
    rows = session.scalars(
        select(Recipient)
        .where(Recipient.collective_id.is_(None), func.cardinality(Recipient.email_domains) > 0)
        .order_by(Recipient.name),
        execution_options={"all_collectives": True},  # shared directory rows only
    )
    return list(rows)


def department_by_key(session: Session, key: str) -> Recipient | None:
    """The directory department with this key (None for unknown keys and for any
    collective's own recipient)."""
    if not key or len(key) > 80:
        return None
    return session.scalar(
        select(Recipient).where(Recipient.collective_id.is_(None), Recipient.key == key),
        execution_options={"all_collectives": True},  # shared directory rows only
    )


def department_by_id(session: Session, recipient_id: int) -> Recipient | None:
    return session.scalar(
        select(Recipient).where(Recipient.collective_id.is_(None), Recipient.id == recipient_id),
        execution_options={"all_collectives": True},  # shared directory rows only
    )


def domain_of(email: str) -> str:
    return email.rsplit("@", 1)[-1].strip().lower().rstrip(".")


def is_official_address(email: str, domains: Sequence[str]) -> bool:
    """True when the address's domain is one of `domains` or a subdomain of one
    (case-insensitive). `evildwp.gov.uk` is not a subdomain of `dwp.gov.uk`."""
    host = domain_of(email)
    for raw in domains:
        domain = raw.strip().lower().rstrip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


def _normalised_address(raw: str) -> str:
    value = (raw or "").strip()
    if not value or len(value) > 254:
        raise DepartmentError("Enter your work email address, like name@dwp.gov.uk.")
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        raise DepartmentError(
            "Enter an email address in the correct format, like name@dwp.gov.uk."
        ) from None
    return str(checked.normalized).lower()


# --- claiming -------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimResult:
    account: DepartmentAccount
    department: Recipient
    token: str | None  # None when the account was already verified (nothing was sent)


def _domains_text(domains: Sequence[str]) -> str:
    shown = [f"@{d}" for d in domains]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def claim_department(
    session: Session, settings: Settings, user: User, *, recipient_id: int | None, email: str
) -> ClaimResult:
    """Start (or restart) a claim on a directory department: check that `email` is on
    one of its official domains, record the unverified account, withdraw earlier
    confirmation links for it and email a new one (valid 48 hours) to `email`.

    Refuses unverified users, unknown departments, departments with no official domain,
    free-mail addresses and any other domain, with a message for the person. Does
    nothing (and sends nothing) when the user already holds the department. Sends one
    email after commit; flushes."""
    if not user.is_verified:
        raise DepartmentError(
            "Confirm your own email address first: follow the link Chorus sent when you signed up."
        )
    department = department_by_id(session, recipient_id) if recipient_id else None
    if department is None:
        raise DepartmentError("Choose your department from the list.")
    domains = [d for d in department.email_domains if d.strip()]
    if not domains:
        raise DepartmentError(
            f"{department.name} has no official email domain in the Chorus directory yet, "
            "so it cannot be claimed. Please contact the Chorus team."
        )
    address = _normalised_address(email)
    host = domain_of(address)
    if host in FREE_MAIL_DOMAINS and not is_official_address(address, domains):
        raise DepartmentError(
            f"A personal address ({host}) cannot show that you work for "
            f"{department.name}. Use your work address ending in {_domains_text(domains)}."
        )
    if not is_official_address(address, domains):
        raise DepartmentError(
            f"{host} is not an official email domain of {department.name}. Use your work "
            f"address ending in {_domains_text(domains)}."
        )
    account = session.scalar(
        select(DepartmentAccount).where(
            DepartmentAccount.user_id == user.id,
            DepartmentAccount.recipient_id == department.id,
        )
    )
    if account is not None and account.verified_at is not None:
        return ClaimResult(account=account, department=department, token=None)
    if account is None:
        account = DepartmentAccount(user_id=user.id, recipient_id=department.id, email=address)
        session.add(account)
        session.flush()
    else:
        account.email = address
    purpose = f"{PURPOSE_PREFIX}{account.id}"
    now = utcnow()
    # Only the newest link for a claim works: the address may have changed.
    session.execute(
        update(UserToken)
        .where(
            UserToken.user_id == user.id,
            UserToken.purpose == purpose,
            UserToken.used_at.is_(None),
        )
        .values(used_at=now)
    )
    secret, digest = tokens.new_secret()
    row = UserToken(
        user_id=user.id, purpose=purpose, secret_hash=digest, expires_at=now + CLAIM_TTL
    )
    session.add(row)
    session.flush()
    token = tokens.compose(row.id, secret)
    send_templated_email(
        session,
        settings,
        to=address,
        template="department_claim",
        subject=f"Confirm your access to {department.name}'s letters on Chorus",
        context={
            "user": user,
            "department": department,
            "address": address,
            "link": f"{settings.base_url}/department/confirm/{token}",
            "hours": int(CLAIM_TTL.total_seconds() // 3600),
        },
    )
    return ClaimResult(account=account, department=department, token=token)


INVALID_LINK = (
    "This confirmation link is not valid. Check that you copied the whole link, or claim "
    "the department again to get a new one."
)


def _claim_token(session: Session, raw: str | None, *, lock: bool) -> UserToken:
    parsed = tokens.parse(raw)
    if parsed is None:
        raise ClaimLinkProblem(INVALID_LINK)
    row = session.get(UserToken, parsed[0], with_for_update=lock)
    if (
        row is None
        or not row.purpose.startswith(PURPOSE_PREFIX)
        or not tokens.matches(parsed[1], row.secret_hash)
    ):
        raise ClaimLinkProblem(INVALID_LINK)
    if row.used_at is not None:
        raise ClaimLinkProblem(
            "This confirmation link has already been used or replaced by a newer one. Use "
            "the newest email from Chorus, or claim the department again.",
            410,
        )
    if row.expires_at <= utcnow():
        raise ClaimLinkProblem(
            "This confirmation link has expired (links last 48 hours). Claim the "
            "department again to get a new one.",
            410,
        )
    return row


@dataclass(frozen=True)
class PendingClaim:
    account: DepartmentAccount
    department: Recipient


def check_claim_link(session: Session, user: User, raw: str | None) -> PendingClaim:
    """The claim a confirmation link names, for `user` (who must be the claimant).
    Raises ClaimLinkProblem. Changes nothing."""
    return _pending(session, user, _claim_token(session, raw, lock=False))


def _pending(session: Session, user: User, row: UserToken) -> PendingClaim:
    if row.user_id != user.id:
        raise ClaimLinkProblem(
            "This link confirms a claim made from another Chorus account. Log out, then "
            "log in as the person who claimed the department and open the link again.",
            403,
        )
    try:
        account_id = int(row.purpose[len(PURPOSE_PREFIX) :])
    except ValueError:
        raise ClaimLinkProblem(INVALID_LINK) from None
    account = session.get(DepartmentAccount, account_id)
    department = department_by_id(session, account.recipient_id) if account else None
    if account is None or account.user_id != user.id or department is None:
        raise ClaimLinkProblem(INVALID_LINK)
    return PendingClaim(account=account, department=department)


def confirm_department_claim(session: Session, user: User, raw: str | None) -> PendingClaim:
    """Verify the claim a confirmation link names (single use). Raises ClaimLinkProblem.
    Idempotent for an account already verified. Flushes."""
    row = _claim_token(session, raw, lock=True)
    pending = _pending(session, user, row)
    row.used_at = utcnow()
    if pending.account.verified_at is None:
        pending.account.verified_at = utcnow()
    session.flush()
    return pending


def accounts_of(session: Session, user: User) -> list[tuple[DepartmentAccount, Recipient]]:
    """The user's department accounts (verified or waiting), with their departments."""
    accounts = session.scalars(
        select(DepartmentAccount)
        .where(DepartmentAccount.user_id == user.id)
        .order_by(DepartmentAccount.id)
    ).all()
    result = []
    for account in accounts:
        department = department_by_id(session, account.recipient_id)
        if department is not None:
            result.append((account, department))
    return result


def verified_account(
    session: Session, user: User, department: Recipient
) -> DepartmentAccount | None:
    """The user's verified account for `department`, or None."""
    return session.scalar(
        select(DepartmentAccount).where(
            DepartmentAccount.user_id == user.id,
            DepartmentAccount.recipient_id == department.id,
            DepartmentAccount.verified_at.is_not(None),
        )
    )


# --- status words, shared by the inbox and the public pages -------------------------------


def status_label(
    *, acknowledged_at: datetime | None, replied_at: datetime | None, meeting_agreed: bool
) -> str:
    if meeting_agreed:
        return "Meeting agreed"
    if replied_at is not None:
        return "Replied"
    if acknowledged_at is not None:
        return "Acknowledged"
    return "Awaiting acknowledgement"


def clock_label(
    *,
    delivered_on: date,
    reply_target_days: int,
    nation: str,
    replied_at: datetime | None,
    today: date,
) -> str:
    """ "Day N of 20" or "Overdue by N working days" while unanswered; once replied,
    the working day the reply came on."""
    if replied_at is not None:
        days = working_days_between(delivered_on, uk_date(replied_at), nation)
        return f"Replied on working day {days} (target {reply_target_days})"
    return deadline_status(delivered_on, reply_target_days, today, nation).label


# --- the inbox --------------------------------------------------------------------------

MEETING_AGREED = frozenset({"accepted", "held"})


@dataclass(frozen=True)
class InboxLetter:
    delivery_id: int
    collective_name: str
    campaign_title: str
    kind_label: str
    method: str
    delivered_on: date
    status: str
    clock: str
    is_overdue: bool
    meeting: str = ""  # a meeting request's answer so far ("Other times proposed"), or ""


MEETING_WORDS = {
    MeetingStatus.ACCEPTED.value: "Meeting agreed",
    MeetingStatus.ALTERNATIVES.value: "Other meeting times proposed",
    MeetingStatus.DECLINED.value: "Meeting declined",
    MeetingStatus.HELD.value: "Meeting held",
}


def meeting_label(status: str | None) -> str:
    """A meeting's status in words that stand alone ("Meeting declined"); "" for none."""
    return MEETING_WORDS.get(status or "", "")


@dataclass(frozen=True)
class InboxPage:
    letters: list[InboxLetter]
    total: int
    page: int
    pages: int


def inbox(
    session: Session, department: Recipient, page: int = 1, *, today: date | None = None
) -> InboxPage:
    """One page (50 letters, newest first) of the sent letters addressed to
    `department` from every collective, through `chorus_department_inbox` only. The
    caller has checked the verified account."""
    page = max(1, page)
    rows = session.execute(
        text("SELECT * FROM chorus_department_inbox(:r, :n, :skip)"),
        {"r": department.id, "n": INBOX_PAGE_SIZE, "skip": (page - 1) * INBOX_PAGE_SIZE},
    ).mappings()
    today = today or uk_date(utcnow())
    letters: list[InboxLetter] = []
    total = 0
    for row in rows:
        total = int(row["total"])
        kind = "Meeting request" if row["campaign_kind"] == "meeting_request" else "Open letter"
        replied_at = row["replied_at"]
        clock = deadline_status(row["delivered_on"], row["reply_target_days"], today, row["nation"])
        letters.append(
            InboxLetter(
                delivery_id=int(row["delivery_id"]),
                collective_name=row["collective_name"],
                campaign_title=row["campaign_title"],
                kind_label=kind,
                method="By post" if row["method"] == "post" else "By email",
                delivered_on=row["delivered_on"],
                status=status_label(
                    acknowledged_at=row["acknowledged_at"],
                    replied_at=replied_at,
                    meeting_agreed=row["meeting_status"] in MEETING_AGREED,
                ),
                clock=clock_label(
                    delivered_on=row["delivered_on"],
                    reply_target_days=row["reply_target_days"],
                    nation=row["nation"],
                    replied_at=replied_at,
                    today=today,
                ),
                is_overdue=replied_at is None and clock.is_overdue,
                meeting=meeting_label(row["meeting_status"]),
            )
        )
    pages = max(1, -(-total // INBOX_PAGE_SIZE))
    return InboxPage(letters=letters, total=total, page=page, pages=pages)


def open_letter(session: Session, department: Recipient, delivery_id: int) -> Delivery:
    """A sent letter addressed to `department`, loaded inside its own collective (the
    session's tenant becomes that collective). LookupError when the letter does not
    exist, was not sent, or is addressed to someone else: the page answers 404 and says
    nothing about which."""
    if not 0 < delivery_id < 2**63:
        raise LookupError("No such letter.")
    row = session.execute(
        text("SELECT collective_id FROM chorus_department_letter(:r, :d)"),
        {"r": department.id, "d": delivery_id},
    ).first()
    if row is None:
        raise LookupError("No such letter.")
    delivery = enter(session, FoundDelivery(delivery_id, int(row[0])))
    if delivery.recipient_id != department.id or not delivery.is_sent:
        raise LookupError("No such letter.")
    return delivery


# --- public accountability ---------------------------------------------------------------


@dataclass(frozen=True)
class PublicLetter:
    campaign_title: str
    campaign_path: str
    collective_name: str
    delivered_on: date
    status: str


@dataclass(frozen=True)
class Figure:
    """A median or a share, with how many letters it rests on; `value` is None when
    there are fewer than MIN_SAMPLE."""

    value: float | None
    basis: int


@dataclass(frozen=True)
class DepartmentRecord:
    letters: int
    acknowledged: int
    replied: int
    median_ack_days: Figure
    median_reply_days: Figure
    on_time_share: Figure
    on_time: int
    public_letters: list[PublicLetter]
    unlisted: int  # letters from campaigns that are not public: counted, never listed

    @property
    def has_enough_data(self) -> bool:
        return self.letters >= MIN_SAMPLE


def _median(values: list[int]) -> Figure:
    if len(values) < MIN_SAMPLE:
        return Figure(None, len(values))
    return Figure(float(statistics.median(values)), len(values))


def department_record(
    session: Session, department: Recipient, *, today: date | None = None
) -> DepartmentRecord:
    """The department's record as Chorus saw it, from `chorus_department_record`:
    letters received; median working days from delivery to the first acknowledgement
    and to the first substantive reply (working days in the department's nation, the
    day after delivery being day 1); and the share answered on time among letters whose
    reply is in or whose reply deadline has passed (a reply on or before working day
    `reply_target_days`). Letters still within their deadline and unanswered are not
    judged yet. Only published campaigns are listed."""
    today = today or uk_date(utcnow())
    rows = session.execute(
        text("SELECT * FROM chorus_department_record(:r)"), {"r": department.id}
    ).mappings()
    ack_days: list[int] = []
    reply_days: list[int] = []
    judged = on_time = 0
    letters = 0
    public: list[PublicLetter] = []
    unlisted = 0
    for row in rows:
        letters += 1
        delivered_on: date = row["delivered_on"]
        nation: str = row["nation"]
        acknowledged_at, replied_at = row["acknowledged_at"], row["replied_at"]
        if acknowledged_at is not None:
            ack_days.append(working_days_between(delivered_on, uk_date(acknowledged_at), nation))
        if replied_at is not None:
            days = working_days_between(delivered_on, uk_date(replied_at), nation)
            reply_days.append(days)
            judged += 1
            on_time += days <= row["reply_target_days"]
        elif deadline_status(delivered_on, row["reply_target_days"], today, nation).is_overdue:
            judged += 1
        if row["campaign_title"] is None:
            unlisted += 1
        elif len(public) < PUBLIC_LIST_LIMIT:
            public.append(
                PublicLetter(
                    campaign_title=row["campaign_title"],
                    campaign_path=f"/{row['collective_slug']}/{row['campaign_slug']}",
                    collective_name=row["collective_name"],
                    delivered_on=delivered_on,
                    status=status_label(
                        acknowledged_at=acknowledged_at,
                        replied_at=replied_at,
                        meeting_agreed=bool(row["meeting_agreed"]),
                    ),
                )
            )
    share = Figure(on_time / judged if judged >= MIN_SAMPLE else None, judged)
    return DepartmentRecord(
        letters=letters,
        acknowledged=len(ack_days),
        replied=len(reply_days),
        median_ack_days=_median(ack_days),
        median_reply_days=_median(reply_days),
        on_time_share=share,
        on_time=on_time,
        public_letters=public,
        unlisted=unlisted,
    )


@dataclass(frozen=True)
class DepartmentSummary:
    department: Recipient
    letters: int


def departments_with_letters(session: Session) -> list[DepartmentSummary]:
    """Directory departments that have received at least one letter through Chorus,
    by name."""
    counts = {
        int(row[0]): int(row[1])
        for row in session.execute(
            text("SELECT recipient_id, letters FROM chorus_departments_with_letters()")
        )
    }
    if not counts:
        return []
    departments = session.scalars(
        select(Recipient)
        .where(Recipient.collective_id.is_(None), Recipient.id.in_(counts))
        .order_by(Recipient.name),
        execution_options={"all_collectives": True},  # shared directory rows only
    )
    return [DepartmentSummary(d, counts[d.id]) for d in departments]
