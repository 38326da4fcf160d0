"""The mock partner end to end: real servers on loopback, a recording requester, every scenario."""

from __future__ import annotations

import argparse
import asyncio
import io
import socket
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import aiohttp
import pytest
from aiohttp import web

from gateway.messages import Version, answer, decode, encode, model
from gateway.messages.codes import Action, ReasonForMessage, RequestType, ServiceType, Status, YesNo
from gateway.mock import cli as mock_cli
from gateway.mock.partner import PEERS_SCENARIOS, MockConfig, is_scenario, select_scenario
from gateway.mock.requester import Requester, RequesterConfig, ScriptError, load_script
from gateway.mock.server import make_app, mock_of

REQ = "ISIL:REQ"
V17, V21 = Version.V2017, Version.V2021
XML = {"Content-Type": "application/xml"}


def agency(text: str) -> model.AgencyId:
    return model.AgencyId.parse(text)


def now() -> datetime:
    return datetime.now(timezone.utc)


class Recorder:
    """A tiny requesting agency: confirms and records every supplyingAgencyMessage."""

    def __init__(self) -> None:
        self.received: list[tuple[model.SupplyingAgencyMessage, Version, bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        data = await request.read()
        inbound = decode(data)
        assert inbound.kind == "supplyingAgencyMessage"
        self.received.append((inbound.message, inbound.version, data))
        return web.Response(body=answer(inbound, now()), content_type="application/xml")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/iso18626", self.handle)
        return app

    def of(self, rid: str) -> list[model.SupplyingAgencyMessage]:
        return [m for m, _, _ in self.received if m.header.requesting_agency_request_id == rid]


class Harness:
    def __init__(self, recorder: Recorder, mock_url: str, app: web.Application, session: aiohttp.ClientSession):
        self.recorder, self.url, self.app, self.session = recorder, mock_url, app, session
        self.mock = mock_of(app)

    async def post(self, message, version: Version = V17) -> tuple[int, bytes]:
        async with self.session.post(self.url + "/iso18626", data=encode(message, version), headers=XML) as r:
            return r.status, await r.read()

    async def request(self, rid: str, note: str | None = None, *, record: str | None = None, version: Version = V17,
                      supplier: str = "ISIL:MOCK1", service_type: ServiceType = ServiceType.Loan,
                      request_type: RequestType | None = None, requester: str = REQ):
        message = model.Request(
            header=model.RequestHeader(supplying_agency_id=agency(supplier), requesting_agency_id=agency(requester),
                                       timestamp=now(), requesting_agency_request_id=rid),
            bibliographic_info=model.BibliographicInfo(supplier_unique_record_id=record, title="The Name of the Rose"),
            service_info=model.ServiceInfo(request_type=request_type, service_type=service_type, note=note),
        )
        status, body = await self.post(message, version)
        assert status == 200, body
        return decode(body)

    async def action(self, rid: str, action: Action, note: str | None = None, *, version: Version = V17,
                     supplier: str = "ISIL:MOCK1"):
        message = model.RequestingAgencyMessage(
            header=model.RequestingAgencyMessageHeader(supplying_agency_id=agency(supplier), requesting_agency_id=agency(REQ),
                                                       timestamp=now(), requesting_agency_request_id=rid),
            action=action, note=note,
        )
        status, body = await self.post(message, version)
        assert status == 200, body
        return decode(body)

    async def wait(self, rid: str, count: int, timeout: float = 3.0) -> list[model.SupplyingAgencyMessage]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.recorder.of(rid)) < count and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.005)
        got = self.recorder.of(rid)
        assert len(got) >= count, f"{rid}: wanted {count} messages, got {[m.status_info.status.value for m in got]}"
        return got

    async def settle(self) -> None:
        await asyncio.sleep(0.03)
        await self.mock.idle()

    async def state(self, **query) -> dict:
        async with self.session.get(self.url + "/mock/state", params=query) as r:
            return await r.json()


