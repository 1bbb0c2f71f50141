"""Recipients: the shared directory of departments, each collective's own recipients, and
routing help (which department should read this letter?).

Services flush and never commit. Every rule is checked here, whatever the path (web
form, the `recipients import` command, the demo seed), and broken rules raise
`RecipientError` with a message a person can act on; the views only translate it.

The directory (rows with collective_id NULL) is written only inside `system_scope`:
row-level security lets every collective read those rows but no collective change them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import ColumnElement, func, literal_column, or_, select, text
from sqlalchemy.orm import Session

from web.accounts.models import User
from web.campaigns.models import Campaign
from web.collectives.models import Membership, Role
from web.collectives.services import require_role, slugify
from web.recipients.models import Nation, Recipient, RecipientKind
from web.tenancy import current_collective_id, system_scope

DIRECTORY_FILE = Path(__file__).resolve().parent.parent / "data" / "uk_departments.json"

DIRECTORY_KINDS = (RecipientKind.MINISTERIAL_DEPARTMENT, RecipientKind.DEVOLVED_GOVERNMENT)
COLLECTIVE_KINDS = (
    RecipientKind.COUNCIL,
    RecipientKind.MP,
    RecipientKind.REGULATOR,
    RecipientKind.COMPANY,
    RecipientKind.OTHER,
)

# The fields a recipient carries besides its key, in the order forms and files list them.
FIELDS = (
    "kind",
    "name",
    "short_name",
    "postal_address",
    "website",
    "remit_keywords",
    "ack_target_days",
    "reply_target_days",
    "nation",
    "email_domains",
    "correspondence_email",
    "escalation_email",
)
# A directory file must spell out every one of these (empty when unknown), so that an
# omission is a visible decision rather than a silent default.
REQUIRED_FILE_FIELDS = ("key", *FIELDS[:-1])

MAX_KEYWORDS = 40
MAX_KEYWORD_LENGTH = 60
MAX_DOMAINS = 10
MAX_DAYS = 365
KEY_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?$")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
WEBSITE_RE = re.compile(r"^https?://[^\s/?#]+\.[^\s/?#]+(?:[/?#]\S*)?$")

LABELS = {
    "key": "key",
    "kind": "kind",
    "name": "name",
    "short_name": "short name",
    "postal_address": "postal address",
    "website": "website",
    "remit_keywords": "topics",
    "ack_target_days": "acknowledgement target",
    "reply_target_days": "reply target",
    "nation": "nation",
    "email_domains": "email domains",
    "correspondence_email": "correspondence email",
    "escalation_email": "escalation email",
}


class RecipientError(ValueError):
    """A rule was broken; the message is safe to show. `field` names the culprit."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFoundError(LookupError):
    """No such recipient visible to the current collective (the view answers 404)."""


# --- validation ------------------------------------------------------------------------


# Text-direction controls let a name display as something else (spoofing); names and
# topics in right-to-left scripts never need them (the same rule as web.forms).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def _has_control_characters(value: str, *, allow_newlines: bool = False) -> bool:
    allowed = "\n" if allow_newlines else ""
    return any(
        ((ord(ch) < 32 or ord(ch) == 127) and ch not in allowed) or ch in BIDI_CONTROLS
        for ch in value
    )


def _text(
    values: Mapping[str, Any],
    name: str,
    *,
    max_length: int,
    required: bool = False,
    multiline: bool = False,
) -> str:
    raw = values.get(name, "")
    if raw is None:
        raw = ""
    if not isinstance(raw, str):
        raise RecipientError(f"The {LABELS[name]} must be text.", name)
    value = raw.replace("\r\n", "\n").replace("\r", "\n") if multiline else raw
    if multiline:
        value = "\n".join(line.strip() for line in value.strip().split("\n"))
    else:
        value = value.strip()
    if required and not value:
        raise RecipientError(f"Enter a {LABELS[name]}.", name)
    if len(value) > max_length:
        raise RecipientError(f"The {LABELS[name]} must be {max_length} characters or fewer.", name)
    if _has_control_characters(value, allow_newlines=multiline):
        what = "" if multiline else "line breaks and "
        raise RecipientError(
            f"Remove the {what}invisible control characters from the {LABELS[name]}.", name
        )
    return value


