"""Public accountability (issue #6 §10): a page per department with the letters it
received through Chorus, the median working days to acknowledge and to reply, and
the share answered on time, computed only from what Chorus recorded.

The fixtures straddle Christmas 2025 (England and Wales: Thursday 25 and Friday 26
December and Thursday 1 January are bank holidays; Scotland adds Friday 2 January),
and every expected figure was counted by hand, day by day, in the comments."""

from __future__ import annotations

from datetime import UTC, date, datetime

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from tests.test_department_inbox import body, deliver, make_campaign, make_department
from web.db import utcnow
from web.delivery.workdays import uk_date
from web.recipients.models import Recipient
from web.responses import department as services
from web.tenancy import set_current_collective


def at(day: date, hour: int = 10) -> datetime:
    """A moment on `day` in the UK (GMT in winter, so UTC is the UK time)."""
    return datetime(day.year, day.month, day.day, hour, 0, tzinfo=UTC)


def christmas_department(session: Session, app: Flask) -> Recipient:
    """Five letters to one department across Christmas 2025, one from a campaign that
    was never published."""
    dwp = make_department(session, "Department for Work and Pensions", ["dwp.gov.uk"])
    public = make_campaign(
        session, app, title="Fair PIP assessments", recipient=dwp, collective_name="Claimants"
    )
    other = make_campaign(
        session, app, title="Carers allowance now", recipient=dwp, collective_name="Carers"
    )
    secret = make_campaign(
        session,
        app,
        title="Secret draft letter",
        recipient=dwp,
        collective_name="Quiet Collective",
        publish=False,
    )
    # L1, Tue 23 Dec: Wed 24 Dec is day 1 (ack 1); 25, 26 Dec holidays, 27-28 weekend,
    # 29 (2), 30 (3), 31 (4), 1 Jan holiday, 2 Jan (5), 3-4 weekend, Mon 5 Jan (6).
    deliver(
        session,
        app,
        public,
        dwp,
        date(2025, 12, 23),
        acknowledged_at=at(date(2025, 12, 24)),
        replied_at=at(date(2026, 1, 5)),
    )
    # L2, Fri 19 Dec: 22 (1), 23 (2), 24 (3), 29 (4), 30 (5), 31 (6), Fri 2 Jan (7) = ack 7;
    # then 5-9 Jan (8-12), 12-16 (13-17), 19-23 (18-22), 26-30 (23-27): reply on day 27,
    # late against a target of 20.
    deliver(
        session,
        app,
        other,
        dwp,
        date(2025, 12, 19),
        acknowledged_at=at(date(2026, 1, 2)),
        replied_at=at(date(2026, 1, 30)),
    )
    # L3, Mon 15 Dec (unpublished campaign): 16 Dec (1) = ack 1; 17 (2), 18 (3), 19 (4),
    # 22 (5), 23 (6), 24 (7), 29 (8), 30 (9), Wed 31 Dec (10) = reply 10, on time.
    deliver(
        session,
        app,
        secret,
        dwp,
        date(2025, 12, 15),
        acknowledged_at=at(date(2025, 12, 16)),
        replied_at=at(date(2025, 12, 31)),
    )
    # L4, Wed 24 Dec, never answered: long past its deadline, so judged and late.
    deliver(session, app, public, dwp, date(2025, 12, 24))
    # L5, delivered today, unanswered: within its deadline, so not judged yet.
    deliver(session, app, other, dwp, uk_date(utcnow()))
    return dwp


def test_medians_and_the_on_time_share_across_christmas(session: Session, app: Flask) -> None:
    dwp = christmas_department(session, app)
    record = services.department_record(session, dwp)
    assert record.letters == 5
    assert (record.acknowledged, record.replied) == (3, 3)
    # Acknowledged on working days [1, 7, 1]: median 1.
    assert record.median_ack_days == services.Figure(1.0, 3)
    # Replied on working days [6, 27, 10]: median 10.
    assert record.median_reply_days == services.Figure(10.0, 3)
    # Judged: L1 (on time), L2 (late), L3 (on time), L4 (overdue, unanswered) = 2 of 4.
    assert record.on_time_share == services.Figure(0.5, 4)
    assert record.on_time == 2
    # Listed: published campaigns only, newest first; the unpublished one is counted.
    titles = [letter.campaign_title for letter in record.public_letters]
    assert titles == [
        "Carers allowance now",
        "Fair PIP assessments",
        "Fair PIP assessments",
        "Carers allowance now",
    ]
    assert record.unlisted == 1
    statuses = [letter.status for letter in record.public_letters]
    assert statuses == [
        "Awaiting acknowledgement",
        "Awaiting acknowledgement",
        "Replied",
        "Replied",
    ]


def test_a_scottish_department_counts_scottish_bank_holidays(session: Session, app: Flask) -> None:
    scot = make_department(
        session, "Scottish Government", ["gov.scot"], nation="scotland", kind="devolved_government"
    )
    world = make_campaign(session, app, title="Bus passes", recipient=scot)
    # Wed 31 Dec -> Tue 6 Jan: 1 and 2 Jan are Scottish holidays; 5 Jan (1), 6 Jan (2).
    # (England and Wales would count 2 Jan too: 3.)
    deliver(session, app, world, scot, date(2025, 12, 31), replied_at=at(date(2026, 1, 6)))
    # Fri 2 Jan (a holiday) -> Wed 7 Jan: 5 (1), 6 (2), 7 (3).
    deliver(session, app, world, scot, date(2026, 1, 2), replied_at=at(date(2026, 1, 7)))
    # Tue 30 Dec -> Mon 5 Jan: 31 Dec (1), 1-2 Jan holidays, 5 Jan (2). (England: 3.)
    deliver(session, app, world, scot, date(2025, 12, 30), replied_at=at(date(2026, 1, 5)))
    record = services.department_record(session, scot)
    assert record.median_reply_days == services.Figure(2.0, 3)
    assert record.on_time_share == services.Figure(1.0, 3)
    # A reply counts as an acknowledgement only when recorded as one (acknowledged_at).
    assert record.median_ack_days == services.Figure(None, 0)


