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
from typing import Any, Sequence

from aiohttp import web

from ..config import ApiKey
from ..config.api_keys import read_api_keys
from .errors import ApiError

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
    def __init__(self, entries: Sequence[ApiKey | dict[str, Any]]):
        # Tables are read (and refused with a ConfigError) as the config reads [[api_keys]].
        self._keys = [_Key(key.digest, Principal(key.name, key.role)) for key in read_api_keys(entries)]

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
