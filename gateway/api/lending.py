"""Handlers of `/api/v1/lending-requests`: the supplying side, mirroring the borrowing API.

Lending requests are born from partners' ISO `request`s (not from the API); staff list them,
read all their tabs, answer them with actions, and write general messages and notes. Every
write goes through `LendingService.apply` with the key's actor (`staff:<name>`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import Connection, case, false, func, or_, select, true

from ..core import AddNote, MarkMessagesRead, SendMessage
from ..core.lending import (
    AnswerCancel, AnswerRenew, CheckIn, ClearFlag, CompleteCopy, CompleteWithoutReturn, ExpectToSupply,
    LendingAttention, LendingState, LendingStatus, MarkOverdue, MarkUnfilled, OfferConditions, OfferRetry, Recall,
    Ship, WillSupply, allowed_lending_actions,
)
from ..messages.codes import Status, YesNo
from ..service.snapshot import from_json, to_json
from ..store.models import (
    attachments_t, general_messages_t, history_t, lending_requests_t as lr, notes_t,
)
from . import queries as bq
from ._web import MAX_OFFSET, actions_by_api_name, bool_param, gw, int_param, named_action, ok, one, path_id, query_params, read, text_body
from .auth import principal_of
from .errors import ApiError, not_found
from .fields import check_agency, check_text, parse_decimal, parse_instant
from .operations import allowed_json

LIST_PARAMS = frozenset({"status", "partner", "needs_attention", "q", "created_from", "created_to", "updated_from",
                         "updated_to", "limit", "offset", "sort", "facets"})
SORTS = {"created_at": lr.c.created_at, "updated_at": lr.c.updated_at, "status": lr.c.status,
         "title": lr.c.title, "due_date": lr.c.due_date}
STATUS_CODES = frozenset(s.value for s in LendingStatus)
FACETS = ("status", "partner", "needs_attention", "service_type")


def _label(status: str | None) -> str | None:
    try:
        return LendingStatus(status).label if status else None
    except ValueError:
        return status


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


# --- list -------------------------------------------------------------------------------------


def _where(params: dict[str, list[str]], dialect: str) -> list[Any]:
    where: list[Any] = []
    for name in ("status", "partner"):
        values = [v.strip() for raw in params.get(name, []) for v in raw.split(",")]
        if len(values) > 50 or any(not v or len(v) > 200 for v in values):
            raise ApiError(422, "invalid_field", "empty, too long or too many values", name)
        if name == "status" and any(v not in STATUS_CODES for v in values):
            raise ApiError(422, "invalid_field", "unknown status", name)
        if values:
            where.append((lr.c.status if name == "status" else lr.c.requesting_agency).in_(values))
    attention = bool_param(params, "needs_attention")
    if attention is not None:
        where.append(lr.c.needs_attention == (true() if attention else false()))
    for name, column in (("created", lr.c.created_at), ("updated", lr.c.updated_at)):
        low, high = one(params, f"{name}_from"), one(params, f"{name}_to")
        if low:
            where.append(column >= parse_instant(low, f"{name}_from"))
        if high:
            where.append(column < parse_instant(high, f"{name}_to", end=True))
    text = one(params, "q") or ""
    if len(text) > 200:
        raise ApiError(422, "invalid_field", "is longer than 200 characters", "q")
    for word in text.split()[:10]:
        pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        columns = (lr.c.title, lr.c.author, lr.c.requesting_agency_request_id)
        if dialect == "sqlite":
            where.append(or_(*(c.like(pattern, escape="\\") for c in columns)))
        else:
            where.append(or_(*(c.ilike(pattern, escape="\\") for c in columns)))
    return where


def summary_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"], "requesting_agency": row["requesting_agency"],
        "requesting_agency_request_id": row["requesting_agency_request_id"], "status": row["status"],
        "status_label": _label(row["status"]), "needs_attention": bool(row["needs_attention"]),
        "unread_messages": row["unread_messages"], "title": row["title"], "author": row["author"], "service_type": row["service_type"],
        "due_date": _iso(row["due_date"]), "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
    }


def list_lending(conn: Connection, params: dict[str, list[str]], limit: int, offset: int, sort: str,
                 facets: bool) -> dict[str, Any]:
    where = _where(params, conn.dialect.name)
    column = SORTS[sort.lstrip("-")]
    descending = sort.startswith("-")
    order = [column.desc() if descending else column.asc(), lr.c.id.desc() if descending else lr.c.id.asc()]
    if column is lr.c.title or column is lr.c.due_date:
        order.insert(0, case((column.is_(None), 1), else_=0))
    columns = (lr.c.id, lr.c.requesting_agency, lr.c.requesting_agency_request_id, lr.c.status,
               lr.c.needs_attention, lr.c.title, lr.c.author, lr.c.service_type, lr.c.due_date, lr.c.created_at,
               lr.c.updated_at, bq.unread_messages(general_messages_t.c.lending_id == lr.c.id))
    items = [summary_json(dict(r._mapping)) for r in conn.execute(
        select(*columns).where(*where).order_by(*order).limit(limit).offset(offset))]
    out: dict[str, Any] = {"items": items, "limit": limit, "offset": offset, "sort": sort}
    if not facets:
        out["total"] = conn.execute(select(func.count()).select_from(lr).where(*where)).scalar_one()
        return out
    grouped = conn.execute(select(lr.c.status, lr.c.requesting_agency, lr.c.needs_attention, lr.c.service_type,
                                  func.count()).where(*where)
                           .group_by(lr.c.status, lr.c.requesting_agency, lr.c.needs_attention, lr.c.service_type))
    sums: dict[str, dict[Any, int]] = {name: {} for name in FACETS}
    total = 0
    for status, partner, attention, service, n in grouped:
        total += n
        for name, value in (("status", status), ("partner", partner), ("needs_attention", bool(attention)),
                            ("service_type", service)):
            sums[name][value] = sums[name].get(value, 0) + n
    out["total"] = total
    out["facets"] = {name: [{"value": v, "count": n, **({"label": _label(v)} if name == "status" else {})}
                            for v, n in sorted(values.items(), key=lambda kv: (-kv[1], str(kv[0])))]
                     for name, values in sums.items()}
    return out


async def list_requests(request: web.Request) -> web.Response:
    params = query_params(request, LIST_PARAMS)
    sort = one(params, "sort") or "-created_at"
    if sort.lstrip("-") not in SORTS or sort.count("-") > 1:
        raise ApiError(422, "invalid_field", f"must be one of {', '.join(SORTS)} (prefix - for descending)", "sort")
    limit = int_param(params, "limit", 25, 1, 200)
    offset = int_param(params, "offset", 0, 0, MAX_OFFSET)
    facets = bool_param(params, "facets")
    for name in ("status", "partner", "needs_attention", "q", "created_from", "created_to", "updated_from",
                 "updated_to"):
        if name in params and len(params[name]) > 1 and name not in ("status", "partner"):
            raise ApiError(422, "invalid_field", "may be given only once", name)
    return ok(await read(request, list_lending, params, limit, offset, sort, True if facets is None else facets))


# --- one request ------------------------------------------------------------------------------


def _costs_json(costs: Any) -> list[dict[str, str]]:
    return [{"amount": str(a), "currency": c} for a, c in costs]


def lending_json(conn: Connection, lending_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(lr).where(lr.c.id == lending_id)).first()
    if row is None:
        return None
    row = dict(row._mapping)
    state: LendingState = from_json(LendingState, row["extra"]["state"])

    def rows(table: Any, order: Any) -> list[dict[str, Any]]:
        return [dict(r._mapping) for r in conn.execute(select(table).where(table.c.lending_id == lending_id)
                                                       .order_by(order))]

    details = to_json(state.details)
    details["other_identifiers"] = [{"type": t, "value": v} for t, v in state.details.other_identifiers]
    attachments = [dict(r._mapping) for r in conn.execute(
        select(*bq.ATTACHMENT_COLUMNS).where(attachments_t.c.lending_id == lending_id).order_by(attachments_t.c.id))]
    actions = allowed_json(allowed_lending_actions(state), row["id"], lending=True)
    messages = rows(general_messages_t, general_messages_t.c.id)
    return {
        "id": row["id"],
        "our_request_id": f"LR-{row['id']}",
        "requesting_agency": row["requesting_agency"],
        "requesting_agency_request_id": row["requesting_agency_request_id"],
        "supplying_agency": row["supplying_agency"],
        "status": state.status.value,
        "status_label": state.status.label,
        "iso_status": state.iso_status.value,
        "needs_attention": state.needs_attention,
        "attention": sorted(flag.value for flag in state.flags),
        "unread_messages": bq.count_unread(messages),
        "pending": state.pending.value if state.pending else None,
        "received_at": _iso(state.received_at),
        "responded": state.responded,
        "loan_conditions": list(state.loan_conditions),
        "offered_costs": _costs_json(state.offered_costs),
        "reason": state.reason,
        "due_date": _iso(state.due_date),
        "item_ids": list(state.item_ids),
        "shipped_at": _iso(state.shipped_at),
        "borrower_received_at": _iso(state.borrower_received_at),
        "return_shipped_at": _iso(state.return_shipped_at),
        "raw_request_id": row["raw_request_id"],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "version": row["version"],
        "details": details,
        "allowed_actions": actions,
        "history": [bq.history_json(h) for h in rows(history_t, history_t.c.id)],
        "general_messages": [bq.message_json(m) for m in messages],
        "notes": [bq.note_json(n) for n in rows(notes_t, notes_t.c.id)],
        "attachments": [bq.attachment_json(a) for a in attachments],
    }


async def respond(request: web.Request, lending_id: int, status: int = 200) -> web.Response:
    data = await read(request, lending_json, lending_id)
    if data is None:
        raise not_found(f"no lending request {lending_id}")
    return ok(data, status)


async def get_request(request: web.Request) -> web.Response:
    return await respond(request, path_id(request))


async def _tab(request: web.Request, table: Any, to_json: Any) -> list[dict[str, Any]]:
    lending_id = path_id(request)

    def load(conn: Connection) -> list[dict[str, Any]] | None:
        if conn.execute(select(lr.c.id).where(lr.c.id == lending_id)).first() is None:
            return None
        return [to_json(dict(r._mapping)) for r in conn.execute(
            select(table).where(table.c.lending_id == lending_id).order_by(table.c.id))]

    data = await read(request, load)
    if data is None:
        raise not_found(f"no lending request {lending_id}")
    return data


async def get_history(request: web.Request) -> web.Response:
    return ok({"history": await _tab(request, history_t, bq.history_json)})


async def get_messages(request: web.Request) -> web.Response:
    return ok({"messages": await _tab(request, general_messages_t, bq.message_json)})


async def get_notes(request: web.Request) -> web.Response:
    return ok({"notes": await _tab(request, notes_t, bq.note_json)})


async def _apply(request: web.Request, lending_id: int, event_type: type, **kw: Any) -> Any:
    g = gw(request)
    return await g.lending.apply(lending_id, event_type(at=g.clock(), by=principal_of(request).actor, **kw))


async def _post_text(request: web.Request, event_type: type, field: str, table: Any,
                     to_json: Any) -> web.Response:
    """Apply a staff event that carries the body's text; answer with the tab entry it added."""
    await _apply(request, path_id(request), event_type, **{field: await text_body(request)})
    return ok((await _tab(request, table, to_json))[-1], 201)


