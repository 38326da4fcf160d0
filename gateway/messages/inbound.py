"""Decode inbound bytes: hardened parse, envelope check, version choice, schema validation, model.

`decode()` either returns an `Inbound` or raises `MessageError` carrying the faults and what
could be salvaged of the header, so any message, even one that does not parse, can be answered
with a confirmation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from .codec import VERSION_ATTR, read_message
from .codes import Version
from .faults import Fault, badly_formed, classify_schema_errors, element_path
from .lengths import length_faults
from .plan import Q, ROOT_TAG
from .schemas import schema_for

DEFAULT_MAX_BYTES = 1024 * 1024
DEFAULT_MAX_DEPTH = 32
KINDS = (
    "requestingAgencyMessageConfirmation",
    "supplyingAgencyMessageConfirmation",
    "requestConfirmation",
    "requestingAgencyMessage",
    "supplyingAgencyMessage",
    "request",
)
_KIND_IN_BYTES = re.compile(rb"<(?:[\w.-]+:)?(" + b"|".join(k.encode() for k in KINDS) + rb")[\s/>]")

# No DTDs, no entity expansion, no network, libxml2's own depth and size guards kept on.
_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_blank_text=False,
)


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH
    max_faults: int = 5  # 2021 allows several errorData; 2017 gets the first


@dataclass(slots=True)
class Inbound:
    message: Any
    kind: str
    version: Version
    version_attribute: str | None
    root: etree._Element


@dataclass(slots=True)
class MessageError(Exception):
    faults: list[Fault]
    kind: str | None = None
    version: Version | None = None
    root: etree._Element | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return "; ".join(str(f) for f in self.faults)

    @property
    def first(self) -> Fault:
        return self.faults[0]


def select_version(attribute: str | None, configured: Version | None = None) -> Version | None:
    """The partner's configured version wins, else the ill:version value (docs/protocol.md)."""
    if configured is not None:
        return configured
    if attribute is None:
        return None
    value = attribute.strip()
    if value.startswith("2021"):
        return Version.V2021
    if value in ("1.0", "1.1", "1.2", "v1_2_2017") or value.startswith("v1_") or value.startswith("1."):
        return Version.V2017
    return None


def guess_kind(data: bytes) -> str | None:
    """The message kind named by the first matching tag in raw bytes, for answering garbage."""
    match = _KIND_IN_BYTES.search(data[:4096])
    return match.group(1).decode() if match else None


def parse_xml(data: bytes, limits: Limits = Limits()) -> etree._Element:
    """Hardened parse. Raises MessageError(BadlyFormedMessage) on anything suspicious."""
    if len(data) > limits.max_bytes:
        raise MessageError([badly_formed(f"message is {len(data)} bytes; the limit is {limits.max_bytes}")])
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise MessageError([badly_formed("DTDs and entity declarations are not accepted")])
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise MessageError([badly_formed(f"not well-formed XML: {exc.msg}")]) from None
    if root.getroottree().docinfo.doctype:  # e.g. a UTF-16 document slipping past the byte scan
        raise MessageError([badly_formed("DTDs and entity declarations are not accepted")])
    return root


def _too_deep(root: etree._Element, max_depth: int) -> etree._Element | None:
    for el in root.iter():
        depth = 0
        node = el
        while node is not None and depth <= max_depth:
            node = node.getparent()
            depth += 1
        if depth > max_depth:
            return el
    return None


def _body(root: etree._Element) -> etree._Element | None:
    for child in root:
        if isinstance(child.tag, str):
            return child
    return None


def check_envelope(root: etree._Element) -> str:
    """The message kind, after checking what the schema cannot: the root and a non-empty envelope."""
    if root.tag != Q + ROOT_TAG:
        qname = etree.QName(root)
        where = f"namespace {qname.namespace!r}" if qname.namespace else "no namespace"
        raise MessageError(
            [badly_formed(f"/{qname.localname}: root element must be ISO18626Message in namespace "
                          f"http://illtransactions.org/2013/iso18626 (got {qname.localname} in {where})")],
            kind=qname.localname if qname.localname in KINDS else None,
            root=root,
        )
    body = _body(root)
    if body is None:
        raise MessageError([badly_formed("/ISO18626Message: empty envelope, no message inside")], root=root)
    return etree.QName(body).localname


def decode(data: bytes, *, version: Version | None = None, limits: Limits = Limits()) -> Inbound:
    root = parse_xml(data, limits)
    return decode_tree(root, version=version, limits=limits)


def decode_tree(root: etree._Element, *, version: Version | None = None, limits: Limits = Limits()) -> Inbound:
    kind = check_envelope(root)
    attribute = root.get(VERSION_ATTR)
    if attribute is None:
        attribute = root.get("version")  # unqualified: only used to choose; the schema will object
    chosen = select_version(attribute, version)
    candidates = [chosen] if chosen else [Version.V2017, Version.V2021]
    errors = None
    for candidate in candidates:
        schema = schema_for(candidate)
        if schema.validate(root):
            message = read_message(root, candidate, body=_body(root), kind=kind)
            too_long = length_faults(message, kind)
            if too_long:  # valid, but longer than the gateway can keep: refused before any storage
                raise MessageError(too_long[:limits.max_faults], kind=kind, version=candidate, root=root)
            return Inbound(message, kind, candidate, attribute, root)
        if errors is None:
            errors = (candidate, schema.error_log)
    failed_version, log = errors  # type: ignore[misc]
    deep = _too_deep(root, limits.max_depth)
    if deep is not None:
        faults = [badly_formed(f"{element_path(deep.getparent())}: nesting deeper than {limits.max_depth} levels")]
    else:
        faults = classify_schema_errors(root, log, failed_version, limits.max_faults)
    raise MessageError(faults, kind=kind, version=failed_version, root=root)
