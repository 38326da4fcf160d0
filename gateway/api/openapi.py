"""The OpenAPI 3.1 document of the staff API, served at `/api/v1/openapi.json`.

Written as Python data next to the handlers and built from the same tables they use: the form
fields (`fields.FIELDS`), the actions (`borrowing.ACTIONS`), the rota operations, the statuses
(`BorrowingStatus`), the sort keys and facets (`queries`), the error codes (`errors.CODES`). A
test validates it with openapi-spec-validator, checks that it lists exactly the routes of
`routes.ROUTES`, and a property-based test (schemathesis) checks the live handlers against it.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

from aiohttp import web

from ..core import BorrowingStatus
from ..core.lending import LendingStatus
from ..core.form_rules import FINDABLE_BY
from ..core.rota import EntryState
from .errors import CODES
from .fields import AGENCY_PATTERN, FIELDS, KEY_PATTERN, REQUIRED, text_pattern

JSON = "application/json"
NULLABLE_STRING = {"type": ["string", "null"]}
DATETIME = {"type": ["string", "null"], "format": "date-time"}
STATUSES = [s.value for s in BorrowingStatus]
LENDING_STATUSES = [s.value for s in LendingStatus]


FORM_RULES = ("a title, title_of_component or an identifier is required; the pickup location must be one of "
              "the configured list (if any); needed_by may not be in the past; maximum_fee needs currency and "
              "willing_to_pay (422 naming the field otherwise)")


def _findable() -> list[dict[str, Any]]:
    """Something to find the item by (core.form_rules.FINDABLE_BY): one of these is required."""
    text = {"type": "string", "pattern": text_pattern(required=True)}
    return [{"required": [name], "properties": {name: {"type": "array", "minItems": 1}
                                                if name == "other_identifiers" else text}}
            for name in FINDABLE_BY]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Any], required: list[str] | None = None, *, extra: bool = False,
         **kw: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": extra}
    if required:
        schema["required"] = required
    schema.update(kw)
    return schema


def _note(description: str = "free text, sent to the partner where the action sends a message") -> dict:
    return {"type": ["string", "null"], "maxLength": 4000, "pattern": text_pattern(), "description": description}


def _field_schemas(*, for_input: bool) -> dict[str, Any]:
    props = {}
    for name, spec in FIELDS.items():
        schema = spec.json_schema(nullable=not spec.required)
        if not for_input and spec.kind == "decimal":
            schema = {"type": ["string", "null"], "description": "decimal amount as a string"}
        if not for_input and spec.kind == "format":
            schema = {"type": "string", "enum": ["Physical", "Digital"]}
        props[name] = schema
    return props


def _action_body(fields: frozenset[str]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for name in sorted(fields):
        if name == "note":
            props[name] = _note()
        elif name == "items":
            props[name] = {"type": "array", "maxItems": 50, "description": "barcodes of the received items",
                           "items": {"type": "string", "minLength": 1, "maxLength": 200,
                                     "pattern": text_pattern(required=True, multiline=False)}}
        elif name == "reason":
            props[name] = {"type": ["string", "null"], "maxLength": 200, "description": "cancellation reason",
                           "pattern": text_pattern(multiline=False)}
        elif name in ("notify_patron", "by_patron"):
            props[name] = {"type": "boolean", "default": False}
        elif name == "changes":
            props[name] = {**_ref("RequestEdit"), "description": "fields to change before the request is sent again"}
        elif name == "flag":
            props[name] = {"type": "string", "enum": ["send_failed", "cancel_refused"]}
    required = ["flag"] if "flag" in fields else []
    return _obj(props, required)


LENDING_REQUIRED = {"ship": ["due_date"], "answer-cancel": ["answer"], "answer-renew": ["answer"],
                    "acknowledge": ["flag"], "retry-possible": ["reason_retry"]}


def _lending_action_body(name: str, fields: frozenset[str]) -> dict[str, Any]:
    line = text_pattern(multiline=False)
    strings = {"type": "array", "maxItems": 20, "items": {"type": "string", "minLength": 1, "maxLength": 200,
                                                         "pattern": text_pattern(required=True, multiline=False)}}
    costs = {"type": "array", "maxItems": 5, "items": _obj({
        "amount": FIELDS["maximum_fee"].json_schema(nullable=False),
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}}, ["amount", "currency"])}
    when = {"type": ["string", "null"], "anyOf": [{"format": "date"}, {"format": "date-time"}, {"type": "null"}],
            "description": "a date (its start, UTC) or an ISO 8601 datetime"}
    known: dict[str, Any] = {
        "note": _note(), "loan_conditions": strings, "item_ids": strings, "offered_costs": costs,
        "delivery_costs": costs, "status": {"type": "string", "enum": ["WillSupply", "ExpectToSupply"]},
        "reason_retry": {"type": "string", "minLength": 1, "maxLength": 200,
                         "pattern": text_pattern(required=True, multiline=False)},
        "reason_unfilled": {"type": ["string", "null"], "maxLength": 200, "pattern": line},
        "retry_after": when, "retry_before": when, "due_date": when,
        "sent_via": {"type": ["string", "null"], "maxLength": 64, "pattern": line},
        "url": {"type": ["string", "null"], "maxLength": 2000, "pattern": line},
        "answer": {"type": "string", "enum": ["Y", "N"]},
        "flag": {"type": "string", "enum": ["lost", "reminder", "send_failed"]},
    }
    required = LENDING_REQUIRED.get(name, [])
    props = {field: known[field] for field in sorted(fields)}
    if "due_date" in required:
        props["due_date"] = {"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}],
                             "description": "after now"}
    body = _obj(props, required)
    if name == "answer-renew":  # granting a renewal needs the new due date
        body.update({"if": {"properties": {"answer": {"const": "Y"}}, "required": ["answer"]},
                     "then": {"required": ["due_date"], "properties": {"due_date": {"type": "string"}}}})
    if name == "conditional":
        body["anyOf"] = [{"required": ["loan_conditions"], "properties": {"loan_conditions": {"minItems": 1}}},
                         {"required": ["offered_costs"], "properties": {"offered_costs": {"minItems": 1}}}]
    return body


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref("Error")}}}


ERRORS = {
    "400": _error_response("bad_json: the body is not a JSON object"),
    "401": {**_error_response("unauthorized: no or unknown API key"),
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}}},
    "403": _error_response("forbidden: the key's role may not do this"),
    "404": _error_response("not_found: no such request (or attachment, action)"),
    "409": _error_response("illegal_transition: not allowed in the request's status; or conflict"),
    "413": _error_response("payload_too_large"),
    "415": _error_response("unsupported_media_type"),
    "422": _error_response("invalid_field / unknown_parameter: `field` names the culprit"),
}


def _errors(*codes: str) -> dict[str, Any]:
    return {code: ERRORS[code] for code in codes}


READ_ERRORS = ("401", "404", "422")
# A parameter key: one line, no surrounding spaces.
PARAM_KEY = {"minLength": 1, "maxLength": 200, "pattern": KEY_PATTERN}
WRITE_ERRORS = ("400", "401", "403", "404", "409", "413", "415", "422")

ID_PARAM = {"name": "id", "in": "path", "required": True, "description": "the borrowing request's id",
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}


def _json_body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def _ok(schema: dict[str, Any], description: str = "OK", status: str = "200", **headers: Any) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = {k: {"schema": {"type": "string"}} for k in headers}
    return {status: response}


def _op(summary: str, responses: dict[str, Any], *, tag: str = "borrowing", params: list | None = None,
        body: dict | None = None, op_id: str, description: str | None = None, public: bool = False) -> dict:
    op: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": [tag], "responses": responses}
    if description:
        op["description"] = description
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = body
    if public:
        op["security"] = []
    return op


def _list_params() -> list[dict[str, Any]]:
    def q(name: str, schema: dict, description: str, explode: bool = False) -> dict[str, Any]:
        p: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": schema,
                             "description": description}
        if explode:
            p.update(style="form", explode=True)
        return p

    many = {"type": "array", "maxItems": 50, "items": {"type": "string", "minLength": 1, "maxLength": 200,
                                                         "pattern": r"^[^,\s\x00][^,\x00]*$"}}
    date_or_time = {"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}, {"maxLength": 0}],
                    "description": "empty: no bound"}
    day = {"type": "string", "anyOf": [{"format": "date"}, {"maxLength": 0}]}
    from .queries import SORTS
    sorts = [*SORTS, *(f"-{s}" for s in SORTS)]
    return [
        q("status", {**many, "items": {"type": "string", "enum": STATUSES}}, "status codes (repeat or comma-separate)", True),
        q("partner", many, "agency in the rota, in any state", True),
        q("active_partner", many, "agency currently holding the request", True),
        q("requester", many, "patron identifier (exact)", True),
        q("format", {**many, "items": {"type": "string", "enum": ["Physical", "Digital"]}}, "request format", True),
        q("requested_media", many, "requested media (exact)", True),
        q("pickup_location", many, "pickup location (exact)", True),
        q("level_of_service", many, "level of service (exact)", True),
        q("needs_attention", {"type": "boolean"}, "only requests that need staff (true) or not (false)"),
        q("unread_messages", {"type": "boolean"}, "with (true) or without (false) an unread partner message"),
        q("has_costs", {"type": "boolean"}, "with (true) or without (false) a maximum fee"),
        q("has_notes", {"type": "boolean"}, "with (true) or without (false) a staff note"),
        q("q", {"type": "string", "maxLength": 200, "pattern": r"^[^\x00]*$"},
          "words, each matching title, author, isbn, issn, oclc number or external id (case-insensitive)"),
        q("created_from", date_or_time, "created at or after (date: start of day, UTC)"),
        q("created_to", date_or_time, "created before (date: inclusive, the whole day)"),
        q("updated_from", date_or_time, "updated at or after"),
        q("updated_to", date_or_time, "updated before (date: inclusive)"),
        q("needed_by_from", day, "needed by on or after"),
        q("needed_by_to", day, "needed by on or before"),
        q("limit", {"type": "integer", "minimum": 1, "maximum": 200, "default": 25}, "page size"),
        q("offset", {"type": "integer", "minimum": 0, "maximum": 2**31 - 1, "default": 0}, "rows to skip"),
        q("sort", {"type": "string", "enum": sorts, "default": "-created_at"}, "sort key; '-' for descending"),
        q("facets", {"type": "boolean", "default": True}, "count facets (false: only the total)"),
        q("facet_limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
          "how many requesters the requester facet lists (top by count)"),
    ]


UNREAD = {"type": "integer", "minimum": 0, "description": "incoming general messages not marked read"}


def _schemas() -> dict[str, Any]:
    out_fields = _field_schemas(for_input=False)
    markers = _obj({
        "seq": {"type": ["integer", "null"], "description": "#seq:N#, the sender's message number"},
        "last_seq": {"type": ["integer", "null"], "description": "#lastSeq:N#"},
        "flags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True,
                  "description": "#ReShare…# markers without the '#', sorted"},
        "updated_fields": {"type": "object", "additionalProperties": {"type": "string"},
                           "description": "#ReShareUpdatedField-<Field>:<value>#, by field"},
        "cluster_id": {"type": ["string", "null"], "description": "transferToCluster:<id>"},
        "text": {"type": "string", "description": "the note with the markers removed"},
    }, ["seq", "last_seq", "flags", "updated_fields", "cluster_id", "text"], type=["object", "null"],
        description="an inbound note's ReShare markers as data (docs/partners.md); null without markers and when outbound")
    history = _obj({
        "id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"}, "actor": {"type": "string"},
        "event": {"type": "string"}, "from_status": NULLABLE_STRING, "to_status": NULLABLE_STRING,
        "detail": {
            "type": ["object", "null"], "properties": {"text": {"type": "string"}, "markers": markers},
            "description": "text: what happened; markers: the ReShare markers of the message's note, "
                           "when it has any (also for status messages, whose notes are not general messages)"},
        "raw_message_id": {"type": ["integer", "null"]},
    }, ["id", "at", "actor", "event", "from_status", "to_status", "detail", "raw_message_id"])
    rota_entry = _obj({
        "agency": {"type": "string"}, "name": NULLABLE_STRING, "position": {"type": "integer", "minimum": 1},
        "state": {"type": "string", "enum": [s.value for s in EntryState]},
        "last_status": NULLABLE_STRING, "reason": NULLABLE_STRING, "answer": NULLABLE_STRING,
        "sent_at": DATETIME, "confirmed_at": DATETIME, "answered_at": DATETIME, "status_requested_at": DATETIME,
        "deadline_at": DATETIME, "undelivered": {"type": "boolean"},
        "loan_conditions": {"type": "array", "items": {"type": "string"}},
        "offered_costs": {"type": "array", "items": _obj({"amount": {"type": "string"},
                                                           "currency": {"type": "string"}}, ["amount", "currency"])},
        "retry_after": DATETIME, "retry_before": DATETIME, "supplying_agency_request_id": NULLABLE_STRING,
    }, ["agency", "position", "state", "last_status"])
    message = _obj({
        "id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"},
        "direction": {"type": "string", "enum": ["in", "out"]}, "partner": NULLABLE_STRING,
        "actor": NULLABLE_STRING, "text": {"type": "string"}, "raw_message_id": {"type": ["integer", "null"]},
        "markers": markers,
        "read_at": {**DATETIME, "description": "when staff marked an incoming message read; null while unread "
                                               "(an outbound message is read when sent)"},
    }, ["id", "at", "direction", "partner", "text", "markers", "read_at"])
    note = _obj({"id": {"type": "integer"}, "created_at": {"type": "string", "format": "date-time"},
                 "actor": NULLABLE_STRING, "text": {"type": "string"}}, ["id", "created_at", "text"])
    received = _obj({"id": {"type": "integer"}, "barcode": NULLABLE_STRING, "description": NULLABLE_STRING,
                     "received_at": {"type": "string", "format": "date-time"}, "due_date": DATETIME,
                     "actor": NULLABLE_STRING, "note": NULLABLE_STRING}, ["id", "barcode", "received_at"])
    attachment = _obj({"id": {"type": "integer"}, "filename": {"type": "string"}, "media_type": {"type": "string"},
                       "size": {"type": "integer", "minimum": 0},
                       "created_at": {"type": "string", "format": "date-time"}, "actor": NULLABLE_STRING},
                      ["id", "filename", "media_type", "size", "created_at"])
    parameters = {"type": "object", "additionalProperties": {"type": ["string", "null"]}}
    request_props = {
        "id": {"type": "integer"}, "external_id": NULLABLE_STRING,
        "status": {"type": "string", "enum": STATUSES}, "status_label": {"type": "string"},
        "previous_status": {"type": ["string", "null"]}, "needs_attention": {"type": "boolean"},
        "attention": {"type": "array", "items": {"type": "string"}}, "active_partner": NULLABLE_STRING,
        "unread_messages": UNREAD,
        "service_type": {"type": "string", "enum": ["Loan", "Copy"]}, "due_date": DATETIME,
        "item_location": {"type": "string"},
        "cancel": {"oneOf": [{"type": "null"}, _obj({
            "by": {"type": "string"}, "by_patron": {"type": "boolean"}, "reason": NULLABLE_STRING,
            "note": NULLABLE_STRING, "notify_patron": {"type": "boolean"}}, ["by", "by_patron"])]},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"}, "version": {"type": "integer"},
        **out_fields,
        "allowed_actions": {"type": "array", "items": _ref("AllowedAction"),
                            "description": "the staff actions allowed now, each with how to perform it"},
        "rota": {"type": "array", "items": _ref("RotaEntry")},
        "history": {"type": "array", "items": _ref("HistoryEntry")},
        "parameters": parameters,
        "general_messages": {"type": "array", "items": _ref("GeneralMessage")},
        "notes": {"type": "array", "items": _ref("Note")},
        "received_items": {"type": "array", "items": _ref("ReceivedItem")},
        "attachments": {"type": "array", "items": _ref("Attachment")},
    }
    summary = _obj({
        "id": {"type": "integer"}, "external_id": NULLABLE_STRING,
        "status": {"type": "string", "enum": STATUSES}, "status_label": {"type": "string"},
        "title": NULLABLE_STRING, "author": NULLABLE_STRING, "requester": {"type": "string"},
        "requester_name": NULLABLE_STRING, "pickup_location": NULLABLE_STRING, "format": {"type": "string"},
        "active_partner": NULLABLE_STRING, "needs_attention": {"type": "boolean"},
        "attention_reason": NULLABLE_STRING, "unread_messages": UNREAD,
        "needed_by": {"type": ["string", "null"], "format": "date"},
        "due_date": DATETIME, "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    }, ["id", "status", "status_label", "title", "requester", "active_partner", "needs_attention",
        "created_at", "updated_at"], extra=True)

    def facet(value: dict[str, Any], label: bool = False) -> dict[str, Any]:
        props = {"value": value, "count": {"type": "integer", "minimum": 0}}
        if label:
            props["label"] = NULLABLE_STRING
        return {"type": "array", "items": _obj(props, ["value", "count"])}

    listing = _obj({
        "items": {"type": "array", "items": _ref("BorrowingSummary")},
        "total": {"type": "integer", "minimum": 0}, "limit": {"type": "integer"}, "offset": {"type": "integer"},
        "sort": {"type": "string"},
        "facets": _obj({
            "status": facet({"type": "string"}, label=True), "active_partner": facet(NULLABLE_STRING),
            "needs_attention": facet({"type": "boolean"}), "format": facet({"type": "string"}),
            "requester": facet({"type": "string"}), "requested_media": facet(NULLABLE_STRING),
            "pickup_location": facet(NULLABLE_STRING), "level_of_service": facet(NULLABLE_STRING),
            "has_costs": facet({"type": "boolean"}), "unread_messages": facet({"type": "boolean"}),
            "has_notes": facet({"type": "boolean"}),
        }, ["status", "active_partner", "needs_attention", "format", "requester", "requested_media",
            "pickup_location", "level_of_service", "has_costs", "unread_messages", "has_notes"]),
    }, ["items", "total", "limit", "offset", "sort"])
    create_props = {**_field_schemas(for_input=True),
                    "partners": {"type": ["array", "null"], "maxItems": 50, "uniqueItems": True,
                                 "description": "the rota, in order (agency ids); omitted: the default rota template",
                                 "items": {"type": "string", "pattern": AGENCY_PATTERN, "maxLength": 200}}}
    edit_props = _field_schemas(for_input=True)
    for name in REQUIRED:
        edit_props[name] = FIELDS[name].json_schema(nullable=False)
    agency = {"type": "string", "pattern": AGENCY_PATTERN, "maxLength": 200}
    position = {"type": "integer", "minimum": 1, "maximum": 1000, "description": "1 = first"}
    rota_op = {"oneOf": [
        _obj({"op": {"const": "move-up"}, "agency": agency}, ["op", "agency"]),
        _obj({"op": {"const": "move-down"}, "agency": agency}, ["op", "agency"]),
        _obj({"op": {"const": "remove"}, "agency": agency}, ["op", "agency"],
             description="remove a pending partner"),
        _obj({"op": {"const": "add"}, "agency": agency, "position": position}, ["op", "agency"],
             description="add a configured partner (at the end unless position is given)"),
        _obj({"op": {"const": "move-selected"}, "agencies": {"type": "array", "items": agency, "minItems": 1,
                                                              "maxItems": 50}, "position": position},
             ["op", "agencies", "position"], description="move these partners (in rota order) to position"),
        _obj({"op": {"const": "cancel-partner"}, "note": _note()}, ["op"],
             description="cancel the active partner (sends Cancel) and move on"),
    ]}
    patron = {**_field_schemas(for_input=True)}
    patron = {k: v for k, v in patron.items() if k in (
        "title", "author", "title_of_component", "author_of_component", "isbn", "issn", "oclc_number",
        "publisher", "publication_date", "edition", "volume", "issue", "pages", "other_identifiers", "format")}
    patron.update({
        "patron_id": {"type": "string", "minLength": 1, "maxLength": 190,
                      "pattern": text_pattern(required=True, multiline=False)},
        "patron_name": {"type": ["string", "null"], "maxLength": 400, "pattern": text_pattern(multiline=False)},
        "pickup_location": {"type": "string", "minLength": 1, "maxLength": 200,
                            "pattern": text_pattern(required=True, multiline=False)},
        "needed_by": {"type": ["string", "null"], "format": "date", "description": "not in the past"},
        "note": {"type": ["string", "null"], "maxLength": 4000, "pattern": text_pattern()},
    })
    event = copy.deepcopy(history)
    event["properties"].update({"request_id": {"type": ["integer", "null"]},
                                "lending_id": {"type": ["integer", "null"]}})
    event["required"] = [*event["required"], "request_id", "lending_id"]
    lending_props = {
        "id": {"type": "integer"}, "our_request_id": {"type": "string"}, "requesting_agency": {"type": "string"},
        "requesting_agency_request_id": {"type": "string"}, "supplying_agency": {"type": "string"},
        "status": {"type": "string", "enum": LENDING_STATUSES}, "status_label": {"type": "string"},
        "iso_status": {"type": "string"}, "needs_attention": {"type": "boolean"},
        "attention": {"type": "array", "items": {"type": "string"}}, "unread_messages": UNREAD,
        "pending": {"type": ["string", "null"], "enum": ["cancel", "renew", None]},
        "received_at": DATETIME, "responded": {"type": "boolean"},
        "loan_conditions": {"type": "array", "items": {"type": "string"}},
        "offered_costs": {"type": "array", "items": _ref("Cost")}, "reason": NULLABLE_STRING,
        "due_date": DATETIME, "item_ids": {"type": "array", "items": {"type": "string"}},
        "shipped_at": DATETIME, "borrower_received_at": DATETIME, "return_shipped_at": DATETIME,
        "raw_request_id": {"type": ["integer", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"}, "version": {"type": "integer"},
        "details": {"type": "object", "description": "what the borrower asked for (its ISO request, parsed)"},
        "allowed_actions": {"type": "array", "items": _ref("AllowedAction"),
                            "description": "the staff actions allowed now, each with how to perform it"},
        "history": {"type": "array", "items": _ref("HistoryEntry")},
        "general_messages": {"type": "array", "items": _ref("GeneralMessage")},
        "notes": {"type": "array", "items": _ref("Note")},
        "attachments": {"type": "array", "items": _ref("Attachment")},
    }
    lending_summary = _obj({
        "id": {"type": "integer"}, "requesting_agency": {"type": "string"},
        "requesting_agency_request_id": {"type": "string"},
        "status": {"type": "string", "enum": LENDING_STATUSES}, "status_label": {"type": "string"},
        "needs_attention": {"type": "boolean"}, "unread_messages": UNREAD, "title": NULLABLE_STRING,
        "author": NULLABLE_STRING, "service_type": NULLABLE_STRING, "due_date": DATETIME,
        "created_at": {"type": "string", "format": "date-time"}, "updated_at": {"type": "string", "format": "date-time"},
    }, ["id", "requesting_agency", "status", "status_label", "needs_attention"], extra=True)
    lending_list = _obj({
        "items": {"type": "array", "items": _ref("LendingSummary")},
        "total": {"type": "integer", "minimum": 0}, "limit": {"type": "integer"}, "offset": {"type": "integer"},
        "sort": {"type": "string"},
        "facets": _obj({
            "status": facet({"type": "string"}, label=True), "partner": facet({"type": "string"}),
            "needs_attention": facet({"type": "boolean"}), "service_type": facet(NULLABLE_STRING),
        }, ["status", "partner", "needs_attention", "service_type"]),
    }, ["items", "total", "limit", "offset", "sort"])
    return {
        "Cost": _obj({"amount": {"type": "string"}, "currency": {"type": "string"}}, ["amount", "currency"]),
        "LendingRequest": _obj(lending_props, ["id", "status", "status_label", "requesting_agency",
                                               "allowed_actions", "history", "general_messages", "notes"],
                               extra=True),
        "LendingSummary": lending_summary,
        "LendingList": lending_list,
        "Error": _obj({"error": _obj({
            "code": {"type": "string", "enum": sorted(CODES)},
            "message": {"type": "string"}, "field": NULLABLE_STRING,
        }, ["code", "message", "field"], extra=True)}, ["error"]),
        "BorrowingRequest": _obj(request_props, ["id", "external_id", "status", "status_label", "needs_attention",
                                                 "allowed_actions", "rota", "history", "parameters",
                                                 "general_messages", "notes", "received_items", "attachments",
                                                 *REQUIRED], extra=True),
        "BorrowingSummary": summary,
        "BorrowingList": listing,
        "RequestCreate": _obj(create_props, list(REQUIRED),
                              description="the borrowing form's fields (snake_case; docs/request-fields.md) plus the rota; " + FORM_RULES,
                              anyOf=_findable()),
        "RequestEdit": _obj(edit_props, minProperties=1),
        "RotaOperation": rota_op,
        "AllowedAction": _obj({
            "name": {"type": "string", "pattern": "^[a-z]+(-[a-z]+)*$",
                     "description": "the action's name, as in a 409's `event` and `allowed`"},
            "method": {"type": "string", "enum": ["POST", "PATCH"]},
            "href": {"type": "string", "description": "where to send it (POST .../actions/{name} for most)"},
            "ops": {"type": "array", "items": {"type": "string", "enum": [c["properties"]["op"]["const"] for c in rota_op["oneOf"]]},
                    "description": "rota actions: the `op` values of the RotaOperation body that perform it"},
        }, ["name", "method", "href"]),
        "RotaEntry": rota_entry,
        "HistoryEntry": history,
        "GeneralMessage": message,
        "Note": note,
        "ReceivedItem": received,
        "Attachment": attachment,
        "Parameters": _obj({"parameters": parameters}, ["parameters"]),
        "TextBody": _obj({"text": {"type": "string", "minLength": 1, "maxLength": 4000,
                                   "pattern": text_pattern(required=True)}}, ["text"]),
        "PatronRequest": _obj(patron, ["patron_id", "pickup_location"],
                              description="a patron's submission (the OpenURL workform's fields); "
                                          "the form rules apply as to staff: " + FORM_RULES,
                              anyOf=_findable()),
        "Partner": _obj({
            "agency": {"type": "string"},
            "name": NULLABLE_STRING,
            "configured": {"type": "boolean", "description": "false: only known from queued messages"},
            "timeout_seconds": {"type": ["number", "null"]},
            "max_in_flight": {"type": "integer", "minimum": 1, "description": "messages sent to it at once"},
            "outbox": _obj({"pending": {"type": "integer", "minimum": 0},
                            "sending": {"type": "integer", "minimum": 0}}, ["pending", "sending"]),
            "circuit": _obj({
                "state": {"type": "string", "enum": ["closed", "open", "half_open"]},
                "consecutive_failures": {"type": "integer", "minimum": 0},
                "failure_threshold": {"type": "integer", "minimum": 1},
                "cooldown_seconds": {"type": "number"},
                "opened_at": DATETIME, "retry_at": DATETIME, "last_error": NULLABLE_STRING,
                "last_failure_at": DATETIME, "last_success_at": DATETIME,
            }, ["state", "consecutive_failures", "failure_threshold", "cooldown_seconds", "opened_at",
                "retry_at", "last_error", "last_failure_at", "last_success_at"]),
        }, ["agency", "name", "configured", "timeout_seconds", "max_in_flight", "outbox", "circuit"]),
        "Event": event,
        "Events": _obj({"events": {"type": "array", "items": _ref("Event")}, "next": {"type": "integer"}},
                       ["events", "next"]),
    }


@cache
def document() -> dict[str, Any]:
    from .borrowing import ACTIONS

    ok_request = _ok(_ref("BorrowingRequest"), "the request with all its tabs")
    paths: dict[str, Any] = {}
    br = "/api/v1/borrowing-requests"
    item = f"{br}/{{id}}"
    idp = [ID_PARAM]
    paths["/api/v1/openapi.json"] = {"get": _op("This document", {"200": {"description": "OpenAPI 3.1",
                                     "content": {JSON: {"schema": {"type": "object"}}}}},
                                     tag="meta", op_id="openapi", public=True)}
    paths["/api/v1/whoami"] = {"get": _op("The caller's key name and role", {
        **_ok(_obj({"name": {"type": "string"}, "role": {"type": "string", "enum": ["read-only", "staff", "admin"]},
                    "actor": {"type": "string"}}, ["name", "role", "actor"])), **_errors("401")},
        tag="meta", op_id="whoami")}
    paths["/api/v1/api-keys"] = {"get": _op("Configured keys' names and roles (admin)", {
        **_ok(_obj({"api_keys": {"type": "array", "items": _obj({"name": {"type": "string"},
                                                                  "role": {"type": "string"}}, ["name", "role"])}},
                   ["api_keys"])), **_errors("401", "403")}, tag="meta", op_id="listApiKeys")}
    paths["/api/v1/events"] = {"get": _op(
        "History rows of every request in id order, from a cursor", {
            "200": {"description": "a page of events; poll again with since=next",
                    "content": {JSON: {"schema": _ref("Events")},
                                "text/event-stream": {"schema": {"type": "string"}}}},
            **_errors("401", "422")},
        tag="events", op_id="listEvents",
        description="With `Accept: text/event-stream` the rows are streamed as Server-Sent Events "
                    "(id = history id; resumes from Last-Event-ID).",
        params=[
            {"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1,
                                                         "default": 0}, "description": "return rows with id > since"},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000,
                                                         "default": 100}},
            {"name": "poll", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 60, "default": 1},
             "description": "SSE only: seconds between looks for new rows"},
        ])}
    paths["/api/v1/raw-messages/{rid}"] = {"get": _op("A stored ISO 18626 message, verbatim", {
        "200": {"description": "the message's XML, as text/plain (never rendered: a partner wrote it)",
                "content": {"text/plain": {"schema": {"type": "string"}}}},
        **_errors("401", "404")}, tag="meta", op_id="getRawMessage", params=[
            {"name": "rid", "in": "path", "required": True,
             "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}])}
    paths["/api/v1/partners"] = {"get": _op(
        "Each partner's outbox health: limits, queued messages, circuit breaker", {
            **_ok(_obj({"partners": {"type": "array", "items": _ref("Partner")},
                        "held": {"type": "array", "items": {"type": "string"},
                                 "description": "agencies whose breaker is open or half-open"}},
                       ["partners", "held"])), **_errors("401", "422")},
        tag="meta", op_id="listPartners",
        description="A partner whose deliveries fail at the transport level `failure_threshold` times in a "
                    "row is held (breaker `open`) until `retry_at`; then one probe message goes "
                    "(`half_open`), and a confirmation closes the breaker again. Breakers are kept in "
                    "memory by the gateway process.")}
    paths["/api/v1/patron-requests"] = {"post": _op(
        "A patron's request (the OpenURL workform as JSON)",
        {**_ok(_ref("BorrowingRequest"), "created", "201", Location=True), **_errors(*WRITE_ERRORS)},
        tag="intake", op_id="createPatronRequest", body=_json_body(_ref("PatronRequest")),
        description="Created exactly as staff create a request, with the actor patron:<patron_id>.")}
    paths[br] = {
        "get": _op("List borrowing requests with filters, facets, paging and sort",
                   {**_ok(_ref("BorrowingList")), **_errors("401", "422")},
                   op_id="listBorrowingRequests", params=_list_params(),
                   description="Facets are counted under all the given filters."),
        "post": _op("Create a borrowing request (Save)",
                    {**_ok(_ref("BorrowingRequest"), "created", "201", Location=True), **_errors(*WRITE_ERRORS)},
                    op_id="createBorrowingRequest", body=_json_body(_ref("RequestCreate"))),
    }
    paths[item] = {
        "parameters": idp,
        "get": _op("A borrowing request with all its tabs", {**ok_request, **_errors(*READ_ERRORS)},
                   op_id="getBorrowingRequest"),
        "patch": _op("Edit general information (before shipping)", {**ok_request, **_errors(*WRITE_ERRORS)},
                     op_id="editBorrowingRequest", body=_json_body(_ref("RequestEdit"))),
    }
    for tab, key, schema, op_id in (
        ("history", "history", _ref("HistoryEntry"), "getHistory"),
        ("received-items", "received_items", _ref("ReceivedItem"), "getReceivedItems"),
    ):
        paths[f"{item}/{tab}"] = {"parameters": idp, "get": _op(
            f"The {tab.replace('-', ' ')} tab", {**_ok(_obj({key: {"type": "array", "items": schema}}, [key])),
                                                 **_errors(*READ_ERRORS)}, op_id=op_id)}
    paths[f"{item}/rota"] = {
        "parameters": idp,
        "get": _op("The rota tab", {**_ok(_obj({"rota": {"type": "array", "items": _ref("RotaEntry")}}, ["rota"])),
                                    **_errors(*READ_ERRORS)}, op_id="getRota"),
        "post": _op("A rota operation", {**ok_request, **_errors(*WRITE_ERRORS)}, op_id="changeRota",
                    body=_json_body(_ref("RotaOperation"))),
    }
    for tab, key, schema, event, op in (
        ("messages", "messages", "GeneralMessage", "send a general message to the current partner", "Message"),
        ("notes", "notes", "Note", "add an internal note (nothing is sent)", "Note"),
    ):
        paths[f"{item}/{tab}"] = {
            "parameters": idp,
            "get": _op(f"The {tab} tab", {**_ok(_obj({key: {"type": "array", "items": _ref(schema)}}, [key])),
                                          **_errors(*READ_ERRORS)}, op_id=f"get{op}s"),
            "post": _op(event.capitalize(), {**_ok(_ref(schema), "created", "201"), **_errors(*WRITE_ERRORS)},
                        op_id=f"post{op}", body=_json_body(_ref("TextBody"))),
        }
    paths[f"{item}/parameters"] = {
        "parameters": idp,
        "get": _op("The parameters tab", {**_ok(_ref("Parameters")), **_errors(*READ_ERRORS)},
                   op_id="getParameters"),
        "put": _op("Replace all parameters", {**_ok(_ref("Parameters")), **_errors(*WRITE_ERRORS)},
                   op_id="putParameters", body=_json_body(_obj({"parameters": {
                       "type": "object", "maxProperties": 100, "propertyNames": PARAM_KEY,
                       "additionalProperties": {"type": "string", "maxLength": 4000, "pattern": text_pattern()}}},
                       ["parameters"]))),
        "patch": _op("Set some parameters (null removes one)", {**_ok(_ref("Parameters")), **_errors(*WRITE_ERRORS)},
                     op_id="patchParameters", body=_json_body(_obj({"parameters": {
                         "type": "object", "maxProperties": 100,
                         "propertyNames": PARAM_KEY,
                         "additionalProperties": {"type": ["string", "null"], "maxLength": 4000,
                                                  "pattern": text_pattern()}}}, ["parameters"]))),
    }
    paths[f"{item}/attachments"] = {
        "parameters": idp,
        "get": _op("The attachments tab (metadata)", {
            **_ok(_obj({"attachments": {"type": "array", "items": _ref("Attachment")}}, ["attachments"])),
            **_errors(*READ_ERRORS)}, op_id="getAttachments"),
        "post": _op("Upload an attachment", {**_ok(_ref("Attachment"), "created", "201", Location=True),
                                             **_errors(*WRITE_ERRORS)}, op_id="uploadAttachment",
                    params=[{"name": "filename", "in": "query", "required": False,
                             "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                             "description": "the file name, for a raw body"}],
                    description="multipart/form-data with a part named `file`, or the raw bytes with their "
                                "Content-Type and ?filename= (or a Content-Disposition filename).",
                    body={"required": True, "content": {
                        "multipart/form-data": {"schema": _obj({"file": {"type": "string",
                                                                         "contentMediaType": "application/octet-stream"}},
                                                               ["file"], extra=True)},
                        "application/octet-stream": {"schema": {"type": "string",
                                                                "contentMediaType": "application/octet-stream"}},
                    }}),
    }
    paths[f"{item}/attachments/{{aid}}"] = {
        "parameters": [ID_PARAM, {"name": "aid", "in": "path", "required": True,
                                  "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}],
        "get": _op("Download an attachment (its bytes, with its media type)", {
            "200": {"description": "the content", "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
                    "content": {"*/*": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}}},
            **_errors("401", "404")}, op_id="downloadAttachment"),
    }
    for name, (event_type, fields, _parse) in ACTIONS.items():
        paths[f"{item}/actions/{name}"] = {"parameters": idp, "post": _op(
            f"Action {name} ({event_type.__name__})", {**ok_request, **_errors(*WRITE_ERRORS)},
            op_id="action" + "".join(w.capitalize() for w in name.split("-")),
            body=_json_body(_action_body(fields), required="flag" in fields),
            description=(event_type.__doc__ or "").strip() or None)}
    from .lending import ACTIONS as LENDING_ACTIONS
    from .lending import SORTS as LENDING_SORTS

    lr = "/api/v1/lending-requests"
    litem = f"{lr}/{{id}}"
    ok_lending = _ok(_ref("LendingRequest"), "the lending request with all its tabs")
    lid = [{**ID_PARAM, "description": "the lending request's id"}]
    many = {"type": "array", "maxItems": 50, "items": {"type": "string", "minLength": 1, "maxLength": 200,
                                                         "pattern": r"^[^,\s\x00][^,\x00]*$"}}
    date_or_time = {"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}, {"maxLength": 0}]}
    lsorts = [*LENDING_SORTS, *(f"-{k}" for k in LENDING_SORTS)]
    paths[lr] = {"get": _op("List lending requests with filters, facets, paging and sort", {
        **_ok(_ref("LendingList")), **_errors("401", "422")}, tag="lending", op_id="listLendingRequests", params=[
            {"name": "status", "in": "query", "style": "form", "explode": True,
             "schema": {**many, "items": {"type": "string", "enum": LENDING_STATUSES}}},
            {"name": "partner", "in": "query", "style": "form", "explode": True, "schema": many,
             "description": "the requesting agency"},
            {"name": "needs_attention", "in": "query", "schema": {"type": "boolean"}},
            {"name": "q", "in": "query", "schema": {"type": "string", "maxLength": 200, "pattern": r"^[^\x00]*$"},
             "description": "words matching title, author or the borrower's request id"},
            *({"name": n, "in": "query", "schema": date_or_time}
              for n in ("created_from", "created_to", "updated_from", "updated_to")),
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
            {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}},
            {"name": "sort", "in": "query", "schema": {"type": "string", "enum": lsorts}},
            {"name": "facets", "in": "query", "schema": {"type": "boolean"}},
        ])}
    paths[litem] = {"parameters": lid, "get": _op("A lending request with all its tabs", {
        **ok_lending, **_errors(*READ_ERRORS)}, tag="lending", op_id="getLendingRequest")}
    paths[f"{litem}/history"] = {"parameters": lid, "get": _op("The history tab", {
        **_ok(_obj({"history": {"type": "array", "items": _ref("HistoryEntry")}}, ["history"])),
        **_errors(*READ_ERRORS)}, tag="lending", op_id="getLendingHistory")}
    for tab, schema_name, what, op in (("messages", "GeneralMessage", "send a general message to the borrower",
                                        "LendingMessage"),
                                       ("notes", "Note", "add an internal note", "LendingNote")):
        paths[f"{litem}/{tab}"] = {
            "parameters": lid,
            "get": _op(f"The {tab} tab", {**_ok(_obj({tab: {"type": "array", "items": _ref(schema_name)}}, [tab])),
                                          **_errors(*READ_ERRORS)}, tag="lending", op_id=f"get{op}s"),
            "post": _op(what.capitalize(), {**_ok(_ref(schema_name), "created", "201"), **_errors(*WRITE_ERRORS)},
                        tag="lending", op_id=f"post{op}", body=_json_body(_ref("TextBody"))),
        }
    for name, (event_type, fields, _parse) in LENDING_ACTIONS.items():
        required = name in LENDING_REQUIRED or name == "conditional"
        paths[f"{litem}/actions/{name}"] = {"parameters": lid, "post": _op(
            f"Lending action {name} ({event_type.__name__})", {**ok_lending, **_errors(*WRITE_ERRORS)},
            tag="lending", op_id="lendingAction" + "".join(w.capitalize() for w in name.split("-")),
            body=_json_body(_lending_action_body(name, fields), required=required),
            description=(event_type.__doc__ or "").strip() or None)}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ISO 18626 gateway staff API",
            "version": "1.0.0",
            "description": "Borrowing requests and their tabs, actions, rota; events; patron intake. "
                           "Errors: {\"error\": {\"code\", \"message\", \"field\"}}. Codes: "
                           + "; ".join(f"{code} ({status}): {text}" for code, (status, text) in CODES.items()),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": n} for n in ("borrowing", "lending", "events", "intake", "meta")],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "an API key from [[api_keys]]; roles read-only, "
                                                              "staff, admin"}},
            "schemas": _schemas(),
        },
    }


@cache
def _body() -> bytes:
    return json.dumps(document(), indent=1).encode()


async def serve(request: web.Request) -> web.Response:
    return web.Response(body=_body(), content_type="application/json")
