"""Assisted and paper signatures: recorded by an organiser on someone's behalf.

Two ways in, one set of rules:
- `record_assisted_signature`: a helper took someone's signature by phone, in person or
  on a paper form, and an owner or organiser types it in, confirming that the person
  consented. It counts at once.
- `import_paper_signatures`: a CSV file of paper forms, imported in one transaction.
  Valid rows become signatures; every other row is listed in the import's report with
  its line number and reason (invalid, or a duplicate of an earlier line or of someone
  who has already signed). Nothing is dropped silently, and importing the same file
  again adds nothing: every row is then a duplicate.

Offline signatures are verified when recorded (the helper's confirmation of consent
stands in for the email round trip), bound to the latest letter version, and added to
the public count. An email address is optional; a row without one is keyed on the
signer's normalised name and postcode (`offline_key`), so the same person on the same
campaign is still one signature. Two different people with the same name and no
postcode therefore count once: the report says so, and an email address or postcode
tells them apart.

They can be added while the campaign is collecting and after it has closed, until the
letter is delivered: paper forms and phone calls collected before the closing date
often reach the organisers later. Once delivered, the numbers in the letter are fixed.

Like every service, these only flush; the request commits. No email is sent.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Select, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from web import tokens
from web.accounts.models import User
from web.campaigns.models import Campaign, CampaignState
from web.campaigns.services import current_version
from web.collectives.models import Membership, Role
from web.collectives.services import require_role
from web.db import utcnow
from web.forms import BIDI_CONTROLS
from web.signatures.models import (
    CollectionChannel,
    Signature,
    SignatureImport,
    SignatureMethod,
    SignatureStatus,
)
from web.signatures.services import (
    MAX_STATEMENT,
    POSTCODE_RE,
    _add_to_count,
    canonical_email,
    is_disposable,
    normalise_postcode,
)

# Paper forms posted in after the closing date still count, until the letter is sent.
OPEN_STATES = frozenset({CampaignState.COLLECTING.value, CampaignState.CLOSED.value})
OFFLINE_PREFIX = "offline:"
MAX_NAME = 120
MAX_EMAIL = 254
MAX_HELPER = 120
MAX_FILE_NAME = 255
# Werkzeug refuses a request body above the app's MAX_CONTENT_LENGTH (2 MiB) first; this
# is the same limit for the file itself, for callers that do not go through a request.
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_ROWS = 5000
INSERT_CHUNK = 500  # rows per INSERT: far below PostgreSQL's 65,535 parameters

CHANNEL_METHODS = {
    CollectionChannel.PHONE.value: SignatureMethod.ASSISTED.value,
    CollectionChannel.IN_PERSON.value: SignatureMethod.ASSISTED.value,
    CollectionChannel.PAPER.value: SignatureMethod.PAPER.value,
}


# --- columns of the CSV file ---------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    required: bool
    meaning: str
    example: str


COLUMNS: tuple[Column, ...] = (
    Column("name", True, "The signer's name, as written on the form.", "Amina Okafor"),
    Column(
        "email",
        False,
        "Their email address, if they gave one. Leave empty if not.",
        "amina@example.org",
    ),
    Column(
        "postcode",
        False,
        "Their UK postcode, like SW1A 1AA. Required if the campaign asks every signer for one.",
        "M1 1AE",
    ),
    Column(
        "statement",
        False,
        "Their own words, if the form has them and the campaign collects them (up to "
        "2,000 characters).",
        "I rely on PIP to get to work.",
    ),
    Column(
        "show_name",
        False,
        "“yes” if they ticked “show my name on the campaign page”; empty or “no” if not.",
        "yes",
    ),
    Column(
        "wants_updates",
        False,
        "“yes” if they asked for updates by email (needs an email address); empty or “no” if not.",
        "no",
    ),
)
COLUMN_NAMES = tuple(c.name for c in COLUMNS)
# Headings people write for the same columns.
ALIASES = {
    "full_name": "name",
    "email_address": "email",
    "e_mail": "email",
    "post_code": "postcode",
    "own_words": "statement",
    "in_your_own_words": "statement",
    "show_my_name": "show_name",
    "updates": "wants_updates",
    "send_updates": "wants_updates",
}
YES = frozenset({"yes", "y", "true", "1", "x", "✓", "✔"})
NO = frozenset({"", "no", "n", "false", "0"})


def template_csv() -> str:
    """The downloadable template: the header line and one example row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMN_NAMES)
    writer.writerow([c.example for c in COLUMNS])
    return out.getvalue()


