"""Plans (§1) and limits (§4): the Free limit on collecting campaigns through the service
and the web form, upgrade and downgrade, the footer, the export gate, the render queue,
branding (logo and colours) and its public routes."""

from __future__ import annotations

import io
import time
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tests.conftest import form_post
from tests.factories import add_member, login, make_collective, make_user
from web.billing import plans, services
from web.billing.models import (
    BillingAccount,
    CollectiveBranding,
    Plan,
    account_for,
    effective_plan,
)
from web.campaigns import services as campaigns
from web.campaigns.models import Campaign, CampaignState
from web.collectives.models import Collective, Membership, Role
from web.db import utcnow
from web.outbox import OutboxMessage
from web.recipients.models import Recipient
from web.settings import Settings, SettingsError
from web.tenancy import set_current_collective, system_scope

# --- helpers -----------------------------------------------------------------------------


@pytest.fixture
def dwp(session: Session) -> Recipient:
    with system_scope(session):
        recipient = Recipient(
            key=f"dwp-plans-{time.monotonic_ns()}",
            kind="ministerial_department",
            name="Department for Work and Pensions",
            short_name="DWP",
        )
        session.add(recipient)
        session.flush()
    return recipient


def _membership(session: Session, collective: Collective, user_id: int) -> Membership:
    set_current_collective(session, collective.id)
    membership = session.scalar(select(Membership).where(Membership.user_id == user_id))
    assert membership is not None
    return membership


def _ready(session: Session, member: Membership, recipient: Recipient, slug: str) -> Campaign:
    campaign = campaigns.create_campaign(
        session, member, kind="open_letter", title=f"Campaign {slug}", slug=slug
    )
    campaigns.update_settings(
        session,
        member,
        campaign,
        title=f"Campaign {slug}",
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
        subject="A subject",
        summary="A short summary.",
        body_markdown="The body.",
        asks=["Do the thing"],
        evidence_links=[],
    )
    return campaign


def _make_supporter(session: Session, collective_id: int, *, status: str = "active") -> None:
    account = account_for(session, collective_id)
    account.plan = Plan.SUPPORTER.value
    account.interval = "month"
    account.subscription_status = status
    session.flush()


def _make_free(session: Session, collective_id: int) -> None:
    account = account_for(session, collective_id)
    account.subscription_status = "canceled"
    session.flush()


def _collecting(session: Session, collective_id: int) -> list[str]:
    set_current_collective(session, collective_id)
    session.expire_all()
    return sorted(
        session.scalars(
            select(Campaign.slug).where(Campaign.state == CampaignState.COLLECTING.value)
        )
    )


def _png(size: tuple[int, int] = (64, 32), colour: str = "#1d4f91") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def _jpeg(size: tuple[int, int] = (64, 32)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "#00703c").save(out, format="JPEG")
    return out.getvalue()


# --- the plan rules ----------------------------------------------------------------------


def test_effective_plan_follows_the_subscription_grace_and_grants() -> None:
    now = utcnow()
    account = BillingAccount(name="x", plan="supporter", subscription_status="active")
    assert effective_plan(account, now) is Plan.SUPPORTER
    account.subscription_status = "trialing"
    assert effective_plan(account, now) is Plan.SUPPORTER
    account.subscription_status = "past_due"
    account.grace_until = now + timedelta(days=3)
    assert effective_plan(account, now) is Plan.SUPPORTER
    account.grace_until = now - timedelta(seconds=1)
    assert effective_plan(account, now) is Plan.FREE
    account.subscription_status = "canceled"
    assert effective_plan(account, now) is Plan.FREE
    account.complimentary_until = now + timedelta(days=1)
    assert effective_plan(account, now) is Plan.SUPPORTER
    federation = BillingAccount(name="f", plan="federation", is_federation=True)
    assert effective_plan(federation, now) is Plan.FREE
    federation.complimentary_until = now + timedelta(days=1)
    assert effective_plan(federation, now) is Plan.FEDERATION
    assert effective_plan(None, now) is Plan.FREE


def test_account_for_creates_one_account_per_collective_and_reading_creates_none(
    session: Session, app: Flask
) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner, name="Lazy Account")
    assert plans.plan_of(session, collective.id) is Plan.FREE
    assert plans.account_in_force(session, collective.id) is None
    first = account_for(session, collective.id)
    second = account_for(session, collective.id)
    assert first.id == second.id
    assert first.owner_collective_id == collective.id
    assert first.name == "Lazy Account"
    assert first.plan == "free"
    session.expire_all()
    assert session.get(Collective, collective.id).billing_account_id == first.id


