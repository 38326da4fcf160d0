"""Lending state machine: the table pair by pair, staff actions, borrower messages, lifecycles,
expiry calendar."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from gateway.core.lending import (
    LENDING_TABLE, WHILE_PENDING, AddNote, AnswerCancel, AnswerRenew, CheckIn, ClearFlag, CompleteCopy,
    CompleteWithoutReturn, ExpectToSupply, IllegalTransition, IncomingRequest, InvalidInput, LendingAttention,
    LendingDetails, LendingOutcome, LendingPolicy, LendingState, LendingStatus, MarkMessagesRead, MarkOverdue,
    MarkUnfilled, MessageUndelivered, OfferConditions, OfferRetry, Pending, Recall, RequesterMessage, SendMessage, Ship, Tick,
    WillSupply, allowed_lending_actions, conditions_answer, decide_lending, expires_at, next_lending_deadline,
    render_lending_markdown,
)
from gateway.core.lending.state import status_flags
from gateway.core.lending.statuses import FINAL, ON_LOAN, OUT, PROMISED
from gateway.core.lending.table import (
    BORROWER_KEYS, FALLBACK, GUARDS, STAFF_KEYS, borrower_keys, borrower_target,
)
from gateway.messages.codes import Action, ReasonForMessage as R, RequestType, ServiceType, Status, YesNo

L = LendingStatus
O = LendingOutcome
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)  # a Monday
BORROWER = "ISIL:US-BORROW"
OTHER = "ISIL:US-OTHER"
DETAILS = LendingDetails(service_type=ServiceType.CopyOrLoan, title="Moby Dick", author="Melville")
LOAN = replace(DETAILS, service_type=ServiceType.Loan)
COPY = replace(DETAILS, service_type=ServiceType.Copy, title_of_component="Chapter 1", pages="1-12")
NO_EXPIRY = LendingPolicy(expire_after_days=None)


def at(minutes: int = 0, days: int = 0) -> datetime:
    return T0 + timedelta(days=days, minutes=minutes)


def borrower(action: Action, note: str | None = None, minutes: int = 5, partner: str = BORROWER) -> RequesterMessage:
    return RequesterMessage(partner=partner, action=action, note=note, received_at=at(minutes))


def request(request_type: RequestType = RequestType.New, details: LendingDetails = DETAILS,
            minutes: int = 0) -> IncomingRequest:
    return IncomingRequest(partner=BORROWER, details=details, received_at=at(minutes), request_type=request_type)


def state_in(status: L, **changes) -> LendingState:
    """A plausible lending request in `status` (answered, shipped... as the status implies)."""
    extra: dict = {}
    if status is not L.NEW:
        extra.update(responded=True, iso_status=status.iso or Status.Loaned)
    if status is L.CONDITIONAL:
        extra.update(iso_status=Status.WillSupply, loan_conditions=("LibraryUseOnly",))
    if status in OUT | {L.LOAN_COMPLETED, L.COMPLETED_WITHOUT_RETURN}:
        extra.update(due_date=at(days=28), item_ids=("B0001",), shipped_at=at(days=1))
    if status is L.RETURN_SHIPPED:
        extra.update(return_shipped_at=at(days=20))
    if status is L.COPY_COMPLETED:
        extra.update(shipped_at=at(days=1))
    values = {"partner": BORROWER, "details": DETAILS, "status": status, "received_at": T0, **extra, **changes}
    state = LendingState(**values)
    return replace(state, flags=state.flags | status_flags(state))


def pending(status: L, what: Pending) -> LendingState:
    return state_in(status, pending=what, pending_since=at(1))


def sent(decision) -> list[tuple[Status, R, YesNo | None]]:
    return [(o.status, o.reason, o.answer) for o in decision.outgoing]


def refused(state: LendingState, event, policy: LendingPolicy | None = None) -> IllegalTransition:
    before = copy.deepcopy(state)
    with pytest.raises(IllegalTransition) as caught:
        decide_lending(state, event, policy or NO_EXPIRY)
    assert state == before  # nothing changed
    return caught.value


def run(state: LendingState | None, *events, policy: LendingPolicy = NO_EXPIRY):
    """Apply events in turn; return the last state and everything they produced."""
    history, outgoing = [], []
    for event in events:
        decision = decide_lending(state, event, policy)
        state = decision.state
        history += decision.history
        outgoing += decision.outgoing
    return state, history, outgoing


def changes(history) -> list[tuple[L | None, L]]:
    return [(h.from_status, h.to_status) for h in history if h.from_status is not h.to_status]


# --- statuses and the table --------------------------------------------------------------------

BRIEF_CODES = """NEW EXPECT_TO_SUPPLY WILL_SUPPLY CONDITIONAL RETRY_POSSIBLE UNFILLED LOANED OVERDUE RECALLED
COPY_COMPLETED RETURN_SHIPPED LOAN_COMPLETED COMPLETED_WITHOUT_RETURN CANCELLED""".split()


def test_statuses_are_the_agreed_codes_with_labels_and_iso_statuses():
    assert [s.value for s in L] == BRIEF_CODES
    assert all(s.label for s in L) and set(LENDING_TABLE) == set(L)
    assert L.NEW.iso is Status.RequestReceived and L.COPY_COMPLETED.iso is Status.CopyCompleted
    assert L.CONDITIONAL.iso is None and L.RETURN_SHIPPED.iso is None  # depend on the request
    assert {s: s.iso for s in L if s.iso} == {
        L.NEW: Status.RequestReceived, L.EXPECT_TO_SUPPLY: Status.ExpectToSupply, L.WILL_SUPPLY: Status.WillSupply,
        L.RETRY_POSSIBLE: Status.RetryPossible, L.UNFILLED: Status.Unfilled, L.LOANED: Status.Loaned,
        L.OVERDUE: Status.Overdue, L.RECALLED: Status.Recalled, L.COPY_COMPLETED: Status.CopyCompleted,
        L.LOAN_COMPLETED: Status.LoanCompleted, L.COMPLETED_WITHOUT_RETURN: Status.CompletedWithoutReturn,
        L.CANCELLED: Status.Cancelled,
    }
    assert FINAL == {L.UNFILLED, L.COPY_COMPLETED, L.LOAN_COMPLETED, L.COMPLETED_WITHOUT_RETURN, L.CANCELLED}


def test_markdown_table_is_derived_from_the_table():
    text = render_lending_markdown()
    for status in L:
        assert f"| {status.value} | {status.label} |" in text
    for key in STAFF_KEYS + BORROWER_KEYS:
        assert f"`{key}`" in text
    assert "`ship` → LOANED" in text
    assert "`Notification:ACCEPT` → WILL_SUPPLY" in text
    assert "`Cancel` → *refuse_cancel*" in text
    assert "`expire` → *expire*" in text
    assert "| `ship` | the borrower asked for a copy |" in text
    assert ("| cancel | `add_note`, `acknowledge`, `mark_messages_read`, `send_message`, `answer_cancel:Y`, "
            "`answer_cancel:N` |") in text


def test_table_is_plain_data():
    for row in LENDING_TABLE.values():
        for key, found in row.items():
            assert isinstance(key, str) and isinstance(found, (L, O))
    assert set(GUARDS) <= set(STAFF_KEYS)
    assert all(keys <= set(STAFF_KEYS) for keys in WHILE_PENDING.values())
    assert set(FALLBACK.values()) <= set(BORROWER_KEYS)


# --- staff actions, pair by pair ---------------------------------------------------------------


def _ev(cls, **kw):
    return lambda: cls(at=at(30), by="lender-staff", **kw)


STAFF_EVENTS = {
    "add_note": _ev(AddNote, text="on the shelf"),
    "acknowledge": _ev(ClearFlag, flag=LendingAttention.LOST),
    "send_message": _ev(SendMessage, note="Looking for it"),
    "mark_messages_read": _ev(MarkMessagesRead),
    "expect_to_supply": _ev(ExpectToSupply),
    "will_supply": _ev(WillSupply),
    "conditional": _ev(OfferConditions, loan_conditions=("LibraryUseOnly",)),
    "retry_possible": _ev(OfferRetry, reason_retry="OnLoan", retry_after=at(days=10)),
    "unfilled": _ev(MarkUnfilled, reason_unfilled="NotHeld"),
    "ship": _ev(Ship, due_date=at(days=30), item_ids=("B0001",), delivery_costs=((Decimal("5.00"), "USD"),)),
    "copy_completed": _ev(CompleteCopy, url="https://example.org/copy.pdf"),
    "answer_cancel:Y": _ev(AnswerCancel, answer=YesNo.Y),
    "answer_cancel:N": _ev(AnswerCancel, answer=YesNo.N),
    "answer_renew:Y": _ev(AnswerRenew, answer=YesNo.Y, due_date=at(days=60)),
    "answer_renew:N": _ev(AnswerRenew, answer=YesNo.N),
    "mark_overdue": _ev(MarkOverdue),
    "recall": _ev(Recall, due_date=at(days=14)),
    "check_in": _ev(CheckIn),
    "complete_without_return": _ev(CompleteWithoutReturn, note="lost, paid for"),
}


def test_staff_events_cover_every_staff_key():
    assert set(STAFF_EVENTS) == set(STAFF_KEYS)
    assert all(make().key == key for key, make in STAFF_EVENTS.items())


def _states_for_pairs() -> list[LendingState]:
    """Every status without a pending question, plus every status a question can wait in."""
    states = [state_in(s) for s in L]
    states += [pending(s, Pending.CANCEL) for s in sorted(PROMISED, key=lambda s: s.value)]
    states += [pending(s, Pending.RENEW) for s in sorted(ON_LOAN, key=lambda s: s.value)]
    states += [state_in(s, flags=frozenset({LendingAttention.LOST})) for s in L]
    return states


PAIR_STATES = _states_for_pairs()


def _id(state: LendingState) -> str:
    extra = f"+{state.pending.value}" if state.pending else ""
    extra += "+flag" if LendingAttention.LOST in state.flags else ""
    return state.status.value + extra


@pytest.mark.parametrize("state", PAIR_STATES, ids=[_id(s) for s in PAIR_STATES])
def test_every_staff_key_in_every_state_follows_the_table(state):
    """All (status, staff action) pairs: allowed ones do what the table says, the rest are refused
    naming the event, the status and what is allowed; allowed_lending_actions agrees with both."""
    allowed = allowed_lending_actions(state)
    for key, make in STAFF_EVENTS.items():
        found = LENDING_TABLE[state.status].get(key)
        if key in allowed:
            decision = decide_lending(state, make(), NO_EXPIRY)
            assert decision.status is (found if isinstance(found, L) else state.status), key
            assert decision.history and decision.history[-1].actor == "lender-staff"
        else:
            error = refused(state, make())
            assert (error.event, error.status, error.allowed) == (key, state.status.value, allowed)
            assert key in str(error) and state.status.value in str(error)
            if found is None:
                assert error.reason is None
            else:
                assert error.reason  # a guard or the pending question explains it


STAFF_CASES = [
    # (start, key, expected status, what goes out)
    (L.NEW, "expect_to_supply", L.EXPECT_TO_SUPPLY, [(Status.ExpectToSupply, R.RequestResponse, None)]),
    (L.NEW, "will_supply", L.WILL_SUPPLY, [(Status.WillSupply, R.RequestResponse, None)]),
    (L.EXPECT_TO_SUPPLY, "will_supply", L.WILL_SUPPLY, [(Status.WillSupply, R.StatusChange, None)]),
    (L.CONDITIONAL, "will_supply", L.WILL_SUPPLY, [(Status.WillSupply, R.StatusChange, None)]),
    (L.NEW, "conditional", L.CONDITIONAL, [(Status.WillSupply, R.RequestResponse, None)]),
    (L.WILL_SUPPLY, "conditional", L.CONDITIONAL, [(Status.WillSupply, R.StatusChange, None)]),
    (L.CONDITIONAL, "conditional", L.CONDITIONAL, [(Status.WillSupply, R.StatusChange, None)]),
    (L.NEW, "retry_possible", L.RETRY_POSSIBLE, [(Status.RetryPossible, R.RequestResponse, None)]),
    (L.EXPECT_TO_SUPPLY, "retry_possible", L.RETRY_POSSIBLE, [(Status.RetryPossible, R.StatusChange, None)]),
    (L.NEW, "unfilled", L.UNFILLED, [(Status.Unfilled, R.RequestResponse, None)]),
    (L.WILL_SUPPLY, "unfilled", L.UNFILLED, [(Status.Unfilled, R.StatusChange, None)]),
    (L.CONDITIONAL, "unfilled", L.UNFILLED, [(Status.Unfilled, R.StatusChange, None)]),
    (L.RETRY_POSSIBLE, "unfilled", L.UNFILLED, [(Status.Unfilled, R.StatusChange, None)]),
    (L.NEW, "ship", L.LOANED, [(Status.Loaned, R.RequestResponse, None)]),
    (L.WILL_SUPPLY, "ship", L.LOANED, [(Status.Loaned, R.StatusChange, None)]),
    (L.EXPECT_TO_SUPPLY, "copy_completed", L.COPY_COMPLETED, [(Status.CopyCompleted, R.StatusChange, None)]),
    (L.NEW, "copy_completed", L.COPY_COMPLETED, [(Status.CopyCompleted, R.RequestResponse, None)]),
    (L.LOANED, "mark_overdue", L.OVERDUE, [(Status.Overdue, R.StatusChange, None)]),
    (L.RECALLED, "mark_overdue", L.OVERDUE, [(Status.Overdue, R.StatusChange, None)]),
    (L.LOANED, "recall", L.RECALLED, [(Status.Recalled, R.StatusChange, None)]),
    (L.OVERDUE, "recall", L.RECALLED, [(Status.Recalled, R.StatusChange, None)]),
    (L.LOANED, "check_in", L.LOAN_COMPLETED, [(Status.LoanCompleted, R.StatusChange, None)]),
    (L.OVERDUE, "check_in", L.LOAN_COMPLETED, [(Status.LoanCompleted, R.StatusChange, None)]),
    (L.RETURN_SHIPPED, "check_in", L.LOAN_COMPLETED, [(Status.LoanCompleted, R.StatusChange, None)]),
    (L.LOANED, "complete_without_return", L.COMPLETED_WITHOUT_RETURN,
     [(Status.CompletedWithoutReturn, R.StatusChange, None)]),
    (L.RETURN_SHIPPED, "complete_without_return", L.COMPLETED_WITHOUT_RETURN,
     [(Status.CompletedWithoutReturn, R.StatusChange, None)]),
    (L.NEW, "send_message", L.NEW, [(Status.RequestReceived, R.Notification, None)]),
    (L.LOANED, "send_message", L.LOANED, [(Status.Loaned, R.Notification, None)]),
    (L.LOAN_COMPLETED, "send_message", L.LOAN_COMPLETED, [(Status.LoanCompleted, R.Notification, None)]),
    (L.CANCELLED, "add_note", L.CANCELLED, []),
]


@pytest.mark.parametrize(("start", "key", "expected", "out"), STAFF_CASES,
                         ids=[f"{s.value}-{k}" for s, k, _, _ in STAFF_CASES])
def test_staff_action(start, key, expected, out):
    state = state_in(start)
    assert key in allowed_lending_actions(state)
    decision = decide_lending(state, STAFF_EVENTS[key](), NO_EXPIRY)
    assert decision.status is expected
    assert sent(decision) == out
    assert all(o.partner == BORROWER for o in decision.outgoing)
    assert decision.state.iso_status is (out[0][0] if out and out[0][1] is not R.Notification else state.iso_status)


PENDING_CASES = [
    (L.NEW, Pending.CANCEL, "answer_cancel:Y", L.CANCELLED, [(Status.Cancelled, R.CancelResponse, YesNo.Y)]),
    (L.NEW, Pending.CANCEL, "answer_cancel:N", L.NEW, [(Status.RequestReceived, R.CancelResponse, YesNo.N)]),
    (L.WILL_SUPPLY, Pending.CANCEL, "answer_cancel:Y", L.CANCELLED, [(Status.Cancelled, R.CancelResponse, YesNo.Y)]),
    (L.WILL_SUPPLY, Pending.CANCEL, "answer_cancel:N", L.WILL_SUPPLY,
     [(Status.WillSupply, R.CancelResponse, YesNo.N)]),
    (L.EXPECT_TO_SUPPLY, Pending.CANCEL, "answer_cancel:N", L.EXPECT_TO_SUPPLY,
     [(Status.ExpectToSupply, R.CancelResponse, YesNo.N)]),
    (L.LOANED, Pending.RENEW, "answer_renew:Y", L.LOANED, [(Status.Loaned, R.RenewResponse, YesNo.Y)]),
    (L.OVERDUE, Pending.RENEW, "answer_renew:Y", L.LOANED, [(Status.Loaned, R.RenewResponse, YesNo.Y)]),
    (L.RECALLED, Pending.RENEW, "answer_renew:Y", L.LOANED, [(Status.Loaned, R.RenewResponse, YesNo.Y)]),
    (L.LOANED, Pending.RENEW, "answer_renew:N", L.LOANED, [(Status.Loaned, R.RenewResponse, YesNo.N)]),
    (L.OVERDUE, Pending.RENEW, "answer_renew:N", L.OVERDUE, [(Status.Overdue, R.RenewResponse, YesNo.N)]),
    (L.LOANED, Pending.RENEW, "check_in", L.LOAN_COMPLETED, [(Status.LoanCompleted, R.StatusChange, None)]),
]


@pytest.mark.parametrize(("start", "what", "key", "expected", "out"), PENDING_CASES,
                         ids=[f"{s.value}+{p.value}-{k}" for s, p, k, _, _ in PENDING_CASES])
def test_staff_answer_to_a_pending_question(start, what, key, expected, out):
    state = pending(start, what)
    decision = decide_lending(state, STAFF_EVENTS[key](), NO_EXPIRY)
    assert decision.status is expected and sent(decision) == out
    assert decision.state.pending is None and decision.state.pending_since is None
    assert decision.flags_cleared == {LendingAttention.CANCEL_REQUESTED if what is Pending.CANCEL
                                      else LendingAttention.RENEW_REQUESTED}


ILLEGAL_STAFF = [
    (L.WILL_SUPPLY, "expect_to_supply"),  # no going back
    (L.WILL_SUPPLY, "will_supply"),
    (L.CONDITIONAL, "ship"),  # the borrower must accept first (or staff drop the conditions)
    (L.CONDITIONAL, "copy_completed"),
    (L.RETRY_POSSIBLE, "ship"),
    (L.RETRY_POSSIBLE, "will_supply"),
    (L.LOANED, "ship"),
    (L.LOANED, "unfilled"),
    (L.OVERDUE, "mark_overdue"),
    (L.RECALLED, "recall"),
    (L.RETURN_SHIPPED, "recall"),
    (L.RETURN_SHIPPED, "mark_overdue"),
    (L.NEW, "check_in"),
    (L.COPY_COMPLETED, "check_in"),
    (L.COPY_COMPLETED, "complete_without_return"),
    (L.LOAN_COMPLETED, "check_in"),
    (L.UNFILLED, "will_supply"),
    (L.CANCELLED, "ship"),
    (L.NEW, "answer_cancel:Y"),  # nobody asked
    (L.LOANED, "answer_renew:N"),
    (L.RETURN_SHIPPED, "answer_renew:Y"),
    (L.NEW, "acknowledge"),  # no flag
]


@pytest.mark.parametrize(("start", "key"), ILLEGAL_STAFF, ids=[f"{s.value}-{k}" for s, k in ILLEGAL_STAFF])
def test_illegal_staff_action_is_refused(start, key):
    state = state_in(start)
    assert key not in allowed_lending_actions(state)
    error = refused(state, STAFF_EVENTS[key]())
    assert error.event == key and error.status == start.value
    assert error.allowed == allowed_lending_actions(state)


def test_a_pending_cancel_must_be_answered_first():
    state = pending(L.WILL_SUPPLY, Pending.CANCEL)
    assert allowed_lending_actions(state) == ("add_note", "send_message", "answer_cancel:Y", "answer_cancel:N")
    error = refused(state, STAFF_EVENTS["ship"]())
    assert error.reason == "answer the borrower's cancel request first"
    assert "ship" not in error.allowed and "answer_cancel:Y" in error.allowed


def test_a_pending_renew_blocks_recall_but_not_check_in():
    state = pending(L.LOANED, Pending.RENEW)
    assert refused(state, STAFF_EVENTS["recall"]()).reason == "answer the borrower's renew request first"
    decision = decide_lending(state, STAFF_EVENTS["check_in"](), NO_EXPIRY)
    assert decision.status is L.LOAN_COMPLETED
    assert "renew_withdrawn" in [h.event for h in decision.history]


def test_guards_by_service_type():
    loan, copy_ = state_in(L.WILL_SUPPLY, details=LOAN), state_in(L.WILL_SUPPLY, details=COPY)
    assert refused(copy_, STAFF_EVENTS["ship"]()).reason == GUARDS["ship"][1]
    assert refused(loan, STAFF_EVENTS["copy_completed"]()).reason == GUARDS["copy_completed"][1]
    assert "ship" in allowed_lending_actions(loan) and "copy_completed" in allowed_lending_actions(copy_)


def test_conditions_go_out_and_are_kept_for_shipping():
    state = state_in(L.NEW)
    offer = OfferConditions(at=at(10), loan_conditions=("LibraryUseOnly",),
                            offered_costs=((Decimal("12.50"), "USD"),), status=Status.ExpectToSupply,
                            note="reading room")
    decision = decide_lending(state, offer, NO_EXPIRY)
    (out,) = decision.outgoing
    assert (out.status, out.reason) == (Status.ExpectToSupply, R.RequestResponse)
    assert out.loan_conditions == ("LibraryUseOnly",) and out.offered_costs == ((Decimal("12.50"), "USD"),)
    assert decision.state.iso_status is Status.ExpectToSupply  # what a StatusRequest now gets
    accepted = decide_lending(decision.state, borrower(Action.Notification, "ACCEPT"), NO_EXPIRY).state
    shipped = decide_lending(accepted, Ship(at=at(60), due_date=at(days=30)), NO_EXPIRY)
    assert shipped.outgoing[0].loan_conditions == ("LibraryUseOnly",)  # deliveryInfo/loanCondition


def test_will_supply_from_conditional_withdraws_the_conditions():
    decision = decide_lending(state_in(L.CONDITIONAL), WillSupply(at=at(1)), NO_EXPIRY)
    assert decision.state.loan_conditions == () and decision.outgoing[0].loan_conditions == ()
    assert "without conditions" in decision.history[-1].detail


def test_ship_carries_due_date_items_costs_and_date_sent():
    decision = decide_lending(state_in(L.WILL_SUPPLY), STAFF_EVENTS["ship"](), NO_EXPIRY)
    (out,) = decision.outgoing
    assert out.due_date == at(days=30) and out.item_ids == ("B0001",) and out.date_sent == at(30)
    assert out.delivery_costs == ((Decimal("5.00"), "USD"),)
    assert decision.state.due_date == at(days=30) and decision.state.shipped_at == at(30)


def test_retry_possible_and_unfilled_carry_their_reasons():
    retry = decide_lending(state_in(L.NEW), OfferRetry(at=at(1), reason_retry="OnLoan", retry_after=at(days=7),
                                                       retry_before=at(days=30)), NO_EXPIRY)
    out = retry.outgoing[0]
    assert (out.reason_retry, out.retry_after, out.retry_before) == ("OnLoan", at(days=7), at(days=30))
    assert retry.state.reason == "OnLoan"
    unfilled = decide_lending(state_in(L.NEW), MarkUnfilled(at=at(1), reason_unfilled="NotHeld",
                                                            note="DUPLICATE"), NO_EXPIRY)
    assert (unfilled.outgoing[0].reason_unfilled, unfilled.outgoing[0].note) == ("NotHeld", "DUPLICATE")


def test_copy_completed_carries_the_url():
    decision = decide_lending(state_in(L.WILL_SUPPLY, details=COPY), STAFF_EVENTS["copy_completed"](), NO_EXPIRY)
    assert decision.outgoing[0].url == "https://example.org/copy.pdf"


def test_recall_may_set_an_earlier_due_date():
    decision = decide_lending(state_in(L.LOANED), STAFF_EVENTS["recall"](), NO_EXPIRY)
    assert decision.state.due_date == at(days=14) and decision.outgoing[0].due_date == at(days=14)
    kept = decide_lending(state_in(L.LOANED), Recall(at=at(1)), NO_EXPIRY)
    assert kept.state.due_date == at(days=28)


def test_note_and_general_message_tabs():
    note = decide_lending(state_in(L.NEW), STAFF_EVENTS["add_note"](), NO_EXPIRY)
    assert note.notes[0].text == "on the shelf" and note.notes[0].by == "lender-staff" and not note.outgoing
    message = decide_lending(state_in(L.LOANED), STAFF_EVENTS["send_message"](), NO_EXPIRY)
    (gm,) = message.messages
    assert (gm.partner, gm.direction, gm.note, gm.status) == (BORROWER, "out", "Looking for it", Status.Loaned)
    assert message.outgoing[0].note == "Looking for it"


def test_staff_input_is_validated():
    with pytest.raises(InvalidInput) as caught:
        OfferConditions(at=at(1))
    assert caught.value.field == "loan_conditions"
    with pytest.raises(InvalidInput):
        OfferConditions(at=at(1), loan_conditions=("X",), status=Status.Loaned)
    with pytest.raises(InvalidInput) as caught:
        Ship(at=at(1), due_date=at(0))
    assert caught.value.field == "due_date"
    with pytest.raises(InvalidInput):
        Ship(at=at(1), due_date=datetime(2030, 1, 1))  # naive
    with pytest.raises(InvalidInput):
        AnswerRenew(at=at(1), answer=YesNo.Y)
    with pytest.raises(InvalidInput):
        OfferRetry(at=at(1), reason_retry=" ")
    with pytest.raises(InvalidInput):
        OfferRetry(at=at(1), reason_retry="OnLoan", retry_after=at(days=9), retry_before=at(days=2))
    with pytest.raises(InvalidInput) as caught:
        decide_lending(pending(L.LOANED, Pending.RENEW), AnswerRenew(at=at(days=40), answer=YesNo.Y,
                                                                     due_date=at(days=39)), NO_EXPIRY)
    assert caught.value.field == "due_date"
    with pytest.raises(InvalidInput):
        LendingDetails().with_changes({"colour": "red"})
    with pytest.raises(InvalidInput):
        RequesterMessage(partner=BORROWER, action=Action.Received, received_at=datetime(2026, 1, 1))


def test_a_borrowing_action_is_not_a_lending_action():
    from gateway.core.borrowing.events import Receive

    error = refused(state_in(L.LOANED), Receive(at=at(1)))
    assert error.event == "receive" and error.reason == "not a lending action"


# --- borrower messages, pair by pair -----------------------------------------------------------

BORROWER_EVENTS = {
    "request": lambda: request(),
    "Notification": lambda: borrower(Action.Notification, "Any news?"),
    "Notification:ACCEPT": lambda: borrower(Action.Notification, "ACCEPT"),
    "Notification:REJECT": lambda: borrower(Action.Notification, "Reject."),
    "StatusRequest": lambda: borrower(Action.StatusRequest),
    "Cancel": lambda: borrower(Action.Cancel, "patron no longer needs it"),
    "Renew": lambda: borrower(Action.Renew),
    "Received": lambda: borrower(Action.Received),
    "ShippedReturn": lambda: borrower(Action.ShippedReturn),
    "ShippedForward": lambda: borrower(Action.ShippedForward),
    "HoldReturn": lambda: borrower(Action.HoldReturn),
    "Lost": lambda: borrower(Action.Lost),
    "Retry": lambda: request(RequestType.Retry, replace(DETAILS, edition="2nd"), minutes=5),
    "Reminder": lambda: request(RequestType.Reminder, minutes=5),
}


def test_borrower_events_cover_every_borrower_key():
    assert set(BORROWER_EVENTS) == set(BORROWER_KEYS)
    assert all(make().key == key for key, make in BORROWER_EVENTS.items())


@pytest.mark.parametrize("state", PAIR_STATES, ids=[_id(s) for s in PAIR_STATES])
def test_every_borrower_key_in_every_state_follows_the_table(state):
    """All (status, borrower message) pairs: applied per table, recorded when late (final
    status), else refused naming the key, the status and the keys the status accepts."""
    for key, make in BORROWER_EVENTS.items():
        found = borrower_target(state.status, key)
        if key == "request":
            assert refused(state, make()).reason == "the request exists"
        elif found is not None:
            decision = decide_lending(state, make(), NO_EXPIRY)
            if isinstance(found, L):
                assert decision.status is found, key
            elif found is O.ACCEPT_CANCEL:
                assert decision.status is L.CANCELLED
            else:
                assert decision.status is state.status, key
            assert decision.history[-1].actor == BORROWER
        elif state.status in FINAL:
            decision = decide_lending(state, make(), NO_EXPIRY)
            assert decision.state == state and not decision.outgoing, key
            assert [h.event for h in decision.history] == ["late"]
        else:
            error = refused(state, make())
            assert (error.event, error.status, error.allowed) == (key, state.status.value, borrower_keys(state.status))


BORROWER_CASES = [
    # (start, key, expected status, what goes out at once)
    (L.NEW, "Cancel", L.NEW, []),  # waits for staff
    (L.WILL_SUPPLY, "Cancel", L.WILL_SUPPLY, []),
    (L.CONDITIONAL, "Cancel", L.CANCELLED, [(Status.Cancelled, R.CancelResponse, YesNo.Y)]),
    (L.RETRY_POSSIBLE, "Cancel", L.CANCELLED, [(Status.Cancelled, R.CancelResponse, YesNo.Y)]),
    (L.LOANED, "Cancel", L.LOANED, [(Status.Loaned, R.CancelResponse, YesNo.N)]),
    (L.COPY_COMPLETED, "Cancel", L.COPY_COMPLETED, [(Status.CopyCompleted, R.CancelResponse, YesNo.N)]),
    (L.RETURN_SHIPPED, "Cancel", L.RETURN_SHIPPED, [(Status.Loaned, R.CancelResponse, YesNo.N)]),
    (L.LOANED, "Renew", L.LOANED, []),
    (L.OVERDUE, "Renew", L.OVERDUE, []),
    (L.RECALLED, "Renew", L.RECALLED, []),
    (L.LOANED, "Received", L.LOANED, []),
    (L.COPY_COMPLETED, "Received", L.COPY_COMPLETED, []),
    (L.LOANED, "ShippedReturn", L.RETURN_SHIPPED, []),
    (L.OVERDUE, "ShippedReturn", L.RETURN_SHIPPED, []),
    (L.RECALLED, "ShippedReturn", L.RETURN_SHIPPED, []),
    (L.LOANED, "ShippedForward", L.LOANED, []),
    (L.LOANED, "HoldReturn", L.LOANED, []),
    (L.LOANED, "Lost", L.LOANED, []),
    (L.RETURN_SHIPPED, "Lost", L.RETURN_SHIPPED, []),
    (L.CONDITIONAL, "Notification:ACCEPT", L.WILL_SUPPLY, []),
    (L.CONDITIONAL, "Notification:REJECT", L.UNFILLED, []),
    (L.WILL_SUPPLY, "Notification:ACCEPT", L.WILL_SUPPLY, []),  # a plain message outside CONDITIONAL
    (L.LOANED, "Notification:REJECT", L.LOANED, []),
    (L.NEW, "Notification", L.NEW, []),
    (L.CANCELLED, "Notification", L.CANCELLED, []),
    (L.RETRY_POSSIBLE, "Retry", L.NEW, []),
    (L.WILL_SUPPLY, "Reminder", L.WILL_SUPPLY, []),
    (L.NEW, "StatusRequest", L.NEW, [(Status.RequestReceived, R.StatusRequestResponse, None)]),
    (L.CONDITIONAL, "StatusRequest", L.CONDITIONAL, [(Status.WillSupply, R.StatusRequestResponse, None)]),
    (L.RETURN_SHIPPED, "StatusRequest", L.RETURN_SHIPPED, [(Status.Loaned, R.StatusRequestResponse, None)]),
    (L.LOAN_COMPLETED, "StatusRequest", L.LOAN_COMPLETED,
     [(Status.LoanCompleted, R.StatusRequestResponse, None)]),
]


@pytest.mark.parametrize(("start", "key", "expected", "out"), BORROWER_CASES,
                         ids=[f"{s.value}-{k}" for s, k, _, _ in BORROWER_CASES])
def test_borrower_message(start, key, expected, out):
    decision = decide_lending(state_in(start), BORROWER_EVENTS[key](), NO_EXPIRY)
    assert decision.status is expected and sent(decision) == out
    assert decision.history and decision.history[-1].actor == BORROWER


ILLEGAL_BORROWER = [
    (L.NEW, "Received"),  # nothing shipped yet
    (L.WILL_SUPPLY, "ShippedReturn"),
    (L.NEW, "Renew"),
    (L.RETURN_SHIPPED, "Renew"),
    (L.RETURN_SHIPPED, "ShippedReturn"),
    (L.WILL_SUPPLY, "Lost"),
    (L.NEW, "Retry"),  # we never offered a retry
    (L.LOANED, "Retry"),
]


@pytest.mark.parametrize(("start", "key"), ILLEGAL_BORROWER, ids=[f"{s.value}-{k}" for s, k in ILLEGAL_BORROWER])
def test_illegal_borrower_message_is_refused(start, key):
    error = refused(state_in(start), BORROWER_EVENTS[key]())
    assert error.event == key and error.status == start.value
    assert "Notification" in error.allowed and "StatusRequest" in error.allowed


def test_late_message_in_a_final_status_is_recorded():
    state = state_in(L.LOAN_COMPLETED)
    decision = decide_lending(state, borrower(Action.Renew), NO_EXPIRY)
    assert decision.state == state and not decision.outgoing
    assert "recorded and ignored" in decision.history[0].detail


def test_message_from_another_agency_is_refused():
    error = refused(state_in(L.LOANED), borrower(Action.ShippedReturn, partner=OTHER))
    assert "not the requesting agency" in error.reason


def test_second_new_request_and_events_without_a_request():
    with pytest.raises(IllegalTransition) as caught:
        decide_lending(None, borrower(Action.Cancel))
    assert caught.value.status == "(new)" and caught.value.allowed == ("request",)
    with pytest.raises(IllegalTransition):
        decide_lending(None, request(RequestType.Reminder))
    with pytest.raises(IllegalTransition):
        decide_lending(None, WillSupply(at=at(1)))


def test_cancel_request_waits_for_staff_and_needs_attention():
    decision = decide_lending(state_in(L.WILL_SUPPLY), borrower(Action.Cancel, "not needed"), NO_EXPIRY)
    assert decision.state.pending is Pending.CANCEL and decision.state.pending_since == at(5)
    assert decision.flags_set == {LendingAttention.CANCEL_REQUESTED} and decision.state.needs_attention
    again = decide_lending(decision.state, borrower(Action.Cancel, minutes=9), NO_EXPIRY)
    assert again.state == decision.state and "already waiting" in again.history[0].detail


def test_renew_request_waits_for_staff():
    decision = decide_lending(state_in(L.OVERDUE), borrower(Action.Renew), NO_EXPIRY)
    assert decision.state.pending is Pending.RENEW and decision.flags_set == {LendingAttention.RENEW_REQUESTED}
    assert allowed_lending_actions(decision.state) == (
        "add_note", "send_message", "answer_renew:Y", "answer_renew:N", "check_in", "complete_without_return")


def test_shipped_return_makes_a_pending_renew_moot():
    decision = decide_lending(pending(L.LOANED, Pending.RENEW), borrower(Action.ShippedReturn), NO_EXPIRY)
    assert decision.status is L.RETURN_SHIPPED and decision.state.pending is None
    assert decision.flags_cleared == {LendingAttention.RENEW_REQUESTED}
    assert decision.state.return_shipped_at == at(5)


def test_received_is_recorded_once():
    first = decide_lending(state_in(L.LOANED), borrower(Action.Received), NO_EXPIRY).state
    assert first.borrower_received_at == at(5)
    second = decide_lending(first, borrower(Action.Received, minutes=50), NO_EXPIRY).state
    assert second.borrower_received_at == at(5)


def test_incoming_notification_is_a_general_message():
    decision = decide_lending(state_in(L.LOANED), borrower(Action.Notification, "Thanks!"), NO_EXPIRY)
    (gm,) = decision.messages
    assert (gm.partner, gm.direction, gm.note) == (BORROWER, "in", "Thanks!")
    # the status stays; staff are told there is an unread message until they mark it read
    unread = frozenset({LendingAttention.MESSAGE_UNREAD})
    assert decision.state == state_in(L.LOANED, flags=unread) and not decision.outgoing
    assert decision.state.needs_attention
    with pytest.raises(IllegalTransition) as caught:  # not a flag `acknowledge` clears
        decide_lending(decision.state, ClearFlag(at=at(6), flag=LendingAttention.MESSAGE_UNREAD), NO_EXPIRY)
    assert "mark_messages_read" in caught.value.allowed
    read = decide_lending(decision.state, MarkMessagesRead(at=at(7)), NO_EXPIRY)
    assert read.flags_cleared == unread and not read.state.needs_attention and read.status is L.LOANED
    with pytest.raises(IllegalTransition):  # nothing unread any more
        decide_lending(read.state, MarkMessagesRead(at=at(8)), NO_EXPIRY)
    empty = decide_lending(state_in(L.LOANED), borrower(Action.Notification, None), NO_EXPIRY)
    assert not empty.messages and not empty.state.flags


def test_lost_and_reminder_need_attention_until_dealt_with():
    lost = decide_lending(state_in(L.LOANED), borrower(Action.Lost, "dog ate it"), NO_EXPIRY)
    assert lost.flags_set == {LendingAttention.LOST}
    done = decide_lending(lost.state, CompleteWithoutReturn(at=at(90), note="invoice sent"), NO_EXPIRY)
    assert done.status is L.COMPLETED_WITHOUT_RETURN and not done.state.flags
    cleared = decide_lending(lost.state, ClearFlag(at=at(60), flag=LendingAttention.LOST), NO_EXPIRY)
    assert cleared.flags_cleared == {LendingAttention.LOST} and cleared.status is L.LOANED
    with pytest.raises(InvalidInput):
        decide_lending(lost.state, ClearFlag(at=at(61), flag=LendingAttention.REMINDER), NO_EXPIRY)
    reminded = decide_lending(state_in(L.NEW), request(RequestType.Reminder, minutes=9), NO_EXPIRY)
    assert reminded.flags_set == {LendingAttention.REMINDER}
    answered = decide_lending(reminded.state, WillSupply(at=at(10)), NO_EXPIRY)
    assert answered.flags_cleared == {LendingAttention.REMINDER}


def test_status_bound_flags_cannot_be_acknowledged():
    state = state_in(L.NEW, pending=Pending.CANCEL, flags=frozenset({LendingAttention.LOST}))
    assert "acknowledge" in allowed_lending_actions(state)  # LOST can be cleared while a cancel waits
    with pytest.raises(InvalidInput) as caught:
        decide_lending(state, ClearFlag(at=at(1), flag=LendingAttention.CANCEL_REQUESTED), NO_EXPIRY)
    assert caught.value.field == "flag"


@pytest.mark.parametrize(("note", "answer"), [
    ("ACCEPT", "ACCEPT"), ("accept", "ACCEPT"), ("Accept.", "ACCEPT"), ("*ACCEPT*", "ACCEPT"),
    ("We accept the conditions!", "ACCEPT"), ("accepted", "ACCEPT"), ("#ReShareLoanConditionAgreeResponse#", "ACCEPT"),
    ("REJECT", "REJECT"), ("reject: too expensive", "REJECT"), ("[Rejected]", "REJECT"),
    ("#ReShareLoanConditionRejectResponse#", "REJECT"),
    ("acceptable terms", None), ("unaccepted", None), ("ACCEPT or REJECT?", None), ("", None), (None, None),
])
def test_conditions_answer_is_case_and_punctuation_tolerant(note, answer):
    assert conditions_answer(note) == answer
    message = RequesterMessage(partner=BORROWER, action=Action.Notification, note=note, received_at=at(1))
    assert message.key == (f"Notification:{answer}" if answer else "Notification")


def test_only_a_notification_answers_conditions():
    assert borrower(Action.Cancel, "ACCEPT").key == "Cancel"


# --- the timer ---------------------------------------------------------------------------------

FRIDAY = datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc)
SATURDAY = datetime(2026, 11, 28, 10, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("received", "days", "weekends", "expected"), [
    (FRIDAY, 2, True, datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)),  # Friday + 2 weekdays = Tuesday
    (FRIDAY, 2, False, datetime(2026, 11, 29, 10, 0, tzinfo=timezone.utc)),  # Sunday
    (FRIDAY, 1, True, datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)),  # Monday
    (FRIDAY, 5, True, datetime(2026, 12, 4, 10, 0, tzinfo=timezone.utc)),  # a working week later
    (FRIDAY, 6, True, datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc)),
    (SATURDAY, 1, True, datetime(2026, 12, 1, 0, 0, tzinfo=timezone.utc)),  # counting starts Monday 00:00
    (SATURDAY + timedelta(days=1), 1, True, datetime(2026, 12, 1, 0, 0, tzinfo=timezone.utc)),
    (T0, 3, True, datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)),  # Monday + 3 = Thursday
    (T0, 3, False, datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)),
])
def test_expires_at(received, days, weekends, expected):
    assert expires_at(received, LendingPolicy(expire_after_days=days, exclude_weekends=weekends)) == expected


def test_expires_at_uses_the_library_time_zone_and_wall_clock():
    berlin = ZoneInfo("Europe/Berlin")
    # Friday 23:30 UTC is already Saturday in Berlin: counting starts Monday 00:00 Berlin time.
    late_friday = datetime(2026, 11, 27, 23, 30, tzinfo=timezone.utc)
    policy = LendingPolicy(expire_after_days=1, exclude_weekends=True, tz=berlin)
    assert expires_at(late_friday, policy) == datetime(2026, 12, 1, 0, 0, tzinfo=berlin)
    # across the end of summer time (25 Oct 2026): same local time of day
    before = datetime(2026, 10, 23, 9, 0, tzinfo=berlin)  # a Friday
    result = expires_at(before, LendingPolicy(expire_after_days=1, exclude_weekends=True))
    assert result.replace(tzinfo=None) == datetime(2026, 10, 26, 9, 0)
    assert result.astimezone(timezone.utc) - before.astimezone(timezone.utc) == timedelta(days=3, hours=1)
    assert expires_at(FRIDAY, LendingPolicy(expire_after_days=None)) is None
    with pytest.raises(InvalidInput):
        expires_at(datetime(2026, 11, 27), LendingPolicy())
    with pytest.raises(ValueError):
        LendingPolicy(expire_after_days=0)


def test_unanswered_request_expires_counting_weekdays():
    policy = LendingPolicy(expire_after_days=2, exclude_weekends=True)
    state = decide_lending(None, IncomingRequest(partner=BORROWER, details=DETAILS, received_at=FRIDAY), policy).state
    due = next_lending_deadline(state, policy)
    assert due == datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)  # Tuesday
    quiet = decide_lending(state, Tick(now=due - timedelta(seconds=1)), policy)
    assert quiet.state == state and not quiet.history and not quiet.outgoing
    expired = decide_lending(state, Tick(now=due), policy)
    assert expired.status is L.UNFILLED
    (out,) = expired.outgoing
    assert (out.status, out.reason, out.reason_unfilled, out.note) == (
        Status.Unfilled, R.RequestResponse, "NotAvailableForILL", "expired")
    assert expired.history[-1].actor == "system" and expired.history[-1].event == "expire"
    assert next_lending_deadline(expired.state, policy) is None


def test_unanswered_request_expires_counting_all_days():
    policy = LendingPolicy(expire_after_days=2, exclude_weekends=False, expiry_reason_unfilled="NotOnShelf")
    state = decide_lending(None, IncomingRequest(partner=BORROWER, details=DETAILS, received_at=FRIDAY), policy).state
    assert next_lending_deadline(state, policy) == datetime(2026, 11, 29, 10, 0, tzinfo=timezone.utc)  # Sunday
    expired = decide_lending(state, Tick(now=datetime(2026, 11, 30, tzinfo=timezone.utc)), policy)
    assert expired.status is L.UNFILLED and expired.outgoing[0].reason_unfilled == "NotOnShelf"


def test_answered_request_does_not_expire():
    policy = LendingPolicy(expire_after_days=1)
    for status in set(L) - {L.NEW}:
        state = state_in(status)
        assert next_lending_deadline(state, policy) is None
        assert decide_lending(state, Tick(now=at(days=400)), policy).state == state
    assert next_lending_deadline(state_in(L.NEW), NO_EXPIRY) is None
    assert decide_lending(state_in(L.NEW), Tick(now=at(days=400)), NO_EXPIRY).status is L.NEW


def test_expiry_with_a_pending_cancel_accepts_the_cancel():
    policy = LendingPolicy(expire_after_days=1)
    decision = decide_lending(pending(L.NEW, Pending.CANCEL), Tick(now=at(days=2)), policy)
    assert decision.status is L.CANCELLED and decision.state.pending is None
    assert sent(decision) == [(Status.Cancelled, R.CancelResponse, YesNo.Y)]


def test_undelivered_message_flags_attention_and_never_raises():
    for status in L:
        decision = decide_lending(state_in(status), MessageUndelivered(partner=BORROWER, at=at(3),
                                                                       status=Status.Loaned), NO_EXPIRY)
        assert decision.status is status and decision.flags_set == {LendingAttention.SEND_FAILED}
        assert "Loaned could not be delivered" in decision.history[0].detail


# --- whole lifecycles --------------------------------------------------------------------------


def test_loan_lifecycle():
    state, history, outgoing = run(
        None,
        request(details=LOAN),
        WillSupply(at=at(60), by="lender"),
        Ship(at=at(days=1), by="lender", due_date=at(days=29), item_ids=("B0001",)),
        borrower(Action.Received, minutes=60 * 24 * 3),
        borrower(Action.ShippedReturn, minutes=60 * 24 * 20),
        CheckIn(at=at(days=23), by="lender"),
    )
    assert state.status is L.LOAN_COMPLETED and state.iso_status is Status.LoanCompleted
    assert changes(history) == [
        (None, L.NEW), (L.NEW, L.WILL_SUPPLY), (L.WILL_SUPPLY, L.LOANED),
        (L.LOANED, L.RETURN_SHIPPED), (L.RETURN_SHIPPED, L.LOAN_COMPLETED),
    ]
    assert [h.event for h in history] == ["request", "will_supply", "ship", "Received", "ShippedReturn", "check_in"]
    assert [h.actor for h in history] == [BORROWER, "lender", "lender", BORROWER, BORROWER, "lender"]
    assert [h.at for h in history] == sorted(h.at for h in history)
    assert [(o.status, o.reason) for o in outgoing] == [
        (Status.WillSupply, R.RequestResponse), (Status.Loaned, R.StatusChange), (Status.LoanCompleted, R.StatusChange),
    ]
    assert state.borrower_received_at == at(days=3) and state.return_shipped_at == at(days=20)
    assert not state.flags


def test_copy_lifecycle():
    state, history, outgoing = run(
        None, request(details=COPY),
        CompleteCopy(at=at(90), url="https://example.org/c.pdf", sent_via="URL"),
        borrower(Action.Received, minutes=120),
    )
    assert state.status is L.COPY_COMPLETED and state.borrower_received_at == at(120)
    assert [(o.status, o.reason, o.url) for o in outgoing] == [
        (Status.CopyCompleted, R.RequestResponse, "https://example.org/c.pdf")]
    assert changes(history) == [(None, L.NEW), (L.NEW, L.COPY_COMPLETED)]
    assert "renew" not in " ".join(allowed_lending_actions(state))


def test_renew_granted_and_refused():
    loaned = state_in(L.OVERDUE)
    state, _, outgoing = run(loaned, borrower(Action.Renew),
                             AnswerRenew(at=at(30), answer=YesNo.Y, due_date=at(days=60)))
    assert state.status is L.LOANED and state.due_date == at(days=60) and state.pending is None
    (out,) = outgoing
    assert (out.status, out.reason, out.answer, out.due_date) == (Status.Loaned, R.RenewResponse, YesNo.Y, at(days=60))
    state, _, outgoing = run(loaned, borrower(Action.Renew), AnswerRenew(at=at(30), answer=YesNo.N, note="in demand"))
    assert state.status is L.OVERDUE and state.due_date == at(days=28)
    (out,) = outgoing
    assert (out.status, out.reason, out.answer, out.note) == (Status.Overdue, R.RenewResponse, YesNo.N, "in demand")


def test_overdue_and_recall_lifecycle():
    state, history, outgoing = run(
        state_in(L.LOANED), MarkOverdue(at=at(days=29)), Recall(at=at(days=30), due_date=at(days=33)),
        MarkOverdue(at=at(days=34)), borrower(Action.ShippedReturn, minutes=60 * 24 * 35), CheckIn(at=at(days=37)),
    )
    assert changes(history) == [
        (L.LOANED, L.OVERDUE), (L.OVERDUE, L.RECALLED), (L.RECALLED, L.OVERDUE),
        (L.OVERDUE, L.RETURN_SHIPPED), (L.RETURN_SHIPPED, L.LOAN_COMPLETED),
    ]
    assert [o.status for o in outgoing] == [Status.Overdue, Status.Recalled, Status.Overdue, Status.LoanCompleted]
    assert all(o.reason is R.StatusChange for o in outgoing)


def test_check_in_without_a_shipped_return():
    state, history, _ = run(state_in(L.LOANED), CheckIn(at=at(days=10)))
    assert state.status is L.LOAN_COMPLETED and changes(history) == [(L.LOANED, L.LOAN_COMPLETED)]


def test_cancel_accepted():
    state, history, outgoing = run(None, request(), borrower(Action.Cancel, "patron left"),
                                   AnswerCancel(at=at(20), answer=YesNo.Y))
    assert state.status is L.CANCELLED and state.pending is None and not state.flags
    assert [(o.status, o.reason, o.answer) for o in outgoing] == [(Status.Cancelled, R.CancelResponse, YesNo.Y)]
    assert "cancel requested" in history[1].detail and "patron left" in history[1].detail


def test_cancel_refused_and_the_request_goes_on():
    state, history, outgoing = run(None, request(), WillSupply(at=at(2)), borrower(Action.Cancel, minutes=3),
                                   AnswerCancel(at=at(20), answer=YesNo.N, note="already pulled"),
                                   Ship(at=at(30), due_date=at(days=30)))
    assert state.status is L.LOANED
    assert [(o.status, o.reason, o.answer) for o in outgoing] == [
        (Status.WillSupply, R.RequestResponse, None),
        (Status.WillSupply, R.CancelResponse, YesNo.N),
        (Status.Loaned, R.StatusChange, None),
    ]


def test_conditions_accepted():
    state, history, outgoing = run(
        None, request(), OfferConditions(at=at(10), loan_conditions=("LibraryUseOnly",)),
        borrower(Action.Notification, "ACCEPT - thanks", minutes=20), Ship(at=at(30), due_date=at(days=30)))
    assert changes(history) == [(None, L.NEW), (L.NEW, L.CONDITIONAL), (L.CONDITIONAL, L.WILL_SUPPLY),
                                (L.WILL_SUPPLY, L.LOANED)]
    assert "accepted the conditions" in history[2].detail
    assert [(o.status, o.reason) for o in outgoing] == [(Status.WillSupply, R.RequestResponse),
                                                        (Status.Loaned, R.StatusChange)]


def test_conditions_rejected_by_notification_ends_unfilled_without_a_message():
    state, history, outgoing = run(
        None, request(), OfferConditions(at=at(10), offered_costs=((Decimal("20"), "EUR"),)),
        borrower(Action.Notification, "REJECT", minutes=20))
    assert state.status is L.UNFILLED and state.reason == "conditions rejected by the borrower"
    assert len(outgoing) == 1  # only our offer: the borrower already knows and moves on
    assert changes(history)[-1] == (L.CONDITIONAL, L.UNFILLED)


def test_conditions_rejected_by_cancel_is_answered_at_once():
    """Our own borrowing core rejects conditions with a Cancel noted REJECT."""
    state, _, outgoing = run(None, request(), OfferConditions(at=at(10), loan_conditions=("NoReproduction",)),
                             borrower(Action.Cancel, "REJECT", minutes=20))
    assert state.status is L.CANCELLED and state.pending is None
    assert [(o.status, o.reason, o.answer) for o in outgoing][-1] == (Status.Cancelled, R.CancelResponse, YesNo.Y)


def test_retry_lifecycle():
    policy = LendingPolicy(expire_after_days=3)
    state, history, outgoing = run(
        None, request(),
        OfferRetry(at=at(10), reason_retry="NotFoundAsCited", note="check the volume"),
        IncomingRequest(partner=BORROWER, details=replace(DETAILS, volume="2"), received_at=at(days=2),
                        request_type=RequestType.Retry),
        policy=policy,
    )
    assert state.status is L.NEW and state.details.volume == "2" and state.received_at == at(days=2)
    assert not state.responded and state.reason is None and state.iso_status is Status.RequestReceived
    assert "changed volume" in history[-1].detail
    assert next_lending_deadline(state, policy) == at(days=5)  # counted from the retry
    answered = decide_lending(state, Ship(at=at(days=3), due_date=at(days=30)), policy)
    assert answered.outgoing[0].reason is R.RequestResponse  # the first answer to the retried request


def test_retry_of_an_unknown_request_starts_one():
    decision = decide_lending(None, request(RequestType.Retry), NO_EXPIRY)
    assert decision.status is L.NEW and "retry of a request we do not know" in decision.history[0].detail


def test_unfilled_lifecycle():
    state, history, outgoing = run(None, request(), ExpectToSupply(at=at(5)),
                                   MarkUnfilled(at=at(days=1), reason_unfilled="NotOnShelf"))
    assert state.status is L.UNFILLED and state.reason == "NotOnShelf"
    assert [(o.status, o.reason) for o in outgoing] == [
        (Status.ExpectToSupply, R.RequestResponse), (Status.Unfilled, R.StatusChange)]
    assert allowed_lending_actions(state) == ("add_note", "send_message")


def test_status_request_is_answered_with_the_current_status_at_every_step():
    state = decide_lending(None, request(), NO_EXPIRY).state
    for event, expected in [
        (None, Status.RequestReceived),
        (WillSupply(at=at(1)), Status.WillSupply),
        (Ship(at=at(2), due_date=at(days=30)), Status.Loaned),
        (MarkOverdue(at=at(days=31)), Status.Overdue),
        (borrower(Action.ShippedReturn, minutes=60 * 24 * 32), Status.Overdue),  # RETURN_SHIPPED: as reported
        (CheckIn(at=at(days=33)), Status.LoanCompleted),
    ]:
        if event is not None:
            state = decide_lending(state, event, NO_EXPIRY).state
        decision = decide_lending(state, borrower(Action.StatusRequest, minutes=60 * 24 * 40), NO_EXPIRY)
        assert decision.state == state
        (out,) = decision.outgoing
        assert (out.status, out.reason, out.answer) == (expected, R.StatusRequestResponse, None)


def test_new_request_records_who_and_what():
    decision = decide_lending(None, request(details=LOAN), NO_EXPIRY)
    assert decision.previous is None and decision.status is L.NEW and not decision.outgoing
    (entry,) = decision.history
    assert (entry.from_status, entry.to_status, entry.actor, entry.event) == (None, L.NEW, BORROWER, "request")
    assert "Moby Dick" in entry.detail
    assert decision.state.partner == BORROWER and decision.state.received_at == at(0)
    assert refused(decision.state, request()).reason == "the request exists"


# --- purity ------------------------------------------------------------------------------------


def test_decide_does_not_mutate_and_decisions_are_frozen():
    state = state_in(L.WILL_SUPPLY)
    snapshot = copy.deepcopy(state)
    decision = decide_lending(state, STAFF_EVENTS["ship"](), NO_EXPIRY)
    assert state == snapshot and decision.state != state and decision.previous == state
    with pytest.raises(AttributeError):
        decision.state.status = L.CANCELLED  # type: ignore[misc]


def test_state_round_trips_through_the_services_json_snapshot():
    from gateway.service.snapshot import from_json, to_json

    details = replace(LOAN, max_cost=Decimal("10.00"), other_identifiers=(("OCLC", "1"),))
    state, _, _ = run(None, request(details=details),
                      OfferConditions(at=at(1), loan_conditions=("LibraryUseOnly",),
                                      offered_costs=((Decimal("5.5"), "USD"),)),
                      borrower(Action.Notification, "accept", minutes=2), Ship(at=at(3), due_date=at(days=9)),
                      borrower(Action.Lost, minutes=4), borrower(Action.Renew, minutes=5))
    assert state.pending is Pending.RENEW and LendingAttention.LOST in state.flags
    assert from_json(LendingState, to_json(state)) == state
