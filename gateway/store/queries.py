"""Core-statement helpers for the hot path (docs/architecture.md, group commit): few round trips, no ORM unit of work.

Every helper is a plain synchronous function taking a SQLAlchemy `Connection` already inside a
transaction; none commits. That keeps one code path for both strategies the store uses:

- SQLite: a single writer thread with a sync engine (`db.make_sync_engine`) runs many steps in one
  transaction, each step in a savepoint (`with conn.begin_nested(): ...`), then commits once.
- PostgreSQL (or any async caller): `await aconn.run_sync(step, ...)` on an `AsyncConnection`,
  where `step(conn, ...)` calls these helpers.

Rows come back as plain dicts (column name -> value), the shape the pure core works on.
Time is passed in (`now=`); nothing here reads the clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from . import arrays
from .prepared import Prepared
from .models import borrowing_requests_t as _req
from .models import general_messages_t as _msg
from .models import history_t as _hist
from .models import lending_requests_t as _lend
from .models import outbox_t as _out
from .models import raw_messages_t as _raw
from .models import rota_entries_t as _rota

__all__ = [
    "IntegrityError",
    "MessageKey",
    "body_sha256",
    "claim_outbox",
    "fetch_due_outbox",
    "find_lending",
    "find_raw_message",
    "find_request_id",
    "insert_history",
    "insert_lending",
    "insert_outbox",
    "insert_raw_message",
    "insert_raw_message_if_new",
    "insert_raw_messages",
    "insert_request",
    "insert_rota_entries",
    "insert_rows",
    "load_lending",
    "load_request",
    "load_request_by_external_id",
    "mark_outbox_delivered",
    "mark_outbox_retry",
    "release_outbox_leases",
    "set_raw_confirmation",
    "update_lending",
    "RequestUpdate",
    "update_request",
    "update_requests",
    "update_rota_entry",
]

Row = dict[str, Any]

# Columns a caller may not set through the update helpers: the helpers own them.
_MANAGED = frozenset({"id", "version", "created_at", "updated_at"})

# Statements that never change shape are built once.
_SELECT_REQUEST = select(_req).where(_req.c.id == bindparam("id"))
_SELECT_ROTA = (
    select(_rota).where(_rota.c.request_id == bindparam("id")).order_by(_rota.c.position, _rota.c.id)
)
_SELECT_REQUEST_ID = select(_req.c.id).where(_req.c.external_id == bindparam("external_id"))
_SELECT_REQUEST_BY_EXTERNAL_ID = select(_req).where(_req.c.external_id == bindparam("external_id"))
_SELECT_LENDING = select(_lend).where(_lend.c.id == bindparam("id"))
_SELECT_LENDING_BY_KEY = select(_lend).where(
    _lend.c.requesting_agency == bindparam("agency"),
    _lend.c.requesting_agency_request_id == bindparam("request_id"),
)


def _dict(row: Any) -> Row:
    return dict(row._mapping)


@cache
def _insert_of(table: Any) -> Any:
    # Parameters go with execute(), not .values(): the statement (and its compiled form) is
    # built once, instead of constructing a bind parameter per column per call.
    return insert(table)


@cache
def _prepared_insert(table: Any, columns: tuple[str, ...]) -> Prepared:
    return Prepared(insert(table), columns)


def insert_rows(conn: Connection, table: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows: one executemany per distinct set of keys (usually one), so that column
    defaults apply to the keys a row leaves out."""
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    for columns, group in groups.items():
        _prepared_insert(table, columns).executemany(conn, group)



def _check_values(values: Mapping[str, Any]) -> None:
    managed = _MANAGED.intersection(values)
    if managed:
        raise ValueError(f"these columns are managed by the store and can't be set: {sorted(managed)}")


# --- borrowing requests ----------------------------------------------------------------------------


