"""Statements for a whole group of rows on PostgreSQL, with one array parameter per column.

`unnest($1::BIGINT[], $2::VARCHAR(64)[], ...)` turns the arrays back into rows inside the
database, so a group of any size is one round trip and one statement text: the driver prepares
it once per connection, where a multi-row VALUES list would be new text (a new plan) for every
group size. The inbound path writes a group of messages this way (docs/architecture.md, group
commit). The SQL is built from the table definitions, so the schema still has one source.

Values go through each column type's bind processor, as SQLAlchemy would send them; JSON
values travel as text and are cast back in the statement (an array of JSONB would need the
driver's JSON codec applied per element).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Connection, Table

from .prepared import translated


def _is_json(column: Any, dialect: Any) -> bool:
    return isinstance(column.type.dialect_impl(dialect), JSON)


def _element_type(column: Any, dialect: Any) -> str:
    return "TEXT" if _is_json(column, dialect) else column.type.compile(dialect=dialect)


def _value(column: Any, name: str, dialect: Any) -> str:
    return f"u.{name}::JSONB" if _is_json(column, dialect) else f"u.{name}"


class _Statement:
    """SQL text and, per array, the column whose type binds its values."""

    def __init__(self, sql: str, columns: Sequence[Any], dialect: Any):
        self.sql = sql
        self._binders = [column.type.dialect_impl(dialect).bind_processor(dialect) for column in columns]

    def arrays(self, rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
        arrays = [list(values) for values in zip(*rows)] if rows else [[] for _ in self._binders]
        for values, bind in zip(arrays, self._binders):
            if bind is not None:
                values[:] = [bind(value) for value in values]
        return arrays

    def fetch(self, conn: Connection, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        with translated(conn, self.sql) as cursor:
            cursor.execute(self.sql, self.arrays(rows))
            return [tuple(row) for row in cursor.fetchall()]


def _unnest(columns: Sequence[Any], names: Sequence[str], dialect: Any) -> str:
    params = ", ".join(f"${i}::{_element_type(column, dialect)}[]" for i, column in enumerate(columns, 1))
    return f"unnest({params}) AS u({', '.join(names)})"


@lru_cache(maxsize=256)  # per engine's dialect: a test run makes many engines
def _versioned_update(table: Table, key: str, columns: tuple[str, ...], dialect: Any) -> _Statement:
    """UPDATE rows at an expected version to a new one, locking them in key order first: two
    transactions updating the same rows then wait for each other instead of deadlocking. A row
    that another transaction moved on meanwhile is not locked (PostgreSQL checks the version
    again on the newest row once it may lock it), so it is neither updated nor returned. Rows
    may set different columns: each column has a flag array saying which rows set it."""
    c = table.c
    boolean = Boolean()
    array_columns = [c[key], c.version, c.version, *(c[name] for name in columns),
                     *(Column(f"s_{name}", boolean) for name in columns)]
    names = ["_key", "_version", "_new_version", *(f"c_{name}" for name in columns),
             *(f"s_{name}" for name in columns)]
    sets = ", ".join([*(f"{name} = CASE WHEN u.s_{name} THEN {_value(c[name], f'c_{name}', dialect)} "
                        f"ELSE {table.name}.{name} END" for name in columns),
                      "version = u._new_version"])
    sql = (
        f"WITH u AS MATERIALIZED (SELECT * FROM {_unnest(array_columns, names, dialect)}), "
        f"locked AS MATERIALIZED (SELECT t.{key} FROM {table.name} AS t JOIN u ON t.{key} = u._key "
        f"AND t.version = u._version ORDER BY t.{key} FOR UPDATE OF t) "
        f"UPDATE {table.name} SET {sets} FROM u, locked "
        f"WHERE {table.name}.{key} = u._key AND locked.{key} = u._key "
        f"RETURNING {table.name}.{key}"
    )
    return _Statement(sql, array_columns, dialect)


def update_versioned(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *,
                     key: str = "id") -> int:
    """Version-checked updates of several rows in one statement; each row gives `_key`,
    `_version` (what it must be at), `_new_version` and the columns it sets (rows may set
    different ones). Returns how many rows were at their expected version (and so were updated)."""
    if not rows:
        return 0
    columns = tuple(sorted({name for row in rows for name in row if not name.startswith("_")}))
    statement = _versioned_update(table, key, columns, conn.dialect)
    _missing = object()
    values = []
    for row in rows:
        given = [row.get(name, _missing) for name in columns]
        values.append([row["_key"], row["_version"], row["_new_version"],
                       *(None if v is _missing else v for v in given), *(v is not _missing for v in given)])
    return len(statement.fetch(conn, values))


@lru_cache(maxsize=256)
def _insert(table: Table, columns: tuple[str, ...], returning: tuple[str, ...], skip_conflicts: bool,
            dialect: Any) -> _Statement:
    array_columns = [table.c[name] for name in columns]
    names = [f"c_{name}" for name in columns]
    values = ", ".join(_value(column, name, dialect) for column, name in zip(array_columns, names))
    sql = (f"INSERT INTO {table.name} ({', '.join(columns)}) "
           f"SELECT {values} FROM {_unnest(array_columns, names, dialect)}"
           + (" ON CONFLICT DO NOTHING" if skip_conflicts else "")
           + (f" RETURNING {', '.join(returning)}" if returning else ""))
    return _Statement(sql, array_columns, dialect)


def insert_many(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]], *,
                returning: Sequence[str] = (), skip_conflicts: bool = False) -> list[tuple[Any, ...]]:
    """INSERT rows (values in the order of `columns`) in one statement; the `returning` columns
    of the rows inserted. With `skip_conflicts`, a row that would break a unique key is left out
    (ON CONFLICT DO NOTHING) and returns nothing."""
    if not rows:
        return []
    statement = _insert(table, tuple(columns), tuple(returning), skip_conflicts, conn.dialect)
    return statement.fetch(conn, rows)
