"""PDF letters, the organiser's side: a button asks for a PDF, a real worker renders it
through the outbox, progress shows while it runs, the PDF lands in PostgreSQL with its
SHA-256, downloads as an attachment, and /verify recognises it. An unchanged letter is
rendered once; a failure shows the engine's message; nothing of one collective's PDFs
reaches another."""

from __future__ import annotations

import hashlib
import io
import itertools
import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from markupsafe import escape
from rq import Queue
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tests.conftest import csrf_token, form_post
from tests.factories import add_member, login, make_collective, make_user
from tests.test_signatures import _published
from web.accounts.models import User
from web.campaigns import services as campaigns
from web.campaigns.models import Campaign, CampaignState
from web.collectives.models import Collective, Membership, Role
from web.db import utcnow
from web.outbox import OutboxMessage
from web.pdf import services
from web.pdf.models import Document, PdfRender
from web.queueing import JOB_TIMEOUTS, queue_name
from web.signatures import services as signing
from web.signatures.models import Signature
from web.tenancy import set_current_collective, system_scope
from workers.jobs.pdf import ProgressWriter, fail_stale_renders, render_document

_seq = itertools.count(1)


# --- helpers ---------------------------------------------------------------------------


def _owner(session: Session, collective: Collective) -> User:
    set_current_collective(session, collective.id)
    membership = session.scalar(select(Membership).where(Membership.role == Role.OWNER))
    assert membership is not None
    user = session.get(User, membership.user_id)
    assert user is not None
    set_current_collective(session, None)
    return user


def _membership(session: Session, collective: Collective) -> Membership:
    set_current_collective(session, collective.id)
    membership = session.scalar(select(Membership).where(Membership.role == Role.OWNER))
    assert membership is not None
    return membership


def _sign(session: Session, campaign: Campaign, name: str, postcode: str = "CF10 1AA") -> None:
    """A verified signature, as the signing flow stores it once confirmed."""
    set_current_collective(session, campaign.collective_id)
    version = campaigns.current_version(session, campaign)
    assert version is not None
    n = next(_seq)
    email = f"pdf-signer{n}@example.org"
    session.add(
        Signature(
            campaign_id=campaign.id,
            letter_version_id=version.id,
            name=name,
            email=email,
            email_canonical=signing.canonical_email(email),
            postcode=postcode,
            status="verified",
            verified_at=utcnow(),
            secret_hash=b"\x01" * 32,
        )
    )
    session.flush()
    set_current_collective(session, None)


def _base(collective: Collective, campaign: Campaign) -> str:
    return f"/app/{collective.slug}/campaigns/{campaign.id}"


def _start(client: FlaskClient, collective: Collective, campaign: Campaign, kind: str) -> Any:
    base = _base(collective, campaign)
    return form_post(client, f"{base}/", {}, action=f"{base}/pdf/{kind}")


def _render_id(response: Any) -> int:
    assert response.status_code == 303, response.get_data(as_text=True)[-1500:]
    match = re.search(r"/pdf/(\d+)$", response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match.group(1))


def _render(session: Session, collective_id: int, render_id: int) -> PdfRender:
    session.expire_all()
    set_current_collective(session, collective_id)
    render = session.get(PdfRender, render_id)
    assert render is not None
    return render


def _documents(session: Session, collective_id: int) -> list[Document]:
    session.expire_all()
    set_current_collective(session, collective_id)
    return list(session.scalars(select(Document).order_by(Document.id)))


def _text(response: Any) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def world(session: Session, app: Flask, client: FlaskClient) -> tuple[Collective, Campaign]:
    collective, campaign = _published(session, app, slug="fair-pip")
    for name, postcode in (("Ada Lovelace", "CF10 1AA"), ("Owain Glyndŵr", "LL55 4UR")):
        _sign(session, campaign, name, postcode)
    login(client, _owner(session, collective))
    return collective, campaign


# --- the whole journey -----------------------------------------------------------------


