"""What a delivery outcome does to a borrowing request (the outbox worker's borrowing hook).

Runs inside the outbox's recording step, so its effects commit with the row's new state:
our `request` confirmed by the partner is the core's `RequestConfirmed`; a `request` or a
requestingAgencyMessage refused (ERROR confirmation) or given up on is `DeliveryFailed` (the rota
moves on for a request; other messages flag the request for staff).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from ..core import DeliveryFailed, RequestConfirmed
from ..messages import MessageError, decode
from .borrowing import event_step
from .context import ServiceContext
from .delivery import DELIVERED, Row

__all__ = ["outcome_step"]

_FAILABLE = ("request", "requestingAgencyMessage")


def outcome_step(ctx: ServiceContext) -> Callable[[Connection, Row, str, Any, datetime], None]:
    def hook(conn: Connection, row: Row, verdict: str, outcome: Any, now: datetime) -> None:
        request_id, partner, kind = row["request_id"], row["partner_agency"], row["kind"]
        if verdict == DELIVERED:
            if kind == "request":
                event_step(ctx, request_id, RequestConfirmed(partner=partner, now=now), now)(conn)
        elif kind in _FAILABLE:
            failed = DeliveryFailed(partner=partner, kind=kind, at=now, action=_action(row["body"]))
            event_step(ctx, request_id, failed, now)(conn)

    return hook


def _action(body: bytes) -> Any:
    """The action of a stored requestingAgencyMessage (None for other kinds or if it does not decode)."""
    try:
        return getattr(decode(body).message, "action", None)
    except MessageError:
        return None
