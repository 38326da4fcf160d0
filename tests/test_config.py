"""The typed configuration: every section read once, bad values and unknown names refused with an
error that names them, environment overrides, and the core's policies built from the sections."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from gateway.config import (DEFAULT_TOML, ConfigError, LendingSettings, PolicySettings, borrowing_policy,
                            lending_policy, load_config, parse_config)
from gateway.messages import Version

P1 = "ISIL:DK-1"


def parse(**sections):
    return parse_config(sections, env={})


def refused(message: str, **sections) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(**sections)
    assert message in str(raised.value)


def test_the_embedded_default_loads_with_its_demo_partners_and_key():
    config = load_config(env={})
    assert config.agency == "ISIL:XX-GATEWAY" and (config.listen_host, config.listen_port) == ("127.0.0.1", 8626)
    assert set(config.partners) == {"ISIL:MOCK1", "ISIL:MOCK2"}
    assert [t.partners for t in config.rota_templates] == [("ISIL:MOCK1", "ISIL:MOCK2")]
    assert [(k.name, k.role) for k in config.api_keys] == [("demo", "staff")]
    assert "demo-staff-key" in DEFAULT_TOML


def test_a_config_file_is_read_and_its_syntax_errors_name_the_file(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text('[gateway]\nagency = "ISIL:US-X"\n[lending]\nexpire_after_days = 0\n')
    config = load_config(path, env={})
    assert config.agency == "ISIL:US-X" and config.lending.expire_after_days is None
    path.write_text("[gateway\n")
    with pytest.raises(ConfigError, match="gateway.toml"):
        load_config(path, env={})


def test_environment_overrides_win_over_the_file():
    raw = {"gateway": {"agency": "ISIL:US-FILE", "listen": "127.0.0.1:1", "database": "sqlite+aiosqlite:///f",
                       "public_url": "http://file/iso18626"}}
    env = {"GATEWAY_AGENCY": "ISIL:US-ENV", "GATEWAY_LISTEN": "0.0.0.0:9000",
           "GATEWAY_DATABASE": "postgresql+asyncpg://u@h/db", "GATEWAY_PUBLIC_URL": "https://ill.example.org/iso18626"}
    config = parse_config(raw, env=env)
    assert (config.agency, config.listen_host, config.listen_port) == ("ISIL:US-ENV", "0.0.0.0", 9000)
    assert config.database == "postgresql+asyncpg://u@h/db"
    assert config.public_url == "https://ill.example.org/iso18626"
    file_only = parse_config(raw, env={})
    assert (file_only.agency, file_only.listen_port, file_only.public_url) == ("ISIL:US-FILE", 1, "http://file/iso18626")
    # Without a public_url it follows the listen address, overridden or not.
    assert parse_config({}, env={"GATEWAY_LISTEN": "127.0.0.1:7000"}).public_url == "http://127.0.0.1:7000/iso18626"


def test_gateway_section():
    config = parse(gateway={"tick_seconds": 5, "body_limit": 2048, "audit_rows_per_address_per_minute": 3,
                            "outbox_max_attempts": 2, "max_connections": 9})
    assert (config.tick_seconds, config.body_limit, config.audit_rows_per_address_per_minute) == (5.0, 2048, 3)
    assert config.outbox.max_attempts == 2 and config.limits.max_connections == 9
    refused("[gateway]: tick_seconds must be a number above 0, got 0", gateway={"tick_seconds": 0})
    refused("[gateway]: body_limit must be an integer at least 1, got '1 MB'", gateway={"body_limit": "1 MB"})
    refused("[gateway]: audit_rows_per_address_per_minute must be an integer at least 1",
            gateway={"audit_rows_per_address_per_minute": 0})
    refused("[gateway]: agency must be a string, got 7", gateway={"agency": 7})
    refused("listen '127.0.0.1:x': the port", gateway={"listen": "127.0.0.1:x"})


def test_policy_section_and_the_borrowing_policy_built_from_it():
    config = parse(policy={"end_of_rota": "review", "on_partner_cancel": "stop", "on_send_failure": "hold",
                           "response_deadline_hours": 12, "grace_hours": 0},
                   partners=[{"agency": P1, "url": "http://p1", "response_deadline_hours": 6}])
    assert config.policy == PolicySettings("review", "stop", "hold", 12.0, 0.0)
    policy = borrowing_policy(config)
    assert (policy.end_of_rota, policy.on_partner_cancel, policy.on_send_failure) == ("review", "stop", "hold")
    assert (policy.deadline, policy.grace) == (timedelta(hours=12), timedelta(0))
    assert policy.deadline_for(P1) == timedelta(hours=6) and policy.deadline_for("ISIL:DK-2") == timedelta(hours=12)
    # The config's defaults (on_partner_cancel "next", unlike the bare BorrowingPolicy's "stop").
    default = borrowing_policy(parse())
    assert (default.on_partner_cancel, default.deadline, default.grace) == ("next", timedelta(hours=72),
                                                                            timedelta(hours=24))
    refused("[policy]: end_of_rota must be one of expire, review, got 'x'", policy={"end_of_rota": "x"})
    refused("[policy]: on_partner_cancel must be one of next, stop", policy={"on_partner_cancel": "later"})
    refused("[policy]: on_send_failure must be one of next, hold", policy={"on_send_failure": "stop"})
    refused("[policy]: response_deadline_hours must be a number above 0", policy={"response_deadline_hours": 0})
    refused("[policy]: grace_hours must be a number at least 0", policy={"grace_hours": -1})


def test_lending_section_and_the_lending_policy_built_from_it():
    config = parse(lending={"expire_after_days": 5, "exclude_weekends": True})
    assert config.lending == LendingSettings(5, True)
    policy = lending_policy(config)
    assert (policy.expire_after_days, policy.exclude_weekends) == (5, True)
    assert lending_policy(parse(lending={"expire_after_days": 0})).expire_after_days is None  # never
    assert lending_policy(parse()).expire_after_days == 3
    refused("[lending]: expire_after_days must be an integer at least 0, got 2.5", lending={"expire_after_days": 2.5})
    refused("[lending]: exclude_weekends must be true or false, got 'yes'", lending={"exclude_weekends": "yes"})


def test_partners_section():
    config = parse(partners=[{"agency": P1, "url": "http://p1", "version": "2021", "profile": "alma",
                              "timeout_seconds": 5, "credentials": {"inbound": {"hmac_secret": "s"},
                                                                    "outbound": {"bearer_token": "t"}}}])
    partner = config.partners[P1]
    assert (partner.name, partner.version, partner.profile, partner.timeout_seconds) == (P1, Version.V2021, "alma", 5.0)
    assert partner.credentials == {"inbound": {"hmac_secret": "s"}, "outbound": {"bearer_token": "t"}}
    refused("[[partners]] entry lacks 'url'", partners=[{"agency": P1}])
    refused("partner agency must be TYPE:VALUE", partners=[{"agency": "DK-1", "url": "http://p1"}])
    refused(f"partner {P1}: version must be 2017 or 2021", partners=[{"agency": P1, "url": "u", "version": "3"}])
    refused(f"partner {P1}: profile must be one of", partners=[{"agency": P1, "url": "u", "profile": "loose"}])
    refused(f"partner {P1}: timeout_seconds must be a number above 0",
            partners=[{"agency": P1, "url": "u", "timeout_seconds": 0}])
    refused("two [[partners]] share an agency symbol", partners=[{"agency": P1, "url": "u"}] * 2)
    refused(f"partner {P1}: credentials: inbound: unknown key 'hmac_secrte'",
            partners=[{"agency": P1, "url": "u", "credentials": {"inbound": {"hmac_secrte": "s"}}}])
    refused(f"partner {P1}: credentials: unknown key 'both'",
            partners=[{"agency": P1, "url": "u", "credentials": {"both": {}}}])


def test_rota_templates_section():
    config = parse(rota_templates=[{"name": "digital", "partners": [P1], "match": {"format": "Digital"}},
                                   {"name": "default", "partners": [P1]}])
    assert [(t.name, t.partners, dict(t.match)) for t in config.rota_templates] == [
        ("digital", (P1,), {"format": "Digital"}), ("default", (P1,), {})]
    refused("[[rota_templates]] entry 1: partners must be a list of strings", rota_templates=[{"partners": P1}])
    refused("[[rota_templates]] entry 1: match must be a table", rota_templates=[{"partners": [], "match": "x"}])
    refused("[[rota_templates]] must be an array of tables", rota_templates={"partners": []})


def test_api_keys_section():
    digest = hashlib.sha256(b"a-secret-key").hexdigest()
    config = parse(api_keys=[{"key_sha256": digest, "role": "admin", "name": "ops"}, {"key": "another-key"}])
    assert [(k.name, k.role) for k in config.api_keys] == [("ops", "admin"), ("key2", "read-only")]
    assert config.api_keys[0].digest == bytes.fromhex(digest)
    refused("[[api_keys]] entry 1: role must be one of read-only, staff, admin, got 'root'",
            api_keys=[{"key": "k" * 10, "role": "root"}])
    refused("[[api_keys]] entry 1 needs key or key_sha256", api_keys=[{"role": "staff"}])
    refused("[[api_keys]] entry 2: the same key is configured twice", api_keys=[{"key": "same-key-1"}] * 2)


def test_intake_api_and_requests_sections():
    config = parse(intake={"enabled": False, "pickup_locations": ["Main desk", "Branch"]},
                   api={"attachment_limit": 1000}, requests={"copyright_compliance": "US-CCG"})
    assert config.intake.enabled is False and config.intake.pickup_locations == ("Main desk", "Branch")
    assert config.api.attachment_limit == 1000 and config.requests.copyright_compliance == "US-CCG"
    defaults = parse()
    assert (defaults.intake.enabled, defaults.intake.pickup_locations) == (True, ())
    assert (defaults.api.attachment_limit, defaults.requests.copyright_compliance) == (10 * 1024 * 1024, "Other")
    refused("[intake]: pickup_locations must be a list of strings", intake={"pickup_locations": "Main desk"})
    refused("[intake]: enabled must be true or false", intake={"enabled": 1})
    refused("[api]: attachment_limit must be an integer at least 1", api={"attachment_limit": 0})
    refused("[requests]: copyright_compliance must be a string", requests={"copyright_compliance": 1})
    refused("[intake] must be a table", intake=["x"])


@pytest.mark.parametrize("section, where", [
    ("gateway", "[gateway]"), ("policy", "[policy]"), ("lending", "[lending]"), ("intake", "[intake]"),
    ("api", "[api]"), ("requests", "[requests]")])
def test_an_unknown_key_is_named(section, where):
    refused(f"{where}: unknown key 'colour'", **{section: {"colour": "blue"}})


def test_an_unknown_key_in_an_array_of_tables_is_named():
    refused(f"partner {P1}: unknown key 'colour'", partners=[{"agency": P1, "url": "u", "colour": "blue"}])
    refused("[[rota_templates]] entry 1: unknown key 'colour'", rota_templates=[{"partners": [], "colour": 1}])
    refused("[[api_keys]] entry 1: unknown key 'colour'", api_keys=[{"key": "k" * 10, "colour": 1}])


def test_an_unknown_section_is_named():
    refused("unknown section [polcy]", polcy={"end_of_rota": "review"})
