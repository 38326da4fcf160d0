"""Fault classification, hardened parsing and confirmations."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from lxml import etree

from gateway.messages import (
    Action,
    ErrorType,
    MessageError,
    ReasonForMessage,
    Version,
    answer,
    decode,
    encode,
)
from gateway.messages.confirmations import Echo, confirmation
from gateway.messages.faults import Fault
from gateway.messages.inbound import Limits
from gateway.messages.plan import NS

from support.messages_helpers import (
    FIXTURES,
    NOW,
    manifest_rows,
    needs_shared,
    reference_valid,
    sample_request,
    sample_requesting_message,
    sample_supplying_message,
)

INVALID_ROWS = [r for r in manifest_rows() if r["expected"] != "valid"]
Q = "{%s}" % NS


def test_manifest_has_invalid_fixtures_for_every_error_type():
    assert {r["expected"] for r in INVALID_ROWS} == {e.value for e in ErrorType}


@pytest.mark.parametrize("row", INVALID_ROWS, ids=lambda r: r["path"])
def test_invalid_fixture_yields_its_labelled_error_type(row):
    data = (FIXTURES / row["path"]).read_bytes()
    with pytest.raises(MessageError) as info:
        decode(data)
    fault = info.value.first
    assert fault.error_type.value == row["expected"], fault.error_value
    assert fault.error_value


@pytest.mark.parametrize("row", INVALID_ROWS, ids=lambda r: r["path"])
def test_every_invalid_fixture_can_be_answered_with_a_valid_error_confirmation(row):
    data = (FIXTURES / row["path"]).read_bytes()
    with pytest.raises(MessageError) as info:
        decode(data)
    reply = decode(answer(info.value, NOW, data=data))
    assert reply.kind.endswith("Confirmation")
    assert reply.message.confirmation_header.message_status.value == "ERROR"
    assert reply.message.error_data[0].error_type.value == row["expected"]


def _mutate(message, version=Version.V2017, **replace) -> bytes:
    data = encode(message, version)
    for old, new in replace.items():
        data = data.replace(old.encode(), new.encode())
    return data


def test_bad_status_names_path_and_value():
    data = _mutate(sample_supplying_message(), **{">Loaned<": ">Shipped<"})
    with pytest.raises(MessageError) as info:
        decode(data)
    fault = info.value.first
    assert fault.error_type is ErrorType.UnrecognisedDataValue
    assert "/ISO18626Message/supplyingAgencyMessage/statusInfo/status" in fault.error_value
    assert "'Shipped'" in fault.error_value


def test_bad_action_and_bad_reason_have_their_own_error_types():
    with pytest.raises(MessageError) as info:
        decode(_mutate(sample_requesting_message(), **{">Received<": ">Teleported<"}))
    assert info.value.first.error_type is ErrorType.UnsupportedActionType
    with pytest.raises(MessageError) as info:
        decode(_mutate(sample_supplying_message(), **{">StatusChange<": ">Gossip<"}))
    assert info.value.first.error_type is ErrorType.UnsupportedReasonForMessageType


def test_unknown_element_and_wrong_order_are_unrecognised_data_elements():
    with pytest.raises(MessageError) as info:
        decode(_mutate(sample_requesting_message(), **{"<ill:note>": "<ill:colour>red</ill:colour><ill:note>"}))
    assert info.value.first.error_type is ErrorType.UnrecognisedDataElement
    assert "unknown element colour" in info.value.first.error_value
    root = etree.fromstring(encode(sample_requesting_message(), Version.V2017))
    header = root[0][0]
    header.insert(0, header[1])  # requestingAgencyId before supplyingAgencyId
    with pytest.raises(MessageError) as info:
        decode(etree.tostring(root))
    assert info.value.first.error_type is ErrorType.UnrecognisedDataElement


def test_missing_required_element_is_badly_formed_and_named():
    root = etree.fromstring(encode(sample_supplying_message(), Version.V2017))
    status_info = root[0].find(Q + "statusInfo")
    status_info.remove(status_info.find(Q + "lastChange"))
    with pytest.raises(MessageError) as info:
        decode(etree.tostring(root))
    assert info.value.first.error_type is ErrorType.BadlyFormedMessage
    assert "missing required element lastChange" in info.value.first.error_value


def test_2021_reports_several_faults_2017_only_the_first():
    data = _mutate(sample_supplying_message(), Version.V2021, **{">Loaned<": ">Shipped<", ">Y<": ">Maybe<"})
    with pytest.raises(MessageError) as info:
        decode(data)
    assert len(info.value.faults) == 2
    reply = decode(answer(info.value, NOW))
    assert len(reply.message.error_data) == 2
    data17 = _mutate(sample_supplying_message(), Version.V2017, **{">Loaned<": ">Shipped<", ">Y<": ">Maybe<"})
    with pytest.raises(MessageError) as info17:
        decode(data17)
    assert len(decode(answer(info17.value, NOW)).message.error_data) == 1


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"this is not xml", "not well-formed"),
        (b"", "not well-formed"),
        (b"\xff\xfe<\x00", "not well-formed"),
        (b'<?xml version="1.0" encoding="UTF-8"?><ill:ISO18626Message xmlns:ill="' + NS.encode()
         + b'" ill:version="1.2"><ill:request>\xc3\x28</ill:request></ill:ISO18626Message>', "not well-formed"),
        (b"<ISO18626Message/>", "root element must be ISO18626Message"),
        (b'<x:ISO18626Message xmlns:x="urn:wrong"/>', "root element must be ISO18626Message"),
        (b'<request xmlns="' + NS.encode() + b'"/>', "root element must be ISO18626Message"),
        (b'<ISO18626Message xmlns="' + NS.encode() + b'" xmlns:ill="' + NS.encode() + b'" ill:version="1.2"/>',
         "empty envelope"),
    ],
)
def test_not_xml_wrong_root_empty_envelope_are_badly_formed(data, fragment):
    with pytest.raises(MessageError) as info:
        decode(data)
    assert info.value.first.error_type is ErrorType.BadlyFormedMessage
    assert fragment in info.value.first.error_value


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<ISO18626Message xmlns="http://illtransactions.org/2013/iso18626">&lol4;</ISO18626Message>"""


