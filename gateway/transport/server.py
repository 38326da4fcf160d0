"""The ISO 18626 endpoint: POST /iso18626, and GET /healthz.

Transport faults get HTTP status codes (405 method, 413 size, 415 type, 401/403 auth); every
ISO-level fault gets HTTP 200 with an ERROR confirmation (DESIGN §3). A message is answered
only after its effect has committed.
"""

from __future__ import annotations

from aiohttp import web

from ..app import Gateway, gateway_of
from ..config import Partner
from ..messages import ErrorType, Fault, Inbound, MessageError, answer, decode
from ..messages.spec import camel
from ..messages.tolerance import decode_tolerant, profile_repairs
from ..service.audit import audit_step
from .auth import AuthFailure, ReplayGuard, check_account, check_transport

XML_TYPES = ("application/xml", "text/xml")
DEFAULT_BODY_LIMIT = 1024 * 1024
REPLAY_GUARD = web.AppKey("replay_guard", ReplayGuard)

# Which header agency names the sender of each message kind.
SENDER_FIELD = {
    "request": "requesting_agency_id",
    "requestingAgencyMessage": "requesting_agency_id",
    "supplyingAgencyMessage": "supplying_agency_id",
}


def _xml(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/xml", charset="utf-8")


def _refuse(gw: Gateway, inbound: Inbound, path: str, text: str) -> web.Response:
    fault = Fault(ErrorType.UnrecognisedDataValue, f"/ISO18626Message/{inbound.kind}/{path}: {text}")
    return _xml(answer(inbound, gw.clock(), faults=[fault]))


def _sender(inbound: Inbound) -> str | None:
    field = SENDER_FIELD.get(inbound.kind)
    return str(getattr(inbound.message.header, field)) if field else None


async def _decode(gw: Gateway, data: bytes) -> tuple[Inbound | None, bytes | None, tuple[str, ...]]:
    """(inbound, None, warnings) or (None, error confirmation, ()).

    Strict first. A message that fails is read leniently only to learn who sent it; it is
    accepted if that partner's tolerance profile allows every repair it needed (each becomes a
    conformance warning on the record). A partner's configured version overrides ill:version.
    """
    try:
        inbound, warnings = decode(data), ()
    except MessageError as exc:
        try:
            tolerated = decode_tolerant(data, "lenient")
        except MessageError:
            return None, answer(exc, gw.clock(), data=data), ()
        partner = gw.ctx.partners.get(_sender(tolerated.inbound) or "")
        if partner is None or not set(tolerated.repairs) <= profile_repairs(partner.profile):
            return None, answer(exc, gw.clock(), data=data), ()
        inbound, warnings = tolerated.inbound, tuple(tolerated.warnings)
    partner = gw.ctx.partners.get(_sender(inbound) or "")
    if partner is not None and inbound.version is not partner.version and not warnings:
        try:
            inbound = decode(data, version=partner.version)
        except MessageError as exc:
            return None, answer(exc, gw.clock(), data=data), ()
    return inbound, None, warnings


async def iso18626(request: web.Request) -> web.Response:
    if request.content_type not in XML_TYPES:
        raise web.HTTPUnsupportedMediaType(text="ISO 18626 messages are application/xml or text/xml")
    data = await request.read()  # over client_max_size -> 413
    gw = gateway_of(request.app)
    inbound, error_reply, warnings = await _decode(gw, data)
    if inbound is None:
        return _xml(error_reply)  # type: ignore[arg-type]
    field = SENDER_FIELD.get(inbound.kind)
    if field is None:
        raise web.HTTPBadRequest(text="confirmations are HTTP responses; they are never posted to the endpoint")
    header = inbound.message.header
    sender = str(getattr(header, field))
    partner: Partner | None = gw.ctx.partners.get(sender)
    if partner is None:
        await gw.writer.run(audit_step(sender, "unknown_partner", f"{inbound.kind} from unknown agency {sender}", gw.clock()))
        return _refuse(gw, inbound, f"header/{camel(field)}", f"{sender!r} is not a partner of this gateway")
    try:
        check_transport(partner.credentials, request.headers, data, request.remote, request.app[REPLAY_GUARD])
    except AuthFailure as failure:
        await gw.writer.run(audit_step(sender, "auth_failed", f"{failure.reason} (from {request.remote})", gw.clock()))
        raise web.HTTPUnauthorized(text=failure.reason) if failure.status == 401 else web.HTTPForbidden(text=failure.reason)
    if inbound.kind != "supplyingAgencyMessage":
        auth = header.requesting_agency_authentication
        problem = check_account(partner.credentials, auth.account_id if auth else None, auth.security_code if auth else None)
        if problem:
            await gw.writer.run(audit_step(sender, "auth_failed", problem, gw.clock()))
            return _refuse(gw, inbound, "header/requestingAgencyAuthentication", problem)
    if inbound.kind == "supplyingAgencyMessage":
        return _xml(await gw.borrowing.receive_supplier_message(inbound, data, warnings))
    return _xml(await gw.lending.receive(inbound, data, warnings))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "agency": gateway_of(request.app).config.agency})


def add_routes(app: web.Application) -> None:
    app[REPLAY_GUARD] = ReplayGuard()
    app.router.add_post("/iso18626", iso18626)
    app.router.add_get("/healthz", healthz)
