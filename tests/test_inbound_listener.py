"""The inbound SMTP listener (`python -m workers.inbound`), spoken to with smtplib over
loopback: replies attach to their delivery, garbage is kept as malformed and the
listener keeps answering, other domains are refused (no open relay), oversized mail is
refused with 552, and SIGTERM stops it cleanly. Uses the live database (the listener
commits from its own thread or process)."""

from __future__ import annotations

import os
import secrets
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from tests.test_inbound import email_to, make_world
from web.db import normalise_url
from web.embedded import free_port
from web.http import database
from workers.inbound import InboundListener

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.live


@pytest.fixture
def live_app(live_app_factory: Callable[..., Flask], live_db: str) -> Iterator[Flask]:
    app = live_app_factory()
    yield app
    database(app).engine.dispose()


@pytest.fixture
def listener(live_app: Flask) -> Iterator[InboundListener]:
    server = InboundListener(live_app, "127.0.0.1", free_port())
    server.start()
    yield server
    server.stop()


def _world(app: Flask) -> Any:
    session: Session = database(app).new_session()
    try:
        world = make_world(session, app, slug=f"listener-{secrets.token_hex(3)}")
        session.commit()
        return world
    finally:
        session.close()


def _rows(admin_url: str, sql: str) -> list[Any]:
    engine = create_engine(normalise_url(admin_url))
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)))
    finally:
        engine.dispose()


def _send(port: int, raw: bytes, to: list[str], sender: str = "j.patel@dwp.gov.uk") -> Any:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        return smtp.sendmail(sender, to, raw)


def test_a_reply_attaches_and_garbage_is_kept_while_the_listener_keeps_answering(
    live_app: Flask, live_db: str, listener: InboundListener
) -> None:
    world = _world(live_app)
    address = f"reply+{world.key}@reply.chorus.localhost"

    # Random bytes in lines (SMTP itself refuses lines over 1,000 bytes, before us).
    noise = secrets.token_bytes(4000).replace(b"\r", b"").replace(b"\n", b"")
    garbage = b"\r\n".join(noise[i : i + 200] for i in range(0, len(noise), 200))
    assert _send(listener.port, garbage, [address]) == {}
    assert _send(listener.port, b"\x00\x01\x02 not mail at all", [address]) == {}
    # Still answering, and a real reply after the garbage is attached.
    assert _send(listener.port, email_to(address.upper()), [address.upper()]) == {}
    # The same message again (a sender's retry) is accepted and stored once.
    again = email_to(address, subject="RE: Fair PIP (again)")
    assert _send(listener.port, again, [address]) == {}
    assert _send(listener.port, again, [address]) == {}

    messages = _rows(
        live_db,
        "SELECT status, source, envelope_from, envelope_to, delivery_id FROM inbound_messages "
        "ORDER BY id",
    )
    assert [(m.status, m.source) for m in messages] == [
        ("malformed", "smtp"),
        ("malformed", "smtp"),
        ("attached", "smtp"),
        ("attached", "smtp"),
    ]
    assert messages[2].envelope_from == "j.patel@dwp.gov.uk"
    assert messages[2].envelope_to == [address.upper()]
    assert messages[2].delivery_id == world.delivery_id
    responses = _rows(live_db, "SELECT kind, channel, delivery_id FROM responses ORDER BY id")
    assert [tuple(r) for r in responses] == [("substantive", "email", world.delivery_id)] * 2
    # The organiser's email is in the outbox, committed with the response.
    assert len(_rows(live_db, "SELECT id FROM outbox_messages WHERE kind = 'email'")) == 2


def test_an_unknown_reply_address_is_held_for_the_operator(
    live_app: Flask, live_db: str, listener: InboundListener
) -> None:
    _world(live_app)
    address = "reply+" + "a" * 32 + "@reply.chorus.localhost"
    assert _send(listener.port, email_to(address), [address]) == {}
    assert [r.status for r in _rows(live_db, "SELECT status FROM inbound_messages")] == ["held"]


def test_mail_for_another_domain_is_refused_as_relay(
    live_app: Flask, live_db: str, listener: InboundListener
) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        _send(listener.port, email_to("someone@example.org"), ["someone@example.org"])
    [(code, message)] = refused.value.recipients.values()
    assert code == 550
    assert b"relay denied" in message
    # One good recipient among refused ones: only ours is taken.
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=30) as smtp:
        smtp.ehlo()
        smtp.mail("x@example.org")
        assert smtp.rcpt("victim@reply.chorus.localhost.evil.example")[0] == 550
        assert smtp.rcpt("reply+abc@REPLY.chorus.localhost")[0] == 250
    assert _rows(live_db, "SELECT id FROM inbound_messages") == []


def test_an_oversized_message_is_refused_with_552(
    live_app: Flask, live_db: str, listener: InboundListener
) -> None:
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=60) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("size")
        assert int(smtp.esmtp_features["size"]) == 30 * 1024 * 1024
    big = email_to("reply+" + "b" * 32 + "@reply.chorus.localhost")
    big += (b"x" * 76 + b"\r\n") * (31 * 1024 * 1024 // 78)
    with pytest.raises(smtplib.SMTPSenderRefused) as refused:  # SIZE= says it up front
        _send(listener.port, big, ["reply+" + "b" * 32 + "@reply.chorus.localhost"])
    assert refused.value.smtp_code == 552
    # Without SIZE declared, the data itself is cut off and refused.
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=60) as smtp:
        smtp.ehlo()
        smtp.mail("x@example.org")
        smtp.rcpt("reply+" + "b" * 32 + "@reply.chorus.localhost")
        code, _ = smtp.data(big)
        assert code == 552
    assert _rows(live_db, "SELECT id FROM inbound_messages") == []
    # And it still answers.
    address = "reply+" + "c" * 32 + "@reply.chorus.localhost"
    assert _send(listener.port, email_to(address), [address]) == {}


def test_python_m_workers_inbound_serves_and_stops_cleanly_on_sigterm(
    live_app: Flask, live_db: str, tmp_path: Path
) -> None:
    settings = live_app.extensions["chorus.settings"]
    port = free_port()
    env = {
        **os.environ,
        "CHORUS_ENV": "test",
        "CHORUS_INSTANCE_PATH": str(tmp_path),
        "SECRET_KEY": settings.secret_key,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "INBOUND_SMTP_HOST": "127.0.0.1",
        "INBOUND_SMTP_PORT": str(port),
    }
    world = _world(live_app)
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.inbound"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=2) as smtp:
                    smtp.noop()
                break
            except OSError:
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < deadline, "the listener did not start"
                time.sleep(0.2)
        address = f"reply+{world.key}@reply.chorus.localhost"
        assert _send(port, email_to(address), [address]) == {}
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert f"listening on 127.0.0.1:{port}" in output
    assert "stopped" in output
    assert "Traceback" not in output
    assert [r.status for r in _rows(live_db, "SELECT status FROM inbound_messages")] == ["attached"]


def test_a_taken_port_is_a_clear_error_not_a_traceback(
    live_app: Flask, tmp_path: Path, listener: InboundListener
) -> None:
    settings = live_app.extensions["chorus.settings"]
    env = {
        **os.environ,
        "CHORUS_ENV": "test",
        "CHORUS_INSTANCE_PATH": str(tmp_path),
        "SECRET_KEY": settings.secret_key,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
    }
    done = subprocess.run(
        [sys.executable, "-m", "workers.inbound", "--port", str(listener.port)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert f"could not listen on 127.0.0.1:{listener.port}" in done.stderr
