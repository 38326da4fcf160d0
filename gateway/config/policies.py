"""The core's policy objects, built from the typed sections: the one place that knows how
`[policy]`, `[lending]` and the partners' deadlines become BorrowingPolicy and LendingPolicy."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from ..core.lending.policy import LendingPolicy
from ..core.policy import BorrowingPolicy

if TYPE_CHECKING:
    from . import Config


def borrowing_policy(config: "Config") -> BorrowingPolicy:
    policy = config.policy
    return BorrowingPolicy(
        end_of_rota=policy.end_of_rota,  # type: ignore[arg-type]  (checked when read)
        on_partner_cancel=policy.on_partner_cancel,  # type: ignore[arg-type]
        on_send_failure=policy.on_send_failure,  # type: ignore[arg-type]
        deadline=timedelta(hours=policy.response_deadline_hours),
        grace=timedelta(hours=policy.grace_hours),
        deadlines={a: p.response_deadline for a, p in config.partners.items() if p.response_deadline},
    )


def lending_policy(config: "Config") -> LendingPolicy:
    return LendingPolicy(expire_after_days=config.lending.expire_after_days,
                         exclude_weekends=config.lending.exclude_weekends)
