"""Numbers that come from outside (query parameters, path segments, headers, listen addresses).

One rule for all of them: ASCII digits only, with an optional leading minus. Python's own
`str.isdigit()` and `int()` disagree with each other and with that rule: `"²".isdigit()` is true
but `int("²")` raises, and `int("٣")` (an Arabic-Indic digit) is 3. Checking with one and
converting with the other turned a superscript digit into an HTTP 500; here both steps are
one regular expression over `[0-9]` (not `\\d`, which takes every script's digits).

This module imports nothing of the project, so the API and the transport can both use it.
"""

from __future__ import annotations

import re

_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
# Longer than any bound we check against (2**63 has 19 digits), short enough that int() is cheap.
MAX_LENGTH = 40


class NumberError(ValueError):
    """The text is not an acceptable number; the message says why, for an error naming the input."""


def parse_int(text: str, low: int, high: int) -> int:
    """The integer `text` spells in ASCII digits, within [low, high]; NumberError otherwise."""
    if not isinstance(text, str) or len(text) > MAX_LENGTH or not _INTEGER.fullmatch(text):
        raise NumberError("must be an integer (ASCII digits)")
    value = int(text)
    if not low <= value <= high:
        raise NumberError(f"must be between {low} and {high}")
    return value


def is_decimal_text(text: str) -> bool:
    """True for `[-]digits[.digits]` in ASCII (what `Decimal()` is then given; Decimal() itself
    also takes other scripts' digits, exponents, underscores, NaN and Infinity)."""
    return len(text) <= MAX_LENGTH and _DECIMAL.fullmatch(text) is not None
