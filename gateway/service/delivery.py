"""What the outbox records on a request's history when a delivery ends, for either side.

The outbox worker claims, sends and marks its rows; the history row that tells staff what became
of a message is written here, and each side's effects (borrowing_delivery.py, lending_delivery.py)
run in the same recording step.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from ..store import queries
from ..store.models import borrowing_requests_t, lending_requests_t

__all__ = ["DELIVERED", "FAILED", "REFUSED", "RETRIED", "STALE", "outcome_history", "outcome_unknown_history"]

Row = dict[str, Any]
SYSTEM = "system"

# The verdicts of a delivery attempt. Only the final ones (delivered, refused, failed) have effects.
DELIVERED, REFUSED, RETRIED, FAILED, STALE = "delivered", "refused", "retried", "failed", "stale"

_EVENTS = {DELIVERED: "message_sent", REFUSED: "message_sent_refused", FAILED: "message_not_delivered"}


def outcome_history(conn: Connection, row: Row, verdict: str, *, action: Any, error: str | None,
                    raw_id: int | None, now: datetime) -> None:
    """The history row of a final verdict on an outbox row (`action`: the requestingAgencyMessage's
    action, None for other kinds)."""
    partner, kind = row["partner_agency"], row["kind"]
    what = kind if action is None else f"{kind} {action.value}"
    text = {
        DELIVERED: f"{what} delivered to {partner}",
        REFUSED: f"{what} refused by {partner}: {error}",
        FAILED: f"{what} could not be delivered to {partner}: {error}",
    }[verdict]
    detail = {"text": text, "outbox_id": row["id"], "kind": kind, "partner": partner,
              "attempts": row["attempts"]}
    if row.get("unknown_outcomes"):  # an earlier attempt's fate was never learnt
        detail["text"] = f"{text} (sent again after an unknown outcome: {partner} may have it twice)"
        detail["retry_after_unknown_outcome"] = True
        detail["unknown_outcomes"] = row["unknown_outcomes"]
    if action is not None:
        detail["action"] = action.value
    _history(conn, row, _EVENTS[verdict], detail, raw_id, now)


def outcome_unknown_history(conn: Connection, row: Row, now: datetime) -> None:
    """The history row of a send whose outcome was never recorded (its claim's lease ended)."""
    partner, kind = row["partner_agency"], row["kind"]
    text = (f"{kind} to {partner}: the outcome of attempt {row['attempts']} is unknown (nothing was "
            f"recorded before the claim's lease ended); it will be sent again, so {partner} may "
            f"receive it twice")
    _history(conn, row, "message_outcome_unknown", {
        "text": text, "outbox_id": row["id"], "kind": kind, "partner": partner,
        "attempts": row["attempts"], "unknown_outcomes": row["unknown_outcomes"]}, None, now)


def _history(conn: Connection, row: Row, event: str, detail: dict[str, Any], raw_id: int | None,
             now: datetime) -> None:
    """A system history row on the outbox row's request or lending request (status unchanged)."""
    if row["request_id"] is not None:
        owner, table = {"request_id": row["request_id"]}, borrowing_requests_t
    else:
        owner, table = {"lending_id": row["lending_id"]}, lending_requests_t
    status = conn.execute(select(table.c.status).where(table.c.id == next(iter(owner.values())))).scalar()
    queries.insert_history(conn, {
        **owner, "at": now, "actor": SYSTEM, "event": event, "from_status": status,
        "to_status": status, "detail": detail, "raw_message_id": raw_id,
    })
