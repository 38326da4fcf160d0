"""Read side of the staff API: the listing (filters, facets, paging, sort) and the all-tabs read.

Plain synchronous functions of a SQLAlchemy `Connection` (the handlers run them with
`AsyncConnection.run_sync`, so one request is one hop to the database thread; the benchmark
calls them directly). Nothing here writes.

Facets are counted under the same filters as the listing (all of them); the status facet's
counts add up to the total. See `list_requests` for how (the benchmark in
bench/bench_api_listing.py holds it under 100 ms on 100,000 requests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import (Connection, Text, case, exists, false, func, literal, literal_column, null, or_, select, true,
                        union_all)
from sqlalchemy.sql import ColumnElement

from ..core import BorrowingStatus, allowed_actions
from ..service.borrowing_rows import state_of
from ..store.models import (
    attachments_t, borrowing_requests_t as br, general_messages_t, history_t, notes_t, parameters_t,
    received_items_t, rota_entries_t,
)
from .fields import details_json
from .operations import allowed_json

SORTS = {
    "created_at": br.c.created_at,
    "updated_at": br.c.updated_at,
    "needed_by": br.c.needed_by,
    "status": br.c.status,
    "title": br.c.title,
    "due_date": br.c.due_date,
}
# Facets counted from the request row's own listing columns, grouped together (their counts add
# up to the total); `has_costs` is `maximum_fee IS NOT NULL`, folded from the fee in Python.
ROW_FACETS = ("status", "active_partner", "format", "needs_attention", "requested_media", "pickup_location",
              "level_of_service", "has_costs")
# Facets counted from other tables: requests with an unread incoming message, with a staff note.
LINKED_FACETS = ("unread_messages", "has_notes")
FACETS = (*ROW_FACETS, *LINKED_FACETS, "requester")
BOOLEAN_FACETS = ("needs_attention", "has_costs", "unread_messages", "has_notes")
TEXT_COLUMNS = (br.c.title, br.c.author, br.c.isbn, br.c.issn, br.c.oclc_number, br.c.external_id)
# PostgreSQL searches `q` words in the text columns joined with spaces: one ILIKE a word instead
# of six, and the expression migration 0004's trigram index is built on (keep the two the same,
# constants as literals, or the planner will not use the index). A word has no spaces, so it
# matches the joined text exactly when it matches one of the columns.
SEARCH_TEXT = literal_column(
    "(coalesce(title, '') || ' ' || coalesce(author, '') || ' ' || coalesce(isbn, '') || ' ' || "
    "coalesce(issn, '') || ' ' || coalesce(oclc_number, '') || ' ' || coalesce(external_id, ''))", Text)


@dataclass
class Filters:
    status: list[str] = field(default_factory=list)
    partner: list[str] = field(default_factory=list)  # in the rota, in any state
    active_partner: list[str] = field(default_factory=list)
    requester: list[str] = field(default_factory=list)
    format: list[str] = field(default_factory=list)
    requested_media: list[str] = field(default_factory=list)
    pickup_location: list[str] = field(default_factory=list)
    level_of_service: list[str] = field(default_factory=list)
    needs_attention: bool | None = None
    unread_messages: bool | None = None  # has an incoming general message nobody marked read
    has_costs: bool | None = None  # a maximum fee is set
    has_notes: bool | None = None  # has a staff note
    created_from: datetime | None = None
    created_to: datetime | None = None  # exclusive
    updated_from: datetime | None = None
    updated_to: datetime | None = None
    needed_by_from: date | None = None
    needed_by_to: date | None = None  # inclusive (a calendar date)
    q: list[str] = field(default_factory=list)  # words; each must match one text column

    def is_empty(self) -> bool:
        return not any((self.status, self.partner, self.active_partner, self.requester, self.format,
                        self.requested_media, self.pickup_location, self.level_of_service, self.q)) and all(
            v is None for v in (self.needs_attention, self.unread_messages, self.has_costs, self.has_notes,
                                self.created_from, self.created_to, self.updated_from, self.updated_to,
                                self.needed_by_from, self.needed_by_to))

    def clauses(self, dialect: str = "sqlite") -> list[ColumnElement[bool]]:
        c = br.c
        where: list[ColumnElement[bool]] = []
        if self.status:
            where.append(c.status.in_(self.status))
        if self.active_partner:
            where.append(c.active_partner.in_(self.active_partner))
        if self.requester:
            where.append(c.requester.in_(self.requester))
        if self.format:
            where.append(c.format.in_(self.format))
        for column, values in ((c.requested_media, self.requested_media), (c.pickup_location, self.pickup_location),
                               (c.level_of_service, self.level_of_service)):
            if values:
                where.append(column.in_(values))
        if self.needs_attention is not None:
            where.append(c.needs_attention == (true() if self.needs_attention else false()))
        if self.has_costs is not None:
            where.append(c.maximum_fee.is_not(None) if self.has_costs else c.maximum_fee.is_(None))
        for wanted, ids in ((self.unread_messages, unread_request_ids()), (self.has_notes, noted_request_ids())):
            if wanted is not None:
                where.append((c.id + 0).in_(ids) if wanted else (c.id + 0).not_in(ids))
        if self.partner:
            # `id + 0`: test membership while scanning (an index), instead of fetching each
            # listed id's wide row by primary key; the same result, far fewer page reads.
            where.append((c.id + 0).in_(
                select(rota_entries_t.c.request_id).where(rota_entries_t.c.agency.in_(self.partner))))
        for column, low, high in ((c.created_at, self.created_from, self.created_to),
                                  (c.updated_at, self.updated_from, self.updated_to)):
            if low is not None:
                where.append(column >= low)
            if high is not None:
                where.append(column < high)
        if self.needed_by_from is not None:
            where.append(c.needed_by >= self.needed_by_from)
        if self.needed_by_to is not None:
            where.append(c.needed_by <= self.needed_by_to)
        for word in self.q:
            # ESCAPE only when the word needs it (SQLite's LIKE is much faster without one).
            escape = "\\" if any(ch in word for ch in "%_\\") else None
            pattern = f"%{_escape(word) if escape else word}%"
            if dialect == "sqlite":  # LIKE is already case-insensitive there (ASCII, as lower() is)
                where.append(or_(*(col.like(pattern, escape=escape) for col in TEXT_COLUMNS)))
            else:
                where.append(SEARCH_TEXT.ilike(pattern, escape=escape))
        return where


def unread_request_ids() -> Any:
    """Requests with an incoming general message nobody marked read (a small partial index,
    migration 0011: only unread rows are in it)."""
    m = general_messages_t
    # 'in' as a literal: SQLite uses a partial index only when the query repeats its terms.
    return select(m.c.request_id).where(m.c.request_id.is_not(None), m.c.direction == literal_column("'in'"),
                                        m.c.read_at.is_(None))


def noted_request_ids() -> Any:
    return select(notes_t.c.request_id).where(notes_t.c.request_id.is_not(None))


def _escape(word: str) -> str:
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass
class Page:
    limit: int = 25
    offset: int = 0
    sort: str = "-created_at"
    facets: bool = True
    facet_limit: int = 10


def unread_messages(owner: Any) -> Any:
    """How many incoming general messages of the row's request nobody has marked read (a
    correlated count for a page of rows; `owner` is the messages' column naming the request)."""
    m = general_messages_t
    return (select(func.count()).select_from(m).where(owner, m.c.direction == "in", m.c.read_at.is_(None))
            .scalar_subquery().label("unread_messages"))


