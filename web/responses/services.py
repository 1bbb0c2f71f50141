"""Responses: finding a delivery from outside its collective, and recording an answer.

Every channel (the response page, the department inbox, a reply by email) ends in
`record_response`, so the clock, the timeline, the campaign's state and the signers'
news are updated the same way whichever door the answer came through. Services flush,
never commit.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from web import tokens
from web.campaigns.models import Campaign, CampaignState
from web.db import utcnow
from web.delivery.loop import Milestone, notify_signers
from web.delivery.models import Delivery, EventKind
from web.delivery.services import advance_campaign, record_event, reply_key_hash
from web.responses.models import Response, ResponseChannel, ResponseKind
from web.tenancy import set_current_collective


class ResponseError(ValueError):
    """A rule was broken; the message is safe to show to the person."""


class LinkProblem(LookupError):
    """The response link cannot be used; the message says why, for the official."""


@dataclass(frozen=True)
class FoundDelivery:
    delivery_id: int
    collective_id: int


# --- finding a delivery from outside its collective -------------------------------------


def find_by_response_token(session: Session, raw: str | None) -> FoundDelivery | None:
    """The delivery a response link names, when its secret matches (any collective).
    Only the ids come back; the caller enters that collective (`enter`) to read more."""
    parsed = tokens.parse(raw)
    if parsed is None:
        return None
    delivery_id, secret = parsed
    row = session.execute(
        text("SELECT delivery_id, collective_id FROM chorus_delivery_by_response_token(:d, :h)"),
        {"d": delivery_id, "h": tokens.hash_secret(secret)},
    ).first()
    return FoundDelivery(int(row[0]), int(row[1])) if row else None


def find_by_reply_key(session: Session, key: str) -> FoundDelivery | None:
    """The delivery whose Reply-To address carries this key (any collective)."""
    if not key or len(key) > 64:
        return None
    row = session.execute(
        text("SELECT delivery_id, collective_id FROM chorus_delivery_by_reply_key(:h)"),
        {"h": reply_key_hash(key)},
    ).first()
    return FoundDelivery(int(row[0]), int(row[1])) if row else None


def enter(session: Session, found: FoundDelivery) -> Delivery:
    """Make the delivery's collective the session's tenant and load the delivery."""
    set_current_collective(session, found.collective_id)
    delivery = session.get(Delivery, found.delivery_id)
    if delivery is None:  # deleted between the lookup and now
        raise LookupError("This delivery no longer exists.")
    return delivery


def check_link_usable(delivery: Delivery) -> None:
    """Raise LinkProblem when a (matching) response link has been revoked or expired."""
    if delivery.response_token_revoked_at is not None:
        raise LinkProblem(
            "This response link has been withdrawn by the people who sent the letter. "
            "Please reply to the email the letter came with instead."
        )
    if delivery.response_token_expires_at <= utcnow():
        raise LinkProblem(
            "This response link has expired (links last a year). Please reply to the "
            "email the letter came with instead."
        )


def load_for_link(session: Session, raw: str | None) -> Delivery:
    """The delivery behind a response link, inside its collective; LookupError (unknown
    or wrong secret: the page answers 404) or LinkProblem (revoked, expired: 410)."""
    found = find_by_response_token(session, raw)
    if found is None:
        raise LookupError("This response link is not valid.")
    delivery = enter(session, found)
    check_link_usable(delivery)
    return delivery


# --- recording an answer --------------------------------------------------------------


def record_response(
    session: Session,
    delivery: Delivery,
    *,
    kind: ResponseKind,
    channel: ResponseChannel,
    body_text: str = "",
    subject: str = "",
    responder_name: str = "",
    responder_role: str = "",
    responder_email: str = "",
    classified_by: str = "auto",
    inbound_message_id: int | None = None,
    department_account_id: int | None = None,
) -> Response:
    """Attach an answer to a sent delivery and move everything that depends on it:
    acknowledged_at (any acknowledgement, holding or substantive reply), replied_at (a
    substantive reply), the campaign's state, and the timeline. A bounce is recorded
    but is not an answer. Flushes; sends nothing itself: the signers' news is queued
    through the outbox (web.delivery.loop.notify_signers)."""
    if not delivery.is_sent:
        raise ResponseError("This letter has not been delivered yet.")
    response = Response(
        collective_id=delivery.collective_id,
        delivery_id=delivery.id,
        kind=kind.value,
        channel=channel.value,
        classified_by=classified_by,
        body_text=body_text,
        subject=subject[:300],
        responder_name=responder_name[:200],
        responder_role=responder_role[:200],
        responder_email=responder_email[:254],
        inbound_message_id=inbound_message_id,
        department_account_id=department_account_id,
    )
    session.add(response)
    session.flush()
    apply_kind(session, delivery, response)
    who = responder_name or responder_email or "the department"
    if kind is ResponseKind.BOUNCE:
        record_event(
            session,
            delivery,
            EventKind.REPLY_RECEIVED,
            "A delivery failure notice came back for this letter.",
            actor_label="mail system",
            response_id=response.id,
        )
    else:
        record_event(
            session,
            delivery,
            EventKind.ACKNOWLEDGED
            if kind is ResponseKind.ACKNOWLEDGEMENT
            else EventKind.REPLY_RECEIVED,
            f"{kind.label} from {who} ({channel.label.lower()}).",
            actor_label=who,
            response_id=response.id,
        )
        # The signers' news (an automatic update, batched by workers; once per milestone).
        notify_signers(
            session,
            delivery,
            Milestone.ANSWERED if kind is ResponseKind.SUBSTANTIVE else Milestone.ACKNOWLEDGED,
        )
    return response


def apply_kind(session: Session, delivery: Delivery, response: Response) -> None:
    """Set the delivery's clock and the campaign's state from a response's kind. Used
    when recording and again when the organiser reclassifies (it only moves forward)."""
    kind = response.kind_enum
    if kind is ResponseKind.BOUNCE:
        return
    now = response.created_at or utcnow()
    campaign = session.get(Campaign, delivery.campaign_id)
    if delivery.acknowledged_at is None:
        delivery.acknowledged_at = now
    if kind is ResponseKind.SUBSTANTIVE and delivery.replied_at is None:
        delivery.replied_at = now
    if campaign is not None:
        advance_campaign(
            campaign,
            CampaignState.RESPONDED
            if kind is ResponseKind.SUBSTANTIVE
            else CampaignState.ACKNOWLEDGED,
        )
    session.flush()


def responses_for(session: Session, delivery: Delivery) -> list[Response]:
    return list(
        session.scalars(
            select(Response)
            .where(Response.delivery_id == delivery.id)
            .order_by(Response.created_at, Response.id)
        )
    )
