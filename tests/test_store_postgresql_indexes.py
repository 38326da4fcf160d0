"""PostgreSQL's listing indexes (migration 0004): the planner can use them for the staff API's
queries, and the migration goes on without the trigram index where pg_trgm can't be installed."""

from __future__ import annotations

import importlib.util
import logging
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from conftest import POSTGRES_URL
from gateway.api.queries import SEARCH_TEXT, Filters
from gateway.store import db
from gateway.store.db import current_revision, head_revision, make_engine, migrate_async
from gateway.store.models import borrowing_requests_t as br

INDEXES = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'borrowing_requests'"


def _postgresql_only(engine: AsyncEngine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: SQLite answers the listing from its covering index (0002)")


async def _plan(engine: AsyncEngine, stmt) -> str:
    """The plan with sequential scans priced out: on an empty table that shows which index the
    planner can use for the statement, not which one it would pick for a few rows."""
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SET enable_seqscan = off")
        compiled = stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
        rows = await conn.exec_driver_sql(f"EXPLAIN {compiled}")
        return "\n".join(r[0] for r in rows)


async def test_free_text_words_use_the_trigram_index(engine: AsyncEngine) -> None:
    _postgresql_only(engine)
    async with engine.connect() as conn:
        if not (await conn.exec_driver_sql(
                "SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_trgm'")).scalar():
            pytest.skip("pg_trgm is not available on this server (Debian: postgresql-contrib)")
        assert "ix_borrowing_requests_search" in set((await conn.exec_driver_sql(INDEXES)).scalars())
    stmt = select(br.c.id).where(*Filters(q=["river", "war_and"]).clauses("postgresql"))
    assert "Bitmap Index Scan on ix_borrowing_requests_search" in await _plan(engine, stmt)


async def test_facets_and_filters_read_the_narrow_index_only(engine: AsyncEngine) -> None:
    _postgresql_only(engine)
    c = br.c
    facets = select(c.status, c.active_partner, c.format, c.needs_attention, func.count()).group_by(
        c.status, c.active_partner, c.format, c.needs_attention)
    assert "Index Only Scan using ix_borrowing_requests_facets" in await _plan(engine, facets)
    filtered = select(c.id, c.created_at, c.requester).where(*Filters(status=["REQUEST_SENT"]).clauses("postgresql"))
    assert "Index Only Scan using ix_borrowing_requests_facets" in await _plan(engine, filtered)


@pytest.fixture
async def limited_url():
    """A schema owned by a role that may not create extensions (no CREATE on the database)."""
    name = f"gwlim_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL, connect_args={"timeout": 5})
    try:
        async with admin.begin() as conn:
            installed = (await conn.exec_driver_sql(
                "SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'")).scalar()
            if installed:
                pytest.skip("pg_trgm is installed in this database already: the refusal can't be shown")
            await conn.exec_driver_sql(f'CREATE ROLE "{name}" LOGIN')
            await conn.exec_driver_sql(f'CREATE SCHEMA "{name}" AUTHORIZATION "{name}"')
    except pytest.skip.Exception:
        await admin.dispose()
        raise
    except Exception as exc:  # noqa: BLE001 - not reachable
        await admin.dispose()
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    try:
        url = make_url(POSTGRES_URL).set(username=name).update_query_dict({"search_path": name})
        yield url.render_as_string(hide_password=False)
    finally:
        async with admin.begin() as conn:
            await conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            await conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{name}"')
        await admin.dispose()


async def test_without_pg_trgm_the_migration_warns_and_search_still_works(limited_url, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="alembic.runtime.migration")
    engine = make_engine(limited_url)
    try:
        await migrate_async(engine)
        head = head_revision()
        assert await current_revision(engine) == head
        async with engine.connect() as conn:
            indexes = set((await conn.exec_driver_sql(INDEXES)).scalars())
            assert "ix_borrowing_requests_facets" in indexes and "ix_borrowing_requests_search" not in indexes
            found = await conn.execute(select(br.c.id).where(*Filters(q=["river"]).clauses("postgresql")))
            assert found.all() == []
        assert any("pg_trgm is not available" in r.getMessage() for r in caplog.records)
    finally:
        await engine.dispose()


def test_the_search_expression_is_the_one_the_index_is_built_on() -> None:
    """The planner uses the trigram index only for the very expression it was built on; the
    migration keeps a frozen copy, so a change to the query's must come with a new migration."""
    path = Path(db.__file__).parent / "migrations" / "versions" / "0004_postgresql_listing_indexes.py"
    spec = importlib.util.spec_from_file_location("migration_0004", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert str(SEARCH_TEXT) == module.SEARCH_TEXT


async def test_the_staff_lists_new_facets_read_narrow_indexes_only(engine: AsyncEngine) -> None:
    """Migration 0011: requested media, pickup location, level of service and maximum fee are
    INCLUDEd in the facets index; unread messages come from a partial index."""
    _postgresql_only(engine)
    from gateway.api.queries import _row_facet_columns, unread_request_ids

    c = br.c
    columns = _row_facet_columns(c, c.maximum_fee)
    assert "Index Only Scan using ix_borrowing_requests_facets" in await _plan(
        engine, select(*columns, func.count()).group_by(*columns))
    assert "ix_general_messages_unread" in await _plan(engine, unread_request_ids())
