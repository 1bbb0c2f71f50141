"""The migrations build exactly the models, and go down and up again cleanly."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from tests.conftest import PgCluster
from web.db import Base, normalise_url
from web.embedded import drop_database

ROOT = Path(__file__).resolve().parents[1]


def _config(url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["url"] = url
    return config


def _include(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    return not (type_ == "index" and name == "uq_users_email_lower")


def test_autogenerate_finds_no_difference_between_migrations_and_models(
    pg_cluster: PgCluster, test_database: str
) -> None:
    engine = create_engine(normalise_url(pg_cluster.admin_url(test_database)))
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_object": _include, "compare_type": True}
        )
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


def test_upgrade_downgrade_upgrade_from_an_empty_database(pg_cluster: PgCluster) -> None:
    name = pg_cluster.new_database("updown")
    url = pg_cluster.admin_url(name)
    expected = {t.name for t in Base.metadata.sorted_tables}
    engine = create_engine(normalise_url(url))
    try:
        command.upgrade(_config(url), "head")
        assert expected <= set(inspect(engine).get_table_names())
        command.downgrade(_config(url), "base")
        inspect_after = inspect(engine)
        assert set(inspect_after.get_table_names()) <= {"alembic_version"}
        assert [e["name"] for e in inspect_after.get_enums()] == []
        command.upgrade(_config(url), "head")
        assert expected <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
        drop_database(pg_cluster.admin_url("postgres"), name)
