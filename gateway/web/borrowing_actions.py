"""The borrowing actions and their workforms (cancel, receive, ...), posted from the request page."""

from __future__ import annotations

ROUTES: list[tuple[str, str, object]] = []
