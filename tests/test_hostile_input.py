"""Hostile input against every form of the Foundation.

For each form and each of its fields (the CSRF token included) we send a hostile value:
a null byte, 1 MB, invalid UTF-8 (percent-encoded and raw), a list where one value is
expected, PHP-style `field[]`, a missing field, CR/LF in a one-line field, wrong choices
and XSS strings. Every answer must be a readable page, never a 500. A rejected request
leaves the whole database unchanged (every row of every table, which covers the row
counts of users, collectives, memberships, invitations and outbox_messages). An accepted
one did what the form is for, stored the value as sent, and shows it escaped.
"""

from __future__ import annotations

import enum
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tests.conftest import Mailbox, csrf_token, form_post
from tests.factories import PASSWORD, add_member, login, make_collective, make_user
from tests.test_cross_collective import snapshot
from web.accounts.models import User
from web.accounts.services import request_password_reset, send_verification
from web.collectives.models import Membership, Role
from web.collectives.services import invite_member
from web.tenancy import set_current_collective, system_scope

XSS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "{{7*7}}",
    "' OR 1=1 --",
]
# A right-to-left override makes "exe.png" display as "gnp.exe": refused in names.
RTL_OVERRIDE = "\u202egnp.exe\u202c"
# Strings that would be live markup if a page printed them unescaped.
DANGEROUS = [s for s in XSS if any(c in s for c in "<>\"'")]
ONE_MB = "x" * (1024 * 1024)
# Phrases of the app's own error pages and form errors: a person can read these.
READABLE = (
    "null character",
    "There is a problem",
    "too large",
    "has expired",
    "must be",
    "Enter ",
    "Choose one of",
    "Not a valid choice",
    "not valid text",
    "text-direction",
)
NEWCOMER = "newcomer@example.org"
NEW_PASSWORD = "a brand new password"


class Kind(enum.Enum):
    LINE = "one-line text, shown back"
    TEXTAREA = "multi-line text, shown back"
    EMAIL = "email address"
    NEW_PASSWORD = "new password (any characters)"
    PASSWORD = "password that must match"
    SLUG = "web address"
    CHOICE = "one of a list"
    CSRF = "CSRF token"


@dataclass(frozen=True)
class World:
    values: dict[str, Any]

    def fmt(self, template: str) -> str:
        return template.format(**self.values)


@pytest.fixture
def world(session: Session, app: Flask) -> World:
    owner = make_user(session, app, email="owner@example.org", name="Olive Owner")
    home = make_collective(session, owner, name="Home Base", slug="home-base")
    organiser = make_user(session, app, email="organiser@example.org", name="Orla Organiser")
    organiser_membership = add_member(session, home, organiser, Role.ORGANISER)
    invitee = make_user(session, app, email="invitee@example.org", name="Ivy Invitee")
    unverified = make_user(session, app, email="unverified@example.org", verified=False)
    settings = app.extensions["chorus.settings"]
    set_current_collective(session, home.id)
    owner_membership = session.scalar(select(Membership).where(Membership.user_id == owner.id))
    assert owner_membership is not None
    with app.app_context():  # the services render emails
        invitation, invite_token = invite_member(
            session, settings, owner_membership, home, email=invitee.email, role=Role.VIEWER
        )
        reset_token = request_password_reset(session, settings, owner.email)
        verify_token = send_verification(session, settings, unverified)
    set_current_collective(session, None)
    return World(
        {
            "owner": owner,
            "invitee": invitee,
            "owner_id": owner.id,
            "slug": home.slug,
            "cid": home.id,
            "member_id": organiser_membership.id,
            "invitation_id": invitation.id,
            "invite_token": invite_token,
            "reset_token": reset_token,
            "verify_token": verify_token,
        }
    )


def scalar(session: Session, sql: str, world: World) -> Any:
    session.expire_all()
    with system_scope(session):
        return session.execute(text(sql), world.values).scalar()


def sql(query: str) -> Callable[[Session, FlaskClient, World], Any]:
    return lambda session, _client, world: scalar(session, query, world)


