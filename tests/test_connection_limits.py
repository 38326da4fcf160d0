"""Slow, idle and numerous clients against a real gateway on loopback (SQLite and PostgreSQL),
served as `gateway serve` serves it (gateway.app.serve), with the limits lowered for the test.

Bounded: at most a few dozen connections, every wait under a few seconds. Client connections
come from 127.0.0.1, 127.0.0.2 and 127.0.0.3 (all loopback) to be different addresses.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from gateway.app import build_app, serve
from gateway.runtime import Gateway
from gateway.config import ConfigError, ServerLimits, parse_config
from gateway.transport.connection_guard import address_key, fd_ceiling
from gateway.transport.throttled_log import ThrottledLog

from support.gateway_helpers import OURS

LIMITS = {"header_timeout_seconds": 0.6, "body_timeout_seconds": 0.6, "keepalive_timeout_seconds": 0.6,
          "max_connections": 30, "max_connections_per_address": 10, "resource_log_interval_seconds": 60}
GUARD_LOG = "gateway.transport.connection_guard"


def config(db_url: str, **limits):
    return parse_config({"gateway": {"agency": OURS, "listen": "127.0.0.1:0", "database": db_url, **LIMITS, **limits},
                         "partners": [{"agency": "ISIL:DK-1", "url": "http://127.0.0.1:9/iso18626"}],
                         "api_keys": [{"key": "stream-key-1", "role": "staff", "name": "s"}]}, env={})


@pytest.fixture
async def server(db_url):
    """A function starting the gateway with some limits changed; (port, gateway)."""
    runners = []

    async def start(**limits):
        gateway = Gateway.create(config(db_url, **limits))
        runner, port = await serve(build_app(gateway), "127.0.0.1", 0)
        runners.append(runner)
        return port, gateway

    yield start
    for runner in runners:
        await runner.cleanup()


async def connect(port: int, source: str = "127.0.0.1"):
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), 5)


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the server sent until it closed the connection; fails if it stays open longer."""
    data = b""
    deadline = time.monotonic() + seconds
    while True:
        try:
            chunk = await asyncio.wait_for(reader.read(4096), max(0.01, deadline - time.monotonic()))
        except ConnectionResetError:
            return data
        except asyncio.TimeoutError:
            raise AssertionError(f"still open after {seconds} s; got {data!r}") from None
        if not chunk:
            return data
        data += chunk


async def healthz(port: int, source: str) -> tuple[int, float]:
    """(HTTP status, seconds) of GET /healthz from `source`."""
    started = time.monotonic()
    reader, writer = await connect(port, source)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
    data = await closed_within(reader, 5)
    writer.close()
    return int(data.split(b" ", 2)[1]), time.monotonic() - started


async def test_slowloris_headers_are_cut_off_after_the_header_timeout(server):
    port, _ = await server()
    clients = [await connect(port) for _ in range(8)]
    for _, writer in clients:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n")
    started = time.monotonic()

    async def trickle(writer):  # one more header line every 0.15 s, never the blank line
        for i in range(40):
            if writer.is_closing():
                return
            writer.write(b"X-Slow-%d: 1\r\n" % i)
            await asyncio.sleep(0.15)

    tricklers = [asyncio.create_task(trickle(w)) for _, w in clients]
    try:
        results = await asyncio.gather(*(closed_within(r, 3) for r, _ in clients))
    finally:
        for task in tricklers:
            task.cancel()
        for _, writer in clients:
            writer.close()
    assert results == [b""] * 8  # closed, never answered
    assert 0.5 <= time.monotonic() - started < 2.5


async def test_idle_connections_are_closed(server):
    port, _ = await server()
    silent = [await connect(port) for _ in range(5)]  # connect and say nothing
    reader, writer = await connect(port)  # one request, then keep the connection and say nothing more
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    await asyncio.gather(*(closed_within(r, 3) for r, _ in [*silent, (reader, writer)]))
    assert time.monotonic() - started < 2.5
    for _, w in [*silent, (reader, writer)]:
        w.close()


async def test_a_kept_alive_connection_serves_requests_within_the_limits(server):
    port, _ = await server()
    reader, writer = await connect(port)
    for _ in range(3):  # each request well within the timeouts, each pause shorter than keep-alive
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        await asyncio.sleep(0.3)
    writer.close()


async def test_a_slow_body_gets_408_and_the_connection_closes(server, caplog):
    port, _ = await server()
    caplog.set_level(logging.WARNING)
    reader, writer = await connect(port)
    writer.write(b"POST /iso18626 HTTP/1.1\r\nHost: gw\r\nContent-Type: application/xml\r\n"
                 b"Content-Length: 1000\r\n\r\n<ISO18626Message")
    started = time.monotonic()

    async def trickle():
        for _ in range(40):
            if writer.is_closing():
                return
            writer.write(b" ")
            await asyncio.sleep(0.1)

    task = asyncio.create_task(trickle())
    try:
        data = await closed_within(reader, 3)
    finally:
        task.cancel()
        writer.close()
    assert data.startswith(b"HTTP/1.1 408"), data
    assert 0.5 <= time.monotonic() - started < 2.5
    assert not [r for r in caplog.records if r.exc_info], "a timeout is not an error with a traceback"
    assert [r.getMessage() for r in caplog.records if r.name == GUARD_LOG and "body timeout" in r.getMessage()]


