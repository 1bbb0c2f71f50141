"""Chasers (issue #6, §6): polite reminders on the published schedule, with a frozen
clock; exactly one email per reminder through the real outbox, worker and SMTP server,
even when two sweeps run at once; none after a response or while paused; every one on
the delivery's timeline."""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from tests.conftest import Mailbox, csrf_token, run_worker
from tests.factories import add_member, login, make_collective, make_user
from web.accounts.models import User
from web.campaigns import services as campaigns
from web.campaigns.models import Campaign
from web.collectives.models import Collective, Membership, Role
from web.db import utcnow
from web.delivery import workdays
from web.delivery.chasers import run_chasers
from web.delivery.models import Chaser, Delivery, DeliveryEvent, EventKind
from web.delivery.services import (
    issue_secrets,
    placeholder_secrets,
    reply_address,
    response_url,
    timeline,
)
from web.http import database
from web.mail import make_message_id
from web.outbox import OutboxMessage, attach_dispatcher
from web.recipients.models import Recipient
from web.responses.models import ResponseChannel, ResponseKind
from web.responses.services import record_response
from web.tenancy import set_current_collective, system_scope
from workers.context import use_app
from workers.jobs.chasers import send_chasers

NATION = "england-and-wales"
DELIVERED = date(2026, 3, 2)  # a Monday; the reply target of 20 working days ends 30 March
TO = "correspondence@dwp.example.gov.uk"
ESCALATION = "permanent.secretary@dwp.example.gov.uk"
_seq = itertools.count(1)


# --- helpers (test_closing_loop.py uses them too) ----------------------------------------


def _published_with(session: Session, app: Flask, asks: list[str]) -> tuple[Collective, Campaign]:
    """As tests.test_signatures._published, with these asks in the letter."""
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    set_current_collective(session, collective.id)
    member = session.scalar(select(Membership).where(Membership.user_id == owner.id))
    assert member is not None
    with system_scope(session):
        recipient = Recipient(
            key=f"dwp-{time.monotonic_ns()}",
            kind="ministerial_department",
            name="Department for Work and Pensions",
        )
        session.add(recipient)
        session.flush()
    slug = f"chased-{next(_seq)}"
    campaign = campaigns.create_campaign(
        session, member, kind="open_letter", title="Fair PIP", slug=slug
    )
    campaigns.update_settings(
        session,
        member,
        campaign,
        title="Fair PIP",
        slug=slug,
        recipient_id=recipient.id,
        addressee_name="",
        addressee_role="Secretary of State",
        audience_style="minister",
        signature_target=None,
        closes_on=None,
    )
    campaigns.save_letter(
        session,
        member,
        campaign,
        subject="Fair assessments for PIP",
        summary="Summary.",
        body_markdown="Body.",
        asks=asks,
        evidence_links=[],
    )
    campaigns.publish(session, member, collective, campaign)
    session.flush()
    return collective, campaign


def delivered_campaign(
    session: Session,
    app: Flask,
    *,
    escalation: str = "",
    delivered_on: date = DELIVERED,
    method: str = "email",
    asks: list[str] | None = None,
) -> tuple[Collective, Campaign, Delivery]:
    """A published campaign whose letter was sent (a Delivery row built as the sending
    service would leave it)."""
    collective, campaign = _published_with(session, app, asks or ["Ask"])
    set_current_collective(session, collective.id)
    campaign.state = "delivered"
    delivery = Delivery(
        collective_id=collective.id,
        campaign_id=campaign.id,
        recipient_name="Department for Work and Pensions",
        method=method,
        status="sent",
        idempotency_key=secrets.token_hex(16),
        to_email=TO if method == "email" else "",
        escalation_email=escalation,
        postal_address="" if method == "email" else "Caxton House\nLondon",
        message_id=make_message_id(),
        sent_at=utcnow(),
        delivered_on=delivered_on,
        nation=NATION,
    )
    placeholder_secrets(delivery)
    session.add(delivery)
    session.flush()
    issue_secrets(app.extensions["chorus.settings"], delivery)
    session.flush()
    return collective, campaign, delivery


def owner_of(session: Session, collective: Collective) -> User:
    set_current_collective(session, collective.id)
    membership = session.scalar(select(Membership).where(Membership.role == Role.OWNER))
    assert membership is not None
    user = session.get(User, membership.user_id)
    assert user is not None
    return user