def test_preview_is_rendered_by_the_worker_stored_downloaded_and_verified(
    client: FlaskClient, session: Session, work: Any, world: Any
) -> None:
    collective, campaign = world
    overview = _text(client.get(f"{_base(collective, campaign)}/"))
    assert "Preview PDF" in overview
    assert "Final PDF" not in overview  # still collecting

    render_id = _render_id(_start(client, collective, campaign, "preview"))
    page = client.get(f"{_base(collective, campaign)}/pdf/{render_id}")
    assert page.status_code == 200
    assert "Waiting for a worker to start." in _text(page)
    assert '<meta http-equiv="refresh" content="2">' in _text(page)
    assert "<progress" in _text(page)

    work("pdf")

    render = _render(session, collective.id, render_id)
    assert render.status == "done", render.error
    assert render.is_cached is False
    [document] = _documents(session, collective.id)
    assert render.document_id == document.id
    assert document.kind == "preview"
    assert document.content_type == "application/pdf"
    data = bytes(document.data)
    assert data.startswith(b"%PDF-")
    assert document.sha256 == hashlib.sha256(data).hexdigest()
    assert document.size == len(data)
    assert document.pages >= 1
    # The engine reported its annex pages as they finished, and they were committed.
    assert render.progress_total >= 1
    assert render.progress_done == render.progress_total

    page = _text(client.get(f"{_base(collective, campaign)}/pdf/{render_id}"))
    assert "Your PDF is ready." in page
    assert 'http-equiv="refresh"' not in page
    assert document.sha256 in page
    download_url = f"{_base(collective, campaign)}/pdf/documents/{document.id}/download"
    assert download_url in page

    download = client.get(download_url)
    assert download.status_code == 200
    assert download.mimetype == "application/pdf"
    assert download.data == data
    assert download.headers["Content-Disposition"] == (
        f'attachment; filename="fair-pip-preview-{document.created_at:%Y-%m-%d}.pdf"'
    )
    assert download.headers["X-Content-Type-Options"] == "nosniff"

    # Anyone, logged in or not, can now check the file and its fingerprint.
    stranger = client.application.test_client()
    stranger.environ_base.update(client.environ_base)
    token = csrf_token(_text(stranger.get("/verify")))
    answer = stranger.post(
        "/verify/file",
        data={"csrf_token": token, "document": (io.BytesIO(data), "letter.pdf")},
        content_type="multipart/form-data",
    )
    assert answer.status_code == 200
    assert (
        f"This is a Chorus document: <strong>Fair PIP</strong> by "
        f"<strong>{collective.name}</strong>, the letter as drafted (not a published version), "
        f"preview (marked draft), generated "
    ) in _text(answer)
    pasted = " ".join(re.findall(".{1,8}", document.sha256.upper()))
    answer = stranger.post("/verify/fingerprint", data={"csrf_token": token, "fingerprint": pasted})
    assert "This is a Chorus document" in _text(answer)
    answer = stranger.post(
        "/verify/fingerprint", data={"csrf_token": token, "fingerprint": "ab" * 32}
    )
    assert "Not a Chorus document: no document with this fingerprint was generated by Chorus" in (
        _text(answer)
    )


def test_an_unchanged_letter_is_rendered_once_and_a_change_renders_again(
    client: FlaskClient, session: Session, work: Any, world: Any
) -> None:
    collective, campaign = world
    first = _render_id(_start(client, collective, campaign, "preview"))
    work("pdf")
    second = _render_id(_start(client, collective, campaign, "preview"))
    assert second != first
    work("pdf")

    [document] = _documents(session, collective.id)
    assert _render(session, collective.id, first).document_id == document.id
    again = _render(session, collective.id, second)
    assert again.status == "done"
    assert again.document_id == document.id
    assert again.is_cached is True
    page = _text(client.get(f"{_base(collective, campaign)}/pdf/{second}"))
    assert "Nothing had changed since the PDF made on" in page

    # A new signatory changes annex A: a new document.
    _sign(session, campaign, "Grace Hopper", "SW1A 1AA")
    third = _render_id(_start(client, collective, campaign, "preview"))
    work("pdf")
    documents = _documents(session, collective.id)
    assert len(documents) == 2
    assert _render(session, collective.id, third).document_id == documents[1].id
    assert documents[1].sha256 != documents[0].sha256


