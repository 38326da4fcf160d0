"""The request form's fields (labels in the seed's words, grouped as the page shows them) and
how a posted form becomes RequestDetails values: each field goes through the API's own parser
(gateway/api/fields.py), so the page and the API accept and refuse the same values; the core's
form rules then run in the service. Errors are collected per field so every wrong field is
shown at once, each next to its input."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from ..api.errors import ApiError
from ..api.fields import FIELDS, parse_field
from ..core import RequestDetails
from . import choices

PARTNER_SLOTS = 5  # "Partner 1" .. "Partner 5": the rota in the order chosen


@dataclass(frozen=True)
class Input:
    name: str  # the RequestDetails field, the form field's name and its element id
    label: str
    widget: str = "text"  # text | textarea | check | date | select | amount | status
    hint: str = ""
    options: tuple[tuple[str, str], ...] = ()  # (value, label) of a select; "" (none) comes first
    blank: bool = True  # a select may be left empty

    @property
    def required(self) -> bool:
        return self.name in FIELDS and FIELDS[self.name].required

    @property
    def max_length(self) -> int | None:
        spec = FIELDS.get(self.name)
        return spec.max_length if spec else None


@dataclass(frozen=True)
class Section:
    legend: str
    inputs: tuple[Input, ...]


BIBLIOGRAPHIC = Section("Bibliographic information", (
    Input("title", "Title"),
    Input("author", "Author"),
    Input("title_of_component", "Article / chapter title"),
    Input("author_of_component", "Article / chapter author"),
    Input("isbn", "ISBN"),
    Input("issn", "ISSN"),
    Input("oclc_number", "OCLC number"),
    Input("other_identifiers", "Other identifiers", "textarea",
          "One a line: the type, a colon, the value (e.g. DOI: 10.1000/182)."),
    Input("publisher", "Publisher"),
    Input("publication_date", "Publication date"),
    Input("edition", "Edition"),
    Input("volume", "Volume"),
    Input("issue", "Issue"),
    Input("pages", "Pages"),
))
REQUESTER = Section("Requester", (
    Input("requester", "Requester", hint="The patron's identifier (barcode or user id)."),
    Input("requester_name", "Requester name"),
    Input("owner", "Owner", hint="The desk or staff member who handles the request here."),
))


def details_section(pickup_locations: tuple[str, ...], values: Mapping[str, Any]) -> Section:
    """Request details; the pickup location is a list when the library configured one."""
    pickup = (Input("pickup_location", "Requested pickup location", "select",
                    options=choices.with_current(tuple((p, p) for p in pickup_locations),
                                                 values.get("pickup_location") or None))
              if pickup_locations else Input("pickup_location", "Requested pickup location"))
    return Section("Request details", (
        Input("request_status", "Request status", "status"),
        Input("format", "Request format", "select", options=choices.FORMATS, blank=False),
        Input("requested_media", "Requested media", "select",
              options=choices.with_current(choices.REQUESTED_MEDIA, values.get("requested_media") or None)),
        Input("allow_other_format", "Allow other format", "check"),
        Input("preferred_send_method", "Preferred send method", "select",
              options=choices.with_current(choices.SEND_METHODS, values.get("preferred_send_method") or None)),
        Input("language", "Language"),
        Input("needed_by", "Date needed by", "date", "The last date the patron can use the material."),
        Input("delivery_location", "Delivery location", hint="Where the item goes here; default: library."),
        pickup,
        Input("reading_room_only", "For reading room use only", "check"),
        Input("willing_to_pay", "Willing to pay", "check"),
        Input("needs_patron_information", "Needs patron information", "check",
              "The patron's id and name are sent to the lender only when this is checked."),
        Input("agree_to_copyright_terms", "Agree to copyright terms", "check"),
        Input("maximum_fee", "Maximum fee", "amount", "An amount, e.g. 25.00, with its currency."),
        Input("currency", "Currency", hint="A 3-letter ISO 4217 code, e.g. USD, EUR, GBP."),
        Input("level_of_service", "Level of service", "select",
              options=choices.with_current(choices.SERVICE_LEVELS, values.get("level_of_service") or None)),
        Input("request_note", "Request note", "textarea"),
    ))


def sections(pickup_locations: tuple[str, ...], values: Mapping[str, Any]) -> tuple[Section, ...]:
    return (BIBLIOGRAPHIC, REQUESTER, details_section(pickup_locations, values))


def detail_inputs(pickup_locations: tuple[str, ...], values: Mapping[str, Any]) -> list[Input]:
    """The inputs that are RequestDetails fields (not the status shown)."""
    return [i for s in sections(pickup_locations, values) for i in s.inputs if i.name in FIELDS]


# --- values: as typed, as stored --------------------------------------------------------------


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def typed_values(form: Mapping[str, Any]) -> dict[str, Any]:
    """What was typed, to show again: text as sent, a checkbox as checked or not."""
    values: dict[str, Any] = {}
    for name, spec in FIELDS.items():
        values[name] = form.get(name) == "yes" if spec.kind == "bool" else _text(form, name)
    values["partners"] = [_text(form, f"partner_{n}") for n in range(1, PARTNER_SLOTS + 1)]
    return values


def stored_values(details: RequestDetails) -> dict[str, Any]:
    """A request's fields as the form shows them."""
    values: dict[str, Any] = {}
    for name, spec in FIELDS.items():
        value = getattr(details, name)
        if spec.kind == "bool":
            values[name] = bool(value)
        elif name == "other_identifiers":
            values[name] = "\n".join(f"{kind}: {ident}" for kind, ident in value)
        elif isinstance(value, (date, Decimal)):
            values[name] = str(value)
        else:
            values[name] = value or ""
    values["partners"] = [""] * PARTNER_SLOTS
    return values


