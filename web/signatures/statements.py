"""Statements in the signers' own words: consent, moderation and near-duplicate groups.

Who sees a signer's words
- They are shown publicly only when all of these hold (`public_conditions`, the one
  definition): the signer ticked "Show my words publicly" (`show_statement`), the words
  are approved, and the signature counts (verified, not waiting for re-consent).
- `statement_status`: `none` (no words, or no consent to show them: such words are
  never listed or shown), `pending`, `approved`, `hidden` (with a reason organisers
  see). Hidden words can be restored (approved again). With the campaign's
  `statements_auto_approve`, pending words are approved when the signature is verified
  (`on_signature_verified`, called by `confirm_signature`).
- Organisers list and act only on the words of verified signatures: an unconfirmed
  signature may be someone else using the address, and its words wait until it counts.

Near-identical statements
- Text is normalised (Unicode compatibility forms, accents, case, apostrophes,
  punctuation and whitespace), cut into shingles (each word and each pair of adjacent
  words, so one changed word in a short sentence still leaves most shingles shared),
  and summarised by a MinHash of NUM_PERM values. Two statements whose shingle sets have
  Jaccard similarity J agree on each MinHash value with probability J.
- Locality-sensitive hashing: the MinHash is cut into BANDS bands of ROWS values; two
  statements that agree on a whole band become candidates. With 20 bands of 3 rows a
  pair at J = 0.5 is a candidate with probability 0.93, at 0.7 with 0.9998, at 0.2 with
  0.15. A candidate joins a group only if the estimated J reaches SIMILAR.
- Groups are led by the statement that founded them: `statement_groups` keeps its
  MinHash and `statement_bands` its band hashes. A new statement finds the groups that
  share a band with it in one indexed query, compares itself with at most
  MAX_CANDIDATES leaders, and joins the most similar one or founds a group. Why leaders
  rather than every statement's bands: 50,000 copies of a template would otherwise put a
  million rows in the band table and return them from every lookup; this way the band
  table grows with the number of distinct voices and a copy costs one lookup.
- Grouping runs in a worker (`group_statements`, via workers/jobs/statements.py), never
  in the signing request. Until a statement is grouped it counts as its own voice.
- NUM_PERM, BANDS, ROWS, SEED and the normalisation are part of the stored data:
  changing any of them means regrouping (delete a campaign's `statement_groups`; the
  signatures' group ids fall back to NULL and the job rebuilds the groups).

Like the other services these functions only flush; actions need an owner or organiser.
"""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    and_,
    func,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import Session

from web.campaigns.models import Campaign
from web.collectives.models import Membership, Role
from web.collectives.services import require_role
from web.db import utcnow
from web.signatures.models import (
    Signature,
    SignatureStatus,
    StatementBand,
    StatementGroup,
    StatementStatus,
)

BANDS = 20
ROWS = 3
NUM_PERM = BANDS * ROWS
SEED = 0x43686F727573  # "Chorus": fixed for ever, see the module docstring
SIMILAR = 0.5  # estimated Jaccard similarity at which two statements are one voice
MAX_CANDIDATES = 20
GROUP_BATCH = 500  # statements grouped per job run
PAGE_SIZE = 50
PUBLIC_SHOWN = 5
PUBLIC_COUNT_CAP = 10_000  # "and over 10,000 others": never count a huge group to the end
MAX_REASON = 500

_PRIME = (1 << 61) - 1
_rng = random.Random(SEED)  # noqa: S311 - fixed hash permutations, not a secret
_PERMUTATIONS: tuple[tuple[int, int], ...] = tuple(
    (_rng.randrange(1, _PRIME), _rng.randrange(0, _PRIME)) for _ in range(NUM_PERM)
)
del _rng
_APOSTROPHES = re.compile(r"['\u2018\u2019\u02bc`]")
_NOT_WORD = re.compile(r"[\W_]+")

# The organiser page's lists, by the word in their address.
TABS: dict[str, str] = {
    "waiting": StatementStatus.PENDING.value,
    "approved": StatementStatus.APPROVED.value,
    "hidden": StatementStatus.HIDDEN.value,
}


# --- fingerprints ----------------------------------------------------------------------


