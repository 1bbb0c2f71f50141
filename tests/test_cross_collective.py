"""Tenant isolation, tested from the outside: an owner of collective A must not reach
anything of collective B through any route, by any method, with any mix of identifiers.

The walker reads `app.url_map` itself, so a new route that takes a collective slug or an
id is covered as soon as it exists, and a route whose argument the walker cannot map
fails the suite (instead of being skipped in silence).
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.conftest import csrf_token, form_post
from tests.factories import add_member, login, make_collective, make_user
from web.accounts.models import User
from web.collectives.models import Collective, Membership, Role
from web.collectives.services import invite_member
from web.db import Base, utcnow
from web.http import MAX_ID
from web.tenancy import set_current_collective, system_scope

# Arguments that never name a tenant's data, per endpoint. Anything else must be mapped
# in `Tenants.b_args()` or the walk fails.
NON_TENANT_ARGS = {
    ("static", "filename"),
    ("dev.mail_message", "name"),  # development mail viewer (see the report on it)
}
# Bearer links: the secret in the link is the authority. Tested separately below.
BEARER_ARGS = {"token"}
# Bearer links that live under a collective's address: walked with B's identifiers.
SCOPED_BEARERS = {("public.confirm", "token"), ("public_updates.unsubscribe", "token")}
# A signer's own pages (view, choices, withdraw, erase, re-consent): the same kind of link.
SCOPED_BEARERS |= {
    (f"selfservice.{endpoint}", "token")
    for endpoint in ("manage", "preferences", "withdraw", "erase", "reconsent")
}

# Routes the walker must have visited, so that a broken walker cannot pass vacuously.
KNOWN_TENANT_ENDPOINTS = {
    "collectives.dashboard",
    "collectives.collective_settings",
    "collectives.members",
    "collectives.change_role",
    "collectives.remove_member",
    "collectives.revoke_invitation",
    "recipients.show",
    "recipients.edit",
    "recipients.delete",
    "recipients_admin.admin_edit",
    "signatures.counts",
    "signatures.moderation",
    "signatures.restore",
    "signatures.reject",
    "signatures.bulk",
    "signatures.bulk_reject",
    "statements.index",
    "statements.approve",
    "statements.hide",
    "statements.restore",
    "statements.approve_group",
    "offline_signatures.record",
    "offline_signatures.record_post",
    "offline_signatures.import_form",
    "offline_signatures.import_post",
    "offline_signatures.import_template",
    "offline_signatures.imports",
    "offline_signatures.import_report",
    "updates.index",
    "updates.preview",
    "updates.send",
    "signatures_export.export_csv",
    "pdf_documents.index",
    "pdf_documents.start_preview",
    "pdf_documents.start_final",
    "pdf_documents.progress",
    "pdf_documents.status",
    "pdf_documents.download",
    "billing.plan",
    "billing.request_free",
    "billing.branding",
    "billing.save_colours",
    "billing.save_logo",
    "billing.remove_logo",
    "brand.logo",
    "brand.stylesheet",
    "billing_admin.admin_request",
    "billing_admin.admin_decide",
    "billing_admin.admin_federation",
    "billing_admin.admin_link",
    "billing_admin.admin_unlink",
    "billing_admin.admin_grant",
    "stripe_billing.subscribe_page",
    "stripe_billing.subscribe",
    "stripe_billing.manage",
    "stripe_billing.subscribed",
    "stripe_billing.not_subscribed",
    "delivery.show",
    "delivery.cancel",
    "delivery.revoke_link",
    "delivery.new_link",
    "delivery.postal",
    "delivery.print_pack",
    "loop.follow_up",
    "loop.pause",
    "loop.resume",
    "loop.assess",
    "loop.publish",
    "loop.unpublish",
    "responses.reclassify",
    "responses.download_attachment",
    "meetings.calendar",
    "meetings.record_outcome",
    "inbound_admin.show",
    "inbound_admin.raw",
    "inbound_admin.attach",
    "inbound_admin.dismiss",
    "department.claim_sent",
    "department.inbox",
    "department.letter",
    "department.letter_pdf",
    "department.attachment",
    "department.acknowledge",
    "department.reply",
    "accountability.department_page",
}

# Public pages about shared directory data (not a tenant's): they answer 200 for the
# directory department B wrote to, and must still show nothing of B. Every other
# identifier (B's own recipient's key) gets the 404 the walker expects everywhere.
SHARED_PUBLIC_PAGES = {"accountability.department_page"}

# Plausible form data for any POST: every field an attacker might hope a form reads.
ATTACK_FORM = {
    "role": "owner",
    "email": "intruder@example.org",
    "name": "Taken over",
    "slug": "taken-over",
    "contact_address": "Intruder Street",
}


def snapshot(session: Session) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read across all collectives."""
    session.expire_all()
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with system_scope(session):
        for table in Base.metadata.sorted_tables:
            result = session.execute(
                select(table).order_by(*table.primary_key.columns),
                execution_options={"all_collectives": True},
            )
            rows[table.name] = [tuple(row) for row in result]
    return rows


