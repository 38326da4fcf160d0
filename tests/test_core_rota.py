"""Rota: advancing, policies, staff reordering, deadlines with ticks, templates."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from gateway.core import (
    AddPartner, Attention, BorrowingPolicy, BorrowingStatus, CancelPartner, CancelRequest, Create, DeliveryFailed,
    EntryState, IllegalTransition, InvalidInput, Locate, MoveDown, MoveSelected, MoveUp, RemovePartner,
    RequestConfirmed, RequestDetails, ResumeRequest, RotaEntry, RotaTemplate, SupplierMessage, Tick,
    TreatAsCancelled, allowed_actions, choose_rota, decide, next_deadline,
)
from gateway.core import rota as rota_ops
from gateway.messages.codes import Action, ReasonForMessage as R, Status, YesNo

S = BorrowingStatus
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=timezone.utc)
A, B, C, D = "ISIL:DE-A", "ISIL:DE-B", "ISIL:DE-C", "ISIL:DE-D"
DETAILS = RequestDetails(requester="patron-17", pickup_location="MAIN")


def at(minutes: int = 0, days: float = 0) -> datetime:
    return T0 + timedelta(days=days, minutes=minutes)


def msg(partner: str, status: Status | None, reason: R = R.StatusChange, when: datetime | None = None, **kw):
    return SupplierMessage(partner=partner, reason=reason, status=status, received_at=when or at(5), **kw)


class Run:
    """Feeds events through decide, keeping the state and everything decided."""

    def __init__(self, *partners: str, policy: BorrowingPolicy | None = None):
        self.policy = policy or BorrowingPolicy()
        self.decisions = []
        self.state = None
        self(Create(at=T0, details=DETAILS, partners=partners))

    def __call__(self, event):
        decision = decide(self.state, event, self.policy)
        self.state = decision.state
        self.decisions.append(decision)
        return decision

    @property
    def status(self) -> S:
        return self.state.status

    def entry(self, partner: str) -> RotaEntry:
        return next(e for e in self.state.rota if e.partner == partner)

    def order(self) -> list[str]:
        return [e.partner for e in self.state.rota]

    def sent(self) -> list[tuple[str, str]]:
        """Every outgoing message so far as (partner, "request" or the action)."""
        return [(o.partner, o.action.value if o.action else o.kind) for d in self.decisions for o in d.outgoing]


def unfilled(partner: str, when: datetime | None = None) -> SupplierMessage:
    return msg(partner, Status.Unfilled, R.RequestResponse, when, reason_unfilled="NotHeld")


# --- moving down the rota --------------------------------------------------------------------------


def test_unfilled_three_times_expires():
    run = Run(A, B, C)
    run(RequestConfirmed(partner=A, now=at(1)))
    for partner, minute in ((A, 10), (B, 20), (C, 30)):
        decision = run(unfilled(partner, at(minute)))
    assert run.status is S.EXPIRED
    assert run.sent() == [(A, "request"), (B, "request"), (C, "request")]
    assert [e.state for e in run.state.rota] == [EntryState.REJECTED] * 3
    assert [(h.from_status, h.to_status) for h in decision.history] == [
        (S.REJECTED_BY_PARTNER, S.REJECTED_BY_PARTNER), (S.REJECTED_BY_PARTNER, S.EXPIRED)]
    assert not run.state.flags


def test_end_of_rota_review_keeps_rejected_with_attention_then_locate():
    run = Run(A, policy=BorrowingPolicy(end_of_rota="review"))
    decision = run(unfilled(A))
    assert run.status is S.REJECTED_BY_PARTNER and decision.flags_set == {Attention.ROTA_EXHAUSTED}
    assert "kept for review" in decision.history[-1].detail
    run(AddPartner(at=at(60), partner=D))
    assert Attention.ROTA_EXHAUSTED in run.state.flags  # still nobody active
    decision = run(Locate(at=at(61), default_rota=(A, B)))  # A is known: only B is added
    assert run.status is S.READY_TO_SEND and run.order() == [A, D, B]
    assert [o.partner for o in decision.outgoing] == [D] and decision.flags_cleared == {Attention.ROTA_EXHAUSTED}
    assert run(RequestConfirmed(partner=D, now=at(62))).status is S.REQUEST_SENT


def test_locate_with_nobody_to_send_to_is_locate_failed():
    run = Run(policy=BorrowingPolicy(end_of_rota="review"))
    assert run.status is S.LOCATE_FAILED
    assert run(Locate(at=at(1))).status is S.LOCATE_FAILED
    run(Locate(at=at(2), default_rota=(A, B)))
    assert run.status is S.READY_TO_SEND and run.entry(A).state is EntryState.ACTIVE
    assert run.entry(B).state is EntryState.PENDING and not run.state.flags


def test_partner_cancelled_policies_at_end_of_rota():
    stop = Run(A, B)
    assert stop(msg(A, Status.Cancelled)).status is S.CANCELED_BY_PARTNER
    assert stop.sent() == [(A, "request")]
    nxt = Run(A, policy=BorrowingPolicy(on_partner_cancel="next", end_of_rota="review"))
    assert nxt(msg(A, Status.Cancelled)).status is S.REJECTED_BY_PARTNER
    assert Attention.ROTA_EXHAUSTED in nxt.state.flags


# --- staff reordering ---------------------------------------------------------------------------------


def test_reorder_mid_flight_changes_who_is_next():
    run = Run(A, B, C)
    run(RequestConfirmed(partner=A, now=at(1)))
    run(MoveUp(at=at(2), partner=C))
    assert run.order() == [A, C, B] and run.status is S.REQUEST_SENT
    run(unfilled(A, at(3)))
    assert run.entry(C).state is EntryState.ACTIVE and run.sent()[-1] == (C, "request")
    run(MoveSelected(at=at(4), partners=(B,), position=0))
    assert run.order() == [B, A, C]
    run(MoveDown(at=at(5), partner=B))
    assert run.order() == [A, B, C]
    assert [h.detail for h in run.decisions[-1].history] == [f"rota: moved {B} down"]


def test_remove_a_pending_partner_but_not_the_active_one():
    run = Run(A, B, C)
    run(RemovePartner(at=at(1), partner=B))
    assert run.order() == [A, C]
    with pytest.raises(IllegalTransition) as caught:
        run(RemovePartner(at=at(2), partner=A))
    assert "cancel the partner instead" in str(caught.value) and caught.value.event == "remove_partner"
    with pytest.raises(InvalidInput):
        run(RemovePartner(at=at(2), partner=D))
    run(unfilled(A))
    assert run.entry(C).state is EntryState.ACTIVE
    with pytest.raises(IllegalTransition):  # rejected entries stay as the record
        run(RemovePartner(at=at(9), partner=A))


def test_add_partner_anywhere_and_no_duplicates():
    run = Run(A, B)
    run(AddPartner(at=at(1), partner=D, position=1))
    assert run.order() == [A, D, B]
    with pytest.raises(InvalidInput):
        run(AddPartner(at=at(2), partner=B))
    with pytest.raises(InvalidInput):
        run(AddPartner(at=at(2), partner="no-colon"))


def test_cancel_the_active_partner_moves_on():
    run = Run(A, B)
    run(RequestConfirmed(partner=A, now=at(1)))
    run(msg(A, Status.WillSupply, R.RequestResponse))
    decision = run(CancelPartner(at=at(10), note="found locally"))
    assert [(o.partner, o.action or o.kind) for o in decision.outgoing] == [(A, Action.Cancel), (B, "request")]
    assert run.status is S.REJECTED_BY_PARTNER
    assert run.entry(A).state is EntryState.CANCELLED and run.entry(A).awaiting_cancel_response
    # A's answer to that Cancel is recorded, not refused
    yes = run(msg(A, Status.Cancelled, R.CancelResponse, at(11), answer=YesNo.Y))
    assert yes.state.status is S.REJECTED_BY_PARTNER and run.entry(A).answer is YesNo.Y
    assert not run.entry(A).awaiting_cancel_response
    # anything else from A is refused now
    with pytest.raises(IllegalTransition) as caught:
        run(msg(A, Status.Loaned))
    assert caught.value.reason == "not the active partner"


def test_partner_refusing_our_cancel_needs_attention():
    run = Run(A, B)
    run(CancelPartner(at=at(10)))
    decision = run(msg(A, Status.WillSupply, R.CancelResponse, at(11), answer=YesNo.N))
    assert decision.flags_set == {Attention.CANCEL_REFUSED} and run.entry(B).state is EntryState.ACTIVE


# --- deadlines -----------------------------------------------------------------------------------------


def test_no_answer_deadline_then_grace_then_next_partner():
    policy = BorrowingPolicy(deadline=timedelta(days=3), grace=timedelta(days=1))
    run = Run(A, B, policy=policy)
    run(RequestConfirmed(partner=A, now=at(1)))
    assert next_deadline(run.state, policy) == at(days=3)  # from sent_at (the create)
    assert not run(Tick(now=at(days=2))).history  # nothing due
    decision = run(Tick(now=at(days=3, minutes=1)))
    assert [(o.partner, o.action) for o in decision.outgoing] == [(A, Action.StatusRequest)]
    assert run.status is S.REQUEST_SENT and run.entry(A).status_requested_at == at(days=3, minutes=1)
    assert run.state.pending == "status_request"
    assert next_deadline(run.state, policy) == at(days=4, minutes=1)
    assert not run(Tick(now=at(days=3.5))).outgoing  # still in grace, and no second StatusRequest
    decision = run(Tick(now=at(days=4, minutes=2)))
    assert [(o.partner, o.action or o.kind) for o in decision.outgoing] == [(A, Action.Cancel), (B, "request")]
    assert run.status is S.REJECTED_BY_PARTNER
    assert run.entry(A).state is EntryState.CANCELLED and run.entry(A).reason == "no answer"
    assert run.entry(B).sent_at == at(days=4, minutes=2)
    assert all(h.actor == "system" for h in decision.history)


def test_answer_during_grace_stops_the_timer():
    run = Run(A, B, policy=BorrowingPolicy(deadline=timedelta(hours=1), grace=timedelta(hours=1)))
    run(RequestConfirmed(partner=A, now=at(1)))
    run(Tick(now=at(61)))
    run(msg(A, Status.ExpectToSupply, R.StatusRequestResponse, at(70)))
    assert run.status is S.EXPECTED_TO_SUPPLY
    assert not run(Tick(now=at(days=30))).outgoing and run.status is S.EXPECTED_TO_SUPPLY


def test_conditional_never_times_out():
    run = Run(A, B, policy=BorrowingPolicy(deadline=timedelta(hours=1), grace=timedelta(hours=1)))
    run(RequestConfirmed(partner=A, now=at(1)))
    run(msg(A, Status.WillSupply, R.RequestResponse, at(5), loan_conditions=("LibraryUseOnly",)))
    assert next_deadline(run.state, run.policy) is None
    for days in (1, 10, 100):
        decision = run(Tick(now=at(days=days)))
        assert decision.state == decision.previous and not decision.outgoing
    assert run.status is S.CONDITIONAL


def test_per_partner_deadline_override():
    policy = BorrowingPolicy(deadline=timedelta(days=3), deadlines={A: timedelta(hours=2)})
    run = Run(A, policy=policy)
    run(RequestConfirmed(partner=A, now=at(1)))
    assert run(Tick(now=at(121))).outgoing[0].action is Action.StatusRequest
    assert policy.deadline_for(B) == timedelta(days=3)


def test_unconfirmed_request_does_not_time_out():
    run = Run(A, B, policy=BorrowingPolicy(deadline=timedelta(hours=1)))
    assert next_deadline(run.state, run.policy) is None
    assert not run(Tick(now=at(days=5))).outgoing and run.status is S.CREATED


# --- delivery failures -----------------------------------------------------------------------------------


def test_undeliverable_request_moves_on_then_waits_for_staff():
    run = Run(A, B)
    decision = run(DeliveryFailed(partner=A, kind="request", at=at(30)))
    assert run.status is S.CREATED and [o.partner for o in decision.outgoing] == [B]
    assert run.entry(A).state is EntryState.SKIPPED and not run.state.flags
    decision = run(DeliveryFailed(partner=B, kind="request", at=at(60)))
    assert run.status is S.READY_TO_SEND and decision.flags_set == {Attention.SEND_FAILED}
    assert run.entry(B).state is EntryState.ACTIVE and run.entry(B).undelivered
    decision = run(Locate(at=at(90)))  # resend to B
    assert [o.partner for o in decision.outgoing] == [B] and decision.flags_cleared == {Attention.SEND_FAILED}
    assert run(RequestConfirmed(partner=B, now=at(91))).status is S.REQUEST_SENT


def test_undeliverable_request_on_hold_policy():
    run = Run(A, B, policy=BorrowingPolicy(on_send_failure="hold"))
    run(DeliveryFailed(partner=A, kind="request", at=at(30)))
    assert run.status is S.READY_TO_SEND and run.entry(A).undelivered
    assert Attention.SEND_FAILED in run.state.flags and run.entry(B).state is EntryState.PENDING


def test_locate_refused_while_a_request_is_under_way():
    run = Run(A, policy=BorrowingPolicy(end_of_rota="review"))
    run(unfilled(A))
    run(Locate(at=at(10), default_rota=(B,)))
    with pytest.raises(IllegalTransition) as caught:
        run(Locate(at=at(11), default_rota=(C,)))
    assert "under way" in str(caught.value)


# --- pure rota functions ------------------------------------------------------------------------------------


def test_rota_functions():
    rota = rota_ops.make_rota([A, B, C])
    assert [e.partner for e in rota_ops.move_up(rota, A)] == [A, B, C]  # already first
    assert [e.partner for e in rota_ops.move_down(rota, C)] == [A, B, C]  # already last
    assert [e.partner for e in rota_ops.move_selected(rota, [C, A], 1)] == [B, A, C]
    assert [e.partner for e in rota_ops.add(rota, D, 0)] == [D, A, B, C]
    assert rota_ops.first_pending(rota) == 0 and rota_ops.current(rota) is None
    with pytest.raises(InvalidInput):
        rota_ops.move_selected(rota, [A], 5)
    with pytest.raises(InvalidInput):
        rota_ops.make_rota([A, A])
    supplied = rota_ops.update(rota, 1, state=EntryState.SUPPLIED)
    assert rota_ops.current(supplied).partner == B and rota[1].state is EntryState.PENDING


# --- templates and policy ------------------------------------------------------------------------------------------

TEMPLATES = [
    {"name": "digital", "match": {"format": "Digital"}, "partners": ["ISIL:DE-COPY"]},
    {"name": "av", "match": {"format": "Physical", "requested_media": ["DVD", "CD"]}, "partners": [C]},
    {"name": "default", "partners": [A, B]},
]


def test_choose_rota_first_match_else_default():
    assert choose_rota(TEMPLATES, {"format": "digital"}).name == "digital"
    assert choose_rota(TEMPLATES, {"format": "Physical", "requested_media": "DVD"}).partners == (C,)
    assert choose_rota(TEMPLATES, {"format": "Physical", "requested_media": "book"}).name == "default"
    assert choose_rota(TEMPLATES, replace(DETAILS, format="Digital")).name == "digital"
    assert choose_rota(TEMPLATES, DETAILS).partners == (A, B)
    assert choose_rota(TEMPLATES[:2], DETAILS) is None
    assert choose_rota([RotaTemplate("x", (D,))], {}).partners == (D,)


def test_policy_is_validated():
    with pytest.raises(ValueError):
        BorrowingPolicy(end_of_rota="forever")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        BorrowingPolicy(deadline=timedelta(0))


# --- moves that change nothing, staff leaving the last partner (issue: hardening) -------------------


def test_a_move_that_changes_nothing_is_refused_and_records_nothing():
    run = Run(A, B, C)
    before = run.state
    for event, why in ((MoveUp(at=at(1), partner=A), "already first"),
                       (MoveDown(at=at(1), partner=C), "already last"),
                       (MoveSelected(at=at(1), partners=(B, C), position=1), "already start at position 2")):
        with pytest.raises(InvalidInput) as caught:
            run(event)
        assert caught.value.field == "partner" and why in str(caught.value)
    assert run.state is before and len(run.decisions) == 1


def test_move_selected_refuses_a_partner_selected_twice():
    run = Run(A, B, C)
    with pytest.raises(InvalidInput) as caught:
        run(MoveSelected(at=at(1), partners=(C, C), position=0))
    assert "selected twice" in str(caught.value) and run.order() == [A, B, C]
    with pytest.raises(InvalidInput):
        rota_ops.move_selected(run.state.rota, [A, A], 1)


@pytest.mark.parametrize("end_of_rota", ["expire", "review"])
def test_staff_cancelling_the_last_partner_leaves_the_request_for_another(end_of_rota):
    run = Run(A, policy=BorrowingPolicy(end_of_rota=end_of_rota))
    run(RequestConfirmed(partner=A, now=at(1)))
    decision = run(CancelPartner(at=at(10), note="wrong edition"))
    assert run.status is S.REJECTED_BY_PARTNER and run.state.needs_attention
    assert decision.flags_set == {Attention.ROTA_EXHAUSTED}
    assert [(o.partner, o.action) for o in decision.outgoing] == [(A, Action.Cancel)]
    assert {"add_partner", "locate", "cancel"} <= set(allowed_actions(run.state))
    run(AddPartner(at=at(11), partner=B))
    decision = run(Locate(at=at(12)))
    assert run.status is S.READY_TO_SEND and [o.partner for o in decision.outgoing] == [B]
    assert not run.state.flags


# --- a Cancel the partner never answers ----------------------------------------------------------


def _waiting_for_cancel() -> Run:
    run = Run(A, B)
    run(RequestConfirmed(partner=A, now=at(1)))
    run(msg(A, Status.WillSupply, R.RequestResponse, at(2)))
    run(CancelRequest(at=at(days=1), reason="patron left"))
    assert run.status is S.WAITING_FOR_CANCEL_RESPONSE and not run.state.needs_attention
    return run


def test_an_unanswered_cancel_is_flagged_after_the_response_deadline_and_then_quiet():
    run = _waiting_for_cancel()
    assert next_deadline(run.state, run.policy) == at(days=4)  # the Cancel's send time + 3 days
    assert run(Tick(now=at(days=3))).changes_nothing  # not due yet: nothing at all
    assert set(allowed_actions(run.state)) & {"treat_as_cancelled", "resume_request"} == set()
    decision = run(Tick(now=at(days=4, minutes=1)))
    assert decision.flags_set == {Attention.CANCEL_OVERDUE} and run.state.needs_attention
    assert run.status is S.WAITING_FOR_CANCEL_RESPONSE and not decision.outgoing
    assert "no answer from" in decision.history[0].detail
    assert next_deadline(run.state, run.policy) is None
    assert run(Tick(now=at(days=9))).changes_nothing  # flagged once, then no timer until staff act
    assert {"treat_as_cancelled", "resume_request"} <= set(allowed_actions(run.state))


def test_staff_treat_an_unanswered_cancel_as_cancelled_and_a_late_answer_is_recorded():
    run = _waiting_for_cancel()
    with pytest.raises(IllegalTransition) as caught:
        run(TreatAsCancelled(at=at(days=2)))
    assert "not overdue" in str(caught.value)
    run(Tick(now=at(days=5)))
    decision = run(TreatAsCancelled(at=at(days=5, minutes=1), note="called them"))
    assert run.status is S.CANCELED_BY_STAFF and not run.state.flags and not decision.outgoing
    assert run.entry(A).state is EntryState.CANCELLED and run.entry(A).awaiting_cancel_response
    late = run(msg(A, Status.WillSupply, R.CancelResponse, at(days=6), answer=YesNo.N))
    assert late.flags_set == {Attention.CANCEL_REFUSED} and run.status is S.CANCELED_BY_STAFF


def test_staff_resume_after_an_unanswered_cancel():
    run = _waiting_for_cancel()
    run(Tick(now=at(days=5)))
    decision = run(ResumeRequest(at=at(days=5, minutes=1)))
    assert run.status is S.WILL_SUPPLY and not run.state.flags and run.state.cancel is None
    assert "request resumed by staff" in decision.history[0].detail
    assert run.entry(A).state is EntryState.ACTIVE


def test_an_answer_after_the_flag_clears_it():
    run = _waiting_for_cancel()
    run(Tick(now=at(days=5)))
    decision = run(msg(A, Status.Cancelled, R.CancelResponse, at(days=6), answer=YesNo.Y))
    assert run.status is S.CANCELED_BY_STAFF and decision.flags_cleared == {Attention.CANCEL_OVERDUE}
