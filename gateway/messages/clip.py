"""Cut inbound text before it is repeated: in an echo, an errorValue or an audit entry
(docs/inbound-limits.md). A partner's value is never copied back or kept whole when too long."""

from __future__ import annotations

QUOTED_VALUE_LENGTH = 100  # of an offending value quoted in an errorValue
ERROR_VALUE_LENGTH = 1000  # of a whole errorValue


def clip(text: str | None, limit: int) -> str | None:
    """`text` cut to at most `limit` characters, marked as cut with its full length."""
    if text is None or len(text) <= limit:
        return text
    marker = f"...[{len(text)} characters]"
    return text[:max(0, limit - len(marker))] + marker


def quoted(value: str) -> str:
    """repr() of an offending value, clipped so that an errorValue stays short."""
    return repr(clip(value, QUOTED_VALUE_LENGTH))