@dataclass(frozen=True)
class Tenants:
    """Plain values (no ORM objects: snapshots expire the session)."""

    a_owner: User
    a_slug: str
    a_id: int
    b_slug: str
    b_id: int
    b_owner_membership_id: int
    b_member_membership_id: int
    b_invitation_id: int
    b_invitation_token: str
    b_secrets: tuple[str, ...]  # strings that must never reach a's owner
    b_extra_args: dict[str, list[Any]]  # identifiers of later areas' rows in B
    # A's own draft campaign: B's nested ids (a delivery, a signature) are also tried
    # under A's own slug *and* campaign, where only the innermost lookup can refuse them.
    a_campaign_id: int | None = None
    # The directory department B's letter went to (shared data: its public page is 200).
    directory_key: str = ""

    def b_args(self) -> dict[str, list[Any]]:
        """Rule argument name -> B's identifiers to try."""
        return {
            "collective_slug": [self.b_slug],
            "member_id": [self.b_owner_membership_id, self.b_member_membership_id],
            "invitation_id": [self.b_invitation_id],
            **self.b_extra_args,
        }


def _b_campaign(
    session: Session, owner_membership: Membership, title: str = "Bravo Secret Plan"
) -> dict[str, list[Any]]:
    """A draft campaign in B, for the campaign routes (drafts are never public, so even
    the public pages must answer 404 for it). Also A's own campaign, with another title."""
    try:
        from web.campaigns.services import create_campaign
    except ImportError:  # no campaigns area in this tree
        return {}
    campaign = create_campaign(
        session, owner_membership, kind="open_letter", title=title, slug="plan"
    )
    return {"campaign_id": [campaign.id], "campaign_slug": [campaign.slug], "number": [1]}


def _b_signature(session: Session, campaign_id: int) -> dict[str, list[Any]]:
    """A quarantined signature in B (on its draft campaign, which stays unpublished: the
    version is written directly), for the signature moderation routes."""
    try:
        from web.signatures.models import Signature
    except ImportError:  # no signatures area in this tree
        return {}
    from web.campaigns.models import LetterVersion

    version = LetterVersion(
        campaign_id=campaign_id, number=1, content={}, canonical_text="", sha256="0" * 64
    )
    session.add(version)
    session.flush()
    signature = Signature(
        campaign_id=campaign_id,
        letter_version_id=version.id,
        name="Bravo Secret Signer",
        email="secret-signer@bravo.example",
        email_canonical="secret-signer@bravo.example",
        status="quarantined",
        quarantine_reason="honeypot",
        secret_hash=b"\0" * 32,
        ip_hash="b" * 64,
    )
    session.add(signature)
    session.flush()
    from web.signatures.trending import SignatureFlag

    flag = SignatureFlag(
        campaign_id=campaign_id,
        kind="email_domain",
        value="bravo.example",
        recent=99,
        baseline=0,
        status="open",
        last_seen_at=signature.created_at,
    )
    session.add(flag)
    session.flush()
    return {"signature_id": [signature.id], "flag_id": [flag.id]}


def _b_signature_import(session: Session, campaign_id: int) -> dict[str, list[Any]]:
    """An import of paper signatures in B, for the import report route."""
    try:
        from web.signatures.models import SignatureImport
    except ImportError:  # no offline signatures in this tree
        return {}
    record = SignatureImport(
        campaign_id=campaign_id,
        file_name="bravo-secret-paper.csv",
        sha256="0" * 64,
        report=[{"line": 2, "kind": "invalid", "column": "name", "reason": "Bravo secret"}],
    )
    session.add(record)
    session.flush()
    return {"import_id": [record.id]}


