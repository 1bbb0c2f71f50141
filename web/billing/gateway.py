"""The billing gateway: what Chorus asks of a payment provider, and the Stripe answer.

`BillingGateway` is the interface the views and the webhook worker use; `StripeGateway`
is the one implementation, built on the official `stripe` library.

Why a `stripe.StripeClient` per gateway rather than the module's global configuration
(`stripe.api_key`, `stripe.api_base`): the globals are process-wide mutable state. Two
apps in one process (the test suite builds several, pointed at different loopback
servers; a worker may run beside a web app) would overwrite each other's key and base
address, and a request could leave with another app's credentials. A client carries its
own key and base address, is safe to share between threads, and costs nothing next to
the network call it makes, so `gateway_from_settings(settings)` builds one whenever a
request or job needs Stripe, from that app's own settings.

Every method raises `GatewayError` (with a message a person can act on) when Stripe
cannot be reached or refuses; callers show it or retry, and never half-apply a change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import stripe

if TYPE_CHECKING:
    from web.settings import Settings

# Seconds before a call to Stripe is abandoned: a request thread must not hang on it.
TIMEOUT_SECONDS = 20
NETWORK_RETRIES = 2  # the library retries connection errors with idempotency keys
STRIPE_API = "https://api.stripe.com"


class GatewayError(RuntimeError):
    """Stripe could not do what was asked; the message is fit to show to an owner."""


class GatewayNotConfigured(GatewayError):
    """No Stripe secret key is set, so nothing can be bought on this installation."""


@dataclass(frozen=True)
class SubscriptionState:
    """A subscription as Stripe holds it now (not as some event once described it)."""

    id: str
    customer_id: str
    status: str
    price_id: str | None
    current_period_end: int | None  # a Unix timestamp
    cancel_at_period_end: bool


@dataclass(frozen=True)
class InvoiceState:
    id: str
    customer_id: str
    status: str  # draft, open, paid, uncollectible, void
    subscription_id: str | None


class BillingGateway(Protocol):
    """What Chorus needs from a payment provider."""

    def create_customer(self, *, name: str, email: str, account_id: int) -> str:
        """Create the one customer of a billing account; returns its id. Safe to repeat
        for the same account within a day (an idempotency key names the account)."""

    def create_checkout_session(
        self,
        *,
        customer_id: str,
        price_id: str,
        account_id: int,
        success_url: str,
        cancel_url: str,
    ) -> str:
        """A hosted subscription checkout for `price_id`; returns the URL to send the
        owner to."""

    def create_portal_session(self, *, customer_id: str, return_url: str) -> str:
        """A hosted billing portal (change card, cancel); returns its URL."""

    def retrieve_subscription(self, subscription_id: str) -> SubscriptionState:
        """The subscription's current state."""

    def retrieve_invoice(self, invoice_id: str) -> InvoiceState:
        """The invoice's current state."""


def _field(obj: Any, *path: str) -> Any:
    """obj[path[0]][path[1]]..., or None where a step is missing (Stripe's objects are not
    dicts any more, and older and newer API versions put some fields elsewhere)."""
    value = obj
    for step in path:
        if value is None:
            return None
        if isinstance(value, list):
            try:
                value = value[int(step)]
            except (ValueError, IndexError):
                return None
            continue
        try:
            value = value[step]
        except (KeyError, TypeError, IndexError):
            return None
    return value


def _id_of(value: Any) -> str | None:
    """An id whether Stripe sent it bare or expanded into an object."""
    if isinstance(value, str):
        return value
    found = _field(value, "id")
    return found if isinstance(found, str) else None


def subscription_state(data: Any) -> SubscriptionState:
    """Read a subscription object (a `stripe.Subscription` or its dict form)."""
    first_item = _field(data, "items", "data", "0")
    # Newer API versions bill prices; older ones (and localstripe) plans. Both carry the
    # id Chorus configures as STRIPE_PRICE_*.
    price_id = _id_of(_field(first_item, "price")) or _id_of(_field(first_item, "plan"))
    # Since API version 2025-03-31 the billing period lives on each item.
    period_end = _field(data, "current_period_end") or _field(first_item, "current_period_end")
    return SubscriptionState(
        id=str(_field(data, "id")),
        customer_id=_id_of(_field(data, "customer")) or "",
        status=str(_field(data, "status") or ""),
        price_id=price_id,
        current_period_end=int(period_end) if isinstance(period_end, int) else None,
        cancel_at_period_end=bool(_field(data, "cancel_at_period_end")),
    )


