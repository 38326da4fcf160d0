"""ISO 18626 code lists.

Closed lists are enumerations in the schemas: a value outside them is invalid. Each enum
lists the values of the 2021 schema; `only_2021` names those the 2017 (v1.2) schema lacks.

Open lists (type_schemeValuePair) accept any string, with an optional scheme; the gateway keeps
no list of their recommended values and never checks a value against one.
"""

from __future__ import annotations

from enum import StrEnum


class Version(StrEnum):
    """The two schema revisions we speak. The value is what we write in `ill:version`."""

    V2017 = "1.2"
    V2021 = "2021-2"

    @property
    def label(self) -> str:
        return "2017" if self is Version.V2017 else "2021"


class ClosedCode(StrEnum):
    """A closed ISO 18626 code list; `values_for(version)` is what that schema accepts."""

    @classmethod
    def only_2021(cls) -> frozenset[str]:
        return frozenset()

    @classmethod
    def values_for(cls, version: Version) -> list[str]:
        skip = cls.only_2021() if version is Version.V2017 else frozenset()
        return [member.value for member in cls if member.value not in skip]


class Status(ClosedCode):
    RequestReceived = "RequestReceived"
    ExpectToSupply = "ExpectToSupply"
    WillSupply = "WillSupply"
    Loaned = "Loaned"
    Overdue = "Overdue"
    Recalled = "Recalled"
    RetryPossible = "RetryPossible"
    Unfilled = "Unfilled"
    HoldReturn = "HoldReturn"
    ReleaseHoldReturn = "ReleaseHoldReturn"
    CopyCompleted = "CopyCompleted"
    LoanCompleted = "LoanCompleted"
    CompletedWithoutReturn = "CompletedWithoutReturn"
    Cancelled = "Cancelled"

    @classmethod
    def only_2021(cls) -> frozenset[str]:
        return frozenset({"HoldReturn", "ReleaseHoldReturn"})


class Action(ClosedCode):
    StatusRequest = "StatusRequest"
    Received = "Received"
    Cancel = "Cancel"
    Renew = "Renew"
    ShippedReturn = "ShippedReturn"
    ShippedForward = "ShippedForward"
    Notification = "Notification"
    HoldReturn = "HoldReturn"
    Lost = "Lost"

    @classmethod
    def only_2021(cls) -> frozenset[str]:
        return frozenset({"HoldReturn", "Lost"})


class ReasonForMessage(ClosedCode):
    RequestResponse = "RequestResponse"
    StatusRequestResponse = "StatusRequestResponse"
    RenewResponse = "RenewResponse"
    CancelResponse = "CancelResponse"
    StatusChange = "StatusChange"
    Notification = "Notification"


class ErrorType(ClosedCode):
    UnsupportedActionType = "UnsupportedActionType"
    UnsupportedReasonForMessageType = "UnsupportedReasonForMessageType"
    UnrecognisedDataElement = "UnrecognisedDataElement"
    UnrecognisedDataValue = "UnrecognisedDataValue"
    BadlyFormedMessage = "BadlyFormedMessage"


class MessageStatus(ClosedCode):
    OK = "OK"
    ERROR = "ERROR"


class RequestType(ClosedCode):
    New = "New"
    Retry = "Retry"
    Reminder = "Reminder"


class RequestSubType(ClosedCode):
    BookingRequest = "BookingRequest"
    MultipleItemRequest = "MultipleItemRequest"
    PatronRequest = "PatronRequest"
    TransferRequest = "TransferRequest"
    SupplyingLibrarysChoice = "SupplyingLibrarysChoice"


class ServiceType(ClosedCode):
    Copy = "Copy"
    Loan = "Loan"
    CopyOrLoan = "CopyOrLoan"


class YesNo(ClosedCode):
    Y = "Y"
    N = "N"


class PreferredEdition(ClosedCode):
    """2021 only: the whole list is absent from the 2017 schema."""

    MostRecentEdition = "MostRecentEdition"
    ThisEdition = "ThisEdition"
    AnyEdition = "AnyEdition"


CLOSED_CODE_LISTS: dict[str, type[ClosedCode]] = {
    "status": Status,
    "action": Action,
    "reasonForMessage": ReasonForMessage,
    "errorType": ErrorType,
    "messageStatus": MessageStatus,
    "requestType": RequestType,
    "requestSubType": RequestSubType,
    "serviceType": ServiceType,
    "yesNo": YesNo,
    "preferredEdition": PreferredEdition,
}
