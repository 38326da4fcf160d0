"""Configuration: one TOML file plus environment overrides, with an embedded default.

Without a file the gateway runs on loopback with an SQLite file under ./var and two demo
partners (served by `gateway mock-partner`). Environment overrides: GATEWAY_AGENCY,
GATEWAY_LISTEN, GATEWAY_DATABASE, GATEWAY_PUBLIC_URL.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from .messages import Version
from .strict_numbers import NumberError, parse_int

VERSION_NAMES = {"2017": Version.V2017, "1.2": Version.V2017, "2021": Version.V2021, "2021-2": Version.V2021}
PROFILES = ("strict", "alma", "reshare", "lenient")

DEFAULT_TOML = """
[gateway]
agency = "ISIL:XX-GATEWAY"
listen = "127.0.0.1:8626"
database = "sqlite+aiosqlite:///var/gateway.sqlite3"
public_url = "http://127.0.0.1:8626/iso18626"

[policy]
end_of_rota = "expire"
on_partner_cancel = "next"
response_deadline_hours = 72
grace_hours = 24

[[partners]]
agency = "ISIL:MOCK1"
name = "Demo partner one (mock)"
url = "http://127.0.0.1:8627/iso18626"
version = "2017"
profile = "strict"

[[partners]]
agency = "ISIL:MOCK2"
name = "Demo partner two (mock)"
url = "http://127.0.0.1:8627/iso18626"
version = "2017"
profile = "strict"

[[rota_templates]]
name = "default"
partners = ["ISIL:MOCK1", "ISIL:MOCK2"]

# A demo staff key for the embedded default only: set your own keys in a config file.
[[api_keys]]
key = "demo-staff-key"
role = "staff"
name = "demo"
"""


class ConfigError(ValueError):
    pass


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
    def from_gateway_section(cls, gateway: dict[str, Any]) -> "ServerLimits":
        values: dict[str, Any] = {}
        for key, name in cls.KEYS.items():
            if key not in gateway:
                continue
            kind = type(getattr(cls, name))
            values[name] = _number("[gateway]", key, gateway[key], kind, 0, above=True)
        return cls(**values)


@dataclass(frozen=True)
class Config:
    agency: str
    listen_host: str
    listen_port: int
    database: str
    public_url: str
    partners: dict[str, Partner]
    policy: dict[str, Any]
    rota_templates: list[dict[str, Any]]
    api_keys: list[dict[str, Any]]
    raw: dict[str, Any]
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    limits: ServerLimits = ServerLimits()


def _number(where: str, key: str, value: Any, kind: type, minimum: float, *, above: bool = False) -> Any:
    """A positive setting, or a ConfigError that names it."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (kind is float or isinstance(value, int))
    if ok:
        ok = value > minimum if above else value >= minimum
    if not ok:
        bound = f"above {minimum:g}" if above else f"at least {minimum:g}"
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"{where}: {key} must be {what} {bound}, got {value!r}")
    return kind(value)


def _outbox(gateway: dict[str, Any]) -> OutboxSettings:
    def get(key: str, default: Any, kind: type, minimum: float, above: bool = False) -> Any:
        return _number("[gateway]", key, gateway.get(key, default), kind, minimum, above=above)

    d = OutboxSettings()
    return OutboxSettings(
        max_attempts=get("outbox_max_attempts", d.max_attempts, int, 1),
        base_delay=get("outbox_base_delay_seconds", d.base_delay, float, 0, True),
        max_delay=get("outbox_max_delay_seconds", d.max_delay, float, 0, True),
        concurrency=get("outbox_concurrency", d.concurrency, int, 1),
        partner_max_in_flight=get("outbox_partner_max_in_flight", d.partner_max_in_flight, int, 1),
        breaker_threshold=get("outbox_breaker_threshold", d.breaker_threshold, int, 1),
        breaker_cooldown=get("outbox_breaker_cooldown_seconds", d.breaker_cooldown, float, 0, True),
        lease_margin=get("outbox_lease_margin_seconds", d.lease_margin, float, 0, True),
    )


def _partner(entry: dict[str, Any]) -> Partner:
    try:
        agency, name, url = entry["agency"], entry.get("name", entry["agency"]), entry["url"]
    except KeyError as exc:
        raise ConfigError(f"[[partners]] entry lacks {exc.args[0]!r}: {entry}") from None
    if ":" not in agency:
        raise ConfigError(f"partner agency must be TYPE:VALUE, got {agency!r}")
    version = VERSION_NAMES.get(str(entry.get("version", "2017")))
    if version is None:
        raise ConfigError(f"partner {agency}: version must be 2017 or 2021")
    profile = entry.get("profile", "strict")
    if profile not in PROFILES:
        raise ConfigError(f"partner {agency}: profile must be one of {', '.join(PROFILES)}")
    hours = entry.get("response_deadline_hours")
    where = f"partner {agency}"
    limits = {
        "max_in_flight": ("max_in_flight", int, 1, False),
        "breaker_threshold": ("breaker_threshold", int, 1, False),
        "breaker_cooldown_seconds": ("breaker_cooldown_seconds", float, 0, True),
    }
    overrides = {name: _number(where, key, entry[key], kind, low, above=above)
                 for name, (key, kind, low, above) in limits.items() if key in entry}
    return Partner(
        agency=agency,
        name=name,
        url=url,
        version=version,
        profile=profile,
        credentials=dict(entry.get("credentials", {})),
        response_deadline=timedelta(hours=hours) if hours is not None else None,
        timeout_seconds=float(entry.get("timeout_seconds", 30.0)),
        **overrides,
    )


def parse_config(raw: dict[str, Any], env: dict[str, str] | None = None) -> Config:
    env = dict(os.environ) if env is None else env
    gateway = raw.get("gateway", {})
    listen = env.get("GATEWAY_LISTEN", gateway.get("listen", "127.0.0.1:8626"))
    host, _, port = listen.rpartition(":")
    try:
        port_number = parse_int(port, 0, 65535)
    except NumberError as exc:
        raise ConfigError(f"listen {listen!r}: the port {exc}") from None
    partners = [_partner(p) for p in raw.get("partners", [])]
    by_agency = {p.agency: p for p in partners}
    if len(by_agency) != len(partners):
        raise ConfigError("two [[partners]] share an agency symbol; partners are keyed by symbol")
    return Config(
        agency=env.get("GATEWAY_AGENCY", gateway.get("agency", "ISIL:XX-GATEWAY")),
        listen_host=host or "127.0.0.1",
        listen_port=port_number,
        database=env.get("GATEWAY_DATABASE", gateway.get("database", "sqlite+aiosqlite:///var/gateway.sqlite3")),
        public_url=env.get("GATEWAY_PUBLIC_URL", gateway.get("public_url", f"http://{listen}/iso18626")),
        partners=by_agency,
        policy=dict(raw.get("policy", {})),
        rota_templates=list(raw.get("rota_templates", [])),
        api_keys=list(raw.get("api_keys", [])),
        raw=raw,
        outbox=_outbox(gateway),
        limits=ServerLimits.from_gateway_section(gateway),
    )


def load_config(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> Config:
    text = Path(path).read_text(encoding="utf-8") if path else DEFAULT_TOML
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path or 'default config'}: {exc}") from None
    return parse_config(raw, env)
