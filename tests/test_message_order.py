"""Partner messages that arrive out of order, judged by the partner's own header timestamps.

A real gateway on loopback, real HTTP, SQLite and PostgreSQL: a status message written before
the partner's latest status-changing message is confirmed OK but changes nothing, and the
history records it as stale with both timestamps (docs/message-order-and-duplicates.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from gateway.core import RequestDetails
from gateway.core.lending import Ship
from gateway.messages import Version, decode, encode, model
from gateway.messages.codes import Action, ReasonForMessage, ServiceType, Status
from gateway.store.models import borrowing_requests_t, history_t, lending_requests_t

from support.gateway_helpers import OURS, start_gateway

LENDER = "ISIL:DK-ORDER"
BORROWER = "ISIL:DK-BORROW"
XML = {"Content-Type": "application/xml"}
T = datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc)
PARTNERS = [{"agency": LENDER, "url": "http://127.0.0.1:9/lender"},
            {"agency": BORROWER, "url": "http://127.0.0.1:9/borrower"}]


def sam(ref: str, status: Status, when: datetime, note: str | None = None) -> bytes:
    return encode(model.SupplyingAgencyMessage(
        header=model.SupplyingAgencyMessageHeader(
            supplying_agency_id=model.AgencyId.parse(LENDER), requesting_agency_id=model.AgencyId.parse(OURS),
            timestamp=when, requesting_agency_request_id=ref, supplying_agency_request_id="L-1"),
        message_info=model.MessageInfo(reason_for_message=ReasonForMessage.StatusChange, note=note),
        status_info=model.StatusInfo(status=status, last_change=when)), Version.V2017)


async def post_ok(client, data: bytes) -> None:
    response = await client.post("/iso18626", data=data, headers=XML)
    assert response.status == 200
    reply = decode(await response.read()).message
    assert reply.confirmation_header.message_status.value == "OK", reply.error_data


async def borrowing_request(gateway) -> tuple[int, str]:
    created = await gateway.borrowing.create(RequestDetails(requester="p", pickup_location="Main", title="T"), (LENDER,))
    await gateway.borrowing.request_confirmed(created.request_id, LENDER)
    async with gateway.engine.connect() as conn:
        ref = (await conn.execute(select(borrowing_requests_t.c.external_id)
                                  .where(borrowing_requests_t.c.id == created.request_id))).scalar_one()
    return created.request_id, ref


async def status_and_history(gateway, table, owner_column: str, owner_id: int) -> tuple[str, list[dict]]:
    async with gateway.engine.connect() as conn:
        status = (await conn.execute(select(table.c.status).where(table.c.id == owner_id))).scalar_one()
        history = [dict(r._mapping) for r in await conn.execute(
            select(history_t).where(history_t.c[owner_column] == owner_id).order_by(history_t.c.id))]
    return status, history


async def test_an_older_retry_possible_does_not_move_will_supply_back(aiohttp_client, db_url):
    client, gateway = await start_gateway(aiohttp_client, db_url, PARTNERS)
    request_id, ref = await borrowing_request(gateway)
    await post_ok(client, sam(ref, Status.WillSupply, T))
    await post_ok(client, sam(ref, Status.RetryPossible, T - timedelta(seconds=60)))  # confirmed: a valid message
    status, history = await status_and_history(gateway, borrowing_requests_t, "request_id", request_id)
    assert status == "WILL_SUPPLY"
    stale = [h for h in history if h["event"] == "stale"]
    assert len(stale) == 1
    assert stale[0]["from_status"] == stale[0]["to_status"] == "WILL_SUPPLY"
    assert stale[0]["raw_message_id"] is not None
    text = stale[0]["detail"]["text"]
    assert "RetryPossible" in text
    assert (T - timedelta(seconds=60)).isoformat() in text and T.isoformat() in text


async def test_a_newer_or_equally_old_status_still_applies(aiohttp_client, db_url):
    client, gateway = await start_gateway(aiohttp_client, db_url, PARTNERS)
    request_id, ref = await borrowing_request(gateway)
    await post_ok(client, sam(ref, Status.WillSupply, T))
    # The same second (timestamps of one partner may tie) is not "earlier": it applies.
    await post_ok(client, sam(ref, Status.RetryPossible, T))
    status, history = await status_and_history(gateway, borrowing_requests_t, "request_id", request_id)
    assert status == "RETRY_POSSIBLE"
    assert not [h for h in history if h["event"] == "stale"]


async def test_older_conditions_do_not_reopen_a_plain_will_supply(aiohttp_client, db_url):
    client, gateway = await start_gateway(aiohttp_client, db_url, PARTNERS)
    request_id, ref = await borrowing_request(gateway)
    await post_ok(client, sam(ref, Status.WillSupply, T))
    await post_ok(client, sam(ref, Status.WillSupply, T - timedelta(minutes=5), note="Condition: LibraryUseOnly"))
    status, history = await status_and_history(gateway, borrowing_requests_t, "request_id", request_id)
    assert status == "WILL_SUPPLY"
    assert history[-1]["event"] == "stale"
    async with gateway.engine.connect() as conn:
        needs_attention = (await conn.execute(select(borrowing_requests_t.c.needs_attention))).scalar_one()
    assert not needs_attention  # no conditions for staff to answer


# --- the lending side: the borrower's requestingAgencyMessages ----------------------------------


def request_message(ref: str, when: datetime) -> bytes:
    return encode(model.Request(
        header=model.RequestHeader(
            supplying_agency_id=model.AgencyId.parse(OURS), requesting_agency_id=model.AgencyId.parse(BORROWER),
            timestamp=when, requesting_agency_request_id=ref),
        bibliographic_info=model.BibliographicInfo(title="Moby Dick"),
        service_info=model.ServiceInfo(service_type=ServiceType.Loan),
    ), Version.V2017)


def ram(ref: str, action: Action, when: datetime) -> bytes:
    return encode(model.RequestingAgencyMessage(
        header=model.RequestingAgencyMessageHeader(
            supplying_agency_id=model.AgencyId.parse(OURS), requesting_agency_id=model.AgencyId.parse(BORROWER),
            timestamp=when, requesting_agency_request_id=ref),
        action=action), Version.V2017)


async def test_an_older_renew_after_the_borrower_shipped_the_item_back_is_stale(aiohttp_client, db_url):
    client, gateway = await start_gateway(aiohttp_client, db_url, PARTNERS)
    await post_ok(client, request_message("R-1", T - timedelta(days=20)))
    async with gateway.engine.connect() as conn:
        lending_id = (await conn.execute(select(lending_requests_t.c.id))).scalar_one()
    await gateway.lending.apply(lending_id, Ship(at=gateway.clock(), due_date=T + timedelta(days=10)))
    await post_ok(client, ram("R-1", Action.ShippedReturn, T))
    # Written before the ShippedReturn, it arrives after it: confirmed, recorded, no renew asked of staff.
    await post_ok(client, ram("R-1", Action.Renew, T - timedelta(seconds=60)))
    status, history = await status_and_history(gateway, lending_requests_t, "lending_id", lending_id)
    assert status == "RETURN_SHIPPED"
    assert history[-1]["event"] == "stale"
    assert (T - timedelta(seconds=60)).isoformat() in history[-1]["detail"]["text"]
    async with gateway.engine.connect() as conn:
        needs_attention = (await conn.execute(select(lending_requests_t.c.needs_attention))).scalar_one()
    assert not needs_attention