# --- the limit on collecting campaigns ------------------------------------------------------


def test_free_allows_two_collecting_campaigns_then_upgrade_then_downgrade(
    session: Session, app: Flask, dwp: Recipient
) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    member = _membership(session, collective, owner.id)
    one, two, three, four = (
        _ready(session, member, dwp, s) for s in ("one", "two", "three", "four")
    )
    campaigns.publish(session, member, collective, one)
    campaigns.publish(session, member, collective, two)

    with pytest.raises(campaigns.PublicationBlocked) as refused:
        campaigns.publish(session, member, collective, three)
    [problem] = refused.value.problems
    assert problem.field == "plan"
    assert "Free plan" in problem.message
    assert "2 campaigns at once" in problem.message
    assert "Supporter" in problem.message
    assert _collecting(session, collective.id) == ["one", "two"]
    set_current_collective(session, collective.id)
    assert three.state == "draft"
    assert three.published_at is None
    assert campaigns.list_versions(session, three) == []  # nothing half-written

    # A new version of a campaign already collecting is not a new campaign.
    campaigns.save_letter(
        session,
        member,
        one,
        subject="A better subject",
        summary="A short summary.",
        body_markdown="The body.",
        asks=["Do the thing"],
        evidence_links=[],
    )
    assert campaigns.publish(session, member, collective, one).number == 2

    _make_supporter(session, collective.id)
    campaigns.publish(session, member, collective, three)
    campaigns.publish(session, member, collective, four)
    assert _collecting(session, collective.id) == ["four", "one", "three", "two"]

    # Downgrade: nothing stops, nothing is deleted; only a new campaign is held back.
    _make_free(session, collective.id)
    assert _collecting(session, collective.id) == ["four", "one", "three", "two"]
    five = _ready(session, member, dwp, "five")
    with pytest.raises(campaigns.PublicationBlocked, match="4 of yours are collecting"):
        campaigns.publish(session, member, collective, five)
    # Closing campaigns until fewer than two collect lets a new one start again.
    for campaign in (one, two, three):
        set_current_collective(session, collective.id)
        campaigns.close_campaign(session, member, campaign)
    campaigns.publish(session, member, collective, five)
    assert _collecting(session, collective.id) == ["five", "four"]


def test_a_free_grant_and_a_grace_period_lift_the_limit(
    session: Session, app: Flask, dwp: Recipient
) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    member = _membership(session, collective, owner.id)
    for slug in ("a", "b"):
        campaigns.publish(session, member, collective, _ready(session, member, dwp, slug))
    account = account_for(session, collective.id)
    account.complimentary_until = utcnow() + timedelta(days=30)
    session.flush()
    campaigns.publish(session, member, collective, _ready(session, member, dwp, "c"))
    account.complimentary_until = utcnow() - timedelta(seconds=1)
    account.plan = "supporter"
    account.subscription_status = "past_due"
    account.grace_until = utcnow() + timedelta(days=14)
    session.flush()
    campaigns.publish(session, member, collective, _ready(session, member, dwp, "d"))
    account.grace_until = utcnow() - timedelta(seconds=1)
    session.flush()
    with pytest.raises(campaigns.PublicationBlocked):
        campaigns.publish(session, member, collective, _ready(session, member, dwp, "e"))
    assert _collecting(session, collective.id) == ["a", "b", "c", "d"]


def test_the_limit_through_the_web_form_names_the_limit_and_links_to_the_plan(
    client: FlaskClient, session: Session, app: Flask, dwp: Recipient
) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    member = _membership(session, collective, owner.id)
    for slug in ("first", "second"):
        campaigns.publish(session, member, collective, _ready(session, member, dwp, slug))
    third = _ready(session, member, dwp, "third")
    session.flush()
    login(client, owner)
    page = f"/app/{collective.slug}/campaigns/{third.id}/"
    response = form_post(client, page, {}, action=f"{page}publish")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "There is a problem" in html
    assert "The Free plan lets a collective collect signatures on 2 campaigns at once" in html
    assert f'href="/app/{collective.slug}/plan#upgrade"' in html
    assert _collecting(session, collective.id) == ["first", "second"]

    plan_page = client.get(f"/app/{collective.slug}/plan").get_data(as_text=True)
    assert "Campaigns collecting signatures now: <strong>2</strong> of 2" in plan_page
    assert "Billing is not configured on this installation" in plan_page

    _make_supporter(session, collective.id)
    response = form_post(client, page, {}, action=f"{page}publish")
    assert response.status_code == 302
    assert _collecting(session, collective.id) == ["first", "second", "third"]
    plan_page = client.get(f"/app/{collective.slug}/plan").get_data(as_text=True)
    assert "is on the <strong>Supporter</strong> plan" in plan_page


