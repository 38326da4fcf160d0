"""Lending policy, and the calendar rule of the expiry timer (pure: no clock, no I/O).

A request nobody answered (still NEW) for `expire_after_days` days is answered Unfilled
automatically (ReShare does the same after 3 days, weekends optionally excluded; see docs/state-machines.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from ..errors import InvalidInput

SATURDAY = 5


@dataclass(frozen=True)
class LendingPolicy:
    # Days a NEW request may wait for a staff answer; None: never expire.
    expire_after_days: int | None = 3
    # Count only Monday to Friday (a request received at the weekend starts counting on Monday 00:00).
    exclude_weekends: bool = False
    # The library's time zone, for "which day is it". None: the zone of the received time.
    tz: tzinfo | None = None
    # reasonUnfilled sent when a request expires (open code list ReasonUnfilled).
    expiry_reason_unfilled: str = "NotAvailableForILL"

    def __post_init__(self) -> None:
        days = self.expire_after_days
        if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 1):
            raise ValueError(f"policy expire_after_days must be a positive integer or None; got {days!r}")


DEFAULT_LENDING_POLICY = LendingPolicy()


def expires_at(received_at: datetime, policy: LendingPolicy) -> datetime | None:
    """When a request received at `received_at` and still unanswered expires, or None (never).

    Without weekends excluded: exactly N days later. With weekends excluded: N weekdays later at
    the same local time of day (wall clock, so a DST change does not shift it); a request that
    arrives on a Saturday or Sunday starts counting on Monday 00:00. Friday 2026-11-27 10:00
    + 2 weekdays = Tuesday 2026-12-01 10:00. The result is in the policy's zone (else the
    received time's)."""
    if received_at.tzinfo is None or received_at.utcoffset() is None:
        raise InvalidInput("received_at", "must be a timezone-aware datetime")
    days = policy.expire_after_days
    if days is None:
        return None
    local = received_at.astimezone(policy.tz) if policy.tz is not None else received_at
    if not policy.exclude_weekends:
        return local + timedelta(days=days)
    if local.weekday() >= SATURDAY:
        monday = local.date() + timedelta(days=7 - local.weekday())
        local = local.replace(year=monday.year, month=monday.month, day=monday.day,
                              hour=0, minute=0, second=0, microsecond=0)
    day = local
    left = days
    while left:
        day = day + timedelta(days=1)  # aware + timedelta is wall-clock arithmetic
        if day.weekday() < SATURDAY:
            left -= 1
    return day