# --- validation ----------------------------------------------------------------------


class OfflineError(ValueError):
    """The organiser must fix something; `field` names the form field or CSV column."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class AlreadySigned(OfflineError):
    """This person has already signed the campaign; nothing was recorded."""


class ImportRefused(ValueError):
    """The file as a whole cannot be read; nothing was imported. `status` is the HTTP
    status that fits (413 too large, 422 otherwise)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Entry:
    """One signer's details, cleaned and checked."""

    name: str
    email: str
    email_canonical: str
    postcode: str
    statement: str
    show_name: bool
    wants_updates: bool


def normalise_name(name: str) -> str:
    """Case, width, accents' composition and spacing folded, so "  Amina  OKAFOR" and
    "amina okafor" are the same person."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def offline_key(name: str, postcode: str) -> str:
    """The `email_canonical` of a signature without an email address: deterministic, so
    the same person (name and postcode) on the same campaign is one signature."""
    compact = re.sub(r"\s+", "", postcode.upper())
    digest = hashlib.sha256(f"{normalise_name(name)}\n{compact}".encode()).hexdigest()
    return OFFLINE_PREFIX + digest


def _one_line(value: str, field: str, what: str) -> None:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise OfflineError(field, f"Remove the line breaks and control characters from {what}.")
    if any(ch in BIDI_CONTROLS for ch in value):
        raise OfflineError(field, f"Remove the invisible text-direction characters from {what}.")


def check_open(campaign: Campaign) -> None:
    """Raise OfflineError unless signatures may be added to the campaign now."""
    if campaign.state in OPEN_STATES:
        return
    if campaign.state in (CampaignState.DRAFT.value, CampaignState.IN_REVIEW.value):
        raise OfflineError(
            "",
            "This campaign is not published yet. You can add signatures once it is "
            "collecting them.",
        )
    raise OfflineError(
        "",
        "The letter has been delivered, so its numbers are fixed: no more signatures can "
        "be added to this campaign.",
    )


def clean_entry(
    campaign: Campaign,
    *,
    name: str,
    email: str = "",
    postcode: str = "",
    statement: str = "",
    show_name: bool = False,
    wants_updates: bool = False,
) -> Entry:
    """The same checks as the public signing form, worded for the organiser, with an
    optional email address. Raises OfflineError naming the field."""
    name = name.strip()
    if not name:
        raise OfflineError("name", "Enter the signer’s name.")
    if len(name) > MAX_NAME:
        raise OfflineError("name", f"The name must be {MAX_NAME} characters or fewer.")
    _one_line(name, "name", "the name")

    email = email.strip()
    canonical = ""
    if email:
        if len(email) > MAX_EMAIL:
            raise OfflineError(
                "email", f"The email address must be {MAX_EMAIL} characters or fewer."
            )
        try:
            validate_email(email, check_deliverability=False)
        except EmailNotValidError:
            raise OfflineError(
                "email",
                "Enter the email address in the correct format, like name@example.org, or "
                "leave it empty.",
            ) from None
        if is_disposable(email):
            raise OfflineError(
                "email",
                "This is an address from a disposable email service, which we do not "
                "accept. Ask for an address they will keep, or leave it empty.",
            )
        canonical = canonical_email(email)
    elif wants_updates:
        raise OfflineError(
            "wants_updates",
            "Updates go by email: add the signer’s email address, or do not ask for updates.",
        )

    postcode = postcode.strip()
    _one_line(postcode, "postcode", "the postcode")
    postcode = normalise_postcode(postcode) if postcode else ""
    if campaign.postcode_mode == "required" and not postcode:
        raise OfflineError("postcode", "Enter the signer’s postcode: this campaign asks for one.")
    if postcode and not POSTCODE_RE.match(postcode):
        raise OfflineError("postcode", "Enter a UK postcode, like SW1A 1AA.")
    if campaign.postcode_mode == "off":
        postcode = ""

    statement = statement.strip() if campaign.statements_enabled else ""
    if len(statement) > MAX_STATEMENT:
        raise OfflineError(
            "statement", f"Keep the own words to {MAX_STATEMENT:,} characters or fewer."
        )
    return Entry(
        name=name,
        email=email,
        email_canonical=canonical or offline_key(name, postcode),
        postcode=postcode,
        statement=statement,
        show_name=show_name,
        wants_updates=wants_updates and bool(email),
    )


def clean_helper_name(helper_name: str, *, required: bool) -> str:
    helper_name = helper_name.strip()
    if required and not helper_name:
        raise OfflineError("helper_name", "Enter the name of the person who took the signature.")
    if len(helper_name) > MAX_HELPER:
        raise OfflineError(
            "helper_name", f"The helper’s name must be {MAX_HELPER} characters or fewer."
        )
    _one_line(helper_name, "helper_name", "the helper’s name")
    return helper_name


def _row_values(
    campaign: Campaign,
    entry: Entry,
    *,
    version_id: int,
    channel: str,
    helper_name: str,
    recorded_by_id: int,
    import_id: int | None,
) -> dict[str, Any]:
    now = utcnow()
    return {
        "collective_id": campaign.collective_id,
        "campaign_id": campaign.id,
        "letter_version_id": version_id,
        "name": entry.name,
        "email": entry.email,
        "email_canonical": entry.email_canonical,
        "postcode": entry.postcode,
        "statement": entry.statement,
        "show_name": entry.show_name,
        "wants_updates": entry.wants_updates,
        "method": CHANNEL_METHODS[channel],
        "channel": channel,
        "status": SignatureStatus.VERIFIED.value,
        "verified_at": now,
        "consent_confirmed_at": now,
        "helper_name": helper_name,
        "recorded_by_id": recorded_by_id,
        "import_id": import_id,
        # No link is ever sent for this signature: a secret nobody knows.
        "secret_hash": tokens.new_secret()[1],
        "confirmations_sent": 0,
        "ip_hash": "",
    }


def _version_id(session: Session, campaign: Campaign) -> int:
    version = current_version(session, campaign)
    if version is None:
        raise OfflineError("", "This campaign is not published yet.")
    return version.id


# --- one signature ---------------------------------------------------------------------


def record_assisted_signature(
    session: Session,
    actor: Membership,
    campaign: Campaign,
    *,
    channel: str,
    helper_name: str,
    consent: bool,
    name: str,
    email: str = "",
    postcode: str = "",
    statement: str = "",
    show_name: bool = False,
    wants_updates: bool = False,
) -> Signature:
    """Record one signature taken by a helper, verified and counted at once.

    Owners and organisers only (PermissionError otherwise). Raises OfflineError for
    anything to fix, and AlreadySigned (creating nothing) if the email address, or for a
    signer without one their name and postcode, has already signed this campaign.
    """
    require_role(actor, Role.OWNER, Role.ORGANISER)
    check_open(campaign)
    if channel not in CHANNEL_METHODS:
        raise OfflineError("channel", "Choose how the signature was taken.")
    helper_name = clean_helper_name(helper_name, required=True)
    entry = clean_entry(
        campaign,
        name=name,
        email=email,
        postcode=postcode,
        statement=statement,
        show_name=show_name,
        wants_updates=wants_updates,
    )
    if not consent:
        raise OfflineError(
            "consent",
            "Confirm that the person agreed to sign this letter. If they did not, do not "
            "record a signature for them.",
        )
    values = _row_values(
        campaign,
        entry,
        version_id=_version_id(session, campaign),
        channel=channel,
        helper_name=helper_name,
        recorded_by_id=actor.user_id,
        import_id=None,
    )
    # Two organisers typing in the same person race here: the unique index lets one in.
    signature = session.scalars(
        insert(Signature)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["campaign_id", "email_canonical"])
        .returning(Signature)
    ).first()
    if signature is None:
        if entry.email:
            raise AlreadySigned(
                "email",
                "This email address has already signed this campaign, so nothing was "
                "recorded. Each person can sign once.",
            )
        raise AlreadySigned(
            "name",
            "Someone with this name and postcode has already signed this campaign, so "
            "nothing was recorded. If this is a different person, add their email address "
            "or postcode to tell them apart.",
        )
    _add_to_count(session, campaign, 1)
    return signature


# --- a CSV file of paper signatures -------------------------------------------------------


@dataclass
class _Report:
    entries: list[dict[str, Any]] = field(default_factory=list)
    invalid: int = 0
    duplicates: int = 0
    blank: int = 0

    def add_invalid(self, line: int, column: str, reason: str) -> None:
        self.invalid += 1
        self.entries.append({"line": line, "kind": "invalid", "column": column, "reason": reason})

    def add_duplicate(self, line: int, reason: str) -> None:
        self.duplicates += 1
        self.entries.append({"line": line, "kind": "duplicate", "column": "", "reason": reason})


SAVE_AS_CSV = (
    "Save it from your spreadsheet as “CSV UTF-8” (in Excel: File, Save a copy, then "
    "choose CSV UTF-8) and upload it again."
)


def _decode(data: bytes) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise ImportRefused(
            f"The file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB. Split it into "
            "smaller files and import each one; importing the same rows twice adds nothing.",
            413,
        )
    if not data.strip():
        raise ImportRefused("The file is empty. Choose the CSV file with the signatures.")
    if b"\x00" in data:
        raise ImportRefused(
            "This is not a CSV text file: it contains binary data (it may be a spreadsheet, "
            "a PDF, or text saved as UTF-16). " + SAVE_AS_CSV
        )
    try:
        return data.decode("utf-8-sig")  # a byte order mark, as Excel writes, is dropped
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportRefused(
            f"Line {line:,} of the file is not valid UTF-8 text, so nothing was imported. "
            + SAVE_AS_CSV
        ) from None


def _delimiter(text: str) -> str:
    """Comma, or the semicolon or tab some spreadsheets write, judged by the header."""
    header = text.split("\n", 1)[0]
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _heading(raw: str) -> str:
    key = re.sub(r"[\s\-]+", "_", raw.strip().lower())
    return ALIASES.get(key, key)


def _header(row: list[str], campaign: Campaign) -> tuple[dict[str, int], list[str]]:
    """Column name -> position, and the headings that are not ours (ignored, and said so)."""
    positions: dict[str, int] = {}
    ignored: list[str] = []
    for i, raw in enumerate(row):
        name = _heading(raw)
        if not name:
            continue
        if name in positions:
            raise ImportRefused(
                f"The column “{name}” appears twice in the first line. Keep one of them and "
                "upload the file again."
            )
        if name in COLUMN_NAMES:
            positions[name] = i
        else:
            ignored.append(raw.strip()[:60])
    if "name" not in positions:
        found = ", ".join(f"“{h.strip()[:40]}”" for h in row[:6] if h.strip()) or "nothing"
        raise ImportRefused(
            "The first line of the file must name the columns, and one of them must be "
            f"“name”. We found {found}. Download the template to see the expected columns."
        )
    if campaign.postcode_mode == "required" and "postcode" not in positions:
        raise ImportRefused(
            "This campaign asks every signer for a postcode, but the file has no “postcode” "
            "column. Add it (see the template) and upload the file again."
        )
    return positions, ignored


def _flag(value: str, column: str) -> bool:
    word = value.strip().lower()
    if word in YES:
        return True
    if word in NO:
        return False
    raise OfflineError(column, f"Write “yes” or “no” in the {column} column (or leave it empty).")


def _records(text: str) -> list[tuple[int, list[str]]]:
    """(first line number, cells) of every record; a record may span lines (a quoted
    cell with line breaks). Raises ImportRefused if the CSV structure is broken."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text), strict=True)
    records: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for row in reader:
            records.append((start, row))
            start = reader.line_num + 1
            if len(records) > MAX_ROWS + 1:
                raise ImportRefused(
                    f"The file has more than {MAX_ROWS:,} rows. Split it into smaller files "
                    "and import each one; importing the same rows twice adds nothing."
                )
    except csv.Error:
        raise ImportRefused(
            f"Line {start:,} cannot be read as CSV: a quotation mark or a very long cell is "
            "out of place there, so nothing was imported. Check that line, or save the file "
            "again from your spreadsheet as CSV UTF-8."
        ) from None
    return records


