"""What the services need to know about this gateway: who we are, our partners, our policies."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ..config import Config, Partner
from ..core import BorrowingPolicy, InvalidInput
from ..core.form_rules import FormRules
from .outgoing import DEFAULT_COPYRIGHT_COMPLIANCE


@dataclass(frozen=True)
class ServiceContext:
    agency: str
    partners: dict[str, Partner]
    policy: BorrowingPolicy = field(default_factory=BorrowingPolicy)
    rota_templates: tuple[dict[str, Any], ...] = ()
    form_rules: FormRules = field(default_factory=FormRules)
    copyright_compliance: str = DEFAULT_COPYRIGHT_COMPLIANCE

    @classmethod
    def from_config(cls, config: Config) -> "ServiceContext":
        raw = config.policy
        policy = BorrowingPolicy(
            end_of_rota=raw.get("end_of_rota", "expire"),
            on_partner_cancel=raw.get("on_partner_cancel", "next"),
            on_send_failure=raw.get("on_send_failure", "next"),
            deadline=timedelta(hours=float(raw.get("response_deadline_hours", 72))),
            grace=timedelta(hours=float(raw.get("grace_hours", 24))),
            deadlines={a: p.response_deadline for a, p in config.partners.items() if p.response_deadline},
        )
        # `[intake] pickup_locations` is the library's list for staff and patrons alike.
        pickups = tuple(str(x) for x in config.raw.get("intake", {}).get("pickup_locations", []))
        copyright_code = str(config.raw.get("requests", {}).get("copyright_compliance", DEFAULT_COPYRIGHT_COMPLIANCE))
        return cls(config.agency, dict(config.partners), policy, tuple(config.rota_templates), FormRules(pickups),
                   copyright_code)

    def partner(self, agency: str) -> Partner:
        try:
            return self.partners[agency]
        except KeyError:
            raise InvalidInput("partner", f"{agency} is not a configured partner") from None

    def check_partners(self, agencies: tuple[str, ...] | list[str]) -> None:
        for agency in agencies:
            self.partner(agency)
