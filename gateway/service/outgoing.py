"""Build the ISO 18626 messages the borrowing core asks for, from the request's state.

Every message goes through `encode`, so it validates against our schema for the partner's
version before it reaches the outbox. Which form field becomes which element (per version), and
which fields stay local and why: docs/request-fields.md (`core.request_fields` lists both sets).
"""

from __future__ import annotations

from datetime import datetime

from ..core import BorrowingState, Outgoing
from ..messages import Version, encode, model
from ..messages.codes import RequestType

# serviceInfo/copyrightCompliance when staff agreed to the copyright terms: the code of the
# CopyrightComplianceList that says which terms (config `[requests] copyright_compliance`).
DEFAULT_COPYRIGHT_COMPLIANCE = "Other"
LIBRARY_USE_ONLY = "LibraryUseOnly"  # LoanConditionList: the reading-room-only flag

AgencyId = model.AgencyId


def _bibliographic_info(state: BorrowingState) -> model.BibliographicInfo:
    d = state.details
    ids = [
        model.BibliographicItemId(value, model.SchemeValue(code))
        for code, value in (("ISBN", d.isbn), ("ISSN", d.issn))
        if value
    ]
    records = [
        model.BibliographicRecordId(model.SchemeValue(code), value)
        for code, value in ((("OCLC", d.oclc_number),) if d.oclc_number else ()) + tuple(d.other_identifiers)
    ]
    return model.BibliographicInfo(
        title=d.title,
        author=d.author,
        edition=d.edition,
        title_of_component=d.title_of_component,
        author_of_component=d.author_of_component,
        volume=[d.volume] if d.volume else [],
        issue=d.issue,
        pages_requested=d.pages,
        bibliographic_item_id=ids,
        bibliographic_record_id=records,
    )


def build_request(
    state: BorrowingState,
    out: Outgoing,
    *,
    ours: str,
    request_id: str,
    now: datetime,
    version: Version,
    copyright_compliance: str = DEFAULT_COPYRIGHT_COMPLIANCE,
) -> model.Request:
    d = state.details
    v2021 = version is Version.V2021
    publication = None
    if d.publisher or d.publication_date:
        publication = model.PublicationInfo(publisher=d.publisher, publication_date=d.publication_date)
    billing = None
    if d.maximum_fee is not None and d.currency and d.willing_to_pay:  # the form rules ask for all three
        billing = model.BillingInfo(maximum_costs=model.Costs(model.SchemeValue(d.currency), d.maximum_fee))
    note = "\n".join(part for part in (d.request_note, out.note) if part) or None
    return model.Request(
        header=model.RequestHeader(
            supplying_agency_id=AgencyId.parse(out.partner),
            requesting_agency_id=AgencyId.parse(ours),
            timestamp=now,
            requesting_agency_request_id=request_id,
        ),
        bibliographic_info=_bibliographic_info(state),
        publication_info=publication,
        service_info=model.ServiceInfo(
            request_type=out.request_type or RequestType.New,
            service_type=d.service_type,
            service_level=model.SchemeValue(d.level_of_service) if d.level_of_service else None,
            item_format=model.SchemeValue(d.requested_media) if d.requested_media else None,
            need_before_date=(
                datetime.combine(d.needed_by, datetime.min.time(), tzinfo=now.tzinfo) if d.needed_by else None
            ),
            copyright_compliance=model.SchemeValue(copyright_compliance) if d.agree_to_copyright_terms else None,
            any_edition=model.YesNo.Y if d.allow_other_format else None,
            loan_condition=[model.SchemeValue(LIBRARY_USE_ONLY)] if d.reading_room_only and v2021 else [],
            note=note,
        ),
        requested_delivery_info=(
            [model.RequestedDeliveryInfo(delivery_method=model.SchemeValue(d.preferred_send_method))]
            if d.preferred_send_method and v2021 else []
        ),
        # The patron's identity goes to a lender only when the lender needs it (privacy).
        patron_info=(model.PatronInfo(patron_id=d.requester, surname=d.requester_name)
                     if d.needs_patron_information else None),
        billing_info=billing,
    )


def build_requesting_message(
    out: Outgoing, *, ours: str, request_id: str, supplier_request_id: str | None, now: datetime
) -> model.RequestingAgencyMessage:
    return model.RequestingAgencyMessage(
        header=model.RequestingAgencyMessageHeader(
            supplying_agency_id=AgencyId.parse(out.partner),
            requesting_agency_id=AgencyId.parse(ours),
            timestamp=now,
            requesting_agency_request_id=request_id,
            supplying_agency_request_id=supplier_request_id,
        ),
        action=out.action,
        note=out.note,
    )


def encode_outgoing(
    state: BorrowingState,
    out: Outgoing,
    *,
    ours: str,
    request_id: str,
    supplier_request_id: str | None,
    now: datetime,
    version: Version,
    copyright_compliance: str = DEFAULT_COPYRIGHT_COMPLIANCE,
) -> bytes:
    if out.kind == "request":
        message = build_request(state, out, ours=ours, request_id=request_id, now=now, version=version,
                                copyright_compliance=copyright_compliance)
    else:
        message = build_requesting_message(
            out, ours=ours, request_id=request_id, supplier_request_id=supplier_request_id, now=now
        )
    return encode(message, version)
