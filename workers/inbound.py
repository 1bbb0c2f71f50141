"""`python -m workers.inbound`: the inbound SMTP listener for replies to deliveries.

For self-hosting: point the MX of INBOUND_DOMAIN at this process (or relay that domain
to it). It listens on INBOUND_SMTP_HOST:INBOUND_SMTP_PORT (default 127.0.0.1:2525) with
aiosmtpd and:

- accepts recipients at INBOUND_DOMAIN only; any other is refused with
  "550 5.7.1 relay denied" (it is not an open relay);
- advertises SIZE 30 MB and refuses larger messages with 552;
- hands each message to `web.responses.inbound.receive_message` in its own session and
  transaction, in a worker thread (the database is not touched on the event loop);
- answers 250 once the message is committed (attached, held, malformed, or a
  duplicate of one already stored). If handling raised (the database went away, say),
  it stores the raw bytes as malformed if it still can, and answers
  "451 4.3.0 try again later": the sender retries, and a retry of a message that was
  stored is a duplicate, answered 250. Nothing on the wire can crash it: aiosmtpd
  answers protocol errors itself, and every handler error becomes a 451;
- stops cleanly on SIGTERM or SIGINT: it stops accepting, lets the message in hand
  finish, and closes the database pool.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SMTPSession
from flask import Flask

from web.db import Database
from web.outbox import attach_dispatcher
from web.responses.inbound import (
    MAX_ENVELOPE_RECIPIENTS,
    MAX_MESSAGE_BYTES,
    receive_message,
    store_malformed,
)
from web.settings import Settings

log = logging.getLogger("workers.inbound")

RELAY_DENIED = "550 5.7.1 relay denied"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
TRY_LATER = "451 4.3.0 Temporary failure, please try again later"
ACCEPTED = "250 2.0.0 Message accepted"


def _domain_of(address: str) -> str:
    return address.strip().strip("<>").rpartition("@")[2].rstrip(".").lower()


class InboundHandler:
    """aiosmtpd handler: accept mail for INBOUND_DOMAIN and store it (see the module)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.settings: Settings = app.extensions["chorus.settings"]
        self.domain = self.settings.inbound_domain.strip().rstrip(".").lower()
        self.lock = threading.Lock()  # one message in the database at a time, in order

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: SMTP,
        session: SMTPSession,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if _domain_of(address) != self.domain:
            log.info("refused relay to %r from %r", address[:200], envelope.mail_from)
            return RELAY_DENIED
        if len(envelope.rcpt_tos) >= MAX_ENVELOPE_RECIPIENTS:
            return TOO_MANY_RECIPIENTS
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: SMTPSession, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        mail_from = str(envelope.mail_from or "")
        rcpt_tos = [str(r) for r in envelope.rcpt_tos]
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, self.process, bytes(raw), mail_from, rcpt_tos)
        except Exception:  # never let a handler error reach aiosmtpd as a 500
            log.exception("inbound message could not be processed")
            return TRY_LATER

    def _session(self) -> Any:
        db: Database = self.app.extensions["chorus.db"]
        session = db.new_session()
        attach_dispatcher(session, self.app.extensions.get("chorus.dispatcher"))
        return session

    def process(self, raw: bytes, mail_from: str, rcpt_tos: Sequence[str]) -> str:
        """Store and handle one message in its own transaction; the SMTP answer."""
        with self.lock, self.app.app_context():
            session = self._session()
            try:
                result = receive_message(
                    session,
                    self.settings,
                    raw,
                    source="smtp",
                    envelope_from=mail_from,
                    envelope_to=rcpt_tos,
                )
                session.commit()
            except Exception as exc:
                session.rollback()
                log.exception("inbound message from %r failed; keeping it raw", mail_from)
                self._keep_raw(raw, mail_from, rcpt_tos, exc)
                return TRY_LATER
            finally:
                session.close()
        log.info(
            "inbound message from %r to %s: %s%s (message %s, delivery %s)",
            mail_from[:200],
            ",".join(r[:200] for r in rcpt_tos[:5]),
            result.status,
            f" {result.kind}" if result.kind else "",
            result.inbound_message_id,
            result.delivery_id,
        )
        return ACCEPTED

    def _keep_raw(
        self, raw: bytes, mail_from: str, rcpt_tos: Sequence[str], exc: BaseException
    ) -> None:
        session = self._session()
        try:
            store_malformed(
                session,
                raw,
                source="smtp",
                envelope_from=mail_from,
                envelope_to=rcpt_tos,
                note=f"Chorus failed while handling this message ({type(exc).__name__}).",
            )
            session.commit()
        except Exception:
            session.rollback()
            log.exception("could not even store the raw message from %r", mail_from)
        finally:
            session.close()


class InboundListener:
    """The SMTP server in a background thread (aiosmtpd's Controller)."""

    def __init__(self, app: Flask, host: str | None = None, port: int | None = None) -> None:
        settings: Settings = app.extensions["chorus.settings"]
        self.handler = InboundHandler(app)
        self.host = host or settings.inbound_smtp_host
        self.port = port or settings.inbound_smtp_port
        self.controller = Controller(
            self.handler,
            hostname=self.host,
            port=self.port,
            server_hostname=settings.inbound_domain,
            ident="Chorus inbound",
            data_size_limit=MAX_MESSAGE_BYTES,
            enable_SMTPUTF8=True,
            ready_timeout=10,
        )

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workers.inbound", description=__doc__)
    parser.add_argument("--host", help="listen address (default INBOUND_SMTP_HOST)")
    parser.add_argument("--port", type=int, help="listen port (default INBOUND_SMTP_PORT)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s inbound %(levelname)s %(message)s")
    from workers.context import get_app

    app = get_app()
    listener = InboundListener(app, args.host, args.port)
    try:
        listener.start()
    except Exception as exc:  # the port is taken, the address is not ours...
        log.error(
            "could not listen on %s:%s: %s (set INBOUND_SMTP_HOST / INBOUND_SMTP_PORT)",
            listener.host,
            listener.port,
            exc,
        )
        sys.exit(2)
    log.info(
        "listening on %s:%s for mail to *@%s",
        listener.host,
        listener.port,
        app.extensions["chorus.settings"].inbound_domain,
    )
    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        log.info("stopping (signal %s)", signum)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping.wait(0.5):
        pass
    listener.stop()
    with listener.handler.lock:  # the message in hand, if any, is finished
        pass
    db: Database = app.extensions["chorus.db"]
    db.engine.dispose()
    log.info("stopped")


if __name__ == "__main__":
    main()
