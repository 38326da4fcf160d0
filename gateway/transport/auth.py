"""Partner authentication on the wire (docs/architecture.md, partner authentication).

Per partner, in config under `[partners.credentials]`:

    inbound  = { bearer_token, hmac_secret, account_id, security_code, allow_ips = [...] }
    outbound = { bearer_token, hmac_secret, account_id, security_code }

`inbound` is what the partner must present to us, `outbound` what we present to them.
HMAC: header `X-ISO18626-Timestamp: <unix seconds>` and
`X-ISO18626-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`; a timestamp
more than `HMAC_WINDOW` away from now is refused, and so is a signature already used
(transport/replay.py keeps them in the database).
Secrets are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from dataclasses import dataclass
from typing import Any, Mapping

from ..strict_numbers import NumberError, parse_int

TIMESTAMP_HEADER = "X-ISO18626-Timestamp"
SIGNATURE_HEADER = "X-ISO18626-Signature"
HMAC_WINDOW = 300  # seconds either side
MAX_TIMESTAMP = 2**63 - 1


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def outbound_headers(credentials: Mapping[str, Any], body: bytes, now: float | None = None) -> dict[str, str]:
    """HTTP headers we send to a partner, from its `outbound` credentials."""
    out = credentials.get("outbound", {}) if credentials else {}
    headers: dict[str, str] = {}
    if out.get("bearer_token"):
        headers["Authorization"] = f"Bearer {out['bearer_token']}"
    if out.get("hmac_secret"):
        stamp = str(int(now if now is not None else time.time()))
        headers[TIMESTAMP_HEADER] = stamp
        headers[SIGNATURE_HEADER] = signature(out["hmac_secret"], stamp, body)
    return headers


@dataclass(frozen=True)
class AuthFailure(Exception):
    status: int  # 401 or 403
    reason: str


@dataclass(frozen=True)
class Signed:
    """A request whose HMAC signature checked out (the replay guard, transport/replay.py, decides
    whether it was used before)."""

    signature: str
    timestamp: int  # unix seconds, from the request's timestamp header


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def check_transport(credentials: Mapping[str, Any], headers: Mapping[str, str], body: bytes, peer_ip: str | None,
                    now: float | None = None) -> Signed | None:
    """Raise AuthFailure unless the HTTP-level credentials of this partner are satisfied; the
    checked signature when the partner signs its requests (for the replay guard)."""
    inbound = credentials.get("inbound", {}) if credentials else {}
    now = time.time() if now is None else now
    allow = inbound.get("allow_ips")
    if allow:
        try:
            address = ipaddress.ip_address(peer_ip or "")
        except ValueError:
            raise AuthFailure(403, "client address unknown") from None
        if not any(address in ipaddress.ip_network(net, strict=False) for net in allow):
            raise AuthFailure(403, f"address {peer_ip} is not allowed for this partner")
    if inbound.get("bearer_token"):
        given = headers.get("Authorization", "")
        token = given[7:] if given.startswith("Bearer ") else None
        if not _same(token, inbound["bearer_token"]):
            raise AuthFailure(401, "missing or wrong bearer token")
    if inbound.get("hmac_secret"):
        stamp, sig = headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER)
        if not stamp or not sig:
            raise AuthFailure(401, "missing HMAC signature headers")
        try:
            seconds = parse_int(stamp, 0, MAX_TIMESTAMP)
        except NumberError as exc:
            raise AuthFailure(401, f"{TIMESTAMP_HEADER} {exc} (unix seconds)") from None
        if abs(now - seconds) > HMAC_WINDOW:
            raise AuthFailure(401, "HMAC timestamp outside the allowed window")
        if not _same(sig, signature(inbound["hmac_secret"], stamp, body)):
            raise AuthFailure(401, "wrong HMAC signature")
        return Signed(sig, int(stamp))
    return None


def check_account(credentials: Mapping[str, Any], account_id: str | None, security_code: str | None) -> str | None:
    """The reason requestingAgencyAuthentication fails, or None when it passes (or is not configured)."""
    inbound = credentials.get("inbound", {}) if credentials else {}
    expected_account, expected_code = inbound.get("account_id"), inbound.get("security_code")
    if expected_account is None and expected_code is None:
        return None
    ok = True
    if expected_account is not None:
        ok &= _same(account_id, expected_account)
    if expected_code is not None:
        ok &= _same(security_code, expected_code)
    return None if ok else "requestingAgencyAuthentication accountId/securityCode not accepted"
