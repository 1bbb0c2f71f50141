"""Assisted and paper signatures: an organiser records one on someone's behalf (method,
helper, consent), or imports a CSV file of paper forms with a per-row report. They count
at once, never twice, and the method shows wherever they are counted."""

from __future__ import annotations

import codecs
import html
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.browser import A11y, LazyBrowser, serve_live_app
from tests.conftest import csrf_token, form_post
from tests.factories import PASSWORD, add_member, login, make_user
from tests.test_cross_collective import snapshot
from tests.test_signatures import _published
from web.accounts.models import User
from web.campaigns import services as campaigns
from web.campaigns.models import Campaign
from web.collectives.models import Collective, Membership, Role
from web.http import database
from web.signatures import offline
from web.signatures import services as signing
from web.signatures.models import Signature, SignatureImport
from web.tenancy import set_current_collective

World = tuple[Collective, Campaign]


# --- helpers ---------------------------------------------------------------------------


@pytest.fixture
def world(session: Session, app: Flask) -> World:
    return _published(session, app)


def _owner(session: Session, collective: Collective) -> User:
    set_current_collective(session, collective.id)
    membership = session.scalar(select(Membership).where(Membership.role == Role.OWNER))
    assert membership is not None
    user = session.get(User, membership.user_id)
    assert user is not None
    return user


def _base(collective: Collective, campaign: Campaign) -> str:
    return f"/app/{collective.slug}/campaigns/{campaign.id}/signatures"


def _online(session: Session, campaign: Campaign, email: str, status: str = "verified") -> None:
    """A signature made on the public page (verified unless told otherwise)."""
    set_current_collective(session, campaign.collective_id)
    version = campaigns.current_version(session, campaign)
    assert version is not None
    session.add(
        Signature(
            campaign_id=campaign.id,
            letter_version_id=version.id,
            name="Online Signer",
            email=email,
            email_canonical=signing.canonical_email(email),
            status=status,
            secret_hash=b"\x01" * 32,
        )
    )
    session.flush()
    signing.reconcile_counts(session, campaign.id)
    session.flush()


def _count(session: Session, campaign: Campaign) -> int:
    collective_id = campaign.collective_id
    session.expire_all()
    set_current_collective(session, collective_id)
    return signing.verified_count(session, campaign)


def _signatures(session: Session, campaign: Campaign) -> list[Signature]:
    collective_id, campaign_id = campaign.collective_id, campaign.id
    session.expire_all()
    set_current_collective(session, collective_id)
    return list(
        session.scalars(
            select(Signature).where(Signature.campaign_id == campaign_id).order_by(Signature.id)
        )
    )


def _imports(session: Session, campaign: Campaign) -> list[SignatureImport]:
    collective_id, campaign_id = campaign.collective_id, campaign.id
    session.expire_all()
    set_current_collective(session, collective_id)
    return list(
        session.scalars(
            select(SignatureImport)
            .where(SignatureImport.campaign_id == campaign_id)
            .order_by(SignatureImport.id)
        )
    )


def _set_state(session: Session, campaign: Campaign, state: str) -> None:
    # Requests on the shared test connection reset the tenant setting: set it again.
    set_current_collective(session, campaign.collective_id)
    campaign.state = state
    session.flush()


RECORD = {
    "channel": "phone",
    "helper_name": "Harriet Helper",
    "name": "Pat Phoned",
    "email": "",
    "postcode": "M1 1AE",
    "statement": "",
    "consent": "y",
}


def _record(client: FlaskClient, base: str, **fields: Any) -> Any:
    data = {**RECORD, **fields}
    data = {k: v for k, v in data.items() if v is not None}
    return form_post(client, f"{base}/record", data)


