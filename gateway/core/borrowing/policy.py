"""Library policy knobs that change how the borrowing state machine moves on."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal, Mapping

EndOfRota = Literal["expire", "review"]
OnPartnerCancel = Literal["next", "stop"]
OnSendFailure = Literal["next", "hold"]


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"policy {name} must be one of {', '.join(allowed)}; got {value!r}")


@dataclass(frozen=True)
class BorrowingPolicy:
    # After the last partner said no: EXPIRED, or keep REJECTED_BY_PARTNER for staff review.
    end_of_rota: EndOfRota = "expire"
    # Unsolicited `Cancelled` from the lender: stop (CANCELED_BY_PARTNER) or try the next partner.
    on_partner_cancel: OnPartnerCancel = "stop"
    # Our `request` could not be delivered after all outbox retries: next partner, or hold in
    # READY_TO_SEND for staff. With nobody left it is always READY_TO_SEND + needs attention.
    on_send_failure: OnSendFailure = "next"
    # A partner that has not answered `deadline` after our request gets a StatusRequest; still
    # silent `grace` later, its entry is cancelled and the rota moves on.
    deadline: timedelta = timedelta(days=3)
    grace: timedelta = timedelta(days=1)
    deadlines: Mapping[str, timedelta] = field(default_factory=dict)  # agency -> deadline

    def __post_init__(self) -> None:
        _check("end_of_rota", self.end_of_rota, ("expire", "review"))
        _check("on_partner_cancel", self.on_partner_cancel, ("next", "stop"))
        _check("on_send_failure", self.on_send_failure, ("next", "hold"))
        if self.deadline <= timedelta(0) or self.grace < timedelta(0):
            raise ValueError("deadline must be positive and grace not negative")

    def deadline_for(self, partner: str) -> timedelta:
        return self.deadlines.get(partner, self.deadline)


DEFAULT_POLICY = BorrowingPolicy()
