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
from ..messages import Fault, Inbound, answer, encode, model
from ..messages.codes import RequestType
from ..messages.peers import alma_messages, note_markers
from ..store import queries
from ..store.models import lending_requests_t
from .borrowing import Clock, NotFound, StaleVersion, utc_now
from .context import ServiceContext
from .decision_rows import DecisionRows, history_row, outbox_row, warning_rows
from .inbound import inbound_key, refusal, store_if_new
from .lending_outgoing import build_supplying_message
from .snapshot import from_json, to_json
from .writer import Conflict, Writer

OWNER = "lending_id"  # the column that links history, messages, notes and outbox rows to a lending request
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
        "deadline_at": next_lending_deadline(state, policy),
        "extra": {"state": to_json(state)},
    }


def _update(conn: Connection, policy: LendingPolicy, row: dict[str, Any], state: LendingState,
            now: datetime, *, always: bool = False) -> None:
    """Write what changed, checked against the version the decision was made on. `always`: check
    (and count) the version even when nothing changed, as for a partner's message, whose answer
    was decided on that version: on PostgreSQL another transaction may have moved the request
    on meanwhile (the answer would be stale), and the row's lock orders the outbox rows."""
    columns = _columns(state, policy)
    changed = {k: v for k, v in columns.items() if row.get(k) != v}
    if (changed or always) and not queries.update_lending(conn, row["id"], row["version"], changed, now=now):
        raise Conflict(f"lending request {row['id']} changed under us")


def _add(rows: DecisionRows, ctx: ServiceContext, lending_id: int, their_ref: str, decision: LendingDecision,
         now: datetime, raw_id: int | None) -> None:
    """The decision's rows, with its outgoing supplyingAgencyMessages encoded for each partner."""
    outbox = []
    for out in decision.outgoing:
        partner = ctx.partner(out.partner)
        message = build_supplying_message(out, decision.state, ours=ctx.agency, their_request_id=their_ref,
                                          our_request_id=our_request_id(lending_id), now=now, version=partner.version)
        # Alma reads conditions and costs only from Notification notes (docs/partners.md, Alma quirks).
        outbox.extend(outbox_row(partner, "supplyingAgencyMessage", encode(each, partner.version))
                      for each in (alma_messages(message) if partner.profile == "alma" else [message]))
    rows.add(lending_id, decision, raw_id, now=now, outbox=outbox)


def inbound_step(ctx: ServiceContext, policy: LendingPolicy, inbound: Inbound, body: bytes, now: datetime,
                 warnings: tuple[str, ...] = ()) -> Callable[[Connection], bytes]:
    """A `request` or `requestingAgencyMessage` from a borrower; returns the confirmation bytes."""
    sender = str(inbound.message.header.requesting_agency_id)

    def step(conn: Connection) -> bytes:
        key = inbound_key(inbound, sender)
        raw_ids = store_if_new(conn, [(key, body, now, None)])
        if isinstance(raw_ids, bytes):  # received before: the stored confirmation answers it
            return raw_ids
        raw_id = raw_ids[key]
        rows = DecisionRows(OWNER)
        message = Message(conn, ctx, policy, rows, sender, raw_id, now, warnings)
        if inbound.kind == "request":
            faults = message.apply_request(inbound.message)
        else:
            faults = message.apply_requester_message(inbound.message)
        markers = note_markers(_note_of(inbound.message))
        if markers:
            rows.mark(0, markers)
        rows.write(conn)
        confirmation = answer(inbound, now, faults=faults)
        queries.set_raw_confirmation(conn, raw_id, confirmation)
        return confirmation

    return step


def _note_of(message: model.Request | model.RequestingAgencyMessage) -> str | None:
    if isinstance(message, model.Request):
        return message.service_info.note if message.service_info else None
    return message.note


