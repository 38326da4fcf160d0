"""Per-partner tolerance profiles: accept known, harmless deviations from ISO 18626, and say so.

`decode_tolerant(data, profile)` first tries the strict `decode` (the fast path: no repair, no
warning). Only if that fails does it apply the repairs its profile allows (`tolerate`), to a copy
of the tree the strict pass already parsed, and validates the repaired tree. Every repair that changed something leaves one conformance warning
(what was wrong, where, what we did), meant for the request's history. If the repaired
message still fails, the ORIGINAL `MessageError` is raised, so the partner is told about
the real fault and not about a state of its message that only we produced.

Rules every repair keeps:
- it only touches what is invalid as it stands (a valid message never reaches a repair);
- it may reorder, qualify, rename, fill an empty required string, or drop what is truly
  empty (an element with no text, no children and no attributes whose emptiness is itself
  invalid); it never invents a value the partner did not send, and never drops data;
- the hardened parser's limits still hold under every profile: DTDs, entity declarations,
  oversize and too-deep documents are refused before any repair is looked at.

Profiles and the repairs they allow (docs/partners.md lists the deviations seen in real
messages and the partners that send them):

| repair                          | what it fixes                                     | alma | reshare | lenient |
|---------------------------------|---------------------------------------------------|------|---------|---------|
| declare_known_prefixes          | `ill:`/`xsi:` used but never declared (bytes)     |      |         |    x    |
| qualify_no_namespace            | no namespace at all: all put in the ISO one       |      |         |    x    |
| wrap_bare_message               | bare `<request>` etc.: wrapped in the envelope    |      |         |    x    |
| qualify_version_attribute       | unqualified `version=` -> `ill:version`           |  x   |    x    |    x    |
| qualify_scheme_attribute        | `schema=`, unqualified `scheme=` -> `ill:scheme`  |      |         |    x    |
| british_error_type              | `UnrecognizedData...` (Koha) -> `Unrecognised...` |      |         |    x    |
| normalise_timestamps            | `...+0000`, `2023-03-15 14:30:00` (UTC assumed)   |  x   |         |    x    |
| insert_multiple_item_request_id | 2017 header without it: an empty one              |  x   |    x    |    x    |
| reorder_children                | children out of schema order                      |      |    x    |    x    |
| empty_status_no_change          | Alma's empty `<status/>` in a Notification        |  x   |         |    x    |
| drop_empty_optional             | empty optional element, empty invalid             |      |         |    x    |

`strict` allows none of them. `lenient` allows all of them. `declare_known_prefixes` acts only
when the parse error is exactly "namespace prefix P is not defined" for P = `ill` (the ISO
namespace) or `xsi` (XML Schema instance, whose meaning is fixed; mod-rs scripts send
`xsi:schemaLocation` undeclared next to `ill:version`). `drop_empty_optional` is not among the
deviations seen in real messages: it is the "truly empty" rule applied to optional elements that mod-rs
templates leave empty (`<action></action>`, `<answerYesNo/>`, `<offeredCosts/>`).

Result: `Tolerated(inbound, warnings, no_status_change, repairs)`, which also unpacks as
`inbound, warnings = decode_tolerant(...)`. The "no status change" of Alma cannot live in the
model (StatusInfo.status is required), so the `empty_status_no_change` repair validates the
message with a stand-in status, then sets `inbound.message.status_info.status = None` and
`no_status_change=True`, and puts the empty `<status/>` back into `inbound.root`. The stand-in
never leaves this module. (`core.events.SupplierMessage` already reads `status=None` as
"no change": a Notification.)
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from lxml import etree

from . import model
from .codec import SCHEME_ATTR, VERSION_ATTR
from .codes import ReasonForMessage, Status, Version
from .faults import element_path
from .inbound import (
    KINDS,
    Inbound,
    Limits,
    MessageError,
    _too_deep,
    decode,
    decode_tree,
    parse_xml,
    select_version,
)
from .plan import NS, Q, ROOT_TAG, ClassPlan, Node, class_plan

XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
KNOWN_PREFIXES = {"ill": NS, "xsi": XSI_NS}
DEFAULT_WRAP_VERSION = "1.2"

PROFILES = ("strict", "alma", "reshare", "lenient")

# --- the table of the module docstring, as data --------------------------------------------
REPAIR_NAMES = (
    "declare_known_prefixes",
    "qualify_no_namespace",
    "wrap_bare_message",
    "qualify_version_attribute",
    "qualify_scheme_attribute",
    "british_error_type",
    "normalise_timestamps",
    "insert_multiple_item_request_id",
    "reorder_children",
    "empty_status_no_change",
    "drop_empty_optional",
)
PROFILE_REPAIRS: dict[str, frozenset[str]] = {
    "strict": frozenset(),
    "alma": frozenset({
        "qualify_version_attribute",
        "normalise_timestamps",
        "insert_multiple_item_request_id",
        "empty_status_no_change",
    }),
    "reshare": frozenset({
        "qualify_version_attribute",
        "insert_multiple_item_request_id",
        "reorder_children",
    }),
    "lenient": frozenset(REPAIR_NAMES),
}


@dataclass(slots=True)
class Tolerated:
    """A message accepted under a tolerance profile.

    `warnings`: one human-readable line per repair applied (empty on the strict fast path).
    `no_status_change`: Alma's empty `<status/>` was read as "no status change";
    `inbound.message.status_info.status` is then None.
    `repairs`: the names of the repairs that changed something, in the order applied.
    """

    inbound: Inbound
    warnings: list[str] = field(default_factory=list)
    no_status_change: bool = False
    repairs: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[object]:  # `inbound, warnings = decode_tolerant(...)`
        return iter((self.inbound, self.warnings))


def profile_repairs(profile: str) -> frozenset[str]:
    try:
        return PROFILE_REPAIRS[profile]
    except KeyError:
        raise ValueError(f"unknown tolerance profile {profile!r}; one of {', '.join(PROFILES)}") from None


# --- repair context ------------------------------------------------------------------------

@dataclass(slots=True)
class _Context:
    profile: str
    allowed: frozenset[str]
    configured: Version | None
    version: Version | None = None  # the schema version the body repairs work towards
    warnings: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    empty_status: etree._Element | None = None

    def warn(self, repair: str, where: str, text: str) -> None:
        self.warnings.append(f"{where}: {text} [{self.profile} tolerance: {repair}]")
        if repair not in self.repairs:
            self.repairs.append(repair)

    def fork(self) -> "_Context":
        return _Context(self.profile, self.allowed, self.configured, self.version,
                        list(self.warnings), list(self.repairs))


def _elements(parent: etree._Element) -> list[etree._Element]:
    return [c for c in parent if isinstance(c.tag, str)]


def _is_empty(el: etree._Element) -> bool:
    return not (el.text or "").strip() and len(el) == 0 and not el.attrib


def _message_body(root: etree._Element, version: Version) -> tuple[etree._Element, ClassPlan] | None:
    """The envelope's message element and its plan, if the envelope is in order."""
    if root.tag != Q + ROOT_TAG:
        return None
    children = _elements(root)
    if not children:
        return None
    body = children[0]
    kind = etree.QName(body).localname
    cls = model.MESSAGE_CLASS_BY_KIND.get(kind)
    if cls is None or body.tag != Q + kind:
        return None
    return body, class_plan(cls, version)