def test_a_second_click_while_one_is_waiting_gets_the_same_render(
    client: FlaskClient, session: Session, app: Flask, world: Any
) -> None:
    collective, campaign = world
    first = _render_id(_start(client, collective, campaign, "preview"))
    second = _render_id(_start(client, collective, campaign, "preview"))
    assert first == second
    session.expire_all()
    jobs = session.scalars(
        select(OutboxMessage).where(OutboxMessage.func == services.RENDER_JOB)
    ).all()
    assert len(jobs) == 1
    assert jobs[0].queue == "pdf"
    assert jobs[0].payload == {"render_id": first}
    # Pushed to RQ's pdf queue after commit, with a timeout above the engine's.
    settings = app.extensions["chorus.settings"]
    queue = Queue(queue_name(settings, "pdf"), connection=app.extensions["chorus.redis"])
    [job] = queue.get_jobs()
    assert job.id == f"outbox-{jobs[0].id}"
    assert job.timeout == JOB_TIMEOUTS["pdf"] > services.RENDER_TIMEOUT + 60


def test_the_final_pdf_waits_until_the_campaign_is_closed(
    client: FlaskClient, session: Session, work: Any, world: Any
) -> None:
    collective, campaign = world
    refused = _start(client, collective, campaign, "final")
    assert refused.status_code == 409
    assert "The final PDF can be made once the campaign is closed." in _text(refused)
    session.expire_all()
    set_current_collective(session, collective.id)
    assert session.scalar(select(func.count()).select_from(PdfRender)) == 0

    campaigns.close_campaign(session, _membership(session, collective), campaign)
    session.flush()
    set_current_collective(session, None)
    overview = _text(client.get(f"{_base(collective, campaign)}/"))
    assert "Final PDF" in overview
    render_id = _render_id(_start(client, collective, campaign, "final"))
    work("pdf")
    render = _render(session, collective.id, render_id)
    assert render.status == "done", render.error
    [document] = _documents(session, collective.id)
    assert document.kind == "final"
    version = campaigns.current_version(session, campaign)
    assert version is not None
    assert document.letter_version_id == version.id


# --- failures --------------------------------------------------------------------------


def test_a_render_that_fails_shows_the_engines_message(
    client: FlaskClient, session: Session, work: Any, world: Any, monkeypatch: Any
) -> None:
    collective, campaign = world
    # A render limit no letter can meet: the real engine gives up and says why.
    monkeypatch.setattr(services, "RENDER_TIMEOUT", 0.001)
    render_id = _render_id(_start(client, collective, campaign, "preview"))
    work("pdf")
    render = _render(session, collective.id, render_id)
    assert render.status == "failed"
    assert render.error
    assert _documents(session, collective.id) == []
    page = client.get(f"{_base(collective, campaign)}/pdf/{render_id}")
    body = _text(page)
    assert "The PDF could not be made" in body
    assert str(escape(render.error)) in body
    assert "Try again" in body
    assert 'http-equiv="refresh"' not in body
    status = client.get(f"{_base(collective, campaign)}/pdf/{render_id}/status.json").get_json()
    assert status["status"] == "failed"
    assert status["finished"] is True
    assert render.error in status["text"]
    # The worker is not stuck: the next render works.
    monkeypatch.undo()
    retry = _render_id(_start(client, collective, campaign, "preview"))
    work("pdf")
    assert _render(session, collective.id, retry).status == "done"


def test_a_final_pdf_of_a_letter_never_published_fails_with_a_reason(
    client: FlaskClient, session: Session, app: Flask, work: Any
) -> None:
    owner = make_user(session, app)
    collective = make_collective(session, owner)
    member = _membership(session, collective)
    campaign = campaigns.create_campaign(
        session, member, kind="open_letter", title="Never Published", slug="never"
    )
    campaign.state = CampaignState.CLOSED.value  # as if closed by hand in the database
    session.flush()
    set_current_collective(session, None)
    login(client, owner)
    render_id = _render_id(_start(client, collective, campaign, "final"))
    work("pdf")
    render = _render(session, collective.id, render_id)
    assert render.status == "failed"
    assert "no published letter" in render.error
    assert "no published letter" in _text(
        client.get(f"{_base(collective, campaign)}/pdf/{render_id}")
    )


# --- the job's promises ----------------------------------------------------------------


def _job_row(session: Session, render_id: int) -> OutboxMessage:
    session.expire_all()
    row = session.scalar(
        select(OutboxMessage).where(
            OutboxMessage.func == services.RENDER_JOB,
            OutboxMessage.payload["render_id"].as_integer() == render_id,
        )
    )
    assert row is not None
    return row