def insert_request(
    conn: Connection,
    values: Mapping[str, Any],
    rota: Sequence[str | Mapping[str, Any]] = (),
    *,
    now: datetime,
) -> int:
    """Insert a borrowing request (columns of `borrowing_requests`) and its rota; return its id.

    `rota` items are agency strings or dicts of `rota_entries` columns; positions default to
    1, 2, 3... in the given order. Two round trips (one with no rota).
    """
    _check_values(values)
    result = conn.execute(_insert_of(_req), {**values, "created_at": now, "updated_at": now, "version": 1})
    request_id = int(result.inserted_primary_key[0])
    if rota:
        insert_rota_entries(conn, request_id, rota)
    return request_id


def insert_rota_entries(
    conn: Connection,
    request_id: int,
    entries: Sequence[str | Mapping[str, Any]],
    *,
    first_position: int = 1,
) -> None:
    """Append entries to a request's rota (one executemany round trip)."""
    rows = []
    for i, entry in enumerate(entries):
        row: dict[str, Any] = {"agency": entry} if isinstance(entry, str) else dict(entry)
        row.setdefault("position", first_position + i)
        row["request_id"] = request_id
        rows.append(row)
    insert_rows(conn, _rota, rows)


def load_request(conn: Connection, request_id: int) -> Row | None:
    """The request's columns plus `"rota"`: its entries ordered by position. Two round trips."""
    return _with_rota(conn, conn.execute(_SELECT_REQUEST, {"id": request_id}).first())


def load_request_by_external_id(conn: Connection, external_id: str) -> Row | None:
    """`load_request` by our requestingAgencyRequestId (what a partner's message quotes)."""
    return _with_rota(conn, conn.execute(_SELECT_REQUEST_BY_EXTERNAL_ID,
                                         {"external_id": external_id}).first())


def _with_rota(conn: Connection, row: Any) -> Row | None:
    if row is None:
        return None
    request = _dict(row)
    request["rota"] = [_dict(r) for r in conn.execute(_SELECT_ROTA, {"id": request["id"]})]
    return request


def find_request_id(conn: Connection, external_id: str) -> int | None:
    """The id of the borrowing request with this `external_id` (our requestingAgencyRequestId)."""
    return conn.execute(_SELECT_REQUEST_ID, {"external_id": external_id}).scalar_one_or_none()


def update_request(
    conn: Connection,
    request_id: int,
    version: int,
    values: Mapping[str, Any],
    *,
    now: datetime,
) -> bool:
    """`UPDATE borrowing_requests SET ..., version = version + 1 WHERE id = :id AND version = :v`.

    False when the row has moved on (or is gone): another writer got there first, so reload and
    decide again. On success the row's version is `version + 1`.
    """
    _check_values(values)
    params = {**values, "updated_at": now}
    result = conn.execute(_update_request_stmt(tuple(sorted(params))),
                          {**{"v_" + k: v for k, v in params.items()}, "_id": request_id, "_version": version})
    return result.rowcount == 1


@cache
def _update_request_stmt(columns: tuple[str, ...]) -> Any:
    """A version-checked UPDATE for this set of columns, built once per set."""
    return (
        update(_req)
        .where(_req.c.id == bindparam("_id"), _req.c.version == bindparam("_version"))
        .values({**{name: bindparam("v_" + name) for name in columns}, "version": _req.c.version + 1})
    )


@dataclass(frozen=True, slots=True)
class RequestUpdate:
    """Set `values` on a borrowing request that is at `version`, moving it to `new_version`
    (version + the number of steps the update carries)."""

    request_id: int
    version: int
    new_version: int
    values: Mapping[str, Any]
    now: datetime


