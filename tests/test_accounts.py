"""Staff accounts: the `gateway user` commands run as real processes against a real database,
and sign-in verification (AccountService.authenticate) with its database-counted throttle, on
SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher, Type
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import AccountSettings, ConfigError, parse_config
from gateway.service.accounts import Account, AccountError, AccountService, SignInRefused
from gateway.service.sign_in_throttle import Throttle, after_failure, failure_delay
from gateway.service.writer import Writer
from gateway.store.db import make_engine
from gateway.store.models import history_t, sign_in_throttles_t, staff_accounts_t

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery"
SETTINGS = AccountSettings()  # 5 failures in 15 minutes lock for 15 minutes
T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def cheap_hasher() -> PasswordHasher:
    """Argon2id with small parameters, so the tests hash quickly."""
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=Type.ID)


class CountingHasher(PasswordHasher):
    """Counts verify calls: an unknown username must be verified too (against the dummy hash)."""

    verifies = 0

    def verify(self, hash, password):  # noqa: A002 - argon2's own parameter name
        CountingHasher.verifies += 1
        return super().verify(hash, password)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def _service(engine: AsyncEngine, clock: Clock, hasher: PasswordHasher | None = None) -> AccountService:
    return AccountService(Writer(engine), SETTINGS, clock, hasher or cheap_hasher())


@pytest.fixture
async def service(engine: AsyncEngine, clock: Clock) -> AsyncIterator[AccountService]:
    svc = await _service(engine, clock)
    yield svc
    await svc.writer.close()


async def _audit(engine: AsyncEngine) -> list[tuple[str, str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(history_t.c.actor, history_t.c.event, history_t.c.detail)
                                  .where(history_t.c.request_id.is_(None)).order_by(history_t.c.id))
        return [(actor, event, detail["text"]) for actor, event, detail in rows]


async def _stored_hash(engine: AsyncEngine, username: str) -> str:
    async with engine.connect() as conn:
        return await conn.scalar(select(staff_accounts_t.c.password_hash)
                                 .where(staff_accounts_t.c.username == username))


# --- the command line, as a real process --------------------------------------------------------


def _gateway(config: Path, *args: str, password: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "user", *args, "--config", str(config)],
                          input=password, capture_output=True, text=True, cwd=ROOT, timeout=120)


async def test_user_commands_add_update_list_disable(db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'[gateway]\ndatabase = "{db_url}"\n', encoding="utf-8")
    runs = []

    def gateway(*args: str, password: str | None = None) -> subprocess.CompletedProcess:
        runs.append(_gateway(config, *args, password=password))
        return runs[-1]

    added = gateway("add", "Ann", "--role", "staff", "--password-stdin", "--display-name", "Ann Smith",
                    password=PASSWORD + "\n")
    assert (added.returncode, added.stdout) == (0, "created ann (staff)\n"), added.stderr
    assert gateway("add", "bob", "--role", "viewer", "--password-stdin", password=PASSWORD).returncode == 0
    updated = gateway("add", "ann", "--role", "admin", "--password-stdin", password="another passphrase\n")
    assert (updated.returncode, updated.stdout) == (0, "updated ann (admin)\n"), updated.stderr
    assert gateway("disable", "bob").stdout == "disabled bob\n"
    missing = gateway("disable", "nobody")
    assert missing.returncode == 1 and "no account 'nobody'" in missing.stderr

    listing = gateway("list")
    assert listing.returncode == 0, listing.stderr
    lines = [line.split() for line in listing.stdout.splitlines()]
    assert lines[0] == ["USERNAME", "DISPLAY", "NAME", "ROLE", "STATUS", "LAST", "SIGN-IN"]
    assert lines[1:] == [["ann", "Ann", "Smith", "admin", "active", "never"],
                         ["bob", "bob", "viewer", "disabled", "never"]]  # the display name kept on update

    engine = make_engine(db_url)
    try:
        for name in ("ann", "bob"):
            assert (await _stored_hash(engine, name)).startswith("$argon2id$")
        # The update changed the password: the new one signs in, the old one does not.
        svc = AccountService(Writer(engine), SETTINGS)
        try:
            assert isinstance(await svc.authenticate("ann", "another passphrase", "127.0.0.1"), Account)
            assert (await svc.authenticate("ann", PASSWORD, "127.0.0.1")).reason == "wrong_password"
        finally:
            await svc.writer.close()
        assert [e[1] for e in await _audit(engine)][:4] == [
            "account_created", "account_created", "account_updated", "account_disabled"]
    finally:
        await engine.dispose()
    for run in runs:  # the hash is never shown
        assert "$argon2" not in run.stdout + run.stderr


@pytest.mark.parametrize("password, message", [("", "the password is empty"),
                                                ("eleven char", "at least 12 characters")])
def test_user_add_refuses_an_empty_or_short_password(tmp_path: Path, password: str, message: str) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'[gateway]\ndatabase = "sqlite+aiosqlite:///{tmp_path / "g.sqlite3"}"\n', encoding="utf-8")
    refused = _gateway(config, "add", "ann", "--role", "staff", "--password-stdin", password=password + "\n")
    assert refused.returncode == 2 and message in refused.stderr
    assert _gateway(config, "list").stdout.splitlines()[1:] == []


def test_user_add_takes_no_password_argument(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f'[gateway]\ndatabase = "sqlite+aiosqlite:///{tmp_path / "g.sqlite3"}"\n', encoding="utf-8")
    for option in ("--password", "--pass"):
        refused = _gateway(config, "add", "ann", "--role", "staff", option, PASSWORD)
        assert refused.returncode == 2 and "--password-stdin" in refused.stderr
        assert PASSWORD not in refused.stdout + refused.stderr


# --- the service: add, list, disable -------------------------------------------------------------


async def test_add_validates_and_hashes_with_argon2id(service: AccountService, engine: AsyncEngine) -> None:
    account, created = await service.add(" Jo.Olsen@lib ", PASSWORD, "viewer")
    assert created and (account.username, account.display_name, account.role) == ("jo.olsen@lib",) * 2 + ("viewer",)
    assert account.api_role == "read-only" and account.actor == "staff:jo.olsen@lib"
    assert (await _stored_hash(engine, "jo.olsen@lib")).startswith("$argon2id$")
    for username, role, password in [("no spaces", "staff", PASSWORD), ("ann", "root", PASSWORD),
                                      ("ann", "staff", "short")]:
        with pytest.raises(AccountError):
            await service.add(username, password, role)
    assert [a.username for a in await service.accounts()] == ["jo.olsen@lib"]


# --- the service: authenticate -------------------------------------------------------------------


async def test_right_password_signs_in_and_is_recorded(service: AccountService, engine: AsyncEngine,
                                                       clock: Clock) -> None:
    await service.add("ann", PASSWORD, "staff", "Ann Smith")
    clock.advance(minutes=1)
    account = await service.authenticate("Ann", PASSWORD, "192.0.2.7")
    assert isinstance(account, Account) and account.last_sign_in_at == clock.now
    assert (await service.accounts())[0].last_sign_in_at == clock.now
    assert (await _audit(engine))[-1] == ("staff:ann", "sign_in", "from 192.0.2.7")


async def test_wrong_password_unknown_user_and_disabled_account_are_refused(
        service: AccountService, engine: AsyncEngine) -> None:
    await service.add("ann", PASSWORD, "staff")
    await service.add("bob", PASSWORD, "staff")
    await service.disable("bob")
    wrong = await service.authenticate("ann", PASSWORD + "!", "192.0.2.7")
    assert wrong == SignInRefused("wrong_password", SETTINGS.failure_delay_seconds)
    assert (await service.authenticate("carl", PASSWORD, "192.0.2.7")).reason == "unknown_user"
    assert (await service.authenticate("bob", PASSWORD, "192.0.2.7")).reason == "disabled"
    assert [(actor, event) for actor, event, _ in (await _audit(engine))[-3:]] == [
        ("staff:ann", "sign_in_failed"), ("staff:carl", "sign_in_failed"), ("staff:bob", "sign_in_failed")]
    assert "wrong password (failure 1 of 5)" in (await _audit(engine))[-3][2]


async def test_an_unknown_username_is_verified_against_a_dummy_hash(engine: AsyncEngine, clock: Clock) -> None:
    svc = AccountService(Writer(engine), SETTINGS, clock,
                         CountingHasher(time_cost=1, memory_cost=8, parallelism=1))
    try:
        CountingHasher.verifies = 0
        assert (await svc.authenticate("nobody", PASSWORD, "192.0.2.7")).reason == "unknown_user"
        assert CountingHasher.verifies == 1
    finally:
        await svc.writer.close()


async def test_failures_slow_down_then_lock_until_the_lock_ends(service: AccountService, engine: AsyncEngine,
                                                                 clock: Clock) -> None:
    await service.add("ann", PASSWORD, "staff")
    delays = []
    for _ in range(SETTINGS.max_failures - 1):
        refused = await service.authenticate("ann", "wrong password!", "192.0.2.7")
        assert refused.reason == "wrong_password" and refused.locked_until is None
        delays.append(refused.delay_seconds)
        clock.advance(seconds=30)
    assert delays == [0.5, 1.0, 2.0, 4.0]  # growing, for the caller to await
    locked = await service.authenticate("ann", "wrong password!", "192.0.2.7")
    assert locked.reason == "locked" and locked.locked_until == clock.now + timedelta(minutes=15)
    assert (await _audit(engine))[-1][1] == "sign_in_locked"

    clock.advance(minutes=14)
    still = await service.authenticate("ann", PASSWORD, "192.0.2.7")  # even the right password
    assert still.reason == "locked" and still.locked_until == locked.locked_until
    assert (await _audit(engine))[-1][:2] == ("staff:ann", "sign_in_failed")

    clock.advance(minutes=1)
    assert isinstance(await service.authenticate("ann", PASSWORD, "192.0.2.7"), Account)
    async with engine.connect() as conn:  # a success clears the count
        assert (await conn.execute(select(sign_in_throttles_t))).all() == []


async def test_failures_are_counted_across_separate_services(db_url: str, engine: AsyncEngine,
                                                             clock: Clock) -> None:
    """Two services with their own engines and writers on one database, as two processes."""
    other_engine = make_engine(db_url)
    first, second = await _service(engine, clock), await _service(other_engine, clock)
    try:
        await first.add("ann", PASSWORD, "staff")
        for i in range(SETTINGS.max_failures - 1):
            refused = await (first, second)[i % 2].authenticate("ann", "wrong password!", "192.0.2.7")
            assert refused.reason == "wrong_password"
        assert (await second.authenticate("ann", "wrong password!", "192.0.2.8")).reason == "locked"
        assert (await first.authenticate("ann", PASSWORD, "192.0.2.7")).reason == "locked"
        # Unknown usernames are counted and locked alike, so a lock tells nothing about who exists.
        for _ in range(SETTINGS.max_failures):
            refused = await (first, second)[_ % 2].authenticate("ghost", PASSWORD, "192.0.2.7")
        assert refused.reason == "locked"
    finally:
        await first.writer.close()
        await second.writer.close()
        await other_engine.dispose()


async def test_the_hash_is_renewed_when_the_parameters_change(engine: AsyncEngine, clock: Clock) -> None:
    old = AccountService(Writer(engine), SETTINGS, clock, PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    new = AccountService(Writer(engine), SETTINGS, clock, PasswordHasher(time_cost=2, memory_cost=16, parallelism=1))
    try:
        await old.add("ann", PASSWORD, "staff")
        before = await _stored_hash(engine, "ann")
        assert isinstance(await new.authenticate("ann", PASSWORD, "192.0.2.7"), Account)
        after = await _stored_hash(engine, "ann")
        assert after != before and after.startswith("$argon2id$") and not new.hasher.check_needs_rehash(after)
        assert (await _audit(engine))[-1][2] == "from 192.0.2.7 (password rehashed)"
        assert isinstance(await new.authenticate("ann", PASSWORD, "192.0.2.7"), Account)
        assert await _stored_hash(engine, "ann") == after  # no second rehash
    finally:
        await old.writer.close()
        await new.writer.close()


# --- the throttle's rules and the [accounts] section ---------------------------------------------


def test_throttle_rules() -> None:
    first = after_failure(None, T0, SETTINGS)
    assert first == Throttle(1, T0, None)
    later = after_failure(Throttle(4, T0, None), T0 + timedelta(minutes=14), SETTINGS)
    assert later.failures == 5 and later.locked_until == T0 + timedelta(minutes=29)
    # A window that has passed starts the count again.
    assert after_failure(Throttle(4, T0, None), T0 + timedelta(minutes=15), SETTINGS).failures == 1
    assert after_failure(Throttle(5, T0, T0 + timedelta(minutes=15)), T0 + timedelta(minutes=16),
                         SETTINGS) == Throttle(1, T0 + timedelta(minutes=16), None)
    assert [failure_delay(n, SETTINGS) for n in range(7)] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


def test_accounts_config_section() -> None:
    assert parse_config({}).accounts == AccountSettings()
    read = parse_config({"accounts": {"max_failures": 3, "failure_window_seconds": 60, "lockout_seconds": 120,
                                      "failure_delay_seconds": 0, "max_failure_delay_seconds": 2,
                                      "min_password_length": 16}}).accounts
    assert read == AccountSettings(3, 60.0, 120.0, 0.0, 2.0, 16)
    for bad, message in [({"max_failurs": 3}, "unknown key 'max_failurs'"),
                         ({"max_failures": 0}, "max_failures must be an integer at least 1"),
                         ({"lockout_seconds": 0}, "lockout_seconds must be a number above 0"),
                         ({"min_password_length": 8}, "min_password_length must be an integer at least 12")]:
        with pytest.raises(ConfigError, match=message):
            parse_config({"accounts": bad})