def _b_statement_group(session: Session, signature_id: int) -> dict[str, list[Any]]:
    """Own words on B's signature, in a near-duplicate group, for the statement routes."""
    from web.signatures.models import Signature, StatementGroup

    signature = session.get(Signature, signature_id)
    assert signature is not None
    group = StatementGroup(campaign_id=signature.campaign_id, minhash=b"\0" * 8)
    session.add(group)
    session.flush()
    signature.statement = "Bravo secret words"
    signature.show_statement = True
    signature.statement_status = "pending"
    signature.statement_group_id = group.id
    session.flush()
    return {"group_id": [group.id]}


def _b_pdf(session: Session, campaign_id: int) -> dict[str, list[Any]]:
    """A finished render of B's campaign and its document, for the PDF routes."""
    try:
        from web.pdf.models import Document, PdfRender
    except ImportError:  # no PDF area in this tree
        return {}
    data = b"%PDF-1.7 Bravo secret PDF"
    document = Document(
        campaign_id=campaign_id,
        kind="preview",
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        pages=1,
        inputs_hash="b" * 64,
        data=data,
    )
    session.add(document)
    session.flush()
    render = PdfRender(campaign_id=campaign_id, kind="preview", status="done")
    render.document_id = document.id
    session.add(render)
    session.flush()
    return {"render_id": [render.id], "document_id": [document.id]}


def _b_billing(session: Session, owner_membership: Membership) -> dict[str, list[Any]]:
    """B's billing account and a free Supporter request, for the plan and operator routes."""
    try:
        from web.billing.models import account_for
        from web.billing.services import request_free_supporter
    except ImportError:  # no billing area in this tree
        return {}
    from web.collectives.models import Collective

    collective = session.get(Collective, owner_membership.collective_id)
    assert collective is not None
    account = account_for(session, collective.id)
    request = request_free_supporter(
        session, owner_membership, collective, "Bravo secret reason for Supporter"
    )
    return {"account_id": [account.id], "request_id": [request.id]}


def _b_recipient(session: Session, owner_membership: Membership) -> dict[str, list[Any]]:
    """A recipient of B's own (a council), for the recipient routes. Its key is tried on
    the department pages too: a collective's own recipient is no directory department,
    so /department/<key>/ and /departments/<key> must not know it."""
    from web.recipients.services import create_recipient

    recipient = create_recipient(
        session,
        owner_membership,
        {"kind": "council", "name": "Bravo Secret Council", "nation": "england-and-wales"},
    )
    return {"recipient_id": [recipient.id], "key": [recipient.key]}


B_PDF = b"%PDF-1.4\n% Bravo secret attachment\n%%EOF\n"


