"""The letter's content from the database (web/pdf/context.py): exactly the counted
signatories with their towns, the public statements grouped into distinct voices, the
method facts of annex C, the reference and text of a draft or a published version, the
cache key, tenancy, and the two new letter fields (lead signatories, signing
organisations) with hostile input."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from tests.conftest import form_post
from tests.factories import login
from tests.test_signature_admin import _owner
from tests.test_signatures import _published
from web.campaigns import services as campaigns
from web.campaigns.models import Campaign, LetterRevision
from web.collectives.models import Collective, Membership
from web.http import database
from web.pdf import places
from web.pdf.context import (
    LetterInputs,
    LetterNotReady,
    build_letter,
    inputs_hash,
    signatories,
)
from web.pdf.contract import Signatory, Slot, Voice
from web.recipients.models import Recipient
from web.signatures import services as signing
from web.signatures import statements
from web.signatures.models import Signature
from web.tenancy import set_current_collective, system_scope

_seq = itertools.count(1)
DAY1 = datetime(2026, 3, 3, 9, 30, tzinfo=UTC)
TODAY = date(2026, 11, 25)
VERIFY = "https://localhost/verify"
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


# --- helpers ---------------------------------------------------------------------------


def _add(session: Session, campaign: Campaign, **fields: Any) -> Signature:
    """A signature as the signing flow (or an organiser's paper import) stores it."""
    set_current_collective(session, campaign.collective_id)
    version = campaigns.current_version(session, campaign)
    assert version is not None
    n = next(_seq)
    status = fields.pop("status", "verified")
    email = fields.pop("email", f"ctx{n}@example.org")
    values: dict[str, Any] = {
        "campaign_id": campaign.id,
        "letter_version_id": version.id,
        "name": f"Signer {n}",
        "email": email,
        "email_canonical": signing.canonical_email(email) if email else f"offline:{n}",
        "postcode": "",
        "status": status,
        "secret_hash": b"\x01" * 32,
        "verified_at": DAY1 + timedelta(days=n % 3) if status == "verified" else None,
        **fields,
    }
    signature = Signature(**values)
    session.add(signature)
    session.flush()
    return signature


def _words(session: Session, campaign: Campaign, words: str, **fields: Any) -> Signature:
    return _add(
        session,
        campaign,
        statement=words,
        show_statement=True,
        statement_status=fields.pop("statement_status", "approved"),
        **fields,
    )


def _member(session: Session, collective: Collective) -> Membership:
    set_current_collective(session, collective.id)
    member = session.scalar(select(Membership))
    assert member is not None
    return member


def _build(session: Session, campaign: Campaign, *, draft: bool = False) -> LetterInputs:
    set_current_collective(session, campaign.collective_id)
    return build_letter(session, campaign, draft=draft, verify_url=VERIFY, today=TODAY)


@pytest.fixture
def world(session: Session, app: Flask) -> tuple[Collective, Campaign]:
    return _published(session, app)


# --- places ----------------------------------------------------------------------------


def test_every_postcode_area_has_a_town_and_a_region() -> None:
    assert set(places.AREA_TOWNS) == set(signing.AREA_REGIONS) | {"GY", "JE", "IM"}
    assert len(places.AREA_TOWNS) == 124  # 121 UK areas and 3 Crown Dependencies
    assert places.place_for_postcode("CF10 1EP") == "Cardiff"
    assert places.place_for_postcode("ll30 2ab") == "Llandudno"
    assert places.place_for_postcode("SW1A 1AA") == "London"
    assert places.place_for_postcode("BT1 5GS") == "Belfast"
    assert places.place_for_postcode("B1 1AA") == "Birmingham"
    assert places.place_for_postcode("  ze1 0aa ") == "Shetland"
    for unknown in ("", "   ", "BF1 4FB", "GIR 0AA", "12345", XSS):
        assert places.place_for_postcode(unknown) == ""


# --- annex A: the counted signatories -----------------------------------------------------


def test_the_letter_lists_exactly_the_counted_signatures_with_their_towns(
    session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    _, campaign = world
    _add(session, campaign, name="zoë Adams", postcode="CF10 1EP")
    _add(session, campaign, name="Émile Zola", postcode="LL30 2AB")
    _add(session, campaign, name="Emily Brontë", postcode="")
    _add(session, campaign, name="Aled Jones", postcode="GY1 1AA")
    _add(session, campaign, name="Bob Forces", postcode="BF1 4FB")
    _add(
        session,
        campaign,
        name="Paper Person",
        email="",
        method="paper",
        channel="paper",
        postcode="BT1 5GS",
        consent_confirmed_at=DAY1,
    )
    _add(
        session,
        campaign,
        name="Phone Person",
        email="",
        method="assisted",
        channel="phone",
        postcode="sw1a 1aa",
        consent_confirmed_at=DAY1,
    )
    # Not counted: every other status, and a verified signer of an older version who has
    # not confirmed the new one.
    _add(session, campaign, name="Pending Pat", status="pending", postcode="CF10 1EP")
    _add(session, campaign, name="Withdrawn Wyn", status="withdrawn")
    _add(session, campaign, name="Bot Bot", status="quarantined", quarantine_reason="too-fast")
    _add(session, campaign, name="Rejected Rhys", status="rejected")
    _add(session, campaign, name="Old Version Olwen", needs_reconsent=True)
    # Another collective's campaign with the same slug and a verified signature.
    _, other = _published(session, app)
    assert other.slug == campaign.slug
    _add(session, other, name="Aaron Elsewhere", postcode="AB10 1AA")

    inputs = _build(session, campaign)

    assert inputs.signatories == [
        Signatory("Aled Jones", "Guernsey"),
        Signatory("Bob Forces", ""),
        Signatory("Émile Zola", "Llandudno"),  # accents fold: "emile" before "emily"
        Signatory("Emily Brontë", ""),
        Signatory("Paper Person", "Belfast"),
        Signatory("Phone Person", "London"),
        Signatory("zoë Adams", "Cardiff"),
    ]
    assert inputs.doc.method.verified_total == 7
    other_inputs = _build(session, other)
    assert other_inputs.signatories == [Signatory("Aaron Elsewhere", "Aberdeen")]


def test_equal_names_keep_a_stable_order_by_signature(
    session: Session, world: tuple[Collective, Campaign]
) -> None:
    _, campaign = world
    first = _add(session, campaign, name="Sam Lee", postcode="CF10 1EP")
    second = _add(session, campaign, name="sam lee", postcode="LL30 2AB")
    third = _add(session, campaign, name="Sam Lee", postcode="BT1 5GS")
    assert first.id < second.id < third.id
    assert _build(session, campaign).signatories == [
        Signatory("Sam Lee", "Cardiff"),
        Signatory("sam lee", "Llandudno"),  # case does not count: then by signature
        Signatory("Sam Lee", "Belfast"),
    ]


# --- annex B: voices ------------------------------------------------------------------


def test_public_statements_become_distinct_voices_with_their_counts(
    session: Session, world: tuple[Collective, Campaign]
) -> None:
    _, campaign = world
    template = "The assessment process caused me real harm and must change now."
    _words(session, campaign, template, name="Ann Named", show_name=True)
    _words(session, campaign, template.upper(), name="Hidden Name")
    _words(session, campaign, "The assessment process caused me real harm and must change!")
    _words(session, campaign, "My daughter waited eleven months for a tribunal.", name="Dai")
    _words(
        session,
        campaign,
        "I lost my car and my job.",
        name="Named Nia",
        show_name=True,
    )
    # Not in annex B: no consent to show, waiting or hidden words, uncounted signatures.
    _add(session, campaign, statement="Private words", show_statement=False)
    _words(session, campaign, "Waiting words", statement_status="pending")
    _words(session, campaign, "Hidden words", statement_status="hidden")
    _words(session, campaign, "Unconfirmed words", status="pending", statement_status="pending")
    _words(session, campaign, "Withdrawn words", status="withdrawn")
    _words(session, campaign, "Old version words", needs_reconsent=True)
    set_current_collective(session, campaign.collective_id)
    statements.group_statements(session, campaign)

    inputs = _build(session, campaign)

    assert inputs.voices == [
        Voice(template, 3, "Ann Named"),
        Voice("My daughter waited eleven months for a tribunal.", 1, ""),
        Voice("I lost my car and my job.", 1, "Named Nia"),
    ]
    facts = inputs.doc.method
    assert facts.statements_total == 5
    assert facts.distinct_statements == 3 == statements.distinct_voices(session, campaign)


def test_statements_not_yet_grouped_count_as_their_own_voice(
    session: Session, world: tuple[Collective, Campaign]
) -> None:
    _, campaign = world
    _words(session, campaign, "Same words here, said twice by two people today.")
    _words(session, campaign, "Same words here, said twice by two people today.")
    inputs = _build(session, campaign)
    assert [(v.text, v.count) for v in inputs.voices] == [
        ("Same words here, said twice by two people today.", 1)
    ] * 2


# --- annex C: method facts ----------------------------------------------------------------


def test_method_facts_count_by_method_status_and_region_with_reasons(
    session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    _, campaign = world
    for _ in range(3):
        _add(session, campaign, postcode="CF10 1EP")  # Wales
    _add(session, campaign, postcode="EH1 1YZ")  # Scotland
    _add(session, campaign, postcode="GY1 1AA")  # Guernsey: elsewhere
    _add(session, campaign, email="", method="paper", channel="paper", postcode="")
    _add(session, campaign, email="", method="paper", channel="paper", postcode="LL30 2AB")
    _add(session, campaign, email="", method="assisted", channel="in_person", postcode="")
    _add(session, campaign, status="pending")
    _add(session, campaign, status="pending")
    _add(session, campaign, status="quarantined", quarantine_reason="honeypot")
    _add(session, campaign, status="withdrawn")
    _add(session, campaign, needs_reconsent=True)
    _add(session, campaign, name="First", verified_at=DAY1 - timedelta(days=30))
    _add(session, campaign, name="Last", verified_at=DAY1 + timedelta(days=40))

    inputs = _build(session, campaign)
    facts = inputs.doc.method
    version = campaigns.current_version(session, campaign)
    assert version is not None

    assert facts.verified_total == 10 == len(inputs.signatories)
    assert facts.by_method == (
        ("Online", 7),
        ("Assisted (by phone or in person)", 1),
        ("Paper", 2),
    )
    rows = {label: (n, why) for label, n, why in facts.by_status}
    assert list(rows) == [
        "Verified and counted",
        "Waiting to re-confirm",
        "Waiting for email confirmation",
        "Held for review",
        "Withdrawn",
    ]
    assert rows["Verified and counted"][0] == 10
    assert rows["Waiting to re-confirm"][0] == 1
    assert rows["Waiting for email confirmation"] == (
        2,
        "The signer has not yet confirmed from the link emailed to them: not counted.",
    )
    assert rows["Held for review"][0] == 1
    assert rows["Withdrawn"][0] == 1
    assert all(why for _, why in rows.values())
    assert facts.regions == (
        ("Wales", 4),
        ("Scotland", 1),
        ("Elsewhere", 1),
        ("Not given", 4),
    )
    assert facts.first_signed == "1 February 2026"
    assert facts.last_signed == "12 April 2026"
    assert facts.letter_sha256 == version.sha256 == inputs.doc.letter_sha256
    assert facts.verify_url == VERIFY == inputs.doc.verify_url


def test_a_letter_without_signatures_has_empty_annexes_and_zero_counts(
    session: Session, world: tuple[Collective, Campaign]
) -> None:
    _, campaign = world
    inputs = _build(session, campaign)
    assert inputs.signatories == []
    assert inputs.voices == []
    facts = inputs.doc.method
    assert facts.verified_total == 0
    assert facts.by_status == (("Verified and counted", 0, facts.by_status[0][2]),)
    assert facts.regions == ()
    assert (facts.first_signed, facts.last_signed) == ("", "")


# --- the letter: final and draft ----------------------------------------------------------


def test_the_final_letter_is_the_published_version_and_the_draft_is_the_current_text(
    session: Session, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    member = _member(session, collective)
    v1 = campaigns.current_version(session, campaign)
    assert v1 is not None
    _add(session, campaign, name="Early Signer", postcode="CF10 1EP")
    campaigns.save_letter(
        session,
        member,
        campaign,
        subject="A new subject",
        summary="Summary.",
        body_markdown="Body, edited.",
        asks=["Ask"],
        evidence_links=[],
    )

    final = _build(session, campaign)
    assert final.doc.reference == f"CH-{collective.slug}-fair-pip-v1"
    assert final.doc.subject == "Subject"
    assert final.doc.body_html == "<p>Body.</p>\n"
    assert (final.doc.draft, final.doc.letter_version) == (False, 1)
    assert final.doc.letter_sha256 == v1.sha256
    assert final.letter_version_id == v1.id

    draft = _build(session, campaign, draft=True)
    assert draft.doc.reference == f"CH-{collective.slug}-fair-pip-draft"
    assert draft.doc.subject == "A new subject"
    assert draft.doc.body_html == "<p>Body, edited.</p>\n"
    assert draft.doc.draft is True
    assert draft.doc.letter_version == 2  # what publishing it would make
    assert draft.doc.letter_sha256 == "" == draft.doc.method.letter_sha256
    assert draft.letter_version_id is None
    assert draft.signatories == final.signatories == [Signatory("Early Signer", "Cardiff")]

    campaigns.publish(session, member, collective, campaign)
    final = _build(session, campaign)
    assert final.doc.reference == f"CH-{collective.slug}-fair-pip-v2"
    assert final.doc.subject == "A new subject"
    # Signers of version 1 must re-confirm before they count for version 2.
    assert final.signatories == []
    assert {r[0]: r[1] for r in final.doc.method.by_status}["Waiting to re-confirm"] == 1


def test_an_unpublished_campaign_has_a_draft_but_no_final_letter(
    session: Session, world: tuple[Collective, Campaign]
) -> None:
    collective, _ = world
    member = _member(session, collective)
    draft_campaign = campaigns.create_campaign(
        session, member, kind="open_letter", title="Not yet", slug="not-yet"
    )
    with pytest.raises(LetterNotReady, match="no published letter yet"):
        _build(session, draft_campaign)
    draft = _build(session, draft_campaign, draft=True)
    assert draft.doc.reference == f"CH-{collective.slug}-not-yet-draft"
    assert draft.doc.title == "Not yet"
    assert draft.doc.letter_version == 1
    assert draft.doc.recipient.organisation == ""
    assert draft.doc.salutation == "Dear Sir or Madam"
    assert (draft.signatories, draft.voices) == ([], [])


def test_the_letter_is_addressed_styled_and_sanitised(
    session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, _ = world
    member = _member(session, collective)
    with system_scope(session):
        dept = Recipient(
            key=f"dhsc-{next(_seq)}",
            kind="ministerial_department",
            name="Department of Health and Social Care",
            postal_address="39 Victoria Street\nLondon\n\nSW1H 0EU",
            correspondence_email="correspondence@example.gov.uk",
        )
        session.add(dept)
        session.flush()
    set_current_collective(session, collective.id)
    campaign = campaigns.create_campaign(
        session, member, kind="meeting_request", title="Meet us", slug="meet-us"
    )
    campaigns.update_settings(
        session,
        member,
        campaign,
        title="Meet us",
        slug="meet-us",
        recipient_id=dept.id,
        addressee_name="Dr Jo Bloggs",
        addressee_role="Director of Care",
        audience_style="policy_team",
        signature_target=None,
        closes_on=None,
    )
    campaigns.save_letter(
        session,
        member,
        campaign,
        subject="Care charges",
        summary="We would like to meet.",
        body_markdown=f"Hello **there**.\n\n{XSS}\n\n[link](javascript:alert(1))",
        asks=["Meet us", "Publish the review"],
        evidence_links=[{"title": "Report", "url": "https://example.org/report"}],
        meeting_purpose="To discuss charges.",
        meeting_attendees="Amina Khan, Chair\nDai Evans, carer",
        meeting_slots=[
            {"when": "Tuesday 3 March 2026, 10:00-11:00", "place": "Online"},
            {"when": "Wednesday 4 March 2026, 14:00", "place": "Cardiff"},
            {"when": "Any morning in the week of 9 March", "place": "London"},
        ],
        lead_signatories="Amina Khan, Chair, Riverside Tenants\n\n  Dai Evans, Carer  ",
        signing_organisations="Riverside Tenants' Association\nCarers Cymru",
    )
    campaigns.publish(session, member, collective, campaign)

    doc = _build(session, campaign).doc

    assert doc.kind == "meeting_request"
    assert doc.title == "Meet us"
    assert doc.date == "25 November 2026"
    assert doc.sender.name == collective.name
    assert doc.sender.address_lines == tuple(collective.contact_address.splitlines())
    assert doc.recipient.name == "Dr Jo Bloggs"
    assert doc.recipient.role == "Director of Care"
    assert doc.recipient.organisation == "Department of Health and Social Care"
    assert doc.recipient.address_lines == ("39 Victoria Street", "London", "SW1H 0EU")
    assert doc.recipient.email == "correspondence@example.gov.uk"
    assert doc.salutation == "Dear Dr Jo Bloggs"
    assert doc.sign_off == "Yours faithfully"  # the policy team style
    assert "proposed times" in doc.closing
    assert "<strong>there</strong>" in doc.body_html
    assert "<script" not in doc.body_html
    assert "<img" not in doc.body_html
    assert 'href="javascript' not in doc.body_html  # left as inert text
    assert str(escape("<script>")) in doc.body_html
    assert doc.asks == ("Meet us", "Publish the review")
    assert doc.evidence == (("Report", "https://example.org/report"),)
    assert doc.meeting_purpose == "To discuss charges."
    assert doc.meeting_attendees == ("Amina Khan, Chair", "Dai Evans, carer")
    assert doc.meeting_slots == (
        Slot("Tuesday 3 March 2026, 10:00-11:00", "Online"),
        Slot("Wednesday 4 March 2026, 14:00", "Cardiff"),
        Slot("Any morning in the week of 9 March", "London"),
    )
    assert doc.lead_signatories == ("Amina Khan, Chair, Riverside Tenants", "Dai Evans, Carer")
    assert doc.organisations == ("Riverside Tenants' Association", "Carers Cymru")
    assert doc.author == collective.name
    assert doc.keywords == (
        "Meeting request",
        "Department of Health and Social Care",
        collective.name,
        "Chorus",
    )
    assert doc.lang == "en-GB"


def test_build_letter_refuses_a_campaign_of_another_collective(
    session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    _, campaign = world
    other_collective, _ = _published(session, app, slug="other")
    set_current_collective(session, other_collective.id)
    with pytest.raises(PermissionError):
        build_letter(session, campaign, draft=False, verify_url=VERIFY)


# --- the cache key --------------------------------------------------------------------


def test_inputs_hash_is_stable_and_changes_with_anything_visible(
    session: Session, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    signer = _add(session, campaign, name="Hash Person", postcode="CF10 1EP")
    words = _words(session, campaign, "Words that matter to me.")
    first = inputs_hash(_build(session, campaign))
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert inputs_hash(_build(session, campaign)) == first

    seen = {first}

    def changed() -> str:
        value = inputs_hash(_build(session, campaign))
        assert value not in seen
        seen.add(value)
        return value

    signer.name = "Hash Persón"
    session.flush()
    changed()
    signer.postcode = "LL30 2AB"
    session.flush()
    changed()
    words.statement = "Words that matter to me!"
    session.flush()
    changed()
    _add(session, campaign, status="pending")  # annex C's counts by status
    changed()
    campaign.lead_signatories = "Someone New, Chair"  # the draft only
    session.flush()
    assert inputs_hash(_build(session, campaign)) in seen
    draft = inputs_hash(_build(session, campaign, draft=True))
    assert draft not in seen
    seen.add(draft)
    set_current_collective(session, collective.id)
    other_day = build_letter(
        session, campaign, draft=False, verify_url=VERIFY, today=TODAY + timedelta(days=1)
    )
    assert inputs_hash(other_day) not in seen


# --- the new letter fields --------------------------------------------------------------


def test_letters_without_the_new_fields_keep_their_content_and_hash(
    session: Session, world: tuple[Collective, Campaign]
) -> None:
    _, campaign = world
    version = campaigns.current_version(session, campaign)
    assert version is not None
    content = campaign.letter_content()
    assert "lead_signatories" not in content
    assert "signing_organisations" not in content
    assert content == version.content
    assert not campaigns.has_unpublished_changes(session, campaign)
    campaign.signing_organisations = "Carers Cymru"
    assert campaign.letter_content()["signing_organisations"] == "Carers Cymru"
    assert campaigns.has_unpublished_changes(session, campaign)


def _letter_url(collective: Collective, campaign: Campaign) -> str:
    return f"/app/{collective.slug}/campaigns/{campaign.id}/letter"


def _letter_form(**fields: str) -> dict[str, str]:
    return {
        "subject": "Subject",
        "summary": "Summary.",
        "body_markdown": "Body.",
        "asks-0": "Ask",
        **fields,
    }


def test_organisers_add_lead_signatories_and_organisations_shown_escaped(
    client: FlaskClient, session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    login(client, _owner(session, collective))
    url = _letter_url(collective, campaign)
    assert "Lead signatories (optional)" in client.get(url).get_data(as_text=True)
    response = form_post(
        client,
        url,
        _letter_form(
            lead_signatories=f"  Amina Khan, Chair  \r\n\r\n{XSS}, Role\r\nمحمد علي, عضو",
            signing_organisations="Carers Cymru\nCymdeithas yr Iaith",
        ),
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    set_current_collective(session, collective.id)
    session.refresh(campaign)
    assert campaign.lead_signatories == f"Amina Khan, Chair\n{XSS}, Role\nمحمد علي, عضو"
    assert campaign.signing_organisations == "Carers Cymru\nCymdeithas yr Iaith"
    revision = session.scalar(
        select(LetterRevision)
        .where(LetterRevision.campaign_id == campaign.id)
        .order_by(LetterRevision.number.desc())
        .limit(1)
    )
    assert revision is not None
    assert revision.content["lead_signatories"] == campaign.lead_signatories

    overview = client.get(f"/app/{collective.slug}/campaigns/{campaign.id}/").get_data(as_text=True)
    assert "<li>Amina Khan, Chair</li>" in overview
    assert f"<li>{escape(XSS)}, Role</li>" in overview
    assert "<li>Cymdeithas yr Iaith</li>" in overview
    assert XSS not in overview
    form_page = client.get(url).get_data(as_text=True)
    assert XSS not in form_page
    assert str(escape(XSS)) in form_page

    # Published, the public letter carries them too, escaped.
    member = _member(session, collective)
    campaigns.publish(session, member, collective, campaign)
    public = client.get(f"/{collective.slug}/{campaign.slug}").get_data(as_text=True)
    assert "<li>Amina Khan, Chair</li>" in public
    assert f"<li>{escape(XSS)}, Role</li>" in public
    assert XSS not in public
    assert _build(session, campaign).doc.lead_signatories == (
        "Amina Khan, Chair",
        f"{XSS}, Role",
        "محمد علي, عضو",
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lead_signatories", "\n".join(f"Person {i}, Role" for i in range(51)), "at most 50"),
        ("signing_organisations", "Fine\n" + "x" * 201, "Line 2 of the signing organisations"),
        ("lead_signatories", "x" * (1024 * 1024), "20000 characters or fewer"),
        ("lead_signatories", "Amina \u202eKhan\u202c, Chair", "text-direction"),
        ("signing_organisations", "Bell\x07 Ringers", "control characters"),
    ],
)
def test_hostile_signing_lines_get_a_clear_error_and_change_nothing(
    client: FlaskClient,
    session: Session,
    app: Flask,
    world: tuple[Collective, Campaign],
    field: str,
    value: str,
    message: str,
) -> None:
    collective, campaign = world
    login(client, _owner(session, collective))
    before = campaign.revision_count
    response = form_post(client, _letter_url(collective, campaign), _letter_form(**{field: value}))
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "There is a problem" in body
    assert f'href="#{field}"' in body
    assert message in body
    set_current_collective(session, collective.id)
    session.refresh(campaign)
    assert campaign.revision_count == before
    assert (campaign.lead_signatories, campaign.signing_organisations) == ("", "")


def test_a_null_byte_in_the_signing_lines_is_refused_before_the_form(
    client: FlaskClient, session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    login(client, _owner(session, collective))
    response = form_post(
        client, _letter_url(collective, campaign), _letter_form(lead_signatories="A\x00B")
    )
    assert response.status_code == 400
    assert "null character" in response.get_data(as_text=True)
    set_current_collective(session, collective.id)
    session.refresh(campaign)
    assert campaign.lead_signatories == ""


def test_the_service_enforces_the_same_limits(
    session: Session, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    member = _member(session, collective)
    common: dict[str, Any] = {
        "subject": "S",
        "summary": "S.",
        "body_markdown": "B.",
        "asks": ["A"],
        "evidence_links": [],
    }
    with pytest.raises(campaigns.CampaignError, match="at most 50"):
        campaigns.save_letter(session, member, campaign, lead_signatories="a\n" * 51, **common)
    with pytest.raises(campaigns.CampaignError, match="200 characters"):
        campaigns.save_letter(session, member, campaign, signing_organisations="y" * 201, **common)
    # Callers that do not know the fields leave them alone.
    campaign.lead_signatories = "Kept, Chair"
    campaigns.save_letter(session, member, campaign, **common)
    assert campaign.lead_signatories == "Kept, Chair"


# --- scale ------------------------------------------------------------------------------


def test_100000_signatories_come_from_one_streamed_query(
    session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    _, campaign = world
    set_current_collective(session, campaign.collective_id)
    version = campaigns.current_version(session, campaign)
    assert version is not None
    total = 100_000
    session.execute(
        text(
            "INSERT INTO signatures (collective_id, campaign_id, letter_version_id, name,"
            " email, email_canonical, postcode, status, method, secret_hash, verified_at)"
            " SELECT :collective, :campaign, :version, 'Signer ' || md5(n::text),"
            " 'big' || n || '@example.org', 'big' || n || '@example.org',"
            " (ARRAY['CF10 1EP', 'LL30 2AB', 'SW1A 1AA', '', 'EH1 1YZ'])[n % 5 + 1],"
            " CASE WHEN n % 50 = 0 THEN 'pending' ELSE 'verified' END, 'online',"
            " decode(repeat('00', 32), 'hex'), :start + n * interval '1 second'"
            " FROM generate_series(1, :total) AS n"
        ),
        {
            "collective": campaign.collective_id,
            "campaign": campaign.id,
            "version": version.id,
            "start": DAY1,
            "total": total,
        },
    )
    session.execute(text("ANALYZE signatures"))
    queries: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        queries.append(statement)

    engine = database(app).engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        rows = signatories(session, campaign)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert signatories(session, campaign) == rows  # stable order

    expected = total - total // 50
    assert len(rows) == expected
    assert len(queries) == 1, queries  # one query, streamed from a server-side cursor
    assert "FROM signatures" in queries[0]
    keys = [(r.name.casefold(), r.name) for r in rows]
    assert keys == sorted(keys)
    assert {r.place for r in rows} == {"Cardiff", "Llandudno", "London", "", "Edinburgh"}
    # Speed is the bench's business (bench/pdf.py); here, 1.0-1.6 s for these rows.
    inputs = _build(session, campaign)
    assert inputs.doc.method.verified_total == expected
    assert len(inputs_hash(inputs)) == 64
