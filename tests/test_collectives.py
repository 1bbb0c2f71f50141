"""Collectives: create, invite, accept, change roles, remove, switch between collectives."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tests.conftest import Mailbox, csrf_token, form_post
from tests.factories import add_member, login, make_collective, make_user
from web.collectives.models import Collective, Invitation, Membership, Role
from web.tenancy import set_current_collective, system_scope


def _path(url: str) -> str:
    return urlsplit(url).path


def _members(session: Session, collective: Collective) -> dict[str, Role]:
    set_current_collective(session, collective.id)
    session.expire_all()
    rows = session.scalars(select(Membership)).all()
    return {m.user.email: m.role for m in rows}


def test_organiser_creates_a_collective_and_becomes_its_owner(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    user = make_user(session, app)
    login(client, user)
    response = form_post(
        client,
        "/app/new",
        {"name": "Disability Voices", "slug": "disability-voices", "contact_address": "1 High St"},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/app/disability-voices/"
    page = client.get("/app/disability-voices/").get_data(as_text=True)
    assert "Disability Voices" in page
    collective = session.scalar(select(Collective).where(Collective.slug == "disability-voices"))
    assert collective is not None
    assert collective.contact_address == "1 High St"
    assert _members(session, collective) == {user.email: Role.OWNER}


def test_slugs_are_unique_valid_and_not_reserved(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    user = make_user(session, app)
    make_collective(session, user, slug="taken")
    login(client, user)
    for slug, message in [
        ("taken", "is taken"),
        ("admin", "is reserved"),
        ("Not A Slug!", "lower-case letters"),
        ("-edge-", "lower-case letters"),
    ]:
        response = form_post(
            client, "/app/new", {"name": "X", "slug": slug, "contact_address": "Somewhere"}
        )
        assert response.status_code == 422, slug
        body = response.get_data(as_text=True)
        assert message in body, slug
        assert "There is a problem" in body
        assert 'href="#slug"' in body  # the error summary links to the field
    assert session.scalar(select(Collective).where(Collective.name == "X")) is None


def test_create_form_lists_every_problem_at_once(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    login(client, make_user(session, app))
    response = form_post(client, "/app/new", {"name": "", "slug": "", "contact_address": ""})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    for message in ("Enter a name.", "Enter a web address.", "Enter a contact address."):
        assert message in body


def test_invite_accept_and_the_invitation_is_single_use(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    app: Flask,
    mailbox: Mailbox,
    work: Any,
) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner, name="Tenants Together")
    invitee = make_user(session, app, email="co@example.org")
    login(client, owner)
    response = form_post(
        client,
        f"/app/{collective.slug}/members",
        {"email": "CO@example.org", "role": "organiser"},
    )
    assert response.status_code == 302
    work()
    [msg] = mailbox.to("co@example.org")
    assert "Tenants Together" in msg["Subject"]
    link = _path(mailbox.link_in(msg, "/invitations/"))

    anonymous = other_client.get(link)
    assert anonymous.status_code == 200
    assert "create an account" in anonymous.get_data(as_text=True)

    login(other_client, invitee)
    page = other_client.get(link)
    assert "Join Tenants Together" in page.get_data(as_text=True)
    accepted = other_client.post(link, data={"csrf_token": csrf_token(page.get_data(as_text=True))})
    assert accepted.status_code == 302
    assert _members(session, collective) == {owner.email: Role.OWNER, invitee.email: Role.ORGANISER}
    assert other_client.get(f"/app/{collective.slug}/").status_code == 200

    reused = other_client.get(link)
    assert reused.status_code == 404
    assert "not valid" in reused.get_data(as_text=True)


def test_invitation_for_another_address_cannot_be_accepted(
    client: FlaskClient, other_client: FlaskClient, session: Session, app: Flask
) -> None:
    from web.collectives.services import invite_member

    owner = make_user(session, app)
    collective = make_collective(session, owner)
    set_current_collective(session, collective.id)
    membership = session.scalar(select(Membership).where(Membership.user_id == owner.id))
    assert membership is not None
    with app.app_context():  # renders the email
        _, token = invite_member(
            session,
            app.extensions["chorus.settings"],
            membership,
            collective,
            email="right@example.org",
            role=Role.ORGANISER,
        )
    session.flush()
    stranger = make_user(session, app, email="wrong@example.org")
    login(other_client, stranger)
    page = other_client.get(f"/invitations/{token}")
    response = other_client.post(
        f"/invitations/{token}", data={"csrf_token": csrf_token(page.get_data(as_text=True))}
    )
    assert response.status_code == 422
    assert "sent to a different email address" in response.get_data(as_text=True)
    assert stranger.email not in _members(session, collective)


def test_expired_and_revoked_invitations_do_not_work(
    client: FlaskClient, other_client: FlaskClient, session: Session, app: Flask
) -> None:
    from web.collectives.services import invite_member

    owner = make_user(session, app)
    collective = make_collective(session, owner)
    set_current_collective(session, collective.id)
    membership = session.scalar(select(Membership).where(Membership.user_id == owner.id))
    settings = app.extensions["chorus.settings"]
    with app.app_context():  # renders the emails
        expired, expired_token = invite_member(
            session, settings, membership, collective, email="late@example.org", role=Role.VIEWER
        )
        revoked, revoked_token = invite_member(
            session, settings, membership, collective, email="gone@example.org", role=Role.VIEWER
        )
    session.execute(
        update(Invitation)
        .where(Invitation.id == expired.id)
        .values(expires_at=Invitation.expires_at - timedelta(days=30))
    )
    session.flush()
    login(client, owner)
    page = client.get(f"/app/{collective.slug}/members").get_data(as_text=True)
    assert "gone@example.org" in page
    response = client.post(
        f"/app/{collective.slug}/invitations/{revoked.id}/revoke",
        data={"csrf_token": csrf_token(page)},
    )
    assert response.status_code == 302
    assert other_client.get(f"/invitations/{expired_token}").status_code == 404
    assert other_client.get(f"/invitations/{revoked_token}").status_code == 404
    flashed = client.get(f"/app/{collective.slug}/members").get_data(as_text=True)
    assert "The invitation to gone@example.org has been withdrawn." in flashed
    assert "gone@example.org" not in client.get(f"/app/{collective.slug}/members").get_data(
        as_text=True
    )


def test_owner_changes_roles_but_the_last_owner_stays(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    helper = make_user(session, app)
    helper_membership = add_member(session, collective, helper, Role.VIEWER)
    set_current_collective(session, collective.id)
    owner_membership = session.scalar(select(Membership).where(Membership.user_id == owner.id))
    assert owner_membership is not None
    login(client, owner)
    members_page = f"/app/{collective.slug}/members"

    response = form_post(
        client,
        members_page,
        {"role": "organiser"},
        action=f"/app/{collective.slug}/members/{helper_membership.id}/role",
    )
    assert response.status_code == 302
    assert _members(session, collective)[helper.email] == Role.ORGANISER

    demote_self = form_post(
        client,
        members_page,
        {"role": "viewer"},
        action=f"/app/{collective.slug}/members/{owner_membership.id}/role",
    )
    assert demote_self.status_code == 422
    assert "at least one owner" in demote_self.get_data(as_text=True)
    leave = form_post(
        client,
        members_page,
        {},
        action=f"/app/{collective.slug}/members/{owner_membership.id}/remove",
    )
    assert leave.status_code == 422
    assert "The last owner cannot leave" in leave.get_data(as_text=True)
    assert _members(session, collective)[owner.email] == Role.OWNER

    bogus = form_post(
        client,
        members_page,
        {"role": "admin"},
        action=f"/app/{collective.slug}/members/{helper_membership.id}/role",
    )
    assert bogus.status_code == 422
    assert "Choose one of the roles" in bogus.get_data(as_text=True)

    removed = form_post(
        client,
        members_page,
        {},
        action=f"/app/{collective.slug}/members/{helper_membership.id}/remove",
    )
    assert removed.status_code == 302
    assert helper.email not in _members(session, collective)


def test_viewers_and_organisers_cannot_do_owners_work(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    viewer = make_user(session, app)
    add_member(session, collective, viewer, Role.VIEWER)
    set_current_collective(session, collective.id)
    owner_membership = session.scalar(select(Membership).where(Membership.user_id == owner.id))
    assert owner_membership is not None
    login(client, viewer)
    page = f"/app/{collective.slug}/members"
    invite = form_post(client, page, {"email": "x@example.org", "role": "viewer"})
    assert invite.status_code == 403
    assert "Only owners or organisers" in invite.get_data(as_text=True)
    promote = form_post(
        client,
        page,
        {"role": "viewer"},
        action=f"/app/{collective.slug}/members/{owner_membership.id}/role",
    )
    assert promote.status_code == 403
    settings = form_post(
        client, f"/app/{collective.slug}/settings", {"name": "Hijacked", "contact_address": "x"}
    )
    assert settings.status_code == 403
    session.expire_all()
    assert session.get(Collective, collective.id).name != "Hijacked"


def test_a_person_belongs_to_several_collectives_and_switches_between_them(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    person = make_user(session, app)
    first = make_collective(session, person, name="First Collective")
    other_owner = make_user(session, app)
    second = make_collective(session, other_owner, name="Second Collective")
    add_member(session, second, person, Role.VIEWER)
    unrelated = make_collective(session, other_owner, name="Not Yours")
    login(client, person)
    home = client.get("/app/").get_data(as_text=True)
    assert "First Collective" in home
    assert "Second Collective" in home
    assert "Not Yours" not in home
    assert "You are viewer" in client.get(f"/app/{second.slug}/").get_data(as_text=True)
    assert "You are owner" in client.get(f"/app/{first.slug}/").get_data(as_text=True)
    assert client.get(f"/app/{unrelated.slug}/").status_code == 404


def test_organiser_pages_need_a_login(client: FlaskClient, session: Session, app: Flask) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    response = client.get(f"/app/{collective.slug}/members")
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login"


def test_unverified_people_cannot_create_collectives(session: Session, app: Flask) -> None:
    import pytest

    from web.collectives.services import CollectiveError, create_collective

    person = make_user(session, app, verified=False)
    with pytest.raises(CollectiveError, match="confirm your email"):
        create_collective(session, person, name="N", slug="n-slug", contact_address="A")
    with system_scope(session):
        assert session.scalar(select(Collective).where(Collective.slug == "n-slug")) is None


def test_owner_chooses_when_a_second_organiser_must_approve(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    login(client, owner)
    page = f"/app/{collective.slug}/settings"
    response = form_post(
        client,
        page,
        {"name": collective.name, "contact_address": "1 Street", "second_approver": "on"},
    )
    assert response.status_code == 302
    session.expire_all()
    assert session.get(Collective, collective.id).second_approver == "on"
    bogus = form_post(
        client,
        page,
        {"name": collective.name, "contact_address": "1 Street", "second_approver": "maybe"},
    )
    assert bogus.status_code == 422
    session.expire_all()
    assert session.get(Collective, collective.id).second_approver == "on"
