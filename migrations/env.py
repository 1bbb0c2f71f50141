"""Alembic environment: migrations run as the owner of the tables.

The URL comes from `config.attributes["url"]` (set by web.launch and the tests), else
MIGRATION_DATABASE_URL, else DATABASE_URL.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

import web.models  # noqa: F401 - registers every model on Base.metadata
from web.db import Base, normalise_url

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = (
        config.attributes.get("url")
        or os.environ.get("MIGRATION_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
    )
    if not url:
        raise SystemExit("Set MIGRATION_DATABASE_URL (or DATABASE_URL) to run migrations.")
    return normalise_url(url)


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    # Expression indexes cannot be compared by autogenerate; they are declared in models
    # and created by hand in migrations.
    return not (type_ == "index" and name in {"uq_users_email_lower"})


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=target_metadata, include_object=include_object
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(
            connection=conn, target_metadata=target_metadata, include_object=include_object
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
