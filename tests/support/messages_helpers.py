"""Shared helpers for the message-layer tests: fixture manifest, reference schemas, samples."""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest
from lxml import etree

from gateway.messages import Version, model
from gateway.messages.codes import Action, ReasonForMessage, ServiceType, Status, YesNo

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
SHARED = ROOT.parent / "shared"
REFERENCE = {
    Version.V2017: SHARED / "iso18626-reference" / "ISO-18626-v1_2.xsd",
    Version.V2021: SHARED / "iso18626-reference" / "ISO-18626-2021-2.xsd",
}
VERSION_OF_LABEL = {"2017": Version.V2017, "2021": Version.V2021}
needs_shared = pytest.mark.skipif(
    not REFERENCE[Version.V2017].is_file(), reason="../shared/iso18626-reference is not beside the project"
)


@cache
def reference_schema(version: Version) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(REFERENCE[version])))


def reference_valid(data: bytes, version: Version) -> bool:
    return reference_schema(version).validate(etree.fromstring(data))


def manifest_rows() -> list[dict[str, str]]:
    path = FIXTURES / "MANIFEST.tsv"
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def agency(text: str) -> model.AgencyId:
    return model.AgencyId.parse(text)


NOW = datetime(2026, 11, 28, 12, 0, tzinfo=timezone.utc)


def sample_request() -> model.Request:
    return model.Request(
        header=model.RequestHeader(
            supplying_agency_id=agency("ISIL:DK-820010"),
            requesting_agency_id=agency("ISIL:US-NjP"),
            timestamp=NOW,
            requesting_agency_request_id="BR-1001",
        ),
        bibliographic_info=model.BibliographicInfo(
            title="The Name of the Rose",
            author="Eco, Umberto",
            volume=["1"],
            bibliographic_item_id=[
                model.BibliographicItemId("9780151446476", model.SchemeValue("ISBN")),
            ],
        ),
        service_info=model.ServiceInfo(
            service_type=ServiceType.Loan,
            item_format=model.SchemeValue("Printed"),
            need_before_date=datetime(2026, 12, 24, 0, 0, tzinfo=timezone.utc),
            note="MOCK:LOANED",
        ),
        billing_info=model.BillingInfo(
            maximum_costs=model.Costs(model.SchemeValue("USD"), Decimal("25.00")),
        ),
    )


def sample_supplying_message(status: Status = Status.Loaned) -> model.SupplyingAgencyMessage:
    return model.SupplyingAgencyMessage(
        header=model.SupplyingAgencyMessageHeader(
            supplying_agency_id=agency("ISIL:DK-820010"),
            requesting_agency_id=agency("ISIL:US-NjP"),
            timestamp=NOW,
            requesting_agency_request_id="BR-1001",
            supplying_agency_request_id="L-77",
        ),
        message_info=model.MessageInfo(reason_for_message=ReasonForMessage.StatusChange, answer_yes_no=YesNo.Y),
        status_info=model.StatusInfo(status=status, due_date=datetime(2027, 1, 5, tzinfo=timezone.utc), last_change=NOW),
    )


def swap_agencies(body: bytes) -> bytes:
    """ReShare's habit: requestingAgencyId before supplyingAgencyId."""
    start, mid = body.index(b"<ill:supplyingAgencyId>"), body.index(b"<ill:requestingAgencyId>")
    end = body.index(b"</ill:requestingAgencyId>") + len(b"</ill:requestingAgencyId>")
    return body[:start] + body[mid:end] + body[start:mid] + body[end:]


def sample_requesting_message(action: Action = Action.Received) -> model.RequestingAgencyMessage:
    return model.RequestingAgencyMessage(
        header=model.RequestingAgencyMessageHeader(
            supplying_agency_id=agency("ISIL:DK-820010"),
            requesting_agency_id=agency("ISIL:US-NjP"),
            timestamp=NOW,
            requesting_agency_request_id="BR-1001",
        ),
        action=action,
        note="thanks",
    )