def _b_delivery(
    session: Session, app: Flask, campaign_id: int, collective_id: int
) -> tuple[dict[str, list[Any]], str]:
    """B's letter, sent by email to a directory department, with everything issue #6
    hangs on it: an emailed reply (its raw message kept for the operator) carrying a PDF,
    a held message on the operator's list, a meeting, an assessment of the ask, a chaser
    and the timeline. Returns the identifiers and the directory department's key.

    The delivery row is built as the send job leaves it (design.md), on B's draft
    campaign: isolation does not depend on the campaign's state, and a draft keeps B's
    title off the department's public record."""
    try:
        from web.delivery.models import Chaser, Delivery
        from web.delivery.services import issue_secrets, placeholder_secrets
        from web.responses.attachments import store_attachment
        from web.responses.inbound import store_raw
        from web.responses.models import (
            AskAssessment,
            InboundStatus,
            Meeting,
            ResponseChannel,
            ResponseKind,
        )
        from web.responses.services import record_response
    except ImportError:  # no delivery area in this tree
        return {}, ""
    from web.mail import make_message_id
    from web.recipients.models import Recipient

    with system_scope(session):
        department = Recipient(
            key=f"walker-dept-{secrets.token_hex(3)}",
            kind="ministerial_department",
            name="Department for Isolation Walks",
            email_domains=["walker-dept.gov.uk"],
        )
        session.add(department)
        session.flush()
    delivered = utcnow() - timedelta(days=3)
    delivery = Delivery(
        collective_id=collective_id,
        campaign_id=campaign_id,
        recipient_id=department.id,
        recipient_name=department.name,
        method="email",
        status="sent",
        idempotency_key=secrets.token_hex(16),
        to_email="bravo-secret-desk@walker-dept.gov.uk",
        message_id=make_message_id(),
        sent_at=delivered,
        delivered_on=delivered.date(),
        response_summary="Bravo secret summary of the answer",
    )
    placeholder_secrets(delivery)
    session.add(delivery)
    session.flush()
    issue_secrets(app.extensions["chorus.settings"], delivery)
    session.flush()

    raw = (
        b"From: Official <official@walker-dept.gov.uk>\r\n"
        b"To: reply@reply.chorus.localhost\r\n"
        b"Subject: Bravo secret inbound subject\r\n\r\nBravo secret inbound body\r\n"
    )
    message = store_raw(session, raw, source="smtp", status=InboundStatus.ATTACHED)
    held = store_raw(
        session,
        raw.replace(b"Bravo secret inbound body", b"Bravo secret held body"),
        source="smtp",
    )
    assert message is not None
    assert held is not None
    message.collective_id, message.delivery_id = collective_id, delivery.id
    response = record_response(
        session,
        delivery,
        kind=ResponseKind.SUBSTANTIVE,
        channel=ResponseChannel.EMAIL,
        body_text="Bravo secret response body",
        subject="Bravo secret inbound subject",
        responder_name="Bravo Secret Official",
        responder_email="official@walker-dept.gov.uk",
        inbound_message_id=message.id,
    )
    attachment = store_attachment(session, response, B_PDF, "bravo-secret-answer.pdf")
    starts = utcnow() + timedelta(days=10)
    session.add_all(
        [
            Meeting(
                collective_id=collective_id,
                delivery_id=delivery.id,
                status="accepted",
                starts_at=starts,
                ends_at=starts + timedelta(hours=1),
                location="Bravo Secret Meeting Room",
                official_name="Bravo Secret Official",
                ics_uid=f"{secrets.token_hex(8)}@chorus.localhost",
            ),
            AskAssessment(
                collective_id=collective_id,
                delivery_id=delivery.id,
                ask_index=0,
                ask_text="Bravo secret ask",
                assessment="partly",
                note="Bravo secret assessment note",
            ),
            Chaser(
                collective_id=collective_id,
                delivery_id=delivery.id,
                number=1,
                to_email="bravo-secret-desk@walker-dept.gov.uk",
                message_id=make_message_id(),
                due_on=delivered.date() + timedelta(days=7),
            ),
        ]
    )
    session.flush()
    ids = {
        "delivery_id": [delivery.id],
        "response_id": [response.id],
        "attachment_id": [attachment.id],
        "message_id": [message.id, held.id],
    }
    return ids, department.key


@pytest.fixture
def tenants(session: Session, app: Flask) -> Tenants:
    a_owner = make_user(session, app, email="owner-a@example.org", name="Owner of A")
    a = make_collective(session, a_owner, name="Alpha Tenants", slug="alpha-tenants")
    set_current_collective(session, a.id)
    a_owner_membership = session.scalar(select(Membership).where(Membership.user_id == a_owner.id))
    assert a_owner_membership is not None
    a_campaign_id = _b_campaign(session, a_owner_membership, title="Alpha Own Plan").get(
        "campaign_id", [None]
    )[0]
    b_owner = make_user(session, app, email="owner-b@example.org", name="Owner of B")
    b_member = make_user(session, app, email="member-b@example.org", name="Member of B")
    b = make_collective(session, b_owner, name="Bravo Secret Collective", slug="bravo-secret")
    b_member_membership = add_member(session, b, b_member, Role.ORGANISER)
    set_current_collective(session, b.id)
    b_owner_membership = session.scalar(select(Membership).where(Membership.user_id == b_owner.id))
    assert b_owner_membership is not None
    with app.app_context():  # renders the invitation email
        invitation, token = invite_member(
            session,
            app.extensions["chorus.settings"],
            b_owner_membership,
            b,
            email="invited-to-b@example.org",
            role=Role.ORGANISER,
        )
        directory_key = ""
        extra_args = _b_campaign(session, b_owner_membership)
        extra_args |= _b_recipient(session, b_owner_membership)
        extra_args |= _b_billing(session, b_owner_membership)
        if extra_args.get("campaign_id"):
            extra_args |= _b_signature(session, extra_args["campaign_id"][0])
            extra_args |= _b_signature_import(session, extra_args["campaign_id"][0])
            extra_args |= _b_statement_group(session, extra_args["signature_id"][0])
            extra_args |= _b_pdf(session, extra_args["campaign_id"][0])
            delivery_args, directory_key = _b_delivery(
                session, app, extra_args["campaign_id"][0], b.id
            )
            extra_args |= delivery_args
            if directory_key:
                extra_args["key"] = [*extra_args["key"], directory_key]
    tenants = Tenants(
        a_owner=a_owner,
        a_slug=a.slug,
        a_id=a.id,
        b_slug=b.slug,
        b_id=b.id,
        b_owner_membership_id=b_owner_membership.id,
        b_member_membership_id=b_member_membership.id,
        b_invitation_id=invitation.id,
        b_invitation_token=token,
        b_secrets=(
            b.name,
            b_owner.email,
            b_member.email,
            b_member.display_name,
            invitation.email,
            b.contact_address.splitlines()[0],
            "Bravo Secret Plan",
            "Bravo Secret Council",
            "Bravo Secret Signer",
            "secret-signer@bravo.example",
            "bravo-secret-paper.csv",
            "Bravo secret words",
            "Bravo secret PDF",
            "Bravo secret reason",
            "Bravo secret summary",
            "bravo-secret-desk@",
            "Bravo secret inbound",
            "Bravo secret held",
            "Bravo secret response",
            "Bravo Secret Official",
            "bravo-secret-answer",
            "Bravo secret attachment",
            "Bravo Secret Meeting",
            "Bravo secret ask",
            "Bravo secret assessment",
        ),
        b_extra_args=extra_args,
        a_campaign_id=a_campaign_id,
        directory_key=directory_key,
    )
    set_current_collective(session, None)
    return tenants


