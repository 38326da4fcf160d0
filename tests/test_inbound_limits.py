"""Over-long inbound values: refused with an ERROR confirmation naming the element, before the
database, alike on SQLite and PostgreSQL; what is echoed or audited is clipped
(docs/inbound-limits.md)."""

from __future__ import annotations

from sqlalchemy import func, select

from gateway.core import RequestDetails
from gateway.messages import Version, decode, encode, model
from gateway.messages.codes import ReasonForMessage, Status
from gateway.messages.lengths import BOUNDS
from gateway.store import models
from gateway.store.models import borrowing_requests_t, history_t, lending_requests_t, raw_messages_t

from support.gateway_helpers import OURS, start_gateway
from support.messages_helpers import NOW, sample_request

P1 = "ISIL:DK-1"
PARTNERS = [{"agency": P1, "url": "http://127.0.0.1:9/p1"}]
XML = {"Content-Type": "application/xml"}
LONG = "X" * 300


def lending_request(requester: str = P1, ref: str = "BR-1") -> bytes:
    message = sample_request()
    message.header.requesting_agency_id = model.AgencyId.parse(requester)
    message.header.supplying_agency_id = model.AgencyId.parse(OURS)
    message.header.requesting_agency_request_id = ref
    return encode(message, Version.V2017)


def supplier_message(ref: str, requester: str = OURS, status: Status = Status.WillSupply,
                     reason_unfilled: str | None = None) -> bytes:
    return encode(model.SupplyingAgencyMessage(
        header=model.SupplyingAgencyMessageHeader(
            supplying_agency_id=model.AgencyId.parse(P1), requesting_agency_id=model.AgencyId.parse(requester),
            timestamp=NOW, requesting_agency_request_id=ref),
        message_info=model.MessageInfo(
            reason_for_message=ReasonForMessage.RequestResponse,
            reason_unfilled=model.SchemeValue(reason_unfilled) if reason_unfilled else None),
        status_info=model.StatusInfo(status=status, last_change=NOW)), Version.V2017)


async def _post(client, body: bytes):
    response = await client.post("/iso18626", data=body, headers=XML)
    assert response.status == 200, await response.text()
    return decode(await response.read()).message


async def _count(gateway, table) -> int:
    async with gateway.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar()


def _refused_at(reply, element: str) -> None:
    assert reply.confirmation_header.message_status.value == "ERROR"
    error = reply.error_data[0]
    assert error.error_type.value == "UnrecognisedDataValue"
    assert element in error.error_value and "at most" in error.error_value, error.error_value


async def test_overlong_identifiers_get_an_error_confirmation_naming_the_element(aiohttp_client, db_url):
    client, gateway = await start_gateway(aiohttp_client, db_url, PARTNERS)
    # An unknown agency of 300 characters (was audited uncut: HTTP 500 on PostgreSQL).
    _refused_at(await _post(client, lending_request(requester="ISIL:" + LONG)),
                "/ISO18626Message/request/header/requestingAgencyId")
    # A partner's request whose requestingAgencyRequestId has 300 characters.
    _refused_at(await _post(client, lending_request(ref=LONG)),
                "/ISO18626Message/request/header/requestingAgencyRequestId")
    # A supplier's message naming a 300-character requesting agency, or request id.
    _refused_at(await _post(client, supplier_message("BR-1", requester="ISIL:" + LONG)),
                "/ISO18626Message/supplyingAgencyMessage/header/requestingAgencyId")
    _refused_at(await _post(client, supplier_message(LONG)),
                "/ISO18626Message/supplyingAgencyMessage/header/requestingAgencyRequestId")
    # Nothing was stored for any of them.
    for table in (raw_messages_t, lending_requests_t, history_t):
        assert await _count(gateway, table) == 0, table.name
    # A value at the limit is accepted.
    reply = await _post(client, lending_request(ref="R" * 200))
    assert reply.confirmation_header.message_status.value == "OK"
    assert await _count(gateway, lending_requests_t) == 1


async def test_overlong_reason_code_is_refused_and_changes_nothing(aiohttp_client, db_url):
    client, gateway = await start_gateway(aiohttp_client, db_url, PARTNERS)
    created = await gateway.borrowing.create(RequestDetails(requester="p", pickup_location="Main", title="T"),
                                             partners=(P1,))
    await gateway.borrowing.request_confirmed(created.request_id, P1)
    async with gateway.engine.connect() as conn:
        ref, status = (await conn.execute(select(borrowing_requests_t.c.external_id,
                                                 borrowing_requests_t.c.status))).one()
    # rota_entries.last_reason keeps reasonUnfilled (64 characters).
    reply = await _post(client, supplier_message(ref, status=Status.Unfilled, reason_unfilled="N" * 65))
    _refused_at(reply, "/ISO18626Message/supplyingAgencyMessage/messageInfo/reasonUnfilled")
    async with gateway.engine.connect() as conn:
        assert (await conn.execute(select(borrowing_requests_t.c.status))).scalar() == status
    assert await _count(gateway, raw_messages_t) == 0


