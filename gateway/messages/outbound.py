"""Encode model objects to bytes, validated against our schema for the target version."""

from __future__ import annotations

from typing import Any

from lxml import etree

from .codec import to_tree
from .codes import Version
from .schemas import schema_for


class InvalidOutboundMessage(ValueError):
    """We were about to send something our own schema refuses: a bug, never sent."""


def encode(message: Any, version: Version, *, validate: bool = True) -> bytes:
    root = to_tree(message, version)
    if validate:
        schema = schema_for(version)
        if not schema.validate(root):
            first = schema.error_log[0]
            raise InvalidOutboundMessage(f"{message.KIND} ({version.label}): {first.path}: {first.message}")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