@pytest.fixture
async def start(aiohttp_server):
    """start(**MockConfig overrides) -> Harness with a recording requester registered as --peer ISIL:REQ."""
    recorder = Recorder()
    req_server = await aiohttp_server(recorder.app())
    sessions = []

    async def _start(**overrides) -> Harness:
        config = MockConfig(
            agencies=[agency(a) for a in overrides.pop("agencies", ["ISIL:MOCK1"])],
            peers=overrides.pop("peers", {REQ: str(req_server.make_url("/iso18626"))}),
            delay=overrides.pop("delay", 0.01), **overrides,
        )
        app = make_app(config)
        server = await aiohttp_server(app)
        session = aiohttp.ClientSession()
        sessions.append(session)
        harness = Harness(recorder, str(server.make_url("")).rstrip("/"), app, session)
        harness.requester_url = str(req_server.make_url("/iso18626"))
        return harness

    yield _start
    for session in sessions:
        await session.close()


def statuses(messages) -> list[str]:
    return [m.status_info.status.value for m in messages]


def ok(inbound) -> bool:
    return inbound.message.confirmation_header.message_status.value == "OK"


def error_of(inbound) -> tuple[str, str]:
    error = inbound.message.error_data[0]
    return error.error_type.value, error.error_value


# --- illmock scenarios (docs/partners.md) ------------------------------------------------------------------------

@pytest.mark.parametrize("version", [V17, V21])
async def test_loaned_then_shipped_return_completes(start, version):
    h = await start()
    assert ok(await h.request("R1", "MOCK:LOANED", version=version))
    (loaned,) = await h.wait("R1", 1)
    assert loaned.status_info.status is Status.Loaned
    assert loaned.message_info.reason_for_message is ReasonForMessage.RequestResponse
    assert timedelta(days=13, hours=23) < loaned.status_info.due_date - now() <= timedelta(days=14)
    assert loaned.delivery_info.item_id and loaned.header.supplying_agency_request_id == "MOCK1-1"
    assert h.recorder.received[0][1] is version  # answers in the incoming version
    assert ok(await h.action("R1", Action.ShippedReturn, version=version))
    done = (await h.wait("R1", 2))[1]
    assert done.status_info.status is Status.LoanCompleted
    assert done.message_info.reason_for_message is ReasonForMessage.StatusChange


async def test_loaned_recalled(start):
    h = await start()
    await h.request("R1", "MOCK:LOANED_RECALLED")
    await h.wait("R1", 1)
    await h.action("R1", Action.Received)
    await h.wait("R1", 2)
    await h.action("R1", Action.ShippedReturn)
    assert statuses(await h.wait("R1", 3)) == ["Loaned", "Recalled", "LoanCompleted"]


async def test_loaned_overdue_renew_and_return(start):
    h = await start()
    await h.request("R1", "MOCK:LOANED_OVERDUE", version=V21)
    first_due = (await h.wait("R1", 1))[0].status_info.due_date
    await h.action("R1", Action.Received, version=V21)
    assert (await h.wait("R1", 2))[1].status_info.status is Status.Overdue
    await h.action("R1", Action.Renew, version=V21)
    renewed = (await h.wait("R1", 3))[2]
    assert renewed.status_info.status is Status.Loaned
    assert renewed.message_info.reason_for_message is ReasonForMessage.RenewResponse
    assert renewed.message_info.answer_yes_no is YesNo.Y
    assert renewed.status_info.due_date - first_due == timedelta(days=14)
    await h.action("R1", Action.ShippedReturn, version=V21)
    assert statuses(await h.wait("R1", 4)) == ["Loaned", "Overdue", "Loaned", "LoanCompleted"]


async def test_unfilled(start):
    h = await start()
    await h.request("R1", "MOCK:UNFILLED")
    (msg,) = await h.wait("R1", 1)
    assert msg.status_info.status is Status.Unfilled and msg.message_info.reason_unfilled is not None


