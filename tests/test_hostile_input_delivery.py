"""Hostile input against every form and POST endpoint of issue #6 (delivery and responses).

The same cases as tests/test_hostile_input.py (a null byte, 1 MB, invalid UTF-8
percent-encoded and raw, a list where one value is expected, PHP-style `field[]`, a
missing field, CR/LF in one-line fields, wrong choices, XSS strings, a text-direction
override), sent to every field of every form (the CSRF token included), plus hostile
file uploads and hostile bodies for the inbound mail webhook.

Every answer is a readable page, never a 500. A rejected request leaves every row of
every table as it was. An accepted one did what the form is for, stored the value as
sent (as the form documents cleaning it) and shows it escaped.

Speed: each test builds its world once, then runs every case of one form inside a
SAVEPOINT that is rolled back afterwards (the app's sessions nest their own savepoints
in the test's transaction), so one world serves a few dozen requests. Failures are
collected and reported together, one line per case.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import secrets
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from redis import Redis
from sqlalchemy import Connection, select, text, update
from sqlalchemy.orm import Session

from tests.conftest import csrf_token, form_post, https_client
from tests.factories import login, make_user
from tests.test_cross_collective import snapshot
from tests.test_department_inbox import deliver, grant, make_campaign, make_department
from tests.test_hostile_input import (
    CASES,
    CHOICE_CASES,
    CSRF_SKIPS,
    READABLE,
    XSS,
    Expect,
    Kind,
    Pairs,
    Raw,
    World,
    accepted,
    assert_no_live_markup,
    encode,
    rejected,
    scalar,
)
from tests.test_inbound import SECRET, email_to, webhook_on  # noqa: F401 (a fixture)
from tests.test_pdf_documents import _owner
from tests.test_response_page import PDF, make_world
from tests.test_signatures import _published
from web.accounts.models import User
from web.db import utcnow
from web.delivery.models import Delivery
from web.delivery.workdays import uk_date
from web.pdf.context import build_letter, inputs_hash
from web.pdf.models import Document
from web.pdf.services import verify_url
from web.recipients.models import Recipient
from web.responses.models import Meeting, ResponseChannel, ResponseKind
from web.responses.services import record_response
from web.tenancy import set_current_collective, system_scope

ADDRESS = "correspondence@dwp.example.gov.uk"
# Phrases of the forms' own messages (beyond the Foundation's): a person can read these.
MORE_READABLE = (
    "Choose",
    "Enter ",
    "Write ",
    "Give a date",
    "Not a valid",
    "characters or fewer",
    "correct format",
    "line breaks",
    "expired",
    "control characters",
    "Propose at least",
    "not in the letter",
    "is not a",
    "There is no delivery",
)


def readable(body: str) -> bool:
    return any(p in body for p in (*READABLE, *MORE_READABLE))


# --- how each form is described ---------------------------------------------------------


Done = Callable[[Session, World], Any]


def sql(query: str) -> Done:
    return lambda session, world: scalar(session, query, world)


def strip(value: str) -> str:
    return value.strip()


def long_text(value: str) -> str:
    """web.responses.page_forms.clean_long_text: line breaks normalised, text-direction
    overrides and control characters dropped."""
    from web.responses.page_forms import clean_long_text

    return str(clean_long_text(value))


def crlf_to_lf(value: str) -> str:
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()


@dataclasses.dataclass(frozen=True)
class Form:
    name: str
    world: str  # a key of WORLDS
    action: str
    done: Done  # a value that changes once the form has done its work
    who: str | None = None  # "owner", "organiser", "official", "admin" or None
    viewer: str | None = None  # who reads the `shows` pages (default: `who`)
    page: str | None = None  # where the CSRF token comes from (default: the action)
    valid: Mapping[str, str] = dataclasses.field(default_factory=dict)
    kinds: Mapping[str, Kind] = dataclasses.field(default_factory=dict)
    optional: frozenset[str] = frozenset()  # fields with a default
    # Date and time fields: WTForms joins a list's values with spaces, which is no date.
    dates: frozenset[str] = frozenset()
    stored: Mapping[str, str] = dataclasses.field(default_factory=dict)  # field -> SQL
    clean: Callable[[str], str] = strip  # how the form keeps accepted free text
    cleans: Mapping[str, Callable[[str], str]] = dataclasses.field(default_factory=dict)
    shows: tuple[str, ...] = ()  # pages that show the stored text afterwards
    ok: frozenset[int] = frozenset({302, 303})  # the statuses of success
    # Cases whose expectation differs from the field kind's, with the reason in a comment.
    overrides: Mapping[tuple[str, str], Expect] = dataclasses.field(default_factory=dict)

    def fields(self) -> dict[str, Kind]:
        return {**self.kinds, "csrf_token": Kind.CSRF}


ORG = "/app/{slug}/campaigns/{campaign_id}"
DELIVERY = ORG + "/deliveries/{delivery_id}"
PUBLIC = "/{slug}/fair-pip"
ROW = "select d::text from deliveries d where id = :delivery_id"

FORMS = [
    # --- the organiser: planning and sending ---
    Form(
        "plan",
        "plan",
        ORG + "/delivery",
        who="owner",
        done=sql("select count(*) from deliveries where campaign_id = :campaign_id"),
        valid={
            "method": "email",
            "when": "date",
            "scheduled_for": "{in_a_week}",
            "to_email": ADDRESS,
        },
        dates=frozenset({"scheduled_for"}),
        kinds={
            "method": Kind.CHOICE,
            "when": Kind.CHOICE,
            "scheduled_for": Kind.CHOICE,  # a date: nothing else is readable
            "to_email": Kind.EMAIL,
        },
    ),
    Form(
        "confirm-email",
        "closed",
        ORG + "/delivery/email",
        who="owner",
        done=sql("select count(*) from deliveries where campaign_id = :campaign_id"),
        valid={"to_email": ADDRESS, "key": "{key}", "document_id": "{document_id}"},
        kinds={"to_email": Kind.EMAIL, "key": Kind.EMAIL, "document_id": Kind.EMAIL},
        # Without a document the current final PDF is sent (the page always names it).
        optional=frozenset({"document_id"}),
    ),
    Form(
        "confirm-post",
        "closed",
        ORG + "/delivery/post",
        who="owner",
        done=sql("select count(*) from deliveries where campaign_id = :campaign_id"),
        valid={"key": "{key}", "document_id": "{document_id}"},
        kinds={"key": Kind.EMAIL, "document_id": Kind.EMAIL},
        optional=frozenset({"document_id"}),
    ),
    Form(
        "record-posting",
        "postal",
        ORG + "/deliveries/{postal_id}/post",
        who="owner",
        done=sql("select status from deliveries where id = :postal_id"),
        valid={"posted_on": "{today}", "tracking": "AB123456789GB"},
        dates=frozenset({"posted_on"}),
        kinds={"posted_on": Kind.CHOICE, "tracking": Kind.LINE},
        optional=frozenset({"tracking"}),
        stored={"tracking": "select tracking_reference from deliveries where id = :postal_id"},
        shows=(ORG + "/deliveries/{postal_id}",),
    ),
    Form(
        "cancel",
        "scheduled",
        ORG + "/deliveries/{scheduled_id}/cancel",
        page=ORG + "/deliveries/{scheduled_id}",
        who="owner",
        done=sql("select status from deliveries where id = :scheduled_id"),
    ),
    Form(
        "revoke-link",
        "org",
        DELIVERY + "/revoke-link",
        page=DELIVERY,
        who="owner",
        done=sql(ROW),
    ),
    Form(
        "new-link",
        "org",
        DELIVERY + "/new-link",
        page=DELIVERY,
        who="owner",
        done=sql(ROW),
        ok=frozenset({200}),  # the new link is shown once, on this response
    ),
    # --- the organiser: following up ---
    Form(
        "chasers-pause",
        "org",
        DELIVERY + "/chasers/pause",
        page=DELIVERY,
        who="organiser",
        done=sql("select chasers_paused from deliveries where id = :delivery_id"),
    ),
    Form(
        "chasers-resume",
        "paused",
        DELIVERY + "/chasers/resume",
        page=DELIVERY,
        who="organiser",
        done=sql("select chasers_paused from deliveries where id = :delivery_id"),
    ),
    Form(
        "assess",
        "org",
        DELIVERY + "/assessment",
        page=DELIVERY,
        who="organiser",
        done=sql("select count(*) from ask_assessments where delivery_id = :delivery_id"),
        valid={"ask-0": "partly", "note-0": "They promised a plan by June."},
        kinds={"ask-0": Kind.CHOICE, "note-0": Kind.TEXTAREA},
        optional=frozenset({"note-0"}),
        stored={"note-0": "select note from ask_assessments where delivery_id = :delivery_id"},
        clean=crlf_to_lf,
        shows=(DELIVERY,),
        overrides={
            # Any ask key that is not a number names no ask: refused as such (422).
            ("ask-0", "php-array"): rejected(422),
        },
    ),
    Form(
        "publish",
        "org",
        DELIVERY + "/response",
        page=DELIVERY,
        who="organiser",
        done=sql("select response_summary from deliveries where id = :delivery_id"),
        valid={"summary": "They will publish a plan.", "action": "publish"},
        kinds={"summary": Kind.TEXTAREA, "action": Kind.CHOICE},
        optional=frozenset({"action"}),  # publishing is the default
        stored={"summary": "select response_summary from deliveries where id = :delivery_id"},
        clean=crlf_to_lf,
        shows=(DELIVERY, PUBLIC),
    ),
    Form(
        "unpublish",
        "published",
        DELIVERY + "/response/unpublish",
        page=DELIVERY,
        who="organiser",
        done=sql("select response_published_at from deliveries where id = :delivery_id"),
    ),
    Form(
        "reclassify",
        "org",
        DELIVERY + "/responses/{response_id}/kind",
        page=DELIVERY,
        who="organiser",
        done=sql("select kind from responses where id = :response_id"),
        valid={"kind": "substantive"},
        kinds={"kind": Kind.CHOICE},
    ),
    Form(
        "meeting-outcome",
        "met",
        DELIVERY + "/meeting/outcome",
        page=DELIVERY,
        who="organiser",
        done=sql("select status || coalesce(outcome_notes, '') from meetings"),
        valid={"notes": "The Minister agreed to review the backlog.", "publish": "y"},
        kinds={"notes": Kind.TEXTAREA, "publish": Kind.LINE},
        optional=frozenset({"publish"}),
        stored={"notes": "select outcome_notes from meetings"},
        clean=long_text,
        shows=(DELIVERY, PUBLIC),
        overrides={
            # A checkbox: any value ticks it, and text-direction marks are no text there.
            ("publish", "crlf"): accepted(),
            ("publish", "1mb"): accepted(),
            ("publish", "rtl-override"): accepted(),
        },
    ),
    # --- the department's response page (no account) ---
    Form(
        "respond-acknowledge",
        "fresh",
        "/respond/{token}/acknowledge",
        page="/respond/{token}",
        done=sql("select count(*) from responses"),
        valid={"ack-name": "Sam Official", "ack-role": "Correspondence Officer"},
        kinds={"ack-name": Kind.LINE, "ack-role": Kind.LINE},
        optional=frozenset({"ack-name", "ack-role"}),
        stored={
            "ack-name": "select responder_name from responses order by id desc limit 1",
            "ack-role": "select responder_role from responses order by id desc limit 1",
        },
        viewer="organiser",
        shows=(DELIVERY,),
    ),
    Form(
        "respond-reply",
        "org",
        "/respond/{token}/reply",
        page="/respond/{token}",
        done=sql("select count(*) from responses"),
        valid={
            "reply-body": "We will publish a plan.",
            "reply-kind": "substantive",
            "reply-name": "Sam Official",
            "reply-role": "Policy Lead",
            "reply-email": "sam@dwp.gov.uk",
        },
        kinds={
            "reply-body": Kind.TEXTAREA,
            "reply-kind": Kind.CHOICE,
            "reply-name": Kind.LINE,
            "reply-role": Kind.LINE,
            "reply-email": Kind.EMAIL,
        },
        optional=frozenset({"reply-email"}),
        stored={
            "reply-body": "select body_text from responses order by id desc limit 1",
            "reply-name": "select responder_name from responses order by id desc limit 1",
            "reply-role": "select responder_role from responses order by id desc limit 1",
        },
        clean=long_text,
        viewer="organiser",
        shows=(DELIVERY,),
    ),
    Form(
        "meeting-accept",
        "meeting",
        "/respond/{token}/meeting/accept",
        page="/respond/{token}",
        done=sql("select count(*) from meetings"),
        valid={
            "accept-slot": "0",
            "accept-name": "Sam Official",
            "accept-role": "Private Secretary",
            "accept-email": "sam.official@dwp.gov.uk",
            "accept-location": "Caxton House, Room 4",
        },
        dates=frozenset({"accept-day", "accept-start", "accept-end"}),
        kinds={
            "accept-slot": Kind.CHOICE,
            "accept-day": Kind.CHOICE,
            "accept-start": Kind.CHOICE,
            "accept-end": Kind.CHOICE,
            "accept-location": Kind.LINE,
            "accept-name": Kind.LINE,
            "accept-role": Kind.LINE,
            "accept-email": Kind.EMAIL,
        },
        optional=frozenset(
            {"accept-day", "accept-start", "accept-end", "accept-location", "accept-role"}
        ),
        # The place is one line of plain text (web/responses/meetings.py clean_location):
        # runs of white space become one space; markup and non-https links are refused.
        cleans={"accept-location": lambda v: " ".join(v.split())},
        overrides={
            ("accept-location", "crlf"): accepted(),
            ("accept-location", "xss0"): rejected(422),
            ("accept-location", "xss1"): rejected(422),
            ("accept-location", "xss2"): rejected(422),
        },
        stored={
            "accept-name": "select official_name from meetings",
            "accept-location": "select location from meetings",
        },
        viewer="organiser",
        shows=(DELIVERY,),
    ),
    Form(
        "meeting-alternatives",
        "meeting",
        "/respond/{token}/meeting/alternatives",
        page="/respond/{token}",
        done=sql("select count(*) from meetings"),
        valid={
            "alt-time1-day": "{in_a_week}",
            "alt-time1-start": "10:00",
            "alt-time1-end": "11:00",
            "alt-note": "Any morning that week suits the Minister.",
            "alt-name": "Sam Official",
            "alt-role": "Private Secretary",
            "alt-email": "sam.official@dwp.gov.uk",
        },
        dates=frozenset({"alt-time1-day", "alt-time1-start", "alt-time1-end", "alt-time2-day"}),
        kinds={
            "alt-time1-day": Kind.CHOICE,
            "alt-time1-start": Kind.CHOICE,
            "alt-time1-end": Kind.CHOICE,
            "alt-time2-day": Kind.CHOICE,
            "alt-note": Kind.TEXTAREA,
            "alt-name": Kind.LINE,
            "alt-role": Kind.LINE,
            "alt-email": Kind.EMAIL,
        },
        optional=frozenset({"alt-time2-day", "alt-note", "alt-role", "alt-email"}),
        stored={
            "alt-name": "select official_name from meetings",
        },
        clean=long_text,
        viewer="organiser",
        shows=(DELIVERY,),
    ),
    Form(
        "meeting-decline",
        "meeting",
        "/respond/{token}/meeting/decline",
        page="/respond/{token}",
        done=sql("select count(*) from meetings"),
        valid={
            "decline-reason": "The Minister is not taking meetings this month.",
            "decline-name": "Sam Official",
            "decline-role": "Private Secretary",
            "decline-email": "sam.official@dwp.gov.uk",
        },
        kinds={
            "decline-reason": Kind.TEXTAREA,
            "decline-name": Kind.LINE,
            "decline-role": Kind.LINE,
            "decline-email": Kind.EMAIL,
        },
        optional=frozenset({"decline-role", "decline-email"}),
        stored={
            "decline-reason": "select reason from meetings",
            "decline-name": "select official_name from meetings",
        },
        clean=long_text,
        viewer="organiser",
        shows=(DELIVERY,),
    ),
    # --- the department inbox (signed-in officials) ---
    Form(
        "department-claim",
        "department",
        "/department/claim",
        who="official",
        done=sql("select count(*) from department_accounts"),
        valid={"department": "{claimable_id}", "email": "dana@hmrc.gov.uk"},
        kinds={"department": Kind.CHOICE, "email": Kind.EMAIL},
    ),
    Form(
        "department-acknowledge",
        "department",
        "/department/{dept_key}/letters/{dept_delivery_id}/acknowledge",
        page="/department/{dept_key}/letters/{dept_delivery_id}",
        who="official",
        done=sql("select count(*) from responses"),
    ),
    Form(
        "department-reply",
        "department",
        "/department/{dept_key}/letters/{dept_delivery_id}/reply",
        page="/department/{dept_key}/letters/{dept_delivery_id}",
        who="official",
        done=sql("select count(*) from responses"),
        valid={
            "kind": "substantive",
            "body": "We will publish a plan.",
            "responder_name": "Dana Official",
            "responder_role": "Head of Correspondence",
        },
        kinds={
            "kind": Kind.CHOICE,
            "body": Kind.TEXTAREA,
            "responder_name": Kind.LINE,
            "responder_role": Kind.LINE,
        },
        optional=frozenset({"responder_role", "kind"}),  # a full reply is the default
        stored={
            "body": "select body_text from responses order by id desc limit 1",
            "responder_name": "select responder_name from responses order by id desc limit 1",
            "responder_role": "select responder_role from responses order by id desc limit 1",
        },
        shows=("/department/{dept_key}/letters/{dept_delivery_id}",),
    ),
    # --- the operator's holding list ---
    Form(
        "inbound-attach",
        "inbound",
        "/admin/inbound/{message_id}/attach",
        page="/admin/inbound/{message_id}",
        who="admin",
        done=sql("select status from inbound_messages where id = :message_id"),
        valid={"delivery_id": "{delivery_id}"},
        kinds={"delivery_id": Kind.CHOICE},
    ),
    Form(
        "inbound-dismiss",
        "inbound",
        "/admin/inbound/{message_id}/dismiss",
        page="/admin/inbound/{message_id}",
        who="admin",
        done=sql("select status from inbound_messages where id = :message_id"),
    ),
]
FORMS_BY_NAME = {f.name: f for f in FORMS}


# --- the worlds -------------------------------------------------------------------------


def _user(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(User.email == email))
    assert user is not None
    return user


def _org(session: Session, app: Flask, client: FlaskClient, kind: str = "open_letter") -> World:
    """A letter delivered by email today (tests/test_response_page.py), with one
    acknowledgement recorded by email, so there is something to reclassify."""
    w = make_world(session, app, kind=kind)
    set_current_collective(session, w.collective_id)
    delivery = session.get(Delivery, w.delivery_id)
    assert delivery is not None
    response = record_response(
        session,
        delivery,
        kind=ResponseKind.ACKNOWLEDGEMENT,
        channel=ResponseChannel.EMAIL,
        body_text="Your letter has been received.",
    )
    session.flush()
    set_current_collective(session, None)
    return World(
        {
            "slug": w.collective_slug,
            "cid": w.collective_id,
            "campaign_id": w.campaign_id,
            "delivery_id": w.delivery_id,
            "response_id": response.id,
            "token": w.token,
            "owner": _user(session, w.owner_email),
            "organiser": _user(session, w.organiser_email),
            "in_a_week": (uk_date(utcnow()) + timedelta(days=7)).isoformat(),
        }
    )


def _set_delivery(session: Session, world: World, **values: Any) -> None:
    with system_scope(session):
        session.execute(
            update(Delivery)
            .where(Delivery.id == world.values["delivery_id"])
            .values(**values)
            .execution_options(all_collectives=True)
        )


def world_org(session: Session, app: Flask, client: FlaskClient) -> World:
    return _org(session, app, client)


def world_paused(session: Session, app: Flask, client: FlaskClient) -> World:
    world = _org(session, app, client)
    _set_delivery(session, world, chasers_paused=True)
    return world


def world_published(session: Session, app: Flask, client: FlaskClient) -> World:
    world = _org(session, app, client)
    _set_delivery(session, world, response_summary="A summary.", response_published_at=utcnow())
    return world


def world_meeting(session: Session, app: Flask, client: FlaskClient) -> World:
    return _org(session, app, client, kind="meeting_request")


def world_met(session: Session, app: Flask, client: FlaskClient) -> World:
    """A meeting the department accepted (through its page), which has now taken place."""
    world = _org(session, app, client, kind="meeting_request")
    session.commit()
    accepted_now = form_post(
        client,
        world.fmt("/respond/{token}"),
        {
            "accept-slot": "0",
            "accept-name": "Sam Official",
            "accept-email": "sam.official@dwp.gov.uk",
        },
        action=world.fmt("/respond/{token}/meeting/accept"),
    )
    assert accepted_now.status_code == 303, accepted_now.get_data(as_text=True)[-2000:]
    with system_scope(session):
        session.execute(
            update(Meeting)
            .values(starts_at=utcnow() - timedelta(hours=2), ends_at=utcnow() - timedelta(hours=1))
            .execution_options(all_collectives=True)
        )
    return world


def _plan_world(session: Session, app: Flask) -> tuple[World, Any, Any]:
    """A published, collecting campaign to a directory department with a correspondence
    address and a postal address (as tests/test_delivery.py's world)."""
    collective, campaign = _published(session, app, slug="fair-pip")
    with system_scope(session):
        session.execute(
            update(Recipient)
            .where(Recipient.id == campaign.recipient_id)
            .values(correspondence_email=ADDRESS, postal_address="Caxton House\nLondon SW1H 9NA")
            .execution_options(all_collectives=True)
        )
    owner = _owner(session, collective)
    world = World(
        {
            "slug": collective.slug,
            "cid": collective.id,
            "campaign_id": campaign.id,
            "owner": owner,
            "today": uk_date(utcnow()).isoformat(),
            "in_a_week": (uk_date(utcnow()) + timedelta(days=7)).isoformat(),
        }
    )
    set_current_collective(session, None)
    return world, collective, campaign


def world_plan(session: Session, app: Flask, client: FlaskClient) -> World:
    return _plan_world(session, app)[0]


def world_scheduled(session: Session, app: Flask, client: FlaskClient) -> World:
    world = world_plan(session, app, client)
    session.commit()
    login(client, world.values["owner"])
    planned = form_post(
        client,
        world.fmt(ORG + "/delivery"),
        {
            "method": "email",
            "when": "date",
            "scheduled_for": world.values["in_a_week"],
            "to_email": ADDRESS,
        },
    )
    assert planned.status_code == 302, planned.get_data(as_text=True)[-2000:]
    world.values["scheduled_id"] = int(planned.headers["Location"].rsplit("/", 1)[1])
    return world


def world_closed(session: Session, app: Flask, client: FlaskClient) -> World:
    """Closed, with its final PDF made (a Document row with the letter's inputs hash:
    what the PDF worker would leave, without running WeasyPrint)."""
    world, collective, campaign = _plan_world(session, app)
    set_current_collective(session, collective.id)
    campaign.state = "closed"
    session.flush()
    settings = app.extensions["chorus.settings"]
    with app.test_request_context():
        inputs = build_letter(session, campaign, draft=False, verify_url=verify_url(settings))
    data = PDF + secrets.token_bytes(8)
    document = Document(
        collective_id=collective.id,
        campaign_id=campaign.id,
        kind="final",
        letter_version_id=inputs.letter_version_id,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        pages=2,
        inputs_hash=inputs_hash(inputs),
        data=data,
    )
    session.add(document)
    session.flush()
    set_current_collective(session, None)
    world.values["document_id"] = document.id
    world.values["key"] = secrets.token_hex(16)
    return world


def world_postal(session: Session, app: Flask, client: FlaskClient) -> World:
    world = world_closed(session, app, client)
    session.commit()
    login(client, world.values["owner"])
    prepared = form_post(
        client,
        world.fmt(ORG + "/delivery/post"),
        {"key": world.values["key"], "document_id": str(world.values["document_id"])},
    )
    assert prepared.status_code == 302, prepared.get_data(as_text=True)[-2000:]
    world.values["postal_id"] = int(prepared.headers["Location"].rstrip("/").split("/")[-2])
    return world


def world_department(session: Session, app: Flask, client: FlaskClient) -> World:
    dwp = make_department(session, "Department for Work and Pensions", ["dwp.gov.uk"])
    hmrc = make_department(session, "HM Revenue and Customs", ["hmrc.gov.uk"])
    campaign = make_campaign(session, app, title="Fair PIP assessments", recipient=dwp)
    delivery = deliver(session, app, campaign, dwp, uk_date(utcnow()))
    official = make_user(session, app, email="dana@dwp.gov.uk", name="Dana Official")
    grant(session, official, dwp)
    return World(
        {
            "official": official,
            "dept_key": dwp.key,
            "dept_delivery_id": delivery.id,
            "claimable_id": hmrc.id,
        }
    )


def world_inbound(session: Session, app: Flask, client: FlaskClient) -> World:
    from web.responses.inbound import receive_message

    world = _org(session, app, client)
    admin = make_user(session, app)
    admin.is_platform_admin = True
    session.flush()
    raw = email_to("letters@elsewhere.example", body="About the school meals letter.")
    with app.app_context():
        result = receive_message(session, app.extensions["chorus.settings"], raw, source="http")
    assert result.status == "held", result
    message_id = scalar(
        session, "select max(id) from inbound_messages where status = 'held'", world
    )
    world.values.update(admin=admin, message_id=message_id)
    return world


def world_fresh(session: Session, app: Flask, client: FlaskClient) -> World:
    """Delivered, nothing answered yet."""
    w = make_world(session, app)
    return World(
        {
            "slug": w.collective_slug,
            "cid": w.collective_id,
            "campaign_id": w.campaign_id,
            "delivery_id": w.delivery_id,
            "token": w.token,
            "organiser": _user(session, w.organiser_email),
        }
    )


WORLDS: dict[str, Callable[[Session, Flask, FlaskClient], World]] = {
    "fresh": world_fresh,
    "org": world_org,
    "paused": world_paused,
    "published": world_published,
    "meeting": world_meeting,
    "met": world_met,
    "plan": world_plan,
    "scheduled": world_scheduled,
    "closed": world_closed,
    "postal": world_postal,
    "department": world_department,
    "inbound": world_inbound,
}


# --- running the cases ------------------------------------------------------------------


@dataclasses.dataclass
class Harness:
    session: Session
    connection: Connection
    redis: Redis
    client: FlaskClient
    world: World
    before: dict[str, Any]
    reader: FlaskClient | None = None  # the client that reads the `shows` pages
    failures: list[str] = dataclasses.field(default_factory=list)

    @contextmanager
    def case(self) -> Iterator[None]:
        """One case: everything it writes is rolled back afterwards; rate limits reset."""
        savepoint = self.connection.begin_nested()
        try:
            yield
        finally:
            self.session.rollback()
            savepoint.rollback()
            for key in self.redis.scan_iter(match="LIMITS:*", count=1000):
                self.redis.delete(key)

    def fail(self, case: str, message: str) -> None:
        self.failures.append(f"{case}: {message}")


def open_world(
    session: Session,
    app: Flask,
    client: FlaskClient,
    connection: Connection,
    redis: Redis,
    form: Form,
) -> tuple[Harness, str, str]:
    world = WORLDS[form.world](session, app, client)
    session.commit()  # the world stays (in the test's transaction); each case rolls back
    if form.who:
        login(client, world.values[form.who])
    page = client.get(world.fmt(form.page or form.action))
    assert page.status_code == 200, (page.status_code, page.get_data(as_text=True)[-2000:])
    token = csrf_token(page.get_data(as_text=True))
    session.commit()
    reader = None
    if form.viewer:
        reader = https_client(app)
        login(reader, world.values[form.viewer])
    harness = Harness(session, connection, redis, client, world, snapshot(session), reader)
    session.commit()
    return harness, world.fmt(form.action), token


def check(
    h: Harness, form: Form, case: str, expect: Expect, response: Any, done_before: Any
) -> bool:
    """Record what is wrong with this answer; True when it was accepted as expected."""
    body = response.get_data(as_text=True)
    if response.status_code >= 500:
        h.fail(case, f"{response.status_code}: {_excerpt(body)}")
        return False
    for s in (*XSS[:2], "<img src=x"):
        if s in body:
            h.fail(case, f"unescaped {s!r} in the answer")
    if expect.accept:
        if response.status_code not in form.ok:
            h.fail(case, f"expected success, got {response.status_code}: {_excerpt(body)}")
            return False
        if form.done(h.session, h.world) == done_before:
            h.fail(case, "accepted but the form did nothing")
            return False
        return True
    if response.status_code not in expect.statuses:
        h.fail(case, f"expected {sorted(expect.statuses)}, got {response.status_code}")
    if response.mimetype != "text/html" or "<h1" not in body or "Traceback" in body:
        h.fail(case, "the answer is not a readable page")
    elif not readable(body) or (expect.says and expect.says not in body):
        h.fail(case, f"no readable reason ({expect.says!r}): {_excerpt(body)}")
    after = snapshot(h.session)
    if after != h.before:
        changed = sorted(t for t in after if after[t] != h.before.get(t))
        h.fail(case, f"a rejected request changed the database: {changed}")
    return False


def _excerpt(body: str) -> str:
    """The page's messages (its error summary, alerts, headings), briefly."""
    import re

    found = re.findall(r'(?:class="[^"]*(?:error|alert|flash)[^"]*"[^>]*>|<h1>)([^<]{0,160})', body)
    return " | ".join(f.strip() for f in found if f.strip())[:300] or body[-200:]


def check_stored(h: Harness, form: Form, case: str, field: str, value: str | Raw) -> None:
    text = value.data.decode("latin-1") if isinstance(value, Raw) else value
    expected = form.cleans.get(field, form.clean)(text)
    stored = scalar(h.session, form.stored[field], h.world)
    if stored != expected:
        h.fail(case, f"stored {stored!r}, sent {text!r}")
        return
    reader = h.reader or h.client
    pages = [reader.get(h.world.fmt(p)).get_data(as_text=True) for p in form.shows]
    for body in pages:
        try:
            assert_no_live_markup(body)
        except AssertionError as exc:
            h.fail(case, f"shown unescaped: {exc}")
    if pages and expected and not any(str(escape(expected)) in body for body in pages):
        h.fail(case, "the stored value is not shown")


def cases_for(form: Form) -> Iterator[tuple[str, str, Any, Expect]]:
    for name, kind in form.fields().items():
        cases = CASES + (CHOICE_CASES if kind is Kind.CHOICE else [])
        if kind is Kind.CSRF:
            cases = [c for c in cases if c[0] not in CSRF_SKIPS]
        for case_id, sender, rule in cases:
            expect = form.overrides.get((name, case_id)) or rule(kind, name in form.optional)
            if name in form.dates and case_id == "list":
                expect = rejected(422)
            if name in form.dates and name not in form.valid and case_id in ("list", "choice-"):
                # An optional date left empty: WTForms' Optional() reads only the first
                # value, "" here, and stops there. Nothing of the rest is used.
                expect = accepted()
            yield name, case_id, sender, expect


@pytest.mark.parametrize("form_name", list(FORMS_BY_NAME))
def test_hostile_values_on_every_field(
    client: FlaskClient,
    session: Session,
    app: Flask,
    db_connection: Connection,
    redis: Redis,
    form_name: str,
) -> None:
    form = FORMS_BY_NAME[form_name]
    h, action, token = open_world(session, app, client, db_connection, redis, form)
    valid = {k: h.world.fmt(v) for k, v in {**form.valid, "csrf_token": token}.items()}
    for name, case_id, sender, expect in cases_for(form):
        case = f"{name}-{case_id}"
        pairs: Pairs = [(k, v) for k, v in valid.items() if k != name]
        sent = sender(name, valid.get(name, ""))
        pairs += sent
        with h.case():
            done_before = form.done(session, h.world)
            response = client.post(
                action, data=encode(pairs), content_type="application/x-www-form-urlencoded"
            )
            ok = check(h, form, case, expect, response, done_before)
            if (
                ok
                and sent
                and sent[0][0] == name
                and name in form.stored
                and form.kinds.get(name) in (Kind.LINE, Kind.TEXTAREA)
            ):
                check_stored(h, form, case, name, sent[0][1])
    # Every page and every form, then: the valid form is accepted and nothing else.
    with h.case():
        done_before = form.done(session, h.world)
        response = client.post(action, data=valid)
        check(h, form, "valid", accepted(), response, done_before)
    with h.case():
        no_token = {k: v for k, v in valid.items() if k != "csrf_token"}
        response = client.post(action, data=no_token)
        check(h, form, "no-csrf", rejected(400, says="has expired"), response, None)
    with h.case():
        mass = {"collective_id": "1", "delivery_id": "1", "status": "sent", "role": "owner"}
        done_before = form.done(session, h.world)
        response = client.post(action, data={**mass, **valid})
        check(h, form, "unknown-fields", accepted(), response, done_before)
    assert not h.failures, "\n".join(h.failures)


# --- hostile files ------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
HTML = b"<!doctype html><script>alert(1)</script>"
# (case, file name, bytes): each a file a reply form must take or refuse, never a 500.
HOSTILE_FILES: list[tuple[str, str, bytes]] = [
    ("traversal", "../../../etc/passwd.pdf", PDF),
    ("windows-traversal", "..\\..\\boot.ini.pdf", PDF),
    ("1000-chars", "a" * 1000 + ".pdf", PDF),
    ("null-byte", "reply\x00.exe.pdf", PDF),
    ("rtl-override", "reply\u202efdp.exe.pdf", PDF),
    ("quotes", 'x.html"; filename="evil.html.pdf', PDF),
    ("crlf", "reply\r\nContent-Type: text/html.pdf", PDF),
    ("non-latin", "ответ министерства.pdf", PDF),
    ("xss", "<img src=x onerror=alert(1)>.pdf", PDF),
    ("empty", "empty.pdf", b""),
    ("png-as-pdf", "picture.pdf", PNG),
    ("html-as-pdf", "page.pdf", HTML),
    ("pdf-as-exe", "reply.exe", PDF),
    ("only-dots", "...", PDF),
]


@dataclasses.dataclass(frozen=True)
class Upload:
    form: str  # a form of FORMS
    field: str
    attachments_page: str  # where the organisers (or the department) download it


UPLOADS = {
    "respond-reply": Upload(
        "respond-reply", "reply-attachment", "/app/{slug}/responses/attachments/{attachment_id}"
    ),
    "department-reply": Upload(
        "department-reply",
        "attachment",
        "/department/{dept_key}/letters/{dept_delivery_id}/attachments/{attachment_id}",
    ),
}


def _attachments(session: Session, world: World) -> list[tuple[int, str, str]]:
    session.expire_all()
    with system_scope(session):
        rows = session.execute(
            text("select id, filename, content_type from response_attachments order by id")
        )
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]