def _walk(el: etree._Element, plan: ClassPlan) -> Iterator[tuple[etree._Element, Node]]:
    """(element, its plan node) for every descendant the model knows, in document order."""
    for child in _elements(el):
        node = plan.by_qtag.get(child.tag)
        if node is None:
            continue
        yield child, node
        if node.kind == "complex":
            yield from _walk(child, class_plan(node.py_type, plan.version))


def _complex(el: etree._Element, plan: ClassPlan) -> Iterator[tuple[etree._Element, ClassPlan]]:
    """(element, its own plan) for `el` and every complex descendant the model knows."""
    yield el, plan
    for child, node in _walk(el, plan):
        if node.kind == "complex":
            yield child, class_plan(node.py_type, plan.version)


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


# --- stage 1: bytes ------------------------------------------------------------------------

_UNDECLARED = re.compile(r"Namespace prefix (\S+) (?:for \S+ )?on \S+ is not defined")
_ROOT_NAME = re.compile(rb"<([A-Za-z_][\w.:-]*)")


def _root_name(data: bytes) -> re.Match[bytes] | None:
    """The root element's name in the raw bytes, skipping the prolog; None if unsure."""
    pos = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    while pos < len(data):
        if data[pos:pos + 1].isspace():
            pos += 1
        elif data.startswith(b"<?", pos):
            end = data.find(b"?>", pos)
            if end < 0:
                return None
            pos = end + 2
        elif data.startswith(b"<!--", pos):
            end = data.find(b"-->", pos)
            if end < 0:
                return None
            pos = end + 3
        else:
            return _ROOT_NAME.match(data, pos)
    return None


