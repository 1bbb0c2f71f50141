"""Recipients: the shared directory of departments (import, the operator's pages), each
collective's own recipients, isolation between collectives, and routing help."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tests.browser import A11y, LiveServer, launch_chromium, serve_live_app
from tests.conftest import Mailbox, form_post
from tests.factories import PASSWORD, add_member, login, make_collective, make_user
from tests.test_cross_collective import snapshot
from web.accounts.models import User
from web.collectives.models import Collective, Membership, Role
from web.http import database
from web.recipients.models import Nation, Recipient
from web.recipients.services import (
    DIRECTORY_FILE,
    RecipientError,
    create_recipient,
    import_directory,
    list_recipients,
    read_directory_file,
    suggest_recipients,
    validate_directory_entries,
)
from web.tenancy import set_current_collective, system_scope

REQUIRED_KEYS = {
    "pmo",
    "cabinet-office",
    "hmt",
    "home-office",
    "fcdo",
    "mod",
    "moj",
    "dwp",
    "dhsc",
    "dfe",
    "desnz",
    "defra",
    "dbt",
    "dsit",
    "dcms",
    "dft",
    "mhclg",
    "nio",
    "scotland-office",
    "wales-office",
    "ago",
    "oag",
    "olhc",
    "olhl",
    "ukef",
    "scottish-government",
    "welsh-government",
    "ni-executive",
}
UK_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][0-9A-Z]? [0-9][A-Z]{2}$")
OFFICIAL_SUFFIXES = (".gov.uk", "gov.scot", "gov.wales", "llyw.cymru")


def raw_file() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DIRECTORY_FILE.read_text(encoding="utf-8"))
    return document


def directory_count(session: Session) -> int:
    session.expire_all()
    with system_scope(session):
        return session.execute(
            select(func.count()).select_from(Recipient).where(Recipient.collective_id.is_(None)),
            execution_options={"all_collectives": True},
        ).scalar_one()


def directory_row(session: Session, key: str) -> Recipient:
    session.expire_all()
    row = session.scalar(
        select(Recipient).where(Recipient.collective_id.is_(None), Recipient.key == key),
        execution_options={"all_collectives": True},
    )
    assert row is not None, key
    return row


def load_directory(session: Session) -> None:
    import_directory(session, read_directory_file())


def membership_of(session: Session, collective: Collective, user: User) -> Membership:
    set_current_collective(session, collective.id)
    membership = session.scalar(select(Membership).where(Membership.user_id == user.id))
    assert membership is not None
    return membership


# --- the shipped data file --------------------------------------------------------------


def test_shipped_directory_passes_validation_and_invents_nothing() -> None:
    document = raw_file()
    assert document["source"].strip()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", document["checked"])
    entries = read_directory_file()
    assert {e.key for e in entries} >= REQUIRED_KEYS
    for raw in document["entries"]:
        key = raw["key"]
        assert raw["nation"] in {n.value for n in Nation}, key
        assert raw["kind"] in {"ministerial_department", "devolved_government"}, key
        assert 10 <= len(raw["remit_keywords"]) <= 25, key
        assert all(k == k.lower().strip() and k for k in raw["remit_keywords"]), key
        assert (raw["ack_target_days"], raw["reply_target_days"]) == (5, 20), key
        assert raw["website"].startswith("https://www."), key
        for domain in raw["email_domains"]:
            assert domain.endswith(OFFICIAL_SUFFIXES), (key, domain)
        email = raw["correspondence_email"]
        if email:
            host = email.rsplit("@", 1)[1]
            assert any(host == d or host.endswith("." + d) for d in raw["email_domains"]), key
        if raw["postal_address"]:
            lines = raw["postal_address"].split("\n")
            assert len(lines) >= 3
            assert all(line.strip() == line and line for line in lines)
            assert UK_POSTCODE.match(lines[-1]), (key, lines[-1])
    by_key = {raw["key"]: raw for raw in document["entries"]}
    assert by_key["scottish-government"]["nation"] == "scotland"
    assert by_key["ni-executive"]["nation"] == "northern-ireland"
    assert by_key["welsh-government"]["nation"] == "england-and-wales"
    assert by_key["dwp"]["kind"] == "ministerial_department"
    assert {k for k, r in by_key.items() if r["kind"] == "devolved_government"} == {
        "scottish-government",
        "welsh-government",
        "ni-executive",
    }


# --- importing the directory ---------------------------------------------------------------


def test_import_is_idempotent_and_updates_only_what_changed(session: Session) -> None:
    entries = read_directory_file()
    first = import_directory(session, entries)
    assert len(first.created) == len(entries)
    assert not first.updated
    assert not first.unchanged
    assert directory_count(session) == len(entries)

    second = import_directory(session, read_directory_file())
    assert not second.created
    assert not second.updated
    assert len(second.unchanged) == len(entries)

    document = raw_file()
    for raw in document["entries"]:
        if raw["key"] == "dwp":
            raw["remit_keywords"].append("motability")
            raw["postal_address"] = raw["postal_address"].replace("London", "LONDON")
    third = import_directory(session, document["entries"])
    assert third.updated == ["dwp"]
    assert not third.created
    assert len(third.unchanged) == len(entries) - 1
    dwp = directory_row(session, "dwp")
    assert "motability" in dwp.remit_keywords
    assert "LONDON" in dwp.postal_address
    assert dwp.collective_id is None


def test_the_import_command_reports_counts_and_is_all_or_nothing(
    app: Flask, session: Session, tmp_path: Path
) -> None:
    runner = app.test_cli_runner()
    path = tmp_path / "departments.json"
    document = raw_file()
    n = len(document["entries"])
    path.write_text(json.dumps(document), encoding="utf-8")

    result = runner.invoke(args=["recipients", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{n} created, 0 updated, 0 unchanged" in result.output
    result = runner.invoke(args=["recipients", "import", str(path)])
    assert f"0 created, 0 updated, {n} unchanged" in result.output

    document["entries"][0]["name"] += " (renamed)"
    document["entries"].append(copy.deepcopy(document["entries"][1]) | {"key": "zz-new"})
    path.write_text(json.dumps(document), encoding="utf-8")
    result = runner.invoke(args=["recipients", "import", str(path)])
    assert f"1 created, 1 updated, {n - 1} unchanged" in result.output
    assert directory_count(session) == n + 1

    # A broken entry late in the file: nothing at all is written, and the message names
    # the entry and the field.
    document["entries"][0]["name"] += " again"
    document["entries"][5]["nation"] = "wales"
    path.write_text(json.dumps(document), encoding="utf-8")
    result = runner.invoke(args=["recipients", "import", str(path)])
    assert result.exit_code != 0
    key = document["entries"][5]["key"]
    assert f"Entry 6 (“{key}”), field “nation”" in result.output
    assert "Nothing was imported" in result.output
    assert not directory_row(session, document["entries"][0]["key"]).name.endswith("again")

    path.write_text('{"entries": [', encoding="utf-8")
    result = runner.invoke(args=["recipients", "import", str(path)])
    assert result.exit_code != 0
    assert "not valid JSON" in result.output
    assert directory_count(session) == n + 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nation": "wales"}, "field “nation”"),
        ({"kind": "council"}, "field “kind”"),
        ({"name": ""}, "field “name”: Enter a name."),
        ({"name": "A\nB"}, "field “name”"),
        ({"name": "Department\u202e"}, "field “name”"),
        ({"remit_keywords": "benefits, pensions"}, "field “remit_keywords”"),
        ({"email_domains": ["https://dwp.gov.uk"]}, "field “email_domains”"),
        ({"correspondence_email": "someone@example.org"}, "not at one of this department"),
        ({"correspondence_email": "not an email"}, "field “correspondence_email”"),
        ({"reply_target_days": "twenty"}, "field “reply_target_days”"),
        ({"reply_target_days": True}, "field “reply_target_days”"),
        ({"ack_target_days": 30}, "cannot be longer than the reply target"),
        ({"website": "javascript:alert(1)"}, "field “website”"),
        ({"key": "DWP!"}, "field “key”"),
        ({"surprise": 1}, "unknown field “surprise”"),
        ({"postal_address": "x" * 1001}, "1000 characters or fewer"),
    ],
)
def test_an_invalid_entry_is_named_and_nothing_is_written(
    session: Session, change: dict[str, Any], message: str
) -> None:
    entries = raw_file()["entries"]
    entries[2] = entries[2] | change
    with pytest.raises(RecipientError) as caught:
        import_directory(session, entries)
    assert "Entry 3" in str(caught.value)
    assert message in str(caught.value)
    assert directory_count(session) == 0


def test_missing_fields_and_repeated_keys_are_refused(session: Session) -> None:
    entries = raw_file()["entries"]
    without_email = [dict(e) for e in entries]
    del without_email[4]["correspondence_email"]
    with pytest.raises(RecipientError, match=r"Entry 5 .*“correspondence_email” is missing"):
        validate_directory_entries(without_email)
    repeated = [*entries, entries[0]]
    with pytest.raises(RecipientError, match=f"repeats “{entries[0]['key']}” of entry 1"):
        import_directory(session, repeated)
    with pytest.raises(RecipientError, match="non-empty list"):
        import_directory(session, [])
    assert directory_count(session) == 0


def test_the_demo_seed_import_keeps_the_operators_edits(session: Session) -> None:
    load_directory(session)
    with system_scope(session):
        directory_row(session, "dfe").correspondence_email = "someone@education.gov.uk"
        session.flush()
    report = import_directory(session, read_directory_file(), overwrite=False)
    assert not report.created
    assert not report.updated
    assert directory_row(session, "dfe").correspondence_email == "someone@education.gov.uk"


# --- isolation: the directory is shared, a collective's recipients are its own ----------


def test_directory_is_shared_and_own_recipients_are_private(session: Session, app: Flask) -> None:
    load_directory(session)
    n = directory_count(session)
    alice = make_user(session, app)
    a = make_collective(session, alice, name="Alpha")
    bob = make_user(session, app)
    b = make_collective(session, bob, name="Bravo")
    council = create_recipient(
        session,
        membership_of(session, a, alice),
        {"kind": "council", "name": "Alpha Town Council", "nation": "england-and-wales"},
    )
    council_id = council.id

    set_current_collective(session, a.id)
    directory, own = list_recipients(session)
    assert len(directory) == n
    assert [r.name for r in own] == ["Alpha Town Council"]

    set_current_collective(session, b.id)
    session.expire_all()
    directory, own = list_recipients(session)
    assert len(directory) == n
    assert own == []
    assert session.scalar(select(Recipient).where(Recipient.id == council_id)) is None

    # Raw SQL through the same session: row-level security alone stops B.
    assert session.execute(text("select count(*) from recipients")).scalar_one() == n
    deleted = session.execute(text("delete from recipients where collective_id is null"))
    assert deleted.rowcount == 0
    updated = session.execute(text("update recipients set name = 'Hijacked'"))
    assert updated.rowcount == 0
    assert (
        session.execute(text("delete from recipients where id = :id"), {"id": council_id}).rowcount
        == 0
    )
    with pytest.raises(DBAPIError, match="row-level security"), session.begin_nested():
        session.execute(
            text(
                "insert into recipients (collective_id, key, kind, name)"
                " values (null, 'fake', 'ministerial_department', 'Fake Department')"
            )
        )
    set_current_collective(session, None)
    assert directory_count(session) == n
    assert directory_row(session, "dwp").name == "Department for Work and Pensions"


def test_a_collective_cannot_write_a_directory_row_through_the_orm(
    session: Session, app: Flask
) -> None:
    load_directory(session)
    alice = make_user(session, app)
    a = make_collective(session, alice)
    set_current_collective(session, a.id)
    dwp = session.scalar(select(Recipient).where(Recipient.key == "dwp"))
    assert dwp is not None
    dwp.name = "Hijacked"
    with pytest.raises(Exception, match="shared rows are written only in system_scope"):
        session.flush()
    session.rollback()


# --- the operator's pages -------------------------------------------------------------------


def make_admin(session: Session, app: Flask) -> User:
    admin = make_user(session, app, email="operator@example.org")
    admin.is_platform_admin = True
    session.flush()
    return admin


def test_only_platform_admins_reach_the_directory_pages(
    client: FlaskClient, other_client: FlaskClient, session: Session, app: Flask
) -> None:
    load_directory(session)
    dwp_id = directory_row(session, "dwp").id
    pages = ["/admin/recipients", f"/admin/recipients/{dwp_id}/edit"]
    for page in pages:
        assert client.get(page).status_code == 404  # not signed in
    organiser = make_user(session, app)
    make_collective(session, organiser)
    login(client, organiser)
    before = snapshot(session)
    for page in pages:
        response = client.get(page)
        assert response.status_code == 404, page
        assert "Department for Work and Pensions" not in response.get_data(as_text=True)
    home = client.get("/app/").get_data(as_text=True)
    assert ">Admin<" not in home
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', home)
    assert token
    posted = client.post(pages[1], data={"csrf_token": token.group(1), "name": "Hijacked"})
    assert posted.status_code == 404
    assert snapshot(session) == before

    admin = make_admin(session, app)
    login(other_client, admin)
    listing = other_client.get(pages[0]).get_data(as_text=True)
    assert ">Admin<" in listing
    assert "Department for Work and Pensions" in listing
    assert "Scottish Government" in listing
    searched = other_client.get("/admin/recipients?q=pensions").get_data(as_text=True)
    assert "Department for Work and Pensions" in searched
    assert "Home Office" not in searched


def test_the_operator_edits_a_directory_entry(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    load_directory(session)
    dwp_id = directory_row(session, "dwp").id
    login(client, make_admin(session, app))
    page = f"/admin/recipients/{dwp_id}/edit"
    form = client.get(page).get_data(as_text=True)
    assert 'value="Department for Work and Pensions"' in form
    assert "universal credit, pip," in form
    data = {
        "name": "Department for Work and Pensions",
        "kind": "ministerial_department",
        "short_name": "DWP",
        "postal_address": "Caxton House\r\nTothill Street\r\nLondon\r\nSW1H 9NA",
        "correspondence_email": "correspondence@dwp.gov.uk",
        "escalation_email": "",
        "email_domains": "dwp.gov.uk",
        "website": "https://www.gov.uk/government/organisations/department-for-work-pensions",
        "remit_keywords": "Benefits, PIP, universal credit,, motability",
        "nation": "england-and-wales",
        "ack_target_days": "5",
        "reply_target_days": "20",
    }
    response = form_post(client, page, data)
    assert response.status_code == 302, response.get_data(as_text=True)
    dwp = directory_row(session, "dwp")
    assert dwp.correspondence_email == "correspondence@dwp.gov.uk"
    assert dwp.remit_keywords == ["benefits", "pip", "universal credit", "motability"]
    assert dwp.postal_address == "Caxton House\nTothill Street\nLondon\nSW1H 9NA"
    assert dwp.collective_id is None
    assert dwp.key == "dwp"

    # An address outside the department's own domains is refused, readably.
    before = snapshot(session)
    refused = form_post(client, page, data | {"correspondence_email": "tips@example.org"})
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "There is a problem" in body
    assert "not at one of this department" in body
    assert snapshot(session) == before


# --- a collective's own recipients ----------------------------------------------------------

COUNCIL = {
    "name": "Leeds City Council",
    "kind": "council",
    "short_name": "",
    "postal_address": "Civic Hall\r\nLeeds",
    "correspondence_email": "letters@leeds.example.org",
    "email_domains": "leeds.example.org",
    "website": "https://www.leeds.example.org",
    "remit_keywords": "bin collections, libraries, potholes",
    "nation": "england-and-wales",
    "ack_target_days": "5",
    "reply_target_days": "15",
}


@pytest.fixture
def collective(session: Session, app: Flask) -> dict[str, Any]:
    load_directory(session)
    owner = make_user(session, app, name="Olive Owner")
    home = make_collective(session, owner, name="Home Base", slug="home-base")
    viewer = make_user(session, app)
    add_member(session, home, viewer, Role.VIEWER)
    return {"owner": owner, "viewer": viewer, "slug": home.slug, "id": home.id}


def own_recipients(session: Session, collective_id: int) -> list[Recipient]:
    session.expire_all()
    set_current_collective(session, collective_id)
    _, own = list_recipients(session)
    set_current_collective(session, None)
    return own


def test_an_organiser_adds_edits_and_deletes_a_recipient(
    client: FlaskClient, session: Session, collective: dict[str, Any]
) -> None:
    login(client, collective["owner"])
    base = f"/app/{collective['slug']}/recipients"
    listing = client.get(base).get_data(as_text=True)
    assert "Department for Work and Pensions" in listing
    assert "has not added any recipients yet" in listing

    response = form_post(client, f"{base}/new", COUNCIL)
    assert response.status_code == 302, response.get_data(as_text=True)
    [council] = own_recipients(session, collective["id"])
    assert council.key == "leeds-city-council"
    assert council.remit_keywords == ["bin collections", "libraries", "potholes"]
    assert council.postal_address == "Civic Hall\nLeeds"
    assert council.reply_target_days == 15
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Leeds City Council" in page
    assert "letters@leeds.example.org" in page

    edited = form_post(client, f"{base}/{council.id}/edit", COUNCIL | {"kind": "other"})
    assert edited.status_code == 302
    assert own_recipients(session, collective["id"])[0].kind == "other"
    # A second recipient with the same name gets its own key.
    assert form_post(client, f"{base}/new", COUNCIL).status_code == 302
    keys = sorted(r.key for r in own_recipients(session, collective["id"]))
    assert keys == ["leeds-city-council", "leeds-city-council-2"]

    assert "Delete Leeds City Council?" in client.get(f"{base}/{council.id}/delete").get_data(
        as_text=True
    )
    deleted = form_post(client, f"{base}/{council.id}/delete", {})
    assert deleted.status_code == 302
    assert [r.key for r in own_recipients(session, collective["id"])] == ["leeds-city-council-2"]


def test_a_recipient_a_campaign_uses_cannot_be_deleted(
    client: FlaskClient, session: Session, collective: dict[str, Any]
) -> None:
    from web.campaigns.services import create_campaign

    home = session.get(Collective, collective["id"])
    assert home is not None
    membership = membership_of(session, home, collective["owner"])
    council = create_recipient(
        session,
        membership,
        {"kind": "council", "name": "Leeds City Council", "nation": "england-and-wales"},
    )
    campaign = create_campaign(
        session, membership, kind="open_letter", title="Fix the bins", slug="bins"
    )
    campaign.recipient_id = council.id
    session.flush()
    council_id = council.id
    set_current_collective(session, None)

    login(client, collective["owner"])
    action = f"/app/{collective['slug']}/recipients/{council_id}/delete"
    before = snapshot(session)
    response = form_post(client, action, {})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "Leeds City Council is the recipient of 1 campaign." in body
    assert "There is a problem" in body
    assert snapshot(session) == before


def test_viewers_read_but_cannot_change_recipients(
    client: FlaskClient, session: Session, collective: dict[str, Any]
) -> None:
    home = session.get(Collective, collective["id"])
    assert home is not None
    council_id = create_recipient(
        session,
        membership_of(session, home, collective["owner"]),
        {"kind": "council", "name": "Leeds City Council", "nation": "england-and-wales"},
    ).id
    set_current_collective(session, None)
    login(client, collective["viewer"])
    base = f"/app/{collective['slug']}/recipients"
    listing = client.get(base).get_data(as_text=True)
    assert "Leeds City Council" in listing
    assert "Add a recipient" not in listing
    assert client.get(f"{base}/{council_id}").status_code == 200
    before = snapshot(session)
    for action, data in [
        (f"{base}/new", COUNCIL),
        (f"{base}/{council_id}/edit", COUNCIL | {"name": "Renamed"}),
        (f"{base}/{council_id}/delete", {}),
    ]:
        assert client.get(action).status_code == 403
        response = form_post(client, base, data, action=action)
        assert response.status_code == 403, action
        assert "Only owners or organisers of this collective can do that." in response.get_data(
            as_text=True
        )
    assert snapshot(session) == before


def test_directory_entries_are_read_only_for_collectives(
    client: FlaskClient, session: Session, collective: dict[str, Any]
) -> None:
    dwp_id = directory_row(session, "dwp").id
    login(client, collective["owner"])
    base = f"/app/{collective['slug']}/recipients"
    page = client.get(f"{base}/{dwp_id}").get_data(as_text=True)
    assert "Caxton House" in page
    assert "Chorus directory" in page
    assert f"{base}/{dwp_id}/edit" not in page
    before = snapshot(session)
    for action in (f"{base}/{dwp_id}/edit", f"{base}/{dwp_id}/delete"):
        response = form_post(client, base, COUNCIL, action=action)
        assert response.status_code == 403
        assert "shared directory" in response.get_data(as_text=True)
    assert snapshot(session) == before


def test_list_search_works_without_javascript(
    client: FlaskClient, collective: dict[str, Any]
) -> None:
    login(client, collective["owner"])
    base = f"/app/{collective['slug']}/recipients"
    page = client.get(f"{base}?q=pensions").get_data(as_text=True)
    assert "Department for Work and Pensions" in page
    assert "Home Office" not in page
    by_topic = client.get(f"{base}?q=asylum").get_data(as_text=True)
    assert "Home Office" in by_topic
    assert "Department for Work and Pensions" not in by_topic
    odd = client.get(f"{base}?q=%25_%5C%27").get_data(as_text=True)  # %_\'
    assert "No government department matches." in odd


@pytest.mark.parametrize(
    ("field", "value", "status", "message"),
    [
        ("name", "Leeds\x00Council", 400, "null character"),
        ("postal_address", "x" * (1024 * 1024), 422, "1000 characters or fewer"),
        ("name", "x" * 201, 422, "200 characters or fewer"),
        ("name", "Leeds\x07Council", 422, "control characters"),
        ("name", "Leeds\u202eCouncil", 422, "text-direction characters"),
        ("name", "", 422, "Enter a name"),
        ("website", "javascript:alert(1)", 422, "starting with https://"),
        ("correspondence_email", "not-an-email", 422, "correct format"),
        ("email_domains", "@leeds", 422, "is not an email domain"),
        ("remit_keywords", "x" * 61, 422, "60 characters or fewer"),
        ("reply_target_days", "-1", 422, "whole number of working days"),
        ("reply_target_days", "99999999999999999999", 422, "whole number of working days"),
        ("kind", "ministerial_department", 422, "Not a valid choice"),
        ("nation", "wales", 422, "Not a valid choice"),
    ],
)
def test_hostile_input_gets_a_readable_answer_and_changes_nothing(
    client: FlaskClient,
    session: Session,
    collective: dict[str, Any],
    field: str,
    value: str,
    status: int,
    message: str,
) -> None:
    login(client, collective["owner"])
    base = f"/app/{collective['slug']}/recipients"
    before = snapshot(session)
    response = form_post(client, f"{base}/new", COUNCIL | {field: value})
    body = response.get_data(as_text=True)
    assert response.status_code == status, body[:500]
    assert message in body
    assert snapshot(session) == before


def test_markup_is_stored_as_sent_and_shown_escaped(
    client: FlaskClient, session: Session, collective: dict[str, Any]
) -> None:
    login(client, collective["owner"])
    base = f"/app/{collective['slug']}/recipients"
    xss = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
    data = COUNCIL | {"name": xss[:100], "remit_keywords": "<b>bins</b>", "short_name": "{{7*7}}"}
    response = form_post(client, f"{base}/new", data)
    assert response.status_code == 302, response.get_data(as_text=True)
    [stored] = own_recipients(session, collective["id"])
    assert stored.name == xss[:100]
    for page in (base, response.headers["Location"], f"{base}/{stored.id}/edit"):
        body = client.get(page).get_data(as_text=True)
        assert xss[:100] not in body
        assert "<b>bins</b>" not in body
        assert str(escape(xss[:30])) in body
        assert "49" not in body.split("{{7*7}}")[0][-10:]


# --- routing help ------------------------------------------------------------------------------


@pytest.fixture
def tenant(session: Session, app: Flask) -> Collective:
    load_directory(session)
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    set_current_collective(session, collective.id)
    return collective


@pytest.mark.parametrize(
    ("issue", "key", "reasons"),
    [
        (
            "Cuts to PIP are hurting disabled people who rely on benefits",
            "dwp",
            {"pip", "disability", "benefits"},
        ),
        (
            "Schools are failing children with SEND: families wait years for an EHCP",
            "dfe",
            {"schools", "send", "ehcp"},
        ),
        (
            "NHS waiting lists keep growing and social care is in crisis",
            "dhsc",
            {"nhs", "waiting lists", "social care"},
        ),
        (
            "Asylum seekers wait years while immigration rules change and police look away",
            "home-office",
            {"asylum", "immigration", "police"},
        ),
        (
            "Scottish ferries to the islands keep breaking down",
            "scottish-government",
            {"scottish", "ferries", "islands"},
        ),
        ("Our energy bills doubled and we cannot afford heat pumps", "desnz", {"energy bills"}),
        ("Sewage in our rivers is killing wildlife", "defra", {"sewage", "rivers", "wildlife"}),
        ("Potholes on our roads and the cuts to buses", "dft", {"potholes", "roads", "buses"}),
    ],
)
def test_suggestions_point_to_the_department_that_deals_with_it(
    session: Session, tenant: Collective, issue: str, key: str, reasons: set[str]
) -> None:
    suggestions = suggest_recipients(session, issue)
    assert suggestions, issue
    assert suggestions[0].recipient.key == key, [(s.recipient.key, s.matched) for s in suggestions]
    assert reasons <= set(suggestions[0].matched), suggestions[0].matched
    assert len(suggestions) <= 3
    ranks = [s.rank for s in suggestions]
    assert ranks == sorted(ranks, reverse=True)


def test_a_department_is_found_by_its_name(session: Session, tenant: Collective) -> None:
    [first, *_] = suggest_recipients(session, "a letter for the Department for Education")
    assert first.recipient.key == "dfe"
    assert "education" in first.matched


@pytest.mark.parametrize(
    "issue",
    [
        "",
        "   ",
        "the and of to a in is it",
        "'\"&|!:*\\()<>-",
        "!!! ||| &&& :* :* \\\\",
    ],
)
def test_no_words_no_suggestions(session: Session, tenant: Collective, issue: str) -> None:
    assert suggest_recipients(session, issue) == []


@pytest.mark.parametrize(
    "issue",
    [
        "benefits' | pip & !universal:* credit\\",
        "pip:* & (benefits | 'x') <-> !!carers",
        "benefits " * 2000,
        "x" * 10_000,
        "a-b_c d'e f\\g h\x01i \u202epip\u202c 福利 bénéfices",
        " ".join(f"word{n}" for n in range(3000)),
    ],
)
def test_hostile_text_never_breaks_the_suggestions(
    session: Session, tenant: Collective, issue: str
) -> None:
    suggestions = suggest_recipients(session, issue)
    assert isinstance(suggestions, list)
    assert len(suggestions) <= 3
    if "benefits" in issue:
        assert suggestions[0].recipient.key == "dwp"


def test_suggestions_include_own_recipients_only(session: Session, app: Flask) -> None:
    load_directory(session)
    alice = make_user(session, app)
    a = make_collective(session, alice)
    bob = make_user(session, app)
    b = make_collective(session, bob)
    create_recipient(
        session,
        membership_of(session, a, alice),
        {
            "kind": "council",
            "name": "Alpha Borough Council",
            "remit_keywords": ["bin collections", "fly tipping"],
            "nation": "england-and-wales",
        },
    )
    issue = "Missed bin collections and fly tipping on our street"
    set_current_collective(session, a.id)
    [first, *_] = suggest_recipients(session, issue)
    assert first.recipient.name == "Alpha Borough Council"
    assert first.matched[:2] == ["bin collections", "fly tipping"]
    set_current_collective(session, b.id)
    session.expire_all()
    assert all(
        s.recipient.name != "Alpha Borough Council" for s in suggest_recipients(session, issue)
    )


def test_the_suggestion_page_explains_its_reasons(
    client: FlaskClient, collective: dict[str, Any]
) -> None:
    login(client, collective["viewer"])
    base = f"/app/{collective['slug']}/recipients/suggest"
    empty = client.get(base).get_data(as_text=True)
    assert "Describe the issue" in empty
    assert "Suggested recipients" not in empty
    page = client.get(
        base, query_string={"q": "Cuts to PIP are hurting disabled people on benefits"}
    ).get_data(as_text=True)
    assert "Department for Work and Pensions (DWP)" in page
    assert re.search(r"matches [^<]*pip", page)
    nothing = client.get(base, query_string={"q": "zzzz qqqq"}).get_data(as_text=True)
    assert "No recipient matched those words" in nothing
    hostile = client.get(base, query_string={"q": "<script>x</script>'\"&|!:*\\" * 700})
    assert hostile.status_code == 200
    assert "<script>x</script>" not in hostile.get_data(as_text=True)
    fragment = client.get(base, query_string={"q": "asylum", "fragment": "1"})
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200
    assert "<html" not in body
    assert "Home Office" in body


# --- in a real browser: every page passes axe-core -------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def live(
    live_app_factory: Callable[..., Flask], live_db: str, mailbox: Mailbox
) -> Iterator[LiveServer]:
    with serve_live_app(live_app_factory) as server:
        yield server


def browser_login(page: Page, email: str, a11y: A11y) -> None:
    page.goto("/login")
    a11y.check(page)
    page.get_by_label("Email address", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your collectives")
    a11y.check(page)


@pytest.mark.browser
@pytest.mark.live
def test_recipient_pages_pass_axe_in_a_real_browser(live: LiveServer, browser: Browser) -> None:
    with database(live.app).session_scope() as s:
        load_directory(s)
        owner = make_user(s, live.app, email="organiser@example.org")
        collective = make_collective(s, owner, name="Riverside Voices", slug="riverside")
        admin = make_user(s, live.app, email="operator@example.org")
        admin.is_platform_admin = True
        s.flush()
        slug, owner_email, admin_email = collective.slug, owner.email, admin.email
    a11y = A11y()
    # The pages carry no script at all; axe itself needs JavaScript to run.
    context = browser.new_context(base_url=live.url)
    context.set_default_timeout(10_000)
    page = a11y.watch(context.new_page())
    heading = page.get_by_role("heading", level=1)
    browser_login(page, owner_email, a11y)

    page.goto(f"/app/{slug}/recipients")
    expect(heading).to_have_text("Recipients")
    a11y.check(page)
    page.get_by_label("Search by name or topic").fill("asylum")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("status")).to_contain_text("1 match")
    expect(page.get_by_role("link", name="Home Office")).to_be_visible()
    a11y.check(page)
    page.get_by_role("link", name="Home Office").click()
    expect(heading).to_have_text("Home Office")
    a11y.check(page)

    page.goto(f"/app/{slug}/recipients/new")
    expect(heading).to_have_text("Add a recipient")
    a11y.check(page)
    page.get_by_label("Name", exact=True).fill("Riverside Borough Council")
    page.get_by_label("Website (optional)").fill("javascript:alert(1)")
    page.get_by_role("button", name="Add recipient").click()
    expect(page.get_by_role("alert")).to_contain_text("starting with https://")
    expect(page).to_have_title(re.compile(r"^Error: Add a recipient"))
    a11y.check(page)
    page.get_by_label("Website (optional)").fill("https://www.riverside.example.org")
    page.get_by_label("Topics they deal with (optional)").fill("bin collections, fly tipping")
    page.get_by_role("button", name="Add recipient").click()
    expect(heading).to_have_text("Riverside Borough Council")
    expect(page.get_by_role("status")).to_contain_text("has been added")
    a11y.check(page)
    page.get_by_role("link", name="Edit Riverside Borough Council").click()
    expect(heading).to_have_text("Edit Riverside Borough Council")
    a11y.check(page)
    page.get_by_role("link", name="Back").click()
    expect(heading).to_have_text("Riverside Borough Council")
    a11y.check(page)
    page.get_by_role("link", name="Delete Riverside Borough Council").click()
    expect(heading).to_have_text("Delete Riverside Borough Council?")
    a11y.check(page)

    page.goto(f"/app/{slug}/recipients/suggest")
    expect(heading).to_have_text("Who should we write to?")
    a11y.check(page)
    page.get_by_label("Describe the issue").fill(
        "Cuts to PIP are hurting disabled people who rely on benefits"
    )
    page.get_by_role("button", name="Suggest recipients").click()
    first = page.get_by_role("listitem").filter(has_text="Department for Work and Pensions")
    expect(first).to_contain_text("matches benefits, pip, disability")
    a11y.check(page)

    operator = a11y.watch(browser.new_context(base_url=live.url).new_page())
    browser_login(operator, admin_email, a11y)
    operator.get_by_role("link", name="Admin", exact=True).click()
    expect(operator.get_by_role("heading", level=1)).to_have_text("Directory of departments")
    a11y.check(operator)
    operator.get_by_role("link", name="Edit Department for Work and Pensions").click()
    expect(operator.get_by_role("heading", level=1)).to_have_text(
        "Edit Department for Work and Pensions"
    )
    a11y.check(operator)
    operator.get_by_label("Correspondence email (optional)").fill("someone@example.org")
    operator.get_by_role("button", name="Save changes").click()
    expect(operator.get_by_role("alert")).to_contain_text("not at one of this department")
    a11y.check(operator)

    a11y.assert_every_page_checked()
    operator.context.close()
    context.close()
