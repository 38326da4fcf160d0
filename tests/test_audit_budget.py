"""The per-address budget of audit rows (gateway/transport/audit_budget.py), with a clock in hand."""

from __future__ import annotations

import pytest

from gateway.transport.audit_budget import AuditBudget, Dropped


def test_each_address_gets_its_rows_per_window_and_drops_are_summarised_once_it_ends():
    budget = AuditBudget(per_window=2, window=60.0)
    assert [budget.admit("10.0.0.1", t)[0] for t in (0, 1, 2, 3)] == [True, True, False, False]
    assert budget.admit("10.0.0.2", 4) == (True, [])  # another address has its own budget
    # The first address's window is over: its drops come back as one summary, and it starts afresh.
    admitted, summaries = budget.admit("10.0.0.1", 61)
    assert admitted and summaries == [Dropped("10.0.0.1", 2, 2, 60.0)]
    assert "2 further audit entries from 10.0.0.1" in summaries[0].text()
    assert budget.drain() == []  # nothing else was dropped


def test_tracked_addresses_are_bounded_and_an_evicted_window_still_reports_its_drops():
    budget = AuditBudget(per_window=1, window=60.0, max_sources=2)
    budget.admit("a", 0)
    assert budget.admit("a", 1)[0] is False
    budget.admit("b", 2)
    admitted, summaries = budget.admit("c", 3)  # "a" is closed early to make room
    assert admitted and summaries == [Dropped("a", 1, 1, 60.0)]
    budget.admit("c", 4)
    assert budget.drain() == [Dropped("c", 1, 1, 60.0)]


def test_a_budget_needs_sensible_settings():
    with pytest.raises(ValueError):
        AuditBudget(per_window=0)
