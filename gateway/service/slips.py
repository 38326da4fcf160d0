"""Recording that slips were printed: `slip_printed_at` on each request and a history entry
("slip printed") naming the staff member. Printing changes nothing the partner sees and no
status, so the request's version stays as it is (a colleague's open form is not made stale);
the history row is what tells a live page that something was added."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Connection, select, update

from ..store import queries
from ..store.models import borrowing_requests_t, lending_requests_t

SIDES = {"borrowing": (borrowing_requests_t, "request_id"), "lending": (lending_requests_t, "lending_id")}
WHAT = {"borrowing": "book strap printed", "lending": "pull slip printed"}


def mark_printed_step(side: str, ids: Sequence[int], actor: str, now: datetime) -> Callable[[Connection], list[int]]:
    """Set slip_printed_at on the requests of `ids` that exist; return their ids (in id order)."""
    table, owner = SIDES[side]

    def step(conn: Connection) -> list[int]:
        found = conn.execute(select(table.c.id, table.c.status).where(table.c.id.in_(list(ids)))
                             .order_by(table.c.id)).all()
        if not found:
            return []
        conn.execute(update(table).where(table.c.id.in_([row.id for row in found])).values(
            slip_printed_at=now, updated_at=table.c.updated_at))  # (not a change of the request itself)
        queries.insert_history(conn, [
            {owner: row.id, "at": now, "actor": actor, "event": "slip_printed", "from_status": row.status,
             "to_status": row.status, "detail": {"text": WHAT[side]}}
            for row in found])
        return [row.id for row in found]

    return step
