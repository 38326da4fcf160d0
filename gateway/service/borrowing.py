"""Borrowing use cases: each staff action, partner message or timer tick is one write step.

A step loads the request's state, lets the pure core decide, and writes the new state, its
history, general messages, notes, received items and outbox rows together (the writer puts
each step in its own savepoint of a group transaction). Nothing is confirmed or answered
before that commit.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection

from ..core import (
    BorrowingState,
    Create,
    Decision,
    IllegalTransition,
    InvalidInput,
    Locate,
    MarkMessagesRead,
    RequestConfirmed,
    RequestDetails,
    SupplierMessage,
    Tick,
    choose_rota,
    decide,
)
from ..core import AddPartner, Edit, RetryRequest
from ..core.wording import describe_changes
from ..messages import Fault, Inbound, Status, answer, model
from ..messages.peers import conditions_in_note, note_markers, parse_reshare_markers
from ..store import queries
from ..store.arrays import GroupWrite
from . import borrowing_rows as rows
from .context import ServiceContext
from .decision_rows import DecisionRows, history_row, outbox_row, warning_rows
from .inbound import inbound_key, refusal, store_if_new
from .outgoing import encode_outgoing
from .writer import Conflict, Writer

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class NotFound(LookupError):
    pass


class StaleVersion(Exception):
    """A staff change was made on a page showing an older version of the request: nothing was
    changed (the pages show the request again with what changed meanwhile)."""

    def __init__(self, expected: int, current: int):
        super().__init__(f"the request changed (version {current}) since it was shown (version {expected})")
        self.expected, self.current = expected, current


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
) -> None:
    request_id = row["id"]
    state = decision.state
    extra = dict(row.get("extra") or {}) | (extra or {})
    extra.pop("state", None)
    columns = rows.request_columns(state, extra)
    changed = {name: value for name, value in columns.items() if row.get(name) != value}
    if not queries.update_request(conn, request_id, row["version"], changed, now=now):
        raise Conflict(f"borrowing request {request_id} changed under us")
    if decision.rota_changed or rows.deadline_moved(decision.previous, state, ctx.policy):
        rows.replace_rota(conn, request_id, state, ctx.policy)
    _write_children(conn, ctx, request_id, row["external_id"], extra, decision, now, raw_message_id)


OWNER = "request_id"  # the column that links history, messages, notes, items and outbox rows to a request


def _add(rows: DecisionRows, ctx: ServiceContext, request_id: int, external_id: str, extra: dict[str, Any],
         decision: Decision, now: datetime, raw_message_id: int | None) -> None:
    """The decision's rows, with its outgoing requestingAgencyMessages encoded for each partner."""
    supplier_ids = extra.get("supplier_request_ids", {})
    outbox = []
    for out in decision.outgoing:
        partner = ctx.partner(out.partner)
        body = encode_outgoing(
            decision.state, out, ours=ctx.agency, request_id=external_id,
            supplier_request_id=supplier_ids.get(out.partner), now=now, version=partner.version,
            copyright_compliance=ctx.copyright_compliance,
        )
        outbox.append(outbox_row(partner, out.kind, body))
    sender = decision.history[0].actor if decision.history else None
    rows.add(request_id, decision, raw_message_id, now=now, sender=sender, outbox=outbox)


def _write_children(conn: Connection, ctx: ServiceContext, request_id: int, external_id: str,
                    extra: dict[str, Any], decision: Decision, now: datetime, raw_message_id: int | None) -> None:
    rows = DecisionRows(OWNER)
    _add(rows, ctx, request_id, external_id, extra, decision, now, raw_message_id)
    rows.write(conn)


def create_step(ctx: ServiceContext, details: RequestDetails, partners: tuple[str, ...] | None,
                actor: str, now: datetime) -> Callable[[Connection], StepResult]:
    if partners is None:
        template = choose_rota(ctx.rota_templates, details)
        partners = template.partners if template else ()
    ctx.check_partners(partners)
    ctx.form_rules.check(details, today=now.date())

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


