"""Import every model so Base.metadata is complete (for Alembic and tests)."""

from web.accounts.models import User, UserToken
from web.campaigns.models import Campaign, LetterRevision, LetterVersion, ReviewEvent
from web.collectives.models import Collective, Invitation, Membership
from web.outbox import OutboxMessage
from web.recipients.models import Recipient
from web.signatures.models import Signature, SignatureCount

__all__ = [
    "Campaign",
    "Collective",
    "Invitation",
    "LetterRevision",
    "LetterVersion",
    "Membership",
    "OutboxMessage",
    "Recipient",
    "ReviewEvent",
    "Signature",
    "SignatureCount",
    "User",
    "UserToken",
]
