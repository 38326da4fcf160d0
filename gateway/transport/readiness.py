"""GET /readyz: whether this process should get traffic (for a load balancer).

`/healthz` says the process is alive; `/readyz` also says its database answers and is at the
migration head this code ships. A process whose database is unreachable, or that runs against a
database whose migrations are pending (or ahead, during a rolling deploy of older code), answers
503 with the reason, so a load balancer takes it out until it can serve.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from ..store.db import current_revision, head_revision

READY_TIMEOUT = 2.0  # seconds the database has to answer before the process counts as not ready
ENGINE = web.AppKey("readiness_engine", AsyncEngine)


async def readyz(request: web.Request) -> web.Response:
    head = head_revision()
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            revision = await current_revision(request.app[ENGINE])
    except Exception as exc:  # noqa: BLE001 - any failure to read the revision means "not ready"
        detail = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        return _not_ready(f"database unreachable: {detail}")
    if revision != head:
        return _not_ready(f"migrations pending: the database is at {revision or 'no revision'}, this code at {head}")
    return web.json_response({"status": "ready", "revision": head})


def _not_ready(reason: str) -> web.Response:
    return web.json_response({"status": "unavailable", "reason": reason}, status=503,
                             headers={"Retry-After": "5", "Cache-Control": "no-store"})


def add_routes(app: web.Application, engine: AsyncEngine) -> None:
    app[ENGINE] = engine
    app.router.add_get("/readyz", readyz)
