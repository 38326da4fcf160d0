"""Borrowing state <-> database rows.

The core's whole state lives as JSON in `borrowing_requests.extra["state"]`; the other
columns and the `rota_entries` rows are copies kept for listing, filtering and display.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select

from ..core import BorrowingPolicy, BorrowingState, Decision, RequestDetails
from ..core._system import next_deadline
from ..store import queries
from ..store.models import borrowing_requests_t, rota_entries_t
from .snapshot import from_json, to_json

DETAIL_COLUMNS = tuple(f.name for f in fields(RequestDetails) if f.name != "other_identifiers")
_SELECT_BY_ID = select(borrowing_requests_t).where(borrowing_requests_t.c.id == bindparam("id"))
_SELECT_BY_EXTERNAL = select(borrowing_requests_t).where(
    borrowing_requests_t.c.external_id == bindparam("external_id")
)


def load_row(conn: Connection, request_id: int) -> dict[str, Any] | None:
    row = conn.execute(_SELECT_BY_ID, {"id": request_id}).first()
    return None if row is None else dict(row._mapping)


def load_row_by_external_id(conn: Connection, external_id: str) -> dict[str, Any] | None:
    row = conn.execute(_SELECT_BY_EXTERNAL, {"external_id": external_id}).first()
    return None if row is None else dict(row._mapping)


def state_of(row: dict[str, Any]) -> BorrowingState:
    return from_json(BorrowingState, row["extra"]["state"])


def request_columns(state: BorrowingState, extra: dict[str, Any]) -> dict[str, Any]:
    d = state.details
    columns = {name: getattr(d, name) for name in DETAIL_COLUMNS}
    current = state.current
    columns.update(
        other_identifiers=[{"type": t, "value": v} for t, v in d.other_identifiers] or None,
        service_type=d.service_type.value,
        status=state.status.value,
        previous_status=state.previous_status.value if state.previous_status else None,
        needs_attention=state.needs_attention,
        attention_reason=", ".join(sorted(flag.value for flag in state.flags)) or None,
        active_partner=current.partner if current else None,
        due_date=state.due_date,
        extra={**extra, "state": to_json(state)},
    )
    return columns


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


def history_rows(decision: Decision, request_id: int, raw_message_id: int | None) -> list[dict[str, Any]]:
    return [
        {
            "request_id": request_id,
            "at": h.at,
            "actor": h.actor,
            "event": h.event,
            "from_status": h.from_status.value if h.from_status else None,
            "to_status": h.to_status.value if h.to_status else None,
            "detail": {"text": h.detail} if h.detail else None,
            "raw_message_id": raw_message_id,
        }
        for h in decision.history
    ]


def due_request_ids(conn: Connection, now: datetime) -> list[int]:
    stmt = (
        select(rota_entries_t.c.request_id)
        .where(rota_entries_t.c.deadline_at <= now, rota_entries_t.c.state == "active")
        .distinct()
    )
    return list(conn.execute(stmt).scalars())
