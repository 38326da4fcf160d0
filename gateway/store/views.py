"""Queries of the staff members' saved list views and last list choice (tables staff_views and
staff_preferences). Synchronous, on a Connection, like accounts.py: the service runs the writes
as writer steps and the reads through `run_sync`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, Row, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from .models import staff_preferences_t as _prefs
from .models import staff_views_t as _views


def list_views(conn: Connection, username: str) -> Sequence[Row]:
    return conn.execute(select(_views.c.id, _views.c.name, _views.c.query)
                        .where(_views.c.username == username).order_by(_views.c.name)).all()


def find_view(conn: Connection, username: str, view_id: int) -> Row | None:
    return conn.execute(select(_views.c.id, _views.c.name, _views.c.query)
                        .where(_views.c.username == username, _views.c.id == view_id)).first()


def save_view(conn: Connection, username: str, name: str, query: str, now: datetime) -> bool:
    """Save the view under its name (replacing the query of a view so named); True if created."""
    if conn.execute(update(_views).where(_views.c.username == username, _views.c.name == name)
                    .values(query=query)).rowcount:
        return False
    conn.execute(_views.insert().values(username=username, name=name, query=query, created_at=now))
    return True


def delete_view(conn: Connection, username: str, view_id: int) -> bool:
    return bool(conn.execute(delete(_views).where(_views.c.username == username, _views.c.id == view_id)).rowcount)


def list_query(conn: Connection, username: str) -> str | None:
    return conn.execute(select(_prefs.c.list_query).where(_prefs.c.username == username)).scalar_one_or_none()


def set_list_query(conn: Connection, username: str, query: str, now: datetime) -> None:
    """Insert or update (safe against another process inserting the same username meanwhile)."""
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(_prefs).values(username=username, list_query=query, updated_at=now)
    conn.execute(stmt.on_conflict_do_update(index_elements=[_prefs.c.username],
                                            set_={"list_query": query, "updated_at": now}))