@dataclass(frozen=True)
class Form:
    name: str
    action: str
    # What the form is for, as a value that changes once it has been done.
    done: Callable[[Session, FlaskClient, World], Any]
    who: str | None = None  # "owner", "invitee" or None (anonymous)
    page: str | None = None  # where the CSRF token comes from; default: the action
    valid: Mapping[str, str] = field(default_factory=dict)
    kinds: Mapping[str, Kind] = field(default_factory=dict)
    optional: frozenset[str] = frozenset()  # fields with a default
    stored: Mapping[str, str] = field(default_factory=dict)  # field -> SQL reading it back
    shows: tuple[str, ...] = ()  # pages that show the text fields afterwards

    def fields(self) -> dict[str, Kind]:
        return {**self.kinds, "csrf_token": Kind.CSRF}


FORMS = [
    Form(
        "signup",
        "/signup",
        done=sql(f"select count(*) from users where email = '{NEWCOMER}'"),
        valid={"display_name": "New Comer", "email": NEWCOMER, "password": NEW_PASSWORD},
        kinds={"display_name": Kind.LINE, "email": Kind.EMAIL, "password": Kind.NEW_PASSWORD},
        stored={"display_name": f"select display_name from users where email = '{NEWCOMER}'"},
    ),
    Form(
        "login",
        "/login",
        done=sql("select last_login_at is not null from users where id = :owner_id"),
        valid={"email": "owner@example.org", "password": PASSWORD},
        kinds={"email": Kind.EMAIL, "password": Kind.PASSWORD},
    ),
    Form(
        "reset-request",
        "/reset",
        done=sql("select count(*) from user_tokens where purpose = 'reset_password'"),
        valid={"email": "owner@example.org"},
        kinds={"email": Kind.EMAIL},
    ),
    Form(
        "reset",
        "/reset/{reset_token}",
        done=sql("select count(*) from user_tokens where used_at is not null"),
        valid={"password": NEW_PASSWORD},
        kinds={"password": Kind.NEW_PASSWORD},
    ),
    Form(
        "verify",
        "/verify/{verify_token}",
        done=sql("select count(*) from users where email_verified_at is not null"),
    ),
    Form(
        "create-collective",
        "/app/new",
        who="owner",
        done=sql("select count(*) from collectives"),
        valid={"name": "Fresh Collective", "slug": "fresh", "contact_address": "1 New Street"},
        kinds={"name": Kind.LINE, "slug": Kind.SLUG, "contact_address": Kind.TEXTAREA},
        stored={
            "name": "select name from collectives where slug = 'fresh'",
            "contact_address": "select contact_address from collectives where slug = 'fresh'",
        },
        shows=("/app/fresh/", "/app/fresh/settings", "/app/fresh/members", "/app/"),
    ),
    Form(
        "settings",
        "/app/{slug}/settings",
        who="owner",
        done=sql("select name || contact_address from collectives where id = :cid"),
        valid={
            "name": "Renamed Base",
            "contact_address": "2 Other Street",
            "second_approver": "on",
        },
        kinds={"name": Kind.LINE, "contact_address": Kind.TEXTAREA, "second_approver": Kind.CHOICE},
        stored={
            "name": "select name from collectives where id = :cid",
            "contact_address": "select contact_address from collectives where id = :cid",
        },
        shows=("/app/{slug}/settings", "/app/{slug}/", "/app/"),
    ),
    Form(
        "invite",
        "/app/{slug}/members",
        who="owner",
        done=sql("select count(*) from invitations"),
        valid={"email": "friend@example.org", "role": "organiser"},
        kinds={"email": Kind.EMAIL, "role": Kind.CHOICE},
        optional=frozenset({"role"}),  # the form preselects "organiser"
    ),
    Form(
        "change-role",
        "/app/{slug}/members/{member_id}/role",
        page="/app/{slug}/members",
        who="owner",
        done=sql("select role::text from memberships where id = :member_id"),
        valid={"role": "viewer"},
        kinds={"role": Kind.CHOICE},
    ),
    Form(
        "remove-member",
        "/app/{slug}/members/{member_id}/remove",
        page="/app/{slug}/members",
        who="owner",
        done=sql("select count(*) from memberships"),
    ),
    Form(
        "revoke-invitation",
        "/app/{slug}/invitations/{invitation_id}/revoke",
        page="/app/{slug}/members",
        who="owner",
        done=sql("select count(*) from invitations where revoked_at is not null"),
    ),
    Form(
        "accept-invitation",
        "/invitations/{invite_token}",
        who="invitee",
        done=sql("select count(*) from memberships"),
    ),
    Form(
        "logout",
        "/logout",
        page="/app/",
        who="owner",
        done=lambda _session, client, _world: client.get("/account").status_code,
    ),
    Form(
        "free-supporter",
        "/app/{slug}/plan/free-supporter",
        page="/app/{slug}/plan",
        who="owner",
        done=sql("select count(*) from supporter_requests where collective_id = :cid"),
        valid={"reason": "We are six renters with no funds."},
        kinds={"reason": Kind.TEXTAREA},
        # Shown to the platform operator (tests/test_billing_admin.py checks the escaping).
        stored={"reason": "select reason from supporter_requests where collective_id = :cid"},
    ),
]
FORMS_BY_NAME = {f.name: f for f in FORMS}


