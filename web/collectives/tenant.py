"""Blueprints for organiser pages under /app/<collective-slug>/...

`tenant_blueprint()` gives every such blueprint the same guard: log in first; the slug
must name a collective the person belongs to (404 otherwise, never a hint that it
exists); that collective becomes the session's tenant, so every query in the view is
filtered by it; `url_for` fills in the current slug.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, abort, current_app, g
from flask_login import current_user, login_required
from sqlalchemy import select

from web.collectives.models import Collective, Membership
from web.collectives.services import membership_for
from web.http import db_session

if TYPE_CHECKING:
    from web.campaigns.models import Campaign


def tenant_blueprint(name: str, import_name: str, url_prefix: str = "/app") -> Blueprint:
    bp = Blueprint(name, import_name, url_prefix=url_prefix)

    @bp.before_request
    @login_required
    def require_login() -> None:
        return None

    @bp.url_value_preprocessor
    def load_collective(_endpoint: str | None, values: dict[str, Any] | None) -> None:
        if not values or "collective_slug" not in values:
            return
        slug = values.pop("collective_slug")
        if not current_user.is_authenticated:
            return  # require_login answers
        s = db_session()
        collective = s.scalar(select(Collective).where(Collective.slug == slug))
        if collective is None:
            abort(404)
        membership = membership_for(s, collective, current_user)
        if membership is None:
            abort(404)
        g.collective = collective
        g.membership = membership

    @bp.url_defaults
    def add_collective_slug(endpoint: str, values: dict[str, Any]) -> None:
        if "collective_slug" in values or "collective" not in g:
            return
        if current_app.url_map.is_endpoint_expecting(endpoint, "collective_slug"):
            values["collective_slug"] = g.collective.slug

    return bp


def current_membership() -> Membership:
    membership: Membership = g.membership
    return membership


def current_collective() -> Collective:
    collective: Collective = g.collective
    return collective


def can_act() -> bool:
    """Owners and organisers act; every other member reads."""
    from web.collectives.models import Role

    return current_membership().role in (Role.OWNER, Role.ORGANISER)


def campaign_or_404(campaign_id: int) -> Campaign:
    """One of the current collective's campaigns, or a 404."""
    from web.campaigns.services import NotFoundError, get_campaign

    try:
        return get_campaign(db_session(), campaign_id)
    except NotFoundError:
        abort(404)
