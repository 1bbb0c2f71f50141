"""Sign-up, verification, log in and out, password reset."""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from web.accounts import services
from web.accounts.forms import LoginForm, ResetForm, ResetRequestForm, SignupForm
from web.app import settings_of
from web.extensions import limiter
from web.forms import ConfirmForm
from web.http import db_session, safe_next

bp = Blueprint("accounts", __name__)


def _email_key() -> str:
    return "email:" + (request.form.get("email") or "").strip().lower()[:254]


def _render(template: str, status: int = 200, **ctx: object) -> tuple[str, int]:
    return render_template(template, **ctx), status


def _invalid_status(form: object) -> int:
    return 422 if request.method == "POST" else 200


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit("20 per hour", methods=["POST"])
def signup() -> Response | tuple[str, int]:
    form = SignupForm()
    next_url = safe_next(request.values.get("next"), "")
    if form.validate_on_submit():
        try:
            services.sign_up(
                db_session(),
                settings_of(current_app),
                email=form.email.data or "",
                display_name=form.display_name.data or "",
                password=form.password.data or "",
            )
        except services.AccountError as exc:
            form.password.errors = [str(exc)]
        else:
            if next_url:
                session["after_verify"] = next_url
            return redirect(url_for("accounts.check_email"))
    return _render("accounts/signup.html", _invalid_status(form), form=form, next=next_url)


@bp.get("/signup/check-email")
def check_email() -> tuple[str, int]:
    return _render("accounts/check_email.html", unverified=request.args.get("unverified") == "1")


@bp.route("/verify/<token>", methods=["GET", "POST"])
def verify(token: str) -> Response | tuple[str, int]:
    form = ConfirmForm()
    s = db_session()
    try:
        user = services.check_verification_token(s, token)
    except services.AccountError as exc:
        return _render("accounts/link_invalid.html", 404, message=str(exc))
    if form.validate_on_submit():
        try:
            user = services.verify_email(s, token)
        except services.AccountError as exc:
            return _render("accounts/link_invalid.html", 404, message=str(exc))
        login_user(user)
        flash("Your email address is confirmed. Welcome to Chorus.", "success")
        return redirect(safe_next(session.pop("after_verify", None), url_for("collectives.home")))
    return _render("accounts/verify.html", form=form, user=user)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("10 per minute;60 per hour", methods=["POST"])
@limiter.limit("20 per hour", methods=["POST"], key_func=_email_key)
def login() -> Response | tuple[str, int]:
    form = LoginForm()
    next_url = safe_next(request.values.get("next"), "")
    error = None
    if form.validate_on_submit():
        s = db_session()
        settings = settings_of(current_app)
        try:
            user = services.authenticate(
                s, settings, form.email.data or "", form.password.data or ""
            )
        except services.AccountError as exc:
            error = str(exc)
        else:
            if not user.is_verified:
                # A redirect (not an error status) so the new link is committed and sent.
                services.send_verification(s, settings, user)
                return redirect(url_for("accounts.check_email", unverified=1))
            else:
                login_user(user)
                return redirect(next_url or url_for("collectives.home"))
    status = 422 if request.method == "POST" else 200
    return _render("accounts/login.html", status, form=form, next=next_url, error=error)


@bp.post("/logout")
def logout() -> Response:
    form = ConfirmForm()
    if form.validate_on_submit():
        logout_user()
        session.clear()
        flash("You have logged out.", "info")
    return redirect(url_for("pages.index"))


@bp.route("/reset", methods=["GET", "POST"])
@limiter.limit("5 per minute;20 per hour", methods=["POST"])
@limiter.limit("5 per hour", methods=["POST"], key_func=_email_key)
def reset_request() -> Response | tuple[str, int]:
    form = ResetRequestForm()
    if form.validate_on_submit():
        services.request_password_reset(
            db_session(), settings_of(current_app), form.email.data or ""
        )
        return redirect(url_for("accounts.reset_sent"))
    return _render("accounts/reset_request.html", _invalid_status(form), form=form)


@bp.get("/reset/sent")
def reset_sent() -> tuple[str, int]:
    return _render("accounts/reset_sent.html")


@bp.route("/reset/<token>", methods=["GET", "POST"])
@limiter.limit("10 per minute", methods=["POST"])
def reset(token: str) -> Response | tuple[str, int]:
    form = ResetForm()
    s = db_session()
    try:
        services.check_reset_token(s, token)
    except services.AccountError as exc:
        return _render("accounts/link_invalid.html", 404, message=str(exc))
    if form.validate_on_submit():
        try:
            user = services.reset_password(
                s, settings_of(current_app), token, form.password.data or ""
            )
        except services.AccountError as exc:
            form.password.errors = [str(exc)]
        else:
            logout_user()
            session.clear()
            login_user(user)
            flash("Your password has been changed.", "success")
            return redirect(url_for("collectives.home"))
    return _render("accounts/reset.html", _invalid_status(form), form=form)


@bp.get("/account")
@login_required
def account() -> tuple[str, int]:
    return _render("accounts/account.html", user=current_user)
