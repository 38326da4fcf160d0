"""GET /readyz over real HTTP: ready at the migration head; 503 with the reason while migrations
are pending or the database does not answer; /healthz stays a liveness check throughout."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import text

from gateway.store.db import head_revision, make_engine
from gateway.transport import readiness

from support.gateway_helpers import start_gateway

PARTNERS = [{"agency": "ISIL:DK-READY", "url": "http://127.0.0.1:9/iso18626"}]


async def test_ready_at_the_migration_head(aiohttp_client, db_url):
    client, _ = await start_gateway(aiohttp_client, db_url, PARTNERS)
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ready", "revision": head_revision()}


async def test_pending_migrations_are_not_ready(aiohttp_client, db_url):
    client, gateway = await start_gateway(aiohttp_client, db_url, PARTNERS)
    async with gateway.engine.begin() as conn:  # as if this code were newer than the database
        await conn.execute(text("UPDATE alembic_version SET version_num = '0004'"))
    response = await client.get("/readyz")
    assert response.status == 503 and response.headers["Retry-After"] == "5"
    body = await response.json()
    assert body["status"] == "unavailable"
    assert body["reason"] == f"migrations pending: the database is at 0004, this code at {head_revision()}"
    assert (await client.get("/healthz")).status == 200  # alive, only not ready


async def test_an_unreachable_database_is_not_ready(aiohttp_client):
    # The readiness route alone, over an engine pointing at a port nobody listens on.
    gone = make_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none", connect_args={"timeout": 1})
    app = web.Application()
    readiness.add_routes(app, gone)
    client = await aiohttp_client(app)
    try:
        response = await client.get("/readyz")
        assert response.status == 503
        assert (await response.json())["reason"].startswith("database unreachable: ")
    finally:
        await gone.dispose()
