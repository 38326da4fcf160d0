"""Column types shared by the models.

`UTCDateTime` keeps every datetime timezone-aware: values are converted to UTC on the way in (a naive
value is a bug in the caller and is refused) and come back aware on every backend. SQLite has no time
zone type, so it stores the UTC wall-clock as text in one fixed format (so text order is time order)
and the zone is re-attached on the way out.

`JSONType` is JSON everywhere, JSONB on PostgreSQL; Python `None` is stored as SQL NULL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """Now, aware, in UTC. Only a fallback default: the service layer passes its clock's time."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC (TIMESTAMPTZ on PostgreSQL, text on SQLite)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"UTCDateTime needs a datetime, got {type(value).__name__}: {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime refused (pass an aware datetime): {value!r}")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite's DATETIME storage drops tzinfo anyway; make it explicit that what is stored is UTC.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def json_type() -> Any:
    """A new JSON (JSONB on PostgreSQL) type instance. `MutableDict.as_mutable` tracks columns
    by type *instance*, so a mutable column needs its own."""
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


JSONType: Any = json_type()
