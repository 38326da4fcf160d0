"""Live updates: server-sent events that tell an open page its request or list changed."""

from __future__ import annotations

ROUTES: list[tuple[str, str, object]] = []
