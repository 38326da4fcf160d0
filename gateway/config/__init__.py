"""Configuration: one TOML file plus environment overrides, with an embedded default.

Every section is read here, once, into frozen dataclasses; a bad value, an unknown key or an
unknown section is a ConfigError naming it. Environment overrides: GATEWAY_AGENCY,
GATEWAY_LISTEN, GATEWAY_DATABASE, GATEWAY_PUBLIC_URL.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.templates import RotaTemplate
from ..strict_numbers import NumberError, parse_int
from .api_keys import ROLES, ApiKey, read_api_keys
from .default import DEFAULT_TOML
from .partners import PROFILES, VERSION_NAMES, Partner, read_partners
from .policies import borrowing_policy, lending_policy
from .sections import (AccountSettings, ApiSettings, IntakeSettings, LendingSettings, OutboxSettings, PolicySettings, RequestSettings,
                       ServerLimits, WebSettings, read_rota_templates)
from .table import ConfigError, Table

__all__ = ["DEFAULT_TOML", "AccountSettings", "PROFILES", "ROLES", "VERSION_NAMES", "ApiKey", "ApiSettings", "Config", "ConfigError",
           "IntakeSettings", "LendingSettings", "OutboxSettings", "Partner", "PolicySettings", "RequestSettings",
           "ServerLimits", "WebSettings", "borrowing_policy", "lending_policy", "load_config", "parse_config"]

SECTIONS = ("gateway", "policy", "lending", "partners", "rota_templates", "api_keys", "intake", "api", "requests",
            "accounts", "web")


@dataclass(frozen=True)
class Config:
    agency: str
    listen_host: str
    listen_port: int
    database: str
    public_url: str
    partners: dict[str, Partner]
    policy: PolicySettings = PolicySettings()
    lending: LendingSettings = LendingSettings()
    rota_templates: tuple[RotaTemplate, ...] = ()
    api_keys: tuple[ApiKey, ...] = ()
    intake: IntakeSettings = IntakeSettings()
    api: ApiSettings = ApiSettings()
    requests: RequestSettings = RequestSettings()
    accounts: AccountSettings = AccountSettings()
    web: WebSettings = WebSettings()
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    limits: ServerLimits = ServerLimits()
    tick_seconds: float = 30.0  # the timers' interval
    # How often a process that is not the timer leader tries to become it (PostgreSQL).
    leader_retry_seconds: float = 5.0
    body_limit: int = 1024 * 1024  # largest ISO 18626 message body, bytes
    audit_rows_per_address_per_minute: int = 60  # audit rows for refused posts, per source address


def parse_config(raw: dict[str, Any], env: dict[str, str] | None = None) -> Config:
    env = dict(os.environ) if env is None else env
    unknown = [name for name in raw if name not in SECTIONS]
    if unknown:
        raise ConfigError(f"unknown section {', '.join(f'[{name}]' for name in unknown)}; "
                          f"known: {', '.join(SECTIONS)}")

    def section(name: str) -> Table:
        return Table(f"[{name}]", raw.get(name, {}))

    gateway = section("gateway")
    listen = env.get("GATEWAY_LISTEN", gateway.text("listen", "127.0.0.1:8626"))
    host, _, port = listen.rpartition(":")
    try:
        port_number = parse_int(port, 0, 65535)
    except NumberError as exc:
        raise ConfigError(f"listen {listen!r}: the port {exc}") from None
    d = Config  # the defaults of the [gateway] keys below
    config = Config(
        agency=env.get("GATEWAY_AGENCY", gateway.text("agency", "ISIL:XX-GATEWAY")),
        listen_host=host or "127.0.0.1",
        listen_port=port_number,
        database=env.get("GATEWAY_DATABASE", gateway.text("database", "sqlite+aiosqlite:///var/gateway.sqlite3")),
        public_url=env.get("GATEWAY_PUBLIC_URL", gateway.text("public_url", f"http://{listen}/iso18626")),
        partners=read_partners(raw.get("partners", [])),
        policy=PolicySettings.read(section("policy")),
        lending=LendingSettings.read(section("lending")),
        rota_templates=read_rota_templates(raw.get("rota_templates", [])),
        api_keys=read_api_keys(raw.get("api_keys", [])),
        intake=IntakeSettings.read(section("intake")),
        api=ApiSettings.read(section("api")),
        requests=RequestSettings.read(section("requests")),
        accounts=AccountSettings.read(section("accounts")),
        web=WebSettings.read(section("web")),
        outbox=OutboxSettings.read(gateway),
        limits=ServerLimits.read(gateway),
        tick_seconds=gateway.number("tick_seconds", d.tick_seconds, float, 0, above=True),
        leader_retry_seconds=gateway.number("leader_retry_seconds", d.leader_retry_seconds, float, 0, above=True),
        body_limit=gateway.number("body_limit", d.body_limit, int, 1),
        audit_rows_per_address_per_minute=gateway.number("audit_rows_per_address_per_minute",
                                                         d.audit_rows_per_address_per_minute, int, 1),
    )
    gateway.done()
    return config


def load_config(path: str | os.PathLike | None = None, env: dict[str, str] | None = None) -> Config:
    text = Path(path).read_text(encoding="utf-8") if path else DEFAULT_TOML
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path or 'default config'}: {exc}") from None
    return parse_config(raw, env)