def sweep(day: date) -> int:
    """The real recurring job, with its clock frozen at `day`."""
    return int(send_chasers(today=day.isoformat()))


def chasers_of(session: Session, delivery: Delivery) -> list[Chaser]:
    set_current_collective(session, delivery.collective_id)
    return list(
        session.scalars(
            select(Chaser)
            .where(Chaser.delivery_id == delivery.id)
            .order_by(Chaser.number)
            .execution_options(populate_existing=True)
        )
    )


def steps(delivery: Delivery) -> list[workdays.ChaserStep]:
    return workdays.chaser_steps(
        DELIVERED, delivery.reply_target_days, NATION, bool(delivery.escalation_email)
    )


# --- the schedule ---------------------------------------------------------------------------


def test_nothing_is_sent_before_the_reply_deadline_has_passed(
    session: Session, app: Flask, work: Any, mailbox: Mailbox
) -> None:
    _, _, delivery = delivered_campaign(session, app)
    deadline = workdays.add_working_days(DELIVERED, 20, NATION)
    assert deadline == date(2026, 3, 30)
    for day in (date(2026, 3, 3), date(2026, 3, 20), deadline):
        assert sweep(day) == 0
    work()
    assert chasers_of(session, delivery) == []
    assert mailbox.to(TO) == []


def test_first_chaser_goes_the_working_day_after_the_deadline_with_the_response_link(
    session: Session, app: Flask, work: Any, mailbox: Mailbox
) -> None:
    settings = app.extensions["chorus.settings"]
    _, _, delivery = delivered_campaign(session, app)
    first = steps(delivery)[0]
    assert first.due_on == date(2026, 3, 31)
    assert sweep(first.due_on) == 1
    work()
    (chaser,) = chasers_of(session, delivery)
    assert (chaser.number, chaser.to_email, chaser.is_escalation) == (1, TO, False)
    (msg,) = mailbox.to(TO)
    assert msg["Subject"] == "Reminder: Fair assessments for PIP (sent 2 March 2026)"
    assert msg["Reply-To"] == reply_address(settings, delivery)
    assert str(msg["In-Reply-To"]).strip() == delivery.message_id
    assert msg["Cc"] is None
    assert str(msg["Message-ID"]).strip() == chaser.message_id
    body = mailbox.text_of(msg)
    assert response_url(settings, delivery) in body
    assert "working day 21" in body
    assert "target for a reply is 20 working days" in body
    assert "Dear Department for Work and Pensions" in body
    html = msg.get_body(preferencelist=("html",))
    assert html is not None
    assert response_url(settings, delivery) in str(html.get_content())
    session.expire_all()
    assert session.get(Delivery, delivery.id).chasers_sent == 1  # type: ignore[union-attr]


def test_second_chaser_goes_ten_working_days_later_across_easter(
    session: Session, app: Flask, work: Any, mailbox: Mailbox
) -> None:
    _, _, delivery = delivered_campaign(session, app)
    first, second = steps(delivery)
    assert sweep(first.due_on) == 1
    # Ten working days after 31 March, skipping Good Friday and Easter Monday.
    assert second.due_on == date(2026, 4, 16)
    assert sweep(date(2026, 4, 15)) == 0
    assert sweep(second.due_on) == 1
    work()
    assert [c.number for c in chasers_of(session, delivery)] == [1, 2]
    assert [c.due_on for c in chasers_of(session, delivery)] == [first.due_on, second.due_on]
    assert len(mailbox.to(TO)) == 2


def test_without_an_escalation_contact_there_is_no_third_chaser(
    session: Session, app: Flask, work: Any, mailbox: Mailbox
) -> None:
    _, _, delivery = delivered_campaign(session, app)
    for day in (date(2026, 3, 31), date(2026, 4, 16), date(2026, 4, 30), date(2026, 6, 1)):
        sweep(day)
    work()
    assert [c.number for c in chasers_of(session, delivery)] == [1, 2]
    assert len(mailbox.to(TO)) == 2