async def test_willsupply_cancel_is_accepted(start):
    h = await start()
    await h.request("R1", "MOCK:WILLSUPPLY")
    await h.wait("R1", 1)
    await h.action("R1", Action.Cancel)
    cancel = (await h.wait("R1", 2))[1]
    assert cancel.status_info.status is Status.Cancelled
    assert cancel.message_info.reason_for_message is ReasonForMessage.CancelResponse
    assert cancel.message_info.answer_yes_no is YesNo.Y


@pytest.mark.parametrize(("scenario", "expected", "after_received"), [
    ("WILLSUPPLY_LOANED", ["WillSupply", "Loaned"], None),
    ("WILLSUPPLY_LOANED_RECALLED", ["WillSupply", "Loaned"], "Recalled"),
    ("WILLSUPPLY_LOANED_OVERDUE", ["WillSupply", "Loaned"], "Overdue"),
    ("WILLSUPPLY_UNFILLED", ["WillSupply", "Unfilled"], None),
    ("EXPECT_TO_SUPPLY", ["ExpectToSupply", "Loaned"], None),
])
async def test_willsupply_sequences(start, scenario, expected, after_received):
    h = await start()
    await h.request("R1", f"MOCK:{scenario}")
    got = await h.wait("R1", len(expected))
    assert statuses(got) == expected
    assert [m.message_info.reason_for_message for m in got] == [ReasonForMessage.RequestResponse, ReasonForMessage.StatusChange]
    assert got[1].header.timestamp > got[0].header.timestamp
    if after_received:
        await h.action("R1", Action.Received)
        assert statuses(await h.wait("R1", 3))[2] == after_received
    await h.settle()
    assert len(h.recorder.of("R1")) == len(expected) + (1 if after_received else 0)


async def test_cancel_after_loaned_is_refused(start):
    h = await start()
    await h.request("R1", "MOCK:WILLSUPPLY_LOANED")
    await h.wait("R1", 2)
    await h.action("R1", Action.Cancel)
    answer_ = (await h.wait("R1", 3))[2]
    assert (answer_.status_info.status, answer_.message_info.answer_yes_no) == (Status.Loaned, YesNo.N)


@pytest.mark.parametrize(("service_type", "status"), [(ServiceType.Loan, Status.LoanCompleted), (ServiceType.Copy, Status.CopyCompleted)])
async def test_completed(start, service_type, status):
    h = await start()
    await h.request("R1", "MOCK:COMPLETED", service_type=service_type)
    assert (await h.wait("R1", 1))[0].status_info.status is status


@pytest.mark.parametrize("version", [V17, V21])
async def test_error_scenario_is_an_error_confirmation(start, version):
    h = await start()
    reply = await h.request("R1", "MOCK:ERROR", version=version)
    assert reply.kind == "requestConfirmation" and not ok(reply)
    assert error_of(reply)[0] == "UnrecognisedDataValue"
    await h.settle()
    assert h.recorder.received == []


@pytest.mark.parametrize("code", [400, 500])
async def test_http_error_scenarios(start, code):
    h = await start()
    message = model.Request(
        header=model.RequestHeader(supplying_agency_id=agency("ISIL:MOCK1"), requesting_agency_id=agency(REQ),
                                   timestamp=now(), requesting_agency_request_id="R1"),
        bibliographic_info=model.BibliographicInfo(supplier_unique_record_id=f"HTTP-ERROR-{code}"),
        service_info=model.ServiceInfo(service_type=ServiceType.Loan),
    )
    status, body = await h.post(message)
    assert status == code and b"MOCK" in body
    await h.settle()
    assert h.recorder.received == []
    assert (await h.state())["requests"][0]["messages"][0]["confirmation"] == f"HTTP {code}"


