"""Borrowing state <-> database rows.

The core's whole state lives as JSON in `borrowing_requests.extra["state"]`; the other
columns and the `rota_entries` rows are copies kept for listing, filtering and display.

The inbound-message path loads requests as `Loaded` (id, version, decoded state) for a whole
group of messages at once, and keeps what it committed in a `StateCache`, so a request that
is busy does not have its JSON parsed and decoded again for every message.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Text, any_, bindparam, cast, delete, select, type_coerce
from sqlalchemy.dialects.postgresql import ARRAY

from ..core import BorrowingPolicy, BorrowingState, RequestDetails
from ..core import next_deadline
from ..store import queries
from ..store.models import borrowing_requests_t, rota_entries_t
from ..store.arrays import GroupWrite
from ..store.prepared import Prepared
from .snapshot import from_json, to_json

DETAIL_COLUMNS = tuple(f.name for f in fields(RequestDetails) if f.name != "other_identifiers")
_SELECT_BY_ID = select(borrowing_requests_t).where(borrowing_requests_t.c.id == bindparam("id"))


def load_row(conn: Connection, request_id: int) -> dict[str, Any] | None:
    row = conn.execute(_SELECT_BY_ID, {"id": request_id}).first()
    return None if row is None else dict(row._mapping)


def state_of(row: dict[str, Any]) -> BorrowingState:
    return from_json(BorrowingState, row["extra"]["state"])


def request_columns(state: BorrowingState, extra: dict[str, Any]) -> dict[str, Any]:
    return {**detail_columns(state.details), **status_columns(state, {**extra, "state": to_json(state)})}


def detail_columns(d: RequestDetails) -> dict[str, Any]:
    columns = {name: getattr(d, name) for name in DETAIL_COLUMNS}
    columns.update(
        other_identifiers=[{"type": t, "value": v} for t, v in d.other_identifiers] or None,
        service_type=d.service_type.value,
    )
    return columns


def status_columns(state: BorrowingState, extra: dict[str, Any]) -> dict[str, Any]:
    """The columns a step changes unless it edits the details; `extra` is the whole JSON."""
    current = state.current
    return {
        "status": state.status.value,
        "previous_status": state.previous_status.value if state.previous_status else None,
        "needs_attention": state.needs_attention,
        "attention_reason": ", ".join(sorted(flag.value for flag in state.flags)) or None,
        "active_partner": current.partner if current else None,
        "due_date": state.due_date,
        "extra": extra,
    }


def rota_rows(state: BorrowingState, policy: BorrowingPolicy) -> list[dict[str, Any]]:
    deadline = next_deadline(state, policy)
    current = state.current
    return [
        {
            "position": i + 1,
            "agency": entry.partner,
            "state": entry.state.value,
            "last_status": entry.last_status.value if entry.last_status else None,
            "last_reason": entry.reason,
            "last_answer": entry.answer.value if entry.answer else None,
            "sent_at": entry.sent_at,
            "deadline_at": deadline if entry is current else None,
            "status_request_sent_at": entry.status_requested_at,
        }
        for i, entry in enumerate(state.rota)
    ]


def replace_rota(conn: Connection, request_id: int, state: BorrowingState, policy: BorrowingPolicy) -> None:
    conn.execute(delete(rota_entries_t).where(rota_entries_t.c.request_id == request_id))
    rows = rota_rows(state, policy)
    if rows:
        queries.insert_rota_entries(conn, request_id, rows)


def deadline_moved(before: BorrowingState | None, after: BorrowingState, policy: BorrowingPolicy) -> bool:
    """The timer's deadline (kept on the current rota entry) changed although the rota may not
    have, e.g. a Cancel sent or answered: the rota rows must be written again."""
    return before is None or next_deadline(before, policy) != next_deadline(after, policy)


def refresh_deadline(conn: Connection, request_id: int, state: BorrowingState, policy: BorrowingPolicy) -> None:
    """Set the stored deadline of the request's rota entries to what the state says, where it
    differs (a request the timer visits for nothing)."""
    deadline, current = next_deadline(state, policy), state.current
    t = rota_entries_t
    for agency, stored in conn.execute(select(t.c.agency, t.c.deadline_at).where(t.c.request_id == request_id)):
        wanted = deadline if current is not None and agency == current.partner else None
        if stored != wanted:
            conn.execute(t.update().where(t.c.request_id == request_id, t.c.agency == agency)
                         .values(deadline_at=wanted))


def due_request_ids(conn: Connection, now: datetime) -> list[int]:
    t = rota_entries_t
    return queries.due_ids(conn, t.c.request_id, t.c.deadline_at, now, t.c.state == "active")


def _same_partners(before: BorrowingState, after: BorrowingState) -> bool:
    return [e.partner for e in before.rota] == [e.partner for e in after.rota]


def replaces_rota(changes: Mapping[int, tuple[BorrowingState, BorrowingState]]) -> bool:
    """Whether some request's partners changed (or their order): its entries are replaced."""
    return not all(_same_partners(before, after) for before, after in changes.values())


