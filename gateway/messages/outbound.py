"""Encode model objects to bytes, validated against our schema for the target version."""

from __future__ import annotations

from typing import Any

from lxml import etree

from .codec import to_text, xml_char_error
from .codes import Version
from .inbound import _PARSER
from .schemas import schema_for


class InvalidOutboundMessage(ValueError):
    """We were about to send something our own schema refuses: a bug, never sent."""


def encode(message: Any, version: Version, *, validate: bool = True) -> bytes:
    """The bytes to send. With `validate`, exactly these bytes are parsed and schema-checked."""
    where = f"{message.KIND} ({version.label})"
    text = to_text(message, version)
    if not validate:
        problem = xml_char_error(text)
        if problem:
            raise InvalidOutboundMessage(f"{where}: {problem}")
        return text.encode("utf-8")
    try:
        data = text.encode("utf-8")
        root = etree.fromstring(data, _PARSER)  # refuses characters XML 1.0 forbids, too
    except (UnicodeEncodeError, etree.XMLSyntaxError) as exc:  # lone surrogates; bad characters
        raise InvalidOutboundMessage(f"{where}: {xml_char_error(text) or exc}") from None
    schema = schema_for(version)
    if not schema.validate(root):
        first = schema.error_log[0]
        raise InvalidOutboundMessage(f"{where}: {first.path}: {first.message}")
    return data