def _upload(
    client: FlaskClient,
    base: str,
    content: bytes,
    *,
    filename: str = "paper.csv",
    consent: bool = True,
    helper_name: str = "Stall volunteers",
) -> Any:
    token = csrf_token(client.get(f"{base}/import").get_data(as_text=True))
    data: dict[str, Any] = {
        "csrf_token": token,
        "file": (io.BytesIO(content), filename),
        "helper_name": helper_name,
    }
    if consent:
        data["consent"] = "y"
    return client.post(f"{base}/import", data=data, content_type="multipart/form-data")


def _report_rows(body: str) -> list[tuple[int, str, str]]:
    """(line, outcome, column) of every row in an import report's table."""
    table = re.search(r'<table class="table" id="report">(.*?)</table>', body, flags=re.DOTALL)
    if table is None:
        return []
    rows = re.findall(
        r'<tr><th scope="row">([\d,]+)</th><td data-label="Outcome">(\w+)</td>'
        r'<td data-label="Column">(?:<code>(\w+)</code>|–)</td>',
        table.group(1),
    )
    return [(int(line.replace(",", "")), outcome, column) for line, outcome, column in rows]


# --- recording one signature -------------------------------------------------------------


def test_an_organiser_records_a_phone_signature_and_it_counts_at_once(
    client: FlaskClient, session: Session, app: Flask, world: World
) -> None:
    collective, campaign = world
    _online(session, campaign, "first@example.org")
    owner = _owner(session, collective)
    login(client, owner)
    base = _base(collective, campaign)
    assert _count(session, campaign) == 1

    response = _record(client, base, email="Pat.Phoned@Example.org", show_name="y")
    assert response.status_code == 303, response.get_data(as_text=True)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Recorded the signature of Pat Phoned, taken by phone. It counts now." in page

    assert _count(session, campaign) == 2
    recorded = _signatures(session, campaign)[-1]
    version = campaigns.current_version(session, campaign)
    assert version is not None
    assert (recorded.method, recorded.channel, recorded.status) == ("assisted", "phone", "verified")
    assert recorded.helper_name == "Harriet Helper"
    assert recorded.recorded_by_id == owner.id
    assert recorded.consent_confirmed_at is not None
    assert recorded.verified_at is not None
    assert recorded.letter_version_id == version.id
    assert recorded.email == "Pat.Phoned@Example.org"
    assert recorded.email_canonical == "pat.phoned@example.org"
    assert recorded.postcode == "M1 1AE"
    assert recorded.import_id is None

    public = client.get(f"/{collective.slug}/{campaign.slug}").get_data(as_text=True)
    assert '<span class="count">2</span> verified signatures, including 1 by phone.' in public


def test_recording_without_consent_creates_nothing(
    client: FlaskClient, session: Session, app: Flask, world: World
) -> None:
    collective, campaign = world
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    client.get(f"{base}/record")
    before = snapshot(session)
    response = _record(client, base, consent=None)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "There is a problem" in body
    assert '<a href="#consent">Confirm that the person agreed to sign this letter.' in body
    assert snapshot(session) == before
    assert _count(session, campaign) == 0


def test_an_email_that_has_already_signed_is_refused_with_nothing_created(
    client: FlaskClient, session: Session, app: Flask, world: World
) -> None:
    collective, campaign = world
    _online(session, campaign, "firstlast@gmail.com", status="pending")
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    client.get(f"{base}/record")
    before = snapshot(session)
    # An alias of the same Gmail address: dots and a +tag.
    response = _record(client, base, email="First.Last+paper@gmail.com")
    body = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "This email address has already signed this campaign, so nothing was recorded." in body
    assert snapshot(session) == before


def test_without_an_email_the_same_name_and_postcode_is_one_person(
    client: FlaskClient, session: Session, app: Flask, world: World
) -> None:
    collective, campaign = world
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    assert _record(client, base, name="Amina Okafor", postcode="m11ae").status_code == 303
    response = _record(client, base, name="  amina   OKAFOR ", postcode="M1 1AE", channel="paper")
    assert response.status_code == 409
    assert "Someone with this name and postcode has already signed" in response.get_data(
        as_text=True
    )
    # Another postcode is another person.
    assert _record(client, base, name="Amina Okafor", postcode="SW1A 1AA").status_code == 303
    rows = _signatures(session, campaign)
    assert len(rows) == 2
    assert all(r.email == "" and r.email_canonical.startswith("offline:") for r in rows)
    assert rows[0].email_canonical == offline.offline_key("amina okafor", "M1 1AE")
    assert _count(session, campaign) == 2


