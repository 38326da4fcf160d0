"""The rota: the ordered list of lending partners of one borrowing request.

Entries are never deleted once a partner has seen the request (rejected, cancelled... stay as
the request's record); only pending entries can be removed. At most one entry is "current":
ACTIVE (request sent, waiting or being answered) or SUPPLIED (the partner shipped). The next
partner is always the first PENDING entry in list order, so staff reorder simply by moving
entries. Partners are keyed by agency symbol "TYPE:VALUE" (Alma refuses duplicates, so do we).
All functions return new tuples.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Iterable

from gateway.messages.codes import Status, YesNo

from .errors import InvalidInput


class EntryState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    SUPPLIED = "supplied"


@dataclass(frozen=True)
class RotaEntry:
    partner: str
    state: EntryState = EntryState.PENDING
    last_status: Status | None = None  # the partner's own last ISO status
    reason: str | None = None  # reasonUnfilled / reasonRetry / why we left it
    answer: YesNo | None = None
    sent_at: datetime | None = None  # our `request` was queued (deadline runs from here)
    confirmed_at: datetime | None = None  # ... and confirmed OK by the partner
    answered_at: datetime | None = None  # first supplyingAgencyMessage since sent_at
    status_requested_at: datetime | None = None  # deadline passed: StatusRequest sent, grace runs
    undelivered: bool = False  # the outbox gave up on our `request`
    awaiting_cancel_response: bool = False  # we sent Cancel when leaving this partner
    loan_conditions: tuple[str, ...] = ()
    offered_costs: tuple[tuple[Decimal, str], ...] = ()
    retry_after: datetime | None = None
    retry_before: datetime | None = None
    # Header timestamp of the latest message of this partner that changed the request: an
    # older one arriving later is stale (docs/message-order-and-duplicates.md).
    status_timestamp: datetime | None = None

    @property
    def is_current(self) -> bool:
        return self.state in (EntryState.ACTIVE, EntryState.SUPPLIED)


Rota = tuple[RotaEntry, ...]


def check_agency(partner: str) -> str:
    kind, sep, value = partner.partition(":")
    if not (sep and kind and value) or partner != partner.strip():
        raise InvalidInput("partner", f"agency must be 'TYPE:VALUE', got {partner!r}")
    return partner


def make_rota(partners: Iterable[str]) -> Rota:
    rota: Rota = ()
    for partner in partners:
        rota = add(rota, partner)
    return rota


def index_of(rota: Rota, partner: str) -> int:
    for i, entry in enumerate(rota):
        if entry.partner == partner:
            return i
    raise InvalidInput("partner", f"{partner} is not in the rota")


def find(rota: Rota, partner: str) -> RotaEntry | None:
    return next((e for e in rota if e.partner == partner), None)


def current_index(rota: Rota) -> int | None:
    return next((i for i, e in enumerate(rota) if e.is_current), None)


def current(rota: Rota) -> RotaEntry | None:
    i = current_index(rota)
    return None if i is None else rota[i]


def first_pending(rota: Rota) -> int | None:
    return next((i for i, e in enumerate(rota) if e.state is EntryState.PENDING), None)


def update(rota: Rota, i: int, **changes: object) -> Rota:
    return rota[:i] + (replace(rota[i], **changes),) + rota[i + 1:]


def add(rota: Rota, partner: str, position: int | None = None) -> Rota:
    check_agency(partner)
    if find(rota, partner) is not None:
        raise InvalidInput("partner", f"{partner} is already in the rota")
    at = len(rota) if position is None else _position(rota, position)
    return rota[:at] + (RotaEntry(partner),) + rota[at:]


def merge(rota: Rota, partners: Iterable[str]) -> Rota:
    """Append the partners not yet in the rota (manual locate re-applies a default rota)."""
    for partner in partners:
        if find(rota, partner) is None:
            rota = add(rota, partner)
    return rota


def remove(rota: Rota, partner: str) -> Rota:
    i = index_of(rota, partner)
    return rota[:i] + rota[i + 1:]


def move_selected(rota: Rota, partners: Iterable[str], position: int) -> Rota:
    """Move the selected entries, in their current order, so the first lands at `position`."""
    partners = tuple(partners)
    chosen = set(partners)
    if len(chosen) != len(partners):
        raise InvalidInput("partner", "a partner is selected twice")
    for partner in chosen:
        index_of(rota, partner)  # unknown partners are an input error
    moving = tuple(e for e in rota if e.partner in chosen)
    rest = tuple(e for e in rota if e.partner not in chosen)
    at = _position(rest, position)
    return rest[:at] + moving + rest[at:]


def move_up(rota: Rota, partner: str) -> Rota:
    i = index_of(rota, partner)
    return rota if i == 0 else move_selected(rota, [partner], i - 1)


def move_down(rota: Rota, partner: str) -> Rota:
    i = index_of(rota, partner)
    return rota if i == len(rota) - 1 else move_selected(rota, [partner], i + 1)


def _position(rota: Rota, position: int) -> int:
    """An insertion point: 0 (first) to len(rota) (last)."""
    if not 0 <= position <= len(rota):
        raise InvalidInput("position", f"position must be between 0 and {len(rota)}, got {position}")
    return position
