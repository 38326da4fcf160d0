"""What a delivery outcome does to a lending request (the outbox worker's lending hook).

Runs inside the outbox's recording step: a supplyingAgencyMessage of ours refused (ERROR
confirmation) or given up on flags the lending request (`MessageUndelivered`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from ..core.lending import LendingPolicy, MessageUndelivered
from ..messages import decode
from .context import ServiceContext
from .delivery import FAILED, REFUSED, Row
from .lending import lending_event_step

__all__ = ["outcome_step"]


def outcome_step(ctx: ServiceContext, policy: LendingPolicy) -> Callable[[Connection, Row, str, Any, datetime], None]:
    def hook(conn: Connection, row: Row, verdict: str, outcome: Any, now: datetime) -> None:
        if verdict not in (REFUSED, FAILED):
            return
        message = decode(row["body"]).message
        event = MessageUndelivered(partner=row["partner_agency"], at=now, status=message.status_info.status,
                                   reason=message.message_info.reason_for_message)
        lending_event_step(ctx, policy, row["lending_id"], event, now)(conn)

    return hook