@pytest.mark.parametrize(
    ("fields", "status", "says"),
    [
        ({"name": ""}, 422, "Enter the signer’s name."),
        ({"helper_name": ""}, 422, "Enter the name of the person who took the signature."),
        ({"channel": "carrier-pigeon"}, 422, "Not a valid choice"),
        ({"channel": None}, 422, "Choose how the signature was taken."),
        ({"email": "x@mailinator.com"}, 422, "disposable email service"),
        ({"email": "not-an-address"}, 422, "Enter an email address in the correct format"),
        ({"postcode": "NOWHERE"}, 422, "Enter a UK postcode, like SW1A 1AA."),
        ({"statement": "w" * 2001}, 422, "Their own words must be 2000 characters or fewer."),
        ({"wants_updates": "y"}, 422, "Updates go by email"),
        ({"name": "\u202egnp.exe\u202c"}, 422, "text-direction"),
        ({"name": "Line\r\nBcc: x@example.org"}, 422, "line breaks"),
        ({"name": "n" * (1024 * 1024)}, 422, "must be 120 characters or fewer"),
        ({"name": "nul\x00here"}, 400, "null character"),
    ],
)
def test_the_record_form_refuses_what_the_public_form_refuses(
    client: FlaskClient,
    session: Session,
    app: Flask,
    world: World,
    fields: dict[str, Any],
    status: int,
    says: str,
) -> None:
    collective, campaign = world
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    client.get(f"{base}/record")
    before = snapshot(session)
    response = _record(client, base, **fields)
    assert response.status_code == status
    assert says in html.unescape(response.get_data(as_text=True))
    assert snapshot(session) == before


def test_a_campaign_that_requires_postcodes_requires_them_offline_too(
    client: FlaskClient, session: Session, app: Flask, world: World
) -> None:
    collective, campaign = world
    campaign.postcode_mode = "required"
    session.flush()
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    response = _record(client, base, postcode="")
    assert response.status_code == 422
    assert "Enter the signer’s postcode: this campaign asks for one." in response.get_data(
        as_text=True
    )
    response = _upload(client, base, b"name,email\nAmina Okafor,\n")
    assert response.status_code == 422
    assert "the file has no “postcode” column" in response.get_data(as_text=True)
    assert _signatures(session, campaign) == []


def test_hostile_text_is_stored_as_typed_and_shown_escaped(
    client: FlaskClient, session: Session, app: Flask, world: World
) -> None:
    collective, campaign = world
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    xss = "<script>alert(1)</script>"
    response = _record(
        client, base, name=xss, helper_name='"><img src=x onerror=alert(1)>', show_name="y"
    )
    assert response.status_code == 303
    flashed = client.get(response.headers["Location"]).get_data(as_text=True)
    assert xss not in flashed
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in flashed
    public = client.get(f"/{collective.slug}/{campaign.slug}").get_data(as_text=True)
    assert xss not in public
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in public
    stored = _signatures(session, campaign)[-1]
    assert stored.name == xss
    assert stored.helper_name == '"><img src=x onerror=alert(1)>'