def test_every_bounded_element_fits_the_columns_it_is_stored_in():
    """The limits of gateway.messages.lengths are no longer than the columns that keep them."""
    column = {
        "supplying_agency_id": [models.RawMessage.partner_agency, models.History.actor,
                                models.GeneralMessage.partner_agency, models.LendingRequest.supplying_agency],
        "requesting_agency_id": [models.RawMessage.requesting_agency, models.LendingRequest.requesting_agency,
                                 models.History.actor, models.GeneralMessage.actor],
        "consortial_id": [],
        "requesting_agency_request_id": [models.RawMessage.requesting_agency_request_id,
                                         models.LendingRequest.requesting_agency_request_id],
        "supplying_agency_request_id": [models.RotaEntry.supplying_agency_request_id],
        "multiple_item_request_id": [],
        "reason_unfilled": [models.RotaEntry.last_reason],
        "reason_retry": [models.RotaEntry.last_reason],
    }
    assert {b.fields[-1] for b in BOUNDS} == set(column)
    for bound in BOUNDS:
        for attribute in column[bound.fields[-1]]:
            assert attribute.property.columns[0].type.length >= bound.limit, (bound, attribute)


# --- storage amplification by unauthenticated posts --------------------------------------------

HUGE = "Y" * 400_000


async def _history_rows(engine) -> list[dict]:
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(select(history_t))]


async def _start(aiohttp_client, db_url: str, **gateway_options):
    from gateway.app import build_app
    from gateway.runtime import Gateway
    from support.gateway_helpers import make_config

    config = make_config(db_url, PARTNERS, gateway=gateway_options)
    gateway = Gateway.create(config)
    return await aiohttp_client(build_app(gateway)), gateway


async def test_unauthenticated_posts_with_huge_agency_ids_store_and_echo_only_capped_values(aiohttp_client, db_url):
    client, gateway = await _start(aiohttp_client, db_url)
    echoed = 0
    for i in range(100):
        # Alternately a 400 KB agency id and the longest one accepted, both unknown.
        value = HUGE if i % 2 == 0 else "Z" * (200 - len("ISIL:"))
        response = await client.post("/iso18626", data=lending_request(requester="ISIL:" + value, ref=f"R-{i}"),
                                     headers=XML)
        assert response.status == 200
        reply = await response.read()
        echoed = max(echoed, len(reply))
        assert decode(reply).message.confirmation_header.message_status.value == "ERROR"
    assert echoed < 4_000  # the confirmation repeats at most the clipped values
    rows = await _history_rows(gateway.engine)
    assert rows and all(r["event"] == "unknown_partner" for r in rows)
    assert len(rows) <= 50  # the huge ones are refused while decoding: nothing of them is stored
    for row in rows:
        assert len(row["actor"]) <= 200 and len(row["detail"]["text"]) <= 500
    assert sum(len(r["actor"]) + len(r["detail"]["text"]) for r in rows) < 50 * 700


async def test_audit_rows_per_source_address_are_limited_and_what_was_dropped_is_summarised(aiohttp_client, db_url):
    client, gateway = await _start(aiohttp_client, db_url, audit_rows_per_address_per_minute=5)
    for i in range(30):
        reply = await _post(client, lending_request(requester=f"ISIL:XX-STRANGER-{i}"))
        assert "not a partner of this gateway" in reply.error_data[0].error_value  # every post is answered
    rows = await _history_rows(gateway.engine)
    assert [r["event"] for r in rows] == ["unknown_partner"] * 5
    await client.close()  # at shutdown the budget's open windows are summarised

    from gateway.store.db import make_engine

    engine = make_engine(db_url)
    try:
        rows = await _history_rows(engine)
    finally:
        await engine.dispose()
    summaries = [r for r in rows if r["event"] == "audit_dropped"]
    assert len(rows) == 6 and len(summaries) == 1
    assert summaries[0]["detail"]["text"].startswith("25 further audit entries from 127.0.0.1")


async def test_an_invalid_huge_value_is_quoted_clipped_in_the_error(aiohttp_client, db_url):
    client, _ = await start_gateway(aiohttp_client, db_url, PARTNERS)
    body = lending_request().replace(b"<ill:serviceType>Loan</ill:serviceType>",
                                     b"<ill:serviceType>" + b"Q" * 300_000 + b"</ill:serviceType>")
    assert b"Q" * 1000 in body
    response = await client.post("/iso18626", data=body, headers=XML)
    reply = await response.read()
    assert response.status == 200 and len(reply) < 4_000
    error = decode(reply).message.error_data[0]
    assert "/serviceType: invalid value 'QQQ" in error.error_value and "[300000 characters]" in error.error_value