@pytest.mark.parametrize("upload_name", list(UPLOADS))
def test_hostile_files(
    client: FlaskClient,
    session: Session,
    app: Flask,
    db_connection: Connection,
    redis: Redis,
    upload_name: str,
) -> None:
    upload = UPLOADS[upload_name]
    form = FORMS_BY_NAME[upload.form]
    h, action, token = open_world(session, app, client, db_connection, redis, form)
    valid = {k: h.world.fmt(v) for k, v in {**form.valid, "csrf_token": token}.items()}
    files: list[tuple[str, Any]] = [
        (case, {upload.field: (io.BytesIO(data), name)}) for case, name, data in HOSTILE_FILES
    ]
    files += [
        ("two-files", {upload.field: [(io.BytesIO(PDF), "one.pdf"), (io.BytesIO(HTML), "2.pdf")]}),
        ("php-array", {upload.field + "[]": (io.BytesIO(HTML), "x.pdf")}),
        ("no-name", {upload.field: (io.BytesIO(HTML), "")}),
    ]

    def multipart(fields: dict[str, Any]) -> Callable[[], Any]:
        return lambda: client.post(
            action, data={**valid, **fields}, content_type="multipart/form-data"
        )

    sends: list[tuple[str, Callable[[], Any]]] = [
        (case, multipart(file_fields)) for case, file_fields in files
    ]
    # A quote escaped inside the quoted name (as a script may send it): Werkzeug reads
    # it as a quote in the name, where a download header must not end the name.
    boundary = "hostileboundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in valid.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{upload.field}"; '
        'filename="x.html\\"; y=\\".pdf"\r\nContent-Type: application/pdf\r\n\r\n'.encode()
        + PDF
        + f"\r\n--{boundary}--\r\n".encode()
    )
    raw_body = b"".join(parts)
    sends.append(
        (
            "escaped-quote",
            lambda: client.post(
                action, data=raw_body, content_type=f"multipart/form-data; boundary={boundary}"
            ),
        )
    )
    for case, send in sends:
        with h.case():
            _check_upload(h, form, upload, case, send)
    assert not h.failures, "\n".join(h.failures)


