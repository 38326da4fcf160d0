"""Wire the running gateway (runtime.py) into an aiohttp application and serve it.

`build_app(gateway)` returns the application: the ISO 18626 endpoint and the staff API, behind
the connection limits, with a start-up that starts the gateway's parts (migrations, writer,
outbox worker, timers) and a clean-up that stops them. `serve` and `run` put it on a socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web, web_runner

from .api.routes import add_routes as add_api_routes
from .config import Config
from .runtime import GATEWAY, Gateway
from .transport import collector, event_loop
from .transport.connection_guard import RESOURCE_LOG, LimitedRunner, resource_error_handler
from .transport.connection_guard import install as install_limits
from .transport.server import IsoEndpoint
from .transport.server import add_routes as add_iso_routes
from .web import add_routes as add_pages
from .workers import announce

__all__ = ["build_app", "iso_endpoint", "run", "serve"]


def iso_endpoint(gateway: Gateway) -> IsoEndpoint:
    """What the ISO endpoint is given of the gateway."""
    return IsoEndpoint(
        agency=gateway.config.agency, partners=gateway.ctx.partners, clock=gateway.clock,
        writer=gateway.writer, engine=gateway.engine, borrowing=gateway.borrowing, lending=gateway.lending,
        audit_rows_per_minute=gateway.config.audit_rows_per_address_per_minute,
    )


def build_app(gateway: Gateway, *, body_limit: int | None = None) -> web.Application:
    """The aiohttp application of a gateway; start-up and clean-up run the gateway's parts."""
    limit = body_limit or gateway.config.body_limit
    app = web.Application(client_max_size=limit)
    app[GATEWAY] = gateway
    install_limits(app, gateway.config.limits)
    add_iso_routes(app, iso_endpoint(gateway))
    add_api_routes(app)
    add_pages(app)

    async def lifecycle(app: web.Application):
        await gateway.start()
        yield
        await gateway.close()

    app.cleanup_ctx.append(lifecycle)
    return app


async def serve(app: web.Application, host: str, port: int, *,
                reuse_port: bool = False) -> tuple[web.AppRunner, int]:
    """Serve `app` on host:port behind the connection limits (transport/connection_guard.py);
    (the runner, for cleanup(), and the bound port). `reuse_port`: SO_REUSEPORT, so that several
    worker processes listen on one port (workers.py)."""
    asyncio.get_running_loop().set_exception_handler(resource_error_handler(app[RESOURCE_LOG]))
    runner = LimitedRunner(app, handle_signals=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def run(config: Config, *, worker: bool = False, until: Callable[[], Awaitable[None]] | None = None) -> None:
    """Serve until SIGINT/SIGTERM, or until `until()` returns. A `worker` (one of several
    processes, workers.py) shares the port with the others and leaves the announcement to its parent."""
    gateway = Gateway.create(config)
    app = build_app(gateway)
    if not worker:
        announce(config)

    async def main() -> None:
        runner, _ = await serve(app, config.listen_host, config.listen_port, reuse_port=worker)
        collector.tune()  # the process is set up: what lives now lives as long as it
        try:
            # until SIGINT/SIGTERM (GracefulExit), Ctrl-C, or `until` says so
            await (until() if until is not None else asyncio.Event().wait())
        finally:
            await runner.cleanup()

    try:
        event_loop.run(main())
    except (web_runner.GracefulExit, KeyboardInterrupt):
        pass
