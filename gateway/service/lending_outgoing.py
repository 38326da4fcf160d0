"""Build the supplyingAgencyMessages the lending core asks for.

2017 has no retryInfo and allows one itemId, loanCondition and deliveryCost; what does not fit
its structure goes into the note as text, so nothing the lender said is lost on the way.
"""

from __future__ import annotations

from datetime import datetime

from ..core.lending import LendingState, OutgoingSupplierMessage
from ..messages import Version, model
from ..messages.codes import Status

AgencyId = model.AgencyId
SHIPPING = (Status.Loaned, Status.CopyCompleted)


def _costs(pairs) -> list[model.Costs]:
    return [model.Costs(model.SchemeValue(currency), amount) for amount, currency in pairs]


def _sv(values) -> list[model.SchemeValue]:
    return [model.SchemeValue(v) for v in values]


def build_supplying_message(out: OutgoingSupplierMessage, state: LendingState, *, ours: str, their_request_id: str,
                            our_request_id: str, now: datetime, version: Version) -> model.SupplyingAgencyMessage:
    v2017 = version is Version.V2017
    extra_notes: list[str] = []
    info = model.MessageInfo(
        reason_for_message=out.reason,
        answer_yes_no=out.answer,
        reason_unfilled=model.SchemeValue(out.reason_unfilled) if out.reason_unfilled else None,
        reason_retry=model.SchemeValue(out.reason_retry) if out.reason_retry else None,
    )
    retry = None
    shipping = out.status in SHIPPING or out.date_sent is not None
    if v2017:
        info.offered_costs = _costs(out.offered_costs[:1])[0] if out.offered_costs else None
        info.retry_after, info.retry_before = out.retry_after, out.retry_before
        extra_notes += [f"Cost: {a} {c}" for a, c in out.offered_costs[1:]]
        if not shipping:
            extra_notes += [f"Condition: {c}" for c in out.loan_conditions]
    elif out.loan_conditions and not shipping or out.offered_costs or out.retry_after or out.retry_before:
        retry = model.RetryInfo(
            loan_condition=[] if shipping else _sv(out.loan_conditions),
            offered_costs=_costs(out.offered_costs),
            retry_after=out.retry_after,
            retry_before=out.retry_before,
        )
    delivery = None
    if shipping:
        delivery = model.DeliveryInfo(
            date_sent=out.date_sent or now,
            item_id=list(out.item_ids[:1] if v2017 else out.item_ids),
            url=None if v2017 else out.url,
            delivery_method=model.SchemeValue(out.sent_via) if out.sent_via else None,
            loan_condition=_sv(out.loan_conditions[:1] if v2017 else out.loan_conditions),
            delivery_costs=_costs(out.delivery_costs[:1] if v2017 else out.delivery_costs),
        )
        if v2017:
            extra_notes += [f"Item: {i}" for i in out.item_ids[1:]]
            extra_notes += [f"Condition: {c}" for c in out.loan_conditions[1:]]
            extra_notes += [f"Delivery cost: {a} {c}" for a, c in out.delivery_costs[1:]]
            if out.url:
                extra_notes.append(f"URL: {out.url}")
    info.note = "\n".join(n for n in (out.note, *extra_notes) if n) or None
    return model.SupplyingAgencyMessage(
        header=model.SupplyingAgencyMessageHeader(
            supplying_agency_id=AgencyId.parse(ours),
            requesting_agency_id=AgencyId.parse(out.partner),
            timestamp=now,
            requesting_agency_request_id=their_request_id,
            supplying_agency_request_id=our_request_id,
        ),
        message_info=info,
        status_info=model.StatusInfo(status=out.status, due_date=out.due_date or state.due_date, last_change=now),
        retry_info=retry,
        delivery_info=delivery,
    )