def _word_list(values: Mapping[str, Any], name: str) -> list[str]:
    raw = values.get(name, [])
    if raw is None:
        raw = []
    if isinstance(raw, str) or not isinstance(raw, Sequence):
        raise RecipientError(f"The {LABELS[name]} must be a list.", name)
    words: list[str] = []
    for item in raw:
        if not isinstance(item, str):
            raise RecipientError(f"Every one of the {LABELS[name]} must be text.", name)
        word = " ".join(item.split()).lower()
        if word and word not in words:
            words.append(word)
    return words


def _keywords(values: Mapping[str, Any]) -> list[str]:
    keywords = _word_list(values, "remit_keywords")
    if len(keywords) > MAX_KEYWORDS:
        raise RecipientError(f"Give at most {MAX_KEYWORDS} topics.", "remit_keywords")
    for keyword in keywords:
        if len(keyword) > MAX_KEYWORD_LENGTH:
            raise RecipientError(
                f"Each topic must be {MAX_KEYWORD_LENGTH} characters or fewer "
                f"(“{keyword[:20]}…” is longer).",
                "remit_keywords",
            )
        if "," in keyword or _has_control_characters(keyword):
            raise RecipientError(
                "Topics cannot contain commas or invisible control characters.",
                "remit_keywords",
            )
    return keywords


def _domains(values: Mapping[str, Any]) -> list[str]:
    domains = _word_list(values, "email_domains")
    if len(domains) > MAX_DOMAINS:
        raise RecipientError(f"Give at most {MAX_DOMAINS} email domains.", "email_domains")
    for domain in domains:
        if not DOMAIN_RE.match(domain):
            raise RecipientError(
                f"“{domain[:60]}” is not an email domain. Write it like dwp.gov.uk, "
                "without @ or https://.",
                "email_domains",
            )
    return domains


def _email(values: Mapping[str, Any], name: str) -> str:
    value = _text(values, name, max_length=254)
    if not value:
        return ""
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError:
        raise RecipientError(
            f"Enter the {LABELS[name]} in the correct format, like name@example.org.", name
        ) from None
    return f"{checked.local_part}@{checked.domain.lower()}"


def _days(values: Mapping[str, Any], name: str, default: int) -> int:
    raw = values.get(name, default)
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_DAYS:
        raise RecipientError(
            f"The {LABELS[name]} must be a whole number of working days from 1 to {MAX_DAYS}.",
            name,
        )
    return raw


def _choice(values: Mapping[str, Any], name: str, allowed: Iterable[str]) -> str:
    options = [str(a) for a in allowed]
    raw = values.get(name)
    if not isinstance(raw, str) or raw not in options:
        raise RecipientError(f"Choose the {LABELS[name]}: one of {', '.join(options)}.", name)
    return raw


