"""Generated PDFs: ask for one, make it (the worker's half), serve it, verify it.

The request side (`request_render`) only writes a `PdfRender` row and an outbox job; the
PDF is made by `workers.jobs.pdf.render_document` on the `pdf` queue, never in a web
request. The worker calls `make_document`, which builds the letter's inputs
(`web.pdf.context.build_letter`), hashes them (`inputs_hash`) and reuses the campaign's
document of the same kind and inputs if there is one (the cache: an unchanged letter is
not rendered twice); otherwise it renders (`web.pdf.engine.render_letter`) and stores the
bytes with their SHA-256. Progress is written by the job in short transactions of its own
(`start_attempt`, `record_progress`), so the progress page sees it while the job runs.

Which campaigns get a final PDF: a preview (watermarked DRAFT) in any state; the final
letter once the campaign has stopped collecting, i.e. `closed` or any later state
(delivered, acknowledged, responded, meeting scheduled, concluded).

/verify (`verify_fingerprint`) looks a SHA-256 up across collectives through the SQL
function `chorus_verify_document` (migration 0012), which returns only the campaign title,
the collective's name, the letter version, the kind and the date of each match.

Services flush, never commit (the request or the job commits).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from web.campaigns.models import Campaign, CampaignState
from web.collectives.models import Membership, Role
from web.db import utcnow
from web.outbox import enqueue_job
from web.pdf.models import UNFINISHED, Document, DocumentKind, PdfRender, RenderStatus
from web.settings import Settings

RENDER_JOB = "workers.jobs.pdf.render_document"
PDF_QUEUE = "pdf"
# The engine's limit on one render (its own default). The RQ job timeout
# (web.queueing.JOB_TIMEOUTS["pdf"]) is above it, so the engine's readable message, not
# RQ's kill, is what an organiser sees.
RENDER_TIMEOUT = 120.0
MAX_ATTEMPTS = 3  # a render whose job died this many times is failed, not retried
RECENT_RENDERS = 20
# The sweep (workers.jobs.pdf.fail_stale_renders): a render no worker has started within
# QUEUED_TOO_LONG, or one whose worker has said nothing for STALLED_AFTER (well beyond the
# job timeout), is marked failed so the organiser can start it again.
QUEUED_TOO_LONG = timedelta(hours=1)
STALLED_AFTER = timedelta(minutes=15)
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
UPLOAD_CHUNK = 1024 * 1024
PDF_HEADER_WINDOW = 1024  # the PDF header may follow up to 1 KB of junk (ISO 32000)

FINAL_STATES = frozenset(
    {
        CampaignState.CLOSED,
        CampaignState.DELIVERED,
        CampaignState.ACKNOWLEDGED,
        CampaignState.RESPONDED,
        CampaignState.MEETING_SCHEDULED,
        CampaignState.CONCLUDED,
    }
)
ACTOR_ROLES = (Role.OWNER, Role.ORGANISER)


class PdfError(Exception):
    """A PDF that cannot be asked for or made; the message is for people."""


class RenderNotFound(LookupError):
    pass


class DocumentNotFound(LookupError):
    pass


def can_make_final(campaign: Campaign) -> bool:
    return campaign.state_enum in FINAL_STATES


def verify_url(settings: Settings) -> str:
    return f"{settings.base_url.rstrip('/')}/verify"


# --- the request side ------------------------------------------------------------------


def request_render(
    session: Session, actor: Membership, campaign: Campaign, kind: DocumentKind
) -> PdfRender:
    """Ask for a PDF of `campaign`: owners and organisers only (PermissionError), a final
    letter only once the campaign has stopped collecting (PdfError). If a render of the
    same kind is already queued or running, that one is returned and nothing new is
    queued. Otherwise writes a render row and its job (sent after commit). Flushes."""
    if actor.role not in ACTOR_ROLES:
        raise PermissionError("Only owners and organisers of this collective can do that.")
    if kind is DocumentKind.FINAL and not can_make_final(campaign):
        raise PdfError(
            "The final PDF can be made once the campaign is closed. Until then, use "
            "Preview PDF: it shows the letter as it stands, marked DRAFT."
        )
    # One at a time per campaign and kind. FOR NO KEY UPDATE: it does not block the
    # signatures being inserted meanwhile (their foreign key takes a KEY SHARE lock).
    session.execute(
        select(Campaign.id).where(Campaign.id == campaign.id).with_for_update(key_share=True)
    )
    running = session.scalar(
        select(PdfRender)
        .where(
            PdfRender.campaign_id == campaign.id,
            PdfRender.kind == kind.value,
            PdfRender.status.in_(UNFINISHED),
        )
        .order_by(PdfRender.id.desc())
        .limit(1)
    )
    if running is not None:
        return running
    render = PdfRender(
        collective_id=campaign.collective_id,
        campaign_id=campaign.id,
        kind=kind.value,
        requested_by_id=actor.user_id,
    )
    session.add(render)
    session.flush()
    from web.billing.plans import render_queue  # Supporter plans: the priority queue

    enqueue_job(
        session,
        RENDER_JOB,
        queue=render_queue(session, campaign.collective_id),
        payload={"render_id": render.id},
        collective_id=campaign.collective_id,
    )
    return render


def get_render(session: Session, campaign: Campaign, render_id: int) -> PdfRender:
    render = session.scalar(
        select(PdfRender).where(PdfRender.id == render_id, PdfRender.campaign_id == campaign.id)
    )
    if render is None:
        raise RenderNotFound(render_id)
    return render


def recent_renders(session: Session, campaign: Campaign) -> list[PdfRender]:
    return list(
        session.scalars(
            select(PdfRender)
            .where(PdfRender.campaign_id == campaign.id)
            .order_by(PdfRender.id.desc())
            .limit(RECENT_RENDERS)
        )
    )


def get_document(session: Session, campaign: Campaign, document_id: int) -> Document:
    """The document's row (its bytes stay deferred until read)."""
    document = session.scalar(
        select(Document).where(Document.id == document_id, Document.campaign_id == campaign.id)
    )
    if document is None:
        raise DocumentNotFound(document_id)
    return document


