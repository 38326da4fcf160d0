"""Turn validated ISO 18626 XML trees into model objects and model objects into XML.

Both directions walk the per-version plans of `plan.py`. Reading assumes the tree has passed
schema validation (so values are well-typed); elements the plan does not know are skipped.
Writing emits elements in schema order, `ill:version` and `ill:scheme` prefixed, and every
dateTime with a time zone (a value without one is taken as UTC).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from lxml import etree

from . import model
from .codes import Version
from .plan import NS, Q, ROOT_TAG, ClassPlan, class_plan

VERSION_ATTR = Q + "version"
SCHEME_ATTR = Q + "scheme"
NSMAP = {"ill": NS}


# --- reading -------------------------------------------------------------------------------

def parse_datetime(text: str) -> datetime:
    """xs:dateTime lexical form -> aware datetime (no zone means UTC; 24:00:00 is next midnight)."""
    text = text.strip()
    if "T24:00:00" in text:
        day = datetime.fromisoformat(text.replace("T24:00:00", "T00:00:00"))
        value = day + timedelta(days=1)
    else:
        value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _read_scalar(kind: str, text: str | None, node_type: type, plain: bool, el: etree._Element) -> Any:
    text = text or ""
    if kind == "str":
        return text
    if kind == "code":
        return node_type._value2member_map_[text.strip()]  # type: ignore[attr-defined]
    if kind == "scheme":
        return model.SchemeValue(text, None if plain else el.get(SCHEME_ATTR))
    if kind == "datetime":
        return parse_datetime(text)
    if kind == "decimal":
        return Decimal(text.strip())
    if kind == "int":
        return int(text.strip())
    if kind == "bool":
        return text.strip() in ("true", "1")
    raise AssertionError(kind)


def read_object(el: etree._Element, plan: ClassPlan) -> Any:
    values: dict[str, Any] = {}
    by_qtag = plan.by_qtag
    for child in el:
        node = by_qtag.get(child.tag)
        if node is None:
            continue  # comments, processing instructions, or elements outside this version
        if node.kind == "complex":
            value = read_object(child, class_plan(node.py_type, plan.version))
        else:
            value = _read_scalar(node.kind, child.text, node.py_type, node.plain_string, child)
        if node.repeated:
            values.setdefault(node.attr, []).append(value)
        else:
            values[node.attr] = value
    return plan.cls(**values)


def read_message(root: etree._Element, version: Version) -> Any:
    """The model object for a validated envelope's single child."""
    body = root[0] if len(root) else None
    while body is not None and not isinstance(body.tag, str):
        body = body.getnext()  # skip leading comments
    if body is None:
        raise ValueError("empty ISO18626Message envelope")
    kind = etree.QName(body).localname
    return read_object(body, class_plan(model.MESSAGE_CLASS_BY_KIND[kind], version))


# --- writing -------------------------------------------------------------------------------

def format_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _scalar_text(kind: str, value: Any) -> str:
    if kind == "str":
        return value
    if kind in ("code", "scheme"):
        return value.value
    if kind == "datetime":
        return format_datetime(value)
    if kind == "bool":
        return "true" if value else "false"
    return str(value)  # decimal, int


def write_object(parent: etree._Element, tag: str, obj: Any, plan: ClassPlan) -> etree._Element:
    el = etree.SubElement(parent, tag)
    for node in plan.nodes:
        value = getattr(obj, node.attr)
        if value is None or value == []:
            if node.empty_when_missing and node.min:
                etree.SubElement(el, node.qtag).text = ""
            continue
        for item in value if node.repeated else (value,):
            if node.kind == "complex":
                write_object(el, node.qtag, item, class_plan(node.py_type, plan.version))
                continue
            child = etree.SubElement(el, node.qtag)
            child.text = _scalar_text(node.kind, item)
            if node.kind == "scheme" and item.scheme is not None and not node.plain_string:
                child.set(SCHEME_ATTR, item.scheme)
    return el


def to_tree(message: Any, version: Version) -> etree._Element:
    root = etree.Element(Q + ROOT_TAG, nsmap=NSMAP)
    root.set(VERSION_ATTR, version.value)
    write_object(root, Q + message.KIND, message, class_plan(type(message), version))
    return root


def to_bytes(message: Any, version: Version) -> bytes:
    return etree.tostring(to_tree(message, version), xml_declaration=True, encoding="UTF-8")
