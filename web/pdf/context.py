"""The letter's content from the database, as the plain data `web.pdf.engine` renders.

`build_letter(session, campaign, draft=..., verify_url=...)` reads everything the PDF
shows and returns `LetterInputs`: the letter and annex C (`LetterDoc`), annex A
(`Signatory` rows) and annex B (`Voice` rows). No ORM object leaves this module.

- draft=True: the campaign's current (unpublished) text, reference
  "CH-<collective>-<campaign>-draft", `draft` set so every page is watermarked.
- draft=False: the latest published `LetterVersion`, reference
  "CH-<collective>-<campaign>-v<number>", and that version's SHA-256. A campaign with no
  published version raises `LetterNotReady`.
- Whichever text, the annexes hold the signatures that count now. "Counted" is the one
  definition the public count and the organiser's counts use
  (`web.signatures.services._counted`: verified, and not waiting to re-confirm a newer
  version); the voices are `statement_groups()` over `public_conditions`; the counts by
  status, method and region are `signature_report()`, so the letter's numbers are the
  Signatures tab's numbers.
- Annex A is one streamed query of three columns (id, name, postcode area), no ORM
  objects, sorted in Python by the name as people read it (case and accents folded),
  then by id, so equal names keep a stable order. Measured on the development machine
  (2 shared cores, busy): 98,000 signatories in 1.0-1.6 s, about 0.5 s of it in
  PostgreSQL; the whole `build_letter` in 1.4-2.3 s (tests/test_pdf_context.py).
- Strings are plain text (the renderer escapes them) except `body_html`, which is the
  same sanitised HTML the public page shows (`web.campaigns.markdown.render_markdown`).
  `salutation` and `sign_off` carry no trailing comma ("Dear Secretary of State",
  "Yours sincerely"), as `web.campaigns.styles` gives them.

`inputs_hash(inputs)` is the SHA-256 (hex) of a canonical serialisation (sorted-key JSON)
of everything rendered: equal inputs give equal hashes, any visible change another.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, literal_column, select
from sqlalchemy.orm import Session

from web.billing.services import letter_branding
from web.campaigns.markdown import render_markdown
from web.campaigns.models import AudienceStyle, Campaign, CampaignKind, LetterVersion
from web.campaigns.services import canonical_text, current_version
from web.campaigns.styles import salutation, style_for
from web.collectives.models import Collective
from web.db import utcnow
from web.pdf.contract import LetterDoc, MethodFacts, Party, Signatory, Slot, Voice
from web.pdf.places import AREA_TOWNS
from web.recipients.models import Recipient
from web.signatures.models import Signature, SignatureMethod, SignatureStatus
from web.signatures.services import (
    NO_POSTCODE,
    UNKNOWN_REGION,
    _counted,
    signature_report,
)
from web.signatures.statements import statement_groups
from web.tenancy import current_collective_id

HASH_FORMAT = "chorus-letter-inputs/2"  # change it when the serialisation changes
STREAM_ROWS = 5000
LETTER_TZ = ZoneInfo("Europe/London")
MAX_REGIONS = 12
ELSEWHERE = "Elsewhere"  # Channel Islands, Isle of Man, BFPO, unrecognised areas

# The paragraph before the sign-off, by reader; a meeting request asks for the meeting.
CLOSINGS: dict[AudienceStyle, str] = {
    AudienceStyle.MINISTER: "We would be grateful for your reply to each of our asks.",
    AudienceStyle.SENIOR_OFFICIAL: (
        "We would be grateful for a reply addressing each of our asks, and for the name of "
        "the official who will take this forward."
    ),
    AudienceStyle.POLICY_TEAM: (
        "We would welcome a reply addressing each of our asks, and are glad to provide "
        "further evidence or detail on request."
    ),
    AudienceStyle.SELECT_COMMITTEE: (
        "We would be grateful if the Committee would consider this letter and the evidence "
        "it carries, and are glad to give further evidence."
    ),
    AudienceStyle.LOCAL_AUTHORITY: (
        "We would be grateful for a reply addressing each of our asks within the council's "
        "published response time."
    ),
}
MEETING_CLOSING = (
    "We would be grateful if you could let us know which of the proposed times suits you, "
    "or suggest another."
)

METHOD_LABELS: dict[str, str] = {
    SignatureMethod.ONLINE.value: "Online",
    SignatureMethod.ASSISTED.value: "Assisted (by phone or in person)",
    SignatureMethod.PAPER.value: "Paper",
}
REGION_LABELS: dict[str, str] = {UNKNOWN_REGION: ELSEWHERE}

# (label, why) for each row of "by status" in annex C. "Counted" and "re-confirm" split
# the verified status the way the public count does.
COUNTED = "counted"
AWAITING_RECONSENT = "awaiting_reconsent"
STATUS_ROWS: tuple[tuple[str, str, str], ...] = (
    (
        COUNTED,
        "Verified and counted",
        "Confirmed by the signer from a link sent to their email address, or recorded "
        "by a helper who confirmed the signer's consent (assisted and paper signatures).",
    ),
    (
        AWAITING_RECONSENT,
        "Waiting to re-confirm",
        "Signed an earlier version of the letter and has not yet confirmed this one: "
        "not counted in this letter.",
    ),
    (
        SignatureStatus.PENDING.value,
        "Waiting for email confirmation",
        "The signer has not yet confirmed from the link emailed to them: not counted.",
    ),
    (
        SignatureStatus.QUARANTINED.value,
        "Held for review",
        "The submission looked automated (for example, a form sent faster than a person "
        "can type it) and an organiser has not restored it: not counted.",
    ),
    (
        SignatureStatus.REJECTED.value,
        "Rejected",
        "Rejected by an organiser, for example as part of a burst from one email domain "
        "or network: not counted.",
    ),
    (
        SignatureStatus.WITHDRAWN.value,
        "Withdrawn",
        "The signer withdrew their signature: not counted.",
    ),
    (
        SignatureStatus.ERASED.value,
        "Erased",
        "The signer withdrew and erased their details; only an anonymous record remains: "
        "not counted.",
    ),
)


class LetterNotReady(LookupError):
    """No published version to render a final letter from; the message is for people."""


@dataclass(frozen=True)
class LetterInputs:
    """Everything a letter's PDF shows. `letter_version_id` is None for a draft."""

    doc: LetterDoc
    signatories: list[Signatory]
    voices: list[Voice]
    letter_version_id: int | None


