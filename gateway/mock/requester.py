"""A scripted requesting agency: sends a request, then actions, each after an expected status.

It listens for supplyingAgencyMessages on its own port (confirming each one) and puts its own
address in requestingAgencyInfo, so a mock partner without a --peer for it can still answer.

Script (TOML or JSON, a list under `steps`; a JSON file may also be the bare list):

    [[steps]]
    send = "request"            # request | StatusRequest | Received | Cancel | Renew |
    title = "The Name of the Rose"   # ShippedReturn | ShippedForward | Notification | ...
    author = "Eco, Umberto"
    service_type = "Loan"       # Loan | Copy | CopyOrLoan
    note = "MOCK:WILLSUPPLY_LOANED"
    # optional: request_id, record_id (supplierUniqueRecordId), request_type (New|Retry),
    #           confirmation = "ERROR" (the confirmation expected; default OK)
    [[steps]]
    expect = "Loaned"           # a supplier status; optional reason = "RenewResponse",
    timeout = 10                # answer = "Y"; messages that do not match are skipped
    [[steps]]
    send = "Received"           # optional note
    [[steps]]
    sleep = 0.5
"""

from __future__ import annotations

import asyncio
import json
import sys
import tomllib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ..messages import ErrorType, Fault, MessageError, Version, answer, decode, encode, model
from ..messages.codes import Action, ReasonForMessage, RequestType, ServiceType, Status, YesNo
from .server import SEND_TIMEOUT, XML_TYPES, post_message


class ScriptError(ValueError):
    pass


@dataclass(slots=True)
class RequesterConfig:
    target: str
    agency: model.AgencyId
    supplier: model.AgencyId
    version: Version = Version.V2017
    host: str = "127.0.0.1"
    port: int = 8628
    public_url: str | None = None
    request_id: str | None = None


