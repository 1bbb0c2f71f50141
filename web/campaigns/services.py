"""Campaigns: create, edit the letter (every save a revision), review, publish, close.

Services flush and never commit. State changes go through `_transition`, which knows the
allowed moves; publication freezes the letter into an immutable `LetterVersion` named by
the SHA-256 of its canonical text.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from web.accounts.models import User
from web.campaigns.models import (
    AudienceStyle,
    Campaign,
    CampaignKind,
    CampaignState,
    LetterRevision,
    LetterVersion,
    ReviewEvent,
)
from web.campaigns.readability import word_count
from web.campaigns.styles import style_for
from web.collectives.models import Collective, Membership, Role
from web.collectives.services import RESERVED_SLUGS, SLUG_RE, require_role
from web.db import utcnow
from web.recipients.models import Recipient

MAX_ASKS = 10
MAX_LINKS = 10
MAX_SLOTS = 10
MIN_SLOTS = 3
MAX_SIGNING_LINES = 50  # lead signatories, signing organisations
MAX_SIGNING_LINE = 200
EDITORS = (Role.OWNER, Role.ORGANISER)

TRANSITIONS: dict[CampaignState, set[CampaignState]] = {
    CampaignState.DRAFT: {CampaignState.IN_REVIEW, CampaignState.COLLECTING},
    CampaignState.IN_REVIEW: {CampaignState.DRAFT, CampaignState.COLLECTING},
    CampaignState.COLLECTING: {CampaignState.CLOSED},
    CampaignState.CLOSED: {CampaignState.CONCLUDED},
    # Delivery and responses will add their own moves; any of them may end the campaign.
    CampaignState.DELIVERED: {CampaignState.CONCLUDED},
    CampaignState.ACKNOWLEDGED: {CampaignState.CONCLUDED},
    CampaignState.RESPONDED: {CampaignState.CONCLUDED},
    CampaignState.MEETING_SCHEDULED: {CampaignState.CONCLUDED},
}


class CampaignError(ValueError):
    """A rule was broken; the message is safe to show to the person."""


@dataclass(frozen=True)
class Problem:
    field: str
    message: str


class PublicationBlocked(CampaignError):
    """Publishing (or submitting) is not possible yet; `problems` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


class NotFoundError(LookupError):
    pass


# --- finding -------------------------------------------------------------------------


def get_campaign(session: Session, campaign_id: int) -> Campaign:
    campaign = session.scalar(select(Campaign).where(Campaign.id == campaign_id))
    if campaign is None:
        raise NotFoundError()
    return campaign


def list_campaigns(session: Session) -> list[Campaign]:
    return list(session.scalars(select(Campaign).order_by(Campaign.updated_at.desc())))


def find_public_campaign(session: Session, slug: str) -> Campaign | None:
    """A published campaign of the current collective (drafts are never public)."""
    campaign = session.scalar(select(Campaign).where(Campaign.slug == slug))
    if campaign is None or campaign.published_at is None:
        return None
    return campaign


def current_version(session: Session, campaign: Campaign) -> LetterVersion | None:
    return session.scalar(
        select(LetterVersion)
        .where(LetterVersion.campaign_id == campaign.id)
        .order_by(LetterVersion.number.desc())
        .limit(1)
    )


def get_version(session: Session, campaign: Campaign, number: int) -> LetterVersion:
    version = session.scalar(
        select(LetterVersion).where(
            LetterVersion.campaign_id == campaign.id, LetterVersion.number == number
        )
    )
    if version is None:
        raise NotFoundError()
    return version


def list_versions(session: Session, campaign: Campaign) -> list[LetterVersion]:
    return list(
        session.scalars(
            select(LetterVersion)
            .where(LetterVersion.campaign_id == campaign.id)
            .order_by(LetterVersion.number)
        )
    )


def list_revisions(session: Session, campaign: Campaign) -> list[LetterRevision]:
    return list(
        session.scalars(
            select(LetterRevision)
            .where(LetterRevision.campaign_id == campaign.id)
            .order_by(LetterRevision.number.desc())
        )
    )


def get_revision(session: Session, campaign: Campaign, number: int) -> LetterRevision:
    revision = session.scalar(
        select(LetterRevision).where(
            LetterRevision.campaign_id == campaign.id, LetterRevision.number == number
        )
    )
    if revision is None:
        raise NotFoundError()
    return revision


def review_events(session: Session, campaign: Campaign) -> list[ReviewEvent]:
    return list(
        session.scalars(
            select(ReviewEvent)
            .where(ReviewEvent.campaign_id == campaign.id)
            .order_by(ReviewEvent.created_at, ReviewEvent.id)
        )
    )