def test_the_third_chaser_goes_only_to_the_escalation_contact_and_never_a_fourth(
    session: Session, app: Flask, work: Any, mailbox: Mailbox
) -> None:
    _, _, delivery = delivered_campaign(session, app, escalation=ESCALATION)
    third = steps(delivery)[2]
    assert third.due_on == date(2026, 4, 30)
    days = [date(2026, 3, 31), date(2026, 4, 16), date(2026, 4, 29), third.due_on]
    days += [date(2026, 5, 15), date(2026, 6, 1), date(2026, 9, 1), date(2027, 3, 1)]
    sent = [sweep(day) for day in days]
    assert sent == [1, 1, 0, 1, 0, 0, 0, 0]
    work()
    chasers = chasers_of(session, delivery)
    assert [(c.number, c.to_email, c.is_escalation) for c in chasers] == [
        (1, TO, False),
        (2, TO, False),
        (3, ESCALATION, True),
    ]
    assert len(mailbox.to(TO)) == 2  # To: the escalation only; nobody copied
    (escalated,) = mailbox.to(ESCALATION)
    assert escalated["Cc"] is None
    assert str(escalated["To"]) == ESCALATION
    assert "escalation contact" in mailbox.text_of(escalated)
    assert "the last we will send" in mailbox.text_of(escalated)
    session.expire_all()
    assert session.get(Delivery, delivery.id).chasers_sent == 3  # type: ignore[union-attr]


def test_no_chaser_is_sent_on_a_weekend_or_bank_holiday(
    session: Session, app: Flask, work: Any
) -> None:
    _, _, delivery = delivered_campaign(session, app)
    assert sweep(date(2026, 3, 31)) == 1
    # Chaser 2 is due 16 April; a sweep on Good Friday (a holiday) and on the Saturday
    # after the due day sends nothing, the following Monday catches up.
    assert sweep(date(2026, 4, 3)) == 0
    assert sweep(date(2026, 4, 18)) == 0
    assert sweep(date(2026, 4, 20)) == 1
    assert [c.due_on for c in chasers_of(session, delivery)][-1] == date(2026, 4, 20)


def test_no_chaser_after_any_response_but_a_bounce_is_not_one(
    session: Session, app: Flask, work: Any, mailbox: Mailbox
) -> None:
    _, _, acknowledged = delivered_campaign(session, app)
    _, _, bounced = delivered_campaign(session, app)
    set_current_collective(session, acknowledged.collective_id)
    record_response(
        session,
        acknowledged,
        kind=ResponseKind.ACKNOWLEDGEMENT,
        channel=ResponseChannel.PAGE,
        responder_name="A. Official",
    )
    set_current_collective(session, bounced.collective_id)
    record_response(session, bounced, kind=ResponseKind.BOUNCE, channel=ResponseChannel.EMAIL)
    session.flush()
    assert sweep(date(2026, 3, 31)) == 1
    assert sweep(date(2026, 4, 16)) == 1
    work()
    assert chasers_of(session, acknowledged) == []
    assert [c.number for c in chasers_of(session, bounced)] == [1, 2]


def test_a_response_between_chasers_stops_the_rest(session: Session, app: Flask, work: Any) -> None:
    _, _, delivery = delivered_campaign(session, app, escalation=ESCALATION)
    assert sweep(date(2026, 3, 31)) == 1
    session.expire_all()
    set_current_collective(session, delivery.collective_id)
    fresh = session.get(Delivery, delivery.id)
    assert fresh is not None
    record_response(session, fresh, kind=ResponseKind.HOLDING, channel=ResponseChannel.EMAIL)
    session.flush()
    for day in (date(2026, 4, 16), date(2026, 4, 30)):
        assert sweep(day) == 0
    assert [c.number for c in chasers_of(session, delivery)] == [1]


def test_posted_letters_are_not_chased(session: Session, app: Flask, work: Any) -> None:
    _, _, delivery = delivered_campaign(session, app, method="post")
    assert sweep(date(2026, 3, 31)) == 0
    assert chasers_of(session, delivery) == []


def test_every_chaser_is_on_the_timeline(session: Session, app: Flask, work: Any) -> None:
    _, _, delivery = delivered_campaign(session, app, escalation=ESCALATION)
    for day in (date(2026, 3, 31), date(2026, 4, 16), date(2026, 4, 30)):
        sweep(day)
    session.expire_all()
    set_current_collective(session, delivery.collective_id)
    events = [e for e in timeline(session, delivery) if e.kind == EventKind.CHASER_SENT.value]
    assert [e.summary for e in events] == [
        f"Reminder 1 sent to {TO}.",
        f"Reminder 2 sent to {TO}.",
        f"Reminder 3 sent to {ESCALATION} (the escalation contact).",
    ]
    assert [e.detail["number"] for e in events] == [1, 2, 3]
    assert [e.detail["sent_on"] for e in events] == ["2026-03-31", "2026-04-16", "2026-04-30"]


