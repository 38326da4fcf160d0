"""ISO 18626 messages: code lists, typed model, codec, validation, faults, confirmations.

Pure: no I/O, no database. The usual entry points:

    decode(data)                      -> Inbound (message, kind, version) or raises MessageError
    encode(message, version)          -> bytes, validated against our schema for that version
    answer(inbound_or_error, now)     -> confirmation bytes for whatever came in
"""

from __future__ import annotations

from datetime import datetime

from . import model
from .codes import Action, ErrorType, MessageStatus, ReasonForMessage, Status, Version
from .confirmations import Echo, confirmation
from .faults import Fault
from .inbound import Inbound, Limits, MessageError, decode, guess_kind, select_version
from .outbound import InvalidOutboundMessage, encode

__all__ = [
    "Action", "Echo", "ErrorType", "Fault", "Inbound", "InvalidOutboundMessage", "Limits",
    "MessageError", "MessageStatus", "ReasonForMessage", "Status", "Version", "answer",
    "confirmation", "decode", "encode", "guess_kind", "model", "select_version",
]


def answer(
    received: Inbound | MessageError,
    now: datetime,
    *,
    faults: list[Fault] | None = None,
    data: bytes | None = None,
    version: Version | None = None,
) -> bytes:
    """Confirmation bytes for an inbound message: OK, or ERROR with the given or decoding faults.

    `faults` lets a later stage (unknown request id, illegal transition) refuse a message that
    decoded fine. `data` lets us guess the kind of a message that did not even parse.
    """
    if isinstance(received, Inbound):
        echo, found, reply_version = Echo.of(received.message), faults or [], received.version
    else:
        kind = received.kind or (guess_kind(data) if data else None)
        echo, found = Echo.salvage(received.root, kind), received.faults
        reply_version = received.version
    target = version or reply_version or Version.V2017
    # Echoes of a message that passed the schema are valid by construction (an action the target
    # version lacks is dropped), so its confirmation skips the second schema check: that check
    # cost as much as parsing the message itself. A salvaged echo is checked.
    return encode(confirmation(echo, now, found, target), target, validate=not isinstance(received, Inbound))
