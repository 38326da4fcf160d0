"""Shared fixtures. Database fixtures: `db_url` and `engine`, each test run on SQLite and PostgreSQL.

- SQLite: a fresh file in the test's tmp_path.
- PostgreSQL: `postgresql+asyncpg://postgres@127.0.0.1:5432/test` (override with
  GATEWAY_TEST_POSTGRES_URL); each test gets its own schema (`?search_path=gwtest_...` in the URL,
  which `gateway.store.db.make_engine` understands), dropped afterwards. Skipped when the server is
  not reachable.

`engine` is an AsyncEngine on a database migrated to head; `db_url` is the URL alone (not migrated),
for code that opens its own engine (`make_engine(db_url)`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.store.db import make_engine, migrate_async

POSTGRES_URL = os.environ.get(
    "GATEWAY_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'gateway.sqlite3'}"
        return
    schema = f"gwtest_{uuid.uuid4().hex[:16]}"
    admin = make_engine(POSTGRES_URL, connect_args={"timeout": 5})
    try:
        async with admin.begin() as conn:
            await conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "not reachable"
        await admin.dispose()
        u = make_url(POSTGRES_URL)
        pytest.skip(f"PostgreSQL not reachable at {u.host}:{u.port or 5432}: {exc}")
    try:
        url = make_url(POSTGRES_URL).update_query_dict({"search_path": schema})
        yield url.render_as_string(hide_password=False)
    finally:
        async with admin.begin() as conn:
            await conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.dispose()


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(db_url)
    await migrate_async(eng)
    try:
        yield eng
    finally:
        await eng.dispose()
