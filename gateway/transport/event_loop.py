"""The event loop a gateway process runs on: uvloop where it is installed, else asyncio's own.

uvloop (libuv, in C) does the socket reads and writes, timers and callbacks that every inbound
message and every database round trip costs. It is a dependency of the project on Linux and
macOS; elsewhere the standard loop runs the same code. Measured in bench/bench_inbound.py
(README, Benchmarks): about 7-10 % more messages per second on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

try:
    import uvloop
except ImportError:  # not built for this platform
    uvloop = None


def name() -> str:
    return "uvloop" if uvloop is not None else "asyncio"


def new_event_loop() -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the gateway's event loop."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