def documents_by_id(session: Session, ids: set[int]) -> dict[int, Document]:
    if not ids:
        return {}
    rows = session.scalars(select(Document).where(Document.id.in_(ids)))
    return {d.id: d for d in rows}


def document_bytes(session: Session, document: Document) -> bytes:
    data = session.scalar(select(Document.data).where(Document.id == document.id))
    return bytes(data or b"")


def download_name(campaign: Campaign, document: Document) -> str:
    """A file name safe in any header and file system: the campaign's slug (a-z, 0-9, -),
    the kind and the date."""
    return f"{campaign.slug}-{document.kind}-{document.created_at:%Y-%m-%d}.pdf"


# --- the worker side -------------------------------------------------------------------


def start_attempt(session: Session, render_id: int) -> int | None:
    """Mark the render as rendering and count the attempt. Returns the attempt number, or
    None when there is nothing to do (finished, or gone). For its own short transaction."""
    now = utcnow()
    return session.scalar(
        update(PdfRender)
        .where(PdfRender.id == render_id, PdfRender.status.in_(UNFINISHED))
        .values(
            status=RenderStatus.RENDERING.value,
            attempts=PdfRender.attempts + 1,
            progress_done=0,
            progress_total=0,
            error="",
            started_at=now,
            updated_at=now,
        )
        .returning(PdfRender.attempts)
        .execution_options(synchronize_session=False)
    )


