"""Queries of the staff accounts and of the sign-in throttle (tables staff_accounts and
sign_in_throttles). Synchronous, on a Connection, like queries.py: the service runs them as
writer steps or through `run_sync`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from .models import sign_in_throttles_t as _throttles
from .models import staff_accounts_t as _accounts


def find_account(conn: Connection, username: str) -> Row | None:
    return conn.execute(select(_accounts).where(_accounts.c.username == username)).first()


def list_accounts(conn: Connection) -> Sequence[Row]:
    return conn.execute(select(_accounts).order_by(_accounts.c.username)).all()


def save_account(conn: Connection, username: str, values: dict[str, Any], now: datetime) -> bool:
    """Create the account, or update the given columns of an existing one; True if created."""
    if update_account(conn, username, values, now):
        return False
    conn.execute(_accounts.insert().values({"disabled": False, **values, "username": username,
                                            "created_at": now, "updated_at": now}))
    return True


def insert_account_if_missing(conn: Connection, username: str, values: dict[str, Any], now: datetime) -> bool:
    """Create the account unless it exists (whoever made it, even a moment ago in another
    process); True if this call created it."""
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    return bool(conn.execute(dialect_insert(_accounts).values(
        {"disabled": False, **values, "username": username, "created_at": now, "updated_at": now})
        .on_conflict_do_nothing(index_elements=[_accounts.c.username])).rowcount)


def update_account(conn: Connection, username: str, values: dict[str, Any], now: datetime) -> bool:
    """Update the given columns of an existing account; False if there is none."""
    return bool(conn.execute(update(_accounts).where(_accounts.c.username == username)
                             .values(**values, updated_at=now)).rowcount)


def record_sign_in(conn: Connection, username: str, now: datetime, new_hash: str | None) -> None:
    values: dict[str, Any] = {"last_sign_in_at": now}
    if new_hash is not None:
        values.update(password_hash=new_hash, updated_at=now)
    conn.execute(update(_accounts).where(_accounts.c.username == username).values(**values))


# --- the sign-in throttle ---------------------------------------------------------------------------


def find_throttle(conn: Connection, username: str) -> Row | None:
    return conn.execute(select(_throttles).where(_throttles.c.username == username)).first()


def lock_throttle(conn: Connection, username: str, now: datetime) -> Row:
    """The username's throttle row, created if missing, held until commit: on PostgreSQL a row
    lock serialises concurrent failures of one username across processes; SQLite's write
    transaction already does. The insert is safe against a concurrent insert of the same name."""
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(dialect_insert(_throttles)
                 .values(username=username, failures=0, window_started_at=now, locked_until=None)
                 .on_conflict_do_nothing())
    return conn.execute(select(_throttles).where(_throttles.c.username == username).with_for_update()).one()


def save_throttle(conn: Connection, username: str, *, failures: int, window_started_at: datetime,
                  locked_until: datetime | None) -> None:
    conn.execute(update(_throttles).where(_throttles.c.username == username)
                 .values(failures=failures, window_started_at=window_started_at, locked_until=locked_until))


def clear_throttle(conn: Connection, username: str) -> None:
    conn.execute(delete(_throttles).where(_throttles.c.username == username))


def prune_throttles(conn: Connection, now: datetime, window: timedelta) -> int:
    """Delete rows whose window and lock have both passed (usernames tried once and never
    again would otherwise stay for ever); the number deleted."""
    stale = and_(_throttles.c.window_started_at < now - window,
                 or_(_throttles.c.locked_until.is_(None), _throttles.c.locked_until <= now))
    return conn.execute(delete(_throttles).where(stale)).rowcount