# --- how a hostile case is sent and what must come back ----------------------------


@dataclass(frozen=True)
class Raw:
    """Bytes that go into the body exactly as given (no percent-encoding)."""

    data: bytes


Pairs = list[tuple[str, "str | Raw"]]


def encode(pairs: Pairs) -> bytes:
    parts = []
    for key, value in pairs:
        encoded = value.data if isinstance(value, Raw) else quote_plus(value).encode()
        parts.append(quote_plus(key).encode() + b"=" + encoded)
    return b"&".join(parts)


@dataclass(frozen=True)
class Expect:
    accept: bool
    statuses: frozenset[int] = frozenset()
    says: str | None = None  # a phrase the rejection must contain


def accepted() -> Expect:
    return Expect(True)


def rejected(*statuses: int, says: str | None = None) -> Expect:
    return Expect(False, frozenset(statuses), says)


def unreadable(kind: Kind) -> Expect:
    """A value the field cannot take: the CSRF check or the form's validation refuses it."""
    return rejected(400, says="has expired") if kind is Kind.CSRF else rejected(422)


# (case id, how the field is sent, expectation for a field of that kind)
Sender = Callable[[str, str], Pairs]
Rule = Callable[[Kind, bool], Expect]


def _value(value: str | Raw) -> Sender:
    return lambda name, _valid: [(name, value)]


