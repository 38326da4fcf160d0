"""Compose the running gateway: database, writer, services, background tasks, HTTP routes.

`Gateway` holds the parts; `build_app(config)` returns the aiohttp application whose start-up
migrates the database and starts the writer, the outbox worker and the timer scheduler, and
whose clean-up stops them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web, web_runner
from sqlalchemy.ext.asyncio import AsyncEngine

from .config import Config, lending_policy
from .service.borrowing import BorrowingService, utc_now
from .service.lending import LendingService, outbox_outcome_step
from .service.context import ServiceContext
from .service.writer import Writer
from .store.db import make_engine, migrate_async
from .transport import replay
from .transport.breaker import PartnerBreakers, breakers_for
from .transport.outbox import OutboxWorker
from .transport.scheduler import Scheduler

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

    def __post_init__(self) -> None:
        if self.breakers is None:
            self.breakers = breakers_for(self.config)

    @classmethod
    def create(cls, config: Config, clock: Callable[[], datetime] = utc_now) -> "Gateway":
        engine = make_engine(config.database)
        writer = Writer(engine)
        ctx = ServiceContext.from_config(config)
        lending_rules = lending_policy(config)
        wakeup = asyncio.Event()
        gateway = cls(config, ctx, engine, writer, BorrowingService(writer, ctx, clock, wakeup.set),
                      LendingService(writer, ctx, lending_rules, clock, wakeup.set), clock, wakeup)
        outbox = config.outbox
        gateway.background.append(OutboxWorker(
            gateway, on_lending_outcome=outbox_outcome_step(ctx, lending_rules),
            max_attempts=outbox.max_attempts, base_delay=outbox.base_delay, max_delay=outbox.max_delay,
            concurrency=outbox.concurrency, partner_max_in_flight=outbox.partner_max_in_flight,
            lease_margin=outbox.lease_margin,
        ))
        interval = config.tick_seconds
        gateway.background.append(Scheduler([gateway.borrowing.tick, gateway.lending.tick,
                                             gateway.prune_seen_signatures], interval))
        return gateway

    async def prune_seen_signatures(self) -> int:
        """Forget HMAC signatures whose timestamps have left the window (the replay guard's table)."""
        return await self.writer.run(replay.prune_step(replay.wall_clock()))

    async def start(self) -> None:
        await migrate_async(self.engine)
        await self.writer.start()
        for part in self.background:
            await part.start()

    async def close(self) -> None:
        # Each part gets a bounded time to stop, so one stuck part cannot hang a shutdown.
        for part in [*reversed(self.background), self.writer]:
            try:
                await asyncio.wait_for(part.close(), timeout=15)
            except asyncio.TimeoutError:
                log.error("%s did not stop within 15 s", type(part).__name__)
        await self.engine.dispose()


def gateway_of(app: web.Application) -> Gateway:
    return app[GATEWAY]  # type: ignore[return-value]


def build_app(gateway: Gateway, *, body_limit: int | None = None) -> web.Application:
    """The aiohttp application of a gateway; start-up and clean-up run the gateway's parts."""
    from .api.routes import add_routes as add_api_routes
    from .transport.connection_guard import install as install_limits
    from .transport.server import add_routes

    limit = body_limit or gateway.config.body_limit
    app = web.Application(client_max_size=limit)
    app[GATEWAY] = gateway
    install_limits(app, gateway.config.limits)
    add_routes(app)
    add_api_routes(app)

    async def lifecycle(app: web.Application):
        await gateway.start()
        yield
        await gateway.close()

    app.cleanup_ctx.append(lifecycle)
    return app


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve `app` on host:port behind the connection limits (transport/connection_guard.py);
    (the runner, for cleanup(), and the bound port)."""
    from .transport.connection_guard import RESOURCE_LOG, LimitedRunner, resource_error_handler

    asyncio.get_running_loop().set_exception_handler(resource_error_handler(app[RESOURCE_LOG]))
    runner = LimitedRunner(app, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def run(config: Config) -> None:
    gateway = Gateway.create(config)
    app = build_app(gateway)
    print(f"gateway {config.agency} listening on http://{config.listen_host}:{config.listen_port}/iso18626")

    async def main() -> None:
        runner, _ = await serve(app, config.listen_host, config.listen_port)
        try:
            await asyncio.Event().wait()  # until SIGINT/SIGTERM (GracefulExit) or Ctrl-C
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    except (web_runner.GracefulExit, KeyboardInterrupt):
        pass
