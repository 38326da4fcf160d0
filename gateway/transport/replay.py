"""The HMAC replay guard, kept in the database (table seen_signatures; docs/inbound-limits.md).

A signature counts as used once its request has been answered with anything but a server
error: a replay of it is refused (HTTP 401), also after a restart. A signature whose request
failed (5xx), or whose outcome was never recorded (the process died first), is not used: the
partner's retry of the same bytes is processed as a new attempt, which the idempotency of
raw_messages makes safe even if the first attempt did commit. Entries expire when their
timestamp leaves the HMAC window, after which the window check refuses the signature anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from ..store.models import seen_signatures_t as _seen
from .auth import HMAC_WINDOW, Signed


def counts_as_used(status: int | None) -> bool:
    """Whether a recorded outcome makes a second use of the signature a replay."""
    return status is not None and status < 500


def expires_at(signed: Signed) -> datetime:
    return datetime.fromtimestamp(signed.timestamp + HMAC_WINDOW, timezone.utc)


def outcome_step(signed: Signed, now: datetime) -> Callable[[Connection], int | None]:
    """The HTTP status recorded for this signature (None: never seen, or expired)."""
    def step(conn: Connection) -> int | None:
        return conn.execute(select(_seen.c.status).where(
            _seen.c.signature == signed.signature, _seen.c.expires_at > now)).scalar()

    return step


def remember_step(signed: Signed, partner: str, status: int, now: datetime) -> Callable[[Connection], None]:
    """Record the outcome of a request with this signature (a retry's outcome replaces a failed one)."""
    def step(conn: Connection) -> None:
        values = {"partner_agency": partner, "status": status, "seen_at": now, "expires_at": expires_at(signed)}
        dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(dialect_insert(_seen).values(signature=signed.signature, **values)
                     .on_conflict_do_update(index_elements=[_seen.c.signature], set_=values,
                                            where=_seen.c.status >= 500))  # a success is never undone

    return step


def prune_step(now: datetime) -> Callable[[Connection], int]:
    """Delete expired entries; how many."""
    def step(conn: Connection) -> int:
        return conn.execute(delete(_seen).where(_seen.c.expires_at <= now)).rowcount

    return step


def wall_clock() -> datetime:
    """Signatures carry unix timestamps, so the guard keeps real time (not the gateway's clock,
    which tests may set)."""
    return datetime.now(timezone.utc)
