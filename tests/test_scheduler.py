"""The in-process timer runs the borrowing deadline ticks of a real gateway."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from gateway.runtime import Gateway
from gateway.core import RequestDetails
from gateway.store.models import outbox_t
from gateway.transport.scheduler import Scheduler

from support.gateway_helpers import make_config


async def test_scheduler_sends_status_request_when_a_deadline_passed(tmp_path):
    config = make_config(f"sqlite+aiosqlite:///{tmp_path / 'gw.sqlite3'}",
                         [{"agency": "ISIL:DK-1", "url": "http://127.0.0.1:9/x", "response_deadline_hours": 1}])
    now = [None]
    gateway = Gateway.create(config)
    base = gateway.clock()
    gateway.borrowing.clock = lambda: now[0] or base
    await gateway.start()
    try:
        created = await gateway.borrowing.create(RequestDetails(requester="p", pickup_location="Main", title="T"), ("ISIL:DK-1",))
        await gateway.borrowing.request_confirmed(created.request_id, "ISIL:DK-1")
        scheduler = next(p for p in gateway.background if isinstance(p, Scheduler))
        await scheduler.run_once()
        now[0] = base + timedelta(hours=1, minutes=1)
        await scheduler.run_once()
        async with gateway.engine.connect() as conn:
            bodies = list((await conn.execute(select(outbox_t.c.body).order_by(outbox_t.c.id))).scalars())
        assert len(bodies) == 2 and b"StatusRequest" in bodies[1]
    finally:
        await gateway.close()