# --- the footer ------------------------------------------------------------------------


def test_made_with_chorus_footer_shows_on_free_public_pages_only(
    client: FlaskClient, session: Session, app: Flask, dwp: Recipient
) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    member = _membership(session, collective, owner.id)
    campaign = _ready(session, member, dwp, "footer")
    campaigns.publish(session, member, collective, campaign)
    session.flush()
    public = f"/{collective.slug}/footer"
    html = client.get(public).get_data(as_text=True)
    assert 'id="made-with-chorus"' in html
    assert "Made with" in html
    # Organiser pages do not carry it.
    login(client, owner)
    assert "made-with-chorus" not in client.get(f"/app/{collective.slug}/plan").get_data(
        as_text=True
    )
    _make_supporter(session, collective.id)
    html = client.get(public).get_data(as_text=True)
    assert "made-with-chorus" not in html
    assert "Made with" not in html


# --- the export gate ---------------------------------------------------------------------


def test_csv_export_is_a_supporter_feature_with_a_clear_message(
    client: FlaskClient, session: Session, app: Flask, dwp: Recipient
) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    member = _membership(session, collective, owner.id)
    campaign = _ready(session, member, dwp, "export")
    campaigns.publish(session, member, collective, campaign)
    session.flush()
    login(client, owner)
    url = f"/app/{collective.slug}/campaigns/{campaign.id}/signatures/export.csv"
    refused = client.get(url)
    assert refused.status_code == 403
    html = refused.get_data(as_text=True)
    assert "Downloading the signatures as a CSV file is part of the Supporter plan" in html
    assert f'href="/app/{collective.slug}/plan#upgrade"' in html
    assert refused.headers["Content-Type"].startswith("text/html")
    with pytest.raises(plans.PlanLimitReached):
        plans.require_feature(session, collective.id, plans.Feature.SIGNER_EXPORT)
    counts = f"/app/{collective.slug}/campaigns/{campaign.id}/signatures/"
    html = client.get(counts).get_data(as_text=True)
    assert 'id="export-plan"' in html
    assert 'id="export-csv"' not in html

    _make_supporter(session, collective.id)
    allowed = client.get(url)
    assert allowed.status_code == 200
    assert allowed.headers["Content-Type"].startswith("text/csv")
    assert allowed.get_data(as_text=True).startswith("\ufeffName,Postcode")
    html = client.get(counts).get_data(as_text=True)
    assert 'id="export-plan"' not in html
    assert 'id="export-csv"' in html


# --- the rendering queue -----------------------------------------------------------------


def test_supporter_renders_go_to_the_priority_queue_listed_first(
    session: Session, app: Flask, dwp: Recipient
) -> None:
    from web.pdf.models import DocumentKind
    from web.pdf.services import request_render
    from workers.__main__ import DEFAULT_QUEUES

    assert DEFAULT_QUEUES.index("pdf-priority") < DEFAULT_QUEUES.index("pdf")
    owner = make_user(session, app)
    free = make_collective(session, owner)
    paying = make_collective(session, owner)
    queues = {}
    for collective in (free, paying):
        if collective is paying:
            _make_supporter(session, paying.id)
        member = _membership(session, collective, owner.id)
        campaign = _ready(session, member, dwp, "render")
        render = request_render(session, member, campaign, DocumentKind.PREVIEW)
        row = session.scalar(
            select(OutboxMessage).where(
                OutboxMessage.payload["render_id"].as_integer() == render.id
            )
        )
        assert row is not None
        queues[collective.id] = row.queue
    assert queues == {free.id: "pdf", paying.id: "pdf-priority"}


# --- settings ----------------------------------------------------------------------------


