"""Trending email domains and IP hashes: the recurring job raises flags that organisers
see on the moderation page, with a link to the bulk preview and a way to dismiss them."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.conftest import form_post
from tests.factories import add_member, login, make_user
from tests.test_signature_admin import _add, _base, _owner
from tests.test_signatures import _published
from web.campaigns.models import Campaign
from web.collectives.models import Collective, Role
from web.db import utcnow
from web.signatures.trending import DOMAIN_MIN, IP_MIN, SignatureFlag, find_trends
from web.tenancy import set_current_collective
from workers.jobs.signatures import flag_trending

_n = itertools.count(1)


@pytest.fixture
def world(session: Session, app: Flask) -> tuple[Collective, Campaign]:
    return _published(session, app)


def _sign(
    session: Session,
    campaign: Campaign,
    count: int,
    *,
    domain: str = "example.org",
    ip_hash: str | None = None,
    minutes_ago: float = 10,
) -> None:
    when = utcnow() - timedelta(minutes=minutes_ago)
    for _ in range(count):
        n = next(_n)
        fields: dict[str, Any] = {"email": f"person{n}@{domain}", "created_at": when}
        if ip_hash is not None:
            fields["ip_hash"] = ip_hash
        _add(session, campaign, **fields)


def _flags(session: Session, campaign: Campaign) -> dict[tuple[str, str], SignatureFlag]:
    collective_id, campaign_id = campaign.collective_id, campaign.id
    session.expire_all()
    set_current_collective(session, collective_id)
    rows = session.scalars(select(SignatureFlag).where(SignatureFlag.campaign_id == campaign_id))
    return {(f.kind, f.value): f for f in rows}


def test_one_network_signing_many_times_in_an_hour_is_flagged(
    session: Session, world: tuple[Collective, Campaign]
) -> None:
    _, campaign = world
    _sign(session, campaign, IP_MIN, ip_hash="a" * 64)
    _sign(session, campaign, IP_MIN - 1, ip_hash="b" * 64)
    # Many from one network, but more than an hour ago: not trending now.
    _sign(session, campaign, IP_MIN * 3, ip_hash="c" * 64, minutes_ago=90)

    assert flag_trending() == 1
    flags = _flags(session, campaign)
    assert set(flags) == {("ip_hash", "a" * 64)}
    assert flags[("ip_hash", "a" * 64)].recent == IP_MIN
    assert flags[("ip_hash", "a" * 64)].status == "open"


def test_a_domain_whose_share_jumps_is_flagged_but_big_webmail_and_steady_domains_are_not(
    session: Session, world: tuple[Collective, Campaign]
) -> None:
    _, campaign = world
    # The day before: a steady mix in which example.org is half of everything.
    _sign(session, campaign, 200, domain="example.org", minutes_ago=600)
    _sign(session, campaign, 200, domain="gmail.com", minutes_ago=600)
    _sign(session, campaign, 2, domain="burst.example", minutes_ago=600)
    # The last hour: example.org keeps its share, gmail.com surges (webmail: never
    # flagged by domain), burst.example goes from 2 of 402 to 40 of 130.
    _sign(session, campaign, 45, domain="example.org")
    _sign(session, campaign, 45, domain="gmail.com")
    _sign(session, campaign, 40, domain="burst.example")
    _sign(session, campaign, DOMAIN_MIN - 1, domain="small.example")

    set_current_collective(session, campaign.collective_id)
    trends = find_trends(session, campaign.id, utcnow())
    assert [(t.kind, t.value, t.recent, t.baseline) for t in trends] == [
        ("email_domain", "burst.example", 40, 2)
    ]


def test_flags_are_refreshed_not_duplicated_and_dismissed_ones_stay_dismissed(
    session: Session, world: tuple[Collective, Campaign]
) -> None:
    _, campaign = world
    _sign(session, campaign, IP_MIN, ip_hash="d" * 64)
    flag_trending()
    flag_trending()
    flags = _flags(session, campaign)
    assert len(flags) == 1
    flag = flags[("ip_hash", "d" * 64)]
    flag.status = "dismissed"
    session.flush()
    _sign(session, campaign, 5, ip_hash="d" * 64)
    flag_trending()
    flags = _flags(session, campaign)
    assert len(flags) == 1
    assert flags[("ip_hash", "d" * 64)].status == "dismissed"
    assert flags[("ip_hash", "d" * 64)].recent == IP_MIN + 5


def test_the_moderation_page_shows_flags_links_the_preview_and_dismisses(
    client: FlaskClient, session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    _sign(session, campaign, 30, domain="<b>evil</b>.example")  # never a real domain,
    _sign(session, campaign, IP_MIN, ip_hash="e" * 64)  # but shown escaped if stored
    flag_trending()
    login(client, _owner(session, collective))
    base = _base(collective, campaign)

    page = client.get(f"{base}/moderation").get_data(as_text=True)
    assert "Trending now" in page
    assert "&lt;b&gt;evil&lt;/b&gt;.example" in page
    assert "<b>evil</b>" not in page
    assert f"{base}/bulk?ip_hash={'e' * 12}" in page
    preview = client.get(f"{base}/bulk?ip_hash={'e' * 12}").get_data(as_text=True)
    assert 'id="bulk-total">10<' in preview

    ip_flag = _flags(session, campaign)[("ip_hash", "e" * 64)]
    response = form_post(
        client, f"{base}/moderation", {}, action=f"{base}/flags/{ip_flag.id}/dismiss"
    )
    assert response.status_code == 303
    assert _flags(session, campaign)[("ip_hash", "e" * 64)].status == "dismissed"
    page = client.get(f"{base}/moderation").get_data(as_text=True)
    assert f"bulk?ip_hash={'e' * 12}" not in page.split("Quarantined signatures")[0]
    # Dismissing twice: the flag is no longer open.
    again = form_post(client, f"{base}/moderation", {}, action=f"{base}/flags/{ip_flag.id}/dismiss")
    assert again.status_code == 404


def test_viewers_see_flags_but_cannot_dismiss(
    client: FlaskClient, session: Session, app: Flask, world: tuple[Collective, Campaign]
) -> None:
    collective, campaign = world
    _sign(session, campaign, IP_MIN, ip_hash="f" * 64)
    flag_trending()
    viewer = make_user(session, app, email="flag-viewer@example.org")
    add_member(session, collective, viewer, Role.VIEWER)
    login(client, viewer)
    base = _base(collective, campaign)
    page = client.get(f"{base}/moderation").get_data(as_text=True)
    assert "f" * 12 in page
    assert "/dismiss" not in page
    flag = _flags(session, campaign)[("ip_hash", "f" * 64)]
    response = form_post(client, f"{base}/moderation", {}, action=f"{base}/flags/{flag.id}/dismiss")
    assert response.status_code == 403
    assert _flags(session, campaign)[("ip_hash", "f" * 64)].status == "open"


def test_the_scheduler_runs_the_trending_job() -> None:
    from workers.cron import SCHEDULE

    entries = {e.name: e for e in SCHEDULE}
    assert entries["flag-trending"].func == "workers.jobs.signatures.flag_trending"
    assert entries["flag-trending"].every_seconds <= 300