@dataclass(frozen=True)
class ImportPreview:
    """What an import found in the file: the rows to insert and the report so far."""

    valid: list[tuple[int, Entry]]
    report: _Report
    ignored_columns: list[str]


def _read_rows(campaign: Campaign, text: str) -> ImportPreview:
    records = _records(text)
    if not records:
        raise ImportRefused("The file is empty. Choose the CSV file with the signatures.")
    positions, ignored = _header(records[0][1], campaign)
    if not any(any(c.strip() for c in cells) for _, cells in records[1:]):
        raise ImportRefused(
            "The file has the column names but no signatures below them. Add one row per "
            "signer under the first line."
        )
    width = len(records[0][1])
    report = _Report()
    valid: list[tuple[int, Entry]] = []
    seen: dict[str, int] = {}
    for line, cells in records[1:]:
        if not any(c.strip() for c in cells):
            report.blank += 1
            continue
        if len(cells) > width and any(c.strip() for c in cells[width:]):
            report.add_invalid(
                line,
                "",
                f"This row has {len(cells)} cells but the first line names {width} columns. "
                "Look for a stray comma, or a cell that needs quotation marks.",
            )
            continue

        def cell(column: str, cells: list[str] = cells) -> str:
            i = positions.get(column)
            return cells[i] if i is not None and i < len(cells) else ""

        try:
            entry = clean_entry(
                campaign,
                name=cell("name"),
                email=cell("email"),
                postcode=cell("postcode"),
                statement=cell("statement"),
                show_name=_flag(cell("show_name"), "show_name"),
                wants_updates=_flag(cell("wants_updates"), "wants_updates"),
            )
        except OfflineError as exc:
            report.add_invalid(line, exc.field, str(exc))
            continue
        earlier = seen.get(entry.email_canonical)
        if earlier is not None:
            same = "email address" if entry.email else "name and postcode"
            report.add_duplicate(
                line, f"The same person as on line {earlier:,} (the same {same}): counted once."
            )
            continue
        seen[entry.email_canonical] = line
        valid.append((line, entry))
    return ImportPreview(valid, report, ignored)


