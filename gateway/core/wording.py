"""History text for staff: field values written as staff would write them.

A history line is read by people, not parsed: a date is 2030-02-28 (not `datetime.date(...)`),
an amount 12.50, a flag yes / no, a cleared field or a removed parameter says so in words.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def staff_value(value: Any) -> str:
    """One value as a staff member would type it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="minutes")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, (tuple, list)):
        return ", ".join(_pair(v) for v in value)
    return str(value)


def _pair(value: Any) -> str:
    if isinstance(value, (tuple, list)) and len(value) == 2:  # an identifier (type, value)
        return f"{value[0]} {value[1]}"
    return staff_value(value)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == () or value == []


def describe_changes(changes: Mapping[str, Any], *, cleared: str = "cleared") -> str:
    """`name: value` per change, `name cleared` for an emptied one, joined by "; "."""
    return "; ".join(f"{name} {cleared}" if _empty(value) else f"{name}: {staff_value(value)}"
                     for name, value in changes.items())