async def test_connection_caps_refuse_with_503_and_log_once_per_interval(server, caplog):
    port, _ = await server(header_timeout_seconds=30, keepalive_timeout_seconds=30)
    caplog.set_level(logging.INFO, logger=GUARD_LOG)
    held = [await connect(port, "127.0.0.1") for _ in range(10)]  # 127.0.0.1 at its cap
    for _, writer in held:
        writer.write(b"GET /healthz HTTP/1.1\r\n")  # half a request, as a slowloris holds it
    refused = []
    for _ in range(12):
        reader, writer = await connect(port, "127.0.0.1")
        refused.append(await closed_within(reader, 3))
        writer.close()
    assert all(r.startswith(b"HTTP/1.1 503") for r in refused), refused[:2]

    # Another address is still served, promptly, while 127.0.0.1 is at its cap.
    status, seconds = await healthz(port, "127.0.0.2")
    assert status == 200 and seconds < 1.0

    # Fill the total cap (30) from a third address; then everyone is refused, and served again
    # as soon as connections close.
    more = [await connect(port, "127.0.0.3") for _ in range(10)]
    extra = [await connect(port, "127.0.0.2") for _ in range(10)]
    reader, writer = await connect(port, "127.0.0.4")
    assert (await closed_within(reader, 3)).startswith(b"HTTP/1.1 503")
    writer.close()
    for _, writer in extra:
        writer.close()
    await asyncio.sleep(0.2)
    status, _ = await healthz(port, "127.0.0.4")
    assert status == 200

    refusals = [r for r in caplog.records if "connection refused" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelno == logging.ERROR, [r.getMessage() for r in refusals]
    assert "max_connections_per_address" in refusals[0].getMessage()
    for _, writer in [*held, *more]:
        writer.close()


def test_throttled_log_counts_repeats_within_the_interval(caplog):
    now = [0.0]
    throttled = ThrottledLog(logging.getLogger("throttle-test"), 10, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="throttle-test")
    for i in range(1000):
        now[0] = i * 0.005  # 1000 events in 5 s
        throttled.report("connection refused", f"event {i}")
    throttled.report("idle timeout", "other kind")
    now[0] = 10.5
    throttled.report("connection refused", "after the interval")
    assert [r.getMessage() for r in caplog.records] == [
        "connection refused: event 0", "idle timeout: other kind",
        "connection refused: after the interval (999 more since the last report)"]


def test_limits_come_from_the_gateway_section():
    assert parse_config({}, env={}).limits == ServerLimits()
    limits = parse_config({"gateway": {"header_timeout_seconds": 5, "max_connections_per_address": 7}}, env={}).limits
    assert limits.header_timeout == 5.0 and limits.max_connections_per_address == 7
    for bad in ({"max_connections": 0}, {"max_connections": 2.5}, {"body_timeout_seconds": "soon"},
                {"keepalive_timeout_seconds": -1}, {"max_connections_per_address": True}):
        with pytest.raises(ConfigError):
            parse_config({"gateway": bad}, env={})


def test_address_key_groups_ipv6_by_64_and_maps_ipv4():
    assert address_key(("127.0.0.1", 5000)) == "127.0.0.1"
    assert address_key(("2001:db8::1", 5000, 0, 0)) == address_key(("2001:db8::ffff", 1, 0, 0)) == "2001:db8::/64"
    assert address_key(("::ffff:10.0.0.1", 1, 0, 0)) == "10.0.0.1"
    assert address_key(None) == ""


def test_connection_cap_stays_below_the_open_files_limit():
    import resource
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert fd_ceiling(10) == 10
    if soft != resource.RLIM_INFINITY:
        assert fd_ceiling(soft * 2) == soft - 100


def test_out_of_descriptors_is_one_throttled_line(caplog):
    import errno

    from gateway.transport.connection_guard import resource_error_handler

    loop = asyncio.new_event_loop()
    try:
        handler = resource_error_handler(ThrottledLog(logging.getLogger("fd-test"), 60))
        caplog.set_level(logging.INFO)
        for _ in range(200):  # what asyncio reports while accept() keeps failing
            handler(loop, {"message": "socket.accept() out of system resource",
                           "exception": OSError(errno.EMFILE, "Too many open files")})
        handler(loop, {"message": "something else", "exception": ValueError("boom")})
    finally:
        loop.close()
    lines = [r for r in caplog.records if r.name == "fd-test"]
    assert len(lines) == 1 and "out of resources" in lines[0].getMessage() and lines[0].exc_info is None
    assert any("something else" in r.getMessage() for r in caplog.records if r.name == "asyncio")



def request_tasks() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if "_handle_request" in t.get_coro().__qualname__]


async def test_an_event_stream_ends_when_its_client_goes_away(server):
    """Not at its next heartbeat (15 s later) but at its next poll: a stream per vanished client
    would otherwise keep querying the database."""
    port, _ = await server(keepalive_timeout_seconds=30)
    reader, writer = await connect(port)
    writer.write(b"GET /api/v1/events?poll=1 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer stream-key-1\r\n"
                 b"Accept: text/event-stream\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
    assert len(request_tasks()) == 1
    writer.close()
    for _ in range(40):
        if not request_tasks():
            break
        await asyncio.sleep(0.1)
    assert request_tasks() == []
