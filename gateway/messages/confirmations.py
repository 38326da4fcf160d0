"""Builders for the three confirmation kinds.

A confirmation echoes the confirmed message's agencies, request id and (2017) multiple-item id;
`timestamp` is when we confirm and `timestampReceived` echoes the confirmed message's own
timestamp. A supplyingAgencyMessageConfirmation echoes reasonForMessage, a
requestingAgencyMessageConfirmation echoes action.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lxml import etree

from . import model
from .clip import ERROR_VALUE_LENGTH, clip
from .codec import parse_datetime
from .codes import Action, ReasonForMessage, Version
from .faults import Fault
from .lengths import AGENCY_ID_LENGTH, REQUEST_ID_LENGTH
from .plan import Q

CONFIRMATION_OF = {
    "request": model.RequestConfirmation,
    "supplyingAgencyMessage": model.SupplyingAgencyMessageConfirmation,
    "requestingAgencyMessage": model.RequestingAgencyMessageConfirmation,
}


@dataclass(slots=True)
class Echo:
    """What a confirmation repeats of the message it confirms."""

    kind: str = "request"
    supplying_agency_id: model.AgencyId | None = None
    requesting_agency_id: model.AgencyId | None = None
    requesting_agency_request_id: str | None = None
    multiple_item_request_id: str | None = None
    timestamp: datetime | None = None
    action: Action | None = None
    reason_for_message: ReasonForMessage | None = None

    @classmethod
    def of(cls, message: Any) -> "Echo":
        header = message.header
        return cls(
            kind=message.KIND,
            supplying_agency_id=header.supplying_agency_id,
            requesting_agency_id=header.requesting_agency_id,
            requesting_agency_request_id=header.requesting_agency_request_id,
            multiple_item_request_id=header.multiple_item_request_id,
            timestamp=header.timestamp,
            action=getattr(message, "action", None),
            reason_for_message=getattr(getattr(message, "message_info", None), "reason_for_message", None),
        )

    @classmethod
    def salvage(cls, root: etree._Element | None, kind: str | None) -> "Echo":
        """Best effort for a message that failed validation: read what looks right, skip the rest."""
        echo = cls(kind=kind if kind in CONFIRMATION_OF else "request")
        if root is None:
            return echo
        header = _first(root.iter(Q + "header"))
        if header is not None:
            echo.supplying_agency_id = _agency(header.find(Q + "supplyingAgencyId"))
            echo.requesting_agency_id = _agency(header.find(Q + "requestingAgencyId"))
            # Clipped: what failed may be a value far longer than the gateway accepts.
            echo.requesting_agency_request_id = clip(header.findtext(Q + "requestingAgencyRequestId"),
                                                     REQUEST_ID_LENGTH)
            echo.multiple_item_request_id = clip(header.findtext(Q + "multipleItemRequestId"), REQUEST_ID_LENGTH)
            echo.timestamp = _datetime(header.findtext(Q + "timestamp"))
        echo.action = Action._value2member_map_.get(_text(root, "action"))  # type: ignore[assignment]
        echo.reason_for_message = ReasonForMessage._value2member_map_.get(  # type: ignore[assignment]
            _text(root, "reasonForMessage")
        )
        return echo


def _first(items):
    return next(iter(items), None)


def _text(root: etree._Element, local: str) -> str | None:
    el = _first(root.iter(Q + local))
    return el.text.strip() if el is not None and el.text else None


def _agency(el: etree._Element | None) -> model.AgencyId | None:
    if el is None:
        return None
    kind, value = el.findtext(Q + "agencyIdType"), el.findtext(Q + "agencyIdValue")
    if kind is None or value is None:
        return None
    kind = clip(kind.strip(), AGENCY_ID_LENGTH // 2)
    return model.AgencyId(model.SchemeValue(kind), clip(value.strip(), AGENCY_ID_LENGTH - len(kind) - 1))


def _datetime(text: str | None) -> datetime | None:
    try:
        return parse_datetime(text) if text else None
    except ValueError:
        return None


def confirmation(echo: Echo, now: datetime, faults: list[Fault] = (), version: Version = Version.V2017) -> Any:
    """The confirmation model object: OK without faults, ERROR with them."""
    header = model.ConfirmationHeader(
        supplying_agency_id=echo.supplying_agency_id,
        requesting_agency_id=echo.requesting_agency_id,
        timestamp=now,
        requesting_agency_request_id=echo.requesting_agency_request_id,
        multiple_item_request_id=echo.multiple_item_request_id if version is Version.V2017 else None,
        timestamp_received=echo.timestamp or now,
        message_status=model.MessageStatus.ERROR if faults else model.MessageStatus.OK,
    )
    limit = 1 if version is Version.V2017 else len(faults)
    errors = [model.ErrorData(f.error_type, clip(f.error_value, ERROR_VALUE_LENGTH)) for f in list(faults)[:limit]]
    cls = CONFIRMATION_OF[echo.kind]
    result = cls(confirmation_header=header, error_data=errors)
    if cls is model.SupplyingAgencyMessageConfirmation:
        result.reason_for_message = echo.reason_for_message
    elif cls is model.RequestingAgencyMessageConfirmation:
        result.action = _supported_action(echo.action, version)
    return result


def _supported_action(action: Action | None, version: Version) -> Action | None:
    # Never echo a value the confirmation's own schema would refuse.
    return action if action is None or action.value in Action.values_for(version) else None
