"""[[partners]]: the agencies we exchange ISO 18626 messages with, keyed by agency symbol."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ..messages import Version
from .table import ConfigError, Table, entries

VERSION_NAMES = {"2017": Version.V2017, "1.2": Version.V2017, "2021": Version.V2021, "2021-2": Version.V2021}
PROFILES = ("strict", "alma", "reshare", "lenient")
# The keys transport/auth.py reads of a partner's [partners.credentials] tables.
CREDENTIALS = {"inbound": ("bearer_token", "hmac_secret", "account_id", "security_code", "allow_ips"),
               "outbound": ("bearer_token", "hmac_secret", "account_id", "security_code")}


@dataclass(frozen=True)
class Partner:
    agency: str
    name: str
    url: str
    version: Version = Version.V2017
    profile: str = "strict"
    credentials: dict[str, Any] = field(default_factory=dict)
    response_deadline: timedelta | None = None
    timeout_seconds: float = 30.0
    # Outbox limits for this partner; None: the [gateway] defaults (`OutboxSettings`).
    max_in_flight: int | None = None
    breaker_threshold: int | None = None
    breaker_cooldown_seconds: float | None = None


def read_partners(value: Any) -> dict[str, Partner]:
    partners = [_partner(i, entry) for i, entry in enumerate(entries("[[partners]]", value))]
    by_agency = {p.agency: p for p in partners}
    if len(by_agency) != len(partners):
        raise ConfigError("two [[partners]] share an agency symbol; partners are keyed by symbol")
    return by_agency


def _partner(index: int, entry: Any) -> Partner:
    table = Table(f"[[partners]] entry {index + 1}", entry)
    for key in ("agency", "url"):
        if key not in table:
            raise ConfigError(f"[[partners]] entry lacks {key!r}: {entry}")
    agency = table.text("agency")
    if ":" not in agency:
        raise ConfigError(f"partner agency must be TYPE:VALUE, got {agency!r}")
    table.where = f"partner {agency}"
    version = VERSION_NAMES.get(str(table.value("version", "2017")))
    if version is None:
        raise ConfigError(f"partner {agency}: version must be 2017 or 2021")
    profile = table.value("profile", "strict")
    if profile not in PROFILES:
        raise ConfigError(f"partner {agency}: profile must be one of {', '.join(PROFILES)}")
    hours = table.number("response_deadline_hours", None, float, 0, above=True) \
        if "response_deadline_hours" in table else None
    limits = {
        "max_in_flight": (int, 1, False),
        "breaker_threshold": (int, 1, False),
        "breaker_cooldown_seconds": (float, 0, True),
    }
    overrides = {key: table.number(key, None, kind, low, above=above)
                 for key, (kind, low, above) in limits.items() if key in table}
    credentials = Table(f"partner {agency}: credentials", table.value("credentials", {}))
    partner = Partner(
        agency=agency,
        name=table.text("name", agency),
        url=table.text("url"),
        version=version,
        profile=profile,
        credentials={side: credentials.table(side, known) for side, known in CREDENTIALS.items() if side in credentials},
        response_deadline=timedelta(hours=hours) if hours is not None else None,
        timeout_seconds=table.number("timeout_seconds", 30.0, float, 0, above=True),
        **overrides,
    )
    credentials.done()
    table.done()
    return partner