SUMMARY_COLUMNS = (
    br.c.id, br.c.external_id, br.c.status, br.c.title, br.c.author, br.c.requester, br.c.requester_name,
    br.c.active_partner, br.c.needs_attention, br.c.attention_reason, br.c.format, br.c.needed_by,
    br.c.pickup_location, br.c.due_date, br.c.created_at, br.c.updated_at,
    unread_messages(general_messages_t.c.request_id == br.c.id),
)


def summary_json(row: dict[str, Any]) -> dict[str, Any]:
    status = row["status"]
    return {
        "id": row["id"],
        "external_id": row["external_id"],
        "status": status,
        "status_label": _label(status),
        "title": row["title"],
        "author": row["author"],
        "requester": row["requester"],
        "requester_name": row["requester_name"],
        "pickup_location": row["pickup_location"],
        "format": row["format"],
        "active_partner": row["active_partner"],
        "needs_attention": bool(row["needs_attention"]),
        "attention_reason": row["attention_reason"],
        "unread_messages": row["unread_messages"],
        "needed_by": _iso(row["needed_by"]),
        "due_date": _iso(row["due_date"]),
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
    }


def _label(status: str | None) -> str | None:
    if status is None:
        return None
    try:
        return BorrowingStatus(status).label
    except ValueError:
        return status


