"""Without SMTP settings, email stays on the machine and /dev/mail shows it."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from tests.conftest import https_client, make_settings
from web.app import create_app
from web.http import database
from web.outbox import attach_dispatcher, queue_email
from workers.context import use_app
from workers.jobs.email import send_outbox_email


def test_without_smtp_mail_goes_to_the_dev_outbox_page(
    app: Flask, db_connection: Any, tmp_path: Any
) -> None:
    settings = app.extensions["chorus.settings"].with_overrides(
        smtp_host="", instance_path=str(tmp_path)
    )
    local = create_app(settings)
    database(local).bind_override = db_connection
    use_app(local)
    try:
        with local.app_context():
            s: Session = database(local).new_session()
            attach_dispatcher(s, local.extensions["chorus.dispatcher"])
            row = queue_email(
                s,
                to="dev@example.org",
                subject="Kept <locally>",
                text_body="See https://localhost/verify/1.abc",
                html_body="<p>See it</p>",
            )
            s.commit()
            s.close()
        send_outbox_email(row.id)
        files = list((tmp_path / "mail").glob("*.eml"))
        assert len(files) == 1
        client = https_client(local)
        page = client.get("/dev/mail").get_data(as_text=True)
        assert "Kept &lt;locally&gt;" in page
        assert "dev@example.org" in page
        detail = client.get(f"/dev/mail/{files[0].stem}").get_data(as_text=True)
        assert "https://localhost/verify/1.abc" in detail
        assert client.get("/dev/mail/..%2F..%2Fetc%2Fpasswd").status_code == 404
    finally:
        use_app(app)
        database(local).engine.dispose()


def test_dev_pages_do_not_exist_in_production(app: Flask, tmp_path: Any) -> None:
    base = app.extensions["chorus.settings"]
    settings = make_settings(
        base.database_url, base.redis_url, base.smtp_port, tmp_path, env="production"
    )
    production = create_app(settings)
    client = https_client(production)
    assert client.get("/dev/mail").status_code == 404
    database(production).engine.dispose()