def test_billion_laughs_and_xxe_are_refused_without_expansion(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    xxe = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://' + str(secret).encode()
           + b'">]><ISO18626Message xmlns="' + NS.encode() + b'">&x;</ISO18626Message>')
    for data in (BILLION_LAUGHS, xxe, BILLION_LAUGHS.decode().encode("utf-16")):
        started = time.perf_counter()
        with pytest.raises(MessageError) as info:
            decode(data)
        assert time.perf_counter() - started < 1.0
        assert info.value.first.error_type is ErrorType.BadlyFormedMessage
        reply = answer(info.value, NOW, data=data)
        assert b"TOP-SECRET" not in reply and b"lollol" not in reply


def test_oversize_and_too_deep_are_badly_formed():
    big = encode(sample_requesting_message(), Version.V2017).replace(b"thanks", b"x" * 2_000_000)
    with pytest.raises(MessageError) as info:
        decode(big)
    assert "limit" in info.value.first.error_value
    deep = encode(sample_requesting_message(), Version.V2017).replace(
        b"<ill:note>thanks</ill:note>", b"<ill:note>" + b"<ill:x>" * 10_000 + b"</ill:x>" * 10_000 + b"</ill:note>"
    )
    with pytest.raises(MessageError) as info:
        decode(deep)
    assert info.value.first.error_type is ErrorType.BadlyFormedMessage
    moderately_deep = encode(sample_requesting_message(), Version.V2017).replace(
        b"<ill:note>thanks</ill:note>", b"<ill:note>" + b"<ill:x>" * 100 + b"</ill:x>" * 100 + b"</ill:note>"
    )
    with pytest.raises(MessageError) as info:
        decode(moderately_deep, limits=Limits(max_depth=32))
    assert "nesting deeper than 32" in info.value.first.error_value


# --- confirmations ----------------------------------------------------------------------------

@pytest.mark.parametrize("version", list(Version))
@pytest.mark.parametrize(
    "message, confirmation_kind",
    [
        (sample_request(), "requestConfirmation"),
        (sample_supplying_message(), "supplyingAgencyMessageConfirmation"),
        (sample_requesting_message(), "requestingAgencyMessageConfirmation"),
    ],
    ids=lambda x: getattr(x, "KIND", x),
)
def test_ok_confirmation_echoes_the_header(message, confirmation_kind, version):
    message.header.timestamp = NOW - timedelta(minutes=5)
    if version is Version.V2017:
        message.header.multiple_item_request_id = "MI-9"
    inbound = decode(encode(message, version))
    reply = decode(answer(inbound, NOW))
    assert reply.kind == confirmation_kind and reply.version is version
    header = reply.message.confirmation_header
    assert header.message_status.value == "OK"
    assert header.supplying_agency_id == message.header.supplying_agency_id
    assert header.requesting_agency_id == message.header.requesting_agency_id
    assert header.requesting_agency_request_id == "BR-1001"
    assert header.timestamp == NOW
    assert header.timestamp_received == NOW - timedelta(minutes=5)
    assert header.multiple_item_request_id == ("MI-9" if version is Version.V2017 else None)
    if confirmation_kind == "supplyingAgencyMessageConfirmation":
        assert reply.message.reason_for_message is ReasonForMessage.StatusChange
    if confirmation_kind == "requestingAgencyMessageConfirmation":
        assert reply.message.action is Action.Received


