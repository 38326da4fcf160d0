"""The rows a decision adds beside its request's own row, for either side: history, general
messages, notes, received items and outbox rows.

Both services gather them here and write them with one statement per table for a whole step
or group of steps. `owner` names the column that links a row to its request: `request_id`
(borrowing) or `lending_id` (lending). How an outgoing message is encoded stays with its side,
which hands over the finished bodies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from ..config import Partner
from ..core.machine import Decision
from ..messages.peers import note_markers
from ..store import queries
from ..store.arrays import GroupWrite
from ..store.models import general_messages_t, history_t, notes_t, received_items_t


def history_row(owner: str, owner_id: int, *, at: datetime, actor: str | None, event: str, status: str,
                text: str, raw_message_id: int | None = None) -> dict[str, Any]:
    """A history entry that leaves the status where it is (a warning, a refused message)."""
    return {owner: owner_id, "at": at, "actor": actor, "event": event, "from_status": status,
            "to_status": status, "detail": {"text": text}, "raw_message_id": raw_message_id}


def warning_rows(owner: str, owner_id: int, *, at: datetime, sender: str, status: str,
                 warnings: Iterable[str], raw_message_id: int | None = None) -> list[dict[str, Any]]:
    """The partner's tolerance profile repaired the message: say so on the record."""
    return [history_row(owner, owner_id, at=at, actor=sender, event="conformance_warning", status=status,
                        text=text, raw_message_id=raw_message_id) for text in warnings]


def outbox_row(partner: Partner, kind: str, body: bytes) -> dict[str, Any]:
    return {"partner_agency": partner.agency, "partner_url": partner.url, "kind": kind, "body": body}


class DecisionRows:
    """The rows that decisions add, gathered so that each table gets one executemany."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.history: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.notes: list[dict[str, Any]] = []
        self.items: list[dict[str, Any]] = []
        self.outbox: list[dict[str, Any]] = []

    def add(self, owner_id: int, decision: Decision, raw_message_id: int | None, *, now: datetime,
            sender: str | None = None, outbox: Iterable[Mapping[str, Any]] = ()) -> None:
        """The rows of one decision. `sender`: the actor of the general messages we send;
        `outbox`: the decision's outgoing messages, encoded (`outbox_row`)."""
        owner = self.owner
        self.history.extend({
            owner: owner_id, "at": h.at, "actor": h.actor, "event": h.event,
            "from_status": h.from_status.value if h.from_status else None,
            "to_status": h.to_status.value if h.to_status else None,
            "detail": {"text": h.detail} if h.detail else None, "raw_message_id": raw_message_id,
        } for h in decision.history)
        self.messages.extend({
            owner: owner_id, "direction": m.direction, "partner_agency": m.partner, "at": m.at,
            "actor": m.partner if m.direction == "in" else sender,
            "markers": note_markers(m.note) if m.direction == "in" else None,
            "text": m.note, "raw_message_id": raw_message_id if m.direction == "in" else None,
            "read_at": None if m.direction == "in" else m.at,  # an incoming one waits to be read
        } for m in decision.messages)
        self.notes.extend({owner: owner_id, "created_at": n.at, "actor": n.by, "text": n.text}
                          for n in decision.notes)
        self.items.extend({  # only borrowing receives items
            owner: owner_id, "barcode": item.barcode, "received_at": item.at, "actor": item.by,
            "note": item.note, "due_date": decision.state.due_date,
        } for item in getattr(decision, "received", ()))
        self.outbox.extend({**out, "now": now, owner: owner_id} for out in outbox)

    def mark(self, since: int, markers: Mapping[str, Any]) -> None:
        """Add an inbound note's markers to the history rows from index `since` on: a message's
        note is kept as data on its history too (not every note is a general message)."""
        for row in self.history[since:]:
            row["detail"] = {**(row["detail"] or {}), "markers": markers}

    def write(self, conn: Connection, *, into: GroupWrite | None = None) -> None:
        """Insert the rows; with `into` (a group statement on PostgreSQL), as parts of it. Outbox
        rows are not: each takes the next `seq` of its request and partner, one by one."""
        tables = ((history_t, self.history), (general_messages_t, self.messages), (notes_t, self.notes),
                  (received_items_t, self.items))
        if into is not None:
            if self.outbox:
                raise ValueError("outbox rows cannot be part of a group statement")
            for table, rows in tables:
                into.insert(table, rows)
            return
        for table, rows in tables:
            if rows:
                queries.insert_rows(conn, table, rows)
        for out in self.outbox:  # one by one: each takes the next seq of its request and partner
            queries.insert_outbox(conn, **out)
