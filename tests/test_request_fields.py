"""Every form field ISO 18626 can carry reaches the outgoing request, and the local ones do not
(docs/request-fields.md): each SENT field changes the encoded request in at least one schema
version, each LOCAL field in none. The copyright and patron flags have their elements."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from lxml import etree
from sqlalchemy import select

from gateway.core import BorrowingState, BorrowingStatus, Outgoing, RequestDetails
from gateway.core.request_fields import LOCAL, SENT
from gateway.messages import Version
from gateway.messages.codes import RequestType
from gateway.service.outgoing import encode_outgoing
from gateway.store.models import outbox_t

from support.api_helpers import BR, P1, start_api

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
NS = {"ill": "http://illtransactions.org/2013/iso18626"}
BASE = RequestDetails(
    requester="patron-1", pickup_location="Main desk", requester_name="Reader", owner="ILL desk",
    title="T", author="A", title_of_component="C", author_of_component="CA", isbn="111", issn="222",
    oclc_number="333", other_identifiers=(("DOI", "10.1/a"),), publisher="P", publication_date="2001",
    edition="2nd", volume="3", issue="4", pages="5-6", format="Physical", requested_media="book",
    allow_other_format=False, preferred_send_method="Mail", language="eng", needed_by=date(2027, 1, 1),
    delivery_location="library", reading_room_only=False, willing_to_pay=True, needs_patron_information=True,
    agree_to_copyright_terms=False, maximum_fee=Decimal("5.00"), currency="EUR", level_of_service="normal",
    request_note="N",
)


def _other(name: str, value):
    if name == "format":
        return "Digital"
    if name == "currency":
        return "GBP"
    if isinstance(value, bool):
        return not value
    if isinstance(value, date):
        return date(2028, 2, 2)
    if isinstance(value, Decimal):
        return Decimal("9.00")
    if isinstance(value, tuple):
        return (("PMID", "42"),)
    return f"{value}-changed"


def _xml(details: RequestDetails, version: Version) -> bytes:
    state = BorrowingState(details=details, status=BorrowingStatus.CREATED)
    out = Outgoing(P1, "request", None, None, RequestType.New)
    return encode_outgoing(state, out, ours="ISIL:US-X", request_id="BR-1", supplier_request_id=None, now=NOW,
                           version=version, copyright_compliance="US-CCG")


def test_the_two_sets_cover_every_form_field():
    assert SENT | LOCAL == {f.name for f in fields(RequestDetails)} and not SENT & LOCAL


@pytest.mark.parametrize("name", sorted(SENT | LOCAL))
def test_a_sent_field_reaches_the_request_and_a_local_one_does_not(name):
    changed = replace(BASE, **{name: _other(name, getattr(BASE, name))})
    differs = [v for v in Version if _xml(BASE, v) != _xml(changed, v)]
    if name in SENT:
        assert differs, f"{name} is not carried by the outgoing request"
    else:
        assert not differs, f"{name} is documented as local but changes the request ({differs})"


def _find(xml: bytes, path: str) -> list[str]:
    return [e.text for e in etree.fromstring(xml).iterfind(path, NS)]


def test_copyright_patron_reading_room_and_send_method_elements():
    on = replace(BASE, agree_to_copyright_terms=True, reading_room_only=True)
    for version in Version:
        xml = _xml(on, version)
        assert _find(xml, ".//ill:serviceInfo/ill:copyrightCompliance") == ["US-CCG"]
        assert _find(xml, ".//ill:patronInfo/ill:patronId") == ["patron-1"]
        assert _find(xml, ".//ill:billingInfo/ill:maximumCosts/ill:currencyCode") == ["EUR"]
    xml = _xml(on, Version.V2021)
    assert _find(xml, ".//ill:serviceInfo/ill:loanCondition") == ["LibraryUseOnly"]
    assert _find(xml, ".//ill:requestedDeliveryInfo/ill:deliveryMethod") == ["Mail"]
    off = replace(BASE, agree_to_copyright_terms=False, needs_patron_information=False)
    for version in Version:
        xml = _xml(off, version)
        assert not _find(xml, ".//ill:copyrightCompliance") and not _find(xml, ".//ill:patronInfo")


@pytest.fixture
async def api(db_url, aiohttp_client):
    return await start_api(aiohttp_client, db_url, requests={"copyright_compliance": "UK-FairDealing"})


async def test_the_configured_copyright_code_goes_out(api):
    status, data = await api.post(BR, {"title": "T", "requester": "p", "pickup_location": "M", "partners": [P1],
                                       "format": "Digital", "agree_to_copyright_terms": True,
                                       "needs_patron_information": True})
    assert status == 201, data
    async with api.gateway.engine.connect() as conn:
        body = (await conn.execute(select(outbox_t.c.body).where(outbox_t.c.request_id == data["id"]))).scalar_one()
    assert _find(body, ".//ill:copyrightCompliance") == ["UK-FairDealing"]
    assert _find(body, ".//ill:patronInfo/ill:patronId") == ["p"]
