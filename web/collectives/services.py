"""Collectives, memberships and invitations.

Services flush and never commit. Every rule here holds for every path (web form,
future API, imports): the views only translate `CollectiveError` into a message.
"""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from web import tokens
from web.accounts.models import User
from web.collectives.models import Collective, Invitation, Membership, Role
from web.db import utcnow
from web.emails import send_templated_email
from web.settings import Settings
from web.tenancy import set_current_collective, system_scope

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
RESERVED_SLUGS = frozenset(
    {
        "app",
        "new",
        "admin",
        "api",
        "static",
        "dev",
        "login",
        "logout",
        "signup",
        "verify",
        "reset",
        "invitations",
        "account",
        "stripe",
        "brand",
        "verify-pdf",
        "health",
        "healthz",
        # Delivery and responses: the department's pages, replies by email, chasers.
        "respond",
        "department",
        "departments",
        "inbound",
        "chasers",
    }
)


class CollectiveError(ValueError):
    """A rule was broken; the message is safe to show to the person."""


class NotFoundError(LookupError):
    """No such thing in the current collective (the view answers 404)."""


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:63].strip("-")


def check_slug(session: Session, slug: str) -> str:
    slug = slug.strip().lower()
    if not SLUG_RE.match(slug):
        raise CollectiveError(
            "Use 1 to 63 lower-case letters, numbers and hyphens for the web address, "
            "starting and ending with a letter or number."
        )
    if slug in RESERVED_SLUGS:
        raise CollectiveError(f"The web address “{slug}” is reserved. Please choose another.")
    if session.scalar(select(Collective.id).where(Collective.slug == slug)) is not None:
        raise CollectiveError(f"The web address “{slug}” is taken. Please choose another.")
    return slug


def create_collective(
    session: Session, actor: User, *, name: str, slug: str, contact_address: str
) -> Collective:
    """Create a collective with `actor` as its owner and make it the current one."""
    if not actor.is_verified:
        raise CollectiveError("Please confirm your email address before creating a collective.")
    name = name.strip()
    if not name:
        raise CollectiveError("Give the collective a name.")
    collective = Collective(
        name=name, slug=check_slug(session, slug), contact_address=contact_address.strip()
    )
    session.add(collective)
    session.flush()
    set_current_collective(session, collective.id)
    session.add(Membership(collective_id=collective.id, user_id=actor.id, role=Role.OWNER))
    session.flush()
    return collective


def update_collective(
    session: Session,
    actor_membership: Membership,
    collective: Collective,
    *,
    name: str,
    contact_address: str,
    second_approver: str | None = None,
) -> Collective:
    require_role(actor_membership, Role.OWNER)
    if not name.strip():
        raise CollectiveError("Give the collective a name.")
    if second_approver is not None and second_approver not in {"auto", "on", "off"}:
        raise CollectiveError("Choose when a second organiser must approve letters.")
    collective.name = name.strip()
    collective.contact_address = contact_address.strip()
    if second_approver is not None:
        collective.second_approver = second_approver
    session.flush()
    return collective


def require_role(membership: Membership, *roles: Role) -> None:
    if membership.role not in roles:
        names = " or ".join(r.label.lower() + "s" for r in roles)
        raise PermissionError(f"Only {names} of this collective can do that.")


def membership_for(session: Session, collective: Collective, user: User) -> Membership | None:
    """The user's membership of `collective`; sets it as the current collective."""
    set_current_collective(session, collective.id)
    return session.scalar(select(Membership).where(Membership.user_id == user.id))


def memberships_of_user(session: Session, user: User) -> list[tuple[Membership, Collective]]:
    """Every collective the user belongs to (the one query that spans collectives)."""
    with system_scope(session):
        rows = session.execute(
            select(Membership, Collective)
            .join(Collective, Collective.id == Membership.collective_id)
            .where(Membership.user_id == user.id)
            .order_by(Collective.name),
            execution_options={"all_collectives": True},
        ).all()
    return [(m, c) for m, c in rows]


def list_members(session: Session) -> list[Membership]:
    return list(
        session.scalars(
            select(Membership).join(Membership.user).order_by(Membership.role, User.display_name)
        ).unique()
    )


def get_member(session: Session, membership_id: int) -> Membership:
    member = session.scalar(select(Membership).where(Membership.id == membership_id))
    if member is None:
        raise NotFoundError()
    return member


def _owner_count(session: Session) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(Membership).where(Membership.role == Role.OWNER)
        )
        or 0
    )


def change_role(session: Session, actor: Membership, member: Membership, role: Role) -> Membership:
    """Owners change roles; the last owner cannot be demoted."""
    require_role(actor, Role.OWNER)
    if member.role == Role.OWNER and role != Role.OWNER and _owner_count(session) <= 1:
        raise CollectiveError(
            "A collective needs at least one owner. Make someone else an owner first."
        )
    member.role = role
    session.flush()
    return member


def remove_member(session: Session, actor: Membership, member: Membership) -> None:
    """Owners remove members; anyone may remove themselves; the last owner stays."""
    if member.id != actor.id:
        require_role(actor, Role.OWNER)
    if member.role == Role.OWNER and _owner_count(session) <= 1:
        raise CollectiveError("The last owner cannot leave. Make someone else an owner first.")
    session.delete(member)
    session.flush()