def _count(session: Session, model: type[Base], *where: Any) -> int:
    session.expire_all()
    with system_scope(session):
        return (
            session.execute(
                select(func.count()).select_from(model).where(*where),
                execution_options={"all_collectives": True},
            ).scalar_one()
            or 0
        )


@dataclass
class Call:
    endpoint: str
    method: str
    url: str
    values: dict[str, Any]


def plan_walk(app: Flask, tenants: Tenants) -> tuple[list[Call], list[str], set[str]]:
    """Every call to make, the rules the walker cannot map, and the skipped endpoints."""
    b_args = tenants.b_args()
    calls: list[Call] = []
    unmapped: list[str] = []
    skipped: set[str] = set()
    for rule in app.url_map.iter_rules():
        arguments = set(rule.arguments)
        mapped = arguments & b_args.keys()
        harmless = {a for a in arguments if (rule.endpoint, a) in NON_TENANT_ARGS}
        bearer = arguments & BEARER_ARGS
        unknown = arguments - mapped - harmless - bearer
        if unknown or (bearer and mapped and (rule.endpoint, "token") not in SCOPED_BEARERS):
            unmapped.append(f"{rule.rule} ({rule.endpoint}): {sorted(unknown | bearer)}")
            continue
        rule_args = b_args
        if bearer and mapped:
            # A bearer link under B's address (a signature confirmation): the address alone
            # must answer 404, whatever the secret.
            mapped = mapped | bearer
            rule_args = {**b_args, "token": ["1." + "A" * 43]}
        if not mapped:
            skipped.add(rule.endpoint)
            continue
        names = sorted(mapped)
        combos = [
            dict(zip(names, values, strict=True))
            for values in itertools.product(*(rule_args[n] for n in names))
        ]
        if "collective_slug" in mapped and len(mapped) > 1:
            # Our own collective's slug with B's ids: the classic insecure direct reference.
            ours = [{**c, "collective_slug": tenants.a_slug} for c in combos]
            if tenants.a_campaign_id is not None and mapped - {"collective_slug", "campaign_id"}:
                # ... and with our own campaign too, when B's id is nested in it (a
                # delivery, a signature): only the innermost lookup stands in the way.
                ours += [
                    {**c, "campaign_id": tenants.a_campaign_id} for c in ours if "campaign_id" in c
                ]
            combos += ours
        methods = sorted(rule.methods or ())
        with app.test_request_context():
            for values, method in itertools.product(combos, methods):
                url = app.url_for(rule.endpoint, **values)
                calls.append(Call(rule.endpoint, method, url, values))
    return calls, unmapped, skipped