def _check_upload(
    h: Harness, form: Form, upload: Upload, case: str, send: Callable[[], Any]
) -> None:
    done_before = form.done(h.session, h.world)
    before = _attachments(h.session, h.world)
    response = send()
    body = response.get_data(as_text=True)
    if response.status_code >= 500:
        h.fail(case, f"{response.status_code}: {_excerpt(body)}")
        return
    if response.status_code not in form.ok:
        check(h, form, case, rejected(400, 413, 422), response, done_before)
        return
    if form.done(h.session, h.world) == done_before:
        h.fail(case, "accepted but no response was recorded")
    new = _attachments(h.session, h.world)[len(before) :]
    for attachment_id, filename, content_type in new:
        bad = [c for c in filename if c in "/\\" or unicodedata.category(c)[0] == "C"]
        if bad or len(filename) > 150 or not filename.strip(" ."):
            h.fail(case, f"stored file name {filename!r}")
        if content_type not in ALLOWED_TYPES:
            h.fail(case, f"stored a {content_type} file")
        if upload.attachments_page:
            h.world.values["attachment_id"] = attachment_id
            got = (h.reader or h.client).get(h.world.fmt(upload.attachments_page))
            disposition = got.headers.get("Content-Disposition", "")
            if not _is_latin1(disposition):  # PEP 3333: servers send only latin-1
                h.fail(case, f"a header no WSGI server can send: {disposition!r}")
            elif got.status_code != 200 or _download_name(disposition) != filename:
                h.fail(case, f"download {got.status_code} {disposition!r} for {filename!r}")
    reader = h.reader or h.client
    for page in form.shows:
        try:
            assert_no_live_markup(reader.get(h.world.fmt(page)).get_data(as_text=True))
        except AssertionError as exc:
            h.fail(case, f"shown unescaped: {exc}")