def _nul(name: str, valid: str) -> Pairs:
    middle = max(1, len(valid) // 2)
    return [(name, valid[:middle] + "\x00" + valid[middle:])]


def _on_nul(kind: Kind, _optional: bool) -> Expect:
    if kind is Kind.CSRF:  # the CSRF check runs first and cannot match it
        return rejected(400, says="has expired")
    return rejected(400, says="null character")


def _on_missing(kind: Kind, optional: bool) -> Expect:
    return accepted() if optional else unreadable(kind)


def _on_free_text(kind: Kind, _optional: bool) -> Expect:
    return accepted() if kind in (Kind.LINE, Kind.TEXTAREA) else unreadable(kind)


def _on_multiline(kind: Kind, _optional: bool) -> Expect:
    return accepted() if kind in (Kind.TEXTAREA, Kind.NEW_PASSWORD) else unreadable(kind)


def _on_xss(value: str) -> Rule:
    def rule(kind: Kind, _optional: bool) -> Expect:
        if kind in (Kind.LINE, Kind.TEXTAREA):
            return accepted()
        if kind is Kind.NEW_PASSWORD and len(value) >= 10:
            return accepted()
        return unreadable(kind)

    return rule


def _on_bidi(kind: Kind, _optional: bool) -> Expect:
    """Names (one-line fields) refuse text-direction overrides; longer text keeps them."""
    if kind is Kind.TEXTAREA:
        return accepted()
    if kind is Kind.NEW_PASSWORD and len(RTL_OVERRIDE) >= 10:
        return accepted()
    return unreadable(kind)


CASES: list[tuple[str, Sender, Rule]] = [
    ("nul", _nul, _on_nul),
    ("1mb", lambda name, valid: [(name, valid + ONE_MB)], lambda k, _o: unreadable(k)),
    ("missing", lambda _name, _valid: [], _on_missing),
    ("php-array", lambda name, valid: [(name + "[]", valid)], _on_missing),
    # WTForms reads the first value of a list and ignores the rest.
    ("list", lambda name, valid: [(name, valid), (name, XSS[0])], lambda _k, _o: accepted()),
    # Werkzeug keeps undecodable percent-escapes as the literal text "%FF%FE".
    ("utf8-escaped", _value(Raw(b"%FF%FE")), _on_free_text),
    # A body that is not UTF-8 at all cannot be read as a form: a 400 that says so.
    ("utf8-raw", _value(Raw(b"\xff\xfe")), lambda _k, _o: rejected(400, says="not valid text")),
    ("crlf", _value("Line one\r\nBcc: victim@example.org"), _on_multiline),
    *[(f"xss{i}", _value(s), _on_xss(s)) for i, s in enumerate(XSS)],
    ("rtl-override", _value(RTL_OVERRIDE), _on_bidi),
]
CHOICE_CASES: list[tuple[str, Sender, Rule]] = [
    (f"choice-{v}", _value(v), lambda k, _o: unreadable(k)) for v in ("admin", "7", "-1", "")
]


# The CSRF token is a field too, but every wrong token is the same wrong token: one XSS
# string stands for all, and a missing token has its own test below.
CSRF_SKIPS = {"missing", "crlf", "rtl-override", *(f"xss{i}" for i in range(1, len(XSS)))}


def _params() -> list[Any]:
    params = []
    for form in FORMS:
        for name, kind in form.fields().items():
            cases = CASES + (CHOICE_CASES if kind is Kind.CHOICE else [])
            if kind is Kind.CSRF:
                cases = [c for c in cases if c[0] not in CSRF_SKIPS]
            for case_id, sender, rule in cases:
                params.append(
                    pytest.param(form.name, name, sender, rule, id=f"{form.name}-{name}-{case_id}")
                )
    return params


# --- helpers -------------------------------------------------------------------------


def prepare(client: FlaskClient, form: Form, world: World) -> tuple[str, str]:
    """Log in as the form's user; return its action URL and a CSRF token."""
    if form.who:
        login(client, world.values[form.who])
    page = client.get(world.fmt(form.page or form.action))
    assert page.status_code == 200, page.status_code
    return world.fmt(form.action), csrf_token(page.get_data(as_text=True))


def assert_readable(response: Any, says: str | None = None) -> None:
    body = response.get_data(as_text=True)
    assert response.mimetype == "text/html", response.mimetype
    assert "Traceback" not in body
    assert 'File "' not in body
    assert "<h1>" in body
    assert any(p in body for p in READABLE), body[-2000:]
    if says:
        assert says in body, body[-2000:]


def assert_no_live_markup(body: str) -> None:
    for s in DANGEROUS:
        assert s not in body, f"unescaped {s!r} in the page"
    assert 'href="javascript:' not in body
    assert "<img src=x" not in body


def check_outcome(
    client: FlaskClient,
    session: Session,
    world: World,
    form: Form,
    expect: Expect,
    response: Any,
    before: dict[str, Any],
    done_before: Any,
) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)[-2000:]
    assert_no_live_markup(response.get_data(as_text=True))
    if expect.accept:
        assert response.status_code == 302, response.get_data(as_text=True)[-2000:]
        assert form.done(session, client, world) != done_before, "the form did nothing"
    else:
        assert response.status_code in expect.statuses, (
            response.status_code,
            response.get_data(as_text=True)[-2000:],
        )
        assert_readable(response, expect.says)
        assert snapshot(session) == before, "a rejected request changed the database"
        assert form.done(session, client, world) == done_before


# --- every form, every field, every hostile value ------------------------------------


@pytest.mark.parametrize(("form_name", "field_name", "sender", "rule"), _params())
def test_hostile_value(
    client: FlaskClient,
    session: Session,
    world: World,
    form_name: str,
    field_name: str,
    sender: Sender,
    rule: Rule,
) -> None:
    form = FORMS_BY_NAME[form_name]
    kind = form.fields()[field_name]
    action, token = prepare(client, form, world)
    valid = {**form.valid, "csrf_token": token}
    pairs: Pairs = [(k, v) for k, v in valid.items() if k != field_name]
    sent = sender(field_name, valid[field_name])
    pairs += sent
    expect = rule(kind, field_name in form.optional)

    before = snapshot(session)
    done_before = form.done(session, client, world)
    response = client.post(
        action, data=encode(pairs), content_type="application/x-www-form-urlencoded"
    )
    check_outcome(client, session, world, form, expect, response, before, done_before)

    if expect.accept and kind in (Kind.LINE, Kind.TEXTAREA) and field_name in form.stored:
        value = sent[0][1]
        value = value.data.decode("latin-1") if isinstance(value, Raw) else value
        assert scalar(session, form.stored[field_name], world) == value.strip()
        pages = [client.get(world.fmt(p)).get_data(as_text=True) for p in form.shows]
        for body in pages:
            assert_no_live_markup(body)
        if pages:
            assert any(str(escape(value.strip())) in body for body in pages), "value not shown"