def invite_member(
    session: Session,
    settings: Settings,
    actor: Membership,
    collective: Collective,
    *,
    email: str,
    role: Role,
) -> tuple[Invitation, str]:
    """Invite someone by email. Owners may invite any role; organisers, not owners.

    Sends one email after commit. Returns the invitation and its link token.
    """
    require_role(actor, Role.OWNER, Role.ORGANISER)
    if role == Role.OWNER and actor.role != Role.OWNER:
        raise CollectiveError("Only owners can invite another owner.")
    email = email.strip().lower()
    existing_member = session.scalar(
        select(Membership.id)
        .join(User, User.id == Membership.user_id)
        .where(func.lower(User.email) == email)
    )
    if existing_member is not None:
        raise CollectiveError(f"{email} is already a member of {collective.name}.")
    # A new invitation replaces any open one for the same address.
    for old in session.scalars(
        select(Invitation).where(
            Invitation.email == email,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
    ):
        old.revoked_at = utcnow()
    secret, digest = tokens.new_secret()
    invitation = Invitation(
        collective_id=collective.id,
        email=email,
        role=role,
        secret_hash=digest,
        invited_by_id=actor.user_id,
        expires_at=utcnow() + timedelta(days=settings.invitation_ttl_days),
    )
    session.add(invitation)
    session.flush()
    token = tokens.compose(invitation.id, secret)
    send_templated_email(
        session,
        settings,
        to=email,
        template="invitation",
        subject=f"You are invited to join {collective.name} on Chorus",
        context={
            "collective": collective,
            "inviter": actor.user,
            "role": role,
            "link": f"{settings.base_url}/invitations/{token}",
            "days": settings.invitation_ttl_days,
        },
        collective_id=collective.id,
    )
    return invitation, token


def list_open_invitations(session: Session) -> list[Invitation]:
    return list(
        session.scalars(
            select(Invitation)
            .where(
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > utcnow(),
            )
            .order_by(Invitation.created_at)
        )
    )


def revoke_invitation(session: Session, actor: Membership, invitation_id: int) -> Invitation:
    require_role(actor, Role.OWNER, Role.ORGANISER)
    invitation = session.scalar(select(Invitation).where(Invitation.id == invitation_id))
    if invitation is None:
        raise NotFoundError()
    if invitation.is_open:
        invitation.revoked_at = utcnow()
        session.flush()
    return invitation


_INVALID_INVITATION = (
    "This invitation link is not valid. It may have expired, been used or been withdrawn; "
    "ask the person who invited you for a new one."
)


def find_invitation(session: Session, raw: str | None) -> tuple[Invitation, Collective]:
    """Resolve an invitation link (across collectives, by its id, then a constant-time
    comparison of the secret) and make its collective the current one."""
    parsed = tokens.parse(raw)
    if parsed is None:
        raise CollectiveError(_INVALID_INVITATION)
    with system_scope(session):
        invitation = session.scalar(
            select(Invitation).where(Invitation.id == parsed[0]),
            execution_options={"all_collectives": True},
        )
    if invitation is None or not tokens.matches(parsed[1], invitation.secret_hash):
        raise CollectiveError(_INVALID_INVITATION)
    if not invitation.is_open or invitation.expires_at <= utcnow():
        raise CollectiveError(_INVALID_INVITATION)
    set_current_collective(session, invitation.collective_id)
    collective = session.get(Collective, invitation.collective_id)
    if collective is None:
        raise CollectiveError(_INVALID_INVITATION)
    return invitation, collective


def accept_invitation(session: Session, user: User, raw: str | None) -> Membership:
    """Join the collective. Single-use; the account's email must be the invited one."""
    invitation, collective = find_invitation(session, raw)
    if user.email.lower() != invitation.email.lower():
        raise CollectiveError(
            "This invitation was sent to a different email address. Log in with the "
            "account for that address to accept it."
        )
    locked = session.scalar(
        select(Invitation).where(Invitation.id == invitation.id).with_for_update()
    )
    if locked is None or not locked.is_open:
        raise CollectiveError(_INVALID_INVITATION)
    membership = session.scalar(select(Membership).where(Membership.user_id == user.id))
    if membership is None:
        membership = Membership(collective_id=collective.id, user_id=user.id, role=locked.role)
        session.add(membership)
    locked.accepted_at = utcnow()
    locked.accepted_by_id = user.id
    session.flush()
    return membership


def pending_invitations_for(session: Session, user: User) -> list[tuple[Invitation, Collective]]:
    """Open invitations addressed to the user's (verified) email, across collectives."""
    if not user.is_verified:
        return []
    with system_scope(session):
        rows = session.execute(
            select(Invitation, Collective)
            .join(Collective, Collective.id == Invitation.collective_id)
            .where(
                Invitation.email == user.email.lower(),
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > utcnow(),
            ),
            execution_options={"all_collectives": True},
        ).all()
    return [(i, c) for i, c in rows]