ALLOWED_TYPES = {
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.oasis.opendocument.text",
}


def _is_latin1(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _download_name(disposition: str) -> str | None:
    """The file name a browser saves as, from a Content-Disposition header: RFC 6266
    says `filename*` wins over `filename`."""
    from email.message import EmailMessage
    from urllib.parse import unquote

    for part in disposition.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "filename*" and value.lower().startswith("utf-8''"):
            return unquote(value[len("utf-8''") :])

    message = EmailMessage()
    message["Content-Disposition"] = disposition
    return message.get_filename()


# --- the inbound mail webhook: hostile bodies and headers --------------------------------

BEARER = {"Authorization": f"Bearer {SECRET}"}
MESSAGE = b"From: a@example.org\r\nTo: letters@elsewhere.example\r\nSubject: hi\r\n\r\nHello.\r\n"


def _webhook_cases() -> list[tuple[str, dict[str, Any], set[int]]]:
    """(case, keyword arguments for client.post, the statuses that are right)."""
    raw = {"headers": BEARER, "content_type": "message/rfc822"}
    return [
        ("empty", {**raw, "data": b""}, {400}),
        ("blank", {**raw, "data": b" \r\n\t"}, {400}),
        ("31-mb", {**raw, "data": MESSAGE + b"x" * (31 * 1024 * 1024)}, {413}),
        ("garbage", {**raw, "data": secrets.token_bytes(4096)}, {202}),
        ("nul-bytes", {**raw, "data": b"\x00" * 1000}, {202}),
        ("invalid-utf8", {**raw, "data": b"Subject: \xff\xfe\r\n\r\n\xc3\x28"}, {202}),
        ("1-mb-header", {**raw, "data": b"Subject: " + b"x" * 1024 * 1024 + b"\r\n\r\nhi"}, {202}),
        ("no-secret", {"data": MESSAGE, "content_type": "message/rfc822"}, {401}),
        ("wrong-secret", {**raw, "data": MESSAGE, "headers": {"Authorization": "Bearer x"}}, {401}),
        (
            "basic-scheme",
            {**raw, "data": MESSAGE, "headers": {"Authorization": f"Basic {SECRET}"}},
            {401},
        ),
        (
            "non-ascii-secret",
            {**raw, "data": MESSAGE, "headers": {"Authorization": "Bearer ünïcode"}},
            {401},
        ),
        (
            "huge-secret",
            {**raw, "data": MESSAGE, "headers": {"X-Chorus-Inbound-Secret": "s" * 65536}},
            {401},
        ),
        (
            "secret-prefix",
            {**raw, "data": MESSAGE, "headers": {"Authorization": f"Bearer {SECRET[:-1]}"}},
            {401},
        ),
        (
            "wrong-secret-31-mb",
            {"data": b"x" * (31 * 1024 * 1024), "headers": {"Authorization": "Bearer x"}},
            {401, 413},
        ),
        (
            "multipart-two-files",
            {
                "headers": BEARER,
                "content_type": "multipart/form-data",
                "data": {
                    "message": [(io.BytesIO(MESSAGE), "a.eml"), (io.BytesIO(b"\xff"), "b.eml")]
                },
            },
            {200, 202},
        ),
        (
            "multipart-two-texts",
            {
                "headers": BEARER,
                "content_type": "multipart/form-data",
                "data": {"message": [MESSAGE.decode(), "second"]},
            },
            {200, 202},
        ),
        (
            "multipart-php-array",
            {
                "headers": BEARER,
                "content_type": "multipart/form-data",
                "data": {"message[]": (io.BytesIO(MESSAGE), "a.eml")},
            },
            {400},
        ),
        (
            "multipart-empty-file",
            {
                "headers": BEARER,
                "content_type": "multipart/form-data",
                "data": {"message": (io.BytesIO(b""), "a.eml")},
            },
            {400},
        ),
        (
            "multipart-no-boundary",
            {"headers": BEARER, "content_type": "multipart/form-data", "data": MESSAGE},
            {400},
        ),
        (
            "multipart-nul-filename",
            {
                "headers": BEARER,
                "content_type": "multipart/form-data",
                "data": {"message": (io.BytesIO(MESSAGE), "a\x00.eml")},
            },
            {200, 202, 400},
        ),
        (
            "urlencoded-raw-bytes",
            {
                "headers": BEARER,
                "content_type": "application/x-www-form-urlencoded",
                "data": b"message=\xff\xfe",
            },
            {400, 202},
        ),
        (
            "urlencoded-list",
            {
                "headers": BEARER,
                "content_type": "application/x-www-form-urlencoded",
                "data": encode([("message", MESSAGE.decode()), ("message", "x")]),
            },
            {200, 202},
        ),
        (
            "json",
            {"headers": BEARER, "content_type": "application/json", "data": b'{"a": 1}'},
            {202},
        ),
    ]


@pytest.mark.usefixtures("webhook_on")
def test_hostile_webhook_requests(
    client: FlaskClient, session: Session, db_connection: Connection, redis: Redis
) -> None:
    world = World({})
    h = Harness(session, db_connection, redis, client, world, snapshot(session))
    session.commit()
    for case, kwargs, statuses in _webhook_cases():
        with h.case():
            response = client.post("/inbound/email", **kwargs)
            if response.status_code not in statuses:
                h.fail(
                    case,
                    f"expected {sorted(statuses)}, got {response.status_code}: "
                    f"{response.get_data(as_text=True)[:300]}",
                )
            if response.status_code >= 400 and snapshot(session) != h.before:
                h.fail(case, "a refused request changed the database")
            if response.status_code in (200, 202):
                kept = scalar(session, "select count(*) from inbound_messages", world)
                if kept != 1:
                    h.fail(case, f"{kept} messages kept, not 1")
    assert not h.failures, "\n".join(h.failures)