def update_requests(conn: Connection, updates: Sequence[RequestUpdate], *,
                    into: arrays.GroupWrite | None = None) -> bool:
    """Several version-checked updates. False if some row was not at its expected version
    (another transaction moved it on).

    SQLite runs an executemany per set of columns and counts its rows. PostgreSQL's driver
    (asyncpg) cannot count the rows of an executemany, so there the whole group is one UPDATE
    with array parameters that returns the rows it updated (`arrays.update_versioned`). One
    statement, because it locks its rows in id order: two transactions updating the same
    requests then wait for each other rather than deadlock, which separate statements per set of
    columns could not promise. With `into` (PostgreSQL), the update becomes part of that group
    statement, and its `run` says whether every request was at its version.
    """
    if conn.dialect.name == "postgresql":
        rows = []
        for u in updates:
            _check_values(u.values)
            rows.append({**u.values, "updated_at": u.now, "_key": u.request_id, "_version": u.version,
                         "_new_version": u.new_version})
        if into is not None:
            into.update_versioned(_req, rows)
            return True
        return arrays.update_versioned(conn, _req, rows) == len(rows)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for u in updates:
        _check_values(u.values)
        params = {**u.values, "updated_at": u.now}
        groups.setdefault(tuple(sorted(params)), []).append(
            {**{"v_" + k: v for k, v in params.items()}, "_id": u.request_id, "_version": u.version,
             "_new_version": u.new_version})
    for columns, rows in groups.items():
        changed = _update_requests_stmt(columns).executemany(conn, rows)
        if (len(rows) == 1 or conn.dialect.supports_sane_multi_rowcount) and changed != len(rows):
            return False
    return True


@cache
def _update_requests_stmt(columns: tuple[str, ...]) -> Prepared:
    return Prepared(
        update(_req)
        .where(_req.c.id == bindparam("_id"), _req.c.version == bindparam("_version"))
        .values({**{name: bindparam("v_" + name) for name in columns}, "version": bindparam("_new_version")})
    )


def update_rota_entry(conn: Connection, entry_id: int, values: Mapping[str, Any]) -> bool:
    """Set columns of one rota entry. Rota entries have no version of their own: change them in
    the same transaction as a version-checked `update_request` of their request."""
    if "id" in values or "request_id" in values:
        raise ValueError("a rota entry's id and request_id can't be changed")
    result = conn.execute(update(_rota).where(_rota.c.id == entry_id).values(dict(values)))
    return result.rowcount == 1


# --- history ------------------------------------------------------------------------------------


def insert_history(conn: Connection, rows: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> None:
    """Insert one history row or several (one round trip). Pass `at` (the step's time)."""
    insert_rows(conn, _hist, [rows] if isinstance(rows, Mapping) else rows)


def mark_message_history(conn: Connection, raw_message_id: int, markers: Mapping[str, Any]) -> int:
    """Add `markers` (an inbound note's ReShare markers as data) to the detail of every history
    row of that raw message; the number of rows."""
    found = conn.execute(select(_hist.c.id, _hist.c.detail).where(_hist.c.raw_message_id == raw_message_id)).all()
    for history_id, detail in found:
        conn.execute(update(_hist).where(_hist.c.id == history_id)
                     .values(detail={**(detail or {}), "markers": dict(markers)}))
    return len(found)


# --- raw messages and idempotency ---------------------------------------------------------------


def mark_messages_read(conn: Connection, *, now: datetime, request_id: int | None = None,
                       lending_id: int | None = None) -> int:
    """Mark the unread incoming general messages of one borrowing or lending request read."""
    owner = _msg.c.request_id == request_id if request_id is not None else _msg.c.lending_id == lending_id
    stmt = update(_msg).where(owner, _msg.c.direction == "in", _msg.c.read_at.is_(None)).values(read_at=now)
    return conn.execute(stmt).rowcount


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True, slots=True)
class MessageKey:
    """The idempotency key of a raw message (the unique key of `raw_messages`).

    `partner_agency` is the sender for `direction="in"` and the recipient for `"out"`.
    `content_sha256` stands for the message's meaning, not its bytes: the caller computes it
    (`gateway.messages.identity.content_sha256`); the store only compares it.
    """

    direction: str
    partner_agency: str | None
    kind: str | None
    requesting_agency: str | None
    requesting_agency_request_id: str | None
    message_timestamp: str | None
    content_sha256: str

    def as_values(self) -> Row:
        return {
            "direction": self.direction,
            "partner_agency": self.partner_agency,
            "kind": self.kind,
            "requesting_agency": self.requesting_agency,
            "requesting_agency_request_id": self.requesting_agency_request_id,
            "message_timestamp": self.message_timestamp,
            "content_sha256": self.content_sha256,
        }


