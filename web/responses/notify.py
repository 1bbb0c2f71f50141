"""Telling the organisers that the department answered, whichever way it came.

The response page, the department inbox and a reply by email all end here, so the
collective's owners and organisers get the same email (`response_received`) saying what
came, from whom, through which door, and where to read it. Emails leave through the
outbox after commit. Needs an app context (the templates).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from web.campaigns.models import Campaign
from web.collectives.models import Collective, Membership, Role
from web.delivery.models import Delivery
from web.emails import send_templated_email
from web.responses.models import ResponseChannel
from web.settings import Settings

CHANNEL_WORDS = {
    ResponseChannel.PAGE: "on its response page",
    ResponseChannel.INBOX: "from the department inbox",
    ResponseChannel.EMAIL: "by email",
}


def organisers(session: Session) -> list[tuple[str, str]]:
    """(name, email) of the current collective's owners and organisers."""
    members = session.scalars(
        select(Membership)
        .where(Membership.role.in_([Role.OWNER, Role.ORGANISER]))
        .order_by(Membership.id)
    )
    return [(m.user.display_name, m.user.email) for m in members if m.user is not None]


def delivery_url(settings: Settings, collective: Collective, delivery: Delivery) -> str:
    """The organisers' delivery page (web/delivery, `delivery.show`)."""
    return (
        f"{settings.base_url}/app/{collective.slug}/campaigns/{delivery.campaign_id}"
        f"/deliveries/{delivery.id}"
    )


def notify_organisers(
    session: Session,
    settings: Settings,
    delivery: Delivery,
    *,
    what: str,
    responder: str,
    channel: ResponseChannel = ResponseChannel.PAGE,
    body_excerpt: str = "",
) -> int:
    """Queue one email to each owner and organiser of the delivery's collective (the
    current tenant): the department answered (`what`, e.g. "a full reply"), from whom,
    through `channel`, with the start of what they wrote and a link to the delivery
    page. Returns how many emails were queued."""
    collective = session.get(Collective, delivery.collective_id)
    campaign = session.get(Campaign, delivery.campaign_id)
    if collective is None or campaign is None:
        return 0
    subject = f"{delivery.recipient_name} answered: {what}"[:200]
    people = organisers(session)
    for name, email in people:
        send_templated_email(
            session,
            settings,
            to=email,
            template="response_received",
            subject=subject,
            context={
                "name": name,
                "what": what,
                "responder": responder,
                "channel_words": CHANNEL_WORDS[channel],
                "excerpt": body_excerpt[:1000],
                "collective": collective,
                "campaign": campaign,
                "delivery": delivery,
                "delivery_url": delivery_url(settings, collective, delivery),
            },
            collective_id=delivery.collective_id,
        )
    return len(people)