BASE = {"CHORUS_ENV": "development", "CHORUS_INSTANCE_PATH": "/nonexistent/chorus-instance"}
STRIPE = {
    "STRIPE_SECRET_KEY": "sk_test_123",
    "STRIPE_WEBHOOK_SECRET": "whsec_abc",
    "STRIPE_PRICE_SUPPORTER_MONTHLY": "price_sm",
    "STRIPE_PRICE_SUPPORTER_YEARLY": "price_sy",
}


def test_prices_come_from_settings_and_billing_is_off_without_a_key() -> None:
    off = Settings.from_env(BASE)
    assert not off.billing_enabled
    assert off.stripe_price("supporter", "month") == ""
    on = Settings.from_env(
        {
            **BASE,
            **STRIPE,
            "STRIPE_PRICE_FEDERATION_YEARLY": "price_fy",
            "STRIPE_API_BASE": "http://127.0.0.1:8420/",
        }
    )
    assert on.billing_enabled
    assert on.stripe_api_base == "http://127.0.0.1:8420"
    assert on.stripe_price("supporter", "year") == "price_sy"
    assert on.plan_for_price("price_fy") == ("federation", "year")
    assert on.plan_for_price("price_unknown") is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STRIPE_SECRET_KEY", "pk_live_wrong_kind"),
        ("STRIPE_WEBHOOK_SECRET", ""),
        ("STRIPE_WEBHOOK_SECRET", "secret"),
        ("STRIPE_PRICE_SUPPORTER_MONTHLY", ""),
        ("STRIPE_PRICE_SUPPORTER_YEARLY", "price with spaces"),
        ("STRIPE_API_BASE", "ftp://stripe.local"),
        ("STRIPE_PUBLISHABLE_KEY", "sk_test_not_publishable"),
    ],
)
def test_a_bad_stripe_setting_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**BASE, **STRIPE, name: value})
    assert name in str(info.value)


def test_a_webhook_secret_without_a_secret_key_stops_start_up() -> None:
    """Events would be accepted and stored but could never be applied."""
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**BASE, "STRIPE_WEBHOOK_SECRET": "whsec_abc"})
    assert "STRIPE_SECRET_KEY must be set when STRIPE_WEBHOOK_SECRET is" in str(info.value)


# --- branding ----------------------------------------------------------------------------


def test_colours_are_checked_for_format_and_contrast(session: Session, app: Flask) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    member = _membership(session, collective, owner.id)
    with pytest.raises(plans.PlanLimitReached):
        services.save_colours(session, member, collective.id, primary="#000000", accent="")
    _make_supporter(session, collective.id)
    for bad in ("red", "#12345", "#GGGGGG", "rgb(0,0,0)", "#1d4f91;}", "javascript:", "\x00"):
        with pytest.raises(services.BillingError, match="hex colour code"):
            services.save_colours(session, member, collective.id, primary=bad, accent="")
    with pytest.raises(services.BillingError) as pale:
        services.save_colours(session, member, collective.id, primary="#ffdd00", accent="")
    assert pale.value.field == "primary_colour"
    assert "4.5:1" in str(pale.value)
    assert "low vision" in str(pale.value)
    with pytest.raises(services.BillingError) as pale_accent:
        services.save_colours(session, member, collective.id, primary="", accent="#AAA")
    assert pale_accent.value.field == "accent_colour"
    branding = services.save_colours(
        session, member, collective.id, primary="1D4F91", accent="#036"
    )
    assert (branding.primary_colour, branding.accent_colour) == ("#1d4f91", "#003366")
    assert services.contrast_ratio("#000000", "#ffffff") == pytest.approx(21)
    assert services.contrast_ratio("#767676", "#ffffff") >= 4.5  # the classic AA grey


