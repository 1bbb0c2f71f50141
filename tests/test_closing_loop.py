"""Closing the loop (issue #6, §8): the organiser assesses each ask and publishes the
response on the public campaign page; signers who asked for news hear of each
milestone once, through the batched updates machinery, with unsubscribe honoured."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from playwright.sync_api import BrowserContext, expect
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from tests.browser import A11y, LiveServer
from tests.conftest import Mailbox, csrf_token
from tests.factories import add_member, login, make_user
from tests.test_chasers import delivered_campaign, owner_of
from tests.test_signing_journey import PHONE, heading
from tests.test_updates import _add
from web.campaigns.models import Campaign
from web.collectives.models import Collective, Membership, Role
from web.db import utcnow
from web.delivery import workdays
from web.delivery.loop import Milestone, assess_asks, notify_signers, save_summary
from web.delivery.models import Delivery, EventKind
from web.delivery.services import timeline
from web.delivery.workdays import uk_date
from web.http import database
from web.outbox import attach_dispatcher
from web.responses.models import AskAssessment, Meeting, ResponseChannel, ResponseKind
from web.responses.services import record_response
from web.signatures import updates
from web.signatures.updates import CampaignUpdate
from web.tenancy import set_current_collective

ASKS = [
    "Publish the PIP assessment data by region.",
    "Meet disabled people's organisations before the next review.",
    "Pause the reassessment programme.",
]


def _base(collective: Collective, campaign: Campaign, delivery: Delivery) -> str:
    return f"/app/{collective.slug}/campaigns/{campaign.id}/deliveries/{delivery.id}"


def _public(collective: Collective, campaign: Campaign) -> str:
    return f"/{collective.slug}/{campaign.slug}"


def _answered(session: Session, app: Flask) -> tuple[Collective, Campaign, Delivery]:
    """A delivery acknowledged after 2 working days and answered after 19."""
    collective, campaign, delivery = delivered_campaign(session, app, asks=ASKS)
    record_response(
        session, delivery, kind=ResponseKind.ACKNOWLEDGEMENT, channel=ResponseChannel.PAGE
    )
    record_response(
        session,
        delivery,
        kind=ResponseKind.SUBSTANTIVE,
        channel=ResponseChannel.EMAIL,
        body_text="We will consider your points.",
    )
    delivery.acknowledged_at = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
    delivery.replied_at = datetime(2026, 3, 27, 15, 0, tzinfo=UTC)
    session.flush()
    return collective, campaign, delivery


def _section(public: str) -> str:
    """The published-response section of the public campaign page ("" if none)."""
    if 'id="response"' not in public:
        return ""
    return public.split('<section id="response"', 1)[1].split("</section>", 1)[0]


def _post(client: FlaskClient, page: str, action: str, data: dict[str, Any]) -> Any:
    html = client.get(page).get_data(as_text=True)
    return client.post(action, data={"csrf_token": csrf_token(html), **data})


def _assessments(session: Session, delivery: Delivery) -> list[tuple[int, str, str]]:
    set_current_collective(session, delivery.collective_id)
    rows = session.scalars(
        select(AskAssessment)
        .where(AskAssessment.delivery_id == delivery.id)
        .order_by(AskAssessment.ask_index)
        .execution_options(populate_existing=True)
    )
    return [(r.ask_index, r.assessment, r.note) for r in rows]


# --- assessing and publishing -------------------------------------------------------------


def test_organiser_assesses_each_ask_and_can_change_their_mind(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    collective, campaign, delivery = _answered(session, app)
    login(client, owner_of(session, collective))
    base = _base(collective, campaign, delivery)
    page = f"{base}/follow-up"
    html = client.get(page).get_data(as_text=True)
    for ask in ASKS:
        assert ask.replace("'", "&#39;") in html
    response = _post(
        client,
        page,
        f"{base}/assessment",
        {
            "ask-0": "answered",
            "note-0": "They committed to publish it in June.",
            "ask-1": "partly",
            "ask-2": "not_answered",
        },
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith("#assessment")
    assert _assessments(session, delivery) == [
        (0, "answered", "They committed to publish it in June."),
        (1, "partly", ""),
        (2, "not_answered", ""),
    ]
    response = _post(client, page, f"{base}/assessment", {"ask-0": "partly", "note-0": ""})
    assert response.status_code == 303
    assert _assessments(session, delivery)[0] == (0, "partly", "")
    assert len(_assessments(session, delivery)) == 3
    html = client.get(page).get_data(as_text=True)
    assert 'id="ask-0-partly" name="ask-0" value="partly" checked' in html
    events = [e for e in timeline(session, delivery) if e.kind == EventKind.ASSESSED.value]
    assert [e.summary for e in events] == [
        "Assessed 3 asks: 1 answered, 1 partly answered, 1 not answered.",
        "Assessed 1 ask: 1 partly answered.",
    ]


def test_published_response_appears_on_the_campaign_page_and_unpublishing_hides_it(
    client: FlaskClient, other_client: FlaskClient, session: Session, app: Flask
) -> None:
    collective, campaign, delivery = _answered(session, app)
    login(client, owner_of(session, collective))
    base = _base(collective, campaign, delivery)
    page = f"{base}/follow-up"
    _post(
        client,
        page,
        f"{base}/assessment",
        {"ask-0": "answered", "note-0": "Data due in June.", "ask-2": "not_answered"},
    )
    summary = "The minister agreed to publish the data.\n\nShe would not pause reassessments."
    saved = _post(client, page, f"{base}/response", {"summary": summary, "action": "save"})
    assert saved.status_code == 303
    public = other_client.get(_public(collective, campaign)).get_data(as_text=True)
    assert "The response" not in public  # saved, not published
    published = _post(client, page, f"{base}/response", {"summary": summary})
    assert published.status_code == 303
    public = other_client.get(_public(collective, campaign)).get_data(as_text=True)
    assert '<h2 id="response-title">The response</h2>' in public
    assert "On 2 March 2026, by email, to Department for Work and Pensions." in public
    assert "On 4 March 2026, after 2 working days (target: 5)." in public
    assert "On 27 March 2026, after 19 working days (target: 20), on time." in public
    assert "Publish the PIP assessment data by region.</span>: <strong>Answered</strong>" in public
    assert "Data due in June." in public
    assert "Pause the reassessment programme.</span>: <strong>Not answered</strong>" in public
    assert "Meet disabled" not in _section(public)  # not assessed, not shown
    assert "The minister agreed to publish the data." in public
    assert "She would not pause reassessments." in public
    html = client.get(page).get_data(as_text=True)
    assert "Published on the campaign page" in html
    unpublished = _post(client, page, f"{base}/response/unpublish", {})
    assert unpublished.status_code == 303
    public = other_client.get(_public(collective, campaign)).get_data(as_text=True)
    assert "The response" not in public
    assert "The minister agreed" not in public
    kinds = [
        (e.kind, e.detail.get("published"))
        for e in timeline(session, delivery)
        if e.kind == EventKind.RESPONSE_PUBLISHED.value
    ]
    assert kinds == [("response_published", True), ("response_published", False)]


@pytest.mark.parametrize(
    ("data", "status", "says"),
    [
        ({"ask-0": "brilliant"}, 422, "Choose answered, partly answered or not answered"),
        ({"ask-0": "answered", "note-0": "x" * 2001}, 422, "2,000 characters or fewer"),
        ({"ask-7": "answered"}, 422, "not in the delivered letter"),
        ({"ask-abc": "answered"}, 422, "not in the letter"),
        ({"ask-99999999999999999999": "answered"}, 422, "not in the letter"),
        ({}, 422, "at least one ask"),
        ({"ask-0": "answered", "note-0": "bell\x07"}, 422, "control characters"),
        ({"ask-0": "answered", "note-0": "nul\x00"}, 400, "null character"),
    ],
    ids=[
        "bad-choice",
        "long-note",
        "unknown-ask",
        "not-a-number",
        "huge-number",
        "empty",
        "control",
        "nul",
    ],
)
def test_bad_assessments_are_refused_with_a_message(
    client: FlaskClient,
    session: Session,
    app: Flask,
    data: dict[str, str],
    status: int,
    says: str,
) -> None:
    collective, campaign, delivery = _answered(session, app)
    login(client, owner_of(session, collective))
    base = _base(collective, campaign, delivery)
    response = _post(client, f"{base}/follow-up", f"{base}/assessment", data)
    assert response.status_code == status
    assert says in response.get_data(as_text=True)
    assert _assessments(session, delivery) == []


@pytest.mark.parametrize(
    ("data", "status", "says"),
    [
        ({"summary": "x" * 10_001}, 422, "10,000 characters or fewer"),
        ({"summary": "   "}, 422, "Write a summary"),
        ({"summary": "ok", "action": "shout"}, 422, "save the summary or publish"),
        ({"summary": "ring\x1b[31m"}, 422, "control characters"),
    ],
    ids=["long", "blank", "bad-action", "escape"],
)
def test_bad_summaries_are_refused_with_a_message(
    client: FlaskClient,
    session: Session,
    app: Flask,
    data: dict[str, str],
    status: int,
    says: str,
) -> None:
    collective, campaign, delivery = _answered(session, app)
    login(client, owner_of(session, collective))
    base = _base(collective, campaign, delivery)
    response = _post(client, f"{base}/follow-up", f"{base}/response", data)
    assert response.status_code == status
    assert says in response.get_data(as_text=True)
    session.expire_all()
    set_current_collective(session, collective.id)
    fresh = session.get(Delivery, delivery.id)
    assert fresh is not None
    assert fresh.response_published_at is None
    assert fresh.response_summary == ""


def test_hostile_text_is_shown_as_text_on_the_public_page(
    client: FlaskClient, other_client: FlaskClient, session: Session, app: Flask
) -> None:
    collective, campaign, delivery = _answered(session, app)
    login(client, owner_of(session, collective))
    base = _base(collective, campaign, delivery)
    page = f"{base}/follow-up"
    _post(
        client,
        page,
        f"{base}/assessment",
        {"ask-0": "answered", "note-0": '<img src=x onerror="alert(1)">'},
    )
    summary = "<script>alert('x')</script> \u202egnp.exe"
    assert _post(client, page, f"{base}/response", {"summary": summary}).status_code == 303
    public = other_client.get(_public(collective, campaign)).get_data(as_text=True)
    assert "<script>alert" not in public
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in public
    assert "<img src=x" not in public
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in public
    assert 'dir="auto"' in public


def test_viewers_see_the_assessment_but_cannot_change_it(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    collective, campaign, delivery = _answered(session, app)
    viewer = make_user(session, app)
    add_member(session, collective, viewer, Role.VIEWER)
    login(client, viewer)
    base = _base(collective, campaign, delivery)
    page = f"{base}/follow-up"
    html = client.get(page).get_data(as_text=True)
    assert "Save the assessment" not in html
    assert "Publish the response" not in html
    for action, data in [
        ("assessment", {"ask-0": "answered"}),
        ("response", {"summary": "Hello"}),
        ("response/unpublish", {}),
    ]:
        response = _post(client, page, f"{base}/{action}", data)
        assert response.status_code == 403, action
        assert "Only owners or organisers" in response.get_data(as_text=True)
    assert _assessments(session, delivery) == []


def test_another_collectives_delivery_cannot_be_assessed_or_published(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    collective, campaign, _ = _answered(session, app)
    _, _, theirs = _answered(session, app)
    theirs_id, theirs_collective = theirs.id, theirs.collective_id
    login(client, owner_of(session, collective))
    mine_page = f"/app/{collective.slug}/campaigns/{campaign.id}/updates"
    wrong = f"/app/{collective.slug}/campaigns/{campaign.id}/deliveries/{theirs_id}"
    assert client.get(f"{wrong}/follow-up").status_code == 404
    for action, data in [
        ("assessment", {"ask-0": "answered"}),
        ("response", {"summary": "Hello"}),
        ("response/unpublish", {}),
    ]:
        assert _post(client, mine_page, f"{wrong}/{action}", data).status_code == 404
    set_current_collective(session, theirs_collective)
    session.expire_all()
    fresh = session.get(Delivery, theirs_id)
    assert fresh is not None
    assert fresh.response_summary == ""
    assert _assessments(session, fresh) == []


# --- signers' news --------------------------------------------------------------------------


def _commit(session: Session, app: Flask) -> None:
    attach_dispatcher(session, app.extensions["chorus.dispatcher"])
    session.commit()


def _automatic(session: Session, collective_id: int) -> list[CampaignUpdate]:
    set_current_collective(session, collective_id)
    return list(
        session.scalars(
            select(CampaignUpdate)
            .where(CampaignUpdate.author_id.is_(None))
            .order_by(CampaignUpdate.id)
            .execution_options(populate_existing=True)
        )
    )


def test_signers_who_opted_in_hear_each_milestone_once(
    session: Session, app: Flask, work: Any, mailbox: Mailbox
) -> None:
    collective, campaign, delivery = delivered_campaign(session, app, asks=ASKS)
    collective_id, delivery_id = collective.id, delivery.id
    _add(session, campaign, email="first.signer@example.org")
    _add(session, campaign, email="second.signer@example.org")
    _add(session, campaign, email="quiet@example.org", wants_updates=False)
    _add(
        session,
        campaign,
        email="gone@example.org",
        wants_updates=False,
        unsubscribed_at=datetime(2026, 3, 1, tzinfo=UTC),
    )
    _add(session, campaign, email="unconfirmed@example.org", status="pending")
    # Delivered (the lead wires this call into sending): twice, one update.
    assert notify_signers(session, delivery, Milestone.DELIVERED) is not None
    assert notify_signers(session, delivery, "delivered") is None
    _commit(session, app)
    work()
    (news,) = mailbox.to("first.signer@example.org")
    assert news["Subject"] == "Your letter has been delivered to Department for Work and Pensions"
    assert "List-Unsubscribe" in news
    assert "delivered to Department for Work and Pensions on 2 March 2026, by email" in (
        mailbox.text_of(news)
    )
    assert "/unsubscribe/" in mailbox.text_of(news)
    # Acknowledged and answered come from record_response, whichever channel.
    set_current_collective(session, collective_id)
    fresh = session.get(Delivery, delivery_id)
    assert fresh is not None
    record_response(session, fresh, kind=ResponseKind.ACKNOWLEDGEMENT, channel=ResponseChannel.PAGE)
    record_response(session, fresh, kind=ResponseKind.HOLDING, channel=ResponseChannel.EMAIL)
    record_response(session, fresh, kind=ResponseKind.SUBSTANTIVE, channel=ResponseChannel.EMAIL)
    record_response(session, fresh, kind=ResponseKind.SUBSTANTIVE, channel=ResponseChannel.PAGE)
    record_response(session, fresh, kind=ResponseKind.BOUNCE, channel=ResponseChannel.EMAIL)
    assert notify_signers(session, fresh, Milestone.MEETING_AGREED) is not None
    assert notify_signers(session, fresh, Milestone.MEETING_AGREED) is None
    _commit(session, app)
    work()
    subjects = sorted(str(m["Subject"]) for m in mailbox.to("first.signer@example.org"))
    assert subjects == sorted(
        [
            "Your letter has been delivered to Department for Work and Pensions",
            "Department for Work and Pensions has acknowledged the letter",
            "Department for Work and Pensions has replied to the letter",
            "Department for Work and Pensions has agreed to meet",
        ]
    )
    assert len(mailbox.to("second.signer@example.org")) == 4
    for nobody in ("quiet@example.org", "gone@example.org", "unconfirmed@example.org"):
        assert mailbox.to(nobody) == []
    rows = _automatic(session, collective_id)
    assert [(r.status, r.sent_count) for r in rows] == [("sent", 2)] * 4
    # A repeat of any milestone, later, sends nothing new.
    set_current_collective(session, collective_id)
    fresh = session.get(Delivery, delivery_id)
    assert fresh is not None
    for milestone in Milestone:
        assert notify_signers(session, fresh, milestone) is None
    record_response(session, fresh, kind=ResponseKind.ACKNOWLEDGEMENT, channel=ResponseChannel.PAGE)
    _commit(session, app)
    work()
    assert len(mailbox.to("first.signer@example.org")) == 4


def test_an_unsubscribe_between_milestones_is_honoured(
    session: Session, app: Flask, work: Any, mailbox: Mailbox
) -> None:
    collective, campaign, delivery = delivered_campaign(session, app)
    collective_id, delivery_id = collective.id, delivery.id
    leaving = _add(session, campaign, email="leaving@example.org")
    notify_signers(session, delivery, Milestone.DELIVERED)
    _commit(session, app)
    work()
    assert len(mailbox.to("leaving@example.org")) == 1
    set_current_collective(session, collective_id)
    updates.unsubscribe(session, leaving)
    fresh = session.get(Delivery, delivery_id)
    assert fresh is not None
    record_response(session, fresh, kind=ResponseKind.ACKNOWLEDGEMENT, channel=ResponseChannel.PAGE)
    _commit(session, app)
    work()
    assert len(mailbox.to("leaving@example.org")) == 1


def test_automatic_news_neither_waits_for_nor_uses_up_the_organisers_allowance(
    session: Session, app: Flask, work: Any
) -> None:
    collective, campaign, delivery = delivered_campaign(session, app)
    _add(session, campaign, email="signer@example.org")
    set_current_collective(session, collective.id)
    member = session.scalar(select(Membership).where(Membership.role == Role.OWNER))
    assert member is not None
    # The organiser's own update first: milestone news still goes.
    updates.send_update(session, member, campaign, subject="Thank you", body="We sent it.")
    assert updates.next_allowed_at(session, campaign) is not None
    for milestone in Milestone:
        assert notify_signers(session, delivery, milestone) is not None
    # Four automatic updates later, the campaign's one-a-day allowance is unchanged, and
    # on another campaign of the collective a manual update is allowed.
    assert len(_automatic(session, collective.id)) == 4
    _, other_campaign, other_delivery = delivered_campaign(session, app)
    for milestone in Milestone:
        notify_signers(session, other_delivery, milestone)
    set_current_collective(session, other_campaign.collective_id)
    assert updates.next_allowed_at(session, other_campaign) is None


def test_the_published_response_has_no_section_before_anything_is_published(
    other_client: FlaskClient, session: Session, app: Flask
) -> None:
    collective, campaign, _ = _answered(session, app)
    public = other_client.get(_public(collective, campaign)).get_data(as_text=True)
    assert 'id="response-title"' not in public
    assert _section(public) == ""


def test_the_delivery_page_carries_both_panels(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    collective, campaign, delivery = _answered(session, app)
    login(client, owner_of(session, collective))
    response = client.get(_base(collective, campaign, delivery))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<h2 id="chasers-title">Reminders</h2>' in html
    assert "The department has responded, so no more reminders will be sent." in html
    assert '<h2 id="assessment-title">Assess and publish the response</h2>' in html
    assert "Save the assessment" in html


def test_public_pages_pass_axe_without_javascript(
    live: LiveServer, new_context: Callable[..., BrowserContext]
) -> None:
    app = live.app
    with app.app_context():
        s = database(app).new_session()
        collective, campaign, delivery = _answered(s, app)
        member = s.scalar(select(Membership).where(Membership.role == Role.OWNER))
        assert member is not None
        assess_asks(s, member, delivery, {0: ("answered", "Due in June."), 2: ("not_answered", "")})
        save_summary(s, member, delivery, "They agreed.\n\nBut not to pause.", publish=True)
        s.commit()
        address = _public(collective, campaign)
        s.close()
    a11y = A11y()
    page = a11y.watch(new_context(java_script_enabled=False, **PHONE).new_page())
    twin = new_context(**PHONE).new_page()
    page.goto(address)
    section = page.get_by_role("region", name="The response")
    expect(section).to_contain_text("On 27 March 2026, after 19 working days (target: 20)")
    expect(section).to_contain_text("Not answered")
    a11y.check_without_scripts(page, twin)
    page.goto("/chasers")
    expect(heading(page)).to_have_text("When Chorus sends reminders")
    a11y.check_without_scripts(page, twin)
    a11y.assert_every_page_checked()


def test_published_meeting_outcomes_appear_with_the_response(
    other_client: FlaskClient, session: Session, app: Flask
) -> None:
    collective, campaign, delivery = _answered(session, app)
    meeting = Meeting(
        collective_id=collective.id,
        delivery_id=delivery.id,
        status="held",
        starts_at=datetime(2026, 4, 14, 9, 0, tzinfo=UTC),
        ends_at=datetime(2026, 4, 14, 10, 0, tzinfo=UTC),
        ics_uid=f"meeting-{delivery.id}@chorus.localhost",
        outcome_notes="The minister will review the guidance.",
    )
    session.add(meeting)
    session.flush()
    public = other_client.get(_public(collective, campaign)).get_data(as_text=True)
    assert "review the guidance" not in public  # recorded, not published
    meeting.outcome_published_at = datetime(2026, 4, 15, tzinfo=UTC)
    session.flush()
    section = _section(other_client.get(_public(collective, campaign)).get_data(as_text=True))
    assert "Meeting with Department for Work and Pensions on 14 April 2026." in section
    assert "The minister will review the guidance." in section


def test_the_public_page_says_where_the_letter_is_before_any_response(
    session: Session, app: Flask, client: FlaskClient
) -> None:
    """Signers see the delivery and the working-day clock at once; the organiser need not
    publish anything first."""
    today = uk_date(utcnow())
    delivered_on = workdays.add_working_days(today, 0, "england-and-wales")
    # Delivered a month and a half ago (30 working days): the reply is overdue by 10.
    for _ in range(45):
        delivered_on = delivered_on.fromordinal(delivered_on.toordinal() - 1)
        if workdays.working_days_between(delivered_on, today, "england-and-wales") == 30:
            break
    collective, campaign, delivery = delivered_campaign(session, app, delivered_on=delivered_on)
    set_current_collective(session, None)
    page = client.get(_public(collective, campaign)).get_data(as_text=True)
    section = page.split('<section id="delivery"', 1)[1].split("</section>", 1)[0]
    text = " ".join(section.replace("<strong>", "").replace("</strong>", "").split())
    when = f"{delivered_on.day} {delivered_on:%B %Y}"
    assert f"Delivered by email to Department for Work and Pensions on {when}." in text
    assert "Acknowledgement: Overdue by 25 working days" in text
    assert "Reply: Overdue by 10 working days." in text

    # Once answered, the line says when.
    set_current_collective(session, collective.id)
    record_response(session, delivery, kind=ResponseKind.SUBSTANTIVE, channel=ResponseChannel.PAGE)
    set_current_collective(session, None)
    page = client.get(_public(collective, campaign)).get_data(as_text=True)
    section = page.split('<section id="delivery"', 1)[1].split("</section>", 1)[0]
    assert (
        f"Acknowledged on {today.day} {today:%B %Y}; replied on {today.day} {today:%B %Y}."
        in " ".join(section.split())
    )


def test_a_collecting_campaign_has_no_delivery_section(
    session: Session, app: Flask, client: FlaskClient
) -> None:
    collective, campaign, _ = delivered_campaign(session, app)
    campaign.state = "collecting"
    session.flush()
    set_current_collective(session, None)
    statements: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    engine = app.extensions["chorus.db"].engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        page = client.get(_public(collective, campaign)).get_data(as_text=True)
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert 'id="delivery"' not in page
    assert 'id="response"' not in page
    # The public page of a collecting campaign is busy (people sign from it): it asks
    # nothing about deliveries, responses or meetings.
    assert statements, "the listener saw the page's queries"
    asked = [q for q in statements if re.search(r"\b(deliveries|meetings|ask_assessments)\b", q)]
    assert asked == []
