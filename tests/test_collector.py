"""A serving process's garbage collector (gateway/transport/collector.py)."""

from __future__ import annotations

import gc

from gateway.transport import collector


def test_tune_freezes_what_lives_and_collects_the_young_less_often() -> None:
    thresholds = gc.get_threshold()
    try:
        collector.tune()
        assert gc.get_freeze_count() > 1000  # modules, classes, schemas: never scanned again
        young, older, oldest = gc.get_threshold()
        assert young == collector.YOUNG_THRESHOLD and (older, oldest) == thresholds[1:]
        cycle: list = []
        cycle.append(cycle)  # garbage in a reference cycle is still collected
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