def _iso(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


NULLS_LAST = ("needed_by", "title", "due_date")


def _order(column: Any, descending: bool, id_column: Any, nulls_last: bool | None = None) -> list[Any]:
    """`nulls_last`: by default when the column is one of NULLS_LAST (say so for a CTE's column)."""
    order = [column.desc() if descending else column.asc(), id_column.desc() if descending else id_column.asc()]
    if column.key in NULLS_LAST if nulls_last is None else nulls_last:  # NULLs last either way
        order.insert(0, case((column.is_(None), 1), else_=0))
    return order


def list_requests(conn: Connection, filters: Filters, page: Page) -> dict[str, Any]:
    """One page of summaries, the total and the facets.

    Without filters, each part comes straight from an index: the page from the sort key's
    index, the facets from the listing index (in order, no sort) and the requester index. With
    filters, the matching rows' few listing columns are gathered once (a MATERIALIZED CTE, read
    from the covering listing index on SQLite) and the page and all facets are computed from
    that, in one statement."""
    descending = page.sort.startswith("-")
    sort_column = SORTS[page.sort.lstrip("-")]
    if filters.is_empty():
        found = _unfiltered_page(conn, page, sort_column, descending)
        if page.facets:
            facets, total = _unfiltered_facets(conn, page.facet_limit)
        else:
            facets, total = None, conn.execute(select(func.count()).select_from(br)).scalar_one()
    else:
        found, facets, total = _filtered(conn, filters, page, sort_column, descending)
    rows = {r.id: dict(r._mapping) for r in conn.execute(select(*SUMMARY_COLUMNS).where(br.c.id.in_(found)))} \
        if found else {}
    out: dict[str, Any] = {"items": [summary_json(rows[i]) for i in found if i in rows], "total": total,
                           "limit": page.limit, "offset": page.offset, "sort": page.sort}
    if facets is not None:
        out["facets"] = facets
    return out


def _unfiltered_page(conn: Connection, page: Page, sort_column: Any, descending: bool) -> list[int]:
    """The page's ids in sort order. For the dates (NULLs last), the rows with a date come
    straight from the date's index and then those without, by id: the same order as `_order`
    without sorting the whole table for it."""
    if sort_column.key not in ("needed_by", "due_date"):
        return list(conn.execute(select(br.c.id).order_by(*_order(sort_column, descending, br.c.id))
                                 .limit(page.limit).offset(page.offset)).scalars())
    by_id = br.c.id.desc() if descending else br.c.id.asc()
    found = list(conn.execute(
        select(br.c.id).where(sort_column.is_not(None))
        .order_by(sort_column.desc() if descending else sort_column.asc(), by_id)
        .limit(page.limit).offset(page.offset)).scalars())
    if len(found) < page.limit:
        dated = conn.execute(select(func.count()).select_from(br).where(sort_column.is_not(None))).scalar_one()
        found += conn.execute(select(br.c.id).where(sort_column.is_(None)).order_by(by_id)
                              .limit(page.limit - len(found)).offset(max(0, page.offset - dated))).scalars()
    return found


def _filtered(conn: Connection, filters: Filters, page: Page, sort_column: Any,
              descending: bool) -> tuple[list[int], dict[str, Any] | None, int]:
    c = br.c
    where = filters.clauses(conn.dialect.name)
    matches = (
        select(c.id, sort_column.label("k"), *_row_facet_columns(c, c.maximum_fee.is_not(None).label("has_costs")),
               c.requester)
        .where(*where).cte("matches")
        .prefix_with("MATERIALIZED", dialect="sqlite").prefix_with("MATERIALIZED", dialect="postgresql")
    )
    m = matches.c
    columns = _row_facet_columns(m, m.has_costs)
    blanks = [null().label(f"f{i}") for i in range(len(columns))]

    def counts(part: int, *where: Any) -> Any:
        return select(literal(part), null(), *blanks, null(), func.count()).select_from(matches).where(*where)

    window = (select(m.id).order_by(*_order(m.k, descending, m.id, sort_column.key in NULLS_LAST))
              .limit(page.limit).offset(page.offset).subquery("window"))
    page_rows = select(literal(1).label("part"), window.c.id, *blanks, null().label("requester"),
                       literal(0).label("n"))
    if page.facets:
        # part 0: the row facets grouped together (summed per facet below; their counts add up to
        # the total); part 2: the top requesters; parts 3 and 4: the linked facets' "yes" counts.
        groups = select(literal(0), null(), *columns, null(), func.count()).group_by(*columns)
        top = (select(m.requester, func.count().label("n")).group_by(m.requester)
               .order_by(func.count().desc(), m.requester).limit(page.facet_limit).subquery("top"))
        parts = [page_rows, groups, select(literal(2), null(), *blanks, top.c.requester, top.c.n),
                 counts(3, m.id.in_(unread_request_ids())), counts(4, m.id.in_(noted_request_ids()))]
    else:
        parts = [page_rows, counts(0)]
    found: list[int] = []
    sums: dict[str, dict[Any, int]] = {name: {} for name in FACETS}
    linked: dict[str, int] = {}
    total = 0
    for part, rid, *values, requester, n in conn.execute(union_all(*parts)):
        if part == 1:
            found.append(rid)
        elif part == 2:
            sums["requester"][requester] = n
        elif part in (3, 4):
            linked[LINKED_FACETS[part - 3]] = n
        else:
            total += n
            _add(sums, values, n)
    if not page.facets:
        return found, None, total
    _add_linked(sums, linked, total)
    return found, _facets_json(sums, page.facet_limit), total


def _row_facet_columns(cols: Any, has_costs: Any) -> list[Any]:
    """The columns of ROW_FACETS, in the order of the listing indexes (the groups come in index order)."""
    return [cols.status, cols.active_partner, cols.format, cols.needs_attention, cols.requested_media,
            cols.pickup_location, cols.level_of_service, has_costs]


def _add(sums: dict[str, dict[Any, int]], values: list[Any], n: int) -> None:
    for name, value in zip(ROW_FACETS, values):
        if name in BOOLEAN_FACETS:
            value = bool(value)
        sums[name][value] = sums[name].get(value, 0) + n


def _add_linked(sums: dict[str, dict[Any, int]], linked: dict[str, int], total: int) -> None:
    for name in LINKED_FACETS:
        yes = linked.get(name, 0)
        sums[name] = {value: n for value, n in ((True, yes), (False, total - yes)) if n}


def _facets_json(sums: dict[str, dict[Any, int]], top: int) -> dict[str, list[dict[str, Any]]]:
    facets: dict[str, list[dict[str, Any]]] = {}
    for name in FACETS:
        entries = sorted(sums[name].items(), key=lambda kv: (-kv[1], kv[0] is None, str(kv[0])))
        if name == "requester":
            entries = entries[:top]
        facets[name] = [{"value": v, "count": n, **({"label": _label(v)} if name == "status" else {})}
                        for v, n in entries]
    return facets


def _unfiltered_facets(conn: Connection, top: int) -> tuple[dict[str, list[dict[str, Any]]], int]:
    """The facets and the total. The row facets group by the raw maximum fee (not `IS NOT NULL`),
    so that the groups come straight from the listing index in its order, with no sort."""
    c = br.c
    columns = _row_facet_columns(c, c.maximum_fee)
    sums: dict[str, dict[Any, int]] = {name: {} for name in FACETS}
    total = 0
    for *values, n in conn.execute(select(*columns, func.count()).group_by(*columns)):
        values[-1] = values[-1] is not None
        _add(sums, values, n)
        total += n
    requesters = (select(c.requester, func.count()).group_by(c.requester)
                  .order_by(func.count().desc(), c.requester).limit(top))
    sums["requester"] = {r: n for r, n in conn.execute(requesters)}
    linked = {name: conn.execute(select(func.count()).select_from(ids.distinct().subquery())).scalar_one()
              for name, ids in (("unread_messages", unread_request_ids()), ("has_notes", noted_request_ids()))}
    _add_linked(sums, linked, total)
    return _facets_json(sums, top), total


# --- one request, all tabs ----------------------------------------------------------------------


def history_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "at": _iso(row["at"]),
        "actor": row["actor"],
        "event": row["event"],
        "from_status": row["from_status"],
        "to_status": row["to_status"],
        "detail": row["detail"],
        "raw_message_id": row["raw_message_id"],
    }