@pytest.mark.parametrize("form_name", [f.name for f in FORMS])
def test_unknown_fields_are_ignored(
    client: FlaskClient, session: Session, world: World, form_name: str
) -> None:
    """Mass assignment: fields no form has must change nothing beyond the form's purpose."""
    form = FORMS_BY_NAME[form_name]
    action, token = prepare(client, form, world)
    extra = {
        "is_platform_admin": "true",
        "email_verified_at": "2001-01-01T00:00:00+00:00",
        "session_version": "99",
        "collective_id": "1",
        "user_id": "1",
        "id": "1",
        "role": "owner",
        "unknown": "\u202e" + XSS[0],
    }
    data = {**{k: v for k, v in extra.items() if k not in form.kinds}, **form.valid}
    done_before = form.done(session, client, world)
    response = client.post(action, data={**data, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)[-2000:]
    assert form.done(session, client, world) != done_before
    assert scalar(session, "select count(*) from users where is_platform_admin", world) == 0
    assert scalar(session, "select count(*) from users where session_version = 99", world) == 0
    assert (
        scalar(
            session,
            "select count(*) from memberships where role = 'owner' and user_id <> :owner_id",
            world,
        )
        == 0
    )
    assert (
        scalar(
            session,
            f"select count(*) from users where email = '{NEWCOMER}' and email_verified_at "
            "is not null",
            world,
        )
        == 0
    )


@pytest.mark.parametrize("form_name", [f.name for f in FORMS])
@pytest.mark.parametrize("encoding", ["multipart", "urlencoded"])
def test_bodies_over_2_mb_are_refused(
    client: FlaskClient, session: Session, world: World, form_name: str, encoding: str
) -> None:
    form = FORMS_BY_NAME[form_name]
    action, token = prepare(client, form, world)
    before = snapshot(session)
    big = "y" * (2 * 1024 * 1024 + 1)
    if encoding == "multipart":
        response = client.post(
            action,
            data={**form.valid, "csrf_token": token, "upload": (io.BytesIO(big.encode()), "a.bin")},
            content_type="multipart/form-data",
        )
    else:
        response = client.post(action, data={**form.valid, "csrf_token": token, "pad": big})
    assert response.status_code == 413
    assert_readable(response, says="too large")
    assert snapshot(session) == before


@pytest.mark.parametrize("form_name", [f.name for f in FORMS])
def test_a_1_mb_field_in_a_multipart_form_is_refused(
    client: FlaskClient, session: Session, world: World, form_name: str
) -> None:
    """Multipart fields are held in memory: over MAX_FORM_MEMORY_SIZE is a 413."""
    form = FORMS_BY_NAME[form_name]
    action, token = prepare(client, form, world)
    before = snapshot(session)
    name = next(iter(form.kinds), "csrf_token")
    data = {**form.valid, "csrf_token": token, name: ONE_MB}
    response = client.post(action, data=data, content_type="multipart/form-data")
    assert response.status_code == 413
    assert_readable(response, says="too large")
    assert snapshot(session) == before


@pytest.mark.parametrize("form_name", [f.name for f in FORMS])
def test_missing_csrf_token_is_a_readable_400(
    client: FlaskClient, session: Session, world: World, form_name: str
) -> None:
    form = FORMS_BY_NAME[form_name]
    action, _ = prepare(client, form, world)
    before = snapshot(session)
    response = client.post(action, data=dict(form.valid))
    assert response.status_code == 400
    assert_readable(response, says="This form has expired or was sent from another site.")
    assert snapshot(session) == before


# --- hostile path parameters ---------------------------------------------------------


HOSTILE_PATHS = [
    "/app/%00/",
    "/app/%00/settings",
    "/app/%FF%FE/",
    "/app/HOME-BASE/",
    "/app/" + "a" * 5000 + "/",
    "/app/x/members/99999999999999999999999/role",
    "/app/{slug}/members/99999999999999999999999/role",
    "/app/{slug}/members/9223372036854775808/role",  # 2**63: past BIGINT
    "/app/{slug}/members/9223372036854775807/role",  # the largest BIGINT, no such row
    "/app/{slug}/members/0/remove",
    "/app/{slug}/members/-1/remove",
    "/app/{slug}/members/1e3/remove",
    "/app/{slug}/members/%00/role",
    "/app/{slug}/members/%FF/role",
    "/app/{slug}/invitations/99999999999999999999999/revoke",
    "/app/{slug}/invitations/%00/revoke",
    "/verify/%00",
    "/verify/%FF%FE",
    "/verify/9223372036854775808." + "a" * 43,
    "/verify/" + "9" * 5000,
    "/reset/%00",
    "/reset/1.%3Cscript%3E",
    "/invitations/%00",
    "/invitations/99999999999999999999999." + "a" * 43,
    "/invitations/{invitation_id}." + "A" * 43,
    "/dev/mail/..%2F..%2F..%2Fetc%2Fpasswd",
]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_hostile_path_parameters_are_404(
    client: FlaskClient, session: Session, world: World, path: str, method: str
) -> None:
    login(client, world.values["owner"])
    token = csrf_token(client.get(world.fmt("/app/{slug}/members")).get_data(as_text=True))
    before = snapshot(session)
    response = client.open(
        world.fmt(path), method=method, data={"csrf_token": token} if method == "POST" else None
    )
    # A GET to a POST-only route is a 405 before its parameters are looked at: right too.
    allowed = (404, 405) if method == "GET" else (404,)
    assert response.status_code in allowed, (path, response.status_code)
    body = response.get_data(as_text=True)
    assert "Traceback" not in body
    assert "<h1>" in body
    assert snapshot(session) == before


def test_query_string_with_a_null_byte_is_refused(client: FlaskClient) -> None:
    response = client.get("/login?next=/app/%00")
    assert response.status_code == 400
    assert_readable(response, says="null character")


# --- where hostile text ends up: escaped everywhere ----------------------------------


@pytest.mark.parametrize("name", XSS, ids=[f"xss{i}" for i in range(len(XSS))])
def test_hostile_display_name_is_escaped_on_every_page_and_email(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    app: Flask,
    mailbox: Mailbox,
    work: Any,
    name: str,
) -> None:
    signup = form_post(
        client, "/signup", {"display_name": name, "email": NEWCOMER, "password": NEW_PASSWORD}
    )
    assert signup.status_code == 302
    work("email")
    (message,) = mailbox.to(NEWCOMER)
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    assert_no_live_markup(str(html.get_content()))
    assert str(escape(name)) in str(html.get_content())
    link = urlsplit(mailbox.link_in(message, "/verify/")).path
    verified = form_post(client, link, {})
    assert verified.status_code == 302

    account = client.get("/account").get_data(as_text=True)
    assert_no_live_markup(account)
    assert str(escape(name)) in account

    # The owner of a collective sees the newcomer in the members list and flash messages.
    owner = make_user(session, app)
    collective = make_collective(session, owner, slug="escapes")
    user = session.scalar(select(User).where(User.email == NEWCOMER))
    assert user is not None
    member_id = add_member(session, collective, user, Role.ORGANISER).id
    login(other_client, owner)
    members = other_client.get("/app/escapes/members").get_data(as_text=True)
    assert_no_live_markup(members)
    assert str(escape(name)) in members
    for action, data in (("role", {"role": "viewer"}), ("remove", {})):
        response = form_post(
            other_client,
            "/app/escapes/members",
            data,
            action=f"/app/escapes/members/{member_id}/{action}",
            follow_redirects=True,
        )
        page = response.get_data(as_text=True)
        assert response.status_code == 200
        assert_no_live_markup(page)
        assert str(escape(name)) in page  # in the flash message


@pytest.mark.parametrize("name", XSS, ids=[f"xss{i}" for i in range(len(XSS))])
def test_hostile_collective_name_is_escaped_on_every_page_and_email(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    app: Flask,
    mailbox: Mailbox,
    work: Any,
    name: str,
) -> None:
    owner = make_user(session, app)
    guest = make_user(session, app, email="guest@example.org")
    login(client, owner)
    created = form_post(
        client, "/app/new", {"name": name, "slug": "hostile", "contact_address": name}
    )
    assert created.status_code == 302
    pages = ["/app/", "/app/hostile/", "/app/hostile/settings", "/app/hostile/members"]
    for path in pages:
        body = client.get(path).get_data(as_text=True)
        assert_no_live_markup(body)
        assert str(escape(name)) in body, path

    invited = form_post(client, "/app/hostile/members", {"email": guest.email, "role": "viewer"})
    assert invited.status_code == 302
    work("email")
    (message,) = mailbox.to(guest.email)
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    assert_no_live_markup(str(html.get_content()))
    assert str(escape(name)) in str(html.get_content())
    assert name in mailbox.text_of(message)  # plain text stays plain

    link = urlsplit(mailbox.link_in(message, "/invitations/")).path
    login(other_client, guest)
    invitation_page = other_client.get(link).get_data(as_text=True)
    assert_no_live_markup(invitation_page)
    assert str(escape(name)) in invitation_page
    joined = form_post(other_client, link, {}, follow_redirects=True)
    assert joined.status_code == 200
    assert_no_live_markup(joined.get_data(as_text=True))
    assert str(escape(f"You have joined {name}.")) in joined.get_data(as_text=True)


# --- ?next= after logging in stays on our own site -----------------------------------

EVIL_NEXT = [
    "//evil.example",
    "/\\evil.example",
    "https:evil.example",
    "https://evil.example",
    "/%2F%2Fevil.example",
    "\\\\evil.example",
    "///evil.example",
    "/\t/evil.example",
    " //evil.example",
    "http:/\\evil.example",
    "//evil.example@localhost/",
    "/\u3002/evil.example",
    "javascript:alert(1)",
]


def _assert_stays_home(location: str) -> None:
    parts = urlsplit(location)
    assert not parts.scheme, location
    assert not parts.netloc, location
    assert location.startswith("/"), location
    assert not location.startswith(("//", "/\\")), location
    assert "\\" not in location, location
    assert "\t" not in location, location


@pytest.mark.parametrize("target", EVIL_NEXT)
@pytest.mark.parametrize("where", ["query", "form"])
def test_login_next_never_leaves_the_site(
    client: FlaskClient, session: Session, app: Flask, target: str, where: str
) -> None:
    user = make_user(session, app)
    data = {"email": user.email, "password": PASSWORD}
    if where == "query":
        page = f"/login?next={quote_plus(target)}"
        response = form_post(client, page, data)
    else:
        response = form_post(client, "/login", {**data, "next": target})
    assert response.status_code == 302
    _assert_stays_home(response.headers["Location"])


def test_login_next_to_our_own_page_is_kept(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    """The control for the test above: a safe target is followed, so it is not vacuous."""
    user = make_user(session, app)
    response = form_post(
        client, "/login?next=/account", {"email": user.email, "password": PASSWORD}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/account"


# --- a failure halfway through a request leaves nothing behind -----------------------


def test_a_double_submitted_create_form_is_a_readable_409_with_nothing_half_written(
    client: FlaskClient, session: Session, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two clicks on "Create": both requests pass the free-slug check, the second one's
    INSERT then hits the unique index in the middle of the request (not at commit)."""
    from web.collectives import services

    owner = make_user(session, app)
    make_collective(session, owner, slug="double")
    login(client, owner)
    token = csrf_token(client.get("/app/new").get_data(as_text=True))
    before = snapshot(session)
    monkeypatch.setattr(services, "check_slug", lambda _session, slug: slug)
    response = client.post(
        "/app/new",
        data={"csrf_token": token, "name": "Second", "slug": "double", "contact_address": "X"},
    )
    assert response.status_code == 409
    assert "clashes with something saved at the same moment" in response.get_data(as_text=True)
    assert snapshot(session) == before
    assert client.get("/app/").status_code == 200  # the session is usable again
