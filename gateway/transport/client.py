"""The outbound ISO 18626 client: POST one message to a partner and classify what came back.

`PartnerClient.send(partner, kind, body)` never raises for anything the network or the partner
does; it returns one of:

- `Confirmed(confirmation, raw)` - the partner answered with the confirmation of the right kind
  and `messageStatus=OK`: the message arrived and was accepted.
- `Refused(confirmation, raw, error_type, error_value)` - the right confirmation kind with
  `messageStatus=ERROR`: the partner understood the message and refused it. Sending it again
  would not help.
- `TransportError(reason, status, raw)` - we can't tell whether the partner has the message:
  connection refused, timeout, an HTTP status other than 2xx, a response that is not an ISO 18626
  confirmation of the right kind. The outbox retries these.

The request carries `Content-Type: application/xml; charset=utf-8`, the partner's outbound
credentials (`transport.auth.outbound_headers`: bearer token and/or HMAC signature) and is bounded
by the partner's `timeout_seconds` (connect, send and read together).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..config import Partner
from ..messages import MessageError, MessageStatus, decode
from ..messages.inbound import Limits
from .auth import outbound_headers

__all__ = [
    "CONFIRMATION_KIND",
    "CONTENT_TYPE",
    "Confirmed",
    "PartnerClient",
    "Refused",
    "SendOutcome",
    "TransportError",
    "classify_response",
]

CONTENT_TYPE = "application/xml; charset=utf-8"
MAX_RESPONSE_BYTES = 1024 * 1024

# The confirmation each message kind must be answered with.
CONFIRMATION_KIND = {
    "request": "requestConfirmation",
    "supplyingAgencyMessage": "supplyingAgencyMessageConfirmation",
    "requestingAgencyMessage": "requestingAgencyMessageConfirmation",
}


@dataclass(frozen=True, slots=True)
class Confirmed:
    """`messageStatus=OK`: delivered."""

    confirmation: Any  # model.RequestConfirmation / ...MessageConfirmation
    raw: bytes

    ok = True


@dataclass(frozen=True, slots=True)
class Refused:
    """`messageStatus=ERROR`: the partner understood the message and refused it (no retry)."""

    confirmation: Any
    raw: bytes
    error_type: str | None
    error_value: str | None

    ok = False

    @property
    def reason(self) -> str:
        text = f"partner refused the message: {self.error_type or 'ERROR'}"
        return f"{text}: {self.error_value}" if self.error_value else text


@dataclass(frozen=True, slots=True)
class TransportError:
    """Delivery unknown: retry later."""

    reason: str
    status: int | None = None  # the HTTP status, when there was a response
    raw: bytes | None = None  # the response body, when there was one

    ok = False


SendOutcome = Confirmed | Refused | TransportError


def classify_response(kind: str, status: int, raw: bytes) -> SendOutcome:
    """Classify a partner's HTTP answer to a message of `kind` (pure; no I/O)."""
    if not 200 <= status < 300:
        return TransportError(f"HTTP {status}", status=status, raw=raw or None)
    expected = CONFIRMATION_KIND.get(kind)
    if expected is None:
        raise ValueError(f"not an ISO 18626 message kind that is confirmed: {kind!r}")
    if not raw.strip():
        return TransportError(f"HTTP {status} with an empty body, not a {expected}", status=status)
    try:
        inbound = decode(raw, limits=Limits(max_bytes=MAX_RESPONSE_BYTES))
    except MessageError as exc:
        return TransportError(f"response is not a valid ISO 18626 {expected}: {exc}", status=status, raw=raw)
    if inbound.kind != expected:
        return TransportError(f"response is a {inbound.kind}, not a {expected}", status=status, raw=raw)
    confirmation = inbound.message
    if confirmation.confirmation_header.message_status is MessageStatus.OK:
        return Confirmed(confirmation, raw)
    errors = confirmation.error_data or []
    first = errors[0] if errors else None
    return Refused(
        confirmation,
        raw,
        error_type=first.error_type.value if first is not None else None,
        error_value=first.error_value if first is not None else None,
    )


class PartnerClient:
    """One aiohttp session shared by every delivery (connection reuse per partner host).

    Create it inside the running event loop, or let the first `send` do so; `close()` when done.
    """

    def __init__(self, *, max_connections: int = 100, max_response_bytes: int = MAX_RESPONSE_BYTES,
                 user_agent: str = "iso18626-gateway"):
        self.max_connections = max_connections
        self.max_response_bytes = max_response_bytes
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections),
                headers={"User-Agent": self.user_agent},
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, partner: Partner, kind: str, body: bytes, *, url: str | None = None) -> SendOutcome:
        """POST `body` (a message of `kind`) to `url` (default: the partner's configured url)."""
        await self.start()
        assert self._session is not None
        target = url or partner.url
        headers = {"Content-Type": CONTENT_TYPE, "Accept": "application/xml, text/xml"}
        headers.update(outbound_headers(partner.credentials, body))
        timeout = partner.timeout_seconds
        try:
            async with self._session.post(
                target, data=body, headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                raw = await self._read(response)
                if raw is None:
                    return TransportError(
                        f"response larger than {self.max_response_bytes} bytes", status=response.status
                    )
                return classify_response(kind, response.status, raw)
        except asyncio.TimeoutError:
            return TransportError(f"timeout: no answer from {target} within {timeout:g} s")
        except aiohttp.ClientConnectorError as exc:
            return TransportError(f"connection refused or unreachable: {target}: {exc.os_error or exc}")
        except aiohttp.ClientError as exc:
            return TransportError(f"HTTP client error talking to {target}: {type(exc).__name__}: {exc}")
        except OSError as exc:
            return TransportError(f"network error talking to {target}: {exc}")

    async def _read(self, response: aiohttp.ClientResponse) -> bytes | None:
        limit = self.max_response_bytes
        if response.content_length is not None and response.content_length > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)
