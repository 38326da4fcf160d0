"""Borrowing state machine: the transition table pair by pair, staff actions, lifecycle."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from gateway.core import (
    TABLE, AcceptConditions, Acknowledge, AddNote, AddPartner, Attention, BorrowingPolicy, BorrowingState,
    BorrowingStatus, CancelInfo, CancelPartner, CancelRequest, Close, Create, DeliveryFailed, Edit,
    EntryState, IllegalTransition, InvalidInput, ItemLocation, LoanToPatron, Locate, MarkMessagesRead, MoveUp,
    Receive, RejectConditions, RemovePartner, Renew, RequestConfirmed, RequestDetails, RetryRequest, ReturnByPatron,
    ReturnToPartner, RotaEntry, SendMessage, SendStatusRequest, SkipPartner, SupplierMessage, Tick,
    allowed_actions, decide, render_markdown,
)
from gateway.core.borrowing.state import status_flags
from gateway.core.borrowing.statuses import ANSWERED, FINAL, ON_LOAN, SHIPPED
from gateway.core.borrowing.table import GUARDS, PARTNER_KEYS, STAFF_KEYS, is_out_of_order, partner_keys
from gateway.messages.codes import Action, ReasonForMessage as R, RequestType, Status, YesNo

S = BorrowingStatus
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=timezone.utc)
A, B, C = "ISIL:DE-A", "ISIL:DE-B", "ISIL:DE-C"
DETAILS = RequestDetails(requester="patron-17", pickup_location="MAIN", title="Moby Dick")


def at(minutes: int = 0, days: int = 0) -> datetime:
    return T0 + timedelta(days=days, minutes=minutes)


def msg(status: Status | None, reason: R = R.StatusChange, partner: str = A, **kw) -> SupplierMessage:
    kw.setdefault("received_at", at(5))
    return SupplierMessage(partner=partner, reason=reason, status=status, **kw)


def state_in(status: S, **changes) -> BorrowingState:
    """A plausible request in `status`: A is the current partner, B and C are pending."""
    active = RotaEntry(A, EntryState.ACTIVE, sent_at=T0)
    extra: dict = {}
    if status is S.LOCATE_FAILED:
        rota: tuple[RotaEntry, ...] = ()
    else:
        if status in ANSWERED or status is S.WAITING_FOR_CANCEL_RESPONSE:
            active = replace(active, confirmed_at=T0, answered_at=at(1))
        elif status is S.REQUEST_SENT:
            active = replace(active, confirmed_at=T0)
        elif status in SHIPPED | ON_LOAN | {S.RETURNED_TO_PARTNER, S.COMPLETED}:
            active = replace(active, state=EntryState.SUPPLIED, confirmed_at=T0, answered_at=at(1))
            extra = {"supply": "copy" if status is S.SHIPPED_DIGITALLY else "loan", "due_date": at(days=14)}
        elif status in FINAL:
            active = replace(active, state=EntryState.CANCELLED)
        rota = (active, RotaEntry(B), RotaEntry(C))
    if status in ON_LOAN:
        extra["location"] = ItemLocation.PATRON if status is S.LOANED_TO_PATRON else ItemLocation.LIBRARY
    if status is S.RETURNED_TO_PARTNER:
        extra["location"] = ItemLocation.RETURNED
    if status is S.RENEW_REQUESTED:
        extra["previous_status"] = S.RECEIVED_PHYSICALLY
    if status is S.WAITING_FOR_CANCEL_RESPONSE:
        extra.update(previous_status=S.WILL_SUPPLY, cancel=CancelInfo(by="staff", by_patron=False))
    state = BorrowingState(**{"details": DETAILS, "status": status, "rota": rota, **extra, **changes})
    return replace(state, flags=state.flags | status_flags(state))


def entry(state: BorrowingState, partner: str) -> RotaEntry:
    return next(e for e in state.rota if e.partner == partner)


def requests_to(decision) -> list[str]:
    return [o.partner for o in decision.outgoing if o.kind == "request"]


def actions(decision) -> list[tuple[str, Action]]:
    return [(o.partner, o.action) for o in decision.outgoing if o.kind == "requestingAgencyMessage"]


def refused(state: BorrowingState, event, policy: BorrowingPolicy | None = None) -> IllegalTransition:
    before = copy.deepcopy(state)
    with pytest.raises(IllegalTransition) as caught:
        decide(state, event, policy or BorrowingPolicy())
    assert state == before  # nothing changed
    return caught.value


# --- statuses ------------------------------------------------------------------------------

DESIGN_CODES = """CREATED LOCATE_FAILED REQUEST_SENT READY_TO_SEND EXPECTED_TO_SUPPLY WILL_SUPPLY CONDITIONAL
RETRY_POSSIBLE REJECTED_BY_PARTNER SHIPPED_PHYSICALLY SHIPPED_DIGITALLY RECEIVED_PHYSICALLY LOANED_TO_PATRON
RETURNED_BY_PATRON RENEW_REQUESTED RENEWED_BY_PARTNER RENEW_NOT_ACCEPTED OVERDUE RECALLED RETURNED_TO_PARTNER
WAITING_FOR_CANCEL_RESPONSE COMPLETED CANCELED_BY_STAFF CANCELED_BY_PATRON CANCELED_BY_PARTNER EXPIRED""".split()


def test_statuses_are_exactly_the_design_codes_with_alma_labels():
    assert [s.value for s in S] == DESIGN_CODES
    assert S.EXPECTED_TO_SUPPLY.label == "Request accepted"
    assert S.RECEIVED_PHYSICALLY.label == "Physically received by library"
    assert S.REQUEST_SENT.label == "Request sent to partner"
    assert all(s.label for s in S) and set(TABLE) == set(S)


def test_markdown_table_is_derived_from_the_table():
    text = render_markdown()
    for status in S:
        assert f"| {status.value} | {status.label} |" in text
    assert "`accept_conditions` → WILL_SUPPLY" in text
    assert "`Unfilled` → *next_partner*" in text
    assert "| `close` | only a copy can be closed" in text


# --- partner messages, pair by pair (docs/partners.md, Alma) ------------------------------------

COND = {"loan_conditions": ("LibraryUseOnly",)}
COSTS = {"offered_costs": ((Decimal("12.50"), "USD"),)}
DUE = {"due_date": at(days=28)}

PARTNER_CASES = [
    (S.CREATED, msg(Status.RequestReceived, R.RequestResponse), S.EXPECTED_TO_SUPPLY),
    (S.REQUEST_SENT, msg(Status.RequestReceived, R.RequestResponse), S.EXPECTED_TO_SUPPLY),
    (S.REQUEST_SENT, msg(Status.ExpectToSupply, R.RequestResponse), S.EXPECTED_TO_SUPPLY),
    (S.REQUEST_SENT, msg(Status.WillSupply, R.RequestResponse), S.WILL_SUPPLY),
    (S.EXPECTED_TO_SUPPLY, msg(Status.WillSupply), S.WILL_SUPPLY),
    (S.REJECTED_BY_PARTNER, msg(Status.WillSupply, R.RequestResponse), S.WILL_SUPPLY),
    (S.REQUEST_SENT, msg(Status.WillSupply, R.RequestResponse, **COND), S.CONDITIONAL),
    (S.EXPECTED_TO_SUPPLY, msg(Status.ExpectToSupply, **COSTS), S.CONDITIONAL),
    (S.WILL_SUPPLY, msg(Status.WillSupply, **COND), S.CONDITIONAL),
    (S.CONDITIONAL, msg(Status.WillSupply), S.WILL_SUPPLY),
    (S.REQUEST_SENT, msg(Status.RetryPossible, R.RequestResponse, reason_retry="OnLoan"), S.RETRY_POSSIBLE),
    (S.EXPECTED_TO_SUPPLY, msg(Status.RetryPossible), S.RETRY_POSSIBLE),
    (S.REQUEST_SENT, msg(Status.Unfilled, R.RequestResponse, reason_unfilled="NotHeld"), S.REJECTED_BY_PARTNER),
    (S.WILL_SUPPLY, msg(Status.Unfilled), S.REJECTED_BY_PARTNER),
    (S.CONDITIONAL, msg(Status.Unfilled), S.REJECTED_BY_PARTNER),
    (S.REQUEST_SENT, msg(Status.Loaned, **DUE), S.SHIPPED_PHYSICALLY),
    (S.WILL_SUPPLY, msg(Status.Loaned, **DUE), S.SHIPPED_PHYSICALLY),
    (S.CONDITIONAL, msg(Status.Loaned), S.SHIPPED_PHYSICALLY),
    (S.WILL_SUPPLY, msg(Status.CopyCompleted), S.SHIPPED_DIGITALLY),
    (S.SHIPPED_PHYSICALLY, msg(Status.Overdue), S.OVERDUE),
    (S.RECEIVED_PHYSICALLY, msg(Status.Overdue), S.OVERDUE),
    (S.LOANED_TO_PATRON, msg(Status.Overdue), S.OVERDUE),
    (S.RENEWED_BY_PARTNER, msg(Status.Overdue), S.OVERDUE),
    (S.RECALLED, msg(Status.Overdue), S.OVERDUE),
    (S.RECEIVED_PHYSICALLY, msg(Status.Recalled), S.RECALLED),
    (S.LOANED_TO_PATRON, msg(Status.Recalled), S.RECALLED),
    (S.OVERDUE, msg(Status.Recalled), S.RECALLED),
    (S.RENEW_REQUESTED, msg(Status.Recalled), S.RECALLED),
    (S.RENEW_REQUESTED, msg(Status.Overdue), S.RENEW_REQUESTED),
    (S.RENEW_REQUESTED, msg(Status.Loaned, R.RenewResponse, answer=YesNo.Y, **DUE), S.RENEWED_BY_PARTNER),
    (S.RENEW_REQUESTED, msg(Status.Loaned, R.RenewResponse, answer=YesNo.N), S.RENEW_NOT_ACCEPTED),
    (S.RENEW_REQUESTED, msg(Status.Loaned, R.RenewResponse, **DUE), S.RENEWED_BY_PARTNER),  # no answer
    (S.LOANED_TO_PATRON, msg(Status.HoldReturn), S.LOANED_TO_PATRON),
    (S.WAITING_FOR_CANCEL_RESPONSE, msg(Status.Cancelled, R.CancelResponse, answer=YesNo.Y), S.CANCELED_BY_STAFF),
    (S.WAITING_FOR_CANCEL_RESPONSE, msg(Status.WillSupply, R.CancelResponse, answer=YesNo.N), S.WILL_SUPPLY),
    (S.WAITING_FOR_CANCEL_RESPONSE, msg(Status.Cancelled, R.CancelResponse), S.CANCELED_BY_STAFF),  # no answer
    (S.WAITING_FOR_CANCEL_RESPONSE, msg(Status.Unfilled), S.CANCELED_BY_STAFF),
    (S.WAITING_FOR_CANCEL_RESPONSE, msg(Status.Cancelled), S.CANCELED_BY_STAFF),
    (S.WAITING_FOR_CANCEL_RESPONSE, msg(Status.Loaned), S.WAITING_FOR_CANCEL_RESPONSE),
    (S.REQUEST_SENT, msg(Status.Cancelled), S.CANCELED_BY_PARTNER),
    (S.WILL_SUPPLY, msg(Status.Cancelled), S.CANCELED_BY_PARTNER),
    (S.REQUEST_SENT, msg(Status.LoanCompleted, R.RequestResponse), S.COMPLETED),
    (S.RETURNED_TO_PARTNER, msg(Status.LoanCompleted), S.COMPLETED),
    (S.RECEIVED_PHYSICALLY, msg(Status.LoanCompleted), S.COMPLETED),
    (S.SHIPPED_DIGITALLY, msg(Status.CompletedWithoutReturn), S.COMPLETED),
    # Notification: a general message, never a status change (status given or Alma's empty one)
    (S.REQUEST_SENT, msg(Status.WillSupply, R.Notification, note="hello"), S.REQUEST_SENT),
    (S.WILL_SUPPLY, msg(None, R.Notification, note="on its way"), S.WILL_SUPPLY),
    (S.LOANED_TO_PATRON, msg(None, R.StatusChange, note="empty status"), S.LOANED_TO_PATRON),
    (S.CONDITIONAL, msg(None, R.Notification, note="ACCEPT"), S.CONDITIONAL),
    (S.COMPLETED, msg(None, R.Notification, note="thanks"), S.COMPLETED),
    (S.WAITING_FOR_CANCEL_RESPONSE, msg(None, R.Notification, note="checking"), S.WAITING_FOR_CANCEL_RESPONSE),
]


@pytest.mark.parametrize(("start", "message", "expected"), PARTNER_CASES,
                         ids=[f"{s.value}-{m.key}" for s, m, _ in PARTNER_CASES])
def test_partner_message(start, message, expected):
    state = state_in(start)
    decision = decide(state, message)
    assert decision.status is expected
    assert decision.previous == state and decision.history


# A status from an earlier phase (or a response nobody asked for) is recorded, not refused.
OUT_OF_ORDER = [
    (S.SHIPPED_PHYSICALLY, msg(Status.WillSupply)),
    (S.RECEIVED_PHYSICALLY, msg(Status.Loaned)),
    (S.WILL_SUPPLY, msg(Status.ExpectToSupply)),
    (S.WILL_SUPPLY, msg(Status.RequestReceived)),
    (S.SHIPPED_PHYSICALLY, msg(Status.Unfilled)),
    (S.OVERDUE, msg(Status.Overdue)),
    (S.COMPLETED, msg(Status.Loaned)),
    (S.REQUEST_SENT, msg(Status.Loaned, R.RenewResponse, answer=YesNo.Y)),
    (S.WILL_SUPPLY, msg(Status.WillSupply, R.CancelResponse, answer=YesNo.N)),
]


@pytest.mark.parametrize(("start", "message"), OUT_OF_ORDER, ids=[f"{s.value}-{m.key}" for s, m in OUT_OF_ORDER])
def test_out_of_order_status_is_recorded_and_changes_nothing(start, message):
    state = state_in(start)
    decision = decide(state, message)
    assert decision.state == state and not decision.outgoing
    assert [h.event for h in decision.history] == ["out_of_order"]
    assert "out of order" in decision.history[0].detail


ILLEGAL_PARTNER = [
    (S.REQUEST_SENT, msg(Status.Overdue)),
    (S.EXPECTED_TO_SUPPLY, msg(Status.Recalled)),
    (S.WILL_SUPPLY, msg(Status.Overdue)),
    (S.SHIPPED_PHYSICALLY, msg(Status.Cancelled)),
    (S.RECEIVED_PHYSICALLY, msg(Status.Cancelled)),
    (S.RETURNED_TO_PARTNER, msg(Status.Cancelled)),
    (S.SHIPPED_DIGITALLY, msg(Status.Overdue)),
]


@pytest.mark.parametrize(("start", "message"), ILLEGAL_PARTNER, ids=[f"{s.value}-{m.key}" for s, m in ILLEGAL_PARTNER])
def test_illegal_partner_message_is_refused(start, message):
    error = refused(state_in(start), message)
    assert error.event == message.key and error.status == start.value
    assert "Notification" in error.allowed
    assert message.key in str(error) and start.value in str(error)


# One canonical message per partner key of the table.
KEY_MESSAGES = {
    "Notification": msg(None, R.Notification, note="hi"),
    "ConditionsAssumedAgreed": msg(Status.WillSupply, R.Notification, conditions_assumed_agreed=True,
                                   note="#ReShareSupplierConditionsAssumedAgreed#"),
    "RequestReceived": msg(Status.RequestReceived, R.RequestResponse),
    "ExpectToSupply": msg(Status.ExpectToSupply, R.RequestResponse),
    "WillSupply": msg(Status.WillSupply, R.RequestResponse),
    "Conditional": msg(Status.WillSupply, R.RequestResponse, **COND),
    "RetryPossible": msg(Status.RetryPossible, R.RequestResponse, reason_retry="NotFoundAsCited"),
    "Unfilled": msg(Status.Unfilled, R.RequestResponse),
    "Loaned": msg(Status.Loaned, **DUE),
    "CopyCompleted": msg(Status.CopyCompleted),
    "Cancelled": msg(Status.Cancelled),
    "Overdue": msg(Status.Overdue),
    "Recalled": msg(Status.Recalled),
    "HoldReturn": msg(Status.HoldReturn),
    "ReleaseHoldReturn": msg(Status.ReleaseHoldReturn),
    "RenewResponse:Y": msg(Status.Loaned, R.RenewResponse, answer=YesNo.Y, **DUE),
    "RenewResponse:N": msg(Status.Loaned, R.RenewResponse, answer=YesNo.N),
    "LoanCompleted": msg(Status.LoanCompleted),
    "CompletedWithoutReturn": msg(Status.CompletedWithoutReturn),
    "CancelResponse:Y": msg(Status.Cancelled, R.CancelResponse, answer=YesNo.Y),
    "CancelResponse:N": msg(Status.WillSupply, R.CancelResponse, answer=YesNo.N),
}


def test_key_messages_cover_every_partner_key():
    assert set(KEY_MESSAGES) == set(PARTNER_KEYS)
    assert all(m.key == key for key, m in KEY_MESSAGES.items())


@pytest.mark.parametrize("status", list(S), ids=[s.value for s in S])
def test_every_partner_key_in_every_status_follows_the_table(status):
    """All 26 x 20 pairs: applied per TABLE, recorded if out of order, else refused."""
    state = state_in(status)
    for key, message in KEY_MESSAGES.items():
        found = TABLE[status].get(key)
        if state.current is None and key not in ("Notification", "ConditionsAssumedAgreed"):
            assert refused(state, message).reason == "not the active partner"
        elif found is not None:
            decision = decide(state, message)
            if isinstance(found, S):
                assert decision.status is found, key
        elif is_out_of_order(status, key):
            assert decide(state, message).state == state, key
        else:
            assert refused(state, message).allowed == partner_keys(status), key


SYSTEM_EVENTS = [
    Tick(now=at(days=30)),
    RequestConfirmed(partner=A, now=at(3)),
    RequestConfirmed(partner=B, now=at(3)),
    DeliveryFailed(partner=A, kind="request", at=at(3)),
    DeliveryFailed(partner=A, kind="requestingAgencyMessage", action=Action.Cancel, at=at(3)),
    DeliveryFailed(partner=A, kind="requestingAgencyMessage", action=Action.Renew, at=at(3)),
    DeliveryFailed(partner=B, kind="requestingAgencyMessage", action=Action.Notification, at=at(3)),
]


@pytest.mark.parametrize("status", list(S), ids=[s.value for s in S])
def test_system_events_never_raise(status):
    state = state_in(status)
    for event in SYSTEM_EVENTS:
        decision = decide(state, event)
        found = TABLE[status].get(event.key) if isinstance(event, DeliveryFailed) else None
        if isinstance(found, S) and state.current and state.current.partner == event.partner:
            assert decision.status is found


def test_message_from_a_partner_that_is_not_active():
    state = state_in(S.REQUEST_SENT)
    error = refused(state, msg(Status.WillSupply, partner=B))
    assert error.reason == "not the active partner" and error.allowed == ("Notification",)
    # a Notification is still recorded: history + general message, no status change; staff are
    # told there is an unread message
    decision = decide(state, msg(None, R.Notification, partner=B, note="we have it too"))
    assert decision.state == replace(state, flags=state.flags | {Attention.MESSAGE_UNREAD})
    assert decision.messages[0].partner == B and decision.messages[0].direction == "in"
    assert "not the active partner" in decision.history[0].detail
    # once the request is cancelled nobody is active
    refused(state_in(S.CANCELED_BY_STAFF), msg(Status.Loaned))


def test_conditional_records_conditions_and_needs_attention():
    decision = decide(state_in(S.REQUEST_SENT), msg(Status.WillSupply, R.RequestResponse, **COND, **COSTS))
    assert decision.status is S.CONDITIONAL
    assert entry(decision.state, A).loan_conditions == ("LibraryUseOnly",)
    assert entry(decision.state, A).offered_costs == ((Decimal("12.50"), "USD"),)
    assert decision.flags_set == {Attention.CONDITIONS_OFFERED}
    accepted = decide(decision.state, AcceptConditions(at=at(9)))
    assert accepted.flags_cleared == {Attention.CONDITIONS_OFFERED}


def test_lender_accept_note_is_not_a_condition_answer():
    state = decide(state_in(S.REQUEST_SENT), msg(Status.WillSupply, **COND)).state
    decision = decide(state, msg(None, R.Notification, note="ACCEPT"))
    assert decision.status is S.CONDITIONAL and Attention.CONDITIONS_OFFERED in decision.state.flags
    assert decision.messages[0].note == "ACCEPT"


def test_unfilled_sends_the_request_to_the_next_partner_at_once():
    decision = decide(state_in(S.REQUEST_SENT), msg(Status.Unfilled, reason_unfilled="NotHeld"))
    assert decision.status is S.REJECTED_BY_PARTNER
    assert requests_to(decision) == [B]
    assert entry(decision.state, A).state is EntryState.REJECTED and entry(decision.state, A).reason == "NotHeld"
    assert entry(decision.state, B).state is EntryState.ACTIVE and entry(decision.state, B).sent_at == at(5)
    confirmed = decide(decision.state, RequestConfirmed(partner=B, now=at(6)))
    assert confirmed.status is S.REQUEST_SENT


def test_loaned_sets_due_date_and_supplied_entry():
    decision = decide(state_in(S.WILL_SUPPLY), msg(Status.Loaned, **DUE))
    assert decision.state.due_date == at(days=28) and decision.state.supply == "loan"
    assert entry(decision.state, A).state is EntryState.SUPPLIED and entry(decision.state, A).last_status is Status.Loaned


def test_renewed_by_partner_takes_new_due_date():
    decision = decide(state_in(S.RENEW_REQUESTED), msg(Status.Loaned, R.RenewResponse, answer=YesNo.Y, **DUE))
    assert decision.state.due_date == at(days=28) and decision.state.previous_status is None


def test_partner_cancel_policy_next_moves_on():
    decision = decide(state_in(S.WILL_SUPPLY), msg(Status.Cancelled), BorrowingPolicy(on_partner_cancel="next"))
    assert decision.status is S.REJECTED_BY_PARTNER and requests_to(decision) == [B]
    assert entry(decision.state, A).state is EntryState.CANCELLED


def test_status_request_response_records_and_applies_only_forward():
    forward = decide(state_in(S.REQUEST_SENT), msg(Status.WillSupply, R.StatusRequestResponse))
    assert forward.status is S.WILL_SUPPLY
    back = decide(state_in(S.SHIPPED_PHYSICALLY), msg(Status.WillSupply, R.StatusRequestResponse))
    assert back.status is S.SHIPPED_PHYSICALLY
    assert entry(back.state, A).last_status is Status.WillSupply  # what the partner says is kept
    same = decide(state_in(S.SHIPPED_PHYSICALLY), msg(Status.Loaned, R.StatusRequestResponse))
    assert same.status is S.SHIPPED_PHYSICALLY and not same.outgoing
    # a status response never raises, even with a status the table refuses
    odd = decide(state_in(S.REQUEST_SENT), msg(Status.Overdue, R.StatusRequestResponse))
    assert odd.status is S.REQUEST_SENT and entry(odd.state, A).last_status is Status.Overdue


# --- cancel ------------------------------------------------------------------------------------


def test_cancel_with_active_partner_waits_for_the_response():
    state = state_in(S.WILL_SUPPLY)
    decision = decide(state, CancelRequest(at=at(10), reason="patron no longer needs it", notify_patron=True))
    assert decision.status is S.WAITING_FOR_CANCEL_RESPONSE
    assert actions(decision) == [(A, Action.Cancel)] and decision.outgoing[0].note == "patron no longer needs it"
    assert decision.state.previous_status is S.WILL_SUPPLY and decision.state.cancel.notify_patron
    yes = decide(decision.state, msg(Status.Cancelled, R.CancelResponse, answer=YesNo.Y))
    assert yes.status is S.CANCELED_BY_STAFF and entry(yes.state, A).state is EntryState.CANCELLED


def test_cancel_by_patron_ends_as_canceled_by_patron():
    waiting = decide(state_in(S.REQUEST_SENT), CancelRequest(at=at(10), by="patron:17", by_patron=True)).state
    done = decide(waiting, msg(Status.Cancelled, R.CancelResponse, answer=YesNo.Y))
    assert done.status is S.CANCELED_BY_PATRON and done.history[-1].to_status is S.CANCELED_BY_PATRON


def test_cancel_without_active_partner_is_immediate():
    decision = decide(state_in(S.LOCATE_FAILED), CancelRequest(at=at(1), reason="duplicate"))
    assert decision.status is S.CANCELED_BY_STAFF and not decision.outgoing
    assert decision.flags_cleared == {Attention.NO_PARTNERS}


def test_cancel_response_no_restores_previous_status():
    waiting = decide(state_in(S.CONDITIONAL), CancelRequest(at=at(10))).state
    decision = decide(waiting, msg(Status.WillSupply, R.CancelResponse, answer=YesNo.N))
    assert decision.status is S.CONDITIONAL and decision.state.previous_status is None
    assert "cancel not accepted" in decision.history[-1].detail
    assert decision.history[-1].from_status is S.WAITING_FOR_CANCEL_RESPONSE


def test_loaned_crossing_our_cancel_is_restored_when_cancel_is_refused():
    waiting = decide(state_in(S.WILL_SUPPLY), CancelRequest(at=at(10))).state
    crossed = decide(waiting, msg(Status.Loaned, **DUE))
    assert crossed.status is S.WAITING_FOR_CANCEL_RESPONSE
    assert crossed.state.previous_status is S.SHIPPED_PHYSICALLY
    refused_cancel = decide(crossed.state, msg(Status.Loaned, R.CancelResponse, answer=YesNo.N))
    assert refused_cancel.status is S.SHIPPED_PHYSICALLY and refused_cancel.state.due_date == at(days=28)


def test_cancel_that_cannot_be_delivered_restores_and_flags():
    waiting = decide(state_in(S.WILL_SUPPLY), CancelRequest(at=at(10))).state
    failed = decide(waiting, DeliveryFailed(partner=A, kind="requestingAgencyMessage", action=Action.Cancel, at=at(20)))
    assert failed.status is S.WILL_SUPPLY and failed.flags_set == {Attention.SEND_FAILED}
    cleared = decide(failed.state, Acknowledge(at=at(30), flag=Attention.SEND_FAILED))
    assert cleared.flags_cleared == {Attention.SEND_FAILED}
    assert cleared.state.cancel is None  # the cancel did not happen
    refused(cleared.state, Acknowledge(at=at(31), flag=Attention.SEND_FAILED))


# --- staff actions, pair by pair -------------------------------------------------------------


def _ev(cls, **kw):
    return lambda: cls(at=at(30), **kw)


STAFF_EVENTS = {
    # a local field: a field the request carries cannot change once a partner has it
    "edit": _ev(Edit, changes={"pickup_location": "Law library"}),
    "send_message": _ev(SendMessage, note="Any news?"),
    "add_note": _ev(AddNote, text="patron called"),
    "status_request": _ev(SendStatusRequest),
    "move_partner": _ev(MoveUp, partner=C),
    "add_partner": _ev(AddPartner, partner="ISIL:DE-D"),
    "remove_partner": _ev(RemovePartner, partner=C),
    "cancel_partner": _ev(CancelPartner, note="too slow"),
    "locate": _ev(Locate, default_rota=("ISIL:DE-D",)),
    "cancel": _ev(CancelRequest, reason="not needed"),
    "accept_conditions": _ev(AcceptConditions),
    "reject_conditions": _ev(RejectConditions),
    "retry": _ev(RetryRequest, changes={"title": "Moby Dick (1851)"}),
    "skip": _ev(SkipPartner),
    "receive": _ev(Receive, items=("B0001",)),
    "loan_to_patron": _ev(LoanToPatron),
    "return_by_patron": _ev(ReturnByPatron),
    "return_to_partner": _ev(ReturnToPartner),
    "renew": _ev(Renew),
    "close": _ev(Close),
}

STAFF_CASES = [
    (S.REQUEST_SENT, "edit", S.REQUEST_SENT, []),
    (S.WILL_SUPPLY, "send_message", S.WILL_SUPPLY, [(A, Action.Notification)]),
    (S.COMPLETED, "add_note", S.COMPLETED, []),
    (S.REQUEST_SENT, "status_request", S.REQUEST_SENT, [(A, Action.StatusRequest)]),
    (S.REQUEST_SENT, "move_partner", S.REQUEST_SENT, []),
    (S.LOCATE_FAILED, "add_partner", S.LOCATE_FAILED, []),
    (S.WILL_SUPPLY, "remove_partner", S.WILL_SUPPLY, []),
    (S.REQUEST_SENT, "cancel_partner", S.REJECTED_BY_PARTNER, [(A, Action.Cancel)]),
    (S.LOCATE_FAILED, "locate", S.READY_TO_SEND, []),
    (S.REQUEST_SENT, "cancel", S.WAITING_FOR_CANCEL_RESPONSE, [(A, Action.Cancel)]),
    (S.RETRY_POSSIBLE, "cancel", S.WAITING_FOR_CANCEL_RESPONSE, [(A, Action.Cancel)]),
    (S.LOCATE_FAILED, "cancel", S.CANCELED_BY_STAFF, []),
    (S.CONDITIONAL, "accept_conditions", S.WILL_SUPPLY, [(A, Action.Notification)]),
    (S.CONDITIONAL, "reject_conditions", S.REJECTED_BY_PARTNER, [(A, Action.Cancel)]),
    (S.RETRY_POSSIBLE, "retry", S.READY_TO_SEND, []),
    (S.RETRY_POSSIBLE, "skip", S.REJECTED_BY_PARTNER, []),
    (S.SHIPPED_PHYSICALLY, "receive", S.RECEIVED_PHYSICALLY, [(A, Action.Received)]),
    (S.SHIPPED_DIGITALLY, "receive", S.RECEIVED_PHYSICALLY, [(A, Action.Received)]),
    (S.RECEIVED_PHYSICALLY, "loan_to_patron", S.LOANED_TO_PATRON, []),
    (S.RENEWED_BY_PARTNER, "loan_to_patron", S.LOANED_TO_PATRON, []),
    (S.LOANED_TO_PATRON, "return_by_patron", S.RETURNED_BY_PATRON, []),
    (S.RECEIVED_PHYSICALLY, "return_to_partner", S.RETURNED_TO_PARTNER, [(A, Action.ShippedReturn)]),
    (S.RETURNED_BY_PATRON, "return_to_partner", S.RETURNED_TO_PARTNER, [(A, Action.ShippedReturn)]),
    (S.RECALLED, "return_to_partner", S.RETURNED_TO_PARTNER, [(A, Action.ShippedReturn)]),
    (S.OVERDUE, "return_to_partner", S.RETURNED_TO_PARTNER, [(A, Action.ShippedReturn)]),
    (S.LOANED_TO_PATRON, "renew", S.RENEW_REQUESTED, [(A, Action.Renew)]),
    (S.OVERDUE, "renew", S.RENEW_REQUESTED, [(A, Action.Renew)]),
    (S.RENEW_NOT_ACCEPTED, "renew", S.RENEW_REQUESTED, [(A, Action.Renew)]),
    (S.SHIPPED_DIGITALLY, "close", S.COMPLETED, []),
]


@pytest.mark.parametrize(("start", "key", "expected", "sent"), STAFF_CASES,
                         ids=[f"{s.value}-{k}" for s, k, _, _ in STAFF_CASES])
def test_staff_action(start, key, expected, sent):
    state = state_in(start)
    assert key in allowed_actions(state)
    decision = decide(state, STAFF_EVENTS[key]())
    assert decision.status is expected
    assert actions(decision) == sent
    assert decision.history and decision.history[0].actor == "staff"


ILLEGAL_STAFF = [
    (S.SHIPPED_PHYSICALLY, "cancel"),  # only before shipping
    (S.RECEIVED_PHYSICALLY, "cancel"),
    (S.WAITING_FOR_CANCEL_RESPONSE, "cancel"),
    (S.COMPLETED, "cancel"),
    (S.SHIPPED_PHYSICALLY, "edit"),
    (S.REQUEST_SENT, "receive"),
    (S.WILL_SUPPLY, "receive"),
    (S.WILL_SUPPLY, "accept_conditions"),
    (S.WILL_SUPPLY, "reject_conditions"),
    (S.REQUEST_SENT, "retry"),
    (S.CONDITIONAL, "skip"),
    (S.SHIPPED_PHYSICALLY, "loan_to_patron"),
    (S.LOANED_TO_PATRON, "loan_to_patron"),
    (S.RECALLED, "loan_to_patron"),
    (S.RECEIVED_PHYSICALLY, "return_by_patron"),
    (S.LOANED_TO_PATRON, "return_to_partner"),
    (S.SHIPPED_PHYSICALLY, "return_to_partner"),
    (S.RECALLED, "renew"),
    (S.RENEW_REQUESTED, "renew"),
    (S.SHIPPED_PHYSICALLY, "renew"),
    (S.REQUEST_SENT, "close"),
    (S.RECEIVED_PHYSICALLY, "close"),  # a loan: the lender completes it
    (S.REQUEST_SENT, "locate"),
    (S.EXPIRED, "locate"),
    (S.LOCATE_FAILED, "send_message"),
    (S.LOCATE_FAILED, "cancel_partner"),
    (S.SHIPPED_PHYSICALLY, "cancel_partner"),
    (S.SHIPPED_PHYSICALLY, "move_partner"),
    (S.COMPLETED, "send_message"),
    (S.EXPIRED, "add_partner"),
]


@pytest.mark.parametrize(("start", "key"), ILLEGAL_STAFF, ids=[f"{s.value}-{k}" for s, k in ILLEGAL_STAFF])
def test_illegal_staff_action_is_refused(start, key):
    state = state_in(start)
    assert key not in allowed_actions(state)
    error = refused(state, STAFF_EVENTS[key]())
    assert error.event == key and error.status == start.value
    assert error.allowed == allowed_actions(state)


@pytest.mark.parametrize("status", list(S), ids=[s.value for s in S])
def test_every_allowed_action_succeeds(status):
    """allowed_actions is derived from the table + guards; each must really be accepted."""
    state = state_in(status)
    for key in allowed_actions(state):
        if key == "acknowledge":
            continue
        decide(state, STAFF_EVENTS[key]())
    for key in set(STAFF_EVENTS) - set(allowed_actions(state)):
        refused(state, STAFF_EVENTS[key]())


def test_guards_explain_refusals():
    error = refused(state_in(S.RECEIVED_PHYSICALLY), Close(at=at(1)))
    assert error.reason == GUARDS["close"][1]
    assert set(GUARDS) <= set(STAFF_KEYS)


def test_renew_request_keeps_status_while_item_moves():
    state = state_in(S.RENEW_REQUESTED)
    lent = decide(state, LoanToPatron(at=at(1)))
    assert lent.status is S.RENEW_REQUESTED and lent.state.location is ItemLocation.PATRON
    failed = decide(lent.state, DeliveryFailed(partner=A, kind="requestingAgencyMessage", action=Action.Renew, at=at(2)))
    assert failed.status is S.LOANED_TO_PATRON and Attention.SEND_FAILED in failed.state.flags


def test_retry_sends_request_type_retry_with_changes():
    decision = decide(state_in(S.RETRY_POSSIBLE), RetryRequest(at=at(30), changes={"title": "Moby Dick (1851)"}))
    (out,) = decision.outgoing
    assert (out.partner, out.kind, out.request_type) == (A, "request", RequestType.Retry)
    assert out.extra["changes"] == {"title": "Moby Dick (1851)"}
    assert decision.state.details.title == "Moby Dick (1851)"
    assert decision.flags_cleared == {Attention.RETRY_OFFERED}
    assert decide(decision.state, RequestConfirmed(partner=A, now=at(31))).status is S.REQUEST_SENT


def test_reject_conditions_cancels_that_partner_and_tries_next():
    decision = decide(state_in(S.CONDITIONAL), RejectConditions(at=at(30), note="no reading room"))
    assert decision.outgoing[0].note == "REJECT no reading room"
    assert entry(decision.state, A).state is EntryState.REJECTED and requests_to(decision) == [B]


def test_edit_validates_fields():
    with pytest.raises(InvalidInput) as caught:
        decide(state_in(S.REQUEST_SENT), Edit(at=at(1), changes={"colour": "red"}))
    assert caught.value.field == "colour"
    with pytest.raises(InvalidInput):
        decide(state_in(S.REQUEST_SENT), Edit(at=at(1), changes={"requester": ""}))


# --- create --------------------------------------------------------------------------------------


def test_create_with_partners_sends_request_to_the_first():
    decision = decide(None, Create(at=T0, by="jdoe", details=DETAILS, partners=(A, B)))
    assert decision.status is S.CREATED and decision.previous is None
    assert decision.outgoing[0].kind == "request" and decision.outgoing[0].request_type is RequestType.New
    assert requests_to(decision) == [A]
    assert [e.state for e in decision.state.rota] == [EntryState.ACTIVE, EntryState.PENDING]
    assert decision.history[0].from_status is None and decision.history[0].actor == "jdoe"
    assert decision.state.details.format == "Physical" and decision.state.details.delivery_location == "library"


def test_create_without_partners_is_locate_failed():
    decision = decide(None, Create(at=T0, details=DETAILS))
    assert decision.status is S.LOCATE_FAILED and not decision.outgoing
    assert decision.flags_set == {Attention.NO_PARTNERS}


def test_create_requires_requester_and_pickup():
    with pytest.raises(InvalidInput) as caught:
        RequestDetails(requester="patron", pickup_location=" ")
    assert caught.value.field == "pickup_location"
    with pytest.raises(InvalidInput):
        decide(None, Create(at=T0, details=DETAILS, partners=(A, A)))
    with pytest.raises(IllegalTransition):
        decide(state_in(S.CREATED), Create(at=T0, details=DETAILS))
    with pytest.raises(IllegalTransition):
        decide(None, Receive(at=T0))


def test_times_must_be_timezone_aware():
    with pytest.raises(InvalidInput):
        Tick(now=datetime(2025, 1, 1))
    with pytest.raises(InvalidInput):
        msg(Status.Loaned, received_at=datetime(2025, 1, 1))


# --- system events ---------------------------------------------------------------------------------


def test_late_or_foreign_confirmation_changes_nothing():
    state = state_in(S.WILL_SUPPLY)
    late = decide(state, RequestConfirmed(partner=A, now=at(9)))
    assert late.status is S.WILL_SUPPLY and entry(late.state, A).confirmed_at == at(9)
    foreign = decide(state, RequestConfirmed(partner=B, now=at(9)))
    assert foreign.state == state and "not the active partner" in foreign.history[0].detail


def test_confirmation_while_cancelling_is_kept_for_restore():
    waiting = decide(state_in(S.CREATED), CancelRequest(at=at(1))).state
    decision = decide(waiting, RequestConfirmed(partner=A, now=at(2)))
    assert decision.status is S.WAITING_FOR_CANCEL_RESPONSE and decision.state.previous_status is S.REQUEST_SENT


def test_failed_message_other_than_request_flags_attention():
    decision = decide(state_in(S.RECEIVED_PHYSICALLY),
                      DeliveryFailed(partner=A, kind="requestingAgencyMessage", action=Action.Received, at=at(3)))
    assert decision.status is S.RECEIVED_PHYSICALLY and decision.flags_set == {Attention.SEND_FAILED}


def test_decide_does_not_mutate_and_decisions_are_frozen():
    state = state_in(S.REQUEST_SENT)
    snapshot = copy.deepcopy(state)
    decision = decide(state, msg(Status.Unfilled))
    assert state == snapshot and decision.state != state
    with pytest.raises(AttributeError):
        decision.state.status = S.EXPIRED  # type: ignore[misc]


# --- a request's whole story ----------------------------------------------------------------------------


def test_full_lifecycle_with_history():
    policy = BorrowingPolicy()
    steps = [
        Create(at=at(0), by="jdoe", details=DETAILS, partners=(A, B)),
        RequestConfirmed(partner=A, now=at(1)),
        msg(Status.WillSupply, R.RequestResponse, received_at=at(60)),
        msg(Status.Loaned, R.StatusChange, due_date=at(days=30), received_at=at(days=1)),
        Receive(at=at(days=3), by="jdoe", items=("B0001",)),
        LoanToPatron(at=at(days=3, minutes=5), by="desk"),
        ReturnByPatron(at=at(days=20), by="desk"),
        ReturnToPartner(at=at(days=21), by="jdoe"),
        msg(Status.LoanCompleted, R.StatusChange, received_at=at(days=25)),
    ]
    state, history, outgoing = None, [], []
    for event in steps:
        decision = decide(state, event, policy)
        state = decision.state
        history += decision.history
        outgoing += decision.outgoing
    assert state.status is S.COMPLETED and state.location is ItemLocation.RETURNED
    assert [(h.from_status, h.to_status) for h in history if h.from_status is not h.to_status] == [
        (None, S.CREATED),
        (S.CREATED, S.REQUEST_SENT),
        (S.REQUEST_SENT, S.WILL_SUPPLY),
        (S.WILL_SUPPLY, S.SHIPPED_PHYSICALLY),
        (S.SHIPPED_PHYSICALLY, S.RECEIVED_PHYSICALLY),
        (S.RECEIVED_PHYSICALLY, S.LOANED_TO_PATRON),
        (S.LOANED_TO_PATRON, S.RETURNED_BY_PATRON),
        (S.RETURNED_BY_PATRON, S.RETURNED_TO_PARTNER),
        (S.RETURNED_TO_PARTNER, S.COMPLETED),
    ]
    assert [h.actor for h in history][-1] == A and history[0].actor == "jdoe"
    assert [h.at for h in history] == sorted(h.at for h in history)
    assert "items B0001" in next(h.detail for h in history if h.event == "receive")
    assert [(o.kind, o.action) for o in outgoing] == [
        ("request", None),
        ("requestingAgencyMessage", Action.Received),
        ("requestingAgencyMessage", Action.ShippedReturn),
    ]
    assert entry(state, A).state is EntryState.SUPPLIED and entry(state, B).state is EntryState.PENDING
    assert state.due_date == at(days=30) and not state.flags


def test_digital_copy_lifecycle_closes_after_receipt():
    state = decide(None, Create(at=T0, details=replace(DETAILS, format="Digital"), partners=(A,))).state
    state = decide(state, msg(Status.CopyCompleted, R.RequestResponse)).state
    assert state.status is S.SHIPPED_DIGITALLY and "close" in allowed_actions(state)
    assert "renew" not in allowed_actions(state)
    assert decide(state, Close(at=at(9))).status is S.COMPLETED


# --- ReShare: the supplier takes its loan conditions as agreed -----------------------------------


ASSUMED = msg(None, R.Notification, conditions_assumed_agreed=True, note="#ReShareSupplierConditionsAssumedAgreed##seq:3#")


def test_conditions_assumed_agreed_turns_a_conditional_offer_into_will_supply():
    conditional = decide(state_in(S.EXPECTED_TO_SUPPLY), msg(Status.WillSupply, R.RequestResponse, **COND))
    assert conditional.status is S.CONDITIONAL
    decision = decide(conditional.state, ASSUMED)
    assert decision.status is S.WILL_SUPPLY
    assert not decision.outgoing  # no ACCEPT: the supplier has not asked for one
    assert [(m.partner, m.direction, m.note) for m in decision.messages] == [(A, "in", ASSUMED.note)]
    assert decision.history[-1].event == "ConditionsAssumedAgreed"
    assert "takes its conditions as agreed" in decision.history[-1].detail
    assert decision.state.rota[0].loan_conditions == ("LibraryUseOnly",)  # still on record


@pytest.mark.parametrize("status", [S.REQUEST_SENT, S.WILL_SUPPLY, S.SHIPPED_PHYSICALLY])
def test_conditions_assumed_agreed_elsewhere_is_a_notification(status):
    state = state_in(status)
    decision = decide(state, ASSUMED)
    assert decision.status is status and not decision.outgoing
    assert [m.note for m in decision.messages] == [ASSUMED.note]


def test_conditions_assumed_agreed_from_another_partner_changes_nothing():
    conditional = decide(state_in(S.EXPECTED_TO_SUPPLY), msg(Status.WillSupply, R.RequestResponse, **COND)).state
    decision = decide(conditional, msg(None, R.Notification, partner=B, conditions_assumed_agreed=True, note="x"))
    assert decision.status is S.CONDITIONAL and not decision.outgoing
    assert [m.partner for m in decision.messages] == [B]


def test_an_incoming_general_message_is_unread_until_staff_mark_it_read():
    state = state_in(S.WILL_SUPPLY)
    assert not state.needs_attention and "mark_messages_read" not in allowed_actions(state)
    decision = decide(state, msg(None, R.Notification, note="Shipping on Monday"))
    assert decision.status is S.WILL_SUPPLY and decision.flags_set == {Attention.MESSAGE_UNREAD}
    assert decision.state.needs_attention and "mark_messages_read" in allowed_actions(decision.state)
    assert "acknowledge" not in allowed_actions(decision.state)  # reading is its own action
    refused(decision.state, Acknowledge(at=at(31), flag=Attention.MESSAGE_UNREAD))
    read = decide(decision.state, MarkMessagesRead(at=at(32), by="staff:ann"))
    assert read.flags_cleared == {Attention.MESSAGE_UNREAD} and not read.state.needs_attention
    assert read.history[0].detail == "general messages marked read" and not read.outgoing
    refused(read.state, MarkMessagesRead(at=at(33)))
    # another flag stays: attention clears only when nothing else needs it
    both = decide(replace(decision.state, flags=decision.state.flags | {Attention.SEND_FAILED}),
                  MarkMessagesRead(at=at(34)))
    assert both.state.flags == {Attention.SEND_FAILED} and both.state.needs_attention
    # a Notification without a note is no message: nothing to read
    assert not decide(state, msg(None, R.Notification)).state.flags
