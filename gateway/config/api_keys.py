"""[[api_keys]]: who may use the staff API, each key kept only as its SHA-256 digest."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

from .table import ConfigError, Table, entries

ROLES = ("read-only", "staff", "admin")


@dataclass(frozen=True)
class ApiKey:
    name: str
    role: str
    digest: bytes  # sha256 of the key


def read_api_keys(value: Sequence[Any]) -> tuple[ApiKey, ...]:
    """Entries as tables (or already read `ApiKey`s); one key may not be configured twice."""
    keys: list[ApiKey] = []
    for i, entry in enumerate(entries("[[api_keys]]", value)):
        key = entry if isinstance(entry, ApiKey) else _api_key(i, entry)
        if any(k.digest == key.digest for k in keys):
            raise ConfigError(f"[[api_keys]] entry {i + 1}: the same key is configured twice")
        keys.append(key)
    return tuple(keys)


def _api_key(index: int, entry: Any) -> ApiKey:
    where = f"[[api_keys]] entry {index + 1}"
    table = Table(where, entry)
    role = table.choice("role", "read-only", ROLES)
    name = str(table.value("name", None) or f"key{index + 1}")
    if ":" in name or not name.strip() or len(name) > 190:
        raise ConfigError(f"{where}: name must be 1-190 characters, without ':'")
    if "key" in table:
        key = table.value("key")
        if not isinstance(key, str) or len(key) < 8:
            raise ConfigError(f"{where}: key must be a string of at least 8 characters")
        digest = hashlib.sha256(key.encode()).digest()
    elif "key_sha256" in table:
        try:
            digest = bytes.fromhex(str(table.value("key_sha256")))
        except ValueError:
            raise ConfigError(f"{where}: key_sha256 must be hex") from None
        if len(digest) != 32:
            raise ConfigError(f"{where}: key_sha256 must be 64 hex digits")
    else:
        raise ConfigError(f"{where} needs key or key_sha256")
    table.done()
    return ApiKey(name, role, digest)
