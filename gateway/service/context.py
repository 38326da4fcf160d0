"""What the services need to know about this gateway: who we are, our partners, our policies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import Config, Partner, borrowing_policy
from ..core import BorrowingPolicy, InvalidInput
from ..core.form_rules import FormRules
from ..core.templates import RotaTemplate
from .outgoing import DEFAULT_COPYRIGHT_COMPLIANCE


@dataclass(frozen=True)
class ServiceContext:
    agency: str
    partners: dict[str, Partner]
    policy: BorrowingPolicy = field(default_factory=BorrowingPolicy)
    rota_templates: tuple[RotaTemplate | dict[str, Any], ...] = ()
    form_rules: FormRules = field(default_factory=FormRules)
    copyright_compliance: str = DEFAULT_COPYRIGHT_COMPLIANCE

    @classmethod
    def from_config(cls, config: Config) -> "ServiceContext":
        # `[intake] pickup_locations` is the library's list for staff and patrons alike.
        return cls(config.agency, dict(config.partners), borrowing_policy(config), config.rota_templates,
                   FormRules(config.intake.pickup_locations), config.requests.copyright_compliance)

    def partner(self, agency: str) -> Partner:
        try:
            return self.partners[agency]
        except KeyError:
            raise InvalidInput("partner", f"{agency} is not a configured partner") from None

    def check_partners(self, agencies: tuple[str, ...] | list[str]) -> None:
        for agency in agencies:
            self.partner(agency)
