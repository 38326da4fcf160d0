"""The aiohttp application: POST /iso18626 and GET /healthz.

Transport faults get HTTP status codes (405, 413, 415); every ISO-level fault gets HTTP 200
with an ERROR confirmation (DESIGN §3). What a valid message does is up to the dispatcher:
a coroutine taking the decoded message and returning the faults that refuse it (empty = OK).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

from aiohttp import web

from ..config import Config
from ..messages import ErrorType, Fault, Inbound, MessageError, answer, decode

XML_TYPES = ("application/xml", "text/xml")
DEFAULT_BODY_LIMIT = 1024 * 1024

Dispatcher = Callable[[Inbound], Awaitable[list[Fault]]]
DISPATCHER = web.AppKey("dispatcher", Callable)


async def refuse_unhandled(inbound: Inbound) -> list[Fault]:
    """Until a service is wired in, say plainly that nothing was applied."""
    return [Fault(ErrorType.UnrecognisedDataValue, f"/ISO18626Message/{inbound.kind}: this gateway does not process {inbound.kind} messages yet")]


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def iso18626(request: web.Request) -> web.Response:
    if request.content_type not in XML_TYPES:
        raise web.HTTPUnsupportedMediaType(text="ISO 18626 messages are application/xml or text/xml")
    data = await request.read()  # aiohttp enforces client_max_size -> 413
    try:
        inbound = decode(data)
    except MessageError as exc:
        body = answer(exc, _now(), data=data)
    else:
        faults = await request.app[DISPATCHER](inbound)
        body = answer(inbound, _now(), faults=faults)
    return web.Response(body=body, content_type="application/xml", charset="utf-8")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def make_app(dispatcher: Dispatcher = refuse_unhandled, body_limit: int = DEFAULT_BODY_LIMIT) -> web.Application:
    app = web.Application(client_max_size=body_limit)
    app[DISPATCHER] = dispatcher
    app.router.add_post("/iso18626", iso18626)
    app.router.add_get("/healthz", healthz)
    return app


def run(config: Config) -> None:
    app = make_app()
    print(f"gateway {config.agency} listening on http://{config.listen_host}:{config.listen_port}/iso18626")
    web.run_app(app, host=config.listen_host, port=config.listen_port, print=None)
