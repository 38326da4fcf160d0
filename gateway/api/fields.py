"""The borrowing form's fields as the API reads them: JSON values -> typed RequestDetails values.

One table (`FIELDS`), derived from `RequestDetails` and the `borrowing_requests` columns, drives
the parsing of create / edit / retry bodies, the patron workform and the OpenAPI schemas, so the
three never disagree. Every text value is checked for what the database or the ISO 18626 XML
would refuse later (NUL and other control characters, lone surrogates, over-long values), so a
bad value is a 422 naming the field, never a 500.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, dataclass, fields
from datetime import date, datetime, time, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from ..core import RequestDetails
from ..store.models import borrowing_requests_t
from ..strict_numbers import is_decimal_text
from .errors import ApiError

TEXT_LIMIT = 4000  # Text columns: a sane bound for a form field
# Characters XML 1.0 cannot carry (the outgoing ISO message would not encode), plus NUL for the DB.
_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
# The same rules as JSON Schema patterns for the OpenAPI document.
BAD_CLASS = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\ufffe\\uffff"  # (lone surrogates too: not expressible)
TEXT_PATTERN = f"^[^{BAD_CLASS}]*$"
LINE_PATTERN = f"^[^{BAD_CLASS}\\n\\r]*$"
# Whitespace as Python's str.strip() sees it (not JSON Schema's \\s, which differs on \\x85, \\ufeff).
WS = "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
REQUIRED_TEXT_PATTERN = f"^[^{BAD_CLASS}]*[^{WS}{BAD_CLASS}][^{BAD_CLASS}]*$"
REQUIRED_LINE_PATTERN = f"^[^{BAD_CLASS}\\n\\r]*[^{WS}{BAD_CLASS}][^{BAD_CLASS}\\n\\r]*$"
AGENCY_PATTERN = f"^[A-Za-z0-9]+:[^{WS}{BAD_CLASS}]+$"
KEY_PATTERN = f"^[^{WS}{BAD_CLASS}](?:[^{BAD_CLASS}\\n\\r]*[^{WS}{BAD_CLASS}])?$"  # no spaces around
FORMATS = ("Physical", "Digital")
MAX_FEE = Decimal("9999999999.99")  # Numeric(12, 2)
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_AGENCY = re.compile(AGENCY_PATTERN)


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # text | bool | date | decimal | currency | format | identifiers
    max_length: int | None = None
    required: bool = False
    default: Any = None

    def json_schema(self, *, nullable: bool = True) -> dict[str, Any]:
        if self.kind == "bool":
            return {"type": "boolean"}
        if self.kind == "date":
            schema: dict[str, Any] = {"type": "string", "format": "date"}
        elif self.kind == "decimal":
            options: list[dict[str, Any]] = [
                {"type": "number", "minimum": 0, "maximum": float(MAX_FEE), "multipleOf": 0.01},
                {"type": "string", "pattern": r"^\s*[0-9]{1,10}(\.[0-9]{1,2})?\s*$"},
            ]
            if nullable:
                options.append({"type": "null"})
            return {"anyOf": options, "description": "an amount with at most 2 decimal places (number or string)"}
        elif self.kind == "currency":
            schema = {"type": "string", "pattern": "^[A-Z]{3}$"}
        elif self.kind == "format":
            schema = {"type": "string", "enum": list(FORMATS)}
        elif self.kind == "identifiers":
            line = text_pattern(required=True, multiline=False)
            return {"type": "array", "maxItems": 20, "items": {
                "type": "object", "additionalProperties": False, "required": ["type", "value"],
                "properties": {"type": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": line},
                               "value": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": line}}}}
        else:
            schema = {"type": "string", "maxLength": self.max_length or TEXT_LIMIT,
                      "pattern": text_pattern(required=self.required, multiline=self.max_length is None)}
            if self.required:
                schema["minLength"] = 1
        if nullable and not self.required and self.kind not in ("format",):
            schema = {**schema, "type": [schema["type"], "null"] if isinstance(schema["type"], str)
                      else [*schema["type"], "null"]}
            if "enum" in schema:
                schema["enum"] = [*schema["enum"], None]
        return schema


def text_pattern(*, required: bool = False, multiline: bool = True) -> str:
    """The JSON Schema pattern of what `check_text` accepts."""
    if required:
        return REQUIRED_TEXT_PATTERN if multiline else REQUIRED_LINE_PATTERN
    return TEXT_PATTERN if multiline else LINE_PATTERN


def _kind(name: str, annotation: str) -> str:
    if name == "other_identifiers":
        return "identifiers"
    if name == "format":
        return "format"
    if name == "currency":
        return "currency"
    if annotation.startswith("bool"):
        return "bool"
    if annotation.startswith("date"):
        return "date"
    if annotation.startswith("Decimal"):
        return "decimal"
    return "text"


def _build() -> dict[str, Field]:
    table: dict[str, Field] = {}
    for f in fields(RequestDetails):
        column = borrowing_requests_t.c.get(f.name)
        length = getattr(getattr(column, "type", None), "length", None)
        default = None if f.default is MISSING else f.default
        table[f.name] = Field(f.name, _kind(f.name, str(f.type)), length, f.default is MISSING and
                              f.default_factory is MISSING, default)  # type: ignore[misc]
    return table


FIELDS: dict[str, Field] = _build()
REQUIRED = tuple(name for name, f in FIELDS.items() if f.required)


# --- value checks -------------------------------------------------------------------------------


def check_text(value: Any, field: str, *, max_length: int | None = TEXT_LIMIT, required: bool = False,
               allow_newlines: bool = True) -> str | None:
    """A JSON string fit for the database and for XML; '' and whitespace become None."""
    if value is None:
        if required:
            raise ApiError(422, "invalid_field", "is required", field)
        return None
    if not isinstance(value, str):
        raise ApiError(422, "invalid_field", "must be a string", field)
    if _BAD_CHARS.search(value) or (not allow_newlines and ("\n" in value or "\r" in value)):
        raise ApiError(422, "invalid_field", "contains characters that are not allowed", field)
    if max_length is not None and len(value) > max_length:
        raise ApiError(422, "invalid_field", f"is longer than {max_length} characters", field)
    value = value.strip()
    if not value:
        if required:
            raise ApiError(422, "invalid_field", "is required", field)
        return None
    return value


def check_bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ApiError(422, "invalid_field", "must be true or false", field)
    return value


def parse_date(value: Any, field: str) -> date | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ApiError(422, "invalid_field", "must be a date YYYY-MM-DD", field)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(422, "invalid_field", "is not a valid date", field) from None


def parse_instant(value: str, field: str, *, end: bool = False) -> datetime:
    """A query bound: a date (start of that day, or with end=True the start of the next) or an
    ISO 8601 datetime (without a zone: UTC)."""
    text = value.strip()
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.min, tzinfo=timezone.utc)
            if end:
                from datetime import timedelta
                if day == date.max:
                    return datetime.max.replace(tzinfo=timezone.utc)
                moment += timedelta(days=1)
            return moment
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ][0-9:.,+\-Z]+", text):
            raise ValueError(text)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        raise ApiError(422, "invalid_field", "must be a date YYYY-MM-DD or an ISO 8601 datetime", field) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise ApiError(422, "invalid_field", "is out of range", field) from None


def parse_decimal(value: Any, field: str) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ApiError(422, "invalid_field", "must be a decimal amount", field)
    if isinstance(value, float) and value == value and abs(value) < 1e12 and abs(round(value, 2) - value) < 1e-6:
        value = f"{value:.2f}"  # 0.07 arrives as 0.07000000000000001: binary floats, cents meant
    text = str(value).strip()
    try:
        # A string is ASCII [-]digits[.digits]: Decimal() alone also takes other scripts' digits.
        if isinstance(value, str) and not is_decimal_text(text):
            raise InvalidOperation(text)
        amount = Decimal(text)
    except InvalidOperation:
        raise ApiError(422, "invalid_field", "must be a decimal amount", field) from None
    if not amount.is_finite() or amount < 0 or amount > MAX_FEE:
        raise ApiError(422, "invalid_field", f"must be between 0 and {MAX_FEE}", field)
    if amount != amount.quantize(Decimal("0.01")):
        raise ApiError(422, "invalid_field", "has more than 2 decimal places", field)
    return amount.quantize(Decimal("0.01"))


def check_agency(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _AGENCY.fullmatch(value) or len(value) > 200 or _BAD_CHARS.search(value):
        raise ApiError(422, "invalid_field", "must be an agency id 'TYPE:VALUE', e.g. 'ISIL:XX-1'", field)
    return value


def parse_field(name: str, value: Any, field: str | None = None) -> Any:
    """One form field, JSON -> the RequestDetails value (may raise ApiError 422)."""
    spec = FIELDS[name]
    field = field or name
    if spec.kind == "bool":
        return check_bool(value, field)
    if spec.kind == "date":
        return parse_date(value, field)
    if spec.kind == "decimal":
        return parse_decimal(value, field)
    if spec.kind == "currency":
        text = check_text(value, field, max_length=3)
        if text is not None and not _CURRENCY.fullmatch(text):
            raise ApiError(422, "invalid_field", "must be a 3-letter ISO 4217 currency code", field)
        return text
    if spec.kind == "format":
        if not isinstance(value, str):
            raise ApiError(422, "invalid_field", f"must be one of {', '.join(FORMATS)}", field)
        for known in FORMATS:
            if value.strip().casefold() == known.casefold():
                return known
        raise ApiError(422, "invalid_field", f"must be one of {', '.join(FORMATS)}", field)
    if spec.kind == "identifiers":
        if value is None:
            return ()
        if not isinstance(value, list) or len(value) > 20:
            raise ApiError(422, "invalid_field", "must be a list of {type, value} (at most 20)", field)
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, dict) or set(item) != {"type", "value"}:
                raise ApiError(422, "invalid_field", "each item must be {type, value}", f"{field}[{i}]")
            kind = check_text(item["type"], f"{field}[{i}].type", max_length=64, required=True,
                              allow_newlines=False)
            ident = check_text(item["value"], f"{field}[{i}].value", max_length=200, required=True,
                               allow_newlines=False)
            out.append((kind, ident))
        return tuple(out)
    text = check_text(value, field, max_length=spec.max_length or TEXT_LIMIT, required=spec.required,
                      allow_newlines=spec.max_length is None)
    if text is None and spec.default is not None:
        return spec.default
    return text


def parse_fields(body: dict[str, Any], *, allowed: set[str] | None = None, prefix: str = "") -> dict[str, Any]:
    """All form fields present in `body` (others must have been removed by the caller)."""
    out: dict[str, Any] = {}
    for name, value in body.items():
        if name not in FIELDS or (allowed is not None and name not in allowed):
            raise ApiError(422, "invalid_field", "is not a field of a borrowing request", prefix + name)
        out[name] = parse_field(name, value, prefix + name)
    return out


def details_json(details: RequestDetails) -> dict[str, Any]:
    """RequestDetails -> the JSON the API returns (same names and shapes as it accepts)."""
    out: dict[str, Any] = {}
    for name in FIELDS:
        value = getattr(details, name)
        if name == "other_identifiers":
            value = [{"type": t, "value": v} for t, v in value]
        elif isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = str(value)
        out[name] = value
    return out
