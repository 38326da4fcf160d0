"""`/api/v1/lending-requests`: requests partners sent us, listed, read with all tabs and answered
with staff actions (SQLite and PostgreSQL, real gateway, requests arriving on the ISO endpoint)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from gateway.messages import Version, decode, encode, model
from gateway.messages.codes import Action, ServiceType

from support.api_helpers import OURS, P1, P2, XML, action_names, error_code, start_api

LR = "/api/v1/lending-requests"


@pytest.fixture
async def api(db_url, aiohttp_client):
    return await start_api(aiohttp_client, db_url)


async def incoming(api, ref: str, *, partner: str = P1, title: str = "The Name of the Rose",
                   service: ServiceType = ServiceType.Loan) -> int:
    """A partner's ISO request arrives; the id of the lending request it made."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    message = model.Request(
        header=model.RequestHeader(supplying_agency_id=model.AgencyId.parse(OURS),
                                   requesting_agency_id=model.AgencyId.parse(partner), timestamp=now,
                                   requesting_agency_request_id=ref),
        bibliographic_info=model.BibliographicInfo(title=title, author="Eco, Umberto", bibliographic_item_id=[
            model.BibliographicItemId("9780151446476", model.SchemeValue("ISBN"))]),
        service_info=model.ServiceInfo(service_type=service),
        billing_info=model.BillingInfo(maximum_costs=model.Costs(model.SchemeValue("USD"), Decimal("25.00"))),
    )
    response = await api.client.post("/iso18626", data=encode(message, Version.V2017), headers=XML)
    reply = decode(await response.read()).message
    assert reply.confirmation_header.message_status.value == "OK"
    status, body = await api.get(f"{LR}?q={ref}")
    assert body["total"] == 1, body
    return body["items"][0]["id"]


async def requester_message(api, ref: str, action: Action, *, partner: str = P1, note: str | None = None) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    message = model.RequestingAgencyMessage(
        header=model.RequestingAgencyMessageHeader(
            supplying_agency_id=model.AgencyId.parse(OURS), requesting_agency_id=model.AgencyId.parse(partner),
            timestamp=now, requesting_agency_request_id=ref),
        action=action, note=note)
    response = await api.client.post("/iso18626", data=encode(message, Version.V2017), headers=XML)
    assert decode(await response.read()).message.confirmation_header.message_status.value == "OK"


async def test_list_and_get_with_all_tabs(api):
    first = await incoming(api, "REQ-A1")
    second = await incoming(api, "REQ-B2", partner=P2, title="Baudolino", service=ServiceType.Copy)
    status, body = await api.get(LR, "read-only")
    assert status == 200 and body["total"] == 2 and [i["id"] for i in body["items"]] == [second, first]
    assert {e["value"]: e["count"] for e in body["facets"]["partner"]} == {P1: 1, P2: 1}
    assert body["facets"]["status"][0] == {"value": "NEW", "count": 2, "label": "New request (request received)"}
    status, body = await api.get(f"{LR}?partner={P2}")
    assert [i["id"] for i in body["items"]] == [second]
    status, body = await api.get(f"{LR}?q=baudolino&facets=false")
    assert [i["id"] for i in body["items"]] == [second] and "facets" not in body
    status, data = await api.get(f"{LR}/{first}")
    assert status == 200
    assert data["status"] == "NEW" and data["requesting_agency"] == P1
    assert data["requesting_agency_request_id"] == "REQ-A1" and data["our_request_id"] == f"LR-{first}"
    assert data["details"]["title"] == "The Name of the Rose" and data["details"]["max_cost"] == "25.00"
    assert {"will-supply", "unfilled", "conditional", "add-note"} <= set(action_names(data))
    assert "ship" in action_names(data) and data["history"][0]["actor"] == P1
    assert data["raw_request_id"] is not None
    for tab in ("general_messages", "notes", "attachments"):
        assert data[tab] == []
    status, data = await api.get(f"{LR}/{first}/history")
    assert status == 200 and data["history"]
    for path in (f"{LR}/999999", f"{LR}/999999/history", f"{LR}/999999/notes", f"{LR}/999999/messages"):
        status, data = await api.get(path)
        assert status == 404 and error_code(data) == "not_found"


