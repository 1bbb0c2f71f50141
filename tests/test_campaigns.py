"""Campaigns: drafting, review, publication as immutable versions, public pages."""

from __future__ import annotations

import hashlib
import time
from html.parser import HTMLParser

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import form_post
from tests.factories import add_member, login, make_collective, make_user
from web.campaigns import services
from web.campaigns.markdown import render_markdown
from web.campaigns.models import Campaign, LetterRevision, LetterVersion
from web.collectives.models import Collective, Membership, Role
from web.recipients.models import Recipient
from web.tenancy import set_current_collective, system_scope


@pytest.fixture
def dwp(session: Session) -> Recipient:
    with system_scope(session):
        recipient = Recipient(
            key=f"dwp-test-{time.monotonic_ns()}",
            kind="ministerial_department",
            name="Department for Work and Pensions",
            short_name="DWP",
            remit_keywords=["benefits", "disability"],
        )
        session.add(recipient)
        session.flush()
    return recipient


def _membership(session: Session, collective: Collective, user_id: int) -> Membership:
    set_current_collective(session, collective.id)
    membership = session.scalar(select(Membership).where(Membership.user_id == user_id))
    assert membership is not None
    return membership


def _ready_campaign(
    session: Session, member: Membership, recipient: Recipient, slug: str = "fix-pip"
) -> Campaign:
    campaign = services.create_campaign(
        session, member, kind="open_letter", title="Fix PIP", slug=slug
    )
    services.update_settings(
        session,
        member,
        campaign,
        title="Fix PIP",
        slug=slug,
        recipient_id=recipient.id,
        addressee_name="",
        addressee_role="Secretary of State for Work and Pensions",
        audience_style="minister",
        signature_target=1000,
        closes_on=None,
    )
    services.save_letter(
        session,
        member,
        campaign,
        subject="PIP assessments are failing disabled people",
        summary="Assessments wrongly refuse support. We ask for a review.",
        body_markdown="Many of us have been refused **wrongly**.\n\n- Long waits\n- Lost forms",
        asks=["Review the assessment guidance", "Meet us within 20 working days"],
        evidence_links=[{"title": "Our survey", "url": "https://example.org/survey"}],
    )
    return campaign