def message_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "at": _iso(row["at"]), "direction": row["direction"],
            "partner": row["partner_agency"], "actor": row["actor"], "text": row["text"],
            "raw_message_id": row["raw_message_id"], "markers": row["markers"], "read_at": _iso(row["read_at"])}


def note_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "created_at": _iso(row["created_at"]), "actor": row["actor"], "text": row["text"]}


def received_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "barcode": row["barcode"], "description": row["description"],
            "received_at": _iso(row["received_at"]), "due_date": _iso(row["due_date"]),
            "actor": row["actor"], "note": row["note"]}


ATTACHMENT_COLUMNS = (attachments_t.c.id, attachments_t.c.filename, attachments_t.c.media_type,
                      attachments_t.c.size, attachments_t.c.created_at, attachments_t.c.actor)


def attachment_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "filename": row["filename"], "media_type": row["media_type"], "size": row["size"],
            "created_at": _iso(row["created_at"]), "actor": row["actor"]}


def _rows(conn: Connection, stmt: Any) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(stmt)]


def load_request_row(conn: Connection, request_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(br).where(br.c.id == request_id)).first()
    return None if row is None else dict(row._mapping)


def rota_json(row: dict[str, Any], rota_rows: list[dict[str, Any]], partner_names: dict[str, str]) -> list[dict]:
    state = state_of(row)
    by_agency = {r["agency"]: r for r in rota_rows}
    out = []
    for position, entry in enumerate(state.rota, start=1):
        stored = by_agency.get(entry.partner, {})
        out.append({
            "agency": entry.partner,
            "name": partner_names.get(entry.partner),
            "position": position,
            "state": entry.state.value,
            "last_status": entry.last_status.value if entry.last_status else None,
            "reason": entry.reason,
            "answer": entry.answer.value if entry.answer else None,
            "sent_at": _iso(entry.sent_at),
            "confirmed_at": _iso(entry.confirmed_at),
            "answered_at": _iso(entry.answered_at),
            "status_requested_at": _iso(entry.status_requested_at),
            "deadline_at": _iso(stored.get("deadline_at")),
            "undelivered": entry.undelivered,
            "loan_conditions": list(entry.loan_conditions),
            "offered_costs": [{"amount": str(a), "currency": c} for a, c in entry.offered_costs],
            "retry_after": _iso(entry.retry_after),
            "retry_before": _iso(entry.retry_before),
            "supplying_agency_request_id": ((row.get("extra") or {}).get("supplier_request_ids") or {}).get(
                entry.partner),
        })
    return out