def write_rotas(conn: Connection, changes: Mapping[int, tuple[BorrowingState, BorrowingState]],
                policy: BorrowingPolicy, *, into: GroupWrite | None = None) -> None:
    """Bring the `rota_entries` of several requests from their state before to their state after.
    While the partners stay the same and in the same order, only the entries that changed are
    updated (one statement for all; with `into`, a part of that group statement); any other
    change of the rota replaces that request's entries (not with `into`: see `replaces_rota`)."""
    in_place: list[dict[str, Any]] = []
    replaced: dict[int, BorrowingState] = {}
    for request_id, (before, after) in changes.items():
        if _same_partners(before, after):
            in_place.extend({"request_id": request_id, **{k: new[k] for k in ("agency", *_ROTA_COLUMNS)}}
                            for old, new in zip(rota_rows(before, policy), rota_rows(after, policy)) if new != old)
        else:
            replaced[request_id] = after
    if into is not None:
        if replaced:
            raise ValueError("a replaced rota cannot be part of a group statement")
        into.update_where(rota_entries_t, ("request_id", "agency"), in_place)
        return
    _UPDATE_ROTA_ENTRY.executemany(conn, [{"_request_id": row["request_id"], "_agency": row["agency"],
                                           **{"r_" + k: row[k] for k in _ROTA_COLUMNS}} for row in in_place])
    if replaced:
        conn.execute(delete(rota_entries_t).where(rota_entries_t.c.request_id.in_(list(replaced))))
        rows = [{**row, "request_id": request_id}
                for request_id, state in replaced.items() for row in rota_rows(state, policy)]
        if rows:
            queries.insert_rows(conn, rota_entries_t, rows)


_ROTA_COLUMNS = ("position", "state", "last_status", "last_reason", "last_answer", "sent_at", "deadline_at",
                 "status_request_sent_at")
_UPDATE_ROTA_ENTRY = Prepared(
    rota_entries_t.update()
    .where(rota_entries_t.c.request_id == bindparam("_request_id"), rota_entries_t.c.agency == bindparam("_agency"))
    .values({name: bindparam("r_" + name) for name in _ROTA_COLUMNS})
)


# --- requests as the inbound-message path works on them --------------------------------------------


@dataclass(frozen=True, slots=True)
class Loaded:
    """A borrowing request at one version: its decoded state, that state's JSON (kept so that
    unchanged parts need not be encoded again) and the rest of `extra`."""

    id: int
    external_id: str
    version: int
    state: BorrowingState
    state_json: dict[str, Any]
    extra: dict[str, Any]  # `extra` without "state"; treat as read-only


class StateCache:
    """The last committed `Loaded` of recently used requests, by id (least recently used out).

    An entry is used only when its version is the one the database holds, so a change made by
    anyone else (another process, a staff step) simply misses. Entries are put only after the
    transaction that wrote them has committed.
    """

    def __init__(self, capacity: int = 2048):  # an entry takes about 9 KB
        self.capacity = capacity
        self._entries: OrderedDict[int, Loaded] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, request_id: int, version: int) -> Loaded | None:
        entry = self._entries.get(request_id)
        if entry is None or entry.version != version:
            self.misses += 1
            return None
        self._entries.move_to_end(request_id)
        self.hits += 1
        return entry

    def put(self, entries: Iterable[Loaded]) -> None:
        for entry in entries:
            self._entries[entry.id] = entry
            self._entries.move_to_end(entry.id)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)


_t = borrowing_requests_t
# `extra` as its stored text: parsed only when the cache does not have that version already.
# Read, not locked (PostgreSQL): the version-checked update at the end is what guards them.
_SELECT_FOR_STEPS = Prepared(
    select(_t.c.id, _t.c.external_id, _t.c.version, cast(_t.c.extra, Text))
    .where(_t.c.external_id == any_(bindparam("refs", type_=ARRAY(_t.c.external_id.type))))
    .order_by(_t.c.id), postgresql_only=True)
# SQLite: a point lookup per id on the driver's cursor (no round trips to save there).
_SELECT_ONE_FOR_STEPS = Prepared(
    select(_t.c.id, _t.c.external_id, _t.c.version, type_coerce(_t.c.extra, Text).label("extra"))
    .where(_t.c.external_id == bindparam("ref"))
)


def _for_update(conn: Connection, refs: list[str]) -> Iterable[tuple[Any, ...]]:
    if conn.dialect.name == "sqlite":
        return sorted((row for ref in refs for row in _SELECT_ONE_FOR_STEPS.fetch(conn, {"ref": ref})))
    return _SELECT_FOR_STEPS.fetch(conn, {"refs": refs})


def load_for_steps(conn: Connection, external_ids: Iterable[str], cache: StateCache) -> dict[str, Loaded]:
    """The requests with these external ids (missing ones left out). Not locked: on PostgreSQL
    another transaction may move one on before this one writes, and the version-checked update
    then raises `Conflict` (SQLite's write transaction holds the whole database anyway)."""
    refs = sorted(set(external_ids))
    if not refs:
        return {}
    found: dict[str, Loaded] = {}
    for request_id, external_id, version, extra_text in _for_update(conn, refs):
        loaded = cache.get(request_id, version)
        if loaded is None:
            extra = json.loads(extra_text) if isinstance(extra_text, str) else dict(extra_text or {})
            state_json = extra.pop("state")
            loaded = Loaded(request_id, external_id, version, from_json(BorrowingState, state_json), state_json, extra)
        found[external_id] = loaded
    return found


def encode_state(state: BorrowingState, base: Loaded) -> dict[str, Any]:
    """`to_json(state)`, reusing the JSON of `base` for each part that is the very same object
    (the state is immutable all the way down, so the same object has the same JSON)."""
    before = base.state
    return {name: base.state_json[name] if getattr(state, name) is getattr(before, name) and name in base.state_json
            else to_json(getattr(state, name)) for name in STATE_FIELDS}


STATE_FIELDS = tuple(f.name for f in fields(BorrowingState))
