"""Factories: build rows with sensible defaults; they flush, never commit."""

from __future__ import annotations

import itertools
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from web.accounts.models import User
from web.accounts.services import password_hasher
from web.collectives.models import Collective, Membership, Role
from web.db import utcnow
from web.tenancy import set_current_collective

_seq = itertools.count(1)
PASSWORD = "correct horse battery staple"


def make_user(
    session: Session,
    app: Flask,
    *,
    email: str | None = None,
    name: str | None = None,
    password: str = PASSWORD,
    verified: bool = True,
) -> User:
    n = next(_seq)
    user = User(
        email=(email or f"person{n}@example.org").lower(),
        display_name=name or f"Person {n}",
        password_hash=password_hasher(app.extensions["chorus.settings"]).hash(password),
        email_verified_at=utcnow() if verified else None,
    )
    session.add(user)
    session.flush()
    return user


def make_collective(
    session: Session, owner: User, *, name: str | None = None, slug: str | None = None
) -> Collective:
    n = next(_seq)
    collective = Collective(
        name=name or f"Collective {n}",
        slug=slug or f"collective-{n}",
        contact_address=f"{n} Example Street\nLondon",
    )
    session.add(collective)
    session.flush()
    add_member(session, collective, owner, Role.OWNER)
    return collective


def add_member(session: Session, collective: Collective, user: User, role: Role) -> Membership:
    set_current_collective(session, collective.id)
    membership = Membership(collective_id=collective.id, user_id=user.id, role=role)
    session.add(membership)
    session.flush()
    set_current_collective(session, None)
    return membership


def login(client: FlaskClient, user: User, password: str = PASSWORD) -> Any:
    from tests.conftest import form_post

    response = form_post(client, "/login", {"email": user.email, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)
    return response