def test_logo_is_checked_by_content_and_re_encoded(session: Session, app: Flask) -> None:
    png = services.clean_logo(_png())
    assert png.content_type == "image/png"
    assert (png.width, png.height) == (64, 32)
    assert services.clean_logo(_jpeg()).content_type == "image/jpeg"

    def refused(data: bytes, fragment: str) -> None:
        with pytest.raises(services.BillingError) as info:
            services.clean_logo(data)
        assert info.value.field == "logo"
        assert fragment in str(info.value), str(info.value)

    refused(b"", "empty")
    refused(b"<html><script>alert(1)</script></html>", "PNG or JPEG")
    refused(b"%PDF-1.7\n", "PNG or JPEG")
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'
    refused(svg, "SVG")
    refused(b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "could not be read")
    refused(b"\xff\xd8\xff" + b"garbage" * 10, "could not be read")
    refused(_png()[:-30], "could not be read")  # truncated
    refused(_png()[:200] + b"A" * (1024 * 1024), "1 MB or smaller")
    refused(_png((8, 8)), "between 16 and 4096")
    refused(_png((5000, 20)), "between 16 and 4096")

    # A polyglot: a valid PNG with HTML and a ZIP appended. Accepted as an image, but
    # only the pixels survive.
    polyglot = _png() + b"<script>alert(document.cookie)</script>" + b"PK\x03\x04zipzip"
    cleaned = services.clean_logo(polyglot)
    assert b"<script>" not in cleaned.data
    assert b"PK\x03\x04" not in cleaned.data
    assert Image.open(io.BytesIO(cleaned.data)).size == (64, 32)
    # Text hidden in a PNG chunk is dropped as well.
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "<script>alert(1)</script>")
    out = io.BytesIO()
    Image.new("RGB", (20, 20)).save(out, format="PNG", pnginfo=info)
    assert b"<script>" not in services.clean_logo(out.getvalue()).data


def test_logo_upload_through_the_web_with_hostile_files(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    _make_supporter(session, collective.id)
    session.flush()
    login(client, owner)
    page = f"/app/{collective.slug}/plan/branding"
    action = f"{page}/logo"

    def upload(data: bytes, name: str, mimetype: str = "image/png") -> tuple[int, str]:
        response = form_post(
            client,
            page,
            {"logo": (io.BytesIO(data), name, mimetype)},
            action=action,
            content_type="multipart/form-data",
        )
        return response.status_code, response.get_data(as_text=True)

    for data, name, message in [
        (b"MZ\x90\x00 not an image at all", "logo.png", "This file is not one"),
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "logo.svg",
            "SVG",
        ),
        (b"", "empty.png", "The file is empty"),
        (_png()[:100] + b"\0" * (1024 * 1024), "huge.png", "1 MB or smaller"),
    ]:
        status, html = upload(data, name)
        assert status == 422, (name, status)
        assert message in html, (name, html[:2000])
        assert 'class="error-summary"' in html
    no_file = form_post(client, page, {}, action=action, content_type="multipart/form-data")
    assert no_file.status_code == 422
    assert "Choose the logo file to upload." in no_file.get_data(as_text=True)
    too_big = upload(b"\x89PNG" + b"\0" * (3 * 1024 * 1024), "giant.png")
    assert too_big[0] == 413
    assert "1 MB or smaller" in too_big[1]
    set_current_collective(session, collective.id)
    assert session.scalar(select(CollectiveBranding)) is None  # nothing half-written

    status, _ = upload(_png() + b"<script>alert(1)</script>", "polyglot.png", "text/html")
    assert status == 302
    session.expire_all()
    branding = session.scalar(select(CollectiveBranding))
    assert branding is not None
    assert branding.logo is not None
    assert b"<script>" not in branding.logo
    assert branding.logo_type == "image/png"

    logo = client.get(f"/brand/{collective.slug}/logo?v={branding.logo_sha256[:16]}")
    assert logo.status_code == 200
    assert logo.headers["Content-Type"] == "image/png"
    assert logo.headers["X-Content-Type-Options"] == "nosniff"
    assert "max-age=31536000" in logo.headers["Cache-Control"]
    assert logo.data == branding.logo
    again = client.get(
        f"/brand/{collective.slug}/logo", headers={"If-None-Match": logo.headers["ETag"]}
    )
    assert again.status_code == 304


