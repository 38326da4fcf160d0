"""Lending use cases (we are the supplying agency): incoming requests and requester messages,
staff answers, expiry ticks. Same discipline as borrowing: one write step per input, state +
history + general messages + notes + outbox rows committed together, confirmations after commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select

from ..core import IllegalTransition, InvalidInput
from ..core.lending import (
    DEFAULT_LENDING_POLICY, IncomingRequest, LendingDecision, LendingDetails, LendingPolicy, LendingState,
    MarkMessagesRead, RequesterMessage, Tick, decide_lending, next_lending_deadline,
)
from ..messages import ErrorType, Fault, Inbound, answer, encode, model
from ..messages.peers import alma_messages, note_markers
from ..messages.codec import format_datetime
from ..messages.identity import content_sha256
from ..messages.codes import RequestType
from ..store import queries
from ..store.models import general_messages_t, lending_requests_t, notes_t
from .borrowing import Clock, NotFound, utc_now
from .context import ServiceContext
from .lending_outgoing import build_supplying_message
from .snapshot import from_json, to_json
from .writer import Conflict, Writer

_BY_ID = select(lending_requests_t).where(lending_requests_t.c.id == bindparam("id"))
_BY_KEY = select(lending_requests_t).where(
    lending_requests_t.c.requesting_agency == bindparam("agency"),
    lending_requests_t.c.requesting_agency_request_id == bindparam("ref"),
)


@dataclass(frozen=True)
class LendingResult:
    lending_id: int
    state: LendingState
    decision: LendingDecision


def our_request_id(lending_id: int) -> str:
    return f"LR-{lending_id}"


def details_of(request: model.Request) -> LendingDetails:
    """The parts of an ISO request lending staff work with (the raw XML is kept as well)."""
    bib, service = request.bibliographic_info, request.service_info
    ids = {i.bibliographic_item_identifier_code.value.upper(): i.bibliographic_item_identifier
           for i in bib.bibliographic_item_id}
    others = tuple((r.bibliographic_record_identifier_code.value, r.bibliographic_record_identifier)
                   for r in bib.bibliographic_record_id)
    costs = request.billing_info.maximum_costs if request.billing_info else None
    address = None
    for delivery in request.requested_delivery_info:
        if delivery.address and delivery.address.electronic_address:
            address = delivery.address.electronic_address.electronic_address_data
        elif delivery.address and delivery.address.physical_address:
            p = delivery.address.physical_address
            address = ", ".join(x for x in (p.line1, p.line2, p.locality, p.postal_code) if x)
        if address:
            break
    return LendingDetails(
        service_type=service.service_type if service else model.ServiceType.Loan,
        title=bib.title, author=bib.author, title_of_component=bib.title_of_component,
        author_of_component=bib.author_of_component, supplier_unique_record_id=bib.supplier_unique_record_id,
        isbn=ids.get("ISBN"), issn=ids.get("ISSN"), other_identifiers=others,
        publisher=request.publication_info.publisher if request.publication_info else None,
        publication_date=request.publication_info.publication_date if request.publication_info else None,
        edition=bib.edition, volume=", ".join(bib.volume) or None, issue=bib.issue, pages=bib.pages_requested,
        request_sub_types=tuple(service.request_sub_type) if service else (),
        service_level=service.service_level.value if service and service.service_level else None,
        item_format=service.item_format.value if service and service.item_format else None,
        need_before=service.need_before_date if service else None,
        patron_id=request.patron_info.patron_id if request.patron_info else None,
        max_cost=costs.monetary_value if costs else None,
        currency=costs.currency_code.value if costs else None,
        requesting_agency_name=request.requesting_agency_info.name if request.requesting_agency_info else None,
        delivery_address=address,
        note=service.note if service else None,
    )


def _row(conn: Connection, stmt, params) -> dict[str, Any] | None:
    found = conn.execute(stmt, params).first()
    return None if found is None else dict(found._mapping)


def _columns(state: LendingState, policy: LendingPolicy) -> dict[str, Any]:
    d = state.details
    return {
        "status": state.status.value,
        "needs_attention": state.needs_attention,
        "title": d.title,
        "author": d.author,
        "service_type": d.service_type.value,
        "due_date": state.due_date,
        "extra": {"state": to_json(state), "deadline": (dl.isoformat() if (dl := next_lending_deadline(state, policy)) else None)},
    }


def _write(conn: Connection, ctx: ServiceContext, policy: LendingPolicy, lending_id: int, row: dict[str, Any],
           decision: LendingDecision, now: datetime, raw_id: int | None) -> None:
    state = decision.state
    if row is not None:
        columns = _columns(state, policy)
        changed = {k: v for k, v in columns.items() if row.get(k) != v}
        if changed and not queries.update_lending(conn, lending_id, row["version"], changed, now=now):
            raise Conflict(f"lending request {lending_id} changed under us")
    history = [{
        "lending_id": lending_id, "at": h.at, "actor": h.actor, "event": h.event,
        "from_status": h.from_status.value if h.from_status else None,
        "to_status": h.to_status.value if h.to_status else None,
        "detail": {"text": h.detail} if h.detail else None, "raw_message_id": raw_id,
    } for h in decision.history]
    if history:
        queries.insert_history(conn, history)
    if decision.messages:
        queries.insert_rows(conn, general_messages_t, [
            {"lending_id": lending_id, "direction": m.direction, "partner_agency": m.partner, "at": m.at,
             "actor": m.partner if m.direction == "in" else None, "text": m.note,
             "raw_message_id": raw_id if m.direction == "in" else None,
             "markers": note_markers(m.note) if m.direction == "in" else None,
             "read_at": None if m.direction == "in" else m.at} for m in decision.messages])
    if decision.notes:
        queries.insert_rows(conn, notes_t, [
            {"lending_id": lending_id, "created_at": n.at, "actor": n.by, "text": n.text} for n in decision.notes])
    their_ref = row["requesting_agency_request_id"] if row else None
    for out in decision.outgoing:
        partner = ctx.partner(out.partner)
        message = build_supplying_message(out, state, ours=ctx.agency, their_request_id=their_ref,
                                          our_request_id=our_request_id(lending_id), now=now, version=partner.version)
        # Alma reads conditions and costs only from Notification notes (docs/partners.md, Alma quirks).
        for each in alma_messages(message) if partner.profile == "alma" else [message]:
            queries.insert_outbox(conn, partner_agency=out.partner, partner_url=partner.url,
                                  kind="supplyingAgencyMessage", body=encode(each, partner.version), now=now,
                                  lending_id=lending_id)


def _refuse(kind: str, path: str, text: str) -> list[Fault]:
    return [Fault(ErrorType.UnrecognisedDataValue, f"/ISO18626Message/{kind}/{path}: {text}")]


def _key(inbound: Inbound, sender: str) -> queries.MessageKey:
    header = inbound.message.header
    return queries.MessageKey(
        direction="in", partner_agency=sender, kind=inbound.kind,
        requesting_agency=str(header.requesting_agency_id),
        requesting_agency_request_id=header.requesting_agency_request_id,
        message_timestamp=format_datetime(header.timestamp), content_sha256=content_sha256(inbound.root),
    )


def inbound_step(ctx: ServiceContext, policy: LendingPolicy, inbound: Inbound, body: bytes, now: datetime,
                 warnings: tuple[str, ...] = ()) -> Callable[[Connection], bytes]:
    """A `request` or `requestingAgencyMessage` from a borrower; returns the confirmation bytes."""
    header = inbound.message.header
    sender = str(header.requesting_agency_id)

    def step(conn: Connection) -> bytes:
        key = _key(inbound, sender)
        duplicate = queries.find_raw_message(conn, key)
        if duplicate is not None and duplicate["confirmation"] is not None:
            return duplicate["confirmation"]
        raw_id = queries.insert_raw_message(conn, key, body, received_at=now)
        if inbound.kind == "request":
            faults = _apply_request(conn, ctx, policy, inbound.message, sender, raw_id, now, warnings)
        else:
            faults = _apply_requester_message(conn, ctx, policy, inbound.message, sender, raw_id, now, warnings)
        markers = note_markers(_note_of(inbound.message))
        if markers:  # kept as data on the message's history rows too (not every note is a general message)
            queries.mark_message_history(conn, raw_id, markers)
        confirmation = answer(inbound, now, faults=faults)
        queries.set_raw_confirmation(conn, raw_id, confirmation)
        return confirmation

    return step


def _note_of(message: model.Request | model.RequestingAgencyMessage) -> str | None:
    if isinstance(message, model.Request):
        return message.service_info.note if message.service_info else None
    return message.note


def _warn(conn: Connection, lending_id: int, sender: str, status: str, warnings, raw_id: int, now: datetime) -> None:
    if warnings:
        queries.insert_history(conn, [{
            "lending_id": lending_id, "at": now, "actor": sender, "event": "conformance_warning",
            "from_status": status, "to_status": status, "detail": {"text": w}, "raw_message_id": raw_id,
        } for w in warnings])


def _apply_request(conn, ctx, policy, request: model.Request, sender, raw_id, now, warnings) -> list[Fault]:
    header = request.header
    if header.supplying_agency_id is not None and str(header.supplying_agency_id) != ctx.agency:
        return _refuse("request", "header/supplyingAgencyId", f"{header.supplying_agency_id} is not this gateway ({ctx.agency})")
    ref = header.requesting_agency_request_id
    existing = _row(conn, _BY_KEY, {"agency": sender, "ref": ref})
    request_type = request.service_info.request_type if request.service_info else None
    event = IncomingRequest(partner=sender, details=details_of(request), received_at=now,
                            request_type=request_type or RequestType.New)
    if existing is None:
        if event.request_type is not RequestType.New:
            return _refuse("request", "serviceInfo/requestType", f"{event.request_type.value} for unknown request {ref!r}")
        decision = decide_lending(None, event, policy)
        lending_id = queries.insert_lending(conn, {
            "requesting_agency": sender, "requesting_agency_request_id": ref, "supplying_agency": ctx.agency,
            "raw_request_id": raw_id, **_columns(decision.state, policy)}, now=now)
        _warn(conn, lending_id, sender, decision.state.status.value, warnings, raw_id, now)
        _write(conn, ctx, policy, lending_id, _row(conn, _BY_ID, {"id": lending_id}), decision, now, raw_id)
        return []
    if event.request_type is RequestType.New:
        return _refuse("request", "header/requestingAgencyRequestId",
                       f"request id {ref!r} from {sender} is already in use (request ids are unique per requesting agency)")
    return _decide_and_write(conn, ctx, policy, existing, event, "request", raw_id, now, warnings)


def _decide_and_write(conn, ctx, policy, row, event, kind, raw_id, now, warnings) -> list[Fault]:
    state = from_json(LendingState, row["extra"]["state"])
    _warn(conn, row["id"], event.partner, state.status.value, warnings, raw_id, now)
    try:
        decision = decide_lending(state, event, policy)
    except (IllegalTransition, InvalidInput) as exc:
        queries.insert_history(conn, {
            "lending_id": row["id"], "at": now, "actor": event.partner, "event": "message_refused",
            "from_status": state.status.value, "to_status": state.status.value,
            "detail": {"text": str(exc)}, "raw_message_id": raw_id})
        return _refuse(kind, "", f"refused in status {state.status.value}: {exc}")
    _write(conn, ctx, policy, row["id"], row, decision, now, raw_id)
    return []


def _apply_requester_message(conn, ctx, policy, message: model.RequestingAgencyMessage, sender, raw_id, now,
                             warnings) -> list[Fault]:
    header = message.header
    if str(header.supplying_agency_id) != ctx.agency:
        return _refuse("requestingAgencyMessage", "header/supplyingAgencyId",
                       f"{header.supplying_agency_id} is not this gateway ({ctx.agency})")
    ref = header.requesting_agency_request_id
    row = _row(conn, _BY_KEY, {"agency": sender, "ref": ref})
    if row is None:
        return _refuse("requestingAgencyMessage", "header/requestingAgencyRequestId",
                       f"no lending request {ref!r} from {sender}")
    event = RequesterMessage(partner=sender, action=message.action, note=message.note, received_at=now,
                             timestamp=header.timestamp)
    return _decide_and_write(conn, ctx, policy, row, event, "requestingAgencyMessage", raw_id, now, warnings)


def lending_event_step(ctx: ServiceContext, policy: LendingPolicy, lending_id: int, event: Any,
                       now: datetime) -> Callable[[Connection], LendingResult]:
    def step(conn: Connection) -> LendingResult:
        row = _row(conn, _BY_ID, {"id": lending_id})
        if row is None:
            raise NotFound(f"no lending request {lending_id}")
        decision = decide_lending(from_json(LendingState, row["extra"]["state"]), event, policy)
        _write(conn, ctx, policy, lending_id, row, decision, now, None)
        if isinstance(event, MarkMessagesRead):
            queries.mark_messages_read(conn, now=now, lending_id=lending_id)
        return LendingResult(lending_id, decision.state, decision)

    return step


def _due_ids(conn: Connection, now: datetime) -> list[int]:
    rows = conn.execute(select(lending_requests_t.c.id, lending_requests_t.c.extra)
                        .where(lending_requests_t.c.status == "NEW"))
    return [i for i, extra in rows if (extra or {}).get("deadline") and datetime.fromisoformat(extra["deadline"]) <= now]


class LendingService:
    def __init__(self, writer: Writer, ctx: ServiceContext, policy: LendingPolicy = DEFAULT_LENDING_POLICY,
                 clock: Clock = utc_now, notify: Callable[[], None] = lambda: None):
        self.writer, self.ctx, self.policy, self.clock, self.notify = writer, ctx, policy, clock, notify

    async def receive(self, inbound: Inbound, body: bytes, warnings: tuple[str, ...] = ()) -> bytes:
        reply = await self.writer.run(inbound_step(self.ctx, self.policy, inbound, body, self.clock(), warnings))
        self.notify()  # a StatusRequest or a borrower's Cancel may have queued an answer
        return reply

    async def apply(self, lending_id: int, event: Any) -> LendingResult:
        result = await self.writer.run(lending_event_step(self.ctx, self.policy, lending_id, event, self.clock()))
        if result.decision.outgoing:
            self.notify()
        return result

    async def tick(self) -> list[int]:
        now = self.clock()
        due = await self.writer.run(lambda conn: _due_ids(conn, now))
        for lending_id in due:
            await self.writer.run(lending_event_step(self.ctx, self.policy, lending_id, Tick(now=now), now))
        if due:
            self.notify()
        return due
