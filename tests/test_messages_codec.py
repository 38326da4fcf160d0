"""Codec: round trips, output conventions, version selection, cross-version writing."""

from __future__ import annotations

import csv

import pytest
from lxml import etree

from gateway.messages import MessageError, Version, decode, encode, model, select_version
from gateway.messages.codec import format_datetime, parse_datetime
from gateway.messages.plan import NS

from support.messages_helpers import (
    FIXTURES,
    SHARED,
    VERSION_OF_LABEL,
    manifest_rows,
    needs_shared,
    reference_valid,
    sample_request,
    sample_requesting_message,
    sample_supplying_message,
)

VALID_ROWS = [r for r in manifest_rows() if r["expected"] == "valid"]


def test_manifest_has_valid_fixtures_of_every_kind_in_both_versions():
    seen = {(r["kind"], r["version"]) for r in VALID_ROWS}
    for cls in model.MESSAGE_CLASSES:
        for label in ("2017", "2021"):
            assert (cls.KIND, label) in seen


@pytest.mark.parametrize("row", VALID_ROWS, ids=lambda r: r["path"])
def test_valid_fixture_round_trips_without_loss(row):
    data = (FIXTURES / row["path"]).read_bytes()
    inbound = decode(data)
    assert inbound.kind == row["kind"]
    assert inbound.version is VERSION_OF_LABEL[row["version"]]
    written = encode(inbound.message, inbound.version)
    again = decode(written)
    assert again.message == inbound.message
    assert _infoset(written) == _infoset(data)


def _infoset(data: bytes) -> list[tuple]:
    """Element paths, attributes and text values, with dateTimes and decimals normalised."""
    out = []
    for el in etree.fromstring(data).iter():
        if not isinstance(el.tag, str):
            continue
        text = (el.text or "").strip() if len(el) == 0 else ""
        local = etree.QName(el).localname
        if text and local in _DATETIME_ELEMENTS:
            text = format_datetime(parse_datetime(text))
        if text and local == "monetaryValue":
            text = str(float(text))
        if local == "sentToPatron":
            text = {"1": "true", "0": "false"}.get(text, text)  # same xs:boolean value
        attrs = sorted((k, v) for k, v in el.attrib.items() if k != f"{{{NS}}}version")
        out.append((el.getroottree().getpath(el), tuple(attrs), text))
    return out


_DATETIME_ELEMENTS = {
    "timestamp", "timestampReceived", "needBeforeDate", "startDate", "endDate", "expectedDeliveryDate",
    "dueDate", "lastChange", "dateSent", "retryAfter", "retryBefore",
}


@needs_shared
@pytest.mark.parametrize("row", VALID_ROWS, ids=lambda r: r["path"])
def test_written_fixture_is_valid_under_reference_schema(row):
    inbound = decode((FIXTURES / row["path"]).read_bytes())
    assert reference_valid(encode(inbound.message, inbound.version), inbound.version)


def _corpus_rows():
    index = SHARED / "iso18626-corpus" / "INDEX.tsv"
    if not index.is_file():
        return []
    with index.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@needs_shared
@pytest.mark.parametrize("row", _corpus_rows(), ids=lambda r: r["path"][-60:])
def test_corpus_verdicts_match_reference_and_valid_ones_round_trip(row):
    data = (SHARED / "iso18626-corpus" / row["path"]).read_bytes()
    enveloped = "envelope" not in row["message_kind"] and "[ns=" not in row["message_kind"]
    attribute = row["version_attribute"].removeprefix("ill:version=")
    chosen = select_version(attribute) if row["version_attribute"].startswith("ill:version=") else None
    verdicts = {Version.V2017: row["valid_v1_2_xsd"] == "yes", Version.V2021: row["valid_2021_2_xsd"] == "yes"}
    # docs/protocol.md: ill:version picks the schema; only an unknown value lets either schema pass.
    reference_ok = enveloped and (verdicts[chosen] if chosen else any(verdicts.values()))
    try:
        inbound = decode(data)
    except MessageError:
        assert not reference_ok
        return
    assert reference_ok
    again = decode(encode(inbound.message, inbound.version))
    assert again.message == inbound.message


