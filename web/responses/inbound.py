"""Replies by plain email: store every message, then attach it to its delivery.

Both doors, the SMTP listener (`python -m workers.inbound`) and the mail provider's
webhook (`POST /inbound/email`), call `receive_message`. What it promises:

- Nothing is dropped. The raw bytes are stored first (`InboundMessage`), before any
  parsing. The same bytes twice (a retried webhook, a resent SMTP transaction) are
  stored once (unique SHA-256) and answered "duplicate", with nothing new created.
- It does not raise on what arrives. The parser never raises; everything after the
  raw row is stored runs in a savepoint, and an unexpected error rolls back only that
  savepoint and leaves the message on the operator's list as malformed, with a note.
  (A database that is down still raises: the caller answers "try later".)
- Matching: the tokens of `reply+<key>@INBOUND_DOMAIN` recipients (envelope first, any
  case), each looked up with `find_by_reply_key`; failing that, the Message-IDs in
  In-Reply-To / References against deliveries' and chasers' Message-IDs, through the
  fixed SQL function `chorus_delivery_by_message_id` (migration 0021). No match: held
  for the operator. A match on a delivery that was never sent (scheduled, failed,
  cancelled): held, with a note saying which delivery it named.
- A match becomes a `Response` (channel email, kind from `mailparse.classify`, marked
  `classified_by="auto"`) through `record_response`, so the clock, the campaign's state
  and the timeline move as for any other answer. Attachments that are PDF, DOCX or ODT
  (by content) are stored on it; any others are listed in its text as "not kept" (the
  raw message keeps them for the operator).
- Organisers (owners and organisers) are emailed about a substantive reply, through the
  outbox (so after commit). Acknowledgements, holding replies and bounces are shown on
  the delivery page only.

Services flush, never commit; the caller commits once.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from web.accounts.models import User
from web.delivery.models import Delivery
from web.responses import mailparse
from web.responses.attachments import AttachmentRejected, check_attachment, store_attachment
from web.responses.models import (
    InboundMessage,
    InboundStatus,
    ResponseChannel,
    ResponseKind,
)
from web.responses.notify import notify_organisers
from web.responses.services import FoundDelivery, enter, find_by_reply_key, record_response
from web.settings import Settings
from web.tenancy import set_current_collective, system_scope

log = logging.getLogger(__name__)

# The largest message either door accepts (SMTP SIZE, the webhook's body). Mail providers
# cap messages at 25-35 MB; a reply with a 20 MB attachment, base64-encoded, is ~27 MB.
MAX_MESSAGE_BYTES = 30 * 1024 * 1024
MAX_ENVELOPE_RECIPIENTS = 100
SOURCES = ("smtp", "http")


class InboundError(ValueError):
    """An operator's action that cannot be done; the message says why."""


@dataclass(frozen=True)
class InboundResult:
    """What happened to one message. `status` is "attached", "held", "malformed" or
    "duplicate" (the same bytes were received before; nothing new was stored)."""

    status: str
    inbound_message_id: int | None = None
    delivery_id: int | None = None
    response_id: int | None = None
    kind: str = ""
    note: str = ""
    kept_attachments: list[str] = field(default_factory=list)


def raw_sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _clip(value: str, limit: int) -> str:
    value = value.replace("\x00", "")
    return value[:limit]


def _envelope(values: Sequence[str]) -> list[str]:
    out: list[str] = []
    for value in list(values)[:MAX_ENVELOPE_RECIPIENTS]:
        clean = _clip(str(value), 320).strip()
        if clean and clean not in out:
            out.append(clean)
    return out


# --- storing ------------------------------------------------------------------------------