# --- exactly once -----------------------------------------------------------------------------


def test_running_the_sweep_twice_on_one_day_sends_each_chaser_once(
    session: Session, app: Flask, work: Any, mailbox: Mailbox
) -> None:
    _, _, delivery = delivered_campaign(session, app)
    _, _, other = delivered_campaign(session, app)
    assert sweep(date(2026, 3, 31)) == 2
    assert sweep(date(2026, 3, 31)) == 0
    assert sweep(date(2026, 4, 1)) == 0
    work()
    assert len(chasers_of(session, delivery)) == 1
    assert len(chasers_of(session, other)) == 1
    assert len(mailbox.to(TO)) == 2  # one per delivery, both to the same department
    assert len({m["Message-ID"] for m in mailbox.to(TO)}) == 2


def test_a_rolled_back_sweep_sends_nothing(
    session: Session, app: Flask, work: Any, mailbox: Mailbox
) -> None:
    _, _, delivery = delivered_campaign(session, app)
    job_session = database(app).new_session()
    attach_dispatcher(job_session, app.extensions["chorus.dispatcher"])
    try:
        with app.app_context(), system_scope(job_session):
            sent = run_chasers(job_session, app.extensions["chorus.settings"], date(2026, 3, 31))
            assert len(sent) == 1
            job_session.rollback()
    finally:
        job_session.close()
    work()
    assert mailbox.to(TO) == []
    assert chasers_of(session, delivery) == []
    # The next sweep sends it, once.
    assert sweep(date(2026, 3, 31)) == 1
    work()
    assert len(mailbox.to(TO)) == 1


@pytest.mark.live
def test_two_sweeps_racing_send_each_chaser_exactly_once(
    live_app_factory: Any, live_db: str, mailbox: Mailbox, redis: Any
) -> None:
    app: Flask = live_app_factory()
    db = database(app)
    settings = app.extensions["chorus.settings"]
    with app.app_context():
        s = db.new_session()
        for _ in range(3):
            delivered_campaign(s, app)
        s.commit()
        s.close()

    barrier = threading.Barrier(4)

    def run(_: int) -> int:
        with app.app_context():
            own = db.new_session()
            attach_dispatcher(own, app.extensions["chorus.dispatcher"])
            try:
                with system_scope(own):
                    barrier.wait(timeout=10)
                    sent = run_chasers(own, settings, date(2026, 3, 31), checkpoint=own.commit)
                    own.commit()
                    return len(sent)
            finally:
                own.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, range(4)))
    assert sum(results) == 3
    with db.engine.connect() as conn:
        conn.execute(text("select set_config('app.all_collectives', 'on', false)"))
        assert conn.scalar(text("select count(*) from chasers")) == 3
        assert (
            conn.scalar(text("select count(*) from delivery_events where kind = 'chaser_sent'"))
            == 3
        )
        assert (
            conn.scalar(
                text(
                    "select count(*) from outbox_messages where kind = 'email' "
                    "and payload->>'subject' like 'Reminder:%'"
                )
            )
            == 3
        )
        sent_counts = conn.execute(
            text("select chasers_sent from deliveries order by id")
        ).scalars()
        assert list(sent_counts) == [1, 1, 1]
    use_app(app)
    try:
        run_worker(app, ("email",))
    finally:
        use_app(None)
    assert len(mailbox.to(TO)) == 3
    assert len({m["References"] for m in mailbox.to(TO)}) == 3  # one per delivery
    db.engine.dispose()


# --- pausing ----------------------------------------------------------------------------------


def _follow_up(collective: Collective, campaign: Campaign, delivery: Delivery) -> str:
    return f"/app/{collective.slug}/campaigns/{campaign.id}/deliveries/{delivery.id}/follow-up"


