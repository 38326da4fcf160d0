"""The typed ISO 18626 message model, one superset for both schema versions.

Field order is element order. Where the versions differ, the field says so (`v2017=`, `v2021=`
occurrence rules, a per-version `tag`), so one object can be written as either version.
Where an element was renamed between versions (preferredFormat -> itemFormat,
sentVia -> deliveryMethod, deliveredFormat -> itemFormat) the model has one field.
Values: str, int, bool, Decimal, datetime (aware), code enums, SchemeValue, nested dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import ClassVar

from .codes import (
    Action,
    ErrorType,
    MessageStatus,
    PreferredEdition,
    ReasonForMessage,
    RequestSubType,
    RequestType,
    ServiceType,
    Status,
    Version,
    YesNo,
)
from .spec import ABSENT, el, many, one, opt

V17, V21 = Version.V2017, Version.V2021
NOT_2017 = {"v2017": ABSENT}
NOT_2021 = {"v2021": ABSENT}


@dataclass(slots=True)
class SchemeValue:
    """An open-code value (type_schemeValuePair): free text plus an optional ill:scheme URI."""

    value: str
    scheme: str | None = None

    def __str__(self) -> str:
        return self.value


@dataclass(slots=True)
class AgencyId:
    agency_id_type: SchemeValue = one()
    agency_id_value: str = one()

    @classmethod
    def parse(cls, text: str) -> "AgencyId":
        """'ISIL:DK-820010' -> AgencyId; the TYPE:VALUE form used in config and the API."""
        kind, sep, value = text.partition(":")
        if not sep or not kind or not value:
            raise ValueError(f"agency id must look like TYPE:VALUE, got {text!r}")
        return cls(SchemeValue(kind), value)

    def __str__(self) -> str:
        return f"{self.agency_id_type.value}:{self.agency_id_value}"


@dataclass(slots=True)
class Costs:
    currency_code: SchemeValue = one()
    monetary_value: Decimal = one()


@dataclass(slots=True)
class Authentication:
    account_id: str | None = opt()
    security_code: str | None = opt()


# --- addresses ---------------------------------------------------------------------------

@dataclass(slots=True)
class ElectronicAddress:
    electronic_address_type: SchemeValue = one()
    electronic_address_data: str = one()


@dataclass(slots=True)
class PhysicalAddress:
    line1: str | None = opt()
    line2: str | None = opt()
    locality: str | None = opt()
    postal_code: str | None = opt()
    region: SchemeValue | None = opt(plain_string_in=(V21,))
    country: SchemeValue | None = opt()


@dataclass(slots=True)
class Address:
    """Exactly one of the two (an xs:choice)."""

    XML_CHOICE: ClassVar[bool] = True
    electronic_address: ElectronicAddress | None = opt()
    physical_address: PhysicalAddress | None = opt()


# --- headers -----------------------------------------------------------------------------
# v1.2 has one header for all three messages; 2021-2 gives each message its own.

@dataclass(slots=True)
class RequestHeader:
    supplying_agency_id: AgencyId | None = el(1, 1, v2021=(0, 1))
    requesting_agency_id: AgencyId = one()
    consortial_id: AgencyId | None = opt(**NOT_2017)
    multiple_item_request_id: str | None = el(1, 1, v2021=(0, 1), empty_when_missing=True)
    timestamp: datetime = one()
    requesting_agency_request_id: str = one()
    supplying_agency_request_id: str | None = opt(**NOT_2021)
    requesting_agency_authentication: Authentication | None = opt()


@dataclass(slots=True)
class SupplyingAgencyMessageHeader:
    supplying_agency_id: AgencyId = one()
    requesting_agency_id: AgencyId = one()
    multiple_item_request_id: str | None = one(**NOT_2021, empty_when_missing=True)
    timestamp: datetime = one()
    requesting_agency_request_id: str = one()
    supplying_agency_request_id: str | None = opt()
    requesting_agency_authentication: Authentication | None = opt(**NOT_2021)


@dataclass(slots=True)
class RequestingAgencyMessageHeader:
    supplying_agency_id: AgencyId = one()
    requesting_agency_id: AgencyId = one()
    consortial_id: AgencyId | None = opt(**NOT_2017)
    multiple_item_request_id: str | None = one(**NOT_2021, empty_when_missing=True)
    timestamp: datetime = one()
    requesting_agency_request_id: str = one()
    supplying_agency_request_id: str | None = opt()
    requesting_agency_authentication: Authentication | None = opt()


@dataclass(slots=True)
class ConfirmationHeader:
    supplying_agency_id: AgencyId | None = opt()
    requesting_agency_id: AgencyId | None = opt()
    timestamp: datetime = one()
    requesting_agency_request_id: str | None = opt()
    multiple_item_request_id: str | None = opt(**NOT_2021)
    timestamp_received: datetime = one()
    message_status: MessageStatus = one()


@dataclass(slots=True)
class ErrorData:
    error_type: ErrorType = one()
    error_value: str | None = opt()


# --- request -----------------------------------------------------------------------------

@dataclass(slots=True)
class BibliographicItemId:
    # 2021-2 swapped the order of these two children.
    XML_ORDER: ClassVar[dict] = {
        V21: ("bibliographic_item_identifier_code", "bibliographic_item_identifier"),
    }
    bibliographic_item_identifier: str = one()
    bibliographic_item_identifier_code: SchemeValue = one()


@dataclass(slots=True)
class BibliographicRecordId:
    bibliographic_record_identifier_code: SchemeValue = one()
    bibliographic_record_identifier: str = one()


@dataclass(slots=True)
class BibliographicInfo:
    supplier_unique_record_id: str | None = opt()
    title: str | None = opt()
    author: str | None = opt()
    author_id: str | None = opt(**NOT_2017)
    subtitle: str | None = opt()
    series_title: str | None = opt()
    edition: str | None = opt()
    title_of_component: str | None = opt()
    author_of_component: str | None = opt()
    volume: list[str] = many(v2017=(0, 1))
    issue: str | None = opt()
    pages_requested: str | None = opt()
    estimated_no_pages: str | None = opt()
    bibliographic_item_id: list[BibliographicItemId] = many()
    sponsor: str | None = opt()
    information_source: str | None = opt()
    bibliographic_record_id: list[BibliographicRecordId] = many()


@dataclass(slots=True)
class PublicationInfo:
    publisher: str | None = opt()
    publisher_id: str | None = opt(**NOT_2017)
    publication_type: SchemeValue | None = opt()
    publication_date: str | None = opt()
    place_of_publication: str | None = opt()


@dataclass(slots=True)
class ServiceInfo:
    request_type: RequestType | None = opt()
    request_sub_type: list[RequestSubType] = many(v2017=(0, 3))
    requesting_agency_previous_request_id: str | None = opt()
    service_type: ServiceType = one()
    service_level: SchemeValue | None = opt()
    item_format: SchemeValue | None = opt(tag={V17: "preferredFormat", V21: "itemFormat"})
    need_before_date: datetime | None = opt()
    copyright_compliance: SchemeValue | None = opt()
    any_edition: YesNo | None = opt()
    preferred_edition: PreferredEdition | None = opt(**NOT_2017)
    loan_condition: list[SchemeValue] = many(**NOT_2017)
    start_date: datetime | None = opt()
    end_date: datetime | None = opt()
    note: str | None = opt()


@dataclass(slots=True)
class SupplierInfo:
    sort_order: int | None = opt(non_negative_in=(V21,))
    supplier_code: AgencyId | None = opt()
    supplier_description: str | None = opt()
    bibliographic_record_id: BibliographicRecordId | None = opt()
    call_number: str | None = opt()
    summary_holdings: str | None = opt()
    availability_note: str | None = opt()


@dataclass(slots=True)
class RequestedDeliveryInfo:
    sort_order: int | None = opt(non_negative_in=(V21,))
    address: Address | None = opt()
    delivery_method: SchemeValue | None = opt(**NOT_2017)
    courier_name: SchemeValue | None = opt(**NOT_2017)


@dataclass(slots=True)
class RequestingAgencyInfo:
    name: str | None = opt()
    contact_name: str | None = opt()
    address: list[Address] = many()


@dataclass(slots=True)
class PatronInfo:
    patron_id: str | None = opt()
    surname: str | None = opt()
    given_name: str | None = opt()
    patron_type: SchemeValue | None = opt()
    send_to_patron: YesNo | None = opt()
    address: list[Address] = many()


@dataclass(slots=True)
class BillingInfo:
    payment_method: SchemeValue | None = opt()
    maximum_costs: Costs | None = opt()
    billing_method: SchemeValue | None = opt()
    billing_name: str | None = opt()
    address: Address | None = opt()


@dataclass(slots=True)
class Request:
    KIND: ClassVar[str] = "request"
    header: RequestHeader = one()
    bibliographic_info: BibliographicInfo = one()
    publication_info: PublicationInfo | None = opt()
    service_info: ServiceInfo | None = el(0, 1, v2021=(1, 1))
    supplier_info: list[SupplierInfo] = many()
    requested_delivery_info: list[RequestedDeliveryInfo] = many()
    requesting_agency_info: RequestingAgencyInfo | None = opt()
    patron_info: PatronInfo | None = opt()
    billing_info: BillingInfo | None = opt()


# --- supplyingAgencyMessage ----------------------------------------------------------------

@dataclass(slots=True)
class MessageInfo:
    reason_for_message: ReasonForMessage = one()
    answer_yes_no: YesNo | None = opt()
    note: str | None = opt()
    reason_unfilled: SchemeValue | None = opt()
    reason_retry: SchemeValue | None = opt()
    # 2021-2 moved these three into retryInfo.
    offered_costs: Costs | None = opt(**NOT_2021)
    retry_after: datetime | None = opt(**NOT_2021)
    retry_before: datetime | None = opt(**NOT_2021)


@dataclass(slots=True)
class StatusInfo:
    status: Status = one()
    expected_delivery_date: datetime | None = opt()
    due_date: datetime | None = opt()
    last_change: datetime = one()


@dataclass(slots=True)
class RetryInfo:
    """2021-2 only."""

    loan_condition: list[SchemeValue] = many()
    edition: list[str] = many()
    item_format: list[SchemeValue] = many()
    volume: list[str] = many()
    service_type: ServiceType | None = opt()
    service_level: list[SchemeValue] = many()
    delivery_method: list[SchemeValue] = many()
    courier_name: list[SchemeValue] = many()
    offered_costs: list[Costs] = many()
    payment_method: list[SchemeValue] = many()
    retry_before: datetime | None = opt()
    retry_after: datetime | None = opt()


@dataclass(slots=True)
class DeliveryInfo:
    date_sent: datetime = one()
    item_id: list[str] = many(v2017=(0, 1))
    url: str | None = opt(tag="URL", **NOT_2017)
    delivery_method: SchemeValue | None = opt(tag={V17: "sentVia", V21: "deliveryMethod"})
    address: Address | None = opt(**NOT_2017)
    sent_to_patron: bool | None = opt()
    loan_condition: list[SchemeValue] = many(v2017=(0, 1))
    item_format: SchemeValue | None = opt(tag={V17: "deliveredFormat", V21: "itemFormat"})
    service_type: ServiceType | None = opt(**NOT_2017)
    delivery_costs: list[Costs] = many(v2017=(0, 1))
    payment_method: SchemeValue | None = opt(**NOT_2017)


@dataclass(slots=True)
class ShippingInfo:
    """2021-2 only."""

    courier_name: SchemeValue | None = opt()
    tracking_id: list[str] = many()
    insurance: YesNo | None = opt()
    insurance_third_party: YesNo | None = opt()
    third_party_name: str | None = opt()
    insurance_costs: list[Costs] = many()


@dataclass(slots=True)
class ReturnInfo:
    return_agency_id: AgencyId | None = opt()
    name: str | None = opt()
    physical_address: PhysicalAddress | None = opt()


@dataclass(slots=True)
class SupplyingAgencyMessage:
    KIND: ClassVar[str] = "supplyingAgencyMessage"
    header: SupplyingAgencyMessageHeader = one()
    message_info: MessageInfo = one()
    status_info: StatusInfo = one()
    retry_info: RetryInfo | None = opt(**NOT_2017)
    delivery_info: DeliveryInfo | None = opt()
    shipping_info: ShippingInfo | None = opt(**NOT_2017)
    return_info: ReturnInfo | None = opt()


# --- requestingAgencyMessage and the confirmations ---------------------------------------

@dataclass(slots=True)
class RequestingAgencyMessage:
    KIND: ClassVar[str] = "requestingAgencyMessage"
    header: RequestingAgencyMessageHeader = one()
    action: Action = one()
    note: str | None = opt()


@dataclass(slots=True)
class RequestConfirmation:
    KIND: ClassVar[str] = "requestConfirmation"
    confirmation_header: ConfirmationHeader = one()
    error_data: list[ErrorData] = many(v2017=(0, 1))


@dataclass(slots=True)
class SupplyingAgencyMessageConfirmation:
    KIND: ClassVar[str] = "supplyingAgencyMessageConfirmation"
    confirmation_header: ConfirmationHeader = one()
    reason_for_message: ReasonForMessage | None = opt()
    error_data: list[ErrorData] = many(v2017=(0, 1))


@dataclass(slots=True)
class RequestingAgencyMessageConfirmation:
    KIND: ClassVar[str] = "requestingAgencyMessageConfirmation"
    confirmation_header: ConfirmationHeader = one()
    action: Action | None = opt()
    error_data: list[ErrorData] = many(v2017=(0, 1))


Message = (
    Request
    | RequestConfirmation
    | SupplyingAgencyMessage
    | SupplyingAgencyMessageConfirmation
    | RequestingAgencyMessage
    | RequestingAgencyMessageConfirmation
)

# The envelope's choice, in schema order.
MESSAGE_CLASSES: tuple[type, ...] = (
    Request,
    RequestConfirmation,
    SupplyingAgencyMessage,
    SupplyingAgencyMessageConfirmation,
    RequestingAgencyMessage,
    RequestingAgencyMessageConfirmation,
)
MESSAGE_CLASS_BY_KIND: dict[str, type] = {cls.KIND: cls for cls in MESSAGE_CLASSES}
