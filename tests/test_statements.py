"""Statements in the signers' own words: shown publicly only with consent, after approval
(or auto-approval on confirmation) and while the signature counts; organisers approve,
hide with a reason and restore; near-identical words are grouped (MinHash with LSH
banding, in a worker) so the letter can say how many distinct voices it carries."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from playwright.sync_api import expect
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from tests.browser import A11y, LazyBrowser, serve_live_app
from tests.conftest import Mailbox, csrf_token, form_post
from tests.factories import PASSWORD, add_member, login, make_user
from tests.test_cross_collective import snapshot
from tests.test_signature_admin import _owner
from tests.test_signatures import _page, _published, _sign
from web.campaigns import services as campaigns
from web.campaigns.models import Campaign
from web.collectives.models import Collective, Role
from web.db import utcnow
from web.http import database
from web.outbox import OutboxMessage
from web.signatures import services as signing
from web.signatures import statements
from web.signatures.models import Signature, StatementBand, StatementGroup
from web.tenancy import current_collective_id, set_current_collective
from workers.jobs.statements import GROUP_JOB, sweep_statements

_seq = itertools.count(1)
XSS = '<script>alert("words")</script><img src=x onerror=alert(1)>'
RTL = "I agree \u202etxet desrever\u202c with this letter"


# --- helpers ---------------------------------------------------------------------------


@pytest.fixture
def world(session: Session, app: Flask) -> tuple[Collective, Campaign]:
    return _published(session, app)


def _base(collective: Collective, campaign: Campaign) -> str:
    return f"/app/{collective.slug}/campaigns/{campaign.id}/statements"


def _words(
    session: Session,
    campaign: Campaign,
    text: str,
    *,
    status: str = "verified",
    consent: bool = True,
    statement_status: str | None = None,
    **fields: Any,
) -> Signature:
    """A signature with own words, as the signing flow stores it (fields overridable)."""
    set_current_collective(session, campaign.collective_id)
    version = campaigns.current_version(session, campaign)
    assert version is not None
    n = next(_seq)
    email = fields.pop("email", f"words{n}@example.org")
    signature = Signature(
        campaign_id=campaign.id,
        letter_version_id=version.id,
        name=fields.pop("name", f"Signer {n}"),
        email=email,
        email_canonical=signing.canonical_email(email),
        status=status,
        secret_hash=b"\x01" * 32,
        verified_at=utcnow() if status == "verified" else None,
        statement=text,
        show_statement=consent,
        statement_status=statement_status or statements.initial_status(text, consent),
        **fields,
    )
    session.add(signature)
    session.flush()
    return signature


def _state(session: Session, signature_id: int) -> tuple[str, str, int | None]:
    session.expire_all()
    # A request in between ended the transaction-local tenant setting: apply it again.
    set_current_collective(session, current_collective_id(session))
    signature = session.get(Signature, signature_id)
    assert signature is not None
    return (
        signature.statement_status,
        signature.statement_hidden_reason,
        signature.statement_group_id,
    )


def _public(client: FlaskClient, collective: Collective, campaign: Campaign) -> str:
    response = client.get(_page(collective, campaign))
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _own_words_section(body: str) -> str:
    match = re.search(
        r'<section[^>]*aria-labelledby="statements-title">(.*?)</section>', body, re.S
    )
    return match.group(1) if match else ""


def _confirm(client: FlaskClient, mailbox: Mailbox, work: Any, email: str) -> None:
    work()
    [msg] = mailbox.to(email)
    link = urlsplit(mailbox.link_in(msg, "/confirm/")).path
    token = csrf_token(client.get(link).get_data(as_text=True))
    assert client.post(link, data={"csrf_token": token}).status_code == 303


def _signature_by_email(session: Session, campaign: Campaign, email: str) -> Signature:
    session.expire_all()
    set_current_collective(session, campaign.collective_id)
    signature = session.scalar(
        select(Signature).where(
            Signature.campaign_id == campaign.id,
            Signature.email_canonical == signing.canonical_email(email),
        )
    )
    assert signature is not None
    return signature


def _as_owner(client: FlaskClient, session: Session, collective: Collective) -> None:
    login(client, _owner(session, collective))
    set_current_collective(session, collective.id)  # again, after the login request


def _act(client: FlaskClient, base: str, signature_id: int, action: str, **data: str) -> Any:
    return form_post(client, f"{base}/", data, action=f"{base}/{signature_id}/{action}")


def _group_all(session: Session, campaign: Campaign) -> None:
    set_current_collective(session, campaign.collective_id)
    while statements.group_statements(session, campaign).more:
        pass
    session.flush()


# --- consent ---------------------------------------------------------------------------


def test_the_consent_box_is_on_the_form_only_when_own_words_are_asked(
    client: FlaskClient, session: Session, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    body = _public(client, collective, campaign)
    assert '<input id="show_statement" name="show_statement" type="checkbox"' in body
    assert '<label for="show_statement">Show my words publicly</label>' in body
    campaign.statements_enabled = False
    session.flush()
    body = _public(client, collective, campaign)
    assert 'name="show_statement"' not in body
    assert 'name="statement"' not in body


def test_words_without_consent_are_never_shown_or_listed(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    mailbox: Mailbox,
    work: Any,
    world: tuple[Collective, Campaign],
) -> None:
    collective, campaign = world
    campaign.statements_auto_approve = True  # even auto-approval needs the signer's consent
    session.flush()
    page = _page(collective, campaign)
    words = "My private reasons, for the organisers only."
    assert _sign(client, page, email="quiet@example.org", statement=words).status_code == 303
    _confirm(client, mailbox, work, "quiet@example.org")

    signature = _signature_by_email(session, campaign, "quiet@example.org")
    assert signature.status == "verified"
    assert signature.statement == words  # kept, as the signer wrote it
    assert (signature.show_statement, signature.statement_status) == (False, "none")
    assert words not in _public(client, collective, campaign)

    _as_owner(other_client, session, collective)
    base = _base(collective, campaign)
    for tab in ("waiting", "approved", "hidden"):
        assert words not in other_client.get(f"{base}/?status={tab}").get_data(as_text=True)
    before = snapshot(session)
    assert _act(other_client, base, signature.id, "approve").status_code == 404
    assert other_client.get(f"{base}/{signature.id}/hide").status_code == 404
    assert snapshot(session) == before
    set_current_collective(session, collective.id)
    assert statements.distinct_voices(session, campaign) == 0


# --- moderation ------------------------------------------------------------------------


def test_waiting_words_are_not_public_until_an_organiser_approves_them(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    mailbox: Mailbox,
    work: Any,
    world: tuple[Collective, Campaign],
) -> None:
    collective, campaign = world
    page = _page(collective, campaign)
    words = "My son waited eleven months for his assessment."
    response = _sign(
        client,
        page,
        name="Pat Parent",
        email="pat@example.org",
        statement=words,
        show_statement="y",
        show_name="y",
    )
    assert response.status_code == 303
    signature = _signature_by_email(session, campaign, "pat@example.org")
    assert (signature.show_statement, signature.statement_status) == (True, "pending")

    _as_owner(other_client, session, collective)
    base = _base(collective, campaign)
    # Not confirmed yet: neither listed nor public, but counted as waiting for the signer.
    listing = other_client.get(f"{base}/").get_data(as_text=True)
    assert words not in listing
    assert "1 more signer wrote words to show but has not confirmed their signature" in listing

    _confirm(client, mailbox, work, "pat@example.org")
    listing = other_client.get(f"{base}/").get_data(as_text=True)
    assert words in listing
    assert "Waiting for review (1)" in listing
    assert words not in _public(client, collective, campaign)  # waiting: not public

    response = _act(other_client, base, signature.id, "approve")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"{base}/")
    flash = other_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Approved the words of Pat Parent." in flash
    assert _state(session, signature.id)[0] == "approved"

    shown = _own_words_section(_public(client, collective, campaign))
    assert words in shown
    assert "Pat Parent" in shown  # the signer chose to show their name

    again = _act(other_client, base, signature.id, "approve")
    assert again.status_code == 409
    assert "already approved" in again.get_data(as_text=True)


def test_a_name_is_shown_next_to_the_words_only_if_the_signer_chose_so(
    client: FlaskClient, session: Session, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    _words(
        session,
        campaign,
        "Named words here.",
        name="Nora Named",
        show_name=True,
        statement_status="approved",
    )
    _words(
        session,
        campaign,
        "Anonymous words there.",
        name="Secret Sam",
        show_name=False,
        statement_status="approved",
    )
    shown = _own_words_section(_public(client, collective, campaign))
    assert "Named words here." in shown
    assert "Nora Named" in shown
    assert "Anonymous words there." in shown
    assert "Secret Sam" not in _public(client, collective, campaign)
    assert "A signer" in shown


def test_words_leave_the_public_page_when_their_signature_stops_counting(
    client: FlaskClient, session: Session, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    withdrawn = _words(session, campaign, "Withdrawn words.", statement_status="approved")
    reconsent = _words(session, campaign, "Words on the old text.", statement_status="approved")
    assert "Withdrawn words." in _public(client, collective, campaign)
    withdrawn.status = "withdrawn"
    reconsent.needs_reconsent = True
    session.flush()
    body = _public(client, collective, campaign)
    assert "Withdrawn words." not in body
    assert "Words on the old text." not in body
    set_current_collective(session, collective.id)
    assert statements.distinct_voices(session, campaign) == 0


def test_hiding_needs_a_reason_takes_the_words_off_and_restoring_brings_them_back(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    world: tuple[Collective, Campaign],
) -> None:
    collective, campaign = world
    signature = _words(
        session,
        campaign,
        "Words that turn out abusive.",
        name="Abe Abusive",
        statement_status="approved",
    )
    signing.reconcile_counts(session, campaign.id)
    assert "Words that turn out abusive." in _public(client, collective, campaign)
    _as_owner(other_client, session, collective)
    base = _base(collective, campaign)
    hide_page = f"{base}/{signature.id}/hide?status=approved"

    form = other_client.get(hide_page)
    assert form.status_code == 200
    body = form.get_data(as_text=True)
    assert '<label for="reason">Why are you hiding these words?</label>' in body
    assert "Words that turn out abusive." in body

    empty = form_post(other_client, hide_page, {"reason": "   "})
    assert empty.status_code == 422
    body = empty.get_data(as_text=True)
    assert "There is a problem" in body
    assert '<a href="#reason">Enter why you are hiding these words.</a>' in body
    assert _state(session, signature.id)[0] == "approved"

    hidden = form_post(other_client, hide_page, {"reason": "Insults another signer by name."})
    assert hidden.status_code == 303
    assert hidden.headers["Location"].endswith(f"{base}/?status=approved")
    assert _state(session, signature.id)[:2] == ("hidden", "Insults another signer by name.")
    assert "Words that turn out abusive." not in _public(client, collective, campaign)
    set_current_collective(session, collective.id)
    assert signing.verified_count(session, campaign) == 1  # the signature still counts

    hidden_list = other_client.get(f"{base}/?status=hidden").get_data(as_text=True)
    assert "Words that turn out abusive." in hidden_list
    assert "Insults another signer by name." in hidden_list
    assert "Hidden (1)" in hidden_list

    twice = form_post(other_client, hide_page, {"reason": "Again"})
    assert twice.status_code == 409
    assert "hidden now" in twice.get_data(as_text=True)

    restored = _act(other_client, f"{base}", signature.id, "restore")
    assert restored.status_code == 303
    assert _state(session, signature.id)[:2] == ("approved", "")
    assert "Words that turn out abusive." in _public(client, collective, campaign)


def test_auto_approve_from_the_settings_shows_words_once_the_signer_confirms(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    mailbox: Mailbox,
    work: Any,
    world: tuple[Collective, Campaign],
) -> None:
    collective, campaign = world
    _as_owner(other_client, session, collective)
    settings_page = f"/app/{collective.slug}/campaigns/{campaign.id}/settings"
    body = other_client.get(settings_page).get_data(as_text=True)
    assert "Approve signers’ own words automatically" in body
    assert 'name="statements_auto_approve" type="checkbox" value="y">' in body  # off
    data = {
        "title": campaign.title,
        "slug": campaign.slug,
        "recipient_id": str(campaign.recipient_id),
        "addressee_name": "",
        "addressee_role": "Secretary of State",
        "audience_style": "minister",
        "signature_target": "",
        "closes_on": "",
        "suggest_text": "",
        "statements_auto_approve": "y",
        "action": "save",
    }
    assert form_post(other_client, settings_page, data).status_code == 302
    session.expire_all()
    assert session.get(Campaign, campaign.id).statements_auto_approve is True  # type: ignore[union-attr]
    assert "checked" in other_client.get(settings_page).get_data(as_text=True)

    words = "Approved as soon as I confirmed."
    page = _page(collective, campaign)
    assert (
        _sign(
            client, page, email="auto@example.org", statement=words, show_statement="y"
        ).status_code
        == 303
    )
    assert words not in _public(client, collective, campaign)  # not before confirmation
    _confirm(client, mailbox, work, "auto@example.org")
    signature = _signature_by_email(session, campaign, "auto@example.org")
    assert signature.statement_status == "approved"
    assert signature.statement_moderated_at is not None
    assert words in _own_words_section(_public(client, collective, campaign))

    # Turning it off again leaves approved words approved.
    assert (
        form_post(other_client, settings_page, {**data, "statements_auto_approve": ""}).status_code
        == 302
    )
    assert _state(session, signature.id)[0] == "approved"


# --- near-identical words ----------------------------------------------------------------


BASE_WORDS = "The assessor never read my medical evidence and I lost my mobility car."
NEAR_COPIES = [
    "the assessor NEVER read my medical evidence, and I lost my mobility car!!!",
    "The assessor never read my medical evidence and I lost my mobility scooter.",
    "The  assessor never read my medical\nevidence and I lost my mobility car",
]
OTHERS = [
    "Publish the assessment statistics every month so we can see the backlog.",
    "My GP wrote three letters and nobody at the department answered any of them.",
]


def test_near_identical_words_are_grouped_and_different_words_are_not(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    work: Any,
    world: tuple[Collective, Campaign],
) -> None:
    collective, campaign = world
    first = _words(session, campaign, BASE_WORDS, statement_status="approved")
    copies = [_words(session, campaign, t, statement_status="approved") for t in NEAR_COPIES]
    others = [_words(session, campaign, t, statement_status="approved") for t in OTHERS]
    set_current_collective(session, collective.id)
    assert statements.distinct_voices(session, campaign) == 6  # not grouped yet

    assert sweep_statements() == 1  # one grouping job, for the one campaign
    work()
    groups = {s.id: _state(session, s.id)[2] for s in [first, *copies, *others]}
    assert all(g is not None for g in groups.values())
    assert {groups[c.id] for c in copies} == {groups[first.id]}
    assert len({groups[first.id], groups[others[0].id], groups[others[1].id]}) == 3

    set_current_collective(session, collective.id)
    assert statements.distinct_voices(session, campaign) == 3
    voices = statements.statement_groups(session, campaign)
    assert [v.count for v in voices] == [4, 1, 1]
    assert voices[0].representative == BASE_WORDS  # the earliest of the group
    assert voices[0].member_ids == sorted([first.id, *(c.id for c in copies)])
    assert session.scalar(select(func.count()).select_from(StatementGroup)) == 3
    assert session.scalar(select(func.count()).select_from(StatementBand)) == 3 * statements.BANDS

    shown = _own_words_section(_public(client, collective, campaign))
    assert shown.count("said much the same") == 1
    assert "and 3 others said much the same" in shown
    assert shown.count("<blockquote") == 3

    _as_owner(other_client, session, collective)
    page = other_client.get(f"{_base(collective, campaign)}/?status=approved").get_data(
        as_text=True
    )
    assert '<span class="count">3</span> distinct voices among the 6 statements' in page
    assert "3 more with near-identical words" in page

    # Grouping again changes nothing (idempotent), and so does a second sweep.
    assert sweep_statements() == 0
    set_current_collective(session, collective.id)
    assert statements.group_statements(session, campaign).statements == 0


def test_the_sweep_enqueues_one_job_per_campaign_and_the_job_drains_in_batches(
    session: Session, work: Any, world: tuple[Collective, Campaign], monkeypatch: Any
) -> None:
    _, campaign = world
    monkeypatch.setattr(statements, "GROUP_BATCH", 3)
    ids = [_words(session, campaign, f"{BASE_WORDS} Reason {i}.").id for i in range(7)]
    unconfirmed = _words(session, campaign, BASE_WORDS, status="pending").id
    assert sweep_statements() == 1
    assert sweep_statements() == 0  # a job is already waiting for this campaign
    work()
    assert {_state(session, i)[2] for i in ids} != {None}
    assert all(_state(session, i)[2] is not None for i in ids)
    assert len({_state(session, i)[2] for i in ids}) == 1
    assert _state(session, unconfirmed)[2] is None  # waits for its signer to confirm
    session.expire_all()
    jobs = session.scalars(select(OutboxMessage).where(OutboxMessage.func == GROUP_JOB)).all()
    assert len(jobs) == 3  # 3 + 3 + 1
    assert all(j.done_at is not None for j in jobs)


def test_grouping_a_statement_costs_the_same_whatever_the_number_of_groups(
    app: Flask, session: Session, world: tuple[Collective, Campaign]
) -> None:
    """A new statement finds its group by index lookup, never by comparing itself with
    every other statement: the SQL it needs does not grow with the campaign."""
    _, campaign = world
    engine = database(app).engine
    counts = []
    voices: list[Signature] = []
    for distinct in (5, 120):
        while len(voices) < distinct:
            n = len(voices)
            voices.append(_words(session, campaign, f"Voice {n}: w{n}a w{n}b w{n}c w{n}d"))
        _group_all(session, campaign)
        _words(session, campaign, f"A new voice {distinct}: n{distinct}a n{distinct}b")
        copy = _words(session, campaign, "Voice 3: w3a w3b w3c w3d")
        statements_run: list[str] = []

        def count(*args: Any, log: list[str] = statements_run) -> None:
            log.append(args[2])

        event.listen(engine, "before_cursor_execute", count)
        try:
            result = statements.group_statements(session, campaign)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert result.statements == 2
        assert result.groups_founded == 1  # the new voice; the copy joins "Voice 3"
        assert _state(session, copy.id)[2] == _state(session, voices[3].id)[2]
        counts.append(len(statements_run))
    assert counts[0] == counts[1], counts


def test_approving_a_group_approves_exactly_the_waiting_words_the_organiser_saw(
    other_client: FlaskClient, session: Session, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    waiting = [_words(session, campaign, t) for t in [BASE_WORDS, *NEAR_COPIES]]
    different = _words(session, campaign, OTHERS[0])
    _group_all(session, campaign)
    group_id = _state(session, waiting[0].id)[2]
    _as_owner(other_client, session, collective)
    base = _base(collective, campaign)

    listing = other_client.get(f"{base}/").get_data(as_text=True)
    assert "3 more with near-identical words" in listing
    group_page = f"{base}/?group={group_id}"
    body = other_client.get(group_page).get_data(as_text=True)
    assert "Approve all 4 waiting in this group" in body
    assert OTHERS[0] not in body
    fields = dict(re.findall(r'<input [^>]*name="(expected|upto)"[^>]*value="([^"]*)"', body))
    assert fields["expected"] == "4"
    token = csrf_token(body)

    # Someone hides one of them meanwhile: the approval changes nothing.
    set_current_collective(session, collective.id)
    member = session.get(Signature, waiting[3].id)
    assert member is not None
    member.statement_status = "hidden"
    session.flush()
    action = f"{base}/groups/{group_id}/approve"
    clash = other_client.post(action, data={"csrf_token": token, **fields})
    assert clash.status_code == 409
    assert "The page showed 4 waiting statements in this group, but 3 wait now" in (
        clash.get_data(as_text=True)
    )
    assert [_state(session, s.id)[0] for s in waiting] == ["pending"] * 3 + ["hidden"]

    # A near-copy verified after the page was read is left for the organiser to read.
    body = other_client.get(group_page).get_data(as_text=True)
    fields = dict(re.findall(r'<input [^>]*name="(expected|upto)"[^>]*value="([^"]*)"', body))
    latecomer = _words(session, campaign, BASE_WORDS + " Truly.")
    _group_all(session, campaign)
    assert _state(session, latecomer.id)[2] == group_id
    done = other_client.post(action, data={"csrf_token": csrf_token(body), **fields})
    assert done.status_code == 303
    assert [_state(session, s.id)[0] for s in waiting] == ["approved"] * 3 + ["hidden"]
    assert _state(session, latecomer.id)[0] == "pending"
    assert _state(session, different.id)[0] == "pending"


def test_the_lists_page_fifty_at_a_time(
    other_client: FlaskClient, session: Session, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    for i in range(55):
        _words(session, campaign, f"Waiting words number {i:02d}.")
    _as_owner(other_client, session, collective)
    base = _base(collective, campaign)
    first = other_client.get(f"{base}/").get_data(as_text=True)
    assert "55 statements; page 1 of 2" in first
    assert "Waiting words number 00." in first  # oldest first
    assert "Waiting words number 50." not in first
    second = other_client.get(f"{base}/?page=2").get_data(as_text=True)
    assert "Waiting words number 54." in second
    assert "Waiting words number 49." not in second
    assert other_client.get(f"{base}/?page=99").status_code == 200  # clamped


# --- who may act, and whose words ----------------------------------------------------------


def test_viewers_read_the_words_but_cannot_act(
    other_client: FlaskClient, session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    waiting = _words(session, campaign, BASE_WORDS)
    hidden = _words(
        session, campaign, OTHERS[0], statement_status="hidden", statement_hidden_reason="Off topic"
    )
    _group_all(session, campaign)
    group_id = _state(session, waiting.id)[2]
    base = _base(collective, campaign)
    viewer = make_user(session, app, email="viewer@example.org")
    add_member(session, collective, viewer, Role.VIEWER)
    login(other_client, viewer)
    set_current_collective(session, collective.id)
    page = other_client.get(f"{base}/").get_data(as_text=True)
    assert BASE_WORDS in page
    assert "Only owners and organisers can approve, hide or restore words." in page
    assert "/approve" not in page
    assert "/hide" not in page
    group_page = other_client.get(f"{base}/?group={group_id}").get_data(as_text=True)
    assert "Approve all" not in group_page

    before = snapshot(session)
    token = csrf_token(page)
    attempts = [
        (f"{base}/{waiting.id}/approve", {}),
        (f"{base}/{waiting.id}/hide", {"reason": "Mine"}),
        (f"{base}/{hidden.id}/restore", {}),
        (f"{base}/groups/{group_id}/approve", {"expected": "1", "upto": str(waiting.id)}),
    ]
    for action, data in attempts:
        response = other_client.post(action, data={"csrf_token": token, **data})
        assert response.status_code == 403, action
        assert "Only owners or organisers of this collective can do that." in (
            response.get_data(as_text=True)
        )
    assert other_client.get(f"{base}/{waiting.id}/hide").status_code == 403
    assert snapshot(session) == before


def test_words_of_another_campaign_or_collective_are_not_found(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    app: Flask,
    world: tuple[Collective, Campaign],
) -> None:
    collective, campaign = world
    theirs_collective, theirs_campaign = _published(session, app, slug="elsewhere")
    theirs = _words(session, theirs_campaign, "Their secret words.").id
    other_base = _base(theirs_collective, theirs_campaign)
    _group_all(session, theirs_campaign)
    their_group = _state(session, theirs)[2]
    sibling = _published_sibling(session, collective)
    mine_elsewhere = _words(session, sibling, "Words on a sibling campaign.")
    _group_all(session, sibling)
    sibling_group = _state(session, mine_elsewhere.id)[2]

    _as_owner(other_client, session, collective)
    base = _base(collective, campaign)
    before = snapshot(session)
    token = csrf_token(other_client.get(f"{base}/").get_data(as_text=True))
    for signature_id in (theirs, mine_elsewhere.id):
        for action in ("approve", "restore", "hide"):
            response = other_client.post(
                f"{base}/{signature_id}/{action}", data={"csrf_token": token, "reason": "x"}
            )
            assert response.status_code == 404, (signature_id, action)
        assert other_client.get(f"{base}/{signature_id}/hide").status_code == 404
    for group_id in (their_group, sibling_group):
        assert other_client.get(f"{base}/?group={group_id}").status_code == 404
        response = other_client.post(
            f"{base}/groups/{group_id}/approve",
            data={"csrf_token": token, "expected": "1", "upto": str(2**62)},
        )
        assert response.status_code == 404
    # The other collective's own address, with our login: 404 like any unknown collective.
    assert other_client.get(f"{other_base}/").status_code == 404
    assert snapshot(session) == before
    assert "Their secret words." not in _public(client, collective, campaign)


def _published_sibling(session: Session, collective: Collective) -> Campaign:
    """A second campaign of the same collective, with a published version."""
    from web.campaigns.models import LetterVersion

    set_current_collective(session, collective.id)
    sibling = Campaign(
        kind="open_letter", title="Sibling", slug=f"sibling-{next(_seq)}", state="collecting"
    )
    session.add(sibling)
    session.flush()
    session.add(
        LetterVersion(
            campaign_id=sibling.id, number=1, content={}, canonical_text="", sha256="1" * 64
        )
    )
    session.flush()
    return sibling


# --- hostile input ---------------------------------------------------------------------------


def test_hostile_words_and_reasons_are_shown_escaped_on_public_and_organiser_pages(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    mailbox: Mailbox,
    work: Any,
    world: tuple[Collective, Campaign],
) -> None:
    collective, campaign = world
    page = _page(collective, campaign)
    hostile_name = '"><img src=x onerror=alert(2)>'
    assert (
        _sign(
            client,
            page,
            name=hostile_name,
            email="xss@example.org",
            statement=XSS,
            show_statement="y",
            show_name="y",
        ).status_code
        == 303
    )
    assert (
        _sign(client, page, email="rtl@example.org", statement=RTL, show_statement="y").status_code
        == 303
    )
    _confirm(client, mailbox, work, "xss@example.org")
    _confirm(client, mailbox, work, "rtl@example.org")
    xss = _signature_by_email(session, campaign, "xss@example.org")
    rtl = _signature_by_email(session, campaign, "rtl@example.org")
    assert (xss.statement, rtl.statement) == (XSS, RTL)  # stored as sent

    _as_owner(other_client, session, collective)
    base = _base(collective, campaign)

    def assert_escaped(body: str, *values: str) -> None:
        assert "<script>alert" not in body
        assert "<img src=x" not in body
        for value in values:
            assert str(escape(value)) in body, value

    assert_escaped(other_client.get(f"{base}/").get_data(as_text=True), XSS, RTL, hostile_name)
    assert_escaped(other_client.get(f"{base}/{xss.id}/hide").get_data(as_text=True), XSS)
    for s in (xss, rtl):
        assert _act(other_client, base, s.id, "approve").status_code == 303
    _group_all(session, campaign)
    public = _public(client, collective, campaign)
    assert_escaped(public, XSS, RTL, hostile_name)
    assert 'dir="auto">' + str(escape(RTL)) in public  # the override cannot leak out
    assert_escaped(other_client.get(f"{base}/?status=approved").get_data(as_text=True), XSS, RTL)

    reason = f"Hidden: {XSS}"
    hidden = form_post(other_client, f"{base}/{xss.id}/hide?status=approved", {"reason": reason})
    assert hidden.status_code == 303
    assert _state(session, xss.id)[1] == reason
    assert_escaped(other_client.get(f"{base}/?status=hidden").get_data(as_text=True), reason)


def test_hostile_input_gets_a_readable_answer_and_changes_nothing(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    world: tuple[Collective, Campaign],
) -> None:
    collective, campaign = world
    page = _page(collective, campaign)
    too_long = _sign(
        client, page, email="long@example.org", statement="x" * 1024 * 1024, show_statement="y"
    )
    assert too_long.status_code == 422
    assert "Your own words must be 2000 characters or fewer." in too_long.get_data(as_text=True)
    nul = _sign(client, page, email="nul@example.org", statement="a\x00b", show_statement="y")
    assert nul.status_code == 400
    set_current_collective(session, collective.id)
    assert session.scalar(select(func.count()).select_from(Signature)) == 0

    signature = _words(session, campaign, "Plain words.")
    _as_owner(other_client, session, collective)
    base = _base(collective, campaign)
    hide_page = f"{base}/{signature.id}/hide"
    before = snapshot(session)
    token = csrf_token(other_client.get(hide_page).get_data(as_text=True))
    cases: list[tuple[Any, int, str]] = [
        ({"reason": "r" * 1024 * 1024}, 422, "The reason must be 500 characters or fewer."),
        ({"reason": "bad\x00byte"}, 400, "null character"),
        (b"reason=%FF%FE&csrf_token=" + token.encode(), 303, ""),  # kept as the text "%FF%FE"
    ]
    for data, status, says in cases:
        if isinstance(data, bytes):
            response = other_client.post(
                hide_page, data=data, content_type="application/x-www-form-urlencoded"
            )
        else:
            response = other_client.post(hide_page, data={"csrf_token": token, **data})
        assert response.status_code == status, data if not isinstance(data, bytes) else data[:40]
        if says:
            assert says in response.get_data(as_text=True)
            assert snapshot(session) == before
    raw = other_client.post(
        hide_page, data=b"reason=\xff\xfe", content_type="application/x-www-form-urlencoded"
    )
    assert raw.status_code == 400

    for query in (
        "status=<script>",
        "status=everything",
        "group=abc",
        "group=-1",
        "group=99999999999999999999",
        "group=0",
        f"group={2**63 - 1}",
    ):
        response = other_client.get(f"{base}/?{query}")
        assert response.status_code == 404, query
        assert "<script>" not in response.get_data(as_text=True)
    for query in ("page=abc", "page=-5", "page=99999999999999999999"):
        assert other_client.get(f"{base}/?{query}").status_code == 200, query

    _group_all(session, campaign)
    group = _state(session, signature.id)[2]
    before = snapshot(session)
    for data in (
        {"expected": "abc", "upto": "1"},
        {"expected": "1", "upto": "-1"},
        {"expected": "9" * 30, "upto": "1"},
        {"upto": "1"},
    ):
        response = other_client.post(
            f"{base}/groups/{group}/approve", data={"csrf_token": token, **data}
        )
        assert response.status_code == 400, data
        assert "Go back to the group" in response.get_data(as_text=True)
    assert snapshot(session) == before


# --- in a real browser ---------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.live
def test_an_organiser_approves_and_hides_words_in_a_browser_with_axe_on_every_page(
    live_app_factory: Callable[..., Flask], live_db: str, mailbox: Mailbox, browser: LazyBrowser
) -> None:
    with serve_live_app(live_app_factory) as live:
        with database(live.app).session_scope() as s:
            collective, campaign = _published(s, live.app, slug="own-words-journey")
            _words(s, campaign, BASE_WORDS, name="Wendy Words", show_name=True)
            _words(s, campaign, NEAR_COPIES[0], name="Cal Copy")
            _words(s, campaign, "Rude words about a named official.", name="Rory Rude")
            _group_all(s, campaign)
            owner_email = _owner(s, collective).email
            base = _base(collective, campaign)
            public = _page(collective, campaign)

        a11y = A11y()
        context = browser.get().new_context(
            base_url=live.url, viewport={"width": 390, "height": 844}
        )
        context.set_default_timeout(10_000)
        try:
            page = a11y.watch(context.new_page())
            page.goto(f"/login?next={base}/")
            a11y.check(page)
            page.get_by_label("Email address", exact=True).fill(owner_email)
            page.get_by_label("Password", exact=True).fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Signers’ own words")
            a11y.check(page)

            page.get_by_role(
                "link", name=re.compile("^1 more with near-identical words")
            ).first.click()
            expect(
                page.get_by_role("button", name="Approve all 2 waiting in this group")
            ).to_be_visible()
            a11y.check(page)
            page.get_by_role("button", name="Approve all 2 waiting in this group").click()
            expect(page.get_by_role("status")).to_contain_text("Approved 2 statements")
            a11y.check(page)

            page.get_by_role("link", name="Hide the words of Rory Rude").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Hide the words of Rory Rude")
            a11y.check(page)
            page.get_by_role("button", name="Hide these words").click()
            expect(page.get_by_role("alert")).to_contain_text("Enter why you are hiding")
            a11y.check(page)
            page.get_by_label("Why are you hiding these words?").fill("Names an official.")
            page.get_by_role("button", name="Hide these words").click()
            expect(page.get_by_role("status")).to_contain_text("Hid the words of Rory Rude")
            a11y.check(page)

            page.goto(public)
            section = page.get_by_role("region", name="In their own words")
            # A group shows once, by its newest words.
            expect(section).to_contain_text(NEAR_COPIES[0])
            expect(section).not_to_contain_text(BASE_WORDS)
            expect(section).to_contain_text("and 1 other said much the same")
            expect(section).not_to_contain_text("Rude words")
            a11y.check(page)
            a11y.assert_every_page_checked()
        finally:
            context.close()