def test_signatures_can_be_added_after_closing_but_not_after_delivery(
    client: FlaskClient, session: Session, app: Flask, world: World
) -> None:
    collective, campaign = world
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    _set_state(session, campaign, "closed")
    assert _record(client, base).status_code == 303
    _set_state(session, campaign, "delivered")
    page = client.get(f"{base}/record").get_data(as_text=True)
    assert "The letter has been delivered, so its numbers are fixed" in page
    assert 'name="consent"' not in page
    token = csrf_token(page)
    before = snapshot(session)
    response = client.post(f"{base}/record", data={"csrf_token": token, **RECORD, "name": "Late"})
    assert response.status_code == 422
    assert "The letter has been delivered" in response.get_data(as_text=True)
    response = _upload(client, base, b"name\nLate Paper\n")
    assert response.status_code == 422
    assert snapshot(session) == before
    assert _count(session, campaign) == 1


# --- importing paper signatures ------------------------------------------------------------

MIXED = (
    b"name,email,postcode,statement,show_name,wants_updates\r\n"  # line 1
    b"Amina Okafor,amina@example.org,M1 1AE,I rely on PIP.,yes,yes\r\n"  # 2 valid
    b"Bob Paper,,SW1A 1AA,,,\r\n"  # 3 valid, no email
    b"Carol Bad,,NOWHERE,,,\r\n"  # 4 invalid postcode
    b",nameless@example.org,,,,\r\n"  # 5 invalid: no name
    b"Dee Disposable,dee@mailinator.com,,,,\r\n"  # 6 invalid: disposable
    b"Amina Again,AMINA@example.org,,,,\r\n"  # 7 duplicate of line 2
    b"Olly Online,olly@example.org,,,,\r\n"  # 8 duplicate: already signed online
    b"Eve Flag,,,,maybe,\r\n"  # 9 invalid yes/no
    b",,,,,\r\n"  # 10 blank, skipped
    b"Fay Extra,,,,,,surplus\r\n"  # 11 invalid: too many cells
    b'"=cmd|\' /C calc\'!A0",,,"=1+1",yes,\r\n'  # 12 valid: formula-looking text
    b'"Gus Multi",,,"line one\r\nline two",,\r\n'  # 13-14 valid, a quoted line break
    b"Hal Last,,BT1 5GS,,no,no\r\n"  # 15 valid
)


def test_a_csv_with_valid_invalid_and_duplicate_rows_gets_an_exact_report(
    client: FlaskClient, session: Session, app: Flask, world: World
) -> None:
    collective, campaign = world
    _online(session, campaign, "olly@example.org")
    login(client, _owner(session, collective))
    base = _base(collective, campaign)

    response = _upload(client, base, MIXED)
    assert response.status_code == 303, response.get_data(as_text=True)
    body = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Imported 5 signatures. 2 duplicates and 5 invalid rows were not imported" in body
    assert _report_rows(body) == [
        (4, "Invalid", "postcode"),
        (5, "Invalid", "name"),
        (6, "Invalid", "email"),
        (7, "Duplicate", ""),
        (8, "Duplicate", ""),
        (9, "Invalid", "show_name"),
        (11, "Invalid", ""),
    ]
    text = html.unescape(body)
    assert "The same person as on line 2 (the same email address): counted once." in text
    assert "Someone with the same email address has already signed this campaign" in text
    assert "This row has 7 cells but the first line names 6 columns." in text
    assert "1 empty row was skipped." in text
    assert '<span class="count" id="imported-count">5</span>' in body

    assert _count(session, campaign) == 1 + 5
    [record] = _imports(session, campaign)
    assert (record.imported_count, record.duplicate_count, record.invalid_count) == (5, 2, 5)
    assert record.file_name == "paper.csv"
    assert len(record.sha256) == 64
    assert record.helper_name == "Stall volunteers"
    assert all("Amina" not in str(entry) for entry in record.report)  # no personal data
    imported = [s for s in _signatures(session, campaign) if s.import_id == record.id]
    assert [s.name for s in imported] == [
        "Amina Okafor",
        "Bob Paper",
        "=cmd|' /C calc'!A0",
        "Gus Multi",
        "Hal Last",
    ]
    assert {(s.method, s.channel, s.status) for s in imported} == {("paper", "paper", "verified")}
    amina = imported[0]
    assert (amina.show_name, amina.wants_updates, amina.statement) == (True, True, "I rely on PIP.")
    assert imported[2].statement == "=1+1"  # stored as text, never evaluated
    assert imported[3].statement == "line one\r\nline two"
    assert imported[1].email == ""
    assert imported[1].email_canonical.startswith("offline:")

    # Formula-looking text is shown as text (escaped) where names are shown.
    public = client.get(f"/{collective.slug}/{campaign.slug}").get_data(as_text=True)
    assert "=cmd|&#39; /C calc&#39;!A0" in public
    assert '<span class="count">6</span> verified signatures, including 5 on paper.' in public


