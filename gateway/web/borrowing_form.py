"""The request form: a manual request (/borrowing/new) and editing General information."""

from __future__ import annotations

ROUTES: list[tuple[str, str, object]] = []
