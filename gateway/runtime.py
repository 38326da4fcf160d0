"""The running gateway: its parts (database, writer, services, background tasks), how they are
made from a configuration, started and stopped.

The HTTP application around them is wired in app.py; request handlers reach the parts through
`gateway_of(app)`. Nothing below this module imports it, so it sits above transport and below
the staff API (see tests/test_layers.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from .config import Config, lending_policy
from .service import borrowing_delivery, lending_delivery
from .service.accounts import AccountService
from .service.views import ViewService
from .service.borrowing import BorrowingService, utc_now
from .service.context import ServiceContext
from .service.lending import LendingService
from .service.writer import Writer
from .store.db import make_engine, migrate_async
from .transport import audit_budget, replay
from .transport.breaker import PartnerBreakers, breakers_for
from .transport.outbox import OutboxWorker, OutcomeHook
from .transport.scheduler import Scheduler
from .transport.timer_leader import timer_leadership

__all__ = ["GATEWAY", "Gateway", "gateway_of", "outbox_worker"]

GATEWAY = web.AppKey("gateway", object)
log = logging.getLogger(__name__)


@dataclass
class Gateway:
    config: Config
    ctx: ServiceContext
    engine: AsyncEngine
    writer: Writer
    borrowing: BorrowingService
    lending: LendingService
    clock: Callable[[], datetime] = utc_now
    # Set by the services after a commit that queued outbox rows, so the worker wakes at once.
    outbox_wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    background: list[Any] = field(default_factory=list)  # objects with async start()/close()
    # The outbox's per-partner circuit breakers (in memory; the staff API shows them).
    breakers: PartnerBreakers | None = None
    # Staff accounts of the staff pages (service/accounts.py).
    accounts: AccountService | None = None
    # Staff members' borrowing list views (service/views.py).
    views: ViewService | None = None

    def __post_init__(self) -> None:
        if self.breakers is None:
            self.breakers = breakers_for(self.config)
        if self.accounts is None:
            self.accounts = AccountService(self.writer, self.config.accounts, self.clock)
        if self.views is None:
            self.views = ViewService(self.writer, self.clock)

    @classmethod
    def create(cls, config: Config, clock: Callable[[], datetime] = utc_now) -> "Gateway":
        engine = make_engine(config.database)
        writer = Writer(engine)
        ctx = ServiceContext.from_config(config)
        wakeup = asyncio.Event()
        gateway = cls(config, ctx, engine, writer, BorrowingService(writer, ctx, clock, wakeup.set),
                      LendingService(writer, ctx, lending_policy(config), clock, wakeup.set), clock, wakeup)
        outbox = config.outbox
        gateway.background.append(outbox_worker(
            gateway, max_attempts=outbox.max_attempts, base_delay=outbox.base_delay, max_delay=outbox.max_delay,
            concurrency=outbox.concurrency, partner_max_in_flight=outbox.partner_max_in_flight,
            lease_margin=outbox.lease_margin, reset_on_start=not outbox.shared_on(engine.dialect.name),
        ))
        gateway.background.append(Scheduler(
            [gateway.borrowing.tick, gateway.lending.tick, gateway.prune_seen_signatures,
             gateway.prune_audit_budget], config.tick_seconds,
            leadership=timer_leadership(engine), retry_interval=config.leader_retry_seconds))
        return gateway

    async def prune_seen_signatures(self) -> int:
        """Forget HMAC signatures whose timestamps have left the window (the replay guard's table)."""
        return await self.writer.run(replay.prune_step(replay.wall_clock()))

    async def prune_audit_budget(self) -> int:
        """Forget the audit budget's counts of windows that are over (transport/audit_budget.py)."""
        return await self.writer.run(audit_budget.prune_step(time.time(), audit_budget.DEFAULT_WINDOW))

    async def start(self) -> None:
        await migrate_async(self.engine)
        await self.writer.start()
        if self.config.web.demo_password:
            await self._ensure_demo_account(self.config.web.demo_password)
        for part in self.background:
            await part.start()

    async def _ensure_demo_account(self, password: str) -> None:
        """The embedded default's account `demo` (staff), made once; kept as staff changed it.
        Several processes starting at once: one creates it, the others find it made."""
        assert self.accounts is not None
        if await self.accounts.find("demo") is None:
            await self.accounts.add_if_missing("demo", password, "staff", "Demo librarian", actor="system")

    async def close(self) -> None:
        # Each part gets a bounded time to stop, so one stuck part cannot hang a shutdown.
        for part in [*reversed(self.background), self.writer]:
            try:
                async with asyncio.timeout(15):
                    await part.close()
            except TimeoutError:
                log.error("%s did not stop within 15 s", type(part).__name__)
        await self.engine.dispose()


def outbox_worker(gateway: Gateway, *, on_lending_outcome: OutcomeHook | None = None,
                  **settings: Any) -> OutboxWorker:
    """An outbox worker over the gateway's parts: its writer, clock, wake-up event, partners and
    breakers, and each side's service applying delivery outcomes (`on_lending_outcome` replaces
    the lending side's; a gateway without a lending service has none to apply)."""
    if on_lending_outcome is None:
        on_lending_outcome = (_no_outcome if gateway.lending is None
                              else lending_delivery.outcome_step(gateway.ctx, gateway.lending.policy))
    assert gateway.breakers is not None
    return OutboxWorker(
        gateway.writer, clock=gateway.clock, wakeup=gateway.outbox_wakeup, partners=gateway.ctx.partners,
        breakers=gateway.breakers, on_borrowing_outcome=borrowing_delivery.outcome_step(gateway.ctx),
        on_lending_outcome=on_lending_outcome, **settings,
    )


def _no_outcome(conn: Any, row: Any, verdict: str, outcome: Any, now: datetime) -> None:
    return None


def gateway_of(app: web.Application) -> Gateway:
    return app[GATEWAY]  # type: ignore[return-value]
