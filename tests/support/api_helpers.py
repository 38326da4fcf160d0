"""Shared helpers of the staff API tests (no tests here): a real gateway on loopback with API
keys, on the parametrized database, and partner messages posted to its ISO endpoint.

Partners point at a closed loopback port and the outbox backs off for an hour after its first
failed attempt, so nothing changes a request behind a test's back: statuses move only through
what the test does (API calls, and supplyingAgencyMessages posted to /iso18626 as a partner would).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from gateway.app import build_app
from gateway.runtime import Gateway
from gateway.config import parse_config
from gateway.messages import Version, decode, encode, model
from gateway.messages.codes import ReasonForMessage, Status

OURS = "ISIL:US-API"
P1, P2, P3 = "ISIL:DK-1", "ISIL:DK-2", "ISIL:DK-3"
KEYS = {"staff": "staff-key-0001", "read-only": "reader-key-0001", "admin": "admin-key-0001"}
NAMES = {"staff": "ann", "read-only": "rex", "admin": "ada"}
BR = "/api/v1/borrowing-requests"
XML = {"Content-Type": "application/xml"}


def api_config(db_url: str, **raw: Any):
    gateway = {"agency": OURS, "listen": "127.0.0.1:0", "database": db_url,
               "outbox_base_delay_seconds": 3600, "outbox_max_attempts": 1000}
    data = {
        "gateway": gateway,
        "partners": [{"agency": a, "name": f"Partner {a[-1]}", "url": "http://127.0.0.1:9/iso18626"}
                     for a in (P1, P2, P3)],
        "rota_templates": [{"name": "default", "partners": [P1, P2]}],
        "api_keys": [{"key": KEYS[r], "role": r, "name": NAMES[r]} for r in KEYS],
    }
    data.update(raw)
    return parse_config(data, env={})


def auth(role: str = "staff") -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[role]}"}


class Api:
    """A test client on a live gateway, with the role's key on every call."""

    def __init__(self, client: Any, gateway: Gateway):
        self.client, self.gateway = client, gateway

    async def call(self, method: str, path: str, role: str = "staff", **kw: Any) -> tuple[int, Any]:
        headers = {**auth(role), **kw.pop("headers", {})}
        response = await self.client.request(method, path, headers=headers, **kw)
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.read()

    async def get(self, path: str, role: str = "staff", **kw: Any) -> tuple[int, Any]:
        return await self.call("GET", path, role, **kw)

    async def post(self, path: str, body: Any = None, role: str = "staff", **kw: Any) -> tuple[int, Any]:
        if body is not None:
            kw["json"] = body
        return await self.call("POST", path, role, **kw)

    async def create(self, role: str = "staff", **fields: Any) -> dict[str, Any]:
        body = {"title": "The Name of the Rose", "author": "Eco, Umberto", "isbn": "9780151446476",
                "requester": "patron-42", "pickup_location": "Main desk", **fields}
        status, data = await self.post(BR, body, role)
        assert status == 201, data
        return data

    async def action(self, rid: int, name: str, body: Any = None, role: str = "staff") -> tuple[int, Any]:
        return await self.post(f"{BR}/{rid}/actions/{name}", body, role)

    async def confirmed(self, rid: int, partner: str = P1) -> None:
        """The partner confirmed our request (what the outbox does on a confirmation OK)."""
        await self.gateway.borrowing.request_confirmed(rid, partner)

    async def supplier(self, request: dict[str, Any], status: Status, *, partner: str = P1,
                       reason: ReasonForMessage = ReasonForMessage.StatusChange, note: str | None = None,
                       costs: Decimal | None = None, reason_retry: str | None = None,
                       due: datetime | None = None, seconds: int = 0) -> None:
        """A supplyingAgencyMessage from `partner`, posted to the gateway's ISO endpoint."""
        when = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=seconds)
        info = model.MessageInfo(
            reason_for_message=reason, note=note,
            offered_costs=model.Costs(model.SchemeValue("USD"), costs) if costs is not None else None,
            reason_retry=model.SchemeValue(reason_retry) if reason_retry else None,
        )
        message = model.SupplyingAgencyMessage(
            header=model.SupplyingAgencyMessageHeader(
                supplying_agency_id=model.AgencyId.parse(partner), requesting_agency_id=model.AgencyId.parse(OURS),
                timestamp=when, requesting_agency_request_id=request["external_id"],
                supplying_agency_request_id=f"L-{partner[-1]}"),
            message_info=info,
            status_info=model.StatusInfo(status=status, last_change=when, due_date=due),
        )
        response = await self.client.post("/iso18626", data=encode(message, Version.V2017), headers=XML)
        body = await response.read()
        reply = decode(body).message
        assert response.status == 200 and reply.confirmation_header.message_status.value == "OK", body

    async def request(self, rid: int) -> dict[str, Any]:
        status, data = await self.get(f"{BR}/{rid}")
        assert status == 200, data
        return data


class Clock:
    """An adjustable clock for the gateway (created_at / updated_at come from it)."""

    def __init__(self, start: datetime | None = None):
        self.now = start or datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: Any) -> None:
        self.now += timedelta(**kw)


async def start_api(aiohttp_client: Any, db_url: str, clock: Clock | None = None, **raw: Any) -> Api:
    gateway = Gateway.create(api_config(db_url, **raw), **({"clock": clock} if clock else {}))
    client = await aiohttp_client(build_app(gateway))
    return Api(client, gateway)


def error_code(data: Any) -> str:
    return data["error"]["code"]


def action_names(request: dict[str, Any]) -> list[str]:
    """The names of a request's `allowed_actions` (each entry also says how to perform it)."""
    return [a["name"] for a in request["allowed_actions"]]