# --- small helpers ---------------------------------------------------------------------


def human_date(day: date) -> str:
    """ "3 March 2026": the date as a British letter prints it."""
    return f"{day.day} {day:%B %Y}"


def lines(text: str | None) -> tuple[str, ...]:
    """The non-empty lines of a text field, trimmed."""
    return tuple(line.strip() for line in (text or "").splitlines() if line.strip())


def sort_key(name: str) -> str:
    """A name as people alphabetise it: case and accents folded ("Émile" by "Emily")."""
    folded = name.casefold()
    if folded.isascii():  # most names: nothing to fold
        return folded
    folded = unicodedata.normalize("NFKD", folded)
    return "".join(ch for ch in folded if not unicodedata.combining(ch))


def reference(collective_slug: str, campaign_slug: str, version: int | None) -> str:
    suffix = "draft" if version is None else f"v{version}"
    return f"CH-{collective_slug}-{campaign_slug}-{suffix}"


def _area_sql() -> Any:
    """The postcode area in SQL ("SW" of "SW1A 1AA"), NULL when there is none."""
    return func.substring(func.upper(Signature.postcode), literal_column("'^([A-Z]{1,2})[0-9]'"))


# --- the parts -------------------------------------------------------------------------


def signatories(session: Session, campaign: Campaign) -> list[Signatory]:
    """Annex A: every counted signature, name and place, in a stable alphabetical order.
    One streamed query of three columns."""
    result = session.execute(
        select(Signature.id, Signature.name, _area_sql()).where(*_counted(campaign)),
        execution_options={"yield_per": STREAM_ROWS},
    )
    towns = AREA_TOWNS
    rows = [(sort_key(name), sid, name, area) for sid, name, area in result]
    rows.sort()
    # Positional arguments: twice as fast as keywords for a frozen dataclass.
    return [Signatory(name, towns.get(area, "") if area else "") for _, _, name, area in rows]


