"""An inbound body is parsed once: the tolerant and the partner-version passes reuse the strict tree."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from lxml import etree

from gateway.config import Partner
from gateway.messages import Status, Version, encode
from gateway.transport import server

from support.messages_helpers import NOW, sample_supplying_message, swap_agencies

PARTNER = "ISIL:DK-820010"  # the supplier of the sample message


# Built at import: encoding parses its own output to validate it, which is not what is counted.
STRICT = encode(sample_supplying_message(Status.WillSupply), Version.V2017)
REORDERED = swap_agencies(STRICT)


def gateway_with(partner: Partner) -> SimpleNamespace:
    """The parts of an IsoEndpoint that decoding reads."""
    return SimpleNamespace(partners={partner.agency: partner}, clock=lambda: NOW)


@pytest.fixture
def parses(monkeypatch) -> list[bytes]:
    """Every document lxml parses while the test runs (replies included: tests count their body)."""
    seen: list[bytes] = []
    original = etree.fromstring

    def counting(text, *args, **kwargs):
        seen.append(text)
        return original(text, *args, **kwargs)

    monkeypatch.setattr(etree, "fromstring", counting)
    return seen


async def test_a_strict_message_is_parsed_once(parses):
    gw = gateway_with(Partner(PARTNER, "peer", "http://127.0.0.1:9/p"))
    inbound, error, warnings = await server._decode(gw, STRICT)
    assert error is None and warnings == () and inbound.version is Version.V2017
    assert parses.count(STRICT) == 1


async def test_a_tolerated_message_is_parsed_once(parses):
    gw = gateway_with(Partner(PARTNER, "peer", "http://127.0.0.1:9/p", profile="reshare"))
    inbound, error, warnings = await server._decode(gw, REORDERED)
    assert error is None and len(warnings) == 1 and "reorder_children" in warnings[0]
    assert parses.count(REORDERED) == 1


async def test_a_message_read_again_in_the_partners_version_is_parsed_once(parses):
    # Valid as the 1.2 it says it is; the partner is configured for 2021, whose header has no
    # multipleItemRequestId: the second reading, on the same tree, refuses it.
    gw = gateway_with(Partner(PARTNER, "peer", "http://127.0.0.1:9/p", version=Version.V2021))
    inbound, error, warnings = await server._decode(gw, STRICT)
    assert inbound is None and b"multipleItemRequestId" in error
    assert parses.count(STRICT) == 1


async def test_a_refused_message_is_parsed_once(parses):
    gw = gateway_with(Partner(PARTNER, "peer", "http://127.0.0.1:9/p"))  # strict: no repair allowed
    inbound, error, warnings = await server._decode(gw, REORDERED)
    assert inbound is None and b"ERROR" in error
    assert parses.count(REORDERED) == 1