def test_the_job_does_nothing_for_a_render_already_done(
    client: FlaskClient, session: Session, work: Any, world: Any
) -> None:
    collective, campaign = world
    render_id = _render_id(_start(client, collective, campaign, "preview"))
    work("pdf")
    row = _job_row(session, render_id)
    assert row.done_at is not None
    # Delivered twice (a reconciler re-enqueue racing the first run): nothing changes.
    session.execute(update(OutboxMessage).where(OutboxMessage.id == row.id).values(done_at=None))
    session.flush()
    before = _render(session, collective.id, render_id)
    attempts, finished_at = before.attempts, before.finished_at
    render_document(row.id)
    after = _render(session, collective.id, render_id)
    assert (after.attempts, after.finished_at) == (attempts, finished_at)
    assert len(_documents(session, collective.id)) == 1


def test_a_render_whose_job_keeps_dying_is_failed_after_three_attempts(
    client: FlaskClient, session: Session, world: Any
) -> None:
    collective, campaign = world
    render_id = _render_id(_start(client, collective, campaign, "preview"))
    set_current_collective(session, collective.id)
    session.execute(
        update(PdfRender)
        .where(PdfRender.id == render_id)
        .values(status="rendering", attempts=services.MAX_ATTEMPTS)
    )
    session.flush()
    render_document(_job_row(session, render_id).id)
    render = _render(session, collective.id, render_id)
    assert render.status == "failed"
    assert "after 3 attempts" in render.error
    assert _job_row(session, render_id).failed_at is not None
    assert "after 3 attempts" in _text(client.get(f"{_base(collective, campaign)}/pdf/{render_id}"))


def test_renders_whose_worker_vanished_are_failed_by_the_sweep(
    client: FlaskClient, session: Session, world: Any
) -> None:
    collective, campaign = world
    queued = _render_id(_start(client, collective, campaign, "preview"))
    campaigns.close_campaign(session, _membership(session, collective), campaign)
    session.flush()
    stalled = _render_id(_start(client, collective, campaign, "final"))
    set_current_collective(session, collective.id)
    now = utcnow()
    session.execute(
        update(PdfRender)
        .where(PdfRender.id == queued)
        .values(updated_at=now - services.QUEUED_TOO_LONG - timedelta(minutes=1))
    )
    session.execute(
        update(PdfRender)
        .where(PdfRender.id == stalled)
        .values(status="rendering", updated_at=now - services.STALLED_AFTER - timedelta(minutes=1))
    )
    session.flush()
    set_current_collective(session, None)
    fresh_owner = make_user(session, client.application)
    other = make_collective(session, fresh_owner)
    other_campaign = campaigns.create_campaign(
        session, _membership(session, other), kind="open_letter", title="Fresh", slug="fresh"
    )
    fresh = services.request_render(
        session, _membership(session, other), other_campaign, services.DocumentKind.PREVIEW
    )
    session.flush()
    fresh_id, other_id = fresh.id, other.id
    set_current_collective(session, None)

    assert fail_stale_renders() == 2

    assert "No worker started this PDF" in _render(session, collective.id, queued).error
    assert "stopped before it was finished" in _render(session, collective.id, stalled).error
    assert _render(session, other_id, fresh_id).status == "queued"
    # The job that turns up late does nothing.
    render_document(_job_row(session, queued).id)
    assert _render(session, collective.id, queued).status == "failed"
    assert _documents(session, collective.id) == []


def test_progress_shows_as_text_and_a_progress_bar_while_rendering(
    client: FlaskClient, session: Session, app: Flask, world: Any
) -> None:
    collective, campaign = world
    render_id = _render_id(_start(client, collective, campaign, "preview"))
    writer = ProgressWriter(app, collective.id, render_id)
    assert writer.start() == 1
    url = f"{_base(collective, campaign)}/pdf/{render_id}"
    assert "Preparing the letter and its annexes." in _text(client.get(url))
    writer(2, 5)
    body = _text(client.get(url))
    assert "Rendering annex pages: 40%" in body
    assert '<progress id="render-progress" max="5" value="2"' in body
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in body
    assert 'src="/static/render-progress.js"' in body
    assert "<script>" not in body  # CSP: nothing inline
    assert "style=" not in body
    status = client.get(f"{url}/status.json").get_json()
    assert status == {
        "status": "rendering",
        "done": 2,
        "total": 5,
        "percent": 40,
        "finished": False,
        "text": "Rendering annex pages: 40%",
        "download_url": None,
    }
    still = _text(client.get(f"{url}?refresh=off"))
    assert 'http-equiv="refresh"' not in still
    assert "Check again" in still
    assert client.get("/static/render-progress.js").status_code == 200


