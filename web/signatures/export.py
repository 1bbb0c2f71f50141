"""CSV export of a campaign's verified signatures, for its owners and organisers, at
/app/<collective-slug>/campaigns/<id>/signatures/export.csv.

Only what the signers agreed to share leaves Chorus: the name and postcode (the
department receives them with the letter), the email address only of signers who asked
for updates, their own words only where they consented to them being public, and how
and when they signed. Pending, quarantined, rejected and withdrawn signatures are left
out. After the retention period (web/signatures/retention.py) the file still lists every
verified signature, with the postcode area and nothing personal.

Streaming. A campaign may have a million signatures, so the file is written while the
database is read: a server-side cursor (`yield_per`) hands over a thousand rows at a
time and each batch becomes one chunk of the response. The request's own session has
committed and closed by the time the body is sent (web/http.py), so the generator opens
a session of its own, sets the campaign's collective on it (the ORM filter and row-level
security apply as in any request) and closes it when the last row is sent or the
download is abandoned.

Spreadsheet formula injection (OWASP "CSV Injection"). A cell that starts with =, +, -,
@, a tab or a carriage return, after any leading spaces or invisible formatting
characters, is prefixed with a single quote, so spreadsheets show it as text instead of
running it. Everything else is written as given: CSV has no markup, and the file is
served as an attachment.

This module holds both the service functions and the view: only this view uses them,
and the service half (`export_statement`, `csv_chunks`, `neutralise`) takes plain ids
and a `Database`, never the request.
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any

from flask import Response, abort, render_template, stream_with_context
from sqlalchemy import Select, case, func, literal_column, select
from sqlalchemy.orm import Session

from web.billing.plans import Feature, PlanLimitReached, require_feature
from web.campaigns import services as campaigns
from web.campaigns.models import LetterVersion
from web.collectives.models import Membership, Role
from web.collectives.services import require_role
from web.collectives.tenant import current_collective, current_membership, tenant_blueprint
from web.db import Database, utcnow
from web.http import database, db_session
from web.signatures.models import Signature, SignatureStatus
from web.tenancy import set_current_collective

bp = tenant_blueprint("signatures_export", __name__)

BOM = "\ufeff"  # so Excel reads the file as UTF-8 (accents, non-Latin names)
ROWS_PER_CHUNK = 1000
HEADER = (
    "Name",
    "Postcode",
    "Email (signers who asked for updates)",
    "Own words (signers who agreed to show them)",
    "How they signed",
    "Letter version",
    "Verified at (UTC)",
)
HOW = {
    ("online", ""): "Online",
    ("assisted", ""): "Assisted",
    ("assisted", "phone"): "Assisted, by phone",
    ("assisted", "in_person"): "Assisted, in person",
    ("paper", ""): "Paper",
    ("paper", "paper"): "Paper",
}
# What a spreadsheet may read as the start of a formula (OWASP), plus the full-width
# forms some spreadsheets accept in East Asian locales.
_FORMULA_START = frozenset("=+-@\t\r＝＋－＠")


def neutralise(value: str) -> str:
    """`value`, prefixed with a single quote if a spreadsheet could take it for a
    formula: its first character that is not a space or an invisible formatting
    character (such as a right-to-left mark) is one of = + - @, or it starts with a tab
    or carriage return."""
    for char in value:
        if char in _FORMULA_START:
            return "'" + value
        if char.isspace() or unicodedata.category(char) == "Cf":
            continue
        return value
    return value


def can_export(actor: Membership) -> None:
    """Raise PermissionError unless `actor` may download signers' personal data."""
    require_role(actor, Role.OWNER, Role.ORGANISER)


def export_statement(campaign_id: int) -> Select[str, str, str, str, str, str, int, str]:
    """One row per verified signature of the campaign, oldest confirmation first, every
    field already reduced to what the signer agreed to share."""
    return (
        select(
            Signature.name,
            Signature.postcode,
            case((Signature.wants_updates, Signature.email), else_=literal_column("''")),
            case((Signature.show_statement, Signature.statement), else_=literal_column("''")),
            Signature.method,
            Signature.channel,
            LetterVersion.number,
            func.coalesce(
                func.to_char(
                    func.timezone(literal_column("'UTC'"), Signature.verified_at),
                    literal_column("'YYYY-MM-DD HH24:MI:SS'"),
                ),
                literal_column("''"),
            ),
        )
        .join(LetterVersion, LetterVersion.id == Signature.letter_version_id)
        .where(
            Signature.campaign_id == campaign_id,
            Signature.status == SignatureStatus.VERIFIED.value,
        )
        .order_by(Signature.verified_at, Signature.id)
    )


def _how(method: str, channel: str) -> str:
    return HOW.get((method, channel)) or neutralise(f"{method} {channel}".strip())


def _cells(row: Sequence[Any]) -> tuple[str | int, ...]:
    """One row of the file, every text a signer typed made safe for spreadsheets."""
    name, postcode, email, statement, method, channel, version, verified_at = row
    return (
        neutralise(name),
        neutralise(postcode),
        neutralise(email),
        neutralise(statement),
        _how(method, channel),
        version,
        verified_at,
    )


class _Line:
    """A file-like object whose write() hands the CSV line back instead of storing it."""

    def write(self, line: str) -> str:
        return line


def csv_chunks(
    db: Database, collective_id: int, campaign_id: int, rows_per_chunk: int = ROWS_PER_CHUNK
) -> Iterator[bytes]:
    """The CSV file (UTF-8 with a byte-order mark), a chunk of at most `rows_per_chunk`
    rows at a time, read through a server-side cursor on a session of its own (see the
    module docstring). Holds one chunk in memory, whatever the campaign's size."""
    writer = csv.writer(_Line())
    yield (BOM + writer.writerow(HEADER)).encode()
    session: Session = db.new_session()
    try:
        set_current_collective(session, collective_id)
        result = session.execute(
            export_statement(campaign_id), execution_options={"yield_per": rows_per_chunk}
        )
        try:
            for rows in result.partitions():
                yield "".join(writer.writerow(_cells(row)) for row in rows).encode()
        finally:
            result.close()
        session.rollback()  # read only
    finally:
        session.close()


def _filename(collective_slug: str, campaign_slug: str, today: date) -> str:
    # Slugs are [a-z0-9-] only (web/http.py SlugConverter), so nothing needs quoting.
    return f"{collective_slug}-{campaign_slug}-signatures-{today.isoformat()}.csv"


@bp.get("/<slug:collective_slug>/campaigns/<id:campaign_id>/signatures/export.csv")
def export_csv(campaign_id: int) -> Response | tuple[str, int]:
    session = db_session()
    try:
        campaign = campaigns.get_campaign(session, campaign_id)
    except campaigns.NotFoundError:
        abort(404)
    try:
        can_export(current_membership())
    except PermissionError as exc:
        return render_template(
            "error.html",
            status=403,
            heading="Not allowed",
            message=str(exc),
        ), 403
    try:
        require_feature(session, campaign.collective_id, Feature.SIGNER_EXPORT)
    except PlanLimitReached as exc:
        return render_template("billing/needs_supporter.html", message=str(exc)), 403
    filename = _filename(current_collective().slug, campaign.slug, utcnow().date())
    body = csv_chunks(database(), campaign.collective_id, campaign.id)
    return Response(
        stream_with_context(body),
        status=200,
        content_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )
