"""Statements for a whole group of rows on PostgreSQL, with one array parameter per column.

`unnest($1::BIGINT[], $2::VARCHAR(64)[], ...)` turns the arrays back into rows inside the
database, so a group of any size is one round trip and one statement text: the driver prepares
it once per connection, where a multi-row VALUES list would be new text (a new plan) for every
group size. The inbound path writes a group of messages this way (docs/architecture.md, group
commit): its raw messages with one INSERT, then everything else it changes with one statement
(`GroupWrite`: the request updates, rota entries, history and general messages, each a
data-modifying WITH query). The SQL is built from the table definitions, so the schema still
has one source.

Values go through each column type's bind processor, as SQLAlchemy would send them; JSON
values travel as text and are cast back in the statement (an array of JSONB would need the
driver's JSON codec applied per element).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, Boolean, Column, Connection, Table

from .prepared import python_default, translated

_MISSING = object()
_FLAG = Boolean()


def _is_json(column: Any, dialect: Any) -> bool:
    return isinstance(column.type.dialect_impl(dialect), JSON)


def _element_type(column: Any, dialect: Any) -> str:
    return "TEXT" if _is_json(column, dialect) else column.type.compile(dialect=dialect)


def _value(column: Any, name: str, dialect: Any) -> str:
    return f"u.{name}::JSONB" if _is_json(column, dialect) else f"u.{name}"


def _unnest(columns: Sequence[Any], names: Sequence[str], dialect: Any, first: int = 1) -> str:
    params = ", ".join(f"${i}::{_element_type(column, dialect)}[]" for i, column in enumerate(columns, first))
    return f"unnest({params}) AS u({', '.join(names)})"


class _Statement:
    """SQL text and, per array, the column whose type binds its values."""

    def __init__(self, sql: str, columns: Sequence[Any], dialect: Any):
        self.sql = sql
        self._binders = [column.type.dialect_impl(dialect).bind_processor(dialect) for column in columns]

    def fetch(self, conn: Connection, arrays: list[list[Any]]) -> list[tuple[Any, ...]]:
        """Run with these arrays (one per column, in order); the rows it returns."""
        for values, bind in zip(arrays, self._binders):
            if bind is not None:
                values[:] = [bind(value) for value in values]
        with translated(conn, self.sql) as cursor:
            cursor.execute(self.sql, arrays)
            return [tuple(row) for row in cursor.fetchall()]


def _columns_of(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows of values -> one list per column."""
    return [list(values) for values in zip(*rows)] if rows else [[] for _ in range(width)]


# --- the parts of a statement: each a WITH query named `name`, its arrays numbered from `first` ----


class _VersionedUpdate:
    """UPDATE rows at an expected version to a new one, locking them in key order first: two
    transactions updating the same rows then wait for each other instead of deadlocking. A row
    that another transaction moved on meanwhile is not locked (PostgreSQL checks the version
    again on the newest row once it may lock it), so it is neither updated nor counted. Rows
    may set different columns: each column has a flag array saying which rows set it."""

    def __init__(self, table: Table, key: str, columns: tuple[str, ...]):
        self.table, self.key, self.columns = table, key, columns
        c = table.c
        self.array_columns = [c[key], c.version, c.version, *(c[name] for name in columns),
                              *(Column(f"s_{name}", _FLAG) for name in columns)]

    def values(self, row: Mapping[str, Any]) -> list[Any]:
        given = [row.get(name, _MISSING) for name in self.columns]
        return [row["_key"], row["_version"], row["_new_version"],
                *(None if value is _MISSING else value for value in given),
                *(value is not _MISSING for value in given)]

    def ctes(self, name: str, first: int, dialect: Any) -> list[str]:
        t, key = self.table.name, self.key
        names = ["_key", "_version", "_new_version", *(f"c_{col}" for col in self.columns),
                 *(f"s_{col}" for col in self.columns)]
        sets = ", ".join([*(f"{col} = CASE WHEN u.s_{col} THEN {_value(self.table.c[col], f'c_{col}', dialect)} "
                            f"ELSE {t}.{col} END" for col in self.columns), "version = u._new_version"])
        return [
            f"{name}_u AS MATERIALIZED (SELECT * FROM {_unnest(self.array_columns, names, dialect, first)})",
            f"{name}_locked AS MATERIALIZED (SELECT r.{key} FROM {t} AS r JOIN {name}_u AS u ON r.{key} = u._key "
            f"AND r.version = u._version ORDER BY r.{key} FOR UPDATE OF r)",
            f"{name} AS (UPDATE {t} SET {sets} FROM {name}_u AS u, {name}_locked AS locked "
            f"WHERE {t}.{key} = u._key AND locked.{key} = u._key RETURNING {t}.{key})",
        ]


class _UpdateWhere:
    """UPDATE the rows whose `keys` columns match, setting `columns` (no version check)."""

    def __init__(self, table: Table, keys: tuple[str, ...], columns: tuple[str, ...]):
        self.table, self.keys, self.columns = table, keys, columns
        self.array_columns = [table.c[name] for name in (*keys, *columns)]

    def values(self, row: Mapping[str, Any]) -> list[Any]:
        return [row[name] for name in (*self.keys, *self.columns)]

    def ctes(self, name: str, first: int, dialect: Any) -> list[str]:
        t = self.table.name
        names = [*(f"k_{k}" for k in self.keys), *(f"c_{col}" for col in self.columns)]
        sets = ", ".join(f"{col} = {_value(self.table.c[col], f'c_{col}', dialect)}" for col in self.columns)
        match = " AND ".join(f"{t}.{k} = u.k_{k}" for k in self.keys)
        return [f"{name} AS (UPDATE {t} SET {sets} FROM (SELECT * FROM "
                f"{_unnest(self.array_columns, names, dialect, first)}) AS u WHERE {match} RETURNING 1)"]