def normalise(text: str) -> list[str]:
    """The words of `text`, folded so that case, accents, punctuation and spacing (and
    invisible formatting characters) make no difference."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(
        ch
        for ch in decomposed
        if not unicodedata.combining(ch) and unicodedata.category(ch) != "Cf"
    )
    folded = _APOSTROPHES.sub("", kept.casefold())
    return _NOT_WORD.sub(" ", folded).split()


def shingles(text: str) -> set[str]:
    """Each word and each pair of adjacent words. Text with no words at all (emoji,
    punctuation) falls back to its characters, so such statements group together."""
    words = normalise(text)
    if not words:
        return {ch for ch in text if not ch.isspace()} or {""}
    return set(words) | {f"{a} {b}" for a, b in pairwise(words)}


def _shingle_hash(shingle: str) -> int:
    digest = hashlib.blake2b(shingle.encode("utf-8", "replace"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def minhash(text: str) -> tuple[int, ...]:
    """NUM_PERM minimum hash values of the text's shingles, one per permutation."""
    values = [_shingle_hash(s) for s in shingles(text)]
    return tuple(min((a * x + b) % _PRIME for x in values) for a, b in _PERMUTATIONS)


def band_hashes(signature: tuple[int, ...]) -> list[int]:
    """One signed 64-bit hash per band of ROWS MinHash values (a BIGINT column)."""
    hashes = []
    for band in range(BANDS):
        rows = signature[band * ROWS : (band + 1) * ROWS]
        data = b"".join(v.to_bytes(8, "big") for v in rows)
        digest = hashlib.blake2b(data, digest_size=8).digest()
        hashes.append(int.from_bytes(digest, "big", signed=True))
    return hashes