@pytest.mark.parametrize("version", [V17, V21])
@pytest.mark.parametrize(("code", "reason"), [
    ("COND", "LoanCondition"), ("COST", "CostExceedsMaxCost"), ("ONLOAN", "OnLoan"), ("NOTFOUNDASCITED", "NotFoundAsCited"),
])
async def test_retry_then_retry_request_plays_the_follow_up(start, version, code, reason):
    h = await start()
    await h.request("R1", f"MOCK:RETRY:{code}", version=version)
    (retry,) = await h.wait("R1", 1)
    assert retry.status_info.status is Status.RetryPossible
    assert retry.message_info.reason_retry.value == reason
    info, extra = retry.message_info, retry.retry_info
    if code == "COND":
        conditions = extra.loan_condition if version is V21 else retry.delivery_info.loan_condition
        assert [c.value for c in conditions] == ["NoReproduction"]
    elif code == "COST":
        costs = extra.offered_costs[0] if version is V21 else info.offered_costs
        assert (costs.currency_code.value, costs.monetary_value) == ("USD", Decimal("35"))
    elif code == "ONLOAN":
        assert (extra.retry_after if version is V21 else info.retry_after) is not None
    # the retry, same id, default follow-up LOANED
    assert ok(await h.request("R1", f"MOCK:RETRY:{code}", version=version, request_type=RequestType.Retry))
    assert statuses(await h.wait("R1", 2)) == ["RetryPossible", "Loaned"]


async def test_retry_with_follow_up_scenario_and_without_token_on_the_retry(start):
    h = await start()
    await h.request("R1", "MOCK:RETRY:COST_WILLSUPPLY_UNFILLED")
    await h.wait("R1", 1)
    await h.request("R1", None, request_type=RequestType.Retry)  # the follow-up is remembered
    assert statuses(await h.wait("R1", 3)) == ["RetryPossible", "WillSupply", "Unfilled"]
    # a plain New request with an id in use is refused
    reply = await h.request("R1", "MOCK:LOANED")
    assert not ok(reply) and "already exists" in error_of(reply)[1]


def test_every_peers_scenario_is_known():
    for name in [*PEERS_SCENARIOS, "RETRY:COND", "RETRY:COST_LOANED", "RETRY:ONLOAN_WILLSUPPLY_LOANED",
                 "RETRY:NOTFOUNDASCITED_UNFILLED"]:
        assert is_scenario(name), name
    assert not is_scenario("RETRY:COND_NOPE") and not is_scenario("LOANEDX")


# --- extra scenarios ---------------------------------------------------------------------------

async def test_slow(start):
    h = await start(slow_delay=0.4)
    await h.request("R1", "MOCK:SLOW")
    await asyncio.sleep(0.2)
    assert h.recorder.of("R1") == []
    assert statuses(await h.wait("R1", 1)) == ["Loaned"]


async def test_silent_never_sends_even_when_asked(start):
    h = await start()
    assert ok(await h.request("R1", "MOCK:SILENT"))
    assert ok(await h.action("R1", Action.StatusRequest))
    await h.settle()
    assert h.recorder.of("R1") == []


async def test_status_scenario_answers_status_requests_and_stays(start):
    h = await start()
    await h.request("R1", "MOCK:STATUS", version=V21)
    await h.wait("R1", 1)
    for n in (2, 3):
        await h.action("R1", Action.StatusRequest, version=V21)
        reply = (await h.wait("R1", n))[-1]
        assert reply.status_info.status is Status.WillSupply
        assert reply.message_info.reason_for_message is ReasonForMessage.StatusRequestResponse


@pytest.mark.parametrize(("scenario", "status"), [("LOANED", Status.Loaned), ("UNFILLED", Status.Unfilled), ("WILLSUPPLY", Status.WillSupply)])
async def test_every_scenario_answers_status_request(start, scenario, status):
    h = await start()
    await h.request("R1", f"MOCK:{scenario}")
    await h.wait("R1", 1)
    assert ok(await h.action("R1", Action.StatusRequest))
    reply = (await h.wait("R1", 2))[1]
    assert reply.message_info.reason_for_message is ReasonForMessage.StatusRequestResponse
    assert reply.status_info.status is status
    assert (reply.status_info.due_date is not None) == (status is Status.Loaned)