class _Insert:
    def __init__(self, table: Table, columns: tuple[str, ...]):
        self.table, self.columns = table, columns
        self.array_columns = [table.c[name] for name in columns]

    def values(self, row: Mapping[str, Any]) -> list[Any]:
        return [row[name] for name in self.columns]

    def ctes(self, name: str, first: int, dialect: Any) -> list[str]:
        names = [f"c_{col}" for col in self.columns]
        values = ", ".join(_value(column, n, dialect) for column, n in zip(self.array_columns, names))
        return [f"{name} AS (INSERT INTO {self.table.name} ({', '.join(self.columns)}) "
                f"SELECT {values} FROM {_unnest(self.array_columns, names, dialect, first)} RETURNING 1)"]


Part = _VersionedUpdate | _UpdateWhere | _Insert


@lru_cache(maxsize=256)  # per engine's dialect: a test run makes many engines
def _combined(parts: tuple[Part, ...], dialect: Any) -> _Statement:
    """One statement running every part, answering with the rows each part changed."""
    ctes: list[str] = []
    first = 1
    for i, part in enumerate(parts):
        ctes.extend(part.ctes(f"p{i}", first, dialect))
        first += len(part.array_columns)
    counts = ", ".join(f"(SELECT count(*) FROM p{i})" for i in range(len(parts)))
    columns = [column for part in parts for column in part.array_columns]
    return _Statement(f"WITH {', '.join(ctes)} SELECT {counts}", columns, dialect)


@lru_cache(maxsize=1024)
def _part(kind: type, table: Table, *shape: tuple[str, ...]) -> Part:
    """Parts are cached by shape, so that equal statements are the same object (and text)."""
    return kind(table, *shape)


def _filled(table: Table, rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, ...], list[Mapping[str, Any]]]:
    """Rows by their set of columns, each with the Python-side defaults of the columns it leaves
    out (as SQLAlchemy would fill them in)."""
    filled = {}
    for columns, group in _by_columns(rows, ()).items():
        defaults = {c.name: c.default for c in table.c if c.name not in columns and c.default is not None}
        if defaults:
            group = [{**row, **{name: python_default(d) for name, d in defaults.items()}} for row in group]
            columns = tuple(sorted((*columns, *defaults)))
        filled[columns] = group
    return filled


class GroupWrite:
    """The writes of one group, sent to PostgreSQL as one statement by `run` (one round trip
    instead of one per table). Add the version-checked update first: the statement reads the
    parts' counts in the order they were added, which runs them in that order, so the rows it
    guards are locked before the others are written. (PostgreSQL's documentation leaves the
    order of WITH sub-statements open; all of them see the same snapshot, so only the order in
    which locks are taken could differ, never what is written.)"""

    def __init__(self) -> None:
        self._parts: list[tuple[Part, Sequence[Mapping[str, Any]]]] = []
        self._expected: dict[int, int] = {}  # part index -> rows it must change

    def update_versioned(self, table: Table, rows: Sequence[Mapping[str, Any]], *, key: str = "id") -> None:
        """Rows as for `update_versioned`; `run` says False unless every one was at its version."""
        if rows:
            columns = tuple(sorted({name for row in rows for name in row if not name.startswith("_")}))
            self._expected[len(self._parts)] = len(rows)
            self._parts.append((_part(_VersionedUpdate, table, key, columns), rows))

    def update_where(self, table: Table, keys: tuple[str, ...], rows: Sequence[Mapping[str, Any]]) -> None:
        """Set the other columns of each row on the table's rows matching its `keys` columns."""
        for columns, group in _by_columns(rows, keys).items():
            self._parts.append((_part(_UpdateWhere, table, keys, columns), group))

    def insert(self, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        for columns, group in _filled(table, rows).items():
            self._parts.append((_part(_Insert, table, columns), group))

    def run(self, conn: Connection) -> bool:
        """Write everything; False if a versioned update found a row moved on (the caller rolls
        the transaction back: the other parts have been written too)."""
        if not self._parts:
            return True
        counts = self._fetch(conn)
        return all(counts[i] == expected for i, expected in self._expected.items())

    def _fetch(self, conn: Connection) -> tuple[int, ...]:
        """Run the combined statement: each part's rows become its own arrays."""
        statement = _combined(tuple(part for part, _ in self._parts), conn.dialect)
        arrays: list[list[Any]] = []
        for part, rows in self._parts:
            arrays.extend(_columns_of([part.values(row) for row in rows], len(part.array_columns)))
        return statement.fetch(conn, arrays)[0]


def _by_columns(rows: Sequence[Mapping[str, Any]], keys: tuple[str, ...]) -> dict[tuple[str, ...], list[Mapping[str, Any]]]:
    """Rows by the set of their columns other than `keys` (sorted names)."""
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(name for name in row if name not in keys)), []).append(row)
    return groups


def update_versioned(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], *,
                     key: str = "id") -> int:
    """Version-checked updates of several rows in one statement; each row gives `_key`,
    `_version` (what it must be at), `_new_version` and the columns it sets (rows may set
    different ones). Returns how many rows were at their expected version (and so were updated)."""
    if not rows:
        return 0
    write = GroupWrite()
    write.update_versioned(table, rows, key=key)
    return write._fetch(conn)[0]


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
    return statement.fetch(conn, _columns_of(rows, len(columns)))
