"""Helpers for the Stripe tests: settings pointed at localstripe, real webhook signatures,
Stripe objects made in localstripe with the real `stripe` library, and a recording
stand-in for the two endpoints localstripe does not have (Checkout and Billing Portal
sessions)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import stripe

from web.settings import Settings

SECRET_KEY = "sk_test_chorus"
WEBHOOK_SECRET = "whsec_chorus_test_secret"
RUN = secrets.token_hex(3)
PRICES = {
    "stripe_price_supporter_monthly": f"price_supporter_month_{RUN}",
    "stripe_price_supporter_yearly": f"price_supporter_year_{RUN}",
    "stripe_price_federation_monthly": f"price_federation_month_{RUN}",
    "stripe_price_federation_yearly": f"price_federation_year_{RUN}",
}
AMOUNTS = {"month": 500, "year": 5000}  # pence
GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"  # attaches, then every charge is declined


def stripe_settings(settings: Settings, api_base: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "stripe_secret_key": SECRET_KEY,
        "stripe_publishable_key": "pk_test_chorus",
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "stripe_api_base": api_base,
        **PRICES,
    }
    values.update(overrides)
    return settings.with_overrides(**values)


def client_for(api_base: str) -> stripe.StripeClient:
    return stripe.StripeClient(SECRET_KEY, base_addresses={"api": api_base})


_prices_made: set[str] = set()


def ensure_prices(api_base: str) -> None:
    """The four prices, as localstripe plans (it predates the Prices API; a plan's id
    appears where a price's would)."""
    if api_base in _prices_made:
        return
    client = client_for(api_base)
    for name, price_id in PRICES.items():
        interval = "year" if name.endswith("yearly") else "month"
        client.v1.plans.create(
            params={
                "id": price_id,
                "amount": AMOUNTS[interval],
                "currency": "gbp",
                "interval": interval,
                "product": {"name": name.split("_")[2].capitalize()},
            }
        )
    _prices_made.add(api_base)


def attach_card(client: stripe.StripeClient, customer_id: str, number: str) -> None:
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2040, "cvc": "123"},
        }
    )
    client.v1.payment_methods.attach(method.id, params={"customer": customer_id})
    client.v1.customers.update(
        customer_id, params={"invoice_settings": {"default_payment_method": method.id}}
    )


def subscribe(api_base: str, customer_id: str, price_id: str) -> dict[str, Any]:
    """A paid, active subscription in localstripe (as Checkout would have made it)."""
    client = client_for(api_base)
    attach_card(client, customer_id, GOOD_CARD)
    subscription = client.v1.subscriptions.create(
        params={"customer": customer_id, "items": [{"plan": price_id}]}
    )
    return subscription.to_dict()


def retrieve(api_base: str, kind: str, object_id: str) -> dict[str, Any]:
    service = getattr(client_for(api_base).v1, kind)
    return dict(service.retrieve(object_id).to_dict())


# --- webhook deliveries ----------------------------------------------------------------


def sign(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The Stripe-Signature header as Stripe computes it: HMAC-SHA256 with the endpoint
    secret over "{t}.{payload}", hex, as t=...,v1=... (docs.stripe.com/webhooks)."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def make_event(kind: str, obj: dict[str, Any], created: int | None = None) -> dict[str, Any]:
    return {
        "id": f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()) if created is None else created,
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
    }


def deliver(client: Any, event: dict[str, Any] | str, **headers: str) -> Any:
    payload = event if isinstance(event, str) else json.dumps(event)
    return client.post(
        "/stripe/webhook",
        data=payload.encode(),
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": sign(payload),
            **headers,
        },
    )


# --- a recording stand-in for Checkout and the Billing Portal ----------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class StripeRecorder:
    """Answers POST /v1/checkout/sessions and /v1/billing_portal/sessions as Stripe does
    (localstripe has neither) and records each request; passes every other request on
    to localstripe unchanged, so customers are real localstripe customers."""

    upstream: str
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)

    def sessions(self, kind: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == f"/v1/{kind}/sessions"]


ANSWERS = {
    "/v1/checkout/sessions": ("cs_test_", "checkout.session", "https://checkout.stripe.com/c/pay/"),
    "/v1/billing_portal/sessions": (
        "bps_",
        "billing_portal.session",
        "https://billing.stripe.com/p/session/",
    ),
}


@contextmanager
def stripe_recorder(upstream: str) -> Iterator[StripeRecorder]:
    recorder = StripeRecorder(upstream)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def _forward(self, body: bytes | None) -> None:
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() in {"authorization", "content-type", "idempotency-key"}
            }
            request = urllib.request.Request(  # noqa: S310 - the loopback localstripe URL
                upstream + self.path, data=body, method=self.command, headers=headers
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
                    status, content = answer.status, answer.read()
            except urllib.error.HTTPError as exc:
                status, content = exc.code, exc.read()
            self._answer(status, content)

        def _answer(self, status: int, content: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def do_GET(self) -> None:
            self._forward(None)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path in ANSWERS:
                form = dict(parse_qsl(body.decode()))
                recorder.requests.append(
                    Recorded("POST", self.path, dict(self.headers.items()), form)
                )
                prefix, kind, base = ANSWERS[self.path]
                object_id = prefix + secrets.token_hex(12)
                answer = {"id": object_id, "object": kind, "url": base + object_id}
                answer |= {k: v for k, v in form.items() if "[" not in k}
                self._answer(200, json.dumps(answer).encode())
                return
            self._forward(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()


def make_past_due(api_base: str, subscription: dict[str, Any]) -> dict[str, Any]:
    """Turn an active monthly subscription past due, as a failed renewal does: the card
    now declines and the next invoice (here: the switch to yearly billing, which
    localstripe invoices at once) cannot be paid. Returns that open invoice."""
    client = client_for(api_base)
    attach_card(client, subscription["customer"], DECLINED_CARD)
    updated = client.v1.subscriptions.update(
        subscription["id"],
        params={
            "items": [
                {
                    "id": subscription["items"]["data"][0]["id"],
                    "plan": PRICES["stripe_price_supporter_yearly"],
                }
            ]
        },
    )
    assert updated.status == "past_due", updated.status
    invoice = retrieve(api_base, "invoices", str(updated.latest_invoice))
    assert invoice["status"] == "open", invoice["status"]
    return invoice


def pay_invoice(api_base: str, customer_id: str, invoice_id: str) -> dict[str, Any]:
    """The owner fixes the card and the invoice is paid."""
    client = client_for(api_base)
    attach_card(client, customer_id, GOOD_CARD)
    return dict(client.v1.invoices.pay(invoice_id).to_dict())