async def test_duplicate_sends_every_message_twice_byte_identical(start):
    h = await start()
    await h.request("R1", "MOCK:DUPLICATE")
    await h.wait("R1", 4)
    await h.settle()
    raw = [data for _, _, data in h.recorder.received]
    assert len(raw) == 4 and raw[0] == raw[1] and raw[2] == raw[3] and raw[0] != raw[2]
    assert statuses(h.recorder.of("R1")) == ["WillSupply", "WillSupply", "Loaned", "Loaned"]


async def test_out_of_order_sends_loaned_before_willsupply(start):
    h = await start()
    await h.request("R1", "MOCK:OUT_OF_ORDER")
    loaned, willsupply = await h.wait("R1", 2)
    assert (loaned.status_info.status, willsupply.status_info.status) == (Status.Loaned, Status.WillSupply)
    # the late one is the older message: earlier timestamp, and it is the RequestResponse
    assert willsupply.header.timestamp < loaned.header.timestamp
    assert willsupply.message_info.reason_for_message is ReasonForMessage.RequestResponse
    assert loaned.message_info.reason_for_message is ReasonForMessage.StatusChange
    await h.action("R1", Action.StatusRequest)
    assert (await h.wait("R1", 3))[2].status_info.status is Status.Loaned  # the real status is Loaned


async def test_renew_no(start):
    h = await start()
    await h.request("R1", "MOCK:RENEW_NO")
    due = (await h.wait("R1", 1))[0].status_info.due_date
    await h.action("R1", Action.Renew)
    reply = (await h.wait("R1", 2))[1]
    assert (reply.message_info.reason_for_message, reply.message_info.answer_yes_no) == (ReasonForMessage.RenewResponse, YesNo.N)
    assert reply.status_info.status is Status.Loaned and reply.status_info.due_date == due


async def test_cancel_no(start):
    h = await start()
    await h.request("R1", "MOCK:CANCEL_NO")
    await h.wait("R1", 1)
    await h.action("R1", Action.Cancel)
    reply = (await h.wait("R1", 2))[1]
    assert (reply.status_info.status, reply.message_info.answer_yes_no) == (Status.WillSupply, YesNo.N)


@pytest.mark.parametrize("version", [V17, V21])
async def test_conditional_accept_then_loaned(start, version):
    h = await start()
    await h.request("R1", "MOCK:CONDITIONAL", version=version)
    (offer,) = await h.wait("R1", 1)
    assert offer.status_info.status is Status.WillSupply
    assert "LibraryUseOnly" in offer.message_info.note
    if version is V21:
        assert [c.value for c in offer.retry_info.loan_condition] == ["LibraryUseOnly"]
        assert offer.retry_info.offered_costs[0].monetary_value == Decimal("10.00")
    else:
        assert offer.message_info.offered_costs.monetary_value == Decimal("10.00")
    await h.action("R1", Action.Notification, "fine by us", version=version)  # no ACCEPT: nothing
    # ReShare's reject marker decides, whatever the words around it (as our lending side reads it)
    await h.action("R1", Action.Notification, "#ReShareLoanConditionRejectResponse# cannot accept", version=version)
    await h.settle()
    assert len(h.recorder.of("R1")) == 1
    await h.action("R1", Action.Notification, "We ACCEPT the conditions.", version=version)
    assert statuses(await h.wait("R1", 2)) == ["WillSupply", "Loaned"]


async def test_conditional_cancel(start):
    h = await start()
    await h.request("R1", "MOCK:CONDITIONAL")
    await h.wait("R1", 1)
    await h.action("R1", Action.Cancel, "REJECT")
    reply = (await h.wait("R1", 2))[1]
    assert (reply.status_info.status, reply.message_info.answer_yes_no) == (Status.Cancelled, YesNo.Y)


@pytest.mark.parametrize("version", [V17, V21])
async def test_copy(start, version):
    h = await start()
    await h.request("R1", "MOCK:COPY", version=version, service_type=ServiceType.Copy)
    (copy,) = await h.wait("R1", 1)
    assert copy.status_info.status is Status.CopyCompleted and copy.delivery_info.item_id
    assert "https://" in copy.message_info.note
    assert (copy.delivery_info.url is not None) == (version is V21)