# --- creating and editing --------------------------------------------------------------


def check_campaign_slug(session: Session, slug: str, *, exclude_id: int | None = None) -> str:
    slug = slug.strip().lower()
    if not SLUG_RE.match(slug) or len(slug) > 63:
        raise CampaignError(
            "Use 1 to 63 lower-case letters, numbers and hyphens for the web address, "
            "starting and ending with a letter or number."
        )
    if slug in RESERVED_SLUGS or slug in {"poster", "embed", "count", "versions"}:
        raise CampaignError(f"The web address “{slug}” is reserved. Please choose another.")
    query = select(Campaign.id).where(Campaign.slug == slug)
    if exclude_id is not None:
        query = query.where(Campaign.id != exclude_id)
    if session.scalar(query) is not None:
        raise CampaignError(
            f"Another campaign of this collective already uses “{slug}”. Please choose another."
        )
    return slug


def create_campaign(
    session: Session,
    actor: Membership,
    *,
    kind: str,
    title: str,
    slug: str,
    audience_style: str = AudienceStyle.MINISTER.value,
) -> Campaign:
    """Start a draft campaign with an empty letter. Organisers and owners only."""
    require_role(actor, *EDITORS)
    try:
        CampaignKind(kind)
        AudienceStyle(audience_style)
    except ValueError:
        raise CampaignError("Choose an open letter or a meeting request.") from None
    if not title.strip():
        raise CampaignError("Give the campaign a title.")
    campaign = Campaign(
        collective_id=actor.collective_id,
        kind=kind,
        title=title.strip(),
        slug=check_campaign_slug(session, slug),
        audience_style=audience_style,
        state=CampaignState.DRAFT.value,
        created_by_id=actor.user_id,
    )
    session.add(campaign)
    session.flush()
    return campaign


def _require_editable(campaign: Campaign) -> None:
    if campaign.state_enum in (CampaignState.IN_REVIEW,):
        raise CampaignError(
            "This letter is waiting for review. Withdraw it from review to edit it, or ask "
            "the reviewer to request changes."
        )
    if campaign.state_enum is CampaignState.CLOSED:
        raise CampaignError("This campaign is closed; its letter can no longer change.")


def update_settings(
    session: Session,
    actor: Membership,
    campaign: Campaign,
    *,
    title: str,
    slug: str,
    recipient_id: int | None,
    addressee_name: str,
    addressee_role: str,
    audience_style: str,
    signature_target: int | None,
    closes_on: date | None,
    statements_auto_approve: bool | None = None,  # None: leave as it is
) -> Campaign:
    require_role(actor, *EDITORS)
    _require_editable(campaign)
    if not title.strip():
        raise CampaignError("Give the campaign a title.")
    try:
        AudienceStyle(audience_style)
    except ValueError:
        raise CampaignError("Choose who will read the letter.") from None
    if recipient_id is not None:
        # The tenant filter lets through the directory and this collective's own.
        recipient = session.scalar(select(Recipient).where(Recipient.id == recipient_id))
        if recipient is None:
            raise CampaignError("Choose a recipient from the list.")
    if signature_target is not None and not 0 < signature_target <= 100_000_000:
        raise CampaignError("The signature target must be a whole number above zero.")
    if campaign.published_at is not None and slug.strip().lower() != campaign.slug:
        raise CampaignError("A published campaign keeps its web address, so shared links work.")
    campaign.slug = check_campaign_slug(session, slug, exclude_id=campaign.id)
    campaign.title = title.strip()
    campaign.recipient_id = recipient_id
    campaign.addressee_name = addressee_name.strip()
    campaign.addressee_role = addressee_role.strip()
    campaign.audience_style = audience_style
    campaign.signature_target = signature_target
    campaign.closes_on = closes_on
    if statements_auto_approve is not None:
        campaign.statements_auto_approve = statements_auto_approve
    session.flush()
    return campaign


def _clean_lines(values: list[str], limit: int) -> list[str]:
    return [v.strip() for v in values if v and v.strip()][:limit]


def _valid_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in {"http", "https"} and bool(parts.netloc) and " " not in url


def _signing_lines(value: str | None, what: str) -> str | None:
    """One name (or organisation) a line, trimmed, blank lines dropped; None stays None."""
    if value is None:
        return None
    items = [line.strip() for line in value.splitlines() if line.strip()]
    if len(items) > MAX_SIGNING_LINES:
        raise CampaignError(f"List at most {MAX_SIGNING_LINES} {what}, one a line.")
    if any(len(item) > MAX_SIGNING_LINE for item in items):
        raise CampaignError(
            f"Keep each line of the {what} to {MAX_SIGNING_LINE} characters or fewer."
        )
    return "\n".join(items)


