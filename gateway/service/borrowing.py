"""Borrowing use cases: each staff action, partner message or timer tick is one write step.

A step loads the request's state, lets the pure core decide, and writes the new state, its
history, general messages, notes, received items and outbox rows together (the writer puts
each step in its own savepoint of a group transaction). Nothing is confirmed or answered
before that commit.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection

from ..core import (
    BorrowingState,
    Create,
    Decision,
    DeliveryFailed,
    IllegalTransition,
    InvalidInput,
    Locate,
    Receive,
    RequestConfirmed,
    RequestDetails,
    SupplierMessage,
    Tick,
    choose_rota,
    decide,
)
from ..core.events import AddPartner
from ..messages import ErrorType, Fault, Inbound, answer, model
from ..messages.codec import format_datetime
from ..store import queries
from ..store.models import general_messages_t, notes_t, received_items_t
from . import borrowing_rows as rows
from .context import ServiceContext
from .outgoing import encode_outgoing
from .writer import Conflict, Writer

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class NotFound(LookupError):
    pass


@dataclass(frozen=True)
class StepResult:
    request_id: int
    state: BorrowingState
    decision: Decision


def new_request_id() -> str:
    """Our requestingAgencyRequestId: short, unguessable, unique per requesting agency (us)."""
    return "BR-" + secrets.token_hex(6).upper()


# --- the step functions (sync, one Connection, no commit) -----------------------------------------


def _write_decision(
    conn: Connection,
    ctx: ServiceContext,
    row: dict[str, Any],
    decision: Decision,
    *,
    now: datetime,
    raw_message_id: int | None = None,
    extra: dict[str, Any] | None = None,
    received_items: tuple[str, ...] = (),
) -> None:
    request_id = row["id"]
    state = decision.state
    extra = dict(row.get("extra") or {}) | (extra or {})
    extra.pop("state", None)
    columns = rows.request_columns(state, extra)
    changed = {name: value for name, value in columns.items() if row.get(name) != value}
    if not queries.update_request(conn, request_id, row["version"], changed, now=now):
        raise Conflict(f"borrowing request {request_id} changed under us")
    if decision.rota_changed:
        rows.replace_rota(conn, request_id, state, ctx.policy)
    _write_children(conn, ctx, request_id, row["external_id"], extra, decision, now, raw_message_id, received_items)


def _write_children(
    conn: Connection,
    ctx: ServiceContext,
    request_id: int,
    external_id: str,
    extra: dict[str, Any],
    decision: Decision,
    now: datetime,
    raw_message_id: int | None,
    received_items: tuple[str, ...] = (),
) -> None:
    history = rows.history_rows(decision, request_id, raw_message_id)
    if history:
        queries.insert_history(conn, history)
    if decision.messages:
        conn.execute(general_messages_t.insert(), [
            {"request_id": request_id, "direction": m.direction, "partner_agency": m.partner, "at": m.at,
             "actor": m.partner if m.direction == "in" else decision.history[0].actor if decision.history else None,
             "text": m.note, "raw_message_id": raw_message_id if m.direction == "in" else None}
            for m in decision.messages
        ])
    if decision.notes:
        conn.execute(notes_t.insert(), [
            {"request_id": request_id, "created_at": n.at, "actor": n.by, "text": n.text} for n in decision.notes
        ])
    if received_items:
        conn.execute(received_items_t.insert(), [
            {"request_id": request_id, "barcode": code, "received_at": now, "due_date": decision.state.due_date}
            for code in received_items
        ])
    supplier_ids = extra.get("supplier_request_ids", {})
    for out in decision.outgoing:
        partner = ctx.partner(out.partner)
        body = encode_outgoing(
            decision.state, out, ours=ctx.agency, request_id=external_id,
            supplier_request_id=supplier_ids.get(out.partner), now=now, version=partner.version,
        )
        queries.insert_outbox(conn, partner_agency=out.partner, partner_url=partner.url,
                              kind=out.kind, body=body, now=now, request_id=request_id)


def create_step(ctx: ServiceContext, details: RequestDetails, partners: tuple[str, ...] | None,
                actor: str, now: datetime) -> Callable[[Connection], StepResult]:
    if partners is None:
        template = choose_rota(ctx.rota_templates, details)
        partners = template.partners if template else ()
    ctx.check_partners(partners)

    def step(conn: Connection) -> StepResult:
        decision = decide(None, Create(at=now, by=actor, details=details, partners=tuple(partners)), ctx.policy)
        external_id = new_request_id()
        columns = rows.request_columns(decision.state, {})
        request_id = queries.insert_request(conn, {**columns, "external_id": external_id}, now=now)
        if decision.state.rota:
            rows.replace_rota(conn, request_id, decision.state, ctx.policy)
        _write_children(conn, ctx, request_id, external_id, {}, decision, now, None)
        return StepResult(request_id, decision.state, decision)

    return step


def event_step(ctx: ServiceContext, request_id: int, event: Any, now: datetime) -> Callable[[Connection], StepResult]:
    if isinstance(event, AddPartner):
        ctx.check_partners([event.partner])

    def step(conn: Connection) -> StepResult:
        row = rows.load_row(conn, request_id)
        if row is None:
            raise NotFound(f"no borrowing request {request_id}")
        state = rows.state_of(row)
        ev = event
        if isinstance(ev, Locate) and not ev.default_rota:
            template = choose_rota(ctx.rota_templates, state.details)
            ev = Locate(at=ev.at, by=ev.by, default_rota=template.partners if template else ())
        if isinstance(ev, Locate):
            ctx.check_partners(ev.default_rota)
        decision = decide(state, ev, ctx.policy)
        items = ev.items if isinstance(ev, Receive) else ()
        _write_decision(conn, ctx, row, decision, now=now, received_items=items)
        return StepResult(request_id, decision.state, decision)

    return step


def _supplier_event(message: model.SupplyingAgencyMessage, now: datetime) -> SupplierMessage:
    info, status = message.message_info, message.status_info
    retry, delivery = message.retry_info, message.delivery_info
    conditions = [c.value for c in (delivery.loan_condition if delivery else [])]
    costs = [info.offered_costs] if info.offered_costs else []
    if retry is not None:
        conditions += [c.value for c in retry.loan_condition]
        costs += retry.offered_costs
    return SupplierMessage(
        partner=str(message.header.supplying_agency_id),
        reason=info.reason_for_message,
        status=status.status,
        answer=info.answer_yes_no,
        note=info.note,
        reason_unfilled=info.reason_unfilled.value if info.reason_unfilled else None,
        reason_retry=info.reason_retry.value if info.reason_retry else None,
        loan_conditions=tuple(conditions),
        offered_costs=tuple((c.monetary_value, c.currency_code.value) for c in costs),
        due_date=status.due_date,
        retry_after=info.retry_after or (retry.retry_after if retry else None),
        retry_before=info.retry_before or (retry.retry_before if retry else None),
        received_at=now,
    )


def _refusal(path: str, text: str) -> list[Fault]:
    return [Fault(ErrorType.UnrecognisedDataValue, f"/ISO18626Message/supplyingAgencyMessage/{path}: {text}")]


def supplier_message_step(ctx: ServiceContext, inbound: Inbound, body: bytes, now: datetime,
                          warnings: tuple[str, ...] = ()) -> Callable[[Connection], bytes]:
    """Apply a supplyingAgencyMessage; return the confirmation bytes (stored for duplicates)."""
    message: model.SupplyingAgencyMessage = inbound.message
    header = message.header
    sender, requester = str(header.supplying_agency_id), str(header.requesting_agency_id)
    request_ref = header.requesting_agency_request_id

    def step(conn: Connection) -> bytes:
        key = queries.MessageKey.of(
            body, direction="in", partner_agency=sender, kind=inbound.kind, requesting_agency=requester,
            requesting_agency_request_id=request_ref, message_timestamp=format_datetime(header.timestamp),
        )
        duplicate = queries.find_raw_message(conn, key)
        if duplicate is not None and duplicate["confirmation"] is not None:
            return duplicate["confirmation"]
        raw_id = queries.insert_raw_message(conn, key, body, received_at=now)
        faults = _apply_supplier_message(conn, ctx, message, sender, requester, request_ref, raw_id, now, warnings)
        confirmation = answer(inbound, now, faults=faults)
        queries.set_raw_confirmation(conn, raw_id, confirmation)
        return confirmation

    return step


def _apply_supplier_message(conn: Connection, ctx: ServiceContext, message: model.SupplyingAgencyMessage,
                            sender: str, requester: str, request_ref: str, raw_id: int,
                            now: datetime, warnings: tuple[str, ...] = ()) -> list[Fault]:
    if requester != ctx.agency:
        return _refusal("header/requestingAgencyId", f"{requester!r} is not this gateway's agency ({ctx.agency})")
    row = rows.load_row_by_external_id(conn, request_ref)
    if row is None:
        return _refusal("header/requestingAgencyRequestId", f"no borrowing request {request_ref!r} from {ctx.agency}")
    state = rows.state_of(row)
    if warnings:  # the partner's tolerance profile repaired this message: say so on the record
        queries.insert_history(conn, [{
            "request_id": row["id"], "at": now, "actor": sender, "event": "conformance_warning",
            "from_status": state.status.value, "to_status": state.status.value,
            "detail": {"text": text}, "raw_message_id": raw_id,
        } for text in warnings])
    if all(entry.partner != sender for entry in state.rota):
        return _refusal("header/supplyingAgencyId", f"{sender!r} is not in the rota of request {request_ref!r}")
    event = _supplier_event(message, now)
    try:
        decision = decide(state, event, ctx.policy)
    except (IllegalTransition, InvalidInput) as exc:
        queries.insert_history(conn, {
            "request_id": row["id"], "at": now, "actor": sender, "event": "message_refused",
            "from_status": state.status.value, "to_status": state.status.value,
            "detail": {"text": str(exc)}, "raw_message_id": raw_id,
        })
        return _refusal("messageInfo", f"refused in status {state.status.value}: {exc}")
    extra = {}
    if message.header.supplying_agency_request_id:
        ids = dict((row.get("extra") or {}).get("supplier_request_ids", {}))
        ids[sender] = message.header.supplying_agency_request_id
        extra["supplier_request_ids"] = ids
    _write_decision(conn, ctx, row, decision, now=now, raw_message_id=raw_id, extra=extra)
    return []


# --- the service -----------------------------------------------------------------------------------


class BorrowingService:
    """Async entry points; every write goes through the shared group-commit writer."""

    def __init__(self, writer: Writer, ctx: ServiceContext, clock: Clock = utc_now,
                 notify: Callable[[], None] = lambda: None):
        # notify: called after a commit that queued outbox rows, so the worker wakes at once
        self.writer, self.ctx, self.clock, self.notify = writer, ctx, clock, notify

    def _queued(self, result: StepResult) -> StepResult:
        if result.decision.outgoing:
            self.notify()
        return result

    async def create(self, details: RequestDetails, partners: tuple[str, ...] | None = None,
                     actor: str = "staff") -> StepResult:
        return self._queued(await self.writer.run(create_step(self.ctx, details, partners, actor, self.clock())))

    async def apply(self, request_id: int, event: Any) -> StepResult:
        return self._queued(await self.writer.run(event_step(self.ctx, request_id, event, self.clock())))

    async def receive_supplier_message(self, inbound: Inbound, body: bytes, warnings: tuple[str, ...] = ()) -> bytes:
        return await self.writer.run(supplier_message_step(self.ctx, inbound, body, self.clock(), warnings))

    async def request_confirmed(self, request_id: int, partner: str) -> StepResult:
        now = self.clock()
        return await self.apply(request_id, RequestConfirmed(partner=partner, now=now))

    async def delivery_failed(self, request_id: int, partner: str, kind: str, action: Any = None) -> StepResult:
        now = self.clock()
        return await self.apply(request_id, DeliveryFailed(partner=partner, kind=kind, at=now, action=action))

    async def add_attachment(self, request_id: int, filename: str, media_type: str, content: bytes,
                             actor: str = "staff") -> int:
        return await self.writer.run(attachment_step(request_id, filename, media_type, content, actor, self.clock()))

    async def set_parameters(self, request_id: int, values: dict[str, str | None],
                             actor: str = "staff") -> dict[str, str | None]:
        return await self.writer.run(parameters_step(request_id, values, actor, self.clock()))

    async def tick(self) -> list[int]:
        """Apply a Tick to every request whose partner deadline has passed; return their ids."""
        now = self.clock()
        due = await self.writer.run(lambda conn: rows.due_request_ids(conn, now))
        for request_id in due:
            self._queued(await self.writer.run(event_step(self.ctx, request_id, Tick(now=now), now)))
        return due


# --- attachments and parameters (tabs of a request; no status change) ------------------------------


def attachment_step(request_id: int, filename: str, media_type: str, content: bytes, actor: str,
                    now: datetime) -> Callable[[Connection], int]:
    from ..store.models import attachments_t

    def step(conn: Connection) -> int:
        row = rows.load_row(conn, request_id)
        if row is None:
            raise NotFound(f"no borrowing request {request_id}")
        result = conn.execute(attachments_t.insert().values(
            request_id=request_id, filename=filename, media_type=media_type, size=len(content),
            content=content, created_at=now, actor=actor,
        ))
        queries.insert_history(conn, {
            "request_id": request_id, "at": now, "actor": actor, "event": "add_attachment",
            "from_status": row["status"], "to_status": row["status"],
            "detail": {"text": f"{filename} ({media_type}, {len(content)} bytes)"},
        })
        return int(result.inserted_primary_key[0])

    return step


def parameters_step(request_id: int, values: dict[str, str | None], actor: str,
                    now: datetime) -> Callable[[Connection], dict[str, str | None]]:
    """Set (or, with None, remove) parameters of a request; return all of them."""
    from sqlalchemy import delete, select

    from ..store.models import parameters_t

    def step(conn: Connection) -> dict[str, str | None]:
        row = rows.load_row(conn, request_id)
        if row is None:
            raise NotFound(f"no borrowing request {request_id}")
        table = parameters_t
        conn.execute(delete(table).where(table.c.request_id == request_id, table.c.key.in_(list(values))))
        kept = [{"request_id": request_id, "key": k, "value": v} for k, v in values.items() if v is not None]
        if kept:
            conn.execute(table.insert(), kept)
        queries.insert_history(conn, {
            "request_id": request_id, "at": now, "actor": actor, "event": "set_parameters",
            "from_status": row["status"], "to_status": row["status"],
            "detail": {"text": ", ".join(f"{k}={v}" for k, v in values.items())},
        })
        found = conn.execute(select(table.c.key, table.c.value).where(table.c.request_id == request_id))
        return {k: v for k, v in found}

    return step
