"""Demo data for `make run`: the department directory, a Demo Collective, its owner and
two campaigns (one published), created once."""

from __future__ import annotations

import secrets
from pathlib import Path

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from web.accounts.models import User
from web.accounts.services import find_user_by_email, password_hasher
from web.campaigns.services import create_campaign, publish, save_letter, update_settings
from web.collectives.models import Collective, Membership, Role
from web.db import utcnow
from web.recipients.models import Recipient
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
        owner = Membership(collective_id=collective.id, user_id=user.id, role=Role.OWNER)
        session.add(owner)
        session.flush()
        _demo_campaigns(session, owner)
    return DEMO_EMAIL, password, True


def _demo_campaigns(session: Session, owner: Membership) -> None:
    """One published open letter (with its public page) and one draft meeting request."""
    dwp = session.scalar(select(Recipient).where(Recipient.key == "dwp"))
    letter = create_campaign(
        session, owner, kind="open_letter", title="Make PIP assessments fair", slug="fair-pip"
    )
    update_settings(
        session,
        owner,
        letter,
        title=letter.title,
        slug=letter.slug,
        recipient_id=dwp.id if dwp else None,
        addressee_name="",
        addressee_role="Secretary of State for Work and Pensions",
        audience_style="minister",
        signature_target=5000,
        closes_on=None,
    )
    save_letter(
        session,
        owner,
        letter,
        subject="Personal Independence Payment assessments are failing disabled people",
        summary=(
            "Many of us have been refused Personal Independence Payment after assessments "
            "that did not reflect our conditions. Most refusals that are challenged are "
            "overturned. We ask you to review the assessment guidance and to meet us."
        ),
        body_markdown=(
            "We are disabled people and carers who rely on **Personal Independence Payment**."
            "\n\nIn our experience, assessments:\n\n"
            "- are too short to understand fluctuating conditions;\n"
            "- record answers we did not give;\n"
            "- leave people without support for months while they appeal.\n\n"
            "Each of us signs this letter as an individual, in our own words where we can."
        ),
        asks=[
            "Review the PIP assessment guidance for fluctuating conditions within six months.",
            "Publish how many refusals are overturned at mandatory reconsideration and appeal.",
            "Meet representatives of the signatories within 20 working days.",
        ],
        evidence_links=[],
        easy_read_markdown=(
            "PIP is money to help disabled people.\n\nThe tests for PIP are often wrong.\n\n"
            "We want the government to fix the tests."
        ),
    )
    collective = session.get(Collective, owner.collective_id)
    if collective is not None:
        publish(session, owner, collective, letter)
    create_campaign(
        session, owner, kind="meeting_request", title="Meet us about social care", slug="care"
    )