def request_json(conn: Connection, request_id: int, partner_names: dict[str, str]) -> dict[str, Any] | None:
    """The request with every tab (general information, history, rota, parameters, messages,
    notes, received items, attachments), or None."""
    row = load_request_row(conn, request_id)
    if row is None:
        return None
    state = state_of(row)
    rota_rows = _rows(conn, select(rota_entries_t).where(rota_entries_t.c.request_id == request_id))
    history = _rows(conn, select(history_t).where(history_t.c.request_id == request_id).order_by(history_t.c.id))
    params = _rows(conn, select(parameters_t.c.key, parameters_t.c.value)
                   .where(parameters_t.c.request_id == request_id).order_by(parameters_t.c.key))
    messages = _rows(conn, select(general_messages_t).where(general_messages_t.c.request_id == request_id)
                     .order_by(general_messages_t.c.id))
    notes = _rows(conn, select(notes_t).where(notes_t.c.request_id == request_id).order_by(notes_t.c.id))
    received = _rows(conn, select(received_items_t).where(received_items_t.c.request_id == request_id)
                     .order_by(received_items_t.c.id))
    attachments = _rows(conn, select(*ATTACHMENT_COLUMNS).where(attachments_t.c.request_id == request_id)
                        .order_by(attachments_t.c.id))
    core_actions = allowed_actions(state)
    return {
        "id": row["id"],
        "external_id": row["external_id"],
        "status": state.status.value,
        "status_label": state.status.label,
        "previous_status": state.previous_status.value if state.previous_status else None,
        "needs_attention": state.needs_attention,
        "attention": sorted(flag.value for flag in state.flags),
        "unread_messages": count_unread(messages),
        "active_partner": row["active_partner"],
        "service_type": state.details.service_type.value,
        "due_date": _iso(state.due_date),
        "item_location": state.location.value,
        "cancel": None if state.cancel is None else {
            "by": state.cancel.by, "by_patron": state.cancel.by_patron, "reason": state.cancel.reason,
            "note": state.cancel.note, "notify_patron": state.cancel.notify_patron},
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "version": row["version"],
        **details_json(state.details),
        "allowed_actions": allowed_json(core_actions, row["id"]),
        "rota": rota_json(row, rota_rows, partner_names),
        "history": [history_json(h) for h in history],
        "parameters": {p["key"]: p["value"] for p in params},
        "general_messages": [message_json(m) for m in messages],
        "notes": [note_json(n) for n in notes],
        "received_items": [received_json(r) for r in received],
        "attachments": [attachment_json(a) for a in attachments],
    }