def similarity(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """The MinHash estimate of the Jaccard similarity of two statements' shingles."""
    return sum(x == y for x, y in zip(a, b, strict=True)) / NUM_PERM


def _pack(signature: tuple[int, ...]) -> bytes:
    return b"".join(v.to_bytes(8, "big") for v in signature)


def _unpack(data: bytes) -> tuple[int, ...]:
    return tuple(int.from_bytes(data[i : i + 8], "big") for i in range(0, len(data), 8))


def _find_group(session: Session, campaign_id: int, signature: tuple[int, ...]) -> int | None:
    """The most similar group at or above SIMILAR among those sharing a band, if any."""
    bands = band_hashes(signature)
    matches = func.count()
    candidates = session.execute(
        select(StatementBand.group_id, matches)
        .where(
            StatementBand.campaign_id == campaign_id,
            or_(
                *(
                    and_(StatementBand.band == i, StatementBand.band_hash == h)
                    for i, h in enumerate(bands)
                )
            ),
        )
        .group_by(StatementBand.group_id)
        .order_by(matches.desc(), StatementBand.group_id)
        .limit(MAX_CANDIDATES)
    ).all()
    if not candidates:
        return None
    leaders = session.execute(
        select(StatementGroup.id, StatementGroup.minhash).where(
            StatementGroup.id.in_([group_id for group_id, _ in candidates])
        )
    ).all()
    best: tuple[float, int] | None = None
    for group_id, packed in leaders:
        score = similarity(signature, _unpack(packed))
        if score >= SIMILAR and (best is None or (score, -group_id) > (best[0], -best[1])):
            best = (score, group_id)
    return best[1] if best else None


def _found_group(
    session: Session, campaign_id: int, collective_id: int, signature: tuple[int, ...]
) -> int:
    group = StatementGroup(
        collective_id=collective_id, campaign_id=campaign_id, minhash=_pack(signature)
    )
    session.add(group)
    session.flush()
    session.add_all(
        StatementBand(
            collective_id=collective_id,
            group_id=group.id,
            band=i,
            campaign_id=campaign_id,
            band_hash=h,
        )
        for i, h in enumerate(band_hashes(signature))
    )
    session.flush()
    return group.id


def _ungrouped(campaign_id: int | None = None) -> list[ColumnElement[bool]]:
    """Words to group: of verified signatures, listed (not `none`), not yet grouped. The
    conditions match the partial index ix_signatures_ungrouped_statements."""
    conditions = [
        Signature.statement_group_id.is_(None),
        Signature.statement_status != StatementStatus.NONE.value,
        Signature.status == SignatureStatus.VERIFIED.value,
    ]
    if campaign_id is not None:
        conditions.append(Signature.campaign_id == campaign_id)
    return conditions


@dataclass(frozen=True)
class Grouped:
    statements: int  # grouped in this run
    groups_founded: int
    more: bool  # the batch was full: run again


def group_statements(session: Session, campaign: Campaign, limit: int | None = None) -> Grouped:
    """Put up to `limit` (default GROUP_BATCH) ungrouped statements of `campaign` into groups,
    oldest first. Idempotent (grouped ones are skipped). Campaign-wide advisory lock for
    the transaction, so two runs cannot found two groups for the same words."""
    limit = limit or GROUP_BATCH
    session.execute(
        select(func.pg_advisory_xact_lock(func.hashtextextended(f"statements:{campaign.id}", 0)))
    )
    rows = session.execute(
        select(Signature.id, Signature.statement)
        .where(*_ungrouped(campaign.id))
        .order_by(Signature.id)
        .limit(limit)
    ).all()
    seen: dict[str, int] = {}  # normalised text -> group, for copies within the batch
    members: dict[int, list[int]] = {}
    founded = 0
    for signature_id, text in rows:
        key = " ".join(normalise(text)) or text.strip()
        group_id = seen.get(key)
        if group_id is None:
            fingerprint = minhash(text)
            group_id = _find_group(session, campaign.id, fingerprint)
            if group_id is None:
                group_id = _found_group(session, campaign.id, campaign.collective_id, fingerprint)
                founded += 1
            seen[key] = group_id
        members.setdefault(group_id, []).append(signature_id)
    for group_id, ids in members.items():
        session.execute(
            update(Signature)
            .where(Signature.id.in_(ids), Signature.statement_group_id.is_(None))
            .values(statement_group_id=group_id)
            .execution_options(synchronize_session=False)
        )
    session.flush()
    return Grouped(len(rows), founded, more=len(rows) == limit)


def campaigns_with_ungrouped_statements(session: Session) -> list[tuple[int, int]]:
    """(campaign id, collective id) of every campaign with words still to group, across
    collectives (call in `system_scope`)."""
    rows = session.execute(
        select(Signature.campaign_id, Signature.collective_id).where(*_ungrouped()).distinct(),
        execution_options={"all_collectives": True},
    ).all()
    return [(int(c), int(k)) for c, k in rows]


# --- consent and the moment of verification -----------------------------------------------


def initial_status(statement: str, show_statement: bool) -> str:
    """The status of words as a signer submits them: waiting if there are words to show."""
    if statement and show_statement:
        return StatementStatus.PENDING.value
    return StatementStatus.NONE.value


def on_signature_verified(session: Session, campaign: Campaign, signature: Signature) -> None:
    """Called when a signature becomes verified: with auto-approve on, its waiting words
    are approved now. (They are grouped later by the worker.) Flushes."""
    if (
        campaign.statements_auto_approve
        and signature.statement_status == StatementStatus.PENDING.value
    ):
        signature.statement_status = StatementStatus.APPROVED.value
        signature.statement_moderated_at = utcnow()
        session.flush()


def public_conditions(campaign: Campaign) -> list[ColumnElement[bool]]:
    """The only definition of "shown publicly": consent, approval, a counted signature."""
    return [
        Signature.campaign_id == campaign.id,
        Signature.statement_status == StatementStatus.APPROVED.value,
        Signature.status == SignatureStatus.VERIFIED.value,
        Signature.show_statement.is_(True),
        Signature.needs_reconsent.is_(False),
    ]


def _listed(campaign: Campaign, status: str) -> list[ColumnElement[bool]]:
    """Words organisers see in a list: of verified signatures, with consent."""
    return [
        Signature.campaign_id == campaign.id,
        Signature.statement_status == status,
        Signature.status == SignatureStatus.VERIFIED.value,
        Signature.show_statement.is_(True),
    ]


# --- moderation ------------------------------------------------------------------------------


class StatementError(ValueError):
    """An organiser must fix something or look again; `field` names the form field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class StatementNotFound(LookupError):
    """No such statement (signature with words) in this campaign."""


class GroupChanged(StatementError):
    """The waiting statements of a group changed since the organiser looked: nothing
    was approved."""

    def __init__(self, expected: int, found: int) -> None:
        super().__init__(
            "",
            f"The page showed {expected:,} waiting statement{'s' if expected != 1 else ''} in "
            f"this group, but {found:,} wait now, so none were approved. Read the list again "
            "and approve from there.",
        )
        self.expected = expected
        self.found = found


def _require_moderator(actor: Membership) -> None:
    require_role(actor, Role.OWNER, Role.ORGANISER)


def get_statement(session: Session, campaign: Campaign, signature_id: int) -> Signature:
    """A signature of this campaign whose words organisers may see (listed words)."""
    signature = session.scalar(
        select(Signature).where(
            Signature.id == signature_id,
            Signature.campaign_id == campaign.id,
            Signature.statement_status != StatementStatus.NONE.value,
            Signature.show_statement.is_(True),
        )
    )
    if signature is None:
        raise StatementNotFound()
    return signature


def _locked(
    session: Session, campaign: Campaign, signature_id: int, allowed: tuple[str, ...], what: str
) -> Signature:
    signature = session.scalar(
        select(Signature)
        .where(
            Signature.id == signature_id,
            Signature.campaign_id == campaign.id,
            Signature.statement_status != StatementStatus.NONE.value,
            Signature.show_statement.is_(True),
        )
        .with_for_update()
    )
    if signature is None:
        raise StatementNotFound()
    if signature.status != SignatureStatus.VERIFIED.value:
        raise StatementError(
            "",
            "These words belong to a signature that is not verified (not confirmed yet, "
            "withdrawn or rejected), so they cannot be shown and are not in the lists.",
        )
    if signature.statement_status not in allowed:
        raise StatementError(
            "",
            f"These words are {_STATE_WORDS[signature.statement_status]} now, so they cannot "
            f"be {what}: someone may have acted on them a moment ago. Look at the list again.",
        )
    return signature


_STATE_WORDS = {
    StatementStatus.PENDING.value: "waiting for review",
    StatementStatus.APPROVED.value: "already approved",
    StatementStatus.HIDDEN.value: "hidden",
}


def approve_statement(
    session: Session, actor: Membership, campaign: Campaign, signature_id: int
) -> Signature:
    """Approve waiting words: shown publicly from now on (while the signature counts).
    Not idempotent by design: a second call raises StatementError."""
    _require_moderator(actor)
    signature = _locked(
        session, campaign, signature_id, (StatementStatus.PENDING.value,), "approved"
    )
    signature.statement_status = StatementStatus.APPROVED.value
    signature.statement_moderated_at = utcnow()
    session.flush()
    return signature


def hide_statement(
    session: Session, actor: Membership, campaign: Campaign, signature_id: int, reason: str
) -> Signature:
    """Hide waiting or approved words, with a reason organisers see (the signature still
    counts: hiding words is not rejecting the signature)."""
    _require_moderator(actor)
    reason = reason.strip()
    if not reason:
        raise StatementError("reason", "Enter why you are hiding these words.")
    if len(reason) > MAX_REASON:
        raise StatementError("reason", f"The reason must be {MAX_REASON} characters or fewer.")
    signature = _locked(
        session,
        campaign,
        signature_id,
        (StatementStatus.PENDING.value, StatementStatus.APPROVED.value),
        "hidden",
    )
    signature.statement_status = StatementStatus.HIDDEN.value
    signature.statement_hidden_reason = reason
    signature.statement_moderated_at = utcnow()
    session.flush()
    return signature


def restore_statement(
    session: Session, actor: Membership, campaign: Campaign, signature_id: int
) -> Signature:
    """Show hidden words again (approved); the hiding reason is cleared."""
    _require_moderator(actor)
    signature = _locked(
        session, campaign, signature_id, (StatementStatus.HIDDEN.value,), "restored"
    )
    signature.statement_status = StatementStatus.APPROVED.value
    signature.statement_hidden_reason = ""
    signature.statement_moderated_at = utcnow()
    session.flush()
    return signature


def _group_waiting(campaign: Campaign, group_id: int, upto: int) -> list[ColumnElement[bool]]:
    return [
        *_listed(campaign, StatementStatus.PENDING.value),
        Signature.statement_group_id == group_id,
        Signature.id <= upto,
    ]


def approve_group(
    session: Session,
    actor: Membership,
    campaign: Campaign,
    group_id: int,
    *,
    expected: int,
    upto: int,
) -> int:
    """Approve the waiting words of one near-duplicate group, exactly the `expected`
    ones the organiser saw (signature ids up to `upto`), or none (GroupChanged)."""
    _require_moderator(actor)
    if get_group(session, campaign, group_id) is None:
        raise StatementNotFound()
    savepoint = session.begin_nested()
    result = session.execute(
        update(Signature)
        .where(*_group_waiting(campaign, group_id, upto))
        .values(statement_status=StatementStatus.APPROVED.value, statement_moderated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    changed = int(cast("CursorResult[Any]", result).rowcount or 0)
    if changed != expected:
        savepoint.rollback()
        raise GroupChanged(expected, changed)
    savepoint.commit()
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Signature):
            session.expire(obj)  # the UPDATE went around them
    return changed


def get_group(session: Session, campaign: Campaign, group_id: int) -> StatementGroup | None:
    return session.scalar(
        select(StatementGroup).where(
            StatementGroup.id == group_id, StatementGroup.campaign_id == campaign.id
        )
    )


# --- what organisers see ---------------------------------------------------------------------


@dataclass(frozen=True)
class StatementRow:
    id: int
    name: str
    statement: str
    status: str
    hidden_reason: str
    moderated_at: datetime | None
    verified_at: datetime | None
    group_id: int | None
    similar: int  # other statements of the same group in the same list


@dataclass(frozen=True)
class StatementPage:
    tab: str
    rows: list[StatementRow]
    page: int  # 1-based, clamped to the pages there are
    pages: int
    total: int
    group_id: int | None
    max_id: int  # the newest signature in the list: bounds a group approval


def list_statements(
    session: Session,
    campaign: Campaign,
    tab: str,
    *,
    page: int = 1,
    group_id: int | None = None,
    per_page: int = PAGE_SIZE,
) -> StatementPage:
    """One page of a list (waiting: oldest first; approved, hidden: newest first), of one
    group if `group_id`. Three queries whatever the size."""
    where = _listed(campaign, TABS[tab])
    if group_id is not None:
        where.append(Signature.statement_group_id == group_id)
    total, max_id = session.execute(
        select(func.count(), func.coalesce(func.max(Signature.id), 0)).where(*where)
    ).one()
    pages = max(1, -(-int(total) // per_page))
    page = min(max(1, page), pages)
    order = Signature.id.asc() if tab == "waiting" else Signature.id.desc()
    found = session.execute(
        select(
            Signature.id,
            Signature.name,
            Signature.statement,
            Signature.statement_status,
            Signature.statement_hidden_reason,
            Signature.statement_moderated_at,
            Signature.verified_at,
            Signature.statement_group_id,
        )
        .where(*where)
        .order_by(order)
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    group_ids = {r.statement_group_id for r in found if r.statement_group_id is not None}
    sizes: dict[int, int] = {}
    if group_ids:
        sizes = {
            int(g or 0): int(n)
            for g, n in session.execute(
                select(Signature.statement_group_id, func.count())
                .where(*_listed(campaign, TABS[tab]), Signature.statement_group_id.in_(group_ids))
                .group_by(Signature.statement_group_id)
            )
        }
    rows = [
        StatementRow(
            id=r.id,
            name=r.name,
            statement=r.statement,
            status=r.statement_status,
            hidden_reason=r.statement_hidden_reason,
            moderated_at=r.statement_moderated_at,
            verified_at=r.verified_at,
            group_id=r.statement_group_id,
            similar=max(0, sizes.get(r.statement_group_id, 1) - 1)
            if r.statement_group_id is not None
            else 0,
        )
        for r in found
    ]
    return StatementPage(tab, rows, page, pages, int(total), group_id, int(max_id))


@dataclass(frozen=True)
class StatementOverview:
    waiting: int  # of verified signatures, with consent
    approved: int
    hidden: int
    unconfirmed: int  # words with consent whose signature is not verified (yet)
    public: int  # shown publicly now
    distinct_voices: int
    ungrouped: int  # listed words the worker has not grouped yet


def statement_overview(session: Session, campaign: Campaign) -> StatementOverview:
    """The numbers at the top of the organiser page, in three GROUP BY/count queries."""
    by_state: dict[tuple[str, str], int] = {
        (s, st): int(n)
        for s, st, n in session.execute(
            select(Signature.statement_status, Signature.status, func.count())
            .where(
                Signature.campaign_id == campaign.id,
                Signature.statement_status != StatementStatus.NONE.value,
                Signature.show_statement.is_(True),
            )
            .group_by(Signature.statement_status, Signature.status)
        )
    }
    verified = SignatureStatus.VERIFIED.value
    unconfirmed = sum(
        n
        for (_, st), n in by_state.items()
        if st in (SignatureStatus.PENDING.value, SignatureStatus.QUARANTINED.value)
    )
    public, voices = session.execute(
        select(
            func.count(),
            func.count(func.distinct(_voice_key())),
        ).where(*public_conditions(campaign))
    ).one()
    ungrouped = session.scalar(
        select(func.count()).select_from(Signature).where(*_ungrouped(campaign.id))
    )
    return StatementOverview(
        waiting=by_state.get((StatementStatus.PENDING.value, verified), 0),
        approved=by_state.get((StatementStatus.APPROVED.value, verified), 0),
        hidden=by_state.get((StatementStatus.HIDDEN.value, verified), 0),
        unconfirmed=unconfirmed,
        public=int(public),
        distinct_voices=int(voices),
        ungrouped=int(ungrouped or 0),
    )


# --- groups and distinct voices (for the organiser page and the letter's PDF) ---------------


def _voice_key() -> ColumnElement[int]:
    """A statement's group, or (not grouped yet) the statement itself: ids are positive,
    so negated ids never collide with group ids."""
    return func.coalesce(Signature.statement_group_id, -Signature.id)


@dataclass(frozen=True)
class VoiceGroup:
    """Near-identical public statements: counted as one voice."""

    representative: str  # the text of the earliest statement in the group
    count: int
    member_ids: list[int]  # signature ids, ascending
    group_id: int | None  # None for a statement not grouped yet


def statement_groups(
    session: Session,
    campaign: Campaign,
    limit: int | None = None,
    *,
    with_members: bool = True,
) -> list[VoiceGroup]:
    """The groups of the statements shown publicly, largest first (then oldest). One
    query; `limit` keeps only the largest groups (chosen before any text is read), and
    `with_members=False` leaves `member_ids` empty. Statements the worker has not
    grouped yet are groups of one."""
    key = _voice_key().label("voice")
    first = func.min(Signature.id).label("first")
    size = func.count().label("size")
    members = (
        func.array_agg(aggregate_order_by(Signature.id, Signature.id)) if with_members else null()
    )
    agg = (
        select(key, size, first, members.label("ids"))
        .where(*public_conditions(campaign))
        .group_by(key)
        .order_by(size.desc(), first)
    )
    if limit is not None:
        agg = agg.limit(limit)
    ranked = agg.subquery()
    query = (
        select(ranked.c.voice, ranked.c.size, ranked.c.ids, Signature.statement)
        .join(Signature, Signature.id == ranked.c.first)
        .order_by(ranked.c.size.desc(), ranked.c.first)
    )
    return [
        VoiceGroup(
            representative=text,
            count=int(n),
            member_ids=[int(i) for i in ids or []],
            group_id=int(voice) if voice > 0 else None,
        )
        for voice, n, ids, text in session.execute(query)
    ]


def distinct_voices(session: Session, campaign: Campaign) -> int:
    """How many distinct voices the public statements carry: near-identical statements
    count once. One query."""
    return int(
        session.scalar(
            select(func.count(func.distinct(_voice_key()))).where(*public_conditions(campaign))
        )
        or 0
    )


# --- the public page ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicStatement:
    text: str
    name: str  # "" unless the signer chose to show their name
    others: int  # other public statements of the same group (capped)
    others_capped: bool  # there are at least PUBLIC_COUNT_CAP others


def public_statements(
    session: Session, campaign: Campaign, limit: int = PUBLIC_SHOWN
) -> list[PublicStatement]:
    """A few recent public statements, near-duplicates shown once with how many others
    said much the same. Two indexed queries; the group counts stop at PUBLIC_COUNT_CAP."""
    recent = session.execute(
        select(
            Signature.id,
            Signature.statement,
            Signature.name,
            Signature.show_name,
            Signature.statement_group_id,
        )
        .where(*public_conditions(campaign))
        .order_by(Signature.id.desc())
        .limit(limit * 8)
    ).all()
    chosen: dict[int, Any] = {}
    for row in recent:
        key = row.statement_group_id if row.statement_group_id is not None else -row.id
        if key not in chosen:
            chosen[key] = row
        if len(chosen) == limit:
            break
    group_ids = [k for k in chosen if k > 0]
    sizes: dict[int, int] = {}
    if group_ids:
        counts = [
            select(func.count())
            .select_from(
                select(Signature.id)
                .where(*public_conditions(campaign), Signature.statement_group_id == g)
                .limit(PUBLIC_COUNT_CAP + 1)
                .subquery()
            )
            .scalar_subquery()
            for g in group_ids
        ]
        sizes = dict(zip(group_ids, session.execute(select(*counts)).one(), strict=True))
    shown = []
    for key, row in chosen.items():
        others = max(0, int(sizes.get(key, 1)) - 1)
        shown.append(
            PublicStatement(
                text=row.statement,
                name=row.name if row.show_name else "",
                others=min(others, PUBLIC_COUNT_CAP),
                others_capped=others >= PUBLIC_COUNT_CAP,
            )
        )
    return shown
