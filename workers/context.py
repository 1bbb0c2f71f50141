"""Everything a job needs: the app (built once per process), a session, a collective.

`@job` wraps functions that serve one outbox row: the job is called with the row's id,
locks the row, does nothing if it is already done (idempotent), runs with the row's
collective as the tenant and one session that commits once. `@system_job` wraps
recurring jobs that span collectives (the reconciler, purges).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from web.db import Database, utcnow
from web.outbox import OutboxMessage, attach_dispatcher
from web.settings import Settings
from web.tenancy import set_current_collective, system_scope

log = logging.getLogger(__name__)

_app: Flask | None = None

F = TypeVar("F", bound=Callable[..., Any])


class PermanentJobError(Exception):
    """The job cannot succeed by retrying; the row is marked failed with this message."""


def use_app(app: Flask | None) -> None:
    """Make `app` the one jobs in this process run under (the worker main, tests)."""
    global _app  # noqa: PLW0603 - one app per worker process, by design
    _app = app


def get_app() -> Flask:
    global _app  # noqa: PLW0603
    if _app is None:
        from web.app import create_app

        _app = create_app()
    return _app


def _session(app: Flask) -> Session:
    db: Database = app.extensions["chorus.db"]
    session = db.new_session()
    attach_dispatcher(session, app.extensions.get("chorus.dispatcher"))
    return session


def settings() -> Settings:
    value: Settings = get_app().extensions["chorus.settings"]
    return value


def job(fn: Callable[[Session, OutboxMessage], None]) -> Callable[[int], None]:
    @functools.wraps(fn)
    def run(outbox_id: int) -> None:
        app = get_app()
        with app.app_context():
            session = _session(app)
            try:
                row = session.scalar(
                    select(OutboxMessage).where(OutboxMessage.id == outbox_id).with_for_update()
                )
                if row is None or row.done_at is not None or row.failed_at is not None:
                    session.rollback()
                    return
                row.attempts += 1
                set_current_collective(session, row.collective_id)
                try:
                    fn(session, row)
                except PermanentJobError as exc:
                    row.failed_at = utcnow()
                    row.last_error = str(exc)[:2000]
                else:
                    row.done_at = utcnow()
                session.commit()
            except BaseException as exc:
                session.rollback()
                _record_error(app, outbox_id, exc)
                raise
            finally:
                session.close()

    return run


def _record_error(app: Flask, outbox_id: int, exc: BaseException) -> None:
    session = _session(app)
    try:
        row = session.get(OutboxMessage, outbox_id)
        if row is not None:
            row.attempts += 1
            row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            session.commit()
    except Exception:
        session.rollback()
        log.exception("could not record the error of outbox row %s", outbox_id)
    finally:
        session.close()


def system_job(fn: F) -> F:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        app = get_app()
        with app.app_context():
            session = _session(app)
            try:
                with system_scope(session):
                    result = fn(session, *args, **kwargs)
                    session.commit()
                return result
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

    return run  # type: ignore[return-value]