def find_raw_message(conn: Connection, key: MessageKey) -> Row | None:
    """The stored message with this key (with its `confirmation`), or None: the duplicate check.

    A key with a NULL part never matches (as in the unique constraint)."""
    values = key.as_values()
    if any(v is None for v in values.values()):
        return None
    row = conn.execute(_FIND_RAW, values).first()
    return None if row is None else _dict(row)


_FIND_RAW = select(_raw).where(*(_raw.c[name] == bindparam(name) for name in (
    "direction", "partner_agency", "kind", "requesting_agency", "requesting_agency_request_id",
    "message_timestamp", "content_sha256")))


_KEY_COLUMNS = ("direction", "partner_agency", "kind", "requesting_agency", "requesting_agency_request_id",
                "message_timestamp", "content_sha256")  # the fields of MessageKey, in order


def insert_raw_messages(conn: Connection, messages: Sequence[tuple[MessageKey, bytes, datetime, bytes | None]]
                        ) -> dict[MessageKey, int]:
    """Store several messages verbatim, (key, body, received_at, confirmation) each, with distinct
    keys, skipping any whose key is already stored (`ON CONFLICT DO NOTHING`). Returns the ids
    of those it stored, by key; a key missing from the answer is a duplicate (`find_raw_message`
    gives the first one). One statement, safe against a concurrent insert of the same message."""
    if not messages:
        return {}
    rows = [_raw_values(key, body, received_at, confirmation) for key, body, received_at, confirmation in messages]
    if conn.dialect.name == "sqlite":  # one cheap INSERT per row on the driver's cursor
        inserted = ((key, _INSERT_RAW_IF_NEW.insert(conn, row)) for (key, *_), row in zip(messages, rows))
        return {key: raw_id for key, raw_id in inserted if raw_id is not None}
    # One statement for the group; matched by key rather than relying on the order of RETURNING.
    inserted = arrays.insert_many(conn, _raw, _RAW_COLUMNS, [[row[name] for name in _RAW_COLUMNS] for row in rows],
                                  returning=("id", *_KEY_COLUMNS), skip_conflicts=True)
    return {MessageKey(*row[1:]): row[0] for row in inserted}


_RAW_COLUMNS = (*_KEY_COLUMNS, "body", "body_sha256", "received_at", "confirmation")


_INSERT_RAW_IF_NEW = Prepared(sqlite.insert(_raw).on_conflict_do_nothing(), _RAW_COLUMNS)


def _raw_values(key: MessageKey, body: bytes, received_at: datetime,
                confirmation: bytes | None) -> Row:
    return {**key.as_values(), "body": body, "body_sha256": body_sha256(body), "received_at": received_at,
            "confirmation": confirmation}


def insert_raw_message(conn: Connection, key: MessageKey, body: bytes, *, received_at: datetime,
                       confirmation: bytes | None = None) -> int:
    """Store a message verbatim; return its id. A duplicate key raises `IntegrityError` (in a
    savepoint, roll back just that savepoint)."""
    result = conn.execute(_insert_of(_raw), _raw_values(key, body, received_at, confirmation))
    return int(result.inserted_primary_key[0])


def insert_raw_message_if_new(conn: Connection, key: MessageKey, body: bytes, *,
                              received_at: datetime, confirmation: bytes | None = None) -> int | None:
    """Store a message unless its key is already stored (`ON CONFLICT DO NOTHING`); return the
    new id, or None for a duplicate (then `find_raw_message` gives the first one). One round trip,
    and safe against a concurrent insert of the same message."""
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = (
        dialect_insert(_raw)
        .values(_raw_values(key, body, received_at, confirmation))
        .on_conflict_do_nothing()
        .returning(_raw.c.id)
    )
    return conn.execute(stmt).scalar_one_or_none()


def set_raw_confirmation(conn: Connection, raw_message_id: int, confirmation: bytes) -> None:
    conn.execute(_SET_CONFIRMATION, {"_id": raw_message_id, "confirmation": confirmation})


