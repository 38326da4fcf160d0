"""Statements of the inbound hot path, compiled once and run on the driver's own cursor.

On SQLite, SQLAlchemy's `Connection.execute` costs several times what SQLite itself spends on a
small INSERT or UPDATE: it builds an execution context and runs every parameter through the
type's processors for each row. `Prepared` compiles a Core statement once, binds each value
with the column type's own processor (or a faster equivalent for `UTCDateTime`, proved equal by
tests), and hands whole groups of rows to `sqlite3`'s `executemany`. The SQL text still comes
from the table definitions, so the schema has one source. The sqlite3 connection runs in
autocommit mode and SQLAlchemy has issued BEGIN (see `db.py`), so these statements are part of
the writer's transaction and savepoints like any other.

On PostgreSQL the same holds for SQLAlchemy's side of an execute (about half the CPU an UPDATE
cost the gateway there). `Prepared` runs on the cursor of SQLAlchemy's asyncpg adapter, which
begins the transaction when needed and keeps asyncpg's prepared statements per connection; an
asyncpg `executemany` sends all its rows in one round trip but cannot count them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from operator import itemgetter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import asyncpg
from sqlalchemy.exc import DBAPIError

from .types import UTCDateTime

Binder = Callable[[Any], Any] | None
_SQLITE = sqlite.dialect()
_POSTGRESQL = asyncpg.dialect()


_texts: dict[datetime, str] = {}  # recent datetimes bound and their text: a step's rows share a few


def sqlite_datetime(value: datetime | None) -> str | None:
    """What `UTCDateTime` stores on SQLite for `value`: the UTC wall clock as fixed-width text."""
    if value is None:
        return None
    text = _texts.get(value)  # equal instants have the same UTC text, whatever their zone
    if text is None:
        text = _sqlite_datetime(value)
        if len(_texts) >= 512:
            _texts.clear()
        _texts[value] = text
    return text


def _sqlite_datetime(value: datetime) -> str:
    if not isinstance(value, datetime):
        raise TypeError(f"UTCDateTime needs a datetime, got {type(value).__name__}: {value!r}")
    if value.tzinfo is UTC:  # the usual case: the gateway's clock is UTC
        return value.isoformat(" ", "microseconds")[:26]
    if value.utcoffset() is None:
        raise ValueError(f"naive datetime refused (pass an aware datetime): {value!r}")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _binder(type_: Any, dialect: Any) -> Binder:
    if isinstance(type_, UTCDateTime) and dialect.name == "sqlite":
        return sqlite_datetime
    return type_.dialect_impl(dialect).bind_processor(dialect)  # as SQLAlchemy binds it


@contextmanager
def translated(conn: Connection, sql: str) -> Iterator[Any]:
    """A cursor of the connection's driver, whose errors reach callers as SQLAlchemy's own
    (`IntegrityError` for a duplicate key, and so on), as from `conn.execute`."""
    dbapi = conn.dialect.loaded_dbapi
    try:
        yield conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    except dbapi.Error as exc:
        raise DBAPIError.instance(sql, None, exc, dbapi.Error, dialect=conn.dialect) from exc


def python_default(default: Any) -> Any:
    """The value a column's Python-side default gives (a scalar, or a callable's result)."""
    if default.is_scalar:
        return default.arg
    if default.is_callable:
        return default.arg(None)  # SQLAlchemy wraps a no-argument callable to take a context
    raise ValueError(f"a default of this kind cannot be computed outside SQLAlchemy: {default!r}")


def _raw_results(compiled: Any, dialect: Any) -> bool:
    """Whether every column a SELECT returns comes back from the driver as SQLAlchemy would give it."""
    return all(column.type.dialect_impl(dialect).result_processor(dialect, None) is None
               for column in compiled.statement.selected_columns)


class _Form:
    """A statement compiled for one dialect: its SQL, and how a dict row becomes its parameters."""

    def __init__(self, statement: Any, columns: Sequence[str] | None, dialect: Any):
        compiled = statement.compile(dialect=dialect, column_keys=list(columns) if columns is not None else None)
        if getattr(statement, "is_select", False) and not _raw_results(compiled, dialect):
            raise ValueError("Prepared runs SELECTs only when no column needs a result processor")
        self.sql = str(compiled)
        names = tuple(compiled.positiontup or ())
        self._get = itemgetter(*names) if len(names) > 1 else (lambda row: (row[names[0]],))
        binders = [(i, _binder(compiled.binds[name].type, dialect)) for i, name in enumerate(names)]
        self._binders = tuple((i, bind) for i, bind in binders if bind is not None)
        # Columns the rows leave out but SQLAlchemy would fill from a Python-side default.
        given = set(columns) if columns is not None else set(names)
        self._defaults = tuple((name, statement.table.c[name].default) for name in names if name not in given)

    def values(self, row: Mapping[str, Any]) -> list[Any]:
        if self._defaults:
            row = {**row, **{name: python_default(default) for name, default in self._defaults}}
        values = list(self._get(row))
        for i, bind in self._binders:
            values[i] = bind(values[i])
        return values


class Prepared:
    """A Core statement, run with dict rows. An INSERT names its `columns` (each row gives every
    one of them: no Python-side defaults run here); any other statement uses named bindparams.

    SQLite and PostgreSQL (asyncpg) run it on the driver's cursor; asyncpg prepares each
    statement text once per connection (SQLAlchemy's adapter keeps them)."""

    def __init__(self, statement: Any, columns: Sequence[str] | None = None, *, postgresql_only: bool = False):
        self.statement = statement
        self._columns = columns
        self._forms: dict[Any, _Form] = {}
        # Compiled now, so that a statement it cannot run fails at import.
        first = _POSTGRESQL if postgresql_only else _SQLITE
        self._first = (first, self._form(first))

    def _form(self, dialect: Any) -> _Form:
        form = self._forms.get(dialect)
        if form is None:
            if len(self._forms) > 16:  # one per engine's dialect; a test run makes many engines
                self._forms = dict([self._first])
            form = self._forms[dialect] = _Form(self.statement, self._columns, dialect)
        return form

    @property
    def sql(self) -> str:
        return self._first[1].sql

    def executemany(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
        """Run for every row; return the number of rows changed (all rows, summed), or -1 where
        the driver cannot count them (asyncpg)."""
        if not rows:
            return 0
        if conn.dialect.name not in _ON_CURSOR:
            return conn.execute(self.statement, [dict(row) for row in rows]).rowcount
        form = self._form(conn.dialect)
        with translated(conn, form.sql) as cursor:
            cursor.executemany(form.sql, [form.values(row) for row in rows])
            return cursor.rowcount if conn.dialect.name == "sqlite" else -1

    def fetch(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run a SELECT; its rows as tuples."""
        if conn.dialect.name not in _ON_CURSOR:
            return [tuple(row) for row in conn.execute(self.statement, dict(params))]
        form = self._form(conn.dialect)
        with translated(conn, form.sql) as cursor:
            cursor.execute(form.sql, form.values(params))
            return [tuple(row) for row in cursor.fetchall()]

    def insert(self, conn: Connection, row: Mapping[str, Any]) -> int | None:
        """Run an INSERT for one row; its new id, or None if the row was skipped (ON CONFLICT
        DO NOTHING)."""
        if conn.dialect.name != "sqlite":  # (asyncpg has no lastrowid)
            result = conn.execute(self.statement, dict(row))
            return int(result.inserted_primary_key[0]) if result.rowcount == 1 else None
        form = self._form(conn.dialect)
        with translated(conn, form.sql) as cursor:
            cursor.execute(form.sql, form.values(row))
            return cursor.lastrowid if cursor.rowcount == 1 else None


_ON_CURSOR = frozenset({"sqlite", "postgresql"})