async def post_message(request: web.Request) -> web.Response:
    return await _post_text(request, SendMessage, "note", general_messages_t, bq.message_json)


async def post_note(request: web.Request) -> web.Response:
    return await _post_text(request, AddNote, "text", notes_t, bq.note_json)


# --- actions ----------------------------------------------------------------------------------


def _strings(body: dict[str, Any], name: str, limit: int = 20) -> tuple[str, ...]:
    value = body.get(name) or []
    if not isinstance(value, list) or len(value) > limit:
        raise ApiError(422, "invalid_field", f"must be a list of strings (at most {limit})", name)
    return tuple(check_text(v, f"{name}[{i}]", max_length=200, required=True, allow_newlines=False)  # type: ignore[misc]
                 for i, v in enumerate(value))


def _costs(body: dict[str, Any], name: str) -> tuple[tuple[Any, str], ...]:
    value = body.get(name) or []
    if not isinstance(value, list) or len(value) > 5:
        raise ApiError(422, "invalid_field", "must be a list of {amount, currency} (at most 5)", name)
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict) or set(item) != {"amount", "currency"}:
            raise ApiError(422, "invalid_field", "must be {amount, currency}", f"{name}[{i}]")
        amount = parse_decimal(item["amount"], f"{name}[{i}].amount")
        currency = item["currency"]
        if amount is None or not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha() \
                or not currency.isupper():
            raise ApiError(422, "invalid_field", "needs an amount and a 3-letter currency", f"{name}[{i}]")
        out.append((amount, currency))
    return tuple(out)


