"""Import every model so Base.metadata is complete (for Alembic and tests)."""

from web.accounts.models import User, UserToken
from web.campaigns.models import Campaign, LetterRevision, LetterVersion, ReviewEvent
from web.collectives.models import Collective, Invitation, Membership
from web.outbox import OutboxMessage
from web.recipients.models import Recipient
from web.signatures.models import Signature, SignatureCount, SignatureImport
from web.signatures.trending import SignatureFlag
from web.signatures.updates import CampaignUpdate

__all__ = [
    "Campaign",
    "CampaignUpdate",
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
    "SignatureFlag",
    "SignatureImport",
    "User",
    "UserToken",
]