def declare_known_prefixes(data: bytes, error: MessageError, ctx: _Context) -> bytes | None:
    """`ill:` / `xsi:` used without a declaration: declare it on the root. Bytes, before parsing."""
    match = _UNDECLARED.search(error.first.error_value) if error.faults else None
    if match is None or match.group(1) not in KNOWN_PREFIXES:
        return None
    prefix = match.group(1)
    root_name = _root_name(data)
    if root_name is None:
        return None
    end = root_name.end()
    declaration = f' xmlns:{prefix}="{KNOWN_PREFIXES[prefix]}"'.encode()
    ctx.warn("declare_known_prefixes", "/" + root_name.group(1).decode("ascii", "replace").rpartition(":")[2],
             f"namespace prefix {prefix!r} is used but never declared (not namespace-well-formed XML); "
             f"declared {prefix} = {KNOWN_PREFIXES[prefix]} on the root element")
    return data[:end] + declaration + data[end:]


# --- stage 2: the envelope (before the schema version is known) ---------------------------

def qualify_no_namespace(root: etree._Element, ctx: _Context) -> None:
    """No namespace anywhere: every element is taken to be in the ISO 18626 namespace."""
    elements = [el for el in root.iter() if isinstance(el.tag, str)]
    if any(etree.QName(el).namespace for el in elements):
        return  # mixed or foreign namespaces: not this deviation
    for el in elements:
        el.tag = Q + el.tag
    etree.cleanup_namespaces(root)
    ctx.warn("qualify_no_namespace", "/" + _local(root),
             f"no element is in a namespace; put all {len(elements)} elements in {NS}")


def wrap_bare_message(root: etree._Element, ctx: _Context) -> etree._Element:
    """A bare message root (`<request>` in the ISO namespace): wrap it in the envelope."""
    qname = etree.QName(root)
    if qname.namespace != NS or qname.localname not in KINDS:
        return root
    value = ctx.configured.value if ctx.configured else DEFAULT_WRAP_VERSION
    envelope = etree.Element(Q + ROOT_TAG, nsmap={"ill": NS})
    envelope.set(VERSION_ATTR, value)
    envelope.append(root)
    assumed = "the partner's configured version" if ctx.configured else "none given: assumed ISO 18626:2017"
    ctx.warn("wrap_bare_message", "/" + qname.localname,
             f"the message has no ISO18626Message envelope; wrapped it in one with ill:version={value!r} ({assumed})")
    return envelope


