"""Staff members' borrowing list views: the last choice of filters and sort (kept per person
and restored on the next visit) and named views they save. Only the list's query string is
kept; the page checks it again each time it uses it (service code never interprets it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Connection

from ..store import views as store
from .borrowing import utc_now
from .writer import Writer

NAME_LENGTH = 100
QUERY_LENGTH = 2000
T = TypeVar("T")


class ViewError(ValueError):
    """A view name or query that cannot be saved; the message says why."""


@dataclass(frozen=True)
class SavedView:
    id: int
    name: str
    query: str


class ViewService:
    def __init__(self, writer: Writer, clock: Callable[[], datetime] = utc_now):
        self.writer = writer
        self.clock = clock

    async def views(self, username: str) -> list[SavedView]:
        return [SavedView(r.id, r.name, r.query) for r in await self._read(lambda c: store.list_views(c, username))]

    async def view(self, username: str, view_id: int) -> SavedView | None:
        row = await self._read(lambda c: store.find_view(c, username, view_id))
        return None if row is None else SavedView(row.id, row.name, row.query)

    async def save_view(self, username: str, name: str, query: str) -> bool:
        """Save (or replace) the named view; True if it is new."""
        name = " ".join(name.split())
        if not 0 < len(name) <= NAME_LENGTH:
            raise ViewError(f"a view name is 1-{NAME_LENGTH} characters")
        _check_query(query)
        now = self.clock()
        return await self.writer.run(lambda conn: store.save_view(conn, username, name, query, now))

    async def delete_view(self, username: str, view_id: int) -> bool:
        return await self.writer.run(lambda conn: store.delete_view(conn, username, view_id))

    async def list_query(self, username: str) -> str | None:
        """The list's last query string for this person (None: never chose one)."""
        return await self._read(lambda c: store.list_query(c, username))

    async def remember_list_query(self, username: str, query: str) -> None:
        _check_query(query)
        now = self.clock()
        await self.writer.run(lambda conn: store.set_list_query(conn, username, query, now))

    async def _read(self, query: Callable[[Connection], T]) -> T:
        async with self.writer.engine.connect() as conn:
            return await conn.run_sync(query)


def _check_query(query: str) -> None:
    if len(query) > QUERY_LENGTH:
        raise ViewError(f"a list query is at most {QUERY_LENGTH} characters")
