"""The lending side: list, request page, the lender's actions, messages and notes."""

from __future__ import annotations

ROUTES: list[tuple[str, str, object]] = []
