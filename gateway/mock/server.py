"""The mock partner's aiohttp application: POST /iso18626, GET /healthz, GET|DELETE /mock/state.

Every inbound message is confirmed first (the confirmation is flushed before anything else
happens); then the transaction's worker sends its supplyingAgencyMessages one at a time: wait the
delay, build the next message, POST it, wait for its confirmation, repeat.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

import aiohttp
from aiohttp import web

from ..messages import MessageError, decode
from .partner import DeliveryResult, MockConfig, Partner, Txn, all_scenarios

log = logging.getLogger("gateway.mock")

XML_TYPES = ("application/xml", "text/xml")
BODY_LIMIT = 1024 * 1024
SEND_TIMEOUT = 10.0
MOCK = web.AppKey("mock", object)


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def post_message(session: aiohttp.ClientSession, url: str, body: bytes, expect: str) -> DeliveryResult:
    """POST one ISO 18626 message and read its confirmation. One retry, and only when no HTTP
    answer came at all (a peer that answered may have applied the message)."""
    error = "not sent"
    for _attempt in range(2):
        try:
            async with session.post(url, data=body, headers={"Content-Type": "application/xml"}) as response:
                data = await response.read()
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            continue
        if status != 200:
            return DeliveryResult(status, None, f"HTTP {status}: {data[:200].decode('utf-8', 'replace').strip()}")
        try:
            reply = decode(data)
        except MessageError as exc:
            return DeliveryResult(status, None, f"confirmation does not validate: {exc}")
        if reply.kind != expect:
            return DeliveryResult(status, None, f"expected {expect}, got {reply.kind}")
        confirmation = reply.message
        result = confirmation.confirmation_header.message_status.value
        errors = confirmation.error_data
        detail = f"{errors[0].error_type.value}: {errors[0].error_value}" if errors else None
        return DeliveryResult(status, result, detail)
    return DeliveryResult(None, None, error)


class MockServer:
    def __init__(self, config: MockConfig):
        self.partner = Partner(config)
        self.tasks: dict[int, asyncio.Task] = {}
        self.session: aiohttp.ClientSession | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, app: web.Application) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT))

    async def stop(self, app: web.Application) -> None:
        await self.cancel_all()
        if self.session is not None:
            await self.session.close()

    async def cancel_all(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.tasks.clear()

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until no transaction has anything left to send (for tests and tooling)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.tasks and loop.time() < deadline:
            await asyncio.sleep(0.005)

    # --- handlers --------------------------------------------------------------------------

    async def iso18626(self, request: web.Request) -> web.StreamResponse:
        if request.content_type not in XML_TYPES:
            raise web.HTTPUnsupportedMediaType(text="ISO 18626 messages are application/xml or text/xml")
        data = await request.read()  # client_max_size -> 413
        reply = self.partner.receive(data, _now())
        response = web.Response(status=reply.status, body=reply.body, content_type=reply.content_type, charset="utf-8")
        if reply.kick is not None:
            await response.prepare(request)
            await response.write_eof()  # the confirmation is on the wire before anything is sent
            self.kick(reply.kick)
        return response

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "agencies": [str(a) for a in self.partner.config.agencies]})

    async def state(self, request: web.Request) -> web.Response:
        snapshot = self.partner.snapshot(
            request_id=request.query.get("request_id"), agency=request.query.get("agency"),
        )
        snapshot["scenarios"] = all_scenarios()
        return web.json_response(snapshot)

    async def reset(self, request: web.Request) -> web.Response:
        await self.cancel_all()
        self.partner.reset()
        return web.json_response({"status": "reset"})

    # --- sending ---------------------------------------------------------------------------

    def kick(self, txn: Txn) -> None:
        if txn.id not in self.tasks:
            self.tasks[txn.id] = asyncio.get_running_loop().create_task(self._work(txn))

    async def _work(self, txn: Txn) -> None:
        partner = self.partner
        try:
            while partner.has_work(txn):
                await asyncio.sleep(partner.delay_for(txn))
                out = partner.next_message(txn, _now())
                if out is None:
                    continue
                for copy in range(1, out.copies + 1):
                    assert self.session is not None and txn.url is not None
                    result = await post_message(self.session, txn.url, out.body, "supplyingAgencyMessageConfirmation")
                    partner.record_delivery(out, result, _now(), copy)
                    if result.error:
                        log.warning("%s/%s: %s to %s: %s", txn.agency, txn.request_id, out.status.value, txn.url, result.error)
                    if result.confirmation is None:
                        partner.abandon(txn, result.error or "no confirmation")
                        break
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the server; keep it visible
            log.exception("%s/%s: worker failed", txn.agency, txn.request_id)
            partner.abandon(txn, f"internal error: {exc!r}")
        finally:
            self.tasks.pop(txn.id, None)


def make_app(config: MockConfig) -> web.Application:
    server = MockServer(config)
    app = web.Application(client_max_size=BODY_LIMIT)
    app[MOCK] = server
    app.on_startup.append(server.start)
    app.on_cleanup.append(server.stop)
    app.router.add_post("/iso18626", server.iso18626)
    app.router.add_get("/healthz", server.healthz)
    app.router.add_get("/mock/state", server.state)
    app.router.add_delete("/mock/state", server.reset)
    return app


def mock_of(app: web.Application) -> MockServer:
    return app[MOCK]  # type: ignore[return-value]


def run(config: MockConfig, host: str, port: int) -> None:
    agencies = ", ".join(str(a) for a in config.agencies)
    print(f"mock-partner {agencies} listening on http://{host}:{port}/iso18626 "
          f"(default scenario {config.scenario}, writes {config.version.label if config.version else 'the incoming version'})",
          flush=True)
    web.run_app(make_app(config), host=host, port=port, print=None)
