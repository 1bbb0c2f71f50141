"""Subscribing through Stripe and applying what Stripe tells us.

Two directions:

* Out: an owner subscribes (`start_checkout`, a Stripe Checkout session) or manages
  card and cancellation (`open_billing_portal`). One Stripe customer per billing account
  (a collective's own, or its federation's), created once and stored.
* In: `/stripe/webhook` stores each verified event once (`store_event`), and the worker
  applies it (`apply_stripe_event`). Applying never trusts the event's snapshot: it
  re-reads the subscription (and, for a failed payment, the invoice) from Stripe, so
  events delivered late or out of order end in Stripe's current state. Event-specific
  effects (starting or ending a grace period) also require the event to be no older
  than the newest one already applied (`BillingAccount.last_event_created`).

A failed payment starts a 14-day grace period (the paid plan stays in force while the
subscription is past due, see `effective_plan`) and emails the owners; `expire_grace`
(daily) then moves the account to Free. Nothing is deleted: campaigns, branding and the
Stripe ids all stay, and a later successful payment restores the plan.

Services flush, never commit; the request or the job commits once.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from web.billing.gateway import (
    BillingGateway,
    GatewayError,
    GatewayNotFound,
    SubscriptionState,
    invoice_subscription_id,
)
from web.billing.models import (
    LIVE_STATUSES,
    PAST_DUE,
    BillingAccount,
    Interval,
    Plan,
    account_for,
)
from web.billing.plans import FREE_COLLECTING_LIMIT
from web.billing.stripe_models import StripeEvent
from web.collectives.models import Collective, Membership, Role
from web.collectives.services import require_role
from web.db import utcnow
from web.emails import send_templated_email
from web.outbox import enqueue_job
from web.settings import Settings
from web.tenancy import system_scope

log = logging.getLogger(__name__)

GRACE_DAYS = 14
PROCESS_JOB = "workers.jobs.billing.process_stripe_event"
HANDLED_EVENTS = frozenset(
    {
        "checkout.session.completed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.paid",
        "invoice.payment_failed",
    }
)
# Statuses after which a subscription never bills again.
ENDED_STATUSES = frozenset({"canceled", "incomplete_expired"})
# A subscription in one of these is (or may still become) the account's current one.
ONGOING_STATUSES = LIVE_STATUSES | {PAST_DUE, "unpaid", "incomplete", "paused"}
EVENT_ID = re.compile(r"^evt_[A-Za-z0-9_]{1,250}$")
STRIPE_ID = re.compile(r"^[a-z]{2,8}_[A-Za-z0-9_]{1,240}$")


class BillingError(ValueError):
    """An owner's billing action that cannot be done; the message says why and what to do."""


class InvalidEvent(ValueError):
    """A verified webhook body that is not a Stripe event we can store."""


# --- prices -------------------------------------------------------------------------


def price_for(settings: Settings, plan: Plan, interval: Interval) -> str:
    """The Stripe price id configured for a plan and interval."""
    price = settings.stripe_price(plan.value, interval.value)
    if not price:
        raise BillingError(
            f"The {plan.label} plan cannot be bought {_per(interval)} on this installation "
            "yet (no Stripe price is set). Please ask the people who run it."
        )
    return price


def plan_for_price(settings: Settings, price_id: str | None) -> tuple[Plan, Interval] | None:
    """Which plan and interval a Stripe price id stands for (None: not one of ours)."""
    found = settings.plan_for_price(price_id or "")
    if found is None:
        return None
    return Plan(found[0]), Interval(found[1])


def _per(interval: Interval) -> str:
    return "monthly" if interval is Interval.MONTH else "yearly"


def plans_on_offer(account: BillingAccount) -> tuple[Plan, ...]:
    """A federation's account buys Federation; a collective's own account, Supporter."""
    return (Plan.FEDERATION,) if account.is_federation else (Plan.SUPPORTER,)


def has_ongoing_subscription(account: BillingAccount) -> bool:
    return bool(account.stripe_subscription_id) and account.subscription_status in (
        ONGOING_STATUSES - {"incomplete"}
    )


# --- out: checkout and portal --------------------------------------------------------