async def test_notification_is_only_acknowledged(start):
    h = await start()
    await h.request("R1", "MOCK:LOANED")
    await h.wait("R1", 1)
    reply = await h.action("R1", Action.Notification, "hello")
    assert ok(reply) and reply.message.action is Action.Notification
    await h.settle()
    assert len(h.recorder.of("R1")) == 1


# --- scenario selection ------------------------------------------------------------------------

def _req(note=None, record=None) -> model.Request:
    return model.Request(
        header=model.RequestHeader(supplying_agency_id=agency("ISIL:MOCK1"), requesting_agency_id=agency(REQ),
                                   timestamp=now(), requesting_agency_request_id="X"),
        bibliographic_info=model.BibliographicInfo(supplier_unique_record_id=record),
        service_info=model.ServiceInfo(service_type=ServiceType.Loan, note=note),
    )


@pytest.mark.parametrize(("note", "record", "expected"), [
    ("MOCK:WILLSUPPLY MOCK:MOCK1:LOANED", "COMPLETED", ("LOANED", "symbol-token")),
    ("MOCK:WILLSUPPLY MOCK:OTHER:LOANED", "COMPLETED", ("WILLSUPPLY", "token")),
    ("please, MOCK:OTHER:LOANED", "COMPLETED", ("COMPLETED", "supplierUniqueRecordId")),
    (None, "b12345", ("STATUS", "default")),
    (None, None, ("STATUS", "default")),
    ("MOCK:NOSUCH", "COMPLETED", ("UNFILLED", "token")),
    ("MOCK:MOCK1:NOSUCH", None, ("UNFILLED", "symbol-token")),
    ("MOCK:RETRY:COST_LOANED", None, ("RETRY:COST_LOANED", "token")),
    ("x#MOCK:MOCK1:RETRY:COND;MOCK:MOCK2:LOANED", None, ("RETRY:COND", "symbol-token")),
    ("mock:mock1:loaned", None, ("LOANED", "symbol-token")),
])
def test_selection_precedence(note, record, expected):
    assert select_scenario(_req(note, record), agency("ISIL:MOCK1"), "STATUS") == expected


async def test_one_process_plays_several_agencies_of_a_rota(start):
    h = await start(agencies=["ISIL:MOCK1", "ISIL:MOCK2"], scenario="WILLSUPPLY")
    note = "rota: MOCK:MOCK1:UNFILLED MOCK:MOCK2:LOANED"
    await h.request("R1", note, supplier="ISIL:MOCK1")
    await h.request("R1", note, supplier="ISIL:MOCK2")  # same id, other supplier: its own transaction
    await h.request("R2", "MOCK:MOCK3:LOANED", supplier="ISIL:MOCK2")  # not for us: the default
    await h.wait("R1", 2)
    await h.wait("R2", 1)
    by_supplier = {str(m.header.supplying_agency_id): m.status_info.status.value for m in h.recorder.of("R1")}
    assert by_supplier == {"ISIL:MOCK1": "Unfilled", "ISIL:MOCK2": "Loaned"}
    assert statuses(h.recorder.of("R2")) == ["WillSupply"]
    state = await h.state(agency="ISIL:MOCK2")
    assert [(r["request_id"], r["scenario"]) for r in state["requests"]] == [("R1", "LOANED"), ("R2", "WILLSUPPLY")]
    reply = await h.request("R3", "MOCK:LOANED", supplier="ISIL:ELSEWHERE")
    assert not ok(reply) and "ISIL:ELSEWHERE" in error_of(reply)[1]


async def test_default_scenario_and_record_id(start):
    h = await start(scenario="LOANED")
    await h.request("R1")
    await h.request("R2", record="WILLSUPPLY_UNFILLED")
    assert statuses(await h.wait("R1", 1)) == ["Loaned"]
    assert statuses(await h.wait("R2", 2)) == ["WillSupply", "Unfilled"]