def save_letter(
    session: Session,
    actor: Membership,
    campaign: Campaign,
    *,
    subject: str,
    summary: str,
    body_markdown: str,
    asks: list[str],
    evidence_links: list[dict[str, str]],
    easy_read_markdown: str = "",
    meeting_purpose: str = "",
    meeting_attendees: str = "",
    meeting_slots: list[dict[str, str]] | None = None,
    lead_signatories: str | None = None,  # None: leave as it is
    signing_organisations: str | None = None,
) -> LetterRevision:
    """Save the draft letter as a new revision (author and time recorded)."""
    require_role(actor, *EDITORS)
    _require_editable(campaign)
    signers = _signing_lines(lead_signatories, "lead signatories")
    organisations = _signing_lines(signing_organisations, "signing organisations")
    links = []
    for link in evidence_links[:MAX_LINKS]:
        url = (link.get("url") or "").strip()
        title = (link.get("title") or "").strip()
        if not url and not title:
            continue
        if not _valid_url(url):
            raise CampaignError(
                f"Evidence links must start with http:// or https:// (check “{url[:80]}”)."
            )
        links.append({"title": title or url, "url": url})
    slots = []
    for slot in (meeting_slots or [])[:MAX_SLOTS]:
        when = (slot.get("when") or "").strip()
        place = (slot.get("place") or "").strip()
        if not when and not place:
            continue
        if not when or not place:
            raise CampaignError(
                "Give each proposed time both a date and time and a place (or “online”)."
            )
        slots.append({"when": when, "place": place})
    campaign.subject = subject.strip()
    campaign.summary = summary.strip()
    campaign.body_markdown = body_markdown.strip()
    campaign.asks = _clean_lines(asks, MAX_ASKS)
    campaign.evidence_links = links
    campaign.easy_read_markdown = easy_read_markdown.strip()
    if campaign.kind == CampaignKind.MEETING_REQUEST.value:
        campaign.meeting_purpose = meeting_purpose.strip()
        campaign.meeting_attendees = meeting_attendees.strip()
        campaign.meeting_slots = slots
    if signers is not None:
        campaign.lead_signatories = signers
    if organisations is not None:
        campaign.signing_organisations = organisations
    campaign.revision_count += 1
    campaign.updated_at = utcnow()
    revision = LetterRevision(
        collective_id=campaign.collective_id,
        campaign_id=campaign.id,
        number=campaign.revision_count,
        author_id=actor.user_id,
        content=campaign.letter_content(),
    )
    session.add(revision)
    session.flush()
    return revision


# --- validation ----------------------------------------------------------------------


def publication_problems(campaign: Campaign, today: date | None = None) -> list[Problem]:
    """Every reason the campaign cannot be published yet, in the order of the form."""
    problems: list[Problem] = []
    today = today or utcnow().date()
    if campaign.recipient_id is None:
        problems.append(Problem("recipient_id", "Choose who the letter is addressed to."))
    if not campaign.addressee_role.strip():
        problems.append(
            Problem(
                "addressee_role",
                "Give the addressee's role, for example “Secretary of State for Work and "
                "Pensions”.",
            )
        )
    if campaign.closes_on is not None and campaign.closes_on < today:
        problems.append(Problem("closes_on", "The closing date has passed. Choose a later date."))
    if not campaign.subject.strip():
        problems.append(Problem("subject", "Write a subject line."))
    summary_words = word_count(campaign.summary)
    limit = style_for(campaign.audience_style).summary_words
    if summary_words == 0:
        problems.append(Problem("summary", "Write an executive summary."))
    elif summary_words > limit:
        problems.append(
            Problem(
                "summary",
                f"The summary is {summary_words} words; for this reader keep it to {limit}.",
            )
        )
    if not campaign.body_markdown.strip():
        problems.append(Problem("body_markdown", "Write the body of the letter."))
    if not campaign.asks:
        problems.append(Problem("asks", "Add at least one ask: what you want the reader to do."))
    if campaign.kind == CampaignKind.MEETING_REQUEST.value:
        if not campaign.meeting_purpose.strip():
            problems.append(Problem("meeting_purpose", "Say what the meeting is for."))
        if not campaign.meeting_attendees.strip():
            problems.append(Problem("meeting_attendees", "Say who would attend the meeting."))
        if len(campaign.meeting_slots or []) < MIN_SLOTS:
            problems.append(
                Problem(
                    "meeting_slots",
                    f"Propose at least {MIN_SLOTS} times or windows for the meeting.",
                )
            )
    return problems