def test_importing_the_same_file_twice_creates_no_duplicates(
    client: FlaskClient, session: Session, app: Flask, world: World
) -> None:
    collective, campaign = world
    _online(session, campaign, "olly@example.org")
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    assert _upload(client, base, MIXED).status_code == 303
    signatures_after_first = len(_signatures(session, campaign))
    count_after_first = _count(session, campaign)

    response = _upload(client, base, MIXED, filename="paper-again.csv")
    assert response.status_code == 303
    body = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Imported 0 signatures. 7 duplicates and 5 invalid rows" in body
    assert "This same file was imported before" in body
    assert len(_signatures(session, campaign)) == signatures_after_first
    assert _count(session, campaign) == count_after_first
    first, second = _imports(session, campaign)
    assert first.sha256 == second.sha256
    assert (second.imported_count, second.duplicate_count) == (0, 7)

    history = client.get(f"{base}/imports").get_data(as_text=True)
    assert "paper.csv" in history
    assert "paper-again.csv" in history


def test_an_excel_file_with_a_byte_order_mark_and_semicolons_is_read(
    client: FlaskClient, session: Session, app: Flask, world: World
) -> None:
    collective, campaign = world
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    content = (
        codecs.BOM_UTF8
        + "Name;E-mail;Post code;Notes\r\nZoë Ørsted;;EH1 1YZ;met at stall\r\n".encode()
    )
    response = _upload(client, base, content)
    assert response.status_code == 303
    body = html.unescape(client.get(response.headers["Location"]).get_data(as_text=True))
    assert "Imported 1 signature." in body
    assert "These columns are not ones we import and were left out: “Notes”." in body
    [signature] = _signatures(session, campaign)
    assert (signature.name, signature.postcode) == ("Zoë Ørsted", "EH1 1YZ")


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"name,email\nAmina,\n\xff\xfeBob,\n", "Line 3 of the file is not valid UTF-8 text"),
        (b"PK\x03\x04\x00\x00binary", "This is not a CSV text file"),
        ("name\nAmina\n".encode("utf-16"), "This is not a CSV text file"),
        (b"", "The file is empty"),
        (b"first,last\nAmina,Okafor\n", "one of them must be “name”. We found “first”, “last”."),
        (b"name,email\n", "The file has the column names but no signatures below them."),
        (b"name,name\nA,B\n", "The column “name” appears twice"),
        (b'name\n"Amina\nOkafor\n', "cannot be read as CSV"),
        (b"<html><body>not a csv</body></html>", "one of them must be “name”"),
    ],
    ids=[
        "invalid-utf8",
        "zip",
        "utf16",
        "empty",
        "no-name",
        "header-only",
        "twice",
        "quote",
        "html",
    ],
)
def test_an_unreadable_file_gets_a_clear_answer_and_nothing_is_written(
    client: FlaskClient, session: Session, app: Flask, world: World, content: bytes, says: str
) -> None:
    collective, campaign = world
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    client.get(f"{base}/import")
    before = snapshot(session)
    response = _upload(client, base, content)
    body = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 422
    assert "There is a problem" in body
    assert says in body
    assert snapshot(session) == before