def clean_recipient(values: Mapping[str, Any], *, directory: bool) -> dict[str, Any]:
    """Validate and normalise every field of a recipient (not its key).

    Directory entries must be a department or devolved government, and a
    correspondence email there must belong to one of the entry's email domains (the
    directory never carries an address that is not visibly the department's own).
    """
    kinds = DIRECTORY_KINDS if directory else COLLECTIVE_KINDS
    cleaned: dict[str, Any] = {
        "kind": _choice(values, "kind", kinds),
        "name": _text(values, "name", max_length=200, required=True),
        "short_name": _text(values, "short_name", max_length=60),
        "postal_address": _text(values, "postal_address", max_length=1000, multiline=True),
        "website": _text(values, "website", max_length=300),
        "remit_keywords": _keywords(values),
        "ack_target_days": _days(values, "ack_target_days", 5),
        "reply_target_days": _days(values, "reply_target_days", 20),
        "nation": _choice(values, "nation", Nation),
        "email_domains": _domains(values),
        "correspondence_email": _email(values, "correspondence_email"),
        "escalation_email": _email(values, "escalation_email"),
    }
    if cleaned["website"] and not WEBSITE_RE.match(cleaned["website"]):
        raise RecipientError(
            "Enter the website as a full address starting with https://", "website"
        )
    if cleaned["ack_target_days"] > cleaned["reply_target_days"]:
        raise RecipientError(
            "The acknowledgement target cannot be longer than the reply target.",
            "ack_target_days",
        )
    if directory:
        for name in ("correspondence_email", "escalation_email"):
            email = cleaned[name]
            if email and not _in_domains(email, cleaned["email_domains"]):
                raise RecipientError(
                    f"The {LABELS[name]} {email} is not at one of this department's email "
                    "domains. Add the domain first, or leave the address empty.",
                    name,
                )
    return cleaned


def _in_domains(email: str, domains: Sequence[str]) -> bool:
    host = email.rsplit("@", 1)[-1].lower()
    return any(host == d or host.endswith("." + d) for d in domains)


# --- the directory: import ---------------------------------------------------------------


@dataclass(frozen=True)
class DirectoryEntry:
    key: str
    values: dict[str, Any]


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # Directory entries in the database that the file does not mention: kept as they are
    # (campaigns may point at them); the operator decides what to do with them.
    not_in_file: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text_ = (
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged"
        )
        if self.not_in_file:
            text_ += f"; {len(self.not_in_file)} not in the file, kept: " + ", ".join(
                self.not_in_file
            )
        return text_


def _entry_label(index: int, raw: Any) -> str:
    key = raw.get("key") if isinstance(raw, Mapping) else None
    return f"Entry {index}" + (f" (“{key}”)" if isinstance(key, str) and key else "")


def validate_directory_entries(raw_entries: Any) -> list[DirectoryEntry]:
    """Check every entry of a directory file; the first problem raises `RecipientError`
    naming the entry (1-based, with its key) and the field."""
    if not isinstance(raw_entries, list) or not raw_entries:
        raise RecipientError("The directory must hold a non-empty list of entries.", "entries")
    seen: dict[str, int] = {}
    entries: list[DirectoryEntry] = []
    for index, raw in enumerate(raw_entries, start=1):
        label = _entry_label(index, raw)
        if not isinstance(raw, Mapping):
            raise RecipientError(f"{label} must be an object with named fields.")
        unknown = sorted(set(raw) - {"key", *FIELDS})
        if unknown:
            raise RecipientError(f"{label}: unknown field “{unknown[0]}”.", unknown[0])
        missing = [name for name in REQUIRED_FILE_FIELDS if name not in raw]
        if missing:
            raise RecipientError(
                f'{label}: field “{missing[0]}” is missing (write "" or [] when unknown).',
                missing[0],
            )
        key = raw["key"]
        if not isinstance(key, str) or not KEY_RE.match(key):
            raise RecipientError(
                f"{label}: field “key” must be 1 to 80 lower-case letters, digits and "
                "hyphens, like “dwp”.",
                "key",
            )
        if key in seen:
            raise RecipientError(
                f"{label}: field “key” repeats “{key}” of entry {seen[key]}.", "key"
            )
        seen[key] = index
        try:
            values = clean_recipient(raw, directory=True)
        except RecipientError as exc:
            raise RecipientError(f"{label}, field “{exc.field}”: {exc}", exc.field) from None
        if "escalation_email" not in raw:
            values.pop("escalation_email")  # absent: leave what the operator set alone
        entries.append(DirectoryEntry(key=key, values=values))
    return entries