def event_step(ctx: ServiceContext, request_id: int, event: Any, now: datetime,
               expected_version: int | None = None) -> Callable[[Connection], StepResult]:
    if isinstance(event, AddPartner):
        ctx.check_partners([event.partner])

    def step(conn: Connection) -> StepResult:
        row = rows.load_row(conn, request_id)
        if row is None:
            raise NotFound(f"no borrowing request {request_id}")
        if expected_version is not None and row["version"] != expected_version:
            raise StaleVersion(expected_version, row["version"])
        state = rows.state_of(row)
        ev = event
        if isinstance(ev, Locate) and not ev.default_rota:
            template = choose_rota(ctx.rota_templates, state.details)
            ev = Locate(at=ev.at, by=ev.by, default_rota=template.partners if template else ())
        if isinstance(ev, Locate):
            ctx.check_partners(ev.default_rota)
        decision = decide(state, ev, ctx.policy)
        if isinstance(ev, (Edit, RetryRequest)) and ev.changes:  # (a refused action is a 409 first)
            ctx.form_rules.check(decision.state.details, today=now.date(), changed=ev.changes)
        if decision.changes_nothing:
            # No write, so the row keeps its version and updated_at; only a deadline stored by an
            # older version that no longer holds is put right, or the timer would come back.
            rows.refresh_deadline(conn, request_id, state, ctx.policy)
            return StepResult(request_id, decision.state, decision)
        _write_decision(conn, ctx, row, decision, now=now)
        if isinstance(ev, MarkMessagesRead):
            queries.mark_messages_read(conn, now=now, request_id=request_id)
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
    if not conditions and status.status in (Status.WillSupply, Status.ExpectToSupply):
        conditions = conditions_in_note(info.note)
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
        conditions_assumed_agreed=bool(info.note and "#" in info.note
                                       and parse_reshare_markers(info.note).conditions_assumed_agreed),
        received_at=now,
        timestamp=message.header.timestamp,
    )


def _refusal(path: str, text: str) -> list[Fault]:
    return refusal("supplyingAgencyMessage", path, text)


class SupplierMessageStep:
    """Apply one supplyingAgencyMessage; its result is the confirmation bytes (stored with the
    message, and given again for a duplicate).

    `step(conn)` runs it alone. The writer instead hands consecutive such steps to `run_many`
    (their shared `SupplierMessages`), which applies them together with the same outcome.
    """

    def __init__(self, batch: SupplierMessages, inbound: Inbound, body: bytes, now: datetime,
                 warnings: tuple[str, ...] = ()):
        message: model.SupplyingAgencyMessage = inbound.message
        header = message.header
        self.inbound, self.message, self.body, self.now, self.warnings = inbound, message, body, now, warnings
        self.sender, self.requester = str(header.supplying_agency_id), str(header.requesting_agency_id)
        self.request_ref = header.requesting_agency_request_id
        self.key = inbound_key(inbound, self.sender)
        self.run_many = batch.run_many

    def __call__(self, conn: Connection) -> bytes:
        (confirmation,), _ = self.run_many(conn, [self])
        return confirmation


@dataclass
class _Applied:
    """One message of a group that is not a duplicate: what it did, until its rows are written."""

    step: SupplierMessageStep
    confirmation: bytes
    history: list[dict[str, Any]]  # warnings and refusals (raw_message_id filled in later)
    decision: Decision | None = None
    request: rows.Loaded | None = None  # the request after this message (when decided)


class StoredBefore(Exception):
    """A message of a group had been received before: the group's decisions are void."""