_SET_CONFIRMATION = (
    update(_raw).where(_raw.c.id == bindparam("_id")).values(confirmation=bindparam("confirmation"))
)


# --- outbox -------------------------------------------------------------------------------------


def insert_outbox(
    conn: Connection,
    *,
    partner_agency: str,
    partner_url: str,
    kind: str,
    body: bytes,
    now: datetime,
    request_id: int | None = None,
    lending_id: int | None = None,
) -> int:
    """Queue a message for a partner, due now; return the outbox id.

    `seq` is the next number for (request or lending request, partner), computed in the same
    statement. Two transactions queueing for the same request at once would collide on the unique
    key; they don't, because each also does a version-checked update of that request, which
    serialises them.
    """
    if (request_id is None) == (lending_id is None):
        raise ValueError("give exactly one of request_id and lending_id")
    owner = _out.c.request_id == request_id if request_id is not None else (
        _out.c.lending_id == lending_id
    )
    next_seq = (
        select(func.coalesce(func.max(_out.c.seq), 0) + 1)
        .where(owner, _out.c.partner_agency == partner_agency)
        .scalar_subquery()
    )
    result = conn.execute(
        insert(_out).values(
            request_id=request_id,
            lending_id=lending_id,
            partner_agency=partner_agency,
            partner_url=partner_url,
            seq=next_seq,
            kind=kind,
            body=body,
            state="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )
    return int(result.inserted_primary_key[0])


def fetch_due_outbox(conn: Connection, *, now: datetime, limit: int = 100,
                     skip_partners: Iterable[str] = ()) -> list[Row]:
    """Pending rows due by `now`, oldest first, skipping any row that has an earlier undelivered
    row (pending or sending) for the same request and partner: per-partner order is kept.
    Rows to `skip_partners` (those the worker may not send to now) are left out.

    On PostgreSQL the rows are locked for the rest of the transaction (`FOR UPDATE SKIP LOCKED`):
    a worker sharing the database skips rows another worker is claiming right now instead of
    fetching the same ones (only one of the claims would win) or waiting for them. The order
    check needs no lock: an earlier row only ever moves on from pending/sending, so a snapshot
    that still sees it open holds its successor back, never lets it through. SQLite has one
    writer at a time, so its fetch and claim cannot interleave with another's."""
    skip = sorted(set(skip_partners))
    earlier = _out.alias("earlier")
    blocked = exists().where(
        earlier.c.partner_agency == _out.c.partner_agency,
        earlier.c.seq < _out.c.seq,
        earlier.c.state.in_(("pending", "sending")),
        or_(earlier.c.request_id == _out.c.request_id, earlier.c.lending_id == _out.c.lending_id),
    )
    stmt = (
        select(_out)
        .where(_out.c.state == "pending", _out.c.next_attempt_at <= now, ~blocked)
        .order_by(_out.c.next_attempt_at, _out.c.id)
        .limit(limit)
    )
    if skip:
        stmt = stmt.where(_out.c.partner_agency.not_in(skip))
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=_out)
    return [_dict(r) for r in conn.execute(stmt)]


def claim_outbox(conn: Connection, ids: Iterable[int], *, lease_until: datetime | None = None) -> list[int]:
    """Mark pending rows as `sending` (counting the attempt); return the ids this call claimed.
    `lease_until`: the claim's lease ends then (kept in `next_attempt_at` while sending; see
    `release_outbox_leases`)."""
    ids = list(ids)
    if not ids:
        return []
    values: Row = {"state": "sending", "attempts": _out.c.attempts + 1}
    if lease_until is not None:
        values["next_attempt_at"] = lease_until
    stmt = update(_out).where(_out.c.id.in_(ids), _out.c.state == "pending").values(values).returning(_out.c.id)
    return sorted(conn.execute(stmt).scalars())


def _open_row(outbox_id: int, attempt: int | None) -> list[Any]:
    """A row that is still open (pending or sending) and, given `attempt`, still at that attempt:
    a worker records only the outcome of its own claim, not one a later claim has superseded."""
    where = [_out.c.id == outbox_id, _out.c.state.in_(("pending", "sending"))]
    if attempt is not None:
        where.append(_out.c.attempts == attempt)
    return where


def mark_outbox_delivered(conn: Connection, outbox_id: int, *, now: datetime,
                          raw_message_id: int | None = None, attempt: int | None = None) -> bool:
    """The partner confirmed the message. False if the row was not pending or sending (or, with
    `attempt`, had been claimed again since)."""
    result = conn.execute(
        update(_out)
        .where(*_open_row(outbox_id, attempt))
        .values(state="delivered", delivered_at=now, last_error=None,
                raw_message_id=raw_message_id)
    )
    return result.rowcount == 1


def mark_outbox_retry(conn: Connection, outbox_id: int, *, error: str,
                      next_attempt_at: datetime | None, attempt: int | None = None) -> bool:
    """A delivery attempt failed: due again at `next_attempt_at`, or `failed` for good if None."""
    values: Row = {"last_error": error}
    if next_attempt_at is None:
        values["state"] = "failed"
    else:
        values.update(state="pending", next_attempt_at=next_attempt_at)
    result = conn.execute(update(_out).where(*_open_row(outbox_id, attempt)).values(values))
    return result.rowcount == 1


def release_outbox_leases(conn: Connection, *, now: datetime, expired_only: bool = True) -> list[Row]:
    """`sending` rows whose lease ended by `now` (all of them with `expired_only=False`) go back to
    `pending`, due at once, with `unknown_outcomes` counted up: nobody recorded what the partner
    made of the last attempt. Returns the released rows (without their bodies)."""
    where = [_out.c.state == "sending"]
    if expired_only:
        where.append(_out.c.next_attempt_at <= now)
    columns = [c for c in _out.c if c.name != "body"]
    stmt = (
        update(_out)
        .where(*where)
        .values(state="pending", next_attempt_at=now, unknown_outcomes=_out.c.unknown_outcomes + 1,
                last_error="outcome unknown: no result was recorded before the lease ended")
        .returning(*columns)
    )
    return sorted((_dict(r) for r in conn.execute(stmt)), key=lambda r: r["id"])


# --- timers -------------------------------------------------------------------------------------


def due_ids(conn: Connection, owner: Any, deadline: Any, now: datetime, *where: Any) -> list[int]:
    """The ids (column `owner`) whose `deadline` column has passed, in id order: both sides'
    timers select their due requests this way, on an indexed deadline column."""
    stmt = select(owner).where(deadline <= now, *where).distinct().order_by(owner)
    return list(conn.execute(stmt).scalars())


# --- lending requests ---------------------------------------------------------------------------


def insert_lending(conn: Connection, values: Mapping[str, Any], *, now: datetime) -> int:
    """Insert a lending request; return its id. (requesting agency, request id) already present
    raises `IntegrityError`."""
    _check_values(values)
    result = conn.execute(
        insert(_lend).values({**values, "created_at": now, "updated_at": now, "version": 1})
    )
    return int(result.inserted_primary_key[0])


def load_lending(conn: Connection, lending_id: int) -> Row | None:
    row = conn.execute(_SELECT_LENDING, {"id": lending_id}).first()
    return None if row is None else _dict(row)


def find_lending(conn: Connection, requesting_agency: str,
                 requesting_agency_request_id: str) -> Row | None:
    """The lending request a partner's message is about: request ids are scoped per agency."""
    row = conn.execute(
        _SELECT_LENDING_BY_KEY,
        {"agency": requesting_agency, "request_id": requesting_agency_request_id},
    ).first()
    return None if row is None else _dict(row)


def update_lending(conn: Connection, lending_id: int, version: int, values: Mapping[str, Any], *,
                   now: datetime) -> bool:
    """Version-checked update of a lending request, like `update_request`."""
    _check_values(values)
    result = conn.execute(
        update(_lend)
        .where(_lend.c.id == lending_id, _lend.c.version == version)
        .values({**values, "version": _lend.c.version + 1, "updated_at": now})
    )
    return result.rowcount == 1
