"""A stored ISO 18626 message as staff read it: indented XML text.

The partner wrote every byte, so the parser resolves no entities, loads no DTD and fetches
nothing from the network; a message it cannot parse (or one with a DOCTYPE) is shown as it was
received. Either way the result is text, escaped by the template like everything else.
"""

from __future__ import annotations

from lxml import etree

LIMIT = 2_000_000  # bytes shown of one message; ISO messages are a few KB


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True, dtd_validation=False,
                           huge_tree=False, remove_blank_text=True, remove_comments=False)


def as_text(body: bytes) -> str:
    """The bytes as text (undecodable bytes shown as U+FFFD)."""
    return body[:LIMIT].decode("utf-8", errors="replace")


def formatted(body: bytes | None) -> tuple[str, bool]:
    """(text to show, True when it is the indented XML; False: the raw text as received)."""
    if not body:
        return "", False
    if len(body) > LIMIT or b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        return as_text(body), False
    try:
        root = etree.fromstring(body, _parser())
    except (etree.XMLSyntaxError, ValueError):
        return as_text(body), False
    return etree.tostring(root, pretty_print=True, encoding="unicode"), True