def test_an_import_needs_a_file_and_the_consent_confirmation(
    client: FlaskClient, session: Session, app: Flask, world: World
) -> None:
    collective, campaign = world
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    client.get(f"{base}/import")
    before = snapshot(session)
    response = _upload(client, base, b"name\nAmina\n", consent=False)
    assert response.status_code == 422
    assert "Confirm that every person in the file signed a paper form themselves." in (
        response.get_data(as_text=True)
    )
    token = csrf_token(client.get(f"{base}/import").get_data(as_text=True))
    response = client.post(
        f"{base}/import",
        data={"csrf_token": token, "consent": "y", "file": "name\nAmina\n"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert "Choose the CSV file to import." in response.get_data(as_text=True)
    assert snapshot(session) == before


def test_an_oversize_upload_is_refused_with_a_clear_413(
    client: FlaskClient, session: Session, app: Flask, world: World
) -> None:
    collective, campaign = world
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    client.get(f"{base}/import")
    before = snapshot(session)
    big = b"name\n" + b"A Person\n" * (3 * 1024 * 1024 // 9)
    response = _upload(client, base, big)
    assert response.status_code == 413
    assert "a CSV file must be smaller than 2 MB" in response.get_data(as_text=True)
    assert snapshot(session) == before


def test_a_file_with_too_many_rows_is_refused(
    client: FlaskClient, session: Session, app: Flask, world: World
) -> None:
    collective, campaign = world
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    rows = "".join(f"Person {i}\n" for i in range(offline.MAX_ROWS + 1))
    response = _upload(client, base, ("name\n" + rows).encode())
    assert response.status_code == 422
    assert "The file has more than 5,000 rows." in response.get_data(as_text=True)
    assert _signatures(session, campaign) == []


def test_a_large_import_inserts_in_few_statements_and_counts_exactly(
    client: FlaskClient, session: Session, app: Flask, world: World
) -> None:
    collective, campaign = world
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    rows = "".join(f"Person {i},person{i}@example.org\n" for i in range(1200))
    response = _upload(client, base, ("name,email\n" + rows).encode())
    assert response.status_code == 303
    assert _count(session, campaign) == 1200
    [record] = _imports(session, campaign)
    assert record.imported_count == 1200


def test_the_template_lists_the_columns(
    client: FlaskClient, session: Session, app: Flask, world: World
) -> None:
    collective, campaign = world
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    page = client.get(f"{base}/import").get_data(as_text=True)
    assert f'href="{base}/import/template.csv" download' in page
    assert '<th scope="row"><code>wants_updates</code></th>' in page
    response = client.get(f"{base}/import/template.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    lines = response.get_data(as_text=True).splitlines()
    assert lines[0] == "name,email,postcode,statement,show_name,wants_updates"
    # The template itself imports cleanly.
    imported = _upload(client, base, response.get_data())
    assert imported.status_code == 303
    assert _count(session, campaign) == 1


# --- who may, and where it shows ------------------------------------------------------------


def test_viewers_get_403_but_can_read_the_import_history(
    client: FlaskClient, other_client: FlaskClient, session: Session, app: Flask, world: World
) -> None:
    collective, campaign = world
    owner = _owner(session, collective)
    login(client, owner)
    base = _base(collective, campaign)
    assert _upload(client, base, b"name\nAmina Okafor\n").status_code == 303
    [record] = _imports(session, campaign)
    record_id = record.id

    viewer = make_user(session, app, email="viewer@example.org")
    add_member(session, collective, viewer, Role.VIEWER)
    login(other_client, viewer)
    refusal = "Only owners or organisers of this collective can do that."
    for page in (f"{base}/record", f"{base}/import"):
        response = other_client.get(page)
        assert response.status_code == 403
        assert refusal in response.get_data(as_text=True)
    token = csrf_token(other_client.get(f"{base}/imports").get_data(as_text=True))
    before = snapshot(session)
    response = other_client.post(f"{base}/record", data={"csrf_token": token, **RECORD})
    assert response.status_code == 403
    assert refusal in response.get_data(as_text=True)
    response = other_client.post(
        f"{base}/import",
        data={"csrf_token": token, "consent": "y", "file": (io.BytesIO(b"name\nX\n"), "x.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 403
    assert snapshot(session) == before
    assert other_client.get(f"{base}/imports").status_code == 200
    assert other_client.get(f"{base}/imports/{record_id}").status_code == 200


def test_an_organiser_may_record_and_import(
    client: FlaskClient, session: Session, app: Flask, world: World
) -> None:
    collective, campaign = world
    organiser = make_user(session, app, email="organiser@example.org")
    add_member(session, collective, organiser, Role.ORGANISER)
    login(client, organiser)
    base = _base(collective, campaign)
    assert _record(client, base, channel="in_person").status_code == 303
    assert _upload(client, base, b"name\nPaula Paper\n").status_code == 303
    assert _count(session, campaign) == 2


def test_an_import_of_another_campaign_is_not_found(
    client: FlaskClient, session: Session, app: Flask, world: World
) -> None:
    collective, campaign = world
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    assert _upload(client, base, b"name\nAmina Okafor\n").status_code == 303
    [record] = _imports(session, campaign)
    set_current_collective(session, collective.id)
    member = session.scalar(select(Membership).where(Membership.role == Role.OWNER))
    assert member is not None
    other = campaigns.create_campaign(
        session, member, kind="open_letter", title="Other", slug="other"
    )
    session.flush()
    assert client.get(f"{_base(collective, other)}/imports/{record.id}").status_code == 404
    assert client.get(f"{base}/imports/{record.id + 1000}").status_code == 404
    assert client.get(f"{base}/imports/0").status_code == 404


def test_the_method_shows_wherever_signatures_are_counted(
    client: FlaskClient, session: Session, app: Flask, world: World
) -> None:
    collective, campaign = world
    _online(session, campaign, "online@example.org")
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    assert _record(client, base, name="Phoebe", channel="phone").status_code == 303
    assert _record(client, base, name="Ivan", channel="in_person").status_code == 303
    assert _record(client, base, name="Ian", channel="in_person").status_code == 303
    assert _record(client, base, name="Pia", channel="paper").status_code == 303
    assert _upload(client, base, b"name\nPaul\nPenny\n").status_code == 303

    counts = client.get(f"{base}/").get_data(as_text=True)

    def row(label: str) -> int:
        match = re.search(
            rf'<th scope="row">{re.escape(label)}</th><td class="numeric"[^>]*>([\d,]+)</td>',
            counts,
        )
        assert match, label
        return int(match.group(1))

    assert row("Online") == 1
    assert row("Assisted (by phone or in person)") == 3
    assert row("Paper") == 3
    assert "Of the assisted signatures: 1 by phone and 2 in person." in counts

    public = client.get(f"/{collective.slug}/{campaign.slug}").get_data(as_text=True)
    assert (
        '<span class="count">7</span> verified signatures, including 3 on paper, 1 by phone '
        "and 2 in person." in public
    )


def test_the_public_page_says_nothing_extra_when_everyone_signed_online(
    client: FlaskClient, session: Session, app: Flask, world: World
) -> None:
    collective, campaign = world
    _online(session, campaign, "online@example.org")
    _online(session, campaign, "pending@example.org", status="pending")
    public = client.get(f"/{collective.slug}/{campaign.slug}").get_data(as_text=True)
    assert '<span class="count">1</span> verified signature.' in public
    assert "including" not in public


def test_a_body_that_is_not_utf8_is_refused_or_stored_as_decoded(
    client: FlaskClient, session: Session, app: Flask, world: World
) -> None:
    collective, campaign = world
    login(client, _owner(session, collective))
    base = _base(collective, campaign)
    token = csrf_token(client.get(f"{base}/record").get_data(as_text=True))
    before = snapshot(session)
    body = f"csrf_token={token}&channel=phone&helper_name=H&consent=y&name=".encode() + b"\xff\xfe"
    response = client.post(
        f"{base}/record", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400
    assert "not valid text" in response.get_data(as_text=True)
    assert snapshot(session) == before

    boundary = "chorusboundary"
    multipart = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="consent"\r\n\r\ny\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="helper_name"\r\n\r\n'
    ).encode() + (
        b"\xff\xfe\r\n"
        + f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="p.csv"\r\nContent-Type: text/csv\r\n\r\nname\r\nAmina\r\n'
        f"--{boundary}--\r\n".encode()
    )
    response = client.post(
        f"{base}/import",
        data=multipart,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    # In a multipart body, Werkzeug decodes a text field with replacement characters:
    # the import goes ahead and shows what it stored.
    assert response.status_code == 303
    [record] = _imports(session, campaign)
    assert record.helper_name == "\ufffd\ufffd"
    assert record.imported_count == 1
    report = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "<dd>\ufffd\ufffd</dd>" in report


# --- in a real browser ---------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.live
def test_an_organiser_records_and_imports_in_a_browser_with_axe_on_every_page(
    live_app_factory: Callable[..., Flask],
    live_db: str,
    browser: LazyBrowser,
    tmp_path: Path,
) -> None:
    with serve_live_app(live_app_factory) as live:
        with database(live.app).session_scope() as s:
            collective, campaign = _published(s, live.app, slug="offline-journey")
            owner_email = _owner(s, collective).email
            base = _base(collective, campaign)
            public = f"/{collective.slug}/{campaign.slug}"
        csv_file = tmp_path / "stall.csv"
        csv_file.write_bytes(b"name,postcode\nPaula Paper,M1 1AE\nNo Postcode,NOWHERE\n")

        a11y = A11y()
        context = browser.get().new_context(
            base_url=live.url, viewport={"width": 390, "height": 844}
        )
        context.set_default_timeout(10_000)
        try:
            page = a11y.watch(context.new_page())
            page.goto(f"/login?next={base}/record")
            a11y.check(page)
            page.get_by_label("Email address", exact=True).fill(owner_email)
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Record a signature")
            a11y.check(page)

            # Without consent: the error summary links to the checkbox.
            page.get_by_label("By phone").check()
            page.get_by_label("Signer’s name").fill("Pat Phoned")
            page.get_by_role("button", name="Record the signature").click()
            alert = page.get_by_role("alert")
            expect(alert).to_contain_text("Confirm that the person agreed to sign this letter.")
            a11y.check(page)
            alert.get_by_role("link").first.click()
            page.get_by_label(re.compile("^They agreed to sign this letter")).check()
            page.get_by_role("button", name="Record the signature").click()
            expect(page.get_by_role("status")).to_contain_text(
                "Recorded the signature of Pat Phoned, taken by phone."
            )
            a11y.check(page)

            tabs = page.get_by_role("navigation", name="Signatures")
            tabs.get_by_role("link", name="Import paper signatures").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Import paper signatures")
            a11y.check(page)
            page.get_by_label("CSV file").set_input_files(str(csv_file))
            page.get_by_label("Every person in this file signed a paper form themselves").check()
            page.get_by_role("button", name="Import the signatures").click()
            expect(page.locator("#imported-count")).to_have_text("1")
            expect(page.locator("#report")).to_contain_text("Enter a UK postcode")
            a11y.check(page)

            tabs.get_by_role("link", name="Paper imports").click()
            expect(page.get_by_role("link", name=re.compile("^stall.csv"))).to_be_visible()
            a11y.check(page)

            tabs.get_by_role("link", name="Numbers").click()
            expect(page.locator("#assisted-channels")).to_have_text(
                "Of the assisted signatures: 1 by phone and 0 in person."
            )
            a11y.check(page)

            page.goto(public)
            expect(page.locator(".count-box").first).to_contain_text(
                "2 verified signatures, including 1 on paper and 1 by phone."
            )
            a11y.check(page)
            a11y.assert_every_page_checked()
        finally:
            context.close()
