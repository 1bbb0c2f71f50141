"""Building and sending email.

Every message has a plain-text and an HTML part. With SMTP settings, messages go to
that server (plain, STARTTLS or implicit TLS, with optional credentials). Without them,
messages are written as .eml files under `<instance>/mail/`, which the development-only
page `/dev/mail` lists, so nothing is lost and nothing leaves the machine.
"""

from __future__ import annotations

import base64
import secrets
import smtplib
import ssl
from collections.abc import Iterable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from web.settings import Settings


class PermanentMailError(Exception):
    """The server refused the message for good (5xx): retrying will not help."""


class TransientMailError(Exception):
    """The server or network failed for now (4xx, connection errors): retry later."""


def make_message_id() -> str:
    return make_msgid(idstring=secrets.token_hex(8), domain="chorus.localhost")


def build_message(settings: Settings, payload: dict[str, Any]) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = payload["to"]
    msg["Subject"] = payload["subject"]
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = payload["message_id"]
    for name, value in (payload.get("headers") or {}).items():
        msg[name] = value
    msg.set_content(payload["text"])
    msg.add_alternative(payload["html"], subtype="html")
    for attachment in payload.get("attachments") or ():
        add_attachment(msg, attachment)
    return msg


def add_attachment(msg: EmailMessage, attachment: dict[str, str]) -> None:
    """Attach one file queued as {"filename", "content_type", "data_b64"}. The content
    type may carry parameters ("text/calendar; method=REQUEST"), which are kept."""
    kind, *params = (part.strip() for part in attachment["content_type"].split(";"))
    maintype, subtype = kind.split("/", 1)
    extra = dict(p.split("=", 1) for p in params if "=" in p)
    msg.add_attachment(
        base64.b64decode(attachment["data_b64"], validate=True),
        maintype=maintype,
        subtype=subtype,
        filename=attachment["filename"],
        params=extra,
    )


def mail_dir(settings: Settings) -> Path:
    return Path(settings.instance_path) / "mail"


def send_messages(settings: Settings, messages: Iterable[EmailMessage]) -> None:
    """Send messages over one SMTP connection (or write them to the dev outbox)."""
    batch = list(messages)
    if not batch:
        return
    if not settings.smtp_configured:
        _write_dev_outbox(settings, batch)
        return
    try:
        with _connect(settings) as client:
            for msg in batch:
                client.send_message(msg)
    except smtplib.SMTPResponseException as exc:
        detail = f"{exc.smtp_code} {exc.smtp_error!r}"
        if 500 <= exc.smtp_code < 600:
            raise PermanentMailError(detail) from exc
        raise TransientMailError(detail) from exc
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        if codes and all(500 <= c < 600 for c in codes):
            raise PermanentMailError(str(exc.recipients)) from exc
        raise TransientMailError(str(exc.recipients)) from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise TransientMailError(str(exc)) from exc


def send_each(settings: Settings, messages: list[EmailMessage]) -> list[Exception | None]:
    """Send messages over one SMTP connection, one outcome per message: None when the
    server accepted it, PermanentMailError when it refused it for good (5xx),
    TransientMailError when it should be tried again later (4xx; and, after a lost
    connection, every message not yet sent)."""
    if not messages:
        return []
    if not settings.smtp_configured:
        _write_dev_outbox(settings, messages)
        return [None] * len(messages)
    outcomes: list[Exception | None] = []
    try:
        client = _connect(settings)
    except (OSError, smtplib.SMTPException) as exc:
        return [TransientMailError(str(exc))] * len(messages)
    try:
        for msg in messages:
            try:
                client.send_message(msg)
                outcomes.append(None)
            except smtplib.SMTPRecipientsRefused as exc:
                codes = [code for code, _ in exc.recipients.values()]
                permanent = bool(codes) and all(500 <= c < 600 for c in codes)
                error = PermanentMailError if permanent else TransientMailError
                outcomes.append(error(str(exc.recipients)))
            except smtplib.SMTPResponseException as exc:
                detail = f"{exc.smtp_code} {exc.smtp_error!r}"
                error = PermanentMailError if 500 <= exc.smtp_code < 600 else TransientMailError
                outcomes.append(error(detail))
            except (OSError, smtplib.SMTPException) as exc:
                outcomes.append(TransientMailError(str(exc)))
                break
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()
    lost = TransientMailError("The connection to the mail server was lost before sending.")
    return outcomes + [lost] * (len(messages) - len(outcomes))


def _write_dev_outbox(settings: Settings, batch: list[EmailMessage]) -> None:
    folder = mail_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    for msg in batch:
        name = msg["Message-ID"].strip("<>").replace("/", "_")
        (folder / f"{name}.eml").write_bytes(bytes(msg))


def _connect(settings: Settings) -> smtplib.SMTP:
    client: smtplib.SMTP
    if settings.smtp_security == "ssl":
        client = smtplib.SMTP_SSL(
            settings.smtp_host,
            settings.smtp_port,
            timeout=settings.smtp_timeout,
            context=ssl.create_default_context(),
        )
    else:
        client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout)
    try:
        if settings.smtp_security == "starttls":
            client.starttls(context=ssl.create_default_context())
        if settings.smtp_username:
            client.login(settings.smtp_username, settings.smtp_password)
    except BaseException:
        client.close()
        raise
    return client