def store_raw(
    session: Session,
    raw: bytes,
    *,
    source: str,
    envelope_from: str = "",
    envelope_to: Sequence[str] = (),
    status: InboundStatus = InboundStatus.HELD,
    note: str = "",
) -> InboundMessage | None:
    """Store the raw bytes once. None when the same bytes were stored before (the row
    is left as it is). Flushes inside a savepoint, so a concurrent duplicate insert
    leaves the caller's transaction usable."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    digest = raw_sha256(raw)
    if session.scalar(select(InboundMessage.id).where(InboundMessage.raw_sha256 == digest)):
        return None
    message = InboundMessage(
        source=source,
        status=status.value,
        envelope_from=_clip(envelope_from, 320),
        envelope_to=_envelope(envelope_to),
        size=len(raw),
        raw_sha256=digest,
        raw=raw,
        defects=[],
        note=note,
    )
    try:
        with session.begin_nested():
            session.add(message)
            session.flush()
    except IntegrityError:  # the same bytes, stored a moment ago by another connection
        return None
    return message


def store_malformed(
    session: Session,
    raw: bytes,
    *,
    source: str,
    envelope_from: str = "",
    envelope_to: Sequence[str] = (),
    note: str,
) -> InboundMessage | None:
    """The last resort of both doors when handling failed: keep the bytes for the
    operator, marked malformed with `note`. None if they were stored before."""
    return store_raw(
        session,
        raw,
        source=source,
        envelope_from=envelope_from,
        envelope_to=envelope_to,
        status=InboundStatus.MALFORMED,
        note=note,
    )


# --- receiving ----------------------------------------------------------------------------


def receive_message(
    session: Session,
    settings: Settings,
    raw: bytes,
    *,
    source: str,
    envelope_from: str = "",
    envelope_to: Sequence[str] = (),
) -> InboundResult:
    """Store, read, match and attach one message (see the module docstring). Flushes;
    the caller commits. May leave the session's tenant set to the delivery's collective."""
    message = store_raw(
        session, raw, source=source, envelope_from=envelope_from, envelope_to=envelope_to
    )
    if message is None:
        return InboundResult(status="duplicate")
    try:
        with session.begin_nested():
            return _handle(session, settings, message, raw, envelope_to)
    except Exception as exc:  # whatever went wrong, the message stays for the operator
        log.exception("inbound message %s could not be handled", message.id)
        set_current_collective(session, None)
        message.status = InboundStatus.MALFORMED.value
        message.collective_id = None
        message.delivery_id = None
        message.note = f"Chorus could not process this message ({type(exc).__name__})."
        session.flush()
        return InboundResult(
            status=InboundStatus.MALFORMED.value,
            inbound_message_id=message.id,
            note=message.note,
        )


def _handle(
    session: Session,
    settings: Settings,
    message: InboundMessage,
    raw: bytes,
    envelope_to: Sequence[str],
) -> InboundResult:
    parsed = mailparse.parse_message(raw)
    message.from_address = _clip(parsed.from_address, 320)
    message.subject = _clip(parsed.subject, 300)
    message.message_id_header = _clip(parsed.message_id, 998)
    message.defects = [_clip(d, 500) for d in parsed.defects[:50]]
    if parsed.is_malformed:
        message.status = InboundStatus.MALFORMED.value
        message.note = "This could not be read as an email."
        session.flush()
        return InboundResult(
            status=message.status, inbound_message_id=message.id, note=message.note
        )
    found = find_delivery(session, settings, parsed, envelope_to)
    if found is None:
        message.status = InboundStatus.HELD.value
        message.note = "No delivery matched its addresses or the messages it replies to."
        session.flush()
        return InboundResult(
            status=message.status, inbound_message_id=message.id, note=message.note
        )
    delivery = enter(session, found)
    if not delivery.is_sent:
        set_current_collective(session, None)
        message.status = InboundStatus.HELD.value
        message.note = (
            f"Addressed to delivery {delivery.id}, which has not been sent "
            f"(its status is {delivery.status_enum.label.lower()})."
        )
        session.flush()
        return InboundResult(
            status=message.status, inbound_message_id=message.id, note=message.note
        )
    return attach(session, settings, message, delivery, parsed)


def find_delivery(
    session: Session,
    settings: Settings,
    parsed: mailparse.ParsedMail,
    envelope_to: Sequence[str] = (),
) -> FoundDelivery | None:
    """The delivery a message answers: by its reply address first, then by the
    Message-IDs it refers to. Any collective; only ids come back."""
    for token in mailparse.reply_tokens(parsed, settings.inbound_domain, list(envelope_to)):
        found = find_by_reply_key(session, token)
        if found is not None:
            return found
    ids = [i for i in [parsed.in_reply_to, *parsed.references] if i][:100]
    if not ids:
        return None
    # Our Message-IDs are stored with their angle brackets; accept either form.
    forms = sorted({*ids, *(i.strip("<>") for i in ids), *(f"<{i.strip('<>')}>" for i in ids)})
    row = session.execute(
        text("SELECT delivery_id, collective_id FROM chorus_delivery_by_message_id(:ids)"),
        {"ids": forms[:200]},
    ).first()
    return FoundDelivery(int(row[0]), int(row[1])) if row else None


def attach(
    session: Session,
    settings: Settings,
    message: InboundMessage,
    delivery: Delivery,
    parsed: mailparse.ParsedMail,
    *,
    classified_by: str = "auto",
) -> InboundResult:
    """Make `message` a response on `delivery` (the session's tenant must already be the
    delivery's collective). Flushes; queues the organisers' email for a substantive
    reply."""
    kind = ResponseKind(mailparse.classify(parsed).value)
    body = (parsed.reply_text or parsed.text).strip()
    keep: list[mailparse.Attachment] = []
    refused: list[str] = []
    for item in parsed.attachments:
        if item.is_inline:
            continue
        try:
            check_attachment(item.data, item.filename)
        except AttachmentRejected:
            refused.append(f"not kept: {item.filename} ({item.content_type})")
        else:
            keep.append(item)
    if refused:
        body = "\n\n".join(part for part in [body, "\n".join(refused)] if part)
    response = record_response(
        session,
        delivery,
        kind=kind,
        channel=ResponseChannel.EMAIL,
        body_text=body,
        subject=parsed.subject,
        responder_name=parsed.from_name,
        responder_email=parsed.from_address,
        classified_by=classified_by,
        inbound_message_id=message.id,
    )
    stored = [store_attachment(session, response, a.data, a.filename).filename for a in keep]
    message.status = InboundStatus.ATTACHED.value
    message.collective_id = delivery.collective_id
    message.delivery_id = delivery.id
    session.flush()
    # Only a substantive reply: acknowledgements and out-of-office answers by email are
    # mostly automatic, and would fill the organisers' inboxes for nothing.
    if kind is ResponseKind.SUBSTANTIVE:
        sender = parsed.from_name or parsed.from_address or "the department"
        if parsed.from_name and parsed.from_address:
            sender = f"{parsed.from_name} <{parsed.from_address}>"
        notify_organisers(
            session,
            settings,
            delivery,
            what="a reply" + (f" (“{parsed.subject}”)" if parsed.subject else ""),
            responder=sender,
            channel=ResponseChannel.EMAIL,
            body_excerpt=body,
        )
    return InboundResult(
        status=InboundStatus.ATTACHED.value,
        inbound_message_id=message.id,
        delivery_id=delivery.id,
        response_id=response.id,
        kind=kind.value,
        kept_attachments=stored,
    )


# --- the operator's holding list ----------------------------------------------------------


def held_messages(session: Session, *, limit: int = 200) -> list[InboundMessage]:
    """Held and malformed messages, newest first (the raw bytes are not loaded)."""
    return list(
        session.scalars(
            select(InboundMessage)
            .where(
                InboundMessage.status.in_([InboundStatus.HELD.value, InboundStatus.MALFORMED.value])
            )
            .order_by(InboundMessage.id.desc())
            .limit(limit)
        )
    )


def get_message(session: Session, message_id: int) -> InboundMessage:
    message = session.get(InboundMessage, message_id)
    if message is None:
        raise LookupError("No such message.")
    return message


def _require_operator(actor: User) -> None:
    if not getattr(actor, "is_platform_admin", False):
        raise PermissionError("Only the platform operator may do this.")


def attach_held(
    session: Session, settings: Settings, actor: User, message_id: int, delivery_id: int
) -> InboundResult:
    """The operator attaches a held (or malformed but readable) message to a delivery,
    named by its id, in whatever collective. Becomes a response like any matched reply.
    InboundError (with a message for the operator) when it cannot be done."""
    _require_operator(actor)
    message = get_message(session, message_id)
    if message.status not in (InboundStatus.HELD.value, InboundStatus.MALFORMED.value):
        raise InboundError(f"This message is already {message.status}.")
    with system_scope(session):
        owner = session.execute(
            select(Delivery.id, Delivery.collective_id)
            .where(Delivery.id == delivery_id)
            .execution_options(all_collectives=True)
        ).first()
    if owner is None:
        raise InboundError(f"There is no delivery {delivery_id}. Check the number.")
    delivery = enter(session, FoundDelivery(int(owner[0]), int(owner[1])))
    if not delivery.is_sent:
        set_current_collective(session, None)
        raise InboundError(
            f"Delivery {delivery_id} has not been sent (its status is "
            f"{delivery.status_enum.label.lower()}); a reply cannot be attached to it."
        )
    parsed = mailparse.parse_message(message.raw)
    if not parsed.from_address and not parsed.text.strip() and not parsed.attachments:
        set_current_collective(session, None)
        raise InboundError("Nothing in this message can be read; it cannot become a reply.")
    message.note = _clip(
        f"{message.note}\nAttached to delivery {delivery_id} by the operator.".strip(), 2000
    )
    return attach(session, settings, message, delivery, parsed)


def dismiss(session: Session, actor: User, message_id: int) -> InboundMessage:
    """The operator sets a held or malformed message aside (it is kept, not deleted)."""
    _require_operator(actor)
    message = get_message(session, message_id)
    if message.status not in (InboundStatus.HELD.value, InboundStatus.MALFORMED.value):
        raise InboundError(f"This message is already {message.status}.")
    message.status = InboundStatus.DISMISSED.value
    message.note = _clip(f"{message.note}\nDismissed by the operator.".strip(), 2000)
    session.flush()
    return message


MAX_SHOWN_HEADERS = 200
MAX_SHOWN_HEADER_CHARS = 2000


def raw_headers(raw: bytes) -> list[tuple[str, str]]:
    """The message's header lines, as text, for the operator to read (never raises)."""
    out: list[tuple[str, str]] = []
    with contextlib.suppress(Exception):
        head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0][:1_000_000]
        msg = email.message_from_bytes(head, policy=email.policy.compat32)
        for name, value in msg.items()[:MAX_SHOWN_HEADERS]:
            shown = str(value).replace("\r", "").replace("\n", " ")
            out.append((str(name)[:200], shown[:MAX_SHOWN_HEADER_CHARS]))
    return out
