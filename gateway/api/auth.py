"""API keys with roles, from the config's `[[api_keys]]`:

    [[api_keys]]
    key = "a long random secret"     # or key_sha256 = "<hex sha256 of the key>", to keep it out of the file
    role = "staff"                   # read-only | staff | admin
    name = "ann"                     # who: writes are recorded as "staff:ann"

Clients send `Authorization: Bearer <key>`. The presented key is hashed and compared with every
configured key's hash in constant time (no early exit, so timing tells nothing about which or
how many keys exist). Roles: `read-only` may only GET; `staff` may also write; `admin` is staff
plus the admin endpoints. No `[[api_keys]]` configured: every API call except the OpenAPI
document is refused (401).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..config import ConfigError
from .errors import ApiError

ROLES = ("read-only", "staff", "admin")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PATHS = frozenset({"/api/v1/openapi.json"})
# Where the middleware puts the caller's Principal on the request (RequestKey on aiohttp >= 3.12).
PRINCIPAL: Any = web.RequestKey("api_principal", object) if hasattr(web, "RequestKey") else "api_principal"


@dataclass(frozen=True)
class Principal:
    name: str
    role: str

    @property
    def actor(self) -> str:
        """How writes by this key are recorded in the history."""
        return f"staff:{self.name}"

    @property
    def can_write(self) -> bool:
        return self.role in ("staff", "admin")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class _Key:
    digest: bytes
    principal: Principal


class KeyRing:
    def __init__(self, entries: list[dict[str, Any]]):
        self._keys: list[_Key] = []
        seen: set[bytes] = set()
        for i, entry in enumerate(entries):
            where = f"[[api_keys]] entry {i + 1}"
            if not isinstance(entry, dict):
                raise ConfigError(f"{where} must be a table")
            role = entry.get("role", "read-only")
            if role not in ROLES:
                raise ConfigError(f"{where}: role must be one of {', '.join(ROLES)}, got {role!r}")
            name = str(entry.get("name") or f"key{i + 1}")
            if ":" in name or not name.strip() or len(name) > 190:
                raise ConfigError(f"{where}: name must be 1-190 characters, without ':'")
            if "key" in entry:
                key = entry["key"]
                if not isinstance(key, str) or len(key) < 8:
                    raise ConfigError(f"{where}: key must be a string of at least 8 characters")
                digest = hashlib.sha256(key.encode()).digest()
            elif "key_sha256" in entry:
                try:
                    digest = bytes.fromhex(str(entry["key_sha256"]))
                except ValueError:
                    raise ConfigError(f"{where}: key_sha256 must be hex") from None
                if len(digest) != 32:
                    raise ConfigError(f"{where}: key_sha256 must be 64 hex digits")
            else:
                raise ConfigError(f"{where} needs key or key_sha256")
            if digest in seen:
                raise ConfigError(f"{where}: the same key is configured twice")
            seen.add(digest)
            self._keys.append(_Key(digest, Principal(name, role)))

    def __len__(self) -> int:
        return len(self._keys)

    def principals(self) -> list[Principal]:
        return [k.principal for k in self._keys]

    def lookup(self, presented: str) -> Principal | None:
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        found: Principal | None = None
        for key in self._keys:  # every key, always: constant time in the number of keys
            if hmac.compare_digest(digest, key.digest):
                found = key.principal
        return found


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": 'Bearer realm="gateway"'})


def authenticate(request: web.Request, ring: KeyRing) -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise _unauthorized("send an API key: Authorization: Bearer <key>")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("the Authorization header must be 'Bearer <key>'")
    principal = ring.lookup(token.strip())
    if principal is None:
        raise _unauthorized("unknown API key")
    return principal


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def require_admin(request: web.Request) -> Principal:
    principal = principal_of(request)
    if not principal.is_admin:
        raise ApiError(403, "forbidden", f"role {principal.role} may not do this; it needs admin")
    return principal


def auth_middleware(ring: KeyRing) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/api/") or request.path in PUBLIC_PATHS:
            return await handler(request)
        principal = authenticate(request, ring)
        if request.method not in READ_METHODS and not principal.can_write:
            raise ApiError(403, "forbidden", f"role {principal.role} may only read (GET)")
        request[PRINCIPAL] = principal
        return await handler(request)

    return middleware