def test_output_uses_prefixed_version_and_scheme_and_zoned_datetimes():
    request = sample_request()
    request.bibliographic_info.bibliographic_item_id[0].bibliographic_item_identifier_code.scheme = (
        "http://illtransactions.org/ISO18626/OpenCodeList/BibliographicItemIdCodeList-V1.0"
    )
    data = encode(request, Version.V2017)
    root = etree.fromstring(data)
    assert root.get(f"{{{NS}}}version") == "1.2"
    assert b'ill:version="1.2"' in data and b"ill:scheme=" in data
    for el in root.iter(f"{{{NS}}}timestamp", f"{{{NS}}}needBeforeDate"):
        assert el.text.endswith("Z") or el.text[-6] in "+-"


@pytest.mark.parametrize("message", [sample_request(), sample_supplying_message(), sample_requesting_message()],
                         ids=lambda m: m.KIND)
def test_every_2017_header_carries_multiple_item_request_id_even_when_unset(message):
    root = etree.fromstring(encode(message, Version.V2017))
    header = root[0].find(f"{{{NS}}}header")
    assert header.find(f"{{{NS}}}multipleItemRequestId") is not None


@pytest.mark.parametrize("version", list(Version))
@pytest.mark.parametrize("message", [sample_request(), sample_supplying_message(), sample_requesting_message()],
                         ids=lambda m: m.KIND)
def test_one_model_object_writes_valid_xml_for_both_versions(message, version):
    data = encode(message, version)
    assert decode(data).version is version
    assert decode(data).message.KIND == message.KIND


@needs_shared
@pytest.mark.parametrize("version", list(Version))
def test_version_specific_renames_are_written_per_version(version):
    data = encode(sample_request(), version)
    assert reference_valid(data, version)
    expected, absent = (b"preferredFormat", b"itemFormat") if version is Version.V2017 else (b"itemFormat", b"preferredFormat")
    assert expected in data and absent not in data


@pytest.mark.parametrize(
    "attribute, configured, expected",
    [
        ("1.2", None, Version.V2017),
        ("1.0", None, Version.V2017),
        ("1.1", None, Version.V2017),
        ("v1_2_2017", None, Version.V2017),
        ("2021-2", None, Version.V2021),
        ("2021", None, Version.V2021),
        ("1.2", Version.V2021, Version.V2021),
        ("banana", None, None),
        (None, None, None),
    ],
)
def test_version_selection(attribute, configured, expected):
    assert select_version(attribute, configured) is expected


def test_unknown_version_value_tries_2017_then_2021():
    data = encode(sample_supplying_message(), Version.V2021).replace(b'ill:version="2021-2"', b'ill:version="banana"')
    assert decode(data).version is Version.V2021


def test_forced_version_overrides_the_attribute():
    data = encode(sample_supplying_message(), Version.V2017)  # has multipleItemRequestId: invalid in 2021
    with pytest.raises(MessageError) as info:
        decode(data, version=Version.V2021)
    assert info.value.first.error_type.value == "UnrecognisedDataElement"


@pytest.mark.parametrize(
    "text, iso",
    [
        ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z"),
        ("2024-01-02T03:04:05+01:00", "2024-01-02T03:04:05+01:00"),
        ("2024-01-02T03:04:05.123Z", "2024-01-02T03:04:05.123000Z"),
        ("2024-01-02T03:04:05", "2024-01-02T03:04:05Z"),
        ("2024-01-02T24:00:00Z", "2024-01-03T00:00:00Z"),
    ],
)
def test_datetime_lexical_forms(text, iso):
    assert format_datetime(parse_datetime(text)) == iso


def test_agency_id_text_form():
    assert str(model.AgencyId.parse("ISIL:DK-820010")) == "ISIL:DK-820010"
    with pytest.raises(ValueError):
        model.AgencyId.parse("no-colon")