def test_the_public_page_shows_the_figures_without_logging_in(
    session: Session, app: Flask, client: FlaskClient
) -> None:
    dwp = christmas_department(session, app)
    page = client.get(f"/departments/{dwp.key}")
    assert page.status_code == 200
    html = body(page)
    assert "<h1>Department for Work and Pensions</h1>" in html
    assert "computed only from the deliveries and responses recorded in Chorus" in html
    figures = html[html.index('id="figures"') : html.index("</table>", html.index('id="figures"'))]
    assert (
        '<th scope="row">Letters received</th>\n        <td data-label="Figure">5</td>' in figures
    )
    assert "1 working day<" in figures  # median to acknowledge
    assert "10 working days<" in figures  # median to reply
    assert "50% (2 of 4)" in figures
    assert "Not enough data yet" not in html
    assert "<caption>Figures for Department for Work and Pensions</caption>" in html
    # Published campaigns listed with their collective; the unpublished one never named.
    assert "Fair PIP assessments" in html
    assert "Claimants" in html
    assert "Carers allowance now" in html
    assert "Secret draft letter" not in html
    assert "Quiet Collective" not in html
    assert "1 letter came from campaigns that are not public" in html


def test_an_unpublished_campaign_is_never_listed(
    session: Session, app: Flask, client: FlaskClient
) -> None:
    dwp = make_department(session, "Department for Work and Pensions", ["dwp.gov.uk"])
    hidden = make_campaign(
        session,
        app,
        title="Unpublished plans",
        recipient=dwp,
        publish=False,
        collective_name="Hidden Collective",
    )
    deliver(session, app, hidden, dwp, date(2025, 12, 1), replied_at=at(date(2025, 12, 2)))
    html = body(client.get(f"/departments/{dwp.key}"))
    assert "Unpublished plans" not in html
    assert "Hidden Collective" not in html
    assert "None of the letters to Department for Work and Pensions came from a public" in html
    # The index shows the department (it received a letter) and nothing of the campaign.
    index = body(client.get("/departments"))
    assert "Department for Work and Pensions" in index
    assert "Unpublished plans" not in index


def test_fewer_than_three_letters_say_not_enough_data_yet(
    session: Session, app: Flask, client: FlaskClient
) -> None:
    dwp = make_department(session, "Department for Education", ["education.gov.uk"])
    world = make_campaign(session, app, title="School meals", recipient=dwp)
    deliver(
        session,
        app,
        world,
        dwp,
        date(2025, 12, 1),
        acknowledged_at=at(date(2025, 12, 2)),
        replied_at=at(date(2025, 12, 3)),
    )
    deliver(session, app, world, dwp, date(2025, 12, 8), acknowledged_at=at(date(2025, 12, 9)))
    record = services.department_record(session, dwp)
    assert record.median_ack_days.value is None
    assert record.median_ack_days.basis == 2
    assert record.on_time_share.value is None
    html = body(client.get(f"/departments/{dwp.key}"))
    assert "Not enough data yet" in html
    assert "has received 2 letters through Chorus" in html
    assert "School meals" in html


def test_unknown_departments_and_collectives_own_recipients_are_404(
    session: Session, app: Flask, client: FlaskClient
) -> None:
    assert client.get("/departments/no-such-department").status_code == 404
    assert client.get("/departments/" + "x" * 81).status_code == 404
    assert client.get("/departments/%00").status_code == 404
    dwp = make_department(session, "Department for Work and Pensions", ["dwp.gov.uk"])
    world = make_campaign(session, app, title="Council letter", recipient=dwp)
    set_current_collective(session, world.collective_id)
    own = Recipient(
        collective_id=world.collective_id, key="our-council", kind="council", name="Our Council"
    )
    session.add(own)
    session.flush()
    set_current_collective(session, None)
    assert client.get("/departments/our-council").status_code == 404


def test_the_index_lists_only_departments_that_received_letters(
    session: Session, app: Flask, client: FlaskClient
) -> None:
    dwp = make_department(session, "Department for Work and Pensions", ["dwp.gov.uk"])
    make_department(session, "Department Nobody Wrote To", ["nobody.gov.uk"])
    world = make_campaign(session, app, title="A letter", recipient=dwp)
    deliver(session, app, world, dwp, date(2025, 12, 1))
    deliver(session, app, world, dwp, date(2025, 12, 2), status="pending")  # not sent
    page = client.get("/departments")
    assert page.status_code == 200
    html = body(page)
    assert f'href="/departments/{dwp.key}"' in html
    assert "Department Nobody Wrote To" not in html
    row = html[html.index(f'href="/departments/{dwp.key}"') :]
    assert '<td class="numeric" data-label="Letters received">1</td>' in row[:400]
    # Linked from every page's footer.
    assert 'href="/departments"' in body(client.get("/"))
