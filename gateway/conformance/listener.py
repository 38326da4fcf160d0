"""The runner's own ISO 18626 endpoint: receives the target's follow-up messages.

Every POST /iso18626 is decoded (so checked against the schema of its version), confirmed, and
recorded in the inbox of the scenario run it belongs to. A message belongs to a run by its
requestingAgencyRequestId, or, for a request the target sends on its own (requester role), by
the run's token appearing in it (the runner puts the token in the title it gives the staff API).
A run may ask for other answers than OK: ERROR with an errorType, or a bare HTTP status.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from ..messages import ErrorType, Fault, Inbound, MessageError, Version, answer, decode
from ..messages.confirmations import Echo

XML_TYPES = ("application/xml", "text/xml")
BODY_LIMIT = 4 * 1024 * 1024
SHORT = {"supplyingAgencyMessage": "SAM", "requestingAgencyMessage": "RAM"}
CONFIRMATION_KINDS = ("requestConfirmation", "supplyingAgencyMessageConfirmation", "requestingAgencyMessageConfirmation")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(slots=True)
class Received:
    """One message the listener got, and what it answered."""

    at: float                        # loop time
    raw: bytes
    kind: str | None
    version: Version | None
    inbound: Inbound | None          # None: it did not validate
    faults: list[Fault]              # why it did not validate (empty when it did)
    reply_status: int = 200
    reply: str = "OK"                # OK / ERROR <type> / HTTP <n>

    @property
    def valid(self) -> bool:
        return self.inbound is not None

    @property
    def message(self) -> Any:
        return self.inbound.message if self.inbound else None

    @property
    def request_id(self) -> str | None:
        return self.message.header.requesting_agency_request_id if self.inbound and hasattr(self.message, "header") else None

    def describe(self) -> str:
        version = f" ({self.version.label})" if self.version else ""
        if not self.valid:
            fault = self.faults[0] if self.faults else None
            return f"invalid {SHORT.get(self.kind or '', self.kind or 'message')}{version}: {fault}"
        msg = self.message
        if self.kind == "supplyingAgencyMessage":
            info = msg.message_info
            yes_no = f" {info.answer_yes_no.value}" if info.answer_yes_no else ""
            return f"SAM {msg.status_info.status.value} ({info.reason_for_message.value}{yes_no}){version}"
        if self.kind == "requestingAgencyMessage":
            return f"RAM {msg.action.value}{version}"
        if self.kind == "request":
            service = msg.service_info
            kind = f" {service.request_type.value}" if service and service.request_type else ""
            return f"request{kind} {service.service_type.value if service else ''}{version}".replace("  ", " ")
        return f"{self.kind}{version}"


@dataclass(slots=True)
class ReplyRule:
    """How to answer the next `count` messages of a run (count 0: until replaced)."""

    status: str | int = "OK"            # "OK", "ERROR", or an HTTP status
    error_type: ErrorType | None = None
    error_value: str | None = None
    count: int = 1


@dataclass
class Inbox:
    """The messages of one scenario run, in arrival order, and how to answer them."""

    token: str
    request_ids: set[str] = field(default_factory=set)
    messages: list[Received] = field(default_factory=list)
    rules: list[ReplyRule] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, received: Received) -> None:
        self.messages.append(received)
        self.changed.set()

    def rule(self) -> ReplyRule | None:
        if not self.rules:
            return None
        rule = self.rules[0]
        if rule.count > 0:
            rule.count -= 1
            if rule.count == 0:
                self.rules.pop(0)
        return rule

    async def wait(self, seen: int, deadline: float) -> bool:
        """True once there are more than `seen` messages, False at the deadline."""
        loop = asyncio.get_running_loop()
        while len(self.messages) <= seen:
            left = deadline - loop.time()
            if left <= 0:
                return False
            self.changed.clear()
            if len(self.messages) > seen:
                break
            try:
                async with asyncio.timeout(left):
                    await self.changed.wait()
            except TimeoutError:
                return len(self.messages) > seen
        return True


class Listener:
    """The aiohttp endpoint and the routing of its messages to scenario runs."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, public_url: str | None = None):
        self.host, self.port = host, port
        self.public_url = public_url
        self.url: str | None = None
        self.inboxes: list[Inbox] = []
        self.by_id: dict[str, Inbox] = {}
        self.unclaimed: list[Received] = []
        self._runner: web.AppRunner | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=BODY_LIMIT)
        app.router.add_post("/iso18626", self.handle)
        app.router.add_get("/healthz", self.healthz)
        return app

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.port = port
        self.url = self.public_url or f"http://{self.host}:{port}/iso18626"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- routing -----------------------------------------------------------------------------

    def open(self, token: str) -> Inbox:
        inbox = Inbox(token)
        self.inboxes.append(inbox)
        return inbox

    def forget(self, inbox: Inbox) -> None:
        if inbox in self.inboxes:
            self.inboxes.remove(inbox)
        for rid in inbox.request_ids:
            if self.by_id.get(rid) is inbox:
                del self.by_id[rid]

    def claim(self, inbox: Inbox, request_id: str) -> None:
        inbox.request_ids.add(request_id)
        self.by_id[request_id] = inbox

    def route(self, request_id: str | None, raw: bytes) -> Inbox | None:
        if request_id is not None and request_id in self.by_id:
            return self.by_id[request_id]
        for inbox in self.inboxes:
            if inbox.token.encode() in raw:
                if request_id is not None:
                    self.claim(inbox, request_id)
                return inbox
        return None

    # --- handlers ----------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "role": "conformance runner"})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.content_type not in XML_TYPES:
            raise web.HTTPUnsupportedMediaType(text="ISO 18626 messages are application/xml or text/xml")
        data = await request.read()
        now = utc_now()
        loop_time = asyncio.get_running_loop().time()
        error: MessageError | None = None
        try:
            inbound: Inbound | None = decode(data)
        except MessageError as exc:
            inbound, error = None, exc
        if inbound is not None:
            kind, version, request_id = inbound.kind, inbound.version, getattr(
                getattr(inbound.message, "header", None), "requesting_agency_request_id", None)
        else:
            assert error is not None
            echo = Echo.salvage(error.root, error.kind)
            kind, version, request_id = error.kind, error.version, echo.requesting_agency_request_id
        received = Received(loop_time, data, kind, version, inbound, list(error.faults) if error else [])
        inbox = self.route(request_id, data)
        rule = inbox.rule() if inbox is not None else None
        if rule is not None and isinstance(rule.status, int):
            received.reply_status, received.reply = rule.status, f"HTTP {rule.status}"
            response = web.Response(status=rule.status, text=f"conformance runner answers HTTP {rule.status}\n")
        else:
            if error is not None:
                body = answer(error, now, data=data)
                received.reply = f"ERROR {error.first.error_type.value}"
            elif kind in CONFIRMATION_KINDS:
                fault = Fault(ErrorType.UnrecognisedDataValue, f"/ISO18626Message/{kind}: a confirmation is not a message to send")
                body = answer(MessageError([fault], kind=kind, version=version), now, version=version)
                received.reply = "ERROR UnrecognisedDataValue"
            elif rule is not None and rule.status == "ERROR":
                assert inbound is not None and rule.error_type is not None
                fault = Fault(rule.error_type, rule.error_value or f"/ISO18626Message/{kind}: refused by the conformance scenario")
                body = answer(inbound, now, faults=[fault])
                received.reply = f"ERROR {rule.error_type.value}"
            else:
                assert inbound is not None
                body = answer(inbound, now)
            response = web.Response(body=body, content_type="application/xml", charset="utf-8")
        # The answer goes on the wire before the run sees the message, so the run's next step
        # never overtakes the confirmation of what it reacts to.
        await response.prepare(request)
        await response.write_eof()
        if inbox is not None:
            inbox.add(received)
        else:
            self.unclaimed.append(received)
        return response