def import_paper_signatures(
    session: Session,
    actor: Membership,
    campaign: Campaign,
    *,
    file_name: str,
    data: bytes,
    helper_name: str = "",
    consent: bool,
) -> SignatureImport:
    """Import a CSV file of paper signatures in one go and keep its report.

    Owners and organisers only (PermissionError). A file that cannot be read at all
    raises ImportRefused, and an unconfirmed consent or bad helper name OfflineError:
    nothing is written. Otherwise every row ends up imported, invalid or duplicate, and
    the returned SignatureImport says which. Idempotent in effect: the same rows again
    are all duplicates. The public count grows by exactly the rows imported.
    """
    require_role(actor, Role.OWNER, Role.ORGANISER)
    check_open(campaign)
    helper_name = clean_helper_name(helper_name, required=False)
    if not consent:
        raise OfflineError(
            "consent",
            "Confirm that every person in the file signed a paper form themselves.",
        )
    preview = _read_rows(campaign, _decode(data))
    version_id = _version_id(session, campaign)
    record = SignatureImport(
        collective_id=campaign.collective_id,
        campaign_id=campaign.id,
        imported_by_id=actor.user_id,
        file_name=_file_name(file_name),
        sha256=hashlib.sha256(data).hexdigest(),
        helper_name=helper_name,
    )
    session.add(record)
    session.flush()

    report = preview.report
    inserted: set[str] = set()
    for start in range(0, len(preview.valid), INSERT_CHUNK):
        chunk = preview.valid[start : start + INSERT_CHUNK]
        rows = [
            _row_values(
                campaign,
                entry,
                version_id=version_id,
                channel=CollectionChannel.PAPER.value,
                helper_name=helper_name,
                recorded_by_id=actor.user_id,
                import_id=record.id,
            )
            for _, entry in chunk
        ]
        inserted.update(
            session.scalars(
                insert(Signature)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["campaign_id", "email_canonical"])
                .returning(Signature.email_canonical)
            )
        )
    for line, entry in preview.valid:
        if entry.email_canonical not in inserted:
            same = "email address" if entry.email else "name and postcode"
            report.add_duplicate(
                line,
                f"Someone with the same {same} has already signed this campaign (online, "
                "recorded by a helper, or in an earlier import): counted once.",
            )
    if inserted:
        _add_to_count(session, campaign, len(inserted))
    report.entries.sort(key=lambda e: (e["line"], e["kind"]))
    record.imported_count = len(inserted)
    record.duplicate_count = report.duplicates
    record.invalid_count = report.invalid
    record.report = [
        *report.entries,
        *(
            [{"line": 0, "kind": "note", "column": "", "reason": _ignored_note(preview)}]
            if preview.ignored_columns or report.blank
            else []
        ),
    ]
    session.flush()
    return record