def voices(session: Session, campaign: Campaign) -> list[Voice]:
    """Annex B: the statements shown publicly, near-duplicates once with their count,
    largest groups first. The name is the representative signer's, only if they chose to
    show it. Two queries."""
    groups = statement_groups(session, campaign)
    firsts = [g.member_ids[0] for g in groups if g.member_ids]
    shown: dict[int, str] = {}
    if firsts:
        rows = session.execute(
            select(Signature.id, Signature.name).where(
                Signature.campaign_id == campaign.id,
                Signature.id.in_(firsts),
                Signature.show_name.is_(True),
            )
        )
        shown = {int(sid): str(name) for sid, name in rows}
    return [
        Voice(
            text=g.representative,
            count=g.count,
            name=shown.get(g.member_ids[0], "") if g.member_ids else "",
        )
        for g in groups
    ]


def method_facts(
    session: Session,
    campaign: Campaign,
    *,
    voice_list: list[Voice],
    letter_sha256: str,
    verify_url: str,
) -> MethodFacts:
    """Annex C, from `signature_report` (a few GROUP BY queries) and the voices."""
    report = signature_report(session, campaign)
    statuses = dict(report.by_status)
    numbers = {
        **statuses,
        COUNTED: report.counted,
        AWAITING_RECONSENT: report.awaiting_reconsent,
    }
    by_status = tuple(
        (label, int(numbers.get(key, 0)), why)
        for key, label, why in STATUS_ROWS
        if key == COUNTED or numbers.get(key, 0)
    )
    known = [(r, n) for r, n in report.by_region if n and r not in (UNKNOWN_REGION, NO_POSTCODE)]
    known.sort(key=lambda item: (-item[1], item[0]))
    elsewhere = sum(n for _, n in known[MAX_REGIONS:]) + dict(report.by_region).get(
        UNKNOWN_REGION, 0
    )
    regions = known[:MAX_REGIONS]
    if elsewhere:
        regions.append((ELSEWHERE, elsewhere))
    not_given = dict(report.by_region).get(NO_POSTCODE, 0)
    if not_given:
        regions.append((NO_POSTCODE, not_given))
    return MethodFacts(
        verified_total=report.counted,
        by_method=tuple((METHOD_LABELS.get(m, m), n) for m, n in report.by_method),
        by_status=by_status,
        statements_total=sum(v.count for v in voice_list),
        distinct_statements=len(voice_list),
        regions=tuple(regions),
        first_signed=human_date(report.per_day[0][0]) if report.per_day else "",
        last_signed=human_date(report.per_day[-1][0]) if report.per_day else "",
        letter_sha256=letter_sha256,
        verify_url=verify_url,
    )


def _recipient(session: Session, recipient_id: Any) -> Recipient | None:
    if not isinstance(recipient_id, int):
        return None
    # The tenant filter lets through the directory and this collective's own.
    return session.scalar(select(Recipient).where(Recipient.id == recipient_id))


def _slots(content: dict[str, Any]) -> tuple[Slot, ...]:
    return tuple(
        Slot(when=str(slot.get("when", "")), note=str(slot.get("place", "")))
        for slot in content.get("meeting_slots") or []
        if isinstance(slot, dict)
    )


# --- the whole letter ------------------------------------------------------------------


