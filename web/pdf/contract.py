"""The plain-Python data a letter is rendered from: no ORM objects cross this line.

`web.pdf.context` builds these from the database; `web.pdf.engine` renders them. Every
string here is plain text (the templates escape it) except `LetterDoc.body_html`, which is
the campaign's Markdown already rendered and sanitised by `web.campaigns.markdown`.
Dates are already formatted for people ("25 November 2026").
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Party:
    """A sender or a recipient block."""

    name: str
    role: str = ""
    organisation: str = ""
    address_lines: tuple[str, ...] = ()
    email: str = ""


@dataclass(frozen=True)
class Slot:
    """A proposed meeting slot, as a person reads it ("Tuesday 3 March 2026, 10:00-11:00")."""

    when: str
    note: str = ""


@dataclass(frozen=True)
class Signatory:
    """One verified signature in annex A."""

    name: str
    place: str = ""  # town or region, "" when unknown


@dataclass(frozen=True)
class Voice:
    """One distinct statement in annex B: near-duplicates are shown once with their count."""

    text: str
    count: int = 1  # statements in this group, this one included
    name: str = ""  # "" unless the signer consented to show their name


@dataclass(frozen=True)
class MethodFacts:
    """Annex C: how signatures were collected and verified."""

    verified_total: int
    by_method: tuple[tuple[str, int], ...] = ()  # ("Online", 1234), ("Assisted", 12), ("Paper", 40)
    # (label, count, why): ("Waiting for email confirmation", 10, "not counted until confirmed")
    by_status: tuple[tuple[str, int, str], ...] = ()
    statements_total: int = 0  # approved statements shown in annex B
    distinct_statements: int = 0  # after near-duplicate grouping
    regions: tuple[tuple[str, int], ...] = ()  # ("Wales", 120), largest first
    first_signed: str = ""  # date of the first verified signature
    last_signed: str = ""
    letter_sha256: str = ""
    verify_url: str = ""


@dataclass(frozen=True)
class LetterDoc:
    """Everything in the letter and annex C. Annexes A and B are passed separately, as
    sequences, because they can hold 100,000 rows."""

    reference: str  # CH-<collective>-<campaign>-v<version>
    title: str
    subject: str
    date: str
    kind: str  # "open_letter" | "meeting_request"
    audience_style: str
    sender: Party
    recipient: Party
    salutation: str
    summary: str
    body_html: str  # sanitised HTML from web.campaigns.markdown
    asks: tuple[str, ...]
    closing: str
    sign_off: str
    method: MethodFacts
    letter_version: int = 1
    letter_sha256: str = ""
    verify_url: str = ""
    lang: str = "en-GB"
    draft: bool = False  # watermark every page "DRAFT"
    evidence: tuple[tuple[str, str], ...] = ()  # (title, url)
    lead_signatories: tuple[str, ...] = ()  # "Name, role"
    organisations: tuple[str, ...] = ()
    meeting_purpose: str = ""
    meeting_attendees: tuple[str, ...] = ()
    meeting_slots: tuple[Slot, ...] = ()
    keywords: tuple[str, ...] = field(default_factory=tuple)
    author: str = ""  # PDF metadata author: the collective's name
    # The collective's branding (Supporter features; web.billing.services.letter_branding):
    # the logo as PNG or JPEG bytes, already re-encoded by Pillow, and "#rrggbb" colours.
    # Empty when the collective has none; the renderer re-checks all four.
    logo: bytes = b""
    logo_type: str = ""  # "image/png" | "image/jpeg"
    primary_colour: str = ""
    accent_colour: str = ""