def _when(body: dict[str, Any], name: str, required: bool = False) -> datetime | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ApiError(422, "invalid_field", "is required", name)
        return None
    if not isinstance(value, str) or not value.strip():
        raise ApiError(422, "invalid_field", "must be a date or an ISO 8601 datetime", name)
    return parse_instant(value, name)


def _note(body: dict[str, Any]) -> dict[str, Any]:
    return {"note": check_text(body.get("note"), "note")}


def _line(body: dict[str, Any], name: str, required: bool = False, limit: int = 200) -> str | None:
    return check_text(body.get(name), name, max_length=limit, required=required, allow_newlines=False)


def _answer(body: dict[str, Any]) -> YesNo:
    value = body.get("answer")
    if value not in ("Y", "N"):
        raise ApiError(422, "invalid_field", "must be Y or N", "answer")
    return YesNo(value)


def _conditional(body: dict[str, Any]) -> dict[str, Any]:
    status = body.get("status", "WillSupply")
    if status not in ("WillSupply", "ExpectToSupply"):
        raise ApiError(422, "invalid_field", "must be WillSupply or ExpectToSupply", "status")
    conditions, costs = _strings(body, "loan_conditions"), _costs(body, "offered_costs")
    if not conditions and not costs:
        raise ApiError(422, "invalid_field", "give loan conditions or offered costs", "loan_conditions")
    return {"loan_conditions": conditions, "offered_costs": costs, "status": Status(status), **_note(body)}


