"""Sign-up with email verification, log in and out, password reset, tokens, headers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tests.conftest import Mailbox, csrf_token, form_post
from tests.factories import PASSWORD, login, make_user
from web.accounts.models import User, UserToken
from web.accounts.services import password_hasher
from web.settings import Settings


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _sign_up(client: FlaskClient, email: str, name: str = "Ada Organiser") -> Any:
    return form_post(
        client, "/signup", {"display_name": name, "email": email, "password": PASSWORD}
    )


def test_signatory_signs_up_verifies_by_email_and_lands_logged_in(
    client: FlaskClient, session: Session, mailbox: Mailbox, work: Any
) -> None:
    response = _sign_up(client, "Ada@Example.org ")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/signup/check-email")
    user = session.scalar(select(User).where(User.email == "ada@example.org"))
    assert user is not None
    assert user.email_verified_at is None
    assert mailbox.to("ada@example.org") == []  # nothing leaves before the worker runs
    work()
    [msg] = mailbox.to("ada@example.org")
    assert msg.get_body(preferencelist=("html",)) is not None
    link = mailbox.link_in(msg, "/verify/")

    page = client.get(_path(link))
    assert page.status_code == 200
    assert "Confirm my email address" in page.get_data(as_text=True)
    session.refresh(user)
    assert user.email_verified_at is None  # a GET (a link scanner) confirms nothing

    confirmed = client.post(
        _path(link), data={"csrf_token": csrf_token(page.get_data(as_text=True))}
    )
    assert confirmed.status_code == 302
    session.refresh(user)
    assert user.email_verified_at is not None
    assert client.get("/app/").status_code == 200

    again = client.get(_path(link))  # single use
    assert again.status_code == 404
    assert "not valid" in again.get_data(as_text=True)


def test_sign_up_with_a_registered_email_reveals_nothing_and_warns_the_owner(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, work: Any
) -> None:
    make_user(session, app, email="taken@example.org")
    response = _sign_up(client, "taken@example.org", name="Someone Else")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/signup/check-email")
    assert (
        session.scalar(
            select(func.count()).select_from(User).where(User.email == "taken@example.org")
        )
        == 1
    )
    work()
    [msg] = mailbox.to("taken@example.org")
    assert "already has one" in mailbox.text_of(msg)


def test_unverified_account_cannot_log_in_and_gets_a_fresh_link(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, work: Any
) -> None:
    user = make_user(session, app, email="slow@example.org", verified=False)
    response = form_post(client, "/login", {"email": user.email, "password": PASSWORD})
    assert response.status_code == 302
    page = client.get(_path(response.headers["Location"]))
    assert "Please confirm your email address before you log in." in page.get_data(as_text=True)
    assert client.get("/account").status_code == 302  # not logged in
    work()
    assert "/verify/" in mailbox.text_of(mailbox.to("slow@example.org")[0])


def test_wrong_password_gets_one_message_for_unknown_and_known_accounts(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    user = make_user(session, app)
    known = form_post(client, "/login", {"email": user.email, "password": "wrong password!"})
    unknown = form_post(client, "/login", {"email": "ghost@example.org", "password": "whatever12"})
    assert known.status_code == unknown.status_code == 422
    message = "That email and password do not match an account."
    assert message in known.get_data(as_text=True)
    assert message in unknown.get_data(as_text=True)


def test_log_in_and_log_out(client: FlaskClient, session: Session, app: Flask) -> None:
    user = make_user(session, app)
    login(client, user)
    assert client.get("/account").status_code == 200
    page = client.get("/account").get_data(as_text=True)
    assert user.email in page
    response = client.post("/logout", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 302
    assert client.get("/account").status_code == 302  # back to the login page


def test_logout_needs_a_post_with_csrf(client: FlaskClient, session: Session, app: Flask) -> None:
    user = make_user(session, app)
    login(client, user)
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert client.get("/account").status_code == 200  # still logged in


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "/\\evil.example",
        "https:evil.example",
        "https://evil.example/",
        "/\\/evil.example",
        "\\\\evil.example",
        "/%0d%0aLocation:%20https://evil.example",
        "javascript:alert(1)",
    ],
)
def test_next_redirects_only_to_our_own_paths(
    client: FlaskClient, session: Session, app: Flask, target: str
) -> None:
    user = make_user(session, app)
    response = form_post(
        client, "/login", {"email": user.email, "password": PASSWORD, "next": target}
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    parts = urlsplit(location)
    assert parts.netloc in {"", "localhost"}
    assert parts.path.startswith("/")
    assert not parts.path.startswith(("//", "/\\"))
    assert "evil.example" not in parts.netloc


def test_next_to_our_own_page_is_followed(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    user = make_user(session, app)
    response = form_post(
        client, "/login", {"email": user.email, "password": PASSWORD, "next": "/account"}
    )
    assert response.headers["Location"] == "/account"


def test_password_reset_by_email_ends_other_sessions(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    app: Flask,
    mailbox: Mailbox,
    work: Any,
) -> None:
    user = make_user(session, app, email="forgetful@example.org")
    login(other_client, user)
    assert other_client.get("/account").status_code == 200

    response = form_post(client, "/reset", {"email": "Forgetful@example.org"})
    assert response.status_code == 302
    unknown = form_post(client, "/reset", {"email": "nobody@example.org"})
    assert unknown.headers["Location"] == response.headers["Location"]  # same answer
    work()
    [msg] = mailbox.to("forgetful@example.org")
    link = _path(mailbox.link_in(msg, "/reset/"))

    new_password = "a brand new passphrase"
    short = form_post(client, link, {"password": "short"})
    assert short.status_code == 422
    assert "Use between 10 and 256 characters" in short.get_data(as_text=True)
    done = form_post(client, link, {"password": new_password})
    assert done.status_code == 302
    assert client.get("/account").status_code == 200

    assert other_client.get("/account").status_code == 302  # the old session has ended
    assert client.get(link).status_code == 404  # single use
    assert (
        form_post(other_client, "/login", {"email": user.email, "password": PASSWORD}).status_code
        == 422
    )
    assert (
        form_post(
            other_client, "/login", {"email": user.email, "password": new_password}
        ).status_code
        == 302
    )


def test_expired_and_forged_tokens_are_refused(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, work: Any
) -> None:
    make_user(session, app, email="late@example.org")
    form_post(client, "/reset", {"email": "late@example.org"})
    work()
    link = _path(mailbox.link_in(mailbox.to("late@example.org")[0], "/reset/"))
    token_id = int(link.rsplit("/", 1)[1].split(".")[0])
    secret = link.rsplit(".", 1)[1]

    forged = f"/reset/{token_id}.{'A' * len(secret)}"
    assert client.get(forged).status_code == 404
    assert client.get(f"/reset/{token_id + 1}.{secret}").status_code == 404
    assert client.get("/reset/not-a-token").status_code == 404

    session.execute(
        update(UserToken)
        .where(UserToken.id == token_id)
        .values(expires_at=UserToken.expires_at - timedelta(days=1))
    )
    session.flush()
    expired = client.get(link)
    assert expired.status_code == 404
    assert "expired" in expired.get_data(as_text=True)


def test_tokens_carry_256_bits_and_only_their_hash_is_stored(
    client: FlaskClient, session: Session, app: Flask, mailbox: Mailbox, work: Any
) -> None:
    _sign_up(client, "bits@example.org")
    work()
    link = mailbox.link_in(mailbox.to("bits@example.org")[0], "/verify/")
    secret = link.rsplit(".", 1)[1]
    assert len(secret) >= 43  # 32 random bytes, base64url
    stored = session.scalar(select(UserToken).order_by(UserToken.id.desc()))
    assert stored is not None
    assert len(stored.secret_hash) == 32
    assert secret.encode() not in bytes(stored.secret_hash)


def test_passwords_are_hashed_with_argon2id_at_the_production_cost(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    _sign_up(client, "hash@example.org")
    user = session.scalar(select(User).where(User.email == "hash@example.org"))
    assert user is not None
    assert user.password_hash.startswith("$argon2id$")
    production = password_hasher(Settings())
    hashed = production.hash(PASSWORD)
    assert hashed.startswith("$argon2id$v=19$m=65536,t=3,")
    assert production.verify(hashed, PASSWORD)


def test_login_is_rate_limited(client: FlaskClient, session: Session, app: Flask) -> None:
    user = make_user(session, app)
    page = client.get("/login").get_data(as_text=True)
    token = csrf_token(page)
    statuses = [
        client.post(
            "/login", data={"csrf_token": token, "email": user.email, "password": "nope nope nope"}
        ).status_code
        for _ in range(11)
    ]
    assert statuses[:10] == [422] * 10
    assert statuses[10] == 429
    limited = client.post(
        "/login", data={"csrf_token": token, "email": user.email, "password": PASSWORD}
    )
    assert limited.status_code == 429
    assert "too many times" in limited.get_data(as_text=True)


def test_reset_is_rate_limited(client: FlaskClient, session: Session, app: Flask) -> None:
    token = csrf_token(client.get("/reset").get_data(as_text=True))
    statuses = [
        client.post("/reset", data={"csrf_token": token, "email": f"r{i}@example.org"}).status_code
        for i in range(6)
    ]
    assert statuses[:5] == [302] * 5
    assert statuses[5] == 429


def test_every_response_carries_the_security_headers(client: FlaskClient) -> None:
    response = client.get("/login")
    headers = response.headers
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert client.get("/no-such-page").headers["X-Content-Type-Options"] == "nosniff"


def test_session_cookie_is_secure_httponly_and_lax(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    user = make_user(session, app)
    response = login(client, user)
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("chorus_session=")]
    assert cookies
    cookie = cookies[-1].lower()
    assert "secure" in cookie
    assert "httponly" in cookie
    assert "samesite=lax" in cookie


def test_forms_without_csrf_are_refused(client: FlaskClient) -> None:
    response = client.post(
        "/signup", data={"display_name": "x", "email": "x@example.org", "password": PASSWORD}
    )
    assert response.status_code == 400
    assert "This form has expired" in response.get_data(as_text=True)