@dataclass
class Message:
    """One borrower's message being applied: where its rows go, and what it carries along."""

    conn: Connection
    ctx: ServiceContext
    policy: LendingPolicy
    rows: DecisionRows
    sender: str
    raw_id: int
    now: datetime
    warnings: tuple[str, ...]

    def _warn(self, lending_id: int, status: str) -> None:
        self.rows.history.extend(warning_rows(OWNER, lending_id, at=self.now, sender=self.sender, status=status,
                                              warnings=self.warnings, raw_message_id=self.raw_id))

    def apply_request(self, request: model.Request) -> list[Fault]:
        ctx, sender, header = self.ctx, self.sender, request.header
        if header.supplying_agency_id is not None and str(header.supplying_agency_id) != ctx.agency:
            return refusal("request", "header/supplyingAgencyId",
                           f"{header.supplying_agency_id} is not this gateway ({ctx.agency})")
        ref = header.requesting_agency_request_id
        existing = _row(self.conn, _BY_KEY, {"agency": sender, "ref": ref})
        request_type = request.service_info.request_type if request.service_info else None
        event = IncomingRequest(partner=sender, details=details_of(request), received_at=self.now,
                                request_type=request_type or RequestType.New)
        if existing is None:
            if event.request_type is not RequestType.New:
                return refusal("request", "serviceInfo/requestType",
                               f"{event.request_type.value} for unknown request {ref!r}")
            decision = decide_lending(None, event, self.policy)
            lending_id = queries.insert_lending(self.conn, {
                "requesting_agency": sender, "requesting_agency_request_id": ref, "supplying_agency": ctx.agency,
                "raw_request_id": self.raw_id, **_columns(decision.state, self.policy)}, now=self.now)
            self._warn(lending_id, decision.state.status.value)
            _add(self.rows, ctx, lending_id, ref, decision, self.now, self.raw_id)
            return []
        if event.request_type is RequestType.New:
            return refusal("request", "header/requestingAgencyRequestId",
                           f"request id {ref!r} from {sender} is already in use "
                           "(request ids are unique per requesting agency)")
        return self._decide(existing, event, "request")

    def apply_requester_message(self, message: model.RequestingAgencyMessage) -> list[Fault]:
        header = message.header
        if str(header.supplying_agency_id) != self.ctx.agency:
            return refusal("requestingAgencyMessage", "header/supplyingAgencyId",
                           f"{header.supplying_agency_id} is not this gateway ({self.ctx.agency})")
        ref = header.requesting_agency_request_id
        row = _row(self.conn, _BY_KEY, {"agency": self.sender, "ref": ref})
        if row is None:
            return refusal("requestingAgencyMessage", "header/requestingAgencyRequestId",
                           f"no lending request {ref!r} from {self.sender}")
        event = RequesterMessage(partner=self.sender, action=message.action, note=message.note,
                                 received_at=self.now, timestamp=header.timestamp)
        return self._decide(row, event, "requestingAgencyMessage")

    def _decide(self, row: dict[str, Any], event: Any, kind: str) -> list[Fault]:
        state = from_json(LendingState, row["extra"]["state"])
        status = state.status.value
        self._warn(row["id"], status)
        try:
            decision = decide_lending(state, event, self.policy)
        except (IllegalTransition, InvalidInput) as exc:
            self.rows.history.append(history_row(OWNER, row["id"], at=self.now, actor=event.partner,
                                                 event="message_refused", status=status, text=str(exc),
                                                 raw_message_id=self.raw_id))
            return refusal(kind, "", f"refused in status {status}: {exc}")
        _update(self.conn, self.policy, row, decision.state, self.now, always=True)
        _add(self.rows, self.ctx, row["id"], row["requesting_agency_request_id"], decision, self.now, self.raw_id)
        return []


def lending_event_step(ctx: ServiceContext, policy: LendingPolicy, lending_id: int, event: Any,
                       now: datetime, expected_version: int | None = None) -> Callable[[Connection], LendingResult]:
    def step(conn: Connection) -> LendingResult:
        row = _row(conn, _BY_ID, {"id": lending_id})
        if row is None:
            raise NotFound(f"no lending request {lending_id}")
        if expected_version is not None and row["version"] != expected_version:
            raise StaleVersion(expected_version, row["version"])
        decision = decide_lending(from_json(LendingState, row["extra"]["state"]), event, policy)
        _update(conn, policy, row, decision.state, now)
        rows = DecisionRows(OWNER)
        _add(rows, ctx, lending_id, row["requesting_agency_request_id"], decision, now, None)
        rows.write(conn)
        if isinstance(event, MarkMessagesRead):
            queries.mark_messages_read(conn, now=now, lending_id=lending_id)
        return LendingResult(lending_id, decision.state, decision)

    return step


def _due_ids(conn: Connection, now: datetime) -> list[int]:
    return queries.due_ids(conn, lending_requests_t.c.id, lending_requests_t.c.deadline_at, now)


class LendingService:
    def __init__(self, writer: Writer, ctx: ServiceContext, policy: LendingPolicy = DEFAULT_LENDING_POLICY,
                 clock: Clock = utc_now, notify: Callable[[], None] = lambda: None):
        self.writer, self.ctx, self.policy, self.clock, self.notify = writer, ctx, policy, clock, notify

    async def receive(self, inbound: Inbound, body: bytes, warnings: tuple[str, ...] = ()) -> bytes:
        reply = await self.writer.run(inbound_step(self.ctx, self.policy, inbound, body, self.clock(), warnings))
        self.notify()  # a StatusRequest or a borrower's Cancel may have queued an answer
        return reply

    async def apply(self, lending_id: int, event: Any, expected_version: int | None = None) -> LendingResult:
        result = await self.writer.run(lending_event_step(self.ctx, self.policy, lending_id, event, self.clock(),
                                                          expected_version))
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
