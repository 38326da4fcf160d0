"""fixtures/MANIFEST.tsv and the fixture files agree, and every label is justified.

Conventions checked here (see fixtures/README.md):

- `valid` rows live in fixtures/valid/<version>/ and validate against the reference XSD
  of that version.
- An invalid row with a version (fixtures/invalid/<version>/) is a *schema* fault: it is
  well-formed, has a proper ISO18626Message envelope, and the reference XSD of its
  version rejects it.
- An invalid row without a version (`-`, fixtures/invalid/*.xml) is a fault found before
  any schema is chosen (not XML, envelope, DTD, size, depth) and is always
  BadlyFormedMessage.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import pytest
from lxml import etree

try:
    from support.shared_paths import FIXTURES, FIXTURES_MANIFEST, REFERENCE_XSD, VERSIONS, requires_shared
except ImportError:  # tests/ imported as a package
    from tests.support.shared_paths import FIXTURES, FIXTURES_MANIFEST, REFERENCE_XSD, VERSIONS, requires_shared

NS = "http://illtransactions.org/2013/iso18626"
XS = "{http://www.w3.org/2001/XMLSchema}"
ENVELOPE = f"{{{NS}}}ISO18626Message"
KINDS = (
    "request", "requestConfirmation", "supplyingAgencyMessage",
    "supplyingAgencyMessageConfirmation", "requestingAgencyMessage", "requestingAgencyMessageConfirmation",
)
ERROR_TYPES = (
    "BadlyFormedMessage", "UnrecognisedDataElement", "UnrecognisedDataValue",
    "UnsupportedActionType", "UnsupportedReasonForMessageType",
)
VERSION_ATTRIBUTE = {"2017": "1.2", "2021": "2021-2"}
MAX_BODY = 1024 * 1024
MAX_DEPTH = 32
HEADER = ["path", "kind", "version", "expected"]


def _read_manifest() -> list[dict[str, str]]:
    with FIXTURES_MANIFEST.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        assert header == HEADER, f"MANIFEST.tsv header is {header!r}, expected {HEADER!r}"
        rows = []
        for lineno, fields in enumerate(reader, start=2):
            assert len(fields) == 4, f"MANIFEST.tsv line {lineno}: expected 4 tab-separated fields, got {fields!r}"
            rows.append(dict(zip(HEADER, fields), line=lineno))
        return rows


ROWS = _read_manifest() if FIXTURES_MANIFEST.is_file() else []
VALID = [r for r in ROWS if r["expected"] == "valid"]
SCHEMA_FAULTS = [r for r in ROWS if r["expected"] != "valid" and r["version"] != "-"]
PRE_SCHEMA_FAULTS = [r for r in ROWS if r["expected"] != "valid" and r["version"] == "-"]


def _ids(rows):
    return [r["path"] for r in rows]


def _safe_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _parse(data: bytes) -> etree._ElementTree | None:
    try:
        return etree.fromstring(data, _safe_parser()).getroottree()
    except etree.XMLSyntaxError:
        return None


def _depth(el: etree._Element) -> int:
    children = [c for c in el if isinstance(c.tag, str)]
    return 1 + max((_depth(c) for c in children), default=0)


def _pre_schema_fault(data: bytes, tree: etree._ElementTree) -> str | None:
    """Why a well-formed body is refused before schema validation, or None."""
    root = tree.getroot()
    if len(data) > MAX_BODY:
        return "oversize"
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        return "DTD"
    if root.tag != ENVELOPE:
        return f"root {root.tag}"
    if not any(isinstance(c.tag, str) for c in root):
        return "empty envelope"
    if _depth(root) > MAX_DEPTH:
        return "too deep"
    return None


@functools.cache
def _reference(version: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(REFERENCE_XSD[version])))


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


# ----------------------------------------------------------------------------- manifest

def test_manifest_exists_and_is_not_empty():
    assert FIXTURES_MANIFEST.is_file(), f"{FIXTURES_MANIFEST} is missing"
    assert ROWS, "MANIFEST.tsv lists no fixtures"


def test_manifest_rows_are_well_formed():
    problems = []
    seen = set()
    for r in ROWS:
        where = f"line {r['line']} ({r['path']})"
        if r["path"] in seen:
            problems.append(f"{where}: listed twice")
        seen.add(r["path"])
        if r["kind"] not in (*KINDS, "-"):
            problems.append(f"{where}: unknown kind {r['kind']!r}")
        if r["version"] not in (*VERSIONS, "-"):
            problems.append(f"{where}: unknown version {r['version']!r}")
        if r["expected"] not in ("valid", *ERROR_TYPES):
            problems.append(f"{where}: unknown expected value {r['expected']!r}")
        parts = Path(r["path"]).parts
        if r["expected"] == "valid":
            if parts[:1] != ("valid",) or len(parts) != 3 or parts[1] != r["version"]:
                problems.append(f"{where}: a valid fixture must be valid/<version>/<file> with its version set")
            if r["kind"] == "-":
                problems.append(f"{where}: a valid fixture must name its message kind")
        else:
            if parts[:1] != ("invalid",):
                problems.append(f"{where}: an invalid fixture must be under invalid/")
            in_version_dir = len(parts) == 3 and parts[1] in VERSIONS
            if r["version"] == "-" and len(parts) != 2:
                problems.append(f"{where}: a version-independent fixture belongs directly in invalid/")
            if r["version"] != "-" and not (in_version_dir and parts[1] == r["version"]):
                problems.append(f"{where}: a {r['version']} fixture belongs in invalid/{r['version']}/")
            if r["version"] == "-" and r["expected"] != "BadlyFormedMessage":
                problems.append(f"{where}: faults found before schema validation are BadlyFormedMessage")
    assert not problems, "\n".join(problems)


def test_manifest_and_files_agree():
    on_disk = {
        p.relative_to(FIXTURES).as_posix()
        for top in ("valid", "invalid")
        for p in (FIXTURES / top).rglob("*")
        if p.is_file()
    }
    listed = {r["path"] for r in ROWS}
    missing_files = sorted(listed - on_disk)
    unlisted = sorted(on_disk - listed)
    assert not missing_files, f"listed in MANIFEST.tsv but not on disk: {missing_files}"
    assert not unlisted, f"on disk but not listed in MANIFEST.tsv: {unlisted}"


def test_every_kind_and_error_type_is_represented():
    for version in VERSIONS:
        kinds = {r["kind"] for r in VALID if r["version"] == version}
        assert kinds == set(KINDS), f"valid {version} fixtures lack kinds {set(KINDS) - kinds}"
        errors = {r["expected"] for r in SCHEMA_FAULTS if r["version"] == version}
        assert errors == set(ERROR_TYPES), f"invalid {version} fixtures lack {set(ERROR_TYPES) - errors}"


# ----------------------------------------------------------------------------- valid fixtures

@pytest.mark.parametrize("row", VALID, ids=_ids(VALID))
def test_valid_fixture_follows_output_conventions(row):
    data = (FIXTURES / row["path"]).read_bytes()
    tree = _parse(data)
    assert tree is not None, "does not parse"
    assert _pre_schema_fault(data, tree) is None
    root = tree.getroot()
    assert root.tag == ENVELOPE
    assert root.get(f"{{{NS}}}version") == VERSION_ATTRIBUTE[row["version"]]
    assert root.nsmap.get("ill") == NS, "the namespace is bound to the ill: prefix"
    children = [c for c in root if isinstance(c.tag, str)]
    assert [_local(c) for c in children] == [row["kind"]]
    for el in root.iter(etree.Element):
        assert etree.QName(el).namespace == NS, f"{el.tag} is not in the ISO 18626 namespace"
        for name in el.attrib:
            assert etree.QName(name).namespace == NS, f"unqualified attribute {name} on {el.tag}"
    if row["version"] == "2017":
        for header in root.iter(f"{{{NS}}}header"):
            assert header.find(f"{{{NS}}}multipleItemRequestId") is not None, "v1.2 header lacks multipleItemRequestId"


@requires_shared
@pytest.mark.parametrize("row", VALID, ids=_ids(VALID))
def test_valid_fixture_validates_against_reference_xsd(row):
    schema = _reference(row["version"])
    tree = etree.parse(str(FIXTURES / row["path"]), _safe_parser())
    assert schema.validate(tree), f"{row['path']}:\n{schema.error_log}"


@requires_shared
@pytest.mark.parametrize("version", VERSIONS)
def test_valid_fixtures_cover_every_closed_code_value(version):
    xsd = etree.parse(str(REFERENCE_XSD[version]))
    enums = {
        st.get("name"): [e.get("value") for e in st.iter(f"{XS}enumeration")]
        for st in xsd.iter(f"{XS}simpleType")
        if st.get("name")
    }
    enums = {name: values for name, values in enums.items() if values}
    users: dict[str, set[str]] = {}
    for el in xsd.iter(f"{XS}element"):
        if el.get("type") in enums:
            users.setdefault(el.get("type"), set()).add(el.get("name"))
    seen: dict[str, set[str]] = {}
    for row in VALID:
        if row["version"] != version:
            continue
        for el in etree.parse(str(FIXTURES / row["path"])).iter(etree.Element):
            seen.setdefault(_local(el), set()).add(el.text or "")
    missing = {}
    for typ, values in enums.items():
        used = set().union(*(seen.get(name, set()) for name in users.get(typ, ())))
        if absent := [v for v in values if v not in used]:
            missing[typ] = absent
    assert not missing, f"closed-list values no valid {version} fixture uses: {missing}"


# ----------------------------------------------------------------------------- invalid fixtures

@pytest.mark.parametrize("row", SCHEMA_FAULTS, ids=_ids(SCHEMA_FAULTS))
def test_schema_fault_fixture_is_well_formed_with_envelope(row):
    data = (FIXTURES / row["path"]).read_bytes()
    tree = _parse(data)
    assert tree is not None, "a schema-fault fixture must be well-formed XML (otherwise it is BadlyFormedMessage)"
    assert _pre_schema_fault(data, tree) is None, "a schema-fault fixture must pass the envelope checks"
    children = [_local(el) for el in tree.getroot().iterchildren(etree.Element)]
    assert row["kind"] in children, f"no {row['kind']} inside the envelope"


@requires_shared
@pytest.mark.parametrize("row", SCHEMA_FAULTS, ids=_ids(SCHEMA_FAULTS))
def test_schema_fault_fixture_is_invalid_under_reference_xsd(row):
    tree = _parse((FIXTURES / row["path"]).read_bytes())
    if tree is None:
        pytest.fail("does not parse")
    schema = _reference(row["version"])
    assert not schema.validate(tree), f"{row['path']} is labelled {row['expected']} but the {row['version']} reference XSD accepts it"


@pytest.mark.parametrize("row", PRE_SCHEMA_FAULTS, ids=_ids(PRE_SCHEMA_FAULTS))
def test_pre_schema_fault_fixture_is_refused_before_validation(row):
    data = (FIXTURES / row["path"]).read_bytes()
    tree = _parse(data)
    if tree is None:
        return  # not well-formed XML (or not UTF-8, or an entity bomb): BadlyFormedMessage
    assert _pre_schema_fault(data, tree) is not None, (
        "well-formed, in an envelope, and small and shallow: this is not a pre-schema fault")
    names = {_local(el) for el in tree.getroot().iter(etree.Element)}
    if row["kind"] == "-":
        assert not names & set(KINDS), f"kind is '-' but the body holds {names & set(KINDS)}"
    else:
        assert row["kind"] in names, f"no {row['kind']} element in the body"


def test_size_and_depth_limits_are_exercised():
    sizes = {r["path"]: (FIXTURES / r["path"]).stat().st_size for r in PRE_SCHEMA_FAULTS}
    assert any(s > MAX_BODY for s in sizes.values()), "no invalid fixture is larger than 1 MiB"
    assert all(s < MAX_BODY for r in VALID for s in [(FIXTURES / r["path"]).stat().st_size])
    depths = []
    for r in PRE_SCHEMA_FAULTS:
        tree = _parse((FIXTURES / r["path"]).read_bytes())
        if tree is not None:
            depths.append(_depth(tree.getroot()))
    assert any(d > MAX_DEPTH for d in depths), "no invalid fixture nests deeper than 32 elements"
