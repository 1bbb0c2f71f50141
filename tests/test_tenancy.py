"""Tenant isolation, enforced twice: the ORM filter and PostgreSQL row-level security."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from tests.factories import add_member, make_collective, make_user
from web.collectives.models import Membership, Role
from web.db import APP_ROLE, Base
from web.tenancy import (
    TenantContextMissing,
    TenantScoped,
    set_current_collective,
    system_scope,
)


@pytest.fixture
def two_collectives(session: Session, app: Flask) -> tuple[int, int]:
    a_owner = make_user(session, app)
    b_owner = make_user(session, app)
    a = make_collective(session, a_owner)
    b = make_collective(session, b_owner)
    add_member(session, b, make_user(session, app), Role.VIEWER)
    return a.id, b.id


def test_orm_refuses_tenant_queries_without_a_collective(
    session: Session, two_collectives: tuple[int, int]
) -> None:
    set_current_collective(session, None)
    with pytest.raises(TenantContextMissing):
        session.scalars(select(Membership)).all()


def test_orm_sees_only_the_current_collective_even_when_asked_for_another(
    session: Session, two_collectives: tuple[int, int]
) -> None:
    a, b = two_collectives
    set_current_collective(session, a)
    assert {m.collective_id for m in session.scalars(select(Membership))} == {a}
    assert session.scalars(select(Membership).where(Membership.collective_id == b)).all() == []


def test_all_collectives_needs_both_the_orm_option_and_the_system_scope(
    session: Session, two_collectives: tuple[int, int]
) -> None:
    a, b = two_collectives
    set_current_collective(session, a)
    opts = {"all_collectives": True}
    # Past the ORM filter, row-level security still hides B.
    assert {
        m.collective_id for m in session.scalars(select(Membership), execution_options=opts)
    } == {a}
    with system_scope(session):
        seen = {
            m.collective_id for m in session.scalars(select(Membership), execution_options=opts)
        }
    assert seen == {a, b}


def test_orm_refuses_to_write_a_row_for_another_collective(
    session: Session, app: Flask, two_collectives: tuple[int, int]
) -> None:
    a, b = two_collectives
    intruder = make_user(session, app)
    set_current_collective(session, a)
    session.add(Membership(collective_id=b, user_id=intruder.id, role=Role.OWNER))
    with pytest.raises(TenantContextMissing):
        session.flush()
    session.rollback()


def test_raw_sql_as_the_app_role_sees_none_of_bs_rows(
    session: Session, two_collectives: tuple[int, int]
) -> None:
    a, b = two_collectives
    set_current_collective(session, a)
    assert session.scalar(text("select current_user")) == APP_ROLE
    assert (
        session.scalar(text("select count(*) from memberships where collective_id = :b"), {"b": b})
        == 0
    )
    assert session.scalar(text("select count(*) from memberships")) == 1
    set_current_collective(session, None)
    assert session.scalar(text("select count(*) from memberships")) == 0


def test_raw_sql_as_the_app_role_cannot_insert_or_move_rows_into_b(
    session: Session, app: Flask, two_collectives: tuple[int, int]
) -> None:
    a, b = two_collectives
    intruder = make_user(session, app)
    set_current_collective(session, a)
    with pytest.raises(DBAPIError, match="row-level security"), session.begin_nested():
        session.execute(
            text("insert into memberships (collective_id, user_id, role) values (:b, :u, 'owner')"),
            {"b": b, "u": intruder.id},
        )
    with pytest.raises(DBAPIError, match="row-level security"), session.begin_nested():
        session.execute(text("update memberships set collective_id = :b"), {"b": b})
    # Updates and deletes aimed at B touch nothing.
    assert (
        session.execute(text("delete from memberships where collective_id = :b"), {"b": b}).rowcount
        == 0
    )
    with system_scope(session):
        assert (
            session.scalar(
                text("select count(*) from memberships where collective_id = :b"), {"b": b}
            )
            == 2
        )


def test_every_tenant_table_has_forced_row_level_security_and_the_app_role_owns_nothing(
    session: Session,
) -> None:
    tenant_tables = {
        mapper.class_.__table__.name
        for mapper in Base.registry.mappers
        if issubclass(mapper.class_, TenantScoped)
    }
    assert {"memberships", "invitations"} <= tenant_tables
    # Issue #6 (migration 0016): a delivery and everything that hangs on it.
    assert {
        "deliveries",
        "delivery_events",
        "chasers",
        "responses",
        "response_attachments",
        "meetings",
        "ask_assessments",
    } <= tenant_tables
    rows = session.execute(
        text(
            "select c.relname, c.relrowsecurity, c.relforcerowsecurity, r.rolname"
            " from pg_class c join pg_roles r on r.oid = c.relowner"
            " where c.relnamespace = 'public'::regnamespace and c.relkind = 'r'"
        )
    ).all()
    by_name = {name: (rls, forced, owner) for name, rls, forced, owner in rows}
    for table in tenant_tables:
        rls, forced, owner = by_name[table]
        assert rls, f"{table} lacks row-level security"
        assert forced, f"{table} lets its owner past row-level security"
        assert owner != APP_ROLE
    assert APP_ROLE not in {owner for _, _, owner in by_name.values()}
    policies = set(
        session.scalars(
            text("select tablename from pg_policies where policyname = 'tenant_isolation'")
        )
    )
    assert tenant_tables <= policies
    is_super = session.scalar(
        text("select rolsuper or rolbypassrls from pg_roles where rolname = current_user")
    )
    assert is_super is False
