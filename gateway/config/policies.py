"""The core's policy objects, built from the typed sections: the one place that knows how
`[policy]`, `[lending]` and the partners' deadlines become BorrowingPolicy and LendingPolicy."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Protocol

from ..core.lending.policy import LendingPolicy
from ..core.borrowing.policy import BorrowingPolicy
from .partners import Partner
from .sections import LendingSettings, PolicySettings


class Sections(Protocol):
    """What the policies are made of (a `Config` has it; named here so that this module need not
    import the package that imports it)."""

    policy: PolicySettings
    lending: LendingSettings
    partners: Mapping[str, Partner]


def borrowing_policy(config: Sections) -> BorrowingPolicy:
    policy = config.policy
    return BorrowingPolicy(
        end_of_rota=policy.end_of_rota,  # type: ignore[arg-type]  (checked when read)
        on_partner_cancel=policy.on_partner_cancel,  # type: ignore[arg-type]
        on_send_failure=policy.on_send_failure,  # type: ignore[arg-type]
        deadline=timedelta(hours=policy.response_deadline_hours),
        grace=timedelta(hours=policy.grace_hours),
        deadlines={a: p.response_deadline for a, p in config.partners.items() if p.response_deadline},
    )


def lending_policy(config: Sections) -> LendingPolicy:
    return LendingPolicy(expire_after_days=config.lending.expire_after_days,
                         exclude_weekends=config.lending.exclude_weekends)
