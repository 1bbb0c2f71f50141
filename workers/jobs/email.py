"""Sending the emails that the outbox holds.

`drain_emails` is what the dispatcher queues: it claims due emails in batches
(`FOR UPDATE SKIP LOCKED`, so two workers share a backlog without sending anything
twice), renders those queued as a reference (the signing path stores only which
signature and which link, and leaves the templates to the worker), sends each batch over
one SMTP connection and commits the batch's outcomes. A temporary refusal puts an email
back with a later `available_at`; a permanent one marks it failed with the server's
answer. `send_outbox_email` sends one row; it is kept for direct use and for jobs queued
before the drain existed.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

from rq import get_current_job
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from web.db import utcnow
from web.mail import PermanentMailError, build_message, send_each, send_messages
from web.outbox import OutboxMessage
from web.settings import Settings
from web.tenancy import system_scope
from workers.context import PermanentJobError, _session, get_app, job, settings

log = logging.getLogger(__name__)

SENT_KEYS = ("to", "subject", "message_id")
DRAIN_BATCH = 200
# How long one drain works before handing over to a new one (see web/queueing.py for
# its RQ timeout, which must stay well above this plus one batch).
DRAIN_SECONDS = 60
# Temporary failures: try again after these delays, then give up.
BACKOFF_SECONDS = (10, 60, 300, 900, 3600, 4 * 3600)

Renderer = Callable[[Session, Settings, list[dict[str, Any]]], list[tuple[str, str] | None]]


@job
def send_outbox_email(session: Session, row: OutboxMessage) -> None:
    """Send one queued email. Idempotent: a row already done is skipped by @job.

    SMTP 4xx and network errors raise, so RQ retries with backoff; a 5xx marks the
    row failed with the server's answer.
    """
    config = settings()
    with system_scope(session):
        [payload] = _render(session, config, [row.payload])
    if payload is None:
        row.payload = _sent_payload(row.payload)
        return
    message = build_message(config, payload)
    try:
        send_messages(config, [message])
    except PermanentMailError as exc:
        raise PermanentJobError(f"The mail server refused this message: {exc}") from exc
    row.payload = _sent_payload(row.payload)


def drain_emails(max_batches: int | None = None) -> int:
    """Send every due email, a batch at a time. Returns how many were sent.

    Several drains may run at once (one per idle worker): SKIP LOCKED gives each its
    own rows. A drain stops after DRAIN_SECONDS and queues its successor, so it always
    ends well inside its RQ job timeout: a drain killed mid-batch would send that
    batch's emails again."""
    started = time.monotonic()
    app = get_app()
    current = get_current_job()
    if current is not None:
        app.extensions["chorus.dispatcher"].release_drain(current.id)
    sent = batches = 0
    with app.app_context():
        config: Settings = app.extensions["chorus.settings"]
        while max_batches is None or batches < max_batches:
            session = _session(app)
            try:
                with system_scope(session):
                    claimed, delivered = _drain_batch(session, config)
                    session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()
            batches += 1
            sent += delivered
            if claimed < DRAIN_BATCH:
                break
            if time.monotonic() - started > DRAIN_SECONDS:
                app.extensions["chorus.dispatcher"].request_drain(force=True)
                break
            if batches == 1:
                # A backlog: queue one more drain, so an idle worker shares it (each
                # drain that finds a full batch does the same, one queued at a time).
                app.extensions["chorus.dispatcher"].request_drain()
    if sent:
        log.info("sent %d emails in %d batches", sent, batches)
    return sent


def _drain_batch(session: Session, config: Settings) -> tuple[int, int]:
    now = utcnow()
    rows = list(
        session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.kind == "email",
                OutboxMessage.done_at.is_(None),
                OutboxMessage.failed_at.is_(None),
                or_(OutboxMessage.available_at.is_(None), OutboxMessage.available_at <= now),
            )
            .order_by(OutboxMessage.id)
            .limit(DRAIN_BATCH)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
    )
    claimed = len(rows)
    # Belt and braces: never send a row that comes back (freshly loaded) finished.
    rows = [r for r in rows if r.done_at is None and r.failed_at is None]
    if not rows:
        return claimed, 0
    payloads = _render(session, config, [row.payload for row in rows])
    outgoing: list[tuple[OutboxMessage, EmailMessage]] = []
    for row, payload in zip(rows, payloads, strict=True):
        row.attempts += 1
        if payload is None:  # nothing to send any more (say, the signature was erased)
            row.done_at = now
            row.payload = _sent_payload(row.payload)
            continue
        try:
            outgoing.append((row, build_message(config, payload)))
        except (ValueError, TypeError, KeyError) as exc:
            row.failed_at = now
            row.last_error = f"This email could not be built: {exc}"[:2000]
    outcomes = send_each(config, [message for _, message in outgoing])
    delivered = 0
    for (row, _), outcome in zip(outgoing, outcomes, strict=True):
        if outcome is None:
            row.done_at = now
            row.payload = _sent_payload(row.payload)
            delivered += 1
        elif isinstance(outcome, PermanentMailError):
            row.failed_at = now
            row.last_error = f"The mail server refused this message: {outcome}"[:2000]
        elif row.attempts > len(BACKOFF_SECONDS):
            row.failed_at = now
            row.last_error = f"Gave up after {row.attempts} attempts: {outcome}"[:2000]
        else:
            row.available_at = now + timedelta(seconds=BACKOFF_SECONDS[row.attempts - 1])
            row.last_error = f"{type(outcome).__name__}: {outcome}"[:2000]
    return claimed, delivered


def _sent_payload(payload: dict[str, Any]) -> dict[str, Any]:
    # The body holds live links (verification, reset, confirmation): once sent, keep only
    # what identifies the message, so a read of the database reveals no usable secret.
    return {key: payload.get(key) for key in SENT_KEYS}


def _render(
    session: Session, config: Settings, payloads: list[dict[str, Any]]
) -> list[dict[str, Any] | None]:
    """Complete payloads queued as a reference (`render`: a renderer's dotted path,
    `args`: what it needs) with their text and HTML, one renderer call per kind."""
    done: list[dict[str, Any] | None] = list(payloads)
    by_renderer: dict[str, list[int]] = defaultdict(list)
    for i, payload in enumerate(payloads):
        if payload.get("render") and "text" not in payload:
            by_renderer[payload["render"]].append(i)
    for path, indexes in by_renderer.items():
        renderer = _renderer(path)
        bodies = renderer(session, config, [payloads[i] for i in indexes])
        for i, body in zip(indexes, bodies, strict=True):
            done[i] = None if body is None else {**payloads[i], "text": body[0], "html": body[1]}
    return done


def _renderer(path: str) -> Renderer:
    module, _, name = path.rpartition(".")
    if not module.startswith("web."):
        raise ValueError(f"{path!r} is not a Chorus email renderer")
    fn: Renderer = getattr(importlib.import_module(module), name)
    return fn
