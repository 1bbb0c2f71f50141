"""The signing fast path (web/signatures/fastpath.py): a plainly valid submission is
answered in front of Flask, exactly as the view would answer it; anything else reaches
the view, which explains it; limits count once either way; idle pooled connections are
checked before use."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tests.conftest import csrf_token
from tests.test_signatures import _published, _sign
from web import db as web_db
from web.db import Database
from web.outbox import OutboxMessage
from web.signatures.fastpath import SignFastPath
from web.signatures.models import Signature, SignatureStatus
from web.tenancy import set_current_collective


def _fast_path(app: Flask) -> SignFastPath:
    layer: Any = app.wsgi_app
    while not isinstance(layer, SignFastPath):
        layer = layer.app  # CountFastPath in front
    return layer


@pytest.fixture
def view_calls(app: Flask) -> Iterator[list[str]]:
    """Records each signing POST the fast path passes on to Flask."""
    calls: list[str] = []
    fast = _fast_path(app)
    flask_app = fast.wsgi_app

    def counting(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"].endswith("/sign") and environ["REQUEST_METHOD"] == "POST":
            calls.append(environ["PATH_INFO"].split("/")[2])
        return flask_app(environ, start_response)

    fast.wsgi_app = counting
    try:
        yield calls
    finally:
        fast.wsgi_app = flask_app


def _signatures(session: Session, collective_id: int) -> list[Signature]:
    session.expire_all()
    set_current_collective(session, collective_id)
    return list(session.scalars(select(Signature).order_by(Signature.id)))


def test_a_valid_signature_is_stored_without_the_view_and_answered_the_same(
    client: FlaskClient, session: Session, app: Flask, view_calls: list[str]
) -> None:
    collective, campaign = _published(session, app)
    page = f"/{collective.slug}/{campaign.slug}"
    response = _sign(client, page, name="Fast Signer", email="fast@example.org")
    assert response.status_code == 303
    assert response.headers["Location"] == f"{page}/sign/check-email"
    assert view_calls == []  # answered in front of Flask
    # The app's security headers, as every page has them.
    assert "default-src" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "max-age" in response.headers["Strict-Transport-Security"]
    assert "Set-Cookie" not in response.headers
    # The page it leads to.
    assert "Check your email" in client.get(response.headers["Location"]).get_data(as_text=True)
    (signature,) = _signatures(session, collective.id)
    assert (signature.name, signature.email, signature.status) == (
        "Fast Signer",
        "fast@example.org",
        SignatureStatus.PENDING.value,
    )
    owed = session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "email", OutboxMessage.done_at.is_(None))
    ).all()
    assert len(owed) == 1  # its confirmation email is on its way


@pytest.mark.parametrize(
    ("fields", "status", "shown"),
    [
        ({"name": ""}, 422, "Enter your name."),
        ({"email": "not-an-address"}, 422, "Enter an email address in the correct format"),
        ({"email": "someone@mailinator.com"}, 422, "disposable email services"),
        ({"name": "x" * 121}, 422, "Your name must be 120 characters or fewer"),
        ({"statement": "y" * 2001}, 422, "Your own words must be 2000 characters or fewer."),
        ({"csrf_token": "forged"}, 400, ""),
    ],
)
def test_anything_doubtful_reaches_the_view_which_explains_it(
    client: FlaskClient,
    session: Session,
    app: Flask,
    view_calls: list[str],
    fields: dict[str, str],
    status: int,
    shown: str,
) -> None:
    collective, campaign = _published(session, app)
    response = _sign(client, f"/{collective.slug}/{campaign.slug}", **fields)
    assert response.status_code == status
    assert shown in response.get_data(as_text=True)
    assert view_calls == [campaign.slug]
    assert _signatures(session, collective.id) == []


def test_unusual_bodies_go_to_the_view(
    client: FlaskClient, session: Session, app: Flask, view_calls: list[str]
) -> None:
    collective, campaign = _published(session, app)
    page = f"/{collective.slug}/{campaign.slug}"
    token = csrf_token(client.get(page).get_data(as_text=True))
    base = f"csrf_token={token}&name=Sam&email=sam%40example.org"
    # A repeated field, an unknown field, a null byte, invalid UTF-8, multipart: each
    # goes to the view, which refuses the null byte with a message and keeps the others
    # (sent without the form's timestamp) aside, unconfirmed.
    sent = [
        (base + "&name=Again", "application/x-www-form-urlencoded"),
        (base + "&extra=1", "application/x-www-form-urlencoded"),
        (base + "&postcode=%00", "application/x-www-form-urlencoded"),
        (base + "&statement=%FF%FE", "application/x-www-form-urlencoded"),
    ]
    statuses = [
        client.post(f"{page}/sign", data=body, content_type=kind).status_code for body, kind in sent
    ]
    multipart = {"csrf_token": token, "name": "Sam", "email": "sam@example.org"}
    statuses.append(
        client.post(f"{page}/sign", data=multipart, content_type="multipart/form-data").status_code
    )
    assert statuses[2] == 400  # the null byte
    assert len(view_calls) == 5
    assert all(
        s.status == SignatureStatus.QUARANTINED.value for s in _signatures(session, collective.id)
    )


def test_the_strict_https_referrer_rule_holds_on_the_fast_path(
    client: FlaskClient, session: Session, app: Flask, view_calls: list[str]
) -> None:
    collective, campaign = _published(session, app)
    page = f"/{collective.slug}/{campaign.slug}"
    client.environ_base["HTTP_REFERER"] = "https://evil.example/"
    response = _sign(client, page)
    assert response.status_code == 400  # Flask-WTF: the referrer does not match the host
    assert view_calls == [campaign.slug]
    assert _signatures(session, collective.id) == []


def test_a_submission_counts_once_against_the_limits_when_the_view_answers(
    client: FlaskClient, session: Session, app: Flask, view_calls: list[str], monkeypatch: Any
) -> None:
    """The fast path counts the limits, then steps aside when the signing rules refuse (a
    postcode this campaign requires is missing); the view must not count it again."""
    strict = dataclasses.replace(
        app.extensions["chorus.settings"], sign_limit_per_ip="3 per minute"
    )
    monkeypatch.setitem(app.extensions, "chorus.settings", strict)
    monkeypatch.setattr(_fast_path(app), "settings", strict)
    collective, campaign = _published(session, app)
    campaign.postcode_mode = "required"
    session.flush()
    page = f"/{collective.slug}/{campaign.slug}"
    first = _sign(client, page, email="a@example.org")
    second = _sign(client, page, email="b@example.org")
    assert (first.status_code, second.status_code) == (422, 422)
    assert "Enter your postcode." in second.get_data(as_text=True)
    assert len(view_calls) == 2
    # Two counted so far: the third is within "3 per minute", the fourth is not.
    assert _sign(client, page, email="c@example.org", postcode="CF10 1AA").status_code == 303
    refused = _sign(client, page, email="d@example.org", postcode="CF10 1AA")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert [s.email for s in _signatures(session, collective.id)] == ["c@example.org"]


def test_an_idle_pooled_connection_that_died_is_replaced_before_use(
    app: Flask, monkeypatch: Any
) -> None:
    """Connections idle for PING_IDLE_SECONDS are pinged at checkout; a dead one is
    swapped for a new one instead of failing the request."""
    db = Database(str(app.extensions["chorus.db"].engine.url.render_as_string(False)))
    try:
        with db.engine.connect() as conn:
            pid = conn.execute(text("select pg_backend_pid()")).scalar_one()
        # Kill it behind the pool's back (as a server restart would).
        admin = app.extensions["chorus.db"].engine
        with admin.connect() as other:
            other.execute(text("select pg_terminate_backend(:pid)"), {"pid": pid})
            other.commit()
        monkeypatch.setattr(web_db, "PING_IDLE_SECONDS", 0.0)
        with db.engine.connect() as conn:
            assert conn.execute(text("select 1")).scalar_one() == 1
            assert conn.execute(text("select pg_backend_pid()")).scalar_one() != pid
    finally:
        db.engine.dispose()