def read_directory_file(path: Path | str = DIRECTORY_FILE) -> list[DirectoryEntry]:
    """Parse and validate a directory file: {"source": ..., "checked": "YYYY-MM-DD",
    "entries": [...]}. Raises `RecipientError` with a readable message."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RecipientError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipientError(f"Cannot read {path}: {exc}.") from None
    if not isinstance(document, dict):
        raise RecipientError("The directory file must be a JSON object with “entries”.")
    if not isinstance(document.get("source"), str) or not document["source"].strip():
        raise RecipientError("The directory file needs a “source” note saying where it came from.")
    try:
        date.fromisoformat(str(document.get("checked")))
    except ValueError:
        raise RecipientError(
            "The directory file needs a “checked” date, written like 2026-01-31."
        ) from None
    return validate_directory_entries(document.get("entries"))


def _directory_rows(session: Session) -> list[Recipient]:
    return list(
        session.scalars(
            select(Recipient).where(Recipient.collective_id.is_(None)).order_by(Recipient.key),
            execution_options={"all_collectives": True},
        )
    )


def import_directory(
    session: Session,
    entries: Sequence[DirectoryEntry] | Sequence[Mapping[str, Any]],
    *,
    overwrite: bool = True,
) -> ImportReport:
    """Create or update directory entries by key (collective_id NULL). Idempotent: a
    second run with the same entries changes nothing and reports them all unchanged.

    All or nothing: every entry is validated before anything is written, and the writes
    happen in a savepoint. With `overwrite=False` existing entries are left as they are
    (the demo seed uses this, so edits made by the operator survive a restart). Entries
    missing from `entries` are never deleted. Flushes; does not commit.
    """
    valid = [e for e in entries if isinstance(e, DirectoryEntry)]
    if not valid or len(valid) != len(entries):
        valid = validate_directory_entries(list(entries))
    report = ImportReport()
    with system_scope(session), session.begin_nested():
        existing = {row.key: row for row in _directory_rows(session)}
        for entry in valid:
            row = existing.pop(entry.key, None)
            if row is None:
                session.add(Recipient(collective_id=None, key=entry.key, **entry.values))
                report.created.append(entry.key)
            elif overwrite and _apply(row, entry.values):
                report.updated.append(entry.key)
            else:
                report.unchanged.append(entry.key)
        report.not_in_file = sorted(existing)
        session.flush()
    return report


def _apply(row: Recipient, values: Mapping[str, Any]) -> bool:
    """Set `values` on `row`; True if anything changed."""
    changed = False
    for name, value in values.items():
        current = getattr(row, name)
        if isinstance(current, list):
            current = list(current)
        if current != value:
            setattr(row, name, list(value) if isinstance(value, list) else value)
            changed = True
    return changed


# --- the directory: the operator's pages --------------------------------------------------


def _require_platform_admin(actor: User) -> None:
    if not actor.is_platform_admin:
        raise PermissionError("Only the Chorus platform team can change the directory.")


def _search_filter(search: str) -> ColumnElement[bool] | None:
    search = " ".join(search.split())[:200]
    if not search:
        return None
    return or_(
        Recipient.name.icontains(search, autoescape=True),
        Recipient.short_name.icontains(search, autoescape=True),
        func.array_to_string(Recipient.remit_keywords, " ").icontains(
            search.lower(), autoescape=True
        ),
    )


def list_directory(session: Session, search: str = "") -> list[Recipient]:
    """Directory entries, by name. Readable by anyone (shared rows), no tenant needed."""
    statement = select(Recipient).where(Recipient.collective_id.is_(None))
    condition = _search_filter(search)
    if condition is not None:
        statement = statement.where(condition)
    return list(
        session.scalars(
            statement.order_by(Recipient.name), execution_options={"all_collectives": True}
        )
    )


def get_directory_entry(session: Session, recipient_id: int) -> Recipient:
    row = session.scalar(
        select(Recipient).where(Recipient.id == recipient_id, Recipient.collective_id.is_(None)),
        execution_options={"all_collectives": True},
    )
    if row is None:
        raise NotFoundError()
    return row


def update_directory_entry(
    session: Session, actor: User, recipient: Recipient, values: Mapping[str, Any]
) -> bool:
    """The platform operator edits a directory entry (never its key). Returns whether
    anything changed. Written in system_scope: no collective can write shared rows."""
    _require_platform_admin(actor)
    if not recipient.is_directory_entry:
        raise NotFoundError()
    cleaned = clean_recipient(values, directory=True)
    with system_scope(session):
        changed = _apply(recipient, cleaned)
        session.flush()
    return changed


# --- a collective's own recipients ----------------------------------------------------------


def list_recipients(session: Session, search: str = "") -> tuple[list[Recipient], list[Recipient]]:
    """(directory entries, the current collective's own recipients), each by name."""
    statement = select(Recipient)
    condition = _search_filter(search)
    if condition is not None:
        statement = statement.where(condition)
    rows = session.scalars(statement.order_by(Recipient.name, Recipient.id)).all()
    return [r for r in rows if r.is_directory_entry], [r for r in rows if not r.is_directory_entry]


def get_recipient(session: Session, recipient_id: int) -> Recipient:
    """A recipient the current collective can see (the directory or its own)."""
    row = session.scalar(select(Recipient).where(Recipient.id == recipient_id))
    if row is None:
        raise NotFoundError()
    return row


DIRECTORY_READ_ONLY = (
    "This department is in the shared directory, which the Chorus team looks after. "
    "To write to someone else, add your own recipient."
)


def _own(recipient: Recipient) -> None:
    if recipient.is_directory_entry:
        raise PermissionError(DIRECTORY_READ_ONLY)


def _new_key(session: Session, collective_id: int, name: str) -> str:
    base = slugify(name)[:70].strip("-") or "recipient"
    taken = set(
        session.scalars(
            select(Recipient.key).where(
                Recipient.collective_id == collective_id, Recipient.key.startswith(base)
            )
        )
    )
    key, n = base, 1
    while key in taken:
        n += 1
        key = f"{base}-{n}"
    return key


def create_recipient(session: Session, actor: Membership, values: Mapping[str, Any]) -> Recipient:
    """Owners and organisers add a recipient only their collective can see."""
    require_role(actor, Role.OWNER, Role.ORGANISER)
    collective_id = current_collective_id(session)
    if collective_id is None or collective_id != actor.collective_id:
        raise PermissionError("Open the collective first.")
    cleaned = clean_recipient(values, directory=False)
    recipient = Recipient(
        collective_id=collective_id,
        key=_new_key(session, collective_id, cleaned["name"]),
        **cleaned,
    )
    session.add(recipient)
    session.flush()
    return recipient


def update_recipient(
    session: Session, actor: Membership, recipient: Recipient, values: Mapping[str, Any]
) -> Recipient:
    """Owners and organisers edit their own recipients (never the directory's)."""
    require_role(actor, Role.OWNER, Role.ORGANISER)
    _own(recipient)
    cleaned = clean_recipient(values, directory=False)
    _apply(recipient, cleaned)
    session.flush()
    return recipient


def delete_recipient(session: Session, actor: Membership, recipient: Recipient) -> None:
    """Owners and organisers delete their own recipients, unless a campaign uses one."""
    require_role(actor, Role.OWNER, Role.ORGANISER)
    _own(recipient)
    in_use = session.scalar(
        select(func.count()).select_from(Campaign).where(Campaign.recipient_id == recipient.id)
    )
    if in_use:
        raise RecipientError(
            f"{recipient.name} is the recipient of {in_use} campaign"
            f"{'' if in_use == 1 else 's'}. Choose another recipient there first."
        )
    session.delete(recipient)
    session.flush()


# --- routing help -------------------------------------------------------------------------

MAX_SUGGEST_INPUT = 2000  # characters of the text we look at
MAX_SUGGEST_WORDS = 200
MAX_WORD_LENGTH = 60
# Runs of letters and digits: everything else (quotes, &, |, !, :*, backslashes) is a
# separator, so the query we build can only ever be words joined by |.
WORD_RE = re.compile(r"[^\W_]+")
ENGLISH: ColumnElement[Any] = literal_column("'english'::regconfig")


@dataclass(frozen=True)
class Suggestion:
    recipient: Recipient
    rank: float
    # Why: the recipient's topics (remit keywords) and name words that the text matched.
    matched: list[str]


def _query_words(text_: str) -> list[str]:
    words: list[str] = []
    for word in WORD_RE.findall(text_[:MAX_SUGGEST_INPUT].lower()):
        if len(word) <= MAX_WORD_LENGTH and word not in words:
            words.append(word)
        if len(words) >= MAX_SUGGEST_WORDS:
            break
    return words


def _document() -> ColumnElement[Any]:
    names = func.setweight(
        func.to_tsvector(ENGLISH, func.concat_ws(" ", Recipient.name, Recipient.short_name)),
        literal_column("'A'"),
    )
    topics = func.setweight(
        func.to_tsvector(ENGLISH, func.array_to_string(Recipient.remit_keywords, " ")),
        literal_column("'B'"),
    )
    return names.op("||")(topics)


def _lexemes(session: Session, phrases: Sequence[str]) -> dict[str, set[str]]:
    """Each phrase's lexemes under the 'english' configuration (a pure function: it
    reads no table)."""
    if not phrases:
        return {}
    rows = session.execute(
        text(
            "select p, tsvector_to_array(to_tsvector('english', p))"
            " from unnest(cast(:phrases as text[])) as p"
        ),
        {"phrases": list(phrases)},
    ).all()
    return {phrase: set(lexemes) for phrase, lexemes in rows}


def suggest_recipients(session: Session, text_: str, limit: int = 3) -> list[Suggestion]:
    """Recipients whose name or topics match the text, best first (PostgreSQL full-text
    search, 'english' configuration, any word may match, ranked by ts_rank). Only what
    the current collective can see: the directory and its own recipients.

    Reads the first 2,000 characters, and only their words: any text is safe. Returns
    [] when no word is left (empty text, stop words only).
    """
    words = _query_words(text_ or "")
    if not words or limit < 1:
        return []
    limit = min(int(limit), 20)
    query_lexemes = _lexemes(session, [" ".join(words)])[" ".join(words)]
    if not query_lexemes:
        return []
    # Each word is letters and digits only, so joining with | is a well-formed tsquery.
    query = func.to_tsquery(ENGLISH, " | ".join(words))
    document = _document()
    rank = func.ts_rank(document, query)
    rows = session.execute(
        select(Recipient, rank.label("rank"))
        .where(document.op("@@")(query))
        .order_by(rank.desc(), Recipient.name, Recipient.id)
        .limit(limit)
    ).all()
    if not rows:
        return []
    phrases = sorted(
        {k for r, _ in rows for k in r.remit_keywords}
        | {w for r, _ in rows for w in _name_words(r)}
    )
    lexemes = _lexemes(session, phrases)
    return [
        Suggestion(recipient=r, rank=float(score), matched=_reasons(r, lexemes, query_lexemes))
        for r, score in rows
    ]


def _name_words(recipient: Recipient) -> list[str]:
    return WORD_RE.findall(f"{recipient.name} {recipient.short_name}".lower())


def _reasons(recipient: Recipient, lexemes: Mapping[str, set[str]], query: set[str]) -> list[str]:
    """Topics all of whose words the text contains, then name words it contains that no
    such topic already explains; failing both, the longer topics it matched in part."""
    reasons = [k for k in recipient.remit_keywords if lexemes.get(k) and lexemes[k] <= query]
    explained = set().union(*(lexemes[k] for k in reasons))
    for word in _name_words(recipient):
        found = lexemes.get(word, set()) & query
        if found and not found <= explained and word not in reasons:
            reasons.append(word)
            explained |= found
    if reasons:
        return reasons
    return [k for k in recipient.remit_keywords if lexemes.get(k, set()) & query]