def invoice_subscription_id(data: Any) -> str | None:
    """The subscription an invoice bills: top-level in older API versions, under
    parent.subscription_details since 2025-03-31."""
    return _id_of(_field(data, "subscription")) or _id_of(
        _field(data, "parent", "subscription_details", "subscription")
    )


class StripeGateway:
    """`BillingGateway` on the official library, against `api_base` (Stripe itself, or
    a Stripe-compatible server in tests)."""

    def __init__(self, api_key: str, api_base: str = STRIPE_API) -> None:
        if not api_key:
            raise GatewayNotConfigured(
                "Payments are not set up on this installation yet (STRIPE_SECRET_KEY is "
                "empty). Please ask the people who run it."
            )
        self.api_base = api_base.rstrip("/")
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": self.api_base},
            max_network_retries=NETWORK_RETRIES,
            http_client=stripe.RequestsClient(timeout=TIMEOUT_SECONDS),
        )

    def create_customer(self, *, name: str, email: str, account_id: int) -> str:
        try:
            customer = self.client.v1.customers.create(
                params={
                    "name": name[:256],
                    "email": email,
                    "metadata": {"billing_account_id": str(account_id)},
                },
                options={"idempotency_key": f"chorus-billing-account-{account_id}-customer"},
            )
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc
        return str(customer.id)

    def create_checkout_session(
        self,
        *,
        customer_id: str,
        price_id: str,
        account_id: int,
        success_url: str,
        cancel_url: str,
    ) -> str:
        metadata = {"billing_account_id": str(account_id)}
        try:
            session = self.client.v1.checkout.sessions.create(
                params={
                    "mode": "subscription",
                    "customer": customer_id,
                    "line_items": [{"price": price_id, "quantity": 1}],
                    "client_reference_id": str(account_id),
                    "metadata": metadata,
                    "subscription_data": {"metadata": metadata},
                    "success_url": success_url,
                    "cancel_url": cancel_url,
                }
            )
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc
        url = _field(session, "url")
        if not isinstance(url, str) or not url.startswith("https://"):
            raise GatewayError("Stripe did not give us a checkout page. Please try again later.")
        return url

    def create_portal_session(self, *, customer_id: str, return_url: str) -> str:
        try:
            session = self.client.v1.billing_portal.sessions.create(
                params={"customer": customer_id, "return_url": return_url}
            )
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc
        url = _field(session, "url")
        if not isinstance(url, str) or not url.startswith("https://"):
            raise GatewayError("Stripe did not give us a billing page. Please try again later.")
        return url

    def retrieve_subscription(self, subscription_id: str) -> SubscriptionState:
        try:
            subscription = self.client.v1.subscriptions.retrieve(subscription_id)
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc
        return subscription_state(subscription)

    def retrieve_invoice(self, invoice_id: str) -> InvoiceState:
        try:
            invoice = self.client.v1.invoices.retrieve(invoice_id)
        except stripe.StripeError as exc:
            raise _gateway_error(exc) from exc
        return InvoiceState(
            id=str(invoice.id),
            customer_id=_id_of(_field(invoice, "customer")) or "",
            status=str(_field(invoice, "status") or ""),
            subscription_id=invoice_subscription_id(invoice),
        )


def _gateway_error(exc: stripe.StripeError) -> GatewayError:
    if isinstance(exc, stripe.APIConnectionError):
        return GatewayError("We could not reach Stripe just now. Please try again in a minute.")
    if isinstance(exc, stripe.AuthenticationError):
        return GatewayError(
            "Stripe refused this installation's key. Please tell the people who run it."
        )
    if isinstance(exc, stripe.InvalidRequestError) and exc.http_status == 404:
        return GatewayNotFound(f"Stripe has no such object ({exc.user_message or exc}).")
    return GatewayError(f"Stripe could not do that: {exc.user_message or 'unknown error'}.")


class GatewayNotFound(GatewayError):
    """Stripe answered 404: the object does not exist (in this mode, on this account)."""


def gateway_from_settings(settings: Settings) -> StripeGateway:
    """The Stripe gateway of an app's settings (raises GatewayNotConfigured without a key)."""
    return StripeGateway(settings.stripe_secret_key, settings.stripe_api_base or STRIPE_API)