def qualify_version_attribute(root: etree._Element, ctx: _Context) -> None:
    """Unqualified `version=` on the envelope: the schema wants `ill:version`."""
    if root.tag != Q + ROOT_TAG or "version" not in root.attrib:
        return
    value = root.attrib["version"]
    where = "/ISO18626Message/@version"
    if VERSION_ATTR in root.attrib:
        if root.attrib[VERSION_ATTR] != value:
            return  # two different versions: nothing we can choose between
        del root.attrib["version"]
        ctx.warn("qualify_version_attribute", where,
                 f"unqualified version={value!r} repeats ill:version; dropped the duplicate")
        return
    del root.attrib["version"]
    root.set(VERSION_ATTR, value)
    ctx.warn("qualify_version_attribute", where,
             f"attribute version={value!r} is not namespace-qualified; read it as ill:version")


# --- stage 3: the body (per candidate schema version) -------------------------------------

def qualify_scheme_attribute(body: etree._Element, plan: ClassPlan, ctx: _Context) -> None:
    """`schema=` (a Koha plugin) or unqualified `scheme=` on an open code -> `ill:scheme`."""
    for el, node in _walk(body, plan):
        if node.kind != "scheme" or node.plain_string:
            continue
        for wrong in ("scheme", "schema"):
            if wrong not in el.attrib:
                continue
            value = el.attrib[wrong]
            current = el.get(SCHEME_ATTR)
            if current is not None and current != value:
                continue  # conflicting: leave it for the schema to refuse
            del el.attrib[wrong]
            if current is None:
                el.set(SCHEME_ATTR, value)
                did = "read it as ill:scheme"
            else:
                did = "it repeats ill:scheme; dropped the duplicate"
            ctx.warn("qualify_scheme_attribute", f"{element_path(el)}/@{wrong}",
                     f"attribute {wrong}={value!r} is not ill:scheme; {did}")


_BRITISH = {
    "UnrecognizedDataValue": "UnrecognisedDataValue",
    "UnrecognizedDataElement": "UnrecognisedDataElement",
}


def british_error_type(body: etree._Element, plan: ClassPlan, ctx: _Context) -> None:
    """errorType in American spelling (Koha): the closed list spells it with an s."""
    for el, node in _walk(body, plan):
        text = (el.text or "").strip()
        if node.tag == "errorType" and text in _BRITISH:
            el.text = _BRITISH[text]
            ctx.warn("british_error_type", element_path(el),
                     f"errorType {text!r} is not in the closed list; read as {_BRITISH[text]!r}")


_DATETIME = re.compile(r"(\d{4,}-\d{2}-\d{2})([T ])(\d{2}:\d{2}:\d{2}(?:\.\d+)?)(Z|[+-]\d{2}:?\d{2})?")


def normalise_timestamps(body: etree._Element, plan: ClassPlan, ctx: _Context) -> None:
    """`+0000` without a colon, or a space instead of `T` (no zone: UTC assumed) -> xs:dateTime."""
    for el, node in _walk(body, plan):
        if node.kind != "datetime" or len(el):
            continue
        text = (el.text or "").strip()
        match = _DATETIME.fullmatch(text)
        if match is None:
            continue
        date, sep, time, zone = match.groups()
        problems = []
        if sep == " ":
            problems.append("a space instead of 'T'")
        if zone and zone != "Z" and ":" not in zone:
            problems.append("no colon in the UTC offset")
            zone = zone[:3] + ":" + zone[3:]
        if not problems:
            continue
        assumed = ""
        if sep == " " and not zone:
            zone = "Z"
            problems.append("no time zone")
            assumed = ", assuming UTC"
        fixed = f"{date}T{time}{zone or ''}"
        el.text = fixed
        ctx.warn("normalise_timestamps", element_path(el),
                 f"{text!r} is not an xs:dateTime ({', '.join(problems)}); read as {fixed!r}{assumed}")


