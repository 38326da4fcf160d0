"""`gateway serve` runs on uvloop where it is installed (gateway/transport/event_loop.py)."""

from __future__ import annotations

import asyncio

import pytest

from gateway.transport import event_loop


def test_run_gives_the_coroutines_result_on_the_gateways_loop() -> None:
    async def main() -> str:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()).__module__

    module = event_loop.run(main())
    if event_loop.name() == "uvloop":
        assert module.startswith("uvloop")
    else:
        assert module.startswith("asyncio")


def test_uvloop_is_installed_where_the_project_declares_it() -> None:
    pytest.importorskip("uvloop", reason="uvloop is not built for this platform")
    assert event_loop.name() == "uvloop"
