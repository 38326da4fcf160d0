"""Audit entries that belong to no request: refused partners, failed authentication.

Their actor and text come from messages nobody has authenticated, so both are clipped to a
fixed length before they are stored (docs/inbound-limits.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection

from ..messages.clip import clip
from ..store import queries

ACTOR_LENGTH = 200  # history.actor
TEXT_LENGTH = 500


@dataclass(frozen=True)
class AuditEntry:
    actor: str
    event: str
    text: str


def audit_step(entries: Sequence[AuditEntry], now: datetime) -> Callable[[Connection], None]:
    def step(conn: Connection) -> None:
        if entries:
            queries.insert_history(conn, [{
                "request_id": None, "lending_id": None, "at": now, "actor": clip(e.actor, ACTOR_LENGTH),
                "event": e.event, "from_status": None, "to_status": None,
                "detail": {"text": clip(e.text, TEXT_LENGTH)},
            } for e in entries])

    return step