def insert_multiple_item_request_id(body: etree._Element, plan: ClassPlan, ctx: _Context) -> None:
    """A required, may-be-empty string (multipleItemRequestId in 2017 headers) is missing: add it empty."""
    for el, own in _complex(body, plan):
        present = {c.tag for c in _elements(el)}
        index = {n.qtag: i for i, n in enumerate(own.nodes)}
        for i, node in enumerate(own.nodes):
            if not (node.empty_when_missing and node.min >= 1) or node.qtag in present:
                continue
            new = etree.Element(node.qtag)
            new.text = ""
            after = next((c for c in _elements(el) if index.get(c.tag, -1) > i), None)
            if after is None:
                el.append(new)
            else:
                after.addprevious(new)
            ctx.warn("insert_multiple_item_request_id", element_path(el),
                     f"required element {node.tag} is missing (a v1.0-style header; required, possibly empty, "
                     f"in ISO 18626:{own.version.label}); inserted an empty {node.tag}")


def reorder_children(body: etree._Element, plan: ClassPlan, ctx: _Context) -> None:
    """Children of a known complex type out of schema order: put them in schema order."""
    for el, own in _complex(body, plan):
        if own.choice:
            continue
        kids = list(el)
        elements = _elements(el)
        index = {n.qtag: i for i, n in enumerate(own.nodes)}
        if len(elements) < 2 or any(c.tag not in index for c in elements):
            continue  # unknown children: the schema will name them; we do not guess
        order = [index[c.tag] for c in elements]
        if order == sorted(order):
            continue
        first = next(i for i in range(len(order) - 1) if order[i] > order[i + 1])
        groups: list[tuple[int, list[etree._Element]]] = []
        pending: list[etree._Element] = []
        for child in kids:  # comments travel with the element that follows them
            pending.append(child)
            if isinstance(child.tag, str):
                groups.append((index[child.tag], pending))
                pending = []
        groups.sort(key=lambda g: g[0])
        ordered = [c for _, group in groups for c in group] + pending
        tails = [c.tail for c in kids]
        for child in kids:
            el.remove(child)
        for child, tail in zip(ordered, tails):
            child.tail = tail
            el.append(child)
        ctx.warn("reorder_children", element_path(el),
                 f"children out of schema order ({_local(elements[first])} came before "
                 f"{_local(elements[first + 1])}); put them in schema order")


_STAND_IN = Status.RequestReceived.value


def empty_status_no_change(body: etree._Element, plan: ClassPlan, ctx: _Context) -> None:
    """Alma: an empty `<status/>` in a Notification means "no status change"."""
    if plan.cls is not model.SupplyingAgencyMessage:
        return
    reason = body.find(f"{Q}messageInfo/{Q}reasonForMessage")
    status = body.find(f"{Q}statusInfo/{Q}status")
    if reason is None or status is None or (reason.text or "").strip() != ReasonForMessage.Notification.value:
        return
    if (status.text or "").strip() or len(status) or status.attrib:
        return
    ctx.empty_status = status
    status.text = _STAND_IN  # validation only; taken out again after decoding
    ctx.warn("empty_status_no_change", element_path(status),
             "empty status in a Notification (Alma's \"no status change\"; the schema requires a status); "
             "read as no status change")


_SCALAR_KINDS = ("code", "datetime", "decimal", "int", "bool")


def _remove_keeping_tail(el: etree._Element) -> None:
    """Remove `el` but not the text after it (lxml would take the tail along)."""
    parent, previous, tail = el.getparent(), el.getprevious(), el.tail
    parent.remove(el)
    if tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail


def drop_empty_optional(body: etree._Element, plan: ClassPlan, ctx: _Context) -> None:
    """An optional element left empty where empty is invalid (`<action/>`, `<offeredCosts/>`): drop it."""
    doomed = []
    for el, node in _walk(body, plan):
        if node.min != 0 or not _is_empty(el):
            continue
        if node.kind in _SCALAR_KINDS or (
            node.kind == "complex" and any(n.min >= 1 for n in class_plan(node.py_type, plan.version).nodes)
        ):
            doomed.append(el)
    for el in doomed:
        where = element_path(el)
        _remove_keeping_tail(el)
        ctx.warn("drop_empty_optional", where, "optional element is empty, which its type does not allow; dropped it")