def record_progress(session: Session, render_id: int, done: int, total: int) -> None:
    """Annex pages done out of total, as the engine reports them. For its own short
    transaction, so the progress page sees it while the render runs."""
    total = max(0, int(total))
    done = min(max(0, int(done)), total)
    session.execute(
        update(PdfRender)
        .where(PdfRender.id == render_id, PdfRender.status == RenderStatus.RENDERING.value)
        .values(progress_done=done, progress_total=total, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


RETRY_NOTE = "Something went wrong on our side. Chorus will try again in a few minutes."


def note_retry(session: Session, render_id: int) -> None:
    """Say on the progress page that this attempt broke and another will follow. For its
    own short transaction (the job's own rolls back)."""
    session.execute(
        update(PdfRender)
        .where(PdfRender.id == render_id, PdfRender.status == RenderStatus.RENDERING.value)
        .values(error=RETRY_NOTE, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def cached_document(session: Session, campaign_id: int, kind: str, key: str) -> Document | None:
    return session.scalar(
        select(Document).where(
            Document.campaign_id == campaign_id,
            Document.kind == kind,
            Document.inputs_hash == key,
        )
    )


def store_document(
    session: Session,
    campaign: Campaign,
    *,
    kind: str,
    letter_version_id: int | None,
    key: str,
    data: bytes,
    pages: int,
) -> tuple[Document, bool]:
    """Store a rendered PDF; returns (document, stored). If another worker stored the same
    inputs meanwhile, its document is returned instead (stored False)."""
    new_id = session.scalar(
        insert(Document)
        .values(
            collective_id=campaign.collective_id,
            campaign_id=campaign.id,
            kind=kind,
            letter_version_id=letter_version_id,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            pages=pages,
            inputs_hash=key,
            data=data,
        )
        .on_conflict_do_nothing(index_elements=["campaign_id", "kind", "inputs_hash"])
        .returning(Document.id)
    )
    document = cached_document(session, campaign.id, kind, key)
    if document is None:  # pragma: no cover - the insert or the conflict guarantees one
        raise PdfError("The PDF could not be stored. Please try again.")
    return document, new_id is not None


def make_document(
    session: Session,
    settings: Settings,
    render: PdfRender,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> Document:
    """Build the render's inputs and reuse the campaign's document of the same inputs, or
    render and store a new one; mark the render done. Raises PdfError (no letter to
    render) or the engine's RenderError (its message is for people). Flushes."""
    from web.pdf.context import LetterNotReady, build_letter, inputs_hash
    from web.pdf.engine import render_letter

    campaign = session.get(Campaign, render.campaign_id)
    if campaign is None:
        raise PdfError("This campaign no longer exists.")
    try:
        inputs = build_letter(
            session,
            campaign,
            draft=render.kind == DocumentKind.PREVIEW.value,
            verify_url=verify_url(settings),
        )
    except LetterNotReady as exc:
        raise PdfError(str(exc)) from exc
    key = inputs_hash(inputs)
    document = cached_document(session, campaign.id, render.kind, key)
    cached = document is not None
    if document is None:
        pdf = render_letter(
            inputs.doc,
            inputs.signatories,
            inputs.voices,
            progress=progress,
            timeout=RENDER_TIMEOUT,
        )
        document, stored = store_document(
            session,
            campaign,
            kind=render.kind,
            letter_version_id=inputs.letter_version_id,
            key=key,
            data=pdf.data,
            pages=pdf.pages,
        )
        cached = not stored
    render.status = RenderStatus.DONE.value
    render.document_id = document.id
    render.is_cached = cached
    render.error = ""
    render.finished_at = utcnow()
    session.flush()
    return document


def fail_render(session: Session, render: PdfRender, message: str) -> None:
    """Mark the render failed with `message` (shown to the organiser). Flushes."""
    render.status = RenderStatus.FAILED.value
    render.error = (message or "The PDF could not be made.")[:2000]
    render.finished_at = utcnow()
    session.flush()


def fail_stale_renders(session: Session, now: datetime | None = None) -> int:
    """Across collectives (call it in system_scope): fail renders no worker started within
    QUEUED_TOO_LONG and renders whose worker went quiet for STALLED_AFTER. A job that
    later wakes up for one of them finds it failed and does nothing. Returns how many."""
    now = now or utcnow()
    queued = (PdfRender.status == RenderStatus.QUEUED.value) & (
        PdfRender.updated_at < now - QUEUED_TOO_LONG
    )
    stalled = (PdfRender.status == RenderStatus.RENDERING.value) & (
        PdfRender.updated_at < now - STALLED_AFTER
    )
    total = 0
    for condition, message in (
        (queued, "No worker started this PDF within an hour. Please start it again."),
        (stalled, "The PDF stopped before it was finished. Please start it again."),
    ):
        result = session.execute(
            update(PdfRender)
            .where(condition)
            .values(
                status=RenderStatus.FAILED.value,
                error=message,
                finished_at=now,
                updated_at=now,
            )
            .execution_options(all_collectives=True, synchronize_session=False)
        )
        total += result.rowcount or 0  # type: ignore[attr-defined]
    return total


# --- /verify ---------------------------------------------------------------------------

_HEX64 = re.compile(r"[0-9a-f]{64}")


class FingerprintInvalid(ValueError):
    """The text is not a SHA-256; the message says what one looks like."""


class UploadRefused(ValueError):
    """An upload we cannot check; the message says why. `status` is the HTTP answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def parse_fingerprint(value: str | None) -> str:
    """A SHA-256 in lower-case hex from what a person pasted: spaces, line breaks and
    capital letters are fine; anything else is refused with a message."""
    cleaned = "".join((value or "").split()).lower()
    if not cleaned:
        raise FingerprintInvalid("Enter the fingerprint (SHA-256) to check.")
    if not _HEX64.fullmatch(cleaned):
        raise FingerprintInvalid(
            "A fingerprint (SHA-256) is 64 characters, each a digit 0-9 or a letter a-f. "
            "Check that you copied all of it, and nothing else."
        )
    return cleaned


def fingerprint_upload(stream: IO[bytes], max_bytes: int = MAX_UPLOAD_BYTES) -> tuple[str, int]:
    """SHA-256 (hex) and size of an uploaded PDF, read in 1 MB chunks (never the whole
    file in memory). Refuses an empty file, one over `max_bytes` and one that is not a
    PDF (no %PDF- header in its first kilobyte)."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    while chunk := stream.read(UPLOAD_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise UploadRefused(too_large_message(), 413)
        if len(head) < PDF_HEADER_WINDOW:
            head += chunk[: PDF_HEADER_WINDOW - len(head)]
        digest.update(chunk)
    if size == 0:
        raise UploadRefused(
            "The file is empty. Choose the PDF you received (it ends in .pdf) and try again."
        )
    if b"%PDF-" not in head:
        raise UploadRefused(
            "This file is not a PDF. Chorus documents are PDF files: choose the PDF you "
            "received (it ends in .pdf), or paste its fingerprint below."
        )
    return digest.hexdigest(), size


def too_large_message() -> str:
    return (
        f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB, the largest we "
        "check. No Chorus document is that large; if yours is, paste its fingerprint "
        "(SHA-256) instead."
    )


@dataclass(frozen=True)
class VerifiedDocument:
    """What /verify may say about a document: nothing else leaves the database."""

    campaign_title: str
    collective_name: str
    letter_version: int | None
    kind: DocumentKind
    created_at: datetime
    # Deliveries of this PDF (channel, date) once the Delivery issue lands: extend
    # chorus_verify_document to return them and fill this in. Empty until then.
    deliveries: tuple[str, ...] = ()


def verify_fingerprint(session: Session, fingerprint: str) -> list[VerifiedDocument]:
    """Every Chorus document whose PDF has this SHA-256 (almost always none or one), in
    any collective, as the few facts /verify shows. `fingerprint` is lower-case hex."""
    rows = session.execute(
        text(
            "SELECT kind, created_at, campaign_title, collective_name, letter_version"
            " FROM chorus_verify_document(:fingerprint)"
        ),
        {"fingerprint": fingerprint},
    ).all()
    return [
        VerifiedDocument(
            campaign_title=row.campaign_title,
            collective_name=row.collective_name,
            letter_version=row.letter_version,
            kind=DocumentKind(row.kind),
            created_at=row.created_at,
        )
        for row in rows
    ]


@dataclass(frozen=True)
class VerifiedVersion:
    """A letter version whose text has this SHA-256 (the hash printed in the letter)."""

    campaign_title: str
    collective_name: str
    letter_version: int


def letter_versions_with(session: Session, fingerprint: str) -> list[VerifiedVersion]:
    """Published letter versions whose canonical text has this SHA-256. The letter prints
    that hash next to the address of /verify, so people paste it: they are told it names
    the letter's text, not a PDF. (Published versions are public already.)"""
    rows = session.execute(
        text(
            "SELECT campaign_title, collective_name, letter_version"
            " FROM chorus_verify_letter_version(:fingerprint)"
        ),
        {"fingerprint": fingerprint},
    ).all()
    return [
        VerifiedVersion(
            campaign_title=row.campaign_title,
            collective_name=row.collective_name,
            letter_version=row.letter_version,
        )
        for row in rows
    ]
