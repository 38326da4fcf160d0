"""The ISO 18626 endpoint: POST /iso18626, GET /healthz (alive) and GET /readyz (readiness.py).

Transport faults get HTTP status codes (405 method, 413 size, 415 type, 401/403 auth); every
ISO-level fault gets HTTP 200 with an ERROR confirmation (docs/protocol.md, error types). A message is answered
only after its effect has committed. Posts refused before or by authentication are audited
within a budget per source address, and a signed request's outcome is recorded for the
durable replay guard (docs/inbound-limits.md).

The endpoint works with what `add_routes` is given (`IsoEndpoint`), not with the whole gateway.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from ..config import Partner
from ..messages import ErrorType, Fault, Inbound, MessageError, answer, decode
from ..messages.inbound import decode_tree
from ..messages.spec import camel
from ..messages.tolerance import profile_repairs, tolerate
from ..service.audit import AuditEntry
from ..service.borrowing import BorrowingService
from ..service.lending import LendingService
from ..service.writer import Writer
from . import readiness, replay
from . import audit_budget
from .audit_budget import SpentWindows
from .auth import AuthFailure, Signed, check_account, check_transport

XML_TYPES = ("application/xml", "text/xml")
AUDIT_BUDGET = web.AppKey("audit_budget", SpentWindows)
log = logging.getLogger(__name__)

@dataclass(frozen=True)
class IsoEndpoint:
    """What the ISO endpoint works with: who we are, our partners, the clock, the writer (audit
    rows, the replay guard), the engine (replay reads), the services that take the messages
    (`borrowing` supplyingAgencyMessages, `lending` requests and requestingAgencyMessages), and
    how many refused posts per source address a minute are audited."""

    agency: str
    partners: Mapping[str, Partner]
    clock: Callable[[], datetime]
    writer: Writer
    engine: AsyncEngine
    borrowing: BorrowingService
    lending: LendingService
    audit_rows_per_minute: int


ENDPOINT = web.AppKey("iso_endpoint", IsoEndpoint)

# Which header agency names the sender of each message kind.
SENDER_FIELD = {
    "request": "requesting_agency_id",
    "requestingAgencyMessage": "requesting_agency_id",
    "supplyingAgencyMessage": "supplying_agency_id",
}


def _xml(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/xml", charset="utf-8")


def _refuse(gw: IsoEndpoint, inbound: Inbound, path: str, text: str) -> web.Response:
    fault = Fault(ErrorType.UnrecognisedDataValue, f"/ISO18626Message/{inbound.kind}/{path}: {text}")
    return _xml(answer(inbound, gw.clock(), faults=[fault]))


def _sender(inbound: Inbound) -> str | None:
    field = SENDER_FIELD.get(inbound.kind)
    return str(getattr(inbound.message.header, field)) if field else None


async def _decode(gw: IsoEndpoint, data: bytes) -> tuple[Inbound | None, bytes | None, tuple[str, ...]]:
    """(inbound, None, warnings) or (None, error confirmation, ()).

    Strict first. A message that fails is read leniently only to learn who sent it; it is
    accepted if that partner's tolerance profile allows every repair it needed (each becomes a
    conformance warning on the record). A partner's configured version overrides ill:version.
    The body is parsed once: the lenient and the partner-version passes reuse the strict tree.
    """
    try:
        inbound, warnings = decode(data), ()
    except MessageError as exc:
        try:
            tolerated = tolerate(data, exc, "lenient")
        except MessageError:
            return None, answer(exc, gw.clock(), data=data), ()
        partner = gw.partners.get(_sender(tolerated.inbound) or "")
        if partner is None or not set(tolerated.repairs) <= profile_repairs(partner.profile):
            return None, answer(exc, gw.clock(), data=data), ()
        inbound, warnings = tolerated.inbound, tuple(tolerated.warnings)
    partner = gw.partners.get(_sender(inbound) or "")
    if partner is not None and inbound.version is not partner.version and not warnings:
        try:
            inbound = decode_tree(inbound.root, version=partner.version)  # the tree, not the bytes again
        except MessageError as exc:
            return None, answer(exc, gw.clock(), data=data), ()
    return inbound, None, warnings


async def _audit(request: web.Request, actor: str, event: str, text: str) -> None:
    """An audit row for a refused post, within the per-address budget shared by every process
    (audit_budget.py); summaries of what this process dropped are written with it."""
    gw = request.app[ENDPOINT]
    spent_windows = request.app[AUDIT_BUDGET]
    source, now = request.remote or "unknown address", time.time()  # wall clock: windows are shared
    spent, summaries = spent_windows.check(source, now)
    if spent:
        if summaries:
            await gw.writer.run(audit_budget.summaries_step(summaries, gw.clock()))
        return
    admitted, started = await gw.writer.run(audit_budget.admit_step(
        source, now, spent_windows.per_window, spent_windows.window, AuditEntry(actor, event, text),
        summaries, gw.clock()))
    if not admitted:
        closed = spent_windows.spend(source, started)
        if closed:
            await gw.writer.run(audit_budget.summaries_step(closed, gw.clock()))


async def iso18626(request: web.Request) -> web.Response:
    if request.content_type not in XML_TYPES:
        raise web.HTTPUnsupportedMediaType(text="ISO 18626 messages are application/xml or text/xml")
    data = await request.read()  # over client_max_size -> 413
    gw = request.app[ENDPOINT]
    inbound, error_reply, warnings = await _decode(gw, data)
    if inbound is None:
        return _xml(error_reply)  # type: ignore[arg-type]
    field = SENDER_FIELD.get(inbound.kind)
    if field is None:
        raise web.HTTPBadRequest(text="confirmations are HTTP responses; they are never posted to the endpoint")
    sender = str(getattr(inbound.message.header, field))
    partner: Partner | None = gw.partners.get(sender)
    if partner is None:
        await _audit(request, sender, "unknown_partner",
                     f"{inbound.kind} from unknown agency {sender} (from {request.remote})")
        return _refuse(gw, inbound, f"header/{camel(field)}", f"{sender!r} is not a partner of this gateway")
    try:
        signed = check_transport(partner.credentials, request.headers, data, request.remote)
        if signed is not None and await _replayed(gw, signed):
            raise AuthFailure(401, "replayed HMAC signature")
    except AuthFailure as failure:
        await _audit(request, sender, "auth_failed", f"{failure.reason} (from {request.remote})")
        raise web.HTTPUnauthorized(text=failure.reason) if failure.status == 401 else web.HTTPForbidden(text=failure.reason)
    if signed is None:
        return await _authenticated(request, gw, inbound, partner, data, warnings)
    status = 500
    try:
        response = await _authenticated(request, gw, inbound, partner, data, warnings)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        await _remember(gw, signed, sender, status)


async def _replayed(gw: IsoEndpoint, signed: Signed) -> bool:
    async with gw.engine.connect() as conn:
        status = await conn.run_sync(replay.outcome_step(signed, replay.wall_clock()))
    return replay.counts_as_used(status)


async def _remember(gw: IsoEndpoint, signed: Signed, sender: str, status: int) -> None:
    """Record what the signed request produced; if that fails the signature stays unused, which
    only lets the same bytes be processed again (raw_messages keeps that idempotent)."""
    try:
        await gw.writer.run(replay.remember_step(signed, sender, status, replay.wall_clock()))
    except Exception:  # noqa: BLE001 - the answer stands whatever happens to the record
        log.exception("could not record the outcome of a signed request from %s", sender)


async def _authenticated(request: web.Request, gw: IsoEndpoint, inbound: Inbound, partner: Partner, data: bytes,
                         warnings: tuple[str, ...]) -> web.Response:
    header = inbound.message.header
    if inbound.kind != "supplyingAgencyMessage":
        auth = header.requesting_agency_authentication
        problem = check_account(partner.credentials, auth.account_id if auth else None, auth.security_code if auth else None)
        if problem:
            await _audit(request, partner.agency, "auth_failed", problem)
            return _refuse(gw, inbound, "header/requestingAgencyAuthentication", problem)
    if inbound.kind == "supplyingAgencyMessage":
        return _xml(await gw.borrowing.receive_supplier_message(inbound, data, warnings))
    return _xml(await gw.lending.receive(inbound, data, warnings))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "agency": request.app[ENDPOINT].agency})


async def _write_dropped_summaries(app: web.Application) -> None:
    """At shutdown (before the writer stops): what the audit budget dropped and has not yet said."""
    gw = app[ENDPOINT]
    dropped = app[AUDIT_BUDGET].drain()
    if dropped:
        await gw.writer.run(audit_budget.summaries_step(dropped, gw.clock()))


def add_routes(app: web.Application, endpoint: IsoEndpoint) -> None:
    app[ENDPOINT] = endpoint
    app[AUDIT_BUDGET] = SpentWindows(per_window=endpoint.audit_rows_per_minute,
                                       window=audit_budget.DEFAULT_WINDOW)
    app.on_shutdown.append(_write_dropped_summaries)
    app.router.add_post("/iso18626", iso18626)
    app.router.add_get("/healthz", healthz)
    readiness.add_routes(app, endpoint.engine)
