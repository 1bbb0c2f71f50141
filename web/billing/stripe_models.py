"""Stripe webhook events, stored once by Stripe's own event id.

The webhook inserts with ON CONFLICT DO NOTHING on the primary key, so however often
Stripe delivers an event (retries, or a hundred deliveries at once) it is stored and
processed once. Not tenant-scoped: an event arrives before anyone knows whose it is,
and only the platform (the webhook and its worker) reads these rows. Rows are kept:
they are the record of what Stripe told us, with when and how it was processed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from web.db import Base, utcnow


class StripeEvent(Base):
    __tablename__ = "stripe_events"

    # Stripe's event id ("evt_..."): the idempotency key of the whole pipeline.
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100), index=True)
    # The event's own `created` (Unix seconds): its place in Stripe's order.
    created: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()"), default=utcnow
    )
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Why processing did not apply the event (no such customer, an unknown price, ...);
    # empty when it was applied or when it needed nothing.
    error: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The billing account the event was applied to, once known.
    billing_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("billing_accounts.id", ondelete="SET NULL"), index=True
    )