# --- who may do what -------------------------------------------------------------------


def test_viewers_download_but_only_owners_and_organisers_make_pdfs(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    app: Flask,
    work: Any,
    world: Any,
) -> None:
    collective, campaign = world
    base = _base(collective, campaign)
    render_id = _render_id(_start(client, collective, campaign, "preview"))
    work("pdf")
    [document] = _documents(session, collective.id)
    data = bytes(document.data)
    viewer = make_user(session, app)
    add_member(session, collective, viewer, Role.VIEWER)
    login(other_client, viewer)
    index = _text(other_client.get(f"{base}/pdf"))
    assert "Only owners and organisers can make PDFs." in index
    assert f"{base}/pdf/documents/{document.id}/download" in index
    assert other_client.get(f"{base}/pdf/{render_id}").status_code == 200
    assert other_client.get(f"{base}/pdf/documents/{document.id}/download").data == data
    refused = form_post(other_client, f"{base}/pdf", {}, action=f"{base}/pdf/preview")
    assert refused.status_code == 403
    assert "Only owners and organisers of this collective can do that." in _text(refused)
    set_current_collective(session, collective.id)
    assert session.scalar(select(func.count()).select_from(PdfRender)) == 1


def test_another_collectives_renders_and_documents_are_404(
    client: FlaskClient,
    other_client: FlaskClient,
    session: Session,
    app: Flask,
    work: Any,
    world: Any,
) -> None:
    collective, campaign = world
    mine = f"{_base(collective, campaign)}/pdf"
    render_id = _render_id(_start(client, collective, campaign, "preview"))
    work("pdf")
    [document] = _documents(session, collective.id)
    intruder = make_user(session, app)
    theirs = make_collective(session, intruder)
    their_campaign = campaigns.create_campaign(
        session, _membership(session, theirs), kind="open_letter", title="Theirs", slug="theirs"
    )
    session.flush()
    set_current_collective(session, None)
    login(other_client, intruder)
    own = f"/app/{theirs.slug}/campaigns/{their_campaign.id}/pdf"
    for url in (
        f"{mine}/{render_id}",
        f"{mine}/{render_id}/status.json",
        f"{mine}/documents/{document.id}/download",
        f"{own}/{render_id}",  # their own campaign, our ids
        f"{own}/{render_id}/status.json",
        f"{own}/documents/{document.id}/download",
    ):
        response = other_client.get(url)
        assert response.status_code == 404, url
        assert b"%PDF" not in response.data
        assert "Fair PIP" not in _text(response)
    token = csrf_token(_text(other_client.get(f"{own}")))
    for kind in ("preview", "final"):
        assert other_client.post(f"{mine}/{kind}", data={"csrf_token": token}).status_code == 404
    assert len(_documents(session, collective.id)) == 1


def test_starting_a_render_needs_a_csrf_token(
    client: FlaskClient, session: Session, world: Any
) -> None:
    collective, campaign = world
    response = client.post(f"{_base(collective, campaign)}/pdf/preview", data={})
    assert response.status_code == 400
    assert "has expired" in _text(response)
    set_current_collective(session, collective.id)
    assert session.scalar(select(func.count()).select_from(PdfRender)) == 0


def test_verify_lookup_spans_collectives_but_the_tables_stay_under_row_security(
    session: Session, world: Any
) -> None:
    collective, campaign = world
    set_current_collective(session, collective.id)
    data = b"%PDF-1.7\n% a document of collective A\n"
    session.add(
        Document(
            campaign_id=campaign.id,
            kind="final",
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            pages=1,
            inputs_hash="c" * 64,
            data=data,
        )
    )
    session.flush()
    set_current_collective(session, None)
    # No collective set: the tables themselves show nothing (row-level security), yet the
    # verify function finds the document and says only what /verify shows.
    with session.no_autoflush:
        assert (
            session.execute(select(func.count()).select_from(Document.__table__)).scalar_one() == 0
        )
    [found] = services.verify_fingerprint(session, hashlib.sha256(data).hexdigest())
    assert found.campaign_title == "Fair PIP"
    assert found.collective_name == collective.name
    assert found.letter_version is None
    with system_scope(session):
        assert (
            session.execute(select(func.count()).select_from(Document.__table__)).scalar_one() == 1
        )
