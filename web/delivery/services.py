"""Delivery operations shared by every part of issue #6.

This module holds the pieces every other module leans on: the secrets of a delivery
(reply address, response link), the timeline, and the campaign's move through
delivered -> acknowledged -> responded. Closing, sending and chasing build on it
(web/delivery/sending.py, web/delivery/chasers.py). Services flush, never commit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from web import tokens
from web.campaigns.models import Campaign, CampaignState, LetterVersion
from web.campaigns.services import current_version
from web.db import utcnow
from web.delivery.models import Delivery, DeliveryEvent, EventKind
from web.pdf.models import Document
from web.settings import Settings

RESPONSE_LINK_LIFETIME = timedelta(days=365)
REPLY_KEY_BYTES = 20  # 160 bits, 32 characters of lower-case base32


class DeliveryError(ValueError):
    """A rule was broken; the message is safe to show to the person."""


# --- secrets ---------------------------------------------------------------------------
#
# The send job, every chaser and the postal cover sheet must print the same reply
# address and response link, weeks after the delivery was created, so the server must be
# able to recover them; deriving them (HMAC of the delivery id and a per-delivery random
# nonce, keyed from SECRET_KEY) does that without keeping the secrets in the database: a
# copy of the database alone cannot answer for a department. The rows keep the SHA-256
# of each secret for lookups. Rotating SECRET_KEY changes every derived secret: links
# already sent stop working (the official is asked to reply by email) and replies to old
# addresses wait on the operator's holding list, where nothing is lost.


def _link_key(settings: Settings) -> bytes:
    return hashlib.sha256(b"chorus delivery secrets\x00" + settings.secret_key.encode()).digest()


def _derive(settings: Settings, purpose: str, delivery: Delivery, nonce: bytes) -> bytes:
    message = f"{purpose}:{delivery.id}:".encode() + bytes(nonce)
    return hmac.new(_link_key(settings), message, hashlib.sha256).digest()


def reply_key_hash(key: str) -> bytes:
    return hashlib.sha256(key.strip().lower().encode()).digest()


def reply_key(settings: Settings, delivery: Delivery) -> str:
    """The delivery's reply key: 160 bits in lower-case base32 (32 characters)."""
    raw = _derive(settings, "reply", delivery, delivery.reply_nonce)[:REPLY_KEY_BYTES]
    return base64.b32encode(raw).decode().rstrip("=").lower()


def reply_address(settings: Settings, delivery: Delivery) -> str:
    return f"reply+{reply_key(settings, delivery)}@{settings.inbound_domain}"


def response_token(settings: Settings, delivery: Delivery) -> str:
    """The response link's token, `<delivery id>.<256-bit secret>` (web/tokens.py form)."""
    secret = base64.urlsafe_b64encode(_derive(settings, "respond", delivery, delivery.link_nonce))
    return tokens.compose(delivery.id, secret.decode().rstrip("="))


def response_url(settings: Settings, delivery: Delivery) -> str:
    return f"{settings.base_url}{response_path(response_token(settings, delivery))}"


def issue_secrets(settings: Settings, delivery: Delivery) -> None:
    """Give a new delivery its reply address and response link (valid for a year). Call
    after the row has an id (flush); the NOT NULL columns may hold anything before."""
    delivery.reply_nonce = secrets.token_bytes(16)
    delivery.reply_key_hash = reply_key_hash(reply_key(settings, delivery))
    reissue_link(settings, delivery)


def reissue_link(settings: Settings, delivery: Delivery) -> str:
    """A new response link (the old one stops working); returns the new token."""
    delivery.link_nonce = secrets.token_bytes(16)
    token = response_token(settings, delivery)
    delivery.response_token_hash = tokens.hash_secret(token.split(".", 1)[1])
    delivery.response_token_expires_at = utcnow() + RESPONSE_LINK_LIFETIME
    delivery.response_token_revoked_at = None
    return token


def placeholder_secrets(delivery: Delivery) -> None:
    """Unusable random values for the NOT NULL secret columns of a delivery that has no
    id yet; `issue_secrets` replaces them once it has one."""
    delivery.reply_nonce = secrets.token_bytes(16)
    delivery.reply_key_hash = secrets.token_bytes(32)
    delivery.link_nonce = secrets.token_bytes(16)
    delivery.response_token_hash = secrets.token_bytes(32)
    delivery.response_token_expires_at = utcnow()


def response_path(token: str) -> str:
    return f"/respond/{token}"


# --- timeline --------------------------------------------------------------------------


def record_event(
    session: Session,
    delivery: Delivery,
    kind: EventKind,
    summary: str,
    *,
    actor_id: int | None = None,
    actor_label: str = "",
    **detail: Any,
) -> DeliveryEvent:
    """Add one line to the delivery's timeline (flushes)."""
    event = DeliveryEvent(
        collective_id=delivery.collective_id,
        delivery_id=delivery.id,
        kind=kind.value,
        summary=summary,
        actor_id=actor_id,
        actor_label=actor_label[:200],
        detail=detail,
    )
    session.add(event)
    session.flush()
    return event


def timeline(session: Session, delivery: Delivery) -> list[DeliveryEvent]:
    return list(
        session.scalars(
            select(DeliveryEvent)
            .where(DeliveryEvent.delivery_id == delivery.id)
            .order_by(DeliveryEvent.created_at, DeliveryEvent.id)
        )
    )


def deliveries_for(session: Session, campaign: Campaign) -> list[Delivery]:
    return list(
        session.scalars(
            select(Delivery).where(Delivery.campaign_id == campaign.id).order_by(Delivery.id)
        )
    )


def get_delivery(session: Session, campaign: Campaign, delivery_id: int) -> Delivery:
    """The campaign's delivery with this id (in the current collective) or LookupError."""
    delivery = session.scalar(
        select(Delivery).where(Delivery.id == delivery_id, Delivery.campaign_id == campaign.id)
    )
    if delivery is None:
        raise LookupError("No such delivery.")
    return delivery


def delivered_version(session: Session, delivery: Delivery) -> LetterVersion | None:
    """The letter version the delivered PDF carries (the campaign's latest published
    version if the delivery names no document): what the department received."""
    if delivery.document_id is not None:
        document = session.get(Document, delivery.document_id)
        if document is not None and document.letter_version_id is not None:
            version = session.get(LetterVersion, document.letter_version_id)
            if version is not None:
                return version
    campaign = session.get(Campaign, delivery.campaign_id)
    return current_version(session, campaign) if campaign is not None else None


# --- the campaign's lifecycle ----------------------------------------------------------

# Later states never move back: a reply after a meeting was agreed leaves it agreed.
_ORDER = [
    CampaignState.CLOSED,
    CampaignState.DELIVERED,
    CampaignState.ACKNOWLEDGED,
    CampaignState.RESPONDED,
    CampaignState.MEETING_SCHEDULED,
]


def advance_campaign(campaign: Campaign, target: CampaignState) -> bool:
    """Move a campaign forward to `target` if it is behind it (closed -> delivered ->
    acknowledged -> responded -> meeting scheduled). Never moves backwards, never
    touches a concluded campaign. Returns whether it moved."""
    current = campaign.state_enum
    if current not in _ORDER or target not in _ORDER:
        return False
    if _ORDER.index(current) >= _ORDER.index(target):
        return False
    campaign.state = target.value
    return True
