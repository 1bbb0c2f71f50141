"""Tenant isolation, enforced twice (ARCHITECTURE.md, rule 1).

1. In the ORM: every SELECT/UPDATE/DELETE that touches a `TenantScoped` model gets
   `with_loader_criteria(TenantScoped, collective_id == current)`. With no current
   collective the statement is refused (`TenantContextMissing`); the execution option
   `all_collectives=True` is the only way past it. New tenant rows must belong to the
   current collective (checked before every flush).
2. In PostgreSQL: every tenant table has row-level security keyed on the
   transaction-local setting `app.collective_id`, set at the start of each transaction
   (and again whenever the current collective changes). The app connects as
   `chorus_app`, which owns nothing, so the policies bind it; raw SQL through the same
   session sees exactly what the ORM sees.

`system_scope(session)` is the narrow door for work that must span collectives (an
invitation found by its token, the outbox reconciler): it sets `app.all_collectives`
for the transaction. Like `app.collective_id`, it is a guard against mistakes, not
against an attacker who can already run SQL as the app role.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, event
from sqlalchemy.orm import (
    Mapped,
    ORMExecuteState,
    Session,
    declared_attr,
    mapped_column,
    with_loader_criteria,
)

COLLECTIVE_KEY = "chorus.collective_id"
SYSTEM_KEY = "chorus.system_scope"


class TenantContextMissing(RuntimeError):
    """A tenant-owned table was queried with no current collective set."""


class TenantScoped:
    """Mixin for every model owned by one collective."""

    @declared_attr
    def collective_id(cls) -> Mapped[int]:  # noqa: N805 - declared_attr receives the class
        return mapped_column(
            BigInteger, ForeignKey("collectives.id", ondelete="CASCADE"), index=True
        )


class SharedOrTenantScoped:
    """Mixin for rows that are either shared by every collective (collective_id NULL,
    such as the department directory) or owned by one collective. Readers see the
    shared rows and their own; only the platform (in `system_scope`) writes shared rows.
    """

    @declared_attr
    def collective_id(cls) -> Mapped[int | None]:  # noqa: N805 - declared_attr receives the class
        return mapped_column(
            BigInteger, ForeignKey("collectives.id", ondelete="CASCADE"), index=True, nullable=True
        )


def current_collective_id(session: Session) -> int | None:
    value = session.info.get(COLLECTIVE_KEY)
    return int(value) if value is not None else None


def set_current_collective(session: Session, collective_id: int | None) -> None:
    """Make `collective_id` the tenant of this session (both ORM filter and RLS)."""
    session.info[COLLECTIVE_KEY] = collective_id
    if session.in_transaction():
        _apply_settings(session.connection(), session)


@contextmanager
def system_scope(session: Session) -> Iterator[None]:
    """Let raw row-level security through for the duration of the block."""
    previous = session.info.get(SYSTEM_KEY, False)
    session.info[SYSTEM_KEY] = True
    if session.in_transaction():
        _apply_settings(session.connection(), session)
    try:
        yield
    finally:
        session.info[SYSTEM_KEY] = previous
        if session.in_transaction():
            _apply_settings(session.connection(), session)


def _apply_settings(connection: Any, session: Session) -> None:
    collective_id = session.info.get(COLLECTIVE_KEY)
    # At the start of every transaction: the driver's own call, without compiling SQL.
    connection.exec_driver_sql(
        "select set_config('app.collective_id', %(cid)s, true),"
        " set_config('app.all_collectives', %(all)s, true)",
        {
            "cid": "" if collective_id is None else str(int(collective_id)),
            "all": "on" if session.info.get(SYSTEM_KEY) else "off",
        },
    )


def _after_begin(session: Session, _transaction: Any, connection: Any) -> None:
    _apply_settings(connection, session)


def _touches_tenant_tables(state: ORMExecuteState) -> bool:
    return any(
        issubclass(mapper.class_, TenantScoped | SharedOrTenantScoped)
        for mapper in state.all_mappers
    )


def _do_orm_execute(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.execution_options.get("all_collectives", False):
        return
    if not _touches_tenant_tables(state):
        return
    collective_id = current_collective_id(state.session)
    if collective_id is None:
        raise TenantContextMissing(
            "A tenant-owned table was queried without a current collective; set one with "
            "set_current_collective() or pass execution_options(all_collectives=True)."
        )
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantScoped,
            lambda cls: cls.collective_id == collective_id,
            include_aliases=True,
        ),
        with_loader_criteria(
            SharedOrTenantScoped,
            lambda cls: (cls.collective_id == collective_id) | cls.collective_id.is_(None),
            include_aliases=True,
        ),
    )


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    if session.info.get(SYSTEM_KEY):
        return
    current = current_collective_id(session)
    for obj in session.new | session.dirty:
        if isinstance(obj, SharedOrTenantScoped):
            if obj.collective_id is None or obj.collective_id != current:
                raise TenantContextMissing(
                    f"Refusing to write a {type(obj).__name__} outside the current collective "
                    "(shared rows are written only in system_scope)."
                )
            continue
        if isinstance(obj, TenantScoped) and obj in session.new:
            owner = obj.collective_id
            if owner is None and current is not None:
                obj.collective_id = current
                continue
            if current is None or owner != current:
                raise TenantContextMissing(
                    f"Refusing to write a {type(obj).__name__} for collective {owner} "
                    f"while the current collective is {current}."
                )


HOOKS_KEY = "chorus.hooks"


def install_session_hooks(session: Session) -> None:
    """Put this session under the tenancy rules. The listeners are registered once for
    the Session class (per-session registration cost a noticeable part of each request)
    and act only on sessions marked here."""
    session.info[HOOKS_KEY] = True


@event.listens_for(Session, "after_begin")
def _class_after_begin(session: Session, transaction: Any, connection: Any) -> None:
    if session.info.get(HOOKS_KEY):
        _after_begin(session, transaction, connection)


@event.listens_for(Session, "do_orm_execute")
def _class_do_orm_execute(state: ORMExecuteState) -> None:
    if state.session.info.get(HOOKS_KEY):
        _do_orm_execute(state)


@event.listens_for(Session, "before_flush")
def _class_before_flush(session: Session, context: Any, instances: Any) -> None:
    if session.info.get(HOOKS_KEY):
        _before_flush(session, context, instances)


# --- SQL used by migrations --------------------------------------------------------

RLS_PREDICATE = (
    "(current_setting('app.all_collectives', true) = 'on'"
    " OR collective_id = nullif(current_setting('app.collective_id', true), '')::bigint)"
)


def enable_rls_sql(table: str) -> list[str]:
    """Statements that put `table` under the tenant policy (used by migrations)."""
    return [
        f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY',
        f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY',
        f'CREATE POLICY tenant_isolation ON "{table}" USING {RLS_PREDICATE} '
        f"WITH CHECK {RLS_PREDICATE}",
    ]


def enable_shared_rls_sql(table: str) -> list[str]:
    """For SharedOrTenantScoped tables: everyone reads shared rows; writes stay tenant-only."""
    # Permissive policies are OR-ed per command: SELECT passes either policy, while
    # INSERT, UPDATE and DELETE pass only tenant_isolation, so no tenant can change or
    # delete a shared row.
    return [
        *enable_rls_sql(table),
        f'CREATE POLICY shared_read ON "{table}" FOR SELECT USING (collective_id IS NULL)',
    ]


def disable_rls_sql(table: str) -> list[str]:
    return [
        f'DROP POLICY IF EXISTS shared_read ON "{table}"',
        f'DROP POLICY IF EXISTS tenant_isolation ON "{table}"',
        f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY',
        f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY',
    ]
