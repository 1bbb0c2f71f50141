"""Import every model so Base.metadata is complete (for Alembic and tests)."""

from web.accounts.models import User, UserToken
from web.collectives.models import Collective, Invitation, Membership
from web.outbox import OutboxMessage

__all__ = ["Collective", "Invitation", "Membership", "OutboxMessage", "User", "UserToken"]
