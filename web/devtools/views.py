"""Development-only pages (registered only when CHORUS_ENV is development or test)."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from pathlib import Path

from flask import Blueprint, abort, current_app, render_template

from web.app import settings_of
from web.mail import mail_dir

bp = Blueprint("dev", __name__, url_prefix="/dev")


def _messages() -> list[tuple[str, EmailMessage]]:
    folder = mail_dir(settings_of(current_app))
    if not folder.is_dir():
        return []
    files = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True)[:200]
    out = []
    for path in files:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        out.append((path.stem, msg))
    return out


def _text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


@bp.get("/mail")
def mail() -> str:
    return render_template("dev/mail.html", messages=[(k, m, _text(m)) for k, m in _messages()])


@bp.get("/mail/<name>")
def mail_message(name: str) -> str:
    path = mail_dir(settings_of(current_app)) / f"{Path(name).name}.eml"
    if not path.is_file():
        abort(404)
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    return render_template("dev/mail_message.html", msg=msg, text=_text(msg))
