"""The compiled codec (reader tables, string writer) behaves exactly like the generic one it replaced.

The reference below is the earlier implementation, kept here as an oracle: it walks the
plans of `plan.py` for every element, reads with an if-chain, and writes by building an lxml
tree with `SubElement` and serializing it. Decoding must give equal model objects and
encoding byte-identical output, for every valid fixture in both versions and for text that
needs escaping. Characters XML 1.0 does not allow must be refused.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from lxml import etree

from gateway.messages import InvalidOutboundMessage, Version, decode, encode, model
from gateway.messages.codec import SCHEME_ATTR, format_datetime, parse_datetime, read_message, to_bytes, to_tree
from gateway.messages.inbound import _PARSER
from gateway.messages.plan import NS, Q, ROOT_TAG, ClassPlan, class_plan

from support.messages_helpers import FIXTURES, manifest_rows, sample_request

VALID_ROWS = [r for r in manifest_rows() if r["expected"] == "valid"]
OTHER = {Version.V2017: Version.V2021, Version.V2021: Version.V2017}


# --- the reference implementation ----------------------------------------------------------

def _reference_scalar(kind: str, text: str | None, node_type: type, plain: bool, el: etree._Element) -> Any:
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


def _reference_read(el: etree._Element, plan: ClassPlan) -> Any:
    values: dict[str, Any] = {}
    for child in el:
        node = plan.by_qtag.get(child.tag)
        if node is None:
            continue
        if node.kind == "complex":
            value = _reference_read(child, class_plan(node.py_type, plan.version))
        else:
            value = _reference_scalar(node.kind, child.text, node.py_type, node.plain_string, child)
        if node.repeated:
            values.setdefault(node.attr, []).append(value)
        else:
            values[node.attr] = value
    return plan.cls(**values)


def _reference_text(kind: str, value: Any) -> str:
    if kind == "str":
        return value
    if kind in ("code", "scheme"):
        return value.value
    if kind == "datetime":
        return format_datetime(value)
    if kind == "bool":
        return "true" if value else "false"
    return str(value)


def _reference_write(parent: etree._Element, tag: str, obj: Any, plan: ClassPlan) -> None:
    el = etree.SubElement(parent, tag)
    for node in plan.nodes:
        value = getattr(obj, node.attr)
        if value is None or value == []:
            if node.empty_when_missing and node.min:
                etree.SubElement(el, node.qtag).text = ""
            continue
        for item in value if node.repeated else (value,):
            if node.kind == "complex":
                _reference_write(el, node.qtag, item, class_plan(node.py_type, plan.version))
                continue
            child = etree.SubElement(el, node.qtag)
            child.text = _reference_text(node.kind, item)
            if node.kind == "scheme" and item.scheme is not None and not node.plain_string:
                child.set(SCHEME_ATTR, item.scheme)


def reference_bytes(message: Any, version: Version) -> bytes:
    root = etree.Element(Q + ROOT_TAG, nsmap={"ill": NS})
    root.set(Q + "version", version.value)
    _reference_write(root, Q + message.KIND, message, class_plan(type(message), version))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


# --- equivalence on the fixtures -----------------------------------------------------------

@pytest.mark.parametrize("row", VALID_ROWS, ids=lambda r: r["path"])
def test_fixture_decodes_and_encodes_as_the_reference_did(row):
    data = (FIXTURES / row["path"]).read_bytes()
    inbound = decode(data)
    root = etree.fromstring(data, _PARSER)
    body = next(child for child in root if isinstance(child.tag, str))
    plan = class_plan(model.MESSAGE_CLASS_BY_KIND[inbound.kind], inbound.version)
    assert inbound.message == _reference_read(body, plan)

    message, version = inbound.message, inbound.version
    assert encode(message, version) == reference_bytes(message, version)
    # The other version's writer too (not necessarily valid there, so unvalidated).
    assert encode(message, OTHER[version], validate=False) == reference_bytes(message, OTHER[version])


@pytest.mark.parametrize("row", VALID_ROWS[:12], ids=lambda r: r["path"])
def test_to_tree_holds_the_same_document(row):
    inbound = decode((FIXTURES / row["path"]).read_bytes())
    tree = to_tree(inbound.message, inbound.version)
    reference = etree.fromstring(reference_bytes(inbound.message, inbound.version))
    # Canonical XML, because a parsed <t></t> re-serializes as <t/>.
    assert etree.tostring(tree, method="c14n") == etree.tostring(reference, method="c14n")


# --- escaping, empty values, characters ----------------------------------------------------

AWKWARD = "a & b < c > d ]]> \r\n\t \"double\" 'single' é € 😀 \x7f \x85 \u2028 \ud7ff \ue000 \ufffd \U0010ffff"


def _with_text(text: str, scheme: str | None = "http://example.org/scheme") -> model.Request:
    request = sample_request()
    item_id = model.BibliographicItemId(text, model.SchemeValue(text, scheme))
    bib = replace(request.bibliographic_info, title=text, bibliographic_item_id=[item_id])
    return replace(request, bibliographic_info=bib)


@pytest.mark.parametrize("version", list(Version))
@pytest.mark.parametrize("scheme", [None, "http://example.org/scheme", AWKWARD])
def test_text_needing_escapes_is_written_as_lxml_wrote_it_and_reads_back(version, scheme):
    message = _with_text(AWKWARD, scheme)
    data = encode(message, version, validate=False)  # an xs:anyURI scheme with "<" is not valid
    assert data == reference_bytes(message, version)
    if scheme != AWKWARD:
        assert encode(message, version) == data
    again = read_message(etree.fromstring(data, _PARSER), version).bibliographic_info
    assert again.title == AWKWARD
    assert again.bibliographic_item_id[0].bibliographic_item_identifier_code == model.SchemeValue(AWKWARD, scheme)


@pytest.mark.parametrize("version", list(Version))
def test_empty_strings_and_empty_elements_are_written_as_lxml_wrote_them(version):
    request = sample_request()
    header = replace(request.header, multiple_item_request_id="",
                     requesting_agency_authentication=model.Authentication())
    message = replace(request, header=header, bibliographic_info=replace(request.bibliographic_info, title=""))
    data = encode(message, version, validate=False)
    assert data == reference_bytes(message, version)
    assert b"<ill:title></ill:title>" in data
    assert b"<ill:requestingAgencyAuthentication/>" in data


NOT_XML = ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1f", "\ud800", "\udfff", "\ufffe", "\uffff"]


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize("where", ["text", "scheme"])
@pytest.mark.parametrize("char", NOT_XML, ids=lambda c: f"U+{ord(c):04X}")
def test_characters_xml_does_not_allow_are_refused(char, where, validate):
    bad = f"before{char}after"
    message = _with_text(bad) if where == "text" else _with_text("fine", scheme=bad)
    with pytest.raises(InvalidOutboundMessage, match=f"U\\+{ord(char):04X}"):
        encode(message, Version.V2017, validate=validate)
    with pytest.raises(ValueError):
        to_bytes(message, Version.V2017)
    with pytest.raises(ValueError):  # the reference refused them as well
        reference_bytes(message, Version.V2017)


def test_a_value_that_is_not_a_string_is_a_type_error_as_before():
    message = _with_text("fine")
    message.bibliographic_info.title = 42  # type: ignore[assignment]
    with pytest.raises(TypeError):
        encode(message, Version.V2017)
    with pytest.raises(TypeError):
        reference_bytes(message, Version.V2017)