# --- versions, addressing, faults, state --------------------------------------------------------

async def test_forced_version_writes_2021_to_a_2017_requester(start):
    h = await start(version=V21)
    reply = await h.request("R1", "MOCK:LOANED", version=V17)
    assert reply.version is V21 and ok(reply)
    await h.wait("R1", 1)
    assert h.recorder.received[0][1] is V21


async def test_unknown_requester_is_refused_and_reply_url_is_the_fallback(start):
    h = await start()
    reply = await h.request("R1", "MOCK:LOANED", requester="ISIL:STRANGER")
    assert not ok(reply)
    assert error_of(reply) == ("UnrecognisedDataValue", error_of(reply)[1]) and "ISIL:STRANGER" in error_of(reply)[1]
    h2 = await start(peers={}, reply_url=h.requester_url)
    assert ok(await h2.request("R9", "MOCK:LOANED", requester="ISIL:STRANGER"))
    assert statuses(await h2.wait("R9", 1)) == ["Loaned"]


async def test_actions_on_unknown_or_closed_requests_are_errors(start):
    h = await start()
    reply = await h.action("NOPE", Action.Received)
    assert not ok(reply) and "NOPE" in error_of(reply)[1]
    await h.request("R1", "MOCK:UNFILLED")
    await h.wait("R1", 1)
    reply = await h.action("R1", Action.Renew)
    assert not ok(reply) and "closed" in error_of(reply)[1]
    assert ok(await h.action("R1", Action.StatusRequest))  # still answered
    assert (await h.wait("R1", 2))[1].status_info.status is Status.Unfilled


async def test_same_request_twice_gets_the_same_confirmation_and_plays_once(start):
    h = await start()
    message = model.Request(
        header=model.RequestHeader(supplying_agency_id=agency("ISIL:MOCK1"), requesting_agency_id=agency(REQ),
                                   timestamp=now(), requesting_agency_request_id="R1"),
        bibliographic_info=model.BibliographicInfo(title="t"),
        service_info=model.ServiceInfo(service_type=ServiceType.Loan, note="MOCK:LOANED"),
    )
    first, second = await h.post(message), await h.post(message)
    assert first == second
    await h.wait("R1", 1)
    await h.settle()
    assert len(h.recorder.of("R1")) == 1


async def test_transport_faults_and_health(start):
    h = await start()
    s, url = h.session, h.url
    async with s.get(url + "/iso18626") as r:
        assert r.status == 405
    async with s.post(url + "/iso18626", data=b"{}", headers={"Content-Type": "application/json"}) as r:
        assert r.status == 415
    async with s.post(url + "/iso18626", data=io.BytesIO(b"<x>" + b"a" * (1024 * 1024 + 10) + b"</x>"), headers=XML) as r:
        assert r.status == 413
    async with s.post(url + "/iso18626", data=b"<<<", headers=XML) as r:
        assert r.status == 200 and error_of(decode(await r.read()))[0] == "BadlyFormedMessage"
    async with s.get(url + "/healthz") as r:
        assert (await r.json())["status"] == "ok"


async def test_state_records_messages_both_ways_and_resets(start):
    h = await start()
    await h.request("R1", "MOCK:LOANED", version=V21)
    await h.wait("R1", 1)
    await h.action("R1", Action.ShippedReturn, version=V21)
    await h.wait("R1", 2)
    await h.settle()
    (req,) = (await h.state(request_id="R1"))["requests"]
    assert (req["agency"], req["requester"], req["scenario"], req["status"], req["version"]) == \
        ("ISIL:MOCK1", REQ, "LOANED", "LoanCompleted", "2021")
    flow = [(m["direction"], m.get("action") or m.get("status") or m["kind"], m["confirmation"]) for m in req["messages"]]
    assert flow == [("in", "request", "OK"), ("out", "Loaned", "OK"), ("in", "ShippedReturn", "OK"), ("out", "LoanCompleted", "OK")]
    async with h.session.delete(h.url + "/mock/state") as r:
        assert r.status == 200
    assert (await h.state())["requests"] == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_unreachable_peer_is_logged_in_state(start):
    h = await start(peers={REQ: f"http://127.0.0.1:{_free_port()}/iso18626"})
    assert ok(await h.request("R1", "MOCK:WILLSUPPLY_LOANED"))
    await h.settle()
    (req,) = (await h.state())["requests"]
    assert req["messages"][-1]["confirmation"] is None and req["messages"][-1]["http_status"] is None
    assert len(req["messages"]) == 2  # WillSupply failed (after one retry); Loaned never tried
    assert any("gave up" in e for e in req["errors"])