class SupplierMessages:
    """Applies a group of supplyingAgencyMessages with a few statements for the whole group.

    Per message the outcome is the one a step of its own would have: messages for the same
    request apply in order, each on top of the one before; a message already stored (or a
    second copy within the group) gets the first one's confirmation and changes nothing; a
    refused message is recorded and answered with an ERROR confirmation. Anything that raises
    makes the writer run the group's steps one by one instead (docs/architecture.md: atomic steps).
    """

    def __init__(self, ctx: ServiceContext, cache: rows.StateCache | None = None):
        self.ctx = ctx
        self.cache = cache or rows.StateCache()
        self.queued = False  # a group queued outbox rows: the service wakes the worker after commit

    def run_many(self, conn: Connection, steps: list[SupplierMessageStep]
                 ) -> tuple[list[bytes], Callable[[], None] | None]:
        """The confirmations of `steps`, and what to remember once they have committed."""
        refs = [s.request_ref for s in steps if s.requester == self.ctx.agency]
        loaded = rows.load_for_steps(conn, refs, self.cache)
        current = dict(loaded)  # external id -> the request as the messages so far left it
        first: dict[queries.MessageKey, _Applied] = {}  # a second copy in the group gets the first's answer
        for step in steps:
            if step.key not in first:
                first[step.key] = done = self._apply(step, current.get(step.request_ref))
                if done.request is not None:
                    current[step.request_ref] = done.request
        applied = list(first.values())
        self.queued |= any(a.decision is not None and a.decision.outgoing for a in applied)
        raw_ids = store_if_new(conn, [(a.step.key, a.step.body, a.step.now, a.confirmation) for a in applied])
        if isinstance(raw_ids, bytes):  # received before: the stored confirmation answers it
            return [raw_ids] * len(steps), None
        if len(raw_ids) < len(applied):
            raise StoredBefore("a message of the group was stored before; the group assumed it new")
        self._write(conn, applied, raw_ids, loaded, current)
        changed = [after for ref, after in current.items() if after is not loaded[ref]]
        confirmations = [first[step.key].confirmation for step in steps]
        return confirmations, (lambda: self.cache.put(changed)) if changed else None

    def _apply(self, step: SupplierMessageStep, request: rows.Loaded | None) -> _Applied:
        """Decide what one message does to its request, and the confirmation (no I/O)."""
        faults, history, decision, after = self._judge(step, request)
        return _Applied(step, answer(step.inbound, step.now, faults=faults), history, decision, after)

    def _judge(self, step: SupplierMessageStep, request: rows.Loaded | None
               ) -> tuple[list[Fault], list[dict[str, Any]], Decision | None, rows.Loaded | None]:
        """(faults, history rows of its own, decision, the request after it)."""
        ctx, sender, now = self.ctx, step.sender, step.now
        if step.requester != ctx.agency:
            return _refusal("header/requestingAgencyId",
                            f"{step.requester!r} is not this gateway's agency ({ctx.agency})"), [], None, None
        if request is None:
            return _refusal("header/requestingAgencyRequestId",
                            f"no borrowing request {step.request_ref!r} from {ctx.agency}"), [], None, None
        state = request.state
        status = state.status.value
        history = warning_rows(OWNER, request.id, at=now, sender=sender, status=status, warnings=step.warnings)
        if all(entry.partner != sender for entry in state.rota):
            return _refusal("header/supplyingAgencyId",
                            f"{sender!r} is not in the rota of request {step.request_ref!r}"), history, None, None
        try:
            decision = decide(state, _supplier_event(step.message, now), ctx.policy)
        except (IllegalTransition, InvalidInput) as exc:
            history.append(history_row(OWNER, request.id, at=now, actor=sender, event="message_refused",
                                       status=status, text=str(exc)))
            return _refusal("messageInfo", f"refused in status {status}: {exc}"), history, None, None
        extra = request.extra
        supplier_id = step.message.header.supplying_agency_request_id
        if supplier_id and extra.get("supplier_request_ids", {}).get(sender) != supplier_id:
            extra = {**extra, "supplier_request_ids": {**extra.get("supplier_request_ids", {}), sender: supplier_id}}
        after = rows.Loaded(request.id, request.external_id, request.version + 1, decision.state,
                            request.state_json, extra)
        return [], history, decision, after

    def _write(self, conn: Connection, applied: list[_Applied], raw_ids: dict[queries.MessageKey, int],
               loaded: dict[str, rows.Loaded], current: dict[str, rows.Loaded]) -> None:
        children = DecisionRows(OWNER)
        for a in applied:
            raw_id = raw_ids[a.step.key]
            first = len(children.history)
            for row in a.history:
                row["raw_message_id"] = raw_id
            children.history.extend(a.history)
            if a.decision is not None and a.request is not None:
                _add(children, self.ctx, a.request.id, a.request.external_id, a.request.extra, a.decision,
                     a.step.now, raw_id)
            # A status message's note is history, not a general message: its markers go there.
            markers = note_markers(a.step.message.message_info.note)
            if markers:
                children.mark(first, markers)
        updates, rotas = self._request_updates(applied, loaded, current)
        # On PostgreSQL a group without outbox rows or replaced rotas (most of them) writes all
        # of this with one statement, its version-checked update first (arrays.GroupWrite).
        into = GroupWrite() if (conn.dialect.name == "postgresql" and not children.outbox
                                and not rows.replaces_rota(rotas)) else None
        # The version-checked update first: a transaction that lost the race to another one
        # meets the Conflict here, before writing rows that would only be rolled back (and
        # before an outbox row could take a `seq` the other one took).
        if not queries.update_requests(conn, updates, into=into):
            raise Conflict("a borrowing request changed under us")
        rows.write_rotas(conn, rotas, self.ctx.policy, into=into)
        children.write(conn, into=into)
        if into is not None and not into.run(conn):
            raise Conflict("a borrowing request changed under us")

    def _request_updates(self, applied: list[_Applied], loaded: dict[str, rows.Loaded],
                         current: dict[str, rows.Loaded]
                         ) -> tuple[list[queries.RequestUpdate], dict[int, tuple[BorrowingState, BorrowingState]]]:
        """One version-checked update per request that the group moved on: its final state (with
        the version counting every step), or only the version when no step changed the state;
        and the rota changes to write with them."""
        last_step = {a.request.external_id: a.step.now for a in applied if a.request is not None}
        updates, rotas = [], {}
        for ref, now in last_step.items():
            before, after = loaded[ref], current[ref]
            values: dict[str, Any] = {}
            if after.state != before.state or after.extra != before.extra:
                state_json = rows.encode_state(after.state, before)
                current[ref] = after = replace(after, state_json=state_json)
                values = rows.status_columns(after.state, {**after.extra, "state": state_json})
                if after.state.details != before.state.details:
                    values.update(rows.detail_columns(after.state.details))
                if after.state.rota != before.state.rota or rows.deadline_moved(before.state, after.state,
                                                                                 self.ctx.policy):
                    rotas[after.id] = (before.state, after.state)
            updates.append(queries.RequestUpdate(after.id, before.version, after.version, values, now))
        return updates, rotas


