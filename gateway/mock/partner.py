"""The mock partner's state and scenario engine: pure apart from holding in-memory state.

`Partner.receive(data, now)` turns one inbound POST body into a `Reply` (HTTP status + body, or a
confirmation) and queues what the transaction must send next; `Partner.next_message(txn, now)`
builds the next supplyingAgencyMessage of a transaction (reactions to requester actions first,
then the scenario's unprompted statuses). The server (`server.py`) does the I/O: it sends each
message, waits for its confirmation and reports back with `record_delivery`.

Scenario names follow the crosslink `illmock` peer (docs/partners.md, "The crosslink broker and
its illmock peer"); SLOW, SILENT, STATUS, DUPLICATE,
OUT_OF_ORDER, RENEW_NO, CANCEL_NO, CONDITIONAL, EXPECT_TO_SUPPLY and COPY are our own.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ..messages import ErrorType, Fault, Inbound, MessageError, answer, decode, encode, model
from ..messages.codes import Action, ReasonForMessage, RequestType, ServiceType, Status, Version, YesNo
from ..messages.peers import condition_answer

LOAN_PERIOD = timedelta(days=14)

PEERS_SCENARIOS = (
    "LOANED", "LOANED_RECALLED", "LOANED_OVERDUE", "UNFILLED",
    "WILLSUPPLY", "WILLSUPPLY_LOANED", "WILLSUPPLY_LOANED_RECALLED", "WILLSUPPLY_LOANED_OVERDUE",
    "WILLSUPPLY_UNFILLED", "COMPLETED", "ERROR", "HTTP-ERROR-400", "HTTP-ERROR-500",
)
EXTRA_SCENARIOS = (
    "SLOW", "SILENT", "STATUS", "DUPLICATE", "OUT_OF_ORDER", "RENEW_NO", "CANCEL_NO",
    "CONDITIONAL", "EXPECT_TO_SUPPLY", "COPY",
)
RETRY_REASONS = {
    "COND": "LoanCondition",
    "COST": "CostExceedsMaxCost",
    "ONLOAN": "OnLoan",
    "NOTFOUNDASCITED": "NotFoundAsCited",
}
_RETRY = re.compile(r"RETRY:(" + "|".join(RETRY_REASONS) + r")(?:_(.+))?")
_HTTP_ERROR = re.compile(r"HTTP-ERROR-([45]\d\d)")
_TOKEN = re.compile(r"MOCK:([^\s#,;]+)", re.IGNORECASE)

SHIPPED = frozenset({Status.Loaned, Status.Overdue, Status.Recalled})
TERMINAL = frozenset({
    Status.Unfilled, Status.LoanCompleted, Status.CopyCompleted, Status.CompletedWithoutReturn, Status.Cancelled,
})


def is_scenario(name: str) -> bool:
    """A name the mock can play (RETRY:X optionally followed by _<SCENARIO>, HTTP-ERROR-4xx/5xx)."""
    if name in PEERS_SCENARIOS or name in EXTRA_SCENARIOS or _HTTP_ERROR.fullmatch(name):
        return True
    match = _RETRY.fullmatch(name)
    return bool(match) and (match.group(2) is None or is_scenario(match.group(2)))


def all_scenarios() -> list[str]:
    """Every scenario name, for help texts and tests (RETRY forms without a follow-up)."""
    return [*PEERS_SCENARIOS, *(f"RETRY:{r}" for r in RETRY_REASONS), *EXTRA_SCENARIOS]


def select_scenario(request: model.Request, serving: model.AgencyId, default: str) -> tuple[str, str]:
    """(scenario, where it came from), in order: MOCK:<SYMBOL>:<SCENARIO> for our symbol,
    MOCK:<SCENARIO>, supplierUniqueRecordId naming a scenario, the default. Unknown names in a
    token play UNFILLED, as illmock does."""
    note = (request.service_info.note if request.service_info else None) or ""
    symbol = serving.agency_id_value.casefold()
    plain: str | None = None
    for match in _TOKEN.finditer(note):
        value = match.group(1)
        head, sep, rest = value.partition(":")
        if sep and head.casefold() == symbol and rest:
            return _known(rest), "symbol-token"
        if plain is None:
            if is_scenario(value.upper()):
                plain = value.upper()
            elif not sep:
                plain = "UNFILLED"  # MOCK:<unknown name>
            # else: MOCK:<other symbol>:<scenario>, meant for another partner of the rota
    if plain is not None:
        return plain, "token"
    record = (request.bibliographic_info.supplier_unique_record_id or "").strip().upper()
    if record and is_scenario(record):
        return record, "supplierUniqueRecordId"
    return _known(default), "default"


def _known(name: str) -> str:
    name = name.strip().upper()
    return name if is_scenario(name) else "UNFILLED"


# --- scripts ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Step:
    """One unprompted supplyingAgencyMessage."""

    status: Status
    extra: str | None = None                # "retry:COND", "conditional", "copy" ...
    reason: ReasonForMessage | None = None  # forced reasonForMessage (OUT_OF_ORDER)
    backdate: bool = False                  # timestamp/lastChange = when the request came in
    stale: bool = False                     # does not change the transaction's status


@dataclass(frozen=True, slots=True)
class Script:
    steps: tuple[Step, ...] = ()
    on_received: Status | None = None       # Recalled / Overdue, once, after Received
    renew: bool = True
    cancel: bool = True
    conditional: bool = False
    retry_next: str | None = None
    duplicate: bool = False
    silent: bool = False
    slow: bool = False


def script_for(scenario: str, service_type: ServiceType | None) -> Script:
    S = Step
    copy = service_type is ServiceType.Copy
    retry = _RETRY.fullmatch(scenario)
    if retry:
        return Script((S(Status.RetryPossible, f"retry:{retry.group(1)}"),), retry_next=retry.group(2) or "LOANED")
    table: dict[str, Script] = {
        "LOANED": Script((S(Status.Loaned),)),
        "LOANED_RECALLED": Script((S(Status.Loaned),), on_received=Status.Recalled),
        "LOANED_OVERDUE": Script((S(Status.Loaned),), on_received=Status.Overdue),
        "UNFILLED": Script((S(Status.Unfilled),)),
        "WILLSUPPLY": Script((S(Status.WillSupply),)),
        "WILLSUPPLY_LOANED": Script((S(Status.WillSupply), S(Status.Loaned))),
        "WILLSUPPLY_LOANED_RECALLED": Script((S(Status.WillSupply), S(Status.Loaned)), on_received=Status.Recalled),
        "WILLSUPPLY_LOANED_OVERDUE": Script((S(Status.WillSupply), S(Status.Loaned)), on_received=Status.Overdue),
        "WILLSUPPLY_UNFILLED": Script((S(Status.WillSupply), S(Status.Unfilled))),
        "COMPLETED": Script((S(Status.CopyCompleted, "copy"),) if copy else (S(Status.LoanCompleted),)),
        "SLOW": Script((S(Status.Loaned),), slow=True),
        "SILENT": Script(silent=True),
        "STATUS": Script((S(Status.WillSupply),)),
        "DUPLICATE": Script((S(Status.WillSupply), S(Status.Loaned)), duplicate=True),
        "OUT_OF_ORDER": Script((
            S(Status.Loaned, reason=ReasonForMessage.StatusChange),
            S(Status.WillSupply, reason=ReasonForMessage.RequestResponse, backdate=True, stale=True),
        )),
        "RENEW_NO": Script((S(Status.Loaned),), renew=False),
        "CANCEL_NO": Script((S(Status.WillSupply),), cancel=False),
        "CONDITIONAL": Script((S(Status.WillSupply, "conditional"),), conditional=True),
        "EXPECT_TO_SUPPLY": Script((S(Status.ExpectToSupply), S(Status.Loaned))),
        "COPY": Script((S(Status.CopyCompleted, "copy"),)),
    }
    return table.get(scenario, table["UNFILLED"])


# --- state -----------------------------------------------------------------------------------

@dataclass(slots=True)
class Reaction:
    kind: str                  # status | renew | cancel | received | returned | accept
    action: str | None = None


@dataclass(slots=True)
class Txn:
    """One request as the mock supplier sees it."""

    id: int
    agency: model.AgencyId
    requester: model.AgencyId
    request_id: str
    supplier_request_id: str
    scenario: str
    source: str
    script: Script
    version: Version
    url: str | None
    created: datetime
    service_type: ServiceType | None = None
    status: Status | None = None
    due_date: datetime | None = None
    responded: bool = False                 # the first unprompted message has gone
    live: bool = True                       # False: ERROR/HTTP-ERROR records, superseded retries
    awaiting_accept: bool = False
    pending: deque[Step] = field(default_factory=deque)
    reactions: deque[Reaction] = field(default_factory=deque)
    messages: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seen: dict[str, bytes] = field(default_factory=dict)  # body hash -> confirmation sent

    @property
    def key(self) -> tuple[str, str, str]:
        return key_of(self.agency, self.requester, self.request_id)

    @property
    def closed(self) -> bool:
        return self.status in TERMINAL and not self.pending

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "agency": str(self.agency),
            "requester": str(self.requester),
            "request_id": self.request_id,
            "supplier_request_id": self.supplier_request_id,
            "scenario": self.scenario,
            "scenario_source": self.source,
            "version": self.version.label,
            "reply_url": self.url,
            "status": self.status.value if self.status else None,
            "due_date": self.due_date.isoformat() if self.due_date else None,
            "live": self.live,
            "busy": bool(self.pending or self.reactions),
            "messages": list(self.messages),
            "errors": list(self.errors),
        }


def key_of(agency: model.AgencyId, requester: model.AgencyId, request_id: str) -> tuple[str, str, str]:
    return (str(agency).casefold(), str(requester).casefold(), request_id)


@dataclass(slots=True)
class Reply:
    """What to answer an inbound POST with; `kick` names transactions with work to do."""

    status: int
    body: bytes
    content_type: str = "application/xml"
    kick: Txn | None = None


@dataclass(slots=True)
class Outgoing:
    txn: Txn
    body: bytes
    status: Status
    reason: ReasonForMessage
    answer_yes_no: YesNo | None
    copies: int = 1


@dataclass(slots=True)
class DeliveryResult:
    http_status: int | None
    confirmation: str | None     # OK / ERROR / None (no usable confirmation)
    error: str | None = None


@dataclass(slots=True)
class MockConfig:
    agencies: list[model.AgencyId] = field(default_factory=lambda: [model.AgencyId.parse("ISIL:MOCK1")])
    scenario: str = "UNFILLED"
    version: Version | None = None           # None: answer in the version of the incoming message
    peers: dict[str, str] = field(default_factory=dict)   # "TYPE:VALUE" -> URL
    reply_url: str | None = None
    delay: float = 0.1
    slow_delay: float = 5.0


def _iso(when: datetime) -> str:
    return when.isoformat()


class Partner:
    """In-memory state of every transaction and the rules of every scenario."""

    def __init__(self, config: MockConfig):
        self.config = config
        self.txns: list[Txn] = []
        self.by_key: dict[tuple[str, str, str], Txn] = {}
        self.errors: list[str] = []
        self._ids = itertools.count(1)
        self._peers = {k.casefold(): v for k, v in config.peers.items()}

    # --- inbound ---------------------------------------------------------------------------

    def receive(self, data: bytes, now: datetime) -> Reply:
        try:
            inbound = decode(data)
        except MessageError as exc:
            return self._xml(answer(exc, now, data=data, version=self.config.version))
        if inbound.kind == "request":
            return self._on_request(inbound, data, now)
        if inbound.kind == "requestingAgencyMessage":
            return self._on_action(inbound, data, now)
        if inbound.kind == "supplyingAgencyMessage":
            return self._xml(self._answer(inbound, now, [Fault(
                ErrorType.UnrecognisedDataValue,
                "/ISO18626Message/supplyingAgencyMessage: this mock partner plays a supplying agency; "
                "it accepts request and requestingAgencyMessage",
            )]))
        fault = Fault(ErrorType.UnrecognisedDataValue, f"/ISO18626Message/{inbound.kind}: a confirmation is not a message to send")
        return self._xml(answer(MessageError([fault], version=inbound.version), now, version=self.config.version))

    def _answer(self, inbound: Inbound, now: datetime, faults: list[Fault] | None = None) -> bytes:
        return answer(inbound, now, faults=faults or [], version=self.config.version)

    @staticmethod
    def _xml(body: bytes, status: int = 200, kick: Txn | None = None) -> Reply:
        return Reply(status, body, "application/xml", kick)

    def serving(self, agency: model.AgencyId | None) -> model.AgencyId | None:
        if agency is None:  # 2021 makes supplyingAgencyId optional in a request
            return self.config.agencies[0]
        wanted = str(agency).casefold()
        return next((a for a in self.config.agencies if str(a).casefold() == wanted), None)

    def reply_url(self, request: model.Request) -> str | None:
        url = self._peers.get(str(request.header.requesting_agency_id).casefold()) or self.config.reply_url
        if url:
            return url
        info = request.requesting_agency_info  # illmock's fallback: an http(s) electronic address
        for address in info.address if info else []:
            data = address.electronic_address.electronic_address_data if address.electronic_address else ""
            if data.startswith(("http://", "https://")):
                return data
        return None

    def _on_request(self, inbound: Inbound, data: bytes, now: datetime) -> Reply:
        request: model.Request = inbound.message
        header = request.header
        digest = hashlib.sha256(data).hexdigest()
        agency = self.serving(header.supplying_agency_id)
        if agency is None:
            return self._xml(self._answer(inbound, now, [Fault(
                ErrorType.UnrecognisedDataValue,
                f"/ISO18626Message/request/header/supplyingAgencyId: {header.supplying_agency_id} is not served here "
                f"(this mock plays {', '.join(str(a) for a in self.config.agencies)})",
            )]))
        key = key_of(agency, header.requesting_agency_id, header.requesting_agency_request_id)
        previous = self.by_key.get(key)
        if previous is not None and digest in previous.seen:
            return self._xml(previous.seen[digest])  # the same request again: the same confirmation
        request_type = request.service_info.request_type if request.service_info else None
        scenario, source = select_scenario(request, agency, self.config.scenario)
        if request_type is RequestType.Retry:
            scenario = self._retry_scenario(scenario, source, previous)
        if previous is not None and not (request_type is RequestType.Retry and previous.status is Status.RetryPossible):
            if request_type is RequestType.Reminder:
                return self._xml(self._answer(inbound, now))
            return self._xml(self._answer(inbound, now, [Fault(
                ErrorType.UnrecognisedDataValue,
                f"/ISO18626Message/request/header/requestingAgencyRequestId: {header.requesting_agency_request_id!r} "
                f"already exists for {header.requesting_agency_id}",
            )]))
        url = self.reply_url(request)
        service_type = request.service_info.service_type if request.service_info else None
        number = next(self._ids)
        txn = Txn(
            id=number, agency=agency, requester=header.requesting_agency_id,
            request_id=header.requesting_agency_request_id,
            supplier_request_id=f"{agency.agency_id_value}-{number}",
            scenario=scenario, source=source, script=script_for(scenario, service_type),
            version=self.config.version or inbound.version, url=url, created=now, service_type=service_type,
        )
        self.txns.append(txn)
        self._log_in(txn, inbound, now)

        http_error = _HTTP_ERROR.fullmatch(scenario)
        if http_error:
            txn.live = False
            txn.messages[-1]["confirmation"] = f"HTTP {http_error.group(1)}"
            return Reply(int(http_error.group(1)), f"MOCK {scenario}\n".encode(), "text/plain")
        faults: list[Fault] = []
        if scenario == "ERROR":
            faults = [Fault(ErrorType.UnrecognisedDataValue, "/ISO18626Message/request: MOCK ERROR (scenario ERROR)")]
        elif url is None:
            faults = [Fault(
                ErrorType.UnrecognisedDataValue,
                f"/ISO18626Message/request/header/requestingAgencyId: unknown requesting agency "
                f"{header.requesting_agency_id}: no --peer for it and no --reply-url",
            )]
        body = self._answer(inbound, now, faults)
        self._confirmed(txn, faults)
        if faults:
            txn.live = False
            return self._xml(body)
        if previous is not None:
            previous.live = False
        self.by_key[key] = txn
        txn.seen[digest] = body
        txn.pending.extend(txn.script.steps)
        return self._xml(body, kick=txn if self.has_work(txn) else None)

    @staticmethod
    def _retry_scenario(scenario: str, source: str, previous: Txn | None) -> str:
        retry = _RETRY.fullmatch(scenario)
        if retry:  # the retry carries the same token: play what follows the underscore
            return _known(retry.group(2) or "LOANED")
        if source == "default" and previous is not None and previous.script.retry_next:
            return _known(previous.script.retry_next)
        return scenario

    def _on_action(self, inbound: Inbound, data: bytes, now: datetime) -> Reply:
        message: model.RequestingAgencyMessage = inbound.message
        header = message.header
        txn = self.by_key.get(key_of(header.supplying_agency_id, header.requesting_agency_id,
                                     header.requesting_agency_request_id))
        if txn is None:
            return self._xml(self._answer(inbound, now, [Fault(
                ErrorType.UnrecognisedDataValue,
                f"/ISO18626Message/requestingAgencyMessage/header/requestingAgencyRequestId: unknown request "
                f"{header.requesting_agency_request_id!r} from {header.requesting_agency_id} to {header.supplying_agency_id}",
            )]))
        digest = hashlib.sha256(data).hexdigest()
        if digest in txn.seen:
            return self._xml(txn.seen[digest])
        txn.version = self.config.version or inbound.version
        self._log_in(txn, inbound, now)
        action = message.action
        faults: list[Fault] = []
        if txn.closed and action not in (Action.StatusRequest, Action.Notification):
            faults = [Fault(
                ErrorType.UnrecognisedDataValue,
                f"/ISO18626Message/requestingAgencyMessage/action: {action.value} is not possible; "
                f"request {txn.request_id!r} is closed ({txn.status.value if txn.status else 'no status'})",
            )]
        body = self._answer(inbound, now, faults)
        self._confirmed(txn, faults)
        txn.seen[digest] = body
        if not faults:
            self._react(txn, message)
        return self._xml(body, kick=txn if self.has_work(txn) else None)

    def _react(self, txn: Txn, message: model.RequestingAgencyMessage) -> None:
        if txn.script.silent:
            return
        action = message.action
        kind = {
            Action.StatusRequest: "status",
            Action.Renew: "renew",
            Action.Cancel: "cancel",
            Action.Received: "received",
            Action.ShippedReturn: "returned",
        }.get(action)
        # The conditions answer is read as our own lending side reads it (ReShare's markers, Alma's words).
        if action is Action.Notification and txn.awaiting_accept and condition_answer(message.note) == "ACCEPT":
            kind = "accept"
        if kind:
            txn.reactions.append(Reaction(kind, action.value))

    def _log_in(self, txn: Txn, inbound: Inbound, now: datetime) -> None:
        entry: dict[str, Any] = {"direction": "in", "kind": inbound.kind, "version": inbound.version.label, "at": _iso(now)}
        if inbound.kind == "requestingAgencyMessage":
            entry["action"] = inbound.message.action.value
            entry["note"] = inbound.message.note
        else:
            entry["scenario"] = txn.scenario
        txn.messages.append(entry)

    @staticmethod
    def _confirmed(txn: Txn, faults: list[Fault]) -> None:
        txn.messages[-1]["confirmation"] = "ERROR" if faults else "OK"
        if faults:
            txn.messages[-1]["error"] = str(faults[0])

    # --- outbound --------------------------------------------------------------------------

    def has_work(self, txn: Txn) -> bool:
        return txn.live and txn.url is not None and bool(txn.reactions or txn.pending)

    def delay_for(self, txn: Txn) -> float:
        return self.config.slow_delay if txn.script.slow else self.config.delay

    def next_message(self, txn: Txn, now: datetime) -> Outgoing | None:
        """Reactions first, then the next unprompted status; None if the reaction needs no message."""
        while txn.reactions:
            out = self._reaction_message(txn, txn.reactions.popleft(), now)
            if out is not None:
                return out
        if txn.pending:
            return self._step_message(txn, txn.pending.popleft(), now)
        return None

    def _step_message(self, txn: Txn, step: Step, now: datetime) -> Outgoing:
        reason = step.reason or (ReasonForMessage.StatusChange if txn.responded else ReasonForMessage.RequestResponse)
        txn.responded = True
        when = txn.created if step.backdate else now
        if not step.stale:
            self._set_status(txn, step.status, now)
        if step.extra == "conditional":
            txn.awaiting_accept = True
        return self._build(txn, step.status, reason, when, extra=step.extra)

    def _set_status(self, txn: Txn, status: Status, now: datetime) -> None:
        txn.status = status
        if status is Status.Loaned and txn.due_date is None:
            txn.due_date = now + LOAN_PERIOD

    def _reaction_message(self, txn: Txn, reaction: Reaction, now: datetime) -> Outgoing | None:
        current = txn.status or Status.RequestReceived
        if reaction.kind == "status":
            return self._build(txn, current, ReasonForMessage.StatusRequestResponse, now)
        if reaction.kind == "renew":
            if txn.script.renew and current in (Status.Loaned, Status.Overdue):
                txn.due_date = (txn.due_date or now) + LOAN_PERIOD
                txn.status = Status.Loaned
                return self._build(txn, Status.Loaned, ReasonForMessage.RenewResponse, now, answer_yes_no=YesNo.Y)
            return self._build(txn, current, ReasonForMessage.RenewResponse, now, answer_yes_no=YesNo.N)
        if reaction.kind == "cancel":
            if not txn.script.cancel or current in SHIPPED or current in TERMINAL:
                return self._build(txn, current, ReasonForMessage.CancelResponse, now, answer_yes_no=YesNo.N)
            txn.pending.clear()
            txn.awaiting_accept = False
            txn.status = Status.Cancelled
            return self._build(txn, Status.Cancelled, ReasonForMessage.CancelResponse, now, answer_yes_no=YesNo.Y)
        if reaction.kind == "received":
            follow = txn.script.on_received
            if follow is not None and current is Status.Loaned:
                txn.script = replace(txn.script, on_received=None)
                txn.status = follow
                return self._build(txn, follow, ReasonForMessage.StatusChange, now)
            return None
        if reaction.kind == "returned":
            if current in SHIPPED:
                txn.pending.clear()
                txn.status = Status.LoanCompleted
                return self._build(txn, Status.LoanCompleted, ReasonForMessage.StatusChange, now)
            return None
        if reaction.kind == "accept":
            if txn.awaiting_accept and current in (Status.WillSupply, Status.ExpectToSupply):
                txn.awaiting_accept = False
                self._set_status(txn, Status.Loaned, now)
                return self._build(txn, Status.Loaned, ReasonForMessage.StatusChange, now)
            return None
        raise AssertionError(reaction.kind)

    def _build(self, txn: Txn, status: Status, reason: ReasonForMessage, when: datetime, *,
               answer_yes_no: YesNo | None = None, extra: str | None = None) -> Outgoing:
        version = txn.version
        info = model.MessageInfo(reason_for_message=reason, answer_yes_no=answer_yes_no)
        status_info = model.StatusInfo(status=status, last_change=when)
        message = model.SupplyingAgencyMessage(
            header=model.SupplyingAgencyMessageHeader(
                supplying_agency_id=txn.agency,
                requesting_agency_id=txn.requester,
                timestamp=when,
                requesting_agency_request_id=txn.request_id,
                supplying_agency_request_id=txn.supplier_request_id,
            ),
            message_info=info,
            status_info=status_info,
        )
        v2021 = version is Version.V2021
        if status in SHIPPED:
            status_info.due_date = txn.due_date
        if status is Status.Loaned and reason is not ReasonForMessage.RenewResponse and extra is None:
            message.delivery_info = model.DeliveryInfo(
                date_sent=when, item_id=[f"{txn.supplier_request_id}-ITEM"],
                delivery_method=model.SchemeValue("Mail"), item_format=model.SchemeValue("Printed"),
            )
        elif status is Status.Unfilled:
            info.reason_unfilled = model.SchemeValue("NotAvailableForILL")
        elif extra == "copy":
            url = f"https://mock.example.org/copies/{txn.supplier_request_id}.pdf"
            message.delivery_info = model.DeliveryInfo(
                date_sent=when, item_id=[f"{txn.supplier_request_id}-COPY"], url=url if v2021 else None,
                delivery_method=model.SchemeValue("URL"), item_format=model.SchemeValue("PDF"),
            )
            info.note = f"Copy available at {url}"
        elif extra == "conditional":
            costs = model.Costs(model.SchemeValue("USD"), Decimal("10.00"))
            info.note = "#ReShareAddLoanCondition# LibraryUseOnly"
            if v2021:
                message.retry_info = model.RetryInfo(loan_condition=[model.SchemeValue("LibraryUseOnly")], offered_costs=[costs])
            else:
                info.offered_costs = costs
        elif extra and extra.startswith("retry:"):
            self._retry_details(message, extra.split(":", 1)[1], when, v2021)
        body = encode(message, version)
        return Outgoing(txn, body, status, reason, answer_yes_no, copies=2 if txn.script.duplicate else 1)

    @staticmethod
    def _retry_details(message: model.SupplyingAgencyMessage, code: str, when: datetime, v2021: bool) -> None:
        info = message.message_info
        info.reason_retry = model.SchemeValue(RETRY_REASONS[code])
        retry = model.RetryInfo()
        if code == "COND":
            if v2021:
                retry.loan_condition = [model.SchemeValue("NoReproduction")]
            else:  # 2017 has loanCondition only in deliveryInfo
                message.delivery_info = model.DeliveryInfo(date_sent=when, loan_condition=[model.SchemeValue("NoReproduction")])
        elif code == "COST":
            costs = model.Costs(model.SchemeValue("USD"), Decimal("35"))
            if v2021:
                retry.offered_costs = [costs]
            else:
                info.offered_costs = costs
        elif code == "ONLOAN":
            if v2021:
                retry.retry_after = when
            else:
                info.retry_after = when
        if v2021 and retry != model.RetryInfo():
            message.retry_info = retry

    def record_delivery(self, out: Outgoing, result: DeliveryResult, now: datetime, copy: int = 1) -> None:
        entry: dict[str, Any] = {
            "direction": "out", "kind": "supplyingAgencyMessage", "version": out.txn.version.label,
            "at": _iso(now), "status": out.status.value, "reason_for_message": out.reason.value,
            "answer_yes_no": out.answer_yes_no.value if out.answer_yes_no else None,
            "url": out.txn.url, "http_status": result.http_status, "confirmation": result.confirmation,
        }
        if out.copies > 1:
            entry["copy"] = copy
        if result.error:
            entry["error"] = result.error
            self.note_error(out.txn, f"sending {out.status.value} to {out.txn.url}: {result.error}")
        out.txn.messages.append(entry)

    def abandon(self, txn: Txn, why: str) -> None:
        """Sending failed after the retry: drop what was still to be sent."""
        txn.pending.clear()
        txn.reactions.clear()
        self.note_error(txn, f"gave up: {why}")

    def note_error(self, txn: Txn | None, text: str) -> None:
        if txn is not None:
            txn.errors.append(text)
        self.errors.append(f"{txn.agency}/{txn.request_id}: {text}" if txn else text)

    # --- state -----------------------------------------------------------------------------

    def snapshot(self, *, request_id: str | None = None, agency: str | None = None) -> dict[str, Any]:
        txns = [t for t in self.txns
                if (request_id is None or t.request_id == request_id)
                and (agency is None or str(t.agency).casefold() == agency.casefold())]
        return {
            "agencies": [str(a) for a in self.config.agencies],
            "default_scenario": self.config.scenario,
            "version": self.config.version.label if self.config.version else None,
            "requests": [t.snapshot() for t in txns],
            "errors": list(self.errors),
        }

    def reset(self) -> None:
        for txn in self.txns:
            txn.live = False
            txn.pending.clear()
            txn.reactions.clear()
        self.txns.clear()
        self.by_key.clear()
        self.errors.clear()