def _retry(body: dict[str, Any]) -> dict[str, Any]:
    return {"reason_retry": _line(body, "reason_retry", required=True), "retry_after": _when(body, "retry_after"),
            "retry_before": _when(body, "retry_before"), "loan_conditions": _strings(body, "loan_conditions"),
            "offered_costs": _costs(body, "offered_costs"), **_note(body)}


def _ship(body: dict[str, Any]) -> dict[str, Any]:
    return {"due_date": _when(body, "due_date", required=True), "item_ids": _strings(body, "item_ids"),
            "delivery_costs": _costs(body, "delivery_costs"), "sent_via": _line(body, "sent_via", limit=64),
            **_note(body)}


def _copy(body: dict[str, Any]) -> dict[str, Any]:
    return {"url": _line(body, "url", limit=2000), "item_ids": _strings(body, "item_ids"),
            "delivery_costs": _costs(body, "delivery_costs"), "sent_via": _line(body, "sent_via", limit=64),
            **_note(body)}


def _acknowledge(body: dict[str, Any]) -> dict[str, Any]:
    plain = ("lost", "reminder", "send_failed")
    if body.get("flag") not in plain:
        raise ApiError(422, "invalid_field", f"must be one of {', '.join(plain)}", "flag")
    return {"flag": LendingAttention(body["flag"])}


# each event under its API name: (event, body fields, parser)
ACTIONS = actions_by_api_name(
    (ExpectToSupply, {"note"}, _note),
    (WillSupply, {"note"}, _note),
    (OfferConditions, {"loan_conditions", "offered_costs", "status", "note"}, _conditional),
    (OfferRetry, {"reason_retry", "retry_after", "retry_before", "loan_conditions", "offered_costs", "note"},
     _retry),
    (MarkUnfilled, {"reason_unfilled", "note"},
     lambda b: {"reason_unfilled": _line(b, "reason_unfilled"), **_note(b)}),
    (Ship, {"due_date", "item_ids", "delivery_costs", "sent_via", "note"}, _ship),
    (CompleteCopy, {"url", "item_ids", "delivery_costs", "sent_via", "note"}, _copy),
    (AnswerCancel, {"answer", "note"}, lambda b: {"answer": _answer(b), **_note(b)}),
    (AnswerRenew, {"answer", "due_date", "note"},
     lambda b: {"answer": _answer(b), "due_date": _when(b, "due_date"), **_note(b)}),
    (MarkOverdue, {"note"}, _note),
    (Recall, {"due_date", "note"}, lambda b: {"due_date": _when(b, "due_date"), **_note(b)}),
    (CheckIn, {"note"}, _note),
    (CompleteWithoutReturn, {"note"}, _note),
    (ClearFlag, {"flag"}, _acknowledge),
    (MarkMessagesRead, set(), lambda b: {}),
)


async def action(request: web.Request) -> web.Response:
    lending_id = path_id(request)
    event_type, fields = await named_action(request, ACTIONS)
    await _apply(request, lending_id, event_type, **fields)
    return await respond(request, lending_id)


__all__ = ["ACTIONS", "check_agency"]