# --- review and publication ----------------------------------------------------------


def needs_second_approver(session: Session, collective: Collective) -> bool:
    if collective.second_approver == "on":
        return True
    if collective.second_approver == "off":
        return False
    editors = session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(Membership.role.in_([Role.OWNER, Role.ORGANISER]))
    )
    return (editors or 0) >= 2


def _transition(campaign: Campaign, target: CampaignState) -> None:
    current = campaign.state_enum
    if target not in TRANSITIONS.get(current, set()):
        raise CampaignError(
            f"A campaign that is {current.label.lower()} cannot become {target.label.lower()}."
        )
    campaign.state = target.value
    if target is CampaignState.CONCLUDED:
        campaign.concluded_at = utcnow()  # the retention period counts from here


def _event(
    session: Session, campaign: Campaign, actor: Membership, action: str, comment: str = ""
) -> ReviewEvent:
    event = ReviewEvent(
        collective_id=campaign.collective_id,
        campaign_id=campaign.id,
        revision_number=campaign.revision_count,
        actor_id=actor.user_id,
        action=action,
        comment=comment.strip(),
    )
    session.add(event)
    session.flush()
    return event


def _last_submission(session: Session, campaign: Campaign) -> ReviewEvent | None:
    return session.scalar(
        select(ReviewEvent)
        .where(ReviewEvent.campaign_id == campaign.id, ReviewEvent.action == "submitted")
        .order_by(ReviewEvent.id.desc())
        .limit(1)
    )


def is_approved(session: Session, campaign: Campaign) -> bool:
    """Approved by someone other than the submitter, for the current revision."""
    submission = _last_submission(session, campaign)
    if submission is None:
        return False
    approval = session.scalar(
        select(ReviewEvent.id).where(
            ReviewEvent.campaign_id == campaign.id,
            ReviewEvent.action == "approved",
            ReviewEvent.id > submission.id,
            ReviewEvent.revision_number == campaign.revision_count,
        )
    )
    return approval is not None


def submit_for_review(session: Session, actor: Membership, campaign: Campaign) -> ReviewEvent:
    require_role(actor, *EDITORS)
    problems = publication_problems(campaign)
    if problems:
        raise PublicationBlocked(problems)
    _transition(campaign, CampaignState.IN_REVIEW)
    return _event(session, campaign, actor, "submitted")


def withdraw_from_review(session: Session, actor: Membership, campaign: Campaign) -> ReviewEvent:
    require_role(actor, *EDITORS)
    _transition(campaign, CampaignState.DRAFT)
    return _event(session, campaign, actor, "withdrawn")


def approve(
    session: Session, actor: Membership, campaign: Campaign, comment: str = ""
) -> ReviewEvent:
    """Another organiser approves the letter as submitted."""
    require_role(actor, *EDITORS)
    if campaign.state_enum is not CampaignState.IN_REVIEW:
        raise CampaignError("Only a letter waiting for review can be approved.")
    submission = _last_submission(session, campaign)
    if submission is not None and submission.actor_id == actor.user_id:
        raise CampaignError("Someone other than the person who submitted it must approve it.")
    return _event(session, campaign, actor, "approved", comment)


def request_changes(
    session: Session, actor: Membership, campaign: Campaign, comment: str
) -> ReviewEvent:
    require_role(actor, *EDITORS)
    if campaign.state_enum is not CampaignState.IN_REVIEW:
        raise CampaignError("Only a letter waiting for review can be sent back for changes.")
    if not comment.strip():
        raise CampaignError("Say what should change, so the author knows what to do.")
    _transition(campaign, CampaignState.DRAFT)
    return _event(session, campaign, actor, "changes_requested", comment)


