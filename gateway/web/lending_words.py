"""Lending requests in staff words: the requesting library's name, why a request needs
attention, who did what in its history."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..core.lending import LendingStatus
from ..core.wording import staff_value
from .marks import attention_words

ATTENTION = {
    "cancel_requested": "the requesting library asks to cancel",
    "renew_requested": "the requesting library asks to renew",
    "lost": "the item was reported lost",
    "reminder": "the requesting library sent a reminder",
    "send_failed": "one of our messages could not be delivered",
    "message_unread": "unread message from the requesting library",
}


def attention_text(flags: Iterable[str]) -> str:
    words = [ATTENTION.get(flag) or attention_words(flag) for flag in flags]
    return "; ".join(words) if words else "needs attention"


def library_name(partners: Mapping[str, Any], agency: str | None, given: str | None = None) -> str:
    """A configured partner's name, else the name its request gave, else its agency symbol."""
    partner = partners.get(agency) if agency else None
    return partner.name if partner is not None else (given or agency or "")


def status_label(code: str | None) -> str:
    try:
        return LendingStatus(code).label if code else ""
    except ValueError:
        return code or ""


def actor_words(actor: str | None, partners: Mapping[str, Any]) -> str:
    """'staff:lena' → 'lena (staff)'; 'partner:ISIL:X' → the library's name; 'system' as is."""
    if not actor:
        return ""
    kind, _, rest = actor.partition(":")
    if kind == "staff" and rest:
        return f"{rest} (staff)"
    if kind == "partner" and rest:
        return library_name(partners, rest)
    return actor


def day(value: Any) -> str:
    """A due date or needed-by date: the day alone (they travel as midnight UTC datetimes)."""
    if not value:
        return ""
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return text[:10]


def event_words(event: str) -> str:
    return event.replace("_", " ").replace(":", " ").strip().capitalize()


def detail_words(detail: Any) -> str:
    """A history entry's detail as `name: value; ...`."""
    if not detail:
        return ""
    if isinstance(detail, Mapping):
        return "; ".join(f"{str(k).replace('_', ' ')}: {staff_value(v)}" for k, v in detail.items()
                         if v not in (None, "", [], {}))
    return staff_value(detail)
