"""Systematic, deterministic mutations of an XML document.

Given an lxml tree, `mutations()` yields mutated copies, each with a short description,
for differential testing (for example: do two schemas give the same verdict on every
near-miss of a valid message?). The module is pure: no I/O, no randomness, and the
input tree is never modified.

Kinds of mutation, in this order for each element in document order:

- drop the element;
- duplicate it (the copy is inserted right after it);
- swap it with its next sibling element (only when the two have different names);
- for a leaf element: replace its text with each of `TEXT_VARIANTS` (skipping the
  current value), and add a namespace-qualified `scheme` attribute when it has none;
- for an element with element children: append an unknown child element;
- for each attribute: remove it, and (when it is namespace-qualified) make it unqualified.

`limit` caps the number of mutations per document; when the full plan is longer, an evenly
spaced subset is taken, so every kind of mutation stays represented.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from lxml import etree

#: Values every leaf is set to: the awkward ones first, then one value of each ISO 18626
#: closed list (some exist only in the 2021 schema), then a few well-typed values.
BASIC_VARIANTS: tuple[str, ...] = ("", "xyz", "2024-13-45T99:00:00Z", "-1", "12.5.3", "Y", "Loaned")
CLOSED_LIST_SAMPLES: tuple[str, ...] = (
    "HoldReturn",  # status (2021 only) and action (2021 only)
    "Lost",  # action (2021 only)
    "RenewResponse",  # reasonForMessage
    "UnsupportedActionType",  # errorType
    "ERROR",  # messageStatus
    "Retry",  # requestType
    "TransferRequest",  # requestSubType
    "CopyOrLoan",  # serviceType
    "N",  # yesNo
    "MostRecentEdition",  # preferredEdition (2021 only)
)
TYPED_VARIANTS: tuple[str, ...] = (" Y ", "2024-02-29T12:00:00+02:00", "true", "0", "12.50")
TEXT_VARIANTS: tuple[str, ...] = BASIC_VARIANTS + CLOSED_LIST_SAMPLES + TYPED_VARIANTS

UNKNOWN_CHILD = "unknownElement"
ADDED_SCHEME_VALUE = "http://example.org/mutation-scheme"


class Mutation(NamedTuple):
    description: str
    tree: etree._ElementTree


class _Op(NamedTuple):
    kind: str  # drop | dup | swap | text | add-scheme | add-child | attr-drop | attr-unqualify
    index: int  # position of the element in document order (elements only)
    arg: str | None
    description: str


def _elements(root: etree._Element) -> list[etree._Element]:
    return list(root.iter(etree.Element))


def _next_element(el: etree._Element) -> etree._Element | None:
    nxt = el.getnext()
    while nxt is not None and not isinstance(nxt.tag, str):
        nxt = nxt.getnext()
    return nxt


def _local(tag: str) -> str:
    return etree.QName(tag).localname


def _attr_name(name: str) -> str:
    q = etree.QName(name)
    return f"{{{q.namespace}}}{q.localname}" if q.namespace else q.localname


def element_path(el: etree._Element) -> str:
    """A readable path of local names, with [n] where a name repeats among siblings."""
    parts = []
    while el is not None:
        name = _local(el.tag)
        parent = el.getparent()
        if parent is not None:
            same = [s for s in parent if s.tag == el.tag]
            if len(same) > 1:
                name += f"[{same.index(el) + 1}]"
        parts.append(name)
        el = parent
    return "/" + "/".join(reversed(parts))


def _plan(root: etree._Element, variants: Sequence[str]) -> list[_Op]:
    ops: list[_Op] = []
    for i, el in enumerate(_elements(root)):
        path = element_path(el)
        is_root = i == 0
        has_children = any(isinstance(c.tag, str) for c in el)
        if not is_root:
            ops.append(_Op("drop", i, None, f"drop {path}"))
            ops.append(_Op("dup", i, None, f"duplicate {path}"))
            nxt = _next_element(el)
            if nxt is not None and nxt.tag != el.tag:
                ops.append(_Op("swap", i, None, f"swap {path} with next sibling {_local(nxt.tag)}"))
        if not has_children and not is_root:
            current = el.text or ""
            for value in variants:
                if value != current:
                    ops.append(_Op("text", i, value, f"set {path} text to {value!r}"))
            ns = etree.QName(el).namespace
            scheme = f"{{{ns}}}scheme" if ns else "scheme"
            if scheme not in el.attrib:
                ops.append(_Op("add-scheme", i, scheme, f"add attribute {_attr_name(scheme)} on {path}"))
        if has_children:
            ops.append(_Op("add-child", i, None, f"append unknown child {UNKNOWN_CHILD} to {path}"))
        for name in el.attrib:
            ops.append(_Op("attr-drop", i, name, f"remove attribute {_attr_name(name)} on {path}"))
            if etree.QName(name).namespace:
                ops.append(_Op("attr-unqualify", i, name,
                               f"make attribute {_attr_name(name)} unqualified on {path}"))
    return ops


def _apply(tree: etree._ElementTree, op: _Op) -> etree._ElementTree:
    new = copy.deepcopy(tree)
    el = _elements(new.getroot())[op.index]
    if op.kind == "drop":
        el.getparent().remove(el)
    elif op.kind == "dup":
        dup = copy.deepcopy(el)
        dup.tail = el.tail
        el.addnext(dup)
    elif op.kind == "swap":
        nxt = _next_element(el)
        el_tail, nxt_tail = el.tail, nxt.tail
        nxt.addnext(el)  # moves el after nxt (lxml moves tails along with elements)
        el.tail, nxt.tail = nxt_tail, el_tail
    elif op.kind == "text":
        el.text = op.arg
    elif op.kind == "add-scheme":
        el.set(op.arg, ADDED_SCHEME_VALUE)
    elif op.kind == "add-child":
        ns = etree.QName(el).namespace
        child = etree.SubElement(el, f"{{{ns}}}{UNKNOWN_CHILD}" if ns else UNKNOWN_CHILD)
        child.text = "x"
    elif op.kind == "attr-drop":
        del el.attrib[op.arg]
    elif op.kind == "attr-unqualify":
        value = el.attrib.pop(op.arg)
        el.set(etree.QName(op.arg).localname, value)
    else:  # pragma: no cover - plan and apply are kept in step
        raise ValueError(op.kind)
    return new


def _as_tree(doc: etree._ElementTree | etree._Element) -> etree._ElementTree:
    if isinstance(doc, etree._ElementTree):
        return doc
    return etree.ElementTree(doc)


def mutations(doc: etree._ElementTree | etree._Element, *, limit: int | None = None,
              variants: Sequence[str] = TEXT_VARIANTS) -> Iterator[Mutation]:
    """Yield mutated copies of `doc` (an element or a tree), at most `limit` of them."""
    tree = _as_tree(doc)
    ops = _plan(tree.getroot(), variants)
    if limit is not None and len(ops) > limit:
        step = len(ops) / limit
        ops = [ops[int(k * step)] for k in range(limit)]
    for op in ops:
        yield Mutation(op.description, _apply(tree, op))
