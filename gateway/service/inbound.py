"""An inbound partner message is applied once: both services keep it verbatim under its
idempotency key, and a copy of it (by meaning: the canonical content hash) gets the
confirmation stored with the first one and changes nothing (docs/message-order-and-duplicates.md).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from ..messages import ErrorType, Fault, Inbound
from ..messages.codec import format_datetime
from ..messages.identity import content_sha256
from ..store import queries
from ..store.queries import MessageKey


def inbound_key(inbound: Inbound, sender: str) -> MessageKey:
    """The raw_messages key of a message `sender` sent us."""
    header = inbound.message.header
    return MessageKey(
        direction="in", partner_agency=sender, kind=inbound.kind,
        requesting_agency=str(header.requesting_agency_id),
        requesting_agency_request_id=header.requesting_agency_request_id,
        message_timestamp=format_datetime(header.timestamp), content_sha256=content_sha256(inbound.root),
    )


def store_if_new(conn: Connection, messages: list[tuple[MessageKey, bytes, datetime, bytes | None]]
                 ) -> dict[MessageKey, int] | bytes:
    """Store messages (key, body, received_at, confirmation) with distinct keys; their ids by key.
    A single message stored before gives its stored confirmation instead. (For a group, a key
    missing from the answer is one stored before: the caller decides what that means.)"""
    stored = queries.insert_raw_messages(conn, messages)
    if len(messages) == 1 and not stored:
        return stored_confirmation(conn, messages[0][0])
    return stored


def stored_confirmation(conn: Connection, key: MessageKey) -> bytes:
    """The confirmation given for the message first stored with this key."""
    stored = queries.find_raw_message(conn, key)
    if stored is None or stored["confirmation"] is None:
        raise queries.IntegrityError("raw message stored without a confirmation", None, Exception(str(key)))
    return stored["confirmation"]


def refusal(kind: str, path: str, text: str) -> list[Fault]:
    """The fault that answers a message we read but cannot apply."""
    return [Fault(ErrorType.UnrecognisedDataValue, f"/ISO18626Message/{kind}/{path}: {text}")]
