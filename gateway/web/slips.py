"""Printable slips: pull slips (lending), book straps (received borrowing items), batches."""

from __future__ import annotations

ROUTES: list[tuple[str, str, object]] = []