_BODY_REPAIRS: tuple[tuple[str, Callable[[etree._Element, ClassPlan, _Context], None]], ...] = (
    ("qualify_scheme_attribute", qualify_scheme_attribute),
    ("british_error_type", british_error_type),
    ("normalise_timestamps", normalise_timestamps),
    ("drop_empty_optional", drop_empty_optional),
    ("insert_multiple_item_request_id", insert_multiple_item_request_id),
    ("reorder_children", reorder_children),
    ("empty_status_no_change", empty_status_no_change),
)


# --- the entry point -----------------------------------------------------------------------

def _parse_repaired(data: bytes, error: MessageError, ctx: _Context, limits: Limits) -> etree._Element | None:
    """The parsed tree, after byte-level repairs if the profile allows them; None if it cannot be."""
    if error.root is not None:
        return copy.deepcopy(error.root)
    if "declare_known_prefixes" not in ctx.allowed:
        return None
    current, last = data, error
    for _ in KNOWN_PREFIXES:
        fixed = declare_known_prefixes(current, last, ctx)
        if fixed is None:
            return None
        try:
            return parse_xml(fixed, limits)
        except MessageError as again:
            current, last = fixed, again
    return None


def _repair_body(root: etree._Element, ctx: _Context, candidate: Version) -> tuple[etree._Element, _Context]:
    tree = copy.deepcopy(root)
    run = ctx.fork()
    run.version = candidate
    found = _message_body(tree, candidate)
    if found is not None:
        body, plan = found
        for name, repair in _BODY_REPAIRS:
            if name in run.allowed:
                repair(body, plan, run)
    return tree, run


def decode_tolerant(
    data: bytes,
    profile: str = "strict",
    *,
    version: Version | None = None,
    limits: Limits = Limits(),
) -> Tolerated:
    """Decode `data` under a tolerance profile. Raises the strict decoder's MessageError if it fails."""
    profile_repairs(profile)  # an unknown profile is refused even for a valid message
    try:
        return Tolerated(decode(data, version=version, limits=limits))
    except MessageError as strict_error:
        error = strict_error
    return tolerate(data, error, profile, version=version, limits=limits)


def tolerate(
    data: bytes,
    error: MessageError,
    profile: str,
    *,
    version: Version | None = None,
    limits: Limits = Limits(),
) -> Tolerated:
    """Accept under `profile` the message whose strict `decode(data, version, limits)` raised `error`.

    The repairs work on a copy of the tree the strict pass parsed (`error.root`), so the body is
    not parsed again; only bytes that did not parse at all are parsed anew, after a byte repair.
    Raises `error` if the profile cannot make the message valid.
    """
    allowed = profile_repairs(profile)
    if not allowed:
        raise error
    ctx = _Context(profile, allowed, version)
    root = _parse_repaired(data, error, ctx, limits)
    if root is None or _too_deep(root, limits.max_depth) is not None:
        raise error

    if "qualify_no_namespace" in allowed:
        qualify_no_namespace(root, ctx)
    if "wrap_bare_message" in allowed:
        root = wrap_bare_message(root, ctx)
    if "qualify_version_attribute" in allowed:
        qualify_version_attribute(root, ctx)

    chosen = select_version(root.get(VERSION_ATTR), version)
    for candidate in [chosen] if chosen else [Version.V2017, Version.V2021]:
        tree, run = _repair_body(root, ctx, candidate)
        if not run.warnings:
            continue  # nothing changed: the strict verdict stands
        try:
            inbound = decode_tree(tree, version=candidate, limits=limits)
        except MessageError:
            continue
        no_change = run.empty_status is not None
        if no_change:
            run.empty_status.text = None  # the tree shows what was received
            inbound.message.status_info.status = None
        return Tolerated(inbound, run.warnings, no_change, tuple(run.repairs))
    raise error
