"""Database plumbing: the declarative base, the engine, and one session per unit of work.

A `Database` is built by `create_app` (never at import time) and kept in
`app.extensions["chorus.db"]`. Services receive a `Session` and only ever `flush()`;
the request (see `web.app`) or the job wrapper (see `workers.context`) commits in
exactly one place.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, MetaData, create_engine, event, func
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

APP_ROLE = "chorus_app"


def sql_in(values: Iterable[enum.StrEnum]) -> str:
    """`'a', 'b'` for a CHECK constraint listing an enum's values."""
    return ", ".join(f"'{v.value}'" for v in values)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class IdMixin:
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow
    )


def normalise_url(url: str) -> str:
    """Use the psycopg 3 driver whatever spelling the operator gave."""
    parsed = make_url(url)
    if parsed.drivername in {"postgres", "postgresql"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


class Database:
    """The engine and session factory of one app (or one worker process)."""

    def __init__(self, url: str, *, pool_size: int = 5, echo: bool = False) -> None:
        self.url = normalise_url(url)
        self.engine: Engine = create_engine(
            self.url,
            pool_size=pool_size,
            max_overflow=10,
            pool_recycle=1800,
            echo=echo,
        )
        event.listen(self.engine, "connect", _assume_app_role)
        event.listen(self.engine, "checkout", _ping_if_idle)
        event.listen(self.engine, "checkin", _note_last_use)
        self.session_factory = sessionmaker(bind=self.engine, expire_on_commit=False)
        # Tests bind sessions to one connection inside an outer transaction; see conftest.
        self.bind_override: Any = None

    def new_session(self) -> Session:
        from web.tenancy import install_session_hooks

        if self.bind_override is not None:
            session = Session(
                bind=self.bind_override,
                join_transaction_mode="create_savepoint",
                expire_on_commit=False,
            )
        else:
            session = self.session_factory()
        install_session_hooks(session)
        return session

    @contextmanager
    def session_scope(self) -> Iterator[Session]:
        """One unit of work outside a request: commit on success, roll back on error."""
        session = self.new_session()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose_after_fork(self) -> None:
        """Forget the parent's pooled connections without closing them (CKAN's habit)."""
        self.engine.dispose(close=False)


# A pooled connection unused for this long is pinged before it is handed out (a
# restarted or failed-over server leaves dead connections in the pool). Busy connections
# skip the ping: it was a round trip on every request, a tenth of the signing path.
PING_IDLE_SECONDS = 5.0


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """SQLAlchemy's pessimistic disconnect handling, for connections that sat idle."""
    last = record.info.get("last_checkin")
    if last is not None and time.monotonic() - last < PING_IDLE_SECONDS:
        return
    try:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("select 1")
        finally:
            cursor.close()
        dbapi_connection.rollback()
    except Exception as exc:
        # The pool drops this connection and checks out (or opens) another.
        raise DisconnectionError(str(exc)) from exc


def _note_last_use(_dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info["last_checkin"] = time.monotonic()


def _assume_app_role(dbapi_connection: Any, _record: Any) -> None:
    """Row-level security only binds roles that do not own the tables.

    Deployments connect as `chorus_app` directly. If an operator points DATABASE_URL at
    a more powerful role that is a member of `chorus_app` (or a superuser), switch to it
    at once so the policies still apply; if the role does not exist, connect as given.
    """
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(
            "select current_user, exists(select 1 from pg_roles where rolname = %s)", (APP_ROLE,)
        )
        current, exists = cursor.fetchone()
        if current != APP_ROLE and exists:
            cursor.execute("select pg_has_role(current_user, %s, 'MEMBER')", (APP_ROLE,))
            (is_member,) = cursor.fetchone()
            if is_member:
                cursor.execute(f'set role "{APP_ROLE}"')
    finally:
        cursor.close()
    dbapi_connection.commit()
