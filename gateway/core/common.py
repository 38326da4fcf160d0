"""What both machines share: the staff events and records that mean the same when we borrow and
when we lend (a note, a general message, a timer tick, a history line)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any, ClassVar, Literal, Mapping

from gateway.messages.codes import Status

from .errors import InvalidInput


def aware(value: datetime | None, name: str) -> None:
    """The core has no clock and no zone of its own: every time it is given must carry one."""
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise InvalidInput(name, "must be a timezone-aware datetime")


def with_changes(details: Any, changes: Mapping[str, Any], what: str) -> Any:
    """`details` (a request's dataclass of fields) with some changed; an unknown name is refused."""
    known = {f.name for f in fields(details)}
    for name in changes:
        if name not in known:
            raise InvalidInput(name, f"is not a field of a {what}")
    return replace(details, **changes)


# --- events --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StaffEvent:
    """A staff (or patron) action. `key` is its event key in the transition table; `api` is its
    kebab-case name in the HTTP API (`allowed_actions`, `/actions/{name}`, 409 messages)."""

    key: ClassVar[str]
    api: ClassVar[str]
    at: datetime
    by: str = "staff"  # user id; "patron:<id>" when a patron acts

    def __post_init__(self) -> None:
        aware(self.at, "at")

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The table keys this event can have (one, unless its key depends on an answer)."""
        return (cls.key,)


def api_names(*events: type[StaffEvent]) -> dict[str, str]:
    """event key -> API name, for one side's staff events; a key with two names is a mistake."""
    names: dict[str, str] = {}
    for event in events:
        for key in event.keys():
            if names.setdefault(key, event.api) != event.api:
                raise AssertionError(f"event key {key} has two API names: {names[key]}, {event.api}")
    return names


@dataclass(frozen=True, kw_only=True)
class SendMessage(StaffEvent):
    """General message: a Notification to the partner."""

    key: ClassVar[str] = "send_message"
    api: ClassVar[str] = "send-message"
    note: str


@dataclass(frozen=True, kw_only=True)
class AddNote(StaffEvent):
    """Internal note; nothing is sent."""

    key: ClassVar[str] = "add_note"
    api: ClassVar[str] = "add-note"
    text: str


@dataclass(frozen=True, kw_only=True)
class MarkMessagesRead(StaffEvent):
    """Staff have read the partner's general messages: they are no longer unread."""

    key: ClassVar[str] = "mark_messages_read"
    api: ClassVar[str] = "mark-messages-read"


@dataclass(frozen=True, kw_only=True)
class Tick:
    """Time passed: deadlines are checked against `now`."""

    now: datetime

    def __post_init__(self) -> None:
        aware(self.now, "now")

    @property
    def at(self) -> datetime:
        return self.now


# --- records -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    actor: str  # staff user, "patron:...", a partner agency, or "system"
    event: str  # the transition table's event key
    from_status: Any  # the side's status; None: the request was born
    to_status: Any
    detail: str = ""


@dataclass(frozen=True)
class GeneralMessage:
    """The "general messages" tab: Notifications exchanged with partners."""

    at: datetime
    partner: str
    direction: Literal["in", "out"]
    note: str
    status: Status | None = None


@dataclass(frozen=True)
class Note:
    at: datetime
    by: str
    text: str