def count_unread(messages: list[dict[str, Any]]) -> int:
    return sum(1 for m in messages if m["direction"] == "in" and m["read_at"] is None)


def exists_request(conn: Connection, request_id: int) -> bool:
    return conn.execute(select(exists().where(br.c.id == request_id))).scalar_one()


def tab(conn: Connection, request_id: int, name: str) -> Any:
    """One tab of a request (None if there is no such request)."""
    if not exists_request(conn, request_id):
        return None
    if name == "history":
        return [history_json(h) for h in _rows(conn, select(history_t).where(
            history_t.c.request_id == request_id).order_by(history_t.c.id))]
    if name == "messages":
        return [message_json(m) for m in _rows(conn, select(general_messages_t).where(
            general_messages_t.c.request_id == request_id).order_by(general_messages_t.c.id))]
    if name == "notes":
        return [note_json(n) for n in _rows(conn, select(notes_t).where(
            notes_t.c.request_id == request_id).order_by(notes_t.c.id))]
    if name == "received_items":
        return [received_json(r) for r in _rows(conn, select(received_items_t).where(
            received_items_t.c.request_id == request_id).order_by(received_items_t.c.id))]
    if name == "attachments":
        return [attachment_json(a) for a in _rows(conn, select(*ATTACHMENT_COLUMNS).where(
            attachments_t.c.request_id == request_id).order_by(attachments_t.c.id))]
    if name == "parameters":
        return {p["key"]: p["value"] for p in _rows(conn, select(parameters_t.c.key, parameters_t.c.value).where(
            parameters_t.c.request_id == request_id).order_by(parameters_t.c.key))}
    raise KeyError(name)


def attachment(conn: Connection, request_id: int, attachment_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(attachments_t).where(
        attachments_t.c.id == attachment_id, attachments_t.c.request_id == request_id)).first()
    return None if row is None else dict(row._mapping)


# --- events (history in id order) --------------------------------------------------------------


def events(conn: Connection, since: int, limit: int) -> list[dict[str, Any]]:
    stmt = select(history_t).where(history_t.c.id > since).order_by(history_t.c.id).limit(limit)
    return [{**history_json(r), "request_id": r["request_id"], "lending_id": r["lending_id"]}
            for r in _rows(conn, stmt)]

