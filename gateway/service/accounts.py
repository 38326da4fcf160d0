"""Staff accounts: add or update, list, disable, and sign-in verification for the staff pages.

Passwords are kept as Argon2id hashes (argon2-cffi, whose verify compares in constant time). An
unknown username is verified against a dummy hash, so it costs as much time as a wrong password.
Failed sign-ins are counted per username in the database (service/sign_in_throttle.py holds the
rules), so several gateway processes count together; each failure returns a growing delay for
the caller to await, and enough of them lock the username for a while. Every failure, lock and
successful sign-in is written to the audit trail (service/audit.py). Hashing runs in the event
loop's executor, outside any transaction.

Roles are the staff API's, under the names the pages use: `viewer` has the API's `read-only`
permissions, `staff` and `admin` the same-named ones (`API_ROLES`).
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection

from ..config import AccountSettings
from ..store import accounts as store
from .audit import AuditEntry, audit_step
from .borrowing import utc_now
from .sign_in_throttle import Throttle, after_failure, failure_delay
from .writer import Writer

ROLES = ("viewer", "staff", "admin")
API_ROLES = {"viewer": "read-only", "staff": "staff", "admin": "admin"}
USERNAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")
DISPLAY_NAME_LENGTH = 200
THROTTLE_KEY_LENGTH = 200  # sign_in_throttles.username: what was typed, which may be anything

T = TypeVar("T")


class AccountError(ValueError):
    """A username, role, display name or password that cannot be stored; the message says why."""


@dataclass(frozen=True)
class Account:
    username: str
    display_name: str
    role: str
    disabled: bool
    created_at: datetime
    last_sign_in_at: datetime | None

    @property
    def api_role(self) -> str:
        """The staff API role with the same permissions."""
        return API_ROLES[self.role]

    @property
    def actor(self) -> str:
        """How this person's actions are recorded in the history (as API keys' are)."""
        return f"staff:{self.username}"

    @classmethod
    def of(cls, row: Any) -> "Account":
        return cls(row.username, row.display_name, row.role, row.disabled, row.created_at, row.last_sign_in_at)


@dataclass(frozen=True)
class SignInRefused:
    reason: str  # unknown_user | wrong_password | disabled | locked (for the audit; show the person less)
    delay_seconds: float  # await this before answering
    locked_until: datetime | None = None


def normalise_username(username: str) -> str:
    return username.strip().lower()


def check_username(username: str) -> str:
    name = normalise_username(username)
    if not USERNAME.fullmatch(name):
        raise AccountError("a username is 1-64 characters: letters, digits and . _ @ - "
                           "(starting with a letter or digit); it is kept in lower case")
    return name


def check_password(password: str, settings: AccountSettings) -> None:
    if not password:
        raise AccountError("the password is empty")
    if len(password) < settings.min_password_length:
        raise AccountError(f"the password is too short: at least {settings.min_password_length} characters")


class AccountService:
    def __init__(self, writer: Writer, settings: AccountSettings = AccountSettings(),
                 clock: Callable[[], datetime] = utc_now, hasher: PasswordHasher | None = None):
        self.writer = writer
        self.settings = settings
        self.clock = clock
        self.hasher = hasher or PasswordHasher()  # argon2-cffi's default type is Argon2id
        self._dummy_hash: str | None = None

    # --- administration (the `gateway user` commands) ---------------------------------------------

    async def add(self, username: str, password: str, role: str, display_name: str | None = None,
                  actor: str = "system") -> tuple[Account, bool]:
        """Create the account, or update it (password, role, display name if given; enabled
        again); (the account, whether it was created)."""
        name = check_username(username)
        if role not in ROLES:
            raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if display_name is not None and not 0 < len(display_name.strip()) <= DISPLAY_NAME_LENGTH:
            raise AccountError(f"a display name is 1-{DISPLAY_NAME_LENGTH} characters")
        check_password(password, self.settings)
        password_hash = await self._in_executor(self.hasher.hash, password)
        now = self.clock()

        def step(conn: Connection) -> tuple[Account, bool]:
            values: dict[str, Any] = {"role": role, "password_hash": password_hash, "disabled": False}
            if display_name is not None:
                values["display_name"] = display_name.strip()
            elif store.find_account(conn, name) is None:
                values["display_name"] = name
            created = store.save_account(conn, name, values, now)
            audit_step([AuditEntry(actor, "account_created" if created else "account_updated",
                                   f"staff account {name} ({role})")], now)(conn)
            return Account.of(store.find_account(conn, name)), created

        return await self.writer.run(step)

    async def add_if_missing(self, username: str, password: str, role: str, display_name: str,
                             actor: str = "system") -> bool:
        """Create the account unless it exists; an existing one is left as it is. Safe when several
        processes start at once (one creates it, the others find it); True if created here."""
        name = check_username(username)
        check_password(password, self.settings)
        password_hash = await self._in_executor(self.hasher.hash, password)
        now = self.clock()

        def step(conn: Connection) -> bool:
            values = {"role": role, "password_hash": password_hash, "display_name": display_name}
            created = store.insert_account_if_missing(conn, name, values, now)
            if created:
                audit_step([AuditEntry(actor, "account_created", f"staff account {name} ({role})")], now)(conn)
            return created

        return await self.writer.run(step)

    async def find(self, username: str) -> Account | None:
        """The account (disabled ones too), or None."""
        name = normalise_username(username)
        row = await self._read(lambda conn: store.find_account(conn, name))
        return None if row is None else Account.of(row)

    async def accounts(self) -> list[Account]:
        return [Account.of(row) for row in await self._read(store.list_accounts)]

    async def disable(self, username: str, actor: str = "system") -> bool:
        """Disable the account (it can no longer sign in); False if there is none."""
        name = normalise_username(username)
        now = self.clock()

        def step(conn: Connection) -> bool:
            if not store.update_account(conn, name, {"disabled": True}, now):
                return False
            audit_step([AuditEntry(actor, "account_disabled", f"staff account {name}")], now)(conn)
            return True

        return await self.writer.run(step)

    # --- sign-in ---------------------------------------------------------------------------------

    async def authenticate(self, username: str, password: str, source_address: str) -> Account | SignInRefused:
        """The account if the password is right and the account may sign in, else a refusal
        whose delay the caller awaits before answering."""
        now = self.clock()
        name = normalise_username(username)
        key = name[:THROTTLE_KEY_LENGTH]
        row, throttle = await self._read(lambda conn: (store.find_account(conn, name) if USERNAME.fullmatch(name)
                                                       else None, _throttle(store.find_throttle(conn, key))))
        if throttle is not None and throttle.locked(now):
            return await self.writer.run(self._locked_step(name, throttle, source_address, now))
        stored = row.password_hash if row is not None else await self._dummy()
        right, new_hash = await self._in_executor(self._verify, stored, password)
        if row is None or not right or row.disabled:
            reason = "unknown_user" if row is None else "disabled" if row.disabled else "wrong_password"
            return await self.writer.run(self._failure_step(name, reason, source_address, now))
        return await self.writer.run(self._success_step(name, new_hash, source_address, now))

    def _verify(self, stored: str, password: str) -> tuple[bool, str | None]:
        """(right, a new hash if the hasher's parameters have changed since `stored` was made)."""
        try:
            self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False, None
        return True, self.hasher.hash(password) if self.hasher.check_needs_rehash(stored) else None

    def _locked_step(self, name: str, throttle: Throttle, source: str, now: datetime) -> Callable[[Connection], Any]:
        def step(conn: Connection) -> SignInRefused:
            self._audit(conn, name, "sign_in_failed", f"from {source}: locked until {_at(throttle.locked_until)}", now)
            return SignInRefused("locked", failure_delay(throttle.failures, self.settings), throttle.locked_until)

        return step

    def _failure_step(self, name: str, reason: str, source: str, now: datetime) -> Callable[[Connection], Any]:
        key = name[:THROTTLE_KEY_LENGTH]

        def step(conn: Connection) -> SignInRefused:
            store.prune_throttles(conn, now, timedelta(seconds=self.settings.failure_window_seconds))
            current = _throttle(store.lock_throttle(conn, key, now))
            state = after_failure(current, now, self.settings)
            store.save_throttle(conn, key, failures=state.failures, window_started_at=state.window_started_at,
                                locked_until=state.locked_until)
            self._audit(conn, name, "sign_in_failed", f"from {source}: {reason.replace('_', ' ')} "
                                                      f"(failure {state.failures} of {self.settings.max_failures})", now)
            if state.locked_until is not None and state.locked_until != current.locked_until:
                self._audit(conn, name, "sign_in_locked", f"after {state.failures} failed sign-ins: "
                                                          f"locked until {_at(state.locked_until)}", now)
            return SignInRefused("locked" if state.locked(now) else reason,
                                 failure_delay(state.failures, self.settings), state.locked_until)

        return step

    def _success_step(self, name: str, new_hash: str | None, source: str,
                      now: datetime) -> Callable[[Connection], Any]:
        def step(conn: Connection) -> Account | SignInRefused:
            # Another process may have locked the username since it was read.
            throttle = _throttle(store.find_throttle(conn, name))
            if throttle is not None and throttle.locked(now):
                return self._locked_step(name, throttle, source, now)(conn)
            store.clear_throttle(conn, name)
            store.record_sign_in(conn, name, now, new_hash)
            self._audit(conn, name, "sign_in", f"from {source}" + (" (password rehashed)" if new_hash else ""), now)
            return Account.of(store.find_account(conn, name))

        return step

    @staticmethod
    def _audit(conn: Connection, name: str, event: str, text: str, now: datetime) -> None:
        audit_step([AuditEntry(f"staff:{name}", event, text)], now)(conn)

    async def _dummy(self) -> str:
        """A hash made with the current parameters, to verify unknown usernames against."""
        if self._dummy_hash is None:
            self._dummy_hash = await self._in_executor(self.hasher.hash, secrets.token_urlsafe(24))
        return self._dummy_hash

    async def _read(self, query: Callable[[Connection], T]) -> T:
        async with self.writer.engine.connect() as conn:
            return await conn.run_sync(query)

    @staticmethod
    async def _in_executor(fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def _throttle(row: Any) -> Throttle | None:
    return None if row is None else Throttle(row.failures, row.window_started_at, row.locked_until)


def _at(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"
