"""Generate the project's XSDs from the message model (`gateway xsd --write xsd`).

One named complex type per model class, one simple type per closed code list, local element
declarations, and a single global element: the ISO18626Message envelope. A test regenerates
these and compares them with the files in `xsd/`.
"""

from __future__ import annotations

from lxml import etree

from . import model
from .codes import Version
from .plan import NS, ROOT_TAG, ClassPlan, Node, class_plan

XS = "http://www.w3.org/2001/XMLSchema"
_X = "{" + XS + "}"

SCHEMA_FILES = {Version.V2017: "iso18626-2017.xsd", Version.V2021: "iso18626-2021.xsd"}

_SIMPLE = {"str": "xs:string", "datetime": "xs:dateTime", "decimal": "xs:decimal", "int": "xs:integer", "bool": "xs:boolean"}
_NON_NEGATIVE = "NonNegativeInteger"


def _type_of(node: Node) -> str:
    if node.kind == "int" and node.non_negative:
        return "ill:" + _NON_NEGATIVE
    if node.kind in _SIMPLE:
        return _SIMPLE[node.kind]
    if node.kind == "scheme":
        return "xs:string" if node.plain_string else "ill:SchemeValue"
    return "ill:" + node.py_type.__name__


def _element(parent: etree._Element, node: Node, in_choice: bool) -> None:
    attrs = {"name": node.tag, "type": _type_of(node)}
    if not in_choice:
        if node.min != 1:
            attrs["minOccurs"] = str(node.min)
        if node.max != 1:
            attrs["maxOccurs"] = "unbounded" if node.max is None else str(node.max)
    etree.SubElement(parent, _X + "element", attrs)


def _complex_type(schema: etree._Element, plan: ClassPlan) -> None:
    ct = etree.SubElement(schema, _X + "complexType", name=plan.cls.__name__)
    group = etree.SubElement(ct, _X + ("choice" if plan.choice else "sequence"))
    for node in plan.nodes:
        _element(group, node, plan.choice)


def _reachable(version: Version) -> tuple[list[ClassPlan], set[type], bool]:
    """Every class plan reachable from the envelope, closed code types, whether ints need >= 0."""
    seen: dict[type, ClassPlan] = {}
    codes: set[type] = set()
    non_negative = False
    stack = list(model.MESSAGE_CLASSES)
    while stack:
        cls = stack.pop(0)
        if cls in seen:
            continue
        plan = seen[cls] = class_plan(cls, version)
        for node in plan.nodes:
            if node.kind == "complex":
                stack.append(node.py_type)
            elif node.kind == "code":
                codes.add(node.py_type)
            non_negative |= node.kind == "int" and node.non_negative
    return list(seen.values()), codes, non_negative


def generate(version: Version) -> bytes:
    nsmap = {"xs": XS, "ill": NS}
    schema = etree.Element(
        _X + "schema",
        nsmap=nsmap,
        targetNamespace=NS,
        elementFormDefault="qualified",
        attributeFormDefault="qualified",
    )
    schema.append(etree.Comment(
        f" ISO 18626 schema {version.value} ({version.label}), generated from gateway/messages/model.py"
        " by `make xsd`. Do not edit by hand. "
    ))
    root = etree.SubElement(schema, _X + "element", name=ROOT_TAG)
    root_type = etree.SubElement(root, _X + "complexType")
    choice = etree.SubElement(root_type, _X + "choice")
    for cls in model.MESSAGE_CLASSES:
        etree.SubElement(choice, _X + "element", name=cls.KIND, type="ill:" + cls.__name__)
    etree.SubElement(root_type, _X + "attribute", name="version", type="xs:string", use="required")

    plans, codes, non_negative = _reachable(version)
    for plan in plans:
        _complex_type(schema, plan)

    scheme = etree.SubElement(schema, _X + "complexType", name="SchemeValue")
    content = etree.SubElement(scheme, _X + "simpleContent")
    ext = etree.SubElement(content, _X + "extension", base="xs:string")
    etree.SubElement(ext, _X + "attribute", name="scheme", type="xs:anyURI")

    for code in sorted(codes, key=lambda c: c.__name__):
        simple = etree.SubElement(schema, _X + "simpleType", name=code.__name__)
        restriction = etree.SubElement(simple, _X + "restriction", base="xs:string")
        for value in code.values_for(version):
            etree.SubElement(restriction, _X + "enumeration", value=value)
    if non_negative:
        simple = etree.SubElement(schema, _X + "simpleType", name=_NON_NEGATIVE)
        restriction = etree.SubElement(simple, _X + "restriction", base="xs:integer")
        etree.SubElement(restriction, _X + "minInclusive", value="0")

    etree.indent(schema, space="  ")
    return etree.tostring(schema, xml_declaration=True, encoding="UTF-8", pretty_print=True)
