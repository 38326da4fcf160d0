"""Length limits on the inbound values the gateway keeps or repeats (docs/inbound-limits.md).

The ISO 18626 schemas put no length on any string, but the store keeps agency ids, request ids
and reason codes in bounded columns. A value over its limit is refused while decoding, as
UnrecognisedDataValue naming the element, so it never reaches the database (PostgreSQL would
fail the whole transaction, SQLite would keep it) and is never echoed whole. The same limits
clip what a confirmation repeats of a message that could not be decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .codes import ErrorType
from .faults import Fault
from .model import AgencyId, SchemeValue
from .spec import camel

AGENCY_ID_LENGTH = 200  # "TYPE:VALUE", as the store writes an agency
REQUEST_ID_LENGTH = 200
CODE_LENGTH = 64  # open code values kept as codes (reasonUnfilled, reasonRetry)


@dataclass(frozen=True, slots=True)
class Bound:
    fields: tuple[str, ...]  # model attributes from the message down to the value
    limit: int

    @property
    def element(self) -> str:
        return "/".join(camel(f) for f in self.fields)


BOUNDS = (
    Bound(("header", "supplying_agency_id"), AGENCY_ID_LENGTH),
    Bound(("header", "requesting_agency_id"), AGENCY_ID_LENGTH),
    Bound(("header", "consortial_id"), AGENCY_ID_LENGTH),
    Bound(("header", "requesting_agency_request_id"), REQUEST_ID_LENGTH),
    Bound(("header", "supplying_agency_request_id"), REQUEST_ID_LENGTH),
    Bound(("header", "multiple_item_request_id"), REQUEST_ID_LENGTH),
    Bound(("message_info", "reason_unfilled"), CODE_LENGTH),
    Bound(("message_info", "reason_retry"), CODE_LENGTH),
)


def _value(message: Any, fields: tuple[str, ...]) -> Any:
    value = message
    for name in fields:
        value = getattr(value, name, None)
        if value is None:
            return None
    return value


def length_faults(message: Any, kind: str) -> list[Fault]:
    """A fault for each bounded element of a decoded message whose value is too long."""
    faults = []
    for bound in BOUNDS:
        value = _value(message, bound.fields)
        if isinstance(value, AgencyId):  # stored as TYPE:VALUE, so that is what must fit
            text, what = str(value), "agencyIdType:agencyIdValue"
        else:
            text, what = (value.value if isinstance(value, SchemeValue) else value), "value"
        if isinstance(text, str) and len(text) > bound.limit:
            faults.append(Fault(ErrorType.UnrecognisedDataValue,
                                f"/ISO18626Message/{kind}/{bound.element}: {what} is {len(text)} characters "
                                f"long; this gateway accepts at most {bound.limit}"))
    return faults