def test_owner_of_a_reaches_nothing_of_b_through_any_route(
    client: FlaskClient, session: Session, app: Flask, tenants: Tenants
) -> None:
    calls, unmapped, skipped = plan_walk(app, tenants)
    assert not unmapped, (
        "Routes with arguments the isolation walker cannot map to collective B. Add the "
        "argument to Tenants.b_args() (or, if it names no tenant data, to NON_TENANT_ARGS): "
        + "; ".join(unmapped)
    )
    visited = {c.endpoint for c in calls}
    assert visited >= KNOWN_TENANT_ENDPOINTS, KNOWN_TENANT_ENDPOINTS - visited
    assert {"accounts.login", "static"} <= skipped  # the walker did classify, not skip all

    login(client, tenants.a_owner)
    token = csrf_token(client.get(f"/app/{tenants.a_slug}/members").get_data(as_text=True))
    before = snapshot(session)
    # The snapshot reads through row-level security, or comparing it would prove nothing.
    assert len(before["memberships"]) == 3
    assert len(before["invitations"]) == 1
    if tenants.directory_key:  # B's delivery and all that hangs on it are in the snapshot
        for table in ("deliveries", "responses", "response_attachments", "meetings"):
            assert len(before[table]) == 1, table
        for table in ("ask_assessments", "chasers"):
            assert len(before[table]) == 1, table
        assert len(before["delivery_events"]) >= 1
        assert len(before["inbound_messages"]) == 2

    def options_for_nothing(call: Call) -> tuple[int, str | None]:
        """Flask answers OPTIONS from the rule alone (before any row is loaded) unless
        the collective is refused first. That is fine as long as B's identifiers get
        exactly the answer that identifiers of nothing at all get: no oracle."""
        values = {
            name: (
                call.values[name]
                if call.values[name] == tenants.a_slug
                else "no-such-thing"
                if isinstance(call.values[name], str)
                else MAX_ID
            )
            for name in call.values
        }
        with app.test_request_context():
            url = app.url_for(call.endpoint, **values)
        answer = client.options(url)
        return answer.status_code, answer.headers.get("Allow")

    failures: list[str] = []
    for call in calls:
        if call.method == "OPTIONS":
            answer = client.options(call.url)
            got = (answer.status_code, answer.headers.get("Allow"))
            if answer.status_code != 404 and got != options_for_nothing(call):
                failures.append(f"OPTIONS {call.url} answers unlike one for nothing: {got}")
            continue
        data = {"csrf_token": token, **ATTACK_FORM} if call.method == "POST" else None
        response = client.open(call.url, method=call.method, data=data)
        body = response.get_data(as_text=True)
        expected = 404
        if call.endpoint in SHARED_PUBLIC_PAGES and call.values.get("key") == (
            tenants.directory_key
        ):
            expected = 200
        if response.status_code != expected:
            failures.append(f"{call.method} {call.url} -> {response.status_code}")
        leaked = [s for s in tenants.b_secrets if s in body]
        if leaked:
            failures.append(f"{call.method} {call.url} leaks {leaked}")
    assert not failures, "\n".join(failures)
    assert len(calls) >= 2 * len(KNOWN_TENANT_ENDPOINTS)
    assert snapshot(session) == before

    # Control: the same session does reach A's own pages, so the 404s above mean
    # "not yours", not "not logged in".
    for endpoint in ("dashboard", "collective_settings", "members"):
        with app.test_request_context():
            url = app.url_for(f"collectives.{endpoint}", collective_slug=tenants.a_slug)
        assert client.get(url).status_code == 200, url


def test_walker_fails_on_a_route_it_cannot_map(app: Flask, tenants: Tenants) -> None:
    """A new route with an unfamiliar argument is flagged, never silently skipped."""
    probe = Flask("probe")
    probe.url_map.converters.update(app.url_map.converters)
    probe.add_url_rule("/app/<slug:collective_slug>/letters/<id:letter_id>", "letters.show")
    probe.add_url_rule("/things/<int:thing>", "things.show")
    probe.add_url_rule("/invitations/<token>", "invitations.invitation")
    probe.add_url_rule("/app/<slug:collective_slug>/", "collectives.dashboard")
    calls, unmapped, _ = plan_walk(probe, tenants)
    assert len(unmapped) == 2, unmapped
    assert any("letter_id" in u for u in unmapped)
    assert any("thing" in u for u in unmapped)
    assert {c.endpoint for c in calls} == {"collectives.dashboard"}


