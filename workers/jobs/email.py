"""Sending the emails that the outbox holds."""

from __future__ import annotations

from sqlalchemy.orm import Session

from web.mail import PermanentMailError, build_message, send_messages
from web.outbox import OutboxMessage
from workers.context import PermanentJobError, job, settings

SENT_KEYS = ("to", "subject", "message_id")


@job
def send_outbox_email(session: Session, row: OutboxMessage) -> None:
    """Send one queued email. Idempotent: a row already done is skipped by @job.

    SMTP 4xx and network errors raise, so RQ retries with backoff; a 5xx marks the
    row failed with the server's answer.
    """
    config = settings()
    message = build_message(config, row.payload)
    try:
        send_messages(config, [message])
    except PermanentMailError as exc:
        raise PermanentJobError(f"The mail server refused this message: {exc}") from exc
    # The body holds live links (verification, reset, confirmation): once sent, keep only
    # what identifies the message, so a read of the database reveals no usable secret.
    row.payload = {key: row.payload.get(key) for key in SENT_KEYS}
