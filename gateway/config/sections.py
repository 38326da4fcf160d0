"""The typed settings of each configuration section, each read from its `Table`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.templates import RotaTemplate
from .table import ConfigError, Table, entries


@dataclass(frozen=True)
class OutboxSettings:
    """[gateway] keys of the outbox worker (see docs/outbox-partners.md): retries, the lease on a
    claimed row, and the per-partner limits that partners may override."""

    max_attempts: int = 8
    base_delay: float = 1.0
    max_delay: float = 600.0
    concurrency: int = 16  # messages in flight, all partners together
    partner_max_in_flight: int = 4  # messages in flight to one partner
    breaker_threshold: int = 5  # transport failures in a row that open a partner's breaker
    breaker_cooldown: float = 60.0  # seconds a partner's breaker stays open before a probe
    lease_margin: float = 30.0  # seconds a claim outlives the partner's timeout
    # Other gateway processes share the database: leave `sending` rows to their leases at start-up.
    # None (unset): shared on PostgreSQL, alone on SQLite (see `shared_on`).
    shared: bool | None = None

    def shared_on(self, dialect: str) -> bool:
        return self.shared if self.shared is not None else dialect == "postgresql"

    @classmethod
    def read(cls, gateway: Table) -> "OutboxSettings":
        d = cls()
        return cls(
            max_attempts=gateway.number("outbox_max_attempts", d.max_attempts, int, 1),
            base_delay=gateway.number("outbox_base_delay_seconds", d.base_delay, float, 0, above=True),
            max_delay=gateway.number("outbox_max_delay_seconds", d.max_delay, float, 0, above=True),
            concurrency=gateway.number("outbox_concurrency", d.concurrency, int, 1),
            partner_max_in_flight=gateway.number("outbox_partner_max_in_flight", d.partner_max_in_flight, int, 1),
            breaker_threshold=gateway.number("outbox_breaker_threshold", d.breaker_threshold, int, 1),
            breaker_cooldown=gateway.number("outbox_breaker_cooldown_seconds", d.breaker_cooldown, float, 0,
                                            above=True),
            lease_margin=gateway.number("outbox_lease_margin_seconds", d.lease_margin, float, 0, above=True),
            shared=gateway.flag("outbox_shared", False) if "outbox_shared" in gateway else None,
        )


@dataclass(frozen=True)
class ServerLimits:
    """What the HTTP server allows slow, idle and numerous clients (`[gateway]` keys, in seconds
    and connections; docs/http-limits.md)."""

    header_timeout: float = 15.0  # header_timeout_seconds: a request's headers, from its first byte
    body_timeout: float = 60.0  # body_timeout_seconds: its body, from the end of the headers
    keepalive_timeout: float = 30.0  # keepalive_timeout_seconds: idle between requests
    max_connections: int = 1000  # max_connections: open at once (also kept below the fd limit)
    max_connections_per_address: int = 100  # max_connections_per_address: per IPv4 address / IPv6 /64
    log_interval: float = 60.0  # resource_log_interval_seconds: one log line per kind per interval

    KEYS = {"header_timeout_seconds": "header_timeout", "body_timeout_seconds": "body_timeout",
            "keepalive_timeout_seconds": "keepalive_timeout", "max_connections": "max_connections",
            "max_connections_per_address": "max_connections_per_address",
            "resource_log_interval_seconds": "log_interval"}

    @classmethod
    def read(cls, gateway: Table) -> "ServerLimits":
        values = {name: gateway.number(key, getattr(cls, name), type(getattr(cls, name)), 0, above=True)
                  for key, name in cls.KEYS.items()}
        return cls(**values)


@dataclass(frozen=True)
class PolicySettings:
    """[policy]: how the borrowing side moves along its rota (core.borrowing.policy.BorrowingPolicy)."""

    end_of_rota: str = "expire"
    on_partner_cancel: str = "next"
    on_send_failure: str = "next"
    response_deadline_hours: float = 72.0
    grace_hours: float = 24.0

    @classmethod
    def read(cls, policy: Table) -> "PolicySettings":
        d = cls()
        settings = cls(
            end_of_rota=policy.choice("end_of_rota", d.end_of_rota, ("expire", "review")),
            on_partner_cancel=policy.choice("on_partner_cancel", d.on_partner_cancel, ("next", "stop")),
            on_send_failure=policy.choice("on_send_failure", d.on_send_failure, ("next", "hold")),
            response_deadline_hours=policy.number("response_deadline_hours", d.response_deadline_hours, float, 0,
                                                  above=True),
            grace_hours=policy.number("grace_hours", d.grace_hours, float, 0),
        )
        policy.done()
        return settings


@dataclass(frozen=True)
class LendingSettings:
    """[lending]: when an unanswered incoming request expires (core.lending.LendingPolicy)."""

    expire_after_days: int | None = 3  # None (0 in the file): never
    exclude_weekends: bool = False

    @classmethod
    def read(cls, lending: Table) -> "LendingSettings":
        days = lending.number("expire_after_days", 3, int, 0)
        settings = cls(expire_after_days=days or None, exclude_weekends=lending.flag("exclude_weekends", False))
        lending.done()
        return settings


@dataclass(frozen=True)
class IntakeSettings:
    """[intake]: the patron request form at /openurl."""

    enabled: bool = True
    # The library's pickup locations, for staff and patrons alike (empty: free text).
    pickup_locations: tuple[str, ...] = ()

    @classmethod
    def read(cls, intake: Table) -> "IntakeSettings":
        settings = cls(enabled=intake.flag("enabled", True), pickup_locations=intake.texts("pickup_locations"))
        intake.done()
        return settings


@dataclass(frozen=True)
class ApiSettings:
    """[api]: the staff API."""

    attachment_limit: int = 10 * 1024 * 1024  # bytes of one uploaded attachment

    @classmethod
    def read(cls, api: Table) -> "ApiSettings":
        settings = cls(attachment_limit=api.number("attachment_limit", cls.attachment_limit, int, 1))
        api.done()
        return settings


@dataclass(frozen=True)
class RequestSettings:
    """[requests]: what outgoing borrowing requests carry."""

    copyright_compliance: str = "Other"  # sent as copyrightCompliance when staff agree to the terms

    @classmethod
    def read(cls, requests: Table) -> "RequestSettings":
        settings = cls(copyright_compliance=requests.text("copyright_compliance", cls.copyright_compliance))
        requests.done()
        return settings


def read_rota_templates(value: Any) -> tuple[RotaTemplate, ...]:
    """[[rota_templates]]: `{name, partners, match}` (core/templates.py chooses among them)."""
    templates = []
    for i, entry in enumerate(entries("[[rota_templates]]", value)):
        table = Table(f"[[rota_templates]] entry {i + 1}", entry)
        match = table.value("match", {})
        if not isinstance(match, dict):
            raise ConfigError(f"{table.where}: match must be a table, got {match!r}")
        templates.append(RotaTemplate(name=table.text("name", ""), partners=table.texts("partners"), match=match))
        table.done()
    return tuple(templates)


@dataclass(frozen=True)
class AccountSettings:
    """[accounts]: how staff sign-in slows and locks out repeated failures (service/accounts.py).
    Failures are counted per username in the database, so all gateway processes count together."""

    max_failures: int = 5  # failures within the window that lock the username
    failure_window_seconds: float = 15 * 60.0  # how far back failures count
    lockout_seconds: float = 15 * 60.0  # how long a lock lasts
    failure_delay_seconds: float = 0.5  # the delay after the first failure; it doubles with each further one
    max_failure_delay_seconds: float = 8.0  # the delay never grows beyond this
    min_password_length: int = 12

    @classmethod
    def read(cls, accounts: Table) -> "AccountSettings":
        d = cls()
        settings = cls(
            max_failures=accounts.number("max_failures", d.max_failures, int, 1),
            failure_window_seconds=accounts.number("failure_window_seconds", d.failure_window_seconds, float, 0,
                                                   above=True),
            lockout_seconds=accounts.number("lockout_seconds", d.lockout_seconds, float, 0, above=True),
            failure_delay_seconds=accounts.number("failure_delay_seconds", d.failure_delay_seconds, float, 0),
            max_failure_delay_seconds=accounts.number("max_failure_delay_seconds", d.max_failure_delay_seconds,
                                                      float, 0),
            min_password_length=accounts.number("min_password_length", d.min_password_length, int, 12),
        )
        accounts.done()
        return settings


DEFAULT_CANCEL_REASONS = (
    "Patron no longer needs the item",
    "Duplicate request",
    "Item found in our own collection",
    "Requested by mistake",
    "Too expensive",
    "Other",
)


@dataclass(frozen=True)
class WebSettings:
    """[web]: the staff pages (gateway/web/). The session secret signs and encrypts the session
    cookie; every process behind one address needs the same one. Without `session_secret`, the
    secret is read from `session_secret_file`, which is created (random, mode 0600) the first time."""

    session_secret: str | None = None
    session_secret_file: str = "var/session-secret"
    session_idle_minutes: float = 60.0  # signed out after this long without a page
    session_max_hours: float = 12.0  # signed out this long after signing in, whatever happens
    cancel_reasons: tuple[str, ...] = DEFAULT_CANCEL_REASONS  # the cancel workform's list
    due_soon_days: int = 3  # a loan due within this many days is marked "due soon"
    slip_batch_limit: int = 200  # most slips printed from one filtered list
    live_poll_seconds: float = 1.0  # how often a live page's stream looks for changes (web/live.py)
    live_max_streams: int = 100  # live streams open at once per process; more are refused (503)
    # The embedded default's demo account (created at start when missing): username "demo".
    demo_password: str | None = None

    @classmethod
    def read(cls, web: Table) -> "WebSettings":
        d = cls()
        secret = web.value("session_secret", None)
        if secret is not None and (not isinstance(secret, str) or len(secret) < 32):
            raise ConfigError("[web]: session_secret must be a string of at least 32 characters")
        reasons = web.texts("cancel_reasons") or d.cancel_reasons
        if any(not r.strip() or len(r) > 200 for r in reasons):
            raise ConfigError("[web]: cancel_reasons must be non-empty strings of at most 200 characters")
        demo = web.value("demo_password", None)
        if demo is not None and (not isinstance(demo, str) or len(demo) < 12):
            raise ConfigError("[web]: demo_password must be a string of at least 12 characters")
        settings = cls(
            session_secret=secret,
            session_secret_file=web.text("session_secret_file", d.session_secret_file),
            session_idle_minutes=web.number("session_idle_minutes", d.session_idle_minutes, float, 0, above=True),
            session_max_hours=web.number("session_max_hours", d.session_max_hours, float, 0, above=True),
            cancel_reasons=tuple(r.strip() for r in reasons),
            due_soon_days=web.number("due_soon_days", d.due_soon_days, int, 0),
            slip_batch_limit=web.number("slip_batch_limit", d.slip_batch_limit, int, 1),
            live_poll_seconds=web.number("live_poll_seconds", d.live_poll_seconds, float, 0, above=True),
            live_max_streams=web.number("live_max_streams", d.live_max_streams, int, 0),
            demo_password=demo,
        )
        web.done()
        return settings