def test_owner_of_a_cannot_accept_an_invitation_to_b_sent_to_someone_else(
    client: FlaskClient, session: Session, app: Flask, tenants: Tenants
) -> None:
    login(client, tenants.a_owner)
    link = f"/invitations/{tenants.b_invitation_token}"
    before = snapshot(session)
    response = form_post(client, link, {})
    assert 400 <= response.status_code < 500
    assert "different email address" in response.get_data(as_text=True)
    member_of_b = Membership.collective_id == tenants.b_id
    assert _count(session, Membership, member_of_b, Membership.user_id == tenants.a_owner.id) == 0
    assert snapshot(session) == before

    # A guessed secret for B's invitation id is just an invalid link.
    forged = f"/invitations/{tenants.b_invitation_id}.{'A' * 43}"
    for method in ("GET", "POST"):
        response = client.open(
            forged,
            method=method,
            data={
                "csrf_token": csrf_token(
                    client.get(f"/app/{tenants.a_slug}/").get_data(as_text=True)
                )
            }
            if method == "POST"
            else None,
        )
        assert response.status_code == 404
        assert tenants.b_secrets[0] not in response.get_data(as_text=True)
    assert snapshot(session) == before


def test_a_forged_response_link_for_bs_letter_is_just_an_invalid_link(
    client: FlaskClient, session: Session, app: Flask, tenants: Tenants
) -> None:
    """The department's response link is a bearer link (`/respond/<id>.<secret>`): B's
    delivery id with a guessed secret opens nothing, on any of its pages or forms."""
    delivery_ids = tenants.b_args().get("delivery_id")
    assert delivery_ids, "collective B has a sent delivery (see Tenants)"
    login(client, tenants.a_owner)
    token = csrf_token(client.get(f"/app/{tenants.a_slug}/").get_data(as_text=True))
    forged = f"{delivery_ids[0]}.{'A' * 43}"
    rules = [r for r in app.url_map.iter_rules() if r.endpoint.startswith("respond.")]
    assert len(rules) >= 3, rules
    before = snapshot(session)
    for rule in rules:
        with app.test_request_context():
            url = app.url_for(rule.endpoint, token=forged)
        for method in sorted((rule.methods or set()) - {"OPTIONS"}):
            data = {"csrf_token": token, **ATTACK_FORM} if method == "POST" else None
            response = client.open(url, method=method, data=data)
            assert response.status_code == 404, (method, url, response.status_code)
            body = response.get_data(as_text=True)
            assert not [s for s in tenants.b_secrets if s in body], (method, url)
    assert snapshot(session) == before


def test_a_viewer_cannot_use_owner_actions(
    other_client: FlaskClient, session: Session, app: Flask, tenants: Tenants
) -> None:
    a = session.get(Collective, tenants.a_id)
    assert a is not None
    viewer = make_user(session, app, email="viewer-a@example.org")
    add_member(session, a, viewer, Role.VIEWER)
    organiser = make_user(session, app, email="organiser-a@example.org")
    organiser_membership = add_member(session, a, organiser, Role.ORGANISER)
    set_current_collective(session, tenants.a_id)
    owner_membership = session.scalar(
        select(Membership).where(Membership.user_id == tenants.a_owner.id)
    )
    assert owner_membership is not None
    with app.app_context():
        invitation, _ = invite_member(
            session,
            app.extensions["chorus.settings"],
            owner_membership,
            a,
            email="someone@example.org",
            role=Role.VIEWER,
        )
    set_current_collective(session, None)

    organiser_id, owner_id, invitation_id = (
        organiser_membership.id,
        owner_membership.id,
        invitation.id,
    )
    login(other_client, viewer)
    slug = tenants.a_slug
    members_page = f"/app/{slug}/members"
    assert other_client.get(members_page).status_code == 200  # viewers may look
    before = snapshot(session)
    attempts = [
        (f"/app/{slug}/members/{organiser_id}/role", {"role": "viewer"}, "owners"),
        (f"/app/{slug}/members/{owner_id}/role", {"role": "viewer"}, "owners"),
        (f"/app/{slug}/members/{organiser_id}/remove", {}, "owners"),
        (f"/app/{slug}/invitations/{invitation_id}/revoke", {}, "owners or organisers"),
        (members_page, {"email": "friend@example.org", "role": "owner"}, "owners or organisers"),
        (f"/app/{slug}/settings", {"name": "Renamed", "contact_address": "X"}, "owners"),
    ]
    for action, data, who in attempts:
        response = form_post(other_client, members_page, data, action=action)
        body = response.get_data(as_text=True)
        assert response.status_code == 403, (action, response.status_code)
        assert f"Only {who} of this collective can do that." in body, action
    assert snapshot(session) == before