def build_letter(
    session: Session,
    campaign: Campaign,
    *,
    draft: bool,
    verify_url: str,
    today: date | None = None,
) -> LetterInputs:
    """Read the letter, its annexes and its method facts for `campaign`, whose collective
    must be the session's current one. Reads only; raises `LetterNotReady` for a final
    letter of a campaign that has never been published."""
    if current_collective_id(session) != campaign.collective_id:
        raise PermissionError("The campaign belongs to another collective.")
    collective = session.get(Collective, campaign.collective_id)
    if collective is None:  # pragma: no cover - the foreign key forbids it
        raise LetterNotReady("This campaign's collective no longer exists.")
    latest = current_version(session, campaign)
    version: LetterVersion | None
    if draft:
        version = None
        content = campaign.letter_content()
        if latest is None:
            number = 1
        elif latest.canonical_text == canonical_text(content):
            number = latest.number
        else:
            number = latest.number + 1
    else:
        if latest is None:
            raise LetterNotReady(
                "This campaign has no published letter yet. Publish it first, or preview the draft."
            )
        version = latest
        content = dict(latest.content)
        number = latest.number
    letter_sha256 = version.sha256 if version is not None else ""
    style_value = str(content.get("audience_style") or AudienceStyle.MINISTER.value)
    style = style_for(style_value)
    kind = str(content.get("kind") or campaign.kind)
    is_meeting = kind == CampaignKind.MEETING_REQUEST.value
    recipient = _recipient(session, content.get("recipient_id"))
    addressee_name = str(content.get("addressee_name") or "")
    addressee_role = str(content.get("addressee_role") or "")

    signatory_list = signatories(session, campaign)
    voice_list = voices(session, campaign)
    facts = method_facts(
        session,
        campaign,
        voice_list=voice_list,
        letter_sha256=letter_sha256,
        verify_url=verify_url,
    )
    day = today or utcnow().astimezone(LETTER_TZ).date()
    title = str(content.get("title") or campaign.title)
    subject = str(content.get("subject") or "")
    keywords = [CampaignKind(kind).label, collective.name, "Chorus"]
    if recipient is not None:
        keywords.insert(1, recipient.name)
    doc = LetterDoc(
        reference=reference(collective.slug, campaign.slug, None if draft else number),
        title=title,
        subject=subject,
        date=human_date(day),
        kind=kind,
        audience_style=style_value,
        sender=Party(name=collective.name, address_lines=lines(collective.contact_address)),
        recipient=Party(
            name=addressee_name,
            role=addressee_role,
            organisation=recipient.name if recipient is not None else "",
            address_lines=lines(recipient.postal_address) if recipient is not None else (),
            email=recipient.correspondence_email if recipient is not None else "",
        ),
        salutation=salutation(style_value, addressee_name, addressee_role),
        summary=str(content.get("summary") or ""),
        body_html=str(render_markdown(str(content.get("body_markdown") or ""))),
        asks=tuple(str(a) for a in content.get("asks") or []),
        closing=MEETING_CLOSING if is_meeting else CLOSINGS[AudienceStyle(style_value)],
        sign_off=style.sign_off,
        method=facts,
        letter_version=number,
        letter_sha256=letter_sha256,
        verify_url=verify_url,
        draft=draft,
        evidence=tuple(
            (str(link.get("title") or link.get("url") or ""), str(link.get("url") or ""))
            for link in content.get("evidence_links") or []
            if isinstance(link, dict)
        ),
        lead_signatories=lines(content.get("lead_signatories")),
        organisations=lines(content.get("signing_organisations")),
        meeting_purpose=str(content.get("meeting_purpose") or "") if is_meeting else "",
        meeting_attendees=lines(content.get("meeting_attendees")) if is_meeting else (),
        meeting_slots=_slots(content) if is_meeting else (),
        keywords=tuple(keywords),
        author=collective.name,
    )
    branding = letter_branding(session, collective.id)
    if branding is not None:  # the collective's logo and colours (Supporter features)
        doc = replace(
            doc,
            logo=branding.logo or b"",
            logo_type=branding.logo_type if branding.logo else "",
            primary_colour=branding.primary_colour,
            accent_colour=branding.accent_colour,
        )
    return LetterInputs(
        doc=doc,
        signatories=signatory_list,
        voices=voice_list,
        letter_version_id=version.id if version is not None else None,
    )


# --- the cache key ---------------------------------------------------------------------


def inputs_hash(inputs: LetterInputs) -> str:
    """SHA-256 (hex) of everything the PDF shows: the letter, annex C, every signatory and
    every voice, as sorted-key JSON. Equal inputs, equal hash; any visible change (a name,
    a place, a count, a date, a word) changes it. `letter_version_id` is not rendered and
    not hashed."""
    digest = hashlib.sha256()
    digest.update(HASH_FORMAT.encode())
    values = asdict(inputs.doc)
    values["logo"] = hashlib.sha256(inputs.doc.logo).hexdigest() if inputs.doc.logo else ""
    doc = json.dumps(values, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest.update(b"\ndoc:")
    digest.update(doc.encode())
    # Lists as [name, place] arrays: one C-speed dump, a few MB for 100,000 signatories.
    digest.update(b"\nsignatories:")
    digest.update(
        json.dumps(
            [[s.name, s.place] for s in inputs.signatories],
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
    )
    digest.update(b"\nvoices:")
    digest.update(
        json.dumps(
            [[v.text, v.count, v.name] for v in inputs.voices],
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
    )
    return digest.hexdigest()
