"""Turn scenario steps into bytes: placeholders, inline message templates, adapted fixtures.

Placeholders ({request_id}, {now}, {now+14d}, {our_agency}, ...) are replaced in every string
of a step; unknown names are left alone, so raw XML with braces survives.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from lxml import etree

from ..messages import Version, encode, model
from ..messages.codec import format_datetime, parse_datetime
from ..messages.codes import Action, ReasonForMessage, RequestSubType, RequestType, ServiceType, Status, YesNo
from ..messages.plan import NS, Q

_PLACEHOLDER = re.compile(r"\{(\w+)(?:([+-])(\d+)([smhd]))?\}")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


class BuildError(ValueError):
    """A step cannot be turned into a message (a bad date, an encoder refusal...)."""


@dataclass(slots=True)
class Context:
    """What placeholders expand to for one scenario run."""

    request_id: str
    supplier_request_id: str
    our_agency: str
    target_agency: str
    listener_url: str
    token: str
    version: Version
    now: datetime

    def values(self) -> dict[str, str]:
        our_type, _, our_value = self.our_agency.partition(":")
        target_type, _, target_value = self.target_agency.partition(":")
        return {
            "our_agency_type": our_type,
            "our_agency_value": our_value,
            "target_agency_type": target_type,
            "target_agency_value": target_value,
            "request_id": self.request_id,
            "supplier_request_id": self.supplier_request_id,
            "our_agency": self.our_agency,
            "target_agency": self.target_agency,
            "listener_url": self.listener_url,
            "token": self.token,
            "version": self.version.value,
            "now": format_datetime(self.now),
        }


def expand(value: Any, ctx: Context) -> Any:
    """Placeholders replaced in a string, or in every string of a list/table."""
    if isinstance(value, str):
        values = ctx.values()

        def sub(match: re.Match[str]) -> str:
            name, sign, amount, unit = match.groups()
            if name == "now" and sign:
                delta = timedelta(**{_UNITS[unit]: int(amount)})
                return format_datetime(ctx.now + delta if sign == "+" else ctx.now - delta)
            return values.get(name, match.group(0)) if not sign else match.group(0)

        return _PLACEHOLDER.sub(sub, value)
    if isinstance(value, list):
        return [expand(v, ctx) for v in value]
    if isinstance(value, dict):
        return {k: expand(v, ctx) for k, v in value.items()}
    return value


def _agency(text: str) -> model.AgencyId:
    try:
        return model.AgencyId.parse(text)
    except ValueError as exc:
        raise BuildError(str(exc)) from None


def _datetime(text: str, what: str) -> datetime:
    try:
        return parse_datetime(text)
    except ValueError:
        raise BuildError(f"{what}: {text!r} is not an xs:dateTime") from None


def mock_note(mock: str | None, note: str | None) -> str | None:
    token = f"MOCK:{mock}" if mock else None
    return " ".join(part for part in (token, note) if part) or None


# --- templates -------------------------------------------------------------------------------------

@dataclass(slots=True)
class Parties:
    """The agencies and ids a message of this run carries in its header."""

    requester: model.AgencyId
    supplier: model.AgencyId
    request_id: str
    supplier_request_id: str | None


def build_request(spec: dict[str, Any], parties: Parties, version: Version, now: datetime, *,
                  mock: str | None, reply_url: str | None) -> model.Request:
    sub_types = spec.get("request_sub_type", [])
    sub_types = [sub_types] if isinstance(sub_types, str) else sub_types
    address = None
    if spec.get("reply_address", True) and reply_url:
        address = model.RequestingAgencyInfo(
            name="gateway conformance runner",
            address=[model.Address(electronic_address=model.ElectronicAddress(model.SchemeValue("URL"), reply_url))],
        )
    return model.Request(
        header=model.RequestHeader(
            supplying_agency_id=_agency(spec["supplier"]) if "supplier" in spec else parties.supplier,
            requesting_agency_id=_agency(spec["requester"]) if "requester" in spec else parties.requester,
            timestamp=now,
            requesting_agency_request_id=spec.get("request_id", parties.request_id),
        ),
        bibliographic_info=model.BibliographicInfo(
            supplier_unique_record_id=spec.get("record_id"),
            title=spec.get("title", "Conformance test item"),
            author=spec.get("author"),
        ),
        service_info=model.ServiceInfo(
            request_type=RequestType(spec["request_type"]) if "request_type" in spec else None,
            request_sub_type=[RequestSubType(s) for s in sub_types],
            requesting_agency_previous_request_id=spec.get("previous_request_id"),
            service_type=ServiceType(spec.get("service_type", "Loan")),
            note=mock_note(spec.get("mock", mock), spec.get("note")),
        ),
        requesting_agency_info=address,
    )


def build_ram(spec: dict[str, Any], parties: Parties, version: Version, now: datetime) -> model.RequestingAgencyMessage:
    return model.RequestingAgencyMessage(
        header=model.RequestingAgencyMessageHeader(
            supplying_agency_id=_agency(spec["supplier"]) if "supplier" in spec else parties.supplier,
            requesting_agency_id=_agency(spec["requester"]) if "requester" in spec else parties.requester,
            timestamp=now,
            requesting_agency_request_id=spec.get("request_id", parties.request_id),
            supplying_agency_request_id=spec.get("supplier_request_id", parties.supplier_request_id),
        ),
        action=Action(spec["action"]),
        note=spec.get("note"),
    )


def _costs(text: str) -> model.Costs:
    amount, _, currency = text.strip().partition(" ")
    try:
        return model.Costs(model.SchemeValue(currency or "USD"), Decimal(amount))
    except InvalidOperation:
        raise BuildError(f"offered_costs: {text!r} is not 'AMOUNT CURRENCY'") from None


def build_sam(spec: dict[str, Any], parties: Parties, version: Version, now: datetime, *,
              first: bool, item_id: str) -> model.SupplyingAgencyMessage:
    status = Status(spec["status"])
    default_reason = ReasonForMessage.RequestResponse if first else ReasonForMessage.StatusChange
    info = model.MessageInfo(
        reason_for_message=ReasonForMessage(spec["reason"]) if "reason" in spec else default_reason,
        answer_yes_no=YesNo(spec["answer"]) if "answer" in spec else None,
        note=spec.get("note"),
        reason_unfilled=model.SchemeValue(spec["reason_unfilled"]) if "reason_unfilled" in spec else None,
        reason_retry=model.SchemeValue(spec["reason_retry"]) if "reason_retry" in spec else None,
    )
    if status is Status.Unfilled and info.reason_unfilled is None:
        info.reason_unfilled = model.SchemeValue("NotAvailableForILL")
    message = model.SupplyingAgencyMessage(
        header=model.SupplyingAgencyMessageHeader(
            supplying_agency_id=_agency(spec["supplier"]) if "supplier" in spec else parties.supplier,
            requesting_agency_id=_agency(spec["requester"]) if "requester" in spec else parties.requester,
            timestamp=now,
            requesting_agency_request_id=spec.get("request_id", parties.request_id),
            supplying_agency_request_id=spec.get("supplier_request_id", parties.supplier_request_id),
        ),
        message_info=info,
        status_info=model.StatusInfo(
            status=status,
            due_date=_datetime(spec["due_date"], "due_date") if "due_date" in spec else None,
            last_change=now,
        ),
    )
    if "offered_costs" in spec:
        costs = _costs(spec["offered_costs"])
        if version is Version.V2021:
            message.retry_info = model.RetryInfo(offered_costs=[costs])
        else:
            info.offered_costs = costs
    delivery = spec.get("delivery", status in (Status.Loaned, Status.CopyCompleted)
                        and info.reason_for_message is not ReasonForMessage.RenewResponse)
    if delivery:
        message.delivery_info = model.DeliveryInfo(date_sent=now, item_id=[item_id])
    return message


def encode_template(kind: str, message: Any, version: Version) -> bytes:
    try:
        return encode(message, version)
    except ValueError as exc:  # InvalidOutboundMessage: the template makes no valid message
        raise BuildError(f"the {kind} template does not make a valid {version.label} message: {exc}") from None


def raw_bytes(spec: dict[str, Any], ctx: Context) -> bytes:
    if "raw_base64" in spec:
        return base64.b64decode(spec["raw_base64"])
    return expand(spec["raw"], ctx).encode("utf-8")


# --- fixtures ---------------------------------------------------------------------------------------

def _set_agency(el: etree._Element | None, agency: model.AgencyId) -> None:
    if el is None:
        return
    kind, value = el.find(Q + "agencyIdType"), el.find(Q + "agencyIdValue")
    if kind is not None:
        kind.text = agency.agency_id_type.value
    if value is not None:
        value.text = agency.agency_id_value


def adapt_fixture(data: bytes, parties: Parties, now: datetime, *, mock: str | None,
                  reply_url: str | None) -> bytes:
    """A fixture rewritten to belong to this run: header agencies, request ids and timestamp, and
    for a request the MOCK: token in serviceInfo/note and our listener as reply address.
    Raises BuildError for a fixture that does not parse (send such fixtures with adapt = false)."""
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise BuildError(f"cannot adapt a fixture that does not parse ({exc.msg}); use adapt = false") from None
    body = next((c for c in root if isinstance(c.tag, str)), None)
    header = body.find(Q + "header") if body is not None else None
    if body is None or header is None:
        raise BuildError("cannot adapt a fixture without a message header; use adapt = false")
    _set_agency(header.find(Q + "supplyingAgencyId"), parties.supplier)
    _set_agency(header.find(Q + "requestingAgencyId"), parties.requester)
    for tag, value in (("requestingAgencyRequestId", parties.request_id), ("timestamp", format_datetime(now)),
                       ("supplyingAgencyRequestId", parties.supplier_request_id)):
        el = header.find(Q + tag)
        if el is not None and value is not None:
            el.text = value
    if etree.QName(body).localname == "request":
        _adapt_request(body, mock, reply_url)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _adapt_request(body: etree._Element, mock: str | None, reply_url: str | None) -> None:
    service = body.find(Q + "serviceInfo")
    if mock and service is not None:
        note = service.find(Q + "note")
        if note is None:
            note = etree.SubElement(service, Q + "note")  # note is the last child of serviceInfo
        note.text = mock_note(mock, note.text)
    elif mock:  # no serviceInfo (v1.2 allows that): the mock also reads supplierUniqueRecordId
        biblio = body.find(Q + "bibliographicInfo")
        if biblio is not None and biblio.find(Q + "supplierUniqueRecordId") is None:
            record = etree.Element(Q + "supplierUniqueRecordId")
            record.text = mock
            biblio.insert(0, record)  # its first child
    if not reply_url:
        return
    info = body.find(Q + "requestingAgencyInfo")
    if info is None:
        info = etree.Element(Q + "requestingAgencyInfo")
        after = next((body.find(Q + t) for t in ("patronInfo", "billingInfo") if body.find(Q + t) is not None), None)
        if after is not None:
            after.addprevious(info)
        else:
            body.append(info)
    for data in info.iter(Q + "electronicAddressData"):
        if (data.text or "").startswith(("http://", "https://")):
            data.text = reply_url
            return
    address = etree.SubElement(info, Q + "address")  # address is the last child of requestingAgencyInfo
    electronic = etree.SubElement(address, Q + "electronicAddress")
    etree.SubElement(electronic, Q + "electronicAddressType").text = "URL"
    etree.SubElement(electronic, Q + "electronicAddressData").text = reply_url


def read_fixture(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BuildError(f"cannot read fixture {path}: {exc.strerror}") from None


__all__ = [
    "BuildError", "Context", "NS", "Parties", "adapt_fixture", "build_ram", "build_request", "build_sam",
    "encode_template", "expand", "raw_bytes", "read_fixture",
]
