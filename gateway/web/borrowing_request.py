"""A borrowing request's page (/borrowing/{id}) and its tabs, each at its own URL."""

from __future__ import annotations

ROUTES: list[tuple[str, str, object]] = []