# --- the service -----------------------------------------------------------------------------------


class BorrowingService:
    """Async entry points; every write goes through the shared group-commit writer."""

    def __init__(self, writer: Writer, ctx: ServiceContext, clock: Clock = utc_now,
                 notify: Callable[[], None] = lambda: None):
        # notify: called after a commit that queued outbox rows, so the worker wakes at once
        self.writer, self.ctx, self.clock, self.notify = writer, ctx, clock, notify
        self.supplier_messages = SupplierMessages(ctx)  # groups inbound messages; keeps their states

    def _queued(self, result: StepResult) -> StepResult:
        if result.decision.outgoing:
            self.notify()
        return result

    async def create(self, details: RequestDetails, partners: tuple[str, ...] | None = None,
                     actor: str = "staff") -> StepResult:
        return self._queued(await self.writer.run(create_step(self.ctx, details, partners, actor, self.clock())))

    async def apply(self, request_id: int, event: Any, expected_version: int | None = None) -> StepResult:
        """Apply a staff or system event; with `expected_version`, only to that version of the
        request (StaleVersion otherwise, and nothing changes)."""
        return self._queued(await self.writer.run(
            event_step(self.ctx, request_id, event, self.clock(), expected_version)))

    async def receive_supplier_message(self, inbound: Inbound, body: bytes, warnings: tuple[str, ...] = ()) -> bytes:
        reply = await self.writer.run(SupplierMessageStep(self.supplier_messages, inbound, body, self.clock(), warnings))
        if self.supplier_messages.queued:  # e.g. an Unfilled sent the request to the next partner
            self.supplier_messages.queued = False
            self.notify()
        return reply

    async def request_confirmed(self, request_id: int, partner: str) -> StepResult:
        now = self.clock()
        return await self.apply(request_id, RequestConfirmed(partner=partner, now=now))

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
            "detail": {"text": "parameters " + describe_changes(values, cleared="removed")},
        })
        found = conn.execute(select(table.c.key, table.c.value).where(table.c.request_id == request_id))
        return {k: v for k, v in found}

    return step
