"""Classify what is wrong with an inbound message into ISO 18626 errorType / errorValue.

errorValue always names where (an element path) and what (the offending element or value),
so a partner's integrator can fix the message without asking us.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from . import model
from .clip import quoted
from .codes import ErrorType, Version
from .plan import Q, ROOT_TAG, ClassPlan, class_plan

_EXPECTED = re.compile(r"Expected is (?:one of )?\( ([^)]*) \)")
_QNAME = re.compile(r"\{[^}]*\}(\w+)|(\w+)")
_ATTRIBUTE = re.compile(r"attribute '([^']+)'")
_VALUE_ERRORS = ("[facet", "is not a valid value of", "is not accepted by the pattern")


@dataclass(frozen=True, slots=True)
class Fault:
    error_type: ErrorType
    error_value: str

    def __str__(self) -> str:
        return f"{self.error_type.value}: {self.error_value}"


def badly_formed(what: str) -> Fault:
    return Fault(ErrorType.BadlyFormedMessage, what)


def element_path(el: etree._Element) -> str:
    names = [etree.QName(e).localname for e in (el, *el.iterancestors()) if isinstance(e.tag, str)]
    return "/" + "/".join(reversed(names))


def _local_names(text: str) -> list[str]:
    return [a or b for a, b in _QNAME.findall(text)]


def _plan_of(el: etree._Element, version: Version) -> ClassPlan | None:
    """The model plan that describes `el`'s children, or None if `el` is unknown to the model."""
    chain = [el, *el.iterancestors()][::-1]
    if len(chain) < 2 or chain[0].tag != Q + ROOT_TAG:
        return None
    kind = etree.QName(chain[1]).localname
    cls = model.MESSAGE_CLASS_BY_KIND.get(kind)
    if cls is None or chain[1].tag != Q + kind:
        return None
    plan = class_plan(cls, version)
    for e in chain[2:]:
        node = plan.by_qtag.get(e.tag)
        if node is None or node.kind != "complex":
            return None
        plan = class_plan(node.py_type, plan.version)
    return plan


def _structure_fault(el: etree._Element, message: str, version: Version) -> Fault:
    path = element_path(el)
    name = etree.QName(el).localname
    parent = el.getparent()
    if "Missing child element" in message:
        wanted = " or ".join(_local_names(_EXPECTED.search(message).group(1))) if _EXPECTED.search(message) else "?"
        return badly_formed(f"{path}: missing required element {wanted}")
    parent_plan = _plan_of(parent, version) if parent is not None else None
    known_here = parent_plan is not None and el.tag in parent_plan.by_qtag
    if known_here:
        expected = _EXPECTED.search(message)
        present = {etree.QName(c).localname for c in parent if isinstance(c.tag, str)}
        if expected:
            names = _local_names(expected.group(1))
            required = {n.tag for n in parent_plan.nodes if n.min >= 1}
            missing = [n for n in names if n in required and n not in present]
            if missing:
                return badly_formed(f"{element_path(parent)}: missing required element {' or '.join(missing)}")
            return Fault(
                ErrorType.UnrecognisedDataElement,
                f"{path}: element {name} is out of order or repeated; expected {' or '.join(names)} here",
            )
        return Fault(ErrorType.UnrecognisedDataElement, f"{path}: element {name} is repeated or out of order")
    return Fault(ErrorType.UnrecognisedDataElement, f"{path}: unknown element {name}")


def _value_fault(el: etree._Element, message: str) -> Fault:
    name = etree.QName(el).localname
    value = el.text or ""
    error_type = {
        "action": ErrorType.UnsupportedActionType,
        "reasonForMessage": ErrorType.UnsupportedReasonForMessageType,
    }.get(name, ErrorType.UnrecognisedDataValue)
    reason = message.split(": ", 1)[-1] if "]" not in message else message.split("] ", 1)[-1]
    return Fault(error_type, f"{element_path(el)}: invalid value {quoted(value)} ({reason.rstrip('.')})")


def _attribute_fault(el: etree._Element, message: str) -> Fault:
    match = _ATTRIBUTE.search(message)
    attr = _local_names(match.group(1))[0] if match else "?"
    if "required but missing" in message:
        return badly_formed(f"{element_path(el)}: missing required attribute ill:{attr}")
    if "is not allowed" in message:
        return Fault(
            ErrorType.UnrecognisedDataElement,
            f"{element_path(el)}: attribute {match.group(1) if match else attr} is not allowed"
            " (ISO 18626 attributes are namespace-qualified: ill:version, ill:scheme)",
        )
    value = el.get(match.group(1)) if match else None
    return Fault(ErrorType.UnrecognisedDataValue, f"{element_path(el)}/@{attr}: invalid value {quoted(value) if value is not None else None!r}")


def _locate(root: etree._Element, error: etree._LogEntry) -> etree._Element:
    nsmap = {k: v for k, v in root.nsmap.items() if k}
    try:
        found = root.getroottree().xpath(error.path, namespaces=nsmap)
    except etree.XPathError:
        found = []
    return found[0] if found and isinstance(found[0], etree._Element) else root


def classify_entry(root: etree._Element, error: etree._LogEntry, version: Version) -> Fault:
    el = _locate(root, error)
    message = error.message
    if "attribute '" in message:
        return _attribute_fault(el, message)
    if any(marker in message for marker in _VALUE_ERRORS):
        return _value_fault(el, message)
    if "Character content" in message:
        return Fault(ErrorType.UnrecognisedDataValue, f"{element_path(el)}: text is not allowed in this element")
    return _structure_fault(el, message, version)


def classify_schema_errors(root: etree._Element, log: etree._ListErrorLog, version: Version, limit: int) -> list[Fault]:
    """The first `limit` distinct faults of a failed validation, most relevant first."""
    faults: list[Fault] = []
    for error in log:
        fault = classify_entry(root, error, version)
        if fault not in faults:
            faults.append(fault)
        if len(faults) >= limit:
            break
    return faults or [badly_formed("/ISO18626Message: schema validation failed")]
