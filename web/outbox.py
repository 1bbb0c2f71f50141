"""The outbox: jobs and emails queued inside a transaction leave only after it commits.

A service calls `enqueue_job(session, "workers.jobs.area.job_name", ...)` or
`queue_email(session, ...)`. Each call writes an `OutboxMessage` row in the caller's
transaction. When the session commits, the rows are pushed to RQ under the job id
`outbox-<row id>`; when it rolls back, nothing leaves. If Redis is unreachable at that
moment, or loses the job (a restart without persistence), the recurring reconciler
(`workers.jobs.system.reconcile_outbox`) finds the committed row still not done and
enqueues it again. Jobs mark their row done, so re-enqueueing is harmless.

Services name jobs by dotted path, so the web side never imports `workers`.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Session, mapped_column

from web.db import Base, IdMixin, TimestampMixin

log = logging.getLogger(__name__)

PENDING_KEY = "chorus.outbox_pending"
DISPATCHER_KEY = "chorus.dispatcher"
EMAIL_JOB = "workers.jobs.email.send_outbox_email"
QUEUES = ("email", "default", "pdf-priority", "pdf")


class OutboxMessage(IdMixin, TimestampMixin, Base):
    """A job or email promised by a committed transaction.

    Not tenant-scoped: the reconciler must see every row. `collective_id` records whose
    work it is so the job runs in that collective's context.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (
        # The email drain's claim: due, unfinished emails in id order.
        Index(
            "ix_outbox_messages_pending_email",
            "id",
            postgresql_where=text("kind = 'email' AND done_at IS NULL AND failed_at IS NULL"),
        ),
    )

    kind: Mapped[str] = mapped_column(String(16))  # "job" | "email"
    queue: Mapped[str] = mapped_column(String(32))
    func: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    collective_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    requeued: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    # Not before this time (an email's retry after a temporary failure); NULL: at once.
    available_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def job_id(self) -> str:
        return f"outbox-{self.id}"


class Dispatcher(Protocol):
    def dispatch(self, rows: list[tuple[int, str, str]]) -> None:
        """Push (outbox id, queue, func) triples to the job queue."""


def attach_dispatcher(session: Session, dispatcher: Dispatcher | None) -> None:
    """Send this session's committed outbox rows to `dispatcher`. (The commit hooks are
    registered once for every Session, below: registering them per session cost a
    noticeable part of each request.)"""
    session.info[DISPATCHER_KEY] = dispatcher


def enqueue_job(
    session: Session,
    func: str,
    *,
    queue: str = "default",
    payload: dict[str, Any] | None = None,
    collective_id: int | None = None,
) -> OutboxMessage:
    """Queue `func(outbox_id)` to run after this transaction commits.

    The job receives the outbox id and reads its arguments from `payload`.
    """
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}")
    row = OutboxMessage(
        kind="job", queue=queue, func=func, payload=payload or {}, collective_id=collective_id
    )
    session.add(row)
    session.flush()
    session.info.setdefault(PENDING_KEY, []).append((row.id, queue, func))
    return row


def queue_email(
    session: Session,
    *,
    to: str,
    subject: str,
    text_body: str,
    html_body: str,
    collective_id: int | None = None,
    headers: dict[str, str] | None = None,
    attachments: list[dict[str, str]] | None = None,
) -> OutboxMessage:
    """Queue one email (plain text and HTML) to leave after this transaction commits.

    `headers` adds headers such as List-Unsubscribe. A header (the recipient and subject
    included) that contains a line break is refused here with a ValueError, so a header
    injection fails in the request that attempted it, not later in the worker.
    `attachments` are small files (a calendar invitation), each
    {"filename", "content_type", "data_b64"}, added by `web.mail.build_message`; the
    sent payload keeps none of them.
    """
    from web.mail import make_message_id

    extra = headers or {}
    clashes = sorted(n for n in extra if n.lower() in _SET_BY_MAILER)
    if clashes:
        raise ValueError(f"The mailer sets {', '.join(clashes)} itself; pass it as an argument.")
    check_headers({"To": to, "Subject": subject, **extra})
    row = OutboxMessage(
        kind="email",
        queue="email",
        func=EMAIL_JOB,
        collective_id=collective_id,
        payload={
            "to": to,
            "subject": subject,
            "text": text_body,
            "html": html_body,
            "headers": extra,
            "message_id": make_message_id(),
            **({"attachments": attachments} if attachments else {}),
        },
    )
    session.add(row)
    session.flush()
    session.info.setdefault(PENDING_KEY, []).append((row.id, "email", EMAIL_JOB))
    return row


def queue_deferred_email(
    session: Session,
    *,
    to: str,
    subject: str,
    render: str,
    args: dict[str, Any],
    collective_id: int | None = None,
) -> OutboxMessage:
    """Queue an email whose body the worker renders: `render` is the dotted path of a
    function that takes (session, settings, payloads) and returns (text, html) per
    payload, or None for one that no longer needs sending. For hot paths (signing),
    where rendering two templates per request would cost more than everything else."""
    from web.mail import make_message_id

    check_headers({"To": to, "Subject": subject})
    row = OutboxMessage(
        kind="email",
        queue="email",
        func=EMAIL_JOB,
        collective_id=collective_id,
        payload={
            "to": to,
            "subject": subject,
            "render": render,
            "args": args,
            "headers": {},
            "message_id": make_message_id(),
        },
    )
    session.add(row)
    session.flush()
    session.info.setdefault(PENDING_KEY, []).append((row.id, "email", EMAIL_JOB))
    return row


def note_committed_later(session: Session, outbox_id: int, queue: str, func: str) -> None:
    """For rows written with SQL rather than the ORM: dispatch them after commit too."""
    session.info.setdefault(PENDING_KEY, []).append((outbox_id, queue, func))


# Headers `web.mail.build_message` writes itself: a second copy would be ambiguous.
_SET_BY_MAILER = frozenset({"from", "to", "subject", "date", "message-id"})
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")  # printable ASCII without ":" (RFC 5322)


def check_headers(headers: dict[str, str]) -> None:
    """Refuse header names that are not RFC 5322 field names and any CR or LF."""
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise ValueError(f"{name!r} is not a valid email header name.")
        if "\r" in value or "\n" in value:
            raise ValueError(f"The email header {name} must not contain a line break.")


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    pending = session.info.pop(PENDING_KEY, [])
    dispatcher = session.info.get(DISPATCHER_KEY)
    if not pending or dispatcher is None:
        return
    try:
        dispatcher.dispatch(pending)
    except Exception:  # Redis down: the reconciler will pick the committed rows up.
        log.exception("could not enqueue %d outbox rows; the reconciler will retry", len(pending))


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)