class _Executable(HTMLParser):
    """Collects anything in HTML that a browser could execute or fetch."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {
            "script",
            "img",
            "iframe",
            "object",
            "embed",
            "style",
            "svg",
            "math",
            "form",
            "input",
            "link",
            "meta",
            "base",
        }:
            self.found.append(tag)
        for name, value in attrs:
            if name.startswith("on") or name in {"style", "src", "srcdoc", "formaction"}:
                self.found.append(f"{tag}[{name}]")
            if (
                name == "href"
                and value
                and not value.startswith(("http://", "https://", "mailto:"))
            ):
                self.found.append(f"href={value}")


HOSTILE_MARKDOWN = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[vb](vbscript:msgbox(1))",
    '<a href="javascript:alert(1)">x</a>',
    '<div onclick="alert(1)">x</div>',
    "<p><b><i>unclosed <script>alert(1)",
    "![image](https://evil.example/pixel.png)",
    "<iframe src=https://evil.example></iframe>",
    "<svg onload=alert(1)>",
    "<style>body{display:none}</style>",
    '[x](https://ok.example "title" onmouseover=alert(1))',
    "<<script>script>alert(1)<</script>/script>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "<form action=https://evil.example><input name=p></form>",
    "[ref]\n\n[ref]: javascript:alert(1)",
    "`<script>` and ```\n<script>alert(1)</script>\n```",
]


@pytest.mark.parametrize("source", HOSTILE_MARKDOWN)
def test_hostile_markdown_renders_no_executable_html(source: str) -> None:
    parser = _Executable()
    parser.feed(str(render_markdown(source)))
    assert parser.found == []


@pytest.mark.parametrize(
    "source",
    [
        "- " * 10_000 + "item",  # 10,000 nested lists, within the body's size limit
        "1. " * 10_000 + "item",
        ">" * 10_000 + " deep",
        "<div>" * 10_000,
        "[" * 10_000,
        "*a " * 10_000,
    ],
    ids=["bullets", "numbers", "quotes", "divs", "brackets", "emphasis"],
)
def test_deeply_nested_markdown_is_capped_and_safe(source: str) -> None:
    html = str(render_markdown(source))
    parser = _Executable()
    parser.feed(html)
    assert parser.found == []
    assert html.count("<ul>") + html.count("<ol>") + html.count("<blockquote>") <= 20


def test_links_keep_only_safe_schemes_and_get_rel() -> None:
    html = str(render_markdown("[a](https://example.org) [b](mailto:x@example.org) [c](ftp://x)"))
    assert 'href="https://example.org"' in html
    assert 'href="mailto:x@example.org"' in html
    assert "ftp://" not in html.rsplit("href", maxsplit=1)[-1] or 'href="ftp' not in html
    assert 'rel="noopener noreferrer nofollow"' in html


def test_slugs_are_unique_within_a_collective_only(session: Session, app: Flask) -> None:
    a_owner, b_owner = make_user(session, app), make_user(session, app)
    a, b = make_collective(session, a_owner), make_collective(session, b_owner)
    a_member = _membership(session, a, a_owner.id)
    services.create_campaign(session, a_member, kind="open_letter", title="One", slug="same")
    with pytest.raises(services.CampaignError, match="already uses"):
        services.create_campaign(session, a_member, kind="open_letter", title="Two", slug="same")
    b_member = _membership(session, b, b_owner.id)
    other = services.create_campaign(session, b_member, kind="open_letter", title="B", slug="same")
    assert other.collective_id == b.id


def test_publishing_an_invalid_campaign_lists_every_problem_at_once(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    member = _membership(session, collective, owner.id)
    campaign = services.create_campaign(
        session, member, kind="meeting_request", title="Meet us", slug="meet-us"
    )
    session.flush()
    login(client, owner)
    page = f"/app/{collective.slug}/campaigns/{campaign.id}/"
    response = form_post(client, page, {}, action=f"{page}publish")
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "There is a problem" in body
    for message in (
        "Choose who the letter is addressed to.",
        "Give the addressee",
        "Write a subject line.",
        "Write an executive summary.",
        "Write the body of the letter.",
        "Add at least one ask",
        "Say what the meeting is for.",
        "Say who would attend the meeting.",
        "Propose at least 3 times",
    ):
        assert message in body, message
    session.expire_all()
    assert session.get(Campaign, campaign.id).state == "draft"
    assert session.scalars(select(LetterVersion)).all() == []


def test_summary_limit_follows_the_reader(session: Session, app: Flask, dwp: Recipient) -> None:
    owner = make_user(session, app)
    member = _membership(session, make_collective(session, owner), owner.id)
    campaign = _ready_campaign(session, member, dwp)
    campaign.summary = " ".join(["word"] * 130)
    assert [p.field for p in services.publication_problems(campaign)] == ["summary"]
    campaign.audience_style = "policy_team"
    assert services.publication_problems(campaign) == []


def test_meeting_requests_need_three_slots_each_with_a_place(
    session: Session, app: Flask, dwp: Recipient
) -> None:
    owner = make_user(session, app)
    member = _membership(session, make_collective(session, owner), owner.id)
    campaign = services.create_campaign(
        session, member, kind="meeting_request", title="M", slug="m"
    )
    with pytest.raises(services.CampaignError, match="both a date and time and a place"):
        services.save_letter(
            session,
            member,
            campaign,
            subject="s",
            summary="s",
            body_markdown="b",
            asks=["a"],
            evidence_links=[],
            meeting_slots=[{"when": "Monday 10:00", "place": ""}],
        )
    services.save_letter(
        session,
        member,
        campaign,
        subject="s",
        summary="s",
        body_markdown="b",
        asks=["a"],
        evidence_links=[],
        meeting_purpose="Talk",
        meeting_attendees="Us",
        meeting_slots=[{"when": f"Day {i}", "place": "online"} for i in range(2)],
    )
    assert "meeting_slots" in [p.field for p in services.publication_problems(campaign)]


def test_every_save_is_a_revision_and_two_revisions_can_be_compared(
    client: FlaskClient, session: Session, app: Flask, dwp: Recipient
) -> None:
    owner = make_user(session, app, name="Rita Reviser")
    collective = make_collective(session, owner)
    member = _membership(session, collective, owner.id)
    campaign = _ready_campaign(session, member, dwp)
    login(client, owner)
    letter = f"/app/{collective.slug}/campaigns/{campaign.id}/letter"
    response = form_post(
        client,
        letter,
        {
            "subject": "PIP assessments must change",
            "summary": campaign.summary,
            "body_markdown": campaign.body_markdown,
            "asks-0": "Review the assessment guidance",
            "asks-1": "Publish the review",
            "evidence_links-0-title": "Our survey",
            "evidence_links-0-url": "https://example.org/survey",
        },
    )
    assert response.status_code == 302
    revisions = session.scalars(
        select(LetterRevision)
        .where(LetterRevision.campaign_id == campaign.id)
        .order_by(LetterRevision.number)
    ).all()
    assert [r.number for r in revisions] == [1, 2]
    assert revisions[1].author_id == owner.id
    assert revisions[1].content["subject"] == "PIP assessments must change"
    listing = client.get(f"/app/{collective.slug}/campaigns/{campaign.id}/revisions").get_data(
        as_text=True
    )
    assert "Rita Reviser" in listing
    diff = client.get(
        f"/app/{collective.slug}/campaigns/{campaign.id}/revisions/compare?from=1&to=2"
    )
    text = diff.get_data(as_text=True)
    assert diff.status_code == 200
    removed = '<span aria-hidden="true">− </span>PIP assessments are failing disabled people'
    assert f"Removed: </span>{removed}" in text
    assert 'Added: </span><span aria-hidden="true">+ </span>PIP assessments must change' in text
    assert "2. Publish the review" in text
    assert (
        client.get(
            f"/app/{collective.slug}/campaigns/{campaign.id}/revisions/compare?from=1&to=9"
        ).status_code
        == 404
    )
    assert (
        client.get(
            f"/app/{collective.slug}/campaigns/{campaign.id}/revisions/compare?from=x"
        ).status_code
        == 400
    )


def test_review_needs_another_organiser_when_there_are_two(
    session: Session, app: Flask, dwp: Recipient
) -> None:
    owner, colleague = make_user(session, app), make_user(session, app)
    collective = make_collective(session, owner)
    add_member(session, collective, colleague, Role.ORGANISER)
    author = _membership(session, collective, owner.id)
    reviewer = _membership(session, collective, colleague.id)
    campaign = _ready_campaign(session, author, dwp)
    assert services.needs_second_approver(session, collective)

    with pytest.raises(services.CampaignError, match="Submit it for review first"):
        services.publish(session, author, collective, campaign)
    services.submit_for_review(session, author, campaign)
    with pytest.raises(services.CampaignError, match="waiting for review"):
        services.save_letter(
            session,
            author,
            campaign,
            subject="x",
            summary="x",
            body_markdown="x",
            asks=["x"],
            evidence_links=[],
        )
    with pytest.raises(services.CampaignError, match="Someone other than"):
        services.approve(session, author, campaign)
    with pytest.raises(services.CampaignError, match="Say what should change"):
        services.request_changes(session, reviewer, campaign, "   ")
    services.request_changes(session, reviewer, campaign, "Shorter summary, please")
    assert campaign.state == "draft"
    services.submit_for_review(session, author, campaign)
    with pytest.raises(services.CampaignError, match="Submit it for review first"):
        services.publish(session, author, collective, campaign)
    services.approve(session, reviewer, campaign, "Good to go")
    version = services.publish(session, author, collective, campaign)
    assert campaign.state == "collecting"
    assert version.number == 1
    actions = [e.action for e in services.review_events(session, campaign)]
    assert actions == ["submitted", "changes_requested", "submitted", "approved"]


def test_second_approver_setting_can_be_turned_off_or_forced(session: Session, app: Flask) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    assert not services.needs_second_approver(session, collective)
    collective.second_approver = "on"
    assert services.needs_second_approver(session, collective)
    add_member(session, collective, make_user(session, app), Role.ORGANISER)
    set_current_collective(session, collective.id)
    collective.second_approver = "off"
    assert not services.needs_second_approver(session, collective)
    collective.second_approver = "auto"
    assert services.needs_second_approver(session, collective)


def test_state_guards(session: Session, app: Flask, dwp: Recipient) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    member = _membership(session, collective, owner.id)
    campaign = _ready_campaign(session, member, dwp)
    with pytest.raises(services.CampaignError, match="cannot become closed"):
        services.close_campaign(session, member, campaign)
    with pytest.raises(services.CampaignError, match="Only a letter waiting for review"):
        services.approve(session, member, campaign)
    services.publish(session, member, collective, campaign)
    with pytest.raises(services.CampaignError, match="has not changed"):
        services.publish(session, member, collective, campaign)
    services.close_campaign(session, member, campaign)
    with pytest.raises(services.CampaignError, match="closed"):
        services.save_letter(
            session,
            member,
            campaign,
            subject="x",
            summary="x",
            body_markdown="x",
            asks=["x"],
            evidence_links=[],
        )
    with pytest.raises(services.CampaignError, match="cannot"):
        services.publish(session, member, collective, campaign)


def test_publication_freezes_a_version_named_by_its_sha256_and_edits_make_new_versions(
    client: FlaskClient, session: Session, app: Flask, dwp: Recipient
) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    member = _membership(session, collective, owner.id)
    campaign = _ready_campaign(session, member, dwp)
    v1 = services.publish(session, member, collective, campaign)
    assert v1.sha256 == hashlib.sha256(v1.canonical_text.encode()).hexdigest()
    assert v1.content["asks"] == [
        "Review the assessment guidance",
        "Meet us within 20 working days",
    ]

    services.save_letter(
        session,
        member,
        campaign,
        subject="A sharper subject",
        summary=campaign.summary,
        body_markdown=campaign.body_markdown,
        asks=campaign.asks,
        evidence_links=campaign.evidence_links,
    )
    v2 = services.publish(session, member, collective, campaign)
    assert v2.number == 2
    assert v2.sha256 != v1.sha256
    session.refresh(v1)
    assert v1.content["subject"] == "PIP assessments are failing disabled people"  # unchanged

    page = client.get(f"/{collective.slug}/{campaign.slug}").get_data(as_text=True)
    assert "A sharper subject" in page
    assert v2.sha256 in page
    old = client.get(f"/{collective.slug}/{campaign.slug}/versions/1").get_data(as_text=True)
    assert "PIP assessments are failing disabled people" in old
    assert "earlier version" in old
    assert client.get(f"/{collective.slug}/{campaign.slug}/versions/3").status_code == 404


def test_canonical_text_is_stable_across_unicode_forms_and_line_endings() -> None:
    composed = {"subject": "Caf\u00e9", "body_markdown": "a\r\nb"}
    decomposed = {"body_markdown": "a\nb", "subject": "Cafe\u0301"}
    assert services.canonical_text(composed) == services.canonical_text(decomposed)


def test_public_page_shows_the_published_letter_with_sharing_metadata(
    client: FlaskClient, session: Session, app: Flask, dwp: Recipient
) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner, name="Disability Voices")
    member = _membership(session, collective, owner.id)
    campaign = _ready_campaign(session, member, dwp)
    assert client.get(f"/{collective.slug}/{campaign.slug}").status_code == 404  # still a draft
    services.publish(session, member, collective, campaign)
    session.flush()
    response = client.get(f"/{collective.slug}/{campaign.slug}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for expected in (
        "Fix PIP",
        "Department for Work and Pensions",
        "Secretary of State for Work and Pensions",
        "Dear Secretary of State for Work and Pensions,",
        "<strong>wrongly</strong>",
        "<li>Review the assessment guidance</li>",
        'property="og:title" content="Fix PIP"',
        'name="twitter:card"',
        "0</span> verified signatures of a target of 1,000",
        'id="sign"',
    ):
        assert expected in html, expected
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "<script" not in html  # the public page needs no JavaScript

    poster = client.get(f"/{collective.slug}/{campaign.slug}/poster")
    assert poster.status_code == 200
    assert "<svg" in poster.get_data(as_text=True)
    embed = client.get(f"/{collective.slug}/{campaign.slug}/embed")
    assert embed.status_code == 200
    assert "frame-ancestors *" in embed.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in embed.headers
    assert f"/{collective.slug}/{campaign.slug}#sign" in embed.get_data(as_text=True)


def test_viewers_read_but_cannot_edit_or_publish(
    client: FlaskClient, session: Session, app: Flask, dwp: Recipient
) -> None:
    owner, viewer = make_user(session, app), make_user(session, app)
    collective = make_collective(session, owner)
    add_member(session, collective, viewer, Role.VIEWER)
    campaign = _ready_campaign(session, _membership(session, collective, owner.id), dwp)
    session.flush()
    login(client, viewer)
    base = f"/app/{collective.slug}/campaigns/{campaign.id}/"
    assert client.get(base).status_code == 200
    edit = form_post(
        client, f"{base}letter", {"subject": "Hijacked", "summary": "x", "body_markdown": "x"}
    )
    assert edit.status_code == 403
    publish = form_post(client, base, {}, action=f"{base}publish")
    assert publish.status_code == 403
    session.expire_all()
    stored = session.get(Campaign, campaign.id)
    assert stored.subject != "Hijacked"
    assert stored.state == "draft"


def test_a_one_megabyte_body_gets_a_clear_answer(
    client: FlaskClient, session: Session, app: Flask, dwp: Recipient
) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    campaign = _ready_campaign(session, _membership(session, collective, owner.id), dwp)
    session.flush()
    login(client, owner)
    letter = f"/app/{collective.slug}/campaigns/{campaign.id}/letter"
    response = form_post(
        client, letter, {"subject": "s", "summary": "s", "body_markdown": "x" * 1_000_000}
    )
    assert response.status_code in (413, 422)
    assert "too large" in response.get_data(
        as_text=True
    ) or "The body must be 60000 characters or fewer." in response.get_data(as_text=True)
    big = form_post(
        client, letter, {"subject": "s", "summary": "s", "body_markdown": "x" * 100_000}
    )
    assert big.status_code == 422
    assert "The body must be 60000 characters or fewer." in big.get_data(as_text=True)
    session.expire_all()
    assert session.get(Campaign, campaign.id).revision_count == 1


def test_new_campaign_form_through_the_web(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    login(client, owner)
    page = f"/app/{collective.slug}/campaigns/new"
    bad = form_post(client, page, {"kind": "petition", "title": "", "slug": "Bad Slug"})
    assert bad.status_code == 422
    body = bad.get_data(as_text=True)
    assert "Enter a title." in body
    ok = form_post(client, page, {"kind": "open_letter", "title": "Fix PIP", "slug": "fix-pip"})
    assert ok.status_code == 302
    dashboard = client.get(f"/app/{collective.slug}/").get_data(as_text=True)
    assert "Fix PIP" in dashboard
    assert "Draft" in dashboard


def test_published_versions_cannot_be_changed_even_with_raw_sql(
    session: Session, app: Flask, dwp: Recipient
) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    owner = make_user(session, app)
    collective = make_collective(session, owner)
    member = _membership(session, collective, owner.id)
    version = services.publish(session, member, collective, _ready_campaign(session, member, dwp))
    with pytest.raises(DBAPIError, match="permission denied"), session.begin_nested():
        session.execute(
            text("update letter_versions set canonical_text = 'forged' where id = :id"),
            {"id": version.id},
        )
    session.expire_all()
    assert session.get(LetterVersion, version.id).canonical_text != "forged"
