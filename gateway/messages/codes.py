"""ISO 18626 code lists.

Closed lists are enumerations in the schemas: a value outside them is invalid. Each enum
lists the values of the 2021 schema; `only_2021` names those the 2017 (v1.2) schema lacks.

Open lists (type_schemeValuePair) accept any string; `OPEN_CODE_LISTS` holds the values the
maintenance agency recommends, for look-ups only. The parser never enforces them.
"""

from __future__ import annotations

from enum import Enum, StrEnum


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


# --- open code lists: recommended values (2017 lists, scheme URIs ending -V1.0) -------------

_OCL = "http://illtransactions.org/ISO18626/OpenCodeList/"


class OpenCodeList(Enum):
    """An open list: its scheme URI and recommended values. Advisory only."""

    def __init__(self, scheme: str, values: tuple[str, ...]):
        self.scheme = scheme
        self.values = frozenset(values)

    def recommends(self, value: str) -> bool:
        return value in self.values

    AGENCY_ID_TYPE = (_OCL + "AgencyIdTypeList-V1.0", ("DNUCNI", "ISIL"))
    BIBLIOGRAPHIC_ITEM_ID_CODE = (_OCL + "BibliographicItemIdCodeList-V1.0", ("ISBN", "ISSN", "ISMN"))
    BIBLIOGRAPHIC_RECORD_ID_CODE = (
        _OCL + "BibliographicRecordIdCodeList-V1.0",
        ("AMICUS", "BL", "FAUST", "JNB", "LA", "LCCN", "Medline", "NCID", "OCLC", "PMID", "TP"),
    )
    BILLING_METHOD = (
        _OCL + "BillingMethodList-V1.0",
        ("Account", "FreeOfCharge", "Invoice", "Other", "ReciprocityAgreement"),
    )
    COPYRIGHT_COMPLIANCE = (
        _OCL + "CopyrightComplianceList-V1.0",
        (
            "AU-CopyRCatS183ComW", "AU-CopyRCatS183State", "AU-CopyrightActS49",
            "AU-CopyrightActS50\u20131", "AU-CopyrightActS50\u20137A", "AU-CopyrightActS50\u20137B",
            "AU-CopyrightCleared", "AU-GenBus", "NZ-CopyrightActS54", "NZ-CopyrightActS55", "Other",
            "UK-CopyRFeePaid", "UK-FairDealing", "US-CCG", "US-CCL",
        ),
    )
    FORMAT = (
        _OCL + "DeliveredFormatList-V1.0",
        (
            "Blu-ray", "Braille", "CassetteTape", "CD", "CD-ROM", "Daisy-ROM", "DVD", "JPEG",
            "LargePrint", "LP", "Microform", "MP3", "Multimedia", "PaperCopy", "PDF", "Printed",
            "Tape", "TIFF", "VHS",
        ),
    )
    ELECTRONIC_ADDRESS_TYPE = (_OCL + "ElectronicAddressType-V1.0", ("Chat", "Email", "FTP", "Skype"))
    LOAN_CONDITION = (
        _OCL + "LoanConditionList-V1.0",
        ("LibraryUseOnly", "NoReproduction", "SignatureRequired", "SpecCollSupervReq", "WatchLibraryUseOnly"),
    )
    PATRON_TYPE = (
        _OCL + "PatronTypeList-V1.0",
        ("Adult", "Child", "Faculty", "GraduateStudent", "Researcher", "Staff", "Student", "UnderGraduateStudent"),
    )
    PAYMENT_METHOD = (
        _OCL + "PaymentMethodList-V1.0",
        ("BankTransfer", "CreditCard", "DebitCard", "EFTS", "IBS", "IIBS", "IFLAVoucher", "IFM", "LAPS", "Paypal"),
    )
    PUBLICATION_TYPE = (
        _OCL + "PublicationTypeList-V1.0",
        (
            "ArchiveMaterial", "Article", "AudioBook", "Book", "Chapter", "ConferenceProc", "Game",
            "GovernmentPubl", "Image", "Journal", "Manuscript", "Map", "Movie", "MusicRecording",
            "MusicScore", "Newspaper", "Patent", "Report", "SoundRecording", "Thesis",
        ),
    )
    REASON_RETRY = (
        _OCL + "ReasonRetryList-V1.0",
        (
            "AtBindery", "CostExceedsMaxCost", "LoanPossible", "NotCurrentAvailableForILL",
            "NotFoundAsCited", "OnLoan", "OnOrder", "ReqDelDateNotPossible", "ReqDelMethodNotSupp",
        ),
    )
    REASON_UNFILLED = (
        _OCL + "ReasonUnfilledList-V1.0",
        ("NonCirculating", "NotAvailableForILL", "NotHeld", "NotOnShelf", "PolicyProblem", "PoorCondition"),
    )
    SENT_VIA = (
        _OCL + "SentViaList-V1.0",
        ("ArticleExchange", "Ariel", "Email", "Mail", "Odyssey", "URL", "FTP"),
    )
    SERVICE_LEVEL = (
        _OCL + "ServiceLevelList-V1.0",
        ("Express", "Normal", "Rush", "SecondaryMail", "Standard", "Urgent"),
    )


# Which open list each schemeValuePair element draws from (element local name -> list).
OPEN_LIST_OF_ELEMENT: dict[str, OpenCodeList] = {
    "agencyIdType": OpenCodeList.AGENCY_ID_TYPE,
    "bibliographicItemIdentifierCode": OpenCodeList.BIBLIOGRAPHIC_ITEM_ID_CODE,
    "bibliographicRecordIdentifierCode": OpenCodeList.BIBLIOGRAPHIC_RECORD_ID_CODE,
    "billingMethod": OpenCodeList.BILLING_METHOD,
    "copyrightCompliance": OpenCodeList.COPYRIGHT_COMPLIANCE,
    "deliveredFormat": OpenCodeList.FORMAT,
    "preferredFormat": OpenCodeList.FORMAT,
    "itemFormat": OpenCodeList.FORMAT,
    "electronicAddressType": OpenCodeList.ELECTRONIC_ADDRESS_TYPE,
    "loanCondition": OpenCodeList.LOAN_CONDITION,
    "patronType": OpenCodeList.PATRON_TYPE,
    "paymentMethod": OpenCodeList.PAYMENT_METHOD,
    "publicationType": OpenCodeList.PUBLICATION_TYPE,
    "reasonRetry": OpenCodeList.REASON_RETRY,
    "reasonUnfilled": OpenCodeList.REASON_UNFILLED,
    "sentVia": OpenCodeList.SENT_VIA,
    "deliveryMethod": OpenCodeList.SENT_VIA,
    "serviceLevel": OpenCodeList.SERVICE_LEVEL,
}