async def test_loan_answered_shipped_and_checked_in(api):
    lid = await incoming(api, "REQ-L1")
    status, data = await api.post(f"{LR}/{lid}/actions/will-supply", {"note": "on the shelf"})
    assert status == 200 and data["status"] == "WILL_SUPPLY"
    assert data["history"][-1]["actor"] == "staff:ann"
    status, data = await api.post(f"{LR}/{lid}/actions/copy-completed", {})
    assert status == 409 and error_code(data) == "illegal_transition"  # a loan was asked for
    due = (datetime.now(timezone.utc) + timedelta(days=28)).date().isoformat()
    status, data = await api.post(f"{LR}/{lid}/actions/ship", {"due_date": due, "item_ids": ["BC-1"],
                                                               "sent_via": "mail"})
    assert status == 200 and data["status"] == "LOANED" and data["item_ids"] == ["BC-1"]
    assert data["due_date"].startswith(due)
    await requester_message(api, "REQ-L1", Action.Renew)
    data = await api.call("GET", f"{LR}/{lid}")
    assert data[1]["pending"] == "renew" and "answer-renew" in action_names(data[1])
    status, data = await api.post(f"{LR}/{lid}/actions/answer-renew", {"answer": "Y"})
    assert status == 422 and data["error"]["field"] == "due_date"
    later = (datetime.now(timezone.utc) + timedelta(days=42)).isoformat()
    status, data = await api.post(f"{LR}/{lid}/actions/answer-renew", {"answer": "Y", "due_date": later})
    assert status == 200 and data["pending"] is None
    status, data = await api.post(f"{LR}/{lid}/actions/check-in", {"note": "back"})
    assert status == 200 and data["status"] == "LOAN_COMPLETED"
    status, data = await api.post(f"{LR}/{lid}/actions/check-in")
    assert status == 409


async def test_conditions_unfilled_cancel_and_tabs(api):
    lid = await incoming(api, "REQ-C1")
    status, data = await api.post(f"{LR}/{lid}/actions/conditional", {
        "loan_conditions": ["LibraryUseOnly"], "offered_costs": [{"amount": "10.00", "currency": "EUR"}]})
    assert status == 200 and data["status"] == "CONDITIONAL"
    assert data["loan_conditions"] == ["LibraryUseOnly"] and data["offered_costs"] == [
        {"amount": "10.00", "currency": "EUR"}]
    status, data = await api.post(f"{LR}/{lid}/actions/conditional", {})
    assert status == 422 and data["error"]["field"] == "loan_conditions"
    status, note = await api.post(f"{LR}/{lid}/notes", {"text": "ask the curator"})
    assert status == 201 and note["actor"] == "staff:ann"
    status, message = await api.post(f"{LR}/{lid}/messages", {"text": "Library use only, sorry"})
    assert status == 201 and message["direction"] == "out" and message["partner"] == P1
    status, data = await api.get(f"{LR}/{lid}/notes")
    assert [n["text"] for n in data["notes"]] == ["ask the curator"]
    status, data = await api.get(f"{LR}/{lid}/messages")
    assert [m["text"] for m in data["messages"]] == ["Library use only, sorry"]

    other = await incoming(api, "REQ-C2")
    await requester_message(api, "REQ-C2", Action.Cancel, note="found it elsewhere")
    status, data = await api.get(f"{LR}/{other}")
    assert data["pending"] == "cancel" and data["needs_attention"]
    status, body = await api.get(f"{LR}?needs_attention=true")
    assert [i["id"] for i in body["items"]] == [other]
    status, data = await api.post(f"{LR}/{other}/actions/answer-cancel", {"answer": "maybe"})
    assert status == 422 and data["error"]["field"] == "answer"
    status, data = await api.post(f"{LR}/{other}/actions/answer-cancel", {"answer": "Y"})
    assert status == 200 and data["status"] == "CANCELLED"

    third = await incoming(api, "REQ-C3")
    status, data = await api.post(f"{LR}/{third}/actions/unfilled", {"reason_unfilled": "NotOnShelf"})
    assert status == 200 and data["status"] == "UNFILLED"


@pytest.mark.parametrize("name, body, code, field", [
    ("teleport", {}, 404, None),
    ("ship", {}, 422, "due_date"),
    ("ship", {"due_date": "soon"}, 422, "due_date"),
    ("ship", {"due_date": "2099-01-01", "item_ids": "x"}, 422, "item_ids"),
    ("conditional", {"offered_costs": [{"amount": "x", "currency": "EUR"}]}, 422, "offered_costs[0].amount"),
    ("conditional", {"offered_costs": [{"amount": "1", "currency": "euro"}]}, 422, "offered_costs[0]"),
    ("conditional", {"loan_conditions": ["x"], "status": "Loaned"}, 422, "status"),
    ("retry-possible", {}, 422, "reason_retry"),
    ("acknowledge", {"flag": "cancel_requested"}, 422, "flag"),
    ("will-supply", {"colour": "red"}, 422, "colour"),
    ("recall", {}, 409, None),
    ("check-in", {}, 409, None),
])
async def test_lending_action_errors(api, name, body, code, field):
    lid = await incoming(api, f"REQ-E-{name}")
    status, data = await api.post(f"{LR}/{lid}/actions/{name}", body)
    assert status == code, data
    assert data["error"]["field"] == field
    status, data = await api.post(f"{LR}/999999/actions/will-supply", {})
    assert status == 404


async def test_read_only_cannot_answer(api):
    lid = await incoming(api, "REQ-R1")
    status, data = await api.post(f"{LR}/{lid}/actions/will-supply", {}, role="read-only")
    assert status == 403
    status, data = await api.get(f"{LR}?sort=bogus")
    assert status == 422 and data["error"]["field"] == "sort"
    status, data = await api.get(f"{LR}?status=NOPE")
    assert status == 422 and data["error"]["field"] == "status"
