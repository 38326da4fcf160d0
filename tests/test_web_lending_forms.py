"""The lender's workforms without a browser: form values become the staff API's body and are
checked by the API's parser, errors land on the form field they concern; and a stored message
is shown as indented XML by a parser that expands no entity and loads no DTD."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from gateway.api.lending import ACTIONS
from gateway.messages.codes import Status
from gateway.web.lending_workforms import WORKFORMS
from gateway.web.xml_view import formatted


def test_every_workform_is_an_action_of_the_lending_api():
    assert set(WORKFORMS) <= set(ACTIONS)
    # The API's actions a page offers elsewhere: the messages and notes tabs' forms.
    assert set(ACTIONS) - set(WORKFORMS) == {"mark-messages-read"}


def test_conditional_values_become_conditions_and_costs():
    errors, fields = WORKFORMS["conditional"].parse({
        "loan_condition": "LibraryUseOnly", "cost_amount": "12.5", "cost_currency": "eur",
        "status": "ExpectToSupply", "note": " Reading room only "})
    assert errors == {}
    assert fields["loan_conditions"] == ("LibraryUseOnly",)
    assert fields["offered_costs"] == ((Decimal("12.50"), "EUR"),)
    assert fields["status"] is Status.ExpectToSupply and fields["note"] == "Reading room only"


def test_errors_name_the_form_field():
    conditional = WORKFORMS["conditional"]
    assert conditional.parse({"cost_amount": "12", "status": "WillSupply"})[0] == {
        "cost_currency": "give the 3-letter currency code, e.g. EUR"}
    assert conditional.parse({"cost_amount": "1.234", "cost_currency": "EUR", "status": "WillSupply"})[0] == {
        "cost_amount": "has more than 2 decimal places"}
    assert conditional.parse({"status": "WillSupply"})[0] == {"loan_condition": "give loan conditions or offered costs"}
    assert conditional.parse({"loan_condition": "Whatever", "status": "WillSupply"})[0] == {
        "loan_condition": "choose one from the list"}
    assert WORKFORMS["unfilled"].parse({})[0] == {"reason_unfilled": "is required"}
    assert WORKFORMS["ship"].parse({"due_date": "next week"})[0] == {
        "due_date": "must be a date YYYY-MM-DD or an ISO 8601 datetime"}
    ship = WORKFORMS["ship"].parse({"due_date": "2030-02-28", "item_id": "39001", "cost_amount": "5",
                                    "cost_currency": "USD"})[1]
    assert ship["due_date"] == datetime(2030, 2, 28, tzinfo=timezone.utc)
    assert ship["item_ids"] == ("39001",) and ship["delivery_costs"] == ((Decimal("5.00"), "USD"),)
    assert WORKFORMS["ship"].field_of("item_ids[0]") == "item_id"
    assert WORKFORMS["ship"].field_of("delivery_costs[0].currency") == "cost_currency"
    assert WORKFORMS["ship"].field_of("something_else") is None


def test_a_message_is_indented_xml():
    text, parsed = formatted(b'<a xmlns="urn:x"><b>1</b><c>&lt;script&gt;</c></a>')
    assert parsed and text == '<a xmlns="urn:x">\n  <b>1</b>\n  <c>&lt;script&gt;</c>\n</a>\n'


def test_entities_and_dtds_are_never_expanded_and_broken_xml_is_shown_as_received():
    hostile = (b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">'
               b'<!ENTITY x "boom">]><a>&e;&x;</a>')
    text, parsed = formatted(hostile)
    assert not parsed and text == hostile.decode() and "root:" not in text
    text, parsed = formatted(b"<a><b></a>\xff")
    assert not parsed and text == "<a><b></a>\ufffd"
    assert formatted(None) == ("", False)
