"""Audit entries that belong to no request: refused partners, failed authentication."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection

from ..store import queries


def audit_step(actor: str, event: str, text: str, now: datetime) -> Callable[[Connection], None]:
    def step(conn: Connection) -> None:
        queries.insert_history(conn, {
            "request_id": None, "lending_id": None, "at": now, "actor": actor, "event": event,
            "from_status": None, "to_status": None, "detail": {"text": text},
        })

    return step
