"""What makes two ISO 18626 messages the same message: a digest of their canonical form.

A partner that repeats a message may not repeat its bytes (another serialiser, a proxy that
re-indents, a different encoding); the duplicate key therefore hashes the message's canonical
form instead of its bytes (docs/message-order-and-duplicates.md).
"""

from __future__ import annotations

import copy
import hashlib

from lxml import etree


def canonical_form(root: etree._Element) -> bytes:
    """Canonical XML 1.0 (no comments) of the message, after dropping whitespace-only text
    between elements (indentation). Text content is kept as it is. `root` is not changed."""
    if any(_blank_text(element) or _blank_tail(element) for element in root.iter()):
        root = copy.deepcopy(root)  # (a compact message, the usual case, needs no copy)
        for element in root.iter():
            if _blank_text(element):
                element.text = None
            if _blank_tail(element):
                element.tail = None
    return etree.tostring(root, method="c14n", with_comments=False)


def _blank_text(element: etree._Element) -> bool:
    """Indentation before an element's first child."""
    return len(element) > 0 and element.text is not None and not element.text.strip()


def _blank_tail(element: etree._Element) -> bool:
    """Indentation after an element."""
    return element.tail is not None and not element.tail.strip()


def content_sha256(root: etree._Element) -> str:
    """Hex SHA-256 of `canonical_form(root)`: the content part of a message's duplicate key."""
    return hashlib.sha256(canonical_form(root)).hexdigest()
