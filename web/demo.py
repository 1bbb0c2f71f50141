"""Demo data for `make run`: a Demo Collective and its owner, created once."""

from __future__ import annotations

import secrets
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from web.accounts.models import User
from web.accounts.services import find_user_by_email, password_hasher
from web.collectives.models import Collective, Membership, Role
from web.db import utcnow
from web.recipients.services import import_directory, read_directory_file
from web.tenancy import set_current_collective

DEMO_EMAIL = "demo@chorus.localhost"
DEMO_SLUG = "demo-collective"


def demo_password(instance: Path) -> str:
    path = instance / "demo-password.txt"
    if path.exists():
        return path.read_text().strip()
    password = "demo-" + secrets.token_urlsafe(9)
    instance.mkdir(parents=True, exist_ok=True)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password


def seed_demo(app: Flask) -> tuple[str, str, bool]:
    """Create the demo owner and collective if absent. Returns (email, password, created)."""
    settings = app.extensions["chorus.settings"]
    password = demo_password(Path(settings.instance_path))
    with app.app_context(), app.extensions["chorus.db"].session_scope() as session:
        # The directory of departments: missing entries are added on every start; entries
        # already there (perhaps edited by the operator) are left alone.
        import_directory(session, read_directory_file(), overwrite=False)
        if find_user_by_email(session, DEMO_EMAIL) is not None:
            return DEMO_EMAIL, password, False
        user = User(
            email=DEMO_EMAIL,
            display_name="Demo Organiser",
            password_hash=password_hasher(settings).hash(password),
            email_verified_at=utcnow(),
        )
        session.add(user)
        collective = session.scalar(select(Collective).where(Collective.slug == DEMO_SLUG))
        if collective is None:
            collective = Collective(
                name="Demo Collective",
                slug=DEMO_SLUG,
                contact_address="Demo Collective\nc/o 1 Example Street\nLondon\nSW1A 1AA",
            )
            session.add(collective)
        session.flush()
        set_current_collective(session, collective.id)
        session.add(Membership(collective_id=collective.id, user_id=user.id, role=Role.OWNER))
    return DEMO_EMAIL, password, True