def test_organisers_pause_and_resume_chasers(
    client: FlaskClient, session: Session, app: Flask, work: Any, mailbox: Mailbox
) -> None:
    collective, campaign, delivery = delivered_campaign(session, app, escalation=ESCALATION)
    login(client, owner_of(session, collective))
    page = _follow_up(collective, campaign, delivery)
    html = client.get(page).get_data(as_text=True)
    assert "31 March 2026 (working day 21)" in html
    assert "16 April 2026 (working day 31)" in html
    assert "30 April 2026 (working day 41)" in html
    assert ESCALATION in html
    assert "published schedule" in html
    response = client.post(
        f"{page.removesuffix('/follow-up')}/chasers/pause", data={"csrf_token": csrf_token(html)}
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith("#chasers")
    assert sweep(date(2026, 3, 31)) == 0
    assert sweep(date(2026, 4, 20)) == 0
    html = client.get(page).get_data(as_text=True)
    assert "Reminders are paused" in html
    assert "Resume reminders" in html
    response = client.post(
        f"{page.removesuffix('/follow-up')}/chasers/resume", data={"csrf_token": csrf_token(html)}
    )
    assert response.status_code == 303
    # The reminder that fell due while paused goes at the next sweep, and the next one
    # waits ten working days from then.
    assert sweep(date(2026, 4, 21)) == 1
    assert sweep(date(2026, 4, 30)) == 0
    assert sweep(date(2026, 5, 5)) == 0
    assert sweep(date(2026, 5, 6)) == 1  # 21 April + 10 working days (4 May is a holiday)
    work()
    assert len(mailbox.to(TO)) == 2
    html = client.get(page).get_data(as_text=True)
    assert "Sent on 21 April 2026" in html
    set_current_collective(session, collective.id)
    kinds = [e.kind for e in timeline(session, delivery)]
    assert kinds.count(EventKind.CHASERS_PAUSED.value) == 1
    assert kinds.count(EventKind.CHASERS_RESUMED.value) == 1


def test_viewers_cannot_pause_chasers_and_a_missing_token_is_refused(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    collective, campaign, delivery = delivered_campaign(session, app)
    viewer = make_user(session, app)
    add_member(session, collective, viewer, Role.VIEWER)
    login(client, viewer)
    page = _follow_up(collective, campaign, delivery)
    html = client.get(page).get_data(as_text=True)
    assert "Pause reminders" not in html
    action = f"{page.removesuffix('/follow-up')}/chasers/pause"
    refused = client.post(action, data={"csrf_token": csrf_token(html)})
    assert refused.status_code == 403
    assert "Only owners or organisers" in refused.get_data(as_text=True)
    assert client.post(action, data={}).status_code == 400
    session.expire_all()
    set_current_collective(session, collective.id)
    assert session.get(Delivery, delivery.id).chasers_paused is False  # type: ignore[union-attr]


def test_another_collectives_delivery_is_not_found(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    collective, campaign, _ = delivered_campaign(session, app)
    _, _, theirs = delivered_campaign(session, app)
    login(client, owner_of(session, collective))
    page = _follow_up(collective, campaign, theirs)
    assert client.get(page).status_code == 404
    html = client.get(f"/app/{collective.slug}/campaigns/{campaign.id}/updates").get_data(
        as_text=True
    )
    response = client.post(
        f"{page.removesuffix('/follow-up')}/chasers/pause",
        data={"csrf_token": csrf_token(html)},
    )
    assert response.status_code == 404
    session.expire_all()
    with system_scope(session):
        row = session.execute(
            select(Delivery.chasers_paused).where(Delivery.id == theirs.id),
            execution_options={"all_collectives": True},
        ).scalar_one()
    assert row is False


def test_the_published_schedule_page_explains_the_rules(client: FlaskClient) -> None:
    response = client.get("/chasers")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<h1>When Chorus sends reminders</h1>" in html
    for line in workdays.schedule_description(20):
        assert str(line).replace("'", "&#39;") in html
    assert "Scotland" in html


def test_chaser_count_in_outbox_matches_rows(session: Session, app: Flask, work: Any) -> None:
    """The outbox holds exactly one reminder email per Chaser row."""
    _, _, delivery = delivered_campaign(session, app, escalation=ESCALATION)
    for day in (date(2026, 3, 31), date(2026, 3, 31), date(2026, 4, 16), date(2026, 4, 30)):
        sweep(day)
    session.expire_all()
    emails = session.scalar(
        select(func.count())
        .select_from(OutboxMessage)
        .where(
            OutboxMessage.kind == "email",
            OutboxMessage.collective_id == delivery.collective_id,
            OutboxMessage.payload["subject"].astext.like("Reminder:%"),
        )
    )
    assert emails == len(chasers_of(session, delivery)) == 3
    set_current_collective(session, delivery.collective_id)
    assert (
        session.scalar(
            select(func.count())
            .select_from(DeliveryEvent)
            .where(
                DeliveryEvent.delivery_id == delivery.id,
                DeliveryEvent.kind == EventKind.CHASER_SENT.value,
            )
        )
        == 3
    )