def _ignored_note(preview: ImportPreview) -> str:
    parts = []
    if preview.ignored_columns:
        names = ", ".join(f"“{c}”" for c in preview.ignored_columns)
        parts.append(f"These columns are not ones we import and were left out: {names}.")
    if preview.report.blank:
        n = preview.report.blank
        parts.append(f"{n:,} empty row{'s were' if n != 1 else ' was'} skipped.")
    return " ".join(parts)


def _file_name(raw: str) -> str:
    """The name the browser sent, without any folder, control characters or excess."""
    name = re.split(r"[\\/]", raw or "")[-1]
    name = "".join(ch for ch in name if ord(ch) >= 32 and ch not in BIDI_CONTROLS).strip()
    return (name or "signatures.csv")[:MAX_FILE_NAME]


# --- reading imports and counts ----------------------------------------------------------

IMPORTS_PAGE_SIZE = 50


@dataclass(frozen=True)
class ImportsPage:
    imports: list[SignatureImport]
    page: int  # 1-based, clamped to the pages there are
    pages: int
    total: int


def list_imports(
    session: Session, campaign: Campaign, page: int = 1, per_page: int = IMPORTS_PAGE_SIZE
) -> ImportsPage:
    """One page of the campaign's imports, newest first."""
    where = SignatureImport.campaign_id == campaign.id
    total = int(session.scalar(select(func.count()).select_from(SignatureImport).where(where)) or 0)
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    rows = session.scalars(
        select(SignatureImport)
        .where(where)
        .order_by(SignatureImport.created_at.desc(), SignatureImport.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return ImportsPage(list(rows), page, pages, total)


def importer_name(session: Session, record: SignatureImport) -> str:
    """The display name of who imported the file ("" if their account is gone)."""
    if record.imported_by_id is None:
        return ""
    user = session.get(User, record.imported_by_id)
    return user.display_name if user else ""


def get_import(session: Session, campaign: Campaign, import_id: int) -> SignatureImport | None:
    return session.scalar(
        select(SignatureImport).where(
            SignatureImport.id == import_id, SignatureImport.campaign_id == campaign.id
        )
    )


def earlier_imports_of_same_file(
    session: Session, record: SignatureImport
) -> list[SignatureImport]:
    """Imports of a byte-identical file before this one (their rows came back as
    duplicates this time)."""
    return list(
        session.scalars(
            select(SignatureImport)
            .where(
                SignatureImport.campaign_id == record.campaign_id,
                SignatureImport.sha256 == record.sha256,
                SignatureImport.id < record.id,
            )
            .order_by(SignatureImport.id)
        )
    )


def offline_counts_query(campaign_id: int) -> Select[str, str, int]:
    """Counted (verified, current) assisted and paper signatures by method and channel."""
    return (
        select(Signature.method, Signature.channel, func.count())
        .where(
            Signature.campaign_id == campaign_id,
            # Literals, so the planner can match the partial index ix_signatures_offline
            # (a bound parameter cannot prove its predicate in a generic plan).
            Signature.method != literal_column("'online'"),
            Signature.status == literal_column("'verified'"),
            Signature.needs_reconsent.is_(False),
        )
        .group_by(Signature.method, Signature.channel)
    )


def counted_offline(session: Session, campaign: Campaign) -> dict[str, int]:
    """Counted assisted and paper signatures by how they were collected: "paper",
    "phone", "in_person", and "assisted" for assisted ones recorded without a channel.
    One GROUP BY over the partial index of offline rows, so it costs the same however
    many people signed online."""
    counts: dict[str, int] = {}
    for method, channel, n in session.execute(offline_counts_query(campaign.id)):
        key = channel or method
        counts[key] = counts.get(key, 0) + int(n)
    return counts


OFFLINE_PHRASES = (
    ("paper", "on paper"),
    ("phone", "by phone"),
    ("in_person", "in person"),
    ("assisted", "with a helper"),
)


def describe_offline(counts: dict[str, int]) -> str:
    """ "40 on paper and 12 by phone" (or "" when every signature was made online)."""
    parts = [f"{counts[key]:,} {phrase}" for key, phrase in OFFLINE_PHRASES if counts.get(key)]
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]