@needs_shared
@pytest.mark.parametrize("version", list(Version))
def test_error_confirmation_for_a_later_stage_fault_is_valid_under_reference(version):
    inbound = decode(encode(sample_supplying_message(), version))
    fault = Fault(ErrorType.UnrecognisedDataValue, "/ISO18626Message/supplyingAgencyMessage/header/"
                  "requestingAgencyRequestId: no request 'BR-1001' from ISIL:US-NjP")
    data = answer(inbound, NOW, faults=[fault])
    assert reference_valid(data, version)
    reply = decode(data).message
    assert reply.confirmation_header.message_status.value == "ERROR"
    assert reply.error_data[0].error_value.endswith("from ISIL:US-NjP")


def test_garbage_is_answered_with_a_confirmation_of_the_guessed_kind():
    data = b"<ill:supplyingAgencyMessage><broken"
    with pytest.raises(MessageError) as info:
        decode(data)
    reply = decode(answer(info.value, NOW, data=data))
    assert reply.kind == "supplyingAgencyMessageConfirmation"
    with pytest.raises(MessageError) as info:
        decode(b"plain garbage")
    assert decode(answer(info.value, NOW, data=b"plain garbage")).kind == "requestConfirmation"


def test_salvaged_echo_of_an_invalid_message_keeps_what_it_can():
    data = _mutate(sample_requesting_message(), **{">Received<": ">Teleported<"})
    with pytest.raises(MessageError) as info:
        decode(data)
    reply = decode(answer(info.value, NOW)).message
    assert reply.confirmation_header.requesting_agency_request_id == "BR-1001"
    assert str(reply.confirmation_header.supplying_agency_id) == "ISIL:DK-820010"
    assert reply.action is None  # never echo a value the schema refuses


def test_2021_only_action_is_not_echoed_in_a_2017_confirmation():
    echo = Echo(kind="requestingAgencyMessage", action=Action.Lost)
    assert confirmation(echo, NOW, [], Version.V2017).action is None
    assert confirmation(echo, NOW, [], Version.V2021).action is Action.Lost


def _decodable_messages() -> list[bytes]:
    """Every valid fixture and every corpus message that decodes (strictly or leniently)."""
    from gateway.messages.tolerance import decode_tolerant
    from support.shared_paths import SHARED_AVAILABLE, corpus_messages

    found = []
    paths = [FIXTURES / r["path"] for r in manifest_rows() if r["expected"] == "valid"]
    for path in paths + (corpus_messages() if SHARED_AVAILABLE else []):
        data = path.read_bytes()
        try:
            decode(data)
        except MessageError:
            try:
                decode_tolerant(data, "lenient")
            except MessageError:
                continue
        found.append(data)
    return found


@needs_shared
def test_confirmations_of_decoded_messages_pass_the_reference_schema_without_our_check():
    """answer() skips the schema check for a message that decoded: prove that is safe for every
    message we have, OK and ERROR, in its own version and in the other one."""
    from gateway.messages.tolerance import decode_tolerant

    checked = 0
    for data in _decodable_messages():
        try:
            inbound = decode(data)
        except MessageError:
            inbound = decode_tolerant(data, "lenient").inbound
        if inbound.kind.endswith("Confirmation"):  # never answered: the endpoint refuses them
            continue
        fault = Fault(ErrorType.UnrecognisedDataValue, "/ISO18626Message/x: refused <&> \"here\"")
        for version in Version:
            for faults in (None, [fault]):
                reply = answer(inbound, NOW, faults=faults, version=version)
                assert reference_valid(reply, version), (inbound.kind, version, faults, reply[:300])
                checked += 1
    assert checked >= 4 * 140  # 75 valid fixtures and the corpus messages that decode
