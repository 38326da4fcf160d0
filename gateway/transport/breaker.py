"""Per-partner circuit breakers for the outbox (see docs/outbox-partners.md).

A partner whose deliveries keep failing at the transport level (timeouts, refused connections,
5xx, answers that are not confirmations) is backed off as a whole instead of row by row:
after `threshold` failures in a row its breaker opens and the outbox sends it nothing for
`cooldown` seconds (its messages that fall due meanwhile fail at once and keep their own retry
schedule); then one message goes out as a probe (half-open). A confirmation (OK or
ERROR: either way the partner is alive and answering) closes the breaker; a failed probe opens it
again for another cooldown. The state lives in memory, per worker process, and staff see it
through the API (`GET /api/v1/partners`).

Pure bookkeeping: the caller passes the time in, so tests move the clock by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

__all__ = ["BreakerSettings", "CLOSED", "HALF_OPEN", "OPEN", "PartnerBreaker", "PartnerBreakers", "breakers_for"]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    threshold: int = 5  # transport failures in a row that open the breaker
    cooldown: float = 60.0  # seconds the breaker stays open before a probe

    def __post_init__(self) -> None:
        if self.threshold < 1 or self.cooldown <= 0:
            raise ValueError("breaker threshold must be at least 1 and cooldown above 0 s")


@dataclass(slots=True)
class PartnerBreaker:
    settings: BreakerSettings
    state: str = CLOSED
    failures: int = 0  # transport failures in a row
    opened_at: datetime | None = None
    retry_at: datetime | None = None  # while open: when a probe may go
    last_error: str | None = None
    last_failure_at: datetime | None = None
    last_success_at: datetime | None = None

    def allows(self, now: datetime) -> bool:
        """May a message go to this partner now? An open breaker whose cooldown has passed turns
        half-open (the caller then sends at most one message at a time: `max_in_flight`)."""
        if self.state == OPEN and self.retry_at is not None and now >= self.retry_at:
            self.state = HALF_OPEN
        return self.state != OPEN

    def max_in_flight(self, configured: int) -> int:
        return 1 if self.state == HALF_OPEN else configured

    def succeeded(self, now: datetime) -> None:
        self.state, self.failures, self.retry_at, self.opened_at = CLOSED, 0, None, None
        self.last_success_at = now

    def failed(self, reason: str, now: datetime) -> bool:
        """Count a transport failure; True if this one opened the breaker."""
        self.failures += 1
        self.last_error, self.last_failure_at = reason, now
        if self.state == HALF_OPEN or (self.state == CLOSED and self.failures >= self.settings.threshold):
            self.state, self.opened_at = OPEN, now
            self.retry_at = now + timedelta(seconds=self.settings.cooldown)
            return True
        return False

    def as_json(self) -> dict[str, Any]:
        def iso(when: datetime | None) -> str | None:
            return when.isoformat() if when is not None else None

        return {"state": self.state, "consecutive_failures": self.failures,
                "failure_threshold": self.settings.threshold, "cooldown_seconds": self.settings.cooldown,
                "opened_at": iso(self.opened_at), "retry_at": iso(self.retry_at),
                "last_error": self.last_error, "last_failure_at": iso(self.last_failure_at),
                "last_success_at": iso(self.last_success_at)}


class PartnerBreakers:
    """The breakers of every partner the outbox has sent to, by agency; `settings_for(agency)`
    gives a partner's thresholds (per-partner configuration or the gateway's defaults)."""

    def __init__(self, settings_for: Any = None):
        self._settings_for = settings_for or (lambda agency: BreakerSettings())
        self._breakers: dict[str, PartnerBreaker] = {}

    def get(self, agency: str) -> PartnerBreaker:
        breaker = self._breakers.get(agency)
        if breaker is None:
            breaker = self._breakers[agency] = PartnerBreaker(self._settings_for(agency))
        return breaker

    def agencies(self) -> list[str]:
        return list(self._breakers)

    def blocked(self, now: datetime) -> set[str]:
        """Partners that may not be sent to now (open breakers still cooling down)."""
        return {agency for agency, breaker in self._breakers.items() if not breaker.allows(now)}


def breakers_for(config: Any) -> PartnerBreakers:
    """Breakers with each configured partner's thresholds, the [gateway] defaults for the rest."""
    defaults = config.outbox

    def settings_for(agency: str) -> BreakerSettings:
        partner = config.partners.get(agency)
        threshold = getattr(partner, "breaker_threshold", None) or defaults.breaker_threshold
        cooldown = getattr(partner, "breaker_cooldown_seconds", None) or defaults.breaker_cooldown
        return BreakerSettings(threshold=threshold, cooldown=cooldown)

    return PartnerBreakers(settings_for)
