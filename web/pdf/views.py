"""Organiser pages for a campaign's PDFs (under
/app/<collective-slug>/campaigns/<id>/pdf): ask for a preview or the final letter, watch
the render, download the result.

Every member may look and download; owners and organisers start renders (a refusal is a
403 page that names who may). Starting is a POST that redirects to the render's progress
page, which refreshes itself every 2 seconds without JavaScript (a <meta> refresh inside
<noscript>, with a link to stop it) and, with JavaScript, is updated in place by
static/render-progress.js from the render's small JSON status. A render or document of
another collective, or of another campaign, is a 404.
"""

from __future__ import annotations

from typing import Any

from flask import abort, jsonify, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from web.campaigns.models import Campaign
from web.collectives.tenant import campaign_or_404, can_act, current_membership, tenant_blueprint
from web.forms import ConfirmForm
from web.http import db_session, refused
from web.pdf import services
from web.pdf.models import Document, DocumentKind, PdfRender, RenderStatus

bp = tenant_blueprint("pdf_documents", __name__)

PREFIX = "/<slug:collective_slug>/campaigns/<id:campaign_id>/pdf"
REFRESH_SECONDS = 2

Page = Response | str | tuple[str, int]


@bp.app_template_global("pdf_final_allowed")
def pdf_final_allowed(campaign: Campaign) -> bool:
    return services.can_make_final(campaign)


def status_text(render: PdfRender) -> str:
    """The render's state in words, as the page and the JSON status say it."""
    match render.status:
        case RenderStatus.QUEUED:
            return "Waiting for a worker to start."
        case RenderStatus.RENDERING if render.error:
            return render.error  # an attempt broke; RQ tries again
        case RenderStatus.RENDERING if not render.progress_total:
            return "Preparing the letter and its annexes."
        case RenderStatus.RENDERING:
            return f"Rendering annex pages: {render.percent}%"
        case RenderStatus.DONE:
            return "Your PDF is ready."
        case _:
            return f"The PDF could not be made. {render.error}".strip()


@bp.get(PREFIX)
def index(campaign_id: int) -> str:
    campaign = campaign_or_404(campaign_id)
    s = db_session()
    renders = services.recent_renders(s, campaign)
    documents = services.documents_by_id(s, {r.document_id for r in renders if r.document_id})
    return render_template(
        "pdf_pages/index.html",
        campaign=campaign,
        renders=renders,
        documents=documents,
        can_act=can_act(),
        final_allowed=services.can_make_final(campaign),
        status_text=status_text,
    )


def _start(campaign_id: int, kind: DocumentKind) -> Page:
    campaign = campaign_or_404(campaign_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    try:
        render = services.request_render(db_session(), current_membership(), campaign, kind)
    except PermissionError as exc:
        return refused(str(exc), 403)
    except services.PdfError as exc:
        return refused(str(exc), 409)
    return redirect(
        url_for("pdf_documents.progress", campaign_id=campaign.id, render_id=render.id), 303
    )


@bp.post(f"{PREFIX}/preview")
def start_preview(campaign_id: int) -> Page:
    return _start(campaign_id, DocumentKind.PREVIEW)


@bp.post(f"{PREFIX}/final")
def start_final(campaign_id: int) -> Page:
    return _start(campaign_id, DocumentKind.FINAL)


def _render_or_404(campaign: Campaign, render_id: int) -> PdfRender:
    try:
        return services.get_render(db_session(), campaign, render_id)
    except services.RenderNotFound:
        abort(404)


def _document(campaign: Campaign, render: PdfRender) -> Document | None:
    if render.status != RenderStatus.DONE.value or render.document_id is None:
        return None
    try:
        return services.get_document(db_session(), campaign, render.document_id)
    except services.DocumentNotFound:
        return None


@bp.get(f"{PREFIX}/<id:render_id>")
def progress(campaign_id: int, render_id: int) -> Response:
    campaign = campaign_or_404(campaign_id)
    render = _render_or_404(campaign, render_id)
    refreshing = not render.is_finished and request.args.get("refresh") != "off"
    html = render_template(
        "pdf_pages/render.html",
        campaign=campaign,
        render=render,
        document=_document(campaign, render),
        can_act=can_act(),
        refreshing=refreshing,
        refresh_seconds=REFRESH_SECONDS,
        status=status_text(render),
        final_allowed=services.can_make_final(campaign),
    )
    response = make_response(html)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get(f"{PREFIX}/<id:render_id>/status.json")
def status(campaign_id: int, render_id: int) -> Response:
    campaign = campaign_or_404(campaign_id)
    render = _render_or_404(campaign, render_id)
    document = _document(campaign, render)
    body: dict[str, Any] = {
        "status": render.status,
        "done": render.progress_done,
        "total": render.progress_total,
        "percent": render.percent,
        "finished": render.is_finished,
        "text": status_text(render),
        "download_url": url_for(
            "pdf_documents.download", campaign_id=campaign.id, document_id=document.id
        )
        if document is not None
        else None,
    }
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get(f"{PREFIX}/documents/<id:document_id>/download")
def download(campaign_id: int, document_id: int) -> Response:
    campaign = campaign_or_404(campaign_id)
    s = db_session()
    try:
        document = services.get_document(s, campaign, document_id)
    except services.DocumentNotFound:
        abort(404)
    response = Response(services.document_bytes(s, document), mimetype=document.content_type)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{services.download_name(campaign, document)}"'
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response