# --- requester mode and CLI ---------------------------------------------------------------------

SCRIPT = """
[[steps]]
send = "request"
title = "The Name of the Rose"
author = "Eco, Umberto"
service_type = "Loan"
note = "MOCK:WILLSUPPLY_LOANED_OVERDUE"

[[steps]]
expect = "WillSupply"
timeout = 5

[[steps]]
expect = "Loaned"

[[steps]]
send = "Received"

[[steps]]
expect = "Overdue"

[[steps]]
send = "Renew"

[[steps]]
expect = "Loaned"
reason = "RenewResponse"
answer = "Y"

[[steps]]
send = "StatusRequest"

[[steps]]
expect = "Loaned"
reason = "StatusRequestResponse"

[[steps]]
send = "ShippedReturn"

[[steps]]
expect = "LoanCompleted"
"""


@pytest.mark.parametrize("version", [V17, V21])
async def test_requester_mode_against_the_mock(start, tmp_path, version):
    h = await start(peers={})  # the requester's own address (requestingAgencyInfo) is the way back
    path = tmp_path / "script.toml"
    path.write_text(SCRIPT)
    lines: list[str] = []
    requester = Requester(RequesterConfig(target=h.url + "/iso18626", agency=agency("ISIL:MOCKREQ"),
                                          supplier=agency("ISIL:MOCK1"), version=version, port=0), out=lines.append)
    assert await requester.run(load_script(path)), lines
    assert sum(line.startswith("ok") for line in lines) == 11


async def test_requester_mode_reports_an_unmet_expectation(start, tmp_path):
    h = await start(peers={})
    path = tmp_path / "script.json"
    path.write_text('[{"send": "request", "note": "MOCK:UNFILLED"}, {"expect": "Loaned", "timeout": 0.3}]')
    lines: list[str] = []
    requester = Requester(RequesterConfig(target=h.url + "/iso18626", agency=agency("ISIL:MOCKREQ"),
                                          supplier=agency("ISIL:MOCK1"), port=0), out=lines.append)
    assert not await requester.run(load_script(path))
    assert lines[-1].startswith("FAIL expect Loaned") and "Unfilled" in lines[-1]
    path.write_text('[{"send": "Teleport"}]')
    with pytest.raises(ScriptError):
        load_script(path)


def test_cli_register_parses_supplier_and_requester_modes():
    parser = argparse.ArgumentParser(prog="gateway")
    mock_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["mock-partner", "--agency", "ISIL:A", "--agency", "ISIL:B", "--peer", "ISIL:X=http://x/iso18626",
                              "--scenario", "loaned", "--version", "2021", "--delay", "0.01"])
    assert [str(a) for a in args.agency] == ["ISIL:A", "ISIL:B"] and args.peer == [("ISIL:X", "http://x/iso18626")]
    assert args.func is mock_cli.run and args.mode is None
    args = parser.parse_args(["mock-partner", "requester", "--target", "http://t/iso18626", "--supplier", "ISIL:A",
                              "--script", "s.toml", "--port", "0"])
    assert (args.mode, args.req_port, str(args.req_agency)) == ("requester", 0, "ISIL:MOCKREQ")
    bad = parser.parse_args(["mock-partner", "--scenario", "NOPE"])
    assert bad.func(bad) == 2