def canonical_text(content: dict[str, Any]) -> str:
    """Deterministic text of a letter: NFC-normalised, sorted-key JSON with LF endings.

    Anyone holding the version's content can recompute its SHA-256."""

    def normalise(value: Any) -> Any:
        if isinstance(value, str):
            return unicodedata.normalize("NFC", value.replace("\r\n", "\n").replace("\r", "\n"))
        if isinstance(value, list):
            return [normalise(v) for v in value]
        if isinstance(value, dict):
            return {k: normalise(v) for k, v in value.items()}
        return value

    return json.dumps(normalise(content), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def publish(
    session: Session, actor: Membership, collective: Collective, campaign: Campaign
) -> LetterVersion:
    """Freeze the letter as a new immutable version and start collecting signatures.

    First publication: draft (when no second approver is needed) or an approved
    in_review campaign. Later, an edited letter of a collecting campaign becomes the next
    version; signatures on older versions will then be asked to re-consent (Signing).
    """
    require_role(actor, *EDITORS)
    state = campaign.state_enum
    problems = publication_problems(campaign)
    if problems:
        raise PublicationBlocked(problems)
    needs_review = needs_second_approver(session, collective)
    if state is CampaignState.COLLECTING:
        latest = current_version(session, campaign)
        if latest is not None and latest.sha256 == _sha256(campaign.letter_content()):
            raise CampaignError("The letter has not changed since the last version.")
    elif needs_review and not (state is CampaignState.IN_REVIEW and is_approved(session, campaign)):
        raise CampaignError(
            "This collective asks a second organiser to approve letters before publication. "
            "Submit it for review first."
        )
    elif state not in (CampaignState.DRAFT, CampaignState.IN_REVIEW):
        raise CampaignError(f"A campaign that is {state.label.lower()} cannot be published.")
    if state is not CampaignState.COLLECTING:
        # The plan's limit on campaigns collecting at once (web/billing/plans.py).
        from web.billing.plans import PlanLimitReached, check_can_start_collecting

        try:
            check_can_start_collecting(session, campaign.collective_id)
        except PlanLimitReached as exc:
            raise PublicationBlocked([Problem("plan", str(exc))]) from exc

    content = campaign.letter_content()
    text = canonical_text(content)
    latest = current_version(session, campaign)
    version = LetterVersion(
        collective_id=campaign.collective_id,
        campaign_id=campaign.id,
        number=(latest.number + 1) if latest else 1,
        content=content,
        canonical_text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        published_by_id=actor.user_id,
    )
    session.add(version)
    session.flush()
    if version.number > 1:
        from web.signatures.services import mark_reconsent_needed

        mark_reconsent_needed(session, campaign, version)
    if state is not CampaignState.COLLECTING:
        _transition(campaign, CampaignState.COLLECTING)
    if campaign.published_at is None:
        campaign.published_at = utcnow()
    session.flush()
    return version


def has_unpublished_changes(session: Session, campaign: Campaign) -> bool:
    """Whether the draft differs from the latest published version."""
    latest = current_version(session, campaign)
    return latest is None or latest.sha256 != _sha256(campaign.letter_content())


def _sha256(content: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_text(content).encode()).hexdigest()


def close_campaign(session: Session, actor: Membership, campaign: Campaign) -> Campaign:
    require_role(actor, *EDITORS)
    _transition(campaign, CampaignState.CLOSED)
    session.flush()
    return campaign


def conclude_campaign(session: Session, actor: Membership, campaign: Campaign) -> Campaign:
    """End a campaign that has stopped collecting (closed, or anywhere after delivery).
    Sets `concluded_at`; the signers' personal data is anonymised `retention_days` later
    by the retention job. Not idempotent: concluding twice raises CampaignError."""
    require_role(actor, *EDITORS)
    _transition(campaign, CampaignState.CONCLUDED)
    session.flush()
    return campaign


# --- diffs ---------------------------------------------------------------------------

DIFF_FIELDS = (
    ("subject", "Subject"),
    ("summary", "Executive summary"),
    ("body_markdown", "Body"),
    ("asks", "Asks"),
    ("evidence_links", "Evidence"),
    ("easy_read_markdown", "Easy Read version"),
    ("meeting_purpose", "Meeting purpose"),
    ("meeting_attendees", "Proposed attendees"),
    ("meeting_slots", "Proposed times"),
    ("lead_signatories", "Lead signatories"),
    ("signing_organisations", "Signing organisations"),
)


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "same" | "added" | "removed"
    text: str


def _as_lines(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        lines = []
        for i, item in enumerate(value, 1):
            if isinstance(item, dict):
                lines.append(f"{i}. " + " — ".join(str(v) for v in item.values()))
            else:
                lines.append(f"{i}. {item}")
        return lines
    return str(value).splitlines()


def diff_contents(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, list[DiffLine]]]:
    """Per field, the lines removed and added between two letter contents."""
    sections = []
    for key, label in DIFF_FIELDS:
        a, b = _as_lines(old.get(key)), _as_lines(new.get(key))
        if a == b:
            continue
        lines = []
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
            if tag == "equal":
                lines += [DiffLine("same", line) for line in a[i1:i2]]
                continue
            lines += [DiffLine("removed", line) for line in a[i1:i2]]
            lines += [DiffLine("added", line) for line in b[j1:j2]]
        sections.append((label, lines))
    return sections


def user_name(session: Session, user_id: int | None) -> str:
    if user_id is None:
        return "a former member"
    user = session.get(User, user_id)
    return user.display_name if user else "a former member"
