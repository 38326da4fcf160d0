"""Limits for slow, idle and too many HTTP clients, enforced below aiohttp (docs/http-limits.md).

aiohttp has no timeout for a request's headers or body, and no cap on connections: a client
that sends one header byte every few seconds (slowloris), or opens thousands of connections and
sends half a request, holds a socket and a file descriptor for as long as it likes. Here:

- `ConnectionGuard` wraps aiohttp's protocol factory. Each connection gets a `GuardedProtocol`
  in front of aiohttp's own: it refuses a connection over the total or per-address cap with a
  503, and closes a connection that has not delivered a request's headers `header_timeout`
  after the request's first byte (or after connecting), or that sits idle `keepalive_timeout`
  after a response.
- `guard_middleware` tells the protocol when a request's headers are complete (the handler is
  about to run) and when its answer is sent, and gives the body `body_timeout` from the end of
  the headers to arrive in full: past that the reading handler gets a 408 and the connection
  is closed.
- `LimitedRunner` is aiohttp's AppRunner with the guard in place; `gateway.app.run` serves with it.

Every refusal and timeout is logged through one `ThrottledLog`: a line per kind per interval.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..config import ServerLimits
from .throttled_log import ThrottledLog

log = logging.getLogger(__name__)
LIMITS = web.AppKey("server_limits", ServerLimits)
RESOURCE_LOG = web.AppKey("resource_log", ThrottledLog)
FD_RESERVE = 100  # descriptors kept for the database, log files and listening sockets


def _refusal() -> bytes:
    body = b"too many connections; try again later\n"
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 5\r\n"
            b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


REFUSAL = _refusal()


def address_key(peername: Any) -> str:
    """Whom a connection counts against: its IPv4 address, or its IPv6 /64 (one host's share)."""
    host = peername[0] if isinstance(peername, tuple) and peername else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return str(host)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def fd_ceiling(wanted: int) -> int:
    """`wanted`, kept FD_RESERVE below this process's soft limit on open files."""
    try:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return wanted
    if soft == resource.RLIM_INFINITY or soft - FD_RESERVE >= wanted:
        return wanted
    return max(1, soft - FD_RESERVE)


class ConnectionGuard:
    """A protocol factory for `loop.create_server`, in front of aiohttp's `web.Server`; anything
    else the runner asks of the server (shutdown, connections) goes to the server."""

    def __init__(self, server: web.Server, limits: ServerLimits, resource_log: ThrottledLog):
        self.server, self.limits, self.resource_log = server, limits, resource_log
        self.max_connections = fd_ceiling(limits.max_connections)
        if self.max_connections < limits.max_connections:
            log.warning("max_connections lowered from %d to %d: the open-files limit is too low for more",
                        limits.max_connections, self.max_connections)
        self.open = 0
        self.by_address: Counter[str] = Counter()

    def __call__(self) -> "GuardedProtocol":
        return GuardedProtocol(self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.server, name)

    def admit(self, key: str) -> str | None:
        """Count a new connection from `key` in, or say why it is refused."""
        if self.open >= self.max_connections:
            return f"{self.open} connections open, the cap is {self.max_connections} (max_connections)"
        if self.by_address[key] >= self.limits.max_connections_per_address:
            return (f"{key} has {self.by_address[key]} connections open, the cap is "
                    f"{self.limits.max_connections_per_address} (max_connections_per_address)")
        self.open += 1
        self.by_address[key] += 1
        return None

    def release(self, key: str) -> None:
        self.open -= 1
        self.by_address[key] -= 1
        if self.by_address[key] <= 0:
            del self.by_address[key]


class GuardedProtocol(asyncio.Protocol):
    """One connection: admission, then aiohttp's RequestHandler behind a header/idle timer."""

    def __init__(self, guard: ConnectionGuard):
        self.guard = guard
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.key = ""
        self.active = 0  # requests whose handler runs or whose answer is being sent
        self.awaiting_headers = True  # a request has begun (or the connection is new), headers not complete
        self.close_when_done = False
        self.timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.key = address_key(transport.get_extra_info("peername"))
        refused = self.guard.admit(self.key)
        if refused:
            self.guard.resource_log.report("connection refused", refused, logging.ERROR)
            transport.write(REFUSAL)  # type: ignore[attr-defined]
            transport.close()
            return
        self.inner = self.guard.server()
        self.inner.connection_made(transport)
        self._arm(self.guard.limits.header_timeout, "header timeout")

    def data_received(self, data: bytes) -> None:
        if self.inner is None or self.close_when_done:
            return
        if self.active == 0 and not self.awaiting_headers:
            # The first byte of the next request on a kept-alive connection: its headers start now.
            self.awaiting_headers = True
            self._arm(self.guard.limits.header_timeout, "header timeout")
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self.inner is not None:
            self.guard.release(self.key)
            inner, self.inner = self.inner, None
            inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    # -- told by guard_middleware -------------------------------------------------------------

    def request_started(self) -> None:
        self.active += 1
        self.awaiting_headers = False
        self._disarm()

    def request_finished(self, _task: Any = None) -> None:
        self.active -= 1
        if self.close_when_done and self.transport is not None:
            self.transport.close()
        elif self.active == 0 and self.inner is not None:
            self._arm(self.guard.limits.keepalive_timeout, "idle timeout")

    # -- the timer ------------------------------------------------------------------------------

    def _arm(self, seconds: float, kind: str) -> None:
        self._disarm()
        self.timer = asyncio.get_running_loop().call_later(seconds, self._expire, seconds, kind)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expire(self, seconds: float, kind: str) -> None:
        self.timer = None
        transport = self.transport
        if self.active or transport is None or transport.is_closing():
            return
        if transport.get_write_buffer_size():  # the last answer is still going out: not idle yet
            self._arm(seconds, kind)
            return
        what = "no complete request headers" if self.awaiting_headers else "no new request"
        self.guard.resource_log.report(kind, f"closed connections with {what} within {seconds:g} s "
                                             f"(last from {self.key})")
        transport.close()


def guarded_protocol_of(request: web.BaseRequest) -> GuardedProtocol | None:
    transport = request.transport
    protocol = transport.get_protocol() if transport is not None else None
    return protocol if isinstance(protocol, GuardedProtocol) else None


class BodyTimeout(web.HTTPRequestTimeout):
    def __init__(self, seconds: float):
        super().__init__(text=f"the request body did not arrive within {seconds:g} s\n",
                         headers={"Connection": "close"})


@web.middleware
async def guard_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Outermost middleware: the request's headers are complete; time its body."""
    protocol = guarded_protocol_of(request)
    if protocol is not None:
        protocol.request_started()
        request.task.add_done_callback(protocol.request_finished)  # after the answer is written
    timer = None
    if protocol is not None and request.body_exists and not request.content.is_eof():
        limits, resource_log = request.app[LIMITS], request.app[RESOURCE_LOG]

        def body_late() -> None:
            if request.content.is_eof() or protocol.inner is None:
                return
            resource_log.report("body timeout", f"a request body did not arrive within {limits.body_timeout:g} s "
                                                f"({request.method} {request.path} from {request.remote})")
            protocol.close_when_done = True  # the rest of the body is dropped, the answer closes the connection
            request.content.set_exception(BodyTimeout(limits.body_timeout))  # what the reading handler gets
            request.content.feed_eof()  # so aiohttp does not linger to read the rest of it

        timer = asyncio.get_running_loop().call_later(limits.body_timeout, body_late)
    try:
        return await handler(request)
    finally:
        if timer is not None:
            timer.cancel()


class LimitedRunner(web.AppRunner):
    """aiohttp's AppRunner with every connection behind a `GuardedProtocol`."""

    def __init__(self, app: web.Application, **kwargs: Any):
        limits = app[LIMITS]
        kwargs.setdefault("keepalive_timeout", limits.keepalive_timeout)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return ConnectionGuard(server, self.app[LIMITS], self.app[RESOURCE_LOG])  # type: ignore[return-value]


RESOURCE_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def resource_error_handler(resource_log: ThrottledLog) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """An event-loop exception handler: running out of descriptors or memory (asyncio reports a
    failed accept() that way, once a second per listening socket, with a traceback each time)
    becomes one throttled line; anything else goes to the loop's default handler."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS:
            resource_log.report("out of resources", f"{context.get('message', 'error')}: {exc}", logging.ERROR)
        else:
            loop.default_exception_handler(context)

    return handle


def install(app: web.Application, limits: ServerLimits) -> None:
    """The limits, the shared resource log and the middleware on `app` (before any other middleware)."""
    app[LIMITS] = limits
    app[RESOURCE_LOG] = ThrottledLog(log, limits.log_interval)
    app.middlewares.insert(0, guard_middleware)