def _locked(session: Session, account_id: int) -> BillingAccount:
    return session.execute(
        select(BillingAccount)
        .where(BillingAccount.id == account_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()


def ensure_customer(
    session: Session, gateway: BillingGateway, account: BillingAccount, email: str
) -> str:
    """The account's Stripe customer, created on first use and stored. The account row
    is locked meanwhile, so two owners clicking at once make one customer (and Stripe's
    idempotency key covers a retry after a failed commit)."""
    locked = _locked(session, account.id)
    if locked.stripe_customer_id:
        return locked.stripe_customer_id
    customer_id = gateway.create_customer(name=locked.name, email=email, account_id=locked.id)
    locked.stripe_customer_id = customer_id
    session.flush()
    return customer_id


def billing_urls(settings: Settings, collective: Collective) -> dict[str, str]:
    base = f"{settings.base_url}/app/{collective.slug}/billing"
    return {
        "success": f"{base}/subscribed",
        "cancel": f"{base}/not-subscribed",
        "return": f"{base}/subscribe",
    }


def start_checkout(
    session: Session,
    settings: Settings,
    gateway: BillingGateway,
    membership: Membership,
    collective: Collective,
    *,
    plan: Plan,
    interval: Interval,
    email: str,
) -> str:
    """Owner only: a Stripe Checkout session for `plan` billed every `interval`; returns
    its URL. The plan changes only when Stripe confirms the payment (the webhook), never
    because the owner came back to the success page."""
    require_role(membership, Role.OWNER)
    account = account_for(session, collective.id)
    if plan not in plans_on_offer(account):
        offered = " or ".join(p.label for p in plans_on_offer(account))
        raise BillingError(f"This collective can subscribe to {offered}. Choose that plan.")
    if interval not in (Interval.MONTH, Interval.YEAR):
        raise BillingError("Choose monthly or yearly billing.")
    if has_ongoing_subscription(account):
        raise BillingError(
            "This collective already has a subscription. Use “Manage billing” to change "
            "the plan, the card or to cancel, so that you are never charged twice."
        )
    price = price_for(settings, plan, interval)
    customer_id = ensure_customer(session, gateway, account, email)
    urls = billing_urls(settings, collective)
    return gateway.create_checkout_session(
        customer_id=customer_id,
        price_id=price,
        account_id=account.id,
        success_url=urls["success"],
        cancel_url=urls["cancel"],
    )


def open_billing_portal(
    session: Session,
    settings: Settings,
    gateway: BillingGateway,
    membership: Membership,
    collective: Collective,
) -> str:
    """Owner only: Stripe's billing portal for the account (card, invoices, cancel)."""
    require_role(membership, Role.OWNER)
    account = account_for(session, collective.id)
    if not account.stripe_customer_id:
        raise BillingError("There is nothing to manage yet: subscribe to a plan first.")
    return gateway.create_portal_session(
        customer_id=account.stripe_customer_id,
        return_url=billing_urls(settings, collective)["return"],
    )


# --- in: storing events --------------------------------------------------------------


def _jsonb_safe(value: Any) -> Any:
    """PostgreSQL's JSONB cannot hold U+0000; nothing we read needs it."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_jsonb_safe(v) for v in value]
    if isinstance(value, dict):
        return {_jsonb_safe(k): _jsonb_safe(v) for k, v in value.items()}
    return value


def parse_event(payload: bytes) -> dict[str, Any]:
    """The verified body as a dict with a usable id, type and created time."""
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise InvalidEvent("The body is not JSON.") from exc
    if not isinstance(data, dict) or data.get("object") != "event":
        raise InvalidEvent("The body is not a Stripe event.")
    event_id, kind, created = data.get("id"), data.get("type"), data.get("created")
    if not isinstance(event_id, str) or not EVENT_ID.match(event_id):
        raise InvalidEvent("The event has no valid id.")
    if not isinstance(kind, str) or not 0 < len(kind) <= 100:
        raise InvalidEvent("The event has no valid type.")
    if not isinstance(created, int) or isinstance(created, bool) or not 0 < created < 2**62:
        raise InvalidEvent("The event has no valid creation time.")
    if not isinstance(data.get("data"), dict) or not isinstance(data["data"].get("object"), dict):
        raise InvalidEvent("The event carries no object.")
    return _jsonb_safe(data)


def store_event(session: Session, event: dict[str, Any]) -> bool:
    """Store a verified event once and queue its processing. Returns False for an event
    already stored (a retry or a concurrent duplicate), which is then left alone."""
    inserted = session.execute(
        pg_insert(StripeEvent)
        .values(
            id=event["id"],
            type=event["type"],
            created=event["created"],
            payload=event,
            received_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=[StripeEvent.id])
        .returning(StripeEvent.id)
    ).scalar_one_or_none()
    if inserted is None:
        return False
    enqueue_job(session, PROCESS_JOB, payload={"event_id": event["id"]})
    return True


# --- in: applying events -------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    """What processing an event did, for logs and tests."""

    account_id: int | None
    note: str = ""


def _stripe_id(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    if isinstance(value, str) and STRIPE_ID.match(value):
        return value
    return None


def _account_by_customer(session: Session, customer_id: str | None) -> BillingAccount | None:
    if not customer_id:
        return None
    return session.scalar(
        select(BillingAccount).where(BillingAccount.stripe_customer_id == customer_id)
    )


def _find_account(
    session: Session, kind: str, obj: dict[str, Any]
) -> tuple[BillingAccount | None, str | None]:
    """(account, subscription id) the event is about."""
    account = _account_by_customer(session, _stripe_id(obj.get("customer")))
    match kind:
        case "checkout.session.completed":
            return account, _stripe_id(obj.get("subscription"))
        case (
            "customer.subscription.created"
            | "customer.subscription.updated"
            | "customer.subscription.deleted"
        ):
            return account, _stripe_id(obj.get("id"))
        case _:  # invoice.paid, invoice.payment_failed
            return account, _stripe_id(invoice_subscription_id(obj))


def _timestamp(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


def apply_subscription(
    settings: Settings, account: BillingAccount, state: SubscriptionState, now: datetime
) -> str:
    """Make the account say what Stripe says about its subscription now. Returns a note
    when the state was not applied (another subscription is current; unknown price).

    A subscription still past due after its grace period keeps the account on Free
    (where `expire_grace` put it): only a payment (a live status) restores the plan."""
    current = account.stripe_subscription_id
    # Two subscriptions of one customer (an old, ended one and a new one): the ongoing
    # one wins, whichever event arrives last.
    if (
        current
        and current != state.id
        and account.subscription_status in ONGOING_STATUSES
        and state.status in ENDED_STATUSES
    ):
        return f"subscription {state.id} has ended; {current} is the current one"
    mapping = plan_for_price(settings, state.price_id)
    if mapping is None and state.status not in ENDED_STATUSES:
        return f"price {state.price_id!r} is not one of the STRIPE_PRICE_* settings"
    account.stripe_subscription_id = state.id
    account.subscription_status = state.status[:32]
    account.current_period_end = _timestamp(state.current_period_end)
    if state.status in ENDED_STATUSES:
        account.plan = Plan.FREE
        account.interval = Interval.NONE
        account.grace_until = None
    elif mapping is not None:
        lapsed = account.grace_until is not None and account.grace_until <= now
        if state.status in LIVE_STATUSES or not lapsed:
            account.plan, account.interval = mapping
    if state.status in LIVE_STATUSES:
        account.grace_until = None  # paid up: no grace period to run
    return ""


def owners_to_tell(session: Session, account: BillingAccount) -> list[tuple[str, str, Collective]]:
    """(email, display name, collective) of every owner of every collective the account
    pays for."""
    with system_scope(session):
        rows = session.execute(
            select(Membership, Collective)
            .join(Collective, Collective.id == Membership.collective_id)
            .where(
                Collective.billing_account_id == account.id,
                Membership.role == Role.OWNER,
            )
            .order_by(Collective.id, Membership.id),
            execution_options={"all_collectives": True},
        ).all()
    return [(m.user.email, m.user.display_name, c) for m, c in rows]


def start_grace(
    session: Session, settings: Settings, account: BillingAccount, now: datetime
) -> bool:
    """Start the grace period unless one has started since the last payment (running,
    or run out: a past-due subscription gets one grace period, however often Stripe
    retries the charge); email the owners. Returns whether it started."""
    if account.grace_until is not None:
        return False
    account.grace_until = now + timedelta(days=GRACE_DAYS)
    plan = Plan(account.plan) if account.plan in Plan._value2member_map_ else Plan.FREE
    for email, name, collective in owners_to_tell(session, account):
        send_templated_email(
            session,
            settings,
            to=email,
            template="billing_payment_failed",
            subject=f"Payment failed for {collective.name}: please update your card",
            context={
                "name": name,
                "collective": collective,
                "plan": plan,
                "grace_until": account.grace_until,
                "billing_url": billing_urls(settings, collective)["return"],
                "grace_days": GRACE_DAYS,
            },
            collective_id=collective.id,
        )
    return True


def apply_stripe_event(
    session: Session,
    settings: Settings,
    gateway: BillingGateway,
    event_id: str,
    now: datetime | None = None,
) -> Applied:
    """Apply one stored event (idempotent: an event already processed is left alone).

    Re-reads the subscription from Stripe rather than trusting the event; locks the
    billing account, so events of one account apply one at a time. Raises GatewayError
    when Stripe cannot be reached (the job is retried); records anything that can never
    succeed in the event's `error` and marks it processed.
    """
    now = now or utcnow()
    event = session.execute(
        select(StripeEvent).where(StripeEvent.id == event_id).with_for_update()
    ).scalar_one_or_none()
    if event is None or event.processed_at is not None:
        return Applied(None, "already processed")
    if event.type not in HANDLED_EVENTS:
        event.processed_at = now
        return Applied(None, "not an event Chorus acts on")
    obj = event.payload.get("data", {}).get("object", {})
    found, subscription_id = _find_account(session, event.type, obj)
    if found is None:
        event.error = "no billing account has this Stripe customer"
        event.processed_at = now
        return Applied(None, event.error)
    account = _locked(session, found.id)
    event.billing_account_id = account.id
    notes: list[str] = []
    if subscription_id:
        try:
            state = gateway.retrieve_subscription(subscription_id)
        except GatewayNotFound as exc:
            state = None
            notes.append(str(exc))
        if state is not None:
            if state.customer_id != account.stripe_customer_id:
                notes.append(f"subscription {state.id} belongs to another customer")
            else:
                notes.append(apply_subscription(settings, account, state, now))
    fresh = account.last_event_created is None or event.created >= account.last_event_created
    if fresh:
        if event.type == "invoice.payment_failed":
            notes.append(_payment_failed(session, settings, gateway, account, obj, now))
        elif event.type == "invoice.paid":
            account.grace_until = None
        account.last_event_created = event.created
    else:
        notes.append("older than an event already applied: only the re-read state applied")
    event.error = "; ".join(n for n in notes if n)[:2000]
    event.processed_at = now
    session.flush()
    return Applied(account.id, event.error)


def _payment_failed(  # noqa: PLR0917 - private helper of apply_stripe_event
    session: Session,
    settings: Settings,
    gateway: BillingGateway,
    account: BillingAccount,
    invoice: dict[str, Any],
    now: datetime,
) -> str:
    invoice_id = _stripe_id(invoice.get("id"))
    if invoice_id is None:
        return "the invoice has no id"
    try:
        current = gateway.retrieve_invoice(invoice_id)
    except GatewayNotFound as exc:
        return str(exc)
    if current.status in ("paid", "void", "draft"):
        return f"invoice {invoice_id} is {current.status} now: no grace period"
    if account.plan == Plan.FREE or account.subscription_status in ENDED_STATUSES | {"incomplete"}:
        # A first payment that failed (nothing was bought yet) or an ended subscription.
        return "no paid plan in force: no grace period"
    start_grace(session, settings, account, now)
    return ""


def expire_grace(session: Session, settings: Settings, now: datetime | None = None) -> int:
    """Move every account whose grace period has ended (and that has not paid since) to
    Free, and email the owners of its collectives that it happened and that nothing was
    deleted. Keeps everything else: the Stripe ids, the subscription's status, the ended
    grace date (as the record of when it lapsed), and all of the collectives' data.
    Returns how many accounts moved. Idempotent: an account moves (and its owners hear
    of it) once, since the UPDATE picks only accounts not yet on Free."""
    now = now or utcnow()
    moved = session.scalars(
        update(BillingAccount)
        .where(
            BillingAccount.grace_until.is_not(None),
            BillingAccount.grace_until <= now,
            BillingAccount.plan != Plan.FREE,
            BillingAccount.subscription_status.not_in(LIVE_STATUSES),
        )
        .values(plan=Plan.FREE, interval=Interval.NONE, updated_at=now)
        .returning(BillingAccount.id)
        .execution_options(synchronize_session=False)
    ).all()
    for account_id in moved:
        account = session.get(BillingAccount, account_id)
        if account is None:
            continue
        session.refresh(account)
        for email, name, collective in owners_to_tell(session, account):
            send_templated_email(
                session,
                settings,
                to=email,
                template="billing_moved_to_free",
                subject=f"{collective.name} is now on the Free plan",
                context={
                    "name": name,
                    "collective": collective,
                    "free_limit": FREE_COLLECTING_LIMIT,
                    "billing_url": billing_urls(settings, collective)["return"],
                },
                collective_id=collective.id,
            )
    return len(moved)


__all__ = [
    "GRACE_DAYS",
    "HANDLED_EVENTS",
    "Applied",
    "BillingError",
    "GatewayError",
    "InvalidEvent",
    "apply_stripe_event",
    "expire_grace",
    "open_billing_portal",
    "parse_event",
    "plan_for_price",
    "price_for",
    "start_checkout",
    "store_event",
]
