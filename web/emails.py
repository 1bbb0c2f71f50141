"""Templated emails: `templates/emails/<name>.txt` and `.html`, queued via the outbox."""

from __future__ import annotations

from typing import Any

from flask import render_template
from sqlalchemy.orm import Session

from web.outbox import OutboxMessage, queue_email
from web.settings import Settings


def send_templated_email(
    session: Session,
    settings: Settings,
    *,
    to: str,
    template: str,
    subject: str,
    context: dict[str, Any],
    collective_id: int | None = None,
    headers: dict[str, str] | None = None,
    attachments: list[dict[str, str]] | None = None,
) -> OutboxMessage:
    """Render both parts now (so the message is fixed at commit) and queue it.

    `headers` (List-Unsubscribe and the like) and `attachments` (a calendar invitation)
    are passed on to `queue_email`, which refuses line breaks in headers."""
    ctx = {"settings": settings, "subject": subject, **context}
    text_body = render_template(f"emails/{template}.txt", **ctx)
    html_body = render_template(f"emails/{template}.html", **ctx)
    return queue_email(
        session,
        to=to,
        subject=subject,
        text_body=text_body,
        html_body=html_body,
        collective_id=collective_id,
        headers=headers,
        attachments=attachments,
    )
