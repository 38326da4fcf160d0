"""The marks a request carries on the list and its page: needs attention (with the reason in
words) and due soon (a loan due within `[web] due_soon_days`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any


def due_soon(due: Any, today: date, days: int) -> bool:
    """True when `due` (a date, a datetime or their ISO text) is at most `days` days away (or past)."""
    if due is None or due == "":
        return False
    if isinstance(due, str):
        try:
            due = date.fromisoformat(due[:10])
        except ValueError:
            return False
    if isinstance(due, datetime):
        due = due.date()
    return (due - today).days <= days


ATTENTION_WORDS = {
    "no_partners": "no partner found",
    "retry_offered": "the partner offers a retry",
    "send_failed": "sending failed",
    "cancel_refused": "the partner refused to cancel",
    "cancel_overdue": "no answer to the cancel request",
    "message_unread": "unread message from the partner",
    "conditions_offered": "the partner offers conditions",
    "rota_exhausted": "no partner left in the rota",
}


def attention_words(reason: str | None) -> str:
    """The attention reason (a flag name or several, comma-separated) in staff words."""
    if not reason:
        return "needs attention"
    return "; ".join(ATTENTION_WORDS.get(part.strip(), part.strip().replace("_", " ")) for part in reason.split(","))
