"""Import every model so Base.metadata is complete (for Alembic and tests)."""

from web.accounts.models import User, UserToken
from web.billing.models import BillingAccount, CollectiveBranding, PlanDecision, SupporterRequest
from web.billing.stripe_models import StripeEvent
from web.campaigns.models import Campaign, LetterRevision, LetterVersion, ReviewEvent
from web.collectives.models import Collective, Invitation, Membership
from web.delivery.models import Chaser, Delivery, DeliveryEvent
from web.outbox import OutboxMessage
from web.pdf.models import Document, PdfRender
from web.recipients.models import Recipient
from web.responses.models import (
    AskAssessment,
    DepartmentAccount,
    InboundMessage,
    Meeting,
    Response,
    ResponseAttachment,
)
from web.signatures.models import Signature, SignatureCount, SignatureImport
from web.signatures.trending import SignatureFlag
from web.signatures.updates import CampaignUpdate

__all__ = [
    "AskAssessment",
    "BillingAccount",
    "Campaign",
    "CampaignUpdate",
    "Chaser",
    "Collective",
    "CollectiveBranding",
    "Delivery",
    "DeliveryEvent",
    "DepartmentAccount",
    "Document",
    "InboundMessage",
    "Invitation",
    "LetterRevision",
    "LetterVersion",
    "Meeting",
    "Membership",
    "OutboxMessage",
    "PdfRender",
    "PlanDecision",
    "Recipient",
    "Response",
    "ResponseAttachment",
    "ReviewEvent",
    "Signature",
    "SignatureCount",
    "SignatureFlag",
    "SignatureImport",
    "StripeEvent",
    "SupporterRequest",
    "User",
    "UserToken",
]