def load_script(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    data: Any = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    steps = data if isinstance(data, list) else data.get("steps")
    if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
        raise ScriptError(f"{path}: expected a list of steps (tables) under 'steps'")
    check_script(steps)
    return steps


def check_script(steps: list[dict[str, Any]]) -> None:
    for number, step in enumerate(steps, 1):
        kinds = [k for k in ("send", "expect", "sleep") if k in step]
        if len(kinds) != 1:
            raise ScriptError(f"step {number}: needs exactly one of send, expect, sleep: {step}")
        if "send" in step and step["send"] != "request" and step["send"] not in Action._value2member_map_:
            raise ScriptError(f"step {number}: cannot send {step['send']!r}")
        if "expect" in step and step["expect"] not in Status._value2member_map_:
            raise ScriptError(f"step {number}: {step['expect']!r} is not an ISO 18626 status")


class Inbox:
    """Every supplyingAgencyMessage the listener confirmed, in arrival order."""

    def __init__(self) -> None:
        self.messages: list[model.SupplyingAgencyMessage] = []
        self.changed = asyncio.Condition()

    async def handler(self, request: web.Request) -> web.Response:
        if request.content_type not in XML_TYPES:
            raise web.HTTPUnsupportedMediaType(text="ISO 18626 messages are application/xml or text/xml")
        data = await request.read()
        now = datetime.now(timezone.utc)
        try:
            inbound = decode(data)
        except MessageError as exc:
            body = answer(exc, now, data=data)
        else:
            if inbound.kind == "supplyingAgencyMessage":
                body = answer(inbound, now)
                async with self.changed:
                    self.messages.append(inbound.message)
                    self.changed.notify_all()
            else:
                body = answer(inbound, now, faults=[Fault(
                    ErrorType.UnrecognisedDataValue,
                    f"/ISO18626Message/{inbound.kind}: this scripted requester only takes supplyingAgencyMessage",
                )])
        return web.Response(body=body, content_type="application/xml", charset="utf-8")

    async def wait_for(self, start: int, match: Callable[[model.SupplyingAgencyMessage], bool], timeout: float) -> int | None:
        """Index of the first message at or after `start` that matches, or None on timeout."""
        async def scan() -> int:
            index = start
            async with self.changed:
                while True:
                    while index < len(self.messages):
                        if match(self.messages[index]):
                            return index
                        index += 1
                    await self.changed.wait()
        try:
            async with asyncio.timeout(timeout):
                return await scan()
        except TimeoutError:
            return None


def _describe(message: model.SupplyingAgencyMessage) -> str:
    info = message.message_info
    yes_no = f" {info.answer_yes_no.value}" if info.answer_yes_no else ""
    return f"{message.status_info.status.value} ({info.reason_for_message.value}{yes_no})"


class Requester:
    def __init__(self, config: RequesterConfig, out: Callable[[str], None] = print):
        self.config = config
        self.out = out
        self.inbox = Inbox()
        self.request_id = config.request_id or f"MOCKREQ-{uuid.uuid4().hex[:10]}"
        self.supplier_request_id: str | None = None
        self.url: str | None = None

    def _request(self, step: dict[str, Any], now: datetime) -> model.Request:
        url = self.config.public_url or self.url
        request_type = step.get("request_type")
        return model.Request(
            header=model.RequestHeader(
                supplying_agency_id=self.config.supplier,
                requesting_agency_id=self.config.agency,
                timestamp=now,
                requesting_agency_request_id=step.get("request_id", self.request_id),
            ),
            bibliographic_info=model.BibliographicInfo(
                supplier_unique_record_id=step.get("record_id"),
                title=step.get("title", "Untitled"),
                author=step.get("author"),
            ),
            service_info=model.ServiceInfo(
                request_type=RequestType(request_type) if request_type else None,
                service_type=ServiceType(step.get("service_type", "Loan")),
                note=step.get("note"),
            ),
            requesting_agency_info=model.RequestingAgencyInfo(
                name="gateway mock-partner requester",
                address=[model.Address(electronic_address=model.ElectronicAddress(model.SchemeValue("URL"), url))],
            ) if url else None,
        )

    def _action(self, step: dict[str, Any], now: datetime) -> model.RequestingAgencyMessage:
        return model.RequestingAgencyMessage(
            header=model.RequestingAgencyMessageHeader(
                supplying_agency_id=self.config.supplier,
                requesting_agency_id=self.config.agency,
                timestamp=now,
                requesting_agency_request_id=step.get("request_id", self.request_id),
                supplying_agency_request_id=self.supplier_request_id,
            ),
            action=Action(step["send"]),
            note=step.get("note"),
        )

    async def _send(self, session: aiohttp.ClientSession, step: dict[str, Any]) -> bool:
        now = datetime.now(timezone.utc)
        if step["send"] == "request":
            message, expect = self._request(step, now), "requestConfirmation"
            if "request_id" in step:
                self.request_id = step["request_id"]
        else:
            message, expect = self._action(step, now), "requestingAgencyMessageConfirmation"
        result = await post_message(session, self.config.target, encode(message, self.config.version), expect)
        wanted = step.get("confirmation", "OK")
        got = result.confirmation or f"no confirmation (HTTP {result.http_status})"
        detail = f": {result.error}" if result.error else ""
        ok = result.confirmation == wanted
        self.out(f"{'ok  ' if ok else 'FAIL'} send {step['send']} {self.request_id} -> {got}{detail}")
        return ok

    async def _expect(self, step: dict[str, Any], cursor: int) -> int | None:
        status = Status(step["expect"])
        reason = ReasonForMessage(step["reason"]) if "reason" in step else None
        yes_no = YesNo(step["answer"]) if "answer" in step else None
        timeout = float(step.get("timeout", 10))

        def match(message: model.SupplyingAgencyMessage) -> bool:
            info = message.message_info
            return (message.header.requesting_agency_request_id == self.request_id
                    and message.status_info.status is status
                    and (reason is None or info.reason_for_message is reason)
                    and (yes_no is None or info.answer_yes_no is yes_no))

        index = await self.inbox.wait_for(cursor, match, timeout)
        if index is None:
            seen = ", ".join(_describe(m) for m in self.inbox.messages[cursor:]) or "nothing"
            self.out(f"FAIL expect {step['expect']}: not within {timeout:g}s; got {seen}")
            return None
        message = self.inbox.messages[index]
        self.supplier_request_id = message.header.supplying_agency_request_id or self.supplier_request_id
        self.out(f"ok   expect {step['expect']} <- {_describe(message)}")
        return index + 1

    async def run(self, steps: list[dict[str, Any]]) -> bool:
        check_script(steps)
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/iso18626", self.inbox.handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        await site.start()
        port = runner.addresses[0][1]
        self.url = f"http://{self.config.host}:{port}/iso18626"
        self.out(f"requester {self.config.agency} listening on {self.url}")
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT)) as session:
                cursor = 0
                for step in steps:
                    if "sleep" in step:
                        await asyncio.sleep(float(step["sleep"]))
                    elif "send" in step:
                        if not await self._send(session, step):
                            return False
                    else:
                        found = await self._expect(step, cursor)
                        if found is None:
                            return False
                        cursor = found
            return True
        finally:
            await runner.cleanup()


def run(config: RequesterConfig, script: str) -> int:
    try:
        steps = load_script(script)
    except (OSError, ScriptError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ok = asyncio.run(Requester(config).run(steps))
    print("all expectations met" if ok else "script failed")
    return 0 if ok else 1