def blank_values() -> dict[str, Any]:
    """The empty form: the fields' defaults (Physical, deliver to the library, unchecked boxes)."""
    values = {name: (spec.default if spec.default is not None else "") for name, spec in FIELDS.items()}
    values["other_identifiers"] = ""
    values["partners"] = [""] * PARTNER_SLOTS
    return values


# --- parsing ----------------------------------------------------------------------------------


def form_field(api_field: str | None) -> str:
    """The form field an API or core error names: partners[2] -> partners,
    other_identifiers[0].type -> other_identifiers, partner -> partners."""
    name = (api_field or "").split("[", 1)[0].split(".", 1)[0]
    return "partners" if name == "partner" else name


def _identifiers(text: str) -> list[dict[str, str]]:
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        kind, colon, value = line.partition(":")
        if not colon:
            raise ApiError(422, "invalid_field", "write each identifier as type: value (e.g. DOI: 10.1000/182)",
                           "other_identifiers")
        out.append({"type": kind, "value": value})
    return out


def parse_values(values: Mapping[str, Any], names: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The typed values of `names` as RequestDetails values, and the errors by form field."""
    parsed: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in names:
        raw = values.get(name)
        try:
            if name == "other_identifiers":
                raw = _identifiers(raw or "")
            elif name == "currency" and isinstance(raw, str):
                raw = raw.strip().upper()  # usd means USD
            parsed[name] = parse_field(name, raw)
        except ApiError as exc:
            errors.setdefault(form_field(exc.field) or name, exc.message)
    return parsed, errors


def parse_partners(values: Mapping[str, Any], known: Mapping[str, Any]) -> tuple[tuple[str, ...] | None, str | None]:
    """The partners chosen, in order (None: none chosen, the default rota applies), or an error."""
    chosen = [agency for agency in values.get("partners", []) if agency]
    if not chosen:
        return None, None
    for agency in chosen:
        if agency not in known:
            return None, f"{agency} is not a configured partner"
    if len(set(chosen)) != len(chosen):
        return None, "a partner is chosen twice"
    return tuple(chosen), None