def test_branding_shows_on_public_pages_while_supporter_and_is_kept_after(
    client: FlaskClient, other_client: FlaskClient, session: Session, app: Flask, dwp: Recipient
) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner, name="Brand <Collective>")
    member = _membership(session, collective, owner.id)
    campaign = _ready(session, member, dwp, "branded")
    campaigns.publish(session, member, collective, campaign)
    _make_supporter(session, collective.id)
    set_current_collective(session, collective.id)
    services.save_logo(session, member, collective.id, _png())
    services.save_colours(session, member, collective.id, primary="#1d4f91", accent="#00703c")
    session.flush()

    html = other_client.get(f"/{collective.slug}/branded").get_data(as_text=True)
    assert f'href="/brand/{collective.slug}/style.css?v=1d4f9100703c"' in html
    assert f'src="/brand/{collective.slug}/logo?v=' in html
    assert 'alt="Brand &lt;Collective&gt;"' in html
    assert "style=" not in html
    assert "<style" not in html
    css = other_client.get(f"/brand/{collective.slug}/style.css?v=1d4f9100703c")
    assert css.status_code == 200
    assert css.headers["Content-Type"].startswith("text/css")
    body = css.get_data(as_text=True)
    assert ".site-header, .collective-band { background: #1d4f91; }" in body
    assert "color: #00703c" in body

    letter = services.letter_branding(session, collective.id)
    assert letter is not None
    assert letter.primary_colour == "#1d4f91"
    assert letter.logo is not None
    assert letter.logo.startswith(services.PNG_MAGIC)

    # The plan lapses: branding stops showing but is kept.
    _make_free(session, collective.id)
    html = other_client.get(f"/{collective.slug}/branded").get_data(as_text=True)
    assert "/brand/" not in html
    assert other_client.get(f"/brand/{collective.slug}/style.css").status_code == 404
    assert other_client.get(f"/brand/{collective.slug}/logo").status_code == 404
    set_current_collective(session, collective.id)
    assert services.letter_branding(session, collective.id) is None
    set_current_collective(session, collective.id)
    session.expire_all()
    assert session.scalar(select(CollectiveBranding.logo_sha256)) != ""
    # The owner's branding page says why, and the forms are refused with the upgrade link.
    login(client, owner)
    page = f"/app/{collective.slug}/plan/branding"
    assert "It is not shown while you are on the Free plan" in client.get(page).get_data(
        as_text=True
    )
    response = form_post(client, page, {"primary_colour": "#000000"}, action=f"{page}/colours")
    assert response.status_code == 403
    assert "part of the Supporter plan" in response.get_data(as_text=True)


def test_colours_through_the_web_form(client: FlaskClient, session: Session, app: Flask) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    _make_supporter(session, collective.id)
    session.flush()
    login(client, owner)
    page = f"/app/{collective.slug}/plan/branding"
    for primary, message in [
        ("#ffff00", "contrast of only 1.1:1"),
        ("<script>", "characters or fewer"),
        ("#12", "hex colour code"),
        ("\u202e#0000", "text-direction"),
    ]:
        response = form_post(
            client, page, {"primary_colour": primary, "accent_colour": ""}, action=f"{page}/colours"
        )
        assert response.status_code == 422, primary
        html = response.get_data(as_text=True)
        assert message in html, (primary, html[:3000])
        assert 'href="#primary_colour"' in html
        assert "<script>" not in html
    response = form_post(
        client,
        page,
        {"primary_colour": "#0B0C0C", "accent_colour": "#1d4f91"},
        action=f"{page}/colours",
    )
    assert response.status_code == 302
    set_current_collective(session, collective.id)
    session.expire_all()
    stored = session.scalar(select(CollectiveBranding))
    assert stored is not None
    assert stored.primary_colour == "#0b0c0c"


def test_only_owners_change_branding_members_read(
    client: FlaskClient, session: Session, app: Flask
) -> None:
    owner = make_user(session, app)
    organiser = make_user(session, app)
    collective = make_collective(session, owner)
    add_member(session, collective, organiser, Role.ORGANISER)
    _make_supporter(session, collective.id)
    session.flush()
    login(client, organiser)
    page = f"/app/{collective.slug}/plan/branding"
    html = client.get(page).get_data(as_text=True)
    assert "Only owners of this collective can change the logo and colours." in html
    for action, data in [
        ("colours", {"primary_colour": "#000000"}),
        ("logo", {"logo": (io.BytesIO(_png()), "logo.png")}),
        ("logo/remove", {}),
    ]:
        response = form_post(
            client, page, data, action=f"{page}/{action}", content_type="multipart/form-data"
        )
        assert response.status_code == 403, action
        assert "Only owners of this collective can do that." in response.get_data(as_text=True)
    with system_scope(session):
        count = session.execute(
            text("select count(*) from collective_brandings where collective_id = :c"),
            {"c": collective.id},
        ).scalar_one()
    assert count == 0
